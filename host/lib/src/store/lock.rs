//! Cross-process coordination: an advisory lock file beside each credential-store entry.
//!
//! `login`, `refresh` and `logout` of one (context, provider) take it, so that one process
//! refreshes while the others wait and then find the fresh tokens (refresh-token rotation
//! turns two concurrent refreshes into a logout). The wait is bounded and its error names
//! who holds the lock. The hot path (`headers()` with a valid answer) never takes it.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::fsutil;

/// The default bound on waiting for another process.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(30);

/// A held lock; released when dropped (or when the process dies: the kernel drops it).
#[derive(Debug)]
pub struct EntryLock {
    file: File,
    /// Where it says who holds it, when that is not the lock file (Windows).
    note: Option<File>,
    /// Whether another process held the lock when we asked for it.
    pub contended: bool,
}

impl Drop for EntryLock {
    fn drop(&mut self) {
        let _ = self.note.as_mut().unwrap_or(&mut self.file).set_len(0);
        let _ = self.file.unlock();
    }
}

/// Where a holder says who it is, when not in the lock file itself: on Windows the lock is a
/// mandatory lock on the file's bytes, which keeps a waiter from reading them
/// (ERROR_LOCK_VIOLATION), so the note is a file beside it. Elsewhere the lock (flock) is
/// advisory and the lock file carries the note.
fn note_path(lock: &Path) -> Option<PathBuf> {
    cfg!(windows).then(|| lock.with_extension("lock-holder"))
}

/// Takes the lock at `path` for `operation` on `provider`, waiting at most `timeout`.
pub fn acquire(
    path: &Path,
    operation: &str,
    provider: &str,
    timeout: Duration,
) -> Result<EntryLock> {
    if let Some(dir) = path.parent() {
        fsutil::ensure_private_dir(dir).map_err(|e| {
            Error::store(format!("cannot create the folder of `{}`", path.display())).with_source(e)
        })?;
    }
    let mut opts = OpenOptions::new();
    opts.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut file = opts.open(path).map_err(|e| {
        Error::store(format!("cannot open the lock file `{}`", path.display())).with_source(e)
    })?;
    let start = Instant::now();
    let mut contended = false;
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(std::fs::TryLockError::WouldBlock) => {
                contended = true;
                if start.elapsed() >= timeout {
                    let holder = match note_path(path) {
                        Some(note) => File::open(note).map(|mut f| holder(&mut f)),
                        None => Ok(holder(&mut file)),
                    }
                    .unwrap_or_default();
                    return Err(Error::store(format!(
                        "gave up after {} s waiting for another qlam process{holder} working on provider `{provider}`; try again when it has finished",
                        timeout.as_secs()
                    )));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(
                    Error::store(format!("cannot lock `{}`", path.display())).with_source(e)
                );
            }
        }
    }
    // Tell waiters who we are (the note is information only; the lock is the lock).
    let mut note = note_path(path).and_then(|p| opts.open(p).ok());
    let out = note.as_mut().unwrap_or(&mut file);
    let _ = out.set_len(0);
    let _ = out.seek(SeekFrom::Start(0));
    let _ = write!(out, "{} {operation}", std::process::id());
    let _ = out.flush();
    Ok(EntryLock {
        file,
        note,
        contended,
    })
}

fn holder(file: &mut File) -> String {
    let mut s = String::new();
    let _ = file.seek(SeekFrom::Start(0));
    let _ = file.read_to_string(&mut s);
    match s.split_once(' ') {
        Some((pid, op)) if pid.parse::<u32>().is_ok() => format!(" (pid {pid}, {})", op.trim()),
        _ => String::new(),
    }
}

/// The lock file of a store entry.
pub fn lock_path(entry: &Path) -> PathBuf {
    entry.with_extension("lock")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_taker_waits_then_times_out_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a/p.lock");
        let first = acquire(&p, "login", "p", Duration::from_secs(1)).unwrap();
        assert!(!first.contended);
        let e = acquire(&p, "refresh", "p", Duration::from_millis(50)).unwrap_err();
        assert!(
            e.message().starts_with(&format!("gave up after 0 s waiting for another qlam process (pid {}, login) working on provider `p`", std::process::id())),
            "{e}"
        );
        drop(first);
        let again = acquire(&p, "refresh", "p", Duration::from_millis(50)).unwrap();
        assert!(!again.contended);
    }

    #[test]
    fn a_waiter_gets_the_lock_when_released_and_knows_it_waited() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("p.lock");
        let first = acquire(&p, "login", "p", Duration::from_secs(1)).unwrap();
        let p2 = p.clone();
        let waiter = std::thread::spawn(move || {
            acquire(&p2, "login", "p", Duration::from_secs(10))
                .unwrap()
                .contended
        });
        std::thread::sleep(Duration::from_millis(50));
        drop(first);
        assert!(waiter.join().unwrap());
    }
}
