//! Read-only connections, used on tokio's blocking pool.
//!
//! WAL lets any number of readers run beside the writer, each on a
//! consistent snapshot. A read borrows an idle connection (or opens one),
//! runs its whole query on a blocking thread and gives the connection back.
//! At most `max` reads run at once (the rest wait their turn without
//! holding a thread), so there are never more connections than that; `max`
//! is `limits.store_readers`. A connection that saw a fault it may be stuck
//! in (the file went away, I/O) is dropped, and the next read opens afresh.

use std::{
    path::PathBuf,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use rusqlite::{Connection, OpenFlags};
use tokio::sync::Semaphore;

use super::diagnose;
use crate::server::store::{fault::FaultWatch, StoreError};

/// The pool of read connections; clones share it.
#[derive(Clone, Debug)]
pub(super) struct Readers {
    inner: Arc<Pool>,
}

#[derive(Debug)]
struct Pool {
    path: PathBuf,
    /// Most reads running at once, and most read connections kept open.
    max: usize,
    busy_timeout: Duration,
    idle: Mutex<Vec<Connection>>,
    running: Arc<Semaphore>,
    watch: Arc<FaultWatch>,
}

impl Readers {
    /// A pool of at most `max` connections (at least one), each waiting up
    /// to `busy_timeout` for a lock; faults are reported to `watch`.
    pub(super) fn new(
        path: PathBuf,
        max: usize,
        busy_timeout: Duration,
        watch: Arc<FaultWatch>,
    ) -> Self {
        let max = max.max(1);
        Self {
            inner: Arc::new(Pool {
                path,
                max,
                busy_timeout,
                idle: Mutex::new(Vec::new()),
                running: Arc::new(Semaphore::new(max)),
                watch,
            }),
        }
    }

    /// Runs `work` on a read connection, off the async threads.
    pub(super) async fn run<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        // Owned and moved into the read: a caller that gives up does not
        // free the turn before its read has finished.
        let turn = self
            .inner
            .running
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Closed)?;
        let pool = self.inner.clone();
        let result = tokio::task::spawn_blocking(move || {
            let _turn = turn;
            let conn = pool.take().map_err(|e| diagnose::explain(e, &pool.path))?;
            let result = work(&conn).map_err(|e| diagnose::explain(e, &pool.path));
            let stuck = matches!(&result, Err(StoreError::Fault(f)) if f.kind.needs_reopen());
            if !stuck {
                pool.give_back(conn);
            }
            result
        })
        .await
        .map_err(|_| StoreError::Closed)?;
        if let Err(StoreError::Fault(fault)) = &result {
            self.inner.watch.failed("read", fault);
        }
        result
    }
}

impl Pool {
    fn take(&self) -> Result<Connection, StoreError> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        match idle {
            Some(conn) => Ok(conn),
            None => open_reader(&self.path, self.busy_timeout),
        }
    }

    fn give_back(&self, conn: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < self.max {
            idle.push(conn);
        }
    }
}

fn open_reader(path: &std::path::Path, busy_timeout: Duration) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI,
    )?;
    conn.busy_timeout(busy_timeout)?;
    super::plan_once(&conn)?;
    // A reader's page cache is dropped whenever another connection commits;
    // memory-mapped pages are not, and cost no read syscall.
    conn.pragma_update(None, "mmap_size", 256_i64 << 20)?;
    Ok(conn)
}
