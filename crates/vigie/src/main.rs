//! `vigie`: real-time supervision for contact centres.
//!
//! The binary wires the pure core to the command line. It parses arguments, reads files and
//! prints; the computing is in the library crates.

use clap::{Parser, Subcommand};
use vigie::replay;

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
    /// Apply a JSON Lines file of events and print the indicators (no broker needed).
    ///
    /// Rejected lines are listed on standard error with their line number and reason; a bad
    /// line never stops the replay.
    Replay(replay::ReplayArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Replay(args) => replay::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("vigie: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
