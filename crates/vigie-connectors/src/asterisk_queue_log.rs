//! Asterisk app_queue `queue_log` lines to canonical events.
//!
//! A line is `time|callid|queue|agent|EVENT|data1|data2|...` (Asterisk documentation,
//! "Queue Logs": <https://docs.asterisk.org/Operation/Logging/Queue-Logs/>). `time` is Unix
//! seconds in the file; the database form of the log (realtime `queue_log` table) stores a
//! local `YYYY-MM-DD HH:MM:SS[.ffffff]` date-time instead, read in the configured time zone.
//! Times are kept to the second either way: the file has nothing finer, and the database
//! form's microseconds would otherwise split the per-queue copies of one pause into several
//! events.
//!
//! | queue_log | canonical events | data used |
//! |---|---|---|
//! | `ENTERQUEUE` | `contact.queued` (voice) | none (the caller id is a phone number: dropped) |
//! | `CONNECT` | `contact.answered` | `holdtime` (wait), for a `contact.queued` at `time - holdtime` when the entry was not seen |
//! | `COMPLETEAGENT`, `COMPLETECALLER` | `contact.ended`, `contact.completed` at `time + wrapuptime` | checked: `holdtime`, `calltime` |
//! | `ABANDON` | `contact.abandoned` | `waittime` (entry when not seen) |
//! | `EXITWITHTIMEOUT` | `contact.dequeued` `timeout` | `waittime` |
//! | `EXITEMPTY` | `contact.dequeued` `closed` | `waittime` |
//! | `EXITWITHKEY` | `contact.dequeued` per key (default `voicemail`) | `key`, `waittime` |
//! | `RINGNOANSWER` | `contact.offered` at `time - ringtime`, `contact.missed` | `ringtime` (ms) |
//! | `TRANSFER`, `BLINDTRANSFER` | `contact.transferred` (`to_queue` from `extension@context`), `contact.completed` at `time + wrapuptime` | `extension`, `context` |
//! | `ATTENDEDTRANSFER` | `contact.transferred`, `contact.completed` | none (the target is not a dialplan place) |
//! | `PAUSE`, `PAUSEALL` | `advisor.state` `pause`, reason from data1 | `reason` |
//! | `UNPAUSE`, `UNPAUSEALL` | `advisor.state` `available` | none |
//! | `ADDMEMBER`, `AGENTLOGIN`, `AGENTCALLBACKLOGIN` | `advisor.login` at the first membership | none |
//! | `REMOVEMEMBER`, `AGENTLOGOFF`, `AGENTCALLBACKLOGOFF` | `advisor.logout` at the last | none |
//!
//! Every other event (`RINGCANCELED`, `CONFIGRELOAD`, `QUEUESTART`, `SYSCOMPAT`, `AGENTDUMP`,
//! custom `QueueLog()` events...) is skipped and counted, never an error.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{LocalResult, NaiveDateTime, TimeZone};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use vigie_core::decode::MAX_ID_BYTES;
use vigie_core::{
    AdvisorEvent, AdvisorEventKind, AdvisorStatus, Channel, ContactEvent, ContactEventKind,
    DequeueReason, Event, EventBody, Millis, Timestamp,
};
use xxhash_rust::xxh3::Xxh3;

/// How long the translator remembers a call (its queue entry, a transfer into a queue) and a
/// member after their last line, by default: longer than any wait, so that a late `CONNECT`
/// still finds the entry it follows.
pub const DEFAULT_CALL_MEMORY: Duration = Duration::from_secs(2 * 3600);

/// The most calls remembered at once, whatever the input; the oldest are forgotten first.
/// Ten times the calls a large site has open within [`DEFAULT_CALL_MEMORY`].
pub const MAX_REMEMBERED_CALLS: usize = 200_000;

/// The most distinct skipped event names counted one by one; further names count as `other`,
/// so that arbitrary input cannot grow the counters without bound.
pub(crate) const MAX_SKIPPED_NAMES: usize = 64;

/// The longest wait, ring or call a line may report (a week): anything longer is a corrupt
/// field, and would stamp events outside any day the core can hold.
pub(crate) const MAX_PLAUSIBLE_SECS: u64 = 7 * 24 * 3600;

/// The latest Unix second an RFC 3339 time can spell (9999-12-31T23:59:59Z).
pub(crate) const LAST_EPOCH_SECOND: i64 = 253_402_300_799;

/// The longest wrap-up accepted in configuration: a longer one is a typo (`"15m"` for
/// `"15s"`), and would stamp completions far ahead of the events that follow them.
pub(crate) const MAX_WRAPUP: Duration = Duration::from_secs(3600);

/// How a queue_log source is read: one Asterisk server (or one site's share of it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueLogConfig {
    /// Vigie site id the events belong to.
    pub site: String,
    /// IANA time zone of the Asterisk server, for the local date-times of the database form
    /// of the log (`2026-03-02 09:15:00.123456`); Unix seconds need none.
    #[serde(default = "default_time_zone")]
    pub time_zone: String,
    /// Per queue settings, by queue name (as `queues.conf` names them).
    #[serde(default)]
    pub queues: BTreeMap<String, QueueLogQueueConfig>,
    /// Advisor id of each member, by the agent field of the log: the interface
    /// (`PJSIP/1001`, `Local/1001@agents/n`), the member name when `log_membername_as_agent`
    /// is on, or the bare extension (`1001`) to cover every technology at once. Members not
    /// listed get their [normalised interface](normalise_member) as id.
    #[serde(default)]
    pub advisors: BTreeMap<String, String>,
    /// The queue a transfer target leads to, by `extension@context`: transfers to these
    /// places give `contact.transferred` with `to_queue`; others leave supervision.
    #[serde(default)]
    pub transfer_targets: BTreeMap<String, String>,
    /// Where each exit key sends the caller (`EXITWITHKEY`), by key.
    #[serde(default)]
    pub exit_keys: BTreeMap<String, ExitKeyReason>,
    /// Where an exit key not listed in `exit_keys` sends the caller.
    #[serde(default)]
    pub exit_key_default: ExitKeyReason,
    /// How long a call or member is remembered after its last line (`"2h"`).
    #[serde(default = "default_call_memory", with = "humantime_serde")]
    pub call_memory: Duration,
}

fn default_time_zone() -> String {
    "UTC".to_owned()
}

fn default_call_memory() -> Duration {
    DEFAULT_CALL_MEMORY
}

/// One queue's settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueLogQueueConfig {
    /// The queue's `wrapuptime` (`queues.conf`): the after-contact work that follows each
    /// call. Asterisk logs no end of wrap-up, so `contact.completed` is stamped this long
    /// after the end (or the transfer). Default 0: completed at the end's instant.
    #[serde(default, with = "humantime_serde")]
    pub wrapuptime: Duration,
}

/// Where the dialplan sends a caller who leaves a queue with a key (`EXITWITHKEY`).
///
/// The default is `voicemail`: the caller chose to leave the queue for the dialplan and is
/// not waiting for an advisor any more, which the contract counts as a flow-out, not an
/// abandon; leaving a message is the usual destination of an exit key (queues.conf
/// `context`), while `callback` promises a later callback contact the dialplan must create.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitKeyReason {
    /// The key leads to voicemail.
    #[default]
    Voicemail,
    /// The key records a callback request.
    Callback,
}

impl ExitKeyReason {
    fn dequeue_reason(self) -> DequeueReason {
        match self {
            ExitKeyReason::Voicemail => DequeueReason::Voicemail,
            ExitKeyReason::Callback => DequeueReason::Callback,
        }
    }
}

/// One problem of a configuration, with the field at fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigProblem {
    /// Path of the field (`queues.billing.wrapuptime`).
    pub field: String,
    /// What is wrong and what is expected.
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Every problem of a configuration, reported at once.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid queue_log configuration: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct ConfigErrors(pub Vec<ConfigProblem>);

impl QueueLogConfig {
    /// The defaults for a site: UTC, no wrap-up, advisors named by their interface.
    pub fn new(site: impl Into<String>) -> QueueLogConfig {
        QueueLogConfig {
            site: site.into(),
            time_zone: default_time_zone(),
            queues: BTreeMap::new(),
            advisors: BTreeMap::new(),
            transfer_targets: BTreeMap::new(),
            exit_keys: BTreeMap::new(),
            exit_key_default: ExitKeyReason::default(),
            call_memory: DEFAULT_CALL_MEMORY,
        }
    }

    /// Checks the configuration and builds the translator.
    pub fn build(&self) -> Result<QueueLogTranslator, ConfigErrors> {
        let mut problems = Vec::new();
        let mut check_id = |field: String, value: &str| {
            if let Err(why) = identifier_problem(value) {
                problems.push(ConfigProblem {
                    field,
                    message: format!("{value:?} is not a valid identifier: {why}"),
                });
            }
        };
        check_id("site".to_owned(), &self.site);
        for (member, advisor) in &self.advisors {
            check_id(format!("advisors.{member:?}"), advisor);
        }
        for (target, queue) in &self.transfer_targets {
            check_id(format!("transfer_targets.{target:?}"), queue);
        }
        for queue in self.queues.keys() {
            check_id(format!("queues.{queue:?}"), queue);
        }
        let zone = Tz::from_str(&self.time_zone);
        if zone.is_err() {
            problems.push(ConfigProblem {
                field: "time_zone".to_owned(),
                message: format!(
                    "{:?} is not an IANA time zone such as Europe/Paris",
                    self.time_zone
                ),
            });
        }
        for (queue, settings) in &self.queues {
            if settings.wrapuptime > MAX_WRAPUP {
                problems.push(ConfigProblem {
                    field: format!("queues.{queue:?}.wrapuptime"),
                    message: format!(
                        "{} is longer than the maximum of 1h",
                        humantime_serde::re::humantime::format_duration(settings.wrapuptime)
                    ),
                });
            }
        }
        if self.call_memory < Duration::from_secs(60) {
            problems.push(ConfigProblem {
                field: "call_memory".to_owned(),
                message: "must be at least 1m, to absorb lines out of order".to_owned(),
            });
        }
        let zone = match zone {
            Ok(zone) if problems.is_empty() => zone,
            _ => return Err(ConfigErrors(problems)),
        };
        Ok(QueueLogTranslator {
            site: self.site.clone(),
            zone,
            wrapup: self
                .queues
                .iter()
                .map(|(queue, settings)| (queue.clone(), Millis::from_std(settings.wrapuptime)))
                .collect(),
            advisors: self.advisors.clone(),
            transfer_targets: self.transfer_targets.clone(),
            exit_keys: self
                .exit_keys
                .iter()
                .map(|(key, reason)| (key.clone(), reason.dequeue_reason()))
                .collect(),
            exit_key_default: self.exit_key_default.dequeue_reason(),
            call_memory: Millis::from_std(self.call_memory),
            calls: BTreeMap::new(),
            members: BTreeMap::new(),
            newest: None,
            last_sweep: None,
            stats: TranslatorStats::default(),
        })
    }
}

/// Why a line is malformed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LineProblem {
    /// Fewer than the five fields every line has.
    #[error(
        "{found} field(s) separated by '|', expected at least 5 (time|callid|queue|agent|event)"
    )]
    TooFewFields {
        /// Fields found.
        found: usize,
    },
    /// The time is neither Unix seconds nor a local date-time.
    #[error(
        "time {0:?} is neither Unix seconds (0 to 253402300799) nor a local date-time YYYY-MM-DD HH:MM:SS[.ffffff]"
    )]
    BadTime(String),
    /// A local date-time skipped by a daylight-saving change.
    #[error("local time {time:?} does not exist in time zone {zone} (skipped by a clock change)")]
    NonexistentLocalTime {
        /// The time field.
        time: String,
        /// The configured zone.
        zone: String,
    },
    /// A field the event needs is empty (or `NONE`).
    #[error("{event} needs the {field} field, which is empty or NONE")]
    MissingField {
        /// The event name.
        event: String,
        /// The field.
        field: &'static str,
    },
    /// A numeric data field is not a plausible whole number.
    #[error("{event} field {field} is {value:?}, expected a whole number from 0 to {max}")]
    BadNumber {
        /// The event name.
        event: String,
        /// The field.
        field: &'static str,
        /// The field as found (cut at 64 bytes).
        value: String,
        /// The largest accepted value.
        max: u64,
    },
    /// A field that becomes an identifier breaks the contract's identifier rules.
    #[error("{field} {value:?} cannot be an identifier: {why}")]
    InvalidIdentifier {
        /// The field.
        field: &'static str,
        /// The value (cut at 64 bytes).
        value: String,
        /// Which rule it breaks.
        why: &'static str,
    },
}

/// A line that cannot be translated: its number (from 1) and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("queue_log line {line}: {problem}")]
pub struct MalformedLine {
    /// Line number, from 1.
    pub line: u64,
    /// What is wrong.
    pub problem: LineProblem,
}

/// What one line gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LineOutcome {
    /// The events to publish, in the order to apply them (possibly none: a line whose step
    /// another line already published, such as the `ENTERQUEUE` that follows a transfer into
    /// a queue, or a member added to a second queue).
    Events(Vec<Event>),
    /// An event type with no counterpart in the contract; counted in
    /// [`TranslatorStats::skipped`].
    Skipped {
        /// The event name.
        event: String,
    },
    /// An empty line.
    Blank,
}

/// Running counts of what the translator did, for metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TranslatorStats {
    /// Lines read, blank and malformed ones included.
    pub lines: u64,
    /// Blank lines.
    pub blank: u64,
    /// Malformed lines.
    pub malformed: u64,
    /// Events produced.
    pub events: u64,
    /// Lines skipped, by event name (names beyond the first 64 count as `other`).
    pub skipped: BTreeMap<String, u64>,
    /// `ENTERQUEUE` lines that follow a transfer into the same queue: the transfer was the
    /// entry, so they give no event.
    pub entries_merged_into_transfers: u64,
    /// Calls forgotten before their memory ran out, because [`MAX_REMEMBERED_CALLS`] was hit.
    pub calls_evicted: u64,
}

/// What the translator remembers of a call.
#[derive(Clone, Debug)]
struct CallMemory {
    /// The queue it entered last and when (`ENTERQUEUE`).
    entered: Option<(String, Timestamp)>,
    /// The queue a member transferred it into and when.
    transferred_into: Option<(String, Timestamp)>,
    last_seen: Timestamp,
}

/// What the translator remembers of a member (by advisor id).
#[derive(Clone, Debug, Default)]
struct MemberMemory {
    /// Queues they were added to and not removed from.
    queues: BTreeSet<String>,
    /// Logged in through an agent login (`AGENTLOGIN`), which outlives queue membership.
    agent_session: bool,
    /// When their session started, while it lasts.
    logged_in_at: Option<Timestamp>,
    /// When their session ended, once it has.
    logged_out_at: Option<Timestamp>,
    last_seen: Timestamp,
}

/// Translates queue_log lines of one source, in the order they are read. Built by
/// [`QueueLogConfig::build`].
#[derive(Debug)]
pub struct QueueLogTranslator {
    site: String,
    zone: Tz,
    wrapup: BTreeMap<String, Millis>,
    advisors: BTreeMap<String, String>,
    transfer_targets: BTreeMap<String, String>,
    exit_keys: BTreeMap<String, DequeueReason>,
    exit_key_default: DequeueReason,
    call_memory: Millis,
    calls: BTreeMap<String, CallMemory>,
    members: BTreeMap<String, MemberMemory>,
    /// The newest line time seen: the clock that expires memory.
    newest: Option<Timestamp>,
    last_sweep: Option<Timestamp>,
    stats: TranslatorStats,
}

/// The fields of one line.
struct Line<'a> {
    /// The line as read, without its line ending: what event ids are derived from.
    text: &'a str,
    time: Timestamp,
    callid: &'a str,
    queue: &'a str,
    agent: &'a str,
    event: &'a str,
    data: Vec<&'a str>,
}

impl Line<'_> {
    fn data(&self, index: usize) -> &str {
        self.data.get(index).map_or("", |field| field.trim())
    }
}

/// Whether a field holds nothing: empty, or Asterisk's placeholder `NONE`.
pub(crate) fn is_absent(field: &str) -> bool {
    let field = field.trim();
    field.is_empty() || field == "NONE"
}

/// The contract's identifier rules (docs/events.md, "Identifiers").
pub(crate) fn identifier_problem(value: &str) -> Result<(), &'static str> {
    if value.trim().is_empty() {
        Err("empty or only white space")
    } else if value.len() > MAX_ID_BYTES {
        Err("longer than 256 bytes")
    } else if value.chars().any(char::is_control) {
        Err("holds a control character")
    } else {
        Ok(())
    }
}

/// At most 64 bytes of a field, for error messages.
pub(crate) fn excerpt(value: &str) -> String {
    let mut end = value.len().min(64);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    value[..end].to_owned()
}

/// The advisor id a member interface gets when the configuration does not name one: the
/// interface without its technology (`PJSIP/`, `SIP/`, `IAX2/`, `Local/`, `Agent/`) and
/// without a `@context` and the options after it (`/n`). `PJSIP/1001`, `SIP/1001`,
/// `Agent/1001` and `Local/1001@agents/n` are all `1001`; a member name without `/`
/// (`log_membername_as_agent`) is kept as it is, trimmed.
pub fn normalise_member(member: &str) -> &str {
    let member = member.trim();
    let without_technology = member.split_once('/').map_or(member, |(_, rest)| rest);
    let without_context = without_technology
        .split_once('@')
        .map_or(without_technology, |(exten, _)| exten);
    let bare = without_context.trim();
    if bare.is_empty() { member } else { bare }
}

impl QueueLogTranslator {
    /// Counts so far.
    pub fn stats(&self) -> &TranslatorStats {
        &self.stats
    }

    /// Calls remembered now (bounded by [`MAX_REMEMBERED_CALLS`] and the call memory).
    pub fn remembered_calls(&self) -> usize {
        self.calls.len()
    }

    /// Members remembered now.
    pub fn remembered_members(&self) -> usize {
        self.members.len()
    }

    /// The advisor id of a member, as the configuration maps it: the member as written, else
    /// its normalised form, else the normalised form itself.
    pub fn advisor_of<'a>(&'a self, member: &'a str) -> &'a str {
        let member = member.trim();
        if let Some(advisor) = self.advisors.get(member) {
            return advisor;
        }
        let normalised = normalise_member(member);
        self.advisors
            .get(normalised)
            .map_or(normalised, String::as_str)
    }

    /// Translates a whole text (a file, or the part of it read so far), line by line from
    /// line 1: the events in order, and every malformed line.
    pub fn translate_text(&mut self, text: &str) -> (Vec<Event>, Vec<MalformedLine>) {
        let mut events = Vec::new();
        let mut malformed = Vec::new();
        for (index, line) in text.split('\n').enumerate() {
            match self.translate_line(index as u64 + 1, line) {
                Ok(LineOutcome::Events(produced)) => events.extend(produced),
                Ok(LineOutcome::Skipped { .. } | LineOutcome::Blank) => {}
                Err(error) => malformed.push(error),
            }
        }
        (events, malformed)
    }

    /// Translates one line (`line_number` counts from 1 and only names the line in errors).
    pub fn translate_line(
        &mut self,
        line_number: u64,
        line: &str,
    ) -> Result<LineOutcome, MalformedLine> {
        self.stats.lines += 1;
        let text = line.trim_end_matches(['\r', '\n']);
        if text.trim().is_empty() {
            self.stats.blank += 1;
            return Ok(LineOutcome::Blank);
        }
        match self.translate(text) {
            Ok(outcome) => {
                if let LineOutcome::Events(events) = &outcome {
                    self.stats.events += events.len() as u64;
                }
                Ok(outcome)
            }
            Err(problem) => {
                self.stats.malformed += 1;
                Err(MalformedLine {
                    line: line_number,
                    problem,
                })
            }
        }
    }

    fn translate(&mut self, text: &str) -> Result<LineOutcome, LineProblem> {
        let fields: Vec<&str> = text.split('|').collect();
        if fields.len() < 5 {
            return Err(LineProblem::TooFewFields {
                found: fields.len(),
            });
        }
        let line = Line {
            text,
            time: self.parse_time(fields[0].trim())?,
            callid: fields[1].trim(),
            queue: fields[2].trim(),
            agent: fields[3].trim(),
            event: fields[4].trim(),
            data: fields[5..].to_vec(),
        };
        if line.event.is_empty() {
            return Err(LineProblem::MissingField {
                event: "a line".to_owned(),
                field: "event",
            });
        }
        self.observe(line.time);
        let events = match line.event {
            "ENTERQUEUE" => self.enter_queue(&line)?,
            "CONNECT" => self.connect(&line)?,
            "COMPLETEAGENT" | "COMPLETECALLER" => self.complete(&line)?,
            "ABANDON" => self.leave_unanswered(&line, 2, None)?,
            "EXITWITHTIMEOUT" => self.leave_unanswered(&line, 2, Some(DequeueReason::Timeout))?,
            "EXITEMPTY" => self.leave_unanswered(&line, 2, Some(DequeueReason::Closed))?,
            "EXITWITHKEY" => {
                let reason = self
                    .exit_keys
                    .get(line.data(0))
                    .copied()
                    .unwrap_or(self.exit_key_default);
                self.leave_unanswered(&line, 3, Some(reason))?
            }
            "RINGNOANSWER" => self.ring_no_answer(&line)?,
            "TRANSFER" | "BLINDTRANSFER" => {
                let target = format!("{}@{}", line.data(0), line.data(1));
                let to_queue = self.transfer_targets.get(&target).cloned();
                self.transfer(&line, to_queue)?
            }
            "ATTENDEDTRANSFER" => self.transfer(&line, None)?,
            "PAUSE" | "PAUSEALL" => {
                let reason = line.data(0);
                let status = if reason.is_empty() {
                    // The contract records a pause without reason as `unspecified`.
                    AdvisorStatus::Pause {
                        reason: vigie_core::event::UNSPECIFIED_PAUSE_REASON.to_owned(),
                    }
                } else {
                    check_identifier("pause reason", reason)?;
                    AdvisorStatus::Pause {
                        reason: reason.to_owned(),
                    }
                };
                self.advisor_state(&line, status)?
            }
            "UNPAUSE" | "UNPAUSEALL" => self.advisor_state(&line, AdvisorStatus::Available)?,
            "ADDMEMBER" | "AGENTLOGIN" | "AGENTCALLBACKLOGIN" => self.member_joins(&line)?,
            "REMOVEMEMBER" | "AGENTLOGOFF" | "AGENTCALLBACKLOGOFF" => self.member_leaves(&line)?,
            other => {
                let known = self.stats.skipped.contains_key(other)
                    || self.stats.skipped.len() < MAX_SKIPPED_NAMES;
                let name = if known { other } else { "other" };
                *self.stats.skipped.entry(name.to_owned()).or_default() += 1;
                return Ok(LineOutcome::Skipped {
                    event: other.to_owned(),
                });
            }
        };
        Ok(LineOutcome::Events(events))
    }

    /// Unix seconds, or a local date-time of the database form; kept to the second.
    fn parse_time(&self, field: &str) -> Result<Timestamp, LineProblem> {
        if !field.is_empty() && field.bytes().all(|b| b.is_ascii_digit()) {
            return match field.parse::<i64>() {
                Ok(secs) if secs <= LAST_EPOCH_SECOND => Ok(Timestamp(secs * 1000)),
                _ => Err(LineProblem::BadTime(excerpt(field))),
            };
        }
        let local = NaiveDateTime::parse_from_str(field, "%Y-%m-%d %H:%M:%S%.f")
            .map_err(|_| LineProblem::BadTime(excerpt(field)))?;
        let instant = match self.zone.from_local_datetime(&local) {
            LocalResult::Single(instant) => instant,
            // A repeated hour (autumn clock change): the first of the two, as Asterisk
            // wrote the lines in order and the first comes first.
            LocalResult::Ambiguous(first, _) => first,
            LocalResult::None => {
                return Err(LineProblem::NonexistentLocalTime {
                    time: excerpt(field),
                    zone: self.zone.name().to_owned(),
                });
            }
        };
        let secs = instant.timestamp();
        if !(0..=LAST_EPOCH_SECOND).contains(&secs) {
            return Err(LineProblem::BadTime(excerpt(field)));
        }
        Ok(Timestamp(secs * 1000))
    }

    /// Moves the memory clock and forgets what is older than the call memory (at most once a
    /// minute of source time: a sweep reads every entry).
    fn observe(&mut self, time: Timestamp) {
        let newest = self.newest.map_or(time, |newest| newest.max(time));
        self.newest = Some(newest);
        if self
            .last_sweep
            .is_some_and(|last| newest - last < Millis::from_secs(60))
        {
            return;
        }
        self.last_sweep = Some(newest);
        let horizon = newest - self.call_memory;
        self.calls.retain(|_, call| call.last_seen >= horizon);
        self.members.retain(|_, member| {
            member.last_seen >= horizon || !member.queues.is_empty() || member.agent_session
        });
    }

    /// The memory of a call, created if needed; its last sighting moves to `time`.
    fn call_mut(&mut self, callid: &str, time: Timestamp) -> &mut CallMemory {
        if !self.calls.contains_key(callid) && self.calls.len() >= MAX_REMEMBERED_CALLS {
            self.evict_oldest_calls();
        }
        let call = self
            .calls
            .entry(callid.to_owned())
            .or_insert_with(|| CallMemory {
                entered: None,
                transferred_into: None,
                last_seen: time,
            });
        call.last_seen = call.last_seen.max(time);
        call
    }

    /// Forgets the oldest tenth of the calls, so that eviction is rare even when full.
    fn evict_oldest_calls(&mut self) {
        let mut seen: Vec<Timestamp> = self.calls.values().map(|call| call.last_seen).collect();
        seen.sort_unstable();
        let cutoff = seen[seen.len() / 10];
        let before = self.calls.len();
        self.calls.retain(|_, call| call.last_seen > cutoff);
        self.stats.calls_evicted += (before - self.calls.len()) as u64;
    }

    fn contact_of<'a>(&self, line: &Line<'a>) -> Result<&'a str, LineProblem> {
        if is_absent(line.callid) || line.callid == "REALTIME" {
            return Err(LineProblem::MissingField {
                event: line.event.to_owned(),
                field: "callid",
            });
        }
        check_identifier("callid", line.callid)?;
        Ok(line.callid)
    }

    fn queue_of<'a>(&self, line: &Line<'a>) -> Result<&'a str, LineProblem> {
        if is_absent(line.queue) {
            return Err(LineProblem::MissingField {
                event: line.event.to_owned(),
                field: "queue",
            });
        }
        check_identifier("queue", line.queue)?;
        Ok(line.queue)
    }

    fn advisor_for(&self, line: &Line<'_>) -> Result<String, LineProblem> {
        if is_absent(line.agent) {
            return Err(LineProblem::MissingField {
                event: line.event.to_owned(),
                field: "agent",
            });
        }
        let advisor = self.advisor_of(line.agent);
        check_identifier("agent", advisor)?;
        Ok(advisor.to_owned())
    }

    fn wrapup_of(&self, queue: &str) -> Millis {
        self.wrapup.get(queue).copied().unwrap_or(Millis::ZERO)
    }

    /// A contact event of this line, about its call; `suffix` tells the line's events apart.
    fn contact_event(
        &self,
        line: &Line<'_>,
        suffix: &str,
        time: Timestamp,
        kind: ContactEventKind,
        queue: Option<&str>,
        advisor: Option<&str>,
    ) -> Event {
        let channel = matches!(kind, ContactEventKind::Queued | ContactEventKind::Answered)
            .then_some(Channel::Voice);
        Event {
            id: self.line_id(line, suffix),
            time,
            site: self.site.clone(),
            body: EventBody::Contact(ContactEvent {
                contact: line.callid.to_owned(),
                kind,
                queue: queue.map(str::to_owned),
                channel,
                advisor: advisor.map(str::to_owned),
            }),
        }
    }

    /// `aql-` and the XXH3-128 of the site and the line, then the event's suffix: the same
    /// line always gives the same ids, and the same line from two sites does not.
    fn line_id(&self, line: &Line<'_>, suffix: &str) -> String {
        let mut hasher = Xxh3::new();
        hasher.update(self.site.as_bytes());
        hasher.update(b"\n");
        hasher.update(line.text.as_bytes());
        format!("aql-{:032x}-{suffix}", hasher.digest128())
    }

    /// An advisor event's id comes from the advisor, the second and the step, not from the
    /// line: Asterisk repeats a pause (and a membership) in every queue of the member, and
    /// those repeats must be one event.
    fn advisor_event(&self, advisor: &str, time: Timestamp, kind: AdvisorEventKind) -> Event {
        let mut hasher = Xxh3::new();
        hasher.update(self.site.as_bytes());
        hasher.update(b"\n");
        hasher.update(advisor.as_bytes());
        hasher.update(b"\n");
        hasher.update(&time.0.to_le_bytes());
        let step = match &kind {
            AdvisorEventKind::Login { .. } => "login".to_owned(),
            AdvisorEventKind::Logout => "logout".to_owned(),
            AdvisorEventKind::State(AdvisorStatus::Available) => "available".to_owned(),
            AdvisorEventKind::State(AdvisorStatus::Pause { reason }) => format!("pause\n{reason}"),
        };
        hasher.update(step.as_bytes());
        let suffix = step.split('\n').next().unwrap_or_default().to_owned();
        Event {
            id: format!("aql-{:032x}-{suffix}", hasher.digest128()),
            time,
            site: self.site.clone(),
            body: EventBody::Advisor(AdvisorEvent {
                advisor: advisor.to_owned(),
                kind,
            }),
        }
    }

    /// The events of a call's line in the queue it was transferred into, stamped the
    /// transfer's second, go 1 ms after it (docs/events.md, "Same millisecond"): otherwise
    /// the lifecycle order would apply an answer in the new queue before the transfer.
    fn after_transfer(&self, callid: &str, queue: &str, time: Timestamp) -> Timestamp {
        match self
            .calls
            .get(callid)
            .and_then(|call| call.transferred_into.as_ref())
        {
            Some((into, at)) if into == queue && *at == time => time + Millis(1),
            _ => time,
        }
    }

    /// The `contact.queued` for a call whose `ENTERQUEUE` was not seen (read from the middle
    /// of a file, or not read yet), at `time - wait` from the line's own wait field; none
    /// when the entry (or a transfer into a queue) is known. When the `ENTERQUEUE` comes
    /// later it gives the same entry again, which the core reads as a repeat.
    fn entry_if_unseen(
        &mut self,
        line: &Line<'_>,
        callid: &str,
        queue: &str,
        wait: Millis,
    ) -> Option<Event> {
        let call = self.call_mut(callid, line.time);
        if call.entered.is_some() || call.transferred_into.is_some() {
            return None;
        }
        let entered_at = line.time - wait;
        call.entered = Some((queue.to_owned(), entered_at));
        Some(self.contact_event(
            line,
            "queued",
            entered_at,
            ContactEventKind::Queued,
            Some(queue),
            None,
        ))
    }

    fn enter_queue(&mut self, line: &Line<'_>) -> Result<Vec<Event>, LineProblem> {
        let callid = self.contact_of(line)?;
        let queue = self.queue_of(line)?;
        let call = self.call_mut(callid, line.time);
        call.entered = Some((queue.to_owned(), line.time));
        if call
            .transferred_into
            .as_ref()
            .is_some_and(|(into, _)| into == queue)
        {
            // The transfer into this queue was the entry (docs/events.md, Asterisk
            // "Transfers"): a second offer would count the call twice.
            self.stats.entries_merged_into_transfers += 1;
            return Ok(Vec::new());
        }
        Ok(vec![self.contact_event(
            line,
            "queued",
            line.time,
            ContactEventKind::Queued,
            Some(queue),
            None,
        )])
    }

    fn connect(&mut self, line: &Line<'_>) -> Result<Vec<Event>, LineProblem> {
        let callid = self.contact_of(line)?;
        let queue = self.queue_of(line)?;
        let advisor = self.advisor_for(line)?;
        let holdtime = seconds(line, 0, "holdtime")?;
        let mut events = Vec::with_capacity(2);
        events.extend(self.entry_if_unseen(line, callid, queue, holdtime));
        let time = self.after_transfer(callid, queue, line.time);
        events.push(self.contact_event(
            line,
            "answered",
            time,
            ContactEventKind::Answered,
            Some(queue),
            Some(&advisor),
        ));
        Ok(events)
    }

    fn complete(&mut self, line: &Line<'_>) -> Result<Vec<Event>, LineProblem> {
        let callid = self.contact_of(line)?;
        let queue = self.queue_of(line)?;
        let advisor = self.advisor_for(line)?;
        // Not needed (the core measures talk from the answer), but a line whose numbers are
        // broken is not one to trust.
        seconds(line, 0, "holdtime")?;
        seconds(line, 1, "calltime")?;
        self.call_mut(callid, line.time);
        let time = self.after_transfer(callid, queue, line.time);
        let completed_at = time + self.wrapup_of(queue);
        Ok(vec![
            self.contact_event(
                line,
                "ended",
                time,
                ContactEventKind::Ended,
                Some(queue),
                Some(&advisor),
            ),
            self.contact_event(
                line,
                "completed",
                completed_at,
                ContactEventKind::Completed {
                    disposition: None,
                    resolved: None,
                },
                Some(queue),
                Some(&advisor),
            ),
        ])
    }

    /// `ABANDON`, `EXITWITHTIMEOUT`, `EXITEMPTY`, `EXITWITHKEY`: the caller left without an
    /// answer; `reason` is `None` for an abandon. `waittime_index` is the data field of the
    /// wait.
    fn leave_unanswered(
        &mut self,
        line: &Line<'_>,
        waittime_index: usize,
        reason: Option<DequeueReason>,
    ) -> Result<Vec<Event>, LineProblem> {
        let callid = self.contact_of(line)?;
        let queue = self.queue_of(line)?;
        let waittime = seconds(line, waittime_index, "waittime")?;
        let mut events = Vec::with_capacity(2);
        events.extend(self.entry_if_unseen(line, callid, queue, waittime));
        let time = self.after_transfer(callid, queue, line.time);
        let (suffix, kind) = match reason {
            None => ("abandoned", ContactEventKind::Abandoned),
            Some(reason) => ("dequeued", ContactEventKind::Dequeued { reason }),
        };
        events.push(self.contact_event(line, suffix, time, kind, Some(queue), None));
        Ok(events)
    }

    fn ring_no_answer(&mut self, line: &Line<'_>) -> Result<Vec<Event>, LineProblem> {
        let callid = self.contact_of(line)?;
        let queue = self.queue_of(line)?;
        let advisor = self.advisor_for(line)?;
        let ringtime = number(line, 0, "ringtime", MAX_PLAUSIBLE_SECS * 1000)?;
        self.call_mut(callid, line.time);
        // queue_log has no ring-start line: the ring began `ringtime` ms before its end.
        let offered_at = self.after_transfer(callid, queue, line.time - Millis(ringtime as i64));
        let missed_at = self.after_transfer(callid, queue, line.time);
        Ok(vec![
            self.contact_event(
                line,
                "offered",
                offered_at,
                ContactEventKind::Offered,
                Some(queue),
                Some(&advisor),
            ),
            self.contact_event(
                line,
                "missed",
                missed_at,
                ContactEventKind::Missed,
                Some(queue),
                Some(&advisor),
            ),
        ])
    }

    /// A member passed the call on: their conversation ends with the transfer (no
    /// `contact.ended`, docs/events.md "Transfer by an advisor") and their after-contact work
    /// with a `contact.completed` naming them.
    fn transfer(
        &mut self,
        line: &Line<'_>,
        to_queue: Option<String>,
    ) -> Result<Vec<Event>, LineProblem> {
        let callid = self.contact_of(line)?;
        let queue = self.queue_of(line)?;
        let advisor = self.advisor_for(line)?;
        seconds(line, 2, "holdtime")?;
        seconds(line, 3, "calltime")?;
        let time = self.after_transfer(callid, queue, line.time);
        let call = self.call_mut(callid, line.time);
        if let Some(to_queue) = &to_queue {
            call.transferred_into = Some((to_queue.clone(), line.time));
        }
        let completed_at = time + self.wrapup_of(queue);
        Ok(vec![
            self.contact_event(
                line,
                "transferred",
                time,
                ContactEventKind::Transferred { to_queue },
                Some(queue),
                Some(&advisor),
            ),
            self.contact_event(
                line,
                "completed",
                completed_at,
                ContactEventKind::Completed {
                    disposition: None,
                    resolved: None,
                },
                Some(queue),
                Some(&advisor),
            ),
        ])
    }

    fn advisor_state(
        &mut self,
        line: &Line<'_>,
        status: AdvisorStatus,
    ) -> Result<Vec<Event>, LineProblem> {
        let advisor = self.advisor_for(line)?;
        Ok(vec![self.advisor_event(
            &advisor,
            line.time,
            AdvisorEventKind::State(status),
        )])
    }

    fn member_mut(&mut self, advisor: &str, time: Timestamp) -> &mut MemberMemory {
        let member = self.members.entry(advisor.to_owned()).or_default();
        member.last_seen = member.last_seen.max(time);
        member
    }

    /// One login per session: at the first queue a member joins (or their agent login);
    /// joining more queues later changes nothing. A line at the session's first second gives
    /// the login again (same id), so repeats and same-second joins stay one event.
    fn member_joins(&mut self, line: &Line<'_>) -> Result<Vec<Event>, LineProblem> {
        let advisor = self.advisor_for(line)?;
        let queue = (!is_absent(line.queue)).then(|| line.queue.to_owned());
        let agent_login = line.event != "ADDMEMBER";
        let time = line.time;
        let member = self.member_mut(&advisor, time);
        if let Some(queue) = queue {
            member.queues.insert(queue);
        }
        member.agent_session |= agent_login;
        let login = match member.logged_in_at {
            Some(at) => at == time,
            None => {
                member.logged_in_at = Some(time);
                member.logged_out_at = None;
                true
            }
        };
        Ok(if login {
            vec![self.advisor_event(
                &advisor,
                time,
                AdvisorEventKind::Login {
                    team: None,
                    name: None,
                },
            )]
        } else {
            Vec::new()
        })
    }

    /// One logout per session: when the member leaves their last queue (and has no agent
    /// session), or at their agent logoff. A member never seen joining is logged out too:
    /// the connector may have started after their login.
    fn member_leaves(&mut self, line: &Line<'_>) -> Result<Vec<Event>, LineProblem> {
        let advisor = self.advisor_for(line)?;
        let agent_logoff = line.event != "REMOVEMEMBER";
        let time = line.time;
        let queue = line.queue;
        let member = self.member_mut(&advisor, time);
        member.queues.remove(queue);
        if agent_logoff {
            member.agent_session = false;
        }
        let session_over = agent_logoff || (member.queues.is_empty() && !member.agent_session);
        let logout = session_over
            && match member.logged_out_at {
                Some(at) => at == time,
                None => {
                    member.logged_out_at = Some(time);
                    member.logged_in_at = None;
                    member.queues.clear();
                    true
                }
            };
        Ok(if logout {
            vec![self.advisor_event(&advisor, time, AdvisorEventKind::Logout)]
        } else {
            Vec::new()
        })
    }
}

fn check_identifier(field: &'static str, value: &str) -> Result<(), LineProblem> {
    identifier_problem(value).map_err(|why| LineProblem::InvalidIdentifier {
        field,
        value: excerpt(value),
        why,
    })
}

/// Data field `index` as a whole number of at most `max`.
fn number(
    line: &Line<'_>,
    index: usize,
    field: &'static str,
    max: u64,
) -> Result<u64, LineProblem> {
    let text = line.data(index);
    text.parse::<u64>()
        .ok()
        .filter(|value| *value <= max)
        .ok_or_else(|| LineProblem::BadNumber {
            event: line.event.to_owned(),
            field,
            value: excerpt(text),
            max,
        })
}

/// Data field `index` as whole seconds.
fn seconds(line: &Line<'_>, index: usize, field: &'static str) -> Result<Millis, LineProblem> {
    number(line, index, field, MAX_PLAUSIBLE_SECS).map(|secs| Millis::from_secs(secs as i64))
}
