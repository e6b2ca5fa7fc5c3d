//! The soak's outputs besides the plot: the CSV of the samples and the
//! summary printed at the end.

use std::fmt::Write as _;

use super::sampler::{self, Row};
use super::shared::{Kind, Shared};
use super::verdict::{growth, Facts, Growth};
use super::SoakArgs;
use crate::stats::summarize;

pub fn pct(g: Option<Growth>) -> String {
    g.map_or("-".into(), |g| format!("{:+.1} %", g.pct))
}

pub fn write_csv(path: &std::path::Path, rows: &[Row]) -> anyhow::Result<()> {
    let mut out = String::from(sampler::CSV_HEADER);
    out.push('\n');
    for r in rows {
        out.push_str(&r.csv());
        out.push('\n');
    }
    std::fs::write(path, out)?;
    Ok(())
}

pub fn summary(
    args: &SoakArgs,
    rows: &[Row],
    shared: &Shared,
    warmup_s: f64,
    idle_opened: usize,
    facts: &Facts,
    why: &[String],
) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "\n## tether-bench soak: {} s, a sample every {} s, warm-up {warmup_s:.0} s\n",
        args.secs, args.sample_secs
    );
    let counts: Vec<String> = Kind::ALL
        .iter()
        .map(|k| format!("{} {}", k.name(), shared.count(*k)))
        .collect();
    let _ = writeln!(
        o,
        "completed: {}; idle sockets held {idle_opened}/{}",
        counts.join(", "),
        args.idle
    );
    let (mut ttft, mut total) = shared.latencies_since(warmup_s);
    let p = |s: Option<crate::stats::Summary>| {
        s.map_or("-".into(), |s| {
            format!(
                "p50 {:.1} / p99 {:.1} / max {:.1} ms (n {})",
                s.p50, s.p99, s.max, s.n
            )
        })
    };
    let _ = writeln!(
        o,
        "chat TTFT after the warm-up: {}",
        p(summarize(&mut ttft))
    );
    let _ = writeln!(
        o,
        "chat send -> done after the warm-up: {}",
        p(summarize(&mut total))
    );
    let worst = |v: fn(&Row) -> Option<f64>| {
        rows.iter()
            .filter(|r| r.t_s >= warmup_s)
            .filter_map(v)
            .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))))
            .map_or("-".into(), |v| format!("{v:.1} ms"))
    };
    let _ = writeln!(
        o,
        "worst window p99 after the warm-up: TTFT {}, send -> done {}",
        worst(|r| r.ttft_p99_ms),
        worst(|r| r.total_p99_ms)
    );
    let first_after = rows.iter().find(|r| r.t_s >= warmup_s);
    let last = rows.last();
    let mib = |k: Option<u64>| k.map_or("-".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0));
    let num = |k: Option<u64>| k.map_or("-".into(), |k| k.to_string());
    let quarters = |g: Option<Growth>, scale: f64, unit: &str| {
        g.map_or("not measured".into(), |g| {
            format!(
                "{:.1} -> {:.1}{unit} ({:+.2} %)",
                g.first / scale,
                g.last / scale,
                g.pct
            )
        })
    };
    let _ = writeln!(
        o,
        "RSS: {} at start, {} after the warm-up, {} at the end; quarter means after the warm-up {}",
        mib(rows.first().and_then(|r| r.rss_kib)),
        mib(first_after.and_then(|r| r.rss_kib)),
        mib(last.and_then(|r| r.rss_kib)),
        quarters(facts.rss, 1024.0, " MiB")
    );
    let _ = writeln!(
        o,
        "open fds: {} at start, {} after the warm-up, {} at the end; quarter means after the warm-up {}",
        num(rows.first().and_then(|r| r.fds)),
        num(first_after.and_then(|r| r.fds)),
        num(last.and_then(|r| r.fds)),
        quarters(facts.fds, 1.0, "")
    );
    let tasks: Vec<(f64, f64)> = rows
        .iter()
        .filter(|r| r.t_s > 0.0)
        .filter_map(|r| Some((r.t_s, r.tasks?)))
        .collect();
    let _ =
        writeln!(
        o,
        "tokio tasks: {} at start, {} at the end; quarter means after the warm-up {} (not judged)",
        rows.first().and_then(|r| r.tasks).map_or("-".into(), |v| v.to_string()),
        last.and_then(|r| r.tasks).map_or("-".into(), |v| v.to_string()),
        quarters(growth(&tasks, warmup_s), 1.0, "")
    );
    let errors = shared.errors();
    if errors.is_empty() {
        let _ = writeln!(o, "errors: none");
    } else {
        let _ = writeln!(o, "errors ({}):", facts.errors);
        for (k, v) in &errors {
            let _ = writeln!(o, "  {k}: {v}");
        }
    }
    let _ = writeln!(
        o,
        "samples: {} (csv {}), plot {}",
        rows.len(),
        args.csv.display(),
        args.svg.display()
    );
    if args.no_growth_verdict {
        let _ = writeln!(o, "growth: reported, not judged (--no-growth-verdict)");
    }
    if why.is_empty() {
        let _ = writeln!(o, "verdict: PASS");
    } else {
        let _ = writeln!(o, "verdict: FAIL: {}", why.join("; "));
    }
    o
}
