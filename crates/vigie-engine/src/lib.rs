//! The engine: the single task that owns Vigie's processor.
//!
//! Events come in batches through a bounded channel (a full channel makes the sender wait:
//! backpressure up to the source); each batch is answered with the outcome of every event, so
//! that the source acknowledges only what was accepted. A clock tick advances the processor's
//! time for live figures and evaluates each site's alert rules; alert changes are broadcast,
//! notifications handed to delivery through a bounded channel that never makes it wait. Readers never touch the processor directly: they send it queries (a
//! closure run on the engine's task) and listen to a broadcast of updates, where a slow reader
//! lags and is told so, and never slows the engine.
//!
//! What it must not do: know where events come from or who reads, do I/O other than its
//! channels, or block on a reader.

mod history;
mod metrics;
mod snapshot;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc, oneshot};
use tracing::warn;
use vigie_alerts::{AlertEngine, Change, Evaluation, Notification};
use vigie_core::config::{ConfigErrors, HumanDuration};
use vigie_core::{Event, Outcome, Processor, SiteConfig, SnapshotError, Timestamp};

pub use history::HistoryBatch;
pub use metrics::EngineMetrics;
pub use snapshot::{ENGINE_SNAPSHOT_FORMAT, SiteSnapshot};
use snapshot::{SavedSite, SavedSiteRef};
use vigie_history::AbandonedLog;

/// Settings of the engine (`[engine]` in `vigie.toml`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    /// How often the processor's clock advances when no event comes (live figures: time in
    /// state, longest wait, trailing windows).
    #[serde(default = "default_tick")]
    pub tick: HumanDuration,
    /// How often every site gets an update notification even without events, so that readers
    /// refresh time-based figures.
    #[serde(default = "default_refresh")]
    pub refresh: HumanDuration,
    /// Batches that may wait for the engine before senders are held back.
    #[serde(default = "default_input_capacity")]
    pub input_capacity: usize,
    /// Update notifications kept for slow readers before they are told they lagged.
    #[serde(default = "default_update_capacity")]
    pub update_capacity: usize,
}

fn default_tick() -> HumanDuration {
    HumanDuration(Duration::from_millis(100))
}

fn default_refresh() -> HumanDuration {
    HumanDuration::secs(1)
}

fn default_input_capacity() -> usize {
    64
}

fn default_update_capacity() -> usize {
    4096
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            tick: default_tick(),
            refresh: default_refresh(),
            input_capacity: default_input_capacity(),
            update_capacity: default_update_capacity(),
        }
    }
}

impl EngineConfig {
    /// Checks the settings; `path` prefixes the field names in messages.
    pub fn validate(&self, path: &str) -> Result<(), vigie_core::config::ConfigErrors> {
        let mut problems = Vec::new();
        if self.tick.0 < Duration::from_millis(10) || self.tick.0 > Duration::from_secs(10) {
            problems.push(format!(
                "{path}.tick: must be between 10ms and 10s, found {}",
                self.tick
            ));
        }
        if self.refresh.0 < self.tick.0 {
            problems.push(format!(
                "{path}.refresh: must be at least tick ({})",
                self.tick
            ));
        }
        if self.input_capacity == 0 {
            problems.push(format!("{path}.input_capacity: must be at least 1"));
        }
        if self.update_capacity < 16 {
            problems.push(format!("{path}.update_capacity: must be at least 16"));
        }
        vigie_core::config::ConfigErrors(problems).into_result()
    }
}

/// The source of the current time, so that tests can drive it.
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// The system's clock.
pub fn system_clock() -> Clock {
    Arc::new(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(i64::try_from(now.as_millis()).unwrap_or(i64::MAX))
    })
}

/// What the source knows about a site's feed, shown with its figures.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SiteFeed {
    /// Replaying the day after a start: figures are not complete yet.
    pub recovering: bool,
    /// Whether the source saw a gap or a reset of the stream (figures may miss events).
    pub gap: Option<String>,
    /// The site is processed by another instance (named), or by none at the moment (`""`):
    /// this engine holds no figures of it, evaluates no alert and records no history for it.
    pub elsewhere: Option<String>,
}

impl SiteFeed {
    /// The day is being replayed: figures are not complete yet.
    pub fn recovering() -> SiteFeed {
        SiteFeed {
            recovering: true,
            ..SiteFeed::default()
        }
    }

    /// The site is processed by instance `owner` (`""`: by no instance at the moment).
    pub fn elsewhere(owner: &str) -> SiteFeed {
        SiteFeed {
            elsewhere: Some(owner.to_owned()),
            ..SiteFeed::default()
        }
    }

    /// Whether the figures of the site can be trusted as complete.
    pub fn complete(&self) -> bool {
        !self.recovering && self.gap.is_none() && self.elsewhere.is_none()
    }

    /// Whether this engine processes the site (its events, alerts and history).
    pub fn processed_here(&self) -> bool {
        self.elsewhere.is_none()
    }
}

/// A site changed: readers of its views should refresh.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Update {
    /// The site.
    pub site: Arc<str>,
    /// The version of the site's figures (see [`EngineState::sequences`]); a refresh repeats it.
    pub seq: u64,
    /// The processor's instant for the site.
    pub as_of: Timestamp,
}

/// Alerts of a site changed (fired, escalated, acknowledged, resolved...).
#[derive(Clone, Debug)]
pub struct AlertUpdate {
    /// The site.
    pub site: Arc<str>,
    /// The changes, in alert id order.
    pub changes: Arc<Vec<Change>>,
}

/// What queries read: the processor and what is known of each site's feed.
#[derive(Debug)]
pub struct EngineState {
    /// The name of this instance, shown on the views it computes.
    pub instance: String,
    /// The processor of every site.
    pub processor: Processor,
    /// The feed of each site, as its source reported it.
    pub feeds: BTreeMap<String, SiteFeed>,
    /// The version of each site's state: it increases with every change of the site's figures
    /// (events applied, time moving on, feed status), so that two reads at the same sequence
    /// number show the same figures.
    pub sequences: BTreeMap<String, u64>,
    /// The site's clock when its sequence number last increased.
    versioned_at: BTreeMap<String, Timestamp>,
    /// The alert rules and alerts of each site that has rules.
    pub alerts: BTreeMap<String, AlertEngine>,
    /// The abandoned contacts of each site, from the start of its day (and of the day before
    /// until its last interval is recorded), when the engine keeps a history.
    pub abandoned: BTreeMap<String, AbandonedLog>,
}

impl EngineState {
    /// Takes the abandons the processor found or withdrew into each site's list.
    fn keep_abandoned(&mut self) {
        for (site, changes) in self.processor.take_abandoned_changes() {
            self.abandoned.entry(site).or_default().apply(changes);
        }
    }

    /// The feed of a site (a site never reported on is complete).
    pub fn feed(&self, site: &str) -> SiteFeed {
        self.feeds.get(site).cloned().unwrap_or_default()
    }
}

type Query = Box<dyn FnOnce(&EngineState) + Send>;

type AlertAction = Box<dyn FnOnce(&mut AlertEngine, Timestamp) -> Evaluation + Send>;

enum Command {
    Query(Query),
    Alerts {
        site: String,
        act: AlertAction,
        missing: oneshot::Sender<()>,
    },
    Feed {
        site: String,
        feed: SiteFeed,
    },
    Reconfigure {
        site: SiteConfig,
        reply: oneshot::Sender<Result<(), ConfigErrors>>,
    },
    Restart {
        site: String,
        feed: SiteFeed,
        done: oneshot::Sender<()>,
    },
    Restore {
        site: String,
        bytes: Vec<u8>,
        done: oneshot::Sender<Result<(), SnapshotError>>,
    },
}

struct Batch {
    events: Vec<Event>,
    reply: Option<oneshot::Sender<Vec<Outcome>>>,
    /// After the events, the state of this site is saved whole and sent back: in the input
    /// channel, so that it holds exactly the batches queued before it.
    snapshot: Option<(String, oneshot::Sender<Option<SiteSnapshot>>)>,
}

/// The engine stopped: it no longer takes events or answers queries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the engine has stopped")]
pub struct EngineStopped;

/// A cheap handle to the engine, for sources and readers.
#[derive(Clone, Debug)]
pub struct EngineHandle {
    input: mpsc::Sender<Batch>,
    commands: mpsc::Sender<Command>,
    updates: broadcast::Sender<Update>,
    alert_updates: broadcast::Sender<AlertUpdate>,
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("events", &self.events.len())
            .finish()
    }
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Query(_) => f.write_str("Query"),
            Command::Feed { site, feed } => f
                .debug_struct("Feed")
                .field("site", site)
                .field("feed", feed)
                .finish(),
            Command::Reconfigure { site, .. } => f
                .debug_struct("Reconfigure")
                .field("site", &site.id)
                .finish(),
            Command::Alerts { site, .. } => f.debug_struct("Alerts").field("site", site).finish(),
            Command::Restart { site, feed, .. } => f
                .debug_struct("Restart")
                .field("site", site)
                .field("feed", feed)
                .finish(),
            Command::Restore { site, bytes, .. } => f
                .debug_struct("Restore")
                .field("site", site)
                .field("bytes", &bytes.len())
                .finish(),
        }
    }
}

impl EngineHandle {
    /// Queues a batch, waiting while the engine's input is full (backpressure). The receiver
    /// yields the outcome of each event, in order, once the batch is applied.
    pub async fn submit(
        &self,
        events: Vec<Event>,
    ) -> Result<oneshot::Receiver<Vec<Outcome>>, EngineStopped> {
        let (reply, outcome) = oneshot::channel();
        self.input
            .send(Batch {
                events,
                reply: Some(reply),
                snapshot: None,
            })
            .await
            .map_err(|_| EngineStopped)?;
        Ok(outcome)
    }

    /// Applies a batch and waits for the outcomes.
    pub async fn apply(&self, events: Vec<Event>) -> Result<Vec<Outcome>, EngineStopped> {
        self.submit(events).await?.await.map_err(|_| EngineStopped)
    }

    /// Queues a batch whose outcomes nobody needs (a simulated feed).
    pub async fn feed(&self, events: Vec<Event>) -> Result<(), EngineStopped> {
        self.input
            .send(Batch {
                events,
                reply: None,
                snapshot: None,
            })
            .await
            .map_err(|_| EngineStopped)
    }

    /// Records what the source knows about a site's feed (recovering, gaps).
    pub async fn set_feed(&self, site: &str, feed: SiteFeed) -> Result<(), EngineStopped> {
        self.commands
            .send(Command::Feed {
                site: site.to_owned(),
                feed,
            })
            .await
            .map_err(|_| EngineStopped)
    }

    /// Applies a new configuration of a site while it runs (queue targets, teams, rosters; see
    /// [`vigie_core::SiteProcessor::reconfigure`]); readers are told the site changed.
    pub async fn reconfigure(
        &self,
        site: SiteConfig,
    ) -> Result<Result<(), ConfigErrors>, EngineStopped> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Reconfigure { site, reply })
            .await
            .map_err(|_| EngineStopped)?;
        answer.await.map_err(|_| EngineStopped)
    }

    /// Forgets what the site's events built (figures, alerts, abandoned contacts, history not
    /// yet recorded) and gives it `feed`: [`SiteFeed::recovering`] before its day is rebuilt
    /// from the stream (this instance took the site over), [`SiteFeed::elsewhere`] when
    /// another instance processes it. Events queued before are applied first; returns once
    /// done.
    pub async fn restart_site(&self, site: &str, feed: SiteFeed) -> Result<(), EngineStopped> {
        let (done, restarted) = oneshot::channel();
        self.commands
            .send(Command::Restart {
                site: site.to_owned(),
                feed,
                done,
            })
            .await
            .map_err(|_| EngineStopped)?;
        restarted.await.map_err(|_| EngineStopped)
    }

    /// Asks for the whole state of a site, as it will stand once every batch queued before
    /// this request is applied (a source that knows which events it queued knows what the
    /// snapshot holds). The receiver yields `None` for a site the engine does not know. The
    /// engine applies nothing while it encodes the state (milliseconds per thousand
    /// advisors), so ask at most every few seconds.
    pub async fn snapshot_site(
        &self,
        site: &str,
    ) -> Result<oneshot::Receiver<Option<SiteSnapshot>>, EngineStopped> {
        let (reply, snapshot) = oneshot::channel();
        self.input
            .send(Batch {
                events: Vec::new(),
                reply: None,
                snapshot: Some((site.to_owned(), reply)),
            })
            .await
            .map_err(|_| EngineStopped)?;
        Ok(snapshot)
    }

    /// Replaces what a site's events built by the state of `bytes` (a [`SiteSnapshot`]), after
    /// applying the batches queued before; the site then goes on exactly as the engine that
    /// took the snapshot would have. Refused, leaving the site untouched, when the snapshot
    /// does not decode or was taken with another configuration of the site or other
    /// processing settings (then the day must be rebuilt from the events).
    pub async fn restore_site(
        &self,
        site: &str,
        bytes: Vec<u8>,
    ) -> Result<Result<(), SnapshotError>, EngineStopped> {
        let (done, restored) = oneshot::channel();
        self.commands
            .send(Command::Restore {
                site: site.to_owned(),
                bytes,
                done,
            })
            .await
            .map_err(|_| EngineStopped)?;
        restored.await.map_err(|_| EngineStopped)
    }

    /// Runs `read` on the engine's task with its state, and returns what it computed. Keep it
    /// short: the engine applies nothing meanwhile.
    pub async fn query<R: Send + 'static>(
        &self,
        read: impl FnOnce(&EngineState) -> R + Send + 'static,
    ) -> Result<R, EngineStopped> {
        let (reply, answer) = oneshot::channel();
        let query: Query = Box::new(move |state| {
            // The asker may have gone away; then nobody needs the answer.
            let _ = reply.send(read(state));
        });
        self.commands
            .send(Command::Query(query))
            .await
            .map_err(|_| EngineStopped)?;
        answer.await.map_err(|_| EngineStopped)
    }

    /// Runs `act` on a site's alert engine with the engine's clock (acknowledge, silence, new
    /// rules...). The evaluation it returns is handled like the engine's own: its changes are
    /// broadcast, its notifications delivered. `None` when the site has no alert rules.
    pub async fn with_alerts<R: Send + 'static>(
        &self,
        site: &str,
        act: impl FnOnce(&mut AlertEngine, Timestamp) -> (Evaluation, R) + Send + 'static,
    ) -> Result<Option<R>, EngineStopped> {
        let (reply, answer) = oneshot::channel();
        let (missing, absent) = oneshot::channel();
        let act: AlertAction = Box::new(move |alerts, now| {
            let (evaluation, result) = act(alerts, now);
            // The asker may have gone away; the action is done anyway.
            let _ = reply.send(result);
            evaluation
        });
        self.commands
            .send(Command::Alerts {
                site: site.to_owned(),
                act,
                missing,
            })
            .await
            .map_err(|_| EngineStopped)?;
        match answer.await {
            Ok(result) => Ok(Some(result)),
            // The action was dropped without running: the site has no alert engine, or the
            // engine stopped.
            Err(_) => match absent.await {
                Ok(()) => Ok(None),
                Err(_) => Err(EngineStopped),
            },
        }
    }

    /// Subscribes to alert changes. A reader that falls behind gets
    /// [`broadcast::error::RecvError::Lagged`] and should read the alerts again.
    pub fn subscribe_alerts(&self) -> broadcast::Receiver<AlertUpdate> {
        self.alert_updates.subscribe()
    }

    /// Subscribes to update notifications. A reader that falls behind gets
    /// [`broadcast::error::RecvError::Lagged`] and should read a fresh snapshot.
    pub fn subscribe(&self) -> broadcast::Receiver<Update> {
        self.updates.subscribe()
    }
}

/// The engine task. Build it with [`Engine::new`], then `run` it.
pub struct Engine {
    config: EngineConfig,
    state: EngineState,
    input: mpsc::Receiver<Batch>,
    commands: mpsc::Receiver<Command>,
    updates: broadcast::Sender<Update>,
    alert_updates: broadcast::Sender<AlertUpdate>,
    notifications: Option<mpsc::Sender<Notification>>,
    /// Where interval records go, and what each site's history keeps between ticks.
    history: Option<(
        mpsc::Sender<HistoryBatch>,
        BTreeMap<String, history::SiteHistory>,
    )>,
    metrics: EngineMetrics,
    clock: Clock,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine owning `processor`, and the handle to reach it.
    pub fn new(
        config: EngineConfig,
        processor: Processor,
        metrics: EngineMetrics,
        clock: Clock,
    ) -> (Engine, EngineHandle) {
        let (input_tx, input) = mpsc::channel(config.input_capacity.max(1));
        let (commands_tx, commands) = mpsc::channel(1024);
        let (updates, _) = broadcast::channel(config.update_capacity.max(16));
        let (alert_updates, _) = broadcast::channel(config.update_capacity.max(16));
        let sequences = processor
            .sites()
            .map(|site| (site.site().id.clone(), 0))
            .collect();
        let engine = Engine {
            config,
            state: EngineState {
                instance: String::new(),
                processor,
                feeds: BTreeMap::new(),
                sequences,
                versioned_at: BTreeMap::new(),
                alerts: BTreeMap::new(),
                abandoned: BTreeMap::new(),
            },
            input,
            commands,
            updates: updates.clone(),
            alert_updates: alert_updates.clone(),
            notifications: None,
            history: None,
            metrics,
            clock,
        };
        let handle = EngineHandle {
            input: input_tx,
            commands: commands_tx,
            updates,
            alert_updates,
        };
        (engine, handle)
    }

    /// Names this instance on the views it computes (with several instances, the one that
    /// processes a site computes its views).
    pub fn with_instance(mut self, instance: &str) -> Engine {
        self.state.instance = instance.to_owned();
        self
    }

    /// Evaluates these alert engines (one per site) at every tick, sending the notifications
    /// to `notifications` without ever waiting (a full channel drops and counts).
    pub fn with_alerts(
        mut self,
        alerts: BTreeMap<String, AlertEngine>,
        notifications: Option<mpsc::Sender<Notification>>,
    ) -> Engine {
        self.state.alerts = alerts;
        self.notifications = notifications;
        self
    }

    /// Offers the records of every 15-minute interval of every site to `history`, at its close
    /// (once the site's feed is complete: not while the day is replayed after a start) and when
    /// its figures are final, without ever waiting (a full channel drops and counts: a restart
    /// offers the day again). Keeps each site's abandoned contacts meanwhile
    /// ([`EngineState::abandoned`]), listed in its queue records.
    pub fn with_history(mut self, history: mpsc::Sender<HistoryBatch>) -> Engine {
        self.state.processor.enable_interval_totals();
        self.state.processor.enable_abandoned_contacts();
        self.history = Some((history, BTreeMap::new()));
        self
    }

    /// Runs until every handle is dropped, then applies what is still queued and returns the
    /// final state.
    pub async fn run(mut self) -> EngineState {
        let mut tick = tokio::time::interval(self.config.tick.0);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_refresh = tokio::time::Instant::now();
        let mut input_open = true;
        let mut commands_open = true;
        while input_open || commands_open {
            tokio::select! {
                biased;
                command = self.commands.recv(), if commands_open => match command {
                    Some(command) => self.command(command),
                    None => commands_open = false,
                },
                batch = self.input.recv(), if input_open => match batch {
                    Some(batch) => self.apply(batch),
                    None => input_open = false,
                },
                _ = tick.tick() => {
                    self.advance();
                    self.evaluate_alerts();
                    self.offer_history();
                    if last_refresh.elapsed() >= self.config.refresh.0 {
                        last_refresh = tokio::time::Instant::now();
                        let sites: Vec<String> = self.state.sequences.keys().cloned().collect();
                        for site in sites {
                            self.broadcast(&site);
                        }
                    }
                }
            }
        }
        self.advance();
        self.offer_history();
        self.state
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Query(query) => query(&self.state),
            Command::Feed { site, feed } => {
                self.metrics.set_feed(&site, &feed);
                self.state.feeds.insert(site.clone(), feed);
                self.new_version(&site);
                self.broadcast(&site);
            }
            Command::Alerts { site, act, missing } => {
                let now = self.site_now(&site);
                match self.state.alerts.get_mut(&site) {
                    Some(alerts) => {
                        let evaluation = act(alerts, now);
                        self.publish_alerts(&site, evaluation);
                    }
                    None => {
                        let _ = missing.send(());
                    }
                }
            }
            Command::Reconfigure { site, reply } => {
                let id = site.id.clone();
                let result = self.state.processor.reconfigure(site);
                if result.is_ok() {
                    self.new_version(&id);
                    self.broadcast(&id);
                }
                // The asker may have gone away; the change is made anyway.
                let _ = reply.send(result);
            }
            Command::Restart { site, feed, done } => {
                self.restart(&site, feed);
                // The asker may have gone away; the site is restarted anyway.
                let _ = done.send(());
            }
            Command::Restore { site, bytes, done } => {
                let restored = self.restore(&site, &bytes);
                // The asker may have gone away; the site is restored anyway.
                let _ = done.send(restored);
            }
        }
    }

    fn restore(&mut self, site: &str, bytes: &[u8]) -> Result<(), SnapshotError> {
        // Events already queued come before the snapshot's state replaces the site's.
        while let Ok(batch) = self.input.try_recv() {
            self.apply(batch);
        }
        let saved = SavedSite::decode(bytes)?;
        self.state.processor.restore_site(site, &saved.processor)?;
        match &mut self.history {
            Some((_, sites)) => {
                let abandoned = saved.abandoned.unwrap_or_default();
                self.state.abandoned.insert(site.to_owned(), abandoned);
                sites.insert(site.to_owned(), saved.history.unwrap_or_default());
            }
            None => {
                self.state.abandoned.remove(site);
            }
        }
        self.new_version(site);
        self.broadcast(site);
        Ok(())
    }

    fn snapshot(&mut self, site: &str) -> Option<SiteSnapshot> {
        let started = std::time::Instant::now();
        // The abandons the processor reported are in the engine's list, not in its journal.
        self.state.keep_abandoned();
        let processor = self.state.processor.snapshot_site(site)?;
        let (no_abandons, no_history) = (AbandonedLog::default(), history::SiteHistory::default());
        let kept = self.history.as_ref().map(|(_, sites)| {
            let abandoned = self.state.abandoned.get(site).unwrap_or(&no_abandons);
            (abandoned, sites.get(site).unwrap_or(&no_history))
        });
        let saved = SavedSiteRef {
            format: ENGINE_SNAPSHOT_FORMAT,
            processor: &processor,
            abandoned: kept.map(|(abandoned, _)| abandoned),
            history: kept.map(|(_, history)| history),
        };
        let bytes = saved.encode();
        self.metrics.observe_snapshot(started.elapsed());
        Some(SiteSnapshot {
            site: site.to_owned(),
            as_of: self.site_now(site),
            bytes,
        })
    }

    fn restart(&mut self, site: &str, feed: SiteFeed) {
        // Events already queued belong to the site's previous life: applied before it ends.
        while let Ok(batch) = self.input.try_recv() {
            self.apply(batch);
        }
        self.state.processor.restart_site(site);
        self.state.abandoned.remove(site);
        if let Some((_, sites)) = &mut self.history {
            sites.remove(site);
        }
        if let Some(alerts) = self.state.alerts.get_mut(site) {
            let rules: Vec<_> = alerts.rules().cloned().collect();
            match AlertEngine::new(site, &rules) {
                Ok(fresh) => *alerts = fresh,
                Err(errors) => warn!(site, %errors, "alert rules no longer valid: alerts kept"),
            }
        }
        self.metrics.set_feed(site, &feed);
        self.state.feeds.insert(site.to_owned(), feed);
        self.new_version(site);
        self.broadcast(site);
    }

    fn advance(&mut self) {
        self.state.processor.advance_to((self.clock)());
        // Time moving on changes the live figures (waits, time in state): a new version of the
        // site. Readers hear of it at the next event or refresh, not at every tick.
        let moved: Vec<String> = self
            .state
            .processor
            .sites()
            .filter(|site| self.state.versioned_at.get(&site.site().id) != Some(&site.now()))
            .map(|site| site.site().id.clone())
            .collect();
        for site in moved {
            self.new_version(&site);
        }
        let stats = self.state.processor.sites().map(|s| s.stats());
        let lists = self.state.abandoned.values();
        let abandoned = lists.fold((0, 0), |(dropped, listed), log| {
            (dropped + log.dropped(), listed + log.len())
        });
        self.metrics.observe_processor(stats, abandoned);
    }

    fn apply(&mut self, batch: Batch) {
        let started = std::time::Instant::now();
        let mut outcomes = Vec::with_capacity(batch.events.len());
        let mut touched: Vec<&str> = Vec::new();
        let metrics = &self.metrics;
        self.state
            .processor
            .apply_all(&batch.events, |event, outcome| {
                metrics.count(&outcome);
                if outcome == Outcome::Applied && touched.last() != Some(&event.site.as_str()) {
                    touched.push(&event.site);
                }
                outcomes.push(outcome);
            });
        self.state.keep_abandoned();
        if !batch.events.is_empty() {
            self.metrics
                .observe_batch(batch.events.len(), started.elapsed());
        }
        touched.sort_unstable();
        touched.dedup();
        let touched: Vec<String> = touched.into_iter().map(str::to_owned).collect();
        for site in &touched {
            self.new_version(site);
            self.broadcast(site);
        }
        if let Some(reply) = batch.reply {
            // The sender may have stopped waiting (shutting down): the events are applied anyway.
            let _ = reply.send(outcomes);
        }
        if let Some((site, reply)) = batch.snapshot {
            // The asker may have gone away: then nobody needs the snapshot.
            let _ = reply.send(self.snapshot(&site));
        }
    }

    /// Evaluates every site's alert rules on its current figures.
    fn evaluate_alerts(&mut self) {
        let mut evaluations = Vec::new();
        for (site, alerts) in &mut self.state.alerts {
            let Some(processor) = self.state.processor.site(site) else {
                continue;
            };
            if !self
                .state
                .feeds
                .get(site)
                .is_none_or(SiteFeed::processed_here)
            {
                continue;
            }
            let started = std::time::Instant::now();
            let evaluation = alerts.evaluate(processor, processor.now());
            self.metrics.observe_alert_evaluation(started.elapsed());
            if !evaluation.is_empty() {
                evaluations.push((site.clone(), evaluation));
            }
        }
        for (site, evaluation) in evaluations {
            self.publish_alerts(&site, evaluation);
        }
    }

    /// Hands the records of the intervals that closed or became final to the history task.
    fn offer_history(&mut self) {
        let Some((sender, sites)) = &mut self.history else {
            return;
        };
        self.state.keep_abandoned();
        let no_abandons = AbandonedLog::default();
        let mut batches = Vec::new();
        for totals in self.state.processor.take_interval_totals() {
            let Some(processor) = self.state.processor.site(&totals.site) else {
                continue;
            };
            if !self
                .state
                .feeds
                .get(&totals.site)
                .is_none_or(SiteFeed::processed_here)
            {
                continue;
            }
            let abandoned = self.state.abandoned.get(&totals.site);
            let site = sites.entry(totals.site.clone()).or_default();
            batches.extend(site.settled(
                vec![totals],
                processor,
                abandoned.unwrap_or(&no_abandons),
            ));
        }
        for processor in self.state.processor.sites() {
            let id = &processor.site().id;
            let site = sites.entry(id.clone()).or_default();
            let abandoned = self.state.abandoned.get_mut(id);
            if let (Some(recorded), Some(abandoned)) = (site.recorded_until(processor), abandoned) {
                abandoned.forget_before(recorded);
            }
            let complete = self.state.feeds.get(id).is_none_or(SiteFeed::complete);
            if !complete {
                continue;
            }
            let abandoned = self.state.abandoned.get(id);
            batches.extend(site.at_close(processor, abandoned.unwrap_or(&no_abandons)));
        }
        for batch in batches {
            let handed_over = sender.try_send(batch).is_ok();
            self.metrics.count_history_batch(handed_over);
        }
    }

    /// Broadcasts alert changes and hands notifications to delivery, never waiting.
    fn publish_alerts(&mut self, site: &str, evaluation: Evaluation) {
        if !evaluation.changes.is_empty() {
            // Nobody listening is fine: the alerts are kept in the state.
            let _ = self.alert_updates.send(AlertUpdate {
                site: site.into(),
                changes: Arc::new(evaluation.changes),
            });
        }
        for notification in evaluation.notifications {
            let delivered = match &self.notifications {
                Some(sender) => sender.try_send(notification).is_ok(),
                None => continue,
            };
            self.metrics.count_notification(delivered);
        }
    }

    fn site_now(&self, site: &str) -> Timestamp {
        self.state
            .processor
            .site(site)
            .map_or(Timestamp::MIN, |s| s.now())
    }

    /// The site's figures changed.
    fn new_version(&mut self, site: &str) {
        let now = self.site_now(site);
        *self.state.sequences.entry(site.to_owned()).or_default() += 1;
        self.state.versioned_at.insert(site.to_owned(), now);
    }

    /// Tells readers to refresh the site's views.
    fn broadcast(&mut self, site: &str) {
        let seq = self.state.sequences.get(site).copied().unwrap_or_default();
        // Nobody listening is fine: there is nothing to deliver.
        let _ = self.updates.send(Update {
            site: site.into(),
            seq,
            as_of: self.site_now(site),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigie_core::{
        DEFAULT_MAX_EVENT_BYTES, ProcessingConfig, RejectReason, Window, decode_json,
    };

    fn event(id: &str, time: &str) -> Event {
        let json = format!(
            r#"{{"id":"{id}","type":"contact.queued","time":"2026-03-02T{time}Z","site":"s","contact":"c{id}","queue":"q","channel":"voice"}}"#
        );
        decode_json(json.as_bytes(), DEFAULT_MAX_EVENT_BYTES).unwrap()
    }

    fn engine(clock: Clock) -> (Engine, EngineHandle, prometheus_client::registry::Registry) {
        let mut registry = prometheus_client::registry::Registry::default();
        let metrics = EngineMetrics::new(&mut registry);
        let processor = Processor::new(Vec::new(), ProcessingConfig::default());
        let (engine, handle) = Engine::new(EngineConfig::default(), processor, metrics, clock);
        (engine, handle, registry)
    }

    fn fixed_clock(at: &str) -> Clock {
        let at = Timestamp::parse_rfc3339(at).unwrap();
        Arc::new(move || at)
    }

    #[tokio::test]
    async fn batches_are_answered_event_by_event_and_readers_are_notified() {
        let (engine, handle, registry) = engine(fixed_clock("2026-03-02T10:00:00Z"));
        let task = tokio::spawn(engine.run());
        let mut updates = handle.subscribe();
        let outcomes = handle
            .apply(vec![
                event("1", "09:00:00"),
                event("1", "09:00:00"),
                event("2", "08:00:00"),
            ])
            .await
            .unwrap();
        assert_eq!(outcomes[0], Outcome::Applied);
        assert_eq!(outcomes[1], Outcome::Duplicate);
        assert!(matches!(&outcomes[2], Outcome::Rejected(r) if r.reason == RejectReason::TooLate));
        let update = tokio::time::timeout(Duration::from_secs(5), updates.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&*update.site, "s");
        let waiting = handle
            .query(|state| {
                state
                    .processor
                    .site("s")
                    .map(|s| s.site_view(Window::Today).totals.live.in_queue)
            })
            .await
            .unwrap();
        assert_eq!(waiting, Some(1));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains("vigie_events_applied_total 1"), "{text}");
        assert!(text.contains("vigie_events_duplicate_total 1"), "{text}");
        assert!(
            text.contains(r#"vigie_events_rejected_total{reason="too_late"} 1"#),
            "{text}"
        );
        drop(handle);
        drop(updates);
        let state = tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(state.processor.site("s").unwrap().stats().applied, 1);
    }

    fn contact_event(id: &str, kind: &str, contact: &str, time: &str) -> Event {
        let json = format!(
            r#"{{"id":"{id}","type":"{kind}","time":"2026-03-02T{time}Z","site":"s","contact":"{contact}","queue":"q","channel":"voice"}}"#
        );
        decode_json(json.as_bytes(), DEFAULT_MAX_EVENT_BYTES).unwrap()
    }

    /// An engine keeping a history, on a clock the test moves, and where its records go.
    fn engine_with_history(
        now: &Arc<std::sync::atomic::AtomicI64>,
    ) -> (EngineHandle, mpsc::Receiver<HistoryBatch>) {
        let clock_now = now.clone();
        let clock: Clock =
            Arc::new(move || Timestamp(clock_now.load(std::sync::atomic::Ordering::SeqCst)));
        let (engine, handle, _registry) = engine(clock);
        let (history_tx, history) = mpsc::channel(1024);
        tokio::spawn(engine.with_history(history_tx).run());
        (handle, history)
    }

    /// The interval records offered until the engine has ticked a few times at the same instant.
    async fn offered(
        handle: &EngineHandle,
        history: &mut mpsc::Receiver<HistoryBatch>,
    ) -> Vec<HistoryBatch> {
        let mut batches = Vec::new();
        for _ in 0..5 {
            // Each query waits for the engine's turn: ticks run in between.
            handle.query(|_| ()).await.unwrap();
            tokio::time::sleep(EngineConfig::default().tick.0).await;
            while let Ok(batch) = history.try_recv() {
                batches.push(batch);
            }
        }
        batches
    }

    #[tokio::test]
    async fn a_restored_site_goes_on_as_the_engine_that_saved_it() {
        let at = |time: &str| {
            Timestamp::parse_rfc3339(&format!("2026-03-02T{time}Z"))
                .unwrap()
                .0
        };
        let ordering = std::sync::atomic::Ordering::SeqCst;
        let now = Arc::new(std::sync::atomic::AtomicI64::new(at("09:00:00")));
        let (saved, mut saved_history) = engine_with_history(&now);
        let morning = vec![
            contact_event("1", "contact.queued", "c1", "09:00:00"),
            contact_event("2", "contact.abandoned", "c1", "09:00:40"),
            contact_event("3", "contact.queued", "c2", "09:20:00"),
            contact_event("4", "contact.abandoned", "c2", "09:20:03"),
            contact_event("5", "contact.queued", "c3", "09:40:00"),
        ];
        saved.apply(morning.clone()).await.unwrap();
        now.store(at("09:45:00"), ordering);
        let before = offered(&saved, &mut saved_history).await;
        assert!(!before.is_empty(), "the morning's intervals are offered");
        let snapshot = saved
            .snapshot_site("s")
            .await
            .unwrap()
            .await
            .unwrap()
            .unwrap();
        assert_eq!(snapshot.site, "s");
        assert_eq!(snapshot.as_of.0, at("09:45:00"));
        assert_eq!(
            saved
                .snapshot_site("elsewhere")
                .await
                .unwrap()
                .await
                .unwrap(),
            None
        );

        let (restored, mut restored_history) = engine_with_history(&now);
        restored
            .restore_site("s", snapshot.bytes.clone())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            abandoned_text(&restored).await,
            abandoned_text(&saved).await
        );
        assert!(abandoned_text(&restored).await.contains("c2"));
        // A duplicate of an event before the snapshot is still one.
        assert_eq!(
            restored.apply(vec![morning[4].clone()]).await.unwrap(),
            [Outcome::Duplicate]
        );
        // The same events and time after the snapshot give the same records and figures. What
        // the restore itself offered is set aside first.
        offered(&restored, &mut restored_history).await;
        let later = vec![
            contact_event("6", "contact.abandoned", "c3", "09:46:00"),
            contact_event("7", "contact.queued", "c4", "10:05:00"),
            contact_event("8", "contact.abandoned", "c4", "10:05:01"),
        ];
        for handle in [&saved, &restored] {
            handle.apply(later.clone()).await.unwrap();
        }
        now.store(at("10:50:00"), ordering);
        let after_saved = offered(&saved, &mut saved_history).await;
        let after_restored = offered(&restored, &mut restored_history).await;
        assert!(
            after_saved.iter().any(|batch| batch.settled),
            "final records after the snapshot: {after_saved:?}"
        );
        // Compared as what they leave in a store: the last figures offered for each interval
        // and scope. The engines offer them at their own ticks, so the same records may come
        // in batches cut at different moments.
        let last_offered = |batches: &[HistoryBatch]| {
            let mut last = BTreeMap::new();
            for batch in batches {
                for record in &batch.records {
                    last.insert(record.key.clone(), (record.clone(), batch.settled));
                }
            }
            last
        };
        assert_eq!(last_offered(&after_restored), last_offered(&after_saved));
        assert_eq!(view_text(&restored).await, view_text(&saved).await);
        assert_eq!(
            abandoned_text(&restored).await,
            abandoned_text(&saved).await
        );

        // Refused, the site untouched.
        let garbage = restored.restore_site("s", vec![7; 40]).await.unwrap();
        assert!(garbage.is_err(), "{garbage:?}");
        assert_eq!(view_text(&restored).await, view_text(&saved).await);
    }

    async fn view_text(handle: &EngineHandle) -> String {
        let read = |state: &EngineState| {
            let view = state.processor.site("s").unwrap().site_view(Window::Today);
            format!("{view:?}")
        };
        handle.query(read).await.unwrap()
    }

    async fn abandoned_text(handle: &EngineHandle) -> String {
        let read = |state: &EngineState| format!("{:?}", state.abandoned.get("s"));
        handle.query(read).await.unwrap()
    }

    #[tokio::test]
    async fn the_clock_advances_live_figures_without_events() {
        let now = Arc::new(std::sync::atomic::AtomicI64::new(0));
        let clock_now = now.clone();
        let clock: Clock =
            Arc::new(move || Timestamp(clock_now.load(std::sync::atomic::Ordering::SeqCst)));
        let (engine, handle, _registry) = engine(clock);
        tokio::spawn(engine.run());
        let queued = event("1", "09:00:00");
        now.store(queued.time.0, std::sync::atomic::Ordering::SeqCst);
        handle.apply(vec![queued.clone()]).await.unwrap();
        now.store(queued.time.0 + 90_000, std::sync::atomic::Ordering::SeqCst);
        let longest = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                let longest = handle
                    .query(|state| {
                        state
                            .processor
                            .site("s")
                            .unwrap()
                            .site_view(Window::Today)
                            .totals
                            .live
                            .longest_wait
                    })
                    .await
                    .unwrap();
                if longest == Some(90.0) {
                    break longest;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .unwrap();
        assert_eq!(longest, Some(90.0));
    }

    #[tokio::test]
    async fn a_sequence_number_changes_exactly_when_the_figures_can_change() {
        let now = Arc::new(std::sync::atomic::AtomicI64::new(0));
        let clock_now = now.clone();
        let clock: Clock =
            Arc::new(move || Timestamp(clock_now.load(std::sync::atomic::Ordering::SeqCst)));
        let mut registry = prometheus_client::registry::Registry::default();
        let site = vigie_core::SiteConfig::with_defaults("s");
        let processor = Processor::new(vec![site], ProcessingConfig::default());
        let config = EngineConfig {
            tick: HumanDuration(Duration::from_millis(10)),
            refresh: HumanDuration(Duration::from_millis(20)),
            ..EngineConfig::default()
        };
        let (engine, handle) =
            Engine::new(config, processor, EngineMetrics::new(&mut registry), clock);
        tokio::spawn(engine.run());
        let seq = || async { handle.query(|state| state.sequences["s"]).await.unwrap() };
        let queued = event("1", "09:00:00");
        now.store(queued.time.0, std::sync::atomic::Ordering::SeqCst);
        handle.apply(vec![queued.clone()]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let settled = seq().await;
        // The clock stands still: ticks and refreshes do not make a new version.
        let mut updates = handle.subscribe();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(seq().await, settled);
        let refresh = tokio::time::timeout(Duration::from_secs(5), updates.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(refresh.seq, settled, "a refresh repeats the version");
        // An event makes a new version, and so does time moving on.
        handle.apply(vec![event("2", "09:00:01")]).await.unwrap();
        let after_event = seq().await;
        assert!(after_event > settled);
        now.store(queued.time.0 + 60_000, std::sync::atomic::Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(seq().await > after_event);
    }

    #[tokio::test]
    async fn alert_rules_are_evaluated_as_time_goes_on_and_commands_reach_them() {
        let now = Arc::new(std::sync::atomic::AtomicI64::new(0));
        let clock_now = now.clone();
        let clock: Clock =
            Arc::new(move || Timestamp(clock_now.load(std::sync::atomic::Ordering::SeqCst)));
        let mut registry = prometheus_client::registry::Registry::default();
        let processor = Processor::new(
            vec![vigie_core::SiteConfig::with_defaults("s")],
            ProcessingConfig::default(),
        );
        let config = EngineConfig {
            tick: HumanDuration(Duration::from_millis(10)),
            ..EngineConfig::default()
        };
        let rules: Vec<vigie_alerts::RuleConfig> = toml::from_str::<toml::Table>(
            r#"
            [[alert_rule]]
            site = "s"
            id = "wait"
            name = "Caller waiting too long"
            scope = "every_queue"
            metric = "longest_wait"
            comparator = "above"
            warning = "60s"
            "#,
        )
        .unwrap()["alert_rule"]
            .clone()
            .try_into()
            .unwrap();
        let alerts = BTreeMap::from([(
            "s".to_owned(),
            vigie_alerts::AlertEngine::new("s", &rules).unwrap(),
        )]);
        let (notifications_tx, mut notifications) = mpsc::channel(16);
        let (engine, handle) =
            Engine::new(config, processor, EngineMetrics::new(&mut registry), clock);
        tokio::spawn(engine.with_alerts(alerts, Some(notifications_tx)).run());
        let mut changes = handle.subscribe_alerts();

        let queued = event("1", "09:00:00");
        now.store(queued.time.0, std::sync::atomic::Ordering::SeqCst);
        handle.apply(vec![queued.clone()]).await.unwrap();
        now.store(queued.time.0 + 61_000, std::sync::atomic::Ordering::SeqCst);
        let fired = tokio::time::timeout(Duration::from_secs(5), notifications.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(fired.alert, "wait/queue/q");
        assert_eq!(fired.notice.kind, vigie_alerts::NotificationKind::Fired);
        let update = tokio::time::timeout(Duration::from_secs(5), changes.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&*update.site, "s");
        assert_eq!(update.changes[0].alert, "wait/queue/q");

        let acknowledged = handle
            .with_alerts("s", |alerts, now| {
                let evaluation = alerts.acknowledge("wait/queue/q", "camille", now).unwrap();
                (
                    evaluation,
                    alerts.alert("wait/queue/q").unwrap().acknowledged.is_some(),
                )
            })
            .await
            .unwrap();
        assert_eq!(acknowledged, Some(true));
        let none = handle
            .with_alerts("elsewhere", |_, _| {
                (vigie_alerts::Evaluation::default(), ())
            })
            .await
            .unwrap();
        assert_eq!(none, None, "a site without rules");
        let listed = handle
            .query(|state| state.alerts["s"].alerts().len())
            .await
            .unwrap();
        assert_eq!(listed, 1);

        // Another instance takes the site: nothing of it is left here, nothing fires.
        while notifications.try_recv().is_ok() {}
        handle
            .restart_site("s", SiteFeed::elsewhere("vigie-2"))
            .await
            .unwrap();
        let left = |state: &EngineState| {
            (
                state.alerts["s"].alerts().len(),
                state.processor.site("s").unwrap().stats().applied,
                state.feed("s").complete(),
            )
        };
        assert_eq!(handle.query(left).await.unwrap(), (0, 0, false));
        now.store(queued.time.0 + 200_000, std::sync::atomic::Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(notifications.try_recv().is_err());
        // Taken back: the day is rebuilt and its alerts fire again.
        handle
            .restart_site("s", SiteFeed::recovering())
            .await
            .unwrap();
        handle.apply(vec![queued]).await.unwrap();
        let fired = tokio::time::timeout(Duration::from_secs(5), notifications.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(fired.notice.kind, vigie_alerts::NotificationKind::Fired);
        assert_eq!(handle.query(left).await.unwrap(), (1, 1, false));
    }

    #[tokio::test]
    async fn a_full_input_holds_the_sender_back() {
        let mut config = EngineConfig {
            input_capacity: 1,
            ..EngineConfig::default()
        };
        config.tick = HumanDuration(Duration::from_millis(10));
        let mut registry = prometheus_client::registry::Registry::default();
        let processor = Processor::new(Vec::new(), ProcessingConfig::default());
        let (engine, handle) = Engine::new(
            config,
            processor,
            EngineMetrics::new(&mut registry),
            fixed_clock("2026-03-02T10:00:00Z"),
        );
        // The engine is not running: the first batch fills the channel, the second waits.
        handle.feed(vec![event("1", "09:00:00")]).await.unwrap();
        let blocked = tokio::time::timeout(
            Duration::from_millis(100),
            handle.feed(vec![event("2", "09:00:01")]),
        )
        .await;
        assert!(blocked.is_err(), "the sender must wait for room");
        tokio::spawn(engine.run());
        tokio::time::timeout(
            Duration::from_secs(5),
            handle.feed(vec![event("2", "09:00:01")]),
        )
        .await
        .unwrap()
        .unwrap();
    }

    #[test]
    fn settings_are_checked() {
        let config = EngineConfig {
            input_capacity: 0,
            refresh: HumanDuration(Duration::from_millis(1)),
            ..EngineConfig::default()
        };
        let problems = config.validate("engine").unwrap_err().to_string();
        assert!(problems.contains("engine.input_capacity"), "{problems}");
        assert!(problems.contains("engine.refresh"), "{problems}");
    }
}
