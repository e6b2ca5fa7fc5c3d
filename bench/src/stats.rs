//! Per-message tracking, validation and the aggregated numbers.

use std::collections::BTreeMap;
use std::time::Instant;

use crate::frames::ServerFrame;

/// One successfully completed message (send .. done).
#[derive(Debug, Default, Clone)]
pub struct MsgSample {
    pub accepted_ms: f64,
    pub ttft_ms: f64,
    pub gaps_ms: Vec<f64>,
    pub total_ms: f64,
    pub deltas: u64,
    /// WS: JSON payload bytes of the delta text frames; SSE: bytes of the delta events.
    pub delta_bytes: u64,
    /// WS: payload + the exact server frame header (unmasked, 2/4/10 bytes); SSE: = delta_bytes.
    pub delta_wire_bytes: u64,
    /// Everything received for this message (all frames / events, body bytes for SSE).
    pub all_bytes: u64,
    pub server_ttft_ms: Option<f64>,
}

/// What one simulated user produced.
#[derive(Debug, Default)]
pub struct UserResult {
    pub samples: Vec<MsgSample>,
    pub errors: Vec<String>,
}

/// Size of a server-to-client WebSocket frame header for a payload of `len` bytes.
pub fn ws_header_len(len: usize) -> u64 {
    if len < 126 {
        2
    } else if len <= 0xFFFF {
        4
    } else {
        10
    }
}

/// Tracks one message in flight and validates the reply.
pub struct MsgTrack {
    t0: Instant,
    expected_text: Option<String>,
    accepted: bool,
    next_index: u64,
    text: String,
    last: Option<Instant>,
    pub sample: MsgSample,
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl MsgTrack {
    pub fn new(t0: Instant, expected_text: Option<String>) -> Self {
        Self {
            t0,
            expected_text,
            accepted: false,
            next_index: 0,
            text: String::new(),
            last: None,
            sample: MsgSample::default(),
        }
    }

    pub fn on_bytes(&mut self, n: usize) {
        self.sample.all_bytes += n as u64;
    }

    pub fn on_accepted(&mut self, now: Instant) -> Result<(), String> {
        if self.accepted {
            return Err("protocol:second_accepted".into());
        }
        self.accepted = true;
        self.sample.accepted_ms = ms(now - self.t0);
        Ok(())
    }

    pub fn on_delta(
        &mut self,
        now: Instant,
        index: u64,
        text: &str,
        bytes: u64,
        wire_bytes: u64,
    ) -> Result<(), String> {
        if !self.accepted {
            return Err("protocol:delta_before_accepted".into());
        }
        if index != self.next_index {
            return Err("protocol:delta_index_gap".into());
        }
        self.next_index += 1;
        self.text.push_str(text);
        match self.last {
            None => self.sample.ttft_ms = ms(now - self.t0),
            Some(prev) => self.sample.gaps_ms.push(ms(now - prev)),
        }
        self.last = Some(now);
        self.sample.deltas += 1;
        self.sample.delta_bytes += bytes;
        self.sample.delta_wire_bytes += wire_bytes;
        Ok(())
    }

    /// The error kind of a message that ran out of time, by how far it got.
    pub fn timeout_error(&self) -> String {
        let stage = if self.accepted { "reply" } else { "accepted" };
        format!("timeout:{stage}")
    }

    /// Applies one server frame of the message `client_msg_id`, the same way
    /// for both transports (`conversation`: the user's conversation so far).
    /// Returns the finished sample at `done`.
    pub fn on_frame(
        &mut self,
        frame: ServerFrame,
        now: Instant,
        bytes: u64,
        wire_bytes: u64,
        client_msg_id: &str,
        conversation: &mut Option<String>,
    ) -> Result<Option<MsgSample>, String> {
        match frame {
            ServerFrame::Accepted {
                client_msg_id: acked,
                conversation_id,
                duplicate,
            } => {
                if acked != client_msg_id || duplicate {
                    return Err("protocol:unexpected_accepted".into());
                }
                if conversation
                    .as_deref()
                    .is_some_and(|c| c != conversation_id)
                {
                    return Err("protocol:conversation_changed".into());
                }
                *conversation = Some(conversation_id);
                self.on_accepted(now)?;
            }
            ServerFrame::Delta { index, text, .. } => {
                self.on_delta(now, index, &text, bytes, wire_bytes)?;
            }
            ServerFrame::Done {
                finish_reason,
                ttft_ms,
            } => {
                let done = std::mem::replace(self, MsgTrack::new(self.t0, None));
                return done.on_done(now, &finish_reason, ttft_ms).map(Some);
            }
            ServerFrame::Error { code, .. } => return Err(format!("error_frame:{code}")),
            ServerFrame::Hello { .. } => return Err("protocol:unexpected_hello".into()),
            ServerFrame::Snapshot { .. } | ServerFrame::Other => {}
        }
        Ok(None)
    }

    pub fn on_done(
        mut self,
        now: Instant,
        finish_reason: &str,
        server_ttft_ms: Option<f64>,
    ) -> Result<MsgSample, String> {
        if !self.accepted {
            return Err("protocol:done_before_accepted".into());
        }
        if finish_reason != "stop" {
            return Err(format!("finish_reason:{finish_reason}"));
        }
        if self.sample.deltas == 0 {
            return Err("protocol:no_delta".into());
        }
        if let Some(expected) = &self.expected_text {
            if *expected != self.text {
                return Err("protocol:text_mismatch".into());
            }
        }
        self.sample.total_ms = ms(now - self.t0);
        self.sample.server_ttft_ms = server_ttft_ms;
        Ok(self.sample)
    }
}

/// The reply the fake upstream gives to `text`, when it can be predicted.
pub fn expected_reply(text: &str) -> Option<String> {
    if let Some(n) = tokens_directive(text) {
        // `[[tokens:N]]`: the fake answers `t1 t2 … tN`.
        Some(
            (1..=n.min(10_000))
                .map(|i| format!("t{i}"))
                .collect::<Vec<_>>()
                .join(" "),
        )
    } else if text.contains("[[") {
        None // directives ([[long]], [[delay:..]]...) change the reply
    } else {
        Some(format!("You said: {}", text.trim()))
    }
}

/// N of a `[[tokens:N]]` directive.
fn tokens_directive(text: &str) -> Option<u64> {
    let start = text.find("[[tokens:")? + "[[tokens:".len();
    let end = text[start..].find("]]")? + start;
    text[start..end].trim().parse().ok()
}

#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Summary {
    pub n: usize,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

/// Nearest-rank percentiles of `v` (sorted in place).
pub fn summarize(v: &mut [f64]) -> Option<Summary> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    let pick = |p: f64| v[((p / 100.0 * n as f64).ceil() as usize).clamp(1, n) - 1];
    Some(Summary {
        n,
        p50: pick(50.0),
        p90: pick(90.0),
        p99: pick(99.0),
        max: v[n - 1],
        mean: v.iter().sum::<f64>() / n as f64,
    })
}

pub fn count_errors(errors: impl IntoIterator<Item = String>) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for e in errors {
        *m.entry(e).or_insert(0) += 1;
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_nearest_rank() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        let s = summarize(&mut v).unwrap();
        assert_eq!((s.p50, s.p90, s.p99, s.max), (50.0, 90.0, 99.0, 100.0));
        assert!(summarize(&mut []).is_none());
    }

    #[test]
    fn delta_gap_is_detected() {
        let t0 = Instant::now();
        let mut t = MsgTrack::new(t0, Some("You said: a".into()));
        t.on_accepted(t0).unwrap();
        t.on_delta(t0, 0, "You", 1, 1).unwrap();
        assert_eq!(
            t.on_delta(t0, 2, " said", 1, 1).unwrap_err(),
            "protocol:delta_index_gap"
        );
    }

    #[test]
    fn text_is_checked() {
        let t0 = Instant::now();
        let mut t = MsgTrack::new(t0, expected_reply(" hi "));
        t.on_accepted(t0).unwrap();
        for (i, p) in ["You", " said:", " hi"].iter().enumerate() {
            t.on_delta(t0, i as u64, p, 1, 1).unwrap();
        }
        assert!(t.on_done(t0, "stop", None).is_ok());
    }
}
