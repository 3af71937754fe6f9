//! The k8r image manifest.
