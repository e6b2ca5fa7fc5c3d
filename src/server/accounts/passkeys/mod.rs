//! Passkeys (WebAuthn) as a second way to sign in: a signed-in person adds
//! one on the settings page; anyone signs in with one from the sign-in
//! page, no username typed (discoverable credentials: the authenticator
//! names the account).
//!
//! Each ceremony is two requests. `…/start` answers the options for
//! `navigator.credentials.create()` or `.get()` and a **challenge token**:
//! the challenge, its purpose, the user (registration), and an expiry,
//! MAC'd with the server's key, so any instance sharing `SESSION_SECRET`
//! can finish it and nothing is kept per ceremony. A token is accepted
//! once per instance. `…/finish` checks the browser's answer
//! ([`webauthn`]) against the token, the request's `Origin` (already
//! allowed) and the RP id (that origin's host).

pub mod cbor;
pub mod ceremony;
pub mod webauthn;

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use rand::RngCore;

use crate::{protocol::UserId, server::identity::IdentityKeys};

/// How long a ceremony may take.
pub const CEREMONY: Duration = Duration::from_secs(5 * 60);
/// Used tokens remembered (beyond, the oldest are forgotten; they expire anyway).
const REMEMBER_USED: usize = 10_000;

/// What a challenge is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    Register,
    SignIn,
}

impl Purpose {
    fn tag(self) -> &'static str {
        match self {
            Purpose::Register => "register",
            Purpose::SignIn => "signin",
        }
    }
}

/// A checked challenge token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    pub bytes: Vec<u8>,
    pub purpose: Purpose,
    /// Registration: whose passkey it is.
    pub user: Option<UserId>,
}

/// Makes and checks challenge tokens; remembers which were used.
#[derive(Debug, Default)]
pub struct Challenges {
    used: Mutex<HashMap<String, u64>>,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Challenges {
    /// A new challenge and its token.
    pub fn issue(
        &self,
        keys: &IdentityKeys,
        purpose: Purpose,
        user: Option<&UserId>,
    ) -> (Vec<u8>, String) {
        let mut challenge = vec![0u8; 32];
        rand::rng().fill_bytes(&mut challenge);
        let expires = now_secs() + CEREMONY.as_secs();
        let body = format!(
            "{}.{}.{}.{}",
            purpose.tag(),
            webauthn::b64url(&challenge),
            user.map_or("", UserId::as_str),
            expires
        );
        let mac = webauthn::b64url(&keys.mac_bytes(body.as_bytes()));
        (challenge, format!("{body}.{mac}"))
    }

    /// The challenge of a token this server made for `purpose`, unexpired
    /// and not used before (on this instance); it is used now.
    pub fn redeem(&self, keys: &IdentityKeys, token: &str, purpose: Purpose) -> Option<Challenge> {
        let (body, mac) = token.rsplit_once('.')?;
        let mac = webauthn::from_b64url(mac).ok()?;
        if !keys.verify_bytes(body.as_bytes(), &mac) {
            return None;
        }
        let mut parts = body.split('.');
        let (tag, challenge, user, expires) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let expires: u64 = expires.parse().ok()?;
        let now = now_secs();
        if tag != purpose.tag() || expires < now || parts.next().is_some() {
            return None;
        }
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        if used.len() >= REMEMBER_USED {
            used.retain(|_, until| *until >= now);
        }
        if used.insert(challenge.to_owned(), expires).is_some() {
            return None;
        }
        Some(Challenge {
            bytes: webauthn::from_b64url(challenge).ok()?,
            purpose,
            user: (!user.is_empty()).then(|| UserId(user.to_owned())),
        })
    }
}

/// The RP id of an allowed origin: its host, without port or brackets.
pub fn rp_id(origin: &str) -> Option<String> {
    let rest = origin.split_once("://")?.1;
    let host = if let Some(v6) = rest.strip_prefix('[') {
        v6.split_once(']')?.0
    } else {
        rest.split(':').next()?
    };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_good_once_for_its_purpose_only() {
        let keys = IdentityKeys::new(b"k");
        let challenges = Challenges::default();
        let user = UserId("ab".repeat(16));
        let (bytes, token) = challenges.issue(&keys, Purpose::Register, Some(&user));
        assert_eq!(challenges.redeem(&keys, &token, Purpose::SignIn), None);
        let redeemed = challenges
            .redeem(&keys, &token, Purpose::Register)
            .expect("good");
        assert_eq!(redeemed.bytes, bytes);
        assert_eq!(redeemed.user, Some(user));
        assert_eq!(
            challenges.redeem(&keys, &token, Purpose::Register),
            None,
            "once"
        );
        let (_, token) = challenges.issue(&keys, Purpose::SignIn, None);
        let forged = token.replacen("signin", "register", 1);
        assert_eq!(challenges.redeem(&keys, &forged, Purpose::Register), None);
        let other = IdentityKeys::new(b"other");
        assert_eq!(challenges.redeem(&other, &token, Purpose::SignIn), None);
        assert!(challenges.redeem(&keys, &token, Purpose::SignIn).is_some());
    }

    #[test]
    fn the_rp_id_is_the_origin_host() {
        assert_eq!(
            rp_id("https://chat.example.com").as_deref(),
            Some("chat.example.com")
        );
        assert_eq!(rp_id("http://localhost:3000").as_deref(), Some("localhost"));
        assert_eq!(rp_id("http://[::1]:3000").as_deref(), Some("::1"));
        assert_eq!(rp_id("nonsense"), None);
    }
}
