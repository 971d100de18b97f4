//! The error type every provider call returns.

use std::fmt;

/// What kind of failure an [`Error`] is: the host acts on the kind (exit codes, whether to
/// retry, whether to ask the user to log in), so choose the most specific one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The provider's configuration is wrong (a missing or unknown key, a bad value). The user
    /// must edit the config file.
    Configuration,
    /// There are no valid credentials: the user must log in (`qlam auth login`).
    NotAuthenticated,
    /// The provider does not support this operation (for example `token()` on a provider that
    /// only makes headers).
    Unsupported,
    /// A network failure, a timeout or a server error that may pass: keep every credential and
    /// try again later.
    Transient,
    /// The provider panicked. The adapter made by `export_providers!` creates this kind; a
    /// provider never needs to.
    Panic,
    /// A step needed the user (a prompt, a browser) and the host could not ask, or the user
    /// cancelled.
    Interaction,
    /// Anything else.
    Other,
}

impl ErrorKind {
    /// Every kind, in code order.
    pub const ALL: [ErrorKind; 7] = [
        ErrorKind::Configuration,
        ErrorKind::NotAuthenticated,
        ErrorKind::Unsupported,
        ErrorKind::Transient,
        ErrorKind::Panic,
        ErrorKind::Interaction,
        ErrorKind::Other,
    ];

    /// The stable number of this kind at the plugin boundary.
    pub fn code(self) -> u8 {
        match self {
            ErrorKind::Configuration => 1,
            ErrorKind::NotAuthenticated => 2,
            ErrorKind::Unsupported => 3,
            ErrorKind::Transient => 4,
            ErrorKind::Panic => 5,
            ErrorKind::Interaction => 6,
            ErrorKind::Other => 7,
        }
    }

    /// The kind for a code; codes from a newer plugin-api that this one does not know are
    /// [`ErrorKind::Other`].
    pub fn from_code(code: u8) -> ErrorKind {
        ErrorKind::ALL
            .into_iter()
            .find(|k| k.code() == code)
            .unwrap_or(ErrorKind::Other)
    }

    /// A short lowercase name, as shown in JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Configuration => "configuration",
            ErrorKind::NotAuthenticated => "not_authenticated",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Transient => "transient",
            ErrorKind::Panic => "panic",
            ErrorKind::Interaction => "interaction",
            ErrorKind::Other => "other",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error from a provider: a [kind](ErrorKind) and a message for a person.
///
/// The message says what failed and what to do next, lowercase, without a trailing period,
/// and **never contains a secret**.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    kind: ErrorKind,
    message: String,
}

impl Error {
    /// An error of any kind.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
        }
    }

    /// A configuration error.
    pub fn configuration(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Configuration, message)
    }

    /// The user must log in.
    pub fn not_authenticated(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::NotAuthenticated, message)
    }

    /// The operation is not supported by this provider.
    pub fn unsupported(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Unsupported, message)
    }

    /// A failure that may pass (network, timeout, server error).
    pub fn transient(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Transient, message)
    }

    /// A step that needed the user could not be done.
    pub fn interaction(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Interaction, message)
    }

    /// Any other failure.
    pub fn other(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Other, message)
    }

    /// The kind.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The same error with `prefix: ` before its message.
    pub fn context(self, prefix: impl fmt::Display) -> Self {
        Error {
            kind: self.kind,
            message: format!("{prefix}: {}", self.message),
        }
    }
}

/// The result of a provider call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_unknown_is_other() {
        for k in ErrorKind::ALL {
            assert_eq!(ErrorKind::from_code(k.code()), k);
        }
        assert_eq!(ErrorKind::from_code(0), ErrorKind::Other);
        assert_eq!(ErrorKind::from_code(200), ErrorKind::Other);
    }

    #[test]
    fn context_prefixes() {
        let e = Error::transient("connection refused").context("verify `https://x`");
        assert_eq!(e.to_string(), "verify `https://x`: connection refused");
        assert_eq!(e.kind(), ErrorKind::Transient);
    }
}
