//! Postgres and pool errors as [`Fault`]s, in the kinds the rest of the
//! server already acts on (full, read-only, locked, unreachable, …).
//!
//! A database error is classified by its SQLSTATE; an error without one
//! means the connection failed (refused, reset, closed), which is the
//! transient "cannot reach the database" kind, like a pool that has no
//! connection to give within its wait timeout. Nothing here decides what a
//! fault means for a request.

use deadpool_postgres::PoolError;
use tokio_postgres::error::SqlState;

use crate::server::store::{Fault, FaultKind, StoreError};

impl From<tokio_postgres::Error> for StoreError {
    fn from(err: tokio_postgres::Error) -> Self {
        StoreError::Fault(fault(&err))
    }
}

impl From<PoolError> for StoreError {
    fn from(err: PoolError) -> Self {
        match err {
            PoolError::Backend(err) => err.into(),
            PoolError::Timeout(which) => StoreError::Fault(Fault::new(
                FaultKind::CannotOpen,
                format!("no database connection within the wait timeout ({which:?})"),
            )),
            PoolError::Closed => StoreError::Closed,
            other => StoreError::Fault(Fault::new(FaultKind::Other, other.to_string())),
        }
    }
}

/// The fault of a `tokio-postgres` error.
pub(super) fn fault(err: &tokio_postgres::Error) -> Fault {
    let kind = match err.code() {
        Some(code) => kind_of(code),
        None if err.is_closed() || io_source(err) => FaultKind::CannotOpen,
        None => FaultKind::Other,
    };
    Fault::new(kind, detail(err))
}

/// The error and its causes in one line ("error connecting to server:
/// Connection refused (os error 111)"): `tokio-postgres` keeps the cause
/// out of its own message.
fn detail(err: &tokio_postgres::Error) -> String {
    let mut detail = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !detail.contains(&text) {
            detail.push_str(": ");
            detail.push_str(&text);
        }
        source = cause.source();
    }
    detail
}

/// Whether an operating-system error (refused, reset, timed out) caused it.
fn io_source(err: &tokio_postgres::Error) -> bool {
    std::error::Error::source(err).is_some_and(|source| source.is::<std::io::Error>())
}

/// The kind of a SQLSTATE.
pub(super) fn kind_of(code: &SqlState) -> FaultKind {
    let class = &code.code()[..2];
    match code {
        c if *c == SqlState::DISK_FULL => FaultKind::Full,
        c if *c == SqlState::READ_ONLY_SQL_TRANSACTION => FaultKind::ReadOnly,
        c if *c == SqlState::LOCK_NOT_AVAILABLE
            || *c == SqlState::T_R_DEADLOCK_DETECTED
            || *c == SqlState::T_R_SERIALIZATION_FAILURE
            || *c == SqlState::QUERY_CANCELED =>
        {
            FaultKind::Locked
        }
        c if *c == SqlState::TOO_MANY_CONNECTIONS
            || *c == SqlState::CANNOT_CONNECT_NOW
            || *c == SqlState::ADMIN_SHUTDOWN
            || *c == SqlState::CRASH_SHUTDOWN
            || *c == SqlState::INVALID_CATALOG_NAME
            || *c == SqlState::INVALID_PASSWORD
            || *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION =>
        {
            FaultKind::CannotOpen
        }
        c if *c == SqlState::DATA_CORRUPTED || *c == SqlState::INDEX_CORRUPTED => {
            FaultKind::Corrupt
        }
        // Connection exceptions.
        _ if class == "08" => FaultKind::CannotOpen,
        // Insufficient resources (memory, …) and system (I/O) errors.
        _ if class == "53" || class == "58" => FaultKind::Io,
        _ => FaultKind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_are_classified() {
        let kind = |code: &str| kind_of(&SqlState::from_code(code));
        assert_eq!(kind("53100"), FaultKind::Full, "disk full");
        assert_eq!(kind("25006"), FaultKind::ReadOnly, "read-only transaction");
        assert_eq!(kind("55P03"), FaultKind::Locked, "lock not available");
        assert_eq!(kind("40P01"), FaultKind::Locked, "deadlock");
        assert_eq!(kind("57014"), FaultKind::Locked, "statement timeout");
        assert_eq!(kind("53300"), FaultKind::CannotOpen, "too many connections");
        assert_eq!(kind("57P01"), FaultKind::CannotOpen, "admin shutdown");
        assert_eq!(kind("57P03"), FaultKind::CannotOpen, "starting up");
        assert_eq!(kind("08006"), FaultKind::CannotOpen, "connection failure");
        assert_eq!(kind("58030"), FaultKind::Io);
        assert_eq!(kind("53200"), FaultKind::Io, "out of memory");
        assert_eq!(kind("XX001"), FaultKind::Corrupt);
        assert_eq!(kind("23505"), FaultKind::Other, "a constraint is a bug");
        assert_eq!(kind("42601"), FaultKind::Other, "syntax error");
        for transient in ["53100", "25006", "55P03", "57P01", "08006", "58030"] {
            assert!(kind(transient).is_transient(), "{transient}");
        }
    }

    #[test]
    fn an_empty_pool_is_unavailable_and_a_closed_one_is_closed() {
        let timeout = StoreError::from(PoolError::Timeout(deadpool_postgres::TimeoutType::Wait));
        assert!(
            matches!(&timeout, StoreError::Fault(f) if f.kind == FaultKind::CannotOpen),
            "{timeout:?}"
        );
        assert!(matches!(
            StoreError::from(PoolError::Closed),
            StoreError::Closed
        ));
    }
}
