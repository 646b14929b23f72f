//! `HttpResponse`: what a handler answers with, encoded in Rust and handed to the connection.
//!
//! Everything caller-supplied is validated before a byte is produced: a name that is not a
//! token, a CR, LF or NUL in a value, a cookie that would break its line all raise
//! `ValueError`, and the response stays unsent. A response can be sent from any thread, after
//! its handler returned; one that is dropped unsent answers 500 by itself.

use std::borrow::Cow;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyList, PyMemoryView, PyString};

use crate::app::cookie::{Attribute, CookieSpec, SameSite};
use crate::app::exchange::{Outgoing, ReplyContext, ReplySender};
use crate::app::files::{respond_one, OneFile};
use crate::app::stream::{StreamBody, StreamQueue, StreamReader};
use crate::http::encode::{BodyFraming, HeadEncoder, Persistence, ServerHeaders};
use crate::http::status::{forbids_body, MAX_STATUS};
use crate::http::token::{check_handler_header, is_field_value, list_contains, HeaderRejection};
use crate::python::logging::log_warning;
use crate::python::reply_batch;
use crate::python::request::Client;
use crate::python::stream::{EventStream, HttpStream};
use crate::python::type_name::type_name;

/// Bodies at least this large, given as `bytes`, are sent from the object itself (kept alive
/// until written) instead of being copied; below it a copy is cheaper than the bookkeeping.
const SHARE_BODY_MIN: usize = 16 * 1024;

/// A response body: borrowed for the time of encoding (then copied), or shared.
enum Body<'a> {
    Borrowed(&'a [u8]),
    Shared(Bytes),
}

impl Body<'_> {
    fn as_slice(&self) -> &[u8] {
        match self {
            Body::Borrowed(bytes) => bytes,
            Body::Shared(bytes) => bytes,
        }
    }
}

/// A head encoded and the reply channel taken: what every way of answering starts with.
struct Started {
    bytes: Vec<u8>,
    persistence: Persistence,
    reply: ReplySender,
}

struct State {
    reply: Option<ReplySender>,
    server_identifier: Option<String>,
}

/// The response to one request; send it once with ``send``, ``send_raw`` or ``json``.
#[pyclass(frozen, module = "godottpd._godottpd", skip_from_py_object)]
pub struct HttpResponse {
    context: ReplyContext,
    state: Mutex<State>,
    headers: PyOnceLock<Py<PyDict>>,
    cookies: PyOnceLock<Py<PyList>>,
}

impl HttpResponse {
    pub fn new(context: ReplyContext, reply: ReplySender) -> Self {
        HttpResponse {
            context,
            state: Mutex::new(State {
                reply: Some(reply),
                server_identifier: None,
            }),
            headers: PyOnceLock::new(),
            cookies: PyOnceLock::new(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn is_sent(&self) -> bool {
        self.state().reply.is_none()
    }

    /// Encodes and hands over the response; the one way every `send*` ends.
    fn finish(
        &self,
        py: Python<'_>,
        status: u16,
        content_type: &[u8],
        body: &[u8],
    ) -> PyResult<()> {
        self.finish_body(py, status, content_type, Body::Borrowed(body))
    }

    fn finish_body(
        &self,
        py: Python<'_>,
        status: u16,
        content_type: &[u8],
        body: Body<'_>,
    ) -> PyResult<()> {
        let shared = matches!(body, Body::Shared(_));
        let body_slice = body.as_slice();
        let length = BodyFraming::Length(body_slice.len() as u64);
        let reserve = if shared { 0 } else { body_slice.len() };
        let Started {
            mut bytes,
            persistence,
            reply,
        } = self.start(py, status, content_type, length, false, reserve)?;
        let mut shared_body = Bytes::new();
        if !self.context.head_only && !forbids_body(status) {
            match body {
                Body::Borrowed(body) => bytes.extend_from_slice(body),
                Body::Shared(body) => shared_body = body,
            }
        }
        reply_batch::reply(
            reply,
            Outgoing::new(status, bytes, shared_body, persistence),
        );
        Ok(())
    }

    /// The handler's headers and cookies, validated, as `(name, value)` pairs; and whether
    /// it asked for `Connection: close`.
    fn handler_headers(&self, py: Python<'_>) -> PyResult<(Vec<(String, String)>, bool)> {
        let mut lines = Vec::new();
        let mut close = false;
        if let Some(headers) = self.headers.get(py) {
            for (name, value) in headers.bind(py).iter() {
                let name = header_text(&name, "header name")?;
                let value = header_text(&value, "header value")?;
                let value = check_header(&name, &value)?.to_owned();
                if name.eq_ignore_ascii_case("connection") {
                    // Persistence is the server's: `close` is honoured, the rest is ours to say.
                    close |= list_contains(value.as_bytes(), "close");
                    continue;
                }
                lines.push((name, value));
            }
        }
        if let Some(cookies) = self.cookies.get(py) {
            for cookie in cookies.bind(py).iter() {
                let cookie = header_text(&cookie, "cookie")?;
                if !is_field_value(cookie.as_bytes()) || cookie.is_empty() {
                    return Err(PyValueError::new_err(format!(
                        "cookie {cookie:?} is empty or holds a control character"
                    )));
                }
                lines.push(("Set-Cookie".to_owned(), cookie));
            }
        }
        Ok((lines, close))
    }

    /// Whether this response closes its connection, given what the handler asked for.
    fn persistence(&self, close: bool) -> Persistence {
        if close
            || self.context.persistence == Persistence::Close
            || self.context.connection.server_stopping()
        {
            Persistence::Close
        } else {
            self.context.persistence
        }
    }

    /// Encodes the head and takes the reply channel: from here on the response is sent.
    /// `reserve` is room to leave for a body copied after the head.
    fn start(
        &self,
        py: Python<'_>,
        status: u16,
        content_type: &[u8],
        framing: BodyFraming,
        force_close: bool,
        reserve: usize,
    ) -> PyResult<Started> {
        if self.is_sent() {
            return Err(PyRuntimeError::new_err(
                "this response has already been sent",
            ));
        }
        let (headers, close) = self.handler_headers(py)?;
        let mut bytes = Vec::with_capacity(256 + reserve);
        let mut head = HeadEncoder::new(&mut bytes, status);
        for (name, value) in &headers {
            head.header(name.as_bytes(), value.as_bytes());
        }
        let mut state = self.state();
        let Some(reply) = state.reply.take() else {
            return Err(PyRuntimeError::new_err(
                "this response has already been sent",
            ));
        };
        let server = state
            .server_identifier
            .as_deref()
            .unwrap_or(&**self.context.server_identifier);
        let persistence = self.persistence(close || force_close);
        let cors_lines = self.context.cors_lines.as_deref().unwrap_or_default();
        let defaults = ServerHeaders {
            server: server.as_bytes(),
            extra_lines: cors_lines,
            persistence,
        };
        head.finish_framed(&defaults, content_type, framing);
        drop(state);
        Ok(Started {
            bytes,
            persistence,
            reply,
        })
    }

    /// Starts a streamed body: the head goes to the connection now, with the queue the
    /// body's pieces then take (see `app::stream`). Chunked on HTTP/1.1; close-delimited on
    /// HTTP/1.0; for HEAD, 204 and 304 the head alone, and what is written is dropped.
    pub(crate) fn start_stream(
        &self,
        py: Python<'_>,
        status: u16,
        content_type: &[u8],
        heartbeat: Option<Duration>,
    ) -> PyResult<Arc<StreamQueue>> {
        let http10 = self.context.request.head.http10;
        let framing = if http10 {
            BodyFraming::UntilClose
        } else {
            BodyFraming::Chunked
        };
        let Started {
            bytes,
            persistence,
            reply,
        } = self.start(py, status, content_type, framing, http10, 0)?;
        let no_body = self.context.head_only || forbids_body(status);
        let (queue, stream) = if no_body {
            (StreamQueue::discarding(), None)
        } else {
            let queue = StreamQueue::new(self.context.connection.stream_buffer);
            let body = StreamBody {
                reader: StreamReader {
                    queue: queue.clone(),
                },
                framing,
                heartbeat,
            };
            (queue, Some(body))
        };
        // If the connection is gone, the body is dropped with the answer, which marks the
        // queue gone: the first write then raises ConnectionError.
        let mut outgoing = Outgoing::new(status, bytes, Bytes::new(), persistence);
        outgoing.stream = stream;
        let _ = reply.send(outgoing);
        Ok(queue)
    }

    /// The head of an event stream: `text/event-stream`, `Cache-Control: no-cache` unless
    /// the handler set its own, a heartbeat comment after `heartbeat` idle seconds.
    pub(crate) fn start_event_stream(
        &self,
        py: Python<'_>,
        heartbeat: Option<f64>,
    ) -> PyResult<Arc<StreamQueue>> {
        let heartbeat = match heartbeat {
            None => None,
            Some(seconds) if seconds.is_finite() && seconds > 0.0 && seconds < 1e9 => {
                Some(Duration::from_secs_f64(seconds))
            }
            Some(seconds) => {
                return Err(PyValueError::new_err(format!(
                    "heartbeat must be a positive number of seconds or None, not {seconds}"
                )))
            }
        };
        let headers = self.headers(py);
        let headers = headers.bind(py);
        let has_cache_control = headers.keys().iter().any(|key| {
            key.extract::<String>()
                .is_ok_and(|key| key.eq_ignore_ascii_case("cache-control"))
        });
        if !has_cache_control {
            headers.set_item("Cache-Control", "no-cache")?;
        }
        self.start_stream(py, 200, b"text/event-stream", heartbeat)
    }

    /// Answers with a file, as the file router does (see `app::files::respond_one`).
    fn answer_with_file(
        &self,
        py: Python<'_>,
        path: &std::path::Path,
        content_type: Option<&str>,
    ) -> PyResult<()> {
        if self.is_sent() {
            return Err(PyRuntimeError::new_err(
                "this response has already been sent",
            ));
        }
        let (headers, close) = self.handler_headers(py)?;
        let pairs: Vec<(&[u8], &[u8])> = headers
            .iter()
            .map(|(name, value)| (name.as_bytes(), value.as_bytes()))
            .collect();
        let mut state = self.state();
        let Some(reply) = state.reply.take() else {
            return Err(PyRuntimeError::new_err(
                "this response has already been sent",
            ));
        };
        let server = state
            .server_identifier
            .clone()
            .unwrap_or_else(|| self.context.server_identifier.to_string());
        drop(state);
        let one = OneFile {
            head: &self.context.request.head,
            head_only: self.context.head_only,
            persistence: self.persistence(close),
            server_identifier: &server,
            extra_lines: self.context.cors_lines.as_deref().unwrap_or_default(),
            headers: &pairs,
            content_type,
        };
        // stat, open and the head: microseconds, as on the file router's I/O thread; the
        // body goes out later with sendfile(2), on the connection.
        let outgoing = py.detach(|| respond_one(path, &one));
        reply_batch::reply(reply, outgoing);
        Ok(())
    }

    /// Sends a plain-text error status if nothing was sent yet (handler raised or dropped it).
    pub fn send_error_if_unsent(&self, py: Python<'_>, status: u16, text: &str) -> bool {
        if self.is_sent() {
            return false;
        }
        // Headers the handler set may be what made it fail; an error page goes out without them.
        if let Some(headers) = self.headers.get(py) {
            headers.bind(py).clear();
        }
        if let Some(cookies) = self.cookies.get(py) {
            let _ = cookies.bind(py).call_method0("clear");
        }
        self.finish(py, status, b"text/plain; charset=utf-8", text.as_bytes())
            .is_ok()
    }

    pub fn describe(&self) -> String {
        format!(
            "{} {}",
            self.context.request.head.method.as_str(),
            self.context.request.path
        )
    }
}

fn check_status(status: i64) -> PyResult<u16> {
    match u16::try_from(status) {
        Ok(code @ 200..=MAX_STATUS) => Ok(code),
        Ok(100..=199) => Err(PyValueError::new_err(format!(
            "status {status} is informational (1xx) and cannot be the final response"
        ))),
        _ => Err(PyValueError::new_err(format!(
            "status {status} is not an HTTP status code (100 to 599)"
        ))),
    }
}

fn header_text(object: &Bound<'_, PyAny>, what: &str) -> PyResult<String> {
    if let Ok(text) = object.cast::<PyString>() {
        return Ok(text.to_cow()?.into_owned());
    }
    if object.is_instance_of::<PyInt>() || object.is_instance_of::<PyFloat>() {
        return Ok(object.str()?.to_cow()?.into_owned());
    }
    let type_name = type_name(object);
    Err(PyTypeError::new_err(format!(
        "{what} must be a str, not {type_name}"
    )))
}

/// The rules for one handler-set header (RFC 9110 §5.1, §5.5); returns the trimmed value.
fn check_header<'v>(name: &str, value: &'v str) -> PyResult<&'v str> {
    check_handler_header(name, value).map_err(|rejection| {
        PyValueError::new_err(match rejection {
            HeaderRejection::NameNotToken => format!("header name {name:?} is not an HTTP token"),
            HeaderRejection::ControlCharacter => format!(
                "header {name}: value {value:?} holds a control character (CR, LF, NUL, ...)"
            ),
            HeaderRejection::ServerOwned => {
                format!("{name} is set by the server from the body; it cannot be set by hand")
            }
        })
    })
}

fn body_bytes(data: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if let Ok(bytes) = data.cast::<PyBytes>() {
        return Ok(bytes.as_bytes().to_vec());
    }
    if let Ok(array) = data.cast::<PyByteArray>() {
        return Ok(array.to_vec());
    }
    if data.is_instance_of::<PyMemoryView>() {
        let copied = data.call_method0("tobytes")?;
        return Ok(copied.cast::<PyBytes>()?.as_bytes().to_vec());
    }
    let type_name = type_name(data);
    Err(PyTypeError::new_err(format!(
        "data must be bytes, bytearray or memoryview, not {type_name}"
    )))
}

/// `text/*` without a charset gets `; charset=utf-8`, since `send` encodes str as UTF-8.
fn text_content_type(content_type: &str) -> Cow<'_, str> {
    // The usual types, without an allocation per response.
    match content_type {
        "text/html" => return Cow::Borrowed("text/html; charset=utf-8"),
        "text/plain" => return Cow::Borrowed("text/plain; charset=utf-8"),
        _ => {}
    }
    let bytes = content_type.as_bytes();
    let is_text = bytes.len() >= 5 && bytes[..5].eq_ignore_ascii_case(b"text/");
    let has_charset = bytes
        .windows(7)
        .any(|window| window.eq_ignore_ascii_case(b"charset"));
    if is_text && !has_charset {
        Cow::Owned(format!("{content_type}; charset=utf-8"))
    } else {
        Cow::Borrowed(content_type)
    }
}

fn check_content_type(content_type: &str) -> PyResult<()> {
    if !is_field_value(content_type.as_bytes()) {
        return Err(PyValueError::new_err(format!(
            "content type {content_type:?} holds a control character"
        )));
    }
    Ok(())
}

#[pymethods]
impl HttpResponse {
    /// The connection this response goes to.
    #[getter]
    fn client(&self) -> Client {
        Client::new(self.context.connection.clone())
    }

    /// Sent as ``Server``; an empty string sends no ``Server`` header.
    #[getter(server_identifier)]
    fn get_server_identifier(&self) -> String {
        self.state()
            .server_identifier
            .clone()
            .unwrap_or_else(|| self.context.server_identifier.to_string())
    }

    #[setter(server_identifier)]
    fn set_server_identifier(&self, value: &str) -> PyResult<()> {
        if !is_field_value(value.as_bytes()) {
            return Err(PyValueError::new_err(format!(
                "server identifier {value:?} holds a control character"
            )));
        }
        self.state().server_identifier = Some(value.to_owned());
        Ok(())
    }

    /// The headers to send; live, so entries assigned here are sent too.
    #[getter]
    fn headers(&self, py: Python<'_>) -> Py<PyDict> {
        self.headers
            .get_or_init(py, || PyDict::new(py).unbind())
            .clone_ref(py)
    }

    /// The ``Set-Cookie`` values to send, one line each.
    #[getter]
    fn cookies(&self, py: Python<'_>) -> Py<PyList> {
        self.cookies
            .get_or_init(py, || PyList::empty(py).unbind())
            .clone_ref(py)
    }

    /// Whether the response has been sent.
    #[getter(is_sent)]
    fn is_sent_flag(&self) -> bool {
        self.is_sent()
    }

    /// Sends a bytes-like body as it is.
    #[pyo3(signature = (status_code, data = None, content_type = "application/octet-stream"))]
    fn send_raw(
        &self,
        py: Python<'_>,
        status_code: i64,
        data: Option<&Bound<'_, PyAny>>,
        content_type: &str,
    ) -> PyResult<()> {
        let status = check_status(status_code)?;
        check_content_type(content_type)?;
        match data {
            // bytes are immutable: encode straight from the object, without a copy first.
            Some(data) => match data.cast::<PyBytes>() {
                Ok(bytes) if bytes.as_bytes().len() >= SHARE_BODY_MIN => {
                    // Kept alive by the connection until written; its reference is released
                    // at the handler thread's next attach (PyO3's deferred reference pool).
                    let shared = Bytes::from_owner(PyBackedBytes::from(bytes.clone()));
                    self.finish_body(py, status, content_type.as_bytes(), Body::Shared(shared))
                }
                Ok(bytes) => self.finish(py, status, content_type.as_bytes(), bytes.as_bytes()),
                Err(_) => {
                    // bytearray and memoryview are copied once (they may change after the
                    // call); a large copy is then handed over as it is, not copied again.
                    let copied = body_bytes(data)?;
                    if copied.len() >= SHARE_BODY_MIN {
                        self.finish_body(
                            py,
                            status,
                            content_type.as_bytes(),
                            Body::Shared(Bytes::from(copied)),
                        )
                    } else {
                        self.finish(py, status, content_type.as_bytes(), &copied)
                    }
                }
            },
            None => self.finish(py, status, content_type.as_bytes(), b""),
        }
    }

    /// Sends a ``str`` body, UTF-8 encoded; ``text/*`` types get ``; charset=utf-8``.
    #[pyo3(signature = (status_code, data = None, content_type = "text/html"))]
    fn send(
        &self,
        py: Python<'_>,
        status_code: i64,
        data: Option<&Bound<'_, PyAny>>,
        content_type: &str,
    ) -> PyResult<()> {
        let status = check_status(status_code)?;
        check_content_type(content_type)?;
        let text = match data {
            None => Cow::Borrowed(""),
            Some(data) => data
                .cast::<PyString>()
                .map_err(|_| {
                    let type_name = type_name(data);
                    PyTypeError::new_err(format!(
                        "data must be a str, not {type_name} (use send_raw for bytes)"
                    ))
                })?
                .to_cow()?,
        };
        let content_type = text_content_type(content_type);
        self.finish(py, status, content_type.as_bytes(), text.as_bytes())
    }

    /// Sends a dict or a list as ``application/json``.
    fn json(&self, py: Python<'_>, status_code: i64, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let status = check_status(status_code)?;
        if !data.is_instance_of::<PyDict>() && !data.is_instance_of::<PyList>() {
            let type_name = type_name(data);
            return Err(PyTypeError::new_err(format!(
                "json() takes a dict or a list, not {type_name}"
            )));
        }
        let body = crate::python::json::to_json(data)?;
        self.finish(py, status, b"application/json", &body)
    }

    /// Sets a header, replacing any of the same name (case-insensitive).
    fn set(&self, py: Python<'_>, field: &str, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let value = header_text(value, "header value")?;
        let value = check_header(field, &value)?.to_owned();
        let headers = self.headers(py);
        let headers = headers.bind(py);
        let same_name: Vec<Bound<'_, PyAny>> = headers
            .keys()
            .iter()
            .filter(|key| {
                key.extract::<String>()
                    .is_ok_and(|key| key.eq_ignore_ascii_case(field))
            })
            .collect();
        for key in same_name {
            headers.del_item(key)?;
        }
        headers.set_item(field, value)
    }

    /// Adds a cookie, sent as its own ``Set-Cookie`` line.
    ///
    /// Options as GodotTPD spells them or in Python's spelling: ``domain``, ``path``,
    /// ``expires`` (a ``datetime``, a Unix time or an HTTP date), ``max-age``/``max_age``
    /// (an ``int`` or a string of digits), ``secure``, ``httpOnly``/``http_only``
    /// (``True`` or ``"true"``), ``sameSite``/``same_site`` (``"Strict"``, ``"Lax"``,
    /// ``"None"``, or ``True`` for Strict), ``partitioned`` (needs ``secure``). A bad
    /// name, value or option, or an unknown option, is a ``ValueError``.
    #[pyo3(signature = (name, value, options = None))]
    fn cookie(
        &self,
        py: Python<'_>,
        name: &str,
        value: &str,
        options: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let mut spec = CookieSpec {
            name: name.to_owned(),
            value: value.to_owned(),
            ..CookieSpec::default()
        };
        if let Some(options) = options.filter(|options| !options.is_none()) {
            let options = options
                .cast::<PyDict>()
                .map_err(|_| PyTypeError::new_err("cookie options must be a dict"))?;
            for (key, option_value) in options.iter() {
                let key: String = key
                    .extract()
                    .map_err(|_| PyTypeError::new_err("cookie option names must be str"))?;
                apply_cookie_option(&mut spec, &key, &option_value)?;
            }
        }
        let rendered = spec.render().map_err(PyValueError::new_err)?;
        self.cookies(py).bind(py).append(rendered)
    }

    /// Sends the head now and returns the body's ``HttpStream`` (chunked on HTTP/1.1,
    /// close-delimited on HTTP/1.0, no body for HEAD).
    #[pyo3(signature = (status_code, content_type = "application/octet-stream"))]
    fn stream(&self, py: Python<'_>, status_code: i64, content_type: &str) -> PyResult<HttpStream> {
        let status = check_status(status_code)?;
        check_content_type(content_type)?;
        let content_type = text_content_type(content_type);
        let queue = self.start_stream(py, status, content_type.as_bytes(), None)?;
        Ok(HttpStream::new(queue))
    }

    /// Starts a Server-Sent Events response (``text/event-stream``, ``Cache-Control:
    /// no-cache``); a comment goes out after ``heartbeat`` idle seconds.
    #[pyo3(signature = (heartbeat = 15.0))]
    fn event_stream(&self, py: Python<'_>, heartbeat: Option<f64>) -> PyResult<EventStream> {
        let queue = self.start_event_stream(py, heartbeat)?;
        Ok(EventStream::new(queue, false))
    }

    /// Sends a file as ``HttpFileRouter`` does: validators, 304, Range, HEAD, sendfile;
    /// the type from the name unless ``content_type`` is given.
    #[pyo3(signature = (path, content_type = None))]
    fn send_file(
        &self,
        py: Python<'_>,
        path: std::path::PathBuf,
        content_type: Option<&str>,
    ) -> PyResult<()> {
        if let Some(content_type) = content_type {
            check_content_type(content_type)?;
        }
        self.answer_with_file(py, &path, content_type)
    }

    fn __repr__(&self) -> String {
        format!(
            "<HttpResponse to {} sent={}>",
            self.describe(),
            self.is_sent()
        )
    }
}

fn apply_cookie_option(spec: &mut CookieSpec, key: &str, value: &Bound<'_, PyAny>) -> PyResult<()> {
    let attribute = Attribute::from_option_name(key).ok_or_else(|| {
        PyValueError::new_err(format!(
            "unknown cookie option {key:?} (known: domain, path, expires, max-age, secure, httpOnly, sameSite, partitioned)"
        ))
    })?;
    match attribute {
        Attribute::Domain => spec.domain = Some(option_text(value, key)?),
        Attribute::Path => spec.path = Some(option_text(value, key)?),
        Attribute::Expires => spec.expires = Some(expiry_time(value)?),
        Attribute::MaxAge => spec.max_age = Some(max_age(value)?),
        Attribute::Secure => spec.secure = option_flag(value, key)?,
        Attribute::HttpOnly => spec.http_only = option_flag(value, key)?,
        Attribute::Partitioned => spec.partitioned = option_flag(value, key)?,
        Attribute::SameSite => {
            // GodotTPD writes `{"sameSite": true}` for Strict; `False` sends no attribute.
            if value.is_instance_of::<pyo3::types::PyBool>() {
                spec.same_site = value.is_truthy()?.then_some(SameSite::Strict);
                return Ok(());
            }
            let text = option_text(value, key)?;
            spec.same_site = Some(SameSite::parse(&text).ok_or_else(|| {
                PyValueError::new_err(format!(
                    "cookie sameSite must be Strict, Lax, None or True (Strict), not {text:?}"
                ))
            })?);
        }
    }
    Ok(())
}

/// `max-age`: an int, or a string of digits as GDScript code must write it (`"60"`).
/// RFC 6265 §5.2.2: `max-age-av = "Max-Age=" non-zero-digit *DIGIT`, a leading `-` allowed
/// when parsing (it expires the cookie at once).
fn max_age(value: &Bound<'_, PyAny>) -> PyResult<i64> {
    let invalid =
        || PyValueError::new_err("cookie max-age must be an int or a string of digits (seconds)");
    if value.is_instance_of::<pyo3::types::PyBool>() {
        return Err(invalid());
    }
    if value.is_instance_of::<PyInt>() {
        return value.extract().map_err(|_| {
            PyValueError::new_err("cookie max-age is out of range (a 64-bit number of seconds)")
        });
    }
    let text: String = value.extract().map_err(|_| invalid())?;
    let text = text.trim();
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    text.parse().map_err(|_| {
        PyValueError::new_err("cookie max-age is out of range (a 64-bit number of seconds)")
    })
}

fn option_text(value: &Bound<'_, PyAny>, key: &str) -> PyResult<String> {
    value
        .extract::<String>()
        .map_err(|_| PyValueError::new_err(format!("cookie option {key:?} must be a str")))
}

/// A flag option: `True`/`False`, or GodotTPD's strings `"true"`/`"false"`.
fn option_flag(value: &Bound<'_, PyAny>, key: &str) -> PyResult<bool> {
    if let Ok(text) = value.extract::<String>() {
        return match text.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" | "" => Ok(false),
            _ => Err(PyValueError::new_err(format!(
                "cookie option {key:?} must be true or false, not {text:?}"
            ))),
        };
    }
    value.is_truthy()
}

/// `expires`: a `datetime` (naive ones are local time, as `datetime.timestamp()` takes
/// them), a Unix time, or a ready HTTP date.
fn expiry_time(value: &Bound<'_, PyAny>) -> PyResult<SystemTime> {
    let seconds: f64 = if let Ok(text) = value.extract::<String>() {
        return httpdate::parse_http_date(&text).map_err(|_| {
            PyValueError::new_err(format!("cookie expires {text:?} is not an HTTP date"))
        });
    } else if value.hasattr("timestamp")? {
        value.call_method0("timestamp")?.extract()?
    } else if (value.is_instance_of::<PyInt>() || value.is_instance_of::<PyFloat>())
        && !value.is_instance_of::<pyo3::types::PyBool>()
    {
        value.extract()?
    } else {
        return Err(PyValueError::new_err(
            "cookie expires must be a datetime, a Unix time or an HTTP date",
        ));
    };
    if !seconds.is_finite() || !(0.0..=253_402_300_799.0).contains(&seconds) {
        return Err(PyValueError::new_err(
            "cookie expires is out of range (1970 to 9999)",
        ));
    }
    Ok(UNIX_EPOCH + Duration::from_secs(seconds as u64))
}

impl Drop for HttpResponse {
    fn drop(&mut self) {
        let unsent = self
            .state
            .get_mut()
            .map(|state| state.reply.is_some())
            .unwrap_or(false);
        if !unsent || !self.context.connection.is_open() {
            return;
        }
        // Dropped while attached (Python deallocates it), so attaching again is free.
        Python::attach(|py| {
            if self.send_error_if_unsent(py, 500, "Internal Server Error") {
                log_warning(
                    py,
                    &format!(
                        "response to {} was dropped without being sent; sent 500",
                        self.describe()
                    ),
                );
            }
        });
    }
}

impl HttpResponse {
    /// The route's `Allow` value, for the default handlers' 405.
    pub fn allow(&self) -> &str {
        &self.context.allow
    }

    pub fn send_method_not_allowed(&self, py: Python<'_>) -> PyResult<()> {
        let allow = self.allow().to_owned();
        self.headers(py).bind(py).set_item("Allow", allow)?;
        self.finish(py, 405, b"text/plain; charset=utf-8", b"Method Not Allowed")
    }
}
