//! `HttpRouter`, the base class of request handlers, and what the server learns from one.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use crate::python::response::HttpResponse;

/// The methods a router can handle, in `Allow` order.
pub const HANDLER_NAMES: [(&str, &str); 7] = [
    ("GET", "handle_get"),
    ("HEAD", "handle_head"),
    ("POST", "handle_post"),
    ("PUT", "handle_put"),
    ("PATCH", "handle_patch"),
    ("DELETE", "handle_delete"),
    ("OPTIONS", "handle_options"),
];

/// Index into [`HANDLER_NAMES`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handler {
    Get = 0,
    Head = 1,
    Post = 2,
    Put = 3,
    Patch = 4,
    Delete = 5,
    Options = 6,
}

/// A registered Python router: its bound handler methods, looked up once.
pub struct PyRoute {
    pub handlers: [Option<Py<PyAny>>; 7],
    pub allow: Arc<str>,
}

impl PyRoute {
    /// Finds the handlers of `router`: for an `HttpRouter` subclass, the `handle_*` methods it
    /// overrides (the inherited ones only answer 405); for any other object, the callable
    /// `handle_*` attributes it has.
    pub fn inspect(router: &Bound<'_, PyAny>) -> PyResult<PyRoute> {
        let py = router.py();
        let base = py.get_type::<HttpRouter>();
        let is_router = router.is_instance(&base)?;
        let class = router.get_type();
        let mut handlers: [Option<Py<PyAny>>; 7] = Default::default();
        for (slot, (_, name)) in handlers.iter_mut().zip(HANDLER_NAMES) {
            let overridden = if is_router {
                !class.getattr(name)?.is(&base.getattr(name)?)
            } else {
                router.hasattr(name)?
            };
            if overridden {
                let method = router.getattr(name)?;
                if method.is_callable() {
                    *slot = Some(method.unbind());
                }
            }
        }
        let mut allowed: Vec<&str> = Vec::new();
        for (index, (method, _)) in HANDLER_NAMES.iter().enumerate() {
            let handled = handlers[index].is_some()
                || (index == Handler::Head as usize && handlers[0].is_some());
            if handled {
                allowed.push(method);
            }
        }
        Ok(PyRoute {
            handlers,
            allow: allowed.join(", ").into(),
        })
    }

    pub fn handles(&self, handler: Handler) -> bool {
        self.handlers[handler as usize].is_some()
    }

    pub fn handles_any(&self) -> bool {
        self.handlers.iter().any(Option::is_some)
    }
}

/// Base class of request handlers: override any ``handle_*`` method.
///
/// The inherited methods answer ``405 Method Not Allowed`` with an ``Allow`` header.
#[pyclass(subclass, module = "godottpd._godottpd")]
pub struct HttpRouter;

/// The seven default handlers are one and the same: answer 405 with the route's `Allow`.
/// (`#[pymethods]` sees the block after this macro has written it out.)
macro_rules! default_handlers {
    ($($handler:ident),+) => {
        #[pymethods]
        impl HttpRouter {
            #[new]
            #[pyo3(signature = (*_args, **_kwargs))]
            fn new(_args: &Bound<'_, PyTuple>, _kwargs: Option<&Bound<'_, PyDict>>) -> Self {
                HttpRouter
            }

            $(
                fn $handler(
                    &self,
                    py: Python<'_>,
                    request: &Bound<'_, PyAny>,
                    response: &Bound<'_, HttpResponse>,
                ) -> PyResult<()> {
                    let _ = request;
                    response.get().send_method_not_allowed(py)
                }
            )+
        }
    };
}

default_handlers!(
    handle_get,
    handle_head,
    handle_post,
    handle_put,
    handle_patch,
    handle_delete,
    handle_options
);
