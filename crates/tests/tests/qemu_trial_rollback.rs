//! Trial boot on a running node, in QEMU with real systemd: a good build commits (the agent
//! flips `autoboot.txt` to the working system, systemd arms the hardware watchdog); a newer
//! build whose kernel panics at boot (built with `KERNEL_CMDLINE="rdinit=/bin/echo
//! init=/bin/echo"`: the first process exits, and the builder's default `panic=10` makes the
//! panic a reset) is staged with `update-image` and installed on trial; the reset lands in
//! recovery, which rolls back to the previous build; that build commits again, and `k8r
//! status` names the rollback and its cause. No console input from the panic on. Then
//! Ubuntu's own kernel A/B (`reboot '0 tryboot'`, `[tryboot] os_prefix=new/`) still works on
//! the committed node.
//!
//! The second test stops things half-way: a power cut in the middle of the agent's commit
//! (failpoint `trial-after-autoboot`: `autoboot.txt` already points at the working system,
//! the trial record still says on trial) ends with the firmware booting the working system,
//! whose agent finishes the commit; and a build whose agent never reports healthy (built with
//! `KERNEL_CMDLINE="systemd.mask=containerd.service"`) is given up `TRIAL_TIMEOUT` after boot
//! and rolled back. It runs on a worker card (health is local: no master needed), beside the
//! first test (the harness runs the two at once; their waits overlap).

use k8r_qemu::Machine;
use k8r_tests::node::{config, node_card, ok, port, serve_builds, WAIT};
use k8r_tests::{assemble_card, fat_partition, BASE_2604_SYSTEMD};

const COMMITTED: &str = "committed (autoboot.txt points at this system)";

/// Waits as [`up`] does and checks that `build` is the one the agent found healthy.
fn committed(vm: &mut Machine, build: &str) {
    let commit = up(vm, true);
    assert!(
        commit.contains(&format!("build {build} is healthy")),
        "{commit}"
    );
}

/// Waits for the working system to be up (the fixture's marker) and for this boot's journal to
/// hold `k8r: bootstrap done:` and, when `commit` is set, the agent's commit line: on a first
/// boot the commit comes before `kubeadm init`, on a rollback after the kept control plane is
/// up, so the console order is not fixed. Returns the commit line.
fn up(vm: &mut Machine, commit: bool) -> String {
    vm.expect("K8R-FIXTURE-ROOT:", WAIT)
        .expect("working system up");
    let wanted = if commit { COMMITTED } else { "bootstrap done:" };
    let (status, out) = vm
        .run_command(
            &format!(
                "until journalctl -b -o cat | grep -q 'bootstrap done:' && \
                 journalctl -b -o cat | grep -q '{wanted}'; do sleep 1; done; \
                 journalctl -b -o cat | grep -m1 '{wanted}'; systemctl is-system-running --wait"
            ),
            WAIT,
        )
        .expect("bootstrap and commit");
    assert_eq!(status, 0, "{out}");
    out
}

#[test]
fn a_build_that_panics_on_trial_is_rolled_back_and_tryboot_still_works() {
    let good = node_card("trial-rollback", "");
    let bad = assemble_card(
        "trial-rollback-bad",
        BASE_2604_SYSTEMD,
        "KERNEL_CMDLINE=\"rdinit=/bin/echo init=/bin/echo\"\n",
    );
    let (good_id, bad_id) = (&good.report.build_id, &bad.report.build_id);
    assert_ne!(good_id, bad_id);
    let server = serve_builds(&good.dir.join("www"), &[("bad", &bad)]);
    let mut vm = Machine::start(config(
        "trial-rollback",
        &good.card,
        port(&server.url()),
        "",
    ))
    .expect("boot");

    // 1. The first install is a trial too, and a healthy node commits it.
    vm.expect("K8R-RECOVERY: install verified", WAIT)
        .expect("installed");
    committed(&mut vm, good_id);
    let status = ok(&mut vm, "k8r status");
    assert!(
        status.contains("next boot:   partition 2 (this system)"),
        "{status}"
    );
    assert!(
        status.contains(&format!("trial:       build {good_id} committed")),
        "{status}"
    );
    assert!(
        ok(&mut vm, "cat /proc/cmdline").contains(" panic=10 "),
        "the builder's default"
    );
    assert_eq!(
        ok(&mut vm, "systemctl show -p RuntimeWatchdogUSec --value").trim(),
        "15s",
        "systemd feeds the hardware watchdog"
    );

    // 2. A build that panics at boot: staged, installed on trial, rolled back.
    let staged = ok(&mut vm, "k8r update-image --url http://10.0.2.100/bad/");
    assert!(
        staged.contains(bad_id.as_str()) && staged.contains("staged"),
        "{staged}"
    );
    vm.send("k8r reinstall").expect("reinstall");
    vm.expect("K8R-RECOVERY: install verified", WAIT)
        .expect("the bad build installs");
    vm.expect("Rebooting in 10 seconds", WAIT)
        .expect("its kernel panics, then resets");
    let rollback = vm
        .expect("installing the previous build", WAIT)
        .expect("recovery rolls back");
    assert!(
        rollback.contains(&format!("rollback: build {bad_id} failed its trial")),
        "{rollback}"
    );
    vm.expect("K8R-RECOVERY: install verified", WAIT)
        .expect("the previous build installs");
    committed(&mut vm, good_id);
    let status = ok(&mut vm, "k8r status");
    assert!(
        status.contains(&format!(
            "trial:       build {good_id} committed (rolled back from {bad_id})"
        )),
        "{status}"
    );
    assert!(
        status.contains(&format!(
            "last rollback: build {bad_id}: rollback: build {bad_id} failed its trial"
        )),
        "{status}"
    );
    assert!(
        ok(&mut vm, "cat /usr/lib/k8r/build-info").contains(&format!("BUILD_ID={good_id}")),
        "the previous build runs"
    );

    // 3. Ubuntu's kernel A/B on the committed node: a kernel in new/ is tried (the
    // harness's one-shot flag is shown in qemu_reboot_requests).
    ok(
        &mut vm,
        "cd /boot/firmware && mkdir -p new && cp -r current/. new/ && \
         sed -i 's/$/ k8r.slot=new/' new/cmdline.txt && sync",
    );
    vm.send("k8r-reboot-to 0 tryboot").expect("tryboot");
    up(&mut vm, false);
    assert!(
        ok(&mut vm, "cat /proc/cmdline").contains("k8r.slot=new"),
        "new/ booted"
    );
    assert!(
        ok(&mut vm, "k8r status").contains(&format!("trial:       build {good_id} committed")),
        "a kernel tryboot is not a k8r trial"
    );
    vm.send("poweroff").expect("poweroff");
    vm.wait_for_poweroff(WAIT).expect("off");

    let boots = vm.boots();
    let parts: Vec<(u8, u8)> = boots
        .iter()
        .map(|b| (b.request.partition, b.choice.partition))
        .collect();
    assert_eq!(
        parts,
        vec![(0, 1), (2, 2), (0, 1), (2, 2), (0, 1), (2, 2), (0, 2)],
        "install and trial; reinstall, bad trial; panic reset to recovery, rollback trial; \
         committed: a tryboot goes to the working system"
    );
    let tried = &boots[6].choice;
    assert!(tried.tryboot && tried.os_prefix == "new/", "{tried:?}");
    let p1 = fat_partition(&good.card, 1).expect("p1");
    assert_eq!(
        p1.read("autoboot.txt").expect("autoboot"),
        b"[all]\ntryboot_a_b=1\nboot_partition=2\n"
    );
    let log = String::from_utf8(p1.read("k8r/install.log").expect("log")).expect("utf8");
    assert!(
        log.contains(&format!("rollback: build {bad_id} failed its trial")),
        "{log}"
    );
}

const JOIN: &str = "kubeadm join 10.0.0.1:6443 --token k8rcut.q7w8e9r0t1y2u3i4 --discovery-token-ca-cert-hash sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const ON_WORKING: &[u8] = b"[all]\ntryboot_a_b=1\nboot_partition=2\n";

/// Waits for the working system and for `line` in this boot's journal (journal lines reach
/// the console in no fixed order); returns the first matching journal line.
fn journal_line(vm: &mut Machine, line: &str) -> String {
    vm.expect("K8R-FIXTURE-ROOT:", WAIT)
        .expect("working system up");
    let (status, out) = vm
        .run_command(
            &format!(
                "until journalctl -b -o cat | grep -q '{line}'; do sleep 1; done; \
                 journalctl -b -o cat | grep -m1 '{line}'"
            ),
            WAIT,
        )
        .expect("journal");
    assert_eq!(status, 0, "{out}");
    out
}

#[test]
fn a_cut_commit_is_finished_and_a_never_healthy_build_is_rolled_back_after_its_timeout() {
    let good = node_card("trial-cuts", &format!("KUBEADM_JOIN_STRING=\"{JOIN}\"\n"));
    let never = assemble_card(
        "trial-cuts-never",
        BASE_2604_SYSTEMD,
        "KERNEL_CMDLINE=\"systemd.mask=containerd.service\"\n",
    );
    let (good_id, never_id) = (&good.report.build_id, &never.report.build_id);
    assert_ne!(good_id, never_id);
    let server = serve_builds(&good.dir.join("www"), &[("never", &never)]);
    let mut vm = Machine::start(config(
        "trial-cuts",
        &good.card,
        port(&server.url()),
        "k8r.failpoint=trial-after-autoboot",
    ))
    .expect("boot");

    // 1. The commit stops after autoboot.txt, before the record: the power is cut there.
    vm.expect("K8R-RECOVERY: install verified", WAIT)
        .expect("installed");
    journal_line(&mut vm, "k8r-failpoint: trial-after-autoboot");
    vm.power_cut();
    let p1 = fat_partition(&good.card, 1).expect("p1");
    assert_eq!(p1.read("autoboot.txt").expect("autoboot"), ON_WORKING);
    let record = String::from_utf8(p1.read("k8r/trial").expect("trial")).expect("utf8");
    assert!(record.contains("phase=boot"), "{record}");
    vm.set_extra_cmdline("");
    vm.power_on().expect("power on");
    let done = journal_line(&mut vm, "trial watch: build");
    assert!(
        done.contains(&format!("trial watch: build {good_id} committed")),
        "the working system's agent finishes the commit: {done}"
    );
    let status = ok(&mut vm, "k8r status");
    assert!(
        status.contains(&format!("trial:       build {good_id} committed")),
        "{status}"
    );

    // 2. A build that never gets healthy, with a one-minute trial.
    ok(&mut vm, "k8r config set TRIAL_TIMEOUT=1m");
    let staged = ok(&mut vm, "k8r update-image --url http://10.0.2.100/never/");
    assert!(staged.contains(never_id.as_str()), "{staged}");
    vm.send("k8r reinstall").expect("reinstall");
    vm.expect("K8R-RECOVERY: install verified", WAIT)
        .expect("the never-healthy build installs");
    let rollback = vm
        .expect("installing the previous build", WAIT)
        .expect("the agent gives up, recovery rolls back");
    assert!(
        rollback.contains(&format!("rollback: build {never_id} failed its trial")),
        "{rollback}"
    );
    vm.expect("K8R-RECOVERY: install verified", WAIT)
        .expect("the previous build installs");
    let commit = journal_line(&mut vm, COMMITTED);
    assert!(
        commit.contains(&format!("build {good_id} is healthy")),
        "{commit}"
    );
    let status = ok(&mut vm, "k8r status");
    assert!(
        status.contains(&format!(
            "trial:       build {good_id} committed (rolled back from {never_id})"
        )),
        "{status}"
    );
    vm.send("poweroff").expect("poweroff");
    vm.wait_for_poweroff(WAIT).expect("off");
    let p1 = fat_partition(&good.card, 1).expect("p1");
    let log = String::from_utf8(p1.read("k8r/install.log").expect("log")).expect("utf8");
    assert!(
        log.contains(&format!(
            "trial given up by the node agent: build {never_id} not healthy 60 s after boot: containerd"
        )),
        "the cause is kept: {log}"
    );
    let parts: Vec<(u8, u8)> = vm
        .boots()
        .iter()
        .map(|b| (b.request.partition, b.choice.partition))
        .collect();
    assert_eq!(
        parts,
        vec![(0, 1), (2, 2), (0, 2), (0, 1), (2, 2), (0, 1), (2, 2)],
        "install and trial, cut; power on: the working system; reinstall, trial; the agent's \
         reboot to recovery, rollback trial"
    );
}
