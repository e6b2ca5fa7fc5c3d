//! `continue`: more text for a reply that ended early.
//!
//! Only a conversation's last message can be continued, and only when it is
//! an assistant message with text whose finish reason is `error` (the
//! upstream failed or timed out, or the server died), `length` (the token
//! limit) or `stopped` (the user stopped it). The reply streams into the
//! same message: the text it starts from is the stored text, so snapshots,
//! checkpoints, the stored message and `done` are about the whole text,
//! never the continuation alone, and its deltas are numbered after that
//! text ([`first_delta_index`](super::hub::first_delta_index)).
//!
//! The model gets the history with the partial text as the last assistant
//! turn, then a user turn asking it to go on ([`CONTINUE_INSTRUCTION`]). A
//! user turn rather than a system one: chat templates that want user and
//! assistant turns to alternate (Mistral's, Gemma's) accept it. It is the
//! "continue nudge" of SillyTavern; sending the partial text as a bare
//! assistant prefill instead only works with providers that complete a
//! final assistant turn, which OpenAI's API does not.

use std::time::Instant;

use super::{reply::build_prompt, Accepted, ChatError, ChatService, NewReply, ReplyStart, Rerun};
use crate::{
    protocol::{ClientMsgId, ConversationId, FinishReason, Message, Role, UserId},
    server::{config::LimitsConfig, llm::PromptTurn},
};

/// What the model is asked after the partial reply. Never stored, never shown.
pub const CONTINUE_INSTRUCTION: &str =
    "Continue your last reply exactly where it stopped. Do not repeat any of it.";

/// A conversation whose last reply may be continued.
#[derive(Debug, PartialEq)]
pub(super) struct Continuable {
    /// The user message the reply answers.
    pub answers: Message,
    /// The reply, with its stored text and finish reason.
    pub reply: Message,
    /// The messages before the reply, oldest first.
    pub history: Vec<Message>,
}

/// Whether the last message of `messages` (a whole conversation, oldest
/// first) may be continued; the refusal says why not.
pub(super) fn continuable(mut messages: Vec<Message>) -> Result<Continuable, ChatError> {
    let bad = |why: &str| ChatError::BadRequest(why.to_owned());
    let reply = messages
        .pop()
        .ok_or_else(|| bad("there is no reply to continue"))?;
    if reply.role != Role::Assistant {
        return Err(bad(
            "the last message is not a reply: there is nothing to continue",
        ));
    }
    match reply.finish_reason {
        Some(FinishReason::Error | FinishReason::Length | FinishReason::Stopped) => {}
        Some(FinishReason::Stop) => return Err(bad("the last reply is complete")),
        // Still being written (its reply slot was taken a moment ago).
        None => return Err(ChatError::Busy),
    }
    if reply.content.is_empty() {
        return Err(bad(
            "the last reply has no text to continue: regenerate it instead",
        ));
    }
    let answers = messages
        .last()
        .filter(|m| m.role == Role::User)
        .cloned()
        .ok_or_else(|| bad("the last reply answers no message"))?;
    Ok(Continuable {
        answers,
        reply,
        history: messages,
    })
}

/// The prompt of a continued reply: the persona's prompt and the history
/// as for any reply, with the partial text as the last assistant turn (the
/// newest message, so always sent), then [`CONTINUE_INSTRUCTION`].
pub(super) fn prompt(
    system_prompt: &str,
    history: &[Message],
    partial: &Message,
    limits: &LimitsConfig,
) -> Vec<PromptTurn> {
    let mut prompt = build_prompt(
        system_prompt,
        history.iter().chain([partial]),
        limits.history_messages,
        limits.context_chars,
    );
    prompt.push(PromptTurn::Said(
        Role::User,
        CONTINUE_INSTRUCTION.to_owned(),
    ));
    prompt
}

impl ChatService {
    /// `continue`: stream more text into the conversation's last reply.
    pub async fn continue_reply(
        &self,
        user: &UserId,
        conversation_id: ConversationId,
        client_msg_id: ClientMsgId,
        received: Instant,
    ) -> Result<Accepted, ChatError> {
        check_client_msg_id(&client_msg_id)?;
        let (record, reservation, run) = match self
            .admit_rerun(user, &conversation_id, &client_msg_id)
            .await?
        {
            Rerun::Duplicate(accepted) => return Ok(accepted),
            Rerun::Admitted(record, reservation, run) => (record, reservation, run),
        };
        let Continuable {
            answers,
            reply,
            history,
        } = continuable(self.store.messages(&conversation_id).await?)?;
        self.store
            .record_client_message(user, &client_msg_id, &conversation_id, &answers.id)
            .await?;
        if let Some(was) = reply.finish_reason {
            self.store.reopen_assistant(&reply.id, was, &run).await?;
        }
        tracing::info!(
            conversation_id = %conversation_id,
            message_id = %reply.id,
            chars = reply.content.len(),
            "continuing a reply"
        );
        let accepted = self
            .accepted(
                user,
                client_msg_id.clone(),
                conversation_id,
                answers.id,
                false,
            )
            .await?;
        let reply = NewReply {
            user: user.clone(),
            client_msg_id,
            run,
            received,
            assistant: Message {
                finish_reason: None,
                ..reply
            },
            history,
            model: self.model_of(&record),
            shown: None,
        };
        let prompt = self.companions.prompt_source(user, &record.persona).await;
        self.start_reply(reservation, prompt, reply, ReplyStart::Continue);
        Ok(accepted)
    }
}

/// `client_msg_id` must be 1 to 128 characters.
pub(super) fn check_client_msg_id(client_msg_id: &ClientMsgId) -> Result<(), ChatError> {
    let len = client_msg_id.as_str().len();
    if len == 0 || len > 128 {
        return Err(ChatError::BadRequest(
            "client_msg_id must be 1 to 128 characters".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(id: &str, role: Role, content: &str, finish: Option<FinishReason>) -> Message {
        Message {
            id: id.into(),
            role,
            content: content.into(),
            created_at: String::new(),
            finish_reason: finish,
            alternatives: None,
            model: None,
        }
    }

    fn conversation(last: Message) -> Vec<Message> {
        vec![
            msg("u1", Role::User, "hi", None),
            msg("a1", Role::Assistant, "hello", Some(FinishReason::Stop)),
            msg("u2", Role::User, "tell me more", None),
            last,
        ]
    }

    fn refusal(messages: Vec<Message>) -> String {
        match continuable(messages) {
            Err(ChatError::BadRequest(why)) => why,
            other => panic!("expected bad_request, got {other:?}"),
        }
    }

    #[test]
    fn a_reply_that_ended_early_with_text_is_continuable() {
        for finish in [
            FinishReason::Error,
            FinishReason::Length,
            FinishReason::Stopped,
        ] {
            let reply = msg("a2", Role::Assistant, "Once upon", Some(finish));
            let found = continuable(conversation(reply.clone())).expect("continuable");
            assert_eq!(found.reply, reply);
            assert_eq!(found.answers.id, "u2".into());
            let ids: Vec<_> = found.history.iter().map(|m| m.id.as_str()).collect();
            assert_eq!(ids, ["u1", "a1", "u2"], "everything before the reply");
        }
    }

    #[test]
    fn complete_empty_user_and_missing_replies_are_refused_with_a_reason() {
        let complete = msg("a2", Role::Assistant, "The end.", Some(FinishReason::Stop));
        assert!(refusal(conversation(complete)).contains("complete"));
        let empty = msg("a2", Role::Assistant, "", Some(FinishReason::Error));
        assert!(refusal(conversation(empty)).contains("regenerate"));
        let user = msg("u3", Role::User, "and?", None);
        assert!(refusal(conversation(user)).contains("not a reply"));
        assert!(refusal(Vec::new()).contains("no reply"));
        let orphan = msg("a0", Role::Assistant, "Hi", Some(FinishReason::Error));
        assert!(refusal(vec![orphan]).contains("answers no message"));
    }

    #[test]
    fn a_reply_still_being_written_is_busy() {
        let streaming = msg("a2", Role::Assistant, "Once", None);
        assert!(matches!(
            continuable(conversation(streaming)),
            Err(ChatError::Busy)
        ));
    }

    #[test]
    fn the_prompt_ends_with_the_partial_reply_and_the_instruction() {
        let limits = LimitsConfig {
            history_messages: 3,
            ..LimitsConfig::default()
        };
        let history = &conversation(msg("x", Role::User, "", None))[..3];
        let partial = msg("a2", Role::Assistant, "Once upon", None);
        let prompt = prompt("sys", history, &partial, &limits);
        assert_eq!(
            prompt,
            vec![
                PromptTurn::System("sys".into()),
                PromptTurn::Said(Role::Assistant, "hello".into()),
                PromptTurn::Said(Role::User, "tell me more".into()),
                PromptTurn::Said(Role::Assistant, "Once upon".into()),
                PromptTurn::Said(Role::User, CONTINUE_INSTRUCTION.into()),
            ]
        );
    }

    #[test]
    fn client_msg_ids_are_1_to_128_characters() {
        assert!(check_client_msg_id(&"k".into()).is_ok());
        assert!(check_client_msg_id(&"k".repeat(128).into()).is_ok());
        assert!(check_client_msg_id(&"".into()).is_err());
        assert!(check_client_msg_id(&"k".repeat(129).into()).is_err());
    }
}
