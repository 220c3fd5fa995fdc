//! The route table: every (method, path template) the service answers, who may call it, and
//! whether the leader must answer it. The OpenAPI document is checked against [`ROUTES`].

use http::Method;
use tiercel_cluster::purge::wire::TokenScope;

/// What a route does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteId {
    /// `GET /healthz`.
    Healthz,
    /// `GET /readyz`.
    Readyz,
    /// `POST /v1/purges`.
    PurgeCreate,
    /// `GET /v1/purges`: the audit trail.
    PurgeList,
    /// `GET /v1/purges/{id}`.
    PurgeStatus,
    /// `GET /v1/log`.
    Log,
    /// `POST /v1/followers/report`.
    FollowerReport,
    /// `GET /v1/services`.
    ServiceList,
    /// `GET /v1/services/{name}`.
    ServiceGet,
    /// `PUT /v1/services/{name}`.
    ServicePut,
    /// `DELETE /v1/services/{name}`.
    ServiceDelete,
    /// `POST /v1/tokens`.
    TokenCreate,
    /// `GET /v1/tokens`.
    TokenList,
    /// `DELETE /v1/tokens/{id}`.
    TokenDelete,
    /// `GET /v1/cluster`.
    ClusterGet,
    /// `POST /v1/cluster/members`.
    MemberAdd,
    /// `DELETE /v1/cluster/members/{id}`.
    MemberRemove,
    /// `POST /raft/append`.
    RaftAppend,
    /// `POST /raft/vote`.
    RaftVote,
    /// `POST /raft/snapshot`.
    RaftSnapshot,
    /// `POST /raft/import`: token imports proposed by a non-leader.
    RaftImport,
    /// `GET /raft/usage`: when this member last saw each token used.
    RaftUsage,
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone.
    Public,
    /// A bearer token with at least this scope.
    Token(TokenScope),
    /// Another member, proven by the cluster secret (never open: without a secret, nobody).
    Cluster,
}

/// One row of the table.
#[derive(Debug, Clone)]
pub struct Route {
    /// HTTP method.
    pub method: Method,
    /// Path template; `{name}` matches one non-empty segment.
    pub path: &'static str,
    /// What it does.
    pub id: RouteId,
    /// Who may call it.
    pub access: Access,
    /// Whether a follower proxies it to the leader.
    pub on_leader: bool,
}

/// Which rate limit a request counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateClass {
    /// The token's API rate (`--rate-limit`, or the token's own).
    Api,
    /// The token's follower-protocol rate (`--follow-rate-limit`): log streams and reports.
    /// Its volume grows with the fleet, which usually shares one `follow` token, so the API
    /// rate would throttle large fleets; a separate, larger budget still bounds abuse.
    Follow,
}

impl Route {
    /// The rate limit this route counts against.
    pub fn rate_class(&self) -> RateClass {
        match self.id {
            RouteId::Log | RouteId::FollowerReport => RateClass::Follow,
            _ => RateClass::Api,
        }
    }
}

const fn r(
    method: Method,
    path: &'static str,
    id: RouteId,
    access: Access,
    on_leader: bool,
) -> Route {
    Route {
        method,
        path,
        id,
        access,
        on_leader,
    }
}

use Access::{Cluster, Public, Token};
use TokenScope::{Admin, Follow, Purge};

/// Every route.
pub static ROUTES: &[Route] = &[
    r(Method::GET, "/healthz", RouteId::Healthz, Public, false),
    r(Method::GET, "/readyz", RouteId::Readyz, Public, false),
    r(
        Method::POST,
        "/v1/purges",
        RouteId::PurgeCreate,
        Token(Purge),
        true,
    ),
    r(
        Method::GET,
        "/v1/purges",
        RouteId::PurgeList,
        Token(Purge),
        false,
    ),
    r(
        Method::GET,
        "/v1/purges/{id}",
        RouteId::PurgeStatus,
        Token(Purge),
        true,
    ),
    r(Method::GET, "/v1/log", RouteId::Log, Token(Follow), false),
    r(
        Method::POST,
        "/v1/followers/report",
        RouteId::FollowerReport,
        Token(Follow),
        true,
    ),
    r(
        Method::GET,
        "/v1/services",
        RouteId::ServiceList,
        Token(Purge),
        false,
    ),
    r(
        Method::GET,
        "/v1/services/{name}",
        RouteId::ServiceGet,
        Token(Purge),
        false,
    ),
    r(
        Method::PUT,
        "/v1/services/{name}",
        RouteId::ServicePut,
        Token(Admin),
        true,
    ),
    r(
        Method::DELETE,
        "/v1/services/{name}",
        RouteId::ServiceDelete,
        Token(Admin),
        true,
    ),
    r(
        Method::POST,
        "/v1/tokens",
        RouteId::TokenCreate,
        Token(Admin),
        true,
    ),
    r(
        Method::GET,
        "/v1/tokens",
        RouteId::TokenList,
        Token(Admin),
        false,
    ),
    r(
        Method::DELETE,
        "/v1/tokens/{id}",
        RouteId::TokenDelete,
        Token(Admin),
        true,
    ),
    r(
        Method::GET,
        "/v1/cluster",
        RouteId::ClusterGet,
        Token(Purge),
        false,
    ),
    r(
        Method::POST,
        "/v1/cluster/members",
        RouteId::MemberAdd,
        Token(Admin),
        true,
    ),
    r(
        Method::DELETE,
        "/v1/cluster/members/{id}",
        RouteId::MemberRemove,
        Token(Admin),
        true,
    ),
    r(
        Method::POST,
        "/raft/append",
        RouteId::RaftAppend,
        Cluster,
        false,
    ),
    r(
        Method::POST,
        "/raft/vote",
        RouteId::RaftVote,
        Cluster,
        false,
    ),
    r(
        Method::POST,
        "/raft/snapshot",
        RouteId::RaftSnapshot,
        Cluster,
        false,
    ),
    r(
        Method::POST,
        "/raft/import",
        RouteId::RaftImport,
        Cluster,
        false,
    ),
    r(
        Method::GET,
        "/raft/usage",
        RouteId::RaftUsage,
        Cluster,
        false,
    ),
];

/// Why no route matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoRoute {
    /// No template matches the path.
    NotFound,
    /// Templates match with other methods (listed for `Allow`).
    MethodNotAllowed(Vec<Method>),
}

/// Finds the route for `method` and `path`, with the path parameters in template order.
pub fn find(method: &Method, path: &str) -> Result<(&'static Route, Vec<String>), NoRoute> {
    let mut allowed = Vec::new();
    for route in ROUTES {
        if let Some(params) = match_template(route.path, path) {
            if route.method == *method {
                return Ok((route, params));
            }
            allowed.push(route.method.clone());
        }
    }
    if allowed.is_empty() {
        Err(NoRoute::NotFound)
    } else {
        Err(NoRoute::MethodNotAllowed(allowed))
    }
}

fn match_template(template: &str, path: &str) -> Option<Vec<String>> {
    let mut t = template.split('/');
    let mut p = path.split('/');
    let mut params = Vec::new();
    loop {
        match (t.next(), p.next()) {
            (None, None) => return Some(params),
            (Some(ts), Some(ps)) if ts.starts_with('{') && ts.ends_with('}') => {
                if ps.is_empty() {
                    return None;
                }
                params.push(percent_decode(ps)?);
            }
            (Some(ts), Some(ps)) if ts == ps => {}
            _ => return None,
        }
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_match_templates_and_methods() {
        type Case = (
            Method,
            &'static str,
            Result<(RouteId, &'static [&'static str]), NoRoute>,
        );
        let table: &[Case] = &[
            (Method::GET, "/healthz", Ok((RouteId::Healthz, &[]))),
            (Method::POST, "/v1/purges", Ok((RouteId::PurgeCreate, &[]))),
            (
                Method::GET,
                "/v1/purges/12.3",
                Ok((RouteId::PurgeStatus, &["12.3"])),
            ),
            (
                Method::GET,
                "/v1/services/a%2Db",
                Ok((RouteId::ServiceGet, &["a-b"])),
            ),
            (
                Method::DELETE,
                "/v1/cluster/members/4",
                Ok((RouteId::MemberRemove, &["4"])),
            ),
            (Method::GET, "/v1/purges/", Err(NoRoute::NotFound)),
            (Method::GET, "/v1/purges/1/x", Err(NoRoute::NotFound)),
            (Method::GET, "/nope", Err(NoRoute::NotFound)),
            (Method::GET, "/v1/services/%zz", Err(NoRoute::NotFound)),
            (
                Method::PUT,
                "/v1/purges",
                Err(NoRoute::MethodNotAllowed(vec![Method::POST, Method::GET])),
            ),
            (
                Method::POST,
                "/v1/services/x",
                Err(NoRoute::MethodNotAllowed(vec![
                    Method::GET,
                    Method::PUT,
                    Method::DELETE,
                ])),
            ),
        ];
        for (method, path, want) in table {
            let got = find(method, path).map(|(r, p)| (r.id, p));
            let want = want
                .clone()
                .map(|(id, p)| (id, p.iter().map(|s| s.to_string()).collect()));
            assert_eq!(got, want, "{method} {path}");
        }
    }

    #[test]
    fn every_route_is_unique_and_writes_go_to_the_leader() {
        for (i, a) in ROUTES.iter().enumerate() {
            for b in &ROUTES[i + 1..] {
                assert!(
                    !(a.method == b.method && a.path == b.path),
                    "{} {}",
                    a.method,
                    a.path
                );
            }
            let write = a.method != Method::GET && a.access != Access::Cluster;
            assert!(
                !write || a.on_leader,
                "{} {} must be forwarded",
                a.method,
                a.path
            );
        }
    }
}
