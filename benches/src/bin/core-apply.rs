//! Applies a simulated day of the large centre once and prints the rate: a target for
//! profilers (`perf record`, `valgrind --tool=callgrind`), not a benchmark.
//!
//! `cargo run --release -p vigie-benches --bin core-apply [ADVISORS QUEUES]`

use std::time::Instant;

use vigie_benches::{LARGE_ADVISORS, LARGE_QUEUES, processor, simulated_day};

fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>());
    let advisors = args.next().and_then(Result::ok).unwrap_or(LARGE_ADVISORS);
    let queues = args.next().and_then(Result::ok).unwrap_or(LARGE_QUEUES);
    let (site, events) = simulated_day(advisors, queues, 1);
    let mut processor = processor(&site);
    let started = Instant::now();
    for event in &events {
        processor.apply(event);
    }
    let elapsed = started.elapsed();
    println!(
        "{} events in {:.3} s: {:.0} events/s ({:?})",
        events.len(),
        elapsed.as_secs_f64(),
        events.len() as f64 / elapsed.as_secs_f64(),
        processor.stats()
    );
}
