//! The engine's side of the purge follower: the follower's state answers the engine's purge
//! questions, and URL purges delete stored entries at once.

use std::sync::{Arc, OnceLock, Weak};

use tiercel_cluster::follower::{PurgeListener, PurgeState};
use tiercel_cluster::purge::wire::ServiceRecord;
use tiercel_cluster::purge::{ObjectRef, PurgeVerdict as RuleVerdict};
use tiercel_cluster::urlnorm::NormalizedUrl;

use super::Engine;
use super::purge::{PurgeOracle, PurgeProgress, PurgeVerdict};
use crate::sites::SiteBuilder;
use tiercel_cluster::service::from_json;

/// [`PurgeState`] as the engine's [`PurgeOracle`].
#[derive(Debug, Clone)]
pub struct FollowedPurges(pub Arc<PurgeState>);

impl PurgeOracle for FollowedPurges {
    fn applied_index(&self) -> u64 {
        self.0.applied_index()
    }

    fn verdict(&self, obj: &ObjectRef<'_>) -> PurgeVerdict {
        match self.0.check(obj) {
            RuleVerdict::Valid => PurgeVerdict::Valid,
            RuleVerdict::SoftPurged => PurgeVerdict::Soft,
            RuleVerdict::HardPurged => PurgeVerdict::Hard,
        }
    }

    fn lagging(&self) -> bool {
        self.0.lagging()
    }

    fn progress(&self) -> Option<PurgeProgress> {
        Some(PurgeProgress {
            applied_index: self.0.applied_index(),
            durable_index: self.0.durable_index(),
            rules: self.0.rule_count(),
            since_heard: self.0.since_heard(),
            lagging: self.0.lagging(),
        })
    }
}

/// Receives the follower's hooks; the engine is attached once it exists (the engine needs the
/// follower's state first, the follower needs somewhere to send URL purges).
#[derive(Default)]
pub struct EngineHooks {
    engine: OnceLock<(Weak<Engine>, Arc<SiteBuilder>)>,
    /// Services the log named before the engine existed (applied by `attach`).
    early: parking_lot::Mutex<Option<Vec<ServiceRecord>>>,
}

impl std::fmt::Debug for EngineHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineHooks")
            .field("attached", &self.engine.get().is_some())
            .finish()
    }
}

impl EngineHooks {
    /// Routes hooks to `engine` from now on, services built by `sites`; services the log
    /// delivered before now apply at once.
    pub fn attach(&self, engine: &Arc<Engine>, sites: Arc<SiteBuilder>) {
        let mut early = self.early.lock();
        let _ = self.engine.set((Arc::downgrade(engine), sites));
        if let Some(services) = early.take() {
            self.apply(&services);
        }
    }

    fn apply(&self, records: &[ServiceRecord]) {
        let Some((engine, sites)) = self.engine.get() else {
            return;
        };
        let Some(engine) = engine.upgrade() else {
            return;
        };
        let mut services = Vec::with_capacity(records.len());
        for r in records {
            // Checked by the purge-service when it was written; a node of another version may
            // still disagree: that service is left out, loudly, and the rest apply.
            match from_json(&r.name, &r.doc) {
                Ok(s) => services.push(Arc::new(s)),
                Err(e) => {
                    tracing::error!(service = %r.name, error = %e, "service from the purge log refused")
                }
            }
        }
        sites.apply(&engine, &services);
    }
}

impl PurgeListener for EngineHooks {
    fn url_purged(&self, url_purge_key: &str, soft: bool) {
        // Soft purges keep the entry (stale, revalidated before use); the rule index has it.
        if soft {
            return;
        }
        let Some(engine) = self.engine.get().and_then(|(e, _)| e.upgrade()) else {
            return;
        };
        let Some(split) = url_purge_key.find('/') else {
            return;
        };
        let url = NormalizedUrl {
            host: url_purge_key[..split].to_string(),
            path_and_query: url_purge_key[split..].to_string(),
        };
        engine.remove_url(&url);
    }

    fn services_changed(&self, services: &[ServiceRecord]) {
        {
            let mut early = self.early.lock();
            if self.engine.get().is_none() {
                *early = Some(services.to_vec());
                return;
            }
        }
        tracing::info!(
            services = services.len(),
            "services updated from the purge log"
        );
        self.apply(services);
    }
}
