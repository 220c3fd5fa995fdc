//! The IO around [`compile`](super::compile()): a node's `[[services]]` tables, whose `tls`
//! names PEM files (read here), and the purge-service's JSON documents, whose `tls` carries
//! the PEM text itself.

use std::sync::Arc;

use super::compile::{ServiceError, compile, parse_spec};
use super::model::Service;
use super::routing::check_hosts;
use super::spec::ServiceSpec;

/// Compiles a node's `[[services]]` tables; errors are prefixed with `services[i]`.
pub fn from_tables(tables: &[toml::Table]) -> Result<Vec<Arc<Service>>, ServiceError> {
    let mut out = Vec::with_capacity(tables.len());
    for (i, table) in tables.iter().enumerate() {
        let at = format!("services[{i}]");
        let mut spec = parse_spec(toml::Value::Table(table.clone())).map_err(|e| e.within(&at))?;
        if spec.name.is_empty() {
            return Err(ServiceError {
                key: format!("{at}.name"),
                reason: "missing (every service needs a name)".to_owned(),
            });
        }
        if let Some(tls) = &mut spec.tls {
            tls.cert = read_pem(&tls.cert, "tls.cert").map_err(|e| e.within(&at))?;
            tls.key = read_pem(&tls.key, "tls.key").map_err(|e| e.within(&at))?;
        }
        let service = compile(spec).map_err(|e| e.within(&at))?;
        if out.iter().any(|s: &Arc<Service>| s.name == service.name) {
            return Err(ServiceError {
                key: format!("{at}.name"),
                reason: format!("{:?} is defined twice", service.name),
            });
        }
        out.push(Arc::new(service));
    }
    check_hosts(&out).map_err(|e| ServiceError {
        key: "services".to_owned(),
        reason: e.to_string(),
    })?;
    Ok(out)
}

fn read_pem(path: &str, key: &str) -> Result<String, ServiceError> {
    std::fs::read_to_string(path).map_err(|e| ServiceError {
        key: key.to_owned(),
        reason: format!("cannot read {path}: {e}"),
    })
}

/// Compiles a document stored under `name` in the purge-service (JSON, PEM text inline). A
/// `name` inside the document must be the same.
pub fn from_json(name: &str, doc: &serde_json::Value) -> Result<Service, ServiceError> {
    let mut spec: ServiceSpec = parse_spec(doc)?;
    if spec.name.is_empty() {
        spec.name = name.to_owned();
    } else if spec.name != name {
        return Err(ServiceError {
            key: "name".to_owned(),
            reason: format!("{:?} differs from the service's name {name:?}", spec.name),
        });
    }
    compile(spec)
}
