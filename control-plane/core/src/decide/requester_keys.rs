//! A fast "could this requester be in this flow's `any_of`?" for the indexed engine.
//!
//! Users, groups and schedules named in any flow's `any_of` are numbered once, when the engine is
//! built. A decision numbers its requester's email, groups and schedules once (a few hash lookups),
//! and then each candidate flow costs a comparison of two short sorted lists of integers instead of
//! string comparisons: with many flows, candidates are many, and this check runs for each.

// foldhash: keyed per process like std's SipHash, several times faster on the short strings the
// index is keyed by. A decision makes a few dozen of these lookups.
use foldhash::HashMap;

use crate::flow::Principal;

use super::compiled::CompiledFlow;
use super::identity::email_key;
use super::input::Requester;

/// Numbered requester names, and each flow's `any_of` as numbers.
#[derive(Debug, Default)]
pub(crate) struct RequesterKeys {
    users: HashMap<String, u32>,
    groups: HashMap<String, u32>,
    schedules: HashMap<String, u32>,
    /// Per flow position: whether `any_of` has `everyone`, and its other entries, sorted.
    flows: Vec<(bool, Box<[u32]>)>,
}

impl RequesterKeys {
    pub(crate) fn build(flows: &[CompiledFlow]) -> RequesterKeys {
        let mut keys = RequesterKeys::default();
        let mut next = 0u32;
        let mut number = |map: &mut HashMap<String, u32>, name: String| {
            *map.entry(name).or_insert_with(|| {
                next += 1;
                next
            })
        };
        for flow in flows {
            let mut everyone = false;
            let mut ids = Vec::new();
            for principal in &flow.spec.requesters.any_of {
                match principal {
                    Principal::Everyone => everyone = true,
                    Principal::User(user) => ids.push(number(&mut keys.users, email_key(user))),
                    Principal::Group(group) => ids.push(number(&mut keys.groups, group.clone())),
                    Principal::OnCall(schedule) => {
                        ids.push(number(&mut keys.schedules, schedule.clone()))
                    }
                }
            }
            ids.sort_unstable();
            ids.dedup();
            keys.flows.push((everyone, ids.into_boxed_slice()));
        }
        keys
    }

    /// The requester's numbers, sorted. Names no flow mentions have none and are left out.
    pub(crate) fn of(&self, email: &str, requester: &Requester) -> Vec<u32> {
        let mut ids: Vec<u32> = self.users.get(email).copied().into_iter().collect();
        ids.extend(requester.groups.iter().filter_map(|g| self.groups.get(g)));
        ids.extend(
            requester
                .on_call
                .iter()
                .filter_map(|s| self.schedules.get(s)),
        );
        ids.sort_unstable();
        ids
    }

    /// Whether flow `f`'s `any_of` may match a requester with numbers `requester` (sorted).
    pub(crate) fn may_match(&self, f: u32, requester: &[u32]) -> bool {
        self.flows
            .get(f as usize)
            .is_some_and(|(everyone, ids)| *everyone || sorted_intersect(ids, requester))
    }
}

fn sorted_intersect(a: &[u32], b: &[u32]) -> bool {
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => return true,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::sorted_intersect;

    #[test]
    fn sorted_lists_intersect_only_on_a_shared_number() {
        assert!(sorted_intersect(&[1, 4, 9], &[2, 4]));
        assert!(!sorted_intersect(&[1, 4, 9], &[2, 3, 10]));
        assert!(!sorted_intersect(&[], &[1]));
    }
}
