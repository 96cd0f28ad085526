//! Alert rules as the configuration file and the Admin API write them (`[[alert_rule]]`), their
//! validation, and the compiled form the engine evaluates.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use vigie_core::Window;
use vigie_core::config::{ConfigErrors, HumanDuration};

use crate::hours::{ActiveHours, DayOfWeek};
use crate::lifecycle::Policy;

/// One alert rule of a site: what to watch, where, and when to tell.
///
/// In `vigie.toml` a rule is a top-level `[[alert_rule]]` table naming its `site`; the Admin
/// API takes the same fields as JSON. `docs/alerts.md` documents every field with examples.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// The site the rule belongs to (the `id` of a `[[site]]`).
    pub site: String,
    /// Rule id, unique within the site: letters, digits, `-`, `_` and `.`. Alert ids start with
    /// it, so changing it starts the rule's alerts afresh.
    pub id: String,
    /// Human name, used as the title of messages ("Caller waiting too long").
    pub name: String,
    /// What the rule watches: `"site"`, `{ queue = "billing" }`, `{ team = "team-a" }`,
    /// `{ advisor = "a-102" }`, `{ all_advisors_of_team = "team-a" }`, `"every_queue"`,
    /// `"every_team"` or `"every_advisor"`. Scopes over several targets give one alert per
    /// target.
    pub scope: Scope,
    /// The indicator compared with the thresholds.
    pub metric: Metric,
    /// The window of a windowed metric (`today`, `15m`, `30m`, `60m`); required for those, not
    /// allowed for live metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<Window>,
    /// For `pause_duration` only: watch pauses with this reason code only (any reason when
    /// absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Whether the alert is on when the value goes `above` or `below` the thresholds
    /// (strictly).
    pub comparator: Comparator,
    /// The warning threshold. At least one of `warning` and `critical` is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<Threshold>,
    /// The critical threshold, beyond `warning` when both are set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub critical: Option<Threshold>,
    /// A firing alert resolves when the value no longer passes this threshold (hysteresis).
    /// Default: the warning threshold (the critical one without warning). Must be on the safe
    /// side of it: at most `warning` for `above`, at least `warning` for `below`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clear: Option<Threshold>,
    /// How long the condition must hold, on every evaluation, before the alert fires.
    #[serde(rename = "for", default = "zero")]
    pub hold_for: HumanDuration,
    /// A firing alert not acknowledged is notified again after this interval. Absent: never.
    /// At least `min_interval`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renotify: Option<HumanDuration>,
    /// Shortest time between two notifications of one alert (the flap guard): a change within
    /// it is told when it ends, if still true. Only the first escalation to critical of a
    /// firing alert is told at once.
    #[serde(default = "default_min_interval")]
    pub min_interval: HumanDuration,
    /// Local hours of the site when the rule is evaluated, `"HH:MM-HH:MM"` (`"22:00-06:00"`
    /// spans midnight; `"24:00"` ends at midnight). Outside, pending alerts reset and firing
    /// ones resolve. Absent: all day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_hours: Option<String>,
    /// Days when the rule is evaluated (`"mon"` .. `"sun"`, the day the active hours start).
    /// Absent: every day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_days: Option<Vec<DayOfWeek>>,
    /// For averages and ratios over a window: the figure counts only when it covers at least
    /// this many contacts (offered for `service_level`, `service_level_gap`, `abandon_rate`
    /// and `asa`; handled for `aht` and `aht_over_target`). 0 (default) disables the guard.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub min_volume: u64,
}

fn zero() -> HumanDuration {
    HumanDuration::secs(0)
}

fn default_min_interval() -> HumanDuration {
    HumanDuration::secs(5 * 60)
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// What a rule watches.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// The site as a whole (one alert, routed to the site).
    Site,
    /// One queue.
    Queue(String),
    /// One team.
    Team(String),
    /// One advisor.
    Advisor(String),
    /// Each advisor of a team, one alert per advisor.
    AllAdvisorsOfTeam(String),
    /// Each queue of the site, one alert per queue.
    EveryQueue,
    /// Each team of the site, one alert per team.
    EveryTeam,
    /// Each advisor of the site, one alert per advisor.
    EveryAdvisor,
}

impl Scope {
    /// The kind of target the scope's alerts are about.
    pub fn target_kind(&self) -> TargetKind {
        match self {
            Scope::Site => TargetKind::Site,
            Scope::Queue(_) | Scope::EveryQueue => TargetKind::Queue,
            Scope::Team(_) | Scope::EveryTeam => TargetKind::Team,
            Scope::Advisor(_) | Scope::AllAdvisorsOfTeam(_) | Scope::EveryAdvisor => {
                TargetKind::Advisor
            }
        }
    }

    fn named(&self) -> Option<(&'static str, &str)> {
        match self {
            Scope::Queue(id) => Some(("queue", id)),
            Scope::Team(id) => Some(("team", id)),
            Scope::Advisor(id) => Some(("advisor", id)),
            Scope::AllAdvisorsOfTeam(id) => Some(("all_advisors_of_team", id)),
            _ => None,
        }
    }
}

/// The kind of thing an alert is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    /// The site.
    Site,
    /// A queue.
    Queue,
    /// A team.
    Team,
    /// An advisor.
    Advisor,
}

impl TargetKind {
    /// The name used in alert ids and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Site => "site",
            TargetKind::Queue => "queue",
            TargetKind::Team => "team",
            TargetKind::Advisor => "advisor",
        }
    }
}

/// The indicator a rule compares (names of `docs/indicators.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Age of the oldest contact waiting, live (seconds). Site, queue, team.
    LongestWait,
    /// Contacts waiting, live (count). Site, queue, team.
    InQueue,
    /// `service_level` over the window (fraction). Site, queue, team.
    ServiceLevel,
    /// `service_level` minus the queue's `sl_target` (fraction: -0.05 is 5 points below).
    /// Queue only.
    ServiceLevelGap,
    /// `abandon_rate` over the window (fraction). Site, queue, team.
    AbandonRate,
    /// Average speed of answer over the window (seconds). Site, queue, team.
    Asa,
    /// Average handle time over the window (seconds). Site, queue, team, advisor.
    Aht,
    /// AHT over the queue's `aht_target` (fraction: 1.2 is 20% over). Queue only; no value
    /// for a queue without `aht_target`.
    AhtOverTarget,
    /// Occupancy over the window (fraction). Site, team, advisor.
    Occupancy,
    /// Advisors available and idle, live (count). Site, queue (its serving teams), team.
    AvailableAdvisors,
    /// Time in the current pause, live (seconds), optionally for one `reason`. Advisor.
    PauseDuration,
    /// Time in the current after-contact work, live (seconds). Advisor.
    AcwDuration,
    /// Time since the conversation in progress was answered, live (seconds), while talking or
    /// on hold. Advisor.
    ContactDuration,
    /// Offers not answered over the window (count). Site, team, advisor.
    MissedOffers,
    /// The live staffing gap: advisors staffed minus advisors Erlang C requires now for the
    /// service-level target (count: -2 is understaffed by 2), as in the queue and team views
    /// (`vigie_staffing::live`). Queue, team; no value when the estimate is undefined (no
    /// traffic over the last 30 minutes, no AHT, a target of 0 or 100%).
    StaffingGap,
}

/// What a metric's values measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// A fraction (0.8 is 80%).
    Fraction,
    /// Seconds.
    Seconds,
    /// A number of contacts or advisors.
    Count,
}

impl Metric {
    /// Every metric.
    pub const ALL: [Metric; 15] = [
        Metric::LongestWait,
        Metric::InQueue,
        Metric::ServiceLevel,
        Metric::ServiceLevelGap,
        Metric::AbandonRate,
        Metric::Asa,
        Metric::Aht,
        Metric::AhtOverTarget,
        Metric::Occupancy,
        Metric::AvailableAdvisors,
        Metric::PauseDuration,
        Metric::AcwDuration,
        Metric::ContactDuration,
        Metric::MissedOffers,
        Metric::StaffingGap,
    ];

    /// The name used in configuration and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::LongestWait => "longest_wait",
            Metric::InQueue => "in_queue",
            Metric::ServiceLevel => "service_level",
            Metric::ServiceLevelGap => "service_level_gap",
            Metric::AbandonRate => "abandon_rate",
            Metric::Asa => "asa",
            Metric::Aht => "aht",
            Metric::AhtOverTarget => "aht_over_target",
            Metric::Occupancy => "occupancy",
            Metric::AvailableAdvisors => "available_advisors",
            Metric::PauseDuration => "pause_duration",
            Metric::AcwDuration => "acw_duration",
            Metric::ContactDuration => "contact_duration",
            Metric::MissedOffers => "missed_offers",
            Metric::StaffingGap => "staffing_gap",
        }
    }

    /// The unit of its values.
    pub fn unit(self) -> Unit {
        match self {
            Metric::ServiceLevel
            | Metric::ServiceLevelGap
            | Metric::AbandonRate
            | Metric::AhtOverTarget
            | Metric::Occupancy => Unit::Fraction,
            Metric::LongestWait
            | Metric::Asa
            | Metric::Aht
            | Metric::PauseDuration
            | Metric::AcwDuration
            | Metric::ContactDuration => Unit::Seconds,
            Metric::InQueue
            | Metric::AvailableAdvisors
            | Metric::MissedOffers
            | Metric::StaffingGap => Unit::Count,
        }
    }

    /// Whether the metric is computed over a window (else it is live).
    pub fn windowed(self) -> bool {
        matches!(
            self,
            Metric::ServiceLevel
                | Metric::ServiceLevelGap
                | Metric::AbandonRate
                | Metric::Asa
                | Metric::Aht
                | Metric::AhtOverTarget
                | Metric::Occupancy
                | Metric::MissedOffers
        )
    }

    /// Whether `min_volume` applies.
    pub fn has_volume(self) -> bool {
        matches!(
            self,
            Metric::ServiceLevel
                | Metric::ServiceLevelGap
                | Metric::AbandonRate
                | Metric::Asa
                | Metric::Aht
                | Metric::AhtOverTarget
        )
    }

    /// Whether the metric exists for targets of this kind.
    pub fn applies_to(self, kind: TargetKind) -> bool {
        use Metric::*;
        match kind {
            TargetKind::Queue => matches!(
                self,
                LongestWait
                    | InQueue
                    | ServiceLevel
                    | ServiceLevelGap
                    | AbandonRate
                    | Asa
                    | Aht
                    | AhtOverTarget
                    | AvailableAdvisors
                    | StaffingGap
            ),
            TargetKind::Site => matches!(
                self,
                LongestWait
                    | InQueue
                    | ServiceLevel
                    | AbandonRate
                    | Asa
                    | Aht
                    | Occupancy
                    | AvailableAdvisors
                    | MissedOffers
            ),
            TargetKind::Team => matches!(
                self,
                LongestWait
                    | InQueue
                    | ServiceLevel
                    | AbandonRate
                    | Asa
                    | Aht
                    | Occupancy
                    | AvailableAdvisors
                    | MissedOffers
                    | StaffingGap
            ),
            TargetKind::Advisor => matches!(
                self,
                Aht | Occupancy | PauseDuration | AcwDuration | ContactDuration | MissedOffers
            ),
        }
    }

    /// Whether values of this metric are bounded fractions (thresholds beyond 1 are mistakes).
    fn bounded_fraction(self) -> bool {
        matches!(
            self,
            Metric::ServiceLevel
                | Metric::ServiceLevelGap
                | Metric::AbandonRate
                | Metric::Occupancy
        )
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The direction in which a value is bad.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Comparator {
    /// Bad when strictly above the threshold.
    Above,
    /// Bad when strictly below the threshold.
    Below,
}

impl Comparator {
    /// Whether `value` is on the bad side of `threshold`.
    pub fn passes(self, value: f64, threshold: f64) -> bool {
        match self {
            Comparator::Above => value > threshold,
            Comparator::Below => value < threshold,
        }
    }

    /// The name used in configuration and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Comparator::Above => "above",
            Comparator::Below => "below",
        }
    }
}

/// A threshold as written: a number in the metric's unit (`60`, `0.8`), a percentage for
/// fractions (`"80%"`), or a duration for seconds (`"15m"`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Threshold {
    /// A number in the metric's unit.
    Number(f64),
    /// A percentage (`"80%"` is 0.8).
    Percent(f64),
    /// A duration, for metrics in seconds.
    Duration(HumanDuration),
}

impl Threshold {
    /// The threshold in the metric's unit.
    pub fn value(self) -> f64 {
        match self {
            Threshold::Number(n) => n,
            Threshold::Percent(p) => p / 100.0,
            Threshold::Duration(d) => d.0.as_secs_f64(),
        }
    }

    fn check(self, metric: Metric) -> Result<(), String> {
        let unit = metric.unit();
        match self {
            Threshold::Number(n) | Threshold::Percent(n) if !n.is_finite() => {
                return Err("must be a finite number".to_owned());
            }
            Threshold::Percent(_) if unit != Unit::Fraction => {
                return Err(format!(
                    "a percentage is only for fractions; {metric} is in {}",
                    unit_name(unit)
                ));
            }
            Threshold::Duration(_) if unit != Unit::Seconds => {
                return Err(format!(
                    "a duration is only for metrics in seconds; {metric} is in {}",
                    unit_name(unit)
                ));
            }
            _ => {}
        }
        if metric.bounded_fraction() && !(-1.0..=1.0).contains(&self.value()) {
            return Err(format!(
                "{metric} is a fraction: write 0.8 or \"80%\", found {}",
                self.value()
            ));
        }
        Ok(())
    }
}

fn unit_name(unit: Unit) -> &'static str {
    match unit {
        Unit::Fraction => "fractions",
        Unit::Seconds => "seconds",
        Unit::Count => "counts",
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Threshold::Number(n) => write!(f, "{n}"),
            Threshold::Percent(p) => write!(f, "{p}%"),
            Threshold::Duration(d) => write!(f, "{d}"),
        }
    }
}

impl Serialize for Threshold {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Threshold::Number(n) => serializer.serialize_f64(*n),
            _ => serializer.collect_str(self),
        }
    }
}

impl<'de> Deserialize<'de> for Threshold {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Threshold, D::Error> {
        struct ThresholdVisitor;
        impl Visitor<'_> for ThresholdVisitor {
            type Value = Threshold;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number, a percentage such as \"80%\" or a duration such as \"15m\"")
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<Threshold, E> {
                Ok(Threshold::Number(n))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Threshold, E> {
                Ok(Threshold::Number(n as f64))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Threshold, E> {
                Ok(Threshold::Number(n as f64))
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Threshold, E> {
                if let Some(percent) = text.trim().strip_suffix('%') {
                    return percent
                        .trim()
                        .parse::<f64>()
                        .map(Threshold::Percent)
                        .map_err(|_| E::custom(format!("{text:?} is not a percentage")));
                }
                let parsed: Result<HumanDuration, E> =
                    HumanDuration::deserialize(de::value::StrDeserializer::<E>::new(text));
                parsed.map(Threshold::Duration).map_err(|_| {
                    E::custom(format!(
                        "{text:?} is neither a number, a percentage (\"80%\") nor a duration (\"15m\")"
                    ))
                })
            }
        }
        deserializer.deserialize_any(ThresholdVisitor)
    }
}

/// The longest rule or target id.
const MAX_ID_BYTES: usize = 256;

fn check_id(errors: &mut Vec<String>, path: &str, id: &str) {
    if id.trim().is_empty() {
        errors.push(format!("{path}: must not be empty"));
    } else if id.len() > MAX_ID_BYTES || id.chars().any(char::is_control) {
        errors.push(format!(
            "{path}: must be at most {MAX_ID_BYTES} bytes, without control characters"
        ));
    }
}

impl RuleConfig {
    /// Checks the rule; `path` (such as `alert_rule[3]`) prefixes the field names in messages.
    /// Every problem is reported.
    pub fn validate(&self, path: &str) -> Result<(), ConfigErrors> {
        let mut errors = Vec::new();
        self.check(path, &mut errors);
        ConfigErrors(errors).into_result()
    }

    fn check(&self, path: &str, errors: &mut Vec<String>) {
        check_id(errors, &format!("{path}.site"), &self.site);
        if self.id.is_empty()
            || self.id.len() > 64
            || !self
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            errors.push(format!(
                "{path}.id: {:?} must be 1 to 64 letters, digits, '-', '_' or '.'",
                self.id
            ));
        }
        check_id(errors, &format!("{path}.name"), &self.name);
        if let Some((field, id)) = self.scope.named() {
            check_id(errors, &format!("{path}.scope.{field}"), id);
        }
        let kind = self.scope.target_kind();
        if !self.metric.applies_to(kind) {
            let kinds: Vec<&str> = [
                TargetKind::Site,
                TargetKind::Queue,
                TargetKind::Team,
                TargetKind::Advisor,
            ]
            .into_iter()
            .filter(|k| self.metric.applies_to(*k))
            .map(TargetKind::as_str)
            .collect();
            errors.push(format!(
                "{path}.metric: {} does not apply to a {} (it applies to: {})",
                self.metric,
                kind.as_str(),
                kinds.join(", ")
            ));
        }
        match (self.metric.windowed(), self.window) {
            (true, None) => errors.push(format!(
                "{path}.window: {} needs a window: \"today\", \"15m\", \"30m\" or \"60m\"",
                self.metric
            )),
            (false, Some(_)) => errors.push(format!(
                "{path}.window: {} is live and takes no window",
                self.metric
            )),
            _ => {}
        }
        if let Some(reason) = &self.reason {
            if self.metric != Metric::PauseDuration {
                errors.push(format!(
                    "{path}.reason: only for pause_duration, not {}",
                    self.metric
                ));
            }
            check_id(errors, &format!("{path}.reason"), reason);
        }
        if self.min_volume > 0 && !self.metric.has_volume() {
            errors.push(format!(
                "{path}.min_volume: only for service_level, service_level_gap, abandon_rate, asa, aht and aht_over_target, not {}",
                self.metric
            ));
        }

        let mut thresholds_ok = true;
        for (field, threshold) in [
            ("warning", self.warning),
            ("critical", self.critical),
            ("clear", self.clear),
        ] {
            if let Some(threshold) = threshold
                && let Err(problem) = threshold.check(self.metric)
            {
                errors.push(format!("{path}.{field}: {problem}"));
                thresholds_ok = false;
            }
        }
        let better = |a: f64, b: f64| match self.comparator {
            Comparator::Above => a < b,
            Comparator::Below => a > b,
        };
        match (self.warning, self.critical) {
            (None, None) => errors.push(format!(
                "{path}: needs a warning or a critical threshold (or both)"
            )),
            (Some(warning), Some(critical))
                if thresholds_ok && !better(warning.value(), critical.value()) =>
            {
                errors.push(format!(
                    "{path}.critical: must be {} the warning threshold ({warning}) for comparator {}, found {critical}",
                    match self.comparator {
                        Comparator::Above => "above",
                        Comparator::Below => "below",
                    },
                    self.comparator.as_str()
                ));
            }
            _ => {}
        }
        if let (Some(clear), Some((field, onset))) = (
            self.clear,
            self.warning
                .map(|w| ("warning", w))
                .or(self.critical.map(|c| ("critical", c))),
        ) && thresholds_ok
            && better(onset.value(), clear.value())
        {
            errors.push(format!(
                "{path}.clear: must be on the safe side of the {field} threshold ({onset}): {} it for comparator {}, found {clear}",
                match self.comparator {
                    Comparator::Above => "at most",
                    Comparator::Below => "at least",
                },
                self.comparator.as_str()
            ));
        }

        if self.min_interval.0 > Duration::from_secs(24 * 3600) {
            errors.push(format!("{path}.min_interval: must be at most 24h"));
        }
        if self.hold_for.0 > Duration::from_secs(24 * 3600) {
            errors.push(format!("{path}.for: must be at most 24h"));
        }
        if let Some(renotify) = self.renotify {
            if renotify.0.is_zero() {
                errors.push(format!(
                    "{path}.renotify: must be more than 0s (leave it out to never re-notify)"
                ));
            } else if renotify < self.min_interval {
                errors.push(format!(
                    "{path}.renotify: must be at least min_interval ({}), found {renotify}",
                    self.min_interval
                ));
            }
        }
        if let Some(hours) = &self.active_hours
            && let Err(problem) = ActiveHours::parse(Some(hours), None)
        {
            errors.push(format!("{path}.active_hours: {problem}"));
        }
        if let Some(days) = &self.active_days
            && days.is_empty()
        {
            errors.push(format!(
                "{path}.active_days: must name at least one day (leave it out for every day)"
            ));
        }
    }

    /// The lifecycle settings of a valid rule.
    pub fn policy(&self) -> Policy {
        let warning = self.warning.map(Threshold::value);
        let critical = self.critical.map(Threshold::value);
        let onset = warning.or(critical).unwrap_or(0.0);
        Policy {
            comparator: self.comparator,
            warning,
            critical,
            clear: self.clear.map_or(onset, Threshold::value),
            hold_for: self.hold_for.millis(),
            renotify: self.renotify.map(HumanDuration::millis),
            min_interval: self.min_interval.millis(),
        }
    }
}

/// Checks a set of rules (all sites): each rule, and that no id is used twice in a site.
/// `path` names the list (`alert_rule`); messages read `alert_rule[3].warning: ...`.
pub fn validate_rules(rules: &[RuleConfig], path: &str) -> Result<(), ConfigErrors> {
    let mut errors = Vec::new();
    let mut seen: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for (index, rule) in rules.iter().enumerate() {
        let rule_path = format!("{path}[{index}]");
        rule.check(&rule_path, &mut errors);
        if let Some(first) = seen.insert((&rule.site, &rule.id), index) {
            errors.push(format!(
                "{rule_path}.id: rule {:?} of site {:?} is already defined at {path}[{first}]",
                rule.id, rule.site
            ));
        }
    }
    ConfigErrors(errors).into_result()
}

/// A rule ready to evaluate.
#[derive(Clone, Debug)]
pub(crate) struct Rule {
    pub config: RuleConfig,
    pub policy: Policy,
    pub hours: Option<ActiveHours>,
}

impl Rule {
    /// Compiles a rule that passed validation.
    pub fn compile(config: RuleConfig, path: &str) -> Result<Rule, ConfigErrors> {
        config.validate(path)?;
        let hours = if config.active_hours.is_some() || config.active_days.is_some() {
            Some(
                ActiveHours::parse(
                    config.active_hours.as_deref(),
                    config.active_days.as_deref(),
                )
                .map_err(|problem| ConfigErrors(vec![format!("{path}.active_hours: {problem}")]))?,
            )
        } else {
            None
        };
        Ok(Rule {
            policy: config.policy(),
            hours,
            config,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigie_core::time::Millis;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        alert_rule: Vec<RuleConfig>,
    }

    fn parse(text: &str) -> Vec<RuleConfig> {
        toml::from_str::<File>(text).unwrap().alert_rule
    }

    #[test]
    fn every_form_of_scope_and_threshold_parses() {
        let rules = parse(
            r#"
[[alert_rule]]
site = "paris"
id = "sl"
name = "Service level"
scope = { queue = "billing" }
metric = "service_level"
window = "30m"
comparator = "below"
warning = "80%"
critical = 0.6
clear = "85%"
for = "2m"
renotify = "30m"
min_interval = "10m"
active_hours = "08:00-20:00"
active_days = ["mon", "tue", "wed", "thu", "fri"]
min_volume = 10

[[alert_rule]]
site = "paris"
id = "pause.break"
name = "Break too long"
scope = { all_advisors_of_team = "team-a" }
metric = "pause_duration"
reason = "break"
comparator = "above"
warning = "15m"
critical = 1800

[[alert_rule]]
site = "paris"
id = "waiting"
name = "Callers waiting"
scope = "every_queue"
metric = "in_queue"
comparator = "above"
critical = 10
"#,
        );
        let sl = &rules[0];
        assert_eq!(sl.scope, Scope::Queue("billing".into()));
        assert_eq!(sl.window, Some(Window::Last30m));
        assert_eq!(sl.warning, Some(Threshold::Percent(80.0)));
        let policy = sl.policy();
        assert_eq!(policy.warning, Some(0.8));
        assert_eq!(policy.critical, Some(0.6));
        assert_eq!(policy.clear, 0.85);
        assert_eq!(policy.hold_for, Millis::from_mins(2));
        assert_eq!(policy.renotify, Some(Millis::from_mins(30)));
        assert_eq!(policy.min_interval, Millis::from_mins(10));
        let pause = rules[1].policy();
        assert_eq!(pause.warning, Some(900.0));
        assert_eq!(pause.critical, Some(1800.0));
        assert_eq!(pause.clear, 900.0, "clear defaults to warning");
        assert_eq!(pause.min_interval, Millis::from_mins(5));
        assert_eq!(pause.renotify, None);
        let waiting = rules[2].policy();
        assert_eq!(
            waiting.clear, 10.0,
            "clear defaults to critical without warning"
        );
        validate_rules(&rules, "alert_rule").unwrap();

        // Serialized and read back (the Admin API keeps rules as JSON).
        for rule in &rules {
            let json = serde_json::to_string(rule).unwrap();
            assert_eq!(
                &serde_json::from_str::<RuleConfig>(&json).unwrap(),
                rule,
                "{json}"
            );
        }
    }

    #[test]
    fn validation_reports_every_problem_with_its_path() {
        let rules = parse(
            r#"
[[alert_rule]]
site = "paris"
id = "bad id"
name = ""
scope = { queue = "" }
metric = "pause_duration"
window = "15m"
reason = "lunch"
comparator = "above"
min_volume = 3

[[alert_rule]]
site = "paris"
id = "sl"
name = "SL"
scope = "site"
metric = "service_level"
comparator = "below"
warning = 80
critical = "90%"
clear = "70%"
renotify = "1m"
active_hours = "8h-20h"
active_days = []

[[alert_rule]]
site = "paris"
id = "wait"
name = "Wait"
scope = "every_queue"
metric = "longest_wait"
reason = "lunch"
comparator = "above"
warning = "50%"
critical = 30
clear = 90

[[alert_rule]]
site = "paris"
id = "sl"
name = "Twice"
scope = "every_team"
metric = "occupancy"
comparator = "above"
warning = 0.9
"#,
        );
        let errors = validate_rules(&rules, "alert_rule").unwrap_err();
        let all = errors.to_string();
        for expected in [
            "alert_rule[0].id: \"bad id\" must be 1 to 64 letters",
            "alert_rule[0].name: must not be empty",
            "alert_rule[0].scope.queue: must not be empty",
            "alert_rule[0].metric: pause_duration does not apply to a queue (it applies to: advisor)",
            "alert_rule[0].window: pause_duration is live and takes no window",
            "alert_rule[2].reason: only for pause_duration, not longest_wait",
            "alert_rule[0].min_volume: only for service_level",
            "alert_rule[0]: needs a warning or a critical threshold",
            "alert_rule[1].window: service_level needs a window",
            "alert_rule[1].warning: service_level is a fraction: write 0.8 or \"80%\", found 80",
            "alert_rule[1].renotify: must be at least min_interval (5m), found 1m",
            "alert_rule[1].active_hours: \"8h-20h\" is not a range of local times",
            "alert_rule[1].active_days: must name at least one day",
            "alert_rule[2].warning: a percentage is only for fractions; longest_wait is in seconds",
            "alert_rule[3].window: occupancy needs a window",
            "alert_rule[3].id: rule \"sl\" of site \"paris\" is already defined at alert_rule[1]",
        ] {
            assert!(all.contains(expected), "missing {expected:?} in\n{all}");
        }
        assert_eq!(errors.0.len(), 16, "{all}");

        // Ordering of the thresholds, once they are valid numbers.
        let mut rule = rules[1].clone();
        rule.window = Some(Window::Last30m);
        rule.warning = Some(Threshold::Number(0.8));
        rule.renotify = None;
        rule.active_hours = None;
        rule.active_days = None;
        let all = rule.validate("r").unwrap_err().to_string();
        assert!(
            all.contains("r.critical: must be below the warning threshold (0.8) for comparator below, found 90%"),
            "{all}"
        );
        assert!(
            all.contains("r.clear: must be on the safe side of the warning threshold (0.8): at least it for comparator below, found 70%"),
            "{all}"
        );
        let mut rule = rules[2].clone();
        rule.warning = Some(Threshold::Duration(HumanDuration::secs(60)));
        rule.reason = None;
        let all = rule.validate("w").unwrap_err().to_string();
        assert!(
            all.contains("w.critical: must be above the warning threshold (1m) for comparator above, found 30"),
            "{all}"
        );
        assert!(
            all.contains(
                "w.clear: must be on the safe side of the warning threshold (1m): at most it"
            ),
            "{all}"
        );
    }

    #[test]
    fn staffing_gap_is_a_live_count_of_queues_and_teams() {
        let metric = Metric::StaffingGap;
        assert_eq!(
            (metric.as_str(), metric.unit()),
            ("staffing_gap", Unit::Count)
        );
        assert!(!metric.windowed() && !metric.has_volume());
        let kinds = [
            TargetKind::Site,
            TargetKind::Queue,
            TargetKind::Team,
            TargetKind::Advisor,
        ]
        .map(|kind| metric.applies_to(kind));
        assert_eq!(kinds, [false, true, true, false]);
        assert!(Metric::ALL.contains(&metric));

        let rules = parse(
            r#"
[[alert_rule]]
site = "paris"
id = "understaffed"
name = "Understaffed by 2 or more"
scope = "every_team"
metric = "staffing_gap"
comparator = "below"
warning = -1
critical = -3
for = "10m"

[[alert_rule]]
site = "paris"
id = "site-staffing"
name = "Site staffing"
scope = "site"
metric = "staffing_gap"
window = "30m"
comparator = "below"
warning = "-10%"
"#,
        );
        rules[0].validate("r").unwrap();
        let policy = rules[0].policy();
        assert_eq!((policy.warning, policy.critical), (Some(-1.0), Some(-3.0)));
        assert_eq!(policy.hold_for, Millis::from_mins(10));
        let all = rules[1].validate("alert_rule[1]").unwrap_err().to_string();
        for expected in [
            "alert_rule[1].metric: staffing_gap does not apply to a site (it applies to: queue, team)",
            "alert_rule[1].window: staffing_gap is live and takes no window",
            "alert_rule[1].warning: a percentage is only for fractions; staffing_gap is in counts",
        ] {
            assert!(all.contains(expected), "missing {expected:?} in\n{all}");
        }
    }

    #[test]
    fn the_parser_refuses_unknown_fields_and_malformed_thresholds() {
        let unknown = toml::from_str::<File>(
            "[[alert_rule]]\nsite = \"p\"\nid = \"x\"\nname = \"x\"\nscope = \"site\"\nmetric = \"in_queue\"\ncomparator = \"above\"\nwarning = 1\nthreshold = 2\n",
        );
        assert!(unknown.unwrap_err().to_string().contains("threshold"));
        let bad = toml::from_str::<File>(
            "[[alert_rule]]\nsite = \"p\"\nid = \"x\"\nname = \"x\"\nscope = \"site\"\nmetric = \"in_queue\"\ncomparator = \"above\"\nwarning = \"lots\"\n",
        );
        assert!(bad.unwrap_err().to_string().contains("neither a number"));
        let scope = toml::from_str::<File>(
            "[[alert_rule]]\nsite = \"p\"\nid = \"x\"\nname = \"x\"\nscope = { queues = \"q\" }\nmetric = \"in_queue\"\ncomparator = \"above\"\nwarning = 1\n",
        );
        assert!(scope.unwrap_err().to_string().contains("queues"));
    }
}
