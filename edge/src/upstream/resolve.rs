//! Where an upstream's name leads: the system resolver, or addresses the operator pinned
//! (`origin_addresses`), so one origin name can stand for several servers without DNS.
//!
//! Pinned addresses are handed out rotated by one on every connect, so connections spread over
//! them, and hyper-util's connector tries the rest of the list in order when one refuses (the
//! connect timeout is divided between them), so a dead address costs a refused connect, not a
//! failed request.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use futures_util::future::BoxFuture;
use hyper_util::client::legacy::connect::dns::{GaiResolver, Name};
use tower_service::Service;

/// The resolver of an upstream's connector.
#[derive(Clone)]
pub enum UpstreamResolver {
    /// `getaddrinfo` on a blocking thread.
    System(GaiResolver),
    /// The same addresses whatever the name, rotated per connect.
    Pinned(Arc<Pinned>),
}

/// A fixed address list and the rotation's position.
pub struct Pinned {
    addrs: Vec<SocketAddr>,
    next: AtomicUsize,
}

impl UpstreamResolver {
    /// `addrs` when there are any, else the system's resolver.
    pub fn new(addrs: &[SocketAddr]) -> Self {
        if addrs.is_empty() {
            UpstreamResolver::System(GaiResolver::new())
        } else {
            UpstreamResolver::Pinned(Arc::new(Pinned {
                addrs: addrs.to_vec(),
                next: AtomicUsize::new(0),
            }))
        }
    }
}

impl Pinned {
    /// The list starting one further along than the previous call's.
    fn rotated(&self) -> Vec<SocketAddr> {
        let start = self.next.fetch_add(1, Ordering::Relaxed) % self.addrs.len();
        let mut out = Vec::with_capacity(self.addrs.len());
        out.extend_from_slice(&self.addrs[start..]);
        out.extend_from_slice(&self.addrs[..start]);
        out
    }
}

impl Service<Name> for UpstreamResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        match self {
            UpstreamResolver::System(gai) => {
                let lookup = gai.call(name);
                Box::pin(async move { Ok(lookup.await?.collect::<Vec<_>>().into_iter()) })
            }
            UpstreamResolver::Pinned(pinned) => {
                let addrs = pinned.rotated();
                Box::pin(async move { Ok(addrs.into_iter()) })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_addresses_rotate_and_every_call_has_them_all() {
        let a: Vec<SocketAddr> = ["127.0.0.1:1", "127.0.0.2:2", "[::1]:3"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let UpstreamResolver::Pinned(p) = UpstreamResolver::new(&a) else {
            panic!("pinned expected");
        };
        assert_eq!(p.rotated(), a);
        assert_eq!(p.rotated(), vec![a[1], a[2], a[0]]);
        assert_eq!(p.rotated(), vec![a[2], a[0], a[1]]);
        assert_eq!(p.rotated(), a);
    }

    #[test]
    fn no_addresses_means_the_system_resolver() {
        assert!(matches!(
            UpstreamResolver::new(&[]),
            UpstreamResolver::System(_)
        ));
    }
}
