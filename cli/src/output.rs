//! Printing results: aligned tables for people, JSON for scripts, and the shared formats
//! (timestamps, flow problems, API errors).

use std::io::Write;
use std::time::SystemTime;

use anyhow::Result;
use clap::ValueEnum;
use comfy_table::{Table, presets};
use latch_core::flow::{Problem, Severity};
use latch_proto::v1::{FlowProblem, ProblemSeverity};
use serde::Serialize;
use tonic::{Code, Status};

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns (or YAML for a single flow).
    Table,
    /// JSON, for scripts.
    Json,
}

/// Writes `text` to standard output as is.
pub fn print(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// Writes `value` to standard output as pretty JSON and a newline.
pub fn print_json(value: &impl Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    print(&format!("{text}\n"))
}

/// A table without borders, headed by `header`.
pub fn table<const N: usize>(header: [&str; N]) -> Table {
    let mut table = Table::new();
    table.load_style(presets::NOTHING).set_header(header);
    table
}

/// Writes `table` to standard output: columns two spaces apart, no trailing spaces.
pub fn print_table(table: Table) -> Result<()> {
    print(&format!("{}\n", format_table(table)))
}

/// `table` as text, as [`print_table`] writes it, without the last newline.
pub fn format_table(mut table: Table) -> String {
    for column in table.column_iter_mut() {
        column.set_padding((0, 2));
    }
    table.trim_fmt()
}

/// A timestamp as RFC 3339 in UTC, to the second.
pub fn timestamp(ts: Option<&prost_types::Timestamp>) -> Option<String> {
    let ts = ts?;
    Some(match SystemTime::try_from(*ts) {
        Ok(time) => humantime::format_rfc3339_seconds(time).to_string(),
        // Before 1970 or otherwise out of range for this system: prost formats it anyway.
        Err(_) => ts.to_string(),
    })
}

/// A timestamp for a table cell, with `missing` when there is none.
pub fn timestamp_cell(ts: Option<&prost_types::Timestamp>, missing: &str) -> String {
    timestamp(ts).unwrap_or_else(|| missing.to_owned())
}

/// `text`, or `-` when it is empty, for a table cell.
pub fn or_dash(text: &str) -> String {
    if text.is_empty() {
        "-".to_owned()
    } else {
        text.to_owned()
    }
}

/// A flow problem as JSON.
#[derive(Debug, Serialize)]
pub struct ProblemJson {
    pub severity: &'static str,
    pub flow_index: u32,
    pub flow_name: String,
    pub path: String,
    pub message: String,
}

impl From<&FlowProblem> for ProblemJson {
    fn from(problem: &FlowProblem) -> Self {
        Self {
            severity: severity(problem),
            flow_index: problem.flow_index,
            flow_name: problem.flow_name.clone(),
            path: problem.path.clone(),
            message: problem.message.clone(),
        }
    }
}

/// `error` or `warning`. An unknown severity counts as an error.
pub fn severity(problem: &FlowProblem) -> &'static str {
    match problem.severity() {
        ProblemSeverity::Warning => "warning",
        ProblemSeverity::Error | ProblemSeverity::Unspecified => "error",
    }
}

/// Whether the problem refuses the flow.
pub fn is_error(problem: &FlowProblem) -> bool {
    severity(problem) == "error"
}

/// One line for a problem, in the core's words:
/// `error: flow 0 (prod-readonly): approval.groups[0].min: must be at least 1`.
///
/// The flow is numbered by its place in the file, from 0, and named when its name could be read.
/// A message that starts with its own path is printed without repeating the path.
pub fn problem_line(problem: &FlowProblem) -> String {
    let core = Problem {
        severity: if is_error(problem) {
            Severity::Error
        } else {
            Severity::Warning
        },
        flow_index: usize::try_from(problem.flow_index).unwrap_or(usize::MAX),
        flow_name: Some(problem.flow_name.clone()).filter(|name| !name.is_empty()),
        path: problem.path.clone(),
        message: problem.message.clone(),
    };
    format!("{}: {}", severity(problem), core.with_flow())
}

/// What to print for an error from the server, without the `error: ` prefix; may span lines.
///
/// The message is printed as the server wrote it (for refused flows, one problem per line, the same
/// lines `flows validate` prints), followed by the status code unless the code is INVALID_ARGUMENT
/// (whose message says everything). Field violations sent alongside are for programs, not people.
pub fn describe_status(status: &Status) -> String {
    let message = if status.message().is_empty() {
        "the server gave no message"
    } else {
        status.message()
    };
    match status.code() {
        Code::InvalidArgument => message.to_owned(),
        code => format!("{message} ({})", code_name(code)),
    }
}

/// The canonical gRPC name of a status code.
fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// What to print for any error, without the `error: ` prefix; may span lines.
pub fn describe_error(err: &anyhow::Error) -> String {
    match err.downcast_ref::<Status>() {
        Some(status) => describe_status(status),
        None => format!("{err:#}"),
    }
}

#[cfg(test)]
mod tests {
    use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

    use super::*;

    fn problem(
        severity: ProblemSeverity,
        index: u32,
        name: &str,
        path: &str,
        message: &str,
    ) -> FlowProblem {
        FlowProblem {
            severity: severity.into(),
            flow_index: index,
            flow_name: name.to_owned(),
            path: path.to_owned(),
            message: message.to_owned(),
        }
    }

    #[test]
    fn problems_name_their_flow_and_field() {
        let p = problem(
            ProblemSeverity::Error,
            1,
            "prod",
            "approval.groups[0].min",
            "must be at least 1",
        );
        assert_eq!(
            problem_line(&p),
            "error: flow 1 (prod): approval.groups[0].min: must be at least 1"
        );
        let p = problem(
            ProblemSeverity::Warning,
            0,
            "dev",
            "",
            "integration aws-dev is not known yet",
        );
        assert_eq!(
            problem_line(&p),
            "warning: flow 0 (dev): integration aws-dev is not known yet"
        );
        let p = problem(
            ProblemSeverity::Error,
            0,
            "dev",
            "duration.default",
            "duration.default (3h) is longer",
        );
        assert_eq!(
            problem_line(&p),
            "error: flow 0 (dev): duration.default (3h) is longer"
        );
    }

    #[test]
    fn unnamed_flows_are_numbered() {
        let p = problem(ProblemSeverity::Error, 2, "", "", "not a mapping");
        assert_eq!(problem_line(&p), "error: flow 2: not a mapping");
    }

    #[test]
    fn unknown_severity_counts_as_error() {
        let p = problem(ProblemSeverity::Unspecified, 0, "x", "", "odd");
        assert!(is_error(&p));
        assert_eq!(ProblemJson::from(&p).severity, "error");
    }

    #[test]
    fn statuses_carry_their_code_except_invalid_argument() {
        assert_eq!(
            describe_status(&Status::not_found("flow x not found")),
            "flow x not found (NOT_FOUND)"
        );
        assert_eq!(
            describe_status(&Status::invalid_argument("name: too long")),
            "name: too long"
        );
    }

    #[test]
    fn multi_line_messages_are_kept_whole_over_field_violations() {
        let details = ErrorDetails::with_bad_request(vec![FieldViolation::new(
            "flows[0].name",
            "must not be empty",
        )]);
        let status = Status::with_error_details(
            Code::InvalidArgument,
            "1 problem found; nothing was stored:\nflow 0: name: must not be empty",
            details,
        );
        assert_eq!(
            describe_status(&status),
            "1 problem found; nothing was stored:\nflow 0: name: must not be empty"
        );
    }

    #[test]
    fn statuses_are_found_inside_anyhow_errors() {
        let err = anyhow::Error::new(Status::unauthenticated("missing token"));
        assert_eq!(describe_error(&err), "missing token (UNAUTHENTICATED)");
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let ts = prost_types::Timestamp {
            seconds: 1_700_000_000,
            nanos: 5,
        };
        assert_eq!(
            timestamp(Some(&ts)).as_deref(),
            Some("2023-11-14T22:13:20Z")
        );
        assert_eq!(timestamp(None), None);
    }
}
