//! RFC 9111 shared-cache policy: pure functions, no IO, no clock.

pub mod age;
pub mod config;
pub mod directives;

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
