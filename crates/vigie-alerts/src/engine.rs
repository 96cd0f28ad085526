//! The alert engine of one site: its rules, one [`Lifecycle`] per rule and target, evaluated
//! against the site's views.

use std::collections::BTreeMap;

use serde::Serialize;
use vigie_core::config::ConfigErrors;
use vigie_core::{SiteProcessor, Timestamp, Window};

use crate::error::AlertError;
use crate::hours::LocalClock;
use crate::lifecycle::{
    Acknowledgement, AlertState, Lifecycle, Notice, Severity, Silence, Step, Transition,
};
use crate::read::{LiveWindows, Reader};
use crate::rule::{Comparator, Metric, Rule, RuleConfig, Scope, TargetKind, Unit};

/// What an alert is about.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Target {
    /// Site, queue, team or advisor.
    pub kind: TargetKind,
    /// Its id.
    pub id: String,
}

/// A message to send about an alert: everything a chat message or a NATS payload needs.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Notification {
    /// Alert id: `<rule>/<target kind>/<target id>`.
    pub alert: String,
    /// Site id.
    pub site: String,
    /// Teams to route to: the teams serving the queue, the advisor's team, or the team; empty
    /// for a site alert (the site's route).
    pub teams: Vec<String>,
    /// Rule id.
    pub rule: String,
    /// Rule name.
    pub rule_name: String,
    /// What the alert is about.
    pub target: Target,
    /// The metric.
    pub metric: Metric,
    /// Its window, for windowed metrics.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<Window>,
    /// The pause reason watched, for `pause_duration`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The rule's comparator.
    pub comparator: Comparator,
    /// Unit of `value` and `threshold`.
    pub unit: Unit,
    /// What happened, with the value, threshold and times.
    #[serde(flatten)]
    pub notice: Notice,
}

/// A change of an alert's state (also kept in its history).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Change {
    /// Alert id.
    pub alert: String,
    /// The change.
    #[serde(flatten)]
    pub transition: Transition,
}

/// What one evaluation (or command) produced, in alert id order.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Evaluation {
    /// State changes, for live lists of alerts (API `WatchAlerts`).
    pub changes: Vec<Change>,
    /// Notifications to deliver (team chat, NATS).
    pub notifications: Vec<Notification>,
}

impl Evaluation {
    /// Whether nothing happened.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.notifications.is_empty()
    }
}

/// An alert as listed: state, value, who acknowledged, silence, today's history.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Alert {
    /// Alert id: `<rule>/<target kind>/<target id>`.
    pub id: String,
    /// Site id.
    pub site: String,
    /// Teams it is routed to (see [`Notification::teams`]).
    pub teams: Vec<String>,
    /// Rule id.
    pub rule: String,
    /// Rule name.
    pub rule_name: String,
    /// What it is about.
    pub target: Target,
    /// The metric.
    pub metric: Metric,
    /// Its window, for windowed metrics.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<Window>,
    /// The rule's comparator.
    pub comparator: Comparator,
    /// Unit of `value` and `threshold`.
    pub unit: Unit,
    /// Where it is in its life.
    pub state: AlertState,
    /// Severity while firing.
    pub severity: Option<Severity>,
    /// The last value read.
    pub value: Option<f64>,
    /// The threshold passed while firing, else the onset threshold.
    pub threshold: f64,
    /// Since when the condition holds (or held, once resolved).
    #[serde(serialize_with = "crate::ser::opt_timestamp")]
    pub since: Option<Timestamp>,
    /// Acknowledgement of the current firing.
    pub acknowledged: Option<Acknowledgement>,
    /// Silence, while it lasts.
    pub silenced: Option<Silence>,
    /// The last notification.
    #[serde(serialize_with = "crate::ser::opt_timestamp")]
    pub last_notified: Option<Timestamp>,
    /// Today's transitions, oldest first.
    pub history: Vec<Transition>,
    /// Transitions dropped today to keep the history bounded.
    pub history_dropped: u32,
}

#[derive(Debug)]
struct AlertEntry {
    id: String,
    teams: Vec<String>,
    lifecycle: Lifecycle,
    /// The evaluation that last read a value for it.
    seen: u64,
}

#[derive(Debug)]
struct RuleSlot {
    rule: Rule,
    /// By target id.
    alerts: BTreeMap<String, AlertEntry>,
}

/// The alerts of one site. Single writer: the engine task owns it next to the site's
/// processor and calls [`AlertEngine::evaluate`] after applying events or advancing time.
#[derive(Debug)]
pub struct AlertEngine {
    site: String,
    /// By rule id.
    rules: Vec<RuleSlot>,
    windows: LiveWindows,
    day_start: Option<Timestamp>,
    generation: u64,
}

/// Compiles the rules of `site` among `rules` (paths name their index in `rules`).
fn compile(site: &str, rules: &[RuleConfig]) -> Result<Vec<Rule>, ConfigErrors> {
    let mut errors = Vec::new();
    let mut compiled: Vec<Rule> = Vec::new();
    let mut ids: BTreeMap<&str, usize> = BTreeMap::new();
    for (index, config) in rules.iter().enumerate() {
        if config.site != site {
            continue;
        }
        let path = format!("alert_rule[{index}]");
        if let Some(first) = ids.insert(&config.id, index) {
            errors.push(format!(
                "{path}.id: rule {:?} of site {site:?} is already defined at alert_rule[{first}]",
                config.id
            ));
        }
        match Rule::compile(config.clone(), &path) {
            Ok(rule) => compiled.push(rule),
            Err(problems) => errors.extend(problems.0),
        }
    }
    ConfigErrors(errors).into_result()?;
    compiled.sort_by(|a, b| a.config.id.cmp(&b.config.id));
    Ok(compiled)
}

impl AlertEngine {
    /// The engine of `site`, with the rules of `rules` that name it (the others are ignored).
    /// Every problem of those rules is reported, with its path `alert_rule[<index>]`.
    pub fn new(site: &str, rules: &[RuleConfig]) -> Result<AlertEngine, ConfigErrors> {
        let compiled = compile(site, rules)?;
        Ok(AlertEngine {
            site: site.to_owned(),
            windows: LiveWindows::choose(compiled.iter().map(|r| &r.config)),
            rules: compiled
                .into_iter()
                .map(|rule| RuleSlot {
                    rule,
                    alerts: BTreeMap::new(),
                })
                .collect(),
            day_start: None,
            generation: 0,
        })
    }

    /// The site's rules, by id.
    pub fn rules(&self) -> impl Iterator<Item = &RuleConfig> {
        self.rules.iter().map(|slot| &slot.rule.config)
    }

    /// Replaces the rules. Rules unchanged (same id, same settings) keep their alerts; the
    /// alerts of changed and removed rules end, with a `resolved` notification (cause
    /// `rule_changed`) for those the team was told were firing. Nothing changes on error.
    pub fn replace_rules(
        &mut self,
        rules: &[RuleConfig],
        now: Timestamp,
    ) -> Result<Evaluation, ConfigErrors> {
        let compiled = compile(&self.site, rules)?;
        let mut old: BTreeMap<String, RuleSlot> = std::mem::take(&mut self.rules)
            .into_iter()
            .map(|slot| (slot.rule.config.id.clone(), slot))
            .collect();
        self.windows = LiveWindows::choose(compiled.iter().map(|r| &r.config));
        self.rules = compiled
            .into_iter()
            .map(|rule| match old.remove(&rule.config.id) {
                Some(slot) if slot.rule.config == rule.config => slot,
                Some(slot) => {
                    old.insert(slot.rule.config.id.clone(), slot);
                    RuleSlot {
                        rule,
                        alerts: BTreeMap::new(),
                    }
                }
                None => RuleSlot {
                    rule,
                    alerts: BTreeMap::new(),
                },
            })
            .collect();
        let mut out = Evaluation::default();
        for slot in old.values_mut() {
            for (target, entry) in &mut slot.alerts {
                if let Some(notice) = entry.lifecycle.retire(now) {
                    out.notifications.push(notification(
                        &self.site,
                        &slot.rule.config,
                        target,
                        entry,
                        notice,
                    ));
                }
            }
        }
        Ok(out)
    }

    /// Evaluates every rule at `now` against `site` (the processor of this engine's site,
    /// advanced to `now`): reads each view it needs once, moves each alert's lifecycle, and
    /// returns the changes and notifications, in alert id order. The same inputs give the
    /// same output. Another site's processor gives nothing.
    pub fn evaluate(&mut self, site: &SiteProcessor, now: Timestamp) -> Evaluation {
        let mut out = Evaluation::default();
        if site.site().id != self.site {
            return out;
        }
        let day = site.day_of(now).start;
        if self.day_start.is_some_and(|start| start != day) {
            self.start_day();
        }
        self.day_start = Some(day);
        self.generation += 1;
        let generation = self.generation;
        let clock = LocalClock::new(now, site.site().zone().unwrap_or(chrono_tz::UTC));
        let mut reader = Reader::new(site, self.windows);
        let ctx = Context {
            site,
            site_id: &self.site,
            now,
            generation,
        };
        for slot in &mut self.rules {
            let (rule, alerts) = (&slot.rule, &mut slot.alerts);
            let config = &rule.config;
            if rule.hours.is_some_and(|hours| !hours.contains(clock)) {
                for (target, entry) in alerts.iter_mut() {
                    if !entry.lifecycle.is_idle() {
                        let step = entry.lifecycle.off_hours(now);
                        ctx.emit(config, target, entry, step, &mut out);
                    }
                }
                continue;
            }
            match &config.scope {
                Scope::Site => {
                    let value = reader.site_value(config);
                    ctx.visit(rule, alerts, ctx.site_id, value, &mut out);
                }
                Scope::Queue(queue) => {
                    let value = reader.queue_value(config, queue);
                    ctx.visit(rule, alerts, queue, value, &mut out);
                }
                Scope::Team(team) => {
                    let value = reader.team_value(config, team);
                    ctx.visit(rule, alerts, team, value, &mut out);
                }
                Scope::EveryQueue => {
                    for at in 0..reader.queue_ids().len() {
                        let queue = reader.queue_ids()[at];
                        let value = reader.queue_value(config, queue);
                        ctx.visit(rule, alerts, queue, value, &mut out);
                    }
                }
                Scope::EveryTeam => {
                    for at in 0..reader.team_ids().len() {
                        let team = reader.team_ids()[at];
                        let value = reader.team_value(config, team);
                        ctx.visit(rule, alerts, team, value, &mut out);
                    }
                }
                Scope::Advisor(advisor) => {
                    let value = reader
                        .advisor_position(advisor)
                        .and_then(|at| reader.advisor_value_at(config, at));
                    ctx.visit(rule, alerts, advisor, value, &mut out);
                }
                Scope::AllAdvisorsOfTeam(_) | Scope::EveryAdvisor => {
                    let positions: Vec<usize> = match &config.scope {
                        Scope::AllAdvisorsOfTeam(team) => reader.members_of(team).to_vec(),
                        _ => (0..reader.states().len()).collect(),
                    };
                    for at in positions {
                        let value = reader.advisor_value_at(config, at);
                        if value.is_some() {
                            let advisor = reader.states()[at].advisor.as_str();
                            ctx.visit(rule, alerts, advisor, value, &mut out);
                        }
                    }
                }
            }
            // Alerts not read this time (no value, or the target went away) see no data.
            for (target, entry) in alerts.iter_mut() {
                if entry.seen != generation && !entry.lifecycle.is_idle() {
                    let step = entry.lifecycle.observe(None, now);
                    ctx.emit(config, target, entry, step, &mut out);
                }
            }
        }
        out.changes.sort_by(|a, b| a.alert.cmp(&b.alert));
        out.notifications.sort_by(|a, b| a.alert.cmp(&b.alert));
        out
    }

    /// Acknowledges a firing alert on behalf of `by`: no re-notification until it escalates
    /// or ends. Returns the change and the `acknowledged` notification.
    pub fn acknowledge(
        &mut self,
        alert: &str,
        by: &str,
        now: Timestamp,
    ) -> Result<Evaluation, AlertError> {
        self.command(alert, |lifecycle| lifecycle.acknowledge(by, now))
    }

    /// Silences an alert until `until` on behalf of `by`: it keeps its state but notifies
    /// nothing before then. Returns the change and the `silenced` notification.
    pub fn silence(
        &mut self,
        alert: &str,
        until: Timestamp,
        by: &str,
        now: Timestamp,
    ) -> Result<Evaluation, AlertError> {
        self.command(alert, |lifecycle| lifecycle.silence(until, by, now))
    }

    fn command(
        &mut self,
        alert: &str,
        act: impl FnOnce(&mut Lifecycle) -> Result<Step, AlertError>,
    ) -> Result<Evaluation, AlertError> {
        let unknown = || AlertError::UnknownAlert(alert.to_owned());
        let (rule, rest) = alert.split_once('/').ok_or_else(unknown)?;
        let (kind, target) = rest.split_once('/').ok_or_else(unknown)?;
        let at = self
            .rules
            .binary_search_by(|slot| slot.rule.config.id.as_str().cmp(rule))
            .map_err(|_| unknown())?;
        let slot = &mut self.rules[at];
        if slot.rule.config.scope.target_kind().as_str() != kind {
            return Err(unknown());
        }
        let entry = slot.alerts.get_mut(target).ok_or_else(unknown)?;
        let step = act(&mut entry.lifecycle)?;
        let mut out = Evaluation::default();
        emit(&self.site, &slot.rule.config, target, entry, step, &mut out);
        Ok(out)
    }

    /// The alerts of the day: pending, firing, and those with transitions today, in id order.
    pub fn alerts(&self) -> Vec<Alert> {
        self.rules
            .iter()
            .flat_map(|slot| {
                slot.alerts
                    .iter()
                    .filter(|(_, entry)| {
                        entry.lifecycle.state() != AlertState::Inactive
                            || !entry.lifecycle.history().is_empty()
                    })
                    .map(|(target, entry)| self.alert_of(&slot.rule.config, target, entry))
            })
            .collect::<BTreeMap<String, Alert>>()
            .into_values()
            .collect()
    }

    /// One alert, by id.
    pub fn alert(&self, id: &str) -> Option<Alert> {
        let (rule, rest) = id.split_once('/')?;
        let (_, target) = rest.split_once('/')?;
        let slot = self.rules.iter().find(|slot| slot.rule.config.id == rule)?;
        let (target, entry) = slot.alerts.get_key_value(target)?;
        (entry.id == id).then(|| self.alert_of(&slot.rule.config, target, entry).1)
    }

    fn alert_of(&self, config: &RuleConfig, target: &str, entry: &AlertEntry) -> (String, Alert) {
        let lifecycle = &entry.lifecycle;
        let alert = Alert {
            id: entry.id.clone(),
            site: self.site.clone(),
            teams: entry.teams.clone(),
            rule: config.id.clone(),
            rule_name: config.name.clone(),
            target: Target {
                kind: config.scope.target_kind(),
                id: target.to_owned(),
            },
            metric: config.metric,
            window: config.window,
            comparator: config.comparator,
            unit: config.metric.unit(),
            state: lifecycle.state(),
            severity: lifecycle.severity(),
            value: lifecycle.value(),
            threshold: lifecycle.threshold(),
            since: lifecycle.since(),
            acknowledged: lifecycle.acknowledged().cloned(),
            silenced: lifecycle.silenced().cloned(),
            last_notified: lifecycle.last_notified(),
            history: lifecycle.history().to_vec(),
            history_dropped: lifecycle.history_dropped(),
        };
        (entry.id.clone(), alert)
    }

    /// A new site day: histories are cleared, alerts with nothing left to do are dropped.
    fn start_day(&mut self) {
        for slot in &mut self.rules {
            slot.alerts.retain(|_, entry| {
                entry.lifecycle.start_day();
                !entry.lifecycle.is_idle()
            });
        }
    }
}

/// What every alert of one evaluation shares.
struct Context<'a> {
    site: &'a SiteProcessor,
    site_id: &'a str,
    now: Timestamp,
    generation: u64,
}

impl Context<'_> {
    /// Feeds the value read for one target to its alert (created when the value calls for it).
    fn visit(
        &self,
        rule: &Rule,
        alerts: &mut BTreeMap<String, AlertEntry>,
        target: &str,
        value: Option<f64>,
        out: &mut Evaluation,
    ) {
        let Some(value) = value else {
            return;
        };
        let entry = match alerts.get_mut(target) {
            Some(entry) => entry,
            None => {
                if rule.policy.level(value).is_none() {
                    return;
                }
                let kind = rule.config.scope.target_kind();
                let entry = AlertEntry {
                    id: format!("{}/{}/{target}", rule.config.id, kind.as_str()),
                    teams: teams(self.site, kind, target),
                    lifecycle: Lifecycle::new(rule.policy),
                    seen: 0,
                };
                alerts.entry(target.to_owned()).or_insert(entry)
            }
        };
        entry.seen = self.generation;
        let step = entry.lifecycle.observe(Some(value), self.now);
        self.emit(&rule.config, target, entry, step, out);
    }

    fn emit(
        &self,
        config: &RuleConfig,
        target: &str,
        entry: &mut AlertEntry,
        step: Step,
        out: &mut Evaluation,
    ) {
        if step.notice.is_some() {
            entry.teams = teams(self.site, config.scope.target_kind(), target);
        }
        emit(self.site_id, config, target, entry, step, out);
    }
}

fn emit(
    site: &str,
    config: &RuleConfig,
    target: &str,
    entry: &AlertEntry,
    step: Step,
    out: &mut Evaluation,
) {
    if let Some(transition) = step.transition {
        out.changes.push(Change {
            alert: entry.id.clone(),
            transition,
        });
    }
    if let Some(notice) = step.notice {
        out.notifications
            .push(notification(site, config, target, entry, notice));
    }
}

fn notification(
    site: &str,
    config: &RuleConfig,
    target: &str,
    entry: &AlertEntry,
    notice: Notice,
) -> Notification {
    Notification {
        alert: entry.id.clone(),
        site: site.to_owned(),
        teams: entry.teams.clone(),
        rule: config.id.clone(),
        rule_name: config.name.clone(),
        target: Target {
            kind: config.scope.target_kind(),
            id: target.to_owned(),
        },
        metric: config.metric,
        window: config.window,
        reason: config.reason.clone(),
        comparator: config.comparator,
        unit: config.metric.unit(),
        notice,
    }
}

/// The teams an alert about this target is routed to.
fn teams(site: &SiteProcessor, kind: TargetKind, target: &str) -> Vec<String> {
    match kind {
        TargetKind::Site => Vec::new(),
        TargetKind::Queue => site
            .teams_serving(target)
            .into_iter()
            .map(str::to_owned)
            .collect(),
        TargetKind::Team => vec![target.to_owned()],
        TargetKind::Advisor => site
            .advisor_team(target)
            .map(str::to_owned)
            .into_iter()
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::{Cause, NotificationKind, TransitionKind};
    use crate::rule::Threshold;
    use crate::testkit::{Understaffed, at, morning};
    use vigie_core::config::HumanDuration;

    fn rule(id: &str, scope: Scope, metric: Metric, warning: f64) -> RuleConfig {
        RuleConfig {
            site: "s".into(),
            id: id.into(),
            name: format!("Rule {id}"),
            scope,
            metric,
            window: metric.windowed().then_some(Window::Last15m),
            reason: None,
            comparator: Comparator::Above,
            warning: Some(Threshold::Number(warning)),
            critical: None,
            clear: None,
            hold_for: HumanDuration::secs(0),
            renotify: None,
            min_interval: HumanDuration::secs(300),
            active_hours: None,
            active_days: None,
            min_volume: 0,
        }
    }

    fn kinds(out: &Evaluation) -> Vec<(&str, NotificationKind)> {
        out.notifications
            .iter()
            .map(|n| (n.alert.as_str(), n.notice.kind))
            .collect()
    }

    #[test]
    fn a_notification_carries_what_a_message_needs() {
        let feed = morning("Europe/Paris");
        let mut pause = rule("pause", Scope::EveryAdvisor, Metric::PauseDuration, 120.0);
        pause.reason = Some("break".into());
        let mut engine = AlertEngine::new("s", &[pause]).unwrap();
        let out = engine.evaluate(&feed.site, at("09:05:00"));
        assert_eq!(out.notifications.len(), 1);
        let n = &out.notifications[0];
        assert_eq!(n.alert, "pause/advisor/a2");
        assert_eq!(n.site, "s");
        assert_eq!(n.teams, ["t"]);
        assert_eq!(n.rule, "pause");
        assert_eq!(n.rule_name, "Rule pause");
        assert_eq!(
            n.target,
            Target {
                kind: TargetKind::Advisor,
                id: "a2".into()
            }
        );
        assert_eq!(n.metric, Metric::PauseDuration);
        assert_eq!(n.reason.as_deref(), Some("break"));
        assert_eq!(n.comparator, Comparator::Above);
        assert_eq!(n.unit, Unit::Seconds);
        assert_eq!(n.notice.kind, NotificationKind::Fired);
        assert_eq!(n.notice.severity, Some(Severity::Warning));
        assert_eq!(n.notice.value, Some(180.0));
        assert_eq!(n.notice.threshold, Some(120.0));
        assert_eq!(n.notice.since, Some(at("09:05:00")));
        assert_eq!(n.notice.at, at("09:05:00"));
        let json = serde_json::to_value(n).unwrap();
        assert_eq!(json["kind"], "fired");
        assert_eq!(json["target"]["kind"], "advisor");
        assert_eq!(json["at"], "2026-03-02T09:05:00.000Z");
        assert_eq!(out.changes.len(), 1);
        assert_eq!(out.changes[0].transition.kind, TransitionKind::Fired);

        // Nothing new: nothing to say.
        assert!(engine.evaluate(&feed.site, at("09:05:00")).is_empty());
        let alerts = engine.alerts();
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].state, AlertState::Firing);
        assert_eq!(alerts[0].history.len(), 1);
        assert_eq!(engine.alert("pause/advisor/a2"), Some(alerts[0].clone()));
        assert_eq!(engine.alert("pause/queue/a2"), None);
    }

    #[test]
    fn queue_alerts_route_to_the_serving_teams_in_alert_id_order() {
        let mut feed = morning("UTC");
        feed.contact(
            "09:05:00",
            "queued",
            "c9",
            r#","queue":"other","channel":"voice""#,
        );
        feed.advance("09:06:00");
        let mut engine = AlertEngine::new(
            "s",
            &[
                rule("wait", Scope::EveryQueue, Metric::LongestWait, 30.0),
                rule("busy", Scope::EveryTeam, Metric::InQueue, 0.0),
                rule(
                    "acw",
                    Scope::AllAdvisorsOfTeam("t".into()),
                    Metric::AcwDuration,
                    60.0,
                ),
                rule("sl", Scope::Site, Metric::ServiceLevel, 0.5),
            ],
        )
        .unwrap();
        let out = engine.evaluate(&feed.site, at("09:06:00"));
        let routed: Vec<(&str, &[String])> = out
            .notifications
            .iter()
            .map(|n| (n.alert.as_str(), n.teams.as_slice()))
            .collect();
        let t = ["t".to_owned()];
        assert_eq!(
            routed,
            [
                ("acw/advisor/a1", &t[..]),
                ("busy/team/t", &t[..]),
                ("sl/site/s", &[][..]),
                ("wait/queue/other", &[][..]),
                ("wait/queue/q", &t[..]),
            ]
        );
    }

    #[test]
    fn active_hours_follow_the_site_time_zone() {
        let mut wait = rule("wait", Scope::Queue("q".into()), Metric::LongestWait, 30.0);
        wait.active_hours = Some("10:00-10:06".into());
        // 09:05 UTC is 10:05 in Paris: on; 10:06 is off hours.
        let mut paris = morning("Europe/Paris");
        let mut engine = AlertEngine::new("s", std::slice::from_ref(&wait)).unwrap();
        let out = engine.evaluate(&paris.site, at("09:05:00"));
        assert_eq!(kinds(&out), [("wait/queue/q", NotificationKind::Fired)]);
        paris.advance("09:06:00");
        let out = engine.evaluate(&paris.site, at("09:06:00"));
        assert_eq!(out.changes[0].transition.kind, TransitionKind::Resolved);
        assert_eq!(
            out.changes[0].transition.cause,
            Some(Cause::OutsideActiveHours)
        );
        // The resolution is told when the flap guard allows it, saying why.
        paris.advance("09:10:00");
        let out = engine.evaluate(&paris.site, at("09:10:00"));
        assert_eq!(out.notifications[0].notice.kind, NotificationKind::Resolved);
        assert_eq!(
            out.notifications[0].notice.cause,
            Some(Cause::OutsideActiveHours)
        );
        assert_eq!(out.notifications[0].notice.changed_at, at("09:06:00"));

        // The same rule in a UTC site is off hours at 09:05.
        let utc = morning("UTC");
        let mut engine = AlertEngine::new("s", &[wait]).unwrap();
        assert!(engine.evaluate(&utc.site, at("09:05:00")).is_empty());
        assert!(engine.alerts().is_empty());
    }

    #[test]
    fn escalates_and_de_escalates_as_the_value_moves() {
        let mut wait = rule("wait", Scope::Queue("q".into()), Metric::LongestWait, 30.0);
        wait.critical = Some(Threshold::Duration(HumanDuration::secs(90)));
        let mut feed = morning("UTC");
        let mut engine = AlertEngine::new("s", &[wait]).unwrap();
        let out = engine.evaluate(&feed.site, at("09:05:00"));
        assert_eq!(
            out.notifications[0].notice.severity,
            Some(Severity::Warning)
        );
        let now = feed.advance("09:05:31");
        let out = engine.evaluate(&feed.site, now);
        let escalated = &out.notifications[0].notice;
        assert_eq!(escalated.kind, NotificationKind::Escalated);
        assert_eq!(escalated.severity, Some(Severity::Critical));
        assert_eq!(escalated.threshold, Some(90.0));
        assert_eq!(escalated.value, Some(91.0));
        // c6 joins, c3 is answered: the oldest caller has waited 40 s.
        feed.queued("09:05:40", "c6")
            .with_advisor("09:06:20", "answered", "c3", "a4");
        let now = feed.advance("09:06:20");
        let out = engine.evaluate(&feed.site, now);
        assert_eq!(out.changes[0].transition.kind, TransitionKind::DeEscalated);
        assert!(out.notifications.is_empty(), "within the flap guard");
        // c6 gives up, c7 waits 61 s: still warning when the flap guard ends.
        feed.queued("09:09:30", "c7")
            .contact("09:10:00", "abandoned", "c6", "");
        let now = feed.advance("09:10:31");
        let out = engine.evaluate(&feed.site, now);
        assert!(out.changes.is_empty());
        assert_eq!(
            kinds(&out),
            [("wait/queue/q", NotificationKind::DeEscalated)]
        );
        assert_eq!(out.notifications[0].notice.changed_at, at("09:06:20"));
        assert_eq!(out.notifications[0].notice.value, Some(61.0));
        let history: Vec<TransitionKind> =
            engine.alerts()[0].history.iter().map(|t| t.kind).collect();
        assert_eq!(
            history,
            [
                TransitionKind::Fired,
                TransitionKind::Escalated,
                TransitionKind::DeEscalated
            ]
        );
    }

    #[test]
    fn acknowledge_and_silence_by_alert_id() {
        let mut wait = rule("wait", Scope::Queue("q".into()), Metric::LongestWait, 30.0);
        wait.renotify = Some(HumanDuration::secs(300));
        let mut feed = morning("UTC");
        let mut engine = AlertEngine::new("s", &[wait]).unwrap();
        engine.evaluate(&feed.site, at("09:05:00"));
        assert_eq!(
            engine.acknowledge("wait/queue/nope", "lea", at("09:05:01")),
            Err(AlertError::UnknownAlert("wait/queue/nope".into()))
        );
        assert!(matches!(
            engine.acknowledge("garbage", "lea", at("09:05:01")),
            Err(AlertError::UnknownAlert(_))
        ));
        let out = engine
            .acknowledge("wait/queue/q", "lea", at("09:05:01"))
            .unwrap();
        assert_eq!(
            kinds(&out),
            [("wait/queue/q", NotificationKind::Acknowledged)]
        );
        assert_eq!(out.notifications[0].teams, ["t"]);
        assert_eq!(out.notifications[0].notice.by.as_deref(), Some("lea"));
        let alert = engine.alert("wait/queue/q").unwrap();
        assert_eq!(
            alert.acknowledged,
            Some(Acknowledgement {
                by: "lea".into(),
                at: at("09:05:01")
            })
        );
        // Acknowledged: no re-notification after 5 minutes.
        let now = feed.advance("09:10:10");
        assert!(engine.evaluate(&feed.site, now).notifications.is_empty());

        let out = engine
            .silence("wait/queue/q", at("10:00:00"), "max", now)
            .unwrap();
        assert_eq!(kinds(&out), [("wait/queue/q", NotificationKind::Silenced)]);
        assert_eq!(out.notifications[0].notice.until, Some(at("10:00:00")));
        assert_eq!(
            engine.alert("wait/queue/q").unwrap().silenced.unwrap().by,
            "max"
        );
        // c3 answered: resolved, but silenced.
        feed.with_advisor("09:11:00", "answered", "c3", "a4");
        let now = feed.advance("09:11:00");
        let out = engine.evaluate(&feed.site, now);
        assert_eq!(out.changes[0].transition.kind, TransitionKind::Resolved);
        assert!(out.notifications.is_empty());
        let now = feed.advance("10:00:00");
        let out = engine.evaluate(&feed.site, now);
        assert_eq!(kinds(&out), [("wait/queue/q", NotificationKind::Resolved)]);
        let alert = engine.alert("wait/queue/q").unwrap();
        assert_eq!(alert.state, AlertState::Resolved);
        assert!(alert.acknowledged.is_none() && alert.silenced.is_none());
        assert_eq!(
            engine.acknowledge("wait/queue/q", "lea", now),
            Err(AlertError::NotFiring)
        );
    }

    #[test]
    fn replacing_rules_keeps_the_state_of_unchanged_ones() {
        let feed = morning("UTC");
        let wait = rule("wait", Scope::Queue("q".into()), Metric::LongestWait, 30.0);
        let busy = rule("busy", Scope::Queue("q".into()), Metric::InQueue, 0.0);
        let mut engine = AlertEngine::new("s", &[wait.clone(), busy.clone()]).unwrap();
        assert_eq!(
            engine
                .evaluate(&feed.site, at("09:05:00"))
                .notifications
                .len(),
            2
        );

        let mut busy_changed = busy.clone();
        busy_changed.warning = Some(Threshold::Number(5.0));
        let mut bad = wait.clone();
        bad.warning = None;
        let errors = engine
            .replace_rules(&[bad, busy_changed.clone()], at("09:05:01"))
            .unwrap_err();
        assert!(
            errors.0[0].starts_with("alert_rule[0]: needs a warning"),
            "{errors}"
        );
        assert_eq!(engine.alerts().len(), 2, "nothing changed on error");

        let out = engine
            .replace_rules(&[busy_changed, wait.clone()], at("09:05:01"))
            .unwrap();
        assert_eq!(kinds(&out), [("busy/queue/q", NotificationKind::Resolved)]);
        assert_eq!(out.notifications[0].notice.cause, Some(Cause::RuleChanged));
        let alerts = engine.alerts();
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].id, "wait/queue/q");
        assert_eq!(alerts[0].state, AlertState::Firing);
        assert!(
            engine.evaluate(&feed.site, at("09:05:01")).is_empty(),
            "no re-fire"
        );
        assert_eq!(engine.rules().count(), 2);

        // Rules of other sites are ignored; duplicates within the site are refused.
        let mut elsewhere = wait.clone();
        elsewhere.site = "lyon".into();
        elsewhere.warning = None;
        assert!(AlertEngine::new("s", &[elsewhere, wait.clone()]).is_ok());
        let errors = AlertEngine::new("s", &[wait.clone(), wait]).unwrap_err();
        assert!(
            errors.0[0].contains("already defined at alert_rule[0]"),
            "{errors}"
        );
    }

    #[test]
    fn the_history_is_kept_for_the_site_day() {
        let mut feed = morning("UTC");
        let wait = rule("wait", Scope::Queue("q".into()), Metric::LongestWait, 30.0);
        let mut engine = AlertEngine::new("s", &[wait]).unwrap();
        engine.evaluate(&feed.site, at("09:05:00"));
        feed.with_advisor("09:06:00", "answered", "c3", "a4");
        let now = feed.advance("23:59:00");
        engine.evaluate(&feed.site, now);
        assert_eq!(engine.alerts()[0].history.len(), 2, "fired, resolved");
        let tomorrow = Timestamp::parse_rfc3339("2026-03-03T00:00:10Z").unwrap();
        feed.site.advance_to(tomorrow);
        assert!(engine.evaluate(&feed.site, tomorrow).is_empty());
        assert!(
            engine.alerts().is_empty(),
            "yesterday's resolved alert is gone"
        );
    }

    /// "Understaffed by 2 or more for 10 minutes" on every queue and every team: the gap is a
    /// whole number and `below` is strict, so the threshold is -1.
    #[test]
    fn understaffed_by_2_or_more_fires_after_10_minutes() {
        let mut understaffed = Understaffed::new();
        let mut queues = rule("understaffed", Scope::EveryQueue, Metric::StaffingGap, -1.0);
        queues.comparator = Comparator::Below;
        queues.hold_for = HumanDuration::secs(600);
        let mut teams = queues.clone();
        teams.id = "understaffed-team".into();
        teams.scope = Scope::EveryTeam;
        let mut engine = AlertEngine::new("s", &[queues, teams]).unwrap();

        // Every 30 s from 08:00: the gap of q and t is 0, then -1 from 08:05:30 (not below -1),
        // then -2 from 08:10:30 (pending), which holds until it fires 10 minutes later. Queue
        // `other` has no traffic: no estimate, no alert.
        let mut changes = Vec::new();
        let mut notifications = Vec::new();
        for step in 0..=43 {
            let secs = step * 30;
            let now = understaffed.until(&format!("08:{:02}:{:02}", secs / 60, secs % 60));
            let out = engine.evaluate(&understaffed.feed.site, now);
            changes.extend(
                out.changes
                    .into_iter()
                    .map(|c| (c.alert, c.transition.kind, c.transition.at)),
            );
            notifications.extend(out.notifications);
        }
        let (queue, team) = ("understaffed/queue/q", "understaffed-team/team/t");
        let expected = [
            (team, TransitionKind::Pending, at("08:10:30")),
            (queue, TransitionKind::Pending, at("08:10:30")),
            (team, TransitionKind::Fired, at("08:20:30")),
            (queue, TransitionKind::Fired, at("08:20:30")),
        ]
        .map(|(alert, kind, at)| (alert.to_owned(), kind, at));
        assert_eq!(changes, expected);
        assert_eq!(notifications.len(), 2);
        for (n, alert) in notifications.iter().zip([team, queue]) {
            assert_eq!(n.alert, alert);
            assert_eq!(n.teams, ["t"]);
            assert_eq!((n.metric, n.unit), (Metric::StaffingGap, Unit::Count));
            assert_eq!(n.notice.kind, NotificationKind::Fired);
            assert_eq!(n.notice.severity, Some(Severity::Warning));
            assert_eq!(
                (n.notice.value, n.notice.threshold),
                (Some(-2.0), Some(-1.0))
            );
            assert_eq!(n.notice.since, Some(at("08:10:30")));
        }

        // a3 is back from break: 3 staffed for 4 required, a gap of -1, no longer below -1.
        understaffed.until("08:22:00");
        understaffed.feed.advisor(
            "08:22:00",
            "a3",
            r#""type":"advisor.state","state":"available""#,
        );
        let out = engine.evaluate(&understaffed.feed.site, at("08:22:00"));
        let resolved: Vec<_> = out
            .changes
            .iter()
            .map(|c| (c.alert.as_str(), c.transition.kind, c.transition.cause))
            .collect();
        assert_eq!(
            resolved,
            [
                (team, TransitionKind::Resolved, Some(Cause::Value)),
                (queue, TransitionKind::Resolved, Some(Cause::Value)),
            ]
        );
        assert_eq!(out.changes[0].transition.value, Some(-1.0));
        assert!(out.notifications.is_empty(), "within the flap guard");
    }
}
