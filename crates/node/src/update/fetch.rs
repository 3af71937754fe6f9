//! Where a new build comes from: a local directory (the seed's
//! `update_image_partition.sh DIR`) or `HTTP_IMAGE_URL` (a URL prefix under which
//! `manifest.toml`, `image.img.xz` and `boot.tar.xz` are found). Each file lands as
//! `<name>.part` first and gets its real name only once its size and SHA-256 match the
//! manifest; an HTTP download that drops resumes with `Range` where it stopped (also in a
//! later run), from the beginning when the server ignores ranges.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use k8r_card::digest::HashingReader;
use k8r_manifest::signature::{SIGNATURE_FILE, SIGNATURE_MAX};
use k8r_manifest::MANIFEST_FILE;
use k8r_manifest::MANIFEST_MAX;

use super::content_range::ContentRange;

/// A fetched file is not the manifest's: it was removed (a wrong file must not be resumed
/// into).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}: {what}, the manifest says {expected}: the file at the source is not this build's (upload the build's three files together); nothing was staged")]
pub struct Mismatch {
    /// The file.
    pub name: String,
    /// What was found ("SHA-256 …", "N bytes").
    pub what: String,
    /// What the manifest says.
    pub expected: String,
}

/// How many times a dropped download is resumed before giving up.
pub const RETRIES: u32 = 5;

/// One file to fetch: its name next to the manifest, size and SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    /// The file name.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256, lowercase hex.
    pub sha256: String,
}

/// A source of builds.
#[derive(Debug, Clone)]
pub enum Source {
    /// A directory holding the build's files.
    Dir(PathBuf),
    /// A URL prefix (ending in `/`).
    Http(String),
}

impl Source {
    /// Where a file of the build is, for messages.
    pub fn location(&self, name: &str) -> String {
        match self {
            Source::Dir(d) => d.join(name).display().to_string(),
            Source::Http(prefix) => format!("{prefix}{name}"),
        }
    }

    /// The build's `manifest.toml`, as text; one larger than [`MANIFEST_MAX`] is refused
    /// (not read to its end, and not cut short into something that might still parse).
    pub fn manifest(&self) -> Result<String> {
        let limit = u64::try_from(MANIFEST_MAX).unwrap_or(u64::MAX) + 1;
        let mut text = String::new();
        let location = self.location(MANIFEST_FILE);
        match self {
            Source::Dir(d) => {
                let path = d.join(MANIFEST_FILE);
                let file = File::open(&path).with_context(|| {
                    format!(
                        "reading {}: copy the build's manifest.toml next to image.img.xz and boot.tar.xz \
                         (k8r-builder writes it to images/)",
                        path.display()
                    )
                })?;
                file.take(limit)
                    .read_to_string(&mut text)
                    .with_context(|| format!("reading {}", path.display()))?;
            }
            Source::Http(_) => {
                let resp = agent()
                    .get(&location)
                    .call()
                    .map_err(|e| http_error(&location, e))?;
                resp.into_reader()
                    .take(limit)
                    .read_to_string(&mut text)
                    .with_context(|| format!("reading {location}"))?;
            }
        }
        if text.len() > MANIFEST_MAX {
            bail!(
                "{location}: larger than {} MiB, so not a build's manifest (k8r-builder writes \
                 a few KiB): nothing was staged",
                MANIFEST_MAX >> 20
            );
        }
        Ok(text)
    }

    /// The build's `manifest.toml.minisig`, as text; `None` when the source has none (an
    /// unsigned build: whether that is acceptable is the card's trusted keys' decision).
    pub fn signature(&self) -> Result<Option<String>> {
        let limit = u64::try_from(SIGNATURE_MAX).unwrap_or(u64::MAX) + 1;
        let mut text = String::new();
        match self {
            Source::Dir(d) => {
                let path = d.join(SIGNATURE_FILE);
                let file = match File::open(&path) {
                    Ok(f) => f,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
                };
                file.take(limit)
                    .read_to_string(&mut text)
                    .with_context(|| format!("reading {}", path.display()))?;
            }
            Source::Http(_) => {
                let url = self.location(SIGNATURE_FILE);
                let resp = match agent().get(&url).call() {
                    Ok(r) => r,
                    Err(ureq::Error::Status(404, _)) => return Ok(None),
                    Err(e) => return Err(http_error(&url, e)),
                };
                resp.into_reader()
                    .take(limit)
                    .read_to_string(&mut text)
                    .with_context(|| format!("reading {url}"))?;
            }
        }
        Ok(Some(text))
    }

    /// Fetches `want` into `dir/<name>` (via `dir/<name>.part`), verifying size and digest.
    /// `progress` sees `(bytes so far, size)`.
    pub fn fetch(
        &self,
        want: &Wanted,
        dir: &Path,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<()> {
        let part = dir.join(format!("{}.part", want.name));
        match self {
            Source::Dir(d) => copy(&d.join(&want.name), &part, want, progress)?,
            Source::Http(_) => download(&self.location(&want.name), &part, want, progress)?,
        }
        finish(&part, &dir.join(&want.name), want)
    }
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(20))
        .timeout_read(Duration::from_secs(60))
        .user_agent(concat!("k8r/", env!("CARGO_PKG_VERSION")))
        .build()
}

fn http_error(url: &str, e: ureq::Error) -> anyhow::Error {
    match e {
        ureq::Error::Status(404, _) => anyhow!(
            "{url}: 404 Not Found: is HTTP_IMAGE_URL the directory you uploaded the build's \
             manifest.toml, image.img.xz and boot.tar.xz to?"
        ),
        ureq::Error::Status(code, resp) => anyhow!("{url}: HTTP {code} {}", resp.status_text()),
        ureq::Error::Transport(t) => {
            anyhow!("{url}: {t} (is the server up and HTTP_IMAGE_URL right?)")
        }
    }
}

fn copy(src: &Path, part: &Path, want: &Wanted, progress: &mut dyn FnMut(u64, u64)) -> Result<()> {
    let len = fs::metadata(src)
        .with_context(|| {
            format!(
                "{}: the build's files must be next to its manifest.toml",
                src.display()
            )
        })?
        .len();
    if len != want.size {
        // Not this build's file: like a wrong digest, nothing of it may stay staged.
        return Err(Mismatch {
            name: want.name.clone(),
            what: format!("{len} bytes"),
            expected: format!("{} bytes", want.size),
        }
        .into());
    }
    let mut input = File::open(src).with_context(|| format!("opening {}", src.display()))?;
    let mut out = File::create(part).with_context(|| format!("creating {}", part.display()))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut done = 0u64;
    loop {
        let n = input
            .read(&mut buf)
            .with_context(|| format!("reading {}", src.display()))?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n])
            .with_context(|| format!("writing {}", part.display()))?;
        done += n as u64;
        progress(done, want.size);
    }
    out.sync_all()
        .with_context(|| format!("syncing {}", part.display()))
}

/// Downloads `url` into `part`, resuming what `part` already holds.
fn download(
    url: &str,
    part: &Path,
    want: &Wanted,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<()> {
    let agent = agent();
    let mut failures = 0;
    loop {
        let have = fs::metadata(part).map_or(0, |m| m.len());
        if have == want.size {
            return Ok(());
        }
        if have > want.size {
            fs::remove_file(part).with_context(|| format!("removing {}", part.display()))?;
            continue;
        }
        let mut req = agent.get(url);
        if have > 0 {
            req = req.set("Range", &format!("bytes={have}-"));
        }
        let resp = match req.call() {
            Ok(r) => r,
            Err(ureq::Error::Status(416, _)) => {
                log::warn!("{url}: the server refused to resume at byte {have}: starting again");
                fs::remove_file(part).with_context(|| format!("removing {}", part.display()))?;
                continue;
            }
            Err(e @ ureq::Error::Transport(_)) if failures < RETRIES => {
                failures += 1;
                log::warn!("{}; retrying ({failures} of {RETRIES})", http_error(url, e));
                std::thread::sleep(Duration::from_secs(2));
                continue;
            }
            Err(e) => return Err(http_error(url, e)),
        };
        let resumed = resp.status() == 206
            && resp
                .header("Content-Range")
                .and_then(ContentRange::parse)
                .is_some_and(|r| r.resumes(have, want.size));
        if have > 0 && !resumed {
            log::info!(
                "{url}: the server does not resume (HTTP {}): downloading it again",
                resp.status()
            );
        }
        let mut out = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(!resumed)
            .open(part)
            .with_context(|| format!("opening {}", part.display()))?;
        let mut pos = if resumed { have } else { 0 };
        out.seek(SeekFrom::Start(pos))
            .with_context(|| format!("seeking {}", part.display()))?;
        if resumed {
            log::info!("{url}: resuming at byte {have} of {}", want.size);
        }
        let mut reader = resp.into_reader().take(want.size - pos);
        let mut buf = vec![0u8; 256 * 1024];
        let dropped = loop {
            match reader.read(&mut buf) {
                Ok(0) => break None,
                Ok(n) => {
                    out.write_all(&buf[..n])
                        .with_context(|| format!("writing {}", part.display()))?;
                    pos += n as u64;
                    progress(pos, want.size);
                }
                Err(e) => break Some(e),
            }
        };
        out.sync_all()
            .with_context(|| format!("syncing {}", part.display()))?;
        if pos == want.size {
            return Ok(());
        }
        failures += 1;
        let why = dropped.map_or_else(
            || "the connection closed early".to_owned(),
            |e| e.to_string(),
        );
        if failures > RETRIES {
            bail!("{url}: {why} at byte {pos} of {}, {RETRIES} times; run `k8r update-image` again to resume", want.size);
        }
        log::warn!(
            "{url}: {why} at byte {pos} of {}; resuming ({failures} of {RETRIES})",
            want.size
        );
    }
}

/// Checks the downloaded `part` and gives it its name.
fn finish(part: &Path, dest: &Path, want: &Wanted) -> Result<()> {
    let len = fs::metadata(part)
        .with_context(|| format!("{}", part.display()))?
        .len();
    if len != want.size {
        bail!(
            "{}: {len} bytes, the manifest says {}",
            want.name,
            want.size
        );
    }
    let mut reader = HashingReader::new(BufReader::with_capacity(
        1 << 20,
        File::open(part).with_context(|| format!("opening {}", part.display()))?,
    ));
    io::copy(&mut reader, &mut io::sink())
        .with_context(|| format!("reading {}", part.display()))?;
    let (digest, _) = reader.finish();
    if digest != want.sha256 {
        // A wrong file must not be resumed into: it goes.
        let _ = fs::remove_file(part);
        return Err(Mismatch {
            name: want.name.clone(),
            what: format!("SHA-256 {digest}"),
            expected: want.sha256.clone(),
        }
        .into());
    }
    fs::rename(part, dest).with_context(|| format!("naming {}", dest.display()))?;
    Ok(())
}

/// Reports progress as log lines every 10 % (a progress bar on a terminal), for a file of
/// `size` bytes named `name`.
pub fn progress_reporter(name: String) -> impl FnMut(u64, u64) {
    let bar =
        indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message(name.clone());
    let mut tenths = Tenths::new(name);
    let started = Instant::now();
    move |done, size| {
        bar.set_length(size);
        bar.set_position(done);
        if let Some(line) = tenths.line(done, size, started.elapsed()) {
            log::info!("{line}");
        }
        if done >= size {
            bar.finish_and_clear();
        }
    }
}

/// The progress log lines of one file: one each time it enters a new tenth.
#[derive(Debug)]
pub struct Tenths {
    name: String,
    last: Option<u64>,
}

impl Tenths {
    /// For the file `name`.
    pub fn new(name: String) -> Tenths {
        Tenths { name, last: None }
    }

    /// The line for `done` of `size` bytes, `elapsed` after the start, if it starts a tenth
    /// not reported yet (a whole file is 100 %, also an empty one).
    pub fn line(&mut self, done: u64, size: u64, elapsed: Duration) -> Option<String> {
        let tenth = if done >= size { 10 } else { done * 10 / size };
        if self.last == Some(tenth) {
            return None;
        }
        self.last = Some(tenth);
        Some(format!(
            "{}: {}% ({} of {} MiB, {:.0}s)",
            self.name,
            tenth * 10,
            done >> 20,
            size >> 20,
            elapsed.as_secs_f64()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines_come_once_per_tenth() {
        let mut t = Tenths::new("image.img.xz".into());
        let size = 10 << 20;
        let mut lines = Vec::new();
        let mut done = 0;
        while done < size {
            done += 256 << 10;
            lines.extend(t.line(done, size, Duration::from_secs(done >> 20)));
        }
        assert_eq!(lines.len(), 11, "0 % to 100 %: {lines:#?}");
        assert_eq!(lines[0], "image.img.xz: 0% (0 of 10 MiB, 0s)");
        assert_eq!(lines[5], "image.img.xz: 50% (5 of 10 MiB, 5s)");
        assert_eq!(lines[10], "image.img.xz: 100% (10 of 10 MiB, 10s)");
        assert_eq!(t.line(size, size, Duration::ZERO), None, "reported once");
        let mut empty = Tenths::new("boot.tar.xz".into());
        assert_eq!(
            empty.line(0, 0, Duration::ZERO).as_deref(),
            Some("boot.tar.xz: 100% (0 of 0 MiB, 0s)")
        );
    }
}
