//! Reading the reports of the external load generators `wrk` (HTTP/1.1) and `h2load` (h2c), so
//! the runner can put their figures in the same table as `tiercel-load`'s: the table was
//! measured with them, and a second client is how a figure bounded by one client shows up.
//!
//! Pure text parsing; `peer-load` runs the tools and samples CPU around them.

use thiserror::Error;

/// What one run of an external tool reported.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolRun {
    /// Exchanges answered with a 2xx status.
    pub ok: u64,
    /// Exchanges that failed (connection errors, timeouts, non-2xx statuses).
    pub errors: u64,
    /// Length of the run as the tool measured it, seconds.
    pub duration_s: f64,
    /// Mean latency, microseconds.
    pub mean_us: f64,
    /// Slowest exchange, microseconds.
    pub max_us: f64,
    /// Fastest exchange, microseconds (h2load only).
    pub min_us: Option<f64>,
    /// Percentiles 50, 90 and 99, microseconds (wrk `--latency` only).
    pub p50_us: Option<f64>,
    /// 90th percentile.
    pub p90_us: Option<f64>,
    /// 99th percentile.
    pub p99_us: Option<f64>,
}

/// A report that does not have the lines the parser needs: the tool's version differs, or it
/// failed before measuring.
#[derive(Debug, Error, PartialEq)]
pub enum ParseError {
    /// A line the report must contain is missing.
    #[error("no `{0}` line in the tool's output")]
    Missing(&'static str),
    /// A figure did not parse.
    #[error("cannot read `{0}` in the tool's output")]
    Bad(String),
}

/// `1.53ms`, `603.79us`, `2.1s`, `3m` (wrk) → microseconds.
pub fn parse_duration_us(text: &str) -> Result<f64, ParseError> {
    let bad = || ParseError::Bad(text.to_owned());
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().map_err(|_| bad())?;
    let scale = match unit {
        "us" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        "m" => 60e6,
        "h" => 3600e6,
        _ => return Err(bad()),
    };
    Ok(value * scale)
}

fn number<T: std::str::FromStr>(text: &str) -> Result<T, ParseError> {
    text.trim_end_matches([',', 's'])
        .parse()
        .map_err(|_| ParseError::Bad(text.to_owned()))
}

/// Parses `wrk --latency` output.
pub fn parse_wrk(out: &str) -> Result<ToolRun, ParseError> {
    let mut latency = None;
    let mut percentiles = [None; 3];
    let mut totals = None;
    let mut not_2xx = 0u64;
    let mut socket_errors = 0u64;
    for line in out.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Latency", mean, _sd, max, ..] => {
                latency = Some((parse_duration_us(mean)?, parse_duration_us(max)?));
            }
            [p @ ("50%" | "90%" | "99%"), value] => {
                let slot = match *p {
                    "50%" => 0,
                    "90%" => 1,
                    _ => 2,
                };
                percentiles[slot] = Some(parse_duration_us(value)?);
            }
            [requests, "requests", "in", time, ..] => {
                // wrk prints the run time in its own units: "10.10s", "1.00m".
                let secs = parse_duration_us(time.trim_end_matches(','))? / 1e6;
                totals = Some((number::<u64>(requests)?, secs));
            }
            ["Non-2xx", "or", "3xx", "responses:", n] => not_2xx += number::<u64>(n)?,
            ["Socket", "errors:", rest @ ..] => {
                // connect 0, read 0, write 0, timeout 0: none of these is in the request
                // count (a timeout is counted again on each sweep while it lasts), so they add
                // to the errors without coming off the successes.
                for pair in rest.chunks(2) {
                    if let [_, n] = pair {
                        socket_errors += number::<u64>(n)?;
                    }
                }
            }
            _ => {}
        }
    }
    let (mean_us, max_us) = latency.ok_or(ParseError::Missing("Latency"))?;
    let (requests, duration_s) = totals.ok_or(ParseError::Missing("N requests in T"))?;
    Ok(ToolRun {
        ok: requests.saturating_sub(not_2xx),
        errors: not_2xx + socket_errors,
        duration_s,
        mean_us,
        max_us,
        min_us: None,
        p50_us: percentiles[0],
        p90_us: percentiles[1],
        p99_us: percentiles[2],
    })
}

/// Parses `h2load` output.
pub fn parse_h2load(out: &str) -> Result<ToolRun, ParseError> {
    let mut duration_s = None;
    let mut counts = None;
    let mut statuses = None;
    let mut latency = None;
    for line in out.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["finished", "in", secs, ..] => duration_s = Some(number::<f64>(secs)?),
            ["requests:", _total, "total,", rest @ ..] => {
                // N started, N done, N succeeded, N failed, N errored, N timeout. "failed"
                // already holds the 4xx/5xx answers and the errored streams, and "errored"
                // the timeouts: only "failed" is added.
                let failed = rest
                    .windows(2)
                    .find(|w| w[1].trim_end_matches(',') == "failed")
                    .map_or(Ok(0), |w| number::<u64>(w[0]))?;
                counts = Some(failed);
            }
            [
                "status",
                "codes:",
                two,
                "2xx,",
                three,
                "3xx,",
                _four,
                "4xx,",
                _five,
                "5xx",
            ] => {
                // 3xx answers are not failures to h2load, but they are not the object either.
                statuses = Some((number::<u64>(two)?, number::<u64>(three)?));
            }
            ["time", "for", "request:", min, max, mean, ..] => {
                latency = Some((
                    parse_duration_us(min)?,
                    parse_duration_us(max)?,
                    parse_duration_us(mean)?,
                ));
            }
            _ => {}
        }
    }
    let duration_s = duration_s.ok_or(ParseError::Missing("finished in"))?;
    let failed = counts.ok_or(ParseError::Missing("requests:"))?;
    let (ok, redirects) = statuses.ok_or(ParseError::Missing("status codes:"))?;
    let (min_us, max_us, mean_us) = latency.ok_or(ParseError::Missing("time for request:"))?;
    Ok(ToolRun {
        ok,
        errors: failed + redirects,
        duration_s,
        mean_us,
        max_us,
        min_us: Some(min_us),
        p50_us: None,
        p90_us: None,
        p99_us: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRK: &str = "Running 3s test @ http://127.0.0.1:19020/obj-100KiB?size=102400
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.53ms  603.79us   5.70ms   59.02%
    Req/Sec    33.50k     5.07k   40.42k    67.74%
  Latency Distribution
     50%    1.51ms
     75%    1.96ms
     90%    2.35ms
     99%    3.04ms
  103241 requests in 1.00m, 9.87GB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:  33297.15
Transfer/sec:      3.18GB
";

    const H2LOAD: &str = "Application protocol: h2c
finished in 4.00s, 15220.67 req/s, 1.45GB/s
requests: 45662 total, 45662 started, 45662 done, 45652 succeeded, 12 failed, 2 errored, 1 timeout
status codes: 45650 2xx, 2 3xx, 10 4xx, 0 5xx
traffic: 4.36GB (4679442144) total, 478.73KB (490224) headers (space savings 95.15%), 5.77GB (6199500800) data
                     min         max         mean         sd        +/- sd
time for request:     1.74ms      9.45ms      3.96ms      1.26ms    70.22%
time for connect:        0us         0us         0us         0us     0.00%
";

    #[test]
    fn wrk_report_with_percentiles_and_errors() {
        let r = parse_wrk(WRK).unwrap();
        // Socket errors are not in the request count; non-2xx answers are.
        assert_eq!(r.errors, 3 + 4);
        assert_eq!(r.ok, 103_241 - 4);
        assert!((r.duration_s - 60.0).abs() < 1e-9);
        assert!((r.mean_us - 1530.0).abs() < 1e-6);
        assert!((r.max_us - 5700.0).abs() < 1e-6);
        assert_eq!(r.p50_us, Some(1510.0));
        assert_eq!(r.p90_us, Some(2350.0));
        assert_eq!(r.p99_us, Some(3040.0));
        assert_eq!(r.min_us, None);
    }

    #[test]
    fn h2load_report_counts_each_failure_once() {
        let r = parse_h2load(H2LOAD).unwrap();
        assert_eq!(r.ok, 45_650);
        // "failed" holds the ten 4xx and the two errored streams (the timeout among them);
        // the two 3xx are added.
        assert_eq!(r.errors, 12 + 2);
        assert!((r.duration_s - 4.0).abs() < 1e-9);
        assert_eq!(r.min_us, Some(1740.0));
        assert!((r.max_us - 9450.0).abs() < 1e-6);
        assert!((r.mean_us - 3960.0).abs() < 1e-6);
        assert_eq!(r.p99_us, None);
    }

    #[test]
    fn incomplete_reports_name_the_missing_line() {
        assert_eq!(
            parse_wrk("unable to connect to 127.0.0.1:1 Connection refused"),
            Err(ParseError::Missing("Latency"))
        );
        assert_eq!(
            parse_h2load("finished in 1.00s, 0 req/s, 0B/s\n"),
            Err(ParseError::Missing("requests:"))
        );
        assert!(matches!(
            parse_wrk("    Latency     1.53xs  1us   5.70ms   59.02%\n"),
            Err(ParseError::Bad(_))
        ));
    }

    #[test]
    fn durations_in_every_unit() {
        assert_eq!(parse_duration_us("250us"), Ok(250.0));
        assert_eq!(parse_duration_us("1.5ms"), Ok(1500.0));
        assert_eq!(parse_duration_us("2s"), Ok(2e6));
        assert_eq!(parse_duration_us("1m"), Ok(60e6));
        assert!(parse_duration_us("ms").is_err());
        assert!(parse_duration_us("12").is_err());
    }
}
