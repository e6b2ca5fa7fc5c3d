//! The client-frame decoder: one WebSocket text frame → a [`ClientFrame`],
//! or the `error` frame that refuses it.
//!
//! Pure (no socket, no state), so it is tested on its own, including by
//! property tests: it never panics, and answers every frame it cannot read
//! with `bad_request` (`too_large` when the frame is over the limit).

use crate::protocol::{ClientFrame, ErrorCode, ServerFrame};

/// Longest serde error quoted in a `bad_request` reason, in bytes.
const MAX_REASON_BYTES: usize = 200;

/// Parses one text frame of at most `max_bytes` bytes. A refusal is boxed:
/// it is rare, and a `ServerFrame` is large.
pub fn decode_client_frame(text: &str, max_bytes: usize) -> Result<ClientFrame, Box<ServerFrame>> {
    if text.len() > max_bytes {
        return Err(Box::new(ServerFrame::error(
            ErrorCode::TooLarge,
            format!("frame is {} bytes, the limit is {max_bytes}", text.len()),
        )));
    }
    serde_json::from_str(text).map_err(|err| {
        Box::new(ServerFrame::error(
            ErrorCode::BadRequest,
            format!("invalid frame: {}", parse_reason(&err)),
        ))
    })
}

/// Why JSON from a client could not be read, at most [`MAX_REASON_BYTES`]:
/// serde quotes the client's text (an unknown `type`, a bad value), so it is
/// cut on a character boundary, never inside one. Shared with the HTTP
/// transport's body reader.
pub fn parse_reason(err: &serde_json::Error) -> String {
    let mut reason = err.to_string();
    let mut cut = MAX_REASON_BYTES.min(reason.len());
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    reason.truncate(cut);
    reason
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_keep_their_wording() {
        let big = decode_client_frame("{\"type\":\"ping\"}", 4).unwrap_err();
        assert_eq!(
            *big,
            ServerFrame::error(ErrorCode::TooLarge, "frame is 15 bytes, the limit is 4")
        );
        let bad = decode_client_frame("{\"type\":\"launch\"}", 1024).unwrap_err();
        let ServerFrame::Error { code, message, .. } = *bad else {
            panic!("{bad:?}")
        };
        assert_eq!(code, ErrorCode::BadRequest);
        assert!(
            message.starts_with("invalid frame: unknown variant `launch`"),
            "{message}"
        );
    }

    #[test]
    fn a_long_unicode_reason_is_cut_between_characters() {
        // serde quotes the unknown `type`; byte 200 of its message falls
        // inside an `é` (this panicked when the reason was cut at byte 200).
        for pad in 0..4 {
            let text = format!("{{\"type\":\"{}{}\"}}", "x".repeat(pad), "é".repeat(150));
            let refusal = decode_client_frame(&text, 4096).expect_err("refused");
            let ServerFrame::Error { code, message, .. } = *refusal else {
                panic!("{refusal:?}")
            };
            assert_eq!(code, ErrorCode::BadRequest);
            assert!(message.len() <= "invalid frame: ".len() + MAX_REASON_BYTES);
        }
    }
}

/// The decoder's property, shared by its proptests and the fuzz target
/// `decode_client_frame` (`fuzz/`).
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod properties {
    use serde_json::Value;

    use super::{decode_client_frame, MAX_REASON_BYTES};
    use crate::protocol::{ClientFrame, ErrorCode, ServerFrame};

    /// The protocol's limit in the default configuration.
    pub const MAX: usize = 64 * 1024;

    /// Equal JSON, except that a float may come back one unit in the last
    /// place off: serde_json (without `float_roundtrip`) may misread a
    /// 16-17 digit float, such as the shortest form of one it read before.
    fn same_json(a: &Value, b: &Value) -> bool {
        match (a, b) {
            (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
                let (x, y) = (
                    x.as_f64().unwrap_or(f64::NAN),
                    y.as_f64().unwrap_or(f64::NAN),
                );
                (x - y).abs() <= x.abs().max(y.abs()) * 4.0 * f64::EPSILON
            }
            (Value::Array(x), Value::Array(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y))
            }
            (Value::Object(x), Value::Object(y)) => {
                x.len() == y.len()
                    && x.iter()
                        .zip(y)
                        .all(|((kx, x), (ky, y))| kx == ky && same_json(x, y))
            }
            _ => a == b,
        }
    }

    /// The decoder's contract for one input: a frame that encodes and
    /// decodes to itself, or a bare `error` frame, `too_large` exactly when
    /// over `max`, else `bad_request` with a short reason.
    pub fn check(input: &str, max: usize) -> Result<(), String> {
        match decode_client_frame(input, max).map_err(|refusal| *refusal) {
            Ok(frame) => {
                fail_unless!(
                    input.len() <= max,
                    "{} bytes read with a limit of {max}",
                    input.len()
                );
                // Re-encoding may be longer (`1e2` becomes `100.0`): no limit.
                let again = decode_client_frame(&frame.to_json(), usize::MAX);
                match (frame, again) {
                    (ClientFrame::Ping { nonce: a }, Ok(ClientFrame::Ping { nonce: b })) => {
                        fail_unless!(same_json(&a, &b), "{a} became {b}");
                    }
                    (frame, again) => {
                        fail_unless!(again.as_ref() == Ok(&frame), "{frame:?} became {again:?}")
                    }
                }
            }
            Err(ServerFrame::Error {
                code,
                message,
                client_msg_id: None,
                retry_after_ms: None,
                conversation_id: None,
            }) => {
                if input.len() > max {
                    let want = format!("frame is {} bytes, the limit is {max}", input.len());
                    fail_unless!(
                        code == ErrorCode::TooLarge && message == want,
                        "{code:?} {message:?} for {} bytes over {max}",
                        input.len()
                    );
                } else {
                    let reason = message.strip_prefix("invalid frame: ");
                    fail_unless!(
                        code == ErrorCode::BadRequest
                            && reason.is_some_and(|r| r.len() <= MAX_REASON_BYTES),
                        "{code:?} {message:?} for {input:?}"
                    );
                }
            }
            Err(other) => return Err(format!("not a bare error frame: {other:?}")),
        }
        Ok(())
    }
}

/// Property tests (`PROPTEST_CASES` cases each, 256 by default).
#[cfg(test)]
mod proptests {
    use proptest::prelude::*;
    use serde_json::Value;

    use super::{decode_client_frame, properties::MAX};
    use crate::protocol::{ClientFrame, ClientMsgId, ConversationId, MessageId};

    /// The decoder's contract for one input ([`super::properties::check`]).
    fn check(input: &str, max: usize) -> Result<(), TestCaseError> {
        super::properties::check(input, max).map_err(TestCaseError::fail)
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![".*", "[a-z0-9-]{0,12}", "(?s).{0,40}"]
    }

    /// JSON values for `ping`'s nonce. Floats are short dyadic fractions:
    /// serde_json (without `float_roundtrip`) may misread a 16-digit one by
    /// one unit in the last place.
    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<i16>().prop_map(|n| Value::from(f64::from(n) / 64.0)),
            text().prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
                prop::collection::btree_map(text(), inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn conversation() -> impl Strategy<Value = ConversationId> {
        text().prop_map(ConversationId)
    }

    fn client_msg() -> impl Strategy<Value = ClientMsgId> {
        text().prop_map(ClientMsgId)
    }

    /// Every kind of client frame, with arbitrary contents.
    fn client_frame() -> impl Strategy<Value = ClientFrame> {
        prop_oneof![
            (
                client_msg(),
                prop::option::of(conversation()),
                text(),
                prop::option::of(text())
            )
                .prop_map(|(client_msg_id, conversation_id, text, persona)| {
                    ClientFrame::Send {
                        client_msg_id,
                        conversation_id,
                        text,
                        persona,
                        greeting: None,
                        model: None,
                    }
                }),
            conversation().prop_map(|conversation_id| ClientFrame::Subscribe { conversation_id }),
            conversation().prop_map(|conversation_id| ClientFrame::Unsubscribe { conversation_id }),
            conversation().prop_map(|conversation_id| ClientFrame::Stop { conversation_id }),
            (conversation(), client_msg()).prop_map(|(conversation_id, client_msg_id)| {
                ClientFrame::Regenerate {
                    conversation_id,
                    client_msg_id,
                }
            }),
            (conversation(), client_msg()).prop_map(|(conversation_id, client_msg_id)| {
                ClientFrame::Continue {
                    conversation_id,
                    client_msg_id,
                }
            }),
            (conversation(), client_msg(), text(), text()).prop_map(
                |(conversation_id, client_msg_id, message_id, text)| ClientFrame::Edit {
                    conversation_id,
                    client_msg_id,
                    message_id: MessageId(message_id),
                    text,
                }
            ),
            (conversation(), text(), any::<u32>()).prop_map(
                |(conversation_id, message_id, index)| {
                    ClientFrame::SelectAlternative {
                        conversation_id,
                        message_id: MessageId(message_id),
                        index,
                    }
                }
            ),
            json_value().prop_map(|nonce| ClientFrame::Ping { nonce }),
            prop::option::of(text()).prop_map(|query| ClientFrame::ListConversations { query }),
            (conversation(), text()).prop_map(|(conversation_id, title)| {
                ClientFrame::RenameConversation {
                    conversation_id,
                    title,
                }
            }),
            conversation()
                .prop_map(|conversation_id| ClientFrame::DeleteConversation { conversation_id }),
            (
                conversation(),
                prop::option::of(text()),
                prop::option::of(any::<u32>())
            )
                .prop_map(|(conversation_id, before, limit)| ClientFrame::History {
                    conversation_id,
                    before: before.map(MessageId),
                    limit,
                }),
        ]
    }

    /// Pieces of almost-frames: JSON syntax, the protocol's names, wrong
    /// types, escapes, numbers out of range and non-ASCII text.
    fn fragment() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(vec![
                "{",
                "}",
                "[",
                "]",
                ",",
                ":",
                "\"",
                "\"type\"",
                "\"send\"",
                "\"ping\"",
                "\"subscribe\"",
                "\"stop\"",
                "\"regenerate\"",
                "\"edit\"",
                "\"select_alternative\"",
                "\"message_id\"",
                "\"index\"",
                "\"continue\"",
                "\"list_conversations\"",
                "\"rename_conversation\"",
                "\"delete_conversation\"",
                "\"unsubscribe\"",
                "\"conversation_id\"",
                "\"client_msg_id\"",
                "\"text\"",
                "\"persona\"",
                "\"nonce\"",
                "\"query\"",
                "\"title\"",
                "null",
                "true",
                "false",
                "0",
                "-1",
                "1e400",
                "18446744073709551616",
                "1.5",
                "\"\\u00e9\"",
                "\"\\ud800\"",
                "\"\\x\"",
                "\\",
                " ",
                "\n",
                "\u{feff}",
                "\"é\"",
                "\"💬\"",
            ])
            .prop_map(str::to_owned),
            text().prop_map(|t| format!("\"{t}\"")),
            "[a-zé💬]{50,150}".prop_map(|t| format!("\"{t}\"")),
        ]
    }

    proptest! {
        #[test]
        fn prop_any_text_is_a_frame_or_a_refusal(input in "(?s).{0,300}", max in 0..400usize) {
            check(&input, max)?;
            check(&input, MAX)?;
        }

        #[test]
        fn prop_almost_frames_are_frames_or_refusals(
            parts in prop::collection::vec(fragment(), 0..40),
        ) {
            check(&parts.concat(), MAX)?;
        }

        #[test]
        fn prop_unknown_types_and_bad_values_are_refused(
            name in "[^\"\\\\\\p{Cc}]{0,300}",
            field in prop::sample::select(vec!["type", "conversation_id", "text"]),
        ) {
            check(&format!("{{\"type\":\"{name}\"}}"), MAX)?;
            check(&format!("{{\"type\":\"send\",\"{field}\":[\"{name}\"]}}"), MAX)?;
            check(&format!("{{\"type\":\"stop\",\"conversation_id\":{{\"{name}\":1}}}}"), MAX)?;
        }

        #[test]
        fn prop_deep_nesting_is_refused_not_overflowed(depth in 0..20_000usize, open in "[\\[{]") {
            let nonce = if open == "[" { "[".repeat(depth) } else { "{\"a\":".repeat(depth) };
            check(&format!("{{\"type\":\"ping\",\"nonce\":{nonce}"), usize::MAX)?;
            check(&"[".repeat(depth), usize::MAX)?;
        }

        #[test]
        fn prop_valid_frames_decode_to_themselves(frame in client_frame()) {
            let json = frame.to_json();
            prop_assert_eq!(decode_client_frame(&json, MAX), Ok(frame.clone()));
            // Unknown fields are ignored.
            let extended = format!("{{\"zz_later\":[1,{{}}],{}", &json[1..]);
            prop_assert_eq!(decode_client_frame(&extended, MAX), Ok(frame));
        }

        #[test]
        fn prop_cut_or_corrupted_frames_are_refusals(
            frame in client_frame(),
            cut in any::<prop::sample::Index>(),
            junk in "(?s).{0,3}",
        ) {
            let json = frame.to_json();
            let mut at = cut.index(json.len() + 1);
            while !json.is_char_boundary(at) {
                at -= 1;
            }
            check(&json[..at], MAX)?;
            check(&format!("{}{junk}{}", &json[..at], &json[at..]), MAX)?;
        }
    }
}
