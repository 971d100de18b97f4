//! The `basic` provider: a username and password sent as HTTP Basic authentication.
//!
//! ```toml
//! [[contexts.dev.auth_providers]]
//! name = "basic-demo"
//! provider = "basic"
//! username = "ann"                 # optional: asked at login when absent
//! username_env = "DEMO_USER"       # optional: read at login (non-interactive use)
//! password_env = "DEMO_PASSWORD"   # optional: read at login, and used without a login
//! verify_url = "https://api.example.com/whoami"   # optional: login checks the password here
//! ```
//!
//! `login` asks for what it does not have through the host, optionally checks it against
//! `verify_url` (HTTP Basic; any 2xx is valid, redirects are not followed), and keeps it in
//! the host's secret store. The password is never part of the credential model.

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;
use chrono::{DateTime, Utc};
use qlam_plugin_api::{
    export_providers, BasicCredential, BuildRequest, CacheControl, Capabilities, Credential,
    CredentialDetails, CredentialStatus, Error, Headers, HostServices, HttpHeaders, LogLevel,
    LoginLogout, LoginOptions, LogoutReport, Provider, ProviderFactory, Result, Secret,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

const STORE_KEY: &str = "credentials";

/// The `basic` provider type.
pub struct BasicFactory;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    username: Option<String>,
    username_env: Option<String>,
    password_env: Option<String>,
    verify_url: Option<String>,
    ca_file: Option<PathBuf>,
    #[serde(default = "default_timeout")]
    timeout_secs: u64,
}

fn default_timeout() -> u64 {
    30
}

fn parse_config(config: &Value) -> Result<Config> {
    let c: Config = serde_json::from_value(config.clone())
        .map_err(|e| Error::configuration(format!("invalid basic provider config: {e}")))?;
    if let Some(u) = &c.verify_url {
        let url = reqwest::Url::parse(u)
            .map_err(|e| Error::configuration(format!("`verify_url` is not a URL ({e}): `{u}`")))?;
        let loopback = url.host_str().is_some_and(|h| {
            h == "localhost"
                || h.trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        });
        match url.scheme() {
            "https" => {}
            "http" if loopback => {}
            _ => {
                return Err(Error::configuration(format!(
                    "`verify_url` must be https (plain http only for loopback hosts), so the password is never sent in clear: `{u}`"
                )))
            }
        }
    }
    if matches!(&c.username, Some(u) if u.contains(':')) {
        return Err(Error::configuration(
            "`username` must not contain `:` (HTTP Basic cannot carry it)",
        ));
    }
    Ok(c)
}

impl ProviderFactory for BasicFactory {
    fn name(&self) -> &str {
        "basic"
    }

    fn description(&self) -> String {
        "Username and password (HTTP Basic)".into()
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            headers: true,
            login: true,
            token: false,
            refresh: false,
        }
    }

    fn build(&self, req: BuildRequest) -> Result<Box<dyn Provider>> {
        let mut config = parse_config(&req.config)?;
        // Relative to the configuration file's folder, as the user wrote it there.
        config.ca_file = config.ca_file.map(|p| req.services.resolve_path(&p));
        Ok(Box::new(BasicProvider {
            name: req.provider_name,
            config,
            services: req.services,
        }))
    }

    fn extra_info(&self, config: &Value) -> Result<Map<String, Value>> {
        let c = parse_config(config)?;
        let mut m = Map::new();
        if let Some(u) = c.username {
            m.insert("username".into(), json!(u));
        }
        if let Some(u) = c.verify_url {
            m.insert("verify_url".into(), json!(u));
        }
        Ok(m)
    }
}

struct BasicProvider {
    name: String,
    config: Config,
    services: HostServices,
}

/// What login stores (as one secret value).
#[derive(Serialize, Deserialize)]
struct Stored {
    username: String,
    password: Secret<String>,
    login_time: DateTime<Utc>,
    #[serde(default)]
    auth_source: Option<String>,
}

impl BasicProvider {
    fn stored(&self) -> Result<Option<Stored>> {
        match self.services.secret_load(STORE_KEY)? {
            None => Ok(None),
            Some(v) => match serde_json::from_str::<Stored>(v.expose()) {
                Ok(s) => Ok(Some(s)),
                Err(_) => {
                    self.services.log(
                        LogLevel::Warn,
                        &format!(
                            "stored credentials of provider `{}` are unreadable; log in again",
                            self.name
                        ),
                    );
                    Ok(None)
                }
            },
        }
    }

    fn env(&self, var: &Option<String>) -> Option<String> {
        var.as_ref()
            .and_then(|v| std::env::var(v).ok())
            .filter(|s| !s.is_empty())
    }

    fn config_username(&self) -> Option<String> {
        self.config
            .username
            .clone()
            .or_else(|| self.env(&self.config.username_env))
    }

    /// Credentials usable now: stored by login, else from the environment.
    fn current(&self) -> Result<Option<(String, Secret<String>)>> {
        if let Some(s) = self.stored()? {
            return Ok(Some((s.username, s.password)));
        }
        match (self.config_username(), self.env(&self.config.password_env)) {
            (Some(u), Some(p)) => Ok(Some((u, Secret::new(p)))),
            _ => Ok(None),
        }
    }

    fn verify(&self, url: &str, username: &str, password: &Secret<String>) -> Result<()> {
        let mut builder = reqwest::blocking::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(self.config.timeout_secs))
            .user_agent(concat!("qlam-provider-basic/", env!("CARGO_PKG_VERSION")));
        if let Some(ca) = &self.config.ca_file {
            let pem = std::fs::read(ca).map_err(|e| {
                Error::configuration(format!("cannot read `ca_file` `{}`: {e}", ca.display()))
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                Error::configuration(format!(
                    "`ca_file` `{}` is not a PEM bundle: {e}",
                    ca.display()
                ))
            })?;
            for c in certs {
                builder = builder.add_root_certificate(c);
            }
        }
        let client = builder
            .build()
            .map_err(|e| Error::other(format!("cannot create an HTTP client: {e}")))?;
        self.services.log(
            LogLevel::Debug,
            &format!("verifying credentials of `{}` at {url}", self.name),
        );
        let resp = client
            .get(url)
            .basic_auth(username, Some(password.expose()))
            .send()
            .map_err(|e| {
                Error::transient(format!(
                    "cannot reach `{url}` to verify the password: {}",
                    error_chain(&e)
                ))
            })?;
        let status = resp.status();
        if status.is_success() {
            Ok(())
        } else if status == reqwest::StatusCode::UNAUTHORIZED
            || status == reqwest::StatusCode::FORBIDDEN
        {
            Err(Error::not_authenticated(format!(
                "`{url}` rejected the username or password ({status}); nothing was stored"
            )))
        } else if status.is_server_error() {
            Err(Error::transient(format!(
                "`{url}` answered {status}; try again later"
            )))
        } else {
            Err(Error::other(format!(
                "`{url}` answered {status}, expected 2xx; nothing was stored"
            )))
        }
    }
}

/// reqwest's Display shows only the outermost error; the cause (refused, timed out, bad
/// certificate) is what a user needs. None of these contain the password.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

impl Provider for BasicProvider {
    fn description(&self) -> String {
        match &self.config.verify_url {
            Some(u) => format!("Username and password, verified at {u}"),
            None => "Username and password".into(),
        }
    }

    fn is_authenticated(&self) -> bool {
        matches!(self.current(), Ok(Some(_)))
    }

    fn auth_context(&self) -> Result<Map<String, Value>> {
        let mut m = Map::new();
        m.insert("provider".into(), json!(self.name));
        let stored = self.stored()?;
        m.insert("authenticated".into(), json!(self.is_authenticated()));
        if let Some(s) = &stored {
            m.insert("username".into(), json!(s.username));
            m.insert("login_time".into(), json!(s.login_time));
            m.insert("auth_source".into(), json!(s.auth_source));
        } else if let Some(u) = self.config_username() {
            m.insert("username".into(), json!(u));
        }
        if let Some(u) = &self.config.verify_url {
            m.insert("verify_url".into(), json!(u));
        }
        Ok(m)
    }

    fn credential(&self) -> Result<Option<Credential>> {
        if let Some(s) = self.stored()? {
            return Ok(Some(Credential::new(
                &self.name,
                CredentialStatus::Authenticated,
                CredentialDetails::Basic(BasicCredential {
                    username: s.username,
                    login_time: Some(s.login_time),
                    auth_source: s.auth_source,
                }),
            )));
        }
        let status = if self.is_authenticated() {
            CredentialStatus::Authenticated
        } else {
            CredentialStatus::NotAuthenticated
        };
        Ok(self.config_username().map(|username| {
            Credential::new(
                &self.name,
                status,
                CredentialDetails::Basic(BasicCredential {
                    username,
                    login_time: None,
                    auth_source: Some("environment".into())
                        .filter(|_| status == CredentialStatus::Authenticated),
                }),
            )
        }))
    }

    fn http_headers(&self) -> Option<&dyn HttpHeaders> {
        Some(self)
    }

    fn login_logout(&self) -> Option<&dyn LoginLogout> {
        Some(self)
    }
}

impl HttpHeaders for BasicProvider {
    fn headers(&self) -> Result<Headers> {
        let (user, password) = self.current()?.ok_or_else(|| {
            Error::not_authenticated(format!(
                "provider `{}` is not logged in; run `qlam auth login {}`",
                self.name, self.name
            ))
        })?;
        let encoded = Secret::new(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD
                .encode(format!("{user}:{}", password.expose()))
        ));
        Ok(Headers {
            headers: vec![("Authorization".into(), encoded)],
            cache: CacheControl::Session,
        })
    }
}

impl LoginLogout for BasicProvider {
    fn login(&self, _options: &LoginOptions) -> Result<()> {
        let username = match self.config_username() {
            Some(u) => u,
            None => self.services.prompt_text("Username")?.trim().to_owned(),
        };
        if username.is_empty() {
            return Err(Error::interaction(
                "no username entered; nothing was stored",
            ));
        }
        if username.contains(':') {
            return Err(Error::interaction(
                "a username must not contain `:`; nothing was stored",
            ));
        }
        let password = match self.env(&self.config.password_env) {
            Some(p) => Secret::new(p),
            None => self
                .services
                .prompt_secret(&format!("Password for {username}"))?,
        };
        if password.is_empty() {
            return Err(Error::interaction(
                "no password entered; nothing was stored",
            ));
        }
        if let Some(url) = &self.config.verify_url {
            self.services
                .progress(&format!("Checking the password at {url}"), false)?;
            let checked = self.verify(url, &username, &password);
            self.services.progress("Checked", true)?;
            checked?;
        }
        let stored = Stored {
            username,
            password,
            login_time: Utc::now(),
            auth_source: self.config.verify_url.clone(),
        };
        let json = serde_json::to_string(&stored)
            .map_err(|e| Error::other(format!("cannot encode credentials: {e}")))?;
        self.services.secret_store(STORE_KEY, &Secret::new(json))
    }

    fn logout(&self) -> Result<LogoutReport> {
        self.services.secret_delete(STORE_KEY)?;
        Ok(LogoutReport::default())
    }
}

export_providers!(BasicFactory);

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
        let p = BasicFactory
            .build(BuildRequest {
                context_name: "dev".into(),
                provider_name: "b".into(),
                config,
                services: s.handle(),
            })
            .unwrap_or_else(|e| panic!("{e}"));
        (p, s)
    }

    #[test]
    fn plain_http_is_refused_except_loopback() {
        let e = BasicFactory
            .build(BuildRequest {
                context_name: "dev".into(),
                provider_name: "b".into(),
                config: json!({"verify_url": "http://example.com/x"}),
                services: MemoryServices::new(&[]).handle(),
            })
            .err()
            .unwrap();
        assert_eq!(e.kind(), ErrorKind::Configuration);
        assert!(e.message().contains("must be https"), "{e}");
        build(json!({"verify_url": "http://127.0.0.1:9/x"}), &[]);
        build(json!({"verify_url": "https://example.com/x"}), &[]);
    }

    #[test]
    fn login_prompts_stores_and_makes_basic_header() {
        let (p, s) = build(json!({}), &["ann", "canary-pw"]);
        assert!(!p.is_authenticated());
        p.login_logout()
            .unwrap()
            .login(&LoginOptions::default())
            .unwrap();
        let h = p.http_headers().unwrap().headers().unwrap();
        // base64("ann:canary-pw")
        assert_eq!(h.headers[0].1.expose(), "Basic YW5uOmNhbmFyeS1wdw==");
        let c = p.credential().unwrap().unwrap();
        let text = format!("{c:?} {}", c.to_json(true));
        assert!(
            !text.contains("canary"),
            "the password is not part of the model: {text}"
        );
        assert!(s.secrets()["credentials"].contains("canary-pw"));
        p.login_logout().unwrap().logout().unwrap();
        assert!(s.secrets().is_empty());
        assert!(!p.is_authenticated());
    }

    #[test]
    fn verify_failure_stores_nothing() {
        // Nothing listens on port 9 of loopback: connection refused, a transient failure.
        let (p, s) = build(
            json!({"username": "ann", "verify_url": "http://127.0.0.1:9/"}),
            &["canary-pw"],
        );
        let e = p
            .login_logout()
            .unwrap()
            .login(&LoginOptions::default())
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
        assert!(!e.message().contains("canary"));
        assert!(s.secrets().is_empty());
    }
}
