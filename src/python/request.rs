//! `HttpRequest`, `Headers` and `Client`: read-only views of a request, built lazily.
//!
//! A request arrives as one `Arc<RequestData>`; each Python-visible member is created on
//! first access and cached, so a handler that only reads `parameters` never pays for a dict
//! of headers or a copy of the body.

use std::borrow::Cow;
use std::sync::Arc;

use pyo3::exceptions::{PyConnectionError, PyKeyError, PyRuntimeError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PyList, PyString};

use crate::app::exchange::{ConnectionInfo, RequestData};
use crate::app::forwarded::{self, Forwarded};
use crate::app::upload::{BodyError, BodyQueue, BodyReader, Read, RequestBody};
use crate::http::method::{KnownMethod, Method};

/// Header values are decoded as UTF-8 when they are, else as Latin-1 (RFC 9110 §5.5 calls
/// bytes above 0x7F obs-text; Latin-1 maps each to one character, losing nothing).
pub fn decode_field(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => Cow::Owned(bytes.iter().map(|&b| char::from(b)).collect()),
    }
}

/// The peer of a connection.
#[pyclass(frozen, module = "godottpd._godottpd", skip_from_py_object)]
pub struct Client {
    connection: Arc<ConnectionInfo>,
    /// The connection's peer, or the client a trusted proxy named.
    address: std::net::SocketAddr,
}

impl Client {
    pub fn new(connection: Arc<ConnectionInfo>) -> Self {
        let address = connection.peer;
        Client {
            connection,
            address,
        }
    }

    fn at(connection: Arc<ConnectionInfo>, address: std::net::SocketAddr) -> Self {
        Client {
            connection,
            address,
        }
    }
}

#[pymethods]
impl Client {
    /// The client's IP address: the peer's, or the one a trusted proxy or the PROXY
    /// protocol header names.
    #[getter]
    fn host(&self) -> String {
        self.address.ip().to_canonical().to_string()
    }

    /// The client's port (0 when a proxy named the client without one).
    #[getter]
    fn port(&self) -> u16 {
        self.address.port()
    }

    /// Whether the connection is still open.
    #[getter]
    fn is_open(&self) -> bool {
        self.connection.is_open()
    }

    /// In a coroutine handler: ``await client.wait_closed()`` returns once the connection
    /// has closed (the client left, or the server closed it).
    fn wait_closed<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        crate::python::event_loop::wait_closed(py, self.connection.clone())
    }

    fn __repr__(&self) -> String {
        format!(
            "Client(host={:?}, port={}, is_open={})",
            self.host(),
            self.port(),
            self.is_open()
        )
    }
}

/// A request's header fields: a read-only, case-insensitive mapping.
///
/// ``headers[name]`` joins the values of a repeated field with ``", "`` (RFC 9110 §5.3);
/// ``get_all(name)`` gives each value separately. Iteration yields lowercased names.
#[pyclass(frozen, module = "godottpd._godottpd", mapping, skip_from_py_object)]
pub struct Headers {
    request: Arc<RequestData>,
}

impl Headers {
    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = Cow<'a, str>> + 'a {
        self.request.head.header_values(name).map(decode_field)
    }

    fn unique_names(&self) -> Vec<String> {
        let head = &self.request.head;
        let mut names: Vec<String> = Vec::with_capacity(head.headers.len());
        for header in &head.headers {
            let name = String::from_utf8_lossy(head.header_name(header)).to_ascii_lowercase();
            if !names.contains(&name) {
                names.push(name);
            }
        }
        names
    }

    /// RFC 9110 §5.3: field lines of one name combine into one value, joined by ", ".
    fn combined(&self, name: &str) -> Option<String> {
        let mut values = self.values(name);
        let first = values.next()?;
        let mut joined = first.into_owned();
        for value in values {
            joined.push_str(", ");
            joined.push_str(&value);
        }
        Some(joined)
    }
}

#[pymethods]
impl Headers {
    fn __getitem__(&self, name: &str) -> PyResult<String> {
        self.combined(name)
            .ok_or_else(|| PyKeyError::new_err(name.to_owned()))
    }

    fn __contains__(&self, name: &Bound<'_, PyAny>) -> bool {
        name.extract::<String>()
            .is_ok_and(|name| self.request.head.first_header(&name).is_some())
    }

    fn __len__(&self) -> usize {
        self.unique_names().len()
    }

    fn __iter__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let names = PyList::new(py, self.unique_names())?;
        Ok(names.try_iter()?.into_any().unbind())
    }

    /// The combined value of ``name``, or ``default`` when it is absent.
    #[pyo3(signature = (name, default = None))]
    fn get(&self, py: Python<'_>, name: &str, default: Option<Py<PyAny>>) -> PyResult<Py<PyAny>> {
        match self.combined(name) {
            Some(value) => Ok(PyString::new(py, &value).into_any().unbind()),
            None => Ok(default.unwrap_or_else(|| py.None())),
        }
    }

    /// Every value of ``name``, one per field line, in the order received.
    fn get_all(&self, name: &str) -> Vec<String> {
        self.values(name).map(Cow::into_owned).collect()
    }

    fn keys(&self) -> Vec<String> {
        self.unique_names()
    }

    #[pyo3(name = "values")]
    fn combined_values(&self) -> Vec<String> {
        self.unique_names()
            .iter()
            .filter_map(|name| self.combined(name))
            .collect()
    }

    fn items(&self) -> Vec<(String, String)> {
        self.unique_names()
            .into_iter()
            .filter_map(|name| self.combined(&name).map(|value| (name, value)))
            .collect()
    }

    fn __repr__(&self) -> String {
        format!("Headers({:?})", self.items())
    }
}

/// A request, as handed to a router's ``handle_*`` method.
#[pyclass(frozen, module = "godottpd._godottpd", skip_from_py_object)]
pub struct HttpRequest {
    request: Arc<RequestData>,
    connection: Arc<ConnectionInfo>,
    query: PyOnceLock<Py<PyDict>>,
    parameters: PyOnceLock<Py<PyDict>>,
    body: PyOnceLock<Py<PyBytes>>,
    headers: PyOnceLock<Py<Headers>>,
    /// What trusted proxies say, resolved on first use.
    forwarded: std::sync::OnceLock<Forwarded>,
    /// A streamed body's reader: when the request object goes, the body is given up.
    reader: Option<Arc<BodyReader>>,
}

impl HttpRequest {
    pub fn new(request: Arc<RequestData>, connection: Arc<ConnectionInfo>) -> Self {
        HttpRequest {
            query: PyOnceLock::new(),
            parameters: PyOnceLock::new(),
            body: PyOnceLock::new(),
            headers: PyOnceLock::new(),
            forwarded: std::sync::OnceLock::new(),
            reader: match &request.body {
                RequestBody::Streamed(queue) => Some(Arc::new(BodyReader {
                    queue: queue.clone(),
                })),
                RequestBody::Whole(_) => None,
            },
            request,
            connection,
        }
    }

    /// The whole body; for a streamed one, the error that says how to read it instead.
    fn whole_body(&self) -> PyResult<&bytes::Bytes> {
        self.request.body.whole().ok_or_else(|| {
            PyRuntimeError::new_err(
                "this router has stream_body = True: read the body with request.stream() \
                 or request.save(path)",
            )
        })
    }

    /// The streamed body's reader; an error for a body already read whole.
    fn body_reader(&self) -> PyResult<Arc<BodyReader>> {
        self.reader.clone().ok_or_else(|| {
            PyRuntimeError::new_err(
                "request.stream() and request.save() need a router with stream_body = True; \
                 this body was read whole: use request.body",
            )
        })
    }

    /// The forwarding headers' verdict (empty unless the peer is a trusted proxy); a
    /// malformed value is logged at DEBUG once and otherwise ignored.
    fn forwarded(&self, py: Python<'_>) -> &Forwarded {
        if let Some(forwarded) = self.forwarded.get() {
            return forwarded;
        }
        let trusted = &self.connection.proxies.trusted;
        let resolved = forwarded::resolve(self.connection.peer.ip(), trusted, &self.request.head);
        if let Some(why) = resolved.ignored {
            crate::python::logging::log_debug(
                py,
                &format!(
                    "forwarding header from {} ignored: {why}",
                    self.connection.peer.ip().to_canonical()
                ),
            );
        }
        self.forwarded.get_or_init(|| resolved)
    }

    fn query_pairs(&self) -> form_urlencoded::Parse<'_> {
        form_urlencoded::parse(self.request.head.raw_query())
    }
}

static BODY_PARSER: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static METHOD_NAMES: PyOnceLock<[Py<PyString>; KnownMethod::ALL.len()]> = PyOnceLock::new();
static TEXT_DECODER: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

#[pymethods]
impl HttpRequest {
    #[getter]
    fn method<'py>(&self, py: Python<'py>) -> Bound<'py, PyString> {
        match &self.request.head.method {
            Method::Known(known) => {
                // One interned string per routable method, made once.
                let names = METHOD_NAMES.get_or_init(py, || {
                    KnownMethod::ALL.map(|method| PyString::intern(py, method.name()).unbind())
                });
                names[known.index()].bind(py).clone()
            }
            Method::Other(name) => PyString::new(py, name),
        }
    }

    /// The percent-decoded path, without the query.
    #[getter]
    fn path(&self) -> &str {
        &self.request.path
    }

    /// ``"HTTP/1.1"`` or ``"HTTP/1.0"``.
    #[getter]
    fn http_version(&self) -> &'static str {
        if self.request.head.http10 {
            "HTTP/1.0"
        } else {
            "HTTP/1.1"
        }
    }

    #[getter]
    fn headers(&self, py: Python<'_>) -> PyResult<Py<Headers>> {
        self.headers
            .get_or_try_init(py, || {
                Py::new(
                    py,
                    Headers {
                        request: self.request.clone(),
                    },
                )
            })
            .map(|headers| headers.clone_ref(py))
    }

    /// The body, exactly as sent (a chunked body decoded). Raises ``RuntimeError`` for a
    /// router with ``stream_body = True``: use ``stream()`` or ``save()`` there.
    #[getter]
    fn body(&self, py: Python<'_>) -> PyResult<Py<PyBytes>> {
        let body = self.whole_body()?;
        Ok(self
            .body
            .get_or_init(py, || PyBytes::new(py, body).unbind())
            .clone_ref(py))
    }

    /// The body as it arrives, for a router with ``stream_body = True``: an iterator of
    /// ``bytes`` pieces. The first read sends ``100 Continue`` to a client that waits for
    /// it. A read raises ``BadRequest`` (its ``status`` is ``408`` for a client that stalls,
    /// ``413`` past ``max_body_size``) or ``ConnectionError`` (the client left).
    fn stream(&self) -> PyResult<BodyStream> {
        Ok(BodyStream {
            reader: self.body_reader()?,
        })
    }

    /// The parts of a ``multipart/form-data`` body as they arrive, an iterator of
    /// ``FormField``: with ``stream_body = True`` a file part of any size is saved with
    /// bounded memory (``field.save(path)``). Raises ``BadRequest`` for another content
    /// type or a malformed form, and as ``stream()`` does.
    fn form(&self) -> PyResult<crate::python::form::FormFields> {
        let content_type = self
            .request
            .head
            .first_header("content-type")
            .map(decode_field);
        let boundary = crate::app::multipart::boundary(content_type.as_deref())
            .map_err(|error| crate::python::errors::BadRequest::new_err(error.reason))?;
        let queue = match &self.request.body {
            RequestBody::Streamed(queue) => queue.clone(),
            RequestBody::Whole(body) => BodyQueue::filled(body.clone()),
        };
        let multipart = crate::app::multipart::parse(queue, boundary);
        Ok(crate::python::form::FormFields::new(
            multipart,
            self.reader.clone(),
        ))
    }

    /// Writes the rest of a streamed body (``stream_body = True``) to the file ``path``
    /// as it arrives, with bounded memory, and returns the number of bytes written. Raises
    /// as ``stream()`` does, or ``OSError``.
    fn save(&self, py: Python<'_>, path: std::path::PathBuf) -> PyResult<u64> {
        let reader = self.body_reader()?;
        let file = std::fs::File::create(&path)?;
        save_to(py, &reader.queue, file)
    }

    /// The body decoded as text by the charset of its ``Content-Type`` (UTF-8 when it
    /// names none). Raises ``BadRequest`` when the body is not text in that charset.
    #[getter]
    fn text(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let content_type = self.request.head.first_header("content-type");
        let body = self.whole_body()?;
        if content_type.is_none() {
            if let Ok(text) = std::str::from_utf8(body) {
                return Ok(PyString::new(py, text).into_any().unbind());
            }
        }
        let decoder = TEXT_DECODER.get_or_try_init(py, || {
            Ok::<_, PyErr>(
                py.import("godottpd._body")?
                    .getattr("decode_text")?
                    .unbind(),
            )
        })?;
        decoder.call1(py, (content_type.map(decode_field), self.body(py)?))
    }

    /// The decoded query; for a repeated key the last value wins.
    #[getter]
    fn query(&self, py: Python<'_>) -> PyResult<Py<PyDict>> {
        self.query
            .get_or_try_init(py, || {
                let dict = PyDict::new(py);
                for (key, value) in self.query_pairs() {
                    dict.set_item(key, value)?;
                }
                Ok::<_, PyErr>(dict.unbind())
            })
            .map(|dict| dict.clone_ref(py))
    }

    /// Every value of the query key ``name``, in order; empty when absent.
    fn query_all(&self, name: &str) -> Vec<String> {
        self.query_pairs()
            .filter(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
            .collect()
    }

    /// The path parameters the route captured.
    #[getter]
    fn parameters(&self, py: Python<'_>) -> PyResult<Py<PyDict>> {
        self.parameters
            .get_or_try_init(py, || {
                let dict = PyDict::new(py);
                for (name, value) in &self.request.parameters {
                    dict.set_item(name, value)?;
                }
                Ok::<_, PyErr>(dict.unbind())
            })
            .map(|dict| dict.clone_ref(py))
    }

    /// The client; behind a trusted proxy, the rightmost untrusted address of
    /// ``Forwarded`` or ``X-Forwarded-For`` (malformed values are ignored).
    #[getter]
    fn client(&self, py: Python<'_>) -> Client {
        let address = self.forwarded(py).client.unwrap_or(self.connection.peer);
        Client::at(self.connection.clone(), address)
    }

    /// ``"https"`` when the request came over TLS, else ``"http"``; behind a trusted proxy,
    /// what it reports (``Forwarded: proto=``, ``X-Forwarded-Proto``).
    #[getter]
    fn scheme(&self, py: Python<'_>) -> &'static str {
        self.forwarded(py)
            .scheme
            .unwrap_or(self.connection.scheme)
            .as_str()
    }

    /// The host the request is for, as ``host[:port]``: the authority of an absolute-form
    /// target, else the ``Host`` header (RFC 9112 §3.2.2), or what a trusted proxy reports
    /// (``Forwarded: host=``, ``X-Forwarded-Host``); empty when there is none.
    #[getter]
    fn host(&self, py: Python<'_>) -> String {
        if let Some(host) = &self.forwarded(py).host {
            return host.clone();
        }
        decode_field(self.request.head.host()).into_owned()
    }

    /// The body decoded by its content type.
    ///
    /// JSON for ``application/json``, a ``dict`` for
    /// ``application/x-www-form-urlencoded``, a list of ``FormPart`` for
    /// ``multipart/form-data``; ``None`` for other types or an empty body. Raises
    /// ``BadRequest`` (a ``ValueError``) when the body does not decode; escaping the
    /// handler, it answers ``400``.
    fn get_body_parsed(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let Some(content_type) = self.request.head.first_header("content-type") else {
            return Ok(py.None());
        };
        if self.whole_body()?.is_empty() {
            return Ok(py.None());
        }
        let parser = BODY_PARSER.get_or_try_init(py, || {
            Ok::<_, PyErr>(py.import("godottpd._body")?.getattr("parse_body")?.unbind())
        })?;
        parser.call1(py, (decode_field(content_type), self.body(py)?))
    }

    /// The cookies the request carries.
    fn get_cookies(&self, py: Python<'_>) -> PyResult<Py<PyDict>> {
        let dict = PyDict::new(py);
        for line in self.request.head.header_values("cookie") {
            for pair in decode_field(line).split(';') {
                let pair = pair.trim();
                if let Some((name, value)) = pair.split_once('=') {
                    let value = value.trim();
                    let value = value
                        .strip_prefix('"')
                        .and_then(|v| v.strip_suffix('"'))
                        .unwrap_or(value);
                    if !name.trim().is_empty() {
                        dict.set_item(name.trim(), value)?;
                    }
                }
            }
        }
        Ok(dict.unbind())
    }

    fn __repr__(&self) -> String {
        format!(
            "<HttpRequest {} {}>",
            self.request.head.method.as_str(),
            self.request.path
        )
    }
}

/// How long a read of a streamed body waits, detached, between checks for signals.
const WAIT_SLICE: std::time::Duration = std::time::Duration::from_millis(100);

/// A streamed request body, read piece by piece: ``for piece in request.stream(): ...``.
#[pyclass(frozen, module = "godottpd._godottpd", skip_from_py_object)]
pub struct BodyStream {
    reader: Arc<BodyReader>,
}

#[pymethods]
impl BodyStream {
    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Py<PyBytes>>> {
        Ok(next_piece(py, &self.reader.queue)?.map(|piece| PyBytes::new(py, &piece).unbind()))
    }
}

/// The Python exception for a body that cannot be read to its end: `BadRequest` with the
/// status the client is answered with if it escapes the handler, or `ConnectionError`.
pub(crate) fn body_error(py: Python<'_>, error: BodyError) -> PyErr {
    match error {
        BodyError::Refused(refusal) => {
            let error = crate::python::errors::BadRequest::new_err(refusal.reason);
            let _ = error.value(py).setattr("status", refusal.status);
            error
        }
        BodyError::Gone => PyConnectionError::new_err(
            "the client closed the connection before sending the whole body",
        ),
    }
}

/// The next piece of a streamed body (`None` at its end), waiting without the interpreter
/// lock. On the inline loop thread the wait drives every connection's I/O, this body's
/// included (see `inline_io`).
fn next_piece(py: Python<'_>, queue: &Arc<BodyQueue>) -> PyResult<Option<bytes::Bytes>> {
    let read = if crate::python::stream::on_inline_loop() {
        let queue = queue.clone();
        py.detach(|| crate::python::inline_io::drive(async move { queue.next().await }))
    } else {
        None
    };
    let read = match read {
        Some(read) => read,
        None => loop {
            match py.detach(|| queue.next_blocking(WAIT_SLICE)) {
                Ok(Read::Waiting) => py.check_signals()?,
                other => break other,
            }
        },
    };
    match read {
        Ok(Read::Piece(piece)) => Ok(Some(piece)),
        Ok(Read::End | Read::Waiting) => Ok(None),
        Err(error) => Err(body_error(py, error)),
    }
}

/// Writes the rest of a streamed body to `file`, without the interpreter lock; returns the
/// bytes written.
fn save_to(py: Python<'_>, queue: &Arc<BodyQueue>, mut file: std::fs::File) -> PyResult<u64> {
    use std::io::Write as _;
    let mut written: u64 = 0;
    if crate::python::stream::on_inline_loop() {
        let (file, written, queue) = (&mut file, &mut written, queue.clone());
        let outcome = py.detach(|| {
            crate::python::inline_io::drive(async move {
                loop {
                    match queue.next().await {
                        Ok(Read::Piece(piece)) => {
                            file.write_all(&piece).map_err(Err)?;
                            *written += piece.len() as u64;
                        }
                        Ok(_) => return Ok(*written),
                        Err(error) => return Err(Ok(error)),
                    }
                }
            })
        });
        match outcome {
            Some(Ok(written)) => return Ok(written),
            Some(Err(Ok(error))) => return Err(body_error(py, error)),
            Some(Err(Err(error))) => return Err(error.into()),
            // Nested in another wait on the loop: wait below instead.
            None => {}
        }
    }
    loop {
        let step = py.detach(
            || -> Result<Option<u64>, Result<BodyError, std::io::Error>> {
                let deadline = std::time::Instant::now() + WAIT_SLICE;
                loop {
                    match queue.next_blocking(WAIT_SLICE) {
                        Ok(Read::Piece(piece)) => {
                            file.write_all(&piece).map_err(Err)?;
                            written += piece.len() as u64;
                            if std::time::Instant::now() >= deadline {
                                return Ok(None);
                            }
                        }
                        Ok(Read::Waiting) => return Ok(None),
                        Ok(Read::End) => return Ok(Some(written)),
                        Err(error) => return Err(Ok(error)),
                    }
                }
            },
        );
        match step {
            Ok(Some(written)) => return Ok(written),
            Ok(None) => py.check_signals()?,
            Err(Ok(error)) => return Err(body_error(py, error)),
            Err(Err(error)) => return Err(error.into()),
        }
    }
}
