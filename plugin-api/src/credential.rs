//! Credential models: what a provider reports about the credential it holds.
//!
//! They cross the plugin boundary as JSON. Every secret field is a [`Secret`], so `Debug`
//! never shows it; [`Credential::to_json`] redacts secrets unless asked not to.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::Secret;

/// The text that replaces a secret in redacted output.
pub const REDACTED: &str = "REDACTED";

/// The state of a credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialStatus {
    /// Usable now.
    Authenticated,
    /// Known metadata, but no usable secret (never logged in, or logged out).
    NotAuthenticated,
    /// Was valid and has expired; it may be refreshable.
    Expired,
}

impl CredentialStatus {
    /// The status as shown to people and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialStatus::Authenticated => "authenticated",
            CredentialStatus::NotAuthenticated => "not_authenticated",
            CredentialStatus::Expired => "expired",
        }
    }
}

/// A credential: the common base (`name`, `status`) and the kind-specific fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Credential {
    /// The name of the provider (as configured) that holds this credential.
    pub name: String,
    /// The current state.
    pub status: CredentialStatus,
    /// The kind and its fields.
    #[serde(flatten)]
    pub details: CredentialDetails,
}

/// The kind of a credential and its fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CredentialDetails {
    /// Username and password.
    Basic(BasicCredential),
    /// OAuth 2.0 tokens.
    #[serde(rename = "oauth")]
    OAuth(OAuthCredential),
    /// Anything else a provider holds.
    Vendor(VendorCredential),
}

/// A username/password credential. The password itself is never part of the model.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BasicCredential {
    /// The username.
    pub username: String,
    /// When the user last logged in, if known.
    #[serde(default)]
    pub login_time: Option<DateTime<Utc>>,
    /// What checked the password (for example the URL that accepted it), if anything did.
    #[serde(default)]
    pub auth_source: Option<String>,
}

/// An OAuth 2.0 credential.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthCredential {
    /// The OAuth client identifier.
    pub client_id: String,
    /// The access token, when there is one.
    #[serde(default)]
    pub access_token: Option<Secret<String>>,
    /// The refresh token, when there is one.
    #[serde(default)]
    pub refresh_token: Option<Secret<String>>,
    /// When the access token expires (UTC); none when unknown.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    /// Whether the credential can be refreshed without the user.
    #[serde(default)]
    pub allows_refresh: bool,
}

/// A credential of a vendor's own kind.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VendorCredential {
    /// The vendor's name for this kind of credential (for example `token` or `acme-session`).
    #[serde(rename = "type")]
    pub type_name: String,
    /// Non-secret fields.
    #[serde(default)]
    pub fields: Map<String, Value>,
    /// Secret fields, redacted when shown.
    #[serde(default)]
    pub secrets: BTreeMap<String, Secret<String>>,
}

impl Credential {
    /// A credential with the given name, status and details.
    pub fn new(
        name: impl Into<String>,
        status: CredentialStatus,
        details: CredentialDetails,
    ) -> Self {
        Credential {
            name: name.into(),
            status,
            details,
        }
    }

    /// The kind's name: `basic`, `oauth` or `vendor`.
    pub fn kind(&self) -> &'static str {
        match self.details {
            CredentialDetails::Basic(_) => "basic",
            CredentialDetails::OAuth(_) => "oauth",
            CredentialDetails::Vendor(_) => "vendor",
        }
    }

    /// The same credential with every secret replaced by [`REDACTED`] (absent secrets stay
    /// absent, so a reader still sees which secrets exist).
    pub fn redacted(&self) -> Credential {
        let mut c = self.clone();
        let redact = |s: &mut Option<Secret<String>>| {
            if s.is_some() {
                *s = Some(Secret::new(REDACTED.to_string()));
            }
        };
        match &mut c.details {
            CredentialDetails::Basic(_) => {}
            CredentialDetails::OAuth(o) => {
                redact(&mut o.access_token);
                redact(&mut o.refresh_token);
            }
            CredentialDetails::Vendor(v) => {
                for s in v.secrets.values_mut() {
                    *s = Secret::new(REDACTED.to_string());
                }
            }
        }
        c
    }

    /// The credential as JSON, secrets redacted unless `show_secrets`.
    pub fn to_json(&self, show_secrets: bool) -> Value {
        let c = if show_secrets {
            self.clone()
        } else {
            self.redacted()
        };
        serde_json::to_value(c).unwrap_or(Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oauth() -> Credential {
        Credential::new(
            "corp",
            CredentialStatus::Authenticated,
            CredentialDetails::OAuth(OAuthCredential {
                client_id: "cli".into(),
                access_token: Some("canary-access".into()),
                refresh_token: Some("canary-refresh".into()),
                expires_at: Some("2026-01-02T03:04:05Z".parse().unwrap()),
                allows_refresh: true,
            }),
        )
    }

    #[test]
    fn oauth_json_shape_is_exact() {
        let json = serde_json::to_string(&oauth()).unwrap();
        assert_eq!(
            json,
            r#"{"name":"corp","status":"authenticated","kind":"oauth","client_id":"cli","access_token":"canary-access","refresh_token":"canary-refresh","expires_at":"2026-01-02T03:04:05Z","allows_refresh":true}"#
        );
        let back: Credential = serde_json::from_str(&json).unwrap();
        assert_eq!(back, oauth());
    }

    #[test]
    fn redaction_and_debug_hide_secrets() {
        let c = oauth();
        let shown = c.to_json(false).to_string();
        assert!(!shown.contains("canary"), "{shown}");
        assert!(shown.contains(r#""refresh_token":"REDACTED""#), "{shown}");
        assert!(!format!("{c:?}").contains("canary"));
        assert!(c.to_json(true).to_string().contains("canary-access"));
    }

    #[test]
    fn vendor_and_basic_shapes() {
        let mut secrets = BTreeMap::new();
        secrets.insert("token".to_string(), Secret::new("canary".to_string()));
        let v = Credential::new(
            "t",
            CredentialStatus::Expired,
            CredentialDetails::Vendor(VendorCredential {
                type_name: "token".into(),
                fields: Map::new(),
                secrets,
            }),
        );
        assert_eq!(
            v.to_json(false).to_string(),
            r#"{"fields":{},"kind":"vendor","name":"t","secrets":{"token":"REDACTED"},"status":"expired","type":"token"}"#
        );
        let b: Credential = serde_json::from_str(
            r#"{"name":"b","status":"not_authenticated","kind":"basic","username":"ann"}"#,
        )
        .unwrap();
        assert_eq!(b.kind(), "basic");
        assert_eq!(b.status, CredentialStatus::NotAuthenticated);
    }
}
