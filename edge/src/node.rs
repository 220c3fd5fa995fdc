//! A running node: configuration turned into storage, upstream, engine and listeners.
//!
//! Both binaries (`tiercel-edge`, `tiercel-shield`) and the integration tests start nodes
//! through [`start`], so what the tests exercise is what the binaries run.

use std::net::SocketAddr;
use std::sync::Arc;

use tiercel_cluster::config::{NodeConfig, Role};
use tiercel_cluster::conn::{ConnLimiter, fd_budget};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use tiercel_cluster::follower::{
    FollowerConfig, FollowerError, FollowerHandle, PurgeState, start_follower,
};

use crate::engine::{
    Engine, EngineConfig, EngineHooks, FollowedPurges, NoPurges, PurgeOracle, StoreCaps,
};
use crate::policy::PolicyConfig;
use crate::protocol::HeadLimits;
use crate::server::{self, Readiness, ServerOptions};
use crate::storage::{Storage, StorageError, StorageOptions};
use crate::upstream::{
    OriginUpstream, OriginUrlError, Reach, ShieldUpstream, Upstream, UpstreamTimeouts, WireProtocol,
};

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// No upstream configured.
    #[error(
        "no origin configured: pass --origin http://host:port (or set origin in the config file)"
    )]
    NoOrigin,
    /// The origin URL is unusable.
    #[error(transparent)]
    Origin(#[from] OriginUrlError),
    /// The cache storage could not be opened.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// TLS set-up failed.
    #[error(transparent)]
    Tls(#[from] server::TlsError),
    /// The HTTP/3 endpoint could not be set up.
    #[error(transparent)]
    Quic(#[from] server::QuicError),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Neither --listen nor --tls-listen.
    #[error("nothing to serve: set --listen and/or --tls-listen")]
    NoListener,
    /// A shield given shields would send its misses around the tier instead of to the origin.
    #[error("shields: a shield's upstream is the origin; remove --shield / shields")]
    ShieldWithShields,
    /// The purge follower could not start (bad state file, bad configuration).
    #[error("purge follower: {0}")]
    Follower(#[from] FollowerError),
    /// A service of the configuration cannot run.
    #[error("config error: {0}")]
    Service(#[from] tiercel_cluster::service::ServiceError),
}

/// A node that is serving.
pub struct RunningNode {
    /// Where HTTP/1.1 + h2c is served.
    pub listen: Option<SocketAddr>,
    /// Where TLS (h1/h2) is served.
    pub tls_listen: Option<SocketAddr>,
    /// Where HTTP/3 is served (UDP, the TLS listener's port).
    pub quic_listen: Option<SocketAddr>,
    /// Where the admin endpoints are served.
    pub admin_listen: Option<SocketAddr>,
    /// The engine (for tests and admin).
    pub engine: Arc<Engine>,
    /// The certificate served on `tls_listen` (DER), so clients of a self-signed node can pin it.
    pub certificate: Option<Vec<u8>>,
    /// The purge follower, when `--purge-service` is set.
    pub follower: Option<FollowerHandle>,
    /// What the follower has applied (for metrics and tests).
    pub purge_state: Option<Arc<PurgeState>>,
    /// Client-connection counters of every listener.
    pub connections: Arc<server::ConnectionStats>,
    /// Builds the engine's sites when services change.
    pub sites: Arc<crate::sites::SiteBuilder>,
    shutdown: CancellationToken,
    tasks: JoinSet<()>,
}

impl std::fmt::Debug for RunningNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningNode")
            .field("listen", &self.listen)
            .field("tls_listen", &self.tls_listen)
            .field("quic_listen", &self.quic_listen)
            .field("admin_listen", &self.admin_listen)
            .finish()
    }
}

impl RunningNode {
    /// What `/metrics` on the admin listener shows now.
    pub fn metrics_text(&self) -> String {
        server::metrics_text(&self.engine, &self.connections)
    }

    /// Stops accepting, lets requests finish for the grace period, and closes storage.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        while self.tasks.join_next().await.is_some() {}
        if let Some(f) = self.follower.take() {
            f.shutdown().await;
        }
        if let Err(e) = self.engine.storage().close().await {
            tracing::warn!(error = %e, "closing the cache storage failed");
        }
    }

    /// A token that stops the node when cancelled (e.g. on SIGTERM).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }
}

/// The HTTP/3 endpoint's settings, from `[quic]` and the client timeouts.
fn quic_options(cfg: &NodeConfig) -> server::QuicOptions {
    let q = &cfg.quic;
    server::QuicOptions {
        handshake_timeout: cfg.timeouts.client_header,
        idle_timeout: cfg.timeouts.client_idle,
        max_concurrent_streams: q.max_concurrent_streams,
        stream_receive_window: q.stream_receive_window.as_u64(),
        receive_window: q.receive_window.as_u64(),
        // Validated with the configuration.
        congestion: server::Congestion::from_name(&q.congestion)
            .unwrap_or(server::Congestion::Cubic),
        max_udp_payload: q.max_udp_payload,
        max_request_head: cfg.limits.max_request_head.as_usize(),
        shutdown_grace: cfg.timeouts.shutdown_grace,
        always_validate: q.address_validation == "always",
        early_data: q.early_data,
    }
}

/// Maps node configuration to engine settings.
pub fn engine_config(role: Role, cfg: &NodeConfig) -> EngineConfig {
    let c = &cfg.cache;
    EngineConfig {
        name: cfg.name.clone(),
        policy: PolicyConfig {
            heuristic_fraction: c.heuristic_fraction,
            heuristic_max: c.heuristic_max,
            store_set_cookie: c.store_set_cookie,
            honor_request_no_cache: c.honor_request_no_cache,
            ..PolicyConfig::default()
        },
        chunk_size: c.chunk_size.as_usize(),
        // Objects are sliced by the tier that fetches from the origin: an edge with shields
        // asks its shield for whole objects and streams them as the shield slices.
        slice_threshold: if cfg.shields.is_empty() {
            c.slice_threshold.as_u64()
        } else {
            0
        },
        hit_for_miss_ttl: c.hit_for_miss_ttl,
        max_object_size: c.max_object_size.as_u64(),
        max_fills: match cfg.limits.max_fills {
            // Each fill keeps a window of its body in memory: one per 256 KiB of the memory
            // tier, within sane bounds.
            0 => (cfg.memory_cache.as_usize() / (256 * 1024)).clamp(256, 16_384),
            n => n,
        },
        max_fills_per_connection: cfg.limits.max_fills_per_connection,
        fill_queue: cfg.timeouts.fill_queue,
        client_body: cfg.timeouts.client_body,
        abandoned_fill_max: c.abandoned_fill_max.as_u64(),
        head_limits: HeadLimits {
            max_fields: cfg.limits.max_headers,
            max_bytes: cfg.limits.max_request_head.as_usize(),
        },
        store_caps: StoreCaps {
            max_tags: c.max_tags,
            max_tags_bytes: c.max_tags_bytes.as_usize(),
            max_vary_fields: c.max_vary_fields,
            max_variants: u32::try_from(c.max_variants).unwrap_or(u32::MAX),
        },
        // A shield feeds edges of the same CDN: they need the targeted fields and tags too.
        forward_targeted_fields: role == Role::Shield,
        strip_surrogate_headers: role == Role::Edge,
        ..EngineConfig::default()
    }
}

/// The follower settings of a node: its name and role identify it to the purge-service; its
/// state lives in `<state dir>/purge` (beside, not inside, the cache files).
pub fn follower_config(role: Role, cfg: &NodeConfig) -> FollowerConfig {
    let role = match role {
        Role::Edge => "edge",
        Role::Shield => "shield",
    };
    let mut f = FollowerConfig::new(cfg.purge_services.clone(), cfg.name.clone(), role);
    f.token = cfg.purge_token.clone();
    f.ca_file = cfg.purge_ca_file.clone();
    f.state_dir = cfg.effective_state_dir().map(|d| d.join("purge"));
    f.max_purge_lag = cfg.cache.max_purge_lag;
    f.max_purge_rules = cfg.cache.max_purge_rules;
    f
}

/// Starts a node; with `purge_services` configured it follows the purge log.
pub async fn start(role: Role, cfg: &NodeConfig) -> Result<RunningNode, NodeError> {
    if cfg.purge_services.is_empty() {
        return start_with_purges(role, cfg, Arc::new(NoPurges)).await;
    }
    let hooks = Arc::new(EngineHooks::default());
    let (state, handle) = start_follower(follower_config(role, cfg), hooks.clone()).await?;
    let purges = Arc::new(FollowedPurges(state.clone()));
    let mut node = match start_node(role, cfg, purges, Some(hooks)).await {
        Ok(n) => n,
        Err(e) => {
            handle.shutdown().await;
            return Err(e);
        }
    };
    node.follower = Some(handle);
    node.purge_state = Some(state);
    Ok(node)
}

/// Starts a node that consults `purges` on every hit.
pub async fn start_with_purges(
    role: Role,
    cfg: &NodeConfig,
    purges: Arc<dyn PurgeOracle>,
) -> Result<RunningNode, NodeError> {
    start_node(role, cfg, purges, None).await
}

/// Starts a node; `hooks` (the purge follower's) get the engine before any listener opens, so
/// the services the log already delivered route the very first request.
async fn start_node(
    role: Role,
    cfg: &NodeConfig,
    purges: Arc<dyn PurgeOracle>,
    hooks: Option<Arc<EngineHooks>>,
) -> Result<RunningNode, NodeError> {
    if role == Role::Shield && !cfg.shields.is_empty() {
        return Err(NodeError::ShieldWithShields);
    }
    if cfg.shields.is_empty() && cfg.origin.is_none() && cfg.services.is_empty() {
        return Err(NodeError::NoOrigin);
    }
    // Checked with the configuration; compiled again here to run.
    let file_services = tiercel_cluster::service::from_tables(&cfg.services)?;
    if cfg.listen.is_none() && cfg.tls_listen.is_none() {
        return Err(NodeError::NoListener);
    }
    let timeouts = UpstreamTimeouts {
        connect: cfg.timeouts.connect,
        first_byte: cfg.timeouts.first_byte,
        idle: cfg.timeouts.idle,
    };
    let roots = match &cfg.origin_ca_file {
        Some(path) => Some(tiercel_cluster::tls::load_certs(path).map_err(server::TlsError::from)?),
        None => None,
    };
    // Validated with the config: every entry parses.
    let origin_addresses: Vec<_> = cfg
        .origin_addresses
        .iter()
        .filter_map(|a| tiercel_cluster::config::origin_address(a))
        .collect();
    let origin_protocol = match cfg.origin_protocol.as_str() {
        "h2" => WireProtocol::Http2,
        "auto" => WireProtocol::Negotiated,
        _ => WireProtocol::Http1,
    };
    let origin = cfg
        .origin
        .as_deref()
        .map(|o| {
            OriginUpstream::connect(
                o,
                timeouts,
                Reach {
                    protocol: origin_protocol,
                    roots: roots.as_deref(),
                    addresses: &origin_addresses,
                },
            )
        })
        .transpose()?;
    let shield_protocol = if cfg.shield_protocol == "http/1.1" {
        WireProtocol::Http1
    } else {
        WireProtocol::Http2
    };
    // Misses go to the shield tier when there is one (the origin standing in when no shield
    // answers, if allowed), else to the origin. Hosts of a service go to its own upstream;
    // other hosts here, or 421 when there is neither.
    let upstream: Option<Arc<dyn Upstream>> = match (cfg.shields.is_empty(), origin.clone()) {
        (true, Some(origin)) => Some(origin),
        (true, None) => None,
        (false, origin) => {
            let fallback = origin
                .filter(|_| cfg.origin_fallback)
                .map(|o| o as Arc<dyn Upstream>);
            Some(ShieldUpstream::new(
                &cfg.shields,
                shield_protocol,
                fallback,
                timeouts,
                roots.as_deref(),
            )?)
        }
    };
    let upstream_name = upstream
        .as_ref()
        .map_or_else(|| "none (services only)".to_owned(), |u| u.describe());
    let mut site_builder = crate::sites::SiteBuilder::new(
        timeouts,
        roots.clone(),
        origin_protocol,
        cfg.shields.clone(),
        shield_protocol,
        cfg.origin_fallback,
        role,
        origin,
        file_services,
    );
    // The TLS listeners' certificates: the node's own, and each service's by SNI.
    let mut certificate = None;
    let sni = match cfg.tls_listen {
        Some(_) => {
            let names = vec![
                "localhost".to_string(),
                "127.0.0.1".to_string(),
                cfg.name.clone(),
            ];
            let (certs, key) =
                server::certified_key(cfg.cert.as_deref(), cfg.key.as_deref(), &names)?;
            certificate = certs.first().map(|c| c.to_vec());
            Some(server::SniCerts::new(certs, key)?)
        }
        None => None,
    };
    site_builder.certs = sni.clone();
    let site_builder = Arc::new(site_builder);
    let mut engine_cfg = engine_config(role, cfg);
    // Client connections must not use up the descriptors upstream connections need.
    let nofile = tiercel_cluster::conn::raise_fd_limit();
    let budget = fd_budget(nofile, cfg.limits.max_connections, engine_cfg.max_fills);
    if budget.clients < cfg.limits.max_connections || budget.upstream < engine_cfg.max_fills {
        tracing::warn!(
            ?nofile,
            max_connections = budget.clients,
            max_fills = budget.upstream,
            "limits lowered to fit the open-file limit"
        );
    }
    engine_cfg.max_fills = budget.upstream;
    let storage = Storage::open(StorageOptions {
        memory_bytes: cfg.memory_cache.as_usize(),
        disk: cfg
            .disk_cache
            .clone()
            .map(|d| (d, cfg.disk_cache_size.as_usize())),
        max_chunk_bytes: engine_cfg.chunk_size,
    })
    .await?;
    let engine = Engine::new(engine_cfg, storage, upstream, purges);
    site_builder.apply(&engine, &[]);
    if let Some(hooks) = hooks {
        hooks.attach(&engine, site_builder.clone());
    }
    let opts = ServerOptions {
        max_request_head: cfg.limits.max_request_head.as_usize(),
        max_headers: cfg.limits.max_headers,
        header_timeout: cfg.timeouts.client_header,
        idle_timeout: cfg.timeouts.client_idle,
        max_connections: budget.clients,
        max_connections_per_ip: cfg.limits.max_connections_per_ip,
        // Validated with the configuration: every entry parses.
        trusted_forwarders: Arc::new(
            cfg.trusted_forwarders
                .iter()
                .filter_map(|r| r.parse().ok())
                .collect(),
        ),
        shutdown_grace: cfg.timeouts.shutdown_grace,
        alt_svc: None,
    };
    let shutdown = CancellationToken::new();
    let mut tasks = JoinSet::new();
    let ready = Arc::new(Readiness::default());
    let conns = Arc::new(server::ConnectionStats::default());
    // One limit across every client listener: the node's, not each port's.
    let limiter = ConnLimiter::new(opts.max_connections, opts.max_connections_per_ip);
    if role == Role::Shield
        && let Some(addr) = cfg.listen.or(cfg.tls_listen)
        && !addr.ip().is_loopback()
        && cfg
            .trusted_forwarders
            .iter()
            .all(|r| r.starts_with("127.") || r.starts_with("::1"))
    {
        // Edges on other hosts would have their scheme ignored: https objects keyed as http.
        tracing::warn!(
            listen = %addr,
            "this shield listens beyond loopback but trusts X-Forwarded-Proto only from \
             loopback: list the edges' addresses in trusted_forwarders"
        );
    }

    let bind = |addr: SocketAddr| async move {
        server::bind(addr)
            .await
            .map_err(|source| NodeError::Bind { addr, source })
    };
    let mut listen = None;
    if let Some(addr) = cfg.listen {
        let l = bind(addr).await?;
        listen = l.local_addr().ok();
        tasks.spawn(server::serve(
            l,
            None,
            engine.clone(),
            opts.clone(),
            limiter.clone(),
            conns.clone(),
            shutdown.clone(),
        ));
    }
    let mut tls_listen = None;
    let mut quic_listen = None;
    if let (Some(addr), Some(sni)) = (cfg.tls_listen, sni) {
        let tls = server::server_config(sni.clone(), &server::TCP_ALPN)?;
        let l = bind(addr).await?;
        tls_listen = l.local_addr().ok();
        // HTTP/3 on the same port over UDP (the port the TCP listener got, when it was 0).
        let mut tls_opts = opts.clone();
        if cfg.quic.enabled
            && let Some(tcp) = tls_listen
        {
            let quic_opts = quic_options(cfg);
            let endpoint = server::quic_endpoint(tcp, sni, &quic_opts)?;
            quic_listen = endpoint.local_addr().ok();
            let max_age = cfg.quic.alt_svc_max_age.as_secs();
            if max_age > 0 {
                tls_opts.alt_svc =
                    http::HeaderValue::try_from(format!("h3=\":{}\"; ma={max_age}", tcp.port()))
                        .ok();
            }
            tasks.spawn(server::serve_h3(
                endpoint,
                engine.clone(),
                quic_opts,
                limiter.clone(),
                conns.clone(),
                shutdown.clone(),
            ));
        }
        tasks.spawn(server::serve(
            l,
            Some(TlsAcceptor::from(tls)),
            engine.clone(),
            tls_opts,
            limiter.clone(),
            conns.clone(),
            shutdown.clone(),
        ));
    }
    let mut admin_listen = None;
    if let Some(addr) = cfg.admin_listen {
        let l = bind(addr).await?;
        admin_listen = l.local_addr().ok();
        tasks.spawn(server::serve_admin(
            l,
            engine.clone(),
            conns.clone(),
            ready.clone(),
            cfg.timeouts.client_header,
            shutdown.clone(),
        ));
    }
    ready.set(true);
    tracing::info!(?listen, ?tls_listen, ?admin_listen, upstream = %upstream_name, name = %cfg.name, "node started");
    Ok(RunningNode {
        listen,
        tls_listen,
        quic_listen,
        admin_listen,
        engine,
        certificate,
        follower: None,
        purge_state: None,
        connections: conns,
        sites: site_builder,
        shutdown,
        tasks,
    })
}
