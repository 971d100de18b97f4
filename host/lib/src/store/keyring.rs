//! The OS keyring as a credential store: Secret Service (GNOME Keyring, KWallet…) on Linux,
//! Keychain on macOS, Credential Manager on Windows.
//!
//! Every call runs on a helper thread with a deadline, so a locked keyring that waits for a
//! password prompt nobody will answer makes an error, never a hang. Values larger than the
//! backend takes (Windows: 2560 bytes) are split into parts named by a generation, written
//! before the header that points at them, so a crash leaves the old value readable.

use std::sync::mpsc;
use std::time::Duration;

use crate::error::{Error, Result};

/// The keyring service name of every qlam item.
pub const SERVICE: &str = "qlam";
const SPLIT: &str = "qlam-split:v1:";

/// A keyring-backed store.
#[derive(Debug, Clone)]
pub struct KeyringStore {
    chunk: usize,
    timeout: Duration,
}

fn user(context: &str, provider: &str, key: &str) -> String {
    format!("{context}/{provider}/{key}")
}

#[cfg(any(target_os = "linux", target_os = "macos", windows))]
mod backend {
    pub fn set(user: &str, value: &str) -> Result<(), String> {
        keyring::Entry::new(super::SERVICE, user)
            .and_then(|e| e.set_password(value))
            .map_err(|e| e.to_string())
    }

    pub fn get(user: &str) -> Result<Option<String>, String> {
        match keyring::Entry::new(super::SERVICE, user).and_then(|e| e.get_password()) {
            Ok(v) => Ok(Some(v)),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }

    pub fn delete(user: &str) -> Result<(), String> {
        match keyring::Entry::new(super::SERVICE, user).and_then(|e| e.delete_credential()) {
            Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }
}

#[cfg(not(any(target_os = "linux", target_os = "macos", windows)))]
mod backend {
    const NONE: &str = "this platform has no supported keyring";
    pub fn set(_: &str, _: &str) -> Result<(), String> {
        Err(NONE.into())
    }
    pub fn get(_: &str) -> Result<Option<String>, String> {
        Err(NONE.into())
    }
    pub fn delete(_: &str) -> Result<(), String> {
        Err(NONE.into())
    }
}

/// Runs `f` on a helper thread and waits at most `timeout`. A call that does not return in
/// time is abandoned (its thread finishes or blocks on its own).
fn bounded<T: Send + 'static>(
    timeout: Duration,
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("qlam-keyring".into())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(|e| e.to_string())?;
    match rx.recv_timeout(timeout) {
        Ok(r) => r,
        Err(_) => Err(format!(
            "no answer within {} s (is the keyring locked?)",
            timeout.as_secs()
        )),
    }
}

impl KeyringStore {
    /// The largest value stored as one item.
    pub fn default_chunk() -> usize {
        // Windows Credential Manager takes 2560 bytes; UTF-16 makes that 1280 characters.
        if cfg!(windows) {
            1200
        } else {
            64 * 1024
        }
    }

    /// Checks that the keyring works: writes, reads back and deletes a probe item.
    pub fn probe(timeout: Duration, chunk: usize) -> std::result::Result<KeyringStore, String> {
        let probe_user = format!("probe/{}", std::process::id());
        bounded(timeout, move || {
            backend::set(&probe_user, "probe")?;
            let back = backend::get(&probe_user)?;
            backend::delete(&probe_user)?;
            if back.as_deref() == Some("probe") {
                Ok(())
            } else {
                Err("the keyring did not return what was stored".into())
            }
        })?;
        Ok(KeyringStore {
            chunk: chunk.max(16),
            timeout,
        })
    }

    fn call<T: Send + 'static>(
        &self,
        what: &str,
        f: impl FnOnce() -> Result<T, String> + Send + 'static,
    ) -> Result<T> {
        bounded(self.timeout, f)
            .map_err(|e| Error::store(format!("the system keyring failed to {what}: {e}")))
    }

    /// Loads a value.
    pub fn load(&self, context: &str, provider: &str, key: &str) -> Result<Option<String>> {
        let u = user(context, provider, key);
        self.call("read a credential", move || {
            let Some(head) = backend::get(&u)? else {
                return Ok(None);
            };
            let Some(spec) = head.strip_prefix(SPLIT) else {
                return Ok(Some(head));
            };
            let (generation, count) =
                parse_split(spec).ok_or("a split value has a damaged header")?;
            let mut value = String::new();
            for i in 1..=count {
                let part = backend::get(&format!("{u}#{generation}.{i}"))?
                    .ok_or_else(|| format!("part {i} of {count} of a split value is missing"))?;
                value.push_str(&part);
            }
            Ok(Some(value))
        })
    }

    /// Stores a value (split when large).
    pub fn store(&self, context: &str, provider: &str, key: &str, value: &str) -> Result<()> {
        let u = user(context, provider, key);
        let value = value.to_owned();
        let chunk = self.chunk;
        self.call("store a credential", move || {
            let old = backend::get(&u)?;
            if value.len() <= chunk && !value.starts_with(SPLIT) {
                backend::set(&u, &value)?;
            } else {
                let generation = format!(
                    "{:x}",
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_nanos())
                        .unwrap_or(0)
                );
                let parts = split(&value, chunk);
                for (i, p) in parts.iter().enumerate() {
                    backend::set(&format!("{u}#{generation}.{}", i + 1), p)?;
                }
                backend::set(&u, &format!("{SPLIT}{generation}:{}", parts.len()))?;
            }
            // The parts of the value just replaced go last.
            delete_parts(&u, old.as_deref())
        })
    }

    /// Deletes a value and its parts.
    pub fn delete(&self, context: &str, provider: &str, key: &str) -> Result<()> {
        let u = user(context, provider, key);
        self.call("delete a credential", move || {
            let old = backend::get(&u)?;
            backend::delete(&u)?;
            delete_parts(&u, old.as_deref())
        })
    }
}

fn parse_split(spec: &str) -> Option<(String, usize)> {
    let (generation, count) = spec.split_once(':')?;
    Some((generation.to_owned(), count.parse().ok()?))
}

fn delete_parts(user: &str, head: Option<&str>) -> Result<(), String> {
    if let Some((generation, count)) = head
        .and_then(|h| h.strip_prefix(SPLIT))
        .and_then(parse_split)
    {
        for i in 1..=count {
            backend::delete(&format!("{user}#{generation}.{i}"))?;
        }
    }
    Ok(())
}

/// Splits on character boundaries into pieces of at most `chunk` bytes.
fn split(value: &str, chunk: usize) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut rest = value;
    while !rest.is_empty() {
        let mut end = chunk.min(rest.len());
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        parts.push(&rest[..end]);
        rest = &rest[end..];
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_respects_char_boundaries() {
        assert_eq!(split("abcdef", 4), ["abcd", "ef"]);
        assert_eq!(split("ééé", 3), ["é", "é", "é"]);
        assert_eq!(split("", 4), Vec::<&str>::new());
        assert_eq!(parse_split("17ab:3"), Some(("17ab".into(), 3)));
        assert_eq!(parse_split("x"), None);
    }

    #[test]
    fn a_call_that_hangs_becomes_an_error() {
        let e = bounded(Duration::from_millis(50), || {
            std::thread::sleep(Duration::from_secs(2));
            Ok(())
        })
        .unwrap_err();
        assert!(e.contains("no answer within 0 s"), "{e}");
    }
}
