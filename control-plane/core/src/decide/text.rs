//! Small text forms for messages: pairs, flow names, approval policies (durations: `crate::text`).

use crate::flow::Approver;

use super::compiled::CompiledFlow;
use super::input::AccessItem;

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
