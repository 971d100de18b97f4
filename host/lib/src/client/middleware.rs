//! A [`reqwest_middleware`] layer that authenticates requests with a qlam provider:
//!
//! ```ignore
//! let auth = qlam_host::AsyncAuthClient::new(qlam_host::AuthClient::builder().build()?);
//! let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     .with(qlam_host::middleware::QlamAuth::new(auth, "corp-sso"))
//!     .build();
//! let answer = http.get("https://api.example.com/v1/me").send().await?;
//! ```
//!
//! Each request gets the provider's headers (reused while their cache control allows). When
//! the server answers 401 with `error="invalid_token"` (RFC 6750) the layer renews the
//! credential once — forgets the cached answer and, where the provider can, forces a
//! refresh — and sends the request again, once. Requests whose body cannot be replayed (a
//! stream) are not retried.

use http::Extensions;
use reqwest::header::{HeaderName, HeaderValue, WWW_AUTHENTICATE};
use reqwest::{Request, Response, StatusCode};
use reqwest_middleware::{Middleware, Next};

use super::asynch::AsyncAuthClient;

/// The layer: one provider's credentials on every request.
#[derive(Clone)]
pub struct QlamAuth {
    client: AsyncAuthClient,
    provider: String,
}

impl QlamAuth {
    /// Requests get the headers of `provider` from `client`.
    pub fn new(client: AsyncAuthClient, provider: impl Into<String>) -> Self {
        QlamAuth {
            client,
            provider: provider.into(),
        }
    }

    async fn apply(&self, req: &mut Request) -> reqwest_middleware::Result<()> {
        let headers = self
            .client
            .headers(&self.provider)
            .await
            .map_err(|e| reqwest_middleware::Error::Middleware(anyhow::Error::new(e)))?;
        for (name, value) in &headers.headers {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                reqwest_middleware::Error::Middleware(anyhow::anyhow!(
                    "provider `{}` gave an invalid header name `{name}`",
                    self.provider
                ))
            })?;
            let mut value = HeaderValue::from_str(value.expose()).map_err(|_| {
                reqwest_middleware::Error::Middleware(anyhow::anyhow!(
                    "provider `{}` gave an invalid value for header `{name}`",
                    self.provider
                ))
            })?;
            value.set_sensitive(true);
            req.headers_mut().insert(name, value);
        }
        Ok(())
    }
}

/// Whether a 401 says the token itself is bad (expired, revoked), so a new one may help.
fn invalid_token(resp: &Response) -> bool {
    resp.status() == StatusCode::UNAUTHORIZED
        && resp
            .headers()
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.to_ascii_lowercase().contains("invalid_token"))
}

#[async_trait::async_trait]
impl Middleware for QlamAuth {
    async fn handle(
        &self,
        req: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let replay = req.try_clone();
        let mut req = req;
        self.apply(&mut req).await?;
        let resp = next.clone().run(req, extensions).await?;
        let Some(mut again) = replay.filter(|_| invalid_token(&resp)) else {
            return Ok(resp);
        };
        tracing::debug!(
            "the server rejected the token of provider `{}` (invalid_token); renewing it and retrying once",
            self.provider
        );
        let client = self.client.blocking().clone();
        let provider = self.provider.clone();
        blocking::unblock(move || client.renew(&provider))
            .await
            .map_err(|e| reqwest_middleware::Error::Middleware(anyhow::Error::new(e)))?;
        self.apply(&mut again).await?;
        next.run(again, extensions).await
    }
}
