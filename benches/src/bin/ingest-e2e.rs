//! End-to-end ingestion: a JetStream stream preloaded with about a million simulated events is
//! read by a bare async-nats pull consumer (the baseline: fetch and acknowledge, nothing else),
//! then by Vigie starting up (recovery: decode, apply, acknowledge), in the same run, against a
//! nats-server of its own on 127.0.0.1.
//!
//! `cargo run --release -p vigie-benches --bin ingest-e2e [ADVISORS QUEUES]`

use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use futures::StreamExt;
use prometheus_client::registry::Registry;
use vigie_core::{Event, ProcessingConfig, Processor};
use vigie_engine::{Engine, EngineConfig, EngineMetrics, system_clock};
use vigie_ingest::publish::{Publisher, PublisherConfig};
use vigie_ingest::{Ingest, IngestMetrics, SiteSource};
use vigie_sim::{SimConfig, Simulation};
use vigie_tests::nats::NatsServer;

fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>());
    let advisors = args.next().and_then(Result::ok).unwrap_or(4_000);
    let queues = args.next().and_then(Result::ok).unwrap_or(200);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(run(advisors, queues));
}

async fn run(advisors: usize, queues: usize) {
    let server = NatsServer::start();
    let nats = server.nats_config();
    // A day tomorrow: every event is later than the clock, as in a live feed.
    let zone: chrono_tz::Tz = "Europe/Paris".parse().expect("a time zone");
    let date = chrono::Utc::now().with_timezone(&zone).date_naive() + chrono::Duration::days(1);
    let config = SimConfig {
        advisors,
        queues,
        date,
        duplicate_share: 0.0,
        ..SimConfig::default()
    };
    let simulation = Simulation::new(&config).expect("valid settings");
    let site = simulation.site_config();
    let events: Vec<Event> = simulation.collect();
    println!(
        "{} events, {advisors} advisors, {queues} queues",
        events.len()
    );

    let (_client, context) = server.connect_with_stream().await;
    let started = Instant::now();
    let mut publisher = Publisher::new(
        context.clone(),
        PublisherConfig {
            window: 4096,
            ..PublisherConfig::new(&nats.stream)
        },
    );
    for (index, event) in events.iter().enumerate() {
        let message = publisher
            .event_message(index as u64, event, None)
            .expect("a valid subject");
        publisher.send(message).await;
    }
    publisher.flush().await;
    let stats = publisher.stats();
    assert_eq!(
        stats.stored as usize,
        events.len(),
        "every event stored: {stats:?}"
    );
    report(
        "preload (publish with acknowledgements)",
        events.len(),
        started.elapsed(),
    );

    // Baseline: a bare pull consumer acknowledging like Vigie (one acknowledgement per batch
    // of what was received, covering the batch), same batch size.
    let stream = context
        .get_stream(&nats.stream.name)
        .await
        .expect("the stream");
    let consumer = stream
        .create_consumer(pull::Config {
            durable_name: Some("baseline".to_owned()),
            // The same selection as Vigie's consumer: the site's subjects, from a start time.
            deliver_policy: DeliverPolicy::ByStartTime {
                start_time: chrono::Utc::now() - chrono::Duration::days(1),
            },
            filter_subject: nats.stream.site_filter(&site.id),
            ack_policy: AckPolicy::All,
            max_ack_pending: nats.consumer.max_ack_pending,
            max_batch: nats.consumer.batch as i64,
            ..Default::default()
        })
        .await
        .expect("a consumer");
    let started = Instant::now();
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(nats.consumer.batch)
        .messages()
        .await
        .expect("a message stream")
        .ready_chunks(nats.consumer.batch);
    let mut read = 0;
    while read < events.len() {
        let batch = messages.next().await.expect("more messages");
        read += batch.len();
        let last = batch
            .into_iter()
            .last()
            .expect("a non-empty batch")
            .expect("a message");
        last.ack().await.expect("an acknowledgement");
    }
    let baseline = started.elapsed();
    report(
        "baseline: bare async-nats pull consumer, fetch + batched ack",
        events.len(),
        baseline,
    );

    // Vigie starting on the stream: recovery of the whole day, then live.
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
    let (_client, vigie_context) = vigie_ingest::connect(&nats).await.expect("connected");
    let sources = vec![SiteSource {
        site: site.id.clone(),
        calendar: site.calendar(),
    }];
    let started = Instant::now();
    let ingest = Ingest::new(
        nats.clone(),
        vigie_context,
        sources,
        handle.clone(),
        engine_metrics,
        ingest_metrics,
        system_clock(),
    )
    .await
    .expect("the ingestion");
    let mut ready = ingest.ready();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(ingest.run(shutdown.clone()));
    tokio::time::timeout(
        Duration::from_secs(600),
        ready.wait_for(|sites| sites.values().all(|r| *r)),
    )
    .await
    .expect("recovery within 10 minutes")
    .expect("the ingestion runs");
    let recovery = started.elapsed();
    let site_id = site.id.clone();
    let applied = handle
        .query(move |state| {
            state
                .processor
                .site(&site_id)
                .map_or(0, |s| s.stats().applied)
        })
        .await
        .expect("the engine");
    assert_eq!(applied as usize, events.len(), "every event applied");
    report(
        "vigie: recovery of the day (decode, apply, acknowledge)",
        events.len(),
        recovery,
    );
    println!(
        "ratio to the baseline: {:.2} (target at least 0.50); recovery of {} events in {:.2} s (target at most 5 s for 1,000,000)",
        baseline.as_secs_f64() / recovery.as_secs_f64(),
        events.len(),
        recovery.as_secs_f64()
    );
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("metrics encode");
    let batches = text
        .lines()
        .find_map(|l| l.strip_prefix("vigie_engine_batch_events_count "))
        .unwrap_or("?");
    println!("batches handed to the engine: {batches}");
    shutdown.cancel();
    let _ = task.await;
    drop(handle);
    let _ = engine.await;
}

fn report(what: &str, events: usize, took: Duration) {
    println!(
        "{what}: {events} events in {:.2} s, {:.0} events/s",
        took.as_secs_f64(),
        events as f64 / took.as_secs_f64()
    );
}
