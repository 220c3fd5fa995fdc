//! `tiercel-load`: closed-loop HTTP/1.1 keep-alive or h2c load against one URL, reporting
//! requests/s and latency percentiles as a table or JSON. Pin it with `taskset -c N`.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use tiercel_benches::duration::parse_duration;
use tiercel_benches::load::{LoadConfig, Protocol, Target, run_blocking};
use tiercel_benches::report::parse_tag;

/// Command line of `tiercel-load`.
#[derive(Debug, Parser)]
#[command(
    name = "tiercel-load",
    version,
    about = "Closed-loop HTTP/1.1 keep-alive or h2c load generator (one thread; pin it with taskset)"
)]
struct Cli {
    /// URL to GET (http:// only; h2 is spoken with prior knowledge).
    url: String,
    /// Protocol.
    #[arg(long, value_enum, default_value_t = Proto::H1)]
    protocol: Proto,
    /// Concurrent TCP connections.
    #[arg(short, long, default_value_t = 32)]
    connections: usize,
    /// Concurrent streams per connection (h2; default 32 for h2, always 1 for h1).
    #[arg(short, long)]
    streams: Option<usize>,
    /// Measurement window (e.g. 10s, 500ms).
    #[arg(short, long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Warm-up before the window; nothing in it is counted.
    #[arg(short, long, default_value = "2s", value_parser = parse_duration)]
    warmup: Duration,
    /// Limit for one whole exchange (head and body) and for connecting.
    #[arg(short, long, default_value = "5s", value_parser = parse_duration)]
    timeout: Duration,
    /// With `{n}` in the URL: draw `{n}` from this many objects by Zipf popularity (exponent
    /// `--zipf-s`) instead of a new URL per request.
    #[arg(long, value_name = "OBJECTS")]
    zipf: Option<usize>,
    /// Zipf exponent.
    #[arg(long, default_value_t = 1.0)]
    zipf_s: f64,
    /// Every body must be exactly this many bytes (Content-Length is always checked).
    #[arg(long, value_name = "BYTES")]
    expect_length: Option<u64>,
    /// Extra request header `Name: value` (repeatable).
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    headers: Vec<String>,
    /// Label copied into the report, `key=value` (repeatable; the runner sets server and size).
    #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = parse_tag)]
    tags: Vec<(String, String)>,
    /// Process whose CPU use over the window is reported as the server's (repeatable).
    #[arg(long = "watch-pid", value_name = "PID")]
    watch_pids: Vec<u32>,
    /// h2 initial stream flow-control window, bytes.
    #[arg(long, default_value_t = 4 * 1024 * 1024)]
    h2_stream_window: u32,
    /// h2 initial connection flow-control window, bytes.
    #[arg(long, default_value_t = 32 * 1024 * 1024)]
    h2_connection_window: u32,
    /// h2 largest frame accepted, bytes.
    #[arg(long, default_value_t = 16_384)]
    h2_max_frame: u32,
    /// Print the report as one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Exit with status 2 when more than this many exchanges failed in the window.
    #[arg(long, value_name = "N")]
    max_errors: Option<u64>,
    /// Exit with status 2 when fewer exchanges than this succeeded in the window.
    #[arg(long, value_name = "N", default_value_t = 1)]
    min_requests: u64,
}

/// `--protocol` values.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Proto {
    /// HTTP/1.1 keep-alive.
    H1,
    /// HTTP/2 cleartext with prior knowledge.
    H2,
}

fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    let protocol = match cli.protocol {
        Proto::H1 => Protocol::H1,
        Proto::H2 => Protocol::H2,
    };
    let streams = cli.streams.unwrap_or(match protocol {
        Protocol::H1 => 1,
        Protocol::H2 => 32,
    });
    let config = LoadConfig {
        protocol,
        connections: cli.connections,
        streams,
        warmup: cli.warmup,
        duration: cli.duration,
        timeout: cli.timeout,
        expected_len: cli.expect_length,
        h2_stream_window: cli.h2_stream_window,
        h2_connection_window: cli.h2_connection_window,
        h2_max_frame: cli.h2_max_frame,
        watch_pids: cli.watch_pids,
        tags: cli.tags.into_iter().collect::<BTreeMap<_, _>>(),
    };
    let mut target = Target::new(&cli.url, &cli.headers).context("target")?;
    if let Some(objects) = cli.zipf {
        target = target.with_zipf(objects, cli.zipf_s).context("--zipf")?;
    }
    let report = run_blocking(target, config).context("load run")?;
    if cli.json {
        println!(
            "{}",
            serde_json::to_string(&report).context("encoding the report")?
        );
    } else {
        println!("{report}");
    }
    let mut failed = false;
    if report.requests < cli.min_requests {
        eprintln!(
            "tiercel-load: only {} successful exchanges (wanted at least {})",
            report.requests, cli.min_requests
        );
        failed = true;
    }
    if let Some(max) = cli.max_errors
        && report.errors > max
    {
        eprintln!(
            "tiercel-load: {} failed exchanges (allowed {max}): {:?}",
            report.errors, report.error_kinds
        );
        failed = true;
    }
    Ok(if failed {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}
