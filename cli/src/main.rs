//! `latch`: the command line for Latch users and admins.

mod args;
mod client;
mod commands;
mod duration;
mod output;

use std::process::ExitCode;

use args::Cli;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let (cli, token) = Cli::parse_with_token_settings();
    match commands::run(cli, token).await {
        Ok(code) => code,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            for line in output::describe_error(&err).lines() {
                eprintln!("error: {line}");
            }
            ExitCode::FAILURE
        }
    }
}

/// Whether output stopped because the reader went away (`latch flows list | head`).
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.downcast_ref::<std::io::Error>()
        .is_some_and(|err| err.kind() == std::io::ErrorKind::BrokenPipe)
}
