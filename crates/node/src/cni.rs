//! The pod network add-on the image carries (`/usr/lib/k8r/cni/`), edited for the node's
//! `POD_NETWORK_CIDR` before the first master applies it.
//!
//! - calico (`calico.yaml`, the manifest install): the `CALICO_IPV4POOL_CIDR` environment
//!   entry of calico-node, commented out upstream (default `192.168.0.0/16`), is set;
//! - flannel (`kube-flannel.yml`): `"Network"` in `net-conf.json` ("If you use custom podCIDR
//!   (not 10.244.0.0/16) you first need to download the above manifest and modify the
//!   network", flannel's README).
//!
//! Text edits, not a YAML round trip: the manifest stays byte-for-byte upstream's except the
//! lines changed, so it can be diffed against the release. Pure.

/// Why a manifest cannot carry the pod network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CniError {
    /// The manifest has no place for the CIDR.
    #[error("{manifest} has no {what}: it cannot be given POD_NETWORK_CIDR={cidr} (is it the upstream manifest?)")]
    NoSetting {
        /// The manifest's file name.
        manifest: String,
        /// What was looked for.
        what: &'static str,
        /// The wanted CIDR.
        cidr: String,
    },
}

/// `manifest` (named `name`) with `cidr` as its pod network.
///
/// # Errors
/// [`CniError::NoSetting`] when the manifest has no such setting and the CIDR is not the
/// add-on's own default.
pub fn set_pod_cidr(name: &str, manifest: &str, cidr: &str) -> Result<String, CniError> {
    if name.contains("flannel") {
        flannel(name, manifest, cidr)
    } else {
        calico(name, manifest, cidr)
    }
}

fn calico(name: &str, manifest: &str, cidr: &str) -> Result<String, CniError> {
    let mut out = Vec::new();
    let mut lines = manifest.lines().peekable();
    let mut done = false;
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        let uncommented = trimmed.trim_start_matches('#').trim_start();
        if uncommented == "- name: CALICO_IPV4POOL_CIDR" {
            // The entry's own indentation: where its `#` was, or where it is.
            out.push(format!("{indent}- name: CALICO_IPV4POOL_CIDR"));
            if let Some(next) = lines.peek() {
                if next
                    .trim_start()
                    .trim_start_matches('#')
                    .trim_start()
                    .starts_with("value:")
                {
                    lines.next();
                }
            }
            out.push(format!("{indent}  value: \"{cidr}\""));
            done = true;
            continue;
        }
        out.push(line.to_owned());
    }
    if !done {
        if cidr == "192.168.0.0/16" {
            return Ok(manifest.to_owned());
        }
        return Err(CniError::NoSetting {
            manifest: name.to_owned(),
            what: "CALICO_IPV4POOL_CIDR entry",
            cidr: cidr.to_owned(),
        });
    }
    Ok(join(&out, manifest))
}

fn flannel(name: &str, manifest: &str, cidr: &str) -> Result<String, CniError> {
    let mut out = Vec::new();
    let mut done = false;
    for line in manifest.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("\"Network\":") {
            let indent = &line[..line.len() - trimmed.len()];
            let comma = if trimmed.trim_end().ends_with(',') {
                ","
            } else {
                ""
            };
            out.push(format!("{indent}\"Network\": \"{cidr}\"{comma}"));
            done = true;
        } else {
            out.push(line.to_owned());
        }
    }
    if !done {
        if cidr == "10.244.0.0/16" {
            return Ok(manifest.to_owned());
        }
        return Err(CniError::NoSetting {
            manifest: name.to_owned(),
            what: "\"Network\" in net-conf.json",
            cidr: cidr.to_owned(),
        });
    }
    Ok(join(&out, manifest))
}

fn join(lines: &[String], original: &str) -> String {
    let mut s = lines.join("\n");
    if original.ends_with('\n') {
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const CALICO: &str = "\
kind: DaemonSet
spec:
  template:
    spec:
      containers:
        - name: calico-node
          env:
            # The default IPv4 pool to create on startup if none exists.
            # - name: CALICO_IPV4POOL_CIDR
            #   value: \"192.168.0.0/16\"
            - name: CALICO_DISABLE_FILE_LOGGING
              value: \"true\"
";

    const FLANNEL: &str = "\
  net-conf.json: |
    {
      \"Network\": \"10.244.0.0/16\",
      \"EnableNFTables\": false,
      \"Backend\": {
        \"Type\": \"vxlan\"
      }
    }
";

    #[test]
    fn calico_gets_its_pool() {
        let out = set_pod_cidr("calico.yaml", CALICO, "10.244.0.0/16").expect("edit");
        assert!(out.contains("            - name: CALICO_IPV4POOL_CIDR\n              value: \"10.244.0.0/16\"\n"), "{out}");
        assert!(!out.contains("#   value"), "{out}");
        assert_eq!(
            out.lines().count(),
            CALICO.lines().count(),
            "only the two lines changed"
        );
        // It parses, and the env list has the entry.
        let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(&out).expect("yaml");
        let env = &v["spec"]["template"]["spec"]["containers"][0]["env"];
        assert_eq!(env[0]["name"], "CALICO_IPV4POOL_CIDR");
        assert_eq!(env[0]["value"], "10.244.0.0/16");
        // Applying it again changes nothing more.
        assert_eq!(
            set_pod_cidr("calico.yaml", &out, "10.244.0.0/16").expect("again"),
            out
        );
    }

    #[test]
    fn flannel_gets_its_network() {
        let out = set_pod_cidr("kube-flannel.yml", FLANNEL, "10.42.0.0/16").expect("edit");
        assert!(
            out.contains("      \"Network\": \"10.42.0.0/16\",\n"),
            "{out}"
        );
        let json = out.lines().skip(1).collect::<Vec<_>>().join("\n");
        let v: serde_json::Value = serde_json::from_str(&json).expect("net-conf.json stays JSON");
        assert_eq!(v["Network"], "10.42.0.0/16");
    }

    #[test]
    fn a_manifest_without_the_setting_only_takes_its_default() {
        let plain = "kind: Namespace\nmetadata:\n  name: x\n";
        assert_eq!(
            set_pod_cidr("calico.yaml", plain, "192.168.0.0/16").expect("default"),
            plain
        );
        let err = set_pod_cidr("calico.yaml", plain, "10.1.0.0/16").expect_err("no place");
        assert!(err.to_string().contains("CALICO_IPV4POOL_CIDR"), "{err}");
        let err = set_pod_cidr("kube-flannel.yml", plain, "10.1.0.0/16").expect_err("no place");
        assert!(err.to_string().contains("net-conf.json"), "{err}");
    }
}
