//! The Lua scripts the cluster runs in Redis: each is one atomic step, so
//! a check and the write it guards can never be split by another instance.

/// Appends a record to a conversation's log and announces it, only while
/// `ARGV[1]` holds the reply's lease (a stale owner's records are refused:
/// the lease value is the fencing token). A lease Redis lost (a restart or
/// failover) is taken again, as [`RENEW`] does: another owner would have
/// set its own.
///
/// `ARGV[5]` says what the record is:
/// * `begin` starts a fresh log: the previous reply's records are dropped
///   (the log holds one reply, which is what a snapshot needs). Trimmed, not
///   deleted, so the stream keeps its last id and the `begin` gets a greater
///   one: a follower skips every record at or below the last position it
///   applied, and a `begin` written in the same millisecond as the record
///   before it would otherwise get the same id and be skipped.
/// * a `delta` needs the log its reply began; else Redis lost it, and the
///   owner must begin it again from its whole text (answered `0`, nothing
///   appended).
/// * a `done` also gives the lease back in the same step, so a client that
///   sees it and sends again at once never finds the lease still held, and
///   marks the lease ended (`KEYS[3]`, for a lease time), so that a renewal
///   already on its way ([`RENEW`]) does not take the released lease again.
/// * any other `frame` is appended.
///
/// KEYS: lease, log, ended. ARGV: lease value, channel, record, log TTL (ms),
/// kind, lease time (ms). Returns the record's stream id, nil when another
/// holds the lease, or 0 when a delta's log is gone.
pub const EMIT: &str = r"
local held = redis.call('GET', KEYS[1])
if not held then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[6])
elseif held ~= ARGV[1] then
  return false
end
if ARGV[5] == 'begin' then
  redis.call('XTRIM', KEYS[2], 'MAXLEN', 0)
elseif ARGV[5] == 'delta' and redis.call('EXISTS', KEYS[2]) == 0 then
  return 0
end
local id = redis.call('XADD', KEYS[2], '*', 'r', ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
redis.call('PUBLISH', ARGV[2], id .. ' ' .. ARGV[3])
if ARGV[5] == 'done' then
  redis.call('DEL', KEYS[1])
  redis.call('SET', KEYS[3], ARGV[1], 'PX', ARGV[6])
end
return id
";

/// Renews a lease its owner holds; takes it again when Redis lost it (a
/// restart or failover: the database's fencing still guards the reply),
/// but not when its reply's `done` gave it back ([`EMIT`] marked it ended):
/// a renewal that was on its way then would hold the conversation for a
/// lease time, and the next message would be refused as `busy`.
///
/// KEYS: lease, ended. ARGV: lease value, lease time (ms).
/// Returns 1 renewed, 2 taken again, 3 ended (nothing done), 0 lost to
/// another owner.
pub const RENEW: &str = r"
local held = redis.call('GET', KEYS[1])
if held == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
elseif not held then
  if redis.call('GET', KEYS[2]) == ARGV[1] then return 3 end
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 2
end
return 0
";

/// Gives a lease back if it is still the caller's.
///
/// KEYS: lease. ARGV: lease value.
pub const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
";

/// Takes over the lease of a reply whose instance died: only when nobody
/// holds it or the dead run (`ARGV[1]`, the end of its lease value) still does.
///
/// KEYS: lease. ARGV: dead run's token suffix (`:<token>`), new value, lease time (ms).
/// Returns 1 taken, 0 held by a live owner.
pub const TAKE_OVER: &str = r"
local held = redis.call('GET', KEYS[1])
if (not held) or string.sub(held, -string.len(ARGV[1])) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
";

/// A token bucket shared by every instance, on Redis's clock.
///
/// KEYS: bucket. ARGV: burst, tokens per second.
/// Returns 0 when a token was taken, else the milliseconds until one is.
pub const TAKE_TOKEN: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local burst = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local held = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(held[1]) or burst
local at = tonumber(held[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate / 1000)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = math.ceil((1 - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return wait
";

/// Counts a socket of a user over every instance, if under the cap.
/// Entries expire unless their instance refreshes them (a dead instance's
/// sockets stop counting).
///
/// KEYS: the user's socket set. ARGV: member, cap, expiry (ms).
/// Returns 1 admitted, 0 at the cap.
pub const ADMIT_SOCKET: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
return 1
";

/// Refreshes a counted socket's expiry (only if still counted).
///
/// KEYS: the user's socket set. ARGV: member, expiry (ms).
pub const REFRESH_SOCKET: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
return 1
";

/// The scripts the hot paths send in pipelines, by hash (`EVALSHA`): a
/// record then carries its arguments only, not the script's text, and
/// Redis does not hash the text again for every call. They are loaded at
/// start ([`load`]) and again when Redis answers `NOSCRIPT` (it restarted,
/// or its script cache was flushed). The others go through
/// `redis::Script`, which does the same one call at a time.
pub mod by_hash {
    use std::sync::LazyLock;

    /// Every script sent by hash, with its SHA-1 (what `EVALSHA` names).
    pub static EMIT: LazyLock<Hashed> = LazyLock::new(|| Hashed::of(super::EMIT));
    pub static RELEASE: LazyLock<Hashed> = LazyLock::new(|| Hashed::of(super::RELEASE));
    pub static RENEW: LazyLock<Hashed> = LazyLock::new(|| Hashed::of(super::RENEW));
    pub static REFRESH_SOCKET: LazyLock<Hashed> =
        LazyLock::new(|| Hashed::of(super::REFRESH_SOCKET));

    /// A script's text and hash.
    #[derive(Debug)]
    pub struct Hashed {
        pub text: &'static str,
        pub sha: String,
    }

    impl Hashed {
        fn of(text: &'static str) -> Self {
            Self {
                text,
                sha: redis::Script::new(text).get_hash().to_owned(),
            }
        }

        /// `EVALSHA <sha> <numkeys>`, for the caller to add keys and arguments.
        pub fn call(&self, keys: usize) -> redis::Cmd {
            let mut cmd = redis::cmd("EVALSHA");
            cmd.arg(&self.sha).arg(keys);
            cmd
        }
    }

    /// Loads them again after Redis said `NOSCRIPT`, saying so.
    pub async fn reload(redis: &mut redis::aio::ConnectionManager) -> redis::RedisResult<()> {
        tracing::info!("Redis lost the Lua scripts (a restart?); loading them again");
        load(redis).await
    }

    /// Loads every script sent by hash (`SCRIPT LOAD`), in one round trip.
    pub async fn load(redis: &mut redis::aio::ConnectionManager) -> redis::RedisResult<()> {
        let mut pipe = redis::pipe();
        for script in [&*EMIT, &*RELEASE, &*RENEW, &*REFRESH_SOCKET] {
            pipe.cmd("SCRIPT").arg("LOAD").arg(script.text).ignore();
        }
        pipe.query_async::<()>(redis).await
    }

    /// Whether Redis did not know a script: every failure of `err` is `NOSCRIPT`.
    pub fn is_noscript(err: &redis::RedisError) -> bool {
        err.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript)
    }
}
