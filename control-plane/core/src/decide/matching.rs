//! Whether a flow covers a (resource, permission) pair. This is the one place the eligibility
//! rules live: the indexed engine and the reference evaluator both call these functions, the index
//! only narrows which targets they are called on, so the two cannot drift apart.

use std::collections::{BTreeSet, HashSet};

use crate::flow::{Principal, Requesters, ResourceSelector, Target};

use super::identity::email_key;
use super::input::{Requester, Resource};

/// Whether a selector matches a resource: every criterion that is set must match; within one
/// criterion any listed value is enough; tags need every listed key with exactly that value. An
/// empty selector matches every resource.
pub(crate) fn selector_matches(selector: &ResourceSelector, resource: &Resource) -> bool {
    (selector.ids.is_empty() || selector.ids.contains(&resource.id))
        && (selector.names.is_empty() || selector.names.contains(&resource.name))
        && selector
            .tags
            .iter()
            .all(|(key, value)| resource.tags.get(key) == Some(value))
        && (selector.descendants_of.is_empty()
            || selector
                .descendants_of
                .iter()
                .any(|ancestor| resource.ancestors.contains(ancestor)))
}

/// How a target relates to a pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TargetFit {
    /// Another integration, type or permission, or `include` does not match.
    Unrelated,
    /// It would cover the pair, but `exclude` names the resource.
    Excluded,
    /// It covers the pair (requester, time and justification aside: those are the flow's).
    Covers,
}

/// Whether one target covers a (resource, permission) pair, before the flow-wide conditions.
pub(crate) fn target_fit(target: &Target, resource: &Resource, permission: &str) -> TargetFit {
    let related = target.integration == resource.integration
        && (target.resource_types.is_empty()
            || target.resource_types.contains(&resource.resource_type))
        && target.permissions.iter().any(|listed| listed == permission)
        && selector_matches(&target.include, resource);
    if !related {
        TargetFit::Unrelated
    } else if !target.exclude.is_empty() && selector_matches(&target.exclude, resource) {
        TargetFit::Excluded
    } else {
        TargetFit::Covers
    }
}

/// A set of principals prepared for fast membership tests: users by canonical email in a hash set,
/// groups in a hash set, so a check costs a few hash lookups however long the flow's lists are.
#[derive(Debug, Clone, Default)]
pub(crate) struct PrincipalSet {
    everyone: bool,
    users: HashSet<String>,
    groups: HashSet<String>,
    schedules: HashSet<String>,
}

impl PrincipalSet {
    fn new(principals: &[Principal]) -> PrincipalSet {
        let mut set = PrincipalSet::default();
        for principal in principals {
            match principal {
                Principal::User(user) => {
                    set.users.insert(email_key(user));
                }
                Principal::Group(group) => {
                    set.groups.insert(group.clone());
                }
                Principal::OnCall(schedule) => {
                    set.schedules.insert(schedule.clone());
                }
                Principal::Everyone => set.everyone = true,
            }
        }
        set
    }

    /// Whether the requester (whose canonical email is `email`) is in the set.
    fn contains(&self, email: &str, requester: &Requester) -> bool {
        // Empty sets are skipped before hashing: most flows list only groups, and `except` is
        // usually empty.
        self.everyone
            || (!self.users.is_empty() && self.users.contains(email))
            || intersects(&self.groups, &requester.groups)
            || intersects(&self.schedules, &requester.on_call)
    }
}

/// Whether a flow's names and a requester's share an element, walking the smaller side.
fn intersects(flow: &HashSet<String>, requester: &BTreeSet<String>) -> bool {
    if flow.is_empty() || requester.is_empty() {
        return false;
    }
    if flow.len() <= requester.len() {
        flow.iter().any(|name| requester.contains(name))
    } else {
        requester.iter().any(|name| flow.contains(name))
    }
}

/// A flow's `requesters`, prepared.
#[derive(Debug, Clone, Default)]
pub(crate) struct RequesterRule {
    any_of: PrincipalSet,
    except: PrincipalSet,
}

/// Whether a requester may use a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RequesterFit {
    Eligible,
    NotListed,
    Excepted,
}

impl RequesterRule {
    pub(crate) fn new(requesters: &Requesters) -> RequesterRule {
        RequesterRule {
            any_of: PrincipalSet::new(&requesters.any_of),
            except: PrincipalSet::new(&requesters.except),
        }
    }

    /// Whether the requester, whose canonical email is `email`, is a requester of the flow.
    pub(crate) fn fit(&self, email: &str, requester: &Requester) -> RequesterFit {
        if !self.any_of.contains(email, requester) {
            RequesterFit::NotListed
        } else if self.except.contains(email, requester) {
            RequesterFit::Excepted
        } else {
            RequesterFit::Eligible
        }
    }

    /// Calls `found` for each of the requester's groups and schedules that this rule mentions:
    /// the facts it used. Walks the smaller side of each pair of sets.
    pub(crate) fn used_facts(
        &self,
        groups: &BTreeSet<String>,
        schedules: &BTreeSet<String>,
        mut found: impl FnMut(FactKind, &str),
    ) {
        for set in [&self.any_of, &self.except] {
            for_common(&set.groups, groups, |name| found(FactKind::Group, name));
            for_common(&set.schedules, schedules, |name| {
                found(FactKind::Schedule, name)
            });
        }
    }
}

/// Which requester fact a rule used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FactKind {
    Group,
    Schedule,
}

/// Calls `found` for each name in both sets, walking the smaller one.
fn for_common(flow: &HashSet<String>, requester: &BTreeSet<String>, mut found: impl FnMut(&str)) {
    if flow.is_empty() || requester.is_empty() {
        return;
    }
    if flow.len() <= requester.len() {
        flow.iter()
            .filter(|name| requester.contains(*name))
            .for_each(|name| found(name));
    } else {
        requester
            .iter()
            .filter(|name| flow.contains(*name))
            .for_each(|name| found(name));
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn resource() -> Resource {
        Resource {
            integration: "aws-prod".to_owned(),
            resource_type: "aws.account".to_owned(),
            id: "111".to_owned(),
            name: "prod-main".to_owned(),
            tags: BTreeMap::from([
                ("env".to_owned(), "prod".to_owned()),
                ("team".to_owned(), "core".to_owned()),
            ]),
            ancestors: vec!["ou-prod".to_owned(), "root".to_owned()],
            owners: vec![],
        }
    }

    fn strings(values: &[&str]) -> Vec<String> {
        values.iter().map(|v| (*v).to_owned()).collect()
    }

    fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn an_empty_selector_matches_everything() {
        assert!(selector_matches(&ResourceSelector::default(), &resource()));
    }

    #[test]
    fn any_listed_value_within_a_criterion_is_enough() {
        let r = resource();
        let by_ids = ResourceSelector {
            ids: strings(&["999", "111"]),
            ..Default::default()
        };
        assert!(selector_matches(&by_ids, &r));
        let by_names = ResourceSelector {
            names: strings(&["other", "prod-main"]),
            ..Default::default()
        };
        assert!(selector_matches(&by_names, &r));
        let by_ancestor = ResourceSelector {
            descendants_of: strings(&["ou-dev", "root"]),
            ..Default::default()
        };
        assert!(selector_matches(&by_ancestor, &r));
        let wrong_ids = ResourceSelector {
            ids: strings(&["999"]),
            ..Default::default()
        };
        assert!(!selector_matches(&wrong_ids, &r));
    }

    #[test]
    fn tags_need_every_key_with_exactly_that_value() {
        let r = resource();
        let both = ResourceSelector {
            tags: tags(&[("env", "prod"), ("team", "core")]),
            ..Default::default()
        };
        assert!(selector_matches(&both, &r));
        let one_wrong = ResourceSelector {
            tags: tags(&[("env", "prod"), ("team", "payments")]),
            ..Default::default()
        };
        assert!(!selector_matches(&one_wrong, &r));
        let missing_key = ResourceSelector {
            tags: tags(&[("owner", "x")]),
            ..Default::default()
        };
        assert!(!selector_matches(&missing_key, &r));
        let case_differs = ResourceSelector {
            tags: tags(&[("env", "Prod")]),
            ..Default::default()
        };
        assert!(!selector_matches(&case_differs, &r));
    }

    #[test]
    fn every_set_criterion_must_match() {
        let r = resource();
        let ids_and_tags = ResourceSelector {
            ids: strings(&["111"]),
            tags: tags(&[("env", "dev")]),
            ..Default::default()
        };
        assert!(!selector_matches(&ids_and_tags, &r));
        let all_four = ResourceSelector {
            ids: strings(&["111"]),
            names: strings(&["prod-main"]),
            tags: tags(&[("env", "prod")]),
            descendants_of: strings(&["ou-prod"]),
        };
        assert!(selector_matches(&all_four, &r));
    }

    #[test]
    fn descendants_of_means_strict_descendants() {
        let r = resource();
        let itself = ResourceSelector {
            descendants_of: strings(&["111"]),
            ..Default::default()
        };
        assert!(!selector_matches(&itself, &r));
    }

    fn target() -> Target {
        Target {
            integration: "aws-prod".to_owned(),
            resource_types: vec![],
            include: ResourceSelector::default(),
            exclude: ResourceSelector::default(),
            permissions: strings(&["ReadOnlyAccess"]),
        }
    }

    fn fit_of(target: &Target, permission: &str) -> TargetFit {
        target_fit(target, &resource(), permission)
    }

    #[test]
    fn targets_check_integration_types_permission_include_and_exclude() {
        let base = target();
        assert_eq!(fit_of(&base, "ReadOnlyAccess"), TargetFit::Covers);
        assert_eq!(fit_of(&base, "AdministratorAccess"), TargetFit::Unrelated);
        let other_integration = Target {
            integration: "aws-dev".to_owned(),
            ..target()
        };
        assert_eq!(
            fit_of(&other_integration, "ReadOnlyAccess"),
            TargetFit::Unrelated
        );
        let typed = Target {
            resource_types: strings(&["aws.s3.bucket", "aws.account"]),
            ..target()
        };
        assert_eq!(fit_of(&typed, "ReadOnlyAccess"), TargetFit::Covers);
        let other_type = Target {
            resource_types: strings(&["aws.s3.bucket"]),
            ..target()
        };
        assert_eq!(fit_of(&other_type, "ReadOnlyAccess"), TargetFit::Unrelated);
        let excluded = Target {
            exclude: ResourceSelector {
                tags: tags(&[("team", "core")]),
                ..Default::default()
            },
            ..target()
        };
        assert_eq!(fit_of(&excluded, "ReadOnlyAccess"), TargetFit::Excluded);
        // An exclude that does not match excludes nothing; an include that does not match makes
        // the target unrelated even if exclude would match.
        let not_included = Target {
            include: ResourceSelector {
                tags: tags(&[("env", "dev")]),
                ..Default::default()
            },
            exclude: ResourceSelector {
                tags: tags(&[("team", "core")]),
                ..Default::default()
            },
            ..target()
        };
        assert_eq!(
            fit_of(&not_included, "ReadOnlyAccess"),
            TargetFit::Unrelated
        );
    }

    fn requester() -> Requester {
        Requester {
            email: "Alice@Example.com".to_owned(),
            groups: ["engineering".to_owned(), "sre".to_owned()].into(),
            manager: None,
            on_call: ["pagerduty/primary".to_owned()].into(),
            time_zone: None,
        }
    }

    fn fit(any_of: Vec<Principal>, except: Vec<Principal>) -> RequesterFit {
        let requester = requester();
        RequesterRule::new(&Requesters { any_of, except })
            .fit(&email_key(&requester.email), &requester)
    }

    #[test]
    fn requesters_match_by_user_group_schedule_or_everyone() {
        let user = |u: &str| Principal::User(u.to_owned());
        let group = |g: &str| Principal::Group(g.to_owned());
        let on_call = |s: &str| Principal::OnCall(s.to_owned());
        assert_eq!(
            fit(vec![user("alice@example.COM")], vec![]),
            RequesterFit::Eligible
        );
        assert_eq!(
            fit(vec![user("bob@example.com")], vec![]),
            RequesterFit::NotListed
        );
        assert_eq!(fit(vec![group("sre")], vec![]), RequesterFit::Eligible);
        assert_eq!(fit(vec![group("SRE")], vec![]), RequesterFit::NotListed);
        assert_eq!(
            fit(vec![on_call("pagerduty/primary")], vec![]),
            RequesterFit::Eligible
        );
        assert_eq!(
            fit(vec![on_call("pagerduty/secondary")], vec![]),
            RequesterFit::NotListed
        );
        assert_eq!(
            fit(vec![Principal::Everyone], vec![]),
            RequesterFit::Eligible
        );
        assert_eq!(fit(vec![], vec![]), RequesterFit::NotListed);
    }

    #[test]
    fn except_wins_over_any_of() {
        assert_eq!(
            fit(
                vec![Principal::Everyone],
                vec![Principal::User("ALICE@example.com".to_owned())]
            ),
            RequesterFit::Excepted
        );
        assert_eq!(
            fit(
                vec![Principal::Group("engineering".to_owned())],
                vec![Principal::OnCall("pagerduty/primary".to_owned())]
            ),
            RequesterFit::Excepted
        );
        assert_eq!(
            fit(
                vec![Principal::Group("engineering".to_owned())],
                vec![Principal::Group("contractors".to_owned())]
            ),
            RequesterFit::Eligible
        );
    }
}
