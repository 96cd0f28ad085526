//! Where interval history is kept with NATS: two JetStream streams, one for the site's, queues'
//! and teams' records and one for advisors' records, kept apart so that per-advisor history
//! expires sooner (NATS 2.9 has no per-message time to live). The `[history]` settings
//! (documented in docs/history.md) and the [`HistoryStore`] over JetStream.
//!
//! Subjects: `vigie.intervals.<site>.<kind>.<id>` and `vigie.advisor_intervals.<site>.<id>`,
//! each site and id written as one subject token by [`encode_token`]. Each record is one JSON
//! message whose `Nats-Msg-Id` names its key and revision, so that the server drops a copy
//! published again within its duplicate window; reads keep the highest revision of each key.
//!
//! The alerts and notices of each site-local day are in a third stream, with the advisors'
//! retention (alerts name advisors): `vigie.alert_history.<site>.<date>.alert.<alert id>` and
//! `vigie.alert_history.<site>.<date>.notice.<notice id>`, one message per subject kept
//! (`max_msgs_per_subject: 1`), so that an alert's latest state replaces the earlier ones and a
//! day is read from its subjects alone.

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::header::NATS_MESSAGE_ID;
use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::consumer::pull::OrderedConfig;
use async_nats::jetstream::context::GetStreamErrorKind;
use async_nats::jetstream::{self, ErrorCode, stream};
use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};
use vigie_api::history_store::{
    AlertRecord, HistoryError, HistoryStore, Latest, MemoryHistory, MemoryRetention, NoticeRecord,
    Selection, describe_key, parse_date, sort_notices, validate_record,
};
use vigie_core::config::{ConfigErrors, HumanDuration};
use vigie_history::{IntervalRecord, RecordKey, ScopeKind};

/// Subjects of site, queue and team records: `vigie.intervals.<site>.<kind>.<id>`.
pub const INTERVALS_PREFIX: &str = "vigie.intervals";

/// Subjects of advisor records: `vigie.advisor_intervals.<site>.<id>`.
pub const ADVISOR_INTERVALS_PREFIX: &str = "vigie.advisor_intervals";

/// Subjects of the alerts and notices of a day:
/// `vigie.alert_history.<site>.<date>.alert.<id>` and `....notice.<id>`.
pub const ALERT_HISTORY_PREFIX: &str = "vigie.alert_history";

/// Window in which the server drops a message whose `Nats-Msg-Id` it already stored: long
/// enough for a publication retried after a lost acknowledgement. A copy published later is
/// stored, and reads return it once.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// Records awaiting their acknowledgement at once, at most, during a publication.
const PUBLISH_WINDOW: usize = 128;

/// `[history]` of `vigie.toml`: the streams of interval records and how long they keep them.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryConfig {
    /// Stream of the site's, queues' and teams' records, on `vigie.intervals.>` (created when
    /// missing).
    #[serde(default = "default_stream")]
    pub stream: String,
    /// Stream of the advisors' records, on `vigie.advisor_intervals.>` (created when missing):
    /// apart, for their shorter retention.
    #[serde(default = "default_advisor_stream")]
    pub advisor_stream: String,
    /// How long the site's, queues' and teams' records are kept (a year and a month by
    /// default, to compare a month with the same month last year).
    #[serde(default = "default_max_age")]
    pub max_age: HumanDuration,
    /// How long advisors' records are kept. Per-advisor history is employee monitoring: keep
    /// it short (31 days by default); at most `max_age`.
    #[serde(default = "default_advisor_max_age")]
    pub advisor_max_age: HumanDuration,
    /// Replicas of each stream in a cluster: 1, 3 or 5.
    #[serde(default = "default_replicas")]
    pub replicas: usize,
    /// Largest size of each stream, in bytes; beyond it the oldest records go first.
    /// Unlimited when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<u64>,
    /// Time allowed for setting the streams up, for each record's acknowledgement, and for a
    /// read as a whole; beyond it the store is reported unavailable.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// Stream of the alerts and notices of each day, on `vigie.alert_history.>` (created when
    /// missing), one message per site, day and alert or notice.
    #[serde(default = "default_alert_stream")]
    pub alert_stream: String,
    /// How long the alerts and notices of a day are kept. Alerts name advisors (a pause too
    /// long...): as long as advisors' records by default, 31 days.
    #[serde(default = "default_advisor_max_age")]
    pub alert_max_age: HumanDuration,
}

fn default_stream() -> String {
    "VIGIE_INTERVALS".to_owned()
}

fn default_advisor_stream() -> String {
    "VIGIE_ADVISOR_INTERVALS".to_owned()
}

fn default_alert_stream() -> String {
    "VIGIE_ALERT_HISTORY".to_owned()
}

fn default_max_age() -> HumanDuration {
    HumanDuration::secs(400 * 86_400)
}

fn default_advisor_max_age() -> HumanDuration {
    HumanDuration::secs(31 * 86_400)
}

fn default_replicas() -> usize {
    1
}

fn default_timeout() -> HumanDuration {
    HumanDuration::secs(30)
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            stream: default_stream(),
            advisor_stream: default_advisor_stream(),
            max_age: default_max_age(),
            advisor_max_age: default_advisor_max_age(),
            replicas: default_replicas(),
            max_bytes: None,
            timeout: default_timeout(),
            alert_stream: default_alert_stream(),
            alert_max_age: default_advisor_max_age(),
        }
    }
}

/// Whether a stream name is one JetStream takes (no subject separators or wildcards, no
/// whitespace, no path separators: the server names a directory after it).
fn valid_stream_name(name: &str) -> bool {
    !name.is_empty()
        && !name
            .chars()
            .any(|c| matches!(c, '.' | '*' | '>' | '/' | '\\') || c.is_whitespace())
}

impl HistoryConfig {
    /// Checks the settings, reporting every problem with its path (`path` is the section's,
    /// `history`).
    pub fn validate(&self, path: &str) -> Result<(), ConfigErrors> {
        let mut problems = Vec::new();
        for (field, name) in [
            ("stream", &self.stream),
            ("advisor_stream", &self.advisor_stream),
            ("alert_stream", &self.alert_stream),
        ] {
            if !valid_stream_name(name) {
                problems.push(format!(
                    "{path}.{field}: {name:?} is not a stream name (no dots, wildcards, spaces or slashes)"
                ));
            }
        }
        if self.stream == self.advisor_stream {
            problems.push(format!(
                "{path}.advisor_stream: must differ from {path}.stream ({:?}): advisors' records are kept apart",
                self.stream
            ));
        }
        for (field, other) in [
            ("stream", &self.stream),
            ("advisor_stream", &self.advisor_stream),
        ] {
            if self.alert_stream == *other {
                problems.push(format!(
                    "{path}.alert_stream: must differ from {path}.{field} ({other:?}): alerts and notices are kept apart"
                ));
            }
        }
        if self.alert_max_age.0.is_zero() {
            problems.push(format!("{path}.alert_max_age: must be longer than 0s"));
        }
        if self.max_age.0.is_zero() {
            problems.push(format!("{path}.max_age: must be longer than 0s"));
        }
        if self.advisor_max_age.0.is_zero() {
            problems.push(format!("{path}.advisor_max_age: must be longer than 0s"));
        } else if self.advisor_max_age > self.max_age {
            problems.push(format!(
                "{path}.advisor_max_age: {} is longer than max_age ({}): advisors' records are kept no longer than the others",
                show(self.advisor_max_age.0),
                show(self.max_age.0)
            ));
        }
        if ![1, 3, 5].contains(&self.replicas) {
            problems.push(format!(
                "{path}.replicas: must be 1, 3 or 5, found {}",
                self.replicas
            ));
        }
        if self.max_bytes == Some(0) {
            problems.push(format!(
                "{path}.max_bytes: must be more than 0 (leave it out for no limit)"
            ));
        }
        if self.timeout.0 < Duration::from_secs(1) || self.timeout.0 > Duration::from_secs(600) {
            problems.push(format!(
                "{path}.timeout: must be between 1s and 10m, found {}",
                self.timeout
            ));
        }
        ConfigErrors(problems).into_result()
    }

    /// The in-process store of the embedded demo, with these max ages and
    /// [`vigie_api::history_store::DEFAULT_MAX_RECORDS`] records at most.
    pub fn memory(&self) -> MemoryHistory {
        MemoryHistory::new(MemoryRetention {
            max_age: self.max_age.0,
            advisor_max_age: self.advisor_max_age.0,
            alert_max_age: self.alert_max_age.0,
            ..MemoryRetention::default()
        })
    }

    /// The JetStream store: see [`JetStreamHistory::open`].
    pub async fn open(
        &self,
        context: &jetstream::Context,
    ) -> Result<JetStreamHistory, HistoryError> {
        JetStreamHistory::open(context, self).await
    }

    /// The stream configuration Vigie creates for one of the three streams.
    fn stream_config(&self, name: &str, prefix: &str, max_age: Duration) -> stream::Config {
        let day_records = prefix == ALERT_HISTORY_PREFIX;
        stream::Config {
            name: name.to_owned(),
            description: Some(match prefix {
                ADVISOR_INTERVALS_PREFIX => {
                    "Vigie: advisors' 15-minute interval records (short retention)".to_owned()
                }
                ALERT_HISTORY_PREFIX => {
                    "Vigie: alerts and notices of each site-local day (latest state per subject)"
                        .to_owned()
                }
                _ => "Vigie: 15-minute interval records of sites, queues and teams".to_owned(),
            }),
            // An alert's latest state replaces the earlier: one message per subject.
            max_messages_per_subject: if day_records { 1 } else { 0 },
            subjects: vec![format!("{prefix}.>")],
            retention: stream::RetentionPolicy::Limits,
            max_age,
            max_bytes: self
                .max_bytes
                .map_or(-1, |bytes| i64::try_from(bytes).unwrap_or(i64::MAX)),
            discard: stream::DiscardPolicy::Old,
            storage: stream::StorageType::File,
            num_replicas: self.replicas,
            // The server refuses a duplicate window longer than the max age.
            duplicate_window: DUPLICATE_WINDOW.min(max_age),
            ..Default::default()
        }
    }
}

/// Whether a byte stands for itself in a token.
fn unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-'
}

/// Writes a site or scope id as one NATS subject token, reversibly ([`decode_token`]): ASCII
/// letters, digits, `_` and `-` stand for themselves; every other byte of the id's UTF-8 is
/// written `%XX` (two upper-case hexadecimal digits), so `.`, `*`, `>`, spaces, `%` and any
/// non-ASCII letter never reach the subject as they are (`paris.nord` is `paris%2Enord`,
/// `é` is `%C3%A9`). The empty id, which no record has, is written `%`.
pub fn encode_token(id: &str) -> String {
    if id.is_empty() {
        return "%".to_owned();
    }
    let mut token = String::with_capacity(id.len());
    for &byte in id.as_bytes() {
        if unreserved(byte) {
            token.push(char::from(byte));
        } else {
            token.push_str(&format!("%{byte:02X}"));
        }
    }
    token
}

/// The id a token written by [`encode_token`] stands for; `None` for anything
/// [`encode_token`] never writes (a lower-case or stray `%`, an escaped letter, bytes that are
/// not UTF-8).
pub fn decode_token(token: &str) -> Option<String> {
    if token == "%" {
        return Some(String::new());
    }
    if token.is_empty() {
        return None;
    }
    let hex = |byte: u8| match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    };
    let mut bytes = Vec::with_capacity(token.len());
    let mut rest = token.as_bytes();
    while let Some((&first, tail)) = rest.split_first() {
        if unreserved(first) {
            bytes.push(first);
            rest = tail;
        } else if let [b'%', high, low, tail @ ..] = rest {
            let byte = hex(*high)? * 16 + hex(*low)?;
            if unreserved(byte) {
                return None;
            }
            bytes.push(byte);
            rest = tail;
        } else {
            return None;
        }
    }
    String::from_utf8(bytes).ok()
}

/// The subjects of a kind of record (`alert`, `notice`) of a site's day:
/// `vigie.alert_history.<site>.<date>.<kind>`, before the record's id.
fn day_subjects(kind: &str, site: &str, date: &str) -> String {
    format!(
        "{ALERT_HISTORY_PREFIX}.{}.{}.{kind}",
        encode_token(site),
        encode_token(date)
    )
}

/// The subject of an alert of a day: `vigie.alert_history.<site>.<date>.alert.<alert id>`.
pub fn alert_subject(site: &str, date: &str, id: &str) -> String {
    format!("{}.{}", day_subjects("alert", site, date), encode_token(id))
}

/// The subject of a notice of a day: `vigie.alert_history.<site>.<date>.notice.<notice id>`.
pub fn notice_subject(site: &str, date: &str, id: &str) -> String {
    format!(
        "{}.{}",
        day_subjects("notice", site, date),
        encode_token(id)
    )
}

/// A record of a site's day in the alert history stream: an alert or a notice.
trait DayRecord: serde::Serialize + DeserializeOwned {
    /// The subject token of the kind, after the date.
    const KIND: &'static str;
    fn site(&self) -> &str;
    fn date(&self) -> &str;
    fn id(&self) -> &str;
    /// How messages name it.
    fn describe(&self) -> String;
}

impl DayRecord for AlertRecord {
    const KIND: &'static str = "alert";
    fn site(&self) -> &str {
        &self.site
    }
    fn date(&self) -> &str {
        &self.date
    }
    fn id(&self) -> &str {
        &self.id
    }
    fn describe(&self) -> String {
        AlertRecord::describe(self)
    }
}

impl DayRecord for NoticeRecord {
    const KIND: &'static str = "notice";
    fn site(&self) -> &str {
        &self.site
    }
    fn date(&self) -> &str {
        &self.date
    }
    fn id(&self) -> &str {
        &self.notice.id
    }
    fn describe(&self) -> String {
        NoticeRecord::describe(self)
    }
}

/// The `Nats-Msg-Id` of a day record: its subject's tokens after the prefix, joined by `/`,
/// and the digest of its content, so that a retried publication is stored once and a new
/// state always is.
fn day_message_id(subject: &str, content: &[u8]) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    content.hash(&mut hasher);
    let key = subject
        .strip_prefix(ALERT_HISTORY_PREFIX)
        .unwrap_or(subject)
        .trim_start_matches('.')
        .replace('.', "/");
    format!("{key}/{:016x}", hasher.finish())
}

/// The subject a record is published on.
pub fn record_subject(key: &RecordKey) -> String {
    let site = encode_token(&key.site);
    let id = encode_token(&key.id);
    match key.kind {
        ScopeKind::Advisor => format!("{ADVISOR_INTERVALS_PREFIX}.{site}.{id}"),
        kind => format!("{INTERVALS_PREFIX}.{site}.{}.{id}", kind.as_str()),
    }
}

/// The `Nats-Msg-Id` of a record: `<site>/<kind>/<id>/<start_ms>/<revision>`, site and id
/// encoded as in subjects (so that a `/` in an id cannot make two keys look alike).
pub fn message_id(key: &RecordKey, revision: u32) -> String {
    format!(
        "{}/{}/{}/{}/{revision}",
        encode_token(&key.site),
        key.kind.as_str(),
        encode_token(&key.id),
        key.start_ms
    )
}

/// Interval history in two JetStream streams (see the module's documentation).
#[derive(Clone, Debug)]
pub struct JetStreamHistory {
    context: jetstream::Context,
    stream: String,
    advisor_stream: String,
    alert_stream: String,
    timeout: Duration,
}

/// A duration as operators write them: whole days as `31d`, others the human way (`humantime`
/// would write 31 days as a month and some hours).
fn show(duration: Duration) -> String {
    let secs = duration.as_secs();
    if secs > 0 && secs.is_multiple_of(86_400) && duration.subsec_nanos() == 0 {
        format!("{}d", secs / 86_400)
    } else {
        humantime::format_duration(duration).to_string()
    }
}

fn unavailable(message: String) -> HistoryError {
    HistoryError::Unavailable(message)
}

impl JetStreamHistory {
    /// Checks the settings, then creates the two streams when missing, or updates their max
    /// age, replicas and size limit when the settings changed (logging what changed). Refuses
    /// a stream of the same name that captures other subjects.
    pub async fn open(
        context: &jetstream::Context,
        config: &HistoryConfig,
    ) -> Result<JetStreamHistory, HistoryError> {
        config
            .validate("history")
            .map_err(|errors| HistoryError::Misconfigured(errors.to_string()))?;
        let timeout = config.timeout.0;
        for (field, name, prefix, max_age) in [
            ("stream", &config.stream, INTERVALS_PREFIX, config.max_age.0),
            (
                "advisor_stream",
                &config.advisor_stream,
                ADVISOR_INTERVALS_PREFIX,
                config.advisor_max_age.0,
            ),
            (
                "alert_stream",
                &config.alert_stream,
                ALERT_HISTORY_PREFIX,
                config.alert_max_age.0,
            ),
        ] {
            let wanted = config.stream_config(name, prefix, max_age);
            tokio::time::timeout(timeout, ensure_stream(context, wanted, field))
                .await
                .map_err(|_| {
                    unavailable(format!(
                        "no answer from JetStream about stream {name} within {} (history.timeout)",
                        show(timeout)
                    ))
                })??;
        }
        Ok(JetStreamHistory {
            context: context.clone(),
            stream: config.stream.clone(),
            advisor_stream: config.advisor_stream.clone(),
            alert_stream: config.alert_stream.clone(),
            timeout,
        })
    }

    /// Publishes one day record (an alert's or a notice's) on `subject` and awaits its
    /// acknowledgement; `what` names it in errors.
    async fn publish_day_record(
        &self,
        subject: String,
        payload: Vec<u8>,
        what: String,
    ) -> Result<(), HistoryError> {
        let mut headers = HeaderMap::new();
        headers.insert(NATS_MESSAGE_ID, day_message_id(&subject, &payload).as_str());
        let publish = async {
            let ack = self
                .context
                .publish_with_headers(subject.clone(), headers, payload.into())
                .await
                .map_err(|error| {
                    unavailable(format!("cannot publish {what} on {subject}: {error}"))
                })?;
            ack.await.map_err(|error| {
                unavailable(format!(
                    "{what} published on {subject} was not stored: {error}"
                ))
            })
        };
        tokio::time::timeout(self.timeout, publish)
            .await
            .map_err(|_| {
                unavailable(format!(
                    "no acknowledgement of {what} published on {subject} within {} (history.timeout)",
                    show(self.timeout)
                ))
            })?
            .map(|_| ())
    }

    /// The latest message of every subject `filter` matches in the stream of day records, read
    /// as `T`, within the timeout. A message that is not a `T` is skipped and logged.
    /// Stores `records` (checked beforehand) in the alert history stream, a few at a time.
    async fn publish_day_records<R: DayRecord>(&self, records: &[R]) -> Result<(), HistoryError> {
        let mut messages = Vec::with_capacity(records.len());
        for record in records {
            let payload = serde_json::to_vec(record).map_err(|error| HistoryError::BadRecord {
                key: record.describe(),
                reason: format!("cannot be written as JSON: {error}"),
            })?;
            let subject = format!(
                "{}.{}",
                day_subjects(R::KIND, record.site(), record.date()),
                encode_token(record.id())
            );
            messages.push((
                subject,
                payload,
                format!("{} {}", R::KIND, record.describe()),
            ));
        }
        futures::stream::iter(messages.into_iter().map(Ok::<_, HistoryError>))
            .try_for_each_concurrent(PUBLISH_WINDOW, |(subject, payload, what)| {
                self.publish_day_record(subject, payload, what)
            })
            .await
    }

    /// The records of a kind of a site's day (`date` is `YYYY-MM-DD`), the latest of each.
    async fn read_day_records<R: DayRecord>(
        &self,
        site: &str,
        date: &str,
    ) -> Result<Vec<R>, HistoryError> {
        parse_date(date)?;
        let filter = format!("{}.*", day_subjects(R::KIND, site, date));
        let mut records: Vec<R> = self.read_subjects(filter).await?;
        records.retain(|r| r.site() == site && r.date() == date);
        Ok(records)
    }

    async fn read_subjects<T: DeserializeOwned>(
        &self,
        filter: String,
    ) -> Result<Vec<T>, HistoryError> {
        let mut found = Vec::new();
        let read = self.read_stream(
            &self.alert_stream,
            &filter,
            DeliverPolicy::LastPerSubject,
            "a day's alerts or notices",
            |record| found.push(record),
        );
        tokio::time::timeout(self.timeout, read)
            .await
            .map_err(|_| {
                unavailable(format!(
                    "reading {filter} took longer than {} (history.timeout)",
                    show(self.timeout)
                ))
            })??;
        Ok(found)
    }

    /// Reads `filter` in `stream` with `deliver_policy` until nothing is pending, handing
    /// each record to `take`. An ordered consumer: it notices a message lost on the way and
    /// starts again after the last one received, so that a read is complete or fails. A
    /// message that is not a record (something else published on Vigie's subjects) is
    /// skipped and logged: one stray message must not make the history unreadable.
    async fn read_stream<T: DeserializeOwned>(
        &self,
        stream: &str,
        filter: &str,
        deliver_policy: DeliverPolicy,
        what: &str,
        mut take: impl FnMut(T),
    ) -> Result<(), HistoryError> {
        let consumer = self
            .context
            .create_consumer_on_stream(
                OrderedConfig {
                    description: Some(format!("Vigie: a read of {what}")),
                    filter_subject: filter.to_owned(),
                    deliver_policy,
                    ..OrderedConfig::default()
                },
                stream,
            )
            .await
            .map_err(|error| {
                unavailable(format!("cannot read {filter} in stream {stream}: {error}"))
            })?;
        let name = consumer.cached_info().name.clone();
        let mut skipped = 0_u64;
        let mut last_problem = None;
        if consumer.cached_info().num_pending > 0 {
            let mut messages = consumer.messages().await.map_err(|error| {
                unavailable(format!("cannot read {filter} in stream {stream}: {error}"))
            })?;
            loop {
                let Some(message) = messages.next().await else {
                    return Err(unavailable(format!(
                        "the read of {filter} in stream {stream} ended early"
                    )));
                };
                let message = message.map_err(|error| {
                    unavailable(format!("reading {filter} in stream {stream}: {error}"))
                })?;
                let pending = message
                    .info()
                    .map_err(|error| {
                        unavailable(format!(
                            "a message of stream {stream} has no metadata: {error}"
                        ))
                    })?
                    .pending;
                match serde_json::from_slice::<T>(&message.payload) {
                    Ok(record) => take(record),
                    Err(error) => {
                        skipped += 1;
                        last_problem = Some(format!("{}: {error}", message.subject));
                    }
                }
                if pending == 0 {
                    break;
                }
            }
        }
        if let Some(problem) = last_problem {
            warn!(stream, skipped, last = %problem, "history: messages that are not {what} skipped");
        }
        // The server would drop the consumer after 30 s idle; sooner is kinder. Aside, so that
        // a server going away now cannot turn a complete answer into a timeout; a failure
        // changes nothing.
        let context = self.context.clone();
        let stream = stream.to_owned();
        tokio::spawn(async move {
            let delete = context.delete_consumer_from_stream(&name, &stream);
            let _ = tokio::time::timeout(Duration::from_secs(5), delete).await;
        });
        Ok(())
    }

    /// Publishes one record and awaits its acknowledgement (a duplicate the server dropped is
    /// stored all the same).
    async fn publish_one(&self, record: IntervalRecord) -> Result<(), HistoryError> {
        let subject = record_subject(&record.key);
        let payload = serde_json::to_vec(&record).map_err(|error| HistoryError::BadRecord {
            key: describe_key(&record.key),
            reason: format!("cannot be written as JSON: {error}"),
        })?;
        let mut headers = HeaderMap::new();
        headers.insert(
            NATS_MESSAGE_ID,
            message_id(&record.key, record.revision).as_str(),
        );
        let publish = async {
            let ack = self
                .context
                .publish_with_headers(subject.clone(), headers, payload.into())
                .await
                .map_err(|error| unavailable(format!("cannot publish on {subject}: {error}")))?;
            ack.await.map_err(|error| {
                unavailable(format!(
                    "the record published on {subject} was not stored: {error}"
                ))
            })
        };
        tokio::time::timeout(self.timeout, publish)
            .await
            .map_err(|_| {
                unavailable(format!(
                    "no acknowledgement of the record published on {subject} within {} (history.timeout)",
                    show(self.timeout)
                ))
            })?
            .map(|_| ())
    }

    /// The records a read selects, from one stream or both, within the timeout.
    async fn select(&self, selection: Selection<'_>) -> Result<Vec<IntervalRecord>, HistoryError> {
        selection.validate()?;
        if selection.is_empty() {
            return Ok(Vec::new());
        }
        let read = async {
            let mut found = Latest::new();
            let site = encode_token(selection.site());
            // One scope is one subject; a day or a team reads the whole site.
            let scope_subject = match selection {
                Selection::Scope { site, kind, id, .. } => Some(record_subject(&RecordKey {
                    site: site.to_owned(),
                    kind,
                    id: id.to_owned(),
                    start_ms: 0,
                })),
                Selection::Day { .. } | Selection::TeamAdvisors { .. } => None,
            };
            if selection.wants_scopes() {
                let filter = scope_subject
                    .clone()
                    .unwrap_or_else(|| format!("{INTERVALS_PREFIX}.{site}.>"));
                self.read(&self.stream, &filter, selection, &mut found)
                    .await?;
            }
            if selection.wants_advisors() {
                let filter = scope_subject
                    .clone()
                    .unwrap_or_else(|| format!("{ADVISOR_INTERVALS_PREFIX}.{site}.>"));
                self.read(&self.advisor_stream, &filter, selection, &mut found)
                    .await?;
            }
            Ok(found.into_records())
        };
        tokio::time::timeout(self.timeout, read)
            .await
            .map_err(|_| {
                unavailable(format!(
                    "reading the interval records of site {} took longer than {} (history.timeout)",
                    selection.site(),
                    show(self.timeout)
                ))
            })?
    }

    /// Reads `filter` in `stream` from the earliest instant a selected record can have been
    /// published, offering the records the selection matches.
    async fn read(
        &self,
        stream: &str,
        filter: &str,
        selection: Selection<'_>,
        found: &mut Latest,
    ) -> Result<(), HistoryError> {
        let from_ms = selection.earliest_publication_ms()?;
        let deliver_policy = match chrono::DateTime::from_timestamp_millis(from_ms) {
            Some(start_time) if from_ms > 0 => DeliverPolicy::ByStartTime { start_time },
            // Before the epoch (or beyond what a date can say): everything, which is also right.
            _ => DeliverPolicy::All,
        };
        self.read_stream(
            stream,
            filter,
            deliver_policy,
            "interval records",
            |record: IntervalRecord| {
                if selection.matches(&record) {
                    found.offer(record);
                }
            },
        )
        .await
    }
}

/// Creates a stream when missing, or brings an existing one to the settings.
async fn ensure_stream(
    context: &jetstream::Context,
    wanted: stream::Config,
    field: &str,
) -> Result<(), HistoryError> {
    let name = wanted.name.clone();
    let existing = match context.get_stream(&name).await {
        Ok(mut found) => found
            .info()
            .await
            .map_err(|error| unavailable(format!("cannot read stream {name}: {error}")))?
            .config
            .clone(),
        Err(error) => {
            let missing = matches!(
                error.kind(),
                GetStreamErrorKind::JetStream(ref js) if js.error_code() == ErrorCode::STREAM_NOT_FOUND
            );
            if !missing {
                return Err(unavailable(format!("cannot read stream {name}: {error}")));
            }
            vigie_ingest::get_or_create_stream(context, wanted.clone())
                .await
                .map_err(|error| {
                    HistoryError::Misconfigured(format!(
                        "cannot create stream {name} (history.{field}) on {:?}: {error}",
                        wanted.subjects
                    ))
                })?;
            info!(stream = %name, subjects = ?wanted.subjects, max_age = %show(wanted.max_age), replicas = wanted.num_replicas, "history stream created");
            return Ok(());
        }
    };
    if existing.subjects != wanted.subjects {
        return Err(HistoryError::Misconfigured(format!(
            "stream {name} (history.{field}) exists and captures {:?}, not {:?}: name another stream in history.{field}, or give this one those subjects",
            existing.subjects, wanted.subjects
        )));
    }
    let mut changes = Vec::new();
    let mut updated = existing.clone();
    if existing.max_age != wanted.max_age {
        changes.push(format!(
            "max_age {} -> {}",
            show(existing.max_age),
            show(wanted.max_age)
        ));
        updated.max_age = wanted.max_age;
        updated.duplicate_window = existing.duplicate_window.min(wanted.max_age);
    }
    // The server writes "no limit" as -1 whatever it was given.
    let per_subject = |count: i64| if count <= 0 { -1 } else { count };
    if per_subject(existing.max_messages_per_subject)
        != per_subject(wanted.max_messages_per_subject)
    {
        changes.push(format!(
            "max_msgs_per_subject {} -> {}",
            existing.max_messages_per_subject, wanted.max_messages_per_subject
        ));
        updated.max_messages_per_subject = wanted.max_messages_per_subject;
    }
    if existing.num_replicas != wanted.num_replicas {
        changes.push(format!(
            "replicas {} -> {}",
            existing.num_replicas, wanted.num_replicas
        ));
        updated.num_replicas = wanted.num_replicas;
    }
    // The server writes "no limit" as -1 whatever it was given.
    let limit = |bytes: i64| if bytes <= 0 { -1 } else { bytes };
    if limit(existing.max_bytes) != limit(wanted.max_bytes) {
        let show = |bytes: i64| {
            if bytes <= 0 {
                "unlimited".to_owned()
            } else {
                bytes.to_string()
            }
        };
        changes.push(format!(
            "max_bytes {} -> {}",
            show(existing.max_bytes),
            show(wanted.max_bytes)
        ));
        updated.max_bytes = wanted.max_bytes;
    }
    if changes.is_empty() {
        return Ok(());
    }
    let changes = changes.join(", ");
    context.update_stream(&updated).await.map_err(|error| {
        HistoryError::Misconfigured(format!(
            "cannot update stream {name} (history.{field}): {changes}: {error}"
        ))
    })?;
    info!(stream = %name, %changes, "history stream updated to the configuration");
    Ok(())
}

impl HistoryStore for JetStreamHistory {
    fn publish<'a>(
        &'a self,
        records: Vec<IntervalRecord>,
    ) -> BoxFuture<'a, Result<(), HistoryError>> {
        Box::pin(async move {
            records.iter().try_for_each(validate_record)?;
            futures::stream::iter(records.into_iter().map(Ok::<_, HistoryError>))
                .try_for_each_concurrent(PUBLISH_WINDOW, |record| self.publish_one(record))
                .await
        })
    }

    fn day<'a>(
        &'a self,
        site: &'a str,
        date: &'a str,
    ) -> BoxFuture<'a, Result<Vec<IntervalRecord>, HistoryError>> {
        Box::pin(self.select(Selection::Day { site, date }))
    }

    fn query<'a>(
        &'a self,
        site: &'a str,
        kind: ScopeKind,
        id: &'a str,
        from_ms: i64,
        to_ms: i64,
    ) -> BoxFuture<'a, Result<Vec<IntervalRecord>, HistoryError>> {
        Box::pin(self.select(Selection::Scope {
            site,
            kind,
            id,
            from_ms,
            to_ms,
        }))
    }

    fn team_advisors<'a>(
        &'a self,
        site: &'a str,
        team: &'a str,
        from_ms: i64,
        to_ms: i64,
    ) -> BoxFuture<'a, Result<Vec<IntervalRecord>, HistoryError>> {
        Box::pin(self.select(Selection::TeamAdvisors {
            site,
            team,
            from_ms,
            to_ms,
        }))
    }

    fn publish_alerts<'a>(
        &'a self,
        records: Vec<AlertRecord>,
    ) -> BoxFuture<'a, Result<(), HistoryError>> {
        Box::pin(async move {
            records.iter().try_for_each(AlertRecord::validate)?;
            self.publish_day_records(&records).await
        })
    }

    fn day_alerts<'a>(
        &'a self,
        site: &'a str,
        date: &'a str,
    ) -> BoxFuture<'a, Result<Vec<AlertRecord>, HistoryError>> {
        Box::pin(async move {
            let mut records: Vec<AlertRecord> = self.read_day_records(site, date).await?;
            records.sort_by(|a, b| a.id.cmp(&b.id));
            Ok(records)
        })
    }

    fn publish_notices<'a>(
        &'a self,
        records: Vec<NoticeRecord>,
    ) -> BoxFuture<'a, Result<(), HistoryError>> {
        Box::pin(async move {
            records.iter().try_for_each(NoticeRecord::validate)?;
            self.publish_day_records(&records).await
        })
    }

    fn day_notices<'a>(
        &'a self,
        site: &'a str,
        date: &'a str,
    ) -> BoxFuture<'a, Result<Vec<NoticeRecord>, HistoryError>> {
        Box::pin(async move {
            let mut records: Vec<NoticeRecord> = self.read_day_records(site, date).await?;
            sort_notices(&mut records);
            Ok(records)
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // A test fails loudly at the first surprise, on purpose.
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn ids_become_tokens_with_only_safe_characters() {
        for (id, token) in [
            ("q-sales_1", "q-sales_1"),
            ("paris.nord", "paris%2Enord"),
            ("a b", "a%20b"),
            ("*", "%2A"),
            (">", "%3E"),
            ("100%", "100%25"),
            ("é", "%C3%A9"),
            ("a/b", "a%2Fb"),
            ("", "%"),
        ] {
            assert_eq!(encode_token(id), token, "{id:?}");
            assert_eq!(decode_token(token).as_deref(), Some(id), "{token:?}");
        }
    }

    #[test]
    fn tokens_encode_token_never_writes_are_refused() {
        for token in ["", "%2e", "%2", "a%", "%41", "%ZZ", "a.b", "%FF", "%C3"] {
            assert_eq!(decode_token(token), None, "{token:?}");
        }
    }

    #[test]
    fn subjects_and_message_ids_name_the_key() {
        let key = |kind, id: &str| RecordKey {
            site: "paris".into(),
            kind,
            id: id.into(),
            start_ms: 1_772_409_600_000,
        };
        assert_eq!(
            record_subject(&key(ScopeKind::Queue, "sales.fr")),
            "vigie.intervals.paris.queue.sales%2Efr"
        );
        assert_eq!(
            record_subject(&key(ScopeKind::Site, "paris")),
            "vigie.intervals.paris.site.paris"
        );
        assert_eq!(
            record_subject(&key(ScopeKind::Advisor, "a 1")),
            "vigie.advisor_intervals.paris.a%201"
        );
        assert_eq!(
            message_id(&key(ScopeKind::Team, "x/y"), 2),
            "paris/team/x%2Fy/1772409600000/2"
        );
    }

    proptest! {
        #[test]
        fn any_id_round_trips_through_one_valid_token(id in any::<String>()) {
            let token = encode_token(&id);
            prop_assert!(!token.is_empty());
            prop_assert!(
                token.bytes().all(|b| unreserved(b) || b == b'%'),
                "{:?} holds a byte that is not a letter, digit, _, - or %", token
            );
            prop_assert_eq!(decode_token(&token), Some(id));
        }

        #[test]
        fn distinct_ids_get_distinct_tokens(a in any::<String>(), b in any::<String>()) {
            prop_assume!(a != b);
            prop_assert_ne!(encode_token(&a), encode_token(&b));
        }
    }

    #[test]
    fn defaults_are_valid_and_written_the_human_way() {
        let config: HistoryConfig = toml::from_str("").unwrap();
        assert_eq!(config, HistoryConfig::default());
        config.validate("history").unwrap();
        assert_eq!(config.stream, "VIGIE_INTERVALS");
        assert_eq!(config.advisor_stream, "VIGIE_ADVISOR_INTERVALS");
        assert_eq!(config.max_age.0, Duration::from_secs(400 * 86_400));
        assert_eq!(config.advisor_max_age.0, Duration::from_secs(31 * 86_400));
        assert_eq!(config.replicas, 1);
        assert_eq!(config.max_bytes, None);
        assert_eq!(config.alert_stream, "VIGIE_ALERT_HISTORY");
        assert_eq!(config.alert_max_age.0, Duration::from_secs(31 * 86_400));
        let alerts = config.stream_config(
            "VIGIE_ALERT_HISTORY",
            ALERT_HISTORY_PREFIX,
            config.alert_max_age.0,
        );
        assert_eq!(
            alerts.max_messages_per_subject, 1,
            "the latest state replaces the earlier"
        );
        assert_eq!(alerts.subjects, ["vigie.alert_history.>"]);
        assert_eq!(
            alert_subject("paris", "2026-03-02", "pause/advisor/a042"),
            "vigie.alert_history.paris.2026-03-02.alert.pause%2Fadvisor%2Fa042"
        );
        assert_eq!(
            notice_subject("paris", "2026-03-02", "1-1/site"),
            "vigie.alert_history.paris.2026-03-02.notice.1-1%2Fsite"
        );

        let config: HistoryConfig = toml::from_str(
            "max_age = \"90d\"\nadvisor_max_age = \"1week\"\nreplicas = 3\nmax_bytes = 1000000",
        )
        .unwrap();
        config.validate("history").unwrap();
        assert_eq!(config.advisor_max_age.0, Duration::from_secs(7 * 86_400));
        assert_eq!(config.max_bytes, Some(1_000_000));
        // What is written back reads the same.
        let again: HistoryConfig = toml::from_str(&toml::to_string(&config).unwrap()).unwrap();
        assert_eq!(again, config);
    }

    #[test]
    fn unknown_keys_are_refused() {
        let error = toml::from_str::<HistoryConfig>("maxage = \"1d\"").unwrap_err();
        assert!(
            error.to_string().contains("unknown field `maxage`"),
            "{error}"
        );
    }

    #[test]
    fn mistakes_are_reported_together_with_their_path() {
        let config: HistoryConfig = toml::from_str(
            "stream = \"VIGIE.INTERVALS\"\nadvisor_stream = \"VIGIE.INTERVALS\"\nmax_age = \"30d\"\nadvisor_max_age = \"31d\"\nreplicas = 2\nmax_bytes = 0\ntimeout = \"100ms\"",
        )
        .unwrap();
        let problems = config.validate("history").unwrap_err().to_string();
        for expected in [
            "history.stream: \"VIGIE.INTERVALS\" is not a stream name",
            "history.advisor_stream: \"VIGIE.INTERVALS\" is not a stream name",
            "history.advisor_stream: must differ from history.stream",
            "history.advisor_max_age: 31d is longer than max_age (30d)",
            "history.replicas: must be 1, 3 or 5, found 2",
            "history.max_bytes: must be more than 0",
            "history.timeout: must be between 1s and 10m",
        ] {
            assert!(
                problems.contains(expected),
                "{expected:?} missing in {problems}"
            );
        }
        let clash: HistoryConfig =
            toml::from_str("alert_stream = \"VIGIE_INTERVALS\"\nalert_max_age = \"0s\"").unwrap();
        let problems = clash.validate("history").unwrap_err().to_string();
        for expected in [
            "history.alert_stream: must differ from history.stream",
            "history.alert_max_age: must be longer than 0s",
        ] {
            assert!(
                problems.contains(expected),
                "{expected:?} missing in {problems}"
            );
        }
        let zero: HistoryConfig =
            toml::from_str("max_age = \"0s\"\nadvisor_max_age = \"0s\"").unwrap();
        let problems = zero.validate("history").unwrap_err().to_string();
        assert!(
            problems.contains("history.max_age: must be longer than 0s"),
            "{problems}"
        );
        assert!(
            problems.contains("history.advisor_max_age: must be longer than 0s"),
            "{problems}"
        );
    }

    #[test]
    fn the_demo_store_keeps_the_configured_ages() {
        let config = HistoryConfig {
            advisor_max_age: HumanDuration::secs(86_400),
            ..HistoryConfig::default()
        };
        let retention = config.memory().retention();
        assert_eq!(retention.advisor_max_age, Duration::from_secs(86_400));
        assert_eq!(retention.max_age, Duration::from_secs(400 * 86_400));
    }
}
