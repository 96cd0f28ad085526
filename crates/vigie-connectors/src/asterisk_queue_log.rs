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

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use chrono::{LocalResult, NaiveDateTime, TimeZone};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use vigie_core::{
    AdvisorEventKind, AdvisorStatus, ContactEventKind, DequeueReason, Event, Millis, Timestamp,
};
use xxhash_rust::xxh3::Xxh3;

use crate::asterisk::{self, COMPLETED, Calls, LOGIN, Members, ServerSettings};
pub use crate::common::ConfigProblem;
use crate::common::{
    ConfigChecks, LineCounts, LineTranslator, SweepClock, count_name, excerpt, identifier_problem,
};

/// How long the translator remembers a call (its queue entry, a transfer into a queue) and a
/// member after their last line, by default: longer than any wait, so that a late `CONNECT`
/// still finds the entry it follows.
pub const DEFAULT_CALL_MEMORY: Duration = Duration::from_secs(2 * 3600);

/// The most calls remembered at once, whatever the input; the oldest are forgotten first.
/// Ten times the calls a large site has open within [`DEFAULT_CALL_MEMORY`].
pub const MAX_REMEMBERED_CALLS: usize = 200_000;

/// The longest wait, ring or call a line may report (a week): anything longer is a corrupt
/// field, and would stamp events outside any day the core can hold.
pub(crate) const MAX_PLAUSIBLE_SECS: u64 = 7 * 24 * 3600;

/// The latest Unix second an RFC 3339 time can spell (9999-12-31T23:59:59Z).
pub(crate) const LAST_EPOCH_SECOND: i64 = 253_402_300_799;

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
    /// Checks the configuration and builds the translator.
    pub fn build(&self) -> Result<QueueLogTranslator, ConfigErrors> {
        let mut checks = ConfigChecks::default();
        let settings = ServerSettings {
            site: &self.site,
            queues: &self.queues,
            advisors: &self.advisors,
            transfer_targets: &self.transfer_targets,
        };
        settings.check_identifiers(&mut checks);
        let zone = Tz::from_str(&self.time_zone);
        if zone.is_err() {
            checks.push(
                "time_zone",
                format!(
                    "{:?} is not an IANA time zone such as Europe/Paris",
                    self.time_zone
                ),
            );
        }
        settings.check_wrapups(&mut checks);
        checks.memory("call_memory", self.call_memory, "lines");
        let zone = match zone {
            Ok(zone) if checks.is_empty() => zone,
            _ => return Err(ConfigErrors(checks.into_problems())),
        };
        Ok(QueueLogTranslator {
            site: self.site.clone(),
            zone,
            wrapup: settings.wrapups(),
            advisors: self.advisors.clone(),
            transfer_targets: self.transfer_targets.clone(),
            exit_keys: self
                .exit_keys
                .iter()
                .map(|(key, reason)| (key.clone(), reason.dequeue_reason()))
                .collect(),
            exit_key_default: self.exit_key_default.dequeue_reason(),
            call_memory: Millis::from_std(self.call_memory),
            calls: Calls::default(),
            members: Members::new(true),
            clock: SweepClock::default(),
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
    calls: Calls<()>,
    members: Members,
    /// The newest line time seen: the clock that expires memory.
    clock: SweepClock,
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
        crate::common::translate_text(self, text)
    }

    /// Translates one line (`line_number` counts from 1 and only names the line in errors).
    pub fn translate_line(
        &mut self,
        line_number: u64,
        line: &str,
    ) -> Result<LineOutcome, MalformedLine> {
        crate::common::translate_line(self, line_number, line)
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
                count_name(&mut self.stats.skipped, other);
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

    /// Moves the memory clock and forgets what is older than the call memory.
    fn observe(&mut self, time: Timestamp) {
        if let Some(horizon) = self.clock.observe(time, self.call_memory) {
            self.calls.forget_before(horizon);
            self.members.forget_before(horizon);
        }
    }

    /// The memory of a call, created if needed; its last sighting moves to `time`.
    fn call_mut(&mut self, callid: &str, time: Timestamp) {
        self.calls
            .call_mut(callid, time, &mut self.stats.calls_evicted);
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
        asterisk::wrapup_of(&self.wrapup, queue)
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
        let id = self.line_id(line, suffix);
        asterisk::contact_event(id, &self.site, line.callid, time, kind, queue, advisor)
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

    /// An advisor event, by the advisor, the line's time and the step (see
    /// [`asterisk::advisor_event`]).
    fn advisor_event(&self, advisor: &str, time: Timestamp, kind: AdvisorEventKind) -> Event {
        asterisk::advisor_event("aql", &self.site, advisor, time.0, time, kind)
    }

    /// See [`Calls::after_transfer`]: a queue_log time is a second.
    fn after_transfer(&self, callid: &str, queue: &str, time: Timestamp) -> Timestamp {
        self.calls.after_transfer(callid, queue, time)
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
        let entered_at = self.calls.entry_if_unseen(
            callid,
            queue,
            line.time,
            Some(wait),
            &mut self.stats.calls_evicted,
        )?;
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
        let call = self
            .calls
            .call_mut(callid, line.time, &mut self.stats.calls_evicted);
        call.entered = Some((queue.to_owned(), line.time));
        if call.transferred_into_queue(queue) {
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
        Ok(self.with_completion(
            line,
            "ended",
            ContactEventKind::Ended,
            time,
            queue,
            &advisor,
        ))
    }

    /// The end of a member's part (`suffix`, `kind`: the end, or the transfer) and their
    /// `contact.completed` after the queue's wrap-up.
    fn with_completion(
        &self,
        line: &Line<'_>,
        suffix: &str,
        kind: ContactEventKind,
        time: Timestamp,
        queue: &str,
        advisor: &str,
    ) -> Vec<Event> {
        let completed_at = time + self.wrapup_of(queue);
        vec![
            self.contact_event(line, suffix, time, kind, Some(queue), Some(advisor)),
            self.contact_event(
                line,
                "completed",
                completed_at,
                COMPLETED,
                Some(queue),
                Some(advisor),
            ),
        ]
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
        let call = self
            .calls
            .call_mut(callid, line.time, &mut self.stats.calls_evicted);
        if let Some(to_queue) = &to_queue {
            call.transferred_into = Some((to_queue.clone(), line.time));
        }
        let kind = ContactEventKind::Transferred { to_queue };
        Ok(self.with_completion(line, "transferred", kind, time, queue, &advisor))
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

    /// One login per session: at the first queue a member joins (or their agent login);
    /// joining more queues later changes nothing. A line at the session's first second gives
    /// the login again (same id), so repeats and same-second joins stay one event.
    fn member_joins(&mut self, line: &Line<'_>) -> Result<Vec<Event>, LineProblem> {
        let advisor = self.advisor_for(line)?;
        let queue = (!is_absent(line.queue)).then(|| line.queue.to_owned());
        let agent_login = line.event != "ADDMEMBER";
        Ok(
            if self.members.join(&advisor, line.time, queue, agent_login) {
                vec![self.advisor_event(&advisor, line.time, LOGIN)]
            } else {
                Vec::new()
            },
        )
    }

    /// One logout per session: when the member leaves their last queue (and has no agent
    /// session), or at their agent logoff. A member never seen joining is logged out too:
    /// the connector may have started after their login.
    fn member_leaves(&mut self, line: &Line<'_>) -> Result<Vec<Event>, LineProblem> {
        let advisor = self.advisor_for(line)?;
        let agent_logoff = line.event != "REMOVEMEMBER";
        let left = self
            .members
            .leave(&advisor, line.time, Some(line.queue), agent_logoff);
        Ok(if left {
            vec![self.advisor_event(&advisor, line.time, AdvisorEventKind::Logout)]
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

impl LineTranslator for QueueLogTranslator {
    type Outcome = LineOutcome;
    type Problem = LineProblem;
    type Malformed = MalformedLine;

    const BLANK: LineOutcome = LineOutcome::Blank;

    fn counts(&mut self) -> LineCounts<'_> {
        LineCounts {
            lines: &mut self.stats.lines,
            blank: &mut self.stats.blank,
            malformed: &mut self.stats.malformed,
            events: &mut self.stats.events,
        }
    }

    fn translate_record(&mut self, text: &str) -> Result<LineOutcome, LineProblem> {
        self.translate(text)
    }

    fn events(outcome: &LineOutcome) -> Option<&Vec<Event>> {
        match outcome {
            LineOutcome::Events(events) => Some(events),
            LineOutcome::Skipped { .. } | LineOutcome::Blank => None,
        }
    }

    fn into_events(outcome: LineOutcome) -> Vec<Event> {
        match outcome {
            LineOutcome::Events(events) => events,
            LineOutcome::Skipped { .. } | LineOutcome::Blank => Vec::new(),
        }
    }

    fn malformed(line: u64, problem: LineProblem) -> MalformedLine {
        MalformedLine { line, problem }
    }
}
