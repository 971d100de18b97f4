//! `AuthClient` as a library: in-process providers through the same adapter, one-or-all
//! semantics, cache control and refresh inside the margin, the non-interactive host.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use qlam_host::api::chrono::{self, Utc};
use qlam_host::api::{
    BuildRequest, CacheControl, Capabilities, Credential, ErrorKind, Headers, HttpHeaders,
    LoginLogout, LoginOptions, LogoutReport, Provider, ProviderFactory, Refresh, Result, Secret,
    Token, TokenSource,
};
use qlam_host::config::Config;
use qlam_host::{AuthClient, ErrorKind as HostErrorKind};
use serde_json::{Map, Value};

/// Counts calls; its token expires `lifetime` after each refresh.
#[derive(Default)]
struct Counters {
    headers: AtomicUsize,
    tokens: AtomicUsize,
    refreshes: AtomicUsize,
}

struct Counting {
    counters: Arc<Counters>,
    lifetime: chrono::Duration,
    cache_session: bool,
}

struct CountingProvider {
    counters: Arc<Counters>,
    cache_session: bool,
    generation: Mutex<(usize, chrono::DateTime<Utc>)>,
}

impl ProviderFactory for Counting {
    fn name(&self) -> &str {
        "counting"
    }
    fn description(&self) -> String {
        "counts calls".into()
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            headers: true,
            token: true,
            refresh: true,
            login: false,
        }
    }
    fn build(&self, req: BuildRequest) -> Result<Box<dyn Provider>> {
        assert_eq!(req.config, serde_json::json!({"knob": 1}));
        Ok(Box::new(CountingProvider {
            counters: self.counters.clone(),
            cache_session: self.cache_session,
            generation: Mutex::new((0, Utc::now() + self.lifetime)),
        }))
    }
}

impl Provider for CountingProvider {
    fn description(&self) -> String {
        "counting".into()
    }
    fn is_authenticated(&self) -> bool {
        true
    }
    fn auth_context(&self) -> Result<Map<String, Value>> {
        Ok(Map::new())
    }
    fn credential(&self) -> Result<Option<Credential>> {
        Ok(None)
    }
    fn http_headers(&self) -> Option<&dyn HttpHeaders> {
        Some(self)
    }
    fn token_source(&self) -> Option<&dyn TokenSource> {
        Some(self)
    }
    fn refresher(&self) -> Option<&dyn Refresh> {
        Some(self)
    }
}

impl HttpHeaders for CountingProvider {
    fn headers(&self) -> Result<Headers> {
        self.counters.headers.fetch_add(1, Ordering::SeqCst);
        let cache = if self.cache_session {
            CacheControl::Session
        } else {
            CacheControl::Never
        };
        Ok(Headers {
            headers: vec![("X-Count".into(), Secret::new("v".into()))],
            cache,
        })
    }
}

impl TokenSource for CountingProvider {
    fn token(&self) -> Result<Token> {
        self.counters.tokens.fetch_add(1, Ordering::SeqCst);
        let (generation, expires) = *self.generation.lock().unwrap();
        Ok(Token {
            token: Secret::new(format!("gen-{generation}")),
            cache: CacheControl::Until(expires),
        })
    }
}

impl Refresh for CountingProvider {
    fn can_refresh(&self) -> bool {
        true
    }
    fn refresh(&self, _force: bool) -> Result<bool> {
        self.counters.refreshes.fetch_add(1, Ordering::SeqCst);
        let mut g = self.generation.lock().unwrap();
        *g = (g.0 + 1, Utc::now() + chrono::Duration::hours(1));
        Ok(true)
    }
}

const CONFIG: &str = "[contexts.c]\n[[contexts.c.auth_providers]]\nname = \"n\"\nprovider = \"counting\"\nknob = 1\n";

fn client(factory: impl ProviderFactory, config: &str, store: &std::path::Path) -> AuthClient {
    AuthClient::builder()
        .refresh_skew(std::time::Duration::from_secs(60))
        .ignore_environment()
        .no_default_plugin_dirs()
        .config(Config::parse(config, std::path::Path::new("/test/config.toml")).unwrap())
        .store_dir(store)
        .register_factory(factory)
        .build()
        .unwrap()
}

#[test]
fn token_inside_the_refresh_margin_is_refreshed_once_then_served_from_memory() {
    let dir = tempfile::tempdir().unwrap();
    let counters = Arc::new(Counters::default());
    // Expires in 30 s: inside the 60 s margin these clients use.
    let c = client(
        Counting {
            counters: counters.clone(),
            lifetime: chrono::Duration::seconds(30),
            cache_session: false,
        },
        CONFIG,
        dir.path(),
    );
    let t = c.token("n").unwrap();
    assert_eq!(t.token.expose(), "gen-1");
    assert_eq!(counters.refreshes.load(Ordering::SeqCst), 1);
    assert_eq!(
        counters.tokens.load(Ordering::SeqCst),
        2,
        "asked, refreshed, asked again"
    );
    for _ in 0..10 {
        assert_eq!(c.token("n").unwrap().token.expose(), "gen-1");
    }
    assert_eq!(
        counters.tokens.load(Ordering::SeqCst),
        2,
        "a valid answer is reused"
    );
    // An explicit refresh drops the remembered answer.
    let out = c.refresh_credentials(Some("n"), true).unwrap();
    assert!(matches!(out[0].result, Ok(true)));
    assert_eq!(c.token("n").unwrap().token.expose(), "gen-2");
    // Best effort over all providers.
    let all = c.refresh_credentials(None, false).unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].provider, "n");
}

#[test]
fn cache_control_never_asks_every_time_and_session_once() {
    let dir = tempfile::tempdir().unwrap();
    let never = Arc::new(Counters::default());
    let c = client(
        Counting {
            counters: never.clone(),
            lifetime: chrono::Duration::hours(1),
            cache_session: false,
        },
        CONFIG,
        dir.path(),
    );
    for _ in 0..5 {
        c.headers("n").unwrap();
    }
    assert_eq!(never.headers.load(Ordering::SeqCst), 5);
    let session = Arc::new(Counters::default());
    let c = client(
        Counting {
            counters: session.clone(),
            lifetime: chrono::Duration::hours(1),
            cache_session: true,
        },
        CONFIG,
        dir.path(),
    );
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                for _ in 0..100 {
                    assert_eq!(c.headers("n").unwrap().headers[0].0, "X-Count");
                }
            });
        }
    });
    assert!(
        session.headers.load(Ordering::SeqCst) <= 8,
        "reused across threads"
    );
}

#[test]
fn one_or_all_semantics() {
    let dir = tempfile::tempdir().unwrap();
    let counters = Arc::new(Counters::default());
    let config = format!(
        "{CONFIG}[[contexts.c.auth_providers]]\nname = \"ghost\"\nprovider = \"no-such-type\"\n"
    );
    let c = client(
        Counting {
            counters,
            lifetime: chrono::Duration::hours(1),
            cache_session: false,
        },
        &config,
        dir.path(),
    );
    // Named: typed errors.
    let e = c.login(Some("n"), &LoginOptions::default()).unwrap_err();
    assert_eq!(e.kind(), HostErrorKind::Provider(ErrorKind::Unsupported));
    assert_eq!(
        e.message(),
        "provider `n` (type `counting`) does not support login"
    );
    let e = c.headers("ghost").unwrap_err();
    assert_eq!(e.kind(), HostErrorKind::Plugin);
    let e = c.headers("nobody").unwrap_err();
    assert_eq!(e.kind(), HostErrorKind::Usage);
    // All: per-provider results, no error for a broken provider.
    let all = c.refresh_credentials(None, false).unwrap();
    assert_eq!(all.len(), 2);
    assert!(all[0].result.is_ok());
    assert_eq!(all[1].provider, "ghost");
    assert_eq!(
        all[1].result.as_ref().unwrap_err().kind(),
        HostErrorKind::Plugin
    );
    assert!(c.is_authenticated(None).unwrap());
    assert!(!c.is_authenticated(Some("ghost")).unwrap());
    assert!(c.is_authenticated(Some("nobody")).is_err());
    let list = c.list_providers().unwrap();
    assert_eq!(list[0].status.to_string(), "authenticated");
    assert!(
        list[1].status.to_string().starts_with(
            "error: provider `ghost` (`/test/config.toml` line 6) has type `no-such-type`"
        ),
        "{}",
        list[1].status
    );
}

struct Explodes;

impl ProviderFactory for Explodes {
    fn name(&self) -> &str {
        "explodes"
    }
    fn description(&self) -> String {
        "explodes".into()
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            headers: true,
            login: true,
            ..Default::default()
        }
    }
    fn build(&self, req: BuildRequest) -> Result<Box<dyn Provider>> {
        Ok(Box::new(ExplodingProvider {
            services: req.services,
        }))
    }
}

struct ExplodingProvider {
    services: qlam_host::api::HostServices,
}

impl Provider for ExplodingProvider {
    fn description(&self) -> String {
        "explodes".into()
    }
    fn is_authenticated(&self) -> bool {
        false
    }
    fn auth_context(&self) -> Result<Map<String, Value>> {
        Ok(Map::new())
    }
    fn credential(&self) -> Result<Option<Credential>> {
        Ok(None)
    }
    fn http_headers(&self) -> Option<&dyn HttpHeaders> {
        Some(self)
    }
    fn login_logout(&self) -> Option<&dyn LoginLogout> {
        Some(self)
    }
}

impl HttpHeaders for ExplodingProvider {
    fn headers(&self) -> Result<Headers> {
        panic!("in-process provider exploded")
    }
}

impl LoginLogout for ExplodingProvider {
    fn login(&self, _options: &LoginOptions) -> Result<()> {
        let _ = self.services.prompt_secret("Password")?;
        Ok(())
    }
    fn logout(&self) -> Result<LogoutReport> {
        Ok(LogoutReport::default())
    }
}

const EXPLODES: &str =
    "[contexts.c]\n[[contexts.c.auth_providers]]\nname = \"x\"\nprovider = \"explodes\"\n";

#[test]
fn in_process_providers_go_through_the_same_panic_adapter() {
    let dir = tempfile::tempdir().unwrap();
    let c = client(Explodes, EXPLODES, dir.path());
    let e = c.headers("x").unwrap_err();
    assert_eq!(e.kind(), HostErrorKind::Provider(ErrorKind::Panic));
    assert_eq!(
        e.message(),
        "provider `x` panicked in `headers` (run with -v to see its message)"
    );
    // The host keeps working after the panic.
    let e = c.headers("x").unwrap_err();
    assert_eq!(e.kind(), HostErrorKind::Provider(ErrorKind::Panic));
}

#[test]
fn the_default_host_refuses_interaction_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let c = client(Explodes, EXPLODES, dir.path());
    let e = c.login(Some("x"), &LoginOptions::default()).unwrap_err();
    assert_eq!(e.kind(), HostErrorKind::Provider(ErrorKind::Interaction));
    assert_eq!(
        e.message(),
        "provider `x` needs to ask for `Password`, but this program is not interactive; log in from a terminal with `qlam auth login x`"
    );
}

#[test]
fn a_second_in_process_type_of_the_same_name_is_refused_and_plugins_lose_to_in_process() {
    let mut reg = qlam_host::plugins::Registry::new();
    reg.register_factory(Box::new(Explodes)).unwrap();
    let e = reg.register_factory(Box::new(Explodes)).unwrap_err();
    assert_eq!(
        e.message(),
        "provider type `explodes` is already registered by in-process registration"
    );

    /// An in-process type named like the bundled plugin's.
    struct ShadowsToken;
    impl ProviderFactory for ShadowsToken {
        fn name(&self) -> &str {
            "token"
        }
        fn description(&self) -> String {
            "in-process token".into()
        }
        fn capabilities(&self) -> Capabilities {
            Capabilities::default()
        }
        fn build(&self, _req: BuildRequest) -> Result<Box<dyn Provider>> {
            Err(qlam_host::api::Error::configuration(
                "built by the in-process type",
            ))
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    crate::util::install(&crate::util::artifacts().token_lib, &plugins, "libtoken.so");
    let c = AuthClient::builder()
        .ignore_environment()
        .no_default_plugin_dirs()
        .no_plugin_index()
        .plugin_dir(&plugins)
        .config(
            Config::parse(
                "[contexts.c]\n[[contexts.c.auth_providers]]\nname = \"t\"\nprovider = \"token\"\n",
                std::path::Path::new("/c.toml"),
            )
            .unwrap(),
        )
        .store_dir(dir.path().join("store"))
        .register_factory(ShadowsToken)
        .build()
        .unwrap();
    let e = c.headers("t").unwrap_err();
    assert!(e.message().ends_with("built by the in-process type"), "{e}");
    let dups = c.registry().duplicates();
    assert_eq!(dups.len(), 1);
    assert_eq!(dups[0].kept, qlam_host::plugins::Origin::InProcess);
    assert_eq!(
        dups[0].ignored,
        qlam_host::plugins::Origin::Library(plugins.join("libtoken.so"))
    );
}

#[test]
fn the_hot_path_with_a_valid_answer_calls_no_provider_takes_no_lock_and_touches_no_disk() {
    let dir = tempfile::tempdir().unwrap();
    let counters = Arc::new(Counters::default());
    let c = client(
        Counting {
            counters: counters.clone(),
            lifetime: chrono::Duration::hours(1),
            cache_session: false,
        },
        CONFIG,
        dir.path(),
    );
    assert_eq!(c.token("n").unwrap().token.expose(), "gen-0");
    // Take the store away entirely: a valid remembered answer needs none of it.
    let entry = c.store().entry_path("c", "n");
    std::fs::remove_dir_all(dir.path()).unwrap();
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                for _ in 0..1000 {
                    assert_eq!(c.token("n").unwrap().token.expose(), "gen-0");
                }
            });
        }
    });
    assert_eq!(
        counters.tokens.load(Ordering::SeqCst),
        1,
        "the provider was asked once"
    );
    assert!(
        !dir.path().exists(),
        "no folder, no lock file was created: {}",
        entry.display()
    );
}
