//! Converting flows to and from the API's `latch.v1.AccessFlowSpec`.
//!
//! Problems name fields the way the YAML does (`duration.default`, `settings.timeframe.from`), so an
//! admin sees one vocabulary whichever way the flow arrived.

use std::collections::BTreeMap;
use std::time::Duration;

use latch_proto::v1 as pb;

use super::model::{
    ApprovalMode, ApprovalPolicy, Approver, ApproverGroup, DurationPolicy, FlowKind, FlowSpec,
    Justification, Principal, Requesters, ResourceSelector, Settings, Target, Timeframe, Weekday,
};
use super::parsed::{Parsed, Read, assemble};
use super::problem::{Finding, field, item};
use super::validate::Unreadable;
use crate::text::{double_quoted, format_time, parse_hhmm};

/// Reads flows given in the API's structured form and validates them with the same rules as YAML.
/// Beyond those: an enum left UNSPECIFIED, a requester or approver with nothing set, and a negative
/// duration are errors.
pub fn from_proto(specs: &[pb::AccessFlowSpec]) -> Parsed {
    assemble(specs.iter().map(read_spec).collect())
}

impl FlowSpec {
    /// The flow in the API's structured form. [`from_proto`] reads it back to an equal spec.
    pub fn to_proto(&self) -> pb::AccessFlowSpec {
        let kind = match self.kind {
            FlowKind::SelfServe => pb::FlowKind::SelfServe,
            FlowKind::Automatic => pb::FlowKind::Automatic,
        };
        pb::AccessFlowSpec {
            name: self.name.clone(),
            kind: kind as i32,
            description: self.description.clone(),
            requesters: Some(pb::Requesters {
                any_of: self
                    .requesters
                    .any_of
                    .iter()
                    .map(principal_to_proto)
                    .collect(),
                except: self
                    .requesters
                    .except
                    .iter()
                    .map(principal_to_proto)
                    .collect(),
            }),
            targets: self.targets.iter().map(target_to_proto).collect(),
            duration: self.duration.map(|d| pb::DurationPolicy {
                default_duration: Some(duration_to_proto(d.default)),
                max: Some(duration_to_proto(d.max)),
            }),
            approval: self.approval.as_ref().map(approval_to_proto),
            settings: Some(settings_to_proto(&self.settings)),
        }
    }
}

fn principal_to_proto(principal: &Principal) -> pb::Requester {
    use pb::requester::Requester as R;
    let requester = match principal {
        Principal::User(v) => R::User(v.clone()),
        Principal::Group(v) => R::Group(v.clone()),
        Principal::OnCall(v) => R::OnCall(v.clone()),
        Principal::Everyone => R::Everyone(pb::Everyone {}),
    };
    pb::Requester {
        requester: Some(requester),
    }
}

fn target_to_proto(target: &Target) -> pb::Target {
    pb::Target {
        integration: target.integration.clone(),
        resource_types: target.resource_types.clone(),
        include: Some(selector_to_proto(&target.include)),
        exclude: Some(selector_to_proto(&target.exclude)),
        permissions: target.permissions.clone(),
    }
}

fn selector_to_proto(selector: &ResourceSelector) -> pb::ResourceSelector {
    pb::ResourceSelector {
        ids: selector.ids.clone(),
        names: selector.names.clone(),
        tags: selector
            .tags
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        descendants_of: selector.descendants_of.clone(),
    }
}

fn duration_to_proto(duration: Duration) -> prost_types::Duration {
    prost_types::Duration {
        // Durations past i64::MAX seconds (292 billion years) are refused by validation anyway.
        seconds: i64::try_from(duration.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(duration.subsec_nanos()).unwrap_or(0),
    }
}

fn approval_to_proto(approval: &ApprovalPolicy) -> pb::ApprovalPolicy {
    let mode = match approval.mode {
        ApprovalMode::Auto => pb::ApprovalMode::Auto,
        ApprovalMode::AllOf => pb::ApprovalMode::AllOf,
        ApprovalMode::AnyOf => pb::ApprovalMode::AnyOf,
    };
    pb::ApprovalPolicy {
        mode: mode as i32,
        groups: approval
            .groups
            .iter()
            .map(|group| pb::ApproverGroup {
                approvers: group.approvers.iter().map(approver_to_proto).collect(),
                min: group.min,
            })
            .collect(),
        requester_can_approve: approval.requester_can_approve,
    }
}

fn approver_to_proto(approver: &Approver) -> pb::Approver {
    use pb::approver::Approver as A;
    let approver = match approver {
        Approver::User(v) => A::User(v.clone()),
        Approver::Group(v) => A::Group(v.clone()),
        Approver::OnCall(v) => A::OnCall(v.clone()),
        Approver::Manager => A::Relative(pb::RelativeApprover::Manager as i32),
        Approver::ResourceOwner => A::Relative(pb::RelativeApprover::ResourceOwner as i32),
        Approver::IntegrationOwner => A::Relative(pb::RelativeApprover::IntegrationOwner as i32),
    };
    pb::Approver {
        approver: Some(approver),
    }
}

fn settings_to_proto(settings: &Settings) -> pb::FlowSettings {
    let justification = match settings.justification {
        Justification::Optional => pb::JustificationPolicy::Optional,
        Justification::Required => pb::JustificationPolicy::Required,
    };
    pb::FlowSettings {
        justification: justification as i32,
        timeframe: settings.timeframe.as_ref().map(|t| pb::Timeframe {
            days: t.days.iter().map(|d| weekday_to_proto(*d) as i32).collect(),
            start_time: format_time(t.from),
            end_time: format_time(t.to),
            time_zone: t.time_zone.clone(),
        }),
    }
}

fn weekday_to_proto(day: Weekday) -> pb::Weekday {
    match day {
        Weekday::Mon => pb::Weekday::Monday,
        Weekday::Tue => pb::Weekday::Tuesday,
        Weekday::Wed => pb::Weekday::Wednesday,
        Weekday::Thu => pb::Weekday::Thursday,
        Weekday::Fri => pb::Weekday::Friday,
        Weekday::Sat => pb::Weekday::Saturday,
        Weekday::Sun => pb::Weekday::Sunday,
    }
}

fn read_spec(spec: &pb::AccessFlowSpec) -> Read {
    let mut r = Reader::default();
    let kind = r
        .known_enum(spec.kind, "kind", |k| match pb::FlowKind::try_from(k) {
            Ok(pb::FlowKind::SelfServe) => Known::Value(FlowKind::SelfServe),
            Ok(pb::FlowKind::Automatic) => Known::Value(FlowKind::Automatic),
            Ok(pb::FlowKind::Unspecified) => {
                Known::Unspecified(pb::FlowKind::Unspecified.as_str_name())
            }
            Err(_) => Known::Unknown,
        })
        .unwrap_or(FlowKind::SelfServe);
    let requesters = spec
        .requesters
        .as_ref()
        .map(|q| Requesters {
            any_of: r.principals(&q.any_of, "requesters.any_of"),
            except: r.principals(&q.except, "requesters.except"),
        })
        .unwrap_or_default();
    let targets = spec.targets.iter().map(target_from_proto).collect();
    let duration = spec.duration.as_ref().and_then(|d| r.duration(d));
    let approval = spec.approval.as_ref().map(|a| r.approval(a));
    let settings = spec
        .settings
        .as_ref()
        .map(|s| r.settings(s))
        .unwrap_or_default();
    let flow = FlowSpec {
        name: spec.name.clone(),
        kind,
        description: spec.description.clone(),
        requesters,
        targets,
        duration,
        approval,
        settings,
    };
    Read {
        name: Some(spec.name.clone()).filter(|n| !n.is_empty()),
        spec: Some(flow),
        findings: r.findings,
        unreadable: r.unreadable,
    }
}

fn target_from_proto(target: &pb::Target) -> Target {
    Target {
        integration: target.integration.clone(),
        resource_types: target.resource_types.clone(),
        include: target
            .include
            .as_ref()
            .map(selector_from_proto)
            .unwrap_or_default(),
        exclude: target
            .exclude
            .as_ref()
            .map(selector_from_proto)
            .unwrap_or_default(),
        permissions: target.permissions.clone(),
    }
}

fn selector_from_proto(selector: &pb::ResourceSelector) -> ResourceSelector {
    ResourceSelector {
        ids: selector.ids.clone(),
        names: selector.names.clone(),
        tags: selector
            .tags
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<BTreeMap<_, _>>(),
        descendants_of: selector.descendants_of.clone(),
    }
}

/// What an enum number on the wire means.
enum Known<T> {
    Value(T),
    /// The zero value, with its proto name.
    Unspecified(&'static str),
    /// A number this version of the proto does not define.
    Unknown,
}

/// Reads one spec, collecting findings and the paths it could not read.
#[derive(Default)]
struct Reader {
    findings: Vec<Finding>,
    unreadable: Unreadable,
}

impl Reader {
    fn fail(&mut self, path: &str, message: impl Into<String>) {
        self.findings.push(Finding::error(path, message));
        self.unreadable.mark(path);
    }

    fn known_enum<T>(
        &mut self,
        number: i32,
        path: &str,
        decode: impl Fn(i32) -> Known<T>,
    ) -> Option<T> {
        match decode(number) {
            Known::Value(value) => Some(value),
            Known::Unspecified(name) => {
                self.fail(path, format!("must be set, got {name}"));
                None
            }
            Known::Unknown => {
                self.fail(path, format!("unknown value {number}"));
                None
            }
        }
    }

    fn principals(&mut self, requesters: &[pb::Requester], path: &str) -> Vec<Principal> {
        use pb::requester::Requester as R;
        requesters
            .iter()
            .enumerate()
            .map(|(i, requester)| match &requester.requester {
                Some(R::User(v)) => Principal::User(v.clone()),
                Some(R::Group(v)) => Principal::Group(v.clone()),
                Some(R::OnCall(v)) => Principal::OnCall(v.clone()),
                Some(R::Everyone(_)) => Principal::Everyone,
                None => {
                    self.fail(
                        &item(path, i),
                        "no requester is set (expected user, group, on_call or everyone)",
                    );
                    Principal::Everyone
                }
            })
            .collect()
    }

    fn duration(&mut self, policy: &pb::DurationPolicy) -> Option<DurationPolicy> {
        let default = self.one_duration(policy.default_duration.as_ref(), "duration.default");
        let max = self.one_duration(policy.max.as_ref(), "duration.max");
        // A stand-in for the unreadable one keeps the other checked.
        Some(DurationPolicy {
            default: default.unwrap_or_default(),
            max: max.unwrap_or_default(),
        })
    }

    /// A proto duration as a std one. Fractions of a second are kept, for validation to refuse with
    /// the same message as for YAML.
    fn one_duration(
        &mut self,
        duration: Option<&prost_types::Duration>,
        path: &str,
    ) -> Option<Duration> {
        let Some(duration) = duration else {
            self.fail(path, "is required");
            return None;
        };
        let (Ok(seconds), Ok(nanos)) = (
            u64::try_from(duration.seconds),
            u32::try_from(duration.nanos),
        ) else {
            self.fail(
                path,
                format!(
                    "must not be negative, got {}s and {}ns",
                    duration.seconds, duration.nanos
                ),
            );
            return None;
        };
        if nanos >= 1_000_000_000 {
            self.fail(path, format!("nanos must be below 1000000000, got {nanos}"));
            return None;
        }
        Some(Duration::new(seconds, nanos))
    }

    fn approval(&mut self, approval: &pb::ApprovalPolicy) -> ApprovalPolicy {
        let mode = self
            .known_enum(
                approval.mode,
                "approval.mode",
                |m| match pb::ApprovalMode::try_from(m) {
                    Ok(pb::ApprovalMode::Auto) => Known::Value(ApprovalMode::Auto),
                    Ok(pb::ApprovalMode::AllOf) => Known::Value(ApprovalMode::AllOf),
                    Ok(pb::ApprovalMode::AnyOf) => Known::Value(ApprovalMode::AnyOf),
                    Ok(pb::ApprovalMode::Unspecified) => {
                        Known::Unspecified(pb::ApprovalMode::Unspecified.as_str_name())
                    }
                    Err(_) => Known::Unknown,
                },
            )
            .unwrap_or(ApprovalMode::Auto);
        let groups = approval
            .groups
            .iter()
            .enumerate()
            .map(|(i, group)| {
                let path = field(&item("approval.groups", i), "approvers");
                ApproverGroup {
                    approvers: group
                        .approvers
                        .iter()
                        .enumerate()
                        .map(|(j, approver)| self.approver(approver, &item(&path, j)))
                        .collect(),
                    min: group.min,
                }
            })
            .collect();
        ApprovalPolicy {
            mode,
            groups,
            requester_can_approve: approval.requester_can_approve,
        }
    }

    fn approver(&mut self, approver: &pb::Approver, path: &str) -> Approver {
        use pb::approver::Approver as A;
        let relative = |r: i32| match pb::RelativeApprover::try_from(r) {
            Ok(pb::RelativeApprover::Manager) => Known::Value(Approver::Manager),
            Ok(pb::RelativeApprover::ResourceOwner) => Known::Value(Approver::ResourceOwner),
            Ok(pb::RelativeApprover::IntegrationOwner) => Known::Value(Approver::IntegrationOwner),
            Ok(pb::RelativeApprover::Unspecified) => {
                Known::Unspecified(pb::RelativeApprover::Unspecified.as_str_name())
            }
            Err(_) => Known::Unknown,
        };
        match &approver.approver {
            Some(A::User(v)) => Approver::User(v.clone()),
            Some(A::Group(v)) => Approver::Group(v.clone()),
            Some(A::OnCall(v)) => Approver::OnCall(v.clone()),
            Some(A::Relative(r)) => {
                let stand_in = self.known_enum(*r, &field(path, "relative"), relative);
                stand_in.unwrap_or(Approver::Manager)
            }
            None => {
                self.fail(
                    path,
                    "no approver is set (expected user, group, on_call or relative)",
                );
                Approver::Manager
            }
        }
    }

    fn settings(&mut self, settings: &pb::FlowSettings) -> Settings {
        // UNSPECIFIED is documented as "treated as OPTIONAL", so it is not an error here.
        let justification = match pb::JustificationPolicy::try_from(settings.justification) {
            Ok(pb::JustificationPolicy::Required) => Justification::Required,
            Ok(pb::JustificationPolicy::Optional | pb::JustificationPolicy::Unspecified) => {
                Justification::Optional
            }
            Err(_) => {
                self.fail(
                    "settings.justification",
                    format!("unknown value {}", settings.justification),
                );
                Justification::Optional
            }
        };
        let timeframe = settings.timeframe.as_ref().map(|t| self.timeframe(t));
        Settings {
            justification,
            timeframe,
        }
    }

    fn timeframe(&mut self, timeframe: &pb::Timeframe) -> Timeframe {
        let days = timeframe
            .days
            .iter()
            .enumerate()
            .map(|(i, day)| {
                let path = item("settings.timeframe.days", i);
                let decoded = self.known_enum(*day, &path, |d| match pb::Weekday::try_from(d) {
                    Ok(pb::Weekday::Monday) => Known::Value(Weekday::Mon),
                    Ok(pb::Weekday::Tuesday) => Known::Value(Weekday::Tue),
                    Ok(pb::Weekday::Wednesday) => Known::Value(Weekday::Wed),
                    Ok(pb::Weekday::Thursday) => Known::Value(Weekday::Thu),
                    Ok(pb::Weekday::Friday) => Known::Value(Weekday::Fri),
                    Ok(pb::Weekday::Saturday) => Known::Value(Weekday::Sat),
                    Ok(pb::Weekday::Sunday) => Known::Value(Weekday::Sun),
                    Ok(pb::Weekday::Unspecified) => {
                        Known::Unspecified(pb::Weekday::Unspecified.as_str_name())
                    }
                    Err(_) => Known::Unknown,
                });
                decoded.unwrap_or(Weekday::Mon)
            })
            .collect();
        Timeframe {
            days,
            from: self.time(&timeframe.start_time, "settings.timeframe.from"),
            to: self.time(&timeframe.end_time, "settings.timeframe.to"),
            time_zone: timeframe.time_zone.clone(),
        }
    }

    fn time(&mut self, text: &str, path: &str) -> jiff::civil::Time {
        if text.is_empty() {
            self.fail(path, "is required, as HH:MM");
        } else if let Some(time) = parse_hhmm(text) {
            return time;
        } else {
            self.fail(
                path,
                format!("{} is not a time (HH:MM)", double_quoted(text)),
            );
        }
        jiff::civil::Time::midnight()
    }
}
