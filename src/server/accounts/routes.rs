//! The accounts' endpoints: JSON under `/api/auth` and `/api/admin`, and
//! the forms of the server-rendered pages ([`super::pages`]), which answer
//! with a `303` back to their page and a message. Every state-changing
//! request passes the `Origin` check ([`CallerIdentity`], or for sign-in
//! and sign-up, which have no identity yet, [`AllowedOrigin`]) before its
//! body is read.
//!
//! | endpoint | what |
//! |---|---|
//! | `GET /api/auth/me` | the mode, and the account signed in (if any) |
//! | `POST /api/auth/signup`, `POST /api/auth/signin` | JSON `{username, password[, invite]}`: sets the session cookie |
//! | `POST /api/auth/signout` | ends this session |
//! | `GET /api/auth/sessions`, `DELETE /api/auth/sessions/{id}` | devices |
//! | `POST /api/auth/sessions/signout-all` | signs out every device |
//! | `POST /api/auth/password` | `{current, new}`: signs out the other devices |
//! | `GET /api/admin/users`, `POST /api/admin/users/{id}/status`, `PUT …/quota`, `DELETE …` | admin |
//! | `GET`/`POST /api/admin/invites`, `GET /api/admin/usage` | admin |
//! | `GET /api/auth/passkeys`, `DELETE /api/auth/passkeys/{id}` | the account's passkeys |
//! | `POST /api/auth/passkeys/register/{start,finish}` | add a passkey (signed in) |
//! | `POST /api/auth/passkeys/signin/{start,finish}` | sign in with a passkey |

use axum::{
    extract::{Path, Query, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Redirect, Response},
    routing::{delete, get, post, put},
    Json, Router,
};
use serde::Deserialize;

use super::{clearing_cookies, session_token, tokens, AuthError, RequestFacts, SignUp, SignedIn};
use crate::{
    protocol::UserId,
    server::{
        access::{address::ClientAddr, AllowedOrigin, CallerIdentity, ReaderIdentity, Refusal},
        config::AuthMode,
        identity::{encode_next, is_https},
        state::AppState,
        store::AccountStatus,
    },
};

/// Every account route (the pages' too).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/auth/me", get(me))
        .route("/api/auth/signup", post(sign_up_json))
        .route("/api/auth/signin", post(sign_in_json))
        .route("/api/auth/signout", post(sign_out_json))
        .route("/api/auth/sessions", get(sessions_json))
        .route("/api/auth/sessions/{id}", delete(sign_out_session_json))
        .route("/api/auth/sessions/signout-all", post(sign_out_all_json))
        .route("/api/auth/password", post(password_json))
        .route("/api/admin/users", get(users_json))
        .route("/api/admin/users/{id}/status", post(status_json))
        .route("/api/admin/users/{id}/quota", put(quota_json))
        .route("/api/admin/users/{id}", delete(delete_user_json))
        .route("/api/admin/invites", get(invites_json).post(invite_json))
        .route("/api/admin/usage", get(usage_json))
        .route("/api/auth/passkeys", get(passkeys_json))
        .route("/api/auth/passkeys/{id}", delete(delete_passkey_json))
        .route(
            "/api/auth/passkeys/register/start",
            post(passkey_register_start),
        )
        .route(
            "/api/auth/passkeys/register/finish",
            post(passkey_register_finish),
        )
        .route(
            "/api/auth/passkeys/signin/start",
            post(passkey_sign_in_start),
        )
        .route(
            "/api/auth/passkeys/signin/finish",
            post(passkey_sign_in_finish),
        )
        .merge(super::pages::routes())
}

/// The facts of a request for [`super::Accounts`].
pub(super) fn facts(
    state: &AppState,
    headers: &HeaderMap,
    from: ClientAddr,
    identity: &Result<ReaderIdentity, Refusal>,
) -> RequestFacts {
    let identity = identity
        .as_ref()
        .ok()
        .map(|ReaderIdentity(identity)| identity);
    let guest = match (state.config.auth_mode, identity) {
        (AuthMode::Open, Some(identity)) if identity.account().is_none() => {
            Some(identity.user.clone())
        }
        (AuthMode::Open, None) => state.identity.user_from_headers(headers),
        _ => None,
    };
    RequestFacts {
        from: from.0,
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        secure: secure(state, headers),
        guest,
        replaces: session_token(headers).map(tokens::digest),
    }
}

/// A new account from this address is within the new-identity budget
/// (`IDENTITY_BURST`, `IDENTITY_PER_SEC`): sign-ups cost a password hash
/// and a row, like the guest identities they replace.
pub(super) fn sign_up_allowed(state: &AppState, from: ClientAddr) -> Result<(), AuthError> {
    state
        .identities_issued
        .check(&from.0, std::time::Instant::now())
        .map_err(|wait| {
            state
                .metrics
                .address_limited(crate::server::metrics::AddressLimit::Identities);
            AuthError::TooManySignUps(wait)
        })
}

/// The answer of a sign-in: the session cookie set, the guest cookie gone.
pub(super) fn with_session(mut response: Response, signed_in: &SignedIn, secure: bool) -> Response {
    let [_, guest] = clearing_cookies(secure);
    for cookie in [signed_in.cookie.as_str(), guest.as_str()] {
        if let Ok(value) = HeaderValue::from_str(cookie) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

/// An answer that removes the session (and guest) cookies.
pub(super) fn without_session(mut response: Response, secure: bool) -> Response {
    for cookie in clearing_cookies(secure) {
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

/// `GET /api/auth/me`: the server's mode and who this is. Never `401`:
/// the sign-in page asks it too.
async fn me(State(state): State<AppState>, identity: Result<ReaderIdentity, Refusal>) -> Response {
    let account = identity.as_ref().ok().and_then(|ReaderIdentity(identity)| {
        identity.account().map(|(username, role)| {
            serde_json::json!({
                "username": username,
                "admin": role == crate::server::store::AccountRole::Admin,
                "session": identity.session().map(|(id, _)| id),
            })
        })
    });
    Json(serde_json::json!({
        "auth_mode": state.config.auth_mode.to_string(),
        "registration": state.config.registration.to_string(),
        "account": account,
        "guest": identity.as_ref().is_ok_and(|ReaderIdentity(i)| i.account().is_none()),
    }))
    .into_response()
}

#[derive(Deserialize)]
struct Credentials {
    username: String,
    password: String,
}

async fn sign_up_json(
    State(state): State<AppState>,
    _: AllowedOrigin,
    from: ClientAddr,
    identity: Result<ReaderIdentity, Refusal>,
    headers: HeaderMap,
    Json(form): Json<SignUp>,
) -> Response {
    if let Err(err) = sign_up_allowed(&state, from) {
        return err.into_response();
    }
    let facts = facts(&state, &headers, from, &identity);
    match state.accounts.sign_up(form, &facts).await {
        Ok(signed_in) => with_session(signed_in_json(&signed_in), &signed_in, facts.secure),
        Err(AuthError::Pending) => (
            StatusCode::ACCEPTED,
            "your account was made; it waits for an admin's approval",
        )
            .into_response(),
        Err(err) => err.into_response(),
    }
}

async fn sign_in_json(
    State(state): State<AppState>,
    _: AllowedOrigin,
    from: ClientAddr,
    identity: Result<ReaderIdentity, Refusal>,
    headers: HeaderMap,
    Json(form): Json<Credentials>,
) -> Response {
    let facts = facts(&state, &headers, from, &identity);
    match state
        .accounts
        .sign_in(&form.username, &form.password, &facts)
        .await
    {
        Ok(signed_in) => with_session(signed_in_json(&signed_in), &signed_in, facts.secure),
        Err(err) => err.into_response(),
    }
}

fn signed_in_json(signed_in: &SignedIn) -> Response {
    Json(serde_json::json!({
        "username": signed_in.username,
        "claimed_conversations": signed_in.claimed,
    }))
    .into_response()
}

async fn sign_out_json(
    State(state): State<AppState>,
    CallerIdentity(identity): CallerIdentity,
    headers: HeaderMap,
) -> Response {
    let secure = secure(&state, &headers);
    match state.accounts.sign_out(&identity).await {
        Ok(()) => without_session(StatusCode::NO_CONTENT.into_response(), secure),
        Err(err) => err.into_response(),
    }
}

/// A session as the page lists it.
#[derive(serde::Serialize)]
struct SessionView {
    id: String,
    device: String,
    created_at: String,
    last_seen: String,
    current: bool,
}

async fn sessions_json(
    State(state): State<AppState>,
    ReaderIdentity(identity): ReaderIdentity,
) -> Response {
    match state.accounts.sessions(&identity).await {
        Ok(sessions) => {
            let current = identity.session().map(|(id, _)| id.to_owned());
            let items: Vec<SessionView> = sessions
                .into_iter()
                .map(|s| SessionView {
                    current: current.as_deref() == Some(s.public_id.as_str()),
                    id: s.public_id,
                    device: s.device,
                    created_at: s.created_at,
                    last_seen: s.last_seen,
                })
                .collect();
            Json(serde_json::json!({ "items": items })).into_response()
        }
        Err(err) => err.into_response(),
    }
}

async fn sign_out_session_json(
    State(state): State<AppState>,
    CallerIdentity(identity): CallerIdentity,
    Path(id): Path<String>,
) -> Response {
    match state.accounts.sign_out_sessions(&identity, Some(&id)).await {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(err) => err.into_response(),
    }
}

async fn sign_out_all_json(
    State(state): State<AppState>,
    CallerIdentity(identity): CallerIdentity,
    headers: HeaderMap,
) -> Response {
    let secure = secure(&state, &headers);
    match state.accounts.sign_out_sessions(&identity, None).await {
        Ok(_) => without_session(StatusCode::NO_CONTENT.into_response(), secure),
        Err(err) => err.into_response(),
    }
}

#[derive(Deserialize)]
pub(super) struct PasswordChange {
    pub current: String,
    pub new: String,
}

async fn password_json(
    State(state): State<AppState>,
    from: ClientAddr,
    CallerIdentity(identity): CallerIdentity,
    Json(change): Json<PasswordChange>,
) -> Response {
    match state
        .accounts
        .change_password(&identity, &change.current, &change.new, from.0)
        .await
    {
        Ok(gone) => Json(serde_json::json!({ "signed_out": gone })).into_response(),
        Err(err) => err.into_response(),
    }
}

async fn users_json(
    State(state): State<AppState>,
    ReaderIdentity(identity): ReaderIdentity,
) -> Response {
    match state.accounts.users(&identity).await {
        Ok(items) => Json(serde_json::json!({ "items": items })).into_response(),
        Err(err) => err.into_response(),
    }
}

#[derive(Deserialize)]
struct StatusChange {
    status: String,
}

/// `active`, `disabled` (what an admin may set; `pending` is only given).
pub(super) fn parse_status(text: &str) -> Result<AccountStatus, AuthError> {
    match text {
        "active" => Ok(AccountStatus::Active),
        "disabled" => Ok(AccountStatus::Disabled),
        _ => Err(AuthError::BadInput(
            "status is `active` or `disabled`".into(),
        )),
    }
}

/// A user id from a path: 32 hex characters.
pub(super) fn user_param(id: &str) -> Result<UserId, AuthError> {
    if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(UserId(id.to_owned()))
    } else {
        Err(AuthError::NotFound)
    }
}

async fn status_json(
    State(state): State<AppState>,
    CallerIdentity(identity): CallerIdentity,
    Path(id): Path<String>,
    Json(change): Json<StatusChange>,
) -> Response {
    let result = async {
        let user = user_param(&id)?;
        let status = parse_status(&change.status)?;
        state.accounts.set_status(&identity, &user, status).await
    };
    match result.await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(err) => err.into_response(),
    }
}

#[derive(Deserialize)]
struct QuotaChange {
    messages: Option<u64>,
    tokens: Option<u64>,
}

async fn quota_json(
    State(state): State<AppState>,
    CallerIdentity(identity): CallerIdentity,
    Path(id): Path<String>,
    Json(change): Json<QuotaChange>,
) -> Response {
    let result = async {
        let user = user_param(&id)?;
        state
            .accounts
            .set_quota(&identity, &user, change.messages, change.tokens)
            .await
    };
    match result.await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(err) => err.into_response(),
    }
}

async fn delete_user_json(
    State(state): State<AppState>,
    CallerIdentity(identity): CallerIdentity,
    Path(id): Path<String>,
) -> Response {
    let result = async {
        let user = user_param(&id)?;
        state.accounts.delete_user(&identity, &user).await
    };
    match result.await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(err) => err.into_response(),
    }
}

async fn invites_json(
    State(state): State<AppState>,
    ReaderIdentity(identity): ReaderIdentity,
) -> Response {
    match state.accounts.invites(&identity).await {
        Ok(items) => {
            let items: Vec<_> = items
                .into_iter()
                .map(|i| {
                    serde_json::json!({
                        "id": i.public_id,
                        "created_at": i.created_at,
                        "expires_at": i.expires_at,
                        "used": i.used_by.is_some(),
                        "used_at": i.used_at,
                    })
                })
                .collect();
            Json(serde_json::json!({ "items": items })).into_response()
        }
        Err(err) => err.into_response(),
    }
}

async fn invite_json(
    State(state): State<AppState>,
    CallerIdentity(identity): CallerIdentity,
) -> Response {
    match state.accounts.invite(&identity).await {
        Ok(invite) => Json(serde_json::json!({
            "id": invite.public_id,
            "code": invite.code,
            "link": invite_link(&invite.code),
            "expires_at": invite.expires_at,
        }))
        .into_response(),
        Err(err) => err.into_response(),
    }
}

/// The path of an invite's sign-up link.
pub(super) fn invite_link(code: &str) -> String {
    format!("/signup?invite={code}")
}

#[derive(Deserialize)]
struct UsageQuery {
    days: Option<i64>,
}

async fn usage_json(
    State(state): State<AppState>,
    ReaderIdentity(identity): ReaderIdentity,
    Query(query): Query<UsageQuery>,
) -> Response {
    let days = query.days.unwrap_or(30).clamp(0, 366);
    match state.accounts.usage(&identity, days).await {
        Ok(days) => {
            let items: Vec<_> = days
                .into_iter()
                .map(|d| {
                    serde_json::json!({
                        "user_id": d.user_id.0,
                        "username": d.username,
                        "day": d.day,
                        "messages": d.messages,
                        "tokens": d.tokens,
                    })
                })
                .collect();
            Json(serde_json::json!({ "items": items })).into_response()
        }
        Err(err) => err.into_response(),
    }
}

/// Whether cookies set for this request are `Secure`.
pub(super) fn secure(state: &AppState, headers: &HeaderMap) -> bool {
    state
        .config
        .cookie_secure
        .unwrap_or_else(|| is_https(headers))
}

/// A `303` to `path` with a message for the page (`ok` or `error`).
pub(super) fn back(path: &str, kind: &str, message: &str) -> Response {
    let sep = if path.contains('?') { '&' } else { '?' };
    Redirect::to(&format!("{path}{sep}{kind}={}", encode_next(message))).into_response()
}

/// The `next` a sign-in goes on to: a path of this site, else `/`.
pub(super) fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(path) if path.starts_with('/') && !path.starts_with("//") && !path.contains('\\') => {
            path.to_owned()
        }
        _ => "/".to_owned(),
    }
}

/// The request's `Origin` (present: the extractors checked it).
fn origin(headers: &HeaderMap) -> Result<&str, AuthError> {
    headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| AuthError::BadInput("missing Origin header".into()))
}

async fn passkeys_json(
    State(state): State<AppState>,
    ReaderIdentity(identity): ReaderIdentity,
) -> Response {
    match state.accounts.passkeys(&identity).await {
        Ok(items) => Json(serde_json::json!({ "items": items })).into_response(),
        Err(err) => err.into_response(),
    }
}

async fn delete_passkey_json(
    State(state): State<AppState>,
    CallerIdentity(identity): CallerIdentity,
    Path(id): Path<String>,
) -> Response {
    match state.accounts.delete_passkey(&identity, &id).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(err) => err.into_response(),
    }
}

async fn passkey_register_start(
    State(state): State<AppState>,
    CallerIdentity(identity): CallerIdentity,
    headers: HeaderMap,
) -> Response {
    let options = async {
        let origin = origin(&headers)?;
        state.accounts.passkey_registration(&identity, origin).await
    };
    match options.await {
        Ok(options) => Json(options).into_response(),
        Err(err) => err.into_response(),
    }
}

async fn passkey_register_finish(
    State(state): State<AppState>,
    CallerIdentity(identity): CallerIdentity,
    headers: HeaderMap,
    Json(answer): Json<super::passkeys::ceremony::Registration>,
) -> Response {
    let added = async {
        let origin = origin(&headers)?;
        state.accounts.add_passkey(&identity, origin, answer).await
    };
    match added.await {
        Ok(passkey) => (StatusCode::CREATED, Json(passkey)).into_response(),
        Err(err) => err.into_response(),
    }
}

async fn passkey_sign_in_start(
    State(state): State<AppState>,
    _: AllowedOrigin,
    headers: HeaderMap,
) -> Response {
    match origin(&headers).and_then(|origin| state.accounts.passkey_sign_in_options(origin)) {
        Ok(options) => Json(options).into_response(),
        Err(err) => err.into_response(),
    }
}

async fn passkey_sign_in_finish(
    State(state): State<AppState>,
    _: AllowedOrigin,
    from: ClientAddr,
    identity: Result<ReaderIdentity, Refusal>,
    headers: HeaderMap,
    Json(answer): Json<super::passkeys::ceremony::Assertion>,
) -> Response {
    let facts = facts(&state, &headers, from, &identity);
    let signed_in = async {
        let origin = origin(&headers)?;
        state
            .accounts
            .sign_in_with_passkey(origin, answer, &facts)
            .await
    };
    match signed_in.await {
        Ok(signed_in) => with_session(signed_in_json(&signed_in), &signed_in, facts.secure),
        Err(err) => err.into_response(),
    }
}
