//! Why the chat core refused a request, and the `error` frame that says so.
//!
//! [`ChatError`] is the reason (one protocol error code each); [`Refused`]
//! adds the ids the client's frame named, so both transports answer a
//! refusal with the same frame. HTTP statuses are the HTTP edge's business
//! (`server/error.rs`).
//!
//! A storage fault that may pass (disk full, read-only, locked, database
//! not reachable) is `unavailable`, with a sentence saying which and a
//! `retry_after_ms`; the store has logged it already (once a minute). Any
//! other storage failure is `internal`, logged here.

use thiserror::Error;

use crate::{
    protocol::{ClientMsgId, ConversationId, ErrorCode, ServerFrame},
    server::{
        cluster::ClusterError,
        store::{Fault, StoreError},
    },
};

/// The `retry_after_ms` of an `unavailable` refusal: a hint, the fault may
/// last longer.
const UNAVAILABLE_RETRY_MS: u64 = 2_000;

/// Why a request was refused; each maps to one protocol error code.
#[derive(Debug, Error)]
pub enum ChatError {
    #[error("{0}")]
    BadRequest(String),
    #[error("message is too long: {chars} characters, the limit is {max}")]
    TooLarge { chars: usize, max: usize },
    #[error("conversation not found")]
    NotFound,
    #[error("too many messages, try again in {retry_after_ms} ms")]
    RateLimited { retry_after_ms: u64 },
    #[error("too many messages from your network address, try again in {retry_after_ms} ms")]
    AddressRateLimited { retry_after_ms: u64 },
    #[error("a reply is already streaming in this conversation")]
    Busy,
    /// The user's quota for today is used up (the sentence says which).
    #[error("{0}")]
    QuotaExceeded(String),
    #[error("the server is restarting, try again in a moment")]
    ShuttingDown,
    /// The database cannot be used right now; nothing was stored.
    #[error("{}", .0.kind.human())]
    Unavailable(Fault),
    #[error("internal error, please try again")]
    Internal(#[source] StoreError),
    /// The live state shared by the instances (Redis) cannot be reached.
    #[error("live updates are unavailable right now, try again in a moment")]
    LiveUnavailable(#[source] ClusterError),
}

impl From<ClusterError> for ChatError {
    fn from(err: ClusterError) -> Self {
        tracing::warn!(error = %err, "live state unavailable");
        ChatError::LiveUnavailable(err)
    }
}

impl From<StoreError> for ChatError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound => ChatError::NotFound,
            // Another instance's reply runs in the conversation.
            StoreError::Busy => ChatError::Busy,
            StoreError::Fault(fault) if fault.kind.is_transient() => ChatError::Unavailable(fault),
            other => ChatError::Internal(other),
        }
    }
}

impl ChatError {
    pub fn code(&self) -> ErrorCode {
        match self {
            ChatError::BadRequest(_) => ErrorCode::BadRequest,
            ChatError::TooLarge { .. } => ErrorCode::TooLarge,
            ChatError::NotFound => ErrorCode::NotFound,
            ChatError::RateLimited { .. } | ChatError::AddressRateLimited { .. } => {
                ErrorCode::RateLimited
            }
            ChatError::Busy | ChatError::ShuttingDown => ErrorCode::Busy,
            ChatError::QuotaExceeded(_) => ErrorCode::QuotaExceeded,
            ChatError::Internal(_) => ErrorCode::Internal,
            ChatError::Unavailable(_) | ChatError::LiveUnavailable(_) => ErrorCode::Unavailable,
        }
    }

    /// The `error` frame for this refusal.
    pub fn to_frame(
        &self,
        client_msg_id: Option<ClientMsgId>,
        conversation_id: Option<ConversationId>,
    ) -> ServerFrame {
        ServerFrame::Error {
            code: self.code(),
            message: self.to_string(),
            client_msg_id,
            retry_after_ms: match self {
                ChatError::RateLimited { retry_after_ms }
                | ChatError::AddressRateLimited { retry_after_ms } => Some(*retry_after_ms),
                ChatError::ShuttingDown => Some(1_000),
                ChatError::Unavailable(_) | ChatError::LiveUnavailable(_) => {
                    Some(UNAVAILABLE_RETRY_MS)
                }
                _ => None,
            },
            conversation_id,
        }
    }

    /// The refusal of a frame that named these ids. An internal failure is
    /// logged here, once, whichever transport carried the frame, unless it
    /// is a database fault: the store logs those (once a minute per kind).
    pub fn refusing(
        self,
        client_msg_id: Option<ClientMsgId>,
        conversation_id: Option<ConversationId>,
    ) -> Refused {
        if let ChatError::Internal(source) = &self {
            if source.fault().is_none() {
                tracing::error!(error = %source, "request failed");
            }
        }
        Refused {
            error: self,
            client_msg_id,
            conversation_id,
        }
    }
}

/// A client frame the chat core refused: the reason and the ids its
/// `error` frame carries back.
#[derive(Debug, Error)]
#[error("{error}")]
pub struct Refused {
    pub error: ChatError,
    pub client_msg_id: Option<ClientMsgId>,
    pub conversation_id: Option<ConversationId>,
}

impl Refused {
    pub fn to_frame(&self) -> ServerFrame {
        self.error
            .to_frame(self.client_msg_id.clone(), self.conversation_id.clone())
    }
}
