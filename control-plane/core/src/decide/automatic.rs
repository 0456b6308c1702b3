//! Automatic flows: everyone who matches the requesters has the access while they match. The
//! lifecycle calls [`entitlements`] when context changes (group membership, shifts, inventory, a
//! new flow version) and applies the [`diff`] against what it granted before.

use std::collections::BTreeSet;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::flow::FlowKind;

use super::identity::email_key;
use super::input::{Requester, Resource, VersionedFlow};
use super::matching::{RequesterFit, RequesterRule, TargetFit, target_fit};
use super::timeframe::{CompiledTimeframe, Window};

/// One (identity, resource, permission) an automatic flow grants.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Entitlement {
    /// The person, by canonical (lowercased) email, so a change of case is not a new grant.
    pub identity: String,
    /// Integration of the resource.
    pub integration: String,
    /// Resource id.
    pub resource_id: String,
    /// Permission granted.
    pub permission: String,
}

/// What to change to go from one entitlement set to another.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntitlementDiff {
    /// Entitled now, not before.
    pub grant: BTreeSet<Entitlement>,
    /// Entitled before, not now.
    pub revoke: BTreeSet<Entitlement>,
}

impl EntitlementDiff {
    /// Whether nothing changes.
    pub fn is_empty(&self) -> bool {
        self.grant.is_empty() && self.revoke.is_empty()
    }
}

/// What `flow` entitles at `now`, given the people (with their groups and current shifts) and the
/// resources. Empty for a flow that is not `automatic`, and outside the flow's timeframe (so
/// access granted by a timeframe is revoked when it closes). Justification does not apply.
pub fn entitlements(
    flow: &VersionedFlow,
    people: &[Requester],
    resources: &[Resource],
    now: Timestamp,
) -> BTreeSet<Entitlement> {
    let mut out = BTreeSet::new();
    let spec = &flow.spec;
    if spec.kind != FlowKind::Automatic {
        return out;
    }
    if let Some(frame) = &spec.settings.timeframe
        && CompiledTimeframe::new(frame).check(now) != Window::Open
    {
        return out;
    }
    let rule = RequesterRule::new(&spec.requesters);
    let mut identities: Vec<String> = people
        .iter()
        .filter_map(|person| {
            let key = email_key(&person.email);
            (rule.fit(&key, person) == RequesterFit::Eligible).then_some(key)
        })
        .collect();
    identities.sort();
    identities.dedup();
    if identities.is_empty() {
        return out;
    }
    for resource in resources {
        for target in &spec.targets {
            for permission in &target.permissions {
                if target_fit(target, resource, permission) != TargetFit::Covers {
                    continue;
                }
                for identity in &identities {
                    out.insert(Entitlement {
                        identity: identity.clone(),
                        integration: resource.integration.clone(),
                        resource_id: resource.id.clone(),
                        permission: permission.clone(),
                    });
                }
            }
        }
    }
    out
}

/// What to grant and revoke to go from `previous` to `current`.
pub fn diff(previous: &BTreeSet<Entitlement>, current: &BTreeSet<Entitlement>) -> EntitlementDiff {
    EntitlementDiff {
        grant: current.difference(previous).cloned().collect(),
        revoke: previous.difference(current).cloned().collect(),
    }
}
