//! Start-up and shutdown of one purge-service member.
//!
//! ```text
//! bind --listen [, --raft-listen] ─▶ TLS (--cert/--key, reloaded on SIGHUP)
//!      ─▶ open redb ─▶ load snapshot ─▶ openraft (re-applies committed log)
//!      ─▶ serve HTTP ─▶ --bootstrap: initialise membership (first start only)
//!      ─▶ background: import TIERCEL_ADMIN_TOKEN / --token-file through the leader
//! ```

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Method;
use http_body_util::Full;
use openraft::BasicNode;
use openraft::error::{InitializeError, RaftError};
use parking_lot::Mutex;
use tiercel_cluster::conn::ConnectionStats;
use tiercel_cluster::purge::wire::TokenScope;
use tiercel_cluster::tls::{ReloadingCert, TlsError};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::api::Listener;
use crate::api::raft_rpc::ImportResult;
use crate::api::server::serve;
use crate::api::tokens::import_record;
use crate::app::{ApiSettings, App, LeaderView};
use crate::batcher::Batcher;
use crate::client::HttpClient;
use crate::config::NodeConfig;
use crate::member_auth::MemberKey;
use crate::raft::network::Network;
use crate::ratelimit::RateLimiter;
use crate::reports::Reports;
use crate::store::{self, LogStore, StateMachineStore, StoreError};
use crate::streams::StreamSlots;
use crate::types::{Command, CommandResponse, NodeId, Raft, TokenCondition};
use crate::usage::Usage;

/// Why a node could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// The data directory could not be opened.
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    /// openraft refused the configuration or failed to start.
    #[error("raft: {0}")]
    Raft(String),
    /// The configuration does not fit the stored state.
    #[error("{0}")]
    Config(String),
    /// The certificate, key or CA file is unusable.
    #[error("{0}")]
    Tls(#[from] TlsError),
}

/// A running member.
pub struct Node {
    /// Shared context (for embedding and tests).
    pub app: Arc<App>,
    servers: Vec<tokio::task::JoinHandle<()>>,
    importer: Option<tokio::task::JoinHandle<()>>,
    shutdown: CancellationToken,
}

async fn bind(addr: std::net::SocketAddr) -> Result<TcpListener, NodeError> {
    tiercel_cluster::conn::bind(addr)
        .await
        .map_err(|source| NodeError::Listen {
            addr: addr.to_string(),
            source,
        })
}

/// ALPN protocols of both listeners.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// The server side of TLS (reloaded on SIGHUP) and the client side towards other members.
fn tls(cfg: &NodeConfig) -> Result<(Option<TlsAcceptor>, Option<rustls::ClientConfig>), TlsError> {
    if cfg.raft_listen.is_none()
        && !cfg.peers.is_empty()
        && tiercel_cluster::tls::exposed(&cfg.listen)
    {
        tracing::warn!(
            "--listen {} serves the API and member traffic on one port beyond this machine: \
             clients share the connection cap with members; put members on --raft-listen",
            cfg.listen
        );
    }
    let Some(files) = &cfg.tls else {
        for (flag, addr) in [
            ("--listen", Some(cfg.listen)),
            ("--raft-listen", cfg.raft_listen),
        ] {
            if let Some(addr) = addr.filter(tiercel_cluster::tls::exposed) {
                tracing::warn!(
                    "{flag} {addr} serves plain HTTP beyond this machine: tokens and the \
                     cluster secret cross the network in clear text; give --cert and --key"
                );
            }
        }
        return Ok((None, None));
    };
    let cert = ReloadingCert::load(&files.cert, &files.key)?;
    cert.reload_on_sighup();
    let server = tiercel_cluster::tls::server_config(cert, &ALPN)?;
    let client = tiercel_cluster::tls::client_config(cfg.ca_file.as_deref())?;
    Ok((Some(TlsAcceptor::from(server)), Some(client)))
}

impl Node {
    /// Starts a member: binds, opens storage, starts Raft and the API, bootstraps if asked.
    pub async fn start(cfg: NodeConfig) -> Result<Node, NodeError> {
        let (acceptor, client_tls) = tls(&cfg)?;
        let listener = bind(cfg.listen).await?;
        let member_listener = match cfg.raft_listen {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        let db = store::open(&cfg.data_dir)?;
        let log = LogStore::new(db.clone())?;
        let sm = StateMachineStore::open(db, cfg.log_cache_entries).await?;
        let state = sm.reader();
        let member_key = cfg
            .cluster_secret
            .as_ref()
            .map(|s| MemberKey::new(s.expose()));
        let client = HttpClient::new(client_tls, member_key.clone(), cfg.id)?;
        let network = Network::new(client.clone());
        let raft_cfg =
            crate::raft::config(cfg.tuning).map_err(|e| NodeError::Raft(e.to_string()))?;
        let raft = Raft::new(cfg.id, Arc::new(raft_cfg), network, log.clone(), sm)
            .await
            .map_err(|e| NodeError::Raft(e.to_string()))?;
        // A member that joined through `POST /v1/cluster/members` has no --peer, but its
        // stored membership says it is not alone: without a secret it could neither be reached
        // nor reach anyone.
        let members = raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .nodes()
            .count();
        if members > 1 && cfg.cluster_secret.is_none() {
            let _ = raft.shutdown().await;
            return Err(NodeError::Config(format!(
                "TIERCEL_CLUSTER_SECRET: required, this member's data names {members} members"
            )));
        }
        let batcher = Batcher::start(raft.clone(), cfg.write_timeout);
        let app = Arc::new(App {
            id: cfg.id,
            raft: raft.clone(),
            state,
            log,
            client,
            batcher,
            reports: Mutex::new(Reports::new(
                cfg.live_window,
                cfg.limits.max_followers_per_token,
            )),
            limiter: Mutex::new(RateLimiter::new(cfg.rate.0, cfg.rate.1)),
            follow_limiter: Mutex::new(RateLimiter::new(
                cfg.limits.follow_rate,
                cfg.limits.follow_rate * 2.0,
            )),
            usage: Usage::default(),
            streams: StreamSlots::new(
                cfg.limits.max_log_streams,
                cfg.limits.max_log_streams_per_token,
            ),
            write_lock: tokio::sync::Mutex::new(()),
            idempotency_locks: Mutex::new(HashMap::new()),
            settings: ApiSettings {
                leader_wait: cfg.leader_wait,
                write_timeout: cfg.write_timeout,
                body_timeout: cfg.body_timeout,
                member_key,
                peers: cfg.peers.clone(),
                quorum_fresh: Duration::from_millis(cfg.tuning.election_timeout_ms * 2),
                log_write_timeout: cfg.limits.log_write_timeout,
            },
        });
        let shutdown = CancellationToken::new();
        let stats = Arc::new(ConnectionStats::default());
        let api_kind = if member_listener.is_some() {
            Listener::Api
        } else {
            Listener::Shared
        };
        let mut servers = vec![tokio::spawn(serve(
            listener,
            acceptor.clone(),
            app.clone(),
            api_kind,
            cfg.limits.clone(),
            stats.clone(),
            shutdown.clone(),
        ))];
        if let Some(l) = member_listener {
            servers.push(tokio::spawn(serve(
                l,
                acceptor,
                app.clone(),
                Listener::Member,
                cfg.limits.clone(),
                stats,
                shutdown.clone(),
            )));
        }
        servers.push(tokio::spawn(crate::reports::sweep(
            app.clone(),
            shutdown.clone(),
        )));
        if cfg.bootstrap {
            bootstrap(&raft, &cfg).await?;
        }
        let imports = imports(&cfg);
        let importer = (!imports.is_empty()).then(|| {
            let app = app.clone();
            tokio::spawn(async move { run_imports(app, imports).await })
        });
        tracing::info!(
            id = cfg.id,
            listen = %cfg.listen,
            raft_listen = ?cfg.raft_listen,
            tls = cfg.tls.is_some(),
            "purge-service member started"
        );
        Ok(Node {
            app,
            servers,
            importer,
            shutdown,
        })
    }

    /// Runs until `shutdown` resolves, then stops Raft and the listener.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) {
        shutdown.await;
        tracing::info!("shutting down");
        if let Some(i) = &self.importer {
            i.abort();
        }
        if let Err(e) = self.app.raft.shutdown().await {
            tracing::warn!(error = %e, "raft shutdown");
        }
        self.shutdown.cancel();
        for s in &self.servers {
            s.abort();
        }
    }
}

async fn bootstrap(raft: &Raft, cfg: &NodeConfig) -> Result<(), NodeError> {
    let initialized = raft
        .is_initialized()
        .await
        .map_err(|e| NodeError::Raft(e.to_string()))?;
    if initialized {
        tracing::info!("already initialised; --bootstrap ignored");
        return Ok(());
    }
    let mut members: BTreeMap<NodeId, BasicNode> = cfg
        .peers
        .iter()
        .map(|(id, addr)| (*id, BasicNode::new(addr)))
        .collect();
    members.insert(cfg.id, BasicNode::new(&cfg.advertise));
    match raft.initialize(members).await {
        Ok(()) => {
            tracing::info!("cluster initialised");
            Ok(())
        }
        Err(RaftError::APIError(InitializeError::NotAllowed(_))) => Ok(()),
        Err(e) => Err(NodeError::Raft(e.to_string())),
    }
}

fn imports(cfg: &NodeConfig) -> Vec<Command> {
    let mut out = Vec::new();
    if let Some(secret) = &cfg.admin_token {
        out.push(Command::TokenCreate {
            token: import_record("bootstrap-admin", TokenScope::Admin, secret.expose()),
            unless: TokenCondition::AdminExists,
        });
    }
    for t in &cfg.file_tokens {
        out.push(Command::TokenCreate {
            token: t.clone(),
            unless: TokenCondition::SameHashExists,
        });
    }
    out
}

/// Proposes each import through whoever leads, retrying until it is decided.
async fn run_imports(app: Arc<App>, imports: Vec<Command>) {
    for cmd in imports {
        let mut backoff = Duration::from_millis(100);
        loop {
            match import_once(&app, &cmd).await {
                Ok(added) => {
                    if let Command::TokenCreate { token, .. } = &cmd {
                        tracing::info!(name = %token.name, added, "token import decided");
                    }
                    break;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "token import not done yet");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }
}

async fn import_once(app: &App, cmd: &Command) -> Result<bool, String> {
    match app.wait_leader().await {
        LeaderView::Me => match app.write(cmd.clone()).await {
            Ok((_, CommandResponse::Token { added })) => Ok(added),
            Ok((_, other)) => Err(format!("unexpected result {other:?}")),
            Err(e) => Err(e.to_string()),
        },
        LeaderView::Other { addr, id } => {
            let body = serde_json::to_vec(cmd).map_err(|e| e.to_string())?;
            let req = app
                .client
                .builder(&addr, id, Method::POST, "/raft/import")
                .map_err(|e| e.to_string())?
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(Full::new(Bytes::from(body)))
                .map_err(|e| e.to_string())?;
            let resp = app
                .client
                .send(&addr, req, app.settings.write_timeout)
                .await
                .map_err(|e| e.to_string())?;
            if !resp.status().is_success() {
                return Err(format!("leader answered {}", resp.status()));
            }
            let result: ImportResult =
                serde_json::from_slice(resp.body()).map_err(|e| e.to_string())?;
            result
        }
        LeaderView::Unknown => Err("no leader yet".into()),
    }
}
