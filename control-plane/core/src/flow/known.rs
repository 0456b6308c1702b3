//! Warnings about names a flow refers to that Latch has not seen yet.
//!
//! These are warnings, not errors: a flow is often written before its integration is connected or
//! before the directory has synced a new group, and it should be possible to apply it then.

use std::collections::BTreeSet;

use super::Problem;
use super::model::{Approver, FlowSpec, Principal};
use super::problem::{Finding, field, item};
use crate::text::double_quoted;

/// The names Latch knows: connected integrations and synced identities.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KnownNames {
    /// Integration names.
    pub integrations: BTreeSet<String>,
    /// User email addresses (compared without regard to ASCII case, as email addresses are).
    pub users: BTreeSet<String>,
    /// Group names.
    pub groups: BTreeSet<String>,
    /// On-call schedules, as `provider/schedule`.
    pub schedules: BTreeSet<String>,
}

impl KnownNames {
    fn knows_user(&self, email: &str) -> bool {
        self.users.contains(email)
            || self
                .users
                .iter()
                .any(|known| known.eq_ignore_ascii_case(email))
    }
}

/// One warning per reference to an integration, user, group or on-call schedule that `known` does
/// not hold, for example `targets[0].integration: integration "aws-prod" is not known yet`. The
/// `flow_index` of each warning is the flow's position in `flows`. Empty names are left to
/// validation, which reports them as errors.
pub fn unknown_reference_warnings(flows: &[FlowSpec], known: &KnownNames) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (index, flow) in flows.iter().enumerate() {
        let name = Some(flow.name.as_str()).filter(|n| !n.is_empty());
        problems.extend(
            flow_warnings(flow, known)
                .into_iter()
                .map(|f| f.into_problem(index, name)),
        );
    }
    problems
}

fn flow_warnings(flow: &FlowSpec, known: &KnownNames) -> Vec<Finding> {
    let mut out = Vec::new();
    for (list, principals) in [
        ("any_of", &flow.requesters.any_of),
        ("except", &flow.requesters.except),
    ] {
        for (i, principal) in principals.iter().enumerate() {
            let path = item(&field("requesters", list), i);
            let reference = match principal {
                Principal::User(v) => Reference::User(v),
                Principal::Group(v) => Reference::Group(v),
                Principal::OnCall(v) => Reference::OnCall(v),
                Principal::Everyone => continue,
            };
            out.extend(reference.warning(&path, known));
        }
    }
    for (i, target) in flow.targets.iter().enumerate() {
        let path = item("targets", i);
        out.extend(Reference::Integration(&target.integration).warning(&path, known));
    }
    if let Some(approval) = &flow.approval {
        for (i, group) in approval.groups.iter().enumerate() {
            for (j, approver) in group.approvers.iter().enumerate() {
                let path = item(&field(&item("approval.groups", i), "approvers"), j);
                let reference = match approver {
                    Approver::User(v) => Reference::User(v),
                    Approver::Group(v) => Reference::Group(v),
                    Approver::OnCall(v) => Reference::OnCall(v),
                    Approver::Manager | Approver::ResourceOwner | Approver::IntegrationOwner => {
                        continue;
                    }
                };
                out.extend(reference.warning(&path, known));
            }
        }
    }
    out
}

/// A name a flow refers to, by what it names.
enum Reference<'a> {
    User(&'a str),
    Group(&'a str),
    OnCall(&'a str),
    Integration(&'a str),
}

impl Reference<'_> {
    /// The warning for this reference, made in the entry at `path`, when `known` does not hold it.
    fn warning(&self, path: &str, known: &KnownNames) -> Option<Finding> {
        let (key, noun, value, is_known) = match *self {
            Reference::User(v) => ("user", "user", v, known.knows_user(v)),
            Reference::Group(v) => ("group", "group", v, known.groups.contains(v)),
            Reference::OnCall(v) => (
                "on_call",
                "on-call schedule",
                v,
                known.schedules.contains(v),
            ),
            Reference::Integration(v) => (
                "integration",
                "integration",
                v,
                known.integrations.contains(v),
            ),
        };
        (!value.is_empty() && !is_known).then(|| {
            Finding::warning(
                field(path, key),
                format!("{noun} {} is not known yet", double_quoted(value)),
            )
        })
    }
}
