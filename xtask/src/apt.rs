//! Debian arm64 packages through a private apt state: apt's own lists and cache under a directory
//! of ours, arm64 only, the host's configured sources, an empty dpkg status. The host's dpkg is
//! never touched and nothing needs root.
//!
//! Two users: the guest kernel (`kernel.rs`: one versioned package and busybox) and the
//! systemd userland of the `base-arm64-systemd.img` fixture, a package *closure* that apt itself
//! resolves ([`AptState::resolve`]):
//!
//! `apt-get --simulate install --no-install-recommends WANTED...` against the empty status
//! resolves exactly what dpkg would need unpacked for WANTED on an empty system: Depends and
//! Pre-Depends, alternatives (`a | b` takes the first installable one unless another is already
//! chosen), virtual packages through their providers, version constraints. Its `Inst` lines
//! name each package with the version apt picked. `apt-cache depends --recurse` was the other
//! candidate; it prints every alternative and every virtual name and leaves choosing to us,
//! which means re-implementing apt's resolver. `apt-get install --download-only` resolves the
//! same way but downloads straight into apt's cache with no list of what it chose; simulating
//! first gives that list (recorded in `closure.txt`), then `apt-get download name=version`
//! fetches exactly those files (checked against the signed lists by apt).
//!
//! Essential packages are not pulled in by anything (nobody declares a dependency on them), so
//! a wanted list names the Essential ones it needs (bash, coreutils, ...) itself.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use k8r_builder::process::run as run_cmd;

/// apt with its own lists and cache, arm64 only, the host's sources.
#[derive(Debug)]
pub struct AptState {
    /// Holds `lists/`, `cache/` and `debs/`.
    pub dir: PathBuf,
}

impl AptState {
    /// Creates (if needed) the state directories under `dir`.
    pub fn new(dir: &Path) -> Result<Self> {
        for sub in ["lists/partial", "cache/archives/partial", "debs"] {
            let p = dir.join(sub);
            std::fs::create_dir_all(&p).with_context(|| format!("creating {}", p.display()))?;
        }
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    fn options(&self) -> Vec<String> {
        vec![
            "-o".into(),
            "APT::Architecture=arm64".into(),
            "-o".into(),
            "APT::Architectures::=arm64".into(),
            "-o".into(),
            format!("Dir::State::Lists={}", self.dir.join("lists").display()),
            "-o".into(),
            format!("Dir::Cache={}", self.dir.join("cache").display()),
            "-o".into(),
            "Dir::State::status=/dev/null".into(),
            "-o".into(),
            "Debug::NoLocking=1".into(),
            "-o".into(),
            "APT::Sandbox::User=root".into(),
        ]
    }

    /// `apt-get update` into the private lists.
    pub fn update(&self) -> Result<()> {
        run_cmd(Command::new("apt-get").args(self.options()).arg("update"))?;
        Ok(())
    }

    /// The versioned kernel package the metapackage depends on.
    pub fn kernel_package(&self) -> Result<String> {
        let out = run_cmd(
            Command::new("apt-cache")
                .args(self.options())
                .args(["depends", "linux-image-arm64"]),
        )?;
        let text = String::from_utf8_lossy(&out.stdout);
        let pkg = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("Depends: "))
            .map(|p| p.trim().trim_matches(|c| c == '<' || c == '>').to_owned());
        match pkg {
            Some(p) if p.starts_with("linux-image-") => Ok(p),
            _ => bail!("cannot resolve linux-image-arm64 to a kernel package from: {text}"),
        }
    }

    /// Downloads `packages` into `debs/` (emptied first); returns the files, sorted.
    pub fn download(&self, packages: &[&str]) -> Result<Vec<PathBuf>> {
        let debs = self.dir.join("debs");
        empty_dir(&debs)?;
        let specs: Vec<String> = packages.iter().map(|p| (*p).to_owned()).collect();
        self.download_into(&specs, &debs)?;
        let found = deb_files(&debs)?;
        if found.len() != packages.len() {
            bail!(
                "expected {} packages in {}, found {}",
                packages.len(),
                debs.display(),
                found.len()
            );
        }
        Ok(found)
    }

    /// `apt-get download SPEC...` in `dir` (`name` or `name=version`).
    fn download_into(&self, specs: &[String], dir: &Path) -> Result<()> {
        run_cmd(
            Command::new("apt-get")
                .current_dir(dir)
                .args(self.options())
                .arg("download")
                .args(specs),
        )?;
        Ok(())
    }

    /// What `apt-get install --no-install-recommends wanted...` would unpack on an empty system
    /// (see the module comment).
    pub fn resolve(&self, wanted: &[&str]) -> Result<Vec<Package>> {
        let out = run_cmd(
            Command::new("apt-get")
                .args(self.options())
                .args([
                    "--simulate",
                    "--quiet",
                    "install",
                    "--no-install-recommends",
                ])
                .args(wanted),
        )
        .context("apt-get --simulate install (resolving the package closure)")?;
        let packages = parse_simulation(&String::from_utf8_lossy(&out.stdout))?;
        for w in wanted {
            if !packages.iter().any(|p| p.name == *w) {
                bail!("apt's resolution does not install the wanted package {w}");
            }
        }
        Ok(packages)
    }
}

/// One package apt chose, with the version and architecture it picked.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Package {
    /// Package name.
    pub name: String,
    /// Version as apt prints it (may carry an epoch: `1:2.5.1-4`).
    pub version: String,
    /// `arm64` or `all`.
    pub arch: String,
}

impl Package {
    /// The file name `apt-get download` gives it: `name_version_arch.deb`, the epoch's colon
    /// written `%3a`.
    pub fn deb_file_name(&self) -> String {
        format!(
            "{}_{}_{}.deb",
            self.name,
            self.version.replace(':', "%3a"),
            self.arch
        )
    }
}

/// Parses the `Inst` lines of `apt-get --simulate install` output, e.g.
/// `Inst libc6 (2.36-9+deb12u14 Debian:12.15/oldstable [arm64]) []`. Sorted by name. Other
/// lines (`Conf`, progress, the summary) are ignored; an `Inst` line that does not parse, or a
/// package listed twice, is an error (apt's output format changed: better stop than guess).
pub fn parse_simulation(text: &str) -> Result<Vec<Package>> {
    let mut out: Vec<Package> = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("Inst ") else {
            continue;
        };
        let bad = || format!("cannot parse apt's simulated install line {line:?}");
        let (name, rest) = rest.split_once(' ').with_context(bad)?;
        // An upgrade would show `[old version]` first; with an empty status there is none, but
        // skip it so the parser does not depend on that.
        let rest = match rest.strip_prefix('[') {
            Some(r) => r
                .split_once("] ")
                .map(|(_, after)| after)
                .with_context(bad)?,
            None => rest,
        };
        let inner = rest
            .strip_prefix('(')
            .and_then(|r| r.split_once(')'))
            .map(|(inner, _)| inner)
            .with_context(bad)?;
        let version = inner.split_whitespace().next().with_context(bad)?;
        let arch = inner
            .rsplit_once('[')
            .and_then(|(_, a)| a.strip_suffix(']'))
            .with_context(bad)?;
        let valid = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.:~_".contains(c))
        };
        if !valid(name) || !valid(version) || !valid(arch) {
            bail!("{}", bad());
        }
        if out.iter().any(|p| p.name == name) {
            bail!("apt's simulation installs {name} twice");
        }
        out.push(Package {
            name: name.to_owned(),
            version: version.to_owned(),
            arch: arch.to_owned(),
        });
    }
    if out.is_empty() {
        bail!("apt's simulated install lists no package (is the private apt state updated?)");
    }
    out.sort();
    Ok(out)
}

/// A fetched package closure: `closure.txt` beside the `.deb` files. The first line records the
/// wanted list it was resolved from, then one `name version arch` line per package:
///
/// ```text
/// wanted bash coreutils systemd ...
/// bash 5.2.15-2+b13 arm64
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closure {
    /// The packages asked for, in the order given.
    pub wanted: Vec<String>,
    /// What apt resolved them to, sorted by name.
    pub packages: Vec<Package>,
}

/// The manifest's file name inside the package directory.
pub const CLOSURE_FILE: &str = "closure.txt";

impl Closure {
    /// The manifest text.
    pub fn render(&self) -> String {
        let mut s = format!("wanted {}\n", self.wanted.join(" "));
        for p in &self.packages {
            s.push_str(&format!("{} {} {}\n", p.name, p.version, p.arch));
        }
        s
    }

    /// Parses [`Closure::render`]'s text.
    pub fn parse(text: &str) -> Result<Closure> {
        let mut lines = text.lines();
        let wanted = lines
            .next()
            .and_then(|l| l.strip_prefix("wanted "))
            .context("closure manifest: first line is not `wanted ...`")?
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        let mut packages = Vec::new();
        for line in lines {
            let f: Vec<&str> = line.split_whitespace().collect();
            match f.as_slice() {
                [name, version, arch] => packages.push(Package {
                    name: (*name).to_owned(),
                    version: (*version).to_owned(),
                    arch: (*arch).to_owned(),
                }),
                _ => bail!("closure manifest: bad line {line:?}"),
            }
        }
        Ok(Closure { wanted, packages })
    }

    /// Reads `dir/closure.txt`.
    pub fn load(dir: &Path) -> Result<Closure> {
        let path = dir.join(CLOSURE_FILE);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {} (run `cargo xtask setup`)", path.display()))?;
        Closure::parse(&text).with_context(|| format!("in {}", path.display()))
    }

    /// Whether `dir` holds this closure for exactly `wanted`: same list, every `.deb` there.
    pub fn complete_in(&self, dir: &Path, wanted: &[&str]) -> bool {
        self.wanted
            .iter()
            .map(String::as_str)
            .eq(wanted.iter().copied())
            && !self.packages.is_empty()
            && self
                .packages
                .iter()
                .all(|p| dir.join(p.deb_file_name()).is_file())
    }

    /// The `.deb` files in `dir`, in package-name order.
    pub fn debs(&self, dir: &Path) -> Vec<(Package, PathBuf)> {
        self.packages
            .iter()
            .map(|p| (p.clone(), dir.join(p.deb_file_name())))
            .collect()
    }
}

/// Makes sure `dir` holds the closure of `wanted`: skips when `closure.txt` says it is complete
/// (no network), otherwise updates the lists in `apt_dir`, resolves, downloads into a staging
/// directory and moves it into place, `closure.txt` last.
pub fn fetch_closure(apt_dir: &Path, dir: &Path, wanted: &[&str]) -> Result<Closure> {
    if let Ok(have) = Closure::load(dir) {
        if have.complete_in(dir, wanted) {
            log::info!(
                "setup: {} arm64 packages: present in {}",
                have.packages.len(),
                dir.display()
            );
            return Ok(have);
        }
    }
    let apt = AptState::new(apt_dir)?;
    log::info!(
        "setup: apt-get update (private arm64 state in {})",
        apt.dir.display()
    );
    apt.update()?;
    let packages = apt.resolve(wanted)?;
    log::info!(
        "setup: downloading {} arm64 packages (the closure of {} wanted) into {}",
        packages.len(),
        wanted.len(),
        dir.display()
    );
    let staging = dir.with_extension("partial");
    empty_dir(&staging)?;
    let specs: Vec<String> = packages
        .iter()
        .map(|p| format!("{}={}", p.name, p.version))
        .collect();
    apt.download_into(&specs, &staging)?;
    let closure = Closure {
        wanted: wanted.iter().map(|w| (*w).to_owned()).collect(),
        packages,
    };
    for p in &closure.packages {
        let file = staging.join(p.deb_file_name());
        if !file.is_file() {
            bail!("apt-get download did not write {}", file.display());
        }
    }
    let manifest = staging.join(CLOSURE_FILE);
    std::fs::write(&manifest, closure.render())
        .with_context(|| format!("writing {}", manifest.display()))?;
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    std::fs::rename(&staging, dir)
        .with_context(|| format!("moving {} to {}", staging.display(), dir.display()))?;
    Ok(closure)
}

fn empty_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
}

fn deb_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "deb") {
            found.push(path);
        }
    }
    found.sort();
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIMULATION: &str = "\
NOTE: This is only a simulation!
Reading package lists...
The following NEW packages will be installed:
  attr-demo libc6 systemd
Inst gcc-12-base (12.2.0-14+deb12u1 Debian:12.15/oldstable [arm64])
Inst libc6 (2.36-9+deb12u14 Debian:12.15/oldstable [arm64]) []
Inst libattr1 (1:2.5.1-4 Debian:12.15/oldstable [arm64])
Inst libaudit-common (1:3.0.9-1 Debian:12.15/oldstable [all])
Inst libpcre2-8-0 (10.42-1+deb12u2 Debian-Security:12/oldstable-security [arm64])
Conf libc6 (2.36-9+deb12u14 Debian:12.15/oldstable [arm64])
Inst systemd [251.1-1] (252.38-1~deb12u1 Debian:12.15/oldstable [arm64])
";

    #[test]
    fn simulation_lines_give_names_versions_and_architectures() {
        let pkgs = parse_simulation(SIMULATION).expect("parses");
        let names: Vec<&str> = pkgs.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "gcc-12-base",
                "libattr1",
                "libaudit-common",
                "libc6",
                "libpcre2-8-0",
                "systemd"
            ],
            "Conf and summary lines ignored, sorted by name"
        );
        let attr = &pkgs[1];
        assert_eq!(
            (attr.version.as_str(), attr.arch.as_str()),
            ("1:2.5.1-4", "arm64")
        );
        assert_eq!(pkgs[2].arch, "all");
        assert_eq!(
            pkgs[5].version, "252.38-1~deb12u1",
            "the new version, not the old"
        );
    }

    #[test]
    fn deb_file_names_escape_the_epoch_like_apt_get_download() {
        let p = Package {
            name: "busybox-static".into(),
            version: "1:1.35.0-4+deb12u1+b1".into(),
            arch: "arm64".into(),
        };
        assert_eq!(
            p.deb_file_name(),
            "busybox-static_1%3a1.35.0-4+deb12u1+b1_arm64.deb"
        );
    }

    #[test]
    fn malformed_or_empty_simulations_are_errors() {
        assert!(parse_simulation("Reading package lists...\n").is_err());
        assert!(parse_simulation("Inst libc6 2.36 [arm64]\n").is_err());
        assert!(
            parse_simulation("Inst libc6 (2.36 Debian)\n").is_err(),
            "no arch"
        );
        assert!(parse_simulation("Inst ../evil (1 Debian [arm64])\n").is_err());
        let twice = "Inst a (1 D [arm64])\nInst a (2 D [arm64])\n";
        assert!(parse_simulation(twice).is_err());
    }

    #[test]
    fn closure_manifest_round_trips_and_knows_when_it_is_complete() {
        let dir = k8r_tests::scratch("xtask-apt-closure");
        let closure = Closure {
            wanted: vec!["b".into(), "a".into()],
            packages: parse_simulation("Inst a (1:1 D [arm64])\nInst b (2 D [all])\n")
                .expect("parses"),
        };
        let text = closure.render();
        assert_eq!(text, "wanted b a\na 1:1 arm64\nb 2 all\n");
        assert_eq!(Closure::parse(&text).expect("parses"), closure);
        assert!(!closure.complete_in(&dir, &["b", "a"]), "no files yet");
        for (_, file) in closure.debs(&dir) {
            std::fs::write(file, b"deb").expect("write");
        }
        assert!(closure.complete_in(&dir, &["b", "a"]));
        assert!(
            !closure.complete_in(&dir, &["a", "b"]),
            "another wanted list (order included) means resolve again"
        );
        assert!(!closure.complete_in(&dir, &["b", "a", "c"]));
        std::fs::remove_file(dir.join("b_2_all.deb")).expect("rm");
        assert!(!closure.complete_in(&dir, &["b", "a"]), "a file is missing");
        assert!(Closure::parse("a 1 arm64\n").is_err(), "no wanted line");
        assert!(Closure::parse("wanted a\na 1\n").is_err(), "short line");
    }
}
