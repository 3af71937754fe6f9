//! Downloading and verifying the Kubernetes node artefacts.
