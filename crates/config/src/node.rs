//! A node's settings: the build's configuration baked into its image, with the node's own
//! settings (kept on the card's recovery partition) over it.
//!
//! Two kinds of keys:
//!
//! - **image keys** ([`IMAGE_KEYS`]) say what the image contains: the Kubernetes version, the
//!   component versions, the CNI and the download mirrors it was built from. They always come
//!   from the image being run, so a node that installs a newer build gets the newer versions
//!   whatever its own file still says.
//! - **node keys** (all others: `KUBEADM_JOIN_STRING`, `HTTP_IMAGE_URL`, `NODE_NAME`,
//!   `CONTROL_PLANE_ENDPOINT`, …) belong to the node: a value in the node's own file wins
//!   (an empty one too: it means "not set"), a key it does not mention falls back to the
//!   image's value.
//!
//! Pure: [`RawSettings`] holds text values; [`crate::parse_cfg`] validates a rendered merge.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use crate::cfg_syntax::lex;
use crate::error::ConfigErrors;
use crate::keys::{self, KEYS};
use crate::render::quote_cfg;

/// Keys that describe the image, not the node.
pub const IMAGE_KEYS: &[&str] = &[
    "IMAGE",
    "K8S_VERSION",
    "ARCH",
    "CNI_TYPE",
    "CALICO_VERSION",
    "FLANNEL_VERSION",
    "ROOT_SIZE",
    "COMPRESSION",
    "CONTAINERD_VERSION",
    "RUNC_VERSION",
    "CNI_PLUGINS_VERSION",
    "CRICTL_VERSION",
    "K8S_RELEASE_URL",
    "GITHUB_URL",
    "GITHUB_RAW_URL",
];

/// Whether `name` is an image key.
pub fn is_image_key(name: &str) -> bool {
    IMAGE_KEYS.contains(&name)
}

/// The values of the known keys as written (an empty value means "not set"); keys the text
/// does not mention are absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawSettings {
    values: BTreeMap<&'static str, String>,
    unknown: Vec<(usize, String)>,
}

impl RawSettings {
    /// Reads a `variables.cfg` text: every syntax error at once (with `file:line`); unknown
    /// keys are kept aside (see [`RawSettings::unknown`]); for a key given twice the last line
    /// wins.
    ///
    /// # Errors
    /// The syntax errors of the text.
    pub fn parse(file: &Path, text: &str) -> Result<RawSettings, ConfigErrors> {
        let (assignments, errors) = lex(file, text);
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        let mut raw = RawSettings::default();
        for a in assignments {
            match keys::lookup(&a.key) {
                Some(doc) => {
                    raw.values.insert(doc.name, a.value);
                }
                None => raw.unknown.push((a.line, a.key)),
            }
        }
        Ok(raw)
    }

    /// `(line, key)` of the assignments whose key k8r does not know.
    pub fn unknown(&self) -> &[(usize, String)] {
        &self.unknown
    }

    /// The value of `name`, `None` when absent or empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// Whether the text mentions `name` (even with an empty value).
    pub fn mentions(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }

    /// Sets a known key (an empty value means "not set"). Does not validate the value: render
    /// and [`crate::parse_cfg`] the result for that.
    ///
    /// # Errors
    /// An unknown key, with the nearest known one when there is one.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), String> {
        let doc = keys::lookup(name).ok_or_else(|| match keys::suggest(name) {
            Some(s) => format!("{name} is not a setting; did you mean {s}?"),
            None => format!(
                "{name} is not a setting (see /usr/lib/k8r/variables.cfg for the known ones)"
            ),
        })?;
        self.values.insert(doc.name, value.to_owned());
        Ok(())
    }

    /// Forgets `name` (a merge then takes the image's value). Returns whether it was there.
    pub fn unset(&mut self, name: &str) -> bool {
        self.values.remove(name).is_some()
    }

    /// Only the node keys (what a node keeps of its own).
    #[must_use]
    pub fn node_keys(&self) -> RawSettings {
        RawSettings {
            values: self
                .values
                .iter()
                .filter(|(k, _)| !is_image_key(k))
                .map(|(k, v)| (*k, v.clone()))
                .collect(),
            unknown: Vec::new(),
        }
    }

    /// The image's settings with `node`'s over them (module docs). Does not touch disk.
    #[must_use]
    pub fn merged(image: &RawSettings, node: &RawSettings) -> RawSettings {
        let mut values = BTreeMap::new();
        for key in KEYS {
            let from_node = !is_image_key(key.name) && node.mentions(key.name);
            let source = if from_node { node } else { image };
            if let Some(v) = source.values.get(key.name) {
                values.insert(key.name, v.clone());
            }
        }
        RawSettings {
            values,
            unknown: Vec::new(),
        }
    }

    /// A `variables.cfg` with `header` (comment lines, each starting with `#`), then every
    /// key it mentions, in documented order, as `KEY="value"`.
    #[must_use]
    pub fn render(&self, header: &str) -> String {
        let mut out = String::new();
        for line in header.lines() {
            let _ = writeln!(out, "{line}");
        }
        for key in KEYS {
            if let Some(v) = self.values.get(key.name) {
                let _ = writeln!(out, "{}={}", key.name, quote_cfg(v));
            }
        }
        out
    }

    /// The keys whose values differ between `self` and `other` (absent and empty are the
    /// same), in documented order.
    pub fn changed_keys(&self, other: &RawSettings) -> Vec<&'static str> {
        KEYS.iter()
            .map(|k| k.name)
            .filter(|k| self.get(k) != other.get(k))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> RawSettings {
        RawSettings::parse(Path::new("t.cfg"), text).expect("parse")
    }

    #[test]
    fn image_keys_come_from_the_image_and_node_keys_from_the_node() {
        let image = raw(
            "IMAGE=\"u.img\"\nK8S_VERSION=\"1.32.1\"\nHTTP_IMAGE_URL=\"http://a/\"\nTOKEN_TTL=\"0\"\nCOMPRESSION=\"zstd\"\n",
        );
        let node = raw(
            "K8S_VERSION=\"1.31.2\"\nHTTP_IMAGE_URL=\"http://b/\"\nKUBEADM_JOIN_STRING=\"\"\nCOMPRESSION=\"xz\"\n",
        );
        let m = RawSettings::merged(&image, &node);
        assert_eq!(
            m.get("COMPRESSION"),
            Some("zstd"),
            "how the image was built is the image's"
        );
        assert_eq!(
            m.get("K8S_VERSION"),
            Some("1.32.1"),
            "the image's version wins"
        );
        assert_eq!(
            m.get("HTTP_IMAGE_URL"),
            Some("http://b/"),
            "the node's URL wins"
        );
        assert_eq!(
            m.get("TOKEN_TTL"),
            Some("0"),
            "not in the node file: the image's"
        );
        assert_eq!(m.get("IMAGE"), Some("u.img"));
        assert!(m.mentions("KUBEADM_JOIN_STRING") && m.get("KUBEADM_JOIN_STRING").is_none());
    }

    #[test]
    fn an_empty_node_value_unsets_the_images() {
        let image = raw("HTTP_IMAGE_URL=\"http://a/\"\n");
        let node = raw("HTTP_IMAGE_URL=\"\"\n");
        assert_eq!(
            RawSettings::merged(&image, &node).get("HTTP_IMAGE_URL"),
            None
        );
    }

    #[test]
    fn render_round_trips_in_documented_order() {
        let mut r = raw("TOKEN_TTL=\"24h\"\nK8S_VERSION=\"1.31.2\"\n");
        r.set("NODE_NAME", "pi-1").expect("set");
        let text = r.render("# header\n");
        assert_eq!(
            text,
            "# header\nK8S_VERSION=\"1.31.2\"\nTOKEN_TTL=\"24h\"\nNODE_NAME=\"pi-1\"\n"
        );
        assert_eq!(raw(&text), r);
    }

    #[test]
    fn unknown_keys_are_set_aside_and_refused_by_set() {
        let r = raw("K8S_VERSON=\"1.31.2\"\n");
        assert_eq!(r.unknown(), [(1, "K8S_VERSON".to_owned())]);
        let err = raw("").set("K8S_VERSON", "x").expect_err("unknown");
        assert!(err.contains("did you mean K8S_VERSION"), "{err}");
    }

    #[test]
    fn node_keys_drop_what_the_image_says() {
        let r = raw("K8S_VERSION=\"1.31.2\"\nNODE_NAME=\"a\"\nARCH=\"arm64\"\n").node_keys();
        assert!(!r.mentions("K8S_VERSION") && !r.mentions("ARCH"));
        assert_eq!(r.get("NODE_NAME"), Some("a"));
    }

    #[test]
    fn syntax_errors_name_file_and_line() {
        let err = RawSettings::parse(Path::new("n.cfg"), "A=1\nB=$(x)\n").expect_err("syntax");
        assert!(err.to_string().contains("n.cfg:2"), "{err}");
    }

    #[test]
    fn changed_keys_compare_values() {
        let a = raw("NODE_NAME=\"a\"\nTOKEN_TTL=\"\"\n");
        let b = raw("NODE_NAME=\"b\"\n");
        assert_eq!(a.changed_keys(&b), vec!["NODE_NAME"]);
    }
}
