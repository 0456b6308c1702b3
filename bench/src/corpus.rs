//! A seeded synthetic corpus: flows, resources, users and a mix of requests.
//!
//! Shapes follow the issue: resources carry 8 tags drawn from a skewed distribution over about 2,000
//! values; users sit in about 5 of about 500 groups; requests mix those that are allowed, need
//! approval, are denied, and match no flow. Everything derives from the seed, so a run is repeatable.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use latch_core::decide::{AccessItem, DecisionRequest, Requester, Resource, VersionedFlow};
use latch_core::flow::{
    ApprovalMode, ApprovalPolicy, Approver, ApproverGroup, DurationPolicy, FlowKind, FlowSpec,
    Justification, Principal, Requesters, ResourceSelector, Settings, Target, Timeframe, Weekday,
};
use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};

/// Integrations by default; `--integrations` changes it.
pub const INTEGRATIONS: usize = 20;
pub const TYPES: usize = 12;
pub const PERMISSIONS: usize = 24;
pub const TAG_KEYS: usize = 16;
/// 16 keys × 125 values = 2,000 distinct tag values.
pub const VALUES_PER_KEY: usize = 125;
pub const TAGS_PER_RESOURCE: usize = 8;
pub const OUS: usize = 200;
pub const GROUPS: usize = 500;
pub const TIME_ZONE: &str = "Europe/Berlin";

/// What to generate.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub flows: usize,
    pub resources: usize,
    pub users: usize,
    pub requests: usize,
    pub seed: u64,
    /// Number of integrations resources and flows spread over (at most 65,536).
    pub integrations: usize,
}

/// A resource kept small: a million of them must fit comfortably.
#[derive(Debug, Clone, Copy)]
pub struct CompactResource {
    pub integration: u16,
    pub rtype: u8,
    pub ou: u16,
    pub tags: [(u8, u8); TAGS_PER_RESOURCE],
}

/// The generated corpus.
pub struct Corpus {
    pub flows: Vec<VersionedFlow>,
    pub resources: Vec<CompactResource>,
    pub user_groups: Vec<Vec<u16>>,
    pub requests: Vec<DecisionRequest>,
    /// Index of the resource, user and permission behind each request (for the Cedar translation).
    pub request_keys: Vec<(u32, u32, u8)>,
}

pub fn integration(i: usize) -> String {
    format!("int-{i}")
}
pub fn rtype(i: usize) -> String {
    format!("type-{i}")
}
pub fn permission(i: usize) -> String {
    format!("perm-{i}")
}
pub fn tag_key(i: usize) -> String {
    format!("k{i}")
}
pub fn tag_value(key: usize, value: usize) -> String {
    format!("v{key}-{value}")
}
pub fn group(i: usize) -> String {
    format!("g-{i}")
}
pub fn user(i: usize) -> String {
    format!("u-{i}@example.com")
}
pub fn ou(i: usize) -> String {
    format!("ou-{i}")
}
pub fn resource_id(i: usize) -> String {
    format!("res-{i}")
}

/// Index in `0..n`, heavily skewed towards 0 (a few values are common, most are rare).
fn skewed(rng: &mut StdRng, n: usize) -> usize {
    let u: f64 = rng.random();
    ((u * u * u) * n as f64) as usize % n
}

impl Corpus {
    pub fn generate(shape: Shape) -> Corpus {
        let mut rng = StdRng::seed_from_u64(shape.seed);
        let resources: Vec<CompactResource> = (0..shape.resources)
            .map(|_| random_resource(&mut rng, shape.integrations))
            .collect();
        let user_groups: Vec<Vec<u16>> =
            (0..shape.users).map(|_| random_groups(&mut rng)).collect();
        let flows: Vec<VersionedFlow> = (0..shape.flows)
            .map(|i| VersionedFlow {
                spec: random_flow(&mut rng, i, resources.len(), shape.integrations),
                version: 1,
            })
            .collect();
        let mut corpus = Corpus {
            flows,
            resources,
            user_groups,
            requests: Vec::new(),
            request_keys: Vec::new(),
        };
        corpus.generate_requests(&mut rng, shape.requests);
        corpus
    }

    fn generate_requests(&mut self, rng: &mut StdRng, count: usize) {
        let lookup = ResourceLookup::build(&self.resources);
        let mut members: Vec<Vec<u32>> = vec![Vec::new(); GROUPS];
        for (user, groups) in self.user_groups.iter().enumerate() {
            for &g in groups {
                members[usize::from(g)].push(user as u32);
            }
        }
        let now = jiff::Timestamp::from_second(1_795_600_800).expect("fixed time"); // Wed 2026-11-25 10:00 UTC
        for _ in 0..count {
            let (user, resource, perm) = if rng.random_bool(0.6) {
                self.targeted(rng, &lookup, &members)
            } else {
                (
                    rng.random_range(0..self.user_groups.len()) as u32,
                    rng.random_range(0..self.resources.len()) as u32,
                    rng.random_range(0..PERMISSIONS) as u8,
                )
            };
            let duration = rng
                .random_bool(0.3)
                .then(|| Duration::from_secs(3600 * rng.random_range(1..=10)));
            let justification = rng.random_bool(0.9).then(|| "benchmark".to_string());
            self.requests.push(DecisionRequest {
                requester: self.requester(user as usize),
                items: vec![AccessItem {
                    resource: self.resource(resource as usize),
                    permission: permission(perm.into()),
                }],
                duration,
                justification,
                now,
            });
            self.request_keys.push((resource, user, perm));
        }
    }

    /// A request aimed at a random flow: a member of one of its requester groups, a resource its
    /// include selector picks, one of its permissions. Whether it is allowed still depends on the
    /// exclusions, durations, justification and competing flows.
    fn targeted(
        &self,
        rng: &mut StdRng,
        lookup: &ResourceLookup,
        members: &[Vec<u32>],
    ) -> (u32, u32, u8) {
        let flow = &self.flows[rng.random_range(0..self.flows.len())].spec;
        let user = flow
            .requesters
            .any_of
            .iter()
            .filter_map(|p| match p {
                Principal::Group(g) => g.strip_prefix("g-").and_then(|n| n.parse::<usize>().ok()),
                _ => None,
            })
            .filter_map(|g| members[g].choose(rng).copied())
            .next()
            .unwrap_or_else(|| rng.random_range(0..self.user_groups.len()) as u32);
        let target = &flow.targets[0];
        let integration = parse_suffix(&target.integration, "int-");
        let rtype = target
            .resource_types
            .first()
            .map_or_else(|| rng.random_range(0..TYPES), |t| parse_suffix(t, "type-"));
        let candidates: &[u32] = if let Some((k, v)) = target.include.tags.iter().next() {
            lookup.by_tag(integration, rtype, parse_suffix(k, "k"), parse_value(v))
        } else if let Some(id) = target.include.ids.first() {
            return (
                user,
                parse_suffix(id, "res-") as u32,
                pick_permission(rng, target),
            );
        } else if let Some(ou_id) = target.include.descendants_of.first() {
            lookup.by_ou(integration, rtype, parse_suffix(ou_id, "ou-"))
        } else {
            lookup.by_type(integration, rtype)
        };
        let resource = candidates
            .choose(rng)
            .copied()
            .unwrap_or_else(|| rng.random_range(0..self.resources.len()) as u32);
        (user, resource, pick_permission(rng, target))
    }

    pub fn requester(&self, user_index: usize) -> Requester {
        Requester {
            email: user(user_index),
            groups: self.user_groups[user_index]
                .iter()
                .map(|&g| group(g.into()))
                .collect(),
            manager: Some(format!("manager-{}@example.com", user_index % 100)),
            on_call: BTreeSet::new(),
            time_zone: None,
        }
    }

    pub fn resource(&self, index: usize) -> Resource {
        let r = &self.resources[index];
        Resource {
            integration: integration(r.integration.into()),
            resource_type: rtype(r.rtype.into()),
            id: resource_id(index),
            name: format!("name-{index}"),
            tags: r
                .tags
                .iter()
                .map(|&(k, v)| (tag_key(k.into()), tag_value(k.into(), v.into())))
                .collect::<BTreeMap<_, _>>(),
            ancestors: vec![ou(r.ou.into()), "root".to_string()],
            owners: Vec::new(),
        }
    }
}

fn pick_permission(rng: &mut StdRng, target: &Target) -> u8 {
    target
        .permissions
        .choose(rng)
        .map_or(0, |p| parse_suffix(p, "perm-") as u8)
}

fn parse_suffix(text: &str, prefix: &str) -> usize {
    text.strip_prefix(prefix)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn parse_value(text: &str) -> usize {
    text.rsplit_once('-')
        .and_then(|(_, n)| n.parse().ok())
        .unwrap_or(0)
}

fn random_resource(rng: &mut StdRng, integrations: usize) -> CompactResource {
    let mut keys: Vec<u8> = (0..TAG_KEYS as u8).collect();
    keys.shuffle(rng);
    let mut tags = [(0u8, 0u8); TAGS_PER_RESOURCE];
    for (slot, key) in tags.iter_mut().zip(keys) {
        *slot = (key, skewed(rng, VALUES_PER_KEY) as u8);
    }
    tags.sort_unstable();
    CompactResource {
        integration: rng.random_range(0..integrations.clamp(1, 65_536)) as u16,
        rtype: rng.random_range(0..TYPES) as u8,
        ou: rng.random_range(0..OUS) as u16,
        tags,
    }
}

fn random_groups(rng: &mut StdRng) -> Vec<u16> {
    let count = rng.random_range(3..=7);
    let mut groups: Vec<u16> = (0..count).map(|_| skewed(rng, GROUPS) as u16).collect();
    groups.sort_unstable();
    groups.dedup();
    groups
}

fn random_flow(rng: &mut StdRng, index: usize, resources: usize, integrations: usize) -> FlowSpec {
    let mut any_of: Vec<Principal> = (0..rng.random_range(1..=3))
        .map(|_| Principal::Group(group(rng.random_range(0..GROUPS))))
        .collect();
    if rng.random_bool(0.01) {
        any_of = vec![Principal::Everyone];
    }
    let except = if rng.random_bool(0.1) {
        vec![Principal::Group(group(rng.random_range(0..GROUPS)))]
    } else {
        Vec::new()
    };
    let mut include = ResourceSelector::default();
    match rng.random_range(0..100) {
        0..75 => {
            let key = rng.random_range(0..TAG_KEYS);
            include
                .tags
                .insert(tag_key(key), tag_value(key, skewed(rng, VALUES_PER_KEY)));
        }
        75..80 => {
            include.ids = (0..3)
                .map(|_| resource_id(rng.random_range(0..resources.max(1))))
                .collect()
        }
        80..90 => include.descendants_of = vec![ou(rng.random_range(0..OUS))],
        _ => {}
    }
    let mut exclude = ResourceSelector::default();
    if rng.random_bool(0.2) {
        let key = rng.random_range(0..TAG_KEYS);
        exclude
            .tags
            .insert(tag_key(key), tag_value(key, skewed(rng, VALUES_PER_KEY)));
    }
    let mut permissions: Vec<String> = (0..rng.random_range(1..=2))
        .map(|_| permission(rng.random_range(0..PERMISSIONS)))
        .collect();
    permissions.dedup();
    let target = Target {
        integration: integration(rng.random_range(0..integrations.clamp(1, 65_536))),
        resource_types: if rng.random_bool(0.9) {
            vec![rtype(rng.random_range(0..TYPES))]
        } else {
            Vec::new()
        },
        include,
        exclude,
        permissions,
    };
    let automatic = rng.random_bool(0.05);
    let approval = match rng.random_range(0..10) {
        _ if automatic => None,
        0..3 => Some(ApprovalPolicy {
            mode: ApprovalMode::Auto,
            groups: Vec::new(),
            requester_can_approve: false,
        }),
        3..8 => Some(ApprovalPolicy {
            mode: ApprovalMode::AnyOf,
            groups: vec![ApproverGroup {
                approvers: vec![Approver::Manager],
                min: 1,
            }],
            requester_can_approve: false,
        }),
        _ => Some(ApprovalPolicy {
            mode: ApprovalMode::AllOf,
            groups: vec![
                ApproverGroup {
                    approvers: vec![Approver::Manager],
                    min: 1,
                },
                ApproverGroup {
                    approvers: vec![Approver::Group(group(rng.random_range(0..GROUPS)))],
                    min: 1,
                },
            ],
            requester_can_approve: false,
        }),
    };
    let timeframe = rng.random_bool(0.05).then(|| Timeframe {
        days: vec![
            Weekday::Mon,
            Weekday::Tue,
            Weekday::Wed,
            Weekday::Thu,
            Weekday::Fri,
        ],
        from: jiff::civil::time(8, 0, 0, 0),
        to: jiff::civil::time(19, 0, 0, 0),
        time_zone: TIME_ZONE.to_string(),
    });
    FlowSpec {
        name: format!("flow-{index:06}"),
        kind: if automatic {
            FlowKind::Automatic
        } else {
            FlowKind::SelfServe
        },
        description: String::new(),
        requesters: Requesters { any_of, except },
        targets: vec![target],
        duration: Some(DurationPolicy {
            default: Duration::from_secs(3600),
            max: Duration::from_secs(3600 * rng.random_range(2..=8)),
        }),
        approval,
        settings: Settings {
            justification: if rng.random_bool(0.1) {
                Justification::Required
            } else {
                Justification::Optional
            },
            timeframe,
        },
    }
}

/// Resources by the attributes flows select on, so targeted requests can find a matching one.
struct ResourceLookup {
    tags: HashMap<(u16, u8, u8, u8), Vec<u32>>,
    ous: HashMap<(u16, u8, u16), Vec<u32>>,
    types: HashMap<(u16, u8), Vec<u32>>,
}

impl ResourceLookup {
    fn build(resources: &[CompactResource]) -> Self {
        let mut lookup = ResourceLookup {
            tags: HashMap::new(),
            ous: HashMap::new(),
            types: HashMap::new(),
        };
        for (i, r) in resources.iter().enumerate() {
            let i = i as u32;
            for &(k, v) in &r.tags {
                lookup
                    .tags
                    .entry((r.integration, r.rtype, k, v))
                    .or_default()
                    .push(i);
            }
            lookup
                .ous
                .entry((r.integration, r.rtype, r.ou))
                .or_default()
                .push(i);
            lookup
                .types
                .entry((r.integration, r.rtype))
                .or_default()
                .push(i);
        }
        lookup
    }

    fn by_tag(&self, integration: usize, rtype: usize, key: usize, value: usize) -> &[u32] {
        self.tags
            .get(&(integration as u16, rtype as u8, key as u8, value as u8))
            .map_or(&[], Vec::as_slice)
    }

    fn by_ou(&self, integration: usize, rtype: usize, ou: usize) -> &[u32] {
        self.ous
            .get(&(integration as u16, rtype as u8, ou as u16))
            .map_or(&[], Vec::as_slice)
    }

    fn by_type(&self, integration: usize, rtype: usize) -> &[u32] {
        self.types
            .get(&(integration as u16, rtype as u8))
            .map_or(&[], Vec::as_slice)
    }
}
