//! The host's error type: a kind that decides the exit code, and a message for a person.

use std::fmt;

use qlam_plugin_api::ErrorKind as ProviderErrorKind;

/// What kind of failure an [`Error`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The configuration file is missing, unreadable or invalid.
    Config,
    /// The caller asked for something that does not exist (an unknown provider or context).
    Usage,
    /// A plugin could not be loaded, or no plugin provides the provider type.
    Plugin,
    /// The credential store failed.
    Store,
    /// A provider call failed; the provider's own kind says how.
    Provider(ProviderErrorKind),
    /// A provider did not answer within its deadline (`call_timeout_secs`). The call goes on
    /// running on a thread of its own (in-process code cannot be stopped), its answer is
    /// thrown away, and the provider is not called again by this process.
    Timeout,
    /// A provider answered something the host refuses to use (a header with a line break, a
    /// token with a control character…). Nothing of the answer was cached or shown.
    InvalidAnswer,
    /// An isolated provider's process ended in the middle of a call (a signal, `abort()`, a
    /// stack overflow, `exit()`). The next call starts a new one.
    Crashed,
}

/// An error of the host library.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Error {
    kind: ErrorKind,
    message: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl Error {
    /// An error of a kind.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
        }
    }

    /// A configuration error.
    pub fn config(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Config, message)
    }

    /// A usage error.
    pub fn usage(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Usage, message)
    }

    /// A plugin error.
    pub fn plugin(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Plugin, message)
    }

    /// A credential-store error.
    pub fn store(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Store, message)
    }

    /// A provider error, with its kind kept.
    pub fn provider(e: qlam_plugin_api::Error) -> Self {
        Error::new(ErrorKind::Provider(e.kind()), e.message().to_owned())
    }

    /// The kind.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether the user must log in to fix this.
    pub fn is_not_authenticated(&self) -> bool {
        self.kind == ErrorKind::Provider(ProviderErrorKind::NotAuthenticated)
    }

    /// A short machine-readable name of the kind, for JSON output.
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            ErrorKind::Config => "config",
            ErrorKind::Usage => "usage",
            ErrorKind::Plugin => "plugin",
            ErrorKind::Store => "store",
            ErrorKind::Provider(k) => k.as_str(),
            ErrorKind::Timeout => "timeout",
            ErrorKind::InvalidAnswer => "invalid_answer",
            ErrorKind::Crashed => "crashed",
        }
    }

    /// The process exit code for this error, as DESIGN.md fixes them: 1 error, 2 usage,
    /// 3 not authenticated, 4 plugin not loadable or provider type unknown.
    pub fn exit_code(&self) -> i32 {
        match self.kind {
            ErrorKind::Usage => 2,
            ErrorKind::Provider(ProviderErrorKind::NotAuthenticated) => 3,
            ErrorKind::Plugin => 4,
            _ => 1,
        }
    }

    /// The same error with `prefix: ` before its message.
    pub fn context(self, prefix: impl fmt::Display) -> Self {
        Error {
            kind: self.kind,
            message: format!("{prefix}: {}", self.message),
        }
    }
}

impl From<qlam_plugin_api::Error> for Error {
    fn from(e: qlam_plugin_api::Error) -> Self {
        Error::provider(e)
    }
}

/// The host's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
