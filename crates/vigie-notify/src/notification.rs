//! The input of the notifier: one alert event to tell people about, filled by the binary from
//! the alerts engine's transitions.

use serde::{Deserialize, Serialize};
use vigie_core::Timestamp;

/// One alert event to tell people about.
///
/// The notifier only reads it: it routes on `site`, `team`, `severity` and `kind`, and words
/// the messages from the rest. Identifiers are shown when no display name is given.
#[derive(Clone, Debug, PartialEq)]
pub struct Notification {
    /// Site identifier (first routing key, and a token of the NATS subject).
    pub site: String,
    /// The site's display name, shown instead of `site` when present.
    pub site_name: Option<String>,
    /// The site's IANA time zone (`Europe/Paris`): local times in messages and in the JSON
    /// payload are given in it. An unknown zone falls back to UTC.
    pub time_zone: String,
    /// Team the alert belongs to, the routing key of the team's channel; `None` for alerts of
    /// the site as a whole, which go to the site's default route (`_` in `teams` and in the NATS
    /// subject).
    pub team: Option<String>,
    /// The team's display name, shown instead of `team` when present.
    pub team_name: Option<String>,
    /// The alert's identifier: one alert per rule and target, kept across its transitions.
    pub alert_id: String,
    /// The rule's identifier.
    pub rule_id: String,
    /// The rule's name as written by whoever configured it (`SL Ventes sous l'objectif`).
    pub rule_name: String,
    /// What the rule watches.
    pub target_kind: TargetKind,
    /// Identifier of the queue, team, advisor or site watched.
    pub target_id: String,
    /// Display name of the target, shown instead of `target_id` when present.
    pub target_name: Option<String>,
    /// Indicator name (`service_level`, `longest_wait`, `abandon_rate`, `pause_duration`...),
    /// worded in the route's language when known (see [`crate::metric_label`]). A detail may
    /// follow a colon (`pause_duration:lunch`) and is shown in brackets.
    pub metric: String,
    /// Which side of the threshold is bad.
    pub comparator: Comparator,
    /// The alert's severity after this event.
    pub severity: Severity,
    /// What happened to the alert.
    pub kind: NotificationKind,
    /// The indicator's value when the event happened (the last value at resolution); `None`
    /// when there is none (no traffic, target gone).
    pub value: Option<f64>,
    /// The threshold of `severity` the value was compared to.
    pub threshold: f64,
    /// How `value` and `threshold` are written.
    pub unit: Unit,
    /// When the condition started (the alert's start, kept across escalations).
    pub since: Timestamp,
    /// When this event happened.
    pub at: Timestamp,
}

/// What an alert rule watches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    /// A whole site.
    Site,
    /// A queue.
    Queue,
    /// A team.
    Team,
    /// One advisor.
    Advisor,
}

impl TargetKind {
    /// The lowercase name used in the JSON payload.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Site => "site",
            TargetKind::Queue => "queue",
            TargetKind::Team => "team",
            TargetKind::Advisor => "advisor",
        }
    }
}

/// Which side of the threshold is bad.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Comparator {
    /// Values above the threshold are bad (waits, abandonment, pauses).
    Above,
    /// Values below the threshold are bad (service level, available advisors).
    Below,
}

impl Comparator {
    /// The lowercase name used in the JSON payload.
    pub fn as_str(self) -> &'static str {
        match self {
            Comparator::Above => "above",
            Comparator::Below => "below",
        }
    }
}

/// How bad an alert is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth a look.
    Warning,
    /// Act now.
    Critical,
}

impl Severity {
    /// The lowercase name used in the JSON payload and in route filters.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// What happened to an alert.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotificationKind {
    /// The condition held for the rule's `for` duration: the alert fires.
    Fired,
    /// The alert went from warning to critical.
    Escalated,
    /// The alert went from critical back to warning.
    DeEscalated,
    /// Still firing after the rule's re-notify interval.
    Renotified,
    /// The value came back past the clear threshold.
    Resolved,
    /// Someone said they are on it.
    Acknowledged {
        /// Who acknowledged (a user name from the API's token).
        by: String,
    },
    /// Someone silenced the alert for a while.
    Silenced {
        /// Who silenced it.
        by: String,
        /// Until when.
        until: Timestamp,
    },
}

impl NotificationKind {
    /// The kind without its data, as used in route filters.
    pub fn tag(&self) -> KindTag {
        match self {
            NotificationKind::Fired => KindTag::Fired,
            NotificationKind::Escalated => KindTag::Escalated,
            NotificationKind::DeEscalated => KindTag::DeEscalated,
            NotificationKind::Renotified => KindTag::Renotified,
            NotificationKind::Resolved => KindTag::Resolved,
            NotificationKind::Acknowledged { .. } => KindTag::Acknowledged,
            NotificationKind::Silenced { .. } => KindTag::Silenced,
        }
    }
}

/// The kind of a notification without its data: route filters (`kinds = ["fired"]`) and the
/// `kind` field of the JSON payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KindTag {
    /// [`NotificationKind::Fired`].
    Fired,
    /// [`NotificationKind::Escalated`].
    Escalated,
    /// [`NotificationKind::DeEscalated`].
    DeEscalated,
    /// [`NotificationKind::Renotified`].
    Renotified,
    /// [`NotificationKind::Resolved`].
    Resolved,
    /// [`NotificationKind::Acknowledged`].
    Acknowledged,
    /// [`NotificationKind::Silenced`].
    Silenced,
}

impl KindTag {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            KindTag::Fired => "fired",
            KindTag::Escalated => "escalated",
            KindTag::DeEscalated => "de_escalated",
            KindTag::Renotified => "renotified",
            KindTag::Resolved => "resolved",
            KindTag::Acknowledged => "acknowledged",
            KindTag::Silenced => "silenced",
        }
    }
}

/// How an indicator's values are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// A fraction between 0 and 1, shown as a percentage (`0.725` is `72.5%`, `72,5 %`).
    Fraction,
    /// Seconds, shown as `45s`, `1m05s`, `1h02m05s`.
    Seconds,
    /// A count (calls, advisors), shown as a number.
    Count,
}

impl Unit {
    /// The lowercase name used in the JSON payload.
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Fraction => "fraction",
            Unit::Seconds => "seconds",
            Unit::Count => "count",
        }
    }
}
