//! Accounts: who may chat, on every device they own (issue 16).
//!
//! `AUTH_MODE=open` (the default) keeps the laptop case as it was: anyone
//! who opens the page is a guest with a signed identity cookie
//! ([`super::identity`]), and may make an account to have their chats on
//! every device (their guest conversations move to it). `AUTH_MODE=accounts`
//! lets only signed-in people chat: every API, `/ws` and the event streams
//! answer `401` without an account session, and the pages send them to
//! `/signin`.
//!
//! A request's [`Identity`] comes from, in order: the session cookie
//! (`tether_session`: 32 random bytes, only their SHA-256 stored, one row
//! per sign-in: [`crate::server::store::SessionRecord`]); a trusted proxy's
//! header (`AUTH_TRUSTED_HEADER`, only from `TRUSTED_PROXIES`); in `open`
//! mode, the guest cookie. [`Accounts`] signs people up, in and out, lists
//! and revokes their sessions (closing their live streams at once,
//! [`live`]), and runs the admin's actions.
//!
//! * [`password`]: argon2id, bounded; [`throttle`]: failed sign-ins wait.
//! * [`routes`]: the JSON and form endpoints; [`pages`]: the sign-in,
//!   settings and admin pages (server-rendered, no WASM needed).
//! * [`quota`]: messages and tokens per account per day.

pub mod device;
pub mod live;
pub mod pages;
pub mod passkeys;
pub mod password;
pub mod quota;
pub mod routes;
pub mod throttle;
mod tokens;

use std::{
    net::IpAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};

use self::{
    live::{LiveSessions, Watch},
    password::{HashError, Hasher},
    throttle::LoginThrottle,
};
use super::{
    access::address::AddrKey,
    chat::ChatService,
    config::{AuthMode, Config, Registration},
    identity::IdentityKeys,
    store::{
        now_rfc3339, AccountRecord, AccountRole, AccountStatus, Created, InviteRecord, NewAccount,
        SessionRecord, Store, StoreError, UsageDay,
    },
};
use crate::protocol::UserId;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "tether_session";

/// `last_seen` is written at most this often per session.
const TOUCH_EVERY: Duration = Duration::from_secs(5 * 60);

/// How long an invite link lasts.
pub const INVITE_DAYS: i64 = 7;

/// Who a request is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub user: UserId,
    pub kind: IdentityKind,
}

/// How a request proved who it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdentityKind {
    /// The anonymous cookie (`AUTH_MODE=open` only).
    Guest,
    /// A sign-in of an account.
    Session {
        /// Names the session (not a secret).
        public_id: String,
        token_hash: String,
        username: String,
        role: AccountRole,
    },
    /// Named by a trusted proxy's header.
    Proxy { username: String, role: AccountRole },
}

impl Identity {
    /// The account's name and role; `None` for a guest.
    pub fn account(&self) -> Option<(&str, AccountRole)> {
        match &self.kind {
            IdentityKind::Guest => None,
            IdentityKind::Session { username, role, .. }
            | IdentityKind::Proxy { username, role } => Some((username, *role)),
        }
    }

    pub fn is_admin(&self) -> bool {
        self.account()
            .is_some_and(|(_, role)| role == AccountRole::Admin)
    }

    /// The session's public id and token hash, if signed in with one.
    pub fn session(&self) -> Option<(&str, &str)> {
        match &self.kind {
            IdentityKind::Session {
                public_id,
                token_hash,
                ..
            } => Some((public_id, token_hash)),
            _ => None,
        }
    }
}

/// Why an account action was refused: each has a status and a sentence.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("{0}")]
    BadInput(String),
    /// Unknown user and wrong password alike: the answer is the same.
    #[error("wrong username or password")]
    WrongCredentials,
    #[error("too many failed sign-ins; try again in {} s", .0.as_secs().max(1))]
    Throttled(Duration),
    /// New accounts per address share the new-identity budget
    /// (`IDENTITY_BURST`, `IDENTITY_PER_SEC`).
    #[error("too many new accounts from your network address; try again in {} s", .0.as_secs().max(1))]
    TooManySignUps(Duration),
    #[error("sign-up is closed on this server; ask its admin for an invite link")]
    RegistrationClosed,
    #[error("this invite link is unknown, used or expired; ask for a new one")]
    InviteInvalid,
    #[error("that username is taken; choose another")]
    UsernameTaken,
    #[error("your account is waiting for an admin's approval")]
    Pending,
    #[error("this account is disabled; ask the server's admin")]
    Disabled,
    #[error("sign in first")]
    NotSignedIn,
    #[error("only an admin may do that")]
    NotAdmin,
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Hashing(#[from] HashError),
    #[error("the database cannot be used right now; try again in a moment")]
    Store(#[source] StoreError),
}

impl From<StoreError> for AuthError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound => AuthError::NotFound,
            other => AuthError::Store(other),
        }
    }
}

impl AuthError {
    pub fn status(&self) -> StatusCode {
        match self {
            AuthError::BadInput(_) => StatusCode::BAD_REQUEST,
            AuthError::WrongCredentials | AuthError::NotSignedIn => StatusCode::UNAUTHORIZED,
            AuthError::Throttled(_) | AuthError::TooManySignUps(_) => StatusCode::TOO_MANY_REQUESTS,
            AuthError::RegistrationClosed
            | AuthError::InviteInvalid
            | AuthError::Pending
            | AuthError::Disabled
            | AuthError::NotAdmin => StatusCode::FORBIDDEN,
            AuthError::UsernameTaken => StatusCode::CONFLICT,
            AuthError::NotFound => StatusCode::NOT_FOUND,
            AuthError::Hashing(HashError::Busy) | AuthError::Store(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            AuthError::Hashing(HashError::Failed(_)) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// `Retry-After`, in seconds, when waiting helps.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            AuthError::Throttled(wait) | AuthError::TooManySignUps(wait) => {
                Some(wait.as_secs_f64().ceil().max(1.0) as u64)
            }
            AuthError::Hashing(HashError::Busy) | AuthError::Store(_) => Some(1),
            _ => None,
        }
    }
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        if let AuthError::Store(err) = &self {
            tracing::warn!(error = %err, "account action failed in storage");
        }
        let mut response = (self.status(), self.to_string()).into_response();
        if let Some(secs) = self.retry_after() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// A username as stored: trimmed, lower-cased, 3–32 of `a-z 0-9 . _ -`.
pub fn normalize_username(text: &str) -> Result<String, AuthError> {
    let name = text.trim().to_lowercase();
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
    if !(3..=32).contains(&name.chars().count()) || !ok_chars {
        return Err(AuthError::BadInput(
            "a username is 3 to 32 letters, digits, dots, dashes or underscores".into(),
        ));
    }
    Ok(name)
}

/// What a sign-in or sign-up gave: the cookie to set and who it is.
#[derive(Debug)]
pub struct SignedIn {
    /// The `Set-Cookie` value of the new session.
    pub cookie: String,
    pub user: UserId,
    pub username: String,
    /// Guest conversations moved to the account.
    pub claimed: u64,
}

/// A request's facts that account actions need.
#[derive(Clone, Debug)]
pub struct RequestFacts {
    pub from: AddrKey,
    pub user_agent: Option<String>,
    /// The cookie is `Secure`.
    pub secure: bool,
    /// The guest this browser was (open mode), whose data moves to the account.
    pub guest: Option<UserId>,
    /// The session this browser had, replaced by the new one.
    pub replaces: Option<String>,
}

/// A new account's form.
#[derive(Clone, Debug, serde::Deserialize)]
pub struct SignUp {
    pub username: String,
    pub password: String,
    #[serde(default)]
    pub invite: Option<String>,
}

/// A row of the admin's list of users.
#[derive(Clone, Debug, serde::Serialize)]
pub struct UserRow {
    pub user_id: String,
    pub username: String,
    pub role: &'static str,
    pub status: &'static str,
    pub quota_messages: Option<u64>,
    pub quota_tokens: Option<u64>,
    pub created_at: String,
    pub messages_today: u64,
    pub tokens_today: u64,
}

/// A new invite link's code (shown once).
#[derive(Clone, Debug, serde::Serialize)]
pub struct NewInvite {
    pub public_id: String,
    pub code: String,
    pub expires_at: String,
}

/// Accounts, sessions and the admin's actions.
pub struct Accounts {
    config: Arc<Config>,
    hasher: Hasher,
    throttle: LoginThrottle,
    /// The chat core, which holds the open streams of each session and
    /// closes them on every instance.
    chat: Arc<ChatService>,
    /// The server's key: passkey challenge tokens are MAC'd with it.
    keys: Arc<IdentityKeys>,
    challenges: passkeys::Challenges,
}

impl std::fmt::Debug for Accounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accounts")
            .field("mode", &self.config.auth_mode)
            .field("live_sessions", &self.live().open_sessions())
            .finish_non_exhaustive()
    }
}

fn day_offset(days: i64) -> String {
    let at = time::OffsetDateTime::now_utc() + time::Duration::days(days);
    super::store::rfc3339_millis(at)
}

impl Accounts {
    pub fn new(config: Arc<Config>, chat: Arc<ChatService>, keys: Arc<IdentityKeys>) -> Self {
        let limits = &config.limits;
        Self {
            keys,
            challenges: passkeys::Challenges::default(),
            throttle: LoginThrottle::new(limits.login_failures, limits.login_backoff),
            hasher: Hasher::new(),
            config,
            chat,
        }
    }

    /// The chat core's store, where accounts live too.
    fn store(&self) -> &Arc<dyn Store> {
        self.chat.store()
    }

    pub fn mode(&self) -> AuthMode {
        self.config.auth_mode
    }

    pub fn registration(&self) -> Registration {
        self.config.registration
    }

    /// This instance's open streams of each session.
    pub fn live(&self) -> &Arc<LiveSessions> {
        self.chat.live_sessions()
    }

    /// A watch for a new stream of `identity`, revoked when its session
    /// is signed out; `None` without a session (never signed out).
    pub fn watch(&self, identity: &Identity) -> Option<Watch> {
        let (public_id, _) = identity.session()?;
        Some(self.live().watch(public_id))
    }

    /// Who a request is (see the module doc); `None`: nobody this mode accepts.
    pub async fn identify(
        &self,
        headers: &HeaderMap,
        peer: Option<IpAddr>,
        guests: &IdentityKeys,
    ) -> Result<Option<Identity>, StoreError> {
        if let Some(identity) = self.session_of(headers).await? {
            return Ok(Some(identity));
        }
        if let Some(identity) = self.proxy_user_of(headers, peer).await? {
            return Ok(Some(identity));
        }
        if self.mode() == AuthMode::Open {
            if let Some(user) = guests.user_from_headers(headers) {
                return Ok(Some(Identity {
                    user,
                    kind: IdentityKind::Guest,
                }));
            }
        }
        Ok(None)
    }

    /// The session of the request's cookie, if it is valid, its account
    /// active, and it was used within `SESSION_IDLE_DAYS`.
    async fn session_of(&self, headers: &HeaderMap) -> Result<Option<Identity>, StoreError> {
        let Some(token) = session_token(headers) else {
            return Ok(None);
        };
        let token_hash = tokens::digest(token);
        let Some((session, account)) = self.store().session(&token_hash).await? else {
            return Ok(None);
        };
        let idle_limit = day_offset(-i64::from(self.config.session_idle_days));
        if account.status != AccountStatus::Active || session.last_seen < idle_limit {
            return Ok(None);
        }
        let touch_after = super::store::rfc3339_millis(
            time::OffsetDateTime::now_utc() - time::Duration::seconds(TOUCH_EVERY.as_secs() as i64),
        );
        if session.last_seen < touch_after {
            self.store()
                .touch_session(&token_hash, &now_rfc3339())
                .await?;
        }
        Ok(Some(Identity {
            user: account.user_id,
            kind: IdentityKind::Session {
                public_id: session.public_id,
                token_hash,
                username: account.username,
                role: account.role,
            },
        }))
    }

    /// The user a trusted proxy names (`AUTH_TRUSTED_HEADER` from a
    /// `TRUSTED_PROXIES` peer), made an account on first sight.
    async fn proxy_user_of(
        &self,
        headers: &HeaderMap,
        peer: Option<IpAddr>,
    ) -> Result<Option<Identity>, StoreError> {
        let name = &self.config.auth_trusted_header;
        if name.is_empty() {
            return Ok(None);
        }
        let Some(peer) = peer else { return Ok(None) };
        if !self.config.trusted_proxies.trusts(peer) {
            return Ok(None);
        }
        let Some(value) = headers.get(name.as_str()).and_then(|v| v.to_str().ok()) else {
            return Ok(None);
        };
        let Ok(username) = normalize_username(value) else {
            tracing::info!("a trusted proxy named a user whose name Tether cannot use");
            return Ok(None);
        };
        let account = match self.store().account_by_username(&username).await? {
            Some(account) => account,
            None => {
                let record = AccountRecord {
                    user_id: super::identity::new_user_id(),
                    username: username.clone(),
                    password_hash: None,
                    role: AccountRole::Member,
                    status: AccountStatus::Active,
                    quota_messages: None,
                    quota_tokens: None,
                    created_at: now_rfc3339(),
                };
                let new = NewAccount {
                    record: record.clone(),
                    invite: None,
                    first_is_admin: true,
                };
                match self.store().create_account(new).await? {
                    Created::Account(role) => {
                        tracing::info!(username = %username, "made an account for a user a trusted proxy named");
                        AccountRecord { role, ..record }
                    }
                    // Made by another request meanwhile.
                    _ => match self.store().account_by_username(&username).await? {
                        Some(account) => account,
                        None => return Ok(None),
                    },
                }
            }
        };
        if account.status != AccountStatus::Active {
            return Ok(None);
        }
        Ok(Some(Identity {
            user: account.user_id,
            kind: IdentityKind::Proxy {
                username: account.username,
                role: account.role,
            },
        }))
    }

    /// Makes an account and (unless it waits for approval) signs it in.
    pub async fn sign_up(&self, form: SignUp, facts: &RequestFacts) -> Result<SignedIn, AuthError> {
        let username = normalize_username(&form.username)?;
        password::check_new(&form.password).map_err(AuthError::BadInput)?;
        let invite = form
            .invite
            .as_deref()
            .map(str::trim)
            .filter(|code| !code.is_empty())
            .map(tokens::digest);
        let first = self.store().account_count().await? == 0;
        let status = match (first, invite.is_some(), self.registration()) {
            (true, _, _) | (false, true, _) | (false, false, Registration::Open) => {
                AccountStatus::Active
            }
            (false, false, Registration::Approval) => AccountStatus::Pending,
            (false, false, Registration::Invite | Registration::Closed) => {
                return Err(AuthError::RegistrationClosed)
            }
        };
        let hash = self.hasher.hash(&form.password).await?;
        let record = AccountRecord {
            user_id: super::identity::new_user_id(),
            username: username.clone(),
            password_hash: Some(hash),
            role: AccountRole::Member,
            status,
            quota_messages: None,
            quota_tokens: None,
            created_at: now_rfc3339(),
        };
        let user = record.user_id.clone();
        let new = NewAccount {
            record,
            invite,
            first_is_admin: true,
        };
        match self.store().create_account(new).await? {
            Created::Account(role) => {
                tracing::info!(user_id = %user, role = role.as_str(), status = status.as_str(), "account created");
            }
            Created::UsernameTaken => return Err(AuthError::UsernameTaken),
            Created::InviteInvalid => return Err(AuthError::InviteInvalid),
        }
        if status == AccountStatus::Pending {
            return Err(AuthError::Pending);
        }
        self.start_session(user, username, facts).await
    }

    /// Checks a password (throttled) and signs the account in.
    pub async fn sign_in(
        &self,
        username: &str,
        password: &str,
        facts: &RequestFacts,
    ) -> Result<SignedIn, AuthError> {
        // Any text is throttled under its normalised name, valid or not.
        let key = username.trim().to_lowercase();
        if let Some(wait) = self.throttle.wait(&key, facts.from, Instant::now()) {
            return Err(AuthError::Throttled(wait));
        }
        let account = match normalize_username(username) {
            Ok(name) => self.store().account_by_username(&name).await?,
            Err(_) => None,
        };
        let stored = account.as_ref().and_then(|a| a.password_hash.as_deref());
        if !self.hasher.verify(password, stored).await? {
            self.throttle.failed(&key, facts.from, Instant::now());
            tracing::info!(client = %facts.from, "failed sign-in");
            return Err(AuthError::WrongCredentials);
        }
        let Some(account) = account else {
            return Err(AuthError::WrongCredentials);
        };
        self.throttle.succeeded(&key, facts.from);
        match account.status {
            AccountStatus::Active => {}
            AccountStatus::Pending => return Err(AuthError::Pending),
            AccountStatus::Disabled => return Err(AuthError::Disabled),
        }
        self.start_session(account.user_id, account.username, facts)
            .await
    }

    /// A new session (the browser's old one deleted: the id rotates), and
    /// the guest's data moved to the account.
    async fn start_session(
        &self,
        user: UserId,
        username: String,
        facts: &RequestFacts,
    ) -> Result<SignedIn, AuthError> {
        let token = tokens::secret();
        let now = now_rfc3339();
        let session = SessionRecord {
            token_hash: tokens::digest(&token),
            public_id: tokens::public_id(),
            user_id: user.clone(),
            device: device::label(facts.user_agent.as_deref()),
            created_at: now.clone(),
            last_seen: now,
        };
        self.store()
            .create_session(&session, facts.replaces.as_deref())
            .await?;
        let claimed = match &facts.guest {
            Some(guest) => self.store().claim_guest(guest, &user).await?,
            None => 0,
        };
        tracing::info!(user_id = %user, session = %session.public_id, claimed, "signed in");
        let max_age = u64::from(self.config.session_idle_days) * 24 * 3600;
        Ok(SignedIn {
            cookie: session_cookie(&token, max_age, facts.secure),
            user,
            username,
            claimed,
        })
    }

    /// Ends the identity's session (if it has one) and closes its streams.
    pub async fn sign_out(&self, identity: &Identity) -> Result<(), AuthError> {
        if let Some((public_id, _)) = identity.session() {
            let gone = self
                .store()
                .delete_sessions(&identity.user, Some(public_id), None)
                .await?;
            self.revoke(&gone);
        }
        Ok(())
    }

    /// The identity's account's sessions.
    pub async fn sessions(&self, identity: &Identity) -> Result<Vec<SessionRecord>, AuthError> {
        self.account_of(identity)?;
        Ok(self.store().list_sessions(&identity.user).await?)
    }

    /// Signs out one session of the identity's account (`Some`), or all of
    /// them (`None`; this one too).
    pub async fn sign_out_sessions(
        &self,
        identity: &Identity,
        public_id: Option<&str>,
    ) -> Result<usize, AuthError> {
        self.account_of(identity)?;
        let gone = self
            .store()
            .delete_sessions(&identity.user, public_id, None)
            .await?;
        if public_id.is_some() && gone.is_empty() {
            return Err(AuthError::NotFound);
        }
        self.revoke(&gone);
        Ok(gone.len())
    }

    /// Changes the password (the current one checked, throttled like a
    /// sign-in) and signs out every other session.
    pub async fn change_password(
        &self,
        identity: &Identity,
        current: &str,
        new: &str,
        from: AddrKey,
    ) -> Result<usize, AuthError> {
        let (username, _) = self.account_of(identity)?;
        let username = username.to_owned();
        if let Some(wait) = self.throttle.wait(&username, from, Instant::now()) {
            return Err(AuthError::Throttled(wait));
        }
        let account = self
            .store()
            .account(&identity.user)
            .await?
            .ok_or(AuthError::NotSignedIn)?;
        if !self
            .hasher
            .verify(current, account.password_hash.as_deref())
            .await?
        {
            self.throttle.failed(&username, from, Instant::now());
            return Err(AuthError::BadInput("the current password is wrong".into()));
        }
        password::check_new(new).map_err(AuthError::BadInput)?;
        let hash = self.hasher.hash(new).await?;
        let keep = identity.session().map(|(_, hash)| hash);
        let gone = self
            .store()
            .set_password(&identity.user, &hash, keep)
            .await?;
        self.revoke(&gone);
        tracing::info!(user_id = %identity.user, signed_out = gone.len(), "password changed");
        Ok(gone.len())
    }

    fn account_of<'a>(&self, identity: &'a Identity) -> Result<(&'a str, AccountRole), AuthError> {
        identity.account().ok_or(AuthError::NotSignedIn)
    }

    fn admin(&self, identity: &Identity) -> Result<(), AuthError> {
        match identity.account() {
            None => Err(AuthError::NotSignedIn),
            Some((_, AccountRole::Admin)) => Ok(()),
            Some(_) => Err(AuthError::NotAdmin),
        }
    }

    /// Closes the streams of signed-out sessions, on every instance.
    fn revoke(&self, public_ids: &[String]) {
        self.chat.sign_out_streams(public_ids);
    }

    /// Every account with what it used today (admin).
    pub async fn users(&self, identity: &Identity) -> Result<Vec<UserRow>, AuthError> {
        self.admin(identity)?;
        let today = quota::today();
        let usage = self.store().usage_since(&today).await?;
        let accounts = self.store().list_accounts().await?;
        Ok(accounts
            .into_iter()
            .map(|a| {
                let used = usage.iter().find(|u| u.user_id == a.user_id);
                UserRow {
                    user_id: a.user_id.0,
                    username: a.username,
                    role: a.role.as_str(),
                    status: a.status.as_str(),
                    quota_messages: a.quota_messages,
                    quota_tokens: a.quota_tokens,
                    created_at: a.created_at,
                    messages_today: used.map_or(0, |u| u.messages),
                    tokens_today: used.map_or(0, |u| u.tokens),
                }
            })
            .collect())
    }

    /// Approves, disables or re-enables an account (admin). Disabling signs
    /// out its every session.
    pub async fn set_status(
        &self,
        identity: &Identity,
        user: &UserId,
        status: AccountStatus,
    ) -> Result<(), AuthError> {
        self.admin(identity)?;
        if *user == identity.user && status != AccountStatus::Active {
            return Err(AuthError::BadInput(
                "you cannot disable your own account".into(),
            ));
        }
        self.store().set_account_status(user, status).await?;
        if status != AccountStatus::Active {
            let gone = self.store().delete_sessions(user, None, None).await?;
            self.revoke(&gone);
        }
        tracing::info!(user_id = %user, status = status.as_str(), "account status set by an admin");
        Ok(())
    }

    /// Deletes an account and all its data (admin).
    pub async fn delete_user(&self, identity: &Identity, user: &UserId) -> Result<(), AuthError> {
        self.admin(identity)?;
        if *user == identity.user {
            return Err(AuthError::BadInput(
                "you cannot delete your own account".into(),
            ));
        }
        let gone = self.store().delete_sessions(user, None, None).await?;
        self.revoke(&gone);
        self.store().delete_user(user).await?;
        tracing::info!(user_id = %user, "account deleted by an admin");
        Ok(())
    }

    /// Sets an account's quotas (admin); `None` is the server's default.
    pub async fn set_quota(
        &self,
        identity: &Identity,
        user: &UserId,
        messages: Option<u64>,
        tokens: Option<u64>,
    ) -> Result<(), AuthError> {
        self.admin(identity)?;
        Ok(self.store().set_quota(user, messages, tokens).await?)
    }

    /// A new single-use invite link's code, valid [`INVITE_DAYS`] (admin).
    pub async fn invite(&self, identity: &Identity) -> Result<NewInvite, AuthError> {
        self.admin(identity)?;
        let code = tokens::secret();
        let record = InviteRecord {
            public_id: tokens::public_id(),
            created_by: identity.user.clone(),
            created_at: now_rfc3339(),
            expires_at: day_offset(INVITE_DAYS),
            used_by: None,
            used_at: None,
        };
        self.store()
            .create_invite(&tokens::digest(&code), &record)
            .await?;
        Ok(NewInvite {
            public_id: record.public_id,
            code,
            expires_at: record.expires_at,
        })
    }

    /// Every invite (admin).
    pub async fn invites(&self, identity: &Identity) -> Result<Vec<InviteRecord>, AuthError> {
        self.admin(identity)?;
        Ok(self.store().list_invites().await?)
    }

    /// Usage per user per day over the last `days` (admin).
    pub async fn usage(&self, identity: &Identity, days: i64) -> Result<Vec<UsageDay>, AuthError> {
        self.admin(identity)?;
        let since = quota::day_of(time::OffsetDateTime::now_utc() - time::Duration::days(days));
        Ok(self.store().usage_since(&since).await?)
    }
}

/// The session token of a request's cookie, if well formed.
pub fn session_token(headers: &HeaderMap) -> Option<&str> {
    super::identity::cookie_values(headers, SESSION_COOKIE).find(|v| tokens::well_formed(v))
}

/// Whether a request carries a session cookie at all (valid or not).
pub fn has_session_cookie(headers: &HeaderMap) -> bool {
    super::identity::cookie_values(headers, SESSION_COOKIE)
        .next()
        .is_some()
}

/// The `Set-Cookie` of a session.
fn session_cookie(token: &str, max_age: u64, secure: bool) -> String {
    super::identity::cookie(SESSION_COOKIE, token, max_age, secure)
}

/// `Set-Cookie` values that remove the session and guest cookies.
pub fn clearing_cookies(secure: bool) -> [String; 2] {
    use super::identity::{cookie, COOKIE_NAME};
    [
        cookie(SESSION_COOKIE, "", 0, secure),
        cookie(COOKIE_NAME, "", 0, secure),
    ]
}
