//! `latch resources ...`: apply the static inventory, list and show resources.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::{Context, Result};
use latch_proto::v1::{
    ApplyResourcesRequest, ApplyResourcesResponse, GetResourceRequest, ListResourcesRequest,
    Resource,
};
use serde::Serialize;

use super::{all_pages, read_source};
use crate::args::ResourcesCommand;
use crate::client::{Api, ResourceClient};
use crate::output::{OutputFormat, print, print_json, print_table, table, timestamp};

/// Resources asked for per page when listing.
const PAGE_SIZE: u32 = 500;

/// Runs a `latch resources` command.
pub async fn run(command: ResourcesCommand, api: &Api, output: OutputFormat) -> Result<ExitCode> {
    let mut client = api.resources();
    match command {
        ResourcesCommand::Apply { file } => {
            let yaml = read_source(&file)?;
            let response = client
                .apply_resources(ApplyResourcesRequest { yaml })
                .await?
                .into_inner();
            match output {
                OutputFormat::Json => print_json(&ApplyJson::from(response))?,
                OutputFormat::Table => print(&apply_report(&response))?,
            }
        }
        ResourcesCommand::List {
            integration,
            resource_type,
        } => {
            let filter = ListResourcesRequest {
                page_size: PAGE_SIZE,
                page_token: String::new(),
                integration: integration.unwrap_or_default(),
                r#type: resource_type.unwrap_or_default(),
            };
            list(&mut client, filter, output).await?;
        }
        ResourcesCommand::Show { id } => {
            let resource = client
                .get_resource(GetResourceRequest { id })
                .await?
                .into_inner()
                .resource
                .context("the server's answer holds no resource")?;
            match output {
                OutputFormat::Json => print_json(&ResourceJson::from(&resource))?,
                OutputFormat::Table => print(&detail(&resource))?,
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What `resources apply` changed, as JSON.
#[derive(Serialize)]
struct ApplyJson {
    added: Vec<String>,
    removed: Vec<String>,
    changed: Vec<String>,
    revoked_requests: Vec<String>,
}

impl From<ApplyResourcesResponse> for ApplyJson {
    fn from(response: ApplyResourcesResponse) -> Self {
        Self {
            added: response.added,
            removed: response.removed,
            changed: response.changed,
            revoked_requests: response.revoked_requests,
        }
    }
}

/// What `resources apply` changed, for people: counts, then one line per resource and per request
/// whose access was revoked.
fn apply_report(response: &ApplyResourcesResponse) -> String {
    let lists = [
        ("+ resource", &response.added),
        ("- resource", &response.removed),
        ("~ resource", &response.changed),
        ("! revoked request", &response.revoked_requests),
    ];
    if lists.iter().all(|(_, ids)| ids.is_empty()) {
        return "resources unchanged\n".to_owned();
    }
    let mut text = format!(
        "resources applied: {} added, {} removed, {} changed",
        response.added.len(),
        response.removed.len(),
        response.changed.len()
    );
    if !response.revoked_requests.is_empty() {
        let _ = write!(
            text,
            "; access revoked on {} request(s) the flows no longer allow",
            response.revoked_requests.len()
        );
    }
    text.push('\n');
    for (label, ids) in lists {
        for id in ids {
            let _ = writeln!(text, "  {label} {id}");
        }
    }
    text
}

/// A resource as JSON.
#[derive(Serialize)]
struct ResourceJson {
    id: String,
    integration: String,
    #[serde(rename = "type")]
    resource_type: String,
    name: String,
    parent: String,
    ancestors: Vec<String>,
    tags: BTreeMap<String, String>,
    owners: Vec<String>,
    source: String,
    first_seen: Option<String>,
    last_seen: Option<String>,
}

impl From<&Resource> for ResourceJson {
    fn from(resource: &Resource) -> Self {
        Self {
            id: resource.id.clone(),
            integration: resource.integration.clone(),
            resource_type: resource.r#type.clone(),
            name: resource.name.clone(),
            parent: resource.parent.clone(),
            ancestors: resource.ancestors.clone(),
            tags: resource
                .tags
                .iter()
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect(),
            owners: resource.owners.clone(),
            source: resource.source.clone(),
            first_seen: timestamp(resource.first_seen.as_ref()),
            last_seen: timestamp(resource.last_seen.as_ref()),
        }
    }
}

/// Lists resources, following pages to the end.
async fn list(
    client: &mut ResourceClient,
    filter: ListResourcesRequest,
    output: OutputFormat,
) -> Result<()> {
    let resources = all_pages(async |page_token| {
        let request = ListResourcesRequest {
            page_token,
            ..filter.clone()
        };
        let page = client.list_resources(request).await?.into_inner();
        Ok((page.resources, page.next_page_token))
    })
    .await?;
    match output {
        OutputFormat::Json => {
            print_json(&resources.iter().map(ResourceJson::from).collect::<Vec<_>>())
        }
        OutputFormat::Table if resources.is_empty() => {
            eprintln!("no resources");
            Ok(())
        }
        OutputFormat::Table => {
            let mut rows = table(["ID", "INTEGRATION", "TYPE", "NAME", "PARENT", "TAGS"]);
            for resource in &resources {
                rows.add_row(cells(resource));
            }
            print_table(rows)
        }
    }
}

/// Tags as `key=value,...`, sorted by key.
fn tags_text(tags: &HashMap<String, String>) -> String {
    let sorted: BTreeMap<_, _> = tags.iter().collect();
    sorted
        .into_iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// `text`, or `-` when it is empty.
fn or_dash(text: &str) -> String {
    if text.is_empty() {
        "-".to_owned()
    } else {
        text.to_owned()
    }
}

/// The table row of a resource.
fn cells(resource: &Resource) -> [String; 6] {
    [
        resource.id.clone(),
        resource.integration.clone(),
        resource.r#type.clone(),
        or_dash(&resource.name),
        or_dash(&resource.parent),
        or_dash(&tags_text(&resource.tags)),
    ]
}

/// The full view of one resource, for `latch resources show`.
fn detail(resource: &Resource) -> String {
    let mut text = format!("resource {}\n", resource.id);
    let rows = [
        ("integration", Some(resource.integration.clone())),
        ("type", Some(resource.r#type.clone())),
        ("name", Some(resource.name.clone())),
        ("parent", Some(resource.parent.clone())),
        ("ancestors", Some(resource.ancestors.join(", "))),
        ("tags", Some(tags_text(&resource.tags))),
        ("owners", Some(resource.owners.join(", "))),
        ("source", Some(resource.source.clone())),
        ("first seen", timestamp(resource.first_seen.as_ref())),
        ("last seen", timestamp(resource.last_seen.as_ref())),
    ];
    for (label, value) in rows {
        if let Some(value) = value.filter(|value| !value.is_empty()) {
            let _ = writeln!(text, "  {label:<13}{value}");
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource() -> Resource {
        Resource {
            id: "postgres://db1/app".to_owned(),
            integration: "pg".to_owned(),
            r#type: "postgres.database".to_owned(),
            name: "app".to_owned(),
            parent: "postgres://db1".to_owned(),
            ancestors: vec!["postgres://db1".to_owned(), "org".to_owned()],
            tags: HashMap::from([
                ("env".to_owned(), "prod".to_owned()),
                ("app".to_owned(), "billing".to_owned()),
            ]),
            owners: vec!["ana@example.com".to_owned()],
            source: "static".to_owned(),
            ..Default::default()
        }
    }

    #[test]
    fn resource_rows_sort_tags_and_dash_blanks() {
        assert_eq!(
            cells(&resource()),
            [
                "postgres://db1/app",
                "pg",
                "postgres.database",
                "app",
                "postgres://db1",
                "app=billing,env=prod"
            ]
        );
        let root = Resource {
            parent: String::new(),
            tags: HashMap::new(),
            ..resource()
        };
        assert_eq!(cells(&root)[4..], ["-", "-"]);
    }

    #[test]
    fn resource_json_names_the_type_field_type() {
        let json = serde_json::to_value(ResourceJson::from(&resource())).expect("serialises");
        assert_eq!(json["type"], "postgres.database");
        assert_eq!(
            json["tags"],
            serde_json::json!({"app": "billing", "env": "prod"})
        );
        assert_eq!(json["first_seen"], serde_json::Value::Null);
    }

    #[test]
    fn apply_report_lists_every_change() {
        let response = ApplyResourcesResponse {
            added: vec!["a".to_owned()],
            removed: vec!["b".to_owned()],
            changed: vec![],
            revoked_requests: vec!["r1".to_owned()],
        };
        assert_eq!(
            apply_report(&response),
            "resources applied: 1 added, 1 removed, 0 changed; \
             access revoked on 1 request(s) the flows no longer allow\n\
             \x20 + resource a\n\
             \x20 - resource b\n\
             \x20 ! revoked request r1\n"
        );
        assert_eq!(
            apply_report(&ApplyResourcesResponse::default()),
            "resources unchanged\n"
        );
    }

    #[test]
    fn detail_leaves_out_what_is_not_known() {
        let text = detail(&Resource {
            owners: vec![],
            ..resource()
        });
        assert!(
            text.contains("  ancestors    postgres://db1, org\n"),
            "{text}"
        );
        assert!(!text.contains("owners"), "{text}");
        assert!(!text.contains("first seen"), "{text}");
    }
}
