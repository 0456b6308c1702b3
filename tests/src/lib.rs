//! Harness for end-to-end tests: starts the real `latch-server` binary on free ports with a fresh
//! data directory (and, for PostgreSQL, a fresh database), and runs the real `latch` CLI against it.
//!
//! The binaries are found next to the test executable's `deps/` folder, where
//! `cargo build --workspace --bins` puts them (the README's test command does that first).
//!
//! [`Connector`] runs the real connector runtime with the test-only [`fake_provider`], whose
//! "cloud" is a JSON file the test can read.

pub mod connector;
pub mod fake_provider;

pub use connector::{Connector, ConnectorOptions};

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Path of a workspace binary built next to the running test.
pub fn bin_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target profile dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` before the end-to-end tests",
        path.display()
    );
    path
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root")
        .to_path_buf()
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// The PostgreSQL server the tests use.
pub fn postgres_admin_url() -> String {
    std::env::var("LATCH_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Which database a test server uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh PostgreSQL database, dropped with this value.
pub struct PgDatabase {
    pub name: String,
    pub url: String,
}

impl PgDatabase {
    pub fn create() -> PgDatabase {
        let name = format!("latch_e2e_{}", uuid::Uuid::new_v4().simple());
        psql(&format!("CREATE DATABASE {name}"));
        let base = postgres_admin_url();
        let (prefix, _) = base.rsplit_once('/').expect("url ends in /DATABASE");
        PgDatabase {
            url: format!("{prefix}/{name}"),
            name,
        }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let _ = psql_status(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
    }
}

fn psql_status(sql: &str) -> std::io::Result<std::process::ExitStatus> {
    Command::new("psql")
        .arg(postgres_admin_url())
        .args(["-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .status()
}

/// Runs SQL on the test PostgreSQL server's admin database.
pub fn psql(sql: &str) {
    let status = psql_status(sql).expect("run psql");
    assert!(status.success(), "psql failed: {sql}");
}

/// A running `latch-server`. Killed when dropped.
pub struct Server {
    pub data_dir: PathBuf,
    pub listen: String,
    pub connector_listen: String,
    pub database_url: Option<String>,
    /// Extra flags for every start, like `--connector-heartbeat 1s`.
    pub extra_args: Vec<String>,
    child: Option<Child>,
    log: PathBuf,
}

impl Server {
    /// Starts a server on `data_dir`, waits until it answers `/healthz`.
    pub fn start(data_dir: &Path, database_url: Option<&str>) -> Server {
        Server::start_with(data_dir, database_url, &[])
    }

    /// [`Server::start`] with extra flags.
    pub fn start_with(data_dir: &Path, database_url: Option<&str>, extra_args: &[&str]) -> Server {
        let mut server = Server {
            extra_args: extra_args.iter().map(|a| a.to_string()).collect(),
            data_dir: data_dir.to_path_buf(),
            listen: format!("127.0.0.1:{}", free_port()),
            connector_listen: format!("127.0.0.1:{}", free_port()),
            database_url: database_url.map(str::to_string),
            child: None,
            log: data_dir.with_extension(format!("{}.log", uuid::Uuid::new_v4().simple())),
        };
        server.spawn();
        server
    }

    /// A server on SQLite in `dir/data` with fast heartbeats and retries (1 s each), and the
    /// directory `people` and the flows `flows` (YAML) applied.
    pub fn start_applied(dir: &Path, people: &str, flows: &str) -> Server {
        let server = Server::start_with(
            &dir.join("data"),
            None,
            &["--connector-heartbeat", "1s", "--command-retry-base", "1s"],
        );
        server.apply(
            dir,
            &[
                ("people.yaml", people, "directory"),
                ("flows.yaml", flows, "flows"),
            ],
        );
        server
    }

    /// Starts the server again with the same settings (after [`Server::stop`]).
    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let mut command = Command::new(bin_path("latch-server"));
        command
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args([
                "--listen",
                &self.listen,
                "--connector-listen",
                &self.connector_listen,
            ])
            .env_remove("LATCH_DATABASE_URL")
            .env("LATCH_LOG", "info")
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        if let Some(url) = &self.database_url {
            command.args(["--database-url", url]);
        }
        command.args(&self.extra_args);
        self.child = Some(command.spawn().expect("start latch-server"));
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "latch-server exited with {status} during start:\n{}",
                    self.log_text()
                );
            }
            if http_get(&self.listen, "/healthz").is_some_and(|(code, _)| code == 200) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "latch-server did not become ready in 30 s:\n{}",
            self.log_text()
        );
    }

    /// `http://` URL of the public API.
    pub fn url(&self) -> String {
        format!("http://{}", self.listen)
    }

    /// The first admin token the server wrote at first start.
    pub fn admin_token(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("admin.token"))
            .expect("admin.token")
            .trim()
            .to_string()
    }

    /// Everything the server logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills the process at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM and waits for the process to exit; returns its exit code.
    pub fn stop(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        let pid = child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        panic!("latch-server did not stop within 15 s of SIGTERM");
    }

    /// Applies YAML documents with the admin token: each `(file name, text, command)` is written
    /// to `dir` and applied with `latch COMMAND apply -f FILE` (`directory`, `flows`,
    /// `resources`).
    pub fn apply(&self, dir: &Path, documents: &[(&str, &str, &str)]) {
        let admin = self.admin_token();
        for (name, text, command) in documents {
            let path = dir.join(name);
            std::fs::write(&path, text).expect("write a document");
            success(&self.cli(
                Some(&admin),
                &[command, "apply", "-f", &path.display().to_string()],
            ));
        }
    }

    /// A new API token for `user`, made with the admin token.
    pub fn user_token(&self, user: &str) -> String {
        let out = success(&self.cli(
            Some(&self.admin_token()),
            &["-o", "json", "tokens", "create", "--user", user],
        ));
        let value: serde_json::Value =
            serde_json::from_str(&out).unwrap_or_else(|err| panic!("not JSON ({err}): {out}"));
        value["token"].as_str().expect("token").to_string()
    }

    /// `latch request` with `token`: `permission` on `resource` for `duration` (like `5s`), with
    /// a justification. Returns the request's id.
    pub fn request_access(
        &self,
        token: &str,
        resource: &str,
        permission: &str,
        duration: &str,
    ) -> String {
        let out = success(&self.cli(
            Some(token),
            &[
                "-o",
                "json",
                "request",
                "--resource",
                resource,
                "--permission",
                permission,
                "--duration",
                duration,
                "--reason",
                "end-to-end test",
            ],
        ));
        json(&out)["id"]
            .as_str()
            .unwrap_or_else(|| panic!("no request id in {out}"))
            .to_string()
    }

    /// `latch requests show ID` with `token`, as JSON.
    pub fn request(&self, token: &str, id: &str) -> serde_json::Value {
        json(&success(
            &self.cli(Some(token), &["-o", "json", "requests", "show", id]),
        ))
    }

    /// The state of request `id` (`pending`, `active`, ...), as `token` sees it.
    pub fn request_state(&self, token: &str, id: &str) -> String {
        self.request(token, id)["state"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Waits until request `id` is in `state` (`active`, `expired`, ...), as `token` sees it.
    pub fn wait_request_state(&self, token: &str, id: &str, state: &str, timeout: Duration) {
        let mut last = serde_json::Value::Null;
        let reached = try_wait_until(timeout, || {
            last = self.request(token, id);
            last["state"] == state
        });
        assert!(
            reached,
            "request {id} did not become {state} within {timeout:?}; last seen: {last}"
        );
    }

    /// `latch resources list FILTERS...` as the admin (for example `--integration NAME`): the
    /// resources, as JSON.
    pub fn list_resources(&self, filters: &[&str]) -> Vec<serde_json::Value> {
        let mut args = vec!["-o", "json", "resources", "list"];
        args.extend_from_slice(filters);
        let out = success(&self.cli(Some(&self.admin_token()), &args));
        match json(&out) {
            serde_json::Value::Array(resources) => resources,
            _ => panic!("not a list of resources: {out}"),
        }
    }

    /// Waits until `latch resources show ID` finds resource `id` (a connector's sync reached it).
    pub fn wait_resource(&self, id: &str, timeout: Duration) {
        let admin = self.admin_token();
        wait_until(timeout, &format!("{id} to be synced"), || {
            self.cli(Some(&admin), &["-o", "json", "resources", "show", id])
                .status
                .success()
        });
    }

    /// Runs the `latch` CLI against this server with `token` (none when `None`).
    pub fn cli(&self, token: Option<&str>, args: &[&str]) -> Output {
        self.cli_command(token, args).output().expect("run latch")
    }

    /// The `latch` command [`Server::cli`] runs, to start in the background.
    pub fn cli_command(&self, token: Option<&str>, args: &[&str]) -> Command {
        let mut command = Command::new(bin_path("latch"));
        command
            .args(["--server", &self.url()])
            .args(args)
            .current_dir(&self.data_dir)
            .env_remove("LATCH_TOKEN")
            .env_remove("LATCH_TOKEN_FILE")
            .env_remove("LATCH_SERVER")
            .stdin(Stdio::null());
        if let Some(token) = token {
            command.env("LATCH_TOKEN", token);
        }
        command
    }

    /// Opens the server's database the way the server does.
    pub async fn store(&self) -> std::sync::Arc<dyn latch_server::store::Store> {
        latch_server::store::open(self.database_url.as_deref(), &self.data_dir)
            .await
            .expect("open the server's database")
    }

    /// Plays the connector, which arrives in a later release: reports every open command as done,
    /// through the store call the connector hub will make. Returns (grants, revokes) confirmed.
    pub async fn confirm_commands(&self) -> (usize, usize) {
        use latch_server::store::CommandResult;
        let store = self.store().await;
        let mut counts = (0, 0);
        for command in store.open_commands(10_000).await.expect("open commands") {
            if command.kind == "grant" {
                counts.0 += 1;
            } else {
                counts.1 += 1;
            }
            store
                .complete_command(
                    &command.id,
                    &CommandResult::Done,
                    "test-connector",
                    chrono::Utc::now(),
                )
                .await
                .expect("complete command");
        }
        counts
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            print_tail("latch-server", &self.log);
        }
    }
}

/// Prints the last lines of a log file to stderr: what a failing test shows of its processes.
pub fn print_tail(what: &str, log: &Path) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    eprintln!(
        "--- last lines of {what}'s log ({}) ---\n{}",
        log.display(),
        lines[lines.len().saturating_sub(80)..].join("\n")
    );
}

/// A minimal HTTP/1.1 GET, enough for /healthz and /metrics without an HTTP client dependency.
pub fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let code = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    Some((code, body))
}

/// CLI output read as JSON; panics with the text when it is not.
pub fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|err| panic!("not JSON ({err}): {text}"))
}

/// stdout of a CLI run that must have succeeded.
pub fn success(output: &Output) -> String {
    assert!(
        output.status.success(),
        "command failed with {}:\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// stderr of a CLI run that must have failed.
pub fn failure(output: &Output) -> String {
    assert!(
        !output.status.success(),
        "command unexpectedly succeeded:\nstdout:\n{}",
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Polls `check` every 100 ms until it holds; panics, naming `what`, if it does not within
/// `timeout`.
pub fn wait_until(timeout: Duration, what: &str, check: impl FnMut() -> bool) {
    assert!(
        try_wait_until(timeout, check),
        "{what} did not happen within {timeout:?}"
    );
}

/// Polls `check` every 100 ms until it holds (true) or `timeout` passes (false).
pub fn try_wait_until(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
