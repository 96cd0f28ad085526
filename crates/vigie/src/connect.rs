//! `vigie connect <source>`: the connectors' shell. The translation from a source's records to
//! events is pure and lives in `vigie-connectors`; here are the reading (a followed file, a
//! state file, standard input), the holding back of events stamped ahead of the source, and
//! the publishing with the [`Publisher`] of `vigie publish` (`Nats-Msg-Id` = the event id
//! the translator derived from the record, so that a restart publishes no duplicate).
//!
//! Settings: the `[connect.<source>]` section of the configuration file (with `VIGIE_*`
//! environment variables over it), then the command-line options; NATS as `vigie publish`
//! reads it.
//!
//! What it must not do: translate (that is the pure crate's job), or move a state file past
//! an event the server has not acknowledged.

mod amazon;
mod ami;
mod queue_log;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use vigie_ingest::publish::Failure;
use vigie_ingest::{NatsConfig, PublishOutcome, Publisher, Report, WireFormat};

pub use amazon::AmazonConnectArgs;
pub use ami::AmiArgs;
pub use queue_log::QueueLogArgs;

use crate::config::VigieConfig;
use crate::publish::{Tally, connect_publisher, describe, parse_window};

/// The connectors.
#[derive(Subcommand, Debug)]
pub enum ConnectCommand {
    /// Publish the events of an Asterisk queue_log file, once to its end or following it
    /// (`--follow`, across rotations), resuming where the last run stopped.
    ///
    /// The position is kept in a state file (`--state`, default `<FILE>.vigie-state`),
    /// written only once the events of the lines before it are acknowledged by JetStream.
    /// `contact.completed` events stamped in the future by a queue's wrap-up time are held
    /// back until the log reaches their time. Malformed lines are reported with their number
    /// and skipped. SIGINT or SIGTERM: the acknowledgements in flight are awaited, the state
    /// saved, and the command exits with status 0.
    #[command(after_help = queue_log::EXAMPLES)]
    AsteriskQueueLog(QueueLogArgs),
    /// Publish the events of Amazon Connect agent event stream records and contact records
    /// (JSON, one record per line, as Kinesis delivers them) read from a file or standard
    /// input.
    ///
    /// Agent records are translated by comparing their current and previous snapshots;
    /// contact records delivered again on update give their events once.
    #[command(after_help = amazon::EXAMPLES)]
    AmazonConnect(AmazonConnectArgs),
    /// Publish the events of an Asterisk server live, through its Manager Interface (AMI).
    ///
    /// Logs in over TCP (`--user`, the secret read from `--secret-file`), translates the
    /// queue events (callers joining, members called, answering, completing, abandons,
    /// pauses, members added and removed, hold, transfers) and publishes them. A lost
    /// connection is opened again with exponential backoff (1 s doubling to `--max-backoff`),
    /// the memory of calls in progress kept; `Action: Ping` every `--keepalive` detects a
    /// dead one. A refused login stops the command with status 1. SIGINT or SIGTERM: `Action:
    /// Logoff`, the acknowledgements in flight are awaited, and the command exits with
    /// status 0.
    #[command(after_help = ami::EXAMPLES)]
    AsteriskAmi(AmiArgs),
}

/// Options every connector takes.
#[derive(Args, Debug)]
pub struct CommonArgs {
    /// NATS server URL(s), comma-separated (`nats://host:4222`). Overrides `nats.url` of the
    /// configuration; default: the configuration's, else nats://127.0.0.1:4222.
    #[arg(long, value_name = "URL")]
    pub nats: Option<String>,
    /// Configuration file: its `[nats]` section (credentials, TLS, stream) and its
    /// `[connect.<source>]` section. `VIGIE_*` environment variables override it
    /// (`VIGIE_CONNECT__ASTERISK_QUEUE_LOG__SITE`).
    #[arg(long, env = "VIGIE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Events sent and not yet acknowledged, at most (1 to 4096).
    #[arg(long, default_value_t = 256, value_parser = parse_window)]
    pub window: usize,
    /// Print only the summary, not each malformed line, duplicate and failure.
    #[arg(long)]
    pub quiet: bool,
}

impl CommonArgs {
    /// The layered configuration (defaults < file < `VIGIE_*` environment) and the NATS
    /// settings with `--nats` applied.
    fn settings(&self) -> anyhow::Result<(VigieConfig, NatsConfig)> {
        let config = VigieConfig::layered(self.config.as_deref())?;
        let mut nats = config.nats.clone().unwrap_or_default();
        if let Some(url) = &self.nats {
            nats.url = url.clone();
        }
        nats.validate("nats")
            .map_err(|problems| anyhow::anyhow!("invalid NATS settings: {problems}"))?;
        Ok((config, nats))
    }

    /// Prints a problem on standard error unless `--quiet`.
    fn report(&self, text: &str) {
        if !self.quiet {
            eprintln!("{text}");
        }
    }
}

/// Parses `KEY=VALUE` (`--advisor PJSIP/1001=a-117`).
fn parse_pair(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() && !value.trim().is_empty() => {
            Ok((key.trim().to_owned(), value.trim().to_owned()))
        }
        _ => Err(format!("{text:?} is not KEY=VALUE")),
    }
}

/// Parses `QUEUE=DURATION` (`--wrapuptime billing=15s`).
fn parse_queue_duration(text: &str) -> Result<(String, Duration), String> {
    let (queue, duration) = parse_pair(text)?;
    let duration = humantime::parse_duration(&duration)
        .map_err(|error| format!("{duration:?} in {text:?} is not a duration (15s): {error}"))?;
    Ok((queue, duration))
}

/// Parses a human duration (`250ms`).
fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|error| format!("{text:?}: {error}"))
}

/// The options of both Asterisk connectors (`queue_log` and AMI read the same server's
/// `[connect.asterisk_queue_log]` section).
#[derive(Args, Debug)]
pub struct AsteriskArgs {
    /// Vigie site of the events (overrides `connect.asterisk_queue_log.site`).
    #[arg(long)]
    pub site: Option<String>,
    /// Advisor id of a member interface, member name or bare extension (repeatable; adds to
    /// `connect.asterisk_queue_log.advisors`). Members not named get their extension.
    #[arg(long = "advisor", value_name = "IFACE=ID", value_parser = parse_pair)]
    pub advisors: Vec<(String, String)>,
    /// A queue's `wrapuptime` (repeatable): `contact.completed` is stamped this long after the
    /// end of the call (overrides `connect.asterisk_queue_log.queues.<QUEUE>.wrapuptime`).
    #[arg(long = "wrapuptime", value_name = "QUEUE=DURATION", value_parser = parse_queue_duration)]
    pub wrapuptimes: Vec<(String, Duration)>,
}

impl AsteriskArgs {
    /// The configuration's section with the options applied.
    fn apply(
        &self,
        section: Option<vigie_connectors::QueueLogConfig>,
    ) -> anyhow::Result<vigie_connectors::QueueLogConfig> {
        let mut config = match (section, &self.site) {
            (Some(config), _) => config,
            (None, Some(site)) => vigie_connectors::QueueLogConfig::new(site.clone()),
            (None, None) => anyhow::bail!(
                "no site: give --site, or connect.asterisk_queue_log.site in the configuration"
            ),
        };
        if let Some(site) = &self.site {
            config.site = site.clone();
        }
        for (member, advisor) in &self.advisors {
            config.advisors.insert(member.clone(), advisor.clone());
        }
        for (queue, wrapup) in &self.wrapuptimes {
            config.queues.entry(queue.clone()).or_default().wrapuptime = *wrapup;
        }
        Ok(config)
    }
}

/// The problems of a source's settings (configuration and options) as one error, each named
/// by its field path under `section` (`connect.asterisk_queue_log`).
fn invalid_settings(
    what: &str,
    section: &str,
    problems: &[impl std::fmt::Display],
) -> anyhow::Error {
    let problems: Vec<String> = problems
        .iter()
        .map(|problem| format!("{section}.{problem}"))
        .collect();
    anyhow::anyhow!(
        "invalid {what} settings (configuration and options):\n  - {}",
        problems.join("\n  - ")
    )
}

/// A source's site must be a subject token: every event goes to `<prefix>.<site>.<type>`.
fn check_site(site: &str, field: &str) -> anyhow::Result<()> {
    if !NatsConfig::site_is_subject_token(site) {
        anyhow::bail!(
            "{field}: site {site:?} cannot be a NATS subject token (no dots, spaces or wildcards)"
        );
    }
    Ok(())
}

/// Publishing with the counts and the per-message reporting the connectors share.
#[derive(Debug)]
struct Sink {
    publisher: Publisher,
    tally: Tally,
    quiet: bool,
}

impl Sink {
    async fn connect(nats: &NatsConfig, common: &CommonArgs) -> anyhow::Result<Sink> {
        let publisher = connect_publisher(nats, common.window, WireFormat::Json)
            .await
            .context("cannot connect to NATS")?;
        Ok(Sink {
            publisher,
            tally: Tally::default(),
            quiet: common.quiet,
        })
    }

    /// Sends an event; `line` (its record's line number) names it in reports.
    async fn send(&mut self, line: u64, event: &vigie_core::Event) {
        match self.publisher.event_message(line, event, None) {
            Ok(message) => {
                let reports = self.publisher.send(message).await;
                self.take(reports);
            }
            Err(error) => {
                // Not reachable with a checked site; counted as a failure all the same.
                self.take(vec![Report {
                    index: line,
                    subject: String::new(),
                    id: Some(event.id.clone()),
                    attempts: 0,
                    outcome: PublishOutcome::Failed(Failure::Refused(error.to_string())),
                }]);
            }
        }
    }

    /// Waits for every acknowledgement in flight.
    async fn flush(&mut self) {
        let reports = self.publisher.flush().await;
        self.take(reports);
    }

    fn take(&mut self, reports: Vec<Report>) {
        for report in reports {
            self.tally.add(&report);
            if let Some(text) = describe(&format!("line {}", report.index), &report)
                && !self.quiet
            {
                eprintln!("{text}");
            }
        }
    }
}

/// Runs `vigie connect <source>`.
pub fn run(command: &ConnectCommand) -> anyhow::Result<()> {
    match command {
        ConnectCommand::AsteriskQueueLog(args) => queue_log::run(args),
        ConnectCommand::AmazonConnect(args) => amazon::run(args),
        ConnectCommand::AsteriskAmi(args) => ami::run(args),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_and_durations_parse_and_say_what_is_wrong() {
        assert_eq!(
            parse_pair("PJSIP/1001=a-117"),
            Ok(("PJSIP/1001".to_owned(), "a-117".to_owned()))
        );
        assert!(parse_pair("PJSIP/1001").is_err());
        assert!(parse_pair("=a").is_err());
        assert_eq!(
            parse_queue_duration("billing=15s"),
            Ok(("billing".to_owned(), Duration::from_secs(15)))
        );
        let error = parse_queue_duration("billing=soon").unwrap_err();
        assert!(error.contains("\"soon\""), "{error}");
    }
}
