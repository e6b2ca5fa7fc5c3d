//! How a conversation's records travel between instances, and how its log
//! is replayed into the reply in progress.
//!
//! A record is one letter and JSON: `B` + a [`StreamingMessage`] (a reply
//! begins), `R` + one (its log starts again from its whole text), `F` + a
//! [`ServerFrame`] (for subscribers). Each is appended to
//! the conversation's Redis Stream (the log) and published on its channel
//! as `<stream id> <record>`, in one script, so the log and the channel
//! agree on order, and a subscriber that read the log up to an id skips
//! what it already has.

use thiserror::Error;

use crate::{
    protocol::{ServerFrame, StreamingMessage},
    server::chat::hub::Record,
};

/// A record that could not be read (a bug or a foreign writer).
#[derive(Debug, Error)]
pub enum BadRecord {
    #[error("no stream id")]
    NoId,
    #[error("unknown record kind")]
    Kind,
    #[error("malformed record: {0}")]
    Json(#[from] serde_json::Error),
}

/// A Redis Stream id (`<ms>-<seq>`) as one increasing number.
pub fn parse_id(id: &str) -> Option<u128> {
    let (ms, seq) = id.split_once('-')?;
    Some((u128::from(ms.parse::<u64>().ok()?) << 64) | u128::from(seq.parse::<u64>().ok()?))
}

/// The text of a record; `None` for [`Record::Release`], which is not logged.
pub fn encode(record: &Record) -> Option<String> {
    match record {
        Record::Begin(streaming) => Some(format!("B{}", serde_json::to_string(streaming).ok()?)),
        Record::Restart(streaming) => Some(format!("R{}", serde_json::to_string(streaming).ok()?)),
        Record::Frame(frame) => Some(format!("F{}", frame.to_json())),
        Record::Release => None,
    }
}

/// A record read back, with a frame's JSON kept to send on as it is.
#[derive(Debug)]
pub struct Decoded {
    pub record: Record,
    pub json: Option<String>,
}

pub fn decode(text: &str) -> Result<Decoded, BadRecord> {
    if let Some(json) = text.strip_prefix('B') {
        let streaming: StreamingMessage = serde_json::from_str(json)?;
        return Ok(Decoded {
            record: Record::Begin(streaming),
            json: None,
        });
    }
    if let Some(json) = text.strip_prefix('R') {
        let streaming: StreamingMessage = serde_json::from_str(json)?;
        return Ok(Decoded {
            record: Record::Restart(streaming),
            json: None,
        });
    }
    if let Some(json) = text.strip_prefix('F') {
        let frame: ServerFrame = serde_json::from_str(json)?;
        return Ok(Decoded {
            record: Record::Frame(frame),
            json: Some(json.to_owned()),
        });
    }
    Err(BadRecord::Kind)
}

/// A published message: `<stream id> <record>`.
pub fn split_published(message: &str) -> Result<(u128, Decoded), BadRecord> {
    let (id, record) = message.split_once(' ').ok_or(BadRecord::NoId)?;
    let id = parse_id(id).ok_or(BadRecord::NoId)?;
    Ok((id, decode(record)?))
}

/// The reply in progress after the log's records (oldest first), and the
/// position of the last one (`0` for an empty log).
pub fn replay<'a>(
    entries: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> (Option<StreamingMessage>, u128) {
    let mut streaming: Option<StreamingMessage> = None;
    let mut at = 0;
    for (id, text) in entries {
        at = parse_id(id).unwrap_or(at);
        let Ok(decoded) = decode(text) else {
            continue;
        };
        match decoded.record {
            Record::Begin(begun) | Record::Restart(begun) => streaming = Some(begun),
            Record::Frame(ServerFrame::Delta {
                message_id,
                index,
                text,
                ..
            }) => {
                if let Some(s) = streaming.as_mut() {
                    if s.message.id == message_id && s.next_index == index {
                        s.message.content.push_str(&text);
                        s.next_index += 1;
                    }
                }
            }
            Record::Frame(ServerFrame::Done { message_id, .. })
                if streaming
                    .as_ref()
                    .is_some_and(|s| s.message.id == message_id) =>
            {
                streaming = None;
            }
            _ => {}
        }
    }
    (streaming, at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{FinishReason, Message, Role};

    fn begin(content: &str) -> String {
        encode(&Record::Begin(StreamingMessage {
            message: Message {
                id: "m".into(),
                role: Role::Assistant,
                content: content.into(),
                created_at: "2026-12-01T00:00:00.000Z".into(),
                finish_reason: None,
                alternatives: None,
                model: None,
            },
            next_index: content.len() as u64,
        }))
        .expect("logged")
    }

    fn delta(index: u64, text: &str) -> String {
        encode(&Record::Frame(ServerFrame::Delta {
            conversation_id: "c".into(),
            message_id: "m".into(),
            index,
            text: text.into(),
        }))
        .expect("logged")
    }

    #[test]
    fn stream_ids_order_as_numbers() {
        let a = parse_id("1700000000000-9").expect("id");
        let b = parse_id("1700000000000-10").expect("id");
        let c = parse_id("1700000000001-0").expect("id");
        assert!(a < b && b < c);
        assert_eq!(parse_id("12"), None);
        assert_eq!(parse_id("x-1"), None);
    }

    #[test]
    fn replay_gives_the_text_so_far_and_the_next_index() {
        let log = [
            ("1-0".to_owned(), begin("He")),
            ("1-1".to_owned(), delta(2, "llo")),
            ("1-2".to_owned(), delta(3, " you")),
        ];
        let (streaming, at) = replay(log.iter().map(|(i, t)| (i.as_str(), t.as_str())));
        let streaming = streaming.expect("streaming");
        assert_eq!(streaming.message.content, "Hello you");
        assert_eq!(streaming.next_index, 4);
        assert_eq!(at, parse_id("1-2").expect("id"));
    }

    #[test]
    fn a_done_ends_the_reply_in_progress() {
        let done = encode(&Record::Frame(ServerFrame::Done {
            conversation_id: "c".into(),
            message_id: "m".into(),
            finish_reason: FinishReason::Stop,
            usage: None,
            ttft_ms: None,
            total_ms: 1.0,
            model: None,
        }))
        .expect("logged");
        let log = [("1-0".to_owned(), begin("")), ("1-1".to_owned(), done)];
        let (streaming, _) = replay(log.iter().map(|(i, t)| (i.as_str(), t.as_str())));
        assert!(streaming.is_none());
    }

    #[test]
    fn published_messages_carry_their_position() {
        let (at, decoded) = split_published(&format!("5-1 {}", delta(0, "x"))).expect("ok");
        assert_eq!(at, parse_id("5-1").expect("id"));
        assert!(decoded.json.is_some());
        assert!(split_published("no-space").is_err());
        assert!(split_published("1-0 Xjunk").is_err());
        assert!(split_published("1-0 F{not json").is_err());
    }
}
