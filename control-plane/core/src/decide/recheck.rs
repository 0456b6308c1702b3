//! Whether access already granted is still allowed: after a flow changes or is deleted, or a
//! resource's tags or hierarchy change, the lifecycle asks this of every live grant and revokes the
//! ones that are not, with the reason returned here.

use crate::flow::FlowSpec;

use super::identity::email_key;
use super::input::{Requester, Resource};
use super::matching::{RequesterFit, RequesterRule, TargetFit, target_fit};

/// `Ok` when `flow` (its current version) still gives `requester` `permission` on `resource`;
/// otherwise why not, in words. A resource that no longer exists (`None`) is never allowed.
///
/// Only what the flow says about people and targets is checked: timeframes and justification
/// apply when access is asked for, not while it runs.
pub fn still_allowed(
    flow: &FlowSpec,
    requester: &Requester,
    resource: Option<&Resource>,
    permission: &str,
) -> Result<(), String> {
    let Some(resource) = resource else {
        return Err("the resource is no longer in the inventory".to_owned());
    };
    let covers = flow
        .targets
        .iter()
        .any(|target| target_fit(target, resource, permission) == TargetFit::Covers);
    if !covers {
        return Err(format!(
            "flow {:?} no longer covers {permission:?} on {:?} (its targets, or the resource's tags or hierarchy, changed)",
            flow.name, resource.id
        ));
    }
    match RequesterRule::new(&flow.requesters).fit(&email_key(&requester.email), requester) {
        RequesterFit::Eligible => Ok(()),
        RequesterFit::NotListed | RequesterFit::Excepted => Err(format!(
            "{} is no longer among the requesters of flow {:?}",
            requester.email, flow.name
        )),
    }
}
