//! `latch integrations ...`: list and show integrations, set their owners, ask for syncs, list
//! their groups.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use latch_proto::v1::{
    GetIntegrationRequest, Integration, IntegrationGroup, IntegrationIdentity,
    ListIntegrationGroupsRequest, ListIntegrationsRequest, SetIntegrationOwnersRequest,
    SyncIntegrationRequest,
};
use serde::Serialize;

use super::all_pages;
use super::request_view::field;
use crate::args::{IntegrationsCommand, SetOwnersArgs};
use crate::client::{Api, IntegrationClient};
use crate::output::{
    OutputFormat, or_dash, print, print_json, print_table, table, timestamp, timestamp_cell,
};

/// The most characters of the last error a table cell shows; `show` prints it whole.
const ERROR_CELL_CHARS: usize = 60;

/// Groups asked for per page when listing an integration's groups.
const GROUPS_PAGE_SIZE: u32 = 100;

/// Runs a `latch integrations` command.
pub async fn run(
    command: IntegrationsCommand,
    api: &Api,
    output: OutputFormat,
) -> Result<ExitCode> {
    let mut client = api.integrations();
    match command {
        IntegrationsCommand::List => list(&mut client, output).await?,
        IntegrationsCommand::Show { name } => {
            let integration = client
                .get_integration(GetIntegrationRequest { name })
                .await?
                .into_inner()
                .integration
                .context("the server's answer holds no integration")?;
            match output {
                OutputFormat::Json => print_json(&IntegrationJson::from(&integration))?,
                OutputFormat::Table => print(&detail(&integration))?,
            }
        }
        IntegrationsCommand::SetOwners(args) => set_owners(&mut client, args, output).await?,
        IntegrationsCommand::Sync { name } => sync(&mut client, name, output).await?,
        IntegrationsCommand::Groups { name } => groups(&mut client, name, output).await?,
    }
    Ok(ExitCode::SUCCESS)
}

/// An integration as JSON.
#[derive(Serialize)]
struct IntegrationJson {
    name: String,
    kind: String,
    state: String,
    connectors: Vec<String>,
    capabilities: Vec<String>,
    last_sync_at: Option<String>,
    resource_count: u64,
    identity_count: u64,
    linked_identity_count: u64,
    group_count: u64,
    active_grant_count: u64,
    last_error: String,
    owner_users: Vec<String>,
    owner_groups: Vec<String>,
}

impl From<&Integration> for IntegrationJson {
    fn from(integration: &Integration) -> Self {
        Self {
            name: integration.name.clone(),
            kind: integration.kind.clone(),
            state: integration.state.clone(),
            connectors: integration.connectors.clone(),
            capabilities: integration.capabilities.clone(),
            last_sync_at: timestamp(integration.last_sync_at.as_ref()),
            resource_count: integration.resource_count,
            identity_count: integration.identity_count,
            linked_identity_count: integration.linked_identity_count,
            group_count: integration.group_count,
            active_grant_count: integration.active_grant_count,
            last_error: integration.last_error.clone(),
            owner_users: integration.owner_users.clone(),
            owner_groups: integration.owner_groups.clone(),
        }
    }
}

/// Lists integrations.
async fn list(client: &mut IntegrationClient, output: OutputFormat) -> Result<()> {
    let integrations = client
        .list_integrations(ListIntegrationsRequest {})
        .await?
        .into_inner()
        .integrations;
    match output {
        OutputFormat::Json => print_json(
            &integrations
                .iter()
                .map(IntegrationJson::from)
                .collect::<Vec<_>>(),
        ),
        OutputFormat::Table if integrations.is_empty() => {
            eprintln!("no integrations; they appear when a connector announces them");
            Ok(())
        }
        OutputFormat::Table => {
            let mut rows = table([
                "NAME",
                "KIND",
                "STATE",
                "CONNECTORS",
                "LAST SYNC",
                "RESOURCES",
                "IDENTITIES",
                "ACTIVE GRANTS",
                "LAST ERROR",
            ]);
            for integration in &integrations {
                rows.add_row(cells(integration));
            }
            print_table(rows)
        }
    }
}

/// The table row of an integration. Identities read `linked/total`.
fn cells(integration: &Integration) -> [String; 9] {
    [
        integration.name.clone(),
        or_dash(&integration.kind),
        integration.state.clone(),
        or_dash(&integration.connectors.join(",")),
        timestamp_cell(integration.last_sync_at.as_ref(), "never"),
        integration.resource_count.to_string(),
        format!(
            "{}/{}",
            integration.linked_identity_count, integration.identity_count
        ),
        integration.active_grant_count.to_string(),
        or_dash(&error_cell(&integration.last_error)),
    ]
}

/// The first line of an error, cut to [`ERROR_CELL_CHARS`] characters with `...` when longer.
fn error_cell(error: &str) -> String {
    let mut lines = error.trim().lines();
    let first = lines.next().unwrap_or_default();
    let cut = first.chars().count() > ERROR_CELL_CHARS || lines.next().is_some();
    let mut cell: String = first.chars().take(ERROR_CELL_CHARS).collect();
    if cut {
        cell.push_str("...");
    }
    cell
}

/// `items` joined by commas, or `none`.
fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join(", ")
    }
}

/// The full view of one integration, for `latch integrations show`.
fn detail(integration: &Integration) -> String {
    let mut text = format!("integration {}\n", integration.name);
    field(&mut text, "kind", &or_dash(&integration.kind));
    field(&mut text, "state", &integration.state);
    field(
        &mut text,
        "connectors",
        &list_or_none(&integration.connectors),
    );
    field(
        &mut text,
        "capabilities",
        &list_or_none(&integration.capabilities),
    );
    field(
        &mut text,
        "last sync",
        &timestamp_cell(integration.last_sync_at.as_ref(), "never"),
    );
    field(
        &mut text,
        "resources",
        &integration.resource_count.to_string(),
    );
    field(
        &mut text,
        "identities",
        &format!(
            "{} ({} linked to directory users)",
            integration.identity_count, integration.linked_identity_count
        ),
    );
    field(&mut text, "groups", &integration.group_count.to_string());
    field(
        &mut text,
        "active grants",
        &integration.active_grant_count.to_string(),
    );
    field(
        &mut text,
        "owner users",
        &list_or_none(&integration.owner_users),
    );
    field(
        &mut text,
        "owner groups",
        &list_or_none(&integration.owner_groups),
    );
    let error = integration.last_error.trim();
    if !error.is_empty() {
        // Continuation lines line up under the first.
        field(
            &mut text,
            "last error",
            &error.replace('\n', "\n                 "),
        );
    }
    text
}

/// Replaces an integration's owners and prints them.
async fn set_owners(
    client: &mut IntegrationClient,
    args: SetOwnersArgs,
    output: OutputFormat,
) -> Result<()> {
    let SetOwnersArgs {
        name,
        users,
        groups,
        clear,
    } = args;
    // Clap makes sure of this; an empty request would clear the owners by accident.
    if !clear && users.is_empty() && groups.is_empty() {
        bail!("give --user or --group, or --clear to remove every owner");
    }
    let integration = client
        .set_integration_owners(SetIntegrationOwnersRequest {
            name: name.clone(),
            users,
            groups,
        })
        .await?
        .into_inner()
        .integration
        .unwrap_or_else(|| Integration {
            name,
            ..Default::default()
        });
    match output {
        OutputFormat::Json => print_json(&IntegrationJson::from(&integration)),
        OutputFormat::Table => print(&owners_report(&integration)),
    }
}

/// What `set-owners` prints: the integration's owners now.
fn owners_report(integration: &Integration) -> String {
    if integration.owner_users.is_empty() && integration.owner_groups.is_empty() {
        return format!("integration {} has no owners now\n", integration.name);
    }
    let mut text = format!("owners of integration {} set\n", integration.name);
    field(
        &mut text,
        "owner users",
        &list_or_none(&integration.owner_users),
    );
    field(
        &mut text,
        "owner groups",
        &list_or_none(&integration.owner_groups),
    );
    text
}

/// A group member as JSON.
#[derive(Serialize)]
struct MemberJson {
    external_id: String,
    email: String,
    display_name: String,
    linked: bool,
}

/// A group with its members as JSON.
#[derive(Serialize)]
struct GroupJson {
    external_id: String,
    display_name: String,
    members: Vec<MemberJson>,
}

impl From<&IntegrationGroup> for GroupJson {
    fn from(group: &IntegrationGroup) -> Self {
        Self {
            external_id: group.external_id.clone(),
            display_name: group.display_name.clone(),
            members: group
                .members
                .iter()
                .map(|member| MemberJson {
                    external_id: member.external_id.clone(),
                    email: member.email.clone(),
                    display_name: member.display_name.clone(),
                    linked: member.linked,
                })
                .collect(),
        }
    }
}

/// Lists an integration's groups with their members, following pages to the end.
async fn groups(client: &mut IntegrationClient, name: String, output: OutputFormat) -> Result<()> {
    let groups = all_pages(async |page_token| {
        let request = ListIntegrationGroupsRequest {
            name: name.clone(),
            page_size: GROUPS_PAGE_SIZE,
            page_token,
        };
        let page = client.list_integration_groups(request).await?.into_inner();
        Ok((page.groups, page.next_page_token))
    })
    .await?;
    match output {
        OutputFormat::Json => print_json(&groups.iter().map(GroupJson::from).collect::<Vec<_>>()),
        OutputFormat::Table if groups.is_empty() => {
            eprintln!(
                "integration {name} has no groups; they appear when a sync of a connector that \
                 reports groups completes"
            );
            Ok(())
        }
        OutputFormat::Table => {
            let mut rows = table(["GROUP", "GROUP ID", "MEMBER", "EMAIL", "LINKED"]);
            for row in group_rows(&groups) {
                rows.add_row(row);
            }
            print_table(rows)
        }
    }
}

/// The table rows of groups: one per member, and one for a group without members.
fn group_rows(groups: &[IntegrationGroup]) -> Vec<[String; 5]> {
    let mut rows = Vec::new();
    for group in groups {
        let name = or_dash(&group.display_name);
        if group.members.is_empty() {
            rows.push([
                name,
                group.external_id.clone(),
                "-".into(),
                "-".into(),
                "-".into(),
            ]);
            continue;
        }
        for member in &group.members {
            rows.push([
                name.clone(),
                group.external_id.clone(),
                member_name(member),
                or_dash(&member.email),
                if member.linked { "yes" } else { "no" }.to_owned(),
            ]);
        }
    }
    rows
}

/// A member's display name, or its id when it has none.
fn member_name(member: &IntegrationIdentity) -> String {
    if member.display_name.trim().is_empty() {
        member.external_id.clone()
    } else {
        member.display_name.clone()
    }
}

/// The answer to `sync`, as JSON.
#[derive(Serialize)]
struct SyncJson {
    integration: String,
    command_id: String,
}

/// Asks for a sync. In table output only the command id goes to standard output.
async fn sync(client: &mut IntegrationClient, name: String, output: OutputFormat) -> Result<()> {
    let command_id = client
        .sync_integration(SyncIntegrationRequest { name: name.clone() })
        .await?
        .into_inner()
        .command_id;
    match output {
        OutputFormat::Json => print_json(&SyncJson {
            integration: name,
            command_id,
        }),
        OutputFormat::Table => {
            print(&format!("{command_id}\n"))?;
            eprintln!(
                "asked integration {name} for a full sync; its last sync time moves when it \
                 completes (`latch integrations show {name}`)"
            );
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn integration() -> Integration {
        Integration {
            name: "aws-prod".to_owned(),
            kind: "aws".to_owned(),
            state: "connected".to_owned(),
            connectors: vec!["edge-1".to_owned(), "edge-2".to_owned()],
            capabilities: vec!["sync".to_owned(), "grant".to_owned()],
            last_sync_at: Some(prost_types::Timestamp {
                seconds: 3_600,
                nanos: 0,
            }),
            resource_count: 120,
            identity_count: 52,
            linked_identity_count: 40,
            last_error: String::new(),
            owner_users: vec!["ana@example.com".to_owned()],
            owner_groups: vec![],
            active_grant_count: 3,
            group_count: 4,
        }
    }

    #[test]
    fn integration_rows_count_linked_of_total_identities() {
        assert_eq!(
            cells(&integration()),
            [
                "aws-prod",
                "aws",
                "connected",
                "edge-1,edge-2",
                "1970-01-01T01:00:00Z",
                "120",
                "40/52",
                "3",
                "-"
            ]
        );
        let never = Integration {
            name: "pg".to_owned(),
            state: "disconnected".to_owned(),
            last_error: "connection refused".to_owned(),
            ..Default::default()
        };
        assert_eq!(
            cells(&never),
            [
                "pg",
                "-",
                "disconnected",
                "-",
                "never",
                "0",
                "0/0",
                "0",
                "connection refused"
            ]
        );
    }

    #[test]
    fn long_or_multi_line_errors_are_cut_in_the_table() {
        assert_eq!(error_cell(""), "");
        assert_eq!(error_cell("timeout\nat step 3"), "timeout...");
        let long = "x".repeat(ERROR_CELL_CHARS + 5);
        assert_eq!(
            error_cell(&long),
            format!("{}...", "x".repeat(ERROR_CELL_CHARS))
        );
        assert_eq!(
            error_cell(&"é".repeat(ERROR_CELL_CHARS)),
            "é".repeat(ERROR_CELL_CHARS)
        );
    }

    #[test]
    fn detail_shows_owners_and_capabilities() {
        let text = detail(&Integration {
            last_error: "denied\nby policy".to_owned(),
            ..integration()
        });
        assert_eq!(
            text,
            "integration aws-prod\n\
             \x20 kind           aws\n\
             \x20 state          connected\n\
             \x20 connectors     edge-1, edge-2\n\
             \x20 capabilities   sync, grant\n\
             \x20 last sync      1970-01-01T01:00:00Z\n\
             \x20 resources      120\n\
             \x20 identities     52 (40 linked to directory users)\n\
             \x20 groups         4\n\
             \x20 active grants  3\n\
             \x20 owner users    ana@example.com\n\
             \x20 owner groups   none\n\
             \x20 last error     denied\n\
             \x20                by policy\n"
        );
    }

    #[test]
    fn integration_json_has_the_documented_keys() {
        let json = serde_json::to_value(IntegrationJson::from(&integration())).expect("serialises");
        assert_eq!(json["name"], "aws-prod");
        assert_eq!(json["capabilities"], serde_json::json!(["sync", "grant"]));
        assert_eq!(json["owner_users"], serde_json::json!(["ana@example.com"]));
        assert_eq!(json["owner_groups"], serde_json::json!([]));
        assert_eq!(json["linked_identity_count"], 40);
        assert_eq!(json["group_count"], 4);
        assert_eq!(json["last_sync_at"], "1970-01-01T01:00:00Z");
    }

    #[test]
    fn owners_report_says_when_there_are_none() {
        assert_eq!(
            owners_report(&Integration {
                owner_users: vec![],
                ..integration()
            }),
            "integration aws-prod has no owners now\n"
        );
        assert_eq!(
            owners_report(&integration()),
            "owners of integration aws-prod set\n\
             \x20 owner users    ana@example.com\n\
             \x20 owner groups   none\n"
        );
    }

    #[test]
    fn group_rows_list_each_member_and_empty_groups() {
        let member = |id: &str, email: &str, name: &str, linked: bool| IntegrationIdentity {
            external_id: id.to_owned(),
            email: email.to_owned(),
            display_name: name.to_owned(),
            linked,
        };
        let groups = [
            IntegrationGroup {
                external_id: "g-1".to_owned(),
                display_name: "Engineering".to_owned(),
                members: vec![
                    member("u-1", "ana@example.com", "Ana", true),
                    member("u-2", "", "", false),
                ],
            },
            IntegrationGroup {
                external_id: "g-2".to_owned(),
                display_name: "Empty".to_owned(),
                members: vec![],
            },
        ];
        assert_eq!(
            group_rows(&groups),
            [
                ["Engineering", "g-1", "Ana", "ana@example.com", "yes"],
                ["Engineering", "g-1", "u-2", "-", "no"],
                ["Empty", "g-2", "-", "-", "-"],
            ]
        );
        let json = serde_json::to_value(GroupJson::from(&groups[0])).expect("serialises");
        assert_eq!(json["members"][0]["linked"], true);
        assert_eq!(json["members"][1]["external_id"], "u-2");
    }
}
