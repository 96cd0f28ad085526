//! Twilio TaskRouter event callbacks to canonical events.
//!
//! TaskRouter posts one form-encoded callback per event to the workspace's
//! `EventCallbackUrl` (Twilio, "TaskRouter Events reference":
//! <https://www.twilio.com/docs/taskrouter/api/event/reference>): `EventType`, the event's
//! own `Sid` (`EV…`), `Timestamp` (Unix seconds) and `TimestampMs`, and the fields of the
//! task (`TaskSid`, `TaskQueueSid`, `TaskQueueName`, `TaskChannelUniqueName`,
//! `TaskAttributes`, `TaskCanceledReason`...), the reservation (`ReservationSid`) and the
//! worker (`WorkerSid`, `WorkerActivityName`, `WorkerPreviousActivityName`...).
//!
//! | TaskRouter `EventType` | canonical event |
//! |---|---|
//! | `task.created` naming a queue, `task-queue.entered` | `contact.queued` (queue, channel) |
//! | `reservation.created` | `contact.offered` |
//! | `reservation.accepted` | `contact.answered` |
//! | `reservation.rejected`, `reservation.timeout` | `contact.missed` |
//! | `reservation.canceled`, `reservation.rescinded` | nothing: the task was canceled or another worker took it, not a miss (docs/events.md) |
//! | `task.canceled` | `contact.dequeued` when `TaskCanceledReason` is one of `dequeue_reasons` (by default the TTL and workflow timeouts: `timeout`), else `contact.abandoned` |
//! | `workflow.timeout` | `contact.dequeued` with `timeout` |
//! | `task-queue.moved` | `contact.transferred` with the new queue as `to_queue` |
//! | `task.transfer-initiated` to a queue (`TransferType` `QUEUE`) | `contact.transferred` by the worker, `to_queue` the target queue |
//! | `task.wrapup` | `contact.ended` |
//! | `task.completed` | `contact.completed` |
//! | `worker.activity.update` | `advisor.state` `available` for an available activity, `pause` (reason: the activity name lower-cased) for another; `advisor.logout` into an offline activity; `advisor.login` (then `pause` if needed) out of one |
//!
//! Known event types with no canonical counterpart (`task.updated`, `worker.created`,
//! `activity.*`...) are *ignored*; types this version does not know are *skipped*; both are
//! counted by type.
//!
//! **Ids.** An event's id comes from the callback's `Sid`, so a callback delivered twice gives
//! the same id and Vigie counts it once. Two steps are identified by what they describe
//! instead, because TaskRouter reports them twice under different sids: the entry into a queue
//! (`task.created` and `task-queue.entered` of the same task and queue) and the task's leaving
//! the queue unanswered (`workflow.timeout` then `task.canceled`). Those ids come from the task,
//! the queue and the step, and the first one received is kept.
//!
//! **Contact.** The task sid, or the task attribute named by `contact_attribute` when the task
//! carries it (Flex transfers create a new task: carry the first task's sid in an attribute so
//! that the contact keeps one id). Nothing else is read from `TaskAttributes`: it often holds
//! the caller's number.
//!
//! **Time.** `TimestampMs` when present, else `Timestamp` (Unix seconds, or an RFC 3339 time).
//!
//! The site is given by the caller with each callback (the HTTP endpoint's `site` query
//! parameter), so that one translator serves every site.
//!
//! **Signatures.** [`SignatureChecker`] checks Twilio's `X-Twilio-Signature` of a callback,
//! given the account's auth token and the URL Twilio called (the endpoint knows both).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use vigie_core::{
    AdvisorEvent, AdvisorEventKind, AdvisorStatus, Channel, ContactEvent, ContactEventKind,
    DequeueReason, Event, EventBody, Timestamp,
};
use xxhash_rust::xxh3::Xxh3;

use crate::common::{ConfigChecks, ConfigProblem, count_name, excerpt, identifier_problem};

/// The latest Unix millisecond an RFC 3339 time can spell (9999-12-31T23:59:59.999Z).
const LAST_EPOCH_MILLI: i64 = 253_402_300_799_999;

/// Event types TaskRouter documents that carry nothing for Vigie.
const IGNORED_TYPES: &[&str] = &[
    "activity.created",
    "activity.updated",
    "activity.deleted",
    "reservation.canceled",
    "reservation.rescinded",
    "reservation.completed",
    "reservation.wrapup",
    "reservation.failed",
    "task.updated",
    "task.deleted",
    "task.system-deleted",
    "task.transfer-attempt-failed",
    "task.transfer-failed",
    "task.transfer-canceled",
    "task.transfer-completed",
    "task-queue.created",
    "task-queue.deleted",
    "task-queue.expression.updated",
    "task-queue.timeout",
    "task-channel.created",
    "task-channel.updated",
    "task-channel.deleted",
    "worker.created",
    "worker.deleted",
    "worker.attributes.update",
    "worker.capacity.update",
    "worker.channel.availability.update",
    "workflow.created",
    "workflow.updated",
    "workflow.deleted",
    "workflow.entered",
    "workflow.target-matched",
    "workflow.skipped",
    "workspace.created",
    "workspace.updated",
    "workspace.deleted",
];

/// Which field names a queue when `queues` does not map it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueIdSource {
    /// `TaskQueueName` (the queue's friendly name, as Vigie's configuration often names it).
    #[default]
    Name,
    /// `TaskQueueSid` (`WQ…`).
    Sid,
}

/// How TaskRouter callbacks are read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskRouterConfig {
    /// Queue id by `TaskQueueSid` or `TaskQueueName`; other queues are named as `queue_id`
    /// says.
    #[serde(default)]
    pub queues: BTreeMap<String, String>,
    /// What names a queue not listed in `queues`.
    #[serde(default)]
    pub queue_id: QueueIdSource,
    /// Advisor id by `WorkerSid`; other workers are named by their `WorkerSid` (`WorkerName`
    /// is often an e-mail address).
    #[serde(default)]
    pub advisors: BTreeMap<String, String>,
    /// Activities in which a worker takes tasks (compared without regard to case).
    #[serde(default = "default_available")]
    pub available_activities: Vec<String>,
    /// Activities in which a worker is logged out.
    #[serde(default = "default_offline")]
    pub offline_activities: Vec<String>,
    /// Channel by `TaskChannelUniqueName`, over the built-in mapping (`voice`, `chat`, `sms`
    /// and `whatsapp` as `chat`, `email`, `default` as `task`).
    #[serde(default)]
    pub channels: BTreeMap<String, String>,
    /// Dequeue reason by `TaskCanceledReason` (compared without regard to case); a canceled
    /// task whose reason is not listed is an abandon.
    #[serde(default = "default_dequeue_reasons")]
    pub dequeue_reasons: BTreeMap<String, String>,
    /// Task attribute holding the contact id (a transferred task's first task sid); without
    /// it, or when a task does not carry it, the contact is the `TaskSid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_attribute: Option<String>,
    /// File holding the Twilio account's auth token (its first line): when set, a callback
    /// must carry Twilio's valid `X-Twilio-Signature`, else it is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_token_file: Option<PathBuf>,
    /// The workspace's Event Callback URL as set in TaskRouter, without its query string
    /// (`https://proxy.example.com/ingest/v1/twilio/taskrouter`): the URL Twilio signs, which a
    /// proxy in front of Vigie may have changed. Required with `auth_token_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
}

fn default_available() -> Vec<String> {
    vec!["Available".to_owned()]
}

fn default_offline() -> Vec<String> {
    vec!["Offline".to_owned()]
}

fn default_dequeue_reasons() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("Task TTL Exceeded".to_owned(), "timeout".to_owned()),
        ("Workflow Timeout".to_owned(), "timeout".to_owned()),
    ])
}

impl Default for TaskRouterConfig {
    fn default() -> Self {
        TaskRouterConfig {
            queues: BTreeMap::new(),
            queue_id: QueueIdSource::default(),
            advisors: BTreeMap::new(),
            available_activities: default_available(),
            offline_activities: default_offline(),
            channels: BTreeMap::new(),
            dequeue_reasons: default_dequeue_reasons(),
            contact_attribute: None,
            auth_token_file: None,
            public_url: None,
        }
    }
}

/// Every problem of a TaskRouter configuration, reported at once.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid twilio_taskrouter configuration: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct TaskRouterConfigErrors(pub Vec<ConfigProblem>);

impl TaskRouterConfig {
    /// Checks the configuration and builds the translator.
    pub fn build(&self) -> Result<TaskRouterTranslator, TaskRouterConfigErrors> {
        let mut checks = ConfigChecks::default();
        for (key, queue) in &self.queues {
            checks.identifier(format!("queues.{key:?}"), queue);
        }
        for (key, advisor) in &self.advisors {
            checks.identifier(format!("advisors.{key:?}"), advisor);
        }
        let mut channels = BTreeMap::new();
        for (name, channel) in &self.channels {
            match Channel::parse(channel) {
                Some(channel) => {
                    channels.insert(name.to_lowercase(), channel);
                }
                None => checks.push(
                    format!("channels.{name:?}"),
                    format!("{channel:?} is not one of {}", Channel::expected()),
                ),
            }
        }
        let mut dequeue = BTreeMap::new();
        for (text, reason) in &self.dequeue_reasons {
            match DequeueReason::parse(reason) {
                Some(reason) => {
                    dequeue.insert(text.trim().to_lowercase(), reason);
                }
                None => checks.push(
                    format!("dequeue_reasons.{text:?}"),
                    format!("{reason:?} is not one of {}", DequeueReason::expected()),
                ),
            }
        }
        let available: BTreeSet<String> = self
            .available_activities
            .iter()
            .map(|name| name.trim().to_lowercase())
            .collect();
        let offline: BTreeSet<String> = self
            .offline_activities
            .iter()
            .map(|name| name.trim().to_lowercase())
            .collect();
        if offline.is_empty() {
            checks.push(
                "offline_activities",
                "must name at least one activity (TaskRouter's own is \"Offline\")",
            );
        }
        for both in available.intersection(&offline) {
            checks.push(
                "available_activities",
                format!("{both:?} is also an offline activity"),
            );
        }
        if self
            .contact_attribute
            .as_ref()
            .is_some_and(|name| name.trim().is_empty())
        {
            checks.push("contact_attribute", "must name a task attribute");
        }
        match (&self.auth_token_file, &self.public_url) {
            (Some(_), None) => checks.push(
                "public_url",
                "required with auth_token_file: the Event Callback URL as set in TaskRouter, without its query string (https://proxy.example.com/ingest/v1/twilio/taskrouter), which Twilio signs",
            ),
            (None, Some(_)) => checks.push(
                "auth_token_file",
                "required with public_url: without the account's auth token, signatures cannot be checked",
            ),
            _ => {}
        }
        if let Some(url) = &self.public_url
            && let Err(why) = public_url_problem(url)
        {
            checks.push("public_url", format!("{url:?} {why}"));
        }
        checks.finish(TaskRouterConfigErrors)?;
        Ok(TaskRouterTranslator {
            queues: self.queues.clone(),
            queue_id: self.queue_id,
            advisors: self.advisors.clone(),
            available,
            offline,
            channels,
            dequeue,
            contact_attribute: self.contact_attribute.clone(),
            stats: TaskRouterStats::default(),
        })
    }
}

/// Why `url` cannot be the Event Callback URL Twilio signs.
fn public_url_problem(url: &str) -> Result<(), &'static str> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err("must start with https:// (or http://)");
    };
    if !matches!(scheme, "https" | "http") {
        return Err("must start with https:// (or http://)");
    }
    if rest.is_empty() || rest.starts_with('/') {
        return Err("must name a host");
    }
    if rest.contains(['?', '#']) {
        return Err(
            "must not hold a query string: the callback's own (site, token) is added to it",
        );
    }
    Ok(())
}

/// Checks Twilio's request signatures (`X-Twilio-Signature`).
///
/// Twilio signs each request with HMAC-SHA1 keyed by the account's auth token, over the URL it
/// called (query string included) followed by every field of the form body, sorted by name
/// then value, each name followed by its value with no separator; the header holds the MAC in
/// base64 (Twilio, "Webhooks security",
/// <https://www.twilio.com/docs/usage/webhooks/webhooks-security>). Whether the URL names
/// the scheme's default port depends on how it was typed in Twilio's console, so, as Twilio's
/// own libraries do, a signature over the URL with its port (the default one when it names
/// none) or without any port is accepted.
pub struct SignatureChecker {
    key: ring::hmac::Key,
}

impl std::fmt::Debug for SignatureChecker {
    /// Never shows the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SignatureChecker(..)")
    }
}

impl SignatureChecker {
    /// A checker for the account whose auth token is `auth_token`.
    pub fn new(auth_token: &str) -> SignatureChecker {
        SignatureChecker {
            key: ring::hmac::Key::new(
                ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
                auth_token.as_bytes(),
            ),
        }
    }

    /// The signature Twilio gives a form `body` posted to `url` (exactly as written).
    pub fn sign(&self, url: &str, body: &[u8]) -> Result<String, CallbackProblem> {
        use base64::Engine as _;
        let signed = format!("{url}{}", signed_fields(body)?);
        let tag = ring::hmac::sign(&self.key, signed.as_bytes());
        Ok(base64::engine::general_purpose::STANDARD.encode(tag.as_ref()))
    }

    /// Whether `signature` is Twilio's for a form `body` posted to `url`, with or without
    /// its port (see the type's comment). A body that is not a form is a problem, not a
    /// mismatch.
    pub fn verify(&self, url: &str, body: &[u8], signature: &str) -> Result<bool, CallbackProblem> {
        use base64::Engine as _;
        let fields = signed_fields(body)?;
        let Ok(tag) = base64::engine::general_purpose::STANDARD.decode(signature.trim()) else {
            return Ok(false);
        };
        let (with_port, without_port) = url_port_forms(url);
        Ok([with_port, without_port].iter().any(|url| {
            // Constant time: the comparison tells nothing of how much of a forgery matched.
            ring::hmac::verify(&self.key, format!("{url}{fields}").as_bytes(), &tag).is_ok()
        }))
    }
}

/// The form's fields as Twilio signs them: decoded, sorted by name then value, each name
/// followed by its value. Every field counts, repeated ones included.
fn signed_fields(body: &[u8]) -> Result<String, CallbackProblem> {
    let mut fields = form_pairs(body)?;
    fields.sort_unstable();
    Ok(fields
        .into_iter()
        .map(|(key, value)| key + &value)
        .collect())
}

/// `url` with its port (the scheme's default one when it names none) and without any port.
/// Edited as text, not parsed and written again, so that every other byte stays as Twilio
/// signed it. A URL of another scheme, or without an authority, is returned twice as is.
fn url_port_forms(url: &str) -> (String, String) {
    let same = || (url.to_owned(), url.to_owned());
    let Some((scheme, rest)) = url.split_once("://") else {
        return same();
    };
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "https" => "443",
        "http" => "80",
        _ => return same(),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    // The host follows any user information; an IPv6 host is bracketed and holds colons.
    let host_start = authority.rfind('@').map_or(0, |at| at + 1);
    let (user, host_port) = authority.split_at(host_start);
    let host_end = match host_port.rfind(':') {
        Some(colon) if !host_port[colon..].contains(']') => colon,
        _ => host_port.len(),
    };
    let host = &host_port[..host_end];
    let port = host_port[host_end..]
        .strip_prefix(':')
        .unwrap_or(default_port);
    (
        format!("{scheme}://{user}{host}:{port}{tail}"),
        format!("{scheme}://{user}{host}{tail}"),
    )
}

/// Why a callback cannot be translated.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CallbackProblem {
    /// The body is not `application/x-www-form-urlencoded` text.
    #[error("not a form-encoded body: {0}")]
    NotAForm(String),
    /// A field the event needs is absent or empty.
    #[error("field {field} is required for {event_type}")]
    MissingField {
        /// The TaskRouter field (`TaskSid`).
        field: &'static str,
        /// The `EventType`.
        event_type: String,
    },
    /// A field is present but of the wrong form.
    #[error("field {field} is {found:?}, expected {expected}")]
    InvalidField {
        /// The TaskRouter field.
        field: &'static str,
        /// What was found (cut at 64 bytes).
        found: String,
        /// What is expected.
        expected: String,
    },
}

/// What one callback gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallbackOutcome {
    /// The events to publish, in the order to apply them.
    Events(Vec<Event>),
    /// A known event type with nothing to say to Vigie (or a `task.created` that names no
    /// queue yet); counted in [`TaskRouterStats::ignored`].
    Ignored {
        /// The `EventType`.
        event_type: String,
    },
    /// An event type this version does not know; counted in [`TaskRouterStats::skipped`].
    Skipped {
        /// The `EventType`.
        event_type: String,
    },
}

/// Running counts of what the translator did, for metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TaskRouterStats {
    /// Callbacks read, malformed ones included.
    pub callbacks: u64,
    /// Malformed callbacks.
    pub malformed: u64,
    /// Events produced.
    pub events: u64,
    /// Known types ignored, by `EventType`.
    pub ignored: BTreeMap<String, u64>,
    /// Unknown types skipped, by `EventType` (beyond 64 types, `other`).
    pub skipped: BTreeMap<String, u64>,
}

/// Translates TaskRouter callbacks, one at a time, in any order. Built by
/// [`TaskRouterConfig::build`]. It keeps no memory of earlier callbacks (only counts): each
/// callback says enough by itself, and a redelivered one gives the same ids.
#[derive(Debug)]
pub struct TaskRouterTranslator {
    queues: BTreeMap<String, String>,
    queue_id: QueueIdSource,
    advisors: BTreeMap<String, String>,
    available: BTreeSet<String>,
    offline: BTreeSet<String>,
    channels: BTreeMap<String, Channel>,
    dequeue: BTreeMap<String, DequeueReason>,
    contact_attribute: Option<String>,
    stats: TaskRouterStats,
}

/// The fields of one callback, by name (the last value wins when a field repeats).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Callback {
    fields: BTreeMap<String, String>,
}

impl Callback {
    /// A callback from its decoded fields.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Callback {
        Callback {
            fields: pairs
                .into_iter()
                .map(|(key, value)| (key.into(), value.into()))
                .collect(),
        }
    }

    /// A callback from an `application/x-www-form-urlencoded` body.
    pub fn parse_form(body: &[u8]) -> Result<Callback, CallbackProblem> {
        Ok(Callback {
            fields: form_pairs(body)?.into_iter().collect(),
        })
    }

    /// A field's value, absent when missing or empty.
    pub fn get(&self, field: &str) -> Option<&str> {
        self.fields
            .get(field)
            .map(String::as_str)
            .filter(|value| !value.is_empty())
    }
}

/// The decoded (name, value) pairs of an `application/x-www-form-urlencoded` body, in order,
/// repeated names included.
fn form_pairs(body: &[u8]) -> Result<Vec<(String, String)>, CallbackProblem> {
    let text = std::str::from_utf8(body)
        .map_err(|error| CallbackProblem::NotAForm(format!("not UTF-8 text: {error}")))?;
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((percent_decode(key)?, percent_decode(value)?))
        })
        .collect()
}

/// Decodes one form component: `+` is a space, `%XX` a byte; the result must be UTF-8.
fn percent_decode(text: &str) -> Result<String, CallbackProblem> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(index + 1..index + 3)
                    .and_then(|hex| std::str::from_utf8(hex).ok())
                    .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                    .ok_or_else(|| {
                        CallbackProblem::NotAForm(format!(
                            "bad percent escape in {:?}",
                            excerpt(text)
                        ))
                    })?;
                out.push(hex);
                index += 2;
            }
            byte => out.push(byte),
        }
        index += 1;
    }
    String::from_utf8(out)
        .map_err(|_| CallbackProblem::NotAForm(format!("{:?} is not UTF-8", excerpt(text))))
}

/// The callback being translated.
struct Read<'a> {
    callback: &'a Callback,
    site: &'a str,
    event_type: &'a str,
    sid: &'a str,
    time: Timestamp,
}

impl Read<'_> {
    fn required(&self, field: &'static str) -> Result<&str, CallbackProblem> {
        self.callback
            .get(field)
            .ok_or_else(|| CallbackProblem::MissingField {
                field,
                event_type: self.event_type.to_owned(),
            })
    }
}

impl TaskRouterTranslator {
    /// Counts so far.
    pub fn stats(&self) -> &TaskRouterStats {
        &self.stats
    }

    /// Translates a form-encoded callback body for `site`.
    pub fn translate_form(
        &mut self,
        site: &str,
        body: &[u8],
    ) -> Result<CallbackOutcome, CallbackProblem> {
        match Callback::parse_form(body) {
            Ok(callback) => self.translate(site, &callback),
            Err(problem) => {
                self.stats.callbacks += 1;
                self.stats.malformed += 1;
                Err(problem)
            }
        }
    }

    /// Translates one callback for `site` (a valid identifier, checked by the caller).
    pub fn translate(
        &mut self,
        site: &str,
        callback: &Callback,
    ) -> Result<CallbackOutcome, CallbackProblem> {
        self.stats.callbacks += 1;
        match self.events(site, callback) {
            Ok(outcome) => {
                match &outcome {
                    CallbackOutcome::Events(events) => self.stats.events += events.len() as u64,
                    CallbackOutcome::Ignored { event_type } => {
                        count_name(&mut self.stats.ignored, event_type)
                    }
                    CallbackOutcome::Skipped { event_type } => {
                        count_name(&mut self.stats.skipped, event_type)
                    }
                }
                Ok(outcome)
            }
            Err(problem) => {
                self.stats.malformed += 1;
                Err(problem)
            }
        }
    }

    fn events(&self, site: &str, callback: &Callback) -> Result<CallbackOutcome, CallbackProblem> {
        let event_type =
            callback
                .get("EventType")
                .ok_or_else(|| CallbackProblem::MissingField {
                    field: "EventType",
                    event_type: "a callback".to_owned(),
                })?;
        let known = matches!(
            event_type,
            "task.created"
                | "task-queue.entered"
                | "reservation.created"
                | "reservation.accepted"
                | "reservation.rejected"
                | "reservation.timeout"
                | "task.canceled"
                | "workflow.timeout"
                | "task-queue.moved"
                | "task.transfer-initiated"
                | "task.wrapup"
                | "task.completed"
                | "worker.activity.update"
        );
        if !known {
            let owned = event_type.to_owned();
            return Ok(if IGNORED_TYPES.contains(&event_type) {
                CallbackOutcome::Ignored { event_type: owned }
            } else {
                CallbackOutcome::Skipped { event_type: owned }
            });
        }
        let sid = callback
            .get("Sid")
            .or_else(|| callback.get("EventSid"))
            .ok_or_else(|| CallbackProblem::MissingField {
                field: "Sid",
                event_type: event_type.to_owned(),
            })?;
        let read = Read {
            callback,
            site,
            event_type,
            sid,
            time: time_of(callback, event_type)?,
        };
        let events = match event_type {
            "task.created" | "task-queue.entered" => {
                if event_type == "task.created" && self.queue_field(callback).is_none() {
                    return Ok(CallbackOutcome::Ignored {
                        event_type: event_type.to_owned(),
                    });
                }
                let contact = self.contact(&read)?;
                let queue = self.queue(&read)?;
                let channel = self.channel(&read)?;
                let id = self.id(site, &["queued", &contact, &queue], "queued");
                vec![contact_event(
                    &read,
                    id,
                    contact,
                    ContactEventKind::Queued,
                    Some(queue),
                    Some(channel),
                    None,
                )]
            }
            "reservation.created"
            | "reservation.accepted"
            | "reservation.rejected"
            | "reservation.timeout" => {
                let contact = self.contact(&read)?;
                let advisor = self.advisor(&read)?;
                let (kind, suffix) = match event_type {
                    "reservation.created" => (ContactEventKind::Offered, "offered"),
                    "reservation.accepted" => (ContactEventKind::Answered, "answered"),
                    _ => (ContactEventKind::Missed, "missed"),
                };
                let (queue, channel) = if suffix == "answered" {
                    (self.optional_queue(&read)?, self.optional_channel(&read)?)
                } else {
                    (None, None)
                };
                let id = self.id(site, &[sid], suffix);
                vec![contact_event(
                    &read,
                    id,
                    contact,
                    kind,
                    queue,
                    channel,
                    Some(advisor),
                )]
            }
            "task.canceled" | "workflow.timeout" => {
                let contact = self.contact(&read)?;
                let reason = if event_type == "workflow.timeout" {
                    Some(DequeueReason::Timeout)
                } else {
                    callback
                        .get("TaskCanceledReason")
                        .and_then(|text| self.dequeue.get(&text.trim().to_lowercase()))
                        .copied()
                };
                let (kind, suffix) = match reason {
                    Some(reason) => (ContactEventKind::Dequeued { reason }, "dequeued"),
                    None => (ContactEventKind::Abandoned, "abandoned"),
                };
                // One id for the task's leaving, whichever callback reports it first.
                let id = self.id(site, &["left", &contact], suffix);
                let queue = self.optional_queue(&read)?;
                vec![contact_event(&read, id, contact, kind, queue, None, None)]
            }
            "task-queue.moved" => {
                let contact = self.contact(&read)?;
                let to_queue = self.queue(&read)?;
                let id = self.id(site, &[sid], "transferred");
                vec![contact_event(
                    &read,
                    id,
                    contact,
                    ContactEventKind::Transferred {
                        to_queue: Some(to_queue),
                    },
                    None,
                    None,
                    None,
                )]
            }
            "task.transfer-initiated" => {
                if !callback
                    .get("TransferType")
                    .is_some_and(|kind| kind.eq_ignore_ascii_case("queue"))
                {
                    // A transfer to a worker: the target's reservation tells the rest.
                    return Ok(CallbackOutcome::Ignored {
                        event_type: event_type.to_owned(),
                    });
                }
                let contact = self.contact(&read)?;
                let target = read.required("TransferTo")?;
                let to_queue = self
                    .queues
                    .get(target)
                    .cloned()
                    .unwrap_or(target.to_owned());
                check_identifier("TransferTo", &to_queue)?;
                let advisor = match callback.get("WorkerSid") {
                    Some(_) => Some(self.advisor(&read)?),
                    None => None,
                };
                let id = self.id(site, &[sid], "transferred");
                let queue = self.optional_queue(&read)?;
                vec![contact_event(
                    &read,
                    id,
                    contact,
                    ContactEventKind::Transferred {
                        to_queue: Some(to_queue),
                    },
                    queue,
                    None,
                    advisor,
                )]
            }
            "task.wrapup" | "task.completed" => {
                let contact = self.contact(&read)?;
                let advisor = match callback.get("WorkerSid") {
                    Some(_) => Some(self.advisor(&read)?),
                    None => None,
                };
                let (kind, suffix) = if event_type == "task.wrapup" {
                    (ContactEventKind::Ended, "ended")
                } else {
                    (
                        ContactEventKind::Completed {
                            disposition: None,
                            resolved: None,
                        },
                        "completed",
                    )
                };
                let id = self.id(site, &[sid], suffix);
                vec![contact_event(&read, id, contact, kind, None, None, advisor)]
            }
            _ => self.activity(&read)?,
        };
        Ok(CallbackOutcome::Events(events))
    }

    /// `worker.activity.update`.
    fn activity(&self, read: &Read<'_>) -> Result<Vec<Event>, CallbackProblem> {
        let advisor = self.advisor(read)?;
        let activity = read.required("WorkerActivityName")?;
        let now = activity.trim().to_lowercase();
        let before = read
            .callback
            .get("WorkerPreviousActivityName")
            .map(|name| name.trim().to_lowercase());
        let was_offline = before.as_ref().is_some_and(|b| self.offline.contains(b));
        let event = |suffix: &str, kind: AdvisorEventKind| Event {
            id: self.id(read.site, &[read.sid, suffix], suffix),
            time: read.time,
            site: read.site.to_owned(),
            body: EventBody::Advisor(AdvisorEvent {
                advisor: advisor.clone(),
                kind,
            }),
        };
        let state = if self.available.contains(&now) {
            AdvisorStatus::Available
        } else {
            pause(&now)
        };
        let mut events = Vec::new();
        if self.offline.contains(&now) {
            if !was_offline {
                events.push(event("logout", AdvisorEventKind::Logout));
            }
        } else if was_offline {
            events.push(event(
                "login",
                AdvisorEventKind::Login {
                    team: None,
                    name: None,
                },
            ));
            if state != AdvisorStatus::Available {
                events.push(event("pause", AdvisorEventKind::State(state)));
            }
        } else {
            let suffix = if state == AdvisorStatus::Available {
                "available"
            } else {
                "pause"
            };
            events.push(event(suffix, AdvisorEventKind::State(state)));
        }
        Ok(events)
    }

    /// The contact: the configured task attribute when the task carries it, else `TaskSid`.
    fn contact(&self, read: &Read<'_>) -> Result<String, CallbackProblem> {
        if let (Some(name), Some(attributes)) =
            (&self.contact_attribute, read.callback.get("TaskAttributes"))
        {
            let value: serde_json::Value = serde_json::from_str(attributes).map_err(|error| {
                CallbackProblem::InvalidField {
                    field: "TaskAttributes",
                    found: format!("{error}"),
                    expected: "a JSON object".to_owned(),
                }
            })?;
            if let Some(contact) = value.get(name).and_then(serde_json::Value::as_str) {
                check_identifier("TaskAttributes", contact)?;
                return Ok(contact.to_owned());
            }
        }
        let task = read.required("TaskSid")?;
        check_identifier("TaskSid", task)?;
        Ok(task.to_owned())
    }

    fn queue_field<'a>(&self, callback: &'a Callback) -> Option<(&'static str, &'a str)> {
        let sid = callback.get("TaskQueueSid");
        let name = callback.get("TaskQueueName");
        let mapped = [("TaskQueueSid", sid), ("TaskQueueName", name)]
            .into_iter()
            .find_map(|(field, value)| {
                value
                    .filter(|v| self.queues.contains_key(*v))
                    .map(|v| (field, v))
            });
        mapped.or(match self.queue_id {
            QueueIdSource::Name => name.map(|value| ("TaskQueueName", value)),
            QueueIdSource::Sid => sid.map(|value| ("TaskQueueSid", value)),
        })
    }

    fn optional_queue(&self, read: &Read<'_>) -> Result<Option<String>, CallbackProblem> {
        let Some((field, value)) = self.queue_field(read.callback) else {
            return Ok(None);
        };
        let queue = self.queues.get(value).cloned().unwrap_or(value.to_owned());
        check_identifier(field, &queue)?;
        Ok(Some(queue))
    }

    fn queue(&self, read: &Read<'_>) -> Result<String, CallbackProblem> {
        self.optional_queue(read)?
            .ok_or_else(|| CallbackProblem::MissingField {
                field: match self.queue_id {
                    QueueIdSource::Name => "TaskQueueName",
                    QueueIdSource::Sid => "TaskQueueSid",
                },
                event_type: read.event_type.to_owned(),
            })
    }

    fn optional_channel(&self, read: &Read<'_>) -> Result<Option<Channel>, CallbackProblem> {
        let Some(name) = read.callback.get("TaskChannelUniqueName") else {
            return Ok(None);
        };
        let lower = name.trim().to_lowercase();
        if let Some(channel) = self.channels.get(&lower) {
            return Ok(Some(*channel));
        }
        let channel = match lower.as_str() {
            "voice" => Channel::Voice,
            "chat" | "sms" | "whatsapp" | "messenger" => Channel::Chat,
            "email" => Channel::Email,
            "callback" => Channel::Callback,
            "default" | "task" => Channel::Task,
            _ => {
                return Err(CallbackProblem::InvalidField {
                    field: "TaskChannelUniqueName",
                    found: excerpt(name),
                    expected: "voice, chat, sms, whatsapp, email or default, or a channel \
                               mapped in `channels`"
                        .to_owned(),
                });
            }
        };
        Ok(Some(channel))
    }

    fn channel(&self, read: &Read<'_>) -> Result<Channel, CallbackProblem> {
        self.optional_channel(read)?
            .ok_or_else(|| CallbackProblem::MissingField {
                field: "TaskChannelUniqueName",
                event_type: read.event_type.to_owned(),
            })
    }

    fn advisor(&self, read: &Read<'_>) -> Result<String, CallbackProblem> {
        let worker = read.required("WorkerSid")?;
        let advisor = self
            .advisors
            .get(worker)
            .cloned()
            .unwrap_or(worker.to_owned());
        check_identifier("WorkerSid", &advisor)?;
        Ok(advisor)
    }

    /// `twr-` and the XXH3-128 of the site and the parts, then the suffix.
    fn id(&self, site: &str, parts: &[&str], suffix: &str) -> String {
        let mut hasher = Xxh3::new();
        hasher.update(site.as_bytes());
        for part in parts {
            hasher.update(b"\n");
            hasher.update(part.as_bytes());
        }
        format!("twr-{:032x}-{suffix}", hasher.digest128())
    }
}

fn contact_event(
    read: &Read<'_>,
    id: String,
    contact: String,
    kind: ContactEventKind,
    queue: Option<String>,
    channel: Option<Channel>,
    advisor: Option<String>,
) -> Event {
    Event {
        id,
        time: read.time,
        site: read.site.to_owned(),
        body: EventBody::Contact(ContactEvent {
            contact,
            kind,
            queue,
            channel,
            advisor,
        }),
    }
}

/// `TimestampMs` (Unix milliseconds), else `Timestamp` (Unix seconds or RFC 3339).
fn time_of(callback: &Callback, event_type: &str) -> Result<Timestamp, CallbackProblem> {
    let in_range = |millis: i64| (0..=LAST_EPOCH_MILLI).contains(&millis);
    if let Some(text) = callback.get("TimestampMs") {
        return match text.trim().parse::<i64>() {
            Ok(millis) if in_range(millis) => Ok(Timestamp(millis)),
            _ => Err(CallbackProblem::InvalidField {
                field: "TimestampMs",
                found: excerpt(text),
                expected: "Unix milliseconds".to_owned(),
            }),
        };
    }
    let text = callback
        .get("Timestamp")
        .ok_or_else(|| CallbackProblem::MissingField {
            field: "Timestamp",
            event_type: event_type.to_owned(),
        })?;
    let parsed = match text.trim().parse::<i64>() {
        Ok(secs) => secs.checked_mul(1000).map(Timestamp),
        Err(_) => Timestamp::parse_rfc3339(text.trim()),
    };
    match parsed {
        Some(time) if in_range(time.0) => Ok(time),
        _ => Err(CallbackProblem::InvalidField {
            field: "Timestamp",
            found: excerpt(text),
            expected: "Unix seconds, or an RFC 3339 time with offset".to_owned(),
        }),
    }
}

/// A pause with the activity name as reason, already lower-cased.
fn pause(reason: &str) -> AdvisorStatus {
    if identifier_problem(reason).is_err() {
        return AdvisorStatus::Pause {
            reason: vigie_core::event::UNSPECIFIED_PAUSE_REASON.to_owned(),
        };
    }
    AdvisorStatus::Pause {
        reason: reason.to_owned(),
    }
}

fn check_identifier(field: &'static str, value: &str) -> Result<(), CallbackProblem> {
    identifier_problem(value).map_err(|why| CallbackProblem::InvalidField {
        field,
        found: excerpt(value),
        expected: format!("an identifier ({why})"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_bodies_decode_plus_and_percent_escapes() {
        let callback = Callback::parse_form(
            b"EventType=task.created&TaskAttributes=%7B%22a%22%3A1%7D&Name=a+b&Empty=",
        )
        .unwrap();
        assert_eq!(callback.get("EventType"), Some("task.created"));
        assert_eq!(callback.get("TaskAttributes"), Some("{\"a\":1}"));
        assert_eq!(callback.get("Name"), Some("a b"));
        assert_eq!(callback.get("Empty"), None);
        assert!(matches!(
            Callback::parse_form(b"A=%zz"),
            Err(CallbackProblem::NotAForm(_))
        ));
        assert!(matches!(
            Callback::parse_form(b"A=%ff"),
            Err(CallbackProblem::NotAForm(_))
        ));
    }

    #[test]
    fn configuration_problems_are_reported_together() {
        let config = TaskRouterConfig {
            channels: BTreeMap::from([("fax".to_owned(), "paper".to_owned())]),
            dequeue_reasons: BTreeMap::from([("x".to_owned(), "lost".to_owned())]),
            available_activities: vec!["Offline".to_owned()],
            queues: BTreeMap::from([("WQ1".to_owned(), " ".to_owned())]),
            ..TaskRouterConfig::default()
        };
        let errors = config.build().unwrap_err();
        let fields: Vec<&str> = errors.0.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "queues.\"WQ1\"",
                "channels.\"fax\"",
                "dequeue_reasons.\"x\"",
                "available_activities"
            ]
        );
    }

    // Twilio's published example (its helper libraries' tests): auth token "12345", this URL
    // and these fields sign as "RSOYDt4T1cUTdK1PDd93/VVr8B8=".
    const TWILIO_URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";
    const TWILIO_FORM: &[u8] = b"CallSid=CA1234567890ABCDE&Digits=1234&From=%2B14158675309&To=%2B18005551212&Caller=%2B14158675309";

    #[test]
    fn signatures_are_twilios_for_its_published_examples() {
        let checker = SignatureChecker::new("12345");
        assert_eq!(
            checker.sign(TWILIO_URL, TWILIO_FORM).unwrap(),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        );
        assert!(
            checker
                .verify(TWILIO_URL, TWILIO_FORM, "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
                .unwrap()
        );
        // A repeated field signs every value, sorted ("Digits" 1234 before 5678).
        assert_eq!(
            checker
                .sign(
                    TWILIO_URL,
                    b"Sid=CA123&SidAccount=AC123&Digits=5678&Digits=1234"
                )
                .unwrap(),
            "IK+Dwps556ElfBT0I3Rgjkr1wJU="
        );
        // The fields' order in the body does not matter.
        assert_eq!(
            checker
                .sign(
                    TWILIO_URL,
                    b"Digits=1234&Digits=5678&SidAccount=AC123&Sid=CA123"
                )
                .unwrap(),
            "IK+Dwps556ElfBT0I3Rgjkr1wJU="
        );
    }

    #[test]
    fn a_signature_holds_with_or_without_the_port() {
        let checker = SignatureChecker::new("12345");
        let expected = "RSOYDt4T1cUTdK1PDd93/VVr8B8=";
        // Twilio's examples: signed without the port, called on another one (https)...
        let with_port = TWILIO_URL.replace(".com", ".com:1234");
        assert!(checker.verify(&with_port, TWILIO_FORM, expected).unwrap());
        // ...signed with the default port, configured without it...
        assert!(
            checker
                .verify(TWILIO_URL, TWILIO_FORM, "kvajT1Ptam85bY51eRf/AJRuM3w=")
                .unwrap()
        );
        let http = TWILIO_URL.replace("https", "http");
        assert!(
            checker
                .verify(&http, TWILIO_FORM, "0ZXoZLH/DfblKGATFgpif+LLRf4=")
                .unwrap()
        );
        // ...and signed with its own port on http.
        let http_port = with_port.replace("https", "http");
        assert!(
            checker
                .verify(&http_port, TWILIO_FORM, "Zmvh+3yNM1Phv2jhDCwEM3q5ebU=")
                .unwrap()
        );
        assert_eq!(
            url_port_forms("https://user:pw@[::1]:8443/a?b=c:d"),
            (
                "https://user:pw@[::1]:8443/a?b=c:d".to_owned(),
                "https://user:pw@[::1]/a?b=c:d".to_owned()
            )
        );
        assert_eq!(
            url_port_forms("http://[::1]/x"),
            ("http://[::1]:80/x".to_owned(), "http://[::1]/x".to_owned())
        );
    }

    #[test]
    fn a_signature_fails_for_another_body_url_token_or_a_garbled_header() {
        let checker = SignatureChecker::new("12345");
        let expected = "RSOYDt4T1cUTdK1PDd93/VVr8B8=";
        let changed_field = b"CallSid=CA1234567890ABCDE&Digits=1235&From=%2B14158675309&To=%2B18005551212&Caller=%2B14158675309";
        assert!(!checker.verify(TWILIO_URL, changed_field, expected).unwrap());
        let extra_field = [TWILIO_FORM, b"&Extra=1"].concat();
        assert!(!checker.verify(TWILIO_URL, &extra_field, expected).unwrap());
        let other_query = TWILIO_URL.replace("foo=1", "foo=2");
        assert!(!checker.verify(&other_query, TWILIO_FORM, expected).unwrap());
        let other_path = TWILIO_URL.replace("myapp", "other");
        assert!(!checker.verify(&other_path, TWILIO_FORM, expected).unwrap());
        assert!(
            !SignatureChecker::new("12346")
                .verify(TWILIO_URL, TWILIO_FORM, expected)
                .unwrap()
        );
        for garbled in ["", "not base64!", "RSOYDt4T1cUTdK1PDd93/VVr8B8", "AAAA"] {
            assert!(!checker.verify(TWILIO_URL, TWILIO_FORM, garbled).unwrap());
        }
        assert!(matches!(
            checker.verify(TWILIO_URL, b"a=%ZZ", expected),
            Err(CallbackProblem::NotAForm(_))
        ));
    }

    #[test]
    fn the_signature_settings_go_together_and_the_url_is_checked() {
        let config = |file: Option<&str>, url: Option<&str>| TaskRouterConfig {
            auth_token_file: file.map(PathBuf::from),
            public_url: url.map(str::to_owned),
            ..TaskRouterConfig::default()
        };
        let fields = |config: TaskRouterConfig| -> Vec<String> {
            match config.build() {
                Ok(_) => Vec::new(),
                Err(errors) => errors.0.into_iter().map(|p| p.to_string()).collect(),
            }
        };
        assert!(fields(config(None, None)).is_empty());
        let good = "https://proxy.example.com/ingest/v1/twilio/taskrouter";
        assert!(fields(config(Some("twilio-token"), Some(good))).is_empty());
        let missing_url = fields(config(Some("twilio-token"), None));
        assert!(
            missing_url[0].starts_with("public_url: required"),
            "{missing_url:?}"
        );
        let missing_file = fields(config(None, Some(good)));
        assert!(
            missing_file[0].starts_with("auth_token_file: required"),
            "{missing_file:?}"
        );
        for (bad, why) in [
            ("proxy.example.com/x", "must start with https://"),
            ("ftp://proxy.example.com/x", "must start with https://"),
            ("https:///x", "must name a host"),
            (
                "https://proxy.example.com/x?site=paris",
                "must not hold a query string",
            ),
        ] {
            let found = fields(config(Some("twilio-token"), Some(bad)));
            assert!(
                found.len() == 1 && found[0].starts_with("public_url: ") && found[0].contains(why),
                "{bad}: {found:?}"
            );
        }
    }
}
