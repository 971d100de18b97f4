//! Reusable `headers()` / `token()` answers kept on disk (file store only), so that a command
//! whose answer is still valid is served from configuration and store alone — without
//! loading any plugin. Keyed by context and provider (the path) and a hash of the provider's
//! type and configuration (a reconfigured provider never gets an old answer); dropped on
//! login, logout and refresh. Only answers with an expiry (`Until`) are kept: `Session`
//! means this process only, `Never` means ask every time.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use qlam_plugin_api::{CacheControl, Headers, Secret, Token};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::fsutil;

#[derive(Serialize, Deserialize, Default)]
struct AnswerFile {
    config_hash: String,
    #[serde(default)]
    headers: Option<CachedHeaders>,
    #[serde(default)]
    token: Option<CachedToken>,
}

#[derive(Serialize, Deserialize)]
struct CachedHeaders {
    until: DateTime<Utc>,
    headers: Vec<(String, Secret<String>)>,
}

#[derive(Serialize, Deserialize)]
struct CachedToken {
    until: DateTime<Utc>,
    token: Secret<String>,
}

/// FNV-1a, 64 bits: stable across builds (unlike `DefaultHasher`), and collisions only cost
/// a cache miss... except here a collision would serve another configuration's answer, so
/// the type and the full configuration text are hashed, and the context and provider are
/// the file's path.
pub fn config_hash(provider_type: &str, config: &Value) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in provider_type
        .bytes()
        .chain([0u8])
        .chain(config.to_string().bytes())
    {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// The answer file of a store entry.
pub fn path(entry: &Path) -> PathBuf {
    entry.with_extension("answers.json")
}

fn read(path: &Path, hash: &str) -> Option<AnswerFile> {
    let mut file = std::fs::File::open(path).ok()?;
    // Like the credential files: an answer file that is not ours and private is not used.
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let meta = file.metadata().ok()?;
        if meta.uid() != crate::sys::effective_uid() || meta.mode() & 0o077 != 0 {
            tracing::warn!(
                "ignoring answer cache `{}`: not owned by you or readable by others",
                path.display()
            );
            return None;
        }
    }
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut file, &mut bytes).ok()?;
    parse(&bytes, hash)
}

/// An answer file's contents, if they parse and belong to the configuration `hash`.
fn parse(bytes: &[u8], hash: &str) -> Option<AnswerFile> {
    let f: AnswerFile = serde_json::from_slice(bytes).ok()?;
    (f.config_hash == hash).then_some(f)
}

// Answers are checked before they are saved; they are checked again when read, because the
// file may come from a qlam that did not check (an older version) and a cache miss is cheap.

fn valid_headers(f: AnswerFile, now: DateTime<Utc>) -> Option<Headers> {
    let h = f.headers.filter(|h| h.until > now)?;
    let h = Headers {
        headers: h.headers,
        cache: CacheControl::Until(h.until),
    };
    crate::boundary::validate::headers(&h).ok()?;
    Some(h)
}

fn valid_token(f: AnswerFile, now: DateTime<Utc>) -> Option<Token> {
    let t = f.token.filter(|t| t.until > now)?;
    let t = Token {
        token: t.token,
        cache: CacheControl::Until(t.until),
    };
    crate::boundary::validate::token(&t).ok()?;
    Some(t)
}

/// For the fuzz target `store_entry` and its corpus replay (not an API; reached as
/// `qlam_host::store::fuzzing::answer_file`): runs `bytes` through what the answer cache does
/// with an answer file: parse it, write it back as an update does, and take the answers still
/// valid at a fixed time. Panics on a bug; a file that does not parse is fine (a cache miss).
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub fn fuzz_answer_file(bytes: &[u8]) {
    // The file's own hash, so that a parsed file is not dropped as another configuration's.
    let hash = serde_json::from_slice::<Value>(bytes)
        .ok()
        .and_then(|v| v.get("config_hash")?.as_str().map(str::to_owned))
        .unwrap_or_default();
    let now: DateTime<Utc> = "2030-01-01T00:00:00Z".parse().expect("a valid time");
    let Some(f) = parse(bytes, &hash) else {
        return;
    };
    let _ = serde_json::to_vec(&f);
    let _ = valid_headers(f, now);
    if let Some(f) = parse(bytes, &hash) {
        let _ = valid_token(f, now);
    }
}

/// Valid cached headers, if any.
pub fn headers(path: &Path, hash: &str, now: DateTime<Utc>) -> Option<Headers> {
    valid_headers(read(path, hash)?, now)
}

/// A valid cached token, if any.
pub fn token(path: &Path, hash: &str, now: DateTime<Utc>) -> Option<Token> {
    valid_token(read(path, hash)?, now)
}

fn update(path: &Path, hash: &str, f: impl FnOnce(&mut AnswerFile)) {
    let mut file = read(path, hash).unwrap_or_else(|| AnswerFile {
        config_hash: hash.to_owned(),
        ..Default::default()
    });
    f(&mut file);
    if let (Some(dir), Ok(bytes)) = (path.parent(), serde_json::to_vec(&file)) {
        // Best effort: a cache that cannot be written only costs speed.
        if fsutil::ensure_private_dir(dir).is_ok() {
            if let Err(e) = fsutil::write_atomic(path, &bytes, Some(0o600)) {
                tracing::debug!("cannot write the answer cache `{}`: {e}", path.display());
            }
        }
    }
}

/// Keeps headers that carry an expiry.
pub fn save_headers(path: &Path, hash: &str, h: &Headers) {
    if let CacheControl::Until(until) = h.cache {
        update(path, hash, |f| {
            f.headers = Some(CachedHeaders {
                until,
                headers: h.headers.clone(),
            })
        });
    }
}

/// Keeps a token that carries an expiry.
pub fn save_token(path: &Path, hash: &str, t: &Token) {
    if let CacheControl::Until(until) = t.cache {
        update(path, hash, |f| {
            f.token = Some(CachedToken {
                until,
                token: t.token.clone(),
            })
        });
    }
}

/// Forgets every answer of a provider.
pub fn drop_all(path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!("cannot delete the answer cache `{}`: {e}", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn valid_answers_round_trip_stale_and_reconfigured_ones_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ctx/p.answers.json");
        let hash = config_hash("oauth", &json!({"issuer": "https://a"}));
        let now: DateTime<Utc> = "2030-01-01T00:00:00Z".parse().unwrap();
        let until = now + chrono::Duration::minutes(5);
        save_token(
            &p,
            &hash,
            &Token {
                token: Secret::new("t".into()),
                cache: CacheControl::Until(until),
            },
        );
        save_headers(
            &p,
            &hash,
            &Headers {
                headers: vec![("A".into(), Secret::new("b".into()))],
                cache: CacheControl::Until(until),
            },
        );
        assert_eq!(token(&p, &hash, now).unwrap().token.expose(), "t");
        assert_eq!(headers(&p, &hash, now).unwrap().headers[0].1.expose(), "b");
        assert!(token(&p, &hash, until).is_none(), "expired at `until`");
        let other = config_hash("oauth", &json!({"issuer": "https://b"}));
        assert!(token(&p, &other, now).is_none(), "another configuration");
        // Session and Never answers are not kept on disk.
        let q = dir.path().join("ctx/q.answers.json");
        save_token(
            &q,
            &hash,
            &Token {
                token: Secret::new("s".into()),
                cache: CacheControl::Session,
            },
        );
        assert!(!q.exists());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert!(
                token(&p, &hash, now).is_none(),
                "a file others can read is not used"
            );
        }
        drop_all(&p);
        assert!(token(&p, &hash, now).is_none());
    }
}
