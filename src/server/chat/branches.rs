//! Swipes and branches: `edit`, `select_alternative` and `delete_message`.
//!
//! A conversation is a tree: `regenerate` adds another reply to the same
//! user message (a swipe), `edit` another version of a message (a branch
//! from that point). One alternative of each turn is chosen, and the chosen
//! path is what views show and what prompts are built from. Every change
//! takes the conversation's reply slot first, so it is `busy` while a reply
//! streams and never races one (on any instance: in cluster mode the slot
//! is the cluster's lease), and is shown to every open view of the
//! conversation as a fresh `snapshot`. Edits carry an idempotency key like
//! `send`; choosing an alternative is idempotent by itself.

use std::time::Instant;

use super::{
    dispatch::Answer, hub::Reservation, window::Window, ChatError, ChatService, NewReply,
    ReplyStart, Rerun,
};
use crate::{
    protocol::{
        ClientMsgId, ConversationId, MessageId, Role, ServerFrame, StreamingMessage, UserId,
    },
    server::store::{
        EditOutcome, NewUserMessage, ReplyEdit, ReplyRun, SendOutcome, StoreError, Target,
    },
};

/// What an `edit` asks for.
pub(super) struct EditRequest {
    pub conversation_id: ConversationId,
    pub client_msg_id: ClientMsgId,
    pub message_id: MessageId,
    pub text: String,
}

impl ChatService {
    /// `edit`: a new version of a message shown in the conversation. A
    /// user message's is answered by a new reply; an assistant message's
    /// is stored as it is.
    pub(super) async fn edit(
        &self,
        user: &UserId,
        request: EditRequest,
        received: Instant,
    ) -> Result<Answer, ChatError> {
        super::continuation::check_client_msg_id(&request.client_msg_id)?;
        let text = self.validate_text(request.text)?;
        let EditRequest {
            conversation_id,
            client_msg_id,
            message_id,
            ..
        } = request;
        let (record, reservation, run) = match self
            .admit_rerun(user, &conversation_id, &client_msg_id)
            .await?
        {
            Rerun::Duplicate(accepted) => return Ok(Answer::Accepted(accepted)),
            Rerun::Admitted(record, reservation, run) => (record, reservation, run),
        };
        let shown = self.store.messages(&conversation_id).await?;
        let edited = shown.iter().find(|m| m.id == message_id).ok_or_else(|| {
            ChatError::BadRequest(format!(
                "message {message_id} is not shown in this conversation: only a message of \
                 the path shown can be edited"
            ))
        })?;
        if edited.role == Role::Assistant {
            return self
                .edit_reply(
                    user,
                    reservation,
                    ReplyEdit {
                        user_id: user.clone(),
                        client_msg_id,
                        conversation: conversation_id,
                        of: message_id,
                        text,
                    },
                )
                .await;
        }
        let stored = self
            .store
            .add_user_message(NewUserMessage {
                user_id: user.clone(),
                client_msg_id: client_msg_id.clone(),
                target: Target::Existing(conversation_id.clone()),
                text,
                history: self.config.limits.history_messages,
                run: run.clone(),
                replaces: Some(message_id),
            })
            .await?;
        let (message, reply, history) = match stored {
            SendOutcome::Stored {
                message,
                reply,
                history,
                ..
            } => (message, reply, history),
            // Stored by a concurrent edit with the same key, after our check.
            SendOutcome::Duplicate { .. } => {
                drop(reservation);
                return self
                    .duplicate_or(user, &client_msg_id, ChatError::Busy)
                    .await
                    .map(Answer::Accepted);
            }
        };
        let streaming = StreamingMessage {
            message: reply.clone(),
            next_index: 0,
        };
        let shown = self.window(&conversation_id, Some(&streaming)).await?;
        let accepted = self
            .accepted(
                user,
                client_msg_id.clone(),
                conversation_id,
                message.id,
                false,
            )
            .await?;
        let reply = NewReply {
            user: user.clone(),
            client_msg_id,
            run,
            received,
            assistant: reply,
            history,
            model: self.model_of(&record),
            shown: Some(shown),
        };
        let prompt = self.companions.prompt_source(user, &record.persona).await;
        self.start_reply(reservation, prompt, reply, ReplyStart::Replace);
        self.metrics.message_accepted();
        Ok(Answer::Accepted(accepted))
    }

    /// An assistant message's edit: stored, then shown to every view.
    async fn edit_reply(
        &self,
        user: &UserId,
        reservation: Reservation,
        edit: ReplyEdit,
    ) -> Result<Answer, ChatError> {
        let client_msg_id = edit.client_msg_id.clone();
        let conversation_id = edit.conversation.clone();
        match self.store.edit_reply(edit).await? {
            EditOutcome::Stored(message) => {
                self.show_path(&reservation, &conversation_id).await?;
                Ok(Answer::Frame(ServerFrame::Accepted {
                    client_msg_id,
                    conversation_id,
                    message_id: message.id,
                    duplicate: false,
                }))
            }
            EditOutcome::Duplicate { .. } => {
                drop(reservation);
                self.duplicate_or(user, &client_msg_id, ChatError::Busy)
                    .await
                    .map(Answer::Accepted)
            }
        }
    }

    /// `select_alternative`: the conversation goes on from alternative
    /// `index` of the turn of `message_id`; every view is shown the path.
    pub(super) async fn select_alternative(
        &self,
        user: &UserId,
        conversation_id: &ConversationId,
        message_id: &MessageId,
        index: u32,
    ) -> Result<(), ChatError> {
        let chosen = self
            .store
            .select_alternative(conversation_id, message_id, index);
        self.change_path(user, conversation_id, chosen, || {
            format!(
                "message {message_id} of this conversation has no alternative {index} \
                 (they are numbered from 0)"
            )
        })
        .await?;
        tracing::debug!(conversation_id = %conversation_id, message_id = %message_id, index, "alternative chosen");
        Ok(())
    }

    /// `delete_message`: the message and everything after it go; every
    /// view is shown the path.
    pub(super) async fn delete_message(
        &self,
        user: &UserId,
        conversation_id: &ConversationId,
        message_id: &MessageId,
    ) -> Result<(), ChatError> {
        let deleted = self.store.delete_message(conversation_id, message_id);
        self.change_path(user, conversation_id, deleted, || {
            format!("message {message_id} is not a message of this conversation")
        })
        .await?;
        tracing::info!(conversation_id = %conversation_id, message_id = %message_id, "message deleted with what follows it");
        Ok(())
    }

    /// Runs `change` (a store write that changes the path shown) with the
    /// conversation's slot held, then shows every view the path. Its
    /// `NotFound` is `bad_request` saying `unknown()`.
    async fn change_path(
        &self,
        user: &UserId,
        conversation_id: &ConversationId,
        change: impl std::future::Future<Output = Result<(), StoreError>>,
        unknown: impl FnOnce() -> String,
    ) -> Result<(), ChatError> {
        self.owned(user, conversation_id).await?;
        let run = ReplyRun::new(&self.instance);
        let reservation = self.reserve(conversation_id, user, &run).await?;
        reservation.conversation().forget_prompt_window();
        match change.await {
            Ok(()) => self.show_path(&reservation, conversation_id).await,
            Err(StoreError::NotFound) => Err(ChatError::BadRequest(unknown())),
            Err(err) => Err(err.into()),
        }
    }

    /// Publishes a `snapshot` of the path the conversation shows now to
    /// every view of it, while its slot is held.
    async fn show_path(
        &self,
        reservation: &Reservation,
        conversation_id: &ConversationId,
    ) -> Result<(), ChatError> {
        let Window { messages, has_more } = self.window(conversation_id, None).await?;
        reservation.conversation().publish(&ServerFrame::Snapshot {
            conversation_id: conversation_id.clone(),
            messages,
            streaming: None,
            has_more,
        });
        Ok(())
    }
}
