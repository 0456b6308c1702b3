//! API tokens and the callers they identify.
//!
//! A token is `latch_<id>.<secret>`: the id finds the stored record, and the SHA-256 of the whole token
//! is compared with the stored hash in constant time. 256 random bits make a slow hash unnecessary.

use chrono::{DateTime, Utc};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::store::{NewToken, TokenRecord};

const PREFIX: &str = "latch_";

/// Who is calling, as established from their token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Email of the user the token acts as.
    pub user: String,
    /// Whether the token may call admin RPCs.
    pub admin: bool,
    /// The token's id, for the audit log.
    pub token_id: String,
}

/// A freshly made token: the secret to hand out once, and the record to store.
#[derive(Debug)]
pub struct IssuedToken {
    pub secret: String,
    pub record: NewToken,
}

/// What to issue a token for.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub user: String,
    pub admin: bool,
    pub description: String,
    pub ttl: Option<chrono::Duration>,
    pub created_by: String,
}

/// Makes a new random token.
pub fn issue(request: TokenRequest, now: DateTime<Utc>) -> IssuedToken {
    let now = crate::store::stored_time(now);
    let id = uuid::Uuid::now_v7().simple().to_string();
    let mut random = [0u8; 32];
    rand::rng().fill_bytes(&mut random);
    let secret = format!("{PREFIX}{id}.{}", hex::encode(random));
    let record = NewToken {
        id,
        user: request.user,
        admin: request.admin,
        description: request.description,
        secret_hash: hash_secret(&secret),
        created_at: now,
        expires_at: request.ttl.map(|ttl| now + ttl),
        created_by: request.created_by,
    };
    IssuedToken { secret, record }
}

/// The id part of a presented token, if it has the right shape.
pub fn token_id(presented: &str) -> Option<&str> {
    let rest = presented.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('.')?;
    let well_formed = id.len() == 32
        && secret.len() == 64
        && id
            .bytes()
            .chain(secret.bytes())
            .all(|b| b.is_ascii_hexdigit());
    well_formed.then_some(id)
}

/// Whether `presented` is the token stored as `record` and works at `now`.
pub fn verify(record: &TokenRecord, presented: &str, now: DateTime<Utc>) -> bool {
    let matches: bool = hash_secret(presented)
        .as_bytes()
        .ct_eq(record.secret_hash.as_bytes())
        .into();
    matches && record.is_active(now)
}

fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(issued: &IssuedToken) -> TokenRecord {
        let r = &issued.record;
        TokenRecord {
            id: r.id.clone(),
            user: r.user.clone(),
            admin: r.admin,
            description: r.description.clone(),
            secret_hash: r.secret_hash.clone(),
            created_at: r.created_at,
            expires_at: r.expires_at,
            revoked_at: None,
            created_by: r.created_by.clone(),
        }
    }

    fn request(ttl: Option<chrono::Duration>) -> TokenRequest {
        TokenRequest {
            user: "alice@example.com".into(),
            admin: false,
            description: String::new(),
            ttl,
            created_by: "admin@example.com".into(),
        }
    }

    #[test]
    fn issued_token_verifies_and_stores_no_secret() {
        let now = Utc::now();
        let issued = issue(request(None), now);
        assert_eq!(token_id(&issued.secret), Some(issued.record.id.as_str()));
        assert!(
            !issued
                .record
                .secret_hash
                .contains(&issued.secret[PREFIX.len() + 33..])
        );
        assert!(verify(&stored(&issued), &issued.secret, now));
    }

    #[test]
    fn wrong_expired_or_revoked_tokens_fail() {
        let now = Utc::now();
        let issued = issue(request(Some(chrono::Duration::hours(1))), now);
        let mut record = stored(&issued);
        let mut wrong = issued.secret.clone();
        wrong.pop();
        wrong.push(if issued.secret.ends_with('0') {
            '1'
        } else {
            '0'
        });
        assert!(!verify(&record, &wrong, now));
        assert!(!verify(
            &record,
            &issued.secret,
            now + chrono::Duration::hours(1)
        ));
        record.revoked_at = Some(now);
        assert!(!verify(&record, &issued.secret, now));
    }

    #[test]
    fn malformed_tokens_have_no_id() {
        for bad in [
            "",
            "latch_",
            "bearer",
            "latch_abc.def",
            &format!("latch_{}.{}", "g".repeat(32), "0".repeat(64)),
        ] {
            assert_eq!(token_id(bad), None, "{bad:?}");
        }
    }
}
