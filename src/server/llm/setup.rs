//! Whether the model is set up yet: read from a status file that the
//! installer (`scripts/local-model.sh`, started by `scripts/start.sh` beside
//! the server) keeps up to date (`MODEL_SETUP_FILE`).
//!
//! No file configured, or no file there: the model is ready (an operator's
//! provider, or an install that finished earlier). While the file says
//! `installing`, replies wait before asking the model, as they wait for a
//! free upstream slot; `failed` ends them with the installer's reason. The
//! file is JSON, written whole and renamed into place by the installer:
//!
//! ```json
//! {"state":"installing","step":2,"steps":3,"label":"Building llama.cpp","started_at":1764590000}
//! {"state":"ready"}
//! {"state":"failed","reason":"pip could not build llama-cpp-python (see /tmp/x.log)"}
//! ```

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde::Deserialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::protocol::ModelSetup;

/// How often the status file is read while it is configured.
const POLL: Duration = Duration::from_millis(250);

/// What the status file says (`started_at` in Unix seconds).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(tag = "state", rename_all = "snake_case")]
enum StatusFile {
    Ready,
    Installing {
        step: u32,
        steps: u32,
        label: String,
        started_at: u64,
    },
    Failed {
        reason: String,
    },
}

/// The set-up state, shared by every clone of the model client.
#[derive(Clone, Debug)]
pub struct SetupWatch {
    file: Option<PathBuf>,
    state: Arc<watch::Sender<StatusFile>>,
}

impl SetupWatch {
    /// Follows `file` (none: always ready). The file is read once here, so
    /// the first request already sees what it says.
    pub fn new(file: Option<PathBuf>) -> Self {
        let initial = file.as_deref().map_or(StatusFile::Ready, read);
        Self {
            file,
            state: Arc::new(watch::Sender::new(initial)),
        }
    }

    /// The state now, as the protocol carries it.
    pub fn now(&self) -> ModelSetup {
        wire(&self.state.borrow())
    }

    /// Waits while the model is being set up; `Err(reason)` when it failed.
    pub async fn ready(&self) -> Result<(), String> {
        let mut changes = self.state.subscribe();
        let settled = changes
            .wait_for(|state| !matches!(state, StatusFile::Installing { .. }))
            .await;
        match settled.as_deref() {
            Ok(StatusFile::Failed { reason }) => Err(reason.clone()),
            // The sender lives as long as `self`: `Err` cannot happen.
            _ => Ok(()),
        }
    }

    /// Re-reads the file every [`POLL`] until `stop`; a task the server
    /// tracks. Nothing to do without a file.
    pub async fn follow(self, stop: CancellationToken) {
        let Some(file) = self.file.clone() else {
            return;
        };
        let mut ticks = tokio::time::interval(POLL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = ticks.tick() => {}
            }
            let next = read(&file);
            self.state.send_if_modified(|state| {
                if *state == next {
                    return false;
                }
                tracing::info!(setup = ?next, "model set-up changed");
                *state = next;
                true
            });
        }
    }
}

/// The file's state; absent means ready. A file that cannot be read or
/// parsed (being replaced by a writer that does not rename) is "installing"
/// with what went wrong as its label, so replies keep waiting.
fn read(file: &Path) -> StatusFile {
    match std::fs::read(file) {
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => StatusFile::Ready,
        Err(err) => unreadable(format!("cannot read {}: {err}", file.display())),
        Ok(bytes) => serde_json::from_slice(&bytes)
            .unwrap_or_else(|err| unreadable(format!("unreadable {}: {err}", file.display()))),
    }
}

fn unreadable(label: String) -> StatusFile {
    StatusFile::Installing {
        step: 0,
        steps: 0,
        label,
        started_at: unix_now(),
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn wire(state: &StatusFile) -> ModelSetup {
    match state {
        StatusFile::Ready => ModelSetup::Ready,
        StatusFile::Installing {
            step,
            steps,
            label,
            started_at,
        } => ModelSetup::Installing {
            step: *step,
            steps: *steps,
            label: label.clone(),
            elapsed_secs: unix_now().saturating_sub(*started_at),
        },
        StatusFile::Failed { reason } => ModelSetup::Failed {
            reason: reason.clone(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, json: &str) {
        std::fs::write(path, json).expect("write the status file");
    }

    #[test]
    fn no_file_is_ready() {
        let dir = tempfile::tempdir().expect("temp dir");
        assert_eq!(SetupWatch::new(None).now(), ModelSetup::Ready);
        let absent = SetupWatch::new(Some(dir.path().join("none.json")));
        assert_eq!(absent.now(), ModelSetup::Ready);
    }

    #[test]
    fn installing_reports_its_step_and_time_so_far() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("setup.json");
        let started = unix_now() - 240;
        write(
            &path,
            &format!(
                r#"{{"state":"installing","step":2,"steps":3,"label":"Building llama.cpp","started_at":{started}}}"#
            ),
        );
        let ModelSetup::Installing {
            step,
            steps,
            label,
            elapsed_secs,
        } = SetupWatch::new(Some(path)).now()
        else {
            panic!("expected installing");
        };
        assert_eq!((step, steps, label.as_str()), (2, 3, "Building llama.cpp"));
        assert!((240..250).contains(&elapsed_secs), "{elapsed_secs}");
    }

    #[test]
    fn a_broken_file_keeps_replies_waiting_and_says_why() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("setup.json");
        write(&path, "{not json");
        let setup = SetupWatch::new(Some(path));
        assert!(
            matches!(setup.now(), ModelSetup::Installing { ref label, .. } if label.contains("unreadable")),
            "{:?}",
            setup.now()
        );
    }

    #[tokio::test]
    async fn replies_wait_until_the_file_says_ready_or_failed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("setup.json");
        write(
            &path,
            r#"{"state":"installing","step":1,"steps":3,"label":"x","started_at":0}"#,
        );
        let setup = SetupWatch::new(Some(path.clone()));
        let stop = CancellationToken::new();
        let follower = tokio::spawn(setup.clone().follow(stop.clone()));
        let waiting = tokio::spawn({
            let setup = setup.clone();
            async move { setup.ready().await }
        });
        // Still installing: the waiter has not finished.
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        write(&path, r#"{"state":"failed","reason":"no compiler"}"#);
        let outcome = waiting.await.expect("waiter");
        assert_eq!(outcome, Err("no compiler".to_owned()));
        write(&path, r#"{"state":"ready"}"#);
        let mut changes = setup.state.subscribe();
        changes
            .wait_for(|s| *s == StatusFile::Ready)
            .await
            .expect("ready");
        assert_eq!(setup.ready().await, Ok(()));
        stop.cancel();
        follower.await.expect("follower stops");
    }
}
