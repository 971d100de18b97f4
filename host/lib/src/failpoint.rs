//! Test-only failpoints (feature `failpoints`): without the feature every function here is a
//! no-op the compiler removes.

/// Kills the process with SIGKILL when `QLAM_FAILPOINT` names this point: a crash at the
/// worst moment, for the crash-safety tests.
#[inline]
pub fn hit(name: &str) {
    #[cfg(all(feature = "failpoints", unix))]
    if std::env::var("QLAM_FAILPOINT").is_ok_and(|v| v == name) {
        crate::sys::kill_self();
    }
    let _ = name;
}

/// Whether cross-process locks are switched off (`QLAM_TEST_DISABLE_LOCKS=1`).
#[inline]
pub fn locks_disabled() -> bool {
    cfg!(feature = "failpoints") && std::env::var("QLAM_TEST_DISABLE_LOCKS").is_ok_and(|v| v == "1")
}
