//! Site configuration (queues, targets, teams) and the processor's own settings.
//!
//! Parsed from TOML by the binary (`[[site]]` and `[processing]` sections of `vigie.toml`,
//! documented in `docs/configuration.md`). Type errors come from the parser with their line;
//! [`SiteConfig::validate`] then reports every semantic problem at once, with its path.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::NaiveTime;
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::time::{DayCalendar, Millis};

/// Which service-level formula a queue, team or site reports as `service_level`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlVariant {
    /// answered within T / (answered + abandoned - short abandons). Genesys family.
    #[default]
    Offered,
    /// answered within T / answered. Asterisk SL, Wazo QoS.
    Answered,
    /// (answered within T + abandoned within T) / (answered + abandoned). Asterisk SL2.
    Positive,
}

impl SlVariant {
    /// The name used in views.
    pub fn as_str(self) -> &'static str {
        match self {
            SlVariant::Offered => "offered",
            SlVariant::Answered => "answered",
            SlVariant::Positive => "positive",
        }
    }
}

/// A duration written the human way in configuration files: `"20s"`, `"1m 30s"`, `"2h"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct HumanDuration(#[serde(with = "humantime_serde")] pub Duration);

impl HumanDuration {
    /// From whole seconds.
    pub const fn secs(secs: u64) -> HumanDuration {
        HumanDuration(Duration::from_secs(secs))
    }

    /// As core milliseconds.
    pub fn millis(self) -> Millis {
        Millis::from_std(self.0)
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

/// One contact-centre site.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    /// Site id, as events carry it in `site`.
    pub id: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// IANA time zone of the site (`Europe/Paris`); the "today" window follows it.
    #[serde(default = "default_time_zone")]
    pub time_zone: String,
    /// Local time at which the site's day starts, `HH:MM` (24/7 centres may choose `06:00`).
    #[serde(default = "default_day_start")]
    pub day_start: String,
    /// Service-level variant reported for the site and for queues and teams that do not set one.
    #[serde(default)]
    pub sl_variant: SlVariant,
    /// The site's queues. Queues that appear in events without being configured get the defaults.
    #[serde(default, rename = "queue")]
    pub queues: Vec<QueueConfig>,
    /// The site's teams and their rosters.
    #[serde(default, rename = "team")]
    pub teams: Vec<TeamConfig>,
}

fn default_time_zone() -> String {
    "UTC".to_owned()
}

fn default_day_start() -> String {
    "00:00".to_owned()
}

/// A queue and its targets.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    /// Queue id, as events carry it in `queue`.
    pub id: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Service-level answer time T: a contact answered (or abandoned) with a wait of at most T
    /// counts as within threshold.
    #[serde(default = "default_sl_threshold")]
    pub sl_threshold: HumanDuration,
    /// Service-level target, a fraction between 0 and 1.
    #[serde(default = "default_sl_target")]
    pub sl_target: f64,
    /// Abandons with a wait strictly below this are short abandons. `"0s"` disables.
    #[serde(default = "default_short_abandon")]
    pub short_abandon: HumanDuration,
    /// Service-level variant reported as `service_level`; the site's when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sl_variant: Option<SlVariant>,
    /// Target average handle time, for colouring and alerts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aht_target: Option<HumanDuration>,
}

fn default_sl_threshold() -> HumanDuration {
    HumanDuration::secs(20)
}

fn default_sl_target() -> f64 {
    0.80
}

fn default_short_abandon() -> HumanDuration {
    HumanDuration::secs(5)
}

impl QueueConfig {
    /// A queue with every default, as used for queues seen in events but not configured.
    pub fn with_defaults(id: impl Into<String>) -> QueueConfig {
        QueueConfig {
            id: id.into(),
            name: None,
            sl_threshold: default_sl_threshold(),
            sl_target: default_sl_target(),
            short_abandon: default_short_abandon(),
            sl_variant: None,
            aht_target: None,
        }
    }
}

/// A team: its advisors (the roster) and the queues of its campaign.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamConfig {
    /// Team id.
    pub id: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Advisor ids of the roster. Advisors not on any roster join the team named in their
    /// `advisor.login`, else the team `unassigned`.
    #[serde(default)]
    pub advisors: Vec<String>,
    /// Queues of the team's campaign: the team's queue indicators aggregate these.
    #[serde(default)]
    pub queues: Vec<String>,
    /// Service-level variant reported as the team's `service_level`; the site's when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sl_variant: Option<SlVariant>,
}

/// The team advisors join when neither the roster nor their login names one.
pub const UNASSIGNED_TEAM: &str = "unassigned";

/// How the processor trades exactness under disorder for memory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessingConfig {
    /// How late (behind the newest event of the site) an event may arrive and still be applied
    /// exactly, whatever the order. Older events are rejected as `too_late`.
    #[serde(default = "default_allowed_lateness")]
    pub allowed_lateness: HumanDuration,
    /// How long event ids are remembered to drop duplicates (at least `allowed_lateness`).
    #[serde(default = "default_dedupe_window")]
    pub dedupe_window: HumanDuration,
    /// A contact with no event for this long is given up (counted as expired): it frees the
    /// advisor and the queue it was holding.
    #[serde(default = "default_contact_expiry")]
    pub contact_expiry: HumanDuration,
    /// How long a completed contact is remembered, so that a stray event about it is rejected
    /// as `contact_completed` instead of opening a new contact.
    #[serde(default = "default_completed_contact_memory")]
    pub completed_contact_memory: HumanDuration,
}

fn default_allowed_lateness() -> HumanDuration {
    HumanDuration::secs(30)
}

fn default_dedupe_window() -> HumanDuration {
    HumanDuration::secs(120)
}

fn default_contact_expiry() -> HumanDuration {
    HumanDuration::secs(12 * 3600)
}

fn default_completed_contact_memory() -> HumanDuration {
    HumanDuration::secs(15 * 60)
}

impl Default for ProcessingConfig {
    fn default() -> Self {
        ProcessingConfig {
            allowed_lateness: default_allowed_lateness(),
            dedupe_window: default_dedupe_window(),
            contact_expiry: default_contact_expiry(),
            completed_contact_memory: default_completed_contact_memory(),
        }
    }
}

/// Every problem found in a configuration, each with its path.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<String>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} problem(s) in the configuration:", self.0.len())?;
        for problem in &self.0 {
            writeln!(f, "  - {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl ConfigErrors {
    fn push(&mut self, path: impl fmt::Display, problem: impl fmt::Display) {
        self.0.push(format!("{path}: {problem}"));
    }

    /// `Ok` when no problem was found.
    pub fn into_result(self) -> Result<(), ConfigErrors> {
        if self.0.is_empty() { Ok(()) } else { Err(self) }
    }

    /// Adds the problems of another validation.
    pub fn extend(&mut self, other: ConfigErrors) {
        self.0.extend(other.0);
    }
}

impl ProcessingConfig {
    /// Checks the settings; `path` prefixes the field names in messages.
    pub fn validate(&self, path: &str) -> Result<(), ConfigErrors> {
        let mut errors = ConfigErrors::default();
        if self.dedupe_window < self.allowed_lateness {
            errors.push(
                format!("{path}.dedupe_window"),
                format!(
                    "must be at least allowed_lateness ({}), found {}",
                    self.allowed_lateness, self.dedupe_window
                ),
            );
        }
        if self.contact_expiry.0 < Duration::from_secs(60) {
            errors.push(format!("{path}.contact_expiry"), "must be at least 1m");
        }
        if self.allowed_lateness.0 > Duration::from_secs(3600) {
            errors.push(format!("{path}.allowed_lateness"), "must be at most 1h");
        }
        errors.into_result()
    }
}

fn check_id(errors: &mut ConfigErrors, path: &str, id: &str) {
    if id.trim().is_empty() {
        errors.push(path, "must not be empty");
    } else if id.len() > crate::decode::MAX_ID_BYTES || id.chars().any(char::is_control) {
        errors.push(
            path,
            "must be at most 256 bytes, without control characters",
        );
    }
}

impl SiteConfig {
    /// A site with default settings and no queues or teams.
    pub fn with_defaults(id: impl Into<String>) -> SiteConfig {
        SiteConfig {
            id: id.into(),
            name: None,
            time_zone: default_time_zone(),
            day_start: default_day_start(),
            sl_variant: SlVariant::default(),
            queues: Vec::new(),
            teams: Vec::new(),
        }
    }

    /// The time zone, if it is a valid IANA name.
    pub fn zone(&self) -> Option<Tz> {
        Tz::from_str(&self.time_zone).ok()
    }

    /// The local day start, if it is a valid `HH:MM`.
    pub fn day_start_time(&self) -> Option<NaiveTime> {
        NaiveTime::parse_from_str(&self.day_start, "%H:%M").ok()
    }

    /// The site's day calendar (UTC midnight when the settings are invalid; validate first).
    pub fn calendar(&self) -> DayCalendar {
        DayCalendar::new(
            self.zone().unwrap_or(chrono_tz::UTC),
            self.day_start_time().unwrap_or(NaiveTime::MIN),
        )
    }

    /// Checks the site; `path` (such as `site[0]`) prefixes the field names in messages.
    pub fn validate(&self, path: &str) -> Result<(), ConfigErrors> {
        let mut errors = ConfigErrors::default();
        check_id(&mut errors, &format!("{path}.id"), &self.id);
        if self.zone().is_none() {
            errors.push(
                format!("{path}.time_zone"),
                format!(
                    "{:?} is not an IANA time zone name such as \"Europe/Paris\"",
                    self.time_zone
                ),
            );
        }
        if self.day_start_time().is_none() {
            errors.push(
                format!("{path}.day_start"),
                format!(
                    "{:?} is not a local time HH:MM such as \"06:00\"",
                    self.day_start
                ),
            );
        }
        let mut queue_ids = BTreeSet::new();
        for (index, queue) in self.queues.iter().enumerate() {
            let queue_path = format!("{path}.queue[{index}]");
            check_id(&mut errors, &format!("{queue_path}.id"), &queue.id);
            if !queue_ids.insert(queue.id.as_str()) {
                errors.push(
                    format!("{queue_path}.id"),
                    format!("queue {:?} is defined twice", queue.id),
                );
            }
            if !(0.0..=1.0).contains(&queue.sl_target) {
                errors.push(
                    format!("{queue_path}.sl_target"),
                    format!(
                        "must be a fraction between 0 and 1 (0.8 for 80%), found {}",
                        queue.sl_target
                    ),
                );
            }
            if queue.sl_threshold.0.is_zero() {
                errors.push(format!("{queue_path}.sl_threshold"), "must be more than 0s");
            }
        }
        let mut team_ids = BTreeSet::new();
        let mut rostered = std::collections::BTreeMap::new();
        for (index, team) in self.teams.iter().enumerate() {
            let team_path = format!("{path}.team[{index}]");
            check_id(&mut errors, &format!("{team_path}.id"), &team.id);
            if !team_ids.insert(team.id.as_str()) {
                errors.push(
                    format!("{team_path}.id"),
                    format!("team {:?} is defined twice", team.id),
                );
            }
            for (queue_index, queue) in team.queues.iter().enumerate() {
                if !queue_ids.contains(queue.as_str()) {
                    errors.push(
                        format!("{team_path}.queues[{queue_index}]"),
                        format!("queue {queue:?} is not defined in this site"),
                    );
                }
            }
            for (advisor_index, advisor) in team.advisors.iter().enumerate() {
                let advisor_path = format!("{team_path}.advisors[{advisor_index}]");
                check_id(&mut errors, &advisor_path, advisor);
                if let Some(other) = rostered.insert(advisor.as_str(), team.id.as_str()) {
                    errors.push(
                        advisor_path,
                        format!("advisor {advisor:?} is already on the roster of team {other:?}"),
                    );
                }
            }
        }
        errors.into_result()
    }
}

/// A change to a site's configuration made while Vigie runs (through the Admin API). Changes
/// are kept in order and replayed over the configuration file at start, so that a later edit
/// of the file still applies to what no change touched.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case", deny_unknown_fields)]
pub enum SiteChange {
    /// Creates a queue, or replaces all its settings.
    UpsertQueue {
        /// The queue's new settings.
        queue: QueueConfig,
    },
    /// Creates a team, or replaces all its settings; the advisors of its roster leave any
    /// other team's roster.
    UpsertTeam {
        /// The team's new settings.
        team: TeamConfig,
    },
    /// Moves an advisor to a team's roster, off any other roster.
    MoveAdvisor {
        /// Advisor id.
        advisor: String,
        /// The team they join, which must exist.
        team: String,
    },
}

impl SiteChange {
    /// The site with the change made (not validated: call [`SiteConfig::validate`] after).
    pub fn apply(&self, site: &mut SiteConfig) -> Result<(), String> {
        match self {
            SiteChange::UpsertQueue { queue } => {
                match site.queues.iter_mut().find(|q| q.id == queue.id) {
                    Some(existing) => *existing = queue.clone(),
                    None => site.queues.push(queue.clone()),
                }
            }
            SiteChange::UpsertTeam { team } => {
                for other in site.teams.iter_mut().filter(|t| t.id != team.id) {
                    other.advisors.retain(|a| !team.advisors.contains(a));
                }
                match site.teams.iter_mut().find(|t| t.id == team.id) {
                    Some(existing) => *existing = team.clone(),
                    None => site.teams.push(team.clone()),
                }
            }
            SiteChange::MoveAdvisor { advisor, team } => {
                if !site.teams.iter().any(|t| &t.id == team) {
                    return Err(format!("team {team:?} is not defined in this site"));
                }
                for roster in &mut site.teams {
                    roster.advisors.retain(|a| a != advisor);
                    if &roster.id == team {
                        roster.advisors.push(advisor.clone());
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        #[serde(default)]
        processing: ProcessingConfig,
        site: Vec<SiteConfig>,
    }

    #[test]
    fn changes_replace_settings_and_keep_one_roster_per_advisor() {
        let mut site = SiteConfig::with_defaults("s");
        let team = |id: &str, advisors: &[&str]| TeamConfig {
            id: id.into(),
            name: None,
            advisors: advisors.iter().map(|a| a.to_string()).collect(),
            queues: Vec::new(),
            sl_variant: None,
        };
        let mut queue = QueueConfig::with_defaults("q");
        SiteChange::UpsertQueue {
            queue: queue.clone(),
        }
        .apply(&mut site)
        .unwrap();
        queue.sl_target = 0.9;
        SiteChange::UpsertQueue { queue }.apply(&mut site).unwrap();
        assert_eq!(site.queues.len(), 1);
        assert_eq!(site.queues[0].sl_target, 0.9);

        SiteChange::UpsertTeam {
            team: team("red", &["a1", "a2"]),
        }
        .apply(&mut site)
        .unwrap();
        SiteChange::UpsertTeam {
            team: team("blue", &["a2"]),
        }
        .apply(&mut site)
        .unwrap();
        assert_eq!(site.teams[0].advisors, ["a1"], "a2 left red for blue");
        SiteChange::MoveAdvisor {
            advisor: "a1".into(),
            team: "blue".into(),
        }
        .apply(&mut site)
        .unwrap();
        assert!(site.teams[0].advisors.is_empty());
        assert_eq!(site.teams[1].advisors, ["a2", "a1"]);
        site.validate("site").unwrap();
        let error = SiteChange::MoveAdvisor {
            advisor: "a1".into(),
            team: "green".into(),
        }
        .apply(&mut site)
        .unwrap_err();
        assert!(error.contains("\"green\" is not defined"), "{error}");

        // Kept as JSON, read back the same.
        let change = SiteChange::MoveAdvisor {
            advisor: "a1".into(),
            team: "blue".into(),
        };
        let json = serde_json::to_string(&change).unwrap();
        assert_eq!(
            json,
            r#"{"change":"move_advisor","advisor":"a1","team":"blue"}"#
        );
        assert_eq!(serde_json::from_str::<SiteChange>(&json).unwrap(), change);
    }

    #[test]
    fn defaults_apply_when_fields_are_absent() {
        let file: File =
            toml::from_str("[[site]]\nid = \"paris\"\n[[site.queue]]\nid = \"billing\"\n").unwrap();
        let site = &file.site[0];
        assert_eq!(site.time_zone, "UTC");
        let queue = &site.queues[0];
        assert_eq!(queue.sl_threshold, HumanDuration::secs(20));
        assert_eq!(queue.sl_target, 0.8);
        assert_eq!(queue.short_abandon, HumanDuration::secs(5));
        assert_eq!(file.processing, ProcessingConfig::default());
        site.validate("site[0]").unwrap();
    }

    #[test]
    fn validation_reports_every_problem_with_its_path() {
        let text = r#"
[[site]]
id = "paris"
time_zone = "Europe/Pariss"
day_start = "25:00"
[[site.queue]]
id = "billing"
sl_target = 80
[[site.queue]]
id = "billing"
[[site.team]]
id = "a"
advisors = ["x", "y"]
queues = ["sales"]
[[site.team]]
id = "b"
advisors = ["x"]
"#;
        let file: File = toml::from_str(text).unwrap();
        let errors = file.site[0].validate("site[0]").unwrap_err();
        let all = errors.to_string();
        for expected in [
            "site[0].time_zone",
            "site[0].day_start",
            "site[0].queue[0].sl_target",
            "site[0].queue[1].id: queue \"billing\" is defined twice",
            "site[0].team[0].queues[0]: queue \"sales\"",
            "site[0].team[1].advisors[0]: advisor \"x\" is already on the roster of team \"a\"",
        ] {
            assert!(all.contains(expected), "missing {expected:?} in\n{all}");
        }
        assert_eq!(errors.0.len(), 6, "{all}");
    }

    #[test]
    fn unknown_fields_and_bad_durations_are_refused_by_the_parser() {
        let unknown = toml::from_str::<File>("[[site]]\nid = \"p\"\ntimezone = \"UTC\"\n");
        assert!(unknown.unwrap_err().to_string().contains("timezone"));
        let bad = toml::from_str::<File>(
            "[[site]]\nid = \"p\"\n[[site.queue]]\nid = \"q\"\nsl_threshold = \"twenty\"\n",
        );
        assert!(bad.unwrap_err().to_string().contains("sl_threshold"));
    }

    #[test]
    fn processing_settings_are_checked() {
        let config = ProcessingConfig {
            allowed_lateness: HumanDuration::secs(60),
            dedupe_window: HumanDuration::secs(30),
            ..ProcessingConfig::default()
        };
        let errors = config.validate("processing").unwrap_err();
        assert!(errors.0[0].starts_with("processing.dedupe_window"));
    }
}
