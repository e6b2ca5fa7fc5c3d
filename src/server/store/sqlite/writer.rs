//! The one writer: a dedicated thread that owns the only write connection and
//! commits many callers' writes in one transaction (group commit).
//!
//! SQLite has one writer at a time, and under load what costs is not the SQL
//! but the round trips around it: a commit per message, and a thread hand-off
//! per statement. So a caller hands over *all* of its statements as one
//! closure; the thread takes everything that is queued (up to the batch
//! size, `limits.store_writer_batch`), runs them in one
//! `BEGIN IMMEDIATE … COMMIT`, and answers every caller only after the commit
//! succeeded. A closure that fails (or panics) undoes its own writes and
//! nothing else: the first closure of a transaction by rolling the
//! transaction back (it holds nothing else; the rest of the batch goes on in
//! a new one), every later one by its own `SAVEPOINT` (which copies each page
//! it changes to the sub-journal first, so the first one, and a batch of one,
//! skip it); a failed commit fails every caller of that batch, and so
//! does a transaction SQLite rolled back by itself (it may, on a full disk or
//! an I/O error): the callers before lost their writes with it.
//! Nothing is acknowledged before it is committed.
//!
//! Storage faults never stop the thread. The connection is opened when the
//! first batch needs it if it could not be at start, and opened afresh after
//! a fault it may be stuck in (read-only, gone, I/O), so the writer recovers
//! by itself once the fault is gone. Every fault is reported to the store's
//! [`FaultWatch`].
//!
//! The queue is bounded (`limits.store_writer_queue`): when the disk cannot keep up, callers
//! wait for room instead of piling up memory. The thread ends when the last
//! [`Writer`] handle is dropped, after finishing what was queued; dropping
//! the last handle joins it.

use std::{
    panic::{catch_unwind, AssertUnwindSafe},
    sync::Arc,
    thread::JoinHandle,
};

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use crate::server::store::{
    fault::{Fault, FaultKind, FaultWatch},
    StoreError,
};

/// How a batch ended, told to each of its callers.
type Committed = Result<(), StoreError>;
/// Answers a caller once its batch is committed (or not).
type Ack = Box<dyn FnOnce(Committed) + Send>;
/// One caller's statements: run on the writer connection (or refused with
/// the reason when there is no transaction to run in), then acknowledged.
type Job = Box<dyn FnOnce(Result<(&Connection, Undo), &StoreError>) -> Ran + Send>;
/// Opens the write connection (at start, and again after a fault).
pub(super) type Open = Box<dyn FnMut() -> Result<Connection, StoreError> + Send>;

/// A job that ran: its acknowledgement, whether it succeeded, and the fault
/// it failed with, if any.
struct Ran {
    ack: Ack,
    ok: bool,
    fault: Option<Fault>,
}

/// How a job's writes are undone when it fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Undo {
    /// The job is the first of its transaction: rolling the transaction
    /// back undoes exactly its writes.
    Transaction,
    /// Earlier jobs' writes are in the transaction: the job runs in a
    /// savepoint of its own.
    Savepoint,
}

/// Handle to the writer thread; clones share it.
#[derive(Clone, Debug)]
pub(super) struct Writer {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    queue: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
    watch: Arc<FaultWatch>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the queue lets the thread finish what is queued and stop.
        drop(self.queue.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The limits of the writer: at most `queue` closures wait, at most `batch`
/// are committed together (each at least one).
#[derive(Clone, Copy, Debug)]
pub(super) struct WriterLimits {
    pub queue: usize,
    pub batch: usize,
}

impl Writer {
    /// Starts the writer thread on `conn` (or, when it is `None`, on the
    /// first connection `open` makes when a batch needs one).
    pub(super) fn start(
        conn: Option<Connection>,
        open: Open,
        limits: WriterLimits,
        watch: Arc<FaultWatch>,
    ) -> std::io::Result<Self> {
        let (queue, jobs) = mpsc::channel(limits.queue.max(1));
        let batch = limits.batch.max(1);
        let mut state = WriteConn {
            conn,
            open,
            watch: watch.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("tether-sqlite-writer".into())
            .spawn(move || write_loop(&mut state, jobs, batch))?;
        Ok(Self {
            inner: Arc::new(Inner {
                queue: Some(queue),
                thread: Some(thread),
                watch,
            }),
        })
    }

    /// Runs `work` in the next batch; its result once the batch is committed.
    pub(super) async fn run<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let result = match conn {
                Ok((conn, Undo::Savepoint)) => in_savepoint(conn, work),
                Ok((conn, Undo::Transaction)) => in_transaction(conn, work),
                Err(refused) => Err(refused.clone()),
            };
            let ok = result.is_ok();
            let fault = result.as_ref().err().and_then(StoreError::fault).cloned();
            let ack = Box::new(move |committed: Committed| {
                let outcome = committed.and(result);
                // The caller may have gone away; its write is committed anyway.
                let _ = answer.send(outcome);
            });
            Ran { ack, ok, fault }
        });
        let queue = self.inner.queue.as_ref().ok_or(StoreError::Closed)?;
        queue.send(job).await.map_err(|_| StoreError::Closed)?;
        let result = answered.await.map_err(|_| StoreError::Closed)?;
        if let Err(StoreError::Fault(fault)) = &result {
            self.inner.watch.failed("write", fault);
        }
        result
    }
}

/// The writer thread's connection, opened (again) when needed.
struct WriteConn {
    conn: Option<Connection>,
    open: Open,
    watch: Arc<FaultWatch>,
}

impl WriteConn {
    /// The open connection, opening one if there is none.
    fn connection(&mut self) -> Result<&Connection, StoreError> {
        let conn = match self.conn.take() {
            Some(conn) => conn,
            None => (self.open)()?,
        };
        Ok(self.conn.insert(conn))
    }

    /// Commits a batch, brings the store's fault state up to date, then
    /// answers the callers (so one told "stored" finds writes healthy).
    fn commit(&mut self, batch: &mut Vec<Job>) {
        let settled = match self.connection() {
            Ok(conn) => commit_batch(conn, batch),
            Err(err) => Settled {
                answers: refuse_all(batch.drain(..), &err),
                outcome: Err(as_fault(err)),
            },
        };
        let fault = match settled.outcome {
            Ok(None) => None,
            // A job's own error (a bug, a constraint): the database is fine.
            Ok(Some(fault)) if !fault.kind.is_transient() => None,
            Ok(Some(fault)) | Err(fault) => Some(fault),
        };
        match fault {
            None => self.watch.writes_ok(),
            Some(fault) => {
                self.watch.writes_failed();
                if fault.kind.needs_reopen() {
                    self.conn = None;
                }
            }
        }
        for (ack, committed) in settled.answers {
            ack(committed);
        }
    }
}

/// A failure to open, as a fault (a failed migration is one of the database).
fn as_fault(err: StoreError) -> Fault {
    match err {
        StoreError::Fault(fault) => fault,
        other => Fault::new(FaultKind::Other, other.to_string()),
    }
}

fn write_loop(conn: &mut WriteConn, mut jobs: mpsc::Receiver<Job>, max_batch: usize) {
    let mut batch: Vec<Job> = Vec::with_capacity(max_batch);
    while let Some(first) = jobs.blocking_recv() {
        batch.push(first);
        while batch.len() < max_batch {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        conn.commit(&mut batch);
    }
}

/// How a batch ended, before its callers are told.
struct Settled {
    /// Every caller's acknowledgement and what it is told.
    answers: Vec<(Ack, Committed)>,
    /// `Err`: nothing was committed; `Ok(Some)`: committed, but a job
    /// failed with that fault.
    outcome: Result<Option<Fault>, Fault>,
}

/// Refuses every job with `err` without running it.
fn refuse_all(jobs: impl Iterator<Item = Job>, err: &StoreError) -> Vec<(Ack, Committed)> {
    jobs.map(|job| (job(Err(err)).ack, Err(err.clone())))
        .collect()
}

/// One transaction for the whole batch (or a few, when first jobs fail);
/// every job gets its answer.
fn commit_batch(conn: &Connection, batch: &mut Vec<Job>) -> Settled {
    let size = batch.len();
    // Acknowledged after the commit: the jobs whose writes are in it, and
    // the failed first jobs (no writes; each is told its own error).
    let mut acks: Vec<(Ack, Option<StoreError>)> = Vec::with_capacity(size);
    let mut job_fault = None;
    let mut undo = Undo::Transaction;
    let mut jobs = batch.drain(..);
    while let Some(job) = jobs.next() {
        if undo == Undo::Transaction && conn.is_autocommit() {
            if let Err(err) = control(conn, "BEGIN IMMEDIATE") {
                let err = StoreError::from(err);
                tracing::debug!(error = %err, size, "could not open a write transaction");
                let mut answers: Vec<_> = acks.into_iter().map(|(a, _)| (a, Ok(()))).collect();
                answers.push((job(Err(&err)).ack, Err(err.clone())));
                answers.extend(refuse_all(jobs, &err));
                return Settled {
                    answers,
                    outcome: Err(as_fault(err)),
                };
            }
        }
        // A panicking job (a bug) must not take the writer down with it;
        // its caller sees `Closed` when the answer is dropped.
        let ran = catch_unwind(AssertUnwindSafe(|| job(Ok((conn, undo))))).ok();
        let ok = ran.as_ref().is_some_and(|ran| ran.ok);
        if let Some(ran) = ran {
            job_fault = job_fault.or(ran.fault);
            acks.push((ran.ack, None));
        }
        if undo == Undo::Transaction {
            if !conn.is_autocommit() {
                // The first job's writes stand; the next ones need savepoints.
                undo = Undo::Savepoint;
            } else if ok {
                // It succeeded, but SQLite rolled its writes back under it.
                if let Some((_, lost)) = acks.last_mut() {
                    *lost = Some(StoreError::Fault(Fault::new(
                        FaultKind::Other,
                        "the write transaction was rolled back",
                    )));
                }
            }
            // Failed: the rollback took exactly its writes; the next job
            // starts a new transaction.
            continue;
        }
        if conn.is_autocommit() {
            // SQLite rolled the whole transaction back: nothing of it stays.
            let fault = job_fault.unwrap_or_else(|| {
                Fault::new(FaultKind::Other, "the write transaction was rolled back")
            });
            let err = StoreError::Fault(fault.clone());
            let mut answers: Vec<_> = acks
                .into_iter()
                .map(|(a, _)| (a, Err(err.clone())))
                .collect();
            answers.extend(refuse_all(jobs, &err));
            return Settled {
                answers,
                outcome: Err(fault),
            };
        }
    }
    drop(jobs);
    let committed = if conn.is_autocommit() {
        // Every job failed as the first of its transaction: nothing to commit.
        Ok(())
    } else {
        control(conn, "COMMIT").map_err(|err| {
            let err = StoreError::from(err);
            tracing::debug!(error = %err, size, "write transaction failed to commit");
            let _ = conn.execute_batch("ROLLBACK");
            err
        })
    };
    Settled {
        answers: acks
            .into_iter()
            .map(|(a, lost)| (a, lost.map_or_else(|| committed.clone(), Err)))
            .collect(),
        outcome: match committed {
            Ok(()) => Ok(job_fault),
            Err(err) => Err(as_fault(err)),
        },
    }
}

/// Runs a transaction-control statement from the statement cache: parsed
/// once per connection, not once per job (a `SAVEPOINT` and a `RELEASE`
/// per job, a `BEGIN` and a `COMMIT` per batch).
fn control(conn: &Connection, sql: &'static str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([])?;
    Ok(())
}

/// Runs `work` as the first writes of the open transaction: kept on
/// success; on error or panic the transaction is rolled back, which undoes
/// its writes and nothing else.
fn in_transaction<T>(
    conn: &Connection,
    work: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let result = catch_unwind(AssertUnwindSafe(|| work(conn)));
    match result {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => {
            rollback(conn);
            Err(err)
        }
        Err(panic) => {
            rollback(conn);
            std::panic::resume_unwind(panic)
        }
    }
}

/// Rolls the open transaction back (SQLite may have done so already).
fn rollback(conn: &Connection) {
    if !conn.is_autocommit() {
        let _ = control(conn, "ROLLBACK");
    }
}

/// Runs `work` inside a savepoint: kept on success, undone on error or panic.
fn in_savepoint<T>(
    conn: &Connection,
    work: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    control(conn, "SAVEPOINT job")?;
    let result = catch_unwind(AssertUnwindSafe(|| work(conn)));
    match result {
        Ok(Ok(value)) => {
            control(conn, "RELEASE job")?;
            Ok(value)
        }
        Ok(Err(err)) => {
            let _ = conn.execute_batch("ROLLBACK TO job; RELEASE job");
            Err(err)
        }
        Err(panic) => {
            let _ = conn.execute_batch("ROLLBACK TO job; RELEASE job");
            std::panic::resume_unwind(panic)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn open_at(path: std::path::PathBuf) -> Open {
        Box::new(move || {
            let conn = Connection::open(&path)?;
            conn.busy_timeout(std::time::Duration::from_millis(50))?;
            conn.execute_batch(
                "PRAGMA journal_mode=WAL; PRAGMA foreign_keys=ON;
                 CREATE TABLE IF NOT EXISTS t (v INTEGER UNIQUE NOT NULL);
                 CREATE TABLE IF NOT EXISTS p (id INTEGER PRIMARY KEY);
                 CREATE TABLE IF NOT EXISTS c (p INTEGER REFERENCES p(id)
                     DEFERRABLE INITIALLY DEFERRED)",
            )?;
            Ok(conn)
        })
    }

    fn writer_with(open: Open, conn: Option<Connection>) -> (Writer, Arc<FaultWatch>) {
        let watch = Arc::new(FaultWatch::default());
        let limits = WriterLimits {
            queue: 4_096,
            batch: 512,
        };
        let writer = Writer::start(conn, open, limits, watch.clone()).expect("thread");
        (writer, watch)
    }

    fn writer() -> (Writer, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut open = open_at(dir.path().join("w.db"));
        let conn = open().expect("open");
        (writer_with(open, Some(conn)).0, dir)
    }

    fn count(dir: &tempfile::TempDir) -> i64 {
        let conn = Connection::open(dir.path().join("w.db")).expect("open");
        conn.query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .expect("count")
    }

    fn insert(v: i64) -> impl FnOnce(&Connection) -> Result<usize, StoreError> {
        move |c| Ok(c.execute("INSERT INTO t (v) VALUES (?)", [v])?)
    }

    /// Holds the writer thread inside a batch until the returned sender is
    /// used, so that what is queued meanwhile forms the next batch.
    async fn hold(w: &Writer) -> std::sync::mpsc::Sender<()> {
        let (release, released) = std::sync::mpsc::channel::<()>();
        let (entered, is_in) = oneshot::channel();
        let w = w.clone();
        tokio::spawn(async move {
            w.run(move |_| {
                let _ = entered.send(());
                let _ = released.recv();
                Ok(())
            })
            .await
        });
        is_in.await.expect("the writer runs the holding job");
        release
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_job_undoes_only_its_own_writes() {
        let (w, dir) = writer();
        let mut tasks = Vec::new();
        for v in 0..200_i64 {
            let w = w.clone();
            tasks.push(tokio::spawn(async move {
                w.run(move |c| {
                    c.execute("INSERT INTO t (v) VALUES (?)", [v])?;
                    if v % 10 == 0 {
                        // Writes, then fails: its insert must not survive.
                        c.execute("INSERT INTO t (v) VALUES (?)", [v + 1_000])?;
                        c.execute("INSERT INTO t (v) VALUES (?)", [v + 1_000])?;
                    }
                    Ok(v)
                })
                .await
            }));
        }
        let mut failed = 0;
        for task in tasks {
            if task.await.expect("task").is_err() {
                failed += 1;
            }
        }
        assert_eq!(failed, 20);
        drop(w);
        assert_eq!(count(&dir), 180);
    }

    /// A test job, boxed so that several kinds fit in one batch.
    type TestJob = Box<dyn FnOnce(&Connection) -> Result<(), StoreError> + Send>;

    /// Queues `jobs` while the writer is held, so that they form one batch
    /// in this order; their results in the same order.
    async fn one_batch(w: &Writer, jobs: Vec<TestJob>) -> Vec<Result<(), StoreError>> {
        let release = hold(w).await;
        let mut tasks = Vec::new();
        for (queued, job) in jobs.into_iter().enumerate() {
            let w2 = w.clone();
            tasks.push(tokio::spawn(async move { w2.run(job).await }));
            while w.inner.queue.as_ref().expect("open").capacity() > 4_096 - (queued + 1) {
                tokio::task::yield_now().await;
            }
        }
        release.send(()).expect("release");
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.expect("join"));
        }
        results
    }

    /// The first job of a transaction runs without a savepoint: when it
    /// fails, the transaction is rolled back and the batch goes on in a
    /// new one; later jobs are undone by their savepoints.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn failing_first_and_later_jobs_undo_only_their_own_writes() {
        let (w, dir) = writer();
        let fails = |v: i64| -> TestJob {
            Box::new(move |c| {
                c.execute("INSERT INTO t (v) VALUES (?)", [v])?;
                Err(StoreError::NotFound)
            })
        };
        let stores = |v: i64| -> TestJob {
            Box::new(move |c| {
                c.execute("INSERT INTO t (v) VALUES (?)", [v])?;
                Ok(())
            })
        };
        let results = one_batch(&w, vec![fails(1), fails(2), stores(3), fails(4), stores(5)]).await;
        let failed: Vec<bool> = results.iter().map(Result::is_err).collect();
        assert_eq!(failed, [true, true, false, true, false], "{results:?}");
        // A batch of one failing job, then one that rolls the transaction
        // back under itself (told so), then one that commits.
        let results = one_batch(
            &w,
            vec![
                fails(6),
                Box::new(|c| {
                    c.execute("INSERT INTO t (v) VALUES (7)", [])?;
                    Ok(c.execute_batch("ROLLBACK")?)
                }),
                stores(8),
            ],
        )
        .await;
        let failed: Vec<bool> = results.iter().map(Result::is_err).collect();
        assert_eq!(failed, [true, true, false], "{results:?}");
        drop(w);
        let conn = Connection::open(dir.path().join("w.db")).expect("open");
        let stored: Vec<i64> = conn
            .prepare("SELECT v FROM t ORDER BY v")
            .expect("prepare")
            .query_map([], |r| r.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        assert_eq!(stored, [3, 5, 8]);
    }

    #[tokio::test]
    async fn a_panicking_job_leaves_the_writer_working() {
        let (w, dir) = writer();
        let panicked = w
            .run(|c| -> Result<(), StoreError> {
                c.execute("INSERT INTO t (v) VALUES (1)", [])?;
                panic!("a bug in a job")
            })
            .await;
        assert!(matches!(panicked, Err(StoreError::Closed)), "{panicked:?}");
        w.run(|c| Ok(c.execute("INSERT INTO t (v) VALUES (2)", [])?))
            .await
            .expect("next job runs");
        drop(w);
        assert_eq!(count(&dir), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_commit_fails_every_caller_of_the_batch_and_the_next_one_commits() {
        let (w, dir) = writer();
        let release = hold(&w).await;
        // One batch: a good insert, and one that breaks a deferred foreign
        // key, which only COMMIT checks.
        let good = tokio::spawn({
            let w = w.clone();
            async move { w.run(insert(1)).await }
        });
        let bad = tokio::spawn({
            let w = w.clone();
            async move {
                w.run(|c| Ok(c.execute("INSERT INTO c (p) VALUES (99)", [])?))
                    .await
            }
        });
        tokio::task::yield_now().await;
        while w.inner.queue.as_ref().expect("open").capacity() > 4_096 - 2 {
            tokio::task::yield_now().await;
        }
        release.send(()).expect("release");
        let (good, bad) = (good.await.expect("join"), bad.await.expect("join"));
        assert!(matches!(good, Err(StoreError::Fault(_))), "{good:?}");
        assert!(matches!(bad, Err(StoreError::Fault(_))), "{bad:?}");
        w.run(insert(2)).await.expect("the writer goes on");
        drop(w);
        assert_eq!(count(&dir), 1, "only the later insert is stored");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_transaction_rolled_back_under_the_batch_fails_all_of_it() {
        let (w, dir) = writer();
        let release = hold(&w).await;
        let before = tokio::spawn({
            let w = w.clone();
            async move { w.run(insert(1)).await }
        });
        while w.inner.queue.as_ref().expect("open").capacity() > 4_096 - 1 {
            tokio::task::yield_now().await;
        }
        // What SQLite does by itself on some full-disk and I/O errors.
        let rollback = tokio::spawn({
            let w = w.clone();
            async move { w.run(|c| Ok(c.execute_batch("ROLLBACK")?)).await }
        });
        while w.inner.queue.as_ref().expect("open").capacity() > 4_096 - 2 {
            tokio::task::yield_now().await;
        }
        let after = tokio::spawn({
            let w = w.clone();
            async move { w.run(insert(3)).await }
        });
        while w.inner.queue.as_ref().expect("open").capacity() > 4_096 - 3 {
            tokio::task::yield_now().await;
        }
        release.send(()).expect("release");
        let rolled_back = rollback.await.expect("join");
        assert!(rolled_back.is_err(), "{rolled_back:?}");
        for task in [before, after] {
            let result = task.await.expect("join");
            assert!(
                result.is_err(),
                "every caller of the batch fails: {result:?}"
            );
        }
        w.run(insert(4)).await.expect("the writer goes on");
        drop(w);
        assert_eq!(count(&dir), 1, "nothing of the rolled back batch is stored");
    }

    #[tokio::test]
    async fn a_lock_held_elsewhere_refuses_writes_until_it_is_released() {
        let (w, dir) = writer();
        let other = Connection::open(dir.path().join("w.db")).expect("open");
        other.execute_batch("BEGIN EXCLUSIVE").expect("lock");
        let locked = w.run(insert(1)).await;
        match locked {
            Err(StoreError::Fault(f)) => assert_eq!(f.kind, FaultKind::Locked),
            other => panic!("expected a lock fault, got {other:?}"),
        }
        other.execute_batch("COMMIT").expect("unlock");
        w.run(insert(2))
            .await
            .expect("written after the lock is gone");
        drop(w);
        assert_eq!(count(&dir), 1);
    }

    #[tokio::test]
    async fn the_connection_is_opened_when_possible_and_again_after_a_fault() {
        let dir = tempfile::tempdir().expect("tempdir");
        let opens = Arc::new(AtomicUsize::new(0));
        let mut inner = open_at(dir.path().join("w.db"));
        let open: Open = Box::new({
            let opens = opens.clone();
            move || match opens.fetch_add(1, Ordering::SeqCst) {
                0 => Err(Fault::new(FaultKind::CannotOpen, "not mounted yet").into()),
                _ => inner(),
            }
        });
        let (w, watch) = writer_with(open, None);
        let first = w.run(insert(1)).await;
        assert!(
            matches!(&first, Err(StoreError::Fault(f)) if f.kind == FaultKind::CannotOpen),
            "{first:?}"
        );
        assert!(watch.writes_failing());
        assert_eq!(watch.counts().get(FaultKind::CannotOpen), 1);
        w.run(insert(2)).await.expect("opened on the next batch");
        assert!(!watch.writes_failing(), "recovered");
        assert_eq!(opens.load(Ordering::SeqCst), 2);
        // A fault the connection may be stuck in: the next batch reopens.
        let read_only = w
            .run(|_| -> Result<(), StoreError> {
                Err(Fault::new(FaultKind::ReadOnly, "attempt to write a readonly database").into())
            })
            .await;
        assert!(read_only.is_err());
        assert!(watch.writes_failing());
        w.run(insert(3))
            .await
            .expect("written on a fresh connection");
        assert_eq!(opens.load(Ordering::SeqCst), 3);
        drop(w);
        assert_eq!(count(&dir), 2);
    }
}
