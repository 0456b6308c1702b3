//! Writing flows in Latch's YAML format, as an admin would write them by hand.
//!
//! The writer is hand-made rather than serde's so that the output looks like the documented format
//! (short lists and small mappings inline, durations as `1h`, times as `"08:00"`), and so that
//! [`parse_yaml`](super::parse_yaml) reads it back to an equal spec.

use std::fmt::Write as _;

use super::model::{Approver, FlowSpec, Principal, ResourceSelector, Settings, Target};
use crate::text::{format_duration, format_time, yaml_scalar};

impl FlowSpec {
    /// The flow as one YAML document in the documented format.
    pub fn to_yaml(&self) -> String {
        let mut out = String::new();
        line(&mut out, 0, &format!("name: {}", yaml_scalar(&self.name)));
        line(&mut out, 0, &format!("kind: {}", self.kind.as_str()));
        if !self.description.is_empty() {
            line(
                &mut out,
                0,
                &format!("description: {}", yaml_scalar(&self.description)),
            );
        }
        line(&mut out, 0, "requesters:");
        line(
            &mut out,
            1,
            &format!(
                "any_of: {}",
                inline_list(self.requesters.any_of.iter().map(principal))
            ),
        );
        if !self.requesters.except.is_empty() {
            line(
                &mut out,
                1,
                &format!(
                    "except: {}",
                    inline_list(self.requesters.except.iter().map(principal))
                ),
            );
        }
        if self.targets.is_empty() {
            line(&mut out, 0, "targets: []");
        } else {
            line(&mut out, 0, "targets:");
            for target in &self.targets {
                write_target(&mut out, target);
            }
        }
        if let Some(duration) = &self.duration {
            line(
                &mut out,
                0,
                &format!(
                    "duration: {{ default: {}, max: {} }}",
                    yaml_scalar(&format_duration(duration.default)),
                    yaml_scalar(&format_duration(duration.max))
                ),
            );
        }
        if let Some(approval) = &self.approval {
            line(&mut out, 0, "approval:");
            line(&mut out, 1, &format!("mode: {}", approval.mode.as_str()));
            if !approval.groups.is_empty() {
                line(&mut out, 1, "groups:");
                for group in &approval.groups {
                    let approvers = inline_list(group.approvers.iter().map(approver));
                    line(
                        &mut out,
                        2,
                        &format!("- {{ approvers: {approvers}, min: {} }}", group.min),
                    );
                }
            }
            line(
                &mut out,
                1,
                &format!("requester_can_approve: {}", approval.requester_can_approve),
            );
        }
        if self.settings != Settings::default() {
            write_settings(&mut out, &self.settings);
        }
        out
    }
}

/// Several flows as one YAML stream, documents separated by `---`.
pub fn render_yaml_stream(flows: &[FlowSpec]) -> String {
    flows
        .iter()
        .map(FlowSpec::to_yaml)
        .collect::<Vec<_>>()
        .join("---\n")
}

fn line(out: &mut String, indent: usize, text: &str) {
    for _ in 0..indent {
        out.push_str("  ");
    }
    out.push_str(text);
    out.push('\n');
}

fn inline_list(items: impl Iterator<Item = String>) -> String {
    format!("[{}]", items.collect::<Vec<_>>().join(", "))
}

fn scalars<'a>(values: impl IntoIterator<Item = &'a String>) -> String {
    inline_list(values.into_iter().map(|v| yaml_scalar(v)))
}

fn principal(principal: &Principal) -> String {
    match principal {
        Principal::User(v) => format!("{{ user: {} }}", yaml_scalar(v)),
        Principal::Group(v) => format!("{{ group: {} }}", yaml_scalar(v)),
        Principal::OnCall(v) => format!("{{ on_call: {} }}", yaml_scalar(v)),
        Principal::Everyone => "everyone".to_owned(),
    }
}

fn approver(approver: &Approver) -> String {
    match approver {
        Approver::User(v) => format!("{{ user: {} }}", yaml_scalar(v)),
        Approver::Group(v) => format!("{{ group: {} }}", yaml_scalar(v)),
        Approver::OnCall(v) => format!("{{ on_call: {} }}", yaml_scalar(v)),
        Approver::Manager => "manager".to_owned(),
        Approver::ResourceOwner => "resource_owner".to_owned(),
        Approver::IntegrationOwner => "integration_owner".to_owned(),
    }
}

fn write_target(out: &mut String, target: &Target) {
    line(
        out,
        1,
        &format!("- integration: {}", yaml_scalar(&target.integration)),
    );
    if !target.resource_types.is_empty() {
        line(
            out,
            2,
            &format!("resource_types: {}", scalars(&target.resource_types)),
        );
    }
    if !target.include.is_empty() {
        line(out, 2, &format!("include: {}", selector(&target.include)));
    }
    if !target.exclude.is_empty() {
        line(out, 2, &format!("exclude: {}", selector(&target.exclude)));
    }
    line(
        out,
        2,
        &format!("permissions: {}", scalars(&target.permissions)),
    );
}

fn selector(selector: &ResourceSelector) -> String {
    let mut parts = Vec::new();
    if !selector.ids.is_empty() {
        parts.push(format!("ids: {}", scalars(&selector.ids)));
    }
    if !selector.names.is_empty() {
        parts.push(format!("names: {}", scalars(&selector.names)));
    }
    if !selector.tags.is_empty() {
        let tags: Vec<String> = selector
            .tags
            .iter()
            .map(|(k, v)| format!("{}: {}", yaml_scalar(k), yaml_scalar(v)))
            .collect();
        parts.push(format!("tags: {{ {} }}", tags.join(", ")));
    }
    if !selector.descendants_of.is_empty() {
        parts.push(format!(
            "descendants_of: {}",
            scalars(&selector.descendants_of)
        ));
    }
    format!("{{ {} }}", parts.join(", "))
}

fn write_settings(out: &mut String, settings: &Settings) {
    line(out, 0, "settings:");
    line(
        out,
        1,
        &format!("justification: {}", settings.justification.as_str()),
    );
    if let Some(timeframe) = &settings.timeframe {
        let days = inline_list(timeframe.days.iter().map(|d| d.as_str().to_owned()));
        let mut text = String::new();
        let _ = write!(
            text,
            "timeframe: {{ days: {days}, from: {}, to: {}, time_zone: {} }}",
            yaml_scalar(&format_time(timeframe.from)),
            yaml_scalar(&format_time(timeframe.to)),
            yaml_scalar(&timeframe.time_zone)
        );
        line(out, 1, &text);
    }
}
