//! Random power cuts, in QEMU with real systemd on the working system: the power is cut at a
//! moment chosen by a seeded generator in one of three phases, then switched on again, and
//! the node must end installed, verified and committed with no human step:
//!
//! - **install**: the recovery installer writing the working partitions (the first flash, or
//!   a `k8r reinstall` later), from its first line to the trial boot;
//! - **staging**: `k8r update-image` downloading and staging the other build over HTTP;
//! - **trial**: the trial boot of the other build, in its first 60 s after the installer's
//!   reboot (before the agent's commit, which came 17-74 s into the kernel's uptime here:
//!   these cuts end in a rollback);
//! - **commit**: the agent's commit of that trial, from the moment systemd starts
//!   `k8r-trial.service` (its health checks, the careful replace of `autoboot.txt`, the trial
//!   record) to a few seconds after it (these end on either build, by how far it got).
//!
//! After each trial the node is powered off cleanly and `fsck.fat -n` (p1, p2) and
//! `e2fsck -fn` (p3) must find nothing, the store's current build must verify, and the
//! node must be committed on one of the two builds. Trials cycle through the phases, starting
//! at the phase the seed picks, so runs with different seeds start in different phases.
//!
//! `K8R_SOAK_SEED` replays a run (the seed is printed first, and in every failure);
//! `K8R_SOAK_TRIALS` sets the number of trials (default 2: the suite's share; each trial
//! costs two or three boots).
//! `cargo xtask soak --trials N [--seed S]` runs many.

use std::time::{Duration, Instant};

use k8r_card::store::Store;
use k8r_qemu::Machine;
use k8r_tests::node::{config, node_card, ok, port, serve_builds, WAIT};
use k8r_tests::{assemble_card, fat_partition, fsck_partition, scratch, BASE_2604_SYSTEMD};

const JOIN: &str = "kubeadm join 10.0.0.1:6443 --token k8rcut.q7w8e9r0t1y2u3i4 --discovery-token-ca-cert-hash sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// The description of `k8r-trial.service` as systemd prints it when the unit starts.
const TRIAL_UNIT: &str = "k8r trial: commit this build once the node is healthy";

/// SplitMix64: small, seedable, and the same on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A duration in `[0, max)`, in 100 ms steps.
    fn within(&mut self, max: Duration) -> Duration {
        let steps = (max.as_millis() / 100).max(1);
        let steps = u64::try_from(steps).unwrap_or(u64::MAX);
        Duration::from_millis((self.next() % steps) * 100)
    }
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    Install,
    Staging,
    Trial,
    Commit,
}

const PHASES: [Phase; 4] = [Phase::Install, Phase::Staging, Phase::Trial, Phase::Commit];

/// How far into each phase a cut may land (the phase's length on an unloaded machine, with
/// room: a cut after the phase ended is a cut at a later point, which is fine too).
fn window(phase: Phase) -> Duration {
    Duration::from_secs(match phase {
        Phase::Install => 30,
        Phase::Staging => 20,
        Phase::Trial => 60,
        // From `k8r-trial.service` starting; its health checks and commit take seconds.
        Phase::Commit => 20,
    })
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// Waits until the working system is up and `k8r status` says committed; returns the
/// committed build.
fn settle(vm: &mut Machine, why: &str) -> String {
    vm.expect("K8R-FIXTURE-ROOT:", WAIT)
        .unwrap_or_else(|e| panic!("{why}: the working system never came up: {e}"));
    let (status, out) = vm
        .run_command(
            "until k8r status | grep -Eq '^trial: +build [^ ]+ committed'; do sleep 2; done; \
             k8r status | grep -E '^trial:'; systemctl is-system-running --wait",
            WAIT,
        )
        .unwrap_or_else(|e| panic!("{why}: never committed: {e}"));
    assert_eq!(status, 0, "{why}: {out}");
    out.split_whitespace()
        .skip_while(|w| *w != "build")
        .nth(1)
        .unwrap_or_else(|| panic!("{why}: no build in {out}"))
        .to_owned()
}

/// The store's current build, copied out of p1 and verified (image and boot archive against
/// the manifest). Returns its id.
fn verify_store(card: &std::path::Path, why: &str) -> String {
    let p1 = fat_partition(card, 1).expect("p1");
    let dir = scratch("power-cuts-store");
    let store = Store::new(&dir);
    let pointer = p1
        .read(&format!(
            "{}/{}",
            k8r_card::store::STORE_DIR,
            k8r_card::store::POINTER_FILE
        ))
        .unwrap_or_else(|e| panic!("{why}: no store pointer: {e}"));
    std::fs::create_dir_all(store.dir()).expect("store dir");
    std::fs::write(store.pointer_path(), &pointer).expect("pointer");
    let current = store.pointer().expect("pointer parses").current;
    let build_dir = store.build_dir(&current).expect("id");
    std::fs::create_dir_all(&build_dir).expect("build dir");
    for f in ["manifest.toml", "image.img.xz", "boot.tar.xz"] {
        let bytes = p1
            .read(&format!("{}/{current}/{f}", k8r_card::store::STORE_DIR))
            .unwrap_or_else(|e| panic!("{why}: current build {current} lacks {f}: {e}"));
        std::fs::write(build_dir.join(f), bytes).expect("copy");
    }
    let build = store.current().expect("current build opens");
    build
        .check_compressed()
        .unwrap_or_else(|e| panic!("{why}: current build {current}: {e}"));
    build
        .check_boot()
        .unwrap_or_else(|e| panic!("{why}: current build {current}: {e}"));
    current
}

#[test]
fn random_power_cuts_end_installed_verified_and_committed_with_clean_filesystems() {
    let seed = env_u64("K8R_SOAK_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_secs())
    });
    let trials = env_u64("K8R_SOAK_TRIALS").unwrap_or(2);
    eprintln!("power cuts: seed {seed}, {trials} trials (replay with K8R_SOAK_SEED={seed})");
    let mut rng = Rng(seed);

    let a = node_card("power-cuts", &format!("KUBEADM_JOIN_STRING=\"{JOIN}\"\n"));
    let b = assemble_card(
        "power-cuts-b",
        BASE_2604_SYSTEMD,
        "KERNEL_CMDLINE=\"k8r.test=second-build\"\n",
    );
    let ids = [a.report.build_id.clone(), b.report.build_id.clone()];
    assert_ne!(ids[0], ids[1]);
    let server = serve_builds(
        &a.dir.join("www"),
        &[(ids[0].as_str(), &a), (ids[1].as_str(), &b)],
    );
    let mut vm =
        Machine::start(config("power-cuts", &a.card, port(&server.url()), "")).expect("boot");
    let mut committed = ids[0].clone();
    for trial in 0..trials {
        let phase = PHASES[usize::try_from(seed.wrapping_add(trial) % 4).unwrap_or(0)];
        let delay = rng.within(window(phase));
        let why = format!("seed {seed}, trial {trial}: {phase:?}, cut {delay:?} in");
        eprintln!("power cuts: {why}");
        if trial > 0 {
            vm.power_on().expect("power on");
        }
        // The first trial's install phase cuts the first flash; every other trial starts
        // on the committed working system.
        if trial > 0 || !matches!(phase, Phase::Install) {
            settle(&mut vm, &why);
        }
        let other = if committed == ids[0] {
            &ids[1]
        } else {
            &ids[0]
        };
        match phase {
            Phase::Install => {
                if trial > 0 {
                    vm.send("k8r reinstall").expect("reinstall");
                }
                vm.expect("K8R-RECOVERY: card", WAIT)
                    .unwrap_or_else(|e| panic!("{why}: recovery: {e}"));
            }
            Phase::Staging => {
                vm.send(&format!(
                    "k8r update-image --url http://10.0.2.100/{other}/"
                ))
                .expect("update-image");
            }
            Phase::Trial | Phase::Commit => {
                ok(
                    &mut vm,
                    &format!("k8r update-image --url http://10.0.2.100/{other}/"),
                );
                vm.send("k8r reinstall").expect("reinstall");
                vm.expect("rebooting into the working system on trial", WAIT)
                    .unwrap_or_else(|e| panic!("{why}: the trial install: {e}"));
                if matches!(phase, Phase::Commit) {
                    vm.expect(TRIAL_UNIT, WAIT)
                        .unwrap_or_else(|e| panic!("{why}: the trial boot: {e}"));
                }
            }
        }
        let started = Instant::now();
        while started.elapsed() < delay {
            std::thread::sleep(Duration::from_millis(50));
        }
        vm.power_cut();
        vm.power_on().expect("power on");
        committed = settle(&mut vm, &why);
        assert!(ids.contains(&committed), "{why}: committed {committed}");
        let status = ok(&mut vm, "k8r status");
        assert!(
            status.contains("next boot:   partition 2 (this system)"),
            "{why}: {status}"
        );
        vm.send("poweroff").expect("poweroff");
        vm.wait_for_poweroff(WAIT).expect("off");
        for (n, fat) in [(1, true), (2, true), (3, false)] {
            let (clean, fsck) = fsck_partition(&a.card, n, fat);
            assert!(clean, "{why}: p{n} is not clean: {fsck}");
        }
        let current = verify_store(&a.card, &why);
        assert!(ids.contains(&current), "{why}: store current {current}");
        eprintln!("power cuts: {why}: committed {committed}, store current {current}, clean");
    }
}
