//! Coroutine handlers (`async def`) on an asyncio event loop, and the bridge that feeds it.
//!
//! Connection tasks never touch Python, so they cannot call `loop.call_soon_threadsafe`.
//! Instead a request for a coroutine handler goes on a channel, and the first request of a
//! batch writes one byte to a socket pair whose other end the loop watches with
//! `add_reader`. When the loop wakes, [`Bridge::__call__`] reads the byte, takes every
//! request that is ready (however many arrived meanwhile: one wake-up for all), calls each
//! handler and runs the coroutine as a task. The answer goes back to the connection through
//! the request's own oneshot reply, from the loop thread, as for a sync handler.
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
use pyo3::exceptions::{PyConnectionError, PyRuntimeError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PySet;

use crate::python::errors::answer_handler_error;
use crate::python::handler_threads::{call_handler, HandlerCall, PyJob};
use crate::python::logging::log_exception;
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
    /// The handler tasks running (asyncio itself keeps only weak references to tasks).
    tasks: Option<Py<PySet>>,
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
        event_loop.call_method1("add_reader", (self.wake.as_raw_fd(), bridge))?;
        {
            let mut attached = lock(&self.attached);
            attached.event_loop = Some(event_loop.clone().unbind());
            attached.stopped = Some(stopped.clone().unbind());
            attached.tasks = Some(tasks);
        }
        *lock(&self.loop_thread) = Some(std::thread::current().id());
        ATTACHED.with(|loops| loops.borrow_mut().push(self.clone()));
        Ok(stopped)
    }

    /// On the loop thread: stops watching, resolves `stopped` and every waiter.
    fn detach(self: &Arc<Self>, py: Python<'_>) {
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
        let (event_loop, tasks) = {
            let attached = lock(&self.attached);
            match (&attached.event_loop, &attached.tasks) {
                (Some(event_loop), Some(tasks)) => (event_loop.clone_ref(py), tasks.clone_ref(py)),
                _ => return,
            }
        };
        let event_loop = event_loop.bind(py);
        for _ in 0..MAX_BATCH {
            match self.receiver.try_recv() {
                Ok(LoopWork::Job(job)) => start_job(py, event_loop, &tasks, *job),
                Ok(LoopWork::Wake(id, woken)) => {
                    let future = lock(&self.attached).waiters.remove(&id);
                    if let Some(future) = future {
                        resolve(py, future.bind(py), woken);
                    }
                }
                Ok(LoopWork::Stop) => return self.detach(py),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => return,
            }
        }
        // More may wait: let the loop's other callbacks run first, then come back.
        self.sender.signal();
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

/// Calls a coroutine handler and runs its coroutine as a task on `event_loop`.
fn start_job(py: Python<'_>, event_loop: &Bound<'_, PyAny>, tasks: &Py<PySet>, job: PyJob) {
    let Some(call) = call_handler(py, job) else {
        return;
    };
    let task = match call
        .outcome
        .as_ref()
        .map_err(|error| error.clone_ref(py))
        .and_then(|coroutine| new_task(py, event_loop, coroutine.clone_ref(py)))
    {
        Ok(task) => task,
        Err(error) => {
            let message = call.failure_message();
            return answer_handler_error(py, call.response.get(), &message, &error);
        }
    };
    let HandlerCall {
        method, response, ..
    } = call;
    let done = HandlerDone {
        response: Mutex::new(Some(response.clone_ref(py))),
        name: method.handler_name(),
        tasks: tasks.clone_ref(py),
    };
    let done = match task.call_method0("done").and_then(|done| done.is_truthy()) {
        // Started eagerly and already finished (it never had to wait): no callback needed.
        Ok(true) => done.finish(py, &task),
        _ => Py::new(py, done)
            .and_then(|done| task.call_method1("add_done_callback", (done,)))
            .and_then(|_| tasks.bind(py).add(&task)),
    };
    if let Err(error) = done {
        log_exception(py, "could not watch a coroutine handler", &error);
    }
    // If the task holds the last reference when it ends, its end answers 500 (see Drop).
    drop(response);
}

/// A task running `coroutine` on `event_loop`. From Python 3.12 it starts eagerly: the
/// handler runs at once, up to its first real wait, and one that never waits is done
/// without ever being scheduled (`asyncio.Task(..., eager_start=True)`).
fn new_task<'py>(
    py: Python<'py>,
    event_loop: &Bound<'py, PyAny>,
    coroutine: Py<PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    static EAGER_TASK: PyOnceLock<Option<Py<PyAny>>> = PyOnceLock::new();
    let eager = EAGER_TASK.get_or_try_init(py, || {
        if py.version_info() < (3, 12) {
            return Ok::<_, PyErr>(None);
        }
        Ok(Some(py.import("asyncio")?.getattr("Task")?.unbind()))
    })?;
    match eager {
        Some(task_class) => {
            let kwargs = pyo3::types::PyDict::new(py);
            kwargs.set_item("loop", event_loop)?;
            kwargs.set_item("eager_start", true)?;
            task_class.bind(py).call((coroutine,), Some(&kwargs))
        }
        None => event_loop.call_method1("create_task", (coroutine,)),
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

/// A coroutine handler's task ended: an exception answers 400 or 500 (as for a sync
/// handler); a response left unsent answers 500 once the last reference goes.
#[pyclass(frozen, module = "godottpd._godottpd")]
struct HandlerDone {
    response: Mutex<Option<Py<HttpResponse>>>,
    name: &'static str,
    /// The running tasks, which this one leaves.
    tasks: Py<PySet>,
}

#[pymethods]
impl HandlerDone {
    fn __call__(&self, py: Python<'_>, task: &Bound<'_, PyAny>) -> PyResult<()> {
        self.finish(py, task)
    }
}

impl HandlerDone {
    fn finish(&self, py: Python<'_>, task: &Bound<'_, PyAny>) -> PyResult<()> {
        let Some(response) = lock(&self.response).take() else {
            return Ok(());
        };
        self.tasks.bind(py).discard(task)?;
        if !task.call_method0("cancelled")?.is_truthy()? {
            let exception = task.call_method0("exception")?;
            if !exception.is_none() {
                let error = PyErr::from_value(exception);
                let message = format!(
                    "{} raised while handling {}",
                    self.name,
                    response.get().describe()
                );
                answer_handler_error(py, response.get(), &message, &error);
            }
        }
        drop(response);
        Ok(())
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
