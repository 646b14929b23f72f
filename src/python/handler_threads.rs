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

use crossbeam_channel::Sender;

use crate::app::exchange::Job;
use crate::http::method::KnownMethod;
use crate::io::engine::Application;
use crate::python::event_loop::{LoopSender, LoopWork};
use crate::python::inline_io;
use crate::python::logging::log_exception;
use crate::python::reply_batch::{self, ReplyBatch};
use crate::python::request::HttpRequest;
use crate::python::response::HttpResponse;
use crate::python::router::PyRoute;

/// One request for a Python handler.
pub type PyJob = Job<PyRoute>;

pub enum Work {
    Job(Box<PyJob>),
    /// Ends the handler thread (sent by `stop()` after the last connection is done).
    Stop,
}

/// The Python application as the I/O layer sees it: a channel to whoever runs handlers
/// (the handler threads, the inline loop, or `poll()`).
pub struct PythonApp {
    work: Sender<Work>,
    /// In inline mode, wakes the loop thread out of its I/O round to run the handlers.
    job_signal: Option<Arc<tokio::sync::Notify>>,
    /// Where requests for coroutine handlers go (`python::event_loop`).
    event_loop: Option<Arc<LoopSender>>,
}

impl PythonApp {
    pub fn new(work: Sender<Work>, job_signal: Option<Arc<tokio::sync::Notify>>) -> Self {
        PythonApp {
            work,
            job_signal,
            event_loop: None,
        }
    }

    /// Sends the requests for coroutine handlers to `event_loop`.
    pub fn with_event_loop(mut self, event_loop: Arc<LoopSender>) -> Self {
        self.event_loop = Some(event_loop);
        self
    }

    /// Sends `work` to the handler side; `false` when it has gone.
    pub fn send(&self, work: Work) -> bool {
        if self.work.send(work).is_err() {
            return false;
        }
        if let Some(signal) = &self.job_signal {
            signal.notify_one();
        }
        true
    }
}

impl Application for PythonApp {
    type Route = PyRoute;

    fn submit(&self, job: PyJob) -> bool {
        if let (true, Some(event_loop)) = (job.route.is_coroutine(job.method), &self.event_loop) {
            return event_loop.send(LoopWork::Job(Box::new(job)));
        }
        self.send(Work::Job(Box::new(job)))
    }
}

/// What one turn of running handlers did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ran {
    /// Handlers run.
    pub jobs: usize,
    /// The channel said to stop (or closed): the caller's loop should end.
    pub stop: bool,
}

/// A handler, called: what it returned (a coroutine, for an `async def` one) or raised,
/// and the response it was given.
pub(crate) struct HandlerCall {
    pub method: KnownMethod,
    pub response: Py<HttpResponse>,
    pub outcome: PyResult<Py<PyAny>>,
}

impl HandlerCall {
    /// The log line for a handler that raised.
    pub fn failure_message(&self) -> String {
        format!(
            "{} raised while handling {}",
            self.method.handler_name(),
            self.response.get().describe()
        )
    }
}

/// Makes a job's request and response objects and calls its handler with them: the one
/// way a handler is called, sync or coroutine. `None` when there is nothing to call (no
/// handler for the method, or a response object that could not be made: logged).
pub(crate) fn call_handler(py: Python<'_>, job: PyJob) -> Option<HandlerCall> {
    let Job {
        route,
        method,
        context,
        reply,
    } = job;
    let handler = route.handler(method)?;
    let request = HttpRequest::new(context.request.clone(), context.connection.clone());
    let response = match Py::new(py, HttpResponse::new(context, reply)) {
        Ok(response) => response,
        Err(error) => {
            log_exception(py, "could not create a response object", &error);
            return None;
        }
    };
    let outcome = Py::new(py, request)
        .and_then(|request| handler.call1(py, (request, response.clone_ref(py))));
    Some(HandlerCall {
        method,
        response,
        outcome,
    })
}

/// Runs one job on the calling thread, which is attached.
pub fn run_job(py: Python<'_>, job: PyJob) {
    let Some(call) = call_handler(py, job) else {
        return;
    };
    if let Err(error) = &call.outcome {
        let message = call.failure_message();
        crate::python::errors::answer_handler_error(py, call.response.get(), &message, error);
    }
    // Dropping the last reference here sends a 500 for a response left unsent (see Drop).
    drop(call);
}

/// Runs every job already waiting. Stops early at `Work::Stop`.
pub fn run_ready(py: Python<'_>, receiver: &Receiver<Work>) -> Ran {
    let mut jobs = 0;
    loop {
        match receiver.try_recv() {
            Ok(Work::Job(job)) => {
                run_job(py, *job);
                jobs += 1;
            }
            Ok(Work::Stop) | Err(TryRecvError::Disconnected) => return Ran { jobs, stop: true },
            Err(TryRecvError::Empty) => return Ran { jobs, stop: false },
        }
    }
}

/// Waits (detached) up to `timeout` for work, then runs all that is ready.
pub fn wait_and_run(py: Python<'_>, receiver: &Receiver<Work>, timeout: Duration) -> Ran {
    match py.detach(|| receiver.recv_timeout(timeout)) {
        Ok(Work::Job(job)) => {
            run_job(py, *job);
            let more = run_ready(py, receiver);
            Ran {
                jobs: more.jobs + 1,
                ..more
            }
        }
        Ok(Work::Stop) | Err(RecvTimeoutError::Disconnected) => Ran {
            jobs: 0,
            stop: true,
        },
        Err(RecvTimeoutError::Timeout) => Ran::default(),
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

    /// Spawns the named threads; the pool has ended once every one has returned.
    pub fn spawn_all(
        threads: Vec<(String, Box<dyn FnOnce() + Send>)>,
    ) -> std::io::Result<HandlerPool> {
        let (exit_guard, all_exited) = crossbeam_channel::bounded::<()>(0);
        let mut handles = Vec::with_capacity(threads.len());
        for (name, body) in threads {
            let exit_guard = exit_guard.clone();
            handles.push(std::thread::Builder::new().name(name).spawn(move || {
                body();
                drop(exit_guard);
            })?);
        }
        Ok(HandlerPool {
            threads: handles,
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
    let replies = ReplyBatch::new();
    let mut waiting = inline_io::JobWait::default();
    // Attach once so the thread keeps its interpreter state; every round below only
    // re-takes the interpreter lock.
    Python::attach(|py| loop {
        py.detach(|| {
            runtime.block_on(async {
                // The last round's answers, woken from inside the runtime (see `reply_batch`).
                replies.deliver();
                waiting.wait(job_signal, INLINE_TICK).await;
            })
        });
        // The handlers run between I/O rounds, in the runtime's context, so that a streaming
        // handler's write can drive the I/O while its client catches up (see `inline_io`).
        let _context = runtime.enter();
        let round = || reply_batch::holding(&replies, || run_ready(py, jobs).stop);
        if inline_io::as_loop(&Arc::downgrade(&runtime), round) {
            replies.deliver();
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
        if run_ready(py, jobs).stop {
            return;
        }
    });
}
