//! The reconciler: makes live grants match what the flows allow now.
//!
//! - Automatic flows: everyone the flow's requesters match gets its targets while they match. The
//!   entitlements are recomputed from the directory, the inventory and the time, and the difference
//!   becomes grant and revoke commands.
//! - Requested access: a grant whose flow was deleted, no longer covers the resource (its targets
//!   or the resource's tags or hierarchy changed) or no longer lists the person is revoked, with
//!   the reason.
//!
//! It runs after every change to flows, the directory or the inventory, and on an interval so that
//! on-call shifts starting and ending (and changes made through another server) are picked up.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use latch_core::decide::{Entitlement, FlowRef, VersionedFlow, entitlements, still_allowed};
use latch_core::flow::FlowKind;

use super::Lifecycle;
use super::context::Context;
use crate::store::{GrantRecord, NewGrant, ReconcilePlan, ResourceRecord, StoreError};

/// What a reconcile run looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// Automatic grants only.
    Automatic,
    /// Automatic grants and every live requested grant.
    All,
}

/// The actor recorded for the reconciler's changes.
pub const RECONCILER: &str = "latch-reconciler";

/// The inventory a reconcile run read.
#[derive(Debug, Clone, Copy)]
pub struct Inventory<'a> {
    /// Resources that exist.
    pub resources: &'a [ResourceRecord],
    /// `None`: `resources` is the whole inventory. `Some(ids)`: only these ids were looked up;
    /// a grant on another resource (written after the read) is left for the next run rather than
    /// taken for one whose resource is gone.
    pub looked_up: Option<&'a std::collections::HashSet<String>>,
}

/// What the grants should become, given everything known now. Requested grants are re-checked
/// only when `recheck_requests` (their flows, the directory or the inventory may have changed).
pub fn plan(
    live: &[GrantRecord],
    context: &Context,
    inventory: &Inventory<'_>,
    now: jiff::Timestamp,
    recheck_requests: bool,
) -> ReconcilePlan {
    let resources = inventory.resources;
    let mut out = ReconcilePlan::default();
    let by_id: BTreeMap<&str, &ResourceRecord> =
        resources.iter().map(|r| (r.id.as_str(), r)).collect();
    let engine_resources: Vec<_> = resources.iter().map(ResourceRecord::to_engine).collect();
    let people = context.people(now);

    // Automatic flows: desired entitlements per flow, against the automatic grants held.
    let mut desired: BTreeSet<(String, Entitlement)> = BTreeSet::new();
    let mut versions: BTreeMap<String, u32> = BTreeMap::new();
    for (spec, version) in context.engine.flows() {
        if spec.kind != FlowKind::Automatic {
            continue;
        }
        versions.insert(spec.name.clone(), version);
        let flow = VersionedFlow {
            spec: (**spec).clone(),
            version,
        };
        for entitlement in entitlements(&flow, &people, &engine_resources, now) {
            desired.insert((spec.name.clone(), entitlement));
        }
    }
    let mut held: BTreeSet<(String, Entitlement)> = BTreeSet::new();
    for grant in live.iter().filter(|g| g.request_id.is_none()) {
        let key = (
            grant.flow.name.clone(),
            Entitlement {
                identity: grant.identity.clone(),
                integration: grant.integration.clone(),
                resource_id: grant.resource_id.clone(),
                permission: grant.permission.clone(),
            },
        );
        if desired.contains(&key) && held.insert(key) {
            continue;
        }
        out.revoke.push((
            grant.id.clone(),
            format!(
                "automatic flow {:?} no longer entitles {} to {:?} on {:?}",
                grant.flow.name, grant.identity, grant.permission, grant.resource_id
            ),
        ));
    }
    for (flow, entitlement) in desired.difference(&held) {
        out.grant.push(NewGrant {
            resource_type: by_id
                .get(entitlement.resource_id.as_str())
                .map(|r| r.resource_type.clone())
                .unwrap_or_default(),
            identity: entitlement.identity.clone(),
            integration: entitlement.integration.clone(),
            resource_id: entitlement.resource_id.clone(),
            permission: entitlement.permission.clone(),
            flow: FlowRef {
                name: flow.clone(),
                version: versions.get(flow).copied().unwrap_or_default(),
            },
            duration_secs: None,
        });
    }

    // Requested access: still allowed by the flow's current version?
    let requested = live.iter().filter(|g| g.request_id.is_some());
    let judged = |grant: &&GrantRecord| {
        inventory
            .looked_up
            .is_none_or(|ids| ids.contains(&grant.resource_id))
    };
    for grant in requested.filter(|_| recheck_requests).filter(judged) {
        let current = context
            .engine
            .flows()
            .find(|(spec, _)| spec.name == grant.flow.name);
        let verdict = match current {
            None => Err(format!("flow {:?} was deleted", grant.flow.name)),
            Some((spec, _)) => still_allowed(
                spec,
                &context.requester(&grant.identity, now),
                by_id
                    .get(grant.resource_id.as_str())
                    .map(|r| r.to_engine())
                    .as_ref(),
                &grant.permission,
            ),
        };
        if let Err(reason) = verdict {
            out.revoke.push((grant.id.clone(), reason));
            if let Some(request_id) = &grant.request_id
                && !out.revoked_requests.contains(request_id)
            {
                out.revoked_requests.push(request_id.clone());
            }
        }
    }
    out
}

impl Lifecycle {
    /// Reconciles everything once; returns what changed.
    pub async fn reconcile(&self, now: DateTime<Utc>) -> Result<ReconcilePlan, StoreError> {
        let context = self.context.current().await?;
        let applied = self.reconcile_with(&context, now, Scope::All).await?;
        *self.reconciled.lock().unwrap_or_else(|p| p.into_inner()) = Some(context.versions.clone());
        Ok(applied)
    }

    /// The periodic run: everything when flows, the directory or the inventory changed since the
    /// last full run (perhaps through another server); otherwise only automatic flows, whose
    /// entitlements move with time (shifts, timeframes); nothing when there are none.
    pub async fn reconcile_periodic(
        &self,
        now: DateTime<Utc>,
    ) -> Result<ReconcilePlan, StoreError> {
        let context = self.context.current().await?;
        let last = self
            .reconciled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if last.as_ref() != Some(&context.versions) {
            let syncing = self.syncs_running.load(std::sync::atomic::Ordering::SeqCst) > 0;
            let only_inventory = last.as_ref().is_some_and(|last| {
                last.flows == context.versions.flows && last.directory == context.versions.directory
            });
            if !(syncing && only_inventory) {
                return self.reconcile(now).await;
            }
        }
        let automatic = context
            .engine
            .flows()
            .any(|(spec, _)| spec.kind == FlowKind::Automatic);
        if !automatic {
            return Ok(ReconcilePlan::default());
        }
        self.reconcile_with(&context, now, Scope::Automatic).await
    }

    async fn reconcile_with(
        &self,
        context: &Context,
        now: DateTime<Utc>,
        scope: Scope,
    ) -> Result<ReconcilePlan, StoreError> {
        let automatic = context
            .engine
            .flows()
            .any(|(spec, _)| spec.kind == FlowKind::Automatic);
        // Automatic flows match the whole inventory; re-checking requested access needs only the
        // resources of live grants, which is far less to read when the inventory is large.
        let (resources, looked_up) = if automatic {
            (self.all_resources().await?, None)
        } else {
            let ids = self.store.live_grant_resource_ids().await?;
            let found = self.store.resources_by_id(&ids).await?;
            (found, Some(ids.into_iter().collect()))
        };
        let inventory = Inventory {
            resources: &resources,
            looked_up: looked_up.as_ref(),
        };
        let at = super::requests::to_jiff(now);
        let recheck = scope == Scope::All;
        let applied = self
            .store
            .reconcile(RECONCILER, now, !recheck, &|live| {
                plan(live, context, &inventory, at, recheck)
            })
            .await?;
        if !applied.is_empty() {
            self.commands_written();
            metrics::counter!("latch_reconcile_grants_total", "action" => "grant")
                .increment(applied.grant.len() as u64);
            metrics::counter!("latch_reconcile_grants_total", "action" => "revoke")
                .increment(applied.revoke.len() as u64);
            tracing::info!(
                granted = applied.grant.len(),
                revoked = applied.revoke.len(),
                "reconciled grants"
            );
        }
        Ok(applied)
    }

    async fn all_resources(&self) -> Result<Vec<ResourceRecord>, StoreError> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self
                .store
                .list_resources(
                    after.as_deref(),
                    1000,
                    None,
                    None,
                    &std::collections::BTreeMap::new(),
                    None,
                )
                .await?;
            let done = page.len() < 1000;
            after = page.last().map(|r| r.id.clone());
            out.extend(page);
            if done {
                return Ok(out);
            }
        }
    }
}
