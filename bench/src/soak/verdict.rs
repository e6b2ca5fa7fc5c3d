//! The soak's verdict. Growth of a series is measured after the warm-up:
//! the samples taken after `warmup` are cut in quarters, and growth is the
//! mean of the last quarter against the mean of the first, in percent.
//! Means of quarters rather than two single samples, so one sample caught
//! mid-burst (a few hundred sockets at once) does not decide.

/// Growth of one series after the warm-up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Growth {
    /// Mean of the first quarter of the post-warm-up samples.
    pub first: f64,
    /// Mean of the last quarter.
    pub last: f64,
    pub pct: f64,
}

/// The fewest post-warm-up samples growth is computed from (one per quarter).
pub const MIN_SAMPLES: usize = 4;

/// Growth of the values sampled at `t >= warmup_s`; `None` with fewer than
/// [`MIN_SAMPLES`] of them or a first quarter of zero.
pub fn growth(points: &[(f64, f64)], warmup_s: f64) -> Option<Growth> {
    let after: Vec<f64> = points
        .iter()
        .filter(|(t, _)| *t >= warmup_s)
        .map(|(_, v)| *v)
        .collect();
    if after.len() < MIN_SAMPLES {
        return None;
    }
    let quarter = after.len() / 4;
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let first = mean(&after[..quarter]);
    let last = mean(&after[after.len() - quarter..]);
    if first <= 0.0 {
        return None;
    }
    Some(Growth {
        first,
        last,
        pct: (last - first) / first * 100.0,
    })
}

/// What the run is judged on.
#[derive(Debug, Default)]
pub struct Facts {
    /// `None`: that series could not be sampled (no `--server-pid`).
    pub rss: Option<Growth>,
    pub fds: Option<Growth>,
    pub samples_after_warmup: usize,
    pub errors: u64,
    /// Traffic kinds that were asked for but never completed a cycle.
    pub idle_kinds: Vec<&'static str>,
    /// The server's own count of replies that ended in `error`.
    pub server_error_replies: Option<f64>,
    pub server_gone: bool,
}

/// The reasons the run fails; empty when it passes. `max_growth_pct: None`
/// reports growth without judging it (the CI smoke).
pub fn judge(facts: &Facts, max_growth_pct: Option<f64>) -> Vec<String> {
    let mut why = Vec::new();
    if facts.errors > 0 {
        why.push(format!("{} errors", facts.errors));
    }
    if facts.server_gone {
        why.push("the server process is gone".into());
    }
    if let Some(n) = facts.server_error_replies.filter(|n| *n > 0.0) {
        why.push(format!(
            "the server ended {n} replies with finish_reason error"
        ));
    }
    if !facts.idle_kinds.is_empty() {
        why.push(format!(
            "no cycle completed for: {}",
            facts.idle_kinds.join(", ")
        ));
    }
    if let Some(limit) = max_growth_pct {
        for (name, g) in [("RSS", facts.rss), ("open fds", facts.fds)] {
            match g {
                Some(g) if g.pct >= limit => why.push(format!(
                    "{name} grew {:.1} % after the warm-up (limit {limit} %): {:.0} -> {:.0}",
                    g.pct, g.first, g.last
                )),
                Some(_) => {}
                None => why.push(format!(
                    "{name}: growth not measured ({} samples after the warm-up, {MIN_SAMPLES} needed, and --server-pid)",
                    facts.samples_after_warmup
                )),
            }
        }
    }
    why
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(values: &[f64]) -> Vec<(f64, f64)> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| (i as f64 * 5.0, *v))
            .collect()
    }

    #[test]
    fn growth_compares_quarter_means_after_the_warm_up() {
        // Warm-up (t < 10): a climb that does not count.
        let s = series(&[10.0, 50.0, 100.0, 100.0, 102.0, 98.0, 104.0, 104.0]);
        let g = growth(&s, 10.0).unwrap();
        // After: 100, 100, 102, 98, 104, 104 -> quarter of 1: first 100, last 104.
        assert_eq!((g.first, g.last), (100.0, 104.0));
        assert!((g.pct - 4.0).abs() < 1e-9);
        assert!(growth(&s, 30.0).is_none(), "3 samples after the warm-up");
    }

    #[test]
    fn a_leak_fails_and_a_flat_run_passes() {
        let leak: Vec<f64> = (0..40).map(|i| 100.0 + i as f64).collect();
        let flat: Vec<f64> = (0..40).map(|i| 100.0 + (i % 3) as f64).collect();
        let mut facts = Facts {
            rss: growth(&series(&leak), 40.0),
            fds: growth(&series(&flat), 40.0),
            samples_after_warmup: 32,
            ..Facts::default()
        };
        let why = judge(&facts, Some(5.0));
        assert_eq!(why.len(), 1, "{why:?}");
        assert!(why[0].starts_with("RSS grew"), "{why:?}");
        facts.rss = facts.fds;
        assert!(judge(&facts, Some(5.0)).is_empty());
        assert!(
            judge(&Facts::default(), None).is_empty(),
            "growth not judged"
        );
        facts.errors = 2;
        facts.idle_kinds = vec!["stop_ws"];
        assert_eq!(judge(&facts, Some(5.0)).len(), 2);
    }
}
