//! The one error type of `rhizome-core`, with variants by cause.

use std::path::PathBuf;

/// Everything that can go wrong in the storage engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bytes that should hold a Rhizome, a dictionary or a segment do not decode.
    /// `file` is empty for in-memory buffers; `block` names the block inside the file.
    #[error("corruption in {file:?} block {block}: {reason}")]
    Corruption {
        file: PathBuf,
        block: String,
        reason: String,
    },

    /// An operating-system I/O failure, with the path it concerned.
    #[error("i/o error on {path:?}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },

    /// A value that does not fit its column type: overflow, bad scale, bad date, text too long.
    #[error("{0}")]
    Value(#[from] crate::value::ValueError),

    /// A record or batch that does not match the schema (wrong arity, NULL in NOT NULL, ...).
    #[error("schema error: {0}")]
    Schema(String),

    /// A query that cannot be evaluated as asked (unknown column, type mismatch, ...).
    #[error("plan error: {0}")]
    Plan(String),

    /// A misuse of an API that indicates a bug in the caller (e.g. appending ids out of order).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl Error {
    /// A corruption found in an in-memory buffer (no file behind it yet).
    pub fn corrupt(block: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Corruption {
            file: PathBuf::new(),
            block: block.into(),
            reason: reason.into(),
        }
    }

    /// Attach a file name to a corruption found while decoding that file's bytes.
    pub fn in_file(self, path: &std::path::Path) -> Self {
        match self {
            Error::Corruption { block, reason, .. } => Error::Corruption {
                file: path.to_path_buf(),
                block,
                reason,
            },
            other => other,
        }
    }

    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
