//! `tiercel-bench-table`: reads `tiercel-load --json` lines (and `{"skipped": ...}` records)
//! from files or stdin and prints the markdown comparison table with Tiercel's ratios.
//! `--other-cpu` instead prints, for one report on stdin, the percent of a core other processes
//! used during it (what `run-peers.sh` checks before keeping a run).

use std::io::Read;

use anyhow::Context;
use tiercel_benches::report::LoadReport;
use tiercel_benches::table::{Entry, render};

fn main() -> anyhow::Result<()> {
    let paths: Vec<String> = std::env::args().skip(1).collect();
    if paths.iter().any(|p| p == "-h" || p == "--help") {
        println!("usage: tiercel-bench-table [RESULTS.jsonl ...]   (stdin when no file is given)");
        println!("       tiercel-bench-table --other-cpu < REPORT.json");
        return Ok(());
    }
    if paths.iter().any(|p| p == "--other-cpu") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading stdin")?;
        let report: LoadReport =
            serde_json::from_str(text.trim()).context("stdin: not a load report")?;
        println!("{:.0}", report.other_cpu_percent().unwrap_or(0.0));
        return Ok(());
    }
    let mut text = String::new();
    if paths.is_empty() {
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading stdin")?;
    } else {
        for path in &paths {
            text.push_str(
                &std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?,
            );
            text.push('\n');
        }
    }
    let mut entries = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let entry: Entry = serde_json::from_str(line)
            .with_context(|| format!("line {}: not a load report or skip record", n + 1))?;
        entries.push(entry);
    }
    print!("{}", render(&entries));
    Ok(())
}
