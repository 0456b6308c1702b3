//! The access-flow domain types: what a flow says, independent of how it was written (YAML or proto).
//!
//! The serde form of these types is how a flow is stored (as JSON) and what its digest is computed
//! over, so it must stay deterministic: ordered maps only, and enums in the same snake_case words the
//! YAML uses.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The content of one access flow: who may get which permissions on which resources, for how long,
/// and who must approve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowSpec {
    /// Unique name: lowercase letters, digits and dashes, 1 to 63 characters.
    pub name: String,
    /// Whether people ask for the access or get it automatically.
    pub kind: FlowKind,
    /// Free text shown to requesters and approvers; may be empty.
    pub description: String,
    /// Who may request (or, for automatic flows, who gets) the access.
    pub requesters: Requesters,
    /// What access can be given. At least one target.
    pub targets: Vec<Target>,
    /// How long access lasts. Required for self-serve flows.
    pub duration: Option<DurationPolicy>,
    /// Who must approve. Required for self-serve flows, refused on automatic ones.
    pub approval: Option<ApprovalPolicy>,
    /// Further conditions on requests.
    pub settings: Settings,
}

/// How access is given under a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowKind {
    /// People ask for access, and the approval policy decides.
    SelfServe,
    /// Everyone who matches the requesters has the access while they match.
    Automatic,
}

impl FlowKind {
    /// Every kind, in the order they are documented.
    pub const ALL: [FlowKind; 2] = [FlowKind::SelfServe, FlowKind::Automatic];

    /// The word used for this kind in YAML and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            FlowKind::SelfServe => "self_serve",
            FlowKind::Automatic => "automatic",
        }
    }
}

/// Who the requesters are: anyone matched by `any_of` and not matched by `except`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requesters {
    /// People who match any of these are requesters. At least one entry.
    pub any_of: Vec<Principal>,
    /// People who match any of these are never requesters.
    pub except: Vec<Principal>,
}

/// A set of people.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Principal {
    /// One user, by email address.
    User(String),
    /// The members of a group, including nested groups.
    Group(String),
    /// Whoever is on shift in an on-call schedule, as `provider/schedule`.
    OnCall(String),
    /// Every known user.
    Everyone,
}

/// A set of resources and the permissions that can be granted on them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// Name of the integration the resources come from.
    pub integration: String,
    /// Resource types covered; empty means every type.
    pub resource_types: Vec<String>,
    /// Resources covered; empty means every resource of the listed types.
    pub include: ResourceSelector,
    /// Resources never covered, even if `include` matches them.
    pub exclude: ResourceSelector,
    /// Permissions that can be granted on the covered resources. At least one.
    pub permissions: Vec<String>,
}

/// Matches resources: a resource matches when it satisfies every criterion that is set; within one
/// criterion any listed value is enough.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceSelector {
    /// Stable resource ids (ARN, GCP full resource name, Azure resource id, `postgres://host/db`).
    pub ids: Vec<String>,
    /// Resource names.
    pub names: Vec<String>,
    /// Tags the resource must carry, every key with exactly this value.
    pub tags: BTreeMap<String, String>,
    /// Ids of ancestors in the resource hierarchy; any descendant matches.
    pub descendants_of: Vec<String>,
}

impl ResourceSelector {
    /// Whether no criterion is set (which, for `include`, means "everything").
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
            && self.names.is_empty()
            && self.tags.is_empty()
            && self.descendants_of.is_empty()
    }
}

/// Bounds on how long access lasts. The clock starts when the grant is active.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DurationPolicy {
    /// Duration used when a request names none. Not longer than `max`.
    pub default: Duration,
    /// Longest duration that can be requested or reached by extension.
    pub max: Duration,
}

/// Who must approve a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalPolicy {
    /// How the groups combine.
    pub mode: ApprovalMode,
    /// Approver groups; none when the mode is `auto`.
    pub groups: Vec<ApproverGroup>,
    /// Whether requesters may approve their own requests.
    pub requester_can_approve: bool,
}

/// How approver groups combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalMode {
    /// No approval needed.
    Auto,
    /// Every group must be satisfied.
    AllOf,
    /// Any one group is enough.
    AnyOf,
}

impl ApprovalMode {
    /// Every mode, in the order they are documented.
    pub const ALL: [ApprovalMode; 3] =
        [ApprovalMode::Auto, ApprovalMode::AllOf, ApprovalMode::AnyOf];

    /// The word used for this mode in YAML and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalMode::Auto => "auto",
            ApprovalMode::AllOf => "all_of",
            ApprovalMode::AnyOf => "any_of",
        }
    }
}

/// A group of approvers, satisfied when at least `min` of them have approved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApproverGroup {
    /// Who may approve for this group. At least one entry.
    pub approvers: Vec<Approver>,
    /// How many distinct approvals the group needs. At least 1.
    pub min: u32,
}

/// People who may approve.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Approver {
    /// One user, by email address.
    User(String),
    /// The members of a group, including nested groups.
    Group(String),
    /// Whoever is on shift in an on-call schedule at approval time, as `provider/schedule`.
    OnCall(String),
    /// The requester's manager.
    Manager,
    /// The owners of the requested resource.
    ResourceOwner,
    /// The owners of the integration the resource comes from.
    IntegrationOwner,
}

/// Further conditions on requests.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// Whether a request must give a reason.
    pub justification: Justification,
    /// When requests are allowed; `None` means at any time.
    pub timeframe: Option<Timeframe>,
}

/// Whether a request must give a reason.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Justification {
    /// A reason may be given.
    #[default]
    Optional,
    /// A request without a reason is refused.
    Required,
}

impl Justification {
    /// Every policy, in the order they are documented.
    pub const ALL: [Justification; 2] = [Justification::Optional, Justification::Required];

    /// The word used for this policy in YAML and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Justification::Optional => "optional",
            Justification::Required => "required",
        }
    }
}

/// A weekly window in an IANA time zone, for example Monday to Friday 08:00 to 19:00 in Europe/Berlin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timeframe {
    /// Days on which the window opens. At least one, none twice.
    pub days: Vec<Weekday>,
    /// Local time the window opens, to the minute.
    #[serde(with = "civil_time")]
    pub from: jiff::civil::Time,
    /// Local time the window closes, to the minute; later than `from`.
    #[serde(with = "civil_time")]
    pub to: jiff::civil::Time,
    /// IANA time zone the times are in.
    pub time_zone: String,
}

/// A day of the week.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Weekday {
    /// Monday.
    Mon,
    /// Tuesday.
    Tue,
    /// Wednesday.
    Wed,
    /// Thursday.
    Thu,
    /// Friday.
    Fri,
    /// Saturday.
    Sat,
    /// Sunday.
    Sun,
}

impl Weekday {
    /// Every day, Monday first.
    pub const ALL: [Weekday; 7] = [
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
        Weekday::Sat,
        Weekday::Sun,
    ];

    /// The word used for this day in YAML and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Weekday::Mon => "mon",
            Weekday::Tue => "tue",
            Weekday::Wed => "wed",
            Weekday::Thu => "thu",
            Weekday::Fri => "fri",
            Weekday::Sat => "sat",
            Weekday::Sun => "sun",
        }
    }

    /// The same day in jiff's terms, for evaluating a timeframe against a zoned time.
    pub fn to_jiff(self) -> jiff::civil::Weekday {
        match self {
            Weekday::Mon => jiff::civil::Weekday::Monday,
            Weekday::Tue => jiff::civil::Weekday::Tuesday,
            Weekday::Wed => jiff::civil::Weekday::Wednesday,
            Weekday::Thu => jiff::civil::Weekday::Thursday,
            Weekday::Fri => jiff::civil::Weekday::Friday,
            Weekday::Sat => jiff::civil::Weekday::Saturday,
            Weekday::Sun => jiff::civil::Weekday::Sunday,
        }
    }
}

/// Serde for `jiff::civil::Time` without jiff's `serde` feature: `HH:MM` when the time is a whole
/// minute (the normal case, and what people read in the database), jiff's full ISO form otherwise so
/// that a JSON round trip never loses precision.
mod civil_time {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::text;

    pub(super) fn serialize<S: Serializer>(
        time: &jiff::civil::Time,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&text::format_time(*time))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<jiff::civil::Time, D::Error> {
        let raw = String::deserialize(deserializer)?;
        raw.parse::<jiff::civil::Time>()
            .map_err(|err| serde::de::Error::custom(format!("{raw:?} is not a time: {err}")))
    }
}
