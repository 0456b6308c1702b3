//! Reading flows from Latch's YAML format.
//!
//! Each document is parsed into a `serde_yaml_ng::Value` and walked by hand rather than deserialized
//! with serde derive: derive stops at the first error, and an admin wants every problem at once,
//! each with its path and the offending value. Where a value cannot be read, the walk puts a stand-in
//! in the spec, records the path as unreadable (so validation does not judge the stand-in) and goes on.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_yaml_ng::{Mapping, Value};

use super::model::{
    ApprovalMode, ApprovalPolicy, Approver, ApproverGroup, DurationPolicy, FlowKind, FlowSpec,
    Justification, Principal, Requesters, ResourceSelector, Settings, Target, Timeframe, Weekday,
};
use super::parsed::{Parsed, Read, assemble};
use super::problem::{Finding, field, item};
use super::validate::Unreadable;
use crate::text::{double_quoted, parse_duration, parse_hhmm, render_value};

const FLOW_FIELDS: &[&str] = &[
    "name",
    "kind",
    "description",
    "requesters",
    "targets",
    "duration",
    "approval",
    "settings",
];
const REQUESTERS_FIELDS: &[&str] = &["any_of", "except"];
const TARGET_FIELDS: &[&str] = &[
    "integration",
    "resource_types",
    "include",
    "exclude",
    "permissions",
];
const SELECTOR_FIELDS: &[&str] = &["ids", "names", "tags", "descendants_of"];
const DURATION_FIELDS: &[&str] = &["default", "max"];
const APPROVAL_FIELDS: &[&str] = &["mode", "groups", "requester_can_approve"];
const GROUP_FIELDS: &[&str] = &["approvers", "min"];
const SETTINGS_FIELDS: &[&str] = &["justification", "timeframe"];
const TIMEFRAME_FIELDS: &[&str] = &["days", "from", "to", "time_zone"];
const PERSON_FIELDS: &[&str] = &["user", "group", "on_call"];

/// Parses a YAML stream of flows (documents separated by `---`, one flow each; empty documents are
/// skipped) and validates them. Every problem is reported: syntax, shape and semantic, in source order.
pub fn parse_yaml(text: &str) -> Parsed {
    let mut reads = Vec::new();
    for document in split_documents(text) {
        let broken = |err: serde_yaml_ng::Error| {
            let message = shift_line_numbers(&err.to_string(), document.first_line);
            Read::broken(format!("invalid YAML: {message}"))
        };
        match serde_yaml_ng::from_str::<Value>(document.text) {
            Ok(Value::Null) => {}
            Ok(mut value) => match value.apply_merge() {
                Ok(()) => reads.push(read_flow(&value)),
                Err(err) => reads.push(broken(err)),
            },
            Err(err) => reads.push(broken(err)),
        }
    }
    assemble(reads)
}

/// One document of a stream, with the line (from 0) it starts on.
struct Document<'a> {
    first_line: usize,
    text: &'a str,
}

/// Splits a YAML stream at its `---` lines.
///
/// The stream is split here rather than by serde_yaml_ng's document iterator for two reasons: after a
/// syntax error that iterator cannot go on (so the documents after a broken one would go unchecked),
/// and a broken document must still count in the flow numbering. A `---` or `...` marker at column 0
/// always starts or ends a document in YAML, even inside a quoted or block scalar, so splitting on
/// such lines is exact. Directive lines (`%YAML 1.2`) just before a `---` go with the document they
/// introduce.
fn split_documents(text: &str) -> Vec<Document<'_>> {
    let mut documents = Vec::new();
    let mut start = 0; // byte offset of the current document
    let mut first_line = 0;
    let mut directives: Option<(usize, usize)> = None; // (byte offset, line) of a run of directives
    let mut offset = 0;
    for (line_no, line) in text.split_inclusive('\n').enumerate() {
        if is_marker(line, "---") {
            let (cut, cut_line) = directives.unwrap_or((offset, line_no));
            documents.push(Document {
                first_line,
                text: &text[start..cut],
            });
            start = cut;
            first_line = cut_line;
            directives = None;
        } else if is_marker(line, "...") {
            // A document end marker: what follows is a new document even without `---`.
            let end = offset + line.len();
            documents.push(Document {
                first_line,
                text: &text[start..end],
            });
            start = end;
            first_line = line_no + 1;
            directives = None;
        } else if line.starts_with('%') {
            directives.get_or_insert((offset, line_no));
        } else if !line.trim().is_empty() && !line.starts_with('#') {
            directives = None;
        }
        offset += line.len();
    }
    documents.push(Document {
        first_line,
        text: &text[start..],
    });
    documents
}

/// Moves the parser's `at line N column M` positions, counted within one document, to where they
/// are in the whole stream (the document starts `offset` lines in).
///
/// Padding each document with blank lines would give the same numbers, but costs time quadratic in
/// the number of documents.
fn shift_line_numbers(message: &str, offset: usize) -> String {
    const AT_LINE: &str = "at line ";
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find(AT_LINE) {
        let (before, after) = rest.split_at(at + AT_LINE.len());
        out.push_str(before);
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        let (number, tail) = after.split_at(digits);
        match number.parse::<usize>() {
            Ok(line) if tail.starts_with(" column ") => out.push_str(&(line + offset).to_string()),
            _ => out.push_str(number),
        }
        rest = tail;
    }
    out.push_str(rest);
    out
}

/// Whether `line` is the document marker `marker` (`---` or `...`) at column 0, alone or followed by
/// white space (and, for `---`, the document's first content).
fn is_marker(line: &str, marker: &str) -> bool {
    line.strip_prefix(marker)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t', '\r', '\n']))
}

/// Reads one flow document.
fn read_flow(value: &Value) -> Read {
    let mut r = Reader::default();
    let Some(map) = r.mapping(value, "", FLOW_FIELDS) else {
        return Read {
            name: None,
            spec: None,
            findings: r.findings,
            unreadable: r.unreadable,
        };
    };
    let name = r.string(get(map, "name"), "name");
    // The name labels every problem of the flow, so take it whenever it is a string at all.
    let flow_name = match get(map, "name") {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    };
    let kind = r
        .required_choice(
            get(map, "kind"),
            "kind",
            "kind",
            &FlowKind::ALL.map(|k| (k.as_str(), k)),
        )
        .unwrap_or(FlowKind::SelfServe);
    let description = r.string(get(map, "description"), "description");
    let requesters = r.requesters(get(map, "requesters"));
    let targets = r.list(
        get(map, "targets"),
        "targets",
        "a list of targets",
        Target::default(),
        Reader::target,
    );
    let duration = get(map, "duration").and_then(|v| r.duration(v));
    let approval = get(map, "approval").and_then(|v| r.approval(v));
    let settings = match get(map, "settings") {
        Some(v) => r.settings(v),
        None => Settings::default(),
    };
    let spec = FlowSpec {
        name,
        kind,
        description,
        requesters,
        targets,
        duration,
        approval,
        settings,
    };
    Read {
        name: flow_name,
        spec: Some(spec),
        findings: r.findings,
        unreadable: r.unreadable,
    }
}

/// A field of a mapping; an explicit `null` (as in `exclude:` with nothing after it) counts as absent.
fn get<'v>(map: &'v Mapping, key: &str) -> Option<&'v Value> {
    map.get(key).filter(|v| !v.is_null())
}

fn expected_list(options: &[&str]) -> String {
    options.join(", ")
}

/// Walks one document, collecting findings and the paths it could not read.
#[derive(Default)]
struct Reader {
    findings: Vec<Finding>,
    unreadable: Unreadable,
}

impl Reader {
    /// Reports a value that could not be read; the spec holds a stand-in at `path`.
    fn fail(&mut self, path: &str, message: impl Into<String>) {
        self.findings.push(Finding::error(path, message));
        self.unreadable.mark(path);
    }

    /// The value as a mapping whose keys are all among `fields`; unknown keys are reported and
    /// ignored, since the known ones can still be read.
    fn mapping<'v>(
        &mut self,
        value: &'v Value,
        path: &str,
        fields: &[&str],
    ) -> Option<&'v Mapping> {
        let Value::Mapping(map) = value else {
            let message = if path.is_empty() {
                format!(
                    "a flow must be a mapping of {}, got {}",
                    expected_list(fields),
                    render_value(value)
                )
            } else {
                format!("expected a mapping, got {}", render_value(value))
            };
            self.fail(path, message);
            return None;
        };
        for key in map.keys() {
            match key {
                Value::String(k) if fields.contains(&k.as_str()) => {}
                Value::String(k) => self.findings.push(Finding::error(
                    field(path, k),
                    format!(
                        "unknown field {} (expected one of: {})",
                        double_quoted(k),
                        expected_list(fields)
                    ),
                )),
                other => self.findings.push(Finding::error(
                    path,
                    format!(
                        "unknown field {} (expected one of: {})",
                        render_value(other),
                        expected_list(fields)
                    ),
                )),
            }
        }
        Some(map)
    }

    fn string(&mut self, value: Option<&Value>, path: &str) -> String {
        match value {
            None => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => {
                self.fail(
                    path,
                    format!("expected a string, got {}", render_value(other)),
                );
                String::new()
            }
        }
    }

    fn strings(&mut self, value: Option<&Value>, path: &str) -> Vec<String> {
        match value {
            None => Vec::new(),
            Some(Value::Sequence(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| self.string(Some(v), &item(path, i)))
                .collect(),
            Some(other) => {
                self.fail(
                    path,
                    format!("expected a list of strings, got {}", render_value(other)),
                );
                Vec::new()
            }
        }
    }

    /// Reads a list whose entries are read by `read_entry`; an entry that cannot be read becomes
    /// `stand_in` so that the entries after it keep their indices (and their paths stay right).
    fn list<T: Clone>(
        &mut self,
        value: Option<&Value>,
        path: &str,
        what: &str,
        stand_in: T,
        read_entry: fn(&mut Self, &Value, &str) -> Option<T>,
    ) -> Vec<T> {
        match value {
            None => Vec::new(),
            Some(Value::Sequence(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let entry = item(path, i);
                    read_entry(self, v, &entry).unwrap_or_else(|| {
                        self.unreadable.mark(entry);
                        stand_in.clone()
                    })
                })
                .collect(),
            Some(other) => {
                self.fail(
                    path,
                    format!("expected {what}, got {}", render_value(other)),
                );
                Vec::new()
            }
        }
    }

    /// One of a fixed set of words; `None` (reported) when it is something else.
    fn choice<T: Copy>(
        &mut self,
        value: &Value,
        path: &str,
        noun: &str,
        options: &[(&str, T)],
    ) -> Option<T> {
        let words: Vec<&str> = options.iter().map(|(word, _)| *word).collect();
        match value {
            Value::String(s) => match options.iter().find(|(word, _)| word == s) {
                Some((_, found)) => Some(*found),
                None => {
                    let message = format!(
                        "unknown {noun} {} (expected one of: {})",
                        double_quoted(s),
                        expected_list(&words)
                    );
                    self.fail(path, message);
                    None
                }
            },
            other => {
                let message = format!(
                    "expected one of: {}, got {}",
                    expected_list(&words),
                    render_value(other)
                );
                self.fail(path, message);
                None
            }
        }
    }

    /// Like [`Reader::choice`], for a field that must be present.
    fn required_choice<T: Copy>(
        &mut self,
        value: Option<&Value>,
        path: &str,
        noun: &str,
        options: &[(&str, T)],
    ) -> Option<T> {
        match value {
            Some(value) => self.choice(value, path, noun, options),
            None => {
                let words: Vec<&str> = options.iter().map(|(word, _)| *word).collect();
                self.fail(
                    path,
                    format!("is required (one of: {})", expected_list(&words)),
                );
                None
            }
        }
    }

    fn requesters(&mut self, value: Option<&Value>) -> Requesters {
        let path = "requesters";
        let Some(value) = value else {
            return Requesters::default();
        };
        let Some(map) = self.mapping(value, path, REQUESTERS_FIELDS) else {
            return Requesters::default();
        };
        let list = |r: &mut Self, key: &str| {
            let what = "a list of requesters";
            r.list(
                get(map, key),
                &field(path, key),
                what,
                Principal::Everyone,
                Reader::principal,
            )
        };
        let any_of = list(self, "any_of");
        let except = list(self, "except");
        Requesters { any_of, except }
    }

    /// `{user: x}`, `{group: x}`, `{on_call: x}`, or the bare word `everyone`.
    fn principal(&mut self, value: &Value, path: &str) -> Option<Principal> {
        const SHAPES: &str = "{user: ...}, {group: ...}, {on_call: ...} or everyone";
        match value {
            Value::String(s) if s == "everyone" => Some(Principal::Everyone),
            Value::String(s) => {
                self.fail(
                    path,
                    format!("unknown requester {} (expected {SHAPES})", double_quoted(s)),
                );
                None
            }
            Value::Mapping(_) => {
                let (key, name) = self.person(value, path)?;
                Some(match key {
                    "user" => Principal::User(name),
                    "group" => Principal::Group(name),
                    _ => Principal::OnCall(name),
                })
            }
            other => {
                self.fail(
                    path,
                    format!("expected {SHAPES}, got {}", render_value(other)),
                );
                None
            }
        }
    }

    /// A one-key mapping naming people: `{user: x}`, `{group: x}` or `{on_call: x}`. Returns the key
    /// (one of [`PERSON_FIELDS`]) and the name.
    fn person(&mut self, value: &Value, path: &str) -> Option<(&'static str, String)> {
        let map = self.mapping(value, path, PERSON_FIELDS)?;
        // Unknown keys were reported by `mapping`; judge only the known ones.
        let known: Vec<&'static str> = PERSON_FIELDS
            .iter()
            .copied()
            .filter(|k| map.contains_key(*k))
            .collect();
        let [key] = known.as_slice() else {
            if known.is_empty() && !map.is_empty() {
                self.unreadable.mark(path);
            } else {
                let message = format!(
                    "expected exactly one of: {}, got {}",
                    expected_list(PERSON_FIELDS),
                    render_value(value)
                );
                self.fail(path, message);
            }
            return None;
        };
        match map.get(*key) {
            Some(Value::String(name)) => Some((*key, name.clone())),
            Some(other) => {
                self.fail(
                    &field(path, key),
                    format!("expected a string, got {}", render_value(other)),
                );
                None
            }
            None => None,
        }
    }

    fn target(&mut self, value: &Value, path: &str) -> Option<Target> {
        let map = self.mapping(value, path, TARGET_FIELDS)?;
        Some(Target {
            integration: self.string(get(map, "integration"), &field(path, "integration")),
            resource_types: self
                .strings(get(map, "resource_types"), &field(path, "resource_types")),
            include: self.selector(get(map, "include"), &field(path, "include")),
            exclude: self.selector(get(map, "exclude"), &field(path, "exclude")),
            permissions: self.strings(get(map, "permissions"), &field(path, "permissions")),
        })
    }

    fn selector(&mut self, value: Option<&Value>, path: &str) -> ResourceSelector {
        let Some(map) = value.and_then(|v| self.mapping(v, path, SELECTOR_FIELDS)) else {
            return ResourceSelector::default();
        };
        ResourceSelector {
            ids: self.strings(get(map, "ids"), &field(path, "ids")),
            names: self.strings(get(map, "names"), &field(path, "names")),
            tags: self.tags(get(map, "tags"), &field(path, "tags")),
            descendants_of: self
                .strings(get(map, "descendants_of"), &field(path, "descendants_of")),
        }
    }

    fn tags(&mut self, value: Option<&Value>, path: &str) -> BTreeMap<String, String> {
        let mut tags = BTreeMap::new();
        match value {
            None => {}
            Some(Value::Mapping(map)) => {
                for (key, tag_value) in map {
                    let Value::String(key) = key else {
                        self.fail(
                            path,
                            format!("tag keys must be strings, got {}", render_value(key)),
                        );
                        continue;
                    };
                    match tag_value {
                        Value::String(v) => {
                            tags.insert(key.clone(), v.clone());
                        }
                        other => {
                            let message = format!("expected a string, got {}", render_value(other));
                            self.fail(&field(path, key), message);
                        }
                    }
                }
            }
            Some(other) => {
                self.fail(
                    path,
                    format!(
                        "expected a mapping of tag keys to values, got {}",
                        render_value(other)
                    ),
                );
            }
        }
        tags
    }

    fn duration(&mut self, value: &Value) -> Option<DurationPolicy> {
        let map = self.mapping(value, "duration", DURATION_FIELDS)?;
        let default = self.one_duration(get(map, "default"), "duration.default");
        let max = self.one_duration(get(map, "max"), "duration.max");
        // A stand-in for the unreadable one keeps the other checked.
        Some(DurationPolicy {
            default: default.unwrap_or_default(),
            max: max.unwrap_or_default(),
        })
    }

    fn one_duration(&mut self, value: Option<&Value>, path: &str) -> Option<Duration> {
        match value {
            None => {
                self.fail(path, "is required, for example 1h");
                None
            }
            Some(Value::String(s)) => {
                let parsed = parse_duration(s);
                if parsed.is_none() {
                    self.fail(path, format!("{} is not a duration", double_quoted(s)));
                }
                parsed
            }
            Some(other) => {
                self.fail(
                    path,
                    format!(
                        "expected a duration such as 1h or 30m, got {}",
                        render_value(other)
                    ),
                );
                None
            }
        }
    }

    fn approval(&mut self, value: &Value) -> Option<ApprovalPolicy> {
        let path = "approval";
        let map = self.mapping(value, path, APPROVAL_FIELDS)?;
        let modes = ApprovalMode::ALL.map(|m| (m.as_str(), m));
        let mode = self
            .required_choice(get(map, "mode"), "approval.mode", "mode", &modes)
            .unwrap_or(ApprovalMode::Auto);
        let stand_in = ApproverGroup {
            approvers: Vec::new(),
            min: 1,
        };
        let groups = self.list(
            get(map, "groups"),
            "approval.groups",
            "a list of approver groups",
            stand_in,
            Reader::group,
        );
        let requester_can_approve = self.boolean(
            get(map, "requester_can_approve"),
            "approval.requester_can_approve",
        );
        Some(ApprovalPolicy {
            mode,
            groups,
            requester_can_approve,
        })
    }

    fn boolean(&mut self, value: Option<&Value>, path: &str) -> bool {
        match value {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                self.fail(
                    path,
                    format!("expected true or false, got {}", render_value(other)),
                );
                false
            }
        }
    }

    fn group(&mut self, value: &Value, path: &str) -> Option<ApproverGroup> {
        let map = self.mapping(value, path, GROUP_FIELDS)?;
        let approvers_path = field(path, "approvers");
        let approvers = self.list(
            get(map, "approvers"),
            &approvers_path,
            "a list of approvers",
            Approver::Manager,
            Reader::approver,
        );
        let min = self.min(get(map, "min"), &field(path, "min"));
        Some(ApproverGroup { approvers, min })
    }

    fn min(&mut self, value: Option<&Value>, path: &str) -> u32 {
        let Some(value) = value else {
            self.fail(path, "is required");
            return 1;
        };
        let Value::Number(n) = value else {
            self.fail(
                path,
                format!("expected a whole number, got {}", render_value(value)),
            );
            return 1;
        };
        if let Some(n) = n.as_u64() {
            u32::try_from(n).unwrap_or_else(|_| {
                self.fail(path, format!("{n} is too large"));
                1
            })
        } else if n.as_i64().is_some() {
            // Negative: validation's "must be at least 1" says it best.
            0
        } else {
            self.fail(path, format!("expected a whole number, got {n}"));
            1
        }
    }

    /// `{user: x}`, `{group: x}`, `{on_call: x}`, or one of the bare words `manager`,
    /// `resource_owner`, `integration_owner`.
    fn approver(&mut self, value: &Value, path: &str) -> Option<Approver> {
        const SHAPES: &str = "{user: ...}, {group: ...}, {on_call: ...}, manager, resource_owner or integration_owner";
        match value {
            Value::String(s) => match s.as_str() {
                "manager" => Some(Approver::Manager),
                "resource_owner" => Some(Approver::ResourceOwner),
                "integration_owner" => Some(Approver::IntegrationOwner),
                _ => {
                    self.fail(
                        path,
                        format!("unknown approver {} (expected {SHAPES})", double_quoted(s)),
                    );
                    None
                }
            },
            Value::Mapping(_) => {
                let (key, name) = self.person(value, path)?;
                Some(match key {
                    "user" => Approver::User(name),
                    "group" => Approver::Group(name),
                    _ => Approver::OnCall(name),
                })
            }
            other => {
                self.fail(
                    path,
                    format!("expected {SHAPES}, got {}", render_value(other)),
                );
                None
            }
        }
    }

    fn settings(&mut self, value: &Value) -> Settings {
        let Some(map) = self.mapping(value, "settings", SETTINGS_FIELDS) else {
            return Settings::default();
        };
        let options = Justification::ALL.map(|j| (j.as_str(), j));
        let justification = get(map, "justification")
            .and_then(|v| self.choice(v, "settings.justification", "justification", &options))
            .unwrap_or_default();
        let timeframe = get(map, "timeframe").and_then(|v| self.timeframe(v));
        Settings {
            justification,
            timeframe,
        }
    }

    fn timeframe(&mut self, value: &Value) -> Option<Timeframe> {
        let path = "settings.timeframe";
        let map = self.mapping(value, path, TIMEFRAME_FIELDS)?;
        let days = self.list(
            get(map, "days"),
            &field(path, "days"),
            "a list of days",
            Weekday::Mon,
            |r, v, p| r.choice(v, p, "day", &Weekday::ALL.map(|d| (d.as_str(), d))),
        );
        let from = self.time(get(map, "from"), &field(path, "from"));
        let to = self.time(get(map, "to"), &field(path, "to"));
        let time_zone = self.string(get(map, "time_zone"), &field(path, "time_zone"));
        Some(Timeframe {
            days,
            from,
            to,
            time_zone,
        })
    }

    fn time(&mut self, value: Option<&Value>, path: &str) -> jiff::civil::Time {
        match value {
            None => self.fail(path, "is required, as HH:MM"),
            Some(Value::String(s)) => match parse_hhmm(s) {
                Some(time) => return time,
                None => self.fail(path, format!("{} is not a time (HH:MM)", double_quoted(s))),
            },
            Some(other) => self.fail(
                path,
                format!("expected a time (HH:MM), got {}", render_value(other)),
            ),
        }
        jiff::civil::Time::midnight()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(text: &str) -> Vec<(usize, &str)> {
        split_documents(text)
            .into_iter()
            .map(|d| (d.first_line, d.text))
            .collect()
    }

    #[test]
    fn streams_split_at_document_markers() {
        assert_eq!(split("a: 1\n"), [(0, "a: 1\n")]);
        assert_eq!(
            split("---\na: 1\n--- \nb: 2\n---\n"),
            [
                (0, ""),
                (0, "---\na: 1\n"),
                (2, "--- \nb: 2\n"),
                (4, "---\n")
            ]
        );
        // `----` and an indented `---` are content, not markers.
        assert_eq!(
            split("a: |\n  ---\n----: x\n"),
            [(0, "a: |\n  ---\n----: x\n")]
        );
    }

    #[test]
    fn parser_positions_move_to_the_stream() {
        assert_eq!(
            shift_line_numbers(
                "bad at line 2 column 1, while parsing a map at line 1 column 3",
                10
            ),
            "bad at line 12 column 1, while parsing a map at line 11 column 3"
        );
        assert_eq!(
            shift_line_numbers("key \"at line x\" at line 3", 1),
            "key \"at line x\" at line 3"
        );
    }

    #[test]
    fn directives_go_with_the_document_they_introduce() {
        assert_eq!(
            split("%YAML 1.2\n---\na: 1\n...\n%YAML 1.2\n# note\n---\nb: 2\n"),
            [
                (0, ""),
                (0, "%YAML 1.2\n---\na: 1\n...\n"),
                (4, ""),
                (4, "%YAML 1.2\n# note\n---\nb: 2\n")
            ]
        );
    }
}
