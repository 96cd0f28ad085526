//! The fan-out of live views to `Watch*` streams.
//!
//! Every distinct view being watched (site, target, window, and whether contact ids show) is a
//! *topic* with one publisher task: when the engine says the site changed, the publisher reads
//! the view once, at most once per coalescing interval, and puts it in a `watch` channel that
//! keeps only the latest frame. A thousand wallboards on one team cost one view a tick, and a
//! client that stops reading holds one shared frame, never a growing queue: when it reads again
//! it gets the latest view, marked as a resync because it skipped some.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{broadcast, watch};
use tokio::time::Instant;
use tracing::debug;
use vigie_core::Window;
use vigie_engine::EngineHandle;

use crate::metrics::ApiMetrics;
use crate::read::{self, Target, WireView};
use crate::remote::RemoteViews;

/// What a topic publishes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TopicKey {
    /// Site id.
    pub site: String,
    /// What the view is about.
    pub target: Target,
    /// Window of the indicators.
    pub window: Window,
    /// Whether the view shows the contact ids a supervisor may act on.
    pub with_contacts: bool,
}

/// The versions of a site a topic last read: the engine's, and the owner's when another
/// instance processes the site.
#[derive(Clone, Copy, Debug)]
struct Seen {
    local: Option<u64>,
    remote: Option<u64>,
}

/// One published view.
#[derive(Debug)]
pub struct Frame {
    /// Frames of a topic are numbered 1, 2, 3...: a gap means a reader skipped frames.
    pub number: u64,
    /// The view.
    pub view: WireView,
    /// The view encoded once (protobuf), shared by every stream of the topic.
    pub encoded: bytes::Bytes,
}

type Latest = watch::Sender<Option<Arc<Frame>>>;

/// The topics being watched.
#[derive(Debug)]
pub struct Hub {
    engine: EngineHandle,
    remote: Arc<RemoteViews>,
    interval: Duration,
    topics: Mutex<HashMap<TopicKey, Latest>>,
    metrics: ApiMetrics,
}

impl Hub {
    /// A hub reading from `engine` (and, for the sites another instance processes, from
    /// `remote`), publishing each topic at most once per `interval`.
    pub fn new(
        engine: EngineHandle,
        remote: Arc<RemoteViews>,
        interval: Duration,
        metrics: ApiMetrics,
    ) -> Arc<Hub> {
        Arc::new(Hub {
            engine,
            remote,
            interval,
            topics: Mutex::new(HashMap::new()),
            metrics,
        })
    }

    /// The views published by the instances processing other sites.
    pub fn remote(&self) -> Arc<RemoteViews> {
        self.remote.clone()
    }

    /// Follows a topic (starting its publisher if nobody watches it yet). The receiver holds
    /// `None` until the first frame; it is closed when the topic ends (the engine stopped or
    /// the target is gone).
    pub fn subscribe(self: &Arc<Self>, key: TopicKey) -> watch::Receiver<Option<Arc<Frame>>> {
        let mut topics = self
            .topics
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if let Some(latest) = topics.get(&key)
            && !latest.is_closed()
        {
            return latest.subscribe();
        }
        let (latest, receiver) = watch::channel(None);
        topics.insert(key.clone(), latest.clone());
        self.metrics.topics.set(topics.len() as i64);
        drop(topics);
        tokio::spawn(self.clone().publish(key, latest));
        receiver
    }

    /// Publishes a topic until nobody watches it.
    async fn publish(self: Arc<Self>, key: TopicKey, latest: Latest) {
        let mut updates = self.engine.subscribe();
        let mut remote_updates = self.remote.subscribe();
        let mut number = 0;
        let mut last_version = None;
        loop {
            let published_at = Instant::now();
            let (site, target, window, with_contacts) = (
                key.site.clone(),
                key.target.clone(),
                key.window,
                key.with_contacts,
            );
            let remote = self.remote.clone();
            let view = self
                .engine
                .query(move |state| {
                    let view = read::view(state, &remote, &site, &target, window, with_contacts);
                    let local_seq = state.sequences.get(&site).copied();
                    (view, state.feed(&site).elsewhere.is_some(), local_seq)
                })
                .await;
            let (view, seen) = match view {
                Ok((Some(view), elsewhere, local)) => {
                    // The engine's and the owner's sequences are two counters: each compared
                    // with its own.
                    let remote = elsewhere.then(|| view.header().map(|h| h.seq)).flatten();
                    (Some(view), Seen { local, remote })
                }
                // Another instance processes the site and its views have not come yet (it
                // just took the site over): the next ones will.
                Ok((None, true, local)) => (
                    None,
                    Seen {
                        local,
                        remote: None,
                    },
                ),
                Ok((None, false, _)) | Err(_) => {
                    debug!(site = %key.site, target = ?key.target, "topic ended: engine stopped or target gone");
                    break;
                }
            };
            // A view served from another instance's may change only in its header (late,
            // no longer processed): a new version too.
            let version = view
                .as_ref()
                .and_then(WireView::header)
                .map(|header| (header.seq, header.complete, header.instance.clone()));
            if let Some(view) = view.filter(|_| version != last_version) {
                last_version = version;
                number += 1;
                let encoded = view.encode();
                latest.send_replace(Some(Arc::new(Frame {
                    number,
                    view,
                    encoded,
                })));
                self.metrics.frames_published.inc();
            }
            let watched = self
                .wait_for_change(
                    &key.site,
                    seen,
                    [&mut updates, &mut remote_updates],
                    &latest,
                )
                .await
                && tokio::select! {
                    _ = latest.closed() => false,
                    // Coalescing: at most one frame per interval; what changes meanwhile is in
                    // the next one.
                    _ = tokio::time::sleep_until(published_at + self.interval) => true,
                };
            // A watcher may have joined just as the last one left: then keep publishing (if
            // the engine stopped, the next read ends the topic).
            if !watched && self.remove(&key, &latest, true) {
                return;
            }
        }
        self.remove(&key, &latest, false);
    }

    /// Removes a topic (only if nobody watches it when `if_unwatched`); true if removed.
    fn remove(&self, key: &TopicKey, latest: &Latest, if_unwatched: bool) -> bool {
        let mut topics = self
            .topics
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if if_unwatched && latest.receiver_count() > 0 {
            return false;
        }
        if topics.get(key).is_some_and(|l| l.same_channel(latest)) {
            topics.remove(key);
        }
        self.metrics.topics.set(topics.len() as i64);
        true
    }

    /// Waits until the site has a version other than `seen`, as the engine or the views
    /// published by another instance say; false when nobody watches any more or the engine
    /// stopped.
    async fn wait_for_change(
        &self,
        site: &str,
        seen: Seen,
        [engine, remote]: [&mut broadcast::Receiver<vigie_engine::Update>; 2],
        latest: &Latest,
    ) -> bool {
        loop {
            let (update, seen) = tokio::select! {
                _ = latest.closed() => return false,
                update = engine.recv() => (update, seen.local),
                update = remote.recv() => match update {
                    // The store lives as long as the hub: never closed while the engine runs.
                    Err(broadcast::error::RecvError::Closed) => continue,
                    update => (update, seen.remote),
                },
            };
            match update {
                Ok(update) if &*update.site == site && Some(update.seq) != seen => return true,
                Ok(_) => {}
                // Missed notifications: read the view again to be sure.
                Err(broadcast::error::RecvError::Lagged(_)) => return true,
                Err(broadcast::error::RecvError::Closed) => return false,
            }
        }
    }
}
