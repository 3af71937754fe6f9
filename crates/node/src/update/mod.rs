//! `k8r update-image [DIR]`: a new build into the card's image store, from DIR or from
//! `HTTP_IMAGE_URL`; `k8r reinstall` then installs it. The manifest comes first and is checked
//! against this node (architecture, partition sizes, and on a master the version skew)
//! before any artefact is fetched; staging is in [`stage`].

pub mod content_range;
pub mod fetch;
pub mod stage;

use std::path::PathBuf;

use anyhow::{anyhow, Context, Result};
use k8r_card::store::VerifyOptions;
use k8r_card::Part;
use k8r_config::Version;
use k8r_manifest::signature::{self, TrustedKeys, Verdict};
use k8r_manifest::{Manifest, MANIFEST_FILE};

use crate::bootstrap::Refused;
use crate::build_info::BuildInfo;
use crate::card::{RecoverySource, ThisCard, P1};
use crate::failpoint::Failpoints;
use crate::host::Host;
use crate::kube::Kube;
use crate::settings::Settings;
use crate::skew::{self, Upgrade};
pub use fetch::Source;
pub use stage::{Incoming, Staged};

/// The source an `update-image` call means: DIR when given, else `HTTP_IMAGE_URL`.
pub fn source(dir: Option<PathBuf>, url: Option<String>, settings: &Settings) -> Result<Source> {
    if let Some(d) = dir {
        return Ok(Source::Dir(d));
    }
    if let Some(u) = url {
        return Ok(Source::Http(if u.ends_with('/') {
            u
        } else {
            format!("{u}/")
        }));
    }
    settings
        .config
        .http_image_url
        .as_ref()
        .map(|u| Source::Http(u.prefix.clone()))
        .ok_or_else(|| {
            anyhow!(
                "no directory given and HTTP_IMAGE_URL is not set: run `k8r update-image DIR` (a directory \
                 with the build's manifest.toml, image.img.xz and boot.tar.xz), or set the URL with \
                 `k8r config set HTTP_IMAGE_URL=http://server/path/`"
            )
        })
}

/// The checks of a build's manifest against this node, before anything is fetched.
pub fn check(
    m: &Manifest,
    build: &BuildInfo,
    root_partition: Option<u64>,
    control_plane: Option<Version>,
) -> Result<()> {
    if m.arch != build.arch {
        return Err(Refused(format!(
            "build {} is for {}, this node is {}: build the image with ARCH=\"{}\"",
            m.build_id, m.arch, build.arch, build.arch
        ))
        .into());
    }
    if let Some(p3) = root_partition {
        if m.root.size > p3 {
            return Err(Refused(format!(
                "build {}'s root is {} MiB, this card's root partition {} MiB: rebuild the image with \
                 ROOT_SIZE at most {} MiB, or reflash the card with the new bootable_image.img",
                m.build_id,
                // Rounded up: a root a little bigger than the partition must not read as
                // the same size.
                m.root.size.div_ceil(1 << 20),
                p3 >> 20,
                p3 >> 20
            ))
            .into());
        }
    }
    if let Some(cluster) = control_plane {
        let image: Version = m
            .kubernetes_version
            .parse()
            .map_err(|e| anyhow!("the manifest's kubernetes_version: {e}"))?;
        let decision = skew::control_plane(cluster, image);
        if matches!(
            decision,
            Upgrade::SkipsMinor { .. } | Upgrade::Downgrade { .. }
        ) {
            return Err(Refused(format!(
                "not staged: {}",
                decision.refusal().unwrap_or_default()
            ))
            .into());
        }
    }
    Ok(())
}

/// The signature check of `update-image`, before anything else is decided: a card that
/// trusts keys stages only a build signed by one of them (`k8r_manifest::signature`).
///
/// # Errors
/// [`Refused`] with the key IDs and the fix.
pub fn check_signature(
    text: &str,
    signature: Option<&str>,
    trusted: &TrustedKeys,
    source: &Source,
) -> Result<Verdict> {
    let verdict = signature::verify(text.as_bytes(), signature, trusted).map_err(|e| {
        Refused(format!(
            "not staged: {}: {e}",
            source.location(MANIFEST_FILE)
        ))
    })?;
    log::info!("signature: {}", verdict.describe(trusted));
    if let Some(warning) = plain_http_warning(source, trusted) {
        log::warn!("{warning}");
    }
    Ok(verdict)
}

/// The build's manifest as fetched from `source`, accepted: its signature checked against
/// the card's `trusted` keys ([`check_signature`]), then parsed and validated (a newer
/// format, overlapping ranges, … are refused here), before any artefact is fetched.
///
/// # Errors
/// [`Refused`] for the signature; the manifest's error, naming where it was read.
pub fn accept_manifest(
    text: &str,
    signature: Option<&str>,
    trusted: &TrustedKeys,
    source: &Source,
) -> Result<Manifest> {
    check_signature(text, signature, trusted, source)?;
    Manifest::parse(text).with_context(|| source.location(MANIFEST_FILE))
}

/// The warning for a build fetched over plain HTTP by a card that checks no signature.
pub fn plain_http_warning(source: &Source, trusted: &TrustedKeys) -> Option<String> {
    match source {
        Source::Http(url) if trusted.is_empty() && url.starts_with("http://") => Some(format!(
            "{url} is plain HTTP and this card trusts no signing key: anyone on the network \
             path can hand this node another build. Sign your builds (`k8r-builder keygen`, \
             then SIGNING_KEY in variables.cfg) and put the key on the cards (TRUSTED_KEYS, or \
             `k8r-builder inject --trusted-key`)"
        )),
        _ => None,
    }
}

/// Runs `update-image`.
pub fn run(
    host: &Host,
    recovery: &RecoverySource,
    settings: &Settings,
    source: &Source,
    failpoints: &Failpoints,
) -> Result<(Manifest, Staged)> {
    let build = BuildInfo::load(host)?;
    log::info!("reading {}", source.location(k8r_manifest::MANIFEST_FILE));
    let text = source.manifest()?;
    let signature = source.signature()?;
    let p1 = P1::open(host, recovery, true)?;
    let trust = p1.recovery().trust()?;
    let m = accept_manifest(&text, signature.as_deref(), &trust.keys, source)?;
    let root_partition = if host.is_system() {
        ThisCard::find(host).ok().and_then(|c| {
            c.layout
                .part(Part::Root)
                .ok()
                .map(k8r_card::disk::PartDev::bytes)
        })
    } else {
        None
    };
    let kube = Kube::new(host);
    let control_plane = host
        .path(crate::kube::APISERVER_MANIFEST)
        .exists()
        .then(|| kube.control_plane_version().ok())
        .flatten();
    check(&m, &build, root_partition, control_plane)?;
    log::info!(
        "build {} (Kubernetes {}, built {}): staging it from {}",
        m.build_id,
        m.kubernetes_version,
        m.created,
        source.location("")
    );
    let store = p1.recovery().store();
    let dir = store.dir().to_path_buf();
    let free = move || stage::free_bytes(&dir);
    let incoming = Incoming {
        manifest: &m,
        text: &text,
        signature: signature.as_deref(),
        trusted: &trust.keys,
    };
    let staged = stage::stage(
        &store,
        &incoming,
        source,
        &free,
        failpoints,
        VerifyOptions::for_this_machine(),
        &|name| Box::new(fetch::progress_reporter(name.to_owned())),
    )?;
    let _ = settings;
    Ok((m, staged))
}

#[cfg(test)]
mod check_tests;
