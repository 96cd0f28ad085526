//! Vigie's connectors, pure part: translators from what telephony platforms record to the
//! canonical events of the contract (`docs/events.md`), as [`vigie_core::Event`]s.
//!
//! Each translator takes the source's records one by one, with the source's own times, and
//! returns the events to publish, with ids derived from the records so that reading the same
//! input again gives the same ids (the publisher sends them as `Nats-Msg-Id`).
//!
//! Translators: [`asterisk_queue_log`]; [`asterisk_ami`] (live AMI events, and the framing of
//! the AMI protocol); [`amazon_connect`] (agent event stream, contact records).
//!
//! What it must not do: no async, no I/O, no clock, no logging. Following a file, publishing
//! to NATS and waiting for a future-stamped event's time belong to the shell; expected
//! problems (a malformed line) are returned as data with the line number and the reason.

pub mod amazon_connect;
mod asterisk;
pub mod asterisk_ami;
pub mod asterisk_queue_log;
mod common;
pub mod twilio_taskrouter;

pub use amazon_connect::{
    AdvisorIdSource, AmazonConnectConfig, AmazonConnectTranslator, ConnectConfigErrors,
    ConnectStats, MalformedRecord, RecordOutcome, RecordProblem,
};
pub use asterisk_ami::{
    AmiConfig, AmiConfigErrors, AmiFrame, AmiFramer, AmiMessage, AmiOutcome, AmiProblem, AmiStats,
    AmiTranslator,
};
pub use asterisk_queue_log::{
    ConfigErrors, ConfigProblem, ExitKeyReason, LineOutcome, LineProblem, MalformedLine,
    QueueLogConfig, QueueLogQueueConfig, QueueLogTranslator, TranslatorStats,
};
pub use twilio_taskrouter::{
    Callback, CallbackOutcome, CallbackProblem, QueueIdSource, SignatureChecker, TaskRouterConfig,
    TaskRouterConfigErrors, TaskRouterStats, TaskRouterTranslator,
};
