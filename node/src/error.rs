//! The one error type of `rhizome-node`, with variants by cause. Its mapping to gRPC status
//! codes (and back, for the client) lives in [`crate::status`].

use crate::types::NodeId;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// This replica is not the group's leader; `leader` is the one it knows of, if any.
    #[error("not the leader of {group}; leader is {}", leader_text(.leader))]
    NotLeader {
        group: String,
        leader: Option<(NodeId, String)>,
    },

    /// The group cannot serve now: no quorum, shutting down, or the request timed out.
    #[error("shard {shard} is unavailable: {reason}")]
    Unavailable { shard: String, reason: String },

    /// No such table, shard or group on this node.
    #[error("not found: {0}")]
    NotFound(String),

    /// A malformed request: bad encoding, bad rows, bad condition, bad arguments.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// The storage engine failed (corrupt segment, failed save).
    #[error("storage: {0}")]
    Storage(#[from] rhizome_core::Error),

    /// The Raft log or a state file could not be written or read. After a failed write the
    /// group stops accepting writes; nothing unacknowledged is reported as done.
    #[error("i/o on {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },

    /// The consensus layer reported an error that is none of the above.
    #[error("raft: {0}")]
    Raft(String),

    /// A transport failure talking to another node.
    #[error("transport to {addr}: {reason}")]
    Transport { addr: String, reason: String },

    /// Something exists already (a group, an initialised cluster).
    #[error("already exists: {0}")]
    AlreadyExists(String),

    /// The cluster is not in a state that allows the request (leaving the last node).
    #[error("failed precondition: {0}")]
    FailedPrecondition(String),
}

fn leader_text(leader: &Option<(NodeId, String)>) -> String {
    match leader {
        Some((id, addr)) => format!("node {id} at {addr}"),
        None => "unknown".to_string(),
    }
}

impl Error {
    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
