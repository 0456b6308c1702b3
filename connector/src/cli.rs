//! Command-line arguments and what each subcommand does with them.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::ConfigFile;
use crate::enroll::{self, EnrollArgs};
use crate::error::Error;
use crate::provider::ProviderRegistry;
use crate::state_dir::StateDir;

/// Latch connector: syncs inventory and applies grants inside your network.
#[derive(Debug, Parser)]
#[command(name = "latch-connector", version, about, long_about = None)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Trade a one-time enrollment token for this connector's key and certificate
    Enroll {
        /// The control plane's connector listener, like https://latch.internal:7701
        #[arg(long, value_name = "URL")]
        server: String,
        /// The token `latch connectors create` printed (visible to other local users in the
        /// process list: prefer --token-file or LATCH_ENROLL_TOKEN)
        #[arg(
            long,
            env = "LATCH_ENROLL_TOKEN",
            hide_env_values = true,
            value_name = "TOKEN"
        )]
        token: Option<String>,
        /// A file holding the token; wins over --token and LATCH_ENROLL_TOKEN
        #[arg(long, value_name = "PATH")]
        token_file: Option<PathBuf>,
        /// Where to keep the key, certificates and journal
        #[arg(long, value_name = "DIR")]
        state_dir: PathBuf,
        /// Replace an enrollment already in the state directory
        #[arg(long)]
        force: bool,
    },
    /// Connect to the control plane and serve the configured integrations until SIGTERM
    Run {
        /// The connector's TOML config
        #[arg(long, env = "LATCH_CONNECTOR_CONFIG", value_name = "FILE")]
        config: PathBuf,
    },
    /// Check a config (and the state directory and providers it names); print every problem
    Check {
        /// The connector's TOML config
        #[arg(long, env = "LATCH_CONNECTOR_CONFIG", value_name = "FILE")]
        config: PathBuf,
    },
}

/// Exit code for a config that does not validate.
const EXIT_CONFIG: u8 = 2;

pub(crate) fn execute(cli: Cli, registry: ProviderRegistry) -> ExitCode {
    match cli.command {
        Command::Check { config } => check(&config, &registry),
        Command::Enroll {
            server,
            token,
            token_file,
            state_dir,
            force,
        } => {
            let token = match read_token(token, token_file.as_deref()) {
                Ok(token) => token,
                Err(err) => return fail(&err),
            };
            let args = EnrollArgs {
                server,
                token,
                state_dir,
                force,
            };
            match block_on(enroll::enroll(args)) {
                Ok(Ok(info)) => {
                    println!(
                        "enrolled as connector {} ({}); next: write a config with server = {:?} and this state_dir, then `latch-connector run --config FILE`",
                        info.connector_id, info.name, info.server
                    );
                    ExitCode::SUCCESS
                }
                Ok(Err(err)) | Err(err) => fail(&err),
            }
        }
        Command::Run { config } => {
            let config = match crate::config::load(&config, &registry) {
                Ok(config) => config,
                Err(err) => return fail(&err),
            };
            let ran = block_on(async move {
                let shutdown = crate::runtime::shutdown_on_signal();
                crate::runtime::run(config, &registry, shutdown).await
            });
            match ran {
                Ok(Ok(())) => {
                    tracing::info!("connector stopped");
                    ExitCode::SUCCESS
                }
                Ok(Err(err)) | Err(err) => fail(&err),
            }
        }
    }
}

fn fail(err: &Error) -> ExitCode {
    eprintln!("latch-connector: {err}");
    match err {
        Error::Config(_) => ExitCode::from(EXIT_CONFIG),
        _ => ExitCode::FAILURE,
    }
}

fn block_on<F: std::future::Future>(future: F) -> Result<F::Output, Error> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    Ok(runtime.block_on(future))
}

fn read_token(token: Option<String>, token_file: Option<&Path>) -> Result<String, Error> {
    match (token_file, token) {
        (Some(path), _) => std::fs::read_to_string(path)
            .map(|text| text.trim().to_string())
            .map_err(|source| Error::Read {
                path: path.to_path_buf(),
                source,
            }),
        (None, Some(token)) => Ok(token.trim().to_string()),
        (None, None) => Err(Error::NoToken),
    }
}

/// Validates the config, then (if it names them) the state directory and every provider's own
/// settings, and prints every problem found.
fn check(path: &Path, registry: &ProviderRegistry) -> ExitCode {
    let (integrations, problems) = check_problems(path, registry);
    if problems.is_empty() {
        println!("{}: ok ({integrations} integrations)", path.display());
        ExitCode::SUCCESS
    } else {
        println!("{}: {} problem(s)", path.display(), problems.len());
        for problem in &problems {
            println!("  {problem}");
        }
        ExitCode::from(EXIT_CONFIG)
    }
}

/// How many integrations the file configures, and every problem found.
fn check_problems(path: &Path, registry: &ProviderRegistry) -> (usize, Vec<String>) {
    let mut problems = Vec::new();
    let mut integrations = 0;
    match ConfigFile::read(path) {
        Err(Error::Config(found)) => problems.extend(found),
        Err(err) => problems.push(err.to_string()),
        Ok(file) => {
            // Providers check their own keys even when other parts of the file are wrong.
            for (i, integration) in file.integrations.iter().enumerate() {
                if registry.contains(&integration.kind)
                    && let Err(message) = registry.build(integration)
                {
                    problems.push(format!(
                        "integrations[{i}] ({}): {message}",
                        integration.name
                    ));
                }
            }
            integrations = file.integrations.len();
            if let Some(dir) = &file.state_dir
                && !dir.as_os_str().is_empty()
            {
                match StateDir::new(dir).load() {
                    Ok(enrolled) => {
                        if let Ok(validity) = crate::cert::validity(&enrolled.credentials.cert_pem)
                            && validity.not_after <= std::time::SystemTime::now()
                        {
                            problems.push(format!(
                                "state_dir: the certificate expired at {}; enroll again with --force",
                                humantime::format_rfc3339_seconds(validity.not_after)
                            ));
                        }
                    }
                    Err(err) => problems.push(format!("state_dir: {err}")),
                }
            }
            if let Err(Error::Config(found)) = file.validate(registry) {
                problems.extend(found);
            }
        }
    }
    (integrations, problems)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use clap::CommandFactory;

    use super::*;
    use crate::config::IntegrationConfig;
    use crate::provider::Provider;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "latch-connector",
            "enroll",
            "--server",
            "https://latch:7701",
            "--token-file",
            "/run/token",
            "--state-dir",
            "/var/lib/latch",
        ])
        .expect("parse");
        assert!(matches!(cli.command, Command::Enroll { force: false, .. }));
    }

    #[test]
    fn a_token_file_wins_and_a_missing_token_is_explained() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("token");
        std::fs::write(&file, "from-file\n").expect("write");
        assert_eq!(
            read_token(Some("from-flag".into()), Some(&file)).expect("token"),
            "from-file"
        );
        assert_eq!(
            read_token(Some(" flag ".into()), None).expect("token"),
            "flag"
        );
        assert!(matches!(read_token(None, None), Err(Error::NoToken)));
    }

    #[test]
    fn check_reports_config_state_and_provider_problems_together() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("connector.toml");
        std::fs::write(
            &path,
            format!(
                r#"
                server = "https://latch:7701"
                state_dir = "{}"
                sync_interval = "often"
                [[integrations]]
                name = "pg"
                kind = "postgres"
                [[integrations]]
                name = "Bad Name"
                kind = "postgres"
                url = "postgres://db"
                "#,
                dir.path().join("state").display()
            ),
        )
        .expect("write");
        let mut registry = ProviderRegistry::new();
        registry.register(
            "postgres",
            |integration: &IntegrationConfig| -> Result<Arc<dyn Provider>, String> {
                match integration.settings.get("url") {
                    Some(_) => Err("cannot connect in a unit test".into()),
                    None => Err("url: missing".into()),
                }
            },
        );
        let (integrations, problems) = check_problems(&path, &registry);
        assert_eq!(integrations, 2);
        let expected = [
            "integrations[0] (pg): url: missing",
            "integrations[1] (Bad Name): cannot connect in a unit test",
            "state_dir: state directory",
            "sync_interval: \"often\" is not a duration",
            "integrations[1].name: \"Bad Name\" must be lowercase",
        ];
        for want in expected {
            assert!(
                problems.iter().any(|p| p.starts_with(want)),
                "missing {want:?} in {problems:#?}"
            );
        }
        assert_eq!(problems.len(), expected.len(), "{problems:#?}");
    }
}
