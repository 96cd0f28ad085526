//! Consuming a site's events: recovery of the day (from the site's snapshot when there is a
//! usable one), then live, through a durable pull consumer; acknowledgements only once the
//! engine accepted; dead letters for the rest; the site's snapshot saved as it goes.
//!
//! Per site, one task fetches and decodes, and hands batches to the engine (waiting when the
//! engine is busy: backpressure up to NATS); a second task takes the engine's outcomes in
//! order, acknowledges accepted events and dead-letters refused ones.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::consumer::pull::{self, MessagesErrorKind};
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy};
use async_nats::jetstream::context::{ConsumerInfoErrorKind, GetStreamErrorKind};
use async_nats::jetstream::message::{AckKind, Message};
use async_nats::jetstream::stream::State as StreamState;
use async_nats::jetstream::{self, Context, ErrorCode};
use futures::StreamExt;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use vigie_core::{
    DEFAULT_MAX_EVENT_BYTES, DayCalendar, Event, Outcome, RejectReason, Rejection, Timestamp,
    decode_json,
};
use vigie_engine::{Clock, EngineHandle, EngineMetrics, SiteFeed};

use crate::config::{NatsConfig, StreamConfig};
use crate::connect::{IngestError, ensure_stream, get_or_create_stream, stream_config};
use crate::metrics::{IngestMetrics, RestoreOutcome};
use crate::snapshot::{SnapshotStore, StoredSnapshot, stream_created};

/// The header that marks a protobuf payload.
pub const CONTENT_TYPE: &str = "Content-Type";
/// Its value for protobuf.
pub const PROTOBUF: &str = "application/protobuf";
/// Headers added to dead letters.
pub const REJECT_REASON: &str = "Vigie-Reject-Reason";
/// The field at fault, when there is one.
pub const REJECT_FIELD: &str = "Vigie-Reject-Field";
/// The human explanation.
pub const REJECT_DETAIL: &str = "Vigie-Reject-Detail";
/// The subject the event was published on.
pub const ORIGINAL_SUBJECT: &str = "Vigie-Original-Subject";
/// Its sequence in the event stream.
pub const ORIGINAL_SEQUENCE: &str = "Vigie-Original-Sequence";

/// A site to consume.
#[derive(Clone, Debug)]
pub struct SiteSource {
    /// Site id.
    pub site: String,
    /// Its day, for the start of recovery.
    pub calendar: DayCalendar,
}

/// The consumer of every configured site.
pub struct Ingest {
    config: Arc<NatsConfig>,
    context: Context,
    sites: Vec<SiteSource>,
    engine: EngineHandle,
    engine_metrics: EngineMetrics,
    metrics: IngestMetrics,
    clock: Clock,
    ready: Arc<watch::Sender<BTreeMap<String, bool>>>,
    snapshots: Option<SnapshotStore>,
}

impl std::fmt::Debug for Ingest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingest")
            .field("sites", &self.sites)
            .finish_non_exhaustive()
    }
}

/// How one message was read.
enum Read {
    /// Decoded: its index in the batch sent to the engine.
    Event(usize),
    /// Refused before the engine.
    Refused(Rejection),
}

/// A batch waiting for the engine's outcomes, in fetch order.
struct InFlight {
    messages: Vec<Message>,
    reads: Vec<Read>,
    outcomes: Option<oneshot::Receiver<Vec<Outcome>>>,
    /// The last message said nothing more was pending: recovery is over once this is applied.
    caught_up: bool,
    /// Read by the durable consumer (acknowledged), not by the recovery (not acknowledged).
    acknowledge: bool,
    /// The stream sequence of its last message.
    last_sequence: u64,
}

impl Ingest {
    /// Prepares the consumption of `sites` (ensuring the streams exist).
    pub async fn new(
        config: NatsConfig,
        context: Context,
        sites: Vec<SiteSource>,
        engine: EngineHandle,
        engine_metrics: EngineMetrics,
        metrics: IngestMetrics,
        clock: Clock,
    ) -> Result<Ingest, IngestError> {
        ensure_stream(&context, &config.stream).await?;
        ensure_dead_letters(&context, &config).await?;
        let snapshots = if config.snapshots.enabled {
            match SnapshotStore::open(&context, &config).await {
                Ok(store) => Some(store),
                Err(error) => {
                    // Snapshots only make starts faster: without them the day is replayed.
                    warn!(%error, "snapshots disabled: every start replays the day");
                    None
                }
            }
        } else {
            None
        };
        let ready = watch::Sender::new(sites.iter().map(|s| (s.site.clone(), false)).collect());
        let ready = Arc::new(ready);
        Ok(Ingest {
            config: Arc::new(config),
            context,
            sites,
            engine,
            engine_metrics,
            metrics,
            clock,
            ready,
            snapshots,
        })
    }

    /// Consumes one site (recovery of its day, then live) until `shutdown` is cancelled, then
    /// finishes what is in flight: what [`Ingest::run`] does for each of its sites, for an
    /// instance that takes sites over and gives them up one by one. The site is not ready
    /// until it has caught up.
    pub fn site(
        &self,
        source: SiteSource,
        shutdown: CancellationToken,
    ) -> impl Future<Output = Result<(), IngestError>> + Send + 'static {
        self.ready.send_modify(|ready| {
            ready.insert(source.site.clone(), false);
        });
        let site = SiteIngest {
            config: self.config.clone(),
            context: self.context.clone(),
            source,
            engine: self.engine.clone(),
            engine_metrics: self.engine_metrics.clone(),
            metrics: self.metrics.clone(),
            clock: self.clock.clone(),
            ready: self.ready.clone(),
            snapshots: self.snapshots.clone(),
            handled: watch::Sender::new(0),
            stream_created: std::sync::Mutex::new(None),
        };
        site.run(shutdown)
    }

    /// Leaves a site out of readiness (consumed by another instance now).
    pub fn forget_site(&self, site: &str) {
        self.ready.send_modify(|ready| {
            ready.remove(site);
        });
    }

    /// Per site, whether it has caught up with its stream (recovery over).
    pub fn ready(&self) -> watch::Receiver<BTreeMap<String, bool>> {
        self.ready.subscribe()
    }

    /// Consumes until `shutdown` is cancelled; then finishes what is in flight (the engine's
    /// outcomes are awaited and acknowledged) and returns.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), IngestError> {
        let mut tasks = tokio::task::JoinSet::new();
        for source in self.sites.clone() {
            tasks.spawn(self.site(source, shutdown.clone()));
        }
        let mut result = Ok(());
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    shutdown.cancel();
                    result = Err(error);
                }
                Err(panicked) => {
                    shutdown.cancel();
                    result = Err(IngestError::Consumer {
                        consumer: "site task".into(),
                        message: panicked.to_string(),
                    });
                }
            }
        }
        result
    }
}

/// Creates the dead-letter stream when missing (if streams may be created).
async fn ensure_dead_letters(context: &Context, config: &NatsConfig) -> Result<(), IngestError> {
    let stream = StreamConfig {
        name: config.dead_letter_stream.clone(),
        subject_prefix: config.dead_letter_prefix.clone(),
        ..config.stream.clone()
    };
    let mut settings = stream_config(&stream);
    settings.description = Some("Events Vigie refused, with the reason in headers".to_owned());
    // Every start replays the day: a refused event dead-lettered again is stored once.
    settings.duplicate_window = Duration::from_secs(24 * 3600);
    if config.stream.create {
        get_or_create_stream(context, settings)
            .await
            .map_err(|e| IngestError::Stream {
                stream: stream.name.clone(),
                message: e.to_string(),
            })?;
    }
    Ok(())
}

struct SiteIngest {
    config: Arc<NatsConfig>,
    context: Context,
    source: SiteSource,
    engine: EngineHandle,
    engine_metrics: EngineMetrics,
    metrics: IngestMetrics,
    clock: Clock,
    ready: Arc<watch::Sender<BTreeMap<String, bool>>>,
    snapshots: Option<SnapshotStore>,
    /// The stream sequence up to which the acknowledging task has handled the messages
    /// (acknowledged, or dead-lettered): a snapshot holding events up to a sequence is saved
    /// only once they are, so that a start from it loses no dead letter.
    handled: watch::Sender<u64>,
    /// When the event stream was created, as first seen: a stream deleted and created again
    /// numbers its messages afresh, whatever their count.
    stream_created: std::sync::Mutex<Option<String>>,
}

/// Saving a site's snapshots while it is consumed: one at a time, at most every
/// `[nats.snapshots] every`.
struct Saver {
    last_request: tokio::time::Instant,
    /// The sequence of the last snapshot asked for.
    requested: u64,
    saving: Option<tokio::task::JoinHandle<()>>,
}

/// Why the event stream must be read again from its start, if it must: it was deleted and
/// created again since it was first seen (`known`, its creation then), or its last sequence is
/// behind the last message read (`read_up_to`).
fn reset(
    known: Option<&str>,
    created: &str,
    last_in_stream: u64,
    read_up_to: u64,
) -> Option<String> {
    if known.is_some_and(|known| known != created) {
        return Some(format!(
            "the event stream was deleted and created again (at {created}): the events of the first are gone"
        ));
    }
    (last_in_stream < read_up_to).then(|| {
        format!(
            "the event stream was reset (its last sequence is {last_in_stream}, Vigie had read up to {read_up_to})"
        )
    })
}

/// Deliveries a consumer sent that never arrived: a consumer numbers every delivery (first
/// ones and redeliveries alike) 1, 2, 3..., so a number beyond the next one expected means the
/// ones between were lost on the way (a server or a connection lost meanwhile: core NATS
/// delivers at most once). A number at or before the last one is a delivery repeated (by a new
/// consumer leader whose replicated state was behind): nothing lost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct LostDeliveries {
    /// The index of the first message received after the lost ones.
    at: usize,
    /// The consumer sequence expected there.
    expected: u64,
    /// The consumer sequence received instead.
    received: u64,
}

/// The first place where `consumer_sequences` (of a batch, in order of arrival; `None` for a
/// message without JetStream metadata) skip deliveries, after `delivered` (the last consumer
/// sequence received before the batch, 0 for a new consumer), which follows what was received
/// up to there.
fn lost_deliveries(
    delivered: &mut u64,
    consumer_sequences: impl IntoIterator<Item = Option<u64>>,
) -> Option<LostDeliveries> {
    for (at, sequence) in consumer_sequences.into_iter().enumerate() {
        let Some(sequence) = sequence else { continue };
        let expected = *delivered + 1;
        if sequence > expected {
            return Some(LostDeliveries {
                at,
                expected,
                received: sequence,
            });
        }
        *delivered = sequence;
    }
    None
}

/// Decodes a message's payload: protobuf when its header says so, JSON otherwise.
pub fn decode_message(headers: Option<&HeaderMap>, payload: &[u8]) -> Result<Event, Rejection> {
    let protobuf = headers
        .and_then(|h| h.get(CONTENT_TYPE))
        .is_some_and(|value| value.as_str().eq_ignore_ascii_case(PROTOBUF));
    if protobuf {
        vigie_proto::decode_protobuf(payload, DEFAULT_MAX_EVENT_BYTES)
    } else {
        decode_json(payload, DEFAULT_MAX_EVENT_BYTES)
    }
}

impl SiteIngest {
    fn durable_name(&self) -> String {
        format!(
            "{}-{}",
            self.config.consumer.durable_prefix, self.source.site
        )
    }

    async fn consumer(
        &self,
        deliver: DeliverPolicy,
    ) -> Result<jetstream::consumer::Consumer<pull::Config>, IngestError> {
        let name = self.durable_name();
        let error = |message: String| IngestError::Consumer {
            consumer: name.clone(),
            message,
        };
        let stream = self
            .context
            .get_stream(&self.config.stream.name)
            .await
            .map_err(|e| error(e.to_string()))?;
        // A start always rebuilds the day from the stream: the consumer starts over from there.
        match stream.delete_consumer(&name).await {
            Ok(_) => debug!(consumer = %name, "replaced the durable consumer"),
            Err(e) => debug!(consumer = %name, error = %e, "no durable consumer to replace"),
        }
        let consumer = stream
            .create_consumer(pull::Config {
                durable_name: Some(name.clone()),
                description: Some(format!("Vigie, site {}", self.source.site)),
                deliver_policy: deliver,
                // One acknowledgement per batch covers every message before it.
                ack_policy: AckPolicy::All,
                ack_wait: self.config.consumer.ack_wait.0,
                max_ack_pending: self.config.consumer.max_ack_pending,
                filter_subject: self.config.stream.site_filter(&self.source.site),
                max_batch: i64::try_from(self.config.consumer.batch).unwrap_or(i64::MAX),
                ..Default::default()
            })
            .await
            .map_err(|e| error(e.to_string()))?;
        Ok(consumer)
    }

    fn recovery_start(&self) -> Timestamp {
        let day = self.source.calendar.day_of((self.clock)());
        day.start - self.config.consumer.recovery_lookback.millis()
    }

    async fn set_feed(&self, feed: SiteFeed) {
        // The engine stops only at shutdown, after the sources: nothing to report to then.
        let _ = self.engine.set_feed(&self.source.site, feed).await;
    }

    async fn run(self, shutdown: CancellationToken) -> Result<(), IngestError> {
        let site = self.source.site.clone();
        // Its creation, to tell it from a stream created again later (a failure is seen then).
        let _ = self.stream_state(0).await;
        let start = self.recovery_start();
        info!(site = %site, from = %start, "recovering the day from the event stream");
        self.set_feed(SiteFeed::recovering()).await;
        let start_time = chrono::DateTime::from_timestamp_millis(start.0).unwrap_or_default();
        let shared = Arc::new(self);
        let (in_flight_tx, in_flight) = mpsc::channel::<InFlight>(8);
        let acker = tokio::spawn(shared.clone().acknowledge(in_flight, shutdown.clone()));
        let mut last_sequence: u64 = match &shared.snapshots {
            Some(store) => shared.restore(store, start).await,
            None => 0,
        };
        let mut saver = Saver {
            last_request: tokio::time::Instant::now(),
            requested: last_sequence,
            saving: None,
        };
        let recovered = shared
            .recover(start_time, &in_flight_tx, &mut last_sequence, &shutdown)
            .await?;
        // Live: the durable consumer goes on after the last message the recovery read.
        let deliver = if last_sequence > 0 {
            DeliverPolicy::ByStartSequence {
                start_sequence: last_sequence + 1,
            }
        } else {
            DeliverPolicy::ByStartTime { start_time }
        };
        let mut consumer = if recovered {
            Some(shared.consumer(deliver).await?)
        } else {
            None
        };
        let mut backoff = Duration::from_millis(100);
        // The last delivery received from the consumer (its consumer sequence).
        let mut delivered = 0;
        'consume: while let Some(live) = consumer.as_ref().filter(|_| !shutdown.is_cancelled()) {
            let stream = live
                .stream()
                .max_messages_per_batch(shared.config.consumer.batch)
                .heartbeat(Duration::from_secs(5))
                .expires(Duration::from_secs(30))
                .messages()
                .await;
            let mut messages = match stream {
                Ok(messages) => messages.ready_chunks(shared.config.consumer.batch),
                Err(error) => {
                    shared.metrics.fetch_errors.inc();
                    warn!(site = %site, %error, "cannot pull from the event stream; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => break 'consume,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            loop {
                let chunk = tokio::select! {
                    _ = shutdown.cancelled() => break 'consume,
                    chunk = messages.next() => chunk,
                };
                let Some(chunk) = chunk else {
                    continue 'consume;
                };
                let mut batch = Vec::with_capacity(chunk.len());
                let mut restart = None;
                for item in chunk {
                    match item {
                        Ok(message) => batch.push(message),
                        Err(error) => {
                            shared.metrics.fetch_errors.inc();
                            match error.kind() {
                                MessagesErrorKind::ConsumerDeleted => {
                                    restart = Some("the consumer was deleted")
                                }
                                MessagesErrorKind::MissingHeartbeat
                                | MessagesErrorKind::NoResponders => {
                                    // A consumer deleted with its stream does not always
                                    // say so: then heartbeats just stop.
                                    if shared.consumer_gone().await {
                                        restart = Some("the consumer or its stream is gone");
                                    } else {
                                        warn!(site = %site, %error, "the event stream is not answering; waiting for it");
                                    }
                                }
                                _ => {
                                    warn!(site = %site, %error, "pulling from the event stream failed; retrying");
                                    restart = restart.or(Some("pulling failed"));
                                }
                            }
                        }
                    }
                }
                if !batch.is_empty() {
                    backoff = Duration::from_millis(100);
                    let (in_flight, lost) = shared
                        .read_batch(batch, &mut last_sequence, &mut delivered)
                        .await?;
                    if lost {
                        restart = Some("deliveries were lost on the way");
                    }
                    if in_flight_tx.send(in_flight).await.is_err() {
                        break 'consume;
                    }
                    shared.save_when_due(&mut saver, last_sequence).await?;
                }
                if let Some(why) = restart {
                    warn!(site = %site, why, "resuming the consumer after the last message read");
                    tokio::select! {
                        _ = shutdown.cancelled() => break 'consume,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    consumer = match shared.resume(&mut last_sequence).await {
                        Ok(resumed) => {
                            delivered = 0;
                            Some(resumed)
                        }
                        Err(error) => {
                            warn!(site = %site, %error, "cannot recreate the consumer; retrying");
                            continue;
                        }
                    };
                    continue 'consume;
                }
            }
        }
        drop(in_flight_tx);
        let acknowledged = match acker.await {
            Ok(result) => result,
            Err(panicked) => Err(IngestError::Consumer {
                consumer: shared.durable_name(),
                message: panicked.to_string(),
            }),
        };
        if acknowledged.is_ok() && recovered {
            // What was read is applied and acknowledged: saved once more, the next start
            // replays nothing of it.
            shared.save_at_stop(saver, last_sequence).await;
        }
        acknowledged
    }

    /// Restores the site's snapshot in the engine if there is a usable one; returns the stream
    /// sequence of its last event (0 when the day must be replayed from its start).
    async fn restore(&self, store: &SnapshotStore, start: Timestamp) -> u64 {
        let site = &self.source.site;
        let started = std::time::Instant::now();
        let (outcome, sequence) = match store.load(site).await {
            Ok(None) => {
                info!(site = %site, "no snapshot of the site: replaying the day");
                (RestoreOutcome::None, 0)
            }
            Err(error) => {
                warn!(site = %site, %error, "cannot read the site's snapshot: replaying the day");
                (RestoreOutcome::Failed, 0)
            }
            Ok(Some(snapshot)) => match self.usable(&snapshot, start).await {
                Err(why) => {
                    info!(site = %site, why = %why, "the site's snapshot is not usable: replaying the day");
                    (RestoreOutcome::Unusable, 0)
                }
                Ok(()) => {
                    let sequence = snapshot.sequence;
                    let as_of = snapshot.as_of;
                    match self.engine.restore_site(site, snapshot.bytes).await {
                        Ok(Ok(())) => {
                            info!(site = %site, sequence, as_of = %as_of, took = ?started.elapsed(), "restored the site's snapshot: replaying the events after it");
                            (RestoreOutcome::Restored, sequence)
                        }
                        Ok(Err(why)) => {
                            info!(site = %site, why = %why, "the site's snapshot is not usable: replaying the day");
                            (RestoreOutcome::Unusable, 0)
                        }
                        // The engine stopped: the start ends at the next step.
                        Err(_) => (RestoreOutcome::Failed, 0),
                    }
                }
            },
        };
        self.metrics.snapshot_restore(outcome);
        sequence
    }

    /// Why a snapshot cannot be used to start from, if it cannot.
    async fn usable(&self, snapshot: &StoredSnapshot, start: Timestamp) -> Result<(), String> {
        if snapshot.as_of < start {
            return Err(format!(
                "taken at {}, before the replay of the day would start ({start})",
                snapshot.as_of
            ));
        }
        if snapshot.stream != self.config.stream.name {
            return Err(format!(
                "taken from stream {}, not {}",
                snapshot.stream, self.config.stream.name
            ));
        }
        let mut stream = self
            .context
            .get_stream(&self.config.stream.name)
            .await
            .map_err(|e| format!("cannot read the event stream: {e}"))?;
        let info = stream
            .info()
            .await
            .map_err(|e| format!("cannot read the event stream: {e}"))?;
        if stream_created(info) != snapshot.stream_created {
            return Err(format!(
                "taken from a stream created at {}; this one was created at {}",
                snapshot.stream_created,
                stream_created(info)
            ));
        }
        if info.state.last_sequence < snapshot.sequence {
            return Err(format!(
                "it holds events up to sequence {}, the stream ends at {}",
                snapshot.sequence, info.state.last_sequence
            ));
        }
        if info.state.first_sequence > snapshot.sequence + 1 {
            return Err(format!(
                "the stream no longer holds the events after it (it starts at sequence {})",
                info.state.first_sequence
            ));
        }
        Ok(())
    }

    /// Asks the engine for the site's state when a snapshot is due, and saves it in the
    /// background once the events it holds are all handled. One save at a time.
    async fn save_when_due(
        self: &Arc<Self>,
        saver: &mut Saver,
        last_sequence: u64,
    ) -> Result<(), IngestError> {
        let Some(store) = &self.snapshots else {
            return Ok(());
        };
        // After a reset of the stream, sequences start over: snapshots follow them.
        saver.requested = saver.requested.min(last_sequence);
        let due = saver.last_request.elapsed() >= self.config.snapshots.every.0
            && last_sequence > saver.requested
            && saver.saving.as_ref().is_none_or(|task| task.is_finished());
        if !due {
            return Ok(());
        }
        saver.last_request = tokio::time::Instant::now();
        saver.requested = last_sequence;
        let snapshot = self
            .engine
            .snapshot_site(&self.source.site)
            .await
            .map_err(|_| IngestError::EngineStopped)?;
        let (site, store) = (self.clone(), store.clone());
        saver.saving = Some(tokio::spawn(async move {
            if let Ok(Some(snapshot)) = snapshot.await {
                site.save(&store, snapshot, last_sequence).await;
            }
        }));
        Ok(())
    }

    /// The last save, after the consumer stopped and everything read was acknowledged.
    async fn save_at_stop(self: &Arc<Self>, saver: Saver, last_sequence: u64) {
        let Some(store) = &self.snapshots else {
            return;
        };
        if let Some(mut saving) = saver.saving {
            // The earlier save finishes first: the last one written is the newest.
            let timeout = self.config.request_timeout.0;
            if tokio::time::timeout(timeout, &mut saving).await.is_err() {
                saving.abort();
            }
        }
        // Refused events that could not be dead-lettered before the stop are read again at
        // the next start: the state holding them is not saved.
        if last_sequence <= saver.requested || *self.handled.borrow() < last_sequence {
            return;
        }
        let Ok(snapshot) = self.engine.snapshot_site(&self.source.site).await else {
            return;
        };
        let save = async {
            if let Ok(Some(snapshot)) = snapshot.await {
                self.save(store, snapshot, last_sequence).await;
            }
        };
        if tokio::time::timeout(self.config.request_timeout.0, save)
            .await
            .is_err()
        {
            warn!(site = %self.source.site, "the last snapshot was not saved in time: the next start replays more");
        }
    }

    /// Saves a snapshot holding the events up to `sequence`, once they are all handled.
    async fn save(
        &self,
        store: &SnapshotStore,
        snapshot: vigie_engine::SiteSnapshot,
        sequence: u64,
    ) {
        let site = &self.source.site;
        let mut handled = self.handled.subscribe();
        if handled
            .wait_for(|handled| *handled >= sequence)
            .await
            .is_err()
        {
            return;
        }
        // The stream the events were read from, as last seen: a snapshot is only restored on it.
        let known = self
            .stream_created
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let Some(stream_created) = known else {
            self.metrics.snapshot_save_errors.inc();
            warn!(site = %site, "the event stream was never read: snapshot not saved");
            return;
        };
        let stored = StoredSnapshot {
            sequence,
            stream: self.config.stream.name.clone(),
            stream_created,
            as_of: snapshot.as_of,
            bytes: snapshot.bytes,
        };
        let started = std::time::Instant::now();
        match store.save(site, &stored).await {
            Ok(bytes) => {
                self.metrics.snapshots_saved.inc();
                self.metrics
                    .snapshot_bytes
                    .set(i64::try_from(bytes).unwrap_or(i64::MAX));
                debug!(site = %site, sequence, bytes, took = ?started.elapsed(), "snapshot saved");
            }
            Err(error) => {
                self.metrics.snapshot_save_errors.inc();
                warn!(site = %site, %error, "cannot save the site's snapshot: the previous one stays");
            }
        }
    }

    /// Replays the day through an ephemeral consumer that needs no acknowledgements (the
    /// state is rebuilt from the stream at every start anyway), until nothing is pending.
    /// False if stopped before the end.
    async fn recover(
        &self,
        start_time: chrono::DateTime<chrono::Utc>,
        in_flight: &mpsc::Sender<InFlight>,
        last_sequence: &mut u64,
        shutdown: &CancellationToken,
    ) -> Result<bool, IngestError> {
        let mut backoff = Duration::from_millis(100);
        loop {
            let deliver = if *last_sequence > 0 {
                DeliverPolicy::ByStartSequence {
                    start_sequence: *last_sequence + 1,
                }
            } else {
                DeliverPolicy::ByStartTime { start_time }
            };
            let name = format!("recovery of {}", self.source.site);
            let error = |message: String| IngestError::Consumer {
                consumer: name.clone(),
                message,
            };
            let stream = self
                .context
                .get_stream(&self.config.stream.name)
                .await
                .map_err(|e| error(e.to_string()))?;
            let mut consumer = stream
                .create_consumer(pull::Config {
                    description: Some(format!("Vigie recovering site {}", self.source.site)),
                    deliver_policy: deliver,
                    ack_policy: AckPolicy::None,
                    filter_subject: self.config.stream.site_filter(&self.source.site),
                    max_batch: i64::try_from(self.config.consumer.batch).unwrap_or(i64::MAX),
                    inactive_threshold: Duration::from_secs(60),
                    ..Default::default()
                })
                .await
                .map_err(|e| error(e.to_string()))?;
            let pending = consumer
                .info()
                .await
                .map_err(|e| error(e.to_string()))?
                .num_pending;
            if pending == 0 {
                self.caught_up().await;
                return Ok(true);
            }
            let messages = consumer
                .stream()
                .max_messages_per_batch(self.config.consumer.batch)
                .heartbeat(Duration::from_secs(5))
                .expires(Duration::from_secs(30))
                .messages()
                .await;
            let mut messages = match messages {
                Ok(messages) => messages.ready_chunks(self.config.consumer.batch),
                Err(e) => {
                    warn!(site = %self.source.site, error = %e, "recovery cannot pull; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            let mut delivered = 0;
            'pull: loop {
                let chunk = tokio::select! {
                    _ = shutdown.cancelled() => return Ok(false),
                    chunk = messages.next() => chunk,
                };
                let Some(chunk) = chunk else { break 'pull };
                let mut batch = Vec::with_capacity(chunk.len());
                let mut failed = false;
                for item in chunk {
                    match item {
                        Ok(message) => batch.push(message),
                        Err(e) => {
                            self.metrics.fetch_errors.inc();
                            warn!(site = %self.source.site, error = %e, "recovery pull failed; resuming");
                            failed = true;
                        }
                    }
                }
                if !batch.is_empty() {
                    let (mut read, lost) = self
                        .read_batch(batch, last_sequence, &mut delivered)
                        .await?;
                    failed |= lost;
                    read.acknowledge = false;
                    let done = read.caught_up;
                    if in_flight.send(read).await.is_err() {
                        return Ok(false);
                    }
                    if done {
                        return Ok(true);
                    }
                }
                if failed {
                    break 'pull;
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    /// A new consumer starting after `last_sequence`, checking whether the stream lost or
    /// reset messages meanwhile. After a reset, it starts from the stream's start, and
    /// `last_sequence` starts over with it.
    async fn resume(
        &self,
        last_sequence: &mut u64,
    ) -> Result<jetstream::consumer::Consumer<pull::Config>, IngestError> {
        let (state, reset) =
            self.stream_state(*last_sequence)
                .await
                .map_err(|message| IngestError::Stream {
                    stream: self.config.stream.name.clone(),
                    message,
                })?;
        if let Some(reset) = reset {
            self.report_gap(reset).await;
            let consumer = self.consumer(DeliverPolicy::All).await?;
            *last_sequence = 0;
            return Ok(consumer);
        }
        let last_sequence = *last_sequence;
        if state.first_sequence > last_sequence + 1 {
            self.report_gap(format!(
                "the event stream dropped messages {}..{} before Vigie read them",
                last_sequence + 1,
                state.first_sequence - 1
            ))
            .await;
        }
        self.consumer(DeliverPolicy::ByStartSequence {
            start_sequence: last_sequence + 1,
        })
        .await
    }

    /// Whether the site's durable consumer no longer exists (deleted, or its stream deleted),
    /// as the server says; not when the server does not answer.
    async fn consumer_gone(&self) -> bool {
        match self.context.get_stream(&self.config.stream.name).await {
            Err(error) => matches!(
                error.kind(),
                GetStreamErrorKind::JetStream(error) if error.error_code() == ErrorCode::STREAM_NOT_FOUND
            ),
            Ok(stream) => match stream.consumer_info(self.durable_name()).await {
                Err(error) => matches!(
                    error.kind(),
                    ConsumerInfoErrorKind::NotFound | ConsumerInfoErrorKind::StreamNotFound
                ),
                Ok(_) => false,
            },
        }
    }

    /// A message at or before the last one read came as if new: the stream was reset (its
    /// sequences started over: a gap, reported), or a message read already came again (a
    /// consumer recreated meanwhile, by this instance or by another taking the site over:
    /// deduplication absorbs it, counted as a redelivery).
    ///
    /// Messages come again mostly when the servers are in trouble (a consumer leader lost),
    /// when the stream may not answer at once either: it is asked again for a while before
    /// the figures are marked incomplete for not knowing.
    ///
    /// True when the stream was reset: the sequences read from now on are of its new numbering.
    async fn check_went_back(&self, read_up_to: u64, now_at: u64) -> bool {
        let mut wait = Duration::from_millis(250);
        let mut attempts_left = 6;
        loop {
            match self.stream_state(read_up_to).await {
                Ok((_, None)) => {
                    self.metrics.redeliveries.inc();
                    debug!(site = %self.source.site, read_up_to, now_at, "a message read already came again");
                }
                Ok((_, Some(reset))) => {
                    self.report_gap(reset).await;
                    return true;
                }
                Err(error) if attempts_left > 0 => {
                    attempts_left -= 1;
                    debug!(site = %self.source.site, %error, "the event stream went back and does not answer yet; asking again");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(5));
                    continue;
                }
                Err(error) => {
                    self.report_gap(format!(
                        "the event stream went back from sequence {read_up_to} to {now_at}, and cannot be read to know why: {error}"
                    ))
                    .await;
                }
            }
            return false;
        }
    }

    /// The event stream's state, and why it must be read again from its start if it must
    /// (see [`reset`]: `read_up_to` is the last message read). Remembers when it was created.
    async fn stream_state(&self, read_up_to: u64) -> Result<(StreamState, Option<String>), String> {
        let mut stream = self
            .context
            .get_stream(&self.config.stream.name)
            .await
            .map_err(|e| e.to_string())?;
        let info = stream.info().await.map_err(|e| e.to_string())?;
        let created = stream_created(info);
        let known = self
            .stream_created
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .replace(created.clone());
        let reset = reset(
            known.as_deref(),
            &created,
            info.state.last_sequence,
            read_up_to,
        );
        Ok((info.state.clone(), reset))
    }

    async fn report_gap(&self, gap: String) {
        warn!(site = %self.source.site, gap = %gap, "events may be missing: figures are marked incomplete");
        self.metrics.gaps.inc();
        let recovering = !self
            .ready
            .borrow()
            .get(&self.source.site)
            .copied()
            .unwrap_or(false);
        self.set_feed(SiteFeed {
            recovering,
            gap: Some(gap),
            elsewhere: None,
        })
        .await;
    }

    /// Decodes a batch and hands the events to the engine (waiting while it is busy).
    ///
    /// Only the messages received before deliveries lost on the way are kept, if some were
    /// lost (true then): the consumer must start again after the last message kept (the ones
    /// dropped come again; with acknowledgements that cover every message before, reading on
    /// would acknowledge the lost ones and lose them for good). `delivered` is the last
    /// consumer sequence received (0 for a new consumer).
    async fn read_batch(
        &self,
        mut messages: Vec<Message>,
        last_sequence: &mut u64,
        delivered: &mut u64,
    ) -> Result<(InFlight, bool), IngestError> {
        let infos: Vec<_> = messages.iter().map(|message| message.info().ok()).collect();
        let lost = lost_deliveries(
            delivered,
            infos
                .iter()
                .map(|info| info.as_ref().map(|info| info.consumer_sequence)),
        );
        let kept = lost.map_or(messages.len(), |lost| lost.at);
        if let Some(lost) = lost {
            self.metrics
                .lost_deliveries
                .inc_by(lost.received - lost.expected);
            warn!(
                site = %self.source.site,
                lost = %format!("deliveries {} to {} of the consumer never arrived", lost.expected, lost.received - 1),
                "events were lost on the way from the server; reading them again"
            );
        }
        let mut events = Vec::with_capacity(kept);
        let mut reads = Vec::with_capacity(kept);
        let mut caught_up = false;
        let mut went_back = None;
        for (message, info) in messages.iter().zip(&infos).take(kept) {
            self.metrics.received.inc();
            if let Some(info) = info {
                if info.delivered > 1 {
                    self.metrics.redeliveries.inc();
                } else if info.stream_sequence <= *last_sequence {
                    went_back.get_or_insert((*last_sequence, info.stream_sequence));
                }
                *last_sequence = (*last_sequence).max(info.stream_sequence);
                self.metrics
                    .lag
                    .set(i64::try_from(info.pending).unwrap_or(i64::MAX));
                caught_up = info.pending == 0;
            }
            match decode_message(message.headers.as_ref(), &message.payload) {
                Ok(event) if event.site != self.source.site => {
                    reads.push(Read::Refused(Rejection::field(
                        RejectReason::InvalidField,
                        "site",
                        format!(
                            "event of site {:?} published on {}, the subject of site {:?}",
                            event.site, message.subject, self.source.site
                        ),
                    )))
                }
                Ok(event) => {
                    reads.push(Read::Event(events.len()));
                    events.push(event);
                }
                Err(rejection) => reads.push(Read::Refused(rejection)),
            }
        }
        if let Some((read_up_to, now_at)) = went_back
            && self.check_went_back(read_up_to, now_at).await
        {
            // The new numbering: the batch is of the stream as it is now.
            *last_sequence = infos[..kept]
                .iter()
                .rev()
                .find_map(Option::as_ref)
                .map_or(0, |info| info.stream_sequence);
        }
        drop(infos);
        messages.truncate(kept);
        let outcomes = if events.is_empty() {
            None
        } else {
            Some(
                self.engine
                    .submit(events)
                    .await
                    .map_err(|_| IngestError::EngineStopped)?,
            )
        };
        let in_flight = InFlight {
            messages,
            reads,
            outcomes,
            caught_up,
            acknowledge: true,
            last_sequence: *last_sequence,
        };
        Ok((in_flight, lost.is_some()))
    }

    async fn caught_up(&self) {
        let already = self
            .ready
            .borrow()
            .get(&self.source.site)
            .copied()
            .unwrap_or(false);
        if !already {
            info!(site = %self.source.site, "recovery complete: live");
            self.ready.send_modify(|ready| {
                ready.insert(self.source.site.clone(), true);
            });
            self.set_feed(SiteFeed::default()).await;
        }
    }

    /// Takes the engine's outcomes in order: dead-letters what it refused (terminating each),
    /// then acknowledges the batch with one acknowledgement of its last accepted message (the
    /// consumer acknowledges everything up to it). A refused message that cannot be kept as a
    /// dead letter holds the acknowledgements back until it can: nothing refused is lost.
    async fn acknowledge(
        self: Arc<Self>,
        mut in_flight: mpsc::Receiver<InFlight>,
        shutdown: CancellationToken,
    ) -> Result<(), IngestError> {
        while let Some(batch) = in_flight.recv().await {
            let outcomes = match batch.outcomes {
                Some(outcomes) => outcomes.await.map_err(|_| IngestError::EngineStopped)?,
                None => Vec::new(),
            };
            let mut last_accepted = None;
            for (message, read) in batch.messages.iter().zip(&batch.reads) {
                let refused = match read {
                    Read::Event(index) => match outcomes.get(*index) {
                        Some(Outcome::Rejected(rejection)) => Some(rejection.clone()),
                        _ => None,
                    },
                    Read::Refused(rejection) => {
                        self.engine_metrics.count_rejection(rejection.reason);
                        Some(rejection.clone())
                    }
                };
                match refused {
                    None => last_accepted = Some(message),
                    Some(rejection) => {
                        let mut backoff = Duration::from_millis(100);
                        while !self.dead_letter(message, &rejection).await {
                            tokio::select! {
                                // Nothing of this batch or after it is acknowledged: the
                                // server delivers it again to the next start.
                                _ = shutdown.cancelled() => return Ok(()),
                                _ = tokio::time::sleep(backoff) => {}
                            }
                            backoff = (backoff * 2).min(Duration::from_secs(5));
                        }
                        if batch.acknowledge {
                            self.ack(message, AckKind::Term).await;
                        }
                    }
                }
            }
            if let Some(message) = last_accepted.filter(|_| batch.acknowledge) {
                self.ack(message, AckKind::Ack).await;
            }
            self.handled.send_replace(batch.last_sequence);
            if batch.caught_up {
                self.caught_up().await;
            }
        }
        Ok(())
    }

    async fn ack(&self, message: &Message, kind: AckKind) {
        if let Err(error) = message.ack_with(kind).await {
            // The server delivers it again after ack_wait: deduplication absorbs it.
            self.metrics.ack_errors.inc();
            debug!(site = %self.source.site, %error, "acknowledgement not sent");
        }
    }

    /// Publishes a refused message to the dead-letter subject with the reason in headers;
    /// true once the dead-letter stream stored it.
    async fn dead_letter(&self, message: &Message, rejection: &Rejection) -> bool {
        let subject = format!("{}.{}", self.config.dead_letter_prefix, self.source.site);
        let mut headers = message.headers.clone().unwrap_or_default();
        headers.insert(REJECT_REASON, rejection.reason.as_str());
        if let Some(field) = rejection.field {
            headers.insert(REJECT_FIELD, field);
        }
        // Header values are one line.
        let detail: String = rejection
            .detail
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        headers.insert(REJECT_DETAIL, detail.as_str());
        headers.insert(ORIGINAL_SUBJECT, message.subject.as_str());
        if let Ok(info) = message.info() {
            headers.insert(ORIGINAL_SEQUENCE, info.stream_sequence.to_string().as_str());
            // The same message dead-lettered twice (redelivery) is stored once.
            headers.insert(
                async_nats::header::NATS_MESSAGE_ID,
                format!("dlq-{}", info.stream_sequence).as_str(),
            );
        }
        let stored = match self
            .context
            .publish_with_headers(subject.clone(), headers, message.payload.clone())
            .await
        {
            Ok(ack) => ack.await.map(|_| ()).map_err(|e| e.to_string()),
            Err(error) => Err(error.to_string()),
        };
        match stored {
            Ok(()) => {
                self.metrics.dead_lettered(rejection.reason);
                info!(site = %self.source.site, reason = %rejection.reason, detail = %rejection.detail, "event dead-lettered");
                true
            }
            Err(error) => {
                self.metrics.dead_letter_errors.inc();
                warn!(site = %self.source.site, %subject, %error, "cannot dead-letter a refused event; retrying before acknowledging further");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{LostDeliveries, lost_deliveries, reset};

    #[test]
    fn a_stream_created_again_is_a_reset_even_once_it_has_more_messages() {
        let first = "2026-11-28T00:00:00+00:00";
        let again = "2026-11-28T01:00:00+00:00";
        let recreated = reset(Some(first), again, 5_000, 1_496).unwrap();
        assert!(
            recreated.contains("deleted and created again"),
            "{recreated}"
        );
        let behind = reset(Some(first), first, 744, 1_496).unwrap();
        assert!(behind.contains("its last sequence is 744"), "{behind}");
        assert_eq!(reset(Some(first), first, 1_496, 1_496), None);
        assert_eq!(reset(None, again, 1_496, 1_000), None, "first seen now");
    }

    #[test]
    fn deliveries_skipped_by_the_consumer_sequence_are_lost_ones() {
        let mut delivered = 0;
        assert_eq!(
            lost_deliveries(&mut delivered, [Some(1), Some(2), None, Some(3)]),
            None
        );
        assert_eq!(delivered, 3);
        let lost = lost_deliveries(&mut delivered, [Some(4), Some(7), Some(8)]);
        assert_eq!(
            lost,
            Some(LostDeliveries {
                at: 1,
                expected: 5,
                received: 7
            })
        );
        assert_eq!(delivered, 4, "up to the last delivery before the lost ones");

        // A new consumer leader repeating deliveries loses nothing; numbering goes on from there.
        let mut delivered = 10;
        assert_eq!(
            lost_deliveries(&mut delivered, [Some(8), Some(9), Some(10), Some(11)]),
            None
        );
        assert_eq!(delivered, 11);

        // The first delivery of a new consumer is number 1.
        let mut delivered = 0;
        assert_eq!(
            lost_deliveries(&mut delivered, [Some(2)]),
            Some(LostDeliveries {
                at: 0,
                expected: 1,
                received: 2
            })
        );
    }
}
