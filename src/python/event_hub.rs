//! `EventHub`: one event to many event streams, with no Python work per subscriber.
//!
//! `publish()` encodes the event once into one `Bytes`; every subscriber's queue gets a
//! reference to the same bytes (no copy), and its connection frames and sends them. A
//! subscriber whose client left, or that is already `stream_buffer` bytes behind, is
//! dropped on the spot: a publisher never waits for a slow client.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use pyo3::prelude::*;

use crate::app::stream::{Offer, StreamQueue};
use crate::python::response::HttpResponse;
use crate::python::stream::{encode, EventStream};

/// Fan-out of Server-Sent Events in Rust: one ``publish()`` reaches every subscriber.
#[pyclass(frozen, module = "godottpd._godottpd")]
pub struct EventHub {
    subscribers: Mutex<Vec<Arc<StreamQueue>>>,
}

impl EventHub {
    fn subscribers(&self) -> MutexGuard<'_, Vec<Arc<StreamQueue>>> {
        self.subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[pymethods]
impl EventHub {
    #[new]
    fn new() -> Self {
        EventHub {
            subscribers: Mutex::new(Vec::new()),
        }
    }

    /// Starts an event stream on ``response`` and keeps it; the returned stream sends to
    /// this subscriber alone (dropping it leaves the subscription on).
    #[pyo3(signature = (response, heartbeat = 15.0))]
    fn subscribe(
        &self,
        py: Python<'_>,
        response: &HttpResponse,
        heartbeat: Option<f64>,
    ) -> PyResult<EventStream> {
        let queue = response.start_event_stream(py, heartbeat)?;
        self.subscribers().push(queue.clone());
        Ok(EventStream::new(queue, true))
    }

    /// Encodes the event once and queues the same bytes for every subscriber; one that
    /// left, or is more than ``stream_buffer`` behind, is dropped. Returns how many took it.
    #[pyo3(signature = (data, event = None, id = None, retry = None))]
    fn publish(
        &self,
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        event: Option<&str>,
        id: Option<&str>,
        retry: Option<i64>,
    ) -> PyResult<usize> {
        let bytes = encode(data, event, id, retry)?;
        Ok(py.detach(|| {
            let mut subscribers = self.subscribers();
            let mut delivered = 0;
            subscribers.retain(|queue| match queue.offer(bytes.clone()) {
                Offer::Queued => {
                    delivered += 1;
                    true
                }
                Offer::Full => {
                    // Too far behind: the connection ends, the client may reconnect with
                    // Last-Event-ID.
                    queue.mark_gone();
                    false
                }
                Offer::Gone => false,
            });
            delivered
        }))
    }

    /// Ends every subscriber's stream.
    fn close(&self, py: Python<'_>) {
        py.detach(|| {
            for queue in self.subscribers().drain(..) {
                queue.finish();
            }
        });
    }

    /// The subscribers still connected.
    fn __len__(&self) -> usize {
        let mut subscribers = self.subscribers();
        subscribers.retain(|queue| !queue.is_gone() && !queue.is_finished());
        subscribers.len()
    }

    fn __repr__(&self) -> String {
        format!("<EventHub subscribers={}>", self.__len__())
    }
}
