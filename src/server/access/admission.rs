//! How many streams may be open: the server's `MAX_CONNECTIONS` and each
//! user's `MAX_SOCKETS_PER_USER`, counted alike for WebSockets and HTTP
//! event streams.
//!
//! [`Admission::admit`] hands out one [`StreamPermit`] per open stream; the
//! permit holds both places and frees them when dropped, so no path can
//! forget to give one back. A refusal is a [`Crowded`], whose text is
//! written here once for both transports.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::protocol::{ErrorCode, ServerFrame, UserId};

/// The server's and every user's open streams.
#[derive(Debug)]
pub struct Admission {
    server: Arc<Semaphore>,
    users: Arc<UserStreams>,
}

/// What an open stream holds: one of the server's places and one of its
/// user's. Dropping it frees both.
#[derive(Debug)]
pub struct StreamPermit {
    _server: OwnedSemaphorePermit,
    _user: UserSlot,
}

/// Why a stream was not admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Crowded {
    /// The server holds `MAX_CONNECTIONS` streams.
    Server,
    /// The user holds `max` streams already.
    User { max: usize },
}

impl Crowded {
    /// The reason, as both transports say it.
    pub fn reason(self) -> String {
        match self {
            Crowded::Server => "the server holds its maximum number of connections".to_owned(),
            Crowded::User { max } => {
                format!("too many open connections for this user (at most {max}); close a tab")
            }
        }
    }

    /// The `error` frame: `busy` for the server, `rate_limited` for the user.
    pub fn to_frame(self) -> ServerFrame {
        let code = match self {
            Crowded::Server => ErrorCode::Busy,
            Crowded::User { .. } => ErrorCode::RateLimited,
        };
        ServerFrame::error(code, self.reason())
    }
}

impl Admission {
    pub fn new(max_connections: usize, max_per_user: usize) -> Self {
        Self {
            server: Arc::new(Semaphore::new(max_connections)),
            users: Arc::new(UserStreams {
                max_per_user,
                open: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// A place for one more stream of `user`: the server's first, then the user's.
    pub fn admit(&self, user: &UserId) -> Result<StreamPermit, Crowded> {
        let server = self
            .server
            .clone()
            .try_acquire_owned()
            .map_err(|_| Crowded::Server)?;
        let user = self.users.open(user).ok_or(Crowded::User {
            max: self.users.max_per_user,
        })?;
        Ok(StreamPermit {
            _server: server,
            _user: user,
        })
    }
}

/// Counts open streams per user.
#[derive(Debug)]
struct UserStreams {
    max_per_user: usize,
    open: Mutex<HashMap<UserId, usize>>,
}

/// Holds one of a user's stream slots; frees it on drop.
#[derive(Debug)]
struct UserSlot {
    streams: Arc<UserStreams>,
    user: UserId,
}

impl UserStreams {
    /// A slot for `user`, or `None` when the user already has the maximum.
    fn open(self: &Arc<Self>, user: &UserId) -> Option<UserSlot> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(user.clone()).or_insert(0);
        if *count >= self.max_per_user {
            if *count == 0 {
                open.remove(user);
            }
            return None;
        }
        *count += 1;
        Some(UserSlot {
            streams: self.clone(),
            user: user.clone(),
        })
    }
}

impl Drop for UserSlot {
    fn drop(&mut self) {
        let mut open = self.streams.open.lock().unwrap_or_else(|p| p.into_inner());
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
    fn socket_slots_are_counted_and_freed() {
        let admission = Admission::new(10, 2);
        let user: UserId = "u".into();
        let a = admission.admit(&user).expect("first");
        let _b = admission.admit(&user).expect("second");
        assert_eq!(admission.admit(&user).err(), Some(Crowded::User { max: 2 }));
        drop(a);
        assert!(admission.admit(&user).is_ok());
    }

    #[test]
    fn the_server_cap_holds_across_users_and_frees_on_drop() {
        let admission = Admission::new(2, 5);
        let a = admission.admit(&"a".into()).expect("first");
        let _b = admission.admit(&"b".into()).expect("second");
        assert_eq!(admission.admit(&"c".into()).err(), Some(Crowded::Server));
        drop(a);
        assert!(admission.admit(&"c".into()).is_ok());
    }

    #[test]
    fn a_user_refused_leaves_no_server_place_taken() {
        let admission = Admission::new(2, 1);
        let _a = admission.admit(&"u".into()).expect("first");
        assert!(admission.admit(&"u".into()).is_err());
        assert!(
            admission.admit(&"v".into()).is_ok(),
            "the refusal freed its place"
        );
    }
}
