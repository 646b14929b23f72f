//! The Python face of HTTPS: `self_signed_certificate()`, and turning the TLS setup's
//! errors into Python exceptions.

use std::path::PathBuf;

use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;

use crate::io::tls::acceptor::TlsAcceptor;
use crate::io::tls::config::{TlsFileError, TlsFiles};
use crate::io::tls::self_signed::{self, SelfSignedError};

/// A certificate file problem is the caller's to fix: `ValueError`, naming the file.
pub fn file_error(error: TlsFileError) -> PyErr {
    PyValueError::new_err(error.to_string())
}

fn self_signed_error(error: SelfSignedError) -> PyErr {
    match error {
        SelfSignedError::BadName(_) => PyValueError::new_err(error.to_string()),
        SelfSignedError::Io(_, ref io) => {
            PyOSError::new_err((io.raw_os_error().unwrap_or(0), error.to_string()))
        }
        SelfSignedError::NoCacheFolder | SelfSignedError::Generate(_) => {
            PyOSError::new_err(error.to_string())
        }
    }
}

/// Returns ``(cert_path, key_path)`` of a self-signed certificate for local HTTPS.
///
/// It names ``localhost``, ``127.0.0.1``, ``::1``, this machine's host name and addresses,
/// and ``names``. It is made once in ``folder`` (by default ``$XDG_CACHE_HOME/godottpd``
/// or ``~/.cache/godottpd``) and reused while it is valid (397 days, renewed 30 days
/// before) and covers every name, so that a browser's exception for it lasts. The key file
/// is written with mode 0600. A name that is neither a DNS name nor an IP address is a
/// ``ValueError``.
#[pyfunction]
#[pyo3(signature = (names = None, folder = None))]
pub fn self_signed_certificate(
    py: Python<'_>,
    names: Option<Vec<String>>,
    folder: Option<PathBuf>,
) -> PyResult<(String, String)> {
    let names = names.unwrap_or_default();
    // Key generation and file I/O: without the interpreter lock.
    let files = py
        .detach(|| {
            let folder = match folder {
                Some(folder) => folder,
                None => self_signed::default_folder()?,
            };
            self_signed::ensure(&folder, &names)
        })
        .map_err(self_signed_error)?;
    Ok((
        files.cert.to_string_lossy().into_owned(),
        files.key.to_string_lossy().into_owned(),
    ))
}

/// The addresses of this machine that another device can reach (no loopback).
#[pyfunction]
pub fn _machine_addresses() -> Vec<String> {
    self_signed::machine_addresses()
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// Reads and checks `tls_cert` and `tls_key` for `HttpServer(...)`: both or neither.
pub fn load_acceptor(
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
) -> PyResult<Option<std::sync::Arc<TlsAcceptor>>> {
    match (tls_cert, tls_key) {
        (None, None) => Ok(None),
        (Some(cert), Some(key)) => TlsAcceptor::load(TlsFiles { cert, key })
            .map(|acceptor| Some(std::sync::Arc::new(acceptor)))
            .map_err(file_error),
        (Some(_), None) => Err(PyValueError::new_err(
            "tls_cert needs tls_key too (the private key of the certificate)",
        )),
        (None, Some(_)) => Err(PyValueError::new_err(
            "tls_key needs tls_cert too (the certificate chain of the key)",
        )),
    }
}
