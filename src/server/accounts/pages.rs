//! The account pages, rendered on the server with Leptos' `view!` (every
//! value escaped) and plain HTML forms: sign-in and sign-up work before and
//! without the WASM, with the keyboard alone, and add nothing to the chat
//! page's bundle. Each form posts to its page's path and comes back with a
//! `303` and a message (`?ok=` or `?error=`), or re-renders with the error.
//!
//! * `/signin`, `/signup` (`?invite=` fills the invite code in).
//! * `/settings`: this account's devices (sign one out, sign out
//!   everywhere), passkeys (add, remove) and password.
//!
//! Passkeys need the browser's WebAuthn API: `/passkey.js` (in `public/`)
//! shows and runs their buttons; without it the buttons stay hidden.
//! * `/admin`: users (approve, disable, enable, delete, quotas), invite
//!   links, usage per user per day.

use axum::{
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{Html, IntoResponse, Redirect, Response},
    routing::{get, post},
    Form, Router,
};
use leptos::prelude::*;
use leptos::tachys::view::RenderHtml;
use serde::Deserialize;

use super::{
    normalize_username,
    routes::{
        back, facts, invite_link, safe_next, secure, sign_up_allowed, user_param, with_session,
        without_session, PasswordChange,
    },
    AuthError, Identity, SignUp,
};
use crate::server::{
    access::{address::ClientAddr, AllowedOrigin, CallerIdentity, ReaderIdentity, Refusal},
    config::{AuthMode, Registration},
    identity::encode_next,
    state::AppState,
    store::{AccountRole, AccountStatus},
};

/// The pages and their forms.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/signin", get(sign_in).post(sign_in_form))
        .route("/signup", get(sign_up).post(sign_up_form))
        .route("/signout", post(sign_out))
        .route("/settings", get(settings))
        .route("/settings/sessions/{id}/signout", post(sign_out_session))
        .route("/settings/signout-all", post(sign_out_all))
        .route("/settings/password", post(change_password))
        .route("/settings/passkeys/{id}/delete", post(delete_passkey))
        .route("/admin", get(admin))
        .route("/admin/users/{id}/{action}", post(admin_action))
        .route("/admin/users/{id}/quota", post(admin_quota))
        .route("/admin/invites", post(admin_invite))
}

/// A message carried back to a page.
#[derive(Debug, Default, Deserialize)]
pub struct Flash {
    ok: Option<String>,
    error: Option<String>,
    next: Option<String>,
    invite: Option<String>,
    /// A new invite's code, shown once.
    code: Option<String>,
}

/// A whole page around `body`.
fn document(title: &str, body: impl IntoView + 'static) -> Html<String> {
    let title = format!("{title} · Tether");
    let html = Owner::new().with(move || {
        view! {
            <html lang="en">
                <head>
                    <meta charset="utf-8"/>
                    <meta name="viewport" content="width=device-width, initial-scale=1"/>
                    <meta name="color-scheme" content="light dark"/>
                    <script inner_html=crate::ui::theme::THEME_BOOT></script>
                    <title>{title}</title>
                    <link rel="stylesheet" href="/pkg/tether.css"/>
                    <script src="/passkey.js" defer></script>
                </head>
                <body class="account-page">
                    <main class="account-card">{body}</main>
                </body>
            </html>
        }
        .to_html()
    });
    Html(format!("<!DOCTYPE html>{html}"))
}

fn messages(ok: Option<String>, error: Option<String>) -> impl IntoView {
    view! {
        {ok.map(|text| view! { <p class="account-ok" role="status">{text}</p> })}
        {error.map(|text| view! { <p class="account-error" role="alert">{text}</p> })}
    }
}

/// The sign-in page.
pub(super) fn sign_in_page(
    state: &AppState,
    error: Option<&str>,
    next: &str,
    username: Option<&str>,
) -> Result<Html<String>, AuthError> {
    Ok(sign_in_document(
        state,
        None,
        error.map(str::to_owned),
        next,
        username,
    ))
}

fn sign_in_document(
    state: &AppState,
    ok: Option<String>,
    error: Option<String>,
    next: &str,
    username: Option<&str>,
) -> Html<String> {
    let can_sign_up = state.config.registration != Registration::Closed
        && state.config.registration != Registration::Invite;
    let open = state.config.auth_mode == AuthMode::Open;
    let next = next.to_owned();
    let passkey_next = next.clone();
    let username = username.unwrap_or_default().to_owned();
    document(
        "Sign in",
        view! {
            <h1>"Sign in to Tether"</h1>
            {messages(ok, error)}
            <form method="post" action="/signin" class="account-form">
                <input type="hidden" name="next" value=next/>
                <label>"Username"
                    <input name="username" autocomplete="username" required autofocus
                        value=username maxlength="32"/>
                </label>
                <label>"Password"
                    <input name="password" type="password" autocomplete="current-password"
                        required maxlength="1024"/>
                </label>
                <button type="submit">"Sign in"</button>
            </form>
            // Shown by /passkey.js where the browser can use passkeys.
            <p class="passkey-signin">
                <button type="button" class="secondary" data-passkey="signin" data-next=passkey_next
                    aria-describedby="passkey-status" hidden>"Sign in with a passkey"</button>
                <span id="passkey-status" class="account-error-inline" aria-live="assertive"></span>
            </p>
            {can_sign_up.then(|| view! {
                <p>"New here? " <a href="/signup">"Make an account"</a></p>
            })}
            {open.then(|| view! {
                <p class="account-aside">
                    <a href="/">"Go on without an account"</a>
                    " — your chats then live in this browser only."
                </p>
            })}
        },
    )
}

async fn sign_in(State(state): State<AppState>, Query(flash): Query<Flash>) -> Response {
    let next = safe_next(flash.next.as_deref());
    sign_in_document(&state, flash.ok, flash.error, &next, None).into_response()
}

/// The sign-up page.
pub(super) async fn sign_up_page(
    state: &AppState,
    error: Option<&str>,
    invite: Option<&str>,
    username: Option<&str>,
) -> Result<Html<String>, AuthError> {
    let first = state.chat.store().account_count().await? == 0;
    let registration = state.config.registration;
    let invite = invite.unwrap_or_default().to_owned();
    let needs_invite = !first
        && matches!(registration, Registration::Invite | Registration::Closed)
        && invite.is_empty();
    let note = if first {
        Some("This is the server's first account: it will be the admin.")
    } else if registration == Registration::Approval {
        Some("An admin approves each new account before it can sign in.")
    } else {
        None
    };
    let error = error.map(str::to_owned).or_else(|| {
        needs_invite
            .then(|| "Sign-up on this server needs an invite link from its admin.".to_owned())
    });
    let username = username.unwrap_or_default().to_owned();
    let guest = state.config.auth_mode == AuthMode::Open;
    Ok(document(
        "Make an account",
        view! {
            <h1>"Make an account"</h1>
            {messages(None, error)}
            {note.map(|text| view! { <p class="account-aside">{text}</p> })}
            {guest.then(|| view! {
                <p class="account-aside">
                    "The chats you had here without an account move to it."
                </p>
            })}
            <form method="post" action="/signup" class="account-form">
                <label>"Username"
                    <input name="username" autocomplete="username" required autofocus
                        minlength="3" maxlength="32" pattern="[A-Za-z0-9._\\-]{3,32}"
                        value=username/>
                </label>
                <label>"Password"
                    <input name="password" type="password" autocomplete="new-password"
                        required minlength="8" maxlength="1024"/>
                </label>
                <label>"Password again"
                    <input name="confirm" type="password" autocomplete="new-password"
                        required minlength="8" maxlength="1024"/>
                </label>
                <label class:hidden=move || invite.is_empty() && !needs_invite>"Invite code"
                    <input name="invite" value=invite.clone() autocomplete="off"/>
                </label>
                <button type="submit">"Make my account"</button>
            </form>
            <p>"Have one? " <a href="/signin">"Sign in"</a></p>
        },
    ))
}

async fn sign_up(State(state): State<AppState>, Query(flash): Query<Flash>) -> Response {
    match sign_up_page(
        &state,
        flash.error.as_deref(),
        flash.invite.as_deref(),
        None,
    )
    .await
    {
        Ok(page) => page.into_response(),
        Err(err) => err.into_response(),
    }
}

/// `POST /signout`: ends this session, back to the sign-in page.
async fn sign_out(
    State(state): State<AppState>,
    CallerIdentity(identity): CallerIdentity,
    headers: HeaderMap,
) -> Response {
    let secure = secure(&state, &headers);
    match state.accounts.sign_out(&identity).await {
        Ok(()) => without_session(back("/signin", "ok", "You are signed out."), secure),
        Err(err) => err.into_response(),
    }
}

/// An account page's identity, or the way to the sign-in page.
fn signed_in(
    identity: Result<ReaderIdentity, Refusal>,
    path: &str,
) -> Result<Identity, Box<Response>> {
    match identity {
        Ok(ReaderIdentity(identity)) if identity.account().is_some() => Ok(identity),
        Ok(_) | Err(Refusal::NoIdentity | Refusal::SignIn) => Err(Box::new(
            Redirect::to(&format!("/signin?next={}", encode_next(path))).into_response(),
        )),
        Err(refusal) => Err(Box::new(refusal.into_response())),
    }
}

/// `GET /settings`.
async fn settings(
    State(state): State<AppState>,
    identity: Result<ReaderIdentity, Refusal>,
    Query(flash): Query<Flash>,
) -> Response {
    let identity = match signed_in(identity, "/settings") {
        Ok(identity) => identity,
        Err(response) => return *response,
    };
    let sessions = match state.accounts.sessions(&identity).await {
        Ok(sessions) => sessions,
        Err(err) => return err.into_response(),
    };
    let passkeys = match state.accounts.passkeys(&identity).await {
        Ok(passkeys) => passkeys,
        Err(err) => return err.into_response(),
    };
    let passkey_rows = passkeys
        .into_iter()
        .map(|p| {
            let action = format!("/settings/passkeys/{}/delete", p.id);
            let used = p.last_used.unwrap_or_else(|| "never".into());
            view! {
                <li class="passkey-row">
                    <span class="session-device">{p.name}</span>
                    <span class="session-times">
                        "added " <time>{p.created_at}</time> ", last used " {used}
                    </span>
                    <form method="post" action=action>
                        <button type="submit">"Remove"</button>
                    </form>
                </li>
            }
        })
        .collect_view();
    let (username, role) = identity.account().unwrap_or(("", AccountRole::Member));
    let username = username.to_owned();
    let admin = role == AccountRole::Admin;
    let current = identity.session().map(|(id, _)| id.to_owned());
    let has_password = identity.session().is_some();
    let rows = sessions
        .into_iter()
        .map(|s| {
            let this = current.as_deref() == Some(s.public_id.as_str());
            let action = format!("/settings/sessions/{}/signout", s.public_id);
            view! {
                <li class="session-row" data-session=s.public_id.clone()>
                    <span class="session-device">{s.device}</span>
                    {this.then(|| view! { <strong class="session-current">" (this device)"</strong> })}
                    <span class="session-times">
                        "signed in " <time>{s.created_at}</time>
                        ", last seen " <time>{s.last_seen}</time>
                    </span>
                    <form method="post" action=action>
                        <button type="submit">"Sign out"</button>
                    </form>
                </li>
            }
        })
        .collect_view();
    document(
        "Settings",
        view! {
            <nav class="account-nav">
                <a href="/">"← Back to chat"</a>
                {admin.then(|| view! { <a href="/admin">"Admin"</a> })}
            </nav>
            <h1>"Settings"</h1>
            <p>"Signed in as " <strong class="account-name">{username}</strong></p>
            {messages(flash.ok, flash.error)}
            <section aria-labelledby="devices">
                <h2 id="devices">"Devices"</h2>
                <ul class="session-list">{rows}</ul>
                <form method="post" action="/settings/signout-all">
                    <button type="submit">"Sign out everywhere"</button>
                </form>
                <form method="post" action="/signout">
                    <button type="submit">"Sign out of this device"</button>
                </form>
            </section>
            {has_password.then(|| view! {
                <section aria-labelledby="passkeys">
                    <h2 id="passkeys">"Passkeys"</h2>
                    <p class="account-aside">
                        "Sign in with your device's screen lock or a security key instead of the password."
                    </p>
                    <ul class="session-list">{passkey_rows}</ul>
                    <div class="passkey-add">
                        <label>"Name"
                            <input id="passkey-name" value="Passkey" maxlength="60"/>
                        </label>
                        <button type="button" data-passkey="register"
                            aria-describedby="passkey-status" hidden>"Add a passkey"</button>
                        <span id="passkey-status" class="account-error-inline" aria-live="assertive"></span>
                    </div>
                </section>
            })}
            {has_password.then(|| view! {
                <section aria-labelledby="password">
                    <h2 id="password">"Password"</h2>
                    <form method="post" action="/settings/password" class="account-form">
                        <label>"Current password"
                            <input name="current" type="password" autocomplete="current-password"
                                required maxlength="1024"/>
                        </label>
                        <label>"New password"
                            <input name="new" type="password" autocomplete="new-password"
                                required minlength="8" maxlength="1024"/>
                        </label>
                        <button type="submit">"Change password"</button>
                        <p class="account-aside">"Your other devices are signed out."</p>
                    </form>
                </section>
            })}
        },
    )
    .into_response()
}

async fn sign_out_session(
    State(state): State<AppState>,
    CallerIdentity(identity): CallerIdentity,
    Path(id): Path<String>,
) -> Response {
    let this = identity.session().is_some_and(|(current, _)| current == id);
    match state.accounts.sign_out_sessions(&identity, Some(&id)).await {
        Ok(_) if this => back("/signin", "ok", "You are signed out."),
        Ok(_) => back("/settings", "ok", "That device is signed out."),
        Err(err) => back("/settings", "error", &err.to_string()),
    }
}

async fn sign_out_all(
    State(state): State<AppState>,
    CallerIdentity(identity): CallerIdentity,
    headers: HeaderMap,
) -> Response {
    let secure = secure(&state, &headers);
    match state.accounts.sign_out_sessions(&identity, None).await {
        Ok(n) => without_session(
            back(
                "/signin",
                "ok",
                &format!("Signed out everywhere ({n} devices)."),
            ),
            secure,
        ),
        Err(err) => back("/settings", "error", &err.to_string()),
    }
}

async fn change_password(
    State(state): State<AppState>,
    from: ClientAddr,
    CallerIdentity(identity): CallerIdentity,
    Form(change): Form<PasswordChange>,
) -> Response {
    match state
        .accounts
        .change_password(&identity, &change.current, &change.new, from.0)
        .await
    {
        Ok(n) => back(
            "/settings",
            "ok",
            &format!("Password changed; {n} other devices signed out."),
        ),
        Err(err) => back("/settings", "error", &err.to_string()),
    }
}

async fn delete_passkey(
    State(state): State<AppState>,
    CallerIdentity(identity): CallerIdentity,
    Path(id): Path<String>,
) -> Response {
    match state.accounts.delete_passkey(&identity, &id).await {
        Ok(()) => back("/settings", "ok", "Passkey removed."),
        Err(err) => back("/settings", "error", &err.to_string()),
    }
}

/// `GET /admin`.
async fn admin(
    State(state): State<AppState>,
    identity: Result<ReaderIdentity, Refusal>,
    Query(flash): Query<Flash>,
) -> Response {
    let identity = match signed_in(identity, "/admin") {
        Ok(identity) => identity,
        Err(response) => return *response,
    };
    let loaded = async {
        Ok::<_, AuthError>((
            state.accounts.users(&identity).await?,
            state.accounts.invites(&identity).await?,
            state.accounts.usage(&identity, 14).await?,
        ))
    };
    let (users, invites, usage) = match loaded.await {
        Ok(loaded) => loaded,
        Err(AuthError::NotAdmin) => {
            return (StatusCode::FORBIDDEN, AuthError::NotAdmin.to_string()).into_response()
        }
        Err(err) => return err.into_response(),
    };
    let me = identity.user.0.clone();
    let limits = state.config.limits;
    let default_messages = limits
        .quota_messages_per_day
        .map_or("no limit".to_owned(), |n| n.to_string());
    let default_tokens = limits
        .quota_tokens_per_day
        .map_or("no limit".to_owned(), |n| n.to_string());
    let user_rows = users
        .into_iter()
        .map(|u| {
            let base = format!("/admin/users/{}", u.user_id);
            let is_me = u.user_id == me;
            let actions: Vec<(&str, &str)> = match u.status {
                "pending" => vec![("approve", "Approve"), ("delete", "Delete")],
                "disabled" => vec![("enable", "Enable"), ("delete", "Delete")],
                _ if is_me => vec![],
                _ => vec![("disable", "Disable"), ("delete", "Delete")],
            };
            let buttons = actions
                .into_iter()
                .map(|(action, label)| {
                    let url = format!("{base}/{action}");
                    let confirm = (action == "delete").then_some(
                        "return confirm('Delete this account and all its conversations?')",
                    );
                    view! {
                        <form method="post" action=url onsubmit=confirm>
                            <button type="submit" data-action=action>{label}</button>
                        </form>
                    }
                })
                .collect_view();
            let quota_url = format!("{base}/quota");
            let messages = u.quota_messages.map(|n| n.to_string()).unwrap_or_default();
            let tokens = u.quota_tokens.map(|n| n.to_string()).unwrap_or_default();
            let name = u.username.clone();
            view! {
                <tr data-user=name>
                    <td>{u.username}</td>
                    <td>{u.role}</td>
                    <td class="user-status">{u.status}</td>
                    <td>{u.messages_today} " / " {u.tokens_today}</td>
                    <td>
                        <form method="post" action=quota_url class="quota-form">
                            <input name="messages" inputmode="numeric" value=messages
                                placeholder="default" aria-label="Messages per day" size="7"/>
                            <input name="tokens" inputmode="numeric" value=tokens
                                placeholder="default" aria-label="Tokens per day" size="9"/>
                            <button type="submit">"Set"</button>
                        </form>
                    </td>
                    <td class="user-actions">{buttons}</td>
                </tr>
            }
        })
        .collect_view();
    let invite_rows = invites
        .into_iter()
        .map(|i| {
            let state = if i.used_by.is_some() {
                "used"
            } else {
                "unused"
            };
            view! {
                <li>
                    "made " <time>{i.created_at}</time> ", expires " <time>{i.expires_at}</time>
                    ", " {state}
                </li>
            }
        })
        .collect_view();
    let usage_rows = usage
        .into_iter()
        .map(|d| {
            view! {
                <tr>
                    <td>{d.day}</td>
                    <td>{d.username.unwrap_or_else(|| "(guest)".into())}</td>
                    <td>{d.messages}</td>
                    <td>{d.tokens}</td>
                </tr>
            }
        })
        .collect_view();
    let new_link = flash.code.map(|code| invite_link(&code));
    let registration = state.config.registration.to_string();
    document(
        "Admin",
        view! {
            <nav class="account-nav">
                <a href="/">"← Back to chat"</a>
                <a href="/settings">"Settings"</a>
            </nav>
            <h1>"Admin"</h1>
            {messages(flash.ok, flash.error)}
            <section aria-labelledby="users">
                <h2 id="users">"Users"</h2>
                <p class="account-aside">
                    "Sign-up: " <strong>{registration}</strong>
                    ". Default quota per day: " {default_messages} " messages, "
                    {default_tokens} " tokens (empty fields use it)."
                </p>
                <table class="admin-users">
                    <thead>
                        <tr>
                            <th>"User"</th><th>"Role"</th><th>"Status"</th>
                            <th>"Today (messages / tokens)"</th><th>"Quota per day"</th><th></th>
                        </tr>
                    </thead>
                    <tbody>{user_rows}</tbody>
                </table>
            </section>
            <section aria-labelledby="invites">
                <h2 id="invites">"Invite links"</h2>
                {new_link.map(|link| view! {
                    <p class="account-ok" role="status">
                        "New invite link (single use, shown once): "
                        <code class="invite-link">{link}</code>
                    </p>
                })}
                <form method="post" action="/admin/invites">
                    <button type="submit">"Make an invite link"</button>
                </form>
                <ul>{invite_rows}</ul>
            </section>
            <section aria-labelledby="usage">
                <h2 id="usage">"Usage, last 14 days"</h2>
                <table class="admin-usage">
                    <thead><tr><th>"Day"</th><th>"User"</th><th>"Messages"</th><th>"Tokens"</th></tr></thead>
                    <tbody>{usage_rows}</tbody>
                </table>
            </section>
        },
    )
    .into_response()
}

async fn admin_action(
    State(state): State<AppState>,
    CallerIdentity(identity): CallerIdentity,
    Path((id, action)): Path<(String, String)>,
) -> Response {
    let result = async {
        let user = user_param(&id)?;
        match action.as_str() {
            "approve" | "enable" => {
                state
                    .accounts
                    .set_status(&identity, &user, AccountStatus::Active)
                    .await
            }
            "disable" => {
                state
                    .accounts
                    .set_status(&identity, &user, AccountStatus::Disabled)
                    .await
            }
            "delete" => state.accounts.delete_user(&identity, &user).await,
            _ => Err(AuthError::NotFound),
        }
    };
    match result.await {
        Ok(()) => back("/admin", "ok", "Done."),
        Err(err) => back("/admin", "error", &err.to_string()),
    }
}

#[derive(Deserialize)]
struct QuotaForm {
    messages: String,
    tokens: String,
}

/// An empty field is the default; else a whole number.
fn quota_field(text: &str, what: &str) -> Result<Option<u64>, AuthError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|_| AuthError::BadInput(format!("{what} per day is a whole number, or empty")))
}

async fn admin_quota(
    State(state): State<AppState>,
    CallerIdentity(identity): CallerIdentity,
    Path(id): Path<String>,
    Form(form): Form<QuotaForm>,
) -> Response {
    let result = async {
        let user = user_param(&id)?;
        let messages = quota_field(&form.messages, "messages")?;
        let tokens = quota_field(&form.tokens, "tokens")?;
        state
            .accounts
            .set_quota(&identity, &user, messages, tokens)
            .await
    };
    match result.await {
        Ok(()) => back("/admin", "ok", "Quota set."),
        Err(err) => back("/admin", "error", &err.to_string()),
    }
}

async fn admin_invite(
    State(state): State<AppState>,
    CallerIdentity(identity): CallerIdentity,
) -> Response {
    match state.accounts.invite(&identity).await {
        Ok(invite) => back("/admin", "code", &invite.code),
        Err(err) => back("/admin", "error", &err.to_string()),
    }
}

/// The sign-in form's fields.
#[derive(Deserialize)]
struct SignInForm {
    pub username: String,
    pub password: String,
    pub next: Option<String>,
}

/// `POST /signin` (the form).
async fn sign_in_form(
    State(state): State<AppState>,
    _: AllowedOrigin,
    from: ClientAddr,
    identity: Result<ReaderIdentity, Refusal>,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Response {
    let facts = facts(&state, &headers, from, &identity);
    let next = safe_next(form.next.as_deref());
    match state
        .accounts
        .sign_in(&form.username, &form.password, &facts)
        .await
    {
        Ok(signed_in) => with_session(
            Redirect::to(&next).into_response(),
            &signed_in,
            facts.secure,
        ),
        Err(err) => {
            let status = err.status();
            sign_in_page(&state, Some(&err.to_string()), &next, Some(&form.username))
                .map(|page| (status, page).into_response())
                .unwrap_or_else(|e| e.into_response())
        }
    }
}

/// The sign-up form's fields.
#[derive(Deserialize)]
struct SignUpForm {
    pub username: String,
    pub password: String,
    pub confirm: String,
    pub invite: Option<String>,
}

/// `POST /signup` (the form).
async fn sign_up_form(
    State(state): State<AppState>,
    _: AllowedOrigin,
    from: ClientAddr,
    identity: Result<ReaderIdentity, Refusal>,
    headers: HeaderMap,
    Form(form): Form<SignUpForm>,
) -> Response {
    let facts = facts(&state, &headers, from, &identity);
    let result = if let Err(err) = sign_up_allowed(&state, from) {
        Err(err)
    } else if form.password == form.confirm {
        let sign_up = SignUp {
            username: form.username.clone(),
            password: form.password,
            invite: form.invite.clone(),
        };
        state.accounts.sign_up(sign_up, &facts).await
    } else {
        Err(AuthError::BadInput("the two passwords differ".into()))
    };
    match result {
        Ok(signed_in) => with_session(Redirect::to("/").into_response(), &signed_in, facts.secure),
        Err(AuthError::Pending) => back(
            "/signin",
            "ok",
            "Your account was made. It waits for an admin's approval; sign in once it is approved.",
        ),
        Err(err) => {
            let status = err.status();
            let name = normalize_username(&form.username).ok();
            sign_up_page(
                &state,
                Some(&err.to_string()),
                form.invite.as_deref(),
                name.as_deref(),
            )
            .await
            .map(|page| (status, page).into_response())
            .unwrap_or_else(|e| e.into_response())
        }
    }
}
