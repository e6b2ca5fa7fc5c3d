//! `tether-bench soak`: mixed traffic for a fixed time while the server is
//! sampled, then a verdict.
//!
//! Traffic (each kind a set of workers repeating one cycle, see
//! [`traffic`]): chat users over WebSocket and over `POST /api/chat` (a new
//! identity per conversation of a few messages), idle sockets held through
//! the run, connect/hello/close churn, resumes (drop the connection after a
//! few deltas, reconnect, `subscribe` or `Last-Event-ID`, see the reply
//! finish exactly) and stops (`done` with `stopped`), the last two on both
//! transports in turn. Every reply is validated; anything unexpected is an
//! error. [`sampler`] takes a row every `--sample-secs`, [`verdict`] judges
//! errors and RSS/fd growth after the warm-up, [`plot`] draws the SVG.

mod conn;
mod plot;
mod prefill;
mod sampler;
mod shared;
mod summary;
mod traffic;
mod verdict;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;

use self::sampler::{Row, Scrape};
use self::shared::{Kind, Shared};
use self::summary::{pct, summary, write_csv};
use self::traffic::{Plan, Worker};
use self::verdict::{growth, Facts};
use crate::ctx::Ctx;

#[derive(clap::Args, Debug)]
#[command(args_override_self = true)]
pub struct SoakArgs {
    /// Server base URL (http://host:port); also the Origin sent.
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    pub url: String,
    /// Server process id: RSS and open fds are read from /proc/<pid>.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// How long the traffic runs, seconds.
    #[arg(long, default_value_t = 600)]
    pub secs: u64,
    /// Seconds between samples.
    #[arg(long, default_value_t = 5)]
    pub sample_secs: u64,
    /// Samples before this are the warm-up, left out of the growth (default: a fifth of --secs).
    #[arg(long)]
    pub warmup_secs: Option<f64>,
    /// Largest growth of RSS and of open fds after the warm-up, percent.
    #[arg(long, default_value_t = 5.0)]
    pub max_growth_pct: f64,
    /// Report the growth without judging it (runs too short for it to mean much).
    #[arg(long)]
    pub no_growth_verdict: bool,
    /// Chat users over WebSocket (at once).
    #[arg(long, default_value_t = 16)]
    pub chat_ws: usize,
    /// Chat users over SSE (`POST /api/chat`).
    #[arg(long, default_value_t = 8)]
    pub chat_sse: usize,
    /// Idle sockets held through the run.
    #[arg(long, default_value_t = 200)]
    pub idle: usize,
    /// Churn workers (connect, hello, close, pause).
    #[arg(long, default_value_t = 2)]
    pub churn: usize,
    /// Resume workers (drop mid-reply, reconnect; WebSocket and SSE in turn).
    #[arg(long, default_value_t = 2)]
    pub resume: usize,
    /// Stop workers (stop mid-reply; WebSocket and SSE in turn).
    #[arg(long, default_value_t = 2)]
    pub stop: usize,
    /// Messages per chat conversation (then a new user comes).
    #[arg(long, default_value_t = 5)]
    pub conversation_messages: usize,
    /// Pause between a chat user's messages, ms.
    #[arg(long, default_value_t = 300)]
    pub think_ms: u64,
    /// Pause between churn cycles, ms.
    #[arg(long, default_value_t = 100)]
    pub churn_pause_ms: u64,
    /// Tokens of a chat reply (`[[tokens:N]]`).
    #[arg(long, default_value_t = 20)]
    pub chat_tokens: u64,
    /// Tokens of a resumed reply.
    #[arg(long, default_value_t = 40)]
    pub resume_tokens: u64,
    /// Tokens a stopped reply would have (it is stopped after 3 deltas).
    #[arg(long, default_value_t = 400)]
    pub stop_tokens: u64,
    /// Messages stored before the soak starts (see `prefill`): 0 starts on an empty database.
    #[arg(long, default_value_t = 0)]
    pub prefill_messages: usize,
    /// Characters of each prefill message.
    #[arg(long, default_value_t = 4000)]
    pub prefill_chars: usize,
    /// Per-cycle deadline, seconds.
    #[arg(long, default_value_t = 30)]
    pub msg_timeout_s: u64,
    /// Worker starts are spread over this many milliseconds.
    #[arg(long, default_value_t = 2000)]
    pub ramp_ms: u64,
    /// Where the samples go.
    #[arg(long, default_value = "soak.csv")]
    pub csv: PathBuf,
    /// Where the plot goes.
    #[arg(long, default_value = "soak.svg")]
    pub svg: PathBuf,
}

/// Runs the soak; the exit code: 0 when it passes, 1 otherwise.
pub async fn run(args: SoakArgs) -> anyhow::Result<i32> {
    anyhow::ensure!(
        args.secs > 0 && args.sample_secs > 0,
        "--secs and --sample-secs must be > 0"
    );
    let run = Duration::from_secs(args.secs);
    let warmup_s = args.warmup_secs.unwrap_or(args.secs as f64 / 5.0);
    let msg_timeout = Duration::from_secs(args.msg_timeout_s);
    let text = format!("[[tokens:{}]] soak chat", args.chat_tokens);
    // The prefill and the idle sockets come first; the cap leaves them ten minutes.
    let cap = Instant::now() + Duration::from_secs(600) + run + msg_timeout;
    let ctx = Arc::new(Ctx::build(&args.url, 0, &text, msg_timeout, cap)?);

    let prefill_errors =
        prefill::run(&args.url, args.prefill_messages, args.prefill_chars, cap).await?;
    let stopping = Arc::new(AtomicBool::new(false));
    let dropped = Arc::new(AtomicU64::new(0));
    let (mut held, idle_errors) = crate::open_idle(&ctx, args.idle, &stopping, &dropped).await;
    let idle_opened = held.len();

    let shared = Arc::new(Shared::new(Instant::now(), run));
    for e in prefill_errors.into_iter().chain(idle_errors) {
        shared.error(e);
    }
    let baseline = sampler::sample(&ctx, &shared, args.server_pid).await;
    let sampling = tokio::spawn(sampler::run(
        ctx.clone(),
        shared.clone(),
        args.server_pid,
        Duration::from_secs(args.sample_secs),
    ));
    let mut workers = spawn_workers(&args, &ctx, &shared);
    while let Some(r) = workers.join_next().await {
        if r.is_err() {
            shared.error("bench:task_panicked".into());
        }
    }
    let mut rows = vec![baseline];
    rows.extend(sampling.await.unwrap_or_default());

    for _ in 0..dropped.load(Ordering::Relaxed) {
        shared.error("idle:dropped_during_run".into());
    }
    stopping.store(true, Ordering::Relaxed);
    held.abort_all();
    while held.join_next().await.is_some() {}

    let server_gone = args
        .server_pid
        .is_some_and(|pid| sampler::rss(pid).is_none());
    let scrape = Scrape::fetch(&ctx).await;
    let facts = facts(
        &args,
        &rows,
        &shared,
        warmup_s,
        server_gone,
        scrape.as_ref(),
    );
    let limit = (!args.no_growth_verdict).then_some(args.max_growth_pct);
    let why = verdict::judge(&facts, limit);

    write_csv(&args.csv, &rows)?;
    let title = format!(
        "tether soak: {} s, {} chat messages, {} errors; after the {warmup_s:.0} s warm-up (shaded): RSS {}, fds {}",
        args.secs,
        shared.count(Kind::ChatWs) + shared.count(Kind::ChatSse),
        facts.errors,
        pct(facts.rss),
        pct(facts.fds),
    );
    plot::write(&args.svg, &rows, warmup_s, &title)?;
    print!(
        "{}",
        summary(&args, &rows, &shared, warmup_s, idle_opened, &facts, &why)
    );
    Ok(if why.is_empty() { 0 } else { 1 })
}

fn spawn_workers(args: &SoakArgs, ctx: &Arc<Ctx>, shared: &Arc<Shared>) -> JoinSet<()> {
    let plan = Arc::new(Plan {
        conversation_messages: args.conversation_messages.max(1),
        think: Duration::from_millis(args.think_ms),
        churn_pause: Duration::from_millis(args.churn_pause_ms),
        ..Plan::new(args.resume_tokens, args.stop_tokens)
    });
    let roles = [
        (args.chat_ws, Kind::ChatWs),
        (args.chat_sse, Kind::ChatSse),
        (args.churn, Kind::Churn),
        (args.resume, Kind::ResumeWs),
        (args.stop, Kind::StopWs),
    ];
    let total: usize = roles.iter().map(|(n, _)| n).sum();
    let mut workers = JoinSet::new();
    let mut n = 0;
    for (count, role) in roles {
        for _ in 0..count {
            let worker = Worker {
                ctx: ctx.clone(),
                shared: shared.clone(),
                plan: plan.clone(),
                n,
            };
            let delay = Duration::from_millis(args.ramp_ms * n as u64 / total.max(1) as u64);
            workers.spawn(async move {
                tokio::time::sleep(delay).await;
                match role {
                    Kind::ChatWs | Kind::ChatSse => worker.chat(role).await,
                    Kind::Churn => worker.churn().await,
                    Kind::ResumeWs | Kind::ResumeSse => worker.resume().await,
                    Kind::StopWs | Kind::StopSse => worker.stop().await,
                }
            });
            n += 1;
        }
    }
    workers
}

/// The kinds that were asked for (by their worker count) in `args`.
fn asked(args: &SoakArgs, kind: Kind) -> bool {
    match kind {
        Kind::ChatWs => args.chat_ws > 0,
        Kind::ChatSse => args.chat_sse > 0,
        Kind::Churn => args.churn > 0,
        Kind::ResumeWs | Kind::ResumeSse => args.resume > 0,
        Kind::StopWs | Kind::StopSse => args.stop > 0,
    }
}

fn facts(
    args: &SoakArgs,
    rows: &[Row],
    shared: &Shared,
    warmup_s: f64,
    server_gone: bool,
    scrape: Option<&Scrape>,
) -> Facts {
    // The baseline (t = 0, before any traffic) never counts.
    let series = |v: fn(&Row) -> Option<u64>| -> Vec<(f64, f64)> {
        rows.iter()
            .filter(|r| r.t_s > 0.0)
            .filter_map(|r| Some((r.t_s, v(r)? as f64)))
            .collect()
    };
    Facts {
        rss: growth(&series(|r| r.rss_kib), warmup_s),
        fds: growth(&series(|r| r.fds), warmup_s),
        samples_after_warmup: rows
            .iter()
            .filter(|r| r.t_s >= warmup_s && r.t_s > 0.0)
            .count(),
        errors: shared.error_total(),
        idle_kinds: Kind::ALL
            .into_iter()
            .filter(|k| asked(args, *k) && shared.count(*k) == 0)
            .map(Kind::name)
            .collect(),
        server_error_replies: scrape
            .and_then(|s| s.get("tether_replies_total{finish_reason=\"error\"}")),
        server_gone,
    }
}
