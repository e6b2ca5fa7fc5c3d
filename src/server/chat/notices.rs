//! Notices to every socket of a user that something of theirs changed
//! outside any one conversation: their companions, their list of
//! conversations. Other tabs and devices refetch what changed, so a
//! companion made, a conversation renamed or its model changed in one tab
//! shows in the others at once.
//!
//! One bounded broadcast channel per user with an open socket, dropped
//! with its last socket. In cluster mode a notice goes through Redis (one
//! channel every instance listens to, `cluster::keys::USERS_CHANNEL`), so
//! the sockets on other instances get it too.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
};

use tokio::sync::broadcast;

use crate::protocol::{Changed, UserId};

/// Notices a socket may fall behind by before it is told everything changed.
const BUFFER: usize = 16;

/// The users' notice channels.
#[derive(Debug, Default)]
pub struct UserNotices {
    users: Mutex<HashMap<UserId, broadcast::Sender<Changed>>>,
}

impl UserNotices {
    fn lock(&self) -> MutexGuard<'_, HashMap<UserId, broadcast::Sender<Changed>>> {
        // Every update is one insert or remove: a panic cannot leave it half-done.
        self.users.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Follows `user`'s notices (one socket of theirs).
    pub fn subscribe(self: &Arc<Self>, user: &UserId) -> NoticeSubscription {
        let rx = self
            .lock()
            .entry(user.clone())
            .or_insert_with(|| broadcast::channel(BUFFER).0)
            .subscribe();
        NoticeSubscription {
            rx: Some(rx),
            user: user.clone(),
            notices: self.clone(),
        }
    }

    /// Tells this instance's sockets of `user` that `what` changed.
    pub fn notify(&self, user: &UserId, what: Changed) {
        if let Some(sender) = self.lock().get(user) {
            // No receiver left: nobody to tell.
            let _ = sender.send(what);
        }
    }
}

/// One socket's notices; its user's channel goes with the last one.
#[derive(Debug)]
pub struct NoticeSubscription {
    rx: Option<broadcast::Receiver<Changed>>,
    user: UserId,
    notices: Arc<UserNotices>,
}

impl NoticeSubscription {
    /// The next notices: one, or after falling behind, every kind.
    pub async fn recv(&mut self) -> Vec<Changed> {
        let Some(rx) = self.rx.as_mut() else {
            return std::future::pending().await;
        };
        match rx.recv().await {
            Ok(what) => vec![what],
            Err(broadcast::error::RecvError::Lagged(_)) => {
                vec![Changed::Companions, Changed::Conversations]
            }
            Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
        }
    }
}

impl Drop for NoticeSubscription {
    fn drop(&mut self) {
        drop(self.rx.take());
        let mut users = self.notices.lock();
        if users
            .get(&self.user)
            .is_some_and(|sender| sender.receiver_count() == 0)
        {
            users.remove(&self.user);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_socket_of_the_user_hears_and_the_channel_goes_with_the_last() {
        let notices = Arc::new(UserNotices::default());
        let (ann, bob): (UserId, UserId) = ("ann".into(), "bob".into());
        let mut a1 = notices.subscribe(&ann);
        let mut a2 = notices.subscribe(&ann);
        let b = notices.subscribe(&bob);
        notices.notify(&ann, Changed::Companions);
        assert_eq!(a1.recv().await, [Changed::Companions]);
        assert_eq!(a2.recv().await, [Changed::Companions]);
        drop((a1, a2));
        assert!(!notices.lock().contains_key(&ann));
        assert!(notices.lock().contains_key(&bob));
        drop(b);
        assert!(notices.lock().is_empty());
    }

    #[tokio::test]
    async fn a_socket_that_fell_behind_is_told_everything_changed() {
        let notices = Arc::new(UserNotices::default());
        let user: UserId = "ann".into();
        let mut slow = notices.subscribe(&user);
        for _ in 0..BUFFER + 1 {
            notices.notify(&user, Changed::Conversations);
        }
        assert_eq!(
            slow.recv().await,
            [Changed::Companions, Changed::Conversations]
        );
    }
}
