//! The `godottpd` logger: where handler tracebacks and server warnings go.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyDict;

static LOGGER: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

fn logger(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    LOGGER
        .get_or_try_init(py, || {
            Ok::<_, PyErr>(
                py.import("logging")?
                    .call_method1("getLogger", ("godottpd",))?
                    .unbind(),
            )
        })
        .map(|logger| logger.bind(py))
}

/// Logs `message` at ERROR with the exception's traceback.
pub fn log_exception(py: Python<'_>, message: &str, error: &PyErr) {
    let result = logger(py).and_then(|logger| {
        let kwargs = PyDict::new(py);
        kwargs.set_item(
            "exc_info",
            (error.get_type(py), error.value(py), error.traceback(py)),
        )?;
        logger.call_method("error", ("%s", message), Some(&kwargs))?;
        Ok(())
    });
    if let Err(logging_failed) = result {
        // Logging itself failed (a broken handler?): fall back to stderr rather than lose it.
        error.print(py);
        logging_failed.print(py);
    }
}

/// Logs `message` at WARNING.
pub fn log_warning(py: Python<'_>, message: &str) {
    if let Err(error) =
        logger(py).and_then(|logger| logger.call_method1("warning", ("%s", message)))
    {
        error.print(py);
    }
}

/// Logs `message` at DEBUG (cheap when DEBUG is off: `isEnabledFor` is asked first).
pub fn log_debug(py: Python<'_>, message: &str) {
    let result = logger(py).and_then(|logger| {
        if logger.call_method1("isEnabledFor", (10,))?.is_truthy()? {
            logger.call_method1("debug", ("%s", message))?;
        }
        Ok(())
    });
    if let Err(error) = result {
        error.print(py);
    }
}
