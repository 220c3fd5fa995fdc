//! RFC 9111 shared-cache policy: pure functions, no IO, no clock.
//!
//! Every decision the caching engine takes about HTTP caching semantics is made here, over
//! values: `now` is always an argument, nothing reads a socket, a file or the clock, so every
//! rule is covered by table-driven tests. Standards followed: RFC 9111 (as a shared cache),
//! RFC 9213 targeted fields (CDN-Cache-Control; Surrogate-Control is treated as one and never
//! forwarded), RFC 5861 (stale-while-revalidate, stale-if-error), RFC 8246 (immutable).
//!
//! Where the engine calls in:
//!
//! ```text
//! upstream response ─▶ ensure_date ─▶ storability(req, resp) ─▶ Store(StorePlan) ─▶ store
//!                                      │                          policy, vary, strip_fields
//!                                      └▶ AgeClock::new(resp, request_time, response_time)
//! request ─▶ RequestDirectives::parse ─▶ variant_id(vary, req) ─▶ lookup
//!   hit ─▶ reuse(policy, clock, req, now, soft_purged) ─┬▶ Fresh / StaleAccepted ─▶ serve
//!                                                       ├▶ StaleWhileRevalidate ─▶ serve + background
//!                                                       └▶ Revalidate ─▶ conditional_request_headers
//!   304 ─▶ freshen(stored, 304) ─▶ Updated(headers) ─▶ storability again, new AgeClock
//!   error/5xx ─▶ stale_if_error_allows ─▶ serve stale or the error
//! unsafe method, 2xx/3xx ─▶ invalidated_uris ─▶ drop those entries
//! ```
//!
//! What it deliberately does not do: partial content (206 responses are never stored here),
//! request collapsing, key derivation, serving-time header edits (the engine strips
//! `no_cache_fields` and targeted fields when it serves).

pub mod age;
pub mod config;
pub mod directives;
pub mod freshness;
pub mod http_date;
pub mod invalidation;
pub mod reuse;
pub mod sf;
pub mod storable;
pub mod validation;
pub mod vary;

mod syntax;

#[cfg(test)]
mod testutil;

pub use age::{AgeClock, ensure_date};
pub use config::{CDN_CACHE_CONTROL, PolicyConfig, PolicyConfigError, SURROGATE_CONTROL};
pub use directives::{
    DirectiveSource, FieldScope, MaxStale, RequestDirectives, ResponseDirectives,
    effective_response_directives,
};
pub use freshness::{HEURISTICALLY_CACHEABLE, StoredPolicy, is_heuristically_cacheable};
pub use invalidation::{invalidated_uris, is_safe};
pub use reuse::{Reuse, RevalidateReason, reuse, stale_if_error_allows, ttl_seconds};
pub use storable::{
    NotStorable, Storability, StorePlan, is_understood_status, storability, strip_field_names,
};
pub use validation::{FreshenOutcome, conditional_request_headers, freshen, has_validator};
pub use vary::{NO_VARY_VARIANT, VariantId, VarySpec, variant_id, vary_spec};
