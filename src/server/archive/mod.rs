//! Take your data: a conversation out as JSON (every branch and
//! alternative, which one is chosen) or Markdown (the path shown), a JSON
//! export back in as a new conversation, and everything of a user
//! (conversations, companions) as one file. Formats and endpoints:
//! "Take your data" in docs/protocol.md.
//!
//! An import is checked whole before anything is stored (a tree: ids
//! unique, each parent earlier, one chosen alternative per turn; text
//! without NUL; RFC 3339 times), then stored with fresh ids in one write.
//! Exporting what was imported gives the same file but for the ids.

pub mod format;
mod markdown;
pub mod routes;

use std::collections::{HashMap, HashSet};

use thiserror::Error;

pub use self::format::{ConversationExport, DataExport, ExportedCompanion, ExportedMessage};
use crate::{
    protocol::{ConversationId, ConversationSummary, MessageId, Role, UserId},
    server::{
        companions::Companions,
        store::{new_id, ConversationRecord, ConversationTree, Store, StoreError, TreeMessage},
    },
};

/// Why an import or export was refused.
#[derive(Debug, Error)]
pub enum ArchiveError {
    #[error("{0}")]
    BadRequest(String),
    #[error("the export is over the limit: the limit is {limit} bytes")]
    OverLimit { limit: usize },
    #[error("not found")]
    NotFound,
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for ArchiveError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound => ArchiveError::NotFound,
            other => ArchiveError::Store(other),
        }
    }
}

/// A conversation as its JSON export.
pub async fn export_conversation(
    store: &dyn Store,
    user: &UserId,
    id: &ConversationId,
) -> Result<ConversationExport, ArchiveError> {
    Ok(ConversationExport::from_tree(
        store.conversation_tree(user, id).await?,
    ))
}

/// A conversation's path shown, as Markdown, and the name to save it under.
pub async fn export_markdown(
    store: &dyn Store,
    companions: &Companions,
    user: &UserId,
    id: &ConversationId,
) -> Result<(String, String), ArchiveError> {
    let tree = store.conversation_tree(user, id).await?;
    let name = companion_name(companions, user, &tree.conversation.persona).await;
    let file = crate::server::companions::file_name(&tree.conversation.title, "conversation");
    Ok((markdown::render(&tree, &name), file))
}

/// Everything of the user: every conversation (oldest first) and every
/// companion they made or imported (as a card, with its picture).
pub async fn export_everything(
    store: &dyn Store,
    companions: &Companions,
    user: &UserId,
) -> Result<DataExport, ArchiveError> {
    let mut conversations = Vec::new();
    for id in store.conversation_ids(user).await? {
        match store.conversation_tree(user, &id).await {
            Ok(tree) => conversations.push(ConversationExport::from_tree(tree)),
            // Deleted meanwhile.
            Err(StoreError::NotFound) => {}
            Err(err) => return Err(err.into()),
        }
    }
    let exported = companions
        .export_all(user)
        .await
        .map_err(|e| ArchiveError::BadRequest(e.to_string()))?;
    Ok(DataExport::new(conversations, exported))
}

/// Stores an export (`bytes`, at most `limit`) as a new conversation of `user`.
pub async fn import_conversation(
    store: &dyn Store,
    user: &UserId,
    bytes: &[u8],
    max_title_chars: usize,
) -> Result<ConversationSummary, ArchiveError> {
    let export: ConversationExport = serde_json::from_slice(bytes)
        .map_err(|e| ArchiveError::BadRequest(format!("not a conversation export: {e}")))?;
    let tree = checked_tree(export, max_title_chars)?;
    let record = store.import_conversation(user, tree).await?;
    tracing::info!(conversation_id = %record.id, "conversation imported");
    Ok(record.summary())
}

/// The companion's name, else its id (a deleted or another server's one).
async fn companion_name(companions: &Companions, user: &UserId, id: &str) -> String {
    companions
        .get(user, id)
        .await
        .map(|c| c.fields.name)
        .unwrap_or_else(|_| id.to_owned())
}

/// The export as a tree to store, with fresh ids, or why it cannot be.
fn checked_tree(
    export: ConversationExport,
    max_title_chars: usize,
) -> Result<ConversationTree, ArchiveError> {
    let bad = |why: String| ArchiveError::BadRequest(why);
    if export.format != format::CONVERSATION_FORMAT {
        return Err(bad(format!(
            "not a conversation export: its format is {:?}, not {:?}",
            export.format,
            format::CONVERSATION_FORMAT
        )));
    }
    if export.version != format::VERSION {
        return Err(bad(format!(
            "export version {} is not one this server reads (it reads {})",
            export.version,
            format::VERSION
        )));
    }
    let title = export.title.trim();
    if title.is_empty() || title.chars().count() > max_title_chars || title.contains('\0') {
        return Err(bad(format!(
            "a title has 1 to {max_title_chars} characters"
        )));
    }
    for time in [&export.created_at, &export.updated_at] {
        check_time(time)?;
    }
    let conversation = ConversationRecord {
        id: ConversationId(new_id()),
        user_id: UserId(String::new()),
        title: title.to_owned(),
        persona: export.companion.clone(),
        created_at: export.created_at.clone(),
        updated_at: export.updated_at.clone(),
        model: export.model.clone(),
    };
    let mut fresh: HashMap<&str, MessageId> = HashMap::new();
    let mut chosen: HashSet<Option<&str>> = HashSet::new();
    let mut messages = Vec::with_capacity(export.messages.len());
    for m in &export.messages {
        let parent = match m.parent.as_deref() {
            None => None,
            Some(p) => Some(fresh.get(p).cloned().ok_or_else(|| {
                bad(format!(
                    "message {:?} follows {p:?}, which is not an earlier message of the export",
                    m.id
                ))
            })?),
        };
        if fresh.contains_key(m.id.as_str()) {
            return Err(bad(format!("message id {:?} appears twice", m.id)));
        }
        if m.content.contains('\0') {
            return Err(bad(format!("message {:?} contains a NUL character", m.id)));
        }
        check_time(&m.created_at)?;
        if m.chosen && !chosen.insert(m.parent.as_deref()) {
            return Err(bad(format!(
                "two alternatives of one turn are chosen (the second is message {:?})",
                m.id
            )));
        }
        let id = MessageId(new_id());
        fresh.insert(m.id.as_str(), id.clone());
        messages.push(TreeMessage {
            message: crate::protocol::Message {
                id,
                role: m.role,
                content: m.content.clone(),
                created_at: m.created_at.clone(),
                finish_reason: match m.role {
                    Role::User => None,
                    Role::Assistant => m.finish_reason,
                },
                alternatives: None,
                model: m.model.clone().filter(|_| m.role == Role::Assistant),
            },
            parent,
            selected: m.chosen,
            usage: m.usage,
        });
    }
    // Every turn with messages has its chosen one.
    let turns: HashSet<Option<&str>> = export
        .messages
        .iter()
        .map(|m| m.parent.as_deref())
        .collect();
    if let Some(turn) = turns.difference(&chosen).next() {
        return Err(bad(match turn {
            Some(parent) => format!("none of the messages after {parent:?} is chosen"),
            None => "none of the first messages is chosen".to_owned(),
        }));
    }
    Ok(ConversationTree {
        conversation,
        messages,
    })
}

fn check_time(time: &str) -> Result<(), ArchiveError> {
    time::OffsetDateTime::parse(time, &time::format_description::well_known::Rfc3339)
        .map(|_| ())
        .map_err(|_| ArchiveError::BadRequest(format!("{time:?} is not an RFC 3339 time")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{FinishReason, Role};

    fn message(id: &str, parent: Option<&str>, role: Role, chosen: bool) -> ExportedMessage {
        ExportedMessage {
            id: id.into(),
            parent: parent.map(str::to_owned),
            role,
            content: format!("text of {id}"),
            created_at: "2026-12-01T10:00:00.000Z".into(),
            finish_reason: (role == Role::Assistant).then_some(FinishReason::Stop),
            chosen,
            usage: None,
            model: None,
        }
    }

    fn export(messages: Vec<ExportedMessage>) -> ConversationExport {
        ConversationExport {
            format: format::CONVERSATION_FORMAT.into(),
            version: format::VERSION,
            title: "Trip".into(),
            companion: "sweet".into(),
            created_at: "2026-12-01T10:00:00.000Z".into(),
            updated_at: "2026-12-01T10:05:00.000Z".into(),
            messages,
            model: None,
        }
    }

    fn refusal(e: ConversationExport) -> String {
        match checked_tree(e, 120) {
            Err(ArchiveError::BadRequest(why)) => why,
            other => panic!("refused, got {other:?}"),
        }
    }

    #[test]
    fn a_tree_gets_fresh_ids_with_its_shape_kept() {
        let tree = checked_tree(
            export(vec![
                message("u1", None, Role::User, true),
                message("a1", Some("u1"), Role::Assistant, false),
                message("a2", Some("u1"), Role::Assistant, true),
            ]),
            120,
        )
        .expect("valid");
        assert_eq!(tree.messages.len(), 3);
        let root = &tree.messages[0].message.id;
        assert_ne!(root.as_str(), "u1");
        assert_eq!(tree.messages[1].parent.as_ref(), Some(root));
        assert_eq!(tree.messages[2].parent.as_ref(), Some(root));
        assert!(tree.messages[2].selected && !tree.messages[1].selected);
    }

    #[test]
    fn broken_trees_are_refused_with_the_reason() {
        assert!(
            refusal(export(vec![message("a", Some("zz"), Role::User, true)]))
                .contains("not an earlier message")
        );
        assert!(refusal(export(vec![
            message("a", None, Role::User, true),
            message("a", None, Role::User, false),
        ]))
        .contains("twice"));
        assert!(refusal(export(vec![
            message("a", None, Role::User, true),
            message("b", None, Role::User, true),
        ]))
        .contains("two alternatives"));
        assert!(refusal(export(vec![message("a", None, Role::User, false)]))
            .contains("none of the first"));
        let mut bad_time = export(vec![]);
        bad_time.created_at = "yesterday".into();
        assert!(refusal(bad_time).contains("RFC 3339"));
        let mut other = export(vec![]);
        other.format = "sillytavern".into();
        assert!(refusal(other).contains("format"));
        let mut newer = export(vec![]);
        newer.version = 9;
        assert!(refusal(newer).contains("version 9"));
        let mut nul = export(vec![message("a", None, Role::User, true)]);
        nul.messages[0].content = "a\0b".into();
        assert!(refusal(nul).contains("NUL"));
    }
}
