//! Test stand-in for `kubeadm`, `kubectl`, `kubelet` and `containerd`: one multi-call binary
//! that picks the tool from the name it was started under. It is not Kubernetes: it runs no
//! containers, serves no API and talks to no other machine (see `docs/standins.md`).

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    std::process::exit(k8r_standins::run_process(argv));
}
