//! Builds the engine's [`Sites`] from services: the node's `[[services]]` and those the
//! purge log carries (the log's win by name), each with its own upstream, and keeps the TLS
//! certificates served by SNI in step. A service whose definition did not change keeps its
//! site, so its pool's connections, health and rate-limit state survive other changes.
//!
//! ```text
//! file services ─┐                        ┌─▶ engine.set_sites (routing table, swapped)
//! log services ──┴─▶ merge ─▶ build/reuse ┴─▶ SniCerts::set     (certificates, swapped)
//! ```

use std::collections::HashMap;
use std::sync::Arc;

use tiercel_cluster::config::Role;
use tiercel_cluster::service::{HostPattern, RoutingTable, Service, ServiceError};

use crate::engine::{Engine, Site, Sites};
use crate::server::SniCerts;
use crate::upstream::{
    OriginPool, OriginUpstream, OriginUrlError, PoolMember, Reach, ShieldUpstream, Upstream,
    UpstreamTimeouts, WireProtocol,
};

/// What every service's upstream is built with: the node's settings.
pub struct SiteBuilder {
    /// Connect, first-byte and idle timeouts.
    pub timeouts: UpstreamTimeouts,
    /// CA certificates for https origins and shields (`origin_ca_file`).
    pub roots: Option<Vec<rustls::pki_types::CertificateDer<'static>>>,
    /// How origins are spoken to (`origin_protocol`).
    pub origin_protocol: WireProtocol,
    /// The node's shields (a service without `shields` uses them).
    pub shields: Vec<String>,
    /// How shields are spoken to.
    pub shield_protocol: WireProtocol,
    /// Whether an edge may go to the origin when no shield answers.
    pub origin_fallback: bool,
    /// Edge or shield (a shield never sends to shields).
    pub role: Role,
    /// The node's `--origin`, for services that name no origins.
    pub default_origin: Option<Arc<OriginUpstream>>,
    /// The node's own `[[services]]`.
    pub file: Vec<Arc<Service>>,
    /// Certificates served by SNI, when the node has a TLS listener.
    pub certs: Option<Arc<SniCerts>>,
    built: parking_lot::Mutex<HashMap<String, Arc<Site>>>,
    /// One client (connection pool) per origin URL, shared by every service that names it.
    clients: parking_lot::Mutex<HashMap<String, Arc<OriginUpstream>>>,
}

impl SiteBuilder {
    /// A builder with nothing built yet.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        timeouts: UpstreamTimeouts,
        roots: Option<Vec<rustls::pki_types::CertificateDer<'static>>>,
        origin_protocol: WireProtocol,
        shields: Vec<String>,
        shield_protocol: WireProtocol,
        origin_fallback: bool,
        role: Role,
        default_origin: Option<Arc<OriginUpstream>>,
        file: Vec<Arc<Service>>,
    ) -> Self {
        SiteBuilder {
            timeouts,
            roots,
            origin_protocol,
            shields,
            shield_protocol,
            origin_fallback,
            role,
            default_origin,
            file,
            certs: None,
            built: parking_lot::Mutex::new(HashMap::new()),
            clients: parking_lot::Mutex::new(HashMap::new()),
        }
    }

    /// Routes `engine` by the node's services plus `from_log`, and serves their certificates.
    /// A service that cannot be built (its host taken by another, no origin to use) is left
    /// out with an error in the log; the others apply.
    pub fn apply(&self, engine: &Engine, from_log: &[Arc<Service>]) {
        let mut merged: Vec<Arc<Service>> = self
            .file
            .iter()
            .filter(|f| !from_log.iter().any(|l| l.name == f.name))
            .cloned()
            .collect();
        merged.extend(from_log.iter().cloned());
        // A service claiming a host an earlier one holds is left out (one pass: the owners of
        // every pattern so far).
        let mut accepted: Vec<Arc<Service>> = Vec::with_capacity(merged.len());
        let mut owners: HashMap<&HostPattern, &str> = HashMap::new();
        let reserved = engine.config().service.as_str();
        for service in &merged {
            if service.name == reserved {
                // Its keys and purges would be the node's default site's.
                tracing::error!(service = %service.name, "service left out: the name is the node's own `service`");
                continue;
            }
            let taken = service.hosts.iter().find_map(|h| {
                owners
                    .get(h)
                    .filter(|o| **o != service.name)
                    .map(|o| (h, *o))
            });
            if let Some((host, owner)) = taken {
                tracing::error!(service = %service.name, ?host, %owner, "service left out: its host belongs to another");
                continue;
            }
            for h in &service.hosts {
                owners.insert(h, &service.name);
            }
            accepted.push(service.clone());
        }
        let mut built = self.built.lock();
        let mut sites = Vec::with_capacity(accepted.len());
        let mut next = HashMap::with_capacity(accepted.len());
        for service in accepted.iter().cloned() {
            let reused = built
                .get(&service.name)
                .filter(|s| {
                    s.service
                        .as_ref()
                        .is_some_and(|old| old.spec == service.spec)
                })
                .cloned();
            let site = match reused {
                Some(site) => site,
                None => match self.site(service.clone(), &engine.config().policy) {
                    Ok(site) => site,
                    Err(e) => {
                        tracing::error!(service = %service.name, error = %e, "service left out");
                        continue;
                    }
                },
            };
            next.insert(service.name.clone(), site.clone());
            sites.push(site);
        }
        *built = next;
        // Clients of origins no service names any more go (their pools close once the last
        // request using them ends).
        let used: std::collections::HashSet<&str> = accepted
            .iter()
            .flat_map(|s| s.origins.iter().map(|o| o.url.as_str()))
            .collect();
        self.clients
            .lock()
            .retain(|url, _| used.contains(url.as_str()));
        if let Some(certs) = &self.certs {
            let entries = sites.iter().filter_map(|s| {
                let svc = s.service.as_ref()?;
                Some((svc.as_ref(), svc.tls.clone()?))
            });
            match RoutingTable::build(entries) {
                Ok(table) => certs.set(table),
                Err(conflict) => tracing::error!(%conflict, "certificates not updated"),
            }
        }
        let default = engine.sites().default.clone();
        tracing::info!(services = sites.len(), "sites updated");
        engine.set_sites(Sites::new(sites, default));
    }

    /// Builds a service's site: its origin pool (or the node's origin), behind the shields
    /// when it has any.
    pub fn site(
        &self,
        service: Arc<Service>,
        policy: &crate::policy::PolicyConfig,
    ) -> Result<Arc<Site>, ServiceError> {
        let origin: Option<Arc<dyn Upstream>> = if service.origins.is_empty() {
            self.default_origin.clone().map(|o| o as Arc<dyn Upstream>)
        } else {
            let mut members = Vec::with_capacity(service.origins.len());
            for (i, o) in service.origins.iter().enumerate() {
                let client = self
                    .client(&o.url)
                    .map_err(|e| url_error(format!("origins[{i}]"), &e))?;
                members.push((o.url.clone(), PoolMember::new(client, o.weight)));
            }
            Some(OriginPool::new(
                members,
                service.balance,
                service.health_check.clone(),
                self.timeouts.idle,
            ))
        };
        let shields = match self.role {
            Role::Shield => &[][..],
            Role::Edge => service.shields.as_deref().unwrap_or(&self.shields),
        };
        let upstream: Arc<dyn Upstream> = if shields.is_empty() {
            origin.ok_or_else(|| ServiceError {
                key: "origins".to_owned(),
                reason: "none given and the node has no --origin".to_owned(),
            })?
        } else {
            let fallback = origin.filter(|_| self.origin_fallback);
            ShieldUpstream::new(
                shields,
                self.shield_protocol,
                fallback,
                self.timeouts,
                self.roots.as_deref(),
            )
            .map_err(|e| url_error("shields".to_owned(), &e))?
        };
        Ok(Arc::new(Site::for_service(service, upstream, policy)))
    }
}

impl SiteBuilder {
    /// The shared client of an origin URL.
    fn client(&self, url: &str) -> Result<Arc<OriginUpstream>, OriginUrlError> {
        if let Some(c) = self.clients.lock().get(url) {
            return Ok(c.clone());
        }
        let client = OriginUpstream::connect(
            url,
            self.timeouts,
            Reach {
                protocol: self.origin_protocol,
                roots: self.roots.as_deref(),
                addresses: &[],
            },
        )?;
        self.clients.lock().insert(url.to_owned(), client.clone());
        Ok(client)
    }
}

fn url_error(key: String, e: &OriginUrlError) -> ServiceError {
    ServiceError {
        key,
        reason: e.to_string(),
    }
}
