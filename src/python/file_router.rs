//! `HttpFileRouter`: the Python face of a file router (the serving is `app::files`).
//!
//! It extends `HttpRouter` (`#[pyclass(extends = HttpRouter)]`), so `isinstance(files,
//! HttpRouter)` holds as in GodotTPD; `register_router` recognises it before looking for
//! Python handlers and answers its requests in Rust.

use std::path::PathBuf;
use std::sync::Arc;

use pyo3::exceptions::{PyOSError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use crate::app::files::{FileRoute, FileSettings, SettingsError};
use crate::python::router::HttpRouter;

/// Serves a folder, and everything below it, from the prefix it is registered at.
///
/// Answered entirely in Rust: files are streamed with ``sendfile``, with ``ETag``,
/// ``Last-Modified``, ``304``, single ranges and precompressed ``.br``/``.gz`` siblings.
/// No request can reach anything outside the folder (such requests get 404), and ``.gd``
/// files (Godot scripts) are never served.
///
/// The second positional argument may be GodotTPD's options dictionary
/// (``{"index_page": ..., "fallback_page": ..., "extensions": [...],
/// "exclude_extensions": [...]}``, plus ``cross_origin_isolation`` and ``cache_control``);
/// a key given both there and as a keyword is a ``TypeError``, an unknown key a
/// ``ValueError``. A missing folder raises ``FileNotFoundError`` naming it.
#[pyclass(frozen, extends = HttpRouter, module = "godottpd._godottpd", skip_from_py_object)]
pub struct HttpFileRouter {
    pub route: Arc<FileRoute>,
    path: String,
    settings: FileSettings,
}

/// The keyword arguments, as given (`None` when not given).
#[derive(Default)]
struct Given {
    index_page: Option<String>,
    fallback_page: Option<String>,
    extensions: Option<Vec<String>>,
    exclude_extensions: Option<Vec<String>>,
    cross_origin_isolation: Option<bool>,
    cache_control: Option<Option<String>>,
}

fn set_once<T>(slot: &mut Option<T>, key: &str, value: T) -> PyResult<()> {
    if slot.is_some() {
        return Err(PyTypeError::new_err(format!(
            "HttpFileRouter got {key:?} both in the options dict and as a keyword"
        )));
    }
    *slot = Some(value);
    Ok(())
}

fn strings(value: &Bound<'_, PyAny>, key: &str) -> PyResult<Vec<String>> {
    if value.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err(format!(
            "HttpFileRouter option {key:?} must be a list of str, not a str"
        )));
    }
    value.extract().map_err(|_| {
        PyTypeError::new_err(format!(
            "HttpFileRouter option {key:?} must be a list of str"
        ))
    })
}

/// GodotTPD's options dictionary, merged into the keywords.
fn apply_options(given: &mut Given, options: &Bound<'_, PyDict>) -> PyResult<()> {
    for (key, value) in options.iter() {
        let key: String = key
            .extract()
            .map_err(|_| PyTypeError::new_err("HttpFileRouter option names must be str"))?;
        let text = |value: &Bound<'_, PyAny>| {
            value.extract::<String>().map_err(|_| {
                PyTypeError::new_err(format!("HttpFileRouter option {key:?} must be a str"))
            })
        };
        match key.as_str() {
            "index_page" => set_once(&mut given.index_page, &key, text(&value)?)?,
            "fallback_page" => set_once(&mut given.fallback_page, &key, text(&value)?)?,
            "extensions" => set_once(&mut given.extensions, &key, strings(&value, &key)?)?,
            "exclude_extensions" => {
                set_once(&mut given.exclude_extensions, &key, strings(&value, &key)?)?
            }
            "cross_origin_isolation" => {
                set_once(&mut given.cross_origin_isolation, &key, value.is_truthy()?)?
            }
            "cache_control" => {
                let value = if value.is_none() {
                    None
                } else {
                    Some(text(&value)?)
                };
                set_once(&mut given.cache_control, &key, value)?
            }
            _ => {
                return Err(PyValueError::new_err(format!(
                    "unknown HttpFileRouter option {key:?} (known: index_page, fallback_page, \
                     extensions, exclude_extensions, cross_origin_isolation, cache_control)"
                )))
            }
        }
    }
    Ok(())
}

/// An `OSError` of the right subclass (`FileNotFoundError`, ...) whose `filename` is `path`.
pub fn path_error(error: &std::io::Error, path: &std::path::Path) -> PyErr {
    let message = error.to_string();
    // "No such file or directory (os error 2)": the strerror part, as Python spells it.
    let strerror = message
        .split(" (os error")
        .next()
        .unwrap_or(&message)
        .to_owned();
    PyOSError::new_err((
        error.raw_os_error().unwrap_or(0),
        strerror,
        path.to_string_lossy().into_owned(),
    ))
}

#[pymethods]
impl HttpFileRouter {
    #[new]
    #[pyo3(text_signature = "(path, index_page='index.html', fallback_page='', \
        extensions=['html'], exclude_extensions=[], cross_origin_isolation=False, \
        cache_control=None)")]
    #[pyo3(signature = (
        path,
        index_page = None,
        fallback_page = None,
        extensions = None,
        exclude_extensions = None,
        cross_origin_isolation = None,
        cache_control = None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        path: PathBuf,
        index_page: Option<&Bound<'_, PyAny>>,
        fallback_page: Option<String>,
        extensions: Option<&Bound<'_, PyAny>>,
        exclude_extensions: Option<&Bound<'_, PyAny>>,
        cross_origin_isolation: Option<bool>,
        cache_control: Option<String>,
    ) -> PyResult<PyClassInitializer<Self>> {
        let mut given = Given {
            fallback_page,
            cross_origin_isolation,
            cache_control: cache_control.map(Some),
            ..Given::default()
        };
        if let Some(value) = extensions {
            given.extensions = Some(strings(value, "extensions")?);
        }
        if let Some(value) = exclude_extensions {
            given.exclude_extensions = Some(strings(value, "exclude_extensions")?);
        }
        match index_page {
            Some(options) if options.is_instance_of::<PyDict>() => {
                apply_options(&mut given, options.cast::<PyDict>()?)?;
            }
            Some(page) => {
                given.index_page = Some(page.extract().map_err(|_| {
                    PyTypeError::new_err(
                        "HttpFileRouter's second argument is index_page (a str) or GodotTPD's \
                         options dict",
                    )
                })?);
            }
            None => {}
        }
        let settings = FileSettings {
            index_page: given.index_page.unwrap_or_else(|| "index.html".to_owned()),
            fallback_page: given.fallback_page.unwrap_or_default(),
            extensions: given.extensions.unwrap_or_else(|| vec!["html".to_owned()]),
            exclude_extensions: given.exclude_extensions.unwrap_or_default(),
            cross_origin_isolation: given.cross_origin_isolation.unwrap_or(false),
            cache_control: given.cache_control.unwrap_or(None),
        };
        let root = std::fs::canonicalize(&path).map_err(|error| path_error(&error, &path))?;
        if !root.is_dir() {
            return Err(path_error(
                &std::io::Error::from_raw_os_error(libc::ENOTDIR),
                &path,
            ));
        }
        let route = FileRoute::new(root, &settings)
            .map_err(|SettingsError(message)| PyValueError::new_err(message))?;
        Ok(
            PyClassInitializer::from(HttpRouter).add_subclass(HttpFileRouter {
                route: Arc::new(route),
                path: path.to_string_lossy().into_owned(),
                settings,
            }),
        )
    }

    /// The served folder, as given.
    #[getter]
    fn path(&self) -> &str {
        &self.path
    }

    /// Served for a folder's URL (ending in ``/``).
    #[getter]
    fn index_page(&self) -> &str {
        &self.settings.index_page
    }

    /// Served when nothing matches: 200 if it is the index page, else 404.
    #[getter]
    fn fallback_page(&self) -> &str {
        &self.settings.fallback_page
    }

    /// Tried, in order, on a path without an extension (``/about`` → ``about.html``).
    #[getter]
    fn extensions(&self) -> Vec<String> {
        self.settings.extensions.clone()
    }

    /// Files with these extensions are never served (404); nor are ``.gd`` files, always.
    #[getter]
    fn exclude_extensions(&self) -> Vec<String> {
        self.settings.exclude_extensions.clone()
    }

    /// Whether COOP/COEP/CORP headers are sent (``crossOriginIsolated`` pages).
    #[getter]
    fn cross_origin_isolation(&self) -> bool {
        self.settings.cross_origin_isolation
    }

    /// The ``Cache-Control`` value sent with every answer, or ``None`` for no header.
    #[getter]
    fn cache_control(&self) -> Option<String> {
        self.settings.cache_control.clone()
    }

    fn __repr__(&self) -> String {
        format!("HttpFileRouter({:?})", self.path)
    }
}
