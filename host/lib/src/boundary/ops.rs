//! The calls into a built provider as data: one vocabulary for a provider in this process
//! (run directly on its handle) and one in a child process (sent over a pipe), so both go
//! through the same deadline, checks and error reporting.

use chrono::{DateTime, Utc};
use qlam_plugin_api::ffi::ProviderHandle;
use qlam_plugin_api::{
    CacheControl, Credential, Headers, LoginOptions, LogoutReport, Secret, Token,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A call into a built provider.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Op {
    Description,
    IsAuthenticated,
    AuthContext,
    Credential,
    Headers,
    Token,
    Login(LoginOptions),
    Logout,
    CanRefresh,
    Refresh { force: bool },
}

impl Op {
    /// The call's name in messages.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Op::Description => "description",
            Op::IsAuthenticated => "is_authenticated",
            Op::AuthContext => "auth_context",
            Op::Credential => "credential",
            Op::Headers => "headers",
            Op::Token => "token",
            Op::Login(_) => "login",
            Op::Logout => "logout",
            Op::CanRefresh => "can_refresh",
            Op::Refresh { .. } => "refresh",
        }
    }

    /// Makes the call on a provider in this process.
    pub(crate) fn run(self, p: &ProviderHandle) -> qlam_plugin_api::Result<Reply> {
        Ok(match self {
            Op::Description => Reply::Text(p.description()?),
            Op::IsAuthenticated => Reply::Bool(p.is_authenticated()?),
            Op::AuthContext => Reply::Object(p.auth_context()?),
            Op::Credential => Reply::Credential(p.credential()?),
            Op::Headers => Reply::Headers(p.headers()?.into()),
            Op::Token => Reply::Token(p.token()?.into()),
            Op::Login(options) => {
                p.login(&options)?;
                Reply::Done
            }
            Op::Logout => Reply::Logout(p.logout()?),
            Op::CanRefresh => Reply::Bool(p.can_refresh()?),
            Op::Refresh { force } => Reply::Bool(p.refresh(force)?),
        })
    }
}

/// A provider's answer to an [`Op`]. Which variant answers which op is checked by the
/// caller: a child process may answer anything.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Reply {
    Done,
    Text(String),
    Bool(bool),
    Object(Map<String, Value>),
    Credential(Option<Credential>),
    Headers(WireHeaders),
    Token(WireToken),
    Logout(LogoutReport),
}

/// [`CacheControl`] as data.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum WireCache {
    Never,
    Session,
    Until(DateTime<Utc>),
}

impl From<CacheControl> for WireCache {
    fn from(c: CacheControl) -> Self {
        match c {
            CacheControl::Never => WireCache::Never,
            CacheControl::Session => WireCache::Session,
            CacheControl::Until(t) => WireCache::Until(t),
        }
    }
}

impl From<WireCache> for CacheControl {
    fn from(c: WireCache) -> Self {
        match c {
            WireCache::Never => CacheControl::Never,
            WireCache::Session => CacheControl::Session,
            WireCache::Until(t) => CacheControl::Until(t),
        }
    }
}

/// [`Headers`] as data.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct WireHeaders {
    headers: Vec<(String, Secret<String>)>,
    cache: WireCache,
}

impl From<Headers> for WireHeaders {
    fn from(h: Headers) -> Self {
        WireHeaders {
            headers: h.headers,
            cache: h.cache.into(),
        }
    }
}

impl From<WireHeaders> for Headers {
    fn from(h: WireHeaders) -> Self {
        Headers {
            headers: h.headers,
            cache: h.cache.into(),
        }
    }
}

/// [`Token`] as data.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct WireToken {
    token: Secret<String>,
    cache: WireCache,
}

impl From<Token> for WireToken {
    fn from(t: Token) -> Self {
        WireToken {
            token: t.token,
            cache: t.cache.into(),
        }
    }
}

impl From<WireToken> for Token {
    fn from(t: WireToken) -> Self {
        Token {
            token: t.token,
            cache: t.cache.into(),
        }
    }
}
