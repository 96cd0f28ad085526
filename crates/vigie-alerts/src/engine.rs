//! The alert engine of one site: its rules, one [`Lifecycle`] per rule and target, evaluated
//! against the site's views.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasherDefault;

use serde::Serialize;
use vigie_core::config::ConfigErrors;
use vigie_core::{SiteProcessor, Timestamp, Window};

use crate::error::AlertError;
use crate::hours::LocalClock;
use crate::lifecycle::{
    Acknowledgement, AlertState, Lifecycle, Notice, Severity, Silence, Step, Transition,
};
use crate::read::{Figures, Read, Room, Wanted};
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
}

/// A rule's alerts: kept in a list (visiting them all, as every evaluation does, reads it in
/// order), found by target id through a hash map (looked up for every target with a value, an
/// ordered map would compare the id with a dozen others). The hasher is fixed, so that the
/// same alerts are found the same way on every run; what the engine returns is sorted by alert
/// id anyway.
#[derive(Debug, Default)]
struct RuleAlerts {
    targets: Vec<String>,
    entries: Vec<AlertEntry>,
    /// Beside each alert, kept apart from it (an evaluation checks them for every alert, and
    /// most alerts of a day are over and see no value): the evaluation that last read a value
    /// for it, and whether it is idle ([`Lifecycle::is_idle`]), which any change of an alert
    /// updates (see [`RuleAlerts::change`]).
    seen: Vec<u64>,
    idle: Vec<bool>,
    index: HashMap<String, u32, BuildHasherDefault<DefaultHasher>>,
}

impl RuleAlerts {
    fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Where the alert of `target` is in the list.
    fn find(&self, target: &str) -> Option<u32> {
        self.index.get(target).copied()
    }

    fn get(&self, target: &str) -> Option<(&str, &AlertEntry)> {
        let at = self.find(target)? as usize;
        Some((&self.targets[at], &self.entries[at]))
    }

    fn len(&self) -> u32 {
        u32::try_from(self.entries.len()).expect("fewer than 2^32 alerts per rule")
    }

    /// Changes the alert at `at` (in the list) through `change`, which gets its target too.
    fn change<R>(&mut self, at: u32, change: impl FnOnce(&str, &mut AlertEntry) -> R) -> R {
        let at = at as usize;
        let result = change(&self.targets[at], &mut self.entries[at]);
        self.idle[at] = self.entries[at].lifecycle.is_idle();
        result
    }

    fn insert(&mut self, target: &str, entry: AlertEntry) -> u32 {
        let at = self.len();
        self.idle.push(entry.lifecycle.is_idle());
        self.seen.push(0);
        self.targets.push(target.to_owned());
        self.entries.push(entry);
        self.index.insert(target.to_owned(), at);
        at
    }

    fn iter(&self) -> impl Iterator<Item = (&str, &AlertEntry)> {
        self.targets.iter().map(String::as_str).zip(&self.entries)
    }

    fn iter_mut(&mut self) -> impl Iterator<Item = (&str, &mut AlertEntry)> {
        self.targets
            .iter()
            .map(String::as_str)
            .zip(&mut self.entries)
    }

    /// Keeps the alerts `keep` accepts (positions in the list change).
    fn retain(&mut self, mut keep: impl FnMut(&mut AlertEntry) -> bool) {
        let kept: Vec<(String, AlertEntry)> = std::mem::take(&mut self.targets)
            .into_iter()
            .zip(std::mem::take(&mut self.entries))
            .filter_map(|(target, mut entry)| keep(&mut entry).then_some((target, entry)))
            .collect();
        self.index.clear();
        self.seen.clear();
        self.idle.clear();
        for (target, entry) in kept {
            self.insert(&target, entry);
        }
    }
}

/// No alert, in [`RuleSlot::alerting`].
const NO_ALERT: u32 = u32::MAX;

#[derive(Debug)]
struct RuleSlot {
    rule: Rule,
    alerts: RuleAlerts,
    /// For a rule on one named target: where the reader found it, in the list of targets of
    /// that version (see [`Known`]); `None` inside: not found.
    position: Option<(u64, Option<usize>)>,
    /// For a rule on every queue, team or advisor: the alert of each target (where it is in
    /// `alerts`, or [`NO_ALERT`]), by position in the list of targets of that version. A target
    /// without alert needs one only when its value passes a threshold: most are never looked
    /// up.
    alerting: Option<(u64, Vec<u32>)>,
    /// For a rule on the advisors of a team: the team's advisors when last read (positions in
    /// the list of advisors of that version), and the alert of each.
    members: Option<(u64, Vec<usize>, Vec<u32>)>,
}

impl RuleSlot {
    fn new(rule: Rule) -> RuleSlot {
        RuleSlot {
            rule,
            alerts: RuleAlerts::default(),
            position: None,
            alerting: None,
            members: None,
        }
    }
}

/// The kinds of targets a reader lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Listed {
    Queue,
    Team,
    Advisor,
}

impl Listed {
    fn count(self, reader: &mut impl Read) -> usize {
        match self {
            Listed::Queue => reader.queue_count(),
            Listed::Team => reader.team_count(),
            Listed::Advisor => reader.advisor_count(),
        }
    }

    fn id(self, reader: &mut impl Read, at: usize) -> &str {
        match self {
            Listed::Queue => reader.queue_id(at),
            Listed::Team => reader.team_id(at),
            Listed::Advisor => reader.advisor_id(at),
        }
    }

    fn position(self, reader: &mut impl Read, id: &str) -> Option<usize> {
        match self {
            Listed::Queue => reader.queue_position(id),
            Listed::Team => reader.team_position(id),
            Listed::Advisor => reader.advisor_position(id),
        }
    }

    fn value(self, reader: &mut impl Read, rule: &RuleConfig, at: usize) -> Option<f64> {
        match self {
            Listed::Queue => reader.queue_value(rule, at),
            Listed::Team => reader.team_value(rule, at),
            Listed::Advisor => reader.advisor_value(rule, at),
        }
    }

    fn index(self) -> usize {
        match self {
            Listed::Queue => 0,
            Listed::Team => 1,
            Listed::Advisor => 2,
        }
    }
}

/// A list of targets the last evaluations read. Rules keep where their targets were in it:
/// while the list stays the same (most evaluations), those positions are still right, and
/// comparing the list once per evaluation costs less than finding thousands of rules' targets
/// again.
#[derive(Debug, Default)]
struct Known {
    ids: Vec<String>,
    /// Changes when the list does.
    version: u64,
    /// The evaluation that last compared it with the reader's.
    compared: u64,
}

impl Known {
    /// The version of the reader's list, compared with the known one once per evaluation.
    fn version(&mut self, kind: Listed, reader: &mut impl Read, generation: u64) -> u64 {
        if self.compared != generation {
            self.compared = generation;
            let count = kind.count(reader);
            let same =
                count == self.ids.len() && (0..count).all(|at| kind.id(reader, at) == self.ids[at]);
            if !same {
                self.ids = (0..count)
                    .map(|at| kind.id(reader, at).to_owned())
                    .collect();
                self.version += 1;
            }
        }
        self.version
    }
}

/// Where a rule's named target is in the reader's list of its kind: where it was found the
/// last time while the list is the same, else searched (and kept in `position`).
fn locate(
    position: &mut Option<(u64, Option<usize>)>,
    known: &mut Known,
    kind: Listed,
    target: &str,
    reader: &mut impl Read,
    generation: u64,
) -> Option<usize> {
    let version = known.version(kind, reader, generation);
    let at = match *position {
        Some((found, at)) if found == version => at,
        _ => kind.position(reader, target),
    };
    *position = Some((version, at));
    at
}

/// The alerts of one site. Single writer: the engine task owns it next to the site's
/// processor and calls [`AlertEngine::evaluate`] after applying events or advancing time.
#[derive(Debug)]
pub struct AlertEngine {
    site: String,
    /// By rule id.
    rules: Vec<RuleSlot>,
    wanted: Wanted,
    /// What evaluations keep from one to the next (see [`Room`]).
    room: Room,
    /// The lists of queues, teams and advisors.
    known: [Known; 3],
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
            wanted: Wanted::of(compiled.iter().map(|rule| &rule.config)),
            rules: compiled.into_iter().map(RuleSlot::new).collect(),
            room: Room::default(),
            known: Default::default(),
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
        self.wanted = Wanted::of(compiled.iter().map(|rule| &rule.config));
        let mut old: BTreeMap<String, RuleSlot> = std::mem::take(&mut self.rules)
            .into_iter()
            .map(|slot| (slot.rule.config.id.clone(), slot))
            .collect();
        self.rules = compiled
            .into_iter()
            .map(|rule| match old.remove(&rule.config.id) {
                Some(slot) if slot.rule.config == rule.config => slot,
                Some(slot) => {
                    old.insert(slot.rule.config.id.clone(), slot);
                    RuleSlot::new(rule)
                }
                None => RuleSlot::new(rule),
            })
            .collect();
        let mut out = Evaluation::default();
        for slot in old.values_mut() {
            for (target, entry) in slot.alerts.iter_mut() {
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
        out.notifications.sort_by(|a, b| a.alert.cmp(&b.alert));
        Ok(out)
    }

    /// Evaluates every rule at `now` against `site` (the processor of this engine's site,
    /// advanced to `now`): reads each figure it needs once, moves each alert's lifecycle, and
    /// returns the changes and notifications, in alert id order. The same inputs give the
    /// same output. Another site's processor gives nothing.
    pub fn evaluate(&mut self, site: &SiteProcessor, now: Timestamp) -> Evaluation {
        let mut room = std::mem::take(&mut self.room);
        let evaluation = self.evaluate_with(site, now, Figures::new(site, self.wanted, &mut room));
        self.room = room;
        evaluation
    }

    /// [`AlertEngine::evaluate`], reading values through `reader`.
    pub(crate) fn evaluate_with(
        &mut self,
        site: &SiteProcessor,
        now: Timestamp,
        mut reader: impl Read,
    ) -> Evaluation {
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
        let reader = &mut reader;
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
                for at in 0..alerts.len() {
                    if !alerts.idle[at as usize] {
                        alerts.change(at, |target, entry| {
                            let step = entry.lifecycle.off_hours(now);
                            ctx.emit(config, target, entry, step, &mut out);
                        });
                    }
                }
                continue;
            }
            match &config.scope {
                Scope::Site => {
                    if let Some(value) = reader.site_value(config) {
                        ctx.visit_only(rule, alerts, ctx.site_id, value, &mut out);
                    }
                }
                Scope::Queue(target) | Scope::Team(target) | Scope::Advisor(target) => {
                    let kind = match &config.scope {
                        Scope::Queue(_) => Listed::Queue,
                        Scope::Team(_) => Listed::Team,
                        _ => Listed::Advisor,
                    };
                    let known = &mut self.known[kind.index()];
                    let at = locate(&mut slot.position, known, kind, target, reader, generation);
                    if let Some(value) = at.and_then(|at| kind.value(reader, config, at)) {
                        ctx.visit_only(rule, alerts, target, value, &mut out);
                    }
                }
                Scope::AllAdvisorsOfTeam(team) => {
                    let teams = &mut self.known[Listed::Team.index()];
                    let at = locate(
                        &mut slot.position,
                        teams,
                        Listed::Team,
                        team,
                        reader,
                        generation,
                    );
                    let advisors = &mut self.known[Listed::Advisor.index()];
                    let version = advisors.version(Listed::Advisor, reader, generation);
                    let members = at.map_or(&[][..], |at| reader.members_of(at));
                    let fresh = slot
                        .members
                        .as_ref()
                        .is_some_and(|(known, known_members, _)| {
                            *known == version && known_members.as_slice() == members
                        });
                    if !fresh {
                        let members = members.to_vec();
                        let alerting = members
                            .iter()
                            .map(|&at| alerts.find(reader.advisor_id(at)).unwrap_or(NO_ALERT))
                            .collect();
                        slot.members = Some((version, members, alerting));
                    }
                    if let Some((_, members, alerting)) = &mut slot.members {
                        let targets = members.iter().copied().zip(alerting.iter_mut());
                        ctx.visit_all(rule, alerts, Listed::Advisor, targets, reader, &mut out);
                    }
                }
                Scope::EveryQueue | Scope::EveryTeam | Scope::EveryAdvisor => {
                    let kind = match &config.scope {
                        Scope::EveryQueue => Listed::Queue,
                        Scope::EveryTeam => Listed::Team,
                        _ => Listed::Advisor,
                    };
                    let version = self.known[kind.index()].version(kind, reader, generation);
                    let alerting = match &mut slot.alerting {
                        Some((known, alerting)) if *known == version => alerting,
                        stale => {
                            let mut alerting = vec![NO_ALERT; kind.count(reader)];
                            for (alert, (target, _)) in (0..).zip(alerts.iter()) {
                                if let Some(at) = kind.position(reader, target) {
                                    alerting[at] = alert;
                                }
                            }
                            &mut stale.insert((version, alerting)).1
                        }
                    };
                    let targets = alerting.iter_mut().enumerate();
                    ctx.visit_all(rule, alerts, kind, targets, reader, &mut out);
                }
            }
            // Alerts not read this time (no value, or the target went away) see no data.
            for at in 0..alerts.len() {
                if alerts.seen[at as usize] != generation && !alerts.idle[at as usize] {
                    alerts.change(at, |target, entry| {
                        let step = entry.lifecycle.observe(None, now);
                        ctx.emit(config, target, entry, step, &mut out);
                    });
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
        let at = slot.alerts.find(target).ok_or_else(unknown)?;
        let (site, config) = (&self.site, &slot.rule.config);
        slot.alerts.change(at, |target, entry| {
            let step = act(&mut entry.lifecycle)?;
            let mut out = Evaluation::default();
            emit(site, config, target, entry, step, &mut out);
            Ok(out)
        })
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
        let (target, entry) = slot.alerts.get(target)?;
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
            slot.alerts.retain(|entry| {
                entry.lifecycle.start_day();
                !entry.lifecycle.is_idle()
            });
            slot.alerting = None;
            slot.members = None;
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
    /// Feeds the value read for the only target of a rule to its alert.
    fn visit_only(
        &self,
        rule: &Rule,
        alerts: &mut RuleAlerts,
        target: &str,
        value: f64,
        out: &mut Evaluation,
    ) {
        // The rule's only alert, if any, is its target's.
        let known = Some((!alerts.is_empty()).then_some(0));
        self.visit(rule, alerts, target, known, value, out);
    }

    /// Feeds the values read for targets of a rule to their alerts: `targets` gives each
    /// target's position in the reader's list of `kind` and where its alert is in `alerts` (or
    /// [`NO_ALERT`]), which this keeps up to date.
    fn visit_all<'t>(
        &self,
        rule: &Rule,
        alerts: &mut RuleAlerts,
        kind: Listed,
        targets: impl Iterator<Item = (usize, &'t mut u32)>,
        reader: &mut impl Read,
        out: &mut Evaluation,
    ) {
        for (at, alert) in targets {
            let Some(value) = kind.value(reader, &rule.config, at) else {
                continue;
            };
            if *alert != NO_ALERT || rule.policy.level(value).is_some() {
                let target = kind.id(reader, at);
                let known = Some((*alert != NO_ALERT).then_some(*alert));
                *alert = self
                    .visit(rule, alerts, target, known, value, out)
                    .unwrap_or(NO_ALERT);
            }
        }
    }

    /// Feeds the value read for one target to its alert (created when the value calls for it).
    /// `known`: where the target's alert is in `alerts` (or that it has none), when the caller
    /// knows. Returns where the target's alert is, if it has one.
    fn visit(
        &self,
        rule: &Rule,
        alerts: &mut RuleAlerts,
        target: &str,
        known: Option<Option<u32>>,
        value: f64,
        out: &mut Evaluation,
    ) -> Option<u32> {
        // Most values trouble nobody, most rules have no alert: nothing to look up then.
        if alerts.is_empty() && rule.policy.level(value).is_none() {
            return None;
        }
        let at = match known.unwrap_or_else(|| alerts.find(target)) {
            Some(at) => at,
            None => {
                rule.policy.level(value)?;
                let kind = rule.config.scope.target_kind();
                let entry = AlertEntry {
                    id: format!("{}/{}/{target}", rule.config.id, kind.as_str()),
                    teams: teams(self.site, kind, target),
                    lifecycle: Lifecycle::new(rule.policy),
                };
                alerts.insert(target, entry)
            }
        };
        alerts.seen[at as usize] = self.generation;
        alerts.change(at, |target, entry| {
            let step = entry.lifecycle.observe(Some(value), self.now);
            self.emit(&rule.config, target, entry, step, out);
        });
        Some(at)
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
