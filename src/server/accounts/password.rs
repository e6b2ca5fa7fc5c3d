//! Password hashing: argon2id with OWASP's parameters (19 MiB, two passes,
//! one lane), off the async threads, at most as many at once as there are
//! cores (each hash holds 19 MiB). A password longer than
//! [`MAX_PASSWORD_BYTES`] is refused before it is hashed.

use argon2::{
    password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString},
    Algorithm, Argon2, Params, Version,
};
use rand::RngCore;
use tokio::sync::Semaphore;

/// Longest password accepted (bytes): long passphrases fit, megabytes do not.
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Shortest password accepted (characters).
pub const MIN_PASSWORD_CHARS: usize = 8;

/// Hashes waiting for a core beyond this are refused (`503`), so a burst of
/// sign-ins cannot queue unbounded memory.
const MAX_WAITING: usize = 64;

/// Why a password was not hashed or checked.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("too many sign-ins at once; try again in a moment")]
    Busy,
    #[error("password hashing failed: {0}")]
    Failed(String),
}

/// Hashes and checks passwords.
#[derive(Debug)]
pub struct Hasher {
    cores: Semaphore,
    waiting: std::sync::atomic::AtomicUsize,
}

/// A hash of a password nobody uses, made with the same parameters as
/// every hash here: checked against for an unknown username, so that answer
/// takes as long as a wrong password. A constant, so start-up does no hashing.
const DECOY: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$4nvGv396GMJXlpcZvw+ulQ$TMipxRp1A8jc6p7MzrIcIkOAmanBGpQFsfDNITQTZCc";

fn argon2() -> Argon2<'static> {
    // The crate's defaults are OWASP's: m = 19 MiB, t = 2, p = 1.
    Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::default())
}

fn hash_now(password: &[u8]) -> Result<String, HashError> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| HashError::Failed(e.to_string()))?;
    argon2()
        .hash_password(password, &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| HashError::Failed(e.to_string()))
}

fn verify_now(password: &[u8], stored: &str) -> bool {
    PasswordHash::new(stored)
        .is_ok_and(|parsed| argon2().verify_password(password, &parsed).is_ok())
}

/// A password's problem, for the person choosing it.
pub fn check_new(password: &str) -> Result<(), String> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(format!(
            "that password is too long (at most {MAX_PASSWORD_BYTES} bytes)"
        ));
    }
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(format!(
            "choose a password of at least {MIN_PASSWORD_CHARS} characters"
        ));
    }
    Ok(())
}

impl Default for Hasher {
    fn default() -> Self {
        Self::new()
    }
}

impl Hasher {
    pub fn new() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        Self {
            cores: Semaphore::new(cores),
            waiting: Default::default(),
        }
    }

    /// The PHC string of a new password's hash.
    pub async fn hash(&self, password: &str) -> Result<String, HashError> {
        let password = password.as_bytes().to_vec();
        self.on_a_core(move || hash_now(&password)).await?
    }

    /// Whether `password` matches `stored`; with `None` (no such user, or
    /// an account without a password) checks against the decoy and answers
    /// `false`, taking as long as a real check.
    pub async fn verify(&self, password: &str, stored: Option<&str>) -> Result<bool, HashError> {
        if password.len() > MAX_PASSWORD_BYTES {
            return Ok(false);
        }
        let real = stored.is_some();
        let stored = stored.unwrap_or(DECOY).to_owned();
        let password = password.as_bytes().to_vec();
        let matched = self
            .on_a_core(move || verify_now(&password, &stored))
            .await?;
        Ok(real && matched)
    }

    async fn on_a_core<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        use std::sync::atomic::Ordering;
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= MAX_WAITING {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(HashError::Busy);
        }
        let permit = self.cores.acquire().await;
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        let _permit = permit.map_err(|_| HashError::Busy)?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| HashError::Failed(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let hasher = Hasher::new();
        let hash = hasher.hash("correct horse").await.expect("hash");
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(hasher
            .verify("correct horse", Some(&hash))
            .await
            .expect("verify"));
        assert!(!hasher
            .verify("correct horsE", Some(&hash))
            .await
            .expect("verify"));
        assert!(!hasher.verify("correct horse", None).await.expect("decoy"));
        assert!(!hasher
            .verify("x", Some("not a phc string"))
            .await
            .expect("garbage"));
    }

    #[test]
    fn the_decoy_is_hashed_like_every_password() {
        let params = |phc: &str| phc.split('$').take(4).collect::<Vec<_>>().join("$");
        let fresh = hash_now(b"any").expect("hash");
        assert_eq!(params(DECOY), params(&fresh));
    }

    #[test]
    fn new_passwords_are_bounded() {
        assert!(check_new("short").is_err());
        assert!(check_new(&"x".repeat(MAX_PASSWORD_BYTES + 1)).is_err());
        assert!(check_new("long enough").is_ok());
    }
}
