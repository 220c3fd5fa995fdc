//! What a fill takes from the request that started it: the request itself (shared), where
//! its exchanges go, and the fields a shared fill never forwards.

use std::sync::Arc;

use http::header::RANGE;
use http::{HeaderMap, HeaderName, Request};

use super::fills::FillKey;
use super::lookup::FillTarget;
use super::{Engine, RequestCtx};
use crate::storage::{ObjectMeta, VaryHead};
use crate::upstream::{UpstreamBody, empty_body};

/// Everything the fetch needs: the leader's request, shared so it can outlive it (its
/// headers judge storability and the variant, and each exchange's header section is built
/// from it: nothing is copied for a fill).
pub(super) struct FillJob {
    pub(super) key: [u8; 32],
    /// The leader's request.
    pub(super) ctx: Arc<RequestCtx>,
    pub(super) head: Option<Arc<VaryHead>>,
    pub(super) stale: Option<Arc<ObjectMeta>>,
    pub(super) purge_index: u64,
    /// Where the fill is registered for coalescing (`None` for a fetch made alone).
    pub(super) table_key: Option<FillKey>,
    /// A revalidation nobody waits for (stale-while-revalidate): never "abandoned".
    pub(super) background: bool,
    /// Where the fill's requests go (its site's upstream).
    pub(super) upstream: Arc<dyn crate::upstream::Upstream>,
    /// Its site's cache policy.
    pub(super) policy: Arc<crate::policy::PolicyConfig>,
    /// For a cold whole GET: the bytes the first exchange asks for by range
    /// (`cache.slice_threshold`, see [`Engine::slice_for`]).
    pub(super) slice: Option<u64>,
    /// The ids a `traceparent` the client did not send is made of: drawn once, so every
    /// exchange of the fill (a refetch, the chunks fetched by range) is one trace upstream.
    pub(super) trace_random: [u8; 24],
}

impl FillJob {
    /// A body-less request for this fill's target with `headers` (built by
    /// [`Engine::upstream_request_headers`] and the exchange's own fields).
    pub(super) fn upstream_get(&self, headers: HeaderMap) -> Request<UpstreamBody> {
        let mut req = Request::new(empty_body());
        *req.uri_mut() = self.target();
        *req.headers_mut() = headers;
        req
    }

    /// The leader's request header section as received (storability, variant).
    pub(super) fn request_headers(&self) -> &HeaderMap {
        &self.ctx.headers
    }

    /// The URL as purges name it (stored with the object).
    pub(super) fn url(&self) -> String {
        self.ctx.url.purge_key()
    }

    /// The host as host purges name it (stored with the object).
    pub(super) fn host(&self) -> String {
        let host = &self.ctx.url.host;
        tiercel_cluster::urlnorm::normalize_host(host).unwrap_or_else(|_| host.clone())
    }

    /// The canonical target, as the URI of an upstream request.
    pub(super) fn target(&self) -> http::Uri {
        self.ctx.upstream_uri()
    }
}

/// Request fields that never reach the upstream on a shared fill.
///
/// The first group belongs to one client's conditional or partial request (the cache
/// validates with its own validators and fetches whole objects).
///
/// The second group is the unkeyed-input deny list: fields that frameworks and origins are
/// known to let override the request's host, path, scheme or method, although none of them is
/// in the cache key. Sent on a fill, one client's `X-Forwarded-Host: evil.example` or
/// `X-Original-URL: /admin` would shape the response every later client of that key is served
/// (web cache poisoning). `Forwarded` is one of them (its `host=` and `proto=` are
/// `X-Forwarded-Host` and `X-Forwarded-Proto` in another syntax): a fill carries this node's
/// element alone, and `X-Forwarded-Proto` is this node's too. `X-Forwarded-For` keeps the
/// client's chain with the address this node saw appended, as every CDN does: it names who
/// asked, and an origin that varied content on it without `Vary` would mix clients anyway.
pub(super) static CLIENT_ONLY: [HeaderName; 27] = [
    http::header::IF_NONE_MATCH,
    http::header::IF_MODIFIED_SINCE,
    http::header::IF_MATCH,
    http::header::IF_UNMODIFIED_SINCE,
    http::header::IF_RANGE,
    http::header::RANGE,
    http::header::CACHE_CONTROL,
    http::header::PRAGMA,
    // A forwarding field a client can write any host and scheme into; ours replaces it.
    http::header::FORWARDED,
    // Unkeyed inputs that change what an origin serves.
    HeaderName::from_static("x-forwarded-host"),
    HeaderName::from_static("x-forwarded-server"),
    HeaderName::from_static("x-forwarded-port"),
    HeaderName::from_static("x-forwarded-prefix"),
    HeaderName::from_static("x-forwarded-scheme"),
    HeaderName::from_static("x-forwarded-ssl"),
    HeaderName::from_static("x-host"),
    HeaderName::from_static("x-original-host"),
    HeaderName::from_static("x-original-url"),
    HeaderName::from_static("x-rewrite-url"),
    HeaderName::from_static("x-original-uri"),
    HeaderName::from_static("x-http-method-override"),
    HeaderName::from_static("x-http-method"),
    HeaderName::from_static("x-method-override"),
    HeaderName::from_static("x-http-destinationurl"),
    HeaderName::from_static("x-proxyuser-ip"),
    HeaderName::from_static("front-end-https"),
    HeaderName::from_static("x-url-scheme"),
];

impl Engine {
    pub(super) fn fill_job(&self, ctx: &Arc<RequestCtx>, target: &FillTarget) -> FillJob {
        FillJob {
            key: ctx.key,
            ctx: ctx.clone(),
            head: target.head.clone(),
            stale: target.stale.clone(),
            purge_index: self.purges.applied_index(),
            table_key: None,
            background: false,
            upstream: ctx.site.upstream.clone(),
            policy: ctx.site.policy.clone(),
            slice: self.slice_for(ctx, target),
            trace_random: rand::random(),
        }
    }

    /// The header section of one exchange of a fill: the leader's request with the fields a
    /// shared fill never forwards removed and this node's forwarding fields added, built for
    /// each exchange (most fills make one) rather than kept and copied.
    pub(super) fn fill_request_headers(&self, job: &FillJob) -> HeaderMap {
        self.upstream_request_headers(&job.ctx, Some(&CLIENT_ONLY), job.trace_random)
    }

    /// How many bytes a fill for `ctx` asks for first, by range: only for a cold whole GET
    /// (or HEAD) that may be shared. Not for a revalidation (the stored object is whole), not
    /// for a known Vary (variants are stored whole), not for a client's own range (that one
    /// already tried chunks), and not for a request whose answer will not be stored
    /// (Authorization, `no-store`): those would pay a wasted part.
    fn slice_for(&self, ctx: &RequestCtx, target: &FillTarget) -> Option<u64> {
        let cs = self.cfg.chunk_size.max(1) as u64;
        let wanted = self.cfg.slice_threshold;
        let cold = target.stale.is_none() && target.head.is_none();
        let shareable =
            !ctx.headers.contains_key(http::header::AUTHORIZATION) && !ctx.directives.no_store;
        (wanted > 0
            && cold
            && shareable
            && matches!(ctx.method, http::Method::GET | http::Method::HEAD)
            && !ctx.headers.contains_key(RANGE))
        .then(|| (wanted / cs).max(1) * cs)
    }
}
