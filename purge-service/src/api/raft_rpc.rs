//! The receiving side of Raft RPCs (`/raft/append`, `/raft/vote`, `/raft/snapshot`) and of
//! token imports proposed by a member that is not the leader (`/raft/import`).

use http::StatusCode;
use openraft::raft::{AppendEntriesRequest, VoteRequest};

use super::response::{Failure, json};
use super::{Answer, ApiRequest, Reject};
use crate::api::tokens::importable;
use crate::app::{App, WriteError};
use crate::raft::wire;
use crate::types::{Command, CommandResponse, NodeId, TypeConfig};

/// AppendEntries.
pub async fn append(app: &App, req: &ApiRequest) -> Answer {
    let rpc: AppendEntriesRequest<TypeConfig> = req.json()?;
    let result = app.raft.append_entries(rpc).await;
    Ok(json(StatusCode::OK, &result))
}

/// RequestVote.
pub async fn vote(app: &App, req: &ApiRequest) -> Answer {
    let rpc: VoteRequest<NodeId> = req.json()?;
    let result = app.raft.vote(rpc).await;
    Ok(json(StatusCode::OK, &result))
}

/// InstallSnapshot (one chunk).
pub async fn snapshot(app: &App, req: &ApiRequest) -> Answer {
    let rpc = wire::decode_snapshot(&req.body).map_err(|e| Failure::BadRequest(e.to_string()))?;
    let result = app.raft.install_snapshot(rpc).await;
    Ok(json(StatusCode::OK, &result))
}

/// The answer of `/raft/import`.
pub type ImportResult = Result<bool, String>;

/// Proposes a token import on behalf of another (authenticated) member. Only what a member
/// may propose for itself is accepted: the conditional imports of its `TIERCEL_ADMIN_TOKEN`
/// and `--token-file` (see [`importable`]), not a general write path.
pub async fn import(app: &App, req: &ApiRequest) -> Answer {
    let cmd: Command = req.json()?;
    match &cmd {
        Command::TokenCreate { token, unless } => {
            importable(token, *unless).map_err(Failure::BadRequest)?;
        }
        _ => {
            return Err(
                Failure::BadRequest("only conditional token imports are accepted".into()).into(),
            );
        }
    }
    let result: ImportResult = match app.write(cmd).await {
        Ok((_, CommandResponse::Token { added })) => Ok(added),
        Ok((_, other)) => Err(format!("unexpected result {other:?}")),
        Err(WriteError::NotLeader) => return Err(Reject::NotLeader),
        Err(e) => Err(e.to_string()),
    };
    Ok(json(StatusCode::OK, &result))
}

/// This member's record of when each token was last used (for `GET /v1/tokens` on another).
pub fn usage(app: &App) -> Answer {
    Ok(json(StatusCode::OK, &app.usage.snapshot()))
}
