//! `openapi.yaml` documents exactly the router's (method, path) table, both ways, and says for
//! each operation which scope it needs and whether the leader answers it.

use std::collections::{BTreeMap, BTreeSet};

use tiercel_cluster::purge::wire::TokenScope;
use tiercel_purge::api::routes::{Access, ROUTES};

const METHODS: &[&str] = &["get", "put", "post", "delete", "patch", "head", "options"];

/// (method, path) → summary, from the `paths:` section of the document (two-space YAML).
fn documented(yaml: &str) -> BTreeMap<(String, String), String> {
    let mut out = BTreeMap::new();
    let mut in_paths = false;
    let mut path: Option<String> = None;
    let mut op: Option<(String, String)> = None;
    for line in yaml.lines() {
        if !line.starts_with(' ') && !line.is_empty() {
            in_paths = line.trim_end() == "paths:";
            continue;
        }
        if !in_paths {
            continue;
        }
        if let Some(p) = line.strip_prefix("  ").filter(|l| l.starts_with('/')) {
            path = Some(p.trim_end().trim_end_matches(':').to_string());
            op = None;
        } else if let Some(m) = line.strip_prefix("    ").and_then(|l| l.strip_suffix(':'))
            && METHODS.contains(&m)
        {
            let key = (m.to_uppercase(), path.clone().unwrap_or_default());
            out.insert(key.clone(), String::new());
            op = Some(key);
        } else if let Some(s) = line.strip_prefix("      summary: ")
            && let Some(key) = &op
        {
            out.insert(key.clone(), s.to_string());
        }
    }
    out
}

fn scope(s: TokenScope) -> &'static str {
    match s {
        TokenScope::Follow => "follow",
        TokenScope::Purge => "purge",
        TokenScope::Admin => "admin",
    }
}

#[test]
fn the_openapi_document_matches_the_router() {
    let yaml = include_str!("../openapi.yaml");
    assert!(yaml.starts_with("openapi: 3.1.0\n"));
    let doc = documented(yaml);
    let routes: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|r| (r.method.as_str().to_string(), r.path.to_string()))
        .collect();
    let documented_ops: BTreeSet<(String, String)> = doc.keys().cloned().collect();
    let undocumented: Vec<_> = routes.difference(&documented_ops).collect();
    let unrouted: Vec<_> = documented_ops.difference(&routes).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from openapi.yaml: {undocumented:?}"
    );
    assert!(
        unrouted.is_empty(),
        "openapi.yaml documents routes the router lacks: {unrouted:?}"
    );
    for r in ROUTES {
        let summary = &doc[&(r.method.as_str().to_string(), r.path.to_string())];
        assert!(
            !summary.is_empty(),
            "{} {} has no summary",
            r.method,
            r.path
        );
        if let Access::Token(s) = r.access {
            let want = format!("scope {}", scope(s));
            assert!(
                summary.contains(&want),
                "{} {}: summary {summary:?} lacks {want:?}",
                r.method,
                r.path
            );
        }
        assert_eq!(
            summary.contains("leader)") || summary.contains("; leader"),
            r.on_leader,
            "{} {}: summary {summary:?} must say whether the leader answers",
            r.method,
            r.path
        );
    }
}

#[test]
fn the_parser_sees_what_it_should() {
    let yaml = "openapi: 3.1.0\npaths:\n  /a:\n    get:\n      summary: A\n    post:\n      summary: B\n  /b/{x}:\n    parameters: []\n    delete:\n      summary: C\ncomponents:\n  x:\n    get:\n";
    let doc = documented(yaml);
    let keys: Vec<(String, String)> = doc.keys().cloned().collect();
    assert_eq!(
        keys,
        [
            ("DELETE".to_string(), "/b/{x}".to_string()),
            ("GET".to_string(), "/a".to_string()),
            ("POST".to_string(), "/a".to_string())
        ]
    );
    assert_eq!(doc[&("POST".to_string(), "/a".to_string())], "B");
}
