//! Per-user limits: a send-rate token bucket and the open-socket count.
//!
//! Both take the current time or user as arguments and hold no global state,
//! so they are tested without clocks or sleeps.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use crate::protocol::UserId;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// A token bucket per user: `burst` sends at once, refilled at `per_sec`.
#[derive(Debug)]
pub struct RateLimiter {
    burst: f64,
    per_sec: f64,
    buckets: Mutex<HashMap<UserId, Bucket>>,
}

/// Users remembered before full buckets are forgotten.
const PRUNE_ABOVE: usize = 10_000;

impl RateLimiter {
    pub fn new(burst: u32, per_sec: f64) -> Self {
        Self {
            burst: f64::from(burst.max(1)),
            per_sec,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token, or says how long until one is available.
    pub fn check(&self, user: &UserId, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() > PRUNE_ABOVE {
            let (burst, per_sec) = (self.burst, self.per_sec);
            buckets.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.updated).as_secs_f64() * per_sec < burst
            });
        }
        let bucket = buckets.entry(user.clone()).or_insert(Bucket {
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

/// Counts open sockets per user.
#[derive(Debug)]
pub struct SocketRegistry {
    max_per_user: usize,
    open: Mutex<HashMap<UserId, usize>>,
}

/// Holds one of a user's socket slots; frees it on drop.
#[derive(Debug)]
pub struct SocketSlot {
    registry: Arc<SocketRegistry>,
    user: UserId,
}

impl SocketRegistry {
    pub fn new(max_per_user: usize) -> Self {
        Self {
            max_per_user,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// A slot for `user`, or `None` when the user already has the maximum.
    pub fn open(self: &Arc<Self>, user: &UserId) -> Option<SocketSlot> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(user.clone()).or_insert(0);
        if *count >= self.max_per_user {
            return None;
        }
        *count += 1;
        Some(SocketSlot {
            registry: self.clone(),
            user: user.clone(),
        })
    }

    pub fn max_per_user(&self) -> usize {
        self.max_per_user
    }
}

impl Drop for SocketSlot {
    fn drop(&mut self) {
        let mut open = self.registry.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.user) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_burst_then_refills() {
        let limiter = RateLimiter::new(3, 2.0);
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

    #[test]
    fn socket_slots_are_counted_and_freed() {
        let registry = Arc::new(SocketRegistry::new(2));
        let user: UserId = "u".into();
        let a = registry.open(&user).expect("first");
        let _b = registry.open(&user).expect("second");
        assert!(registry.open(&user).is_none());
        drop(a);
        assert!(registry.open(&user).is_some());
    }
}
