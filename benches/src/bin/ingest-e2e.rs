//! End-to-end ingestion: a JetStream stream preloaded with about a million simulated events is
//! read by a bare async-nats pull consumer (the baseline: fetch and acknowledge, nothing else),
//! then by Vigie starting up (recovery: decode, apply, acknowledge), in the same run, against a
//! nats-server of its own on 127.0.0.1. Vigie then stops (saving the site's snapshot), the
//! last events of the day are published, and Vigie starts again: from the snapshot, reading
//! only those.
//!
//! `cargo run --release -p vigie-benches --bin ingest-e2e [ADVISORS QUEUES]`

use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use futures::StreamExt;
use vigie_core::Event;
use vigie_ingest::NatsConfig;
use vigie_ingest::publish::{Publisher, PublisherConfig};
use vigie_sim::{SimConfig, Simulation};
use vigie_tests::in_process::Vigie;
use vigie_tests::nats::NatsServer;

#[global_allocator]
static GLOBAL: vigie_benches::Allocator = vigie_benches::ALLOCATOR;

/// Events of the day published after Vigie's stop (at most a tenth of the day).
const TAIL: usize = 20_000;

/// The longest a recovery may take before the benchmark fails.
const LIMIT: Duration = Duration::from_secs(600);

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

    // The last events of the day come after a restart: they are the tail read after the
    // snapshot (about seven minutes of the busiest hour, far more than the minute between two
    // snapshots).
    let preloaded = events.len() - TAIL.min(events.len() / 10);
    let (_client, context) = server.connect_with_stream().await;
    let started = Instant::now();
    publish(&context, &nats, &events, 0..preloaded).await;
    report(
        "preload (publish with acknowledgements)",
        preloaded,
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
    while read < preloaded {
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
        preloaded,
        baseline,
    );

    // Vigie starting on the stream: recovery of the whole day, then live.
    let mut full = Vigie::start(nats.clone(), &site).await;
    let recovery = full.wait_ready(LIMIT).await;
    check_applied(&full, preloaded).await;
    report(
        "vigie: recovery of the day from the stream (decode, apply, acknowledge)",
        preloaded,
        recovery,
    );
    println!(
        "ratio to the baseline: {:.2} (target at least 0.50)",
        baseline.as_secs_f64() / recovery.as_secs_f64(),
    );
    println!(
        "batches handed to the engine: {}",
        metric(&full.metrics(), "vigie_engine_batch_events_count")
    );
    // A graceful stop saves the site's snapshot; the rest of the day arrives while Vigie is
    // stopped; the next start restores the snapshot and reads only that tail.
    let started = Instant::now();
    let full_metrics = full.stop().await;
    println!(
        "stop with the last snapshot: {:.2} s, snapshot of {} bytes, encoded in {} s",
        started.elapsed().as_secs_f64(),
        metric(&full_metrics, "vigie_snapshot_bytes"),
        metric(&full_metrics, "vigie_engine_snapshot_seconds_sum"),
    );
    publish(&context, &nats, &events, preloaded..events.len()).await;
    let mut restarted = Vigie::start(nats.clone(), &site).await;
    let restart = restarted.wait_ready(LIMIT).await;
    check_applied(&restarted, events.len()).await;
    assert_eq!(
        metric(
            &restarted.metrics(),
            "vigie_snapshot_restores_total{outcome=\"restored\"}"
        ),
        "1",
        "the snapshot restored"
    );
    println!(
        "vigie: start from the snapshot ({preloaded} events) and the {} events after it: {:.2} s (target at most 5 s for a day of 1,000,000 events); events read from the stream: {}",
        events.len() - preloaded,
        restart.as_secs_f64(),
        metric(&restarted.metrics(), "vigie_events_received_total"),
    );
    restarted.stop().await;
}

/// Checks that the site's processor holds exactly `events` events.
async fn check_applied(vigie: &Vigie, events: usize) {
    let stats = vigie.stats().await;
    assert_eq!(
        stats.applied as usize, events,
        "every event applied: {stats:?}"
    );
}

/// Publishes `events[range]` (their index in the day as message id), waiting for every
/// acknowledgement, and checks that the stream stored them all.
async fn publish(
    context: &async_nats::jetstream::Context,
    nats: &NatsConfig,
    events: &[Event],
    range: std::ops::Range<usize>,
) {
    let mut publisher = Publisher::new(
        context.clone(),
        PublisherConfig {
            window: 4096,
            ..PublisherConfig::new(&nats.stream)
        },
    );
    let expected = range.len();
    for index in range {
        let message = publisher
            .event_message(index as u64, &events[index], None)
            .expect("a valid subject");
        publisher.send(message).await;
    }
    publisher.flush().await;
    let stats = publisher.stats();
    assert_eq!(
        stats.stored as usize, expected,
        "every event stored: {stats:?}"
    );
}

fn metric(text: &str, name: &str) -> String {
    text.lines()
        .find_map(|line| {
            line.strip_prefix(name)?
                .strip_prefix(' ')
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "?".to_owned())
}

fn report(what: &str, events: usize, took: Duration) {
    println!(
        "{what}: {events} events in {:.2} s, {:.0} events/s",
        took.as_secs_f64(),
        events as f64 / took.as_secs_f64()
    );
}
