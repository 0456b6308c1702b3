//! `latch directory ...`: apply the static directory and show users.

use std::process::ExitCode;

use anyhow::Result;
use latch_proto::v1::{ApplyDirectoryRequest, DirectoryUser, GetUserRequest, ListUsersRequest};
use serde::Serialize;

use crate::args::DirectoryCommand;
use crate::client::{Api, DirectoryClient};
use crate::output::{OutputFormat, print, print_json, print_table, table};

use super::read_source;

/// Users asked for per page when listing.
const PAGE_SIZE: u32 = 500;

/// Runs a `latch directory` command.
pub async fn run(command: DirectoryCommand, api: &Api, output: OutputFormat) -> Result<ExitCode> {
    let mut client = api.directory();
    match command {
        DirectoryCommand::Apply { file } => apply(&mut client, read_source(&file)?, output).await?,
        DirectoryCommand::Show { email: Some(email) } => {
            let user = client
                .get_user(GetUserRequest { email })
                .await?
                .into_inner()
                .user
                .unwrap_or_default();
            show_users(&[user], output)?;
        }
        DirectoryCommand::Show { email: None } => {
            show_users(&list_all(&mut client).await?, output)?
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Serialize)]
struct ApplyJson {
    changed: bool,
    summary: String,
    users_added: Vec<String>,
    users_removed: Vec<String>,
    users_changed: Vec<String>,
    groups_added: Vec<String>,
    groups_removed: Vec<String>,
    groups_changed: Vec<String>,
    schedules_added: Vec<String>,
    schedules_removed: Vec<String>,
    schedules_changed: Vec<String>,
}

async fn apply(client: &mut DirectoryClient, yaml: String, output: OutputFormat) -> Result<()> {
    let response = client
        .apply_directory(ApplyDirectoryRequest { yaml })
        .await?
        .into_inner();
    let c = response.changes.unwrap_or_default();
    match output {
        OutputFormat::Json => print_json(&ApplyJson {
            changed: response.changed,
            summary: response.summary,
            users_added: c.users_added,
            users_removed: c.users_removed,
            users_changed: c.users_changed,
            groups_added: c.groups_added,
            groups_removed: c.groups_removed,
            groups_changed: c.groups_changed,
            schedules_added: c.schedules_added,
            schedules_removed: c.schedules_removed,
            schedules_changed: c.schedules_changed,
        }),
        OutputFormat::Table if !response.changed => print("directory unchanged\n"),
        OutputFormat::Table => {
            let mut text = format!("directory applied: {}\n", response.summary);
            for (label, names) in [
                ("+ user", &c.users_added),
                ("- user", &c.users_removed),
                ("~ user", &c.users_changed),
                ("+ group", &c.groups_added),
                ("- group", &c.groups_removed),
                ("~ group", &c.groups_changed),
                ("+ schedule", &c.schedules_added),
                ("- schedule", &c.schedules_removed),
                ("~ schedule", &c.schedules_changed),
            ] {
                for name in names {
                    text.push_str(&format!("  {label} {name}\n"));
                }
            }
            print(&text)
        }
    }
}

async fn list_all(client: &mut DirectoryClient) -> Result<Vec<DirectoryUser>> {
    let mut users = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_users(ListUsersRequest {
                page_size: PAGE_SIZE,
                page_token,
            })
            .await?
            .into_inner();
        users.extend(page.users);
        if page.next_page_token.is_empty() {
            return Ok(users);
        }
        page_token = page.next_page_token;
    }
}

#[derive(Serialize)]
struct UserJson<'a> {
    email: &'a str,
    name: &'a str,
    manager: &'a str,
    groups: &'a [String],
    all_groups: &'a [String],
    time_zone: &'a str,
    on_call_now: &'a [String],
}

fn show_users(users: &[DirectoryUser], output: OutputFormat) -> Result<()> {
    match output {
        OutputFormat::Json => {
            let rows: Vec<UserJson<'_>> = users
                .iter()
                .map(|u| UserJson {
                    email: &u.email,
                    name: &u.name,
                    manager: &u.manager,
                    groups: &u.groups,
                    all_groups: &u.all_groups,
                    time_zone: &u.time_zone,
                    on_call_now: &u.on_call_now,
                })
                .collect();
            print_json(&rows)
        }
        OutputFormat::Table => {
            let mut rows = table([
                "EMAIL",
                "NAME",
                "MANAGER",
                "GROUPS (ALL)",
                "TIME ZONE",
                "ON CALL NOW",
            ]);
            for u in users {
                let dash = |s: &str| {
                    if s.is_empty() {
                        "-".to_string()
                    } else {
                        s.to_string()
                    }
                };
                rows.add_row([
                    u.email.clone(),
                    dash(&u.name),
                    dash(&u.manager),
                    dash(&u.all_groups.join(", ")),
                    dash(&u.time_zone),
                    dash(&u.on_call_now.join(", ")),
                ]);
            }
            print_table(rows)
        }
    }
}
