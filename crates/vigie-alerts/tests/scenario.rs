//! A simulated day with a default-like rule pack: the engine is evaluated every simulated 10 s,
//! and the alerts it fires, escalates and resolves are compared with what this test computes
//! on its own, from the views sampled at the same instants.

use std::collections::BTreeMap;

use chrono::Timelike;
use vigie_alerts::{
    AlertEngine, Comparator, Metric, NotificationKind, RuleConfig, Severity, TransitionKind,
};
use vigie_core::time::Millis;
use vigie_core::{ProcessingConfig, SiteProcessor, Timestamp, Window};
use vigie_sim::{SimConfig, Simulation};

const STEP_MS: i64 = 10_000;

const RULES: &str = r#"
# Service level below the queue's target over 30 minutes, while the centre is staffed.
[[alert_rule]]
site = "paris"
id = "service-level"
name = "Service level below target"
scope = "every_queue"
metric = "service_level_gap"
window = "30m"
comparator = "below"
warning = 0.0
critical = -0.15
for = "5m"
min_volume = 10
active_hours = "09:00-19:00"

[[alert_rule]]
site = "paris"
id = "longest-wait"
name = "Caller waiting too long"
scope = "every_queue"
metric = "longest_wait"
comparator = "above"
warning = "60s"
critical = "3m"
renotify = "10m"

[[alert_rule]]
site = "paris"
id = "abandonment"
name = "Abandonment above 10%"
scope = "every_queue"
metric = "abandon_rate"
window = "30m"
comparator = "above"
warning = "10%"
critical = "20%"
clear = "8%"
for = "2m"
min_volume = 10

[[alert_rule]]
site = "paris"
id = "pause"
name = "Pause too long"
scope = "every_advisor"
metric = "pause_duration"
comparator = "above"
warning = "15m"

[[alert_rule]]
site = "paris"
id = "acw"
name = "After-contact work too long"
scope = "every_advisor"
metric = "acw_duration"
comparator = "above"
warning = "3m"
"#;

#[derive(serde::Deserialize)]
struct File {
    alert_rule: Vec<RuleConfig>,
}

/// What this test reads itself for one rule and target at one instant.
fn expected_value(site: &SiteProcessor, rule: &RuleConfig, target: &str) -> Option<f64> {
    match rule.metric {
        Metric::ServiceLevelGap | Metric::AbandonRate | Metric::LongestWait => {
            let view = site.queue_view(target, rule.window.unwrap_or(Window::Last30m))?;
            let flow = &view.indicators.flow;
            let enough = flow.offered >= rule.min_volume;
            match rule.metric {
                Metric::ServiceLevelGap if enough => {
                    flow.service_level.map(|sl| sl - view.sl_target)
                }
                Metric::AbandonRate if enough => flow.abandon_rate,
                Metric::LongestWait => Some(view.indicators.live.longest_wait.unwrap_or(0.0)),
                _ => None,
            }
        }
        Metric::PauseDuration | Metric::AcwDuration => {
            let view = site.advisor_view(target, Window::Today)?;
            let state = if rule.metric == Metric::PauseDuration {
                "pause"
            } else {
                "acw"
            };
            (view.state == state)
                .then_some(view.time_in_state)
                .flatten()
        }
        other => panic!("the scenario does not use {other}"),
    }
}

/// A deliberately plain model of one alert: a run of samples over the onset threshold, the
/// `for` duration, then firing until a sample past `clear` (or without a value).
#[derive(Default)]
struct Model {
    run_start: Option<i64>,
    firing: Option<Severity>,
}

fn passes(comparator: Comparator, value: f64, threshold: Option<f64>) -> bool {
    threshold.is_some_and(|t| match comparator {
        Comparator::Above => value > t,
        Comparator::Below => value < t,
    })
}

impl Model {
    fn sample(&mut self, rule: &RuleConfig, value: Option<f64>, t: i64) -> Option<TransitionKind> {
        let warning = rule.warning.map(|w| w.value());
        let critical = rule.critical.map(|c| c.value());
        let clear = rule.clear.map(|c| c.value()).or(warning).or(critical);
        let level = |v: f64| {
            if passes(rule.comparator, v, critical) {
                Some(Severity::Critical)
            } else if passes(rule.comparator, v, warning) {
                Some(Severity::Warning)
            } else {
                None
            }
        };
        match self.firing {
            Some(severity) => match value {
                Some(v) if passes(rule.comparator, v, clear) => match (severity, level(v)) {
                    (Severity::Warning, Some(Severity::Critical)) => {
                        self.firing = Some(Severity::Critical);
                        Some(TransitionKind::Escalated)
                    }
                    (Severity::Critical, Some(Severity::Warning) | None) if warning.is_some() => {
                        self.firing = Some(Severity::Warning);
                        Some(TransitionKind::DeEscalated)
                    }
                    _ => None,
                },
                _ => {
                    self.firing = None;
                    self.run_start = None;
                    Some(TransitionKind::Resolved)
                }
            },
            None => match value.and_then(level) {
                Some(severity) => {
                    let start = *self.run_start.get_or_insert(t);
                    (t - start >= rule.hold_for.0.as_millis() as i64).then(|| {
                        self.firing = Some(severity);
                        TransitionKind::Fired
                    })
                }
                None => {
                    self.run_start = None;
                    None
                }
            },
        }
    }
}

#[test]
fn a_simulated_day_fires_the_expected_alerts_at_the_expected_times() {
    let mut config = SimConfig {
        advisors: 24,
        queues: 3,
        target_occupancy: 0.88,
        ..SimConfig::default()
    };
    // A campaign with long wrap-ups, so that some pass 3 minutes.
    config.channels.voice.acw_mean = Millis::from_secs(80);
    let simulation = Simulation::new(&config).expect("a valid simulation");
    let zone = config.zone().expect("a valid zone");
    let mut site = SiteProcessor::new(simulation.site_config(), &ProcessingConfig::default());
    let rules = toml::from_str::<File>(RULES)
        .expect("valid TOML")
        .alert_rule;
    let mut engine = AlertEngine::new("paris", &rules).expect("valid rules");

    let mut events = simulation.peekable();
    let first = events.peek().expect("a day has events").time;
    let mut t = Timestamp((first.0 / STEP_MS + 1) * STEP_MS);
    let mut models: BTreeMap<String, Model> = BTreeMap::new();
    // (alert, second of the day, kind), from the engine and from the model.
    let mut actual = Vec::new();
    let mut expected = Vec::new();
    let mut notified: BTreeMap<String, Vec<(i64, NotificationKind, Option<Severity>)>> =
        BTreeMap::new();
    let mut samples = 0;
    loop {
        while let Some(event) = events.next_if(|e| e.time <= t) {
            site.apply(&event);
        }
        site.advance_to(t);
        let out = engine.evaluate(&site, t);
        for change in out.changes {
            if !matches!(
                change.transition.kind,
                TransitionKind::Pending | TransitionKind::Reset
            ) {
                actual.push((change.alert, t.0, change.transition.kind));
            }
        }
        for n in out.notifications {
            notified
                .entry(n.alert)
                .or_default()
                .push((t.0, n.notice.kind, n.notice.severity));
        }

        // The same instant, read by this test.
        let local_hour = t.to_utc().with_timezone(&zone).hour();
        let queues: Vec<String> = site.queue_ids().into_iter().map(String::from).collect();
        let advisors: Vec<String> = site
            .advisor_states()
            .into_iter()
            .map(|a| a.advisor)
            .collect();
        for rule in &rules {
            let (kind, targets) = match rule.metric {
                Metric::PauseDuration | Metric::AcwDuration => ("advisor", &advisors),
                _ => ("queue", &queues),
            };
            for target in targets {
                let id = format!("{}/{kind}/{target}", rule.id);
                let off_hours = rule.active_hours.is_some() && !(9..19).contains(&local_hour);
                let value = if off_hours {
                    None
                } else {
                    expected_value(&site, rule, target)
                };
                let model = models.entry(id.clone()).or_default();
                if let Some(kind) = model.sample(rule, value, t.0) {
                    expected.push((id, t.0, kind));
                }
            }
        }
        samples += 1;
        if events.peek().is_none() {
            break;
        }
        t = Timestamp(t.0 + STEP_MS);
    }
    assert!(samples > 4000, "a whole day, every 10 s: {samples} samples");
    actual.sort();
    expected.sort();
    let show = |list: &[(String, i64, TransitionKind)]| {
        list.iter()
            .map(|(id, t, kind)| format!("{} {id} {kind:?}", Timestamp(*t)))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(
        actual == expected,
        "engine:\n{}\n\nexpected:\n{}",
        show(&actual),
        show(&expected)
    );

    // Every rule of the pack fired at least once, with both severities where it has two.
    for rule in &rules {
        let fired = expected
            .iter()
            .filter(|(id, _, kind)| {
                id.starts_with(&format!("{}/", rule.id)) && *kind == TransitionKind::Fired
            })
            .count();
        assert!(fired > 0, "{} never fired", rule.id);
        println!("{}: fired {fired} times", rule.id);
    }

    // Notifications: the first one of each alert is its first firing, told at once; then one
    // per min_interval at most, apart from the first escalation of a firing.
    for (alert, notices) in &notified {
        let rule = rules
            .iter()
            .find(|r| alert.starts_with(&format!("{}/", r.id)))
            .expect("a rule of the pack");
        let first_fired = expected
            .iter()
            .find(|(id, _, kind)| id == alert && *kind == TransitionKind::Fired)
            .map(|(_, t, _)| *t);
        assert_eq!(Some(notices[0].0), first_fired, "{alert}");
        assert_eq!(notices[0].1, NotificationKind::Fired, "{alert}");
        let interval = rule.min_interval.0.as_millis() as i64;
        let mut critical_told = false;
        for pair in notices.windows(2) {
            let ((before, _, _), (after, kind, severity)) = (pair[0], pair[1]);
            let exempt = kind == NotificationKind::Escalated && !critical_told;
            assert!(
                exempt || after - before >= interval,
                "{alert}: {kind:?} {} ms after the previous notification",
                after - before
            );
            match kind {
                NotificationKind::Resolved => critical_told = false,
                _ if severity == Some(Severity::Critical) => critical_told = true,
                _ => {}
            }
        }
    }
    let escalations = actual
        .iter()
        .filter(|(_, _, kind)| *kind == TransitionKind::Escalated)
        .count();
    assert!(escalations > 0, "the day has critical moments");
}
