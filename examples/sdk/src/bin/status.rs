//! Embeds the host: lists the providers of the current context and prints the headers of one.
//!
//! `cargo run -p qlam-examples --bin status -- [PROVIDER]` (uses `$QLAM_CONFIG` or the user's
//! config file, and the plugins next to this executable or on `$QLAM_PLUGIN_PATH`).

use anyhow::Context;
use qlam_host::AuthClient;

fn main() -> anyhow::Result<()> {
    let client = AuthClient::builder()
        .build()
        .context("reading the qlam configuration")?;
    for problem in client.registry().problems() {
        eprintln!("warning: {problem}");
    }
    for p in client.list_providers()? {
        println!("{:<20} {:<10} {}", p.name, p.provider_type, p.status);
    }
    if let Some(name) = std::env::args().nth(1) {
        let headers = client.headers(&name)?;
        for (header, value) in &headers.headers {
            // The value is a Secret: hand it to the HTTP client, never to a log.
            println!("{header}: <{} bytes>", value.expose().len());
        }
    }
    Ok(())
}
