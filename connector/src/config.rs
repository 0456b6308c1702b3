//! The connector's TOML config: which control plane, where the state lives, which integrations to
//! serve and the owner's guardrails. [`ConfigFile::validate`] reports every problem at once,
//! naming the field and the value.
//!
//! Secrets are never written inline: a provider reads its credentials from the usual cloud chains
//! or from keys ending in `_file` (a path) or `_env` (a variable name) in its integration's
//! settings. A setting named like a secret (`password`, `secret`, `token`, or ending in one of
//! those) is refused. The heartbeat interval is not configurable: the control plane decides it.
//!
//! ```toml
//! server = "https://latch.internal:7701"
//! state_dir = "/var/lib/latch-connector"
//! sync_interval = "1h"
//! max_concurrent_commands = 16
//! shutdown_grace = "30s"
//!
//! [[integrations]]
//! name = "pg-main"
//! kind = "postgres"
//! rate_limit_per_sec = 20          # read by the runtime, not handed to the provider
//! url = "postgres://latch@db.internal/postgres"
//! password_file = "/etc/latch/pg-password"
//!
//! [guardrails]
//! allowed_integrations = ["pg-main"]
//! max_duration = "8h"
//! deny_permissions = ["*admin*"]
//! deny_resources = ["postgres://db.internal/payments*"]
//! ```

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::Error;
use crate::guardrails::Guardrails;
use crate::provider::ProviderRegistry;

/// The default for `rate_limit_per_sec`.
pub(crate) const DEFAULT_RATE_LIMIT_PER_SEC: u32 = 20;

/// The config file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConfigFile {
    pub server: Option<String>,
    pub state_dir: Option<PathBuf>,
    pub sync_interval: Option<String>,
    pub max_concurrent_commands: Option<i64>,
    pub shutdown_grace: Option<String>,
    #[serde(default)]
    pub integrations: Vec<IntegrationConfig>,
    #[serde(default)]
    pub guardrails: GuardrailsFile,
}

/// One `[[integrations]]` entry: its name and kind, and the provider's own settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct IntegrationConfig {
    /// Unique name: lowercase letters, digits and `-`. Flows target the integration by it.
    pub name: String,
    /// The provider kind, a key of the [`ProviderRegistry`](crate::ProviderRegistry).
    pub kind: String,
    /// Calls per second the runtime allows this integration's provider (default 20).
    #[serde(default)]
    pub rate_limit_per_sec: Option<i64>,
    /// Every other key of the entry, for the provider to read (and check) itself.
    #[serde(flatten)]
    pub settings: toml::Table,
}

impl IntegrationConfig {
    /// The rate the runtime applies: the configured one, or the default.
    pub(crate) fn rate_limit(&self) -> u32 {
        self.rate_limit_per_sec
            .and_then(|rate| u32::try_from(rate).ok())
            .filter(|rate| *rate > 0)
            .unwrap_or(DEFAULT_RATE_LIMIT_PER_SEC)
    }
}

/// `[guardrails]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GuardrailsFile {
    pub allowed_integrations: Option<Vec<String>>,
    pub max_duration: Option<String>,
    #[serde(default)]
    pub deny_permissions: Vec<String>,
    #[serde(default)]
    pub deny_resources: Vec<String>,
}

/// The control plane's connector address, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServerUrl {
    /// As written, without a trailing slash.
    pub url: String,
    /// Host name or IP address, without brackets; also the TLS server name.
    pub host: String,
    pub port: u16,
}

impl ServerUrl {
    pub(crate) fn parse(text: &str) -> Result<ServerUrl, String> {
        let uri: tonic::transport::Uri = text
            .parse()
            .map_err(|err| format!("{text:?} is not a URL: {err}"))?;
        if uri.scheme_str() != Some("https") {
            return Err(format!("{text:?} must be an https:// URL"));
        }
        let host = uri
            .host()
            .filter(|host| !host.is_empty())
            .ok_or_else(|| format!("{text:?} has no host"))?;
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(format!("{text:?} must not have a path or query"));
        }
        Ok(ServerUrl {
            url: text.trim_end_matches('/').to_string(),
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            port: uri.port_u16().unwrap_or(443),
        })
    }
}

/// A checked config.
#[derive(Debug)]
pub(crate) struct Config {
    pub server: ServerUrl,
    pub state_dir: PathBuf,
    pub sync_interval: Duration,
    pub max_concurrent_commands: usize,
    pub shutdown_grace: Duration,
    pub integrations: Vec<IntegrationConfig>,
    pub guardrails: Guardrails,
}

impl ConfigFile {
    /// Reads and parses `path`. Syntax and type errors stop here (the TOML parser reports the
    /// first); everything else is left to [`ConfigFile::validate`].
    pub(crate) fn read(path: &Path) -> Result<ConfigFile, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text)
            .map_err(|err| Error::Config(vec![format!("{}: {err}", path.display())]))
    }

    /// Checks everything and reports every problem at once.
    pub(crate) fn validate(self, registry: &ProviderRegistry) -> Result<Config, Error> {
        let mut problems = Vec::new();

        let server = match self.server.as_deref() {
            None => {
                problems.push("server: missing; set the control plane's connector URL, like https://latch.internal:7701".to_string());
                None
            }
            Some(text) => ServerUrl::parse(text)
                .map_err(|err| problems.push(format!("server: {err}")))
                .ok(),
        };
        let state_dir = match self.state_dir {
            None => {
                problems.push("state_dir: missing; set the directory `latch-connector enroll --state-dir` wrote".to_string());
                None
            }
            Some(dir) if dir.as_os_str().is_empty() => {
                problems.push("state_dir: must not be empty".to_string());
                None
            }
            Some(dir) => Some(dir),
        };
        let sync_interval = duration(
            "sync_interval",
            self.sync_interval.as_deref(),
            Duration::from_secs(3600),
            false,
            &mut problems,
        );
        let shutdown_grace = duration(
            "shutdown_grace",
            self.shutdown_grace.as_deref(),
            Duration::from_secs(30),
            true,
            &mut problems,
        );
        let max_concurrent_commands = match self.max_concurrent_commands {
            None => 16,
            Some(n @ 1..=4096) => n as usize,
            Some(n) => {
                problems.push(format!(
                    "max_concurrent_commands: {n} must be between 1 and 4096"
                ));
                16
            }
        };

        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (i, integration) in self.integrations.iter().enumerate() {
            let name = integration.name.as_str();
            if !valid_name(name) {
                problems.push(format!(
                    "integrations[{i}].name: {name:?} must be lowercase letters, digits and - (1 to 63 characters)"
                ));
            }
            if let Some(first) = seen.insert(name, i) {
                problems.push(format!(
                    "integrations[{i}].name: {name:?} is already used by integrations[{first}]"
                ));
            }
            if !registry.contains(&integration.kind) {
                let known = registry.kinds();
                let known = if known.is_empty() {
                    "this build has none yet".to_string()
                } else {
                    format!("known: {}", known.join(", "))
                };
                problems.push(format!(
                    "integrations[{i}].kind: {:?} is not a known provider kind ({known})",
                    integration.kind
                ));
            }
            if let Some(rate) = integration.rate_limit_per_sec
                && !(1..=100_000).contains(&rate)
            {
                problems.push(format!(
                    "integrations[{i}].rate_limit_per_sec: {rate} must be between 1 and 100000"
                ));
            }
            for key in integration.settings.keys() {
                if looks_like_inline_secret(key) {
                    problems.push(format!(
                        "integrations[{i}].{key}: secrets are never written inline; use {key}_file (a path) or {key}_env (a variable name)"
                    ));
                }
            }
        }

        let guardrails = self.guardrails;
        let configured: BTreeSet<String> =
            self.integrations.iter().map(|i| i.name.clone()).collect();
        if let Some(allowed) = &guardrails.allowed_integrations {
            for (i, name) in allowed.iter().enumerate() {
                if !configured.contains(name) {
                    problems.push(format!(
                        "guardrails.allowed_integrations[{i}]: {name:?} is not a configured integration"
                    ));
                }
            }
        }
        let max_duration = match guardrails.max_duration.as_deref() {
            None => None,
            Some(text) => parse_duration("guardrails.max_duration", text, false, &mut problems),
        };
        for (field, patterns) in [
            ("deny_permissions", &guardrails.deny_permissions),
            ("deny_resources", &guardrails.deny_resources),
        ] {
            for (i, pattern) in patterns.iter().enumerate() {
                if pattern.trim().is_empty() {
                    problems.push(format!(
                        "guardrails.{field}[{i}]: {pattern:?} must not be empty"
                    ));
                }
            }
        }

        match (server, state_dir, problems.is_empty()) {
            (Some(server), Some(state_dir), true) => Ok(Config {
                server,
                state_dir,
                sync_interval,
                max_concurrent_commands,
                shutdown_grace,
                guardrails: Guardrails {
                    allowed_integrations: guardrails
                        .allowed_integrations
                        .map(|names| names.into_iter().collect()),
                    max_duration,
                    deny_permissions: guardrails.deny_permissions,
                    deny_resources: guardrails.deny_resources,
                },
                integrations: self.integrations,
            }),
            _ => Err(Error::Config(problems)),
        }
    }
}

/// Reads, parses and validates `path`.
pub(crate) fn load(path: &Path, registry: &ProviderRegistry) -> Result<Config, Error> {
    ConfigFile::read(path)?.validate(registry)
}

fn valid_name(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

fn looks_like_inline_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["password", "secret", "token", "private_key"]
        .iter()
        .any(|word| key == *word || key.ends_with(&format!("_{word}")))
}

fn duration(
    field: &str,
    text: Option<&str>,
    default: Duration,
    zero_ok: bool,
    problems: &mut Vec<String>,
) -> Duration {
    match text {
        None => default,
        Some(text) => parse_duration(field, text, zero_ok, problems).unwrap_or(default),
    }
}

fn parse_duration(
    field: &str,
    text: &str,
    zero_ok: bool,
    problems: &mut Vec<String>,
) -> Option<Duration> {
    match humantime::parse_duration(text.trim()) {
        Ok(d) if d.is_zero() && !zero_ok => {
            problems.push(format!("{field}: {text:?} must be longer than zero"));
            None
        }
        Ok(d) => Some(d),
        Err(err) => {
            problems.push(format!(
                "{field}: {text:?} is not a duration like 30s, 1h or 8h: {err}"
            ));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::provider::Provider;

    fn registry() -> ProviderRegistry {
        let mut registry = ProviderRegistry::new();
        registry.register(
            "postgres",
            |_: &IntegrationConfig| -> Result<Arc<dyn Provider>, String> {
                Err("not in unit tests".into())
            },
        );
        registry
    }

    fn parse(text: &str) -> Result<Config, Error> {
        let file: ConfigFile =
            toml::from_str(text).map_err(|e| Error::Config(vec![e.to_string()]))?;
        file.validate(&registry())
    }

    fn problems(text: &str) -> Vec<String> {
        match parse(text) {
            Err(Error::Config(problems)) => problems,
            other => panic!("expected problems, got {other:?}"),
        }
    }

    #[test]
    fn a_good_config_gets_defaults_and_keeps_provider_settings() {
        let config = parse(
            r#"
            server = "https://latch.internal:7701/"
            state_dir = "/var/lib/latch"
            [[integrations]]
            name = "pg-main"
            kind = "postgres"
            url = "postgres://db/postgres"
            password_file = "/etc/pw"
            [guardrails]
            max_duration = "8h"
            deny_permissions = ["*admin*"]
            "#,
        )
        .expect("valid");
        assert_eq!(config.server.url, "https://latch.internal:7701");
        assert_eq!(config.server.host, "latch.internal");
        assert_eq!(config.server.port, 7701);
        assert_eq!(config.sync_interval, Duration::from_secs(3600));
        assert_eq!(config.shutdown_grace, Duration::from_secs(30));
        assert_eq!(config.max_concurrent_commands, 16);
        let pg = &config.integrations[0];
        assert_eq!(pg.rate_limit(), DEFAULT_RATE_LIMIT_PER_SEC);
        assert_eq!(
            pg.settings.get("password_file").and_then(|v| v.as_str()),
            Some("/etc/pw")
        );
        assert!(!pg.settings.contains_key("name"));
        assert!(!pg.settings.contains_key("kind"));
        assert_eq!(
            config.guardrails.max_duration,
            Some(Duration::from_secs(8 * 3600))
        );
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let problems = problems(
            r#"
            server = "http://latch.internal"
            sync_interval = "soon"
            shutdown_grace = "-1s"
            max_concurrent_commands = 0
            [[integrations]]
            name = "pg main"
            kind = "postgres"
            [[integrations]]
            name = "pg"
            kind = "s3"
            rate_limit_per_sec = 0
            password = "hunter2"
            [[integrations]]
            name = "pg"
            kind = "postgres"
            [guardrails]
            allowed_integrations = ["pg", "aws-prod"]
            max_duration = "0s"
            deny_resources = [""]
            "#,
        );
        let expected = [
            "server: \"http://latch.internal\" must be an https:// URL",
            "state_dir: missing",
            "sync_interval: \"soon\" is not a duration",
            "shutdown_grace: \"-1s\" is not a duration",
            "max_concurrent_commands: 0 must be between 1 and 4096",
            "integrations[0].name: \"pg main\" must be lowercase letters, digits and -",
            "integrations[1].kind: \"s3\" is not a known provider kind (known: postgres)",
            "integrations[1].rate_limit_per_sec: 0 must be between 1 and 100000",
            "integrations[1].password: secrets are never written inline",
            "integrations[2].name: \"pg\" is already used by integrations[1]",
            "guardrails.allowed_integrations[1]: \"aws-prod\" is not a configured integration",
            "guardrails.max_duration: \"0s\" must be longer than zero",
            "guardrails.deny_resources[0]: \"\" must not be empty",
        ];
        for want in expected {
            assert!(
                problems.iter().any(|p| p.starts_with(want)),
                "missing {want:?} in {problems:#?}"
            );
        }
        assert_eq!(problems.len(), expected.len(), "{problems:#?}");
        // The secret's value never appears in a message.
        assert!(!problems.iter().any(|p| p.contains("hunter2")));
    }

    #[test]
    fn unknown_top_level_keys_and_a_heartbeat_are_refused() {
        let err = parse(
            r#"
            server = "https://a"
            state_dir = "/x"
            heartbeat = "5s"
            "#,
        )
        .expect_err("unknown field");
        assert!(err.to_string().contains("heartbeat"), "{err}");
    }

    #[test]
    fn server_urls_need_https_and_a_host() {
        assert!(ServerUrl::parse("https://[::1]:7701").is_ok_and(|s| s.host == "::1"));
        assert!(ServerUrl::parse("https://h").is_ok_and(|s| s.port == 443));
        assert!(ServerUrl::parse("https://h:1/api").is_err());
        assert!(ServerUrl::parse("h:1").is_err());
    }
}
