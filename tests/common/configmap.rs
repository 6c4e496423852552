//! A Kubernetes ConfigMap volume, written the way the kubelet's AtomicWriter writes it:
//! each version in a new `..<timestamp>` directory, `..data` re-pointed with one rename,
//! `<file> -> ..data/<file>` links, the old directory deleted last.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A ConfigMap volume written the way the kubelet's AtomicWriter does.
pub struct ConfigMapVolume {
    pub dir: PathBuf,
    version: AtomicUsize,
}

impl ConfigMapVolume {
    pub fn new(dir: &Path) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        ConfigMapVolume { dir: dir.to_owned(), version: AtomicUsize::new(0) }
    }

    /// Publishes `files` as the volume's new content.
    pub fn publish(&self, files: &[(&str, &str)]) {
        let n = self.version.fetch_add(1, Ordering::SeqCst);
        let old = std::fs::read_link(self.dir.join("..data")).ok();
        let ts = format!("..2026_11_25_16_00_00.{n:09}");
        let ts_dir = self.dir.join(&ts);
        std::fs::create_dir(&ts_dir).unwrap();
        for (name, text) in files {
            std::fs::write(ts_dir.join(name), text).unwrap();
        }
        let tmp = self.dir.join("..data_tmp");
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&ts, &tmp).unwrap();
        std::fs::rename(&tmp, self.dir.join("..data")).unwrap();
        for (name, _) in files {
            let link = self.dir.join(name);
            if std::fs::symlink_metadata(&link).is_err() {
                std::os::unix::fs::symlink(Path::new("..data").join(name), &link).unwrap();
            }
        }
        for e in std::fs::read_dir(&self.dir).unwrap() {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            if !name.starts_with('.') && !files.iter().any(|(f, _)| *f == name) {
                std::fs::remove_file(self.dir.join(&name)).unwrap();
            }
        }
        if let Some(old) = old {
            std::fs::remove_dir_all(self.dir.join(old)).unwrap();
        }
    }
}
