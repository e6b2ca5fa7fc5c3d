//! A companion's part of the prompt: its system prompt (the card's fields
//! in the order the community's front ends use), `{{char}}` and `{{user}}`
//! filled in, and the lorebook entries the recent messages call up.

use super::{card::CardFields, lore::CharacterBook};

pub use crate::card_text::substitute;

/// The system prompt of a companion: the card's `system_prompt` (where
/// `{{original}}` stands for `default_prompt`) or `default_prompt`, then the
/// description, personality, scenario and example dialogue, each when
/// present; macros filled in.
pub fn system_prompt(fields: &CardFields, default_prompt: &str, user_name: &str) -> String {
    let head = if fields.system_prompt.trim().is_empty() {
        default_prompt.to_owned()
    } else {
        replace_ignore_case(&fields.system_prompt, "{{original}}", default_prompt)
    };
    let mut parts = vec![head];
    let name = fields.name.trim();
    if !fields.description.trim().is_empty() {
        parts.push(fields.description.trim().to_owned());
    }
    if !fields.personality.trim().is_empty() {
        parts.push(format!(
            "{name}'s personality: {}",
            fields.personality.trim()
        ));
    }
    if !fields.scenario.trim().is_empty() {
        parts.push(format!("Scenario: {}", fields.scenario.trim()));
    }
    if !fields.mes_example.trim().is_empty() {
        parts.push(format!(
            "Examples of how {name} writes:\n{}",
            fields.mes_example.trim()
        ));
    }
    let joined = parts
        .into_iter()
        .filter(|p| !p.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n\n");
    substitute(&joined, name, user_name)
}

/// The lorebook entries `messages` (oldest first) call up, as one block
/// for the end of the system prompt; empty when none does.
pub fn lore(
    book: Option<&CharacterBook>,
    messages: &[&str],
    char_name: &str,
    user_name: &str,
) -> String {
    let Some(book) = book else {
        return String::new();
    };
    let active = book.active(messages);
    if active.is_empty() {
        return String::new();
    }
    substitute(&active.join("\n"), char_name, user_name)
}

/// A card's `post_history_instructions`, filled in like the system prompt
/// (its `{{original}}` has nothing to stand for here), if it has any.
pub fn post_history(fields: &CardFields, user_name: &str) -> Option<String> {
    let text = replace_ignore_case(&fields.post_history_instructions, "{{original}}", "");
    let text = substitute(text.trim(), fields.name.trim(), user_name);
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

fn replace_ignore_case(text: &str, pattern: &str, with: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len() + with.len());
    let mut last = 0;
    for (at, _) in lower.match_indices(pattern) {
        out.push_str(&text[last..at]);
        out.push_str(with);
        last = at + pattern.len();
    }
    out.push_str(&text[last..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::companions::lore::LoreEntry;

    #[test]
    fn the_system_prompt_puts_the_card_together_in_order() {
        let fields = CardFields {
            name: "Aria".into(),
            description: "{{char}} keeps a lighthouse.".into(),
            personality: "calm".into(),
            scenario: "{{user}} arrives by boat.".into(),
            mes_example: "<START>\n{{user}}: hi\n{{char}}: hello".into(),
            ..CardFields::default()
        };
        assert_eq!(
            system_prompt(&fields, "Be kind.", "Sam"),
            "Be kind.\n\nAria keeps a lighthouse.\n\nAria's personality: calm\n\n\
             Scenario: Sam arrives by boat.\n\nExamples of how Aria writes:\n<START>\nSam: hi\nAria: hello"
        );
        let own = CardFields {
            name: "Aria".into(),
            system_prompt: "{{ORIGINAL}} Stay in character as {{char}}.".into(),
            ..CardFields::default()
        };
        assert_eq!(
            system_prompt(&own, "Be kind.", "Sam"),
            "Be kind. Stay in character as Aria."
        );
    }

    #[test]
    fn lore_comes_from_the_recent_messages() {
        let book = CharacterBook {
            entries: vec![LoreEntry {
                keys: vec!["storm".into()],
                content: "{{char}} fears storms.".into(),
                enabled: true,
                ..LoreEntry::default()
            }],
            ..CharacterBook::default()
        };
        assert_eq!(
            lore(Some(&book), &["a storm!"], "Aria", "Sam"),
            "Aria fears storms."
        );
        assert_eq!(lore(Some(&book), &["calm sea"], "Aria", "Sam"), "");
        assert_eq!(lore(None, &["a storm!"], "Aria", "Sam"), "");
    }
}
