//! Quotas: messages and model tokens per account per UTC day
//! (`QUOTA_MESSAGES_PER_DAY`, `QUOTA_TOKENS_PER_DAY`, or what an admin set
//! for the account), kept in the store's `usage` table, which the admin
//! page also shows. Metered in `AUTH_MODE=accounts` only: in `open` mode
//! anyone can become a new guest, so a quota would mean nothing there.
//!
//! A message over its quota is refused with `quota_exceeded` before the
//! model is asked; tokens are counted when a reply ends, so the reply that
//! crosses the token quota finishes and the next message is refused.

use std::sync::Arc;

use async_trait::async_trait;

use super::super::{chat::meter::Meter, config::Config, store::Store};
use crate::protocol::UserId;

/// `YYYY-MM-DD` of a moment (UTC).
pub fn day_of(at: time::OffsetDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02}",
        at.year(),
        u8::from(at.month()),
        at.day()
    )
}

/// Today, UTC.
pub fn today() -> String {
    day_of(time::OffsetDateTime::now_utc())
}

/// The quotas of accounts, over the store.
pub struct Quotas {
    config: Arc<Config>,
    store: Arc<dyn Store>,
}

impl std::fmt::Debug for Quotas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Quotas").finish_non_exhaustive()
    }
}

impl Quotas {
    pub fn new(config: Arc<Config>, store: Arc<dyn Store>) -> Self {
        Self { config, store }
    }
}

#[async_trait]
impl Meter for Quotas {
    async fn admit(&self, user: &UserId) -> Result<(), String> {
        let limits = &self.config.limits;
        let account = match self.store.account(user).await {
            Ok(account) => account,
            Err(err) => {
                // Metering must not stop chat when the store hiccups; the
                // message itself will fail or succeed on its own.
                tracing::warn!(error = %err, "could not read an account's quota");
                return Ok(());
            }
        };
        let messages = account
            .as_ref()
            .and_then(|a| a.quota_messages)
            .or(limits.quota_messages_per_day.map(u64::from));
        let tokens = account
            .as_ref()
            .and_then(|a| a.quota_tokens)
            .or(limits.quota_tokens_per_day.map(u64::from));
        let day = today();
        if messages.is_some() || tokens.is_some() {
            let (used_messages, used_tokens) = match self.store.usage_on(user, &day).await {
                Ok(used) => used,
                Err(err) => {
                    tracing::warn!(error = %err, "could not read a user's usage");
                    (0, 0)
                }
            };
            if let Some(max) = messages.filter(|max| used_messages >= *max) {
                return Err(format!(
                    "today's quota of {max} messages is used up; it resets at midnight UTC"
                ));
            }
            if let Some(max) = tokens.filter(|max| used_tokens >= *max) {
                return Err(format!(
                    "today's quota of {max} model tokens is used up; it resets at midnight UTC"
                ));
            }
        }
        if let Err(err) = self.store.add_usage(user, &day, 1, 0).await {
            tracing::warn!(error = %err, "could not count a message");
        }
        Ok(())
    }

    async fn used_tokens(&self, user: &UserId, tokens: u64) {
        if tokens == 0 {
            return;
        }
        if let Err(err) = self.store.add_usage(user, &today(), 0, tokens).await {
            tracing::warn!(error = %err, "could not count a reply's tokens");
        }
    }
}
