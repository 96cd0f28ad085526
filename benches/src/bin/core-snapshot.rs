//! The snapshot of a site's processor through a simulated day: its size, the time to encode it
//! (the engine applies nothing meanwhile) and the time to restore it (a start from it), every
//! two simulated hours.
//!
//! `cargo run --release -p vigie-benches --bin core-snapshot [ADVISORS QUEUES]`

use std::time::Instant;

use vigie_benches::{LARGE_ADVISORS, LARGE_QUEUES, processor, simulated_day};
use vigie_core::{Millis, ProcessingConfig, SiteProcessor};

#[global_allocator]
static GLOBAL: vigie_benches::Allocator = vigie_benches::ALLOCATOR;

fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>());
    let advisors = args.next().and_then(Result::ok).unwrap_or(LARGE_ADVISORS);
    let queues = args.next().and_then(Result::ok).unwrap_or(LARGE_QUEUES);
    let (site, events) = simulated_day(advisors, queues, 1);
    println!(
        "{} events, {advisors} advisors, {queues} queues",
        events.len()
    );
    println!(
        "{:>25}  {:>12}  {:>10}  {:>10}  {:>10}",
        "event time", "applied", "bytes", "encode ms", "restore ms"
    );
    let mut processor = processor(&site);
    let every = Millis::from_mins(120);
    let mut next = events.first().map(|e| e.time + every).unwrap_or_default();
    for (applied, event) in events.iter().enumerate() {
        if event.time >= next {
            measure(&processor, applied, &event.time.to_string());
            next = next + every;
        }
        processor.apply(event);
    }
    measure(&processor, events.len(), "end of day");
}

fn measure(processor: &SiteProcessor, applied: usize, at: &str) {
    let started = Instant::now();
    let bytes = processor.snapshot();
    let encoded = started.elapsed();
    let started = Instant::now();
    let restored = SiteProcessor::restore(
        &bytes,
        processor.site().clone(),
        &ProcessingConfig::default(),
    )
    .expect("the snapshot restores");
    let restore = started.elapsed();
    assert_eq!(restored.stats(), processor.stats(), "restored as saved");
    println!(
        "{at:>25}  {applied:>12}  {:>10}  {:>10.1}  {:>10.1}",
        bytes.len(),
        encoded.as_secs_f64() * 1e3,
        restore.as_secs_f64() * 1e3,
    );
}
