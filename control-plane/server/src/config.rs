//! Server settings: defaults, then the `--config` file, then `LATCH_*` environment variables, then
//! flags. Everything is checked at start, and every problem is reported at once.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::Parser;
use serde::Deserialize;

/// Latch control plane: access flows, decisions, grants and the audit log.
#[derive(Debug, Default, Parser)]
#[command(name = "latch-server", version, about, long_about = None)]
pub struct Flags {
    /// Directory for the SQLite database, the first admin token and other local state
    /// [default: ./latch-data]
    #[arg(long, env = "LATCH_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address of the public API: gRPC (with health and reflection) and HTTP /healthz and /metrics
    /// [default: 127.0.0.1:7700]
    #[arg(long, env = "LATCH_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,
    /// Address connectors dial (mutual TLS) [default: 127.0.0.1:7701]
    #[arg(long, env = "LATCH_CONNECTOR_LISTEN", value_name = "ADDR")]
    pub connector_listen: Option<String>,
    /// PostgreSQL URL (postgres://...). Unset: SQLite in the data directory
    #[arg(
        long,
        env = "LATCH_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    /// File holding the PostgreSQL URL, so that a password need not appear in a command line
    #[arg(long, env = "LATCH_DATABASE_URL_FILE", value_name = "FILE")]
    pub database_url_file: Option<PathBuf>,
    /// TOML file with any of these settings (flags and environment variables take precedence)
    #[arg(long, env = "LATCH_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log filter, in tracing's EnvFilter syntax [default: info]
    #[arg(long, env = "LATCH_LOG", value_name = "FILTER")]
    pub log: Option<String>,
    /// How long a request may wait for approvals before it expires, like `24h` or `30m`
    /// [default: 24h]
    #[arg(long, env = "LATCH_PENDING_TTL", value_name = "DURATION")]
    pub pending_ttl: Option<String>,
    /// Names connectors reach the connector listener by, comma-separated; its certificate is
    /// made for them [default: localhost,127.0.0.1]
    #[arg(
        long,
        env = "LATCH_CONNECTOR_HOSTNAMES",
        value_name = "NAMES",
        value_delimiter = ','
    )]
    pub connector_hostnames: Option<Vec<String>>,
    /// How often each side of a connector stream sends a heartbeat; three missed ones end it
    /// [default: 10s]
    #[arg(long, env = "LATCH_CONNECTOR_HEARTBEAT", value_name = "DURATION")]
    pub connector_heartbeat: Option<String>,
    /// How long connectors' certificates live; they renew at half-life [default: 24h]
    #[arg(long, env = "LATCH_CONNECTOR_CERT_TTL", value_name = "DURATION")]
    pub connector_cert_ttl: Option<String>,
    /// Delay before a failed command's first retry; it doubles each time [default: 15s]
    #[arg(long, env = "LATCH_COMMAND_RETRY_BASE", value_name = "DURATION")]
    pub command_retry_base: Option<String>,
    /// Attempts a command gets before it fails (a revoke then becomes revoke_failed and is
    /// tried again hourly) [default: 6]
    #[arg(long, env = "LATCH_COMMAND_RETRY_ATTEMPTS", value_name = "N")]
    pub command_retry_attempts: Option<u32>,
}

/// The `--config` file. Same settings as the flags, in snake_case.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub data_dir: Option<PathBuf>,
    pub listen: Option<String>,
    pub connector_listen: Option<String>,
    pub database_url: Option<String>,
    pub database_url_file: Option<PathBuf>,
    pub log: Option<String>,
    pub pending_ttl: Option<String>,
    pub connector_hostnames: Option<Vec<String>>,
    pub connector_heartbeat: Option<String>,
    pub connector_cert_ttl: Option<String>,
    pub command_retry_base: Option<String>,
    pub command_retry_attempts: Option<u32>,
    /// The trust domain in connectors' SPIFFE ids [default: latch.local].
    pub trust_domain: Option<String>,
    /// The connector CA's certificate and key files (both, or neither: then they are made in the
    /// data directory). Replicas share one CA this way.
    pub connector_ca_cert: Option<PathBuf>,
    pub connector_ca_key: Option<PathBuf>,
    /// The command-signing key's file (64 hex digits) [default: made in the data directory].
    pub command_signing_key: Option<PathBuf>,
    /// The key that seals credentials made for grants (64 hex digits) [default: made in the data
    /// directory]. Replicas share it.
    pub credentials_key: Option<PathBuf>,
}

/// Where the server keeps its state.
#[derive(Clone, PartialEq, Eq)]
pub enum Database {
    /// SQLite in `<data_dir>/latch.db`.
    Sqlite,
    /// A PostgreSQL URL (may hold a password: never printed).
    Postgres(String),
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Database::Sqlite => f.write_str("Sqlite"),
            Database::Postgres(_) => f.write_str("Postgres(<redacted>)"),
        }
    }
}

/// Checked settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub connector_listen: SocketAddr,
    pub database: Database,
    pub log: String,
    pub lifecycle: crate::lifecycle::Settings,
    pub connectors: crate::connectors::Settings,
}

/// Every problem found in the settings.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  {}", .0.join("\n  "))]
pub struct ConfigError(pub Vec<String>);

impl Config {
    /// Reads the config file (if any), layers the flags over it and checks the result.
    pub fn load(flags: Flags) -> Result<Config, ConfigError> {
        let file = match &flags.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        Config::resolve(flags, file)
    }

    /// Layers `flags` (which already include the environment) over `file` over the defaults.
    pub fn resolve(flags: Flags, file: FileConfig) -> Result<Config, ConfigError> {
        let mut problems = Vec::new();
        let connectors = connector_settings(&flags_connectors(&flags), &file, &mut problems);
        let data_dir = flags
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("./latch-data"));
        if data_dir.as_os_str().is_empty() {
            problems.push("data_dir: must not be empty".to_string());
        } else if data_dir.exists() && !data_dir.is_dir() {
            problems.push(format!(
                "data_dir: {} exists and is not a directory",
                data_dir.display()
            ));
        }
        let listen = parse_addr(
            "listen",
            flags.listen.or(file.listen),
            "127.0.0.1:7700",
            &mut problems,
        );
        let connector_listen = parse_addr(
            "connector_listen",
            flags.connector_listen.or(file.connector_listen),
            "127.0.0.1:7701",
            &mut problems,
        );
        if let (Some(a), Some(b)) = (listen, connector_listen)
            && a.port() != 0
            && a == b
        {
            problems.push(format!(
                "connector_listen: {b} is also the listen address; they must differ"
            ));
        }
        let url = match (
            flags.database_url.or(file.database_url),
            flags.database_url_file.or(file.database_url_file),
        ) {
            (Some(_), Some(_)) => {
                problems.push(
                    "database_url: give either database_url or database_url_file, not both".into(),
                );
                None
            }
            (Some(url), None) => Some(url),
            (None, Some(path)) => match std::fs::read_to_string(&path) {
                Ok(text) => Some(text.trim().to_string()),
                Err(err) => {
                    problems.push(format!(
                        "database_url_file: cannot read {}: {err}",
                        path.display()
                    ));
                    None
                }
            },
            (None, None) => None,
        };
        let database = match url {
            None => Database::Sqlite,
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Database::Postgres(url)
            }
            Some(url) => {
                let scheme = url.split_once("://").map_or("(none)", |(scheme, _)| scheme);
                problems.push(format!(
                    "database_url: unsupported scheme {scheme:?}; use a postgres:// URL, or leave it unset for SQLite in the data directory"
                ));
                Database::Sqlite
            }
        };
        let log = flags.log.or(file.log).unwrap_or_else(|| "info".to_string());
        if let Err(err) = tracing_subscriber::EnvFilter::try_new(&log) {
            problems.push(format!("log: {log:?} is not a valid filter: {err}"));
        }
        let mut lifecycle = crate::lifecycle::Settings::default();
        if let Some(text) = flags.pending_ttl.or(file.pending_ttl) {
            match humantime::parse_duration(text.trim()) {
                Ok(ttl) if !ttl.is_zero() => lifecycle.pending_ttl = ttl,
                Ok(_) => problems.push(format!("pending_ttl: {text:?} must be longer than zero")),
                Err(err) => problems.push(format!(
                    "pending_ttl: {text:?} is not a duration like 24h or 30m: {err}"
                )),
            }
        }
        match (listen, connector_listen, problems.is_empty()) {
            (Some(listen), Some(connector_listen), true) => Ok(Config {
                data_dir,
                listen,
                connector_listen,
                database,
                log,
                lifecycle,
                connectors,
            }),
            _ => Err(ConfigError(problems)),
        }
    }
}

/// The connector flags, taken out before `flags` is partly moved.
struct ConnectorFlags {
    hostnames: Option<Vec<String>>,
    heartbeat: Option<String>,
    cert_ttl: Option<String>,
    retry_base: Option<String>,
    retry_attempts: Option<u32>,
}

fn flags_connectors(flags: &Flags) -> ConnectorFlags {
    ConnectorFlags {
        hostnames: flags.connector_hostnames.clone(),
        heartbeat: flags.connector_heartbeat.clone(),
        cert_ttl: flags.connector_cert_ttl.clone(),
        retry_base: flags.command_retry_base.clone(),
        retry_attempts: flags.command_retry_attempts,
    }
}

fn connector_settings(
    flags: &ConnectorFlags,
    file: &FileConfig,
    problems: &mut Vec<String>,
) -> crate::connectors::Settings {
    let mut settings = crate::connectors::Settings::default();
    if let Some(names) = flags.hostnames.clone().or(file.connector_hostnames.clone()) {
        let names: Vec<String> = names
            .into_iter()
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty())
            .collect();
        if names.is_empty() {
            problems.push("connector_hostnames: must name at least one host".to_string());
        } else {
            settings.hostnames = names;
        }
    }
    let mut duration = |field: &str, value: Option<String>, target: &mut std::time::Duration| {
        if let Some(text) = value {
            match humantime::parse_duration(text.trim()) {
                Ok(parsed) if !parsed.is_zero() => *target = parsed,
                Ok(_) => problems.push(format!("{field}: {text:?} must be longer than zero")),
                Err(err) => problems.push(format!(
                    "{field}: {text:?} is not a duration like 10s or 24h: {err}"
                )),
            }
        }
    };
    duration(
        "connector_heartbeat",
        flags.heartbeat.clone().or(file.connector_heartbeat.clone()),
        &mut settings.heartbeat,
    );
    duration(
        "connector_cert_ttl",
        flags.cert_ttl.clone().or(file.connector_cert_ttl.clone()),
        &mut settings.cert_ttl,
    );
    duration(
        "command_retry_base",
        flags.retry_base.clone().or(file.command_retry_base.clone()),
        &mut settings.retry.base_delay,
    );
    if let Some(attempts) = flags.retry_attempts.or(file.command_retry_attempts) {
        if attempts == 0 {
            problems.push("command_retry_attempts: 0 must be at least 1".to_string());
        } else {
            settings.retry.max_attempts = i64::from(attempts);
        }
    }
    if let Some(domain) = file.trust_domain.clone() {
        let valid = !domain.is_empty()
            && domain
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-');
        if valid {
            settings.trust_domain = domain;
        } else {
            problems.push(format!(
                "trust_domain: {domain:?} must be lowercase letters, digits, dots and dashes"
            ));
        }
    }
    match (
        file.connector_ca_cert.clone(),
        file.connector_ca_key.clone(),
    ) {
        (Some(cert), Some(key)) => {
            settings.ca_files = Some(crate::connectors::pki::CaFiles { cert, key })
        }
        (None, None) => {}
        _ => problems
            .push("connector_ca_cert, connector_ca_key: give both files or neither".to_string()),
    }
    settings.signing_key_file = file.command_signing_key.clone();
    settings.credentials_key_file = file.credentials_key.clone();
    settings
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|err| {
        ConfigError(vec![format!(
            "config: cannot read {}: {err}",
            path.display()
        )])
    })?;
    toml::from_str(&text).map_err(|err| {
        ConfigError(vec![format!(
            "config: {}: {}",
            path.display(),
            err.message()
        )])
    })
}

fn parse_addr(
    field: &str,
    value: Option<String>,
    default: &str,
    problems: &mut Vec<String>,
) -> Option<SocketAddr> {
    let value = value.unwrap_or_else(|| default.to_string());
    match value.parse() {
        Ok(addr) => Some(addr),
        Err(_) => {
            problems.push(format!(
                "{field}: {value:?} is not an address (expected IP:PORT, like {default})"
            ));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn defaults_need_no_configuration() {
        let config =
            Config::resolve(Flags::default(), FileConfig::default()).expect("defaults are valid");
        assert_eq!(config.data_dir, PathBuf::from("./latch-data"));
        assert_eq!(config.listen.to_string(), "127.0.0.1:7700");
        assert_eq!(config.connector_listen.to_string(), "127.0.0.1:7701");
        assert_eq!(config.database, Database::Sqlite);
    }

    #[test]
    fn flags_win_over_the_file() {
        let flags = Flags {
            listen: Some("127.0.0.1:9000".into()),
            ..Flags::default()
        };
        let file = FileConfig {
            listen: Some("127.0.0.1:8000".into()),
            connector_listen: Some("127.0.0.1:8001".into()),
            ..FileConfig::default()
        };
        let config = Config::resolve(flags, file).expect("valid");
        assert_eq!(config.listen.to_string(), "127.0.0.1:9000");
        assert_eq!(config.connector_listen.to_string(), "127.0.0.1:8001");
    }

    #[test]
    fn every_problem_is_reported_with_its_value() {
        let flags = Flags {
            listen: Some("localhost".into()),
            connector_listen: Some("nope:1".into()),
            database_url: Some("mysql://x".into()),
            log: Some("=bad=".into()),
            ..Flags::default()
        };
        let err = Config::resolve(flags, FileConfig::default()).expect_err("invalid");
        let text = err.to_string();
        assert_eq!(err.0.len(), 4, "{text}");
        assert!(
            text.contains(r#"listen: "localhost" is not an address"#),
            "{text}"
        );
        assert!(
            text.contains(r#"connector_listen: "nope:1" is not an address"#),
            "{text}"
        );
        assert!(text.contains(r#"unsupported scheme "mysql""#), "{text}");
        assert!(text.contains(r#"log: "=bad=""#), "{text}");
    }

    #[test]
    fn pending_ttl_is_a_positive_duration() {
        let default = Config::resolve(Flags::default(), FileConfig::default()).expect("valid");
        assert_eq!(
            default.lifecycle.pending_ttl,
            Duration::from_secs(24 * 3600)
        );
        let file = FileConfig {
            pending_ttl: Some("90m".into()),
            ..FileConfig::default()
        };
        let config = Config::resolve(Flags::default(), file).expect("valid");
        assert_eq!(config.lifecycle.pending_ttl, Duration::from_secs(90 * 60));
        for bad in ["soon", "0s"] {
            let flags = Flags {
                pending_ttl: Some(bad.into()),
                ..Flags::default()
            };
            let err = Config::resolve(flags, FileConfig::default()).expect_err("invalid");
            assert!(
                err.to_string().contains(&format!("pending_ttl: {bad:?}")),
                "{err}"
            );
        }
    }

    #[test]
    fn the_same_address_twice_is_refused() {
        let flags = Flags {
            listen: Some("127.0.0.1:7000".into()),
            connector_listen: Some("127.0.0.1:7000".into()),
            ..Flags::default()
        };
        let err = Config::resolve(flags, FileConfig::default()).expect_err("invalid");
        assert!(
            err.to_string()
                .contains("connector_listen: 127.0.0.1:7000 is also the listen address")
        );
    }

    #[test]
    fn unknown_file_fields_are_named() {
        let err = toml::from_str::<FileConfig>("listen = \"127.0.0.1:1\"\nlisten_addr = 3\n")
            .expect_err("unknown");
        assert!(err.message().contains("listen_addr"), "{}", err.message());
    }

    #[test]
    fn postgres_urls_are_never_printed() {
        let db = Database::Postgres("postgres://u:secret@h/db".into());
        assert!(!format!("{db:?}").contains("secret"));
    }

    #[test]
    fn connector_settings_layer_and_every_problem_is_named() {
        let file = FileConfig {
            connector_heartbeat: Some("5s".into()),
            command_retry_attempts: Some(3),
            trust_domain: Some("corp.example".into()),
            ..FileConfig::default()
        };
        let flags = Flags {
            connector_heartbeat: Some("2s".into()),
            connector_hostnames: Some(vec!["latch.example.com".into()]),
            ..Flags::default()
        };
        let config = Config::resolve(flags, file).expect("valid");
        let connectors = &config.connectors;
        assert_eq!(
            connectors.heartbeat,
            Duration::from_secs(2),
            "the flag wins"
        );
        assert_eq!(connectors.retry.max_attempts, 3);
        assert_eq!(connectors.trust_domain, "corp.example");
        assert_eq!(connectors.hostnames, vec!["latch.example.com".to_string()]);

        let bad = FileConfig {
            connector_cert_ttl: Some("forever".into()),
            command_retry_attempts: Some(0),
            trust_domain: Some("Not Valid".into()),
            connector_ca_cert: Some("ca.pem".into()),
            ..FileConfig::default()
        };
        let text = Config::resolve(Flags::default(), bad)
            .expect_err("invalid")
            .to_string();
        for expected in [
            r#"connector_cert_ttl: "forever""#,
            "command_retry_attempts: 0",
            r#"trust_domain: "Not Valid""#,
            "connector_ca_cert, connector_ca_key: give both files or neither",
        ] {
            assert!(text.contains(expected), "{expected} in {text}");
        }
    }

    #[test]
    fn the_example_config_in_deploy_is_valid() {
        let text = include_str!("../../../deploy/config/latch-server.toml");
        let file: FileConfig = toml::from_str(text).expect("the example parses");
        let mut file = file;
        // The example's data directory is a production path; the rest must resolve as written.
        file.data_dir = None;
        Config::resolve(Flags::default(), file).expect("the example is valid");
    }
}
