//! The directory as written and stored: users, groups and on-call schedules.
//!
//! The serde form of these types is the stored form (JSON) and what the digest is computed over, so
//! it holds only ordered collections (`Vec`): equal content always serializes to the same bytes.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::text::email_key;

/// A whole directory, as one source describes it. Applying a new one replaces the old one; [`diff`]
/// tells what changed.
///
/// [`diff`]: super::diff
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectorySpec {
    /// People, each by email address.
    pub users: Vec<UserEntry>,
    /// Declared groups. Groups that are only referenced (by a user or as a nested group) exist too,
    /// empty but for what the references put in them.
    pub groups: Vec<GroupEntry>,
    /// On-call schedules and their shifts.
    pub on_call: Vec<ScheduleEntry>,
}

/// One person.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserEntry {
    /// Email address, lowercased: emails compare case-insensitively, so the stored form does not
    /// keep a case that could make one person look like two.
    pub email: String,
    /// Display name.
    pub name: Option<String>,
    /// The user's manager, by (lowercased) email. Need not be a declared user.
    pub manager: Option<String>,
    /// Groups the user belongs to directly.
    pub groups: Vec<String>,
    /// IANA time zone, for example `Europe/Berlin`.
    pub time_zone: Option<String>,
}

/// One group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupEntry {
    /// The group's name, compared exactly (flows refer to groups by this name).
    pub name: String,
    /// Users in the group directly, by (lowercased) email.
    pub members: Vec<String>,
    /// Groups nested inside this one: their members are members of this group too.
    pub groups: Vec<String>,
}

/// One on-call schedule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleEntry {
    /// The schedule's name as flows refer to it, for example `static/primary-sre`.
    pub schedule: String,
    /// Who is on call when.
    pub shifts: Vec<Shift>,
}

/// One shift: `user` is on call from `from` (inclusive) to `to` (exclusive).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shift {
    /// The person on call, by (lowercased) email.
    pub user: String,
    /// Start of the shift, inclusive.
    #[serde(with = "serde_timestamp")]
    pub from: Timestamp,
    /// End of the shift, exclusive.
    #[serde(with = "serde_timestamp")]
    pub to: Timestamp,
}

impl DirectorySpec {
    /// The same directory in canonical order: users by email, groups by name, schedules by name,
    /// shifts by start (then end, then user); membership lists sorted and without repeats; emails
    /// lowercased. Order and repeats carry no meaning in a directory, so two sources that differ only
    /// there normalise (and digest) the same.
    pub fn normalized(&self) -> DirectorySpec {
        let mut spec = self.clone();
        for user in &mut spec.users {
            user.email = email_key(&user.email);
            user.manager = user.manager.as_deref().map(email_key);
            sort_unique(&mut user.groups);
        }
        // Stable sorts: entries listed twice (which parsing refuses, but a hand-built spec may hold)
        // keep their relative order, so the result is still deterministic.
        spec.users.sort_by(|a, b| a.email.cmp(&b.email));
        for group in &mut spec.groups {
            group.members = group.members.iter().map(|m| email_key(m)).collect();
            sort_unique(&mut group.members);
            sort_unique(&mut group.groups);
        }
        spec.groups.sort_by(|a, b| a.name.cmp(&b.name));
        for schedule in &mut spec.on_call {
            for shift in &mut schedule.shifts {
                shift.user = email_key(&shift.user);
            }
            schedule
                .shifts
                .sort_by(|a, b| (a.from, a.to, &a.user).cmp(&(b.from, b.to, &b.user)));
        }
        spec.on_call.sort_by(|a, b| a.schedule.cmp(&b.schedule));
        spec
    }

    /// The canonical JSON of [`DirectorySpec::normalized`]: equal content gives equal bytes.
    pub fn canonical_json(&self) -> String {
        // Cannot fail: every type here serializes to JSON without error (no maps with non-string
        // keys, no custom serializer that errs).
        serde_json::to_string(&self.normalized())
            .expect("a DirectorySpec always serializes to JSON")
    }

    /// SHA-256 of [`DirectorySpec::canonical_json`], in lowercase hex. Tells whether applying a
    /// source changes the directory.
    pub fn digest(&self) -> String {
        hex::encode(Sha256::digest(self.canonical_json().as_bytes()))
    }
}

fn sort_unique(names: &mut Vec<String>) {
    names.sort();
    names.dedup();
}

/// Serde for `jiff::Timestamp` as an RFC 3339 string (`2026-11-26T00:00:00Z`), without turning on
/// jiff's `serde` feature. jiff prints the shortest exact form, so the string reads back to the
/// same instant and prints the same again.
mod serde_timestamp {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        at: &jiff::Timestamp,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_str(at)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<jiff::Timestamp, D::Error> {
        let raw = String::deserialize(deserializer)?;
        raw.parse::<jiff::Timestamp>()
            .map_err(|err| serde::de::Error::custom(format!("{raw:?} is not a timestamp: {err}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().expect("valid timestamp")
    }

    fn sample() -> DirectorySpec {
        DirectorySpec {
            users: vec![
                UserEntry {
                    email: "bob@example.com".into(),
                    name: None,
                    manager: Some("alice@example.com".into()),
                    groups: vec!["sre".into(), "eng".into()],
                    time_zone: Some("UTC".into()),
                },
                UserEntry {
                    email: "alice@example.com".into(),
                    name: Some("Alice \"Al\" Ä".into()),
                    ..UserEntry::default()
                },
            ],
            groups: vec![
                GroupEntry {
                    name: "sre".into(),
                    members: vec!["carol@example.com".into()],
                    groups: vec![],
                },
                GroupEntry {
                    name: "eng".into(),
                    members: vec![],
                    groups: vec!["sre".into()],
                },
            ],
            on_call: vec![ScheduleEntry {
                schedule: "static/primary".into(),
                shifts: vec![
                    Shift {
                        user: "carol@example.com".into(),
                        from: at("2026-11-27T00:00:00Z"),
                        to: at("2026-11-28T00:00:00.5Z"),
                    },
                    Shift {
                        user: "bob@example.com".into(),
                        from: at("2026-11-26T00:00:00Z"),
                        to: at("2026-11-27T00:00:00Z"),
                    },
                ],
            }],
        }
    }

    #[test]
    fn json_round_trips_exactly() {
        let spec = sample();
        let json = serde_json::to_string(&spec).expect("serializes");
        let back: DirectorySpec = serde_json::from_str(&json).expect("deserializes");
        assert_eq!(back, spec);
        assert_eq!(serde_json::to_string(&back).expect("serializes"), json);
        assert!(json.contains(r#""to":"2026-11-28T00:00:00.5Z""#), "{json}");
    }

    #[test]
    fn digest_ignores_order_repeats_and_case() {
        let spec = sample();
        let mut shuffled = spec.clone();
        shuffled.users.reverse();
        shuffled.groups.reverse();
        shuffled.on_call[0].shifts.reverse();
        shuffled.users[1].groups = vec!["eng".into(), "sre".into(), "eng".into()];
        shuffled.users[0].email = "ALICE@example.com".into();
        assert_eq!(shuffled.digest(), spec.digest());
        assert_eq!(spec.digest().len(), 64);

        let mut changed = spec.clone();
        changed.users[0].time_zone = Some("Europe/Berlin".into());
        assert_ne!(changed.digest(), spec.digest());
    }

    #[test]
    fn normalized_order_is_canonical() {
        let normal = sample().normalized();
        let emails: Vec<&str> = normal.users.iter().map(|u| u.email.as_str()).collect();
        assert_eq!(emails, ["alice@example.com", "bob@example.com"]);
        assert_eq!(normal.users[1].groups, ["eng", "sre"]);
        let names: Vec<&str> = normal.groups.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["eng", "sre"]);
        assert_eq!(normal.on_call[0].shifts[0].user, "bob@example.com");
    }
}
