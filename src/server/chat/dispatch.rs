//! What a client frame means, once for every transport.
//!
//! [`ChatService::handle`] takes a parsed [`ClientFrame`] and answers with
//! an [`Answer`] (what to write and what to follow) or a [`Refused`] (the
//! `error` frame). A transport only parses, delivers and writes: the
//! WebSocket writes the answer and keeps its subscriptions, the HTTP
//! transport turns it into an event stream or a JSON body.

use std::{future::Future, time::Instant};

use super::{
    error::{ChatError, Refused},
    Accepted, ChatService, Subscription,
};
use crate::{
    protocol::{ClientFrame, ConversationId, ServerFrame, UserId},
    server::access::address::AddrKey,
};

/// What the transport does with a frame the chat core took.
#[derive(Debug)]
pub enum Answer {
    /// Nothing to write (`stop`).
    Nothing,
    /// One frame for this client only (`pong`, `conversations`).
    Frame(ServerFrame),
    /// `accepted`, then the reply's events (`send`, `regenerate`). A stream
    /// of this conversation the transport already follows is kept: it
    /// holds every event not yet written.
    Accepted(Accepted),
    /// A `snapshot`, then the conversation's events from there; any older
    /// stream of it is replaced (`subscribe`).
    Subscribed {
        snapshot: ServerFrame,
        subscription: Subscription,
    },
    /// Stop following the conversation, then write `then` if there is one
    /// (`unsubscribe`, and `delete_conversation` with the fresh list).
    Unfollow {
        conversation_id: ConversationId,
        then: Option<ServerFrame>,
    },
}

impl ChatService {
    /// Applies one client frame of `user`, sent from `from` (frames that
    /// start a reply count against the address's rate too), received at
    /// `received` (reply timings are measured from it).
    pub async fn handle(
        &self,
        user: &UserId,
        from: AddrKey,
        frame: ClientFrame,
        received: Instant,
    ) -> Result<Answer, Refused> {
        match frame {
            ClientFrame::Send {
                client_msg_id,
                conversation_id,
                text,
                persona,
            } => self
                .within_address_rate(
                    from,
                    self.send(
                        user,
                        client_msg_id.clone(),
                        conversation_id.clone(),
                        text,
                        persona,
                        received,
                    ),
                )
                .await
                .map(Answer::Accepted)
                .map_err(|err| err.refusing(Some(client_msg_id), conversation_id)),
            ClientFrame::Regenerate {
                conversation_id,
                client_msg_id,
            } => self
                .within_address_rate(
                    from,
                    self.regenerate(
                        user,
                        conversation_id.clone(),
                        client_msg_id.clone(),
                        received,
                    ),
                )
                .await
                .map(Answer::Accepted)
                .map_err(|err| err.refusing(Some(client_msg_id), Some(conversation_id))),
            ClientFrame::Subscribe { conversation_id } => {
                match self.subscribe(user, &conversation_id).await {
                    Ok((snapshot, subscription)) => Ok(Answer::Subscribed {
                        snapshot,
                        subscription,
                    }),
                    Err(err) => Err(err.refusing(None, Some(conversation_id))),
                }
            }
            ClientFrame::Unsubscribe { conversation_id } => Ok(Answer::Unfollow {
                conversation_id,
                then: None,
            }),
            ClientFrame::Stop { conversation_id } => {
                match self.stop(user, &conversation_id).await {
                    Ok(_) => Ok(Answer::Nothing),
                    Err(err) => Err(err.refusing(None, Some(conversation_id))),
                }
            }
            ClientFrame::Ping { nonce } => Ok(Answer::Frame(ServerFrame::Pong { nonce })),
            ClientFrame::ListConversations { query } => self
                .conversations(user, query)
                .await
                .map(Answer::Frame)
                .map_err(|err| err.refusing(None, None)),
            ClientFrame::RenameConversation {
                conversation_id,
                title,
            } => match self.rename(user, &conversation_id, &title).await {
                Ok(list) => Ok(Answer::Frame(list)),
                Err(err) => Err(err.refusing(None, Some(conversation_id))),
            },
            ClientFrame::DeleteConversation { conversation_id } => {
                match self.delete(user, &conversation_id).await {
                    Ok(list) => Ok(Answer::Unfollow {
                        conversation_id,
                        then: Some(list),
                    }),
                    Err(err) => Err(err.refusing(None, Some(conversation_id))),
                }
            }
        }
    }

    /// `reply` (a frame that starts a model call), unless `from` already
    /// started too many: the per-address budget holds over every identity
    /// an address mints.
    async fn within_address_rate<T>(
        &self,
        from: AddrKey,
        reply: impl Future<Output = Result<T, ChatError>>,
    ) -> Result<T, ChatError> {
        self.check_address_rate(from)?;
        reply.await
    }
}
