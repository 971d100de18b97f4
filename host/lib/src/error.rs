//! The host's error type: a kind that decides the exit code, and a message for a person.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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

/// Where in a configuration file a problem is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigLocation {
    /// The file.
    pub path: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

/// An error of the host library.
///
/// `Display` is this error's own words; the cause (an I/O error, a TOML error, the error this
/// one adds context to) is its [`source`](std::error::Error::source), so that a chain printer
/// says each part once. [`message`](Error::message) is the whole sentence for a person: this
/// error's words and every cause's, joined by `: ` (what the `qlam` CLI prints).
#[derive(Debug, Clone)]
pub struct Error {
    kind: ErrorKind,
    /// This error's own words.
    summary: String,
    /// `summary` and the causes' words, joined.
    message: String,
    source: Option<Arc<dyn std::error::Error + Send + Sync + 'static>>,
    location: Option<Arc<ConfigLocation>>,
    library: Option<Arc<PathBuf>>,
}

impl PartialEq for Error {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind
            && self.message == other.message
            && self.location == other.location
            && self.library == other.library
    }
}

impl Eq for Error {}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.summary)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

impl Error {
    /// An error of a kind.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        let summary = message.into();
        Error {
            kind,
            message: summary.clone(),
            summary,
            source: None,
            location: None,
            library: None,
        }
    }

    /// A configuration error.
    pub fn config(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Config, message)
    }

    /// A configuration error at a place in a file; the message starts with `` `FILE`:LINE:COL: ``.
    pub fn config_at(path: &Path, line: usize, column: usize, message: impl fmt::Display) -> Self {
        let mut e = Error::config(format!("`{}`:{line}:{column}: {message}", path.display()));
        e.location = Some(Arc::new(ConfigLocation {
            path: path.to_owned(),
            line,
            column,
        }));
        e
    }

    /// A usage error.
    pub fn usage(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Usage, message)
    }

    /// A plugin error.
    pub fn plugin(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Plugin, message)
    }

    /// A plugin error about one library file (it could not be loaded, or no longer provides
    /// a type); [`library`](Error::library) names it.
    pub fn plugin_library(library: &Path, message: impl Into<String>) -> Self {
        let mut e = Error::plugin(message);
        e.library = Some(Arc::new(library.to_owned()));
        e
    }

    /// A credential-store error.
    pub fn store(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Store, message)
    }

    /// A provider error, with its kind kept.
    pub fn provider(e: qlam_plugin_api::Error) -> Self {
        Error::new(ErrorKind::Provider(e.kind()), e.message().to_owned())
    }

    /// The same error caused by `cause` (an I/O error, a parse error…): its words are
    /// appended to [`message`](Error::message), and it is the [`source`](std::error::Error::source).
    pub fn with_source(mut self, cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.message = format!("{}: {cause}", self.summary);
        self.source = Some(Arc::new(cause));
        self
    }

    /// The kind.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The whole sentence: this error's words and its causes'.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The plugin library a plugin error is about, for errors that know.
    pub fn library(&self) -> Option<&Path> {
        self.library.as_deref().map(PathBuf::as_path)
    }

    /// Where in a configuration file the problem is, for errors that know.
    pub fn config_location(&self) -> Option<&ConfigLocation> {
        self.location.as_deref()
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

    /// A new error saying `prefix`, caused by this one (same kind and location):
    /// [`message`](Error::message) reads `prefix: <this message>`.
    pub fn context(self, prefix: impl fmt::Display) -> Self {
        let summary = prefix.to_string();
        Error {
            kind: self.kind,
            message: format!("{summary}: {}", self.message),
            summary,
            location: self.location.clone(),
            library: self.library.clone(),
            source: Some(Arc::new(self)),
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn the_cause_is_a_source_said_once_by_a_chain_printer() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let e = Error::config("cannot read config file `a.toml`").with_source(io);
        assert_eq!(e.to_string(), "cannot read config file `a.toml`");
        assert_eq!(
            e.message(),
            "cannot read config file `a.toml`: no such file"
        );
        let cause = e
            .source()
            .unwrap()
            .downcast_ref::<std::io::Error>()
            .unwrap();
        assert_eq!(cause.kind(), std::io::ErrorKind::NotFound);

        let outer = e.context("provider `x`");
        assert_eq!(outer.kind(), ErrorKind::Config);
        assert_eq!(
            outer.message(),
            "provider `x`: cannot read config file `a.toml`: no such file"
        );
        // Walking the chain gives each part once.
        let mut parts = vec![outer.to_string()];
        let mut cur = outer.source();
        while let Some(c) = cur {
            parts.push(c.to_string());
            cur = c.source();
        }
        assert_eq!(parts.join(": "), outer.message());
    }

    #[test]
    fn plugin_errors_name_their_library() {
        let e = Error::plugin_library(Path::new("/p/libacme.so"), "is truncated");
        assert_eq!(e.library(), Some(Path::new("/p/libacme.so")));
        assert_eq!(e.kind(), ErrorKind::Plugin);
        assert_eq!(
            e.context("provider `acme`").library(),
            Some(Path::new("/p/libacme.so"))
        );
        assert_eq!(Error::plugin("x").library(), None);
    }

    #[test]
    fn config_errors_know_where() {
        let e = Error::config_at(Path::new("/c.toml"), 4, 1, "duplicate provider name `x`");
        assert_eq!(e.message(), "`/c.toml`:4:1: duplicate provider name `x`");
        let at = e.config_location().unwrap().clone();
        assert_eq!((at.line, at.column), (4, 1));
        assert_eq!(e.context("context `dev`").config_location(), Some(&at));
    }
}
