//! The result of reading a source of flows, and how the per-flow findings become it.

use super::known::{KnownNames, unknown_reference_warnings};
use super::model::FlowSpec;
use super::problem::{Finding, Problem, sort_findings};
use super::validate::{Unreadable, check_flow, duplicate_names};

/// The flows of one source (a YAML stream or a list of proto specs) and every problem found in them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    /// The flows that have no error, in source order. When any problem is an error, these must not
    /// be applied: applying is all or nothing.
    pub flows: Vec<FlowSpec>,
    /// Every error and warning, in source order (by flow, then by field as a flow is written).
    pub problems: Vec<Problem>,
    /// `source_indices[i]` is the position in the source of `flows[i]` (the `flow_index` of its problems).
    pub source_indices: Vec<usize>,
    /// How many flows the source holds: non-empty YAML documents, or list entries.
    pub source_len: usize,
}

impl Parsed {
    /// Whether any problem is an error.
    pub fn has_errors(&self) -> bool {
        self.problems.iter().any(Problem::is_error)
    }

    /// Whether the source can be applied: no problem is an error (warnings are fine).
    pub fn is_valid(&self) -> bool {
        !self.has_errors()
    }

    /// The problems that are errors.
    pub fn errors(&self) -> impl Iterator<Item = &Problem> {
        self.problems.iter().filter(|p| p.is_error())
    }

    /// The problems that are warnings.
    pub fn warnings(&self) -> impl Iterator<Item = &Problem> {
        self.problems.iter().filter(|p| !p.is_error())
    }

    /// Adds warnings for references to integrations, users, groups and schedules Latch does not
    /// know yet (see [`unknown_reference_warnings`]), numbered by the flows' places in the source
    /// and merged into the problems in source order.
    pub fn add_unknown_reference_warnings(&mut self, known: &KnownNames) {
        let mut warnings = unknown_reference_warnings(&self.flows, known);
        for warning in &mut warnings {
            if let Some(index) = self.source_indices.get(warning.flow_index) {
                warning.flow_index = *index;
            }
        }
        self.problems.extend(warnings);
        // Stable: within a flow, the earlier problems stay first.
        self.problems.sort_by_key(|p| p.flow_index);
    }

    /// Every problem as a line to show a person: `path: message`, prefixed by the flow
    /// (`flow 1 (prod-readonly): ...`) when the source holds several flows.
    pub fn problem_lines(&self) -> Vec<String> {
        let several = self.source_len > 1;
        self.problems
            .iter()
            .map(|p| {
                if several {
                    p.with_flow().to_string()
                } else {
                    p.to_string()
                }
            })
            .collect()
    }

    /// The flows and their warnings when the source is valid, every problem otherwise.
    pub fn into_result(self) -> Result<ValidFlows, FlowError> {
        if self.has_errors() {
            return Err(FlowError::Invalid {
                problems: self.problems,
            });
        }
        Ok(ValidFlows {
            flows: self.flows,
            warnings: self.problems,
        })
    }
}

/// Flows that passed validation, with the warnings found on the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidFlows {
    /// The flows, in source order.
    pub flows: Vec<FlowSpec>,
    /// Warnings; they do not stop the flows from being applied.
    pub warnings: Vec<Problem>,
}

/// Why flows cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlowError {
    /// At least one problem is an error. `problems` holds every problem, warnings included.
    #[error("the flows have {} error(s), first: {}", count_errors(.problems), first_error(.problems))]
    Invalid {
        /// Every problem found.
        problems: Vec<Problem>,
    },
}

fn count_errors(problems: &[Problem]) -> usize {
    problems.iter().filter(|p| p.is_error()).count()
}

fn first_error(problems: &[Problem]) -> String {
    problems
        .iter()
        .find(|p| p.is_error())
        .map(|p| p.with_flow().to_string())
        .unwrap_or_default()
}

/// What reading one flow of a source produced, before validation.
#[derive(Debug, Clone, Default)]
pub(crate) struct Read {
    /// The flow's name, when it could be read; labels the flow's problems.
    pub name: Option<String>,
    /// The flow, with stand-ins where values could not be read; `None` when nothing could be.
    pub spec: Option<FlowSpec>,
    /// Problems found while reading.
    pub findings: Vec<Finding>,
    /// Paths whose values in `spec` are stand-ins.
    pub unreadable: Unreadable,
}

impl Read {
    /// A flow that could not be read at all (for example a YAML syntax error).
    pub(crate) fn broken(message: String) -> Self {
        Read {
            findings: vec![Finding::error("", message)],
            ..Read::default()
        }
    }
}

/// Validates what was read and gathers the result: semantic rules for each flow, duplicate names
/// across flows, problems ordered as the source is written.
pub(crate) fn assemble(reads: Vec<Read>) -> Parsed {
    let names: Vec<Option<String>> = reads.iter().map(|r| r.name.clone()).collect();
    let mut per_flow: Vec<Vec<Finding>> = Vec::with_capacity(reads.len());
    let mut specs = Vec::with_capacity(reads.len());
    for read in reads {
        let mut findings = read.findings;
        if let Some(spec) = &read.spec {
            findings.extend(check_flow(spec, &read.unreadable));
        }
        per_flow.push(findings);
        specs.push((read.name, read.spec));
    }
    for (index, finding) in duplicate_names(&names) {
        if let Some(findings) = per_flow.get_mut(index) {
            findings.push(finding);
        }
    }

    let mut parsed = Parsed {
        source_len: specs.len(),
        ..Parsed::default()
    };
    for (index, ((name, spec), mut findings)) in specs.into_iter().zip(per_flow).enumerate() {
        sort_findings(&mut findings);
        let has_error = findings
            .iter()
            .any(|f| f.severity == super::problem::Severity::Error);
        parsed.problems.extend(
            findings
                .into_iter()
                .map(|f| f.into_problem(index, name.as_deref())),
        );
        if let (Some(spec), false) = (spec, has_error) {
            parsed.flows.push(spec);
            parsed.source_indices.push(index);
        }
    }
    parsed
}
