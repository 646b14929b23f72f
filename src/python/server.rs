//! `HttpServer`: configuration, lifecycle (start, stop, serve_forever, poll) and routes.

use crossbeam_channel::{unbounded as channel, Receiver, Sender};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use pyo3::exceptions::{PyOSError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyString, PyTuple};

use crate::app::config::{LiveConfig, Target};
use crate::app::cors::Cors;
use crate::app::exchange::{AccessEvent, StopSignal};
use crate::app::forwarded::{ProxySettings, TrustedProxies};
use crate::app::routes::Pattern;
use crate::http::limits::{Limits, MAX_HEADERS_CEILING};
use crate::http::token::is_field_value;
use crate::io::engine::Engine;
use crate::io::listener::accept_loop;
use crate::io::tls::acceptor::TlsAcceptor;
use crate::python::access_log::{debug_enabled, log_thread};
use crate::python::arguments::{self, MAX_HANDLER_THREADS, MAX_IO_THREADS, MAX_STREAM_BUFFER};
use crate::python::event_loop::{EventLoop, LoopWork};
use crate::python::file_router::HttpFileRouter;
use crate::python::handler_threads::{wait_and_run, HandlerPool, PythonApp, Work};
use crate::python::handoff::Handoff;
use crate::python::router::{HttpRouter, PyRoute};
use crate::python::tls::{file_error, load_acceptor};
use crate::python::type_name::type_name;
use crate::python::waiting::poll_jobs;
use crate::python::workers::{self, ListenSource};

/// How long a body may arrive at any rate before `min_body_rate` applies.
const BODY_RATE_GRACE: Duration = Duration::from_secs(5);

/// How often a blocking call wakes up to let Ctrl-C through.
const SIGNAL_CHECK_INTERVAL: Duration = Duration::from_millis(50);

struct Settings {
    port: u16,
    bind_address: String,
    /// The inherited socket (`socket=`), or how to bind (see `workers`).
    listen: ListenSource,
}

/// Where Python handlers run: the three modes of `HttpServer(threaded=..., handler_threads=...)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HandlerMode {
    /// On the server's own handler threads (`threaded=True`, the default), this many.
    Threads(usize),
    /// On the I/O loop's one thread, between I/O rounds (`handler_threads=0`).
    Inline,
    /// On the caller's thread, in `poll()` or `serve_forever()` (`threaded=False`).
    Poll,
}

impl HandlerMode {
    fn new(threaded: bool, handler_threads: usize) -> HandlerMode {
        match (threaded, handler_threads) {
            (false, _) => HandlerMode::Poll,
            (true, 0) => HandlerMode::Inline,
            (true, count) => HandlerMode::Threads(count),
        }
    }
}

/// What runs handlers while the server runs, one variant per [`HandlerMode`].
enum Handlers {
    /// Handler threads taking turns at driving the (current-thread) runtime and running
    /// handlers, the role handed over when a handler runs long (`handoff`); the default.
    Handoff {
        pool: HandlerPool,
        handoff: Arc<Handoff>,
    },
    /// Handler threads, beside the runtime's I/O threads (with `io_threads` above 1).
    Threads {
        runtime: tokio::runtime::Runtime,
        pool: HandlerPool,
    },
    /// The loop thread, which owns the (current-thread) runtime.
    Inline { pool: HandlerPool },
    /// The callers of `poll()`, who take jobs from `jobs`.
    Poll {
        runtime: tokio::runtime::Runtime,
        jobs: Arc<Mutex<Receiver<Work>>>,
    },
}

struct Running {
    /// The listening socket, to stop accepting the moment `stop()` is called.
    listener_fd: std::os::fd::RawFd,
    engine: Arc<Engine<PythonApp>>,
    handlers: Handlers,
    /// Where coroutine handlers run: the caller's loop (`serve()`) or the server's own.
    event_loop: Arc<EventLoop>,
    /// With `access_log=True`: the channel and the thread that logs its records.
    access_log: Option<(Sender<AccessEvent>, std::thread::JoinHandle<()>)>,
}

impl Running {
    /// The poll-mode job receiver, if the server runs in poll mode.
    fn jobs(&self) -> Option<&Arc<Mutex<Receiver<Work>>>> {
        match &self.handlers {
            Handlers::Poll { jobs, .. } => Some(jobs),
            _ => None,
        }
    }
}

/// An HTTP/1.1 server. ``start()`` returns at once; the server runs on its own threads.
///
/// ``port`` is an ``int`` (a ``bool`` is a ``TypeError``), 0 picks a free port. Limits, past
/// which the client gets 414, 431, 413, 408 or 503 and the server carries on:
/// ``max_request_line`` (8192), ``max_head_size`` (16384), ``max_headers`` (100, at most
/// 256), ``max_body_size`` (10 MiB), ``header_timeout`` (10 s), ``body_timeout`` (30 s),
/// ``keepalive_timeout`` (5 s), ``write_timeout`` (30 s), ``max_connections`` (1024).
/// ``shutdown_grace`` (5 s) bounds ``stop()``; every timeout is at most 1e9 s.
/// ``io_threads`` (1, at most 64) own the sockets; ``handler_threads`` (8, at most 256; 0
/// runs handlers on the I/O thread) run Python; ``threaded=False`` runs them in ``poll()``.
/// A value out of range is a ``ValueError`` naming the argument and its bound.
/// ``min_body_rate`` (1024 bytes/s, 0: none) cuts a body that arrives slower on average once
/// 5 s have passed (408). ``trusted_proxies``: addresses or networks (``"10.0.0.0/8"``,
/// ``"*"``) whose forwarding headers are believed. ``proxy_protocol``: every connection
/// starts with a PROXY protocol v1/v2 header; one without is closed. ``socket``: serve
/// this already-listening socket (or file descriptor) instead of binding.
#[pyclass(frozen, module = "godottpd._godottpd")]
pub struct HttpServer {
    settings: Mutex<Settings>,
    limits: Limits,
    mode: HandlerMode,
    io_threads: usize,
    /// Log one line per response on the `godottpd.access` logger.
    access_log: bool,
    config: Arc<LiveConfig<PyRoute>>,
    running: Mutex<Option<Running>>,
    /// `trusted_proxies` and `proxy_protocol`.
    proxies: Arc<ProxySettings>,
    /// With `tls_cert` and `tls_key`: the server speaks only HTTPS.
    tls: Option<Arc<TlsAcceptor>>,
    /// A registered route has a coroutine handler: `start()` starts an event loop for it.
    coroutines: AtomicBool,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn positive_seconds(name: &str, seconds: f64) -> PyResult<Duration> {
    if !seconds.is_finite() || seconds <= 0.0 || seconds > 1e9 {
        return Err(PyValueError::new_err(format!(
            "{name} must be a positive number of seconds, not {seconds}"
        )));
    }
    Ok(Duration::from_secs_f64(seconds))
}

fn positive_count(name: &str, value: i64) -> PyResult<usize> {
    match usize::try_from(value) {
        Ok(count) if count > 0 => Ok(count),
        _ => Err(PyValueError::new_err(format!(
            "{name} must be a positive integer, not {value}"
        ))),
    }
}

fn check_identifier(identifier: &str) -> PyResult<()> {
    if !is_field_value(identifier.as_bytes()) {
        return Err(PyValueError::new_err(format!(
            "server identifier {identifier:?} holds a control character"
        )));
    }
    Ok(())
}

impl HttpServer {
    /// The poll-mode job receiver, if the server runs in poll mode.
    fn jobs(&self) -> Option<Arc<Mutex<Receiver<Work>>>> {
        lock(&self.running)
            .as_ref()
            .and_then(|running| running.jobs().cloned())
    }

    fn add_route(&self, pattern: Pattern, target: Target<PyRoute>) {
        self.config
            .routes
            .rcu(|table| table.with_route(pattern.clone(), target.clone()));
    }

    /// Waits (detached) until every connection has closed or `grace` has passed, running
    /// poll-mode jobs meanwhile so that their requests can finish.
    fn drain(
        &self,
        py: Python<'_>,
        engine: &Engine<PythonApp>,
        jobs: Option<&Arc<Mutex<Receiver<Work>>>>,
    ) {
        let deadline = Instant::now() + self.limits.shutdown_grace;
        while engine.open_connections() > 0 && Instant::now() < deadline {
            match jobs.and_then(|jobs| jobs.try_lock().ok()) {
                Some(receiver) => {
                    wait_and_run(py, &receiver, Duration::from_millis(5));
                }
                None => py.detach(|| std::thread::sleep(Duration::from_millis(5))),
            }
        }
    }
}

#[pymethods]
impl HttpServer {
    #[new]
    #[pyo3(
        text_signature = "(port=8080, bind_address='*', server_identifier='GodotTPD', *, \
        threaded=True, max_request_line=8192, max_head_size=16384, max_headers=100, \
        max_body_size=10485760, header_timeout=10.0, body_timeout=30.0, \
        keepalive_timeout=5.0, write_timeout=30.0, min_body_rate=1024, max_connections=1024, \
        shutdown_grace=5.0, io_threads=1, handler_threads=8, access_log=False, \
        trusted_proxies=None, proxy_protocol=False, socket=None, stream_buffer=262144, \
        tls_cert=None, tls_key=None)"
    )]
    #[pyo3(signature = (
        port = arguments::Port(8080),
        bind_address = "*",
        server_identifier = "GodotTPD",
        *,
        threaded = true,
        max_request_line = 8192,
        max_head_size = 16384,
        max_headers = 100,
        max_body_size = 10_485_760,
        header_timeout = 10.0,
        body_timeout = 30.0,
        keepalive_timeout = 5.0,
        write_timeout = 30.0,
        min_body_rate = 1024,
        max_connections = 1024,
        shutdown_grace = 5.0,
        io_threads = 1,
        handler_threads = 8,
        access_log = false,
        trusted_proxies = None,
        proxy_protocol = false,
        socket = None,
        stream_buffer = 262_144,
        tls_cert = None,
        tls_key = None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        port: arguments::Port,
        bind_address: &str,
        server_identifier: &str,
        threaded: bool,
        max_request_line: i64,
        max_head_size: i64,
        max_headers: i64,
        max_body_size: i64,
        header_timeout: f64,
        body_timeout: f64,
        keepalive_timeout: f64,
        write_timeout: f64,
        min_body_rate: i64,
        max_connections: i64,
        shutdown_grace: f64,
        io_threads: i64,
        handler_threads: i64,
        access_log: bool,
        trusted_proxies: Option<Vec<String>>,
        proxy_protocol: bool,
        socket: Option<&Bound<'_, PyAny>>,
        stream_buffer: i64,
        tls_cert: Option<std::path::PathBuf>,
        tls_key: Option<std::path::PathBuf>,
    ) -> PyResult<Self> {
        let trusted_proxies = trusted_proxies.unwrap_or_default();
        let trusted = TrustedProxies::parse(trusted_proxies.iter().map(String::as_str))
            .map_err(|entry| {
                PyValueError::new_err(format!(
                    "trusted_proxies: {entry:?} is not an address, a network (\"10.0.0.0/8\") or \"*\""
                ))
            })?;
        let inherited = socket.map(workers::inherited_socket).transpose()?;
        check_identifier(server_identifier)?;
        let max_headers = positive_count("max_headers", max_headers)?;
        if max_headers > MAX_HEADERS_CEILING {
            return Err(PyValueError::new_err(format!(
                "max_headers must be at most {MAX_HEADERS_CEILING}"
            )));
        }
        if bind_address.is_empty() {
            return Err(PyValueError::new_err(
                "bind_address must not be empty (use \"*\" for every address)",
            ));
        }
        let limits = Limits {
            max_request_line: positive_count("max_request_line", max_request_line)?,
            max_head_size: positive_count("max_head_size", max_head_size)?
                .min(u32::MAX as usize / 2),
            max_headers,
            max_body_size: u64::try_from(max_body_size).map_err(|_| {
                PyValueError::new_err(format!("max_body_size must be >= 0, not {max_body_size}"))
            })?,
            header_timeout: positive_seconds("header_timeout", header_timeout)?,
            body_timeout: positive_seconds("body_timeout", body_timeout)?,
            keepalive_timeout: positive_seconds("keepalive_timeout", keepalive_timeout)?,
            write_timeout: positive_seconds("write_timeout", write_timeout)?,
            min_body_rate: u64::try_from(min_body_rate).map_err(|_| {
                PyValueError::new_err(format!(
                    "min_body_rate must be >= 0 bytes per second, not {min_body_rate}"
                ))
            })?,
            body_rate_grace: BODY_RATE_GRACE,
            max_connections: positive_count("max_connections", max_connections)?,
            shutdown_grace: arguments::non_negative_seconds("shutdown_grace", shutdown_grace)?,
            stream_buffer: arguments::capped_count(
                "stream_buffer",
                stream_buffer,
                1,
                MAX_STREAM_BUFFER,
            )?,
        };
        Ok(HttpServer {
            settings: Mutex::new(Settings {
                port: port.0,
                bind_address: bind_address.to_owned(),
                listen: ListenSource {
                    inherited,
                    ..ListenSource::default()
                },
            }),
            proxies: Arc::new(ProxySettings {
                trusted,
                proxy_protocol,
            }),
            limits,
            mode: HandlerMode::new(
                threaded,
                arguments::capped_count(
                    "handler_threads",
                    handler_threads,
                    0,
                    MAX_HANDLER_THREADS,
                )?,
            ),
            io_threads: arguments::capped_count("io_threads", io_threads, 1, MAX_IO_THREADS)?,
            access_log,
            config: Arc::new(LiveConfig::new(server_identifier)),
            running: Mutex::new(None),
            tls: load_acceptor(tls_cert, tls_key)?,
            coroutines: AtomicBool::new(false),
        })
    }

    /// The port; once started, the one actually bound.
    #[getter]
    fn get_port(&self) -> u16 {
        lock(&self.settings).port
    }

    #[setter]
    fn set_port(&self, port: &Bound<'_, PyAny>) -> PyResult<()> {
        let port = arguments::port(port)?;
        if self.is_running() {
            return Err(PyRuntimeError::new_err(
                "cannot change the port of a running server",
            ));
        }
        lock(&self.settings).port = port;
        Ok(())
    }

    #[getter]
    fn get_bind_address(&self) -> String {
        lock(&self.settings).bind_address.clone()
    }

    #[setter]
    fn set_bind_address(&self, bind_address: &str) -> PyResult<()> {
        if self.is_running() {
            return Err(PyRuntimeError::new_err(
                "cannot change the bind address of a running server",
            ));
        }
        if bind_address.is_empty() {
            return Err(PyValueError::new_err("bind_address must not be empty"));
        }
        lock(&self.settings).bind_address = bind_address.to_owned();
        Ok(())
    }

    /// Sent as `Server` on every response; empty sends none.
    #[getter]
    fn get_server_identifier(&self) -> String {
        self.config.server_identifier.load().to_string()
    }

    #[setter]
    fn set_server_identifier(&self, identifier: &str) -> PyResult<()> {
        check_identifier(identifier)?;
        self.config
            .server_identifier
            .store(Arc::new(identifier.into()));
        Ok(())
    }

    #[getter]
    fn is_running(&self) -> bool {
        lock(&self.running).is_some()
    }

    /// Re-reads ``tls_cert`` and ``tls_key``; new connections use them, open ones carry on.
    ///
    /// Raises ``ValueError`` naming the file when one is missing, unreadable, not PEM, or
    /// the key does not match (the current certificate then stays), and ``RuntimeError``
    /// on a server without TLS.
    fn reload_tls(&self, py: Python<'_>) -> PyResult<()> {
        let Some(tls) = &self.tls else {
            return Err(PyRuntimeError::new_err(
                "reload_tls() needs a server made with tls_cert and tls_key",
            ));
        };
        py.detach(|| tls.reload()).map_err(file_error)
    }

    /// ``"https"`` for a server made with ``tls_cert`` and ``tls_key``, else ``"http"``.
    #[getter]
    fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// Whether handlers run on the server's thread (else in ``poll()``).
    #[getter]
    fn threaded(&self) -> bool {
        self.mode != HandlerMode::Poll
    }

    /// Adds a route; the first registered match wins.
    fn register_router(&self, path: &str, router: &Bound<'_, PyAny>) -> PyResult<()> {
        if let Ok(files) = router.cast::<HttpFileRouter>() {
            let pattern =
                Pattern::compile(path, true).map_err(|error| PyValueError::new_err(error.0))?;
            self.add_route(pattern, Target::Files(files.get().route.clone()));
            return Ok(());
        }
        let route = PyRoute::inspect(router)?;
        if !route.handles_any() && !router.is_instance_of::<HttpRouter>() {
            let type_name = type_name(router);
            return Err(PyTypeError::new_err(format!(
                "router must be an HttpRouter or have handle_* methods; {type_name} has none"
            )));
        }
        let pattern =
            Pattern::compile(path, false).map_err(|error| PyValueError::new_err(error.0))?;
        let coroutines = route.has_coroutines();
        self.add_route(pattern, Target::Handler(Arc::new(route)));
        if coroutines && !self.coroutines.swap(true, Ordering::AcqRel) {
            // Registered on a running server that has no loop yet: start its own.
            if let Some(running) = lock(&self.running).as_ref() {
                if !running.event_loop.is_attached() {
                    running.event_loop.start_own_loop().map_err(|error| {
                        PyOSError::new_err(format!("cannot start the event loop thread: {error}"))
                    })?;
                }
            }
        }
        Ok(())
    }

    /// Turns CORS on for the given origins (``"*"`` for all).
    #[pyo3(signature = (
        allowed_origins,
        access_control_allowed_methods = "POST, GET, OPTIONS",
        access_control_allowed_headers = "content-type",
    ))]
    fn enable_cors(
        &self,
        allowed_origins: &Bound<'_, PyAny>,
        access_control_allowed_methods: &str,
        access_control_allowed_headers: &str,
    ) -> PyResult<()> {
        let origins: Vec<String> = if let Ok(origin) = allowed_origins.cast::<PyString>() {
            vec![origin.to_cow()?.into_owned()]
        } else {
            allowed_origins
                .try_iter()
                .map_err(|_| PyTypeError::new_err("allowed_origins must be a list of origins"))?
                .map(|origin| origin.and_then(|origin| origin.extract::<String>()))
                .collect::<PyResult<_>>()
                .map_err(|_| PyTypeError::new_err("allowed_origins must be a list of str"))?
        };
        let cors = Cors::new(
            origins,
            access_control_allowed_methods.to_owned(),
            access_control_allowed_headers.to_owned(),
        )
        .map_err(PyValueError::new_err)?;
        self.config.cors.store(Some(Arc::new(cors)));
        Ok(())
    }

    /// Listens and serves; raises ``OSError`` if it cannot listen.
    fn start(&self) -> PyResult<()> {
        self.start_server(true)
    }

    /// Finishes in-flight requests (up to ``shutdown_grace``), then closes.
    ///
    /// Called on the server's event loop (from a coroutine handler, or beside ``serve()``)
    /// it cannot wait there: it starts the same graceful stop as a task and returns.
    fn stop(slf: &Bound<'_, Self>, py: Python<'_>) -> PyResult<()> {
        let server = slf.get();
        let on_loop = lock(&server.running)
            .as_ref()
            .is_some_and(|running| running.event_loop.on_loop_thread());
        if on_loop {
            py.import("godottpd._asyncio")?
                .call_method1("stop_soon", (slf,))?;
            return Ok(());
        }
        server.stop_with(py, true);
        Ok(())
    }

    /// Runs waiting handlers on this thread (poll mode); returns how many ran.
    #[pyo3(signature = (timeout = 0.0))]
    fn poll(&self, py: Python<'_>, timeout: f64) -> PyResult<usize> {
        if self.mode != HandlerMode::Poll {
            return Err(PyRuntimeError::new_err(
                "poll() runs handlers on the calling thread; it needs HttpServer(threaded=False)",
            ));
        }
        if !timeout.is_finite() || timeout < 0.0 {
            return Err(PyValueError::new_err(format!(
                "timeout must be >= 0 seconds, not {timeout}"
            )));
        }
        let Some(jobs) = self.jobs() else {
            return Ok(0);
        };
        // Another thread polling at the same time has the jobs; this call finds none.
        let receiver = match jobs.try_lock() {
            Ok(receiver) => receiver,
            Err(std::sync::TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return Ok(0),
        };
        poll_jobs(py, &receiver, timeout)
    }

    /// Serves until ``stop()`` is called, Ctrl-C is pressed or SIGTERM arrives (both stop
    /// gracefully: Ctrl-C then raises ``KeyboardInterrupt``, SIGTERM returns normally).
    ///
    /// With ``workers`` other than 1 (0: one per core), forks that many worker processes
    /// serving the same port (``SO_REUSEPORT``), restarts one that dies, stops all
    /// gracefully on Ctrl-C or SIGTERM and returns when all have stopped. Call it instead
    /// of ``start()``, from the main thread, after registering the routes.
    #[pyo3(signature = (workers = 1))]
    fn serve_forever(slf: &Bound<'_, Self>, py: Python<'_>, workers: i64) -> PyResult<()> {
        let server = slf.get();
        if workers != 1 {
            let count = workers::worker_count(workers)?;
            server.prepare_workers(py)?;
            let grace = server.limits.shutdown_grace.as_secs_f64();
            let outcome = py
                .import("godottpd._workers")?
                .getattr("supervise")?
                .call1((slf, count, grace));
            lock(&server.settings).listen.release();
            return outcome.map(drop);
        }
        server.serve_in_process(py)
    }

    /// Before ``serve_forever(workers=N)``: reserves the workers' port; returns it.
    #[pyo3(name = "_prepare_workers")]
    fn prepare_workers_py(&self, py: Python<'_>) -> PyResult<u16> {
        self.prepare_workers(py)
    }

    /// In a forked worker: serves until SIGTERM, then ends the process.
    fn _serve_worker(&self, py: Python<'_>, supervisor: i32) -> PyResult<()> {
        if !workers::become_worker(py, supervisor)? {
            workers::exit_worker(py, 0);
        }
        if let Err(error) = self.start() {
            error.print(py);
            workers::exit_worker(py, 3);
        }
        let code = match self.serve_in_process(py) {
            Ok(()) => 0,
            Err(error) if error.is_instance_of::<pyo3::exceptions::PyKeyboardInterrupt>(py) => 0,
            Err(error) => {
                error.print(py);
                1
            }
        };
        workers::exit_worker(py, code)
    }

    /// Whether every connection must start with a PROXY protocol header.
    #[getter]
    fn proxy_protocol(&self) -> bool {
        self.proxies.proxy_protocol
    }

    fn __enter__(slf: Bound<'_, Self>) -> PyResult<Bound<'_, Self>> {
        slf.get().start()?;
        Ok(slf)
    }

    #[pyo3(signature = (*_exc_info))]
    fn __exit__(
        slf: &Bound<'_, Self>,
        py: Python<'_>,
        _exc_info: &Bound<'_, PyTuple>,
    ) -> PyResult<bool> {
        HttpServer::stop(slf, py)?;
        Ok(false)
    }

    /// Serves inside the running event loop until cancelled or stopped: coroutine handlers
    /// run on this loop as tasks. Cancelling it (Ctrl-C under ``asyncio.run``) stops the
    /// server gracefully, as ``stop()`` does.
    fn serve<'py>(slf: &Bound<'py, Self>, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        py.import("godottpd._asyncio")?
            .call_method1("serve", (slf,))
    }

    fn __aenter__<'py>(slf: &Bound<'py, Self>, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        py.import("godottpd._asyncio")?
            .call_method1("aenter", (slf,))
    }

    #[pyo3(signature = (*_exc_info))]
    fn __aexit__<'py>(
        slf: &Bound<'py, Self>,
        py: Python<'py>,
        _exc_info: &Bound<'py, PyTuple>,
    ) -> PyResult<Bound<'py, PyAny>> {
        py.import("godottpd._asyncio")?
            .call_method1("aexit", (slf,))
    }

    /// Starts the server if needed and runs its coroutine handlers on ``event_loop`` (the
    /// running one); returns the future that completes when the server stops.
    fn _attach_loop<'py>(
        &self,
        py: Python<'py>,
        event_loop: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.start_server(false)?;
        let event_loop_of = lock(&self.running)
            .as_ref()
            .map(|running| running.event_loop.clone());
        let Some(bridge) = event_loop_of else {
            return Err(PyRuntimeError::new_err("the server stopped while starting"));
        };
        if bridge.has_own_thread() {
            return Err(PyRuntimeError::new_err(
                "the server was started with start(): its coroutine handlers run on its own \
                 event loop; call serve() (or async with) instead of start()",
            ));
        }
        bridge.attach(py, event_loop)
    }

    /// The first step of a graceful stop: refuse new connections; ``False`` if not running.
    fn _begin_stop(&self) -> bool {
        self.begin_stop()
    }

    /// Connections still open (a stop waits for them, up to ``shutdown_grace``).
    fn _open_connections(&self) -> usize {
        lock(&self.running)
            .as_ref()
            .map_or(0, |running| running.engine.open_connections())
    }

    /// The last step of a graceful stop, once the connections are done or the grace over.
    fn _finish_stop(&self, py: Python<'_>) {
        self.stop_with(py, false);
    }

    /// ``shutdown_grace`` in seconds.
    #[getter]
    fn _shutdown_grace(&self) -> f64 {
        self.limits.shutdown_grace.as_secs_f64()
    }

    /// ``(wake-ups, jobs)`` of the event loop so far: requests per wake-up of the loop.
    fn _event_loop_stats(&self) -> (u64, u64) {
        lock(&self.running)
            .as_ref()
            .map_or((0, 0), |running| running.event_loop.stats())
    }

    fn __repr__(&self) -> String {
        let settings = lock(&self.settings);
        format!(
            "<HttpServer {}:{} {}>",
            settings.bind_address,
            settings.port,
            if lock(&self.running).is_some() {
                "running"
            } else {
                "stopped"
            }
        )
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let running = self.running.get_mut().map(Option::take).unwrap_or(None);
        if let Some(running) = running {
            running.engine.stop.cancel();
            let threads = match running.handlers {
                Handlers::Handoff { pool, handoff } => {
                    handoff.shutdown(Instant::now(), false);
                    pool.len()
                }
                Handlers::Threads { runtime, pool } => {
                    runtime.shutdown_background();
                    pool.len()
                }
                Handlers::Inline { pool } => pool.len(),
                Handlers::Poll { runtime, .. } => {
                    runtime.shutdown_background();
                    0
                }
            };
            for _ in 0..threads {
                let _ = running.engine.app.send(Work::Stop);
            }
            running.event_loop.sender.send(LoopWork::Stop);
            if let Some((sender, _)) = &running.access_log {
                let _ = sender.send(AccessEvent::Stop);
            }
        }
    }
}

/// Makes the listening socket refuse new connections at once (Linux: `shutdown(2)` on a
/// listening socket wakes `accept` with an error and resets new connection attempts), even
/// while the I/O loop is busy. Called before the shutdown signal, so the accept loop (which
/// owns the socket and only ends on that signal) has certainly not closed it yet.
fn stop_accepting(listener_fd: std::os::fd::RawFd) {
    // SAFETY: `listener_fd` belongs to the listener owned by the accept loop, which is still
    // alive (see above); shutdown(2) neither closes nor frees the descriptor, and any error
    // (ENOTCONN on other systems) only means it had no effect.
    unsafe {
        libc::shutdown(listener_fd, libc::SHUT_RD);
    }
}

impl HttpServer {
    /// `serve_forever()` in this process.
    fn serve_in_process(&self, py: Python<'_>) -> PyResult<()> {
        self.start()?;
        // SIGTERM's handling lives in one place, `godottpd._signals`.
        let signals = py.import("godottpd._signals")?;
        let previous = signals.call_method0("install")?;
        let outcome = self.serve_until_stopped(py);
        signals.call_method1("restore", (previous,))?;
        match outcome {
            // Asked to stop by SIGTERM: stopped gracefully, so return like `stop()` would.
            Err(error) if error.is_instance(py, &signals.getattr("Terminated")?) => Ok(()),
            other => other,
        }
    }

    /// Checks that forking is safe (not running: no runtime thread exists; the main
    /// thread) and reserves the workers' port.
    fn prepare_workers(&self, py: Python<'_>) -> PyResult<u16> {
        if self.is_running() {
            return Err(PyRuntimeError::new_err(
                "serve_forever(workers=N) forks: call it on a server that is not running \
                 (not after start()), so that no I/O thread exists at the fork",
            ));
        }
        let threading = py.import("threading")?;
        if !threading
            .call_method0("current_thread")?
            .is(&threading.call_method0("main_thread")?)
        {
            return Err(PyRuntimeError::new_err(
                "serve_forever(workers=N) must be called from the main thread",
            ));
        }
        let mut settings = lock(&self.settings);
        let (bind_address, port) = (settings.bind_address.clone(), settings.port);
        let bound = settings
            .listen
            .reserve(&bind_address, port)
            .map_err(|error| {
                workers::listen_error(
                    &error,
                    format!("cannot listen on {bind_address}:{port}: {error}"),
                )
            })?;
        settings.port = bound;
        Ok(bound)
    }

    fn serve_until_stopped(&self, py: Python<'_>) -> PyResult<()> {
        loop {
            if !self.is_running() {
                return Ok(());
            }
            match self.jobs() {
                Some(jobs) => match jobs.try_lock() {
                    Ok(receiver) => {
                        wait_and_run(py, &receiver, SIGNAL_CHECK_INTERVAL);
                    }
                    Err(_) => py.detach(|| std::thread::sleep(SIGNAL_CHECK_INTERVAL)),
                },
                None => py.detach(|| std::thread::sleep(SIGNAL_CHECK_INTERVAL)),
            }
            if let Err(interrupt) = py.check_signals() {
                self.stop_with(py, true);
                return Err(interrupt);
            }
        }
    }
}

impl HttpServer {
    /// `start()`; `own_loop`: coroutine handlers run on a loop of the server's own (else
    /// on the loop `serve()` attaches).
    fn start_server(&self, own_loop: bool) -> PyResult<()> {
        let mut running = lock(&self.running);
        if running.is_some() {
            return Ok(());
        }
        let (bind_address, port) = {
            let settings = lock(&self.settings);
            (settings.bind_address.clone(), settings.port)
        };
        let std_listener = lock(&self.settings)
            .listen
            .listen(&bind_address, port)
            .map_err(|error| {
                workers::listen_error(
                    &error,
                    format!("cannot listen on {bind_address}:{port}: {error}"),
                )
            })?;
        let bound_port = std_listener
            .local_addr()
            .map(|address| address.port())
            .unwrap_or(port);
        // One I/O thread (the default): the loop threads drive a current-thread runtime
        // themselves. More: a multi-thread runtime, and handlers on threads of their own.
        let handoff = matches!(self.mode, HandlerMode::Threads(_)) && self.io_threads == 1;
        let runtime = if self.mode == HandlerMode::Inline || handoff {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
        } else {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(self.io_threads)
                .thread_name("godottpd-io")
                .enable_all()
                .build()
        }
        .map_err(|error| PyOSError::new_err(format!("cannot start the I/O threads: {error}")))?;
        let listener_fd = std::os::fd::AsRawFd::as_raw_fd(&std_listener);
        let listener = {
            let _context = runtime.enter();
            tokio::net::TcpListener::from_std(std_listener).map_err(|error| {
                PyOSError::new_err(format!("cannot register the listening socket: {error}"))
            })?
        };
        let (work, jobs) = channel();
        let debug = Python::attach(debug_enabled);
        let access_log = if self.access_log || debug {
            let (sender, records) = channel();
            let thread = std::thread::Builder::new()
                .name("godottpd-access-log".into())
                .spawn(move || log_thread(records))
                .map_err(|error| {
                    PyOSError::new_err(format!("cannot start the access-log thread: {error}"))
                })?;
            Some((sender, thread))
        } else {
            None
        };
        let log_sender = access_log
            .as_ref()
            .filter(|_| self.access_log)
            .map(|(sender, _)| sender.clone());
        let debug_sender = access_log
            .as_ref()
            .filter(|_| debug)
            .map(|(sender, _)| sender.clone());
        let job_signal = match self.mode {
            HandlerMode::Inline => Some(Arc::new(tokio::sync::Notify::new())),
            HandlerMode::Threads(_) if handoff => Some(Arc::new(tokio::sync::Notify::new())),
            _ => None,
        };
        let event_loop = EventLoop::new(runtime.handle().clone()).map_err(|error| {
            PyOSError::new_err(format!(
                "cannot make the event loop's wake-up socket: {error}"
            ))
        })?;
        let mut engine = Engine::new(
            self.limits.clone(),
            self.config.clone(),
            PythonApp::new(work, job_signal.clone()).with_event_loop(event_loop.sender.clone()),
            StopSignal::new(),
            log_sender,
        );
        engine.proxies = self.proxies.clone();
        engine.debug_log = debug_sender;
        let engine = Arc::new(engine);
        runtime.spawn(accept_loop(listener, engine.clone(), self.tls.clone()));
        let thread_error = |error: std::io::Error| {
            PyOSError::new_err(format!("cannot start the handler threads: {error}"))
        };
        let handlers = match (self.mode, job_signal) {
            (HandlerMode::Inline, Some(job_signal)) => Handlers::Inline {
                pool: HandlerPool::start_inline(runtime, jobs, job_signal).map_err(thread_error)?,
            },
            (HandlerMode::Threads(count), Some(job_signal)) => {
                let (pool, handoff) = HandlerPool::start_handoff(count, runtime, jobs, job_signal)
                    .map_err(thread_error)?;
                Handlers::Handoff { pool, handoff }
            }
            (HandlerMode::Threads(count), None) => Handlers::Threads {
                pool: HandlerPool::start(count, jobs).map_err(thread_error)?,
                runtime,
            },
            _ => Handlers::Poll {
                runtime,
                jobs: Arc::new(Mutex::new(jobs)),
            },
        };
        if own_loop && self.coroutines.load(Ordering::Acquire) {
            event_loop.start_own_loop().map_err(|error| {
                PyOSError::new_err(format!("cannot start the event loop thread: {error}"))
            })?;
        }
        lock(&self.settings).port = bound_port;
        *running = Some(Running {
            engine,
            listener_fd,
            handlers,
            event_loop,
            access_log,
        });
        Ok(())
    }

    /// Stops accepting and tells every connection the server is stopping; `true` if it
    /// was running. The first step of `stop()`.
    fn begin_stop(&self) -> bool {
        let running = lock(&self.running);
        let Some(running) = running.as_ref() else {
            return false;
        };
        if lock(&self.settings).listen.inherited.is_none() {
            stop_accepting(running.listener_fd);
        }
        running.engine.stop.cancel();
        true
    }

    /// `stop()`; `drain`: wait for open connections first (else the caller did).
    fn stop_with(&self, py: Python<'_>, drain: bool) {
        let Some(running) = lock(&self.running).take() else {
            return;
        };
        let Running {
            engine,
            listener_fd,
            handlers,
            event_loop,
            access_log,
        } = running;
        // Refuse new connections first: the accept loop, which owns the socket, ends only
        // on the stop signal, so the descriptor is still its own here.
        // An inherited socket is left accepting: its connections wait in the backlog for
        // the next server (systemd socket activation, a supervisor's other workers).
        if lock(&self.settings).listen.inherited.is_none() {
            stop_accepting(listener_fd);
        }
        engine.stop.cancel();
        let deadline = Instant::now() + self.limits.shutdown_grace + Duration::from_millis(200);
        let (runtime, pool, jobs, handoff) = match handlers {
            Handlers::Handoff { pool, handoff } => (None, Some(pool), None, Some(handoff)),
            Handlers::Threads { runtime, pool } => (Some(runtime), Some(pool), None, None),
            Handlers::Inline { pool } => (None, Some(pool), None, None),
            Handlers::Poll { runtime, jobs } => (Some(runtime), None, Some(jobs), None),
        };
        if drain {
            self.drain(py, &engine, jobs.as_ref());
        }
        if let Some(runtime) = runtime {
            py.detach(move || runtime.shutdown_timeout(Duration::from_millis(200)));
        }
        if let Some(pool) = pool {
            for _ in 0..pool.len() {
                let _ = engine.app.send(Work::Stop);
            }
            if let Some(handoff) = handoff {
                // The threads let go of the runtime on Stop; the connections still open
                // (their handler stuck past the grace period) close with it.
                let wait = !pool.owns_current_thread();
                py.detach(move || handoff.shutdown(deadline, wait));
            }
            // A handler stuck past the grace period is left to finish on its own; a handler
            // that calls stop() cannot wait for itself.
            if !pool.owns_current_thread() {
                py.detach(move || pool.wait_for_exit(deadline));
            }
        }
        // The loop detaches (and the server's own one ends) once it has run what was sent.
        py.detach(|| event_loop.stop(deadline));
        if let Some((sender, thread)) = access_log {
            // Everything recorded before this is logged before the thread ends.
            let _ = sender.send(AccessEvent::Stop);
            let _ = py.detach(move || thread.join());
        }
        if let Some(jobs) = jobs {
            // Jobs whose connections are gone: drop them while attached.
            if let Ok(receiver) = jobs.lock() {
                while receiver.try_recv().is_ok() {}
            }
        }
    }
}
