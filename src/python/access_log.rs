//! The access log: one line per response, on the Python logger `godottpd.access`.
//!
//! Connection tasks never call Python. When `HttpServer(access_log=True)`, each written
//! response becomes an [`AccessRecord`] on a channel; one thread of the server's own waits
//! on it detached, then attaches once per batch and logs every record that is waiting. With
//! the log off, no record is built at all (the engine holds no sender).

use std::time::SystemTime;

use crossbeam_channel::{Receiver, TryRecvError};
use pyo3::prelude::*;

use crate::app::exchange::{AccessEvent, AccessRecord};

/// Python's `logging.INFO`.
const INFO: i32 = 20;
/// Python's `logging.DEBUG`.
const DEBUG: i32 = 10;

/// The time in the Common Log Format, `10/Oct/2000:13:55:36 +0000`, rearranged from the
/// IMF-fixdate `Tue, 10 Oct 2000 13:55:36 GMT` that `httpdate` renders.
fn clf_time(time: SystemTime) -> String {
    let imf = httpdate::fmt_http_date(time);
    let parts: Vec<&str> = imf.split(' ').collect();
    match parts.as_slice() {
        [_, day, month, year, clock, _] => format!("{day}/{month}/{year}:{clock} +0000"),
        _ => imf,
    }
}

fn log_batch(py: Python<'_>, logger: &Bound<'_, PyAny>, batch: Vec<AccessRecord>) {
    let enabled = logger
        .call_method1("isEnabledFor", (INFO,))
        .and_then(|enabled| enabled.is_truthy());
    if !matches!(enabled, Ok(true)) {
        return;
    }
    for record in batch {
        let host = record.peer.ip().to_canonical().to_string();
        let arguments = (
            "%s - - [%s] \"%s\" %d %d",
            host,
            clf_time(record.time),
            &*record.request_line,
            record.status,
            record.bytes,
        );
        if let Err(error) = logger.call_method1("info", arguments) {
            error.print(py);
        }
    }
}

/// Logs `line` on the `godottpd` logger at DEBUG.
fn log_debug(py: Python<'_>, line: &str) {
    let logged = py
        .import("logging")
        .and_then(|logging| logging.call_method1("getLogger", ("godottpd",)))
        .and_then(|logger| logger.call_method1("debug", ("%s", line)));
    if let Err(error) = logged {
        error.print(py);
    }
}

/// Whether the `godottpd` logger takes DEBUG lines now (checked once, at `start()`).
pub fn debug_enabled(py: Python<'_>) -> bool {
    py.import("logging")
        .and_then(|logging| logging.call_method1("getLogger", ("godottpd",)))
        .and_then(|logger| logger.call_method1("isEnabledFor", (DEBUG,)))
        .and_then(|enabled| enabled.is_truthy())
        .unwrap_or(false)
}

/// The body of the log thread: access records on `godottpd.access`, DEBUG lines on
/// `godottpd`.
pub fn log_thread(receiver: Receiver<AccessEvent>) {
    Python::attach(|py| {
        let logger = match py
            .import("logging")
            .and_then(|logging| logging.call_method1("getLogger", ("godottpd.access",)))
        {
            Ok(logger) => logger,
            Err(error) => return error.print(py),
        };
        loop {
            let mut batch = Vec::new();
            let mut stop = match py.detach(|| receiver.recv()) {
                Ok(AccessEvent::Record(record)) => {
                    batch.push(record);
                    false
                }
                Ok(AccessEvent::Debug(line)) => {
                    log_debug(py, &line);
                    false
                }
                Ok(AccessEvent::Stop) | Err(_) => true,
            };
            while !stop {
                match receiver.try_recv() {
                    Ok(AccessEvent::Record(record)) => batch.push(record),
                    Ok(AccessEvent::Debug(line)) => log_debug(py, &line),
                    Ok(AccessEvent::Stop) | Err(TryRecvError::Disconnected) => stop = true,
                    Err(TryRecvError::Empty) => break,
                }
            }
            log_batch(py, &logger, batch);
            if stop {
                return;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn common_log_time() {
        assert_eq!(
            clf_time(UNIX_EPOCH + Duration::from_secs(971_186_136)),
            "10/Oct/2000:13:55:36 +0000"
        );
    }
}
