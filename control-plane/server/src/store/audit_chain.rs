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

/// Where and how a chain breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    /// The first event that does not verify; 0 when events are missing after the last one present.
    pub seq: i64,
    pub problem: String,
}

/// Walks a chain event by event, oldest first, and finds the first break.
#[derive(Debug)]
pub struct ChainVerifier {
    next_seq: i64,
    prev_hash: String,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        ChainVerifier {
            next_seq: 1,
            prev_hash: GENESIS_HASH.to_string(),
        }
    }
}

impl ChainVerifier {
    /// Number of events verified so far.
    pub fn checked(&self) -> i64 {
        self.next_seq - 1
    }

    /// Checks the next event.
    pub fn check(&mut self, event: &super::AuditEvent) -> Result<(), ChainBreak> {
        let fail = |problem: String| {
            Err(ChainBreak {
                seq: event.seq,
                problem,
            })
        };
        if event.seq > self.next_seq {
            return fail(format!(
                "event {}: events {} to {} are missing (deleted)",
                event.seq,
                self.next_seq,
                event.seq - 1
            ));
        }
        if event.seq < self.next_seq {
            return fail(format!(
                "event {}: out of order after event {}",
                event.seq,
                self.next_seq - 1
            ));
        }
        if event.prev_hash != self.prev_hash {
            return fail(format!(
                "event {}: does not link to event {} (an event before it was changed, inserted, deleted or reordered)",
                event.seq,
                event.seq - 1
            ));
        }
        let expected = chain_hash(
            &event.prev_hash,
            event.seq,
            event.at,
            &event.actor,
            &event.action,
            &event.subject,
            &event.details,
        );
        if event.hash != expected {
            return fail(format!(
                "event {}: hash does not match its content (modified)",
                event.seq
            ));
        }
        self.next_seq += 1;
        self.prev_hash = event.hash.clone();
        Ok(())
    }

    /// Checks that the chain ends where the log's head says it does.
    pub fn finish(&self, head_seq: i64, head_hash: &str) -> Result<(), ChainBreak> {
        let last = self.next_seq - 1;
        if head_seq > last {
            return Err(ChainBreak {
                seq: 0,
                problem: format!(
                    "the log ends at event {last} but its head records event {head_seq}: events were deleted from the end"
                ),
            });
        }
        if head_seq < last {
            return Err(ChainBreak {
                seq: head_seq + 1,
                problem: format!(
                    "event {}: the log's head records event {head_seq} as the last; events after it were inserted",
                    head_seq + 1
                ),
            });
        }
        if head_hash != self.prev_hash {
            return Err(ChainBreak {
                seq: last,
                problem: format!(
                    "event {last}: does not match the hash the log's head records for it"
                ),
            });
        }
        Ok(())
    }
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
