//! Latch's pure core. Nothing here does I/O.
pub mod decide;
pub mod directory;
pub mod flow;
pub mod inventory;
pub mod request;
mod text;
