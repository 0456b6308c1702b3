//! Whether a time lies inside a flow's weekly window.
//!
//! The window is read on the wall clock of its own time zone: "Monday 08:00 in Europe/Berlin" is
//! 07:00 UTC in winter and 06:00 UTC in summer. Converting the instant to the zone with jiff and
//! comparing civil times gets daylight-saving changes right without any arithmetic of our own.

use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::flow::Timeframe;

/// A timeframe with its time zone looked up once, when the flow is compiled.
#[derive(Debug, Clone)]
pub(crate) struct CompiledTimeframe {
    frame: Timeframe,
    /// `None` when the zone is unknown: such a window is never open (fail closed).
    zone: Option<TimeZone>,
}

/// Where a time falls relative to a window, with what a message needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Window {
    Open,
    Closed { local: String },
    UnknownZone,
}

impl CompiledTimeframe {
    pub(crate) fn new(frame: &Timeframe) -> CompiledTimeframe {
        CompiledTimeframe {
            frame: frame.clone(),
            zone: TimeZone::get(&frame.time_zone).ok(),
        }
    }

    /// Whether `at` is inside the window: on a listed day, `from` inclusive, `to` exclusive.
    pub(crate) fn check(&self, at: Timestamp) -> Window {
        let Some(zone) = &self.zone else {
            return Window::UnknownZone;
        };
        let local = zone.to_datetime(at);
        let day_listed = self
            .frame
            .days
            .iter()
            .any(|day| day.to_jiff() == local.weekday());
        let time = local.time();
        if day_listed && self.frame.from <= time && time < self.frame.to {
            Window::Open
        } else {
            Window::Closed {
                local: local.strftime("%a %H:%M").to_string().to_lowercase(),
            }
        }
    }

    /// The window in words: `mon, tue 08:00-19:00 Europe/Berlin`.
    pub(crate) fn describe(&self) -> String {
        let days: Vec<&str> = self.frame.days.iter().map(|day| day.as_str()).collect();
        format!(
            "{} {}-{} {}",
            days.join(", "),
            self.frame.from.strftime("%H:%M"),
            self.frame.to.strftime("%H:%M"),
            self.frame.time_zone
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::Weekday;

    fn berlin(days: &[Weekday]) -> CompiledTimeframe {
        CompiledTimeframe::new(&Timeframe {
            days: days.to_vec(),
            from: jiff::civil::time(8, 0, 0, 0),
            to: jiff::civil::time(19, 0, 0, 0),
            time_zone: "Europe/Berlin".to_owned(),
        })
    }

    fn open(frame: &CompiledTimeframe, utc: &str) -> bool {
        let at: Timestamp = utc.parse().expect("test timestamps are valid");
        frame.check(at) == Window::Open
    }

    // 2026-03-29 (Sunday) is when Berlin moves from CET (+01) to CEST (+02).
    #[test]
    fn march_transition_sunday() {
        let frame = berlin(&[Weekday::Sun]);
        // 08:00 CEST is 06:00 UTC on the transition day.
        assert!(!open(&frame, "2026-03-29T05:59:00Z"));
        assert!(open(&frame, "2026-03-29T06:00:00Z"));
        // 19:00 CEST is 17:00 UTC; `to` is exclusive.
        assert!(open(&frame, "2026-03-29T16:59:59Z"));
        assert!(!open(&frame, "2026-03-29T17:00:00Z"));
        // The Sunday before is still winter time: 08:00 CET is 07:00 UTC.
        assert!(!open(&frame, "2026-03-22T06:30:00Z"));
        assert!(open(&frame, "2026-03-22T07:00:00Z"));
    }

    #[test]
    fn march_transition_monday() {
        let frame = berlin(&[
            Weekday::Mon,
            Weekday::Tue,
            Weekday::Wed,
            Weekday::Thu,
            Weekday::Fri,
        ]);
        assert!(!open(&frame, "2026-03-30T05:59:00Z"));
        assert!(open(&frame, "2026-03-30T06:00:00Z"));
        assert!(open(&frame, "2026-03-30T16:59:00Z"));
        assert!(!open(&frame, "2026-03-30T17:00:00Z"));
        // Sunday is not listed, whatever the hour.
        assert!(!open(&frame, "2026-03-29T10:00:00Z"));
    }

    // 2026-10-25 (Sunday) is when Berlin moves back from CEST (+02) to CET (+01).
    #[test]
    fn october_transition_sunday() {
        let frame = berlin(&[Weekday::Sun]);
        assert!(!open(&frame, "2026-10-25T06:59:00Z"));
        assert!(open(&frame, "2026-10-25T07:00:00Z"));
        assert!(open(&frame, "2026-10-25T17:59:00Z"));
        assert!(!open(&frame, "2026-10-25T18:00:00Z"));
        // The Sunday before is still summer time.
        assert!(open(&frame, "2026-10-18T06:00:00Z"));
        assert!(!open(&frame, "2026-10-18T17:00:00Z"));
    }

    #[test]
    fn october_transition_monday() {
        let frame = berlin(&[Weekday::Mon]);
        assert!(!open(&frame, "2026-10-26T06:59:59Z"));
        assert!(open(&frame, "2026-10-26T07:00:00Z"));
        assert!(open(&frame, "2026-10-26T17:59:59Z"));
        assert!(!open(&frame, "2026-10-26T18:00:00Z"));
    }

    #[test]
    fn the_day_is_the_local_day() {
        // Monday 00:30 in Berlin is still Sunday in UTC.
        let frame = CompiledTimeframe::new(&Timeframe {
            days: vec![Weekday::Mon],
            from: jiff::civil::time(0, 0, 0, 0),
            to: jiff::civil::time(1, 0, 0, 0),
            time_zone: "Europe/Berlin".to_owned(),
        });
        assert!(open(&frame, "2026-01-04T23:30:00Z"));
        assert!(!open(&frame, "2026-01-05T23:30:00Z"));
    }

    #[test]
    fn an_unknown_zone_is_never_open() {
        let frame = CompiledTimeframe::new(&Timeframe {
            days: Weekday::ALL.to_vec(),
            from: jiff::civil::time(0, 0, 0, 0),
            to: jiff::civil::time(23, 59, 0, 0),
            time_zone: "Mars/Olympus".to_owned(),
        });
        let at: Timestamp = "2026-01-05T12:00:00Z".parse().expect("valid");
        assert_eq!(frame.check(at), Window::UnknownZone);
    }

    #[test]
    fn closed_windows_say_the_local_time() {
        let frame = berlin(&[Weekday::Mon]);
        let at: Timestamp = "2026-03-29T10:00:00Z".parse().expect("valid");
        assert_eq!(
            frame.check(at),
            Window::Closed {
                local: "sun 12:00".to_owned()
            }
        );
        assert_eq!(frame.describe(), "mon 08:00-19:00 Europe/Berlin");
    }
}
