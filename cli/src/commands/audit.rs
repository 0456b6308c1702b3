//! `latch audit ...`: list the audit log and verify its hash chain.

use std::process::ExitCode;

use anyhow::{Context, Result};
use latch_proto::v1::{AuditEvent, ListAuditEventsRequest, VerifyAuditChainRequest};
use serde::Serialize;

use crate::args::AuditCommand;
use crate::client::{Api, AuditClient};
use crate::output::{OutputFormat, print, print_json, print_table, table, timestamp_cell};

/// Events asked for per page when listing.
const PAGE_SIZE: u32 = 500;

/// Runs a `latch audit` command.
pub async fn run(command: AuditCommand, api: &Api, output: OutputFormat) -> Result<ExitCode> {
    let mut client = api.audit();
    match command {
        AuditCommand::List { request, since } => {
            let since = since.as_deref().map(parse_time).transpose()?;
            list(&mut client, request.unwrap_or_default(), since, output).await?;
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Verify => verify(&mut client, output).await,
    }
}

/// An RFC 3339 time as a protobuf timestamp.
fn parse_time(text: &str) -> Result<prost_types::Timestamp> {
    let time: jiff::Timestamp = text.parse().with_context(|| {
        format!("--since {text:?} is not an RFC 3339 time like 2026-11-26T09:00:00Z")
    })?;
    Ok(prost_types::Timestamp {
        seconds: time.as_second(),
        nanos: time.subsec_nanosecond(),
    })
}

#[derive(Serialize)]
struct EventJson {
    seq: i64,
    at: String,
    actor: String,
    action: String,
    subject: String,
    details: serde_json::Value,
    hash: String,
}

impl From<&AuditEvent> for EventJson {
    fn from(event: &AuditEvent) -> Self {
        EventJson {
            seq: event.seq,
            at: timestamp_cell(event.at.as_ref(), ""),
            actor: event.actor.clone(),
            action: event.action.clone(),
            subject: event.subject.clone(),
            details: serde_json::from_str(&event.details_json).unwrap_or(serde_json::Value::Null),
            hash: event.hash.clone(),
        }
    }
}

async fn list(
    client: &mut AuditClient,
    subject: String,
    since: Option<prost_types::Timestamp>,
    output: OutputFormat,
) -> Result<()> {
    let mut events = Vec::new();
    let mut page_token = String::new();
    loop {
        let request = ListAuditEventsRequest {
            page_size: PAGE_SIZE,
            page_token,
            since,
            subject: subject.clone(),
        };
        let page = client.list_audit_events(request).await?.into_inner();
        events.extend(page.events);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    match output {
        OutputFormat::Json => print_json(&events.iter().map(EventJson::from).collect::<Vec<_>>()),
        OutputFormat::Table => {
            let mut rows = table(["SEQ", "AT", "ACTOR", "ACTION", "SUBJECT", "DETAILS"]);
            for event in &events {
                rows.add_row([
                    event.seq.to_string(),
                    timestamp_cell(event.at.as_ref(), "-"),
                    event.actor.clone(),
                    event.action.clone(),
                    event.subject.clone(),
                    event.details_json.clone(),
                ]);
            }
            print_table(rows)
        }
    }
}

#[derive(Serialize)]
struct VerifyJson {
    intact: bool,
    events_checked: i64,
    broken_at_seq: Option<i64>,
    problem: Option<String>,
}

async fn verify(client: &mut AuditClient, output: OutputFormat) -> Result<ExitCode> {
    let result = client
        .verify_audit_chain(VerifyAuditChainRequest {})
        .await?
        .into_inner();
    match output {
        OutputFormat::Json => print_json(&VerifyJson {
            intact: result.intact,
            events_checked: result.events_checked,
            broken_at_seq: (!result.intact && result.broken_at_seq > 0)
                .then_some(result.broken_at_seq),
            problem: (!result.intact).then(|| result.problem.clone()),
        })?,
        OutputFormat::Table if result.intact => print(&format!(
            "audit chain intact: {} events verified\n",
            result.events_checked
        ))?,
        OutputFormat::Table => print(&format!(
            "audit chain BROKEN after {} good events: {}\n",
            result.events_checked, result.problem
        ))?,
    }
    Ok(if result.intact {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
