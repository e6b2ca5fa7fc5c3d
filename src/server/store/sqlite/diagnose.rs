//! Why SQLite "cannot open" the database, when the answer is more precise.
//!
//! SQLite reports a database it may not write beside (a read-only file
//! system, a directory without write permission) as `SQLITE_CANTOPEN`: a
//! WAL database cannot even be read where its `-shm` file cannot be
//! created. Told "cannot open", an operator looks for a missing file; the
//! fault says what is wrong instead. The check creates (and removes) an
//! empty probe file in the database's directory. It never opens the
//! database or its `-wal`/`-shm` files: closing any descriptor of those
//! would drop this process's SQLite locks on them.

use std::{io::ErrorKind, path::Path};

use crate::server::store::{new_id, Fault, FaultKind, StoreError};

/// `err`, with a `cannot_open` fault made precise when the directory of
/// `path` cannot be written to.
pub(super) fn explain(err: StoreError, path: &Path) -> StoreError {
    match err {
        StoreError::Fault(fault) if fault.kind == FaultKind::CannotOpen => {
            StoreError::Fault(explain_fault(fault, path))
        }
        other => other,
    }
}

fn explain_fault(fault: Fault, path: &Path) -> Fault {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let probe = dir.join(format!(".tether-write-probe-{}", new_id()));
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe);
    let (kind, why) = match created {
        Ok(file) => {
            drop(file);
            let _ = std::fs::remove_file(&probe);
            return fault;
        }
        Err(e) => match e.kind() {
            ErrorKind::ReadOnlyFilesystem => (FaultKind::ReadOnly, "its file system is read-only"),
            ErrorKind::PermissionDenied => (FaultKind::ReadOnly, "its directory is not writable"),
            ErrorKind::StorageFull | ErrorKind::QuotaExceeded => {
                (FaultKind::Full, "its disk is full")
            }
            _ => return fault,
        },
    };
    Fault::new(kind, format!("{} ({}: {why})", fault.detail, dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_writable_directory_leaves_the_fault_as_it_is_and_no_probe_behind() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fault = Fault::new(FaultKind::CannotOpen, "unable to open database file");
        let explained = explain(fault.clone().into(), &dir.path().join("t.db"));
        assert!(matches!(explained, StoreError::Fault(f) if f == fault));
        assert_eq!(
            std::fs::read_dir(dir.path()).expect("list").count(),
            0,
            "the probe is removed"
        );
    }

    #[test]
    fn other_errors_pass_unchanged() {
        let locked = Fault::new(FaultKind::Locked, "database is locked");
        let explained = explain(locked.clone().into(), Path::new("/nonexistent/t.db"));
        assert!(matches!(explained, StoreError::Fault(f) if f == locked));
        assert!(matches!(
            explain(StoreError::NotFound, Path::new("x")),
            StoreError::NotFound
        ));
    }
}
