//! Operational metrics, served by `GET /metrics` in the Prometheus text
//! exposition format (version 0.0.4), written by hand: a few atomics and a
//! fixed-bucket histogram, no metrics crate.
//!
//! The endpoint is public on the listen address, like `/healthz`: it carries
//! counts and timings only, never message text, user or conversation ids, or
//! keys. Put it behind the proxy's access rules if even that is too much.
//!
//! Every name is prefixed `tether_`; every labelled series is present from the
//! start (at 0), so a rate over a fresh process needs no special case.
//!
//! | Metric | Type | Meaning |
//! |---|---|---|
//! | `tether_open_sockets` | gauge | WebSocket connections currently open (upgraded, not yet closed) |
//! | `tether_live_streams` | gauge | Replies currently running (streaming or waiting for an upstream slot) |
//! | `tether_messages_total` | counter | User messages accepted by `send` (duplicates of an earlier `client_msg_id` not counted) |
//! | `tether_replies_total{finish_reason}` | counter | Replies ended, by `finish_reason`: `stop`, `length`, `stopped`, `error` |
//! | `tether_errors_total{code}` | counter | `error` frames, by protocol error code; an upstream failure counts once per reply, however many sockets follow the conversation |
//! | `tether_rate_limited_total` | counter | Requests Tether refused itself with `rate_limited` (send rate, sockets per user); upstream 429s are in `tether_errors_total{code="rate_limited"}` only |
//! | `tether_upstream_ttft_seconds` | histogram | From sending the request to the model to its first token |
//! | `tether_upstream_duration_seconds` | histogram | From sending the request to the model to the end of its stream (done, stopped, failed or timed out) |
//! | `tether_ws_upgrades_refused_total{reason}` | counter | `/ws` upgrades refused: `origin` (403), `identity` (401), `capacity` (503) |
//!
//! The upstream histograms leave out the time a reply queued for an upstream
//! slot; the `done` frame's `ttft_ms` / `total_ms` measure from the request's
//! arrival instead, as a user sees it.
//!
//! Buckets (seconds): 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, +Inf.

use std::{
    fmt::Write as _,
    sync::{
        atomic::{AtomicI64, AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use crate::protocol::{ErrorCode, FinishReason};

/// The `content-type` of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds of the histogram buckets, in seconds; `+Inf` follows.
pub const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

const FINISH_REASONS: [FinishReason; 4] = [
    FinishReason::Stop,
    FinishReason::Length,
    FinishReason::Stopped,
    FinishReason::Error,
];

const ERROR_CODES: [ErrorCode; 9] = [
    ErrorCode::BadRequest,
    ErrorCode::TooLarge,
    ErrorCode::Unauthorized,
    ErrorCode::NotFound,
    ErrorCode::RateLimited,
    ErrorCode::Busy,
    ErrorCode::UpstreamError,
    ErrorCode::UpstreamTimeout,
    ErrorCode::Internal,
];

/// Why a `/ws` upgrade was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpgradeRefusal {
    /// Missing or foreign `Origin` (403).
    Origin,
    /// Missing or invalid identity cookie (401).
    Identity,
    /// The server holds its maximum of sockets (503).
    Capacity,
}

impl UpgradeRefusal {
    const ALL: [UpgradeRefusal; 3] = [
        UpgradeRefusal::Origin,
        UpgradeRefusal::Identity,
        UpgradeRefusal::Capacity,
    ];

    fn as_str(self) -> &'static str {
        match self {
            UpgradeRefusal::Origin => "origin",
            UpgradeRefusal::Identity => "identity",
            UpgradeRefusal::Capacity => "capacity",
        }
    }
}

// Exhaustive matches: a new variant fails to compile until it has a series.
fn finish_index(reason: FinishReason) -> usize {
    match reason {
        FinishReason::Stop => 0,
        FinishReason::Length => 1,
        FinishReason::Stopped => 2,
        FinishReason::Error => 3,
    }
}

fn error_index(code: ErrorCode) -> usize {
    match code {
        ErrorCode::BadRequest => 0,
        ErrorCode::TooLarge => 1,
        ErrorCode::Unauthorized => 2,
        ErrorCode::NotFound => 3,
        ErrorCode::RateLimited => 4,
        ErrorCode::Busy => 5,
        ErrorCode::UpstreamError => 6,
        ErrorCode::UpstreamTimeout => 7,
        ErrorCode::Internal => 8,
    }
}

/// A histogram with the fixed [`BUCKETS`].
#[derive(Debug, Default)]
pub struct Histogram {
    /// Observations per bucket (not cumulative); the last one is `+Inf`.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, value: Duration) {
        let secs = value.as_secs_f64();
        let index = BUCKETS
            .iter()
            .position(|&bound| secs <= bound)
            .unwrap_or(BUCKETS.len());
        self.buckets[index].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(value.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Appends the `_bucket`, `_sum` and `_count` lines. `_count` is the
    /// `+Inf` bucket, so the two agree even while observations race.
    fn render(&self, out: &mut String, name: &str, help: &str) {
        header(out, name, help, "histogram");
        let mut cumulative = 0u64;
        for (i, count) in self.buckets.iter().enumerate() {
            cumulative += count.load(Ordering::Relaxed);
            match BUCKETS.get(i) {
                Some(bound) => {
                    let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
                }
                None => {
                    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
                }
            }
        }
        let sum = Duration::from_nanos(self.sum_nanos.load(Ordering::Relaxed)).as_secs_f64();
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {cumulative}");
    }
}

/// Every metric of the server; one per process, shared as `Arc<Metrics>`.
#[derive(Debug, Default)]
pub struct Metrics {
    open_sockets: AtomicI64,
    messages: AtomicU64,
    replies: [AtomicU64; FINISH_REASONS.len()],
    errors: [AtomicU64; ERROR_CODES.len()],
    rate_limited: AtomicU64,
    upgrades_refused: [AtomicU64; UpgradeRefusal::ALL.len()],
    upstream_ttft: Histogram,
    upstream_duration: Histogram,
}

/// Counts one open socket while it lives.
#[derive(Debug)]
pub struct OpenSocket(Arc<Metrics>);

impl Drop for OpenSocket {
    fn drop(&mut self) {
        self.0.open_sockets.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    /// A socket was upgraded; it counts as open until the guard drops.
    pub fn socket_opened(self: &Arc<Self>) -> OpenSocket {
        self.open_sockets.fetch_add(1, Ordering::Relaxed);
        OpenSocket(self.clone())
    }

    /// A user message was stored and accepted (not a duplicate).
    pub fn message_accepted(&self) {
        self.messages.fetch_add(1, Ordering::Relaxed);
    }

    /// A reply ended.
    pub fn reply_finished(&self, reason: FinishReason) {
        self.replies[finish_index(reason)].fetch_add(1, Ordering::Relaxed);
    }

    /// An `error` frame answered a client's request (or its connection).
    pub fn refused(&self, code: ErrorCode) {
        self.error_sent(code);
        if code == ErrorCode::RateLimited {
            self.rate_limited.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// An `error` frame announced a failed reply to its conversation.
    pub fn error_sent(&self, code: ErrorCode) {
        self.errors[error_index(code)].fetch_add(1, Ordering::Relaxed);
    }

    pub fn upgrade_refused(&self, reason: UpgradeRefusal) {
        self.upgrades_refused[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn upstream_first_token(&self, after: Duration) {
        self.upstream_ttft.observe(after);
    }

    pub fn upstream_finished(&self, after: Duration) {
        self.upstream_duration.observe(after);
    }

    /// The text exposition; `live_streams` is read by the caller at render
    /// time (the chat service's count of running replies).
    pub fn render(&self, live_streams: usize) -> String {
        let load = |v: &AtomicU64| v.load(Ordering::Relaxed);
        let mut out = String::with_capacity(4096);
        gauge(
            &mut out,
            "tether_open_sockets",
            "WebSocket connections currently open.",
            self.open_sockets.load(Ordering::Relaxed),
        );
        gauge(
            &mut out,
            "tether_live_streams",
            "Replies currently running.",
            live_streams,
        );
        counter(
            &mut out,
            "tether_messages_total",
            "User messages accepted (duplicates not counted).",
            load(&self.messages),
        );
        labelled_counter(
            &mut out,
            "tether_replies_total",
            "Replies ended, by finish reason.",
            "finish_reason",
            FINISH_REASONS
                .iter()
                .map(|r| (r.as_str(), load(&self.replies[finish_index(*r)]))),
        );
        labelled_counter(
            &mut out,
            "tether_errors_total",
            "Error frames sent to clients, by error code.",
            "code",
            ERROR_CODES
                .iter()
                .map(|c| (c.as_str(), load(&self.errors[error_index(*c)]))),
        );
        counter(
            &mut out,
            "tether_rate_limited_total",
            "Requests refused by Tether's own limits with rate_limited.",
            load(&self.rate_limited),
        );
        self.upstream_ttft.render(
            &mut out,
            "tether_upstream_ttft_seconds",
            "Time from the upstream request to the model's first token.",
        );
        self.upstream_duration.render(
            &mut out,
            "tether_upstream_duration_seconds",
            "Time from the upstream request to the end of the model's stream.",
        );
        labelled_counter(
            &mut out,
            "tether_ws_upgrades_refused_total",
            "WebSocket upgrades refused, by reason.",
            "reason",
            UpgradeRefusal::ALL
                .iter()
                .map(|r| (r.as_str(), load(&self.upgrades_refused[*r as usize]))),
        );
        out
    }
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn gauge(out: &mut String, name: &str, help: &str, value: impl std::fmt::Display) {
    header(out, name, help, "gauge");
    let _ = writeln!(out, "{name} {value}");
}

/// A counter family with one label, one line per label value.
fn labelled_counter<'a>(
    out: &mut String,
    name: &str,
    help: &str,
    label: &str,
    values: impl Iterator<Item = (&'a str, u64)>,
) {
    header(out, name, help, "counter");
    for (value_label, value) in values {
        let _ = writeln!(out, "{name}{{{label}=\"{value_label}\"}} {value}");
    }
}

fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    header(out, name, help, "counter");
    let _ = writeln!(out, "{name} {value}");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the series line that starts with `series ` exactly.
    fn value(text: &str, series: &str) -> f64 {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
            .parse()
            .expect("a number")
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_inf_equals_count() {
        let metrics = Metrics::new();
        for ms in [1, 5, 7, 200, 200, 3_000, 60_000] {
            metrics.upstream_first_token(Duration::from_millis(ms));
        }
        let text = metrics.render(0);
        let name = "tether_upstream_ttft_seconds";
        let bucket = |le: &str| value(&text, &format!("{name}_bucket{{le=\"{le}\"}}"));
        // 0.005 is inclusive (`le`): 1 ms and 5 ms.
        assert_eq!(bucket("0.005"), 2.0);
        assert_eq!(bucket("0.01"), 3.0);
        assert_eq!(bucket("0.1"), 3.0);
        assert_eq!(bucket("0.25"), 5.0);
        assert_eq!(bucket("1"), 5.0);
        assert_eq!(bucket("5"), 6.0);
        assert_eq!(bucket("10"), 6.0);
        assert_eq!(bucket("+Inf"), 7.0);
        assert_eq!(value(&text, &format!("{name}_count")), 7.0);
        let sum = value(&text, &format!("{name}_sum"));
        assert!((sum - 63.413).abs() < 1e-9, "{sum}");

        let mut previous = 0.0;
        let mut lines = 0;
        for line in text
            .lines()
            .filter(|l| l.starts_with(name) && l.contains("_bucket"))
        {
            let v: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
            assert!(v >= previous, "cumulative: {line}");
            previous = v;
            lines += 1;
        }
        assert_eq!(lines, BUCKETS.len() + 1);
        // The other histogram is untouched and still complete.
        assert_eq!(
            value(
                &text,
                "tether_upstream_duration_seconds_bucket{le=\"+Inf\"}"
            ),
            0.0
        );
        assert_eq!(value(&text, "tether_upstream_duration_seconds_count"), 0.0);
    }

    #[test]
    fn every_series_is_present_from_the_start_with_help_and_type() {
        let text = Metrics::new().render(2);
        assert_eq!(value(&text, "tether_live_streams"), 2.0);
        assert_eq!(value(&text, "tether_open_sockets"), 0.0);
        for code in ERROR_CODES {
            let series = format!("tether_errors_total{{code=\"{}\"}}", code.as_str());
            assert_eq!(value(&text, &series), 0.0);
        }
        for reason in FINISH_REASONS {
            let series = format!(
                "tether_replies_total{{finish_reason=\"{}\"}}",
                reason.as_str()
            );
            assert_eq!(value(&text, &series), 0.0);
        }
        for reason in ["origin", "identity", "capacity"] {
            let series = format!("tether_ws_upgrades_refused_total{{reason=\"{reason}\"}}");
            assert_eq!(value(&text, &series), 0.0);
        }
        // Each family: HELP then TYPE, once; every sample belongs to a declared family.
        let families: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .map(|l| l.split(' ').next().unwrap())
            .collect();
        assert_eq!(families.len(), 9);
        for family in &families {
            assert_eq!(
                text.matches(&format!("# HELP {family} ")).count(),
                1,
                "{family}"
            );
        }
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(
                families.iter().any(|f| line.starts_with(f)),
                "undeclared: {line}"
            );
        }
    }

    #[test]
    fn counters_and_the_socket_gauge_move() {
        let metrics = Arc::new(Metrics::new());
        let a = metrics.socket_opened();
        let b = metrics.socket_opened();
        metrics.refused(ErrorCode::RateLimited);
        metrics.error_sent(ErrorCode::RateLimited);
        metrics.upgrade_refused(UpgradeRefusal::Capacity);
        metrics.reply_finished(FinishReason::Length);
        metrics.message_accepted();
        drop(a);
        let text = metrics.render(0);
        assert_eq!(value(&text, "tether_open_sockets"), 1.0);
        assert_eq!(
            value(&text, "tether_errors_total{code=\"rate_limited\"}"),
            2.0
        );
        assert_eq!(value(&text, "tether_rate_limited_total"), 1.0);
        assert_eq!(
            value(
                &text,
                "tether_ws_upgrades_refused_total{reason=\"capacity\"}"
            ),
            1.0
        );
        assert_eq!(
            value(&text, "tether_replies_total{finish_reason=\"length\"}"),
            1.0
        );
        assert_eq!(value(&text, "tether_messages_total"), 1.0);
        drop(b);
        assert_eq!(value(&metrics.render(0), "tether_open_sockets"), 0.0);
    }
}
