//! [`AsyncAuthClient`]: the [`AuthClient`] API for async code. Provider calls are blocking
//! calls into plugin code; they run on a thread pool (the `blocking` crate's, so any executor
//! works: tokio, async-std, smol), and no async runtime ever crosses the plugin ABI. A
//! reusable answer is returned without leaving the caller's task.

use std::sync::Arc;

use super::{AuthClient, Outcome, ProviderInfo};
use crate::api::{Credential, Headers, LoginOptions, Token};
use crate::error::Result;

/// An [`AuthClient`] for async code; cheap to clone (the client is shared).
#[derive(Clone)]
pub struct AsyncAuthClient {
    inner: Arc<AuthClient>,
}

impl AsyncAuthClient {
    /// Wraps a client.
    pub fn new(client: AuthClient) -> Self {
        AsyncAuthClient {
            inner: Arc::new(client),
        }
    }

    /// Wraps a shared client.
    pub fn from_arc(client: Arc<AuthClient>) -> Self {
        AsyncAuthClient { inner: client }
    }

    /// The blocking client underneath.
    pub fn blocking(&self) -> &Arc<AuthClient> {
        &self.inner
    }

    async fn run<T: Send + 'static>(&self, f: impl FnOnce(&AuthClient) -> T + Send + 'static) -> T {
        let client = self.inner.clone();
        blocking::unblock(move || f(&client)).await
    }

    /// [`AuthClient::headers`].
    pub async fn headers(&self, provider: &str) -> Result<Headers> {
        if let Some(h) = self.inner.reusable_headers(provider) {
            return Ok(h);
        }
        let p = provider.to_owned();
        self.run(move |c| c.headers(&p)).await
    }

    /// [`AuthClient::token`].
    pub async fn token(&self, provider: &str) -> Result<Token> {
        if let Some(t) = self.inner.reusable_token(provider) {
            return Ok(t);
        }
        let p = provider.to_owned();
        self.run(move |c| c.token(&p)).await
    }

    /// [`AuthClient::login`].
    pub async fn login(
        &self,
        provider: Option<&str>,
        options: LoginOptions,
    ) -> Result<Vec<Outcome>> {
        let p = provider.map(str::to_owned);
        self.run(move |c| c.login(p.as_deref(), &options)).await
    }

    /// [`AuthClient::logout`].
    pub async fn logout(&self, provider: Option<&str>) -> Result<Vec<Outcome>> {
        let p = provider.map(str::to_owned);
        self.run(move |c| c.logout(p.as_deref())).await
    }

    /// [`AuthClient::refresh_credentials`].
    pub async fn refresh_credentials(
        &self,
        provider: Option<&str>,
        force: bool,
    ) -> Result<Vec<Outcome>> {
        let p = provider.map(str::to_owned);
        self.run(move |c| c.refresh_credentials(p.as_deref(), force))
            .await
    }

    /// [`AuthClient::forget_answers`].
    pub async fn forget_answers(&self, provider: &str) -> Result<()> {
        let p = provider.to_owned();
        self.run(move |c| c.forget_answers(&p)).await
    }

    /// [`AuthClient::is_authenticated`].
    pub async fn is_authenticated(&self, provider: Option<&str>) -> Result<bool> {
        let p = provider.map(str::to_owned);
        self.run(move |c| c.is_authenticated(p.as_deref())).await
    }

    /// [`AuthClient::get_credential`].
    pub async fn get_credential(&self, provider: &str) -> Result<Option<Credential>> {
        let p = provider.to_owned();
        self.run(move |c| c.get_credential(&p)).await
    }

    /// [`AuthClient::list_providers`].
    pub async fn list_providers(&self) -> Result<Vec<ProviderInfo>> {
        self.run(|c| c.list_providers()).await
    }
}
