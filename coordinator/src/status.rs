//! The one place where errors become what clients see: an HTTP status with a JSON body
//! `{"error":{"code","message"}}`, and a PostgreSQL SQLSTATE. Statement errors are 4xx;
//! only cluster faults are 5xx.

use crate::error::{DataFault, Error};

/// How one error is shown: HTTP status, stable JSON code, SQLSTATE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    pub http: u16,
    pub code: &'static str,
    pub sqlstate: &'static str,
}

const fn status(http: u16, code: &'static str, sqlstate: &'static str) -> Status {
    Status {
        http,
        code,
        sqlstate,
    }
}

pub fn status_of(error: &Error) -> Status {
    match error {
        Error::Parse { .. } => status(400, "syntax_error", "42601"),
        Error::Unsupported(_) => status(400, "unsupported", "0A000"),
        Error::UnknownTable(_) => status(404, "unknown_table", "42P01"),
        Error::TableExists(_) => status(409, "table_exists", "42P07"),
        Error::UnknownColumn { .. } => status(400, "unknown_column", "42703"),
        Error::TypeMismatch(_) => status(400, "type_mismatch", "42804"),
        Error::Plan(_) => status(400, "invalid_statement", "42000"),
        Error::Grouping(_) => status(400, "grouping_error", "42803"),
        Error::Data { fault, .. } => match fault {
            DataFault::NotNull => status(400, "not_null_violation", "23502"),
            DataFault::OutOfRange => status(400, "numeric_out_of_range", "22003"),
            DataFault::TooLong => status(400, "string_too_long", "22001"),
            DataFault::InvalidDatetime => status(400, "invalid_datetime", "22007"),
            DataFault::InvalidText => status(400, "invalid_value", "22P02"),
            DataFault::BadCharacter => status(400, "bad_character", "22021"),
        },
        Error::LimitExceeded {
            limit: "statement_bytes_max",
            ..
        } => status(413, "limit_exceeded", "54000"),
        Error::LimitExceeded { .. } => status(400, "limit_exceeded", "54000"),
        Error::Unavailable { .. } => status(503, "shard_unavailable", "58000"),
        Error::Timeout { .. } => status(504, "shard_timeout", "57014"),
        Error::Execution { .. } => status(500, "shard_error", "XX000"),
        Error::Cluster(_) => status(500, "cluster_error", "58000"),
        Error::NotReady => status(503, "not_ready", "57P03"),
        Error::Internal(_) => status(500, "internal_error", "XX000"),
    }
}

/// The JSON body of an error answer.
pub fn error_body(error: &Error) -> serde_json::Value {
    let status = status_of(error);
    serde_json::json!({
        "error": {
            "code": status.code,
            "sqlstate": status.sqlstate,
            "message": error.to_string(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_errors_are_4xx_and_cluster_faults_5xx() {
        // Proves the split the HTTP contract promises, for one error of every phase.
        let shard = crate::error::ShardRef {
            table: "t".into(),
            shard: 1,
        };
        let statement_errors = [
            Error::Parse {
                message: "x".into(),
                position: None,
            },
            Error::Unsupported("JOIN".into()),
            Error::UnknownTable("t".into()),
            Error::TypeMismatch("x".into()),
            Error::data(DataFault::NotNull, "x"),
        ];
        for e in &statement_errors {
            assert!((400..500).contains(&status_of(e).http), "{e}");
            assert!(!e.is_cluster_fault());
        }
        let faults = [
            Error::Unavailable {
                shard: shard.clone(),
                reason: "down".into(),
            },
            Error::Timeout {
                shard,
                timeout_ms: 5,
            },
        ];
        for e in &faults {
            assert!(status_of(e).http >= 500, "{e}");
            assert!(e.is_cluster_fault());
        }
        assert_eq!(
            status_of(&Error::UnknownTable("t".into())).sqlstate,
            "42P01"
        );
    }
}
