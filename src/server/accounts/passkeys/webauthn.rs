//! The relying party's checks of WebAuthn (Level 2, §7.1 and §7.2) for
//! what Tether asks of authenticators: ES256 (ECDSA P-256 with SHA-256)
//! discoverable credentials, attestation `none` (no claim about the
//! authenticator's make is checked or kept), user presence required.
//!
//! * [`verify_registration`]: the client data (type, challenge, origin),
//!   the authenticator data (RP id hash, user present, attested credential
//!   data) and the credential's COSE key, made a P-256 public key.
//! * [`verify_assertion`]: the same client data and authenticator data
//!   checks, then the signature over `authenticatorData ‖ SHA-256(clientDataJSON)`
//!   with the stored key, and the signature counter.

use p256::ecdsa::{signature::Verifier, DerSignature, VerifyingKey};
use sha2::{Digest, Sha256};

use super::cbor::{self, Value};

/// Authenticator data flags.
const USER_PRESENT: u8 = 0x01;
const ATTESTED_DATA: u8 = 0x40;
/// COSE: key type EC2, algorithm ES256, curve P-256.
const COSE_EC2: i128 = 2;
const COSE_ES256: i128 = -7;
const COSE_P256: i128 = 1;
/// Longest credential id accepted (the spec's limit).
const MAX_CREDENTIAL_ID: usize = 1023;

/// Why a credential or an assertion was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WebauthnError {
    #[error("the browser's data is not what a passkey sends: {0}")]
    Malformed(&'static str),
    #[error("this passkey answer was for another request (type, challenge or site)")]
    WrongContext,
    #[error("the passkey was made for another site")]
    WrongRelyingParty,
    #[error("the authenticator did not confirm a person was present")]
    NotPresent,
    #[error("only ES256 (P-256) passkeys are supported")]
    UnsupportedKey,
    #[error("the passkey's signature does not verify")]
    BadSignature,
    #[error("the passkey's counter went backwards: it may have been copied")]
    CounterWentBack,
}

/// What a request expects of the client data.
#[derive(Clone, Copy, Debug)]
pub struct Expected<'a> {
    /// `webauthn.create` or `webauthn.get`.
    pub kind: &'a str,
    pub challenge: &'a [u8],
    /// The page's origin, `scheme://host[:port]`.
    pub origin: &'a str,
    /// The relying party id: the origin's host.
    pub rp_id: &'a str,
}

/// A credential made by [`verify_registration`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewCredential {
    pub id: Vec<u8>,
    /// SEC1 uncompressed point (65 bytes).
    pub public_key: Vec<u8>,
    pub sign_count: u32,
}

/// The parts of authenticator data.
struct AuthData<'a> {
    rp_id_hash: &'a [u8],
    flags: u8,
    sign_count: u32,
    /// What follows the fixed 37 bytes (attested credential data, extensions).
    rest: &'a [u8],
}

fn auth_data(bytes: &[u8]) -> Result<AuthData<'_>, WebauthnError> {
    if bytes.len() < 37 {
        return Err(WebauthnError::Malformed("authenticator data too short"));
    }
    Ok(AuthData {
        rp_id_hash: &bytes[..32],
        flags: bytes[32],
        sign_count: u32::from_be_bytes([bytes[33], bytes[34], bytes[35], bytes[36]]),
        rest: &bytes[37..],
    })
}

/// Base64url without padding, as WebAuthn writes binary data in JSON.
pub fn b64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Reads base64url, padded or not.
pub fn from_b64url(text: &str) -> Result<Vec<u8>, WebauthnError> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|_| WebauthnError::Malformed("not base64url"))
}

/// Checks `clientDataJSON` (§7.1 steps 7–12, §7.2 steps 11–16).
fn check_client_data(client_data: &[u8], expected: &Expected<'_>) -> Result<(), WebauthnError> {
    #[derive(serde::Deserialize)]
    struct ClientData {
        #[serde(rename = "type")]
        kind: String,
        challenge: String,
        origin: String,
    }
    let data: ClientData = serde_json::from_slice(client_data)
        .map_err(|_| WebauthnError::Malformed("client data is not the expected JSON"))?;
    let challenge = from_b64url(&data.challenge)?;
    if data.kind != expected.kind
        || challenge != expected.challenge
        || data.origin != expected.origin
    {
        return Err(WebauthnError::WrongContext);
    }
    Ok(())
}

fn check_auth_data(data: &AuthData<'_>, rp_id: &str) -> Result<(), WebauthnError> {
    if data.rp_id_hash != Sha256::digest(rp_id.as_bytes()).as_slice() {
        return Err(WebauthnError::WrongRelyingParty);
    }
    if data.flags & USER_PRESENT == 0 {
        return Err(WebauthnError::NotPresent);
    }
    Ok(())
}

/// A COSE_Key (EC2, ES256, P-256) as a SEC1 uncompressed point, checked
/// to be on the curve.
fn cose_p256(key: &Value) -> Result<Vec<u8>, WebauthnError> {
    let int = |label: i128| key.get(&Value::Int(label)).and_then(Value::as_int);
    let bytes = |label: i128| key.get(&Value::Int(label)).and_then(Value::as_bytes);
    if int(1) != Some(COSE_EC2) || int(3) != Some(COSE_ES256) || int(-1) != Some(COSE_P256) {
        return Err(WebauthnError::UnsupportedKey);
    }
    let (Some(x), Some(y)) = (bytes(-2), bytes(-3)) else {
        return Err(WebauthnError::UnsupportedKey);
    };
    if x.len() != 32 || y.len() != 32 {
        return Err(WebauthnError::UnsupportedKey);
    }
    let mut point = Vec::with_capacity(65);
    point.push(0x04);
    point.extend_from_slice(x);
    point.extend_from_slice(y);
    VerifyingKey::from_sec1_bytes(&point).map_err(|_| WebauthnError::UnsupportedKey)?;
    Ok(point)
}

/// Verifies a new credential (`navigator.credentials.create`'s answer).
pub fn verify_registration(
    client_data: &[u8],
    attestation_object: &[u8],
    raw_id: &[u8],
    expected: &Expected<'_>,
) -> Result<NewCredential, WebauthnError> {
    check_client_data(client_data, expected)?;
    let (attestation, _) = cbor::decode(attestation_object)
        .map_err(|_| WebauthnError::Malformed("attestation object is not CBOR"))?;
    let auth_bytes = attestation
        .get(&Value::Text("authData".into()))
        .and_then(Value::as_bytes)
        .ok_or(WebauthnError::Malformed(
            "attestation object without authData",
        ))?;
    // Attestation `none` was asked for; any statement is ignored, not trusted.
    let data = auth_data(auth_bytes)?;
    check_auth_data(&data, expected.rp_id)?;
    if data.flags & ATTESTED_DATA == 0 || data.rest.len() < 18 {
        return Err(WebauthnError::Malformed("no attested credential data"));
    }
    let id_len = usize::from(u16::from_be_bytes([data.rest[16], data.rest[17]]));
    if id_len == 0 || id_len > MAX_CREDENTIAL_ID {
        return Err(WebauthnError::Malformed("credential id length"));
    }
    let id = data
        .rest
        .get(18..18 + id_len)
        .ok_or(WebauthnError::Malformed("credential id cut short"))?;
    if id != raw_id {
        return Err(WebauthnError::Malformed("credential id differs from rawId"));
    }
    let (key, _) = cbor::decode(&data.rest[18 + id_len..])
        .map_err(|_| WebauthnError::Malformed("credential public key is not CBOR"))?;
    Ok(NewCredential {
        id: id.to_vec(),
        public_key: cose_p256(&key)?,
        sign_count: data.sign_count,
    })
}

/// Verifies an assertion (`navigator.credentials.get`'s answer) with the
/// stored key; returns the new signature counter.
pub fn verify_assertion(
    client_data: &[u8],
    authenticator_data: &[u8],
    signature: &[u8],
    public_key: &[u8],
    stored_count: u32,
    expected: &Expected<'_>,
) -> Result<u32, WebauthnError> {
    check_client_data(client_data, expected)?;
    let data = auth_data(authenticator_data)?;
    check_auth_data(&data, expected.rp_id)?;
    let key =
        VerifyingKey::from_sec1_bytes(public_key).map_err(|_| WebauthnError::UnsupportedKey)?;
    let signature = DerSignature::from_bytes(signature).map_err(|_| WebauthnError::BadSignature)?;
    let mut signed = authenticator_data.to_vec();
    signed.extend_from_slice(&Sha256::digest(client_data));
    key.verify(&signed, &signature)
        .map_err(|_| WebauthnError::BadSignature)?;
    // Authenticators that keep no counter always say 0 (synced passkeys).
    if (data.sign_count != 0 || stored_count != 0) && data.sign_count <= stored_count {
        return Err(WebauthnError::CounterWentBack);
    }
    Ok(data.sign_count)
}

#[cfg(test)]
pub(crate) mod tests {
    use p256::ecdsa::{signature::Signer, SigningKey};

    use super::*;

    /// CBOR heads and items, for building what an authenticator sends.
    fn head(major: u8, n: usize) -> Vec<u8> {
        match n {
            0..=23 => vec![(major << 5) | n as u8],
            24..=255 => vec![(major << 5) | 24, n as u8],
            _ => {
                let mut v = vec![(major << 5) | 25];
                v.extend_from_slice(&(n as u16).to_be_bytes());
                v
            }
        }
    }
    fn bytes(b: &[u8]) -> Vec<u8> {
        [head(2, b.len()), b.to_vec()].concat()
    }
    fn text(t: &str) -> Vec<u8> {
        [head(3, t.len()), t.as_bytes().to_vec()].concat()
    }
    fn int(n: i64) -> Vec<u8> {
        if n >= 0 {
            head(0, n as usize)
        } else {
            head(1, (-1 - n) as usize)
        }
    }

    /// A software authenticator: one P-256 key.
    pub(crate) struct Authenticator {
        pub key: SigningKey,
        pub id: Vec<u8>,
        pub count: u32,
    }

    impl Authenticator {
        pub(crate) fn new() -> Self {
            let mut seed = [7u8; 32];
            seed[0] = 1;
            Self {
                key: SigningKey::from_bytes(&seed.into()).expect("key"),
                id: vec![9, 8, 7, 6, 5, 4, 3, 2],
                count: 0,
            }
        }

        fn auth_data(&self, rp_id: &str, flags: u8, attested: Option<Vec<u8>>) -> Vec<u8> {
            let mut data = Sha256::digest(rp_id.as_bytes()).to_vec();
            data.push(flags);
            data.extend_from_slice(&self.count.to_be_bytes());
            if let Some(attested) = attested {
                data.extend(attested);
            }
            data
        }

        pub(crate) fn client_data(kind: &str, challenge: &[u8], origin: &str) -> Vec<u8> {
            serde_json::json!({"type": kind, "challenge": b64url(challenge), "origin": origin})
                .to_string()
                .into_bytes()
        }

        /// `attestationObject` of a new credential.
        pub(crate) fn attestation(&self, rp_id: &str) -> Vec<u8> {
            let point = self.key.verifying_key().to_encoded_point(false);
            let cose = [
                head(5, 5),
                int(1),
                int(2),
                int(3),
                int(-7),
                int(-1),
                int(1),
                int(-2),
                bytes(point.x().expect("x")),
                int(-3),
                bytes(point.y().expect("y")),
            ]
            .concat();
            let mut attested = vec![0u8; 16];
            attested.extend_from_slice(&(self.id.len() as u16).to_be_bytes());
            attested.extend_from_slice(&self.id);
            attested.extend(cose);
            let auth = self.auth_data(rp_id, USER_PRESENT | ATTESTED_DATA, Some(attested));
            [
                head(5, 3),
                text("fmt"),
                text("none"),
                text("attStmt"),
                head(5, 0),
                text("authData"),
                bytes(&auth),
            ]
            .concat()
        }

        /// (authenticatorData, signature) for `client_data`.
        pub(crate) fn assert(&mut self, rp_id: &str, client_data: &[u8]) -> (Vec<u8>, Vec<u8>) {
            self.count += 1;
            let auth = self.auth_data(rp_id, USER_PRESENT, None);
            let mut signed = auth.clone();
            signed.extend_from_slice(&Sha256::digest(client_data));
            let signature: p256::ecdsa::Signature = self.key.sign(&signed);
            (auth, signature.to_der().as_bytes().to_vec())
        }
    }

    const ORIGIN: &str = "https://chat.example";
    const RP: &str = "chat.example";

    fn expected<'a>(kind: &'a str, challenge: &'a [u8]) -> Expected<'a> {
        Expected {
            kind,
            challenge,
            origin: ORIGIN,
            rp_id: RP,
        }
    }

    #[test]
    fn a_credential_registers_then_signs_in_and_counts() {
        let mut authenticator = Authenticator::new();
        let challenge = [1u8; 32];
        let client = Authenticator::client_data("webauthn.create", &challenge, ORIGIN);
        let made = verify_registration(
            &client,
            &authenticator.attestation(RP),
            &authenticator.id,
            &expected("webauthn.create", &challenge),
        )
        .expect("registers");
        assert_eq!(made.public_key.len(), 65);
        let challenge = [2u8; 32];
        let client = Authenticator::client_data("webauthn.get", &challenge, ORIGIN);
        let (auth, sig) = authenticator.assert(RP, &client);
        let want = expected("webauthn.get", &challenge);
        let count = verify_assertion(&client, &auth, &sig, &made.public_key, 0, &want).expect("ok");
        assert_eq!(count, 1);
        assert_eq!(
            verify_assertion(&client, &auth, &sig, &made.public_key, 1, &want),
            Err(WebauthnError::CounterWentBack),
            "a replayed assertion"
        );
        let mut tampered = sig.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert_eq!(
            verify_assertion(&client, &auth, &tampered, &made.public_key, 0, &want),
            Err(WebauthnError::BadSignature)
        );
    }

    #[test]
    fn another_site_challenge_or_type_is_refused() {
        let authenticator = Authenticator::new();
        let challenge = [1u8; 32];
        let attestation = authenticator.attestation(RP);
        let id = &authenticator.id;
        let create = expected("webauthn.create", &challenge);
        let wrong_origin =
            Authenticator::client_data("webauthn.create", &challenge, "https://evil.example");
        assert_eq!(
            verify_registration(&wrong_origin, &attestation, id, &create),
            Err(WebauthnError::WrongContext)
        );
        let wrong_challenge = Authenticator::client_data("webauthn.create", &[3u8; 32], ORIGIN);
        assert_eq!(
            verify_registration(&wrong_challenge, &attestation, id, &create),
            Err(WebauthnError::WrongContext)
        );
        let wrong_type = Authenticator::client_data("webauthn.get", &challenge, ORIGIN);
        assert_eq!(
            verify_registration(&wrong_type, &attestation, id, &create),
            Err(WebauthnError::WrongContext)
        );
        let client = Authenticator::client_data("webauthn.create", &challenge, ORIGIN);
        let other_rp = authenticator.attestation("evil.example");
        assert_eq!(
            verify_registration(&client, &other_rp, id, &create),
            Err(WebauthnError::WrongRelyingParty)
        );
        assert!(matches!(
            verify_registration(&client, &attestation, &[1, 2], &create),
            Err(WebauthnError::Malformed(_))
        ));
        assert!(matches!(
            verify_registration(&client, b"junk", id, &create),
            Err(WebauthnError::Malformed(_))
        ));
    }
}
