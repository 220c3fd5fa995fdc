//! The properties Tiercel's parsers of network input must keep, one function per fuzz target.
//!
//! Each `check` takes arbitrary bytes, feeds them to a parser the way the running node would
//! (header lines, a request head, a log line, a JSON body, a config file) and panics when a
//! property fails: not only "no panic", but what the parser's result must satisfy (a canonical
//! target is a fixed point, a range lies inside the representation, a purge the service accepts
//! expands into exactly one rule per item on every follower...).
//!
//! Two drivers run them: `fuzz/libfuzzer` (cargo-fuzz, nightly, coverage-guided; CI runs each
//! target for a bounded time) and this crate's tests (proptest on stable, plus every file of
//! the seed corpus in `fuzz/corpus/<target>/`), so a stable-only machine checks the same
//! properties.

pub mod cache_control;
pub mod conditionals;
pub mod config_file;
pub mod http_date;
mod input;
pub mod origin_response;
pub mod purge_api;
pub mod purge_wire;
pub mod range;
pub mod request_head;
pub mod request_target;
pub mod storage_entry;
pub mod structured_fields;

/// A property check: panics when `data` breaks the property.
pub type Check = fn(&[u8]);

/// Every target: its name (the fuzz target's and the corpus folder's) and its check.
pub const TARGETS: &[(&str, Check)] = &[
    ("cache_control", cache_control::check),
    ("conditionals", conditionals::check),
    ("config_file", config_file::check),
    ("http_date", http_date::check),
    ("origin_response", origin_response::check),
    ("purge_api", purge_api::check),
    ("purge_wire", purge_wire::check),
    ("range", range::check),
    ("request_head", request_head::check),
    ("request_target", request_target::check),
    ("storage_entry", storage_entry::check),
    ("structured_fields", structured_fields::check),
];
