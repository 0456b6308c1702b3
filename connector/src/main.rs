//! `latch-connector`: the agent that will run inside the customer's network.
//!
//! Enrollment, the mTLS stream and the providers arrive with the connector-runtime issue; for now the
//! binary only describes itself.

use clap::Parser;

/// Latch connector: syncs inventory and applies grants inside your network.
#[derive(Debug, Parser)]
#[command(name = "latch-connector", version, about, long_about = None)]
struct Args {}

fn main() {
    let _args = Args::parse();
    println!(
        "latch-connector {}: enrollment and the control-plane stream are not built yet; see docs/ARCHITECTURE.md",
        env!("CARGO_PKG_VERSION")
    );
}
