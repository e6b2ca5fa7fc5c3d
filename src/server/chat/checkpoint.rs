//! Crash safety of a streaming reply: its text so far is stored every
//! `CHECKPOINT_TOKENS` tokens or `CHECKPOINT_INTERVAL_SECS`, whichever comes
//! first, so a process killed mid-reply loses at most that much.
//!
//! A checkpoint is one small write through the group-commit writer, and the
//! reply never waits for it: [`Checkpoints::written`] is polled beside the
//! model's stream, and a checkpoint falling due while one is in flight waits
//! for the next token. The store leaves a finished reply alone, so a late
//! checkpoint can never overwrite the final text. After a crash, start-up
//! recovery marks the reply `error` with the checkpointed text; the page
//! offers to continue it (`continue`, which checkpoints the whole text again
//! as it grows) or to regenerate it.

use std::{
    future::Future,
    pin::Pin,
    time::{Duration, Instant},
};

use tokio_util::sync::CancellationToken;

use crate::{
    protocol::MessageId,
    server::store::{Store, StoreError},
};

/// When the next checkpoint is due (no clock of its own: `now` is passed in).
#[derive(Debug)]
struct CheckpointClock {
    every_tokens: usize,
    every: Duration,
    pending_tokens: usize,
    last: Instant,
}

impl CheckpointClock {
    fn new(every_tokens: usize, every: Duration, now: Instant) -> Self {
        Self {
            every_tokens: every_tokens.max(1),
            every,
            pending_tokens: 0,
            last: now,
        }
    }

    fn streamed(&mut self, tokens: usize) {
        self.pending_tokens += tokens;
    }

    /// Text came since the last checkpoint, and enough of it or long enough ago.
    fn due(&self, now: Instant) -> bool {
        self.pending_tokens > 0
            && (self.pending_tokens >= self.every_tokens
                || now.saturating_duration_since(self.last) >= self.every)
    }

    fn taken(&mut self, now: Instant) {
        self.pending_tokens = 0;
        self.last = now;
    }
}

type Write<'a> = Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send + 'a>>;

/// The checkpoints of one reply.
pub(super) struct Checkpoints<'a> {
    store: &'a dyn Store,
    message_id: &'a MessageId,
    /// The run's fencing token.
    run: &'a str,
    /// Stops the reply when another run took it over.
    cancel: &'a CancellationToken,
    clock: CheckpointClock,
    writing: Option<Write<'a>>,
}

impl<'a> Checkpoints<'a> {
    pub(super) fn new(
        store: &'a dyn Store,
        (message_id, run): (&'a MessageId, &'a str),
        cancel: &'a CancellationToken,
        every_tokens: usize,
        every: Duration,
    ) -> Self {
        Self {
            store,
            message_id,
            run,
            cancel,
            clock: CheckpointClock::new(every_tokens, every, Instant::now()),
            writing: None,
        }
    }

    /// `tokens` more were streamed; when a checkpoint is due and none is in
    /// flight, starts storing `text()` (the whole text so far).
    pub(super) fn streamed(&mut self, tokens: usize, text: impl FnOnce() -> String) {
        self.clock.streamed(tokens);
        let now = Instant::now();
        if self.writing.is_some() || !self.clock.due(now) {
            return;
        }
        self.clock.taken(now);
        let (store, id, run, text) = (self.store, self.message_id, self.run, text());
        self.writing = Some(Box::pin(async move {
            store.checkpoint_assistant(id, run, &text).await
        }));
    }

    /// Resolves when the checkpoint in flight is stored (never, when none
    /// is). A reply taken over by another run is stopped. The reply streams on after a failure, and its final text is
    /// stored when it ends. A storage fault was logged by the store (once a
    /// minute, not once per checkpoint of every reply); anything else is
    /// logged here.
    pub(super) async fn written(&mut self) {
        let Some(writing) = self.writing.as_mut() else {
            return std::future::pending().await;
        };
        match writing.await {
            Ok(()) => {}
            Err(StoreError::Fenced) => {
                tracing::warn!("the reply was taken over by another instance; stopping it");
                self.cancel.cancel();
            }
            Err(err) if err.fault().is_some() => {
                tracing::debug!(error = %err, "could not store the reply's partial text");
            }
            Err(err) => tracing::warn!(error = %err, "could not store the reply's partial text"),
        }
        self.writing = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_after_enough_tokens_or_enough_time_with_new_text() {
        let t0 = Instant::now();
        let mut clock = CheckpointClock::new(4, Duration::from_secs(1), t0);
        assert!(
            !clock.due(t0 + Duration::from_secs(5)),
            "nothing new to store"
        );
        clock.streamed(3);
        assert!(!clock.due(t0 + Duration::from_millis(999)));
        clock.streamed(1);
        assert!(clock.due(t0 + Duration::from_millis(10)), "4 tokens");
        clock.taken(t0 + Duration::from_millis(10));
        clock.streamed(1);
        assert!(!clock.due(t0 + Duration::from_millis(1009)));
        assert!(
            clock.due(t0 + Duration::from_millis(1010)),
            "a second later"
        );
    }
}
