//! `multipart/form-data` (RFC 7578) parsed as a streamed body arrives, by the `multer`
//! crate: the parts come one at a time from the body's queue, so a file part of any size
//! is written out piece by piece and never held whole.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream;

use crate::app::upload::{BodyError, BodyQueue, Read};
use crate::http::error::RequestError;

impl std::fmt::Display for BodyError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::Refused(error) => write!(formatter, "{error}"),
            BodyError::Gone => formatter.write_str("the client closed the connection"),
        }
    }
}

impl std::error::Error for BodyError {}

/// The boundary of a `multipart/form-data` content type, or why there is none.
pub fn boundary(content_type: Option<&str>) -> Result<String, RequestError> {
    let content_type = content_type.ok_or(RequestError::bad_request(
        "the request has no Content-Type: not multipart/form-data",
    ))?;
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("multipart/form-data") {
        return Err(RequestError::bad_request(
            "the request body is not multipart/form-data",
        ));
    }
    multer::parse_boundary(content_type)
        .map_err(|_| RequestError::bad_request("multipart/form-data without a valid boundary"))
}

/// A parser of the form in `queue`, reading it as it arrives.
pub fn parse(queue: Arc<BodyQueue>, boundary: String) -> multer::Multipart<'static> {
    let pieces = stream::unfold(Some(queue), |queue| async move {
        let queue = queue?;
        match queue.next().await {
            Ok(Read::Piece(piece)) => Some((Ok::<Bytes, BodyError>(piece), Some(queue))),
            Ok(Read::End | Read::Waiting) => None,
            Err(error) => Some((Err(error), None)),
        }
    });
    multer::Multipart::new(pieces, boundary)
}

/// What went wrong while parsing: the body's own error (a stall, the client gone), or a
/// malformed form (`400`).
pub fn form_error(error: multer::Error) -> Result<BodyError, String> {
    if let multer::Error::StreamReadFailed(source) = &error {
        if let Some(body) = source.downcast_ref::<BodyError>() {
            return Ok(*body);
        }
    }
    Err(format!("malformed multipart/form-data: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries() {
        assert_eq!(
            boundary(Some("multipart/form-data; boundary=abc")).unwrap(),
            "abc"
        );
        assert_eq!(boundary(Some("text/plain")).unwrap_err().status, 400);
        assert_eq!(
            boundary(Some("multipart/form-data")).unwrap_err().status,
            400
        );
        assert_eq!(boundary(None).unwrap_err().status, 400);
    }

    #[test]
    fn parts_arrive_from_the_queue_in_pieces() {
        let queue = BodyQueue::new(1 << 20);
        let form = b"--X\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\none\r\n\
                     --X\r\nContent-Disposition: form-data; name=\"f\"; filename=\"f.bin\"\r\n\
                     Content-Type: application/octet-stream\r\n\r\n0123456789\r\n--X--\r\n";
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            for piece in form.chunks(7) {
                queue.push(Bytes::copy_from_slice(piece)).await.unwrap();
            }
            queue.complete();
            let mut multipart = parse(queue.clone(), "X".into());
            let first = multipart.next_field().await.unwrap().unwrap();
            assert_eq!(first.name(), Some("a"));
            assert_eq!(first.text().await.unwrap(), "one");
            let mut file = multipart.next_field().await.unwrap().unwrap();
            assert_eq!(file.file_name(), Some("f.bin"));
            let mut data = Vec::new();
            while let Some(chunk) = file.chunk().await.unwrap() {
                data.extend_from_slice(&chunk);
            }
            assert_eq!(data, b"0123456789");
            drop(file);
            assert!(multipart.next_field().await.unwrap().is_none());
        });
    }

    #[test]
    fn a_body_error_is_told_apart_from_a_malformed_form() {
        let queue = BodyQueue::new(1 << 20);
        queue.fail(BodyError::Gone);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let error = runtime
            .block_on(parse(queue, "X".into()).next_field())
            .unwrap_err();
        assert_eq!(form_error(error), Ok(BodyError::Gone));
    }
}
