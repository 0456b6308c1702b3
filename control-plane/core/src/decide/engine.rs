//! The indexed engine, and [`SharedEngine`], which lets a new set of flow versions replace the old
//! one atomically while decisions keep running.

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::flow::FlowSpec;

use super::compiled::{CompiledFlow, compile_owned};
use super::evaluate::{self, Candidates};
use super::index::{TargetIndex, TargetRef};
use super::input::{AccessItem, DecisionRequest, Requester, VersionedFlow};
use super::record::Decision;
use super::requester_keys::RequesterKeys;

/// Decides requests against a fixed set of flows. Immutable once built: to change flows, build a
/// new engine and swap it in through [`SharedEngine`].
#[derive(Debug, Default)]
pub struct Engine {
    /// Current versions, in name order.
    flows: Vec<CompiledFlow>,
    targets: TargetIndex,
    requesters: RequesterKeys,
}

impl Engine {
    /// Builds an engine over the current (highest) version of each flow name in `flows`.
    pub fn new(flows: Vec<VersionedFlow>) -> Engine {
        let flows = compile_owned(flows);
        let targets = TargetIndex::build(&flows);
        let requesters = RequesterKeys::build(&flows);
        Engine {
            flows,
            targets,
            requesters,
        }
    }

    /// Decides a request. Never fails: anything the engine cannot decide is denied.
    pub fn decide(&self, req: &DecisionRequest) -> Decision {
        let mut candidates = Indexed {
            engine: self,
            requester: None,
        };
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
    /// The requester's numbered names (see [`RequesterKeys`]), computed on first need.
    requester: Option<Vec<u32>>,
}

impl Candidates for Indexed<'_> {
    fn related(&mut self, item: &AccessItem, out: &mut Vec<TargetRef>) {
        self.engine.targets.lookup(item, out);
    }

    fn may_request(&mut self, f: u32, email: &str, requester: &Requester) -> bool {
        let keys = &self.engine.requesters;
        let ids = self
            .requester
            .get_or_insert_with(|| keys.of(email, requester));
        keys.may_match(f, ids)
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
