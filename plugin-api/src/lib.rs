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
//! qlam-plugin-api = "0.1"           # never with feature `host`: that is the host's side
//!
//! # Not `panic = "abort"`, in any profile you ship (see "Panics" below).
//! [profile.release]
//! panic = "unwind"                  # the default; shown here so nobody changes it
//! ```
//!
//! This crate re-exports [`serde`], [`serde_json`] and [`chrono`]: use them
//! (`qlam_plugin_api::serde_json::json!`, `qlam_plugin_api::chrono::Utc::now()`) and your
//! provider needs no other dependency to speak the API's types. To derive with the re-exported
//! serde, name it (or depend on `serde` yourself):
//!
//! ```
//! use qlam_plugin_api::serde::Deserialize;
//!
//! #[derive(Deserialize)]
//! #[serde(crate = "qlam_plugin_api::serde")]
//! struct Settings {
//!     api_url: String,
//! }
//! # let s: Settings = qlam_plugin_api::serde_json::from_str(r#"{"api_url": "https://x"}"#).unwrap();
//! # assert_eq!(s.api_url, "https://x");
//! ```
//!
//! A file path in the settings (a CA bundle, a key file) is read through
//! [`HostServices::resolve_path`]: relative to the configuration file's folder and `~` the home
//! folder, so the provider reads the same file wherever the command runs (hosts before 0.1.2
//! do not say where the configuration is; then a relative path stays relative).
//!
//! It pins `abi_stable` to one exact version: [`export_providers!`] expands to its loader
//! internals, and the root module's layout is checked against the host's when qlam loads
//! your library. Let cargo pick it; do not add `abi_stable` to your own dependencies.
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
//! **Which capability declaration counts.** There are two, and the host uses them for
//! different things:
//!
//! - [`Provider::capabilities`] of the *built* provider decides what the host calls. Its
//!   default answers from the accessors (`http_headers()` is `Some` → `headers`, and so on).
//!   The host reads it once, right after [`ProviderFactory::build`], and then refuses a
//!   capability it lacks without calling you (``provider `x` (type `acme`) does not support
//!   tokens``); `qlam auth login` / `logout` / `refresh` without a provider name skip providers
//!   that lack it, and `qlam auth status` shows it. So a capability that depends on the
//!   configuration is decided in `build`: return `None` from the accessor for that provider.
//!   If you override `Provider::capabilities`, keep it equal to the accessors: a capability it
//!   claims whose accessor is `None` reaches your adapter and fails with kind `Unsupported`.
//! - [`ProviderFactory::capabilities`] only describes the type: `qlam plugins inspect` and the
//!   host's registry show it (and its plugin index caches it per library file) before any
//!   provider exists. It is never used to decide a call. Make it the union of what providers
//!   of the type can have.
//!
//! ```
//! use qlam_plugin_api::{
//!     export_providers, BuildRequest, CacheControl, Capabilities, Credential,
//!     CredentialDetails, CredentialStatus, Error, Headers, HostServices, HttpHeaders,
//!     LoginLogout, LoginOptions, LogoutReport, Provider, ProviderFactory, Result, Secret,
//!     VendorCredential,
//! };
//! use qlam_plugin_api::serde_json::{json, Map, Value};
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
//! - **Everything you return is checked by the host** before it is cached, printed or handed
//!   to another tool: header names must be HTTP tokens (RFC 9110) and must not repeat; header
//!   values (tab allowed), tokens (not empty) and every string of a [`Credential`] must hold no
//!   control character. An answer that fails is an error for the user, never used.
//!   Descriptions, error messages, warnings, prompts and log lines are shown with control
//!   characters escaped; URLs for the user to open must be `http(s)`.
//! - Never call `exit()`, `abort()` or anything that ends the process: in-process, that ends
//!   the user's `qlam` (the host reports an `exit()` during a call as an error).
//!
//! ### Panics
//!
//! A panic in any call does not crash the host: the adapter [`export_providers!`] generates
//! catches it and returns an error of kind [`ErrorKind::Panic`]; the host shows
//! ``provider `x` panicked in `headers` `` and puts the panic's message in its debug log only,
//! redacted. It is still a bug.
//!
//! That needs unwinding. Build the library with `panic = "unwind"` — Rust's default: do not set
//! `panic = "abort"` in `[profile.release]` (or any profile you ship). Your library carries its
//! own copy of the standard library, so with `abort` a panic anywhere in your code, or in a
//! crate you use, aborts the whole host process (`qlam`, or the program that embeds the host)
//! before the adapter can catch it. Only a provider the user runs isolated
//! (`isolation = "process"`) takes nothing down with it.
//!
//! ### How long a call may take
//!
//! - **Every call has a deadline**: `call_timeout_secs` in the provider's table, else the
//!   top-level one, else **30 s** (1 s to a day). It covers `build`, `extra_info`,
//!   `description`, `is_authenticated`, `auth_context`, `credential`, `headers`, `token`,
//!   `can_refresh`, `refresh` and `logout`.
//! - **`login`** gets `login_timeout_secs` **plus** that: the host reads `login_timeout_secs`
//!   (default **300 s**) from your provider's table, and passes it to you too, as a key of
//!   [`BuildRequest::config`]; if you reject unknown keys, accept this one, and use it to bound
//!   your own wait for the user (a browser redirect, a device code).
//! - **Loading the library** — the expressions you give [`export_providers!`] and each
//!   factory's `name`, `description` and `capabilities` — has the top-level `call_timeout_secs`
//!   (default 30 s). Do nothing slow there.
//! - A call that misses its deadline is reported as an error of kind `Timeout`
//!   (``provider `x` did not answer `headers` within 30 s``). In-process code cannot be
//!   stopped: your call goes on running on its thread, unobserved, its answer thrown away, and
//!   **the host does not call that provider again** (for `qlam`, for the rest of the command;
//!   for a program embedding the host, for the life of its `AuthClient`) — your stuck thread
//!   may hold locks the next call would wait on. An isolated provider's process is killed
//!   instead, and the next call starts a new one.
//! - Calls run on the host's worker threads (8 MiB stacks), not on the caller's thread, and
//!   not always on the same one: keep no per-thread state between calls.
//!
//! So never block without a bound of your own: set connect and read timeouts on HTTP
//! clients below your deadline, and give up on locks.
//!
//! ### Answers the host keeps: `CacheControl`
//!
//! Every `headers()` and `token()` answer says how long it may be reused ([`CacheControl`]):
//!
//! - `Never`: the host asks you every time.
//! - `Session`: reused, in memory, for the rest of the process (or the embedding program's
//!   `AuthClient`). Never written anywhere.
//! - `Until(t)`: reused until `t`, and **written to disk**: with the default `file` credential
//!   store, the host saves the answer — the token, or every header *with its secret value* —
//!   beside the provider's credential entry
//!   (`~/.local/state/qlam/credentials/<context>/<provider>.answers.json`), in the same
//!   private store (folders 0700, file 0600, owned by the user). Until `t`, `qlam auth token`,
//!   `qlam auth headers` and the git, docker and cargo helpers answer from that file **without
//!   loading your library**: you are not asked, so you cannot withdraw the answer before `t`.
//!   The host drops the file when it runs `login`, `logout` or `refresh` for the provider
//!   and when a server rejected what it gave out (git's or docker's `erase`, a 401
//!   `invalid_token` seen by the host's reqwest middleware), and ignores it once the
//!   provider's settings in the configuration change. (With the `keyring` store nothing is
//!   written; `Until` then lasts the process.)
//!
//! So give `Until(t)` only for an answer that is valid until `t` in any process, with `t` no
//! later than the credential's real expiry minus your refresh margin (the host asks again at
//! `t` and, when you can [`Refresh`], refreshes first). Use `Session` for an answer that must
//! never reach the disk, or that you may want to change before it expires.
//!
//! ## 4. Build and install
//!
//! `cargo build --release`, then copy `target/release/libacme_qlam_provider.so` (`.dylib` on
//! macOS, `.dll` on Windows) into `~/.local/share/qlam/plugins/`, or let
//! `qlam plugins install FILE` do it after loading the library in a separate process.
//! `qlam plugins inspect FILE` loads a library and shows its API version and provider types
//! with the capabilities their factories declare, or abi_stable's full report on why it was
//! refused; `qlam plugins list` shows every library found.
//!
//! ## Versioning
//!
//! The version of this crate is the ABI version. A host loads plugins built against the same
//! `0.MINOR` (before 1.0) or the same major version (from 1.0), whatever the patch (minor)
//! release on either side.
//!
//! - A patch release (0.1.x) adds only what an older plugin or host can do without: optional
//!   exported symbols (the log sink, `qlam_plugin_set_log_sink_v1`, since 0.1.1; the
//!   interface fingerprint, [`ffi::INTERFACE_SYMBOL`], since 0.1.2; a host finds them on the
//!   loaded library and skips them when absent), optional JSON members, new codes in fields
//!   that are plain integers.
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
// docs.rs marks the host-only items (feature `host`).
#![cfg_attr(docsrs, feature(doc_cfg))]

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
/// Re-exported so providers and hosts use the same versions (derive with
/// `#[serde(crate = "qlam_plugin_api::serde")]`).
pub use serde;
/// Re-exported so providers and hosts use the same versions.
pub use serde_json;
