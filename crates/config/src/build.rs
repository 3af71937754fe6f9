//! From assignments (either syntax) to a [`BuildConfig`]: key lookup, duplicates, unknown keys,
//! required keys, per-key rules, defaults and the checks that need several keys.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use super::cfg_syntax::Assignment;
use super::error::{ConfigError, ConfigErrors, ConfigWarning};
use super::join::join_string;
use super::keys;
use super::redact;
use super::render::{quote_cfg, quote_toml};
use super::types::{Cni, Components, Defaulted, Mirrors};
use super::validate::{self, CniKind, Hint, Problem};
use super::{BuildConfig, Purpose};

/// Which file syntax the assignments came from (for key spelling and hints).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Syntax {
    Cfg,
    Toml,
}

/// A value was refused; its error is already recorded.
struct Invalid;

struct Ctx<'a> {
    file: &'a Path,
    syntax: Syntax,
    values: HashMap<&'static str, &'a Assignment>,
    errors: Vec<ConfigError>,
    warnings: Vec<ConfigWarning>,
}

impl Ctx<'_> {
    /// The key as the user would write it in this file.
    fn spelled(&self, name: &'static str) -> String {
        match (self.values.get(name), self.syntax) {
            (Some(a), _) => a.key.clone(),
            (None, Syntax::Cfg) => name.to_string(),
            (None, Syntax::Toml) => name.to_ascii_lowercase(),
        }
    }

    fn write_hint(&self, key: &str, value: &str) -> String {
        match self.syntax {
            Syntax::Cfg => format!("write {key}={}", quote_cfg(value)),
            Syntax::Toml => format!("write {key} = {}", quote_toml(value)),
        }
    }

    fn error(&mut self, name: &'static str, value: Option<&str>, problem: Problem) {
        let key = self.spelled(name);
        let hint = problem.hint.map(|h| match h {
            Hint::Text(t) => t,
            Hint::Write(v) => self.write_hint(&key, &v),
        });
        self.errors.push(ConfigError {
            file: self.file.to_path_buf(),
            line: self.values.get(name).map(|a| a.line),
            key: Some(key),
            value: value.map(redact::join_command),
            expected: problem.expected,
            hint,
        });
    }

    /// The value of a key; `None` when absent or empty (empty means "not set").
    fn raw(&self, name: &'static str) -> Option<&str> {
        self.values
            .get(name)
            .map(|a| a.value.as_str())
            .filter(|v| !v.is_empty())
    }

    fn optional<T>(
        &mut self,
        name: &'static str,
        rule: impl FnOnce(&str) -> Result<T, Problem>,
    ) -> Result<Option<T>, Invalid> {
        let Some(value) = self.raw(name).map(str::to_string) else {
            return Ok(None);
        };
        match rule(&value) {
            Ok(v) => Ok(Some(v)),
            Err(problem) => {
                self.error(name, Some(&value), problem);
                Err(Invalid)
            }
        }
    }

    fn required<T>(
        &mut self,
        name: &'static str,
        rule: impl FnOnce(&str) -> Result<T, Problem>,
    ) -> Result<T, Invalid> {
        match self.optional(name, rule)? {
            Some(v) => Ok(v),
            None => {
                let example = keys::lookup(name).map_or("", |k| k.example);
                let key = self.spelled(name);
                let hint = self.write_hint(&key, example).replacen("write", "add", 1);
                let expected = format!("a value for {name}, which is required");
                self.error(name, None, Problem::new(expected).hint(hint));
                Err(Invalid)
            }
        }
    }

    fn setting_path(&self, name: &'static str, path: PathBuf) -> super::SettingPath {
        super::SettingPath {
            path,
            key: self.spelled(name),
            line: self.values.get(name).map(|a| a.line),
        }
    }

    fn warn(&mut self, line: Option<usize>, key: Option<String>, message: String) {
        self.warnings.push(ConfigWarning {
            file: self.file.to_path_buf(),
            line,
            key,
            message,
        });
    }
}

/// The known key an assignment sets, if any.
fn known(key: &str, syntax: Syntax) -> Option<&'static str> {
    let doc = match syntax {
        Syntax::Cfg => keys::lookup(key),
        Syntax::Toml if key.bytes().all(|b| !b.is_ascii_uppercase()) => {
            keys::lookup(&key.to_ascii_uppercase())
        }
        Syntax::Toml => keys::lookup(key),
    };
    doc.map(|d| d.name)
}

pub(crate) fn build(
    file: &Path,
    syntax: Syntax,
    assignments: &[Assignment],
    syntax_errors: Vec<ConfigError>,
    purpose: Purpose,
) -> Result<BuildConfig, ConfigErrors> {
    let mut ctx = Ctx {
        file,
        syntax,
        values: HashMap::new(),
        errors: syntax_errors,
        warnings: Vec::new(),
    };
    for a in assignments {
        let Some(name) = known(&a.key, syntax) else {
            let suggestion = keys::suggest(&a.key)
                .map(|s| {
                    let s = match syntax {
                        Syntax::Cfg => s.to_string(),
                        Syntax::Toml => s.to_ascii_lowercase(),
                    };
                    format!(" (did you mean {s}?)")
                })
                .unwrap_or_default();
            ctx.warn(
                Some(a.line),
                Some(a.key.clone()),
                format!("unknown key {}{suggestion}", a.key),
            );
            continue;
        };
        if let Some(first) = ctx.values.get(name) {
            let (first_key, first_line) = (first.key.clone(), first.line);
            ctx.errors.push(ConfigError {
                file: file.to_path_buf(),
                line: Some(a.line),
                key: Some(a.key.clone()),
                value: Some(redact::join_command(&a.value)),
                expected: format!(
                    "each key once, but {first_key} is already set on line {first_line}"
                ),
                hint: Some("delete one of the two lines".into()),
            });
            continue;
        }
        if a.value.chars().any(|c| c.is_control() && c != '\t') {
            ctx.errors.push(ConfigError {
                file: file.to_path_buf(),
                line: Some(a.line),
                key: Some(a.key.clone()),
                value: Some(redact::join_command(&a.value)),
                expected: "a single-line value without control characters".into(),
                hint: None,
            });
            continue;
        }
        ctx.values.insert(name, a);
    }
    let config = settings(&mut ctx, purpose);
    let Ctx {
        mut errors,
        warnings,
        ..
    } = ctx;
    match config {
        Ok(mut config) if errors.is_empty() => {
            config.warnings = warnings;
            config.source = file.to_path_buf();
            Ok(config)
        }
        _ => {
            // Lines in file order; missing keys (no line) last.
            errors.sort_by_key(|e| e.line.unwrap_or(usize::MAX));
            Err(ConfigErrors(errors))
        }
    }
}

/// Every key checked (all errors collected), defaults applied, cross-checks done.
fn settings(ctx: &mut Ctx<'_>, purpose: Purpose) -> Result<BuildConfig, Invalid> {
    let image_rule = |v: &str| validate::image(v).map(|()| PathBuf::from(v));
    let image = match purpose {
        Purpose::Build => ctx.required("IMAGE", image_rule).map(Some),
        Purpose::NodeSettings => ctx.optional("IMAGE", image_rule),
    };
    let k8s_version = ctx.required("K8S_VERSION", validate::k8s_version);
    let arch = ctx.optional("ARCH", validate::arch);
    let endpoint = ctx.optional("CONTROL_PLANE_ENDPOINT", |v| validate::endpoint(v, false));
    let join = ctx.optional("KUBEADM_JOIN_STRING", join_string);
    let ttl = ctx.optional("TOKEN_TTL", validate::token_ttl);
    let cni_kind = ctx.optional("CNI_TYPE", validate::cni_type);
    let cidr = ctx.optional("POD_NETWORK_CIDR", validate::cidr);
    let calico = ctx.optional("CALICO_VERSION", validate::version);
    let flannel = ctx.optional("FLANNEL_VERSION", validate::version);
    let http_image_url = ctx.optional("HTTP_IMAGE_URL", validate::image_url);
    let hostname_prefix = ctx.optional("HOSTNAME_PREFIX", validate::hostname_prefix);
    let node_name = ctx.optional("NODE_NAME", validate::node_name);
    let trial_timeout = ctx.optional("TRIAL_TIMEOUT", validate::trial_timeout);
    let kernel_cmdline = ctx.optional("KERNEL_CMDLINE", validate::kernel_cmdline);
    let root_size = ctx.optional("ROOT_SIZE", validate::size);
    let compression = ctx.optional("COMPRESSION", validate::compression);
    let containerd = ctx.optional("CONTAINERD_VERSION", validate::version);
    let runc = ctx.optional("RUNC_VERSION", validate::version);
    let cni_plugins = ctx.optional("CNI_PLUGINS_VERSION", validate::version);
    let crictl = ctx.optional("CRICTL_VERSION", validate::version);
    let k8s_release_url = ctx.optional("K8S_RELEASE_URL", validate::mirror_url);
    let github_url = ctx.optional("GITHUB_URL", validate::mirror_url);
    let github_raw_url = ctx.optional("GITHUB_RAW_URL", validate::mirror_url);
    let signing_key = ctx.optional("SIGNING_KEY", super::signing_keys::signing_key);
    let trusted_keys = ctx.optional("TRUSTED_KEYS", super::signing_keys::trusted_keys);
    let signing_key = signing_key?.map(|path| ctx.setting_path("SIGNING_KEY", path));
    let trusted_keys: Vec<_> = trusted_keys?
        .unwrap_or_default()
        .into_iter()
        .map(|path| ctx.setting_path("TRUSTED_KEYS", path))
        .collect();

    let (containerd, runc, cni_plugins, crictl) = (containerd?, runc?, cni_plugins?, crictl?);
    let (cni, cni_defaulted) = match cni_kind?.unwrap_or(CniKind::Calico) {
        CniKind::Calico => {
            let given = calico?;
            let version = given.unwrap_or(keys::DEFAULT_CALICO_VERSION);
            (Cni::Calico { version }, given.is_none())
        }
        CniKind::Flannel => {
            let given = flannel?;
            let version = given.unwrap_or(keys::DEFAULT_FLANNEL_VERSION);
            (Cni::Flannel { version }, given.is_none())
        }
    };
    let defaulted = Defaulted {
        containerd: containerd.is_none(),
        runc: runc.is_none(),
        cni_plugins: cni_plugins.is_none(),
        crictl: crictl.is_none(),
        cni: cni_defaulted,
    };
    let (network, prefix) = match cidr? {
        Some(c) => c,
        None => {
            let default = match cni {
                Cni::Calico { .. } => keys::DEFAULT_CALICO_CIDR,
                Cni::Flannel { .. } => keys::DEFAULT_FLANNEL_CIDR,
            };
            validate::cidr(default).map_err(|_| Invalid)?
        }
    };
    let pod_network_cidr = format!("{network}/{prefix}");
    let (endpoint, join) = (endpoint?, join?);
    check_overlap(
        ctx,
        network,
        prefix,
        &pod_network_cidr,
        endpoint.as_ref().and_then(|e| e.ip()),
        "CONTROL_PLANE_ENDPOINT",
    )?;
    check_overlap(
        ctx,
        network,
        prefix,
        &pod_network_cidr,
        join.as_ref().and_then(|j| j.endpoint.ip()),
        "KUBEADM_JOIN_STRING",
    )?;
    if let Some(j) = join
        .as_ref()
        .filter(|j| j.control_plane && j.certificate_key.is_none())
    {
        let line = ctx.values.get("KUBEADM_JOIN_STRING").map(|a| a.line);
        let key = ctx.spelled("KUBEADM_JOIN_STRING");
        ctx.warn(
            line,
            Some(key.clone()),
            format!(
                "{key} joins {} as a control-plane node without --certificate-key: the \
                 cluster certificates must then be copied to the node by hand",
                j.endpoint
            ),
        );
    }

    let k8s_version = k8s_version?;
    Ok(BuildConfig {
        image: image?.unwrap_or_default(),
        k8s_version,
        arch: arch?.unwrap_or(super::types::Arch::Arm64),
        control_plane_endpoint: endpoint,
        join,
        token_ttl: ttl?.unwrap_or_else(|| keys::DEFAULT_TOKEN_TTL.to_string()),
        cni,
        pod_network_cidr,
        http_image_url: http_image_url?,
        hostname_prefix: hostname_prefix?
            .unwrap_or_else(|| keys::DEFAULT_HOSTNAME_PREFIX.to_string()),
        node_name: node_name?,
        trial_timeout_secs: trial_timeout?.unwrap_or(keys::DEFAULT_TRIAL_TIMEOUT_SECS),
        kernel_cmdline: kernel_cmdline?.unwrap_or_default(),
        root_size: root_size?,
        compression: compression?.unwrap_or_default(),
        components: Components {
            containerd: containerd.unwrap_or(keys::DEFAULT_CONTAINERD_VERSION),
            runc: runc.unwrap_or(keys::DEFAULT_RUNC_VERSION),
            cni_plugins: cni_plugins.unwrap_or(keys::DEFAULT_CNI_PLUGINS_VERSION),
            crictl: crictl.unwrap_or(keys::default_crictl_version(k8s_version)),
            defaulted,
        },
        mirrors: Mirrors {
            k8s_release_url: k8s_release_url?
                .unwrap_or_else(|| keys::DEFAULT_K8S_RELEASE_URL.to_string()),
            github_url: github_url?.unwrap_or_else(|| keys::DEFAULT_GITHUB_URL.to_string()),
            github_raw_url: github_raw_url?
                .unwrap_or_else(|| keys::DEFAULT_GITHUB_RAW_URL.to_string()),
        },
        password_hash: None,
        signing_key,
        trusted_keys,
        warnings: Vec::new(),
        source: PathBuf::new(),
    })
}

/// Pods and the master must not share addresses: routes to the master would go to pods.
fn check_overlap(
    ctx: &mut Ctx<'_>,
    network: IpAddr,
    prefix: u8,
    cidr: &str,
    ip: Option<IpAddr>,
    source: &'static str,
) -> Result<(), Invalid> {
    let Some(ip) = ip.filter(|ip| validate::contains(network, prefix, *ip)) else {
        return Ok(());
    };
    let alternative = ["10.244.0.0/16", "172.30.0.0/16", "192.168.0.0/16"]
        .into_iter()
        .find(|c| validate::cidr(c).is_ok_and(|(n, p)| !validate::contains(n, p, ip)))
        .unwrap_or("10.244.0.0/16");
    let given = ctx.raw("POD_NETWORK_CIDR").is_some();
    let expected = format!(
        "a pod network that does not contain the master's address {ip} (from {source}){}",
        if given {
            ""
        } else {
            "; this is the CNI's default range"
        }
    );
    ctx.error(
        "POD_NETWORK_CIDR",
        Some(cidr),
        Problem::new(expected).write(alternative),
    );
    Err(Invalid)
}
