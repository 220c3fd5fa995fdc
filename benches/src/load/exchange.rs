//! One request/response exchange, the unit the load generator times: send, read the whole body,
//! check status and length. Shared by the HTTP/1.1 and h2 workers.

use std::future::Future;
use std::time::Duration;

use http::header::CONTENT_LENGTH;
use http::{HeaderMap, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::recorder::ErrorKind;

/// Runs one exchange whose request is already on its way in `send`, with `timeout` for the
/// whole of it (head and body). Returns the body length on success.
///
/// The body is always read to the end, even for a non-2xx answer, so an HTTP/1.1 connection
/// stays usable and the failure costs what it costs the server.
pub(crate) async fn exchange<F>(
    send: F,
    timeout: Duration,
    expected_len: Option<u64>,
) -> Result<u64, ErrorKind>
where
    F: Future<Output = hyper::Result<Response<Incoming>>>,
{
    let work = async {
        let response = send.await.map_err(|_| ErrorKind::Send)?;
        let status = response.status();
        let declared = declared_length(response.headers());
        let mut body = response.into_body();
        let mut received = 0u64;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|_| ErrorKind::Body)?;
            if let Some(data) = frame.data_ref() {
                received += data.len() as u64;
            }
        }
        check(status, declared, expected_len, received)?;
        Ok(received)
    };
    tokio::time::timeout(timeout, work)
        .await
        .unwrap_or(Err(ErrorKind::Timeout))
}

/// The `Content-Length` of a response, when present and well-formed.
fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Decides whether a finished exchange counts as a success: a 2xx status, and a body as long
/// as the response declared and as long as the operator said to expect.
fn check(
    status: StatusCode,
    declared: Option<u64>,
    expected: Option<u64>,
    received: u64,
) -> Result<(), ErrorKind> {
    if !status.is_success() {
        return Err(ErrorKind::Status);
    }
    //= https://www.rfc-editor.org/rfc/rfc9112#section-6.3
    //# If the sender closes the connection or the recipient times out before the indicated
    //# number of octets are received, the recipient MUST consider the message to be
    //# incomplete and close the connection.
    if declared.is_some_and(|d| d != received) || expected.is_some_and(|e| e != received) {
        return Err(ErrorKind::Length);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Status, declared length, expected length, received length, verdict.
    type Case = (
        StatusCode,
        Option<u64>,
        Option<u64>,
        u64,
        Result<(), ErrorKind>,
    );

    #[test]
    fn check_table() {
        let ok = StatusCode::OK;
        let cases: &[Case] = &[
            (ok, Some(1024), Some(1024), 1024, Ok(())),
            (ok, None, Some(1024), 1024, Ok(())),
            (ok, Some(1024), None, 1024, Ok(())),
            (ok, None, None, 7, Ok(())),
            (StatusCode::NO_CONTENT, None, None, 0, Ok(())),
            (StatusCode::PARTIAL_CONTENT, Some(10), None, 10, Ok(())),
            (ok, Some(1024), Some(1024), 1000, Err(ErrorKind::Length)),
            (ok, Some(1000), None, 1024, Err(ErrorKind::Length)),
            (ok, None, Some(1024), 1023, Err(ErrorKind::Length)),
            (ok, Some(1024), Some(2048), 1024, Err(ErrorKind::Length)),
            (
                StatusCode::NOT_MODIFIED,
                None,
                None,
                0,
                Err(ErrorKind::Status),
            ),
            (
                StatusCode::NOT_FOUND,
                Some(9),
                None,
                9,
                Err(ErrorKind::Status),
            ),
            (
                StatusCode::BAD_GATEWAY,
                Some(1024),
                Some(1024),
                0,
                Err(ErrorKind::Status),
            ),
        ];
        for (status, declared, expected, received, want) in cases {
            assert_eq!(
                check(*status, *declared, *expected, *received),
                *want,
                "{status} {declared:?} {expected:?} {received}"
            );
        }
    }

    #[test]
    fn declared_length_parses_only_numbers() {
        let mut h = HeaderMap::new();
        assert_eq!(declared_length(&h), None);
        h.insert(CONTENT_LENGTH, "1048576".parse().unwrap());
        assert_eq!(declared_length(&h), Some(1_048_576));
        h.insert(CONTENT_LENGTH, "-1".parse().unwrap());
        assert_eq!(declared_length(&h), None);
        h.insert(CONTENT_LENGTH, "99999999999999999999999".parse().unwrap());
        assert_eq!(declared_length(&h), None);
    }
}
