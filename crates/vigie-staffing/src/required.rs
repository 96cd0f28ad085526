//! Required advisors: the smallest number of advisors on the phones that meets a target, the
//! scheduled headcount once shrinkage is added, and the table of N around the answer.
//!
//! A target is a service level (fraction answered within a threshold), an ASA, or both, plus
//! an optional maximum occupancy. The search walks N upwards from a proven lower bound,
//! carrying the Erlang B recurrence along (one O(1) step per advisor), and returns the first N
//! that meets every part of the target. Under Erlang C each part is monotone in N, so this is
//! also the largest of the per-part minima; under Erlang A the walk needs no monotonicity.
//!
//! Lower bounds used to start the walk:
//! - Erlang C: `N > a` (a steady state exists only above the load);
//! - Erlang A with a service-level target `s`: the fraction answered within the threshold is
//!   at most the fraction answered, at most `N / a` (advisors cannot carry more than `N`
//!   Erlangs), so `N >= s a`;
//! - a maximum occupancy `m` under Erlang C: `a / N <= m`, so `N >= a / m`. Under Erlang A
//!   the occupancy is the carried load `a (1 - P(Ab)) / N`, so the cap is checked as the walk
//!   goes (`a / m` advisors always satisfy it and bound the walk).

use std::time::Duration;

use serde::Serialize;

use crate::erlang::ErlangBSequence;
use crate::erlang_a::{MAX_PATIENCE_RATIO, MAX_SERVERS};
use crate::traffic::positive_seconds;
use crate::{ErlangA, ErlangC, StaffingError, Traffic};

/// Relative slack when comparing decimal inputs that went through binary floating point:
/// an occupancy of exactly 0.85 or a shrinkage giving exactly 20 advisors must not round
/// the wrong way because 0.85 and 0.7 have no exact binary form.
const DECIMAL_SLACK: f64 = 1e-9;

/// The queueing model used to turn advisors into performance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "model", rename_all = "snake_case")]
pub enum Model {
    /// M/M/N, callers never abandon.
    ErlangC,
    /// M/M/N+M, callers abandon after an exponential patience of the given mean.
    ErlangA {
        /// Mean patience of a waiting caller.
        #[serde(rename = "patience_seconds", serialize_with = "serialize_seconds")]
        patience: Duration,
    },
}

fn serialize_seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// What the staffing must achieve.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Target {
    threshold: Duration,
    service_level: Option<f64>,
    asa: Option<Duration>,
    max_occupancy: Option<f64>,
}

impl Target {
    /// A target. `threshold` is the service-level answer time (used for reporting even when
    /// `service_level` is `None`); `service_level` is the fraction to answer within it, in
    /// (0, 1); `asa` the longest acceptable average speed of answer; `max_occupancy` in (0, 1].
    ///
    /// # Errors
    /// [`StaffingError::NoTarget`] when both `service_level` and `asa` are `None`, and
    /// [`StaffingError`] naming the parameter when one is out of its range.
    pub fn new(
        threshold: Duration,
        service_level: Option<f64>,
        asa: Option<Duration>,
        max_occupancy: Option<f64>,
    ) -> Result<Self, StaffingError> {
        if service_level.is_none() && asa.is_none() {
            return Err(StaffingError::NoTarget);
        }
        if let Some(s) = service_level
            && !(s > 0.0 && s < 1.0)
        {
            return Err(StaffingError::InvalidNumber {
                name: "service_level",
                expected: "a fraction strictly between 0 and 1",
                value: s,
            });
        }
        if let Some(asa) = asa {
            positive_seconds("asa", asa)?;
        }
        if let Some(m) = max_occupancy
            && !(m > 0.0 && m <= 1.0)
        {
            return Err(StaffingError::InvalidNumber {
                name: "max_occupancy",
                expected: "a fraction greater than 0 and at most 1",
                value: m,
            });
        }
        Ok(Self {
            threshold,
            service_level,
            asa,
            max_occupancy,
        })
    }

    /// The service-level answer time.
    pub fn threshold(&self) -> Duration {
        self.threshold
    }

    /// The fraction to answer within the threshold, if targeted.
    pub fn service_level(&self) -> Option<f64> {
        self.service_level
    }

    /// The longest acceptable ASA, if targeted.
    pub fn asa(&self) -> Option<Duration> {
        self.asa
    }

    /// The highest acceptable occupancy, if capped.
    pub fn max_occupancy(&self) -> Option<f64> {
        self.max_occupancy
    }

    /// The parts of this target that `metrics` fails, in a fixed order.
    pub fn unmet(&self, metrics: &Metrics) -> Vec<Constraint> {
        let mut unmet = Vec::new();
        if let Some(s) = self.service_level
            && metrics.service_level < s
        {
            unmet.push(Constraint::ServiceLevel);
        }
        if let Some(asa) = self.asa {
            let ok = metrics.asa_seconds.is_some_and(|v| v <= asa.as_secs_f64());
            if !ok {
                unmet.push(Constraint::Asa);
            }
        }
        if let Some(m) = self.max_occupancy
            && metrics.occupancy > m * (1.0 + DECIMAL_SLACK)
        {
            unmet.push(Constraint::MaxOccupancy);
        }
        unmet
    }
}

/// One part of a [`Target`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Constraint {
    /// The service-level fraction within the threshold.
    ServiceLevel,
    /// The ASA ceiling.
    Asa,
    /// The occupancy ceiling.
    MaxOccupancy,
}

impl Constraint {
    /// Human name, as printed by the CLI.
    pub fn label(self) -> &'static str {
        match self {
            Constraint::ServiceLevel => "service level",
            Constraint::Asa => "ASA",
            Constraint::MaxOccupancy => "max occupancy",
        }
    }
}

/// Performance with a given number of advisors on the phones.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Metrics {
    /// Advisors on the phones.
    pub advisors: u32,
    /// Fraction of offered contacts answered within the threshold (DOMAIN.md "offered"
    /// variant; equal to the other variants under Erlang C).
    pub service_level: f64,
    /// Mean wait of answered contacts in seconds; `None` when unbounded (Erlang C at or
    /// above full load).
    pub asa_seconds: Option<f64>,
    /// Fraction of advisor time spent handling contacts.
    pub occupancy: f64,
    /// Probability that a contact waits at all.
    pub wait_probability: f64,
    /// Probability that a contact abandons (Erlang A only).
    pub abandon_probability: Option<f64>,
}

impl Metrics {
    fn from_erlang_c(q: &ErlangC, threshold: Duration) -> Self {
        Self {
            advisors: q.servers(),
            service_level: q.service_level(threshold),
            asa_seconds: q.asa_seconds(),
            occupancy: q.occupancy(),
            wait_probability: q.wait_probability(),
            abandon_probability: None,
        }
    }

    fn from_erlang_a(q: &ErlangA, threshold: Duration) -> Self {
        Self {
            advisors: q.servers(),
            service_level: q.service_level(threshold),
            asa_seconds: Some(q.asa_seconds()),
            occupancy: q.occupancy(),
            wait_probability: q.wait_probability(),
            abandon_probability: Some(q.abandon_probability()),
        }
    }

    /// Nothing offered: nobody waits, nobody is busy.
    fn idle(advisors: u32, model: &Model) -> Self {
        Self {
            advisors,
            service_level: 1.0,
            asa_seconds: Some(0.0),
            occupancy: 0.0,
            wait_probability: 0.0,
            abandon_probability: match model {
                Model::ErlangC => None,
                Model::ErlangA { .. } => Some(0.0),
            },
        }
    }

    /// Load offered to no advisor at all: every contact waits forever (Erlang C) or abandons
    /// (Erlang A).
    fn unstaffed(model: &Model) -> Self {
        Self {
            advisors: 0,
            service_level: 0.0,
            asa_seconds: None,
            occupancy: 1.0,
            wait_probability: 1.0,
            abandon_probability: match model {
                Model::ErlangC => None,
                Model::ErlangA { .. } => Some(1.0),
            },
        }
    }
}

/// The answer of [`required_advisors`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Requirement {
    /// Smallest number of advisors on the phones meeting every part of the target (0 when
    /// nothing is offered).
    pub advisors: u32,
    /// Parts of the target that one advisor fewer would fail: what drives the answer.
    pub binding: Vec<Constraint>,
    /// Performance with `advisors`.
    pub metrics: Metrics,
}

/// Checks a model's parameters against the traffic once, so the evaluations below cannot fail.
fn check_model(traffic: &Traffic, model: &Model) -> Result<Option<f64>, StaffingError> {
    match model {
        Model::ErlangC => Ok(None),
        Model::ErlangA { patience } => {
            let p = positive_seconds("patience", *patience)?;
            if p > MAX_PATIENCE_RATIO * traffic.aht_seconds() {
                return Err(StaffingError::InvalidDuration {
                    name: "patience",
                    expected: "at most a million handle times (beyond that, use Erlang C)",
                    value: *patience,
                });
            }
            Ok(Some(p))
        }
    }
}

/// Evaluates `advisors` given the Erlang B value for them (already validated inputs).
fn evaluate_with_b(
    traffic: &Traffic,
    model: &Model,
    patience_seconds: Option<f64>,
    advisors: u32,
    b: f64,
    threshold: Duration,
) -> Metrics {
    if traffic.load_erlangs() == 0.0 {
        return Metrics::idle(advisors, model);
    }
    if advisors == 0 {
        return Metrics::unstaffed(model);
    }
    match patience_seconds {
        None => Metrics::from_erlang_c(&ErlangC::from_blocking(advisors, *traffic, b), threshold),
        Some(p) => {
            Metrics::from_erlang_a(&ErlangA::from_blocking(advisors, *traffic, p, b), threshold)
        }
    }
}

/// Performance of `advisors` facing `traffic` under `model`, with the service level taken at
/// `threshold`.
///
/// # Errors
/// [`StaffingError`] when the model's patience is out of range or `advisors` exceeds the
/// supported maximum.
pub fn evaluate(
    traffic: &Traffic,
    model: &Model,
    advisors: u32,
    threshold: Duration,
) -> Result<Metrics, StaffingError> {
    let patience = check_model(traffic, model)?;
    check_servers(advisors)?;
    let b = ErlangBSequence::new(traffic.load_erlangs()).advance_to(advisors);
    Ok(evaluate_with_b(
        traffic, model, patience, advisors, b, threshold,
    ))
}

fn check_servers(advisors: u32) -> Result<(), StaffingError> {
    if advisors > MAX_SERVERS {
        return Err(StaffingError::InvalidNumber {
            name: "advisors",
            expected: "at most 1000000",
            value: f64::from(advisors),
        });
    }
    Ok(())
}

/// The smallest number of advisors `N` with `a / N <= max_occupancy` (up to decimal slack).
fn occupancy_floor(load: f64, max_occupancy: f64) -> u32 {
    let exact = load / max_occupancy;
    let n = (exact * (1.0 - DECIMAL_SLACK)).ceil();
    // Bounded by MAX_LOAD / tiny occupancy; saturate rather than wrap.
    if n >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        n as u32
    }
}

/// The smallest number of advisors meeting `target` for `traffic` under `model`.
///
/// # Errors
/// [`StaffingError`] when the model's patience is out of range, or
/// [`StaffingError::TargetUnreachable`] when no N up to
/// `lower bound + 20 sqrt(a) + 1000` (capped at 1,000,000) meets it, which only happens for
/// targets of the order of one part in 10^80.
pub fn required_advisors(
    traffic: &Traffic,
    model: &Model,
    target: &Target,
) -> Result<Requirement, StaffingError> {
    let patience = check_model(traffic, model)?;
    let a = traffic.load_erlangs();
    if a == 0.0 {
        return Ok(Requirement {
            advisors: 0,
            binding: Vec::new(),
            metrics: Metrics::idle(0, model),
        });
    }
    let mut start: u32 = match (model, target.service_level) {
        // Stability: the smallest integer strictly above the load.
        (Model::ErlangC, _) => (a.floor() as u32).saturating_add(1),
        (Model::ErlangA { .. }, Some(s)) => ((s * a).floor() as u32).max(1),
        (Model::ErlangA { .. }, None) => 1,
    };
    // ceil(a / m) advisors always satisfy the cap (carried load never exceeds a). Under
    // Erlang C occupancy is a / N, so it is also a lower bound; under Erlang A occupancy is
    // the carried load a (1 - P(Ab)) / N, which can meet the cap with fewer advisors.
    let occupancy_enough = target.max_occupancy.map_or(0, |m| occupancy_floor(a, m));
    if matches!(model, Model::ErlangC) {
        start = start.max(occupancy_enough);
    }
    let span = 20.0 * a.sqrt() + 1000.0;
    let limit = (f64::from(start.max(occupancy_enough)) + span).min(f64::from(MAX_SERVERS)) as u32;
    if start > limit {
        return Err(StaffingError::TargetUnreachable {
            searched_up_to: limit,
        });
    }

    let mut seq = ErlangBSequence::new(a);
    let mut n = start;
    loop {
        let b = seq.advance_to(n);
        let metrics = evaluate_with_b(traffic, model, patience, n, b, target.threshold);
        if target.unmet(&metrics).is_empty() {
            let binding = if n == 0 {
                Vec::new()
            } else {
                // One advisor fewer: a fresh recurrence, as the sequence only walks upwards.
                let prev = evaluate(traffic, model, n - 1, target.threshold)?;
                target.unmet(&prev)
            };
            return Ok(Requirement {
                advisors: n,
                binding,
                metrics,
            });
        }
        if n >= limit {
            return Err(StaffingError::TargetUnreachable {
                searched_up_to: limit,
            });
        }
        n += 1;
    }
}

/// Advisors to schedule so that `advisors` remain on the phones after shrinkage (breaks,
/// training, absence...): `advisors / (1 - shrinkage)`, rounded up.
///
/// # Errors
/// [`StaffingError::InvalidNumber`] unless `0 <= shrinkage < 1`.
pub fn apply_shrinkage(advisors: u32, shrinkage: f64) -> Result<u32, StaffingError> {
    if !(0.0..1.0).contains(&shrinkage) {
        return Err(StaffingError::InvalidNumber {
            name: "shrinkage",
            expected: "a fraction >= 0 and < 1",
            value: shrinkage,
        });
    }
    let exact = f64::from(advisors) / (1.0 - shrinkage);
    // 14 / (1 - 0.3) is 20.000000000000004 in binary: round up only what is really above.
    let n = (exact * (1.0 - DECIMAL_SLACK)).ceil();
    if n >= f64::from(u32::MAX) {
        return Err(StaffingError::InvalidNumber {
            name: "shrinkage",
            expected: "small enough that the scheduled headcount fits in 32 bits",
            value: shrinkage,
        });
    }
    Ok(n as u32)
}

/// One row of the table of N around the answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TableRow {
    /// Performance with this many advisors.
    #[serde(flatten)]
    pub metrics: Metrics,
    /// Whether this N meets every part of the target.
    pub meets_target: bool,
}

/// Performance for every N in `from..=to`, each flagged with whether it meets `target`.
///
/// # Errors
/// [`StaffingError`] when the model's patience is out of range, `from > to`, or `to` exceeds
/// the supported maximum.
pub fn staffing_table(
    traffic: &Traffic,
    model: &Model,
    target: &Target,
    from: u32,
    to: u32,
) -> Result<Vec<TableRow>, StaffingError> {
    let patience = check_model(traffic, model)?;
    check_servers(to)?;
    if from > to {
        return Err(StaffingError::InvalidNumber {
            name: "from",
            expected: "at most `to`",
            value: f64::from(from),
        });
    }
    let mut seq = ErlangBSequence::new(traffic.load_erlangs());
    Ok((from..=to)
        .map(|n| {
            let b = seq.advance_to(n);
            let metrics = evaluate_with_b(traffic, model, patience, n, b, target.threshold);
            TableRow {
                meets_target: target.unmet(&metrics).is_empty(),
                metrics,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn shrinkage_rounds_up_but_not_on_binary_noise() {
        assert_eq!(apply_shrinkage(14, 0.3).expect("valid"), 20);
        assert_eq!(apply_shrinkage(15, 0.3).expect("valid"), 22); // 21.43
        assert_eq!(apply_shrinkage(0, 0.3).expect("valid"), 0);
        assert_eq!(apply_shrinkage(7, 0.0).expect("valid"), 7);
        assert!(apply_shrinkage(7, 1.0).is_err());
        assert!(apply_shrinkage(7, -0.1).is_err());
        assert!(apply_shrinkage(7, f64::NAN).is_err());
    }

    #[test]
    fn occupancy_floor_is_exact_on_decimal_inputs() {
        assert_eq!(occupancy_floor(8.5, 0.85), 10);
        assert_eq!(occupancy_floor(8.6, 0.85), 11);
        assert_eq!(occupancy_floor(10.0, 1.0), 10);
    }

    #[test]
    fn target_validation() {
        assert_eq!(
            Target::new(secs(20), None, None, None),
            Err(StaffingError::NoTarget)
        );
        assert!(Target::new(secs(20), Some(1.0), None, None).is_err());
        assert!(Target::new(secs(20), Some(0.0), None, None).is_err());
        assert!(Target::new(secs(20), None, Some(Duration::ZERO), None).is_err());
        assert!(Target::new(secs(20), Some(0.8), None, Some(0.0)).is_err());
        assert!(Target::new(secs(20), Some(0.8), None, Some(1.2)).is_err());
        assert!(Target::new(secs(20), Some(0.8), Some(secs(15)), Some(0.85)).is_ok());
    }

    #[test]
    fn zero_load_needs_nobody() {
        let t = Traffic::new(0.0, secs(180)).expect("valid");
        let target = Target::new(secs(20), Some(0.8), None, None).expect("valid");
        let r = required_advisors(&t, &Model::ErlangC, &target).expect("reachable");
        assert_eq!(r.advisors, 0);
        assert_eq!(r.metrics.service_level, 1.0);
    }

    #[test]
    fn binding_constraint_is_reported() {
        let t = Traffic::from_volume(100.0, secs(1800), secs(180)).expect("valid");
        // 80/20 alone needs 14 (occupancy 71%); a 60% cap needs ceil(10/0.6) = 17.
        let target = Target::new(secs(20), Some(0.8), None, Some(0.6)).expect("valid");
        let r = required_advisors(&t, &Model::ErlangC, &target).expect("reachable");
        assert_eq!(r.advisors, 17);
        assert_eq!(r.binding, vec![Constraint::MaxOccupancy]);
        let target = Target::new(secs(20), Some(0.8), None, None).expect("valid");
        let r = required_advisors(&t, &Model::ErlangC, &target).expect("reachable");
        assert_eq!(r.binding, vec![Constraint::ServiceLevel]);
    }
}
