//! `latch resources ...`: apply the static inventory, list and show resources.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::{Result, bail};
use latch_proto::v1::{
    ApplyResourcesRequest, ApplyResourcesResponse, GetResourceRequest, GetResourceResponse,
    ListResourcesRequest, Resource,
};
use serde::Serialize;

use super::request_view::{GrantJson, field, section};
use super::{all_pages, read_source};
use crate::args::ResourcesCommand;
use crate::client::{Api, ResourceClient};
use crate::output::{
    OutputFormat, format_table, or_dash, print, print_json, print_table, table, timestamp,
    timestamp_cell,
};

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
            tags,
            search,
        } => {
            let filter = ListResourcesRequest {
                page_size: PAGE_SIZE,
                page_token: String::new(),
                integration: integration.unwrap_or_default(),
                r#type: resource_type.unwrap_or_default(),
                tags: tag_filter(tags)?,
                search: search.unwrap_or_default(),
            };
            list(&mut client, filter, output).await?;
        }
        ResourcesCommand::Show { id } => {
            let response = client
                .get_resource(GetResourceRequest { id })
                .await?
                .into_inner();
            let Some(resource) = &response.resource else {
                bail!("the server's answer holds no resource");
            };
            match output {
                OutputFormat::Json => print_json(&DetailJson::new(resource, &response))?,
                OutputFormat::Table => print(&detail(resource, &response))?,
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

/// One resource with what `latch resources show` adds, as JSON: the resource's own keys, then its
/// ancestors as resources (parent first), its type's permissions and its active grants.
#[derive(Serialize)]
struct DetailJson {
    #[serde(flatten)]
    resource: ResourceJson,
    parent_chain: Vec<ResourceJson>,
    permissions: Vec<String>,
    active_grants: Vec<GrantJson>,
}

impl DetailJson {
    fn new(resource: &Resource, response: &GetResourceResponse) -> Self {
        Self {
            resource: ResourceJson::from(resource),
            parent_chain: response.ancestors.iter().map(ResourceJson::from).collect(),
            permissions: response.permissions.clone(),
            active_grants: response.active_grants.iter().map(GrantJson::from).collect(),
        }
    }
}

/// The `--tag` filters as the request's map. A key given twice with different values is refused:
/// a resource has one value per tag, so nothing could match.
fn tag_filter(tags: Vec<(String, String)>) -> Result<BTreeMap<String, String>> {
    let mut filter = BTreeMap::new();
    for (key, value) in tags {
        if let Some(earlier) = filter.get(&key)
            && *earlier != value
        {
            bail!(
                "--tag {key} is given twice, as {earlier:?} and {value:?}; a resource has one \
                 value per tag"
            );
        }
        filter.insert(key, value);
    }
    Ok(filter)
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
fn tags_text(tags: &BTreeMap<String, String>) -> String {
    tags.iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect::<Vec<_>>()
        .join(",")
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

/// The full view of one resource, for `latch resources show`: its fields, its ancestors parent
/// first (by name where the inventory knows them), its type's permissions and its active grants.
fn detail(resource: &Resource, response: &GetResourceResponse) -> String {
    let mut text = format!("resource {}\n", resource.id);
    let rows = [
        ("integration", Some(resource.integration.clone())),
        ("type", Some(resource.r#type.clone())),
        ("name", Some(resource.name.clone())),
        ("parent", Some(resource.parent.clone())),
        ("tags", Some(tags_text(&resource.tags))),
        ("owners", Some(resource.owners.join(", "))),
        ("source", Some(resource.source.clone())),
        ("first seen", timestamp(resource.first_seen.as_ref())),
        ("last seen", timestamp(resource.last_seen.as_ref())),
        ("permissions", Some(response.permissions.join(", "))),
    ];
    for (label, value) in rows {
        if let Some(value) = value.filter(|value| !value.is_empty()) {
            field(&mut text, label, &value);
        }
    }
    section(
        &mut text,
        "ancestors",
        ancestor_lines(resource, &response.ancestors),
    );
    if response.active_grants.is_empty() {
        field(&mut text, "active grants", "none");
    } else {
        text.push_str("  active grants:\n");
        let mut rows = table(["IDENTITY", "PERMISSION", "STATE", "EXPIRES"]);
        for grant in &response.active_grants {
            rows.add_row([
                grant.identity.clone(),
                grant.permission.clone(),
                grant.state.clone(),
                timestamp_cell(grant.expires_at.as_ref(), "-"),
            ]);
        }
        for line in format_table(rows).lines() {
            let _ = writeln!(text, "    {line}");
        }
    }
    text
}

/// One line per ancestor, parent first: `name (id, type)`, or the id alone for an ancestor the
/// inventory does not know. Follows the resource's own list of ancestor ids, or the server's
/// ancestors when that list is empty.
fn ancestor_lines(resource: &Resource, known: &[Resource]) -> Vec<String> {
    let describe = |ancestor: &Resource| {
        let mut details = vec![ancestor.id.as_str()];
        if !ancestor.r#type.is_empty() {
            details.push(&ancestor.r#type);
        }
        if ancestor.name.is_empty() || ancestor.name == ancestor.id {
            details.join(", ")
        } else {
            format!("{} ({})", ancestor.name, details.join(", "))
        }
    };
    if resource.ancestors.is_empty() {
        return known.iter().map(describe).collect();
    }
    resource
        .ancestors
        .iter()
        .map(|id| {
            known
                .iter()
                .find(|ancestor| ancestor.id == *id)
                .map_or_else(|| id.clone(), describe)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use latch_proto::v1::Grant;

    use super::*;

    fn resource() -> Resource {
        Resource {
            id: "postgres://db1/app".to_owned(),
            integration: "pg".to_owned(),
            r#type: "postgres.database".to_owned(),
            name: "app".to_owned(),
            parent: "postgres://db1".to_owned(),
            ancestors: vec!["postgres://db1".to_owned(), "org".to_owned()],
            tags: BTreeMap::from([
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
            tags: BTreeMap::new(),
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

    fn show_response() -> GetResourceResponse {
        GetResourceResponse {
            resource: Some(resource()),
            ancestors: vec![Resource {
                id: "postgres://db1".to_owned(),
                integration: "pg".to_owned(),
                r#type: "postgres.server".to_owned(),
                name: "db1".to_owned(),
                ..Default::default()
            }],
            permissions: vec!["read".to_owned(), "write".to_owned()],
            active_grants: vec![Grant {
                id: "g1".to_owned(),
                identity: "bo@example.com".to_owned(),
                resource_id: "postgres://db1/app".to_owned(),
                permission: "read".to_owned(),
                state: "active".to_owned(),
                expires_at: Some(prost_types::Timestamp {
                    seconds: 3_600,
                    nanos: 0,
                }),
                ..Default::default()
            }],
        }
    }

    #[test]
    fn detail_shows_ancestors_permissions_and_grants() {
        let text = detail(&resource(), &show_response());
        assert_eq!(
            text,
            "resource postgres://db1/app\n\
             \x20 integration    pg\n\
             \x20 type           postgres.database\n\
             \x20 name           app\n\
             \x20 parent         postgres://db1\n\
             \x20 tags           app=billing,env=prod\n\
             \x20 owners         ana@example.com\n\
             \x20 source         static\n\
             \x20 permissions    read, write\n\
             \x20 ancestors:\n\
             \x20   - db1 (postgres://db1, postgres.server)\n\
             \x20   - org\n\
             \x20 active grants:\n\
             \x20   IDENTITY        PERMISSION  STATE   EXPIRES\n\
             \x20   bo@example.com  read        active  1970-01-01T01:00:00Z\n"
        );
    }

    #[test]
    fn detail_leaves_out_what_is_not_known() {
        let root = Resource {
            owners: vec![],
            parent: String::new(),
            ancestors: vec![],
            ..resource()
        };
        let text = detail(&root, &GetResourceResponse::default());
        assert!(!text.contains("owners"), "{text}");
        assert!(!text.contains("first seen"), "{text}");
        assert!(!text.contains("ancestors"), "{text}");
        assert!(!text.contains("permissions"), "{text}");
        assert!(text.ends_with("  active grants  none\n"), "{text}");
    }

    #[test]
    fn ancestors_fall_back_to_the_servers_list() {
        let bare = Resource {
            ancestors: vec![],
            ..resource()
        };
        assert_eq!(
            ancestor_lines(&bare, &show_response().ancestors),
            ["db1 (postgres://db1, postgres.server)"]
        );
    }

    #[test]
    fn show_json_adds_the_parent_chain_permissions_and_grants() {
        let response = show_response();
        let json =
            serde_json::to_value(DetailJson::new(&resource(), &response)).expect("serialises");
        assert_eq!(json["id"], "postgres://db1/app");
        assert_eq!(
            json["ancestors"],
            serde_json::json!(["postgres://db1", "org"])
        );
        assert_eq!(json["parent_chain"][0]["name"], "db1");
        assert_eq!(json["parent_chain"][0]["type"], "postgres.server");
        assert_eq!(json["permissions"], serde_json::json!(["read", "write"]));
        assert_eq!(json["active_grants"][0]["identity"], "bo@example.com");
        assert_eq!(
            json["active_grants"][0]["expires_at"],
            "1970-01-01T01:00:00Z"
        );
    }

    #[test]
    fn tag_filters_become_a_map_and_conflicts_are_refused() {
        let pair = |key: &str, value: &str| (key.to_owned(), value.to_owned());
        let filter = tag_filter(vec![
            pair("env", "prod"),
            pair("team", ""),
            pair("env", "prod"),
        ])
        .expect("no conflict");
        assert_eq!(
            filter,
            BTreeMap::from([pair("env", "prod"), pair("team", "")])
        );
        let err = tag_filter(vec![pair("env", "prod"), pair("env", "dev")]).expect_err("conflict");
        assert_eq!(
            err.to_string(),
            "--tag env is given twice, as \"prod\" and \"dev\"; a resource has one value per tag"
        );
    }
}
