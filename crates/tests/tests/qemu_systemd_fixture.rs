//! The systemd fixture boots on `virt` with real systemd as PID 1: every unit comes up
//! (`running`, not `degraded`), networkd gets a DHCP address on the restricted user network of
//! `MachineConfig::guest_http`, the guest fetches a file from a 127.0.0.1 server at
//! `http://10.0.2.100/` and nothing else answers, and `k8r-reboot-to` reboots cleanly with the
//! request the harness records. `extra_cmdline` reaches the boots not from partition 1 only,
//! and a boot that systemd gives up on (emergency mode) ends the harness's wait at once.

use std::time::{Duration, Instant};

use k8r_builder::image::card::{assemble, extract_partition, PartitionSource};
use k8r_qemu::{HarnessError, Machine, MachineConfig, Profile};
use k8r_tests::http::Server;
use k8r_tests::{fixture, scratch, scratch_card, BASE_2604_SYSTEMD};
use sha2::{Digest, Sha256};

/// TCG on a shared two-core machine: systemd takes 40-100 s to the marker.
const BOOT: Duration = Duration::from_secs(600);
const CMD: Duration = Duration::from_secs(120);
const MARKER: &str = "K8R-FIXTURE-ROOT: systemd up";

/// Waits for the marker; returns the rest of its line (`; cmdline: ...`).
fn marker_line(vm: &mut Machine) -> String {
    vm.expect(MARKER, BOOT).expect("systemd marker");
    vm.expect("\n", CMD).expect("marker line")
}

/// Runs `command`, asserts exit status 0, returns its output.
fn ok(vm: &mut Machine, command: &str) -> String {
    let (status, out) = vm.run_command(command, CMD).expect("command");
    assert_eq!(status, 0, "`{command}` failed: {out}");
    out
}

/// The port of a `http://127.0.0.1:PORT` server.
fn port(server: &Server) -> u16 {
    server
        .url()
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .expect("port in the server URL")
}

/// A bash command that fetches `http://10.0.2.100/PATH` with /dev/tcp into `out`, printing the
/// status line (headers are read byte by byte by `read`, the body copied by `cat`).
fn fetch(path: &str, out: &str) -> String {
    format!(
        "exec 3<>/dev/tcp/10.0.2.100/80 && printf 'GET /{path} HTTP/1.0\\r\\nHost: 10.0.2.100\\r\\n\\r\\n' >&3 \
         && IFS= read -r status <&3 && echo \"status: $status\" \
         && while IFS= read -r h <&3 && [ \"$h\" != $'\\r' ]; do :; done && cat <&3 > {out}; exec 3<&-"
    )
}

/// Whether a TCP connection from the guest to `addr port` gets through (10 s at most).
fn connects(vm: &mut Machine, addr: &str, port: u16) -> bool {
    let out = ok(
        vm,
        &format!("timeout 10 bash -c 'exec 3<>/dev/tcp/{addr}/{port}' 2>&1; echo \"rc=$?\""),
    );
    out.contains("rc=0")
}

#[test]
fn systemd_fixture_runs_networks_fetches_over_http_and_reboots_on_request() {
    let files = scratch("qemu-systemd-files");
    // Hard-to-compress, deterministic content with every byte value (so binary-safe transfer
    // is tested too).
    let blob: Vec<u8> = (0u32..300_000)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13).to_le_bytes()[0])
        .collect();
    std::fs::write(files.join("blob"), &blob).expect("write blob");
    let want: String = Sha256::digest(&blob)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let server = Server::serve_dir(&files).expect("file server");

    let card = scratch_card("qemu-systemd", BASE_2604_SYSTEMD);
    let started = Instant::now();
    let mut vm = Machine::start(
        MachineConfig::new("qemu-systemd", &card, Profile::Virt).with_guest_http(port(&server)),
    )
    .expect("boot");
    let line = marker_line(&mut vm);
    println!(
        "systemd fixture: marker {:.1?} after QEMU start; {line}",
        started.elapsed()
    );
    assert!(
        vm.transcript()
            .contains("K8R-FIXTURE-INITRD: root=LABEL=writable is /dev/vda2"),
        "the fixture initrd found the root"
    );

    let state = vm
        .run_command("systemctl is-system-running --wait", BOOT)
        .expect("is-system-running");
    if state.1.trim() != "running" {
        let failed = ok(&mut vm, "systemctl --failed --no-pager --full");
        panic!("system is {:?}, failed units:\n{failed}", state.1.trim());
    }
    println!("{}", ok(&mut vm, "systemd-analyze --no-pager"));
    println!("{}", ok(&mut vm, "free -m"));
    // The fixture's waits for an emulated machine (docs/fixtures.md): with systemd's 90 s a
    // slow host's coldplug failed local-fs.target and left the system in emergency mode.
    let waits = ok(
        &mut vm,
        "systemctl show -p DefaultTimeoutStartUSec; \
         systemctl show -p JobRunningTimeoutUSec 'dev-disk-by\\x2dlabel-system\\x2dboot.device'; \
         systemctl show -p ExecStart systemd-networkd-wait-online.service",
    );
    assert!(
        waits.contains("DefaultTimeoutStartUSec=5min")
            && waits.contains("JobRunningTimeoutUSec=10min")
            && waits
                .contains("argv[]=/usr/lib/systemd/systemd-networkd-wait-online --timeout=600 "),
        "{waits}"
    );

    assert_eq!(
        ok(&mut vm, "readlink /proc/1/exe").trim(),
        "/usr/lib/systemd/systemd"
    );
    let machine_id = ok(&mut vm, "cat /etc/machine-id");
    assert!(
        machine_id.trim().len() == 32 && machine_id.trim().chars().all(|c| c.is_ascii_hexdigit()),
        "systemd made a machine id: {machine_id:?}"
    );
    assert_eq!(
        ok(&mut vm, "findmnt -n -o SOURCE,FSTYPE /")
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["/dev/vda2", "ext4"]
    );
    assert_eq!(
        ok(&mut vm, "findmnt -n -o SOURCE,FSTYPE /boot/firmware")
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["/dev/vda1", "vfat"]
    );
    // The users systemd-sysusers made from /usr/lib/sysusers.d (no maintainer scripts ran).
    ok(&mut vm, "getent passwd systemd-network systemd-timesync");
    ok(
        &mut vm,
        "systemctl is-active systemd-timesyncd.service fixture-console.service",
    );
    assert_eq!(
        ok(
            &mut vm,
            "systemctl is-enabled systemd-time-wait-sync.service || true"
        )
        .trim(),
        "disabled"
    );

    // Network: DHCP on the virtio NIC, network-online.target through wait-online.
    ok(&mut vm, "systemctl start network-online.target");
    assert_eq!(
        ok(
            &mut vm,
            "systemctl is-active systemd-networkd-wait-online.service"
        )
        .trim(),
        "active"
    );
    let addr = ok(&mut vm, "ip -4 -o addr show scope global");
    assert!(
        addr.contains(" en") && addr.contains("inet 10.0.2.15/24"),
        "networkd's DHCP address on the NIC: {addr}"
    );
    let routes = ok(&mut vm, "ip -4 route");
    assert!(
        !routes.contains("default"),
        "restrict=on: no default route: {routes}"
    );

    // HTTP from the guest to the host's 127.0.0.1 server, twice (one relay per connection).
    let before = server.total_hits();
    for n in 1..=2 {
        let out = ok(&mut vm, &fetch("blob", &format!("/tmp/blob{n}")));
        assert!(out.contains("status: HTTP/1.1 200 OK"), "{out}");
        let sum = ok(&mut vm, &format!("sha256sum /tmp/blob{n}"));
        assert!(sum.starts_with(&want), "guest got {sum}, host has {want}");
    }
    assert_eq!(
        server.total_hits(),
        before + 2,
        "both fetches reached the host server"
    );
    let out = ok(&mut vm, &fetch("missing", "/tmp/missing"));
    assert!(out.contains("status: HTTP/1.1 404"), "{out}");

    // Nothing else: not the slirp gateway (which without restrict=on is the host's loopback,
    // where the server listens), not another port of the forwarded address.
    assert!(
        connects(&mut vm, "10.0.2.100", 80),
        "the forwarded port connects"
    );
    assert!(
        !connects(&mut vm, "10.0.2.2", port(&server)),
        "host loopback via the gateway"
    );
    assert!(!connects(&mut vm, "10.0.2.2", 22), "the gateway's port 22");
    assert!(
        !connects(&mut vm, "10.0.2.100", 81),
        "another port of the forwarded address"
    );

    // Modules the node agent needs load; udev loaded the NIC's.
    ok(&mut vm, "modprobe overlay && modprobe br_netfilter");
    let modules = ok(&mut vm, "cut -d' ' -f1 /proc/modules");
    for m in ["virtio_net", "overlay", "br_netfilter", "bridge", "autofs4"] {
        assert!(
            modules.lines().any(|l| l.trim() == m),
            "{m} loaded: {modules}"
        );
    }

    // The cloud-init stand-in made the host keys.
    ok(&mut vm, "systemctl start fixture-ssh-hostkeys.service");
    assert_eq!(
        ok(&mut vm, "ls /etc/ssh/ssh_host_*_key.pub | wc -l").trim(),
        "3",
        "rsa, ecdsa, ed25519"
    );
    assert!(
        ok(&mut vm, "ssh-keygen -lf /etc/ssh/ssh_host_rsa_key.pub").starts_with("1024 "),
        "a 1024-bit RSA key: a 3072-bit one takes 42 s under TCG"
    );

    // A clean reboot with a request: the harness records partition 2; this card has no boot
    // files there, so the firmware falls back to partition 1 and systemd comes up again.
    vm.send("k8r-reboot-to 2").expect("send");
    let again = marker_line(&mut vm);
    assert_eq!(vm.boots().len(), 2, "one reboot");
    assert_eq!(vm.boots()[1].request.partition, 2);
    assert!(!vm.boots()[1].request.tryboot);
    assert_eq!(vm.boots()[1].choice.partition, 1, "p2 is not bootable");
    let transcript = vm.transcript();
    assert!(
        transcript.contains("reboot: Restarting system with command '2'"),
        "systemctl reboot handed the Pi-style argument to the kernel"
    );
    assert!(
        transcript.contains("Reached target") && transcript.contains("reboot.target"),
        "units were stopped by systemd, not a reset"
    );
    assert!(
        !again.contains("k8r."),
        "no extra command line on partition 1: {again}"
    );
    vm.send("systemctl poweroff").expect("send");
    vm.wait_for_poweroff(Duration::from_secs(180))
        .expect("power off");
}

#[test]
fn extra_cmdline_reaches_the_working_system_boots_only_and_emergency_mode_ends_a_wait() {
    // p1 and p2: the fixture's boot partition twice; p3 its root. Partition 1 boots first (as
    // the recovery partition does on an assembled card); k8r-reboot-to 2 boots p2.
    let dir = scratch("qemu-systemd-cmdline");
    let base = fixture(BASE_2604_SYSTEMD);
    let (boot1, boot2, root) = (dir.join("p1.img"), dir.join("p2.img"), dir.join("p3.img"));
    extract_partition(&base, 1, &boot1).expect("extract boot");
    extract_partition(&base, 1, &boot2).expect("extract boot copy");
    extract_partition(&base, 2, &root).expect("extract root");
    let card = dir.join("card.img");
    let part = |type_id, content| PartitionSource {
        type_id,
        content,
        size: None,
    };
    assemble(
        &card,
        0x5eed_5d02,
        &[part(0x0c, &boot1), part(0x0c, &boot2), part(0x83, &root)],
        None,
    )
    .expect("assemble");

    let token = "k8r.standin.join=stale-node:2";
    let mut vm = Machine::start(
        MachineConfig::new("qemu-systemd-cmdline", &card, Profile::Virt).with_extra_cmdline(token),
    )
    .expect("boot");
    let first = marker_line(&mut vm);
    assert!(
        !first.contains(token),
        "partition 1 boots without it: {first}"
    );
    vm.send("k8r-reboot-to 2").expect("send");
    let second = marker_line(&mut vm);
    assert_eq!(vm.boots()[1].choice.partition, 2);
    assert!(
        second.trim_end().ends_with(token),
        "appended last: {second}"
    );
    let cmdline = ok(&mut vm, "cat /proc/cmdline");
    assert!(cmdline.contains(token), "{cmdline}");

    // A boot that systemd gives up on (here: asked for emergency mode) ends a wait at once
    // with what the console said, instead of running out the test's long timeout.
    vm.set_extra_cmdline("systemd.unit=emergency.target");
    vm.send("k8r-reboot-to 2").expect("send");
    match vm.expect("K8R-FIXTURE-ROOT:", Duration::from_secs(1800)) {
        Err(HarnessError::GaveUp { pattern, why, .. }) => {
            assert_eq!(pattern, "K8R-FIXTURE-ROOT:");
            assert_eq!(why, "systemd printed no failed unit on the console");
        }
        other => panic!("expected the harness to see emergency mode: {other:?}"),
    }
}
