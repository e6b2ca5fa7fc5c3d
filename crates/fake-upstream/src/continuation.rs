//! Continuation requests: Tether's `continue` sends the conversation with
//! the partial reply as the last assistant turn, then a user turn that
//! starts with [`CONTINUE_PREFIX`]. The fake answers it with the rest of the
//! reply it would have given to the user message before that partial reply,
//! so a continued reply ends with exactly the text an uninterrupted one has.

use serde_json::Value;

use crate::reply::{reply_tokens, split_tokens};

/// How the instruction of a continuation request begins.
pub const CONTINUE_PREFIX: &str = "Continue your last reply";

/// Said when the partial reply is not the start of the fake's reply.
const UNRELATED: &str = " (continued)";

/// A continuation request: what the partial reply answered, and its text.
#[derive(Debug, PartialEq)]
pub(crate) struct Continuation {
    /// The user message the partial reply answers (its directives count).
    pub original: String,
    pub partial: String,
}

impl Continuation {
    /// The continuation, if `body`'s messages end with a user turn starting
    /// with [`CONTINUE_PREFIX`] right after an assistant turn.
    pub(crate) fn of(body: &Value) -> Option<Self> {
        let messages = body.get("messages")?.as_array()?;
        let text = |m: &Value| m.get("content").and_then(Value::as_str).map(str::to_owned);
        let role = |m: &Value| m.get("role").and_then(Value::as_str).map(str::to_owned);
        let [.., before, partial, ask] = messages.as_slice() else {
            return None;
        };
        let asks = role(ask)? == "user" && text(ask)?.starts_with(CONTINUE_PREFIX);
        if !asks || role(partial)? != "assistant" || role(before)? != "user" {
            return None;
        }
        Some(Self {
            original: text(before)?,
            partial: text(partial)?,
        })
    }

    /// The rest of the reply to `original` after `partial` (nothing more
    /// when it is all there), or a fixed ` (continued)` when `partial` is not
    /// how that reply starts.
    pub(crate) fn tokens(&self) -> Vec<String> {
        let whole: String = reply_tokens(&self.original).concat();
        match whole.strip_prefix(self.partial.as_str()) {
            Some(rest) => split_tokens(rest),
            None => split_tokens(UNRELATED),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(messages: Value) -> Value {
        json!({"model": "fake", "stream": true, "messages": messages})
    }

    #[test]
    fn a_continuation_streams_the_rest_of_the_reply() {
        let body = request(json!([
            {"role": "system", "content": "be kind"},
            {"role": "user", "content": "[[cut:2]] hello there"},
            {"role": "assistant", "content": "You said: hel"},
            {"role": "user", "content": format!("{CONTINUE_PREFIX} exactly where it stopped.")},
        ]));
        let continuation = Continuation::of(&body).expect("a continuation");
        assert_eq!(continuation.original, "[[cut:2]] hello there");
        assert_eq!(continuation.tokens().concat(), "lo there");
        let unrelated = Continuation {
            original: "hi".into(),
            partial: "Something else".into(),
        };
        assert_eq!(unrelated.tokens().concat(), " (continued)");
    }

    #[test]
    fn other_requests_are_no_continuation() {
        for messages in [
            json!([{"role": "user", "content": "Continue your last reply"}]),
            json!([
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "You said: hi"},
                {"role": "user", "content": "and now?"},
            ]),
            json!([
                {"role": "assistant", "content": "a"},
                {"role": "assistant", "content": "b"},
                {"role": "user", "content": "Continue your last reply"},
            ]),
        ] {
            assert_eq!(Continuation::of(&request(messages)), None);
        }
    }
}
