//! The configuration file: TOML with kubeconfig-like contexts.
//!
//! ```toml
//! current_context = "dev"
//!
//! [contexts.dev]
//! plugin_dirs = ["/opt/acme/qlam-plugins"]
//!
//! [[contexts.dev.auth_providers]]
//! name = "corp-sso"
//! provider = "oauth"
//! issuer = "https://login.example.com"
//! ```
//!
//! Errors name the file, line and column. [`set_current_context`] rewrites the file keeping
//! its comments and order.

use std::path::{Path, PathBuf};
use std::time::Duration;

use indexmap::IndexMap;
use serde::Deserialize;
use serde_json::Value;
use toml::Spanned;

use crate::error::{Error, Result};
use crate::fsutil;

mod edit;
pub use crate::plugins::Isolation;
pub use crate::store::StoreKind;
pub use edit::set_current_context;
pub(crate) use edit::{
    add_isolated_plugin, remove_isolated_plugin, remove_plugin_pin, set_plugin_pin,
};

/// A parsed configuration file.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// The file it came from; none for an empty configuration (no file).
    pub path: Option<PathBuf>,
    /// The selected context, when the file sets one.
    pub current_context: Option<String>,
    /// The contexts, in file order.
    pub contexts: Vec<ContextConfig>,
    /// Where credentials are kept, unless a context says otherwise.
    pub credential_store: Option<StoreKind>,
    /// Whether plugin files may be symbolic links (their targets are checked).
    pub allow_symlink_plugins: bool,
    /// Plugin files pinned to a SHA-256 (`trusted_plugins`); paths are absolute.
    pub trusted_plugins: Vec<(PathBuf, String)>,
    /// Whether only pinned plugin files may be loaded.
    pub require_pinned_plugins: bool,
    /// `call_timeout_secs` at the top level: the deadline of every provider call whose table
    /// does not set its own, and of loading a plugin library.
    pub call_timeout: Option<Duration>,
    /// `default_isolation`: where the providers of libraries that are not bundled run.
    pub default_isolation: Option<Isolation>,
    /// `isolated_plugins`: libraries whose providers always run isolated (absolute paths).
    pub isolated_plugins: Vec<PathBuf>,
}

/// One context.
#[derive(Debug, Clone)]
pub struct ContextConfig {
    /// Its name (the key under `contexts`).
    pub name: String,
    /// Plugin folders searched before the defaults; relative paths are resolved against the
    /// config file's folder.
    pub plugin_dirs: Vec<PathBuf>,
    /// Its providers, in file order.
    pub auth_providers: Vec<ProviderConfig>,
    /// Where its credentials are kept (overrides the top-level setting).
    pub credential_store: Option<StoreKind>,
    /// `[contexts.NAME.hosts]`: which provider answers credential helpers (git…) for a host.
    pub hosts: Vec<HostRoute>,
}

/// One entry of a context's `hosts` table: `"git.example.com" = "corp-sso"` or
/// `"git.example.com/team" = { provider = "corp-sso", username = "oauth2" }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRoute {
    /// Host name (with `:port` if not the default), optionally followed by a path prefix.
    pub pattern: String,
    /// The provider (of the same context) whose token answers.
    pub provider: String,
    /// The user name to send with the token (helpers that need one; default `oauth2`).
    pub username: Option<String>,
}

impl HostRoute {
    /// Whether this route covers `host` (and `path`, without a leading `/`, when given).
    /// Host names compare without case; a path prefix matches whole segments.
    pub fn matches(&self, host: &str, path: Option<&str>) -> bool {
        let (h, prefix) = match self.pattern.split_once('/') {
            Some((h, p)) => (h, Some(p.trim_matches('/'))),
            None => (self.pattern.as_str(), None),
        };
        if !h.eq_ignore_ascii_case(host) {
            return false;
        }
        match (prefix, path.map(|p| p.trim_matches('/'))) {
            (None, _) | (Some(""), _) => true,
            (Some(_), None) => false,
            (Some(pre), Some(p)) => p == pre || p.starts_with(&format!("{pre}/")),
        }
    }

    /// How specific the route is: longer patterns win.
    pub fn specificity(&self) -> usize {
        self.pattern.trim_end_matches('/').len()
    }
}

impl ContextConfig {
    /// The most specific route for `host` and `path`.
    pub fn route(&self, host: &str, path: Option<&str>) -> Option<&HostRoute> {
        self.hosts
            .iter()
            .filter(|r| r.matches(host, path))
            .max_by_key(|r| r.specificity())
    }
}

/// One `[[contexts.X.auth_providers]]` entry.
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    /// The provider's name, unique within the context.
    pub name: String,
    /// The provider type (`provider = "…"`).
    pub provider_type: String,
    /// Every other key, as a JSON object.
    pub config: Value,
    /// The line (1-based) where the entry starts (its `[[…auth_providers]]` header), for
    /// messages.
    pub line: usize,
    /// `call_timeout_secs`: the deadline of each call into this provider (read by the host,
    /// not part of `config`).
    pub call_timeout: Option<Duration>,
    /// `isolation`: where this provider runs (read by the host, not part of `config`).
    pub isolation: Option<Isolation>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    current_context: Option<Spanned<String>>,
    credential_store: Option<StoreKind>,
    #[serde(default)]
    allow_symlink_plugins: bool,
    #[serde(default)]
    trusted_plugins: Vec<Spanned<RawPin>>,
    #[serde(default)]
    require_pinned_plugins: bool,
    call_timeout_secs: Option<Spanned<i64>>,
    default_isolation: Option<Isolation>,
    #[serde(default)]
    isolated_plugins: Vec<String>,
    #[serde(default)]
    contexts: IndexMap<String, RawContext>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPin {
    path: String,
    sha256: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawContext {
    #[serde(default)]
    plugin_dirs: Vec<String>,
    #[serde(default)]
    auth_providers: Vec<Spanned<toml::Table>>,
    credential_store: Option<StoreKind>,
    #[serde(default)]
    hosts: IndexMap<String, Spanned<RawRoute>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawRoute {
    Provider(String),
    Full {
        provider: String,
        username: Option<String>,
    },
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, col)
}

fn located(path: &Path, text: &str, offset: usize, message: impl std::fmt::Display) -> Error {
    let (line, col) = line_col(text, offset);
    Error::config_at(path, line, col, message)
}

/// The longest `call_timeout_secs`: a day.
const MAX_CALL_TIMEOUT_SECS: i64 = 86_400;

fn timeout_secs(n: i64) -> Option<Duration> {
    (1..=MAX_CALL_TIMEOUT_SECS)
        .contains(&n)
        .then(|| Duration::from_secs(n as u64))
}

/// Provider names become file names and command-line arguments: keep them plain.
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn toml_to_json(v: toml::Value) -> Value {
    match v {
        toml::Value::String(s) => Value::String(s),
        toml::Value::Integer(i) => Value::from(i),
        toml::Value::Float(f) => serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        toml::Value::Boolean(b) => Value::Bool(b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(a) => Value::Array(a.into_iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => {
            Value::Object(t.into_iter().map(|(k, v)| (k, toml_to_json(v))).collect())
        }
    }
}

impl Config {
    /// Reads and parses a file.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::config(format!("cannot read config file `{}`", path.display())).with_source(e)
        })?;
        Config::parse(&text, path)
    }

    /// Parses configuration text; `path` is for messages and for resolving relative paths.
    pub fn parse(text: &str, path: &Path) -> Result<Config> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let offset = e.span().map(|s| s.start).unwrap_or(0);
            located(path, text, offset, e.message().trim_end_matches('\n'))
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut contexts = Vec::new();
        for (ctx_name, raw_ctx) in raw.contexts {
            let mut providers: Vec<ProviderConfig> = Vec::new();
            for entry in raw_ctx.auth_providers {
                let span = entry.span();
                let mut table = entry.into_inner();
                let mut take_str = |key: &str| -> Result<String> {
                    match table.remove(key) {
                        Some(toml::Value::String(s)) => Ok(s),
                        Some(_) => Err(located(
                            path,
                            text,
                            span.start,
                            format_args!(
                                "`{key}` of a provider in context `{ctx_name}` must be a string"
                            ),
                        )),
                        None => Err(located(
                            path,
                            text,
                            span.start,
                            format_args!("a provider in context `{ctx_name}` has no `{key}`"),
                        )),
                    }
                };
                let name = take_str("name")?;
                let provider_type = take_str("provider")?;
                let call_timeout = match table.remove("call_timeout_secs") {
                    None => None,
                    Some(toml::Value::Integer(n)) => Some(timeout_secs(n).ok_or_else(|| {
                        located(path, text, span.start, format_args!(
                            "`call_timeout_secs` of provider `{name}` must be from 1 to {MAX_CALL_TIMEOUT_SECS} seconds"
                        ))
                    })?),
                    Some(_) => {
                        return Err(located(path, text, span.start, format_args!(
                            "`call_timeout_secs` of provider `{name}` must be a whole number of seconds"
                        )))
                    }
                };
                let isolation = match table.remove("isolation") {
                    None => None,
                    Some(toml::Value::String(s)) if s == "none" => Some(Isolation::None),
                    Some(toml::Value::String(s)) if s == "process" => Some(Isolation::Process),
                    Some(_) => {
                        return Err(located(
                            path,
                            text,
                            span.start,
                            format_args!(
                                "`isolation` of provider `{name}` must be \"none\" or \"process\""
                            ),
                        ))
                    }
                };
                let (line, _) = line_col(text, span.start);
                if !valid_name(&name) {
                    return Err(located(path, text, span.start, format_args!(
                        "provider name `{name}` in context `{ctx_name}` must start with a letter or digit and contain only letters, digits, `-`, `_` and `.`"
                    )));
                }
                if let Some(first) = providers.iter().find(|p| p.name == name) {
                    return Err(located(path, text, span.start, format_args!(
                        "duplicate provider name `{name}` in context `{ctx_name}` (first at line {})",
                        first.line
                    )));
                }
                if provider_type.is_empty() {
                    return Err(located(
                        path,
                        text,
                        span.start,
                        format_args!("provider `{name}` has an empty `provider` type"),
                    ));
                }
                let config = Value::Object(
                    table
                        .into_iter()
                        .map(|(k, v)| (k, toml_to_json(v)))
                        .collect(),
                );
                providers.push(ProviderConfig {
                    name,
                    provider_type,
                    config,
                    line,
                    call_timeout,
                    isolation,
                });
            }
            let plugin_dirs = raw_ctx
                .plugin_dirs
                .into_iter()
                .map(|d| {
                    let p = fsutil::expand_home(Path::new(&d));
                    if p.is_absolute() {
                        p
                    } else {
                        base.join(p)
                    }
                })
                .collect();
            let mut hosts = Vec::new();
            for (pattern, route) in raw_ctx.hosts {
                let span = route.span();
                let (provider, username) = match route.into_inner() {
                    RawRoute::Provider(p) => (p, None),
                    RawRoute::Full { provider, username } => (provider, username),
                };
                if pattern
                    .chars()
                    .chain(username.iter().flat_map(|u| u.chars()))
                    .any(char::is_control)
                {
                    return Err(located(path, text, span.start, format_args!(
                        "host `{}` in context `{ctx_name}`: host names and usernames cannot contain control characters (they are sent to git and docker line by line)",
                        pattern.escape_debug()
                    )));
                }
                if pattern.is_empty() || pattern.starts_with('/') || pattern.contains("://") {
                    return Err(located(path, text, span.start, format_args!(
                        "host `{pattern}` in context `{ctx_name}`: write a host name, optionally with `:port` and a path (`git.example.com/team`), without a scheme"
                    )));
                }
                if !providers.iter().any(|p| p.name == provider) {
                    return Err(located(path, text, span.start, format_args!(
                        "host `{pattern}` in context `{ctx_name}` names provider `{provider}`, which the context does not define"
                    )));
                }
                hosts.push(HostRoute {
                    pattern,
                    provider,
                    username,
                });
            }
            contexts.push(ContextConfig {
                name: ctx_name,
                plugin_dirs,
                auth_providers: providers,
                credential_store: raw_ctx.credential_store,
                hosts,
            });
        }
        let mut trusted_plugins = Vec::new();
        for pin in raw.trusted_plugins {
            let span = pin.span();
            let pin = pin.into_inner();
            let p = fsutil::expand_home(Path::new(&pin.path));
            let p = if p.is_absolute() { p } else { base.join(p) };
            if pin.sha256.len() != 64 || !pin.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(located(
                    path,
                    text,
                    span.start,
                    format_args!(
                        "the sha256 of trusted plugin `{}` must be 64 hexadecimal digits",
                        pin.path
                    ),
                ));
            }
            trusted_plugins.push((p, pin.sha256.to_ascii_lowercase()));
        }
        let current_context = match raw.current_context {
            None => None,
            Some(c) => {
                let span = c.span();
                let name = c.into_inner();
                if !contexts.iter().any(|x| x.name == name) {
                    return Err(located(path, text, span.start, format_args!(
                        "`current_context` names context `{name}`, which is not defined; define `[contexts.{name}]` or run `qlam context use NAME`"
                    )));
                }
                Some(name)
            }
        };
        let call_timeout = match raw.call_timeout_secs {
            None => None,
            Some(t) => {
                let span = t.span();
                Some(timeout_secs(t.into_inner()).ok_or_else(|| {
                    located(
                        path,
                        text,
                        span.start,
                        format_args!(
                            "`call_timeout_secs` must be from 1 to {MAX_CALL_TIMEOUT_SECS} seconds"
                        ),
                    )
                })?)
            }
        };
        Ok(Config {
            path: Some(path.to_owned()),
            current_context,
            contexts,
            credential_store: raw.credential_store,
            allow_symlink_plugins: raw.allow_symlink_plugins,
            trusted_plugins,
            require_pinned_plugins: raw.require_pinned_plugins,
            call_timeout,
            default_isolation: raw.default_isolation,
            isolated_plugins: raw
                .isolated_plugins
                .iter()
                .map(|p| {
                    let p = fsutil::expand_home(Path::new(p));
                    if p.is_absolute() {
                        p
                    } else {
                        base.join(p)
                    }
                })
                .collect(),
        })
    }

    /// A context by name.
    pub fn context(&self, name: &str) -> Option<&ContextConfig> {
        self.contexts.iter().find(|c| c.name == name)
    }

    /// The context to use: `explicit` (from `--context` / `$QLAM_CONTEXT`), else the file's
    /// `current_context`, else the only context when there is just one. `Ok(None)` when the
    /// file defines no context at all.
    pub fn select_context(&self, explicit: Option<&str>) -> Result<Option<&ContextConfig>> {
        let file = self
            .path
            .as_ref()
            .map(|p| format!(" in `{}`", p.display()))
            .unwrap_or_default();
        if let Some(name) = explicit {
            return self.context(name).map(Some).ok_or_else(|| {
                Error::usage(format!(
                    "no context `{name}`{file}; `qlam context list` shows the defined ones"
                ))
            });
        }
        if let Some(name) = &self.current_context {
            return Ok(self.context(name));
        }
        match self.contexts.len() {
            0 => Ok(None),
            1 => Ok(self.contexts.first()),
            _ => Err(Error::usage(format!(
                "no current context is set{file}; run `qlam context use NAME` or pass `--context NAME`"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config> {
        Config::parse(text, Path::new("/etc/qlam/config.toml"))
    }

    #[test]
    fn parses_contexts_in_order_with_provider_config() {
        let c = parse(
            r#"
current_context = "dev"
[contexts.prod]
[contexts.dev]
plugin_dirs = ["rel/plugins", "/abs"]
[[contexts.dev.auth_providers]]
name = "corp-sso"
provider = "oauth"
scopes = ["openid"]
port = 0
when = 1979-05-27T07:32:00Z
"#,
        )
        .unwrap();
        assert_eq!(
            c.contexts
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>(),
            ["prod", "dev"]
        );
        let dev = c.select_context(None).unwrap().unwrap();
        assert_eq!(
            dev.plugin_dirs,
            [
                PathBuf::from("/etc/qlam/rel/plugins"),
                PathBuf::from("/abs")
            ]
        );
        let p = &dev.auth_providers[0];
        assert_eq!(
            (p.name.as_str(), p.provider_type.as_str(), p.line),
            ("corp-sso", "oauth", 6)
        );
        assert_eq!(
            p.config,
            serde_json::json!({"scopes": ["openid"], "port": 0, "when": "1979-05-27T07:32:00Z"})
        );
    }

    #[test]
    fn errors_name_file_line_and_column() {
        let e = parse("[contexts.dev]\nplugin_dirs = 3\n").unwrap_err();
        assert!(
            e.message()
                .starts_with("`/etc/qlam/config.toml`:2:15: invalid type"),
            "{e}"
        );
        let e = parse("current_context = \"nope\"\n[contexts.dev]\n").unwrap_err();
        assert!(
            e.message().starts_with(
                "`/etc/qlam/config.toml`:1:19: `current_context` names context `nope`"
            ),
            "{e}"
        );
        let e = parse("[contexts.dev]\n[[contexts.dev.auth_providers]]\nname='a'\nprovider='x'\n[[contexts.dev.auth_providers]]\nname='a'\nprovider='y'\n").unwrap_err();
        assert!(
            e.message()
                .contains(":5:1: duplicate provider name `a` in context `dev` (first at line 2)"),
            "{e}"
        );
        let e =
            parse("[contexts.dev]\n[[contexts.dev.auth_providers]]\nprovider='x'\n").unwrap_err();
        assert!(
            e.message()
                .contains(":2:1: a provider in context `dev` has no `name`"),
            "{e}"
        );
        let e = parse("colour = 1\n").unwrap_err();
        assert!(e.message().contains(":1:1: unknown field `colour`"), "{e}");
        let e = parse("[contexts.dev\n").unwrap_err();
        assert!(e.message().starts_with("`/etc/qlam/config.toml`:1:"), "{e}");
        let e =
            parse("[contexts.dev]\n[[contexts.dev.auth_providers]]\nname='a b'\nprovider='x'\n")
                .unwrap_err();
        assert!(e.message().contains("provider name `a b`"), "{e}");
    }

    #[test]
    fn credential_store_top_level_and_per_context() {
        let c = parse("credential_store = \"auto\"\n[contexts.a]\n[contexts.b]\ncredential_store = \"keyring\"\n").unwrap();
        assert_eq!(c.credential_store, Some(StoreKind::Auto));
        assert_eq!(c.context("a").unwrap().credential_store, None);
        assert_eq!(
            c.context("b").unwrap().credential_store,
            Some(StoreKind::Keyring)
        );
        let e = parse("credential_store = \"vault\"\n").unwrap_err();
        assert!(
            e.message().contains(
                ":1:20: unknown variant `vault`, expected one of `auto`, `file`, `keyring`"
            ),
            "{e}"
        );
    }

    #[test]
    fn context_selection() {
        let one = parse("[contexts.only]\n").unwrap();
        assert_eq!(one.select_context(None).unwrap().unwrap().name, "only");
        let two = parse("[contexts.a]\n[contexts.b]\n").unwrap();
        assert_eq!(
            two.select_context(None).unwrap_err().kind(),
            crate::error::ErrorKind::Usage
        );
        assert_eq!(two.select_context(Some("b")).unwrap().unwrap().name, "b");
        assert!(two
            .select_context(Some("c"))
            .unwrap_err()
            .message()
            .contains("no context `c`"));
        assert!(parse("").unwrap().select_context(None).unwrap().is_none());
    }

    #[test]
    fn context_use_keeps_comments_and_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        let original = "# my config\ncurrent_context = \"a\" # the usual\n\n[contexts.a] # first\n[contexts.b]\n# end\n";
        std::fs::write(&path, original).unwrap();
        set_current_context(&path, "b").unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "# my config\ncurrent_context = \"b\" # the usual\n\n[contexts.a] # first\n[contexts.b]\n# end\n"
        );
        let e = set_current_context(&path, "zzz").unwrap_err();
        assert_eq!(e.kind(), crate::error::ErrorKind::Usage);
        std::fs::write(&path, "[contexts.a]\n").unwrap();
        set_current_context(&path, "a").unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "current_context = \"a\"\n[contexts.a]\n"
        );
    }

    /// An absolute path on this system from a Unix-style one (Windows: on drive C:, with
    /// forward slashes, which the configuration keeps as written).
    fn absolute(unix: &str) -> std::path::PathBuf {
        if cfg!(windows) {
            format!("C:{unix}").into()
        } else {
            unix.into()
        }
    }

    #[test]
    fn pins_are_added_replaced_and_removed_keeping_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("config.toml");
        let lib = &absolute("/home/u/.local/share/qlam/plugins/libacme.so");
        // A missing file is created.
        assert!(!set_plugin_pin(
            &cfg,
            lib,
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        )
        .unwrap());
        let c = Config::load(&cfg).unwrap();
        assert_eq!(
            c.trusted_plugins,
            [(
                lib.to_owned(),
                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".to_owned()
            )]
        );
        // Comments and other keys survive; a second pin of the same file replaces the first.
        let text = format!(
            "# my settings\ncurrent_context = \"dev\" # keep\n{}\n[contexts.dev]\n",
            std::fs::read_to_string(&cfg).unwrap().trim()
        );
        std::fs::write(&cfg, text).unwrap();
        assert!(set_plugin_pin(
            &cfg,
            lib,
            "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
        )
        .unwrap());
        let other = &absolute("/opt/other.so");
        assert!(!set_plugin_pin(
            &cfg,
            other,
            "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
        )
        .unwrap());
        let text = std::fs::read_to_string(&cfg).unwrap();
        assert!(
            text.starts_with("# my settings\ncurrent_context = \"dev\" # keep\n"),
            "{text}"
        );
        let c = Config::load(&cfg).unwrap();
        assert_eq!(
            c.trusted_plugins,
            [
                (
                    lib.to_owned(),
                    "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb".to_owned()
                ),
                (
                    other.to_owned(),
                    "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc".to_owned()
                )
            ]
        );
        assert!(remove_plugin_pin(&cfg, lib).unwrap());
        assert!(!remove_plugin_pin(&cfg, lib).unwrap());
        let c = Config::load(&cfg).unwrap();
        assert_eq!(
            c.trusted_plugins,
            [(
                other.to_owned(),
                "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc".to_owned()
            )]
        );
        assert!(c.context("dev").is_some());
    }

    #[test]
    fn pins_in_array_of_tables_form_are_edited_in_that_form() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("config.toml");
        let lib = absolute("/p/liba.so");
        std::fs::write(
            &cfg,
            format!("[[trusted_plugins]]\npath = \"{}\"\nsha256 = \"1111111111111111111111111111111111111111111111111111111111111111\"\n", lib.display()),
        )
        .unwrap();
        assert!(set_plugin_pin(
            &cfg,
            &lib,
            "2222222222222222222222222222222222222222222222222222222222222222"
        )
        .unwrap());
        let text = std::fs::read_to_string(&cfg).unwrap();
        assert!(text.contains("[[trusted_plugins]]"), "{text}");
        let c = Config::load(&cfg).unwrap();
        assert_eq!(
            c.trusted_plugins,
            [(
                lib,
                "2222222222222222222222222222222222222222222222222222222222222222".to_owned()
            )]
        );
    }

    #[test]
    fn a_broken_config_is_never_edited() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("config.toml");
        std::fs::write(&cfg, "current_context = [\n").unwrap();
        let e = set_plugin_pin(&cfg, Path::new("/p/liba.so"), "22").unwrap_err();
        assert!(e.to_string().contains("config.toml"), "{e}");
        assert_eq!(
            std::fs::read_to_string(&cfg).unwrap(),
            "current_context = [\n"
        );
    }

    #[test]
    fn hosts_route_to_providers_most_specific_first() {
        let c = parse(
            r#"
current_context = "w"
[contexts.w]
auth_providers = [{ name = "sso", provider = "oauth" }, { name = "team", provider = "token" }]
[contexts.w.hosts]
"git.example.com" = "sso"
"git.example.com/team" = { provider = "team", username = "x-token" }
"REG.example.com:5000" = "team"
"#,
        )
        .unwrap();
        let w = c.context("w").unwrap();
        let r = |h: &str, p: Option<&str>| w.route(h, p).map(|r| r.provider.as_str());
        assert_eq!(r("git.example.com", None), Some("sso"));
        assert_eq!(r("GIT.example.com", Some("other/repo.git")), Some("sso"));
        assert_eq!(r("git.example.com", Some("team/repo.git")), Some("team"));
        assert_eq!(r("git.example.com", Some("teamx/repo.git")), Some("sso"));
        assert_eq!(r("reg.example.com:5000", None), Some("team"));
        assert_eq!(r("reg.example.com", None), None);
        assert_eq!(
            w.route("git.example.com", Some("team"))
                .unwrap()
                .username
                .as_deref(),
            Some("x-token")
        );
        let e = parse(
            "[contexts.w]\nauth_providers = [{ name = \"sso\", provider = \"oauth\" }]\n[contexts.w.hosts]\n\"h\" = \"nope\"\n",
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains(":4:7: host `h` in context `w` names provider `nope`"),
            "{e}"
        );
        let e = parse("[contexts.w]\n[contexts.w.hosts]\n\"https://h\" = \"x\"\n").unwrap_err();
        assert!(e.to_string().contains("without a scheme"), "{e}");
    }
}
