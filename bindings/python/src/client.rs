//! `qlam._native.Client`: one `qlam_host::AuthClient` for `qlam.AuthClient`.
//!
//! Every call that may do I/O or wait runs with the GIL released; a still-valid answer is
//! served without releasing it. After `os.fork()` the child does not use its parent's host
//! (its worker threads, isolated children and locks belong to the parent): the first call
//! in the child builds a new one from the same settings, and the parent's is left alone.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyDict;
use qlam_host::api::{Capabilities, LoginOptions};
use qlam_host::{AuthClient, AuthClientBuilder, ErrorKind, Outcome, ProviderStatus};

use crate::convert::json_to_py;
use crate::errors::{detached, to_py};
use crate::interaction::PyInteraction;
use crate::providers::{PyFactory, SharedFactory};

/// This process's id, as the fork hook last saw it (`os.register_at_fork` calls
/// [`after_fork_in_child`]): compared on every call, so a forked child notices without a
/// system call.
static PROCESS: AtomicU32 = AtomicU32::new(0);

pub(crate) fn init_process_id() {
    PROCESS.store(std::process::id(), Ordering::Relaxed);
}

/// Called in the child after `os.fork()`.
#[pyfunction]
pub(crate) fn after_fork_in_child() {
    init_process_id();
}

/// What a client is built from, kept to build it again in a forked child.
struct Recipe {
    config_path: Option<PathBuf>,
    context: Option<String>,
    plugin_dirs: Vec<PathBuf>,
    interaction: Interaction,
    qlam_executable: Option<PathBuf>,
    factories: Vec<SharedFactory>,
}

/// Who the user is talked to through.
enum Interaction {
    Terminal {
        no_browser: bool,
    },
    Python(Arc<PyInteraction>),
    /// Nobody: every step that needs a person fails with a clear error.
    Refused,
}

impl Recipe {
    fn builder(&self) -> AuthClientBuilder {
        let mut b = AuthClient::builder();
        match &self.interaction {
            Interaction::Terminal { no_browser } => {
                b = b.interaction(Arc::new(qlam_host::Terminal::new(*no_browser)));
            }
            Interaction::Python(i) => b = b.interaction(i.clone()),
            Interaction::Refused => {}
        }
        if let Some(p) = &self.config_path {
            b = b.config_file(p);
        }
        if let Some(c) = &self.context {
            b = b.context(c);
        }
        for d in &self.plugin_dirs {
            b = b.plugin_dir(d);
        }
        // The providers bundled with qlam live beside the `qlam` executable; a Python program
        // sees the same ones as the CLI, and isolated providers run in that executable.
        if let Some(exe) = &self.qlam_executable {
            if let Some(dir) = exe.parent() {
                b = b.plugin_dir(dir);
            }
            b = b.isolation_executable(exe);
        }
        for f in &self.factories {
            b = b.register_factory(f.clone());
        }
        b
    }
}

/// The host of one process.
struct Live {
    process: u32,
    client: Arc<AuthClient>,
}

/// The native client. `qlam.AuthClient` wraps it; use that.
#[pyclass(frozen, module = "qlam._native")]
pub(crate) struct Client {
    live: ArcSwap<Live>,
    recipe: Recipe,
    rebuilding: Mutex<()>,
}

impl Client {
    /// This process's host (built again first in a forked child).
    fn host(&self, py: Python<'_>) -> PyResult<Arc<AuthClient>> {
        if let Some(client) = self.ready() {
            return Ok(client);
        }
        detached(py, || {
            let _one_at_a_time = self.rebuilding.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(client) = self.ready() {
                return Ok(client);
            }
            let client = Arc::new(self.recipe.builder().build()?);
            let parents = self.live.swap(Arc::new(Live {
                process: PROCESS.load(Ordering::Relaxed),
                client: client.clone(),
            }));
            // The parent's host is never dropped here: dropping it would end isolated
            // children and release locks that are the parent's.
            std::mem::forget(parents);
            Ok(client)
        })
    }

    /// This process's host, unless it must be built again (the fast path's test).
    fn ready(&self) -> Option<Arc<AuthClient>> {
        self.with_ready(|client| client.clone())
    }

    /// `f` on this process's host, if it is built already, without taking a reference to
    /// it: the reusable-answer path of `headers` and `token`.
    fn with_ready<T>(&self, f: impl FnOnce(&Arc<AuthClient>) -> T) -> Option<T> {
        let live = self.live.load();
        (live.process == PROCESS.load(Ordering::Relaxed)).then(|| f(&live.client))
    }
}

/// `(name, factory, description, capabilities)`, from `qlam.registry`.
type FactorySpec = (String, Py<PyAny>, String, HashMap<String, bool>);

#[pymethods]
impl Client {
    #[new]
    #[pyo3(signature = (config_path=None, context=None, plugin_dirs=Vec::new(), interactive=true, no_browser=false, qlam_executable=None, interaction=None, factories=Vec::new()))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        config_path: Option<PathBuf>,
        context: Option<String>,
        plugin_dirs: Vec<PathBuf>,
        interactive: bool,
        no_browser: bool,
        qlam_executable: Option<PathBuf>,
        interaction: Option<Py<PyAny>>,
        factories: Vec<FactorySpec>,
    ) -> PyResult<Self> {
        let interaction = match interaction {
            Some(object) => Interaction::Python(Arc::new(PyInteraction { object })),
            None if interactive => Interaction::Terminal { no_browser },
            None => Interaction::Refused,
        };
        let factories = factories
            .into_iter()
            .map(|(name, factory, description, caps)| {
                let has = |c: &str| caps.get(c).copied().unwrap_or(false);
                SharedFactory(Arc::new(PyFactory {
                    capabilities: Capabilities {
                        headers: has("headers"),
                        login: has("login"),
                        token: has("token"),
                        refresh: has("refresh"),
                    },
                    name,
                    description,
                    factory,
                }))
            })
            .collect();
        let recipe = Recipe {
            config_path,
            context,
            plugin_dirs,
            interaction,
            qlam_executable,
            factories,
        };
        let builder = recipe.builder();
        let client = detached(py, move || builder.build())?;
        Ok(Client {
            live: ArcSwap::from_pointee(Live {
                process: PROCESS.load(Ordering::Relaxed),
                client: Arc::new(client),
            }),
            recipe,
            rebuilding: Mutex::new(()),
        })
    }

    /// The configured provider names of the selected context, in file order.
    fn provider_names(&self) -> Vec<String> {
        self.live.load().client.provider_names()
    }

    /// `{name: ok}` for every provider (best effort), or `True` for one named provider
    /// (its failure raised).
    #[pyo3(signature = (provider=None))]
    fn login(&self, py: Python<'_>, provider: Option<String>) -> PyResult<Py<PyAny>> {
        let one = provider.is_some();
        let client = self.host(py)?;
        let outcomes = detached(py, move || {
            client.login(provider.as_deref(), &LoginOptions::default())
        })?;
        outcomes_to_py(py, outcomes, one)
    }

    #[pyo3(signature = (provider=None))]
    fn logout(&self, py: Python<'_>, provider: Option<String>) -> PyResult<Py<PyAny>> {
        let one = provider.is_some();
        let client = self.host(py)?;
        let outcomes = detached(py, move || client.logout(provider.as_deref()))?;
        outcomes_to_py(py, outcomes, one)
    }

    #[pyo3(signature = (provider=None, force=false))]
    fn refresh_credentials(
        &self,
        py: Python<'_>,
        provider: Option<String>,
        force: bool,
    ) -> PyResult<Py<PyAny>> {
        let one = provider.is_some();
        let client = self.host(py)?;
        let outcomes = detached(py, move || {
            client.refresh_credentials(provider.as_deref(), force)
        })?;
        outcomes_to_py(py, outcomes, one)
    }

    /// As in the Python library: an unknown provider, or one that fails, is `False`.
    #[pyo3(signature = (provider=None))]
    fn is_authenticated(&self, py: Python<'_>, provider: Option<String>) -> PyResult<bool> {
        let client = self.host(py)?;
        match py.detach(move || client.is_authenticated(provider.as_deref())) {
            Ok(b) => Ok(b),
            Err(e) if e.kind() == ErrorKind::Usage => Ok(false),
            Err(e) => Err(to_py(py, &e)),
        }
    }

    /// The credential as a dict (with `kind`), or `None`.
    fn get_credential(&self, py: Python<'_>, provider: String) -> PyResult<Py<PyAny>> {
        let client = self.host(py)?;
        let credential = detached(py, move || client.get_credential(&provider))?;
        match credential {
            None => Ok(py.None()),
            Some(c) => {
                let value =
                    serde_json::to_value(&c).map_err(|e| PyValueError::new_err(e.to_string()))?;
                Ok(json_to_py(py, &value)?.unbind())
            }
        }
    }

    fn auth_context(&self, py: Python<'_>, provider: String) -> PyResult<Py<PyAny>> {
        let client = self.host(py)?;
        let context = detached(py, move || client.auth_context(&provider))?;
        Ok(json_to_py(py, &serde_json::Value::Object(context))?.unbind())
    }

    /// One dict per configured provider: `name`, `type`, `status`, `description`, the
    /// provider's extra info merged in (as the Python library does), and `capabilities`.
    fn list_providers(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let client = self.host(py)?;
        let providers = detached(py, move || client.list_providers())?;
        let rows: Vec<serde_json::Value> = providers
            .into_iter()
            .map(|p| {
                let (status, reason) = match &p.status {
                    ProviderStatus::Authenticated => ("authenticated", None),
                    ProviderStatus::Available => ("available", None),
                    ProviderStatus::Error(why) => ("error", Some(why.clone())),
                    ProviderStatus::Timeout(why) => ("timeout", Some(why.clone())),
                };
                let mut row = serde_json::Map::new();
                row.insert("name".into(), p.name.into());
                row.insert("type".into(), p.provider_type.into());
                row.insert("status".into(), status.into());
                row.insert("description".into(), p.description.into());
                // Extra info is merged in, but never over the keys above.
                for (k, v) in p.extra_info {
                    row.entry(k).or_insert(v);
                }
                row.insert(
                    "capabilities".into(),
                    serde_json::json!(p.capabilities.names()),
                );
                if let Some(r) = reason {
                    row.insert("error".into(), r.into());
                }
                serde_json::Value::Object(row)
            })
            .collect();
        Ok(json_to_py(py, &serde_json::Value::Array(rows))?.unbind())
    }

    /// The provider's HTTP headers (renewed first when they are about to expire).
    fn headers<'py>(&self, py: Python<'py>, provider: String) -> PyResult<Bound<'py, PyDict>> {
        // A still-valid answer is served without releasing the GIL: no I/O, no waiting.
        let reusable = self.with_ready(|c| c.reusable_headers(&provider)).flatten();
        let headers = match reusable {
            Some(h) => h,
            None => {
                let client = self.host(py)?;
                detached(py, move || client.headers(&provider))?
            }
        };
        let dict = PyDict::new(py);
        for (name, value) in &headers.headers {
            dict.set_item(name, value.expose())?;
        }
        Ok(dict)
    }

    /// The provider's access token.
    fn token(&self, py: Python<'_>, provider: String) -> PyResult<String> {
        if let Some(t) = self.with_ready(|c| c.reusable_token(&provider)).flatten() {
            return Ok(t.token.expose().clone());
        }
        let client = self.host(py)?;
        let token = detached(py, move || client.token(&provider))?;
        Ok(token.token.expose().clone())
    }

    /// Forgets the reusable answers of a provider and renews its credentials where it can
    /// (what an HTTP client does after a 401 with `invalid_token`); `True` when renewed.
    fn renew(&self, py: Python<'_>, provider: String) -> PyResult<bool> {
        let client = self.host(py)?;
        detached(py, move || client.renew(&provider))
    }
}

/// For one named provider: `True`/`False`, its error raised. For all: `{name: ok}`, errors
/// logged (best effort, as in the Python library). Warnings go to the `qlam` logger.
fn outcomes_to_py(py: Python<'_>, outcomes: Vec<Outcome>, one: bool) -> PyResult<Py<PyAny>> {
    static LOGGER: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let logger = LOGGER.get_or_try_init(py, || {
        py.import("logging")?
            .getattr("getLogger")?
            .call1(("qlam",))
            .map(|l| l.unbind())
    })?;
    let logger = logger.bind(py);
    let dict = PyDict::new(py);
    for o in outcomes {
        for w in &o.warnings {
            logger.call_method1("warning", (format!("{}: {w}", o.provider),))?;
        }
        match o.result {
            Ok(done) if one => return Ok(done.into_pyobject(py)?.to_owned().into_any().unbind()),
            Err(e) if one => return Err(to_py(py, &e)),
            Ok(done) => dict.set_item(&o.provider, done)?,
            Err(e) => {
                logger.call_method1("warning", (format!("{}: {e}", o.provider),))?;
                dict.set_item(&o.provider, false)?;
            }
        }
    }
    Ok(dict.into_any().unbind())
}
