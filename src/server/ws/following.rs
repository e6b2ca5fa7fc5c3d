//! The conversations one socket follows, at most
//! `MAX_SUBSCRIPTIONS_PER_SOCKET` of them.
//!
//! Following one more (a `subscribe`, or the automatic follow of a `send`,
//! `regenerate` or `continue`) past the cap stops following the one used
//! longest ago, and says which so the caller can tell the hub. A tab that
//! opens or starts many conversations is never refused and never holds
//! more than the cap: each followed conversation keeps its live state and
//! event buffer in the hub.

use std::{
    collections::VecDeque,
    pin::Pin,
    task::{Context, Poll},
};

use futures::Stream;
use tokio_stream::{
    wrappers::{errors::BroadcastStreamRecvError, BroadcastStream},
    StreamMap,
};

use crate::{
    protocol::ConversationId,
    server::chat::{hub::Event, Subscription},
};

/// The followed conversations' event streams, and the order they were used in.
pub struct Following {
    streams: StreamMap<ConversationId, BroadcastStream<Event>>,
    /// Least recently used first.
    used: VecDeque<ConversationId>,
    max: usize,
}

impl Following {
    pub fn new(max: usize) -> Self {
        Self {
            streams: StreamMap::new(),
            used: VecDeque::new(),
            max: max.max(1),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }

    /// Follows a conversation from a snapshot: any older stream of it is
    /// replaced, since the snapshot is the new starting point. Returns the
    /// conversation no longer followed to make room, if any.
    pub fn follow(&mut self, subscription: Subscription) -> Option<ConversationId> {
        let Subscription {
            conversation_id,
            events,
        } = subscription;
        let evicted = self.make_room(&conversation_id);
        self.touch(&conversation_id);
        self.streams
            .insert(conversation_id, BroadcastStream::new(events));
        evicted
    }

    /// Follows a conversation a reply just started in. A stream of it
    /// already followed is kept: it holds every event not yet written.
    pub fn follow_keeping(&mut self, subscription: Subscription) -> Option<ConversationId> {
        if self.streams.contains_key(&subscription.conversation_id) {
            self.touch(&subscription.conversation_id);
            return None;
        }
        self.follow(subscription)
    }

    /// Stops following; whether it was followed.
    pub fn remove(&mut self, conversation_id: &ConversationId) -> bool {
        self.used.retain(|id| id != conversation_id);
        self.streams.remove(conversation_id).is_some()
    }

    /// Stops following everything; what was followed.
    pub fn clear(&mut self) -> Vec<ConversationId> {
        self.streams.clear();
        self.used.drain(..).collect()
    }

    /// Marks `conversation_id` as the most recently used.
    fn touch(&mut self, conversation_id: &ConversationId) {
        self.used.retain(|id| id != conversation_id);
        self.used.push_back(conversation_id.clone());
    }

    /// Before following `conversation_id`: at the cap, the least recently
    /// used other conversation is dropped and returned.
    fn make_room(&mut self, conversation_id: &ConversationId) -> Option<ConversationId> {
        if self.streams.contains_key(conversation_id) || self.streams.len() < self.max {
            return None;
        }
        let oldest = self.used.pop_front()?;
        self.streams.remove(&oldest);
        Some(oldest)
    }
}

impl Stream for Following {
    type Item = (ConversationId, Result<Event, BroadcastStreamRecvError>);

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.streams).poll_next(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::broadcast;

    use super::*;

    fn sub(id: &str) -> Subscription {
        let (_tx, events) = broadcast::channel(1);
        Subscription {
            conversation_id: id.into(),
            events,
        }
    }

    #[test]
    fn past_the_cap_the_least_recently_used_is_dropped() {
        let mut following = Following::new(2);
        assert_eq!(following.follow(sub("a")), None);
        assert_eq!(following.follow_keeping(sub("b")), None);
        // Using `a` again makes `b` the oldest.
        assert_eq!(following.follow_keeping(sub("a")), None);
        assert_eq!(following.follow_keeping(sub("c")), Some("b".into()));
        assert_eq!(following.follow(sub("d")), Some("a".into()));
        // Following again what is followed makes no room.
        assert_eq!(following.follow(sub("d")), None);
        assert!(!following.remove(&"a".into()));
        assert!(following.remove(&"c".into()));
        let mut left = following.clear();
        left.sort_by(|x, y| x.as_str().cmp(y.as_str()));
        assert_eq!(left, vec![ConversationId::from("d")]);
        assert!(following.is_empty());
    }
}
