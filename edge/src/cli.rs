//! The command line of the node binaries: parse flags, load configuration, run until signalled.
//!
//! Exit codes: 0 after a clean shutdown (or `--check-config` success), 2 for an invalid command
//! line or configuration (one line on stderr naming the key), 1 when the node fails to start.

use std::process::ExitCode;

use clap::Parser;
use tiercel_cluster::config::{NodeArgs, NodeConfig, Role};

#[derive(Parser, Debug)]
#[command(version, about = "Tiercel caching node")]
struct Cli {
    #[command(flatten)]
    node: NodeArgs,
}

/// Runs a node binary of the given role.
pub fn main(role: Role) -> ExitCode {
    let name = match role {
        Role::Edge => "tiercel-edge",
        Role::Shield => "tiercel-shield",
    };
    let cli = Cli::parse_from(
        std::env::args_os()
            .enumerate()
            .map(|(i, a)| if i == 0 { name.into() } else { a }),
    );
    tiercel_cluster::telemetry::init("info");
    let cfg = match NodeConfig::load(role, &cli.node, std::env::vars()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{name}: {e}");
            return ExitCode::from(2);
        }
    };
    if cli.node.purge_token.is_some() {
        eprintln!(
            "{name}: warning: --purge-token on the command line is visible to other users; \
             use TIERCEL_PURGE_TOKEN or --purge-token-file"
        );
    }
    if cli.node.check_config {
        print!("{}", cfg.to_toml());
        return ExitCode::SUCCESS;
    }
    let threads = cfg.effective_worker_threads();
    let rt = match runtime(threads) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{name}: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    rt.block_on(async move {
        let stop = tiercel_cluster::signal::ShutdownSignal::install();
        let node = match crate::node::start(role, &cfg).await {
            Ok(n) => n,
            Err(e) => {
                eprintln!("{name}: {e}");
                return ExitCode::from(1);
            }
        };
        let plural = if threads == 1 { "" } else { "s" };
        if let Some(a) = node.listen {
            println!(
                "{name}: serving http://{a} (HTTP/1.1, h2c) in front of {}, {threads} worker thread{plural}",
                if cfg.shields.is_empty() {
                    cfg.origin.clone().unwrap_or_default()
                } else {
                    format!("shields {}", cfg.shields.join(", "))
                }
            );
        }
        if let Some(a) = node.tls_listen {
            println!("{name}: serving https://{a} (HTTP/1.1, h2 over TLS)");
        }
        if let Some(a) = node.admin_listen {
            println!("{name}: admin on http://{a} (/healthz, /readyz, /metrics)");
        }
        stop.recv().await;
        tracing::info!("shutting down");
        node.shutdown().await;
        ExitCode::SUCCESS
    })
}

/// The scheduler for `threads` request-serving threads. One thread gets tokio's current-thread
/// scheduler: a work-stealing pool of one has no one to steal from, yet still pays for atomic
/// run queues and cross-thread wake-ups (on one core it served ~30% fewer h2 hits/s, with a
/// longer tail). Blocking work (state files, disk cache I/O) goes to tokio's blocking pool
/// in both cases, so a single-threaded node never stalls on a disk.
fn runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(threads);
        b
    };
    builder.enable_all().build()
}
