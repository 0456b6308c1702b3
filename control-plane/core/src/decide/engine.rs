//! The indexed engine, and [`SharedEngine`], which lets a new set of flow versions replace the old
//! one atomically while decisions keep running.

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::flow::{FlowSpec, Principal};

use super::compiled::{CompiledFlow, compile_owned};
use super::evaluate::{self, Candidates};
use super::identity::same_email;
use super::index::{TargetIndex, TargetRef};
use super::input::{AccessItem, DecisionRequest, Requester, VersionedFlow};
use super::record::Decision;

/// Decides requests against a fixed set of flows. Immutable once built: to change flows, build a
/// new engine and swap it in through [`SharedEngine`].
#[derive(Debug, Default)]
pub struct Engine {
    /// Current versions, in name order.
    flows: Vec<CompiledFlow>,
    targets: TargetIndex,
}

impl Engine {
    /// Builds an engine over the current (highest) version of each flow name in `flows`.
    pub fn new(flows: Vec<VersionedFlow>) -> Engine {
        let flows = compile_owned(flows);
        let targets = TargetIndex::build(&flows);
        Engine { flows, targets }
    }

    /// Decides a request. Never fails: anything the engine cannot decide is denied.
    pub fn decide(&self, req: &DecisionRequest) -> Decision {
        let mut candidates = Indexed { engine: self };
        evaluate::decide(&self.flows, req, &mut candidates)
    }

    /// How many flows (current versions, of any kind) the engine holds.
    pub fn flow_count(&self) -> usize {
        self.flows.len()
    }

    /// The flows the engine holds, with their versions, in name order.
    pub fn flows(&self) -> impl Iterator<Item = (&Arc<FlowSpec>, u32)> {
        self.flows.iter().map(|flow| (&flow.spec, flow.version))
    }
}

/// Candidates from the engine's indexes, for one decision.
struct Indexed<'e> {
    engine: &'e Engine,
}

impl Candidates for Indexed<'_> {
    fn related(&mut self, item: &AccessItem, out: &mut Vec<TargetRef>) {
        self.engine.targets.lookup(item, out);
    }

    /// Checks the candidate's own `any_of` (a handful of entries) rather than building the set of
    /// every flow the requester may use: that set costs time in proportion to all flows, while the
    /// index has already narrowed the candidates to the few that could match.
    fn may_request(&mut self, f: u32, email: &str, requester: &Requester) -> bool {
        self.engine.flows.get(f as usize).is_some_and(|flow| {
            flow.spec
                .requesters
                .any_of
                .iter()
                .any(|principal| match principal {
                    Principal::Everyone => true,
                    Principal::User(user) => same_email(user, email),
                    Principal::Group(group) => requester.groups.contains(group),
                    Principal::OnCall(schedule) => requester.on_call.contains(schedule),
                })
        })
    }
}

/// An [`Engine`] that can be replaced while in use. Each decision runs on one engine from start to
/// finish: it sees the flows before an update or after it, never a mix.
#[derive(Debug)]
pub struct SharedEngine {
    current: ArcSwap<Engine>,
}

impl SharedEngine {
    /// Starts with `engine`.
    pub fn new(engine: Engine) -> SharedEngine {
        SharedEngine {
            current: ArcSwap::from_pointee(engine),
        }
    }

    /// The engine in use now. Holding it keeps it alive past a replacement.
    pub fn load(&self) -> Arc<Engine> {
        self.current.load_full()
    }

    /// Puts `engine` in use for every decision that starts from now on.
    pub fn replace(&self, engine: Engine) {
        self.current.store(Arc::new(engine));
    }

    /// Decides a request on the engine in use now.
    pub fn decide(&self, req: &DecisionRequest) -> Decision {
        self.current.load().decide(req)
    }
}

impl Default for SharedEngine {
    fn default() -> SharedEngine {
        SharedEngine::new(Engine::default())
    }
}
