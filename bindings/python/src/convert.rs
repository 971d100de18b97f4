//! JSON between the host and Python, through the standard library's `json` (credentials,
//! contexts and settings are small, and a provider's documents are parsed by the host like
//! any plugin's).

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

fn json_function<'py>(py: Python<'py>, name: &'static str) -> PyResult<Bound<'py, PyAny>> {
    static JSON: PyOnceLock<Py<PyModule>> = PyOnceLock::new();
    let module = JSON.get_or_try_init(py, || py.import("json").map(|m| m.unbind()))?;
    module.bind(py).getattr(name)
}

/// A JSON value as Python objects.
pub(crate) fn json_to_py<'py>(
    py: Python<'py>,
    value: &serde_json::Value,
) -> PyResult<Bound<'py, PyAny>> {
    let text = serde_json::to_string(value).map_err(|e| PyValueError::new_err(e.to_string()))?;
    json_function(py, "loads")?.call1((text,))
}
