//! Vigie's traffic simulator: a seeded, deterministic generator of realistic contact-centre
//! days, emitted as events of the contract (v1).
//!
//! A day is a discrete-event simulation: queues with a double-hump intraday profile and
//! non-homogeneous Poisson arrivals, sized to keep the staff at a realistic occupancy; routing
//! to the longest-idle advisor of the teams serving the queue; lognormal talk, hold and
//! wrap-up times; Erlang-A abandonment; queue overflows, transfers, missed offers; advisors
//! with staggered shifts, breaks, lunch and other pauses. [`Simulation`] yields the events in
//! time order as they are pulled, so a day of millions of events streams in bounded memory;
//! [`Disorder`] turns any such stream into what a real feed delivers (duplicates, bounded
//! disorder).
//!
//! What it must not do: no I/O, no clock, no global state, no logging, no async. Everything
//! comes from the [`SimConfig`]: the same configuration gives the same events, byte for byte,
//! on every platform (random draws use ChaCha8 and floating-point code limited to correctly
//! rounded operations).
//!
//! ```
//! use vigie_sim::{SimConfig, Simulation};
//!
//! let config = SimConfig { advisors: 12, queues: 2, ..SimConfig::default() };
//! let simulation = Simulation::new(&config).expect("a valid configuration");
//! let site = simulation.site_config();
//! assert_eq!(site.queues.len(), 2);
//! let events = simulation.count();
//! assert!(events > 1000);
//! ```

mod config;
mod disorder;
mod math;
mod sim;
mod site;

pub use config::{ChannelParams, ChannelTable, SimConfig};
pub use disorder::Disorder;
pub use sim::Simulation;
