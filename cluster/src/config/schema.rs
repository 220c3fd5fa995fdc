//! The node configuration schema: one serde struct per component, every default in
//! [`defaults`] (used by `Default`, by [`NodeConfig::defaults`] and by the `--help` text).

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::units::{ByteSize, duration};

/// Which binary a configuration is for; it picks the role-dependent defaults (name, port).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// `tiercel-edge`: faces clients.
    Edge,
    /// `tiercel-shield`: faces the origin, chosen by edges.
    Shield,
}

impl Role {
    /// The default node name, also the binary name.
    pub fn default_name(self) -> &'static str {
        match self {
            Role::Edge => defaults::EDGE_NAME,
            Role::Shield => defaults::SHIELD_NAME,
        }
    }

    /// The default plain-HTTP listener.
    pub fn default_listen(self) -> SocketAddr {
        match self {
            Role::Edge => defaults::EDGE_LISTEN,
            Role::Shield => defaults::SHIELD_LISTEN,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Edge => "edge",
            Role::Shield => "shield",
        })
    }
}

/// Every built-in default, in one place: `Default` impls, [`NodeConfig::defaults`] and the
/// flags' help text read these, so they cannot drift apart.
pub mod defaults {
    use super::*;

    /// Node name of an edge.
    pub const EDGE_NAME: &str = "tiercel-edge";
    /// Node name of a shield.
    pub const SHIELD_NAME: &str = "tiercel-shield";
    /// Plain listener of an edge.
    pub const EDGE_LISTEN: SocketAddr =
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8080));
    /// Plain listener of a shield.
    pub const SHIELD_LISTEN: SocketAddr =
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8081));
    /// RAM cache size.
    pub const MEMORY_CACHE: ByteSize = ByteSize::mib(256);
    /// SSD cache size.
    pub const DISK_CACHE_SIZE: ByteSize = ByteSize::gib(1);
    /// A shield's SSD cache size: it holds what many edges miss.
    pub const SHIELD_DISK_CACHE_SIZE: ByteSize = ByteSize::gib(8);
    /// Smallest SSD cache accepted (a few chunks plus the store's own overhead).
    pub const MIN_DISK_CACHE_SIZE: ByteSize = ByteSize::mib(16);
    /// Upstream TCP (and TLS) connect timeout.
    pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
    /// Upstream time to the response head.
    pub const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(30);
    /// Upstream body: longest silence between two reads.
    pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
    /// Client: time to send a request head.
    pub const CLIENT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
    /// Client: idle keep-alive connection lifetime.
    pub const CLIENT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
    /// Time in-flight requests get to finish on shutdown.
    pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
    /// Largest request head accepted.
    pub const MAX_REQUEST_HEAD: ByteSize = ByteSize::kib(64);
    /// Most header fields per request.
    pub const MAX_HEADERS: usize = 100;
    /// Most client connections at once.
    pub const MAX_CONNECTIONS: usize = 10_000;
    /// Node-wide fills at once; 0 sizes it to the memory tier (see [`super::Limits::max_fills`]).
    pub const MAX_FILLS: usize = 0;
    /// Fills one client connection may have started and not yet finished.
    pub const MAX_FILLS_PER_CONNECTION: usize = 64;
    /// How long a request waits for a fill slot before 503.
    pub const FILL_QUEUE_TIMEOUT: Duration = Duration::from_secs(1);
    /// Most surrogate keys stored per object.
    pub const MAX_TAGS: usize = 1000;
    /// Most bytes of surrogate keys stored per object.
    pub const MAX_TAGS_BYTES: ByteSize = ByteSize::kib(16);
    /// Most field names in a stored response's Vary.
    pub const MAX_VARY_FIELDS: usize = 16;
    /// Most variants stored per URL.
    pub const MAX_VARIANTS: usize = 100;
    /// Client connections from one address at once; 0 = no cap.
    pub const MAX_CONNECTIONS_PER_IP: usize = 0;
    /// Client: a request body must start, and keep coming, within this.
    pub const CLIENT_BODY_TIMEOUT: Duration = Duration::from_secs(10);
    /// How far a fill nobody reads any more goes on before it is dropped.
    pub const ABANDONED_FILL_MAX: ByteSize = ByteSize::mib(8);
    /// A cold whole GET asks the upstream for this many bytes first; a larger object is
    /// completed chunk by chunk.
    pub const SLICE_THRESHOLD: ByteSize = ByteSize::mib(8);
    /// Storage chunk size.
    pub const CHUNK_SIZE: ByteSize = ByteSize::mib(1);
    /// Smallest chunk size accepted.
    pub const MIN_CHUNK_SIZE: ByteSize = ByteSize::kib(64);
    /// Largest chunk size accepted (foyer's largest entry with its default block size).
    pub const MAX_CHUNK_SIZE: ByteSize = ByteSize::mib(16);
    /// Heuristic freshness: this fraction of the time since Last-Modified.
    pub const HEURISTIC_FRACTION: f64 = 0.1;
    /// Heuristic freshness: upper bound.
    pub const HEURISTIC_MAX: Duration = Duration::from_secs(24 * 3600);
    /// Whether responses with Set-Cookie are stored.
    pub const STORE_SET_COOKIE: bool = false;
    /// Whether a request's `Cache-Control: no-cache` forces revalidation.
    pub const HONOR_REQUEST_NO_CACHE: bool = true;
    /// Silence from the purge-service after which hits are revalidated.
    pub const MAX_PURGE_LAG: Duration = Duration::from_secs(10);
    /// Distinct purge patterns held before the oldest are folded together.
    pub const MAX_PURGE_RULES: usize = crate::follower::DEFAULT_MAX_PURGE_RULES;
    /// How long an uncacheable answer makes a key skip coalescing.
    pub const HIT_FOR_MISS_TTL: Duration = Duration::from_secs(30);
    /// Largest object stored; 0 means unlimited.
    pub const MAX_OBJECT_SIZE: ByteSize = ByteSize::b(0);
    /// Whether an edge goes to the origin when no shield is healthy.
    pub const ORIGIN_FALLBACK: bool = true;
    /// Request-serving threads; 0 means one per core the process may use.
    pub const WORKER_THREADS: usize = 0;
    /// Most request-serving threads accepted.
    pub const MAX_WORKER_THREADS: usize = 1024;
}

/// The configuration of one edge or shield process.
///
/// Loaded with [`NodeConfig::load`](crate::config::NodeConfig::load); see the module docs for
/// the precedence of flags, `TIERCEL_*` variables, the TOML file and these defaults. Optional
/// values are written `""` in TOML (and in variables and flags) to mean "not set", which is how
/// a file turns off a listener that is on by default.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// Node name: the cache identifier in `Cache-Status` and `Via`, and the follower's name
    /// in the purge-service's reports. Default: the binary name.
    pub name: String,
    /// Plain listener, HTTP/1.1 and h2c (prior knowledge). Default 127.0.0.1:8080 (edge),
    /// 127.0.0.1:8081 (shield); `""` turns it off.
    #[serde(with = "opt_addr")]
    pub listen: Option<SocketAddr>,
    /// TLS listener: TCP for h1/h2, UDP for h3 on the same port.
    #[serde(with = "opt_addr")]
    pub tls_listen: Option<SocketAddr>,
    /// PEM certificate chain for `tls_listen`; a self-signed one is made when both `cert` and
    /// `key` are absent.
    #[serde(with = "opt_path")]
    pub cert: Option<PathBuf>,
    /// PEM private key for `cert` (both or neither).
    #[serde(with = "opt_path")]
    pub key: Option<PathBuf>,
    /// Default upstream: `http://host[:port]` or `https://host[:port]`, no path or query.
    #[serde(with = "opt_string")]
    pub origin: Option<String>,
    /// Shield base URLs (edges pick one per key by rendezvous hashing).
    pub shields: Vec<String>,
    /// Whether an edge goes straight to the origin when no shield is healthy.
    pub origin_fallback: bool,
    /// How edges speak to shields: `h2` (one multiplexed connection per shield) or `http/1.1`
    /// (a pool of keep-alive connections).
    pub shield_protocol: String,
    /// How nodes speak to the origin: `http/1.1` (a keep-alive pool), `auto` (over TLS, HTTP/2
    /// when the origin picks `h2` by ALPN, else HTTP/1.1) or `h2` (HTTP/2 only: ALPN over TLS,
    /// prior knowledge over cleartext).
    pub origin_protocol: String,
    /// Addresses (`IP` or `IP:PORT`) to connect to for the origin instead of resolving its host
    /// name, which still names it in TLS (SNI, certificate check): several servers behind one
    /// name. Connections rotate over them; a refused connect moves on to the next.
    pub origin_addresses: Vec<String>,
    /// Peers (addresses or `ADDR/PREFIX` ranges) whose `X-Forwarded-Proto` names the scheme a
    /// request is keyed and forwarded under: a shield's edges (loopback by default), or a
    /// TLS-terminating load balancer in front of an edge (none by default). Anyone else's is
    /// replaced by the scheme of the connection.
    pub trusted_forwarders: Vec<String>,
    /// Purge-service nodes to follow (any one will do; the next is tried on failure).
    pub purge_services: Vec<String>,
    /// Bearer token for the purge-service log. Kept out of [`NodeConfig::to_toml`].
    #[serde(with = "opt_string")]
    pub purge_token: Option<String>,
    /// File holding `purge_token` (read once at start; the two are exclusive).
    #[serde(with = "opt_path")]
    pub purge_token_file: Option<PathBuf>,
    /// CA certificates verifying `https://` purge-services; the system's roots when unset.
    #[serde(with = "opt_path")]
    pub purge_ca_file: Option<PathBuf>,
    /// CA certificates verifying an `https://` origin (and shields); Mozilla's roots when unset.
    #[serde(with = "opt_path")]
    pub origin_ca_file: Option<PathBuf>,
    /// RAM tier size; never exceeded.
    pub memory_cache: ByteSize,
    /// SSD tier directory; no disk tier when unset.
    #[serde(with = "opt_path")]
    pub disk_cache: Option<PathBuf>,
    /// SSD tier size; never exceeded; at least 16MiB when `disk_cache` is set.
    pub disk_cache_size: ByteSize,
    /// Admin listener (`/healthz`, `/readyz`, `/metrics`); off when unset.
    #[serde(with = "opt_addr")]
    pub admin_listen: Option<SocketAddr>,
    /// Where the purge follower keeps its applied index and rules; default: `disk_cache`
    /// (see [`NodeConfig::effective_state_dir`]); in memory only when neither is set.
    #[serde(with = "opt_path")]
    pub state_dir: Option<PathBuf>,
    /// Threads that serve requests; `0` = one per core the process may use (its CPU
    /// affinity and cgroup quota count). With one thread the node runs a single-threaded
    /// scheduler: there is nothing to steal work from, and cross-thread wake-ups cost.
    pub worker_threads: usize,
    /// Timeouts, upstream and downstream.
    pub timeouts: Timeouts,
    /// Limits on what clients may send.
    pub limits: Limits,
    /// Caching behaviour.
    pub cache: CacheSettings,
    /// HTTP/3 on the TLS listener's port (UDP).
    pub quic: QuicSettings,
    /// Services (`[[services]]`, DESIGN.md §8): kept as TOML tables here; the service schema
    /// is parsed and validated by its owner, the engine's routing table. File only.
    pub services: Vec<toml::Table>,
}

/// Timeouts, upstream and downstream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Timeouts {
    /// Upstream TCP + TLS connect.
    #[serde(with = "duration")]
    pub connect: Duration,
    /// Upstream: the request's end (its last piece taken to be written; for a request without
    /// a body, its start) → response head received. An upload's time going out is not
    /// counted: `idle` bounds each pause in which the upstream takes none of it.
    #[serde(with = "duration")]
    pub first_byte: Duration,
    /// Upstream: longest pause between two reads of a response body, and longest the
    /// upstream may take none of a request body while it goes out.
    #[serde(with = "duration")]
    pub idle: Duration,
    /// Client: an HTTP/1.1 request head must be complete this long after its first byte (a
    /// fresh connection: after it is accepted, or its TLS handshake done).
    #[serde(with = "duration")]
    pub client_header: Duration,
    /// Client: a connection (h1 or h2) with no request in flight is closed after this, and so
    /// is one whose client has taken none of our bytes for this long.
    #[serde(with = "duration")]
    pub client_idle: Duration,
    /// On shutdown, how long in-flight requests may finish.
    #[serde(with = "duration")]
    pub shutdown_grace: Duration,
    /// A request that would start a fill or a pass waits this long for a slot (`limits.max_fills`,
    /// `limits.max_fills_per_connection`), then gets 503 with Retry-After.
    #[serde(with = "duration")]
    pub fill_queue: Duration,
    /// Client: a request body forwarded upstream must start within this of its head, and no
    /// later piece may take longer from when the edge asks for it (the upstream's time over
    /// earlier pieces is not counted; 408 otherwise); nothing is asked upstream before it
    /// starts.
    #[serde(with = "duration")]
    pub client_body: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: defaults::CONNECT_TIMEOUT,
            first_byte: defaults::FIRST_BYTE_TIMEOUT,
            idle: defaults::IDLE_TIMEOUT,
            client_header: defaults::CLIENT_HEADER_TIMEOUT,
            client_idle: defaults::CLIENT_IDLE_TIMEOUT,
            shutdown_grace: defaults::SHUTDOWN_GRACE,
            fill_queue: defaults::FILL_QUEUE_TIMEOUT,
            client_body: defaults::CLIENT_BODY_TIMEOUT,
        }
    }
}

/// Limits on what clients may send (each excess is refused, never buffered).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest request head (request line + fields); larger → 431.
    pub max_request_head: ByteSize,
    /// Most header fields per request; more → 431.
    pub max_headers: usize,
    /// Client connections served at once, across every client listener; near the cap the
    /// longest-idle keep-alive connections are closed to make room, and beyond it new ones
    /// wait in the kernel's backlog. Lowered at start to fit the open-file limit.
    pub max_connections: usize,
    /// Client connections one address may hold at once (`0`: no cap); more are closed as
    /// soon as they are accepted.
    pub max_connections_per_ip: usize,
    /// Upstream exchanges in flight on the node at once: fills, and passes (requests such as
    /// POST that go upstream uncached), each holding an upstream connection; `0` sizes it to
    /// the memory tier (one per 256 KiB of it, between 256 and 16384), since each fill holds a
    /// window of its body. Also lowered at start to fit the open-file limit.
    pub max_fills: usize,
    /// Upstream exchanges (fills and passes) one client connection may have started and not
    /// yet finished (a fill counts against the connection that started it even after that
    /// client left).
    pub max_fills_per_connection: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_request_head: defaults::MAX_REQUEST_HEAD,
            max_headers: defaults::MAX_HEADERS,
            max_connections: defaults::MAX_CONNECTIONS,
            max_connections_per_ip: defaults::MAX_CONNECTIONS_PER_IP,
            max_fills: defaults::MAX_FILLS,
            max_fills_per_connection: defaults::MAX_FILLS_PER_CONNECTION,
        }
    }
}

/// HTTP/3 (QUIC) on the TLS listener's port, over UDP: the same certificates, the same
/// handler as HTTP/1.1 and HTTP/2.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuicSettings {
    /// Serve HTTP/3 when `tls_listen` is set.
    pub enabled: bool,
    /// `Alt-Svc: h3=":PORT"; ma=…` on HTTP/1.1 and HTTP/2 responses over TLS, so clients
    /// find HTTP/3; `0s`: none sent.
    #[serde(with = "duration")]
    pub alt_svc_max_age: Duration,
    /// Request streams one client connection may have open at once.
    pub max_concurrent_streams: u32,
    /// Flow-control window of one request stream (what a client may send ahead).
    pub stream_receive_window: ByteSize,
    /// Flow-control window of a whole connection.
    pub receive_window: ByteSize,
    /// Congestion controller: `cubic`, `new_reno` or `bbr`.
    pub congestion: String,
    /// Largest UDP payload this node accepts (1200..=65527); path MTU discovery finds what
    /// a path carries.
    pub max_udp_payload: u16,
    /// When new clients must prove their address with a Retry round trip before the node
    /// does any handshake work for them (RFC 9000 §8.1): `auto` (while more than 64
    /// handshakes are in progress, i.e. under load or a spoofed flood) or `always`.
    pub address_validation: String,
    /// 0-RTT (early data) from resuming clients. Off by default. When on, early requests
    /// are answered from storage at once, unsafe methods get 425 Too Early (RFC 8470) and
    /// nothing goes upstream before the handshake completes, so a replay does no work.
    pub early_data: bool,
}

impl Default for QuicSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            alt_svc_max_age: Duration::from_secs(86_400),
            max_concurrent_streams: 256,
            stream_receive_window: ByteSize::mib(1),
            receive_window: ByteSize::mib(8),
            congestion: "cubic".to_owned(),
            max_udp_payload: 1472,
            address_validation: "auto".to_owned(),
            early_data: false,
        }
    }
}

/// Caching behaviour (the engine's and the RFC 9111 policy's tunables).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheSettings {
    /// Objects are stored in chunks of this size (64KiB..=16MiB).
    pub chunk_size: ByteSize,
    /// A cold whole GET asks the upstream for `Range: bytes=0-(this - 1)` (rounded down to
    /// whole chunks, at least one); an object no larger comes in that one answer, a larger one is completed
    /// chunk by chunk with aligned range requests as clients read it, as nginx's slice module
    /// does. `0` = always fetch whole objects in one request.
    pub slice_threshold: ByteSize,
    /// Heuristic freshness = this fraction of (Date − Last-Modified), 0..=1.
    pub heuristic_fraction: f64,
    /// Upper bound of heuristic freshness.
    #[serde(with = "duration")]
    pub heuristic_max: Duration,
    /// Store responses carrying Set-Cookie (a shared cache normally must not).
    pub store_set_cookie: bool,
    /// A request's `Cache-Control: no-cache` forces a revalidation (off: serve from cache).
    pub honor_request_no_cache: bool,
    /// With no word from the purge-service for this long, hits are revalidated first.
    #[serde(with = "duration")]
    pub max_purge_lag: Duration,
    /// Distinct purge patterns (URLs, prefixes, tags, hosts) held; beyond it the oldest quarter
    /// is folded into one rule that purges everything stored before them.
    pub max_purge_rules: usize,
    /// An uncacheable answer lets requests for its key bypass coalescing this long.
    #[serde(with = "duration")]
    pub hit_for_miss_ttl: Duration,
    /// Largest object stored (larger ones are streamed through); `0` = unlimited.
    pub max_object_size: ByteSize,
    /// A fill whose readers have all gone goes on (to store the object for the next clients)
    /// only while it has received at most this much; then it stops and stores nothing.
    pub abandoned_fill_max: ByteSize,
    /// Most surrogate keys (`Surrogate-Key`, `Cache-Tag`) per object; a response with more is
    /// served but not stored (Cache-Status `detail=too-many-tags`).
    pub max_tags: usize,
    /// Most bytes of surrogate keys per object, their lengths summed (`detail=tags-too-long`).
    pub max_tags_bytes: ByteSize,
    /// Most field names in a response's Vary (`detail=vary-too-wide`).
    pub max_vary_fields: usize,
    /// Most variants stored per URL (`detail=too-many-variants` for the next new one).
    pub max_variants: usize,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            chunk_size: defaults::CHUNK_SIZE,
            slice_threshold: defaults::SLICE_THRESHOLD,
            heuristic_fraction: defaults::HEURISTIC_FRACTION,
            heuristic_max: defaults::HEURISTIC_MAX,
            store_set_cookie: defaults::STORE_SET_COOKIE,
            honor_request_no_cache: defaults::HONOR_REQUEST_NO_CACHE,
            max_purge_lag: defaults::MAX_PURGE_LAG,
            max_purge_rules: defaults::MAX_PURGE_RULES,
            hit_for_miss_ttl: defaults::HIT_FOR_MISS_TTL,
            max_object_size: defaults::MAX_OBJECT_SIZE,
            abandoned_fill_max: defaults::ABANDONED_FILL_MAX,
            max_tags: defaults::MAX_TAGS,
            max_tags_bytes: defaults::MAX_TAGS_BYTES,
            max_vary_fields: defaults::MAX_VARY_FIELDS,
            max_variants: defaults::MAX_VARIANTS,
        }
    }
}

impl Default for NodeConfig {
    /// The edge defaults (serde's `default` needs a role-free constructor).
    fn default() -> Self {
        Self::defaults(Role::Edge)
    }
}

impl NodeConfig {
    /// The built-in defaults for `role`: the bottom layer of [`NodeConfig::load`].
    pub fn defaults(role: Role) -> Self {
        Self {
            name: role.default_name().to_owned(),
            listen: Some(role.default_listen()),
            tls_listen: None,
            cert: None,
            key: None,
            origin: None,
            shields: Vec::new(),
            origin_fallback: defaults::ORIGIN_FALLBACK,
            shield_protocol: "h2".to_owned(),
            origin_protocol: "http/1.1".to_owned(),
            origin_addresses: Vec::new(),
            trusted_forwarders: match role {
                Role::Edge => Vec::new(),
                Role::Shield => vec!["127.0.0.0/8".to_owned(), "::1".to_owned()],
            },
            purge_services: Vec::new(),
            purge_token: None,
            purge_token_file: None,
            purge_ca_file: None,
            origin_ca_file: None,
            memory_cache: defaults::MEMORY_CACHE,
            disk_cache: None,
            disk_cache_size: match role {
                Role::Edge => defaults::DISK_CACHE_SIZE,
                Role::Shield => defaults::SHIELD_DISK_CACHE_SIZE,
            },
            admin_listen: None,
            state_dir: None,
            worker_threads: defaults::WORKER_THREADS,
            timeouts: Timeouts::default(),
            limits: Limits::default(),
            cache: CacheSettings::default(),
            quic: QuicSettings::default(),
            services: Vec::new(),
        }
    }

    /// The number of request-serving threads: `worker_threads`, or when it is 0, the cores
    /// this process may run on (1 if the system cannot tell).
    pub fn effective_worker_threads(&self) -> usize {
        match self.worker_threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }

    /// Where the purge follower persists its state: `state_dir`, else `disk_cache`, else
    /// nowhere (state kept in memory and rebuilt from the log on restart).
    pub fn effective_state_dir(&self) -> Option<&Path> {
        self.state_dir.as_deref().or(self.disk_cache.as_deref())
    }
}

/// Optional values as strings, `""` meaning unset (TOML has no null).
macro_rules! optional_string_form {
    ($module:ident, $ty:ty, $expected:literal) => {
        pub(crate) mod $module {
            use serde::{Deserialize, Deserializer, Serializer, de};

            pub(crate) fn serialize<S: Serializer>(
                v: &Option<$ty>,
                s: S,
            ) -> Result<S::Ok, S::Error> {
                match v {
                    Some(v) => s.collect_str(&Shown(v)),
                    None => s.serialize_str(""),
                }
            }

            pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
                d: D,
            ) -> Result<Option<$ty>, D::Error> {
                let text = String::deserialize(d)?;
                if text.is_empty() {
                    return Ok(None);
                }
                super::parse_form::<$ty>(&text).map(Some).ok_or_else(|| {
                    de::Error::custom(format!(concat!("expected ", $expected, ", got {:?}"), text))
                })
            }

            struct Shown<'a>(&'a $ty);

            impl std::fmt::Display for Shown<'_> {
                fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    super::ShowForm::show(self.0, f)
                }
            }
        }
    };
}

/// How an optional value is parsed from and printed to its string form.
trait ShowForm: Sized {
    fn parse(s: &str) -> Option<Self>;
    fn show(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result;
}

impl ShowForm for SocketAddr {
    fn parse(s: &str) -> Option<Self> {
        s.trim().parse().ok()
    }
    fn show(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl ShowForm for String {
    fn parse(s: &str) -> Option<Self> {
        Some(s.to_owned())
    }
    fn show(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self)
    }
}

impl ShowForm for PathBuf {
    fn parse(s: &str) -> Option<Self> {
        Some(PathBuf::from(s))
    }
    fn show(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.display(), f)
    }
}

fn parse_form<T: ShowForm>(s: &str) -> Option<T> {
    T::parse(s)
}

optional_string_form!(
    opt_addr,
    std::net::SocketAddr,
    "an address like 127.0.0.1:8080"
);
optional_string_form!(opt_string, String, "a string");
optional_string_form!(opt_path, std::path::PathBuf, "a path");
