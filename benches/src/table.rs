//! The comparison table of a benchmark run: one markdown row per (server, protocol, size) with
//! Tiercel's ratios to each peer, and a line per case saying whether the target was met.
//!
//! The runner script collects one JSON object per run (a [`LoadReport`], or a [`Skipped`] record
//! for a case that could not run, such as a peer without h2c) and hands them to
//! `tiercel-bench-table`.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::load::Protocol;
use crate::report::{LoadReport, fmt_ms, fmt_ms_opt, fmt_percent};

/// The server whose figures are divided by the peers'.
pub const SUBJECT: &str = "tiercel";

/// A case that was not measured, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Skipped {
    /// Must contain `server` and `size`.
    pub tags: std::collections::BTreeMap<String, String>,
    /// The protocol of the case.
    pub protocol: Protocol,
    /// Why it was not run (shown in the table).
    pub skipped: String,
}

/// One line of the runner's results file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Entry {
    /// A case that could not run.
    Skipped(Skipped),
    /// A measured run.
    Measured(Box<LoadReport>),
}

impl Entry {
    fn server(&self) -> &str {
        self.tags().get("server").map_or("?", String::as_str)
    }

    fn size(&self) -> String {
        match self.tags().get("size") {
            Some(size) => size.clone(),
            None => match self {
                Entry::Measured(r) if r.requests > 0 => format!("{} B", r.bytes / r.requests),
                _ => "?".to_owned(),
            },
        }
    }

    /// The load generator that measured the entry: the `tool` tag, `tiercel-load` without one
    /// (runs from before the runner drove other tools).
    fn tool(&self) -> &str {
        self.tags()
            .get("tool")
            .map_or("tiercel-load", String::as_str)
    }

    fn protocol(&self) -> Protocol {
        match self {
            Entry::Skipped(s) => s.protocol,
            Entry::Measured(r) => r.protocol,
        }
    }

    fn tags(&self) -> &std::collections::BTreeMap<String, String> {
        match self {
            Entry::Skipped(s) => &s.tags,
            Entry::Measured(r) => &r.tags,
        }
    }

    fn measured(&self) -> Option<&LoadReport> {
        match self {
            Entry::Measured(r) if r.requests > 0 => Some(r),
            _ => None,
        }
    }
}

/// Order of servers within a case: the subject first, then peers alphabetically.
fn server_rank(server: &str) -> (u8, String) {
    let lower = server.to_ascii_lowercase();
    (u8::from(lower != SUBJECT), lower)
}

/// `subject / peer` for throughput, p99 and CPU per request, where both were measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ratio {
    /// Requests/s ratio: above 1 means the subject served more.
    pub rps: f64,
    /// p99 ratio: below 1 means the subject's tail was shorter (`None` when the tool gives no
    /// percentiles).
    pub p99: Option<f64>,
    /// Server CPU per request ratio: below 1 means the subject spent less per exchange.
    pub cpu: Option<f64>,
}

impl Ratio {
    fn cell(&self) -> String {
        let mut cell = format!("req/s {:.2}×", self.rps);
        if let Some(p99) = self.p99 {
            let _ = write!(cell, ", p99 {p99:.2}×");
        }
        if let Some(cpu) = self.cpu {
            let _ = write!(cell, ", CPU/req {cpu:.2}×");
        }
        cell
    }
}

/// The ratio of `subject` to `peer`.
pub fn ratio(subject: &LoadReport, peer: &LoadReport) -> Option<Ratio> {
    if peer.rps <= 0.0 {
        return None;
    }
    let div = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    };
    Some(Ratio {
        rps: subject.rps / peer.rps,
        p99: div(subject.latency_us.p99, peer.latency_us.p99),
        cpu: div(
            subject.server_cpu_us_per_request(),
            peer.server_cpu_us_per_request(),
        ),
    })
}

/// One server in one case: its runs summarised, and how their req/s spread.
#[derive(Debug)]
struct Row {
    /// What the row shows: for measured runs, a report whose every figure is the median of
    /// that figure over the runs (`max` is the maximum); otherwise the first entry (a skip).
    entry: Entry,
    /// Runs of this server in this case (measured or not).
    runs: usize,
    /// Lowest and highest req/s over the measured runs.
    rps_range: Option<(f64, f64)>,
    /// Each measured run's round (its `round` tag, when run-peers gave one), req/s and CPU per
    /// request, in run order: run-peers interleaves the servers, so the runs of one round were
    /// measured seconds apart (see [`paired`]).
    by_round: Vec<(Option<String>, f64, Option<f64>)>,
}

/// The median of `values` (the mean of the two middle ones for an even count).
fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(values[n / 2]),
        _ => Some((values[n / 2 - 1] + values[n / 2]) / 2.0),
    }
}

/// Per-figure medians of several runs of one case; each figure independently, since the run
/// with the median req/s need not have the median tail.
fn summarise(runs: &[&LoadReport]) -> Option<LoadReport> {
    let first = *runs.first()?;
    let med = |f: &dyn Fn(&LoadReport) -> f64| median(runs.iter().map(|r| f(r)).collect());
    let med_opt = |f: &dyn Fn(&LoadReport) -> Option<f64>| {
        let values: Option<Vec<f64>> = runs.iter().map(|r| f(r)).collect();
        median(values?)
    };
    // CPU per request is the median of each run's own figure, which is not what the medians
    // of CPU, duration and request count would give.
    let cpu_per_request = median(
        runs.iter()
            .filter_map(|r| r.server_cpu_us_per_request())
            .collect(),
    );
    let mut out = first.clone();
    out.rps = med(&|r| r.rps)?;
    out.mib_per_s = med(&|r| r.mib_per_s)?;
    out.duration_s = med(&|r| r.duration_s)?;
    let l = &mut out.latency_us;
    l.min = med(&|r| r.latency_us.min)?;
    l.mean = med(&|r| r.latency_us.mean)?;
    l.p50 = med_opt(&|r| r.latency_us.p50);
    l.p90 = med_opt(&|r| r.latency_us.p90);
    l.p99 = med_opt(&|r| r.latency_us.p99);
    l.p999 = med_opt(&|r| r.latency_us.p999);
    l.max = runs.iter().map(|r| r.latency_us.max).fold(0.0, f64::max);
    out.requests = runs.iter().map(|r| r.requests).sum();
    out.bytes = runs.iter().map(|r| r.bytes).sum();
    out.errors = runs.iter().map(|r| r.errors).sum();
    out.warmup_errors = runs.iter().map(|r| r.warmup_errors).sum();
    out.connects = runs.iter().map(|r| r.connects).sum();
    out.client_cpu_percent = med_opt(&|r| r.client_cpu_percent);
    out.server_cpu_percent = med_opt(&|r| r.server_cpu_percent);
    out.machine_cpu_percent = med_opt(&|r| r.machine_cpu_percent);
    // Set even when no run had it: the fallback in `server_cpu_us_per_request` would divide
    // by the summed request count.
    out.server_us_per_request = cpu_per_request;
    if cpu_per_request.is_none() {
        out.server_cpu_percent = None;
    }
    Some(out)
}

impl Row {
    fn new(entries: &[&Entry]) -> Option<Row> {
        let first = *entries.first()?;
        let measured: Vec<&LoadReport> = entries.iter().filter_map(|e| e.measured()).collect();
        let rps_range = measured
            .iter()
            .map(|r| r.rps)
            .fold(None, |acc, x| match acc {
                None => Some((x, x)),
                Some((lo, hi)) => Some((f64::min(lo, x), f64::max(hi, x))),
            });
        let entry = match summarise(&measured) {
            Some(summary) => Entry::Measured(Box::new(summary)),
            None => first.clone(),
        };
        let by_round = measured
            .iter()
            .map(|r| {
                let round = r.tags.get("round").cloned();
                (round, r.rps, r.server_cpu_us_per_request())
            })
            .collect();
        Some(Row {
            entry,
            runs: entries.len(),
            rps_range,
            by_round,
        })
    }

    /// `3 (±1.2%)`: the number of runs and half the req/s range relative to the median.
    fn runs_cell(&self) -> String {
        match (self.rps_range, self.entry.measured()) {
            (Some((lo, hi)), Some(r)) if self.runs > 1 && r.rps > 0.0 => {
                format!("{} (±{:.1}%)", self.runs, (hi - lo) / 2.0 / r.rps * 100.0)
            }
            _ => self.runs.to_string(),
        }
    }
}

/// The subject against a peer round by round: the median, lowest and highest of the per-round
/// req/s ratios, and the median per-round CPU-per-request ratio. On a host whose speed drifts
/// (this VM's moves by ±20 % from one minute to the next), servers measured seconds apart in
/// the same round see the same host, so these ratios scatter far less than the runs do, and
/// their median is the steadier comparison. Runs pair by their `round` tag; in files without
/// one, by position, when both servers have as many measured runs. `None` with fewer than two
/// pairs.
fn paired(subject: &Row, peer: &Row) -> Option<String> {
    let (a, b) = (&subject.by_round, &peer.by_round);
    let tagged = a.iter().chain(b).all(|(round, ..)| round.is_some());
    let pairs: Vec<_> = if tagged {
        a.iter()
            .filter_map(|s| Some((s, b.iter().find(|p| p.0 == s.0)?)))
            .collect()
    } else if a.len() == b.len() {
        a.iter().zip(b).collect()
    } else {
        Vec::new()
    };
    if pairs.len() < 2 {
        return None;
    }
    let rps: Vec<f64> = pairs
        .iter()
        .filter(|(_, p)| p.1 > 0.0)
        .map(|(s, p)| s.1 / p.1)
        .collect();
    let cpu: Vec<f64> = pairs
        .iter()
        .filter_map(|(s, p)| Some(s.2? / p.2.filter(|c| *c > 0.0)?))
        .collect();
    let lo = rps.iter().copied().reduce(f64::min)?;
    let hi = rps.iter().copied().reduce(f64::max)?;
    let mut line = format!(
        "per round: req/s {:.2}× ({lo:.2}–{hi:.2}× over {})",
        median(rps.clone())?,
        rps.len()
    );
    if let Some(cpu) = median(cpu) {
        let _ = write!(line, ", CPU/req {cpu:.2}×");
    }
    Some(line)
}

/// The load generator used its whole core while the server did not: the figure says more
/// about the client than about the server (it is a lower bound for the server).
pub fn client_bound(r: &LoadReport) -> bool {
    r.client_cpu_percent.is_some_and(|c| c >= 90.0)
        && r.server_cpu_percent.is_some_and(|s| s < 90.0)
}

/// What makes two entries the same case: size, protocol and load generator.
type CaseKey = (String, Protocol, String);

/// Groups entries by (size, protocol, tool) in first-seen order, then by server (ranked), one
/// [`Row`] per server.
fn cases(entries: &[Entry]) -> Vec<Vec<Row>> {
    let mut groups: Vec<(CaseKey, Vec<&Entry>)> = Vec::new();
    for e in entries {
        let key = (e.size(), e.protocol(), e.tool().to_owned());
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(e),
            None => groups.push((key, vec![e])),
        }
    }
    groups
        .into_iter()
        .map(|(_, members)| {
            let mut servers: Vec<(String, Vec<&Entry>)> = Vec::new();
            for e in members {
                let name = e.server().to_ascii_lowercase();
                match servers.iter_mut().find(|(n, _)| *n == name) {
                    Some((_, runs)) => runs.push(e),
                    None => servers.push((name, vec![e])),
                }
            }
            servers.sort_by_key(|(name, _)| server_rank(name));
            servers
                .into_iter()
                .filter_map(|(_, runs)| Row::new(&runs))
                .collect()
        })
        .collect()
}

/// The peers appearing anywhere in `entries`, in rank order (the ratio columns).
fn peers(entries: &[Entry]) -> Vec<String> {
    let mut peers: Vec<String> = entries
        .iter()
        .map(|e| e.server().to_owned())
        .filter(|s| !s.eq_ignore_ascii_case(SUBJECT))
        .collect();
    peers.sort_by_key(|s| server_rank(s));
    peers.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
    peers
}

/// Renders the markdown table (and the target lines under it).
pub fn render(entries: &[Entry]) -> String {
    let peers = peers(entries);
    let mut out = String::new();
    out.push_str(
        "| server | protocol | size | tool | req/s | runs | p50 ms | p99 ms | p99.9 ms | max ms | errors | server CPU | server µs/req | load CPU | other CPU |",
    );
    for p in &peers {
        let _ = write!(out, " Tiercel/{} |", display_name(p));
    }
    out.push_str("\n|---|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    out.push_str(&"---|".repeat(peers.len()));
    out.push('\n');
    let mut verdicts = Vec::new();
    let mut any_client_bound = false;
    for case in cases(entries) {
        let subject = find(&case, SUBJECT);
        for row in &case {
            let e = &row.entry;
            let _ = write!(
                out,
                "| {} | {} | {} | {} |",
                display_name(e.server()),
                e.protocol(),
                e.size(),
                e.tool()
            );
            match e {
                Entry::Skipped(s) => {
                    let _ = write!(
                        out,
                        " n/a: {} | {} | | | | | | | | | |",
                        s.skipped, row.runs
                    );
                }
                Entry::Measured(r) => {
                    let l = &r.latency_us;
                    let mark = if client_bound(r) {
                        any_client_bound = true;
                        " ‡"
                    } else {
                        ""
                    };
                    let _ = write!(
                        out,
                        " {:.0}{mark} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                        r.rps,
                        row.runs_cell(),
                        fmt_ms_opt(l.p50),
                        fmt_ms_opt(l.p99),
                        fmt_ms_opt(l.p999),
                        fmt_ms(l.max),
                        r.errors,
                        fmt_percent(r.server_cpu_percent),
                        r.server_cpu_us_per_request()
                            .map_or_else(|| "-".to_owned(), |us| format!("{us:.1}")),
                        fmt_percent(r.client_cpu_percent),
                        fmt_percent(r.other_cpu_percent())
                    );
                }
            }
            let is_subject = e.server().eq_ignore_ascii_case(SUBJECT);
            for p in &peers {
                let cell = match (is_subject, subject, find(&case, p)) {
                    (true, Some(s), Some(peer)) => ratio(s, peer).map(|r| {
                        let rounds = find_row(&case, p).and_then(|peer| paired(row, peer));
                        verdicts.push(verdict(e, p, r, rounds));
                        r.cell()
                    }),
                    _ => None,
                };
                let _ = write!(out, " {} |", cell.unwrap_or_default());
            }
            out.push('\n');
        }
    }
    if any_client_bound {
        out.push_str(
            "\n‡ the load generator used ≥ 90% of its core while the server used < 90% of its own: \
             the figure is bounded by the client, a lower bound for the server.\n",
        );
    }
    if !verdicts.is_empty() {
        out.push_str("\nTarget (req/s ≥ peer and p99 ≤ peer, where the tool gives a p99):\n\n");
        for v in verdicts {
            let _ = writeln!(out, "- {v}");
        }
    }
    out
}

/// The summary of `server`'s measured runs in a case.
fn find<'a>(case: &'a [Row], server: &str) -> Option<&'a LoadReport> {
    find_row(case, server).and_then(|row| row.entry.measured())
}

/// `server`'s row in a case.
fn find_row<'a>(case: &'a [Row], server: &str) -> Option<&'a Row> {
    case.iter()
        .find(|row| row.entry.server().eq_ignore_ascii_case(server))
}

/// One line saying whether the subject met the target against one peer in one case, with the
/// round-by-round comparison when there is one.
fn verdict(e: &Entry, peer: &str, r: Ratio, rounds: Option<String>) -> String {
    let rps_ok = r.rps >= 1.0;
    let p99_ok = r.p99.is_none_or(|p99| p99 <= 1.0);
    let status = match (rps_ok, p99_ok) {
        (true, true) => "met",
        (false, true) => "missed (req/s)",
        (true, false) => "missed (p99)",
        (false, false) => "missed (req/s and p99)",
    };
    let mut line = format!(
        "{} {} ({}) vs {}: {} ({})",
        e.protocol(),
        e.size(),
        e.tool(),
        display_name(peer),
        status,
        r.cell()
    );
    if let Some(rounds) = rounds {
        let _ = write!(line, "; {rounds}");
    }
    line
}

/// `Tiercel`, `nginx`, `Varnish`: how the projects spell themselves.
fn display_name(server: &str) -> String {
    match server.to_ascii_lowercase().as_str() {
        "tiercel" => "Tiercel".to_owned(),
        "nginx" => "nginx".to_owned(),
        "varnish" => "Varnish".to_owned(),
        "trafficserver" => "ATS".to_owned(),
        _ => server.to_owned(),
    }
}

#[cfg(test)]
mod tests;
