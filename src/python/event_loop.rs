//! Coroutine handlers (`async def`) on an asyncio event loop, and the bridge that feeds it.
//!
//! Connection tasks never touch Python, so they cannot call `loop.call_soon_threadsafe`.
//! Instead a request for a coroutine handler goes on a channel, and the first request of a
//! batch writes one byte to a socket pair whose other end the loop watches with
//! `add_reader`. When the loop wakes, [`Bridge::__call__`] reads the byte, takes every
//! request that is ready (however many arrived meanwhile: one wake-up for all), calls each
//! handler and runs the coroutine as a task. The answer goes back to the connection through
//! the request's own oneshot reply; the answers made while the loop runs a batch (and while
//! it steps the handlers' tasks) are held and handed to the runtime together, with one
//! wake-up for the whole batch (see [`EventLoop::hand_over`]).
//!
//! Each handler runs in a task of its own (what `asyncio.current_task()`, `asyncio.timeout()`
//! and the libraries that build on them need), around a [`HandlerCoroutine`]: the
//! handler's coroutine, which ends its own request when it finishes (a `500` for an
//! exception or for a response left unsent), so that the task needs no done-callback, no
//! second scheduled call, and no bookkeeping at all when it ends in its first step. From
//! Python 3.12 the task starts eagerly: a handler that never waits runs and ends inside the
//! batch, without the task ever being scheduled.
//!
//! The loop is the caller's, with `await server.serve()` or `async with server`, or one the
//! server owns on a thread of its own, started with the server when a route has a coroutine
//! handler (`start()`, `serve_forever()`). The lifecycle around it is Python, in
//! `godottpd/_asyncio.py`.
//!
//! `await stream.drain()` and `await client.wait_closed()` wait on the tokio runtime (a task
//! that awaits the stream's room or the connection's end, no Python in it) and come back
//! the same way: a message on the channel names the waiter, whose asyncio future the loop
//! thread then resolves.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use pyo3::exceptions::{PyConnectionError, PyException, PyRuntimeError, PyStopIteration};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyIterator, PySet, PyTuple};
use pyo3::{intern, PyTraverseError, PyVisit};

use crate::python::errors::answer_handler_error;
use crate::python::handler_threads::{call_handler, HandlerCall, PyJob};
use crate::python::logging::log_exception;
use crate::python::reply_batch::{self, ReplyBatch};
use crate::python::response::HttpResponse;

/// How a waiter of `drain()` or `wait_closed()` ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Woken {
    Ready,
    /// The client is gone (`drain()` raises `ConnectionError`).
    Gone,
}

/// What the loop thread is sent.
pub enum LoopWork {
    Job(Box<PyJob>),
    /// The wait of waiter `id` is over.
    Wake(u64, Woken),
    /// The server has stopped: detach from the loop (and end it, if it is the server's own).
    Stop,
}

/// The sending side, shared with connection tasks and runtime tasks: nothing in it is
/// Python, so dropping it anywhere is fine.
pub struct LoopSender {
    sender: Sender<LoopWork>,
    /// A wake-up byte is in the socket pair, not yet read: later senders need not write.
    signalled: AtomicBool,
    wake: UnixStream,
    /// Wake-ups written and jobs sent, for `server._event_loop_stats()`.
    wakeups: AtomicU64,
    jobs: AtomicU64,
}

impl LoopSender {
    /// Sends `work` to the loop; `false` once the loop has gone.
    pub fn send(&self, work: LoopWork) -> bool {
        let is_job = matches!(work, LoopWork::Job(_));
        if self.sender.send(work).is_err() {
            return false;
        }
        if is_job {
            self.jobs.fetch_add(1, Ordering::Relaxed);
        }
        self.signal();
        true
    }

    /// Wakes the loop unless a wake-up is already pending.
    fn signal(&self) {
        if !self.signalled.swap(true, Ordering::AcqRel) {
            self.wakeups.fetch_add(1, Ordering::Relaxed);
            // Non-blocking: a full socket buffer already holds a wake-up byte.
            let _ = (&self.wake).write(&[1]);
        }
    }
}

/// What the loop thread holds while attached.
#[derive(Default)]
struct Attached {
    event_loop: Option<Py<PyAny>>,
    /// Resolved when the server stops (`await server.serve()` returns).
    stopped: Option<Py<PyAny>>,
    /// The futures of `drain()` and `wait_closed()` calls, by waiter id.
    waiters: HashMap<u64, Py<PyAny>>,
    /// The handler tasks waiting (asyncio itself keeps only weak references to tasks); a
    /// task that ends in its first step is never in it.
    tasks: Option<Py<PySet>>,
    /// What the loop calls to hand the held answers over (see [`EventLoop::hand_over`]).
    flush: Option<Py<Flush>>,
    /// `{"loop": event_loop, "eager_start": True}`, the keywords of every eager task
    /// (Python 3.12 and later), made once.
    eager_keywords: Option<Py<PyDict>>,
}

/// The receiving side: lives with the server, used on the loop thread.
pub struct EventLoop {
    pub sender: Arc<LoopSender>,
    receiver: Receiver<LoopWork>,
    wake: UnixStream,
    runtime: tokio::runtime::Handle,
    attached: Mutex<Attached>,
    next_waiter: AtomicU64,
    /// The thread running the server's own loop, and the channel that disconnects when it
    /// ends.
    own_thread: Mutex<Option<(JoinHandle<()>, Receiver<()>)>>,
    /// The id of the thread the loop runs on, once attached.
    loop_thread: Mutex<Option<std::thread::ThreadId>>,
    /// The answers made on the loop thread and not yet handed to the runtime.
    replies: Arc<ReplyBatch>,
    /// Wakes the runtime task that sends the held answers (see [`EventLoop::hand_over`]).
    deliver: Arc<tokio::sync::Notify>,
    /// A call of [`Flush`] is scheduled on the loop (loop thread only).
    flush_scheduled: AtomicBool,
}

/// Most messages one wake-up runs before the loop's other work gets its turn.
const MAX_BATCH: usize = 1024;

thread_local! {
    /// The event loops attached on this thread (usually one).
    static ATTACHED: RefCell<Vec<Arc<EventLoop>>> = const { RefCell::new(Vec::new()) };
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl EventLoop {
    pub fn new(runtime: tokio::runtime::Handle) -> std::io::Result<Arc<EventLoop>> {
        let (wake_read, wake_write) = UnixStream::pair()?;
        wake_read.set_nonblocking(true)?;
        wake_write.set_nonblocking(true)?;
        let (sender, receiver) = crossbeam_channel::unbounded();
        let replies = ReplyBatch::new();
        let deliver = Arc::new(tokio::sync::Notify::new());
        {
            // Sent from inside the runtime, a oneshot's wake-up is a push on the scheduler's
            // run queue; from the loop thread it would write the I/O driver's eventfd, once
            // per answer. This task makes it one remote wake-up per batch.
            let (replies, deliver) = (replies.clone(), deliver.clone());
            runtime.spawn(async move {
                loop {
                    deliver.notified().await;
                    replies.deliver();
                }
            });
        }
        Ok(Arc::new(EventLoop {
            sender: Arc::new(LoopSender {
                sender,
                signalled: AtomicBool::new(false),
                wake: wake_write,
                wakeups: AtomicU64::new(0),
                jobs: AtomicU64::new(0),
            }),
            receiver,
            wake: wake_read,
            runtime,
            attached: Mutex::new(Attached::default()),
            next_waiter: AtomicU64::new(1),
            own_thread: Mutex::new(None),
            loop_thread: Mutex::new(None),
            replies,
            deliver,
            flush_scheduled: AtomicBool::new(false),
        }))
    }

    /// `(wake-ups, jobs)` so far: how well requests are batched.
    pub fn stats(&self) -> (u64, u64) {
        (
            self.sender.wakeups.load(Ordering::Relaxed),
            self.sender.jobs.load(Ordering::Relaxed),
        )
    }

    pub fn is_attached(&self) -> bool {
        lock(&self.attached).event_loop.is_some()
    }

    pub fn has_own_thread(&self) -> bool {
        lock(&self.own_thread).is_some()
    }

    /// Whether the calling thread runs this loop.
    pub fn on_loop_thread(&self) -> bool {
        *lock(&self.loop_thread) == Some(std::thread::current().id())
    }

    /// The loop it is attached to, if any.
    pub fn event_loop(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        lock(&self.attached)
            .event_loop
            .as_ref()
            .map(|event_loop| event_loop.clone_ref(py))
    }

    /// Attaches to `event_loop` (on its thread): from now on the loop runs the coroutine
    /// handlers. Returns the future that completes when the server stops. Attaching again
    /// to the same loop returns the same future.
    pub fn attach<'py>(
        self: &Arc<Self>,
        py: Python<'py>,
        event_loop: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        {
            // No Python while the lock is held (another thread may wait for it attached).
            let attached = lock(&self.attached);
            if let (Some(current), Some(stopped)) = (&attached.event_loop, &attached.stopped) {
                if current.bind(py).is(event_loop) {
                    return Ok(stopped.bind(py).clone());
                }
                return Err(PyRuntimeError::new_err(
                    "the server already runs its coroutine handlers on another event loop",
                ));
            }
        }
        let stopped = event_loop.call_method0("create_future")?;
        let tasks = PySet::empty(py)?.unbind();
        let bridge = Py::new(
            py,
            Bridge {
                inner: self.clone(),
            },
        )?;
        let flush = Py::new(
            py,
            Flush {
                inner: self.clone(),
            },
        )?;
        let eager_keywords = if py.version_info() >= (3, 12) {
            let keywords = PyDict::new(py);
            keywords.set_item("loop", event_loop)?;
            keywords.set_item("eager_start", true)?;
            Some(keywords.unbind())
        } else {
            None
        };
        event_loop.call_method1("add_reader", (self.wake.as_raw_fd(), bridge))?;
        {
            let mut attached = lock(&self.attached);
            attached.event_loop = Some(event_loop.clone().unbind());
            attached.stopped = Some(stopped.clone().unbind());
            attached.tasks = Some(tasks);
            attached.flush = Some(flush);
            attached.eager_keywords = eager_keywords;
        }
        *lock(&self.loop_thread) = Some(std::thread::current().id());
        ATTACHED.with(|loops| loops.borrow_mut().push(self.clone()));
        Ok(stopped)
    }

    /// On the loop thread: stops watching, resolves `stopped` and every waiter.
    fn detach(self: &Arc<Self>, py: Python<'_>) {
        // A flush still queued may never run (the loop may end first): hand over now, and
        // let the next loop attached queue its own.
        self.flush_scheduled.store(false, Ordering::Relaxed);
        self.hand_over();
        let attached = std::mem::take(&mut *lock(&self.attached));
        ATTACHED.with(|loops| loops.borrow_mut().retain(|other| !Arc::ptr_eq(other, self)));
        *lock(&self.loop_thread) = None;
        if let Some(event_loop) = &attached.event_loop {
            if let Err(error) = event_loop
                .bind(py)
                .call_method1("remove_reader", (self.wake.as_raw_fd(),))
            {
                log_exception(py, "could not detach from the event loop", &error);
            }
        }
        for future in attached.waiters.into_values().chain(attached.stopped) {
            resolve(py, future.bind(py), Woken::Ready);
        }
        // Handlers still running past `shutdown_grace` have nobody to answer any more.
        if let Some(tasks) = attached.tasks {
            for task in tasks.bind(py).iter() {
                if let Err(error) = task.call_method0("cancel") {
                    log_exception(py, "could not cancel a coroutine handler", &error);
                }
            }
        }
    }

    /// Runs everything ready: called by the loop when the socket pair is readable.
    fn run_ready(self: &Arc<Self>, py: Python<'_>) {
        let mut sink = [0u8; 64];
        while matches!((&self.wake).read(&mut sink), Ok(n) if n > 0) {}
        // From here on a new job writes a new wake-up byte; every job sent before this
        // point is taken by the loop below.
        self.sender.signalled.store(false, Ordering::SeqCst);
        let round = Round::of(py, &lock(&self.attached));
        let Some(round) = round else {
            return;
        };
        // The answers of the handlers that end right here (eager tasks) go together.
        let (scheduled, more) = reply_batch::holding(&self.replies, || self.run_batch(py, &round));
        if scheduled {
            // First steps were scheduled (before 3.12): they hold their answers too, and
            // the flush queued behind them hands them over with these.
            self.schedule_flush(py, &round);
        } else if !self.flush_scheduled.load(Ordering::Relaxed) {
            self.hand_over();
        }
        if more {
            // More may wait: let the loop's other callbacks run first, then come back.
            self.sender.signal();
        }
    }

    /// Takes up to [`MAX_BATCH`] messages: whether a task was scheduled, whether more may
    /// wait.
    fn run_batch(self: &Arc<Self>, py: Python<'_>, round: &Round) -> (bool, bool) {
        let mut scheduled = false;
        for _ in 0..MAX_BATCH {
            match self.receiver.try_recv() {
                Ok(LoopWork::Job(job)) => scheduled |= self.start_job(py, round, *job),
                Ok(LoopWork::Wake(id, woken)) => {
                    let future = lock(&self.attached).waiters.remove(&id);
                    if let Some(future) = future {
                        resolve(py, future.bind(py), woken);
                    }
                }
                Ok(LoopWork::Stop) => {
                    self.detach(py);
                    return (false, false);
                }
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => return (scheduled, false),
            }
        }
        (scheduled, true)
    }

    /// Hands every answer held to the runtime: one wake-up of its delivery task, which
    /// sends them from inside (a oneshot's wake-up there is a push on the run queue, not a
    /// write to the I/O driver's eventfd per answer).
    fn hand_over(&self) {
        if !self.replies.is_empty() {
            self.deliver.notify_one();
        }
    }

    /// Queues one call of [`Flush`] on the loop, behind the task steps already scheduled,
    /// unless one is queued already; if the loop refuses (closed), hands over at once.
    fn schedule_flush(&self, py: Python<'_>, round: &Round) {
        if self.flush_scheduled.swap(true, Ordering::Relaxed) {
            return;
        }
        let queued = round
            .event_loop
            .bind(py)
            .call_method1(intern!(py, "call_soon"), (round.flush.bind(py),));
        if queued.is_err() {
            self.flush_scheduled.store(false, Ordering::Relaxed);
            self.hand_over();
        }
    }

    /// Runs one step of a handler's coroutine (`step`) with its answers held; outside a
    /// batch of `run_ready`, a flush is queued to hand them over with the other steps'.
    fn step<R>(self: &Arc<Self>, py: Python<'_>, step: impl FnOnce() -> R) -> R {
        if reply_batch::current().is_some() {
            // Inside `run_ready` (an eager first step): its batch holds and hands over.
            return step();
        }
        let result = reply_batch::holding(&self.replies, step);
        if !self.replies.is_empty() {
            let round = Round::of(py, &lock(&self.attached));
            match round {
                Some(round) => self.schedule_flush(py, &round),
                None => self.hand_over(),
            }
        }
        result
    }

    /// Calls a coroutine handler and runs its coroutine as a task: whether its first step
    /// is left scheduled (before Python 3.12, where tasks do not start eagerly).
    fn start_job(self: &Arc<Self>, py: Python<'_>, round: &Round, job: PyJob) -> bool {
        let Some(call) = call_handler(py, job) else {
            return false;
        };
        let HandlerCall {
            method,
            response,
            outcome,
        } = call;
        let started = outcome.and_then(|coroutine| {
            let steps = coroutine
                .bind(py)
                .call_method0(intern!(py, "__await__"))?
                .cast_into::<PyIterator>()?;
            let coroutine = Py::new(
                py,
                HandlerCoroutine {
                    steps: Some(steps.unbind()),
                    response: Some(response.clone_ref(py)),
                    name: method.handler_name(),
                    task: None,
                    event_loop: self.clone(),
                },
            )?;
            let task = new_task(py, round, &coroutine)?;
            let mut state = coroutine.borrow_mut(py);
            if state.steps.is_none() {
                // Ended in its eager first step: nothing to watch.
                return Ok(false);
            }
            round.tasks.bind(py).add(&task)?;
            state.task = Some(task.unbind());
            // A task started eagerly holds its later answers itself (`EventLoop::step`);
            // one merely scheduled has its first step still to come, before the flush.
            Ok(round.eager_keywords.is_none())
        });
        match started {
            Ok(scheduled) => scheduled,
            Err(error) => {
                let message = format!(
                    "{} raised while handling {}",
                    method.handler_name(),
                    response.get().describe()
                );
                answer_handler_error(py, response.get(), &message, &error);
                false
            }
        }
        // If the task holds the last reference when it ends, its end answers 500 (see Drop).
    }

    /// Starts the server's own loop on a thread of its own (`start()`, `serve_forever()`).
    pub fn start_own_loop(self: &Arc<Self>) -> std::io::Result<()> {
        let mut own_thread = lock(&self.own_thread);
        if own_thread.is_some() {
            return Ok(());
        }
        let (exit_guard, exited) = crossbeam_channel::bounded::<()>(0);
        let bridge = self.clone();
        let thread = std::thread::Builder::new()
            .name("godottpd-asyncio".into())
            .spawn(move || {
                Python::attach(|py| {
                    let outcome = Py::new(py, Bridge { inner: bridge }).and_then(|bridge| {
                        py.import("godottpd._asyncio")?
                            .call_method1("run_own_loop", (bridge,))
                            .map(drop)
                    });
                    if let Err(error) = outcome {
                        log_exception(py, "the server's event loop failed", &error);
                    }
                });
                drop(exit_guard);
            })?;
        *own_thread = Some((thread, exited));
        Ok(())
    }

    /// Tells the loop the server has stopped; waits (call detached) up to `deadline` for
    /// the server's own loop thread to end.
    pub fn stop(&self, deadline: Instant) {
        self.sender.send(LoopWork::Stop);
        let own_thread = lock(&self.own_thread).take();
        if let Some((thread, exited)) = own_thread {
            if thread.thread().id() == std::thread::current().id() {
                return;
            }
            loop {
                match exited.recv_deadline(deadline) {
                    Ok(()) => continue,
                    Err(RecvTimeoutError::Disconnected) => {
                        let _ = thread.join();
                        return;
                    }
                    Err(RecvTimeoutError::Timeout) => return,
                }
            }
        }
    }

    /// A future of the running loop that completes when `wait` (run on the runtime) does.
    fn future_for<'py>(
        self: &Arc<Self>,
        py: Python<'py>,
        wait: impl Future<Output = Woken> + Send + 'static,
    ) -> PyResult<Bound<'py, PyAny>> {
        let Some(event_loop) = self.event_loop(py) else {
            return Err(not_on_loop());
        };
        let future = event_loop.bind(py).call_method0("create_future")?;
        let id = self.next_waiter.fetch_add(1, Ordering::Relaxed);
        lock(&self.attached)
            .waiters
            .insert(id, future.clone().unbind());
        let sender = self.sender.clone();
        self.runtime.spawn(async move {
            let woken = wait.await;
            sender.send(LoopWork::Wake(id, woken));
        });
        Ok(future)
    }
}

fn not_on_loop() -> PyErr {
    PyRuntimeError::new_err(
        "await this in a coroutine on the server's event loop (a coroutine handler's)",
    )
}

/// Completes an asyncio future unless it is done already (cancelled by its awaiter).
fn resolve(py: Python<'_>, future: &Bound<'_, PyAny>, woken: Woken) {
    let outcome = future.call_method0("done").and_then(|done| {
        if done.is_truthy()? {
            return Ok(());
        }
        match woken {
            Woken::Ready => future.call_method1("set_result", (py.None(),)).map(drop),
            Woken::Gone => future
                .call_method1("set_exception", (gone_error(py),))
                .map(drop),
        }
    });
    if let Err(error) = outcome {
        log_exception(py, "could not complete a waiting coroutine", &error);
    }
}

fn gone_error(py: Python<'_>) -> Py<PyAny> {
    PyConnectionError::new_err("the client has closed the connection")
        .into_value(py)
        .into_any()
}

/// What one batch of `run_ready` uses of the attached state, taken out of its lock (no
/// Python runs under it).
struct Round {
    event_loop: Py<PyAny>,
    tasks: Py<PySet>,
    flush: Py<Flush>,
    eager_keywords: Option<Py<PyDict>>,
}

impl Round {
    fn of(py: Python<'_>, attached: &Attached) -> Option<Round> {
        Some(Round {
            event_loop: attached.event_loop.as_ref()?.clone_ref(py),
            tasks: attached.tasks.as_ref()?.clone_ref(py),
            flush: attached.flush.as_ref()?.clone_ref(py),
            eager_keywords: attached
                .eager_keywords
                .as_ref()
                .map(|keywords| keywords.clone_ref(py)),
        })
    }
}

/// A task running `coroutine` on the round's loop. From Python 3.12 it starts eagerly: the
/// handler runs at once, up to its first real wait, and one that never waits is done
/// without ever being scheduled (`asyncio.Task(..., eager_start=True)`).
fn new_task<'py>(
    py: Python<'py>,
    round: &Round,
    coroutine: &Py<HandlerCoroutine>,
) -> PyResult<Bound<'py, PyAny>> {
    static TASK: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    match &round.eager_keywords {
        Some(keywords) => {
            let task_class = TASK.get_or_try_init(py, || {
                Ok::<_, PyErr>(py.import("asyncio")?.getattr("Task")?.unbind())
            })?;
            // The same keywords dict for every task: a call never keeps or changes it.
            task_class
                .bind(py)
                .call((coroutine,), Some(keywords.bind(py)))
        }
        None => round
            .event_loop
            .bind(py)
            .call_method1(intern!(py, "create_task"), (coroutine,)),
    }
}

/// A handler's coroutine as its task runs it: each step is the coroutine's, with its
/// answers held for the batch (see [`EventLoop::step`]); when the coroutine ends, this ends
/// the request: an exception answers `400` or `500` (as for a sync handler: logged, and
/// then not the task's, so asyncio never reports it as unretrieved), a response left
/// unsent answers `500` once the last reference goes. Cancellation passes through: the
/// task ends cancelled, as at a stop past `shutdown_grace`.
#[pyclass(module = "godottpd._godottpd")]
pub struct HandlerCoroutine {
    /// The coroutine's `__await__()` iterator, until it ends.
    steps: Option<Py<PyIterator>>,
    response: Option<Py<HttpResponse>>,
    name: &'static str,
    /// Its task, once it is waiting (in the loop's set of waiting tasks until it ends).
    task: Option<Py<PyAny>>,
    event_loop: Arc<EventLoop>,
}

/// How a step of a handler's coroutine came out.
enum Stepped {
    Yielded(Py<PyAny>),
    Returned,
    /// Ended by `StopIteration` from `throw()` or `send()`: raised on as it is.
    Stopped(PyErr),
    Raised(PyErr),
}

#[pymethods]
impl HandlerCoroutine {
    fn __await__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// One step, as the task takes it (`PyIter_Send` with `None` is `__next__`).
    fn __next__(&mut self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        self.run(py, |steps| match steps.bind(py).clone().next() {
            Some(Ok(yielded)) => Stepped::Yielded(yielded.unbind()),
            Some(Err(error)) => Stepped::Raised(error),
            None => Stepped::Returned,
        })
        .map(Some)
        .or_else(|error| match error {
            // Returned: exhausted, which `__next__` says with no exception at all.
            None => Ok(None),
            Some(error) => Err(error),
        })
    }

    fn send(&mut self, py: Python<'_>, value: Py<PyAny>) -> PyResult<Py<PyAny>> {
        self.forward(py, intern!(py, "send"), vec![value])
    }

    #[pyo3(signature = (kind, value=None, traceback=None))]
    fn throw(
        &mut self,
        py: Python<'_>,
        kind: Py<PyAny>,
        value: Option<Py<PyAny>>,
        traceback: Option<Py<PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let name = intern!(py, "throw");
        let args = match (value, traceback) {
            (None, None) => vec![kind],
            (value, traceback) => vec![
                kind,
                value.unwrap_or_else(|| py.None()),
                traceback.unwrap_or_else(|| py.None()),
            ],
        };
        self.forward(py, name, args)
    }

    fn close(&mut self, py: Python<'_>) -> PyResult<()> {
        if let Some(steps) = self.steps.take() {
            steps.bind(py).call_method0(intern!(py, "close"))?;
        }
        self.end(py, None);
        Ok(())
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.steps)?;
        visit.call(&self.response)?;
        visit.call(&self.task)
    }

    fn __clear__(&mut self) {
        self.steps = None;
        self.task = None;
    }
}

impl HandlerCoroutine {
    /// `send()` or `throw()` passed on to the coroutine's iterator.
    fn forward(
        &mut self,
        py: Python<'_>,
        name: &Bound<'_, pyo3::types::PyString>,
        args: Vec<Py<PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let args = PyTuple::new(py, args)?;
        self.run(py, |steps| match steps.bind(py).call_method1(name, args) {
            Ok(yielded) => Stepped::Yielded(yielded.unbind()),
            Err(error) if error.is_instance_of::<PyStopIteration>(py) => Stepped::Stopped(error),
            Err(error) => Stepped::Raised(error),
        })
        .map_err(|error| error.unwrap_or_else(|| PyStopIteration::new_err(())))
    }

    /// Runs one step; `Err(None)` when the coroutine returned.
    fn run(
        &mut self,
        py: Python<'_>,
        step: impl FnOnce(&Py<PyIterator>) -> Stepped,
    ) -> Result<Py<PyAny>, Option<PyErr>> {
        let Some(steps) = self.steps.as_ref().map(|steps| steps.clone_ref(py)) else {
            return Err(None);
        };
        let event_loop = self.event_loop.clone();
        event_loop.step(py, || match step(&steps) {
            Stepped::Yielded(yielded) => Ok(yielded),
            Stepped::Returned => {
                self.end(py, None);
                Err(None)
            }
            Stepped::Stopped(stop) => {
                self.end(py, None);
                Err(Some(stop))
            }
            Stepped::Raised(error) => {
                self.end(py, Some(&error));
                // An exception answered is the handler's last word; a cancellation (or
                // KeyboardInterrupt, SystemExit) goes on to the task.
                if error.is_instance_of::<PyException>(py) {
                    Err(None)
                } else {
                    Err(Some(error))
                }
            }
        })
    }

    /// The coroutine has ended (with `error`, if it raised one): answers for it, leaves
    /// the set of waiting tasks.
    fn end(&mut self, py: Python<'_>, error: Option<&PyErr>) {
        self.steps = None;
        let response = self.response.take();
        if let (Some(response), Some(error)) = (&response, error) {
            if !is_cancelled(py, error) {
                let message = format!(
                    "{} raised while handling {}",
                    self.name,
                    response.get().describe()
                );
                answer_handler_error(py, response.get(), &message, error);
            }
        }
        if let Some(task) = self.task.take() {
            let tasks = lock(&self.event_loop.attached)
                .tasks
                .as_ref()
                .map(|tasks| tasks.clone_ref(py));
            if let Some(tasks) = tasks {
                if let Err(error) = tasks.bind(py).discard(task.bind(py)) {
                    log_exception(py, "could not forget a coroutine handler", &error);
                }
            }
        }
        // Dropped here, inside the step: an unsent response's 500 is held with the rest.
        drop(response);
    }
}

fn is_cancelled(py: Python<'_>, error: &PyErr) -> bool {
    static CANCELLED: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    CANCELLED
        .get_or_try_init(py, || {
            Ok::<_, PyErr>(py.import("asyncio")?.getattr("CancelledError")?.unbind())
        })
        .and_then(|cancelled| error.value(py).is_instance(cancelled.bind(py)))
        .unwrap_or(false)
}

/// Called by the loop once the task steps queued before it have run: hands their answers
/// to the runtime together.
#[pyclass(frozen, module = "godottpd._godottpd")]
pub struct Flush {
    inner: Arc<EventLoop>,
}

#[pymethods]
impl Flush {
    fn __call__(&self) {
        self.inner.flush_scheduled.store(false, Ordering::Relaxed);
        self.inner.hand_over();
    }
}

/// The loop's side of the bridge: called by the loop when a wake-up byte is readable
/// (`__call__`), and how `godottpd._asyncio` attaches a loop (`attach`).
#[pyclass(frozen, module = "godottpd._godottpd")]
pub struct Bridge {
    inner: Arc<EventLoop>,
}

#[pymethods]
impl Bridge {
    fn __call__(&self, py: Python<'_>) {
        self.inner.run_ready(py);
    }

    /// Attaches to ``event_loop``; returns the future that completes when the server stops.
    fn attach<'py>(
        &self,
        py: Python<'py>,
        event_loop: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.inner.attach(py, event_loop)
    }
}

/// The most recently attached loop of this thread, if this thread runs one.
fn current() -> Option<Arc<EventLoop>> {
    ATTACHED.with(|loops| loops.borrow().last().cloned())
}

/// Whether the calling thread runs an asyncio event loop right now (where `write()` must
/// never block).
pub fn on_event_loop(py: Python<'_>) -> bool {
    static GET_RUNNING_LOOP: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    if current().is_some() {
        return true;
    }
    GET_RUNNING_LOOP
        .get_or_try_init(py, || {
            Ok::<_, PyErr>(py.import("asyncio")?.getattr("_get_running_loop")?.unbind())
        })
        .and_then(|get| get.call0(py))
        .map(|running| !running.is_none(py))
        .unwrap_or(false)
}

/// A future on this thread's loop, done at once.
fn ready_future<'py>(py: Python<'py>, event_loop: &Py<PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let future = event_loop.bind(py).call_method0("create_future")?;
    future.call_method1("set_result", (py.None(),))?;
    Ok(future)
}

/// The awaitable of `await stream.drain()`: done once `room` (run on the runtime) is.
pub fn drain<'py>(
    py: Python<'py>,
    needed: bool,
    room: impl Future<Output = Woken> + Send + 'static,
) -> PyResult<Bound<'py, PyAny>> {
    let bridge = current().ok_or_else(not_on_loop)?;
    if !needed {
        let event_loop = bridge.event_loop(py).ok_or_else(not_on_loop)?;
        return ready_future(py, &event_loop);
    }
    bridge.future_for(py, room)
}

/// The awaitable of `await client.wait_closed()`.
pub fn wait_closed<'py>(
    py: Python<'py>,
    connection: Arc<crate::app::exchange::ConnectionInfo>,
) -> PyResult<Bound<'py, PyAny>> {
    let bridge = current().ok_or_else(not_on_loop)?;
    if !connection.is_open() {
        let event_loop = bridge.event_loop(py).ok_or_else(not_on_loop)?;
        return ready_future(py, &event_loop);
    }
    bridge.future_for(py, async move {
        connection.closed().await;
        Woken::Ready
    })
}
