//! Why a request was refused: the status the client gets and a short reason.
//!
//! Every refusal closes the connection afterwards: once a message is known to be malformed,
//! no byte after it can be trusted to start the next request (RFC 9112 §11.2).

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestError {
    pub status: u16,
    pub reason: &'static str,
}

impl RequestError {
    #[cold]
    pub const fn new(status: u16, reason: &'static str) -> Self {
        RequestError { status, reason }
    }

    #[cold]
    pub const fn bad_request(reason: &'static str) -> Self {
        RequestError {
            status: 400,
            reason,
        }
    }
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, self.reason)
    }
}

impl std::error::Error for RequestError {}
