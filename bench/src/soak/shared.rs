//! What the soak's traffic tasks share: when to stop, counts per kind of
//! traffic, errors by kind, and the latencies of the current sampling window.
//! Workers only record here; the sampler drains the window.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// A kind of traffic the soak runs; each counts its completed cycles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// A chat message over WebSocket: send, validated reply to `done`.
    ChatWs,
    /// A chat message over `POST /api/chat`.
    ChatSse,
    /// Open a socket, get `hello`, close it.
    Churn,
    /// Drop a socket mid-reply, reconnect, `subscribe`, see the reply finish.
    ResumeWs,
    /// Drop an SSE response mid-reply, reopen the events with `Last-Event-ID`.
    ResumeSse,
    /// `stop` over the socket mid-reply: `done` with `stopped`.
    StopWs,
    /// `stop` as `POST /api/frame` mid-reply of a `POST /api/chat`.
    StopSse,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::ChatWs,
        Kind::ChatSse,
        Kind::Churn,
        Kind::ResumeWs,
        Kind::ResumeSse,
        Kind::StopWs,
        Kind::StopSse,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::ChatWs => "chat_ws",
            Kind::ChatSse => "chat_sse",
            Kind::Churn => "churn",
            Kind::ResumeWs => "resume_ws",
            Kind::ResumeSse => "resume_sse",
            Kind::StopWs => "stop_ws",
            Kind::StopSse => "stop_sse",
        }
    }
}

/// Chat latencies (ms) of the messages completed in one window.
#[derive(Debug, Default)]
pub struct Window {
    pub ttft_ms: Vec<f64>,
    pub total_ms: Vec<f64>,
}

#[derive(Debug)]
pub struct Shared {
    /// Start of the traffic; sample times count from here.
    pub start: Instant,
    /// No new cycle starts after this.
    pub end: Instant,
    done: [AtomicU64; Kind::ALL.len()],
    errors: Mutex<BTreeMap<String, u64>>,
    window: Mutex<Window>,
    /// Every chat message of the run: (seconds since start, TTFT, total).
    all: Mutex<Vec<(f64, f64, f64)>>,
}

impl Shared {
    pub fn new(start: Instant, run: Duration) -> Self {
        Self {
            start,
            end: start + run,
            done: Default::default(),
            errors: Mutex::default(),
            window: Mutex::default(),
            all: Mutex::default(),
        }
    }

    /// Whether a worker may start another cycle.
    pub fn running(&self) -> bool {
        Instant::now() < self.end
    }

    pub fn completed(&self, kind: Kind) {
        self.done[kind as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// A chat message completed with these client-side latencies.
    pub fn chat(&self, kind: Kind, ttft_ms: f64, total_ms: f64) {
        self.completed(kind);
        let t = self.start.elapsed().as_secs_f64();
        self.all
            .lock()
            .expect("latency lock")
            .push((t, ttft_ms, total_ms));
        let mut w = self.window.lock().expect("window lock");
        w.ttft_ms.push(ttft_ms);
        w.total_ms.push(total_ms);
    }

    /// TTFT and total (ms) of the chat messages completed at or after `t_s`.
    pub fn latencies_since(&self, t_s: f64) -> (Vec<f64>, Vec<f64>) {
        let all = self.all.lock().expect("latency lock");
        all.iter()
            .filter(|(t, _, _)| *t >= t_s)
            .map(|(_, a, b)| (*a, *b))
            .unzip()
    }

    /// An error of `kind` (e.g. `resume_ws:protocol:text_mismatch`); the
    /// first of each kind is printed with its time.
    pub fn error(&self, kind: String) {
        let mut errors = self.errors.lock().expect("errors lock");
        let n = errors.entry(kind.clone()).or_insert(0);
        *n += 1;
        if *n == 1 {
            eprintln!(
                "# soak: error {kind} at {:.1} s",
                self.start.elapsed().as_secs_f64()
            );
        }
    }

    pub fn count(&self, kind: Kind) -> u64 {
        self.done[kind as usize].load(Ordering::Relaxed)
    }

    pub fn error_total(&self) -> u64 {
        self.errors.lock().expect("errors lock").values().sum()
    }

    pub fn errors(&self) -> BTreeMap<String, u64> {
        self.errors.lock().expect("errors lock").clone()
    }

    /// The latencies since the last call.
    pub fn take_window(&self) -> Window {
        std::mem::take(&mut *self.window.lock().expect("window lock"))
    }
}
