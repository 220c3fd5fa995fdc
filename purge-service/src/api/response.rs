//! Responses of the API: JSON bodies, and [`Failure`] for every error answer.

use std::convert::Infallible;

use bytes::Bytes;
use http::header::{ALLOW, CACHE_CONTROL, CONNECTION, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderValue, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use tiercel_cluster::purge::wire::ApiError;

use super::validate::Invalid;

/// Why a streamed body was cut short. hyper then drops the connection (h1) or resets the
/// stream (h2) instead of ending the body cleanly, so a stream abandoned for a reader that
/// stopped reading does not linger while its last bytes wait to be written.
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// The body type of every response (streams and buffers alike).
pub type Body = BoxBody<Bytes, BodyError>;

/// A buffered body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never: Infallible| match never {})
        .boxed()
}

/// A JSON response.
pub fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    match serde_json::to_vec(value) {
        Ok(bytes) => {
            let mut resp = Response::new(full(bytes));
            *resp.status_mut() = status;
            resp.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            resp.headers_mut()
                .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            resp
        }
        Err(e) => Failure::Internal(format!("encoding the answer: {e}")).into_response(),
    }
}

/// An empty response.
pub fn empty(status: StatusCode) -> Response<Body> {
    let mut resp = Response::new(full(Bytes::new()));
    *resp.status_mut() = status;
    resp
}

/// Every way a request can fail, with the status it maps to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// 400: the request is malformed or inconsistent.
    #[error("{0}")]
    BadRequest(String),
    /// 401: no token, or an unknown one.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: the token's scope is too small.
    #[error("{0}")]
    Forbidden(String),
    /// 404: no such route or resource.
    #[error("{0}")]
    NotFound(String),
    /// 405: the path exists with other methods.
    #[error("method not allowed; allowed: {0}")]
    MethodNotAllowed(String),
    /// 408: the request body did not arrive in time.
    #[error("{0}")]
    Timeout(String),
    /// 409: the request conflicts with what another client holds (a follower name).
    #[error("{0}")]
    Conflict(String),
    /// 412: `If-Match` does not match the current version.
    #[error("{0}")]
    PreconditionFailed(String),
    /// 413: the body or a list is too large.
    #[error("{0}")]
    TooLarge(String),
    /// 422: well-formed but refused as meant (an `Idempotency-Key` reused for another purge).
    #[error("{0}")]
    Unprocessable(String),
    /// 429: the token's rate limit is exhausted.
    #[error("rate limit exceeded; retry in {retry_after} s")]
    RateLimited {
        /// Seconds to wait.
        retry_after: u64,
    },
    /// 503: no leader (election in progress, no quorum), the leader failed while a request
    /// was forwarded to it, or shutting down.
    #[error("{message}")]
    Unavailable {
        /// What is missing.
        message: String,
        /// Seconds to wait.
        retry_after: u64,
    },
    /// 500: a bug or a storage failure.
    #[error("{0}")]
    Internal(String),
}

impl From<Invalid> for Failure {
    fn from(e: Invalid) -> Self {
        match e {
            Invalid::Bad(m) => Failure::BadRequest(m),
            Invalid::TooLarge(m) => Failure::TooLarge(m),
        }
    }
}

impl Failure {
    /// The status code.
    pub fn status(&self) -> StatusCode {
        match self {
            Failure::BadRequest(_) => StatusCode::BAD_REQUEST,
            Failure::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Failure::Forbidden(_) => StatusCode::FORBIDDEN,
            Failure::NotFound(_) => StatusCode::NOT_FOUND,
            Failure::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Failure::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            Failure::Conflict(_) => StatusCode::CONFLICT,
            Failure::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            Failure::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Failure::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Failure::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Failure::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Failure::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The error answer: `ApiError` JSON plus the headers the status calls for.
    pub fn into_response(self) -> Response<Body> {
        let mut resp = json(
            self.status(),
            &ApiError {
                error: self.to_string(),
            },
        );
        let h = resp.headers_mut();
        match &self {
            //= https://www.rfc-editor.org/rfc/rfc6750#section-3
            //= "If the protected resource request does not include authentication credentials
            //= or does not contain an access token that enables access to the protected
            //= resource, the resource server MUST include the HTTP "WWW-Authenticate" response
            //= header field"
            Failure::Unauthorized(_) => {
                h.insert(
                    WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"tiercel\""),
                );
            }
            //= https://www.rfc-editor.org/rfc/rfc9110#section-15.5.6
            //= "The origin server MUST generate an Allow header field in a 405 response
            //= containing a list of the target resource's currently supported methods."
            Failure::MethodNotAllowed(allow) => {
                if let Ok(v) = HeaderValue::from_str(allow) {
                    h.insert(ALLOW, v);
                }
            }
            //= https://www.rfc-editor.org/rfc/rfc6585#section-4
            //= "The response representations SHOULD include details explaining the condition,
            //= and MAY include a Retry-After header indicating how long to wait before making a
            //= new request."
            Failure::RateLimited { retry_after } | Failure::Unavailable { retry_after, .. } => {
                h.insert(RETRY_AFTER, HeaderValue::from((*retry_after).max(1)));
            }
            //= https://www.rfc-editor.org/rfc/rfc7231#section-6.5.7
            //= "A server SHOULD send the "close" connection option in the response, since 408
            //= implies that the server has decided to close the connection rather than
            //= continue waiting."
            Failure::Timeout(_) => {
                h.insert(CONNECTION, HeaderValue::from_static("close"));
            }
            _ => {}
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(resp: Response<Body>) -> String {
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn failures_carry_status_headers_and_one_line() {
        type Case = (Failure, u16, Option<(&'static str, &'static str)>);
        let cases: Vec<Case> = vec![
            (Failure::BadRequest("x".into()), 400, None),
            (
                Failure::Unauthorized("missing bearer token".into()),
                401,
                Some(("www-authenticate", "Bearer realm=\"tiercel\"")),
            ),
            (Failure::Forbidden("x".into()), 403, None),
            (
                Failure::MethodNotAllowed("GET, PUT".into()),
                405,
                Some(("allow", "GET, PUT")),
            ),
            (
                Failure::Timeout("x".into()),
                408,
                Some(("connection", "close")),
            ),
            (Failure::PreconditionFailed("x".into()), 412, None),
            (Failure::TooLarge("x".into()), 413, None),
            (
                Failure::RateLimited { retry_after: 3 },
                429,
                Some(("retry-after", "3")),
            ),
            (
                Failure::Unavailable {
                    message: "no leader".into(),
                    retry_after: 0,
                },
                503,
                Some(("retry-after", "1")),
            ),
        ];
        for (f, status, header) in cases {
            let line = f.to_string();
            let resp = f.into_response();
            assert_eq!(resp.status().as_u16(), status);
            if let Some((name, value)) = header {
                assert_eq!(resp.headers()[name], value, "{status}");
            }
            assert_eq!(resp.headers()["content-type"], "application/json");
            let body: ApiError = serde_json::from_str(&body_of(resp).await).unwrap();
            assert_eq!(body.error, line);
            assert!(!body.error.contains('\n'));
        }
    }
}
