//! Checks of `HttpServer`'s arguments that Python code gets wrong in ways Rust would not
//! notice: a `bool` as a port, counts past a cap, seconds that overflow a `Duration`.
//!
//! Every check answers a `TypeError` or a `ValueError` that names the argument, so that no
//! value a caller passes can reach a panic (`Duration::from_secs_f64`, `Instant + Duration`).

use std::time::Duration;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyInt};

/// The longest any timeout, grace period or wait may be: about 31 years, far from where
/// `Instant + Duration` overflows.
pub const MAX_SECONDS: f64 = 1e9;

/// Most I/O threads: more than the cores of any machine this runs on.
pub const MAX_IO_THREADS: usize = 64;
/// Most bytes a stream may queue for a slow client (1 GiB): past it, a server would hold
/// memory no client can take from it quickly.
pub const MAX_STREAM_BUFFER: usize = 1 << 30;

/// Most handler threads: Python runs one at a time, so more only add switching.
pub const MAX_HANDLER_THREADS: usize = 256;

/// A port: an `int` (not a `bool`: GodotTPD's `HttpServer(true)` is its logging flag, and
/// `True` as port 1 would be a silent surprise) in `0..=65535`.
pub fn port(value: &Bound<'_, PyAny>) -> PyResult<u16> {
    if value.is_instance_of::<PyBool>() || !value.is_instance_of::<PyInt>() {
        return Err(PyTypeError::new_err(format!(
            "port must be an int, not {}",
            crate::python::type_name::type_name(value)
        )));
    }
    value
        .extract::<i64>()
        .ok()
        .and_then(|port| u16::try_from(port).ok())
        .ok_or_else(|| PyValueError::new_err(format!("port must be in 0..=65535, not {value}")))
}

/// `HttpServer`'s `port` argument, checked by [`port`] as it is extracted.
#[derive(Clone, Copy, Debug)]
pub struct Port(pub u16);

impl FromPyObject<'_, '_> for Port {
    type Error = PyErr;

    fn extract(obj: Borrowed<'_, '_, PyAny>) -> Result<Self, Self::Error> {
        port(&obj.to_owned()).map(Port)
    }
}

/// A count in `minimum..=cap`; past the cap is an error naming it, never a silent clamp.
pub fn capped_count(name: &str, value: i64, minimum: usize, cap: usize) -> PyResult<usize> {
    match usize::try_from(value) {
        Ok(count) if (minimum..=cap).contains(&count) => Ok(count),
        _ => Err(PyValueError::new_err(format!(
            "{name} must be in {minimum}..={cap}, not {value}"
        ))),
    }
}

/// Seconds in `0..=MAX_SECONDS` (zero allowed: a grace period of none).
pub fn non_negative_seconds(name: &str, seconds: f64) -> PyResult<Duration> {
    if !seconds.is_finite() || !(0.0..=MAX_SECONDS).contains(&seconds) {
        return Err(PyValueError::new_err(format!(
            "{name} must be between 0 and {MAX_SECONDS:e} seconds, not {seconds}"
        )));
    }
    Ok(Duration::from_secs_f64(seconds))
}
