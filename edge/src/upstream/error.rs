//! Why an upstream exchange failed, and what the client is told.

use http::StatusCode;

/// An upstream (origin or shield) failure, classified so the engine can choose the status
/// (502 vs 504), decide whether stale content may be served, and whether another upstream may
/// be tried.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    /// The upstream refused the TCP connection or reset it during set-up.
    #[error("upstream refused the connection: {0}")]
    Refused(String),
    /// The TCP or TLS handshake did not finish within the connect timeout.
    #[error("upstream connect timed out")]
    ConnectTimeout,
    /// Connecting failed for another reason (DNS, TLS, routing).
    #[error("upstream connect failed: {0}")]
    Connect(String),
    /// The response head did not arrive within the first-byte timeout.
    #[error("upstream sent no response within the first-byte timeout")]
    FirstByteTimeout,
    /// The response body stalled for longer than the idle timeout.
    #[error("upstream body stalled beyond the idle timeout")]
    IdleTimeout,
    /// The upstream took none of the request body for longer than the idle timeout.
    #[error("upstream took none of the request body within the idle timeout")]
    RequestStalled,
    /// The upstream closed the connection or broke the protocol.
    #[error("upstream protocol error: {0}")]
    Protocol(String),
    /// The request could not be built (a bug or a malformed stored field).
    #[error("could not build the upstream request: {0}")]
    Request(String),
}

impl UpstreamError {
    /// The status a client gets when nothing else (stale content) can be served.
    pub fn status(&self) -> StatusCode {
        match self {
            UpstreamError::ConnectTimeout
            | UpstreamError::FirstByteTimeout
            | UpstreamError::IdleTimeout
            | UpstreamError::RequestStalled => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::BAD_GATEWAY,
        }
    }

    /// Whether the request certainly never reached the upstream, so another upstream may be
    /// tried even for a non-idempotent method.
    pub fn not_sent(&self) -> bool {
        matches!(
            self,
            UpstreamError::Refused(_) | UpstreamError::ConnectTimeout | UpstreamError::Connect(_)
        )
    }

    /// A short text for the client's error body and logs.
    pub fn client_text(&self) -> &'static str {
        match self {
            UpstreamError::Refused(_) => "upstream refused the connection",
            UpstreamError::ConnectTimeout => "upstream connect timed out",
            UpstreamError::Connect(_) => "upstream unreachable",
            UpstreamError::FirstByteTimeout => "upstream response timed out",
            UpstreamError::IdleTimeout => "upstream response stalled",
            UpstreamError::RequestStalled => "upstream stopped taking the request",
            UpstreamError::Protocol(_) => "upstream protocol error",
            UpstreamError::Request(_) => "bad upstream request",
        }
    }
}
