//! One-time enrollment tokens. The token's secret is stored only as its SHA-256; the token also
//! carries the CA's fingerprint so a new connector can trust the listener on first contact.

use std::time::Duration;

use latch_proto::connector_protocol::EnrollmentToken;
use sha2::{Digest, Sha256};

/// How long an enrollment token works unless the admin says otherwise.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(3600);

/// A fresh token for the CA with this fingerprint, and the hash to store.
pub fn new_token(ca_fingerprint: [u8; 32]) -> (EnrollmentToken, String) {
    let token = EnrollmentToken {
        ca_fingerprint,
        secret: rand::random(),
    };
    let hash = hash_secret(&token.secret);
    (token, hash)
}

/// What the store keeps of a token's secret. A secret has 256 random bits, so a plain hash (no
/// salt, no stretching) cannot be reversed, and equal lookups by hash are constant-time enough:
/// the attacker does not control the stored value.
pub fn hash_secret(secret: &[u8; 32]) -> String {
    hex::encode(Sha256::digest(secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_differ_and_hash_to_what_is_stored() {
        let (a, hash_a) = new_token([1; 32]);
        let (b, _) = new_token([1; 32]);
        assert_ne!(a.secret, b.secret);
        assert_eq!(hash_secret(&a.secret), hash_a);
        assert_eq!(a.ca_fingerprint, [1; 32]);
        assert!(!hash_a.contains(&hex::encode(a.secret)));
    }
}
