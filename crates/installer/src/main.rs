//! PID 1 of the k8r recovery initramfs: everything happens in the library.

fn main() {
    k8r_installer::run()
}
