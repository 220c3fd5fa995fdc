//! The engine's settings, derived from node configuration by the binaries.

use std::time::Duration;

use super::admission::StoreCaps;
use crate::key::KeyRules;
use crate::policy::PolicyConfig;
use crate::protocol::HeadLimits;

/// Everything the engine needs to know that is not per request.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// This cache's name in `Cache-Status` and `Via` (`tiercel-edge`, or `--name`).
    pub name: String,
    /// The CDN's token in `CDN-Loop` (RFC 8586); the same on every node of the CDN.
    pub cdn_loop_token: String,
    /// A request that already passed through the CDN this many times is a loop (508).
    pub max_loop_hops: usize,
    /// Service name mixed into every cache key (one service until routing exists).
    pub service: String,
    /// Cache-key rules.
    pub key_rules: KeyRules,
    /// RFC 9111 tunables.
    pub policy: PolicyConfig,
    /// Bytes per stored body chunk.
    pub chunk_size: usize,
    /// A cold whole GET first asks for this many bytes by range (whole chunks, at least one);
    /// a larger object is completed chunk by chunk as clients read it. 0: whole objects in
    /// one request.
    pub slice_threshold: u64,
    /// Bodies up to this size are stored inside the metadata entry.
    pub inline_max: usize,
    /// Completed chunks a fill keeps in memory for readers close behind the writer.
    pub window_chunks: usize,
    /// How long a key whose response was not shareable skips coalescing.
    pub hit_for_miss_ttl: Duration,
    /// Largest object stored (0: no limit); larger responses are streamed, not stored.
    pub max_object_size: u64,
    /// Fills in flight on the node at once.
    pub max_fills: usize,
    /// Fills one client connection may have in flight (see [`Engine::connection_fill_slots`]).
    ///
    /// [`Engine::connection_fill_slots`]: super::Engine::connection_fill_slots
    pub max_fills_per_connection: usize,
    /// How long a request waits for a fill (or pass) slot before 503.
    pub fill_queue: Duration,
    /// A pass-through request body must start, and each later piece arrive, within this.
    pub client_body: Duration,
    /// A fill nobody reads stops once it has received more than this.
    pub abandoned_fill_max: u64,
    /// Request heads larger than this (fields, bytes) are refused with 431 on every front end.
    pub head_limits: HeadLimits,
    /// Caps on what one response may add besides its body (tags, Vary width, variants).
    pub store_caps: StoreCaps,
    /// Remove `Surrogate-Key` and `Cache-Tag` from responses to clients.
    pub strip_surrogate_headers: bool,
    /// Keep CDN-Cache-Control / Surrogate-Control in responses (for a tier that feeds another
    /// cache of the same CDN); the edge removes them (RFC 9213 §2.1 allows either).
    pub forward_targeted_fields: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            name: "tiercel-edge".into(),
            cdn_loop_token: "tiercel".into(),
            max_loop_hops: 3,
            service: "default".into(),
            key_rules: KeyRules::default(),
            policy: PolicyConfig::default(),
            chunk_size: 1024 * 1024,
            slice_threshold: 8 * 1024 * 1024,
            inline_max: 64 * 1024,
            window_chunks: 4,
            hit_for_miss_ttl: Duration::from_secs(30),
            max_object_size: 0,
            max_fills: 4096,
            max_fills_per_connection: 64,
            fill_queue: Duration::from_secs(1),
            client_body: Duration::from_secs(10),
            abandoned_fill_max: 8 * 1024 * 1024,
            head_limits: HeadLimits {
                max_fields: 100,
                max_bytes: 64 * 1024,
            },
            store_caps: StoreCaps::default(),
            strip_surrogate_headers: true,
            forward_targeted_fields: false,
        }
    }
}
