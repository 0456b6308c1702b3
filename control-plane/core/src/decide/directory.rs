//! Who belongs where at approval time. Approvals arrive later than the decision, by which time
//! groups, shifts and owners may have changed, so the approval plan asks the caller's directory
//! rather than trusting a copy taken at request time.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;

use super::identity::{email_key, same_email};

/// Approval-time facts about people, implemented by the caller (over the synced identity data) or
/// by [`StaticDirectory`].
pub trait ApproverDirectory {
    /// Every group `user` belongs to, nested groups included.
    fn groups_of(&self, user: &str) -> BTreeSet<String>;
    /// Whether `user` is on shift in `schedule` (`provider/schedule`) at `at`.
    fn on_shift(&self, user: &str, schedule: &str, at: Timestamp) -> bool;
    /// The owners of an integration, by email.
    fn integration_owners(&self, integration: &str) -> Vec<String>;
    /// The owners of a resource, by email.
    fn resource_owners(&self, resource_id: &str) -> Vec<String>;
    /// Whether two addresses belong to the same person. The default compares case-insensitively;
    /// a directory that knows aliases should say so here. The engine treats addresses that differ
    /// only in case as the same person whatever this returns.
    fn same_person(&self, a: &str, b: &str) -> bool {
        same_email(a, b)
    }
}

/// An on-call shift: `user` is on `schedule` from `start` (inclusive) to `end` (exclusive).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Shift {
    schedule: String,
    start: Timestamp,
    end: Timestamp,
}

/// An in-memory [`ApproverDirectory`] for tests and for callers that already hold the data.
/// Users are keyed by canonical email; aliases map to one person.
#[derive(Debug, Clone, Default)]
pub struct StaticDirectory {
    /// Direct memberships: user → groups.
    members: BTreeMap<String, BTreeSet<String>>,
    /// Group nesting: group → groups it is a member of.
    parents: BTreeMap<String, BTreeSet<String>>,
    shifts: BTreeMap<String, Vec<Shift>>,
    integration_owners: BTreeMap<String, Vec<String>>,
    resource_owners: BTreeMap<String, Vec<String>>,
    /// Alias → the person's primary address, both canonical.
    aliases: BTreeMap<String, String>,
}

impl StaticDirectory {
    /// An empty directory.
    pub fn new() -> StaticDirectory {
        StaticDirectory::default()
    }

    /// Makes `user` a direct member of `group`.
    pub fn with_member(mut self, user: &str, group: &str) -> StaticDirectory {
        self.members
            .entry(self.person(user))
            .or_default()
            .insert(group.to_owned());
        self
    }

    /// Makes group `child` a member of group `parent` (members of `child` are members of `parent`).
    pub fn with_subgroup(mut self, child: &str, parent: &str) -> StaticDirectory {
        self.parents
            .entry(child.to_owned())
            .or_default()
            .insert(parent.to_owned());
        self
    }

    /// Puts `user` on shift in `schedule` from `start` (inclusive) to `end` (exclusive).
    pub fn with_shift(
        mut self,
        user: &str,
        schedule: &str,
        start: Timestamp,
        end: Timestamp,
    ) -> StaticDirectory {
        self.shifts
            .entry(self.person(user))
            .or_default()
            .push(Shift {
                schedule: schedule.to_owned(),
                start,
                end,
            });
        self
    }

    /// Puts `user` on shift in `schedule` at all times.
    pub fn with_always_on_shift(self, user: &str, schedule: &str) -> StaticDirectory {
        self.with_shift(user, schedule, Timestamp::MIN, Timestamp::MAX)
    }

    /// Makes `user` an owner of `integration`.
    pub fn with_integration_owner(mut self, integration: &str, user: &str) -> StaticDirectory {
        self.integration_owners
            .entry(integration.to_owned())
            .or_default()
            .push(user.to_owned());
        self
    }

    /// Makes `user` an owner of the resource with id `resource_id`.
    pub fn with_resource_owner(mut self, resource_id: &str, user: &str) -> StaticDirectory {
        self.resource_owners
            .entry(resource_id.to_owned())
            .or_default()
            .push(user.to_owned());
        self
    }

    /// Declares `alias` another address of the person whose primary address is `primary`.
    /// Declare aliases before memberships, shifts and ownerships given under the alias.
    pub fn with_alias(mut self, alias: &str, primary: &str) -> StaticDirectory {
        let primary = self.person(primary);
        self.aliases.insert(email_key(alias), primary);
        self
    }

    /// The primary canonical address of whoever `user` is.
    fn person(&self, user: &str) -> String {
        let key = email_key(user);
        self.aliases.get(&key).cloned().unwrap_or(key)
    }
}

impl ApproverDirectory for StaticDirectory {
    fn groups_of(&self, user: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut queue: Vec<String> = self
            .members
            .get(&self.person(user))
            .map(|groups| groups.iter().cloned().collect())
            .unwrap_or_default();
        // Walk the nesting; the `out` set stops cycles.
        while let Some(group) = queue.pop() {
            if let Some(parents) = self.parents.get(&group) {
                queue.extend(parents.iter().filter(|p| !out.contains(*p)).cloned());
            }
            out.insert(group);
        }
        out
    }

    fn on_shift(&self, user: &str, schedule: &str, at: Timestamp) -> bool {
        self.shifts.get(&self.person(user)).is_some_and(|shifts| {
            shifts
                .iter()
                .any(|shift| shift.schedule == schedule && shift.start <= at && at < shift.end)
        })
    }

    fn integration_owners(&self, integration: &str) -> Vec<String> {
        self.integration_owners
            .get(integration)
            .cloned()
            .unwrap_or_default()
    }

    fn resource_owners(&self, resource_id: &str) -> Vec<String> {
        self.resource_owners
            .get(resource_id)
            .cloned()
            .unwrap_or_default()
    }

    fn same_person(&self, a: &str, b: &str) -> bool {
        self.person(a) == self.person(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_transitive_and_cycles_end() {
        let dir = StaticDirectory::new()
            .with_member("alice@x.com", "sre")
            .with_subgroup("sre", "engineering")
            .with_subgroup("engineering", "staff")
            .with_subgroup("staff", "sre");
        let groups = dir.groups_of("ALICE@x.com");
        let names: Vec<&str> = groups.iter().map(String::as_str).collect();
        assert_eq!(names, ["engineering", "sre", "staff"]);
        assert!(dir.groups_of("bob@x.com").is_empty());
    }

    #[test]
    fn aliases_are_one_person() {
        let dir = StaticDirectory::new()
            .with_alias("al@x.com", "alice@x.com")
            .with_member("al@x.com", "sre");
        assert!(dir.same_person("AL@x.com", "alice@X.com"));
        assert!(!dir.same_person("al@x.com", "bob@x.com"));
        assert!(dir.groups_of("alice@x.com").contains("sre"));
    }

    #[test]
    fn shifts_have_an_end() {
        let start: Timestamp = "2026-01-01T00:00:00Z".parse().expect("valid");
        let end: Timestamp = "2026-01-02T00:00:00Z".parse().expect("valid");
        let dir = StaticDirectory::new().with_shift("bob@x.com", "pd/sre", start, end);
        assert!(dir.on_shift("bob@x.com", "pd/sre", start));
        assert!(!dir.on_shift("bob@x.com", "pd/sre", end));
        assert!(!dir.on_shift("bob@x.com", "pd/other", start));
    }
}
