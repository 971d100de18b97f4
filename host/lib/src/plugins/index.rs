//! The plugin index: what each library file exports (or why it was refused), keyed by path
//! and checked against its size, modification time, inode and device, so that a command
//! opens only the library it needs and a changed file is read again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// 2: descriptions are stored escaped and panic messages not at all; an index written before
/// (which may hold both) is not read.
const VERSION: u32 = 2;

/// The identity of a file's contents, as far as the file system tells cheaply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    size: u64,
    mtime_ns: i128,
    inode: u64,
    device: u64,
}

impl Stamp {
    pub fn of(meta: &std::fs::Metadata) -> Stamp {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            Stamp {
                size: meta.len(),
                mtime_ns: meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128,
                inode: meta.ino(),
                device: meta.dev(),
            }
        }
        #[cfg(not(unix))]
        {
            let mtime_ns = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_nanos() as i128)
                .unwrap_or(0);
            Stamp {
                size: meta.len(),
                mtime_ns,
                inode: 0,
                device: 0,
            }
        }
    }
}

/// One provider type as indexed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IndexedType {
    pub name: String,
    pub description: String,
    pub capabilities: u32,
}

/// What loading a file gave.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum IndexedOutcome {
    Loaded {
        api_version: String,
        types: Vec<IndexedType>,
        errors: Vec<String>,
    },
    Refused {
        kind: String,
        summary: String,
        detail: String,
        api_version: Option<String>,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    stamp: Stamp,
    outcome: IndexedOutcome,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    version: u32,
    api_version: String,
    entries: BTreeMap<PathBuf, Entry>,
}

/// An index file's contents, if they parse and are of this version.
fn parse(bytes: &[u8]) -> Option<File> {
    serde_json::from_slice::<File>(bytes)
        .ok()
        .filter(|f| f.version == VERSION && f.api_version == qlam_plugin_api::API_VERSION)
}

/// For the fuzz target `store_entry` and its corpus replay (not an API; reached as
/// `qlam_host::store::fuzzing::plugin_index`): runs `bytes` through what the plugin index
/// does with its file: parse it (whatever its version), look every entry up, and write it
/// back as [`PluginIndex::save`] does. Panics on a bug; a file that does not parse is fine
/// (the index starts empty).
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub fn fuzz_index(bytes: &[u8]) {
    let _ = parse(bytes);
    let Ok(file) = serde_json::from_slice::<File>(bytes) else {
        return;
    };
    let mut index = PluginIndex {
        path: PathBuf::new(),
        file,
        dirty: false,
        present: Default::default(),
    };
    let paths: Vec<(PathBuf, Stamp)> = index
        .file
        .entries
        .iter()
        .map(|(p, e)| (p.clone(), e.stamp))
        .collect();
    for (path, stamp) in paths {
        assert!(index.lookup(&path, stamp).is_some());
    }
    let _ = serde_json::to_vec(&index.file);
}

/// The index, read once and written back when it changed.
#[derive(Debug)]
pub struct PluginIndex {
    path: PathBuf,
    file: File,
    dirty: bool,
    /// The files looked up or inserted since it was read: the caller stamped them, so they
    /// exist, and saving need not look for them again.
    present: std::collections::HashSet<PathBuf>,
}

impl PluginIndex {
    /// Reads the index at `path`; a missing, damaged or other-version index is empty.
    pub fn open(path: PathBuf) -> PluginIndex {
        let file = std::fs::read(&path)
            .ok()
            .and_then(|b| parse(&b))
            .unwrap_or_else(|| File {
                version: VERSION,
                api_version: qlam_plugin_api::API_VERSION.into(),
                ..Default::default()
            });
        PluginIndex {
            path,
            file,
            dirty: false,
            present: Default::default(),
        }
    }

    /// The outcome remembered for `path` (a file that exists: `stamp` is its stamp now), if
    /// the file is unchanged.
    pub fn lookup(&mut self, path: &Path, stamp: Stamp) -> Option<&IndexedOutcome> {
        if !self.present.contains(path) {
            self.present.insert(path.to_owned());
        }
        self.file
            .entries
            .get(path)
            .filter(|e| e.stamp == stamp)
            .map(|e| &e.outcome)
    }

    /// Remembers an outcome.
    pub fn insert(&mut self, path: PathBuf, stamp: Stamp, outcome: IndexedOutcome) {
        self.present.insert(path.clone());
        self.file.entries.insert(path, Entry { stamp, outcome });
        self.dirty = true;
    }

    /// Writes the index back if it changed, dropping entries of files that are gone.
    pub fn save(&mut self) {
        let before = self.file.entries.len();
        // Seen by the caller since the last save: no need to look for them again (once more
        // for every indexed library on every command).
        let present = std::mem::take(&mut self.present);
        self.file
            .entries
            .retain(|p, _| present.contains(p) || p.exists());
        if !self.dirty && before == self.file.entries.len() {
            return;
        }
        let Ok(bytes) = serde_json::to_vec(&self.file) else {
            return;
        };
        let written = self
            .path
            .parent()
            .map_or(Ok(()), crate::fsutil::ensure_private_dir)
            .and_then(|()| crate::fsutil::write_cache(&self.path, &bytes, Some(0o600)));
        match written {
            Ok(()) => self.dirty = false,
            // Only speed is lost.
            Err(e) => tracing::debug!(
                "cannot write the plugin index `{}`: {e}",
                self.path.display()
            ),
        }
    }
}
