//! # qlam-host
//!
//! The host side of qlam: it finds provider plugins (shared libraries), loads them through the
//! stable ABI of `qlam-plugin-api`, registers their provider types by name, reads the
//! configuration, keeps credentials in a private store, and exposes everything through
//! [`AuthClient`] — the API the `qlam` CLI is built on, and the one Rust programs embed.
//!
//! ```no_run
//! use qlam_host::AuthClient;
//!
//! # fn main() -> Result<(), qlam_host::Error> {
//! let client = AuthClient::builder().build()?;   // reads ~/.config/qlam/config.toml
//! for p in client.list_providers()? {
//!     println!("{} ({}): {}", p.name, p.provider_type, p.status);
//! }
//! let headers = client.headers("corp-sso")?;
//! for (name, value) in &headers.headers {
//!     // value is a Secret: expose it only where the request is built
//!     let _ = (name, value.expose());
//! }
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

mod boundary;
mod client;
pub mod config;
mod error;
mod failpoint;
mod fsutil;
pub mod paths;
pub mod plugins;
mod services;
pub mod store;
#[cfg(any(unix, windows))]
mod sys;

pub use boundary::isolated::{serve as serve_isolated_plugin, CHILD_SUBCOMMAND};
pub use boundary::DEFAULT_CALL_TIMEOUT;
#[cfg(feature = "async")]
pub use client::asynch::AsyncAuthClient;
#[cfg(feature = "reqwest")]
pub use client::middleware;
pub use client::{
    AuthClient, AuthClientBuilder, ConfigProblem, Outcome, ProviderInfo, ProviderStatus,
    DEFAULT_REFRESH_SKEW,
};
pub use error::{Error, ErrorKind, Result};
#[cfg(feature = "terminal")]
pub use services::terminal::Terminal;
pub use services::{NonInteractive, UserInteraction};

/// The plugin interface this host was built with.
pub use qlam_plugin_api as api;
