//! The engine's side of the purge follower: the follower's state answers the engine's purge
//! questions, and URL purges delete stored entries at once.

use std::sync::{Arc, OnceLock, Weak};

use tiercel_cluster::follower::{PurgeListener, PurgeState};
use tiercel_cluster::purge::wire::ServiceRecord;
use tiercel_cluster::purge::{ObjectRef, PurgeVerdict as RuleVerdict};
use tiercel_cluster::urlnorm::NormalizedUrl;

use super::Engine;
use super::purge::{PurgeOracle, PurgeProgress, PurgeVerdict};

/// [`PurgeState`] as the engine's [`PurgeOracle`].
#[derive(Debug, Clone)]
pub struct FollowedPurges(pub Arc<PurgeState>);

impl PurgeOracle for FollowedPurges {
    fn applied_index(&self) -> u64 {
        self.0.applied_index()
    }

    fn verdict(&self, url: &str, host: &str, tags: &[String], stored_index: u64) -> PurgeVerdict {
        match self.0.check(&ObjectRef {
            url,
            host,
            tags,
            stored_index,
        }) {
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
#[derive(Debug, Default)]
pub struct EngineHooks {
    engine: OnceLock<Weak<Engine>>,
}

impl EngineHooks {
    /// Routes hooks to `engine` from now on.
    pub fn attach(&self, engine: &Arc<Engine>) {
        let _ = self.engine.set(Arc::downgrade(engine));
    }
}

impl PurgeListener for EngineHooks {
    fn url_purged(&self, url_purge_key: &str, soft: bool) {
        // Soft purges keep the entry (stale, revalidated before use); the rule index has it.
        if soft {
            return;
        }
        let Some(engine) = self.engine.get().and_then(Weak::upgrade) else {
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
        // Routing by service is its own issue; until then services are only acknowledged.
        tracing::info!(
            services = services.len(),
            "services updated from the purge log"
        );
    }
}
