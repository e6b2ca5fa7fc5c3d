//! Durable storage of users, conversations, messages and idempotency keys.
//!
//! Chat logic talks to the [`Store`] trait only; [`open`] picks SQLite
//! ([`SqliteStore`]) or PostgreSQL ([`PgStore`]) by `DATABASE_URL`, and
//! `tests/store_conformance.rs` holds both to the same behaviour. Every method is scoped so that one user can
//! never read another user's rows: lookups by conversation take the owner too
//! and answer [`StoreError::NotFound`] for anybody else. Database failures
//! leave the store classified ([`Fault`], see [`fault`]).

pub mod accounts;
pub mod archive;
pub mod companions;
pub mod fault;
mod postgres;
mod sqlite;

pub use accounts::{
    AccountRecord, AccountRole, AccountStatus, AccountStore, Created, InviteRecord, NewAccount,
    PasskeyRecord, SessionRecord, UsageDay,
};
pub use archive::{ArchiveStore, ConversationTree, TreeMessage};
pub use companions::{Avatar, CompanionRecord, CompanionStore};
pub use fault::{Fault, FaultCounts, FaultKind};
pub use postgres::{PgStore, PgTuning};
pub use sqlite::{SqliteStore, SqliteTuning};

use std::sync::Arc;

use async_trait::async_trait;
use thiserror::Error;

use crate::server::config::{DatabaseUrl, LimitsConfig};

use crate::protocol::{
    ClientMsgId, ConversationId, FinishReason, Message, MessageId, Usage, UserId,
};

/// What can go wrong in storage.
#[derive(Clone, Debug, Error)]
pub enum StoreError {
    /// The row does not exist, or belongs to somebody else.
    #[error("not found")]
    NotFound,
    /// The database failed: disk full, read-only, locked, … ([`FaultKind`]).
    /// A write that failed so was not stored, nor anything of its batch.
    #[error("database error: {0}")]
    Fault(#[from] Fault),
    /// No usable database location (an empty path, a bad URL).
    #[error("cannot open the database: {0}")]
    Open(String),
    #[error("migration failed: {0}")]
    Migrate(String),
    /// The storage threads are gone (shutting down, or a bug in a query).
    #[error("storage is closed")]
    Closed,
    /// A reply already runs in the conversation: the database holds at most
    /// one unfinished assistant message per conversation (the cluster-wide
    /// backstop of the reply slot).
    #[error("a reply is already running in this conversation")]
    Busy,
    /// A write to a reply that is no longer this run's: it was finished, or
    /// taken over by another run (its fencing token changed).
    #[error("the reply was finished or taken over by another run")]
    Fenced,
}

impl From<rusqlite::Error> for StoreError {
    fn from(err: rusqlite::Error) -> Self {
        StoreError::Fault(err.into())
    }
}

impl StoreError {
    /// The fault, when the database failed.
    pub fn fault(&self) -> Option<&Fault> {
        match self {
            StoreError::Fault(fault) => Some(fault),
            _ => None,
        }
    }
}

/// A store opened by [`open`], with the fault counts `/metrics` shows.
#[derive(Clone)]
pub struct OpenedStore {
    pub store: Arc<dyn Store>,
    pub fault_counts: FaultCounts,
}

/// Opens the store `url` names, tuned by `limits`: a SQLite file (created
/// when missing) or a PostgreSQL database (which must exist); either is
/// migrated to this build's schema.
pub async fn open(url: &DatabaseUrl, limits: &LimitsConfig) -> Result<OpenedStore, StoreError> {
    Ok(match url {
        DatabaseUrl::Sqlite { path } => {
            let store = SqliteStore::open(path.clone(), SqliteTuning::from(limits)).await?;
            OpenedStore {
                fault_counts: store.fault_counts(),
                store: Arc::new(store),
            }
        }
        DatabaseUrl::Postgres { url } => {
            let store = PgStore::open(url, PgTuning::from(limits)).await?;
            OpenedStore {
                fault_counts: store.fault_counts(),
                store: Arc::new(store),
            }
        }
    })
}

/// A conversation row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConversationRecord {
    pub id: ConversationId,
    pub user_id: UserId,
    pub title: String,
    pub persona: String,
    pub created_at: String,
    pub updated_at: String,
    /// The model its replies are asked of; `None`: the server's default
    /// (conversations made before models could be chosen).
    pub model: Option<String>,
}

impl ConversationRecord {
    /// The conversation as the list shows it.
    pub fn summary(self) -> crate::protocol::ConversationSummary {
        crate::protocol::ConversationSummary {
            id: self.id,
            title: self.title,
            persona: self.persona,
            updated_at: self.updated_at,
            model: self.model,
        }
    }
}

/// Who runs a reply: the server instance, and a token unique to this run.
/// The token is the reply's fencing token: writes to the reply carry it and
/// are refused ([`StoreError::Fenced`]) once another run took the reply over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplyRun {
    pub instance: String,
    pub token: String,
}

impl ReplyRun {
    /// A new run of `instance`, with a fresh token.
    pub fn new(instance: &str) -> Self {
        Self {
            instance: instance.to_owned(),
            token: new_id(),
        }
    }
}

/// A reply left unfinished by an instance that stopped renewing itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrphanedReply {
    pub conversation_id: ConversationId,
    pub message_id: MessageId,
    /// The run token it was written with.
    pub run: String,
    /// Its text as last checkpointed.
    pub content: String,
}

/// Where a user message goes.
#[derive(Clone, Debug)]
pub enum Target {
    /// An existing conversation of the same user.
    Existing(ConversationId),
    /// A new conversation with this persona and title; a companion's
    /// greeting, when given, is stored as its first (assistant) message.
    New {
        persona: String,
        title: String,
        greeting: Option<String>,
        /// The model its replies are asked of.
        model: String,
    },
}

/// A user message to store, with its idempotency key.
#[derive(Clone, Debug)]
pub struct NewUserMessage {
    pub user_id: UserId,
    pub client_msg_id: ClientMsgId,
    pub target: Target,
    pub text: String,
    /// How many of the newest non-empty messages to return as `history`
    /// (`0` when the caller has them already: nothing is read).
    pub history: usize,
    /// The run of the reply whose empty message is stored with it.
    pub run: ReplyRun,
    /// An edit: the new message becomes the chosen alternative of this
    /// user message of the same conversation (same parent), which is kept
    /// with everything after it, set aside. Only with [`Target::Existing`];
    /// `NotFound` when it is no user message of that conversation.
    pub replaces: Option<MessageId>,
}

/// A new version of an assistant message's text (`edit`), with its
/// idempotency key: stored beside it as the chosen alternative of its turn.
#[derive(Clone, Debug)]
pub struct ReplyEdit {
    pub user_id: UserId,
    pub client_msg_id: ClientMsgId,
    pub conversation: ConversationId,
    /// The assistant message edited.
    pub of: MessageId,
    pub text: String,
}

/// Result of [`Store::edit_reply`].
#[derive(Clone, Debug)]
pub enum EditOutcome {
    /// Stored now: the new message (finish reason `stop`).
    Stored(Message),
    /// That `client_msg_id` was accepted before; nothing was stored.
    Duplicate {
        conversation_id: ConversationId,
        message_id: MessageId,
    },
}

/// Result of storing a user message.
// Returned once per send and moved straight into the reply: boxing the large
// variant would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum SendOutcome {
    /// Stored now, with the empty assistant message its reply streams into.
    Stored {
        conversation: ConversationRecord,
        message: Message,
        reply: Message,
        /// The newest non-empty messages (the new user message last), oldest
        /// first: what the reply's prompt is built from.
        history: Vec<Message>,
        /// The greeting a new conversation starts with, stored just before
        /// the user message (see [`Target::New`]).
        greeting: Option<Message>,
    },
    /// That `client_msg_id` was accepted before; nothing was stored.
    Duplicate {
        conversation_id: ConversationId,
        message_id: MessageId,
    },
}

/// A page of a conversation's messages ([`Store::messages_before`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MessagePage {
    /// Oldest first.
    pub messages: Vec<Message>,
    /// Older messages exist than the first of `messages`.
    pub has_more: bool,
}

/// Storage used by the chat core.
#[async_trait]
pub trait Store: CompanionStore + ArchiveStore + AccountStore + Send + Sync + 'static {
    /// The conversation, if `user` owns it.
    async fn conversation(
        &self,
        user: &UserId,
        id: &ConversationId,
    ) -> Result<ConversationRecord, StoreError>;

    /// The user's conversations, most recently active first (at most 200);
    /// with `query`, only those whose title or messages contain it.
    async fn list_conversations(
        &self,
        user: &UserId,
        query: Option<&str>,
    ) -> Result<Vec<ConversationRecord>, StoreError>;

    /// Sets the model a conversation the user owns asks its next replies of.
    async fn set_conversation_model(
        &self,
        user: &UserId,
        id: &ConversationId,
        model: &str,
    ) -> Result<(), StoreError>;

    /// Renames a conversation the user owns.
    async fn rename_conversation(
        &self,
        user: &UserId,
        id: &ConversationId,
        title: &str,
    ) -> Result<(), StoreError>;

    /// Deletes a conversation the user owns, with its messages.
    async fn delete_conversation(
        &self,
        user: &UserId,
        id: &ConversationId,
    ) -> Result<(), StoreError>;

    /// The conversation and message an earlier `client_msg_id` produced.
    async fn find_client_message(
        &self,
        user: &UserId,
        client_msg_id: &ClientMsgId,
    ) -> Result<Option<(ConversationId, MessageId)>, StoreError>;

    /// Stores a user message (creating the conversation, and the user row if
    /// missing, when asked), its
    /// idempotency key and the empty assistant message of its reply, all or
    /// nothing; an idempotency key seen before stores nothing.
    async fn add_user_message(&self, msg: NewUserMessage) -> Result<SendOutcome, StoreError>;

    /// Records an idempotency key for a `regenerate` or `continue`; `false` if it existed.
    async fn record_client_message(
        &self,
        user: &UserId,
        client_msg_id: &ClientMsgId,
        conversation: &ConversationId,
        message: &MessageId,
    ) -> Result<bool, StoreError>;

    /// The messages of the path the conversation shows (its chosen
    /// alternatives), oldest first, each with its [`Message::alternatives`].
    async fn messages(&self, conversation: &ConversationId) -> Result<Vec<Message>, StoreError>;

    /// Creates an empty assistant message (finish reason unset) to stream
    /// into, written by `run`: after the last message shown, or with
    /// `replacing` (an assistant message of the conversation, `NotFound` otherwise) as
    /// a new alternative of that reply, chosen in its place (`regenerate`).
    ///
    /// At most one assistant message per conversation is unfinished: when
    /// another run's is, [`StoreError::Busy`]. An unfinished one of an
    /// earlier run of the same instance (whose final write failed) is marked
    /// `error` first: the caller holds the instance's reply slot, so no
    /// reply of this instance runs there. [`Store::add_user_message`] and
    /// [`Store::reopen_assistant`] follow the same rule.
    async fn start_assistant(
        &self,
        conversation: &ConversationId,
        run: &ReplyRun,
        replacing: Option<&MessageId>,
    ) -> Result<Message, StoreError>;

    /// Stores an edited assistant message beside the one it edits, as the
    /// chosen alternative (the edited one and what follows it are kept, set
    /// aside); an idempotency key seen before stores nothing. `NotFound`
    /// unless `of` is an assistant message of a conversation of
    /// the user.
    async fn edit_reply(&self, edit: ReplyEdit) -> Result<EditOutcome, StoreError>;

    /// Deletes `message` of `conversation` with everything that follows it
    /// on every branch. When it was the chosen alternative of its turn, the
    /// one before it (else the one after) is chosen instead. `NotFound`
    /// when it is no message of `conversation`.
    async fn delete_message(
        &self,
        conversation: &ConversationId,
        message: &MessageId,
    ) -> Result<(), StoreError>;

    /// Chooses alternative `index` (oldest first) of the turn `message`
    /// belongs to: the conversation now shows that alternative and the
    /// branch after it (as it was last shown). `NotFound` when `message` is
    /// not of `conversation` or `index` is past its alternatives. Choosing
    /// the one already chosen changes nothing.
    async fn select_alternative(
        &self,
        conversation: &ConversationId,
        message: &MessageId,
        index: u32,
    ) -> Result<(), StoreError>;

    /// Stores the text streamed so far into a reply that has not finished,
    /// so a crash loses at most what came after it. Only while the reply is
    /// unfinished and still `run`'s (its token), else [`StoreError::Fenced`]
    /// (a late checkpoint never overwrites the final text); `NotFound` when
    /// the message is gone (its conversation was deleted).
    async fn checkpoint_assistant(
        &self,
        id: &MessageId,
        run: &str,
        content: &str,
    ) -> Result<(), StoreError>;

    /// Stores the final text of an assistant message; refused like
    /// [`Store::checkpoint_assistant`].
    async fn finish_assistant(
        &self,
        id: &MessageId,
        run: &str,
        content: &str,
        finish_reason: FinishReason,
        usage: Option<Usage>,
    ) -> Result<(), StoreError>;

    /// Opens a finished assistant message again, so that a reply streams
    /// more text into it (`continue`): its finish reason goes back to unset
    /// (checkpoints write to it again; a crash marks it `error` again), its
    /// text stays, and it is `run`'s now. Only when its finish reason is
    /// still `was`, else `NotFound`; [`StoreError::Busy`] as
    /// [`Store::start_assistant`].
    async fn reopen_assistant(
        &self,
        id: &MessageId,
        was: FinishReason,
        run: &ReplyRun,
    ) -> Result<(), StoreError>;

    /// Marks assistant messages left unfinished by a crash as `error`; returns how many.
    /// For one instance alone on its database (at its start); instances
    /// sharing a database use [`Store::orphaned_replies`] instead.
    async fn recover_interrupted(&self) -> Result<u64, StoreError>;

    /// Records that `instance` is alive now (its heartbeat).
    async fn heartbeat(&self, instance: &str) -> Result<(), StoreError>;

    /// Unfinished replies whose instance has not sent a heartbeat for
    /// `stale_after` (or never did): their instance died.
    async fn orphaned_replies(
        &self,
        stale_after: std::time::Duration,
    ) -> Result<Vec<OrphanedReply>, StoreError>;

    /// Finishes an orphaned reply as `error` with `content`, if it is still
    /// unfinished and still `run`'s; `false` if not (another instance
    /// recovered it first, or it ended after all). Its token changes, so
    /// the dead run's writes are refused from now on.
    async fn recover_reply(
        &self,
        id: &MessageId,
        run: &str,
        content: &str,
    ) -> Result<bool, StoreError>;

    /// The stored value of a shared setting; `proposed` is stored first when
    /// there is none (the first writer wins, also when two race).
    async fn shared_setting(&self, key: &str, proposed: &str) -> Result<String, StoreError>;

    /// Cheap check that the database answers; while writes are failing,
    /// also that a write gets through (so readiness sees a fault end).
    async fn ping(&self) -> Result<(), StoreError>;

    /// The newest `limit` messages of the path a conversation shows before
    /// the message `before` (`None`: the newest of all), oldest first, with
    /// their alternatives: one keyset read on the `(conversation_id, seq)`
    /// index, whatever the conversation's length. `Ok(None)` when `before` is not a message of
    /// this conversation. The caller has checked the owner.
    async fn messages_before(
        &self,
        conversation: &ConversationId,
        before: Option<&MessageId>,
        limit: usize,
    ) -> Result<Option<MessagePage>, StoreError>;
}

impl MessagePage {
    /// A page from up to `limit + 1` rows read newest first: the extra row
    /// only says that older ones exist.
    pub(crate) fn from_newest_first(mut newest_first: Vec<Message>, limit: usize) -> Self {
        let has_more = newest_first.len() > limit;
        newest_first.truncate(limit);
        newest_first.reverse();
        Self {
            messages: newest_first,
            has_more,
        }
    }
}

/// Now, as RFC 3339 UTC with exactly three fraction digits
/// (`2026-11-24T10:00:00.120Z`). The fixed width makes stored timestamps sort
/// correctly as text; `time`'s own RFC 3339 output trims trailing zeros.
pub fn now_rfc3339() -> String {
    rfc3339_millis(time::OffsetDateTime::now_utc())
}

pub(crate) fn rfc3339_millis(t: time::OffsetDateTime) -> String {
    // Digit by digit: a `format!` of seven padded numbers cost ~3,000
    // instructions, and every send stores three timestamps (issue 18).
    // Years outside 0..=9999 never occur here; they are clamped, not garbled.
    let year = t.year().clamp(0, 9999) as u32;
    let mut out = String::with_capacity(24);
    for (value, width, after) in [
        (year, 4, '-'),
        (u32::from(u8::from(t.month())), 2, '-'),
        (u32::from(t.day()), 2, 'T'),
        (u32::from(t.hour()), 2, ':'),
        (u32::from(t.minute()), 2, ':'),
        (u32::from(t.second()), 2, '.'),
        (u32::from(t.millisecond()), 3, 'Z'),
    ] {
        for place in (0..width).rev() {
            let digit = (value / 10_u32.pow(place)) % 10;
            out.push(char::from(b'0' + digit as u8));
        }
        out.push(after);
    }
    out
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

/// The message a new conversation's greeting is stored as.
pub(crate) fn greeting_message(text: &str, now: &str) -> Message {
    Message {
        id: MessageId(new_id()),
        role: crate::protocol::Role::Assistant,
        content: text.to_owned(),
        created_at: now.to_owned(),
        finish_reason: Some(FinishReason::Stop),
        alternatives: None,
        model: None,
    }
}

/// A fresh id: UUID v7, a millisecond timestamp then 74 random bits. Ids
/// made close in time sort close together, so the indexes on them grow at
/// their right edge instead of dirtying a random page per insert (what a
/// write transaction costs is the pages it writes to the WAL).
///
/// The random bits come from the thread's generator (`rand`), not a
/// `getrandom` system call per id as `Uuid::now_v7` makes them (three or
/// four per send, issue 18).
pub fn new_id() -> String {
    use rand::RngCore;
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64);
    let mut random = [0_u8; 10];
    rand::rng().fill_bytes(&mut random);
    let mut buf = uuid::Uuid::encode_buffer();
    uuid::Builder::from_unix_timestamp_millis(millis, &random)
        .into_uuid()
        .simple()
        .encode_lower(&mut buf)
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_have_fixed_width_and_sort_as_text() {
        let second = time::OffsetDateTime::from_unix_timestamp(1_795_000_813).expect("valid");
        let base = second + time::Duration::milliseconds(120);
        let a = rfc3339_millis(base);
        let b = rfc3339_millis(base + time::Duration::milliseconds(5));
        let c = rfc3339_millis(second);
        assert_eq!(a.len(), 24);
        assert!(a.ends_with(":13.120Z"), "{a}");
        assert!(c.ends_with(":13.000Z"), "{c}");
        assert!(c < a && a < b, "{c} < {a} < {b}");
        assert!(
            time::OffsetDateTime::parse(&a, &time::format_description::well_known::Rfc3339).is_ok()
        );
        // Digit for digit what the plain `format!` wrote.
        for t in [
            base,
            second,
            time::OffsetDateTime::UNIX_EPOCH,
            base + time::Duration::days(3_000),
        ] {
            let expected = format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second(),
                t.millisecond()
            );
            assert_eq!(rfc3339_millis(t), expected);
        }
    }

    #[test]
    fn ids_are_32_lower_hex_digits() {
        let id = new_id();
        assert_eq!(id.len(), 32, "{id}");
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "{id}"
        );
        assert_ne!(id, new_id());
        let parsed = uuid::Uuid::parse_str(&id).expect("a UUID");
        assert_eq!(parsed.get_version_num(), 7);
        let (seconds, _) = parsed.get_timestamp().expect("v7 has a time").to_unix();
        let now = time::OffsetDateTime::now_utc().unix_timestamp() as u64;
        assert!(now.abs_diff(seconds) <= 5, "{seconds} vs {now}");
    }
}
