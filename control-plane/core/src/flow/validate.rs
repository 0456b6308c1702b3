//! Semantic rules for flows, shared by the YAML and the proto entry points.
//!
//! Every rule runs and every problem is reported: an admin fixing a file wants the whole list at
//! once, not one error per attempt.

use std::collections::BTreeSet;
use std::time::Duration;

use super::model::{
    ApprovalMode, ApprovalPolicy, Approver, DurationPolicy, FlowKind, FlowSpec, Principal,
    ResourceSelector, Target, Timeframe,
};
use super::problem::{Finding, field, is_within, item};
use crate::text::{double_quoted, format_duration, format_time};

/// The longest `duration.max` a flow may set. A grant that lasts longer than a year is not
/// just-in-time access any more.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 86_400);

/// Longest flow name, as in a DNS label, so that names fit in resource names and URLs.
const MAX_NAME_LEN: usize = 63;

/// The key YAML turns into a merge of another mapping.
const YAML_MERGE_KEY: &str = "<<";

/// Paths whose value could not be read (a wrong type, an unknown enum value, a missing field that
/// has no sensible default). The spec holds a stand-in there, so rules must not judge it: that
/// would report a second, misleading problem about a value the admin never wrote.
#[derive(Debug, Clone, Default)]
pub(crate) struct Unreadable {
    paths: Vec<String>,
}

impl Unreadable {
    /// Records that the value at `path` could not be read.
    pub(crate) fn mark(&mut self, path: impl Into<String>) {
        self.paths.push(path.into());
    }

    /// Whether the value at `path` is (part of) a stand-in.
    fn covers(&self, path: &str) -> bool {
        self.paths.iter().any(|unread| is_within(path, unread))
    }

    /// Whether everything at, above and below `path` was read, so that rules about the whole value
    /// (emptiness, counts, comparisons) see what the admin wrote.
    fn clean(&self, path: &str) -> bool {
        !self
            .paths
            .iter()
            .any(|unread| is_within(path, unread) || is_within(unread, path))
    }
}

/// Checks one flow against every semantic rule. Findings on values that could not be read are
/// dropped (see [`Unreadable`]).
pub(crate) fn check_flow(spec: &FlowSpec, unreadable: &Unreadable) -> Vec<Finding> {
    let mut check = Checker {
        out: Vec::new(),
        unreadable,
    };
    check.name(&spec.name);
    check.kind_rules(spec);
    check.requesters(spec);
    check.targets(&spec.targets);
    if let Some(duration) = &spec.duration {
        check.duration(duration);
    }
    // On an automatic flow the whole approval block is the error; judging its insides would only
    // add noise.
    let automatic = spec.kind == FlowKind::Automatic && unreadable.clean("kind");
    if let (Some(approval), false) = (&spec.approval, automatic) {
        check.approval(approval);
    }
    if let Some(timeframe) = &spec.settings.timeframe {
        check.timeframe(timeframe);
    }
    let mut out = check.out;
    out.retain(|finding| !unreadable.covers(&finding.path));
    out
}

/// Reports, on the later flow, every name already used by an earlier flow of the same source.
/// `names[i]` is the name of the flow at position `i`, when it could be read.
pub(crate) fn duplicate_names(names: &[Option<String>]) -> Vec<(usize, Finding)> {
    let mut out = Vec::new();
    for (index, name) in names.iter().enumerate() {
        let Some(name) = name.as_deref().filter(|n| !n.is_empty()) else {
            continue;
        };
        let first = names[..index]
            .iter()
            .position(|earlier| earlier.as_deref() == Some(name));
        if let Some(first) = first {
            let message = format!("{} is used by flow {first} as well", double_quoted(name));
            out.push((index, Finding::error("name", message)));
        }
    }
    out
}

/// Whether `name` is a valid flow name: `^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`.
pub fn is_valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let allowed = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-';
    !bytes.is_empty()
        && bytes.len() <= MAX_NAME_LEN
        && bytes.iter().all(allowed)
        && bytes.first() != Some(&b'-')
        && bytes.last() != Some(&b'-')
}

/// Whether `text` looks like an email address: one `@` with something on each side, no spaces.
fn looks_like_email(text: &str) -> bool {
    match text.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !text.chars().any(char::is_whitespace)
        }
        None => false,
    }
}

struct Checker<'a> {
    out: Vec<Finding>,
    unreadable: &'a Unreadable,
}

impl Checker<'_> {
    fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.out.push(Finding::error(path, message));
    }

    fn clean(&self, path: &str) -> bool {
        self.unreadable.clean(path)
    }

    fn name(&mut self, name: &str) {
        if name.is_empty() {
            self.error("name", "is required");
        } else if !is_valid_name(name) {
            self.error(
                "name",
                format!(
                    "{} is not a valid name (lowercase letters, digits and dashes, 1 to {MAX_NAME_LEN} characters, \
                     starting and ending with a letter or digit)",
                    double_quoted(name)
                ),
            );
        }
    }

    fn kind_rules(&mut self, spec: &FlowSpec) {
        // With the kind unreadable we cannot know which block is required or refused.
        if !self.clean("kind") {
            return;
        }
        match spec.kind {
            FlowKind::SelfServe => {
                if spec.duration.is_none() && self.clean("duration") {
                    self.error(
                        "duration",
                        "self-serve flows need a duration, for example { default: 1h, max: 4h }",
                    );
                }
                if spec.approval.is_none() && self.clean("approval") {
                    self.error(
                        "approval",
                        "self-serve flows need an approval policy (mode: auto grants without approvers)",
                    );
                }
            }
            FlowKind::Automatic => {
                if spec.approval.is_some() {
                    self.error("approval", "automatic flows take no approval");
                }
                if spec.duration.is_some() {
                    self.out.push(Finding::warning(
                        "duration",
                        "automatic flows ignore the duration: access lasts while the requester matches",
                    ));
                }
            }
        }
    }

    fn requesters(&mut self, spec: &FlowSpec) {
        if spec.requesters.any_of.is_empty() && self.clean("requesters.any_of") {
            self.error("requesters", "at least one requester is needed");
        }
        for (list, principals) in [
            ("any_of", &spec.requesters.any_of),
            ("except", &spec.requesters.except),
        ] {
            let list_path = field("requesters", list);
            for (i, principal) in principals.iter().enumerate() {
                let path = item(&list_path, i);
                match principal {
                    Principal::User(user) => self.user(&field(&path, "user"), user),
                    Principal::Group(group) => self.not_empty(&field(&path, "group"), group),
                    Principal::OnCall(schedule) => {
                        self.not_empty(&field(&path, "on_call"), schedule)
                    }
                    Principal::Everyone => {}
                }
            }
        }
    }

    fn user(&mut self, path: &str, user: &str) {
        if user.is_empty() {
            self.error(path, "must not be empty");
        } else if !looks_like_email(user) {
            self.error(
                path,
                format!("{} is not an email address", double_quoted(user)),
            );
        }
    }

    fn not_empty(&mut self, path: &str, value: &str) {
        if value.is_empty() {
            self.error(path, "must not be empty");
        }
    }

    fn no_empty_entries(&mut self, path: &str, values: &[String]) {
        for (i, value) in values.iter().enumerate() {
            self.not_empty(&item(path, i), value);
        }
    }

    fn targets(&mut self, targets: &[Target]) {
        if targets.is_empty() && self.clean("targets") {
            self.error("targets", "at least one target is needed");
        }
        for (i, target) in targets.iter().enumerate() {
            let path = item("targets", i);
            let integration = field(&path, "integration");
            if target.integration.is_empty() {
                self.error(integration, "is required");
            }
            self.no_empty_entries(&field(&path, "resource_types"), &target.resource_types);
            self.selector(&field(&path, "include"), &target.include);
            self.selector(&field(&path, "exclude"), &target.exclude);
            let permissions = field(&path, "permissions");
            if target.permissions.is_empty() && self.clean(&permissions) {
                self.error(permissions.clone(), "at least one permission is needed");
            }
            self.no_empty_entries(&permissions, &target.permissions);
        }
    }

    fn selector(&mut self, path: &str, selector: &ResourceSelector) {
        self.no_empty_entries(&field(path, "ids"), &selector.ids);
        self.no_empty_entries(&field(path, "names"), &selector.names);
        if selector.tags.keys().any(String::is_empty) {
            self.error(field(path, "tags"), "tag keys must not be empty");
        }
        // YAML reads a `<<` key as a merge, quoted or not, so a flow holding it could not be written
        // back as YAML (`latch flows export`) and read again. No cloud allows `<` in a tag key.
        if selector.tags.contains_key(YAML_MERGE_KEY) {
            self.error(
                field(path, "tags"),
                format!("tag key \"{YAML_MERGE_KEY}\" is reserved: YAML reads it as a merge key"),
            );
        }
        self.no_empty_entries(&field(path, "descendants_of"), &selector.descendants_of);
    }

    fn duration(&mut self, policy: &DurationPolicy) {
        for (key, value) in [("default", policy.default), ("max", policy.max)] {
            let path = field("duration", key);
            if value.is_zero() {
                self.error(path, "must be longer than zero");
            } else if value.subsec_nanos() != 0 {
                self.error(
                    path,
                    format!(
                        "{} is not a whole number of seconds",
                        format_duration(value)
                    ),
                );
            }
        }
        if policy.max > MAX_DURATION {
            self.error(
                "duration.max",
                format!(
                    "{} is longer than the limit of {}",
                    format_duration(policy.max),
                    format_duration(MAX_DURATION)
                ),
            );
        }
        if policy.default > policy.max
            && self.clean("duration.default")
            && self.clean("duration.max")
        {
            self.error(
                "duration.default",
                format!(
                    "duration.default ({}) is longer than duration.max ({})",
                    format_duration(policy.default),
                    format_duration(policy.max)
                ),
            );
        }
    }

    fn approval(&mut self, approval: &ApprovalPolicy) {
        if self.clean("approval.mode") {
            match approval.mode {
                ApprovalMode::Auto => {
                    if !approval.groups.is_empty() {
                        self.error("approval.groups", "mode auto takes no approver groups");
                    }
                }
                ApprovalMode::AllOf | ApprovalMode::AnyOf => {
                    if approval.groups.is_empty() && self.clean("approval.groups") {
                        self.error(
                            "approval.groups",
                            format!(
                                "at least one approver group is needed with mode {}",
                                approval.mode.as_str()
                            ),
                        );
                    }
                }
            }
        }
        for (i, group) in approval.groups.iter().enumerate() {
            let path = item("approval.groups", i);
            let approvers_path = field(&path, "approvers");
            let approvers_clean = self.clean(&approvers_path);
            if group.approvers.is_empty() && approvers_clean {
                self.error(approvers_path.clone(), "at least one approver is needed");
            }
            for (j, approver) in group.approvers.iter().enumerate() {
                let entry = item(&approvers_path, j);
                match approver {
                    Approver::User(user) => self.user(&field(&entry, "user"), user),
                    Approver::Group(name) => self.not_empty(&field(&entry, "group"), name),
                    Approver::OnCall(schedule) => {
                        self.not_empty(&field(&entry, "on_call"), schedule)
                    }
                    Approver::Manager | Approver::ResourceOwner | Approver::IntegrationOwner => {}
                }
            }
            let min_path = field(&path, "min");
            if group.min == 0 {
                self.error(min_path, "must be at least 1");
                continue;
            }
            // Only a list of single users has a known size: a group, a schedule or a manager may
            // stand for any number of people.
            let users: Option<BTreeSet<&str>> = group
                .approvers
                .iter()
                .map(|approver| match approver {
                    Approver::User(user) => Some(user.as_str()),
                    _ => None,
                })
                .collect();
            if let Some(users) = users.filter(|u| !u.is_empty() && approvers_clean) {
                let count = users.len();
                if u64::from(group.min) > count as u64 {
                    let noun = if count == 1 { "user is" } else { "users are" };
                    self.error(
                        min_path,
                        format!(
                            "needs {} approvals but only {count} {noun} listed",
                            group.min
                        ),
                    );
                }
            }
        }
    }

    fn timeframe(&mut self, timeframe: &Timeframe) {
        let days = "settings.timeframe.days";
        if timeframe.days.is_empty() && self.clean(days) {
            self.error(days, "at least one day is needed");
        }
        for (i, day) in timeframe.days.iter().enumerate() {
            // Stand-ins for unreadable days are not days the admin wrote, so they cannot be repeated.
            let repeated = timeframe.days[..i]
                .iter()
                .enumerate()
                .any(|(j, earlier)| earlier == day && !self.unreadable.covers(&item(days, j)));
            if repeated {
                self.error(item(days, i), format!("{} is listed twice", day.as_str()));
            }
        }
        let from = "settings.timeframe.from";
        let to = "settings.timeframe.to";
        let mut whole_minutes = true;
        for (path, time) in [(from, timeframe.from), (to, timeframe.to)] {
            if time.second() != 0 || time.subsec_nanosecond() != 0 {
                whole_minutes = false;
                self.error(path, format!("{} is not a whole minute", format_time(time)));
            }
        }
        if whole_minutes && timeframe.from >= timeframe.to && self.clean(from) && self.clean(to) {
            self.error(
                from,
                format!(
                    "{from} ({}) is not earlier than {to} ({})",
                    format_time(timeframe.from),
                    format_time(timeframe.to)
                ),
            );
        }
        let zone = "settings.timeframe.time_zone";
        if timeframe.time_zone.is_empty() {
            self.error(zone, "is required");
        } else if jiff::tz::TimeZone::get(&timeframe.time_zone).is_err() {
            self.error(
                zone,
                format!("unknown time zone {}", double_quoted(&timeframe.time_zone)),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_dns_label_rule() {
        for good in ["a", "prod-readonly", "0", "a-b-c", &"a".repeat(63)] {
            assert!(is_valid_name(good), "{good}");
        }
        for bad in ["", "-a", "a-", "Prod", "a_b", "a.b", &"a".repeat(64), "é"] {
            assert!(!is_valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn emails_need_one_at_sign() {
        assert!(looks_like_email("a@example.com"));
        for bad in ["bob", "@x", "x@", "a@b@c", "a b@c"] {
            assert!(!looks_like_email(bad), "{bad}");
        }
    }

    #[test]
    fn unreadable_paths_cover_their_insides_and_spoil_their_ancestors() {
        let mut unreadable = Unreadable::default();
        unreadable.mark("requesters.any_of[0]");
        assert!(unreadable.covers("requesters.any_of[0].user"));
        assert!(!unreadable.covers("requesters.any_of"));
        assert!(!unreadable.clean("requesters.any_of"));
        assert!(!unreadable.clean("requesters"));
        assert!(unreadable.clean("requesters.except"));
    }

    #[test]
    fn later_duplicates_are_reported() {
        let names = [
            Some("a".to_owned()),
            None,
            Some("b".to_owned()),
            Some("a".to_owned()),
            Some("a".to_owned()),
        ];
        let found = duplicate_names(&names);
        let rendered: Vec<(usize, String)> = found
            .into_iter()
            .map(|(i, f)| (i, format!("{}: {}", f.path, f.message)))
            .collect();
        assert_eq!(
            rendered,
            [
                (3, "name: \"a\" is used by flow 0 as well".to_owned()),
                (4, "name: \"a\" is used by flow 0 as well".to_owned()),
            ]
        );
    }
}
