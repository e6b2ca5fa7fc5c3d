//! One reply followed over either transport: a [`Conn`] yields server frames
//! (a socket's text frames, or the events of one streamed HTTP response), and
//! [`Reply`] checks them against the contract: `accepted` for our message,
//! `delta` indexes without a gap, the text the fake upstream was asked for.

use tokio::time::Instant;

use crate::frames::{ServerFrame, StoredMessage, StreamingMessage};
use crate::sse::EventReader;
use crate::ws::{self, Recv, Ws};

/// Where a reply's frames come from.
pub enum Conn {
    Ws(Box<Ws>),
    Sse(EventReader),
}

impl Conn {
    /// The next frame; the end of an SSE body is `closed:stream_ended`.
    pub async fn frame(&mut self, deadline: Instant) -> Result<ServerFrame, String> {
        match self {
            Conn::Ws(socket) => match ws::recv(socket, deadline).await {
                Recv::Text(t) => {
                    serde_json::from_str(t.as_str()).map_err(|_| "protocol:bad_json".to_string())
                }
                Recv::Timeout => Err("timeout:frame".into()),
                Recv::Closed => Err("closed:mid_message".into()),
                Recv::Binary => Err("protocol:binary_frame".into()),
            },
            Conn::Sse(events) => events
                .next(deadline)
                .await?
                .ok_or_else(|| "closed:stream_ended".to_string()),
        }
    }

    /// SSE: the body must end (after `done`) by `deadline`. WebSocket: a close frame.
    pub async fn finish(self, deadline: Instant) -> Result<(), String> {
        match self {
            Conn::Ws(mut socket) => {
                let _ = tokio::time::timeout_at(deadline, socket.close(None)).await;
                Ok(())
            }
            Conn::Sse(mut events) => match events.next(deadline).await? {
                None => Ok(()),
                Some(_) => Err("protocol:event_after_done".into()),
            },
        }
    }
}

/// What the client has seen of one reply so far.
#[derive(Debug, Default)]
pub struct Reply {
    pub conversation: Option<String>,
    pub message_id: String,
    pub text: String,
    /// The index the next `delta` must carry.
    pub next_index: u64,
    pub deltas: u64,
    pub finish_reason: Option<String>,
}

impl Reply {
    /// Applies one frame of the reply to our message `client_msg_id`.
    /// Returns whether the reply is done.
    pub fn on_frame(&mut self, frame: ServerFrame, client_msg_id: &str) -> Result<bool, String> {
        match frame {
            ServerFrame::Accepted {
                client_msg_id: acked,
                conversation_id,
                duplicate,
            } => {
                if acked != client_msg_id || duplicate || self.conversation.is_some() {
                    return Err("protocol:unexpected_accepted".into());
                }
                self.conversation = Some(conversation_id);
            }
            ServerFrame::Delta {
                message_id,
                index,
                text,
            } => {
                if self.conversation.is_none() {
                    return Err("protocol:delta_before_accepted".into());
                }
                if index != self.next_index {
                    return Err("protocol:delta_index_gap".into());
                }
                self.message_id = message_id;
                self.next_index += 1;
                self.deltas += 1;
                self.text.push_str(&text);
            }
            ServerFrame::Done { finish_reason, .. } => {
                self.finish_reason = Some(finish_reason);
                return Ok(true);
            }
            ServerFrame::Error { code } => return Err(format!("error_frame:{code}")),
            ServerFrame::Hello { .. } => return Err("protocol:unexpected_hello".into()),
            ServerFrame::Snapshot { .. } => return Err("protocol:unexpected_snapshot".into()),
            ServerFrame::Other => {}
        }
        Ok(false)
    }

    /// Reads frames until `deltas` deltas have arrived (the reply must still run).
    pub async fn until_deltas(
        &mut self,
        conn: &mut Conn,
        deltas: u64,
        client_msg_id: &str,
        deadline: Instant,
    ) -> Result<(), String> {
        while self.deltas < deltas {
            if self.on_frame(conn.frame(deadline).await?, client_msg_id)? {
                return Err("protocol:done_too_early".into());
            }
        }
        Ok(())
    }

    /// Reads frames until `done`.
    pub async fn until_done(
        &mut self,
        conn: &mut Conn,
        client_msg_id: &str,
        deadline: Instant,
    ) -> Result<(), String> {
        while !self.on_frame(conn.frame(deadline).await?, client_msg_id)? {}
        Ok(())
    }

    /// After a reconnect: the `snapshot` that must come first. Its streaming
    /// text must extend what was seen before the drop; the deltas continue
    /// from its `next_index`. Returns false when the reply had already ended
    /// (then the stored reply must be the expected one, `stop`).
    pub fn on_snapshot(&mut self, frame: ServerFrame, expected: &str) -> Result<bool, String> {
        let ServerFrame::Snapshot {
            messages,
            streaming,
        } = frame
        else {
            return Err("protocol:no_snapshot_first".into());
        };
        match streaming {
            Some(StreamingMessage {
                id,
                content,
                next_index,
            }) => {
                if id != self.message_id || !content.starts_with(&self.text) {
                    return Err("resume:snapshot_lost_text".into());
                }
                self.text = content;
                self.next_index = next_index;
                Ok(true)
            }
            None => match messages.last() {
                Some(StoredMessage {
                    role,
                    content,
                    finish_reason,
                }) if role == "assistant"
                    && content == expected
                    && finish_reason.as_deref() == Some("stop") =>
                {
                    Ok(false)
                }
                _ => Err("resume:stored_reply_wrong".into()),
            },
        }
    }

    /// The reply ended with `finish_reason` and exactly the `expected` text.
    pub fn check_complete(&self, expected: &str) -> Result<(), String> {
        match self.finish_reason.as_deref() {
            Some("stop") if self.text == expected => Ok(()),
            Some("stop") => Err("protocol:text_mismatch".into()),
            Some(other) => Err(format!("finish_reason:{other}")),
            None => Err("protocol:no_done".into()),
        }
    }

    /// The reply was stopped: `stopped`, and its text a prefix of `expected`
    /// holding at least what arrived before the stop.
    pub fn check_stopped(&self, expected: &str, seen_before_stop: u64) -> Result<(), String> {
        match self.finish_reason.as_deref() {
            Some("stopped") if !expected.starts_with(&self.text) => {
                Err("protocol:text_mismatch".into())
            }
            Some("stopped") if self.deltas < seen_before_stop => Err("protocol:lost_deltas".into()),
            Some("stopped") => Ok(()),
            Some(other) => Err(format!("stop:finish_reason_{other}")),
            None => Err("protocol:no_done".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delta(index: u64, text: &str) -> ServerFrame {
        ServerFrame::Delta {
            message_id: "m1".into(),
            index,
            text: text.into(),
        }
    }

    fn accepted() -> ServerFrame {
        ServerFrame::Accepted {
            client_msg_id: "c1".into(),
            conversation_id: "conv".into(),
            duplicate: false,
        }
    }

    fn done(reason: &str) -> ServerFrame {
        ServerFrame::Done {
            finish_reason: reason.into(),
            ttft_ms: None,
        }
    }

    #[test]
    fn resume_continues_from_the_snapshot() {
        let mut r = Reply::default();
        assert!(!r.on_frame(accepted(), "c1").unwrap());
        r.on_frame(delta(0, "t1"), "c1").unwrap();
        let snapshot = ServerFrame::Snapshot {
            messages: vec![],
            streaming: Some(StreamingMessage {
                id: "m1".into(),
                content: "t1 t2".into(),
                next_index: 2,
            }),
        };
        assert!(r.on_snapshot(snapshot, "t1 t2 t3").unwrap());
        assert_eq!(
            r.on_frame(delta(1, " t2"), "c1").unwrap_err(),
            "protocol:delta_index_gap"
        );
        r.on_frame(delta(2, " t3"), "c1").unwrap();
        assert!(r.on_frame(done("stop"), "c1").unwrap());
        r.check_complete("t1 t2 t3").unwrap();
        assert_eq!(
            r.check_complete("t1 t2 t3 t4").unwrap_err(),
            "protocol:text_mismatch"
        );
    }

    #[test]
    fn a_snapshot_that_lost_seen_text_is_an_error() {
        let mut r = Reply::default();
        r.on_frame(accepted(), "c1").unwrap();
        r.on_frame(delta(0, "t1"), "c1").unwrap();
        let snapshot = ServerFrame::Snapshot {
            messages: vec![],
            streaming: Some(StreamingMessage {
                id: "m1".into(),
                content: "t9".into(),
                next_index: 1,
            }),
        };
        assert_eq!(
            r.on_snapshot(snapshot, "t1").unwrap_err(),
            "resume:snapshot_lost_text"
        );
    }

    #[test]
    fn stop_must_end_stopped_with_a_prefix() {
        let mut r = Reply::default();
        r.on_frame(accepted(), "c1").unwrap();
        r.on_frame(delta(0, "t1"), "c1").unwrap();
        r.on_frame(done("stop"), "c1").unwrap();
        assert_eq!(
            r.check_stopped("t1 t2", 1).unwrap_err(),
            "stop:finish_reason_stop"
        );
        r.finish_reason = Some("stopped".into());
        r.check_stopped("t1 t2", 1).unwrap();
        assert_eq!(
            r.check_stopped("t2", 1).unwrap_err(),
            "protocol:text_mismatch"
        );
    }
}
