//! Rates: a token bucket per key (a user's sends, an address's sends, an
//! address's new identities).
//!
//! It takes the current time as an argument and holds no global state, so
//! it is tested without clocks or sleeps. (Open streams are counted at the
//! transports' edge, `server/access/admission.rs`.)

use std::{
    collections::HashMap,
    hash::Hash,
    sync::Mutex,
    time::{Duration, Instant},
};

use crate::protocol::UserId;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// A token bucket per key (a user by default): `burst` at once, refilled
/// at `per_sec`.
#[derive(Debug)]
pub struct RateLimiter<K = UserId> {
    burst: f64,
    per_sec: f64,
    buckets: Mutex<HashMap<K, Bucket>>,
}

/// Keys remembered before full buckets are forgotten.
const PRUNE_ABOVE: usize = 10_000;

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    pub fn new(burst: u32, per_sec: f64) -> Self {
        Self {
            burst: f64::from(burst.max(1)),
            per_sec,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token, or says how long until one is available.
    pub fn check(&self, key: &K, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() > PRUNE_ABOVE {
            let (burst, per_sec) = (self.burst, self.per_sec);
            buckets.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.updated).as_secs_f64() * per_sec < burst
            });
        }
        let bucket = buckets.entry(key.clone()).or_insert(Bucket {
            tokens: self.burst,
            updated: now,
        });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.per_sec).min(self.burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - bucket.tokens) / self.per_sec,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_burst_then_refills() {
        let limiter: RateLimiter = RateLimiter::new(3, 2.0);
        let user: UserId = "u".into();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limiter.check(&user, t0).is_ok());
        }
        let wait = limiter.check(&user, t0).expect_err("limited");
        assert_eq!(wait, Duration::from_millis(500));
        assert!(limiter
            .check(&user, t0 + Duration::from_millis(500))
            .is_ok());
        assert!(
            limiter.check(&"other".into(), t0).is_ok(),
            "users are independent"
        );
    }
}
