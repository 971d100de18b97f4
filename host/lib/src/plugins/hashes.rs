//! SHA-256 of plugin files for `qlam plugins list`, remembered next to the plugin index and
//! keyed like it (path, size, modification time, inode, device), so that listing a hundred
//! libraries does not read a hundred libraries. For display only: a pin is always checked
//! against a hash of the very descriptor that gets loaded (see `trust`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::plugins::index::Stamp;

#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    entries: BTreeMap<PathBuf, (Stamp, String)>,
}

/// The remembered hashes.
#[derive(Debug)]
pub struct PluginHashes {
    path: Option<PathBuf>,
    file: File,
    dirty: bool,
}

impl PluginHashes {
    /// The cache in the user's cache folder (`None`: hash every time).
    pub fn open(path: Option<PathBuf>) -> PluginHashes {
        let file = path
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        PluginHashes {
            path,
            file,
            dirty: false,
        }
    }

    /// The default location: beside the plugin index.
    pub fn default_path() -> Option<PathBuf> {
        crate::paths::plugin_index_file().map(|p| p.with_file_name("plugin-hashes.json"))
    }

    /// The SHA-256 (hex) of the regular file at `path`, or `None` if it is not one or cannot
    /// be read.
    pub fn sha256(&mut self, path: &Path) -> Option<String> {
        let meta = std::fs::metadata(path).ok().filter(|m| m.is_file())?;
        let stamp = Stamp::of(&meta);
        if let Some((s, h)) = self.file.entries.get(path) {
            if *s == stamp {
                return Some(h.clone());
            }
        }
        let mut f = std::fs::File::open(path).ok()?;
        // The stamp of what was hashed: the descriptor's, not the path's of a moment ago.
        let stamp = Stamp::of(&f.metadata().ok()?);
        let h = crate::plugins::trust::sha256(&mut f).ok()?;
        self.file
            .entries
            .insert(path.to_owned(), (stamp, h.clone()));
        self.dirty = true;
        Some(h)
    }

    /// Writes the cache back if it changed, forgetting files that are gone (best effort).
    pub fn save(&mut self) {
        let Some(path) = &self.path else { return };
        if !self.dirty {
            return;
        }
        self.file.entries.retain(|p, _| p.exists());
        if let Some(dir) = path.parent() {
            let _ = crate::fsutil::ensure_private_dir(dir);
        }
        if let Ok(bytes) = serde_json::to_vec(&self.file) {
            let _ = crate::fsutil::write_cache(path, &bytes, Some(0o600));
        }
        self.dirty = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_remembered_until_the_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache/plugin-hashes.json");
        let lib = dir.path().join("liba.so");
        std::fs::write(&lib, b"abc").unwrap();
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        let mut h = PluginHashes::open(Some(cache.clone()));
        assert_eq!(h.sha256(&lib).as_deref(), Some(abc));
        h.save();
        // Remembered: a second cache instance answers from the file...
        let mut h = PluginHashes::open(Some(cache.clone()));
        assert_eq!(h.sha256(&lib).as_deref(), Some(abc));
        assert!(!h.dirty);
        // ...until the file is replaced (new inode and size).
        std::fs::write(dir.path().join("new"), b"abcd").unwrap();
        std::fs::rename(dir.path().join("new"), &lib).unwrap();
        assert_eq!(
            h.sha256(&lib).as_deref(),
            Some("88d4266fd4e6338d13b845fcf289579d209c897823b9217da3e161936f031589")
        );
        assert_eq!(h.sha256(dir.path()), None, "a folder has no hash");
    }
}
