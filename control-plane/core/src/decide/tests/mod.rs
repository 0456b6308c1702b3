//! Tests of the whole engine: one per rule, approval plans, automatic flows, and property tests
//! comparing the indexed engine with the reference evaluator.
#![allow(clippy::unwrap_used)]

mod approvals;
mod automatic;
mod fixtures;
mod props;
mod rules;
