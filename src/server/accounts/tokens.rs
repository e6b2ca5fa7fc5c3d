//! Random tokens and their stored hashes: a session's cookie token and an
//! invite's code are 32 random bytes (hex); only their SHA-256 is stored.

use rand::RngCore;
use sha2::{Digest, Sha256};

/// 32 random bytes, hex.
pub fn secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// 12 random bytes, hex: names a session or invite in pages (not a secret).
pub fn public_id() -> String {
    let mut bytes = [0u8; 12];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// What is stored of a token.
pub fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Whether `text` could be a token made by [`secret`] (cheap to check
/// before any lookup).
pub fn well_formed(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())
}
