//! `request.form()`: a `multipart/form-data` body as an iterator of `FormField`s, parsed
//! as it arrives (see `app::multipart`); a file part is saved piece by piece.
//!
//! The parser is asynchronous (`multer`); a handler thread drives it with a plain executor,
//! detached from the interpreter, and the inline mode's loop thread by driving its runtime
//! (so every connection's I/O goes on meanwhile, as for `request.stream()`).

use std::future::Future;
use std::io::Write as _;
use std::sync::{Arc, Mutex, PoisonError};

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::app::multipart::form_error;
use crate::app::upload::BodyReader;
use crate::python::errors::BadRequest;
use crate::python::request::body_error;

/// Runs `future` to its end without the interpreter lock.
fn wait<F>(py: Python<'_>, future: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    let mut future = Box::pin(future);
    if crate::python::stream::on_inline_loop() {
        if let Some(output) = py.detach(|| crate::python::inline_io::drive(&mut future)) {
            return output;
        }
    }
    py.detach(|| futures_executor::block_on(&mut future))
}

fn to_py(py: Python<'_>, error: multer::Error) -> PyErr {
    match form_error(error) {
        Ok(body) => body_error(py, body),
        Err(message) => BadRequest::new_err(message),
    }
}

type Slot = Arc<Mutex<Option<multer::Field<'static>>>>;

struct Form {
    multipart: multer::Multipart<'static>,
    /// The field handed out last: it is dropped (its unread data skipped) before the next.
    current: Option<Slot>,
}

/// The parts of a ``multipart/form-data`` body, in order, as they arrive:
/// ``for field in request.form(): ...``. Reading the next one skips what is left of the
/// one before.
#[pyclass(frozen, module = "godottpd._godottpd", skip_from_py_object)]
pub struct FormFields {
    form: Mutex<Form>,
    /// Keeps a streamed body wanted while its form is read.
    _reader: Option<Arc<BodyReader>>,
}

impl FormFields {
    pub fn new(multipart: multer::Multipart<'static>, reader: Option<Arc<BodyReader>>) -> Self {
        FormFields {
            form: Mutex::new(Form {
                multipart,
                current: None,
            }),
            _reader: reader,
        }
    }
}

#[pymethods]
impl FormFields {
    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<FormField>> {
        let mut form = self.form.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = form.current.take() {
            drop(slot.lock().unwrap_or_else(PoisonError::into_inner).take());
        }
        let multipart = &mut form.multipart;
        let Some(field) = wait(py, multipart.next_field()).map_err(|error| to_py(py, error))?
        else {
            return Ok(None);
        };
        let name = field.name().map(str::to_owned);
        let filename = field.file_name().map(str::to_owned);
        let content_type = field.content_type().map(ToString::to_string);
        let slot: Slot = Arc::new(Mutex::new(Some(field)));
        form.current = Some(slot.clone());
        Ok(Some(FormField {
            field: slot,
            name,
            filename,
            content_type,
        }))
    }
}

/// One part of a ``multipart/form-data`` body: its ``name``, ``filename`` and
/// ``content_type`` (each ``None`` when absent), and its data, read once with ``read()``
/// or ``save(path)``.
#[pyclass(frozen, module = "godottpd._godottpd", skip_from_py_object)]
pub struct FormField {
    field: Slot,
    name: Option<String>,
    filename: Option<String>,
    content_type: Option<String>,
}

impl FormField {
    /// Feeds the rest of the field's data to `sink`; the bytes fed.
    fn drain(
        &self,
        py: Python<'_>,
        mut sink: impl FnMut(&[u8]) -> std::io::Result<()> + Send,
    ) -> PyResult<u64> {
        let mut slot = self.field.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(field) = slot.as_mut() else {
            return Err(pyo3::exceptions::PyRuntimeError::new_err(
                "this form field is gone: the form has moved on to the next one",
            ));
        };
        let outcome = wait(py, async {
            let mut total: u64 = 0;
            while let Some(chunk) = field.chunk().await.map_err(Ok)? {
                sink(&chunk).map_err(Err)?;
                total += chunk.len() as u64;
            }
            Ok::<u64, Result<multer::Error, std::io::Error>>(total)
        });
        match outcome {
            Ok(total) => Ok(total),
            Err(Ok(error)) => Err(to_py(py, error)),
            Err(Err(error)) => Err(error.into()),
        }
    }
}

#[pymethods]
impl FormField {
    /// The ``name`` of its ``Content-Disposition``.
    #[getter]
    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The ``filename`` of its ``Content-Disposition`` (a file part has one).
    #[getter]
    fn filename(&self) -> Option<&str> {
        self.filename.as_deref()
    }

    /// Its ``Content-Type``.
    #[getter]
    fn content_type(&self) -> Option<&str> {
        self.content_type.as_deref()
    }

    /// The rest of its data, whole: for small fields (a file part is better saved).
    fn read(&self, py: Python<'_>) -> PyResult<Py<PyBytes>> {
        let mut data = Vec::new();
        self.drain(py, |chunk| {
            data.extend_from_slice(chunk);
            Ok(())
        })?;
        Ok(PyBytes::new(py, &data).unbind())
    }

    /// Writes the rest of its data to the file ``path`` as it arrives, with bounded
    /// memory; returns the number of bytes written.
    fn save(&self, py: Python<'_>, path: std::path::PathBuf) -> PyResult<u64> {
        let mut file = std::fs::File::create(&path)?;
        self.drain(py, |chunk| file.write_all(chunk))
    }

    fn __repr__(&self) -> String {
        format!(
            "FormField(name={:?}, filename={:?}, content_type={:?})",
            self.name, self.filename, self.content_type
        )
    }
}
