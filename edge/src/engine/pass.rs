//! Requests the cache does not serve (methods other than GET and HEAD), responses it must not
//! share, and invalidation after unsafe methods (RFC 9111 §4.4).

use std::sync::Arc;

use http::header::{CONNECTION, CONTENT_LENGTH};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;

use super::fills::FillSlot;
use super::request_body::{BodyError, ClientBody};
use super::serve::CacheInfo;
use super::{Body, Engine, RequestCtx};
use crate::policy::invalidated_uris;
use crate::protocol::{FwdReason, strip_hop_by_hop};
use crate::upstream::{BoxError, IdleTimeout, ResponseBody, UpstreamCtx};

impl Engine {
    /// Forwards a request with its body, streams the answer back, and invalidates stored
    /// responses the request may have changed. Nothing is asked upstream before the body has
    /// started (or a short one has fully arrived), and the exchange holds one of the node's and
    /// the connection's upstream slots, like a fill, until the response body is over.
    pub(super) async fn pass<B>(
        self: &Arc<Self>,
        ctx: RequestCtx,
        body: B,
        fwd: FwdReason,
    ) -> Response<Body>
    where
        B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let mut body = ClientBody::new(body, self.cfg.client_body);
        if let Err(e) = body.started().await {
            return self.body_refused(e);
        }
        let fault = body.fault();
        let Some(slot) =
            FillSlot::acquire(&self.fill_slots, &ctx.conn_fills, self.cfg.fill_queue).await
        else {
            self.stats
                .fills_refused
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return self.too_many_fills();
        };
        let headers = self.upstream_request_headers(&ctx, None, rand::random());
        let mut req = Request::new(body.boxed_unsync());
        *req.method_mut() = ctx.method.clone();
        *req.uri_mut() = ctx.upstream_uri();
        *req.headers_mut() = headers;
        self.stats
            .misses
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.stats
            .upstream_requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match ctx
            .site
            .upstream
            .send(req, &UpstreamCtx { key: ctx.key })
            .await
        {
            Err(e) => {
                if let Some(why) = fault.get() {
                    return self.body_refused(why);
                }
                tracing::warn!(error = %e, method = %ctx.method, "upstream failed on pass-through");
                self.plain_error(e.status(), e.client_text(), Some(fwd))
            }
            Ok(resp) => {
                // The upstream answered early, then the client's body broke off: the client
                // is told why, not given an answer to a request the upstream never had whole.
                if let Some(why) = fault.get() {
                    return self.body_refused(why);
                }
                let status = resp.status();
                //= https://www.rfc-editor.org/rfc/rfc9111#section-4.4
                //# A cache MUST invalidate the target URI when it receives a non-error status
                //# code in response to an unsafe request method
                if !ctx.method.is_safe() && (status.is_success() || status.is_redirection()) {
                    for url in
                        invalidated_uris(&ctx.method, status, ctx.scheme, &ctx.url, resp.headers())
                    {
                        self.remove_url(&url);
                    }
                }
                let resp = self.relay(&ctx, resp, CacheInfo::forwarded(fwd));
                resp.map(|b| b.holding(slot))
            }
        }
    }

    /// The answer to a request whose body did not arrive as it must (408 or 400). The
    /// connection closes: what is left of the body would be read as the next request.
    fn body_refused(&self, e: BodyError) -> Response<Body> {
        let (status, text) = match e {
            BodyError::Timeout => (StatusCode::REQUEST_TIMEOUT, "request body timed out\n"),
            BodyError::TinyPieces => (
                StatusCode::BAD_REQUEST,
                "bad request: body sent in pieces too small\n",
            ),
            BodyError::Client => (StatusCode::BAD_REQUEST, "bad request: body failed\n"),
        };
        let mut resp = self.plain_error(status, text, None);
        resp.headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
        resp
    }

    /// Streams an upstream response to one client without storing it.
    pub(super) fn relay(
        &self,
        ctx: &RequestCtx,
        resp: Response<ResponseBody>,
        info: CacheInfo,
    ) -> Response<Body> {
        let (mut parts, body) = resp.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        self.strip_for_client(&mut parts.headers);
        self.hop.add_via(&mut parts.headers, parts.version);
        self.set_cache_status(
            &mut parts.headers,
            &info.fwd_status(parts.status.as_u16()),
            None,
        );
        let len = parts
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        let body = if ctx.is_head() {
            Body::Empty
        } else {
            Body::from_body(
                IdleTimeout::new(body, ctx.site.upstream.idle_timeout()),
                len,
            )
        };
        Response::from_parts(parts, body)
    }
}
