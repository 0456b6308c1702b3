//! How access requests and grants are printed: JSON for scripts, a short summary after a command
//! acts on a request, and the full view of `latch requests show`.

use std::fmt::Write as _;

use latch_proto::v1::{AccessItem, AccessRequest, Approval, DecisionReason, FlowVersionRef, Grant};
use serde::Serialize;

use crate::duration::format_duration;
use crate::output::{format_table, table, timestamp, timestamp_cell};

/// A request as JSON.
#[derive(Serialize)]
pub struct RequestJson {
    id: String,
    requester: String,
    state: String,
    /// True when `latch request` extended access the requester already held.
    extended: bool,
    items: Vec<ItemJson>,
    requested_duration: Option<String>,
    duration: Option<String>,
    justification: String,
    outcome: String,
    reasons: Vec<ReasonJson>,
    flows: Vec<FlowJson>,
    waiting_for: Vec<String>,
    approvals: Vec<ApprovalJson>,
    grants: Vec<GrantJson>,
    digest: String,
    /// The decision record, parsed; the raw text if it is not JSON; null when there is none.
    decision: serde_json::Value,
    created_at: Option<String>,
    pending_expires_at: Option<String>,
    activated_at: Option<String>,
    expires_at: Option<String>,
    updated_at: Option<String>,
    end_reason: String,
}

impl RequestJson {
    /// The request as JSON; `extended` as the server said when it was created.
    pub fn new(request: &AccessRequest, extended: bool) -> Self {
        Self {
            id: request.id.clone(),
            requester: request.requester.clone(),
            state: request.state.clone(),
            extended,
            items: request.items.iter().map(ItemJson::from).collect(),
            requested_duration: request.requested_duration.as_ref().map(format_duration),
            duration: request.duration.as_ref().map(format_duration),
            justification: request.justification.clone(),
            outcome: request.outcome.clone(),
            reasons: request.reasons.iter().map(ReasonJson::from).collect(),
            flows: request.flows.iter().map(FlowJson::from).collect(),
            waiting_for: request.waiting_for.clone(),
            approvals: request.approvals.iter().map(ApprovalJson::from).collect(),
            grants: request.grants.iter().map(GrantJson::from).collect(),
            digest: request.digest.clone(),
            decision: decision_value(&request.decision_json),
            created_at: timestamp(request.created_at.as_ref()),
            pending_expires_at: timestamp(request.pending_expires_at.as_ref()),
            activated_at: timestamp(request.activated_at.as_ref()),
            expires_at: timestamp(request.expires_at.as_ref()),
            updated_at: timestamp(request.updated_at.as_ref()),
            end_reason: request.end_reason.clone(),
        }
    }
}

/// The decision record as a JSON value: parsed when it parses, the raw text when it does not, null
/// when there is none.
fn decision_value(text: &str) -> serde_json::Value {
    if text.is_empty() {
        return serde_json::Value::Null;
    }
    serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::String(text.to_owned()))
}

#[derive(Serialize)]
struct ItemJson {
    resource_id: String,
    permission: String,
}

impl From<&AccessItem> for ItemJson {
    fn from(item: &AccessItem) -> Self {
        Self {
            resource_id: item.resource_id.clone(),
            permission: item.permission.clone(),
        }
    }
}

#[derive(Serialize)]
struct ReasonJson {
    code: String,
    message: String,
    flow: String,
}

impl From<&DecisionReason> for ReasonJson {
    fn from(reason: &DecisionReason) -> Self {
        Self {
            code: reason.code.clone(),
            message: reason.message.clone(),
            flow: reason.flow.clone(),
        }
    }
}

#[derive(Serialize)]
struct FlowJson {
    name: String,
    version: u32,
}

impl From<&FlowVersionRef> for FlowJson {
    fn from(flow: &FlowVersionRef) -> Self {
        Self {
            name: flow.name.clone(),
            version: flow.version,
        }
    }
}

#[derive(Serialize)]
struct ApprovalJson {
    approver: String,
    verdict: String,
    reason: String,
    at: Option<String>,
    request_digest: String,
}

impl From<&Approval> for ApprovalJson {
    fn from(approval: &Approval) -> Self {
        Self {
            approver: approval.approver.clone(),
            verdict: approval.verdict.clone(),
            reason: approval.reason.clone(),
            at: timestamp(approval.at.as_ref()),
            request_digest: approval.request_digest.clone(),
        }
    }
}

/// A grant as JSON.
#[derive(Serialize)]
pub struct GrantJson {
    id: String,
    request_id: String,
    identity: String,
    integration: String,
    resource_id: String,
    permission: String,
    flow: Option<FlowJson>,
    state: String,
    desired: String,
    observed: String,
    generation: u64,
    started_at: Option<String>,
    expires_at: Option<String>,
    end_reason: String,
}

impl From<&Grant> for GrantJson {
    fn from(grant: &Grant) -> Self {
        Self {
            id: grant.id.clone(),
            request_id: grant.request_id.clone(),
            identity: grant.identity.clone(),
            integration: grant.integration.clone(),
            resource_id: grant.resource_id.clone(),
            permission: grant.permission.clone(),
            flow: grant.flow.as_ref().map(FlowJson::from),
            state: grant.state.clone(),
            desired: grant.desired.clone(),
            observed: grant.observed.clone(),
            generation: grant.generation,
            started_at: timestamp(grant.started_at.as_ref()),
            expires_at: timestamp(grant.expires_at.as_ref()),
            end_reason: grant.end_reason.clone(),
        }
    }
}

/// The items of a request in one cell: `resource:permission, ...`.
pub fn items_cell(items: &[AccessItem]) -> String {
    items
        .iter()
        .map(|item| format!("{}:{}", item.resource_id, item.permission))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A reason for people: the message, then its code and flow.
pub fn reason_text(reason: &DecisionReason) -> String {
    match (reason.code.is_empty(), reason.flow.is_empty()) {
        (true, true) => reason.message.clone(),
        (false, true) => format!("{} ({})", reason.message, reason.code),
        (true, false) => format!("{} (flow {})", reason.message, reason.flow),
        (false, false) => format!("{} ({}, flow {})", reason.message, reason.code, reason.flow),
    }
}

/// Appends `label` and `value` as one line of a view, the values aligned.
pub fn field(text: &mut String, label: &str, value: &str) {
    let _ = writeln!(text, "  {label:<15}{value}");
}

/// Appends a list under a heading, one `- entry` a line; nothing when `entries` is empty.
pub fn section(text: &mut String, heading: &str, entries: impl IntoIterator<Item = String>) {
    let mut entries = entries.into_iter().peekable();
    if entries.peek().is_none() {
        return;
    }
    let _ = writeln!(text, "  {heading}:");
    for entry in entries {
        let _ = writeln!(text, "    - {entry}");
    }
}

/// What a command that acted on a request prints: its id and state, items, expiry, who it waits
/// for, and (with `with_reasons`) the engine's reasons.
pub fn summary(request: &AccessRequest, extended: bool, with_reasons: bool) -> String {
    let mut text = format!("request {}: {}", request.id, request.state);
    if extended {
        text.push_str(" (extended the access you already had)");
    }
    text.push('\n');
    field(&mut text, "items", &items_cell(&request.items));
    if let Some(at) = timestamp(request.expires_at.as_ref()) {
        field(&mut text, "expires", &at);
    }
    if request.state == "pending"
        && let Some(at) = timestamp(request.pending_expires_at.as_ref())
    {
        field(&mut text, "pending until", &at);
    }
    for who in &request.waiting_for {
        field(&mut text, "waiting for", who);
    }
    if !request.end_reason.is_empty() {
        field(&mut text, "ended because", &request.end_reason);
    }
    if with_reasons {
        section(
            &mut text,
            "reasons",
            request.reasons.iter().map(reason_text),
        );
    }
    text
}

/// The full view of one request, for `latch requests show`.
pub fn detail(request: &AccessRequest) -> String {
    let mut text = format!("request {}\n", request.id);
    let duration = |d: Option<&prost_types::Duration>| d.map(format_duration);
    let flows = request
        .flows
        .iter()
        .map(|flow| format!("{} v{}", flow.name, flow.version))
        .collect::<Vec<_>>()
        .join(", ");
    let rows = [
        ("requester", Some(request.requester.clone())),
        ("state", Some(request.state.clone())),
        ("outcome", Some(request.outcome.clone())),
        ("justification", Some(request.justification.clone())),
        (
            "requested for",
            duration(request.requested_duration.as_ref()),
        ),
        ("duration", duration(request.duration.as_ref())),
        ("flows", Some(flows)),
        ("created", timestamp(request.created_at.as_ref())),
        (
            "pending until",
            timestamp(request.pending_expires_at.as_ref()),
        ),
        ("activated", timestamp(request.activated_at.as_ref())),
        ("expires", timestamp(request.expires_at.as_ref())),
        ("updated", timestamp(request.updated_at.as_ref())),
        ("ended because", Some(request.end_reason.clone())),
        ("digest", Some(request.digest.clone())),
    ];
    for (label, value) in rows {
        if let Some(value) = value.filter(|value| !value.is_empty()) {
            field(&mut text, label, &value);
        }
    }
    section(
        &mut text,
        "items",
        request
            .items
            .iter()
            .map(|item| format!("{}:{}", item.resource_id, item.permission)),
    );
    section(
        &mut text,
        "reasons",
        request.reasons.iter().map(reason_text),
    );
    section(
        &mut text,
        "waiting for",
        request.waiting_for.iter().cloned(),
    );
    section(
        &mut text,
        "approvals",
        request.approvals.iter().map(approval_text),
    );
    if !request.grants.is_empty() {
        text.push_str("  grants:\n");
        let mut rows = table([
            "ID",
            "IDENTITY",
            "RESOURCE",
            "PERMISSION",
            "STATE",
            "EXPIRES",
        ]);
        for grant in &request.grants {
            rows.add_row([
                grant.id.clone(),
                grant.identity.clone(),
                grant.resource_id.clone(),
                grant.permission.clone(),
                grant.state.clone(),
                timestamp_cell(grant.expires_at.as_ref(), "-"),
            ]);
        }
        for line in format_table(rows).lines() {
            let _ = writeln!(text, "    {line}");
        }
    }
    text
}

/// One approval or denial: `approve by ana@example.com at 2026-...: looks fine`.
fn approval_text(approval: &Approval) -> String {
    let mut text = format!(
        "{} by {} at {}",
        approval.verdict,
        approval.approver,
        timestamp_cell(approval.at.as_ref(), "an unknown time")
    );
    if !approval.reason.is_empty() {
        let _ = write!(text, ": {}", approval.reason);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(resource: &str, permission: &str) -> AccessItem {
        AccessItem {
            resource_id: resource.to_owned(),
            permission: permission.to_owned(),
        }
    }

    fn at(seconds: i64) -> Option<prost_types::Timestamp> {
        Some(prost_types::Timestamp { seconds, nanos: 0 })
    }

    fn pending_request() -> AccessRequest {
        AccessRequest {
            id: "r1".to_owned(),
            requester: "ana@example.com".to_owned(),
            state: "pending".to_owned(),
            items: vec![item("db1", "read"), item("db2", "read")],
            outcome: "needs_approval".to_owned(),
            reasons: vec![DecisionReason {
                code: "approval_required".to_owned(),
                message: "one approver from sre".to_owned(),
                flow: "prod".to_owned(),
            }],
            waiting_for: vec!["one approver from sre".to_owned()],
            pending_expires_at: at(86_400),
            decision_json: r#"{"outcome":"needs_approval"}"#.to_owned(),
            ..Default::default()
        }
    }

    #[test]
    fn items_read_resource_colon_permission() {
        assert_eq!(
            items_cell(&[item("db1", "read"), item("db2", "write")]),
            "db1:read, db2:write"
        );
        assert_eq!(items_cell(&[]), "");
    }

    #[test]
    fn request_json_has_the_documented_keys() {
        let json =
            serde_json::to_value(RequestJson::new(&pending_request(), false)).expect("serialises");
        assert_eq!(json["id"], "r1");
        assert_eq!(json["state"], "pending");
        assert_eq!(json["requester"], "ana@example.com");
        assert_eq!(json["extended"], false);
        assert_eq!(json["outcome"], "needs_approval");
        assert_eq!(
            json["items"][1],
            serde_json::json!({"resource_id": "db2", "permission": "read"})
        );
        assert_eq!(json["reasons"][0]["code"], "approval_required");
        assert_eq!(json["expires_at"], serde_json::Value::Null);
        assert_eq!(json["pending_expires_at"], "1970-01-02T00:00:00Z");
        assert_eq!(
            json["decision"],
            serde_json::json!({"outcome": "needs_approval"})
        );
    }

    #[test]
    fn decision_text_that_is_not_json_is_kept_as_text() {
        assert_eq!(decision_value(""), serde_json::Value::Null);
        assert_eq!(decision_value("{oops"), serde_json::json!("{oops"));
        assert_eq!(decision_value("[1]"), serde_json::json!([1]));
    }

    #[test]
    fn summary_shows_what_the_request_waits_for() {
        let text = summary(&pending_request(), false, true);
        assert_eq!(
            text,
            "request r1: pending\n\
             \x20 items          db1:read, db2:read\n\
             \x20 pending until  1970-01-02T00:00:00Z\n\
             \x20 waiting for    one approver from sre\n\
             \x20 reasons:\n\
             \x20   - one approver from sre (approval_required, flow prod)\n"
        );
        let without_reasons = summary(&pending_request(), true, false);
        assert!(without_reasons.starts_with("request r1: pending (extended"));
        assert!(!without_reasons.contains("reasons"), "{without_reasons}");
    }

    #[test]
    fn detail_lists_approvals_and_grants() {
        let mut request = pending_request();
        request.state = "active".to_owned();
        request.approvals = vec![Approval {
            approver: "bo@example.com".to_owned(),
            verdict: "approve".to_owned(),
            reason: "ok".to_owned(),
            at: at(60),
            request_digest: "d".to_owned(),
        }];
        request.grants = vec![Grant {
            id: "g1".to_owned(),
            identity: "ana@example.com".to_owned(),
            resource_id: "db1".to_owned(),
            permission: "read".to_owned(),
            state: "active".to_owned(),
            expires_at: at(3_600),
            ..Default::default()
        }];
        let text = detail(&request);
        assert!(text.contains("  state          active\n"), "{text}");
        assert!(
            text.contains("    - approve by bo@example.com at 1970-01-01T00:01:00Z: ok\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "    g1  ana@example.com  db1       read        active  1970-01-01T01:00:00Z\n"
            ),
            "{text}"
        );
        assert!(!text.contains("activated"), "{text}");
    }
}
