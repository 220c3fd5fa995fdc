//! The purge API's JSON body (`POST /v1/purges`), from the service's validation to the rules
//! every follower applies and the keys the edge matches them with.

use tiercel_cluster::purge::wire::PurgeRequest;
use tiercel_cluster::purge::{ObjectRef, PurgeIndex, PurgeVerdict, rules_from_request};
use tiercel_cluster::urlnorm::{normalize, normalize_host, parse_absolute};
use tiercel_purge::api::validate;

/// Properties of a purge the service accepts: its normal form is accepted again unchanged and
/// survives the log's JSON; every follower expands it into exactly one rule per item (none is
/// skipped, so the service and the nodes agree); and the object an edge stores for each purged
/// URL (keyed through the request path's normalisation) is invalidated by it. Service
/// documents of any shape are checked without overflowing the stack.
pub fn check(data: &[u8]) {
    let Ok(req) = serde_json::from_slice::<PurgeRequest>(data) else {
        if let Ok(doc) = serde_json::from_slice::<serde_json::Value>(data) {
            let _ = validate::service_doc("fuzz", &doc);
        }
        return;
    };
    let Ok(accepted) = validate::purge(req) else {
        return;
    };
    assert_eq!(validate::purge(accepted.clone()).as_ref(), Ok(&accepted));
    let logged: PurgeRequest = serde_json::to_vec(&accepted)
        .ok()
        .and_then(|v| serde_json::from_slice(&v).ok())
        .unwrap_or_else(|| panic!("{accepted:?} does not survive the log"));
    assert_eq!(logged, accepted);

    let index = 10;
    let rules = rules_from_request(&accepted, index);
    let items = accepted.urls.len()
        + accepted.prefixes.len()
        + accepted.tags.len()
        + accepted.hosts.len()
        + usize::from(accepted.all);
    assert_eq!(
        rules.len(),
        items,
        "a follower skipped an item of {accepted:?}"
    );
    let mut idx = PurgeIndex::new();
    for rule in &rules {
        idx.apply(rule);
    }
    let want = if accepted.soft {
        PurgeVerdict::SoftPurged
    } else {
        PurgeVerdict::HardPurged
    };
    for url in accepted.urls.iter().chain(&accepted.prefixes) {
        let (scheme, n) = parse_absolute(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        // What the edge keys a request for this URL under: its Host and target, normalised.
        let stored = normalize(scheme, &n.host, &n.path_and_query)
            .unwrap_or_else(|e| panic!("{url}: the edge cannot key it: {e}"));
        let host = normalize_host(&stored.host).unwrap_or_else(|e| panic!("{url}: {e}"));
        let obj = ObjectRef {
            url: &stored.purge_key(),
            host: &host,
            tags: &[],
            // The service the purge names, if any: it must reach that service's objects.
            service: accepted.service.as_deref().unwrap_or(""),
            stored_index: index - 1,
        };
        assert_eq!(
            idx.check(&obj),
            want,
            "{url} is not purged by its own purge"
        );
    }
}
