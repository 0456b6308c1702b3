//! `latch-server`: Latch's control plane.
//!
//! - [`config`]: settings from flags, environment and file, checked at start.
//! - [`store`]: durable state on SQLite or PostgreSQL behind one interface.
//! - [`auth`]: API tokens and callers.
//! - [`lifecycle`]: requests, approvals, the expiry sweeper and the reconciler.
//! - [`connectors`]: the connector CA, enrollment, the mTLS listener and the hub of streams.
//! - [`api`]: the gRPC services and the HTTP endpoints on the public port.
//! - [`server`]: start-up and graceful shutdown.
//!
//! The access-flow model itself is pure and lives in `latch-core`.

pub mod api;
pub mod auth;
pub mod bootstrap;
pub mod config;
pub mod connectors;
pub mod lifecycle;
pub mod metrics;
pub mod problems;
pub mod server;
pub mod store;
