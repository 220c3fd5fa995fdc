//! RFC 9111 shared-cache policy: pure functions, no IO, no clock.

pub mod age;
pub mod config;
pub mod directives;
pub mod freshness;
pub mod validation;
pub mod vary;

mod sf;
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
pub use validation::{FreshenOutcome, conditional_request_headers, freshen, has_validator};
pub use vary::{NO_VARY_VARIANT, VariantId, VarySpec, variant_id, vary_spec};
