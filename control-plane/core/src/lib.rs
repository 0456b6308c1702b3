//! Latch's pure core. Nothing here does I/O.
pub mod flow;
