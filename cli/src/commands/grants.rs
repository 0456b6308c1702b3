//! `latch grants ...`: list who holds which permission on which resource, and fetch the login a
//! grant made for you.

use std::process::ExitCode;

use anyhow::{Result, bail};
use latch_proto::v1::{GetAccessCredentialsRequest, Grant, ListGrantsRequest};
use serde::Serialize;

use super::all_pages;
use super::request_view::GrantJson;
use crate::args::GrantsCommand;
use crate::client::Api;
use crate::output::{OutputFormat, print_json, print_table, table, timestamp_cell};

/// Grants asked for per page when listing.
const PAGE_SIZE: u32 = 500;

/// Runs a `latch grants` command.
pub async fn run(command: GrantsCommand, api: &Api, output: OutputFormat) -> Result<ExitCode> {
    match command {
        GrantsCommand::List { active, user } => list(api, active, user, output).await,
        GrantsCommand::Credentials { request_id } => credentials(api, &request_id).await,
    }
}

/// A login as `latch grants credentials` prints it.
#[derive(Debug, Serialize)]
struct CredentialsJson {
    username: String,
    password: String,
    host: String,
    port: u32,
    database: String,
    /// Which grant, when the request has several.
    #[serde(skip_serializing_if = "Option::is_none")]
    resource_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    permission: Option<String>,
}

/// Prints the request's credentials as JSON whatever the output format: they are for `jq` and
/// connection strings, not for reading.
async fn credentials(api: &Api, request_id: &str) -> Result<ExitCode> {
    let found = api
        .requests()
        .get_access_credentials(GetAccessCredentialsRequest {
            id: request_id.to_string(),
        })
        .await?
        .into_inner()
        .credentials;
    let several = found.len() > 1;
    let mut logins: Vec<CredentialsJson> = found
        .into_iter()
        .map(|c| CredentialsJson {
            username: c.username,
            password: c.password,
            host: c.host,
            port: c.port,
            database: c.database,
            resource_id: several.then_some(c.resource_id),
            permission: several.then_some(c.permission),
        })
        .collect();
    match logins.len() {
        0 => bail!(
            "request {request_id} has no credentials: its access is not active (yet), or it uses \
             your own account"
        ),
        1 => print_json(&logins.remove(0))?,
        _ => print_json(&logins)?,
    }
    Ok(ExitCode::SUCCESS)
}

async fn list(
    api: &Api,
    active: bool,
    user: Option<String>,
    output: OutputFormat,
) -> Result<ExitCode> {
    let mut client = api.requests();
    let user = user.unwrap_or_default();
    let grants = all_pages(async |page_token| {
        let request = ListGrantsRequest {
            page_size: PAGE_SIZE,
            page_token,
            active,
            user: user.clone(),
        };
        let page = client.list_grants(request).await?.into_inner();
        Ok((page.grants, page.next_page_token))
    })
    .await?;
    match output {
        OutputFormat::Json => {
            print_json(&grants.iter().map(GrantJson::from).collect::<Vec<_>>())?;
        }
        OutputFormat::Table if grants.is_empty() => {
            eprintln!("no {}grants", if active { "active " } else { "" });
        }
        OutputFormat::Table => {
            let mut rows = table([
                "ID",
                "IDENTITY",
                "RESOURCE",
                "PERMISSION",
                "STATE",
                "EXPIRES",
                "REQUEST",
            ]);
            for grant in &grants {
                rows.add_row(cells(grant));
            }
            print_table(rows)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The table row of a grant. A grant of an automatic flow has no request and may have no expiry.
fn cells(grant: &Grant) -> [String; 7] {
    let or_dash = |text: &str| {
        if text.is_empty() {
            "-".to_owned()
        } else {
            text.to_owned()
        }
    };
    [
        grant.id.clone(),
        grant.identity.clone(),
        grant.resource_id.clone(),
        grant.permission.clone(),
        grant.state.clone(),
        timestamp_cell(grant.expires_at.as_ref(), "-"),
        or_dash(&grant.request_id),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_rows_dash_a_missing_request_and_expiry() {
        let grant = Grant {
            id: "g1".to_owned(),
            identity: "ana@example.com".to_owned(),
            resource_id: "db1".to_owned(),
            permission: "read".to_owned(),
            state: "active".to_owned(),
            ..Default::default()
        };
        assert_eq!(
            cells(&grant),
            ["g1", "ana@example.com", "db1", "read", "active", "-", "-"]
        );
        let grant = Grant {
            request_id: "r1".to_owned(),
            expires_at: Some(prost_types::Timestamp {
                seconds: 3_600,
                nanos: 0,
            }),
            ..grant
        };
        assert_eq!(cells(&grant)[5..], ["1970-01-01T01:00:00Z", "r1"]);
    }
}
