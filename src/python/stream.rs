//! `HttpStream` and `EventStream`: a response body written piece by piece, from any thread.
//!
//! Each `write()` (or `send()`) copies its data into the stream's queue (`app::stream`) and
//! wakes the connection, which sends it at once. Past `stream_buffer` queued bytes, a write
//! waits for the client to catch up, detached from the interpreter, so other Python threads
//! run meanwhile; it raises `ConnectionError` as soon as the connection learns that the
//! client is gone. A stream dropped unclosed is closed (the body ends properly).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use pyo3::exceptions::{PyConnectionError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyList, PyMemoryView, PyString, PyTuple};

use crate::app::stream::StreamQueue;
use crate::http::sse::{encode_comment, encode_event, Event};
use crate::python::event_loop::{self, Woken};
use crate::python::inline_io;
use crate::python::type_name::type_name;

/// How often a waiting write wakes up to let Ctrl-C through (in `poll()` mode it runs on
/// the main thread).
const WAIT_SLICE: Duration = Duration::from_millis(100);

/// A thread that also drives every connection (the inline mode's loop thread, the default
/// mode's handler threads): a write there must never wait for one (see the README's
/// "Streaming").
pub(crate) fn on_inline_loop() -> bool {
    inline_io::on_loop()
}

fn gone() -> PyErr {
    PyConnectionError::new_err("the client has closed the connection")
}

/// The part both stream classes share.
pub(crate) struct Writer {
    queue: Arc<StreamQueue>,
    closed: AtomicBool,
}

impl Writer {
    pub(crate) fn new(queue: Arc<StreamQueue>) -> Self {
        Writer {
            queue,
            closed: AtomicBool::new(false),
        }
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire) || self.queue.is_gone() || self.queue.is_finished()
    }

    /// Queues one piece, then waits while the client is more than the budget behind.
    fn write(&self, py: Python<'_>, piece: Bytes) -> PyResult<()> {
        if self.closed.load(Ordering::Acquire) || self.queue.is_finished() {
            return Err(PyValueError::new_err("write to a closed stream"));
        }
        self.queue.push(piece).map_err(|_| gone())?;
        if !self.queue.over_budget() {
            return Ok(());
        }
        if event_loop::on_event_loop(py) {
            // A coroutine never blocks its loop: it queues past the budget and awaits
            // `drain()` for the client to catch up.
            return Ok(());
        }
        if on_inline_loop() {
            let queue = self.queue.clone();
            if let Some(room) = py.detach(|| inline_io::drive(async move { queue.room().await })) {
                return room.map_err(|_| gone());
            }
            // Nested in another wait on the loop: it must not wait again (the queue grows
            // past its budget by this piece instead).
            return Ok(());
        }
        loop {
            match py.detach(|| self.queue.wait_for_room(WAIT_SLICE)) {
                Ok(true) => return Ok(()),
                Ok(false) => py.check_signals()?,
                Err(_) => return Err(gone()),
            }
        }
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.queue.finish();
    }

    /// The awaitable of `drain()`: done once no more than the budget waits for the client.
    fn drain<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        if self.queue.is_gone() {
            return Err(gone());
        }
        let queue = self.queue.clone();
        event_loop::drain(py, self.queue.over_budget(), async move {
            match queue.room().await {
                Ok(()) => Woken::Ready,
                Err(_) => Woken::Gone,
            }
        })
    }
}

/// A piece of body from `bytes`, `bytearray`, `memoryview` or `str` (UTF-8), copied: the
/// caller may reuse its buffer as soon as `write()` returns.
fn piece(data: &Bound<'_, PyAny>) -> PyResult<Bytes> {
    if let Ok(bytes) = data.cast::<PyBytes>() {
        return Ok(Bytes::copy_from_slice(bytes.as_bytes()));
    }
    if let Ok(text) = data.cast::<PyString>() {
        return Ok(Bytes::copy_from_slice(text.to_cow()?.as_bytes()));
    }
    if let Ok(array) = data.cast::<PyByteArray>() {
        return Ok(Bytes::from(array.to_vec()));
    }
    if data.is_instance_of::<PyMemoryView>() {
        let copied = data.call_method0("tobytes")?;
        return Ok(Bytes::copy_from_slice(copied.cast::<PyBytes>()?.as_bytes()));
    }
    let type_name = type_name(data);
    Err(PyTypeError::new_err(format!(
        "data must be bytes, bytearray, memoryview or str, not {type_name}"
    )))
}

/// A response body sent as it is written; from any thread.
#[pyclass(frozen, module = "godottpd._godottpd", skip_from_py_object)]
pub struct HttpStream {
    writer: Writer,
}

impl HttpStream {
    pub(crate) fn new(queue: Arc<StreamQueue>) -> Self {
        HttpStream {
            writer: Writer::new(queue),
        }
    }
}

#[pymethods]
impl HttpStream {
    /// Queues ``data`` (``str`` as UTF-8) and returns; past ``stream_buffer`` queued bytes
    /// it waits, without the interpreter lock, for the client to catch up. Raises
    /// ``ConnectionError`` once the client is gone, ``ValueError`` after ``close()``.
    fn write(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let piece = piece(data)?;
        self.writer.write(py, piece)
    }

    /// Ends the body; idempotent. A stream dropped unclosed is closed for you.
    fn close(&self) {
        self.writer.close();
    }

    /// In a coroutine handler: ``await stream.drain()`` waits until no more than
    /// ``stream_buffer`` bytes wait for the client (``write()`` on the event loop never
    /// blocks). Raises ``ConnectionError`` once the client is gone.
    fn drain<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.writer.drain(py)
    }

    /// Whether the stream is closed, or its client gone.
    #[getter]
    fn closed(&self) -> bool {
        self.writer.is_closed()
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_exc_info))]
    fn __exit__(&self, _exc_info: &Bound<'_, PyTuple>) -> bool {
        self.writer.close();
        false
    }

    fn __repr__(&self) -> String {
        format!("<HttpStream closed={}>", self.writer.is_closed())
    }
}

impl Drop for HttpStream {
    fn drop(&mut self) {
        self.writer.close();
    }
}

/// An event's `data` as text: a `str` as it is, a dict or a list as JSON.
fn event_data(data: &Bound<'_, PyAny>) -> PyResult<String> {
    if let Ok(text) = data.cast::<PyString>() {
        return Ok(text.to_cow()?.into_owned());
    }
    if data.is_instance_of::<PyDict>() || data.is_instance_of::<PyList>() {
        let json = crate::python::json::to_json(data)?;
        return String::from_utf8(json).map_err(|_| PyValueError::new_err("JSON is not UTF-8"));
    }
    let type_name = type_name(data);
    Err(PyTypeError::new_err(format!(
        "event data must be a str, a dict or a list, not {type_name}"
    )))
}

/// Encodes one event (validated), ready for any number of streams.
pub(crate) fn encode(
    data: &Bound<'_, PyAny>,
    event: Option<&str>,
    id: Option<&str>,
    retry: Option<i64>,
) -> PyResult<Bytes> {
    let data = event_data(data)?;
    let retry = match retry {
        None => None,
        Some(milliseconds) => Some(u64::try_from(milliseconds).map_err(|_| {
            PyValueError::new_err(format!(
                "retry must be a number of milliseconds >= 0, not {milliseconds}"
            ))
        })?),
    };
    let mut out = Vec::new();
    let event = Event {
        data: &data,
        event,
        id,
        retry,
    };
    encode_event(&mut out, &event).map_err(|error| PyValueError::new_err(error.to_string()))?;
    Ok(Bytes::from(out))
}

/// A Server-Sent Events stream (WHATWG event-stream format).
#[pyclass(frozen, module = "godottpd._godottpd", skip_from_py_object)]
pub struct EventStream {
    writer: Writer,
    /// Held by an `EventHub`: dropping this object leaves the stream open for the hub.
    held_by_hub: bool,
}

impl EventStream {
    pub(crate) fn new(queue: Arc<StreamQueue>, held_by_hub: bool) -> Self {
        EventStream {
            writer: Writer::new(queue),
            held_by_hub,
        }
    }
}

#[pymethods]
impl EventStream {
    /// Sends one event; multi-line ``data`` becomes one ``data:`` line each, a dict or a
    /// list is sent as JSON. CR, LF or NUL in ``event`` or ``id`` is a ``ValueError``;
    /// ``retry`` is in milliseconds. Raises ``ConnectionError`` once the client is gone.
    #[pyo3(signature = (data, event = None, id = None, retry = None))]
    fn send(
        &self,
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        event: Option<&str>,
        id: Option<&str>,
        retry: Option<i64>,
    ) -> PyResult<()> {
        let bytes = encode(data, event, id, retry)?;
        self.writer.write(py, bytes)
    }

    /// Sends a comment line (ignored by clients).
    fn comment(&self, py: Python<'_>, text: &str) -> PyResult<()> {
        let mut out = Vec::new();
        encode_comment(&mut out, text);
        self.writer.write(py, Bytes::from(out))
    }

    /// Ends the stream; idempotent.
    fn close(&self) {
        self.writer.close();
    }

    /// In a coroutine handler: ``await events.drain()`` waits until no more than
    /// ``stream_buffer`` bytes wait for the client (``send()`` on the event loop never
    /// blocks). Raises ``ConnectionError`` once the client is gone.
    fn drain<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.writer.drain(py)
    }

    /// Whether the stream is closed, or its client gone.
    #[getter]
    fn closed(&self) -> bool {
        self.writer.is_closed()
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_exc_info))]
    fn __exit__(&self, _exc_info: &Bound<'_, PyTuple>) -> bool {
        self.writer.close();
        false
    }

    fn __repr__(&self) -> String {
        format!("<EventStream closed={}>", self.writer.is_closed())
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        if !self.held_by_hub {
            self.writer.close();
        }
    }
}
