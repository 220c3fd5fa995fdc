//! What each `tiercelctl` subcommand sends and prints.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderName, Method, StatusCode};
use serde::Serialize;
use tiercel_cluster::purge::wire::{
    ClusterInfo, MemberAdd, PurgeAccepted, PurgeList, PurgeRequest, PurgeStatus, ServiceRecord,
    TokenCreate, TokenCreated, TokenInfo,
};
use tiercel_cluster::secret::Secret;

use super::args::{
    Cli, ClusterCommand, Command, PurgeArgs, PurgesCommand, ServicesCommand, TokensCommand,
};
use super::client::ApiClient;
use super::{CtlError, percent_path};

/// How often `--wait` asks for the purge's status.
const WAIT_POLL: Duration = Duration::from_millis(100);

/// Runs the command line and returns what to print on stdout.
pub async fn run(cli: Cli) -> Result<String, CtlError> {
    let token = Secret::one_of(
        cli.token.as_deref(),
        "--token/TIERCEL_TOKEN",
        cli.token_file.as_deref(),
        "--token-file",
    )
    .map_err(|e| CtlError::Usage(e.to_string()))?;
    for s in cli
        .servers
        .iter()
        .filter(|s| tiercel_cluster::tls::plain_http_off_loopback(s))
    {
        eprintln!(
            "tiercelctl: warning: {s} is plain HTTP beyond this machine: the token crosses the \
             network in clear text; use https://"
        );
    }
    let client = ApiClient::new(cli.servers, token, cli.timeout, cli.ca_file.as_deref())?;
    let json = cli.json;
    match cli.command {
        Command::Purge(args) => purge(&client, args, json).await,
        Command::Purges(PurgesCommand::List { since, limit }) => {
            purges_list(&client, since, limit, json).await
        }
        Command::Status { id } => {
            let s = status(&client, &id).await?;
            render(json, &s, || human_status(&s))
        }
        Command::Services(cmd) => services(&client, cmd, json).await,
        Command::Tokens(cmd) => tokens(&client, cmd, json).await,
        Command::Cluster { action } => cluster(&client, action, json).await,
    }
}

fn render<T: Serialize>(
    json: bool,
    value: &T,
    human: impl FnOnce() -> String,
) -> Result<String, CtlError> {
    if json {
        let mut s =
            serde_json::to_string_pretty(value).map_err(|e| CtlError::Decode(e.to_string()))?;
        s.push('\n');
        Ok(s)
    } else {
        Ok(human())
    }
}

fn body<T: Serialize>(value: &T) -> Result<Option<Bytes>, CtlError> {
    serde_json::to_vec(value)
        .map(|v| Some(Bytes::from(v)))
        .map_err(|e| CtlError::Decode(e.to_string()))
}

/// The request a `purge` invocation sends (a usage error when it names nothing).
pub fn purge_request(args: &PurgeArgs) -> Result<PurgeRequest, CtlError> {
    let req = PurgeRequest {
        urls: args.urls.clone(),
        prefixes: args.prefixes.clone(),
        tags: args.tags.clone(),
        hosts: args.hosts.clone(),
        all: args.all,
        soft: args.soft,
        service: args.service.clone(),
    };
    if req.urls.is_empty()
        && req.prefixes.is_empty()
        && req.tags.is_empty()
        && req.hosts.is_empty()
        && !req.all
    {
        return Err(CtlError::Usage(
            "purge needs a target: --url, --tag, --prefix, --host or --all".into(),
        ));
    }
    Ok(req)
}

/// A fresh idempotency key: 128 random bits in hex.
pub fn new_idempotency_key() -> String {
    format!("tiercelctl-{:032x}", rand::random::<u128>())
}

async fn purge(client: &ApiClient, args: PurgeArgs, json: bool) -> Result<String, CtlError> {
    let req = purge_request(&args)?;
    //= https://datatracker.ietf.org/doc/html/draft-ietf-httpapi-idempotency-key-header#section-2
    //# The Idempotency-Key request header field can be used to carry idempotency key in order
    //# to make non-idempotent HTTP methods such as POST or PATCH fault-tolerant.
    // One key per invocation: the retry on the next server counts once.
    let key = args
        .idempotency_key
        .clone()
        .unwrap_or_else(new_idempotency_key);
    let headers = [(HeaderName::from_static("idempotency-key"), key)];
    let resp = client
        .send(Method::POST, "/v1/purges", body(&req)?, &headers)
        .await?;
    let accepted: PurgeAccepted = resp.json()?;
    if !args.wait {
        return render(json, &accepted, || {
            format!(
                "purge {} accepted at index {}\n",
                accepted.id, accepted.index
            )
        });
    }
    let deadline = Instant::now() + args.wait_timeout;
    let mut last: Option<PurgeStatus> = None;
    loop {
        match status(client, &accepted.id).await {
            Ok(s) if s.complete => {
                return render(json, &s, || {
                    format!(
                        "purge {} accepted at index {}\npurge {} applied by {}/{} live nodes\n",
                        accepted.id, accepted.index, s.id, s.nodes_applied, s.nodes_live
                    )
                });
            }
            Ok(s) => last = Some(s),
            // The answering node may not know the id yet: keep waiting.
            Err(CtlError::Api { status: 404, .. }) => {}
            Err(e) => return Err(e),
        }
        let now = Instant::now();
        if now >= deadline {
            let (applied, live) = last
                .as_ref()
                .map_or((0, 0), |s| (s.nodes_applied, s.nodes_live));
            return Err(CtlError::WaitTimeout {
                id: accepted.id,
                after: args.wait_timeout,
                applied,
                live,
            });
        }
        // The last poll happens at the deadline, not a poll interval before it.
        tokio::time::sleep(WAIT_POLL.min(deadline - now)).await;
    }
}

async fn status(client: &ApiClient, id: &str) -> Result<PurgeStatus, CtlError> {
    let path = format!("/v1/purges/{}", percent_path(id));
    client.send(Method::GET, &path, None, &[]).await?.json()
}

fn human_status(s: &PurgeStatus) -> String {
    let mut out = format!(
        "purge {} at index {}: applied by {}/{} live nodes ({})\n",
        s.id,
        s.index,
        s.nodes_applied,
        s.nodes_live,
        if s.complete { "complete" } else { "pending" }
    );
    for n in &s.nodes {
        let _ = writeln!(
            out,
            "  {} ({}) applied {} seen {} ms ago{}",
            n.name,
            n.role,
            n.applied_index,
            n.last_seen_ms,
            if n.live { "" } else { " [not live]" }
        );
    }
    if s.nodes_omitted > 0 {
        let _ = writeln!(out, "  … and {} more", s.nodes_omitted);
    }
    out
}

async fn services(
    client: &ApiClient,
    cmd: ServicesCommand,
    json: bool,
) -> Result<String, CtlError> {
    match cmd {
        ServicesCommand::List => {
            let list: Vec<ServiceRecord> = client
                .send(Method::GET, "/v1/services", None, &[])
                .await?
                .json()?;
            render(json, &list, || {
                let mut out = String::new();
                for s in &list {
                    let _ = writeln!(out, "{}\tv{}\t{}", s.name, s.version, hosts(&s.doc));
                }
                out
            })
        }
        ServicesCommand::Get { name } => {
            let path = format!("/v1/services/{}", percent_path(&name));
            let rec: ServiceRecord = client.send(Method::GET, &path, None, &[]).await?.json()?;
            render(json, &rec, || {
                let doc = serde_json::to_string_pretty(&rec.doc).unwrap_or_default();
                format!("service {} version {}\n{doc}\n", rec.name, rec.version)
            })
        }
        ServicesCommand::Put {
            name,
            file,
            if_match,
        } => {
            let text = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())
            } else {
                std::fs::read_to_string(&file)
            }
            .map_err(|e| CtlError::Usage(format!("cannot read {}: {e}", file.display())))?;
            let doc = service_document(&text, &file)?;
            // The check the purge-service and every node make, before anything is sent.
            tiercel_cluster::service::from_json(&name, &doc)
                .map_err(|e| CtlError::Usage(format!("{}: {e}", file.display())))?;
            let path = format!("/v1/services/{}", percent_path(&name));
            let headers = if_match_header(if_match);
            let rec: ServiceRecord = client
                .send(Method::PUT, &path, body(&doc)?, &headers)
                .await?
                .json()?;
            render(json, &rec, || {
                format!("service {} is now version {}\n", rec.name, rec.version)
            })
        }
        ServicesCommand::Delete { name, if_match } => {
            let path = format!("/v1/services/{}", percent_path(&name));
            let resp = client
                .send(Method::DELETE, &path, None, &if_match_header(if_match))
                .await?;
            resp.ok()?;
            match serde_json::from_slice::<ServiceRecord>(&resp.body) {
                Ok(rec) => render(json, &rec, || {
                    format!("service {} deleted (version {})\n", rec.name, rec.version)
                }),
                Err(_) => render(
                    json,
                    &serde_json::json!({ "name": name, "deleted": true }),
                    || format!("service {name} deleted\n"),
                ),
            }
        }
    }
}

/// `If-Match` with the service version as an entity-tag.
fn if_match_header(v: Option<u64>) -> Vec<(HeaderName, String)> {
    //= https://www.rfc-editor.org/rfc/rfc9110#section-13.1.1
    //# If-Match = "*" / #entity-tag
    //= https://www.rfc-editor.org/rfc/rfc9110#section-8.8.3
    //# entity-tag = [ weak ] opaque-tag
    //# opaque-tag = DQUOTE *etagc DQUOTE
    v.map(|v| (http::header::IF_MATCH, format!("\"{v}\"")))
        .into_iter()
        .collect()
}

fn hosts(doc: &serde_json::Value) -> String {
    doc.get("hosts")
        .and_then(|h| h.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|h| h.as_str())
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

async fn tokens(client: &ApiClient, cmd: TokensCommand, json: bool) -> Result<String, CtlError> {
    match cmd {
        TokensCommand::List => {
            let list: Vec<TokenInfo> = client
                .send(Method::GET, "/v1/tokens", None, &[])
                .await?
                .json()?;
            render(json, &list, || human_tokens(&list, crate::types::unix_ms()))
        }
        TokensCommand::Create {
            name,
            scope,
            rate,
            ttl,
            services,
        } => {
            let req = TokenCreate {
                name,
                scope: scope.into(),
                rate_per_sec: rate,
                ttl_secs: ttl.map(|d| d.as_secs().max(1)),
                services,
            };
            let t: TokenCreated = client
                .send(Method::POST, "/v1/tokens", body(&req)?, &[])
                .await?
                .json()?;
            render(json, &t, || {
                let scope = serde_json::to_value(t.scope)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                let expiry = t
                    .expires_ms
                    .map(|e| format!(", expires {}", when(e)))
                    .unwrap_or_default();
                format!(
                    "token {} ({}, scope {}{expiry}); the secret is shown only once:\n{}\n",
                    t.id, t.name, scope, t.token
                )
            })
        }
        TokensCommand::Revoke { id } => {
            let path = format!("/v1/tokens/{}", percent_path(&id));
            client.send(Method::DELETE, &path, None, &[]).await?.ok()?;
            render(
                json,
                &serde_json::json!({ "id": id, "revoked": true }),
                || format!("token {id} revoked\n"),
            )
        }
    }
}

/// A time as an HTTP date (IMF-fixdate, UTC).
fn when(ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_millis(ms);
    httpdate::fmt_http_date(t)
}

fn human_tokens(list: &[TokenInfo], now: u64) -> String {
    let mut out = String::from("ID\tNAME\tSCOPE\tEXPIRES\tLAST USED\n");
    for t in list {
        let expires = match t.expires_ms {
            None => "never".to_string(),
            Some(e) if e <= now => format!("expired {}", when(e)),
            Some(e) => when(e),
        };
        let used = t.last_used_ms.map_or_else(|| "-".to_string(), when);
        let _ = writeln!(out, "{}\t{}\t{}\t{expires}\t{used}", t.id, t.name, t.scope);
    }
    out
}

async fn purges_list(
    client: &ApiClient,
    since: Option<Duration>,
    limit: usize,
    json: bool,
) -> Result<String, CtlError> {
    let since_ms = since.map_or(0, |d| {
        crate::types::unix_ms().saturating_sub(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    });
    let mut all = Vec::new();
    let mut after = String::new();
    while all.len() < limit {
        let page = (limit - all.len()).min(1000);
        let path = format!(
            "/v1/purges?since={since_ms}&after={}&limit={page}",
            percent_path(&after)
        );
        let list: PurgeList = client.send(Method::GET, &path, None, &[]).await?.json()?;
        all.extend(list.purges);
        match list.next_after {
            Some(id) if id != after => after = id,
            _ => break,
        }
    }
    all.truncate(limit);
    render(json, &all, || {
        let mut out = String::new();
        for p in &all {
            let by = p.by.as_deref().unwrap_or("-");
            let _ = writeln!(
                out,
                "{}\t{}\tby {by}\t{}",
                p.id,
                when(p.at_ms),
                describe(&p.purge)
            );
        }
        out
    })
}

/// One line naming what a purge covers.
fn describe(p: &PurgeRequest) -> String {
    let mut parts = Vec::new();
    if p.all {
        parts.push("all".to_string());
    }
    for (kind, items) in [
        ("url", &p.urls),
        ("prefix", &p.prefixes),
        ("tag", &p.tags),
        ("host", &p.hosts),
    ] {
        parts.extend(items.iter().map(|i| format!("{kind}={i}")));
    }
    let mut line = parts.join(" ");
    if p.soft {
        line.push_str(" (soft)");
    }
    line
}

async fn cluster(
    client: &ApiClient,
    action: Option<ClusterCommand>,
    json: bool,
) -> Result<String, CtlError> {
    let resp = match action {
        None => client.send(Method::GET, "/v1/cluster", None, &[]).await?,
        Some(ClusterCommand::Add { id, addr, learner }) => {
            let req = MemberAdd {
                id,
                addr,
                voter: !learner,
            };
            client
                .send(Method::POST, "/v1/cluster/members", body(&req)?, &[])
                .await?
        }
        Some(ClusterCommand::Remove { id }) => {
            client
                .send(
                    Method::DELETE,
                    &format!("/v1/cluster/members/{id}"),
                    None,
                    &[],
                )
                .await?
        }
    };
    if resp.status == StatusCode::NO_CONTENT {
        return Ok(String::new());
    }
    let info: ClusterInfo = resp.json()?;
    render(json, &info, || human_cluster(&info))
}

fn human_cluster(c: &ClusterInfo) -> String {
    let leader = c
        .leader_id
        .map_or_else(|| "none".to_string(), |l| l.to_string());
    let mut out = format!(
        "node {} leader {} term {} commit {} applied {} snapshot {}\n",
        c.node_id, leader, c.term, c.commit_index, c.last_applied, c.snapshot_index
    );
    for m in &c.members {
        let role = if Some(m.id) == c.leader_id {
            "leader"
        } else if m.voter {
            "voter"
        } else {
            "learner"
        };
        let _ = writeln!(out, "  {} {} {}", m.id, m.addr, role);
    }
    out
}

/// A service document from a file: JSON as the API takes it, or TOML as a node's
/// `[[services]]` table is written, whose `tls.cert` and `tls.key` name PEM files (relative to
/// the document's directory) that are read and sent inline.
fn service_document(text: &str, file: &std::path::Path) -> Result<serde_json::Value, CtlError> {
    // A JSON document is an object; anything else is read as TOML.
    if text.trim_start().starts_with('{') {
        return serde_json::from_str(text)
            .map_err(|e| CtlError::Usage(format!("{} is not JSON: {e}", file.display())));
    }
    let table: toml::Table = toml::from_str(text).map_err(|e| {
        let at = e
            .span()
            .map(|s| {
                let line = text[..s.start.min(text.len())].matches('\n').count() + 1;
                format!(" (line {line})")
            })
            .unwrap_or_default();
        CtlError::Usage(format!(
            "{} is not JSON or TOML: {}{at}",
            file.display(),
            e.message().trim_end()
        ))
    })?;
    let mut doc = serde_json::to_value(table)
        .map_err(|e| CtlError::Usage(format!("{}: {e}", file.display())))?;
    if let Some(tls) = doc.get_mut("tls").and_then(|t| t.as_object_mut()) {
        let base = file.parent().unwrap_or(std::path::Path::new("."));
        for key in ["cert", "key"] {
            if let Some(path) = tls.get(key).and_then(|p| p.as_str()) {
                let path = base.join(path);
                let pem = std::fs::read_to_string(&path).map_err(|e| {
                    CtlError::Usage(format!("tls.{key}: cannot read {}: {e}", path.display()))
                })?;
                tls.insert(key.to_owned(), serde_json::Value::String(pem));
            }
        }
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tiercel_cluster::purge::wire::{Member, NodeProgress};

    fn args() -> PurgeArgs {
        PurgeArgs {
            service: None,
            urls: vec![],
            tags: vec![],
            prefixes: vec![],
            hosts: vec![],
            all: false,
            soft: false,
            wait: false,
            wait_timeout: Duration::from_secs(30),
            idempotency_key: None,
        }
    }

    #[test]
    fn a_purge_needs_a_target() {
        assert!(matches!(purge_request(&args()), Err(CtlError::Usage(_))));
        let soft_only = PurgeArgs {
            soft: true,
            ..args()
        };
        assert!(matches!(purge_request(&soft_only), Err(CtlError::Usage(_))));
        let all = PurgeArgs {
            all: true,
            soft: true,
            ..args()
        };
        let r = purge_request(&all).unwrap();
        assert!(r.all && r.soft && r.urls.is_empty());
        let tag = PurgeArgs {
            tags: vec!["t".into()],
            ..args()
        };
        assert_eq!(purge_request(&tag).unwrap().tags, vec!["t"]);
    }

    #[test]
    fn idempotency_keys_are_fresh() {
        let (a, b) = (new_idempotency_key(), new_idempotency_key());
        assert_ne!(a, b);
        assert_eq!(a.len(), "tiercelctl-".len() + 32);
    }

    #[test]
    fn human_output_lines() {
        let s = PurgeStatus {
            id: "7".into(),
            index: 7,
            nodes_applied: 1,
            nodes_live: 2,
            complete: false,
            nodes_omitted: 0,
            nodes: vec![
                NodeProgress {
                    name: "e1".into(),
                    role: "edge".into(),
                    applied_index: 9,
                    last_seen_ms: 120,
                    live: true,
                },
                NodeProgress {
                    name: "s1".into(),
                    role: "shield".into(),
                    applied_index: 3,
                    last_seen_ms: 9000,
                    live: false,
                },
            ],
        };
        assert_eq!(
            human_status(&s),
            "purge 7 at index 7: applied by 1/2 live nodes (pending)\n  e1 (edge) applied 9 seen 120 ms ago\n  s1 (shield) applied 3 seen 9000 ms ago [not live]\n"
        );
        let c = ClusterInfo {
            node_id: 2,
            leader_id: Some(1),
            term: 3,
            commit_index: 40,
            last_applied: 40,
            snapshot_index: 0,
            members: vec![
                Member {
                    id: 1,
                    addr: "127.0.0.1:1".into(),
                    voter: true,
                },
                Member {
                    id: 2,
                    addr: "127.0.0.1:2".into(),
                    voter: true,
                },
                Member {
                    id: 4,
                    addr: "127.0.0.1:4".into(),
                    voter: false,
                },
            ],
        };
        assert_eq!(
            human_cluster(&c),
            "node 2 leader 1 term 3 commit 40 applied 40 snapshot 0\n  1 127.0.0.1:1 leader\n  2 127.0.0.1:2 voter\n  4 127.0.0.1:4 learner\n"
        );
        assert_eq!(hosts(&serde_json::json!({"hosts": ["a", "b"]})), "a,b");
        assert_eq!(hosts(&serde_json::json!({})), "");
    }
}
