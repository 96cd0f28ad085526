//! The life of one alert (one rule, one target): inactive, pending, firing (warning or
//! critical), resolved; what it tells the team and when. Pure and clock-free: fed with one
//! value per evaluation, at the instant given.
//!
//! ```text
//!             condition true                 held for `for`
//!  inactive ───────────────────▶ pending ─────────────────────▶ firing ──┐ escalated /
//!  resolved ◀───────────────┐      │ condition false,            │  ▲    │ de-escalated
//!     ▲                     │      ▼ no data, off hours          │  └────┘
//!     │                     └── (back to inactive/resolved)      │
//!     └──────────── value past `clear`, no data, off hours ──────┘
//! ```
//!
//! The state changes at once; notifications follow it with a flap guard: at most one per
//! `min_interval` (a change within it is told when it ends, if still true), except the first
//! escalation to critical of a firing alert. A firing alert not acknowledged is told again
//! every `renotify`. Silence suppresses notifications until it ends; what changed meanwhile is
//! told then.

use serde::Serialize;
use vigie_core::Timestamp;
use vigie_core::time::Millis;

use crate::error::AlertError;
use crate::rule::Comparator;

/// Transitions kept per alert and day; beyond, the oldest pending and reset entries go first.
pub const MAX_HISTORY: usize = 100;

/// The lifecycle settings of a rule, in the metric's unit and in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Policy {
    /// Direction in which values are bad.
    pub comparator: Comparator,
    /// Warning threshold.
    pub warning: Option<f64>,
    /// Critical threshold.
    pub critical: Option<f64>,
    /// A firing alert resolves when the value no longer passes this threshold.
    pub clear: f64,
    /// How long the condition must hold before the alert fires.
    pub hold_for: Millis,
    /// Re-notification interval of a firing alert not acknowledged.
    pub renotify: Option<Millis>,
    /// Shortest time between two notifications (except the first escalation to critical).
    pub min_interval: Millis,
}

impl Policy {
    /// The severity the value alone calls for (ignoring hysteresis).
    pub fn level(&self, value: f64) -> Option<Severity> {
        let passes =
            |threshold: Option<f64>| threshold.is_some_and(|t| self.comparator.passes(value, t));
        if passes(self.critical) {
            Some(Severity::Critical)
        } else if passes(self.warning) {
            Some(Severity::Warning)
        } else {
            None
        }
    }

    /// Whether a firing alert with this value resolves.
    pub fn is_clear(&self, value: f64) -> bool {
        !self.comparator.passes(value, self.clear)
    }

    /// The threshold of a severity (the critical one for a rule without warning).
    pub fn threshold(&self, severity: Severity) -> f64 {
        let (first, second) = match severity {
            Severity::Warning => (self.warning, self.critical),
            Severity::Critical => (self.critical, self.warning),
        };
        first.or(second).unwrap_or(self.clear)
    }
}

/// How bad a firing alert is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// The warning threshold is passed.
    Warning,
    /// The critical threshold is passed.
    Critical,
}

/// Where an alert is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    /// The condition does not hold (and the alert has not fired today).
    Inactive,
    /// The condition holds, for less than the rule's `for`.
    Pending,
    /// The condition held for `for`: the alert is on.
    Firing,
    /// The alert fired and is over.
    Resolved,
}

/// A change of an alert, as its history keeps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TransitionKind {
    /// The condition started to hold; the alert waits for `for`.
    Pending,
    /// The condition stopped holding before `for` (or the rule went off hours).
    Reset,
    /// The alert fired.
    Fired,
    /// From warning to critical.
    Escalated,
    /// From critical to warning.
    DeEscalated,
    /// The alert is over.
    Resolved,
    /// Someone acknowledged the alert.
    Acknowledged,
    /// Someone silenced the alert for a while.
    Silenced,
}

/// What a notification tells.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    /// The alert is on.
    Fired,
    /// It went from warning to critical.
    Escalated,
    /// It went from critical to warning.
    DeEscalated,
    /// It is still on, a `renotify` interval after the last notification.
    Renotified,
    /// It is over.
    Resolved,
    /// Someone acknowledged it.
    Acknowledged,
    /// Someone silenced it.
    Silenced,
}

/// Why a pending alert reset or a firing one resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// The value: back on the safe side (of the thresholds, or of `clear` for a firing alert).
    Value,
    /// No value any more: the advisor left the state, too few contacts (`min_volume`), the
    /// target is gone or the figure is undefined.
    NoData,
    /// The rule's active hours ended.
    OutsideActiveHours,
    /// The rule was changed or removed.
    RuleChanged,
}

/// Who acknowledged a firing alert, and when. Cleared at escalation and resolution.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Acknowledgement {
    /// Who (a user name from the API).
    pub by: String,
    /// When.
    #[serde(serialize_with = "crate::ser::timestamp")]
    pub at: Timestamp,
}

/// A silence on an alert.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Silence {
    /// No notification before this instant.
    #[serde(serialize_with = "crate::ser::timestamp")]
    pub until: Timestamp,
    /// Who silenced it.
    pub by: String,
    /// When.
    #[serde(serialize_with = "crate::ser::timestamp")]
    pub at: Timestamp,
}

/// One entry of an alert's history.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Transition {
    /// What happened.
    pub kind: TransitionKind,
    /// When.
    #[serde(serialize_with = "crate::ser::timestamp")]
    pub at: Timestamp,
    /// Severity after the change (the one that ended, for `resolved`).
    pub severity: Option<Severity>,
    /// The value that caused it (the last value for a resolution without data).
    pub value: Option<f64>,
    /// The threshold that was passed (`clear` for a resolution).
    pub threshold: Option<f64>,
    /// Why, for `reset` and `resolved`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<Cause>,
    /// Who, for `acknowledged` and `silenced`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// End of the silence, for `silenced`.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::ser::opt_timestamp"
    )]
    pub until: Option<Timestamp>,
}

/// A notification, without the rule and target it is about (see [`crate::Notification`]).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Notice {
    /// What it tells.
    pub kind: NotificationKind,
    /// Severity told (the one that ended for `resolved`; none when not firing).
    pub severity: Option<Severity>,
    /// The value (the last one before the end for `resolved`).
    pub value: Option<f64>,
    /// The threshold passed (`clear` for `resolved`).
    pub threshold: Option<f64>,
    /// When the condition started to hold.
    #[serde(serialize_with = "crate::ser::opt_timestamp")]
    pub since: Option<Timestamp>,
    /// When the state told began (fired, escalated, resolved...): earlier than `at` when the
    /// flap guard or a silence held the notification back.
    #[serde(serialize_with = "crate::ser::timestamp")]
    pub changed_at: Timestamp,
    /// When the notification is made.
    #[serde(serialize_with = "crate::ser::timestamp")]
    pub at: Timestamp,
    /// Why it resolved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<Cause>,
    /// Who acknowledged or silenced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// End of a silence.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::ser::opt_timestamp"
    )]
    pub until: Option<Timestamp>,
}

/// What one observation did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Step {
    /// The change of state, if any (also appended to the history).
    pub transition: Option<Transition>,
    /// The notification to send, if any.
    pub notice: Option<Notice>,
}

impl Step {
    /// Whether nothing happened.
    pub fn is_empty(&self) -> bool {
        self.transition.is_none() && self.notice.is_none()
    }
}

/// What the evaluator reads for an alert at one instant.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Reading {
    Value(f64),
    NoData,
    OffHours,
}

/// The state of one alert (one rule, one target).
#[derive(Clone, Debug, PartialEq)]
pub struct Lifecycle {
    policy: Policy,
    state: AlertState,
    severity: Option<Severity>,
    /// When the condition started to hold (kept after the end, for the resolution).
    since: Option<Timestamp>,
    /// When the current state (or firing severity) began.
    changed_at: Timestamp,
    /// The last value read.
    value: Option<f64>,
    /// Why and when the last firing ended, with its last value.
    resolution: Option<(Cause, Timestamp, Option<f64>)>,
    /// What notifications told last: firing at this severity, or nothing / over.
    announced: Option<Severity>,
    /// `since` of the firing the team was told about.
    announced_since: Option<Timestamp>,
    /// Critical was told during the firing the team knows of.
    announced_critical: bool,
    last_notified: Option<Timestamp>,
    acknowledged: Option<Acknowledgement>,
    silence: Option<Silence>,
    history: Vec<Transition>,
    history_dropped: u32,
}

impl Lifecycle {
    /// An inactive alert under `policy`.
    pub fn new(policy: Policy) -> Lifecycle {
        Lifecycle {
            policy,
            state: AlertState::Inactive,
            severity: None,
            since: None,
            changed_at: Timestamp(0),
            value: None,
            resolution: None,
            announced: None,
            announced_since: None,
            announced_critical: false,
            last_notified: None,
            acknowledged: None,
            silence: None,
            history: Vec::new(),
            history_dropped: 0,
        }
    }

    /// Takes the value read at `now` (none: no data, such as an advisor no longer in the
    /// watched state, or too few contacts). Instants must not go backwards.
    pub fn observe(&mut self, value: Option<f64>, now: Timestamp) -> Step {
        if let Some(value) = value
            && self.is_idle()
            && self.policy.level(value).is_none()
        {
            // The commonest case by far (alerts of the day that are over, fed a calm value):
            // nothing to change but the last value.
            self.value = Some(value);
            return Step::default();
        }
        self.step(value.map_or(Reading::NoData, Reading::Value), now)
    }

    /// The rule is off hours at `now`: a pending alert resets, a firing one resolves.
    pub fn off_hours(&mut self, now: Timestamp) -> Step {
        self.step(Reading::OffHours, now)
    }

    /// Acknowledges a firing alert: no re-notification until it escalates or ends.
    pub fn acknowledge(&mut self, by: &str, now: Timestamp) -> Result<Step, AlertError> {
        if self.state != AlertState::Firing {
            return Err(AlertError::NotFiring);
        }
        self.acknowledged = Some(Acknowledgement {
            by: by.to_owned(),
            at: now,
        });
        let transition = Transition {
            by: Some(by.to_owned()),
            ..self.transition(TransitionKind::Acknowledged, now)
        };
        self.record(transition.clone());
        let notice = Notice {
            by: Some(by.to_owned()),
            ..self.notice_now(NotificationKind::Acknowledged, now)
        };
        Ok(Step {
            transition: Some(transition),
            notice: Some(notice),
        })
    }

    /// Silences the alert until `until`: it keeps its state, but tells nothing before then
    /// (what changed meanwhile is told when the silence ends).
    pub fn silence(
        &mut self,
        until: Timestamp,
        by: &str,
        now: Timestamp,
    ) -> Result<Step, AlertError> {
        if until <= now {
            return Err(AlertError::SilenceInPast);
        }
        self.silence = Some(Silence {
            until,
            by: by.to_owned(),
            at: now,
        });
        let transition = Transition {
            by: Some(by.to_owned()),
            until: Some(until),
            ..self.transition(TransitionKind::Silenced, now)
        };
        self.record(transition.clone());
        let notice = Notice {
            by: Some(by.to_owned()),
            until: Some(until),
            ..self.notice_now(NotificationKind::Silenced, now)
        };
        Ok(Step {
            transition: Some(transition),
            notice: Some(notice),
        })
    }

    /// Where the alert is.
    pub fn state(&self) -> AlertState {
        self.state
    }

    /// The severity while firing.
    pub fn severity(&self) -> Option<Severity> {
        (self.state == AlertState::Firing)
            .then_some(self.severity)
            .flatten()
    }

    /// The last value read.
    pub fn value(&self) -> Option<f64> {
        self.value
    }

    /// The threshold passed while firing (warning or critical), else the onset threshold.
    pub fn threshold(&self) -> f64 {
        self.policy
            .threshold(self.severity().unwrap_or(Severity::Warning))
    }

    /// Since when the condition holds (pending, firing), or held (resolved).
    pub fn since(&self) -> Option<Timestamp> {
        self.since
    }

    /// The acknowledgement of the current firing.
    pub fn acknowledged(&self) -> Option<&Acknowledgement> {
        self.acknowledged.as_ref()
    }

    /// The silence, while it lasts (as of the last observation).
    pub fn silenced(&self) -> Option<&Silence> {
        self.silence.as_ref()
    }

    /// When the last notification was made.
    pub fn last_notified(&self) -> Option<Timestamp> {
        self.last_notified
    }

    /// Today's transitions, oldest first (at most [`MAX_HISTORY`]).
    pub fn history(&self) -> &[Transition] {
        &self.history
    }

    /// Transitions dropped today to keep the history bounded.
    pub fn history_dropped(&self) -> u32 {
        self.history_dropped
    }

    /// The settings.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Whether an observation without data can change nothing: not pending or firing, nothing
    /// left to tell, no silence to expire. The evaluator skips such alerts.
    pub fn is_idle(&self) -> bool {
        matches!(self.state, AlertState::Inactive | AlertState::Resolved)
            && self.announced.is_none()
            && self.silence.is_none()
    }

    /// Starts a new day: today's history is cleared; a resolved alert becomes inactive.
    pub fn start_day(&mut self) {
        self.history.clear();
        self.history_dropped = 0;
        if self.state == AlertState::Resolved {
            self.state = AlertState::Inactive;
        }
    }

    /// The alert's rule changed or went away: if the team was told it fires, the notification
    /// that it is over.
    pub fn retire(&mut self, now: Timestamp) -> Option<Notice> {
        let severity = self.announced?;
        let silenced = self.silence.as_ref().is_some_and(|s| now < s.until);
        (!silenced).then_some(Notice {
            kind: NotificationKind::Resolved,
            severity: Some(severity),
            value: self.value,
            threshold: Some(self.policy.clear),
            since: self.announced_since,
            changed_at: now,
            at: now,
            cause: Some(Cause::RuleChanged),
            by: None,
            until: None,
        })
    }

    fn step(&mut self, reading: Reading, now: Timestamp) -> Step {
        if self.silence.as_ref().is_some_and(|s| now >= s.until) {
            self.silence = None;
        }
        let transition = self.advance(reading, now);
        if let Some(transition) = &transition {
            self.record(transition.clone());
        }
        let notice = self.notify(now);
        Step { transition, notice }
    }

    fn transition(&self, kind: TransitionKind, at: Timestamp) -> Transition {
        Transition {
            kind,
            at,
            severity: self.severity(),
            value: self.value,
            threshold: self.severity().map(|s| self.policy.threshold(s)),
            cause: None,
            by: None,
            until: None,
        }
    }

    fn record(&mut self, transition: Transition) {
        if self.history.len() >= MAX_HISTORY {
            let noise = self
                .history
                .iter()
                .position(|t| matches!(t.kind, TransitionKind::Pending | TransitionKind::Reset))
                .unwrap_or(0);
            self.history.remove(noise);
            self.history_dropped += 1;
        }
        self.history.push(transition);
    }

    fn idle_state(&self) -> AlertState {
        if self.resolution.is_some() {
            AlertState::Resolved
        } else {
            AlertState::Inactive
        }
    }

    fn advance(&mut self, reading: Reading, now: Timestamp) -> Option<Transition> {
        let value = match reading {
            Reading::Value(value) => {
                self.value = Some(value);
                Some(value)
            }
            Reading::NoData | Reading::OffHours => None,
        };
        let cause = match reading {
            Reading::OffHours => Cause::OutsideActiveHours,
            Reading::NoData => Cause::NoData,
            Reading::Value(_) => Cause::Value,
        };
        match self.state {
            AlertState::Inactive | AlertState::Resolved => {
                let level = self.policy.level(value?)?;
                self.since = Some(now);
                if self.policy.hold_for.0 <= 0 {
                    return Some(self.fire(level, now));
                }
                self.state = AlertState::Pending;
                self.changed_at = now;
                Some(Transition {
                    threshold: Some(self.policy.threshold(level)),
                    ..self.transition(TransitionKind::Pending, now)
                })
            }
            AlertState::Pending => {
                let level = value.and_then(|v| self.policy.level(v));
                match (level, self.since) {
                    (Some(level), Some(since)) => {
                        (now - since >= self.policy.hold_for).then(|| self.fire(level, now))
                    }
                    _ => {
                        self.state = self.idle_state();
                        self.changed_at = now;
                        Some(Transition {
                            cause: Some(cause),
                            ..self.transition(TransitionKind::Reset, now)
                        })
                    }
                }
            }
            AlertState::Firing => {
                let severity = self.severity.unwrap_or(Severity::Warning);
                match value {
                    Some(v) if !self.policy.is_clear(v) => {
                        let level = self.policy.level(v);
                        let next = match (severity, level) {
                            (Severity::Warning, Some(Severity::Critical)) => Severity::Critical,
                            (Severity::Critical, Some(Severity::Warning) | None)
                                if self.policy.warning.is_some() =>
                            {
                                Severity::Warning
                            }
                            _ => return None,
                        };
                        self.severity = Some(next);
                        self.changed_at = now;
                        let kind = if next == Severity::Critical {
                            self.acknowledged = None;
                            TransitionKind::Escalated
                        } else {
                            TransitionKind::DeEscalated
                        };
                        Some(self.transition(kind, now))
                    }
                    _ => {
                        let transition = Transition {
                            kind: TransitionKind::Resolved,
                            at: now,
                            severity: Some(severity),
                            value: self.value,
                            threshold: Some(self.policy.clear),
                            cause: Some(cause),
                            by: None,
                            until: None,
                        };
                        self.state = AlertState::Resolved;
                        self.changed_at = now;
                        self.resolution = Some((cause, now, self.value));
                        self.acknowledged = None;
                        Some(transition)
                    }
                }
            }
        }
    }

    fn fire(&mut self, level: Severity, now: Timestamp) -> Transition {
        self.state = AlertState::Firing;
        self.severity = Some(level);
        self.changed_at = now;
        self.transition(TransitionKind::Fired, now)
    }

    /// A notification of the current state, made now (acknowledgement, silence).
    fn notice_now(&self, kind: NotificationKind, now: Timestamp) -> Notice {
        Notice {
            kind,
            severity: self.severity(),
            value: self.value,
            threshold: self.severity().map(|s| self.policy.threshold(s)),
            since: self.since,
            changed_at: now,
            at: now,
            cause: None,
            by: None,
            until: None,
        }
    }

    /// What to tell now, given what was told and the flap guard.
    fn notify(&mut self, now: Timestamp) -> Option<Notice> {
        if self.silence.is_some() {
            return None;
        }
        let actual = self.severity();
        let spaced = self
            .last_notified
            .is_none_or(|last| now - last >= self.policy.min_interval);
        let kind = match (self.announced, actual) {
            (None, Some(_)) if spaced => NotificationKind::Fired,
            (Some(_), None) if spaced => NotificationKind::Resolved,
            (Some(told), Some(actual)) if actual > told && (spaced || !self.announced_critical) => {
                NotificationKind::Escalated
            }
            (Some(told), Some(actual)) if actual < told && spaced => NotificationKind::DeEscalated,
            (Some(told), Some(actual)) if actual == told => {
                let due = match (self.policy.renotify, self.last_notified) {
                    (Some(every), Some(last)) => now - last >= every,
                    _ => false,
                };
                if !due || self.acknowledged.is_some() {
                    return None;
                }
                NotificationKind::Renotified
            }
            _ => return None,
        };
        self.last_notified = Some(now);
        let notice = if kind == NotificationKind::Resolved {
            let (cause, at, value) = self.resolution.unwrap_or((Cause::Value, now, self.value));
            Notice {
                kind,
                severity: self.announced,
                value,
                threshold: Some(self.policy.clear),
                since: self.announced_since,
                changed_at: at,
                at: now,
                cause: Some(cause),
                by: None,
                until: None,
            }
        } else {
            if self.announced.is_none() {
                self.announced_since = self.since;
            }
            Notice {
                changed_at: self.changed_at,
                since: self.announced_since,
                ..self.notice_now(kind, now)
            }
        };
        self.announced = actual;
        match actual {
            None => {
                self.announced_critical = false;
                self.announced_since = None;
            }
            Some(Severity::Critical) => self.announced_critical = true,
            Some(Severity::Warning) => {}
        }
        Some(notice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1000;

    /// What happened, by second.
    type Timeline<K> = Vec<(i64, K)>;

    fn policy() -> Policy {
        Policy {
            comparator: Comparator::Above,
            warning: Some(60.0),
            critical: Some(180.0),
            clear: 45.0,
            hold_for: Millis(30 * S),
            renotify: Some(Millis(600 * S)),
            min_interval: Millis(120 * S),
        }
    }

    fn at(seconds: i64) -> Timestamp {
        Timestamp(1_772_442_000_000 + seconds * S)
    }

    /// Feeds `(second, value)` samples; returns the kinds of transitions and notifications.
    fn run(
        lifecycle: &mut Lifecycle,
        samples: &[(i64, Option<f64>)],
    ) -> (Timeline<TransitionKind>, Timeline<NotificationKind>) {
        let mut transitions = Vec::new();
        let mut notices = Vec::new();
        for &(second, value) in samples {
            let step = lifecycle.observe(value, at(second));
            if let Some(t) = step.transition {
                transitions.push((second, t.kind));
            }
            if let Some(n) = step.notice {
                notices.push((second, n.kind));
            }
        }
        (transitions, notices)
    }

    #[test]
    fn fires_after_for_escalates_de_escalates_and_resolves_past_clear() {
        use NotificationKind as N;
        use TransitionKind as T;
        let mut alert = Lifecycle::new(policy());
        let (transitions, notices) = run(
            &mut alert,
            &[
                (0, Some(50.0)),
                (10, Some(61.0)),
                (20, Some(70.0)),
                (40, Some(80.0)),
                (50, Some(200.0)),
                (60, Some(100.0)),
                (200, Some(100.0)),
                (210, Some(50.0)),
                (220, Some(45.0)),
                (400, Some(10.0)),
            ],
        );
        assert_eq!(
            transitions,
            [
                (10, T::Pending),
                (40, T::Fired),
                (50, T::Escalated),
                (60, T::DeEscalated),
                (220, T::Resolved),
            ]
        );
        // The first escalation is told at once; the de-escalation waits for the flap guard
        // (2 minutes after the escalation's notification); the resolution too.
        assert_eq!(
            notices,
            [
                (40, N::Fired),
                (50, N::Escalated),
                (200, N::DeEscalated),
                (400, N::Resolved)
            ]
        );
        assert_eq!(alert.state(), AlertState::Resolved);
        let history = alert.history();
        assert_eq!(history.len(), 5);
        assert_eq!(history[1].severity, Some(Severity::Warning));
        assert_eq!(history[1].threshold, Some(60.0));
        assert_eq!(history[2].threshold, Some(180.0));
        assert_eq!(history[4].value, Some(45.0));
        assert_eq!(history[4].cause, Some(Cause::Value));
    }

    #[test]
    fn a_resolution_held_back_carries_when_it_happened_and_the_last_value() {
        let mut alert = Lifecycle::new(Policy {
            hold_for: Millis(0),
            ..policy()
        });
        assert_eq!(
            alert.observe(Some(70.0), at(0)).notice.map(|n| n.kind),
            Some(NotificationKind::Fired)
        );
        assert!(alert.observe(Some(30.0), at(10)).notice.is_none());
        assert!(alert.observe(None, at(60)).notice.is_none());
        let resolved = alert.observe(None, at(120)).notice.unwrap();
        assert_eq!(resolved.kind, NotificationKind::Resolved);
        assert_eq!(resolved.changed_at, at(10));
        assert_eq!(resolved.at, at(120));
        assert_eq!(resolved.value, Some(30.0));
        assert_eq!(resolved.since, Some(at(0)));
        assert_eq!(resolved.severity, Some(Severity::Warning));
        assert_eq!(resolved.threshold, Some(45.0));
        assert!(alert.is_idle());
    }

    #[test]
    fn a_value_between_clear_and_warning_keeps_it_firing() {
        let mut alert = Lifecycle::new(policy());
        let (transitions, _) = run(
            &mut alert,
            &[
                (0, Some(61.0)),
                (30, Some(61.0)),
                (40, Some(50.0)),
                (50, Some(46.0)),
            ],
        );
        assert_eq!(transitions.last(), Some(&(30, TransitionKind::Fired)));
        assert_eq!(alert.state(), AlertState::Firing);
        assert_eq!(alert.severity(), Some(Severity::Warning));
    }

    #[test]
    fn a_pending_alert_resets_when_the_condition_stops_before_for() {
        let mut alert = Lifecycle::new(policy());
        let (transitions, notices) = run(
            &mut alert,
            &[
                (0, Some(61.0)),
                (20, Some(59.0)),
                (30, Some(61.0)),
                (50, None),
            ],
        );
        assert_eq!(
            transitions,
            [
                (0, TransitionKind::Pending),
                (20, TransitionKind::Reset),
                (30, TransitionKind::Pending),
                (50, TransitionKind::Reset)
            ]
        );
        assert!(notices.is_empty());
        assert_eq!(alert.state(), AlertState::Inactive);
        assert_eq!(alert.history()[3].cause, Some(Cause::NoData));
    }

    #[test]
    fn re_notifies_every_interval_until_acknowledged_and_again_after_escalation() {
        let mut alert = Lifecycle::new(Policy {
            hold_for: Millis(0),
            ..policy()
        });
        let mut kinds = Vec::new();
        for second in (0..=700).step_by(10) {
            if second == 650 {
                let step = alert.acknowledge("camille", at(second)).unwrap();
                assert_eq!(step.notice.unwrap().kind, NotificationKind::Acknowledged);
                assert_eq!(step.transition.unwrap().by.as_deref(), Some("camille"));
            }
            if let Some(notice) = alert.observe(Some(100.0), at(second)).notice {
                kinds.push((second, notice.kind));
            }
        }
        assert_eq!(
            kinds,
            [
                (0, NotificationKind::Fired),
                (600, NotificationKind::Renotified)
            ]
        );
        // Acknowledged: no re-notification at 1200.
        for second in (710..=1300).step_by(10) {
            assert!(alert.observe(Some(100.0), at(second)).notice.is_none());
        }
        // The escalation clears the acknowledgement.
        let escalated = alert.observe(Some(190.0), at(1310)).notice.unwrap();
        assert_eq!(escalated.kind, NotificationKind::Escalated);
        assert!(alert.acknowledged().is_none());
        let renotified = alert.observe(Some(190.0), at(1910)).notice.unwrap();
        assert_eq!(renotified.kind, NotificationKind::Renotified);
        assert_eq!(renotified.severity, Some(Severity::Critical));
    }

    #[test]
    fn only_a_firing_alert_can_be_acknowledged() {
        let mut alert = Lifecycle::new(policy());
        assert_eq!(
            alert.acknowledge("x", at(0)).unwrap_err(),
            AlertError::NotFiring
        );
        alert.observe(Some(70.0), at(0));
        assert_eq!(
            alert.acknowledge("x", at(1)).unwrap_err(),
            AlertError::NotFiring,
            "pending"
        );
    }

    #[test]
    fn a_silence_holds_notifications_and_what_changed_is_told_when_it_ends() {
        let mut alert = Lifecycle::new(Policy {
            hold_for: Millis(0),
            renotify: None,
            ..policy()
        });
        let step = alert.silence(at(600), "lea", at(0)).unwrap();
        assert_eq!(
            step.notice.as_ref().unwrap().kind,
            NotificationKind::Silenced
        );
        assert_eq!(step.notice.unwrap().until, Some(at(600)));
        assert_eq!(
            alert.silence(at(0), "lea", at(0)).unwrap_err(),
            AlertError::SilenceInPast
        );
        // Fires and escalates while silenced: the state moves, nothing is told.
        let fired = alert.observe(Some(70.0), at(10));
        assert_eq!(fired.transition.unwrap().kind, TransitionKind::Fired);
        assert!(fired.notice.is_none());
        assert!(alert.observe(Some(200.0), at(20)).notice.is_none());
        assert_eq!(alert.severity(), Some(Severity::Critical));
        assert!(alert.silenced().is_some());
        // At the end, the team learns the current state.
        let told = alert.observe(Some(200.0), at(600)).notice.unwrap();
        assert_eq!(told.kind, NotificationKind::Fired);
        assert_eq!(told.severity, Some(Severity::Critical));
        assert_eq!(told.since, Some(at(10)));
        assert_eq!(told.changed_at, at(20));
        assert!(alert.silenced().is_none());

        // An alert that fired and ended within a silence is never told.
        let mut quiet = Lifecycle::new(Policy {
            hold_for: Millis(0),
            ..policy()
        });
        quiet.silence(at(100), "lea", at(0)).unwrap();
        quiet.observe(Some(70.0), at(10));
        quiet.observe(Some(10.0), at(20));
        assert!(quiet.observe(Some(10.0), at(100)).notice.is_none());
        assert!(quiet.is_idle());
    }

    #[test]
    fn off_hours_reset_pending_and_resolve_firing_alerts_saying_why() {
        let mut pending = Lifecycle::new(policy());
        pending.observe(Some(70.0), at(0));
        let reset = pending.off_hours(at(10)).transition.unwrap();
        assert_eq!(reset.kind, TransitionKind::Reset);
        assert_eq!(reset.cause, Some(Cause::OutsideActiveHours));

        let mut firing = Lifecycle::new(Policy {
            hold_for: Millis(0),
            ..policy()
        });
        firing.observe(Some(70.0), at(0));
        let resolved = firing.off_hours(at(300)).transition.unwrap();
        assert_eq!(resolved.kind, TransitionKind::Resolved);
        assert_eq!(resolved.cause, Some(Cause::OutsideActiveHours));
        assert_eq!(resolved.value, Some(70.0));
    }

    #[test]
    fn below_rules_and_rules_with_only_a_critical_threshold() {
        let mut low = Lifecycle::new(Policy {
            comparator: Comparator::Below,
            warning: Some(0.8),
            critical: Some(0.6),
            clear: 0.85,
            hold_for: Millis(0),
            renotify: None,
            min_interval: Millis(0),
        });
        let (transitions, _) = run(
            &mut low,
            &[
                (0, Some(0.79)),
                (1, Some(0.5)),
                (2, Some(0.82)),
                (3, Some(0.86)),
            ],
        );
        assert_eq!(
            transitions,
            [
                (0, TransitionKind::Fired),
                (1, TransitionKind::Escalated),
                (2, TransitionKind::DeEscalated),
                (3, TransitionKind::Resolved)
            ]
        );
        let mut critical_only = Lifecycle::new(Policy {
            warning: None,
            critical: Some(100.0),
            clear: 80.0,
            hold_for: Millis(0),
            ..policy()
        });
        critical_only.observe(Some(101.0), at(0));
        critical_only.observe(Some(90.0), at(1));
        assert_eq!(critical_only.severity(), Some(Severity::Critical));
        assert_eq!(critical_only.history().len(), 1);
    }

    #[test]
    fn the_history_is_bounded_and_keeps_the_firings() {
        let mut alert = Lifecycle::new(Policy {
            warning: Some(60.0),
            critical: None,
            clear: 60.0,
            ..policy()
        });
        alert.observe(Some(70.0), at(0));
        alert.observe(Some(70.0), at(30));
        for n in 0..200 {
            let second = 40 + n * 10;
            alert.observe(Some(if n % 2 == 0 { 10.0 } else { 70.0 }), at(second));
        }
        assert_eq!(alert.history().len(), MAX_HISTORY);
        assert!(alert.history_dropped() > 0);
        assert_eq!(alert.history()[0].kind, TransitionKind::Fired);
        alert.start_day();
        assert!(alert.history().is_empty());
    }
}
