//! Operational metrics, served by `GET /metrics` in the Prometheus text
//! exposition format (version 0.0.4), kept and encoded by `prometheus-client`.
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
//! | `tether_address_limited_total{limit}` | counter | Refusals by a per-address limit: `identities` (new cookies, 429), `streams` (open sockets/streams), `sends` (messages started) |
//! | `tether_flood_disconnects_total` | counter | WebSockets closed (1008) for sending frames faster than `FRAMES_PER_SEC` after being told |
//! | `tether_slow_requests_closed_total` | counter | Connections closed because a request's headers took longer than `HEADER_TIMEOUT_SECS` (slow or silent clients) |
//! | `tether_store_faults_total{kind}` | counter | Store operations (reads and writes) that failed, by fault: `full`, `read_only`, `locked`, `cannot_open`, `io`, `corrupt`, `other` |
//! | `tether_runtime_alive_tasks` | gauge | Tasks alive in the Tokio runtime that serves the scrape (sockets, streams, replies, the server's own), read at scrape time; 0 outside a runtime |
//!
//! The upstream histograms leave out the time a reply queued for an upstream
//! slot; the `done` frame's `ttft_ms` / `total_ms` measure from the request's
//! arrival instead, as a user sees it.
//!
//! Buckets (seconds): 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, +Inf.
//!
//! Counters are registered without their `_total` suffix (the encoder adds
//! it) and help texts without their final full stop (the registry adds it).

use std::time::Duration;

use prometheus_client::{
    encoding::{prometheus_text, EncodeMetric, MetricEncoder},
    metrics::{counter::Counter, gauge::Gauge, histogram::Histogram, MetricType},
    registry::Registry,
};
use strum::VariantArray;

use crate::{
    protocol::{ErrorCode, FinishReason},
    server::store::FaultCounts,
};

/// The `content-type` of [`Metrics::render`]'s output.
pub use prometheus_text::CONTENT_TYPE;

/// Upper bounds of the histogram buckets, in seconds; `+Inf` follows.
pub const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Why a `/ws` upgrade was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, strum::IntoStaticStr, strum::VariantArray)]
#[strum(serialize_all = "snake_case")]
pub enum UpgradeRefusal {
    /// Missing or foreign `Origin` (403).
    Origin,
    /// Missing or invalid identity cookie (401).
    Identity,
    /// The server holds its maximum of sockets (503).
    Capacity,
}

/// Which per-address limit refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, strum::IntoStaticStr, strum::VariantArray)]
#[strum(serialize_all = "snake_case")]
pub enum AddressLimit {
    /// New identity cookies (`IDENTITY_BURST`, `IDENTITY_PER_SEC`).
    Identities,
    /// Open streams (`MAX_STREAMS_PER_ADDR`).
    Streams,
    /// Replies started (`ADDR_RATE_BURST`, `ADDR_RATE_PER_SEC`).
    Sends,
}

/// What happened between instances (cluster mode).
#[derive(Clone, Copy, Debug, PartialEq, Eq, strum::IntoStaticStr, strum::VariantArray)]
#[strum(serialize_all = "snake_case")]
pub enum ClusterEvent {
    /// A record (a frame, or a reply's start) sent to the other instances.
    Published,
    /// A record received from the cluster for this instance's subscribers.
    Received,
    /// A record refused because its sender no longer holds the reply's lease.
    Fenced,
    /// Subscribers told to start over from a snapshot (gap or reconnect).
    Resync,
    /// A `stop` sent to the instance running the reply.
    StopSent,
    /// A `stop` received for a reply running here.
    StopReceived,
    /// The live-state connection failed a write (Redis unavailable).
    WriteFailed,
}

/// How a reply lease renewal went.
#[derive(Clone, Copy, Debug, PartialEq, Eq, strum::IntoStaticStr, strum::VariantArray)]
#[strum(serialize_all = "snake_case")]
pub enum LeaseRenewal {
    Renewed,
    /// Redis had lost it (restart, failover) and it was taken again.
    Retaken,
    /// Another instance holds it: this instance's reply stops.
    Lost,
}

/// A counter family with one label whose values are the variants of `E`:
/// every series exists from the start, they are written in declaration order,
/// and counting takes no lock. Clones share the counters.
#[derive(Clone, Debug)]
struct ByVariant<E: 'static> {
    label: &'static str,
    counters: Vec<(E, Counter)>,
}

impl<E: VariantArray + Copy + PartialEq + Into<&'static str>> ByVariant<E> {
    fn new(label: &'static str) -> Self {
        let counters = E::VARIANTS.iter().map(|&v| (v, Counter::default()));
        Self {
            label,
            counters: counters.collect(),
        }
    }

    fn inc(&self, value: E) {
        if let Some((_, counter)) = self.counters.iter().find(|(v, _)| *v == value) {
            counter.inc();
        }
    }
}

impl<E> EncodeMetric for ByVariant<E>
where
    E: Copy + Into<&'static str> + std::fmt::Debug + Send + Sync + 'static,
{
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        for (value, counter) in &self.counters {
            let labels = [(self.label, (*value).into())];
            counter.encode(encoder.encode_family(&labels)?)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Counter
    }
}

/// Every metric of the server; one per process, shared as `Arc<Metrics>`.
/// The fields are handles into `registry`, which owns clones of them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    open_sockets: Gauge,
    live_streams: Gauge,
    messages: Counter,
    replies: ByVariant<FinishReason>,
    errors: ByVariant<ErrorCode>,
    rate_limited: Counter,
    upgrades_refused: ByVariant<UpgradeRefusal>,
    address_limited: ByVariant<AddressLimit>,
    flood_disconnects: Counter,
    slow_requests: Counter,
    upstream_ttft: Histogram,
    upstream_duration: Histogram,
    /// Kept by the store, which counts its own faults.
    store_faults: FaultCounts,
    alive_tasks: Gauge,
    cluster_events: ByVariant<ClusterEvent>,
    lease_renewals: ByVariant<LeaseRenewal>,
    recovered: Counter,
}

/// Counts one open socket while it lives.
#[derive(Debug)]
pub struct OpenSocket(Gauge);

impl Drop for OpenSocket {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Metrics with store fault counts of their own (nothing counts them).
    pub fn new() -> Self {
        Self::with_store_faults(FaultCounts::default())
    }

    /// Metrics that expose the store's fault counts.
    pub fn with_store_faults(store_faults: FaultCounts) -> Self {
        let metrics = Self {
            registry: Registry::default(),
            open_sockets: Gauge::default(),
            live_streams: Gauge::default(),
            messages: Counter::default(),
            replies: ByVariant::new("finish_reason"),
            errors: ByVariant::new("code"),
            rate_limited: Counter::default(),
            upgrades_refused: ByVariant::new("reason"),
            address_limited: ByVariant::new("limit"),
            flood_disconnects: Counter::default(),
            slow_requests: Counter::default(),
            upstream_ttft: Histogram::new(BUCKETS),
            upstream_duration: Histogram::new(BUCKETS),
            store_faults,
            alive_tasks: Gauge::default(),
            cluster_events: ByVariant::new("event"),
            lease_renewals: ByVariant::new("outcome"),
            recovered: Counter::default(),
        };
        metrics.registered()
    }

    /// Registers every handle, in the order of the exposition.
    fn registered(mut self) -> Self {
        let r = &mut self.registry;
        r.register(
            "tether_open_sockets",
            "WebSocket connections currently open",
            self.open_sockets.clone(),
        );
        r.register(
            "tether_live_streams",
            "Replies currently running",
            self.live_streams.clone(),
        );
        r.register(
            "tether_messages",
            "User messages accepted (duplicates not counted)",
            self.messages.clone(),
        );
        r.register(
            "tether_replies",
            "Replies ended, by finish reason",
            self.replies.clone(),
        );
        r.register(
            "tether_errors",
            "Error frames sent to clients, by error code",
            self.errors.clone(),
        );
        r.register(
            "tether_rate_limited",
            "Requests refused by Tether's own limits with rate_limited",
            self.rate_limited.clone(),
        );
        r.register(
            "tether_upstream_ttft_seconds",
            "Time from the upstream request to the model's first token",
            self.upstream_ttft.clone(),
        );
        r.register(
            "tether_upstream_duration_seconds",
            "Time from the upstream request to the end of the model's stream",
            self.upstream_duration.clone(),
        );
        r.register(
            "tether_ws_upgrades_refused",
            "WebSocket upgrades refused, by reason",
            self.upgrades_refused.clone(),
        );
        r.register(
            "tether_address_limited",
            "Requests refused by a per-address limit, by limit",
            self.address_limited.clone(),
        );
        r.register(
            "tether_flood_disconnects",
            "WebSockets closed for flooding frames",
            self.flood_disconnects.clone(),
        );
        r.register(
            "tether_slow_requests_closed",
            "Connections closed for sending request headers too slowly",
            self.slow_requests.clone(),
        );
        r.register(
            "tether_store_faults",
            "Store operations that failed, by fault kind",
            self.store_faults.clone(),
        );
        r.register(
            "tether_runtime_alive_tasks",
            "Tasks alive in the Tokio runtime, read at scrape time",
            self.alive_tasks.clone(),
        );
        self.registered_cluster()
    }

    /// Registers the cluster mode's handles (after the others).
    fn registered_cluster(mut self) -> Self {
        let r = &mut self.registry;
        r.register(
            "tether_cluster_events",
            "Cross-instance events (cluster mode), by event",
            self.cluster_events.clone(),
        );
        r.register(
            "tether_lease_renewals",
            "Reply lease renewals (cluster mode), by outcome",
            self.lease_renewals.clone(),
        );
        r.register(
            "tether_replies_recovered",
            "Replies of a dead instance finished by this one (cluster mode)",
            self.recovered.clone(),
        );
        self
    }

    /// A socket was upgraded; it counts as open until the guard drops.
    pub fn socket_opened(&self) -> OpenSocket {
        self.open_sockets.inc();
        OpenSocket(self.open_sockets.clone())
    }

    /// A user message was stored and accepted (not a duplicate).
    pub fn message_accepted(&self) {
        self.messages.inc();
    }

    /// A reply ended.
    pub fn reply_finished(&self, reason: FinishReason) {
        self.replies.inc(reason);
    }

    /// An `error` frame answered a client's request (or its connection).
    pub fn refused(&self, code: ErrorCode) {
        self.error_sent(code);
        if code == ErrorCode::RateLimited {
            self.rate_limited.inc();
        }
    }

    /// An `error` frame announced a failed reply to its conversation.
    pub fn error_sent(&self, code: ErrorCode) {
        self.errors.inc(code);
    }

    pub fn upgrade_refused(&self, reason: UpgradeRefusal) {
        self.upgrades_refused.inc(reason);
    }

    pub fn address_limited(&self, limit: AddressLimit) {
        self.address_limited.inc(limit);
    }

    pub fn flood_disconnect(&self) {
        self.flood_disconnects.inc();
    }

    pub fn slow_request_closed(&self) {
        self.slow_requests.inc();
    }

    pub fn cluster_event(&self, event: ClusterEvent) {
        self.cluster_events.inc(event);
    }

    pub fn lease_renewed(&self, outcome: LeaseRenewal) {
        self.lease_renewals.inc(outcome);
    }

    pub fn reply_recovered(&self) {
        self.recovered.inc();
    }

    pub fn upstream_first_token(&self, after: Duration) {
        self.upstream_ttft.observe(after.as_secs_f64());
    }

    pub fn upstream_finished(&self, after: Duration) {
        self.upstream_duration.observe(after.as_secs_f64());
    }

    /// The text exposition; `live_streams` is read by the caller at render
    /// time (the chat service's count of running replies), the alive tasks
    /// from the runtime this is called on (none: 0).
    pub fn render(&self, live_streams: usize) -> String {
        self.live_streams
            .set(i64::try_from(live_streams).unwrap_or(i64::MAX));
        let alive_tasks = tokio::runtime::Handle::try_current()
            .map_or(0, |runtime| runtime.metrics().num_alive_tasks());
        self.alive_tasks
            .set(i64::try_from(alive_tasks).unwrap_or(i64::MAX));
        let mut out = String::with_capacity(4096);
        // Writing into a String cannot fail, nor can these metrics' encoders.
        if let Err(error) = prometheus_text::encode(&mut out, &self.registry) {
            tracing::error!(%error, "encoding metrics failed");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

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
        for &code in ErrorCode::VARIANTS {
            let series = format!("tether_errors_total{{code=\"{}\"}}", code.as_str());
            assert_eq!(value(&text, &series), 0.0);
        }
        for &reason in FinishReason::VARIANTS {
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
        for limit in ["identities", "streams", "sends"] {
            let series = format!("tether_address_limited_total{{limit=\"{limit}\"}}");
            assert_eq!(value(&text, &series), 0.0);
        }
        assert_eq!(value(&text, "tether_flood_disconnects_total"), 0.0);
        assert_eq!(value(&text, "tether_slow_requests_closed_total"), 0.0);
        for &kind in crate::server::store::FaultKind::VARIANTS {
            let series = format!("tether_store_faults_total{{kind=\"{}\"}}", kind.as_str());
            assert_eq!(value(&text, &series), 0.0);
        }
        // Each family: HELP then TYPE, once; every sample belongs to a declared family.
        let families: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .map(|l| l.split(' ').next().unwrap())
            .collect();
        assert_eq!(families.len(), 17);
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

    #[test]
    fn alive_tasks_is_zero_outside_a_runtime() {
        let text = Metrics::new().render(0);
        assert_eq!(value(&text, "tether_runtime_alive_tasks"), 0.0);
    }

    /// On the current-thread runtime a task is released before the task
    /// awaiting it runs again, so the count is exact after each join.
    #[tokio::test]
    async fn alive_tasks_counts_the_runtime_s_tasks_at_scrape_time() {
        let metrics = Metrics::new();
        let alive = || value(&metrics.render(0), "tether_runtime_alive_tasks");
        let before = alive();
        let (release, wait) = tokio::sync::watch::channel(false);
        let tasks: Vec<_> = (0..3)
            .map(|_| {
                let mut wait = wait.clone();
                tokio::spawn(async move { wait.wait_for(|go| *go).await.is_ok() })
            })
            .collect();
        assert_eq!(alive(), before + 3.0);
        release.send_replace(true);
        for task in tasks {
            assert!(task.await.expect("task"));
        }
        assert_eq!(alive(), before);
    }
}
