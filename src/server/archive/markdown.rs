//! A conversation as Markdown: the path it shows, to read or keep.

use std::collections::HashMap;

use crate::{
    protocol::{FinishReason, Role},
    server::store::ConversationTree,
};

/// The path shown of `tree` as Markdown; replies are by `companion`.
pub(super) fn render(tree: &ConversationTree, companion: &str) -> String {
    let c = &tree.conversation;
    let mut out = format!(
        "# {}\n\n*A conversation with {} · started {} · exported from Tether*\n",
        one_line(&c.title),
        one_line(companion),
        c.created_at
    );
    // Turns with more than one alternative say which one this is.
    let mut turns: HashMap<Option<&str>, Vec<&str>> = HashMap::new();
    for m in &tree.messages {
        turns
            .entry(m.parent.as_ref().map(|p| p.as_str()))
            .or_default()
            .push(m.message.id.as_str());
    }
    let mut at: Option<&str> = None;
    while let Some(m) = tree
        .messages
        .iter()
        .find(|m| m.selected && m.parent.as_ref().map(|p| p.as_str()) == at)
    {
        let who = match m.message.role {
            Role::User => "You",
            Role::Assistant => companion,
        };
        let siblings = &turns[&at];
        let which = if siblings.len() > 1 {
            let index = siblings
                .iter()
                .position(|id| *id == m.message.id.as_str())
                .unwrap_or(0);
            format!(" · version {} of {}", index + 1, siblings.len())
        } else {
            String::new()
        };
        let ended = match m.message.finish_reason {
            Some(FinishReason::Length) => " · cut short",
            Some(FinishReason::Stopped) => " · stopped",
            Some(FinishReason::Error) => " · interrupted",
            _ => "",
        };
        out.push_str(&format!(
            "\n---\n\n**{}** · {}{which}{ended}\n\n{}\n",
            one_line(who),
            m.message.created_at,
            m.message.content.trim_end()
        ));
        at = Some(m.message.id.as_str());
    }
    out
}

/// `text` on one line (a title or name inside Markdown markup).
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        protocol::{ConversationId, Message, MessageId, UserId},
        server::store::{ConversationRecord, TreeMessage},
    };

    fn message(id: &str, parent: Option<&str>, role: Role, selected: bool) -> TreeMessage {
        TreeMessage {
            message: Message {
                id: MessageId(id.into()),
                role,
                content: format!("text {id}"),
                created_at: "2026-12-01T10:00:00.000Z".into(),
                finish_reason: (role == Role::Assistant).then_some(FinishReason::Stop),
                alternatives: None,
                model: None,
            },
            parent: parent.map(|p| MessageId(p.into())),
            selected,
            usage: None,
        }
    }

    #[test]
    fn the_path_shown_only_with_which_version_it_is() {
        let tree = ConversationTree {
            conversation: ConversationRecord {
                id: ConversationId("c".into()),
                user_id: UserId("u".into()),
                title: "A\ntrip".into(),
                persona: "aria".into(),
                created_at: "2026-12-01T10:00:00.000Z".into(),
                updated_at: "2026-12-01T10:00:00.000Z".into(),
                model: None,
            },
            messages: vec![
                message("u1", None, Role::User, true),
                message("a1", Some("u1"), Role::Assistant, false),
                message("a2", Some("u1"), Role::Assistant, true),
                message("u2", Some("a1"), Role::User, true),
            ],
        };
        let md = render(&tree, "Aria");
        assert!(md.starts_with("# A trip\n"), "{md}");
        assert!(
            md.contains("**You** · 2026-12-01T10:00:00.000Z\n\ntext u1"),
            "{md}"
        );
        assert!(
            md.contains("**Aria** · 2026-12-01T10:00:00.000Z · version 2 of 2\n\ntext a2"),
            "{md}"
        );
        assert!(
            !md.contains("text a1") && !md.contains("text u2"),
            "other branches are left out: {md}"
        );
    }
}
