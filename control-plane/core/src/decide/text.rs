//! Small text forms for messages: durations, pairs, flow names, approval policies.

use std::fmt::Write as _;
use std::time::Duration;

use crate::flow::Approver;

use super::compiled::CompiledFlow;
use super::input::AccessItem;

/// Formats a duration the way people write one in a flow: `1h`, `30m`, `1h 30m`, `7d`.
///
/// The same form as the flow model's own formatter (which is private to `flow`), so a message
/// quotes a maximum exactly as the admin wrote it.
pub(crate) fn format_duration(duration: Duration) -> String {
    let secs = duration.as_secs();
    let nanos = duration.subsec_nanos();
    if secs == 0 && nanos == 0 {
        return "0s".to_owned();
    }
    let parts = [
        (secs / 86_400, "d"),
        (secs % 86_400 / 3_600, "h"),
        (secs % 3_600 / 60, "m"),
        (secs % 60, "s"),
        (u64::from(nanos / 1_000_000), "ms"),
        (u64::from(nanos / 1_000 % 1_000), "us"),
        (u64::from(nanos % 1_000), "ns"),
    ];
    let mut out = String::new();
    for (amount, unit) in parts {
        if amount == 0 {
            continue;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        let _ = write!(out, "{amount}{unit}");
    }
    out
}

/// Names a (resource, permission) pair in a message:
/// `ReadOnlyAccess on aws.account "prod-main" (id 1234, integration aws-prod)`.
pub(crate) fn describe_item(item: &AccessItem) -> String {
    let resource = &item.resource;
    format!(
        "{} on {} {:?} (id {}, integration {})",
        item.permission, resource.resource_type, resource.name, resource.id, resource.integration
    )
}

/// Quotes a flow name with its version: `"prod-readonly" (version 3)`.
pub(crate) fn flow_label(name: &str, version: u32) -> String {
    format!("{name:?} (version {version})")
}

/// A flow's approval policy in words: `"f" (version 2) needs all of: 1 of manager; 1 of group x`.
pub(crate) fn describe_policy(flow: &CompiledFlow) -> String {
    let label = flow_label(flow.name(), flow.version);
    let Some(policy) = &flow.spec.approval else {
        return label;
    };
    let groups: Vec<String> = policy
        .groups
        .iter()
        .map(|group| {
            let approvers: Vec<String> = group
                .approvers
                .iter()
                .map(|approver| match approver {
                    Approver::User(user) => format!("user {user}"),
                    Approver::Group(group) => format!("group {group}"),
                    Approver::OnCall(schedule) => format!("on call {schedule}"),
                    Approver::Manager => "manager".to_owned(),
                    Approver::ResourceOwner => "resource owner".to_owned(),
                    Approver::IntegrationOwner => "integration owner".to_owned(),
                })
                .collect();
            format!("{} of {}", group.min.max(1), approvers.join(", "))
        })
        .collect();
    format!(
        "{label} needs {}: {}",
        policy.mode.as_str().replace('_', " "),
        groups.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_flow_files() {
        assert_eq!(format_duration(Duration::from_secs(4 * 3600)), "4h");
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h 30m");
        assert_eq!(format_duration(Duration::from_secs(7 * 86_400)), "7d");
        assert_eq!(format_duration(Duration::ZERO), "0s");
    }
}
