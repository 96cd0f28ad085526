#![allow(clippy::unwrap_used)] // Test helpers fail loudly at the first surprise, on purpose.
//! An in-process Vigie (engine and gRPC API, no NATS) for the API tests, with a clock the
//! test sets, and a small simulated day to feed it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::{Days, NaiveTime};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use vigie_alerts::{AlertEngine, RuleConfig};
use vigie_api::{Api, ApiConfig, ApiMetrics};
use vigie_core::{Event, ProcessingConfig, Processor, SiteConfig, Timestamp};
use vigie_engine::{Clock, Engine, EngineConfig, EngineHandle, EngineMetrics};
use vigie_proto::v1::supervision_client::SupervisionClient;
use vigie_sim::{SimConfig, Simulation};

/// How long a test waits for anything.
pub const WAIT: Duration = Duration::from_secs(30);

/// A small simulated day, yesterday (so every window is over a finished day).
pub fn day(seed: u64, advisors: usize) -> (SiteConfig, Vec<Event>) {
    let zone: chrono_tz::Tz = "Europe/Paris".parse().unwrap();
    let yesterday = chrono::Utc::now().with_timezone(&zone).date_naive() - Days::new(1);
    let config = SimConfig {
        seed,
        advisors,
        queues: 3,
        date: yesterday,
        open: NaiveTime::from_hms_opt(8, 0, 0).unwrap(),
        close: NaiveTime::from_hms_opt(12, 0, 0).unwrap(),
        ..SimConfig::default()
    };
    let simulation = Simulation::new(&config).unwrap();
    (simulation.site_config(), simulation.collect())
}

/// The `[[alert_rule]]` tables of a configuration text.
///
/// # Panics
///
/// When the text does not parse as rules.
pub fn alert_rules(text: &str) -> Vec<RuleConfig> {
    #[derive(serde::Deserialize)]
    struct File {
        alert_rule: Vec<RuleConfig>,
    }
    toml::from_str::<File>(text)
        .unwrap_or_else(|error| panic!("alert rules: {error}\n{text}"))
        .alert_rule
}

/// Vigie's engine and API in this process, with a clock the test sets.
#[derive(Debug)]
pub struct Served {
    /// The engine.
    pub handle: EngineHandle,
    /// The gRPC address.
    pub address: SocketAddr,
    /// The engine's clock, in milliseconds since the epoch.
    pub now: Arc<AtomicI64>,
    /// Whether the service reports itself ready (gRPC health).
    pub ready: watch::Sender<bool>,
    /// The engine's and the API's metrics.
    pub registry: prometheus_client::registry::Registry,
    /// Where Admin API changes are kept.
    pub changes: tempfile::TempDir,
    /// Where the views published by another instance go (a site processed elsewhere).
    pub remote: Arc<vigie_api::RemoteViews>,
    /// The `Notices` service (to tell it of notices another instance kept).
    pub notices: vigie_api::NoticesService,
    /// What answers the calls other instances forward to this one.
    pub calls: vigie_api::ForwardedCalls,
    shutdown: CancellationToken,
}

impl Served {
    /// Starts an engine for `site` at `now` and the API with `config` on a free port.
    pub async fn start(site: &SiteConfig, now: Timestamp, config: ApiConfig) -> Served {
        Served::start_with(site, now, config, Options::default()).await
    }

    /// [`Served::start`] with an alert engine for the site running `rules` (those of other
    /// sites are ignored; none: the site runs alerts without rules), and the engine's smallest
    /// broadcast of updates (16), so that a stream that does not read falls behind quickly.
    pub async fn start_with_rules(
        site: &SiteConfig,
        now: Timestamp,
        config: ApiConfig,
        rules: Vec<RuleConfig>,
    ) -> Served {
        let options = Options {
            rules: Some(rules),
            ..Options::default()
        };
        Served::start_with(site, now, config, options).await
    }

    /// The value of a metric without labels, as the `/metrics` endpoint would show it.
    pub fn metric(&self, name: &str) -> Option<f64> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).unwrap();
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    }

    /// A connection to the server.
    pub async fn channel(&self) -> Channel {
        tonic::transport::Endpoint::from_shared(format!("http://{}", self.address))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    /// A client of the `Supervision` service.
    pub async fn client(&self) -> SupervisionClient<Channel> {
        SupervisionClient::new(self.channel().await).max_decoding_message_size(64 * 1024 * 1024)
    }

    /// Applies events in batches, waiting for each.
    pub async fn feed(&self, events: &[Event]) {
        for batch in events.chunks(2048) {
            self.handle.apply(batch.to_vec()).await.unwrap();
        }
    }
}

/// What [`Served::start_with`] sets up differently from [`Served::start`].
#[derive(Debug, Default)]
pub struct Options {
    /// Where Admin changes, alert rules and notices are kept; a `FileChangeStore` in
    /// [`Served::changes`] when `None`.
    pub store: Option<Arc<dyn vigie_api::ChangeStore>>,
    /// The wall clock of the `Notices` service; the system's when `None`.
    pub notices_clock: Option<Arc<dyn vigie_api::WallClock>>,
    /// An alert engine for the site running these rules (those of other sites are ignored;
    /// none: the site runs alerts without rules), with the engine's smallest broadcast of
    /// updates (16), so that a stream that does not read falls behind quickly.
    pub rules: Option<Vec<RuleConfig>>,
    /// Where the calls about sites processed elsewhere are sent.
    pub forwarder: Option<Arc<dyn vigie_api::Forwarder>>,
    /// The store of the `History` service (without one, its calls answer UNAVAILABLE).
    pub history: Option<Arc<dyn vigie_api::history_store::HistoryStore>>,
}

impl Served {
    /// [`Served::start`] with its own change store or notices clock (to start again over the
    /// same store, or make the store fail; to expire notices without waiting), alert rules,
    /// or a forwarder.
    pub async fn start_with(
        site: &SiteConfig,
        now: Timestamp,
        config: ApiConfig,
        options: Options,
    ) -> Served {
        let mut registry = prometheus_client::registry::Registry::default();
        let time = Arc::new(AtomicI64::new(now.0));
        let clock_time = time.clone();
        let clock: Clock = Arc::new(move || Timestamp(clock_time.load(Ordering::SeqCst)));
        let processor = Processor::new(vec![site.clone()], ProcessingConfig::default());
        let mut engine_config = EngineConfig {
            tick: vigie_core::config::HumanDuration(Duration::from_millis(20)),
            refresh: vigie_core::config::HumanDuration(Duration::from_millis(200)),
            ..EngineConfig::default()
        };
        if options.rules.is_some() {
            engine_config.update_capacity = 16;
        }
        let (engine, handle) = Engine::new(
            engine_config,
            processor,
            EngineMetrics::new(&mut registry),
            clock,
        );
        let engine = match options.rules {
            Some(rules) => {
                let alerts = AlertEngine::new(&site.id, &rules).unwrap();
                engine.with_alerts(BTreeMap::from([(site.id.clone(), alerts)]), None)
            }
            None => engine,
        };
        tokio::spawn(engine.run());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let changes = tempfile::tempdir().unwrap();
        let store = options.store.unwrap_or_else(|| {
            Arc::new(vigie_api::FileChangeStore::new(changes.path().to_owned()))
        });
        let mut api = Api::new(
            config,
            handle.clone(),
            store,
            ApiMetrics::new(&mut registry),
            shutdown.clone(),
        )
        .unwrap();
        if let Some(clock) = options.notices_clock {
            api = api.with_notices_clock(clock);
        }
        if let Some(history) = options.history {
            api = api.with_history(history);
        }
        if let Some(forwarder) = options.forwarder {
            api = api.with_forwarder(forwarder);
        }
        let remote = api.remote_views();
        let notices = api.notices();
        let calls = api.forwarded_calls();
        let (ready, ready_rx) = watch::channel(false);
        tokio::spawn(api.serve(listener, ready_rx));
        Served {
            handle,
            address,
            now: time,
            ready,
            registry,
            changes,
            remote,
            notices,
            calls,
            shutdown,
        }
    }

    /// Stops the service, as at shutdown: open streams end with UNAVAILABLE.
    pub fn stop(&self) {
        self.shutdown.cancel();
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
