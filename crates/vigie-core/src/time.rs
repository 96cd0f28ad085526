//! Instants and durations in milliseconds, RFC 3339 parsing, and the site-local day.
//!
//! The core never reads a clock: every instant comes from an event or from the caller.

use std::fmt;

use chrono::{
    DateTime, Duration as ChronoDuration, LocalResult, NaiveDate, NaiveTime, TimeZone, Utc,
};
use chrono_tz::Tz;
use serde::{Deserialize, Deserializer, Serialize};

/// An instant, in milliseconds since the Unix epoch (UTC).
///
/// Event times are kept to the millisecond: finer digits in an RFC 3339 time are truncated.
/// Encoded (serde) as its number of milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

/// The largest distance from the epoch a decoded [`Timestamp`] may have: the core subtracts
/// instants from one another without saturating, and two instants within this bound always
/// have a difference that fits. Every instant the core keeps lies well within (events are
/// dated years 0 to 9999; [`Timestamp::MIN`] less a lateness is the lowest it computes).
const DECODED_TIMESTAMP_BOUND: i64 = i64::MAX / 2;

impl<'de> Deserialize<'de> for Timestamp {
    /// Refuses an instant beyond [`DECODED_TIMESTAMP_BOUND`]: decoded state (a snapshot) must
    /// not make the arithmetic on instants overflow.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Timestamp, D::Error> {
        let millis = i64::deserialize(deserializer)?;
        if millis.unsigned_abs() > DECODED_TIMESTAMP_BOUND.unsigned_abs() {
            return Err(serde::de::Error::custom(format!(
                "instant {millis} ms is too far from the epoch"
            )));
        }
        Ok(Timestamp(millis))
    }
}

/// A span of time in milliseconds. Negative spans never leave the core. Encoded (serde) as its
/// number of milliseconds.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Millis(pub i64);

impl Millis {
    /// Zero milliseconds.
    pub const ZERO: Millis = Millis(0);

    /// From a [`std::time::Duration`], saturating at `i64::MAX` milliseconds.
    pub fn from_std(duration: std::time::Duration) -> Millis {
        Millis(i64::try_from(duration.as_millis()).unwrap_or(i64::MAX))
    }

    /// The span in seconds, as reported in views.
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1000.0
    }

    /// From whole seconds.
    pub const fn from_secs(secs: i64) -> Millis {
        Millis(secs * 1000)
    }

    /// From whole minutes.
    pub const fn from_mins(mins: i64) -> Millis {
        Millis(mins * 60_000)
    }
}

impl std::ops::Sub for Timestamp {
    type Output = Millis;
    fn sub(self, rhs: Timestamp) -> Millis {
        Millis(self.0 - rhs.0)
    }
}

impl std::ops::Add<Millis> for Timestamp {
    type Output = Timestamp;
    fn add(self, rhs: Millis) -> Timestamp {
        Timestamp(self.0.saturating_add(rhs.0))
    }
}

impl std::ops::Sub<Millis> for Timestamp {
    type Output = Timestamp;
    fn sub(self, rhs: Millis) -> Timestamp {
        Timestamp(self.0.saturating_sub(rhs.0))
    }
}

impl std::ops::Add for Millis {
    type Output = Millis;
    fn add(self, rhs: Millis) -> Millis {
        Millis(self.0 + rhs.0)
    }
}

impl std::ops::AddAssign for Millis {
    fn add_assign(&mut self, rhs: Millis) {
        self.0 += rhs.0;
    }
}

impl Timestamp {
    /// The smallest representable instant; a watermark that has seen nothing.
    pub const MIN: Timestamp = Timestamp(i64::MIN / 4);

    /// Parses an RFC 3339 time that carries an explicit offset (`Z` or `+hh:mm`).
    pub fn parse_rfc3339(text: &str) -> Option<Timestamp> {
        let parsed = DateTime::parse_from_rfc3339(text).ok()?;
        Some(Timestamp(parsed.timestamp_millis()))
    }

    /// The instant as a UTC date-time.
    pub fn to_utc(self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.0).unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    /// RFC 3339 in the given time zone, to the millisecond (`2026-03-29T10:15:00.000+02:00`).
    pub fn to_rfc3339_in(self, zone: Tz) -> String {
        self.to_utc()
            .with_timezone(&zone)
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    }

    /// The later of two instants.
    pub fn max(self, other: Timestamp) -> Timestamp {
        if other > self { other } else { self }
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            &self
                .to_utc()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        )
    }
}

/// Where a site's day begins and ends, in its own time zone.
///
/// The day starts at `day_start` local time (midnight unless a 24/7 centre configures
/// otherwise). On a daylight-saving change the day is 23 or 25 hours long; when `day_start`
/// falls in the skipped hour, the day starts at the first instant after the gap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DayCalendar {
    zone: Tz,
    day_start: NaiveTime,
}

/// One site-local day: `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Day {
    /// The local calendar date the day is named after.
    pub date: NaiveDate,
    /// First instant of the day.
    pub start: Timestamp,
    /// First instant of the next day.
    pub end: Timestamp,
}

impl Day {
    /// Whether `time` falls in this day.
    pub fn contains(&self, time: Timestamp) -> bool {
        self.start <= time && time < self.end
    }
}

impl DayCalendar {
    /// A calendar for a time zone and a local day start.
    pub fn new(zone: Tz, day_start: NaiveTime) -> DayCalendar {
        DayCalendar { zone, day_start }
    }

    /// The site's time zone.
    pub fn zone(&self) -> Tz {
        self.zone
    }

    /// The day that contains `time`.
    pub fn day_of(&self, time: Timestamp) -> Day {
        let local = time.to_utc().with_timezone(&self.zone);
        let mut date = local.date_naive();
        // Before today's start, the instant still belongs to yesterday's day.
        if self.start_of(date) > time {
            date = date.pred_opt().unwrap_or(date);
        }
        let start = self.start_of(date);
        let next = date.succ_opt().unwrap_or(date);
        Day {
            date,
            start,
            end: self.start_of(next),
        }
    }

    /// The first instant of the day named `date`.
    pub fn start_of(&self, date: NaiveDate) -> Timestamp {
        let naive = date.and_time(self.day_start);
        let local = match self.zone.from_local_datetime(&naive) {
            LocalResult::Single(at) => at,
            // Clocks went back: the day starts at the first occurrence.
            LocalResult::Ambiguous(first, _) => first,
            // Clocks went forward over the start: the day starts when the gap ends.
            LocalResult::None => {
                let mut probe = naive;
                loop {
                    probe += ChronoDuration::minutes(1);
                    if let Some(at) = self.zone.from_local_datetime(&probe).earliest() {
                        break at;
                    }
                }
            }
        };
        Timestamp(local.timestamp_millis())
    }
}

/// A [`DayCalendar`] that remembers the last day it computed: successive instants usually fall
/// in the same day, and time-zone arithmetic is the costly part.
#[derive(Clone, Copy, Debug)]
pub struct DayCache {
    calendar: DayCalendar,
    day: Option<Day>,
}

impl DayCache {
    /// A cache over `calendar`.
    pub fn new(calendar: DayCalendar) -> DayCache {
        DayCache {
            calendar,
            day: None,
        }
    }

    /// The day that contains `time`.
    pub fn day_of(&mut self, time: Timestamp) -> Day {
        match self.day {
            Some(day) if day.contains(time) => day,
            _ => {
                let day = self.calendar.day_of(time);
                self.day = Some(day);
                day
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(text: &str) -> Timestamp {
        Timestamp::parse_rfc3339(text).unwrap()
    }

    #[test]
    fn parses_offsets_and_truncates_to_millis() {
        assert_eq!(ts("1970-01-01T00:00:01.2345Z"), Timestamp(1234));
        assert_eq!(ts("1970-01-01T01:00:00+01:00"), Timestamp(0));
        assert!(
            Timestamp::parse_rfc3339("1970-01-01T00:00:00").is_none(),
            "offset required"
        );
        assert!(Timestamp::parse_rfc3339("yesterday").is_none());
    }

    #[test]
    fn paris_days_have_23_and_25_hours_on_dst_changes() {
        let cal = DayCalendar::new(chrono_tz::Europe::Paris, NaiveTime::MIN);
        let spring = cal.day_of(ts("2026-03-29T12:00:00+02:00"));
        assert_eq!(spring.start, ts("2026-03-29T00:00:00+01:00"));
        assert_eq!(spring.end - spring.start, Millis::from_mins(23 * 60));
        let autumn = cal.day_of(ts("2026-10-25T12:00:00+01:00"));
        assert_eq!(autumn.end - autumn.start, Millis::from_mins(25 * 60));
    }

    #[test]
    fn day_start_other_than_midnight_assigns_early_hours_to_yesterday() {
        let cal = DayCalendar::new(
            chrono_tz::Europe::Paris,
            NaiveTime::from_hms_opt(6, 0, 0).unwrap(),
        );
        let day = cal.day_of(ts("2026-06-10T05:59:59+02:00"));
        assert_eq!(day.date, NaiveDate::from_ymd_opt(2026, 6, 9).unwrap());
        assert_eq!(day.start, ts("2026-06-09T06:00:00+02:00"));
        assert!(day.contains(ts("2026-06-10T05:59:59.999+02:00")));
        assert!(!day.contains(ts("2026-06-10T06:00:00+02:00")));
    }

    #[test]
    fn day_start_inside_the_spring_gap_moves_to_the_end_of_the_gap() {
        let cal = DayCalendar::new(
            chrono_tz::Europe::Paris,
            NaiveTime::from_hms_opt(2, 30, 0).unwrap(),
        );
        let day = cal.day_of(ts("2026-03-29T12:00:00+02:00"));
        assert_eq!(day.start, ts("2026-03-29T03:00:00+02:00"));
    }
}
