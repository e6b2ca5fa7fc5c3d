//! Aggregation and output (markdown table and JSON).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::stats::{count_errors, summarize, Summary, UserResult};
use crate::{Args, Rss, Transport};

#[derive(Serialize)]
pub struct Report {
    /// The series this row belongs to (`--label`).
    pub label: String,
    pub transport: Transport,
    /// Tokens per reply, when the text asks for them (`[[tokens:N]]`).
    pub tokens: Option<usize>,
    pub users: usize,
    pub messages_per_user: usize,
    pub first_ms: f64,
    pub delay_ms: f64,
    pub idle_requested: usize,
    pub idle_opened: usize,
    pub idle_open_s: f64,
    pub messages_expected: usize,
    pub messages_ok: usize,
    pub run_s: f64,
    pub messages_per_s: f64,
    pub deltas: u64,
    pub deltas_per_s: f64,
    /// Latency rows, milliseconds.
    pub latency_ms: BTreeMap<&'static str, Option<Summary>>,
    /// WS: text-frame payload bytes per delta; SSE: event bytes per delta.
    pub bytes_per_delta: Option<f64>,
    /// WS: payload + exact frame header; SSE: same as bytes_per_delta (chunked
    /// transfer-encoding framing, ~7 bytes per chunk, is not visible to the client).
    pub wire_bytes_per_delta: Option<f64>,
    /// Everything received for a message (all frames/events) divided by its deltas.
    pub all_bytes_per_delta: Option<f64>,
    pub rss: Rss,
    /// Server CPU seconds (user + system) during the active phase.
    pub server_cpu_s: Option<f64>,
    /// `server_cpu_s` per completed message, microseconds.
    pub server_cpu_us_per_msg: Option<f64>,
    pub errors: BTreeMap<String, u64>,
    pub error_total: u64,
}

impl Report {
    pub fn build(
        args: &Args,
        results: Vec<UserResult>,
        mut errors: Vec<String>,
        run_s: f64,
        idle_opened: usize,
        idle_open_s: f64,
        rss: Rss,
    ) -> Self {
        let mut accepted = Vec::new();
        let mut ttft = Vec::new();
        let mut ttft_over = Vec::new();
        let mut gap = Vec::new();
        let mut gap_over = Vec::new();
        let mut total = Vec::new();
        let mut server_ttft = Vec::new();
        let (mut deltas, mut bytes, mut wire, mut all) = (0u64, 0u64, 0u64, 0u64);
        let mut ok = 0;
        for r in results {
            errors.extend(r.errors);
            for s in r.samples {
                ok += 1;
                accepted.push(s.accepted_ms);
                ttft.push(s.ttft_ms);
                ttft_over.push(s.ttft_ms - args.first_ms);
                for g in &s.gaps_ms {
                    gap.push(*g);
                    gap_over.push(g - args.delay_ms);
                }
                total.push(s.total_ms);
                if let Some(t) = s.server_ttft_ms {
                    server_ttft.push(t);
                }
                deltas += s.deltas;
                bytes += s.delta_bytes;
                wire += s.delta_wire_bytes;
                all += s.all_bytes;
            }
        }
        let per = |b: u64| (deltas > 0).then(|| b as f64 / deltas as f64);
        let mut latency_ms = BTreeMap::new();
        latency_ms.insert("1_accepted", summarize(&mut accepted));
        latency_ms.insert("2_ttft", summarize(&mut ttft));
        latency_ms.insert("3_ttft_overhead", summarize(&mut ttft_over));
        latency_ms.insert("4_server_ttft", summarize(&mut server_ttft));
        latency_ms.insert("5_delta_gap", summarize(&mut gap));
        latency_ms.insert("6_delta_overhead", summarize(&mut gap_over));
        latency_ms.insert("7_total", summarize(&mut total));
        let errors = count_errors(errors);
        let error_total = errors.values().sum();
        Report {
            label: args.label.clone(),
            transport: args.transport,
            tokens: args
                .text
                .strip_prefix("[[tokens:")
                .and_then(|rest| rest.split_once("]]"))
                .and_then(|(n, _)| n.parse().ok()),
            users: args.users,
            messages_per_user: args.messages,
            first_ms: args.first_ms,
            delay_ms: args.delay_ms,
            idle_requested: args.idle,
            idle_opened,
            idle_open_s,
            messages_expected: args.users * args.messages,
            messages_ok: ok,
            run_s,
            messages_per_s: ok as f64 / run_s.max(1e-9),
            deltas,
            deltas_per_s: deltas as f64 / run_s.max(1e-9),
            latency_ms,
            bytes_per_delta: per(bytes),
            wire_bytes_per_delta: per(wire),
            all_bytes_per_delta: per(all),
            rss,
            server_cpu_s: None,
            server_cpu_us_per_msg: None,
            errors,
            error_total,
        }
    }

    /// The server's CPU seconds during the active phase, and per message.
    pub fn with_server_cpu(mut self, cpu_s: Option<f64>) -> Self {
        self.server_cpu_s = cpu_s;
        self.server_cpu_us_per_msg = cpu_s
            .filter(|_| self.messages_ok > 0)
            .map(|cpu| cpu / self.messages_ok as f64 * 1e6);
        self
    }

    pub fn table(&self) -> String {
        let mut o = String::new();
        let t = match self.transport {
            Transport::Ws => "ws",
            Transport::Sse => "sse",
        };
        let _ = writeln!(
            o,
            "\n## tether-bench: {t}, {} users x {} messages, F={} ms, D={} ms, idle {}/{} (opened in {:.1} s)\n",
            self.users, self.messages_per_user, self.first_ms, self.delay_ms,
            self.idle_opened, self.idle_requested, self.idle_open_s
        );
        let _ = writeln!(
            o,
            "messages ok {}/{} in {:.2} s: {:.1} msg/s, {:.0} deltas/s\n",
            self.messages_ok,
            self.messages_expected,
            self.run_s,
            self.messages_per_s,
            self.deltas_per_s
        );
        let _ = writeln!(o, "| ms | p50 | p90 | p99 | max | n |");
        let _ = writeln!(o, "|---|---:|---:|---:|---:|---:|");
        let names = [
            ("1_accepted", "send -> accepted"),
            ("2_ttft", "TTFT (send -> first delta)"),
            ("3_ttft_overhead", "TTFT overhead (TTFT - F)"),
            ("4_server_ttft", "server ttft_ms (done frame)"),
            ("5_delta_gap", "gap between deltas"),
            ("6_delta_overhead", "per-delta overhead (gap - D)"),
            ("7_total", "total (send -> done)"),
        ];
        for (key, label) in names {
            match self.latency_ms.get(key).copied().flatten() {
                Some(s) => {
                    let _ = writeln!(
                        o,
                        "| {label} | {:.1} | {:.1} | {:.1} | {:.1} | {} |",
                        s.p50, s.p90, s.p99, s.max, s.n
                    );
                }
                None => {
                    let _ = writeln!(o, "| {label} | - | - | - | - | 0 |");
                }
            }
        }
        let f = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.1}"));
        let _ = writeln!(o);
        match self.transport {
            Transport::Ws => {
                let _ = writeln!(
                    o,
                    "bytes per delta: {} payload, {} with frame header; all frames / deltas: {}",
                    f(self.bytes_per_delta),
                    f(self.wire_bytes_per_delta),
                    f(self.all_bytes_per_delta)
                );
            }
            Transport::Sse => {
                let _ = writeln!(
                    o,
                    "bytes per delta event: {} (+ chunked framing ~7); whole body / deltas: {}",
                    f(self.bytes_per_delta),
                    f(self.all_bytes_per_delta)
                );
            }
        }
        let mib =
            |k: Option<u64>| k.map_or("-".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0));
        if self.rss.idle_before_kib.is_some() {
            let _ = writeln!(
                o,
                "server RSS: before idle {}, with {} idle sockets {} ({} bytes/socket), peak during run {}, after {}",
                mib(self.rss.idle_before_kib),
                self.idle_opened,
                mib(self.rss.with_idle_kib),
                self.rss.per_idle_socket_bytes.map_or("-".into(), |b| format!("{b:.0}")),
                mib(self.rss.peak_during_run_kib),
                mib(self.rss.after_run_kib),
            );
        }
        if let (Some(cpu), Some(per)) = (self.server_cpu_s, self.server_cpu_us_per_msg) {
            let _ = writeln!(
                o,
                "server CPU during the run: {cpu:.2} s, {per:.0} us per completed message"
            );
        }
        if self.errors.is_empty() {
            let _ = writeln!(o, "errors: none");
        } else {
            let _ = writeln!(o, "errors ({}):", self.error_total);
            for (k, v) in &self.errors {
                let _ = writeln!(o, "  {k}: {v}");
            }
        }
        o
    }
}
