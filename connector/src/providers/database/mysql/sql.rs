//! SQL text helpers for the `mysql` provider: quoting, and turning server errors into
//! [`ProviderError`]s.
//!
//! `GRANT`, `REVOKE`, `CREATE USER`, `CREATE EVENT` and `KILL` take no bind parameters, so names
//! and literals are pasted into the statement. Everything pasted goes through the functions here,
//! and names are checked (length, no NUL) before they are quoted.

use sqlx::mysql::MySqlDatabaseError;

use crate::provider::ProviderError;

/// MySQL's limit for database names (and other identifiers), in characters.
const MAX_IDENTIFIER_CHARS: usize = 64;

/// MariaDB's limit for account (user) names, in characters; MySQL's is 32, and the server says
/// so itself when a name is too long.
const MAX_ACCOUNT_CHARS: usize = 80;

/// Server error numbers the provider tells apart.
pub(super) mod code {
    pub const DB_ACCESS_DENIED: u16 = 1044;
    pub const ACCESS_DENIED: u16 = 1045;
    pub const UNKNOWN_DATABASE: u16 = 1049;
    pub const NO_SUCH_THREAD: u16 = 1094;
    pub const PASSWORD_NO_MATCH: u16 = 1133;
    pub const NONEXISTING_GRANT: u16 = 1141;
    pub const TABLE_ACCESS_DENIED: u16 = 1142;
    pub const COLUMN_ACCESS_DENIED: u16 = 1143;
    pub const LOCK_WAIT_TIMEOUT: u16 = 1205;
    pub const LOCK_DEADLOCK: u16 = 1213;
    pub const SPECIFIC_ACCESS_DENIED: u16 = 1227;
    pub const CANNOT_USER: u16 = 1396;
    pub const CANT_CREATE_USER_WITH_GRANT: u16 = 1410;
    pub const ACCESS_DENIED_NO_PASSWORD: u16 = 1698;
    pub const SERVER_GONE: u16 = 2006;
    pub const SERVER_LOST: u16 = 2013;
    pub const TOO_MANY_CONNECTIONS: u16 = 1040;
    pub const SERVER_SHUTDOWN: u16 = 1053;
    pub const NET_READ_TIMEOUT: u16 = 1159;
    pub const NET_WRITE_TIMEOUT: u16 = 1161;
    pub const QUERY_INTERRUPTED: u16 = 1317;
    pub const READ_ONLY: u16 = 1290;
    pub const READ_ONLY_MODE: u16 = 1836;
    pub const CONNECTION_KILLED: u16 = 1927;
}

/// `name` as a backquoted identifier: backquotes inside are doubled.
pub(super) fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// `text` as a single-quoted string literal. Quotes are doubled (which means the same with and
/// without `NO_BACKSLASH_ESCAPES`) and backslashes escaped, so nothing in `text` can end the
/// literal.
pub(super) fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "''"))
}

/// The account `'user'@'host'`.
pub(super) fn account(user: &str, host: &str) -> String {
    format!("{}@{}", quote_literal(user), quote_literal(host))
}

/// The database name as written in `GRANT ... ON <db>.*`: there `_` and `%` are wildcards, so a
/// grant on `app_db` would also cover `appxdb`. They are escaped to stand for themselves (unless
/// the server treats them literally already: MySQL with `partial_revokes`).
pub(super) fn grant_target(db: &str, escape_wildcards: bool) -> String {
    let name = if escape_wildcards {
        db.replace('\\', "\\\\")
            .replace('_', "\\_")
            .replace('%', "\\%")
    } else {
        db.to_string()
    };
    format!("{}.*", quote_ident(&name))
}

/// Refuses database names the server could not hold, before they reach SQL text.
pub(super) fn check_database_name(db: &str) -> Result<(), ProviderError> {
    if db.is_empty() || db.chars().count() > MAX_IDENTIFIER_CHARS || db.contains('\0') {
        return Err(ProviderError::invalid(format!(
            "{db:?} is not a MySQL database name (1 to {MAX_IDENTIFIER_CHARS} characters, no NUL)"
        )));
    }
    Ok(())
}

/// Refuses account names the server could not hold, before they reach SQL text.
pub(super) fn check_account_name(user: &str) -> Result<(), ProviderError> {
    if user.is_empty() || user.chars().count() > MAX_ACCOUNT_CHARS || user.contains('\0') {
        return Err(ProviderError::invalid(format!(
            "{user:?} is not a MySQL account name (1 to {MAX_ACCOUNT_CHARS} characters, no NUL)"
        )));
    }
    Ok(())
}

/// The server's error number, when `err` is an error the server sent.
pub(super) fn error_number(err: &sqlx::Error) -> Option<u16> {
    match err {
        sqlx::Error::Database(db_err) => db_err
            .try_downcast_ref::<MySqlDatabaseError>()
            .map(MySqlDatabaseError::number),
        _ => None,
    }
}

/// Classifies a failure of `what` (a lowercase phrase such as "grant on `app`") so the control
/// plane knows whether to retry.
pub(super) fn classify(err: sqlx::Error, what: &str) -> ProviderError {
    match err {
        sqlx::Error::Database(db_err) => match db_err.try_downcast_ref::<MySqlDatabaseError>() {
            Some(mysql) => classify_number(mysql.number(), mysql.message(), what),
            None => ProviderError::invalid(format!("{what}: {}", db_err.message())),
        },
        sqlx::Error::Io(err) => ProviderError::transient(format!("{what}: connection: {err}")),
        sqlx::Error::Tls(err) => ProviderError::transient(format!("{what}: tls: {err}")),
        sqlx::Error::Protocol(message) => {
            ProviderError::transient(format!("{what}: protocol: {message}"))
        }
        sqlx::Error::PoolTimedOut => ProviderError::transient(format!(
            "{what}: timed out waiting for a connection to the server"
        )),
        sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => {
            ProviderError::transient(format!("{what}: the connection pool is closed"))
        }
        sqlx::Error::RowNotFound => ProviderError::not_found(format!("{what}: no row")),
        sqlx::Error::Configuration(err) => {
            ProviderError::invalid(format!("{what}: configuration: {err}"))
        }
        // Decoding and similar failures are bugs or a server we do not understand: retrying
        // would fail the same way.
        other => ProviderError::invalid(format!("{what}: {other}")),
    }
}

/// Classifies server error `number` with the server's `message`.
pub(super) fn classify_number(number: u16, message: &str, what: &str) -> ProviderError {
    use code::*;
    let text = format!("{what}: {message} (MySQL error {number})");
    match number {
        DB_ACCESS_DENIED
        | ACCESS_DENIED
        | TABLE_ACCESS_DENIED
        | COLUMN_ACCESS_DENIED
        | SPECIFIC_ACCESS_DENIED
        | CANT_CREATE_USER_WITH_GRANT
        | ACCESS_DENIED_NO_PASSWORD => ProviderError::denied(text),
        UNKNOWN_DATABASE => {
            ProviderError::not_found(format!("{what}: unknown database: {message}"))
        }
        PASSWORD_NO_MATCH | NONEXISTING_GRANT => {
            ProviderError::not_found(format!("{what}: no such account or grant: {message}"))
        }
        CANNOT_USER => ProviderError::invalid(format!(
            "{what}: the server refused the account operation: {message}"
        )),
        LOCK_WAIT_TIMEOUT | LOCK_DEADLOCK | SERVER_GONE | SERVER_LOST | TOO_MANY_CONNECTIONS
        | SERVER_SHUTDOWN | NET_READ_TIMEOUT | NET_WRITE_TIMEOUT | QUERY_INTERRUPTED
        | CONNECTION_KILLED | READ_ONLY | READ_ONLY_MODE => ProviderError::transient(text),
        // Unknown errors are not retried: most are configuration problems that need a person.
        _ => ProviderError::invalid(text),
    }
}

/// Like [`classify`], for statements that carry a password: the server's message may quote the
/// statement, so only the error number is kept.
pub(super) fn classify_redacted(err: sqlx::Error, what: &str) -> ProviderError {
    match error_number(&err) {
        Some(number) => classify_number(
            number,
            "(message withheld: the statement holds a password)",
            what,
        ),
        None => classify(err, what),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_keeps_text_inside_its_quotes() {
        assert_eq!(quote_ident("app"), "`app`");
        assert_eq!(quote_ident("a`b"), "`a``b`");
        assert_eq!(quote_literal("o'neil"), "'o''neil'");
        assert_eq!(quote_literal(r"a\'b"), r"'a\\''b'");
        assert_eq!(account("alice", "%"), "'alice'@'%'");
    }

    #[test]
    fn grant_targets_escape_wildcards() {
        assert_eq!(grant_target("app_db", true), r"`app\_db`.*");
        assert_eq!(grant_target("100%", true), r"`100\%`.*");
        assert_eq!(grant_target("app_db", false), "`app_db`.*");
    }

    #[test]
    fn odd_names_are_refused() {
        assert!(check_database_name("").is_err());
        assert!(check_database_name(&"x".repeat(65)).is_err());
        assert!(check_database_name("a\0b").is_err());
        assert!(check_database_name("app-prod").is_ok());
        assert!(check_account_name("").is_err());
        assert!(check_account_name("alice").is_ok());
    }

    #[test]
    fn server_errors_are_classified() {
        let kind = |number| match classify_number(number, "m", "w") {
            ProviderError::Denied { .. } => "denied",
            ProviderError::NotFound { .. } => "not_found",
            ProviderError::Invalid { .. } => "invalid",
            ProviderError::Transient { .. } => "transient",
            ProviderError::Throttled { .. } => "throttled",
        };
        for number in [1044, 1045, 1142, 1227] {
            assert_eq!(kind(number), "denied", "{number}");
        }
        assert_eq!(kind(1049), "not_found");
        assert_eq!(kind(1133), "not_found");
        assert_eq!(kind(1396), "invalid");
        for number in [1205, 1213, 2006, 2013] {
            assert_eq!(kind(number), "transient", "{number}");
        }
        assert_eq!(kind(1064), "invalid");
        assert!(classify(sqlx::Error::PoolTimedOut, "w").is_retryable());
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        assert!(classify(sqlx::Error::Io(io), "w").is_retryable());
    }

    #[test]
    fn redacted_errors_keep_no_server_text() {
        let err = classify_redacted(sqlx::Error::PoolTimedOut, "create user");
        assert!(err.is_retryable());
    }
}
