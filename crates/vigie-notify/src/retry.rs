//! When to try again: exponential backoff with jitter, and the receiver's `Retry-After`.
//!
//! Pure: time and randomness come in as arguments.

use std::time::{Duration, SystemTime};

use chrono::DateTime;

/// The wait before retry number `retry` (1 for the first retry): `base * 2^(retry-1)`, capped
/// at `max`, of which a random half is kept ("equal jitter": `unit` in `[0, 1)` picks where in
/// `[d/2, d]`). Spreading the retries keeps a recovering receiver from getting them all at
/// once; keeping half keeps the growth.
pub fn backoff(retry: u32, base: Duration, max: Duration, unit: f64) -> Duration {
    let exponent = retry.saturating_sub(1).min(31);
    let full = base.saturating_mul(1u32 << exponent).min(max);
    let unit = if unit.is_finite() {
        unit.clamp(0.0, 1.0)
    } else {
        0.0
    };
    full / 2 + (full / 2).mul_f64(unit)
}

/// A `Retry-After` header: seconds (`120`) or an HTTP date, as a wait from `now` (zero for a
/// date in the past); `None` when unreadable.
pub fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    if let Ok(seconds) = value.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds));
    }
    let date = DateTime::parse_from_rfc2822(value).ok()?;
    let date = SystemTime::from(date);
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

/// A small random generator for jitter (SplitMix64): no need for cryptographic quality, and
/// no global state.
#[derive(Clone, Debug)]
pub(crate) struct Jitter(u64);

impl Jitter {
    /// Seeded from the clock and `salt`, so routes and processes differ.
    pub(crate) fn new(salt: u64) -> Jitter {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Jitter(nanos ^ salt.rotate_left(32))
    }

    /// A number in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn backoff_doubles_up_to_the_cap_and_keeps_half() {
        let max = Duration::from_secs(60);
        assert_eq!(backoff(1, S, max, 0.0), Duration::from_millis(500));
        assert_eq!(backoff(1, S, max, 1.0), S);
        assert_eq!(backoff(2, S, max, 1.0), 2 * S);
        assert_eq!(backoff(4, S, max, 0.0), 4 * S);
        assert_eq!(backoff(10, S, max, 1.0), max);
        assert_eq!(backoff(10, S, max, 0.0), max / 2);
        assert_eq!(backoff(u32::MAX, S, max, 0.5), Duration::from_secs(45));
        assert_eq!(backoff(3, S, max, f64::NAN), 2 * S);
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        assert_eq!(retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(retry_after(" 1.5 ", now), Some(Duration::from_millis(1500)));
        // 2015-10-21T07:28:00Z is 1_445_412_480.
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("soon", now), None);
        assert_eq!(retry_after("-3", now), None);
    }

    #[test]
    fn jitter_stays_in_the_unit_interval() {
        let mut jitter = Jitter::new(7);
        for _ in 0..10_000 {
            let u = jitter.unit();
            assert!((0.0..1.0).contains(&u));
        }
    }
}
