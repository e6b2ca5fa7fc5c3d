//! Text as the character-card community writes it, shared by both halves:
//! the server fills in a companion's prompt with it, the page its greeting
//! preview. `{{char}}` / `<BOT>` stand for the companion's name and
//! `{{user}}` / `<USER>` for the user's, in any letter case.

/// What `{{user}}` becomes (Tether has no display names yet).
pub const USER_NAME: &str = "User";

/// A companion's greetings, in order: its greeting, then its alternates;
/// empty ones left out.
pub fn greetings<'a>(first: &'a str, alternates: &'a [String]) -> Vec<&'a str> {
    std::iter::once(first)
        .chain(alternates.iter().map(String::as_str))
        .filter(|g| !g.trim().is_empty())
        .collect()
}

/// Greeting `index` of [`greetings`], the first when out of range; `None`
/// when there is none.
pub fn greeting<'a>(first: &'a str, alternates: &'a [String], index: u32) -> Option<&'a str> {
    let all = greetings(first, alternates);
    all.get(index as usize).or_else(|| all.first()).copied()
}

/// `text` with `{{char}}` / `<BOT>` as the companion's name and `{{user}}` /
/// `<USER>` as the user's (the macros are matched without regard to case).
pub fn substitute(text: &str, char_name: &str, user_name: &str) -> String {
    if !text.contains(['{', '<']) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(['{', '<']) {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let replaced = [
            ("{{char}}", char_name),
            ("{{user}}", user_name),
            ("<bot>", char_name),
            ("<user>", user_name),
        ]
        .into_iter()
        .find(|(macro_, _)| {
            rest.get(..macro_.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(macro_))
        });
        match replaced {
            Some((macro_, value)) => {
                out.push_str(value);
                rest = &rest[macro_.len()..];
            }
            None => {
                // Not a macro: keep the character and go on after it.
                out.push_str(&rest[..1]);
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greetings_skip_empty_ones_and_an_index_out_of_range_is_the_first() {
        let alternates = vec![" ".to_owned(), "Yo".to_owned()];
        assert_eq!(greetings("Hi", &alternates), ["Hi", "Yo"]);
        assert_eq!(greeting("Hi", &alternates, 1), Some("Yo"));
        assert_eq!(greeting("Hi", &alternates, 7), Some("Hi"));
        assert_eq!(greeting("", &[], 0), None);
    }

    #[test]
    fn macros_are_filled_in_whatever_their_case() {
        assert_eq!(
            substitute(
                "{{char}} greets {{User}}; <BOT> and <user>. {x} <b>",
                "Aria",
                "Sam"
            ),
            "Aria greets Sam; Aria and Sam. {x} <b>"
        );
        assert_eq!(substitute("no macros", "A", "B"), "no macros");
        assert_eq!(substitute("ends with {{cha", "A", "B"), "ends with {{cha");
        assert_eq!(substitute("é{{char}}ü<", "Å", "B"), "éÅü<");
    }
}
