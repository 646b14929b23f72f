//! `HttpFileRouter`: the Python face of a file router (the serving is `app::files`).

use std::path::PathBuf;
use std::sync::Arc;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::app::files::{FileRoute, SettingsError};

/// Serves a folder, with everything below it, from the prefix it is registered at.
///
/// Files are streamed from disk, never read whole; `ETag`, `Last-Modified`, `304`, single
/// ranges and precompressed `.br`/`.gz` siblings are handled in Rust. No request reaches
/// anything outside the folder: see the README's "Serving files".
#[pyclass(frozen, module = "godottpd._godottpd", skip_from_py_object)]
pub struct HttpFileRouter {
    pub route: Arc<FileRoute>,
    path: String,
    index_page: String,
    fallback_page: String,
    extensions: Vec<String>,
    exclude_extensions: Vec<String>,
    cross_origin_isolation: bool,
}

#[pymethods]
impl HttpFileRouter {
    #[new]
    #[pyo3(signature = (
        path,
        index_page = "index.html",
        fallback_page = "",
        extensions = vec!["html".to_owned()],
        exclude_extensions = Vec::new(),
        cross_origin_isolation = false,
    ))]
    fn new(
        path: PathBuf,
        index_page: &str,
        fallback_page: &str,
        extensions: Vec<String>,
        exclude_extensions: Vec<String>,
        cross_origin_isolation: bool,
    ) -> PyResult<Self> {
        let root = std::fs::canonicalize(&path)?;
        if !root.is_dir() {
            return Err(pyo3::exceptions::PyNotADirectoryError::new_err(format!(
                "{} is not a folder",
                path.display()
            )));
        }
        let route = FileRoute::new(
            root,
            index_page,
            fallback_page,
            &extensions,
            &exclude_extensions,
            cross_origin_isolation,
        )
        .map_err(|SettingsError(message)| PyValueError::new_err(message))?;
        Ok(HttpFileRouter {
            route: Arc::new(route),
            path: path.to_string_lossy().into_owned(),
            index_page: index_page.to_owned(),
            fallback_page: fallback_page.to_owned(),
            extensions,
            exclude_extensions,
            cross_origin_isolation,
        })
    }

    /// The served folder, as given.
    #[getter]
    fn path(&self) -> &str {
        &self.path
    }

    #[getter]
    fn index_page(&self) -> &str {
        &self.index_page
    }

    #[getter]
    fn fallback_page(&self) -> &str {
        &self.fallback_page
    }

    #[getter]
    fn extensions(&self) -> Vec<String> {
        self.extensions.clone()
    }

    #[getter]
    fn exclude_extensions(&self) -> Vec<String> {
        self.exclude_extensions.clone()
    }

    #[getter]
    fn cross_origin_isolation(&self) -> bool {
        self.cross_origin_isolation
    }

    fn __repr__(&self) -> String {
        format!("HttpFileRouter({:?})", self.path)
    }
}
