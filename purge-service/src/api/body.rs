//! Reading request bodies: bounded in size and in time, and refused without breaking the
//! client's upload.
//!
//! A server that answers 413 and closes while the client is still sending makes the client's
//! write fail (EPIPE, or a reset that destroys the unread response), so the client never sees
//! why it was refused. Like nginx's lingering close, an oversized body that is not huge is read
//! and thrown away before the answer goes out; only a body declared larger than [`DRAIN_MAX`]
//! is refused at once.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::response::Failure;

/// Most bytes of a refused body read and discarded so the client can finish sending.
const DRAIN_MAX: u64 = 8 * 1024 * 1024;
/// Longest time spent discarding a refused body.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// Reads the whole body: 413 over `limit` bytes, 408 when it takes longer than `timeout`,
/// 400 when the connection breaks mid-body.
pub(super) async fn read(
    body: Incoming,
    declared: Option<u64>,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, Failure> {
    let too_large = || Failure::TooLarge(format!("request body larger than {limit} bytes"));
    let limit_u64 = u64::try_from(limit).unwrap_or(u64::MAX);
    if let Some(n) = declared.filter(|&n| n > limit_u64) {
        if n <= DRAIN_MAX {
            drain(body).await;
        }
        return Err(too_large());
    }
    let capacity = declared.map_or(0, |n| usize::try_from(n).unwrap_or(limit));
    match tokio::time::timeout(timeout, collect(body, limit, capacity)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(Collect::TooLarge)) => Err(too_large()),
        Ok(Err(Collect::Broken(e))) => Err(Failure::BadRequest(format!("reading the body: {e}"))),
        Err(_) => Err(Failure::Timeout(format!(
            "request body not received within {} ms",
            timeout.as_millis()
        ))),
    }
}

enum Collect {
    TooLarge,
    Broken(hyper::Error),
}

async fn collect(mut body: Incoming, limit: usize, capacity: usize) -> Result<Bytes, Collect> {
    let mut buf = BytesMut::with_capacity(capacity.min(limit));
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(Collect::Broken)?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if buf.len() + data.len() > limit {
            drain(body).await;
            return Err(Collect::TooLarge);
        }
        buf.extend_from_slice(&data);
    }
    Ok(buf.freeze())
}

/// Reads and discards what is left of a refused body, up to [`DRAIN_MAX`] bytes and
/// [`DRAIN_TIMEOUT`]; if it all arrived, the connection even stays usable.
async fn drain(mut body: Incoming) {
    let discard = async {
        let mut seen = 0u64;
        while let Some(Ok(frame)) = body.frame().await {
            if let Ok(d) = frame.into_data() {
                seen += d.len() as u64;
                if seen > DRAIN_MAX {
                    return;
                }
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, discard).await;
}
