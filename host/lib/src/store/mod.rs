//! The file credential store: one JSON file per (context, provider), private, replaced
//! atomically.
//!
//! Layout: `<root>/<context>/<provider>.json` with `{"version": 1, "entries": {key: value}}`.
//! Names are percent-encoded where they are not plain (`[A-Za-z0-9._-]`, no leading dot).
//! A file that does not parse is moved aside as `*.corrupt-<time>` with a warning and treated
//! as empty: "not logged in", never a crash.

pub(crate) mod answers;
pub(crate) mod keyring;
pub(crate) mod lock;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fsutil;

/// A credential store in files.
#[derive(Debug)]
pub struct FileStore {
    root: PathBuf,
    /// Serialises read-modify-write within this process.
    write_lock: Mutex<()>,
}

#[derive(Serialize, Deserialize, Default)]
struct Entry {
    version: u32,
    entries: BTreeMap<String, String>,
}

/// A credential file's contents, as [`FileStore`] reads them.
fn parse_entry(bytes: &[u8]) -> serde_json::Result<Entry> {
    serde_json::from_slice::<Entry>(bytes)
}

/// A credential file's contents, as [`FileStore`] writes them.
fn encode_entry(entry: &mut Entry) -> Vec<u8> {
    entry.version = 1;
    serde_json::to_vec_pretty(entry).expect("a map of strings serialises")
}

/// For the fuzz target `store_entry` and its corpus replay (not an API; reached as
/// [`fuzzing::entry`]): runs `bytes` through what the store does with a credential file:
/// parse it and, when it parses, write it again and read that back, which must give the
/// same values. Panics on a bug; a file that does not parse is fine (the store moves it
/// aside).
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub fn fuzz_entry(bytes: &[u8]) {
    let Ok(mut entry) = parse_entry(bytes) else {
        return;
    };
    let again = parse_entry(&encode_entry(&mut entry)).expect("a written entry reads back");
    assert!(
        again.entries == entry.entries,
        "a written entry reads back the same"
    );
}

/// Hooks for the fuzz target `store_entry` and its corpus replay in the tests (not an API):
/// the host's state files as the host reads and writes them.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    pub use super::fuzz_entry as entry;
    pub use crate::plugins::index::fuzz_index as plugin_index;
    pub use crate::store::answers::fuzz_answer_file as answer_file;

    /// One input through all three: a credential file, an answer cache file, the plugin
    /// index.
    pub fn state_file(bytes: &[u8]) {
        entry(bytes);
        answer_file(bytes);
        plugin_index(bytes);
    }
}

fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for (i, b) in name.bytes().enumerate() {
        let plain = b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || (b == b'.' && i > 0);
        if plain {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A credential file must be ours and private: one owned by another user is refused (someone
/// could have planted it); one readable by group or others is repaired to 0600, with a
/// warning.
fn check_private(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let meta = std::fs::metadata(path).map_err(|e| {
            Error::store(format!("cannot read credential file `{}`", path.display())).with_source(e)
        })?;
        let me = crate::sys::effective_uid();
        if meta.uid() != me {
            return Err(Error::store(format!(
                "credential file `{}` is owned by user {}, not by you (user {me}); refusing to use it: remove it, or fix its owner",
                path.display(),
                meta.uid()
            )));
        }
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(|e| {
                Error::store(format!("credential file `{}` is readable by others (mode {mode:o}) and cannot be fixed", path.display())).with_source(e)
            })?;
            tracing::warn!(
                "credential file `{}` was readable by others (mode {mode:o}); changed it to 600",
                path.display()
            );
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

impl FileStore {
    /// A store rooted at `root` (created on first write, 0700).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        FileStore {
            root: root.into(),
            write_lock: Mutex::new(()),
        }
    }

    /// The root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file that holds a provider's values.
    pub fn entry_path(&self, context: &str, provider: &str) -> PathBuf {
        self.root
            .join(encode(context))
            .join(format!("{}.json", encode(provider)))
    }

    fn read(&self, path: &Path) -> Result<Entry> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Entry::default()),
            Err(e) => {
                return Err(Error::store(format!(
                    "cannot read credential file `{}`",
                    path.display()
                ))
                .with_source(e))
            }
        };
        check_private(path)?;
        match parse_entry(&bytes) {
            Ok(e) => Ok(e),
            Err(err) => {
                let aside = path.with_extension(format!(
                    "json.corrupt-{}",
                    chrono::Utc::now().format("%Y%m%dT%H%M%S")
                ));
                let moved = std::fs::rename(path, &aside);
                // Only where: serde_json's message can quote a value (`invalid type:
                // string "…"`), and this file holds secrets.
                tracing::warn!(
                    "credential file `{}` is damaged (at line {} column {}); {}; treating it as logged out",
                    path.display(),
                    err.line(),
                    err.column(),
                    match moved {
                        Ok(()) => format!("moved it to `{}`", aside.display()),
                        Err(e) => format!("could not move it aside: {e}"),
                    }
                );
                Ok(Entry::default())
            }
        }
    }

    /// Loads a value.
    pub fn load(&self, context: &str, provider: &str, key: &str) -> Result<Option<String>> {
        let path = self.entry_path(context, provider);
        Ok(self.read(&path)?.entries.remove(key))
    }

    fn modify(
        &self,
        context: &str,
        provider: &str,
        f: impl FnOnce(&mut Entry) -> bool,
    ) -> Result<()> {
        let _guard = self.write_lock.lock().unwrap_or_else(|p| p.into_inner());
        let path = self.entry_path(context, provider);
        let mut entry = self.read(&path)?;
        if !f(&mut entry) {
            return Ok(());
        }
        let dir = path.parent().expect("entry paths have a parent");
        fsutil::ensure_private_dir(&self.root)
            .and_then(|()| fsutil::ensure_private_dir(dir))
            .map_err(|e| {
                Error::store(format!(
                    "cannot create credential folder `{}`",
                    dir.display()
                ))
                .with_source(e)
            })?;
        if entry.entries.is_empty() {
            return match std::fs::remove_file(&path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(Error::store(format!(
                    "cannot delete credential file `{}`",
                    path.display()
                ))
                .with_source(e)),
            };
        }
        let bytes = encode_entry(&mut entry);
        fsutil::write_atomic(&path, &bytes, Some(0o600)).map_err(|e| {
            Error::store(format!("cannot write credential file `{}`", path.display()))
                .with_source(e)
        })
    }

    /// Stores a value, replacing any old one.
    pub fn store(&self, context: &str, provider: &str, key: &str, value: &str) -> Result<()> {
        crate::failpoint::hit("store-before-write");
        self.modify(context, provider, |e| {
            e.entries.insert(key.to_owned(), value.to_owned());
            true
        })
    }

    /// Deletes a value; a missing one is not an error.
    pub fn delete(&self, context: &str, provider: &str, key: &str) -> Result<()> {
        self.modify(context, provider, |e| e.entries.remove(key).is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_encoded() {
        assert_eq!(encode("corp-sso.v2_x"), "corp-sso.v2_x");
        assert_eq!(encode("../etc"), "%2E.%2Fetc");
        assert_eq!(encode(".hidden"), "%2Ehidden");
        assert_eq!(encode("a b"), "a%20b");
    }

    #[test]
    fn store_load_delete_and_file_modes() {
        let dir = tempfile::tempdir().unwrap();
        let s = FileStore::new(dir.path().join("creds"));
        assert_eq!(s.load("dev", "p", "k").unwrap(), None);
        s.store("dev", "p", "k", "canary").unwrap();
        s.store("dev", "p", "k2", "v2").unwrap();
        assert_eq!(s.load("dev", "p", "k").unwrap().as_deref(), Some("canary"));
        assert_eq!(
            s.load("prod", "p", "k").unwrap(),
            None,
            "contexts are isolated"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&s.entry_path("dev", "p")), 0o600);
            assert_eq!(mode(&dir.path().join("creds")), 0o700);
            assert_eq!(mode(&dir.path().join("creds/dev")), 0o700);
        }
        s.delete("dev", "p", "k").unwrap();
        s.delete("dev", "p", "missing").unwrap();
        assert_eq!(s.load("dev", "p", "k").unwrap(), None);
        s.delete("dev", "p", "k2").unwrap();
        assert!(
            !s.entry_path("dev", "p").exists(),
            "an empty entry leaves no file"
        );
    }

    #[cfg(unix)]
    #[test]
    fn readable_files_are_repaired_and_foreign_ones_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let s = FileStore::new(dir.path());
        s.store("dev", "p", "k", "v").unwrap();
        let p = s.entry_path("dev", "p");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(s.load("dev", "p", "k").unwrap().as_deref(), Some("v"));
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        if crate::sys::effective_uid() == 0 {
            std::os::unix::fs::chown(&p, Some(65534), None).unwrap();
            let e = s.load("dev", "p", "k").unwrap_err();
            assert!(
                e.message()
                    .contains("is owned by user 65534, not by you (user 0); refusing to use it"),
                "{e}"
            );
            let e = s.store("dev", "p", "k", "w").unwrap_err();
            assert!(e.message().contains("refusing"), "{e}");
            assert!(p.exists(), "nothing is deleted");
        }
    }

    #[test]
    fn corrupt_file_is_moved_aside_and_reads_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        let s = FileStore::new(dir.path());
        let p = s.entry_path("dev", "p");
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        for garbage in [&b""[..], b"{\"version\":1,\"entr", b"\xff\xfe garbage"] {
            std::fs::write(&p, garbage).unwrap();
            assert_eq!(s.load("dev", "p", "k").unwrap(), None);
            assert!(!p.exists());
        }
        let aside = std::fs::read_dir(p.parent().unwrap())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .contains(".corrupt-")
            })
            .count();
        assert!(aside >= 1);
        s.store("dev", "p", "k", "v").unwrap();
        assert_eq!(s.load("dev", "p", "k").unwrap().as_deref(), Some("v"));
    }
}

/// Where credentials are kept (`credential_store` in the configuration).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// The keyring when it works (probed before any login), else files, with a warning.
    Auto,
    /// Private files under the user's state folder (the default).
    #[default]
    File,
    /// The OS keyring; an error when it does not work.
    Keyring,
}

/// The backend in use after resolution.
#[derive(Debug)]
pub(crate) enum Backend {
    File,
    Keyring(crate::store::keyring::KeyringStore),
}

/// The credential store of a client: the configured kind, resolved (probed) once.
#[derive(Debug)]
pub(crate) struct Secrets {
    pub file: std::sync::Arc<FileStore>,
    kind: StoreKind,
    resolved: std::sync::OnceLock<std::result::Result<Backend, Error>>,
}

impl Secrets {
    pub fn new(file: std::sync::Arc<FileStore>, kind: StoreKind) -> Self {
        Secrets {
            file,
            kind,
            resolved: std::sync::OnceLock::new(),
        }
    }

    fn keyring_settings() -> (std::time::Duration, usize) {
        let mut timeout = std::time::Duration::from_secs(5);
        let mut chunk = crate::store::keyring::KeyringStore::default_chunk();
        if cfg!(feature = "failpoints") {
            if let Some(ms) = std::env::var("QLAM_TEST_KEYRING_TIMEOUT_MS")
                .ok()
                .and_then(|v| v.parse().ok())
            {
                timeout = std::time::Duration::from_millis(ms);
            }
            if let Some(c) = std::env::var("QLAM_TEST_KEYRING_CHUNK")
                .ok()
                .and_then(|v| v.parse().ok())
            {
                chunk = c;
            }
        }
        (timeout, chunk)
    }

    /// The backend, probing the keyring the first time (before any login, so that a token
    /// obtained interactively is never lost for want of a place to keep it).
    pub fn backend(&self) -> Result<&Backend> {
        let r = self.resolved.get_or_init(|| {
            let (timeout, chunk) = Self::keyring_settings();
            match self.kind {
                StoreKind::File => Ok(Backend::File),
                StoreKind::Keyring => crate::store::keyring::KeyringStore::probe(timeout, chunk)
                    .map(Backend::Keyring)
                    .map_err(|e| {
                        Error::store(format!(
                            "credential_store = \"keyring\", but the system keyring is not available ({e}); set credential_store = \"auto\" or \"file\""
                        ))
                    }),
                StoreKind::Auto => match crate::store::keyring::KeyringStore::probe(timeout, chunk) {
                    Ok(k) => Ok(Backend::Keyring(k)),
                    Err(e) => {
                        tracing::warn!(
                            "the system keyring is not available ({e}); keeping credentials in files under `{}`",
                            self.file.root().display()
                        );
                        Ok(Backend::File)
                    }
                },
            }
        });
        r.as_ref().map_err(Clone::clone)
    }

    /// The configured kind.
    pub fn kind(&self) -> StoreKind {
        self.kind
    }

    /// `file` or `keyring` once resolved; the configured kind before.
    pub fn name(&self) -> &'static str {
        match self.resolved.get() {
            Some(Ok(Backend::File)) => "file",
            Some(Ok(Backend::Keyring(_))) => "keyring",
            _ => match self.kind {
                StoreKind::Auto => "auto",
                StoreKind::File => "file",
                StoreKind::Keyring => "keyring",
            },
        }
    }

    pub fn load(&self, context: &str, provider: &str, key: &str) -> Result<Option<String>> {
        match self.backend()? {
            Backend::File => self.file.load(context, provider, key),
            Backend::Keyring(k) => match k.load(context, provider, key)? {
                Some(v) => Ok(Some(v)),
                // `auto` may have kept credentials in files while the keyring was away.
                None if self.kind == StoreKind::Auto => self.file.load(context, provider, key),
                None => Ok(None),
            },
        }
    }

    pub fn store(&self, context: &str, provider: &str, key: &str, value: &str) -> Result<()> {
        match self.backend()? {
            Backend::File => self.file.store(context, provider, key, value),
            Backend::Keyring(k) => {
                crate::failpoint::hit("store-before-write");
                k.store(context, provider, key, value)?;
                if self.kind == StoreKind::Auto {
                    // An older copy in a file would shadow nothing but must not linger.
                    self.file.delete(context, provider, key)?;
                }
                Ok(())
            }
        }
    }

    pub fn delete(&self, context: &str, provider: &str, key: &str) -> Result<()> {
        match self.backend()? {
            Backend::File => self.file.delete(context, provider, key),
            Backend::Keyring(k) => {
                k.delete(context, provider, key)?;
                if self.kind == StoreKind::Auto {
                    self.file.delete(context, provider, key)?;
                }
                Ok(())
            }
        }
    }
}
