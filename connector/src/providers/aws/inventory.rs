//! The `aws` inventory: the organization's hierarchy, Identity Center permission sets, tagged
//! resources and IAM roles, then the Identity Store's users, groups and memberships.
//!
//! **Hierarchy.** `aws.organization` (id = the organization's ARN) is the root; the organization
//! root's OUs (`aws.ou`, id = ARN) and accounts (`aws.account`, id = the 12-digit account id)
//! hang below it, walked breadth first through ListOrganizationalUnitsForParent and
//! ListAccountsForParent. Tags come from ListTagsForResource, one call per OU and account (the
//! organization root's tags go on `aws.organization`). When Organizations is not in use or not
//! visible to the connector's credentials, the caller's account alone is reported
//! (single-account mode).
//!
//! **Permissions.** The permissions of `aws.account` are the Identity Center permission set
//! names. Every other type's permissions are its policy templates' names ([`AwsSettings`]).
//!
//! **Resources.** The Resource Groups Tagging API returns every tagged resource of the account
//! and region, whatever its type; the type is read from the ARN (`aws.<service>.<type>`) and the
//! parent is the resource's account. IAM roles are listed through IAM, because the tagging API
//! does not index them everywhere (moto does not); a role the tagging API returned is not
//! reported twice. ListRoles carries no tags, so each role's come from ListRoleTags, one call
//! (or more, paged) per role. Service-linked roles are left out: people cannot assume them.
//!
//! **Pacing.** Every Organizations, tagging and IAM call here goes through that service's
//! [`Pacer`](super::pacing::Pacer), one page at a time, retried with backoff on throttling.
//!
//! **Identities.** Identity Store users, linked to Latch users by their primary email, with the
//! Identity Store's groups and their memberships ([`identity_store`]).
//!
//! **Memory.** Everything goes to the sink in pages of at most [`PAGE`] resources as it is
//! found; the only things kept for the whole sync are the set of role ARNs the tagging API
//! returned and the Identity Store's group ids.

use std::collections::{BTreeMap, HashSet, VecDeque};

use aws_sdk_organizations::error::ProvideErrorMetadata;

use super::assignments::IdentityCenter;
use super::clients::Clients;
use super::errors::classify;
use super::identity_store;
use super::pacing::Cursor;
use super::settings::{ACCOUNT_TYPE, AwsSettings};
use crate::provider::{ProviderError, ResourceTypePermissions, SyncSink, SyncedResource};

pub(crate) const ORGANIZATION_TYPE: &str = "aws.organization";
pub(crate) const OU_TYPE: &str = "aws.ou";
pub(crate) const ROLE_TYPE: &str = "aws.iam.role";

/// Resources (and identities, groups, memberships) per page pushed to the sink.
pub(crate) const PAGE: usize = 1000;
/// Items per request to the tagging API (its maximum).
const TAGGING_PAGE: i32 = 100;
/// Tags per ListRoleTags request. A role has at most 50 of its own tags, so one page in
/// production; tests ask for two at a time so that moto's paging is exercised.
const ROLE_TAGS_PAGE: i32 = if cfg!(test) { 2 } else { 100 };

/// Buffers resources into pages and announces each type's permissions with the first page
/// that holds the type.
struct Pages<'a> {
    sink: &'a mut dyn SyncSink,
    settings: &'a AwsSettings,
    account_permissions: Vec<String>,
    buffer: Vec<SyncedResource>,
    announced: HashSet<String>,
}

impl<'a> Pages<'a> {
    async fn push(&mut self, resource: SyncedResource) -> Result<(), ProviderError> {
        self.buffer.push(resource);
        if self.buffer.len() >= PAGE {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), ProviderError> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let mut permissions = Vec::new();
        for resource in &self.buffer {
            let kind = resource.resource_type.as_str();
            if kind == ORGANIZATION_TYPE || kind == OU_TYPE || self.announced.contains(kind) {
                continue;
            }
            self.announced.insert(kind.to_string());
            let names = if kind == ACCOUNT_TYPE {
                self.account_permissions.clone()
            } else {
                self.settings.permissions_for(kind).into_keys().collect()
            };
            permissions.push(ResourceTypePermissions {
                resource_type: kind.to_string(),
                permissions: names,
            });
        }
        let page = std::mem::take(&mut self.buffer);
        self.sink.resources(page, permissions).await
    }
}

/// A full sync of one integration into `sink`.
pub(crate) async fn sync(
    clients: &Clients,
    identity_center: &IdentityCenter,
    settings: &AwsSettings,
    sink: &mut dyn SyncSink,
) -> Result<(), ProviderError> {
    let caller = clients
        .sts
        .get_caller_identity()
        .send()
        .await
        .map_err(|err| classify(err, "reading the connector's own identity (sts)"))?;
    let own_account = caller.account().unwrap_or_default().to_string();

    // Identity Center first: the permission set names are the permissions of the accounts.
    let instance = identity_center.instance().await?;
    let account_permissions = match &instance {
        Some(instance) => identity_center
            .permission_sets(instance)
            .await?
            .into_iter()
            .map(|(name, _)| name)
            .collect(),
        None => Vec::new(),
    };

    let mut pages = Pages {
        sink,
        settings,
        account_permissions,
        buffer: Vec::new(),
        announced: HashSet::new(),
    };
    if !organization(clients, &mut pages).await? {
        single_account(clients, &own_account, &mut pages).await?;
    }
    let tagged_roles = tagged_resources(clients, &own_account, &mut pages).await?;
    roles(clients, &tagged_roles, &mut pages).await?;
    pages.flush().await?;

    if let Some(instance) = instance {
        identity_store::sync(clients, &instance.identity_store_id, pages.sink).await?;
    }
    Ok(())
}

/// The organization's hierarchy; `false` when Organizations is not in use or not visible.
async fn organization(clients: &Clients, pages: &mut Pages<'_>) -> Result<bool, ProviderError> {
    let pacer = &clients.pacing.organizations;
    let organizations = &clients.organizations;
    let org = pacer
        .call(|| async move {
            match organizations.describe_organization().send().await {
                Ok(out) => Ok(out.organization().cloned()),
                Err(err)
                    if matches!(
                        err.code(),
                        Some("AWSOrganizationsNotInUseException" | "AccessDeniedException")
                    ) =>
                {
                    tracing::info!(
                        code = err.code().unwrap_or_default(),
                        "AWS Organizations is not visible; reporting the connector's account alone"
                    );
                    Ok(None)
                }
                Err(err) => Err(classify(err, "describing the organization")),
            }
        })
        .await?;
    let Some(org) = org else {
        return Ok(false);
    };
    let org_arn = org.arn().unwrap_or_default().to_string();
    let org_id = org.id().unwrap_or_default().to_string();

    let mut roots = Vec::new();
    let mut cursor = Cursor::default();
    while !cursor.finished() {
        let request = organizations.list_roots().set_next_token(cursor.token());
        let page = pacer
            .send("listing the organization's roots", || {
                request.clone().send()
            })
            .await?;
        cursor.advance(page.next_token());
        roots.extend(
            page.roots()
                .iter()
                .filter_map(|r| r.id().map(str::to_string)),
        );
    }
    let mut root_tags = BTreeMap::new();
    for root in &roots {
        root_tags.extend(tags(clients, root).await?);
    }
    pages
        .push(SyncedResource {
            id: org_arn.clone(),
            resource_type: ORGANIZATION_TYPE.into(),
            name: org_id,
            parent: None,
            tags: root_tags,
            owners: Vec::new(),
        })
        .await?;

    // (Organizations id of a root or OU, the resource id its children hang below)
    let mut queue: VecDeque<(String, String)> = roots
        .into_iter()
        .map(|root| (root, org_arn.clone()))
        .collect();
    while let Some((parent, parent_resource)) = queue.pop_front() {
        let what = format!("listing the OUs of {parent}");
        let mut cursor = Cursor::default();
        while !cursor.finished() {
            let request = organizations
                .list_organizational_units_for_parent()
                .parent_id(&parent)
                .set_next_token(cursor.token());
            let page = pacer.send(&what, || request.clone().send()).await?;
            cursor.advance(page.next_token());
            for ou in page.organizational_units() {
                let (Some(id), Some(arn)) = (ou.id(), ou.arn()) else {
                    continue;
                };
                pages
                    .push(SyncedResource {
                        id: arn.to_string(),
                        resource_type: OU_TYPE.into(),
                        name: ou.name().unwrap_or(id).to_string(),
                        parent: Some(parent_resource.clone()),
                        tags: tags(clients, id).await?,
                        owners: Vec::new(),
                    })
                    .await?;
                queue.push_back((id.to_string(), arn.to_string()));
            }
        }
        let what = format!("listing the accounts of {parent}");
        let mut cursor = Cursor::default();
        while !cursor.finished() {
            let request = organizations
                .list_accounts_for_parent()
                .parent_id(&parent)
                .set_next_token(cursor.token());
            let page = pacer.send(&what, || request.clone().send()).await?;
            cursor.advance(page.next_token());
            for account in page.accounts() {
                let Some(id) = account.id() else { continue };
                pages
                    .push(SyncedResource {
                        id: id.to_string(),
                        resource_type: ACCOUNT_TYPE.into(),
                        name: account.name().unwrap_or(id).to_string(),
                        parent: Some(parent_resource.clone()),
                        tags: tags(clients, id).await?,
                        owners: Vec::new(),
                    })
                    .await?;
            }
        }
    }
    Ok(true)
}

/// The tags of an organization root, OU or account.
async fn tags(clients: &Clients, id: &str) -> Result<BTreeMap<String, String>, ProviderError> {
    let what = format!("listing the tags of {id}");
    let mut tags = BTreeMap::new();
    let mut cursor = Cursor::default();
    while !cursor.finished() {
        let request = clients
            .organizations
            .list_tags_for_resource()
            .resource_id(id)
            .set_next_token(cursor.token());
        let page = clients
            .pacing
            .organizations
            .send(&what, || request.clone().send())
            .await?;
        cursor.advance(page.next_token());
        for tag in page.tags() {
            tags.insert(tag.key().to_string(), tag.value().to_string());
        }
    }
    Ok(tags)
}

/// The connector's own account, named by its IAM alias when it has one.
async fn single_account(
    clients: &Clients,
    account: &str,
    pages: &mut Pages<'_>,
) -> Result<(), ProviderError> {
    let aliases = clients
        .pacing
        .iam
        .send("listing the account's aliases", || {
            clients.iam.list_account_aliases().send()
        })
        .await;
    let name = match aliases {
        Ok(out) => out.account_aliases().first().cloned(),
        // The alias is only a nicer name; not being allowed to read it is no reason to fail.
        Err(err) => {
            tracing::debug!(error = %err, "no account alias");
            None
        }
    };
    pages
        .push(SyncedResource {
            id: account.to_string(),
            resource_type: ACCOUNT_TYPE.into(),
            name: name.unwrap_or_else(|| account.to_string()),
            parent: None,
            tags: BTreeMap::new(),
            owners: Vec::new(),
        })
        .await
}

/// What an ARN says about its resource: type `aws.<service>.<type>`, name and account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ArnParts {
    pub resource_type: String,
    pub name: String,
    /// Empty for resources whose ARN names no account (S3 buckets).
    pub account: String,
}

/// Parses `arn:partition:service:region:account:resource`. The resource part is `type/name`,
/// `type:name` or a bare name; bare names are buckets for S3, queues for SQS, topics for SNS.
pub(crate) fn parse_arn(arn: &str) -> Option<ArnParts> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let ["arn", _partition, service, _region, account, resource] = parts.as_slice() else {
        return None;
    };
    if service.is_empty() || resource.is_empty() {
        return None;
    }
    let (kind, name) = if *service == "s3" {
        // `bucket/key` is an object; the tagging API returns buckets only.
        let kind = if resource.contains('/') {
            "object"
        } else {
            "bucket"
        };
        (kind, *resource)
    } else {
        match resource.find(['/', ':']) {
            Some(at) => (&resource[..at], &resource[at + 1..]),
            None => {
                let bare = match *service {
                    "sqs" => "queue",
                    "sns" => "topic",
                    _ => "resource",
                };
                (bare, *resource)
            }
        }
    };
    let kind: String = kind
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    Some(ArnParts {
        resource_type: format!("aws.{service}.{kind}"),
        name: name.to_string(),
        account: account.to_string(),
    })
}

/// Every resource the tagging API returns; the ARNs of the IAM roles among them.
async fn tagged_resources(
    clients: &Clients,
    own_account: &str,
    pages: &mut Pages<'_>,
) -> Result<HashSet<String>, ProviderError> {
    let what = "listing tagged resources (tagging:GetResources)";
    let mut roles = HashSet::new();
    let mut cursor = Cursor::default();
    while !cursor.finished() {
        let request = clients
            .tagging
            .get_resources()
            .resources_per_page(TAGGING_PAGE)
            .set_pagination_token(cursor.token());
        let page = clients
            .pacing
            .tagging
            .send(what, || request.clone().send())
            .await?;
        cursor.advance(page.pagination_token());
        for mapping in page.resource_tag_mapping_list() {
            let Some(arn) = mapping.resource_arn() else {
                continue;
            };
            let Some(parts) = parse_arn(arn) else {
                tracing::debug!(arn, "skipping a resource whose ARN does not parse");
                continue;
            };
            // Keys are unique per resource in AWS; a map also drops the duplicates moto returns.
            let tags: BTreeMap<String, String> = mapping
                .tags()
                .iter()
                .map(|tag| (tag.key().to_string(), tag.value().to_string()))
                .collect();
            if parts.resource_type == ROLE_TYPE {
                roles.insert(arn.to_string());
            }
            let account = if parts.account.is_empty() {
                own_account.to_string()
            } else {
                parts.account
            };
            pages
                .push(SyncedResource {
                    id: arn.to_string(),
                    name: tags.get("Name").cloned().unwrap_or(parts.name),
                    resource_type: parts.resource_type,
                    parent: (!account.is_empty()).then_some(account),
                    tags,
                    owners: Vec::new(),
                })
                .await?;
        }
    }
    Ok(roles)
}

/// IAM roles people can assume, with their tags, except those the tagging API already
/// reported.
async fn roles(
    clients: &Clients,
    already: &HashSet<String>,
    pages: &mut Pages<'_>,
) -> Result<(), ProviderError> {
    let mut cursor = Cursor::default();
    while !cursor.finished() {
        let request = clients.iam.list_roles().set_marker(cursor.token());
        let page = clients
            .pacing
            .iam
            .send("listing IAM roles", || request.clone().send())
            .await?;
        cursor.advance(page.is_truncated().then_some(page.marker()).flatten());
        for role in page.roles() {
            if already.contains(role.arn()) || role.path().starts_with("/aws-service-role/") {
                continue;
            }
            let account = parse_arn(role.arn()).map(|parts| parts.account);
            pages
                .push(SyncedResource {
                    id: role.arn().to_string(),
                    resource_type: ROLE_TYPE.into(),
                    name: role.role_name().to_string(),
                    parent: account.filter(|a| !a.is_empty()),
                    tags: role_tags(clients, role.role_name()).await?,
                    owners: Vec::new(),
                })
                .await?;
        }
    }
    Ok(())
}

/// The tags of one IAM role, every page of them.
async fn role_tags(
    clients: &Clients,
    role_name: &str,
) -> Result<BTreeMap<String, String>, ProviderError> {
    let what = format!("listing the tags of IAM role {role_name}");
    let mut tags = BTreeMap::new();
    let mut cursor = Cursor::default();
    while !cursor.finished() {
        let request = clients
            .iam
            .list_role_tags()
            .role_name(role_name)
            .max_items(ROLE_TAGS_PAGE)
            .set_marker(cursor.token());
        let page = clients
            .pacing
            .iam
            .send(&what, || request.clone().send())
            .await?;
        cursor.advance(page.is_truncated().then_some(page.marker()).flatten());
        for tag in page.tags() {
            tags.insert(tag.key().to_string(), tag.value().to_string());
        }
    }
    Ok(tags)
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;

    use super::*;
    use crate::provider::{SyncedGroup, SyncedIdentity, SyncedMembership};

    #[derive(Default)]
    struct PageSink {
        pages: Vec<usize>,
        permissions: Vec<ResourceTypePermissions>,
    }

    #[async_trait]
    impl SyncSink for PageSink {
        async fn resources(
            &mut self,
            page: Vec<SyncedResource>,
            permissions: Vec<ResourceTypePermissions>,
        ) -> Result<(), ProviderError> {
            self.pages.push(page.len());
            self.permissions.extend(permissions);
            Ok(())
        }

        async fn identities(&mut self, _: Vec<SyncedIdentity>) -> Result<(), ProviderError> {
            Ok(())
        }

        async fn groups(&mut self, _: Vec<SyncedGroup>) -> Result<(), ProviderError> {
            Ok(())
        }

        async fn memberships(&mut self, _: Vec<SyncedMembership>) -> Result<(), ProviderError> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn pages_hold_at_most_a_thousand_and_announce_each_type_once() {
        let settings = AwsSettings {
            region: "us-east-1".into(),
            endpoint_url: None,
            assume_role_arn: None,
            external_id: None,
            iam_user_template: "{local}".into(),
            policy_templates: BTreeMap::new(),
        };
        let mut sink = PageSink::default();
        let mut pages = Pages {
            sink: &mut sink,
            settings: &settings,
            account_permissions: vec!["ReadOnly".into()],
            buffer: Vec::new(),
            announced: HashSet::new(),
        };
        let kinds = [
            ORGANIZATION_TYPE,
            OU_TYPE,
            ACCOUNT_TYPE,
            "aws.s3.bucket",
            "aws.rds.db",
        ];
        for i in 0..2500 {
            pages
                .push(SyncedResource {
                    id: format!("r-{i}"),
                    resource_type: kinds[i % kinds.len()].into(),
                    ..SyncedResource::default()
                })
                .await
                .expect("pushed");
        }
        pages.flush().await.expect("flushed");
        assert_eq!(sink.pages, [1000, 1000, 500]);
        let announced: Vec<(&str, Vec<String>)> = sink
            .permissions
            .iter()
            .map(|p| (p.resource_type.as_str(), p.permissions.clone()))
            .collect();
        assert_eq!(
            announced,
            [
                (ACCOUNT_TYPE, vec!["ReadOnly".to_string()]),
                (
                    "aws.s3.bucket",
                    vec!["read".to_string(), "write".to_string()]
                ),
                ("aws.rds.db", vec!["read".to_string(), "write".to_string()]),
            ]
        );
    }

    fn parsed(arn: &str) -> (String, String, String) {
        let parts = parse_arn(arn).unwrap_or_else(|| panic!("{arn} parses"));
        (parts.resource_type, parts.name, parts.account)
    }

    #[test]
    fn arns_give_types_names_and_accounts() {
        let s = |a: &str, b: &str, c: &str| (a.to_string(), b.to_string(), c.to_string());
        assert_eq!(
            parsed("arn:aws:s3:::my-logs"),
            s("aws.s3.bucket", "my-logs", "")
        );
        assert_eq!(
            parsed("arn:aws:ec2:us-east-1:123456789012:instance/i-0abc"),
            s("aws.ec2.instance", "i-0abc", "123456789012")
        );
        assert_eq!(
            parsed("arn:aws:rds:us-east-1:123456789012:db:orders"),
            s("aws.rds.db", "orders", "123456789012")
        );
        assert_eq!(
            parsed("arn:aws:iam::123456789012:role/admin"),
            s("aws.iam.role", "admin", "123456789012")
        );
        assert_eq!(
            parsed("arn:aws:sqs:eu-west-1:123456789012:jobs"),
            s("aws.sqs.queue", "jobs", "123456789012")
        );
        assert_eq!(
            parsed("arn:aws:elasticloadbalancing:us-east-1:1:loadbalancer/app/web/50dc"),
            s("aws.elasticloadbalancing.loadbalancer", "app/web/50dc", "1")
        );
        assert_eq!(
            parsed("arn:aws:s3:::bucket/key/x").0,
            "aws.s3.object".to_string()
        );
        assert_eq!(parse_arn("not-an-arn"), None);
        assert_eq!(parse_arn("arn:aws:s3:::"), None);
    }
}
