//! `HttpServer`: configuration, lifecycle (start, stop, serve_forever, poll) and routes.

use crossbeam_channel::{unbounded as channel, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use pyo3::exceptions::{PyOSError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyString, PyTuple};

use crate::app::config::{LiveConfig, Target};
use crate::app::cors::Cors;
use crate::app::exchange::{AccessEvent, StopSignal};
use crate::app::routes::Pattern;
use crate::http::limits::{Limits, MAX_HEADERS_CEILING};
use crate::http::token::is_field_value;
use crate::io::engine::Engine;
use crate::io::listener::{accept_loop, bind};
use crate::io::tls::acceptor::TlsAcceptor;
use crate::python::access_log::log_thread;
use crate::python::file_router::HttpFileRouter;
use crate::python::handler_threads::{run_ready, wait_and_run, HandlerPool, PythonApp, Work};
use crate::python::router::{HttpRouter, PyRoute};
use crate::python::tls::{file_error, load_acceptor};
use crate::python::type_name::type_name;

/// How long a body may arrive at any rate before `min_body_rate` applies.
const BODY_RATE_GRACE: Duration = Duration::from_secs(5);

/// How often a blocking call wakes up to let Ctrl-C through.
const SIGNAL_CHECK_INTERVAL: Duration = Duration::from_millis(50);

struct Settings {
    port: u16,
    bind_address: String,
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
    /// Handler threads, beside the runtime's I/O threads.
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

/// An HTTP/1.1 server.
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
    /// With `tls_cert` and `tls_key`: the server speaks only HTTPS.
    tls: Option<Arc<TlsAcceptor>>,
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

fn check_port(port: i64) -> PyResult<u16> {
    u16::try_from(port)
        .map_err(|_| PyValueError::new_err(format!("port must be in 0..=65535, not {port}")))
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
    #[pyo3(signature = (
        port = 8080,
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
        tls_cert = None,
        tls_key = None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        port: i64,
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
        tls_cert: Option<std::path::PathBuf>,
        tls_key: Option<std::path::PathBuf>,
    ) -> PyResult<Self> {
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
            shutdown_grace: if shutdown_grace >= 0.0 && shutdown_grace.is_finite() {
                Duration::from_secs_f64(shutdown_grace)
            } else {
                return Err(PyValueError::new_err(format!(
                    "shutdown_grace must be >= 0 seconds, not {shutdown_grace}"
                )));
            },
        };
        Ok(HttpServer {
            settings: Mutex::new(Settings {
                port: check_port(port)?,
                bind_address: bind_address.to_owned(),
            }),
            limits,
            mode: HandlerMode::new(
                threaded,
                usize::try_from(handler_threads)
                    .map_err(|_| {
                        PyValueError::new_err(format!(
                            "handler_threads must be >= 0, not {handler_threads}"
                        ))
                    })?
                    .min(256),
            ),
            io_threads: positive_count("io_threads", io_threads)?.min(64),
            access_log,
            config: Arc::new(LiveConfig::new(server_identifier)),
            running: Mutex::new(None),
            tls: load_acceptor(tls_cert, tls_key)?,
        })
    }

    /// The port; once started, the port actually bound (useful with `port=0`).
    #[getter]
    fn get_port(&self) -> u16 {
        lock(&self.settings).port
    }

    #[setter]
    fn set_port(&self, port: i64) -> PyResult<()> {
        let port = check_port(port)?;
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

    /// Re-reads `tls_cert` and `tls_key`: connections accepted from now on use them, open
    /// ones carry on. On an error (`ValueError` naming the file) nothing changes.
    fn reload_tls(&self, py: Python<'_>) -> PyResult<()> {
        let Some(tls) = &self.tls else {
            return Err(PyRuntimeError::new_err(
                "reload_tls() needs a server made with tls_cert and tls_key",
            ));
        };
        py.detach(|| tls.reload()).map_err(file_error)
    }

    /// `"https"` with `tls_cert` and `tls_key`, else `"http"`.
    #[getter]
    fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// Whether handlers run on the server's own thread (`True`) or in `poll()`.
    #[getter]
    fn threaded(&self) -> bool {
        self.mode != HandlerMode::Poll
    }

    /// Adds a route; routes are tried in registration order and the first match wins.
    /// An `HttpFileRouter` takes its path as a prefix and serves everything below it.
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
        self.add_route(pattern, Target::Handler(Arc::new(route)));
        Ok(())
    }

    /// Turns CORS on for `allowed_origins` (a list of origins, or `["*"]`).
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

    /// Starts listening and serving; returns once the socket listens. Raises `OSError` if
    /// it cannot listen. A second call does nothing.
    fn start(&self) -> PyResult<()> {
        let mut running = lock(&self.running);
        if running.is_some() {
            return Ok(());
        }
        let (bind_address, port) = {
            let settings = lock(&self.settings);
            (settings.bind_address.clone(), settings.port)
        };
        let std_listener = bind(&bind_address, port).map_err(|error| {
            PyOSError::new_err((
                error.raw_os_error().unwrap_or(0),
                format!("cannot listen on {bind_address}:{port}: {error}"),
            ))
        })?;
        let bound_port = std_listener
            .local_addr()
            .map(|address| address.port())
            .unwrap_or(port);
        let runtime = if self.mode == HandlerMode::Inline {
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
        let access_log = if self.access_log {
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
        let log_sender = access_log.as_ref().map(|(sender, _)| sender.clone());
        let job_signal = match self.mode {
            HandlerMode::Inline => Some(Arc::new(tokio::sync::Notify::new())),
            _ => None,
        };
        let engine = Arc::new(Engine::new(
            self.limits.clone(),
            self.config.clone(),
            PythonApp::new(work, job_signal.clone()),
            StopSignal::new(),
            log_sender,
        ));
        runtime.spawn(accept_loop(listener, engine.clone(), self.tls.clone()));
        let thread_error = |error: std::io::Error| {
            PyOSError::new_err(format!("cannot start the handler threads: {error}"))
        };
        let handlers = match (self.mode, job_signal) {
            (HandlerMode::Inline, Some(job_signal)) => Handlers::Inline {
                pool: HandlerPool::start_inline(runtime, jobs, job_signal).map_err(thread_error)?,
            },
            (HandlerMode::Threads(count), _) => Handlers::Threads {
                pool: HandlerPool::start(count, jobs).map_err(thread_error)?,
                runtime,
            },
            _ => Handlers::Poll {
                runtime,
                jobs: Arc::new(Mutex::new(jobs)),
            },
        };
        lock(&self.settings).port = bound_port;
        *running = Some(Running {
            engine,
            listener_fd,
            handlers,
            access_log,
        });
        Ok(())
    }

    /// Stops accepting, lets in-flight requests finish within `shutdown_grace`, closes every
    /// connection and returns. A second call does nothing.
    fn stop(&self, py: Python<'_>) {
        let Some(running) = lock(&self.running).take() else {
            return;
        };
        let Running {
            engine,
            listener_fd,
            handlers,
            access_log,
        } = running;
        // Refuse new connections first: the accept loop, which owns the socket, ends only
        // on the stop signal, so the descriptor is still its own here.
        stop_accepting(listener_fd);
        engine.stop.cancel();
        let deadline = Instant::now() + self.limits.shutdown_grace + Duration::from_millis(200);
        let (runtime, pool, jobs) = match handlers {
            Handlers::Threads { runtime, pool } => (Some(runtime), Some(pool), None),
            Handlers::Inline { pool } => (None, Some(pool), None),
            Handlers::Poll { runtime, jobs } => (Some(runtime), None, Some(jobs)),
        };
        self.drain(py, &engine, jobs.as_ref());
        if let Some(runtime) = runtime {
            py.detach(move || runtime.shutdown_timeout(Duration::from_millis(200)));
        }
        if let Some(pool) = pool {
            for _ in 0..pool.len() {
                let _ = engine.app.send(Work::Stop);
            }
            // A handler stuck past the grace period is left to finish on its own; a handler
            // that calls stop() cannot wait for itself.
            if !pool.owns_current_thread() {
                py.detach(move || pool.wait_for_exit(deadline));
            }
        }
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

    /// Runs the handlers of the requests that are waiting, on this thread, and returns how
    /// many ran; with `timeout`, first waits up to that many seconds for one. Poll mode only
    /// (`HttpServer(threaded=False)`).
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
        let Ok(receiver) = jobs.try_lock() else {
            return Ok(0);
        };
        let ran = if timeout > 0.0 {
            wait_and_run(py, &receiver, Duration::from_secs_f64(timeout))
        } else {
            run_ready(py, &receiver)
        };
        Ok(ran.jobs)
    }

    /// Starts (if needed) and serves until `stop()` is called, Ctrl-C is pressed or SIGTERM
    /// arrives (both stop gracefully: Ctrl-C then raises `KeyboardInterrupt`, SIGTERM
    /// returns normally); in poll mode it runs the handlers itself.
    fn serve_forever(&self, py: Python<'_>) -> PyResult<()> {
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

    fn __enter__(slf: Bound<'_, Self>) -> PyResult<Bound<'_, Self>> {
        slf.get().start()?;
        Ok(slf)
    }

    #[pyo3(signature = (*_exc_info))]
    fn __exit__(&self, py: Python<'_>, _exc_info: &Bound<'_, PyTuple>) -> bool {
        self.stop(py);
        false
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
                self.stop(py);
                return Err(interrupt);
            }
        }
    }
}
