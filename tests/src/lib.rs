//! Shared helpers of the integration tests.

pub mod nats;
pub mod oracle;
