//! Calls an HTTP API with a configured provider's credentials, from async code, through the
//! reqwest-middleware layer (a 401 `invalid_token` renews the credential and retries once).
//!
//! `cargo run -p qlam-examples --bin call_api -- PROVIDER URL` (configuration, plugins and
//! credential store as the `qlam` CLI finds them).

use qlam_host::middleware::QlamAuth;
use qlam_host::{AsyncAuthClient, AuthClient};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(provider), Some(url)) = (args.next(), args.next()) else {
        anyhow::bail!("usage: call_api PROVIDER URL");
    };
    let auth = AsyncAuthClient::new(AuthClient::builder().build()?);
    let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(QlamAuth::new(auth, provider))
        .build();
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let response = http.get(&url).send().await?;
        println!("{}", response.status());
        println!("{}", response.text().await?);
        Ok(())
    })
}
