//! What the provider keeps in the host's secret store (one JSON value under `tokens`).

use chrono::{DateTime, Utc};
use qlam_plugin_api::{HostServices, LogLevel, Result, Secret};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub const KEY: &str = "tokens";

/// Tokens and what is needed to refresh and revoke them without discovery.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stored {
    /// The configuration identity (issuer, token endpoint, client, scopes) the tokens were
    /// obtained for; tokens of another identity are never used.
    pub identity: String,
    #[serde(default)]
    pub access_token: Option<Secret<String>>,
    #[serde(default)]
    pub refresh_token: Option<Secret<String>>,
    /// UTC, computed from the time the token request was sent.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    /// The scopes granted, when the server said.
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    pub token_endpoint: String,
    #[serde(default)]
    pub revocation_endpoint: Option<String>,
    /// Display-only claims of the ID token (`sub`, `preferred_username`, `email`, `name`).
    #[serde(default)]
    pub claims: Map<String, Value>,
    /// The flow that obtained them.
    pub flow: String,
    pub obtained_at: DateTime<Utc>,
}

impl Stored {
    /// Reads the stored tokens for `identity`. A value that does not parse, or belongs to
    /// another identity, reads as none (and is logged, never shown).
    pub fn load(services: &HostServices, identity: &str, provider: &str) -> Result<Option<Stored>> {
        let Some(raw) = services.secret_load(KEY)? else {
            return Ok(None);
        };
        match serde_json::from_str::<Stored>(raw.expose()) {
            Ok(s) if s.identity == identity => Ok(Some(s)),
            Ok(_) => {
                services.log(
                    LogLevel::Debug,
                    &format!("stored tokens of `{provider}` belong to another issuer, client or scope set; ignoring them"),
                );
                Ok(None)
            }
            Err(e) => {
                services.log(
                    LogLevel::Warn,
                    &format!("stored tokens of `{provider}` are unreadable (line {}, column {}); log in again", e.line(), e.column()),
                );
                Ok(None)
            }
        }
    }

    /// Writes durably (the host's store replaces atomically and flushes to disk).
    pub fn save(&self, services: &HostServices) -> Result<()> {
        let json = serde_json::to_string(self)
            .map_err(|e| qlam_plugin_api::Error::other(format!("cannot encode tokens: {e}")))?;
        services.secret_store(KEY, &Secret::new(json))
    }

    /// Whether the access token is usable at `now` (unknown expiry counts as usable).
    pub fn access_valid_at(&self, now: DateTime<Utc>) -> bool {
        self.access_token.is_some() && self.expires_at.is_none_or(|t| t > now)
    }
}
