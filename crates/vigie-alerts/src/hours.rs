//! Active hours of a rule, in the site's local time.

use chrono::{Datelike, Timelike, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use vigie_core::Timestamp;

/// A day of the week, as rules name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DayOfWeek {
    /// Monday.
    Mon,
    /// Tuesday.
    Tue,
    /// Wednesday.
    Wed,
    /// Thursday.
    Thu,
    /// Friday.
    Fri,
    /// Saturday.
    Sat,
    /// Sunday.
    Sun,
}

impl DayOfWeek {
    fn bit(self) -> u8 {
        1 << (self as u8)
    }

    fn of(weekday: Weekday) -> DayOfWeek {
        match weekday {
            Weekday::Mon => DayOfWeek::Mon,
            Weekday::Tue => DayOfWeek::Tue,
            Weekday::Wed => DayOfWeek::Wed,
            Weekday::Thu => DayOfWeek::Thu,
            Weekday::Fri => DayOfWeek::Fri,
            Weekday::Sat => DayOfWeek::Sat,
            Weekday::Sun => DayOfWeek::Sun,
        }
    }
}

const SECONDS_PER_DAY: u32 = 24 * 3600;
const EVERY_DAY: u8 = 0x7f;

/// When a rule is evaluated: `[start, end)` local time on the given days (a range that ends
/// before it starts spans midnight and belongs to the day it starts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ActiveHours {
    start: u32,
    end: u32,
    days: u8,
}

/// The local time of the site at one instant, computed once per evaluation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LocalClock {
    second_of_day: u32,
    today: DayOfWeek,
    yesterday: DayOfWeek,
}

impl LocalClock {
    pub fn new(now: Timestamp, zone: Tz) -> LocalClock {
        let local = now.to_utc().with_timezone(&zone);
        LocalClock {
            second_of_day: local.num_seconds_from_midnight(),
            today: DayOfWeek::of(local.weekday()),
            yesterday: DayOfWeek::of(local.weekday().pred()),
        }
    }
}

fn parse_time(text: &str) -> Option<u32> {
    let (hours, minutes) = text.trim().split_once(':')?;
    if hours.len() != 2 || minutes.len() != 2 {
        return None;
    }
    let hours: u32 = hours.parse().ok()?;
    let minutes: u32 = minutes.parse().ok()?;
    match (hours, minutes) {
        (24, 0) => Some(SECONDS_PER_DAY),
        (0..=23, 0..=59) => Some(hours * 3600 + minutes * 60),
        _ => None,
    }
}

impl ActiveHours {
    /// Parses `"HH:MM-HH:MM"` (all day when absent) and the days (every day when absent).
    pub fn parse(hours: Option<&str>, days: Option<&[DayOfWeek]>) -> Result<ActiveHours, String> {
        let (start, end) = match hours {
            None => (0, SECONDS_PER_DAY),
            Some(text) => {
                let bad =
                    || format!("{text:?} is not a range of local times such as \"08:00-20:00\"");
                let (from, to) = text.split_once('-').ok_or_else(bad)?;
                let start = parse_time(from)
                    .filter(|s| *s < SECONDS_PER_DAY)
                    .ok_or_else(bad)?;
                let end = parse_time(to).ok_or_else(bad)?;
                if start == end {
                    return Err(format!(
                        "{text:?} is empty: leave active_hours out to evaluate all day"
                    ));
                }
                (start, end)
            }
        };
        let days = match days {
            None => EVERY_DAY,
            Some(days) => days.iter().fold(0, |mask, day| mask | day.bit()),
        };
        Ok(ActiveHours { start, end, days })
    }

    /// Whether the rule is evaluated at this local time.
    pub fn contains(&self, clock: LocalClock) -> bool {
        let on = |day: DayOfWeek| self.days & day.bit() != 0;
        let t = clock.second_of_day;
        if self.start < self.end {
            on(clock.today) && self.start <= t && t < self.end
        } else {
            (t >= self.start && on(clock.today)) || (t < self.end && on(clock.yesterday))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> LocalClock {
        LocalClock::new(
            Timestamp::parse_rfc3339(text).unwrap(),
            chrono_tz::Europe::Paris,
        )
    }

    #[test]
    fn hours_follow_the_site_time_zone_and_days() {
        let weekdays = [
            DayOfWeek::Mon,
            DayOfWeek::Tue,
            DayOfWeek::Wed,
            DayOfWeek::Thu,
            DayOfWeek::Fri,
        ];
        let hours = ActiveHours::parse(Some("08:00-20:00"), Some(&weekdays)).unwrap();
        // Monday 2 March 2026: Paris is UTC+1.
        assert!(!hours.contains(at("2026-03-02T06:59:59Z")));
        assert!(hours.contains(at("2026-03-02T07:00:00Z")));
        assert!(hours.contains(at("2026-03-02T18:59:59Z")));
        assert!(!hours.contains(at("2026-03-02T19:00:00Z")));
        // Saturday.
        assert!(!hours.contains(at("2026-03-07T10:00:00Z")));
        // After the spring change (29 March), 08:00 in Paris is 06:00 UTC.
        assert!(hours.contains(at("2026-03-30T06:00:00Z")));
        assert!(!hours.contains(at("2026-03-30T05:59:59Z")));
    }

    #[test]
    fn a_range_over_midnight_belongs_to_the_day_it_starts() {
        let hours = ActiveHours::parse(Some("22:00-06:00"), Some(&[DayOfWeek::Fri])).unwrap();
        assert!(
            hours.contains(at("2026-03-06T23:30:00+01:00")),
            "Friday night"
        );
        assert!(
            hours.contains(at("2026-03-07T05:59:00+01:00")),
            "Saturday early"
        );
        assert!(!hours.contains(at("2026-03-07T06:00:00+01:00")));
        assert!(
            !hours.contains(at("2026-03-06T05:00:00+01:00")),
            "Thursday's night"
        );
        let to_midnight = ActiveHours::parse(Some("18:00-24:00"), None).unwrap();
        assert!(to_midnight.contains(at("2026-03-06T23:59:59+01:00")));
        assert!(!to_midnight.contains(at("2026-03-07T00:00:00+01:00")));
    }

    #[test]
    fn bad_ranges_are_refused() {
        for bad in [
            "8-20",
            "08:00",
            "08:00-25:00",
            "24:00-08:00",
            "08:60-09:00",
            "09:00-09:00",
        ] {
            assert!(ActiveHours::parse(Some(bad), None).is_err(), "{bad}");
        }
    }
}
