//! `tiercel-testbed`: the demo origin, and `up`: a working CDN on this machine (today an edge in
//! front of a shield in front of the demo origin; the multi-region cluster is its own issue).

use std::net::SocketAddr;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tiercel_testbed::origin::Origin;

// mimalloc, as in the edge and the shield: the demo origin shares the benchmarks' load core, and
// glibc's allocator was 8 % of its CPU under a miss load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Command line of `tiercel-testbed`.
#[derive(Debug, Parser)]
#[command(
    name = "tiercel-testbed",
    version,
    about = "A Tiercel cluster on one machine, and its demo origin"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the demo origin in the foreground (HTTP/1.1 and h2c; GET / describes its parameters).
    DemoOrigin {
        /// Address to listen on (port 0 picks a free port and prints it).
        #[arg(long, default_value = "127.0.0.1:9000")]
        listen: SocketAddr,
    },
    /// Start a working CDN on this machine: the demo origin, a shield in front of it and an
    /// edge in front of the shield.
    Up {
        /// Demo origin address.
        #[arg(long, default_value = "127.0.0.1:9000")]
        origin: SocketAddr,
        /// Edge address (HTTP/1.1 and h2c).
        #[arg(long, default_value = "127.0.0.1:8080")]
        edge: SocketAddr,
        /// Edge TLS address (h1 and h2 by ALPN).
        #[arg(long, default_value = "127.0.0.1:8443")]
        edge_tls: SocketAddr,
        /// Edge admin address.
        #[arg(long, default_value = "127.0.0.1:9900")]
        admin: SocketAddr,
        /// First shield address (the edges' upstream; shield i listens on its port + i).
        #[arg(long, default_value = "127.0.0.1:8090")]
        shield: SocketAddr,
        /// First shield admin address.
        #[arg(long, default_value = "127.0.0.1:9950")]
        shield_admin: SocketAddr,
        /// How many edges (edge i listens on each edge port + i).
        #[arg(long, default_value_t = 1)]
        edges: usize,
        /// How many shields (0: the edges go straight to the origin).
        #[arg(long, default_value_t = 1)]
        shields: usize,
        /// Where the cache lives.
        #[arg(long, default_value = "testbed-data")]
        data_dir: std::path::PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::DemoOrigin { listen } => {
            let _ = tracing_subscriber::fmt()
                .with_writer(std::io::stderr)
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
                )
                .try_init();
            let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
            runtime.block_on(demo_origin(listen))
        }
        Command::Up {
            origin,
            edge,
            edge_tls,
            admin,
            shield,
            shield_admin,
            edges,
            shields,
            data_dir,
        } => {
            let opts = tiercel_testbed::up::UpOptions {
                origin,
                edge,
                edge_tls,
                admin,
                shield,
                shield_admin,
                edges,
                shields,
                data_dir,
                bin_dir: tiercel_testbed::up::sibling_bin_dir()?,
            };
            let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
            runtime.block_on(async move {
                let stop = tiercel_cluster::signal::ShutdownSignal::install();
                let up = tiercel_testbed::up::up(&opts).await?;
                println!("{}", tiercel_testbed::up::banner(&opts));
                stop.recv().await;
                up.down().await;
                Ok(())
            })
        }
    }
}

/// Serves until Ctrl-C (or SIGTERM), then shuts the origin down.
async fn demo_origin(listen: SocketAddr) -> anyhow::Result<()> {
    let stop = tiercel_cluster::signal::ShutdownSignal::install();
    let origin = Origin::start(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    println!("demo origin listening on {}", origin.url());
    stop.recv().await;
    origin.shutdown().await;
    Ok(())
}
