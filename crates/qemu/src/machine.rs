//! Booting a card in QEMU the way a Pi would: the firmware model picks kernel, initramfs and
//! command line from the card's own files; a guest reboot ends QEMU (`-no-reboot`) and the
//! harness reads the card again and boots the next run, honouring the reboot request the guest
//! printed (see [`crate::protocol`]).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use k8r_boot_config::firmware::{select_boot, BootChoice, BootRequest, Eeprom};
use k8r_boot_config::Board;

use crate::assets::{target_dir, MissingAsset};
use crate::card::{Card, CardError};
use crate::console::{Console, WaitResult};
use crate::protocol::{classify_run, RunEnd};
use crate::rescue;

/// Which emulated machine runs the card.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// `-M virt -cpu cortex-a72`, the card as a virtio disk (`/dev/vda`). Fast. The firmware
    /// model runs as for a Pi 4; QEMU makes its own device tree.
    Virt,
    /// `-M raspi3b`: the card on the emulated SD controller (`/dev/mmcblk0`), the DTB chosen
    /// from the card, the bcm2835 watchdog. QEMU wants a power-of-two card size here.
    Raspi3b,
}

impl Profile {
    /// The board the firmware model runs as.
    pub fn board(self) -> Board {
        match self {
            Profile::Virt => Board::Pi4,
            Profile::Raspi3b => Board::Pi3,
        }
    }

    /// The console device the firmware's `serial0` alias stands for on this machine. On a real
    /// Pi the firmware rewrites `console=serial0` in the command line to the primary UART
    /// (pi-boot.md §6, DOC-UART); QEMU's first serial port is the PL011 on `virt`, and on
    /// raspi3b the harness wires stdio to the mini UART (the primary UART of a Pi 3, `ttyS1`
    /// with Debian's device tree, whose PL011 is held by the Bluetooth node).
    pub fn serial0(self) -> &'static str {
        match self {
            Profile::Virt => "ttyAMA0",
            Profile::Raspi3b => "ttyS1",
        }
    }
}

/// The variable that sets how many virtual CPUs a `virt` guest gets (1-8).
pub const CPUS_VAR: &str = "K8R_QEMU_CPUS";

/// A `virt` guest's virtual CPUs: `$K8R_QEMU_CPUS` when it holds 1-8, else 2.
pub fn default_cpus() -> u8 {
    cpus_from(std::env::var(CPUS_VAR).ok().as_deref())
}

fn cpus_from(value: Option<&str>) -> u8 {
    value
        .and_then(|v| v.trim().parse::<u8>().ok())
        .filter(|n| (1..=8).contains(n))
        .unwrap_or(2)
}

/// What to boot and how.
#[derive(Debug, Clone)]
pub struct MachineConfig {
    /// Names the run directory and transcript (`target/qemu/<name>/`).
    pub name: String,
    /// The SD card image (written by the guest).
    pub card: PathBuf,
    /// Emulated machine.
    pub profile: Profile,
    /// Guest RAM.
    pub memory_mib: u32,
    /// Virtual CPUs of a `virt` guest (raspi3b always has its four): [`default_cpus`].
    pub cpus: u8,
    /// More disks for the guest (virtio on `virt`; not available on raspi3b).
    pub extra_disks: Vec<PathBuf>,
    /// The EEPROM settings the firmware model uses.
    pub eeprom: Eeprom,
    /// Copy the console to stdout as it arrives (for the demo).
    pub echo: bool,
    /// The first boot's request (a fresh power-on: partition 0, no tryboot).
    pub first_request: BootRequest,
    /// A QEMU `blkdebug` rules file placed between the guest and the card (virt only): it
    /// injects I/O errors, e.g. to play a failing SD card.
    pub blkdebug: Option<PathBuf>,
    /// A network for the guest that reaches one host server and nothing else (`virt` only;
    /// default `None`: no NIC at all). With `Some(port)` the guest gets a virtio NIC on QEMU's
    /// user network in `restrict=on` mode (DHCP: 10.0.2.15/24, no default route) where
    /// `10.0.2.100:80` is forwarded to the host's `127.0.0.1:port`, so the guest fetches
    /// `http://10.0.2.100/...` from a test's loopback server. Each guest connection is relayed
    /// by its own `socat` process on the host (`cargo xtask setup` installs it). Every other
    /// address and port is refused or unreachable (`docs/harness.md`).
    pub guest_http: Option<u16>,
    /// Test-only kernel command-line tokens (space separated; default empty) that the harness
    /// appends to every boot of the *working system*, i.e. every boot whose firmware choice is
    /// not partition 1 (on an assembled card partition 1 is the recovery partition), for test
    /// doubles in the guest to read (e.g. `k8r.standin.join=stale-node:2`). A real Pi never gets
    /// them: they are not on the card.
    pub extra_cmdline: String,
}

impl MachineConfig {
    /// Defaults for `card` on `profile`.
    pub fn new(name: impl Into<String>, card: impl Into<PathBuf>, profile: Profile) -> Self {
        Self {
            name: name.into(),
            card: card.into(),
            profile,
            memory_mib: 1024,
            cpus: default_cpus(),
            extra_disks: Vec::new(),
            eeprom: Eeprom::default(),
            echo: false,
            first_request: BootRequest::default(),
            blkdebug: None,
            guest_http: None,
            extra_cmdline: String::new(),
        }
    }

    /// With [`MachineConfig::guest_http`] set to `port`.
    pub fn with_guest_http(mut self, port: u16) -> Self {
        self.guest_http = Some(port);
        self
    }

    /// With [`MachineConfig::extra_cmdline`] set to `tokens`.
    pub fn with_extra_cmdline(mut self, tokens: impl Into<String>) -> Self {
        self.extra_cmdline = tokens.into();
        self
    }

    /// The command line QEMU gets for a boot of `partition` whose card says `cmdline`:
    /// `console=serial0` rewritten to the machine's UART, then [`MachineConfig::extra_cmdline`]
    /// if the boot is not from partition 1.
    pub fn kernel_cmdline(&self, partition: u8, cmdline: &str) -> String {
        let mut line = cmdline.trim_end().replace(
            "console=serial0",
            &format!("console={}", self.profile.serial0()),
        );
        let extra = self.extra_cmdline.trim();
        if partition != 1 && !extra.is_empty() {
            line.push(' ');
            line.push_str(extra);
        }
        line
    }

    /// The QEMU arguments of the guest network ([`MachineConfig::guest_http`]).
    pub fn network_args(&self) -> Vec<String> {
        match self.guest_http {
            None => vec!["-nic".into(), "none".into()],
            Some(port) => vec![
                "-netdev".into(),
                format!(
                    "user,id=net0,restrict=on,guestfwd=tcp:{GUEST_HTTP_ADDR}:80-cmd:{RELAY} - TCP:127.0.0.1:{port}"
                ),
                // romfile=: the PXE option ROM is for firmware boots; -kernel needs none, and
                // Debian ships it in another package (ipxe-qemu).
                "-device".into(),
                "virtio-net-pci,netdev=net0,romfile=".into(),
            ],
        }
    }
}

/// Where the guest reaches [`MachineConfig::guest_http`]'s server (port 80).
pub const GUEST_HTTP_ADDR: &str = "10.0.2.100";

/// The per-connection relay QEMU spawns for the forwarded address: `socat` between the
/// connection (its stdin/stdout) and the host server. A `tcp:` character device in its place
/// would be one connection opened when QEMU starts and shared by every guest connection (the
/// guest never sees the server close it). `-t 30`: after one side ends, up to 30 s for the
/// other (a client that half-closes still gets a slow reply).
const RELAY: &str = "socat -t 30";

/// One boot the harness made.
#[derive(Debug, Clone)]
pub struct BootRecord {
    /// What the previous run asked for.
    pub request: BootRequest,
    /// What the firmware model chose.
    pub choice: BootChoice,
}

/// Harness failures; each names the transcript.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// Setup has not fetched the kernel assets.
    #[error(transparent)]
    Asset(#[from] MissingAsset),
    /// The card could not be read.
    #[error(transparent)]
    Card(#[from] CardError),
    /// The firmware model found nothing to boot.
    #[error(
        "the firmware would not boot {card}: {reason} (trace: {trace}); transcript {transcript}"
    )]
    NoBoot {
        /// The card.
        card: PathBuf,
        /// Why.
        reason: String,
        /// The model's steps.
        trace: String,
        /// Transcript file.
        transcript: PathBuf,
    },
    /// Local file trouble.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// QEMU could not be started.
    #[error("cannot start {program}: {source} (run `cargo xtask setup`)")]
    Spawn {
        /// The QEMU binary.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// A pattern did not show up in time.
    #[error("timed out after {waited:?} waiting for {pattern:?} on the console; last lines: {tail}; transcript {transcript}")]
    Timeout {
        /// The pattern.
        pattern: String,
        /// How long.
        waited: Duration,
        /// The end of the transcript.
        tail: String,
        /// Transcript file.
        transcript: PathBuf,
    },
    /// The machine stopped while a pattern was awaited.
    #[error("the guest {how} while waiting for {pattern:?}; last lines: {tail}; transcript {transcript}")]
    Stopped {
        /// The pattern.
        pattern: String,
        /// "powered off" or "stopped without a reboot or power-off message".
        how: &'static str,
        /// The end of the transcript.
        tail: String,
        /// Transcript file.
        transcript: PathBuf,
    },
    /// The guest's systemd gave up on the boot and sits in emergency or rescue mode, so what
    /// was awaited will never come.
    #[error("the guest's systemd gave up on this boot (emergency or rescue mode) while waiting for {pattern:?}: {why}; transcript {transcript}")]
    GaveUp {
        /// The pattern.
        pattern: String,
        /// The units systemd failed on, as its console said ([`crate::rescue::gave_up`]).
        why: String,
        /// Transcript file.
        transcript: PathBuf,
    },
    /// The console is gone (QEMU not running).
    #[error("cannot write to the guest console: {0}")]
    Console(std::io::Error),
    /// The configuration asks for something this profile or host cannot do.
    #[error("{0}")]
    Unsupported(String),
}

/// A running (or stopped) emulated Pi with its card and console.
#[derive(Debug)]
pub struct Machine {
    cfg: MachineConfig,
    console: Console,
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    run_start: usize,
    cursor: usize,
    next_request: BootRequest,
    boots: Vec<BootRecord>,
    dir: PathBuf,
    powered_off: bool,
    commands: u32,
}

/// Never matches (used to wait for the end of a run).
const NEVER: &str = "\u{0}k8r-qemu-never\u{0}";

impl Machine {
    /// Powers the machine on: reads the card, runs the firmware model, starts QEMU.
    pub fn start(cfg: MachineConfig) -> Result<Machine, HarnessError> {
        if cfg.guest_http.is_some() && !on_path("socat") {
            return Err(HarnessError::Unsupported(
                "guest_http relays connections through socat, which is not installed (run \
                 `cargo xtask setup`)"
                    .into(),
            ));
        }
        let dir = target_dir().join("qemu").join(&cfg.name);
        std::fs::create_dir_all(&dir).map_err(|source| HarnessError::Io {
            path: dir.clone(),
            source,
        })?;
        let mut machine = Machine {
            console: Console::new(cfg.echo).with_live_file(&dir.join("console.log")),
            next_request: cfg.first_request,
            cfg,
            child: None,
            stdin: None,
            run_start: 0,
            cursor: 0,
            boots: Vec::new(),
            dir,
            powered_off: false,
            commands: 0,
        };
        machine.boot()?;
        Ok(machine)
    }

    /// Replaces [`MachineConfig::extra_cmdline`] from the next boot on (a test arms a
    /// failpoint for one boot, then clears it).
    pub fn set_extra_cmdline(&mut self, tokens: impl Into<String>) {
        self.cfg.extra_cmdline = tokens.into();
    }

    /// The boots made so far, oldest first.
    pub fn boots(&self) -> &[BootRecord] {
        &self.boots
    }

    /// The whole console transcript so far (guest output and harness notes).
    pub fn transcript(&self) -> String {
        self.console.text_from(0)
    }

    /// Where the transcript is written.
    pub fn transcript_path(&self) -> PathBuf {
        self.dir.join("console.log")
    }

    fn save_transcript(&self) -> PathBuf {
        let path = self.transcript_path();
        let _ = std::fs::write(&path, self.console.text_from(0));
        path
    }

    fn tail(&self) -> String {
        let text = self
            .console
            .text_from(self.console.len().saturating_sub(2000));
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(8)..].join(" | ")
    }

    fn boot(&mut self) -> Result<(), HarnessError> {
        let request = std::mem::take(&mut self.next_request);
        let card = Card::open(&self.cfg.card)?;
        let choice = select_boot(
            &card.view(),
            request,
            self.cfg.profile.board(),
            &self.cfg.eeprom,
        )
        .map_err(|e| HarnessError::NoBoot {
            card: self.cfg.card.clone(),
            reason: e.to_string(),
            trace: String::new(),
            transcript: self.save_transcript(),
        })?;
        let n = self.boots.len() + 1;
        self.console.note(&format!(
            "boot {n}: request partition={} tryboot={}; firmware chose partition {} {} kernel {} initramfs [{}] dtb {}",
            request.partition,
            u8::from(request.tryboot),
            choice.partition,
            choice.config_file,
            choice.kernel,
            choice.initramfs.join(","),
            choice.dtb.as_deref().unwrap_or("-"),
        ));
        let kernel = self.extract(
            &card,
            choice.partition,
            std::slice::from_ref(&choice.kernel),
            "kernel",
        )?;
        let initrd = if choice.initramfs.is_empty() {
            None
        } else {
            Some(self.extract(&card, choice.partition, &choice.initramfs, "initrd")?)
        };
        let cmdline = self.cfg.kernel_cmdline(choice.partition, &choice.cmdline);
        if choice.partition != 1 && !self.cfg.extra_cmdline.trim().is_empty() {
            self.console.note(&format!(
                "boot {n}: extra command line (test only): {}",
                self.cfg.extra_cmdline.trim()
            ));
        }
        let mut cmd = Command::new("qemu-system-aarch64");
        match self.cfg.profile {
            Profile::Virt => {
                cmd.args(["-M", "virt", "-cpu", "cortex-a72"])
                    .args(["-smp", &self.cfg.cpus.to_string()])
                    .args(["-nodefaults", "-serial", "stdio"])
                    .args(self.cfg.network_args());
                let mut drives = vec![self.cfg.card.clone()];
                drives.extend(self.cfg.extra_disks.iter().cloned());
                for (i, disk) in drives.iter().enumerate() {
                    let spec = match (&self.cfg.blkdebug, i) {
                        (Some(rules), 0) => {
                            blkdebug_arg(disk, rules, &format!("if=none,id=disk{i}"))
                        }
                        _ => drive_arg(disk, &format!("if=none,id=disk{i}")),
                    };
                    cmd.arg("-drive")
                        .arg(spec)
                        .args(["-device", &format!("virtio-blk-pci,drive=disk{i}")]);
                }
            }
            Profile::Raspi3b => {
                if self.cfg.guest_http.is_some() {
                    return Err(HarnessError::Unsupported(
                        "guest_http needs the virt profile (raspi3b has no virtio NIC)".into(),
                    ));
                }
                let dtb_name = choice.dtb.clone().ok_or_else(|| HarnessError::NoBoot {
                    card: self.cfg.card.clone(),
                    reason: "no device tree on the boot partition".into(),
                    trace: choice.trace.join("; "),
                    transcript: self.save_transcript(),
                })?;
                let dtb = self.extract(&card, choice.partition, &[dtb_name], "dtb")?;
                cmd.args(["-M", "raspi3b", "-serial", "null", "-serial", "stdio"])
                    .arg("-dtb")
                    .arg(dtb)
                    .arg("-drive")
                    .arg(drive_arg(&self.cfg.card, "if=sd"));
            }
        }
        cmd.args(["-m", &self.cfg.memory_mib.to_string()])
            .args(["-display", "none", "-monitor", "none", "-no-reboot"])
            .arg("-kernel")
            .arg(&kernel)
            .arg("-append")
            .arg(&cmdline);
        if let Some(initrd) = &initrd {
            cmd.arg("-initrd").arg(initrd);
        }
        let stderr_path = self.dir.join(format!("qemu-stderr-{n}.log"));
        let stderr = File::create(&stderr_path).map_err(|source| HarnessError::Io {
            path: stderr_path.clone(),
            source,
        })?;
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr);
        log::debug!("starting {cmd:?}");
        let mut child = cmd.spawn().map_err(|source| HarnessError::Spawn {
            program: "qemu-system-aarch64".into(),
            source,
        })?;
        self.stdin = child.stdin.take();
        if let Some(out) = child.stdout.take() {
            self.console.attach(out);
        }
        self.run_start = self.console.len();
        self.child = Some(child);
        self.powered_off = false;
        self.boots.push(BootRecord { request, choice });
        Ok(())
    }

    /// Copies files from the card's partition into the run directory, concatenated in order
    /// (the firmware concatenates several initramfs files in memory; DOC-BOOT).
    fn extract(
        &self,
        card: &Card,
        partition: u8,
        files: &[String],
        what: &str,
    ) -> Result<PathBuf, HarnessError> {
        let n = self.boots.len() + 1;
        let out = self.dir.join(format!("{what}-{n}"));
        let mut data = Vec::new();
        for file in files {
            let bytes = card
                .read(partition, file)
                .ok_or_else(|| HarnessError::NoBoot {
                    card: self.cfg.card.clone(),
                    reason: format!("partition {partition} has no readable {file}"),
                    trace: String::new(),
                    transcript: self.save_transcript(),
                })?;
            data.extend_from_slice(&bytes);
        }
        std::fs::write(&out, data).map_err(|source| HarnessError::Io {
            path: out.clone(),
            source,
        })?;
        Ok(out)
    }

    fn run_over(child: &mut Option<Child>, console: &Console, runs: usize) -> bool {
        let exited = match child {
            Some(c) => matches!(c.try_wait(), Ok(Some(_)) | Err(_)),
            None => true,
        };
        exited && console.closed_runs() >= runs as u64
    }

    /// Handles the end of a run: a reboot boots the card again. Returns `Ok(None)` if the
    /// machine is running again, `Ok(Some(end))` if it stopped.
    fn after_run(&mut self) -> Result<Option<RunEnd>, HarnessError> {
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
        self.stdin = None;
        let end = classify_run(&split_kernel_records(
            &self.console.text_from(self.run_start),
        ));
        match end {
            RunEnd::Reboot(request) => {
                self.console.note(&format!(
                    "guest rebooted (request partition={} tryboot={})",
                    request.partition,
                    u8::from(request.tryboot)
                ));
                self.next_request = request;
                self.boot()?;
                Ok(None)
            }
            RunEnd::PowerOff => {
                self.console.note("guest powered off");
                self.powered_off = true;
                Ok(Some(end))
            }
            RunEnd::Other => {
                self.console
                    .note("QEMU ended without a reboot or power-off message");
                self.powered_off = true;
                Ok(Some(end))
            }
        }
    }

    /// Waits for `pattern` on the console (after the previous match), following reboots.
    /// Returns the console text from the previous match to the end of this one.
    pub fn expect(&mut self, pattern: &str, timeout: Duration) -> Result<String, HarnessError> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.powered_off {
                return Err(self.stopped(pattern, "is off"));
            }
            let console = self.console.clone();
            let runs = self.boots.len();
            let run_start = self.run_start;
            let child = &mut self.child;
            match console.wait_for(pattern, self.cursor, deadline, |c| {
                Self::run_over(child, c, runs) || rescue::gave_up(&c.text_from(run_start)).is_some()
            }) {
                WaitResult::Found(end) => {
                    let text = self.console.text_from(self.cursor);
                    let take = end.saturating_sub(self.cursor);
                    self.cursor = end;
                    return Ok(
                        String::from_utf8_lossy(&text.as_bytes()[..take.min(text.len())])
                            .into_owned(),
                    );
                }
                WaitResult::TimedOut => {
                    return Err(HarnessError::Timeout {
                        pattern: pattern.to_owned(),
                        waited: timeout,
                        tail: self.tail(),
                        transcript: self.save_transcript(),
                    })
                }
                WaitResult::Stopped => {
                    if let Some(why) = self.gave_up() {
                        return Err(HarnessError::GaveUp {
                            pattern: pattern.to_owned(),
                            why,
                            transcript: self.save_transcript(),
                        });
                    }
                    self.after_stop(pattern)?;
                }
            }
        }
    }

    /// After a run stopped while `pattern` was awaited: `Ok` when the machine booted again.
    fn after_stop(&mut self, pattern: &str) -> Result<(), HarnessError> {
        match self.after_run()? {
            None => Ok(()),
            Some(RunEnd::PowerOff) => Err(self.stopped(pattern, "powered off")),
            Some(_) => Err(self.stopped(pattern, "stopped without a reboot or power-off message")),
        }
    }

    /// Why this run's systemd gave up on the boot, once it has ([`rescue::gave_up`]).
    fn gave_up(&self) -> Option<String> {
        rescue::gave_up(&self.console.text_from(self.run_start))
    }

    fn stopped(&self, pattern: &str, how: &'static str) -> HarnessError {
        HarnessError::Stopped {
            pattern: pattern.to_owned(),
            how,
            tail: self.tail(),
            transcript: self.save_transcript(),
        }
    }

    /// Types `line` and Enter on the console.
    pub fn send(&mut self, line: &str) -> Result<(), HarnessError> {
        let stdin = self.stdin.as_mut().ok_or_else(|| {
            HarnessError::Console(std::io::Error::new(
                std::io::ErrorKind::NotConnected,
                "QEMU is not running",
            ))
        })?;
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|()| stdin.flush())
            .map_err(HarnessError::Console)
    }

    /// Runs a shell command on the guest's console shell and returns its exit status and
    /// output. The shell prints a begin marker before the command and an end marker with `$?`
    /// after it (`echo "K8R""-BEGIN-n"; COMMAND; echo "K8R""-END-n $?"`); the markers are
    /// assembled by the shell, so the echo of the typed line never matches them, and the output
    /// is what lies between them, whatever the tty echo and the prompt did around it.
    pub fn run_command(
        &mut self,
        command: &str,
        timeout: Duration,
    ) -> Result<(i32, String), HarnessError> {
        self.commands += 1;
        let n = self.commands;
        self.send(&format!(
            "echo \"K8R\"\"-BEGIN-{n}\"; {command}; echo \"K8R\"\"-END-{n} $?\""
        ))?;
        let begin = format!("K8R-BEGIN-{n}");
        self.expect(&begin, timeout)?;
        self.expect("\n", timeout)?;
        let marker = format!("K8R-END-{n} ");
        let text = self.expect(&marker, timeout)?;
        let rest = self.expect("\n", Duration::from_secs(10))?;
        let status = rest.trim().parse::<i32>().unwrap_or(-1);
        let body = text.trim_end_matches(marker.as_str()).replace('\r', "");
        Ok((status, without_kernel_records(&body)))
    }

    /// Waits until the guest powers off, following reboots on the way.
    pub fn wait_for_poweroff(&mut self, timeout: Duration) -> Result<(), HarnessError> {
        match self.expect(NEVER, timeout) {
            Err(HarnessError::Stopped {
                how: "powered off", ..
            }) => Ok(()),
            Err(HarnessError::Stopped { how: "is off", .. }) => Ok(()),
            Err(e) => Err(e),
            Ok(_) => unreachable_never(),
        }
    }

    /// Cuts the power: kills QEMU at once. The next [`Machine::power_on`] starts from a fresh
    /// power-on (no reboot request, no tryboot flag), as on a real Pi.
    pub fn power_cut(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.stdin = None;
        self.console.note("power cut");
        self.next_request = BootRequest::default();
        self.powered_off = true;
    }

    /// Powers the machine on again after [`Machine::power_cut`] or a power-off.
    pub fn power_on(&mut self) -> Result<(), HarnessError> {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Wait for the reader of the old run to reach EOF so run accounting stays in step.
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.console.closed_runs() < self.boots.len() as u64 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.cursor = self.console.len();
        self.boot()
    }
}

/// The console text with every kernel record on a line of its own. The kernel prints a record
/// wherever the console's cursor is, so a record (a reboot request written to `/dev/kmsg`, say)
/// can follow a shell prompt on the same physical line; each record starts with its
/// `[seconds.micros] ` timestamp, and a line break is put before a timestamp found mid-line.
pub fn split_kernel_records(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    for line in text.split_inclusive('\n') {
        let mut rest = line;
        // A timestamp at the start of a line is already alone: search from offset 1.
        while let Some(at) = find_timestamp(rest, 1) {
            out.push_str(&rest[..at]);
            out.push('\n');
            rest = &rest[at..];
        }
        out.push_str(rest);
    }
    out
}

/// The text with every kernel record taken out. A command's output shares the console with the
/// kernel, and a record printed while the command runs (a journal line forwarded to the
/// console, a reboot request) lands inside it, at a line start or mid-line; a record runs from
/// its timestamp to the end of its line, so cutting that span leaves the command's own bytes
/// as it wrote them.
pub fn without_kernel_records(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = find_timestamp(rest, 0) {
        out.push_str(&rest[..at]);
        rest = match rest[at..].find('\n') {
            Some(end) => &rest[at + end + 1..],
            None => "",
        };
    }
    out.push_str(rest);
    out
}

/// The byte offset, at `from` or later, of a kernel timestamp (`[`, spaces, digits, `.`,
/// digits, `]`) in `s`.
fn find_timestamp(s: &str, from: usize) -> Option<usize> {
    let bytes = s.as_bytes();
    let digits = |j: &mut usize| {
        let start = *j;
        while bytes.get(*j).is_some_and(u8::is_ascii_digit) {
            *j += 1;
        }
        *j > start
    };
    let mut search = from;
    while let Some(p) = s.get(search..).and_then(|tail| tail.find('[')) {
        let at = search + p;
        search = at + 1;
        let mut j = at + 1;
        while bytes.get(j) == Some(&b' ') {
            j += 1;
        }
        if !digits(&mut j) || bytes.get(j) != Some(&b'.') {
            continue;
        }
        j += 1;
        if digits(&mut j) && bytes.get(j) == Some(&b']') {
            return Some(at);
        }
    }
    None
}

/// Whether `program` is an executable file in a `$PATH` directory.
fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

fn unreachable_never() -> Result<(), HarnessError> {
    Err(HarnessError::Console(std::io::Error::other(
        "the never-matching pattern matched",
    )))
}

fn drive_arg(path: &Path, rest: &str) -> std::ffi::OsString {
    let mut s = std::ffi::OsString::from("file=");
    // QEMU's option syntax doubles commas inside values.
    s.push(path.as_os_str().to_string_lossy().replace(',', ",,"));
    s.push(",format=raw,");
    s.push(rest);
    s
}

fn blkdebug_arg(path: &Path, rules: &Path, rest: &str) -> std::ffi::OsString {
    let esc = |p: &Path| p.to_string_lossy().replace(',', ",,");
    std::ffi::OsString::from(format!(
        "driver=raw,file.driver=blkdebug,file.config={},file.image.driver=file,file.image.filename={},{rest}",
        esc(rules),
        esc(path)
    ))
}

impl Drop for Machine {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.save_transcript();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_cpus_come_from_the_variable_within_1_to_8() {
        assert_eq!(cpus_from(None), 2);
        assert_eq!(cpus_from(Some("1")), 1);
        assert_eq!(cpus_from(Some(" 4 ")), 4);
        for bad in ["0", "9", "two", ""] {
            assert_eq!(cpus_from(Some(bad)), 2, "{bad:?}");
        }
    }

    #[test]
    fn extra_cmdline_goes_only_to_boots_not_from_partition_1() {
        let cfg = MachineConfig::new("t", "card.img", Profile::Virt)
            .with_extra_cmdline(" k8r.standin.join=stale-node:2 ");
        let card = "console=serial0,115200 root=LABEL=writable rootwait\n";
        assert_eq!(
            cfg.kernel_cmdline(1, card),
            "console=ttyAMA0,115200 root=LABEL=writable rootwait",
            "partition 1 (recovery on an assembled card) never gets it"
        );
        for partition in [2, 3] {
            assert_eq!(
                cfg.kernel_cmdline(partition, card),
                "console=ttyAMA0,115200 root=LABEL=writable rootwait k8r.standin.join=stale-node:2"
            );
        }
        let plain = MachineConfig::new("t", "card.img", Profile::Raspi3b);
        assert_eq!(
            plain.kernel_cmdline(2, card),
            "console=ttyS1,115200 root=LABEL=writable rootwait"
        );
    }

    #[test]
    fn command_output_loses_the_kernel_records_printed_into_it() {
        // As seen on a master: the agent's commit line, forwarded to the console, landed in
        // the output of `cat /etc/machine-id; sha256sum …`.
        let body = "bf29\n[   30.754991] k8r[220]: k8r: build x is healthy\n[   30.759244] k8r[220]: trial\n95fb  key\n";
        assert_eq!(without_kernel_records(body), "bf29\n95fb  key\n");
        // Mid-line: the command's bytes on either side join up again.
        assert_eq!(without_kernel_records("abc[ 1.5] rec\ndef\n"), "abcdef\n");
        // Cut off at the end; and text that only looks a bit like a timestamp stays.
        assert_eq!(without_kernel_records("a\n[ 2.0] par"), "a\n");
        for same in ["echo [1] [a.b] [1.] x\n", "a [ 1.5 ] b\n", "plain\n"] {
            assert_eq!(without_kernel_records(same), same);
        }
    }

    #[test]
    fn kernel_records_after_a_prompt_get_a_line_of_their_own() {
        let text = "k8r-reboot-to 2\r\nroot@k8r-fixture:~# [  154.862628] k8r-reboot: partition=2 tryboot=0\r\nnext\n";
        let split = split_kernel_records(text);
        assert_eq!(
            split,
            "k8r-reboot-to 2\r\nroot@k8r-fixture:~# \n[  154.862628] k8r-reboot: partition=2 tryboot=0\r\nnext\n"
        );
        match classify_run(&format!("{split}[  158.6] reboot: Restarting system\n")) {
            RunEnd::Reboot(r) => assert_eq!((r.partition, r.tryboot), (2, false)),
            other => panic!("{other:?}"),
        }
        // Already alone, or not a timestamp: unchanged.
        for same in [
            "[    1.000000] hello\n",
            "echo [1] [a.b] [1.] x\n",
            "a [ 1.5 ] b\n",
        ] {
            assert_eq!(split_kernel_records(same), same);
        }
        assert_eq!(
            split_kernel_records("x[ 1.5] a[ 2.5] b\n"),
            "x\n[ 1.5] a\n[ 2.5] b\n"
        );
    }

    #[test]
    fn guest_http_forwards_one_address_on_a_restricted_user_network() {
        let cfg = MachineConfig::new("t", "card.img", Profile::Virt);
        assert_eq!(cfg.network_args(), ["-nic", "none"], "no NIC by default");
        let args = cfg.with_guest_http(8123).network_args();
        assert_eq!(args.len(), 4);
        assert_eq!(args[0], "-netdev");
        let netdev = &args[1];
        assert!(netdev.starts_with("user,id=net0,restrict=on,"), "{netdev}");
        assert!(
            netdev.ends_with(",guestfwd=tcp:10.0.2.100:80-cmd:socat -t 30 - TCP:127.0.0.1:8123"),
            "{netdev}"
        );
        assert!(!netdev.contains("hostfwd"), "{netdev}");
        assert_eq!(
            args[2..],
            ["-device", "virtio-net-pci,netdev=net0,romfile="]
        );
    }
}
