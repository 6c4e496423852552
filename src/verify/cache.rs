//! Successful verdicts, reused for a TTL so a repeat create of the same image costs a
//! file read. Keyed by the image name, the digest and a hash of the trust material:
//! changing a key, identity or rule misses the cache. Failures are never stored.
//! Files are written to a temp name and renamed, so a reader sees a whole verdict or
//! none; anything unreadable is a miss.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::cosign::Signer;
use super::trust::{hex, Requirement};

/// Largest cache file read back (a verdict names a few signers).
const MAX_ENTRY_BYTES: u64 = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    key: String,
    /// Unix seconds after which the entry is stale.
    expires: i64,
    signers: Vec<Signer>,
}

pub struct VerdictCache {
    dir: PathBuf,
    ttl_seconds: u64,
}

impl VerdictCache {
    pub fn new(state_dir: &Path, ttl_seconds: u64) -> Self {
        VerdictCache { dir: state_dir.join("verify-cache"), ttl_seconds }
    }

    pub fn key(image_name: &str, digest: &str, requirements: &[Requirement]) -> String {
        let mut h = Sha256::new();
        for part in [image_name, digest, &Requirement::fingerprint(requirements)] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        hex(&h.finalize())
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.json"))
    }

    /// The signers of a fresh successful verdict, if there is one.
    pub fn get(&self, key: &str, now: i64) -> Option<Vec<Signer>> {
        if self.ttl_seconds == 0 {
            return None;
        }
        // A symlink is never followed, and an entry counts only in a directory nobody but
        // root can write to: a cached verdict stands in for a signature check.
        let file = crate::fsutil::open_regular(&self.path(key), true).ok()?;
        let bytes = crate::fsutil::read_capped_from(file, MAX_ENTRY_BYTES).ok()?;
        if let Err(problem) = crate::fsutil::check_controlled_by_root(&self.dir) {
            tracing::warn!(%problem, "verdict cache ignored");
            return None;
        }
        let entry: Entry = serde_json::from_slice(&bytes).ok()?;
        // The key inside guards against a file copied or renamed to another name.
        (entry.key == key && now < entry.expires && entry.expires <= now + self.ttl_seconds as i64)
            .then_some(entry.signers)
    }

    /// Stores a successful verdict. Errors are for the caller to log: a cache that
    /// cannot be written only costs the next create a registry round trip.
    pub fn put(&self, key: &str, signers: &[Signer], now: i64) -> std::io::Result<()> {
        if self.ttl_seconds == 0 {
            return Ok(());
        }
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&self.dir)?;
        let entry = Entry { key: key.to_owned(), expires: now + self.ttl_seconds as i64, signers: signers.to_vec() };
        let bytes = serde_json::to_vec(&entry).expect("entry serializes");
        crate::fsutil::write_atomic(&self.path(key), &bytes, 0o600)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signers() -> Vec<Signer> {
        vec![Signer::Key { fingerprint: "sha256:ab".into() }]
    }

    #[test]
    fn fresh_entries_hit_and_stale_or_foreign_ones_miss() {
        let dir = tempfile::tempdir().unwrap();
        let cache = VerdictCache::new(dir.path(), 60);
        let key = VerdictCache::key("r/a", "sha256:00", &[]);
        assert_eq!(cache.get(&key, 1000), None);
        cache.put(&key, &signers(), 1000).unwrap();
        assert_eq!(cache.get(&key, 1059), Some(signers()));
        assert_eq!(cache.get(&key, 1060), None, "expired");
        assert_eq!(cache.get(&key, 900), None, "an expiry past now + ttl is not trusted (clock went back)");
        let other = VerdictCache::key("r/a", "sha256:01", &[]);
        std::fs::copy(cache.path(&key), cache.path(&other)).unwrap();
        assert_eq!(cache.get(&other, 1000), None, "a file under another key's name");
        std::fs::write(cache.path(&key), b"{garbage").unwrap();
        assert_eq!(cache.get(&key, 1000), None);
    }

    #[test]
    fn entries_through_symlinks_or_in_a_directory_others_can_write_are_ignored() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let cache = VerdictCache::new(&dir.path().join("cache"), 60);
        let key = VerdictCache::key("r/a", "sha256:00", &[]);
        cache.put(&key, &signers(), 1000).unwrap();
        assert_eq!(cache.get(&key, 1000), Some(signers()));
        let mode = std::fs::metadata(dir.path().join("cache")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        std::fs::set_permissions(dir.path().join("cache"), std::fs::Permissions::from_mode(0o777)).unwrap();
        assert_eq!(cache.get(&key, 1000), None, "a world-writable cache could hold forged verdicts");
        std::fs::set_permissions(dir.path().join("cache"), std::fs::Permissions::from_mode(0o700)).unwrap();
        let planted = dir.path().join("planted.json");
        std::fs::rename(cache.path(&key), &planted).unwrap();
        std::os::unix::fs::symlink(&planted, cache.path(&key)).unwrap();
        assert_eq!(cache.get(&key, 1000), None, "a symlinked entry is not followed");
    }

    #[test]
    fn zero_ttl_never_caches() {
        let dir = tempfile::tempdir().unwrap();
        let cache = VerdictCache::new(dir.path(), 0);
        cache.put("k", &signers(), 0).unwrap();
        assert_eq!(cache.get("k", 0), None);
        assert!(!dir.path().join("verify-cache").exists());
    }
}
