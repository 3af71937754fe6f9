//! Helpers for the node scenarios (QEMU, real systemd on the working system, the Kubernetes
//! stand-ins) and the demo: cards built from the systemd fixture and "flashed" onto a larger
//! SD card, boots with the guest network, and waits for the agent's console lines.

use std::path::Path;
use std::time::Duration;

use k8r_qemu::{HarnessError, Machine, MachineConfig, Profile};

use crate::http::Server;
use crate::{assemble_card, Built, BASE_2604_SYSTEMD};

/// Generous: TCG on two shared cores boots systemd in 20-100 s, and installs take their time.
pub const WAIT: Duration = Duration::from_secs(900);
/// One console command.
pub const CMD: Duration = Duration::from_secs(180);
/// The systemd fixture's marker, once multi-user.target is reached.
pub const SYSTEMD_UP: &str = "K8R-FIXTURE-ROOT: systemd up";
/// How much larger than the image the SD card is (the data partition grows into it).
pub const EXTRA_CARD: u64 = 256 << 20;

/// A card built from the systemd fixture with `extra` settings, written onto an SD card
/// [`EXTRA_CARD`] larger than the image.
pub fn node_card(test: &str, extra: &str) -> Built {
    let built = assemble_card(test, BASE_2604_SYSTEMD, extra);
    grow_card(&built.card, EXTRA_CARD);
    built
}

/// Makes the card file `extra` bytes larger (a larger SD card than the image).
pub fn grow_card(card: &Path, extra: u64) {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(card)
        .expect("open card");
    let len = file.metadata().expect("card").len();
    file.set_len(len + extra).expect("grow card");
}

/// The harness settings of a node: `virt`, the restricted guest network to `http_port`, and
/// test-only kernel command line tokens for the working system.
pub fn config(test: &str, card: &Path, http_port: u16, extra_cmdline: &str) -> MachineConfig {
    MachineConfig::new(test, card, Profile::Virt)
        .with_guest_http(http_port)
        .with_extra_cmdline(extra_cmdline)
}

/// Waits for `k8r bootstrap` to end (its last console line), then for the boot to settle
/// (`systemctl is-system-running --wait`: the cluster step does not hold up
/// `multi-user.target`, so the fixture's marker may come before or after it). Returns the
/// rest of the `bootstrap done:` line.
pub fn wait_bootstrap(vm: &mut Machine) -> Result<String, HarnessError> {
    vm.expect("k8r: bootstrap done:", WAIT)?;
    let done = vm.expect("\n", CMD)?;
    vm.run_command("systemctl is-system-running --wait", WAIT)?;
    Ok(done)
}

/// Runs a shell command; panics with its output unless it exits 0.
pub fn ok(vm: &mut Machine, command: &str) -> String {
    let (status, out) = vm.run_command(command, CMD).expect("command");
    assert_eq!(status, 0, "`{command}` failed: {out}");
    out
}

/// The port of a `http://127.0.0.1:PORT` URL.
pub fn port(url: &str) -> u16 {
    url.rsplit_once(':')
        .and_then(|(_, p)| p.trim_end_matches('/').parse().ok())
        .expect("port in the server URL")
}

/// Publishes each build's upgrade artefacts (`manifest.toml`, `image.img.xz`,
/// `boot.tar.xz`) under `www/<dir>/` and serves `www` from 127.0.0.1: the user's
/// `HTTP_IMAGE_URL` server, which a guest reaches as `http://10.0.2.100/<dir>/`.
pub fn serve_builds(www: &Path, builds: &[(&str, &Built)]) -> Server {
    for (dir, b) in builds {
        std::fs::create_dir_all(www.join(dir)).expect("www");
        for f in ["manifest.toml", "image.img.xz", "boot.tar.xz"] {
            std::fs::copy(b.images.join(f), www.join(dir).join(f)).expect("publish");
        }
    }
    Server::serve_dir(www).expect("server")
}
