//! Asterisk Manager Interface (AMI) events to canonical events.
//!
//! AMI speaks `Key: Value` lines ended by `\r\n`; a message ends with an empty line. The
//! server first sends one banner line, `Asterisk Call Manager/x.y.z`, without an empty line
//! after it. A message is an event (`Event: QueueCallerJoin`), a response to an action
//! (`Response: Success`), or, from the client, an action (`Action: Login`). [`AmiFramer`]
//! cuts a byte stream into [`AmiFrame`]s; [`AmiTranslator`] turns events into canonical
//! events. Field names follow the Asterisk documentation, "AMI Events"
//! (<https://docs.asterisk.org/Asterisk_22_Documentation/API_Documentation/AMI_Events/>).
//!
//! | AMI event | canonical events | fields used |
//! |---|---|---|
//! | `QueueCallerJoin` | `contact.queued` (voice) | `Uniqueid`, `Queue` (`CallerIDNum`, a phone number, is dropped) |
//! | `AgentCalled` | `contact.offered` | `Uniqueid`, `Queue`, `Interface`, `MemberName` |
//! | `AgentRingNoAnswer` | `contact.missed` | same |
//! | `AgentConnect` | `contact.answered` (a `contact.queued` at `time - HoldTime` first when the join was not seen) | same, `HoldTime`, `DestUniqueid` |
//! | `AgentComplete` | `contact.ended`, `contact.completed` at `time + wrapuptime` | same, `Reason` (`transfer` after a translated transfer: nothing) |
//! | `QueueCallerAbandon` | `contact.abandoned` (entry at `time - HoldTime` when not seen) | `Uniqueid`, `Queue`, `HoldTime` |
//! | `QueueCallerLeave` | nothing: it does not say why the caller left (docs/events.md) | |
//! | `QueueMemberPause` | `advisor.state` `pause` (`PausedReason`) / `available`, once per change | `Paused`, `PausedReason`, `Interface`, `MemberName` |
//! | `QueueMemberAdded` / `QueueMemberRemoved` | `advisor.login` at the first membership / `advisor.logout` at the last | `Queue`, `Interface`, `MemberName`, `Paused` |
//! | `AgentLogin` / `AgentLogoff` | `advisor.login` / `advisor.logout` | `Agent` |
//! | `QueueMember` (the answer to `Action: QueueStatus`, which the shell sends at each login) | as `QueueMemberAdded`: the members already in a queue when the connector starts get their login and pause | same |
//! | `QueueStatusComplete` (the end of that answer) | `advisor.logout` for a member remembered in a queue the answer no longer lists them in (removed while the connection was down) | |
//! | `Hold` / `Unhold` | `contact.held` / `contact.resumed`, on the channel of an answered call (caller's or member's) | `Uniqueid` |
//! | `BlindTransfer` (`Result: Success`) | `contact.transferred` (`to_queue` from `Extension@Context`), `contact.completed` | `TransfereeUniqueid`, `TransfererUniqueid`, `Extension`, `Context` |
//! | `AttendedTransfer` (`Result: Success`) | `contact.transferred`, `contact.completed` | `TransfereeUniqueid`, `OrigTransfererUniqueid` |
//!
//! Every other event is skipped and counted, never an error.
//!
//! Times: the event's `Timestamp` (epoch seconds with microseconds, sent when
//! `timestampevents = yes` in `manager.conf`), kept to the millisecond; without it, the
//! arrival time the caller gives. Event ids are derived from the site, the event's name, its
//! channel, its `Timestamp` (else the arrival time) and the member, so the same event read
//! twice gives the same ids. Advisor events use the member, the second and the step instead:
//! Asterisk repeats a pause in every queue of the member.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use vigie_core::{AdvisorEventKind, AdvisorStatus, ContactEventKind, Event, Millis, Timestamp};
use xxhash_rust::xxh3::Xxh3;

use crate::asterisk::{self, COMPLETED, CallMemory, Calls, LOGIN, Members, ServerSettings};
use crate::asterisk_queue_log::{
    ConfigProblem, DEFAULT_CALL_MEMORY, LAST_EPOCH_SECOND, MAX_PLAUSIBLE_SECS, QueueLogConfig,
    QueueLogQueueConfig, is_absent, normalise_member,
};
use crate::common::{ConfigChecks, SweepClock, count_name, excerpt, identifier_problem};

/// The largest message accepted (64 KiB, like an event): a longer one is skipped whole and
/// reported, so that a peer cannot make the framer grow without bound.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// The start of the line an AMI server sends when a client connects.
pub const BANNER_PREFIX: &str = "Asterisk Call Manager/";

// ---- messages ---------------------------------------------------------------------------

/// One AMI message: its `Key: Value` fields in order. Keys are looked up regardless of case
/// (`UniqueID` and `Uniqueid` are the same key); a key may repeat (`ChanVariable`), and
/// [`AmiMessage::get`] gives the first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AmiMessage {
    fields: Vec<(String, String)>,
}

impl AmiMessage {
    /// A message of these fields (an action to send, or a message in a test).
    pub fn new<K: Into<String>, V: Into<String>>(
        fields: impl IntoIterator<Item = (K, V)>,
    ) -> AmiMessage {
        AmiMessage {
            fields: fields
                .into_iter()
                .map(|(key, value)| (key.into(), value.into()))
                .collect(),
        }
    }

    /// Parses the lines of one message (without the empty line that ends it). Lines end with
    /// `\r\n` or `\n`; blank lines are ignored; the value is trimmed.
    pub fn parse(text: &str) -> Result<AmiMessage, AmiProblem> {
        let mut fields = Vec::new();
        for line in text.split('\n') {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.trim().is_empty() {
                continue;
            }
            let Some((key, value)) = line.split_once(':') else {
                return Err(AmiProblem::NotAField(excerpt(line)));
            };
            let key = key.trim();
            if key.is_empty() || key.contains(char::is_whitespace) {
                return Err(AmiProblem::NotAField(excerpt(line)));
            }
            fields.push((key.to_owned(), value.trim().to_owned()));
        }
        if fields.is_empty() {
            return Err(AmiProblem::Empty);
        }
        Ok(AmiMessage { fields })
    }

    /// The first value of `key`, whatever its case.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, value)| value.as_str())
    }

    /// The fields, in order.
    pub fn fields(&self) -> &[(String, String)] {
        &self.fields
    }

    /// The event's name, for an event.
    pub fn event(&self) -> Option<&str> {
        self.get("Event")
    }

    /// The response's status (`Success`, `Error`, `Goodbye`...), for a response.
    pub fn response(&self) -> Option<&str> {
        self.get("Response")
    }

    /// The message as AMI writes it: `Key: Value\r\n` lines and the empty line that ends it.
    pub fn to_wire(&self) -> String {
        let mut text = String::new();
        for (key, value) in &self.fields {
            text.push_str(key);
            text.push_str(": ");
            text.push_str(value);
            text.push_str("\r\n");
        }
        text.push_str("\r\n");
        text
    }
}

/// What [`AmiFramer`] hands out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AmiFrame {
    /// The server's first line (`Asterisk Call Manager/9.0.0`).
    Banner(String),
    /// A complete message.
    Message(AmiMessage),
}

/// Cuts the bytes of an AMI connection into banners and messages. Pure: the shell pushes
/// what it reads and takes what is complete.
#[derive(Debug, Default)]
pub struct AmiFramer {
    buffer: Vec<u8>,
    /// How far `buffer` was searched for a line end.
    scanned: usize,
    /// Lines of the message being read.
    lines: Vec<String>,
    bytes: usize,
    /// Inside a message longer than [`MAX_MESSAGE_BYTES`]: dropped up to its empty line.
    overlong: bool,
}

impl AmiFramer {
    /// A framer at the start of a connection.
    pub fn new() -> AmiFramer {
        AmiFramer::default()
    }

    /// Adds bytes read from the connection.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// Bytes of a message begun and not finished (a connection cut there loses them).
    pub fn pending_bytes(&self) -> usize {
        self.bytes + self.buffer.len()
    }

    /// The next complete frame, if any; a malformed message is reported once, then skipped.
    pub fn next_frame(&mut self) -> Option<Result<AmiFrame, AmiProblem>> {
        loop {
            let Some(end) = self.buffer[self.scanned..]
                .iter()
                .position(|b| *b == b'\n')
                .map(|at| self.scanned + at)
            else {
                self.scanned = self.buffer.len();
                if self.bytes + self.buffer.len() > MAX_MESSAGE_BYTES && !self.overlong {
                    // No line end in sight: what is buffered is all the long line's.
                    self.start_overlong();
                    return Some(Err(AmiProblem::TooLong {
                        max: MAX_MESSAGE_BYTES,
                    }));
                }
                if self.overlong {
                    self.buffer.clear();
                    self.scanned = 0;
                }
                return None;
            };
            let line: Vec<u8> = self.buffer.drain(..=end).collect();
            self.scanned = 0;
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\r', '\n']);
            if line.trim().is_empty() {
                if self.overlong {
                    self.overlong = false;
                    continue;
                }
                if self.lines.is_empty() {
                    continue;
                }
                let text = std::mem::take(&mut self.lines).join("\n");
                self.bytes = 0;
                return Some(AmiMessage::parse(&text).map(AmiFrame::Message));
            }
            if self.overlong {
                continue;
            }
            if self.lines.is_empty() && line.starts_with(BANNER_PREFIX) {
                return Some(Ok(AmiFrame::Banner(line.to_owned())));
            }
            self.bytes += line.len() + 2;
            self.lines.push(line.to_owned());
            if self.bytes > MAX_MESSAGE_BYTES {
                // The rest of the buffer is the next lines: kept, read as the skipped
                // message's until its empty line.
                self.overlong = true;
                self.lines.clear();
                self.bytes = 0;
                return Some(Err(AmiProblem::TooLong {
                    max: MAX_MESSAGE_BYTES,
                }));
            }
        }
    }

    fn start_overlong(&mut self) {
        self.overlong = true;
        self.lines.clear();
        self.bytes = 0;
        self.buffer.clear();
        self.scanned = 0;
    }
}

// ---- configuration ----------------------------------------------------------------------

/// How the AMI events of one Asterisk server (or one site's share of it) are translated.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmiConfig {
    /// Vigie site id the events belong to.
    pub site: String,
    /// Per queue settings (the queue's `wrapuptime`), by queue name.
    #[serde(default)]
    pub queues: BTreeMap<String, QueueLogQueueConfig>,
    /// Advisor id of each member, by interface as written (`PJSIP/1001`), member name
    /// (`MemberName`), or bare extension (`1001`). Members not listed get their
    /// [normalised interface](normalise_member), as in queue_log.
    #[serde(default)]
    pub advisors: BTreeMap<String, String>,
    /// The queue a blind transfer target leads to, by `extension@context`.
    #[serde(default)]
    pub transfer_targets: BTreeMap<String, String>,
    /// How long a call or member is remembered after its last event (`"2h"`).
    #[serde(default = "default_call_memory", with = "humantime_serde")]
    pub call_memory: Duration,
}

fn default_call_memory() -> Duration {
    DEFAULT_CALL_MEMORY
}

/// Every problem of an AMI configuration, reported at once.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid AMI configuration: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct AmiConfigErrors(pub Vec<ConfigProblem>);

impl AmiConfig {
    /// The defaults for a site: no wrap-up, advisors named by their interface.
    pub fn new(site: impl Into<String>) -> AmiConfig {
        AmiConfig {
            site: site.into(),
            queues: BTreeMap::new(),
            advisors: BTreeMap::new(),
            transfer_targets: BTreeMap::new(),
            call_memory: DEFAULT_CALL_MEMORY,
        }
    }

    /// The settings a queue_log configuration of the same server shares with AMI: site,
    /// queues, advisors, transfer targets and call memory.
    pub fn from_queue_log(config: &QueueLogConfig) -> AmiConfig {
        AmiConfig {
            site: config.site.clone(),
            queues: config.queues.clone(),
            advisors: config.advisors.clone(),
            transfer_targets: config.transfer_targets.clone(),
            call_memory: config.call_memory,
        }
    }

    /// Checks the configuration and builds the translator.
    pub fn build(&self) -> Result<AmiTranslator, AmiConfigErrors> {
        let mut checks = ConfigChecks::default();
        let settings = ServerSettings {
            site: &self.site,
            queues: &self.queues,
            advisors: &self.advisors,
            transfer_targets: &self.transfer_targets,
        };
        settings.check_identifiers(&mut checks);
        settings.check_wrapups(&mut checks);
        checks.memory("call_memory", self.call_memory, "events");
        checks.finish(AmiConfigErrors)?;
        Ok(AmiTranslator {
            site: self.site.clone(),
            wrapup: settings.wrapups(),
            advisors: self.advisors.clone(),
            transfer_targets: self.transfer_targets.clone(),
            call_memory: Millis::from_std(self.call_memory),
            calls: Calls::default(),
            member_channels: BTreeMap::new(),
            members: Members::new(false),
            listed: None,
            clock: SweepClock::default(),
            stats: AmiStats::default(),
        })
    }
}

// ---- translation ------------------------------------------------------------------------

/// Why a message cannot be read or translated.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AmiProblem {
    /// A line that is not `Key: Value`.
    #[error("line {0:?} is not a `Key: Value` field")]
    NotAField(String),
    /// A message without a single field.
    #[error("a message without fields")]
    Empty,
    /// A message longer than the limit.
    #[error("a message longer than {max} bytes, skipped")]
    TooLong {
        /// The limit.
        max: usize,
    },
    /// A field the event needs is absent or empty.
    #[error("{event} needs the {field} field, which is absent or empty")]
    MissingField {
        /// The event name.
        event: String,
        /// The field.
        field: &'static str,
    },
    /// `Timestamp` is not epoch seconds with an optional fraction.
    #[error("Timestamp {0:?} is not epoch seconds such as 1772442900.123456")]
    BadTimestamp(String),
    /// A numeric field is not a plausible whole number.
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

/// What the translator made of a message.
#[derive(Clone, Debug, PartialEq)]
pub enum AmiOutcome {
    /// The events to publish (possibly none: a repeat, a pause already known).
    Events(Vec<Event>),
    /// An event the contract has no counterpart for (`QueueCallerLeave`, `Newchannel`...).
    Skipped {
        /// Its name.
        event: String,
    },
    /// Not an event: a response, or a message without `Event`.
    NotAnEvent,
}

/// Running counts of what the translator did, for metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AmiStats {
    /// Messages given to the translator.
    pub messages: u64,
    /// Events among them that could not be translated.
    pub malformed: u64,
    /// Events without `Timestamp`, stamped with their arrival time.
    pub without_timestamp: u64,
    /// Canonical events produced.
    pub events: u64,
    /// Events skipped, by name (names beyond the first 64 count as `other`).
    pub skipped: BTreeMap<String, u64>,
    /// `QueueCallerJoin` events that follow a transfer into the same queue: the transfer was
    /// the entry.
    pub entries_merged_into_transfers: u64,
    /// Calls forgotten before their memory ran out, because
    /// [`MAX_REMEMBERED_CALLS`](crate::asterisk_queue_log::MAX_REMEMBERED_CALLS) was hit.
    pub calls_evicted: u64,
}

/// Who answered a call.
#[derive(Clone, Debug)]
struct Answer {
    advisor: String,
    queue: String,
    /// The member's channel (`DestUniqueid`): hold may be reported on it.
    member_channel: Option<String>,
}

/// What AMI adds to the memory of a call.
#[derive(Clone, Debug, Default)]
struct AmiCall {
    answered: Option<Answer>,
    /// On hold, by the answering member.
    held: bool,
    /// Members whose transfer was translated: their `AgentComplete` (`Reason: transfer`)
    /// gives nothing more.
    transferred_by: BTreeSet<String>,
}

/// Translates the AMI events of one server, in the order they arrive; its memory of calls
/// and members outlives reconnections. Built by [`AmiConfig::build`].
#[derive(Debug)]
pub struct AmiTranslator {
    site: String,
    wrapup: BTreeMap<String, Millis>,
    advisors: BTreeMap<String, String>,
    transfer_targets: BTreeMap<String, String>,
    call_memory: Millis,
    calls: Calls<AmiCall>,
    /// Member channel `Uniqueid` to the caller's, for the calls answered.
    member_channels: BTreeMap<String, String>,
    members: Members,
    /// While the answer to `Action: QueueStatus` is awaited (see
    /// [`AmiTranslator::status_requested`]): the (advisor, queue) memberships it listed so far,
    /// and those added meanwhile.
    listed: Option<BTreeSet<(String, String)>>,
    clock: SweepClock,
    stats: AmiStats,
}

/// An event being translated: the message, its name and its time.
struct Incoming<'a> {
    message: &'a AmiMessage,
    name: &'a str,
    time: Timestamp,
    /// What identifies its moment in ids: the `Timestamp` text, else the arrival time.
    moment: String,
}

impl Incoming<'_> {
    fn field(&self, field: &'static str) -> Option<&str> {
        self.message.get(field).filter(|value| !is_absent(value))
    }

    fn required(&self, field: &'static str) -> Result<&str, AmiProblem> {
        self.field(field).ok_or_else(|| AmiProblem::MissingField {
            event: self.name.to_owned(),
            field,
        })
    }

    fn identifier(&self, field: &'static str) -> Result<&str, AmiProblem> {
        let value = self.required(field)?;
        check_identifier(field, value)?;
        Ok(value)
    }

    /// A duration in whole seconds, if the field is there.
    fn seconds(&self, field: &'static str) -> Result<Option<Millis>, AmiProblem> {
        let Some(text) = self.field(field) else {
            return Ok(None);
        };
        text.parse::<u64>()
            .ok()
            .filter(|secs| *secs <= MAX_PLAUSIBLE_SECS)
            .map(|secs| Some(Millis::from_secs(secs as i64)))
            .ok_or_else(|| AmiProblem::BadNumber {
                event: self.name.to_owned(),
                field,
                value: excerpt(text),
                max: MAX_PLAUSIBLE_SECS,
            })
    }
}

fn check_identifier(field: &'static str, value: &str) -> Result<(), AmiProblem> {
    identifier_problem(value).map_err(|why| AmiProblem::InvalidIdentifier {
        field,
        value: excerpt(value),
        why,
    })
}

/// `Timestamp: 1772442900.123456` to the millisecond (finer digits are truncated).
pub fn parse_ami_timestamp(text: &str) -> Result<Timestamp, AmiProblem> {
    let bad = || AmiProblem::BadTimestamp(excerpt(text));
    let text = text.trim();
    let (secs, fraction) = text.split_once('.').unwrap_or((text, ""));
    if secs.is_empty() || !secs.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    if !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let secs: i64 = secs
        .parse()
        .ok()
        .filter(|s| *s <= LAST_EPOCH_SECOND)
        .ok_or_else(bad)?;
    let millis = fraction
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(3)
        .fold(0i64, |acc, digit| acc * 10 + i64::from(digit - b'0'));
    Ok(Timestamp(secs * 1000 + millis))
}

/// `1`, `true`, `yes` (any case) are on; `0`, `false`, `no` off.
fn flag(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

impl AmiTranslator {
    /// Counts so far.
    pub fn stats(&self) -> &AmiStats {
        &self.stats
    }

    /// Calls remembered now.
    pub fn remembered_calls(&self) -> usize {
        self.calls.len()
    }

    /// The advisor id of a member: the interface as written, the member name, or the bare
    /// extension as the configuration maps them; else the normalised interface (the same id
    /// queue_log gives), else the member name.
    pub fn advisor_of(&self, interface: Option<&str>, member_name: Option<&str>) -> Option<String> {
        let interface = interface.map(str::trim).filter(|i| !is_absent(i));
        let member_name = member_name.map(str::trim).filter(|n| !is_absent(n));
        let normalised = interface.map(normalise_member);
        [interface, member_name, normalised]
            .into_iter()
            .flatten()
            .find_map(|key| self.advisors.get(key).cloned())
            .or_else(|| normalised.map(str::to_owned))
            .or_else(|| member_name.map(|name| normalise_member(name).to_owned()))
    }

    /// The shell asked for the queues' members (`Action: QueueStatus`): the `QueueMember`
    /// events that follow, up to `QueueStatusComplete`, are every membership at that moment.
    pub fn status_requested(&mut self) {
        self.listed = Some(BTreeSet::new());
    }

    /// Translates one message received at `now` (the wall clock of the shell, used only
    /// for events without `Timestamp`).
    pub fn translate(
        &mut self,
        message: &AmiMessage,
        now: Timestamp,
    ) -> Result<AmiOutcome, AmiProblem> {
        self.stats.messages += 1;
        let Some(name) = message.event() else {
            return Ok(AmiOutcome::NotAnEvent);
        };
        match self.translate_event(message, name, now) {
            Ok(outcome) => {
                if let AmiOutcome::Events(events) = &outcome {
                    self.stats.events += events.len() as u64;
                }
                Ok(outcome)
            }
            Err(problem) => {
                self.stats.malformed += 1;
                Err(problem)
            }
        }
    }

    fn translate_event(
        &mut self,
        message: &AmiMessage,
        name: &str,
        now: Timestamp,
    ) -> Result<AmiOutcome, AmiProblem> {
        let known = matches!(
            name,
            "QueueCallerJoin"
                | "AgentCalled"
                | "AgentRingNoAnswer"
                | "AgentConnect"
                | "AgentComplete"
                | "QueueCallerAbandon"
                | "QueueMemberPause"
                | "QueueMemberAdded"
                | "QueueMemberRemoved"
                | "QueueMember"
                | "QueueStatusComplete"
                | "AgentLogin"
                | "AgentLogoff"
                | "Hold"
                | "Unhold"
                | "BlindTransfer"
                | "AttendedTransfer"
        );
        if !known {
            return Ok(self.skip(name));
        }
        let (time, moment) = match message.get("Timestamp").filter(|t| !t.trim().is_empty()) {
            Some(text) => (parse_ami_timestamp(text)?, text.trim().to_owned()),
            None => {
                self.stats.without_timestamp += 1;
                (now, format!("arrival {}", now.0))
            }
        };
        let event = Incoming {
            message,
            name,
            time,
            moment,
        };
        self.observe(time);
        let events = match name {
            "QueueCallerJoin" => self.caller_join(&event)?,
            "AgentCalled" => self.member_step(&event, "offered", ContactEventKind::Offered)?,
            "AgentRingNoAnswer" => self.member_step(&event, "missed", ContactEventKind::Missed)?,
            "AgentConnect" => self.connect(&event)?,
            "AgentComplete" => self.complete(&event)?,
            "QueueCallerAbandon" => self.abandon(&event)?,
            "QueueMemberPause" => self.pause(&event)?,
            "QueueMemberAdded" | "QueueMember" => {
                if self.listed.is_some() {
                    // Listed, or added while the list was being sent: a member now.
                    let advisor = self.member_of(&event)?;
                    let queue = event.identifier("Queue")?.to_owned();
                    if let Some(listed) = &mut self.listed {
                        listed.insert((advisor, queue));
                    }
                }
                self.member_joins(&event, false)?
            }
            "QueueStatusComplete" => self.status_complete(&event),
            "AgentLogin" => self.member_joins(&event, true)?,
            "QueueMemberRemoved" => self.member_leaves(&event, false)?,
            "AgentLogoff" => self.member_leaves(&event, true)?,
            "Hold" => self.hold(&event, true)?,
            "Unhold" => self.hold(&event, false)?,
            "BlindTransfer" | "AttendedTransfer" => self.transfer(&event)?,
            _ => return Ok(self.skip(name)),
        };
        Ok(AmiOutcome::Events(events))
    }

    fn skip(&mut self, name: &str) -> AmiOutcome {
        count_name(&mut self.stats.skipped, name);
        AmiOutcome::Skipped {
            event: name.to_owned(),
        }
    }

    /// Moves the memory clock and forgets what is older than the call memory.
    fn observe(&mut self, time: Timestamp) {
        let Some(horizon) = self.clock.observe(time, self.call_memory) else {
            return;
        };
        self.calls.forget_before(horizon);
        let calls = &self.calls;
        self.member_channels
            .retain(|_, caller| calls.contains(caller));
        self.members.forget_before(horizon);
    }

    fn call_mut(&mut self, uniqueid: &str, time: Timestamp) -> &mut CallMemory<AmiCall> {
        self.calls
            .call_mut(uniqueid, time, &mut self.stats.calls_evicted)
    }

    fn wrapup_of(&self, queue: &str) -> Millis {
        asterisk::wrapup_of(&self.wrapup, queue)
    }

    fn member_of(&self, event: &Incoming<'_>) -> Result<String, AmiProblem> {
        let advisor = self
            .advisor_of(event.field("Interface"), event.field("MemberName"))
            .ok_or_else(|| AmiProblem::MissingField {
                event: event.name.to_owned(),
                field: "Interface",
            })?;
        check_identifier("Interface", &advisor)?;
        Ok(advisor)
    }

    /// `ami-` and the XXH3-128 of the site, the event's name, its channel, its moment and
    /// `detail` (queue, member), then the step: the same event gives the same ids.
    fn contact_id(&self, event: &Incoming<'_>, channel: &str, detail: &str, step: &str) -> String {
        let mut hasher = Xxh3::new();
        for part in [
            self.site.as_str(),
            event.name,
            channel,
            event.moment.as_str(),
            detail,
        ] {
            hasher.update(part.as_bytes());
            hasher.update(b"\n");
        }
        format!("ami-{:032x}-{step}", hasher.digest128())
    }

    #[allow(clippy::too_many_arguments)]
    fn contact_event(
        &self,
        event: &Incoming<'_>,
        contact: &str,
        step: &str,
        time: Timestamp,
        kind: ContactEventKind,
        queue: Option<&str>,
        advisor: Option<&str>,
    ) -> Event {
        let detail = format!(
            "{}\n{}",
            queue.unwrap_or_default(),
            advisor.unwrap_or_default()
        );
        let id = self.contact_id(event, contact, &detail, step);
        asterisk::contact_event(id, &self.site, contact, time, kind, queue, advisor)
    }

    /// An advisor event, by the advisor, the second and the step (see
    /// [`asterisk::advisor_event`]): the copies of a pause come microseconds apart.
    fn advisor_event(&self, advisor: &str, time: Timestamp, kind: AdvisorEventKind) -> Event {
        asterisk::advisor_event(
            "ami",
            &self.site,
            advisor,
            time.0.div_euclid(1000),
            time,
            kind,
        )
    }

    /// See [`Calls::after_transfer`].
    fn after_transfer(&self, uniqueid: &str, queue: &str, time: Timestamp) -> Timestamp {
        self.calls.after_transfer(uniqueid, queue, time)
    }

    fn caller_join(&mut self, event: &Incoming<'_>) -> Result<Vec<Event>, AmiProblem> {
        let uniqueid = event.identifier("Uniqueid")?;
        let queue = event.identifier("Queue")?;
        let call = self.call_mut(uniqueid, event.time);
        call.entered = Some((queue.to_owned(), event.time));
        call.more.answered = None;
        call.more.held = false;
        if call.transferred_into_queue(queue) {
            self.stats.entries_merged_into_transfers += 1;
            return Ok(Vec::new());
        }
        Ok(vec![self.contact_event(
            event,
            uniqueid,
            "queued",
            event.time,
            ContactEventKind::Queued,
            Some(queue),
            None,
        )])
    }

    /// `AgentCalled`, `AgentRingNoAnswer`: a step of the caller with a member.
    fn member_step(
        &mut self,
        event: &Incoming<'_>,
        step: &str,
        kind: ContactEventKind,
    ) -> Result<Vec<Event>, AmiProblem> {
        let uniqueid = event.identifier("Uniqueid")?;
        let queue = event.identifier("Queue")?;
        let advisor = self.member_of(event)?;
        self.call_mut(uniqueid, event.time);
        let time = self.after_transfer(uniqueid, queue, event.time);
        Ok(vec![self.contact_event(
            event,
            uniqueid,
            step,
            time,
            kind,
            Some(queue),
            Some(&advisor),
        )])
    }

    /// The `contact.queued` of a call whose join was not seen (the connector started during
    /// its wait), at `time - wait`.
    fn entry_if_unseen(
        &mut self,
        event: &Incoming<'_>,
        uniqueid: &str,
        queue: &str,
        wait: Option<Millis>,
    ) -> Option<Event> {
        let entered_at = self.calls.entry_if_unseen(
            uniqueid,
            queue,
            event.time,
            wait,
            &mut self.stats.calls_evicted,
        )?;
        Some(self.contact_event(
            event,
            uniqueid,
            "queued",
            entered_at,
            ContactEventKind::Queued,
            Some(queue),
            None,
        ))
    }

    fn connect(&mut self, event: &Incoming<'_>) -> Result<Vec<Event>, AmiProblem> {
        let uniqueid = event.identifier("Uniqueid")?;
        let queue = event.identifier("Queue")?;
        let advisor = self.member_of(event)?;
        let wait = event.seconds("HoldTime")?;
        let member_channel = event.field("DestUniqueid").map(str::to_owned);
        let mut events = Vec::with_capacity(2);
        events.extend(self.entry_if_unseen(event, uniqueid, queue, wait));
        let time = self.after_transfer(uniqueid, queue, event.time);
        let call = self.call_mut(uniqueid, event.time);
        call.more.answered = Some(Answer {
            advisor: advisor.clone(),
            queue: queue.to_owned(),
            member_channel: member_channel.clone(),
        });
        call.more.held = false;
        if let Some(channel) = member_channel {
            self.member_channels.insert(channel, uniqueid.to_owned());
        }
        events.push(self.contact_event(
            event,
            uniqueid,
            "answered",
            time,
            ContactEventKind::Answered,
            Some(queue),
            Some(&advisor),
        ));
        Ok(events)
    }

    fn complete(&mut self, event: &Incoming<'_>) -> Result<Vec<Event>, AmiProblem> {
        let uniqueid = event.identifier("Uniqueid")?;
        let queue = event.identifier("Queue")?;
        let advisor = self.member_of(event)?;
        let time = self.after_transfer(uniqueid, queue, event.time);
        let call = self.call_mut(uniqueid, event.time);
        let transferred = call.more.transferred_by.contains(&advisor);
        if let Some(answer) = call.more.answered.take()
            && let Some(channel) = answer.member_channel
        {
            self.member_channels.remove(&channel);
        }
        if transferred && event.field("Reason") == Some("transfer") {
            // The transfer ended this member's conversation and gave their completion.
            return Ok(Vec::new());
        }
        let kind = ContactEventKind::Ended;
        Ok(self.with_completion(event, uniqueid, "ended", kind, time, queue, &advisor))
    }

    /// The end of a member's part (`step`, `kind`: the end, or the transfer) and their
    /// `contact.completed` after the queue's wrap-up.
    #[allow(clippy::too_many_arguments)]
    fn with_completion(
        &self,
        event: &Incoming<'_>,
        contact: &str,
        step: &str,
        kind: ContactEventKind,
        time: Timestamp,
        queue: &str,
        advisor: &str,
    ) -> Vec<Event> {
        let completed_at = time + self.wrapup_of(queue);
        vec![
            self.contact_event(event, contact, step, time, kind, Some(queue), Some(advisor)),
            self.contact_event(
                event,
                contact,
                "completed",
                completed_at,
                COMPLETED,
                Some(queue),
                Some(advisor),
            ),
        ]
    }

    fn abandon(&mut self, event: &Incoming<'_>) -> Result<Vec<Event>, AmiProblem> {
        let uniqueid = event.identifier("Uniqueid")?;
        let queue = event.identifier("Queue")?;
        // The documentation calls HoldTime an epoch time; app_queue sends the seconds waited.
        let wait = event.seconds("HoldTime")?;
        let mut events = Vec::with_capacity(2);
        events.extend(self.entry_if_unseen(event, uniqueid, queue, wait));
        let time = self.after_transfer(uniqueid, queue, event.time);
        events.push(self.contact_event(
            event,
            uniqueid,
            "abandoned",
            time,
            ContactEventKind::Abandoned,
            Some(queue),
            None,
        ));
        Ok(events)
    }

    /// A state change, once: the copies of a pause in the member's other queues (and a
    /// pause of a member already paused for the same reason) give nothing.
    fn state_change(
        &mut self,
        advisor: &str,
        time: Timestamp,
        status: AdvisorStatus,
    ) -> Option<Event> {
        let member = self.members.member_mut(advisor, time);
        if member.status.as_ref() == Some(&status) {
            return None;
        }
        member.status = Some(status.clone());
        Some(self.advisor_event(advisor, time, AdvisorEventKind::State(status)))
    }

    fn paused_status(event: &Incoming<'_>) -> Result<Option<AdvisorStatus>, AmiProblem> {
        let Some(paused) = event.field("Paused") else {
            return Ok(None);
        };
        let paused = flag(paused).ok_or_else(|| AmiProblem::BadNumber {
            event: event.name.to_owned(),
            field: "Paused",
            value: excerpt(paused),
            max: 1,
        })?;
        if !paused {
            return Ok(Some(AdvisorStatus::Available));
        }
        // Asterisk 1.8 to 11 called it Reason.
        let reason = event
            .field("PausedReason")
            .or_else(|| event.field("Reason"));
        let reason = match reason {
            Some(reason) => {
                check_identifier("PausedReason", reason)?;
                reason.to_owned()
            }
            // The contract records a pause without reason as `unspecified`.
            None => vigie_core::event::UNSPECIFIED_PAUSE_REASON.to_owned(),
        };
        Ok(Some(AdvisorStatus::Pause { reason }))
    }

    fn pause(&mut self, event: &Incoming<'_>) -> Result<Vec<Event>, AmiProblem> {
        let advisor = self.member_of(event)?;
        let status = Self::paused_status(event)?.ok_or_else(|| AmiProblem::MissingField {
            event: event.name.to_owned(),
            field: "Paused",
        })?;
        Ok(self
            .state_change(&advisor, event.time, status)
            .into_iter()
            .collect())
    }

    /// One login per session, at the first queue the member joins (or their agent login),
    /// then the pause a member added paused is in.
    fn member_joins(
        &mut self,
        event: &Incoming<'_>,
        agent: bool,
    ) -> Result<Vec<Event>, AmiProblem> {
        let advisor = if agent {
            let name = event.required("Agent")?;
            let advisor = self
                .advisor_of(Some(name), None)
                .unwrap_or_else(|| name.to_owned());
            check_identifier("Agent", &advisor)?;
            advisor
        } else {
            self.member_of(event)?
        };
        let queue = if agent {
            None
        } else {
            Some(event.identifier("Queue")?.to_owned())
        };
        let paused = if agent {
            None
        } else {
            Self::paused_status(event)?
        };
        let time = event.time;
        let mut events = Vec::new();
        if self.members.join(&advisor, time, queue, agent) {
            // A login makes the advisor available (docs/events.md, "The life of an advisor").
            self.members.member_mut(&advisor, time).status = Some(AdvisorStatus::Available);
            events.push(self.advisor_event(&advisor, time, LOGIN));
        }
        if let Some(status) = paused {
            events.extend(self.state_change(&advisor, time, status));
        }
        Ok(events)
    }

    /// One logout per session: when the member leaves their last queue (without an agent
    /// session), or at their agent logoff. A member never seen joining is logged out too:
    /// the connector may have started after their login.
    fn member_leaves(
        &mut self,
        event: &Incoming<'_>,
        agent: bool,
    ) -> Result<Vec<Event>, AmiProblem> {
        let (advisor, queue) = if agent {
            let name = event.required("Agent")?;
            let advisor = self
                .advisor_of(Some(name), None)
                .unwrap_or_else(|| name.to_owned());
            check_identifier("Agent", &advisor)?;
            (advisor, None)
        } else {
            (
                self.member_of(event)?,
                Some(event.identifier("Queue")?.to_owned()),
            )
        };
        let time = event.time;
        if !self.members.leave(&advisor, time, queue.as_deref(), agent) {
            return Ok(Vec::new());
        }
        Ok(vec![self.advisor_event(
            &advisor,
            time,
            AdvisorEventKind::Logout,
        )])
    }

    /// The end of the answer to `Action: QueueStatus`: a member remembered in a queue that
    /// the answer did not list left it while nobody was listening, and is logged out at the
    /// last such queue (unless in an agent session, which the answer does not show).
    fn status_complete(&mut self, event: &Incoming<'_>) -> Vec<Event> {
        let Some(listed) = self.listed.take() else {
            return Vec::new(); // Not the answer to this translator's request.
        };
        let gone: Vec<(String, String)> = self
            .members
            .memberships()
            .filter(|membership| !listed.contains(membership))
            .collect();
        let mut events = Vec::new();
        for (advisor, queue) in gone {
            if self
                .members
                .leave(&advisor, event.time, Some(&queue), false)
            {
                events.push(self.advisor_event(&advisor, event.time, AdvisorEventKind::Logout));
            }
        }
        events
    }

    /// `Hold`/`Unhold` on the caller's channel or on the channel of the member who answered.
    fn hold(&mut self, event: &Incoming<'_>, on: bool) -> Result<Vec<Event>, AmiProblem> {
        let channel = event.identifier("Uniqueid")?;
        let caller = if self.calls.contains(channel) {
            channel.to_owned()
        } else if let Some(caller) = self.member_channels.get(channel) {
            caller.clone()
        } else {
            // Not a call of a queue (an internal call, a member's other channel).
            return Ok(Vec::new());
        };
        let Some(call) = self.calls.get_mut(&caller) else {
            return Ok(Vec::new());
        };
        call.last_seen = call.last_seen.max(event.time);
        let Some(answer) = call.more.answered.clone() else {
            return Ok(Vec::new());
        };
        if call.more.held == on {
            return Ok(Vec::new());
        }
        call.more.held = on;
        let (step, kind) = if on {
            ("held", ContactEventKind::Held)
        } else {
            ("resumed", ContactEventKind::Resumed)
        };
        Ok(vec![self.contact_event(
            event,
            &caller,
            step,
            event.time,
            kind,
            Some(&answer.queue),
            Some(&answer.advisor),
        )])
    }

    /// A member passed an answered call on: `contact.transferred` (with `to_queue` when a
    /// blind transfer's `Extension@Context` leads to a queue) and their `contact.completed`.
    fn transfer(&mut self, event: &Incoming<'_>) -> Result<Vec<Event>, AmiProblem> {
        if event.field("Result") != Some("Success") {
            return Ok(Vec::new());
        }
        let blind = event.name == "BlindTransfer";
        // The caller is the transferee; the member's channel is the transferer.
        let transferer = if blind {
            event.field("TransfererUniqueid")
        } else {
            event.field("OrigTransfererUniqueid")
        };
        let caller = [event.field("TransfereeUniqueid"), transferer]
            .into_iter()
            .flatten()
            .find_map(|channel| {
                if self
                    .calls
                    .get(channel)
                    .is_some_and(|c| c.more.answered.is_some())
                {
                    Some(channel.to_owned())
                } else {
                    self.member_channels.get(channel).cloned()
                }
            });
        let Some(caller) = caller else {
            return Ok(Vec::new());
        };
        let Some(answer) = self
            .calls
            .get(&caller)
            .and_then(|c| c.more.answered.clone())
        else {
            return Ok(Vec::new());
        };
        let to_queue = if blind {
            let target = format!(
                "{}@{}",
                event.field("Extension").unwrap_or_default(),
                event.field("Context").unwrap_or_default()
            );
            self.transfer_targets.get(&target).cloned()
        } else {
            None
        };
        let time = self.after_transfer(&caller, &answer.queue, event.time);
        let call = self.call_mut(&caller, event.time);
        call.more.transferred_by.insert(answer.advisor.clone());
        call.more.held = false;
        if let Some(to_queue) = &to_queue {
            call.transferred_into = Some((to_queue.clone(), event.time));
        }
        let kind = ContactEventKind::Transferred { to_queue };
        Ok(self.with_completion(
            event,
            &caller,
            "transferred",
            kind,
            time,
            &answer.queue,
            &answer.advisor,
        ))
    }
}

impl fmt::Display for AmiMessage {
    /// The message's event or response and its keys, without values: values may hold
    /// customer data (`CallerIDNum`), and logs must not.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let head = self
            .event()
            .map(|e| format!("event {e}"))
            .or_else(|| self.response().map(|r| format!("response {r}")))
            .unwrap_or_else(|| "message".to_owned());
        let keys: Vec<&str> = self.fields.iter().map(|(k, _)| k.as_str()).collect();
        write!(f, "{head} ({})", keys.join(", "))
    }
}
