//! Small text forms shared by the YAML reader, the YAML writer, the proto conversion and the messages:
//! durations, times of day, YAML scalars and values quoted in problem messages.

use std::fmt::Write as _;
use std::time::Duration;

use serde_yaml_ng::Value;

/// Formats a duration the way people write one in a flow: `1h`, `30m`, `1h 30m`, `7d`.
///
/// humantime's own formatter is not used because it breaks long durations into years and months of
/// fractional days (`1month 11h 49m 24s` for 31 days), which nobody would write.
pub(crate) fn format_duration(duration: Duration) -> String {
    let secs = duration.as_secs();
    let nanos = duration.subsec_nanos();
    if secs == 0 && nanos == 0 {
        return "0s".to_owned();
    }
    let parts = [
        (secs / 86_400, "d"),
        (secs % 86_400 / 3_600, "h"),
        (secs % 3_600 / 60, "m"),
        (secs % 60, "s"),
        (u64::from(nanos / 1_000_000), "ms"),
        (u64::from(nanos / 1_000 % 1_000), "us"),
        (u64::from(nanos % 1_000), "ns"),
    ];
    let mut out = String::new();
    for (amount, unit) in parts {
        if amount == 0 {
            continue;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        let _ = write!(out, "{amount}{unit}");
    }
    out
}

/// Parses a duration such as `1h`, `30m`, `1h 30m` or `7d`; `None` when it is not one.
pub(crate) fn parse_duration(text: &str) -> Option<Duration> {
    humantime::parse_duration(text.trim()).ok()
}

/// Formats a time of day as `HH:MM` when it is a whole minute, and in jiff's full form otherwise
/// (which only a hand-built spec can reach; validation refuses it).
pub(crate) fn format_time(time: jiff::civil::Time) -> String {
    if time.second() == 0 && time.subsec_nanosecond() == 0 {
        format!("{:02}:{:02}", time.hour(), time.minute())
    } else {
        time.to_string()
    }
}

/// Parses a time of day written strictly as `HH:MM` on a 24-hour clock.
pub(crate) fn parse_hhmm(text: &str) -> Option<jiff::civil::Time> {
    let bytes = text.as_bytes();
    let digit = |i: usize| -> Option<i8> {
        let b = *bytes.get(i)?;
        b.is_ascii_digit().then(|| (b - b'0') as i8)
    };
    if bytes.len() != 5 || bytes[2] != b':' {
        return None;
    }
    let hour = digit(0)? * 10 + digit(1)?;
    let minute = digit(3)? * 10 + digit(4)?;
    jiff::civil::Time::new(hour, minute, 0, 0).ok()
}

/// Writes a string as a YAML scalar: plain when that is safe and reads back as the same string,
/// double-quoted otherwise.
pub(crate) fn yaml_scalar(text: &str) -> String {
    if is_plain_safe(text) {
        text.to_owned()
    } else {
        double_quoted(text)
    }
}

/// Whether `text` can be written unquoted, both in block and in flow context (inside `[...]` and
/// `{...}`), and still read back as this very string rather than a number, a boolean or null.
fn is_plain_safe(text: &str) -> bool {
    let mut chars = text.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    // A conservative alphabet: no indicator, no space, no colon (libyaml reads `a:b` inside a flow
    // collection as a key), so only the core schema's typed scalars remain, which the re-read catches.
    if !first.is_ascii_alphanumeric() {
        return false;
    }
    if !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | '@' | '+' | '-')) {
        return false;
    }
    // YAML 1.1 readers (still common in other tools) take these words for booleans.
    const YAML_1_1_BOOLEANS: [&str; 8] = ["y", "n", "yes", "no", "on", "off", "true", "false"];
    if YAML_1_1_BOOLEANS
        .iter()
        .any(|word| word.eq_ignore_ascii_case(text))
    {
        return false;
    }
    matches!(serde_yaml_ng::from_str::<Value>(text), Ok(Value::String(read)) if read == text)
}

/// A YAML double-quoted scalar. Escapes everything YAML does not take raw inside quotes, including
/// the Unicode line breaks (NEL, LS, PS) that would otherwise be folded.
pub(crate) fn double_quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control()
                || matches!(
                    c,
                    '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}'
                ) =>
            {
                let code = u32::from(c);
                if code <= 0xffff {
                    let _ = write!(out, "\\u{code:04X}");
                } else {
                    let _ = write!(out, "\\U{code:08X}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Longest rendering of an offending value in a message; past it the value is cut with `...`.
const MAX_RENDERED: usize = 80;

/// Renders a YAML value compactly on one line, for naming it in a problem message: strings quoted,
/// numbers and booleans bare, lists as `[a, b]`, mappings as `{key: value}`.
pub(crate) fn render_value(value: &Value) -> String {
    let mut out = String::new();
    render_into(&mut out, value);
    if out.chars().count() > MAX_RENDERED {
        let cut: String = out.chars().take(MAX_RENDERED).collect();
        format!("{cut}...")
    } else {
        out
    }
}

fn render_into(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => {
            let _ = write!(out, "{b}");
        }
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::String(s) => out.push_str(&double_quoted(s)),
        Value::Sequence(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                render_into(out, item);
            }
            out.push(']');
        }
        Value::Mapping(map) => {
            out.push('{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                render_key(out, key);
                out.push_str(": ");
                render_into(out, item);
            }
            out.push('}');
        }
        Value::Tagged(tagged) => {
            let _ = write!(out, "{} ", tagged.tag);
            render_into(out, &tagged.value);
        }
    }
}

/// Renders a mapping key: bare when it is a simple word (as people write keys), like a value otherwise.
pub(crate) fn render_key(out: &mut String, key: &Value) {
    match key {
        Value::String(s)
            if !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')) =>
        {
            out.push_str(s);
        }
        other => render_into(out, other),
    }
}

/// The canonical form of an email address: trimmed and lowercased, so that nobody becomes a
/// different person (or the same one) by changing case or adding blanks.
pub(crate) fn email_key(email: &str) -> String {
    email.trim().to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_format_as_people_write_them() {
        assert_eq!(format_duration(Duration::from_secs(3600)), "1h");
        assert_eq!(format_duration(Duration::from_secs(1800)), "30m");
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h 30m");
        assert_eq!(format_duration(Duration::from_secs(31 * 86_400)), "31d");
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(
            format_duration(Duration::new(1, 500_000_007)),
            "1s 500ms 7ns"
        );
    }

    #[test]
    fn formatted_durations_parse_back() {
        for d in [
            Duration::from_secs(1),
            Duration::from_secs(3600),
            Duration::from_secs(365 * 86_400),
            Duration::new(90_061, 1_002_003),
            Duration::ZERO,
        ] {
            assert_eq!(parse_duration(&format_duration(d)), Some(d), "{d:?}");
        }
        assert_eq!(parse_duration("5x"), None);
    }

    #[test]
    fn times_are_strict_hh_mm() {
        assert_eq!(parse_hhmm("08:00"), Some(jiff::civil::time(8, 0, 0, 0)));
        assert_eq!(parse_hhmm("23:59"), Some(jiff::civil::time(23, 59, 0, 0)));
        for bad in [
            "25:00", "8:00", "08:60", "0800", "08:00:00", "aa:bb", "", "24:00",
        ] {
            assert_eq!(parse_hhmm(bad), None, "{bad}");
        }
        assert_eq!(format_time(jiff::civil::time(8, 5, 0, 0)), "08:05");
        assert_eq!(format_time(jiff::civil::time(8, 5, 30, 0)), "08:05:30");
    }

    #[test]
    fn scalars_are_quoted_only_when_needed() {
        assert_eq!(yaml_scalar("aws-prod"), "aws-prod");
        assert_eq!(
            yaml_scalar("contractor@example.com"),
            "contractor@example.com"
        );
        assert_eq!(
            yaml_scalar("pagerduty/primary-sre"),
            "pagerduty/primary-sre"
        );
        assert_eq!(yaml_scalar("08:00"), "\"08:00\"");
        assert_eq!(yaml_scalar("true"), "\"true\"");
        assert_eq!(yaml_scalar("null"), "\"null\"");
        assert_eq!(yaml_scalar("Off"), "\"Off\"");
        assert_eq!(yaml_scalar("123"), "\"123\"");
        assert_eq!(yaml_scalar("1e3"), "\"1e3\"");
        assert_eq!(yaml_scalar(""), "\"\"");
        assert_eq!(yaml_scalar("a b"), "\"a b\"");
        assert_eq!(yaml_scalar("say \"hi\"\n"), "\"say \\\"hi\\\"\\n\"");
    }

    #[test]
    fn quoted_scalars_read_back_exactly() {
        for text in [
            "a\u{85}b",
            "x\u{2028}y",
            "tab\there",
            "back\\slash",
            "é ü 日本",
            "\u{1}\u{7f}",
            " lead",
        ] {
            let read: String =
                serde_yaml_ng::from_str(&yaml_scalar(text)).expect("quoted scalar parses");
            assert_eq!(read, text);
        }
    }

    #[test]
    fn values_render_on_one_line() {
        let value: Value =
            serde_yaml_ng::from_str("{usr: a, n: [1, true, null]}").expect("valid yaml");
        assert_eq!(render_value(&value), "{usr: \"a\", n: [1, true, null]}");
        let long = Value::String("x".repeat(200));
        assert!(render_value(&long).ends_with("..."));
    }
}
