//! [`FakeStats`]: what the fake has seen, and the guard that counts each
//! streamed reply as completed or aborted.

use std::sync::{
    atomic::{AtomicU64, Ordering},
    Arc, Mutex,
};

use serde_json::Value;

/// What the fake has seen.
#[derive(Debug, Default)]
pub struct FakeStats {
    /// Chat completion requests received.
    pub requests: AtomicU64,
    /// Streams that ran to `[DONE]`.
    pub completed: AtomicU64,
    /// Streams dropped by the client before the end.
    pub aborted: AtomicU64,
    /// Streams open right now, and the most ever open at once.
    pub in_flight: AtomicU64,
    pub max_in_flight: AtomicU64,
    /// The `messages` of the latest request.
    pub last_messages: Mutex<Option<Value>>,
    changed: tokio::sync::Notify,
}

impl FakeStats {
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }

    pub fn aborted(&self) -> u64 {
        self.aborted.load(Ordering::SeqCst)
    }

    pub fn completed(&self) -> u64 {
        self.completed.load(Ordering::SeqCst)
    }

    /// Resolves once at least `n` streams were aborted by the client.
    pub async fn wait_aborted(&self, n: u64) {
        self.wait_until(|s| s.aborted() >= n).await
    }

    /// Resolves once at least `n` streams ran to `[DONE]`.
    pub async fn wait_completed(&self, n: u64) {
        self.wait_until(|s| s.completed() >= n).await
    }

    async fn wait_until(&self, done: impl Fn(&Self) -> bool) {
        loop {
            let notified = self.changed.notified();
            if done(self) {
                return;
            }
            notified.await;
        }
    }

    /// Counts a chat completion request and keeps its `messages`.
    pub(crate) fn record_request(&self, messages: Option<Value>) {
        self.requests.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut last) = self.last_messages.lock() {
            *last = messages;
        }
    }
}

/// One open stream: counted in flight while it lives, and as aborted when
/// the body is dropped before its end.
pub(crate) struct AbortGuard {
    stats: Arc<FakeStats>,
    finished: bool,
}

impl AbortGuard {
    /// Counts a stream as open.
    pub(crate) fn open(stats: Arc<FakeStats>) -> Self {
        let now_open = stats.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        stats.max_in_flight.fetch_max(now_open, Ordering::SeqCst);
        Self {
            stats,
            finished: false,
        }
    }

    /// The stream ran to `[DONE]`.
    pub(crate) fn complete(&mut self) {
        self.finished = true;
        self.stats.completed.fetch_add(1, Ordering::SeqCst);
        self.stats.changed.notify_waiters();
    }

    /// The fake cut the stream on purpose (`[[cut:N]]`): not a client abort.
    pub(crate) fn cut(&mut self) {
        self.finished = true;
    }
}

impl Drop for AbortGuard {
    fn drop(&mut self) {
        self.stats.in_flight.fetch_sub(1, Ordering::SeqCst);
        if !self.finished {
            self.stats.aborted.fetch_add(1, Ordering::SeqCst);
            self.stats.changed.notify_waiters();
        }
    }
}
