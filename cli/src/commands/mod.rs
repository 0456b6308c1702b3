//! Running a parsed command line.

mod audit;
mod connectors;
mod directory;
mod flows;
mod grants;
mod integrations;
mod request_view;
mod requests;
mod resources;
mod tokens;

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::CommandFactory;

use crate::args::{Cli, Command};
use crate::client::{Api, BearerAuth, DEFAULT_TOKEN_FILE, TokenSettings};

/// Runs the command. Errors are printed by the caller.
pub async fn run(cli: Cli, token: TokenSettings) -> Result<ExitCode> {
    let output = cli.global.output;
    let server = cli.global.server;
    match cli.command {
        Command::Access(command) => {
            requests::run_access(command, &connect(&server, token).await?, output).await
        }
        Command::Requests(command) => {
            requests::run(command, &connect(&server, token).await?, output).await
        }
        Command::Grants(command) => {
            grants::run(command, &connect(&server, token).await?, output).await
        }
        Command::Resources(command) => {
            resources::run(command, &connect(&server, token).await?, output).await
        }
        Command::Connectors(command) => {
            connectors::run(command, &connect(&server, token).await?, &server, output).await
        }
        Command::Integrations(command) => {
            integrations::run(command, &connect(&server, token).await?, output).await
        }
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

/// Reads a file (flows, directory, resources), or standard input for `-`.
fn read_source(path: &Path) -> Result<String> {
    if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("cannot read standard input")
    } else {
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
    }
}

/// Every item of a paged list: calls `fetch` with each page token, from the empty one, until the
/// server sends no next token. `fetch` returns a page's items and its next token.
async fn all_pages<T>(
    mut fetch: impl AsyncFnMut(String) -> Result<(Vec<T>, String)>,
) -> Result<Vec<T>> {
    let mut items = Vec::new();
    let mut page_token = String::new();
    loop {
        let (page, next_page_token) = fetch(page_token.clone()).await?;
        items.extend(page);
        if next_page_token.is_empty() {
            return Ok(items);
        }
        if next_page_token == page_token {
            bail!("the server returned the same page twice; stopped listing");
        }
        page_token = next_page_token;
    }
}

#[cfg(test)]
mod tests {
    use super::{all_pages, completion_script};
    use clap_complete::Shell;

    #[tokio::test]
    async fn all_pages_follows_tokens_to_the_end() {
        let mut asked = Vec::new();
        let items = all_pages(async |token: String| {
            asked.push(token.clone());
            Ok(match token.as_str() {
                "" => (vec![1, 2], "p2".to_owned()),
                "p2" => (vec![3], "p3".to_owned()),
                _ => (vec![4], String::new()),
            })
        })
        .await
        .expect("lists");
        assert_eq!(items, [1, 2, 3, 4]);
        assert_eq!(asked, ["", "p2", "p3"]);
    }

    #[tokio::test]
    async fn all_pages_stops_when_a_page_repeats() {
        let err = all_pages(async |_token: String| Ok((vec![1], "same".to_owned())))
            .await
            .expect_err("loops");
        assert!(err.to_string().contains("same page twice"), "{err}");
    }

    #[test]
    fn completion_scripts_cover_the_commands() {
        let bash = completion_script(Shell::Bash);
        assert!(bash.contains("_latch()"), "{bash}");
        for command in [
            "request",
            "approve",
            "deny",
            "cancel",
            "revoke",
            "extend",
            "requests",
            "grants",
            "resources",
            "connectors",
            "integrations",
            "flows",
            "tokens",
            "directory",
            "audit",
        ] {
            // Quoted, so that `request` is not found inside `requests`.
            assert!(
                bash.contains(&format!("\"latch__subcmd__{command}\"")),
                "bash completion lacks {command}"
            );
        }
        assert!(completion_script(Shell::Zsh).contains("#compdef latch"));
    }
}
