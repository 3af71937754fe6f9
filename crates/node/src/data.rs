//! The data partition on a running node: mounted at [`DATA_MOUNT`], its kept directories
//! bind-mounted over the root's, the kubelet's files and the node's identity copied in and
//! out, and the node's own record ([`NodeState`]). What is kept, and why, is
//! `k8r_card::data`'s table.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use k8r_card::data::{self, DATA_MOUNT};
use k8r_card::Part;
use rustix::mount::MountFlags;

use crate::host::{write_atomic, Host};

/// The data partition as seen by the agent: its mount point (or a test directory).
#[derive(Debug, Clone)]
pub struct Data {
    dir: PathBuf,
}

impl Data {
    /// The data partition mounted (or standing) at `dir`.
    pub fn at(dir: &Path) -> Data {
        Data {
            dir: dir.to_path_buf(),
        }
    }

    /// The default place on `host`.
    pub fn on(host: &Host) -> Data {
        Data::at(&host.path(DATA_MOUNT))
    }

    /// A path on the data partition.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    /// Whether it holds a cluster's control plane (`admin.conf` kept).
    pub fn holds_a_cluster(&self) -> bool {
        self.path(data::ADMIN_CONF).exists()
    }

    /// The node's record.
    pub fn state(&self) -> NodeState {
        fs::read_to_string(self.path(data::NODE_STATE))
            .map(|t| NodeState::parse(&t))
            .unwrap_or_default()
    }

    /// Writes the node's record.
    pub fn write_state(&self, state: &NodeState) -> Result<()> {
        write_atomic(
            &self.path(data::NODE_STATE),
            state.render().as_bytes(),
            0o644,
        )
    }
}

/// The node's own record on the data partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeState {
    /// `control-plane` or `worker`.
    pub role: Option<String>,
    /// The node name it registered with.
    pub node_name: Option<String>,
    /// The build that booted last.
    pub last_build: Option<String>,
}

impl NodeState {
    /// Parses `key=value` lines; unknown keys are ignored.
    pub fn parse(text: &str) -> NodeState {
        let mut s = NodeState::default();
        for (k, v) in k8r_card::image_root::parse_info(text) {
            let v = (!v.is_empty()).then_some(v);
            match k.as_str() {
                "role" => s.role = v,
                "node_name" => s.node_name = v,
                "last_build" => s.last_build = v,
                _ => {}
            }
        }
        s
    }

    /// The file's text.
    pub fn render(&self) -> String {
        format!(
            "# k8r node state\nrole={}\nnode_name={}\nlast_build={}\n",
            self.role.as_deref().unwrap_or_default(),
            self.node_name.as_deref().unwrap_or_default(),
            self.last_build.as_deref().unwrap_or_default()
        )
    }
}

/// The mount points in `/proc/self/mountinfo` (field 5, octal escapes decoded).
pub fn mount_points(host: &Host) -> Vec<PathBuf> {
    let text = fs::read_to_string(host.path("/proc/self/mountinfo")).unwrap_or_default();
    text.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape_mount(p)))
        .collect()
}

fn unescape_mount(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            let code: String = chars.by_ref().take(3).collect();
            if let Ok(n) = u8::from_str_radix(&code, 8) {
                out.push(char::from(n));
                continue;
            }
            out.push(c);
            out.push_str(&code);
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether `path` is a mount point on `host`.
pub fn is_mounted(host: &Host, path: &Path) -> bool {
    mount_points(host).iter().any(|m| m == path)
}

/// Mounts the data partition `dev` (ext4) at [`DATA_MOUNT`] unless it is mounted.
pub fn mount(host: &Host, dev: &Path) -> Result<Data> {
    let dir = host.path(DATA_MOUNT);
    if !is_mounted(host, &dir) {
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let data_fs = Part::Data.fs();
        let flags = data_fs.mount_flags() | MountFlags::NOATIME;
        rustix::mount::mount(dev, &dir, data_fs.mount_type(), flags, c"").with_context(|| {
            format!(
                "mounting the data partition {} on {}",
                dev.display(),
                dir.display()
            )
        })?;
    }
    Ok(Data::at(&dir))
}

/// Bind-mounts the kept directories for this node's role over the root's (module docs). On
/// the first boot a root directory that already has content (an image may preload container
/// images) is copied onto the data partition first, so nothing the image carries is hidden.
/// Returns the directories it mounted now.
pub fn bind_kept(host: &Host, data: &Data, control_plane: bool) -> Result<Vec<&'static str>> {
    let mut mounted = Vec::new();
    for kept in data::kept_dirs(control_plane) {
        let src = data.path(kept.on_data);
        let target = host.path(kept.in_root);
        if is_mounted(host, &target) {
            continue;
        }
        let fresh = !src.exists();
        fs::create_dir_all(&src).with_context(|| format!("creating {}", src.display()))?;
        fs::create_dir_all(&target).with_context(|| format!("creating {}", target.display()))?;
        if fresh {
            copy_tree(&target, &src)?;
        }
        if host.is_system() {
            rustix::mount::mount_bind(&src, &target).with_context(|| {
                format!("bind-mounting {} over {}", src.display(), target.display())
            })?;
        }
        mounted.push(kept.in_root);
    }
    Ok(mounted)
}

/// Copies the kubelet files kubeadm wrote onto the data partition (after init, join or an
/// upgrade).
pub fn save_kubelet_files(host: &Host, data: &Data) -> Result<()> {
    for (on_data, in_root) in data::KUBELET_FILES {
        if let Some(bytes) = host.read_opt(in_root)? {
            write_atomic(&data.path(on_data), &bytes, 0o644)?;
        }
    }
    Ok(())
}

/// Puts the kept kubelet files back into a freshly installed root.
pub fn restore_kubelet_files(host: &Host, data: &Data) -> Result<usize> {
    let mut n = 0;
    for (on_data, in_root) in data::KUBELET_FILES {
        if let Some(bytes) = crate::host::read_opt(&data.path(on_data))? {
            if host.read_opt(in_root)?.as_deref() != Some(&bytes[..]) {
                host.write(in_root, &bytes, 0o644)?;
                n += 1;
            }
        }
    }
    Ok(n)
}

/// Recursive copy of `from`'s content into `to` (files, directories, symlinks; modes kept).
pub fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let Ok(entries) = fs::read_dir(from) else {
        return Ok(());
    };
    for entry in entries {
        let entry = entry.with_context(|| format!("listing {}", from.display()))?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let meta = fs::symlink_metadata(&src).with_context(|| format!("{}", src.display()))?;
        if meta.is_dir() {
            fs::create_dir_all(&dst).with_context(|| format!("creating {}", dst.display()))?;
            fs::set_permissions(&dst, fs::Permissions::from_mode(meta.permissions().mode()))?;
            copy_tree(&src, &dst)?;
        } else if meta.file_type().is_symlink() {
            let target = fs::read_link(&src)?;
            let _ = fs::remove_file(&dst);
            std::os::unix::fs::symlink(target, &dst)
                .with_context(|| format!("linking {}", dst.display()))?;
        } else {
            fs::copy(&src, &dst)
                .with_context(|| format!("copying {} to {}", src.display(), dst.display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_state_round_trips() {
        let s = NodeState {
            role: Some("worker".into()),
            node_name: Some("k8r-1a2b3c4d".into()),
            last_build: Some("b1".into()),
        };
        assert_eq!(NodeState::parse(&s.render()), s);
        assert_eq!(NodeState::parse("garbage\n"), NodeState::default());
    }

    #[test]
    fn mountinfo_points_are_decoded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let host = Host::at(dir.path());
        fs::create_dir_all(host.path("/proc/self")).expect("dir");
        fs::write(
            host.path("/proc/self/mountinfo"),
            "22 1 8:3 / / rw,relatime - ext4 /dev/vda3 rw\n\
             30 22 8:4 / /var/lib/k8r-data rw - ext4 /dev/vda4 rw\n\
             31 22 0:5 / /mnt/with\\040space rw - tmpfs t rw\n",
        )
        .expect("mountinfo");
        assert!(is_mounted(&host, Path::new("/var/lib/k8r-data")));
        assert!(is_mounted(&host, Path::new("/mnt/with space")));
        assert!(!is_mounted(&host, Path::new("/var/lib/etcd")));
    }

    #[test]
    fn kept_dirs_take_the_roots_first_content_and_not_twice() {
        let dir = tempfile::tempdir().expect("tempdir");
        let host = Host::at(&dir.path().join("root"));
        let data = Data::at(&dir.path().join("data"));
        fs::create_dir_all(host.path("/var/lib/containerd/io")).expect("dir");
        fs::write(host.path("/var/lib/containerd/io/preloaded"), b"image").expect("file");
        let mounted = bind_kept(&host, &data, false).expect("bind");
        assert_eq!(
            mounted,
            vec!["/var/lib/containerd"],
            "a worker keeps containerd only"
        );
        assert_eq!(
            fs::read(data.path("kept/var-lib-containerd/io/preloaded")).expect("copied"),
            b"image"
        );
        assert!(!data.path("kept/etc-kubernetes").exists());
        // The second boot: the data copy is not overwritten from the (fresh) root.
        fs::write(data.path("kept/var-lib-containerd/io/preloaded"), b"newer").expect("w");
        bind_kept(&host, &data, false).expect("again");
        assert_eq!(
            fs::read(data.path("kept/var-lib-containerd/io/preloaded")).expect("r"),
            b"newer"
        );
        let master = bind_kept(&host, &data, true).expect("master");
        assert!(master.contains(&"/etc/kubernetes") && master.contains(&"/var/lib/etcd"));
    }

    #[test]
    fn kubelet_files_go_out_and_come_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let host = Host::at(&dir.path().join("root"));
        let data = Data::at(&dir.path().join("data"));
        host.write(
            "/var/lib/kubelet/config.yaml",
            b"kind: KubeletConfiguration\n",
            0o644,
        )
        .expect("w");
        save_kubelet_files(&host, &data).expect("save");
        fs::remove_file(host.path("/var/lib/kubelet/config.yaml")).expect("wipe");
        assert_eq!(restore_kubelet_files(&host, &data).expect("restore"), 1);
        assert_eq!(restore_kubelet_files(&host, &data).expect("again"), 0);
        assert!(host.path("/var/lib/kubelet/config.yaml").exists());
    }
}
