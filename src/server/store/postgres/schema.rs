//! Schema migrations for PostgreSQL, embedded from `migrations/postgres/`
//! and applied in order.
//!
//! The applied versions are rows of `tether_schema_migrations`. All pending
//! migrations run in one transaction that first takes a transaction-scoped
//! advisory lock, so of two instances starting at once one migrates and the
//! other waits, then finds nothing to do. A database newer than this build
//! is refused rather than guessed at.

use deadpool_postgres::Client;

use crate::server::store::StoreError;

/// Every migration, oldest first; the index + 1 is the version it brings.
const MIGRATIONS: &[&str] = &[
    include_str!("../../../../migrations/postgres/0001_init.sql"),
    include_str!("../../../../migrations/postgres/0002_reply_runs.sql"),
    include_str!("../../../../migrations/postgres/0003_companions.sql"),
    include_str!("../../../../migrations/postgres/0004_branches.sql"),
    include_str!("../../../../migrations/postgres/0005_models.sql"),
    include_str!("../../../../migrations/postgres/0006_accounts.sql"),
    include_str!("../../../../migrations/postgres/0007_passkeys.sql"),
];

/// The advisory lock key migrations hold (`tether` in ASCII).
const MIGRATION_LOCK: i64 = 0x7465_7468_6572;

/// Brings the database to the newest schema; returns how many were applied.
pub(super) async fn migrate(client: &mut Client) -> Result<usize, StoreError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    // Looked up, not `CREATE … IF NOT EXISTS`: a database that is up to
    // date opens even while it is read-only (then writes fail as such).
    let known: bool = tx
        .query_one(
            "SELECT to_regclass('tether_schema_migrations') IS NOT NULL",
            &[],
        )
        .await?
        .try_get(0)?;
    if !known {
        tx.batch_execute(
            "CREATE TABLE tether_schema_migrations (\
                 version INTEGER PRIMARY KEY, \
                 applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        )
        .await?;
    }
    let version: i32 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM tether_schema_migrations",
            &[],
        )
        .await?
        .try_get(0)?;
    let version = usize::try_from(version).unwrap_or(0);
    if version > MIGRATIONS.len() {
        return Err(StoreError::Migrate(format!(
            "the database is at schema version {version}, this build knows {}",
            MIGRATIONS.len()
        )));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        tx.batch_execute(sql).await.map_err(|e| {
            let fault = super::classify::fault(&e);
            // A full disk or a lost connection is the surroundings, not the migration.
            if fault.kind.is_transient() {
                StoreError::Fault(fault)
            } else {
                StoreError::Migrate(format!("migration {}: {}", index + 1, fault.detail))
            }
        })?;
        let applied = i32::try_from(index + 1).unwrap_or(i32::MAX);
        tx.execute(
            "INSERT INTO tether_schema_migrations (version) VALUES ($1)",
            &[&applied],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(MIGRATIONS.len() - version)
}
