//! Samples the server every `--sample-secs`: RSS (`/proc/<pid>/status`),
//! open file descriptors (`/proc/<pid>/fd`), tasks and sockets (`/metrics`),
//! and the chat latencies of the window since the previous sample.

use std::sync::Arc;
use std::time::Duration;

use super::shared::{Kind, Shared};
use crate::ctx::Ctx;
use crate::stats::summarize;

/// One sample: a row of the CSV.
#[derive(Debug, Clone, Default)]
pub struct Row {
    /// Seconds since the traffic started.
    pub t_s: f64,
    pub rss_kib: Option<u64>,
    /// Anonymous memory (heap, stacks): the part a leak would grow.
    pub rss_anon_kib: Option<u64>,
    pub fds: Option<u64>,
    /// `tether_runtime_alive_tasks`.
    pub tasks: Option<f64>,
    pub open_sockets: Option<f64>,
    pub live_streams: Option<f64>,
    /// Chat messages completed in this window, and their latencies.
    pub chat_msgs: usize,
    pub ttft_p50_ms: Option<f64>,
    pub ttft_p99_ms: Option<f64>,
    pub total_p50_ms: Option<f64>,
    pub total_p99_ms: Option<f64>,
    /// Completed cycles so far, per kind (in [`Kind::ALL`]'s order).
    pub done: [u64; Kind::ALL.len()],
    pub errors: u64,
}

pub const CSV_HEADER: &str = "t_s,rss_kib,rss_anon_kib,fds,tasks,open_sockets,live_streams,chat_msgs,ttft_p50_ms,ttft_p99_ms,total_p50_ms,total_p99_ms,chat_ws,chat_sse,churn,resume_ws,resume_sse,stop_ws,stop_sse,errors";

impl Row {
    pub fn csv(&self) -> String {
        fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
            v.map_or(String::new(), |v| v.to_string())
        }
        let ms = |v: Option<f64>| opt(v.map(|v| format!("{v:.1}")));
        let mut cells = vec![
            format!("{:.1}", self.t_s),
            opt(self.rss_kib),
            opt(self.rss_anon_kib),
            opt(self.fds),
            opt(self.tasks),
            opt(self.open_sockets),
            opt(self.live_streams),
            self.chat_msgs.to_string(),
            ms(self.ttft_p50_ms),
            ms(self.ttft_p99_ms),
            ms(self.total_p50_ms),
            ms(self.total_p99_ms),
        ];
        cells.extend(self.done.iter().map(u64::to_string));
        cells.push(self.errors.to_string());
        cells.join(",")
    }
}

/// A `VmRSS:`-style line's value in KiB from `/proc/<pid>/status`.
fn status_kib(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// `(VmRSS, RssAnon)` of `pid`, KiB; `None` once the process is gone.
pub fn rss(pid: u32) -> Option<(u64, Option<u64>)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some((status_kib(&s, "VmRSS:")?, status_kib(&s, "RssAnon:")))
}

/// Open file descriptors of `pid`.
pub fn fds(pid: u32) -> Option<u64> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64)
}

/// One scrape of `/metrics`.
pub struct Scrape(String);

impl Scrape {
    pub async fn fetch(ctx: &Ctx) -> Option<Scrape> {
        let fut = ctx.http.get(format!("{}/metrics", ctx.origin)).send();
        let resp = tokio::time::timeout(Duration::from_secs(5), fut)
            .await
            .ok()?
            .ok()?;
        let text = tokio::time::timeout(Duration::from_secs(5), resp.text())
            .await
            .ok()?
            .ok()?;
        Some(Scrape(text))
    }

    /// The value of the series named exactly `series` (labels included).
    pub fn get(&self, series: &str) -> Option<f64> {
        self.0
            .lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))?
            .trim()
            .parse()
            .ok()
    }
}

/// Takes one sample now.
pub async fn sample(ctx: &Ctx, shared: &Shared, pid: Option<u32>) -> Row {
    let t_s = shared.start.elapsed().as_secs_f64();
    let (rss_kib, rss_anon_kib) = match pid.and_then(rss) {
        Some((rss, anon)) => (Some(rss), anon),
        None => (None, None),
    };
    let scrape = Scrape::fetch(ctx).await;
    let metric = |name: &str| scrape.as_ref().and_then(|s| s.get(name));
    let mut window = shared.take_window();
    let ttft = summarize(&mut window.ttft_ms);
    let total = summarize(&mut window.total_ms);
    Row {
        t_s,
        rss_kib,
        rss_anon_kib,
        fds: pid.and_then(fds),
        tasks: metric("tether_runtime_alive_tasks"),
        open_sockets: metric("tether_open_sockets"),
        live_streams: metric("tether_live_streams"),
        chat_msgs: ttft.map_or(0, |s| s.n),
        ttft_p50_ms: ttft.map(|s| s.p50),
        ttft_p99_ms: ttft.map(|s| s.p99),
        total_p50_ms: total.map(|s| s.p50),
        total_p99_ms: total.map(|s| s.p99),
        done: Kind::ALL.map(|k| shared.count(k)),
        errors: shared.error_total(),
    }
}

/// Samples every `every` until the soak's end (the last sample at the end),
/// printing a progress line for each.
pub async fn run(
    ctx: Arc<Ctx>,
    shared: Arc<Shared>,
    pid: Option<u32>,
    every: Duration,
) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut k = 1u32;
    loop {
        let at = (shared.start + every * k).min(shared.end);
        tokio::time::sleep_until(at).await;
        let row = sample(&ctx, &shared, pid).await;
        eprintln!(
            "# soak {:>6.1} s: rss {} KiB, fds {}, tasks {}, chat {} msgs p99 ttft {} ms, errors {}",
            row.t_s,
            row.rss_kib.map_or("-".into(), |v| v.to_string()),
            row.fds.map_or("-".into(), |v| v.to_string()),
            row.tasks.map_or("-".into(), |v| v.to_string()),
            row.chat_msgs,
            row.ttft_p99_ms.map_or("-".into(), |v| format!("{v:.1}")),
            row.errors
        );
        rows.push(row);
        if at >= shared.end {
            return rows;
        }
        k += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_status_lines_and_series() {
        let status = "Name:\ttether\nVmRSS:\t   12345 kB\nRssAnon:\t    8000 kB\n";
        assert_eq!(status_kib(status, "VmRSS:"), Some(12345));
        assert_eq!(status_kib(status, "RssAnon:"), Some(8000));
        assert_eq!(status_kib(status, "RssFile:"), None);
        let scrape =
            Scrape("# TYPE x gauge\ntether_open_sockets 3\ntether_open_sockets_x 9\n".into());
        assert_eq!(scrape.get("tether_open_sockets"), Some(3.0));
        assert_eq!(scrape.get("tether_live_streams"), None);
    }

    #[test]
    fn csv_rows_have_the_header_s_columns() {
        let row = Row {
            t_s: 5.0,
            rss_kib: Some(100),
            ttft_p99_ms: Some(101.25),
            ..Row::default()
        };
        let line = row.csv();
        assert_eq!(line.split(',').count(), CSV_HEADER.split(',').count());
        assert!(line.starts_with("5.0,100,,,"), "{line}");
    }
}
