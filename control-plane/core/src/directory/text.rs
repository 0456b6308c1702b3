//! Small text helpers for the directory: email keys, name and timestamp checks, and how values are
//! named in problem messages.
//!
//! The flow module has similar helpers, but they are private to it; these are kept small and local
//! rather than widening the flow module's interface.

/// Whether `text` looks like an email address: one `@` with something on each side, no blanks or
/// control characters. Deliberately loose (the same rule flows use): the identity provider is the
/// authority on addresses; this only catches a name or a typo where an address belongs.
pub(crate) fn looks_like_email(text: &str) -> bool {
    match text.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !text.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        None => false,
    }
}

/// Why `name` cannot name a group or a schedule, if it cannot: names are compared exactly, so an
/// empty name or one with blanks around it is almost surely a mistake that would never match.
pub(crate) fn name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("must not be empty")
    } else if name.trim() != name {
        Some("has blanks around it")
    } else {
        None
    }
}

/// Parses an RFC 3339 time such as `2026-11-26T00:00:00Z` or `2026-11-26T01:00:00.5+01:00`.
///
/// jiff's own parser takes the wider Temporal syntax (`2026-11-26T00Z`, bracketed zone annotations,
/// a space for the `T`); the shape is checked here first so that what a directory accepts is
/// exactly what its message promises, and other tools reading the same file agree on it.
pub(crate) fn parse_rfc3339(text: &str) -> Option<jiff::Timestamp> {
    let b = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| {
        b.get(range)
            .is_some_and(|s| s.iter().all(u8::is_ascii_digit))
    };
    let at = |i: usize, options: &[u8]| b.get(i).is_some_and(|c| options.contains(c));
    let date_and_time = digits(0..4)
        && at(4, b"-")
        && digits(5..7)
        && at(7, b"-")
        && digits(8..10)
        && at(10, b"Tt")
        && digits(11..13)
        && at(13, b":")
        && digits(14..16)
        && at(16, b":")
        && digits(17..19);
    if !date_and_time {
        return None;
    }
    let mut i = 19;
    if at(i, b".") {
        let fraction = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if fraction == 0 {
            return None;
        }
        i += 1 + fraction;
    }
    let offset = match b.get(i) {
        Some(b'Z' | b'z') => i + 1 == b.len(),
        Some(b'+' | b'-') => {
            digits(i + 1..i + 3) && at(i + 3, b":") && digits(i + 4..i + 6) && i + 6 == b.len()
        }
        _ => false,
    };
    if !offset {
        return None;
    }
    // The calendar itself (month 13, February 30, hour 24) is jiff's to judge.
    text.parse().ok()
}

/// A string in double quotes, for naming a value in a message: `"bob"`. Rust's escaping is used,
/// which keeps line breaks and control characters from breaking the one-line message.
pub(crate) fn quoted(text: &str) -> String {
    format!("{text:?}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::{email_key, render_value};
    use serde_yaml_ng::Value;

    #[test]
    fn emails_need_one_at_sign_and_no_blanks() {
        assert!(looks_like_email("a@example.com"));
        assert!(looks_like_email("root@localhost"));
        for bad in ["bob", "@example.com", "a@", "a@b@c", "a b@example.com", ""] {
            assert!(!looks_like_email(bad), "{bad}");
        }
        assert_eq!(email_key(" Bob@X.org "), "bob@x.org");
    }

    #[test]
    fn only_rfc3339_times_parse() {
        for good in [
            "2026-11-26T00:00:00Z",
            "2026-11-26t00:00:00z",
            "2026-11-26T01:00:00+01:00",
            "2026-11-26T00:00:00.123456789-05:30",
        ] {
            assert!(parse_rfc3339(good).is_some(), "{good}");
        }
        assert_eq!(
            parse_rfc3339("2026-11-26T01:00:00+01:00"),
            parse_rfc3339("2026-11-26T00:00:00Z")
        );
        for bad in [
            "tomorrow",
            "2026-11-26",
            "2026-11-26T00Z",
            "2026-11-26 00:00:00Z",
            "2026-11-26T00:00:00",
            "2026-11-26T00:00:00.Z",
            "2026-11-26T00:00:00Z[Europe/Berlin]",
            "2026-11-26T00:00:00+0100",
            "2026-13-26T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "",
        ] {
            assert!(parse_rfc3339(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn names_must_be_clean() {
        assert_eq!(name_problem("sre"), None);
        assert_eq!(name_problem("Domain Admins"), None);
        assert_eq!(name_problem(""), Some("must not be empty"));
        assert_eq!(name_problem(" sre"), Some("has blanks around it"));
    }

    #[test]
    fn values_render_on_one_line() {
        let value: Value =
            serde_yaml_ng::from_str("{a: [1, true, null], b: \"x\\ny\"}").expect("valid yaml");
        assert_eq!(render_value(&value), r#"{a: [1, true, null], b: "x\ny"}"#);
        assert!(render_value(&Value::String("x".repeat(200))).ends_with("..."));
    }
}
