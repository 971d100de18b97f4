//! Host errors as the Python package's exceptions (`qlam/errors.py`), by kind.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;
use qlam_host::api::ErrorKind as ProviderKind;
use qlam_host::{Error, ErrorKind};

/// The exception class of `qlam.errors` named `name` (the module imported once).
fn error_class<'py>(py: Python<'py>, name: &'static str) -> PyResult<Bound<'py, PyType>> {
    static ERRORS: PyOnceLock<Py<PyModule>> = PyOnceLock::new();
    let module = ERRORS.get_or_try_init(py, || py.import("qlam.errors").map(|m| m.unbind()))?;
    module
        .bind(py)
        .getattr(name)?
        .cast_into::<PyType>()
        .map_err(Into::into)
}

/// The class for a provider's own error kind.
fn provider_class(kind: ProviderKind) -> &'static str {
    match kind {
        ProviderKind::Configuration => "ConfigurationError",
        ProviderKind::NotAuthenticated => "NotAuthenticatedError",
        ProviderKind::Unsupported => "UnsupportedOperationError",
        ProviderKind::Interaction => "InteractionError",
        _ => "AuthenticationError",
    }
}

/// An instance of `class` with `message` and the `kind` attribute.
fn raise(py: Python<'_>, class: &'static str, kind: String, message: String) -> PyErr {
    let class = match error_class(py, class) {
        Ok(c) => c,
        Err(import_failed) => return import_failed,
    };
    match class.call1((message,)) {
        Ok(instance) => {
            let _ = instance.setattr("kind", kind);
            PyErr::from_value(instance)
        }
        Err(err) => err,
    }
}

/// The Python exception for a host error: the class by kind, the message (never a secret:
/// host messages are redacted), `kind` as an attribute, and for configuration errors where
/// in which file (`path`, `line`, `column`).
pub(crate) fn to_py(py: Python<'_>, e: &Error) -> PyErr {
    let (class, kind) = match e.kind() {
        ErrorKind::Config => ("ConfigurationError", "config".to_owned()),
        ErrorKind::Usage => ("UnknownProviderError", "usage".to_owned()),
        ErrorKind::Plugin => ("PluginError", "plugin".to_owned()),
        ErrorKind::Store => ("StoreError", "store".to_owned()),
        ErrorKind::Timeout => ("ProviderTimeoutError", "timeout".to_owned()),
        ErrorKind::InvalidAnswer => ("InvalidAnswerError", "invalid_answer".to_owned()),
        ErrorKind::Crashed => ("ProviderCrashedError", "crashed".to_owned()),
        ErrorKind::Provider(k) => (provider_class(k), format!("provider_{}", k.as_str())),
        // A kind newer than this module.
        _ => ("QlamCoreError", "other".to_owned()),
    };
    // The whole sentence, causes included: Python programs print `str(e)`, not a chain.
    let err = raise(py, class, kind, e.message().to_owned());
    if let Some(at) = e.config_location() {
        let value = err.value(py);
        let _ = value.setattr("path", at.path.clone());
        let _ = value.setattr("line", at.line);
        let _ = value.setattr("column", at.column);
    }
    err
}

/// The Python exception for an error the host's services gave a Python provider (a prompt
/// nobody could answer, a store that cannot be written).
pub(crate) fn service_error_to_py(py: Python<'_>, e: &qlam_host::api::Error) -> PyErr {
    raise(
        py,
        provider_class(e.kind()),
        format!("provider_{}", e.kind().as_str()),
        e.message().to_owned(),
    )
}

/// Runs `f` with the GIL released and turns its error into the Python exception.
pub(crate) fn detached<T: Send>(
    py: Python<'_>,
    f: impl FnOnce() -> qlam_host::Result<T> + Send,
) -> PyResult<T> {
    py.detach(f).map_err(|e| to_py(py, &e))
}
