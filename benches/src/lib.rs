//! Shared set-up of Vigie's benchmarks: the simulated days they run on.
//!
//! What it must not do: time anything itself or assert on timings. Benches measure; the
//! figures go to BENCHMARKS.md with the command that produced them.

use vigie_core::{Event, ProcessingConfig, SiteConfig, SiteProcessor};
use vigie_sim::{SimConfig, Simulation};

/// The allocator the measuring binaries run with: the one the `vigie` binary uses (mimalloc),
/// or the system's with the `system-allocator` feature, for the baseline. Each measuring binary
/// declares it as its global allocator (`core-memory` counts bytes through the system's).
#[cfg(not(feature = "system-allocator"))]
pub type Allocator = mimalloc::MiMalloc;
/// The allocator the measuring binaries run with (here the system's: `system-allocator`).
#[cfg(feature = "system-allocator")]
pub type Allocator = std::alloc::System;

/// The value of [`Allocator`], for `#[global_allocator]` statics.
#[cfg(not(feature = "system-allocator"))]
pub const ALLOCATOR: Allocator = mimalloc::MiMalloc;
/// The value of [`Allocator`], for `#[global_allocator]` statics.
#[cfg(feature = "system-allocator")]
pub const ALLOCATOR: Allocator = std::alloc::System;

/// The allocator's name, for the measurements' output.
pub const ALLOCATOR_NAME: &str = if cfg!(feature = "system-allocator") {
    "system allocator"
} else {
    "mimalloc, as the vigie binary"
};

/// The size the core's targets are stated for: 10,000 advisors and 500 queues.
pub const LARGE_ADVISORS: usize = 10_000;
/// Queues of the large centre.
pub const LARGE_QUEUES: usize = 500;

/// A simulated day of `advisors` and `queues`, in feed order (1% duplicates, reordering
/// within 5 s, as a real feed), with its site configuration.
pub fn simulated_day(advisors: usize, queues: usize, seed: u64) -> (SiteConfig, Vec<Event>) {
    let config = SimConfig {
        advisors,
        queues,
        seed,
        ..SimConfig::default()
    };
    let simulation =
        Simulation::new(&config).expect("the benchmark's simulation settings are valid");
    let site = simulation.site_config();
    let generated: Vec<Event> = simulation.into_feed().collect();
    // Copy the events in feed order so that each event's strings sit next to it in memory, as
    // a freshly decoded batch does; the simulator's own allocation order scatters them.
    let events = generated.to_vec();
    drop(generated);
    (site, events)
}

/// A fresh processor for the site, with default processing settings.
pub fn processor(site: &SiteConfig) -> SiteProcessor {
    SiteProcessor::new(site.clone(), &ProcessingConfig::default())
}
