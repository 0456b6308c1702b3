//! Access flows: the versioned rules that say who may get which permissions on which resources, for
//! how long, and who must approve.
//!
//! A flow arrives either as YAML ([`parse_yaml`]) or in the API's structured form ([`from_proto`]).
//! Both read every flow of the source, check it against the same rules and report every problem at
//! once, each with the path of the offending field. The result, [`Parsed`], holds the flows that
//! passed and the problems; applying is all or nothing, so a source with any error must not be applied.
//!
//! The way back: [`FlowSpec::to_yaml`], [`render_yaml_stream`] and [`FlowSpec::to_proto`], each read
//! back to an equal spec. [`FlowSpec::digest`] identifies a flow's content.
//!
//! ```
//! use latch_core::flow::parse_yaml;
//!
//! let parsed = parse_yaml("name: db-read\nkind: self_serve\nrequesters: { any_of: [{ group: eng }] }\n\
//!                          targets: [{ integration: pg-main, permissions: [reader] }]\n\
//!                          duration: { default: 5x, max: 1h }\napproval: { mode: auto }\n");
//! assert_eq!(
//!     parsed.problem_lines(),
//!     [r#"duration.default: "5x" is not a duration"#],
//! );
//! assert!(parsed.flows.is_empty());
//! ```

mod digest;
mod known;
mod model;
mod parsed;
mod problem;
mod proto;
mod render;
mod validate;
mod yaml;

pub use known::{KnownNames, unknown_reference_warnings};
pub use model::{
    ApprovalMode, ApprovalPolicy, Approver, ApproverGroup, DurationPolicy, FlowKind, FlowSpec,
    Justification, Principal, Requesters, ResourceSelector, Settings, Target, Timeframe, Weekday,
};
pub use parsed::{FlowError, Parsed, ValidFlows};
pub use problem::{Problem, Severity, WithFlow};
pub use proto::from_proto;
pub use render::render_yaml_stream;
pub use validate::{MAX_DURATION, is_valid_name};
pub use yaml::parse_yaml;
