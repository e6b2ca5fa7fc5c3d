//! The one writer: a dedicated thread that owns the only write connection and
//! commits many callers' writes in one transaction (group commit).
//!
//! SQLite has one writer at a time, and under load what costs is not the SQL
//! but the round trips around it: a commit per message, and a thread hand-off
//! per statement. So a caller hands over *all* of its statements as one
//! closure; the thread takes everything that is queued (up to the batch
//! size, `limits.store_writer_batch`), runs each closure in its own `SAVEPOINT` inside one
//! `BEGIN IMMEDIATE … COMMIT`, and answers every caller only after the commit
//! succeeded. A closure that fails (or panics) rolls back its own savepoint
//! and nothing else; a failed commit fails every caller of that batch.
//! Nothing is acknowledged before it is committed.
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

use crate::server::store::StoreError;

/// How a batch ended, told to each of its callers.
type Committed = Result<(), String>;
/// Answers a caller once its batch is committed (or not).
type Ack = Box<dyn FnOnce(Committed) + Send>;
/// One caller's statements: run on the writer connection (or refused with
/// the reason when no transaction could be opened), then acknowledged.
type Job = Box<dyn FnOnce(Result<&Connection, &str>) -> Ack + Send>;

/// Handle to the writer thread; clones share it.
#[derive(Clone, Debug)]
pub(super) struct Writer {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    queue: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
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

impl Writer {
    /// Starts the writer thread on `conn`: at most `queue` closures wait,
    /// at most `batch` are committed together (each at least one).
    pub(super) fn start(conn: Connection, queue: usize, batch: usize) -> std::io::Result<Self> {
        let (queue, jobs) = mpsc::channel(queue.max(1));
        let batch = batch.max(1);
        let thread = std::thread::Builder::new()
            .name("tether-sqlite-writer".into())
            .spawn(move || write_loop(&conn, jobs, batch))?;
        Ok(Self {
            inner: Arc::new(Inner {
                queue: Some(queue),
                thread: Some(thread),
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
                Ok(conn) => in_savepoint(conn, work),
                Err(reason) => Err(StoreError::Commit(reason.to_owned())),
            };
            Box::new(move |committed: Committed| {
                let outcome = committed.map_err(StoreError::Commit).and(result);
                // The caller may have gone away; its write is committed anyway.
                let _ = answer.send(outcome);
            })
        });
        let queue = self.inner.queue.as_ref().ok_or(StoreError::Closed)?;
        queue.send(job).await.map_err(|_| StoreError::Closed)?;
        answered.await.map_err(|_| StoreError::Closed)?
    }
}

fn write_loop(conn: &Connection, mut jobs: mpsc::Receiver<Job>, max_batch: usize) {
    let mut batch: Vec<Job> = Vec::with_capacity(max_batch);
    while let Some(first) = jobs.blocking_recv() {
        batch.push(first);
        while batch.len() < max_batch {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        commit_batch(conn, &mut batch);
    }
}

/// One transaction for the whole batch; every job is answered, whatever happens.
fn commit_batch(conn: &Connection, batch: &mut Vec<Job>) {
    let size = batch.len();
    if let Err(err) = conn.execute_batch("BEGIN IMMEDIATE") {
        let reason = err.to_string();
        tracing::error!(error = %reason, size, "could not open a write transaction");
        for job in batch.drain(..) {
            job(Err(&reason))(Err(reason.clone()));
        }
        return;
    }
    let acks: Vec<Ack> = batch
        .drain(..)
        .filter_map(|job| {
            // A panicking job (a bug) must not take the writer down with it;
            // its caller sees `Closed` when the answer is dropped.
            catch_unwind(AssertUnwindSafe(|| job(Ok(conn)))).ok()
        })
        .collect();
    let committed = conn.execute_batch("COMMIT").map_err(|err| {
        let reason = err.to_string();
        tracing::error!(error = %reason, size, "write transaction failed to commit");
        let _ = conn.execute_batch("ROLLBACK");
        reason
    });
    for ack in acks {
        ack(committed.clone());
    }
}

/// Runs `work` inside a savepoint: kept on success, undone on error or panic.
fn in_savepoint<T>(
    conn: &Connection,
    work: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    conn.execute_batch("SAVEPOINT job")?;
    let result = catch_unwind(AssertUnwindSafe(|| work(conn)));
    match result {
        Ok(Ok(value)) => {
            conn.execute_batch("RELEASE job")?;
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
    use super::*;

    fn writer() -> (Writer, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = Connection::open(dir.path().join("w.db")).expect("open");
        conn.execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE t (v INTEGER UNIQUE NOT NULL)")
            .expect("schema");
        (Writer::start(conn, 4_096, 512).expect("thread"), dir)
    }

    fn count(dir: &tempfile::TempDir) -> i64 {
        let conn = Connection::open(dir.path().join("w.db")).expect("open");
        conn.query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .expect("count")
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
}
