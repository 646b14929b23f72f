//! Running Python handlers: the jobs connections send, and the thread that runs them.
//!
//! Connection tasks never touch Python. Each request that needs a handler becomes a [`Job`]
//! on a channel; a dedicated handler thread (or the host program's thread, in `poll()`) attaches
//! to the interpreter, runs every job that is ready, and detaches while it waits for more,
//! as granian does. Per job, Python sees one call of the router's bound method.

use crossbeam_channel::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use pyo3::prelude::*;

use crate::app::exchange::{ReplyContext, ReplySender};
use crate::python::inline_io;
use crate::python::logging::log_exception;
use crate::python::request::HttpRequest;
use crate::python::response::HttpResponse;
use crate::python::router::{Handler, PyRoute, HANDLER_NAMES};

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

/// The server's handler threads.
///
/// They follow the leader/followers pattern: one thread at a time (the leader) waits,
/// detached, for the job channel to become ready; it then hands leadership on and attaches,
/// and runs every job that is waiting. A thread never holds a job while it waits for the
/// interpreter, so no request is stuck behind another thread's turn; and a handler that
/// blocks (on I/O, a lock, a sleep) releases the interpreter and lets the others go on.
pub struct HandlerPool {
    threads: Vec<JoinHandle<()>>,
    /// Disconnected once every thread has ended.
    all_exited: Receiver<()>,
}

impl HandlerPool {
    pub fn start(count: usize, jobs: Receiver<Work>) -> std::io::Result<HandlerPool> {
        let leader = Arc::new(Mutex::new(()));
        let (exit_guard, all_exited) = crossbeam_channel::bounded::<()>(0);
        let mut threads = Vec::with_capacity(count);
        for index in 0..count {
            let jobs = jobs.clone();
            let leader = leader.clone();
            let exit_guard = exit_guard.clone();
            let thread = std::thread::Builder::new()
                .name(format!("godottpd-handler-{index}"))
                .spawn(move || {
                    handler_thread(&jobs, &leader);
                    drop(exit_guard);
                })?;
            threads.push(thread);
        }
        Ok(HandlerPool {
            threads,
            all_exited,
        })
    }

    pub fn len(&self) -> usize {
        self.threads.len()
    }

    /// Whether the calling thread is one of the pool's (a handler calling `stop()`).
    pub fn owns_current_thread(&self) -> bool {
        let current = std::thread::current().id();
        self.threads
            .iter()
            .any(|thread| thread.thread().id() == current)
    }

    /// Waits until every thread has ended or `deadline` passes (threads still running a
    /// handler then finish on their own). Call detached.
    pub fn wait_for_exit(self, deadline: Instant) {
        loop {
            match self.all_exited.recv_deadline(deadline) {
                Ok(()) => continue,
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => return,
            }
        }
        for thread in self.threads {
            let _ = thread.join();
        }
    }

    /// Inline mode: one thread that is both the I/O loop and the handler thread. It drives a
    /// current-thread tokio runtime, detached, until a job is ready; then, attached and with
    /// no I/O task running, it runs every ready job; and so on. No request crosses a thread,
    /// which is what makes it the fastest mode, and a handler that blocks stalls every
    /// connection, which is its price.
    pub fn start_inline(
        runtime: tokio::runtime::Runtime,
        jobs: Receiver<Work>,
        job_signal: Arc<tokio::sync::Notify>,
    ) -> std::io::Result<HandlerPool> {
        let (exit_guard, all_exited) = crossbeam_channel::bounded::<()>(0);
        let thread = std::thread::Builder::new()
            .name("godottpd-loop".into())
            .spawn(move || {
                inline_loop(runtime, &jobs, &job_signal);
                drop(exit_guard);
            })?;
        Ok(HandlerPool {
            threads: vec![thread],
            all_exited,
        })
    }
}

/// How long the inline loop stays in one I/O round without jobs (a safety net: jobs and
/// Stop both wake it at once through the job signal).
const INLINE_TICK: Duration = Duration::from_millis(500);

fn inline_loop(
    runtime: tokio::runtime::Runtime,
    jobs: &Receiver<Work>,
    job_signal: &tokio::sync::Notify,
) {
    let runtime = Arc::new(runtime);
    // Attach once so the thread keeps its interpreter state; every round below only
    // re-takes the interpreter lock.
    Python::attach(|py| loop {
        py.detach(|| {
            runtime.block_on(async {
                let _ = tokio::time::timeout(INLINE_TICK, job_signal.notified()).await;
            })
        });
        // The handlers run between I/O rounds, in the runtime's context, so that a streaming
        // handler's write can drive the I/O while its client catches up (see `inline_io`).
        let _context = runtime.enter();
        if inline_io::as_loop(&runtime, || run_ready(py, jobs).1) {
            break;
        }
    });
    if let Ok(runtime) = Arc::try_unwrap(runtime) {
        runtime.shutdown_timeout(Duration::from_millis(200));
    }
}

fn handler_thread(jobs: &Receiver<Work>, leader: &Mutex<()>) {
    Python::attach(|py| loop {
        py.detach(|| {
            let _leadership = leader.lock().unwrap_or_else(PoisonError::into_inner);
            let mut ready = crossbeam_channel::Select::new();
            ready.recv(jobs);
            ready.ready();
        });
        if run_ready(py, jobs).1 {
            return;
        }
    });
}
