//! The comparison table of a benchmark run: one markdown row per (server, protocol, size) with
//! Tiercel's ratios to each peer, and a line per case saying whether the target was met.
//!
//! The runner script collects one JSON object per run (a [`LoadReport`], or a [`Skipped`] record
//! for a case that could not run, such as a peer without h2c) and hands them to
//! `tiercel-bench-table`.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::load::Protocol;
use crate::report::{LoadReport, fmt_ms, fmt_percent};

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

/// `subject / peer` for throughput and p99, when both were measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ratio {
    /// Requests/s ratio: above 1 means the subject served more.
    pub rps: f64,
    /// p99 ratio: below 1 means the subject's tail was shorter.
    pub p99: f64,
}

/// The ratio of `subject` to `peer`.
pub fn ratio(subject: &LoadReport, peer: &LoadReport) -> Option<Ratio> {
    if peer.rps <= 0.0 || peer.latency_us.p99 <= 0.0 {
        return None;
    }
    Some(Ratio {
        rps: subject.rps / peer.rps,
        p99: subject.latency_us.p99 / peer.latency_us.p99,
    })
}

/// One server in one case: the representative run and how its repeats spread.
#[derive(Debug)]
struct Row<'a> {
    /// The run shown: the one with the median req/s (the lower middle for an even count), or
    /// the first entry when nothing was measured.
    entry: &'a Entry,
    /// Runs of this server in this case (measured or not).
    runs: usize,
    /// Lowest and highest req/s over the measured runs.
    rps_range: Option<(f64, f64)>,
    /// Failed exchanges over all runs.
    errors: u64,
}

impl<'a> Row<'a> {
    fn new(entries: Vec<&'a Entry>) -> Option<Row<'a>> {
        let first = *entries.first()?;
        let mut measured: Vec<&LoadReport> = entries.iter().filter_map(|e| e.measured()).collect();
        measured.sort_by(|a, b| a.rps.total_cmp(&b.rps));
        let median = measured.get(measured.len().saturating_sub(1) / 2).copied();
        let entry = match median {
            Some(m) => entries
                .iter()
                .copied()
                .find(|e| e.measured().is_some_and(|r| std::ptr::eq(r, m)))
                .unwrap_or(first),
            None => first,
        };
        let rps_range = match (measured.first(), measured.last()) {
            (Some(lo), Some(hi)) => Some((lo.rps, hi.rps)),
            _ => None,
        };
        let errors = entries
            .iter()
            .map(|e| match e {
                Entry::Measured(r) => r.errors,
                Entry::Skipped(_) => 0,
            })
            .sum();
        Some(Row {
            entry,
            runs: entries.len(),
            rps_range,
            errors,
        })
    }

    /// `3 (±1.2%)`: the number of runs and half the req/s range relative to the shown run.
    fn runs_cell(&self) -> String {
        match (self.rps_range, self.entry.measured()) {
            (Some((lo, hi)), Some(r)) if self.runs > 1 && r.rps > 0.0 => {
                format!("{} (±{:.1}%)", self.runs, (hi - lo) / 2.0 / r.rps * 100.0)
            }
            _ => self.runs.to_string(),
        }
    }
}

/// The load generator used its whole core while the server did not: the figure says more
/// about the client than about the server (it is a lower bound for the server).
pub fn client_bound(r: &LoadReport) -> bool {
    r.client_cpu_percent.is_some_and(|c| c >= 90.0)
        && r.server_cpu_percent.is_some_and(|s| s < 90.0)
}

/// Groups entries by (size, protocol) in first-seen order, then by server (ranked), one
/// [`Row`] per server.
fn cases(entries: &[Entry]) -> Vec<Vec<Row<'_>>> {
    let mut groups: Vec<((String, Protocol), Vec<&Entry>)> = Vec::new();
    for e in entries {
        let key = (e.size(), e.protocol());
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
                .filter_map(|(_, runs)| Row::new(runs))
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
        "| server | protocol | size | req/s | runs | p50 ms | p99 ms | p99.9 ms | max ms | errors | server CPU | load CPU | other CPU |",
    );
    for p in &peers {
        let _ = write!(out, " Tiercel/{} |", display_name(p));
    }
    out.push_str("\n|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    out.push_str(&"---|".repeat(peers.len()));
    out.push('\n');
    let mut verdicts = Vec::new();
    let mut any_client_bound = false;
    for case in cases(entries) {
        let subject = find(&case, SUBJECT);
        for row in &case {
            let e = row.entry;
            let _ = write!(
                out,
                "| {} | {} | {} |",
                display_name(e.server()),
                e.protocol(),
                e.size()
            );
            match e {
                Entry::Skipped(s) => {
                    let _ = write!(out, " n/a: {} | {} | | | | | | | | |", s.skipped, row.runs);
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
                        " {:.0}{mark} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                        r.rps,
                        row.runs_cell(),
                        fmt_ms(l.p50),
                        fmt_ms(l.p99),
                        fmt_ms(l.p999),
                        fmt_ms(l.max),
                        row.errors,
                        fmt_percent(r.server_cpu_percent),
                        fmt_percent(r.client_cpu_percent),
                        fmt_percent(r.other_cpu_percent())
                    );
                }
            }
            let is_subject = e.server().eq_ignore_ascii_case(SUBJECT);
            for p in &peers {
                let cell = match (is_subject, subject, find(&case, p)) {
                    (true, Some(s), Some(peer)) => ratio(s, peer).map(|r| {
                        verdicts.push(verdict(e, p, r));
                        format!("req/s {:.2}×, p99 {:.2}×", r.rps, r.p99)
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
        out.push_str("\nTarget (req/s ≥ peer and p99 ≤ peer):\n\n");
        for v in verdicts {
            let _ = writeln!(out, "- {v}");
        }
    }
    out
}

/// The representative measured run of `server` in a case.
fn find<'a>(case: &[Row<'a>], server: &str) -> Option<&'a LoadReport> {
    case.iter()
        .find(|row| row.entry.server().eq_ignore_ascii_case(server))
        .and_then(|row| row.entry.measured())
}

/// One line saying whether the subject met the target against one peer in one case.
fn verdict(e: &Entry, peer: &str, r: Ratio) -> String {
    let rps_ok = r.rps >= 1.0;
    let p99_ok = r.p99 <= 1.0;
    let status = match (rps_ok, p99_ok) {
        (true, true) => "met",
        (false, true) => "missed (req/s)",
        (true, false) => "missed (p99)",
        (false, false) => "missed (req/s and p99)",
    };
    format!(
        "{} {} vs {}: {} (req/s {:.2}×, p99 {:.2}×)",
        e.protocol(),
        e.size(),
        display_name(peer),
        status,
        r.rps,
        r.p99
    )
}

/// `Tiercel`, `nginx`, `Varnish`: how the projects spell themselves.
fn display_name(server: &str) -> String {
    match server.to_ascii_lowercase().as_str() {
        "tiercel" => "Tiercel".to_owned(),
        "nginx" => "nginx".to_owned(),
        "varnish" => "Varnish".to_owned(),
        _ => server.to_owned(),
    }
}

#[cfg(test)]
mod tests;
