//! When a failed upstream attempt may go to the next upstream (the next shield in rank, or the
//! origin): one pure rule, so the shield set, and any later composite upstream, decide alike.
//!
//! | the attempt failed | replayable, idempotent | replayable, not idempotent | not replayable |
//! |---|---|---|---|
//! | before the request left (refused, connect timeout, DNS/TLS) | retry | retry | retry |
//! | after it left, the connection broke before a response head | retry | no | no |
//! | after it left, no response head within `first_byte` | no | no | no |
//! | the upstream stopped taking its body (`idle`) | – | – | no |
//! | any byte already went to the client | no | no | no |
//!
//! "Replayable" means the request can be sent again as it was: it has no body (fills, GET,
//! HEAD). A request that reached an upstream and got no answer may have had its effect there:
//! only an idempotent method (RFC 9110 §9.2.2) may be repeated. A first-byte timeout is not
//! retried: it usually means a slow object behind the shield, and asking the next shield (and
//! then the origin) would triple the wait and the origin's load; a hung shield is caught by its
//! probes instead.

use http::{HeaderMap, Method, Request, Uri, Version};

use super::{UpstreamBody, UpstreamError, empty_body};

/// What is known about the request when an attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptFacts {
    /// The method is idempotent (GET, HEAD, OPTIONS, PUT, DELETE...).
    pub idempotent: bool,
    /// The request can be sent again unchanged (no body, or one not yet read).
    pub replayable: bool,
    /// A byte of the response already went to the client.
    pub sent_to_client: bool,
}

/// Whether the next upstream may be tried after `error`.
//= https://www.rfc-editor.org/rfc/rfc9110#section-9.2.2
//# A proxy MUST NOT automatically retry non-idempotent requests.
pub fn may_retry(facts: AttemptFacts, error: &UpstreamError) -> bool {
    if facts.sent_to_client {
        return false;
    }
    if error.not_sent() {
        return true;
    }
    facts.replayable && facts.idempotent && matches!(error, UpstreamError::Protocol(_))
}

/// The parts of a request without a body, kept so that it can be sent again ("replayable" in
/// the table above).
#[derive(Debug, Clone)]
pub struct Replay {
    method: Method,
    uri: Uri,
    version: Version,
    headers: HeaderMap,
}

impl Replay {
    /// The parts of `req`, when it has no body (a request with one cannot be sent again: its
    /// body is read as it goes out).
    pub fn of(req: &Request<UpstreamBody>) -> Option<Replay> {
        http_body::Body::is_end_stream(req.body()).then(|| Replay {
            method: req.method().clone(),
            uri: req.uri().clone(),
            version: req.version(),
            headers: req.headers().clone(),
        })
    }

    /// The request again.
    pub fn request(&self) -> Request<UpstreamBody> {
        let mut req = Request::new(empty_body());
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = self.uri.clone();
        *req.version_mut() = self.version;
        *req.headers_mut() = self.headers.clone();
        req
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(idempotent: bool, replayable: bool, sent_to_client: bool) -> AttemptFacts {
        AttemptFacts {
            idempotent,
            replayable,
            sent_to_client,
        }
    }

    #[test]
    fn the_table() {
        let before = [
            UpstreamError::Refused("x".into()),
            UpstreamError::ConnectTimeout,
            UpstreamError::Connect("dns".into()),
        ];
        let after = [UpstreamError::Protocol("reset".into())];
        for e in &before {
            for (i, r) in [(true, true), (false, true), (true, false), (false, false)] {
                assert!(may_retry(facts(i, r, false), e), "{e} {i} {r}");
                assert!(!may_retry(facts(i, r, true), e), "{e}: bytes went out");
            }
        }
        for e in &after {
            assert!(may_retry(facts(true, true, false), e), "{e}");
            assert!(
                !may_retry(facts(false, true, false), e),
                "{e}: POST may have acted"
            );
            assert!(!may_retry(facts(true, false, false), e), "{e}: body gone");
            assert!(!may_retry(facts(true, true, true), e));
        }
        // Failures that say nothing about the next upstream.
        for e in [
            UpstreamError::FirstByteTimeout,
            UpstreamError::IdleTimeout,
            UpstreamError::RequestStalled,
            UpstreamError::Request("bug".into()),
        ] {
            assert!(!may_retry(facts(true, true, false), &e), "{e}");
        }
    }
}
