//! Host → service, compiled once per change and read without locks: exact names in one hash
//! map, `*.suffix` patterns in another, looked up by trying the host's suffixes from the
//! longest (`a.b.example.com`, then `b.example.com`, then `example.com`). A lookup costs one
//! probe per label, however many services there are.

use std::collections::HashMap;
use std::sync::Arc;

use super::model::{HostPattern, Service};

/// A routing table over values of type `T` (a node's compiled site, or just a name).
#[derive(Debug)]
pub struct RoutingTable<T> {
    exact: HashMap<String, T>,
    suffix: HashMap<String, T>,
}

impl<T> Default for RoutingTable<T> {
    fn default() -> Self {
        RoutingTable {
            exact: HashMap::new(),
            suffix: HashMap::new(),
        }
    }
}

/// Two services that claim the same host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("host {host:?} belongs to both {first:?} and {second:?}")]
pub struct HostConflict {
    /// The host (`*.example.com` for a wildcard).
    pub host: String,
    /// The service that has it.
    pub first: String,
    /// The one that also asks for it.
    pub second: String,
}

impl<T: Clone> RoutingTable<T> {
    /// Builds the table from services and the value each routes to. A host claimed twice is
    /// an error naming both services.
    pub fn build<'a>(
        entries: impl IntoIterator<Item = (&'a Service, T)>,
    ) -> Result<Self, HostConflict> {
        let mut table = RoutingTable::default();
        let mut owner: HashMap<HostPattern, String> = HashMap::new();
        for (service, value) in entries {
            for pattern in &service.hosts {
                if let Some(first) = owner.get(pattern) {
                    if *first == service.name {
                        continue;
                    }
                    return Err(HostConflict {
                        host: match pattern {
                            HostPattern::Exact(h) => h.clone(),
                            HostPattern::Suffix(s) => format!("*.{s}"),
                        },
                        first: first.clone(),
                        second: service.name.clone(),
                    });
                }
                owner.insert(pattern.clone(), service.name.clone());
                match pattern {
                    HostPattern::Exact(h) => table.exact.insert(h.clone(), value.clone()),
                    HostPattern::Suffix(s) => table.suffix.insert(s.clone(), value.clone()),
                };
            }
        }
        Ok(table)
    }
}

impl<T> RoutingTable<T> {
    /// The value for `host` (normalised: lowercase, no port, no trailing dot): an exact
    /// name first, then the longest `*.suffix` strictly above it.
    pub fn route(&self, host: &str) -> Option<&T> {
        if let Some(v) = self.exact.get(host) {
            return Some(v);
        }
        if self.suffix.is_empty() {
            return None;
        }
        let mut rest = host;
        while let Some((_, parent)) = rest.split_once('.') {
            if let Some(v) = self.suffix.get(parent) {
                return Some(v);
            }
            rest = parent;
        }
        None
    }

    /// Hosts and patterns in the table.
    pub fn len(&self) -> usize {
        self.exact.len() + self.suffix.len()
    }

    /// Whether no host routes anywhere.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Checks that no two of `services` claim the same host (the purge-service runs it before a
/// PUT; a node runs it on what it loads).
pub fn check_hosts(services: &[Arc<Service>]) -> Result<(), HostConflict> {
    RoutingTable::build(services.iter().map(|s| (s.as_ref(), ()))).map(|_| ())
}
