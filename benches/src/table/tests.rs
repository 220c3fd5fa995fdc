use std::collections::BTreeMap;

use super::*;
use crate::report::Latency;

fn report(server: &str, protocol: Protocol, size: &str, rps: f64, p99_us: f64) -> Entry {
    let tags: BTreeMap<String, String> = [
        ("server".to_owned(), server.to_owned()),
        ("size".to_owned(), size.to_owned()),
    ]
    .into();
    Entry::Measured(Box::new(LoadReport {
        tags,
        url: "http://127.0.0.1:1/".to_owned(),
        protocol,
        connections: 32,
        streams: 1,
        warmup_s: 2.0,
        duration_s: 10.0,
        requests: (rps * 10.0) as u64,
        rps,
        bytes: 0,
        mib_per_s: 0.0,
        latency_us: Latency {
            min: 10.0,
            mean: 100.0,
            p50: Some(100.0),
            p90: Some(150.0),
            p99: Some(p99_us),
            p999: Some(p99_us * 2.0),
            max: p99_us * 4.0,
        },
        errors: 0,
        error_kinds: BTreeMap::new(),
        warmup_requests: 1,
        warmup_errors: 0,
        connects: 0,
        client_cpu_percent: Some(80.0),
        server_cpu_percent: Some(100.0),
        machine_cpu_percent: Some(185.0),
        server_us_per_request: None,
    }))
}

fn skipped(server: &str, protocol: Protocol, size: &str, why: &str) -> Entry {
    Entry::Skipped(Skipped {
        tags: [
            ("server".to_owned(), server.to_owned()),
            ("size".to_owned(), size.to_owned()),
        ]
        .into(),
        protocol,
        skipped: why.to_owned(),
    })
}

#[test]
fn renders_rows_ratios_and_verdicts() {
    let entries = vec![
        report("nginx", Protocol::H1, "1KiB", 50_000.0, 1000.0),
        report("varnish", Protocol::H1, "1KiB", 40_000.0, 2000.0),
        report("tiercel", Protocol::H1, "1KiB", 60_000.0, 1500.0),
        report("nginx", Protocol::H2, "1KiB", 80_000.0, 4000.0),
        skipped("varnish", Protocol::H2, "1KiB", "no h2c"),
        report("tiercel", Protocol::H2, "1KiB", 40_000.0, 8000.0),
    ];
    let table = render(&entries);
    let want = "\
| server | protocol | size | tool | req/s | runs | p50 ms | p99 ms | p99.9 ms | max ms | errors | server CPU | server µs/req | load CPU | other CPU | Tiercel/nginx | Tiercel/Varnish |
|---|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|---|
| Tiercel | h1 | 1KiB | tiercel-load | 60000 | 1 | 0.100 | 1.50 | 3.00 | 6.00 | 0 | 100% | 16.7 | 80% | 5% | req/s 1.20×, p99 1.50×, CPU/req 0.83× | req/s 1.50×, p99 0.75×, CPU/req 0.67× |
| nginx | h1 | 1KiB | tiercel-load | 50000 | 1 | 0.100 | 1.00 | 2.00 | 4.00 | 0 | 100% | 20.0 | 80% | 5% |  |  |
| Varnish | h1 | 1KiB | tiercel-load | 40000 | 1 | 0.100 | 2.00 | 4.00 | 8.00 | 0 | 100% | 25.0 | 80% | 5% |  |  |
| Tiercel | h2 | 1KiB | tiercel-load | 40000 | 1 | 0.100 | 8.00 | 16.0 | 32.0 | 0 | 100% | 25.0 | 80% | 5% | req/s 0.50×, p99 2.00×, CPU/req 2.00× |  |
| nginx | h2 | 1KiB | tiercel-load | 80000 | 1 | 0.100 | 4.00 | 8.00 | 16.0 | 0 | 100% | 12.5 | 80% | 5% |  |  |
| Varnish | h2 | 1KiB | tiercel-load | n/a: no h2c | 1 | | | | | | | | | |  |  |

Target (req/s ≥ peer and p99 ≤ peer, where the tool gives a p99):

- h1 1KiB (tiercel-load) vs nginx: missed (p99) (req/s 1.20×, p99 1.50×, CPU/req 0.83×)
- h1 1KiB (tiercel-load) vs Varnish: met (req/s 1.50×, p99 0.75×, CPU/req 0.67×)
- h2 1KiB (tiercel-load) vs nginx: missed (req/s and p99) (req/s 0.50×, p99 2.00×, CPU/req 2.00×)
";
    assert_eq!(table, want, "\n{table}");
}

#[test]
fn a_missing_subject_leaves_ratio_cells_empty() {
    let entries = vec![
        skipped("tiercel", Protocol::H1, "1MiB", "edge binary not built"),
        report("nginx", Protocol::H1, "1MiB", 1000.0, 50_000.0),
    ];
    let table = render(&entries);
    assert!(
        table.contains(
            "| Tiercel | h1 | 1MiB | tiercel-load | n/a: edge binary not built | 1 | | | | | | | | | |  |\n"
        ),
        "{table}"
    );
    assert!(!table.contains("Target"), "{table}");
}

#[test]
fn entries_parse_back_from_json_lines() {
    let measured = report("nginx", Protocol::H1, "1KiB", 1.0, 1.0);
    let skip = skipped("varnish", Protocol::H2, "1KiB", "no h2c");
    let lines = [
        serde_json::to_string(&measured).unwrap(),
        r#"{"tags":{"server":"varnish","size":"1KiB"},"protocol":"h2","skipped":"no h2c"}"#
            .to_owned(),
    ];
    let parsed: Vec<Entry> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(parsed, vec![measured, skip]);
}

#[test]
fn ratio_refuses_zero_denominators() {
    let Entry::Measured(a) = report("tiercel", Protocol::H1, "1KiB", 10.0, 10.0) else {
        unreachable!()
    };
    let Entry::Measured(zero) = report("nginx", Protocol::H1, "1KiB", 0.0, 10.0) else {
        unreachable!()
    };
    assert_eq!(ratio(&a, &zero), None);
    assert_eq!(
        ratio(&a, &a),
        Some(Ratio {
            rps: 1.0,
            p99: Some(1.0),
            cpu: Some(1.0)
        })
    );
}

#[test]
fn size_falls_back_to_bytes_per_request() {
    let Entry::Measured(mut r) = report("nginx", Protocol::H1, "x", 1.0, 1.0) else {
        unreachable!()
    };
    r.tags.remove("size");
    r.requests = 4;
    r.bytes = 4096;
    assert_eq!(Entry::Measured(r).size(), "1024 B");
}

#[test]
fn repeated_runs_show_per_figure_medians_and_the_spread() {
    let entries = vec![
        report("tiercel", Protocol::H1, "1KiB", 100.0, 3000.0),
        report("nginx", Protocol::H1, "1KiB", 90.0, 1000.0),
        report("tiercel", Protocol::H1, "1KiB", 110.0, 1000.0),
        report("nginx", Protocol::H1, "1KiB", 110.0, 1000.0),
        report("tiercel", Protocol::H1, "1KiB", 120.0, 2000.0),
        report("nginx", Protocol::H1, "1KiB", 100.0, 1000.0),
    ];
    let table = render(&entries);
    // Median req/s 110 (range 100..120: ±9.1 %); median p99 2 ms, although the 110 req/s run
    // had 1 ms; p99.9 median 4 ms; max is the largest of the runs (12 ms).
    assert!(
        table.contains(
            "| Tiercel | h1 | 1KiB | tiercel-load | 110 | 3 (±9.1%) | 0.100 | 2.00 | 4.00 | 12.0 | 0 | 100% | 9090.9 | 80% | 5% |"
        ),
        "{table}"
    );
    assert!(
        table.contains("| nginx | h1 | 1KiB | tiercel-load | 100 | 3 (±10.0%) |"),
        "{table}"
    );
    // CPU per request is the median of the runs' own figures (1e6 / req/s at 100 %).
    assert!(
        table.contains("| req/s 1.10×, p99 2.00×, CPU/req 0.91× |"),
        "{table}"
    );
    assert_eq!(table.matches("| Tiercel |").count(), 1, "{table}");
}

#[test]
fn an_even_number_of_runs_averages_the_middle_and_errors_add_up() {
    let mut entries = vec![
        report("nginx", Protocol::H2, "1MiB", 300.0, 1000.0),
        report("nginx", Protocol::H2, "1MiB", 100.0, 3000.0),
    ];
    if let Entry::Measured(r) = &mut entries[0] {
        r.errors = 2;
    }
    if let Entry::Measured(r) = &mut entries[1] {
        r.errors = 3;
    }
    let table = render(&entries);
    assert!(
        table.contains(
            "| nginx | h2 | 1MiB | tiercel-load | 200 | 2 (±50.0%) | 0.100 | 2.00 | 4.00 | 12.0 | 5 |"
        ),
        "{table}"
    );
}

#[test]
fn median_of_nothing_one_odd_and_even() {
    assert_eq!(median(vec![]), None);
    assert_eq!(median(vec![3.0]), Some(3.0));
    assert_eq!(median(vec![5.0, 1.0, 3.0]), Some(3.0));
    assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), Some(2.5));
}

#[test]
fn cpu_medians_need_every_run_to_have_the_figure() {
    let mut a = report("nginx", Protocol::H1, "1KiB", 1.0, 1.0);
    let b = report("nginx", Protocol::H1, "1KiB", 1.0, 1.0);
    if let Entry::Measured(r) = &mut a {
        r.server_cpu_percent = None;
    }
    let (Entry::Measured(a), Entry::Measured(b)) = (a, b) else {
        unreachable!()
    };
    let s = summarise(&[&a, &b]).unwrap();
    assert_eq!(s.server_cpu_percent, None);
    assert_eq!(s.client_cpu_percent, Some(80.0));
    assert_eq!(s.requests, a.requests + b.requests);
    assert_eq!(summarise(&[]), None);
}

#[test]
fn client_bound_runs_are_marked() {
    let mut e = report("nginx", Protocol::H2, "1MiB", 460.0, 371_000.0);
    if let Entry::Measured(r) = &mut e {
        r.client_cpu_percent = Some(99.0);
        r.server_cpu_percent = Some(36.0);
        assert!(client_bound(r));
        r.server_cpu_percent = Some(95.0);
        assert!(!client_bound(r));
        r.server_cpu_percent = Some(36.0);
    }
    let table = render(&[e]);
    assert!(
        table.contains("| nginx | h2 | 1MiB | tiercel-load | 460 ‡ | 1 |"),
        "{table}"
    );
    assert!(
        table.contains("\n‡ the load generator used ≥ 90% of its core"),
        "{table}"
    );
    let plain = render(&[report("nginx", Protocol::H2, "1MiB", 460.0, 1.0)]);
    assert!(!plain.contains('‡'), "{plain}");
}

#[test]
fn each_tool_is_its_own_case_and_missing_percentiles_show_as_dashes() {
    let with_tool = |e: Entry, tool: &str| match e {
        Entry::Measured(mut r) => {
            r.tags.insert("tool".to_owned(), tool.to_owned());
            if tool == "h2load" {
                r.latency_us.p50 = None;
                r.latency_us.p90 = None;
                r.latency_us.p99 = None;
                r.latency_us.p999 = None;
            }
            Entry::Measured(r)
        }
        other => other,
    };
    let entries = vec![
        with_tool(
            report("tiercel", Protocol::H2, "100KiB", 200.0, 1000.0),
            "h2load",
        ),
        with_tool(
            report("nginx", Protocol::H2, "100KiB", 100.0, 1000.0),
            "h2load",
        ),
        report("tiercel", Protocol::H2, "100KiB", 100.0, 1000.0),
        report("nginx", Protocol::H2, "100KiB", 100.0, 3000.0),
    ];
    let table = render(&entries);
    assert!(
        table.contains("| Tiercel | h2 | 100KiB | h2load | 200 | 1 | - | - | - | 4.00 | 0 | 100% | 5000.0 | 80% | 5% | req/s 2.00×, CPU/req 0.50× |"),
        "{table}"
    );
    assert!(
        table.contains("| Tiercel | h2 | 100KiB | tiercel-load | 100 | 1 |"),
        "{table}"
    );
    assert!(
        table.contains("- h2 100KiB (h2load) vs nginx: met (req/s 2.00×, CPU/req 0.50×)"),
        "{table}"
    );
    assert!(
        table.contains(
            "- h2 100KiB (tiercel-load) vs nginx: met (req/s 1.00×, p99 0.33×, CPU/req 1.00×)"
        ),
        "{table}"
    );
}

#[test]
fn verdicts_add_the_round_by_round_ratios_when_the_runs_pair_up() {
    // Three interleaved rounds on a host that slows down between them: each round compares the
    // two servers at one speed.
    let entries = vec![
        report("tiercel", Protocol::H1, "1KiB", 36_000.0, 1000.0),
        report("nginx", Protocol::H1, "1KiB", 30_000.0, 1000.0),
        report("tiercel", Protocol::H1, "1KiB", 30_000.0, 1000.0),
        report("nginx", Protocol::H1, "1KiB", 24_000.0, 1000.0),
        report("tiercel", Protocol::H1, "1KiB", 24_000.0, 1000.0),
        report("nginx", Protocol::H1, "1KiB", 20_000.0, 1000.0),
    ];
    let table = render(&entries);
    assert!(
        table.contains(
            "- h1 1KiB (tiercel-load) vs nginx: met (req/s 1.25×, p99 1.00×, CPU/req 0.80×); \
             per round: req/s 1.20× (1.20–1.25× over 3), CPU/req 0.83×\n"
        ),
        "{table}"
    );
    // Untagged runs of unequal counts do not pair.
    let table = render(&entries[..5]);
    assert!(!table.contains("per round"), "{table}");
}

#[test]
fn runs_tagged_with_their_round_pair_by_round_even_when_one_is_missing() {
    let tagged = |server: &str, rps: f64, round: &str| {
        let mut e = report(server, Protocol::H1, "1KiB", rps, 1000.0);
        if let Entry::Measured(r) = &mut e {
            r.tags.insert("round".to_owned(), round.to_owned());
        }
        e
    };
    // The subject's round 2 failed: its round 3 pairs with the peer's round 3 (1.5×), not
    // with the peer's round 2 (which would read 3.0×).
    let entries = vec![
        tagged("tiercel", 30_000.0, "1"),
        tagged("nginx", 20_000.0, "1"),
        tagged("nginx", 10_000.0, "2"),
        tagged("tiercel", 30_000.0, "3"),
        tagged("nginx", 20_000.0, "3"),
    ];
    let table = render(&entries);
    assert!(
        table.contains("per round: req/s 1.50× (1.50–1.50× over 2)"),
        "{table}"
    );
}
