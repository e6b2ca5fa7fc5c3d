//! Storage of accounts ([`AccountStore`], a part of every
//! [`Store`](super::Store)): who may sign in, their sessions (one per
//! device), invite links, quotas and what each used per day.
//!
//! Secrets are stored only as hashes made by the caller
//! (`server::accounts`): argon2id for passwords, SHA-256 for session tokens
//! and invite codes, so a copy of the database signs nobody in. An account
//! is a `users` row with a name; a guest is one without, and
//! [`AccountStore::claim_guest`] moves a guest's data to an account.

use std::fmt;

use async_trait::async_trait;

use super::StoreError;
use crate::protocol::UserId;

/// What an account may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccountRole {
    /// The first account: the admin page.
    Admin,
    Member,
}

impl AccountRole {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountRole::Admin => "admin",
            AccountRole::Member => "member",
        }
    }

    /// The stored text; anything unknown is the lesser role.
    pub fn from_db(text: &str) -> Self {
        if text == "admin" {
            AccountRole::Admin
        } else {
            AccountRole::Member
        }
    }
}

/// Whether an account may sign in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccountStatus {
    Active,
    /// Signed up under `REGISTRATION=approval`, not yet approved.
    Pending,
    /// Turned off by an admin: cannot sign in, its sessions are gone.
    Disabled,
}

impl AccountStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountStatus::Active => "active",
            AccountStatus::Pending => "pending",
            AccountStatus::Disabled => "disabled",
        }
    }

    /// The stored text; anything unknown is disabled.
    pub fn from_db(text: &str) -> Self {
        match text {
            "active" => AccountStatus::Active,
            "pending" => AccountStatus::Pending,
            _ => AccountStatus::Disabled,
        }
    }
}

/// An account row.
#[derive(Clone, PartialEq, Eq)]
pub struct AccountRecord {
    pub user_id: UserId,
    /// Lower-cased.
    pub username: String,
    /// argon2id PHC string; `None` for an account of a trusted proxy header.
    pub password_hash: Option<String>,
    pub role: AccountRole,
    pub status: AccountStatus,
    /// Messages per day; `None`: the server's default.
    pub quota_messages: Option<u64>,
    /// Model tokens per day; `None`: the server's default.
    pub quota_tokens: Option<u64>,
    pub created_at: String,
}

impl fmt::Debug for AccountRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccountRecord")
            .field("user_id", &self.user_id)
            .field("username", &self.username)
            .field(
                "password_hash",
                &self.password_hash.as_ref().map(|_| "<redacted>"),
            )
            .field("role", &self.role)
            .field("status", &self.status)
            .field("quota_messages", &self.quota_messages)
            .field("quota_tokens", &self.quota_tokens)
            .finish_non_exhaustive()
    }
}

/// A new account.
#[derive(Clone, Debug)]
pub struct NewAccount {
    pub record: AccountRecord,
    /// The SHA-256 of an invite code it uses up, checked and spent in the
    /// same transaction.
    pub invite: Option<String>,
    /// Made an admin when no account exists yet (in the same transaction).
    pub first_is_admin: bool,
}

/// What [`AccountStore::create_account`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Created {
    /// Stored, with the role it got.
    Account(AccountRole),
    UsernameTaken,
    /// The invite is unknown, used or expired.
    InviteInvalid,
}

/// A sign-in (a device).
#[derive(Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// SHA-256 (hex) of the cookie's token.
    pub token_hash: String,
    /// Names the session in the settings page (not a secret).
    pub public_id: String,
    pub user_id: UserId,
    /// From the user agent, e.g. "Chrome on Linux".
    pub device: String,
    pub created_at: String,
    pub last_seen: String,
}

impl fmt::Debug for SessionRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionRecord")
            .field("public_id", &self.public_id)
            .field("user_id", &self.user_id)
            .field("device", &self.device)
            .finish_non_exhaustive()
    }
}

/// An invite link (without its code).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InviteRecord {
    pub public_id: String,
    pub created_by: UserId,
    pub created_at: String,
    pub expires_at: String,
    pub used_by: Option<UserId>,
    pub used_at: Option<String>,
}

/// A passkey of an account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PasskeyRecord {
    /// The credential id, base64url.
    pub credential_id: String,
    pub user_id: UserId,
    /// SEC1 uncompressed P-256 point.
    pub public_key: Vec<u8>,
    pub sign_count: u32,
    /// What the person called it ("Phone").
    pub name: String,
    pub created_at: String,
    pub last_used: Option<String>,
}

/// What a user used on one UTC day.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageDay {
    pub user_id: UserId,
    /// The account's name, if the user has one.
    pub username: Option<String>,
    /// `YYYY-MM-DD`.
    pub day: String,
    pub messages: u64,
    pub tokens: u64,
}

/// What storage does for accounts.
#[async_trait]
pub trait AccountStore: Send + Sync {
    /// How many accounts exist.
    async fn account_count(&self) -> Result<u64, StoreError>;

    /// Stores an account and its `users` row; see [`NewAccount`].
    async fn create_account(&self, new: NewAccount) -> Result<Created, StoreError>;

    /// The account of a (lower-cased) username.
    async fn account_by_username(
        &self,
        username: &str,
    ) -> Result<Option<AccountRecord>, StoreError>;

    /// The account of a user, if the user has one.
    async fn account(&self, user: &UserId) -> Result<Option<AccountRecord>, StoreError>;

    /// Every account, oldest first.
    async fn list_accounts(&self) -> Result<Vec<AccountRecord>, StoreError>;

    /// `NotFound` when the user has no account.
    async fn set_account_status(
        &self,
        user: &UserId,
        status: AccountStatus,
    ) -> Result<(), StoreError>;

    /// Per-day limits; `None` is the server's default.
    async fn set_quota(
        &self,
        user: &UserId,
        messages: Option<u64>,
        tokens: Option<u64>,
    ) -> Result<(), StoreError>;

    /// Replaces the password hash and deletes every other session of the
    /// user (all but `keep`, a token hash), in one transaction; returns the
    /// public ids of the sessions deleted.
    async fn set_password(
        &self,
        user: &UserId,
        hash: &str,
        keep: Option<&str>,
    ) -> Result<Vec<String>, StoreError>;

    /// Deletes the user and everything of theirs (conversations,
    /// companions, sessions, usage).
    async fn delete_user(&self, user: &UserId) -> Result<(), StoreError>;

    /// Stores a session; `replaces` (a token hash) is deleted in the same
    /// transaction (the session id rotates at sign-in).
    async fn create_session(
        &self,
        session: &SessionRecord,
        replaces: Option<&str>,
    ) -> Result<(), StoreError>;

    /// A session and its account, by token hash.
    async fn session(
        &self,
        token_hash: &str,
    ) -> Result<Option<(SessionRecord, AccountRecord)>, StoreError>;

    /// Sets a session's `last_seen`.
    async fn touch_session(&self, token_hash: &str, now: &str) -> Result<(), StoreError>;

    /// The user's sessions, most recently seen first.
    async fn list_sessions(&self, user: &UserId) -> Result<Vec<SessionRecord>, StoreError>;

    /// Deletes the user's sessions: the one named `public_id`, or (`None`)
    /// all but `keep` (a token hash). Returns the public ids deleted.
    async fn delete_sessions(
        &self,
        user: &UserId,
        public_id: Option<&str>,
        keep: Option<&str>,
    ) -> Result<Vec<String>, StoreError>;

    /// Moves everything of `guest` (conversations, companions, idempotency
    /// keys) to `account` and deletes the guest, in one transaction; `guest`
    /// must not be an account. Returns how many conversations moved (`0`
    /// when done already, so it is idempotent).
    async fn claim_guest(&self, guest: &UserId, account: &UserId) -> Result<u64, StoreError>;

    /// Stores an invite; `code_hash` is the SHA-256 of its code.
    async fn create_invite(&self, code_hash: &str, invite: &InviteRecord)
        -> Result<(), StoreError>;

    /// Every invite, newest first.
    async fn list_invites(&self) -> Result<Vec<InviteRecord>, StoreError>;

    /// What the user used on `day`: (messages, tokens).
    async fn usage_on(&self, user: &UserId, day: &str) -> Result<(u64, u64), StoreError>;

    /// Adds to what the user used on `day`.
    async fn add_usage(
        &self,
        user: &UserId,
        day: &str,
        messages: u64,
        tokens: u64,
    ) -> Result<(), StoreError>;

    /// Every user's usage on `since` (a day) and after, newest day first.
    async fn usage_since(&self, since: &str) -> Result<Vec<UsageDay>, StoreError>;

    /// Stores a passkey; `false` when its credential id is stored already.
    async fn add_passkey(&self, passkey: &PasskeyRecord) -> Result<bool, StoreError>;

    /// The passkey of a credential id, and its account.
    async fn passkey(
        &self,
        credential_id: &str,
    ) -> Result<Option<(PasskeyRecord, AccountRecord)>, StoreError>;

    /// The user's passkeys, oldest first.
    async fn passkeys(&self, user: &UserId) -> Result<Vec<PasskeyRecord>, StoreError>;

    /// Records a sign-in with the passkey: its new counter and when.
    async fn passkey_used(
        &self,
        credential_id: &str,
        sign_count: u32,
        now: &str,
    ) -> Result<(), StoreError>;

    /// Deletes one of the user's passkeys (`NotFound` for anybody else's).
    async fn delete_passkey(&self, user: &UserId, credential_id: &str) -> Result<(), StoreError>;
}
