//! `vigie alerts list | watch | ack | silence`: the `vigie.v1.Alerts` service from a terminal.
//!
//! `list` prints the alerts of the site's day the token may see (`--day` an earlier day's, from
//! the history: each alert with its transitions of that day); `watch` prints that list, then
//! one line per change (time, what happened, severity, rule, target, value against threshold)
//! until Ctrl-C; `ack` and `silence` act on one alert by id. `--format json` prints the proto3
//! JSON mapping (one line per message when watching). Rendering is in plain functions of the
//! messages and the site's time zone, tested without a server.

use std::io::Write;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use clap::{Args, Subcommand};
use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell, Color, ContentArrangement, Table};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use vigie_proto::v1 as pb;
use vigie_proto::v1::alerts_client::AlertsClient;

use super::json::{self, ProtoName};
use super::table::{duration, instant, percent};
use super::{Api, ApiArgs, Bearer, Format, print, stream_error};

/// The client of the `Alerts` service.
pub type Client = AlertsClient<InterceptedService<Channel, Bearer>>;

/// The `Alerts` client over a connection of the other client commands.
pub fn client(channel: Channel, bearer: Bearer) -> Client {
    AlertsClient::with_interceptor(channel, bearer)
}

impl ProtoName for pb::ListAlertsResponse {
    const FULL_NAME: &'static str = "vigie.v1.ListAlertsResponse";
}
impl ProtoName for pb::AlertsUpdate {
    const FULL_NAME: &'static str = "vigie.v1.AlertsUpdate";
}
impl ProtoName for pb::AlertResponse {
    const FULL_NAME: &'static str = "vigie.v1.AlertResponse";
}
impl ProtoName for pb::ListAlertHistoryResponse {
    const FULL_NAME: &'static str = "vigie.v1.ListAlertHistoryResponse";
}

/// What `vigie alerts` does.
#[derive(Subcommand, Debug)]
pub enum AlertsCommand {
    /// List the alerts of the site's day you may see: pending, firing, and those that fired
    /// today. With --day, the alerts of that day kept in the history, with their transitions.
    List(ListArgs),
    /// Follow the alerts live: the list first, then one line per change (time, what happened,
    /// severity, rule, target, value against threshold). Ctrl-C to stop.
    Watch(WatchArgs),
    /// Acknowledge a firing alert: no re-notification until it escalates or resolves.
    Ack(AckArgs),
    /// Silence an alert for a while: it keeps its state, but nothing is notified until then.
    Silence(SilenceArgs),
}

/// Arguments of `vigie alerts list`.
#[derive(Args, Debug)]
pub struct ListArgs {
    /// Only the alerts pending or firing now.
    #[arg(long, conflicts_with = "day")]
    pub active: bool,
    /// A site-local day, `YYYY-MM-DD`: the alerts of that day with at least one transition,
    /// each with its transitions, from the history (kept 31 days by default).
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_day)]
    pub day: Option<chrono::NaiveDate>,
    #[command(flatten)]
    pub api: ApiArgs,
}

/// Arguments of `vigie alerts watch`.
#[derive(Args, Debug)]
pub struct WatchArgs {
    #[command(flatten)]
    pub api: ApiArgs,
}

/// Arguments of `vigie alerts ack`.
#[derive(Args, Debug)]
pub struct AckArgs {
    /// Alert id, as `vigie alerts list` shows it (`longest-wait/queue/billing`).
    #[arg(value_name = "ALERT_ID")]
    pub alert: String,
    #[command(flatten)]
    pub api: ApiArgs,
}

/// Arguments of `vigie alerts silence`.
#[derive(Args, Debug)]
pub struct SilenceArgs {
    /// Alert id, as `vigie alerts list` shows it (`longest-wait/queue/billing`).
    #[arg(value_name = "ALERT_ID")]
    pub alert: String,
    /// How long: `30m`, `1h`, `1h 30m` (at most 24h).
    #[arg(long = "for", value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Duration,
    #[command(flatten)]
    pub api: ApiArgs,
}

fn parse_day(text: &str) -> Result<chrono::NaiveDate, String> {
    chrono::NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .map_err(|_| format!("{text:?} is not a day such as 2026-03-02 (YYYY-MM-DD)"))
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text.trim())
        .map_err(|error| format!("{text:?} is not a duration such as 30m or 1h ({error})"))?;
    if duration.is_zero() || duration > Duration::from_secs(24 * 3600) {
        return Err(format!(
            "{text:?}: a silence lasts more than 0s and at most 24h"
        ));
    }
    Ok(duration)
}

/// Runs `vigie alerts ...`.
pub async fn run(command: &AlertsCommand) -> anyhow::Result<()> {
    match command {
        AlertsCommand::List(ListArgs {
            day: Some(day),
            api: args,
            ..
        }) => {
            let (api, site) = Api::for_site(args).await?;
            let date = day.format("%Y-%m-%d").to_string();
            let what = format!("the alerts of site `{}` on {date}", site.id);
            let request = pb::ListAlertHistoryRequest {
                site: site.id,
                date,
            };
            let mut client = api.history.clone();
            let answer = api.unary(&what, client.list_alert_history(request)).await?;
            let zone = site.time_zone;
            print(args.format, &answer, |answer| {
                day_list(&answer.date, &answer.alerts, zone)
            })
        }
        AlertsCommand::List(args) => {
            let (api, site) = Api::for_site(&args.api).await?;
            let what = format!("the alerts of site `{}`", site.id);
            let request = pb::ListAlertsRequest {
                site: site.id,
                active_only: args.active,
            };
            let mut client = api.alerts.clone();
            let alerts = api.unary(&what, client.list_alerts(request)).await?;
            let zone = site.time_zone;
            print(args.api.format, &alerts, |alerts| {
                list(&alerts.alerts, alerts.as_of.as_ref(), zone)
            })
        }
        AlertsCommand::Watch(args) => {
            let (api, site) = Api::for_site(&args.api).await?;
            let what = format!("the alerts of site `{}`", site.id);
            let request = pb::WatchAlertsRequest { site: site.id };
            let mut client = api.alerts.clone();
            let stream = api.open(&what, client.watch_alerts(request)).await?;
            follow(&api, stream, args.api.format, site.time_zone).await
        }
        AlertsCommand::Ack(args) => {
            let (api, site) = Api::for_site(&args.api).await?;
            let what = format!("alert `{}` of site `{}`", args.alert, site.id);
            let request = pb::AckAlertRequest {
                site: site.id,
                alert: args.alert.clone(),
            };
            let mut client = api.alerts.clone();
            let answer = api.unary(&what, client.ack_alert(request)).await?;
            let zone = site.time_zone;
            print(args.api.format, &answer, |answer| done(answer, zone))
        }
        AlertsCommand::Silence(args) => {
            let (api, site) = Api::for_site(&args.api).await?;
            let what = format!("alert `{}` of site `{}`", args.alert, site.id);
            let request = pb::SilenceAlertRequest {
                site: site.id,
                alert: args.alert.clone(),
                duration: args.duration.as_secs_f64(),
            };
            let mut client = api.alerts.clone();
            let answer = api.unary(&what, client.silence_alert(request)).await?;
            let zone = site.time_zone;
            print(args.api.format, &answer, |answer| done(answer, zone))
        }
    }
}

/// Prints the snapshot, then every change, until Ctrl-C or the end of the stream.
async fn follow(
    api: &Api,
    mut stream: tonic::Streaming<pb::AlertsUpdate>,
    format: Format,
    zone: Option<Tz>,
) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    loop {
        let message = tokio::select! {
            message = stream.message() => message,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        match message {
            Ok(Some(update)) => {
                let text = match format {
                    Format::Json => json::to_json(&update, false)? + "\n",
                    Format::Table => update_text(&update, zone),
                };
                let mut out = stdout.lock();
                out.write_all(text.as_bytes())?;
                out.flush()?;
            }
            Ok(None) => {
                eprintln!("vigie: the server ended the stream");
                return Ok(());
            }
            Err(status) => return Err(stream_error(&status, &api.server)),
        }
    }
}

/// One message of `vigie alerts watch` as text: the whole list for a snapshot or a resync, a
/// line per change otherwise.
pub fn update_text(update: &pb::AlertsUpdate, zone: Option<Tz>) -> String {
    match update.kind() {
        pb::UpdateKind::Change => update
            .changes
            .iter()
            .map(|change| change_line(change, zone) + "\n")
            .collect(),
        pb::UpdateKind::Resync => format!(
            "-- fell behind: the alerts as they stand --\n{}",
            list(&update.alerts, update.as_of.as_ref(), zone)
        ),
        pb::UpdateKind::Snapshot | pb::UpdateKind::Unspecified => {
            list(&update.alerts, update.as_of.as_ref(), zone)
        }
    }
}

/// An instant as the site's local time of day (`09:01:05`); `-` when unset.
pub fn time_of_day(time: Option<&prost_types::Timestamp>, zone: Option<Tz>) -> String {
    let Some(time) = time.and_then(|time| {
        DateTime::<Utc>::from_timestamp(time.seconds, u32::try_from(time.nanos).unwrap_or(0))
    }) else {
        return "-".to_owned();
    };
    match zone {
        Some(zone) => time.with_timezone(&zone).format("%H:%M:%S").to_string(),
        None => time.format("%H:%M:%SZ").to_string(),
    }
}

/// A value or threshold in its unit: `1m05s`, `82.4%`, `3`; `-` when unset.
pub fn value(value: Option<f64>, unit: pb::AlertUnit) -> String {
    match unit {
        pb::AlertUnit::Seconds => duration(value),
        pb::AlertUnit::Fraction => percent(value),
        pb::AlertUnit::Count | pb::AlertUnit::Unspecified => value
            .filter(|value| value.is_finite())
            .map_or_else(|| "-".to_owned(), |value| format!("{value}")),
    }
}

fn state_name(state: pb::AlertState) -> &'static str {
    match state {
        pb::AlertState::Unspecified => "-",
        pb::AlertState::Inactive => "inactive",
        pb::AlertState::Pending => "pending",
        pb::AlertState::Firing => "firing",
        pb::AlertState::Resolved => "resolved",
    }
}

fn severity_name(severity: pb::AlertSeverity) -> &'static str {
    match severity {
        pb::AlertSeverity::Unspecified => "-",
        pb::AlertSeverity::Warning => "warning",
        pb::AlertSeverity::Critical => "critical",
    }
}

fn transition_name(kind: pb::AlertTransitionKind) -> &'static str {
    match kind {
        pb::AlertTransitionKind::Unspecified => "changed",
        pb::AlertTransitionKind::Pending => "pending",
        pb::AlertTransitionKind::Reset => "reset",
        pb::AlertTransitionKind::Fired => "FIRED",
        pb::AlertTransitionKind::Escalated => "ESCALATED",
        pb::AlertTransitionKind::DeEscalated => "de-escalated",
        pb::AlertTransitionKind::Resolved => "resolved",
        pb::AlertTransitionKind::Acknowledged => "acknowledged",
        pb::AlertTransitionKind::Silenced => "silenced",
    }
}

fn cause_name(cause: pb::AlertCause) -> Option<&'static str> {
    match cause {
        pb::AlertCause::Unspecified => None,
        pb::AlertCause::Value => Some("value back to normal"),
        pb::AlertCause::NoData => Some("no data"),
        pb::AlertCause::OutsideActiveHours => Some("outside active hours"),
        pb::AlertCause::RuleChanged => Some("rule changed"),
    }
}

/// `queue billing`, `site paris`...
fn target(alert: &pb::Alert) -> String {
    match &alert.target {
        Some(target) => {
            let kind = match target.kind() {
                pb::AlertTargetKind::Site => "site",
                pb::AlertTargetKind::Queue => "queue",
                pb::AlertTargetKind::Team => "team",
                pb::AlertTargetKind::Advisor => "advisor",
                pb::AlertTargetKind::Unspecified => "target",
            };
            format!("{kind} {}", target.id)
        }
        None => "-".to_owned(),
    }
}

/// The comparison that makes the alert: `1m05s > 1m00s` (the value against the threshold).
fn comparison(
    comparator: &str,
    current: Option<f64>,
    threshold: Option<f64>,
    unit: pb::AlertUnit,
) -> String {
    let sign = if comparator == "below" { "<" } else { ">" };
    format!("{} {sign} {}", value(current, unit), value(threshold, unit))
}

/// One change as a line: `09:01:05  FIRED  warning  Caller waiting too long (longest-wait)
/// queue billing  1m05s > 1m00s`. Without the alert (it left the list), the id stands in.
pub fn change_line(change: &pb::AlertChange, zone: Option<Tz>) -> String {
    let Some(transition) = &change.transition else {
        return format!("-  changed  {}", change.alert);
    };
    let kind = transition.kind();
    let mut line = format!(
        "{}  {:<12}  {:<8}",
        time_of_day(transition.at.as_ref(), zone),
        transition_name(kind),
        severity_name(transition.severity()),
    );
    match &change.current {
        Some(alert) => {
            line.push_str(&format!(
                "  {} ({})  {}",
                alert.rule_name,
                alert.rule,
                target(alert)
            ));
            let unit = alert.unit();
            match kind {
                pb::AlertTransitionKind::Resolved | pb::AlertTransitionKind::Reset => {
                    line.push_str(&format!(
                        "  {} (threshold {})",
                        value(transition.value, unit),
                        value(transition.threshold, unit)
                    ));
                }
                pb::AlertTransitionKind::Acknowledged | pb::AlertTransitionKind::Silenced => {}
                _ => line.push_str(&format!(
                    "  {}",
                    comparison(
                        &alert.comparator,
                        transition.value,
                        transition.threshold,
                        unit
                    )
                )),
            }
        }
        None => line.push_str(&format!("  {} (no longer listed)", change.alert)),
    }
    if let Some(cause) = cause_name(transition.cause()) {
        line.push_str(&format!(": {cause}"));
    }
    if let Some(by) = &transition.by {
        line.push_str(&format!(" by {by}"));
    }
    if transition.until.is_some() {
        line.push_str(&format!(
            " until {}",
            time_of_day(transition.until.as_ref(), zone)
        ));
    }
    line
}

/// The alerts as a table, with the instant they were read at.
pub fn list(
    alerts: &[pb::Alert],
    as_of: Option<&prost_types::Timestamp>,
    zone: Option<Tz>,
) -> String {
    let active = alerts
        .iter()
        .filter(|a| matches!(a.state(), pb::AlertState::Pending | pb::AlertState::Firing))
        .count();
    let mut text = format!(
        "Alerts as of {}: {active} active, {} today\n",
        instant(as_of, zone),
        alerts.len()
    );
    if alerts.is_empty() {
        return text;
    }
    let mut table = Table::new();
    table
        .load_style(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic);
    if table.width().is_some_and(|width| width < 40) {
        table.set_content_arrangement(ContentArrangement::Disabled);
    }
    table.set_header(
        [
            "alert",
            "state",
            "severity",
            "rule",
            "target",
            "value",
            "threshold",
            "since",
            "handled",
        ]
        .map(Cell::new),
    );
    for alert in alerts {
        let unit = alert.unit();
        let severity = severity_name(alert.severity());
        let severity = match alert.severity() {
            pb::AlertSeverity::Critical => Cell::new(severity).fg(Color::Red),
            pb::AlertSeverity::Warning => Cell::new(severity).fg(Color::Yellow),
            pb::AlertSeverity::Unspecified => Cell::new(severity),
        };
        let mut handled = Vec::new();
        if let Some(ack) = &alert.acknowledged {
            handled.push(format!(
                "ack by {} at {}",
                ack.by,
                time_of_day(ack.at.as_ref(), zone)
            ));
        }
        if let Some(silence) = &alert.silenced {
            handled.push(format!(
                "silenced by {} until {}",
                silence.by,
                time_of_day(silence.until.as_ref(), zone)
            ));
        }
        table.add_row(vec![
            Cell::new(&alert.id),
            Cell::new(state_name(alert.state())),
            severity,
            Cell::new(&alert.rule_name),
            Cell::new(target(alert)),
            Cell::new(value(alert.value, unit)),
            Cell::new(format!(
                "{} {}",
                if alert.comparator == "below" {
                    "<"
                } else {
                    ">"
                },
                value(Some(alert.threshold), unit)
            )),
            Cell::new(time_of_day(alert.since.as_ref(), zone)),
            Cell::new(if handled.is_empty() {
                "-".to_owned()
            } else {
                handled.join(", ")
            }),
        ]);
    }
    text.push_str(&format!("{table}\n"));
    text
}

/// The alerts of a day from the history: a line saying how many fired, the table of their
/// state at the end of the day (or now), then each alert's transitions, one per line.
pub fn day_list(date: &str, alerts: &[pb::Alert], zone: Option<Tz>) -> String {
    let fired = alerts
        .iter()
        .filter(|alert| {
            alert
                .history
                .iter()
                .any(|t| t.kind() == pb::AlertTransitionKind::Fired)
        })
        .count();
    let mut text = format!(
        "Alerts of {date}: {} with transitions, {fired} fired\n",
        alerts.len()
    );
    if alerts.is_empty() {
        return text;
    }
    let table = list(alerts, None, zone);
    // The table without list's own first line (the live view's counts).
    text.push_str(table.split_once('\n').map_or("", |(_, rest)| rest));
    for alert in alerts {
        text.push_str(&format!("\n{}:\n", alert.id));
        for transition in &alert.history {
            let change = pb::AlertChange {
                alert: alert.id.clone(),
                transition: Some(transition.clone()),
                current: Some(alert.clone()),
            };
            text.push_str(&format!("  {}\n", change_line(&change, zone)));
        }
        if alert.history_dropped > 0 {
            text.push_str(&format!(
                "  ({} earlier transitions not kept)\n",
                alert.history_dropped
            ));
        }
    }
    text
}

/// What `ack` and `silence` did.
fn done(answer: &pb::AlertResponse, zone: Option<Tz>) -> String {
    let Some(alert) = &answer.alert else {
        return "done (the server did not send the alert back)\n".to_owned();
    };
    if let Some(change) = alert.history.last() {
        let change = pb::AlertChange {
            alert: alert.id.clone(),
            transition: Some(change.clone()),
            current: Some(alert.clone()),
        };
        format!("{}\n", change_line(&change, zone))
    } else {
        format!("{}: {}\n", alert.id, state_name(alert.state()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn ts(seconds: i64) -> Option<prost_types::Timestamp> {
        Some(prost_types::Timestamp { seconds, nanos: 0 })
    }

    /// 2026-03-02 09:01:05 UTC, 10:01:05 in Paris.
    const AT: i64 = 1_772_442_065;

    fn alert() -> pb::Alert {
        pb::Alert {
            id: "longest-wait/queue/billing".into(),
            site: "paris".into(),
            rule: "longest-wait".into(),
            rule_name: "Caller waiting too long".into(),
            target: Some(pb::AlertTarget {
                kind: pb::AlertTargetKind::Queue.into(),
                id: "billing".into(),
            }),
            teams: vec!["team-a".into()],
            metric: "longest_wait".into(),
            comparator: "above".into(),
            unit: pb::AlertUnit::Seconds.into(),
            state: pb::AlertState::Firing.into(),
            severity: pb::AlertSeverity::Warning.into(),
            value: Some(65.0),
            threshold: 60.0,
            since: ts(AT - 65),
            ..Default::default()
        }
    }

    #[test]
    fn a_change_is_one_line_with_time_severity_rule_target_and_value_against_threshold() {
        let zone = Some(chrono_tz::Europe::Paris);
        let fired = pb::AlertChange {
            alert: "longest-wait/queue/billing".into(),
            transition: Some(pb::AlertTransition {
                kind: pb::AlertTransitionKind::Fired.into(),
                at: ts(AT),
                severity: pb::AlertSeverity::Warning.into(),
                value: Some(65.0),
                threshold: Some(60.0),
                ..Default::default()
            }),
            current: Some(alert()),
        };
        assert_eq!(
            change_line(&fired, zone),
            "10:01:05  FIRED         warning   Caller waiting too long (longest-wait)  queue billing  1m05s > 1m00s"
        );
        let acked = pb::AlertChange {
            transition: Some(pb::AlertTransition {
                kind: pb::AlertTransitionKind::Acknowledged.into(),
                at: ts(AT),
                severity: pb::AlertSeverity::Warning.into(),
                by: Some("camille".into()),
                ..Default::default()
            }),
            ..fired.clone()
        };
        assert!(
            change_line(&acked, None).ends_with("queue billing by camille"),
            "{}",
            change_line(&acked, None)
        );
        let gone = pb::AlertChange {
            transition: Some(pb::AlertTransition {
                kind: pb::AlertTransitionKind::Resolved.into(),
                at: ts(AT),
                cause: pb::AlertCause::RuleChanged.into(),
                ..Default::default()
            }),
            current: None,
            ..fired
        };
        assert_eq!(
            change_line(&gone, None),
            "09:01:05Z  resolved      -         longest-wait/queue/billing (no longer listed): rule changed"
        );
    }

    #[test]
    fn the_list_shows_state_values_in_their_unit_and_who_handled_it() {
        let mut silenced = alert();
        silenced.silenced = Some(pb::AlertSilence {
            until: ts(AT + 1800),
            by: "max".into(),
            at: ts(AT),
        });
        let mut gap = alert();
        gap.id = "sl/queue/billing".into();
        gap.unit = pb::AlertUnit::Fraction.into();
        gap.comparator = "below".into();
        gap.value = Some(-0.125);
        gap.threshold = 0.0;
        gap.state = pb::AlertState::Pending.into();
        gap.severity = pb::AlertSeverity::Unspecified.into();
        let text = list(&[silenced, gap], ts(AT).as_ref(), None);
        assert!(
            text.starts_with("Alerts as of 2026-03-02 09:01:05 UTC: 2 active, 2 today\n"),
            "{text}"
        );
        for expected in [
            "longest-wait/queue/billing",
            "firing",
            "1m05s",
            "> 1m00s",
            "silenced by max until 09:31:05Z",
            "pending",
            "-12.5%",
            "< 0.0%",
        ] {
            assert!(text.contains(expected), "{expected} not in\n{text}");
        }
        assert_eq!(
            list(&[], ts(AT).as_ref(), None),
            "Alerts as of 2026-03-02 09:01:05 UTC: 0 active, 0 today\n"
        );
        assert_eq!(value(Some(3.0), pb::AlertUnit::Count), "3");
    }

    #[test]
    fn silence_durations_are_human() {
        assert_eq!(parse_duration("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_duration("1h 30m").unwrap(), Duration::from_secs(5400));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("2d").is_err());
        assert!(parse_duration("soon").is_err());
    }
}
