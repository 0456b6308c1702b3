//! Durations on the command line, written like `30m`, `1h`, `1h30m`, `90s` or `2d`.

use std::time::Duration;

/// The units, largest first, with their length in seconds.
const UNITS: [(char, u64); 4] = [('d', 86_400), ('h', 3_600), ('m', 60), ('s', 1)];

/// Parses a duration: whole numbers each followed by a unit (`d`, `h`, `m` or `s`), largest unit
/// first and each unit at most once, with no spaces: `30m`, `1h`, `1h30m`, `90s`, `2d`.
///
/// The error names the value and says what is wrong, for clap to print after the option's name.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = |why: &str| {
        format!("{text:?} is not a duration: {why}; write one like 30m, 1h, 1h30m, 90s or 2d")
    };
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(invalid("it is empty"));
    }
    let mut total: u64 = 0;
    // Index into UNITS of the last unit read: the next one must be smaller.
    let mut last_unit: Option<usize> = None;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if rest.starts_with(char::is_whitespace) {
            return Err(invalid("it has a space"));
        }
        if digits == 0 {
            return Err(invalid(&format!("expected a number at {rest:?}")));
        }
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| invalid("the number is too large"))?;
        rest = &rest[digits..];
        let Some(unit) = rest.chars().next() else {
            return Err(invalid(&format!("{number} has no unit (d, h, m or s)")));
        };
        let Some(index) = UNITS.iter().position(|(name, _)| *name == unit) else {
            return Err(invalid(&format!(
                "unknown unit {unit:?}; the units are d, h, m and s"
            )));
        };
        if last_unit.is_some_and(|last| index <= last) {
            return Err(invalid(
                "units must go from largest to smallest, each at most once",
            ));
        }
        last_unit = Some(index);
        rest = &rest[unit.len_utf8()..];
        total = number
            .checked_mul(UNITS[index].1)
            .and_then(|seconds| total.checked_add(seconds))
            // A protobuf duration holds at most i64::MAX seconds.
            .filter(|&seconds| i64::try_from(seconds).is_ok())
            .ok_or_else(|| invalid("it is too long"))?;
    }
    if total == 0 {
        return Err(invalid("it must be longer than zero"));
    }
    Ok(Duration::from_secs(total))
}

/// A duration as a protobuf duration, for a request. [`parse_duration`] never returns one too long
/// to convert; a longer one would be sent as the longest protobuf duration.
pub fn to_proto(duration: Duration) -> prost_types::Duration {
    prost_types::Duration::try_from(duration).unwrap_or(prost_types::Duration {
        seconds: i64::MAX,
        nanos: 0,
    })
}

/// A protobuf duration in the form [`parse_duration`] reads, to the second: `1h30m`, `2d`, `0s`.
pub fn format_duration(duration: &prost_types::Duration) -> String {
    let Ok(mut seconds) = u64::try_from(duration.seconds) else {
        // Negative: never sent by a sound server, shown as it is.
        return format!("{}s", duration.seconds);
    };
    if seconds == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (unit, length) in UNITS {
        if seconds >= length {
            out.push_str(&format!("{}{unit}", seconds / length));
            seconds %= length;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(text: &str) -> u64 {
        parse_duration(text)
            .unwrap_or_else(|err| panic!("{text}: {err}"))
            .as_secs()
    }

    #[test]
    fn the_documented_forms_parse() {
        assert_eq!(secs("30m"), 30 * 60);
        assert_eq!(secs("1h"), 3_600);
        assert_eq!(secs("1h30m"), 5_400);
        assert_eq!(secs("90s"), 90);
        assert_eq!(secs("2d"), 2 * 86_400);
        assert_eq!(secs("1d2h3m4s"), 86_400 + 2 * 3_600 + 3 * 60 + 4);
        assert_eq!(secs(" 45m "), 45 * 60);
    }

    #[test]
    fn mistakes_are_refused_naming_the_value() {
        for (text, why) in [
            ("", "it is empty"),
            ("30", "30 has no unit"),
            ("m", "expected a number at \"m\""),
            ("1x", "unknown unit 'x'"),
            ("1.5h", "unknown unit '.'"),
            ("30m1h", "largest to smallest"),
            ("1h1h", "largest to smallest"),
            ("1h 30m", "it has a space"),
            ("-1h", "expected a number"),
            ("0m", "longer than zero"),
            ("99999999999999999999s", "too large"),
            ("9999999999999999d", "too long"),
        ] {
            let err = parse_duration(text).expect_err(text);
            assert!(
                err.starts_with(&format!("{text:?} is not a duration: ")),
                "{err}"
            );
            assert!(err.contains(why), "{text:?}: {err}");
        }
    }

    #[test]
    fn formatting_reads_back() {
        for text in ["30m", "1h", "1h30m", "1m30s", "2d", "1d2h3m4s"] {
            let parsed = parse_duration(text).expect("parses");
            assert_eq!(format_duration(&to_proto(parsed)), text);
        }
        assert_eq!(format_duration(&prost_types::Duration::default()), "0s");
        assert_eq!(
            format_duration(&prost_types::Duration {
                seconds: 90,
                nanos: 0
            }),
            "1m30s"
        );
    }
}
