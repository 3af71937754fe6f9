//! Build configuration: variables.cfg / TOML / password_hash.
