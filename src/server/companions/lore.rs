//! A card's lorebook (`character_book`): entries whose text goes into the
//! prompt when one of their keys appears in the recent messages.
//!
//! As the V2 spec describes it: `constant` entries are always in; an entry
//! matches when one of its `keys` occurs in the last `scan_depth` messages
//! (case-insensitive unless `case_sensitive`); a `selective` entry also
//! needs one of its `secondary_keys`. Matching entries go in by
//! `insertion_order` (lower first) until `token_budget` is spent (four
//! characters a token, the same estimate as the prompt window).

/// The lorebook of a card.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CharacterBook {
    pub scan_depth: Option<usize>,
    pub token_budget: Option<usize>,
    pub entries: Vec<LoreEntry>,
}

/// One entry of a lorebook.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LoreEntry {
    pub keys: Vec<String>,
    pub secondary_keys: Vec<String>,
    pub content: String,
    pub enabled: bool,
    pub constant: bool,
    pub selective: bool,
    pub case_sensitive: bool,
    pub insertion_order: i64,
}

/// How many recent messages are scanned when the book does not say.
pub const DEFAULT_SCAN_DEPTH: usize = 4;
/// The budget when the book does not say, in tokens.
pub const DEFAULT_TOKEN_BUDGET: usize = 512;

impl CharacterBook {
    /// The entries to insert for a conversation whose messages, oldest
    /// first, are `messages`: their contents, in insertion order.
    pub fn active<'a>(&'a self, messages: &[&str]) -> Vec<&'a str> {
        let depth = self.scan_depth.unwrap_or(DEFAULT_SCAN_DEPTH);
        let recent = &messages[messages.len().saturating_sub(depth)..];
        let folded: Vec<String> = recent.iter().map(|m| m.to_lowercase()).collect();
        let occurs = |key: &str, case_sensitive: bool| {
            let key = key.trim();
            !key.is_empty()
                && if case_sensitive {
                    recent.iter().any(|m| m.contains(key))
                } else {
                    let key = key.to_lowercase();
                    folded.iter().any(|m| m.contains(&key))
                }
        };
        let mut matched: Vec<&LoreEntry> = self
            .entries
            .iter()
            .filter(|e| e.enabled)
            .filter(|e| {
                e.constant
                    || (e.keys.iter().any(|k| occurs(k, e.case_sensitive))
                        && (!e.selective
                            || e.secondary_keys.is_empty()
                            || e.secondary_keys.iter().any(|k| occurs(k, e.case_sensitive))))
            })
            .collect();
        matched.sort_by_key(|e| e.insertion_order);
        let mut budget = self.token_budget.unwrap_or(DEFAULT_TOKEN_BUDGET) * 4;
        let mut out = Vec::new();
        for entry in matched {
            let cost = entry.content.chars().count();
            if cost > budget {
                continue;
            }
            budget -= cost;
            out.push(entry.content.as_str());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(keys: &[&str], content: &str, order: i64) -> LoreEntry {
        LoreEntry {
            keys: keys.iter().map(|k| (*k).into()).collect(),
            content: content.into(),
            enabled: true,
            insertion_order: order,
            ..LoreEntry::default()
        }
    }

    #[test]
    fn entries_match_keys_in_recent_messages_only_in_insertion_order() {
        let book = CharacterBook {
            scan_depth: Some(2),
            token_budget: None,
            entries: vec![
                entry(&["Storm"], "storms last days", 20),
                entry(&["ship"], "the ship is old", 10),
                entry(&["lamp"], "the lamp is red", 5),
                LoreEntry {
                    constant: true,
                    ..entry(&[], "always here", 30)
                },
                LoreEntry {
                    enabled: false,
                    ..entry(&["storm"], "disabled", 1)
                },
            ],
        };
        let messages = ["the lamp flickers", "a STORM comes", "is the ship safe?"];
        // "lamp" is three messages back: past the scan depth of 2.
        assert_eq!(
            book.active(&messages),
            vec!["the ship is old", "storms last days", "always here"]
        );
        assert_eq!(book.active(&[]), vec!["always here"]);
    }

    #[test]
    fn case_sensitive_and_selective_entries() {
        let book = CharacterBook {
            entries: vec![
                LoreEntry {
                    case_sensitive: true,
                    ..entry(&["Rose"], "Rose is a person", 1)
                },
                LoreEntry {
                    selective: true,
                    secondary_keys: vec!["night".into()],
                    ..entry(&["garden"], "the garden at night", 2)
                },
            ],
            ..CharacterBook::default()
        };
        assert!(book.active(&["a rose in the garden"]).is_empty());
        assert_eq!(
            book.active(&["Rose walks in the garden at night"]),
            vec!["Rose is a person", "the garden at night"]
        );
    }

    #[test]
    fn the_token_budget_leaves_out_what_does_not_fit() {
        let book = CharacterBook {
            token_budget: Some(3), // 12 characters
            entries: vec![
                entry(&["a"], "0123456789", 1),
                entry(&["a"], "too long for the rest", 2),
                entry(&["a"], "ab", 3),
            ],
            ..CharacterBook::default()
        };
        assert_eq!(book.active(&["a"]), vec!["0123456789", "ab"]);
    }
}
