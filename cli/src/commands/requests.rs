//! `latch request | approve | deny | cancel | revoke | extend` and `latch requests ...`: ask for
//! access, decide on it, end it, and look at requests.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use latch_core::request::RequestState;
use latch_proto::v1::{
    AccessItem, AccessRequest, ApproveAccessRequestRequest, CancelAccessRequestRequest,
    CreateAccessRequestRequest, DenyAccessRequestRequest, ExtendAccessRequestRequest,
    GetAccessRequestRequest, ListAccessRequestsRequest, RevokeAccessRequestRequest,
};

use super::all_pages;
use super::request_view::{RequestJson, detail, items_cell, reason_text, summary};
use crate::args::{AccessCommand, RequestArgs, RequestsCommand};
use crate::client::{Api, RequestClient};
use crate::duration::to_proto;
use crate::output::{OutputFormat, print, print_json, print_table, table, timestamp_cell};

/// Requests asked for per page when listing.
const PAGE_SIZE: u32 = 500;

/// How often `latch request --wait` asks for the request again.
const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// How often the spinner of `--wait` turns; a divisor of [`POLL_INTERVAL`].
const SPIN_INTERVAL: Duration = Duration::from_millis(100);

/// Runs `latch request`, `approve`, `deny`, `cancel`, `revoke` or `extend`.
pub async fn run_access(
    command: AccessCommand,
    api: &Api,
    output: OutputFormat,
) -> Result<ExitCode> {
    let mut client = api.requests();
    let request = match command {
        AccessCommand::Request(args) => return create(&mut client, args, output).await,
        AccessCommand::Approve { id, reason } => {
            let request = ApproveAccessRequestRequest { id, reason };
            client
                .approve_access_request(request)
                .await?
                .into_inner()
                .request
        }
        AccessCommand::Deny { id, reason } => {
            let request = DenyAccessRequestRequest { id, reason };
            client
                .deny_access_request(request)
                .await?
                .into_inner()
                .request
        }
        AccessCommand::Cancel { id } => {
            let request = CancelAccessRequestRequest { id };
            client
                .cancel_access_request(request)
                .await?
                .into_inner()
                .request
        }
        AccessCommand::Revoke { id, reason } => {
            let request = RevokeAccessRequestRequest { id, reason };
            client
                .revoke_access_request(request)
                .await?
                .into_inner()
                .request
        }
        AccessCommand::Extend {
            id,
            duration,
            reason,
        } => {
            let request = ExtendAccessRequestRequest {
                id,
                duration: Some(to_proto(duration)),
                justification: reason,
            };
            client
                .extend_access_request(request)
                .await?
                .into_inner()
                .request
        }
    };
    let request = sent(request)?;
    match output {
        OutputFormat::Json => print_json(&RequestJson::new(&request, false))?,
        OutputFormat::Table => print(&summary(&request, false, true))?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs a `latch requests` command.
pub async fn run(command: RequestsCommand, api: &Api, output: OutputFormat) -> Result<ExitCode> {
    let mut client = api.requests();
    match command {
        RequestsCommand::List {
            mine,
            pending_my_approval,
            state,
            requester,
        } => {
            let filter = ListAccessRequestsRequest {
                page_size: PAGE_SIZE,
                page_token: String::new(),
                mine,
                pending_my_approval,
                state: state.map(|s| s.as_str().to_owned()).unwrap_or_default(),
                requester: requester.unwrap_or_default(),
            };
            list(&mut client, filter, output).await?;
        }
        RequestsCommand::Show { id } => {
            let request = get(&mut client, id).await?;
            match output {
                OutputFormat::Json => print_json(&RequestJson::new(&request, false))?,
                OutputFormat::Table => print(&detail(&request))?,
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The request in a response; an error if the server sent none.
fn sent(request: Option<AccessRequest>) -> Result<AccessRequest> {
    request.context("the server's answer holds no request")
}

/// Every permission on every resource, in the order given, each item once.
fn items(resources: &[String], permissions: &[String]) -> Vec<AccessItem> {
    let mut items: Vec<AccessItem> = Vec::new();
    for resource_id in resources {
        for permission in permissions {
            let item = AccessItem {
                resource_id: resource_id.clone(),
                permission: permission.clone(),
            };
            if !items.contains(&item) {
                items.push(item);
            }
        }
    }
    items
}

/// `latch request`: asks, waits when told to, and prints the request.
///
/// Exits with status 1 when the request is denied, and after `--wait` unless the access is active.
async fn create(
    client: &mut RequestClient,
    args: RequestArgs,
    output: OutputFormat,
) -> Result<ExitCode> {
    let request = CreateAccessRequestRequest {
        items: items(&args.resources, &args.permissions),
        duration: args.duration.map(to_proto),
        justification: args.reason,
    };
    let response = client.create_access_request(request).await?.into_inner();
    let extended = response.extended;
    let mut request = sent(response.request)?;
    if args.wait && !is_settled(&request.state) {
        if output == OutputFormat::Table {
            print(&summary(&request, extended, true))?;
        }
        request = wait(client, request).await?;
    }
    let denied = request.state == RequestState::Denied.as_str();
    match output {
        OutputFormat::Json => print_json(&RequestJson::new(&request, extended))?,
        // The reasons of a denial go to standard error below, not twice.
        OutputFormat::Table => print(&summary(&request, extended, !denied))?,
    }
    let failed = denied || (args.wait && request.state != RequestState::Active.as_str());
    if !failed {
        return Ok(ExitCode::SUCCESS);
    }
    for line in why_not_active(&request) {
        eprintln!("error: {line}");
    }
    Ok(ExitCode::from(1))
}

/// Whether `--wait` is over: the access is active or the request has ended. A state this version
/// does not know ends the wait too, rather than waiting for ever.
fn is_settled(state: &str) -> bool {
    match state.parse::<RequestState>() {
        Ok(state) => state == RequestState::Active || state.is_terminal(),
        Err(_) => true,
    }
}

/// Lines for standard error when a request did not end active: its state and why.
///
/// The engine's reasons explain a request the flows refused, or one that ended with no reason
/// given; otherwise the reason it ended (an approver's denial, a failed grant) says it.
fn why_not_active(request: &AccessRequest) -> Vec<String> {
    let mut lines = vec![if request.end_reason.is_empty() {
        format!("request {} is {}", request.id, request.state)
    } else {
        format!(
            "request {} is {}: {}",
            request.id, request.state, request.end_reason
        )
    }];
    if request.outcome == "deny" || request.end_reason.is_empty() {
        lines.extend(
            request
                .reasons
                .iter()
                .map(|reason| format!("  {}", reason_text(reason))),
        );
    }
    lines
}

/// Asks for the request every [`POLL_INTERVAL`] until it is settled, turning a spinner meanwhile.
async fn wait(client: &mut RequestClient, mut request: AccessRequest) -> Result<AccessRequest> {
    let mut spinner = Spinner::new();
    while !is_settled(&request.state) {
        let mut waited = Duration::ZERO;
        while waited < POLL_INTERVAL {
            spinner.turn(&request);
            tokio::time::sleep(SPIN_INTERVAL).await;
            waited += SPIN_INTERVAL;
        }
        request = get(client, request.id.clone()).await?;
    }
    Ok(request)
}

/// One request, with its decision, approvals and grants.
async fn get(client: &mut RequestClient, id: String) -> Result<AccessRequest> {
    let response = client
        .get_access_request(GetAccessRequestRequest { id })
        .await?;
    sent(response.into_inner().request)
}

/// A one-line spinner on standard error, drawn only when standard error is a terminal, and erased
/// when dropped (so an error printed after it starts on a clean line).
struct Spinner {
    enabled: bool,
    turns: usize,
}

impl Spinner {
    /// Longest line drawn, so that it does not wrap on a common terminal and `\r` can redraw it.
    const WIDTH: usize = 78;

    fn new() -> Self {
        Self {
            enabled: std::io::stderr().is_terminal(),
            turns: 0,
        }
    }

    /// Draws the next frame with the request's state and who it waits for.
    fn turn(&mut self, request: &AccessRequest) {
        if !self.enabled {
            return;
        }
        const FRAMES: [char; 4] = ['|', '/', '-', '\\'];
        let frame = FRAMES[self.turns % FRAMES.len()];
        self.turns += 1;
        let mut line = format!("{frame} request {} is {}", request.id, request.state);
        if !request.waiting_for.is_empty() {
            line.push_str(&format!(", waiting for {}", request.waiting_for.join("; ")));
        }
        let line: String = line.chars().take(Self::WIDTH).collect();
        let mut stderr = std::io::stderr().lock();
        // The spinner is decoration: a failed write must not fail the command.
        let _ = write!(stderr, "\r\x1b[2K{line}");
        let _ = stderr.flush();
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        if self.enabled && self.turns > 0 {
            let mut stderr = std::io::stderr().lock();
            let _ = write!(stderr, "\r\x1b[2K");
            let _ = stderr.flush();
        }
    }
}

/// Lists requests, following pages to the end.
async fn list(
    client: &mut RequestClient,
    filter: ListAccessRequestsRequest,
    output: OutputFormat,
) -> Result<()> {
    let requests = all_pages(async |page_token| {
        let request = ListAccessRequestsRequest {
            page_token,
            ..filter.clone()
        };
        let page = client.list_access_requests(request).await?.into_inner();
        Ok((page.requests, page.next_page_token))
    })
    .await?;
    match output {
        OutputFormat::Json => print_json(
            &requests
                .iter()
                .map(|request| RequestJson::new(request, false))
                .collect::<Vec<_>>(),
        ),
        OutputFormat::Table if requests.is_empty() => {
            eprintln!("no requests");
            Ok(())
        }
        OutputFormat::Table => {
            let mut rows = table(["ID", "REQUESTER", "STATE", "ITEMS", "CREATED", "EXPIRES"]);
            for request in &requests {
                rows.add_row(cells(request));
            }
            print_table(rows)
        }
    }
}

/// The table row of a request.
fn cells(request: &AccessRequest) -> [String; 6] {
    [
        request.id.clone(),
        request.requester.clone(),
        request.state.clone(),
        items_cell(&request.items),
        timestamp_cell(request.created_at.as_ref(), "-"),
        timestamp_cell(request.expires_at.as_ref(), "-"),
    ]
}

#[cfg(test)]
mod tests {
    use latch_proto::v1::DecisionReason;

    use super::*;

    fn strings(values: &[&str]) -> Vec<String> {
        values.iter().map(|&value| value.to_owned()).collect()
    }

    fn pairs(items: &[AccessItem]) -> Vec<(&str, &str)> {
        items
            .iter()
            .map(|item| (item.resource_id.as_str(), item.permission.as_str()))
            .collect()
    }

    #[test]
    fn items_are_every_permission_on_every_resource() {
        let items = items(&strings(&["db1", "db2"]), &strings(&["read", "write"]));
        assert_eq!(
            pairs(&items),
            [
                ("db1", "read"),
                ("db1", "write"),
                ("db2", "read"),
                ("db2", "write"),
            ]
        );
    }

    #[test]
    fn repeated_items_are_asked_for_once() {
        let items = items(&strings(&["db1", "db1"]), &strings(&["read"]));
        assert_eq!(pairs(&items), [("db1", "read")]);
    }

    #[test]
    fn waiting_ends_on_active_and_on_every_end() {
        for state in [
            "active",
            "denied",
            "failed",
            "cancelled",
            "expired",
            "revoked",
        ] {
            assert!(is_settled(state), "{state}");
        }
        for state in ["pending", "approved", "granting", "revoking"] {
            assert!(!is_settled(state), "{state}");
        }
        assert!(is_settled("some_future_state"));
    }

    #[test]
    fn a_refusal_explains_itself_with_the_engines_reasons() {
        let request = AccessRequest {
            id: "r1".to_owned(),
            state: "denied".to_owned(),
            outcome: "deny".to_owned(),
            reasons: vec![DecisionReason {
                code: "no_flow_covers".to_owned(),
                message: "no flow covers db1:write".to_owned(),
                flow: String::new(),
            }],
            ..Default::default()
        };
        assert_eq!(
            why_not_active(&request),
            [
                "request r1 is denied",
                "  no flow covers db1:write (no_flow_covers)"
            ]
        );
    }

    #[test]
    fn an_approvers_denial_gives_the_approvers_reason() {
        let request = AccessRequest {
            id: "r1".to_owned(),
            state: "denied".to_owned(),
            outcome: "needs_approval".to_owned(),
            end_reason: "not during the freeze".to_owned(),
            reasons: vec![DecisionReason {
                code: "approval_required".to_owned(),
                message: "one approver from sre".to_owned(),
                flow: "prod".to_owned(),
            }],
            ..Default::default()
        };
        assert_eq!(
            why_not_active(&request),
            ["request r1 is denied: not during the freeze"]
        );
    }

    #[test]
    fn request_rows_join_items_and_dash_missing_times() {
        let request = AccessRequest {
            id: "r1".to_owned(),
            requester: "ana@example.com".to_owned(),
            state: "pending".to_owned(),
            items: items(&strings(&["db1"]), &strings(&["read", "write"])),
            created_at: Some(prost_types::Timestamp {
                seconds: 0,
                nanos: 0,
            }),
            ..Default::default()
        };
        assert_eq!(
            cells(&request),
            [
                "r1",
                "ana@example.com",
                "pending",
                "db1:read, db1:write",
                "1970-01-01T00:00:00Z",
                "-"
            ]
        );
    }
}
