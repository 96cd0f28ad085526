//! Vigie's engine and ingestion in the caller's process, wired as `vigie serve` wires them, on
//! a nats-server of the caller's (the ingestion tests, the end-to-end ingestion benchmark).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use prometheus_client::registry::Registry;
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use vigie_core::{ProcessingConfig, Processor, ProcessorStats, SiteConfig, Window};
use vigie_engine::{Engine, EngineConfig, EngineHandle, EngineMetrics, EngineState, system_clock};
use vigie_ingest::{Ingest, IngestError, IngestMetrics, NatsConfig, SiteSource};

use crate::nats::within;

/// How long a step may take before the caller fails.
const WAIT: Duration = Duration::from_secs(60);

/// One site's engine and ingestion.
pub struct Vigie {
    handle: EngineHandle,
    shutdown: CancellationToken,
    ingest: JoinHandle<Result<(), IngestError>>,
    engine: JoinHandle<EngineState>,
    ready: watch::Receiver<BTreeMap<String, bool>>,
    registry: Registry,
    site: String,
    started: Instant,
}

impl std::fmt::Debug for Vigie {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vigie")
            .field("site", &self.site)
            .finish_non_exhaustive()
    }
}

impl Vigie {
    /// Starts the engine, then the ingestion of `site` from `nats` (recovery first).
    pub async fn start(nats: NatsConfig, site: &SiteConfig) -> Vigie {
        let mut registry = Registry::default();
        let engine_metrics = EngineMetrics::new(&mut registry);
        let ingest_metrics = IngestMetrics::new(&mut registry);
        let processor = Processor::new(vec![site.clone()], ProcessingConfig::default());
        let (engine, handle) = Engine::new(
            EngineConfig::default(),
            processor,
            engine_metrics.clone(),
            system_clock(),
        );
        let engine = tokio::spawn(engine.run());
        let (_client, context) = within("connecting", WAIT, vigie_ingest::connect(&nats))
            .await
            .expect("connected to NATS");
        let sources = vec![SiteSource {
            site: site.id.clone(),
            calendar: site.calendar(),
        }];
        let started = Instant::now();
        let ingest = within(
            "preparing the ingestion",
            WAIT,
            Ingest::new(
                nats,
                context,
                sources,
                handle.clone(),
                engine_metrics,
                ingest_metrics,
                system_clock(),
            ),
        )
        .await
        .expect("the ingestion prepared");
        let ready = ingest.ready();
        let shutdown = CancellationToken::new();
        let ingest = tokio::spawn(ingest.run(shutdown.clone()));
        Vigie {
            handle,
            shutdown,
            ingest,
            engine,
            ready,
            registry,
            site: site.id.clone(),
            started,
        }
    }

    /// Waits until the site has recovered its day, at most `limit`; the time since the
    /// ingestion started.
    pub async fn wait_ready(&mut self, limit: Duration) -> Duration {
        within(
            "recovery",
            limit,
            self.ready.wait_for(|sites| sites.values().all(|r| *r)),
        )
        .await
        .expect("the ingestion runs");
        self.started.elapsed()
    }

    /// The processor's statistics of the site.
    pub async fn stats(&self) -> ProcessorStats {
        let site = self.site.clone();
        self.handle
            .query(move |state| state.processor.site(&site).map(|s| s.stats()))
            .await
            .expect("the engine runs")
            .unwrap_or_default()
    }

    /// Waits until exactly `events` distinct events were applied (more fails at once).
    pub async fn wait_applied(&self, events: u64) {
        within(&format!("{events} events applied"), WAIT, async {
            loop {
                let applied = self.stats().await.applied;
                if applied >= events {
                    assert_eq!(applied, events, "more events applied than published");
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
    }

    /// The site's views, every window.
    pub async fn views(&self) -> Vec<Value> {
        let site = self.site.clone();
        self.handle
            .query(move |state| {
                let site = state.processor.site(&site).expect("the site");
                Window::ALL
                    .iter()
                    .map(|w| serde_json::to_value(site.site_view(*w)).expect("a view encodes"))
                    .collect::<Vec<_>>()
            })
            .await
            .expect("the engine runs")
    }

    /// The metrics, as `/metrics` shows them.
    pub fn metrics(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("metrics encode");
        text
    }

    /// Stops as on SIGTERM: consumption stops, what is in flight is applied and acknowledged,
    /// the site's snapshot is saved. The metrics at the end.
    pub async fn stop(mut self) -> String {
        self.shutdown.cancel();
        within("the ingestion stopping", WAIT, &mut self.ingest)
            .await
            .expect("the ingestion ends")
            .expect("the ingestion stops cleanly");
        let metrics = self.metrics();
        drop(self.handle);
        within("the engine stopping", WAIT, self.engine)
            .await
            .expect("the engine ends");
        metrics
    }

    /// Stops as on a crash: nothing is finished.
    pub fn kill(self) {
        self.ingest.abort();
        self.engine.abort();
    }
}
