//! `latch flows ...`: validate, apply, list, show and delete access flows.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use latch_core::flow::FlowSpec;
use latch_proto::v1::flow_source::Source;
use latch_proto::v1::{
    AccessFlow, AccessFlowSpec, AppliedFlow, ApplyFlowsRequest, ApplyOutcome, ApprovalMode,
    DeleteFlowRequest, FlowKind, FlowSource, GetFlowRequest, ListFlowsRequest,
    ValidateFlowsRequest, ValidateFlowsResponse,
};
use serde::Serialize;

use super::read_source;
use crate::args::FlowsCommand;
use crate::client::{Api, FlowClient};
use crate::output::{
    OutputFormat, ProblemJson, is_error, print, print_json, print_table, problem_line, table,
    timestamp, timestamp_cell,
};

/// Flows asked for per page when listing.
const PAGE_SIZE: u32 = 200;

/// Runs a `latch flows` command.
pub async fn run(command: FlowsCommand, api: &Api, output: OutputFormat) -> Result<ExitCode> {
    let mut client = api.flows();
    match command {
        FlowsCommand::Validate { file } => return validate(&mut client, &file, output).await,
        FlowsCommand::Apply { file } => apply(&mut client, &file, output).await?,
        FlowsCommand::List => list(&mut client, output).await?,
        FlowsCommand::Show { name, version } => show(&mut client, name, version, output).await?,
        FlowsCommand::Delete { name } => delete(&mut client, name, output).await?,
    }
    Ok(ExitCode::SUCCESS)
}

/// The raw YAML of a file, for the server to parse.
fn yaml_source(file: &Path) -> Result<Option<FlowSource>> {
    let yaml = read_source(file)?;
    Ok(Some(FlowSource {
        source: Some(Source::Yaml(yaml)),
    }))
}

// ---- validate ----

/// `flows validate` as JSON.
#[derive(Serialize)]
struct ValidationJson {
    valid: bool,
    problems: Vec<ProblemJson>,
}

/// Prints every problem; fails the exit status when the flows are not valid.
async fn validate(client: &mut FlowClient, file: &Path, output: OutputFormat) -> Result<ExitCode> {
    let request = ValidateFlowsRequest {
        source: yaml_source(file)?,
    };
    let response = client.validate_flows(request).await?.into_inner();
    match output {
        OutputFormat::Table => print(&validation_report(&response))?,
        OutputFormat::Json => print_json(&ValidationJson {
            valid: response.valid,
            problems: response.problems.iter().map(ProblemJson::from).collect(),
        })?,
    }
    Ok(if response.valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// One line per problem, then a summary line.
fn validation_report(response: &ValidateFlowsResponse) -> String {
    let errors = response.problems.iter().filter(|p| is_error(p)).count();
    let warnings = response.problems.len() - errors;
    let summary = if response.valid {
        let flows = plural(response.flows.len(), "flow");
        match warnings {
            0 => format!("ok: {flows} valid"),
            _ => format!("ok: {flows} valid, with {}", plural(warnings, "warning")),
        }
    } else {
        format!(
            "invalid: {} and {}",
            plural(errors, "error"),
            plural(warnings, "warning")
        )
    };
    let mut lines: Vec<String> = response.problems.iter().map(problem_line).collect();
    lines.push(summary);
    lines.join("\n") + "\n"
}

/// `1 flow`, `2 flows`.
fn plural(count: usize, noun: &str) -> String {
    if count == 1 {
        format!("{count} {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

// ---- apply ----

/// `flows apply` as JSON.
#[derive(Serialize)]
struct ApplyJson {
    flows: Vec<AppliedJson>,
    warnings: Vec<ProblemJson>,
}

/// One applied flow as JSON.
#[derive(Serialize)]
struct AppliedJson {
    name: String,
    version: u32,
    outcome: &'static str,
}

/// Applies the flows; on INVALID_ARGUMENT the caller prints every problem.
async fn apply(client: &mut FlowClient, file: &Path, output: OutputFormat) -> Result<()> {
    let request = ApplyFlowsRequest {
        source: yaml_source(file)?,
    };
    let response = client.apply_flows(request).await?.into_inner();
    match output {
        OutputFormat::Json => print_json(&ApplyJson {
            flows: response.flows.iter().map(AppliedJson::from).collect(),
            warnings: response.warnings.iter().map(ProblemJson::from).collect(),
        }),
        OutputFormat::Table => {
            let mut rows = table(["NAME", "VERSION", "OUTCOME"]);
            for flow in &response.flows {
                rows.add_row([
                    flow.name.clone(),
                    flow.version.to_string(),
                    outcome(flow).to_owned(),
                ]);
            }
            print_table(rows)?;
            // Warnings go to standard error so the table stays clean for tools.
            for warning in &response.warnings {
                eprintln!("{}", problem_line(warning));
            }
            Ok(())
        }
    }
}

impl From<&AppliedFlow> for AppliedJson {
    fn from(flow: &AppliedFlow) -> Self {
        Self {
            name: flow.name.clone(),
            version: flow.version,
            outcome: outcome(flow),
        }
    }
}

/// What applying did to a flow, in one word.
fn outcome(flow: &AppliedFlow) -> &'static str {
    match flow.outcome() {
        ApplyOutcome::Created => "created",
        ApplyOutcome::Updated => "updated",
        ApplyOutcome::Unchanged => "unchanged",
        ApplyOutcome::Unspecified => "unknown",
    }
}

// ---- list ----

/// One flow in `flows list`, as JSON and as a table row.
#[derive(Serialize)]
struct FlowRow {
    name: String,
    kind: &'static str,
    version: u32,
    digest: String,
    /// Integrations the flow's targets come from, each once, in order.
    targets: Vec<String>,
    approval: Option<String>,
    applied_at: Option<String>,
    applied_by: String,
}

/// Lists every flow, following pages to the end.
async fn list(client: &mut FlowClient, output: OutputFormat) -> Result<()> {
    let rows: Vec<FlowRow> = list_all(client).await?.iter().map(FlowRow::from).collect();
    match output {
        OutputFormat::Json => print_json(&rows),
        OutputFormat::Table if rows.is_empty() => {
            eprintln!("no flows yet; add some with `latch flows apply -f FILE`");
            Ok(())
        }
        OutputFormat::Table => {
            let mut table = table([
                "NAME",
                "KIND",
                "VERSION",
                "TARGETS",
                "APPROVAL",
                "APPLIED_AT",
                "APPLIED_BY",
            ]);
            for row in rows {
                table.add_row(row.cells());
            }
            print_table(table)
        }
    }
}

/// Every page of flows.
async fn list_all(client: &mut FlowClient) -> Result<Vec<AccessFlow>> {
    let mut flows = Vec::new();
    let mut page_token = String::new();
    loop {
        let request = ListFlowsRequest {
            page_size: PAGE_SIZE,
            page_token: page_token.clone(),
        };
        let page = client.list_flows(request).await?.into_inner();
        flows.extend(page.flows);
        if page.next_page_token.is_empty() {
            return Ok(flows);
        }
        if page.next_page_token == page_token {
            bail!("the server returned the same page twice; stopped listing");
        }
        page_token = page.next_page_token;
    }
}

impl From<&AccessFlow> for FlowRow {
    fn from(flow: &AccessFlow) -> Self {
        let spec = flow.spec.clone().unwrap_or_default();
        Self {
            kind: kind(&spec),
            targets: integrations(&spec),
            approval: approval(&spec),
            name: spec.name,
            version: flow.version,
            digest: flow.digest.clone(),
            applied_at: timestamp(flow.applied_at.as_ref()),
            applied_by: flow.applied_by.clone(),
        }
    }
}

impl FlowRow {
    /// The cells of the table row, `-` where there is nothing.
    fn cells(self) -> [String; 7] {
        let targets = if self.targets.is_empty() {
            "-".to_owned()
        } else {
            self.targets.join(",")
        };
        [
            self.name,
            self.kind.to_owned(),
            self.version.to_string(),
            targets,
            self.approval.unwrap_or_else(|| "-".to_owned()),
            self.applied_at.unwrap_or_else(|| "-".to_owned()),
            self.applied_by,
        ]
    }
}

/// The flow kind as written in YAML.
fn kind(spec: &AccessFlowSpec) -> &'static str {
    match spec.kind() {
        FlowKind::SelfServe => "self_serve",
        FlowKind::Automatic => "automatic",
        FlowKind::Unspecified => "unspecified",
    }
}

/// The integrations of the flow's targets, each once, in order.
fn integrations(spec: &AccessFlowSpec) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for target in &spec.targets {
        if !names.contains(&target.integration) {
            names.push(target.integration.clone());
        }
    }
    names
}

/// The approval policy in a few words: `auto`, `all_of 2 groups`, `any_of 1 group`.
fn approval(spec: &AccessFlowSpec) -> Option<String> {
    let approval = spec.approval.as_ref()?;
    let groups = plural(approval.groups.len(), "group");
    Some(match approval.mode() {
        ApprovalMode::Auto => "auto".to_owned(),
        ApprovalMode::AllOf => format!("all_of {groups}"),
        ApprovalMode::AnyOf => format!("any_of {groups}"),
        ApprovalMode::Unspecified => format!("unspecified {groups}"),
    })
}

// ---- show ----

/// `flows show` as JSON.
#[derive(Serialize)]
struct ShowJson {
    name: String,
    version: u32,
    digest: String,
    applied_at: Option<String>,
    applied_by: String,
    deleted: bool,
    spec: serde_json::Value,
}

/// Shows one flow: a comment block about the version, then the flow as YAML.
async fn show(
    client: &mut FlowClient,
    name: String,
    version: Option<u32>,
    output: OutputFormat,
) -> Result<()> {
    let response = client
        .get_flow(GetFlowRequest { name, version })
        .await?
        .into_inner();
    let flow = response
        .flow
        .context("the server answered without the flow")?;
    let proto_spec = flow
        .spec
        .as_ref()
        .context("the server answered without the flow's content")?;
    let spec = flow_spec(proto_spec)?;
    match output {
        OutputFormat::Table => print(&format!(
            "{}{}",
            header_comment(&flow, &proto_spec.name),
            yaml(&spec)
        )),
        OutputFormat::Json => print_json(&ShowJson {
            name: proto_spec.name.clone(),
            version: flow.version,
            digest: flow.digest.clone(),
            applied_at: timestamp(flow.applied_at.as_ref()),
            applied_by: flow.applied_by.clone(),
            deleted: flow.deleted,
            spec: serde_json::to_value(&spec)?,
        }),
    }
}

/// Converts a stored flow back into Latch's flow model, to print it as YAML or JSON.
fn flow_spec(spec: &AccessFlowSpec) -> Result<FlowSpec> {
    let parsed = latch_core::flow::from_proto(std::slice::from_ref(spec));
    match parsed.flows.into_iter().next() {
        Some(flow) => Ok(flow),
        None => {
            let problems: Vec<String> = parsed.problems.iter().map(ToString::to_string).collect();
            bail!("cannot print flow {:?}: {}", spec.name, problems.join("; "))
        }
    }
}

/// The flow as YAML, ending in exactly one newline.
fn yaml(spec: &FlowSpec) -> String {
    let yaml = spec.to_yaml();
    format!("{}\n", yaml.trim_end())
}

/// `# key: value` lines about the stored version, above its YAML.
fn header_comment(flow: &AccessFlow, name: &str) -> String {
    let mut lines = vec![
        format!("# name: {name}"),
        format!("# version: {}", flow.version),
        format!("# digest: {}", flow.digest),
        format!(
            "# applied_at: {}",
            timestamp_cell(flow.applied_at.as_ref(), "-")
        ),
        format!(
            "# applied_by: {}",
            if flow.applied_by.is_empty() {
                "-"
            } else {
                &flow.applied_by
            }
        ),
    ];
    if flow.deleted {
        lines.push("# deleted: true".to_owned());
    }
    lines.join("\n") + "\n"
}

// ---- delete ----

/// `flows delete` as JSON.
#[derive(Serialize)]
struct DeletedJson {
    name: String,
    last_version: u32,
    deleted: bool,
}

/// Deletes a flow and says which version was the last.
async fn delete(client: &mut FlowClient, name: String, output: OutputFormat) -> Result<()> {
    let response = client
        .delete_flow(DeleteFlowRequest { name: name.clone() })
        .await?
        .into_inner();
    let last_version = response.flow.map(|flow| flow.version).unwrap_or_default();
    match output {
        OutputFormat::Table => print(&format!(
            "deleted flow {name} (last version {last_version})\n"
        )),
        OutputFormat::Json => print_json(&DeletedJson {
            name,
            last_version,
            deleted: true,
        }),
    }
}

#[cfg(test)]
mod tests {
    use latch_proto::v1::{ApprovalPolicy, ApproverGroup, FlowProblem, ProblemSeverity, Target};

    use super::*;

    fn target(integration: &str) -> Target {
        Target {
            integration: integration.to_owned(),
            ..Default::default()
        }
    }

    #[test]
    fn list_rows_summarise_targets_and_approval() {
        let spec = AccessFlowSpec {
            name: "prod-readonly".to_owned(),
            kind: FlowKind::SelfServe.into(),
            targets: vec![target("aws-prod"), target("gcp-prod"), target("aws-prod")],
            approval: Some(ApprovalPolicy {
                mode: ApprovalMode::AllOf.into(),
                groups: vec![ApproverGroup::default(), ApproverGroup::default()],
                requester_can_approve: false,
            }),
            ..Default::default()
        };
        let flow = AccessFlow {
            spec: Some(spec),
            version: 3,
            applied_at: Some(prost_types::Timestamp {
                seconds: 0,
                nanos: 0,
            }),
            applied_by: "alice@example.com".to_owned(),
            ..Default::default()
        };
        let cells = FlowRow::from(&flow).cells();
        assert_eq!(
            cells,
            [
                "prod-readonly",
                "self_serve",
                "3",
                "aws-prod,gcp-prod",
                "all_of 2 groups",
                "1970-01-01T00:00:00Z",
                "alice@example.com"
            ]
        );
    }

    #[test]
    fn automatic_flows_have_no_approval() {
        let spec = AccessFlowSpec {
            kind: FlowKind::Automatic.into(),
            ..Default::default()
        };
        let row = FlowRow::from(&AccessFlow {
            spec: Some(spec),
            ..Default::default()
        });
        assert_eq!(row.approval, None);
        assert_eq!(row.cells()[4], "-");
    }

    #[test]
    fn validation_report_ends_with_a_summary() {
        let problem = |severity: ProblemSeverity, message: &str| FlowProblem {
            severity: severity.into(),
            flow_name: "prod".to_owned(),
            message: message.to_owned(),
            ..Default::default()
        };
        let invalid = ValidateFlowsResponse {
            valid: false,
            problems: vec![
                problem(ProblemSeverity::Error, "bad"),
                problem(ProblemSeverity::Warning, "odd"),
            ],
            flows: vec![],
        };
        assert_eq!(
            validation_report(&invalid),
            "error: flow 0 (prod): bad\nwarning: flow 0 (prod): odd\ninvalid: 1 error and 1 warning\n"
        );
        let valid = ValidateFlowsResponse {
            valid: true,
            problems: vec![],
            flows: vec![AccessFlowSpec::default(), AccessFlowSpec::default()],
        };
        assert_eq!(validation_report(&valid), "ok: 2 flows valid\n");
    }

    #[test]
    fn header_comment_describes_the_version() {
        let flow = AccessFlow {
            version: 2,
            digest: "abc".to_owned(),
            deleted: true,
            ..Default::default()
        };
        assert_eq!(
            header_comment(&flow, "dev"),
            "# name: dev\n# version: 2\n# digest: abc\n# applied_at: -\n# applied_by: -\n# deleted: true\n"
        );
    }
}
