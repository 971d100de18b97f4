//! qlam provider for **Acme Cloud** (an example vendor): a long-lived API key, kept in qlam's
//! credential store, is exchanged for short-lived session tokens that go on requests.
//!
//! Acme's API (served by the test in `tests/it/vendor.rs`):
//! - `POST {api_url}/v1/sessions` with `Authorization: ApiKey <key>` answers
//!   `{"session_token": "…", "expires_in": 900}`; 401 means the key is wrong or revoked.
//! - `DELETE {api_url}/v1/sessions/current` with `Authorization: Bearer <session>` ends a
//!   session (logout).
//!
//! Configuration (`provider = "acme"`): `api_url` (https; plain http only to loopback),
//! optional `key_env` (read the key from this environment variable instead of logging in),
//! optional `timeout_secs` (default 30). `login_timeout_secs` is accepted too: the host reads
//! it (how long `qlam auth login` may wait for the user) and passes it on with the rest.

use std::sync::Mutex;
use std::time::Duration;

use qlam_plugin_api::chrono::{DateTime, TimeDelta, Utc};
use qlam_plugin_api::serde_json::{json, Map, Value};
use qlam_plugin_api::{
    export_providers, BuildRequest, CacheControl, Capabilities, Credential, CredentialDetails,
    CredentialStatus, Error, Headers, HostServices, HttpHeaders, LogLevel, LoginLogout,
    LoginOptions, LogoutReport, Provider, ProviderFactory, Refresh, Result, Secret, Token,
    TokenSource, VendorCredential,
};
use serde::Deserialize;

/// The provider type.
pub struct AcmeFactory;

impl ProviderFactory for AcmeFactory {
    fn name(&self) -> &str {
        "acme"
    }

    fn description(&self) -> String {
        "Acme Cloud: API key exchanged for short-lived session tokens".into()
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            headers: true,
            login: true,
            token: true,
            refresh: true,
        }
    }

    fn build(&self, req: BuildRequest) -> Result<Box<dyn Provider>> {
        let config = Config::parse(&req.provider_name, &req.config)?;
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(config.timeout_secs))
            // Never send a key or a session to wherever a redirect points.
            .redirects(0)
            .build();
        Ok(Box::new(Acme {
            name: req.provider_name,
            config,
            services: req.services,
            agent,
            session: Mutex::new(None),
        }))
    }

    fn extra_info(&self, config: &Value) -> Result<Map<String, Value>> {
        let mut m = Map::new();
        if let Some(u) = config.get("api_url") {
            m.insert("api_url".into(), u.clone());
        }
        Ok(m)
    }
}

struct Config {
    api_url: String,
    key_env: Option<String>,
    timeout_secs: u64,
}

impl Config {
    fn parse(name: &str, v: &Value) -> Result<Config> {
        let bad = |m: String| Error::configuration(format!("provider `{name}`: {m}"));
        let obj = v
            .as_object()
            .ok_or_else(|| bad("settings must be a table".into()))?;
        // `login_timeout_secs` is the host's (the deadline of `login`), passed on to us.
        const KNOWN: [&str; 4] = ["api_url", "key_env", "timeout_secs", "login_timeout_secs"];
        for key in obj.keys() {
            if !KNOWN.contains(&key.as_str()) {
                return Err(bad(format!(
                    "unknown setting `{key}` (known: {})",
                    KNOWN.join(", ")
                )));
            }
        }
        let api_url = obj
            .get("api_url")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("`api_url` is required, e.g. \"https://api.acme.example\"".into()))?
            .trim_end_matches('/')
            .to_owned();
        let loopback = ["http://127.0.0.1:", "http://[::1]:", "http://localhost:"]
            .iter()
            .any(|p| api_url.starts_with(p));
        if !api_url.starts_with("https://") && !loopback {
            return Err(bad(format!(
                "`api_url` must be https (plain http only to loopback), not `{api_url}`"
            )));
        }
        let key_env = match obj.get("key_env") {
            None => None,
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(_) => return Err(bad("`key_env` must be a variable name".into())),
        };
        let timeout_secs = match obj.get("timeout_secs") {
            None => 30,
            Some(t) => t
                .as_u64()
                .filter(|t| *t > 0)
                .ok_or_else(|| bad("`timeout_secs` must be a positive integer".into()))?,
        };
        Ok(Config {
            api_url,
            key_env,
            timeout_secs,
        })
    }
}

/// A session token and when it expires.
#[derive(Clone)]
struct Session {
    token: Secret<String>,
    expires_at: DateTime<Utc>,
}

#[derive(Deserialize)]
struct SessionAnswer {
    session_token: String,
    expires_in: i64,
}

struct Acme {
    name: String,
    config: Config,
    services: HostServices,
    agent: ureq::Agent,
    /// The current session, shared by the threads of one process.
    session: Mutex<Option<Session>>,
}

const KEY: &str = "api_key";
const SESSION: &str = "session";

impl Acme {
    fn api_key(&self) -> Result<Option<Secret<String>>> {
        if let Some(var) = &self.config.key_env {
            return match std::env::var(var) {
                Ok(k) if !k.is_empty() => Ok(Some(Secret::new(k))),
                _ => Err(Error::not_authenticated(format!(
                    "provider `{}` reads its API key from `${var}`, which is not set",
                    self.name
                ))),
            };
        }
        self.services.secret_load(KEY)
    }

    fn require_key(&self) -> Result<Secret<String>> {
        self.api_key()?.ok_or_else(|| {
            Error::not_authenticated(format!(
                "no Acme API key for provider `{}`; run `qlam auth login {}`",
                self.name, self.name
            ))
        })
    }

    /// Exchanges the key for a new session (one HTTP request) and keeps it.
    fn new_session(&self, key: &Secret<String>) -> Result<Session> {
        let url = format!("{}/v1/sessions", self.config.api_url);
        self.services
            .log(LogLevel::Debug, &format!("creating a session: POST {url}"));
        let sent = Utc::now();
        let resp = self
            .agent
            .post(&url)
            .set("Authorization", &format!("ApiKey {}", key.expose()))
            .set("Accept", "application/json")
            .call();
        let resp = match resp {
            Ok(r) if r.status() == 200 => r,
            Ok(r) => {
                return Err(Error::other(format!(
                    "Acme answered {} to a session request",
                    r.status()
                )))
            }
            Err(ureq::Error::Status(401 | 403, _)) => {
                return Err(Error::not_authenticated(format!(
                    "Acme refused the API key of provider `{}` (401); run `qlam auth login {}` with a valid key",
                    self.name, self.name
                )))
            }
            Err(ureq::Error::Status(s, _)) if s >= 500 => {
                return Err(Error::transient(format!("Acme answered {s}; try again later")))
            }
            Err(ureq::Error::Status(s, _)) => {
                return Err(Error::other(format!("Acme answered {s} to a session request")))
            }
            Err(e) => {
                return Err(Error::transient(format!("cannot reach Acme at {url}: {e}")))
            }
        };
        // Never quote the body in an error: it carries the session token.
        let answer: SessionAnswer = resp
            .into_json()
            .map_err(|_| Error::other("Acme's session answer is not the expected JSON"))?;
        if answer.session_token.is_empty() || answer.expires_in <= 0 {
            return Err(Error::other("Acme's session answer has no usable token"));
        }
        let session = Session {
            token: Secret::new(answer.session_token),
            expires_at: sent + TimeDelta::seconds(answer.expires_in),
        };
        let stored = json!({"token": session.token.expose(), "expires_at": session.expires_at});
        self.services
            .secret_store(SESSION, &Secret::new(stored.to_string()))?;
        *self.session.lock().unwrap_or_else(|e| e.into_inner()) = Some(session.clone());
        Ok(session)
    }

    /// The kept session: from memory, else from the store (another process may have made it).
    fn kept_session(&self) -> Option<Session> {
        if let Some(s) = self
            .session
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            return Some(s);
        }
        let raw = self.services.secret_load(SESSION).ok()??;
        let v: Value = qlam_plugin_api::serde_json::from_str(raw.expose()).ok()?;
        Some(Session {
            token: Secret::new(v.get("token")?.as_str()?.to_owned()),
            expires_at: v.get("expires_at")?.as_str()?.parse().ok()?,
        })
    }

    /// Refresh this long before expiry: a minute, at most half the session's lifetime.
    fn margin(&self, s: &Session) -> TimeDelta {
        let left = s.expires_at - Utc::now();
        TimeDelta::seconds(60).min(left / 2)
    }

    /// A session valid beyond the margin, making one if needed.
    fn session(&self) -> Result<Session> {
        if let Some(s) = self.kept_session() {
            if Utc::now() < s.expires_at - self.margin(&s) {
                return Ok(s);
            }
        }
        let key = self.require_key()?;
        self.new_session(&key)
    }

    fn answer(&self) -> Result<(Secret<String>, CacheControl)> {
        let s = self.session()?;
        let until = s.expires_at - self.margin(&s);
        Ok((s.token, CacheControl::Until(until)))
    }
}

impl Provider for Acme {
    fn description(&self) -> String {
        format!("Acme Cloud at {}", self.config.api_url)
    }

    fn is_authenticated(&self) -> bool {
        matches!(self.api_key(), Ok(Some(_)))
    }

    fn auth_context(&self) -> Result<Map<String, Value>> {
        let mut m = Map::new();
        m.insert("api_url".into(), json!(self.config.api_url));
        if let Some(s) = self.kept_session() {
            m.insert("session_expires_at".into(), json!(s.expires_at));
        }
        Ok(m)
    }

    fn credential(&self) -> Result<Option<Credential>> {
        let key = self.api_key().unwrap_or(None);
        let mut v = VendorCredential {
            type_name: "acme-api-key".into(),
            ..Default::default()
        };
        v.fields
            .insert("api_url".into(), json!(self.config.api_url));
        if let Some(s) = self.kept_session() {
            v.fields
                .insert("session_expires_at".into(), json!(s.expires_at));
            v.secrets.insert("session_token".into(), s.token);
        }
        let status = match &key {
            Some(k) => {
                v.secrets.insert("api_key".into(), k.clone());
                CredentialStatus::Authenticated
            }
            None => CredentialStatus::NotAuthenticated,
        };
        Ok(Some(Credential::new(
            self.name.clone(),
            status,
            CredentialDetails::Vendor(v),
        )))
    }

    fn http_headers(&self) -> Option<&dyn HttpHeaders> {
        Some(self)
    }
    fn login_logout(&self) -> Option<&dyn LoginLogout> {
        Some(self)
    }
    fn token_source(&self) -> Option<&dyn TokenSource> {
        Some(self)
    }
    fn refresher(&self) -> Option<&dyn Refresh> {
        Some(self)
    }
}

impl HttpHeaders for Acme {
    fn headers(&self) -> Result<Headers> {
        let (token, cache) = self.answer()?;
        Ok(Headers {
            headers: vec![(
                "Authorization".into(),
                Secret::new(format!("Bearer {}", token.expose())),
            )],
            cache,
        })
    }
}

impl TokenSource for Acme {
    fn token(&self) -> Result<Token> {
        let (token, cache) = self.answer()?;
        Ok(Token { token, cache })
    }
}

impl LoginLogout for Acme {
    fn login(&self, _options: &LoginOptions) -> Result<()> {
        if self.config.key_env.is_some() {
            return Err(Error::unsupported(format!(
                "provider `{}` reads its key from the environment; there is nothing to log in",
                self.name
            )));
        }
        let key = self.services.prompt_secret("Acme API key")?;
        if key.expose().trim().is_empty() {
            return Err(Error::interaction("no API key given"));
        }
        let key = Secret::new(key.expose().trim().to_owned());
        // Check the key before keeping it: a session proves it works.
        self.new_session(&key)?;
        self.services.secret_store(KEY, &key)
    }

    fn logout(&self) -> Result<LogoutReport> {
        let mut report = LogoutReport::default();
        if let Some(s) = self.kept_session() {
            let url = format!("{}/v1/sessions/current", self.config.api_url);
            let r = self
                .agent
                .delete(&url)
                .set("Authorization", &format!("Bearer {}", s.token.expose()))
                .call();
            if let Err(e) = r {
                report
                    .warnings
                    .push(format!("could not end the session at Acme: {e}"));
            }
        }
        *self.session.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.services.secret_delete(SESSION)?;
        if self.config.key_env.is_none() {
            self.services.secret_delete(KEY)?;
        }
        Ok(report)
    }
}

impl Refresh for Acme {
    fn can_refresh(&self) -> bool {
        matches!(self.api_key(), Ok(Some(_)))
    }

    fn refresh(&self, force: bool) -> Result<bool> {
        if !force {
            if let Some(s) = self.kept_session() {
                if Utc::now() < s.expires_at - self.margin(&s) {
                    return Ok(false);
                }
            }
        }
        let key = self.require_key()?;
        self.new_session(&key)?;
        Ok(true)
    }
}

export_providers!(AcmeFactory);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_errors_name_the_setting() {
        let e = |v: Value| Config::parse("a", &v).err().unwrap().to_string();
        assert!(e(json!({})).contains("`api_url` is required"));
        assert!(e(json!({"api_url": "http://acme.example"})).contains("must be https"));
        assert!(
            e(json!({"api_url": "https://x", "colour": 1})).contains("unknown setting `colour`")
        );
        assert!(e(json!({"api_url": "https://x", "timeout_secs": 0})).contains("timeout_secs"));
        let ok = Config::parse("a", &json!({"api_url": "http://127.0.0.1:8080/"})).unwrap();
        assert_eq!(ok.api_url, "http://127.0.0.1:8080");
        // The host's own key in our table is not an unknown setting.
        Config::parse(
            "a",
            &json!({"api_url": "https://x", "login_timeout_secs": 600}),
        )
        .unwrap();
    }
}
