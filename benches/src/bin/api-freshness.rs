//! Freshness of the gRPC API: the time from an event's publication to NATS JetStream to its
//! effect on `WatchTeam` clients, with 1, 100 and 1,000 concurrent streams on one team, while
//! a background load of 1,000 or 10,000 events per second flows through the same site.
//!
//! One nats-server of its own on 127.0.0.1, and in this process Vigie wired as `vigie serve`
//! wires it (engine on the system clock, ingestion from the server, two gRPC APIs on the same
//! engine: the default coalescing interval of 100 ms, and 10 ms for the baseline), plus the
//! publishers and the clients on a runtime of their own.
//!
//! The load is a simulated day of a large site, each event's time rewritten to the instant it
//! is published (so every event is live, never late), paced to the target rate. Every 50 ms a
//! probe event changes the status of a dedicated advisor of the watched team (pause, then
//! available, then pause...); each probe's event time is unique, so a client that sees the
//! probe advisor's `state_since` at that time sees that probe (and the ones before it) applied.
//! For each stream and each probe published in the measurement window, latency = the instant
//! the stream's message shows it - the instant just before the probe was handed to NATS.
//! A plain NATS subscriber on the probes' subject gives, in the same run, the share of the
//! broker alone; a cell without streams at each rate gives the time until the engine has
//! applied a probe and the time to read the team's view from the engine (what a topic does
//! once per interval); the metrics of the engine and of each API give the frames published,
//! the resyncs (a stream skipped frames) and the engine's batches.
//!
//! `cargo run --release -p vigie-benches --bin api-freshness [SECONDS_PER_CELL] [--nodelay]`
//!
//! `--nodelay` sets `TCP_NODELAY` on the API's listening sockets, which the accepted
//! connections inherit on Linux: `Api::serve` takes a bound listener, and tonic applies its
//! own `tcp_nodelay` setting only to listeners it binds itself, so without this flag the
//! server's connections run with Nagle's algorithm, as in `vigie serve`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use async_nats::header::NATS_MESSAGE_ID;
use futures::StreamExt;
use hdrhistogram::Histogram;
use prometheus_client::registry::Registry;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};
use vigie_api::{Api, ApiConfig, ApiMetrics, ChangeStore, FileChangeStore};
use vigie_core::{ProcessingConfig, Processor, SiteConfig, Timestamp};
use vigie_engine::{Engine, EngineConfig, EngineHandle, EngineMetrics, EngineState, system_clock};
use vigie_ingest::publish::{PublishStats, Publisher, PublisherConfig, site_message_subject};
use vigie_ingest::{Ingest, IngestMetrics, NatsConfig, SiteSource};
use vigie_proto::v1 as pb;
use vigie_proto::v1::supervision_client::SupervisionClient;
use vigie_sim::{SimConfig, Simulation};
use vigie_tests::nats::NatsServer;

#[global_allocator]
static GLOBAL: vigie_benches::Allocator = vigie_benches::ALLOCATOR;

/// The advisor whose status the probes change; on the watched team's roster.
const PROBE_ADVISOR: &str = "probe-advisor";
/// How often a probe is published.
const PROBE_EVERY: Duration = Duration::from_millis(50);
/// HTTP/2 connections the streams of a cell are spread over.
const CONNECTIONS: usize = 10;
/// After the measurement window, how long a stream may still show the window's last probes.
const GRACE: Duration = Duration::from_secs(2);
/// After a change of rate, before the first cell at that rate.
const WARM_UP: Duration = Duration::from_secs(3);
/// How long anything is waited for (connections, snapshots, recovery).
const WAIT: Duration = Duration::from_secs(60);
/// The simulated site: large enough that its day lasts the whole run at 10,000 events/s.
const ADVISORS: usize = 4_000;
const QUEUES: usize = 200;

/// The cells: (events per second, coalescing interval in updates per second, streams). The
/// first cell of each rate, without streams, measures the stages.
const CELLS: &[(u64, u32, usize)] = &[
    (1_000, 10, 0),
    (1_000, 100, 1),
    (1_000, 10, 1),
    (1_000, 10, 100),
    (1_000, 10, 1_000),
    (10_000, 10, 0),
    (10_000, 100, 1),
    (10_000, 10, 1),
    (10_000, 10, 100),
    (10_000, 10, 1_000),
];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let nodelay = args.iter().any(|a| a == "--nodelay");
    let seconds = args
        .iter()
        .find_map(|a| a.parse::<u64>().ok())
        .unwrap_or(10);
    let window = Duration::from_secs(seconds);
    let server = NatsServer::start();
    let nats = server.nats_config();

    let zone: chrono_tz::Tz = "Europe/Paris".parse().expect("a time zone");
    let config = SimConfig {
        advisors: ADVISORS,
        queues: QUEUES,
        date: chrono::Utc::now().with_timezone(&zone).date_naive(),
        duplicate_share: 0.0,
        ..SimConfig::default()
    };
    let simulation = Simulation::new(&config).expect("valid settings");
    let mut site = simulation.site_config();
    let team = site.teams.first_mut().expect("the site has teams");
    team.advisors.push(PROBE_ADVISOR.to_owned());
    let team_id = team.id.clone();
    let team_size = team.advisors.len();

    // Vigie on a runtime of its own (as a separate service would be), the harness on another.
    let vigie_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("vigie")
        .enable_all()
        .build()
        .expect("a runtime");
    let harness = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("harness")
        .enable_all()
        .build()
        .expect("a runtime");

    // The stream exists before Vigie starts, as in production.
    let (_client, _context) = harness.block_on(server.connect_with_stream());
    let intervals: Vec<u32> = {
        let mut rates: Vec<u32> = CELLS.iter().map(|&(_, per_second, _)| per_second).collect();
        rates.sort_unstable();
        rates.dedup();
        rates
    };
    // Beside the server's storage, removed with it.
    let changes = server.store_dir().with_file_name("vigie-changes");
    let vigie = vigie_runtime.block_on(Vigie::start(
        nats.clone(),
        &site,
        &intervals,
        nodelay,
        changes,
    ));
    println!(
        "site {}: {ADVISORS} advisors, {QUEUES} queues; watched team {team_id} ({team_size} advisors, the probe included); {seconds} s per cell; API sockets {}",
        site.id,
        if nodelay {
            "with TCP_NODELAY (--nodelay)"
        } else {
            "as `vigie serve` opens them (Nagle's algorithm on)"
        }
    );

    let outcome = harness.block_on(run(
        &server, &nats, &site, &team_id, simulation, &vigie, window,
    ));
    print_table(&outcome.cells);
    print_stages(&outcome.stages);
    println!(
        "load publisher: {} sent, {} stored, {} failed; probes: {}",
        outcome.load.sent, outcome.load.stored, outcome.load.failed, outcome.probes
    );
    let stats = harness.block_on(site_stats(&vigie.handle, &site.id));
    println!(
        "processor: {} applied, {} duplicates, rejected {:?}",
        stats.applied, stats.duplicates, stats.rejected
    );
    vigie_runtime.block_on(vigie.stop());
    harness.shutdown_timeout(Duration::from_secs(5));
    vigie_runtime.shutdown_timeout(Duration::from_secs(5));
}

/// Vigie in this process: engine, ingestion and one gRPC API per coalescing interval.
struct Vigie {
    handle: EngineHandle,
    /// Metrics of the engine and the ingestion.
    registry: Registry,
    /// Address and metrics of the API by updates per second.
    apis: BTreeMap<u32, (SocketAddr, Registry)>,
    shutdown: CancellationToken,
    engine: JoinHandle<EngineState>,
    ingest: JoinHandle<Result<(), vigie_ingest::IngestError>>,
    _ready: watch::Sender<bool>,
}

impl Vigie {
    async fn start(
        nats: NatsConfig,
        site: &SiteConfig,
        intervals: &[u32],
        nodelay: bool,
        changes: PathBuf,
    ) -> Vigie {
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
        let (_client, context) = vigie_ingest::connect(&nats).await.expect("connected");
        let sources = vec![SiteSource {
            site: site.id.clone(),
            calendar: site.calendar(),
        }];
        let ingest = Ingest::new(
            nats,
            context,
            sources,
            handle.clone(),
            engine_metrics,
            ingest_metrics,
            system_clock(),
        )
        .await
        .expect("the ingestion");
        let mut ready = ingest.ready();
        let shutdown = CancellationToken::new();
        let ingest = tokio::spawn(ingest.run(shutdown.clone()));
        tokio::time::timeout(WAIT, ready.wait_for(|sites| sites.values().all(|r| *r)))
            .await
            .expect("recovery in time")
            .expect("the ingestion runs");

        let (ready_tx, ready_rx) = watch::channel(true);
        // The administration service keeps its changes there; nothing is changed in this run.
        let changes: Arc<dyn ChangeStore> = Arc::new(FileChangeStore::new(changes));
        let mut apis = BTreeMap::new();
        for &per_second in intervals {
            let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
            if nodelay {
                socket.set_nodelay(true).expect("TCP_NODELAY");
            }
            socket
                .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
                .expect("a free port");
            let listener = socket.listen(1024).expect("listening");
            let address = listener.local_addr().expect("a bound address");
            let config = ApiConfig {
                listen: address,
                max_updates_per_second: per_second,
                ..ApiConfig::default()
            };
            let mut api_registry = Registry::default();
            let api = Api::new(
                config,
                handle.clone(),
                changes.clone(),
                ApiMetrics::new(&mut api_registry),
                shutdown.clone(),
            )
            .expect("the API");
            tokio::spawn(api.serve(listener, ready_rx.clone()));
            apis.insert(per_second, (address, api_registry));
        }
        Vigie {
            handle,
            registry,
            apis,
            shutdown,
            engine,
            ingest,
            _ready: ready_tx,
        }
    }

    /// The counters a cell reports, now.
    fn counters(&self, per_second: u32) -> Counters {
        let text = |registry: &Registry| {
            let mut text = String::new();
            prometheus_client::encoding::text::encode(&mut text, registry).expect("metrics encode");
            text
        };
        let engine = text(&self.registry);
        let api = self
            .apis
            .get(&per_second)
            .map(|(_, registry)| text(registry))
            .unwrap_or_default();
        Counters {
            frames: metric(&api, "vigie_api_frames_published_total"),
            resyncs: metric(&api, r#"vigie_api_stream_messages_total{kind="resync"}"#),
            messages: metric(&api, "vigie_api_stream_messages_total"),
            batches: metric(&engine, "vigie_engine_apply_seconds_count"),
            apply_seconds: metric(&engine, "vigie_engine_apply_seconds_sum"),
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(WAIT, self.ingest).await;
        drop(self.handle);
        let _ = tokio::time::timeout(WAIT, self.engine).await;
    }
}

async fn site_stats(handle: &EngineHandle, site: &str) -> vigie_core::ProcessorStats {
    let site = site.to_owned();
    handle
        .query(move |state| {
            state
                .processor
                .site(&site)
                .map(|s| s.stats())
                .unwrap_or_default()
        })
        .await
        .expect("the engine runs")
}

/// The sum of the samples of `name` (with its labels, or every label set when none are given)
/// in metrics text.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            let rest = if name.ends_with('}') {
                rest
            } else if let Some(labelled) = rest.strip_prefix('{') {
                labelled.split_once('}')?.1
            } else {
                rest
            };
            rest.strip_prefix(' ')?
                .split(' ')
                .next()?
                .parse::<f64>()
                .ok()
        })
        .sum()
}

/// Counters of the engine and of one API.
#[derive(Clone, Copy, Debug, Default)]
struct Counters {
    frames: f64,
    resyncs: f64,
    messages: f64,
    batches: f64,
    apply_seconds: f64,
}

impl std::ops::Sub for Counters {
    type Output = Counters;
    fn sub(self, before: Counters) -> Counters {
        Counters {
            frames: self.frames - before.frames,
            resyncs: self.resyncs - before.resyncs,
            messages: self.messages - before.messages,
            batches: self.batches - before.batches,
            apply_seconds: self.apply_seconds - before.apply_seconds,
        }
    }
}

fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// One probe: its event time (unique, increasing) and when it was handed to NATS.
#[derive(Clone, Copy, Debug)]
struct Probe {
    time: i64,
    at: Instant,
}

/// The probes published so far, in order (the index is the sequence number in the event id).
#[derive(Debug, Default)]
struct ProbeLog {
    probes: Mutex<Vec<Probe>>,
}

impl ProbeLog {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Probe>> {
        self.probes.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push(&self, probe: Probe) -> usize {
        let mut probes = self.lock();
        probes.push(probe);
        probes.len() - 1
    }

    fn get(&self, seq: usize) -> Option<Probe> {
        self.lock().get(seq).copied()
    }

    /// A stream sees the probe of event time `time`, having seen the one of `after` before:
    /// every probe in between is now visible. Records their latencies; `None` when `time` is
    /// no probe's time, else the sequence number of the probe seen.
    fn seen(
        &self,
        after: i64,
        time: i64,
        now: Instant,
        out: &mut Vec<(Instant, Duration)>,
    ) -> Option<usize> {
        let probes = self.lock();
        let first = probes.partition_point(|p| p.time <= after);
        let end = probes.partition_point(|p| p.time <= time);
        for probe in &probes[first..end] {
            out.push((probe.at, now.saturating_duration_since(probe.at)));
        }
        (end > 0 && probes[end - 1].time == time).then(|| end - 1)
    }

    fn count_between(&self, from: Instant, to: Instant) -> usize {
        self.lock()
            .iter()
            .filter(|p| p.at >= from && p.at < to)
            .count()
    }
}

/// What the harness reports.
struct Outcome {
    cells: Vec<CellResult>,
    stages: Vec<Stages>,
    load: PublishStats,
    probes: usize,
}

#[derive(Debug)]
struct CellResult {
    rate: u64,
    per_second: u32,
    streams: usize,
    latency: Histogram<u64>,
    expected: u64,
    unknown: u64,
    errors: Vec<String>,
    sent: u64,
    applied: u64,
    sent_rate: f64,
    seconds: f64,
    counters: Counters,
}

/// The stages of the pipeline at one rate, without streams.
#[derive(Debug)]
struct Stages {
    rate: u64,
    /// Probe handed to NATS -> a plain subscriber has it.
    nats: Histogram<u64>,
    /// Probe handed to NATS -> the engine has applied it (an upper bound: the end of the
    /// query that saw it).
    applied: Histogram<u64>,
    /// One read of the team's view through the engine (queueing on the engine included).
    read: Histogram<u64>,
    /// Size of the team's view on the wire.
    bytes: usize,
    seconds: f64,
    counters: Counters,
}

async fn run(
    server: &NatsServer,
    nats: &NatsConfig,
    site: &SiteConfig,
    team: &str,
    simulation: Simulation,
    vigie: &Vigie,
    window: Duration,
) -> Outcome {
    let stop = CancellationToken::new();
    let log = Arc::new(ProbeLog::default());
    let sent = Arc::new(AtomicU64::new(0));
    let (rate_tx, rate_rx) = watch::channel(CELLS[0].0);

    // Probes first: the probe advisor logs in before anything is measured.
    let (probe_client, probe_context) = server.connect().await;
    let subject = site_message_subject(&nats.stream.subject_prefix, &site.id, "advisor.state")
        .expect("a valid subject");
    let nats_seen = Arc::new(Mutex::new(Vec::<(Instant, Duration)>::new()));
    let mut subscriber = probe_client
        .subscribe(subject.clone())
        .await
        .expect("a subscription");
    let reference = {
        let (log, nats_seen) = (log.clone(), nats_seen.clone());
        tokio::spawn(async move {
            while let Some(message) = subscriber.next().await {
                let now = Instant::now();
                let seq = message
                    .headers
                    .as_ref()
                    .and_then(|h| h.get(NATS_MESSAGE_ID))
                    .and_then(|id| id.as_str().strip_prefix("probe-")?.parse::<usize>().ok());
                if let Some(probe) = seq.and_then(|seq| log.get(seq)) {
                    nats_seen
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push((probe.at, now - probe.at));
                }
            }
        })
    };
    let login = format!(
        r#"{{"id":"probe-login","type":"advisor.login","time":"{}","site":"{}","advisor":"{PROBE_ADVISOR}","team":"{team}","name":"Probe"}}"#,
        rfc3339(now_millis()),
        site.id
    );
    let login_subject =
        site_message_subject(&nats.stream.subject_prefix, &site.id, "advisor.login")
            .expect("a valid subject");
    publish_acked(&probe_context, login_subject, "probe-login", login).await;
    let probes = tokio::spawn(publish_probes(
        probe_context,
        subject,
        site.id.clone(),
        log.clone(),
        stop.clone(),
    ));

    let (_load_client, load_context) = server.connect().await;
    let load = tokio::spawn(publish_load(
        load_context,
        nats.clone(),
        simulation,
        rate_rx,
        sent.clone(),
        stop.clone(),
    ));

    let mut cells = Vec::new();
    let mut stages = Vec::new();
    let mut rate = 0;
    for &(cell_rate, per_second, streams) in CELLS {
        if cell_rate != rate {
            rate = cell_rate;
            rate_tx.send_replace(rate);
            tokio::time::sleep(WARM_UP).await;
        }
        if streams == 0 {
            let measured =
                measure_stages(vigie, rate, &site.id, team, window, &log, &nats_seen).await;
            print_stages_row(&measured);
            stages.push(measured);
            continue;
        }
        let address = vigie.apis[&per_second].0;
        let cell = Cell {
            rate,
            per_second,
            streams,
            address,
            site: &site.id,
            team,
            window,
        };
        let result = cell.run(vigie, &log, &sent).await;
        print_row(&result);
        cells.push(result);
    }

    stop.cancel();
    let load = load.await.expect("the load publisher");
    let probes = probes.await.expect("the probe publisher");
    reference.abort();
    Outcome {
        cells,
        stages,
        load,
        probes,
    }
}

struct Cell<'a> {
    rate: u64,
    per_second: u32,
    streams: usize,
    address: SocketAddr,
    site: &'a str,
    team: &'a str,
    window: Duration,
}

impl Cell<'_> {
    async fn run(&self, vigie: &Vigie, log: &Arc<ProbeLog>, sent: &AtomicU64) -> CellResult {
        let handle = &vigie.handle;
        let mut channels = Vec::new();
        for _ in 0..self.streams.min(CONNECTIONS) {
            let channel = Endpoint::from_shared(format!("http://{}", self.address))
                .expect("a valid address")
                .connect_timeout(WAIT)
                .connect()
                .await
                .expect("connected to the API");
            channels.push(channel);
        }
        let stop = CancellationToken::new();
        let (ready_tx, mut ready) = mpsc::channel(self.streams);
        let tasks: Vec<JoinHandle<StreamResult>> = (0..self.streams)
            .map(|index| {
                tokio::spawn(watch_stream(
                    channels[index % channels.len()].clone(),
                    pb::WatchTeamRequest {
                        site: self.site.to_owned(),
                        team: self.team.to_owned(),
                        window: pb::Window::Today.into(),
                    },
                    log.clone(),
                    ready_tx.clone(),
                    stop.clone(),
                ))
            })
            .collect();
        drop(ready_tx);
        for _ in 0..self.streams {
            tokio::time::timeout(WAIT, ready.recv())
                .await
                .expect("every stream's snapshot in time")
                .expect("a stream is ready")
                .unwrap_or_else(|error| panic!("a stream failed before its snapshot: {error}"));
        }

        let applied_before = site_stats(handle, self.site).await.applied;
        let sent_before = sent.load(Ordering::Relaxed);
        let probes_before = log.lock().len() as u64;
        let counters_before = vigie.counters(self.per_second);
        let from = Instant::now();
        tokio::time::sleep(self.window).await;
        let to = Instant::now();
        let counters = vigie.counters(self.per_second) - counters_before;
        let applied = site_stats(handle, self.site).await.applied - applied_before;
        let load_sent = sent.load(Ordering::Relaxed) - sent_before;
        let probes_sent = log.lock().len() as u64 - probes_before;
        tokio::time::sleep(GRACE).await;
        stop.cancel();

        let mut latency = histogram();
        let mut unknown = 0;
        let mut errors = Vec::new();
        for task in tasks {
            let result = task.await.expect("a stream task");
            unknown += result.unknown;
            errors.extend(result.error);
            for (at, took) in result.seen {
                if at >= from && at < to {
                    latency.saturating_record(micros(took));
                }
            }
        }
        let expected = (log.count_between(from, to) * self.streams) as u64;
        CellResult {
            rate: self.rate,
            per_second: self.per_second,
            streams: self.streams,
            latency,
            expected,
            unknown,
            errors,
            sent: load_sent + probes_sent,
            applied,
            sent_rate: load_sent as f64 / (to - from).as_secs_f64(),
            seconds: (to - from).as_secs_f64(),
            counters,
        }
    }
}

/// The stages at `rate`: NATS alone, until applied, and reading the team's view.
async fn measure_stages(
    vigie: &Vigie,
    rate: u64,
    site: &str,
    team: &str,
    window: Duration,
    log: &Arc<ProbeLog>,
    nats_seen: &Mutex<Vec<(Instant, Duration)>>,
) -> Stages {
    let handle = &vigie.handle;
    let stop = CancellationToken::new();
    // Reads of the team's view, as a topic makes them, ten a second.
    let reads = {
        let (handle, stop) = (handle.clone(), stop.clone());
        let (site, team) = (site.to_owned(), team.to_owned());
        tokio::spawn(async move {
            let mut read = histogram();
            let mut bytes = 0;
            let mut every = tokio::time::interval(Duration::from_millis(100));
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return (read, bytes),
                    _ = every.tick() => {}
                }
                let (site, target) = (site.clone(), vigie_api::read::Target::Team(team.clone()));
                let started = Instant::now();
                let view = handle
                    .query(move |state| {
                        vigie_api::read::build(
                            state,
                            &site,
                            &target,
                            vigie_core::Window::Today,
                            false,
                        )
                    })
                    .await;
                read.saturating_record(micros(started.elapsed()));
                let Ok(Some(vigie_api::read::WireView::Team(view))) = view else {
                    panic!("no view of the team: {view:?}");
                };
                bytes = prost::Message::encoded_len(&view);
            }
        })
    };
    let mut updates = handle.subscribe();
    let mut seen = Vec::new();
    let mut last = probe_since(handle, site).await;
    let counters_before = vigie.counters(0);
    let from = Instant::now();
    let to = from + window;
    loop {
        let update = tokio::select! {
            _ = tokio::time::sleep_until(to.into()) => break,
            update = updates.recv() => update,
        };
        match update {
            Ok(update) if &*update.site != site => continue,
            Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
        }
        let time = probe_since(handle, site).await;
        let now = Instant::now();
        if let Some(time) = time
            && last.is_none_or(|last| time > last)
        {
            log.seen(last.unwrap_or(i64::MIN), time, now, &mut seen);
            last = Some(time);
        }
    }
    let counters = vigie.counters(0) - counters_before;
    stop.cancel();
    let (read, bytes) = reads.await.expect("the reads");
    let mut applied = histogram();
    for (at, took) in seen {
        if at >= from && at < to {
            applied.saturating_record(micros(took));
        }
    }
    let mut nats = histogram();
    for &(at, took) in nats_seen.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        if at >= from && at < to {
            nats.saturating_record(micros(took));
        }
    }
    Stages {
        rate,
        nats,
        applied,
        read,
        bytes,
        seconds: window.as_secs_f64(),
        counters,
    }
}

/// The event time of the probe advisor's current state, read on the engine.
async fn probe_since(handle: &EngineHandle, site: &str) -> Option<i64> {
    let site = site.to_owned();
    handle
        .query(move |state| {
            let view = state
                .processor
                .site(&site)?
                .advisor_view(PROBE_ADVISOR, vigie_core::Window::Last15m)?;
            let since = chrono::DateTime::parse_from_rfc3339(view.state_since.as_deref()?).ok()?;
            Some(since.timestamp_millis())
        })
        .await
        .expect("the engine runs")
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid bounds")
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

/// What one stream saw.
struct StreamResult {
    /// (probe published at, latency) for each probe, once.
    seen: Vec<(Instant, Duration)>,
    /// Messages where the probe advisor's state matched no probe (should stay 0).
    unknown: u64,
    error: Option<String>,
}

async fn watch_stream(
    channel: Channel,
    request: pb::WatchTeamRequest,
    log: Arc<ProbeLog>,
    ready: mpsc::Sender<Result<(), String>>,
    stop: CancellationToken,
) -> StreamResult {
    let mut result = StreamResult {
        seen: Vec::new(),
        unknown: 0,
        error: None,
    };
    let mut client = SupervisionClient::new(channel).max_decoding_message_size(64 * 1024 * 1024);
    let mut stream = match client.watch_team(request).await {
        Ok(response) => response.into_inner(),
        Err(status) => {
            let _ = ready.send(Err(status.to_string())).await;
            result.error = Some(status.to_string());
            return result;
        }
    };
    let mut ready = Some(ready);
    let mut last: Option<i64> = None;
    loop {
        let message = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            message = stream.message() => message,
        };
        let now = Instant::now();
        let update = match message {
            Ok(Some(update)) => update,
            Ok(None) => {
                result.error = Some("the stream ended".to_owned());
                break;
            }
            Err(status) => {
                result.error = Some(status.to_string());
                break;
            }
        };
        let probe = update
            .view
            .as_ref()
            .and_then(|view| view.advisors.iter().find(|a| a.advisor == PROBE_ADVISOR));
        let state = probe.map(|a| (a.state, a.state_since.as_ref()));
        let time = state
            .and_then(|(_, since)| since)
            .map(|t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000);
        if let Some(ready) = ready.take() {
            // The snapshot: what is visible already is not measured.
            last = time;
            let _ = ready.send(Ok(())).await;
            continue;
        }
        let Some(time) = time else { continue };
        if last.is_some_and(|last| time <= last) {
            continue;
        }
        let seen = log.seen(last.unwrap_or(i64::MIN), time, now, &mut result.seen);
        // Even probes pause the advisor, odd ones make them available.
        let expected_state = seen.map(|seq| {
            if seq.is_multiple_of(2) {
                pb::LiveState::Pause
            } else {
                pb::LiveState::Available
            }
        });
        if expected_state.map(i32::from) != state.map(|(state, _)| state) {
            result.unknown += 1;
        }
        last = Some(time);
    }
    result
}

fn rfc3339(millis: i64) -> String {
    chrono::DateTime::from_timestamp_millis(millis)
        .expect("a time in range")
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

async fn publish_acked(
    context: &async_nats::jetstream::Context,
    subject: String,
    id: &str,
    json: String,
) {
    let mut headers = HeaderMap::new();
    headers.insert(NATS_MESSAGE_ID, id);
    context
        .publish_with_headers(subject, headers, json.into())
        .await
        .expect("published")
        .await
        .expect("stored");
}

/// Every 50 ms, a status change of the probe advisor; returns how many were published.
async fn publish_probes(
    context: async_nats::jetstream::Context,
    subject: String,
    site: String,
    log: Arc<ProbeLog>,
    stop: CancellationToken,
) -> usize {
    let mut every = tokio::time::interval(PROBE_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_time = 0;
    let mut published = 0;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return published,
            _ = every.tick() => {}
        }
        let time = now_millis().max(last_time + 1);
        last_time = time;
        let seq = log.lock().len();
        let state = if seq.is_multiple_of(2) {
            r#""state":"pause","reason":"probe""#
        } else {
            r#""state":"available""#
        };
        let id = format!("probe-{seq}");
        let json = format!(
            r#"{{"id":"{id}","type":"advisor.state","time":"{}","site":"{site}","advisor":"{PROBE_ADVISOR}",{state}}}"#,
            rfc3339(time)
        );
        let at = Instant::now();
        log.push(Probe { time, at });
        publish_acked(&context, subject.clone(), &id, json).await;
        published += 1;
    }
}

/// The simulated day at `rate` events per second (changed through `rate`), each event's time
/// set to its publishing instant.
async fn publish_load(
    context: async_nats::jetstream::Context,
    nats: NatsConfig,
    mut events: Simulation,
    mut rate: watch::Receiver<u64>,
    sent: Arc<AtomicU64>,
    stop: CancellationToken,
) -> PublishStats {
    let mut publisher = Publisher::new(
        context,
        PublisherConfig {
            window: 4096,
            ..PublisherConfig::new(&nats.stream)
        },
    );
    let mut current = *rate.borrow_and_update();
    let mut index: u64 = 0;
    let mut base = (Instant::now(), 0);
    'publish: while !stop.is_cancelled() {
        if rate.has_changed().unwrap_or(false) {
            current = *rate.borrow_and_update();
            base = (Instant::now(), index);
        }
        let due = base.1 + (base.0.elapsed().as_secs_f64() * current as f64) as u64;
        while index < due {
            let Some(mut event) = events.next() else {
                eprintln!("the simulated day is over: no more load");
                break 'publish;
            };
            event.time = Timestamp(now_millis());
            let message = publisher
                .event_message(index, &event, None)
                .expect("a valid subject");
            publisher.send(message).await;
            index += 1;
            sent.store(index, Ordering::Relaxed);
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    publisher.flush().await;
    publisher.stats()
}

fn millis(histogram: &Histogram<u64>, quantile: f64) -> String {
    if histogram.is_empty() {
        return "-".to_owned();
    }
    format!(
        "{:.1}",
        histogram.value_at_quantile(quantile) as f64 / 1000.0
    )
}

fn target(result: &CellResult) -> Duration {
    Duration::from_secs(1) / result.per_second + Duration::from_millis(25)
}

fn verdict(result: &CellResult) -> String {
    if result.latency.is_empty() || result.latency.len() < result.expected {
        return "not met (probes missing)".to_owned();
    }
    let p99 = Duration::from_micros(result.latency.value_at_quantile(0.99));
    let target = target(result);
    let met = if p99 <= target { "met" } else { "not met" };
    if result.per_second == 10 {
        format!("{met} (≤ {} ms)", target.as_millis())
    } else {
        format!("baseline ({met} ≤ {} ms)", target.as_millis())
    }
}

fn print_row(result: &CellResult) {
    let c = &result.counters;
    println!(
        "{} ev/s, interval {} ms, {} streams: p50 {} ms, p99 {} ms, p999 {} ms, max {} ms, {} of {} observations, sent {} applied {} ({:.0} load ev/s), {:.1} frames/s, {} messages, {} resyncs, {:.0} engine batches/s ({:.0} µs each){}{}",
        result.rate,
        1000 / result.per_second,
        result.streams,
        millis(&result.latency, 0.5),
        millis(&result.latency, 0.99),
        millis(&result.latency, 0.999),
        millis(&result.latency, 1.0),
        result.latency.len(),
        result.expected,
        result.sent,
        result.applied,
        result.sent_rate,
        c.frames / result.seconds,
        c.messages,
        c.resyncs,
        c.batches / result.seconds,
        c.apply_seconds / c.batches.max(1.0) * 1e6,
        if result.unknown > 0 {
            format!(
                ", {} messages with an unexpected probe state",
                result.unknown
            )
        } else {
            String::new()
        },
        if result.errors.is_empty() {
            String::new()
        } else {
            format!(
                ", {} stream errors: {:?}",
                result.errors.len(),
                result.errors.first()
            )
        },
    );
}

fn print_table(cells: &[CellResult]) {
    println!();
    println!(
        "| Load (events/s) | Interval | Streams | Observations | p50 | p99 | p999 | max | Frames/s | Resyncs | Events sent / applied | p99 ≤ interval + 25 ms |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for result in cells {
        println!(
            "| {} | {} ms | {} | {} / {} | {} ms | {} ms | {} ms | {} ms | {:.1} | {} | {} / {} | {} |",
            result.rate,
            1000 / result.per_second,
            result.streams,
            result.latency.len(),
            result.expected,
            millis(&result.latency, 0.5),
            millis(&result.latency, 0.99),
            millis(&result.latency, 0.999),
            millis(&result.latency, 1.0),
            result.counters.frames / result.seconds,
            result.counters.resyncs,
            result.sent,
            result.applied,
            verdict(result),
        );
    }
}

fn print_stages_row(stages: &Stages) {
    println!(
        "{} ev/s, stages: NATS alone p50 {} p99 {} max {} ms; until applied p50 {} p99 {} max {} ms; team view read p50 {} p99 {} max {} ms, {} bytes; {:.0} engine batches/s ({:.0} µs each)",
        stages.rate,
        millis(&stages.nats, 0.5),
        millis(&stages.nats, 0.99),
        millis(&stages.nats, 1.0),
        millis(&stages.applied, 0.5),
        millis(&stages.applied, 0.99),
        millis(&stages.applied, 1.0),
        millis(&stages.read, 0.5),
        millis(&stages.read, 0.99),
        millis(&stages.read, 1.0),
        stages.bytes,
        stages.counters.batches / stages.seconds,
        stages.counters.apply_seconds / stages.counters.batches.max(1.0) * 1e6,
    );
}

fn print_stages(stages: &[Stages]) {
    println!();
    println!(
        "| Load (events/s) | NATS alone p50 / p99 / max | Until applied by the engine p50 / p99 / max | Team view read on the engine p50 / p99 / max (its size) | Engine batches/s | Apply time per batch |"
    );
    println!("|---|---|---|---|---|---|");
    for s in stages {
        println!(
            "| {} | {} / {} / {} ms | {} / {} / {} ms | {} / {} / {} ms ({} B) | {:.0} | {:.0} µs |",
            s.rate,
            millis(&s.nats, 0.5),
            millis(&s.nats, 0.99),
            millis(&s.nats, 1.0),
            millis(&s.applied, 0.5),
            millis(&s.applied, 0.99),
            millis(&s.applied, 1.0),
            millis(&s.read, 0.5),
            millis(&s.read, 0.99),
            millis(&s.read, 1.0),
            s.bytes,
            s.counters.batches / s.seconds,
            s.counters.apply_seconds / s.counters.batches.max(1.0) * 1e6,
        );
    }
}
