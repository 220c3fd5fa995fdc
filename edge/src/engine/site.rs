//! Sites: what a request's host picks (a configured service, or the node's default origin),
//! and everything that differs per site: key rules, the upstream, access, rate, header rules.
//! The table is compiled once per change and swapped whole ([`Sites`] behind an `ArcSwap`):
//! the request path takes no lock, and a request keeps the site it started with.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use http::HeaderName;
use tiercel_cluster::service::{HeaderRules, QueryKey, RateLimit, RoutingTable, Service};

use crate::key::{KeyRules, QueryRule};
use crate::policy::PolicyConfig;
use crate::upstream::Upstream;

/// Counters of one site, for `/metrics`.
#[derive(Debug, Default)]
pub struct SiteCounters {
    /// Requests routed to it.
    pub requests: AtomicU64,
    /// Refused with 403 by `access.allow` / `access.deny`.
    pub denied: AtomicU64,
    /// Refused with 405 by `access.methods`.
    pub method_refused: AtomicU64,
    /// Refused with 429 by `rate_limit`.
    pub rate_limited: AtomicU64,
}

/// One site as the engine runs it.
pub struct Site {
    /// The name in its cache keys (the service's name, or the node's `service` setting).
    pub name: String,
    /// How its URLs become keys.
    pub key_rules: KeyRules,
    /// Request fields whose values are part of its keys.
    pub key_headers: Vec<HeaderName>,
    /// Where its misses go.
    pub upstream: Arc<dyn Upstream>,
    /// Its cache policy (the node's, with the service's `ttl`).
    pub policy: Arc<PolicyConfig>,
    /// The service it was built from (`None`: the node's default origin).
    pub service: Option<Arc<Service>>,
    limiter: Option<Limiter>,
    /// Its counters.
    pub counters: SiteCounters,
}

impl std::fmt::Debug for Site {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Site")
            .field("name", &self.name)
            .field("upstream", &self.upstream.describe())
            .finish_non_exhaustive()
    }
}

/// What a site says about a request before the cache sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Go ahead.
    Admit,
    /// 403: the client's address is not allowed.
    Denied,
    /// 405: the method is not allowed here.
    Method,
    /// 429: over the rate; retry after this long.
    TooMany(Duration),
}

impl Site {
    /// The node's default site: its `--origin` (or shields), its key rules.
    pub fn default_site(
        name: String,
        key_rules: KeyRules,
        upstream: Arc<dyn Upstream>,
        policy: PolicyConfig,
    ) -> Self {
        Site {
            name,
            key_rules,
            key_headers: Vec::new(),
            upstream,
            policy: Arc::new(policy),
            service: None,
            limiter: None,
            counters: SiteCounters::default(),
        }
    }

    /// A service's site, its misses going to `upstream`, its policy the node's `base` with the
    /// service's `ttl`.
    pub fn for_service(
        service: Arc<Service>,
        upstream: Arc<dyn Upstream>,
        base: &PolicyConfig,
    ) -> Self {
        let policy = PolicyConfig {
            default_ttl: service.ttl.default,
            max_ttl: service.ttl.max,
            ..base.clone()
        };
        let query = match &service.key.query {
            QueryKey::Keep => QueryRule::Keep,
            QueryKey::Drop => QueryRule::Ignore,
            QueryKey::Sort => QueryRule::Sort,
            QueryKey::Allow(names) => QueryRule::Allow(names.clone()),
            QueryKey::Deny(names) => QueryRule::Deny(names.clone()),
        };
        Site {
            name: service.name.clone(),
            key_rules: KeyRules {
                query,
                ..KeyRules::default()
            },
            key_headers: service.key.headers.clone(),
            upstream,
            policy: Arc::new(policy),
            limiter: service.rate_limit.map(Limiter::new),
            service: Some(service),
            counters: SiteCounters::default(),
        }
    }

    /// Access rules and the rate limit, for a client at `ip` asking with `method`.
    pub fn admit(&self, ip: IpAddr, method: &http::Method) -> Admission {
        let Some(service) = &self.service else {
            return Admission::Admit;
        };
        if !service.access.admits(ip) {
            self.counters.denied.fetch_add(1, Relaxed);
            return Admission::Denied;
        }
        if !service.access.allows_method(method) {
            self.counters.method_refused.fetch_add(1, Relaxed);
            return Admission::Method;
        }
        if let Some(limiter) = &self.limiter
            && let Err(wait) = limiter.check(ip)
        {
            self.counters.rate_limited.fetch_add(1, Relaxed);
            return Admission::TooMany(wait);
        }
        Admission::Admit
    }

    /// The `Allow` field of a 405 (RFC 9110 §15.5.6).
    pub fn allow_header(&self) -> Option<http::HeaderValue> {
        let methods = self.service.as_ref()?.access.methods.as_ref()?;
        let list: Vec<&str> = methods.iter().map(http::Method::as_str).collect();
        http::HeaderValue::from_str(&list.join(", ")).ok()
    }

    /// Rules for requests sent upstream.
    pub fn request_rules(&self) -> Option<&HeaderRules> {
        self.service
            .as_ref()
            .map(|s| &s.request_headers)
            .filter(|r| !r.is_empty())
    }

    /// Whether its responses may be compressed on the way out (the compressor then wants to
    /// know which stored body a response carries, `compress::StoredBody`).
    pub fn compresses(&self) -> bool {
        self.service.as_ref().is_some_and(|s| s.compress.is_some())
    }

    /// Rules for responses to clients.
    pub fn response_rules(&self) -> Option<&HeaderRules> {
        self.service
            .as_ref()
            .map(|s| &s.response_headers)
            .filter(|r| !r.is_empty())
    }
}

/// Client addresses one site's limiter remembers before it forgets the idle ones; past it
/// (after forgetting) new addresses share one bucket, so memory stays bounded under a flood
/// of sources.
pub const LIMITER_KEYS: usize = 100_000;

/// The key every address shares once the limiter is full.
const OVERFLOW: IpAddr = IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED);

/// Requests per client address (governor's GCRA), memory bounded.
struct Limiter {
    per_ip: DefaultKeyedRateLimiter<IpAddr>,
    /// When idle addresses were last forgotten (ms since `epoch`).
    swept: AtomicU64,
    epoch: Instant,
}

impl Limiter {
    fn new(rate: RateLimit) -> Self {
        let count = rate.count.max(1);
        let period = (rate.period / count).max(Duration::from_nanos(1));
        let burst = NonZeroU32::new(rate.burst).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(burst);
        Limiter {
            per_ip: RateLimiter::keyed(quota),
            swept: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// `Err(wait)` when `ip` is over the rate.
    fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        let mut key = rate_key(ip);
        if self.per_ip.len() >= LIMITER_KEYS {
            let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
            let last = self.swept.load(Relaxed);
            // At most one sweep a second: forgetting is a pass over every address.
            if now.saturating_sub(last) >= 1000
                && self
                    .swept
                    .compare_exchange(last, now, Relaxed, Relaxed)
                    .is_ok()
            {
                self.per_ip.retain_recent();
                self.per_ip.shrink_to_fit();
            }
            if self.per_ip.len() >= LIMITER_KEYS {
                key = OVERFLOW;
            }
        }
        self.per_ip
            .check_key(&key)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

/// The address a rate applies to: IPv4 as is (also when mapped into IPv6), IPv6 by its /64,
/// the block one subscriber gets, so rotating through one's own addresses is no way around it.
fn rate_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

/// Every site of a node, routed by host.
#[derive(Debug, Default)]
pub struct Sites {
    table: RoutingTable<Arc<Site>>,
    /// Hosts nothing matches go here (the node's `--origin`); `None`: 421.
    pub default: Option<Arc<Site>>,
    /// The service sites, in configuration order.
    pub services: Vec<Arc<Site>>,
}

impl Sites {
    /// A table over `services` (hosts already checked for conflicts) and the default.
    pub fn new(services: Vec<Arc<Site>>, default: Option<Arc<Site>>) -> Self {
        let entries = services
            .iter()
            .filter_map(|s| s.service.as_ref().map(|svc| (svc.as_ref(), s.clone())));
        let table = RoutingTable::build(entries).unwrap_or_else(|conflict| {
            tracing::error!(%conflict, "services claim the same host: ignoring all services");
            RoutingTable::default()
        });
        Sites {
            table,
            default,
            services,
        }
    }

    /// The site for a normalised host (no port).
    pub fn route(&self, host: &str) -> Option<&Arc<Site>> {
        self.table.route(host).or(self.default.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::rate_key;

    #[test]
    fn rates_key_ipv6_by_its_64_and_mapped_ipv4_as_ipv4() {
        let k = |s: &str| rate_key(s.parse().unwrap()).to_string();
        assert_eq!(k("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::");
        assert_eq!(k("2001:db8:1:2:bbbb::9"), "2001:db8:1:2::");
        assert_eq!(k("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(k("192.0.2.7"), "192.0.2.7");
    }
}
