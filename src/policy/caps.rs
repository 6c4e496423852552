//! Capability names as policies write them: `CAP_SYS_ADMIN` or `SYS_ADMIN` (the
//! Kubernetes spelling), any case, checked against oci-spec's list.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
#[error("unknown capability {0:?}")]
pub struct UnknownCapability(pub String);

/// A known capability, stored in its canonical `CAP_…` spelling.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CapName(String);

impl CapName {
    pub fn new(name: &str) -> Result<Self, UnknownCapability> {
        let upper = name.trim().to_ascii_uppercase();
        let canonical = if upper.starts_with("CAP_") { upper } else { format!("CAP_{upper}") };
        // oci-spec's enum is the list of capabilities the runtime spec knows.
        serde_json::from_value::<oci_spec::runtime::Capability>(serde_json::Value::String(canonical.clone()))
            .map_err(|_| UnknownCapability(name.to_owned()))?;
        Ok(CapName(canonical))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for CapName {
    type Err = UnknownCapability;
    fn from_str(s: &str) -> Result<Self, UnknownCapability> {
        CapName::new(s)
    }
}

impl fmt::Display for CapName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for CapName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for CapName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        CapName::new(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings() {
        assert_eq!(CapName::new("SYS_ADMIN").unwrap().as_str(), "CAP_SYS_ADMIN");
        assert_eq!(CapName::new("cap_net_raw").unwrap().as_str(), "CAP_NET_RAW");
        assert_eq!(CapName::new("CAP_BPF").unwrap().as_str(), "CAP_BPF");
        assert!(CapName::new("CAP_MAKE_COFFEE").is_err());
        assert!(CapName::new("").is_err());
    }
}
