//! What the chat core asks before and after each model call, when the
//! server meters its users (`AUTH_MODE=accounts`: quotas per account and
//! day, `server::accounts::quota`). Without a meter nothing is counted,
//! and a message costs no extra storage.

use async_trait::async_trait;

use crate::protocol::UserId;

/// Counts what users ask of the model.
#[async_trait]
pub trait Meter: Send + Sync + std::fmt::Debug {
    /// Before a model call for `user` (a `send`, `regenerate`, `continue`
    /// or `edit`): counts one message, or says why the user may not
    /// (`quota_exceeded`).
    async fn admit(&self, user: &UserId) -> Result<(), String>;

    /// A reply for `user` used `tokens` (prompt and completion, as the
    /// provider reported them).
    async fn used_tokens(&self, user: &UserId, tokens: u64);
}
