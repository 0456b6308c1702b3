//! Small pieces of PostgreSQL text: quoting, the group role's name, privilege lists, and how a
//! driver error becomes a [`ProviderError`].
//!
//! DDL (`CREATE ROLE`, `GRANT`) takes no bind parameters, so names and literals are quoted here.
//! Everything quoted has been checked before: logins are plain names, privileges are known
//! keywords, passwords are alphanumeric. Quoting is still applied to all of them, so a check
//! missed somewhere cannot turn into SQL.

use sha2::{Digest, Sha256};

use crate::provider::ProviderError;

/// PostgreSQL truncates identifiers longer than this many bytes.
const MAX_IDENTIFIER_BYTES: usize = 63;

/// `name` as a quoted identifier: `"` around it, inner `"` doubled.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `text` as a string literal: `'` around it, inner `'` doubled. The connector's sessions keep
/// `standard_conforming_strings` on (the default since 9.1), so backslashes are plain text.
pub(crate) fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The group role holding `permission` on a database (or one of its schemas).
///
/// Readable as `latch_<db>[_<schema>]_<perm>` when every part is lowercase letters and digits.
/// Otherwise the parts are sanitized (anything else becomes `_`), which could make two targets
/// look alike (`app_eu` + `read` against `app` + `eu_read`), so a short hash of the exact parts
/// is appended; names past 63 bytes are cut before the hash so they stay unique.
pub(crate) fn group_role(database: &str, schema: Option<&str>, permission: &str) -> String {
    let parts: Vec<&str> = [Some(database), schema, Some(permission)]
        .into_iter()
        .flatten()
        .collect();
    let plain = parts.iter().all(|part| {
        !part.is_empty()
            && part
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    });
    let sanitized: Vec<String> = parts
        .iter()
        .map(|part| {
            part.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_lowercase()
                    } else {
                        '_'
                    }
                })
                .collect()
        })
        .collect();
    let readable = format!("latch_{}", sanitized.join("_"));
    if plain && readable.len() <= MAX_IDENTIFIER_BYTES {
        return readable;
    }
    let key = match schema {
        None => format!("database\0{database}\0{permission}"),
        Some(schema) => format!("schema\0{database}\0{schema}\0{permission}"),
    };
    let hash = hex::encode(Sha256::digest(key.as_bytes()));
    let mut name = readable;
    // Sanitized text is ASCII, so any byte index is a character boundary.
    name.truncate(MAX_IDENTIFIER_BYTES - 9);
    name.push('_');
    name.push_str(&hash[..8]);
    name
}

/// The privileges for `GRANT ... ON TABLES`; `ALL` absorbs the others.
pub(crate) fn table_privileges(privileges: &[String]) -> String {
    if privileges.iter().any(|p| p == "ALL") {
        return "ALL".to_string();
    }
    privileges.join(", ")
}

/// The privileges for `GRANT ... ON SEQUENCES` that go with the table privileges: reading a
/// table needs `USAGE, SELECT` on its sequences, writing needs `UPDATE` (for `nextval`).
/// `None` when the permission needs none.
pub(crate) fn sequence_privileges(privileges: &[String]) -> Option<String> {
    let has = |word: &str| privileges.iter().any(|p| p == word);
    if has("ALL") {
        return Some("ALL".to_string());
    }
    let mut list = Vec::new();
    if has("SELECT") || has("INSERT") || has("UPDATE") {
        list.push("USAGE");
    }
    if has("SELECT") {
        list.push("SELECT");
    }
    if has("INSERT") || has("UPDATE") {
        list.push("UPDATE");
    }
    (!list.is_empty()).then(|| list.join(", "))
}

/// Turns a driver error into a [`ProviderError`] whose kind decides retries; `what` says what
/// was being done, for the message.
pub(crate) fn classify(err: sqlx::Error, what: &str) -> ProviderError {
    match &err {
        sqlx::Error::Database(db) => {
            let code = db.code().map(|code| code.into_owned()).unwrap_or_default();
            let message = format!("{what}: {} (SQLSTATE {code})", db.message());
            match code.as_str() {
                // undefined_object, invalid_catalog_name, invalid_schema_name, undefined_table.
                "42704" | "3D000" | "3F000" | "42P01" => ProviderError::not_found(message),
                // insufficient_privilege, invalid authorization or password.
                "42501" | "28000" | "28P01" => ProviderError::denied(message),
                // serialization_failure, deadlock_detected, lock_not_available, object_in_use;
                // duplicate_object and unique_violation come from racing DDL and pass on retry.
                "40001" | "40P01" | "55P03" | "55006" | "42710" | "23505" => {
                    ProviderError::transient(message)
                }
                // Concurrent catalog updates (GRANT on the same object) surface as internal
                // errors; they pass on retry.
                "XX000" if db.message().contains("tuple concurrently") => {
                    ProviderError::transient(message)
                }
                // Connection exceptions, insufficient resources, operator intervention (admin
                // shutdown, 57P01), system errors.
                code if ["08", "53", "57", "58"]
                    .iter()
                    .any(|class| code.starts_with(class)) =>
                {
                    ProviderError::transient(message)
                }
                _ => ProviderError::invalid(message),
            }
        }
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::BeginFailed => ProviderError::transient(format!("{what}: {err}")),
        sqlx::Error::RowNotFound => ProviderError::not_found(format!("{what}: {err}")),
        _ => ProviderError::invalid(format!("{what}: {err}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_doubles_the_quote_character() {
        assert_eq!(quote_ident("app"), "\"app\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
    }

    #[test]
    fn group_roles_are_readable_when_they_can_be_and_unique_always() {
        assert_eq!(group_role("app", None, "read"), "latch_app_read");
        assert_eq!(
            group_role("app", Some("sales"), "write"),
            "latch_app_sales_write"
        );
        let eu = group_role("app_eu", None, "read");
        assert!(eu.starts_with("latch_app_eu_read_"), "{eu}");
        assert_ne!(eu, group_role("app", None, "eu_read"));
        assert_ne!(
            group_role("App", None, "read"),
            group_role("app", None, "read")
        );
        let long = "x".repeat(80);
        let a = group_role(&format!("{long}a"), None, "read");
        let b = group_role(&format!("{long}b"), None, "read");
        assert_eq!(a.len(), 63);
        assert_ne!(a, b);
        assert!(group_role("we\"ird db", Some("s p"), "read").is_ascii());
    }

    #[test]
    fn privilege_lists() {
        let words = |list: &[&str]| list.iter().map(|w| w.to_string()).collect::<Vec<_>>();
        assert_eq!(table_privileges(&words(&["SELECT"])), "SELECT");
        assert_eq!(table_privileges(&words(&["SELECT", "ALL"])), "ALL");
        assert_eq!(
            sequence_privileges(&words(&["SELECT"])).as_deref(),
            Some("USAGE, SELECT")
        );
        assert_eq!(
            sequence_privileges(&words(&["SELECT", "INSERT", "UPDATE", "DELETE"])).as_deref(),
            Some("USAGE, SELECT, UPDATE")
        );
        assert_eq!(sequence_privileges(&words(&["TRUNCATE"])), None);
    }

    #[test]
    fn driver_errors_are_classified() {
        assert!(classify(sqlx::Error::PoolTimedOut, "granting").is_retryable());
        let io = sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "reset",
        ));
        assert!(classify(io, "granting").is_retryable());
        assert!(matches!(
            classify(sqlx::Error::RowNotFound, "x"),
            ProviderError::NotFound { .. }
        ));
    }
}
