//! `HttpRouter`, the base class of request handlers, and what the server learns from one.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use pyo3::exceptions::{PyTypeError, PyValueError};

use crate::app::config::{BodyPolicy, HandlerRoute};
use crate::http::method::{allow_list, KnownMethod};
use crate::python::response::HttpResponse;

/// A registered Python router: its bound handler methods, looked up once, indexed by
/// [`KnownMethod::index`].
pub struct PyRoute {
    pub handlers: [Option<Py<PyAny>>; KnownMethod::ALL.len()],
    /// Which handlers are coroutine functions (`async def`), found once at registration:
    /// their requests go to the event loop (`python::event_loop`), the others to the
    /// handler threads.
    pub coroutines: [bool; KnownMethod::ALL.len()],
    pub allow: Arc<str>,
    /// `stream_body` and `max_body_size`, read from the router once at registration.
    pub body: BodyPolicy,
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
        let mut handlers: [Option<Py<PyAny>>; KnownMethod::ALL.len()] = Default::default();
        let mut coroutines = [false; KnownMethod::ALL.len()];
        let is_coroutine = py.import("inspect")?.getattr("iscoroutinefunction")?;
        for method in KnownMethod::ALL {
            let name = method.handler_name();
            let overridden = if is_router {
                !class.getattr(name)?.is(&base.getattr(name)?)
            } else {
                router.hasattr(name)?
            };
            if overridden {
                let handler = router.getattr(name)?;
                if handler.is_callable() {
                    coroutines[method.index()] = is_coroutine.call1((&handler,))?.is_truthy()?;
                    handlers[method.index()] = Some(handler.unbind());
                }
            }
        }
        let handled = |method: KnownMethod| {
            handlers[method.index()].is_some()
                // HEAD is answered by the GET handler when there is no HEAD handler.
                || (method == KnownMethod::Head && handlers[KnownMethod::Get.index()].is_some())
        };
        let allow = allow_list(
            KnownMethod::ALL
                .into_iter()
                .filter(|method| handled(*method)),
        );
        Ok(PyRoute {
            handlers,
            coroutines,
            allow: allow.into(),
            body: body_policy(router)?,
        })
    }

    /// The bound method that handles `method`, if the router has one.
    pub fn handler(&self, method: KnownMethod) -> Option<&Py<PyAny>> {
        self.handlers[method.index()].as_ref()
    }

    /// Whether the handler of `method` is a coroutine function, to run on the event loop.
    pub fn is_coroutine(&self, method: KnownMethod) -> bool {
        self.coroutines[method.index()]
    }

    /// Whether any handler is a coroutine function (the server then needs an event loop).
    pub fn has_coroutines(&self) -> bool {
        self.coroutines.iter().any(|coroutine| *coroutine)
    }

    pub fn handles_any(&self) -> bool {
        self.handlers.iter().any(Option::is_some)
    }
}

/// `stream_body` (any truthy value streams) and `max_body_size` (absent: the server's
/// limit; `None`: no limit; else an `int` >= 0) of a router.
fn body_policy(router: &Bound<'_, PyAny>) -> PyResult<BodyPolicy> {
    let streamed = match router.getattr_opt("stream_body")? {
        Some(value) => value.is_truthy()?,
        None => false,
    };
    let max_body_size = match router.getattr_opt("max_body_size")? {
        None => None,
        Some(value) if value.is_none() => Some(None),
        Some(value) => {
            if value.is_instance_of::<pyo3::types::PyBool>() {
                return Err(PyTypeError::new_err(
                    "max_body_size must be an int or None, not bool",
                ));
            }
            let limit: i128 = value
                .extract()
                .map_err(|_| PyTypeError::new_err("max_body_size must be an int or None"))?;
            let limit = u64::try_from(limit).map_err(|_| {
                PyValueError::new_err(format!("max_body_size must be >= 0, not {limit}"))
            })?;
            Some(Some(limit))
        }
    };
    Ok(BodyPolicy {
        streamed,
        max_body_size,
    })
}

impl HandlerRoute for PyRoute {
    fn handles(&self, method: KnownMethod) -> bool {
        self.handler(method).is_some()
    }

    fn body_policy(&self) -> BodyPolicy {
        self.body
    }

    fn allow(&self) -> &Arc<str> {
        &self.allow
    }
}

/// Base class of request handlers: override any ``handle_*`` method.
///
/// The inherited methods answer ``405 Method Not Allowed`` with an ``Allow`` header.
#[pyclass(subclass, module = "godottpd._godottpd")]
pub struct HttpRouter;

/// The default handlers (one per [`KnownMethod`], see `tests/test_routing.py`'s check that
/// each exists) are one and the same: answer 405 with the route's `Allow`.
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

            // `True` in a subclass: its handlers run as soon as the request head has
            // arrived and read the body as it arrives (see `PyRoute::body`).
            #[classattr]
            fn stream_body() -> bool {
                false
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
