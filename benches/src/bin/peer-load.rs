//! `peer-load`: runs an external load generator (`wrk` for HTTP/1.1, `h2load` for h2c) against
//! one URL, samples the server's and the machine's CPU around it, and prints the same JSON
//! report as `tiercel-load --json`, so `run-peers.sh` can table every tool alike.
//!
//! The warm-up is a separate run of the tool whose figures are dropped. With `{n}` in the URL
//! every request asks for a new object (wrk only, through a Lua script); each run numbers its
//! objects under its own prefix, so the measured run never meets an object the warm-up stored.

use std::collections::BTreeMap;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use nix::sys::resource::{UsageWho, getrusage};
use tiercel_benches::duration::parse_duration;
use tiercel_benches::external::{ToolRun, parse_h2load, parse_wrk};
use tiercel_benches::load::{
    Proc, Protocol, cpu_delta, cpu_times, machine_percent, machine_ticks, percent,
};
use tiercel_benches::report::{Latency, LoadReport, parse_tag};

/// Command line of `peer-load`.
#[derive(Debug, Parser)]
#[command(
    name = "peer-load",
    version,
    about = "Run wrk or h2load and report like tiercel-load --json (pin it with taskset)"
)]
struct Cli {
    /// URL to GET (http:// only). `{n}`: a new object per request (wrk only).
    url: String,
    /// The tool: wrk speaks HTTP/1.1, h2load h2c with prior knowledge.
    #[arg(long, value_enum)]
    tool: Tool,
    /// Concurrent connections (one request in flight on each).
    #[arg(short, long, default_value_t = 64)]
    connections: usize,
    /// Measurement window (whole seconds for wrk and h2load).
    #[arg(short, long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Warm-up run before the window; nothing in it is counted.
    #[arg(short, long, default_value = "2s", value_parser = parse_duration)]
    warmup: Duration,
    /// Every body is this long (used for the byte count; the tools do not check lengths).
    #[arg(long, value_name = "BYTES")]
    expect_length: Option<u64>,
    /// Label copied into the report, `key=value` (repeatable).
    #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = parse_tag)]
    tags: Vec<(String, String)>,
    /// Process whose CPU use over the window is reported as the server's (repeatable).
    #[arg(long = "watch-pid", value_name = "PID")]
    watch_pids: Vec<u32>,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
    /// Exit with status 2 when more than this many exchanges failed in the window.
    #[arg(long, value_name = "N")]
    max_errors: Option<u64>,
}

/// `--tool` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Tool {
    /// wrk: HTTP/1.1 keep-alive, latency percentiles.
    Wrk,
    /// h2load (nghttp2): h2c, one stream per connection (`-m 1`), no percentiles.
    H2load,
}

impl Tool {
    fn name(self) -> &'static str {
        match self {
            Tool::Wrk => "wrk",
            Tool::H2load => "h2load",
        }
    }

    fn protocol(self) -> Protocol {
        match self {
            Tool::Wrk => Protocol::H1,
            Tool::H2load => Protocol::H2,
        }
    }
}

/// Whole seconds, at least one: both tools take `-d` in seconds.
fn seconds(d: Duration) -> u64 {
    d.as_secs().max(1)
}

/// A Lua script for wrk that asks for `path` with `{n}` replaced by `prefix` and a counter.
fn new_url_script(path: &str, prefix: &str) -> String {
    let (before, after) = path.split_once("{n}").unwrap_or((path, ""));
    format!(
        "local n = 0\nrequest = function()\n  n = n + 1\n  return wrk.format(\"GET\", {:?} .. n .. {:?})\nend\n",
        format!("{before}{prefix}-"),
        after
    )
}

/// Runs the tool once for `secs` seconds and parses its report.
fn run_tool(cli: &Cli, secs: u64, run: &str) -> anyhow::Result<ToolRun> {
    let mut cmd = match cli.tool {
        Tool::Wrk => {
            let mut cmd = Command::new("wrk");
            cmd.args(["-t", "1", "--latency", "--timeout", "5s"])
                .arg("-c")
                .arg(cli.connections.to_string())
                .arg("-d")
                .arg(format!("{secs}s"));
            if let Some((base, path)) = split_url(&cli.url)
                && path.contains("{n}")
            {
                let script = std::env::temp_dir().join(format!("peer-load-{run}.lua"));
                std::fs::write(&script, new_url_script(path, run))
                    .with_context(|| format!("writing {}", script.display()))?;
                cmd.arg("-s").arg(&script).arg(base);
            } else {
                cmd.arg(&cli.url);
            }
            cmd
        }
        Tool::H2load => {
            if cli.url.contains("{n}") {
                bail!("h2load cannot ask for a new URL per request; use wrk for the miss path");
            }
            let mut cmd = Command::new("h2load");
            // -N: a connection silent for 5 s is given up (h2load has no per-request limit).
            cmd.args(["-t", "1", "-m", "1", "-N", "5"])
                .arg("-c")
                .arg(cli.connections.to_string())
                .arg("-D")
                .arg(secs.to_string())
                .arg(&cli.url);
            cmd
        }
    };
    let output = run_bounded(&mut cmd, Duration::from_secs(secs + TOOL_GRACE_S))
        .with_context(|| format!("running {} (is it installed?)", cli.tool.name()))?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "{} exited with {}: {}",
            cli.tool.name(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let parsed = match cli.tool {
        Tool::Wrk => parse_wrk(&text),
        Tool::H2load => parse_h2load(&text),
    };
    parsed.with_context(|| format!("reading {}'s report:\n{text}", cli.tool.name()))
}

/// How long a tool may run past its own duration before it is killed.
const TOOL_GRACE_S: u64 = 30;

/// Runs `cmd` to completion with its output captured, killing it after `limit`.
fn run_bounded(cmd: &mut Command, limit: Duration) -> anyhow::Result<std::process::Output> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("still running after {} s: killed", limit.as_secs());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Ok(std::process::Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

/// `http://host:port/path` → (`http://host:port`, `/path`).
fn split_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("http://")?;
    let slash = rest.find('/')?;
    Some(url.split_at("http://".len() + slash))
}

/// CPU time the process's reaped children used (user + system).
fn children_cpu() -> Option<Duration> {
    let usage = getrusage(UsageWho::RUSAGE_CHILDREN).ok()?;
    let t = |tv: nix::sys::time::TimeVal| {
        Duration::from_secs(u64::try_from(tv.tv_sec()).ok()?)
            .checked_add(Duration::from_micros(u64::try_from(tv.tv_usec()).ok()?))
    };
    t(usage.user_time())?.checked_add(t(usage.system_time())?)
}

fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let run = format!("{:x}-{}", stamp, std::process::id());
    if !cli.warmup.is_zero() {
        run_tool(&cli, seconds(cli.warmup), &format!("{run}w")).context("warm-up run")?;
    }
    let procs: Vec<Proc> = cli.watch_pids.iter().copied().map(Proc::Pid).collect();
    let (server0, machine0, client0) = (cpu_times(&procs), machine_ticks(), children_cpu());
    let t0 = Instant::now();
    let measured = run_tool(&cli, seconds(cli.duration), &run).context("measured run")?;
    let wall = t0.elapsed();
    let (server1, machine1, client1) = (cpu_times(&procs), machine_ticks(), children_cpu());

    // h2load's "finished in" also counts connecting; its own req/s divides by -D.
    let secs = match cli.tool {
        Tool::Wrk => measured.duration_s,
        Tool::H2load => seconds(cli.duration) as f64,
    };
    let per_sec = |n: f64| if secs > 0.0 { n / secs } else { 0.0 };
    let bytes = cli.expect_length.map_or(0, |len| len * measured.ok);
    let report = LoadReport {
        tags: cli
            .tags
            .iter()
            .cloned()
            .chain([("tool".to_owned(), cli.tool.name().to_owned())])
            .collect::<BTreeMap<_, _>>(),
        url: cli.url.clone(),
        protocol: cli.tool.protocol(),
        connections: cli.connections,
        streams: 1,
        warmup_s: if cli.warmup.is_zero() {
            0.0
        } else {
            seconds(cli.warmup) as f64
        },
        duration_s: secs,
        requests: measured.ok,
        rps: per_sec(measured.ok as f64),
        bytes,
        mib_per_s: per_sec(bytes as f64 / (1024.0 * 1024.0)),
        latency_us: Latency {
            min: measured.min_us.unwrap_or(0.0),
            mean: measured.mean_us,
            p50: measured.p50_us,
            p90: measured.p90_us,
            p99: measured.p99_us,
            p999: None,
            max: measured.max_us,
        },
        errors: measured.errors,
        error_kinds: BTreeMap::new(),
        warmup_requests: 0,
        warmup_errors: 0,
        connects: 0,
        client_cpu_percent: percent(client0, client1, wall),
        server_cpu_percent: percent(Some(Duration::ZERO), cpu_delta(&server0, &server1), wall),
        machine_cpu_percent: machine_percent(machine0, machine1),
        server_us_per_request: None,
    }
    .with_cpu_per_request();
    if cli.json {
        println!(
            "{}",
            serde_json::to_string(&report).context("encoding the report")?
        );
    } else {
        println!("{report}");
    }
    if let Some(max) = cli.max_errors
        && report.errors > max
    {
        eprintln!(
            "peer-load: {} failed exchanges (allowed {max})",
            report.errors
        );
        return Ok(ExitCode::from(2));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lua_script_numbers_urls_under_the_run_prefix() {
        let script = new_url_script("/miss-1KiB-{n}?size=1024&cc=max-age%3D3600", "abc");
        assert!(
            script.contains(
                r#"wrk.format("GET", "/miss-1KiB-abc-" .. n .. "?size=1024&cc=max-age%3D3600")"#
            ),
            "{script}"
        );
    }

    #[test]
    fn urls_split_into_base_and_path() {
        assert_eq!(
            split_url("http://127.0.0.1:80/a/b?c"),
            Some(("http://127.0.0.1:80", "/a/b?c"))
        );
        assert_eq!(split_url("https://x/"), None);
    }
}
