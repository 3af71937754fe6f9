//! Placeholder crate: filled by its own issue (see the issue tracker). It has no functionality yet.
