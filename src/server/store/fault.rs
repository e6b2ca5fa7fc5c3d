//! Storage faults: what went wrong with the database, in words a client and
//! an operator can act on, and how often.
//!
//! Every SQLite (and file system) error is classified once, where it leaves
//! the store ([`Fault`]), so the chat core never looks at SQLite's codes.
//! [`FaultWatch`] counts failed store operations by kind (`/metrics`), logs
//! a fault once per kind and minute however many requests it fails (a full
//! disk must not flood the log), and logs when writes succeed again. It
//! decides nothing: what a fault means for a request is the chat core's.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Mutex, PoisonError,
    },
    time::{Duration, Instant},
};

use prometheus_client::{
    encoding::{EncodeMetric, MetricEncoder},
    metrics::{counter::Counter, MetricType},
};
use rusqlite::ErrorCode;
use strum::VariantArray;
use thiserror::Error;

/// A fault is logged at most once per kind in this long; the next line
/// says how many were left out.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// What kind of storage fault; `snake_case` in logs and `/metrics`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, strum::IntoStaticStr, strum::VariantArray)]
#[strum(serialize_all = "snake_case")]
pub enum FaultKind {
    /// The disk (or the file system's quota) is full (`SQLITE_FULL`).
    Full,
    /// The database file or its file system is read-only.
    ReadOnly,
    /// Another process holds the database's write lock longer than the
    /// busy timeout (`SQLITE_BUSY` / `SQLITE_LOCKED`).
    Locked,
    /// The file cannot be opened or created (missing directory, no
    /// permission, file system not there).
    CannotOpen,
    /// The operating system failed a read or write (`SQLITE_IOERR`).
    Io,
    /// The file is damaged or is not a database.
    Corrupt,
    /// Anything else: a bug in a query, a constraint, memory.
    Other,
}

impl FaultKind {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// A fault of the server's surroundings that may go away by itself or
    /// by an operator's hand (space freed, lock released, file system
    /// remounted): a client may try again later.
    pub fn is_transient(self) -> bool {
        !matches!(self, FaultKind::Corrupt | FaultKind::Other)
    }

    /// The connection that saw it may be stuck in it (opened read-only,
    /// on a file that went away): open a fresh one before the next use.
    pub(super) fn needs_reopen(self) -> bool {
        matches!(
            self,
            FaultKind::ReadOnly | FaultKind::CannotOpen | FaultKind::Io | FaultKind::Corrupt
        )
    }

    /// What a user is told, in one sentence.
    pub fn human(self) -> &'static str {
        match self {
            FaultKind::Full => {
                "The server's disk is full, so nothing new can be saved. Try again later."
            }
            FaultKind::ReadOnly => {
                "The server's database is read-only right now, so nothing new can be saved. \
                 Try again later."
            }
            FaultKind::Locked => {
                "The server's database is locked by another program. Try again in a moment."
            }
            FaultKind::CannotOpen | FaultKind::Io => {
                "The server cannot reach its database right now. Try again in a moment."
            }
            FaultKind::Corrupt => "The server's database is damaged.",
            FaultKind::Other => "The server's database failed.",
        }
    }
}

/// A classified database failure: its kind and SQLite's (or the OS's) words.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error("{detail} ({})", kind.as_str())]
pub struct Fault {
    pub kind: FaultKind,
    pub detail: String,
}

impl Fault {
    pub fn new(kind: FaultKind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into(),
        }
    }
}

impl From<rusqlite::Error> for Fault {
    fn from(err: rusqlite::Error) -> Self {
        let kind = match err.sqlite_error_code() {
            Some(ErrorCode::DiskFull) => FaultKind::Full,
            Some(ErrorCode::ReadOnly) => FaultKind::ReadOnly,
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => FaultKind::Locked,
            Some(ErrorCode::CannotOpen | ErrorCode::PermissionDenied) => FaultKind::CannotOpen,
            Some(ErrorCode::SystemIoFailure) => FaultKind::Io,
            Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => FaultKind::Corrupt,
            _ => FaultKind::Other,
        };
        Fault::new(kind, err.to_string())
    }
}

impl From<&std::io::Error> for FaultKind {
    /// A file system error around the database (creating its directory).
    fn from(err: &std::io::Error) -> Self {
        use std::io::ErrorKind as K;
        match err.kind() {
            K::StorageFull | K::QuotaExceeded => FaultKind::Full,
            K::ReadOnlyFilesystem => FaultKind::ReadOnly,
            _ => FaultKind::CannotOpen,
        }
    }
}

/// Failed store operations by kind: `tether_store_faults_total{kind}`.
/// Clones share the counts; every kind's series exists from the start.
#[derive(Clone, Debug)]
pub struct FaultCounts(Vec<(FaultKind, Counter)>);

impl Default for FaultCounts {
    fn default() -> Self {
        Self(
            FaultKind::VARIANTS
                .iter()
                .map(|&kind| (kind, Counter::default()))
                .collect(),
        )
    }
}

impl FaultCounts {
    fn inc(&self, kind: FaultKind) {
        if let Some((_, counter)) = self.0.iter().find(|(k, _)| *k == kind) {
            counter.inc();
        }
    }

    /// The count of one kind.
    pub fn get(&self, kind: FaultKind) -> u64 {
        self.0
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or(0, |(_, c)| c.get())
    }
}

impl EncodeMetric for FaultCounts {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        for (kind, counter) in &self.0 {
            counter.encode(encoder.encode_family(&[("kind", kind.as_str())])?)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Counter
    }
}

/// When each kind was last logged, and how many were left out since.
#[derive(Debug, Default)]
struct LogState {
    last: Vec<(FaultKind, Instant, u64)>,
}

/// Counts, logs (deduplicated) and remembers whether writes are failing.
#[derive(Debug, Default)]
pub struct FaultWatch {
    counts: FaultCounts,
    writes_failing: AtomicBool,
    log: Mutex<LogState>,
}

impl FaultWatch {
    pub fn counts(&self) -> &FaultCounts {
        &self.counts
    }

    /// A store operation (`op`: `read` or `write`) failed with `fault`.
    pub(super) fn failed(&self, op: &'static str, fault: &Fault) {
        self.counts.inc(fault.kind);
        if let Some(suppressed) = self.due(fault.kind, Instant::now()) {
            tracing::error!(
                kind = fault.kind.as_str(),
                op,
                error = %fault.detail,
                suppressed,
                "storage fault: {}",
                fault.kind.human()
            );
        }
    }

    /// `Some(left out since the last line)` when `kind` may be logged now.
    fn due(&self, kind: FaultKind, now: Instant) -> Option<u64> {
        let mut log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        match log.last.iter_mut().find(|(k, _, _)| *k == kind) {
            Some((_, at, skipped)) if now.saturating_duration_since(*at) < LOG_EVERY => {
                *skipped += 1;
                None
            }
            Some((_, at, skipped)) => {
                *at = now;
                Some(std::mem::take(skipped))
            }
            None => {
                log.last.push((kind, now, 0));
                Some(0)
            }
        }
    }

    /// A write batch failed with a fault: writes are failing until one commits.
    pub(super) fn writes_failed(&self) {
        self.writes_failing.store(true, Ordering::Relaxed);
    }

    /// A write batch committed; logs the recovery if writes were failing.
    pub(super) fn writes_ok(&self) {
        if self.writes_failing.swap(false, Ordering::Relaxed) {
            // The next fault is news again, whatever its kind.
            self.log
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .last
                .clear();
            tracing::info!("storage recovered: writes succeed again");
        }
    }

    /// Whether the last write batch failed with a fault.
    pub fn writes_failing(&self) -> bool {
        self.writes_failing.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite(code: i32) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None)
    }

    #[test]
    fn sqlite_codes_are_classified() {
        use rusqlite::ffi;
        let kind = |code| Fault::from(sqlite(code)).kind;
        assert_eq!(kind(ffi::SQLITE_FULL), FaultKind::Full);
        assert_eq!(kind(ffi::SQLITE_READONLY), FaultKind::ReadOnly);
        assert_eq!(kind(ffi::SQLITE_BUSY), FaultKind::Locked);
        assert_eq!(kind(ffi::SQLITE_CANTOPEN), FaultKind::CannotOpen);
        assert_eq!(kind(ffi::SQLITE_IOERR_WRITE), FaultKind::Io);
        assert_eq!(kind(ffi::SQLITE_CORRUPT), FaultKind::Corrupt);
        assert_eq!(kind(ffi::SQLITE_NOTADB), FaultKind::Corrupt);
        assert_eq!(kind(ffi::SQLITE_CONSTRAINT_UNIQUE), FaultKind::Other);
        assert_eq!(
            Fault::from(rusqlite::Error::QueryReturnedNoRows).kind,
            FaultKind::Other
        );
        assert!(FaultKind::Full.is_transient() && !FaultKind::Corrupt.is_transient());
    }

    #[test]
    fn a_fault_is_logged_once_a_minute_per_kind_and_counted_every_time() {
        let watch = FaultWatch::default();
        let t0 = Instant::now();
        assert_eq!(watch.due(FaultKind::Full, t0), Some(0));
        assert_eq!(
            watch.due(FaultKind::Full, t0 + Duration::from_secs(1)),
            None
        );
        assert_eq!(
            watch.due(FaultKind::Full, t0 + Duration::from_secs(59)),
            None
        );
        assert_eq!(watch.due(FaultKind::Locked, t0), Some(0), "another kind");
        assert_eq!(
            watch.due(FaultKind::Full, t0 + LOG_EVERY),
            Some(2),
            "a minute later, with the count left out"
        );
        let fault = Fault::new(FaultKind::Full, "database or disk is full");
        watch.failed("write", &fault);
        watch.failed("write", &fault);
        assert_eq!(watch.counts().get(FaultKind::Full), 2);
        assert_eq!(watch.counts().get(FaultKind::Locked), 0);
    }

    #[test]
    fn recovery_is_noticed_once_and_makes_the_next_fault_news() {
        let watch = FaultWatch::default();
        watch.writes_failed();
        assert!(watch.writes_failing());
        assert!(watch.due(FaultKind::Full, Instant::now()).is_some());
        watch.writes_ok();
        assert!(!watch.writes_failing());
        assert_eq!(watch.due(FaultKind::Full, Instant::now()), Some(0));
    }
}
