//! Amazon Connect records to canonical events: the agent event stream and contact records
//! (CTR), one JSON object per line as Kinesis delivers them.
//!
//! **Agent event stream** (Amazon Connect Administrator Guide, "Agent event streams data
//! model": <https://docs.aws.amazon.com/connect/latest/adminguide/agent-event-stream-model.html>).
//! Each record carries the agent's `CurrentAgentSnapshot` and, for a `STATE_CHANGE`, the
//! `PreviousAgentSnapshot`; as the guide recommends, a record is translated by comparing the
//! two.
//!
//! | agent stream | canonical events | time |
//! |---|---|---|
//! | `LOGIN` (status not `OFFLINE`) | `advisor.login` (team from the routing profile), then `advisor.state` `pause` if the status is `CUSTOM` | `EventTimestamp` |
//! | `LOGOUT` | `advisor.logout` (unless the status was already `OFFLINE`) | `EventTimestamp` |
//! | `AgentStatus` changed to `ROUTABLE` | `advisor.state` `available` (`advisor.login` when coming from `OFFLINE`) | `AgentStatus.StartTimestamp` |
//! | `AgentStatus` changed to `CUSTOM` | `advisor.state` `pause`, reason the status name lower-cased | `AgentStatus.StartTimestamp` |
//! | `AgentStatus` changed to `OFFLINE` | `advisor.logout` | `AgentStatus.StartTimestamp` |
//! | contact new in `CONNECTING` / `INCOMING` | `contact.offered` | `StateStartTimestamp` |
//! | contact to `MISSED` / `REJECTED` / `ERROR` | `contact.missed` | `StateStartTimestamp` |
//! | contact to `CONNECTED` (from an offer, or first seen) | `contact.answered` (queue, channel) | `ConnectedToAgentTimestamp` |
//! | `CONNECTED` to `CONNECTED_ONHOLD` / back | `contact.held` / `contact.resumed` | `EventTimestamp` (Connect does not move `StateStartTimestamp` for hold) |
//! | contact to `ENDED` | `contact.ended` (after-contact work starts) | `StateStartTimestamp` |
//! | contact gone from the snapshot after being connected | `contact.completed` (and `contact.ended` first if `ENDED` was not seen) | `EventTimestamp` |
//! | `HEART_BEAT` | nothing, unless its snapshot differs from the last one seen: the missed transitions | as above |
//!
//! **Contact records** (Amazon Connect Administrator Guide, "Contact records data model":
//! <https://docs.aws.amazon.com/connect/latest/adminguide/ctr-data-model.html>). A record
//! describes a whole contact once it is over; it gives what the agent stream cannot say:
//!
//! | contact record | canonical events | time |
//! |---|---|---|
//! | `Queue` present | `contact.queued` | `Queue.EnqueueTimestamp` |
//! | `Queue` present, no `Agent.ConnectedToAgentTimestamp` | `contact.abandoned`, or `contact.dequeued` when the configured contact attribute names a dequeue reason | `Queue.DequeueTimestamp`, else `DisconnectTimestamp` |
//!
//! Contact records are delivered at least once and again on every update: the translator
//! remembers which events each `ContactId` already gave and gives them only once; their ids
//! come from the `ContactId` and the event kind, so a restarted translator gives the same ids
//! and the core drops the repeats.
//!
//! Event ids of the agent stream come from what the records describe (the contact, the
//! advisor, the step and its source time; the status and its start), not from `EventId`: a
//! transition recovered from a heartbeat and the late record that reports it then have the
//! same id, and are counted once.
//!
//! Records whose `EventType` this version does not know are skipped and counted; unknown
//! fields are ignored.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use vigie_core::{
    AdvisorEvent, AdvisorEventKind, AdvisorStatus, Channel, ContactEvent, ContactEventKind,
    DequeueReason, Event, EventBody, Millis, Timestamp,
};
use xxhash_rust::xxh3::Xxh3;

use crate::common::ConfigProblem;
use crate::common::{
    ConfigChecks, LineCounts, LineTranslator, SweepClock, count_name, evict_oldest_tenth, excerpt,
    identifier_problem,
};

/// How long a contact record's contact and an agent's last snapshot are remembered after
/// their last record, by default: contact records are updated and delivered again, often
/// hours after the contact.
pub const DEFAULT_CONNECT_MEMORY: Duration = Duration::from_secs(24 * 3600);

/// The longest memory accepted in configuration.
const MAX_MEMORY: Duration = Duration::from_secs(30 * 24 * 3600);

/// The most contacts (and, separately, agents) remembered at once; the oldest are forgotten
/// first.
pub const MAX_REMEMBERED_CONNECT_CONTACTS: usize = 200_000;

/// The latest Unix millisecond an RFC 3339 time can spell (9999-12-31T23:59:59.999Z).
const LAST_EPOCH_MILLI: i64 = 253_402_300_799_999;

/// The default contact attribute a flow sets to say why a queued contact left unanswered.
const DEFAULT_DEQUEUE_ATTRIBUTE: &str = "vigie_dequeue_reason";

/// Which field of the agent stream names an advisor, when `advisors` does not map the
/// agent's ARN.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdvisorIdSource {
    /// `Configuration.Username` of the snapshot.
    #[default]
    Username,
    /// The agent id at the end of `AgentARN` (`.../agent/<id>`), which never changes and is
    /// not an e-mail address (docs/events.md, "Amazon Connect").
    AgentArnId,
}

/// How an Amazon Connect source is read: one instance (or one site's share of it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmazonConnectConfig {
    /// Vigie site id the events belong to.
    pub site: String,
    /// Queue id by queue ARN; queues not listed are named by their `Name`.
    #[serde(default)]
    pub queues: BTreeMap<String, String>,
    /// Advisor id by agent ARN; agents not listed are named as `advisor_id` says.
    #[serde(default)]
    pub advisors: BTreeMap<String, String>,
    /// What names an agent not listed in `advisors`.
    #[serde(default)]
    pub advisor_id: AdvisorIdSource,
    /// Team by routing profile (its `Name` or its `ARN`), sent in `advisor.login`.
    #[serde(default)]
    pub teams: BTreeMap<String, String>,
    /// Contact attribute (`Attributes` of the contact record) that the queue flow sets to a
    /// dequeue reason (`voicemail`, `callback`, `timeout`, `closed`) when it takes a contact
    /// out of the queue; without it, a contact that left unanswered is an abandon.
    #[serde(default = "default_dequeue_attribute")]
    pub dequeue_reason_attribute: String,
    /// How long contacts and agents are remembered after their last record (`"24h"`).
    #[serde(default = "default_memory", with = "humantime_serde")]
    pub memory: Duration,
}

fn default_dequeue_attribute() -> String {
    DEFAULT_DEQUEUE_ATTRIBUTE.to_owned()
}

fn default_memory() -> Duration {
    DEFAULT_CONNECT_MEMORY
}

/// Every problem of an Amazon Connect configuration, reported at once.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid amazon_connect configuration: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct ConnectConfigErrors(pub Vec<ConfigProblem>);

impl AmazonConnectConfig {
    /// The defaults for a site: queues by name, advisors by username, no teams.
    pub fn new(site: impl Into<String>) -> AmazonConnectConfig {
        AmazonConnectConfig {
            site: site.into(),
            queues: BTreeMap::new(),
            advisors: BTreeMap::new(),
            advisor_id: AdvisorIdSource::default(),
            teams: BTreeMap::new(),
            dequeue_reason_attribute: default_dequeue_attribute(),
            memory: DEFAULT_CONNECT_MEMORY,
        }
    }

    /// Checks the configuration and builds the translator.
    pub fn build(&self) -> Result<AmazonConnectTranslator, ConnectConfigErrors> {
        let mut checks = ConfigChecks::default();
        checks.identifier("site", &self.site);
        for (arn, queue) in &self.queues {
            checks.identifier(format!("queues.{arn:?}"), queue);
        }
        for (arn, advisor) in &self.advisors {
            checks.identifier(format!("advisors.{arn:?}"), advisor);
        }
        for (profile, team) in &self.teams {
            checks.identifier(format!("teams.{profile:?}"), team);
        }
        if self.dequeue_reason_attribute.trim().is_empty() {
            checks.push("dequeue_reason_attribute", "must name a contact attribute");
        }
        if self.memory > MAX_MEMORY {
            checks.push(
                "memory",
                "must be at most 30d: Vigie rejects events that much behind anyway",
            );
        } else {
            checks.memory("memory", self.memory, "records");
        }
        checks.finish(ConnectConfigErrors)?;
        Ok(AmazonConnectTranslator {
            site: self.site.clone(),
            queues: self.queues.clone(),
            advisors: self.advisors.clone(),
            advisor_id: self.advisor_id,
            teams: self.teams.clone(),
            dequeue_attribute: self.dequeue_reason_attribute.clone(),
            memory: Millis::from_std(self.memory),
            agents: BTreeMap::new(),
            contacts: BTreeMap::new(),
            clock: SweepClock::default(),
            stats: ConnectStats::default(),
        })
    }
}

/// Why a record is malformed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecordProblem {
    /// Not a JSON document.
    #[error("not valid JSON: {0}")]
    NotJson(String),
    /// JSON, but not an object.
    #[error("a record is a JSON object, found {0}")]
    NotAnObject(&'static str),
    /// Neither an agent event (`EventType`) nor a contact record (`ContactId`).
    #[error(
        "neither an agent event (no EventType) nor a contact record (no ContactId): unknown record"
    )]
    UnknownRecord,
    /// A field the record needs is absent or null.
    #[error("field {field} is required")]
    MissingField {
        /// Path of the field (`CurrentAgentSnapshot.Contacts[0].State`).
        field: String,
    },
    /// A field is present but of the wrong form.
    #[error("field {field} is {found}, expected {expected}")]
    InvalidField {
        /// Path of the field.
        field: String,
        /// What was found (cut at 64 bytes).
        found: String,
        /// What is expected.
        expected: &'static str,
    },
    /// A field that becomes an identifier breaks the contract's identifier rules.
    #[error("field {field} {value:?} cannot be an identifier: {why}")]
    InvalidIdentifier {
        /// Path of the field.
        field: String,
        /// The value (cut at 64 bytes).
        value: String,
        /// Which rule it breaks.
        why: &'static str,
    },
}

/// A record that cannot be translated: its line number (from 1) and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("amazon connect record at line {line}: {problem}")]
pub struct MalformedRecord {
    /// Line number, from 1.
    pub line: u64,
    /// What is wrong.
    pub problem: RecordProblem,
}

/// What one record gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordOutcome {
    /// The events to publish, in the order to apply them (possibly none: a heartbeat, a
    /// configuration change, a contact record delivered again).
    Events(Vec<Event>),
    /// An agent event type this version does not know; counted in [`ConnectStats::skipped`].
    Skipped {
        /// The `EventType`.
        event_type: String,
    },
    /// An empty line.
    Blank,
}

/// Running counts of what the translator did, for metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ConnectStats {
    /// Lines read, blank and malformed ones included.
    pub records: u64,
    /// Blank lines.
    pub blank: u64,
    /// Malformed records.
    pub malformed: u64,
    /// Events produced.
    pub events: u64,
    /// Agent stream records translated (any known `EventType`).
    pub agent_events: u64,
    /// Heartbeats read.
    pub heartbeats: u64,
    /// Events recovered from a heartbeat whose snapshot showed a missed transition.
    pub recovered: u64,
    /// Contact records read.
    pub contact_records: u64,
    /// Events of a contact record not given again because an earlier delivery of the same
    /// contact gave them.
    pub contact_record_repeats: u64,
    /// Contact records of contacts that never entered a queue (outbound, flow only): nothing
    /// to say about a queue.
    pub contact_records_without_queue: u64,
    /// Records skipped, by `EventType` (types beyond the first 64 count as `other`).
    pub skipped: BTreeMap<String, u64>,
    /// Contacts or agents forgotten before their memory ran out, because
    /// [`MAX_REMEMBERED_CONNECT_CONTACTS`] was hit.
    pub evicted: u64,
}

/// An agent status type (`AgentStatus.Type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StatusType {
    Routable,
    Custom,
    Offline,
    /// A type this version does not know: no status event.
    Other,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Status {
    name: String,
    kind: StatusType,
    start: Option<Timestamp>,
}

impl Status {
    fn same_as(&self, other: &Status) -> bool {
        self.name == other.name && self.kind == other.kind
    }
}

/// A contact state (`Contacts[].State`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ContactState {
    /// `INCOMING`, `CONNECTING`: presented to the agent.
    Offered,
    /// `PENDING`: a queued callback waiting to be presented.
    Pending,
    /// `CONNECTED`.
    Connected,
    /// `CONNECTED_ONHOLD`.
    OnHold,
    /// `MISSED`, `REJECTED`, `ERROR`.
    Missed,
    /// `ENDED`: after-contact work.
    Ended,
    /// A state this version does not know (`PAUSED` of tasks...): no event.
    Other,
}

impl ContactState {
    fn parse(text: &str) -> ContactState {
        match text {
            "INCOMING" | "CONNECTING" => ContactState::Offered,
            "PENDING" => ContactState::Pending,
            "CONNECTED" => ContactState::Connected,
            "CONNECTED_ONHOLD" => ContactState::OnHold,
            "MISSED" | "REJECTED" | "ERROR" => ContactState::Missed,
            "ENDED" => ContactState::Ended,
            _ => ContactState::Other,
        }
    }

    /// Whether the agent was connected to the contact in this state.
    fn connected(self) -> bool {
        matches!(
            self,
            ContactState::Connected | ContactState::OnHold | ContactState::Ended
        )
    }
}

/// One contact of a snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
struct SnapshotContact {
    id: String,
    state: ContactState,
    channel: Option<Channel>,
    state_start: Option<Timestamp>,
    connected_at: Option<Timestamp>,
    queue: Option<String>,
}

/// What the translator reads of an agent snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Snapshot {
    username: Option<String>,
    /// Routing profile name and ARN.
    routing_profile: (Option<String>, Option<String>),
    status: Option<Status>,
    contacts: Vec<SnapshotContact>,
}

/// The last snapshot seen of an agent.
#[derive(Clone, Debug)]
struct AgentMemory {
    time: Timestamp,
    snapshot: Snapshot,
}

/// What the translator remembers of a contact's records.
#[derive(Clone, Debug)]
struct ContactMemory {
    /// Event kinds already given (`queued`, `abandoned`, `dequeued`).
    given: BTreeSet<&'static str>,
    last_seen: Timestamp,
}

/// Translates Amazon Connect records (agent events and contact records mixed or not), in
/// the order they are read. Built by [`AmazonConnectConfig::build`].
#[derive(Debug)]
pub struct AmazonConnectTranslator {
    site: String,
    queues: BTreeMap<String, String>,
    advisors: BTreeMap<String, String>,
    advisor_id: AdvisorIdSource,
    teams: BTreeMap<String, String>,
    dequeue_attribute: String,
    memory: Millis,
    /// Last snapshot by agent ARN.
    agents: BTreeMap<String, AgentMemory>,
    /// Contact records' contacts by `ContactId`.
    contacts: BTreeMap<String, ContactMemory>,
    clock: SweepClock,
    stats: ConnectStats,
}

/// The record being translated, for the events' ids and the advisor.
struct AgentRecord<'a> {
    arn: &'a str,
    advisor: String,
    time: Timestamp,
}

impl AmazonConnectTranslator {
    /// Counts so far.
    pub fn stats(&self) -> &ConnectStats {
        &self.stats
    }

    /// Contacts remembered now (bounded by [`MAX_REMEMBERED_CONNECT_CONTACTS`] and the
    /// memory).
    pub fn remembered_contacts(&self) -> usize {
        self.contacts.len()
    }

    /// Agents remembered now.
    pub fn remembered_agents(&self) -> usize {
        self.agents.len()
    }

    /// Translates a whole text (a file, or the part of it read so far), line by line from
    /// line 1: the events in order, and every malformed record.
    pub fn translate_text(&mut self, text: &str) -> (Vec<Event>, Vec<MalformedRecord>) {
        crate::common::translate_text(self, text)
    }

    /// Translates one record (`line_number` counts from 1 and only names it in errors).
    pub fn translate_line(
        &mut self,
        line_number: u64,
        line: &str,
    ) -> Result<RecordOutcome, MalformedRecord> {
        crate::common::translate_line(self, line_number, line)
    }

    fn translate(&mut self, text: &str) -> Result<RecordOutcome, RecordProblem> {
        let value: Value = serde_json::from_str(text)
            .map_err(|error| RecordProblem::NotJson(error.to_string()))?;
        let Value::Object(record) = value else {
            return Err(RecordProblem::NotAnObject(kind_of(&value)));
        };
        if present(&record, "EventType").is_some() {
            self.agent_event(&record)
        } else if present(&record, "ContactId").is_some() {
            self.contact_record(&record).map(RecordOutcome::Events)
        } else {
            Err(RecordProblem::UnknownRecord)
        }
    }

    // ---- agent event stream -------------------------------------------------------------

    fn agent_event(&mut self, record: &Map<String, Value>) -> Result<RecordOutcome, RecordProblem> {
        let event_type = req_str(record, "", "EventType")?;
        if !matches!(
            event_type,
            "STATE_CHANGE" | "HEART_BEAT" | "LOGIN" | "LOGOUT"
        ) {
            count_name(&mut self.stats.skipped, event_type);
            return Ok(RecordOutcome::Skipped {
                event_type: event_type.to_owned(),
            });
        }
        req_str(record, "", "EventId")?;
        let time = req_time(record, "", "EventTimestamp")?;
        let arn = req_str(record, "", "AgentARN")?;
        let current = opt_obj(record, "", "CurrentAgentSnapshot")?
            .map(|snapshot| self.snapshot(snapshot, "CurrentAgentSnapshot"))
            .transpose()?;
        let previous = opt_obj(record, "", "PreviousAgentSnapshot")?
            .map(|snapshot| self.snapshot(snapshot, "PreviousAgentSnapshot"))
            .transpose()?;
        if current.is_none() && event_type != "LOGOUT" {
            return Err(RecordProblem::MissingField {
                field: "CurrentAgentSnapshot".to_owned(),
            });
        }
        let remembered = self
            .agents
            .get(arn)
            .filter(|memory| memory.time <= time)
            .map(|memory| memory.snapshot.clone());
        let advisor = self.advisor_of(arn, current.as_ref(), previous.as_ref())?;
        self.observe(time);
        self.stats.agent_events += 1;
        let context = AgentRecord { arn, advisor, time };
        let mut events = Vec::new();
        match event_type {
            "HEART_BEAT" => {
                self.stats.heartbeats += 1;
                // Only a heartbeat newer than the last snapshot seen can reveal something;
                // with nothing remembered, there is nothing to compare with.
                if let (Some(before), Some(now)) = (&remembered, &current) {
                    self.diff(&context, Some(before), now, &mut events);
                    self.stats.recovered += events.len() as u64;
                }
            }
            "LOGIN" => {
                let now = current
                    .as_ref()
                    .expect("checked above: LOGIN has a snapshot");
                self.login(&context, now, time, &mut events);
                self.diff_contacts(&context, previous.as_ref(), now, &mut events);
            }
            "LOGOUT" => {
                let before = previous.as_ref().or(remembered.as_ref());
                let already_offline = before
                    .and_then(|snapshot| snapshot.status.as_ref())
                    .is_some_and(|status| status.kind == StatusType::Offline);
                if !already_offline {
                    events.push(self.advisor_event(
                        &context,
                        "logout",
                        time,
                        AdvisorEventKind::Logout,
                    ));
                }
            }
            _ => {
                let now = current
                    .as_ref()
                    .expect("checked above: STATE_CHANGE has a snapshot");
                let before = previous.as_ref().or(remembered.as_ref());
                self.diff(&context, before, now, &mut events);
            }
        }
        let newer = self
            .agents
            .get(arn)
            .is_none_or(|memory| memory.time <= time);
        if newer {
            if self.agents.len() >= MAX_REMEMBERED_CONNECT_CONTACTS
                && !self.agents.contains_key(arn)
            {
                self.evict_oldest_agents();
            }
            self.agents.insert(
                arn.to_owned(),
                AgentMemory {
                    time,
                    snapshot: current.unwrap_or_default(),
                },
            );
        }
        Ok(RecordOutcome::Events(events))
    }

    /// The advisor id of an agent: mapped by ARN, else by the configured source.
    fn advisor_of(
        &self,
        arn: &str,
        current: Option<&Snapshot>,
        previous: Option<&Snapshot>,
    ) -> Result<String, RecordProblem> {
        if let Some(advisor) = self.advisors.get(arn) {
            return Ok(advisor.clone());
        }
        let (field, advisor) = match self.advisor_id {
            AdvisorIdSource::Username => (
                "CurrentAgentSnapshot.Configuration.Username",
                current
                    .or(previous)
                    .and_then(|snapshot| snapshot.username.clone()),
            ),
            AdvisorIdSource::AgentArnId => (
                "AgentARN",
                arn.rsplit_once("/agent/").map(|(_, id)| id.to_owned()),
            ),
        };
        let advisor = advisor.ok_or_else(|| RecordProblem::MissingField {
            field: field.to_owned(),
        })?;
        check_identifier(field, &advisor)?;
        Ok(advisor)
    }

    fn snapshot(&self, snapshot: &Map<String, Value>, at: &str) -> Result<Snapshot, RecordProblem> {
        let mut result = Snapshot::default();
        if let Some(configuration) = opt_obj(snapshot, at, "Configuration")? {
            let path = format!("{at}.Configuration");
            result.username = opt_str(configuration, &path, "Username")?.map(str::to_owned);
            if let Some(profile) = opt_obj(configuration, &path, "RoutingProfile")? {
                let path = format!("{path}.RoutingProfile");
                result.routing_profile = (
                    opt_str(profile, &path, "Name")?.map(str::to_owned),
                    opt_str(profile, &path, "ARN")?.map(str::to_owned),
                );
            }
        }
        if let Some(status) = opt_obj(snapshot, at, "AgentStatus")? {
            let path = format!("{at}.AgentStatus");
            let name = req_str(status, &path, "Name")?;
            let kind = match req_str(status, &path, "Type")? {
                "ROUTABLE" => StatusType::Routable,
                "CUSTOM" => StatusType::Custom,
                "OFFLINE" => StatusType::Offline,
                _ => StatusType::Other,
            };
            result.status = Some(Status {
                name: name.to_owned(),
                kind,
                start: opt_time(status, &path, "StartTimestamp")?,
            });
        }
        if let Some(contacts) = present(snapshot, "Contacts") {
            let Value::Array(contacts) = contacts else {
                return Err(invalid(&format!("{at}.Contacts"), contacts, "an array"));
            };
            for (index, contact) in contacts.iter().enumerate() {
                let path = format!("{at}.Contacts[{index}]");
                let Value::Object(contact) = contact else {
                    return Err(invalid(&path, contact, "an object"));
                };
                let id = req_str(contact, &path, "ContactId")?;
                check_identifier(&format!("{path}.ContactId"), id)?;
                let state = ContactState::parse(req_str(contact, &path, "State")?);
                let channel = opt_str(contact, &path, "Channel")?.and_then(channel_of);
                let channel = match opt_str(contact, &path, "InitiationMethod")? {
                    Some("CALLBACK") => Some(Channel::Callback),
                    _ => channel,
                };
                let queue = match opt_obj(contact, &path, "Queue")? {
                    Some(queue) => Some(self.queue_of(queue, &format!("{path}.Queue"))?),
                    None => None,
                };
                result.contacts.push(SnapshotContact {
                    id: id.to_owned(),
                    state,
                    channel,
                    state_start: opt_time(contact, &path, "StateStartTimestamp")?,
                    connected_at: opt_time(contact, &path, "ConnectedToAgentTimestamp")?,
                    queue,
                });
            }
        }
        Ok(result)
    }

    /// The queue id of a `Queue` object: mapped by ARN, else its name.
    fn queue_of(&self, queue: &Map<String, Value>, at: &str) -> Result<String, RecordProblem> {
        if let Some(mapped) = opt_str(queue, at, "ARN")?.and_then(|arn| self.queues.get(arn)) {
            return Ok(mapped.clone());
        }
        let name = req_str(queue, at, "Name")?;
        check_identifier(&format!("{at}.Name"), name)?;
        Ok(name.to_owned())
    }

    fn team_of(&self, snapshot: &Snapshot) -> Option<String> {
        let (name, arn) = &snapshot.routing_profile;
        name.as_ref()
            .and_then(|name| self.teams.get(name))
            .or_else(|| arn.as_ref().and_then(|arn| self.teams.get(arn)))
            .cloned()
    }

    /// `LOGIN`: the session starts, unless the agent logs in with an offline status (then it
    /// starts when they leave it).
    fn login(
        &self,
        context: &AgentRecord<'_>,
        now: &Snapshot,
        time: Timestamp,
        events: &mut Vec<Event>,
    ) {
        let kind = now.status.as_ref().map(|status| status.kind);
        if kind == Some(StatusType::Offline) {
            return;
        }
        events.push(self.advisor_event(
            context,
            "login",
            time,
            AdvisorEventKind::Login {
                team: self.team_of(now),
                name: None,
            },
        ));
        if let Some(status) = now.status.as_ref().filter(|s| s.kind == StatusType::Custom) {
            events.push(self.advisor_event(
                context,
                "pause",
                time,
                AdvisorEventKind::State(pause(&status.name)),
            ));
        }
    }

    /// The events between two snapshots of one agent.
    fn diff(
        &self,
        context: &AgentRecord<'_>,
        before: Option<&Snapshot>,
        now: &Snapshot,
        events: &mut Vec<Event>,
    ) {
        self.diff_status(context, before, now, events);
        self.diff_contacts(context, before, now, events);
    }

    fn diff_status(
        &self,
        context: &AgentRecord<'_>,
        before: Option<&Snapshot>,
        now: &Snapshot,
        events: &mut Vec<Event>,
    ) {
        let Some(status) = &now.status else {
            return;
        };
        let previous = before.and_then(|snapshot| snapshot.status.as_ref());
        if previous.is_some_and(|previous| previous.same_as(status)) {
            return;
        }
        let from_offline = previous.is_some_and(|previous| previous.kind == StatusType::Offline);
        let time = status.start.unwrap_or(context.time);
        match status.kind {
            StatusType::Routable | StatusType::Custom if from_offline => {
                events.push(self.advisor_event(
                    context,
                    "login",
                    time,
                    AdvisorEventKind::Login {
                        team: self.team_of(now),
                        name: None,
                    },
                ));
                if status.kind == StatusType::Custom {
                    events.push(self.advisor_event(
                        context,
                        "pause",
                        time,
                        AdvisorEventKind::State(pause(&status.name)),
                    ));
                }
            }
            StatusType::Routable => events.push(self.advisor_event(
                context,
                "available",
                time,
                AdvisorEventKind::State(AdvisorStatus::Available),
            )),
            StatusType::Custom => events.push(self.advisor_event(
                context,
                "pause",
                time,
                AdvisorEventKind::State(pause(&status.name)),
            )),
            StatusType::Offline => {
                events.push(self.advisor_event(context, "logout", time, AdvisorEventKind::Logout));
            }
            StatusType::Other => {}
        }
    }

    fn diff_contacts(
        &self,
        context: &AgentRecord<'_>,
        before: Option<&Snapshot>,
        now: &Snapshot,
        events: &mut Vec<Event>,
    ) {
        for contact in &now.contacts {
            let previous = before
                .and_then(|snapshot| snapshot.contacts.iter().find(|c| c.id == contact.id))
                .map(|c| c.state);
            self.contact_transition(context, previous, contact, events);
        }
        let Some(before) = before else {
            return;
        };
        for gone in &before.contacts {
            if now.contacts.iter().any(|c| c.id == gone.id) {
                continue;
            }
            // Out of the snapshot: the agent's part is over. After a conversation that is the
            // end of the after-contact work; an offer that left without an answer said all it
            // had to say (missed, or taken by another agent).
            if matches!(gone.state, ContactState::Connected | ContactState::OnHold) {
                events.push(self.agent_contact_event(
                    context,
                    gone,
                    ContactEventKind::Ended,
                    context.time,
                    None,
                ));
            }
            if gone.state.connected() {
                events.push(self.agent_contact_event(
                    context,
                    gone,
                    ContactEventKind::Completed {
                        disposition: None,
                        resolved: None,
                    },
                    context.time,
                    None,
                ));
            }
        }
    }

    /// The events of one contact going from `previous` (absent: new in the snapshot) to its
    /// state now, filling in the steps a skipped record would have given when the snapshot
    /// tells their time.
    fn contact_transition(
        &self,
        context: &AgentRecord<'_>,
        previous: Option<ContactState>,
        contact: &SnapshotContact,
        events: &mut Vec<Event>,
    ) {
        let state_time = contact.state_start.unwrap_or(context.time);
        let was_connected = previous.is_some_and(ContactState::connected);
        let answer = |events: &mut Vec<Event>| {
            if !was_connected {
                let time = contact
                    .connected_at
                    .or(contact.state_start)
                    .unwrap_or(context.time);
                events.push(self.agent_contact_event(
                    context,
                    contact,
                    ContactEventKind::Answered,
                    time,
                    None,
                ));
            }
        };
        match contact.state {
            ContactState::Offered => {
                if matches!(previous, None | Some(ContactState::Pending)) {
                    events.push(self.agent_contact_event(
                        context,
                        contact,
                        ContactEventKind::Offered,
                        state_time,
                        Some(state_time),
                    ));
                }
            }
            ContactState::Missed => {
                if previous != Some(ContactState::Missed) && !was_connected {
                    events.push(self.agent_contact_event(
                        context,
                        contact,
                        ContactEventKind::Missed,
                        state_time,
                        Some(state_time),
                    ));
                }
            }
            ContactState::Connected => {
                answer(events);
                if previous == Some(ContactState::OnHold) {
                    events.push(self.agent_contact_event(
                        context,
                        contact,
                        ContactEventKind::Resumed,
                        context.time,
                        Some(context.time),
                    ));
                }
            }
            ContactState::OnHold => {
                answer(events);
                if previous != Some(ContactState::OnHold) {
                    events.push(self.agent_contact_event(
                        context,
                        contact,
                        ContactEventKind::Held,
                        context.time,
                        Some(context.time),
                    ));
                }
            }
            ContactState::Ended => {
                // An end without a known answer time cannot be placed: the conversation's
                // start is unknown, and the core ignores an end for a leg it never saw.
                if !was_connected && contact.connected_at.is_some() {
                    answer(events);
                }
                if previous != Some(ContactState::Ended) {
                    events.push(self.agent_contact_event(
                        context,
                        contact,
                        ContactEventKind::Ended,
                        state_time,
                        None,
                    ));
                }
            }
            ContactState::Pending | ContactState::Other => {}
        }
    }

    /// A contact event of the agent stream. Its id comes from the contact, the advisor and
    /// the step, plus `instant` for steps that may happen more than once (offers, misses,
    /// holds): the same transition gives the same id whichever record reveals it.
    fn agent_contact_event(
        &self,
        context: &AgentRecord<'_>,
        contact: &SnapshotContact,
        kind: ContactEventKind,
        time: Timestamp,
        instant: Option<Timestamp>,
    ) -> Event {
        let suffix = kind.type_name().trim_start_matches("contact.");
        let mut parts: Vec<&[u8]> = vec![
            b"agent",
            contact.id.as_bytes(),
            context.advisor.as_bytes(),
            suffix.as_bytes(),
        ];
        let instant = instant.map(|instant| instant.0.to_le_bytes());
        if let Some(instant) = &instant {
            parts.push(instant);
        }
        let with_queue = matches!(kind, ContactEventKind::Answered);
        Event {
            id: self.id(&parts, suffix),
            time,
            site: self.site.clone(),
            body: EventBody::Contact(ContactEvent {
                contact: contact.id.clone(),
                kind,
                queue: contact.queue.clone(),
                channel: if with_queue { contact.channel } else { None },
                advisor: Some(context.advisor.clone()),
            }),
        }
    }

    /// An advisor event; its id comes from the agent, the step and its time.
    fn advisor_event(
        &self,
        context: &AgentRecord<'_>,
        suffix: &str,
        time: Timestamp,
        kind: AdvisorEventKind,
    ) -> Event {
        let reason = match &kind {
            AdvisorEventKind::State(AdvisorStatus::Pause { reason }) => reason.as_str(),
            _ => "",
        };
        let instant = time.0.to_le_bytes();
        let parts: [&[u8]; 5] = [
            b"advisor",
            context.arn.as_bytes(),
            suffix.as_bytes(),
            reason.as_bytes(),
            &instant,
        ];
        Event {
            id: self.id(&parts, suffix),
            time,
            site: self.site.clone(),
            body: EventBody::Advisor(AdvisorEvent {
                advisor: context.advisor.clone(),
                kind,
            }),
        }
    }

    // ---- contact records ----------------------------------------------------------------

    fn contact_record(&mut self, record: &Map<String, Value>) -> Result<Vec<Event>, RecordProblem> {
        self.stats.contact_records += 1;
        let contact = req_str(record, "", "ContactId")?;
        check_identifier("ContactId", contact)?;
        let Some(queue) = opt_obj(record, "", "Queue")? else {
            self.stats.contact_records_without_queue += 1;
            return Ok(Vec::new());
        };
        let queue_id = self.queue_of(queue, "Queue")?;
        let enqueued = req_time(queue, "Queue", "EnqueueTimestamp")?;
        let channel = match opt_str(record, "", "InitiationMethod")? {
            Some("CALLBACK") => Channel::Callback,
            _ => {
                let text = req_str(record, "", "Channel")?;
                channel_of(text).ok_or_else(|| RecordProblem::InvalidField {
                    field: "Channel".to_owned(),
                    found: format!("{:?}", excerpt(text)),
                    expected: "VOICE, CHAT, TASK or EMAIL",
                })?
            }
        };
        let connected = match opt_obj(record, "", "Agent")? {
            Some(agent) => opt_time(agent, "Agent", "ConnectedToAgentTimestamp")?.is_some(),
            None => false,
        };
        let mut wanted = vec![("queued", enqueued, ContactEventKind::Queued, Some(channel))];
        if !connected {
            let left = match opt_time(queue, "Queue", "DequeueTimestamp")? {
                Some(time) => time,
                None => req_time(record, "", "DisconnectTimestamp")?,
            };
            let reason = match opt_obj(record, "", "Attributes")? {
                Some(attributes) => opt_str(attributes, "Attributes", &self.dequeue_attribute)?
                    .map(|text| {
                        DequeueReason::parse(text).ok_or_else(|| RecordProblem::InvalidField {
                            field: format!("Attributes.{}", self.dequeue_attribute),
                            found: format!("{:?}", excerpt(text)),
                            expected: "voicemail, callback, timeout or closed",
                        })
                    })
                    .transpose()?,
                None => None,
            };
            wanted.push(match reason {
                None => ("abandoned", left, ContactEventKind::Abandoned, None),
                Some(reason) => (
                    "dequeued",
                    left,
                    ContactEventKind::Dequeued { reason },
                    None,
                ),
            });
        }
        let newest = wanted
            .iter()
            .map(|(_, time, _, _)| *time)
            .fold(enqueued, Timestamp::max);
        self.observe(newest);
        if !self.contacts.contains_key(contact)
            && self.contacts.len() >= MAX_REMEMBERED_CONNECT_CONTACTS
        {
            self.evict_oldest_contacts();
        }
        let memory = self
            .contacts
            .entry(contact.to_owned())
            .or_insert_with(|| ContactMemory {
                given: BTreeSet::new(),
                last_seen: newest,
            });
        memory.last_seen = memory.last_seen.max(newest);
        let mut fresh = Vec::with_capacity(wanted.len());
        for (suffix, time, kind, channel) in wanted {
            // An update may not turn an abandon into a dequeue (or back): the first delivery's
            // outcome stands, as the core would keep its id anyway.
            let ended = matches!(suffix, "abandoned" | "dequeued")
                && (memory.given.contains("abandoned") || memory.given.contains("dequeued"));
            if ended || !memory.given.insert(suffix) {
                self.stats.contact_record_repeats += 1;
                continue;
            }
            fresh.push((suffix, time, kind, channel));
        }
        Ok(fresh
            .into_iter()
            .map(|(suffix, time, kind, channel)| Event {
                id: self.id(&[contact.as_bytes(), suffix.as_bytes()], suffix),
                time,
                site: self.site.clone(),
                body: EventBody::Contact(ContactEvent {
                    contact: contact.to_owned(),
                    kind,
                    queue: Some(queue_id.clone()),
                    channel,
                    advisor: None,
                }),
            })
            .collect())
    }

    // ---- shared -------------------------------------------------------------------------

    /// `acn-` and the XXH3-128 of the site and the parts, then the suffix.
    fn id(&self, parts: &[&[u8]], suffix: &str) -> String {
        let mut hasher = Xxh3::new();
        hasher.update(self.site.as_bytes());
        for part in parts {
            hasher.update(b"\n");
            hasher.update(part);
        }
        format!("acn-{:032x}-{suffix}", hasher.digest128())
    }

    /// Moves the memory clock and forgets what is older than the memory (at most once a
    /// minute of source time).
    fn observe(&mut self, time: Timestamp) {
        if let Some(horizon) = self.clock.observe(time, self.memory) {
            self.contacts
                .retain(|_, contact| contact.last_seen >= horizon);
            self.agents.retain(|_, agent| agent.time >= horizon);
        }
    }

    fn evict_oldest_contacts(&mut self) {
        self.stats.evicted += evict_oldest_tenth(&mut self.contacts, |contact| contact.last_seen);
    }

    fn evict_oldest_agents(&mut self) {
        self.stats.evicted += evict_oldest_tenth(&mut self.agents, |agent| agent.time);
    }
}

/// A pause with the status name as reason, lower-cased (docs/events.md, "Amazon Connect":
/// `Lunch` -> `lunch`), so that one reason keeps one spelling.
fn pause(name: &str) -> AdvisorStatus {
    let reason = name.trim().to_lowercase();
    if identifier_problem(&reason).is_err() {
        return AdvisorStatus::Pause {
            reason: vigie_core::event::UNSPECIFIED_PAUSE_REASON.to_owned(),
        };
    }
    AdvisorStatus::Pause { reason }
}

fn channel_of(text: &str) -> Option<Channel> {
    match text {
        "VOICE" => Some(Channel::Voice),
        "CHAT" => Some(Channel::Chat),
        "TASK" => Some(Channel::Task),
        "EMAIL" => Some(Channel::Email),
        _ => None,
    }
}

/// A field's value, `null` counting as absent.
fn present<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    object.get(key).filter(|value| !value.is_null())
}

fn path_of(at: &str, key: &str) -> String {
    if at.is_empty() {
        key.to_owned()
    } else {
        format!("{at}.{key}")
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn invalid(field: &str, value: &Value, expected: &'static str) -> RecordProblem {
    RecordProblem::InvalidField {
        field: field.to_owned(),
        found: match value {
            Value::String(text) => format!("{:?}", excerpt(text)),
            other => kind_of(other).to_owned(),
        },
        expected,
    }
}

fn opt_str<'a>(
    object: &'a Map<String, Value>,
    at: &str,
    key: &str,
) -> Result<Option<&'a str>, RecordProblem> {
    match present(object, key) {
        None => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.as_str())),
        Some(other) => Err(invalid(&path_of(at, key), other, "a string")),
    }
}

fn req_str<'a>(
    object: &'a Map<String, Value>,
    at: &str,
    key: &str,
) -> Result<&'a str, RecordProblem> {
    opt_str(object, at, key)?.ok_or_else(|| RecordProblem::MissingField {
        field: path_of(at, key),
    })
}

fn opt_obj<'a>(
    object: &'a Map<String, Value>,
    at: &str,
    key: &str,
) -> Result<Option<&'a Map<String, Value>>, RecordProblem> {
    match present(object, key) {
        None => Ok(None),
        Some(Value::Object(inner)) => Ok(Some(inner)),
        Some(other) => Err(invalid(&path_of(at, key), other, "an object")),
    }
}

/// An ISO 8601 time with offset (`2019-05-25T18:43:00.123Z`), kept to the millisecond.
fn opt_time(
    object: &Map<String, Value>,
    at: &str,
    key: &str,
) -> Result<Option<Timestamp>, RecordProblem> {
    let Some(text) = opt_str(object, at, key)? else {
        return Ok(None);
    };
    match Timestamp::parse_rfc3339(text) {
        Some(time) if (0..=LAST_EPOCH_MILLI).contains(&time.0) => Ok(Some(time)),
        _ => Err(RecordProblem::InvalidField {
            field: path_of(at, key),
            found: format!("{:?}", excerpt(text)),
            expected: "an ISO 8601 time with offset, such as 2019-05-25T18:43:00.123Z",
        }),
    }
}

fn req_time(object: &Map<String, Value>, at: &str, key: &str) -> Result<Timestamp, RecordProblem> {
    opt_time(object, at, key)?.ok_or_else(|| RecordProblem::MissingField {
        field: path_of(at, key),
    })
}

fn check_identifier(field: &str, value: &str) -> Result<(), RecordProblem> {
    identifier_problem(value).map_err(|why| RecordProblem::InvalidIdentifier {
        field: field.to_owned(),
        value: excerpt(value),
        why,
    })
}

impl LineTranslator for AmazonConnectTranslator {
    type Outcome = RecordOutcome;
    type Problem = RecordProblem;
    type Malformed = MalformedRecord;

    const BLANK: RecordOutcome = RecordOutcome::Blank;

    fn counts(&mut self) -> LineCounts<'_> {
        LineCounts {
            lines: &mut self.stats.records,
            blank: &mut self.stats.blank,
            malformed: &mut self.stats.malformed,
            events: &mut self.stats.events,
        }
    }

    fn translate_record(&mut self, text: &str) -> Result<RecordOutcome, RecordProblem> {
        self.translate(text)
    }

    fn events(outcome: &RecordOutcome) -> Option<&Vec<Event>> {
        match outcome {
            RecordOutcome::Events(events) => Some(events),
            RecordOutcome::Skipped { .. } | RecordOutcome::Blank => None,
        }
    }

    fn into_events(outcome: RecordOutcome) -> Vec<Event> {
        match outcome {
            RecordOutcome::Events(events) => events,
            RecordOutcome::Skipped { .. } | RecordOutcome::Blank => Vec::new(),
        }
    }

    fn malformed(line: u64, problem: RecordProblem) -> MalformedRecord {
        MalformedRecord { line, problem }
    }
}
