//! What `serve_forever(workers=N)` and `HttpServer(socket=...)` need from Rust: the
//! listening socket a server serves, the fork-safety check, and the worker side of the fork
//! (the supervisor itself is Python: `godottpd/_workers.py`, which forks with `os.fork()` so
//! that the interpreter's own at-fork handling runs).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use pyo3::exceptions::{PyOSError, PyTypeError, PyValueError};
use pyo3::prelude::*;

use crate::io::listener::{bind_with, inherit, BindOptions};

/// Where a server's connections come from.
#[derive(Default)]
pub struct ListenSource {
    /// `HttpServer(socket=...)`: our duplicate of an already-listening socket.
    pub inherited: Option<OwnedFd>,
    /// Set for the workers of `serve_forever(workers=N)`: each binds with `SO_REUSEPORT`.
    pub reuse_port: bool,
    /// The supervisor's bound, non-listening `SO_REUSEPORT` socket that fixes the port
    /// (`port=0` resolved once) for every worker, restarted ones included.
    pub reserved: Option<std::net::TcpListener>,
}

impl ListenSource {
    /// The listening socket to serve: a duplicate of the inherited one, or a new one.
    pub fn listen(&self, bind_address: &str, port: u16) -> std::io::Result<std::net::TcpListener> {
        match &self.inherited {
            Some(fd) => inherit(fd.as_fd()),
            None => bind_with(
                bind_address,
                port,
                BindOptions {
                    reuse_port: self.reuse_port,
                    no_listen: false,
                },
            ),
        }
    }

    /// Before forking workers: fixes the port they all bind (unless they share an inherited
    /// socket, which they simply inherit). Returns the port.
    pub fn reserve(&mut self, bind_address: &str, port: u16) -> std::io::Result<u16> {
        if let Some(fd) = &self.inherited {
            return Ok(inherit(fd.as_fd())?.local_addr()?.port());
        }
        if let Some(reserved) = &self.reserved {
            return Ok(reserved.local_addr()?.port());
        }
        let options = BindOptions {
            reuse_port: true,
            no_listen: true,
        };
        let reserved = bind_with(bind_address, port, options)?;
        let port = reserved.local_addr()?.port();
        self.reserved = Some(reserved);
        self.reuse_port = true;
        Ok(port)
    }

    /// After the workers: back to a single process's socket.
    pub fn release(&mut self) {
        self.reserved = None;
        self.reuse_port = false;
    }
}

/// `socket=`: a `socket.socket` (or anything with `fileno()`) or a file descriptor, which
/// must be a listening TCP socket; the error names what it is instead.
pub fn inherited_socket(socket: &Bound<'_, PyAny>) -> PyResult<OwnedFd> {
    if socket.is_instance_of::<pyo3::types::PyBool>() {
        return Err(PyTypeError::new_err(
            "socket must be a socket.socket or a file descriptor, not bool",
        ));
    }
    let fd: i64 = match socket.extract::<i64>() {
        Ok(fd) => fd,
        Err(_) => socket
            .call_method0("fileno")
            .map_err(|_| {
                PyTypeError::new_err(format!(
                    "socket must be a socket.socket or a file descriptor, not {}",
                    crate::python::type_name::type_name(socket)
                ))
            })?
            .extract()?,
    };
    let Ok(raw) = i32::try_from(fd) else {
        return Err(PyValueError::new_err(format!(
            "socket={fd}: not a file descriptor"
        )));
    };
    if raw < 0 {
        return Err(PyValueError::new_err(format!(
            "socket={fd}: not a file descriptor (closed socket?)"
        )));
    }
    // SAFETY: the descriptor is only borrowed for the duration of this call, to duplicate
    // it; fcntl(F_GETFD) first checks that it is open, so no closed number is used.
    let open = unsafe { libc::fcntl(raw, libc::F_GETFD) } != -1;
    if !open {
        return Err(PyValueError::new_err(format!(
            "socket={fd}: not an open file descriptor"
        )));
    }
    // SAFETY: `raw` is open (checked just above) and outlives this borrow, which ends
    // before the function returns; `inherit` duplicates it rather than taking it.
    let borrowed = unsafe { BorrowedFd::borrow_raw(raw) };
    let listener = inherit(borrowed)
        .map_err(|error| PyValueError::new_err(format!("socket={fd}: {error}")))?;
    Ok(OwnedFd::from(listener))
}

/// `workers=0` is one per core (the CPUs this process may run on).
pub fn worker_count(workers: i64) -> PyResult<usize> {
    match usize::try_from(workers) {
        Ok(0) => Ok(std::thread::available_parallelism().map_or(1, |n| n.get())),
        Ok(count) if count <= 1024 => Ok(count),
        _ => Err(PyValueError::new_err(format!(
            "workers must be in 0..=1024 (0: one per core), not {workers}"
        ))),
    }
}

/// First thing in a forked worker: it dies with its supervisor (`PR_SET_PDEATHSIG`, so a
/// supervisor killed with SIGKILL leaves no orphan serving the port) and takes its stop
/// signal back from the supervisor's blocked set. Returns `false` if the supervisor is
/// already gone (it died between `fork` and `prctl`).
pub fn become_worker(py: Python<'_>, supervisor: i32) -> PyResult<bool> {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes a signal number and touches no memory of ours.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong);
    }
    // SAFETY: getppid(2) cannot fail and has no arguments.
    if unsafe { libc::getppid() } != supervisor {
        return Ok(false);
    }
    let signal = py.import("signal")?;
    // Ctrl-C reaches the whole process group; the supervisor alone acts on it (and sends
    // each worker SIGTERM), so a worker never sees two stop signals.
    signal.call_method1(
        "signal",
        (signal.getattr("SIGINT")?, signal.getattr("SIG_IGN")?),
    )?;
    signal.call_method1(
        "signal",
        (signal.getattr("SIGTERM")?, signal.getattr("SIG_DFL")?),
    )?;
    let blocked = (
        signal.getattr("SIGINT")?,
        signal.getattr("SIGTERM")?,
        signal.getattr("SIGCHLD")?,
    );
    signal.call_method1("pthread_sigmask", (signal.getattr("SIG_UNBLOCK")?, blocked))?;
    Ok(true)
}

/// Ends a worker process: flushes Python's standard streams, then `_exit(2)`, with no
/// Python code (no late signal handler, no atexit hook inherited from the parent) in
/// between.
pub fn exit_worker(py: Python<'_>, code: i32) -> ! {
    if let Ok(sys) = py.import("sys") {
        for name in ["stdout", "stderr"] {
            if let Ok(stream) = sys.getattr(name) {
                let _ = stream.call_method0("flush");
            }
        }
    }
    // SAFETY: _exit(2) ends the process at once; nothing runs after it, so no Rust or
    // Python state can be observed half-torn-down.
    unsafe { libc::_exit(code) }
}

/// An `OSError` for a socket that cannot be made.
pub fn listen_error(error: &std::io::Error, what: String) -> PyErr {
    PyOSError::new_err((error.raw_os_error().unwrap_or(0), what))
}
