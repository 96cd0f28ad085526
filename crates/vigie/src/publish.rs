//! `vigie publish`: send a JSON Lines file of events to the event stream, as a connector does.
//!
//! Each line that decodes is published with its original bytes (or re-encoded as protobuf
//! with `--format protobuf`) on its site's subject, with `Nats-Msg-Id` = its id, so that
//! publishing a file twice stores nothing the second time. Lines that do not decode are
//! reported with their number and counted; they never stop the run. Also the NATS plumbing
//! shared with `vigie sim --nats`: settings, connection, signals, report wording.
//!
//! What it must not do: alter a JSON event (its bytes are sent as read), or report success when
//! an event was not stored.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::{Args, ValueEnum};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use vigie_core::{DEFAULT_MAX_EVENT_BYTES, decode_json};
use vigie_ingest::publish::{Failure, MAX_WINDOW};
use vigie_ingest::{NatsConfig, PublishOutcome, Publisher, PublisherConfig, Report, WireFormat};

use crate::config::VigieConfig;

/// Encoding of the published events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// JSON, as read (`vigie publish`) or as written by `vigie sim`.
    Json,
    /// Protobuf `vigie.v1.Event`, with `Content-Type: application/protobuf`.
    Protobuf,
}

impl From<FormatArg> for WireFormat {
    fn from(format: FormatArg) -> WireFormat {
        match format {
            FormatArg::Json => WireFormat::Json,
            FormatArg::Protobuf => WireFormat::Protobuf,
        }
    }
}

/// Arguments of `vigie publish`.
#[derive(Args, Debug)]
pub struct PublishArgs {
    /// JSON Lines file of events (one event per line), or `-` for standard input.
    pub input: PathBuf,
    /// NATS server URL(s), comma-separated (`nats://host:4222`). Overrides `nats.url` of the
    /// configuration; default: the configuration's, else nats://127.0.0.1:4222.
    #[arg(long, value_name = "URL")]
    pub nats: Option<String>,
    /// Configuration file: its `[nats]` section gives the credentials, TLS and the stream
    /// (created if missing when `nats.stream.create` is true, as by default). `VIGIE_NATS__*`
    /// environment variables override it.
    #[arg(long, env = "VIGIE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Events sent and not yet acknowledged, at most (1 to 4096).
    #[arg(long, default_value_t = 256, value_parser = parse_window)]
    pub window: usize,
    /// Encoding of the published events.
    #[arg(long, value_enum, default_value = "json")]
    pub format: FormatArg,
    /// Print only the summary, not each duplicate, failure and line not sent.
    #[arg(long)]
    pub quiet: bool,
    /// Also exit with status 1 when a line was not sent (it does not decode as an event).
    #[arg(long)]
    pub strict: bool,
}

/// Parses `--window`.
pub fn parse_window(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(window) if (1..=MAX_WINDOW).contains(&window) => Ok(window),
        _ => Err(format!(
            "{text:?} is not a window between 1 and {MAX_WINDOW}"
        )),
    }
}

/// The NATS settings: defaults < configuration file < `VIGIE_*` environment < `--nats`.
pub fn nats_settings(config: Option<&Path>, url: Option<&str>) -> anyhow::Result<NatsConfig> {
    let mut nats = VigieConfig::layered(config)?.nats.unwrap_or_default();
    if let Some(url) = url {
        nats.url = url.to_owned();
    }
    nats.validate("nats")
        .map_err(|problems| anyhow::anyhow!("invalid NATS settings: {problems}"))?;
    Ok(nats)
}

/// Connects, makes sure the event stream exists, and returns a publisher on it.
pub async fn connect_publisher(
    nats: &NatsConfig,
    window: usize,
    format: WireFormat,
) -> anyhow::Result<Publisher> {
    let (_client, context) = vigie_ingest::connect(nats).await?;
    vigie_ingest::ensure_stream(&context, &nats.stream).await?;
    let config = PublisherConfig {
        window,
        format,
        ..PublisherConfig::new(&nats.stream)
    };
    Ok(Publisher::new(context, config))
}

/// The runtime of a publishing command: one thread is plenty for one connection.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")
}

/// A token cancelled at the first SIGINT or SIGTERM, so that the command stops reading and
/// waits for the acknowledgements in flight; a second signal exits at once.
pub fn stop_on_signal() -> CancellationToken {
    let stop = CancellationToken::new();
    let token = stop.clone();
    tokio::spawn(async move {
        signal().await;
        eprintln!("stopping: waiting for the acknowledgements in flight (again to quit now)");
        token.cancel();
        signal().await;
        std::process::exit(130);
    });
    stop
}

async fn signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            // Without SIGTERM handling, Ctrl-C still works.
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}

/// Counts of acknowledged and failed messages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Stored in the stream.
    pub stored: u64,
    /// Already in the stream.
    pub duplicates: u64,
    /// Not stored.
    pub failed: u64,
    /// Of the failed, those given up after retries: the server is unreachable, and sending
    /// more would only fail more slowly.
    pub gave_up: u64,
}

impl Tally {
    /// Counts a report.
    pub fn add(&mut self, report: &Report) {
        match report.outcome {
            PublishOutcome::Stored { .. } => self.stored += 1,
            PublishOutcome::Duplicate { .. } => self.duplicates += 1,
            PublishOutcome::Failed(ref failure) => {
                self.failed += 1;
                if matches!(failure, Failure::GaveUp { .. }) {
                    self.gave_up += 1;
                }
            }
        }
    }

    /// Messages the server acknowledged.
    pub fn acknowledged(&self) -> u64 {
        self.stored + self.duplicates
    }
}

/// The line saying what happened to a message that was not simply stored; `what` names it
/// (`line 12`, `event a-3`).
pub fn describe(what: &str, report: &Report) -> Option<String> {
    match &report.outcome {
        PublishOutcome::Stored { .. } => None,
        PublishOutcome::Duplicate { sequence } => {
            let id = report.id.as_deref().unwrap_or_default();
            let retried = if report.attempts > 1 {
                " (after a retry: possibly this run's own first attempt)"
            } else {
                ""
            };
            Some(format!(
                "{what}: duplicate: id {id:?} is already stored at sequence {sequence}{retried}"
            ))
        }
        PublishOutcome::Failed(failure) => Some(format!("{what}: failed: {failure}")),
    }
}

/// What `vigie publish` did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PublishSummary {
    /// Non-blank lines read.
    pub lines: u64,
    /// Lines not sent: they do not decode, or their site cannot be a subject.
    pub not_sent: u64,
    /// Outcomes of the lines sent.
    pub tally: Tally,
    /// Stopped by a signal before the end of the input.
    pub interrupted: bool,
    /// The input could not be read to its end.
    pub read_error: Option<String>,
}

impl PublishSummary {
    fn describe(&self, elapsed: Duration) -> String {
        let seconds = elapsed.as_secs_f64();
        let rate = self.tally.acknowledged() as f64 / seconds.max(1e-3);
        format!(
            "{} lines: {} published, {} duplicates, {} not sent, {} failed in {seconds:.1} s ({rate:.0} events/s){}",
            self.lines,
            self.tally.stored,
            self.tally.duplicates,
            self.not_sent,
            self.tally.failed,
            if self.interrupted || self.read_error.is_some() || self.tally.gave_up > 0 {
                "; stopped before the end of the input"
            } else {
                ""
            }
        )
    }
}

/// Lines read by the reading thread: (line number, bytes without the line end).
type Chunk = Vec<(u64, Vec<u8>)>;

const CHUNK_LINES: usize = 256;

/// Reads lines on a thread of its own (standard input cannot be read asynchronously) and hands
/// them over in chunks through a bounded channel: reading waits when publishing is slower.
fn spawn_reader(input: Box<dyn BufRead + Send>) -> mpsc::Receiver<io::Result<Chunk>> {
    let (sender, receiver) = mpsc::channel(4);
    std::thread::spawn(move || {
        let mut input = input;
        let mut number = 0u64;
        loop {
            let mut chunk = Vec::with_capacity(CHUNK_LINES);
            while chunk.len() < CHUNK_LINES {
                let mut line = Vec::new();
                match input.read_until(b'\n', &mut line) {
                    Ok(0) => break,
                    Ok(_) => {
                        number += 1;
                        if line.last() == Some(&b'\n') {
                            line.pop();
                        }
                        if line.last() == Some(&b'\r') {
                            line.pop();
                        }
                        chunk.push((number, line));
                    }
                    Err(error) => {
                        let _ = sender.blocking_send(Err(error));
                        return;
                    }
                }
            }
            let last = chunk.len() < CHUNK_LINES;
            // An error means the publisher stopped: nothing left to read for.
            if !chunk.is_empty() && sender.blocking_send(Ok(chunk)).is_err() {
                return;
            }
            if last {
                return;
            }
        }
    });
    receiver
}

/// Counts reports and describes on `errors` those that were not simply stored.
fn take_reports(tally: &mut Tally, reports: Vec<Report>, errors: &mut dyn FnMut(String)) {
    for report in reports {
        tally.add(&report);
        if let Some(text) = describe(&format!("line {}", report.index), &report) {
            errors(text);
        }
    }
}

/// How a read of numbered lines ended.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct LinesRead {
    /// Stopped by a signal before the end of the input.
    pub interrupted: bool,
    /// The input could not be read to its end.
    pub read_error: Option<String>,
}

/// Hands each line of `input` (numbered from 1, without its line end) to `each`, in order,
/// until the input ends, fails, `stop` is cancelled, or `each` answers `false`. Lines are
/// read on a thread of their own, ahead of `each` by a few chunks at most.
pub async fn for_each_line(
    input: Box<dyn BufRead + Send>,
    stop: &CancellationToken,
    mut each: impl AsyncFnMut(u64, Vec<u8>) -> bool,
) -> LinesRead {
    let mut read = LinesRead::default();
    let mut chunks = spawn_reader(input);
    'read: loop {
        let chunk = tokio::select! {
            biased;
            _ = stop.cancelled() => {
                read.interrupted = true;
                break;
            }
            chunk = chunks.recv() => chunk,
        };
        let chunk = match chunk {
            None => break,
            Some(Ok(chunk)) => chunk,
            Some(Err(error)) => {
                read.read_error = Some(error.to_string());
                break;
            }
        };
        for (number, line) in chunk {
            if stop.is_cancelled() {
                read.interrupted = true;
                break 'read;
            }
            if !each(number, line).await {
                break 'read;
            }
        }
    }
    read
}

/// Publishes the lines of `input` (message index = line number), reporting on `errors` (one
/// line per problem) until the input ends, fails, or `stop` is cancelled; what was sent is
/// then seen through to its acknowledgement.
pub async fn publish_lines(
    input: Box<dyn BufRead + Send>,
    publisher: &mut Publisher,
    stop: &CancellationToken,
    errors: &mut dyn FnMut(String),
) -> PublishSummary {
    let mut summary = PublishSummary::default();
    let read = for_each_line(input, stop, async |number, line| {
        if summary.tally.gave_up > 0 {
            return false;
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            return true;
        }
        summary.lines += 1;
        let message = decode_json(&line, DEFAULT_MAX_EVENT_BYTES)
            .map_err(|rejection| rejection.to_string())
            .and_then(|event| {
                publisher
                    .event_message(number, &event, Some(Bytes::from(line)))
                    .map_err(|error| error.to_string())
            });
        match message {
            Ok(message) => {
                let reports = publisher.send(message).await;
                take_reports(&mut summary.tally, reports, errors);
            }
            Err(reason) => {
                summary.not_sent += 1;
                errors(format!("line {number}: not sent: {reason}"));
            }
        }
        true
    })
    .await;
    summary.interrupted = read.interrupted;
    summary.read_error = read.read_error;
    let reports = publisher.flush().await;
    take_reports(&mut summary.tally, reports, errors);
    summary
}

/// Runs `vigie publish`.
pub fn run(args: &PublishArgs) -> anyhow::Result<()> {
    let nats = nats_settings(args.config.as_deref(), args.nats.as_deref())?;
    let input: Box<dyn BufRead + Send> = if args.input.as_os_str() == "-" {
        Box::new(BufReader::new(io::stdin()))
    } else {
        let file = File::open(&args.input)
            .with_context(|| format!("cannot open {}", args.input.display()))?;
        Box::new(BufReader::with_capacity(1 << 20, file))
    };
    let quiet = args.quiet;
    let (summary, elapsed) = runtime()?.block_on(async {
        let stop = stop_on_signal();
        let mut publisher = connect_publisher(&nats, args.window, args.format.into()).await?;
        let started = Instant::now();
        let mut errors = |text: String| {
            if !quiet {
                eprintln!("{text}");
            }
        };
        let summary = publish_lines(input, &mut publisher, &stop, &mut errors).await;
        anyhow::Ok((summary, started.elapsed()))
    })?;
    eprintln!("{}", summary.describe(elapsed));
    if let Some(error) = &summary.read_error {
        bail!("cannot read {}: {error}", args.input.display());
    }
    if summary.tally.gave_up > 0 {
        bail!(
            "stopped after {} events went unacknowledged despite retries: the rest of the input \
             was not read; publishing the file again is safe (the server drops duplicates)",
            summary.tally.gave_up
        );
    }
    if summary.tally.failed > 0 {
        bail!("{} events could not be published", summary.tally.failed);
    }
    if summary.interrupted {
        bail!("interrupted: the rest of the input was not published");
    }
    if args.strict && summary.not_sent > 0 {
        bail!("{} lines were not sent (--strict)", summary.not_sent);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_is_bounded() {
        assert_eq!(parse_window("1"), Ok(1));
        assert_eq!(parse_window("4096"), Ok(4096));
        assert!(parse_window("0").is_err());
        assert!(parse_window("4097").is_err());
        assert!(parse_window("many").is_err());
    }

    #[test]
    fn the_summary_names_every_count() {
        let summary = PublishSummary {
            lines: 7,
            not_sent: 2,
            tally: Tally {
                stored: 3,
                duplicates: 1,
                failed: 1,
                gave_up: 0,
            },
            interrupted: false,
            read_error: None,
        };
        assert_eq!(
            summary.describe(Duration::from_secs(2)),
            "7 lines: 3 published, 1 duplicates, 2 not sent, 1 failed in 2.0 s (2 events/s)"
        );
    }
}
