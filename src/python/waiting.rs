//! `poll(timeout)`: waiting for handler jobs in short detached slices, so that Ctrl-C wakes
//! it promptly, as `serve_forever()` does (watchfiles' `RustNotify::watch` loop is the model:
//! the interpreter only notices a signal when this thread calls `check_signals`).

use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use pyo3::prelude::*;

use crate::python::handler_threads::{run_ready, wait_and_run, Work};

/// The longest one detached wait lasts before signals are checked.
pub const SIGNAL_SLICE: Duration = Duration::from_millis(50);

/// Runs the jobs that are ready; with a `timeout`, first waits up to that long for one.
/// Returns how many ran; a signal handler's exception (`KeyboardInterrupt`) is returned.
/// A `timeout` too large for an `Instant` waits as if for ever (until a job or a signal).
pub fn poll_jobs(py: Python<'_>, receiver: &Receiver<Work>, timeout: f64) -> PyResult<usize> {
    if timeout <= 0.0 {
        return Ok(run_ready(py, receiver).jobs);
    }
    let deadline = Duration::try_from_secs_f64(timeout)
        .ok()
        .and_then(|timeout| Instant::now().checked_add(timeout));
    loop {
        let slice = match deadline {
            Some(deadline) => deadline
                .saturating_duration_since(Instant::now())
                .min(SIGNAL_SLICE),
            None => SIGNAL_SLICE,
        };
        let ran = wait_and_run(py, receiver, slice);
        if ran.jobs > 0 || ran.stop {
            return Ok(ran.jobs);
        }
        py.check_signals()?;
        if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            return Ok(0);
        }
    }
}
