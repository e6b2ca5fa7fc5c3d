//! Schema migrations, embedded from `migrations/sqlite/` and applied in order.
//!
//! The applied count is SQLite's `user_version`. Every migration runs in its
//! own transaction with the version bump, so a failed one leaves the
//! database at the previous version. A database newer than this build is
//! refused rather than guessed at.

use rusqlite::Connection;

use crate::server::store::{Fault, StoreError};

/// Every migration, oldest first; the index + 1 is the version it brings.
const MIGRATIONS: &[&str] = &[
    include_str!("../../../../migrations/sqlite/0001_init.sql"),
    include_str!("../../../../migrations/sqlite/0002_reply_runs.sql"),
];

/// Brings the database to the newest schema; returns how many were applied.
pub(super) fn migrate(conn: &mut Connection) -> Result<usize, StoreError> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    let version = usize::try_from(version).unwrap_or(usize::MAX);
    if version > MIGRATIONS.len() {
        return Err(StoreError::Migrate(format!(
            "the database is at schema version {version}, this build knows {}",
            MIGRATIONS.len()
        )));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql).map_err(|e| {
            let fault = Fault::from(e);
            // A full disk or a lock is the surroundings, not the migration.
            if fault.kind.is_transient() {
                StoreError::Fault(fault)
            } else {
                StoreError::Migrate(format!("migration {}: {}", index + 1, fault.detail))
            }
        })?;
        tx.pragma_update(None, "user_version", (index + 1) as i64)?;
        tx.commit()?;
    }
    Ok(MIGRATIONS.len() - version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_once_and_refuses_a_newer_database() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut conn = Connection::open(dir.path().join("m.db")).expect("open");
        assert_eq!(migrate(&mut conn).expect("first"), MIGRATIONS.len());
        assert_eq!(migrate(&mut conn).expect("again"), 0);
        conn.pragma_update(None, "user_version", 99).expect("bump");
        assert!(matches!(migrate(&mut conn), Err(StoreError::Migrate(_))));
    }
}
