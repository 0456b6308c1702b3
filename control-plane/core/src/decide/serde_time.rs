//! Serde for `jiff::Timestamp` as an RFC 3339 string (`2026-03-30T06:00:00Z`), without turning on
//! jiff's `serde` feature, the same way the flow model handles civil times.

use serde::{Deserialize, Deserializer, Serializer};

pub(crate) fn serialize<S: Serializer>(
    at: &jiff::Timestamp,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_str(at)
}

pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<jiff::Timestamp, D::Error> {
    let raw = String::deserialize(deserializer)?;
    raw.parse::<jiff::Timestamp>()
        .map_err(|err| serde::de::Error::custom(format!("{raw:?} is not a timestamp: {err}")))
}
