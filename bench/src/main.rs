//! tether-bench: a load generator for the tether chat server.
//!
//! Opens `--idle` idle WebSockets (each with its own identity), then runs
//! `--users` users that each send `--messages` messages one after the other
//! (over WebSocket or SSE), validates every reply and reports latency
//! percentiles, throughput, errors by kind, server RSS and bytes per token.

mod ctx;
mod frames;
mod plot;
mod report;
mod soak;
mod sse;
mod stats;
mod ws;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use futures_util::StreamExt;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::ctx::{get_cookie, Ctx};
use crate::stats::UserResult;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Ws,
    Sse,
}

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Load generator for the tether chat server",
    args_override_self = true,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: Args,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Mixed traffic for a fixed time (chat over both transports, idle
    /// sockets, churn, reconnects mid-reply, stops), sampling the server's
    /// RSS, fds, tasks and p99 latencies; writes a CSV and an SVG plot and
    /// fails on any error or on RSS/fd growth after the warm-up.
    Soak(soak::SoakArgs),
    /// The SVG of benchmark rows: TTFT - F percentiles and server CPU per
    /// message against users (this bench's `--json-out` reports beside the
    /// shared kit's results: the Go prototype, the stand-in), and the
    /// capacity rows' CPU per message against tokens per reply.
    Plot(plot::PlotArgs),
}

/// The load run (no subcommand): idle sockets, then users sending messages.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Server base URL (http://host:port); also used as the Origin header.
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    pub url: String,
    /// Transport used by the active users.
    #[arg(long, value_enum, default_value = "ws")]
    pub transport: Transport,
    /// Active users (each has its own identity cookie and conversation).
    #[arg(long, default_value_t = 100)]
    pub users: usize,
    /// Messages per user, sent sequentially (send, wait for `done`, next).
    #[arg(long, default_value_t = 10)]
    pub messages: usize,
    /// User starts are spread evenly over this many milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub ramp_ms: u64,
    /// Hard cap on the whole run, seconds; unfinished messages count as `timeout`.
    #[arg(long, default_value_t = 300)]
    pub duration_cap_s: u64,
    /// Per-message deadline (send .. done), seconds.
    #[arg(long, default_value_t = 30)]
    pub msg_timeout_s: u64,
    /// Idle WebSocket connections opened first and held through the run.
    #[arg(long, default_value_t = 0)]
    pub idle: usize,
    /// Text of every message (`[[long]]` asks the fake upstream for 60 tokens).
    #[arg(long, default_value = "hello there, how are you today?")]
    pub text: String,
    /// Fake upstream first-token delay F, ms (TTFT overhead = TTFT - F).
    #[arg(long, default_value_t = 0.0)]
    pub first_ms: f64,
    /// Fake upstream inter-token delay D, ms (per-delta overhead = gap - D).
    #[arg(long, default_value_t = 0.0)]
    pub delay_ms: f64,
    /// Server process id: VmRSS is read from /proc/<pid>/status.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Print the results as JSON too (after the table).
    #[arg(long)]
    pub json: bool,
    /// Write the results as JSON to this file (for `tether-bench plot`).
    #[arg(long)]
    pub json_out: Option<std::path::PathBuf>,
    /// Name of this row's series in the JSON and the plot (with the transport).
    #[arg(long, default_value = "tether")]
    pub label: String,
}

/// CPU seconds (user + system) `pid` has used, from `/proc/<pid>/stat`.
fn cpu_s(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces): state is the
    // first, utime and stime the 12th and 13th.
    let rest = stat.rsplit_once(')')?.1;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: f64 = fields.next()?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    // In clock ticks of USER_HZ, 100 on Linux (fixed by the kernel ABI).
    Some((utime + stime) / 100.0)
}

/// VmRSS of `pid` in KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[derive(Debug, Default, serde::Serialize)]
pub struct Rss {
    pub idle_before_kib: Option<u64>,
    pub with_idle_kib: Option<u64>,
    pub per_idle_socket_bytes: Option<f64>,
    pub peak_during_run_kib: Option<u64>,
    pub after_run_kib: Option<u64>,
}

/// Opens `n` idle sockets (64 handshakes at a time); each is held by a task
/// that keeps reading (so server pings are answered) until aborted.
pub(crate) async fn open_idle(
    ctx: &Arc<Ctx>,
    n: usize,
    stopping: &Arc<AtomicBool>,
    dropped: &Arc<AtomicU64>,
) -> (JoinSet<()>, Vec<String>) {
    let sem = Arc::new(Semaphore::new(64));
    let mut opening = JoinSet::new();
    for _ in 0..n {
        let (ctx, sem) = (ctx.clone(), sem.clone());
        opening.spawn(async move {
            let _permit = sem.acquire_owned().await.expect("semaphore");
            let cookie = get_cookie(&ctx).await?;
            let deadline = (Instant::now() + Duration::from_secs(15)).min(ctx.deadline);
            ws::connect(&ctx, &cookie, deadline).await
        });
    }
    let mut held = JoinSet::new();
    let mut errors = Vec::new();
    while let Some(r) = opening.join_next().await {
        match r.expect("idle task panicked") {
            Ok(mut sock) => {
                let (stopping, dropped) = (stopping.clone(), dropped.clone());
                held.spawn(async move {
                    while let Some(Ok(_)) = sock.next().await {}
                    if !stopping.load(Ordering::Relaxed) {
                        dropped.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
            Err(e) => errors.push(format!("idle:{e}")),
        }
    }
    (held, errors)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Soak(soak)) => {
            let code = soak::run(soak).await?;
            std::process::exit(code);
        }
        Some(Command::Plot(plot)) => return plot::run(plot),
        None => {}
    }
    let args = cli.run;
    let started = Instant::now();
    let ctx = Arc::new(Ctx::build(
        &args.url,
        args.messages,
        &args.text,
        Duration::from_secs(args.msg_timeout_s),
        started + Duration::from_secs(args.duration_cap_s),
    )?);
    let mut rss = Rss::default();
    let pid = args.server_pid;
    let mut errors: Vec<String> = Vec::new();

    // Idle sockets.
    rss.idle_before_kib = pid.and_then(rss_kib);
    let stopping = Arc::new(AtomicBool::new(false));
    let idle_dropped = Arc::new(AtomicU64::new(0));
    let t_idle = Instant::now();
    let (mut held, idle_errors) = open_idle(&ctx, args.idle, &stopping, &idle_dropped).await;
    let idle_open_s = t_idle.elapsed().as_secs_f64();
    let idle_opened = held.len();
    errors.extend(idle_errors);
    if args.idle > 0 {
        tokio::time::sleep(Duration::from_millis(500)).await; // let the server settle
    }
    rss.with_idle_kib = pid.and_then(rss_kib);
    if let (Some(a), Some(b)) = (rss.idle_before_kib, rss.with_idle_kib) {
        if idle_opened > 0 {
            rss.per_idle_socket_bytes = Some((b as f64 - a as f64) * 1024.0 / idle_opened as f64);
        }
    }

    // RSS sampler.
    let peak = Arc::new(AtomicU64::new(0));
    let sampler_stop = Arc::new(AtomicBool::new(false));
    let sampler = pid.map(|pid| {
        let (peak, stop) = (peak.clone(), sampler_stop.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                if let Some(v) = rss_kib(pid) {
                    peak.fetch_max(v, Ordering::Relaxed);
                }
            }
        })
    });

    // Active users.
    let cpu_before = pid.and_then(cpu_s);
    let t_run = Instant::now();
    let mut users = JoinSet::new();
    for u in 0..args.users {
        let ctx = ctx.clone();
        let delay = Duration::from_millis(args.ramp_ms * u as u64 / args.users.max(1) as u64);
        let transport = args.transport;
        users.spawn(async move {
            tokio::time::sleep(delay).await;
            match transport {
                Transport::Ws => ws::run_user(ctx, u).await,
                Transport::Sse => sse::run_user(ctx, u).await,
            }
        });
    }
    let mut results: Vec<UserResult> = Vec::with_capacity(args.users);
    while let Some(r) = users.join_next().await {
        match r {
            Ok(r) => results.push(r),
            Err(_) => errors.push("bench:task_panicked".into()),
        }
    }
    let run_s = t_run.elapsed().as_secs_f64();
    let server_cpu_s = match (cpu_before, pid.and_then(cpu_s)) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };

    sampler_stop.store(true, Ordering::Relaxed);
    if let Some(s) = sampler {
        let _ = s.await;
        rss.peak_during_run_kib = Some(peak.load(Ordering::Relaxed));
    }
    let dropped = idle_dropped.load(Ordering::Relaxed);
    for _ in 0..dropped {
        errors.push("idle:dropped_during_run".into());
    }
    stopping.store(true, Ordering::Relaxed);
    held.abort_all();
    while held.join_next().await.is_some() {}
    rss.after_run_kib = pid.and_then(rss_kib);

    let rep = report::Report::build(&args, results, errors, run_s, idle_opened, idle_open_s, rss)
        .with_server_cpu(server_cpu_s);
    print!("{}", rep.table());
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rep)?);
    }
    if let Some(path) = &args.json_out {
        std::fs::write(path, serde_json::to_string_pretty(&rep)?)?;
    }
    if rep.error_total > 0 {
        std::process::exit(1);
    }
    Ok(())
}
