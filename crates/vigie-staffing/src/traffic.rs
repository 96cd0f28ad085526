//! Offered traffic: how many contacts arrive and how long each keeps an advisor busy.

use std::time::Duration;

use serde::Serialize;

use crate::StaffingError;

/// The largest offered load accepted, in Erlangs.
///
/// Far above the "several thousand Erlangs" of the largest single queues, and low enough that
/// every search and every Erlang A series stays within a bounded, documented cost.
pub const MAX_LOAD_ERLANGS: f64 = 100_000.0;

/// Offered traffic of one queue during one interval: Poisson arrivals at a constant rate, each
/// contact holding an advisor for an exponentially distributed handle time of the given mean.
///
/// Validated on construction, so every function taking a `Traffic` can rely on a finite,
/// non-negative rate and a positive handle time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Traffic {
    arrivals_per_second: f64,
    aht_seconds: f64,
    load_erlangs: f64,
}

impl Traffic {
    /// Traffic from an arrival rate (contacts per second) and a mean handle time.
    ///
    /// # Errors
    /// [`StaffingError`] when the rate is negative or not finite, the handle time is zero, or
    /// the load exceeds [`MAX_LOAD_ERLANGS`].
    pub fn new(arrivals_per_second: f64, aht: Duration) -> Result<Self, StaffingError> {
        if !arrivals_per_second.is_finite() || arrivals_per_second < 0.0 {
            return Err(StaffingError::InvalidNumber {
                name: "arrivals_per_second",
                expected: "a finite number >= 0",
                value: arrivals_per_second,
            });
        }
        let aht_seconds = positive_seconds("aht", aht)?;
        Self::checked(
            arrivals_per_second,
            aht_seconds,
            arrivals_per_second * aht_seconds,
        )
    }

    /// Traffic from a volume of contacts offered over an interval (the way forecasts and
    /// the trade state it: "100 calls per 30 minutes") and a mean handle time.
    ///
    /// # Errors
    /// [`StaffingError`] when the volume is negative or not finite, the interval or the
    /// handle time is zero, or the load exceeds [`MAX_LOAD_ERLANGS`].
    pub fn from_volume(
        volume: f64,
        interval: Duration,
        aht: Duration,
    ) -> Result<Self, StaffingError> {
        if !volume.is_finite() || volume < 0.0 {
            return Err(StaffingError::InvalidNumber {
                name: "volume",
                expected: "a finite number >= 0",
                value: volume,
            });
        }
        let interval_seconds = positive_seconds("interval", interval)?;
        let aht_seconds = positive_seconds("aht", aht)?;
        // Computed as volume * AHT / interval rather than rate * AHT so that round textbook
        // inputs give round loads (100 * 180 / 1800 is exactly 10): targets such as a maximum
        // occupancy are then compared with the load the user computed by hand.
        let load = volume * aht_seconds / interval_seconds;
        Self::checked(volume / interval_seconds, aht_seconds, load)
    }

    fn checked(
        arrivals_per_second: f64,
        aht_seconds: f64,
        load: f64,
    ) -> Result<Self, StaffingError> {
        if load.is_nan() || load > MAX_LOAD_ERLANGS {
            return Err(StaffingError::InvalidNumber {
                name: "load_erlangs",
                expected: "at most 100000 Erlangs",
                value: load,
            });
        }
        Ok(Self {
            arrivals_per_second,
            aht_seconds,
            load_erlangs: load,
        })
    }

    /// Mean arrivals per second (lambda).
    pub fn arrivals_per_second(&self) -> f64 {
        self.arrivals_per_second
    }

    /// Mean handle time in seconds (1 / mu).
    pub fn aht_seconds(&self) -> f64 {
        self.aht_seconds
    }

    /// Offered load in Erlangs, `a = lambda * AHT`: the mean number of advisors the traffic
    /// would keep busy if nobody ever waited or abandoned.
    pub fn load_erlangs(&self) -> f64 {
        self.load_erlangs
    }
}

/// A duration in seconds, rejecting zero (a zero handle time or interval makes every
/// formula degenerate).
pub(crate) fn positive_seconds(name: &'static str, value: Duration) -> Result<f64, StaffingError> {
    if value.is_zero() {
        return Err(StaffingError::InvalidDuration {
            name,
            expected: "longer than zero",
            value,
        });
    }
    Ok(value.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn textbook_volume_gives_a_round_load() {
        let t = Traffic::from_volume(100.0, Duration::from_secs(1800), Duration::from_secs(180))
            .expect("valid");
        assert_eq!(t.load_erlangs(), 10.0);
        assert!((t.arrivals_per_second() - 100.0 / 1800.0).abs() < 1e-18);
    }

    #[test]
    fn rejects_bad_inputs() {
        let s = Duration::from_secs(1);
        assert!(Traffic::new(-1.0, s).is_err());
        assert!(Traffic::new(f64::NAN, s).is_err());
        assert!(Traffic::new(f64::INFINITY, s).is_err());
        assert!(Traffic::new(1.0, Duration::ZERO).is_err());
        assert!(Traffic::from_volume(1.0, Duration::ZERO, s).is_err());
        assert!(Traffic::from_volume(1e9, s, s).is_err());
        assert!(Traffic::new(0.0, s).is_ok());
    }
}
