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
    include_str!("../../../../migrations/sqlite/0003_finish_reason_check.sql"),
    include_str!("../../../../migrations/sqlite/0004_companions.sql"),
    include_str!("../../../../migrations/sqlite/0005_branches.sql"),
    include_str!("../../../../migrations/sqlite/0006_models.sql"),
    include_str!("../../../../migrations/sqlite/0007_accounts.sql"),
    include_str!("../../../../migrations/sqlite/0008_passkeys.sql"),
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

    /// Version 3 rebuilds `messages`: a database at version 2 keeps every
    /// row, its `seq`, the AUTOINCREMENT counter and the constraints.
    #[test]
    fn version_3_keeps_the_messages_their_order_and_their_constraints() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut conn = Connection::open(dir.path().join("m.db")).expect("open");
        conn.pragma_update(None, "foreign_keys", true).expect("fk");
        for sql in &MIGRATIONS[..2] {
            conn.execute_batch(sql).expect("v1, v2");
        }
        conn.pragma_update(None, "user_version", 2).expect("at v2");
        conn.execute_batch(
            "INSERT INTO users VALUES ('u', 't');
             INSERT INTO conversations VALUES ('c', 'u', 'T', 'p', 't', 't');
             INSERT INTO messages (id, conversation_id, role, content, created_at)
                 VALUES ('m1', 'c', 'user', 'hi', 't');
             INSERT INTO messages (id, conversation_id, role, content, finish_reason, created_at)
                 VALUES ('m2', 'c', 'assistant', 'hello', 'stop', 't');
             INSERT INTO messages (id, conversation_id, role, content, created_at)
                 VALUES ('m3', 'c', 'user', 'gone', 't');
             DELETE FROM messages WHERE id = 'm3';",
        )
        .expect("rows at v2");
        assert_eq!(
            migrate(&mut conn).expect("to v3 and on"),
            MIGRATIONS.len() - 2
        );
        let rows: Vec<(i64, String, Option<String>)> = conn
            .prepare("SELECT seq, id, finish_reason FROM messages ORDER BY seq")
            .expect("select")
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("read");
        assert_eq!(
            rows,
            [
                (1, "m1".into(), None),
                (2, "m2".into(), Some("stop".into()))
            ]
        );
        conn.execute(
            "INSERT INTO messages (id, conversation_id, role, content, created_at) \
             VALUES ('m4', 'c', 'assistant', '', 't')",
            [],
        )
        .expect("an unfinished reply");
        let seq: i64 = conn
            .query_row("SELECT seq FROM messages WHERE id = 'm4'", [], |r| r.get(0))
            .expect("seq");
        assert_eq!(seq, 4, "a deleted message's seq is not given again");
        let refused = |sql: &str| conn.execute(sql, []).is_err();
        assert!(
            refused("UPDATE messages SET finish_reason = 'bogus' WHERE id = 'm4'"),
            "finish_reason is checked"
        );
        assert!(
            refused(
                "INSERT INTO messages (id, conversation_id, role, content, created_at) \
                 VALUES ('m5', 'c', 'assistant', '', 't')"
            ),
            "one unfinished reply per conversation"
        );
        assert!(
            refused(
                "INSERT INTO messages (id, conversation_id, role, content, created_at) \
                 VALUES ('m1', 'c', 'user', 'again', 't')"
            ),
            "ids are unique"
        );
        assert!(
            refused(
                "INSERT INTO messages (id, conversation_id, role, content, created_at) \
                 VALUES ('m6', 'nowhere', 'user', 'x', 't')"
            ),
            "the conversation must exist"
        );
    }
}
