//! The Identity Store of the Identity Center instance: its users are the integration's
//! identities, its groups the integration's groups, and its group memberships say which users are
//! in which groups. The control plane links the users to Latch users by email.
//!
//! **Users.** ListUsers. The email is the primary one (the first one when none is marked
//! primary); the display name falls back to the user name, then to the id.
//!
//! **Groups.** ListGroups; the display name falls back to the id.
//!
//! **Memberships.** ListGroupMemberships, once per group, after the groups. Identity Store groups
//! hold users only (no nested groups); a member of a kind this SDK does not know is skipped. A
//! group deleted between ListGroups and its ListGroupMemberships is reported without members
//! rather than failing the sync: the next sync no longer sees it.
//!
//! **Pacing and errors.** As for the rest of the inventory: every list is paged (100 per call,
//! the most the API returns), each call has the SDK's standard retry (exponential backoff with
//! jitter on throttling and transient errors), and what still fails is classified by
//! [`classify`] and fails the sync, which then changes nothing in the control plane.
//!
//! **Memory.** Pages of at most [`PAGE`] go to the sink as they are read; only the group ids are
//! kept, to list each group's memberships once the groups are sent.

use aws_sdk_identitystore::types::MemberId;

use super::clients::Clients;
use super::errors::classify;
use super::inventory::PAGE;
use crate::provider::{ProviderError, SyncSink, SyncedGroup, SyncedIdentity, SyncedMembership};

/// Items per Identity Store list call (the API's maximum).
const LIST_PAGE: i32 = 100;

/// Reports the users, groups and group memberships of the identity store `identity_store_id`.
pub(crate) async fn sync(
    clients: &Clients,
    identity_store_id: &str,
    sink: &mut dyn SyncSink,
) -> Result<(), ProviderError> {
    users(clients, identity_store_id, sink).await?;
    let group_ids = groups(clients, identity_store_id, sink).await?;
    memberships(clients, identity_store_id, &group_ids, sink).await
}

/// Identity Store users, in pages.
async fn users(
    clients: &Clients,
    identity_store_id: &str,
    sink: &mut dyn SyncSink,
) -> Result<(), ProviderError> {
    let what = "listing Identity Store users";
    let mut page = Vec::new();
    let mut items = clients
        .identity_store
        .list_users()
        .identity_store_id(identity_store_id)
        .max_results(LIST_PAGE)
        .into_paginator()
        .items()
        .send();
    while let Some(user) = items.next().await {
        let user = user.map_err(|err| classify(err, what))?;
        let emails = user.emails();
        let email = emails
            .iter()
            .find(|e| e.primary())
            .or_else(|| emails.first())
            .and_then(|e| e.value())
            .map(str::to_string);
        let display_name = user
            .display_name()
            .or(user.user_name())
            .unwrap_or(user.user_id())
            .to_string();
        page.push(SyncedIdentity {
            external_id: user.user_id().to_string(),
            email,
            display_name,
        });
        if page.len() >= PAGE {
            sink.identities(std::mem::take(&mut page)).await?;
        }
    }
    if !page.is_empty() {
        sink.identities(page).await?;
    }
    Ok(())
}

/// Identity Store groups, in pages; returns their ids.
async fn groups(
    clients: &Clients,
    identity_store_id: &str,
    sink: &mut dyn SyncSink,
) -> Result<Vec<String>, ProviderError> {
    let what = "listing Identity Store groups";
    let mut ids = Vec::new();
    let mut page = Vec::new();
    let mut items = clients
        .identity_store
        .list_groups()
        .identity_store_id(identity_store_id)
        .max_results(LIST_PAGE)
        .into_paginator()
        .items()
        .send();
    while let Some(group) = items.next().await {
        let group = group.map_err(|err| classify(err, what))?;
        ids.push(group.group_id().to_string());
        page.push(SyncedGroup {
            external_id: group.group_id().to_string(),
            display_name: group.display_name().unwrap_or(group.group_id()).to_string(),
        });
        if page.len() >= PAGE {
            sink.groups(std::mem::take(&mut page)).await?;
        }
    }
    if !page.is_empty() {
        sink.groups(page).await?;
    }
    Ok(ids)
}

/// The members of each group in `group_ids`, in pages.
async fn memberships(
    clients: &Clients,
    identity_store_id: &str,
    group_ids: &[String],
    sink: &mut dyn SyncSink,
) -> Result<(), ProviderError> {
    let mut page = Vec::new();
    for group_id in group_ids {
        let what = format!("listing the members of Identity Store group {group_id}");
        let mut items = clients
            .identity_store
            .list_group_memberships()
            .identity_store_id(identity_store_id)
            .group_id(group_id)
            .max_results(LIST_PAGE)
            .into_paginator()
            .items()
            .send();
        while let Some(membership) = items.next().await {
            let membership = match membership.map_err(|err| classify(err, &what)) {
                Ok(membership) => membership,
                // Deleted since ListGroups.
                Err(ProviderError::NotFound { message }) => {
                    tracing::debug!(%message, "an Identity Store group went away during the sync");
                    break;
                }
                Err(err) => return Err(err),
            };
            let Some(user_id) = membership.member_id().and_then(user_id) else {
                continue;
            };
            page.push(SyncedMembership {
                group_external_id: group_id.clone(),
                identity_external_id: user_id,
            });
            if page.len() >= PAGE {
                sink.memberships(std::mem::take(&mut page)).await?;
            }
        }
    }
    if !page.is_empty() {
        sink.memberships(page).await?;
    }
    Ok(())
}

/// The user id of a group member; `None` for a member that is not a user. The API may name a
/// user by ARN (`arn:aws:identitystore:::user/<id>`); the id is what ListUsers reports.
fn user_id(member: &MemberId) -> Option<String> {
    match member {
        MemberId::UserId(id) if id.starts_with("arn:") => id
            .rsplit_once("user/")
            .map(|(_, id)| id.to_string())
            .filter(|id| !id.is_empty()),
        MemberId::UserId(id) if !id.is_empty() => Some(id.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_users_named_by_id() {
        assert_eq!(
            user_id(&MemberId::UserId("9067a1b2-user".into())).as_deref(),
            Some("9067a1b2-user")
        );
        assert_eq!(
            user_id(&MemberId::UserId(
                "arn:aws:identitystore:::user/9067a1b2-user".into()
            ))
            .as_deref(),
            Some("9067a1b2-user")
        );
        assert_eq!(user_id(&MemberId::UserId(String::new())), None);
        assert_eq!(user_id(&MemberId::UserId("arn:aws:other".into())), None);
    }
}
