//! The exit codes of `qlam`, as DESIGN.md fixes them, in one place.

use qlam_host::api::ErrorKind as ProviderErrorKind;
use qlam_host::{Error, ErrorKind};

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Exit {
    /// 0: it did what was asked.
    Ok = 0,
    /// 1: it failed (a provider, the store, the network, a helper's "not found").
    Error = 1,
    /// 2: the command line or a name in it is wrong.
    Usage = 2,
    /// 3: not authenticated; `qlam auth login` fixes it.
    NotAuthenticated = 3,
    /// 4: a plugin could not be loaded, or no plugin provides the provider type.
    Plugin = 4,
}

impl Exit {
    /// The exit code for a failure of this kind.
    pub(crate) fn of(e: &Error) -> Exit {
        match e.kind() {
            ErrorKind::Usage => Exit::Usage,
            ErrorKind::Provider(ProviderErrorKind::NotAuthenticated) => Exit::NotAuthenticated,
            ErrorKind::Plugin => Exit::Plugin,
            _ => Exit::Error,
        }
    }

    /// The process exit status.
    pub(crate) fn code(self) -> i32 {
        self as i32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_by_kind() {
        assert_eq!(Exit::of(&Error::usage("x")).code(), 2);
        assert_eq!(Exit::of(&Error::plugin("x")).code(), 4);
        assert_eq!(Exit::of(&Error::store("x")).code(), 1);
        let not_logged_in = qlam_host::api::Error::not_authenticated("x");
        assert_eq!(Exit::of(&Error::provider(not_logged_in)).code(), 3);
    }
}
