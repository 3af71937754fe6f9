//! Failpoints in the agent's commit sequences (image staging): armed from the environment
//! (`K8R_FAILPOINT=name[,name]`) or the kernel command line (`k8r.failpoint=`), a failpoint
//! stops the sequence right there, as a power cut would: no cleanup runs after it.

/// Armed failpoints.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Failpoints {
    armed: Vec<String>,
}

/// A failpoint stopped the sequence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("k8r-failpoint: {0}")]
pub struct Hit(pub String);

impl Failpoints {
    /// Failpoints named in `env` (`K8R_FAILPOINT`) and `cmdline` (`k8r.failpoint=`).
    pub fn from_sources(env: Option<&str>, cmdline: &str) -> Failpoints {
        let mut armed: Vec<String> = env
            .into_iter()
            .flat_map(|v| v.split(','))
            .chain(
                cmdline
                    .split_whitespace()
                    .filter_map(|t| t.strip_prefix("k8r.failpoint="))
                    .flat_map(|v| v.split(',')),
            )
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .collect();
        armed.dedup();
        Failpoints { armed }
    }

    /// The failpoints of this process.
    pub fn from_system() -> Failpoints {
        let env = std::env::var("K8R_FAILPOINT").ok();
        let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
        Failpoints::from_sources(env.as_deref(), &cmdline)
    }

    /// Only `name` armed (tests).
    pub fn only(name: &str) -> Failpoints {
        Failpoints {
            armed: vec![name.to_owned()],
        }
    }

    /// Stops here if `name` is armed.
    ///
    /// # Errors
    /// [`Hit`] when armed.
    pub fn hit(&self, name: &str) -> Result<(), Hit> {
        if self.armed.iter().any(|a| a == name) {
            log::warn!("k8r-failpoint: {name}");
            return Err(Hit(name.to_owned()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources() {
        let f = Failpoints::from_sources(Some("a,b"), "quiet k8r.failpoint=c root=/dev/vda3");
        assert!(f.hit("a").is_err() && f.hit("b").is_err() && f.hit("c").is_err());
        assert!(f.hit("d").is_ok());
        assert_eq!(Failpoints::only("x").hit("x"), Err(Hit("x".into())));
        assert!(Failpoints::default().hit("x").is_ok());
    }
}
