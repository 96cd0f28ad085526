//! `vigie`: real-time supervision for contact centres.
//!
//! The binary wires the pure core to the command line. It parses arguments, reads files and
//! prints; the computing is in the library crates.

use clap::{Parser, Subcommand};
use vigie::{client, connect, publish, replay, serve, sim, staffing, token};

/// The processor's state on a large site is many small allocations read in no particular
/// order (contacts, advisors' logs, queues' logs). mimalloc keeps allocations of one size
/// together and backs its memory with transparent huge pages, which spares the processor
/// most of its address-translation misses: about 1.3 times the events per second of the
/// system allocator on the 10,000-advisor day (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Real-time supervision for contact centres: live service level, waits, advisor states and
/// handling indicators computed from telephony and CRM events.
#[derive(Parser, Debug)]
#[command(
    name = "vigie",
    version,
    propagate_version = true,
    max_term_width = 100
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the service: consume events from NATS JetStream (`--nats` or the configuration), or
    /// with no NATS the embedded demo centre; serve the gRPC API, metrics, health and readiness.
    ///
    /// Stops on SIGINT or SIGTERM after applying and acknowledging what is in flight.
    Serve(serve::ServeArgs),
    /// Apply a JSON Lines file of events and print the indicators (no broker needed).
    ///
    /// Rejected lines are listed on standard error with their line number and reason; a bad
    /// line never stops the replay.
    Replay(replay::ReplayArgs),
    /// Write a simulated contact-centre day as JSON Lines, with its site configuration.
    ///
    /// The day is realistic (intraday arrival profile, Poisson arrivals, lognormal talk and
    /// after-contact work, holds, transfers, abandonment by caller patience, shifts, breaks and
    /// lunch) and deterministic: the same seed and options give the same events.
    Sim(sim::SimArgs),
    /// Required advisors for a service-level or ASA target: Erlang C, or Erlang A with
    /// --patience.
    ///
    /// For one interval (--volume) or every interval of a forecast (--forecast FILE.csv).
    Staffing(staffing::StaffingArgs),
    /// Publish a JSON Lines file of events to NATS JetStream, as a connector does.
    ///
    /// Each event goes to `<subject prefix>.<site>.<type>` with `Nats-Msg-Id` = its id, so the
    /// server drops what it already has (reported as duplicates). Lines that do not decode are
    /// reported as not sent and never stop the run. Duplicates and failures are reported per
    /// line on standard error, then a summary.
    ///
    /// Exit status: 0 when every event sent was stored or already there; 1 when an event could
    /// not be published (after retries), on SIGINT or SIGTERM before the end of the input, on a
    /// connection or read error, or, with --strict, when a line was not sent.
    Publish(publish::PublishArgs),
    /// Connectors: translate a telephony source's records into events and publish them to
    /// NATS JetStream, with ids derived from the records (`Nats-Msg-Id`), so that reading the
    /// same input again publishes no duplicate.
    ///
    /// `asterisk-queue-log FILE [--follow]` reads (or follows, across rotations) an Asterisk
    /// queue_log, resuming from a state file; `asterisk-ami --host HOST --user USER
    /// --secret-file FILE` follows the Asterisk Manager Interface live, reconnecting with
    /// backoff; `amazon-connect FILE|-` translates Amazon Connect agent events and contact
    /// records, one JSON object per line.
    #[command(subcommand)]
    Connect(connect::ConnectCommand),
    /// Make bearer tokens for the gRPC API, or hash one.
    ///
    /// `vigie token new --role ROLE --subject WHO [--site SITE]... [--team TEAM]...
    /// [--advisor ID]` prints a new token once on standard output and, on standard error, the
    /// `[[token]]` entry (its hash and scope, never the token) to add to the tokens file
    /// named by `api.auth.tokens_file`. `vigie token hash` reads a token on standard input
    /// and prints its SHA-256 hash.
    Token(token::TokenArgs),
    /// Clients of the gRPC API of a running `vigie serve`: sites, teams, queues, advisors,
    /// site, team, queue, advisor, watch, alerts, notice, history, timesheet, report,
    /// abandoned.
    #[command(flatten)]
    Client(client::ClientCommand),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Replay(args) => replay::run(args),
        Command::Sim(args) => sim::run(args),
        Command::Staffing(args) => staffing::run(args),
        Command::Publish(args) => publish::run(args),
        Command::Connect(command) => connect::run(command),
        Command::Token(args) => token::run(args),
        Command::Client(command) => client::run(command),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // The reader went away (`vigie replay ... | head`): nothing left to say.
        Err(error) if is_broken_pipe(&error) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("vigie: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            || cause
                .downcast_ref::<serde_json::Error>()
                .and_then(|e| e.io_error_kind())
                == Some(std::io::ErrorKind::BrokenPipe)
    })
}
