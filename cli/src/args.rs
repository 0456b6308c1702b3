//! The command line: every command, option and help text.

use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use clap_complete::Shell;

use crate::client::{Origin, TokenSettings};
use crate::output::OutputFormat;

/// latch: ask for, grant and manage just-in-time access to cloud resources.
#[derive(Debug, Parser)]
#[command(name = "latch", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Address of the Latch server's public API.
    #[arg(
        long,
        global = true,
        env = "LATCH_SERVER",
        default_value = "http://127.0.0.1:7700",
        value_name = "URL"
    )]
    pub server: String,

    /// API token to authenticate with. Prefer --token-file or LATCH_TOKEN: a token on the command
    /// line can be seen by other users of this machine. With no token given, latch reads
    /// ./latch-data/admin.token if it exists (the first admin token a local server writes).
    #[arg(
        long,
        global = true,
        env = "LATCH_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,

    /// File holding the API token; surrounding whitespace is ignored. A --token or LATCH_TOKEN
    /// given the same way (both on the command line, or both in the environment) wins over it.
    #[arg(long, global = true, env = "LATCH_TOKEN_FILE", value_name = "PATH")]
    pub token_file: Option<PathBuf>,

    /// How to print results: aligned columns for people, or JSON for scripts.
    #[arg(
        long,
        short = 'o',
        global = true,
        value_enum,
        default_value_t = OutputFormat::Table
    )]
    pub output: OutputFormat,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check, apply, list, show and delete access flows: the rules for who may get which access.
    #[command(subcommand)]
    Flows(FlowsCommand),

    /// Create, list and revoke API tokens. Needs an admin token.
    #[command(subcommand)]
    Tokens(TokensCommand),

    /// Apply and show the directory: users, groups and on-call schedules.
    #[command(subcommand)]
    Directory(DirectoryCommand),

    /// Read the audit log and verify its hash chain. Needs an admin token.
    #[command(subcommand)]
    Audit(AuditCommand),

    /// Print a shell completion script to standard output.
    ///
    /// For example: `latch completions bash > ~/.local/share/bash-completion/completions/latch`.
    Completions {
        /// The shell to complete for.
        shell: Shell,
    },
}

/// Commands on access flows.
#[derive(Debug, Subcommand)]
pub enum FlowsCommand {
    /// Check flows in a YAML file and report every problem, without storing anything.
    ///
    /// Exits with status 1 when any problem is an error.
    Validate {
        /// YAML file with one or more flows separated by `---`; `-` reads standard input.
        #[arg(short = 'f', long = "file", value_name = "FILE")]
        file: PathBuf,
    },

    /// Create or update the flows in a YAML file, all or nothing.
    ///
    /// A flow whose content changed gets a new version; an identical flow keeps its version.
    /// If any flow has an error, nothing is stored and every problem is printed. Needs an admin token.
    Apply {
        /// YAML file with one or more flows separated by `---`; `-` reads standard input.
        #[arg(short = 'f', long = "file", value_name = "FILE")]
        file: PathBuf,
    },

    /// List the current version of every flow, by name.
    List,

    /// Show one flow as YAML, with its version, digest and who applied it.
    Show {
        /// Name of the flow.
        name: String,

        /// Version to show, including versions of a deleted flow. [default: the current version]
        #[arg(long, value_name = "N")]
        version: Option<u32>,
    },

    /// Delete a flow. Its versions stay in the history. Needs an admin token.
    Delete {
        /// Name of the flow.
        name: String,
    },
}

/// Commands on the directory.
#[derive(Debug, Subcommand)]
pub enum DirectoryCommand {
    /// Replace the static directory with a YAML file (`users`, `groups`, `on_call`) and show what
    /// changed. Needs an admin token.
    Apply {
        /// The directory file; `-` reads standard input.
        #[arg(short = 'f', long = "file", value_name = "FILE")]
        file: std::path::PathBuf,
    },
    /// Show one user (with transitive groups and current on-call shifts), or every user.
    Show {
        /// Email of the user; leave out to list everyone.
        email: Option<String>,
    },
}

/// Commands on the audit log.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// List audit events, oldest first.
    List {
        /// Only events about this subject: a request id, a flow name or a token id.
        #[arg(long, value_name = "ID")]
        request: Option<String>,
        /// Only events at or after this time (RFC 3339, like 2026-11-26T09:00:00Z).
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
    },
    /// Recompute the whole hash chain and say where it breaks, if it does. Exits non-zero when broken.
    Verify,
}

/// Commands on API tokens.
#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Create a token and print its secret, once. In table output only the secret goes to
    /// standard output, so `latch tokens create ... > file` keeps it.
    Create {
        /// Email of the user the token acts as.
        #[arg(long, value_name = "EMAIL")]
        user: String,

        /// Let the token call admin operations (manage flows and tokens).
        #[arg(long)]
        admin: bool,

        /// How long the token works, for example `30m`, `12h` or `7d`; at most 365 days.
        /// [default: 12h, set by the server]
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        ttl: Option<std::time::Duration>,

        /// Free text to recognise the token by.
        #[arg(long, value_name = "TEXT", default_value = "")]
        description: String,
    },

    /// List tokens, newest first, without their secrets.
    List {
        /// Include revoked and expired tokens.
        #[arg(long)]
        all: bool,
    },

    /// Revoke a token at once. Revoking a revoked token changes nothing.
    Revoke {
        /// Id of the token (the part of the secret between `latch_` and the dot).
        id: String,
    },
}

impl Cli {
    /// Parses the process arguments (exiting with usage on a mistake) and notes where the token
    /// settings came from, since the command line beats the environment.
    pub fn parse_with_token_settings() -> (Self, TokenSettings) {
        let matches = Self::command().get_matches();
        Self::from_matches(&matches).unwrap_or_else(|err| err.exit())
    }

    /// The command line and its token settings, from parsed matches.
    fn from_matches(matches: &ArgMatches) -> Result<(Self, TokenSettings), clap::Error> {
        let cli = Self::from_arg_matches(matches)?;
        let settings = TokenSettings {
            token: cli
                .global
                .token
                .clone()
                .map(|token| (token, origin(matches, "token"))),
            token_file: cli
                .global
                .token_file
                .clone()
                .map(|path| (path, origin(matches, "token_file"))),
        };
        Ok((cli, settings))
    }
}

/// Where the value of a global argument came from. Clap gives the top-level matches the value of
/// highest precedence found at any level, with its source.
fn origin(matches: &ArgMatches, id: &str) -> Origin {
    match matches.value_source(id) {
        Some(ValueSource::EnvVariable) => Origin::Environment,
        _ => Origin::CommandLine,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_options_may_follow_the_subcommand() {
        let cli = Cli::try_parse_from([
            "latch",
            "flows",
            "list",
            "--output",
            "json",
            "--server",
            "http://x:1",
        ])
        .expect("valid command line");
        assert_eq!(cli.global.output, OutputFormat::Json);
        assert_eq!(cli.global.server, "http://x:1");
    }

    #[test]
    fn a_token_flag_after_the_subcommand_counts_as_command_line() {
        let matches = Cli::command()
            .try_get_matches_from([
                "latch",
                "flows",
                "list",
                "--token",
                "t",
                "--token-file",
                "f",
            ])
            .expect("valid command line");
        let (_, settings) = Cli::from_matches(&matches).expect("parses");
        assert_eq!(settings.token, Some(("t".to_owned(), Origin::CommandLine)));
        assert_eq!(
            settings.token_file,
            Some((PathBuf::from("f"), Origin::CommandLine))
        );
    }

    #[test]
    fn show_takes_a_version_of_its_own() {
        let cli = Cli::try_parse_from(["latch", "flows", "show", "prod", "--version", "3"])
            .expect("valid command line");
        match cli.command {
            Command::Flows(FlowsCommand::Show { name, version }) => {
                assert_eq!(name, "prod");
                assert_eq!(version, Some(3));
            }
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn ttl_is_a_human_duration() {
        let cli = Cli::try_parse_from([
            "latch",
            "tokens",
            "create",
            "--user",
            "a@example.com",
            "--ttl",
            "12h",
        ])
        .expect("valid command line");
        match cli.command {
            Command::Tokens(TokensCommand::Create { ttl, .. }) => {
                assert_eq!(ttl, Some(std::time::Duration::from_secs(12 * 3600)));
            }
            other => panic!("parsed as {other:?}"),
        }
    }
}
