//! In-process costs on the hot path: `headers()` through the plugin ABI, and through
//! `AuthClient` with a reusable answer, on one thread and on eight, and with none (a provider
//! call under a deadline every time, in process and isolated in a child process).
//!
//! The plugin is the real `token` provider library, loaded through the stable ABI: build it
//! first (`cargo build --release`), or point `QLAM_BENCH_PLUGIN_DIR` at a folder holding it.
//! `bench/run.sh` does both.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use qlam_host::api::ffi::load_library;
use qlam_host::api::testing::MemoryServices;
use qlam_host::api::{
    BuildRequest, CacheControl, Capabilities, Credential, Headers, HttpHeaders, Provider,
    ProviderFactory, Secret,
};
use qlam_host::config::Config;
use qlam_host::AuthClient;
use serde_json::{Map, Value};

fn plugin_dir() -> PathBuf {
    std::env::var_os("QLAM_BENCH_PLUGIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/release"))
}

fn token_lib() -> PathBuf {
    let p = plugin_dir().join(format!(
        "libqlam_provider_token.{}",
        std::env::consts::DLL_EXTENSION
    ));
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --release` first (bench/run.sh does)",
        p.display()
    );
    p
}

fn bench(c: &mut Criterion) {
    std::env::set_var("QLAM_BENCH_TOKEN", "bench-token-value");
    let lib = load_library(&token_lib()).expect("the token plugin loads");
    let factory = lib
        .factories
        .iter()
        .find(|(n, _)| n == "token")
        .expect("token type")
        .1;
    let config = serde_json::json!({"env": "QLAM_BENCH_TOKEN"});
    let provider = factory
        .build("bench", "t", &config, None, MemoryServices::new(&[]))
        .expect("builds");

    let mut g = c.benchmark_group("abi");
    g.throughput(Throughput::Elements(1));
    g.bench_function("headers_token_plugin_env_source", |b| {
        b.iter(|| provider.headers().unwrap())
    });
    g.bench_function("is_authenticated_token_plugin", |b| {
        b.iter(|| provider.is_authenticated().unwrap())
    });
    g.finish();

    // AuthClient with a session-cacheable answer (a stored token): after the first call the
    // answer is served from memory, without a provider call.
    let store = tempfile::tempdir().unwrap();
    let config = Config::parse(
        "[contexts.b]\n[[contexts.b.auth_providers]]\nname = \"t\"\nprovider = \"token\"\n[[contexts.b.auth_providers]]\nname = \"e\"\nprovider = \"token\"\nenv = \"QLAM_BENCH_TOKEN\"\n[[contexts.b.auth_providers]]\nname = \"iso\"\nprovider = \"token\"\nenv = \"QLAM_BENCH_TOKEN\"\nisolation = \"process\"\n",
        std::path::Path::new("/bench/config.toml"),
    )
    .unwrap();
    let client = AuthClient::builder()
        .ignore_environment()
        .no_default_plugin_dirs()
        .plugin_dir(plugin_dir())
        .config(config)
        .store_dir(store.path())
        .isolation_executable(plugin_dir().join("qlam"))
        .build()
        .unwrap();
    client
        .store()
        .store("b", "t", "token", "stored-bench-token")
        .unwrap();
    client.headers("t").unwrap();
    let mut g = c.benchmark_group("client");
    g.throughput(Throughput::Elements(1));
    g.bench_function("headers_cached_answer_1_thread", |b| {
        b.iter(|| client.headers("t").unwrap())
    });
    // An answer that may not be reused (a token from the environment): every call goes into
    // the provider through the host's boundary — a worker thread with a deadline, the answer
    // checked. Beside `abi/headers_token_plugin_env_source` (the same call without them).
    g.bench_function("headers_provider_called_each_time", |b| {
        b.iter(|| client.headers("e").unwrap())
    });
    // The same provider isolated (`isolation = "process"`): each call is a round trip to its
    // child process over a pipe (the child is started by the first call, before measuring).
    client.headers("iso").unwrap();
    g.bench_function("headers_isolated_provider_round_trip", |b| {
        b.iter(|| client.headers("iso").unwrap())
    });
    for threads in [1usize, 8] {
        g.throughput(Throughput::Elements(threads as u64));
        g.bench_function(
            format!("headers_cached_answer_{threads}_threads_parallel"),
            |b| {
                b.iter_custom(|iters| {
                    let client = &client;
                    parallel(threads, iters, move || {
                        std::hint::black_box(client.headers("t").unwrap());
                    })
                })
            },
        );
        g.bench_function(format!("abi_headers_env_{threads}_threads_parallel"), |b| {
            let provider = &provider;
            b.iter_custom(|iters| {
                parallel(threads, iters, move || {
                    std::hint::black_box(provider.headers().unwrap());
                })
            })
        });
    }
    g.finish();

    // A provider whose token is valid for an hour (an OAuth token between refreshes), in
    // process through the same adapter: the answer is reused until its `Until` time.
    let config = Config::parse(
        "[contexts.b]\n[[contexts.b.auth_providers]]\nname = \"v\"\nprovider = \"valid\"\n",
        std::path::Path::new("/bench/config.toml"),
    )
    .unwrap();
    let client = AuthClient::builder()
        .ignore_environment()
        .no_default_plugin_dirs()
        .config(config)
        .store_dir(store.path())
        .register_factory(Valid)
        .build()
        .unwrap();
    client.headers("v").unwrap();
    let mut g = c.benchmark_group("valid_token");
    for threads in [1usize, 8] {
        g.throughput(Throughput::Elements(threads as u64));
        g.bench_function(format!("headers_{threads}_threads_parallel"), |b| {
            b.iter_custom(|iters| {
                let client = &client;
                parallel(threads, iters, move || {
                    std::hint::black_box(client.headers("v").unwrap());
                })
            })
        });
    }
    g.finish();
}

struct Valid;

impl ProviderFactory for Valid {
    fn name(&self) -> &str {
        "valid"
    }
    fn description(&self) -> String {
        "a token valid for an hour".into()
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            headers: true,
            ..Default::default()
        }
    }
    fn build(&self, _: BuildRequest) -> qlam_host::api::Result<Box<dyn Provider>> {
        Ok(Box::new(ValidProvider(
            qlam_host::api::chrono::Utc::now() + qlam_host::api::chrono::Duration::hours(1),
        )))
    }
}

struct ValidProvider(qlam_host::api::chrono::DateTime<qlam_host::api::chrono::Utc>);

impl Provider for ValidProvider {
    fn description(&self) -> String {
        String::new()
    }
    fn is_authenticated(&self) -> bool {
        true
    }
    fn auth_context(&self) -> qlam_host::api::Result<Map<String, Value>> {
        Ok(Map::new())
    }
    fn credential(&self) -> qlam_host::api::Result<Option<Credential>> {
        Ok(None)
    }
    fn http_headers(&self) -> Option<&dyn HttpHeaders> {
        Some(self)
    }
}

impl HttpHeaders for ValidProvider {
    fn headers(&self) -> qlam_host::api::Result<Headers> {
        Ok(Headers {
            headers: vec![(
                "Authorization".into(),
                Secret::new("Bearer valid-token-for-bench".into()),
            )],
            cache: CacheControl::Until(self.0),
        })
    }
}

/// Runs `f` `iters` times on each of `threads` threads at once; the wall time of it all.
fn parallel(threads: usize, iters: u64, f: impl Fn() + Copy + Send) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(move || {
                for _ in 0..iters {
                    f();
                }
            });
        }
    });
    start.elapsed()
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
