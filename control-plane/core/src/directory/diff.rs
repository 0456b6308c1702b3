//! What applying a new directory changes, for the confirmation prompt and the audit log.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::spec::DirectorySpec;

/// The users, groups and schedules a new directory adds, removes or changes, each list sorted.
///
/// Entries are compared in normal form (see [`DirectorySpec::normalized`]), so reordering a source
/// changes nothing. A user is changed when anything in their own entry is (name, manager, groups,
/// time zone); a membership given through a group's `members` changes the group, not the user.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryDiff {
    /// Emails of users only the new directory declares.
    pub users_added: Vec<String>,
    /// Emails of users only the old directory declares.
    pub users_removed: Vec<String>,
    /// Emails of users both declare, differently.
    pub users_changed: Vec<String>,
    /// Names of groups only the new directory declares.
    pub groups_added: Vec<String>,
    /// Names of groups only the old directory declares.
    pub groups_removed: Vec<String>,
    /// Names of groups both declare, differently.
    pub groups_changed: Vec<String>,
    /// Names of schedules only the new directory declares.
    pub schedules_added: Vec<String>,
    /// Names of schedules only the old directory declares.
    pub schedules_removed: Vec<String>,
    /// Names of schedules both declare, with different shifts.
    pub schedules_changed: Vec<String>,
}

impl DirectoryDiff {
    /// Whether the new directory is the same as the old one.
    pub fn is_empty(&self) -> bool {
        self == &DirectoryDiff::default()
    }

    /// One line of counts: `users +2 -1 ~1, groups +0 -0 ~1, schedules +1 -0 ~0`.
    pub fn summary(&self) -> String {
        format!(
            "users +{} -{} ~{}, groups +{} -{} ~{}, schedules +{} -{} ~{}",
            self.users_added.len(),
            self.users_removed.len(),
            self.users_changed.len(),
            self.groups_added.len(),
            self.groups_removed.len(),
            self.groups_changed.len(),
            self.schedules_added.len(),
            self.schedules_removed.len(),
            self.schedules_changed.len(),
        )
    }
}

/// What changes when `new` replaces `old`. Where a hand-built spec declares a name twice (which
/// parsing refuses), the first declaration counts, as in [`Directory`](super::Directory).
pub fn diff(old: &DirectorySpec, new: &DirectorySpec) -> DirectoryDiff {
    let old = old.normalized();
    let new = new.normalized();
    let (users_added, users_removed, users_changed) = compare(
        keyed(old.users.iter().map(|u| (u.email.as_str(), u))),
        keyed(new.users.iter().map(|u| (u.email.as_str(), u))),
    );
    let (groups_added, groups_removed, groups_changed) = compare(
        keyed(old.groups.iter().map(|g| (g.name.as_str(), g))),
        keyed(new.groups.iter().map(|g| (g.name.as_str(), g))),
    );
    let (schedules_added, schedules_removed, schedules_changed) = compare(
        keyed(old.on_call.iter().map(|s| (s.schedule.as_str(), s))),
        keyed(new.on_call.iter().map(|s| (s.schedule.as_str(), s))),
    );
    DirectoryDiff {
        users_added,
        users_removed,
        users_changed,
        groups_added,
        groups_removed,
        groups_changed,
        schedules_added,
        schedules_removed,
        schedules_changed,
    }
}

/// Entries by key, the first of any repeated key kept.
fn keyed<'a, T>(entries: impl Iterator<Item = (&'a str, &'a T)>) -> BTreeMap<&'a str, &'a T> {
    let mut map = BTreeMap::new();
    for (key, entry) in entries {
        map.entry(key).or_insert(entry);
    }
    map
}

/// Keys added, removed and changed (present in both with unequal entries), each in key order.
fn compare<T: PartialEq>(
    old: BTreeMap<&str, &T>,
    new: BTreeMap<&str, &T>,
) -> (Vec<String>, Vec<String>, Vec<String>) {
    let added = new
        .keys()
        .filter(|k| !old.contains_key(*k))
        .map(|k| (*k).to_owned())
        .collect();
    let removed = old
        .keys()
        .filter(|k| !new.contains_key(*k))
        .map(|k| (*k).to_owned())
        .collect();
    let changed = new
        .iter()
        .filter(|(k, entry)| old.get(*k).is_some_and(|before| before != *entry))
        .map(|(k, _)| (*k).to_owned())
        .collect();
    (added, removed, changed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::parse_directory_yaml;

    fn spec(yaml: &str) -> DirectorySpec {
        parse_directory_yaml(yaml).expect("valid directory")
    }

    #[test]
    fn adds_removals_and_changes_are_told_apart() {
        let old = spec(
            r#"
users:
  - { email: alice@example.com, groups: [eng] }
  - { email: bob@example.com }
  - { email: carol@example.com, time_zone: UTC }
groups:
  - { name: eng, members: [bob@example.com] }
  - { name: ops }
on_call:
  - schedule: static/primary
    shifts: [{ user: bob@example.com, from: "2026-11-26T00:00:00Z", to: "2026-11-27T00:00:00Z" }]
"#,
        );
        let new = spec(
            r#"
users:
  - { email: Carol@example.com, time_zone: Europe/Berlin }
  - { email: alice@example.com, groups: [eng] }
  - { email: dave@example.com }
  - { email: erin@example.com }
groups:
  - { name: ops }
  - { name: eng, members: [bob@example.com, dave@example.com] }
on_call:
  - schedule: static/primary
    shifts: [{ user: bob@example.com, from: "2026-11-26T00:00:00Z", to: "2026-11-27T00:00:00Z" }]
  - schedule: static/secondary
"#,
        );
        let d = diff(&old, &new);
        assert_eq!(d.users_added, ["dave@example.com", "erin@example.com"]);
        assert_eq!(d.users_removed, ["bob@example.com"]);
        assert_eq!(d.users_changed, ["carol@example.com"]);
        assert!(d.groups_added.is_empty() && d.groups_removed.is_empty());
        assert_eq!(d.groups_changed, ["eng"]);
        assert_eq!(d.schedules_added, ["static/secondary"]);
        assert!(d.schedules_removed.is_empty() && d.schedules_changed.is_empty());
        assert!(!d.is_empty());
        assert_eq!(
            d.summary(),
            "users +2 -1 ~1, groups +0 -0 ~1, schedules +1 -0 ~0"
        );

        let back = diff(&new, &old);
        assert_eq!(back.users_removed, ["dave@example.com", "erin@example.com"]);
        assert_eq!(back.schedules_removed, ["static/secondary"]);

        let json = serde_json::to_string(&d).expect("serializes");
        let read: DirectoryDiff = serde_json::from_str(&json).expect("deserializes");
        assert_eq!(read, d);
    }

    #[test]
    fn reordering_changes_nothing() {
        let old = spec(
            "users: [{ email: a@x.com, groups: [g1, g2] }, { email: b@x.com }]\n\
             groups: [{ name: g1, members: [b@x.com, a@x.com] }]\n",
        );
        let new = spec(
            "users: [{ email: B@x.com }, { email: a@x.com, groups: [g2, g1] }]\n\
             groups: [{ name: g1, members: [a@x.com, b@x.com] }]\n",
        );
        let d = diff(&old, &new);
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(
            d.summary(),
            "users +0 -0 ~0, groups +0 -0 ~0, schedules +0 -0 ~0"
        );
        assert_eq!(old.digest(), new.digest());
    }

    #[test]
    fn changed_shifts_change_the_schedule() {
        let old = spec(
            "on_call: [{ schedule: s, shifts: [{ user: a@x.com, from: \"2026-01-01T00:00:00Z\", to: \"2026-01-02T00:00:00Z\" }] }]\n",
        );
        let new = spec(
            "on_call: [{ schedule: s, shifts: [{ user: a@x.com, from: \"2026-01-01T00:00:00Z\", to: \"2026-01-03T00:00:00Z\" }] }]\n",
        );
        assert_eq!(diff(&old, &new).schedules_changed, ["s"]);
        assert!(diff(&DirectorySpec::default(), &DirectorySpec::default()).is_empty());
    }
}
