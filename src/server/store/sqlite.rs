//! [`Store`] on a SQLite file (WAL mode), migrations embedded from `migrations/`.
//!
//! SQLite allows one writer at a time; a deferred transaction that reads and
//! then writes fails with `SQLITE_BUSY` when another connection wrote in
//! between, whatever the busy timeout. So every write goes through one writer
//! connection (writes queue in-process, in order), and reads use a pool.

use std::{str::FromStr, time::Duration};

use async_trait::async_trait;
use sqlx::{
    sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
    },
    Row, SqlitePool,
};

use super::{
    new_id, now_rfc3339, ConversationRecord, NewUserMessage, SendOutcome, Store, StoreError, Target,
};
use crate::protocol::{
    ClientMsgId, ConversationId, FinishReason, Message, MessageId, Role, Usage, UserId,
};

/// SQLite-backed storage.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    /// Exactly one connection: all writes.
    writer: SqlitePool,
    /// Readers (WAL lets them run beside the writer).
    reader: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating file and parent directory if needed) and migrates.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        if let Some(parent) = options.get_filename().parent() {
            if !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent).map_err(|e| StoreError::Database(e.into()))?;
            }
        }
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("./migrations").run(&writer).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options.read_only(true))
            .await?;
        Ok(Self { writer, reader })
    }
}

fn conversation_from_row(row: &SqliteRow) -> Result<ConversationRecord, sqlx::Error> {
    Ok(ConversationRecord {
        id: ConversationId(row.try_get("id")?),
        user_id: UserId(row.try_get("user_id")?),
        title: row.try_get("title")?,
        persona: row.try_get("persona")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn message_from_row(row: &SqliteRow) -> Result<Message, sqlx::Error> {
    let role: String = row.try_get("role")?;
    let finish: Option<String> = row.try_get("finish_reason")?;
    Ok(Message {
        id: MessageId(row.try_get("id")?),
        role: if role == "user" {
            Role::User
        } else {
            Role::Assistant
        },
        content: row.try_get("content")?,
        created_at: row.try_get("created_at")?,
        finish_reason: finish.as_deref().and_then(FinishReason::parse),
    })
}

/// Escapes `%`, `_` and `\` for a `LIKE … ESCAPE '\'` pattern.
fn like_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

/// `NotFound` when a scoped update or delete touched no row.
fn require_row(done: sqlx::sqlite::SqliteQueryResult) -> Result<(), StoreError> {
    if done.rows_affected() == 0 {
        Err(StoreError::NotFound)
    } else {
        Ok(())
    }
}

fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}

const CONVERSATION_COLUMNS: &str = "id, user_id, title, persona, created_at, updated_at";

#[async_trait]
impl Store for SqliteStore {
    async fn ensure_user(&self, user: &UserId) -> Result<(), StoreError> {
        sqlx::query("INSERT OR IGNORE INTO users (id, created_at) VALUES (?, ?)")
            .bind(user.as_str())
            .bind(now_rfc3339())
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn conversation(
        &self,
        user: &UserId,
        id: &ConversationId,
    ) -> Result<ConversationRecord, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = ? AND user_id = ?"
        ))
        .bind(id.as_str())
        .bind(user.as_str())
        .fetch_optional(&self.reader)
        .await?
        .ok_or(StoreError::NotFound)?;
        Ok(conversation_from_row(&row)?)
    }

    async fn list_conversations(
        &self,
        user: &UserId,
        query: Option<&str>,
    ) -> Result<Vec<ConversationRecord>, StoreError> {
        let rows = match query.map(str::trim).filter(|q| !q.is_empty()) {
            None => {
                sqlx::query(&format!(
                    "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE user_id = ? \
                     ORDER BY updated_at DESC, rowid DESC LIMIT 200"
                ))
                .bind(user.as_str())
                .fetch_all(&self.reader)
                .await?
            }
            Some(q) => {
                let pattern = format!("%{}%", like_escape(q));
                sqlx::query(
                    "SELECT c.id, c.user_id, c.title, c.persona, c.created_at, c.updated_at \
                     FROM conversations c WHERE c.user_id = ? AND (c.title LIKE ?2 ESCAPE '\\' \
                     OR EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = c.id \
                                AND m.content LIKE ?2 ESCAPE '\\')) \
                     ORDER BY c.updated_at DESC, c.rowid DESC LIMIT 200",
                )
                .bind(user.as_str())
                .bind(pattern)
                .fetch_all(&self.reader)
                .await?
            }
        };
        Ok(rows
            .iter()
            .map(conversation_from_row)
            .collect::<Result<_, _>>()?)
    }

    async fn rename_conversation(
        &self,
        user: &UserId,
        id: &ConversationId,
        title: &str,
    ) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE conversations SET title = ? WHERE id = ? AND user_id = ?")
            .bind(title)
            .bind(id.as_str())
            .bind(user.as_str())
            .execute(&self.writer)
            .await?;
        require_row(done)
    }

    async fn delete_conversation(
        &self,
        user: &UserId,
        id: &ConversationId,
    ) -> Result<(), StoreError> {
        let done = sqlx::query("DELETE FROM conversations WHERE id = ? AND user_id = ?")
            .bind(id.as_str())
            .bind(user.as_str())
            .execute(&self.writer)
            .await?;
        require_row(done)
    }

    async fn find_client_message(
        &self,
        user: &UserId,
        client_msg_id: &ClientMsgId,
    ) -> Result<Option<(ConversationId, MessageId)>, StoreError> {
        let row = sqlx::query(
            "SELECT conversation_id, message_id FROM client_messages \
             WHERE user_id = ? AND client_msg_id = ?",
        )
        .bind(user.as_str())
        .bind(client_msg_id.as_str())
        .fetch_optional(&self.reader)
        .await?;
        Ok(match row {
            Some(row) => Some((
                ConversationId(row.try_get("conversation_id")?),
                MessageId(row.try_get("message_id")?),
            )),
            None => None,
        })
    }

    async fn add_user_message(&self, msg: NewUserMessage) -> Result<SendOutcome, StoreError> {
        let now = now_rfc3339();
        let mut tx = self.writer.begin().await?;
        let conversation = match &msg.target {
            Target::Existing(id) => {
                // Ownership check, touch and read in one statement.
                let row = sqlx::query(&format!(
                    "UPDATE conversations SET updated_at = ? WHERE id = ? AND user_id = ? \
                     RETURNING {CONVERSATION_COLUMNS}"
                ))
                .bind(&now)
                .bind(id.as_str())
                .bind(msg.user_id.as_str())
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(StoreError::NotFound)?;
                conversation_from_row(&row)?
            }
            Target::New { persona, title } => {
                let record = ConversationRecord {
                    id: ConversationId(new_id()),
                    user_id: msg.user_id.clone(),
                    title: title.clone(),
                    persona: persona.clone(),
                    created_at: now.clone(),
                    updated_at: now.clone(),
                };
                sqlx::query(
                    "INSERT INTO conversations (id, user_id, title, persona, created_at, updated_at) \
                     VALUES (?, ?, ?, ?, ?, ?)",
                )
                .bind(record.id.as_str())
                .bind(record.user_id.as_str())
                .bind(&record.title)
                .bind(&record.persona)
                .bind(&record.created_at)
                .bind(&record.updated_at)
                .execute(&mut *tx)
                .await?;
                record
            }
        };
        let message = Message {
            id: MessageId(new_id()),
            role: Role::User,
            content: msg.text,
            created_at: now.clone(),
            finish_reason: None,
        };
        let key = sqlx::query(
            "INSERT INTO client_messages (user_id, client_msg_id, conversation_id, message_id, created_at) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(msg.user_id.as_str())
        .bind(msg.client_msg_id.as_str())
        .bind(conversation.id.as_str())
        .bind(message.id.as_str())
        .bind(&now)
        .execute(&mut *tx)
        .await;
        if let Err(err) = key {
            if is_unique_violation(&err) {
                // A concurrent request with the same key won: report its result.
                drop(tx);
                return match self
                    .find_client_message(&msg.user_id, &msg.client_msg_id)
                    .await?
                {
                    Some((conversation_id, message_id)) => Ok(SendOutcome::Duplicate {
                        conversation_id,
                        message_id,
                    }),
                    None => Err(StoreError::Database(err)),
                };
            }
            return Err(err.into());
        }
        sqlx::query(
            "INSERT INTO messages (id, conversation_id, role, content, created_at) \
             VALUES (?, ?, 'user', ?, ?)",
        )
        .bind(message.id.as_str())
        .bind(conversation.id.as_str())
        .bind(&message.content)
        .bind(&message.created_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(SendOutcome::Stored {
            conversation,
            message,
        })
    }

    async fn record_client_message(
        &self,
        user: &UserId,
        client_msg_id: &ClientMsgId,
        conversation: &ConversationId,
        message: &MessageId,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT OR IGNORE INTO client_messages \
             (user_id, client_msg_id, conversation_id, message_id, created_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(user.as_str())
        .bind(client_msg_id.as_str())
        .bind(conversation.as_str())
        .bind(message.as_str())
        .bind(now_rfc3339())
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn messages(&self, conversation: &ConversationId) -> Result<Vec<Message>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, role, content, finish_reason, created_at FROM messages \
             WHERE conversation_id = ? ORDER BY seq",
        )
        .bind(conversation.as_str())
        .fetch_all(&self.reader)
        .await?;
        Ok(rows
            .iter()
            .map(message_from_row)
            .collect::<Result<_, _>>()?)
    }

    async fn start_assistant(&self, conversation: &ConversationId) -> Result<Message, StoreError> {
        let message = Message {
            id: MessageId(new_id()),
            role: Role::Assistant,
            content: String::new(),
            created_at: now_rfc3339(),
            finish_reason: None,
        };
        sqlx::query(
            "INSERT INTO messages (id, conversation_id, role, content, created_at) \
             VALUES (?, ?, 'assistant', '', ?)",
        )
        .bind(message.id.as_str())
        .bind(conversation.as_str())
        .bind(&message.created_at)
        .execute(&self.writer)
        .await?;
        Ok(message)
    }

    async fn finish_assistant(
        &self,
        id: &MessageId,
        content: &str,
        finish_reason: FinishReason,
        usage: Option<Usage>,
    ) -> Result<(), StoreError> {
        let now = now_rfc3339();
        let mut tx = self.writer.begin().await?;
        let done = sqlx::query(
            "UPDATE messages SET content = ?, finish_reason = ?, prompt_tokens = ?, \
             completion_tokens = ? WHERE id = ?",
        )
        .bind(content)
        .bind(finish_reason.as_str())
        .bind(usage.map(|u| u.prompt_tokens))
        .bind(usage.map(|u| u.completion_tokens))
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
        // NotFound: the conversation was deleted while the reply streamed.
        require_row(done)?;
        sqlx::query(
            "UPDATE conversations SET updated_at = ? \
             WHERE id = (SELECT conversation_id FROM messages WHERE id = ?)",
        )
        .bind(&now)
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn delete_message(
        &self,
        conversation: &ConversationId,
        id: &MessageId,
    ) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM messages WHERE id = ? AND conversation_id = ?")
            .bind(id.as_str())
            .bind(conversation.as_str())
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn recover_interrupted(&self) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE messages SET finish_reason = 'error' \
             WHERE role = 'assistant' AND finish_reason IS NULL",
        )
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store() -> (SqliteStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}/t.db", dir.path().display());
        (SqliteStore::connect(&url).await.expect("connects"), dir)
    }

    fn new_msg(user: &str, key: &str, target: Target) -> NewUserMessage {
        NewUserMessage {
            user_id: user.into(),
            client_msg_id: key.into(),
            target,
            text: "hello".into(),
        }
    }

    #[tokio::test]
    async fn same_client_msg_id_is_stored_once() {
        let (s, _dir) = store().await;
        s.ensure_user(&"u".into()).await.expect("user");
        let new = Target::New {
            persona: "companion".into(),
            title: "t".into(),
        };
        let first = s
            .add_user_message(new_msg("u", "k1", new.clone()))
            .await
            .expect("stored");
        let SendOutcome::Stored {
            conversation,
            message,
        } = first
        else {
            panic!("first send must be stored")
        };
        let second = s
            .add_user_message(new_msg("u", "k1", new))
            .await
            .expect("answered");
        match second {
            SendOutcome::Duplicate {
                conversation_id,
                message_id,
            } => {
                assert_eq!(conversation_id, conversation.id);
                assert_eq!(message_id, message.id);
            }
            SendOutcome::Stored { .. } => panic!("duplicate was stored twice"),
        }
        assert_eq!(
            s.messages(&conversation.id).await.expect("messages").len(),
            1
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writers_never_see_database_locked() {
        let (s, _dir) = store().await;
        let mut tasks = Vec::new();
        for u in 0..40 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                let user: UserId = format!("user{u}").as_str().into();
                s.ensure_user(&user).await.expect("user");
                let mut target = Target::New {
                    persona: "p".into(),
                    title: "t".into(),
                };
                for m in 0..10 {
                    let outcome = s
                        .add_user_message(new_msg(user.as_str(), &format!("k{m}"), target.clone()))
                        .await
                        .expect("stored without SQLITE_BUSY");
                    let SendOutcome::Stored { conversation, .. } = outcome else {
                        panic!("stored")
                    };
                    let reply = s.start_assistant(&conversation.id).await.expect("start");
                    s.finish_assistant(&reply.id, "ok", FinishReason::Stop, None)
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

    #[tokio::test]
    async fn other_users_conversation_is_not_found() {
        let (s, _dir) = store().await;
        for u in ["alice", "bob"] {
            s.ensure_user(&u.into()).await.expect("user");
        }
        let SendOutcome::Stored { conversation, .. } = s
            .add_user_message(new_msg(
                "alice",
                "k",
                Target::New {
                    persona: "p".into(),
                    title: "t".into(),
                },
            ))
            .await
            .expect("stored")
        else {
            panic!("stored")
        };
        assert!(matches!(
            s.conversation(&"bob".into(), &conversation.id).await,
            Err(StoreError::NotFound)
        ));
        assert!(matches!(
            s.add_user_message(new_msg(
                "bob",
                "k2",
                Target::Existing(conversation.id.clone())
            ))
            .await,
            Err(StoreError::NotFound)
        ));
        assert!(matches!(
            s.delete_conversation(&"bob".into(), &conversation.id).await,
            Err(StoreError::NotFound)
        ));
    }

    #[tokio::test]
    async fn search_finds_titles_and_message_text_of_the_user_only() {
        let (s, _dir) = store().await;
        for u in ["alice", "bob"] {
            s.ensure_user(&u.into()).await.expect("user");
        }
        let new = |title: &str| Target::New {
            persona: "p".into(),
            title: title.into(),
        };
        let mut msg = new_msg("alice", "k1", new("Beach trip"));
        msg.text = "let's plan".into();
        s.add_user_message(msg).await.expect("stored");
        let mut msg = new_msg("alice", "k2", new("Work"));
        msg.text = "the sea was 100% calm_today".into();
        s.add_user_message(msg).await.expect("stored");
        let mut msg = new_msg("bob", "k3", new("Beach for bob"));
        msg.text = "sea".into();
        s.add_user_message(msg).await.expect("stored");
        let alice: UserId = "alice".into();
        let titles =
            |v: Vec<ConversationRecord>| v.into_iter().map(|c| c.title).collect::<Vec<_>>();
        assert_eq!(
            titles(s.list_conversations(&alice, None).await.expect("list")).len(),
            2
        );
        assert_eq!(
            titles(
                s.list_conversations(&alice, Some("beach"))
                    .await
                    .expect("q")
            ),
            ["Beach trip"]
        );
        assert_eq!(
            titles(s.list_conversations(&alice, Some("sea")).await.expect("q")),
            ["Work"]
        );
        assert_eq!(
            titles(s.list_conversations(&alice, Some("100%")).await.expect("q")),
            ["Work"]
        );
        assert!(
            s.list_conversations(&alice, Some("0%c"))
                .await
                .expect("q")
                .is_empty(),
            "% is literal"
        );
    }

    #[tokio::test]
    async fn interrupted_assistant_messages_are_recovered_as_errors() {
        let (s, _dir) = store().await;
        s.ensure_user(&"u".into()).await.expect("user");
        let SendOutcome::Stored { conversation, .. } = s
            .add_user_message(new_msg(
                "u",
                "k",
                Target::New {
                    persona: "p".into(),
                    title: "t".into(),
                },
            ))
            .await
            .expect("stored")
        else {
            panic!("stored")
        };
        let reply = s.start_assistant(&conversation.id).await.expect("started");
        assert_eq!(s.recover_interrupted().await.expect("recovered"), 1);
        let messages = s.messages(&conversation.id).await.expect("messages");
        assert_eq!(messages[1].id, reply.id);
        assert_eq!(messages[1].finish_reason, Some(FinishReason::Error));
    }
}
