//! Problems found in flows, and the paths that point at them.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Whether a problem refuses the flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// The flow cannot be stored until this is fixed.
    Error,
    /// The flow can be stored, but something looks wrong or is not known yet.
    Warning,
}

/// One thing wrong with one flow.
///
/// `Display` prints `path: message`, for example `approval.groups[0].min: must be at least 1`. A
/// message that compares two fields starts with the path itself
/// (`duration.default (3h) is longer than duration.max (1h)`) and is printed alone, so that the
/// line never repeats the path. [`Problem::with_flow`] prefixes the flow, for sources with several.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// Whether this refuses the flow.
    pub severity: Severity,
    /// Position of the flow in the source, from 0 (the non-empty YAML document or the list entry).
    pub flow_index: usize,
    /// Name of the flow, when it could be read.
    pub flow_name: Option<String>,
    /// Path to the offending field, for example `approval.groups[0].min`; empty for the whole flow.
    pub path: String,
    /// What is wrong, naming the offending value.
    pub message: String,
}

impl Problem {
    /// Whether this problem refuses the flow.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// The problem prefixed by its flow, as printed when a source holds several flows:
    /// `flow 1 (prod-readonly): approval.groups[0].min: must be at least 1`.
    pub fn with_flow(&self) -> WithFlow<'_> {
        WithFlow(self)
    }

    /// The problem in the API's form.
    pub fn to_proto(&self) -> latch_proto::v1::FlowProblem {
        let severity = match self.severity {
            Severity::Error => latch_proto::v1::ProblemSeverity::Error,
            Severity::Warning => latch_proto::v1::ProblemSeverity::Warning,
        };
        latch_proto::v1::FlowProblem {
            severity: severity as i32,
            flow_index: u32::try_from(self.flow_index).unwrap_or(u32::MAX),
            flow_name: self.flow_name.clone().unwrap_or_default(),
            path: self.path.clone(),
            message: self.message.clone(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() || names_its_path(&self.message, &self.path) {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Whether the message begins with the path as a whole word, as in `duration.default (3h) is ...`.
fn names_its_path(message: &str, path: &str) -> bool {
    message
        .strip_prefix(path)
        .is_some_and(|rest| rest.starts_with(' '))
}

/// A problem displayed with its flow in front; see [`Problem::with_flow`].
#[derive(Debug, Clone, Copy)]
pub struct WithFlow<'a>(&'a Problem);

impl fmt::Display for WithFlow<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let problem = self.0;
        match &problem.flow_name {
            Some(name) => write!(f, "flow {} ({name}): {problem}", problem.flow_index),
            None => write!(f, "flow {}: {problem}", problem.flow_index),
        }
    }
}

/// A problem found inside one flow, before it is tied to the flow's place in the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Finding {
    pub severity: Severity,
    pub path: String,
    pub message: String,
}

impl Finding {
    pub(crate) fn error(path: impl Into<String>, message: impl Into<String>) -> Self {
        Finding {
            severity: Severity::Error,
            path: path.into(),
            message: message.into(),
        }
    }

    pub(crate) fn warning(path: impl Into<String>, message: impl Into<String>) -> Self {
        Finding {
            severity: Severity::Warning,
            path: path.into(),
            message: message.into(),
        }
    }

    pub(crate) fn into_problem(self, flow_index: usize, flow_name: Option<&str>) -> Problem {
        Problem {
            severity: self.severity,
            flow_index,
            flow_name: flow_name.map(str::to_owned),
            path: self.path,
            message: self.message,
        }
    }
}

/// The path of field `key` inside `parent` (`approval` + `mode` = `approval.mode`).
pub(crate) fn field(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// The path of entry `index` of the list at `parent` (`targets` + 0 = `targets[0]`).
pub(crate) fn item(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

/// Whether `path` is `ancestor` or lies inside it (`targets[0].permissions` is inside `targets`).
pub(crate) fn is_within(path: &str, ancestor: &str) -> bool {
    ancestor.is_empty()
        || path
            .strip_prefix(ancestor)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('.') || rest.starts_with('['))
}

/// Field names in the order a flow is written, so that problems can be listed in that order rather
/// than in the order the checks happen to run (reading first, then validation).
const FIELD_ORDER: &[&str] = &[
    "name",
    "kind",
    "description",
    "requesters",
    "any_of",
    "except",
    "user",
    "group",
    "on_call",
    "everyone",
    "relative",
    "targets",
    "integration",
    "resource_types",
    "include",
    "exclude",
    "ids",
    "names",
    "tags",
    "descendants_of",
    "permissions",
    "duration",
    "default",
    "max",
    "approval",
    "mode",
    "groups",
    "approvers",
    "min",
    "requester_can_approve",
    "settings",
    "justification",
    "timeframe",
    "days",
    "from",
    "to",
    "time_zone",
];

/// A sort key for a path: each field by its place in [`FIELD_ORDER`] (unknown fields last), each list
/// entry by its index. A parent sorts before its children.
fn path_key(path: &str) -> Vec<usize> {
    let unknown = FIELD_ORDER.len();
    let mut key = Vec::new();
    for segment in path.split('.') {
        let (name, indices) = match segment.find('[') {
            Some(at) => (&segment[..at], &segment[at..]),
            None => (segment, ""),
        };
        if !name.is_empty() {
            key.push(
                FIELD_ORDER
                    .iter()
                    .position(|f| *f == name)
                    .unwrap_or(unknown),
            );
        }
        for index in indices.split(['[', ']']).filter(|s| !s.is_empty()) {
            // Past the field names so that an entry never ties with a field.
            key.push(unknown + 1 + index.parse::<usize>().unwrap_or(usize::MAX - unknown - 1));
        }
    }
    key
}

/// Orders one flow's findings as the flow is written. The sort is stable, so findings on the same
/// path keep the order they were found in.
pub(crate) fn sort_findings(findings: &mut [Finding]) {
    findings.sort_by_cached_key(|f| path_key(&f.path));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(path: &str, message: &str) -> Problem {
        Problem {
            severity: Severity::Error,
            flow_index: 1,
            flow_name: Some("prod-readonly".into()),
            path: path.into(),
            message: message.into(),
        }
    }

    #[test]
    fn display_joins_path_and_message() {
        let p = problem("approval.groups[0].min", "must be at least 1");
        assert_eq!(p.to_string(), "approval.groups[0].min: must be at least 1");
        assert_eq!(
            p.with_flow().to_string(),
            "flow 1 (prod-readonly): approval.groups[0].min: must be at least 1"
        );
    }

    #[test]
    fn display_does_not_repeat_a_path_the_message_names() {
        let p = problem(
            "duration.default",
            "duration.default (3h) is longer than duration.max (1h)",
        );
        assert_eq!(
            p.to_string(),
            "duration.default (3h) is longer than duration.max (1h)"
        );
        let whole = problem("", "did not find expected key at line 2 column 1");
        assert_eq!(
            whole.to_string(),
            "did not find expected key at line 2 column 1"
        );
    }

    #[test]
    fn paths_nest() {
        assert!(is_within("targets[0].permissions", "targets"));
        assert!(is_within("targets[0]", "targets[0]"));
        assert!(!is_within("targets_x", "targets"));
        assert!(!is_within("targets[1]", "targets[10]"));
        assert!(is_within("anything", ""));
    }

    #[test]
    fn findings_sort_in_writing_order() {
        let mut findings = vec![
            Finding::error("settings.timeframe.to", "c"),
            Finding::error("foo", "unknown"),
            Finding::error("targets[10].integration", "b2"),
            Finding::error("targets[2].permissions", "b1"),
            Finding::error("name", "a"),
            Finding::error("", "whole"),
        ];
        sort_findings(&mut findings);
        let order: Vec<&str> = findings.iter().map(|f| f.message.as_str()).collect();
        assert_eq!(order, ["whole", "a", "b1", "b2", "c", "unknown"]);
    }
}
