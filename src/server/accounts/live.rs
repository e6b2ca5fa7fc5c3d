//! The streams (sockets, event streams) open under each session, so that
//! signing a session out closes them at once: each stream holds a
//! [`Watch`] whose token [`LiveSessions::revoke`] cancels.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use tokio_util::sync::CancellationToken;

#[derive(Debug)]
struct Entry {
    token: CancellationToken,
    streams: usize,
}

/// Open streams by session (its public id).
#[derive(Debug, Default)]
pub struct LiveSessions {
    sessions: Mutex<HashMap<String, Entry>>,
}

/// Held by a stream: cancelled when its session is signed out.
#[derive(Debug)]
pub struct Watch {
    token: CancellationToken,
    session: Option<(Arc<LiveSessions>, String)>,
}

impl Watch {
    /// Resolves when the session is signed out.
    pub async fn revoked(&self) {
        self.token.cancelled().await;
    }

    pub fn is_revoked(&self) -> bool {
        self.token.is_cancelled()
    }
}

/// Resolves when the stream's session is signed out; never for a stream
/// without one (a guest, a proxy's user).
pub async fn signed_out(session: Option<&Watch>) {
    match session {
        Some(watch) => watch.revoked().await,
        None => std::future::pending().await,
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Some((live, id)) = self.session.take() {
            let mut sessions = live.sessions.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(entry) = sessions.get_mut(&id) {
                entry.streams -= 1;
                if entry.streams == 0 {
                    sessions.remove(&id);
                }
            }
        }
    }
}

impl LiveSessions {
    /// A watch for a new stream of session `public_id`.
    pub fn watch(self: &Arc<Self>, public_id: &str) -> Watch {
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let entry = sessions
            .entry(public_id.to_owned())
            .or_insert_with(|| Entry {
                token: CancellationToken::new(),
                streams: 0,
            });
        entry.streams += 1;
        Watch {
            token: entry.token.clone(),
            session: Some((self.clone(), public_id.to_owned())),
        }
    }

    /// Closes every stream of these sessions; returns how many sessions had some.
    pub fn revoke<'a>(&self, public_ids: impl IntoIterator<Item = &'a str>) -> usize {
        let sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let mut closed = 0;
        for id in public_ids {
            if let Some(entry) = sessions.get(id) {
                entry.token.cancel();
                closed += 1;
            }
        }
        if closed > 0 {
            tracing::info!(
                sessions = closed,
                "closing the streams of signed-out sessions"
            );
        }
        closed
    }

    /// Sessions with open streams (for tests and metrics).
    pub fn open_sessions(&self) -> usize {
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revoking_cancels_every_stream_of_that_session_only() {
        let live = Arc::new(LiveSessions::default());
        let (a1, a2, b) = (live.watch("a"), live.watch("a"), live.watch("b"));
        assert_eq!(live.revoke(["a"]), 1);
        assert!(a1.is_revoked() && a2.is_revoked());
        assert!(!b.is_revoked());
        drop((a1, a2));
        assert_eq!(live.open_sessions(), 1, "entries go with their last stream");
        drop(b);
        assert_eq!(live.open_sessions(), 0);
    }
}
