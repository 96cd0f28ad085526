//! Shared helpers of the integration tests.

pub mod api;
pub mod browser;
pub mod cli;
pub mod cluster;
pub mod in_process;
pub mod nats;
pub mod oracle;
