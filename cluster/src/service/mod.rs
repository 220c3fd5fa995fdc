//! Services: many sites on one cluster (DESIGN.md §8). The document ([`spec`]) is the same in
//! a node's TOML file and in the purge-service's API; [`compile()`] checks it, by the same code
//! on both paths, into a [`Service`]; [`routing`] maps a request's host to one.

pub mod compile;
pub mod load;
pub mod model;
pub mod routing;
pub mod spec;

pub use compile::{ServiceError, check_name, compile, parse_spec};
pub use load::{from_json, from_tables};
pub use model::{
    Access, Balance, Compress, Encoding, HeaderRules, HealthCheck, HostPattern, KeyConfig, Origin,
    QueryKey, RateLimit, Service, Ttl,
};
pub use routing::{HostConflict, RoutingTable, check_hosts};
pub use spec::ServiceSpec;

#[cfg(test)]
mod tests;
