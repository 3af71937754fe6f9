//! `k8r`, the node agent: everything happens in the library.

fn main() {
    std::process::exit(k8r_node::main());
}
