//! File descriptors: the process takes all it may, and splits them so that client connections
//! can never use up what upstream connections, the admin listener and the disk tier need.

/// Descriptors kept for everything but client and upstream connections: listeners, the admin
/// listener's connections, the disk tier's files, the purge follower, logs.
pub const FD_RESERVE: usize = 128;

/// Raises the soft limit of open files to the hard limit, so the connection caps, not the
/// default 1024 descriptors, bound what a node serves. Returns the soft limit in force
/// afterwards (`None` when it cannot be read). Failure to raise is logged and harmless.
pub fn raise_fd_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        use nix::sys::resource::{Resource, getrlimit, setrlimit};
        match getrlimit(Resource::RLIMIT_NOFILE) {
            Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard)
            {
                Ok(()) => Some(hard),
                Err(e) => {
                    tracing::warn!(error = %e, soft, hard, "cannot raise the open-file limit");
                    Some(soft)
                }
            },
            Ok((soft, _)) => Some(soft),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the open-file limit");
                None
            }
        }
    }
    #[cfg(not(unix))]
    None
}

/// How many client connections and upstream exchanges a node may hold at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdBudget {
    /// Client connections (`limits.max_connections`, perhaps lowered).
    pub clients: usize,
    /// Upstream exchanges, each one connection (`limits.max_fills`, perhaps lowered).
    pub upstream: usize,
}

/// Fits the configured caps into `nofile` descriptors less [`FD_RESERVE`]. When they do not
/// fit, upstream keeps at least a quarter of what there is (more if clients need less), and
/// clients get the rest: a flood of client connections must leave room to fetch what they ask.
pub fn fd_budget(nofile: Option<u64>, clients: usize, upstream: usize) -> FdBudget {
    let asked = FdBudget { clients, upstream };
    let Some(nofile) = nofile else {
        return asked;
    };
    let usable = usize::try_from(nofile)
        .unwrap_or(usize::MAX)
        .saturating_sub(FD_RESERVE)
        .max(2);
    if clients.saturating_add(upstream) <= usable {
        return asked;
    }
    let upstream = upstream
        .min((usable / 4).max(usable.saturating_sub(clients)))
        .max(1);
    let clients = clients.min(usable - upstream).max(1);
    FdBudget { clients, upstream }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_that_fit_are_kept() {
        let b = fd_budget(Some(1_048_576), 10_000, 1024);
        assert_eq!(
            b,
            FdBudget {
                clients: 10_000,
                upstream: 1024
            }
        );
        assert_eq!(fd_budget(None, 10_000, 1024), b);
    }

    #[test]
    fn a_small_limit_is_split_with_upstream_keeping_a_quarter() {
        // 1024 - 128 = 896 usable: upstream 224, clients the other 672.
        let b = fd_budget(Some(1024), 10_000, 1024);
        assert_eq!(
            b,
            FdBudget {
                clients: 672,
                upstream: 224
            }
        );
        assert!(b.clients + b.upstream + FD_RESERVE <= 1024);
        // Upstream asked for less than its quarter: it gets what it asked.
        assert_eq!(
            fd_budget(Some(1024), 10_000, 100),
            FdBudget {
                clients: 796,
                upstream: 100
            }
        );
        // Few clients: upstream gets the rest.
        assert_eq!(
            fd_budget(Some(1024), 100, 5000),
            FdBudget {
                clients: 100,
                upstream: 796
            }
        );
    }

    #[test]
    fn never_zero_and_never_over() {
        for nofile in [0u64, 1, 64, 129, 130, 200, 1000, 5000] {
            for clients in [1usize, 10, 1000, 100_000] {
                for upstream in [1usize, 10, 1000, 100_000] {
                    let b = fd_budget(Some(nofile), clients, upstream);
                    assert!(b.clients >= 1 && b.upstream >= 1);
                    assert!(b.clients <= clients && b.upstream <= upstream);
                    let usable = (nofile as usize).saturating_sub(FD_RESERVE).max(2);
                    if clients + upstream > usable {
                        assert!(
                            b.clients + b.upstream <= usable,
                            "{nofile} {clients} {upstream}"
                        );
                    }
                }
            }
        }
    }
}
