//! `GET /healthz`, `GET /v1/cluster`, `POST /v1/cluster/members`,
//! `DELETE /v1/cluster/members/{id}`.
//!
//! Adding a member: it joins as a learner, the call waits until it has caught up, then (by
//! default) promotes it to voter through a joint consensus change. Removing a voter or learner
//! takes it out of the membership entirely.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use http::StatusCode;
use openraft::{BasicNode, ChangeMembers, ServerState};
use tiercel_cluster::purge::wire::{ClusterInfo, Member, MemberAdd};

use super::response::{Failure, json};
use super::{Answer, ApiRequest, Reject, validate};
use crate::app::{App, WriteError};
use crate::types::NodeId;

/// How long adding a member may wait for it to catch up.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(30);

/// Liveness: the process serves HTTP and its Raft core runs. A core that stopped (a storage
/// failure, an entry it could not apply) answers 503 with the reason, so a supervisor
/// restarts or replaces the member instead of trusting it.
pub fn healthz(app: &App) -> Answer {
    let m = app.raft.metrics().borrow().clone();
    let failure = match (&m.running_state, m.state) {
        (Err(fatal), _) => Some(fatal.to_string()),
        (Ok(()), ServerState::Shutdown) => Some("raft core stopped".to_string()),
        (Ok(()), _) => None,
    };
    let body = serde_json::json!({
        "status": if failure.is_some() { "failed" } else { "ok" },
        "node_id": app.id,
        "state": format!("{:?}", m.state),
        "leader_id": m.current_leader,
        "error": failure,
    });
    let status = if failure.is_some() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    Ok(json(status, &body))
}

/// Readiness: healthy, and in touch with a quorum (a leader is known), so writes and log
/// streams served here are current.
pub fn readyz(app: &App) -> Answer {
    let health = healthz(app)?;
    if !health.status().is_success() {
        return Ok(health);
    }
    let ready = app.in_quorum();
    let body = serde_json::json!({
        "ready": ready,
        "node_id": app.id,
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    Ok(json(status, &body))
}

/// This node's view of the cluster.
pub async fn cluster_info(app: &App) -> Result<ClusterInfo, Failure> {
    let m = app.raft.metrics().borrow().clone();
    let committed = app
        .raft
        .with_raft_state(|st| st.committed.map(|l| l.index))
        .await
        .map_err(|e| Failure::Unavailable {
            message: format!("raft stopped: {e}"),
            retry_after: 1,
        })?;
    let membership = m.membership_config.membership();
    let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
    let members = membership
        .nodes()
        .map(|(id, node)| Member {
            id: *id,
            addr: node.addr.clone(),
            voter: voters.contains(id),
        })
        .collect();
    Ok(ClusterInfo {
        node_id: app.id,
        leader_id: m.current_leader,
        term: m.current_term,
        commit_index: committed.unwrap_or(0),
        last_applied: m.last_applied.map(|l| l.index).unwrap_or(0),
        snapshot_index: m.snapshot.map(|l| l.index).unwrap_or(0),
        members,
    })
}

/// `GET /v1/cluster`.
pub async fn info(app: &App) -> Answer {
    Ok(json(StatusCode::OK, &cluster_info(app).await?))
}

async fn change(app: &App, changes: ChangeMembers<NodeId, BasicNode>) -> Result<(), Reject> {
    match tokio::time::timeout(CATCH_UP_TIMEOUT, app.raft.change_membership(changes, false)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(WriteError::from_raft(e).into()),
        Err(_) => Err(Failure::Unavailable {
            message: "membership change not committed in time".into(),
            retry_after: 1,
        }
        .into()),
    }
}

/// Adds a learner, waits for it to catch up, and promotes it unless `voter` is false.
pub async fn add_member(app: &App, req: &ApiRequest) -> Answer {
    let body: MemberAdd = req.json()?;
    validate::member_add(&body)?;
    if app.settings.member_key.is_none() {
        return Err(Failure::BadRequest(
            "this cluster has no cluster secret, so members cannot authenticate each other; \
             restart every member with TIERCEL_CLUSTER_SECRET first"
                .into(),
        )
        .into());
    }
    let _serial = app.write_lock.lock().await;
    let m = app.raft.metrics().borrow().clone();
    let membership = m.membership_config.membership();
    let existing = membership.get_node(&body.id).map(|n| n.addr.clone());
    let is_voter = membership.voter_ids().any(|v| v == body.id);
    match existing {
        Some(addr) if addr != body.addr => {
            // A member that moved (a new host, or its member traffic moved to --raft-listen):
            // only its address changes, its log and vote stay.
            let nodes = BTreeMap::from([(body.id, BasicNode::new(&body.addr))]);
            change(app, ChangeMembers::SetNodes(nodes)).await?;
            tracing::info!(id = body.id, from = %addr, to = %body.addr, "member address changed");
        }
        Some(_) => {}
        None => {
            let add = app
                .raft
                .add_learner(body.id, BasicNode::new(&body.addr), true);
            match tokio::time::timeout(CATCH_UP_TIMEOUT, add).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(WriteError::from_raft(e).into()),
                Err(_) => {
                    return Err(Failure::Unavailable {
                        message: format!(
                            "member {} added as a learner but not caught up within {}s; retry to promote it",
                            body.id,
                            CATCH_UP_TIMEOUT.as_secs()
                        ),
                        retry_after: 5,
                    }
                    .into());
                }
            }
        }
    }
    if body.voter && !is_voter {
        change(app, ChangeMembers::AddVoterIds(BTreeSet::from([body.id]))).await?;
    }
    Ok(json(StatusCode::OK, &cluster_info(app).await?))
}

/// Removes a member (voter or learner).
pub async fn remove_member(app: &App, req: &ApiRequest) -> Answer {
    let id: NodeId = req.param(0).parse().map_err(|_| {
        Failure::BadRequest(format!("member id {:?} is not a number", req.param(0)))
    })?;
    let _serial = app.write_lock.lock().await;
    let m = app.raft.metrics().borrow().clone();
    let membership = m.membership_config.membership();
    if membership.get_node(&id).is_none() {
        return Err(Failure::NotFound(format!("no member {id}")).into());
    }
    let is_voter = membership.voter_ids().any(|v| v == id);
    if is_voter {
        if membership.voter_ids().count() == 1 {
            return Err(Failure::BadRequest(format!("member {id} is the last voter")).into());
        }
        change(app, ChangeMembers::RemoveVoters(BTreeSet::from([id]))).await?;
    } else {
        change(app, ChangeMembers::RemoveNodes(BTreeSet::from([id]))).await?;
    }
    Ok(json(StatusCode::OK, &cluster_info(app).await?))
}
