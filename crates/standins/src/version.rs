//! Test stand-in plumbing: Kubernetes release versions (`1.31.2`, `v1.31.2`). It does not
//! handle pre-releases (`-rc.1`) or build metadata: the fixtures serve released versions only.

use std::fmt;

/// A released Kubernetes version `major.minor.patch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// Major.
    pub major: u32,
    /// Minor.
    pub minor: u32,
    /// Patch.
    pub patch: u32,
}

impl Version {
    /// A version from its parts.
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        Version {
            major,
            minor,
            patch,
        }
    }

    /// Parses `1.31.2` or `v1.31.2`.
    pub fn parse(s: &str) -> Option<Version> {
        let t = s.strip_prefix('v').unwrap_or(s);
        let mut parts = t.split('.');
        let mut next = || -> Option<u32> {
            let p = parts.next()?;
            if p.is_empty()
                || !p.bytes().all(|b| b.is_ascii_digit())
                || (p.len() > 1 && p.starts_with('0'))
            {
                return None;
            }
            p.parse().ok()
        };
        let v = Version::new(next()?, next()?, next()?);
        if parts.next().is_some() {
            return None;
        }
        Some(v)
    }

    /// `v1.31.2`.
    pub fn v(&self) -> String {
        format!("v{self}")
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl serde::Serialize for Version {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> serde::Deserialize<'de> for Version {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Version::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("bad version {s:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_with_and_without_v_and_orders() {
        assert_eq!(Version::parse("1.31.2"), Some(Version::new(1, 31, 2)));
        assert_eq!(Version::parse("v1.32.10"), Some(Version::new(1, 32, 10)));
        for bad in [
            "1.31",
            "1.31.2.3",
            "v1.31.x",
            "",
            "1.031.0",
            "1.31.2-rc.1",
            " 1.31.2",
        ] {
            assert_eq!(Version::parse(bad), None, "{bad}");
        }
        assert!(Version::new(1, 31, 9) < Version::new(1, 32, 0));
        assert_eq!(Version::new(1, 33, 0).v(), "v1.33.0");
    }
}
