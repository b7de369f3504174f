//! Error mapping and row decoding: transient failures are `Unavailable`, requests the server
//! refuses as invalid are `Invalid`, undecodable results are `Corrupt`, and the rest is
//! `Backend`.

use dsf::store::StoreError;
use scylla::errors::{
    DbError, ExecutionError, IntoRowsResultError, MaybeFirstRowError, NextRowError, PagerExecutionError,
    RequestAttemptError, RequestError, SchemaAgreementError, WriteType,
};

pub(crate) fn execution_error(e: ExecutionError) -> StoreError {
    match e {
        ExecutionError::BadQuery(e) => StoreError::Invalid(e.to_string()),
        ExecutionError::EmptyPlan | ExecutionError::ConnectionPoolError(_) | ExecutionError::RequestTimeout(_) => {
            StoreError::Unavailable(e.to_string())
        }
        ExecutionError::LastAttemptError(a) => attempt_error(a),
        ExecutionError::PrepareError(scylla::errors::PrepareError::ConnectionPoolError(_)) => {
            StoreError::Unavailable(e.to_string())
        }
        ExecutionError::PrepareError(scylla::errors::PrepareError::AllAttemptsFailed { first_attempt }) => {
            attempt_error(first_attempt)
        }
        ExecutionError::SchemaAgreementError(e) => schema_error(e),
        other => StoreError::Backend(other.to_string()),
    }
}

pub(crate) fn attempt_error(e: RequestAttemptError) -> StoreError {
    match &e {
        RequestAttemptError::BrokenConnectionError(_) | RequestAttemptError::UnableToAllocStreamId => {
            StoreError::Unavailable(e.to_string())
        }
        RequestAttemptError::SerializationError(_) => StoreError::Invalid(e.to_string()),
        RequestAttemptError::DbError(db, message) => match db {
            DbError::WriteTimeout { write_type: WriteType::Cas, .. } => {
                StoreError::Unavailable(format!("lightweight transaction timed out, outcome unknown: {message}"))
            }
            DbError::Unavailable { .. }
            | DbError::Overloaded
            | DbError::IsBootstrapping
            | DbError::ReadTimeout { .. }
            | DbError::WriteTimeout { .. }
            | DbError::ReadFailure { .. }
            | DbError::WriteFailure { .. }
            | DbError::RateLimitReached { .. } => StoreError::Unavailable(e.to_string()),
            DbError::Invalid => StoreError::Invalid(message.clone()),
            _ => StoreError::Backend(e.to_string()),
        },
        _ => StoreError::Backend(e.to_string()),
    }
}

pub(crate) fn request_error(e: RequestError) -> StoreError {
    match e {
        RequestError::LastAttemptError(a) => attempt_error(a),
        RequestError::EmptyPlan | RequestError::ConnectionPoolError(_) | RequestError::RequestTimeout(_) => {
            StoreError::Unavailable(e.to_string())
        }
        other => StoreError::Backend(other.to_string()),
    }
}

pub(crate) fn pager_error(e: PagerExecutionError) -> StoreError {
    match e {
        PagerExecutionError::SerializationError(e) => StoreError::Invalid(e.to_string()),
        PagerExecutionError::NextPageError(scylla::errors::NextPageError::RequestFailure(r)) => request_error(r),
        PagerExecutionError::PrepareError(p) => execution_error(ExecutionError::PrepareError(p)),
        other => StoreError::Backend(other.to_string()),
    }
}

pub(crate) fn next_row_error(e: NextRowError) -> StoreError {
    match e {
        NextRowError::NextPageError(scylla::errors::NextPageError::RequestFailure(r)) => request_error(r),
        NextRowError::RowDeserializationError(e) => StoreError::Corrupt(e.to_string()),
        other => StoreError::Backend(other.to_string()),
    }
}

pub(crate) fn schema_error(e: SchemaAgreementError) -> StoreError {
    match e {
        SchemaAgreementError::Timeout(_) | SchemaAgreementError::ConnectionPoolError(_) => {
            StoreError::Unavailable(format!("schema agreement: {e}"))
        }
        SchemaAgreementError::RequestError(a) => attempt_error(a),
        other => StoreError::Backend(format!("schema agreement: {other}")),
    }
}

pub(crate) fn rows_error(e: IntoRowsResultError) -> StoreError {
    StoreError::Backend(format!("expected rows from Cassandra: {e}"))
}

pub(crate) fn first_row_error(e: MaybeFirstRowError) -> StoreError {
    StoreError::Corrupt(format!("undecodable row: {e}"))
}

/// Whether a failed request may nonetheless have taken effect: it timed out, its connection
/// broke after it was sent, or the server reports a write timeout or failure. The outcome of
/// a lightweight transaction that failed so is unknown until a serial read settles it.
pub(crate) fn outcome_unknown(e: &ExecutionError) -> bool {
    match e {
        ExecutionError::RequestTimeout(_) => true,
        ExecutionError::LastAttemptError(a) => match a {
            RequestAttemptError::BrokenConnectionError(_) => true,
            RequestAttemptError::DbError(db, _) => {
                // 0x1700: CAS_WRITE_UNKNOWN (protocol v5).
                matches!(db, DbError::WriteTimeout { .. } | DbError::WriteFailure { .. } | DbError::Other(0x1700))
            }
            _ => false,
        },
        _ => false,
    }
}
