//! The reference evaluator: the same rules as [`Engine`](super::Engine), without the index. It
//! offers every target of every flow as a candidate, so it is slow and obviously complete; the
//! property tests check the engine gives the same decisions.

use super::compiled::compile_borrowed;
use super::evaluate;
use super::input::{AccessItem, DecisionRequest, VersionedFlow};
use super::record::Decision;

/// Decides `req` against the current versions of `flows` by scanning every flow.
pub fn decide(flows: &[VersionedFlow], req: &DecisionRequest) -> Decision {
    let compiled = compile_borrowed(flows);
    let all: Vec<(u32, u32)> = compiled
        .iter()
        .enumerate()
        .flat_map(|(f, flow)| (0..flow.spec.targets.len()).map(move |t| (position(f), position(t))))
        .collect();
    evaluate::decide(&compiled, req, &mut Everything(&all))
}

/// Every target of every flow, for every pair.
struct Everything<'a>(&'a [(u32, u32)]);

impl evaluate::Candidates for Everything<'_> {
    fn related(&mut self, _item: &AccessItem, out: &mut Vec<(u32, u32)>) {
        out.extend_from_slice(self.0);
    }
}

fn position(at: usize) -> u32 {
    u32::try_from(at).unwrap_or(u32::MAX)
}
