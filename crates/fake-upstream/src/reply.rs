//! The deterministic reply: directives in the last user message and the
//! tokens the fake streams back.

/// The deterministic reply to `text` (directives removed), as tokens.
pub fn reply_tokens(text: &str) -> Vec<String> {
    let directive = |name: &str| has_directive(text, name);
    let body = if directive("long") {
        (1..=60)
            .map(|i| format!("word{i}"))
            .collect::<Vec<_>>()
            .join(" ")
    } else if let Some(n) = directive_number(text, "tokens") {
        (1..=n.min(10_000))
            .map(|i| format!("t{i}"))
            .collect::<Vec<_>>()
            .join(" ")
    } else if directive("xss") {
        "Careful: <img src=x onerror=\"window.__xss=1\"> and <script>window.__xss=2</script> stay text."
            .to_owned()
    } else if directive("markdown") {
        "Here is **bold** and a list:\n\n- one\n- two\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n```rust\nfn main() {\n    println!(\"hi\");\n}\n```\n"
            .to_owned()
    } else {
        format!("You said: {}", strip_directives(text).trim())
    };
    split_tokens(&body)
}

/// The number of `[[name:N]]` in `text`, if there is one.
pub(crate) fn directive_number(text: &str, name: &str) -> Option<u64> {
    let start = text.find(&format!("[[{name}:"))? + name.len() + 3;
    let end = text[start..].find("]]")? + start;
    text[start..end].trim().parse().ok()
}

/// Whether `text` holds the flag `[[name]]`.
pub(crate) fn has_directive(text: &str, name: &str) -> bool {
    text.contains(&format!("[[{name}]]"))
}

fn strip_directives(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("[[") {
        out.push_str(&rest[..start]);
        match rest[start..].find("]]") {
            Some(end) => rest = &rest[start + end + 2..],
            None => {
                rest = &rest[start..];
                break;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Splits into tokens that concatenate back to `text` (each keeps its leading space).
pub(crate) fn split_tokens(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut current = String::new();
    for ch in text.chars() {
        if ch == ' ' && !current.trim().is_empty() {
            tokens.push(std::mem::take(&mut current));
        }
        current.push(ch);
    }
    if !current.is_empty() {
        tokens.push(current);
    }
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_concatenate_to_the_reply() {
        let tokens = reply_tokens("hello  there [[delay:5]]");
        assert_eq!(tokens.concat(), "You said: hello  there");
        assert!(tokens.len() >= 3);
    }

    #[test]
    fn directives_are_parsed() {
        assert_eq!(directive_number("x [[stall:3]] y", "stall"), Some(3));
        assert_eq!(directive_number("x [[status:429]]", "status"), Some(429));
        assert_eq!(directive_number("none", "status"), None);
        assert!(has_directive("a [[burst]] b", "burst"));
        assert!(!has_directive("a [[burst:2]] b", "burst"));
        assert_eq!(reply_tokens("[[long]]").len(), 60);
        assert_eq!(reply_tokens("[[tokens:40]] hi").len(), 40);
        assert_eq!(reply_tokens("[[tokens:3]]").concat(), "t1 t2 t3");
    }
}
