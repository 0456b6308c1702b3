use clap::Parser;
use latch_server::config::{Config, Flags};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config = match Config::load(Flags::parse()) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("latch-server: {err}");
            return std::process::ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&config.log))
        .init();
    match latch_server::server::run(config, latch_server::server::shutdown_signal()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
