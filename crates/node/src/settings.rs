//! The node's settings: the image's build configuration (`/usr/lib/k8r/build-variables.cfg`)
//! with the node's own settings (`k8r/node/variables.cfg` on the recovery partition) over it
//! (`k8r_config::node` has the rule), written at every boot as the effective file
//! `/usr/lib/k8r/variables.cfg` (mode 0600) that every other step reads.
//!
//! The node's own settings survive a reinstall because they live on the recovery partition:
//! `k8r config set` writes there (and the effective file), and a hand edit of the effective
//! file (the seed's documented way) is copied back there by `k8r config sync`, which a
//! systemd path unit runs whenever the file changes.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use k8r_card::image_root::{BUILD_VARIABLES, VARIABLES};
use k8r_card::recovery::NODE_VARIABLES;
use k8r_config::{BuildConfig, ConfigErrors, RawSettings};

use crate::card::P1;
use crate::host::Host;

/// The effective file's header.
pub const HEADER: &str = "\
# k8r: this node's settings, written at every boot by `k8r setup` from the image's build
# configuration (/usr/lib/k8r/build-variables.cfg) and this node's own settings (kept on the
# card's recovery partition, k8r/node/variables.cfg). Change node settings here or with
# `k8r config set KEY=value`: they are copied to the recovery partition and survive a
# reinstall. K8S_VERSION, the component versions and the CNI come from the image: changing
# them here has no effect (build a new image instead).";

/// The settings this node runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Validated, every default applied.
    pub config: BuildConfig,
    /// As written in the effective file.
    pub raw: RawSettings,
}

/// Parses and validates an effective settings text; `file` names it in errors.
pub fn parse(file: &Path, text: &str) -> Result<Settings> {
    let raw = RawSettings::parse(file, text).map_err(|e| anyhow!("{e}"))?;
    let config = k8r_config::parse_cfg(file, text).map_err(|e| anyhow!("{e}"))?;
    Ok(Settings { config, raw })
}

/// Reads the effective settings file.
pub fn load(host: &Host) -> Result<Settings> {
    let text = host
        .read_text_opt(VARIABLES)?
        .ok_or_else(|| anyhow!("{VARIABLES} is missing: `k8r setup` writes it at boot"))?;
    parse(&host.path(VARIABLES), &text)
}

/// A settings file as read: where it is, its text and the settings in it (so that a refused
/// value can be named at the line it was written on).
#[derive(Debug, Clone)]
pub struct SettingsFile {
    /// The file.
    pub path: PathBuf,
    /// Its text.
    pub text: String,
    /// The settings in it.
    pub raw: RawSettings,
}

impl SettingsFile {
    /// Reads `text` (syntax errors name `path` and the line).
    pub fn parse(path: PathBuf, text: String) -> Result<SettingsFile> {
        let raw = RawSettings::parse(&path, &text).map_err(|e| anyhow!("{e}"))?;
        Ok(SettingsFile { path, text, raw })
    }

    /// The 1-based line that sets `key` (the last one: the last assignment wins).
    pub fn line_of(&self, key: &str) -> Option<usize> {
        let text = self.text.strip_prefix('\u{feff}').unwrap_or(&self.text);
        let mut found = None;
        for (index, line) in text.split('\n').enumerate() {
            let line = line.trim_start();
            let line = line
                .strip_prefix("export")
                .filter(|rest| rest.starts_with([' ', '\t']))
                .map_or(line, str::trim_start);
            let named = line
                .split_once('=')
                .and_then(|(name, _)| k8r_config::keys::lookup(name))
                .is_some_and(|doc| doc.name == key);
            if named {
                found = Some(index + 1);
            }
        }
        found
    }
}

/// The image's own configuration file.
pub fn image_file(host: &Host) -> Result<SettingsFile> {
    let path = host.path(BUILD_VARIABLES);
    let text = host.read_text_opt(BUILD_VARIABLES)?.ok_or_else(|| {
        anyhow!(
            "{} is missing: this image was not built by k8r-builder",
            path.display()
        )
    })?;
    SettingsFile::parse(path, text)
}

/// The image's own configuration.
pub fn image_settings(host: &Host) -> Result<RawSettings> {
    image_file(host).map(|f| f.raw)
}

/// The node's own settings file on the recovery partition, if it has one.
pub fn node_file(p1: &P1) -> Result<Option<SettingsFile>> {
    let path = p1.recovery().node_file(NODE_VARIABLES);
    let Some(bytes) = p1
        .recovery()
        .read_node_file(NODE_VARIABLES)
        .with_context(|| format!("reading {}", path.display()))?
    else {
        return Ok(None);
    };
    let text = String::from_utf8_lossy(&bytes).into_owned();
    SettingsFile::parse(path, text).map(Some)
}

/// The node's own settings on the recovery partition, if it has some.
pub fn node_settings(p1: &P1) -> Result<Option<RawSettings>> {
    node_file(p1).map(|f| f.map(|f| f.raw))
}

/// The effective text for `image` with `node` over it, validated.
pub fn compose(
    host: &Host,
    image: &RawSettings,
    node: Option<&RawSettings>,
) -> Result<(String, Settings)> {
    compose_with(host, image, node, |_| {})
}

/// [`compose`] of the two files as read: a refused value is named in the file it came from
/// (the node's own file for a node key it sets, else the image's configuration) at its line,
/// not at a line of the effective text, which is not written.
pub fn compose_files(
    host: &Host,
    image: &SettingsFile,
    node: Option<&SettingsFile>,
) -> Result<(String, Settings)> {
    compose_with(host, &image.raw, node.map(|n| &n.raw), |errors| {
        for e in &mut errors.0 {
            let Some(key) = e
                .key
                .as_deref()
                .and_then(k8r_config::keys::lookup)
                .map(|d| d.name)
            else {
                continue;
            };
            let from = match node {
                Some(n) if !k8r_config::node::is_image_key(key) && n.raw.mentions(key) => n,
                _ => image,
            };
            if from.raw.mentions(key) {
                e.file.clone_from(&from.path);
                e.line = from.line_of(key);
            }
        }
    })
}

fn compose_with(
    host: &Host,
    image: &RawSettings,
    node: Option<&RawSettings>,
    blame: impl FnOnce(&mut ConfigErrors),
) -> Result<(String, Settings)> {
    let merged = match node {
        Some(n) => RawSettings::merged(image, n),
        None => image.clone(),
    };
    let text = merged.render(HEADER);
    let file = host.path(VARIABLES);
    let settings = RawSettings::parse(&file, &text)
        .and_then(|raw| k8r_config::parse_cfg(&file, &text).map(|config| Settings { config, raw }))
        .map_err(|mut e| {
            blame(&mut e);
            anyhow!("{e}")
        })
        .context(
            "the node's settings (the image's configuration with the node's own over it) are invalid",
        )?;
    Ok((text, settings))
}

/// Writes the effective file when its content changes; returns whether it did.
pub fn write_effective(host: &Host, text: &str) -> Result<bool> {
    if host.read_text_opt(VARIABLES)?.as_deref() == Some(text) {
        return Ok(false);
    }
    host.write(VARIABLES, text.as_bytes(), 0o600)?;
    Ok(true)
}

/// The node's own settings file for the recovery partition from the effective settings: the
/// node keys of `effective` over what the file had (its image keys are kept as they were:
/// they are ignored anyway).
pub fn node_file_text(old: Option<&RawSettings>, effective: &RawSettings) -> String {
    let base = old.cloned().unwrap_or_default();
    RawSettings::merged(&base, &effective.node_keys()).render(
        "# k8r: this node's own settings (k8r config set / k8r-builder inject). Node keys here win\n\
         # over the image's configuration; the image keys are the image's.",
    )
}

/// `KEY=VALUE` (or `KEY VALUE`) into its parts.
pub fn split_assignment(words: &[String]) -> Result<Vec<(&str, &str)>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let w = words[i].as_str();
        if let Some((k, v)) = w.split_once('=') {
            out.push((k.trim(), v.trim_matches('"')));
            i += 1;
        } else if let Some(v) = words.get(i + 1) {
            out.push((w, v.as_str()));
            i += 2;
        } else {
            bail!("{w}: expected KEY=VALUE (for example HTTP_IMAGE_URL=http://nas.lan/k8r/)");
        }
    }
    Ok(out)
}

/// Warnings for a change of image keys the node cannot make.
pub fn image_key_warnings(changed: &[&str]) -> Vec<String> {
    changed
        .iter()
        .filter(|k| k8r_config::node::is_image_key(k))
        .map(|k| {
            format!(
                "{k} describes the image, not this node: the value the image was built with stays in force (build a new image to change it)"
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const IMAGE: &str =
        "IMAGE=\"u.img\"\nK8S_VERSION=\"1.31.2\"\nKUBEADM_JOIN_STRING=\"\"\nHTTP_IMAGE_URL=\"\"\n";

    fn raw(text: &str) -> RawSettings {
        RawSettings::parse(Path::new("x"), text).expect("parse")
    }

    #[test]
    fn compose_validates_and_keeps_the_images_versions() {
        let dir = tempfile::tempdir().expect("tempdir");
        let host = Host::at(dir.path());
        let node = raw("K8S_VERSION=\"1.30.0\"\nHTTP_IMAGE_URL=\"http://nas.lan/k8r/\"\n");
        let (text, s) = compose(&host, &raw(IMAGE), Some(&node)).expect("compose");
        assert!(text.starts_with("# k8r: this node's settings"), "{text}");
        assert_eq!(s.config.k8s_version.to_string(), "1.31.2");
        assert_eq!(
            s.config.http_image_url.map(|u| u.prefix),
            Some("http://nas.lan/k8r/".to_owned())
        );
        assert!(write_effective(&host, &text).expect("write"));
        assert!(
            !write_effective(&host, &text).expect("same"),
            "unchanged: not written again"
        );
        assert_eq!(
            load(&host).expect("load").config.k8s_version.to_string(),
            "1.31.2"
        );
    }

    #[test]
    fn an_invalid_node_value_is_refused_with_its_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let host = Host::at(dir.path());
        let node = raw("POD_NETWORK_CIDR=\"10.0.0.0/33\"\n");
        let err = compose(&host, &raw(IMAGE), Some(&node)).expect_err("bad cidr");
        let msg = format!("{err:#}");
        assert!(
            msg.contains("POD_NETWORK_CIDR") && msg.contains("variables.cfg:"),
            "{msg}"
        );
    }

    #[test]
    fn a_refused_value_is_named_in_the_file_and_at_the_line_it_came_from() {
        let dir = tempfile::tempdir().expect("tempdir");
        let host = Host::at(dir.path());
        let file = |path: &str, text: &str| {
            SettingsFile::parse(PathBuf::from(path), text.to_owned()).expect("parse")
        };
        let image = file("build-variables.cfg", IMAGE);
        let node = file(
            "p1/k8r/node/variables.cfg",
            "# mine\nHTTP_IMAGE_URL=\"http://a/\"\n\nexport POD_NETWORK_CIDR=\"10.0.0.0/8\"\nPOD_NETWORK_CIDR=\"10.0.0.0/33\"\n",
        );
        let err = compose_files(&host, &image, Some(&node)).expect_err("bad cidr");
        let msg = format!("{err:#}");
        assert!(
            msg.contains("p1/k8r/node/variables.cfg:5: POD_NETWORK_CIDR=\"10.0.0.0/33\": expected"),
            "the last line that sets it: {msg}"
        );
        assert!(!msg.contains("usr/lib/k8r/variables.cfg"), "{msg}");
        // An image key (whatever the node's file says) and a node key the node does not set
        // come from the image's file.
        let image = file(
            "build-variables.cfg",
            &format!("{IMAGE}ARCH=\"sparc\"\nTOKEN_TTL=\"soon\"\n"),
        );
        let node = file("p1/k8r/node/variables.cfg", "ARCH=\"arm64\"\n");
        let msg = format!(
            "{:#}",
            compose_files(&host, &image, Some(&node)).expect_err("bad image values")
        );
        assert!(
            msg.contains("build-variables.cfg:5: ARCH=\"sparc\"")
                && msg.contains("build-variables.cfg:6: TOKEN_TTL=\"soon\""),
            "{msg}"
        );
    }

    #[test]
    fn the_node_file_keeps_node_keys_only_from_the_effective_settings() {
        let effective = raw("K8S_VERSION=\"1.32.0\"\nHTTP_IMAGE_URL=\"http://b/\"\n");
        let old = raw("K8S_VERSION=\"1.31.2\"\nHTTP_IMAGE_URL=\"http://a/\"\nNODE_NAME=\"n1\"\n");
        let text = node_file_text(Some(&old), &effective);
        let back = raw(&text);
        assert_eq!(back.get("HTTP_IMAGE_URL"), Some("http://b/"));
        assert_eq!(
            back.get("K8S_VERSION"),
            Some("1.31.2"),
            "image keys as they were"
        );
        assert_eq!(
            back.get("NODE_NAME"),
            Some("n1"),
            "not in the effective text: kept"
        );
    }

    #[test]
    fn assignments_in_both_spellings() {
        let words: Vec<String> = ["A=1", "B", "two words", "C=\"x\""]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        assert_eq!(
            split_assignment(&words).expect("split"),
            vec![("A", "1"), ("B", "two words"), ("C", "x")]
        );
        assert!(split_assignment(&["lonely".to_owned()]).is_err());
        assert_eq!(image_key_warnings(&["NODE_NAME"]).len(), 0);
        assert_eq!(image_key_warnings(&["K8S_VERSION"]).len(), 1);
    }
}
