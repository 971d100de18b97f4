//! The `token` provider: a bearer token from an environment variable, a file, a command, or
//! the host's secret store (after `qlam auth login`).
//!
//! ```toml
//! [[contexts.dev.auth_providers]]
//! name = "ci-token"
//! provider = "token"
//! env = "CI_API_TOKEN"        # or: file = "~/.config/acme/token"
//!                             # or: command = ["pass", "show", "acme/token"]
//!                             # or none of them: `qlam auth login ci-token` asks for it
//! header = "Authorization"    # default
//! scheme = "Bearer"           # default; "" sends the bare token (e.g. header = "X-API-Key")
//! ```
//!
//! A command prints the token, or a JSON object `{"token": "…", "expires_at": "RFC 3339"}`;
//! a token with an expiry is reused until it expires, anything else is asked for every time.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use qlam_plugin_api::{
    export_providers, BuildRequest, CacheControl, Capabilities, Credential, CredentialDetails,
    CredentialStatus, Error, Headers, HostServices, HttpHeaders, LoginLogout, LoginOptions,
    LogoutReport, Provider, ProviderFactory, Refresh, Result, Secret, Token, TokenSource,
    VendorCredential,
};
use serde::Deserialize;
use serde_json::{json, Map, Value};

const STORE_KEY: &str = "token";

/// The `token` provider type.
pub struct TokenFactory;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    env: Option<String>,
    file: Option<PathBuf>,
    command: Option<Vec<String>>,
    #[serde(default = "default_header")]
    header: String,
    #[serde(default = "default_scheme")]
    scheme: String,
    #[serde(default = "default_timeout")]
    timeout_secs: u64,
}

fn default_header() -> String {
    "Authorization".into()
}
fn default_scheme() -> String {
    "Bearer".into()
}
fn default_timeout() -> u64 {
    60
}

#[derive(Debug, Clone)]
enum Source {
    Env(String),
    File(PathBuf),
    Command(Vec<String>),
    Store,
}

impl Source {
    fn describe(&self) -> String {
        match self {
            Source::Env(v) => format!("env:{v}"),
            Source::File(p) => format!("file:{}", p.display()),
            Source::Command(c) => format!("command:{}", c[0]),
            Source::Store => "store".into(),
        }
    }
}

fn parse_config(config: &Value) -> Result<Config> {
    let c: Config = serde_json::from_value(config.clone())
        .map_err(|e| Error::configuration(format!("invalid token provider config: {e}")))?;
    let given = [c.env.is_some(), c.file.is_some(), c.command.is_some()];
    if given.iter().filter(|g| **g).count() > 1 {
        return Err(Error::configuration(
            "set at most one of `env`, `file` and `command` (none means the token is stored by `qlam auth login`)",
        ));
    }
    if let Some(cmd) = &c.command {
        if cmd.is_empty() || cmd[0].is_empty() {
            return Err(Error::configuration(
                "`command` must name a program: `command = [\"prog\", \"arg\"]`",
            ));
        }
    }
    if matches!(&c.env, Some(v) if v.is_empty()) {
        return Err(Error::configuration(
            "`env` must name an environment variable",
        ));
    }
    if c.header.is_empty()
        || !c
            .header
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(Error::configuration(format!(
            "`header` is not a valid HTTP header name: `{}`",
            c.header
        )));
    }
    Ok(c)
}

fn source_of(c: &Config) -> Source {
    if let Some(v) = &c.env {
        Source::Env(v.clone())
    } else if let Some(f) = &c.file {
        Source::File(f.clone())
    } else if let Some(cmd) = &c.command {
        Source::Command(cmd.clone())
    } else {
        Source::Store
    }
}

impl ProviderFactory for TokenFactory {
    fn name(&self) -> &str {
        "token"
    }

    fn description(&self) -> String {
        "Static bearer token from an environment variable, a file, a command or the secret store"
            .into()
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            headers: true,
            login: true,
            token: true,
            // A `command` source: run the command again.
            refresh: true,
        }
    }

    fn build(&self, req: BuildRequest) -> Result<Box<dyn Provider>> {
        let mut config = parse_config(&req.config)?;
        // `~/` is the home folder; a relative path is in the configuration file's folder.
        config.file = config.file.map(|p| req.services.resolve_path(&p));
        let source = source_of(&config);
        Ok(Box::new(TokenProvider {
            name: req.provider_name,
            source,
            header: config.header,
            scheme: config.scheme,
            timeout: Duration::from_secs(config.timeout_secs),
            services: req.services,
            cached: Mutex::new(None),
        }))
    }

    fn extra_info(&self, config: &Value) -> Result<Map<String, Value>> {
        let c = parse_config(config)?;
        let mut m = Map::new();
        m.insert("source".into(), json!(source_of(&c).describe()));
        m.insert("header".into(), json!(c.header));
        Ok(m)
    }
}

struct TokenProvider {
    name: String,
    source: Source,
    header: String,
    scheme: String,
    timeout: Duration,
    services: HostServices,
    /// A command's token with an expiry, reused until then.
    cached: Mutex<Option<(Secret<String>, DateTime<Utc>)>>,
}

#[derive(Deserialize)]
struct CommandOutput {
    token: Secret<String>,
    #[serde(default)]
    expires_at: Option<DateTime<Utc>>,
}

impl TokenProvider {
    fn not_logged_in(&self) -> Error {
        Error::not_authenticated(format!(
            "provider `{}` is not logged in; run `qlam auth login {}`",
            self.name, self.name
        ))
    }

    fn cached_token(&self) -> Option<(Secret<String>, DateTime<Utc>)> {
        let guard = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        guard.as_ref().filter(|(_, exp)| *exp > Utc::now()).cloned()
    }

    /// The token and its expiry, when known.
    fn fetch(&self) -> Result<(Secret<String>, CacheControl)> {
        match &self.source {
            Source::Env(var) => match std::env::var(var) {
                Ok(v) if !v.trim().is_empty() => {
                    Ok((Secret::new(v.trim().to_owned()), CacheControl::Never))
                }
                _ => Err(Error::not_authenticated(format!(
                    "environment variable `{var}` (provider `{}`) is not set or empty",
                    self.name
                ))),
            },
            Source::File(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    let msg = format!(
                        "cannot read token file `{}` (provider `{}`): {e}",
                        path.display(),
                        self.name
                    );
                    if e.kind() == std::io::ErrorKind::NotFound {
                        Error::not_authenticated(msg)
                    } else {
                        Error::other(msg)
                    }
                })?;
                let t = text.trim();
                if t.is_empty() {
                    return Err(Error::not_authenticated(format!(
                        "token file `{}` (provider `{}`) is empty",
                        path.display(),
                        self.name
                    )));
                }
                Ok((Secret::new(t.to_owned()), CacheControl::Never))
            }
            Source::Command(cmd) => {
                if let Some((t, exp)) = self.cached_token() {
                    return Ok((t, CacheControl::Until(exp)));
                }
                let out = run_command(cmd, self.timeout, &self.name)?;
                let trimmed = out.expose().trim();
                if trimmed.starts_with('{') {
                    let parsed: CommandOutput = serde_json::from_str(trimmed).map_err(|e| {
                        // serde_json's message names the field and position, never the value.
                        Error::other(format!(
                            "token command `{}` printed invalid JSON: {e}",
                            cmd[0]
                        ))
                    })?;
                    if parsed.token.expose().is_empty() {
                        return Err(Error::other(format!(
                            "token command `{}` printed an empty token",
                            cmd[0]
                        )));
                    }
                    match parsed.expires_at {
                        Some(exp) => {
                            *self.cached.lock().unwrap_or_else(|p| p.into_inner()) =
                                Some((parsed.token.clone(), exp));
                            Ok((parsed.token, CacheControl::Until(exp)))
                        }
                        None => Ok((parsed.token, CacheControl::Never)),
                    }
                } else if trimmed.is_empty() {
                    Err(Error::other(format!(
                        "token command `{}` printed nothing",
                        cmd[0]
                    )))
                } else {
                    Ok((Secret::new(trimmed.to_owned()), CacheControl::Never))
                }
            }
            Source::Store => {
                let t = self
                    .services
                    .secret_load(STORE_KEY)?
                    .ok_or_else(|| self.not_logged_in())?;
                Ok((t, CacheControl::Session))
            }
        }
    }

    /// Whether a token is available without running anything.
    fn available(&self) -> Result<Option<Secret<String>>> {
        match &self.source {
            Source::Command(_) => Ok(self.cached_token().map(|(t, _)| t)),
            _ => match self.fetch() {
                Ok((t, _)) => Ok(Some(t)),
                Err(e) if e.kind() == qlam_plugin_api::ErrorKind::NotAuthenticated => Ok(None),
                Err(e) => Err(e),
            },
        }
    }
}

fn run_command(cmd: &[String], timeout: Duration, provider: &str) -> Result<Secret<String>> {
    let mut child = Command::new(&cmd[0])
        .args(&cmd[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            Error::configuration(format!(
                "cannot run token command `{}` (provider `{provider}`): {e}",
                cmd[0]
            ))
        })?;
    // Read both pipes on threads so a chatty command cannot block on a full pipe.
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let out_thread = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let err_thread = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Error::transient(format!(
                    "token command `{}` (provider `{provider}`) did not finish within {} s",
                    cmd[0],
                    timeout.as_secs()
                )));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => {
                return Err(Error::other(format!(
                    "waiting for token command `{}`: {e}",
                    cmd[0]
                )))
            }
        }
    };
    let out = out_thread.join().unwrap_or_default();
    let err = err_thread.join().unwrap_or_default();
    if !status.success() {
        let first = String::from_utf8_lossy(&err)
            .lines()
            .next()
            .unwrap_or("")
            .chars()
            .take(200)
            .collect::<String>();
        return Err(Error::other(format!(
            "token command `{}` (provider `{provider}`) failed with {status}{}",
            cmd[0],
            if first.is_empty() {
                String::new()
            } else {
                format!(": {first}")
            }
        )));
    }
    String::from_utf8(out).map(Secret::new).map_err(|_| {
        Error::other(format!(
            "token command `{}` printed text that is not UTF-8",
            cmd[0]
        ))
    })
}

impl Provider for TokenProvider {
    fn description(&self) -> String {
        format!("Bearer token from {}", self.source.describe())
    }

    fn is_authenticated(&self) -> bool {
        matches!(self.available(), Ok(Some(_)))
    }

    fn auth_context(&self) -> Result<Map<String, Value>> {
        let mut m = Map::new();
        m.insert("provider".into(), json!(self.name));
        m.insert("source".into(), json!(self.source.describe()));
        m.insert("header".into(), json!(self.header));
        m.insert("authenticated".into(), json!(self.is_authenticated()));
        if let Some((_, exp)) = self.cached_token() {
            m.insert("expires_at".into(), json!(exp));
        }
        Ok(m)
    }

    fn credential(&self) -> Result<Option<Credential>> {
        let token = self.available()?;
        let mut v = VendorCredential {
            type_name: "token".into(),
            ..Default::default()
        };
        v.fields
            .insert("source".into(), json!(self.source.describe()));
        if let Some((_, exp)) = self.cached_token() {
            v.fields.insert("expires_at".into(), json!(exp));
        }
        let status = if token.is_some() {
            CredentialStatus::Authenticated
        } else {
            CredentialStatus::NotAuthenticated
        };
        if let Some(t) = token {
            v.secrets.insert("token".into(), t);
        }
        Ok(Some(Credential::new(
            &self.name,
            status,
            CredentialDetails::Vendor(v),
        )))
    }

    fn http_headers(&self) -> Option<&dyn HttpHeaders> {
        Some(self)
    }

    fn token_source(&self) -> Option<&dyn TokenSource> {
        Some(self)
    }

    fn login_logout(&self) -> Option<&dyn LoginLogout> {
        // Only a stored token is something to log in to; the other sources are managed
        // outside qlam.
        matches!(self.source, Source::Store).then_some(self as &dyn LoginLogout)
    }

    fn refresher(&self) -> Option<&dyn Refresh> {
        // A command can be asked for a new token; the other sources have only the one.
        matches!(self.source, Source::Command(_)).then_some(self as &dyn Refresh)
    }
}

impl Refresh for TokenProvider {
    fn can_refresh(&self) -> bool {
        true
    }

    /// Runs the command again: always when `force` (a server rejected the token), else only
    /// when the token it gave has expired.
    fn refresh(&self, force: bool) -> Result<bool> {
        if !force && self.cached_token().is_some() {
            return Ok(false);
        }
        *self.cached.lock().unwrap_or_else(|p| p.into_inner()) = None;
        self.fetch()?;
        Ok(true)
    }
}

impl HttpHeaders for TokenProvider {
    fn headers(&self) -> Result<Headers> {
        let (token, cache) = self.fetch()?;
        let value = if self.scheme.is_empty() {
            token
        } else {
            token.map(|t| format!("{} {t}", self.scheme))
        };
        Ok(Headers {
            headers: vec![(self.header.clone(), value)],
            cache,
        })
    }
}

impl TokenSource for TokenProvider {
    fn token(&self) -> Result<Token> {
        let (token, cache) = self.fetch()?;
        Ok(Token { token, cache })
    }
}

impl LoginLogout for TokenProvider {
    fn login(&self, _options: &LoginOptions) -> Result<()> {
        let token = self
            .services
            .prompt_secret(&format!("Token for {}", self.name))?;
        let token = token.map(|t| t.trim().to_owned());
        if token.is_empty() {
            return Err(Error::interaction("no token entered; nothing was stored"));
        }
        self.services.secret_store(STORE_KEY, &token)
    }

    fn logout(&self) -> Result<LogoutReport> {
        self.services.secret_delete(STORE_KEY)?;
        Ok(LogoutReport::default())
    }
}

export_providers!(TokenFactory);

#[cfg(test)]
mod tests {
    use super::*;
    use qlam_plugin_api::testing::MemoryServices;
    use qlam_plugin_api::ErrorKind;

    fn build(
        config: Value,
        answers: &[&str],
    ) -> (Box<dyn Provider>, std::sync::Arc<MemoryServices>) {
        let s = MemoryServices::new(answers);
        let p = TokenFactory
            .build(BuildRequest {
                context_name: "dev".into(),
                provider_name: "t".into(),
                config,
                services: s.handle(),
            })
            .unwrap_or_else(|e| panic!("{e}"));
        (p, s)
    }

    fn err_of(config: Value) -> Error {
        TokenFactory
            .build(BuildRequest {
                context_name: "dev".into(),
                provider_name: "t".into(),
                config,
                services: MemoryServices::new(&[]).handle(),
            })
            .err()
            .expect("config must be refused")
    }

    #[test]
    fn unknown_key_and_two_sources_are_configuration_errors() {
        let e = err_of(json!({"evn": "X"}));
        assert_eq!(e.kind(), ErrorKind::Configuration);
        assert!(e.message().contains("unknown field `evn`"), "{e}");
        let e = err_of(json!({"env": "X", "file": "/y"}));
        assert!(e.message().contains("at most one"), "{e}");
        let e = err_of(json!({"command": []}));
        assert!(e.message().contains("must name a program"), "{e}");
        let e = err_of(json!({"header": "Bad Header"}));
        assert!(e.message().contains("not a valid HTTP header name"), "{e}");
    }

    #[test]
    fn file_source_with_custom_header_and_no_scheme() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("tok");
        std::fs::write(&f, "canary-file-token\n").unwrap();
        let (p, _) = build(json!({"file": f, "header": "X-API-Key", "scheme": ""}), &[]);
        let h = p.http_headers().unwrap().headers().unwrap();
        assert_eq!(h.headers.len(), 1);
        assert_eq!(h.headers[0].0, "X-API-Key");
        assert_eq!(h.headers[0].1.expose(), "canary-file-token");
        assert_eq!(h.cache, CacheControl::Never);
        assert!(p.login_logout().is_none());
        std::fs::remove_file(&f).unwrap();
        assert!(!p.is_authenticated());
        let e = p.token_source().unwrap().token().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotAuthenticated);
    }

    #[test]
    fn command_json_with_expiry_is_cached_until_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let counter = dir.path().join("count");
        let script = format!(
            "echo x >> {c}; echo '{{\"token\":\"canary-cmd\",\"expires_at\":\"2999-01-01T00:00:00Z\"}}'",
            c = counter.display()
        );
        let (p, _) = build(json!({"command": ["sh", "-c", script]}), &[]);
        assert!(!p.is_authenticated(), "nothing runs until asked");
        let t1 = p.token_source().unwrap().token().unwrap();
        let t2 = p.token_source().unwrap().token().unwrap();
        assert_eq!(t1.token.expose(), "canary-cmd");
        assert_eq!(
            t2.cache,
            CacheControl::Until("2999-01-01T00:00:00Z".parse().unwrap())
        );
        assert_eq!(
            std::fs::read_to_string(&counter).unwrap().lines().count(),
            1
        );
        assert!(p.is_authenticated());
    }

    #[test]
    fn command_failure_and_timeout_are_clear() {
        let (p, _) = build(
            json!({"command": ["sh", "-c", "echo oops >&2; exit 3"]}),
            &[],
        );
        let e = p.token_source().unwrap().token().unwrap_err();
        assert!(
            e.message().contains("failed with exit status: 3: oops"),
            "{e}"
        );
        let (p, _) = build(json!({"command": ["sleep", "5"], "timeout_secs": 0}), &[]);
        let e = p.token_source().unwrap().token().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Transient);
        let (p, _) = build(json!({"command": ["/nonexistent/qlam-cmd"]}), &[]);
        let e = p.token_source().unwrap().token().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Configuration, "{e}");
    }

    #[test]
    fn stored_token_login_headers_logout() {
        let (p, s) = build(json!({}), &["  canary-stored  "]);
        assert!(!p.is_authenticated());
        assert_eq!(
            p.http_headers().unwrap().headers().unwrap_err().message(),
            "provider `t` is not logged in; run `qlam auth login t`"
        );
        p.login_logout()
            .unwrap()
            .login(&LoginOptions::default())
            .unwrap();
        assert_eq!(
            s.secrets().get("token").map(String::as_str),
            Some("canary-stored")
        );
        let h = p.http_headers().unwrap().headers().unwrap();
        assert_eq!(h.headers[0].1.expose(), "Bearer canary-stored");
        assert_eq!(h.cache, CacheControl::Session);
        let c = p.credential().unwrap().unwrap();
        assert_eq!(c.status, CredentialStatus::Authenticated);
        assert!(!c.to_json(false).to_string().contains("canary"));
        p.login_logout().unwrap().logout().unwrap();
        assert!(!p.is_authenticated());
    }
}
