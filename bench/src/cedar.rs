//! The baseline: the same corpus written as Cedar policies, decided by `cedar-policy`.
//!
//! Each target of each self-serve flow becomes one `permit`. Cedar answers only "may this person
//! request this", with no flow choice and no approval plan, so the comparison favours Cedar.
//! Cedar has no IANA time zones: as its documentation recommends, the host computes the local
//! weekday and minute for the flows' zone and passes them in the context.

use std::collections::HashSet;
use std::fmt::Write;
use std::str::FromStr;

use anyhow::Context as _;
use cedar_policy::{
    Authorizer, Context, Decision, Entities, Entity, EntityId, EntityTypeName, EntityUid,
    PolicySet, Request, RestrictedExpression,
};
use latch_core::decide::DecisionRequest;
use latch_core::flow::{FlowKind, FlowSpec, Justification, Principal, ResourceSelector};

use crate::corpus::TIME_ZONE;

/// Cedar's view of the corpus.
pub struct CedarCorpus {
    pub policies: PolicySet,
    authorizer: Authorizer,
}

/// One prepared Cedar request: request and entities built before timing starts.
pub struct CedarRequest {
    request: Request,
    entities: Entities,
}

fn uid(kind: &str, id: &str) -> anyhow::Result<EntityUid> {
    Ok(EntityUid::from_type_name_and_id(
        EntityTypeName::from_str(kind)?,
        EntityId::new(id),
    ))
}

fn quoted(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_default()
}

impl CedarCorpus {
    pub fn new(flows: &[FlowSpec]) -> anyhow::Result<Self> {
        let mut text = String::new();
        for flow in flows.iter().filter(|f| f.kind == FlowKind::SelfServe) {
            for (t, _) in flow.targets.iter().enumerate() {
                policy(&mut text, flow, t);
            }
        }
        let policies =
            PolicySet::from_str(&text).context("parsing the generated Cedar policies")?;
        Ok(CedarCorpus {
            policies,
            authorizer: Authorizer::new(),
        })
    }

    pub fn prepare(&self, request: &DecisionRequest) -> anyhow::Result<CedarRequest> {
        let requester = &request.requester;
        let principal = uid("User", &requester.email)?;
        let groups: HashSet<EntityUid> = requester
            .groups
            .iter()
            .map(|g| uid("Group", g))
            .collect::<Result<_, _>>()?;
        let item = request
            .items
            .first()
            .context("one item per benchmark request")?;
        let resource = &item.resource;
        let resource_uid = uid("Resource", &resource.id)?;
        let parents: HashSet<EntityUid> = resource
            .ancestors
            .iter()
            .map(|a| uid("Node", a))
            .collect::<Result<_, _>>()?;
        let attrs = [
            (
                "integration".to_string(),
                RestrictedExpression::new_string(resource.integration.clone()),
            ),
            (
                "rtype".to_string(),
                RestrictedExpression::new_string(resource.resource_type.clone()),
            ),
            (
                "name".to_string(),
                RestrictedExpression::new_string(resource.name.clone()),
            ),
        ];
        let tags = resource
            .tags
            .iter()
            .map(|(k, v)| (k.clone(), RestrictedExpression::new_string(v.clone())));
        let entities = Entities::from_entities(
            [
                Entity::new_no_attrs(principal.clone(), groups),
                Entity::new_with_tags(resource_uid.clone(), attrs, parents, tags)?,
            ],
            None,
        )?;
        let zone = jiff::tz::TimeZone::get(TIME_ZONE)?;
        let local = zone.to_datetime(request.now);
        let minute = i64::from(local.hour()) * 60 + i64::from(local.minute());
        let weekday = local.weekday().to_monday_one_offset();
        let duration = request
            .duration
            .map_or(-1, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let justified = request
            .justification
            .as_deref()
            .is_some_and(|j| !j.trim().is_empty());
        let context = Context::from_pairs([
            (
                "local_minute".to_string(),
                RestrictedExpression::new_long(minute),
            ),
            (
                "local_weekday".to_string(),
                RestrictedExpression::new_long(i64::from(weekday)),
            ),
            (
                "duration_s".to_string(),
                RestrictedExpression::new_long(duration),
            ),
            (
                "justified".to_string(),
                RestrictedExpression::new_bool(justified),
            ),
        ])?;
        let request = Request::new(
            principal,
            uid("Action", &item.permission)?,
            resource_uid,
            context,
            None,
        )?;
        Ok(CedarRequest { request, entities })
    }

    /// Whether Cedar allows the prepared request.
    pub fn is_allowed(&self, prepared: &CedarRequest) -> bool {
        self.authorizer
            .is_authorized(&prepared.request, &self.policies, &prepared.entities)
            .decision()
            == Decision::Allow
    }
}

/// Writes one `permit` for target `t` of `flow`.
fn policy(out: &mut String, flow: &FlowSpec, t: usize) {
    let target = &flow.targets[t];
    let mut when = Vec::new();
    let requesters: Vec<String> = flow.requesters.any_of.iter().map(principal).collect();
    when.push(format!("({})", requesters.join(" || ")));
    when.push(format!(
        "resource.integration == {}",
        quoted(&target.integration)
    ));
    if !target.resource_types.is_empty() {
        let types: Vec<String> = target.resource_types.iter().map(|t| quoted(t)).collect();
        when.push(format!("[{}].contains(resource.rtype)", types.join(", ")));
    }
    if let Some(include) = selector(&target.include) {
        when.push(include);
    }
    if let Some(max) = flow.duration.map(|d| d.max.as_secs()) {
        when.push(format!("context.duration_s <= {max}"));
    }
    if flow.settings.justification == Justification::Required {
        when.push("context.justified".to_string());
    }
    if let Some(frame) = &flow.settings.timeframe {
        let days: Vec<String> = frame
            .days
            .iter()
            .map(|d| d.to_jiff().to_monday_one_offset().to_string())
            .collect();
        let from = i64::from(frame.from.hour()) * 60 + i64::from(frame.from.minute());
        let to = i64::from(frame.to.hour()) * 60 + i64::from(frame.to.minute());
        when.push(format!(
            "[{}].contains(context.local_weekday) && context.local_minute >= {from} && context.local_minute < {to}",
            days.join(", ")
        ));
    }
    let mut unless: Vec<String> = flow.requesters.except.iter().map(principal).collect();
    if let Some(exclude) = selector(&target.exclude) {
        unless.push(exclude);
    }
    let actions: Vec<String> = target
        .permissions
        .iter()
        .map(|p| format!("Action::{}", quoted(p)))
        .collect();
    let _ = write!(
        out,
        "@id({})\npermit (principal, action in [{}], resource)\nwhen {{ {} }}",
        quoted(&format!("{}#{t}", flow.name)),
        actions.join(", "),
        when.join(" && ")
    );
    if !unless.is_empty() {
        let _ = write!(out, "\nunless {{ {} }}", unless.join(" || "));
    }
    out.push_str(";\n");
}

fn principal(p: &Principal) -> String {
    match p {
        Principal::User(email) => format!("principal == User::{}", quoted(email)),
        Principal::Group(group) => format!("principal in Group::{}", quoted(group)),
        // The corpus has no on-call schedules; an on-call requester can never match here.
        Principal::OnCall(_) => "false".to_string(),
        Principal::Everyone => "true".to_string(),
    }
}

/// The Cedar condition for a selector (every set criterion, any value within one), or `None` when
/// the selector is empty.
fn selector(selector: &ResourceSelector) -> Option<String> {
    let mut parts = Vec::new();
    if !selector.ids.is_empty() {
        let ids: Vec<String> = selector
            .ids
            .iter()
            .map(|id| format!("resource == Resource::{}", quoted(id)))
            .collect();
        parts.push(format!("({})", ids.join(" || ")));
    }
    if !selector.names.is_empty() {
        let names: Vec<String> = selector.names.iter().map(|n| quoted(n)).collect();
        parts.push(format!("[{}].contains(resource.name)", names.join(", ")));
    }
    for (key, value) in &selector.tags {
        parts.push(format!(
            "(resource.hasTag({k}) && resource.getTag({k}) == {v})",
            k = quoted(key),
            v = quoted(value)
        ));
    }
    if !selector.descendants_of.is_empty() {
        let nodes: Vec<String> = selector
            .descendants_of
            .iter()
            .map(|a| format!("resource in Node::{}", quoted(a)))
            .collect();
        parts.push(format!("({})", nodes.join(" || ")));
    }
    (!parts.is_empty()).then(|| format!("({})", parts.join(" && ")))
}
