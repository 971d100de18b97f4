//! A provider that calls `exit()` in the middle of a call ends the whole process — with
//! status 0 if it says so, and a script would take the empty output for an answer. In process,
//! that cannot be prevented, but it can be told: the host registers an `atexit` handler that,
//! when a provider call is under way, says which provider ended the process and turns the
//! exit status into 1. (`_exit`, `abort` and signals skip `atexit`; only a provider isolated
//! in a child process is safe from those.)

use std::sync::{Mutex, Once};

/// The provider calls under way: (id, who, call), one entry per waiting caller; `who` is
/// ``provider `x` `` or ``plugin `path` ``.
static ACTIVE: Mutex<Vec<(u64, String, &'static str)>> = Mutex::new(Vec::new());

/// Marks a provider call as under way until dropped.
pub(crate) struct InCall(u64);

impl InCall {
    pub(crate) fn new(who: String, call: &'static str) -> InCall {
        static REGISTER: Once = Once::new();
        REGISTER.call_once(register);
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        ACTIVE
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((id, who, call));
        InCall(id)
    }
}

/// Forgets the calls of `who` under way: the caller gave up waiting for them (a library
/// that missed its loading deadline on a thread of a batch, which holds its mark).
pub(crate) fn forget(who: &str) {
    ACTIVE
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .retain(|(_, w, _)| w != who);
}

impl Drop for InCall {
    fn drop(&mut self) {
        ACTIVE
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(id, _, _)| *id != self.0);
    }
}

#[cfg(unix)]
fn register() {
    extern "C" fn at_exit() {
        // `try_lock`: exit may come from a thread that holds the lock (it never does while
        // calling out, but a deadlock here would hang the exit).
        let Ok(active) = ACTIVE.try_lock() else {
            return;
        };
        let Some((_, who, call)) = active.first() else {
            return;
        };
        let message = format!("error: {who} ended the process during `{call}` (it called exit)\n");
        crate::sys::say_and_exit_now(&message, 1);
    }
    crate::sys::at_exit(at_exit);
}

#[cfg(not(unix))]
fn register() {}
