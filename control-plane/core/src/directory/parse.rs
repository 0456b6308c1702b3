//! Reading a directory from YAML (`latch directory apply -f people.yaml`).
//!
//! The document is parsed into a `serde_yaml_ng::Value` and walked by hand rather than deserialized
//! with serde derive: derive stops at the first error, and an admin wants every problem at once,
//! each as `path: message` naming the offending value. Where a value cannot be read, the walk leaves
//! it out and goes on; any problem refuses the whole source, so what was left out never matters.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Display;

use jiff::Timestamp;
use serde_yaml_ng::{Mapping, Value};

use super::spec::{DirectorySpec, GroupEntry, ScheduleEntry, Shift, UserEntry};
use super::text::{looks_like_email, name_problem, parse_rfc3339, quoted};
use crate::text::render_value;

const TOP_FIELDS: &[&str] = &["users", "groups", "on_call"];
const USER_FIELDS: &[&str] = &["email", "name", "manager", "groups", "time_zone"];
const GROUP_FIELDS: &[&str] = &["name", "members", "groups"];
const SCHEDULE_FIELDS: &[&str] = &["schedule", "shifts"];
const SHIFT_FIELDS: &[&str] = &["user", "from", "to"];

/// Reads a directory from YAML and checks it.
///
/// On success the spec keeps the source's order, with every email address lowercased. On failure,
/// every problem found, in source order, each as `path: message`, for example
/// `users[2].email: "bob" is not an email address` or `groups[0].groups: cycle sre -> ops -> sre`.
/// An empty document is an empty directory.
pub fn parse_directory_yaml(text: &str) -> Result<DirectorySpec, Vec<String>> {
    let mut value: Value = match serde_yaml_ng::from_str(text) {
        Ok(value) => value,
        Err(err) => return Err(vec![format!("invalid YAML: {err}")]),
    };
    // Merge keys (`<<: *defaults`) are a common way to share fields between users.
    if let Err(err) = value.apply_merge() {
        return Err(vec![format!("invalid YAML: {err}")]);
    }
    let mut reader = Reader::default();
    let spec = reader.directory(&value);
    if reader.problems.is_empty() {
        Ok(spec)
    } else {
        Err(reader.problems)
    }
}

/// A field of a mapping; an explicit `null` (as in `groups:` with nothing after it) counts as absent.
fn get<'v>(map: &'v Mapping, key: &str) -> Option<&'v Value> {
    map.get(key).filter(|v| !v.is_null())
}

fn field(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

fn item(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

/// Walks one document, collecting problems.
#[derive(Default)]
struct Reader {
    problems: Vec<String>,
}

impl Reader {
    fn report(&mut self, path: &str, message: impl Display) {
        if path.is_empty() {
            self.problems.push(message.to_string());
        } else {
            self.problems.push(format!("{path}: {message}"));
        }
    }

    fn directory(&mut self, value: &Value) -> DirectorySpec {
        if value.is_null() {
            return DirectorySpec::default();
        }
        let Some(map) = self.mapping(value, "", TOP_FIELDS) else {
            return DirectorySpec::default();
        };

        let mut emails = BTreeSet::new();
        let mut users = Vec::new();
        for (i, entry) in self.list(get(map, "users"), "users", "users") {
            users.extend(self.user(entry, &item("users", i), &mut emails));
        }

        let mut names = BTreeSet::new();
        let mut groups = Vec::new();
        for (i, entry) in self.list(get(map, "groups"), "groups", "groups") {
            if let Some(group) = self.group(entry, &item("groups", i), &mut names) {
                groups.push((i, group));
            }
        }
        // Checked right after the groups are read, so the problems stay in source order.
        for (index, cycle) in find_cycles(&groups) {
            self.report(
                &field(&item("groups", index), "groups"),
                format!("cycle {}", cycle.join(" -> ")),
            );
        }

        let mut schedules = BTreeSet::new();
        let mut on_call = Vec::new();
        for (i, entry) in self.list(get(map, "on_call"), "on_call", "schedules") {
            on_call.extend(self.schedule(entry, &item("on_call", i), &mut schedules));
        }

        DirectorySpec {
            users,
            groups: groups.into_iter().map(|(_, group)| group).collect(),
            on_call,
        }
    }

    fn user(
        &mut self,
        value: &Value,
        path: &str,
        seen: &mut BTreeSet<String>,
    ) -> Option<UserEntry> {
        let map = self.mapping(value, path, USER_FIELDS)?;
        let email_path = field(path, "email");
        let email = self
            .required(map, "email", &email_path)
            .and_then(|v| self.email(v, &email_path));
        if let (Some(email), Some(raw)) = (&email, get(map, "email"))
            && !seen.insert(email.clone())
        {
            self.report(
                &email_path,
                format!("{} is listed twice", render_value(raw)),
            );
        }
        let name = get(map, "name").and_then(|v| self.string(v, &field(path, "name")));
        let manager_path = field(path, "manager");
        let manager = get(map, "manager").and_then(|v| self.email(v, &manager_path));
        if let (Some(email), Some(manager)) = (&email, &manager) {
            // A user who is their own manager could approve their own requests as "manager".
            if email == manager {
                self.report(
                    &manager_path,
                    format!("{} is the user's own address", quoted(manager)),
                );
            }
        }
        let groups = self.names(get(map, "groups"), &field(path, "groups"), "group names");
        let time_zone =
            get(map, "time_zone").and_then(|v| self.time_zone(v, &field(path, "time_zone")));
        Some(UserEntry {
            email: email?,
            name,
            manager,
            groups,
            time_zone,
        })
    }

    fn group(
        &mut self,
        value: &Value,
        path: &str,
        seen: &mut BTreeSet<String>,
    ) -> Option<GroupEntry> {
        let map = self.mapping(value, path, GROUP_FIELDS)?;
        let name_path = field(path, "name");
        let name = self
            .required(map, "name", &name_path)
            .and_then(|v| self.name(v, &name_path));
        if let Some(name) = &name
            && !seen.insert(name.clone())
        {
            self.report(&name_path, format!("{} is listed twice", quoted(name)));
        }
        let members = self.emails(get(map, "members"), &field(path, "members"));
        let groups = self.names(get(map, "groups"), &field(path, "groups"), "group names");
        Some(GroupEntry {
            name: name?,
            members,
            groups,
        })
    }

    fn schedule(
        &mut self,
        value: &Value,
        path: &str,
        seen: &mut BTreeSet<String>,
    ) -> Option<ScheduleEntry> {
        let map = self.mapping(value, path, SCHEDULE_FIELDS)?;
        let name_path = field(path, "schedule");
        let schedule = self
            .required(map, "schedule", &name_path)
            .and_then(|v| self.name(v, &name_path));
        if let Some(schedule) = &schedule
            && !seen.insert(schedule.clone())
        {
            self.report(&name_path, format!("{} is listed twice", quoted(schedule)));
        }
        let shifts_path = field(path, "shifts");
        let mut shifts = Vec::new();
        for (i, entry) in self.list(get(map, "shifts"), &shifts_path, "shifts") {
            shifts.extend(self.shift(entry, &item(&shifts_path, i)));
        }
        Some(ScheduleEntry {
            schedule: schedule?,
            shifts,
        })
    }

    fn shift(&mut self, value: &Value, path: &str) -> Option<Shift> {
        let map = self.mapping(value, path, SHIFT_FIELDS)?;
        let user_path = field(path, "user");
        let user = self
            .required(map, "user", &user_path)
            .and_then(|v| self.email(v, &user_path));
        let from = self.time(map, "from", &field(path, "from"));
        let to_path = field(path, "to");
        let to = self.time(map, "to", &to_path);
        if let (Some((from, _)), Some((to, raw))) = (&from, &to)
            && to <= from
        {
            self.report(&to_path, format!("{} is not after from", quoted(raw)));
            return None;
        }
        Some(Shift {
            user: user?,
            from: from?.0,
            to: to?.0,
        })
    }

    /// The value as a mapping whose keys are all among `fields`; unknown keys are reported and
    /// ignored, since the known ones can still be read.
    fn mapping<'v>(
        &mut self,
        value: &'v Value,
        path: &str,
        fields: &[&str],
    ) -> Option<&'v Mapping> {
        let Value::Mapping(map) = value else {
            let what = if path.is_empty() {
                "a mapping of users, groups and on_call"
            } else {
                "a mapping"
            };
            self.report(
                path,
                format!("expected {what}, got {}", render_value(value)),
            );
            return None;
        };
        for key in map.keys() {
            match key {
                Value::String(k) if fields.contains(&k.as_str()) => {}
                Value::String(k) => {
                    self.report(&field(path, k), format!("unknown field {}", quoted(k)));
                }
                other => self.report(path, format!("unknown field {}", render_value(other))),
            }
        }
        Some(map)
    }

    /// The entries of a list, with their indices; nothing (reported) when the value is not a list.
    fn list<'v>(
        &mut self,
        value: Option<&'v Value>,
        path: &str,
        what: &str,
    ) -> impl Iterator<Item = (usize, &'v Value)> + use<'v> {
        let items: &[Value] = match value {
            None => &[],
            Some(Value::Sequence(items)) => items,
            Some(other) => {
                self.report(
                    path,
                    format!("expected a list of {what}, got {}", render_value(other)),
                );
                &[]
            }
        };
        items.iter().enumerate()
    }

    /// A field that must be present.
    fn required<'v>(&mut self, map: &'v Mapping, key: &str, path: &str) -> Option<&'v Value> {
        let value = get(map, key);
        if value.is_none() {
            self.report(path, "is required");
        }
        value
    }

    fn string(&mut self, value: &Value, path: &str) -> Option<String> {
        match value {
            Value::String(s) => Some(s.clone()),
            other => {
                self.report(
                    path,
                    format!("expected a string, got {}", render_value(other)),
                );
                None
            }
        }
    }

    /// An email address, lowercased.
    fn email(&mut self, value: &Value, path: &str) -> Option<String> {
        let Value::String(s) = value else {
            self.report(
                path,
                format!("expected an email address, got {}", render_value(value)),
            );
            return None;
        };
        if looks_like_email(s) {
            // `looks_like_email` refuses blanks, so lowercasing is all `email_key` would do.
            Some(s.to_lowercase())
        } else {
            self.report(path, format!("{} is not an email address", quoted(s)));
            None
        }
    }

    /// A group or schedule name.
    fn name(&mut self, value: &Value, path: &str) -> Option<String> {
        let name = self.string(value, path)?;
        match name_problem(&name) {
            None => Some(name),
            Some(problem) => {
                self.report(path, format!("{} {problem}", quoted(&name)));
                None
            }
        }
    }

    /// A list of group names, each once.
    fn names(&mut self, value: Option<&Value>, path: &str, what: &str) -> Vec<String> {
        let mut out = Vec::new();
        for (i, entry) in self.list(value, path, what) {
            let entry_path = item(path, i);
            if let Some(name) = self.name(entry, &entry_path) {
                if out.contains(&name) {
                    self.report(&entry_path, format!("{} is listed twice", quoted(&name)));
                } else {
                    out.push(name);
                }
            }
        }
        out
    }

    /// A list of email addresses, lowercased, each once.
    fn emails(&mut self, value: Option<&Value>, path: &str) -> Vec<String> {
        let mut out = Vec::new();
        for (i, entry) in self.list(value, path, "email addresses") {
            let entry_path = item(path, i);
            if let Some(email) = self.email(entry, &entry_path) {
                if out.contains(&email) {
                    self.report(
                        &entry_path,
                        format!("{} is listed twice", render_value(entry)),
                    );
                } else {
                    out.push(email);
                }
            }
        }
        out
    }

    fn time_zone(&mut self, value: &Value, path: &str) -> Option<String> {
        let zone = self.string(value, path)?;
        if jiff::tz::TimeZone::get(&zone).is_ok() {
            Some(zone)
        } else {
            self.report(path, format!("unknown time zone {}", quoted(&zone)));
            None
        }
    }

    /// A required RFC 3339 time, with the text it was written as (for naming it in messages).
    fn time(&mut self, map: &Mapping, key: &str, path: &str) -> Option<(Timestamp, String)> {
        match self.required(map, key, path)? {
            Value::String(s) => match parse_rfc3339(s) {
                Some(at) => Some((at, s.clone())),
                None => {
                    self.report(path, format!("{} is not an RFC 3339 time", quoted(s)));
                    None
                }
            },
            other => {
                self.report(
                    path,
                    format!("expected an RFC 3339 time, got {}", render_value(other)),
                );
                None
            }
        }
    }
}

/// The nesting cycles among the declared groups, each as the index of the declaration where it was
/// found and the names along it, first name repeated at the end (`sre -> ops -> sre`).
///
/// A depth-first walk in declaration order; a nested group still on the walk's path closes a cycle.
/// The walk keeps its own stack rather than recursing, so a deep nesting cannot overflow the thread's
/// stack. Only declared groups contain other groups, so only they can be on a cycle.
fn find_cycles(groups: &[(usize, GroupEntry)]) -> Vec<(usize, Vec<String>)> {
    let mut declared: BTreeMap<&str, usize> = BTreeMap::new();
    let mut nested: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (index, group) in groups {
        declared.entry(&group.name).or_insert(*index);
        // A group declared twice (reported elsewhere) nests what both declarations say.
        nested
            .entry(&group.name)
            .or_default()
            .extend(group.groups.iter().map(String::as_str));
    }

    let mut done: BTreeSet<&str> = BTreeSet::new();
    let mut cycles = Vec::new();
    for (_, group) in groups {
        let start = group.name.as_str();
        if done.contains(start) {
            continue;
        }
        // The path from `start`: each group with how many of its nested groups have been visited.
        let mut path: Vec<(&str, usize)> = vec![(start, 0)];
        // Where each group on the path stands in it, so closing a cycle is found without a scan.
        let mut on_path: BTreeMap<&str, usize> = BTreeMap::from([(start, 0)]);
        while let Some(top) = path.last_mut() {
            let (name, next) = *top;
            let children = nested.get(name).map(Vec::as_slice).unwrap_or_default();
            let Some(&child) = children.get(next) else {
                done.insert(name);
                on_path.remove(name);
                path.pop();
                continue;
            };
            top.1 += 1;
            if let Some(&at) = on_path.get(child) {
                let mut cycle: Vec<String> =
                    path[at..].iter().map(|(n, _)| (*n).to_owned()).collect();
                cycle.push(child.to_owned());
                let index = declared.get(child).copied().unwrap_or_default();
                cycles.push((index, cycle));
            } else if !done.contains(child) {
                on_path.insert(child, path.len());
                path.push((child, 0));
            }
        }
    }
    cycles
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(name: &str, nested: &[&str]) -> GroupEntry {
        GroupEntry {
            name: name.into(),
            members: vec![],
            groups: nested.iter().map(|n| (*n).to_owned()).collect(),
        }
    }

    fn cycles(groups: &[GroupEntry]) -> Vec<String> {
        let indexed: Vec<(usize, GroupEntry)> = groups.iter().cloned().enumerate().collect();
        find_cycles(&indexed)
            .into_iter()
            .map(|(i, c)| format!("{i}: {}", c.join(" -> ")))
            .collect()
    }

    #[test]
    fn cycles_are_found_once_each() {
        assert_eq!(
            cycles(&[group("sre", &["ops"]), group("ops", &["sre"])]),
            ["0: sre -> ops -> sre"]
        );
        assert_eq!(cycles(&[group("sre", &["sre"])]), ["0: sre -> sre"]);
        // A diamond is not a cycle.
        assert!(
            cycles(&[
                group("a", &["b", "c"]),
                group("b", &["d"]),
                group("c", &["d"]),
                group("d", &[]),
            ])
            .is_empty()
        );
        // Entering a cycle from outside names the cycle from where it closes.
        assert_eq!(
            cycles(&[
                group("top", &["x"]),
                group("x", &["y"]),
                group("y", &["z"]),
                group("z", &["x"]),
            ]),
            ["1: x -> y -> z -> x"]
        );
    }

    #[test]
    fn deep_nesting_does_not_overflow() {
        let groups: Vec<GroupEntry> = (0..100_000)
            .map(|i| {
                let name = format!("g{i}");
                let next = format!("g{}", i + 1);
                group(&name, &[next.as_str()])
            })
            .collect();
        assert!(cycles(&groups).is_empty());
    }
}
