//! `userNamespaces:` in the node config: where the host IDs of pods come from.

use serde::Deserialize;

/// IDs per pod: the kubelet's block size, enough for every ID an image uses
/// (0–65535, `nobody` = 65534 among them).
pub const DEFAULT_IDS_PER_POD: u32 = 65536;
/// 2^30: far above the /etc/subuid blocks useradd hands out (100000 up to
/// 600100000 by default), below the top half that some tools treat as negative.
pub const DEFAULT_RANGE_START: u32 = 1 << 30;
/// 4096 pods' worth (2^28 IDs).
pub const DEFAULT_RANGE_SIZE: u32 = 4096 * DEFAULT_IDS_PER_POD;
/// Host IDs below this are the node's own users and the IDs images use; a range
/// touching them would make a container's root some host user.
pub const RESERVED_BELOW: u64 = 65536;
/// `(uid_t)-1` means "no change" to chown and is never a valid ID.
const INVALID_ID: u64 = u32::MAX as u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HostRange {
    pub start: u32,
    pub size: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct RangeConfig {
    pub host_range: HostRange,
    pub ids_per_pod: u32,
    /// The kubelet's root directory: a pod's emptyDirs are
    /// `<kubeletDir>/pods/<pod uid>/volumes/kubernetes.io~empty-dir/<name>`.
    pub kubelet_dir: std::path::PathBuf,
    /// Where the allocation table lives; `None`: `<stateDir>/userns`. A tmpfs such
    /// as `/run/hardrun/userns` makes its fsyncs free: allocations describe running
    /// containers, which a reboot ends anyway (runc keeps its own state in /run).
    pub state_dir: Option<std::path::PathBuf>,
}

impl Default for RangeConfig {
    fn default() -> Self {
        RangeConfig {
            host_range: HostRange { start: DEFAULT_RANGE_START, size: DEFAULT_RANGE_SIZE },
            ids_per_pod: DEFAULT_IDS_PER_POD,
            kubelet_dir: std::path::PathBuf::from("/var/lib/kubelet"),
            state_dir: None,
        }
    }
}

impl RangeConfig {
    /// Why the range cannot be used, if it cannot.
    pub fn validate(&self) -> Result<(), String> {
        if !self.kubelet_dir.is_absolute() {
            return Err(format!("kubeletDir must be an absolute path, got {:?}", self.kubelet_dir));
        }
        if let Some(dir) = self.state_dir.as_ref().filter(|d| !d.is_absolute()) {
            return Err(format!("stateDir must be an absolute path, got {dir:?}"));
        }
        let (start, size, block) = (self.host_range.start as u64, self.host_range.size as u64, self.ids_per_pod as u64);
        if block == 0 || block % DEFAULT_IDS_PER_POD as u64 != 0 {
            return Err(format!("idsPerPod must be a positive multiple of 65536, got {block}"));
        }
        if start < RESERVED_BELOW {
            return Err(format!("hostRange.start {start} overlaps host IDs 0-65535"));
        }
        if size == 0 || size % block != 0 {
            return Err(format!("hostRange.size {size} must be a positive multiple of idsPerPod ({block})"));
        }
        if start + size > INVALID_ID {
            return Err(format!("hostRange {start}+{size} goes past the largest valid ID {}", INVALID_ID - 1));
        }
        Ok(())
    }

    /// The first host ID of every block, in order.
    pub fn blocks(&self) -> impl Iterator<Item = u32> + '_ {
        let n = self.host_range.size / self.ids_per_pod;
        (0..n).map(move |i| self.host_range.start + i * self.ids_per_pod)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_clear_of_subuid_defaults() {
        let d = RangeConfig::default();
        d.validate().unwrap();
        assert!(d.host_range.start as u64 > 600_100_000 + 65536);
        assert_eq!(d.blocks().count(), 4096);
    }

    #[test]
    fn edges() {
        let r = |start, size, ids_per_pod| RangeConfig {
            host_range: HostRange { start, size },
            ids_per_pod,
            ..RangeConfig::default()
        };
        assert!(r(65536, 65536, 65536).validate().is_ok());
        assert!(r(65535, 65536, 65536).validate().is_err());
        assert!(r(u32::MAX - 65536, 65536, 65536).validate().is_ok(), "last id is u32::MAX - 1");
        assert!(r(u32::MAX - 65535, 65536, 65536).validate().is_err());
        assert!(r(100_000_000, 3 * 65536, 131072).validate().is_err());
        assert_eq!(r(100_000_000, 4 * 65536, 131072).blocks().collect::<Vec<_>>(), [100_000_000, 100_131_072]);
    }
}
