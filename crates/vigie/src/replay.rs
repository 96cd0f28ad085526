//! `vigie replay`: apply a JSON Lines file of events and print the indicators.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use vigie_core::{
    DEFAULT_MAX_EVENT_BYTES, Outcome, Processor, RejectReason, Timestamp, Window, decode_json,
};

use crate::config::VigieConfig;
use crate::render;

/// Output format of views.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Tables for the terminal.
    Table,
    /// JSON, one document per site.
    Json,
}

/// Arguments of `vigie replay`.
#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// JSON Lines file of events (one event per line), or `-` for standard input.
    pub input: PathBuf,
    /// Compute the indicators at this instant (RFC 3339 with offset, e.g.
    /// 2026-03-02T11:00:00+01:00). Events after it are not applied. Default: the time of the
    /// newest event of each site.
    #[arg(long, value_parser = parse_time)]
    pub at: Option<Timestamp>,
    /// Window of the indicators: today (since the site's day start), 15m, 30m or 60m
    /// (trailing).
    #[arg(long, default_value = "today")]
    pub window: Window,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Configuration file (sites, queues, teams, processing). Without it, a `.toml` file next
    /// to the events with the same name (as `vigie sim` writes) is used if present; otherwise
    /// every site gets the defaults: UTC, day starting at midnight, 20 s / 80% / 5 s.
    #[arg(long, env = "VIGIE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Only this site (by default every site of the file is printed).
    #[arg(long)]
    pub site: Option<String>,
    /// Do not list rejected lines on standard error, only the summary.
    #[arg(long)]
    pub quiet: bool,
}

fn parse_time(text: &str) -> Result<Timestamp, String> {
    Timestamp::parse_rfc3339(text).ok_or_else(|| {
        format!(
            "{text:?} is not an RFC 3339 time with an offset, such as 2026-03-02T11:00:00+01:00"
        )
    })
}

/// What the replay did with the lines.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReplaySummary {
    /// Non-blank lines read.
    pub lines: u64,
    /// Events applied.
    pub applied: u64,
    /// Duplicates dropped.
    pub duplicates: u64,
    /// Lines rejected, by reason.
    pub rejected: BTreeMap<RejectReason, u64>,
    /// Events after `--at`, not applied.
    pub after_at: u64,
    /// Events of sites not selected with `--site`.
    pub other_sites: u64,
}

impl ReplaySummary {
    fn describe(&self) -> String {
        let rejected: u64 = self.rejected.values().sum();
        let mut text = format!(
            "read {} events: {} applied, {} duplicates, {} rejected",
            self.lines, self.applied, self.duplicates, rejected
        );
        if rejected > 0 {
            let reasons: Vec<String> = self
                .rejected
                .iter()
                .map(|(reason, n)| format!("{reason} {n}"))
                .collect();
            text.push_str(&format!(" ({})", reasons.join(", ")));
        }
        if self.after_at > 0 {
            text.push_str(&format!(", {} after --at not applied", self.after_at));
        }
        if self.other_sites > 0 {
            text.push_str(&format!(", {} of other sites skipped", self.other_sites));
        }
        text
    }
}

/// Applies every line of `input` to `processor`, reporting rejected lines to `errors`.
pub fn apply_lines(
    input: impl BufRead,
    processor: &mut Processor,
    at: Option<Timestamp>,
    site: Option<&str>,
    mut errors: impl Write,
) -> anyhow::Result<ReplaySummary> {
    let mut summary = ReplaySummary::default();
    let mut input = input;
    let mut line = Vec::new();
    let mut number = 0u64;
    loop {
        line.clear();
        if input
            .read_until(b'\n', &mut line)
            .context("cannot read the events")?
            == 0
        {
            break;
        }
        number += 1;
        let content = line.strip_suffix(b"\n").unwrap_or(&line);
        let content = content.strip_suffix(b"\r").unwrap_or(content);
        if content.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        summary.lines += 1;
        let event = match decode_json(content, DEFAULT_MAX_EVENT_BYTES) {
            Ok(event) => event,
            Err(rejection) => {
                *summary.rejected.entry(rejection.reason).or_default() += 1;
                writeln!(errors, "line {number}: rejected: {rejection}")?;
                continue;
            }
        };
        if site.is_some_and(|site| site != event.site) {
            summary.other_sites += 1;
            continue;
        }
        if at.is_some_and(|at| event.time > at) {
            summary.after_at += 1;
            continue;
        }
        match processor.apply(&event) {
            Outcome::Applied => summary.applied += 1,
            Outcome::Duplicate => summary.duplicates += 1,
            Outcome::Rejected(rejection) => {
                *summary.rejected.entry(rejection.reason).or_default() += 1;
                writeln!(errors, "line {number}: rejected: {rejection}")?;
            }
        }
    }
    Ok(summary)
}

/// Runs `vigie replay`.
pub fn run(args: &ReplayArgs) -> anyhow::Result<()> {
    let companion = crate::sim::companion_config(&args.input);
    let config = match &args.config {
        Some(path) => VigieConfig::load(path)?,
        None if args.input.as_os_str() != "-" && companion.is_file() => {
            eprintln!(
                "using the configuration {} found next to the events",
                companion.display()
            );
            VigieConfig::load(&companion)?
        }
        None => VigieConfig::default(),
    };
    let mut processor = Processor::new(config.sites, config.processing);
    let reader: Box<dyn BufRead> = if args.input.as_os_str() == "-" {
        Box::new(BufReader::new(io::stdin().lock()))
    } else {
        let file = File::open(&args.input)
            .with_context(|| format!("cannot open {}", args.input.display()))?;
        Box::new(BufReader::with_capacity(1 << 20, file))
    };
    let stderr = io::stderr();
    let errors: Box<dyn Write> = if args.quiet {
        Box::new(io::sink())
    } else {
        Box::new(stderr.lock())
    };
    let summary = apply_lines(
        reader,
        &mut processor,
        args.at,
        args.site.as_deref(),
        errors,
    )?;
    eprintln!("{}", summary.describe());
    if let Some(at) = args.at {
        processor.advance_to(at);
    }

    let sites: Vec<_> = processor
        .sites()
        .filter(|site| {
            args.site
                .as_deref()
                .is_none_or(|wanted| wanted == site.site().id)
        })
        .filter(|site| site.watermark().is_some() || args.at.is_some())
        .collect();
    if sites.is_empty() {
        match &args.site {
            Some(site) => bail!("no event of site {site:?} was applied"),
            None => bail!("no event was applied: nothing to report"),
        }
    }
    let mut out = io::stdout().lock();
    for site in sites {
        let view = site.site_view(args.window);
        match args.format {
            Format::Json => {
                serde_json::to_writer_pretty(&mut out, &view)?;
                writeln!(out)?;
            }
            Format::Table => writeln!(out, "{}", render::site(&view))?,
        }
    }
    Ok(())
}
