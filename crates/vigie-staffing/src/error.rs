//! Errors of the staffing mathematics.

use std::time::Duration;

/// Why a staffing computation could not be done.
///
/// Every variant names the parameter at fault and the value it had, so the caller can tell the
/// user what to change without re-deriving the rule.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StaffingError {
    /// A numeric parameter is outside its domain.
    #[error("{name} must be {expected}, got {value}")]
    InvalidNumber {
        /// The parameter, as named in the API.
        name: &'static str,
        /// The rule it breaks, in words ("a finite number >= 0").
        expected: &'static str,
        /// The value received.
        value: f64,
    },
    /// A duration parameter is outside its domain.
    #[error("{name} must be {expected}, got {}", humantime::format_duration(*value))]
    InvalidDuration {
        /// The parameter, as named in the API.
        name: &'static str,
        /// The rule it breaks, in words.
        expected: &'static str,
        /// The value received.
        value: Duration,
    },
    /// A target names neither a service level nor an ASA, so there is nothing to staff for.
    #[error("a staffing target needs a service level, an ASA, or both")]
    NoTarget,
    /// No number of advisors up to the search bound meets the target.
    #[error(
        "no staffing of up to {searched_up_to} advisors meets the target \
         (the target is too strict for this load)"
    )]
    TargetUnreachable {
        /// The largest number of advisors tried.
        searched_up_to: u32,
    },
}
