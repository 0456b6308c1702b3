//! The audit log's hash chain: each event's hash covers its content and the previous event's hash,
//! so changing, deleting, inserting or reordering an event breaks every hash after it.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The `prev_hash` of the first event.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Hash of one event chained to `prev_hash`. Every field is length-prefixed so that no two different
/// events can produce the same input.
pub fn chain_hash(
    prev_hash: &str,
    seq: i64,
    at: DateTime<Utc>,
    actor: &str,
    action: &str,
    subject: &str,
    details: &Value,
) -> String {
    let at = at.to_rfc3339_opts(SecondsFormat::Micros, true);
    let details = details.to_string();
    let seq = seq.to_string();
    let mut hasher = Sha256::new();
    for field in [prev_hash, &seq, &at, actor, action, subject, &details] {
        hasher.update((field.len() as u64).to_be_bytes());
        hasher.update(field.as_bytes());
    }
    hex::encode(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_field_changes_the_hash() {
        let at = DateTime::from_timestamp(1_700_000_000, 0).expect("valid timestamp");
        let base = chain_hash(
            GENESIS_HASH,
            1,
            at,
            "a@x",
            "flow.applied",
            "f",
            &json!({"v": 1}),
        );
        let variants = [
            chain_hash("1", 1, at, "a@x", "flow.applied", "f", &json!({"v": 1})),
            chain_hash(
                GENESIS_HASH,
                2,
                at,
                "a@x",
                "flow.applied",
                "f",
                &json!({"v": 1}),
            ),
            chain_hash(
                GENESIS_HASH,
                1,
                at + chrono::Duration::seconds(1),
                "a@x",
                "flow.applied",
                "f",
                &json!({"v": 1}),
            ),
            chain_hash(
                GENESIS_HASH,
                1,
                at,
                "b@x",
                "flow.applied",
                "f",
                &json!({"v": 1}),
            ),
            chain_hash(
                GENESIS_HASH,
                1,
                at,
                "a@x",
                "flow.deleted",
                "f",
                &json!({"v": 1}),
            ),
            chain_hash(
                GENESIS_HASH,
                1,
                at,
                "a@x",
                "flow.applied",
                "g",
                &json!({"v": 1}),
            ),
            chain_hash(
                GENESIS_HASH,
                1,
                at,
                "a@x",
                "flow.applied",
                "f",
                &json!({"v": 2}),
            ),
        ];
        for variant in variants {
            assert_ne!(variant, base);
        }
        // Moving text between fields must not collide.
        assert_ne!(
            chain_hash(GENESIS_HASH, 1, at, "ab", "c", "f", &json!(null)),
            chain_hash(GENESIS_HASH, 1, at, "a", "bc", "f", &json!(null))
        );
    }
}
