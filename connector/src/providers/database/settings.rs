//! The settings the `postgres` and `mysql` providers share: where the admin login connects, which
//! databases are in scope, how a person's email becomes a database login, tags, and which
//! privileges each permission stands for.
//!
//! Everything is checked once, when the provider is built, and every problem is reported in one
//! message so an operator fixes the config in one pass. Privilege keywords end up in SQL text
//! (`GRANT SELECT, INSERT ON ...`), so only the engine's known keywords are accepted.

use std::collections::BTreeMap;

use rand::Rng;
use rand::distr::Alphanumeric;
use sha2::{Digest, Sha256};

use crate::config::IntegrationConfig;
use crate::guardrails::glob_match;
use crate::provider::ProviderError;
use crate::providers::login_template;

/// The database engine a provider talks to; decides defaults, allowed keywords and messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Engine {
    Postgres,
    Mysql,
}

impl Engine {
    /// The engine's name for messages.
    pub(crate) fn display_name(self) -> &'static str {
        match self {
            Engine::Postgres => "PostgreSQL",
            Engine::Mysql => "MySQL",
        }
    }

    /// The DSN schemes the engine accepts, without `://`.
    pub(crate) fn schemes(self) -> &'static [&'static str] {
        match self {
            Engine::Postgres => &["postgres", "postgresql"],
            Engine::Mysql => &["mysql", "mariadb"],
        }
    }

    /// The privilege keywords a permission may use; anything else is refused because it would
    /// be pasted into a `GRANT` statement.
    pub(crate) fn allowed_privileges(self) -> &'static [&'static str] {
        match self {
            Engine::Postgres => &[
                "SELECT",
                "INSERT",
                "UPDATE",
                "DELETE",
                "TRUNCATE",
                "REFERENCES",
                "TRIGGER",
                "ALL",
            ],
            Engine::Mysql => &[
                "SELECT",
                "INSERT",
                "UPDATE",
                "DELETE",
                "CREATE",
                "DROP",
                "INDEX",
                "ALTER",
                "CREATE VIEW",
                "SHOW VIEW",
                "EXECUTE",
                "ALL",
            ],
        }
    }

    /// The permissions offered when the config names none: `read`, `write` and `admin`.
    pub(crate) fn default_permissions(self) -> BTreeMap<String, Vec<String>> {
        let list = |words: &[&str]| words.iter().map(|w| w.to_string()).collect::<Vec<_>>();
        let (read, write) = match self {
            Engine::Postgres => (
                list(&["SELECT"]),
                list(&["SELECT", "INSERT", "UPDATE", "DELETE"]),
            ),
            Engine::Mysql => (
                list(&["SELECT", "SHOW VIEW"]),
                list(&["SELECT", "SHOW VIEW", "INSERT", "UPDATE", "DELETE"]),
            ),
        };
        BTreeMap::from([
            ("read".to_string(), read),
            ("write".to_string(), write),
            ("admin".to_string(), list(&["ALL"])),
        ])
    }
}

/// How a grant reaches a person in the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UserMapping {
    /// The person already has a login (named by `role_template`); the grant adds privileges to it.
    ExistingRole,
    /// Each grant makes its own login with a random password, handed back as credentials.
    TemporaryUser,
}

impl UserMapping {
    const WORDS: &'static str = "existing_role, temporary_user";

    /// The config word, also stored in bookkeeping tables.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            UserMapping::ExistingRole => "existing_role",
            UserMapping::TemporaryUser => "temporary_user",
        }
    }

    /// The mapping a config word names.
    pub(crate) fn from_word(word: &str) -> Option<Self> {
        match word {
            "existing_role" => Some(UserMapping::ExistingRole),
            "temporary_user" => Some(UserMapping::TemporaryUser),
            _ => None,
        }
    }
}

/// Tags for the databases whose name matches `databases` (a glob).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TagRule {
    pub databases: String,
    pub tags: BTreeMap<String, String>,
}

/// One `postgres` or `mysql` integration's settings, checked.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct DatabaseSettings {
    /// The admin login's DSN, read from `dsn`, `dsn_file` or `dsn_env`. May hold a password:
    /// never log it (`Debug` hides it).
    pub dsn: String,
    /// Globs of the databases in scope; empty means every database but the system ones.
    pub databases: Vec<String>,
    pub user_mapping: UserMapping,
    /// How an email becomes a login: `{local}` and `{email}` are replaced, the rest is literal.
    pub role_template: String,
    pub tag_rules: Vec<TagRule>,
    /// Permission name to privilege keywords (upper case, single spaces), never empty.
    pub permissions: BTreeMap<String, Vec<String>>,
    /// The host to hand out with temporary credentials, when clients reach the server by
    /// another name than the connector does.
    pub connect_host: Option<String>,
    pub connect_port: Option<u16>,
}

impl std::fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("dsn", &"<redacted>")
            .field("databases", &self.databases)
            .field("user_mapping", &self.user_mapping)
            .field("role_template", &self.role_template)
            .field("tag_rules", &self.tag_rules)
            .field("permissions", &self.permissions)
            .field("connect_host", &self.connect_host)
            .field("connect_port", &self.connect_port)
            .finish()
    }
}

const KNOWN_KEYS: &[&str] = &[
    "dsn",
    "dsn_file",
    "dsn_env",
    "databases",
    "user_mapping",
    "role_template",
    "tag_rules",
    "permissions",
    "connect_host",
    "connect_port",
];

/// The longest login name accepted: PostgreSQL's identifier limit.
const MAX_LOGIN_LEN: usize = 63;

impl DatabaseSettings {
    /// Reads and checks `integration.settings` for `engine`. The error names the integration and
    /// lists every problem, each with its field and value.
    pub(crate) fn parse(integration: &IntegrationConfig, engine: Engine) -> Result<Self, String> {
        let settings = &integration.settings;
        let mut problems: Vec<String> = Vec::new();

        for key in settings.keys() {
            if !KNOWN_KEYS.contains(&key.as_str()) {
                problems.push(format!(
                    "{key}: unknown setting for kind {:?} (known: {})",
                    integration.kind,
                    KNOWN_KEYS.join(", ")
                ));
            }
        }

        let dsn = parse_dsn(settings, engine, &mut problems);

        let databases = match settings.get("databases") {
            None => Vec::new(),
            Some(value) => string_list("databases", value, &mut problems),
        };
        for (i, glob) in databases.iter().enumerate() {
            if glob.is_empty() {
                problems.push(format!("databases[{i}]: \"\" must not be empty"));
            }
        }

        let user_mapping = match settings.get("user_mapping") {
            None => UserMapping::ExistingRole,
            Some(toml::Value::String(word)) => UserMapping::from_word(word).unwrap_or_else(|| {
                problems.push(format!(
                    "user_mapping {word:?} is not one of {}",
                    UserMapping::WORDS
                ));
                UserMapping::ExistingRole
            }),
            Some(other) => {
                problems.push(format!(
                    "user_mapping {other} must be a string, one of {}",
                    UserMapping::WORDS
                ));
                UserMapping::ExistingRole
            }
        };

        let role_template = login_template::setting(settings, "role_template", &mut problems);

        let tag_rules = match settings.get("tag_rules") {
            None => Vec::new(),
            Some(value) => parse_tag_rules(value, &mut problems),
        };

        let permissions = match settings.get("permissions") {
            None => engine.default_permissions(),
            Some(value) => parse_permissions(value, engine, &mut problems),
        };

        let connect_host = match settings.get("connect_host") {
            None => None,
            Some(toml::Value::String(host)) if !host.trim().is_empty() => Some(host.clone()),
            Some(other) => {
                problems.push(format!(
                    "connect_host {other} must be a non-empty string (a host name or address)"
                ));
                None
            }
        };

        let connect_port = match settings.get("connect_port") {
            None => None,
            Some(toml::Value::Integer(port)) => match u16::try_from(*port) {
                Ok(port) if port > 0 => Some(port),
                _ => {
                    problems.push(format!("connect_port {port} must be between 1 and 65535"));
                    None
                }
            },
            Some(other) => {
                problems.push(format!(
                    "connect_port {other} must be an integer between 1 and 65535"
                ));
                None
            }
        };

        if !problems.is_empty() {
            return Err(format!(
                "integrations {:?}: {}",
                integration.name,
                problems.join("; ")
            ));
        }
        Ok(DatabaseSettings {
            dsn: dsn.unwrap_or_default(),
            databases,
            user_mapping,
            role_template,
            tag_rules,
            permissions,
            connect_host,
            connect_port,
        })
    }

    /// The database login for the person with `email`, from `role_template`. Refuses results that
    /// are not plain identifiers, so an odd email never turns into an odd role name.
    pub(crate) fn login_for(&self, email: &str) -> Result<String, ProviderError> {
        let login = login_template::render(&self.role_template, email);
        if login.is_empty() || login.len() > MAX_LOGIN_LEN || !login.chars().all(is_login_char) {
            return Err(ProviderError::invalid(format!(
                "the login {login:?} made for {email:?} by role_template {:?} is not a plain \
                 name (letters, digits, _, -, ., @; 1 to {MAX_LOGIN_LEN} characters)",
                self.role_template
            )));
        }
        Ok(login)
    }

    /// Whether the database `name` is in scope.
    pub(crate) fn includes_database(&self, name: &str) -> bool {
        self.databases.is_empty() || self.databases.iter().any(|glob| glob_match(glob, name))
    }

    /// The tags of database `database`: every matching rule's tags, a later rule winning.
    pub(crate) fn tags_for(&self, database: &str) -> BTreeMap<String, String> {
        let mut tags = BTreeMap::new();
        for rule in &self.tag_rules {
            if glob_match(&rule.databases, database) {
                tags.extend(rule.tags.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
        }
        tags
    }

    /// The privilege keywords of `permission`, or `None` when it is not configured.
    pub(crate) fn privileges(&self, permission: &str) -> Option<&[String]> {
        self.permissions.get(permission).map(Vec::as_slice)
    }

    /// The permission names, sorted, as synced for every grantable resource type.
    pub(crate) fn permission_names(&self) -> Vec<String> {
        self.permissions.keys().cloned().collect()
    }
}

/// A random password: 32 ASCII letters and digits, so it can be quoted in SQL without surprises.
pub(crate) fn random_password() -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(32)
        .map(char::from)
        .collect()
}

/// The login made for a grant under `temporary_user`: `latch_t_` and 20 hex characters of the
/// grant id's SHA-256. Deterministic, so a redelivered grant (or its revoke) finds the same
/// login; 28 characters, within MySQL's 32.
pub(crate) fn temporary_login(grant_id: &str) -> String {
    let digest = hex::encode(Sha256::digest(grant_id.as_bytes()));
    format!("latch_t_{}", &digest[..20])
}

/// Letters, digits and `_ - . @`: safe inside a quoted identifier on both engines. `@` is allowed
/// so `{email}` templates work.
fn is_login_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '@')
}

fn parse_dsn(settings: &toml::Table, engine: Engine, problems: &mut Vec<String>) -> Option<String> {
    let given: Vec<&str> = ["dsn", "dsn_file", "dsn_env"]
        .into_iter()
        .filter(|key| settings.contains_key(*key))
        .collect();
    if given.len() != 1 {
        problems.push(format!(
            "dsn: set exactly one of dsn, dsn_file (a path) or dsn_env (a variable name); found {}",
            if given.is_empty() {
                "none".to_string()
            } else {
                given.join(", ")
            }
        ));
        return None;
    }
    let key = given[0];
    let (dsn, source) = match settings.get(key) {
        Some(toml::Value::String(text)) => match key {
            "dsn" => (text.clone(), "dsn".to_string()),
            "dsn_file" => match std::fs::read_to_string(text) {
                Ok(content) => (
                    content.trim_end_matches(['\n', '\r']).to_string(),
                    format!("dsn_file {text:?}"),
                ),
                Err(err) => {
                    problems.push(format!("dsn_file {text:?}: cannot read it: {err}"));
                    return None;
                }
            },
            _ => match std::env::var(text) {
                Ok(content) => (
                    content.trim_end_matches(['\n', '\r']).to_string(),
                    format!("dsn_env {text:?}"),
                ),
                Err(err) => {
                    problems.push(format!("dsn_env {text:?}: {err}"));
                    return None;
                }
            },
        },
        Some(other) => {
            problems.push(format!("{key} {other} must be a string"));
            return None;
        }
        None => return None,
    };

    let schemes = engine.schemes();
    let scheme = dsn.split_once("://").map(|(scheme, _)| scheme);
    // The resolved DSN may hold a password: messages show its scheme only, never the whole text.
    match scheme {
        Some(scheme) if schemes.contains(&scheme.to_ascii_lowercase().as_str()) => {}
        Some(scheme) => {
            problems.push(format!(
                "{source}: scheme {scheme:?} is not one of {} for {}",
                schemes
                    .iter()
                    .map(|s| format!("{s}://"))
                    .collect::<Vec<_>>()
                    .join(", "),
                engine.display_name()
            ));
            return None;
        }
        None => {
            problems.push(format!(
                "{source}: must be a URL starting with {}://",
                schemes[0]
            ));
            return None;
        }
    }
    if key == "dsn" && dsn_has_password(&dsn) {
        problems.push(
            "dsn: contains a password; secrets are never written inline, put it in dsn_file or \
             dsn_env"
                .to_string(),
        );
        return None;
    }
    Some(dsn)
}

/// Whether a URL-style DSN carries a password, in its user info or as a `password` parameter.
fn dsn_has_password(dsn: &str) -> bool {
    let rest = dsn.split_once("://").map_or(dsn, |(_, rest)| rest);
    let (authority, query) = match rest.find(['/', '?']) {
        Some(at) => (&rest[..at], rest[at..].split_once('?').map(|(_, q)| q)),
        None => (rest, None),
    };
    let in_userinfo = authority
        .rsplit_once('@')
        .and_then(|(userinfo, _)| userinfo.split_once(':'))
        .is_some_and(|(_, password)| !password.is_empty());
    let in_query = query.is_some_and(|query| {
        query.split('&').any(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            name.eq_ignore_ascii_case("password") && !value.is_empty()
        })
    });
    in_userinfo || in_query
}

fn string_list(field: &str, value: &toml::Value, problems: &mut Vec<String>) -> Vec<String> {
    let Some(items) = value.as_array() else {
        problems.push(format!("{field} {value} must be an array of strings"));
        return Vec::new();
    };
    let mut list = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match item.as_str() {
            Some(text) => list.push(text.to_string()),
            None => problems.push(format!("{field}[{i}] {item} must be a string")),
        }
    }
    list
}

fn parse_tag_rules(value: &toml::Value, problems: &mut Vec<String>) -> Vec<TagRule> {
    let Some(items) = value.as_array() else {
        problems.push(format!(
            "tag_rules {value} must be an array of tables ([[integrations.tag_rules]])"
        ));
        return Vec::new();
    };
    let mut rules = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let Some(table) = item.as_table() else {
            problems.push(format!(
                "tag_rules[{i}] {item} must be a table with databases and tags"
            ));
            continue;
        };
        for key in table.keys() {
            if key != "databases" && key != "tags" {
                problems.push(format!(
                    "tag_rules[{i}].{key}: unknown key (known: databases, tags)"
                ));
            }
        }
        let databases = match table.get("databases") {
            Some(toml::Value::String(glob)) if !glob.is_empty() => glob.clone(),
            Some(other) => {
                problems.push(format!(
                    "tag_rules[{i}].databases {other} must be a non-empty string (a glob)"
                ));
                continue;
            }
            None => {
                problems.push(format!("tag_rules[{i}].databases: missing"));
                continue;
            }
        };
        let mut tags = BTreeMap::new();
        match table.get("tags") {
            Some(toml::Value::Table(entries)) => {
                for (key, value) in entries {
                    match value.as_str() {
                        Some(text) => {
                            tags.insert(key.clone(), text.to_string());
                        }
                        None => problems.push(format!(
                            "tag_rules[{i}].tags.{key} {value} must be a string"
                        )),
                    }
                }
            }
            Some(other) => {
                problems.push(format!("tag_rules[{i}].tags {other} must be a table"));
            }
            None => problems.push(format!("tag_rules[{i}].tags: missing")),
        }
        rules.push(TagRule { databases, tags });
    }
    rules
}

fn parse_permissions(
    value: &toml::Value,
    engine: Engine,
    problems: &mut Vec<String>,
) -> BTreeMap<String, Vec<String>> {
    let Some(table) = value.as_table() else {
        problems.push(format!(
            "permissions {value} must be a table of permission name to privilege list"
        ));
        return BTreeMap::new();
    };
    if table.is_empty() {
        problems.push("permissions: must name at least one permission".to_string());
    }
    let allowed = engine.allowed_privileges();
    let mut permissions = BTreeMap::new();
    for (name, privileges) in table {
        // The name becomes part of group role names and travels to the control plane.
        let name_ok = !name.is_empty()
            && name.len() <= 32
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if !name_ok {
            problems.push(format!(
                "permissions.{name:?}: the name must be lowercase letters, digits, _ and - (1 to 32 characters)"
            ));
        }
        let field = format!("permissions.{name}");
        let list = string_list(&field, privileges, problems);
        if list.is_empty() && privileges.is_array() {
            problems.push(format!("{field}: must list at least one privilege"));
        }
        let mut keywords = Vec::with_capacity(list.len());
        for (i, privilege) in list.iter().enumerate() {
            let keyword = privilege
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .to_ascii_uppercase();
            if allowed.contains(&keyword.as_str()) {
                if !keywords.contains(&keyword) {
                    keywords.push(keyword);
                }
            } else {
                problems.push(format!(
                    "{field}[{i}] {privilege:?} is not a {} privilege this connector grants (allowed: {})",
                    engine.display_name(),
                    allowed.join(", ")
                ));
            }
        }
        permissions.insert(name.clone(), keywords);
    }
    permissions
}

#[cfg(test)]
mod tests {
    use super::*;

    fn integration(kind: &str, text: &str) -> IntegrationConfig {
        let settings: toml::Table = toml::from_str(text).expect("test TOML parses");
        IntegrationConfig {
            name: "pg-main".into(),
            kind: kind.into(),
            rate_limit_per_sec: None,
            settings,
        }
    }

    fn parse_pg(text: &str) -> Result<DatabaseSettings, String> {
        DatabaseSettings::parse(&integration("postgres", text), Engine::Postgres)
    }

    fn settings(text: &str) -> DatabaseSettings {
        parse_pg(text).expect("settings parse")
    }

    #[test]
    fn minimal_settings_get_the_defaults() {
        let s = settings(r#"dsn = "postgres://postgres@127.0.0.1:5432/postgres""#);
        assert_eq!(s.dsn, "postgres://postgres@127.0.0.1:5432/postgres");
        assert!(s.databases.is_empty());
        assert_eq!(s.user_mapping, UserMapping::ExistingRole);
        assert_eq!(s.role_template, "{local}");
        assert_eq!(s.permission_names(), vec!["admin", "read", "write"]);
        assert_eq!(
            s.privileges("read").expect("read"),
            &["SELECT".to_string()][..]
        );
        assert!(s.privileges("owner").is_none());
        assert_eq!(s.connect_host, None);
        assert_eq!(s.connect_port, None);
    }

    #[test]
    fn full_settings_parse() {
        let s = settings(
            r#"
            dsn = "postgresql://admin@db.internal:6432/postgres?sslmode=require"
            databases = ["app*", "reporting"]
            user_mapping = "temporary_user"
            role_template = "u_{local}"
            connect_host = "db.example.com"
            connect_port = 5433
            permissions = { reader = ["select"], editor = ["Select", "insert", "UPDATE"] }
            [[tag_rules]]
            databases = "prod*"
            tags = { env = "prod" }
            "#,
        );
        assert_eq!(s.user_mapping, UserMapping::TemporaryUser);
        assert_eq!(s.databases, vec!["app*", "reporting"]);
        assert_eq!(s.connect_host.as_deref(), Some("db.example.com"));
        assert_eq!(s.connect_port, Some(5433));
        assert_eq!(s.permission_names(), vec!["editor", "reader"]);
        assert_eq!(
            s.privileges("editor").expect("editor"),
            &["SELECT".to_string(), "INSERT".into(), "UPDATE".into()][..]
        );
        assert_eq!(s.tag_rules.len(), 1);
    }

    #[test]
    fn every_problem_is_reported_at_once_with_field_and_value() {
        let err = parse_pg(
            r#"
            dsn = "postgres://postgres@127.0.0.1/postgres"
            user_mapping = "temp"
            role_template = "{first}.{local}"
            databases = ["app", 3]
            connect_port = 70000
            permissions = { read = ["SELECT; DROP TABLE x"] }
            colour = "blue"
            tag_rules = [{ databases = "prod*", tags = { env = 1 } }]
            "#,
        )
        .expect_err("invalid settings");
        for want in [
            "integrations \"pg-main\": ",
            "user_mapping \"temp\" is not one of existing_role, temporary_user",
            "role_template \"{first}.{local}\": unknown placeholder {first}",
            "databases[1] 3 must be a string",
            "connect_port 70000 must be between 1 and 65535",
            "permissions.read[0] \"SELECT; DROP TABLE x\" is not a PostgreSQL privilege",
            "colour: unknown setting",
            "tag_rules[0].tags.env 1 must be a string",
        ] {
            assert!(err.contains(want), "missing {want:?} in {err}");
        }
        assert!(err.matches("; ").count() >= 7, "{err}");
    }

    #[test]
    fn the_dsn_comes_from_exactly_one_place() {
        let none = parse_pg("databases = []").expect_err("no dsn");
        assert!(none.contains("dsn: set exactly one of"), "{none}");
        let two = parse_pg(
            r#"
            dsn = "postgres://a@h/db"
            dsn_env = "X"
            "#,
        )
        .expect_err("two dsns");
        assert!(two.contains("found dsn, dsn_env"), "{two}");
    }

    #[test]
    fn an_inline_password_is_refused() {
        for dsn in [
            "postgres://postgres:hunter2@127.0.0.1/postgres",
            "postgres://postgres@127.0.0.1/postgres?password=hunter2",
        ] {
            let err = parse_pg(&format!("dsn = {dsn:?}")).expect_err("password");
            assert!(err.contains("put it in dsn_file or dsn_env"), "{err}");
            assert!(
                !err.contains("hunter2"),
                "the message leaks the password: {err}"
            );
        }
        // An empty password is no secret.
        settings(r#"dsn = "postgres://postgres:@127.0.0.1/postgres""#);
    }

    #[test]
    fn the_scheme_must_match_the_engine() {
        let err = parse_pg(r#"dsn = "mysql://root@127.0.0.1/mysql""#).expect_err("scheme");
        assert!(
            err.contains("dsn: scheme \"mysql\" is not one of postgres://, postgresql://"),
            "{err}"
        );
        let mysql = DatabaseSettings::parse(
            &integration("mysql", r#"dsn = "mariadb://root@127.0.0.1:3306/""#),
            Engine::Mysql,
        )
        .expect("mariadb scheme");
        assert_eq!(mysql.privileges("read").expect("read").len(), 2);
        let err = DatabaseSettings::parse(
            &integration(
                "mysql",
                r#"
                dsn = "postgres://root@127.0.0.1/"
                permissions = { read = ["TRUNCATE"] }
                "#,
            ),
            Engine::Mysql,
        )
        .expect_err("postgres dsn for mysql");
        assert!(err.contains("for MySQL"), "{err}");
        assert!(
            err.contains("permissions.read[0] \"TRUNCATE\" is not a MySQL privilege"),
            "{err}"
        );
    }

    #[test]
    fn the_dsn_can_come_from_a_file_or_the_environment() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("dsn");
        std::fs::write(&path, "postgres://admin:s3cret@127.0.0.1/postgres\n").expect("write");
        let s = settings(&format!("dsn_file = {:?}", path.display().to_string()));
        assert_eq!(s.dsn, "postgres://admin:s3cret@127.0.0.1/postgres");
        assert!(!format!("{s:?}").contains("s3cret"));

        let err = parse_pg(r#"dsn_file = "/nonexistent/latch-dsn""#).expect_err("missing file");
        assert!(
            err.contains("dsn_file \"/nonexistent/latch-dsn\": cannot read it"),
            "{err}"
        );
        let err = parse_pg(r#"dsn_env = "LATCH_TEST_SURELY_UNSET_DSN""#).expect_err("unset");
        assert!(
            err.contains("dsn_env \"LATCH_TEST_SURELY_UNSET_DSN\""),
            "{err}"
        );
    }

    #[test]
    fn templates_make_logins() {
        let s = settings(r#"dsn = "postgres://a@h/db""#);
        assert_eq!(s.login_for("alice@example.com").expect("login"), "alice");
        let s = settings(
            r#"
            dsn = "postgres://a@h/db"
            role_template = "{local}_ro"
            "#,
        );
        assert_eq!(
            s.login_for("bob.smith@example.com").expect("login"),
            "bob.smith_ro"
        );
        let s = settings(
            r#"
            dsn = "postgres://a@h/db"
            role_template = "{email}"
            "#,
        );
        assert_eq!(
            s.login_for("carol@example.com").expect("login"),
            "carol@example.com"
        );
    }

    #[test]
    fn odd_logins_are_refused() {
        let s = settings(r#"dsn = "postgres://a@h/db""#);
        let err = s
            .login_for("robert\"; DROP ROLE x; --@example.com")
            .expect_err("quote in login");
        assert!(matches!(err, ProviderError::Invalid { .. }), "{err:?}");
        assert!(err.to_string().contains("robert"), "{err}");
        let long = format!("{}@example.com", "a".repeat(64));
        assert!(s.login_for(&long).is_err());
        assert!(s.login_for("@example.com").is_err());
    }

    #[test]
    fn globs_pick_databases() {
        let all = settings(r#"dsn = "postgres://a@h/db""#);
        assert!(all.includes_database("anything"));
        let some = settings(
            r#"
            dsn = "postgres://a@h/db"
            databases = ["app*", "reporting"]
            "#,
        );
        assert!(some.includes_database("app"));
        assert!(some.includes_database("app_eu"));
        assert!(some.includes_database("reporting"));
        assert!(!some.includes_database("reporting2"));
        assert!(!some.includes_database("billing"));
    }

    #[test]
    fn tags_merge_with_later_rules_winning() {
        let s = settings(
            r#"
            dsn = "postgres://a@h/db"
            [[tag_rules]]
            databases = "*"
            tags = { env = "dev", team = "core" }
            [[tag_rules]]
            databases = "prod*"
            tags = { env = "prod" }
            "#,
        );
        assert_eq!(
            s.tags_for("prod_app"),
            BTreeMap::from([
                ("env".to_string(), "prod".to_string()),
                ("team".to_string(), "core".to_string())
            ])
        );
        assert_eq!(s.tags_for("dev_app")["env"], "dev");
    }

    #[test]
    fn temporary_logins_are_stable_and_short() {
        let a = temporary_login("grant-1");
        assert_eq!(a, temporary_login("grant-1"));
        assert_ne!(a, temporary_login("grant-2"));
        assert!(a.starts_with("latch_t_"));
        assert_eq!(a.len(), 28);
        let password = random_password();
        assert_eq!(password.len(), 32);
        assert!(password.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(password, random_password());
    }
}
