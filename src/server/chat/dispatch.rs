//! What a client frame means, once for every transport.
//!
//! [`ChatService::handle`] takes a parsed [`ClientFrame`] and answers with
//! an [`Answer`] (what to write and what to follow) or a [`Refused`] (the
//! `error` frame). A transport only parses, delivers and writes: the
//! WebSocket writes the answer and keeps its subscriptions, the HTTP
//! transport turns it into an event stream or a JSON body.

use std::time::Instant;

use super::{error::Refused, Accepted, ChatError, ChatService, Subscription};
use crate::{
    protocol::{ClientFrame, ConversationId, ServerFrame, UserId},
    server::access::address::AddrKey,
};

/// What the transport does with a frame the chat core took.
#[derive(Debug)]
pub enum Answer {
    /// Nothing to write (`stop`, `select_alternative`: its `snapshot`
    /// reaches the views that follow the conversation).
    Nothing,
    /// One frame for this client only (`pong`, `conversations`, the
    /// `accepted` of an assistant message's `edit`).
    Frame(ServerFrame),
    /// `accepted`, then the reply's events (`send`, `regenerate`,
    /// `continue`, a user message's `edit`). A stream
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
    /// Applies one client frame of `user`, sent from `from`, received at
    /// `received` (reply timings are measured from it). A frame that starts
    /// a reply counts against the address's rate too, over every identity
    /// the address holds. A refusal names the `client_msg_id` and the
    /// conversation the frame named.
    pub async fn handle(
        &self,
        user: &UserId,
        from: AddrKey,
        frame: ClientFrame,
        received: Instant,
    ) -> Result<Answer, Refused> {
        let client_msg_id = frame.client_msg_id().cloned();
        let conversation_id = frame.conversation_id().cloned();
        let answer = async {
            // A frame that starts a reply is the one that carries an
            // idempotency key.
            if client_msg_id.is_some() {
                self.check_address_rate(from)?;
            }
            self.answer(user, frame, received).await
        }
        .await;
        answer.map_err(|err| err.refusing(client_msg_id, conversation_id))
    }

    async fn answer(
        &self,
        user: &UserId,
        frame: ClientFrame,
        received: Instant,
    ) -> Result<Answer, ChatError> {
        Ok(match frame {
            ClientFrame::Send {
                client_msg_id,
                conversation_id,
                text,
                persona,
                greeting,
                model,
            } => Answer::Accepted(
                self.send(
                    user,
                    client_msg_id,
                    conversation_id,
                    text,
                    (persona, greeting, model),
                    received,
                )
                .await?,
            ),
            ClientFrame::Regenerate {
                conversation_id,
                client_msg_id,
            } => Answer::Accepted(
                self.regenerate(user, conversation_id, client_msg_id, received)
                    .await?,
            ),
            ClientFrame::Continue {
                conversation_id,
                client_msg_id,
            } => Answer::Accepted(
                self.continue_reply(user, conversation_id, client_msg_id, received)
                    .await?,
            ),
            ClientFrame::Edit {
                conversation_id,
                client_msg_id,
                message_id,
                text,
            } => {
                let request = super::branches::EditRequest {
                    conversation_id,
                    client_msg_id,
                    message_id,
                    text,
                };
                self.edit(user, request, received).await?
            }
            ClientFrame::SelectAlternative {
                conversation_id,
                message_id,
                index,
            } => {
                self.select_alternative(user, &conversation_id, &message_id, index)
                    .await?;
                Answer::Nothing
            }
            ClientFrame::DeleteMessage {
                conversation_id,
                message_id,
            } => {
                self.delete_message(user, &conversation_id, &message_id)
                    .await?;
                Answer::Nothing
            }
            ClientFrame::Subscribe { conversation_id } => {
                let (snapshot, subscription) = self.subscribe(user, &conversation_id).await?;
                Answer::Subscribed {
                    snapshot,
                    subscription,
                }
            }
            ClientFrame::Unsubscribe { conversation_id } => Answer::Unfollow {
                conversation_id,
                then: None,
            },
            ClientFrame::Stop { conversation_id } => {
                self.stop(user, &conversation_id).await?;
                Answer::Nothing
            }
            ClientFrame::Ping { nonce } => Answer::Frame(ServerFrame::Pong { nonce }),
            ClientFrame::ListConversations { query } => {
                Answer::Frame(self.conversations(user, query).await?)
            }
            ClientFrame::RenameConversation {
                conversation_id,
                title,
            } => Answer::Frame(self.rename(user, &conversation_id, &title).await?),
            ClientFrame::SetModel {
                conversation_id,
                model,
            } => Answer::Frame(self.set_model(user, &conversation_id, model).await?),
            ClientFrame::DeleteConversation { conversation_id } => {
                let list = self.delete(user, &conversation_id).await?;
                Answer::Unfollow {
                    conversation_id,
                    then: Some(list),
                }
            }
            ClientFrame::History {
                conversation_id,
                before,
                limit,
            } => Answer::Frame(
                self.history_page(user, &conversation_id, before, limit)
                    .await?,
            ),
        })
    }
}
