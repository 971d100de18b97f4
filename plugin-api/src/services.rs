//! Services the host gives every provider: a secret store scoped to the provider, user
//! interaction, and logging.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::{Result, Secret};

/// A log level for [`HostServices::log`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    /// Very detailed.
    Trace,
    /// Useful when debugging.
    Debug,
    /// Normal progress.
    Info,
    /// Something unexpected that did not stop the operation.
    Warn,
    /// A failure.
    Error,
}

impl LogLevel {
    /// The stable number at the plugin boundary.
    pub fn code(self) -> u8 {
        match self {
            LogLevel::Trace => 0,
            LogLevel::Debug => 1,
            LogLevel::Info => 2,
            LogLevel::Warn => 3,
            LogLevel::Error => 4,
        }
    }

    /// The level for a code (unknown codes are `Info`).
    pub fn from_code(code: u8) -> Self {
        match code {
            0 => LogLevel::Trace,
            1 => LogLevel::Debug,
            3 => LogLevel::Warn,
            4 => LogLevel::Error,
            _ => LogLevel::Info,
        }
    }
}

/// A request to the user, carried out by the host (a terminal, a GUI, a notebook…).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Interaction {
    /// Show a device-flow verification URI and user code.
    ShowVerification {
        /// Where to go.
        verification_uri: String,
        /// What to type there.
        user_code: String,
        /// A URI that already includes the code, when the server gives one.
        #[serde(default)]
        verification_uri_complete: Option<String>,
    },
    /// Open a URL in the user's browser. The answer says whether a browser was started.
    OpenUrl {
        /// The URL.
        url: String,
    },
    /// Ask for a line of text.
    PromptText {
        /// The question, without a trailing colon.
        prompt: String,
    },
    /// Ask for a secret (no echo).
    PromptSecret {
        /// The question, without a trailing colon.
        prompt: String,
    },
    /// Report progress of a long step (`done = false` starts or updates it, `true` ends it).
    Progress {
        /// What is happening.
        message: String,
        /// Whether the step has ended.
        done: bool,
    },
}

/// The host's answer to an [`Interaction`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum InteractionReply {
    /// Done; nothing to report.
    Done,
    /// Whether a browser was opened.
    Opened {
        /// `false` when the host could not open one (the URL was shown instead).
        opened: bool,
    },
    /// The text the user typed.
    Text {
        /// The text.
        text: Secret<String>,
    },
}

/// What the host implements to serve providers. Provider authors do not implement this; they
/// use [`HostServices`]. Every method may be called from several threads.
pub trait ServicesBackend: Send + Sync + 'static {
    /// Loads a value stored under `key` for this provider.
    fn secret_load(&self, key: &str) -> Result<Option<Secret<String>>>;
    /// Stores a value under `key` for this provider, durably, replacing any old one.
    fn secret_store(&self, key: &str, value: &Secret<String>) -> Result<()>;
    /// Deletes the value under `key`; deleting a missing key is not an error.
    fn secret_delete(&self, key: &str) -> Result<()>;
    /// Carries out an interaction.
    fn interact(&self, request: &Interaction) -> Result<InteractionReply>;
    /// Whether the host can ask the user anything at all.
    fn is_interactive(&self) -> bool;
    /// Writes a log record into the host's logger (where its filters and redaction apply).
    fn log(&self, level: LogLevel, message: &str);
}

/// The host's services, as a provider sees them. Cheap to clone; keep one in your provider.
#[derive(Clone)]
pub struct HostServices {
    backend: Arc<dyn ServicesBackend>,
    config_dir: Option<PathBuf>,
}

impl fmt::Debug for HostServices {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HostServices")
    }
}

impl HostServices {
    /// Wraps a backend. Hosts and tests use this; the adapter does it for plugins.
    pub fn new(backend: Arc<dyn ServicesBackend>) -> Self {
        HostServices {
            backend,
            config_dir: None,
        }
    }

    /// The same services, with the folder of the configuration file the provider was
    /// configured in (hosts set it; since qlam-plugin-api 0.1.2).
    pub fn with_config_dir(mut self, dir: Option<PathBuf>) -> Self {
        self.config_dir = dir;
        self
    }

    /// The folder of the configuration file the provider was configured in: the base of
    /// relative paths in its settings. `None` when the configuration has no file, or from a
    /// host older than qlam-plugin-api 0.1.2.
    pub fn config_dir(&self) -> Option<&Path> {
        self.config_dir.as_deref()
    }

    /// A path from the provider's settings as the user meant it, the way kubectl reads paths
    /// in a kubeconfig: `~/…` in the home folder, a relative path in the configuration file's
    /// folder (not the current directory, which changes with wherever the command runs), an
    /// absolute path as it is. Without a configuration folder a relative path stays relative.
    pub fn resolve_path(&self, path: &Path) -> PathBuf {
        if let Ok(rest) = path.strip_prefix("~") {
            let home = std::env::var_os("HOME").or_else(|| std::env::var_os("USERPROFILE"));
            if let Some(home) = home.filter(|h| !h.is_empty()) {
                return PathBuf::from(home).join(rest);
            }
        }
        match &self.config_dir {
            Some(dir) if path.is_relative() => dir.join(path),
            _ => path.to_owned(),
        }
    }

    /// Loads a secret stored under `key` (scoped to this context and provider).
    pub fn secret_load(&self, key: &str) -> Result<Option<Secret<String>>> {
        self.backend.secret_load(key)
    }

    /// Stores a secret under `key`, durably. One key is written atomically: after a crash
    /// it holds the old value or the new one. Values that must change together (an access
    /// token and its refresh token) belong under one key, as one JSON document — what the
    /// bundled OAuth provider does; two keys written one after the other can be seen half
    /// updated.
    pub fn secret_store(&self, key: &str, value: &Secret<String>) -> Result<()> {
        self.backend.secret_store(key, value)
    }

    /// Deletes the secret under `key`.
    pub fn secret_delete(&self, key: &str) -> Result<()> {
        self.backend.secret_delete(key)
    }

    /// Whether the host can ask the user anything.
    pub fn is_interactive(&self) -> bool {
        self.backend.is_interactive()
    }

    /// Shows a device-flow verification URI and code.
    pub fn show_verification(
        &self,
        verification_uri: &str,
        user_code: &str,
        verification_uri_complete: Option<&str>,
    ) -> Result<()> {
        self.backend
            .interact(&Interaction::ShowVerification {
                verification_uri: verification_uri.to_owned(),
                user_code: user_code.to_owned(),
                verification_uri_complete: verification_uri_complete.map(str::to_owned),
            })
            .map(drop)
    }

    /// Opens a URL in a browser; `Ok(false)` when none could be opened and the URL was shown.
    pub fn open_url(&self, url: &str) -> Result<bool> {
        match self.backend.interact(&Interaction::OpenUrl {
            url: url.to_owned(),
        })? {
            InteractionReply::Opened { opened } => Ok(opened),
            _ => Ok(false),
        }
    }

    /// Asks the user for a line of text.
    pub fn prompt_text(&self, prompt: &str) -> Result<String> {
        match self.backend.interact(&Interaction::PromptText {
            prompt: prompt.to_owned(),
        })? {
            InteractionReply::Text { text } => Ok(text.into_inner()),
            other => Err(crate::Error::interaction(format!(
                "the host answered a text prompt with {}",
                reply_name(&other)
            ))),
        }
    }

    /// Asks the user for a secret, without echo.
    pub fn prompt_secret(&self, prompt: &str) -> Result<Secret<String>> {
        match self.backend.interact(&Interaction::PromptSecret {
            prompt: prompt.to_owned(),
        })? {
            InteractionReply::Text { text } => Ok(text),
            other => Err(crate::Error::interaction(format!(
                "the host answered a secret prompt with {}",
                reply_name(&other)
            ))),
        }
    }

    /// Reports progress of a long step.
    pub fn progress(&self, message: &str, done: bool) -> Result<()> {
        self.backend
            .interact(&Interaction::Progress {
                message: message.to_owned(),
                done,
            })
            .map(drop)
    }

    /// Logs through the host. Never log a secret.
    pub fn log(&self, level: LogLevel, message: &str) {
        self.backend.log(level, message)
    }
}

fn reply_name(r: &InteractionReply) -> &'static str {
    match r {
        InteractionReply::Done => "`done`",
        InteractionReply::Opened { .. } => "`opened`",
        InteractionReply::Text { .. } => "`text`",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interaction_wire_format() {
        let i = Interaction::ShowVerification {
            verification_uri: "https://x/device".into(),
            user_code: "ABCD-EFGH".into(),
            verification_uri_complete: None,
        };
        assert_eq!(
            serde_json::to_string(&i).unwrap(),
            r#"{"kind":"show_verification","verification_uri":"https://x/device","user_code":"ABCD-EFGH","verification_uri_complete":null}"#
        );
        let r = InteractionReply::Text {
            text: "canary".into(),
        };
        assert!(!format!("{r:?}").contains("canary"));
    }

    #[test]
    fn settings_paths_are_relative_to_the_configuration_folder() {
        let services = crate::testing::MemoryServices::new(&[]).handle();
        // No configuration folder: a relative path stays as written.
        assert_eq!(
            services.resolve_path(Path::new("ca.pem")),
            Path::new("ca.pem")
        );
        let services = services.with_config_dir(Some(PathBuf::from("/etc/qlam")));
        assert_eq!(services.config_dir(), Some(Path::new("/etc/qlam")));
        assert_eq!(
            services.resolve_path(Path::new("certs/ca.pem")),
            Path::new("/etc/qlam/certs/ca.pem")
        );
        assert_eq!(
            services.resolve_path(Path::new("/abs/ca.pem")),
            Path::new("/abs/ca.pem")
        );
        // `~` alone as the first component is the home folder; `~name` is a plain name.
        if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
            assert_eq!(
                services.resolve_path(Path::new("~/k.pem")),
                PathBuf::from(home).join("k.pem")
            );
        }
        assert_eq!(
            services.resolve_path(Path::new("~bob/k.pem")),
            Path::new("/etc/qlam/~bob/k.pem")
        );
    }
}
