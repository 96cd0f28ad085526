//! Applies a simulated day of the large centre and prints the rate: a target for profilers
//! (`perf record`, `valgrind --tool=callgrind`), not a benchmark. With `PASSES` above 1 the day
//! is applied that many times, each to a fresh processor, so that a profile of the whole run is
//! mostly the processor's.
//!
//! Each pass applies the day as one batch (`apply_all`); with `ONE_BY_ONE=1` one `apply` after
//! the other, and with `ALTERNATE=1` the two in turn (one by one first), to compare them in
//! the same run.
//!
//! `cargo run --release -p vigie-benches --bin core-apply [ADVISORS QUEUES [PASSES]]`
//!
//! It runs with the `vigie` binary's allocator; `--features system-allocator` gives the
//! baseline with the system's.

use std::time::Instant;

use vigie_benches::{ALLOCATOR_NAME, LARGE_ADVISORS, LARGE_QUEUES, processor, simulated_day};

#[global_allocator]
static GLOBAL: vigie_benches::Allocator = vigie_benches::ALLOCATOR;

fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>());
    let advisors = args.next().and_then(Result::ok).unwrap_or(LARGE_ADVISORS);
    let queues = args.next().and_then(Result::ok).unwrap_or(LARGE_QUEUES);
    let passes = args.next().and_then(Result::ok).unwrap_or(1).max(1);
    let (site, events) = simulated_day(advisors, queues, 1);
    println!("{advisors} advisors, {queues} queues, {ALLOCATOR_NAME}");
    for pass in 0..passes {
        let mut processor = processor(&site);
        let started = Instant::now();
        let one_by_one = std::env::var_os("ONE_BY_ONE").is_some()
            || (std::env::var_os("ALTERNATE").is_some() && pass % 2 == 0);
        if one_by_one {
            for event in &events {
                processor.apply(event);
            }
        } else {
            processor.apply_all(&events, |_, _| {});
        }
        let elapsed = started.elapsed();
        println!(
            "{} {} events in {:.3} s: {:.0} events/s ({:?})",
            if one_by_one {
                "one-by-one"
            } else {
                "apply_all"
            },
            events.len(),
            elapsed.as_secs_f64(),
            events.len() as f64 / elapsed.as_secs_f64(),
            processor.stats()
        );
    }
}
