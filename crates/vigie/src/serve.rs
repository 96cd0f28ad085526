//! `vigie serve`: the service. Consumes a site's events from NATS JetStream, or, with no NATS
//! configured, runs the embedded demo centre; serves the gRPC API, and metrics, health and
//! readiness over HTTP.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use chrono::{NaiveTime, Timelike};
use clap::{Args, ValueEnum};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use vigie_api::history_store::HistoryStore;
use vigie_api::{Api, ApiMetrics, ChangeStore, FileChangeStore};
use vigie_core::{Processor, SiteConfig, Timestamp, Window};
use vigie_engine::{Clock, Engine, EngineHandle, EngineMetrics, SiteFeed, system_clock};
use vigie_ingest::{Ingest, IngestMetrics, NatsConfig, SiteSource};
use vigie_notify::NotifyMetrics;
use vigie_sim::{SimConfig, Simulation};

use crate::alerting;
use crate::changes::{NatsChangeStore, load_changes, load_rules};
use crate::cluster::{Cluster, ClusterConfig, ClusterMetrics};
use crate::config::VigieConfig;

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One readable line per record.
    Human,
    /// One JSON object per record (for log collectors).
    Json,
}

/// Arguments of `vigie serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Configuration file (`vigie.toml`). `VIGIE_*` environment variables override it
    /// (`VIGIE_NATS__URL`, `VIGIE_HTTP__LISTEN`...), and these flags override both.
    #[arg(long, env = "VIGIE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Consume events from this NATS server (`nats://host:4222`) instead of running the demo.
    #[arg(long, value_name = "URL")]
    pub nats: Option<String>,
    /// Address of the HTTP server (`/metrics`, `/healthz`, `/readyz`).
    #[arg(long, value_name = "ADDRESS")]
    pub http: Option<std::net::SocketAddr>,
    /// Address of the gRPC API (and gRPC-Web), default 127.0.0.1:50051. Without
    /// authentication configured (`[api.auth]`), only a loopback address is allowed.
    #[arg(long, value_name = "ADDRESS")]
    pub grpc_listen: Option<std::net::SocketAddr>,
    /// Address of the web wallboard (its pages and gRPC-Web on the same origin), default
    /// 127.0.0.1:8080.
    #[arg(long, value_name = "ADDRESS", conflicts_with = "no_web")]
    pub web_listen: Option<std::net::SocketAddr>,
    /// Do not serve the web wallboard.
    #[arg(long)]
    pub no_web: bool,
    /// Log format.
    #[arg(long, value_enum, default_value = "human")]
    pub log_format: LogFormat,
    /// Advisors of the demo centre (without NATS).
    #[arg(long, default_value_t = 60)]
    pub demo_advisors: usize,
    /// Queues of the demo centre.
    #[arg(long, default_value_t = 7)]
    pub demo_queues: usize,
    /// Seed of the demo centre's simulation.
    #[arg(long, default_value_t = 1)]
    pub demo_seed: u64,
    /// IANA time zone of the demo centre (`America/New_York`), default the machine's. Its
    /// simulated day opens four hours before the local time, at midnight at the earliest:
    /// shortly after midnight it has little to show; pick a zone where it is daytime.
    #[arg(long, value_name = "ZONE", env = "VIGIE_DEMO_TIME_ZONE")]
    pub demo_time_zone: Option<String>,
}

/// Sets up logging: `RUST_LOG` (or `VIGIE_LOG`) filters, default `info`.
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("VIGIE_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    // A second initialisation (tests running several services) keeps the first.
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Runs `vigie serve` until SIGINT or SIGTERM.
pub fn run(args: &ServeArgs) -> anyhow::Result<()> {
    init_logging(args.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("vigie")
        .build()
        .context("cannot start the runtime")?;
    runtime.block_on(async {
        let shutdown = CancellationToken::new();
        tokio::spawn(cancel_on_signal(shutdown.clone()));
        serve(args, shutdown).await
    })
}

async fn cancel_on_signal(shutdown: CancellationToken) {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => info!("SIGINT: stopping"),
        _ = terminate => info!("SIGTERM: stopping"),
    }
    shutdown.cancel();
}

/// What `/readyz` and `vigie_ready` report.
type Readiness = watch::Receiver<BTreeMap<String, bool>>;

/// The service, until `shutdown` is cancelled; then it stops consuming, lets the engine apply
/// and acknowledge what is in flight, and returns.
pub async fn serve(args: &ServeArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let mut config = VigieConfig::layered(args.config.as_deref())?;
    if let Some(url) = &args.nats {
        config.nats.get_or_insert_with(NatsConfig::default).url = url.clone();
    }
    if let Some(listen) = args.http {
        config.http.listen = listen;
    }
    if let Some(listen) = args.grpc_listen {
        config.api.listen = listen;
    }
    if let Some(listen) = args.web_listen {
        config.web.listen = listen;
    }
    if args.no_web {
        config.web.enabled = false;
    }
    let demo = match config.nats {
        Some(_) => None,
        None => Some(demo_centre(args)?),
    };
    if let Some(demo) = &demo {
        config.sites = vec![demo.site.clone()];
        // The demo runs the rules written for it, else the default pack, so alerts show.
        config.alert_rules.retain(|rule| rule.site == demo.site.id);
        if config.alert_rules.is_empty() {
            config.alert_rules = alerting::default_rules(&demo.site.id)?;
        }
    }
    config.validate()?;

    // Changes made through the Admin API apply over the configuration file.
    let (nats, nats_client) = match &config.nats {
        Some(nats) => {
            let (client, context) = vigie_ingest::connect(nats).await?;
            info!(url = %nats.url, stream = %nats.stream.name, sites = config.sites.len(), "connected to NATS");
            (Some(context), Some(client))
        }
        None => (None, None),
    };
    let file_sites = config.sites.clone();
    let (changes, kv_changes): (Arc<dyn ChangeStore>, Option<Arc<NatsChangeStore>>) = match &nats {
        Some(context) => {
            let replicas = config.nats.as_ref().map_or(1, |nats| nats.stream.replicas);
            let store =
                Arc::new(NatsChangeStore::open(context, &config.admin.bucket, replicas).await?);
            (store.clone(), Some(store))
        }
        None => {
            let dir = config.admin.demo_dir();
            info!(dir = %dir.display(), "configuration changes of the demo kept in local files");
            (Arc::new(FileChangeStore::new(dir)), None)
        }
    };
    load_changes(changes.as_ref(), &mut config.sites).await?;
    load_rules(changes.as_ref(), &config.sites, &mut config.alert_rules).await?;

    let mut registry = Registry::default();
    let engine_metrics = EngineMetrics::new(&mut registry);
    let ready_gauge = Gauge::<i64>::default();
    registry.register(
        "vigie_ready",
        "1 once every site has recovered its day and is live",
        ready_gauge.clone(),
    );
    let ingest_metrics = IngestMetrics::new(&mut registry);
    let api_metrics = ApiMetrics::new(&mut registry);
    let notify_metrics = NotifyMetrics::new(&mut registry);
    let history_metrics = crate::history::HistoryMetrics::new(&mut registry);
    let cluster_metrics = config
        .cluster
        .as_ref()
        .map(|_| ClusterMetrics::new(&mut registry));
    let view_metrics = config
        .cluster
        .as_ref()
        .map(|_| crate::views::ViewMetrics::new(&mut registry));
    let call_metrics = config
        .cluster
        .as_ref()
        .map(|_| crate::calls::CallMetrics::new(&mut registry));
    // The HTTP ingest endpoint ([ingest_http]): only when enabled, and only with NATS (the
    // configuration's validation already refuses it without).
    if config.ingest_http.enabled {
        let (Some(nats_config), Some(context)) = (&config.nats, &nats) else {
            anyhow::bail!(
                "ingest_http.enabled: the HTTP ingest endpoint publishes to NATS JetStream: configure [nats] (or --nats)"
            );
        };
        let sites = config.sites.iter().map(|site| site.id.clone()).collect();
        let metrics = crate::ingest_http::IngestHttpMetrics::new(&mut registry);
        let endpoint = crate::ingest_http::IngestHttp::new(
            &config.ingest_http,
            nats_config,
            context.clone(),
            &sites,
            metrics,
        )?;
        tokio::spawn(endpoint.bind(shutdown.clone()).await?);
    }
    let registry = Arc::new(registry);

    // Interval history: JetStream streams next to the events, or kept in memory by the demo.
    let history_store: Arc<dyn HistoryStore> = match &nats {
        Some(context) => Arc::new(
            config
                .history
                .open(context)
                .await
                .context("interval history ([history])")?,
        ),
        None => Arc::new(config.history.memory()),
    };

    // Alerts: evaluated by the engine, delivered by the notifier off the engine's path.
    let alert_engines = alerting::alert_engines(&config.sites, &config.alert_rules)?;
    let (notifier, notifier_handle) = config
        .notify
        .build(nats_client.clone(), notify_metrics)
        .context("alert delivery ([notify])")?;
    let notifier_task = tokio::spawn(notifier.run());
    let (notifications_tx, notifications_rx) = tokio::sync::mpsc::channel(1024);
    info!(
        rules = config.alert_rules.len(),
        routes = config.notify.routes.len(),
        "alert rules loaded"
    );

    let clock = system_clock();
    let processor = Processor::new(config.sites.clone(), config.processing.clone());
    let (engine, handle) = Engine::new(
        config.engine.clone(),
        processor,
        engine_metrics.clone(),
        clock.clone(),
    );
    let (history_tx, history_rx) = tokio::sync::mpsc::channel(crate::history::HISTORY_BACKLOG);
    let instance = config.cluster.as_ref().map_or_else(
        || ClusterConfig::default().instance_name(),
        ClusterConfig::instance_name,
    );
    let engine = engine
        .with_instance(&instance)
        .with_alerts(alert_engines, Some(notifications_tx))
        .with_history(history_tx);
    // Subscribed before the engine runs: the recorder misses no alert change.
    let alert_updates = handle.subscribe_alerts();
    let engine_task = tokio::spawn(engine.run());
    tokio::spawn(crate::history::run(
        history_store.clone(),
        history_rx,
        history_metrics.clone(),
        shutdown.clone(),
    ));
    tokio::spawn(crate::history::record_alerts(
        history_store.clone(),
        handle.clone(),
        alert_updates,
        history_metrics,
        shutdown.clone(),
    ));
    tokio::spawn(alerting::deliver(
        notifications_rx,
        notifier_handle,
        config.sites.clone(),
    ));

    let listener = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .with_context(|| format!("cannot listen on {} (http.listen)", config.http.listen))?;
    info!(address = %config.http.listen, "metrics on /metrics, health on /healthz and /readyz");
    let grpc_listener = tokio::net::TcpListener::bind(config.api.listen)
        .await
        .with_context(|| format!("cannot listen on {} (api.listen)", config.api.listen))?;
    let mut api = Api::new(
        config.api.clone(),
        handle.clone(),
        changes,
        api_metrics,
        shutdown.clone(),
    )?
    .with_history(history_store.clone());
    // Several instances: the views of the sites processed here go to the others, theirs come
    // here.
    if let (Some(cluster), Some(client), Some(metrics), Some(call_metrics), Some(nats_config)) = (
        &config.cluster,
        &nats_client,
        view_metrics,
        call_metrics,
        &config.nats,
    ) {
        // What only a site's owner answers is sent to it, and the calls of the others are
        // answered here.
        api = api.with_forwarder(Arc::new(crate::calls::NatsForwarder::new(
            client.clone(),
            nats_config.request_timeout.0,
            call_metrics.clone(),
        )));
        let answering = crate::calls::answer(
            client.clone(),
            api.forwarded_calls(),
            instance.clone(),
            call_metrics,
            shutdown.clone(),
        );
        tokio::spawn(async move {
            if let Err(error) = answering.await {
                warn!(error = %format!("{error:#}"), "the calls of the other instances are not answered");
            }
        });
        tokio::spawn(crate::views::publish(
            client.clone(),
            handle.clone(),
            instance.clone(),
            cluster.publish_interval.0,
            metrics.clone(),
            shutdown.clone(),
        ));
        let receiving = crate::views::receive(
            client.clone(),
            api.remote_views(),
            instance.clone(),
            metrics,
            shutdown.clone(),
        );
        tokio::spawn(async move {
            if let Err(error) = receiving.await {
                warn!(error = %format!("{error:#}"), "the views of the other instances are not received");
            }
        });
    }
    if config.web.enabled {
        let web_listener = tokio::net::TcpListener::bind(config.web.listen)
            .await
            .with_context(|| format!("cannot listen on {} (web.listen)", config.web.listen))?;
        api = api.with_web(web_listener);
    }
    if let Some(store) = kv_changes {
        let (engine, notices, token) = (handle.clone(), api.notices(), shutdown.clone());
        tokio::spawn(async move {
            if let Err(error) = store.follow(file_sites, engine, notices, token).await {
                warn!(error = %format!("{error:#}"), "configuration changes of other instances are not followed");
            }
        });
    }

    let (source, ready): (tokio::task::JoinHandle<anyhow::Result<()>>, Readiness) = match (
        &config.nats,
        nats,
        demo,
    ) {
        (Some(nats), Some(context), _) => {
            let sites: Vec<SiteSource> = config
                .sites
                .iter()
                .map(|site| SiteSource {
                    site: site.id.clone(),
                    calendar: site.calendar(),
                })
                .collect();
            // Clustered, sites are consumed as this instance takes them.
            let fixed_sites = match &cluster_metrics {
                Some(_) => Vec::new(),
                None => sites.clone(),
            };
            let ingest = Ingest::new(
                nats.clone(),
                context.clone(),
                fixed_sites,
                handle.clone(),
                engine_metrics,
                ingest_metrics,
                clock.clone(),
            )
            .await?;
            let ready = ingest.ready();
            let token = shutdown.clone();
            let task = match (&config.cluster, cluster_metrics) {
                (Some(cluster_config), Some(metrics)) => {
                    let cluster = Cluster::open(
                        cluster_config,
                        &context,
                        nats.stream.replicas,
                        sites,
                        ingest,
                        handle.clone(),
                        metrics,
                    )
                    .await
                    .context("site ownership ([cluster])")?;
                    tokio::spawn(cluster.run(token))
                }
                _ => tokio::spawn(
                    async move { ingest.run(token).await.map_err(anyhow::Error::from) },
                ),
            };
            (task, ready)
        }
        (None, _, Some(demo)) => {
            warn!(
                "no NATS configured: serving the embedded demo centre (simulated events; not for production)"
            );
            let (ready_tx, ready) = watch::channel(BTreeMap::from([(demo.site.id.clone(), false)]));
            let feed = demo_feed(
                demo,
                handle.clone(),
                clock.clone(),
                ready_tx,
                shutdown.clone(),
            );
            (tokio::spawn(feed), ready)
        }
        _ => unreachable!("NATS is connected when configured, the demo prepared when not"),
    };
    let (all_ready_tx, all_ready) = watch::channel(false);
    tokio::spawn(track_readiness(ready.clone(), ready_gauge, all_ready_tx));
    let grpc = tokio::spawn(api.serve(grpc_listener, all_ready));
    tokio::spawn(log_summaries(handle.clone(), shutdown.clone()));

    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(HttpState { registry, ready });
    let http_shutdown = shutdown.clone();
    let http = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { http_shutdown.cancelled().await })
            .await
    });

    let source_result = source
        .await
        .context("the event source stopped abnormally")?;
    if let Err(error) = &source_result {
        warn!(error = %format!("{error:#}"), "the event source failed: stopping");
        shutdown.cancel();
    }
    drop(handle);
    // The engine ends when its last handle is gone (the summary logger drops its own at
    // shutdown): what was queued is applied first.
    let state = tokio::time::timeout(Duration::from_secs(30), engine_task)
        .await
        .context("the engine did not stop within 30 s")?
        .context("the engine stopped abnormally")?;
    for site in state.processor.sites() {
        let stats = site.stats();
        info!(site = %site.site().id, applied = stats.applied, duplicates = stats.duplicates, "stopped");
    }
    shutdown.cancel();
    match tokio::time::timeout(Duration::from_secs(10), http).await {
        Ok(Ok(Err(error))) => warn!(%error, "HTTP server error"),
        Err(_) => warn!("the HTTP server did not stop within 10 s"),
        _ => {}
    }
    // The notifier stops once the engine's notifications end, after its grace period.
    if tokio::time::timeout(Duration::from_secs(15), notifier_task)
        .await
        .is_err()
    {
        warn!("alert delivery did not stop within 15 s");
    }
    match tokio::time::timeout(Duration::from_secs(10), grpc).await {
        Ok(Ok(Err(error))) => warn!(error = %error, "gRPC server error"),
        Err(_) => warn!("the gRPC server did not stop within 10 s"),
        _ => {}
    }
    source_result
}

#[derive(Clone)]
struct HttpState {
    registry: Arc<Registry>,
    ready: Readiness,
}

async fn metrics(State(state): State<HttpState>) -> impl IntoResponse {
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, &state.registry) {
        Ok(()) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        ),
        Err(error) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain")],
            error.to_string(),
        ),
    }
}

async fn readyz(State(state): State<HttpState>) -> impl IntoResponse {
    let sites = state.ready.borrow().clone();
    let ready = sites.values().all(|ready| *ready);
    let body = serde_json::json!({ "ready": ready, "sites": sites });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
}

async fn track_readiness(mut ready: Readiness, gauge: Gauge<i64>, all_ready: watch::Sender<bool>) {
    loop {
        let all = ready.borrow_and_update().values().all(|ready| *ready);
        gauge.set(i64::from(all));
        all_ready.send_replace(all);
        if ready.changed().await.is_err() {
            return;
        }
    }
}

/// Logs a line per site every 10 seconds: what a supervisor would glance at.
async fn log_summaries(handle: EngineHandle, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(Duration::from_secs(10));
    every.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every.tick() => {}
        }
        let summaries = handle
            .query(|state| {
                state
                    .processor
                    .sites()
                    .map(|site| {
                        let view = site.site_view(Window::Today);
                        let totals = view.totals;
                        let stats = site.stats();
                        (
                            view.site,
                            view.as_of,
                            totals,
                            stats,
                            state.feed(&site.site().id).complete(),
                        )
                    })
                    .collect::<Vec<_>>()
            })
            .await;
        let Ok(summaries) = summaries else { return };
        for (site, as_of, totals, stats, complete) in summaries {
            let by_state = totals.advisors;
            info!(
                site = %site,
                as_of = %as_of,
                complete,
                events = stats.applied,
                service_level = ?totals.flow.service_level.map(|sl| (sl * 1000.0).round() / 10.0),
                abandon_rate = ?totals.flow.abandon_rate.map(|r| (r * 1000.0).round() / 10.0),
                in_queue = totals.live.in_queue,
                longest_wait = ?totals.live.longest_wait,
                available = by_state.available,
                busy = by_state.offered + by_state.talking + by_state.on_hold + by_state.acw,
                pause = by_state.pause,
                "today"
            );
        }
    }
}

/// The embedded demo centre: a simulated site in the machine's time zone.
struct Demo {
    site: SiteConfig,
    config: SimConfig,
}

fn local_zone() -> String {
    iana_time_zone::get_timezone()
        .ok()
        .filter(|name| name.parse::<chrono_tz::Tz>().is_ok())
        .unwrap_or_else(|| "UTC".to_owned())
}

/// The simulated day around `now`: it opened four hours ago (or at midnight) and runs for
/// twelve hours (or until midnight), so that the demo is busy whatever the time.
fn demo_day(base: &SimConfig, now: Timestamp) -> SimConfig {
    let zone: chrono_tz::Tz = base.time_zone.parse().unwrap_or(chrono_tz::UTC);
    let local = now.to_utc().with_timezone(&zone);
    let hour = local.hour();
    let open_hour = hour.saturating_sub(4);
    let open = NaiveTime::from_hms_opt(open_hour, 0, 0).unwrap_or(NaiveTime::MIN);
    let close = if open_hour + 12 >= 24 {
        NaiveTime::from_hms_opt(23, 59, 0).unwrap_or(NaiveTime::MIN)
    } else {
        NaiveTime::from_hms_opt(open_hour + 12, 0, 0).unwrap_or(NaiveTime::MIN)
    };
    SimConfig {
        date: local.date_naive(),
        open,
        close,
        ..base.clone()
    }
}

fn demo_centre(args: &ServeArgs) -> anyhow::Result<Demo> {
    let time_zone = match &args.demo_time_zone {
        Some(zone) => {
            zone.parse::<chrono_tz::Tz>().map_err(|_| {
                anyhow::anyhow!(
                    "--demo-time-zone: {zone:?} is not an IANA time zone (like Europe/Paris or America/New_York)"
                )
            })?;
            zone.clone()
        }
        None => local_zone(),
    };
    let base = SimConfig {
        seed: args.demo_seed,
        site_id: "demo".to_owned(),
        site_name: Some("Demo centre (simulated)".to_owned()),
        time_zone,
        advisors: args.demo_advisors,
        queues: args.demo_queues,
        ..SimConfig::default()
    };
    let config = demo_day(&base, system_clock()());
    let simulation =
        Simulation::new(&config).map_err(|errors| anyhow::anyhow!("demo centre: {errors}"))?;
    Ok(Demo {
        site: simulation.site_config(),
        config: base,
    })
}

/// Feeds the engine with the demo day as the clock advances: what happened since the day's
/// opening at once, then each event when its time comes. A new day starts when one ends.
async fn demo_feed(
    demo: Demo,
    handle: EngineHandle,
    clock: Clock,
    ready: watch::Sender<BTreeMap<String, bool>>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    loop {
        let day = demo_day(&demo.config, clock());
        let simulation =
            Simulation::new(&day).map_err(|errors| anyhow::anyhow!("demo centre: {errors}"))?;
        let over = simulation.close_time() + vigie_core::Millis::from_mins(60);
        info!(date = %day.date, open = %day.open, close = %day.close, "demo centre: a new simulated day");
        let mut feed = simulation.into_feed();
        let mut first = true;
        // Catching up with the day so far is a recovery: figures are not complete before it
        // ends, and no interval is recorded at its close meanwhile (only once final).
        let recovering = SiteFeed::recovering();
        handle.set_feed(&demo.site.id, recovering).await?;
        loop {
            let now = clock();
            let mut batch = Vec::new();
            while let Some(event) = feed.next_until(now) {
                batch.push(event);
                if batch.len() == 4096 {
                    handle.feed(std::mem::take(&mut batch)).await?;
                }
            }
            if first {
                first = false;
                // Batches are applied in order: once this one is, the day so far is.
                handle.apply(batch).await?;
                handle.set_feed(&demo.site.id, SiteFeed::default()).await?;
                ready.send_modify(|ready| ready.values_mut().for_each(|r| *r = true));
                info!("demo centre: live");
            } else if !batch.is_empty() {
                handle.feed(batch).await?;
            }
            if now > over {
                break;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
        }
    }
}
