//! The caching engine: the one handler every front end (HTTP/1.1, HTTP/2, later HTTP/3) calls,
//! the same for edge and shield.
//!
//! ```text
//! request ─▶ parse (target, key, directives) ─┬─ GET/HEAD ─▶ lookup ─┬─ fresh ─────────▶ serve
//!                                             │                     ├─ stale/no-cache ─▶ fill (conditional)
//!                                             │                     └─ miss ──────────▶ fill
//!                                             └─ other ──▶ pass through, invalidate on success (§4.4)
//! fill: one fetch per (key, variant) ─▶ Outcome ─▶ every waiter streams it (read-while-write)
//! ```
//!
//! Decisions come from the pure `policy` and `protocol` modules; this module only sequences them
//! and does the IO (storage, upstream).

mod admission;
mod body;
mod compress;
mod config;
mod fetch;
mod fill;
mod fill_job;
mod fills;
mod follower;
mod leader_fetch;
mod lookup;
mod parts;
mod pass;
mod purge;
mod request;
mod request_body;
mod serve;
mod site;

use std::sync::Arc;
use std::time::Instant;

use http::{Method, Request, Response, StatusCode, Version};

pub use admission::{OverCap, StoreCaps};
pub use body::Body;
pub use config::EngineConfig;
pub use fill::{FillError, Outcome};
pub use follower::{EngineHooks, FollowedPurges};
pub use purge::{NoPurges, PurgeOracle, PurgeProgress, PurgeVerdict};
pub use request::{ConnInfo, Handshake, RequestCtx};
pub use site::{Admission, LIMITER_KEYS, Site, SiteCounters, Sites};

use self::fills::{FillTable, HitForMiss};
use crate::key::derive_key;
use crate::policy::RequestDirectives;
use crate::protocol::{
    FramingError, FwdReason, cdn_loop_count, cdn_loop_through, check_framing, check_method,
    decrement_max_forwards, request_authority, within_head_limits,
};
use crate::storage::Storage;
use crate::upstream::{BoxError, Upstream};
use tiercel_cluster::conn::AmbiguousFraming;
use tiercel_cluster::urlnorm;

/// Counters the engine keeps for `/metrics` and tests.
#[derive(Debug, Default)]
pub struct EngineStats {
    /// Requests answered from storage without contacting the upstream.
    pub hits: std::sync::atomic::AtomicU64,
    /// Requests that needed the upstream (miss, revalidation, pass).
    pub misses: std::sync::atomic::AtomicU64,
    /// Requests that joined a fill started by another request.
    pub collapsed: std::sync::atomic::AtomicU64,
    /// Upstream requests sent.
    pub upstream_requests: std::sync::atomic::AtomicU64,
    /// Requests answered 503 because no fill slot freed up in time.
    pub fills_refused: std::sync::atomic::AtomicU64,
    /// Fills stopped because every reader left and the body outgrew `abandoned_fill_max`.
    pub fills_abandoned: std::sync::atomic::AtomicU64,
    /// Requests received, by the protocol of their connection: HTTP/1.x, HTTP/2, HTTP/3.
    pub requests_by_protocol: [std::sync::atomic::AtomicU64; 3],
    /// Requests that arrived in TLS early data (0-RTT), before their handshake completed.
    pub early_data: std::sync::atomic::AtomicU64,
    /// Responses served from a stored encoded form (br, zstd, gzip).
    pub encoded_hits: std::sync::atomic::AtomicU64,
    /// Responses encoded on the way out (each stored for the next, when it fits a chunk).
    pub encodings_made: std::sync::atomic::AtomicU64,
    /// Responses left in identity (or refused 503 when decoding) because every encoder was
    /// busy.
    pub encoders_busy: std::sync::atomic::AtomicU64,
    /// Early-data requests refused with 425 Too Early (unsafe methods, or a handshake that
    /// never completed).
    pub too_early: std::sync::atomic::AtomicU64,
}

impl EngineStats {
    /// The protocols `requests_by_protocol` counts, in its order (ALPN names).
    pub const PROTOCOLS: [&'static str; 3] = ["http/1.1", "h2", "h3"];
}

/// The caching engine. Cheap to share (`Arc`); one per node.
pub struct Engine {
    cfg: EngineConfig,
    storage: Storage,
    /// Host → site, swapped whole when services change.
    sites: arc_swap::ArcSwap<Sites>,
    purges: Arc<dyn PurgeOracle>,
    fills: FillTable,
    /// The node's fill slots (`max_fills`).
    fill_slots: Arc<tokio::sync::Semaphore>,
    hit_for_miss: HitForMiss,
    stats: EngineStats,
    /// This node's `Via` and `CDN-Loop` entries, built once.
    hop: crate::protocol::HopIdentity,
    /// Fields a client never gets from us (see `strip_for_client`), parsed once.
    client_hidden: Vec<http::HeaderName>,
    /// Chunk fetches in flight (objects filled by ranges).
    parts: parts::PartTable,
    /// Serialise updates of stored chunk sets, per object (sharded by key).
    present_locks: Box<[tokio::sync::Mutex<()>]>,
    /// Encodes and decodes running at once (half the cores): compression never takes all of
    /// the CPU from serving.
    encoders: Arc<tokio::sync::Semaphore>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("name", &self.cfg.name)
            .field("sites", &self.sites.load().services.len())
            .finish()
    }
}

impl Engine {
    /// An engine storing in `storage`; hosts no service claims fill from `upstream` (none:
    /// they get 421).
    pub fn new(
        cfg: EngineConfig,
        storage: Storage,
        upstream: Option<Arc<dyn Upstream>>,
        purges: Arc<dyn PurgeOracle>,
    ) -> Arc<Self> {
        let default = upstream.map(|u| {
            Arc::new(Site::default_site(
                cfg.service.clone(),
                cfg.key_rules.clone(),
                u,
                cfg.policy.clone(),
            ))
        });
        let hit_for_miss = HitForMiss::new(cfg.hit_for_miss_ttl, 100_000);
        let fill_slots = Arc::new(tokio::sync::Semaphore::new(cfg.max_fills.max(1)));
        let hop = crate::protocol::HopIdentity::new(&cfg.cdn_loop_token, &cfg.name);
        let client_hidden = serve::client_hidden(&cfg);
        Arc::new(Engine {
            cfg,
            storage,
            sites: arc_swap::ArcSwap::from_pointee(Sites::new(Vec::new(), default)),
            purges,
            fills: FillTable::default(),
            fill_slots,
            hit_for_miss,
            stats: EngineStats::default(),
            hop,
            client_hidden,
            parts: parts::PartTable::default(),
            encoders: Arc::new(tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1)),
            )),
            present_locks: (0..64).map(|_| tokio::sync::Mutex::new(())).collect(),
        })
    }

    /// The engine's settings.
    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// The storage (for admin endpoints and shutdown).
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// Counters.
    pub fn stats(&self) -> &EngineStats {
        &self.stats
    }

    /// How far the node follows the purge log (`None` without a purge-service).
    pub fn purge_progress(&self) -> Option<PurgeProgress> {
        self.purges.progress()
    }

    /// Fills in flight.
    pub fn fills_in_flight(&self) -> usize {
        self.fills.len()
    }

    /// The fill slots of a new client connection: front ends create one per connection and
    /// pass it with every request ([`ConnInfo::fills`]), so one connection cannot make the
    /// node fetch without bound (opening and resetting h2 streams for distinct URLs, say).
    pub fn connection_fill_slots(&self) -> Arc<tokio::sync::Semaphore> {
        Arc::new(tokio::sync::Semaphore::new(
            self.cfg.max_fills_per_connection.max(1),
        ))
    }

    /// The fill slots of a connection from a trusted forwarder (an edge, at a shield): one such
    /// connection carries every miss of a whole edge, so only the node's cap applies to it.
    pub fn forwarder_fill_slots(&self) -> Arc<tokio::sync::Semaphore> {
        Arc::new(tokio::sync::Semaphore::new(self.cfg.max_fills.max(1)))
    }

    /// Each upstream member (shields, pool origins) and whether it is up, with its site.
    pub fn upstream_members(&self) -> Vec<(String, String, bool)> {
        let sites = self.sites.load();
        sites
            .default
            .iter()
            .chain(sites.services.iter())
            .flat_map(|site| {
                site.upstream
                    .members_up()
                    .into_iter()
                    .map(|(m, up)| (site.name.clone(), m, up))
            })
            .collect()
    }

    /// The sites requests are routed to now.
    pub fn sites(&self) -> Arc<Sites> {
        self.sites.load_full()
    }

    /// Routes by a new set of sites from now on; requests in flight finish on the ones they
    /// started with.
    pub fn set_sites(&self, sites: Sites) {
        self.sites.store(Arc::new(sites));
    }

    /// Removes every stored variant of a URL (both schemes), e.g. for a URL purge.
    pub fn remove_url(&self, url: &urlnorm::NormalizedUrl) {
        let sites = self.sites.load();
        let Some(site) = sites.route(host_of(&url.host)) else {
            return;
        };
        for scheme in [urlnorm::Scheme::Http, urlnorm::Scheme::Https] {
            self.storage
                .remove_url(&derive_key(&site.name, scheme, url, &site.key_rules).0);
        }
    }

    /// Handles one request from any front end.
    pub async fn handle<B>(self: &Arc<Self>, req: Request<B>, conn: ConnInfo) -> Response<Body>
    where
        B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        // The client's Accept-Encoding is read only for a site that compresses (in `admit`):
        // nothing to copy on other requests.
        let mut wanted = compress::Wanted {
            accept: None,
            head: req.method() == Method::HEAD,
            range: req.headers().contains_key(http::header::RANGE),
            validators_of: None,
        };
        let mut site = None;
        // Checked and routed without an await, so that this future holds no copy of the
        // request's parts or context while it waits: it is boxed (moved) for every request.
        let mut resp = match self.admit(req, conn, &mut site, &mut wanted) {
            Err(resp) => resp,
            Ok((ctx, body)) if ctx.method == Method::GET || ctx.method == Method::HEAD => {
                drop(body);
                self.cached(Arc::new(ctx)).await
            }
            // Boxed: passing is the rarer path, and its future would double this one's size.
            Ok((ctx, body)) => Box::pin(self.pass_request(ctx, body)).await,
        };
        if let Some(site) = site.as_deref() {
            if let Some(rules) = site.service.as_ref().and_then(|s| s.compress.as_ref()) {
                resp = self.compress(rules, &wanted, resp).await;
            }
            if let Some(rules) = site.response_rules() {
                rules.apply(resp.headers_mut());
            }
        }
        resp
    }

    /// Checks a request and builds its context: the one canonical target, its site, key and
    /// directives; or the error response. Tells which site the request went to (its response
    /// rules apply to whatever comes back, errors included).
    // The refusal is no larger than what an accepted request carries (its context), and the
    // caller matches the result at once.
    #[allow(clippy::result_large_err)]
    fn admit<B>(
        &self,
        req: Request<B>,
        conn: ConnInfo,
        routed: &mut Option<Arc<Site>>,
        wanted: &mut compress::Wanted,
    ) -> Result<(RequestCtx, B), Response<Body>>
    where
        B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let start = Instant::now();
        let (mut parts, body) = req.into_parts();
        let protocol = match parts.version {
            Version::HTTP_2 => 1,
            Version::HTTP_3 => 2,
            _ => 0,
        };
        self.stats.requests_by_protocol[protocol]
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let ambiguous = parts.extensions.get::<AmbiguousFraming>().is_some();
        let framing = if ambiguous {
            Err(FramingError::LengthAndCoding)
        } else {
            check_framing(&parts.headers, parts.version)
        };
        if let Err(e) = framing {
            tracing::debug!(error = %e, "refused request framing");
            // Nothing of it is forwarded, and the connection goes: bytes after this head may
            // be a second request only the client's other parser would see.
            let mut resp = self.plain_error(
                StatusCode::BAD_REQUEST,
                "bad request: ambiguous message framing\n",
                None,
            );
            resp.headers_mut().insert(
                http::header::CONNECTION,
                http::HeaderValue::from_static("close"),
            );
            return Err(resp);
        }
        // HTTP/1.1 heads over the limits never get here (hyper refuses them as they arrive);
        // h2 and h3 heads are decoded first.
        if parts.version >= Version::HTTP_2
            && !within_head_limits(
                &self.cfg.head_limits,
                &parts.method,
                &parts.uri,
                &parts.headers,
            )
        {
            return Err(self.plain_error(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "request header fields too large\n",
                None,
            ));
        }
        let authority = match request_authority(&parts.uri, &parts.headers, parts.version) {
            Ok(a) => a,
            Err(e) => {
                tracing::debug!(error = %e, "bad request target");
                return Err(self.plain_error(
                    StatusCode::BAD_REQUEST,
                    "bad request: invalid or missing Host\n",
                    None,
                ));
            }
        };
        //= https://www.rfc-editor.org/rfc/rfc9112#section-3.2.4
        //# The asterisk-form of request-target is only used for a server-wide OPTIONS request
        if parts.uri.path() == "*" {
            return Err(if parts.method == Method::OPTIONS {
                self.options_here()
            } else {
                self.plain_error(
                    StatusCode::BAD_REQUEST,
                    "bad request: invalid target\n",
                    None,
                )
            });
        }
        //= https://www.rfc-editor.org/rfc/rfc9112#section-3.2.3
        //# The authority-form of request-target is only used for CONNECT requests
        // (`GET victim.example:80`): never read as `/` of that host. CONNECT itself is
        // refused below with 405.
        if parts.method != Method::CONNECT
            && parts.uri.scheme().is_none()
            && parts.uri.authority().is_some()
        {
            return Err(self.plain_error(
                StatusCode::BAD_REQUEST,
                "bad request: invalid target\n",
                None,
            ));
        }
        // The one canonical target: the key, the upstream request line and Host, purges and
        // logs all use it (urlnorm's module docs list the rules). An absolute-form target with
        // an empty path names `/` (RFC 9110 §4.2.3).
        let pq = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
        let canonical = urlnorm::normalize(conn.scheme, &authority, pq)
            .ok()
            .and_then(|url| {
                let target = http::uri::PathAndQuery::from_maybe_shared(bytes::Bytes::from(
                    url.path_and_query.clone(),
                ))
                .ok()?;
                Some((url, target))
            });
        let Some((url, target)) = canonical else {
            return Err(self.plain_error(
                StatusCode::BAD_REQUEST,
                "bad request: invalid target\n",
                None,
            ));
        };
        if let Err(e) = check_method(&parts.method) {
            let text = if e.status() == StatusCode::METHOD_NOT_ALLOWED {
                "method not allowed\n"
            } else {
                "bad request: malformed method\n"
            };
            return Err(self.plain_error(e.status(), text, None));
        }
        if !decrement_max_forwards(&parts.method, &mut parts.headers) {
            // Max-Forwards: 0 on OPTIONS: this cache is the final recipient.
            return Err(self.options_here());
        }
        let token = &self.cfg.cdn_loop_token;
        if cdn_loop_through(&parts.headers, token, &self.cfg.name)
            || cdn_loop_count(&parts.headers, token) >= self.cfg.max_loop_hops
        {
            return Err(self.plain_error(
                StatusCode::LOOP_DETECTED,
                "loop detected (CDN-Loop)\n",
                None,
            ));
        }
        let early = conn.handshake.filter(Handshake::pending);
        if early.is_some() {
            self.stats
                .early_data
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            //= https://www.rfc-editor.org/rfc/rfc8470#section-5.2
            //# A server that receives a request in early data and chooses not to process
            //# it MUST respond with a 425 (Too Early) status code
            // An unsafe method may change state upstream; a replay must not repeat it. The
            // client sends it again after the handshake.
            if !parts.method.is_safe() {
                return Err(self.too_early());
            }
        }
        // The host picks the site, once; the request keeps it to the end.
        let sites = self.sites.load();
        //= https://www.rfc-editor.org/rfc/rfc9110#section-15.5.20
        //# This can be sent by an origin server (or gateway) in response to a request that
        //# was sent over a connection that is not authoritative for the target URI
        // A connection set up for one site (its certificate, by SNI) carries requests for
        // that site only: no fronting one service's host through another's connection.
        if let Some(name) = &conn.sni {
            let by_name = sites.route(name);
            let by_host = sites.route(host_of(&url.host));
            let same = match (by_name, by_host) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            };
            if !same {
                return Err(self.plain_error(
                    StatusCode::MISDIRECTED_REQUEST,
                    "misdirected request: this connection is for another site\n",
                    None,
                ));
            }
        }
        let routed_site = sites.route(host_of(&url.host)).cloned();
        // The table is read once; the request keeps its site, not the table.
        drop(sites);
        let Some(site) = routed_site else {
            //= https://www.rfc-editor.org/rfc/rfc9110#section-15.5.20
            //# The 421 (Misdirected Request) status code indicates that the request was
            //# directed at a server that is unable or unwilling to produce an authoritative
            //# response for the target URI.
            return Err(self.plain_error(
                StatusCode::MISDIRECTED_REQUEST,
                "misdirected request: no site here for this host\n",
                None,
            ));
        };
        site.counters
            .requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        *routed = Some(site.clone());
        // Only a service's access rules and rate limit look at the client's address.
        let judged = site.service.is_some();
        let Some(client) = client_ip(conn.trusted && judged, conn.peer, &parts.headers) else {
            // A forwarder we trust that names no address: refused, not taken as the
            // forwarder's own (which an allow list may admit).
            return Err(self.plain_error(
                StatusCode::BAD_REQUEST,
                "bad request: X-Forwarded-For names no address\n",
                None,
            ));
        };
        match site.admit(client, &parts.method) {
            Admission::Admit => {}
            Admission::Denied => {
                return Err(self.plain_error(StatusCode::FORBIDDEN, "forbidden\n", None));
            }
            Admission::Method => {
                let mut resp =
                    self.plain_error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n", None);
                if let Some(allow) = site.allow_header() {
                    resp.headers_mut().insert(http::header::ALLOW, allow);
                }
                return Err(resp);
            }
            Admission::TooMany(wait) => {
                let mut resp =
                    self.plain_error(StatusCode::TOO_MANY_REQUESTS, "too many requests\n", None);
                //= https://www.rfc-editor.org/rfc/rfc6585#section-4
                //# The response representations SHOULD include details explaining the
                //# condition, and MAY include a Retry-After header
                let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                resp.headers_mut().insert(
                    http::header::RETRY_AFTER,
                    http::HeaderValue::from(secs.max(1)),
                );
                return Err(resp);
            }
        }
        if let Some(rules) = site.service.as_ref().and_then(|s| s.compress.as_ref()) {
            let accept: Vec<&str> = parts
                .headers
                .get_all(http::header::ACCEPT_ENCODING)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            wanted.accept = (!accept.is_empty()).then(|| accept.join(", "));
            // One object for every client, whatever it accepts: the coding is chosen on the
            // way out (`compress.rs`), so the origin is asked for identity.
            parts.headers.insert(
                http::header::ACCEPT_ENCODING,
                http::HeaderValue::from_static("identity"),
            );
            // The client's validators of the coding it will get name the stored object's.
            if let Some(coding) = compress::negotiate(wanted.accept.as_deref(), &rules.algorithms)
                && compress::strip_coding(&mut parts.headers, coding)
            {
                wanted.validators_of = Some(coding);
            }
        }
        let key = site_key(&site, conn.scheme, &url, &parts.headers);
        let directives = RequestDirectives::parse(&parts.headers);
        let ctx = RequestCtx {
            method: parts.method,
            version: parts.version,
            uri: parts.uri,
            headers: parts.headers,
            authority,
            url,
            target,
            scheme: conn.scheme,
            peer: conn.peer,
            conn_fills: conn.fills,
            early,
            site,
            key,
            directives,
            start,
        };
        Ok((ctx, body))
    }

    /// A request that passes (not GET or HEAD): after its handshake, if it came in early
    /// data.
    async fn pass_request<B>(self: &Arc<Self>, ctx: RequestCtx, body: B) -> Response<Body>
    where
        B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        if !self.after_handshake(&ctx).await {
            return self.too_early();
        }
        let fwd = if ctx.method.is_safe() {
            FwdReason::Bypass
        } else {
            FwdReason::Method
        };
        self.pass(ctx, body, fwd).await
    }
}

impl Engine {
    /// Waits, for a request that arrived in early data, until its connection's handshake has
    /// completed: nothing goes upstream on a request that may be a replay. `false` if the
    /// handshake failed (the request is then answered 425).
    pub(super) async fn after_handshake(&self, ctx: &RequestCtx) -> bool {
        match &ctx.early {
            Some(h) => h.completed().await,
            None => true,
        }
    }

    /// 425 Too Early (RFC 8470 §5.2): the client retries once its handshake is complete.
    pub(super) fn too_early(&self) -> Response<Body> {
        self.stats
            .too_early
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.plain_error(
            StatusCode::TOO_EARLY,
            "too early: send this request again after the handshake\n",
            None,
        )
    }
}

/// The client's address for access rules and rate limits: the peer's, or, from a trusted
/// forwarder, the last address in `X-Forwarded-For` (the one that forwarder appended; those
/// before it were written by whoever reached it, and prove nothing).
/// `None` when a trusted forwarder's field is there but its last entry is no address.
fn client_ip(
    trusted: bool,
    peer: std::net::SocketAddr,
    headers: &http::HeaderMap,
) -> Option<std::net::IpAddr> {
    if !trusted {
        return Some(peer.ip());
    }
    let Some(last) = headers.get_all("x-forwarded-for").iter().next_back() else {
        // Nothing forwarded: the forwarder itself asks (a health check).
        return Some(peer.ip());
    };
    last.to_str()
        .ok()
        .and_then(|v| v.rsplit(',').next())
        .and_then(|ip| ip.trim().parse().ok())
}

/// The host of a normalised authority, without its port (`[::1]:8080` → `[::1]`).
fn host_of(authority: &str) -> &str {
    match authority.rsplit_once(':') {
        Some((host, port))
            if !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit())
                && (!host.starts_with('[') || host.ends_with(']')) =>
        {
            host
        }
        _ => authority,
    }
}

/// The cache key of `url` on `site`: the service name, the URL after the site's rules, and the
/// values of the site's key fields (each present or absent, so "no value" is its own key).
fn site_key(
    site: &Site,
    scheme: urlnorm::Scheme,
    url: &urlnorm::NormalizedUrl,
    headers: &http::HeaderMap,
) -> [u8; 32] {
    let base = derive_key(&site.name, scheme, url, &site.key_rules).0;
    if site.key_headers.is_empty() {
        return base;
    }
    let mut h = blake3::Hasher::new_derive_key("tiercel 2026-12 cache key fields v1");
    h.update(&base);
    for name in &site.key_headers {
        let mut values = headers.get_all(name).iter().peekable();
        if values.peek().is_none() {
            h.update(&[0]);
            continue;
        }
        h.update(&[1]);
        for v in values {
            h.update(&(v.len() as u64).to_le_bytes());
            h.update(v.as_bytes());
        }
        h.update(&[2]);
    }
    *h.finalize().as_bytes()
}

#[cfg(test)]
mod site_tests {
    use super::{client_ip, host_of};

    #[test]
    fn forwarded_for_counts_only_from_a_trusted_peer_and_only_its_last_entry() {
        let peer: std::net::SocketAddr = "10.0.0.1:5000".parse().unwrap();
        let mut h = http::HeaderMap::new();
        h.append("x-forwarded-for", "1.1.1.1, 2.2.2.2".parse().unwrap());
        h.append("x-forwarded-for", "3.3.3.3, 4.4.4.4".parse().unwrap());
        assert_eq!(client_ip(false, peer, &h), Some(peer.ip()));
        assert_eq!(client_ip(true, peer, &h).unwrap().to_string(), "4.4.4.4");
        let mut bad = http::HeaderMap::new();
        bad.insert("x-forwarded-for", "1.1.1.1, nonsense".parse().unwrap());
        assert_eq!(client_ip(true, peer, &bad), None);
        bad.insert("x-forwarded-for", "1.1.1.1:80".parse().unwrap());
        assert_eq!(client_ip(true, peer, &bad), None);
        assert_eq!(
            client_ip(true, peer, &http::HeaderMap::new()),
            Some(peer.ip())
        );
    }

    #[test]
    fn the_port_is_cut_from_names_and_bracketed_addresses_only() {
        assert_eq!(host_of("example.com:8080"), "example.com");
        assert_eq!(host_of("example.com"), "example.com");
        assert_eq!(host_of("[::1]:443"), "[::1]");
        assert_eq!(host_of("[::1]"), "[::1]");
        assert_eq!(host_of("127.0.0.1:80"), "127.0.0.1");
    }
}
