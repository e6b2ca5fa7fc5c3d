//! One assistant reply, from prompt to stored message.
//!
//! A reply runs as its own tracked task, detached from every socket: it keeps
//! streaming and is stored when all of the user's connections are gone. It
//! ends in exactly one `done` (preceded by an `error` when the upstream failed),
//! and its text is stored before `done` is announced.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use futures::{FutureExt, StreamExt};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::{info_span, Instrument};

use super::{
    checkpoint::Checkpoints,
    continuation,
    error::ChatError,
    hub::{ConversationHub, LiveConversation},
};
use crate::{
    protocol::{ClientMsgId, ErrorCode, FinishReason, Message, MessageId, ServerFrame, Usage},
    server::{
        config::LimitsConfig,
        llm::{LlmClient, LlmError, LlmEvent, LlmStream, PromptTurn},
        metrics::Metrics,
        store::{ReplyRun, Store, StoreError},
    },
};

/// An item of the model's stream taken while joining text: `None` is its end.
type ReadAhead = Option<Result<LlmEvent, LlmError>>;

/// Text already received is joined into one `delta` up to this size.
const MAX_DELTA_BYTES: usize = 4096;

/// Everything one reply needs.
pub(super) struct ReplyJob {
    pub live: Arc<LiveConversation>,
    pub store: Arc<dyn Store>,
    pub llm: LlmClient,
    pub upstream_slots: Arc<Semaphore>,
    pub system_prompt: String,
    /// The model asked (the conversation's).
    pub model: String,
    /// A card's instructions given after the history (its
    /// `post_history_instructions`), if it has any.
    pub post_history: Option<String>,
    /// The conversation before this reply (what the prompt is built from;
    /// it never holds the reply's own message).
    pub history: Vec<Message>,
    /// `continue`: the reply as stored when it was continued (its text is
    /// where the streaming text starts); the model is asked to go on from it.
    pub continues: Option<Message>,
    pub limits: LimitsConfig,
    pub message_id: MessageId,
    /// Who writes the reply; its token fences every write.
    pub run: ReplyRun,
    pub client_msg_id: ClientMsgId,
    pub cancel: CancellationToken,
    /// When the request that caused this reply arrived (TTFT is measured from it).
    pub received: Instant,
    pub metrics: Arc<Metrics>,
    /// Who the tokens the reply used are counted to, when the server meters.
    pub meter: Option<(Arc<dyn super::meter::Meter>, crate::protocol::UserId)>,
}

/// How the upstream part of a reply ended.
struct Outcome {
    finish_reason: FinishReason,
    usage: Option<Usage>,
    first_token: Option<Instant>,
    error: Option<LlmError>,
    /// How long the model took, when it was asked at all: to the first
    /// token (if any) and to the end of its stream.
    upstream: Option<(Option<Duration>, Duration)>,
}

impl ReplyJob {
    pub(super) async fn run(self, hub: Arc<ConversationHub>) {
        let span = info_span!(
            "reply",
            conversation_id = %self.live.id,
            message_id = %self.message_id,
            continued = self.continues.is_some(),
        );
        async move {
            let outcome = self.generate().await;
            self.complete(outcome).await;
            hub.release_if_idle(&self.live.id);
        }
        .instrument(span)
        .await
    }

    async fn generate(&self) -> Outcome {
        let mut outcome = Outcome {
            finish_reason: FinishReason::Stop,
            usage: None,
            first_token: None,
            error: None,
            upstream: None,
        };
        // A model still being installed: wait for it, as for a free slot.
        let set_up = tokio::select! {
            set_up = self.llm.ready() => set_up,
            _ = self.cancel.cancelled() => {
                outcome.finish_reason = FinishReason::Stopped;
                return outcome;
            }
        };
        if let Err(err) = set_up {
            outcome.finish_reason = FinishReason::Error;
            outcome.error = Some(err);
            return outcome;
        }
        let _permit = tokio::select! {
            permit = self.upstream_slots.clone().acquire_owned() => permit.ok(),
            _ = self.cancel.cancelled() => {
                outcome.finish_reason = FinishReason::Stopped;
                return outcome;
            }
        };
        let prompt = self.prompt();
        let timeout = self.llm.timeout();
        let asked = Instant::now();
        let mut stream = tokio::select! {
            started = self.llm.stream(&self.model, &prompt) => match started {
                Ok(stream) => stream,
                Err(err) => {
                    outcome.finish_reason = FinishReason::Error;
                    outcome.error = Some(err);
                    outcome.upstream = Some((None, asked.elapsed()));
                    return outcome;
                }
            },
            _ = self.cancel.cancelled() => {
                outcome.finish_reason = FinishReason::Stopped;
                outcome.upstream = Some((None, asked.elapsed()));
                return outcome;
            }
        };
        self.relay(&mut stream, timeout, &mut outcome).await;
        // Dropping the stream here aborts the upstream HTTP request if it still runs.
        drop(stream);
        outcome.upstream = Some((outcome.first_token.map(|t| t - asked), asked.elapsed()));
        outcome
    }

    /// Passes the model's text on as deltas until its stream ends, fails,
    /// stalls for `timeout` or the reply is stopped.
    /// The text so far is checkpointed on the way ([`Checkpoints`]).
    async fn relay(&self, stream: &mut LlmStream, timeout: Duration, outcome: &mut Outcome) {
        let mut checkpoints = Checkpoints::new(
            self.store.as_ref(),
            (&self.message_id, &self.run.token),
            &self.cancel,
            self.limits.checkpoint_tokens,
            self.limits.checkpoint_interval,
        );
        // An event read ahead while gathering a burst of text.
        let mut read_ahead = None;
        loop {
            let next = match read_ahead.take() {
                Some(event) => Ok(event),
                None => tokio::select! {
                    biased;
                    _ = self.cancel.cancelled() => {
                        outcome.finish_reason = FinishReason::Stopped;
                        return;
                    }
                    () = checkpoints.written() => continue,
                    next = tokio::time::timeout(timeout, stream.next()) => next,
                },
            };
            let failed = match next {
                Err(_) => LlmError::Timeout,
                // A new reply that ends without a word is a failure to show
                // (with Retry), not an empty bubble; a continuation may end
                // at once (the model had nothing to add).
                Ok(None) if outcome.first_token.is_none() && self.continues.is_none() => {
                    LlmError::Empty
                }
                Ok(None) => return,
                Ok(Some(Ok(LlmEvent::Text(mut text)))) => {
                    outcome.first_token.get_or_insert_with(Instant::now);
                    let (ahead, tokens) = join_ready(stream, &mut text).await;
                    read_ahead = ahead;
                    self.live.push_delta(&text);
                    checkpoints.streamed(tokens, || self.live.streamed_text());
                    continue;
                }
                Ok(Some(Ok(LlmEvent::Finished(reason)))) => {
                    outcome.finish_reason = reason;
                    continue;
                }
                Ok(Some(Ok(LlmEvent::Usage(usage)))) => {
                    outcome.usage = Some(usage);
                    continue;
                }
                Ok(Some(Err(err))) => err,
            };
            outcome.finish_reason = FinishReason::Error;
            outcome.error = Some(failed);
            return;
        }
    }

    /// Stores the text, counts the reply, then announces `error` (if any)
    /// and `done`: a client that saw `done` finds the reply in `/metrics`.
    /// When the text cannot be stored, the `error` says so and `done` has
    /// `finish_reason: error`, which is also what the conversation shows
    /// (the stored message keeps its last checkpoint).
    async fn complete(&self, mut outcome: Outcome) {
        let content = self.live.streamed_text();
        let error = match self.store_final(&content, &outcome).await {
            Some(not_stored) => {
                // The store holds the last checkpoint, not this text.
                self.live.forget_prompt_window();
                outcome.finish_reason = FinishReason::Error;
                Some(not_stored)
            }
            None => outcome.error.as_ref().map(|err| self.upstream_error(err)),
        };
        let now = Instant::now();
        let ms = |from: Instant, to: Instant| (to - from).as_secs_f64() * 1000.0;
        let done = ServerFrame::Done {
            conversation_id: self.live.id.clone(),
            message_id: self.message_id.clone(),
            finish_reason: outcome.finish_reason,
            usage: outcome.usage,
            ttft_ms: outcome.first_token.map(|t| round2(ms(self.received, t))),
            total_ms: round2(ms(self.received, now)),
            model: Some(self.model.clone()),
        };
        tracing::info!(
            finish_reason = outcome.finish_reason.as_str(),
            chars = content.len(),
            total_ms = (now - self.received).as_millis() as u64,
            "reply done"
        );
        self.metrics.reply_finished(outcome.finish_reason);
        if let Some((first_token, total)) = outcome.upstream {
            if let Some(first_token) = first_token {
                self.metrics.upstream_first_token(first_token);
            }
            self.metrics.upstream_finished(total);
        }
        self.live.finish(error.as_ref(), &done);
        if let (Some((meter, user)), Some(usage)) = (&self.meter, outcome.usage) {
            let tokens = u64::from(usage.prompt_tokens) + u64::from(usage.completion_tokens);
            meter.used_tokens(user, tokens).await;
        }
    }

    /// Stores the reply's final text; when that fails, the `error` frame
    /// saying so. A conversation deleted meanwhile is no failure of the
    /// reply: there is nothing left to store it in.
    async fn store_final(&self, content: &str, outcome: &Outcome) -> Option<ServerFrame> {
        let stored = self
            .store
            .finish_assistant(
                &self.message_id,
                &self.run.token,
                content,
                outcome.finish_reason,
                outcome.usage,
            )
            .await;
        let err = match stored {
            Ok(()) => return None,
            Err(StoreError::NotFound) => {
                tracing::info!("the conversation was deleted while its reply streamed");
                return None;
            }
            Err(StoreError::Fenced) => {
                tracing::warn!("the reply was taken over by another instance; not stored");
                return None;
            }
            Err(err) => err,
        };
        // A storage fault was logged by the store, once a minute.
        if err.fault().is_some() {
            tracing::debug!(error = %err, "could not store the reply");
        } else {
            tracing::error!(error = %err, "could not store the reply");
        }
        let refusal = ChatError::from(err);
        let code = refusal.code();
        self.metrics.error_sent(code);
        Some(ServerFrame::Error {
            code,
            message: format!("{refusal} This reply was not saved."),
            client_msg_id: Some(self.client_msg_id.clone()),
            retry_after_ms: None,
            conversation_id: Some(self.live.id.clone()),
        })
    }

    /// The `error` frame of a failed model request (logged and counted).
    fn upstream_error(&self, err: &LlmError) -> ServerFrame {
        let (code, retry_after_ms) = match err {
            LlmError::RateLimited { retry_after } => (
                ErrorCode::RateLimited,
                retry_after.map(|d| d.as_millis() as u64),
            ),
            LlmError::Timeout => (ErrorCode::UpstreamTimeout, None),
            LlmError::NotSetUp(_) => (ErrorCode::Unavailable, None),
            LlmError::Unauthorized { .. } | LlmError::Upstream(_) | LlmError::Empty => {
                (ErrorCode::UpstreamError, None)
            }
        };
        tracing::warn!(error = %err, code = code.as_str(), "reply failed upstream");
        self.metrics.error_sent(code);
        ServerFrame::Error {
            code,
            message: err.to_string(),
            client_msg_id: Some(self.client_msg_id.clone()),
            retry_after_ms,
            conversation_id: Some(self.live.id.clone()),
        }
    }

    /// Persona prompt plus the most recent history that fits the budget
    /// (and, for `continue`, the partial reply and the request to go on).
    fn prompt(&self) -> Vec<PromptTurn> {
        match &self.continues {
            Some(partial) => {
                continuation::prompt(&self.system_prompt, &self.history, partial, &self.limits)
            }
            None => {
                let mut prompt = build_prompt(
                    &self.system_prompt,
                    self.history.iter(),
                    self.limits.history_messages,
                    self.limits.context_chars,
                );
                if let Some(after) = &self.post_history {
                    prompt.push(PromptTurn::System(after.clone()));
                }
                prompt
            }
        }
    }
}

/// Text that has already arrived behind `text` (a burst from the upstream)
/// goes out in the same delta: the same text in fewer frames. The HTTP client
/// hands over one body chunk per wake-up of its connection task, so when
/// nothing is ready the reply yields once to let that task decode what it has
/// already received; it never waits for the network. Returns what was read
/// ahead that is not text (another event, or the stream's end), if anything,
/// and how many tokens `text` now holds.
async fn join_ready(stream: &mut LlmStream, text: &mut String) -> (Option<ReadAhead>, usize) {
    let mut tokens = 1;
    let mut yielded = false;
    while text.len() < MAX_DELTA_BYTES {
        match stream.next().now_or_never() {
            Some(Some(Ok(LlmEvent::Text(more)))) => {
                text.push_str(&more);
                tokens += 1;
                yielded = false;
            }
            Some(other) => return (Some(other), tokens),
            None if !yielded => {
                tokio::task::yield_now().await;
                yielded = true;
            }
            None => break,
        }
    }
    (None, tokens)
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// The system prompt, then the newest messages (at most `max_messages`, at most
/// `max_chars` in total, always at least the newest one), oldest first.
/// Empty assistant messages (failed replies) are left out. Borrows the
/// history: only the picked messages' text is copied.
pub(super) fn build_prompt<'a>(
    system_prompt: &str,
    history: impl DoubleEndedIterator<Item = &'a Message>,
    max_messages: usize,
    max_chars: usize,
) -> Vec<PromptTurn> {
    let mut picked = Vec::new();
    let mut chars = 0;
    for message in history.rev().filter(|m| !m.content.is_empty()) {
        let len = message.content.chars().count();
        if picked.len() == max_messages || (!picked.is_empty() && chars + len > max_chars) {
            break;
        }
        chars += len;
        picked.push(PromptTurn::Said(message.role, message.content.clone()));
    }
    let mut prompt = Vec::with_capacity(picked.len() + 1);
    if !system_prompt.is_empty() {
        prompt.push(PromptTurn::System(system_prompt.to_owned()));
    }
    prompt.extend(picked.into_iter().rev());
    prompt
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Role;

    fn msg(role: Role, content: &str) -> Message {
        Message {
            id: content.into(),
            role,
            content: content.into(),
            created_at: String::new(),
            finish_reason: None,
            alternatives: None,
            model: None,
        }
    }

    #[test]
    fn prompt_keeps_newest_within_budget() {
        let history = [
            msg(Role::User, "aaaa"),
            msg(Role::Assistant, "bbbb"),
            msg(Role::Assistant, ""),
            msg(Role::User, "cc"),
        ];
        let prompt = build_prompt("sys", history.iter(), 10, 6);
        assert_eq!(
            prompt,
            vec![
                PromptTurn::System("sys".into()),
                PromptTurn::Said(Role::Assistant, "bbbb".into()),
                PromptTurn::Said(Role::User, "cc".into()),
            ]
        );
        let prompt = build_prompt("sys", history.iter(), 1, 1);
        assert_eq!(prompt.len(), 2, "the newest message is always sent");
    }
}
