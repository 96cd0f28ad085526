//! Memory held by the core processor per advisor, through a simulated day of the large centre.
//!
//! `cargo run --release -p vigie-benches --bin core-memory`
//!
//! Counts the heap bytes the processor holds (allocated minus freed since it was created),
//! every simulated hour, and prints them per advisor with the items kept.

use std::alloc::System;

use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};
use vigie_benches::{LARGE_ADVISORS, LARGE_QUEUES, processor, simulated_day};
use vigie_core::Millis;

/// The system allocator, counting. The figures are the bytes the processor asks for, the same
/// whichever allocator serves them (the `vigie` binary's is mimalloc).
#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn held() -> i64 {
    let stats = GLOBAL.stats();
    stats.bytes_allocated as i64 - stats.bytes_deallocated as i64
}

fn main() {
    let (site, events) = simulated_day(LARGE_ADVISORS, LARGE_QUEUES, 1);
    println!(
        "{} events, {} advisors, {} queues",
        events.len(),
        LARGE_ADVISORS,
        LARGE_QUEUES
    );
    let before = held();
    let allocations_before = GLOBAL.stats().allocations + GLOBAL.stats().reallocations;
    let mut processor = processor(&site);
    let mut next_report = events.first().map(|e| e.time).unwrap_or_default();
    let mut peak = 0i64;
    println!(
        "{:>25}  {:>12}  {:>10}  items",
        "event time", "bytes held", "per advisor"
    );
    for event in &events {
        if event.time >= next_report {
            let bytes = held() - before;
            peak = peak.max(bytes);
            println!(
                "{:>25}  {:>12}  {:>10.0}  {:?}",
                event.time.to_string(),
                bytes,
                bytes as f64 / LARGE_ADVISORS as f64,
                processor.memory_items()
            );
            next_report = event.time + Millis::from_mins(60);
        }
        processor.apply(event);
    }
    let bytes = held() - before;
    peak = peak.max(bytes);
    let allocations =
        GLOBAL.stats().allocations + GLOBAL.stats().reallocations - allocations_before;
    println!(
        "allocations: {allocations} ({:.2} per event)",
        allocations as f64 / events.len() as f64
    );
    println!(
        "end of day: {} bytes, {:.0} per advisor",
        bytes,
        bytes as f64 / LARGE_ADVISORS as f64
    );
    println!(
        "peak of the hourly samples: {:.0} bytes per advisor",
        peak as f64 / LARGE_ADVISORS as f64
    );
}
