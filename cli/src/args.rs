//! The command line: every command, option and help text.

use std::path::PathBuf;
use std::time::Duration;

use clap::builder::{NonEmptyStringValueParser, PossibleValuesParser, TypedValueParser};
use clap::parser::ValueSource;
use clap::{ArgGroup, ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use clap_complete::Shell;
use latch_core::request::RequestState;

use crate::client::{Origin, TokenSettings};
use crate::duration::parse_duration;
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
    #[command(flatten)]
    Access(AccessCommand),

    /// List and show access requests.
    #[command(subcommand)]
    Requests(RequestsCommand),

    /// List grants: who holds which permission on which resource, and until when.
    #[command(subcommand)]
    Grants(GrantsCommand),

    /// Check, apply, list, show and delete access flows: the rules for who may get which access.
    #[command(subcommand)]
    Flows(FlowsCommand),

    /// Apply, list and show resources: the inventory access is granted on.
    #[command(subcommand)]
    Resources(ResourcesCommand),

    /// Create, list and revoke connectors: the agents that reach your integrations. Needs an admin
    /// token.
    #[command(subcommand)]
    Connectors(ConnectorsCommand),

    /// List and show integrations, set their owners and ask for syncs.
    #[command(subcommand)]
    Integrations(IntegrationsCommand),

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

/// Commands on one access request, each a command of its own: `latch request`, `latch approve`, ...
#[derive(Debug, Subcommand)]
pub enum AccessCommand {
    /// Ask for access: every --permission on every --resource, for one duration.
    ///
    /// The flows decide at once. Access they allow automatically is granted; access that needs
    /// approval waits for approvers; access they refuse is denied, and the reasons are printed to
    /// standard error with exit status 1.
    Request(RequestArgs),

    /// Approve a pending request. Whether you may is decided now, against the current directory.
    Approve {
        /// Id of the request.
        id: String,

        /// A note for the record.
        #[arg(long, value_name = "TEXT", default_value = "")]
        reason: String,
    },

    /// Deny a pending request.
    Deny {
        /// Id of the request.
        id: String,

        /// Why; required.
        #[arg(long, value_name = "TEXT", value_parser = NonEmptyStringValueParser::new())]
        reason: String,
    },

    /// Withdraw your own request while it is pending or approved.
    Cancel {
        /// Id of the request.
        id: String,
    },

    /// End granted access early. The requester, an admin or an approver of its flows may.
    Revoke {
        /// Id of the request.
        id: String,

        /// Why; recorded in the audit log.
        #[arg(long, value_name = "TEXT", default_value = "")]
        reason: String,
    },

    /// Ask for more time on active access. The flows decide again for the longer duration, never
    /// past their maximum.
    Extend {
        /// Id of the request.
        id: String,

        /// How much longer, from the current expiry: for example `30m`, `1h`, `1h30m` or `2d`.
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        duration: Duration,

        /// Why you need more time; some flows require it.
        #[arg(long, value_name = "TEXT", default_value = "")]
        reason: String,
    },
}

/// What `latch request` asks for.
#[derive(Debug, Args)]
pub struct RequestArgs {
    /// Id of a resource, as `latch resources list` shows it. Repeat for more resources.
    #[arg(long = "resource", value_name = "ID", required = true)]
    pub resources: Vec<String>,

    /// A permission, as the flows name it. Repeat for more; each is asked for on every resource.
    #[arg(long = "permission", value_name = "PERMISSION", required = true)]
    pub permissions: Vec<String>,

    /// How long: for example `30m`, `1h`, `1h30m`, `90s` or `2d`. [default: the flows' default]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Option<Duration>,

    /// Why you need the access; some flows require it.
    #[arg(long, value_name = "TEXT", default_value = "")]
    pub reason: String,

    /// Wait until the access is active or the request has ended, checking every half second.
    /// Exits with status 1 unless the access became active.
    #[arg(long)]
    pub wait: bool,
}

/// Commands on access requests.
#[derive(Debug, Subcommand)]
pub enum RequestsCommand {
    /// List requests, newest first.
    List {
        /// Only your own requests.
        #[arg(long)]
        mine: bool,

        /// Only pending requests you may approve now.
        #[arg(long)]
        pending_my_approval: bool,

        /// Only requests in this state.
        #[arg(long, value_name = "STATE", value_parser = request_state())]
        state: Option<RequestState>,

        /// Only requests of this requester.
        #[arg(long, value_name = "EMAIL")]
        requester: Option<String>,
    },

    /// Show one request with its decision, approvals and grants.
    Show {
        /// Id of the request.
        id: String,
    },
}

/// A request state, by name; the names are offered to shell completion.
fn request_state() -> impl TypedValueParser<Value = RequestState> {
    PossibleValuesParser::new(RequestState::ALL.map(RequestState::as_str))
        .try_map(|name| name.parse::<RequestState>())
}

/// Commands on grants.
#[derive(Debug, Subcommand)]
pub enum GrantsCommand {
    /// List grants, newest first.
    List {
        /// Only grants that are active.
        #[arg(long)]
        active: bool,

        /// Only grants held by this person.
        #[arg(long, value_name = "EMAIL")]
        user: Option<String>,
    },
    /// Print the login made for your request (a temporary database user) as JSON:
    /// `{"username","password","host","port","database"}`; an array when the request has several.
    ///
    /// Only the requester may fetch them, and every fetch is audited. They exist while the access
    /// is active and are deleted at revoke.
    Credentials {
        /// The request's id.
        request_id: String,
    },
}

/// Commands on resources.
#[derive(Debug, Subcommand)]
pub enum ResourcesCommand {
    /// Replace the static inventory with a YAML file (a `resources` list) and show what changed.
    ///
    /// Active access the flows no longer allow on a changed resource is revoked; the requests are
    /// listed. If the file has any problem, nothing changes and every problem is printed. Needs an
    /// admin token.
    Apply {
        /// The inventory file; `-` reads standard input.
        #[arg(short = 'f', long = "file", value_name = "FILE")]
        file: PathBuf,
    },

    /// List resources, by id.
    List {
        /// Only resources of this integration.
        #[arg(long, value_name = "NAME")]
        integration: Option<String>,

        /// Only resources of this type, for example `aws.account`.
        #[arg(long = "type", value_name = "TYPE")]
        resource_type: Option<String>,

        /// Only resources with this tag, for example `env=prod`. Repeat to require several.
        #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = parse_tag)]
        tags: Vec<(String, String)>,

        /// Only resources whose id or name contains this text, ignoring case.
        #[arg(long, value_name = "TEXT")]
        search: Option<String>,
    },

    /// Show one resource with its tags, owners, ancestors, permissions and active grants.
    Show {
        /// Id of the resource.
        id: String,
    },
}

/// A `--tag` filter: `KEY=VALUE`, split at the first `=`; the value may be empty.
///
/// The error names the value and says what is wrong, for clap to print after the option's name.
pub fn parse_tag(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, _)) if key.trim().is_empty() => Err(format!(
            "{text:?} has no key before the `=`; write KEY=VALUE, like env=prod"
        )),
        Some((key, value)) => Ok((key.to_owned(), value.to_owned())),
        None => Err(format!(
            "{text:?} is not KEY=VALUE; write one like env=prod"
        )),
    }
}

/// Commands on connectors.
#[derive(Debug, Subcommand)]
pub enum ConnectorsCommand {
    /// Register a connector and print its one-time enrollment token, which is not shown again.
    ///
    /// In table output only the token goes to standard output, so `latch connectors create ... >
    /// file` keeps it; how to enroll the connector with it is printed to standard error.
    Create {
        /// Name of the connector: 1 to 63 lowercase letters, digits and `-`.
        name: String,

        /// How long the enrollment token works: for example `30m`, `1h` or `2d`.
        /// [default: 1h, set by the server]
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        token_ttl: Option<Duration>,
    },

    /// List connectors, by name, with their state and the integrations they serve.
    List,

    /// Revoke a connector: its certificate is refused from now on and its stream is closed. What
    /// it had not finished goes to another connector of the same integration.
    Revoke {
        /// Name of the connector.
        name: String,
    },
}

/// Commands on integrations.
#[derive(Debug, Subcommand)]
pub enum IntegrationsCommand {
    /// List integrations, by name, with their connectors, last sync and counts.
    List,

    /// Show one integration with its owners and capabilities.
    Show {
        /// Name of the integration.
        name: String,
    },

    /// Replace an integration's owners: they approve for `integration_owner`. Needs an admin
    /// token.
    SetOwners(SetOwnersArgs),

    /// Ask the integration's connector for a full sync now and print the command's id. Needs an
    /// admin token.
    Sync {
        /// Name of the integration.
        name: String,
    },

    /// List the groups the integration's last sync reported (Identity Store groups, say) with
    /// their members. A member is linked when a directory user has its email.
    Groups {
        /// Name of the integration.
        name: String,
    },
}

/// What `latch integrations set-owners` sets: users, groups, or nothing with `--clear`.
#[derive(Debug, Args)]
#[command(group(
    ArgGroup::new("owners")
        .required(true)
        .multiple(true)
        .args(["users", "groups", "clear"])
))]
pub struct SetOwnersArgs {
    /// Name of the integration.
    pub name: String,

    /// An owner, by email. Repeat for more.
    #[arg(long = "user", value_name = "EMAIL", value_parser = NonEmptyStringValueParser::new())]
    pub users: Vec<String>,

    /// An owner group, by name. Repeat for more.
    #[arg(long = "group", value_name = "NAME", value_parser = NonEmptyStringValueParser::new())]
    pub groups: Vec<String>,

    /// Remove every owner.
    #[arg(long, conflicts_with_all = ["users", "groups"])]
    pub clear: bool,
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
    fn request_takes_repeated_resources_and_permissions() {
        let cli = Cli::try_parse_from([
            "latch",
            "request",
            "--resource",
            "r1",
            "--permission",
            "read",
            "--resource",
            "r2",
            "--duration",
            "1h30m",
            "--wait",
        ])
        .expect("valid command line");
        match cli.command {
            Command::Access(AccessCommand::Request(args)) => {
                assert_eq!(args.resources, ["r1", "r2"]);
                assert_eq!(args.permissions, ["read"]);
                assert_eq!(args.duration, Some(Duration::from_secs(5_400)));
                assert!(args.wait);
            }
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn request_needs_a_resource_and_a_permission() {
        assert!(Cli::try_parse_from(["latch", "request", "--permission", "read"]).is_err());
        assert!(Cli::try_parse_from(["latch", "request", "--resource", "r1"]).is_err());
    }

    #[test]
    fn a_bad_duration_is_refused_naming_the_value() {
        let err = Cli::try_parse_from(["latch", "extend", "01J", "--duration", "an hour"])
            .expect_err("not a duration");
        assert!(
            err.to_string().contains("\"an hour\" is not a duration"),
            "{err}"
        );
    }

    #[test]
    fn deny_needs_a_reason() {
        assert!(Cli::try_parse_from(["latch", "deny", "01J"]).is_err());
        assert!(Cli::try_parse_from(["latch", "deny", "01J", "--reason", ""]).is_err());
        let cli = Cli::try_parse_from(["latch", "deny", "01J", "--reason", "not now"])
            .expect("valid command line");
        match cli.command {
            Command::Access(AccessCommand::Deny { id, reason }) => {
                assert_eq!((id.as_str(), reason.as_str()), ("01J", "not now"));
            }
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn request_states_are_checked_by_name() {
        let cli = Cli::try_parse_from(["latch", "requests", "list", "--state", "active"])
            .expect("valid command line");
        match cli.command {
            Command::Requests(RequestsCommand::List { state, .. }) => {
                assert_eq!(state, Some(RequestState::Active));
            }
            other => panic!("parsed as {other:?}"),
        }
        assert!(Cli::try_parse_from(["latch", "requests", "list", "--state", "granted"]).is_err());
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

    #[test]
    fn resources_list_takes_repeated_tags_and_a_search() {
        let cli = Cli::try_parse_from([
            "latch",
            "resources",
            "list",
            "--integration",
            "aws-prod",
            "--type",
            "aws.account",
            "--tag",
            "env=prod",
            "--tag",
            "team=a=b",
            "--tag",
            "empty=",
            "--search",
            "Billing",
        ])
        .expect("valid command line");
        match cli.command {
            Command::Resources(ResourcesCommand::List {
                integration,
                resource_type,
                tags,
                search,
            }) => {
                assert_eq!(integration.as_deref(), Some("aws-prod"));
                assert_eq!(resource_type.as_deref(), Some("aws.account"));
                let tags: Vec<(&str, &str)> = tags
                    .iter()
                    .map(|(key, value)| (key.as_str(), value.as_str()))
                    .collect();
                assert_eq!(tags, [("env", "prod"), ("team", "a=b"), ("empty", "")]);
                assert_eq!(search.as_deref(), Some("Billing"));
            }
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn a_tag_without_equals_is_refused_naming_the_flag_and_value() {
        for (value, why) in [
            ("env", "\"env\" is not KEY=VALUE"),
            ("=prod", "\"=prod\" has no key"),
        ] {
            let err = Cli::try_parse_from(["latch", "resources", "list", "--tag", value])
                .expect_err(value);
            let text = err.to_string();
            assert!(text.contains("--tag"), "{text}");
            assert!(text.contains(why), "{text}");
        }
    }

    #[test]
    fn connectors_create_takes_a_token_ttl() {
        let cli = Cli::try_parse_from([
            "latch",
            "connectors",
            "create",
            "edge-1",
            "--token-ttl",
            "1h30m",
        ])
        .expect("valid command line");
        match cli.command {
            Command::Connectors(ConnectorsCommand::Create { name, token_ttl }) => {
                assert_eq!(name, "edge-1");
                assert_eq!(token_ttl, Some(Duration::from_secs(5_400)));
            }
            other => panic!("parsed as {other:?}"),
        }
        let err = Cli::try_parse_from([
            "latch",
            "connectors",
            "create",
            "edge-1",
            "--token-ttl",
            "soon",
        ])
        .expect_err("not a duration");
        assert!(
            err.to_string().contains("\"soon\" is not a duration"),
            "{err}"
        );
        assert!(Cli::try_parse_from(["latch", "connectors", "create"]).is_err());
    }

    #[test]
    fn set_owners_takes_repeated_users_and_groups() {
        let cli = Cli::try_parse_from([
            "latch",
            "integrations",
            "set-owners",
            "aws-prod",
            "--user",
            "ana@example.com",
            "--group",
            "sre",
            "--user",
            "bo@example.com",
        ])
        .expect("valid command line");
        match cli.command {
            Command::Integrations(IntegrationsCommand::SetOwners(args)) => {
                assert_eq!(args.name, "aws-prod");
                assert_eq!(args.users, ["ana@example.com", "bo@example.com"]);
                assert_eq!(args.groups, ["sre"]);
                assert!(!args.clear);
            }
            other => panic!("parsed as {other:?}"),
        }
        let cli = Cli::try_parse_from(["latch", "integrations", "set-owners", "x", "--clear"])
            .expect("valid command line");
        match cli.command {
            Command::Integrations(IntegrationsCommand::SetOwners(args)) => {
                assert!(args.clear);
                assert!(args.users.is_empty() && args.groups.is_empty());
            }
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn set_owners_needs_owners_or_clear_but_not_both() {
        let err = Cli::try_parse_from(["latch", "integrations", "set-owners", "aws-prod"])
            .expect_err("nothing to set");
        assert_eq!(
            err.kind(),
            clap::error::ErrorKind::MissingRequiredArgument,
            "{err}"
        );
        let err = Cli::try_parse_from([
            "latch",
            "integrations",
            "set-owners",
            "aws-prod",
            "--clear",
            "--user",
            "ana@example.com",
        ])
        .expect_err("clear and a user");
        assert_eq!(
            err.kind(),
            clap::error::ErrorKind::ArgumentConflict,
            "{err}"
        );
        assert!(
            Cli::try_parse_from([
                "latch",
                "integrations",
                "set-owners",
                "aws-prod",
                "--user",
                ""
            ])
            .is_err()
        );
    }
}
