//! # qlam-plugin-api: writing a qlam provider
//!
//! qlam loads authentication providers from shared libraries at run time. This crate is the
//! only one a provider depends on. You write plain Rust — a [`ProviderFactory`] that builds
//! [`Provider`]s — and [`export_providers!`] generates the stable-ABI glue (abi_stable) that
//! lets a `qlam` built with a different compiler load your library.
//!
//! ## 1. The crate
//!
//! ```toml
//! [package]
//! name = "acme-qlam-provider"
//! edition = "2021"
//!
//! [lib]
//! crate-type = ["cdylib", "rlib"]   # cdylib for qlam, rlib for your unit tests
//!
//! [dependencies]
//! qlam-plugin-api = "0.1"
//! serde_json = "1"
//! ```
//!
//! ## 2. The provider
//!
//! A provider has a core (description, `is_authenticated`, `auth_context`, `credential`) and
//! optional capabilities, which it announces by returning `Some(self)` from the accessors:
//! [`HttpHeaders`], [`LoginLogout`], [`TokenSource`], [`Refresh`]. It keeps state in the host's
//! secret store through the [`HostServices`] it gets at build time, and asks the user anything
//! only through those services (the host decides how: a terminal, a GUI, or a refusal when
//! nobody is there).
//!
//! ```
//! use qlam_plugin_api::{
//!     export_providers, BuildRequest, CacheControl, Capabilities, Credential,
//!     CredentialDetails, CredentialStatus, Error, Headers, HostServices, HttpHeaders,
//!     LoginLogout, LoginOptions, LogoutReport, Provider, ProviderFactory, Result, Secret,
//!     VendorCredential,
//! };
//! use serde_json::{json, Map, Value};
//!
//! pub struct AcmeFactory;
//!
//! impl ProviderFactory for AcmeFactory {
//!     fn name(&self) -> &str {
//!         "acme-key" // what users write as `provider = "acme-key"`
//!     }
//!     fn description(&self) -> String {
//!         "Acme Cloud API key".into()
//!     }
//!     fn capabilities(&self) -> Capabilities {
//!         Capabilities { headers: true, login: true, ..Default::default() }
//!     }
//!     fn build(&self, req: BuildRequest) -> Result<Box<dyn Provider>> {
//!         // Validate the configuration here; name the bad key in the error.
//!         let region = match req.config.get("region") {
//!             None => "eu".to_string(),
//!             Some(Value::String(s)) => s.clone(),
//!             Some(_) => return Err(Error::configuration("`region` must be a string")),
//!         };
//!         Ok(Box::new(Acme { name: req.provider_name, region, services: req.services }))
//!     }
//!     fn extra_info(&self, config: &Value) -> Result<Map<String, Value>> {
//!         let mut m = Map::new();
//!         m.insert("region".into(), config.get("region").cloned().unwrap_or(json!("eu")));
//!         Ok(m)
//!     }
//! }
//!
//! struct Acme {
//!     name: String,
//!     region: String,
//!     services: HostServices,
//! }
//!
//! impl Acme {
//!     fn key(&self) -> Result<Option<Secret<String>>> {
//!         self.services.secret_load("api-key")
//!     }
//! }
//!
//! impl Provider for Acme {
//!     fn description(&self) -> String {
//!         format!("Acme Cloud API key ({})", self.region)
//!     }
//!     fn is_authenticated(&self) -> bool {
//!         matches!(self.key(), Ok(Some(_)))
//!     }
//!     fn auth_context(&self) -> Result<Map<String, Value>> {
//!         let mut m = Map::new();
//!         m.insert("region".into(), json!(self.region));
//!         Ok(m)
//!     }
//!     fn credential(&self) -> Result<Option<Credential>> {
//!         let key = self.key()?;
//!         let status = if key.is_some() {
//!             CredentialStatus::Authenticated
//!         } else {
//!             CredentialStatus::NotAuthenticated
//!         };
//!         let mut v = VendorCredential { type_name: "acme-key".into(), ..Default::default() };
//!         if let Some(k) = key {
//!             v.secrets.insert("api_key".into(), k);
//!         }
//!         Ok(Some(Credential::new(&self.name, status, CredentialDetails::Vendor(v))))
//!     }
//!     fn http_headers(&self) -> Option<&dyn HttpHeaders> {
//!         Some(self)
//!     }
//!     fn login_logout(&self) -> Option<&dyn LoginLogout> {
//!         Some(self)
//!     }
//! }
//!
//! impl HttpHeaders for Acme {
//!     fn headers(&self) -> Result<Headers> {
//!         let key = self.key()?.ok_or_else(|| {
//!             Error::not_authenticated(format!(
//!                 "provider `{}` is not logged in; run `qlam auth login {}`",
//!                 self.name, self.name
//!             ))
//!         })?;
//!         Ok(Headers {
//!             headers: vec![("X-Acme-Key".into(), key)],
//!             cache: CacheControl::Session,
//!         })
//!     }
//! }
//!
//! impl LoginLogout for Acme {
//!     fn login(&self, _options: &LoginOptions) -> Result<()> {
//!         let key = self.services.prompt_secret("Acme API key")?;
//!         self.services.secret_store("api-key", &key)
//!     }
//!     fn logout(&self) -> Result<LogoutReport> {
//!         self.services.secret_delete("api-key")?;
//!         Ok(LogoutReport::default())
//!     }
//! }
//!
//! // The library's entry point: one line.
//! export_providers!(AcmeFactory);
//!
//! # fn main() {
//! #     use qlam_plugin_api::testing::MemoryServices;
//! #     let services = MemoryServices::new(&["canary-key"]);
//! #     let p = AcmeFactory
//! #         .build(BuildRequest {
//! #             context_name: "dev".into(),
//! #             provider_name: "acme".into(),
//! #             config: json!({}),
//! #             services: services.handle(),
//! #         })
//! #         .unwrap();
//! #     assert!(!p.is_authenticated());
//! #     p.login_logout().unwrap().login(&LoginOptions::default()).unwrap();
//! #     let h = p.http_headers().unwrap().headers().unwrap();
//! #     assert_eq!(h.headers[0].1.expose(), "canary-key");
//! # }
//! ```
//!
//! ## 3. Rules that keep the host safe
//!
//! - **Never put a secret in an error message, a log line or a panic.** Hold secrets in
//!   [`Secret`], whose `Debug` prints `REDACTED`.
//! - `is_authenticated` is cheap: no network I/O.
//! - No async across the boundary: provider calls are synchronous. Use blocking HTTP clients
//!   with redirects off; a tokio runtime cannot be shared across a dynamic library.
//! - Choose the [`ErrorKind`] the host should act on: `NotAuthenticated` makes `qlam` exit 3
//!   and tell the user to log in; `Transient` keeps credentials; `Configuration` points at the
//!   config file.
//! - A panic does not crash the host (the adapter catches it and reports an error of kind
//!   `Panic`), but it is still a bug. The host shows ``provider `x` panicked in `headers` ``;
//!   the panic's message goes to its debug log only, redacted.
//! - **Everything you return is checked by the host** before it is cached, printed or handed
//!   to another tool: header names must be HTTP tokens (RFC 9110) and must not repeat; header
//!   values (tab allowed), tokens (not empty) and every string of a [`Credential`] must hold no
//!   control character. An answer that fails is an error for the user, never used.
//!   Descriptions, error messages, warnings, prompts and log lines are shown with control
//!   characters escaped; URLs for the user to open must be `http(s)`.
//! - **Every call has a deadline**: `call_timeout_secs` in the provider's table (default
//!   30 s); `login` gets `login_timeout_secs` (default 300 s) on top. A call that blocks
//!   longer is reported as a timeout and your provider is not called again in that process;
//!   your thread is not stopped. Never block without a bound of your own (set timeouts on
//!   HTTP clients, give up on locks).
//! - Never call `exit()`, `abort()` or anything that ends the process: in-process, that ends
//!   the user's `qlam` (the host reports an `exit()` during a call as an error).
//!
//! ## 4. Build and install
//!
//! `cargo build --release`, then copy `target/release/libacme_qlam_provider.so` (`.dylib` on
//! macOS, `.dll` on Windows) into `~/.local/share/qlam/plugins/`. `qlam plugins list` shows it
//! with its provider types, or says why it was refused.
//!
//! ## Versioning
//!
//! The version of this crate is the ABI version. A host loads plugins built against the same
//! `0.MINOR` (before 1.0) or the same major version (from 1.0), whatever the patch (minor)
//! release on either side.
//!
//! - A patch release (0.1.x) adds only what an older plugin or host can do without: optional
//!   exported symbols (the log sink, `qlam_plugin_set_log_sink_v1`, since 0.1.1; a host finds
//!   them on the loaded library and skips them when absent), optional JSON members, new codes
//!   in fields that are plain integers.
//! - It never adds a field to the root module or a method to the trait objects: abi_stable
//!   refuses a library whose interface has *fewer* fields than the host's, so that would lock
//!   out every plugin already built. Changing or removing anything is a break and a new
//!   `0.MINOR`.
//! - A host refuses an incompatible plugin with one line naming both versions, or — same
//!   version, different layout (a plugin built from a modified copy of this crate) — saying
//!   the layout differs, with abi_stable's full report at `-v` and in `qlam plugins inspect`.
//!
//! qlam's tests build a plugin against a frozen copy of 0.1.0 and use it through the current
//! host, and refuse a plugin whose layout was changed.

#![warn(missing_docs)]

mod credential;
mod error;
pub mod ffi;
mod logbridge;
mod macros;
mod provider;
mod secret;
mod services;
pub mod testing;

pub use credential::{
    BasicCredential, Credential, CredentialDetails, CredentialStatus, OAuthCredential,
    VendorCredential, REDACTED,
};
pub use error::{Error, ErrorKind, Result};
pub use ffi::API_VERSION;
pub use provider::{
    BuildRequest, CacheControl, Capabilities, Headers, HttpHeaders, LoginLogout, LoginOptions,
    LogoutReport, Provider, ProviderFactory, Refresh, Token, TokenSource,
};
pub use secret::Secret;
pub use services::{HostServices, Interaction, InteractionReply, LogLevel, ServicesBackend};

/// Re-exported so providers and hosts use the same versions.
pub use chrono;
/// Re-exported so providers and hosts use the same versions.
pub use serde_json;
