//! `tiercel-testbed`: the demo origin today; the multi-region cluster (`up`, `down`, ...) is
//! tracked as its own issue and only stubbed here.

use std::net::SocketAddr;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tiercel_testbed::origin::Origin;

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
    /// Start the testbed cluster (not implemented yet).
    Up,
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
        Command::Up => {
            println!("not yet");
            Ok(())
        }
    }
}

/// Serves until Ctrl-C (or SIGTERM), then shuts the origin down.
async fn demo_origin(listen: SocketAddr) -> anyhow::Result<()> {
    let origin = Origin::start(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    println!("demo origin listening on {}", origin.url());
    wait_for_signal().await?;
    origin.shutdown().await;
    Ok(())
}

#[cfg(unix)]
async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C")?,
        _ = term.recv() => {}
    }
    Ok(())
}

#[cfg(not(unix))]
async fn wait_for_signal() -> anyhow::Result<()> {
    tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")
}
