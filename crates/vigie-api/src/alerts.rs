//! The `Alerts` service: the alerts of a site in the caller's scope, listed or followed live,
//! acknowledged and silenced; and the rules, for admins.
//!
//! Who sees an alert follows who may read its target (the site, a queue, a team, an advisor),
//! checked on the engine's task against the site's current teams, in the same query that reads
//! the alerts. The target is read from the alert id (`<rule>/<kind>/<target>`), so an alert
//! outside the caller's scope gets the same PERMISSION_DENIED whether it exists or not.
//!
//! `WatchAlerts` follows the engine's broadcast of alert changes: a stream holds no queue of its
//! own (the broadcast is a shared ring), reads the changes of the alerts in scope when the
//! client can take a message, and sends the whole list again (`RESYNC`) when it fell behind.
//!
//! Rules changed through this service are checked, kept in the change store (the Admin
//! service's), then applied; at start, kept rules replace the configuration file's.

use std::collections::{BTreeMap, BTreeSet};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use vigie_alerts::{
    Alert, AlertEngine, AlertError, AlertState, Cause, Change, Comparator, DayOfWeek, Evaluation,
    Metric, RuleConfig, Scope, Severity, TargetKind, Threshold, Transition, TransitionKind, Unit,
};
use vigie_core::config::{ConfigErrors, HumanDuration};
use vigie_core::{SiteProcessor, Timestamp, Window};
use vigie_engine::{AlertUpdate, EngineHandle, EngineState, EngineStopped};
use vigie_proto::v1 as pb;
use vigie_proto::v1::alerts_server::Alerts;

use crate::admin::{ChangeStore, invalid};
use crate::auth::{Authenticator, Principal, Role, permission_denied};
use crate::convert;
use crate::forward::Forwarding;
use crate::metrics::ApiMetrics;
use crate::read;
use crate::remote::RemoteViews;

/// Longest silence, in seconds.
const MAX_SILENCE_SECONDS: f64 = 86_400.0;
/// Most engine broadcasts merged into one `WatchAlerts` message.
const MAX_UPDATES_PER_MESSAGE: usize = 256;

/// The `Alerts` service over an engine.
#[derive(Clone, Debug)]
pub struct AlertsService {
    engine: EngineHandle,
    auth: Option<Arc<Authenticator>>,
    store: Arc<dyn ChangeStore>,
    /// Serializes rule changes, so each is kept and applied before the next is read.
    changing: Arc<tokio::sync::Mutex<()>>,
    streams: Arc<Semaphore>,
    metrics: ApiMetrics,
    shutdown: CancellationToken,
    /// The alerts of the sites other instances process, as they publish them.
    remote: Arc<RemoteViews>,
    /// Where acknowledgements and silences of those sites go.
    forwarding: Forwarding,
}

/// The stream of a `WatchAlerts` call.
pub type AlertsStream = Pin<Box<dyn Stream<Item = Result<pb::AlertsUpdate, Status>> + Send>>;

impl AlertsService {
    /// The service. Without an authenticator every caller is an anonymous admin (the server
    /// allows that only on loopback). At most `max_streams` `WatchAlerts` streams are open at
    /// once; they end when `shutdown` is cancelled.
    pub fn new(
        engine: EngineHandle,
        auth: Option<Arc<Authenticator>>,
        store: Arc<dyn ChangeStore>,
        max_streams: usize,
        metrics: ApiMetrics,
        shutdown: CancellationToken,
    ) -> AlertsService {
        AlertsService {
            engine,
            auth,
            store,
            changing: Arc::new(tokio::sync::Mutex::new(())),
            streams: Arc::new(Semaphore::new(max_streams)),
            metrics,
            shutdown,
            remote: RemoteViews::new(std::time::Duration::from_secs(5)),
            forwarding: Forwarding::default(),
        }
    }

    /// Sends the acknowledgements and silences of sites processed elsewhere to their owner.
    pub fn with_forwarding(mut self, forwarding: Forwarding) -> AlertsService {
        self.forwarding = forwarding;
        self
    }

    /// Serves the alerts of the sites other instances process from what they publish.
    pub fn with_remote(mut self, remote: Arc<RemoteViews>) -> AlertsService {
        self.remote = remote;
        self
    }

    fn principal<T>(&self, request: &Request<T>) -> Result<Principal, Status> {
        crate::service::authenticate(self.auth.as_deref(), request)
    }

    fn admin<T>(&self, request: &Request<T>) -> Result<Principal, Status> {
        let principal = self.principal(request)?;
        if principal.may_administer() {
            Ok(principal)
        } else {
            Err(permission_denied())
        }
    }

    fn count<R>(&self, method: &'static str, result: Result<R, Status>) -> Result<R, Status> {
        self.metrics.counted(method, result)
    }

    /// Runs a read on the engine's task.
    async fn query<R: Send + 'static>(
        &self,
        read: impl FnOnce(&EngineState) -> Result<R, Status> + Send + 'static,
    ) -> Result<R, Status> {
        crate::service::query_engine(&self.engine, read).await
    }

    /// Checks that the caller may act on `alert` (acknowledge, silence): not an advisor, and
    /// the alert's target in scope. The answer does not depend on whether the alert exists.
    async fn check_command(
        &self,
        principal: &Principal,
        site: &str,
        alert: &str,
    ) -> Result<(), Status> {
        if principal.role == Role::Advisor {
            return Err(permission_denied());
        }
        let (kind, target) = target_of(alert).ok_or_else(|| {
            Status::invalid_argument(format!(
                "alert: {alert:?} is not an alert id (<rule>/<site|queue|team|advisor>/<target>)"
            ))
        })?;
        let (principal, site, target) = (principal.clone(), site.to_owned(), target.to_owned());
        self.query(move |state| {
            let processor = read::site(state, &principal, &site)?;
            if may_read(&principal, processor, kind, &target) {
                Ok(())
            } else {
                Err(permission_denied())
            }
        })
        .await
    }

    /// Runs a command on the site's alert engine; an unknown alert when the site runs none.
    async fn command(
        &self,
        site: &str,
        alert: &str,
        act: impl FnOnce(&mut AlertEngine, Timestamp) -> Result<Evaluation, AlertError> + Send + 'static,
    ) -> Result<pb::AlertResponse, Status> {
        let id = alert.to_owned();
        let outcome = self
            .engine
            .with_alerts(site, move |engine, now| match act(engine, now) {
                Ok(evaluation) => (evaluation, Ok(engine.alert(&id).map(|a| wire(engine, &a)))),
                Err(error) => (Evaluation::default(), Err(error)),
            })
            .await
            .map_err(|EngineStopped| stopped())?;
        match outcome {
            None => Err(unknown_alert(alert)),
            Some(Err(error)) => Err(alert_error(&error, alert)),
            Some(Ok(current)) => Ok(pb::AlertResponse { alert: current }),
        }
    }

    /// Replaces the site's rules with what `change` makes of them: checked, kept in the
    /// change store (if they cannot be kept, nothing changes), then applied by the engine.
    /// Changes go one at a time, so two never overwrite each other.
    async fn change_rules(
        &self,
        site: &str,
        change: impl FnOnce(&mut Vec<RuleConfig>) -> Result<(), Status> + Send + 'static,
    ) -> Result<pb::AlertRulesResponse, Status> {
        let _one_at_a_time = self.changing.lock().await;
        let id = site.to_owned();
        let current = self
            .query(move |state| {
                Ok(state
                    .alerts
                    .get(&id)
                    .map(|engine| engine.rules().cloned().collect::<Vec<_>>()))
            })
            .await?;
        let Some(mut rules) = current else {
            return Err(self.no_alert_engine(site).await);
        };
        change(&mut rules)?;
        vigie_alerts::AlertEngine::new(site, &rules)
            .map_err(|errors| invalid(violations(&errors)))?;
        self.store.save_rules(site, &rules).await.map_err(|error| {
            Status::unavailable(format!(
                "the rules could not be kept, nothing changed: {error}"
            ))
        })?;
        let outcome = self
            .engine
            .with_alerts(site, move |engine, now| {
                match replace_rules(engine, &rules, now) {
                    Ok(evaluation) => (evaluation, Ok(rules_response(engine))),
                    Err(errors) => (Evaluation::default(), Err(invalid(violations(&errors)))),
                }
            })
            .await
            .map_err(|EngineStopped| stopped())?;
        match outcome {
            Some(result) => result,
            None => Err(self.no_alert_engine(site).await),
        }
    }

    /// Why a site has no alert engine: it does not exist, or it runs without alerts.
    async fn no_alert_engine(&self, site: &str) -> Status {
        let id = site.to_owned();
        match self
            .query(move |state| Ok(state.processor.site(&id).is_some()))
            .await
        {
            Ok(true) => Status::failed_precondition(format!("site {site:?} runs no alert engine")),
            Ok(false) => Status::not_found(format!("no site {site:?}")),
            Err(status) => status,
        }
    }

    async fn open_watch(
        &self,
        request: &Request<pb::WatchAlertsRequest>,
    ) -> Result<AlertsStream, Status> {
        let principal = self.principal(request)?;
        let site = request.get_ref().site.clone();
        required("site", &site)?;
        let permit = self.streams.clone().try_acquire_owned().map_err(|_| {
            Status::resource_exhausted("too many open streams on this server; retry later")
        })?;
        // Subscribed before the snapshot is read: no change falls between the two (a change
        // already in the snapshot may come again, with the same alert).
        let updates = self.engine.subscribe_alerts();
        let remote_updates = self.remote.subscribe_alerts();
        let (who, id, remote) = (principal.clone(), site.clone(), self.remote.clone());
        let snapshot = self
            .query(move |state| list(state, &remote, &who, &id, false))
            .await?;
        self.metrics.streams.inc();
        let watch = Watch {
            engine: self.engine.clone(),
            remote: self.remote.clone(),
            principal,
            site,
            updates,
            remote_updates,
            snapshot: Some(snapshot),
            ended: false,
            shutdown: self.shutdown.clone(),
            guard: StreamGuard {
                _permit: permit,
                metrics: self.metrics.clone(),
            },
        };
        Ok(Box::pin(futures::stream::unfold(watch, Watch::next)))
    }
}

use crate::service::stopped;

fn required(field: &str, value: &str) -> Result<(), Status> {
    if value.trim().is_empty() {
        Err(Status::invalid_argument(format!("{field}: required")))
    } else {
        Ok(())
    }
}

fn unknown_alert(alert: &str) -> Status {
    Status::not_found(format!("no alert {alert:?} at this site today"))
}

fn alert_error(error: &AlertError, alert: &str) -> Status {
    match error {
        AlertError::UnknownAlert(_) => unknown_alert(alert),
        AlertError::NotFiring => Status::failed_precondition(
            "the alert is not firing: only a firing alert can be acknowledged",
        ),
        AlertError::SilenceInPast => {
            Status::invalid_argument("duration: a silence must end after now")
        }
    }
}

/// The problems of a rule's validation as field violations, with the fields of the wire rule
/// (`rule.hold_for` for the file's `for`, `rule.scope_id` for the scope's id).
fn violations(errors: &ConfigErrors) -> Vec<(String, String)> {
    errors
        .0
        .iter()
        .map(|line| match line.split_once(": ") {
            Some((field, problem)) => {
                let field = if let Some(rule) = field.strip_suffix(".for") {
                    format!("{rule}.hold_for")
                } else if let Some(at) = field.find(".scope.") {
                    format!("{}.scope_id", &field[..at])
                } else {
                    field.to_owned()
                };
                (field, problem.to_owned())
            }
            None => (String::new(), line.clone()),
        })
        .collect()
}

/// The kind and id of the target of an alert id `<rule>/<kind>/<target>`.
pub fn target_of(alert: &str) -> Option<(TargetKind, &str)> {
    let (_, rest) = alert.split_once('/')?;
    let (kind, target) = rest.split_once('/')?;
    let kind = match kind {
        "site" => TargetKind::Site,
        "queue" => TargetKind::Queue,
        "team" => TargetKind::Team,
        "advisor" => TargetKind::Advisor,
        _ => return None,
    };
    (!target.is_empty()).then_some((kind, target))
}

/// Whether the caller may see an alert about this target of `site`: whether they may read the
/// target itself, with the site's teams as they are now.
pub fn may_read(
    principal: &Principal,
    site: &SiteProcessor,
    kind: TargetKind,
    target: &str,
) -> bool {
    may_read_in(
        principal,
        &site.site().id,
        &read::Source::Local(site),
        kind,
        target,
    )
}

/// [`may_read`] for a site processed here or by another instance.
fn may_read_in(
    principal: &Principal,
    site_id: &str,
    site: &read::Source,
    kind: TargetKind,
    target: &str,
) -> bool {
    match kind {
        TargetKind::Site => principal.may_read_site(site_id),
        TargetKind::Queue => principal.may_read_queue(site_id, target, &site.teams_serving(target)),
        TargetKind::Team => principal.may_read_team(site_id, target),
        TargetKind::Advisor => {
            principal.may_read_advisor(site_id, target, site.advisor_team(target))
        }
    }
}

fn as_of(site: &SiteProcessor) -> Option<prost_types::Timestamp> {
    Some(convert::timestamp(site.now()))
}

/// Every alert of the day of a site processed here, in wire form, with the engine's clock for
/// the site: what the instance processing a site publishes for the others. `None` when the
/// site is not processed here.
pub fn published_alerts(state: &EngineState, site_id: &str) -> Option<pb::ListAlertsResponse> {
    let site = state.processor.site(site_id)?;
    if !state.feed(site_id).processed_here() {
        return None;
    }
    Some(pb::ListAlertsResponse {
        alerts: all_alerts(state, site_id),
        as_of: as_of(site),
    })
}

/// Every alert of the site's day, in wire form.
fn all_alerts(state: &EngineState, site_id: &str) -> Vec<pb::Alert> {
    let Some(engine) = state.alerts.get(site_id) else {
        return Vec::new();
    };
    let reasons = reasons(engine);
    engine
        .alerts()
        .into_iter()
        .map(|alert| {
            let reason = reasons.get(alert.rule.as_str()).cloned().flatten();
            alert_to_wire(&alert, reason)
        })
        .collect()
}

/// The alerts of the site's day in the caller's scope (checked: the site is in the caller's
/// scope and exists), computed here or as the instance processing the site published them.
fn list(
    state: &EngineState,
    remote: &RemoteViews,
    principal: &Principal,
    site_id: &str,
    active_only: bool,
) -> Result<pb::ListAlertsResponse, Status> {
    let site = read::source(state, remote, principal, site_id, Window::Today)?;
    let (alerts, as_of) = match &site {
        read::Source::Local(processor) => (all_alerts(state, site_id), as_of(processor)),
        read::Source::Remote { .. } => {
            let published = remote.alerts(site_id).ok_or_else(|| {
                Status::unavailable(format!(
                    "the alerts of site {site_id:?} have not reached this instance yet"
                ))
            })?;
            (published.alerts, published.as_of)
        }
    };
    let active = [
        pb::AlertState::Pending as i32,
        pb::AlertState::Firing as i32,
    ];
    let alerts = alerts
        .into_iter()
        .filter(|alert| !active_only || active.contains(&alert.state))
        .filter(|alert| {
            target_of(&alert.id)
                .is_some_and(|(kind, target)| may_read_in(principal, site_id, &site, kind, target))
        })
        .collect();
    Ok(pb::ListAlertsResponse { alerts, as_of })
}

/// The changes of alerts in the caller's scope, each with the alert as it stands.
fn changes(
    state: &EngineState,
    principal: &Principal,
    site_id: &str,
    updates: &[Arc<Vec<Change>>],
) -> Result<(Vec<pb::AlertChange>, Option<prost_types::Timestamp>), Status> {
    let site = read::site(state, principal, site_id)?;
    let engine = state.alerts.get(site_id);
    let mut current: BTreeMap<&str, Option<pb::Alert>> = BTreeMap::new();
    let mut out = Vec::new();
    for change in updates.iter().flat_map(|changes| changes.iter()) {
        let Some((kind, target)) = target_of(&change.alert) else {
            continue;
        };
        if !may_read(principal, site, kind, target) {
            continue;
        }
        let alert = current
            .entry(&change.alert)
            .or_insert_with(|| {
                engine.and_then(|engine| {
                    engine
                        .alert(&change.alert)
                        .map(|alert| wire(engine, &alert))
                })
            })
            .clone();
        out.push(pb::AlertChange {
            alert: change.alert.clone(),
            transition: Some(transition_to_wire(&change.transition)),
            current: alert,
        });
    }
    Ok((out, as_of(site)))
}

/// Pause reasons of the rules, by rule id.
fn reasons(engine: &AlertEngine) -> BTreeMap<&str, Option<String>> {
    engine
        .rules()
        .map(|rule| (rule.id.as_str(), rule.reason.clone()))
        .collect()
}

/// One alert of `engine` in its wire form.
fn wire(engine: &AlertEngine, alert: &Alert) -> pb::Alert {
    let reason = engine
        .rules()
        .find(|rule| rule.id == alert.rule)
        .and_then(|rule| rule.reason.clone());
    alert_to_wire(alert, reason)
}

/// Replaces the rules; the alerts that leave the list (their rule changed or went away) get a
/// change saying so, so that watchers drop them.
fn replace_rules(
    engine: &mut AlertEngine,
    rules: &[RuleConfig],
    now: Timestamp,
) -> Result<Evaluation, ConfigErrors> {
    let before = engine.alerts();
    let mut evaluation = engine.replace_rules(rules, now)?;
    let after: BTreeSet<String> = engine.alerts().into_iter().map(|alert| alert.id).collect();
    for alert in before
        .into_iter()
        .filter(|alert| !after.contains(&alert.id))
    {
        let kind = if alert.state == AlertState::Pending {
            TransitionKind::Reset
        } else {
            TransitionKind::Resolved
        };
        evaluation.changes.push(Change {
            alert: alert.id,
            transition: Transition {
                kind,
                at: now,
                severity: alert.severity,
                value: alert.value,
                threshold: None,
                cause: Some(Cause::RuleChanged),
                by: None,
                until: None,
            },
        });
    }
    evaluation.changes.sort_by(|a, b| a.alert.cmp(&b.alert));
    Ok(evaluation)
}

fn rules_response(engine: &AlertEngine) -> pb::AlertRulesResponse {
    pb::AlertRulesResponse {
        rules: engine.rules().map(rule_to_wire).collect(),
    }
}

fn severity_to_wire(severity: Option<Severity>) -> i32 {
    match severity {
        None => pb::AlertSeverity::Unspecified,
        Some(Severity::Warning) => pb::AlertSeverity::Warning,
        Some(Severity::Critical) => pb::AlertSeverity::Critical,
    }
    .into()
}

fn state_to_wire(state: AlertState) -> i32 {
    match state {
        AlertState::Inactive => pb::AlertState::Inactive,
        AlertState::Pending => pb::AlertState::Pending,
        AlertState::Firing => pb::AlertState::Firing,
        AlertState::Resolved => pb::AlertState::Resolved,
    }
    .into()
}

fn target_kind_to_wire(kind: TargetKind) -> i32 {
    match kind {
        TargetKind::Site => pb::AlertTargetKind::Site,
        TargetKind::Queue => pb::AlertTargetKind::Queue,
        TargetKind::Team => pb::AlertTargetKind::Team,
        TargetKind::Advisor => pb::AlertTargetKind::Advisor,
    }
    .into()
}

fn unit_to_wire(unit: Unit) -> i32 {
    match unit {
        Unit::Fraction => pb::AlertUnit::Fraction,
        Unit::Seconds => pb::AlertUnit::Seconds,
        Unit::Count => pb::AlertUnit::Count,
    }
    .into()
}

fn cause_to_wire(cause: Option<Cause>) -> i32 {
    match cause {
        None => pb::AlertCause::Unspecified,
        Some(Cause::Value) => pb::AlertCause::Value,
        Some(Cause::NoData) => pb::AlertCause::NoData,
        Some(Cause::OutsideActiveHours) => pb::AlertCause::OutsideActiveHours,
        Some(Cause::RuleChanged) => pb::AlertCause::RuleChanged,
    }
    .into()
}

fn transition_kind_to_wire(kind: TransitionKind) -> i32 {
    match kind {
        TransitionKind::Pending => pb::AlertTransitionKind::Pending,
        TransitionKind::Reset => pb::AlertTransitionKind::Reset,
        TransitionKind::Fired => pb::AlertTransitionKind::Fired,
        TransitionKind::Escalated => pb::AlertTransitionKind::Escalated,
        TransitionKind::DeEscalated => pb::AlertTransitionKind::DeEscalated,
        TransitionKind::Resolved => pb::AlertTransitionKind::Resolved,
        TransitionKind::Acknowledged => pb::AlertTransitionKind::Acknowledged,
        TransitionKind::Silenced => pb::AlertTransitionKind::Silenced,
    }
    .into()
}

/// A transition in its wire form.
pub fn transition_to_wire(transition: &Transition) -> pb::AlertTransition {
    pb::AlertTransition {
        kind: transition_kind_to_wire(transition.kind),
        at: Some(convert::timestamp(transition.at)),
        severity: severity_to_wire(transition.severity),
        value: transition.value,
        threshold: transition.threshold,
        cause: cause_to_wire(transition.cause),
        by: transition.by.clone(),
        until: transition.until.map(convert::timestamp),
    }
}

/// An alert in its wire form; `reason` is its rule's pause reason.
pub fn alert_to_wire(alert: &Alert, reason: Option<String>) -> pb::Alert {
    pb::Alert {
        id: alert.id.clone(),
        site: alert.site.clone(),
        rule: alert.rule.clone(),
        rule_name: alert.rule_name.clone(),
        target: Some(pb::AlertTarget {
            kind: target_kind_to_wire(alert.target.kind),
            id: alert.target.id.clone(),
        }),
        teams: alert.teams.clone(),
        metric: alert.metric.as_str().to_owned(),
        window: alert
            .window
            .map(|window| convert::window_to_wire(window).into()),
        reason,
        comparator: alert.comparator.as_str().to_owned(),
        unit: unit_to_wire(alert.unit),
        state: state_to_wire(alert.state),
        severity: severity_to_wire(alert.severity),
        value: alert.value,
        threshold: alert.threshold,
        since: alert.since.map(convert::timestamp),
        acknowledged: alert
            .acknowledged
            .as_ref()
            .map(|ack| pb::AlertAcknowledgement {
                by: ack.by.clone(),
                at: Some(convert::timestamp(ack.at)),
            }),
        silenced: alert.silenced.as_ref().map(|silence| pb::AlertSilence {
            until: Some(convert::timestamp(silence.until)),
            by: silence.by.clone(),
            at: Some(convert::timestamp(silence.at)),
        }),
        last_notified: alert.last_notified.map(convert::timestamp),
        history: alert.history.iter().map(transition_to_wire).collect(),
        history_dropped: alert.history_dropped,
    }
}

fn seconds_of(duration: HumanDuration) -> f64 {
    duration.0.as_secs_f64()
}

fn day_name(day: DayOfWeek) -> String {
    serde_json::to_value(day)
        .ok()
        .and_then(|value| value.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// A rule in its wire form.
pub fn rule_to_wire(rule: &RuleConfig) -> pb::AlertRule {
    let (scope, scope_id) = match &rule.scope {
        Scope::Site => (pb::AlertScope::Site, ""),
        Scope::Queue(id) => (pb::AlertScope::Queue, id.as_str()),
        Scope::Team(id) => (pb::AlertScope::Team, id.as_str()),
        Scope::Advisor(id) => (pb::AlertScope::Advisor, id.as_str()),
        Scope::AllAdvisorsOfTeam(id) => (pb::AlertScope::AllAdvisorsOfTeam, id.as_str()),
        Scope::EveryQueue => (pb::AlertScope::EveryQueue, ""),
        Scope::EveryTeam => (pb::AlertScope::EveryTeam, ""),
        Scope::EveryAdvisor => (pb::AlertScope::EveryAdvisor, ""),
    };
    pb::AlertRule {
        id: rule.id.clone(),
        name: rule.name.clone(),
        scope: scope.into(),
        scope_id: scope_id.to_owned(),
        metric: rule.metric.as_str().to_owned(),
        window: rule
            .window
            .map(|window| convert::window_to_wire(window).into()),
        reason: rule.reason.clone(),
        comparator: rule.comparator.as_str().to_owned(),
        warning: rule.warning.map(Threshold::value),
        critical: rule.critical.map(Threshold::value),
        clear: rule.clear.map(Threshold::value),
        hold_for: seconds_of(rule.hold_for),
        renotify: rule.renotify.map(seconds_of),
        min_interval: Some(seconds_of(rule.min_interval)),
        active_hours: rule.active_hours.clone(),
        active_days: rule
            .active_days
            .iter()
            .flatten()
            .copied()
            .map(day_name)
            .collect(),
        min_volume: rule.min_volume,
    }
}

/// Seconds as a duration rounded to the millisecond, if finite, at least 0 and at most a day.
fn duration_from_wire(
    seconds: f64,
    field: &str,
    problems: &mut Vec<(String, String)>,
) -> HumanDuration {
    if !seconds.is_finite() || !(0.0..=86_400.0).contains(&seconds) {
        problems.push((
            field.to_owned(),
            format!("must be at least 0 and at most 86400 seconds, found {seconds}"),
        ));
        return HumanDuration(Duration::ZERO);
    }
    HumanDuration(Duration::from_millis((seconds * 1000.0).round() as u64))
}

/// A rule of `site` from its wire form, checked field by field and as the configuration file's
/// rules are (problems name the wire fields, `rule.<field>`).
pub fn rule_from_wire(site: &str, rule: Option<pb::AlertRule>) -> Result<RuleConfig, Status> {
    let rule = rule.ok_or_else(|| invalid(vec![("rule".into(), "required".into())]))?;
    let mut problems = Vec::new();
    let id = || rule.scope_id.clone();
    let needs_id = |problems: &mut Vec<(String, String)>, scope: Scope| {
        if rule.scope_id.trim().is_empty() {
            problems.push((
                "rule.scope_id".to_owned(),
                "required for this scope".to_owned(),
            ));
        }
        scope
    };
    let no_id = |problems: &mut Vec<(String, String)>, scope: Scope| {
        if !rule.scope_id.is_empty() {
            problems.push((
                "rule.scope_id".to_owned(),
                "only for the scopes queue, team, advisor and all_advisors_of_team".to_owned(),
            ));
        }
        scope
    };
    let scope = match pb::AlertScope::try_from(rule.scope) {
        Ok(pb::AlertScope::Site) => no_id(&mut problems, Scope::Site),
        Ok(pb::AlertScope::Queue) => needs_id(&mut problems, Scope::Queue(id())),
        Ok(pb::AlertScope::Team) => needs_id(&mut problems, Scope::Team(id())),
        Ok(pb::AlertScope::Advisor) => needs_id(&mut problems, Scope::Advisor(id())),
        Ok(pb::AlertScope::AllAdvisorsOfTeam) => {
            needs_id(&mut problems, Scope::AllAdvisorsOfTeam(id()))
        }
        Ok(pb::AlertScope::EveryQueue) => no_id(&mut problems, Scope::EveryQueue),
        Ok(pb::AlertScope::EveryTeam) => no_id(&mut problems, Scope::EveryTeam),
        Ok(pb::AlertScope::EveryAdvisor) => no_id(&mut problems, Scope::EveryAdvisor),
        Ok(pb::AlertScope::Unspecified) | Err(_) => {
            problems.push(("rule.scope".to_owned(), "required".to_owned()));
            Scope::Site
        }
    };
    let metric = Metric::ALL
        .into_iter()
        .find(|metric| metric.as_str() == rule.metric)
        .unwrap_or_else(|| {
            let names: Vec<&str> = Metric::ALL.iter().map(|m| m.as_str()).collect();
            problems.push((
                "rule.metric".to_owned(),
                format!(
                    "unknown metric {:?}: expected one of {}",
                    rule.metric,
                    names.join(", ")
                ),
            ));
            Metric::LongestWait
        });
    let comparator = match rule.comparator.as_str() {
        "above" => Comparator::Above,
        "below" => Comparator::Below,
        other => {
            problems.push((
                "rule.comparator".to_owned(),
                format!("expected \"above\" or \"below\", found {other:?}"),
            ));
            Comparator::Above
        }
    };
    let window = rule.window.and_then(|window| {
        convert::window_from_wire(window).or_else(|| {
            problems.push(("rule.window".to_owned(), format!("unknown value {window}")));
            None
        })
    });
    let hold_for = duration_from_wire(rule.hold_for, "rule.hold_for", &mut problems);
    let renotify = rule
        .renotify
        .map(|seconds| duration_from_wire(seconds, "rule.renotify", &mut problems));
    let min_interval = match rule.min_interval {
        Some(seconds) => duration_from_wire(seconds, "rule.min_interval", &mut problems),
        None => HumanDuration::secs(300),
    };
    let active_days = if rule.active_days.is_empty() {
        None
    } else {
        let mut days = Vec::new();
        for (index, day) in rule.active_days.iter().enumerate() {
            match serde_json::from_value::<DayOfWeek>(serde_json::Value::String(day.clone())) {
                Ok(day) => days.push(day),
                Err(_) => problems.push((
                    format!("rule.active_days[{index}]"),
                    format!("expected mon, tue, wed, thu, fri, sat or sun, found {day:?}"),
                )),
            }
        }
        Some(days)
    };
    let config = RuleConfig {
        site: site.to_owned(),
        id: rule.id,
        name: rule.name,
        scope,
        metric,
        window,
        reason: rule.reason,
        comparator,
        warning: rule.warning.map(Threshold::Number),
        critical: rule.critical.map(Threshold::Number),
        clear: rule.clear.map(Threshold::Number),
        hold_for,
        renotify,
        min_interval,
        active_hours: rule.active_hours,
        active_days,
        min_volume: rule.min_volume,
    };
    if problems.is_empty()
        && let Err(errors) = config.validate("rule")
    {
        problems.extend(violations(&errors));
    }
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(invalid(problems))
    }
}

/// A `WatchAlerts` stream between two messages.
struct Watch {
    engine: EngineHandle,
    remote: Arc<RemoteViews>,
    principal: Principal,
    site: String,
    updates: broadcast::Receiver<AlertUpdate>,
    /// Sites whose alerts, published by the instance processing them, changed.
    remote_updates: broadcast::Receiver<Arc<str>>,
    /// The first message, read when the stream opened.
    snapshot: Option<pb::ListAlertsResponse>,
    ended: bool,
    shutdown: CancellationToken,
    guard: StreamGuard,
}

/// What the engine's broadcast brought.
enum Received {
    Changes(Vec<Arc<Vec<Change>>>),
    Behind,
    Closed,
}

impl Watch {
    /// The next message: the snapshot, then changes in scope, or a resync after falling behind.
    async fn next(mut self) -> Option<(Result<pb::AlertsUpdate, Status>, Watch)> {
        if self.ended {
            return None;
        }
        if let Some(snapshot) = self.snapshot.take() {
            return Some((Ok(self.message(pb::UpdateKind::Snapshot, snapshot)), self));
        }
        loop {
            let shutdown = self.shutdown.clone();
            let received = tokio::select! {
                biased;
                _ = shutdown.cancelled() => Received::Closed,
                received = self.receive() => received,
            };
            let (principal, site) = (self.principal.clone(), self.site.clone());
            let message = match received {
                Received::Closed => break,
                Received::Behind => {
                    let remote = self.remote.clone();
                    let read =
                        move |state: &EngineState| list(state, &remote, &principal, &site, false);
                    match self.engine.query(read).await {
                        Err(EngineStopped) => break,
                        Ok(Err(status)) => Err(status),
                        Ok(Ok(list)) => Ok(self.message(pb::UpdateKind::Resync, list)),
                    }
                }
                Received::Changes(updates) => {
                    let read =
                        move |state: &EngineState| changes(state, &principal, &site, &updates);
                    match self.engine.query(read).await {
                        Err(EngineStopped) => break,
                        Ok(Err(status)) => Err(status),
                        // Nothing in the caller's scope changed: wait for the next changes.
                        Ok(Ok((changes, _))) if changes.is_empty() => continue,
                        Ok(Ok((changes, as_of))) => {
                            self.guard.metrics.message("change");
                            Ok(pb::AlertsUpdate {
                                kind: pb::UpdateKind::Change.into(),
                                alerts: Vec::new(),
                                changes,
                                as_of,
                            })
                        }
                    }
                }
            };
            self.ended = message.is_err();
            return Some((message, self));
        }
        self.ended = true;
        Some((
            Err(Status::unavailable(
                "the alerts are no longer published: the service is stopping",
            )),
            self,
        ))
    }

    /// Waits for the changes of the site, and takes those already waiting with them.
    async fn receive(&mut self) -> Received {
        let mut taken = Vec::new();
        loop {
            let update = if taken.is_empty() {
                tokio::select! {
                    update = self.updates.recv() => update,
                    site = self.remote_updates.recv() => match site {
                        // Another instance processes the site and published its alerts anew:
                        // the list replaces what the client holds.
                        Ok(site) if *site == *self.site => return Received::Behind,
                        Ok(_) => continue,
                        Err(RecvError::Lagged(_)) => return Received::Behind,
                        Err(RecvError::Closed) => return Received::Closed,
                    },
                }
            } else {
                match self.updates.try_recv() {
                    Ok(update) => Ok(update),
                    Err(TryRecvError::Empty) => return Received::Changes(taken),
                    Err(TryRecvError::Lagged(skipped)) => Err(RecvError::Lagged(skipped)),
                    Err(TryRecvError::Closed) => Err(RecvError::Closed),
                }
            };
            match update {
                Ok(update) if *update.site == *self.site => {
                    taken.push(update.changes);
                    if taken.len() >= MAX_UPDATES_PER_MESSAGE {
                        return Received::Changes(taken);
                    }
                }
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => {
                    // What is still in the broadcast is older than the list about to be read:
                    // skip it, so that the resync is followed by newer changes only.
                    while !matches!(
                        self.updates.try_recv(),
                        Err(TryRecvError::Empty | TryRecvError::Closed)
                    ) {}
                    return Received::Behind;
                }
                Err(RecvError::Closed) if taken.is_empty() => return Received::Closed,
                Err(RecvError::Closed) => return Received::Changes(taken),
            }
        }
    }

    fn message(&self, kind: pb::UpdateKind, list: pb::ListAlertsResponse) -> pb::AlertsUpdate {
        self.guard.metrics.message(match kind {
            pb::UpdateKind::Resync => "resync",
            _ => "snapshot",
        });
        pb::AlertsUpdate {
            kind: kind.into(),
            alerts: list.alerts,
            changes: Vec::new(),
            as_of: list.as_of,
        }
    }
}

/// Releases the stream's slot and gauge when the client goes away.
struct StreamGuard {
    _permit: OwnedSemaphorePermit,
    metrics: ApiMetrics,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.metrics.streams.dec();
    }
}

#[tonic::async_trait]
impl Alerts for AlertsService {
    async fn list_alerts(
        &self,
        request: Request<pb::ListAlertsRequest>,
    ) -> Result<Response<pb::ListAlertsResponse>, Status> {
        let result = async {
            let principal = self.principal(&request)?;
            let pb::ListAlertsRequest { site, active_only } = request.into_inner();
            required("site", &site)?;
            let remote = self.remote.clone();
            self.query(move |state| list(state, &remote, &principal, &site, active_only))
                .await
        }
        .await;
        self.count("ListAlerts", result).map(Response::new)
    }

    type WatchAlertsStream = AlertsStream;

    async fn watch_alerts(
        &self,
        request: Request<pb::WatchAlertsRequest>,
    ) -> Result<Response<Self::WatchAlertsStream>, Status> {
        let result = self.open_watch(&request).await;
        self.count("WatchAlerts", result).map(Response::new)
    }

    async fn ack_alert(
        &self,
        request: Request<pb::AckAlertRequest>,
    ) -> Result<Response<pb::AlertResponse>, Status> {
        let here = |request: Request<pb::AckAlertRequest>| async move {
            let principal = self.principal(&request)?;
            let pb::AckAlertRequest { site, alert } = request.into_inner();
            required("site", &site)?;
            required("alert", &alert)?;
            self.check_command(&principal, &site, &alert).await?;
            let (id, by) = (alert.clone(), principal.subject);
            let response = self
                .command(&site, &alert, move |engine, now| {
                    engine.acknowledge(&id, &by, now)
                })
                .await?;
            tracing::info!(site, alert, "alert acknowledged through the API");
            Ok(response)
        };
        let result = self.forwarding.or_here(&self.engine, request, here).await;
        self.count("AckAlert", result).map(Response::new)
    }

    async fn silence_alert(
        &self,
        request: Request<pb::SilenceAlertRequest>,
    ) -> Result<Response<pb::AlertResponse>, Status> {
        let here = |request: Request<pb::SilenceAlertRequest>| async move {
            let principal = self.principal(&request)?;
            let pb::SilenceAlertRequest {
                site,
                alert,
                duration,
            } = request.into_inner();
            required("site", &site)?;
            required("alert", &alert)?;
            if !duration.is_finite() || duration <= 0.0 || duration > MAX_SILENCE_SECONDS {
                return Err(Status::invalid_argument(format!(
                    "duration: must be more than 0 and at most {MAX_SILENCE_SECONDS} seconds, found {duration}"
                )));
            }
            self.check_command(&principal, &site, &alert).await?;
            let (id, by) = (alert.clone(), principal.subject);
            let millis = (duration * 1000.0).round() as i64;
            let response = self
                .command(&site, &alert, move |engine, now| {
                    engine.silence(&id, Timestamp(now.0 + millis.max(1)), &by, now)
                })
                .await?;
            tracing::info!(
                site,
                alert,
                seconds = duration,
                "alert silenced through the API"
            );
            Ok(response)
        };
        let result = self.forwarding.or_here(&self.engine, request, here).await;
        self.count("SilenceAlert", result).map(Response::new)
    }

    async fn list_rules(
        &self,
        request: Request<pb::ListRulesRequest>,
    ) -> Result<Response<pb::AlertRulesResponse>, Status> {
        let result = async {
            self.admin(&request)?;
            let site = request.into_inner().site;
            required("site", &site)?;
            self.query(move |state| {
                if state.processor.site(&site).is_none() {
                    return Err(Status::not_found(format!("no site {site:?}")));
                }
                Ok(state
                    .alerts
                    .get(&site)
                    .map(rules_response)
                    .unwrap_or_default())
            })
            .await
        }
        .await;
        self.count("ListRules", result).map(Response::new)
    }

    async fn upsert_rule(
        &self,
        request: Request<pb::UpsertRuleRequest>,
    ) -> Result<Response<pb::AlertRulesResponse>, Status> {
        let result = async {
            self.admin(&request)?;
            let pb::UpsertRuleRequest { site, rule } = request.into_inner();
            required("site", &site)?;
            let rule = rule_from_wire(&site, rule)?;
            let id = rule.id.clone();
            let response = self
                .change_rules(&site, move |rules| {
                    match rules.iter_mut().find(|existing| existing.id == rule.id) {
                        // The same settings written another way (60 for "1m"): nothing
                        // changes, and the rule's alerts go on.
                        Some(existing) if rule_to_wire(existing) == rule_to_wire(&rule) => {}
                        Some(existing) => *existing = rule,
                        None => rules.push(rule),
                    }
                    Ok(())
                })
                .await?;
            tracing::info!(site, rule = %id, "alert rule upserted through the API");
            Ok(response)
        }
        .await;
        self.count("UpsertRule", result).map(Response::new)
    }

    async fn delete_rule(
        &self,
        request: Request<pb::DeleteRuleRequest>,
    ) -> Result<Response<pb::AlertRulesResponse>, Status> {
        let result = async {
            self.admin(&request)?;
            let pb::DeleteRuleRequest { site, rule_id } = request.into_inner();
            required("site", &site)?;
            required("rule_id", &rule_id)?;
            let id = rule_id.clone();
            let response = self
                .change_rules(&site, move |rules| {
                    let before = rules.len();
                    rules.retain(|rule| rule.id != id);
                    if rules.len() == before {
                        Err(Status::not_found(format!(
                            "no alert rule {id:?} at this site"
                        )))
                    } else {
                        Ok(())
                    }
                })
                .await?;
            tracing::info!(site, rule = %rule_id, "alert rule deleted through the API");
            Ok(response)
        }
        .await;
        self.count("DeleteRule", result).map(Response::new)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use tonic::Code;

    use super::*;
    use tonic_types::StatusExt;

    fn wait_rule() -> pb::AlertRule {
        pb::AlertRule {
            id: "wait".into(),
            name: "Caller waiting too long".into(),
            scope: pb::AlertScope::EveryQueue.into(),
            metric: "longest_wait".into(),
            comparator: "above".into(),
            warning: Some(60.0),
            critical: Some(180.0),
            hold_for: 10.0,
            renotify: Some(900.0),
            active_days: vec!["mon".into(), "fri".into()],
            ..Default::default()
        }
    }

    #[test]
    fn a_rule_goes_to_the_wire_and_back() {
        let config = rule_from_wire("paris", Some(wait_rule())).unwrap();
        assert_eq!(config.site, "paris");
        assert_eq!(config.scope, Scope::EveryQueue);
        assert_eq!(config.metric, Metric::LongestWait);
        assert_eq!(config.hold_for, HumanDuration::secs(10));
        assert_eq!(config.min_interval, HumanDuration::secs(300));
        assert_eq!(
            config.active_days,
            Some(vec![DayOfWeek::Mon, DayOfWeek::Fri])
        );
        let back = rule_to_wire(&config);
        assert_eq!(
            back,
            pb::AlertRule {
                min_interval: Some(300.0),
                ..wait_rule()
            }
        );
        // A rule of the file, written with a duration, has the same wire form as the number.
        let file: RuleConfig = toml::from_str(
            r#"
            site = "paris"
            id = "wait"
            name = "Caller waiting too long"
            scope = "every_queue"
            metric = "longest_wait"
            comparator = "above"
            warning = "1m"
            critical = "3m"
            for = "10s"
            renotify = "15m"
            active_days = ["mon", "fri"]
            "#,
        )
        .unwrap();
        assert_eq!(rule_to_wire(&file), back);
    }

    #[test]
    fn a_bad_rule_names_every_wire_field() {
        let rule = pb::AlertRule {
            scope: pb::AlertScope::Queue.into(),
            metric: "wait_time".into(),
            comparator: "over".into(),
            hold_for: -1.0,
            active_days: vec!["monday".into()],
            ..wait_rule()
        };
        let status = rule_from_wire("paris", Some(rule)).unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        let fields: Vec<String> = status
            .get_details_bad_request()
            .unwrap()
            .field_violations
            .into_iter()
            .map(|violation| violation.field)
            .collect();
        assert_eq!(
            fields,
            [
                "rule.scope_id",
                "rule.metric",
                "rule.comparator",
                "rule.hold_for",
                "rule.active_days[0]"
            ]
        );
        // Checks of the rule itself come with the wire names too.
        let rule = pb::AlertRule {
            scope: pb::AlertScope::Queue.into(),
            scope_id: " ".into(),
            metric: "pause_duration".into(),
            warning: None,
            critical: None,
            ..wait_rule()
        };
        let status = rule_from_wire("paris", Some(rule)).unwrap_err();
        assert!(
            status.message().contains("rule.scope_id: required"),
            "{status:?}"
        );
        let rule = pb::AlertRule {
            scope: pb::AlertScope::Queue.into(),
            scope_id: "billing".into(),
            metric: "pause_duration".into(),
            warning: None,
            critical: None,
            ..wait_rule()
        };
        let message = rule_from_wire("paris", Some(rule))
            .unwrap_err()
            .message()
            .to_owned();
        assert!(
            message.contains("rule.metric: pause_duration does not apply to a queue"),
            "{message}"
        );
        assert!(
            message.contains("rule: needs a warning or a critical threshold"),
            "{message}"
        );
        assert_eq!(
            rule_from_wire("paris", None).unwrap_err().message(),
            "rule: required"
        );
    }

    #[test]
    fn alert_ids_name_their_target() {
        assert_eq!(
            target_of("wait/queue/billing"),
            Some((TargetKind::Queue, "billing"))
        );
        assert_eq!(
            target_of("pause/advisor/a/1"),
            Some((TargetKind::Advisor, "a/1"))
        );
        assert_eq!(
            target_of("sl/site/paris"),
            Some((TargetKind::Site, "paris"))
        );
        assert_eq!(target_of("wait/queues/billing"), None);
        assert_eq!(target_of("wait/queue/"), None);
        assert_eq!(target_of("garbage"), None);
    }
}
