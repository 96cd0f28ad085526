//! The `vigie` command's library: configuration file, subcommands and terminal rendering.
//!
//! What it must not do: compute indicators (that is `vigie-core`'s job) or hide errors: every
//! failure is returned with its context for `main` to print.

pub mod alerting;
pub mod calls;
pub mod changes;
pub mod client;
pub mod cluster;
pub mod config;
pub mod connect;
pub mod history;
pub mod history_store;
pub mod ingest_http;
pub mod publish;
pub mod render;
pub mod replay;
pub mod serve;
pub mod sim;
pub mod staffing;
pub mod token;
pub mod views;
