//! The views of each site, carried between instances over NATS (`[cluster]`).
//!
//! The instance that processes a site publishes every window of it on
//! `vigie.views.<site>.<window>`, and its alerts on `vigie.views.<site>.alerts` (core NATS: the
//! latest is all that matters) whenever the site or its alerts change, at most once per `[cluster] publish_interval`, and at least once a second
//! (the engine's refresh); the other instances keep the latest of each and serve the site's
//! `Get*`, `List*` and `Watch*` calls from them.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use prost::Message;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};
use vigie_api::RemoteViews;
use vigie_core::Window;
use vigie_engine::EngineHandle;

/// The subject prefix of published views.
pub const VIEWS_PREFIX: &str = "vigie.views";
/// The header naming the instance that published a view.
const INSTANCE_HEADER: &str = "Vigie-Instance";

/// The views' metrics.
#[derive(Clone, Debug, Default)]
pub struct ViewMetrics {
    published: Counter,
    too_large: Counter,
    received: Counter,
    refused: Counter,
}

impl ViewMetrics {
    /// Registers the metrics.
    pub fn new(registry: &mut Registry) -> ViewMetrics {
        let metrics = ViewMetrics::default();
        registry.register(
            "vigie_views_published",
            "Windows of the sites processed here published for the other instances",
            metrics.published.clone(),
        );
        registry.register(
            "vigie_views_too_large",
            "Windows not published because they exceed the NATS server's max_payload",
            metrics.too_large.clone(),
        );
        registry.register(
            "vigie_views_received",
            "Windows of sites processed by other instances received",
            metrics.received.clone(),
        );
        registry.register(
            "vigie_views_refused",
            "Published windows received that could not be read (counted, then ignored)",
            metrics.refused.clone(),
        );
        metrics
    }
}

/// The last token of the subject of a site's alerts (`vigie.views.<site>.alerts`).
const ALERTS: &str = "alerts";

/// What a message on `vigie.views.>` carries.
enum Carried {
    Window(Window),
    Alerts,
}

/// Publishes the windows of the sites processed here as they change, until `shutdown`.
pub async fn publish(
    client: async_nats::Client,
    engine: EngineHandle,
    instance: String,
    interval: Duration,
    metrics: ViewMetrics,
    shutdown: CancellationToken,
) {
    let mut updates = engine.subscribe();
    let mut alert_updates = engine.subscribe_alerts();
    let mut changed: BTreeSet<Arc<str>> = BTreeSet::new();
    let mut every = tokio::time::interval(interval);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            update = updates.recv() => match update {
                Ok(update) => { changed.insert(update.site); }
                // Missed some: the engine's refresh names every site within a second.
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return,
            },
            update = alert_updates.recv() => match update {
                Ok(update) => { changed.insert(update.site); }
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return,
            },
            _ = every.tick(), if !changed.is_empty() => {
                for site in std::mem::take(&mut changed) {
                    let id = site.to_string();
                    let published = engine
                        .query(move |state| {
                            let alerts = vigie_api::published_alerts(state, &id)
                                .map(|alerts| (ALERTS.to_owned(), alerts.encode_to_vec().into()));
                            let windows = vigie_api::published_windows(state, &id)
                                .into_iter()
                                .map(|(window, payload)| (window.as_str().to_owned(), payload));
                            windows.chain(alerts).collect::<Vec<(String, bytes::Bytes)>>()
                        })
                        .await;
                    let Ok(published) = published else { return };
                    let max_payload = client.server_info().max_payload;
                    for (what, payload) in published {
                        if payload.len() > max_payload {
                            metrics.too_large.inc();
                            warn!(site = %site, view = %what, bytes = payload.len(), max_payload, "a view of the site is larger than the NATS server's max_payload: not published (raise max_payload)");
                            continue;
                        }
                        let mut headers = async_nats::HeaderMap::new();
                        headers.insert(INSTANCE_HEADER, instance.as_str());
                        let subject = format!("{VIEWS_PREFIX}.{site}.{what}");
                        match client.publish_with_headers(subject, headers, payload).await {
                            Ok(()) => {
                                metrics.published.inc();
                            }
                            // The next change or refresh publishes it again.
                            Err(error) => debug!(site = %site, %error, "view not published"),
                        }
                    }
                }
            }
        }
    }
}

/// Keeps the windows other instances publish, until `shutdown`.
pub async fn receive(
    client: async_nats::Client,
    remote: Arc<RemoteViews>,
    instance: String,
    metrics: ViewMetrics,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut messages = client
        .subscribe(format!("{VIEWS_PREFIX}.>"))
        .await
        .map_err(|error| anyhow::anyhow!("cannot subscribe to {VIEWS_PREFIX}.>: {error}"))?;
    loop {
        let message = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            message = messages.next() => match message {
                Some(message) => message,
                None => return Ok(()),
            },
        };
        let own = message
            .headers
            .as_ref()
            .and_then(|headers| headers.get(INSTANCE_HEADER))
            .is_some_and(|name| name.as_str() == instance);
        if own {
            continue;
        }
        let parsed = message
            .subject
            .strip_prefix(VIEWS_PREFIX)
            .and_then(|rest| rest.strip_prefix('.'))
            .and_then(|rest| rest.split_once('.'))
            .and_then(|(site, what)| {
                let carried = match what {
                    ALERTS => Carried::Alerts,
                    window => {
                        Carried::Window(Window::ALL.into_iter().find(|w| w.as_str() == window)?)
                    }
                };
                Some((site.to_owned(), carried))
            });
        let Some((site, carried)) = parsed else {
            metrics.refused.inc();
            debug!(subject = %message.subject, "not a published view's subject");
            continue;
        };
        let received = match carried {
            Carried::Window(window) => remote.receive(&site, window, &message.payload),
            Carried::Alerts => remote.receive_alerts(&site, &message.payload),
        };
        match received {
            Ok(()) => {
                metrics.received.inc();
            }
            Err(error) => {
                metrics.refused.inc();
                warn!(site = %site, %error, "published view refused");
            }
        }
    }
}
