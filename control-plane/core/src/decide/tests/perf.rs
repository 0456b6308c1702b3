//! A rough timing of the engine at the benchmark's size (10,000 flows). Ignored by default (it
//! builds large engines); run with
//! `cargo test -p latch-core --release --lib -- --ignored decide_perf --nocapture`
//! (set `LATCH_PERF_SHAPE` to one shape's name to run only that one).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::decide::{
    AccessItem, DecisionRequest, Engine, Outcome, Requester, Resource, VersionedFlow,
};
use crate::flow::{
    ApprovalMode, ApprovalPolicy, Approver, ApproverGroup, DurationPolicy, FlowKind, FlowSpec,
    Principal, Requesters, ResourceSelector, Settings, Target,
};

/// A tiny deterministic generator, so the test needs no randomness crate.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % below
    }
}

/// The shape of a synthetic flow set.
struct Shape {
    name: &'static str,
    integrations: u64,
    types: u64,
    permissions: u64,
    /// One flow in this many has no include and `everyone` as requesters.
    open_flow_every: u64,
}

const ENVS: [&str; 3] = ["prod", "dev", "staging"];

fn flows(shape: &Shape, count: usize, rng: &mut Lcg) -> Vec<VersionedFlow> {
    (0..count)
        .map(|i| {
            let open = rng.next(shape.open_flow_every) == 0;
            let mut include = ResourceSelector::default();
            if !open {
                match rng.next(4) {
                    0 => include.ids = vec![format!("res-{}", rng.next(1_000_000))],
                    1 => {
                        include
                            .tags
                            .insert("team".to_owned(), format!("team-{}", rng.next(200)));
                    }
                    2 => include.descendants_of = vec![format!("ou-{}", rng.next(500))],
                    _ => {
                        include
                            .tags
                            .insert("env".to_owned(), ENVS[rng.next(3) as usize].to_owned());
                    }
                }
            }
            let requesters = if open {
                vec![Principal::Everyone]
            } else {
                vec![Principal::Group(format!("group-{}", rng.next(100)))]
            };
            let approval = if rng.next(2) == 0 {
                ApprovalPolicy {
                    mode: ApprovalMode::Auto,
                    groups: vec![],
                    requester_can_approve: false,
                }
            } else {
                ApprovalPolicy {
                    mode: ApprovalMode::AllOf,
                    groups: vec![
                        ApproverGroup {
                            approvers: vec![Approver::Manager],
                            min: 1,
                        },
                        ApproverGroup {
                            approvers: vec![Approver::Group(format!("leads-{}", rng.next(20)))],
                            min: 1,
                        },
                    ],
                    requester_can_approve: false,
                }
            };
            VersionedFlow {
                spec: FlowSpec {
                    name: format!("flow-{i:05}"),
                    kind: FlowKind::SelfServe,
                    description: String::new(),
                    requesters: Requesters {
                        any_of: requesters,
                        except: vec![],
                    },
                    targets: vec![Target {
                        integration: format!("int-{}", rng.next(shape.integrations)),
                        resource_types: vec![format!("type-{}", rng.next(shape.types))],
                        include,
                        exclude: ResourceSelector::default(),
                        permissions: vec![format!("perm-{}", rng.next(shape.permissions))],
                    }],
                    duration: Some(DurationPolicy {
                        default: Duration::from_secs(3600),
                        max: Duration::from_secs(3600 * (1 + rng.next(8))),
                    }),
                    approval: Some(approval),
                    settings: Settings::default(),
                },
                version: 1,
            }
        })
        .collect()
}

fn request(shape: &Shape, rng: &mut Lcg) -> DecisionRequest {
    let n = rng.next(1_000_000);
    let resource = Resource {
        integration: format!("int-{}", rng.next(shape.integrations)),
        resource_type: format!("type-{}", rng.next(shape.types)),
        id: format!("res-{n}"),
        name: format!("resource {n}"),
        tags: BTreeMap::from([
            ("env".to_owned(), ENVS[rng.next(3) as usize].to_owned()),
            ("team".to_owned(), format!("team-{}", rng.next(200))),
            ("cost-center".to_owned(), format!("cc-{}", rng.next(1000))),
            ("k1".to_owned(), format!("v1-{}", rng.next(125))),
            ("k2".to_owned(), format!("v2-{}", rng.next(125))),
            ("k3".to_owned(), format!("v3-{}", rng.next(125))),
            ("k4".to_owned(), format!("v4-{}", rng.next(125))),
            ("k5".to_owned(), format!("v5-{}", rng.next(125))),
        ]),
        ancestors: vec![format!("ou-{}", rng.next(500)), "root".to_owned()],
        owners: vec![],
    };
    DecisionRequest {
        requester: Requester {
            email: format!("user{}@example.com", rng.next(10_000)),
            groups: (0..10)
                .map(|_| format!("group-{}", rng.next(100)))
                .collect(),
            manager: Some("boss@example.com".to_owned()),
            on_call: Default::default(),
            time_zone: None,
        },
        items: vec![AccessItem {
            resource,
            permission: format!("perm-{}", rng.next(shape.permissions)),
        }],
        duration: None,
        justification: Some("x".to_owned()),
        now: jiff::Timestamp::from_second(1_767_225_600).expect("valid"),
    }
}

#[test]
#[ignore = "timing; run in release on demand"]
fn decide_perf() {
    let shapes = [
        Shape {
            name: "benchmark-like",
            integrations: 20,
            types: 12,
            permissions: 24,
            open_flow_every: 100,
        },
        Shape {
            name: "spread",
            integrations: 50,
            types: 5,
            permissions: 5,
            open_flow_every: 1000,
        },
        Shape {
            name: "dense",
            integrations: 5,
            types: 2,
            permissions: 2,
            open_flow_every: 50,
        },
        Shape {
            name: "crowded",
            integrations: 2,
            types: 1,
            permissions: 1,
            open_flow_every: 10,
        },
    ];
    let only = std::env::var("LATCH_PERF_SHAPE").ok();
    for shape in shapes
        .iter()
        .filter(|s| only.as_deref().is_none_or(|o| o == s.name))
    {
        let mut rng = Lcg(7);
        let started = Instant::now();
        let engine = Engine::new(flows(shape, 10_000, &mut rng));
        let built = started.elapsed();
        let mut times = Vec::new();
        let mut granted = 0;
        let mut candidates = 0;
        for _ in 0..20_000 {
            let req = request(shape, &mut rng);
            let start = Instant::now();
            let decision = engine.decide(&req);
            times.push(start.elapsed());
            if decision.outcome != Outcome::Deny {
                granted += 1;
            }
            candidates += decision.items[0].candidates.len();
        }
        times.sort();
        let p = |q: f64| times[((times.len() as f64) * q) as usize];
        println!(
            "{}: built in {built:?}; decide p50 {:?} p99 {:?} max {:?}; {granted} not denied, {:.1} covering flows on average",
            shape.name,
            p(0.5),
            p(0.99),
            times[times.len() - 1],
            candidates as f64 / times.len() as f64
        );
    }
}
