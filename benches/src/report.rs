//! The result of one load run: the JSON `tiercel-load --json` prints (and the comparison table
//! reads back), and the human summary it prints otherwise.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::load::{CpuUse, ErrorKind, LoadConfig, Protocol, Recorder};

/// Latency of successful exchanges (request sent → last body byte), in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Fastest exchange.
    pub min: f64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Median. The percentiles are `None` for a tool that does not report them (h2load gives
    /// only min, mean and max).
    pub p50: Option<f64>,
    /// 90th percentile.
    pub p90: Option<f64>,
    /// 99th percentile: the figure the benchmark's target is about.
    pub p99: Option<f64>,
    /// 99.9th percentile.
    pub p999: Option<f64>,
    /// Slowest exchange.
    pub max: f64,
}

/// One run's figures; every field is in the JSON output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadReport {
    /// Labels given with `--tag key=value` (the runner sets `server` and `size`).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// The URL requested.
    pub url: String,
    /// h1 or h2.
    pub protocol: Protocol,
    /// TCP connections.
    pub connections: usize,
    /// Streams per connection (1 for h1).
    pub streams: usize,
    /// Warm-up before the window, seconds.
    pub warmup_s: f64,
    /// Length of the measurement window, seconds.
    pub duration_s: f64,
    /// Successful exchanges finished in the window.
    pub requests: u64,
    /// `requests / duration_s`.
    pub rps: f64,
    /// Body bytes received in the window.
    pub bytes: u64,
    /// Body throughput, MiB/s.
    pub mib_per_s: f64,
    /// Latency distribution of the successful exchanges.
    pub latency_us: Latency,
    /// Failed exchanges in the window.
    pub errors: u64,
    /// Failures by kind (`connect`, `send`, `timeout`, `status`, `body`, `length`); zero
    /// kinds are left out.
    #[serde(default)]
    pub error_kinds: BTreeMap<String, u64>,
    /// Successful exchanges during the warm-up (not counted above).
    pub warmup_requests: u64,
    /// Failures during the warm-up (not counted above).
    pub warmup_errors: u64,
    /// Connections opened during the window (non-zero means the server closed keep-alive
    /// connections, or they broke).
    pub connects: u64,
    /// CPU used by the load generator over the window, percent of one core.
    pub client_cpu_percent: Option<f64>,
    /// CPU used by the watched server processes over the window, percent of one core.
    pub server_cpu_percent: Option<f64>,
    /// CPU used by the whole machine over the window, percent of one core (up to 100 × CPUs).
    #[serde(default)]
    pub machine_cpu_percent: Option<f64>,
    /// Server CPU time per successful exchange, microseconds (see
    /// [`LoadReport::server_cpu_us_per_request`]); absent in files from before it was written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_us_per_request: Option<f64>,
}

impl LoadReport {
    /// CPU used by anything but the load generator and the watched server: interference
    /// (builds, other services) that makes the run less trustworthy. Needs all three samples.
    pub fn other_cpu_percent(&self) -> Option<f64> {
        let others =
            self.machine_cpu_percent? - self.client_cpu_percent? - self.server_cpu_percent?;
        Some(others.max(0.0))
    }

    /// The server's CPU time per successful exchange, microseconds: the cost figure that stays
    /// comparable when one server is client-bound and another is not.
    pub fn server_cpu_us_per_request(&self) -> Option<f64> {
        self.server_us_per_request
            .or_else(|| self.cpu_per_request_from_totals())
    }

    /// Server CPU time over the window ÷ requests: the figure of one run.
    fn cpu_per_request_from_totals(&self) -> Option<f64> {
        if self.requests == 0 {
            return None;
        }
        let busy_s = self.server_cpu_percent? / 100.0 * self.duration_s;
        Some(busy_s * 1e6 / self.requests as f64)
    }
}

impl LoadReport {
    /// Builds the report from a finished run.
    pub fn new(url: &str, config: &LoadConfig, rec: &Recorder, cpu: CpuUse) -> LoadReport {
        let secs = rec.window().duration().as_secs_f64();
        let per_sec = |n: f64| if secs > 0.0 { n / secs } else { 0.0 };
        let h = rec.histogram();
        let us = |ns: u64| ns as f64 / 1000.0;
        let latency = if h.is_empty() {
            Latency::default()
        } else {
            Latency {
                min: us(h.min()),
                mean: h.mean() / 1000.0,
                p50: Some(us(h.value_at_quantile(0.5))),
                p90: Some(us(h.value_at_quantile(0.9))),
                p99: Some(us(h.value_at_quantile(0.99))),
                p999: Some(us(h.value_at_quantile(0.999))),
                max: us(h.max()),
            }
        };
        let error_kinds = ErrorKind::ALL
            .iter()
            .filter(|k| rec.errors(**k) > 0)
            .map(|k| (k.as_str().to_owned(), rec.errors(*k)))
            .collect();
        LoadReport {
            tags: config.tags.clone(),
            url: url.to_owned(),
            protocol: config.protocol,
            connections: config.connections,
            streams: config.streams,
            warmup_s: config.warmup.as_secs_f64(),
            duration_s: secs,
            requests: rec.requests(),
            rps: per_sec(rec.requests() as f64),
            bytes: rec.bytes(),
            mib_per_s: per_sec(rec.bytes() as f64 / (1024.0 * 1024.0)),
            latency_us: latency,
            errors: rec.total_errors(),
            error_kinds,
            warmup_requests: rec.warmup_requests(),
            warmup_errors: rec.warmup_errors(),
            connects: rec.connects(),
            client_cpu_percent: cpu.client,
            server_cpu_percent: cpu.server,
            machine_cpu_percent: cpu.machine,
            server_us_per_request: None,
        }
        .with_cpu_per_request()
    }

    /// Fills in [`LoadReport::server_us_per_request`] from the other figures.
    pub fn with_cpu_per_request(mut self) -> LoadReport {
        self.server_us_per_request = self.cpu_per_request_from_totals();
        self
    }
}

/// Splits a `--tag key=value` argument (both load tools take them).
pub fn parse_tag(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("expected KEY=VALUE, got {s:?}"))
}

/// A latency in microseconds as milliseconds with three significant digits.
pub fn fmt_ms(us: f64) -> String {
    let ms = us / 1000.0;
    if ms >= 100.0 {
        format!("{ms:.0}")
    } else if ms >= 10.0 {
        format!("{ms:.1}")
    } else if ms >= 1.0 {
        format!("{ms:.2}")
    } else {
        format!("{ms:.3}")
    }
}

/// [`fmt_ms`] of a figure that may not have been measured (`-`).
pub fn fmt_ms_opt(us: Option<f64>) -> String {
    us.map_or_else(|| "-".to_owned(), fmt_ms)
}

/// A percentage, or `-` when it was not measured.
pub fn fmt_percent(p: Option<f64>) -> String {
    p.map_or_else(|| "-".to_owned(), |p| format!("{p:.0}%"))
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tags: Vec<String> = self.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
        writeln!(f, "target      {} ({})", self.url, self.protocol)?;
        if !tags.is_empty() {
            writeln!(f, "tags        {}", tags.join(" "))?;
        }
        writeln!(
            f,
            "load        {} connection(s) x {} stream(s), {:.1} s after {:.1} s warm-up",
            self.connections, self.streams, self.duration_s, self.warmup_s
        )?;
        writeln!(
            f,
            "requests    {} ({:.0} req/s), {} bytes ({:.1} MiB/s)",
            self.requests, self.rps, self.bytes, self.mib_per_s
        )?;
        let l = &self.latency_us;
        writeln!(
            f,
            "latency ms  min {}  p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  mean {}",
            fmt_ms(l.min),
            fmt_ms_opt(l.p50),
            fmt_ms_opt(l.p90),
            fmt_ms_opt(l.p99),
            fmt_ms_opt(l.p999),
            fmt_ms(l.max),
            fmt_ms(l.mean)
        )?;
        let kinds: Vec<String> = self
            .error_kinds
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        writeln!(
            f,
            "errors      {}{} (warm-up: {} ok, {} errors; reconnects in window: {})",
            self.errors,
            if kinds.is_empty() {
                String::new()
            } else {
                format!(" [{}]", kinds.join(" "))
            },
            self.warmup_requests,
            self.warmup_errors,
            self.connects
        )?;
        write!(
            f,
            "cpu         load generator {}, server {}, everything else {}",
            fmt_percent(self.client_cpu_percent),
            fmt_percent(self.server_cpu_percent),
            fmt_percent(self.other_cpu_percent())
        )
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::load::Window;

    #[test]
    fn tags_split_at_the_first_equals_sign() {
        assert_eq!(
            parse_tag("server = nginx"),
            Ok(("server".to_owned(), "nginx".to_owned()))
        );
        assert_eq!(parse_tag("a=b=c"), Ok(("a".to_owned(), "b=c".to_owned())));
        assert!(parse_tag("=x").is_err());
        assert!(parse_tag("novalue").is_err());
    }

    #[test]
    fn report_from_a_recorder() {
        let t0 = Instant::now();
        let window = Window::after(t0, Duration::from_secs(1), Duration::from_secs(2));
        let mut rec = Recorder::new(window).unwrap();
        let inside = window.start + Duration::from_millis(500);
        for ms in [1u64, 2, 3, 4] {
            rec.success(inside - Duration::from_millis(ms), inside, 1024);
        }
        rec.failure(ErrorKind::Timeout, inside);
        rec.success(t0, t0, 1024);
        let config = LoadConfig {
            protocol: Protocol::H2,
            connections: 4,
            streams: 8,
            warmup: Duration::from_secs(1),
            duration: Duration::from_secs(2),
            tags: [("server".to_owned(), "nginx".to_owned())].into(),
            ..LoadConfig::default()
        };
        let cpu = CpuUse {
            client: Some(99.5),
            server: None,
            machine: Some(150.0),
        };
        let r = LoadReport::new("http://127.0.0.1:1/x", &config, &rec, cpu);
        assert_eq!(r.requests, 4);
        assert_eq!(r.rps, 2.0);
        assert_eq!(r.bytes, 4096);
        assert_eq!(r.mib_per_s, 4096.0 / 1048576.0 / 2.0);
        assert_eq!(r.errors, 1);
        assert_eq!(r.error_kinds, [("timeout".to_owned(), 1)].into());
        assert_eq!(r.warmup_requests, 1);
        assert_eq!((r.connections, r.streams), (4, 8));
        assert_eq!(r.duration_s, 2.0);
        assert!(
            (r.latency_us.p50.unwrap() - 2000.0).abs() <= 2.0,
            "{:?}",
            r.latency_us
        );
        assert!(
            (r.latency_us.max - 4000.0).abs() <= 4.0,
            "{:?}",
            r.latency_us
        );
        assert!(
            (r.latency_us.mean - 2500.0).abs() <= 3.0,
            "{:?}",
            r.latency_us
        );

        // JSON round trip keeps every figure.
        let json = serde_json::to_string(&r).unwrap();
        let back: LoadReport = serde_json::from_str(&json).unwrap();
        assert_eq!(back, r);
        assert!(json.contains("\"protocol\":\"h2\""), "{json}");

        let text = r.to_string();
        assert!(text.contains("4 connection(s) x 8 stream(s)"), "{text}");
        assert!(text.contains("errors      1 [timeout=1]"), "{text}");
        assert!(
            text.contains("load generator 100%, server -, everything else -"),
            "{text}"
        );
    }

    #[test]
    fn other_cpu_is_what_client_and_server_did_not_use() {
        let t0 = Instant::now();
        let rec = Recorder::new(Window::after(t0, Duration::ZERO, Duration::from_secs(1))).unwrap();
        let cpu = |client, server, machine| CpuUse {
            client,
            server,
            machine,
        };
        let config = LoadConfig::default();
        let other = |c| LoadReport::new("http://x/", &config, &rec, c).other_cpu_percent();
        assert_eq!(other(cpu(Some(60.0), Some(90.0), Some(190.0))), Some(40.0));
        // Sampling skew can make the sum exceed the machine's figure: clamp at zero.
        assert_eq!(other(cpu(Some(60.0), Some(90.0), Some(149.0))), Some(0.0));
        assert_eq!(other(cpu(Some(60.0), None, Some(190.0))), None);
    }

    #[test]
    fn milliseconds_keep_three_significant_digits() {
        let cases = [
            (123.4, "0.123"),
            (999.0, "0.999"),
            (1234.0, "1.23"),
            (12_345.0, "12.3"),
            (123_456.0, "123"),
            (0.0, "0.000"),
        ];
        for (us, want) in cases {
            assert_eq!(fmt_ms(us), want, "{us}");
        }
        assert_eq!(fmt_percent(Some(99.6)), "100%");
        assert_eq!(fmt_percent(None), "-");
    }
}
