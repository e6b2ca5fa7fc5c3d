//! The chat core's access to live state, alone or shared with other
//! instances (cluster mode): reserving a reply slot (and the cluster's
//! lease), subscribing with a consistent snapshot, stopping a reply
//! wherever it runs, and the per-user rate limit.

use std::time::Instant;

use super::{hub::EventRx, ChatError, ChatService};
use crate::{
    protocol::{ConversationId, StreamingMessage, UserId},
    server::{chat::hub::Reservation, store::ReplyRun},
};

impl ChatService {
    /// Takes the conversation's reply slot for `run`: this instance's, and
    /// in cluster mode the cluster's lease (after following the
    /// conversation, so this instance sees its own reply's records).
    pub(super) async fn reserve(
        &self,
        conversation_id: &ConversationId,
        user: &UserId,
        run: &ReplyRun,
    ) -> Result<Reservation, ChatError> {
        let reservation = self
            .hub
            .reserve(conversation_id, user)
            .map_err(|_| ChatError::Busy)?;
        if let Some(cluster) = &self.cluster {
            cluster.follow(reservation.conversation()).await?;
            match cluster.acquire(conversation_id, run).await? {
                Some(lease) => reservation.conversation().hold_lease(lease),
                // Dropping the reservation frees this instance's slot.
                None => return Err(ChatError::Busy),
            }
        }
        Ok(reservation)
    }

    /// A subscription to the conversation and, consistent with it, the
    /// reply in progress (on any instance, in cluster mode).
    pub(super) async fn subscribe_live(
        &self,
        conversation_id: &ConversationId,
        user: &UserId,
    ) -> Result<(EventRx, Option<StreamingMessage>), ChatError> {
        let (live, events, streaming) = self.hub.subscribe(conversation_id, user);
        let Some(cluster) = &self.cluster else {
            return Ok((events, streaming));
        };
        // `events` keeps the conversation live while it is being followed;
        // the subscription handed out is taken once the mirror is loaded.
        let followed = cluster.follow(&live).await;
        let (fresh, streaming) = live.subscribe();
        drop(events);
        match followed {
            Ok(()) => Ok((fresh, streaming)),
            Err(err) => {
                drop(fresh);
                self.hub.release_if_idle(conversation_id);
                Err(err.into())
            }
        }
    }

    /// The reply in progress without following the conversation (the
    /// server-rendered page).
    pub(super) async fn streaming_now(
        &self,
        conversation_id: &ConversationId,
    ) -> Result<Option<StreamingMessage>, ChatError> {
        let here = self
            .hub
            .get(conversation_id)
            .and_then(|live| live.streaming());
        match &self.cluster {
            Some(cluster) if here.is_none() => Ok(cluster.peek(conversation_id).await?),
            _ => Ok(here),
        }
    }

    /// Cancels the conversation's reply here or, in cluster mode, on the
    /// instance running it; `false` if none runs.
    pub(super) async fn stop_anywhere(
        &self,
        conversation_id: &ConversationId,
    ) -> Result<bool, ChatError> {
        if self
            .hub
            .get(conversation_id)
            .is_some_and(|live| live.stop())
        {
            return Ok(true);
        }
        match &self.cluster {
            Some(cluster) => Ok(cluster.stop_remote(conversation_id).await?),
            None => Ok(false),
        }
    }

    /// The user's rate limit (`RATE_BURST`, `RATE_PER_SEC`), over every
    /// instance in cluster mode; then, when the server meters, the user's
    /// quota (which counts the message).
    pub(super) async fn check_rate(&self, user: &UserId) -> Result<(), ChatError> {
        let verdict = match &self.cluster {
            Some(cluster) => {
                let limits = &self.config.limits;
                cluster
                    .take_token(user, limits.rate_burst, limits.rate_per_sec)
                    .await?
            }
            None => self.rate.check(user, Instant::now()),
        };
        verdict.map_err(|wait| ChatError::RateLimited {
            retry_after_ms: wait.as_millis().max(1) as u64,
        })?;
        match &self.meter {
            Some(meter) => meter.admit(user).await.map_err(ChatError::QuotaExceeded),
            None => Ok(()),
        }
    }
}
