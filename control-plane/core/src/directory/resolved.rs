//! The directory resolved for lookups: who is in which group (nested groups included), who manages
//! whom, who is on call when.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;

use super::spec::{DirectorySpec, UserEntry};
use crate::text::email_key;

/// A directory indexed for lookups, built once from a [`DirectorySpec`] each time one is applied.
///
/// Every lookup by email ignores case. Nesting is followed at lookup time with a visited set, so a
/// hand-built spec with a cycle (which parsing refuses) still gives finite answers.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    /// Declared users by email key, with email and manager lowercased. The first entry wins when a
    /// hand-built spec lists one twice.
    users: BTreeMap<String, UserEntry>,
    /// User → groups they belong to directly, from their own entry and from group `members`.
    direct_groups: BTreeMap<String, BTreeSet<String>>,
    /// Group → users directly in it, from both sources.
    direct_members: BTreeMap<String, BTreeSet<String>>,
    /// Group → groups nested directly inside it.
    nested: BTreeMap<String, BTreeSet<String>>,
    /// Group → groups it is nested directly inside.
    containers: BTreeMap<String, BTreeSet<String>>,
    /// Schedule → its shifts, by start.
    shifts: BTreeMap<String, Vec<Span>>,
    /// User → the schedules they have shifts in, with those shifts.
    shifts_of: BTreeMap<String, Vec<(String, Span)>>,
    known_groups: BTreeSet<String>,
    known_schedules: BTreeSet<String>,
    known_users: BTreeSet<String>,
}

/// One shift, resolved: `user` on call from `from` (inclusive) to `to` (exclusive).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Span {
    user: String,
    from: Timestamp,
    to: Timestamp,
}

impl Span {
    fn covers(&self, at: Timestamp) -> bool {
        self.from <= at && at < self.to
    }
}

impl Directory {
    /// Resolves a spec. Never fails: parsing has already judged the spec, and a hand-built one is
    /// taken as it is (emails are lowercased here too, so lookups ignore case either way).
    pub fn new(spec: &DirectorySpec) -> Directory {
        let mut dir = Directory::default();
        for user in &spec.users {
            let email = email_key(&user.email);
            dir.known_users.insert(email.clone());
            if let Some(manager) = &user.manager {
                dir.known_users.insert(email_key(manager));
            }
            for group in &user.groups {
                dir.add_member(&email, group);
            }
            dir.users.entry(email.clone()).or_insert_with(|| UserEntry {
                email,
                manager: user.manager.as_deref().map(email_key),
                ..user.clone()
            });
        }
        for group in &spec.groups {
            dir.known_groups.insert(group.name.clone());
            for member in &group.members {
                let email = email_key(member);
                dir.known_users.insert(email.clone());
                dir.add_member(&email, &group.name);
            }
            for inner in &group.groups {
                dir.known_groups.insert(inner.clone());
                dir.nested
                    .entry(group.name.clone())
                    .or_default()
                    .insert(inner.clone());
                dir.containers
                    .entry(inner.clone())
                    .or_default()
                    .insert(group.name.clone());
            }
        }
        for schedule in &spec.on_call {
            dir.known_schedules.insert(schedule.schedule.clone());
            for shift in &schedule.shifts {
                let span = Span {
                    user: email_key(&shift.user),
                    from: shift.from,
                    to: shift.to,
                };
                dir.known_users.insert(span.user.clone());
                dir.shifts_of
                    .entry(span.user.clone())
                    .or_default()
                    .push((schedule.schedule.clone(), span.clone()));
                dir.shifts
                    .entry(schedule.schedule.clone())
                    .or_default()
                    .push(span);
            }
        }
        for spans in dir.shifts.values_mut() {
            spans.sort_by_key(|span| span.from);
        }
        dir
    }

    fn add_member(&mut self, email: &str, group: &str) {
        self.known_groups.insert(group.to_owned());
        self.direct_groups
            .entry(email.to_owned())
            .or_default()
            .insert(group.to_owned());
        self.direct_members
            .entry(group.to_owned())
            .or_default()
            .insert(email.to_owned());
    }

    /// The declared user with this email (any case).
    pub fn user(&self, email: &str) -> Option<&UserEntry> {
        self.users.get(&email_key(email))
    }

    /// Every group `email` belongs to: its direct groups (from its user entry and from group
    /// `members`), and every group that contains one of those, however deep. Works for people who
    /// are only named as members, not declared as users.
    pub fn groups_of(&self, email: &str) -> BTreeSet<String> {
        let start = self.direct_groups.get(&email_key(email));
        reach(start, &self.containers)
    }

    /// Every user in `group`: its direct members and the members of every group nested in it,
    /// however deep. Emails are lowercased.
    pub fn members_of(&self, group: &str) -> BTreeSet<String> {
        let mut groups = reach(self.nested.get(group), &self.nested);
        groups.insert(group.to_owned());
        groups
            .iter()
            .filter_map(|g| self.direct_members.get(g))
            .flatten()
            .cloned()
            .collect()
    }

    /// The manager of `email`, lowercased, when the user is declared and has one.
    pub fn manager_of(&self, email: &str) -> Option<&str> {
        self.user(email)?.manager.as_deref()
    }

    /// The time zone of `email`, when the user is declared and has one. An IANA name, checked when
    /// the spec was parsed.
    pub fn time_zone_of(&self, email: &str) -> Option<&str> {
        self.user(email)?.time_zone.as_deref()
    }

    /// Who is on shift in `schedule` at `at` (a shift covers its start and not its end).
    pub fn on_shift(&self, schedule: &str, at: Timestamp) -> BTreeSet<String> {
        let Some(spans) = self.shifts.get(schedule) else {
            return BTreeSet::new();
        };
        // Sorted by start: shifts that start after `at` cannot cover it.
        let started = spans.partition_point(|span| span.from <= at);
        spans[..started]
            .iter()
            .filter(|span| span.covers(at))
            .map(|span| span.user.clone())
            .collect()
    }

    /// The schedules `email` is on shift in at `at`.
    pub fn schedules_on_shift(&self, email: &str, at: Timestamp) -> BTreeSet<String> {
        self.shifts_of
            .get(&email_key(email))
            .into_iter()
            .flatten()
            .filter(|(_, span)| span.covers(at))
            .map(|(schedule, _)| schedule.clone())
            .collect()
    }

    /// How many users are declared.
    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    /// The declared users, by email.
    pub fn users(&self) -> impl Iterator<Item = &UserEntry> + '_ {
        self.users.values()
    }

    /// Every email the directory mentions, lowercased: declared users, managers, group members and
    /// people on shifts. For telling a flow's author that a user is not known.
    pub fn known_users(&self) -> &BTreeSet<String> {
        &self.known_users
    }

    /// Every group the directory declares or refers to (in a user's `groups` or as a nested group).
    pub fn known_groups(&self) -> &BTreeSet<String> {
        &self.known_groups
    }

    /// Every on-call schedule the directory declares.
    pub fn known_schedules(&self) -> &BTreeSet<String> {
        &self.known_schedules
    }
}

/// Every group reachable from `start` along `edges`, `start` included; the visited set ends cycles.
fn reach(
    start: Option<&BTreeSet<String>>,
    edges: &BTreeMap<String, BTreeSet<String>>,
) -> BTreeSet<String> {
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut queue: Vec<&String> = start.into_iter().flatten().collect();
    while let Some(group) = queue.pop() {
        if seen.insert(group.clone()) {
            queue.extend(edges.get(group).into_iter().flatten());
        }
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::spec::{GroupEntry, ScheduleEntry, Shift};

    fn at(text: &str) -> Timestamp {
        text.parse().expect("valid timestamp")
    }

    fn names(set: &BTreeSet<String>) -> Vec<&str> {
        set.iter().map(String::as_str).collect()
    }

    fn group(name: &str, members: &[&str], nested: &[&str]) -> GroupEntry {
        GroupEntry {
            name: name.into(),
            members: members.iter().map(|m| (*m).to_owned()).collect(),
            groups: nested.iter().map(|n| (*n).to_owned()).collect(),
        }
    }

    fn user(email: &str, groups: &[&str]) -> UserEntry {
        UserEntry {
            email: email.into(),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            ..UserEntry::default()
        }
    }

    #[test]
    fn membership_is_transitive_over_three_levels() {
        // staff ⊃ engineering ⊃ sre ⊃ sre-leads
        let spec = DirectorySpec {
            users: vec![
                user("alice@example.com", &["sre-leads"]),
                user("dave@example.com", &["engineering"]),
            ],
            groups: vec![
                group("staff", &[], &["engineering"]),
                group("engineering", &[], &["sre"]),
                group("sre", &["bob@example.com"], &["sre-leads"]),
            ],
            on_call: vec![],
        };
        let dir = Directory::new(&spec);
        assert_eq!(
            names(&dir.groups_of("alice@example.com")),
            ["engineering", "sre", "sre-leads", "staff"]
        );
        // Bob is only a member, never declared as a user.
        assert_eq!(
            names(&dir.groups_of("bob@example.com")),
            ["engineering", "sre", "staff"]
        );
        assert_eq!(
            names(&dir.groups_of("dave@example.com")),
            ["engineering", "staff"]
        );
        assert_eq!(
            names(&dir.members_of("staff")),
            ["alice@example.com", "bob@example.com", "dave@example.com"]
        );
        assert_eq!(
            names(&dir.members_of("sre")),
            ["alice@example.com", "bob@example.com"]
        );
        assert_eq!(names(&dir.members_of("sre-leads")), ["alice@example.com"]);
        assert!(dir.members_of("nobody-here").is_empty());
        assert!(dir.groups_of("stranger@example.com").is_empty());
        assert_eq!(
            names(dir.known_groups()),
            ["engineering", "sre", "sre-leads", "staff"]
        );
    }

    #[test]
    fn lookups_ignore_case() {
        let spec = DirectorySpec {
            users: vec![UserEntry {
                email: "Alice@Example.com".into(),
                manager: Some("mallory@example.com".into()),
                time_zone: Some("Europe/Berlin".into()),
                groups: vec!["eng".into()],
                ..UserEntry::default()
            }],
            groups: vec![group("eng", &["BOB@example.com"], &[])],
            on_call: vec![],
        };
        let dir = Directory::new(&spec);
        assert!(dir.user("ALICE@example.COM").is_some());
        assert_eq!(
            dir.manager_of("alice@EXAMPLE.com"),
            Some("mallory@example.com")
        );
        assert_eq!(dir.time_zone_of("alice@example.com"), Some("Europe/Berlin"));
        assert_eq!(dir.manager_of("bob@example.com"), None);
        assert_eq!(names(&dir.groups_of("Bob@Example.com")), ["eng"]);
        assert_eq!(
            names(&dir.members_of("eng")),
            ["alice@example.com", "bob@example.com"]
        );
        assert_eq!(
            names(dir.known_users()),
            [
                "alice@example.com",
                "bob@example.com",
                "mallory@example.com"
            ]
        );
    }

    #[test]
    fn shifts_cover_their_start_and_not_their_end() {
        let spec = DirectorySpec {
            on_call: vec![
                ScheduleEntry {
                    schedule: "static/primary-sre".into(),
                    shifts: vec![
                        Shift {
                            user: "dave@example.com".into(),
                            from: at("2026-11-27T00:00:00Z"),
                            to: at("2026-11-28T00:00:00Z"),
                        },
                        Shift {
                            user: "Carol@example.com".into(),
                            from: at("2026-11-26T00:00:00Z"),
                            to: at("2026-11-27T00:00:00Z"),
                        },
                    ],
                },
                ScheduleEntry {
                    schedule: "static/secondary".into(),
                    shifts: vec![Shift {
                        user: "carol@example.com".into(),
                        from: at("2026-11-26T12:00:00Z"),
                        to: at("2026-11-30T00:00:00Z"),
                    }],
                },
                ScheduleEntry {
                    schedule: "static/empty".into(),
                    shifts: vec![],
                },
            ],
            ..DirectorySpec::default()
        };
        let dir = Directory::new(&spec);
        let primary = "static/primary-sre";
        assert!(
            dir.on_shift(primary, at("2026-11-25T23:59:59.999999999Z"))
                .is_empty()
        );
        assert_eq!(
            names(&dir.on_shift(primary, at("2026-11-26T00:00:00Z"))),
            ["carol@example.com"]
        );
        assert_eq!(
            names(&dir.on_shift(primary, at("2026-11-26T23:59:59.999999999Z"))),
            ["carol@example.com"]
        );
        // The hand-over: the end is exclusive, the next start inclusive.
        assert_eq!(
            names(&dir.on_shift(primary, at("2026-11-27T00:00:00Z"))),
            ["dave@example.com"]
        );
        assert!(dir.on_shift(primary, at("2026-11-28T00:00:00Z")).is_empty());
        assert!(
            dir.on_shift("static/unknown", at("2026-11-26T00:00:00Z"))
                .is_empty()
        );

        assert_eq!(
            names(&dir.schedules_on_shift("CAROL@example.com", at("2026-11-26T13:00:00Z"))),
            ["static/primary-sre", "static/secondary"]
        );
        assert_eq!(
            names(&dir.schedules_on_shift("carol@example.com", at("2026-11-27T00:00:00Z"))),
            ["static/secondary"]
        );
        assert_eq!(
            names(dir.known_schedules()),
            ["static/empty", "static/primary-sre", "static/secondary"]
        );
    }

    #[test]
    fn users_are_listed_by_email_and_cycles_end() {
        let spec = DirectorySpec {
            users: vec![
                user("zoe@example.com", &["a"]),
                user("Adam@example.com", &[]),
            ],
            // A cycle, which parsing refuses; a hand-built spec may still hold one.
            groups: vec![group("a", &[], &["b"]), group("b", &[], &["a"])],
            on_call: vec![],
        };
        let dir = Directory::new(&spec);
        assert_eq!(dir.user_count(), 2);
        let emails: Vec<&str> = dir.users().map(|u| u.email.as_str()).collect();
        assert_eq!(emails, ["adam@example.com", "zoe@example.com"]);
        assert_eq!(names(&dir.groups_of("zoe@example.com")), ["a", "b"]);
        assert_eq!(names(&dir.members_of("b")), ["zoe@example.com"]);
    }
}
