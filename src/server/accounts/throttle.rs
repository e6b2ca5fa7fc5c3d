//! Sign-in throttling: per account and per client address, after
//! `LOGIN_FAILURES` failed tries each further try waits `LOGIN_BACKOFF_SECS`,
//! doubling with each failure up to [`MAX_WAIT`]. A success clears the
//! account's count and the address's. Kept in this process: behind several
//! instances an attacker's tries spread over them, each still throttled.

use std::{
    collections::HashMap,
    hash::Hash,
    sync::Mutex,
    time::{Duration, Instant},
};

use crate::server::access::address::AddrKey;

/// The longest wait.
pub const MAX_WAIT: Duration = Duration::from_secs(15 * 60);
/// A key's failures are forgotten this long after its last one.
const FORGET_AFTER: Duration = Duration::from_secs(60 * 60);
/// Keys kept before forgotten ones are pruned.
const PRUNE_ABOVE: usize = 10_000;

#[derive(Clone, Copy, Debug)]
struct Failures {
    count: u32,
    last: Instant,
    until: Option<Instant>,
}

#[derive(Debug)]
struct Counter<K> {
    keys: Mutex<HashMap<K, Failures>>,
}

impl<K: Hash + Eq + Clone> Counter<K> {
    fn new() -> Self {
        Self {
            keys: Mutex::new(HashMap::new()),
        }
    }

    fn wait(&self, key: &K, now: Instant) -> Option<Duration> {
        let keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        let until = keys.get(key)?.until?;
        (until > now).then(|| until - now)
    }

    fn fail(&self, key: &K, now: Instant, free: u32, base: Duration) {
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        if keys.len() > PRUNE_ABOVE {
            keys.retain(|_, f| now.saturating_duration_since(f.last) < FORGET_AFTER);
        }
        let entry = keys.entry(key.clone()).or_insert(Failures {
            count: 0,
            last: now,
            until: None,
        });
        if now.saturating_duration_since(entry.last) >= FORGET_AFTER {
            entry.count = 0;
        }
        entry.count = entry.count.saturating_add(1);
        entry.last = now;
        if entry.count >= free {
            let doublings = (entry.count - free).min(20);
            let wait = base.saturating_mul(1 << doublings).min(MAX_WAIT);
            entry.until = Some(now + wait);
        }
    }

    fn clear(&self, key: &K) {
        self.keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }
}

/// Failed sign-ins, by account name and by address.
#[derive(Debug)]
pub struct LoginThrottle {
    free: u32,
    base: Duration,
    accounts: Counter<String>,
    addresses: Counter<AddrKey>,
}

impl LoginThrottle {
    /// `free` failures before waiting, `base` the first wait.
    pub fn new(free: u32, base: Duration) -> Self {
        Self {
            free: free.max(1),
            base,
            accounts: Counter::new(),
            addresses: Counter::new(),
        }
    }

    /// How long a try for `username` from `from` must still wait, if at all.
    pub fn wait(&self, username: &str, from: AddrKey, now: Instant) -> Option<Duration> {
        let a = self.accounts.wait(&username.to_owned(), now);
        let b = self.addresses.wait(&from, now);
        a.max(b)
    }

    /// A failed try (unknown name or wrong password alike).
    pub fn failed(&self, username: &str, from: AddrKey, now: Instant) {
        self.accounts
            .fail(&username.to_owned(), now, self.free, self.base);
        self.addresses.fail(&from, now, self.free, self.base);
    }

    /// A successful sign-in.
    pub fn succeeded(&self, username: &str, from: AddrKey) {
        self.accounts.clear(&username.to_owned());
        self.addresses.clear(&from);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_start_after_the_free_failures_and_double() {
        let t = LoginThrottle::new(3, Duration::from_secs(2));
        let from = AddrKey::UNKNOWN;
        let now = Instant::now();
        for _ in 0..2 {
            t.failed("ann", from, now);
            assert_eq!(t.wait("ann", from, now), None);
        }
        t.failed("ann", from, now);
        assert_eq!(t.wait("ann", from, now), Some(Duration::from_secs(2)));
        t.failed("ann", from, now);
        assert_eq!(t.wait("ann", from, now), Some(Duration::from_secs(4)));
        assert_eq!(t.wait("ann", from, now + Duration::from_secs(4)), None);
        t.succeeded("ann", from);
        assert_eq!(t.wait("ann", from, now), None);
        for _ in 0..40 {
            t.failed("bob", from, now);
        }
        assert_eq!(t.wait("bob", from, now), Some(MAX_WAIT));
    }
}
