//! Running a parsed command line.

mod audit;
mod directory;
mod flows;
mod tokens;

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::CommandFactory;

use crate::args::{Cli, Command};
use crate::client::{Api, BearerAuth, DEFAULT_TOKEN_FILE, TokenSettings};

/// Runs the command. Errors are printed by the caller.
pub async fn run(cli: Cli, token: TokenSettings) -> Result<ExitCode> {
    let output = cli.global.output;
    let server = cli.global.server;
    match cli.command {
        Command::Flows(command) => {
            flows::run(command, &connect(&server, token).await?, output).await
        }
        Command::Tokens(command) => {
            tokens::run(command, &connect(&server, token).await?, output).await
        }
        Command::Directory(command) => {
            directory::run(command, &connect(&server, token).await?, output).await
        }
        Command::Audit(command) => {
            audit::run(command, &connect(&server, token).await?, output).await
        }
        Command::Completions { shell } => {
            crate::output::print(&completion_script(shell))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The completion script for `shell`. Generated into memory first: clap_complete panics when it
/// cannot write, and `latch completions bash | head` closes the pipe early.
fn completion_script(shell: clap_complete::Shell) -> String {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "latch", &mut script);
    String::from_utf8_lossy(&script).into_owned()
}

/// Connects to the server with the token the settings resolve to.
async fn connect(server: &str, token: TokenSettings) -> Result<Api> {
    let token = token.resolve(Path::new(DEFAULT_TOKEN_FILE))?;
    let auth = BearerAuth::new(token.as_deref())?;
    Api::connect(server, auth).await
}

/// Reads a flow file, or standard input for `-`.
fn read_source(path: &Path) -> Result<String> {
    if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("cannot read flows from standard input")
    } else {
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::completion_script;
    use clap_complete::Shell;

    #[test]
    fn completion_scripts_cover_the_commands() {
        let bash = completion_script(Shell::Bash);
        assert!(bash.contains("_latch()"), "{bash}");
        for command in ["flows", "tokens", "directory", "audit"] {
            assert!(bash.contains(command), "bash completion lacks {command}");
        }
        assert!(completion_script(Shell::Zsh).contains("#compdef latch"));
    }
}
