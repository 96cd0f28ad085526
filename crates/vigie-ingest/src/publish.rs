//! Publishing events to the event stream, for tools (`vigie publish`, `vigie sim --nats`),
//! connectors written in Rust, and tests.
//!
//! A [`Publisher`] sends each event on its site's subject (`<subject_prefix>.<site>.<type>`)
//! with `Nats-Msg-Id` set to the event id, keeps at most `window` acknowledgements
//! outstanding, and reports on every message it was given, in the order it was given: stored
//! (with its stream sequence), duplicate (the server already had that id), or failed (why).
//! Transient errors (no acknowledgement in time, no responders while a server restarts, a
//! broken connection) are retried with bounded exponential backoff and the same `Nats-Msg-Id`,
//! so the server's deduplication makes a retry safe.
//!
//! What it must not do: judge events (the caller decodes what it reads, the consumer decides
//! what it accepts), lose a message silently (each one gets exactly one [`Report`]), or resend
//! anything under a different message id.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::header::NATS_MESSAGE_ID;
use async_nats::jetstream::context::{PublishError, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{self, Context};
use bytes::Bytes;
use futures::FutureExt;
use tokio::time::Instant;
use vigie_core::Event;

use crate::config::{NatsConfig, StreamConfig};
use crate::connect::IngestError;
use crate::consume::{CONTENT_TYPE, PROTOBUF};

/// The largest window: async-nats lets a context have 5000 acknowledgements pending and waits
/// for a free slot beyond that, which a window awaiting in order must never depend on.
pub const MAX_WINDOW: usize = 4096;

/// How events are encoded on the wire.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WireFormat {
    /// JSON, one event per message: the original bytes when the caller has them.
    #[default]
    Json,
    /// Protobuf (`vigie.v1.Event`), marked with `Content-Type: application/protobuf`.
    Protobuf,
}

/// How transient failures are retried. A message is given up after `attempts` attempts, or
/// once `give_up_after` has passed since it was first sent, whichever comes first: the second
/// bound keeps a long outage from costing a full retry cycle for each message of the window
/// in turn (they were all sent at about the same time, so they give up together).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per message, the first one included (at least 1).
    pub attempts: u32,
    /// Wait before the second attempt; doubled before each further one.
    pub initial_backoff: Duration,
    /// Longest wait between two attempts.
    pub max_backoff: Duration,
    /// No new attempt once this long has passed since the first.
    pub give_up_after: Duration,
}

impl Default for RetryPolicy {
    /// Up to ten attempts within 30 seconds: enough to ride out a server restart.
    fn default() -> Self {
        RetryPolicy {
            attempts: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            give_up_after: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The wait after `failed` attempts have failed (1 for the first failure).
    pub fn backoff(&self, failed: u32) -> Duration {
        let doublings = failed.saturating_sub(1).min(31);
        self.initial_backoff
            .saturating_mul(1 << doublings)
            .min(self.max_backoff)
    }
}

/// Settings of a [`Publisher`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublisherConfig {
    /// Subject prefix of the event stream: site S publishes on `<prefix>.S.<event type>`.
    pub subject_prefix: String,
    /// Encoding of events.
    pub format: WireFormat,
    /// Messages sent but not yet acknowledged, at most (1 to [`MAX_WINDOW`]; clamped).
    pub window: usize,
    /// Time allowed for an acknowledgement before the attempt counts as failed.
    pub ack_timeout: Duration,
    /// Retries of transient failures.
    pub retry: RetryPolicy,
}

impl PublisherConfig {
    /// JSON, a window of 256, 5 s per acknowledgement, default retries, on `stream`'s subjects.
    pub fn new(stream: &StreamConfig) -> PublisherConfig {
        PublisherConfig {
            subject_prefix: stream.subject_prefix.clone(),
            format: WireFormat::Json,
            window: 256,
            ack_timeout: Duration::from_secs(5),
            retry: RetryPolicy::default(),
        }
    }
}

/// A message ready to be published.
#[derive(Clone, Debug)]
pub struct Outgoing {
    /// The caller's reference (line number, position in a list), copied into the report.
    pub index: u64,
    /// Subject.
    pub subject: String,
    /// Headers, `Nats-Msg-Id` among them for events.
    pub headers: HeaderMap,
    /// Body.
    pub payload: Bytes,
}

impl Outgoing {
    /// The `Nats-Msg-Id` header, if any.
    pub fn message_id(&self) -> Option<&str> {
        self.headers
            .get(NATS_MESSAGE_ID)
            .map(|value| value.as_str())
    }
}

/// Why a message was not stored.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// Larger than the server's `max_payload`: never sent.
    #[error("too large: {0}")]
    TooLarge(String),
    /// The server answered with an error that retrying cannot fix (stream limits, for one).
    #[error("refused by the server: {0}")]
    Refused(String),
    /// Every attempt failed transiently.
    #[error("gave up after {attempts} attempt(s): {last}")]
    GaveUp {
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last: String,
    },
}

/// What became of a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublishOutcome {
    /// Stored in the stream at this sequence.
    Stored {
        /// Stream sequence.
        sequence: u64,
    },
    /// The stream already had a message with this `Nats-Msg-Id` within its duplicate window:
    /// nothing was stored. After a retry (`attempts > 1`) the earlier copy may be this run's own
    /// first attempt, whose acknowledgement was lost.
    Duplicate {
        /// Sequence of the message already stored.
        sequence: u64,
    },
    /// Not stored.
    Failed(Failure),
}

/// The report on one message, given in the order the messages were sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// The caller's reference ([`Outgoing::index`]).
    pub index: u64,
    /// The subject it was published on.
    pub subject: String,
    /// Its `Nats-Msg-Id`, if it had one.
    pub id: Option<String>,
    /// Attempts made.
    pub attempts: u32,
    /// What became of it.
    pub outcome: PublishOutcome,
}

/// Counts since the publisher was created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PublishStats {
    /// Messages handed to [`Publisher::send`].
    pub sent: u64,
    /// Stored.
    pub stored: u64,
    /// Duplicates dropped by the server.
    pub duplicates: u64,
    /// Failed.
    pub failed: u64,
    /// Attempts after the first, all messages together.
    pub retries: u64,
}

fn invalid_subject(subject: String, message: String) -> IngestError {
    IngestError::Publish { subject, message }
}

/// The subject of a site's message: `<prefix>.<site>.<rest>` (`rest` is the event type for
/// events). Fails when the site or `rest` cannot be subject tokens.
pub fn site_message_subject(prefix: &str, site: &str, rest: &str) -> Result<String, IngestError> {
    let subject = format!("{prefix}.{site}.{rest}");
    if !NatsConfig::site_is_subject_token(site) {
        return Err(invalid_subject(
            subject,
            format!(
                "site id {site:?} cannot be a NATS subject token (no dots, spaces or wildcards)"
            ),
        ));
    }
    if !rest.split('.').all(NatsConfig::site_is_subject_token) {
        return Err(invalid_subject(
            subject,
            format!("{rest:?} is not a subject suffix"),
        ));
    }
    Ok(subject)
}

/// The subject an event is published on: `<prefix>.<site>.<event type>`, such as
/// `vigie.events.paris.contact.queued`.
pub fn event_subject(prefix: &str, event: &Event) -> Result<String, IngestError> {
    site_message_subject(prefix, &event.site, event.type_name())
}

/// The message of an event: on its subject, `Nats-Msg-Id` = the event id, JSON (`original`
/// when given, which must be the event's own JSON, else [`Event::to_json`]) or protobuf.
pub fn event_message(
    prefix: &str,
    format: WireFormat,
    index: u64,
    event: &Event,
    original: Option<Bytes>,
) -> Result<Outgoing, IngestError> {
    let subject = event_subject(prefix, event)?;
    let mut headers = HeaderMap::new();
    headers.insert(NATS_MESSAGE_ID, event.id.as_str());
    let payload = match format {
        WireFormat::Json => original.unwrap_or_else(|| Bytes::from(event.to_json())),
        WireFormat::Protobuf => {
            headers.insert(CONTENT_TYPE, PROTOBUF);
            Bytes::from(vigie_proto::encode_protobuf(event))
        }
    };
    Ok(Outgoing {
        index,
        subject,
        headers,
        payload,
    })
}

/// Publishes events with a bounded window of acknowledgements; see the module documentation.
pub struct Publisher {
    config: PublisherConfig,
    window: Window<Context>,
}

impl fmt::Debug for Publisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Publisher")
            .field("config", &self.config)
            .field("in_flight", &self.window.queue.len())
            .field("stats", &self.window.stats)
            .finish()
    }
}

impl Publisher {
    /// A publisher on `context` (the window is clamped to 1..=[`MAX_WINDOW`], attempts to at
    /// least 1).
    pub fn new(context: Context, mut config: PublisherConfig) -> Publisher {
        config.window = config.window.clamp(1, MAX_WINDOW);
        config.retry.attempts = config.retry.attempts.max(1);
        let window = Window::new(context, &config);
        Publisher { config, window }
    }

    /// Its settings.
    pub fn config(&self) -> &PublisherConfig {
        &self.config
    }

    /// The message of an event, in the configured format (see [`event_message`]).
    pub fn event_message(
        &self,
        index: u64,
        event: &Event,
        original: Option<Bytes>,
    ) -> Result<Outgoing, IngestError> {
        event_message(
            &self.config.subject_prefix,
            self.config.format,
            index,
            event,
            original,
        )
    }

    /// A message of arbitrary bytes and headers on `<prefix>.<site>.<rest>`: for tests that
    /// inject what producers should not send (garbage, binary data, oversized messages).
    pub fn raw_message(
        &self,
        index: u64,
        site: &str,
        rest: &str,
        headers: HeaderMap,
        payload: Bytes,
    ) -> Result<Outgoing, IngestError> {
        Ok(Outgoing {
            index,
            subject: site_message_subject(&self.config.subject_prefix, site, rest)?,
            headers,
            payload,
        })
    }

    /// Sends a message. When the window is full, first waits for the oldest acknowledgement
    /// (retrying it if needed). Returns the reports now known, oldest first.
    pub async fn send(&mut self, message: Outgoing) -> Vec<Report> {
        self.window.send(message).await
    }

    /// The reports of the oldest messages whose acknowledgement is already in, without waiting
    /// for the server (a retry that is due is sent, though).
    pub async fn completed(&mut self) -> Vec<Report> {
        self.window.completed().await
    }

    /// Waits for every outstanding message and returns their reports, oldest first.
    pub async fn flush(&mut self) -> Vec<Report> {
        self.window.flush().await
    }

    /// Messages sent and not yet reported.
    pub fn in_flight(&self) -> usize {
        self.window.queue.len()
    }

    /// Counts so far.
    pub fn stats(&self) -> PublishStats {
        self.window.stats
    }
}

/// An acknowledgement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Ack {
    sequence: u64,
    duplicate: bool,
}

/// Why an attempt failed.
#[derive(Debug)]
enum AttemptError {
    /// Worth retrying.
    Transient(String),
    /// Not worth it.
    Permanent(Failure),
}

type AckFuture = Pin<Box<dyn Future<Output = Result<Ack, AttemptError>> + Send>>;

/// Where messages go: JetStream, or a scripted fake in the tests of the window.
trait Transport {
    /// Hands the message to the connection; the future resolves with the acknowledgement.
    fn send(
        &self,
        message: &Outgoing,
    ) -> impl Future<Output = Result<AckFuture, AttemptError>> + Send;
}

impl Transport for Context {
    fn send(
        &self,
        message: &Outgoing,
    ) -> impl Future<Output = Result<AckFuture, AttemptError>> + Send {
        let publish = PublishMessage::build()
            .payload(message.payload.clone())
            .headers(message.headers.clone());
        let subject = message.subject.clone();
        async move {
            let pending = self
                .send_publish(subject, publish)
                .await
                .map_err(classify)?;
            let ack: AckFuture = Box::pin(async move {
                pending
                    .await
                    .map(|ack| Ack {
                        sequence: ack.sequence,
                        duplicate: ack.duplicate,
                    })
                    .map_err(classify)
            });
            Ok(ack)
        }
    }
}

/// Sorts publish errors into those a retry may cure and the others.
fn classify(error: PublishError) -> AttemptError {
    match error.kind() {
        // During a restart: no responders until JetStream is back (async-nats reports it as
        // "no stream"), lost acknowledgements, a broken connection.
        PublishErrorKind::StreamNotFound => AttemptError::Transient(
            "no responders: no stream captures the subject, or the server is restarting".into(),
        ),
        PublishErrorKind::TimedOut
        | PublishErrorKind::BrokenPipe
        | PublishErrorKind::MaxAckPending => AttemptError::Transient(error.to_string()),
        PublishErrorKind::MaxPayloadExceeded => {
            AttemptError::Permanent(Failure::TooLarge(error.to_string()))
        }
        PublishErrorKind::WrongLastMessageId | PublishErrorKind::WrongLastSequence => {
            AttemptError::Permanent(Failure::Refused(error.to_string()))
        }
        PublishErrorKind::Other => {
            let server = std::error::Error::source(&error)
                .and_then(|source| source.downcast_ref::<jetstream::Error>());
            match server {
                // 503: JetStream temporarily unavailable (leader election, recovery).
                Some(server) if server.code() == 503 => AttemptError::Transient(server.to_string()),
                Some(server) => AttemptError::Permanent(Failure::Refused(server.to_string())),
                // Not an answer from the server: trouble on the way there.
                None => AttemptError::Transient(error.to_string()),
            }
        }
    }
}

/// One message in the window.
struct Entry {
    message: Outgoing,
    attempts: u32,
    first_sent: Instant,
    state: State,
}

enum State {
    /// Sent; the acknowledgement is due by `deadline`.
    Waiting { deadline: Instant, ack: AckFuture },
    /// To be sent again at `until`.
    Backoff { until: Instant },
    /// Settled.
    Done(PublishOutcome),
}

/// The ordered window of messages awaiting acknowledgement, over any transport.
struct Window<T> {
    transport: T,
    capacity: usize,
    ack_timeout: Duration,
    retry: RetryPolicy,
    queue: VecDeque<Entry>,
    stats: PublishStats,
}

impl<T: Transport> Window<T> {
    fn new(transport: T, config: &PublisherConfig) -> Window<T> {
        Window {
            transport,
            capacity: config.window.max(1),
            ack_timeout: config.ack_timeout,
            retry: config.retry,
            queue: VecDeque::with_capacity(config.window.max(1)),
            stats: PublishStats::default(),
        }
    }

    async fn send(&mut self, message: Outgoing) -> Vec<Report> {
        let mut reports = Vec::new();
        while self.queue.len() >= self.capacity {
            if let Some(report) = self.advance(true).await {
                reports.push(report);
            }
        }
        let mut entry = Entry {
            message,
            attempts: 0,
            first_sent: Instant::now(),
            state: State::Backoff {
                until: Instant::now(),
            },
        };
        self.stats.sent += 1;
        attempt(&self.transport, &mut entry, self.ack_timeout, &self.retry).await;
        self.queue.push_back(entry);
        while let Some(report) = self.advance(false).await {
            reports.push(report);
        }
        reports
    }

    async fn completed(&mut self) -> Vec<Report> {
        let mut reports = Vec::new();
        while let Some(report) = self.advance(false).await {
            reports.push(report);
        }
        reports
    }

    async fn flush(&mut self) -> Vec<Report> {
        let mut reports = Vec::new();
        while let Some(report) = self.advance(true).await {
            reports.push(report);
        }
        reports
    }

    /// Moves the oldest message on until it is settled and returns its report. Without `wait`,
    /// returns `None` as soon as that would mean waiting for the server or for a backoff.
    async fn advance(&mut self, wait: bool) -> Option<Report> {
        let outcome = loop {
            let entry = self.queue.front_mut()?;
            match &mut entry.state {
                State::Done(outcome) => break outcome.clone(),
                State::Waiting { deadline, ack } => {
                    let deadline = *deadline;
                    let result = if wait {
                        tokio::time::timeout_at(deadline, ack.as_mut()).await.ok()
                    } else {
                        match ack.as_mut().now_or_never() {
                            Some(result) => Some(result),
                            None if Instant::now() >= deadline => None,
                            None => return None,
                        }
                    };
                    let result = result.unwrap_or_else(|| {
                        Err(AttemptError::Transient(format!(
                            "no acknowledgement within {:?}",
                            self.ack_timeout
                        )))
                    });
                    settle(entry, result, &self.retry);
                }
                State::Backoff { until } => {
                    if !wait && *until > Instant::now() {
                        return None;
                    }
                    tokio::time::sleep_until(*until).await;
                    self.stats.retries += 1;
                    attempt(&self.transport, entry, self.ack_timeout, &self.retry).await;
                }
            }
        };
        let entry = self.queue.pop_front()?;
        match &outcome {
            PublishOutcome::Stored { .. } => self.stats.stored += 1,
            PublishOutcome::Duplicate { .. } => self.stats.duplicates += 1,
            PublishOutcome::Failed(_) => self.stats.failed += 1,
        }
        let id = entry.message.message_id().map(str::to_owned);
        Some(Report {
            index: entry.message.index,
            subject: entry.message.subject,
            id,
            attempts: entry.attempts,
            outcome,
        })
    }
}

/// Sends (or resends) a message: it then waits for its acknowledgement, or for a retry, or is
/// settled as failed.
async fn attempt<T: Transport>(
    transport: &T,
    entry: &mut Entry,
    ack_timeout: Duration,
    retry: &RetryPolicy,
) {
    entry.attempts += 1;
    // Handing over is normally immediate; it waits only when the client's buffer is full.
    match tokio::time::timeout(ack_timeout, transport.send(&entry.message)).await {
        Ok(Ok(ack)) => {
            entry.state = State::Waiting {
                deadline: Instant::now() + ack_timeout,
                ack,
            }
        }
        Ok(Err(error)) => settle(entry, Err(error), retry),
        Err(_) => settle(
            entry,
            Err(AttemptError::Transient(format!(
                "the client did not take the message within {ack_timeout:?}"
            ))),
            retry,
        ),
    }
}

/// Records the result of an attempt.
fn settle(entry: &mut Entry, result: Result<Ack, AttemptError>, retry: &RetryPolicy) {
    entry.state = match result {
        Ok(Ack {
            sequence,
            duplicate: false,
        }) => State::Done(PublishOutcome::Stored { sequence }),
        Ok(Ack {
            sequence,
            duplicate: true,
        }) => State::Done(PublishOutcome::Duplicate { sequence }),
        Err(AttemptError::Permanent(failure)) => State::Done(PublishOutcome::Failed(failure)),
        Err(AttemptError::Transient(last))
            if entry.attempts >= retry.attempts
                || entry.first_sent.elapsed() >= retry.give_up_after =>
        {
            State::Done(PublishOutcome::Failed(Failure::GaveUp {
                attempts: entry.attempts,
                last,
            }))
        }
        Err(AttemptError::Transient(why)) => {
            tracing::debug!(subject = %entry.message.subject, attempts = entry.attempts, %why, "publish will be retried");
            State::Backoff {
                until: Instant::now() + retry.backoff(entry.attempts),
            }
        }
    };
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    use vigie_core::{DEFAULT_MAX_EVENT_BYTES, decode_json};

    use super::*;

    /// What the fake server does with one attempt.
    #[derive(Clone, Debug)]
    enum Behaviour {
        /// Acknowledges after this delay.
        AckAfter(Duration, Ack),
        /// Refuses to take the message.
        SendFails(fn() -> AttemptError),
        /// Takes it and answers with an error.
        AckFails(fn() -> AttemptError),
        /// Takes it and never answers.
        Silent,
    }

    #[derive(Debug)]
    struct Sent {
        index: u64,
        id: Option<String>,
        at: Instant,
    }

    /// Scripted transport: the behaviour of attempt n of message i is `script[(i, n)]`,
    /// defaulting to an immediate acknowledgement at sequence i + 1.
    #[derive(Clone, Default)]
    struct Fake {
        script: Arc<Mutex<HashMap<(u64, u32), Behaviour>>>,
        sent: Arc<Mutex<Vec<Sent>>>,
    }

    impl Fake {
        fn on(&self, index: u64, attempt: u32, behaviour: Behaviour) -> &Self {
            self.script
                .lock()
                .unwrap()
                .insert((index, attempt), behaviour);
            self
        }

        fn attempts_of(&self, index: u64) -> Vec<(Option<String>, Instant)> {
            let sent = self.sent.lock().unwrap();
            sent.iter()
                .filter(|s| s.index == index)
                .map(|s| (s.id.clone(), s.at))
                .collect()
        }
    }

    impl Transport for Fake {
        fn send(
            &self,
            message: &Outgoing,
        ) -> impl Future<Output = Result<AckFuture, AttemptError>> + Send {
            let attempt = {
                let mut sent = self.sent.lock().unwrap();
                sent.push(Sent {
                    index: message.index,
                    id: message.message_id().map(str::to_owned),
                    at: Instant::now(),
                });
                sent.iter().filter(|s| s.index == message.index).count() as u32
            };
            let behaviour = self
                .script
                .lock()
                .unwrap()
                .get(&(message.index, attempt))
                .cloned()
                .unwrap_or(Behaviour::AckAfter(
                    Duration::ZERO,
                    Ack {
                        sequence: message.index + 1,
                        duplicate: false,
                    },
                ));
            // As with a server, the acknowledgement arrives whether or not anyone polls yet.
            let sent_at = Instant::now();
            async move {
                let ack: AckFuture = match behaviour {
                    Behaviour::AckAfter(delay, ack) => Box::pin(async move {
                        tokio::time::sleep_until(sent_at + delay).await;
                        Ok(ack)
                    }),
                    Behaviour::SendFails(error) => return Err(error()),
                    Behaviour::AckFails(error) => Box::pin(async move { Err(error()) }),
                    Behaviour::Silent => Box::pin(futures::future::pending()),
                };
                Ok(ack)
            }
        }
    }

    fn no_responders() -> AttemptError {
        AttemptError::Transient("no responders".into())
    }

    fn too_large() -> AttemptError {
        AttemptError::Permanent(Failure::TooLarge("2 MiB".into()))
    }

    fn config(window: usize) -> PublisherConfig {
        PublisherConfig {
            window,
            retry: RetryPolicy {
                attempts: 4,
                initial_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(1),
                give_up_after: Duration::from_secs(60),
            },
            ..PublisherConfig::new(&StreamConfig::default())
        }
    }

    fn message(index: u64) -> Outgoing {
        let mut headers = HeaderMap::new();
        headers.insert(NATS_MESSAGE_ID, format!("e{index}"));
        Outgoing {
            index,
            subject: "vigie.events.s.contact.queued".into(),
            headers,
            payload: Bytes::from_static(b"{}"),
        }
    }

    fn indexes(reports: &[Report]) -> Vec<u64> {
        reports.iter().map(|r| r.index).collect()
    }

    /// Every test body runs under a timeout: on paused time a hang fails at once.
    async fn bounded<F: Future>(body: F) -> F::Output {
        tokio::time::timeout(Duration::from_secs(3600), body)
            .await
            .expect("the test hung")
    }

    #[tokio::test(start_paused = true)]
    async fn the_window_bounds_outstanding_messages_and_reports_keep_the_sending_order() {
        bounded(async {
            let fake = Fake::default();
            let ack = |sequence| Ack {
                sequence,
                duplicate: false,
            };
            // Message 1 is acknowledged before message 0.
            fake.on(0, 1, Behaviour::AckAfter(Duration::from_millis(50), ack(1)))
                .on(1, 1, Behaviour::AckAfter(Duration::from_millis(10), ack(2)))
                .on(2, 1, Behaviour::AckAfter(Duration::from_millis(10), ack(3)));
            let mut window = Window::new(fake.clone(), &config(2));
            let start = Instant::now();
            assert!(window.send(message(0)).await.is_empty());
            assert!(window.send(message(1)).await.is_empty());
            assert_eq!(window.queue.len(), 2);
            // The window is full: message 2 waits for message 0, and 1 comes right after it.
            let reports = window.send(message(2)).await;
            assert_eq!(indexes(&reports), [0, 1]);
            assert_eq!(fake.attempts_of(2)[0].1 - start, Duration::from_millis(50));
            assert_eq!(reports[0].outcome, PublishOutcome::Stored { sequence: 1 });
            assert_eq!(reports[0].id.as_deref(), Some("e0"));
            assert_eq!(window.queue.len(), 1);
            let reports = window.flush().await;
            assert_eq!(indexes(&reports), [2]);
            assert_eq!(
                window.stats,
                PublishStats {
                    sent: 3,
                    stored: 3,
                    ..PublishStats::default()
                }
            );
        })
        .await;
    }

    #[tokio::test(start_paused = true)]
    async fn completed_reports_only_what_is_already_acknowledged() {
        bounded(async {
            let fake = Fake::default();
            let ack = Ack {
                sequence: 7,
                duplicate: true,
            };
            fake.on(0, 1, Behaviour::AckAfter(Duration::from_millis(10), ack));
            let mut window = Window::new(fake, &config(8));
            assert!(window.send(message(0)).await.is_empty());
            assert!(window.completed().await.is_empty());
            tokio::time::advance(Duration::from_millis(10)).await;
            let reports = window.completed().await;
            assert_eq!(
                reports[0].outcome,
                PublishOutcome::Duplicate { sequence: 7 }
            );
            assert_eq!(window.stats.duplicates, 1);
        })
        .await;
    }

    #[tokio::test(start_paused = true)]
    async fn transient_failures_are_retried_with_backoff_under_the_same_message_id() {
        bounded(async {
            let fake = Fake::default();
            fake.on(0, 1, Behaviour::SendFails(no_responders)).on(
                0,
                2,
                Behaviour::AckFails(no_responders),
            );
            let mut window = Window::new(fake.clone(), &config(8));
            let start = Instant::now();
            window.send(message(0)).await;
            let reports = window.flush().await;
            assert_eq!(reports.len(), 1);
            assert_eq!(reports[0].outcome, PublishOutcome::Stored { sequence: 1 });
            assert_eq!(reports[0].attempts, 3);
            let attempts = fake.attempts_of(0);
            let offsets: Vec<_> = attempts.iter().map(|(_, at)| *at - start).collect();
            // Backoff of 100 ms, then 200 ms.
            assert_eq!(offsets, [0, 100, 300].map(Duration::from_millis).to_vec());
            assert!(attempts.iter().all(|(id, _)| id.as_deref() == Some("e0")));
            assert_eq!(window.stats.retries, 2);
        })
        .await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_missing_acknowledgement_times_out_and_the_retry_may_find_a_duplicate() {
        bounded(async {
            let fake = Fake::default();
            let ack = Ack {
                sequence: 1,
                duplicate: true,
            };
            fake.on(0, 1, Behaviour::Silent)
                .on(0, 2, Behaviour::AckAfter(Duration::ZERO, ack));
            let mut window = Window::new(fake.clone(), &config(8));
            let start = Instant::now();
            window.send(message(0)).await;
            let reports = window.flush().await;
            assert_eq!(
                reports[0].outcome,
                PublishOutcome::Duplicate { sequence: 1 }
            );
            assert_eq!(reports[0].attempts, 2);
            // The 5 s acknowledgement timeout, then the first backoff.
            assert_eq!(
                fake.attempts_of(0)[1].1 - start,
                Duration::from_millis(5100)
            );
        })
        .await;
    }

    #[tokio::test(start_paused = true)]
    async fn it_gives_up_after_the_configured_attempts_and_goes_on_with_the_next() {
        bounded(async {
            let fake = Fake::default();
            for attempt in 1..=4 {
                fake.on(0, attempt, Behaviour::AckFails(no_responders));
            }
            let mut window = Window::new(fake.clone(), &config(8));
            window.send(message(0)).await;
            window.send(message(1)).await;
            let reports = window.flush().await;
            assert_eq!(indexes(&reports), [0, 1]);
            assert_eq!(
                reports[0].outcome,
                PublishOutcome::Failed(Failure::GaveUp {
                    attempts: 4,
                    last: "no responders".into()
                })
            );
            assert_eq!(reports[1].outcome, PublishOutcome::Stored { sequence: 2 });
            assert_eq!(fake.attempts_of(0).len(), 4);
            assert_eq!(window.stats.failed, 1);
        })
        .await;
    }

    #[tokio::test(start_paused = true)]
    async fn in_a_long_outage_the_whole_window_gives_up_together() {
        bounded(async {
            let fake = Fake::default();
            for index in 0..4 {
                for attempt in 1..=100 {
                    fake.on(index, attempt, Behaviour::Silent);
                }
            }
            let mut config = config(4);
            config.retry.attempts = 100;
            config.retry.give_up_after = Duration::from_secs(20);
            let mut window = Window::new(fake.clone(), &config);
            let start = Instant::now();
            for index in 0..4 {
                window.send(message(index)).await;
            }
            let reports = window.flush().await;
            assert_eq!(indexes(&reports), [0, 1, 2, 3]);
            assert!(
                reports
                    .iter()
                    .all(|r| matches!(r.outcome, PublishOutcome::Failed(Failure::GaveUp { .. })))
            );
            // The first message spends the 20 s; the others, sent with it, have spent them too.
            let elapsed = Instant::now() - start;
            assert!(elapsed < Duration::from_secs(30), "{elapsed:?}");
            assert!(reports[1..].iter().all(|r| r.attempts == 1), "{reports:?}");
        })
        .await;
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_failures_are_not_retried() {
        bounded(async {
            let fake = Fake::default();
            fake.on(0, 1, Behaviour::SendFails(too_large));
            let mut window = Window::new(fake.clone(), &config(8));
            let reports = window.send(message(0)).await;
            assert_eq!(
                reports[0].outcome,
                PublishOutcome::Failed(Failure::TooLarge("2 MiB".into()))
            );
            assert_eq!(reports[0].attempts, 1);
            assert_eq!(fake.attempts_of(0).len(), 1);
        })
        .await;
    }

    #[test]
    fn backoff_doubles_up_to_its_ceiling() {
        let policy = RetryPolicy {
            attempts: 50,
            ..RetryPolicy::default()
        };
        let waits: Vec<u128> = (1..=8).map(|n| policy.backoff(n).as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        assert_eq!(policy.backoff(40), Duration::from_secs(5));
    }

    fn queued() -> (Event, &'static [u8]) {
        let line: &'static [u8] = br#"{"id":"q-1","type":"contact.queued","time":"2026-03-02T09:00:00Z","site":"paris","contact":"c1","queue":"sales","channel":"voice"}"#;
        (decode_json(line, DEFAULT_MAX_EVENT_BYTES).unwrap(), line)
    }

    #[test]
    fn events_go_to_their_site_and_type_subject_with_their_id() {
        let (event, line) = queued();
        let message = event_message(
            "vigie.events",
            WireFormat::Json,
            3,
            &event,
            Some(Bytes::from_static(line)),
        )
        .unwrap();
        assert_eq!(message.subject, "vigie.events.paris.contact.queued");
        assert_eq!(message.message_id(), Some("q-1"));
        assert_eq!(message.index, 3);
        assert_eq!(
            &message.payload[..],
            line,
            "the original bytes are sent as read"
        );
        assert!(message.headers.get(CONTENT_TYPE).is_none());

        let rebuilt = event_message("vigie.events", WireFormat::Json, 3, &event, None).unwrap();
        let decoded = decode_json(&rebuilt.payload, DEFAULT_MAX_EVENT_BYTES).unwrap();
        assert_eq!(decoded, event);
    }

    #[test]
    fn protobuf_messages_say_so_and_decode_to_the_same_event() {
        let (event, line) = queued();
        let message = event_message(
            "acme.vigie",
            WireFormat::Protobuf,
            0,
            &event,
            Some(Bytes::from_static(line)),
        )
        .unwrap();
        assert_eq!(message.subject, "acme.vigie.paris.contact.queued");
        assert_eq!(
            message.headers.get(CONTENT_TYPE).map(|v| v.as_str()),
            Some(PROTOBUF)
        );
        assert_eq!(message.message_id(), Some("q-1"));
        let decoded =
            vigie_proto::decode_protobuf(&message.payload, DEFAULT_MAX_EVENT_BYTES).unwrap();
        assert_eq!(decoded, event);
    }

    #[test]
    fn sites_and_suffixes_that_cannot_be_subject_tokens_are_refused() {
        let (mut event, _) = queued();
        event.site = "paris.nord".into();
        let error = event_subject("vigie.events", &event)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("site id \"paris.nord\" cannot be a NATS subject token"),
            "{error}"
        );
        assert!(site_message_subject("vigie.events", "paris", "contact.*").is_err());
        assert!(site_message_subject("vigie.events", "paris", "a..b").is_err());
        assert!(site_message_subject("vigie.events", "", "garbage").is_err());
        assert_eq!(
            site_message_subject("vigie.events", "paris", "garbage").unwrap(),
            "vigie.events.paris.garbage"
        );
    }
}
