//! A real connector process for end-to-end tests: `latch-connector-fake` (the connector with the
//! [`fake`](crate::fake_provider) provider) serving one integration whose "cloud" is a JSON file.
//!
//! ```ignore
//! let mut edge = Connector::start(&server, "edge-1", ConnectorOptions::default());
//! edge.wait_connected(&server, Duration::from_secs(20));
//! // ... request access through the CLI ...
//! wait_until(Duration::from_secs(20), "the grant", || edge.record().len() == 1);
//! edge.kill();   // SIGKILL, as a crash would
//! edge.spawn();  // same state directory, same config
//! ```
//!
//! Every file lives in `connector-NAME/` beside the server's data directory, so it goes away with
//! the test's temporary directory. The process is killed when the value is dropped; if the test
//! is failing then, the end of the connector's log is printed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::fake_provider::read_record;
use crate::{Server, bin_path, success};

/// The binary the harness runs for the fake integration.
pub const BINARY: &str = "latch-connector-fake";

/// The shipped connector, for [`ConnectorOptions::shipped_integrations`].
pub const SHIPPED_BINARY: &str = "latch-connector";

/// How the connector and its one `fake` integration are configured. Change fields, then
/// [`Connector::write_config`] and restart to apply them.
#[derive(Debug, Clone)]
pub struct ConnectorOptions {
    /// The integration's name (default `fake-1`).
    pub integration: String,
    /// How many `fake.thing` resources a sync reports (default 5), besides the root.
    pub resources: u64,
    /// Emails the integration reports as identities (default none).
    pub identities: Vec<String>,
    /// Groups the integration reports: (name, member emails) (default none).
    pub groups: Vec<(String, Vec<String>)>,
    /// Sleep inside every grant and revoke before the record changes (default none).
    pub delay: Duration,
    /// The first N grant/revoke calls of each process fail with a transient error (default 0).
    pub fail_transient: u64,
    /// Grants and revokes change nothing and succeed (default false).
    pub noop: bool,
    /// The integration's `rate_limit_per_sec` (default: the runtime's, 20).
    pub rate_limit_per_sec: Option<u32>,
    /// `max_concurrent_commands` (default: the runtime's, 16).
    pub max_concurrent_commands: Option<u32>,
    /// `sync_interval` (default `1h`: one sync at each connect).
    pub sync_interval: String,
    /// `shutdown_grace` (default `5s`).
    pub shutdown_grace: String,
    /// The body of `[guardrails]`, raw TOML, like `max_duration = "1h"` (default none).
    pub guardrails: Option<String>,
    /// `RUST_LOG` for the process (default `info`).
    pub log_filter: String,
    /// Serve these `[[integrations]]` entries (raw TOML) with the shipped `latch-connector`
    /// binary and its real providers, instead of the fake integration (default none).
    pub shipped_integrations: Option<String>,
    /// Environment changes for the `run` process, like a cloud's credentials: `Some(value)` sets
    /// the variable, `None` removes it (default none: the test's environment is inherited).
    pub env: Vec<(String, Option<String>)>,
}

impl Default for ConnectorOptions {
    fn default() -> Self {
        ConnectorOptions {
            integration: "fake-1".into(),
            resources: 5,
            identities: Vec::new(),
            groups: Vec::new(),
            delay: Duration::ZERO,
            fail_transient: 0,
            noop: false,
            rate_limit_per_sec: None,
            max_concurrent_commands: None,
            sync_interval: "1h".into(),
            shutdown_grace: "5s".into(),
            guardrails: None,
            log_filter: "info".into(),
            shipped_integrations: None,
            env: Vec::new(),
        }
    }
}

/// A connector registered with a [`Server`], enrolled, configured, and (after
/// [`Connector::spawn`]) running. Killed when dropped.
pub struct Connector {
    /// The connector's name, as `latch connectors list` shows it.
    pub name: String,
    /// The connector's id, from `latch connectors create`.
    pub id: String,
    /// The server's connector listener, `https://127.0.0.1:PORT`.
    pub server_url: String,
    /// Holds every file below.
    pub dir: PathBuf,
    pub state_dir: PathBuf,
    pub config_file: PathBuf,
    /// The fake cloud: the grants in place (see [`Connector::record`]).
    pub record_file: PathBuf,
    /// One JSON line per grant/revoke call (see [`Connector::calls`]).
    pub calls_file: PathBuf,
    /// Tag changes the next sync reports (see [`Connector::set_tags`]).
    pub tag_overrides_file: PathBuf,
    /// stdout and stderr of every run, appended.
    pub log_file: PathBuf,
    pub options: ConnectorOptions,
    child: Option<Child>,
    starts: u32,
}

impl Connector {
    /// [`Connector::create`], then [`Connector::spawn`].
    pub fn start(server: &Server, name: &str, options: ConnectorOptions) -> Connector {
        let mut connector = Connector::create(server, name, options);
        connector.spawn();
        connector
    }

    /// Registers connector `name` with the server's admin token, enrolls it (its state directory
    /// gets a key and certificate) and writes its config. Does not start it.
    pub fn create(server: &Server, name: &str, options: ConnectorOptions) -> Connector {
        let dir = server
            .data_dir
            .parent()
            .expect("the server's data directory has a parent")
            .join(format!("connector-{name}"));
        std::fs::create_dir_all(&dir).expect("connector directory");
        let (id, token) = Connector::register(server, name);
        let connector = Connector {
            name: name.to_string(),
            id,
            server_url: format!("https://{}", server.connector_listen),
            state_dir: dir.join("state"),
            config_file: dir.join("connector.toml"),
            record_file: dir.join("record.json"),
            calls_file: dir.join("calls.jsonl"),
            tag_overrides_file: dir.join("tag-overrides.json"),
            log_file: dir.join("connector.log"),
            dir,
            options,
            child: None,
            starts: 0,
        };
        success(&connector.enroll(&token));
        connector.write_config();
        connector
    }

    /// `latch connectors create NAME`: returns the connector's id and its enrollment token.
    pub fn register(server: &Server, name: &str) -> (String, String) {
        let out = success(&server.cli(
            Some(&server.admin_token()),
            &["-o", "json", "connectors", "create", name],
        ));
        let created: serde_json::Value =
            serde_json::from_str(&out).unwrap_or_else(|err| panic!("not JSON ({err}): {out}"));
        let field = |value: &serde_json::Value| {
            value
                .as_str()
                .unwrap_or_else(|| panic!("no token or id in {created}"))
                .to_string()
        };
        (field(&created["connector"]["id"]), field(&created["token"]))
    }

    /// The binary this connector runs: the shipped one for real integrations, else the fake.
    pub fn binary(&self) -> &'static str {
        if self.options.shipped_integrations.is_some() {
            SHIPPED_BINARY
        } else {
            BINARY
        }
    }

    /// Runs `latch-connector-fake enroll` with `token` into this connector's state directory
    /// (`--force`: replacing an earlier enrollment); the output is for the test to judge.
    pub fn enroll(&self, token: &str) -> Output {
        Command::new(bin_path(self.binary()))
            .args(["enroll", "--server", &self.server_url, "--token", token])
            .arg("--state-dir")
            .arg(&self.state_dir)
            .arg("--force")
            .env("RUST_LOG", &self.options.log_filter)
            .env("NO_COLOR", "1")
            .env_remove("LATCH_ENROLL_TOKEN")
            .stdin(Stdio::null())
            .output()
            .expect("run latch-connector-fake enroll")
    }

    /// Writes the config file from [`Connector::options`]; a running process sees it at its
    /// next start.
    pub fn write_config(&self) {
        let o = &self.options;
        let quote = |text: &str| toml::Value::from(text).to_string();
        let path = |path: &PathBuf| quote(&path.display().to_string());
        let mut text = format!(
            "server = {}\nstate_dir = {}\nsync_interval = {}\nshutdown_grace = {}\n",
            quote(&self.server_url),
            path(&self.state_dir),
            quote(&o.sync_interval),
            quote(&o.shutdown_grace),
        );
        if let Some(n) = o.max_concurrent_commands {
            text.push_str(&format!("max_concurrent_commands = {n}\n"));
        }
        if let Some(integrations) = &o.shipped_integrations {
            text.push('\n');
            text.push_str(integrations);
            text.push('\n');
        } else {
            text.push_str(&self.fake_integration());
        }
        if let Some(guardrails) = &o.guardrails {
            text.push_str(&format!("\n[guardrails]\n{guardrails}\n"));
        }
        std::fs::write(&self.config_file, text).expect("write the connector config");
    }

    /// The `[[integrations]]` entry of the fake integration, from [`Connector::options`].
    fn fake_integration(&self) -> String {
        let o = &self.options;
        let quote = |text: &str| toml::Value::from(text).to_string();
        let path = |path: &PathBuf| quote(&path.display().to_string());
        let emails = |emails: &[String]| {
            toml::Value::Array(
                emails
                    .iter()
                    .map(|email| toml::Value::from(email.as_str()))
                    .collect(),
            )
        };
        let identities = emails(&o.identities);
        // An inline table: `{ "name" = [emails], ... }`.
        let groups: Vec<String> = o
            .groups
            .iter()
            .map(|(name, members)| format!("{} = {}", quote(name), emails(members)))
            .collect();
        let groups = format!("{{ {} }}", groups.join(", "));
        let mut text = format!(
            "\n[[integrations]]\nname = {}\nkind = \"fake\"\nrecord_file = {}\ncalls_file = {}\n\
             tag_overrides_file = {}\nresources = {}\nidentities = {identities}\ngroups = {groups}\n\
             delay_ms = {}\nfail_transient = {}\nnoop = {}\n",
            quote(&o.integration),
            path(&self.record_file),
            path(&self.calls_file),
            path(&self.tag_overrides_file),
            o.resources,
            o.delay.as_millis(),
            o.fail_transient,
            o.noop,
        );
        if let Some(rate) = o.rate_limit_per_sec {
            text.push_str(&format!("rate_limit_per_sec = {rate}\n"));
        }
        text
    }

    /// Starts `latch-connector-fake run --config FILE`, logging to [`Connector::log_file`].
    /// Panics if it is already running.
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "connector {} already runs", self.name);
        self.starts += 1;
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_file)
            .expect("connector log file");
        use std::io::Write;
        let _ = writeln!(log, "=== harness: start {} ===", self.starts);
        let mut command = Command::new(bin_path(self.binary()));
        command
            .arg("run")
            .arg("--config")
            .arg(&self.config_file)
            .env("RUST_LOG", &self.options.log_filter)
            .env("NO_COLOR", "1")
            .env_remove("LATCH_CONNECTOR_CONFIG")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        for (name, value) in &self.options.env {
            match value {
                Some(value) => command.env(name, value),
                None => command.env_remove(name),
            };
        }
        let child = command.spawn().expect("start latch-connector-fake run");
        self.child = Some(child);
    }

    /// Whether the process runs (it has not exited, nor been killed or stopped).
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// Sends `signal` (like `-STOP` or `-CONT`) to the running process.
    pub fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("the connector runs");
        let status = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} failed");
    }

    /// Kills the process at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM and waits (at most 30 s) for the drained exit; returns the exit code
    /// (`None` if it was not running or died of a signal).
    pub fn stop(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "connector {} did not stop within 30 s of SIGTERM:\n{}",
            self.name,
            self.log_text()
        );
    }

    /// Waits until `latch connectors list` shows this connector connected.
    pub fn wait_connected(&mut self, server: &Server, timeout: Duration) {
        let admin = server.admin_token();
        let connected = crate::try_wait_until(timeout, || {
            let out = server.cli(Some(&admin), &["-o", "json", "connectors", "list"]);
            serde_json::from_slice::<serde_json::Value>(&out.stdout)
                .ok()
                .and_then(|list| list.as_array().cloned())
                .unwrap_or_default()
                .iter()
                .any(|c| c["name"] == self.name.as_str() && c["connected"] == true)
        });
        let running = self.is_running();
        assert!(
            connected,
            "connector {} did not connect within {timeout:?}; running: {running}\n{}",
            self.name,
            self.log_text()
        );
    }

    /// Everything the connector logged so far, over all its runs.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log_file).unwrap_or_default()
    }

    /// The grants in place in the fake cloud: (identity, resource id, permission).
    pub fn record(&self) -> BTreeSet<(String, String, String)> {
        read_record(&self.record_file)
            .expect("read the record file")
            .into_iter()
            .map(|g| (g.identity, g.resource_id, g.permission))
            .collect()
    }

    /// Every grant/revoke call so far, oldest first: `{op, grant_id, identity, resource_id,
    /// permission, result, at}`, `result` being `ok` or `transient`.
    pub fn calls(&self) -> Vec<serde_json::Value> {
        let text = match std::fs::read_to_string(&self.calls_file) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
            Err(err) => panic!("read {}: {err}", self.calls_file.display()),
        };
        text.lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|err| panic!("bad call line {line}: {err}"))
            })
            .collect()
    }

    /// How many calls of `op` (`grant` or `revoke`) succeeded.
    pub fn applied(&self, op: &str) -> usize {
        self.calls()
            .iter()
            .filter(|call| call["op"] == op && call["result"] == "ok")
            .count()
    }

    /// Changes resource `id`'s tags at the next sync: `Some(value)` sets a tag, `None` removes
    /// it. Replaces earlier changes of the same resource. Ask for a sync with
    /// `latch integrations sync NAME`, or restart the connector.
    pub fn set_tags(&self, id: &str, tags: &[(&str, Option<&str>)]) {
        let mut all: BTreeMap<String, BTreeMap<String, Option<String>>> =
            match std::fs::read_to_string(&self.tag_overrides_file) {
                Ok(text) => serde_json::from_str(&text).expect("tag overrides JSON"),
                Err(_) => BTreeMap::new(),
            };
        all.insert(
            id.to_string(),
            tags.iter()
                .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
                .collect(),
        );
        let tmp = self.tag_overrides_file.with_extension("tmp");
        std::fs::write(
            &tmp,
            serde_json::to_string_pretty(&all).expect("serialise tags"),
        )
        .expect("write tag overrides");
        std::fs::rename(&tmp, &self.tag_overrides_file).expect("rename tag overrides");
    }
}

impl Drop for Connector {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            crate::print_tail(&format!("connector {}", self.name), &self.log_file);
        }
    }
}
