//! Throughput of the core processor on a simulated day of the large centre, next to
//! baselines measured in the same run: the floor any deduplicating consumer pays (hashing each
//! event id into a set) and the JSON decoding of the same events.
//!
//! `cargo bench -p vigie-benches --bench core`

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use rustc_hash::FxHashSet;
use vigie_benches::{LARGE_ADVISORS, LARGE_QUEUES, processor, simulated_day};
use vigie_core::{DEFAULT_MAX_EVENT_BYTES, Outcome, Window, decode_json};
use xxhash_rust::xxh3::xxh3_128;

#[global_allocator]
static GLOBAL: vigie_benches::Allocator = vigie_benches::ALLOCATOR;

/// Applies every event of the day to a fresh processor: as one batch (`apply_all`, which asks
/// for the memory of the events ahead while it applies one), or one `apply` after the other.
fn apply_day(
    b: &mut criterion::Bencher<'_>,
    site: &vigie_core::SiteConfig,
    events: &[vigie_core::Event],
    as_one_batch: bool,
) {
    let valid = |outcome: Outcome| {
        if let Outcome::Rejected(rejection) = outcome {
            panic!("the simulated day is valid: {rejection}");
        }
    };
    b.iter_batched(
        || processor(site),
        |mut processor| {
            if as_one_batch {
                processor.apply_all(events, |_, outcome| valid(outcome));
            } else {
                for event in events {
                    valid(processor.apply(event));
                }
            }
            processor
        },
        BatchSize::PerIteration,
    );
}

fn core(c: &mut Criterion) {
    // A centre whose state fits in the processor's caches, for comparison.
    let (small_site, small_events) = simulated_day(1_000, 50, 1);
    let mut small = c.benchmark_group("core-day-1k-advisors-50-queues");
    small.sample_size(10);
    small.throughput(Throughput::Elements(small_events.len() as u64));
    for (name, as_one_batch) in [("apply", false), ("apply_all", true)] {
        small.bench_function(name, |b| {
            apply_day(b, &small_site, &small_events, as_one_batch)
        });
    }
    small.finish();

    let (site, events) = simulated_day(LARGE_ADVISORS, LARGE_QUEUES, 1);
    let mut group = c.benchmark_group("core-day-10k-advisors-500-queues");
    group.sample_size(10);
    group.throughput(Throughput::Elements(events.len() as u64));
    for (name, as_one_batch) in [("apply", false), ("apply_all", true)] {
        group.bench_function(name, |b| apply_day(b, &site, &events, as_one_batch));
    }

    group.bench_function("baseline-dedupe-floor", |b| {
        b.iter(|| {
            let mut seen = FxHashSet::default();
            for event in &events {
                seen.insert(xxh3_128(event.id.as_bytes()));
            }
            black_box(seen.len())
        });
    });
    group.finish();

    let lines: Vec<String> = events.iter().take(200_000).map(|e| e.to_json()).collect();
    let mut decode = c.benchmark_group("decode-json");
    decode.throughput(Throughput::Elements(lines.len() as u64));
    decode.sample_size(10);
    decode.bench_function("200k-events", |b| {
        b.iter(|| {
            for line in &lines {
                black_box(decode_json(line.as_bytes(), DEFAULT_MAX_EVENT_BYTES).ok());
            }
        });
    });
    decode.finish();

    // Computing the whole site view (every queue, team and advisor) at the end of the day.
    let mut full = processor(&site);
    for event in &events {
        full.apply(event);
    }
    let mut views = c.benchmark_group("site-view-10k-advisors");
    views.sample_size(10);
    for window in [Window::Today, Window::Last15m] {
        views.bench_function(window.as_str(), |b| {
            b.iter(|| black_box(full.site_view(window)))
        });
    }
    views.finish();
}

criterion_group!(benches, core);
criterion_main!(benches);
