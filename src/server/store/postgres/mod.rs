//! [`Store`] on PostgreSQL, schema migrated from `migrations/postgres/`.
//!
//! `tokio-postgres` connections in a `deadpool-postgres` pool
//! (`DATABASE_POOL_SIZE`), no TLS (a local pooler or proxy terminates it).
//! Each method borrows a connection, runs its statements (prepared once per
//! connection and cached) and gives it back; a method that writes more than
//! one row does it in one transaction or one statement, so it is all or
//! nothing like SQLite's. Concurrency comes from the database: idempotency
//! keys are claimed by `INSERT … ON CONFLICT DO NOTHING`, so two instances
//! (or two connections) that receive the same `client_msg_id` store it once.
//!
//! Errors become [`Fault`]s ([`classify`]) and are counted and logged by the
//! same [`FaultWatch`] as SQLite's. Unlike SQLite's store this one does not
//! start without its database: the migration needs it, and an instance of
//! a cluster that cannot reach the database is better restarted by its
//! supervisor than serving errors.

mod accounts;
mod archive;
mod branches;
mod classify;
mod companions;
mod pages;
mod replies;
mod rows;
mod schema;
mod send;

use std::{future::Future, str::FromStr, sync::Arc, time::Duration};

use async_trait::async_trait;
use deadpool_postgres::{Client, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::{types::ToSql, NoTls, Row};

use self::rows::CONVERSATION_COLUMNS;
use super::{
    fault::{FaultCounts, FaultWatch},
    like_escape, now_rfc3339, ConversationRecord, EditOutcome, MessagePage, NewUserMessage,
    OrphanedReply, ReplyEdit, ReplyRun, SendOutcome, Store, StoreError,
};
use crate::protocol::{
    ClientMsgId, ConversationId, FinishReason, Message, MessageId, Usage, UserId,
};
use crate::server::config::{LimitsConfig, PostgresUrl};

/// Statement parameters.
type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// PostgreSQL-backed storage; clones share the pool.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    watch: Arc<FaultWatch>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("pool", &self.pool.status())
            .finish_non_exhaustive()
    }
}

/// How many connections the store keeps and how long a query waits for one
/// (from `[limits]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PgTuning {
    /// Connections kept open; more queries at once wait for one.
    pub pool_size: usize,
    /// How long a query waits for a free connection, and a new connection
    /// may take to open, before it fails as `unavailable`.
    pub wait_timeout: Duration,
}

impl From<&LimitsConfig> for PgTuning {
    fn from(limits: &LimitsConfig) -> Self {
        Self {
            pool_size: limits.database_pool_size,
            wait_timeout: limits.store_busy_timeout,
        }
    }
}

impl PgStore {
    /// Connects to the database at `url` and migrates it; the database must
    /// exist and answer.
    pub async fn open(url: &PostgresUrl, tuning: PgTuning) -> Result<Self, StoreError> {
        let mut config = tokio_postgres::Config::from_str(url.expose())
            .map_err(|e| StoreError::Open(format!("PostgreSQL URL {url}: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(tuning.wait_timeout);
        }
        if config.get_application_name().is_none() {
            config.application_name("tether");
        }
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(tuning.pool_size.max(1))
            .wait_timeout(Some(tuning.wait_timeout))
            .create_timeout(Some(tuning.wait_timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Open(e.to_string()))?;
        let mut client = pool.get().await?;
        let applied = schema::migrate(&mut client).await?;
        tracing::info!(database = %url, applied, "PostgreSQL store ready");
        Ok(Self {
            pool,
            watch: Arc::new(FaultWatch::default()),
        })
    }

    /// Failed store operations by fault kind, for `/metrics`.
    pub fn fault_counts(&self) -> FaultCounts {
        self.watch.counts().clone()
    }

    /// Runs `work` on a pooled connection; a fault is counted and logged
    /// as a failed read.
    async fn reading<T, Work>(&self, work: impl FnOnce(Client) -> Work) -> Result<T, StoreError>
    where
        Work: Future<Output = Result<T, StoreError>>,
    {
        let result = match self.pool.get().await {
            Ok(client) => work(client).await,
            Err(err) => Err(err.into()),
        };
        if let Err(StoreError::Fault(fault)) = &result {
            self.watch.failed("read", fault);
        }
        result
    }

    /// Runs `work` on a pooled connection; a fault is counted and logged
    /// as a failed write, and makes `ping` try a write until one succeeds.
    async fn writing<T, Work>(&self, work: impl FnOnce(Client) -> Work) -> Result<T, StoreError>
    where
        Work: Future<Output = Result<T, StoreError>>,
    {
        let result = match self.pool.get().await {
            Ok(client) => work(client).await,
            Err(err) => Err(err.into()),
        };
        match &result {
            Err(StoreError::Fault(fault)) => {
                self.watch.failed("write", fault);
                self.watch.writes_failed();
            }
            // Writes get through (again): the watch logs a recovery once.
            _ => self.watch.writes_ok(),
        }
        result
    }

    /// One reading statement; its rows.
    async fn query(&self, sql: &str, params: Params<'_>) -> Result<Vec<Row>, StoreError> {
        self.reading(|client| async move {
            let stmt = client.prepare_cached(sql).await?;
            Ok(client.query(&stmt, params).await?)
        })
        .await
    }

    /// One writing statement; the number of rows it changed.
    async fn execute(&self, sql: &str, params: Params<'_>) -> Result<u64, StoreError> {
        self.writing(|client| async move {
            let stmt = client.prepare_cached(sql).await?;
            Ok(client.execute(&stmt, params).await?)
        })
        .await
    }
}

/// `NotFound` when a scoped update or delete touched no row.
fn require_row(changed: u64) -> Result<(), StoreError> {
    if changed == 0 {
        Err(StoreError::NotFound)
    } else {
        Ok(())
    }
}

#[async_trait]
impl Store for PgStore {
    async fn conversation(
        &self,
        user: &UserId,
        id: &ConversationId,
    ) -> Result<ConversationRecord, StoreError> {
        let sql = format!(
            "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = $1 AND user_id = $2"
        );
        let rows = self.query(&sql, &[&id.as_str(), &user.as_str()]).await?;
        rows.first()
            .map(rows::conversation)
            .unwrap_or(Err(StoreError::NotFound))
    }

    async fn list_conversations(
        &self,
        user: &UserId,
        query: Option<&str>,
    ) -> Result<Vec<ConversationRecord>, StoreError> {
        let pattern = query
            .map(str::trim)
            .filter(|q| !q.is_empty())
            .map(|q| format!("%{}%", like_escape(q)));
        let rows = match &pattern {
            None => {
                let sql = format!(
                    "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE user_id = $1 \
                     ORDER BY updated_at DESC, seq DESC LIMIT 200"
                );
                self.query(&sql, &[&user.as_str()]).await?
            }
            Some(pattern) => {
                let sql = "SELECT c.id, c.user_id, c.title, c.persona, c.created_at, c.updated_at, c.model \
                     FROM conversations c WHERE c.user_id = $1 \
                     AND (c.title ILIKE $2 ESCAPE '\\' \
                          OR EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = c.id \
                                     AND m.content ILIKE $2 ESCAPE '\\')) \
                     ORDER BY c.updated_at DESC, c.seq DESC LIMIT 200";
                self.query(sql, &[&user.as_str(), pattern]).await?
            }
        };
        rows::conversations(&rows)
    }

    async fn rename_conversation(
        &self,
        user: &UserId,
        id: &ConversationId,
        title: &str,
    ) -> Result<(), StoreError> {
        require_row(
            self.execute(
                "UPDATE conversations SET title = $1 WHERE id = $2 AND user_id = $3",
                &[&title, &id.as_str(), &user.as_str()],
            )
            .await?,
        )
    }

    async fn set_conversation_model(
        &self,
        user: &UserId,
        id: &ConversationId,
        model: &str,
    ) -> Result<(), StoreError> {
        require_row(
            self.execute(
                "UPDATE conversations SET model = $1 WHERE id = $2 AND user_id = $3",
                &[&model, &id.as_str(), &user.as_str()],
            )
            .await?,
        )
    }

    async fn delete_conversation(
        &self,
        user: &UserId,
        id: &ConversationId,
    ) -> Result<(), StoreError> {
        require_row(
            self.execute(
                "DELETE FROM conversations WHERE id = $1 AND user_id = $2",
                &[&id.as_str(), &user.as_str()],
            )
            .await?,
        )
    }

    async fn find_client_message(
        &self,
        user: &UserId,
        client_msg_id: &ClientMsgId,
    ) -> Result<Option<(ConversationId, MessageId)>, StoreError> {
        self.reading(|client| async move {
            send::find_client_message(&client, user, client_msg_id.as_str()).await
        })
        .await
    }

    async fn add_user_message(&self, msg: NewUserMessage) -> Result<SendOutcome, StoreError> {
        self.writing(|mut client| async move { send::add_user_message(&mut client, msg).await })
            .await
    }

    async fn record_client_message(
        &self,
        user: &UserId,
        client_msg_id: &ClientMsgId,
        conversation: &ConversationId,
        message: &MessageId,
    ) -> Result<bool, StoreError> {
        let inserted = self
            .execute(
                send::CLAIM_KEY,
                &[
                    &user.as_str(),
                    &client_msg_id.as_str(),
                    &conversation.as_str(),
                    &message.as_str(),
                    &now_rfc3339(),
                ],
            )
            .await?;
        Ok(inserted == 1)
    }

    async fn messages(&self, conversation: &ConversationId) -> Result<Vec<Message>, StoreError> {
        let sql = format!(
            "SELECT {} FROM messages m WHERE m.conversation_id = $1 AND m.active ORDER BY m.seq",
            branches::VIEW_COLUMNS
        );
        let rows = self.query(&sql, &[&conversation.as_str()]).await?;
        rows::views(&rows)
    }

    async fn start_assistant(
        &self,
        conversation: &ConversationId,
        run: &ReplyRun,
        replacing: Option<&MessageId>,
    ) -> Result<Message, StoreError> {
        self.writing(|mut client| async move {
            replies::start(&mut client, conversation, run, replacing).await
        })
        .await
    }

    async fn edit_reply(&self, edit: ReplyEdit) -> Result<EditOutcome, StoreError> {
        self.writing(|mut client| async move { branches::edit_reply(&mut client, edit).await })
            .await
    }

    async fn delete_message(
        &self,
        conversation: &ConversationId,
        message: &MessageId,
    ) -> Result<(), StoreError> {
        self.writing(|mut client| async move {
            branches::delete(&mut client, conversation, message).await
        })
        .await
    }

    async fn select_alternative(
        &self,
        conversation: &ConversationId,
        message: &MessageId,
        index: u32,
    ) -> Result<(), StoreError> {
        self.writing(|mut client| async move {
            branches::select(&mut client, conversation, message, index).await
        })
        .await
    }

    async fn checkpoint_assistant(
        &self,
        id: &MessageId,
        run: &str,
        content: &str,
    ) -> Result<(), StoreError> {
        self.writing(|client| async move { replies::checkpoint(&client, id, run, content).await })
            .await
    }

    async fn finish_assistant(
        &self,
        id: &MessageId,
        run: &str,
        content: &str,
        finish_reason: FinishReason,
        usage: Option<Usage>,
    ) -> Result<(), StoreError> {
        self.writing(|client| async move {
            replies::finish(&client, id, run, content, finish_reason, usage).await
        })
        .await
    }

    async fn reopen_assistant(
        &self,
        id: &MessageId,
        was: FinishReason,
        run: &ReplyRun,
    ) -> Result<(), StoreError> {
        self.writing(|mut client| async move { replies::reopen(&mut client, id, was, run).await })
            .await
    }

    async fn recover_interrupted(&self) -> Result<u64, StoreError> {
        self.execute(
            "UPDATE messages SET finish_reason = 'error' \
             WHERE role = 'assistant' AND finish_reason IS NULL",
            &[],
        )
        .await
    }

    async fn heartbeat(&self, instance: &str) -> Result<(), StoreError> {
        self.writing(|client| async move { replies::heartbeat(&client, instance).await })
            .await
    }

    async fn orphaned_replies(
        &self,
        stale_after: Duration,
    ) -> Result<Vec<OrphanedReply>, StoreError> {
        self.reading(|client| async move { replies::orphaned(&client, stale_after).await })
            .await
    }

    async fn recover_reply(
        &self,
        id: &MessageId,
        run: &str,
        content: &str,
    ) -> Result<bool, StoreError> {
        self.writing(|client| async move { replies::recover(&client, id, run, content).await })
            .await
    }

    async fn shared_setting(&self, key: &str, proposed: &str) -> Result<String, StoreError> {
        self.writing(|client| async move { replies::shared_setting(&client, key, proposed).await })
            .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.query("SELECT 1", &[]).await?;
        if self.watch.writes_failing() {
            // A real write that changes nothing: it fails while the disk is
            // full or the database read-only, and succeeds once not.
            self.execute(
                "UPDATE tether_schema_migrations SET version = version WHERE version = 1",
                &[],
            )
            .await?;
        }
        Ok(())
    }

    async fn messages_before(
        &self,
        conversation: &ConversationId,
        before: Option<&MessageId>,
        limit: usize,
    ) -> Result<Option<MessagePage>, StoreError> {
        self.reading(|client| async move {
            pages::messages_before(&client, conversation, before, limit).await
        })
        .await
    }
}
