//! Raft RPCs to peers over HTTP: openraft's [`RaftNetworkFactory`] and [`RaftNetwork`].
//!
//! `POST /raft/append` and `/raft/vote` carry JSON; `/raft/snapshot` carries a snapshot chunk in
//! the binary framing of [`super::wire`] (a JSON header and the raw bytes) so a chunk is not
//! inflated into a JSON array of numbers. Every answer is the JSON of
//! `Result<Response, RaftError>` so a remote Raft error reaches openraft intact.

// The error type is openraft's, fixed by the `RaftNetwork` signatures.
#![allow(clippy::result_large_err)]

use bytes::Bytes;
use http::Method;
use http_body_util::Full;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, RaftNetwork, RaftNetworkFactory};
use serde::de::DeserializeOwned;

use super::wire;
use crate::client::{ClientError, HttpClient};
use crate::types::{NodeId, TypeConfig};

type RpcResult<T, E = openraft::error::Infallible> =
    Result<T, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>;

/// Creates a [`PeerClient`] per replication target.
#[derive(Clone)]
pub struct Network {
    client: HttpClient,
}

impl Network {
    /// A network calling peers with `client` (which carries the cluster secret).
    pub fn new(client: HttpClient) -> Self {
        Self { client }
    }
}

/// RPCs to one peer.
pub struct PeerClient {
    target: NodeId,
    addr: String,
    client: HttpClient,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> PeerClient {
        PeerClient {
            target,
            addr: node.addr.clone(),
            client: self.client.clone(),
        }
    }
}

impl PeerClient {
    async fn call<T, E>(&self, path: &str, body: Bytes, option: &RPCOption) -> RpcResult<T, E>
    where
        T: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let req = self
            .client
            .builder(&self.addr, self.target, Method::POST, path)
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))?
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let resp = self
            .client
            .send(&self.addr, req, option.hard_ttl())
            .await
            .map_err(|e| match e {
                ClientError::Connect { .. } | ClientError::Build { .. } => {
                    RPCError::Unreachable(Unreachable::new(&e))
                }
                ClientError::Timeout { .. } | ClientError::Http { .. } => {
                    RPCError::Network(NetworkError::new(&e))
                }
            })?;
        if !resp.status().is_success() {
            let err = RemoteStatus {
                status: resp.status().as_u16(),
                body: String::from_utf8_lossy(resp.body())
                    .chars()
                    .take(200)
                    .collect(),
            };
            return Err(RPCError::Network(NetworkError::new(&err)));
        }
        let result: Result<T, RaftError<NodeId, E>> = serde_json::from_slice(resp.body())
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

/// A peer answered a Raft RPC with an HTTP error (wrong cluster secret, overload).
#[derive(Debug, thiserror::Error)]
#[error("peer answered HTTP {status}: {body}")]
struct RemoteStatus {
    status: u16,
    body: String,
}

fn to_json<T: serde::Serialize, E: std::error::Error>(v: &T) -> RpcResult<Bytes, E> {
    serde_json::to_vec(v)
        .map(Bytes::from)
        .map_err(|e| RPCError::Network(NetworkError::new(&e)))
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        let body = to_json(&rpc)?;
        self.call(wire::APPEND_PATH, body, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        let body =
            wire::encode_snapshot(rpc).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        self.call(wire::SNAPSHOT_PATH, body, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>> {
        let body = to_json(&rpc)?;
        self.call(wire::VOTE_PATH, body, &option).await
    }
}
