//! Customising the vendor root filesystem without mounting it: what k8r adds ([`content`]),
//! as a change list ([`plan`]) applied through debugfs ([`apply`]).

pub mod apply;
pub mod content;
pub mod plan;
