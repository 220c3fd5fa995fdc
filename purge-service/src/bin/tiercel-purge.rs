//! `tiercel-purge`: one member of the Raft-replicated purge and configuration service.
//!
//! Exit codes: 0 after a clean shutdown (SIGINT/SIGTERM) or `--check-config`; 1 when the node
//! cannot start or fails; 2 for invalid flags (one line on stderr).

use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;
use tiercel_purge::config::{Args, NodeConfig};
use tiercel_purge::node::Node;

/// Reduces a clap error to one line: its text up to the first blank line, joined.
fn one_line(e: &clap::Error) -> String {
    let text = e.to_string();
    let head: Vec<&str> = text
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    head.join(" ").trim_start_matches("error: ").to_string()
}

fn main() -> ExitCode {
    let mut args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("tiercel-purge: {}", one_line(&e));
            return ExitCode::from(2);
        }
    };
    args.read_secret_env();
    let filter = args.log.clone();
    let check_only = args.check_config;
    let cfg = match NodeConfig::from_args(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tiercel-purge: {e}");
            return ExitCode::from(2);
        }
    };
    if check_only {
        println!("configuration ok");
        return ExitCode::SUCCESS;
    }
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tiercel-purge: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    tiercel_cluster::conn::raise_fd_limit();
    runtime.block_on(async {
        let stop = tiercel_cluster::signal::ShutdownSignal::install();
        match Node::start(cfg).await {
            Ok(node) => {
                node.run_until(stop.recv()).await;
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("tiercel-purge: {e}");
                ExitCode::from(1)
            }
        }
    })
}
