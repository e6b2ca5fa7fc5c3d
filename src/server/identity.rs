//! Who is talking: a server-issued, HMAC-signed identity cookie.
//!
//! The cookie value is `<user id>.<hex HMAC-SHA256(user id)>`; the user id is
//! 128 random bits made by the server. Clients cannot choose or forge one, and
//! `?uid=` style parameters are never read. The signing key comes from
//! `SESSION_SECRET`, or is generated once and kept in the data directory.

use std::{
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use std::net::SocketAddr;

use axum::{
    extract::{ConnectInfo, Request, State},
    http::{header, HeaderMap, HeaderValue, Method, StatusCode},
    middleware::Next,
    response::{IntoResponse, Redirect, Response},
};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use super::{
    access::address::{client_addr, AddrKey},
    accounts::{has_session_cookie, Accounts},
    chat::limits::RateLimiter,
    config::{AuthMode, Config},
    metrics::{AddressLimit, Metrics},
};
use crate::protocol::UserId;

/// Name of the identity cookie.
pub const COOKIE_NAME: &str = "tether_id";

/// A year: identities outlive browser sessions.
const COOKIE_MAX_AGE_SECS: u64 = 365 * 24 * 3600;

type HmacSha256 = Hmac<Sha256>;

/// Signs and verifies identity cookies.
#[derive(Clone)]
pub struct IdentityKeys {
    key: Vec<u8>,
}

impl std::fmt::Debug for IdentityKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdentityKeys(<redacted>)")
    }
}

impl IdentityKeys {
    pub fn new(secret: &[u8]) -> Self {
        Self {
            key: secret.to_vec(),
        }
    }

    /// The explicit secret, or the one persisted in `data_dir` (created on first start).
    pub fn load_or_create(explicit: Option<&str>, data_dir: &Path) -> std::io::Result<Self> {
        if let Some(secret) = explicit {
            return Ok(Self::new(secret.as_bytes()));
        }
        let path = data_dir.join("session_secret");
        if let Ok(existing) = std::fs::read_to_string(&path) {
            let existing = existing.trim();
            if existing.len() >= 32 {
                return Ok(Self::new(existing.as_bytes()));
            }
        }
        std::fs::create_dir_all(data_dir)?;
        let secret = random_secret();
        write_private(&path, &secret)?;
        Ok(Self::new(secret.as_bytes()))
    }

    /// A new random user and its cookie value.
    pub fn issue(&self) -> (UserId, String) {
        let user = new_user_id();
        let value = self.sign(&user);
        (user, value)
    }

    /// The cookie value for `user`.
    pub fn sign(&self, user: &UserId) -> String {
        format!("{}.{}", user, hex::encode(self.mac(user.as_str())))
    }

    /// The user a cookie value proves, if its signature is valid.
    pub fn verify(&self, value: &str) -> Option<UserId> {
        let (user, sig) = value.split_once('.')?;
        if user.len() != 32 || !user.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let sig = hex::decode(sig).ok()?;
        let mut mac = HmacSha256::new_from_slice(&self.key).ok()?;
        mac.update(user.as_bytes());
        mac.verify_slice(&sig).ok()?;
        Some(UserId(user.to_owned()))
    }

    /// The verified user of a request's `Cookie` headers.
    pub fn user_from_headers(&self, headers: &HeaderMap) -> Option<UserId> {
        cookie_values(headers, COOKIE_NAME).find_map(|v| self.verify(v))
    }

    /// HMAC-SHA256 of `data` under the cookie key (passkey challenge tokens).
    pub fn mac_bytes(&self, data: &[u8]) -> Vec<u8> {
        let mut mac = HmacSha256::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(data);
        mac.finalize().into_bytes().to_vec()
    }

    /// Whether `tag` is [`IdentityKeys::mac_bytes`] of `data` (in constant time).
    pub fn verify_bytes(&self, data: &[u8], tag: &[u8]) -> bool {
        HmacSha256::new_from_slice(&self.key).is_ok_and(|mut mac| {
            mac.update(data);
            mac.verify_slice(tag).is_ok()
        })
    }

    fn mac(&self, user: &str) -> Vec<u8> {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac = HmacSha256::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(user.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}

/// Every value of cookie `name` in the request.
pub(crate) fn cookie_values<'a>(
    headers: &'a HeaderMap,
    name: &'a str,
) -> impl Iterator<Item = &'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(move |pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == name).then_some(v)
        })
}

/// Whether the request reached us over https (directly or via a proxy that says so).
pub(crate) fn is_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// What the cookie middleware needs: the keys, whether cookies are
/// `Secure` (`None`: when the request came over https), how many new
/// identities each client address may be given (`IDENTITY_BURST`,
/// `IDENTITY_PER_SEC`), and the accounts (which sessions are valid).
#[derive(Clone, Debug)]
pub struct CookiePolicy {
    pub keys: Arc<IdentityKeys>,
    pub secure: Option<bool>,
    pub config: Arc<Config>,
    pub issued: Arc<RateLimiter<AddrKey>>,
    pub metrics: Arc<Metrics>,
    pub accounts: Arc<Accounts>,
}

/// A path the app renders as a chat page (the ones that need a user).
fn is_chat_page(path: &str) -> bool {
    path == "/" || path.starts_with("/c/")
}

/// Middleware, by `AUTH_MODE`:
///
/// * `open`: an HTML `GET` (or `GET /api/session`) without a valid identity
///   gets a fresh guest cookie, unless its address was given too many
///   lately: then `429` with a reason and `Retry-After`. A signed-in
///   browser (a valid session cookie) gets none; a stale session cookie is
///   removed.
/// * `accounts`: no guest cookies; a chat page without a signed-in user
///   is a `303` to `/signin`.
pub async fn issue_cookie(
    State(policy): State<CookiePolicy>,
    mut request: Request,
    next: Next,
) -> Response {
    let is_get = request.method() == Method::GET;
    let session_endpoint = request.uri().path() == "/api/session";
    let chat_page = is_get && is_chat_page(request.uri().path());
    let page = chat_page || (is_get && session_endpoint);
    let session_cookie = page && has_session_cookie(request.headers());
    let secure = policy.secure.unwrap_or_else(|| is_https(request.headers()));
    // Who a chat page is for (kept for the page's own lookups).
    let mut stale_session = false;
    let mut signed_in = false;
    if page && (policy.config.auth_mode == AuthMode::Accounts || session_cookie) {
        let peer = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(peer)| super::config::canonical_ip(peer.ip()));
        match policy
            .accounts
            .identify(request.headers(), peer, &policy.keys)
            .await
        {
            Ok(Some(identity)) => {
                signed_in = identity.account().is_some();
                request.extensions_mut().insert(identity);
            }
            Ok(None) => stale_session = session_cookie,
            Err(err) => {
                tracing::warn!(error = %err, "could not look up who a page is for");
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the database cannot be used right now; try again in a moment",
                )
                    .into_response();
            }
        }
    }
    if policy.config.auth_mode == AuthMode::Accounts {
        if chat_page && !signed_in {
            let next = encode_next(request.uri().path());
            let mut response = Redirect::to(&format!("/signin?next={next}")).into_response();
            if stale_session {
                clear_session(&mut response, secure);
            }
            return response;
        }
        return next.run(request).await;
    }
    let needs_cookie =
        is_get && !signed_in && policy.keys.user_from_headers(request.headers()).is_none();
    let trusted = &policy.config.trusted_proxies;
    let from = needs_cookie.then(|| client_addr(request.extensions(), request.headers(), trusted));
    let mut response = next.run(request).await;
    if stale_session {
        clear_session(&mut response, secure);
    }
    let is_html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    let new_identity = from.filter(|_| is_html || session_endpoint);
    if let Some(from) = new_identity {
        if let Err(wait) = policy.issued.check(&from, Instant::now()) {
            policy.metrics.address_limited(AddressLimit::Identities);
            tracing::info!(client = %from, "refused a new identity: too many from this address");
            return too_many_identities(wait);
        }
        let (user, value) = policy.keys.issue();
        tracing::debug!(user_id = %user, "issued identity cookie");
        let cookie = cookie(COOKIE_NAME, &value, COOKIE_MAX_AGE_SECS, secure);
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    response
}

/// Removes a session cookie the server no longer knows.
fn clear_session(response: &mut Response, secure: bool) {
    let [session, _] = super::accounts::clearing_cookies(secure);
    if let Ok(v) = HeaderValue::from_str(&session) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// A path for `?next=`: only this site's paths, percent-encoded.
pub fn encode_next(path: &str) -> String {
    path.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// `429`: this address was given too many identities lately.
fn too_many_identities(wait: Duration) -> Response {
    let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
    let reason = format!("too many new visitors from your network address; try again in {secs} s");
    let mut response = (StatusCode::TOO_MANY_REQUESTS, reason).into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    response
}

/// A new user's id: 128 random bits, hex (guests and accounts alike).
pub fn new_user_id() -> UserId {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    UserId(hex::encode(bytes))
}

/// A `Set-Cookie` value as Tether sets every cookie: the whole site,
/// `HttpOnly`, `SameSite=Lax`, `Secure` when asked. A `max_age` of 0
/// removes the cookie.
pub fn cookie(name: &str, value: &str, max_age: u64, secure: bool) -> String {
    format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{}",
        if secure { "; Secure" } else { "" }
    )
}

/// A new random cookie key: 32 random bytes, hex.
pub fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_cookie_verifies_and_tampering_fails() {
        let keys = IdentityKeys::new(b"secret");
        let (user, value) = keys.issue();
        assert_eq!(keys.verify(&value), Some(user.clone()));
        let other = IdentityKeys::new(b"other secret");
        assert_eq!(other.verify(&value), None, "foreign key must not verify");
        let forged = format!(
            "{}.{}",
            "0".repeat(32),
            value.split_once('.').expect("dot").1
        );
        assert_eq!(keys.verify(&forged), None, "signature bound to the user id");
        assert_eq!(
            keys.verify(user.as_str()),
            None,
            "bare id is not an identity"
        );
        assert_eq!(keys.verify(""), None);
    }

    #[test]
    fn cookie_found_among_others() {
        let keys = IdentityKeys::new(b"k");
        let (user, value) = keys.issue();
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("a=b; {COOKIE_NAME}={value}; c=d")).expect("header"),
        );
        assert_eq!(keys.user_from_headers(&headers), Some(user));
    }

    #[test]
    fn secret_is_persisted_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = IdentityKeys::load_or_create(None, dir.path()).expect("created");
        let b = IdentityKeys::load_or_create(None, dir.path()).expect("loaded");
        let (_, value) = a.issue();
        assert!(b.verify(&value).is_some());
    }
}
