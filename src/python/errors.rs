//! The exceptions godottpd declares, and what a handler's escaping exception answers.
//!
//! Each exception is declared here once, exported by the extension module and re-exported
//! from `godottpd/__init__.py`; Python code (`_body.py`) imports it from there.

use pyo3::prelude::*;

use crate::python::logging::log_exception;
use crate::python::response::HttpResponse;

pyo3::create_exception!(
    godottpd._godottpd,
    BadRequest,
    pyo3::exceptions::PyValueError,
    "The request is malformed: a body that does not decode, a field a handler refuses.\n\n\
     ``get_body_parsed()`` raises it for a malformed body; handlers may raise it themselves.\n\
     One that escapes a handler answers ``400 Bad Request`` with its message as the body."
);

/// Answers for a handler that raised `error`: `400` (or the 4xx of its `status`
/// attribute) with the message of a `BadRequest`
/// (the client's fault, as Flask answers it, so no traceback is logged), else `500` with a
/// logged traceback. Nothing is sent if the handler had already sent its response.
pub fn answer_handler_error(py: Python<'_>, response: &HttpResponse, context: &str, error: &PyErr) {
    if error.is_instance_of::<BadRequest>(py) {
        let message = error
            .value(py)
            .str()
            .map(|text| text.to_string_lossy().into_owned())
            .unwrap_or_default();
        let message = if message.is_empty() {
            "Bad Request".to_owned()
        } else {
            message
        };
        // A streamed body's refusal (`request.stream()`) carries its own status (408, 413).
        let status = error
            .value(py)
            .getattr("status")
            .ok()
            .and_then(|status| status.extract::<u16>().ok())
            .filter(|status| (400..500).contains(status))
            .unwrap_or(400);
        response.send_error_if_unsent(py, status, &message);
        return;
    }
    log_exception(py, context, error);
    response.send_error_if_unsent(py, 500, "Internal Server Error");
}
