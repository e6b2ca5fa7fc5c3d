//! A connection that sends frames faster than it may: refused, then closed.
//!
//! Each socket has a token bucket of `FRAME_BURST` frames, refilled at
//! `FRAMES_PER_SEC`. A frame beyond it is dropped unread; the first one of
//! a run of drops is answered with one `rate_limited` error (so a flood
//! costs the server no more writes than it has frames in budget), and after
//! `FLOOD_CLOSE_AFTER` drops in a row the socket is closed with 1008. A
//! frame within budget ends the run. Like the send rate, it takes the time
//! as an argument, so it is tested without clocks.

use std::time::Instant;

use crate::server::config::LimitsConfig;

/// What to do with a frame that just arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Within budget: handle it.
    Pass,
    /// Over budget, first of a run: drop it and say so once.
    Refuse,
    /// Over budget again: drop it silently.
    Drop,
    /// Over budget `FLOOD_CLOSE_AFTER` times in a row: close the socket.
    Close,
}

/// One socket's frame budget.
#[derive(Clone, Debug)]
pub struct FloodGuard {
    burst: f64,
    per_sec: f64,
    close_after: u32,
    tokens: f64,
    updated: Instant,
    dropped: u32,
}

impl FloodGuard {
    pub fn new(limits: &LimitsConfig, now: Instant) -> Self {
        let burst = f64::from(limits.frame_burst.max(1));
        Self {
            burst,
            per_sec: limits.frames_per_sec,
            close_after: limits.flood_close_after.max(1),
            tokens: burst,
            updated: now,
            dropped: 0,
        }
    }

    /// The verdict on a frame received at `now`.
    pub fn frame(&mut self, now: Instant) -> Verdict {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_sec).min(self.burst);
        self.updated = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            self.dropped = 0;
            return Verdict::Pass;
        }
        self.dropped = self.dropped.saturating_add(1);
        if self.dropped >= self.close_after {
            Verdict::Close
        } else if self.dropped == 1 {
            Verdict::Refuse
        } else {
            Verdict::Drop
        }
    }

    /// The reason given with the refusal.
    pub fn reason(&self) -> String {
        format!(
            "too many frames: at most {} per second (bursts of {}); slow down or the connection is closed",
            self.per_sec, self.burst
        )
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn guard(burst: u32, per_sec: f64, close_after: u32, now: Instant) -> FloodGuard {
        let limits = LimitsConfig {
            frame_burst: burst,
            frames_per_sec: per_sec,
            flood_close_after: close_after,
            ..LimitsConfig::defaults()
        };
        FloodGuard::new(&limits, now)
    }

    #[test]
    fn a_burst_passes_then_one_refusal_then_silence_then_close() {
        let t0 = Instant::now();
        let mut g = guard(3, 1.0, 4, t0);
        let verdicts: Vec<Verdict> = (0..7).map(|_| g.frame(t0)).collect();
        use Verdict::*;
        assert_eq!(verdicts, [Pass, Pass, Pass, Refuse, Drop, Drop, Close]);
    }

    #[test]
    fn a_frame_within_budget_ends_the_run() {
        let t0 = Instant::now();
        let mut g = guard(1, 2.0, 3, t0);
        assert_eq!(g.frame(t0), Verdict::Pass);
        assert_eq!(g.frame(t0), Verdict::Refuse);
        assert_eq!(g.frame(t0), Verdict::Drop);
        let later = t0 + Duration::from_millis(500);
        assert_eq!(g.frame(later), Verdict::Pass, "refilled at 2 per second");
        assert_eq!(g.frame(later), Verdict::Refuse, "a new run is told again");
    }

    #[test]
    fn a_steady_client_within_the_rate_is_never_refused() {
        let t0 = Instant::now();
        let mut g = guard(2, 10.0, 2, t0);
        for i in 0..1_000u64 {
            let now = t0 + Duration::from_millis(100 * i);
            assert_eq!(g.frame(now), Verdict::Pass, "frame {i}");
        }
    }
}
