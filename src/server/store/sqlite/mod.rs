//! [`Store`] on a SQLite file in WAL mode, schema migrated from `migrations/sqlite/`.
//!
//! Writes go through one dedicated writer thread that commits many callers'
//! writes per transaction ([`writer`]); reads run on a small pool of
//! read-only connections on tokio's blocking threads ([`readers`]). Each
//! store method is one closure, so a method costs one hand-off whatever the
//! number of statements in it.
//!
//! A database that cannot be opened at start for a reason that may pass
//! (file system read-only or missing, disk full, locked) does not stop the
//! server: the store starts without a write connection, every request gets
//! the fault, and the writer opens it as soon as it can (see [`writer`]).

mod accounts;
mod archive;
mod branches;
mod companions;
mod diagnose;
mod pages;
mod readers;
mod replies;
mod schema;
mod writer;

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use async_trait::async_trait;
use rusqlite::{named_params, Connection, OptionalExtension, Row};

use self::{
    readers::Readers,
    writer::{Writer, WriterLimits},
};
use super::{
    fault::{Fault, FaultCounts, FaultKind, FaultWatch},
    like_escape, new_id, now_rfc3339, ConversationRecord, EditOutcome, MessagePage, NewUserMessage,
    OrphanedReply, ReplyEdit, ReplyRun, SendOutcome, Store, StoreError, Target,
};
use crate::protocol::{
    ClientMsgId, ConversationId, FinishReason, Message, MessageId, Role, Usage, UserId,
};
use crate::server::config::{DatabaseUrl, LimitsConfig, UrlError};

/// SQLite-backed storage; clones share the writer and the readers.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    writer: Writer,
    readers: Readers,
    watch: Arc<FaultWatch>,
}

/// How many connections and queued writes the store keeps (from `[limits]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SqliteTuning {
    /// Reads running at once, and read connections kept open.
    pub readers: usize,
    /// Writes waiting for the writer thread.
    pub writer_queue: usize,
    /// Most writes committed in one transaction.
    pub writer_batch: usize,
    /// How long a statement waits for a lock another process holds.
    pub busy_timeout: Duration,
}

impl From<&LimitsConfig> for SqliteTuning {
    fn from(limits: &LimitsConfig) -> Self {
        Self {
            readers: limits.store_readers,
            writer_queue: limits.store_writer_queue,
            writer_batch: limits.store_writer_batch,
            busy_timeout: limits.store_busy_timeout,
        }
    }
}

impl Default for SqliteTuning {
    fn default() -> Self {
        (&LimitsConfig::defaults()).into()
    }
}

impl SqliteStore {
    /// Opens the database at `url` (a `sqlite:` URL or a plain path, see
    /// [`DatabaseUrl`]) with the default tuning.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let url: DatabaseUrl = url
            .parse()
            .map_err(|e: UrlError| StoreError::Open(format!("database URL {e}")))?;
        match url {
            DatabaseUrl::Sqlite { path } => Self::open(path, SqliteTuning::default()).await,
            DatabaseUrl::Postgres { .. } => Err(StoreError::Open(
                "not a SQLite URL (the PostgreSQL store is store::open's)".into(),
            )),
        }
    }

    /// Opens the SQLite file at `path`, creating file and parent directory
    /// if needed, and migrates it. When that fails for a reason that may
    /// pass ([`FaultKind::is_transient`]), the store starts without it (and
    /// says so in the log); it is opened when a write first gets through.
    pub async fn open(path: impl Into<PathBuf>, tuning: SqliteTuning) -> Result<Self, StoreError> {
        let path = path.into();
        if path.as_os_str().is_empty() {
            return Err(StoreError::Open("no SQLite file path".into()));
        }
        let busy = tuning.busy_timeout;
        let mut open: writer::Open = Box::new({
            let path = path.clone();
            move || open_writer(&path, busy)
        });
        let (first, open) = tokio::task::spawn_blocking(move || (open(), open))
            .await
            .map_err(|_| StoreError::Closed)?;
        let watch = Arc::new(FaultWatch::default());
        let conn = match first {
            Ok(conn) => Some(conn),
            Err(StoreError::Fault(fault)) if fault.kind.is_transient() => {
                tracing::error!(
                    kind = fault.kind.as_str(),
                    error = %fault.detail,
                    path = %path.display(),
                    "database unavailable at start: serving without it, opening it again \
                     with every write until it succeeds"
                );
                watch.writes_failed();
                None
            }
            Err(other) => return Err(other),
        };
        let limits = WriterLimits {
            queue: tuning.writer_queue,
            batch: tuning.writer_batch,
        };
        let writer = Writer::start(conn, open, limits, watch.clone())
            .map_err(|e| StoreError::Open(e.to_string()))?;
        Ok(Self {
            writer,
            readers: Readers::new(path, tuning.readers, busy, watch.clone()),
            watch,
        })
    }

    /// Failed store operations by fault kind, for `/metrics`.
    pub fn fault_counts(&self) -> FaultCounts {
        self.watch.counts().clone()
    }
}

impl SqliteStore {
    /// One statement on the writer; the number of rows it changed.
    async fn execute<const N: usize>(
        &self,
        sql: &'static str,
        params: [String; N],
    ) -> Result<usize, StoreError> {
        self.writer
            .run(move |conn| {
                Ok(conn
                    .prepare_cached(sql)?
                    .execute(rusqlite::params_from_iter(params.iter()))?)
            })
            .await
    }
}

fn open_writer(path: &Path, busy_timeout: Duration) -> Result<Connection, StoreError> {
    open_writer_at(path, busy_timeout).map_err(|err| diagnose::explain(err, path))
}

fn open_writer_at(path: &Path, busy_timeout: Duration) -> Result<Connection, StoreError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| Fault::new(FaultKind::from(&e), format!("{}: {e}", parent.display())))?;
    }
    let mut conn = Connection::open(path)?;
    // SQLite falls back to read-only when it may not write the file; this
    // connection could never write, so it is refused (and retried later).
    if conn.is_readonly(rusqlite::MAIN_DB)? {
        return Err(Fault::new(
            FaultKind::ReadOnly,
            format!("{}: the database file is read-only", path.display()),
        )
        .into());
    }
    conn.busy_timeout(busy_timeout)?;
    // WAL: readers never block the writer; NORMAL: a commit is durable once
    // the WAL is synced at checkpoint (a power cut may lose the last commits,
    // never corrupt the file).
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    // The writer's page cache survives its own commits: 32 MiB keeps the
    // hot pages out of pread.
    conn.pragma_update(None, "cache_size", -32_768)?;
    // Checkpoint every ~40 MiB of WAL instead of every 4 MiB: a page written
    // by many commits is copied back into the database once, not each time.
    conn.pragma_update(None, "wal_autocheckpoint", 10_000)?;
    conn.set_prepared_statement_cache_capacity(64);
    plan_once(&conn)?;
    schema::migrate(&mut conn)?;
    Ok(conn)
}

/// Each statement is planned once, when it is prepared, whatever is bound
/// to it later (SQLite's query planner stability guarantee). Without it
/// SQLite prepares a cached statement again on every run whose plan *could*
/// depend on a bound value: a `LIMIT ?`, or a `conversation_id = ?` that the
/// planner compared against the partial index `one_reply_at_a_time` (a
/// parse and a plan per `send`: 14 % of the writer thread, issue 18).
/// Tether's statements have one good plan each, so nothing is lost.
pub(super) fn plan_once(conn: &Connection) -> Result<(), StoreError> {
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    Ok(())
}

fn conversation_from_row(row: &Row<'_>) -> rusqlite::Result<ConversationRecord> {
    Ok(ConversationRecord {
        id: ConversationId(row.get("id")?),
        user_id: UserId(row.get("user_id")?),
        title: row.get("title")?,
        persona: row.get("persona")?,
        created_at: row.get("created_at")?,
        updated_at: row.get("updated_at")?,
        model: row.get("model")?,
    })
}

/// The columns [`message_from_row`] reads, in its order (read by index:
/// a lookup by name compares every column's name per value).
const MESSAGE_COLUMNS: &str = "id, role, content, finish_reason, created_at, model";

/// A message read with [`MESSAGE_COLUMNS`] (the first columns of
/// [`branches::VIEW_COLUMNS`]), without its alternatives.
fn message_from_row(row: &Row<'_>) -> rusqlite::Result<Message> {
    let role: String = row.get(1)?;
    let finish: Option<String> = row.get(3)?;
    Ok(Message {
        id: MessageId(row.get(0)?),
        role: if role == "user" {
            Role::User
        } else {
            Role::Assistant
        },
        content: row.get(2)?,
        created_at: row.get(4)?,
        finish_reason: finish.as_deref().and_then(FinishReason::parse),
        alternatives: None,
        model: row.get(5)?,
    })
}

/// `NotFound` when a scoped update or delete touched no row.
fn require_row(changed: usize) -> Result<(), StoreError> {
    if changed == 0 {
        Err(StoreError::NotFound)
    } else {
        Ok(())
    }
}

/// A conversation row's columns, as a literal for `concat!` (a statement
/// on the send path is not formatted at every run).
macro_rules! conversation_columns {
    () => {
        "id, user_id, title, persona, created_at, updated_at, model"
    };
}
const CONVERSATION_COLUMNS: &str = conversation_columns!();

/// Inserts a conversation row (its user's row exists).
fn insert_conversation(conn: &Connection, record: &ConversationRecord) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO conversations (id, user_id, title, persona, created_at, updated_at, model) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )?
    .execute(rusqlite::params![
        record.id.as_str(),
        record.user_id.as_str(),
        &record.title,
        &record.persona,
        &record.created_at,
        &record.updated_at,
        &record.model,
    ])?;
    Ok(())
}

/// A user's first conversation brings the user's row: opening a socket or
/// a page stores nothing.
fn ensure_user(conn: &Connection, user: &UserId, now: &str) -> Result<(), StoreError> {
    conn.prepare_cached("INSERT OR IGNORE INTO users (id, created_at) VALUES (?, ?)")?
        .execute([user.as_str(), now])?;
    Ok(())
}

fn find_client_message(
    conn: &Connection,
    user: &str,
    client_msg_id: &str,
) -> Result<Option<(ConversationId, MessageId)>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT conversation_id, message_id FROM client_messages \
             WHERE user_id = ? AND client_msg_id = ?",
        )?
        .query_row([user, client_msg_id], |row| {
            Ok((ConversationId(row.get(0)?), MessageId(row.get(1)?)))
        })
        .optional()?)
}

/// Stores a user message: idempotency check, ownership, conversation, key,
/// message, the reply's empty message and the prompt's history, in one job.
fn add_user_message(conn: &Connection, msg: NewUserMessage) -> Result<SendOutcome, StoreError> {
    // The writer is the only writer, so this check cannot race another send.
    if let Some((conversation_id, message_id)) =
        find_client_message(conn, msg.user_id.as_str(), msg.client_msg_id.as_str())?
    {
        return Ok(SendOutcome::Duplicate {
            conversation_id,
            message_id,
        });
    }
    let now = now_rfc3339();
    let (conversation, greeting) = target_conversation(conn, &msg.user_id, &msg.target, &now)?;
    // An edit's message takes the place of the one it edits.
    let parent = match &msg.replaces {
        Some(edited) => Some(branches::set_aside(
            conn,
            &conversation.id,
            edited,
            Role::User,
        )?),
        None => None,
    };
    let mut message = Message {
        id: MessageId(new_id()),
        role: Role::User,
        content: msg.text,
        created_at: now.clone(),
        finish_reason: None,
        alternatives: None,
        model: None,
    };
    conn.prepare_cached(
        "INSERT INTO client_messages (user_id, client_msg_id, conversation_id, message_id, created_at) \
         VALUES (?, ?, ?, ?, ?)",
    )?
    .execute([
        msg.user_id.as_str(),
        msg.client_msg_id.as_str(),
        conversation.id.as_str(),
        message.id.as_str(),
        &now,
    ])?;
    // Without an edit, it follows the last message shown (a greeting, or
    // nothing: the conversation's first). Every value is a plain parameter:
    // SQLite prepares a statement again whenever a bound value could change
    // its plan (as `COALESCE(?, …)` can), which cost a parse per send.
    let follows = match &parent {
        Some(parent) => parent.clone(),
        None => last_shown(conn, &conversation.id)?,
    };
    conn.prepare_cached(INSERT_USER)?.execute([
        message.id.as_str(),
        conversation.id.as_str(),
        &message.content,
        &message.created_at,
        &follows,
    ])?;
    if let Some(parent) = &parent {
        branches::refresh_path(conn, &conversation.id)?;
        message.alternatives = branches::alternatives_of(conn, parent, &message.id)?;
    }
    let history = match msg.history {
        0 => Vec::new(),
        limit => recent_messages(conn, &conversation.id, limit)?,
    };
    let reply = replies::insert_assistant(
        conn,
        &conversation.id,
        &msg.run,
        (message.id.as_str(), conversation.model.as_deref()),
    )?;
    Ok(SendOutcome::Stored {
        conversation,
        message,
        reply,
        history,
        greeting,
    })
}

/// The conversation a user message goes into: an existing one of the user
/// (touched, `NotFound` if it is not theirs), or a new one (with its
/// greeting stored, returned too).
fn target_conversation(
    conn: &Connection,
    user: &UserId,
    target: &Target,
    now: &str,
) -> Result<(ConversationRecord, Option<Message>), StoreError> {
    Ok(match target {
        Target::Existing(id) => {
            // Ownership check, touch and read in one statement.
            conn.prepare_cached(concat!(
                "UPDATE conversations SET updated_at = ? WHERE id = ? AND user_id = ? \
                 RETURNING ",
                conversation_columns!()
            ))?
            .query_row([now, id.as_str(), user.as_str()], conversation_from_row)
            .optional()?
            .ok_or(StoreError::NotFound)
            .map(|record| (record, None))?
        }
        Target::New {
            persona,
            title,
            greeting,
            model,
        } => {
            ensure_user(conn, user, now)?;
            let record = ConversationRecord {
                id: ConversationId(new_id()),
                user_id: user.clone(),
                title: title.clone(),
                persona: persona.clone(),
                created_at: now.to_owned(),
                updated_at: now.to_owned(),
                model: Some(model.clone()),
            };
            insert_conversation(conn, &record)?;
            let greeting = match greeting {
                Some(text) => {
                    let message = super::greeting_message(text, now);
                    conn.prepare_cached(
                        "INSERT INTO messages (id, conversation_id, role, content, finish_reason, created_at, parent_id) \
                         VALUES (?1, ?2, 'assistant', ?3, 'stop', ?4, ?2)",
                    )?
                    .execute([
                        message.id.as_str(),
                        record.id.as_str(),
                        &message.content,
                        &message.created_at,
                    ])?;
                    Some(message)
                }
                None => None,
            };
            (record, greeting)
        }
    })
}

/// A user message: id, conversation, text, time, the message it follows.
const INSERT_USER: &str =
    "INSERT INTO messages (id, conversation_id, role, content, created_at, parent_id) \
     VALUES (?, ?, 'user', ?, ?, ?)";

const LAST_SHOWN: &str = "SELECT id FROM messages WHERE conversation_id = ? AND active = 1 \
                          ORDER BY seq DESC LIMIT 1";

/// The id of the last message the conversation shows, or the
/// conversation's own id when it shows none (what a first message follows).
pub(super) fn last_shown(
    conn: &Connection,
    conversation: &ConversationId,
) -> Result<String, StoreError> {
    let last: Option<String> = conn
        .prepare_cached(LAST_SHOWN)?
        .query_row([conversation.as_str()], |row| row.get(0))
        .optional()?;
    Ok(last.unwrap_or_else(|| conversation.as_str().to_owned()))
}

/// The model a conversation's replies are asked of (`None`: the default).
pub(super) fn conversation_model(
    conn: &Connection,
    conversation: &ConversationId,
) -> Result<Option<String>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT model FROM conversations WHERE id = ?")?
        .query_row([conversation.as_str()], |row| row.get(0))
        .optional()?
        .flatten())
}

/// The statement of [`recent_messages`]. The limit is written into the SQL
/// (it is a setting, so the cache holds one statement).
fn recent_messages_sql(limit: usize) -> String {
    format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages \
         WHERE conversation_id = ? AND active = 1 AND content != '' ORDER BY seq DESC LIMIT {limit}"
    )
}

/// The newest `limit` messages with text of the path shown, oldest first.
fn recent_messages(
    conn: &Connection,
    conversation: &ConversationId,
    limit: usize,
) -> Result<Vec<Message>, StoreError> {
    let mut newest_first: Vec<Message> = conn
        .prepare_cached(&recent_messages_sql(limit))?
        .query_map([conversation.as_str()], message_from_row)?
        .collect::<Result<_, _>>()?;
    newest_first.reverse();
    Ok(newest_first)
}

#[async_trait]
impl Store for SqliteStore {
    async fn conversation(
        &self,
        user: &UserId,
        id: &ConversationId,
    ) -> Result<ConversationRecord, StoreError> {
        let (user, id) = (user.clone(), id.clone());
        self.readers
            .run(move |conn| {
                conn.prepare_cached(&format!(
                    "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = ? AND user_id = ?"
                ))?
                .query_row([id.as_str(), user.as_str()], conversation_from_row)
                .optional()?
                .ok_or(StoreError::NotFound)
            })
            .await
    }

    async fn list_conversations(
        &self,
        user: &UserId,
        query: Option<&str>,
    ) -> Result<Vec<ConversationRecord>, StoreError> {
        let user = user.clone();
        let pattern = query
            .map(str::trim)
            .filter(|q| !q.is_empty())
            .map(|q| format!("%{}%", like_escape(q)));
        self.readers
            .run(move |conn| {
                let rows = match &pattern {
                    None => conn
                        .prepare_cached(&format!(
                            "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE user_id = ? \
                             ORDER BY updated_at DESC, rowid DESC LIMIT 200"
                        ))?
                        .query_map([user.as_str()], conversation_from_row)?
                        .collect::<Result<_, _>>()?,
                    Some(pattern) => conn
                        .prepare_cached(
                            "SELECT c.id, c.user_id, c.title, c.persona, c.created_at, c.updated_at, c.model \
                             FROM conversations c WHERE c.user_id = :user \
                             AND (c.title LIKE :pattern ESCAPE '\\' \
                                  OR EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = c.id \
                                             AND m.content LIKE :pattern ESCAPE '\\')) \
                             ORDER BY c.updated_at DESC, c.rowid DESC LIMIT 200",
                        )?
                        .query_map(
                            named_params! { ":user": user.as_str(), ":pattern": pattern },
                            conversation_from_row,
                        )?
                        .collect::<Result<_, _>>()?,
                };
                Ok(rows)
            })
            .await
    }

    async fn rename_conversation(
        &self,
        user: &UserId,
        id: &ConversationId,
        title: &str,
    ) -> Result<(), StoreError> {
        let params = [title.to_owned(), id.to_string(), user.to_string()];
        require_row(
            self.execute(
                "UPDATE conversations SET title = ? WHERE id = ? AND user_id = ?",
                params,
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
        let params = [model.to_owned(), id.to_string(), user.to_string()];
        require_row(
            self.execute(
                "UPDATE conversations SET model = ? WHERE id = ? AND user_id = ?",
                params,
            )
            .await?,
        )
    }

    async fn delete_conversation(
        &self,
        user: &UserId,
        id: &ConversationId,
    ) -> Result<(), StoreError> {
        let params = [id.to_string(), user.to_string()];
        require_row(
            self.execute(
                "DELETE FROM conversations WHERE id = ? AND user_id = ?",
                params,
            )
            .await?,
        )
    }

    async fn find_client_message(
        &self,
        user: &UserId,
        client_msg_id: &ClientMsgId,
    ) -> Result<Option<(ConversationId, MessageId)>, StoreError> {
        let (user, key) = (user.clone(), client_msg_id.clone());
        self.readers
            .run(move |conn| find_client_message(conn, user.as_str(), key.as_str()))
            .await
    }

    async fn add_user_message(&self, msg: NewUserMessage) -> Result<SendOutcome, StoreError> {
        self.writer
            .run(move |conn| add_user_message(conn, msg))
            .await
    }

    async fn record_client_message(
        &self,
        user: &UserId,
        client_msg_id: &ClientMsgId,
        conversation: &ConversationId,
        message: &MessageId,
    ) -> Result<bool, StoreError> {
        let (user, key) = (user.clone(), client_msg_id.clone());
        let (conversation, message) = (conversation.clone(), message.clone());
        self.writer
            .run(move |conn| {
                let inserted = conn
                    .prepare_cached(
                        "INSERT OR IGNORE INTO client_messages \
                         (user_id, client_msg_id, conversation_id, message_id, created_at) \
                         VALUES (?, ?, ?, ?, ?)",
                    )?
                    .execute([
                        user.as_str(),
                        key.as_str(),
                        conversation.as_str(),
                        message.as_str(),
                        &now_rfc3339(),
                    ])?;
                Ok(inserted == 1)
            })
            .await
    }

    async fn messages(&self, conversation: &ConversationId) -> Result<Vec<Message>, StoreError> {
        let conversation = conversation.clone();
        self.readers
            .run(move |conn| {
                Ok(conn
                    .prepare_cached(&format!(
                        "SELECT {} FROM messages m \
                         WHERE m.conversation_id = ? AND m.active = 1 ORDER BY m.seq",
                        branches::VIEW_COLUMNS
                    ))?
                    .query_map([conversation.as_str()], branches::view_from_row)?
                    .collect::<Result<_, _>>()?)
            })
            .await
    }

    async fn start_assistant(
        &self,
        conversation: &ConversationId,
        run: &ReplyRun,
        replacing: Option<&MessageId>,
    ) -> Result<Message, StoreError> {
        let (conversation, run, replacing) =
            (conversation.clone(), run.clone(), replacing.cloned());
        self.writer
            .run(move |conn| {
                let model = conversation_model(conn, &conversation)?;
                let Some(replaced) = replacing else {
                    let parent = last_shown(conn, &conversation)?;
                    return replies::insert_assistant(
                        conn,
                        &conversation,
                        &run,
                        (&parent, model.as_deref()),
                    );
                };
                let parent = branches::set_aside(conn, &conversation, &replaced, Role::Assistant)?;
                let mut reply = replies::insert_assistant(
                    conn,
                    &conversation,
                    &run,
                    (&parent, model.as_deref()),
                )?;
                reply.alternatives = branches::alternatives_of(conn, &parent, &reply.id)?;
                Ok(reply)
            })
            .await
    }

    async fn edit_reply(&self, edit: ReplyEdit) -> Result<EditOutcome, StoreError> {
        self.writer
            .run(move |conn| branches::edit_reply(conn, edit))
            .await
    }

    async fn delete_message(
        &self,
        conversation: &ConversationId,
        message: &MessageId,
    ) -> Result<(), StoreError> {
        let (conversation, message) = (conversation.clone(), message.clone());
        self.writer
            .run(move |conn| branches::delete(conn, &conversation, &message))
            .await
    }

    async fn select_alternative(
        &self,
        conversation: &ConversationId,
        message: &MessageId,
        index: u32,
    ) -> Result<(), StoreError> {
        let (conversation, message) = (conversation.clone(), message.clone());
        self.writer
            .run(move |conn| branches::select(conn, &conversation, &message, index))
            .await
    }

    async fn checkpoint_assistant(
        &self,
        id: &MessageId,
        run: &str,
        content: &str,
    ) -> Result<(), StoreError> {
        let (id, run, content) = (id.clone(), run.to_owned(), content.to_owned());
        self.writer
            .run(move |conn| replies::checkpoint(conn, &id, &run, &content))
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
        let (id, run, content) = (id.clone(), run.to_owned(), content.to_owned());
        self.writer
            .run(move |conn| replies::finish(conn, &id, &run, &content, finish_reason, usage))
            .await
    }

    async fn reopen_assistant(
        &self,
        id: &MessageId,
        was: FinishReason,
        run: &ReplyRun,
    ) -> Result<(), StoreError> {
        let (id, run) = (id.clone(), run.clone());
        self.writer
            .run(move |conn| replies::reopen(conn, &id, was, &run))
            .await
    }

    async fn recover_interrupted(&self) -> Result<u64, StoreError> {
        let changed = self
            .execute(
                "UPDATE messages SET finish_reason = 'error' \
                 WHERE role = 'assistant' AND finish_reason IS NULL",
                [],
            )
            .await?;
        Ok(changed as u64)
    }

    async fn heartbeat(&self, instance: &str) -> Result<(), StoreError> {
        let instance = instance.to_owned();
        self.writer
            .run(move |conn| replies::heartbeat(conn, &instance))
            .await
    }

    async fn orphaned_replies(
        &self,
        stale_after: Duration,
    ) -> Result<Vec<OrphanedReply>, StoreError> {
        let cutoff = super::rfc3339_millis(
            time::OffsetDateTime::now_utc()
                - time::Duration::try_from(stale_after).unwrap_or(time::Duration::MAX),
        );
        self.readers
            .run(move |conn| replies::orphaned(conn, &cutoff))
            .await
    }

    async fn recover_reply(
        &self,
        id: &MessageId,
        run: &str,
        content: &str,
    ) -> Result<bool, StoreError> {
        let (id, run, content) = (id.clone(), run.to_owned(), content.to_owned());
        self.writer
            .run(move |conn| replies::recover(conn, &id, &run, &content))
            .await
    }

    async fn shared_setting(&self, key: &str, proposed: &str) -> Result<String, StoreError> {
        let (key, proposed) = (key.to_owned(), proposed.to_owned());
        self.writer
            .run(move |conn| replies::shared_setting(conn, &key, &proposed))
            .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.readers
            .run(|conn| Ok(conn.query_row("SELECT 1", [], |_| Ok(()))?))
            .await?;
        if self.watch.writes_failing() {
            // A real write (page 1, unchanged): it fails while the disk is
            // full or the file read-only or locked, and succeeds once not.
            self.writer
                .run(|conn| {
                    let version: i64 =
                        conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
                    Ok(conn.pragma_update(None, "user_version", version)?)
                })
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
        let (conversation, before) = (conversation.clone(), before.cloned());
        self.readers
            .run(move |conn| pages::messages_before(conn, &conversation, before.as_ref(), limit))
            .await
    }
}

#[cfg(test)]
mod tests {
    //! What only this store has: its writer thread under concurrent
    //! writes. Every store behaviour is in `tests/store_conformance.rs`,
    //! run against this store and the PostgreSQL one alike.

    use super::*;

    /// The bundled SQLite is built with the options `.cargo/config.toml`
    /// gives it (`LIBSQLITE3_FLAGS`): no memory statistics (no mutex
    /// around each malloc), savepoint journals in memory up to 1 MiB (not
    /// a temporary file past 64 KiB).
    #[test]
    fn sqlite_is_built_with_the_options_of_the_writer() {
        let conn = Connection::open_in_memory().expect("in-memory database");
        let options: Vec<String> = conn
            .prepare("PRAGMA compile_options")
            .expect("prepare")
            .query_map([], |row| row.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("options");
        for wanted in ["DEFAULT_MEMSTATUS=0", "STMTJRNL_SPILL=1048576"] {
            assert!(
                options.iter().any(|o| o == wanted),
                "{wanted} not in {options:?}"
            );
        }
    }

    /// A send's statements run as prepared: none is prepared again when
    /// other values are bound (SQLite does that when a bound value may
    /// change a plan, as `COALESCE(?, (SELECT …))` did, and as
    /// `conversation_id = ?` did against the partial index: a parse per send).
    #[test]
    fn the_send_statements_are_never_prepared_again() {
        let mut conn = Connection::open_in_memory().expect("in-memory database");
        plan_once(&conn).expect("planner setting");
        schema::migrate(&mut conn).expect("schema");
        conn.execute_batch(
            "INSERT INTO users VALUES ('u', 't'); \
             INSERT INTO conversations (id, user_id, title, persona, created_at, updated_at) \
             VALUES ('c1', 'u', 't', 'p', 't', 't'), ('c2', 'u', 't', 'p', 't', 't');",
        )
        .expect("rows");
        for (i, conversation) in ["c1", "c2", "c1", "c2"].into_iter().enumerate() {
            let c = ConversationId(conversation.into());
            let parent = last_shown(&conn, &c).expect("last");
            let user = format!("u{i}");
            conn.prepare_cached(INSERT_USER)
                .expect("prepare")
                .execute([user.as_str(), conversation, "hi", "t", &parent])
                .expect("user message");
            recent_messages(&conn, &c, 40).expect("history");
            let run = ReplyRun::new("i");
            replies::insert_assistant(&conn, &c, &run, (&user, Some("m"))).expect("reply");
            replies::finish(
                &conn,
                &replies_last(&conn, &c),
                &run.token,
                "ok",
                FinishReason::Stop,
                None,
            )
            .expect("finish");
        }
        let history = recent_messages_sql(40);
        for sql in [
            INSERT_USER,
            replies::INSERT_ASSISTANT,
            LAST_SHOWN,
            history.as_str(),
        ] {
            let stmt = conn.prepare_cached(sql).expect("cached");
            assert_eq!(
                stmt.get_status(rusqlite::StatementStatus::RePrepare),
                0,
                "prepared again: {sql}"
            );
        }
    }

    fn replies_last(conn: &Connection, c: &ConversationId) -> MessageId {
        MessageId(last_shown(conn, c).expect("last"))
    }

    async fn store() -> (SqliteStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}/t.db", dir.path().display());
        (SqliteStore::connect(&url).await.expect("connects"), dir)
    }

    /// A new conversation with persona `p`, titled `t`.
    fn new_conversation() -> Target {
        Target::New {
            persona: "p".into(),
            title: "t".into(),
            greeting: None,
            model: "m".into(),
        }
    }

    fn new_msg(user: &str, key: &str, target: Target) -> NewUserMessage {
        NewUserMessage {
            user_id: user.into(),
            client_msg_id: key.into(),
            target,
            text: "hello".into(),
            history: 40,
            run: run("r"),
            replaces: None,
        }
    }

    /// A run of instance `i` with token `token`.
    fn run(token: &str) -> ReplyRun {
        ReplyRun {
            instance: "i".into(),
            token: token.into(),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writers_never_see_database_locked() {
        let (s, _dir) = store().await;
        let mut tasks = Vec::new();
        for u in 0..40 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                let user: UserId = format!("user{u}").as_str().into();
                let mut target = new_conversation();
                for m in 0..10 {
                    let outcome = s
                        .add_user_message(new_msg(user.as_str(), &format!("k{m}"), target.clone()))
                        .await
                        .expect("stored without SQLITE_BUSY");
                    let SendOutcome::Stored {
                        conversation,
                        reply,
                        ..
                    } = outcome
                    else {
                        panic!("stored")
                    };
                    s.finish_assistant(&reply.id, "r", "ok", FinishReason::Stop, None)
                        .await
                        .expect("finish");
                    target = Target::Existing(conversation.id);
                }
            }));
        }
        for task in tasks {
            task.await.expect("task");
        }
    }
}
