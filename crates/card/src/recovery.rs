//! The recovery partition's files, by path relative to its root, and the operations on a
//! mounted recovery partition that the installer and the node agent share.
//!
//! ```text
//! autoboot.txt              the firmware's partition switch (careful replace only)
//! config.txt, cmdline.txt   the recovery system's own boot files (builder)
//! k8r-recovery.img          the recovery initramfs: the installer as /init
//! k8r/images/…              the image store (crate::store)
//! k8r/node/variables.cfg    this node's own settings (builder, `inject`, `k8r config set`)
//! k8r/node/user-data        this node's cloud-init user-data (login password)
//! k8r/install-state         the install attempt record (crate::install_state)
//! k8r/install.log           the bounded install log (crate::install_log)
//! k8r/trial                 the trial record of the last install (crate::trial)
//! k8r/trusted-keys          the signing keys this card trusts (crate::trust)
//! ```
//!
//! Every write here is a careful replace: a power cut leaves the old file or the new one.

use std::io;
use std::path::{Path, PathBuf};

use k8r_boot_config::autoboot::Autoboot;

use crate::install_log;
use crate::install_state::InstallState;
use crate::layout::Part;
use crate::replace::{careful_replace, ReplaceError};
use crate::store::{Build, Store, StoreError};
use crate::trial::Trial;
use crate::trust::{self, CardTrust, TrustError};
use k8r_manifest::signature::Verdict;

/// The firmware's partition switch, at the top of the recovery partition.
pub const AUTOBOOT_FILE: &str = "autoboot.txt";
/// k8r's own directory on the recovery partition.
pub const K8R_DIR: &str = "k8r";
/// The install attempt record's name in [`K8R_DIR`].
pub const INSTALL_STATE_FILE: &str = "install-state";
/// The trial record's name in [`K8R_DIR`].
pub const TRIAL_FILE: &str = "trial";
/// The install log's name in [`K8R_DIR`].
pub const INSTALL_LOG_FILE: &str = "install.log";
/// The recovery initramfs file.
pub const RECOVERY_INITRAMFS: &str = "k8r-recovery.img";
/// This node's own settings, beside the image store.
pub const NODE_DIR: &str = "k8r/node";
/// The node's `variables.cfg` in [`NODE_DIR`].
pub const NODE_VARIABLES: &str = "variables.cfg";
/// The node's cloud-init `user-data` in [`NODE_DIR`].
pub const NODE_USER_DATA: &str = "user-data";

/// A mounted recovery partition.
#[derive(Debug, Clone)]
pub struct Recovery {
    root: PathBuf,
}

impl Recovery {
    /// The recovery partition mounted at `root`.
    pub fn new(root: &Path) -> Recovery {
        Recovery {
            root: root.to_path_buf(),
        }
    }

    /// The mount point.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The image store.
    pub fn store(&self) -> Store {
        Store::new(&self.root)
    }

    fn k8r_dir(&self) -> PathBuf {
        self.root.join(K8R_DIR)
    }

    /// The install record's path.
    pub fn install_state_path(&self) -> PathBuf {
        self.k8r_dir().join(INSTALL_STATE_FILE)
    }

    /// The install log's path.
    pub fn install_log_path(&self) -> PathBuf {
        self.k8r_dir().join(INSTALL_LOG_FILE)
    }

    /// Reads the install record; a missing or unreadable one is the empty record (a torn
    /// record must never block recovery), with the reason among the warnings.
    pub fn install_state(&self) -> (InstallState, Vec<String>) {
        match std::fs::read(self.install_state_path()) {
            Ok(bytes) => InstallState::parse_with_warnings(&String::from_utf8_lossy(&bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => (InstallState::default(), Vec::new()),
            Err(e) => (
                InstallState::default(),
                vec![format!(
                    "{}: {e}; starting from 0 attempts",
                    self.install_state_path().display()
                )],
            ),
        }
    }

    /// Writes the install record.
    ///
    /// # Errors
    /// The careful replace failed.
    pub fn write_install_state(&self, state: &InstallState) -> Result<(), ReplaceError> {
        self.ensure_k8r_dir()?;
        careful_replace(
            &self.k8r_dir(),
            INSTALL_STATE_FILE,
            state.render().as_bytes(),
        )
    }

    /// The trial record's path.
    pub fn trial_path(&self) -> PathBuf {
        self.k8r_dir().join(TRIAL_FILE)
    }

    /// Reads the trial record: `None` when there is none, or when it cannot be read (with the
    /// reason among the warnings: the install record then decides, see [`crate::trial`]).
    pub fn trial(&self) -> (Option<Trial>, Vec<String>) {
        let path = self.trial_path();
        match std::fs::read(&path) {
            Ok(bytes) => match Trial::parse(&String::from_utf8_lossy(&bytes)) {
                Ok(t) => (Some(t), Vec::new()),
                Err(why) => (
                    None,
                    vec![format!("{}: {why}; treated as no trial", path.display())],
                ),
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => (None, Vec::new()),
            Err(e) => (
                None,
                vec![format!("{}: {e}; treated as no trial", path.display())],
            ),
        }
    }

    /// Writes the trial record by the careful replace.
    ///
    /// # Errors
    /// The careful replace failed.
    pub fn write_trial(&self, trial: &Trial) -> Result<(), ReplaceError> {
        self.ensure_k8r_dir()?;
        careful_replace(&self.k8r_dir(), TRIAL_FILE, trial.render().as_bytes())
    }

    /// Commits `trial`: `autoboot.txt` → the working system first, then the record's
    /// `committed` phase, each by the careful replace. A power cut between the two boots the
    /// working system, whose agent then finds autoboot at 2 and writes the record
    /// ([`crate::trial::AgentAction::Tidy`]).
    ///
    /// # Errors
    /// A careful replace failed (before the flip: the card still boots recovery).
    pub fn commit_trial(&self, trial: &Trial) -> Result<(), ReplaceError> {
        self.set_next_boot(Part::Boot)?;
        self.write_trial(&trial.committed())
    }

    /// The trusted keys file's path.
    pub fn trust_path(&self) -> PathBuf {
        self.k8r_dir().join(trust::TRUSTED_KEYS_FILE)
    }

    /// The signing keys this card trusts (none when the file is missing).
    ///
    /// # Errors
    /// The file exists but is damaged: nothing may then be installed or staged.
    pub fn trust(&self) -> Result<CardTrust, TrustError> {
        trust::read_trust(self.trust_path())
    }

    /// Writes the trusted keys by the careful replace.
    ///
    /// # Errors
    /// The careful replace failed.
    pub fn write_trust(&self, trust: &CardTrust) -> Result<(), ReplaceError> {
        self.ensure_k8r_dir()?;
        careful_replace(
            &self.k8r_dir(),
            trust::TRUSTED_KEYS_FILE,
            trust.render().as_bytes(),
        )
    }

    /// Checks `build`'s signature against this card's trusted keys: what the installer does
    /// before it writes the working partitions.
    ///
    /// # Errors
    /// The keys cannot be read, or the signature does not satisfy them.
    pub fn check_signature(&self, build: &Build) -> Result<(Verdict, CardTrust), StoreError> {
        let trust = self.trust()?;
        let verdict = build.check_signature(&trust.keys)?;
        Ok((verdict, trust))
    }

    /// The install log's text (empty when there is none).
    pub fn install_log(&self) -> String {
        std::fs::read(self.install_log_path())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Appends one entry (see [`install_log::format_entry`]) to the install log, keeping it
    /// within [`install_log::MAX_BYTES`].
    ///
    /// # Errors
    /// The careful replace failed.
    pub fn append_install_log(&self, entry: &str) -> Result<(), ReplaceError> {
        let text = install_log::append_bounded(&self.install_log(), entry, install_log::MAX_BYTES);
        self.ensure_k8r_dir()?;
        careful_replace(&self.k8r_dir(), INSTALL_LOG_FILE, text.as_bytes())
    }

    /// `autoboot.txt` as it is on the card, if it is there.
    ///
    /// # Errors
    /// It exists but cannot be read.
    pub fn autoboot(&self) -> io::Result<Option<Vec<u8>>> {
        match std::fs::read(self.root.join(AUTOBOOT_FILE)) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The partition the firmware boots next (outside tryboot), as `autoboot.txt` says; a
    /// missing or unreadable file means partition 1 for the firmware.
    pub fn next_boot(&self) -> u8 {
        self.autoboot()
            .ok()
            .flatten()
            .and_then(|b| Autoboot::parse(&b).ok())
            .and_then(|a| a.boot_partition(false))
            .filter(|p| *p != 0)
            .unwrap_or(Part::Recovery.number())
    }

    /// Points `autoboot.txt` at `part` (keeping `tryboot_a_b=1`, so Ubuntu's own tryboot kernel
    /// updates on the boot partition keep working) by the careful replace.
    ///
    /// # Errors
    /// The careful replace failed; the firmware then reads the old file, or, if it is torn,
    /// boots partition 1 (the recovery), the safe side.
    pub fn set_next_boot(&self, part: Part) -> Result<(), ReplaceError> {
        let text = Autoboot::render_normal(part.number(), true);
        careful_replace(&self.root, AUTOBOOT_FILE, text.as_bytes())
    }

    /// A file of the node's own settings directory.
    pub fn node_file(&self, name: &str) -> PathBuf {
        self.root.join(NODE_DIR).join(name)
    }

    /// Reads a file of the node's own settings, `None` when it is not there.
    ///
    /// # Errors
    /// It exists but cannot be read.
    pub fn read_node_file(&self, name: &str) -> io::Result<Option<Vec<u8>>> {
        match std::fs::read(self.node_file(name)) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Replaces a file of the node's own settings the careful way.
    ///
    /// # Errors
    /// The directory cannot be made or the replace failed.
    pub fn write_node_file(&self, name: &str, data: &[u8]) -> Result<(), ReplaceError> {
        let dir = self.root.join(NODE_DIR);
        std::fs::create_dir_all(&dir).map_err(|source| ReplaceError::Io {
            step: crate::replace::Step::Write,
            path: dir.clone(),
            source,
        })?;
        careful_replace(&dir, name, data)
    }

    fn ensure_k8r_dir(&self) -> Result<(), ReplaceError> {
        let dir = self.k8r_dir();
        std::fs::create_dir_all(&dir).map_err(|source| ReplaceError::Io {
            step: crate::replace::Step::Write,
            path: dir,
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::install_state::LastResult;

    #[test]
    fn install_record_round_trips_and_a_torn_one_is_empty() {
        let dir = tempfile::tempdir().expect("tempdir");
        let r = Recovery::new(dir.path());
        assert_eq!(r.install_state(), (InstallState::default(), Vec::new()));
        let s = InstallState::default().begin("b1");
        r.write_install_state(&s).expect("write");
        assert_eq!(r.install_state().0, s);
        assert_eq!(r.install_state().0.last, LastResult::InProgress);
        std::fs::write(r.install_state_path(), b"\x00\x01garbage").expect("tear");
        let (state, warnings) = r.install_state();
        assert_eq!(state, InstallState::default());
        assert_eq!(warnings.len(), 1, "{warnings:?}");
    }

    #[test]
    fn log_appends_and_stays_bounded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let r = Recovery::new(dir.path());
        r.append_install_log(&install_log::format_entry(1.0, "b1", "started"))
            .expect("append");
        r.append_install_log(&install_log::format_entry(2.0, "b1", "verified"))
            .expect("append");
        let log = r.install_log();
        assert_eq!(log.lines().count(), 2, "{log}");
        assert!(log.ends_with("build b1: verified\n"), "{log}");
        let long = "x".repeat(1000);
        for i in 0..200 {
            r.append_install_log(&install_log::format_entry(f64::from(i), "b1", &long))
                .expect("append");
        }
        assert!(r.install_log().len() <= install_log::MAX_BYTES);
    }

    #[test]
    fn next_boot_follows_autoboot_and_defaults_to_recovery() {
        let dir = tempfile::tempdir().expect("tempdir");
        let r = Recovery::new(dir.path());
        assert_eq!(r.next_boot(), 1, "no autoboot.txt: the firmware boots p1");
        r.set_next_boot(Part::Boot).expect("flip");
        assert_eq!(r.next_boot(), 2);
        let text = std::fs::read_to_string(dir.path().join(AUTOBOOT_FILE)).expect("read");
        assert_eq!(text, "[all]\ntryboot_a_b=1\nboot_partition=2\n");
        r.set_next_boot(Part::Recovery).expect("flip back");
        assert_eq!(r.next_boot(), 1);
        std::fs::write(dir.path().join(AUTOBOOT_FILE), b"[all]\nboot_partition=").expect("tear");
        assert_eq!(r.next_boot(), 1, "a torn file boots recovery");
        // Over the 512 bytes the bootloader reads: ignored whole, as the firmware does.
        let mut big = b"[all]\nboot_partition=2\n".to_vec();
        big.resize(513, b'#');
        std::fs::write(dir.path().join(AUTOBOOT_FILE), &big).expect("oversize");
        assert_eq!(r.next_boot(), 1, "an oversize file boots recovery");
        big.truncate(512);
        std::fs::write(dir.path().join(AUTOBOOT_FILE), &big).expect("512");
        assert_eq!(r.next_boot(), 2, "512 bytes are still read");
    }

    #[test]
    fn trial_record_round_trips_and_commit_flips_autoboot_first() {
        use crate::trial::{Phase, TrialKind};
        let dir = tempfile::tempdir().expect("tempdir");
        let r = Recovery::new(dir.path());
        assert_eq!(r.trial(), (None, Vec::new()));
        r.set_next_boot(Part::Recovery).expect("autoboot");
        let t = Trial::new("b1", TrialKind::New).booting();
        r.write_trial(&t).expect("write");
        assert_eq!(r.trial().0, Some(t.clone()));
        assert!(dir.path().join("k8r/trial").exists());
        r.commit_trial(&t).expect("commit");
        assert_eq!(r.next_boot(), 2);
        assert_eq!(r.trial().0.map(|t| t.phase), Some(Phase::Committed));
        std::fs::write(r.trial_path(), b"build=b1\nkind=ne").expect("tear");
        let (trial, warnings) = r.trial();
        assert_eq!(trial, None);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
    }

    #[test]
    fn node_files_are_kept_beside_the_store() {
        let dir = tempfile::tempdir().expect("tempdir");
        let r = Recovery::new(dir.path());
        assert_eq!(r.read_node_file(NODE_VARIABLES).expect("read"), None);
        r.write_node_file(NODE_VARIABLES, b"K8S_VERSION=\"1.31.2\"\n")
            .expect("write");
        assert_eq!(
            r.read_node_file(NODE_VARIABLES).expect("read").as_deref(),
            Some(&b"K8S_VERSION=\"1.31.2\"\n"[..])
        );
        assert!(dir.path().join("k8r/node/variables.cfg").exists());
    }
}
