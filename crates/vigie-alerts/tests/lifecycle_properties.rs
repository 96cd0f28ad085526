//! Properties of the alert lifecycle, driven by generated sequences of (time, value) samples.

use proptest::prelude::*;
use vigie_alerts::{Comparator, Lifecycle, NotificationKind, Policy, Severity, TransitionKind};
use vigie_core::Timestamp;
use vigie_core::time::Millis;

const S: i64 = 1000;

/// A rule above `warning` (with perhaps a critical threshold and hysteresis).
fn policies() -> impl Strategy<Value = Policy> {
    (
        prop_oneof![Just(Comparator::Above), Just(Comparator::Below)],
        10.0..100.0f64,
        prop::option::of(1.0..50.0f64),
        0.0..20.0f64,
        0i64..180,
        0i64..600,
        prop::option::of(0i64..900),
    )
        .prop_map(
            |(comparator, warning, critical_gap, clear_gap, hold_for, min_interval, renotify)| {
                let worse = |gap: f64| match comparator {
                    Comparator::Above => warning + gap,
                    Comparator::Below => warning - gap,
                };
                Policy {
                    comparator,
                    warning: Some(warning),
                    critical: critical_gap.map(worse),
                    clear: worse(-clear_gap),
                    hold_for: Millis(hold_for * S),
                    renotify: renotify.map(|extra| Millis((min_interval + 1 + extra) * S)),
                    min_interval: Millis(min_interval * S),
                }
            },
        )
}

/// Samples every 1 to 60 s: values anywhere around the thresholds, sometimes no data.
fn samples(amplitude: f64) -> impl Strategy<Value = Vec<(i64, Option<f64>)>> {
    prop::collection::vec(
        (
            1i64..60,
            prop::option::weighted(0.95, -amplitude..amplitude),
        ),
        1..400,
    )
    .prop_map(|steps| {
        let mut t = 0;
        steps
            .into_iter()
            .map(|(dt, offset)| {
                t += dt;
                (t, offset)
            })
            .collect()
    })
}

fn at(seconds: i64) -> Timestamp {
    Timestamp(1_772_442_000_000 + seconds * S)
}

fn breaches(policy: &Policy, value: Option<f64>) -> bool {
    value.is_some_and(|v| policy.level(v).is_some())
}

struct Run {
    /// (second, kind) of each transition.
    transitions: Vec<(i64, TransitionKind)>,
    /// (second, kind, severity) of each notification.
    notices: Vec<(i64, NotificationKind, Option<Severity>)>,
}

/// Feeds samples whose values are offsets from the warning threshold.
fn run(policy: Policy, samples: &[(i64, Option<f64>)]) -> (Run, Vec<(i64, Option<f64>)>) {
    let warning = policy.warning.unwrap_or(0.0);
    let values: Vec<(i64, Option<f64>)> = samples
        .iter()
        .map(|(t, offset)| (*t, offset.map(|o| warning + o)))
        .collect();
    let mut lifecycle = Lifecycle::new(policy);
    let mut out = Run {
        transitions: Vec::new(),
        notices: Vec::new(),
    };
    for &(t, value) in &values {
        let step = lifecycle.observe(value, at(t));
        if let Some(transition) = step.transition {
            out.transitions.push((t, transition.kind));
        }
        if let Some(notice) = step.notice {
            out.notices.push((t, notice.kind, notice.severity));
        }
    }
    (out, values)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// An alert fires only when every sample over the last `for` (and one at or before its
    /// start) passed a threshold; and it fires then, at the first such sample.
    #[test]
    fn never_fires_before_the_condition_held_for_its_duration(
        policy in policies(),
        samples in samples(40.0),
    ) {
        let (run, values) = run(policy, &samples);
        let hold = policy.hold_for.0 / S;
        // The reference: a run of breaching samples, and whether the alert is firing.
        let mut firing = false;
        let mut run_start: Option<i64> = None;
        let mut expected = Vec::new();
        for &(t, value) in &values {
            if firing {
                if value.is_none_or(|v| policy.is_clear(v)) {
                    firing = false;
                    run_start = None;
                    expected.push((t, TransitionKind::Resolved));
                }
            } else if breaches(&policy, value) {
                let start = *run_start.get_or_insert(t);
                if t - start >= hold {
                    firing = true;
                    expected.push((t, TransitionKind::Fired));
                }
            } else {
                run_start = None;
            }
        }
        for &(t, kind) in &run.transitions {
            if kind == TransitionKind::Fired {
                let held_since = values
                    .iter()
                    .rev()
                    .skip_while(|(s, _)| *s > t)
                    .take_while(|(_, v)| breaches(&policy, *v))
                    .last()
                    .map(|(s, _)| *s);
                prop_assert!(
                    held_since.is_some_and(|since| t - since >= hold),
                    "fired at {t} with the condition held since {held_since:?} (for = {hold} s)"
                );
            }
        }
        let fired_and_resolved: Vec<(i64, TransitionKind)> = run
            .transitions
            .iter()
            .copied()
            .filter(|(_, k)| matches!(k, TransitionKind::Fired | TransitionKind::Resolved))
            .collect();
        prop_assert_eq!(fired_and_resolved, expected);
    }

    /// A firing alert resolves only on a sample past the clear threshold (or without data);
    /// samples between clear and warning keep it firing.
    #[test]
    fn resolves_only_past_the_clear_threshold(
        policy in policies(),
        samples in samples(40.0),
    ) {
        let (run, values) = run(policy, &samples);
        for &(t, kind) in &run.transitions {
            if kind == TransitionKind::Resolved {
                let value = values.iter().find(|(s, _)| *s == t).and_then(|(_, v)| *v);
                prop_assert!(
                    value.is_none_or(|v| policy.is_clear(v)),
                    "resolved at {t} on {value:?}, clear is {}", policy.clear
                );
            }
        }
    }

    /// A value flapping around the warning threshold gives at most one notification per
    /// `min_interval`, apart from the first escalation to critical of a firing; with the
    /// flap guard set to the re-notify interval, at most one per re-notify interval.
    #[test]
    fn flapping_gives_at_most_one_notification_per_interval(
        policy in policies(),
        samples in samples(6.0),
        guard_is_renotify in any::<bool>(),
    ) {
        let policy = match (guard_is_renotify, policy.renotify) {
            (true, Some(renotify)) => Policy { min_interval: renotify, ..policy },
            _ => policy,
        };
        let (run, _) = run(policy, &samples);
        let interval = policy.min_interval.0 / S;
        let mut last: Option<i64> = None;
        let mut critical_told = false;
        for &(t, kind, severity) in &run.notices {
            let exempt = kind == NotificationKind::Escalated && !critical_told;
            if !exempt && let Some(last) = last {
                prop_assert!(
                    t - last >= interval,
                    "{kind:?} at {t}, {} s after the previous one (interval {interval} s)",
                    t - last
                );
            }
            if kind == NotificationKind::Renotified {
                let every = policy.renotify.map(|r| r.0 / S);
                prop_assert!(every.is_some_and(|every| last.is_some_and(|l| t - l >= every)));
            }
            match kind {
                NotificationKind::Resolved => critical_told = false,
                _ if severity == Some(Severity::Critical) => critical_told = true,
                _ => {}
            }
            last = Some(t);
        }
        // Notifications alternate sensibly: never two `fired` without a `resolved` between.
        let mut open = false;
        for &(_, kind, _) in &run.notices {
            match kind {
                NotificationKind::Fired => {
                    prop_assert!(!open, "fired twice");
                    open = true;
                }
                NotificationKind::Resolved => {
                    prop_assert!(open, "resolved without fired");
                    open = false;
                }
                _ => prop_assert!(open, "{kind:?} outside a firing"),
            }
        }
    }
}
