//! The target index: which targets could cover a (resource, permission) pair, found with a few
//! hash lookups, so a decision costs what the matching flows cost, not what all flows cost.
//!
//! Targets are filed by integration, then permission, then resource type (or "any type" for targets
//! that list none), then by one include criterion chosen per target:
//!
//! - `ids` listed: under each id;
//! - otherwise `names`: under each name;
//! - otherwise `tags`: under one (key, value) pair, the one whose bucket is smallest so far;
//! - otherwise `descendants_of`: under each ancestor;
//! - otherwise "no include".
//!
//! Every criterion that is set must match, so a resource that matches a target's include always
//! hits the bucket the target was filed under: looking up the resource's id, name, each of its tags,
//! each of its ancestors and "no include" finds every target that could cover it. The index only
//! narrows; [`super::matching`] decides.

// foldhash: keyed per process like std's SipHash, several times faster on the short strings the
// index is keyed by. A decision makes a few dozen of these lookups.
use foldhash::HashMap;

use super::compiled::CompiledFlow;
use super::input::AccessItem;

/// A target of a flow: (position of the flow in the engine's list, position of the target in it).
pub(crate) type TargetRef = (u32, u32);

#[derive(Debug, Default)]
struct IncludeBuckets {
    by_id: HashMap<String, Vec<TargetRef>>,
    by_name: HashMap<String, Vec<TargetRef>>,
    by_tag: HashMap<String, HashMap<String, Vec<TargetRef>>>,
    by_ancestor: HashMap<String, Vec<TargetRef>>,
    no_include: Vec<TargetRef>,
}

impl IncludeBuckets {
    fn file(&mut self, flow: &CompiledFlow, at: TargetRef) {
        let Some(target) = flow.spec.targets.get(at.1 as usize) else {
            return;
        };
        let include = &target.include;
        if !include.ids.is_empty() {
            for id in &include.ids {
                self.by_id.entry(id.clone()).or_default().push(at);
            }
        } else if !include.names.is_empty() {
            for name in &include.names {
                self.by_name.entry(name.clone()).or_default().push(at);
            }
        } else if !include.tags.is_empty() {
            // Any one pair is a correct key; the least crowded keeps lookups short.
            let bucket_len = |key: &String, value: &String| {
                self.by_tag
                    .get(key)
                    .and_then(|values| values.get(value))
                    .map_or(0, Vec::len)
            };
            let chosen = include
                .tags
                .iter()
                .min_by_key(|(key, value)| bucket_len(key, value));
            if let Some((key, value)) = chosen {
                self.by_tag
                    .entry(key.clone())
                    .or_default()
                    .entry(value.clone())
                    .or_default()
                    .push(at);
            }
        } else if !include.descendants_of.is_empty() {
            for ancestor in &include.descendants_of {
                self.by_ancestor
                    .entry(ancestor.clone())
                    .or_default()
                    .push(at);
            }
        } else {
            self.no_include.push(at);
        }
    }

    fn lookup(&self, item: &AccessItem, out: &mut Vec<TargetRef>) {
        let resource = &item.resource;
        if let Some(found) = self.by_id.get(&resource.id) {
            out.extend_from_slice(found);
        }
        if let Some(found) = self.by_name.get(&resource.name) {
            out.extend_from_slice(found);
        }
        // Walk the smaller side: a bucket set usually files targets under a few tag keys, while
        // a resource may carry many tags.
        if self.by_tag.len() < resource.tags.len() {
            for (key, values) in &self.by_tag {
                if let Some(found) = resource.tags.get(key).and_then(|value| values.get(value)) {
                    out.extend_from_slice(found);
                }
            }
        } else if !self.by_tag.is_empty() {
            for (key, value) in &resource.tags {
                if let Some(found) = self.by_tag.get(key).and_then(|values| values.get(value)) {
                    out.extend_from_slice(found);
                }
            }
        }
        if !self.by_ancestor.is_empty() {
            for ancestor in &resource.ancestors {
                if let Some(found) = self.by_ancestor.get(ancestor) {
                    out.extend_from_slice(found);
                }
            }
        }
        out.extend_from_slice(&self.no_include);
    }
}

#[derive(Debug, Default)]
struct TypeBuckets {
    by_type: HashMap<String, IncludeBuckets>,
    any_type: IncludeBuckets,
}

/// Targets of requestable flows, filed for lookup by pair.
#[derive(Debug, Default)]
pub(crate) struct TargetIndex {
    /// integration → permission → buckets.
    by_integration: HashMap<String, HashMap<String, TypeBuckets>>,
}

impl TargetIndex {
    /// Files every target of every requestable flow. `flows[i]` is referred to as `i`.
    pub(crate) fn build(flows: &[CompiledFlow]) -> TargetIndex {
        let mut index = TargetIndex::default();
        for (f, flow) in flows.iter().enumerate() {
            if !flow.requestable {
                continue;
            }
            for (t, target) in flow.spec.targets.iter().enumerate() {
                let at = (to_u32(f), to_u32(t));
                let by_permission = index
                    .by_integration
                    .entry(target.integration.clone())
                    .or_default();
                let mut permissions: Vec<&String> = target.permissions.iter().collect();
                permissions.sort();
                permissions.dedup();
                for permission in permissions {
                    let types = by_permission.entry(permission.clone()).or_default();
                    if target.resource_types.is_empty() {
                        types.any_type.file(flow, at);
                    } else {
                        let mut resource_types: Vec<&String> =
                            target.resource_types.iter().collect();
                        resource_types.sort();
                        resource_types.dedup();
                        for resource_type in resource_types {
                            types
                                .by_type
                                .entry(resource_type.clone())
                                .or_default()
                                .file(flow, at);
                        }
                    }
                }
            }
        }
        index
    }

    /// Appends the targets that could cover `item` to `out` (possibly more than once each).
    pub(crate) fn lookup(&self, item: &AccessItem, out: &mut Vec<TargetRef>) {
        let Some(types) = self
            .by_integration
            .get(&item.resource.integration)
            .and_then(|by_permission| by_permission.get(&item.permission))
        else {
            return;
        };
        if let Some(buckets) = types.by_type.get(&item.resource.resource_type) {
            buckets.lookup(item, out);
        }
        types.any_type.lookup(item, out);
    }
}

/// Flow and target positions fit in `u32`: an engine with four billion flows would not fit in
/// memory anyway. Saturating keeps this total; a saturated position fails the bounds checks later.
fn to_u32(position: usize) -> u32 {
    u32::try_from(position).unwrap_or(u32::MAX)
}
