//! The one place where errors meet gRPC status codes: [`Error`] → [`tonic::Status`] for the
//! services, [`tonic::Status`] → [`Error`] for the client, and openraft's errors → [`Error`].
//!
//! | error | status |
//! |---|---|
//! | `NotLeader` | `FAILED_PRECONDITION`, leader in `rhizome-leader-id` / `rhizome-leader-addr` metadata |
//! | `Unavailable`, `Transport`, `Io` | `UNAVAILABLE` |
//! | `NotFound` | `NOT_FOUND` |
//! | `InvalidArgument`, storage `Schema`/`Value`/`Plan`/`InvalidArgument` | `INVALID_ARGUMENT` |
//! | `AlreadyExists` | `ALREADY_EXISTS` |
//! | `FailedPrecondition` | `FAILED_PRECONDITION` with `rhizome-precondition` metadata (told apart from `NotLeader`) |
//! | other storage errors, `Raft` | `INTERNAL` |

use openraft::error::{CheckIsLeaderError, ClientWriteError, ForwardToLeader, RaftError};
use tonic::{Code, Status};

use crate::error::Error;
use crate::types::NodeId;

pub const LEADER_ID_KEY: &str = "rhizome-leader-id";
pub const LEADER_ADDR_KEY: &str = "rhizome-leader-addr";
/// Metadata marking a `FAILED_PRECONDITION` that is not a "not the leader" answer.
pub const PRECONDITION_KEY: &str = "rhizome-precondition";

impl From<Error> for Status {
    fn from(error: Error) -> Status {
        let message = error.to_string();
        match error {
            Error::NotLeader { leader, .. } => {
                let mut status = Status::failed_precondition(message);
                if let Some((id, addr)) = leader {
                    if let (Ok(id), Ok(addr)) = (id.to_string().parse(), addr.parse()) {
                        status.metadata_mut().insert(LEADER_ID_KEY, id);
                        status.metadata_mut().insert(LEADER_ADDR_KEY, addr);
                    }
                }
                status
            }
            Error::Unavailable { .. } | Error::Transport { .. } | Error::Io { .. } => {
                Status::unavailable(message)
            }
            Error::NotFound(_) => Status::not_found(message),
            Error::InvalidArgument(_) => Status::invalid_argument(message),
            Error::Storage(
                rhizome_core::Error::Schema(_)
                | rhizome_core::Error::Value(_)
                | rhizome_core::Error::Plan(_)
                | rhizome_core::Error::InvalidArgument(_),
            ) => Status::invalid_argument(message),
            Error::AlreadyExists(_) => Status::already_exists(message),
            Error::FailedPrecondition(_) => {
                let mut status = Status::failed_precondition(message);
                status.metadata_mut().insert(
                    PRECONDITION_KEY,
                    tonic::metadata::MetadataValue::from_static("1"),
                );
                status
            }
            Error::Storage(_) | Error::Raft(_) => Status::internal(message),
        }
    }
}

/// The error a service answered with, as seen by a client talking to `addr`.
pub fn error_from_status(addr: &str, status: &Status) -> Error {
    let message = status.message().to_string();
    match status.code() {
        Code::FailedPrecondition if status.metadata().get(PRECONDITION_KEY).is_some() => {
            Error::FailedPrecondition(message)
        }
        Code::FailedPrecondition => {
            let meta = status.metadata();
            let id = meta
                .get(LEADER_ID_KEY)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<NodeId>().ok());
            let leader_addr = meta
                .get(LEADER_ADDR_KEY)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            Error::NotLeader {
                group: message,
                leader: id.zip(leader_addr),
            }
        }
        Code::NotFound => Error::NotFound(message),
        Code::InvalidArgument => Error::InvalidArgument(message),
        Code::AlreadyExists => Error::AlreadyExists(message),
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown => {
            Error::Transport {
                addr: addr.to_string(),
                reason: format!("{:?}: {message}", status.code()),
            }
        }
        _ => Error::Raft(format!("{addr}: {:?}: {message}", status.code())),
    }
}

fn not_leader(group: &str, forward: &ForwardToLeader<NodeId, openraft::BasicNode>) -> Error {
    Error::NotLeader {
        group: group.to_string(),
        leader: forward
            .leader_id
            .zip(forward.leader_node.as_ref().map(|n| n.addr.clone())),
    }
}

pub fn from_write_error(
    group: &str,
    error: RaftError<NodeId, ClientWriteError<NodeId, openraft::BasicNode>>,
) -> Error {
    match error {
        RaftError::APIError(ClientWriteError::ForwardToLeader(forward)) => {
            not_leader(group, &forward)
        }
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
            Error::InvalidArgument(e.to_string())
        }
        RaftError::Fatal(fatal) => Error::Unavailable {
            shard: group.to_string(),
            reason: fatal.to_string(),
        },
    }
}

pub fn from_read_error(
    group: &str,
    error: RaftError<NodeId, CheckIsLeaderError<NodeId, openraft::BasicNode>>,
) -> Error {
    match error {
        RaftError::APIError(CheckIsLeaderError::ForwardToLeader(forward)) => {
            not_leader(group, &forward)
        }
        RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(e)) => Error::Unavailable {
            shard: group.to_string(),
            reason: e.to_string(),
        },
        RaftError::Fatal(fatal) => Error::Unavailable {
            shard: group.to_string(),
            reason: fatal.to_string(),
        },
    }
}

pub fn from_fatal(group: &str, fatal: impl std::fmt::Display) -> Error {
    Error::Unavailable {
        shard: group.to_string(),
        reason: fatal.to_string(),
    }
}
