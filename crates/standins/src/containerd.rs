//! Test stand-in for `containerd`: a long-running daemon for a systemd `Type=notify` unit. It
//! creates and listens on `/run/containerd/containerd.sock`, sends `READY=1` to
//! `$NOTIFY_SOCKET` (a path, or `@name` in the abstract namespace), and waits for
//! SIGTERM/SIGINT. `containerd --version` prints a version line (the version marker holds the
//! containerd version for this copy). It does not speak the CRI or any gRPC: connections are
//! accepted and closed; it pulls and runs nothing.

use std::os::unix::net::{UnixDatagram, UnixListener};

use crate::args::{self, switch, value, Flag};
use crate::error::{fail, Failure, IoContext, Result};
use crate::{clock, fsutil, say, warn, Ctx};

/// The socket path (under the root).
pub const SOCKET: &str = "/run/containerd/containerd.sock";

const FLAGS: &[Flag] = &[
    value("config").short('c'),
    value("log-level").short('l'),
    value("address").short('a'),
    value("root"),
    value("state"),
    switch("version").short('v'),
];

/// Runs the containerd stand-in.
pub fn run(argv: &[String], ctx: &mut Ctx<'_>) -> Result<()> {
    let words = args::leading_words(argv);
    if words.first() == Some(&"config") && words.get(1) == Some(&"default") {
        say!(ctx, "{}", DEFAULT_CONFIG.trim_end());
        return Ok(());
    }
    if let Some(w) = words.first() {
        return Err(fail(format!(
            "containerd: No help topic for '{w}' (k8r stand-in: only `config default` and the daemon are supported)"
        )));
    }
    let p = args::parse(argv, FLAGS).map_err(|e| fail(format!("Incorrect Usage: {e}")))?;
    if p.on("version") {
        say!(
            ctx,
            "containerd github.com/containerd/containerd/v2 v{} k8r-standin",
            ctx.env.version
        );
        return Ok(());
    }
    let mut stop = crate::signals::Stop::register()?;
    let sock = ctx.env.path(SOCKET);
    if let Some(dir) = sock.parent() {
        std::fs::create_dir_all(dir).ctx("creating", dir)?;
    }
    fsutil::remove_file(&sock)?;
    let listener = UnixListener::bind(&sock).ctx("listening on", &sock)?;
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            drop(conn);
        }
    });
    let me = std::process::id();
    warn!(
        ctx,
        "time=\"{}\" level=info msg=\"serving...\" address={SOCKET} pid={me} (k8r stand-in: no CRI)",
        clock::rfc3339(ctx.env.now)
    );
    if let Some(target) = ctx.env.notify_socket.clone() {
        notify(&target, "READY=1\nSTATUS=k8r stand-in containerd serving\n")?;
    }
    warn!(
        ctx,
        "time=\"{}\" level=info msg=\"containerd successfully booted\"",
        clock::rfc3339(ctx.env.now)
    );
    let _ = ctx.err.flush();
    let sig = stop.wait();
    if let Some(target) = ctx.env.notify_socket.clone() {
        let _ = notify(&target, "STOPPING=1\n");
    }
    warn!(
        ctx,
        "time=\"{}\" level=info msg=\"Stop CRI service\" signal={sig}",
        clock::rfc3339(ctx.env.now)
    );
    fsutil::remove_file(&sock)?;
    Ok(())
}

/// Sends `message` to the systemd notification socket `target` (`/path` or `@abstract`).
/// The path is the real one systemd gave, not under the stand-in root.
pub fn notify(target: &str, message: &str) -> Result<()> {
    let io = |source| Failure::Io {
        context: format!("notifying {target}"),
        source,
    };
    let sock = UnixDatagram::unbound().map_err(io)?;
    if let Some(name) = target.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        let addr =
            std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).map_err(io)?;
        sock.send_to_addr(message.as_bytes(), &addr).map_err(io)?;
    } else {
        sock.send_to(message.as_bytes(), target).map_err(io)?;
    }
    Ok(())
}

const DEFAULT_CONFIG: &str = r#"# k8r stand-in: a short form of `containerd config default` (containerd 2.x)
version = 3
root = '/var/lib/containerd'
state = '/run/containerd'

[grpc]
  address = '/run/containerd/containerd.sock'

[plugins]
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = 'registry.k8s.io/pause:3.10'

  [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
    SystemdCgroup = false
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TestRoot;
    use crate::Tool;

    #[test]
    fn notify_reaches_a_path_socket_and_an_abstract_one() {
        let t = TestRoot::new();
        let path = t.path("/run/systemd/notify");
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        let rx = UnixDatagram::bind(&path).expect("bind");
        notify(&path.display().to_string(), "READY=1\n").expect("notify");
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..n], b"READY=1\n");

        use std::os::linux::net::SocketAddrExt;
        let name = format!("k8r-standin-test-{}", std::process::id());
        let addr =
            std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).expect("addr");
        let rx = UnixDatagram::bind_addr(&addr).expect("bind abstract");
        notify(&format!("@{name}"), "READY=1\n").expect("notify abstract");
        let n = rx.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..n], b"READY=1\n");
        assert!(notify("/nonexistent/notify", "READY=1\n").is_err());
    }

    #[test]
    fn version_and_config_default() {
        let t = TestRoot::new();
        let r = t.run(Tool::Containerd, &["--version"]);
        r.ok();
        assert_eq!(
            r.out,
            "containerd github.com/containerd/containerd/v2 v1.31.2 k8r-standin\n"
        );
        let r = t.run(Tool::Containerd, &["config", "default"]);
        r.ok();
        assert!(r.out.contains("version = 3"));
        t.run(Tool::Containerd, &["frobnicate"]).failed();
    }
}
