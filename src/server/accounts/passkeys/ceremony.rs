//! The passkey ceremonies of [`Accounts`]: options for the browser, then
//! its answer checked and stored (registration) or turned into a session
//! (sign-in), and the account's list of passkeys.

use std::time::Instant;

use serde::Deserialize;
use serde_json::{json, Value};

use super::{
    rp_id,
    webauthn::{self, b64url, from_b64url, Expected},
    Purpose, CEREMONY,
};
use crate::{
    protocol::UserId,
    server::{
        accounts::{Accounts, AuthError, Identity, RequestFacts, SignedIn},
        store::{now_rfc3339, AccountStatus, PasskeyRecord},
    },
};

/// Longest name of a passkey.
const MAX_NAME_CHARS: usize = 60;
/// Passkeys one account may have.
pub const MAX_PASSKEYS: usize = 20;
/// The throttle's key for failed passkey sign-ins (per address).
const THROTTLE_KEY: &str = "(passkey)";

/// The browser's answer to `navigator.credentials.create()`.
#[derive(Debug, Deserialize)]
pub struct Registration {
    pub token: String,
    #[serde(default)]
    pub name: Option<String>,
    /// `rawId`, base64url.
    pub id: String,
    pub client_data: String,
    pub attestation_object: String,
}

/// The browser's answer to `navigator.credentials.get()`.
#[derive(Debug, Deserialize)]
pub struct Assertion {
    pub token: String,
    /// `rawId`, base64url.
    pub id: String,
    pub client_data: String,
    pub authenticator_data: String,
    pub signature: String,
    #[serde(default)]
    pub user_handle: Option<String>,
}

/// A passkey as the settings page lists it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PasskeyView {
    pub id: String,
    pub name: String,
    pub created_at: String,
    pub last_used: Option<String>,
}

fn bad(err: webauthn::WebauthnError) -> AuthError {
    AuthError::BadInput(err.to_string())
}

impl Accounts {
    /// The RP id of a request's (allowed) origin.
    fn rp_of(origin: &str) -> Result<String, AuthError> {
        rp_id(origin).ok_or_else(|| AuthError::BadInput("the page's origin has no host".into()))
    }

    /// Options for `navigator.credentials.create()`, for the signed-in
    /// account, and the challenge token to send back.
    pub async fn passkey_registration(
        &self,
        identity: &Identity,
        origin: &str,
    ) -> Result<Value, AuthError> {
        let (username, _) = identity.account().ok_or(AuthError::NotSignedIn)?;
        if identity.session().is_none() {
            return Err(AuthError::BadInput(
                "passkeys are for accounts that sign in here, not through a proxy".into(),
            ));
        }
        let existing = self.store().passkeys(&identity.user).await?;
        if existing.len() >= MAX_PASSKEYS {
            return Err(AuthError::BadInput(format!(
                "an account keeps at most {MAX_PASSKEYS} passkeys; remove one first"
            )));
        }
        let (challenge, token) =
            self.challenges
                .issue(&self.keys, Purpose::Register, Some(&identity.user));
        let exclude: Vec<Value> = existing
            .iter()
            .map(|p| json!({"type": "public-key", "id": p.credential_id}))
            .collect();
        Ok(json!({
            "token": token,
            "publicKey": {
                "challenge": b64url(&challenge),
                "rp": {"name": "Tether", "id": Self::rp_of(origin)?},
                "user": {
                    "id": b64url(identity.user.as_str().as_bytes()),
                    "name": username,
                    "displayName": username,
                },
                "pubKeyCredParams": [{"type": "public-key", "alg": -7}],
                "timeout": CEREMONY.as_millis() as u64,
                "attestation": "none",
                "authenticatorSelection": {
                    "residentKey": "required",
                    "requireResidentKey": true,
                    "userVerification": "preferred",
                },
                "excludeCredentials": exclude,
            },
        }))
    }

    /// Checks a new passkey and keeps it for the account.
    pub async fn add_passkey(
        &self,
        identity: &Identity,
        origin: &str,
        answer: Registration,
    ) -> Result<PasskeyView, AuthError> {
        identity.account().ok_or(AuthError::NotSignedIn)?;
        let challenge = self
            .challenges
            .redeem(&self.keys, &answer.token, Purpose::Register)
            .filter(|c| c.user.as_ref() == Some(&identity.user))
            .ok_or_else(|| AuthError::BadInput("the passkey request expired; try again".into()))?;
        let rp = Self::rp_of(origin)?;
        let expected = Expected {
            kind: "webauthn.create",
            challenge: &challenge.bytes,
            origin,
            rp_id: &rp,
        };
        let made = webauthn::verify_registration(
            &from_b64url(&answer.client_data).map_err(bad)?,
            &from_b64url(&answer.attestation_object).map_err(bad)?,
            &from_b64url(&answer.id).map_err(bad)?,
            &expected,
        )
        .map_err(bad)?;
        let name: String = answer
            .name
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .unwrap_or("Passkey")
            .chars()
            .filter(|c| !c.is_control())
            .take(MAX_NAME_CHARS)
            .collect();
        let record = PasskeyRecord {
            credential_id: b64url(&made.id),
            user_id: identity.user.clone(),
            public_key: made.public_key,
            sign_count: made.sign_count,
            name,
            created_at: now_rfc3339(),
            last_used: None,
        };
        if !self.store().add_passkey(&record).await? {
            return Err(AuthError::BadInput(
                "that passkey is registered already".into(),
            ));
        }
        tracing::info!(user_id = %identity.user, "passkey added");
        Ok(view(record))
    }

    /// Options for `navigator.credentials.get()` (any account's passkey).
    pub fn passkey_sign_in_options(&self, origin: &str) -> Result<Value, AuthError> {
        let (challenge, token) = self.challenges.issue(&self.keys, Purpose::SignIn, None);
        Ok(json!({
            "token": token,
            "publicKey": {
                "challenge": b64url(&challenge),
                "rpId": Self::rp_of(origin)?,
                "timeout": CEREMONY.as_millis() as u64,
                "userVerification": "preferred",
                "allowCredentials": [],
            },
        }))
    }

    /// Checks an assertion and signs its account in (a new session, as a
    /// password sign-in makes). Failures are throttled per address.
    pub async fn sign_in_with_passkey(
        &self,
        origin: &str,
        answer: Assertion,
        facts: &RequestFacts,
    ) -> Result<SignedIn, AuthError> {
        if let Some(wait) = self.throttle.wait(THROTTLE_KEY, facts.from, Instant::now()) {
            return Err(AuthError::Throttled(wait));
        }
        match self.check_assertion(origin, answer).await {
            Ok((user, username)) => self.start_session(user, username, facts).await,
            Err(err @ (AuthError::Pending | AuthError::Disabled | AuthError::Store(_))) => Err(err),
            Err(err) => {
                self.throttle
                    .failed(THROTTLE_KEY, facts.from, Instant::now());
                tracing::info!(client = %facts.from, error = %err, "failed passkey sign-in");
                Err(err)
            }
        }
    }

    async fn check_assertion(
        &self,
        origin: &str,
        answer: Assertion,
    ) -> Result<(UserId, String), AuthError> {
        let challenge = self
            .challenges
            .redeem(&self.keys, &answer.token, Purpose::SignIn)
            .ok_or_else(|| AuthError::BadInput("the passkey request expired; try again".into()))?;
        let unknown = || AuthError::BadInput("this passkey is not known here".into());
        let (passkey, account) = self
            .store()
            .passkey(answer.id.trim_end_matches('='))
            .await?
            .ok_or_else(unknown)?;
        if let Some(handle) = &answer.user_handle {
            if from_b64url(handle).map_err(bad)? != account.user_id.as_str().as_bytes() {
                return Err(unknown());
            }
        }
        let rp = Self::rp_of(origin)?;
        let expected = Expected {
            kind: "webauthn.get",
            challenge: &challenge.bytes,
            origin,
            rp_id: &rp,
        };
        let count = webauthn::verify_assertion(
            &from_b64url(&answer.client_data).map_err(bad)?,
            &from_b64url(&answer.authenticator_data).map_err(bad)?,
            &from_b64url(&answer.signature).map_err(bad)?,
            &passkey.public_key,
            passkey.sign_count,
            &expected,
        )
        .map_err(bad)?;
        match account.status {
            AccountStatus::Active => {}
            AccountStatus::Pending => return Err(AuthError::Pending),
            AccountStatus::Disabled => return Err(AuthError::Disabled),
        }
        self.store()
            .passkey_used(&passkey.credential_id, count, &now_rfc3339())
            .await?;
        Ok((account.user_id, account.username))
    }

    /// The account's passkeys.
    pub async fn passkeys(&self, identity: &Identity) -> Result<Vec<PasskeyView>, AuthError> {
        identity.account().ok_or(AuthError::NotSignedIn)?;
        Ok(self
            .store()
            .passkeys(&identity.user)
            .await?
            .into_iter()
            .map(view)
            .collect())
    }

    /// Removes one of the account's passkeys.
    pub async fn delete_passkey(&self, identity: &Identity, id: &str) -> Result<(), AuthError> {
        identity.account().ok_or(AuthError::NotSignedIn)?;
        Ok(self.store().delete_passkey(&identity.user, id).await?)
    }
}

fn view(p: PasskeyRecord) -> PasskeyView {
    PasskeyView {
        id: p.credential_id,
        name: p.name,
        created_at: p.created_at,
        last_used: p.last_used,
    }
}
