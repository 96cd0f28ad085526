//! Erlang B (M/M/N/N, blocked contacts lost) and Erlang C (M/M/N, infinite patience).
//!
//! Both are computed from the Erlang B recurrence (Jagerman 1974; Gans, Koole & Mandelbaum
//! 2003, in their review of the Erlang C model):
//!
//! ```text
//! B(0, a) = 1,    B(k, a) = a B(k-1, a) / (k + a B(k-1, a))
//! ```
//!
//! Every step is a ratio of positive numbers of similar size, so there is no factorial and no
//! power to overflow: N = 5,000 advisors at 4,900 Erlangs costs 5,000 multiply-adds and loses
//! at most about N ulps. When `a` is much smaller than `N` the value underflows gracefully
//! towards 0, which is the right answer to double precision.
//!
//! Erlang C follows from B without another sum (valid for `a < N`):
//!
//! ```text
//! C(N, a) = N B / (N - a (1 - B))                       probability of waiting
//! P(W <= t) = 1 - C exp(-(N - a) t / AHT)               service level at threshold t
//! ASA = E[W] = C AHT / (N - a)                          average speed of answer
//! occupancy = a / N
//! ```
//!
//! With `a >= N` the queue has no steady state (it grows without bound): the probability of
//! waiting is 1, the service level 0, the ASA unbounded (`None`) and the occupancy 1.

use std::time::Duration;

use crate::{StaffingError, Traffic};

/// Erlang B: the probability that a contact finds all `servers` busy in a loss system with the
/// given offered load in Erlangs (and is lost).
///
/// # Errors
/// [`StaffingError::InvalidNumber`] when the load is negative or not finite.
pub fn erlang_b(servers: u32, load_erlangs: f64) -> Result<f64, StaffingError> {
    check_load(load_erlangs)?;
    let mut seq = ErlangBSequence::new(load_erlangs);
    Ok(seq.advance_to(servers))
}

/// Erlang C: the probability that a contact has to wait in an M/M/N queue with `servers`
/// advisors and the given offered load in Erlangs; 1 when the load is at least `servers`.
///
/// # Errors
/// [`StaffingError::InvalidNumber`] when the load is negative or not finite.
pub fn erlang_c(servers: u32, load_erlangs: f64) -> Result<f64, StaffingError> {
    let b = erlang_b(servers, load_erlangs)?;
    Ok(erlang_c_from_b(servers, load_erlangs, b))
}

fn check_load(load: f64) -> Result<(), StaffingError> {
    if !load.is_finite() || load < 0.0 {
        return Err(StaffingError::InvalidNumber {
            name: "load_erlangs",
            expected: "a finite number >= 0",
            value: load,
        });
    }
    Ok(())
}

pub(crate) fn erlang_c_from_b(servers: u32, load: f64, b: f64) -> f64 {
    let n = f64::from(servers);
    if load >= n {
        return 1.0;
    }
    // N - a(1 - B) >= N - a > 0, and the ratio is at most 1 because B <= 1.
    (n * b / (n - load * (1.0 - b))).min(1.0)
}

/// The Erlang B values B(0, a), B(1, a), ... for one load, one O(1) step at a time.
///
/// Searches over the number of advisors walk N upwards; keeping the recurrence state makes
/// each extra advisor cost one step instead of N.
#[derive(Debug, Clone)]
pub(crate) struct ErlangBSequence {
    load: f64,
    servers: u32,
    value: f64,
}

impl ErlangBSequence {
    /// The sequence at N = 0, where B = 1. `load` must be finite and non-negative.
    pub(crate) fn new(load: f64) -> Self {
        Self {
            load,
            servers: 0,
            value: 1.0,
        }
    }

    /// Steps the recurrence up to `servers` (never down) and returns B(servers, a).
    pub(crate) fn advance_to(&mut self, servers: u32) -> f64 {
        while self.servers < servers {
            self.servers += 1;
            let ab = self.load * self.value;
            self.value = ab / (f64::from(self.servers) + ab);
        }
        self.value
    }

    #[cfg(test)]
    pub(crate) fn servers(&self) -> u32 {
        self.servers
    }
}

/// Performance of an M/M/N queue (Erlang C) with a given number of advisors.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ErlangC {
    servers: u32,
    traffic: Traffic,
    blocking: f64,
    wait_probability: f64,
}

impl ErlangC {
    /// The queue with `servers` advisors facing `traffic`.
    pub fn new(servers: u32, traffic: Traffic) -> Self {
        let b = ErlangBSequence::new(traffic.load_erlangs()).advance_to(servers);
        Self::from_blocking(servers, traffic, b)
    }

    /// Built from an Erlang B value already computed for (`servers`, load): the searches
    /// carry the recurrence along instead of restarting it.
    pub(crate) fn from_blocking(servers: u32, traffic: Traffic, blocking: f64) -> Self {
        Self {
            servers,
            traffic,
            blocking,
            wait_probability: erlang_c_from_b(servers, traffic.load_erlangs(), blocking),
        }
    }

    /// Number of advisors.
    pub fn servers(&self) -> u32 {
        self.servers
    }

    /// Erlang B for the same servers and load (the loss probability if nobody could queue).
    pub fn erlang_b(&self) -> f64 {
        self.blocking
    }

    /// Whether the queue has a steady state (load strictly below the number of advisors).
    pub fn is_stable(&self) -> bool {
        self.traffic.load_erlangs() < f64::from(self.servers)
    }

    /// Probability that a contact waits at all, `C(N, a)`; 1 when unstable.
    pub fn wait_probability(&self) -> f64 {
        self.wait_probability
    }

    /// Probability that a contact waits longer than `t`: `C exp(-(N - a) t / AHT)`.
    pub fn wait_exceeds(&self, t: Duration) -> f64 {
        if !self.is_stable() {
            return 1.0;
        }
        let spare = f64::from(self.servers) - self.traffic.load_erlangs();
        self.wait_probability * (-spare * t.as_secs_f64() / self.traffic.aht_seconds()).exp()
    }

    /// Service level: the fraction of contacts answered within `threshold` (a wait of at most
    /// the threshold counts as within it). Nobody abandons in Erlang C, so the "offered",
    /// "answered" and "positive" variants of DOMAIN.md coincide.
    pub fn service_level(&self, threshold: Duration) -> f64 {
        1.0 - self.wait_exceeds(threshold)
    }

    /// Average speed of answer (mean wait, every contact being answered) in seconds; `None`
    /// when the queue is unstable and the mean wait is unbounded.
    pub fn asa_seconds(&self) -> Option<f64> {
        if !self.is_stable() {
            return None;
        }
        let spare = f64::from(self.servers) - self.traffic.load_erlangs();
        Some(self.wait_probability * self.traffic.aht_seconds() / spare)
    }

    /// Occupancy: the fraction of advisor time spent handling contacts, `a / N`, at most 1.
    /// Zero advisors facing zero load are reported idle (0) rather than 0/0.
    pub fn occupancy(&self) -> f64 {
        if self.servers == 0 {
            return if self.traffic.load_erlangs() > 0.0 {
                1.0
            } else {
                0.0
            };
        }
        (self.traffic.load_erlangs() / f64::from(self.servers)).min(1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_values_by_hand() {
        // B(1, a) = a / (1 + a); C(1, a) = a for a < 1 (M/M/1).
        assert!((erlang_b(1, 1.0).expect("valid") - 0.5).abs() < 1e-15);
        assert!((erlang_c(1, 0.5).expect("valid") - 0.5).abs() < 1e-15);
        // B(2, 1) = (1/2) / (1 + 1 + 1/2) = 0.2.
        assert!((erlang_b(2, 1.0).expect("valid") - 0.2).abs() < 1e-15);
    }

    #[test]
    fn degenerate_loads() {
        assert_eq!(erlang_b(0, 3.0).expect("valid"), 1.0);
        assert_eq!(erlang_b(5, 0.0).expect("valid"), 0.0);
        assert_eq!(erlang_c(5, 0.0).expect("valid"), 0.0);
        assert_eq!(erlang_c(5, 5.0).expect("valid"), 1.0);
        assert_eq!(erlang_c(5, 7.5).expect("valid"), 1.0);
        assert!(erlang_b(5, -1.0).is_err());
        assert!(erlang_c(5, f64::NAN).is_err());
    }

    #[test]
    fn unstable_queue_reports_unbounded_wait() {
        let t = Traffic::from_volume(100.0, Duration::from_secs(1800), Duration::from_secs(180))
            .expect("valid");
        let q = ErlangC::new(10, t);
        assert!(!q.is_stable());
        assert_eq!(q.wait_probability(), 1.0);
        assert_eq!(q.service_level(Duration::from_secs(20)), 0.0);
        assert_eq!(q.asa_seconds(), None);
        assert_eq!(q.occupancy(), 1.0);
    }

    #[test]
    fn sequence_matches_fresh_computation() {
        let mut seq = ErlangBSequence::new(37.5);
        for n in [0, 1, 10, 38, 39, 80] {
            let stepped = seq.advance_to(n);
            assert_eq!(seq.servers(), n);
            assert_eq!(stepped, erlang_b(n, 37.5).expect("valid"));
        }
    }
}
