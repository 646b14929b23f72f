//! Running Python handlers: the jobs connections send, and the thread that runs them.
//!
//! Connection tasks never touch Python. Each request that needs a handler becomes a [`Job`]
//! on a channel; a dedicated handler thread (or the host program's thread, in `poll()`) attaches
//! to the interpreter, runs every job that is ready, and detaches while it waits for more,
//! as granian does. Per job, Python sees one call of the router's bound method.

use crossbeam_channel::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::Arc;
use std::time::Duration;

use pyo3::prelude::*;

use crate::exchange::{ReplyContext, ReplySender};
use crate::http_router::{Handler, PyRoute, HANDLER_NAMES};
use crate::logging::log_exception;
use crate::request::HttpRequest;
use crate::response::HttpResponse;

/// One request for a Python handler.
pub struct Job {
    pub route: Arc<PyRoute>,
    pub handler: Handler,
    pub context: ReplyContext,
    pub reply: ReplySender,
}

pub enum Work {
    Job(Box<Job>),
    /// Ends the handler thread (sent by `stop()` after the last connection is done).
    Stop,
}

/// Runs one job on the calling thread, which is attached.
pub fn run_job(py: Python<'_>, job: Job) {
    let Job {
        route,
        handler,
        context,
        reply,
    } = job;
    let Some(method) = route.handlers[handler as usize].as_ref() else {
        return;
    };
    let request = HttpRequest::new(context.request.clone(), context.connection.clone());
    let response = match Py::new(py, HttpResponse::new(context, reply)) {
        Ok(response) => response,
        Err(error) => return log_exception(py, "could not create a response object", &error),
    };
    let outcome = Py::new(py, request)
        .and_then(|request| method.call1(py, (request, response.clone_ref(py))));
    if let Err(error) = outcome {
        let response = response.get();
        let message = format!(
            "{} raised while handling {}",
            HANDLER_NAMES[handler as usize].1,
            response.describe()
        );
        log_exception(py, &message, &error);
        response.send_error_if_unsent(py, 500, "Internal Server Error");
    }
    // Dropping the last reference here sends a 500 for a response left unsent (see Drop).
    drop(response);
}

/// Runs every job already waiting; returns how many ran. Stops early at `Work::Stop`.
pub fn run_ready(py: Python<'_>, receiver: &Receiver<Work>) -> (usize, bool) {
    let mut ran = 0;
    loop {
        match receiver.try_recv() {
            Ok(Work::Job(job)) => {
                run_job(py, *job);
                ran += 1;
            }
            Ok(Work::Stop) | Err(TryRecvError::Disconnected) => return (ran, true),
            Err(TryRecvError::Empty) => return (ran, false),
        }
    }
}

/// Waits (detached) up to `timeout` for work, then runs all that is ready.
/// Returns how many jobs ran and whether the channel asked to stop.
pub fn wait_and_run(py: Python<'_>, receiver: &Receiver<Work>, timeout: Duration) -> (usize, bool) {
    match py.detach(|| receiver.recv_timeout(timeout)) {
        Ok(Work::Job(job)) => {
            run_job(py, *job);
            let (more, stop) = run_ready(py, receiver);
            (more + 1, stop)
        }
        Ok(Work::Stop) | Err(RecvTimeoutError::Disconnected) => (0, true),
        Err(RecvTimeoutError::Timeout) => (0, false),
    }
}

/// The body of the handler thread: attach once, detach only to wait.
pub fn handler_thread(receiver: Receiver<Work>) {
    Python::attach(|py| loop {
        match py.detach(|| receiver.recv()) {
            Ok(Work::Job(job)) => {
                run_job(py, *job);
                if run_ready(py, &receiver).1 {
                    return;
                }
            }
            Ok(Work::Stop) | Err(_) => return,
        }
    });
}
