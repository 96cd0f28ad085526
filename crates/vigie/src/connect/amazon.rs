//! `vigie connect amazon-connect`: Amazon Connect records (agent event stream, contact
//! records), one JSON object per line from a file or standard input, translated and
//! published.
//!
//! Kinesis itself is read by whatever delivers the records (a Firehose delivery to files, the
//! AWS CLI, a Lambda); the translator's ids come from what the records describe, so the same
//! records read again publish nothing new.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use vigie_connectors::{AmazonConnectConfig, RecordOutcome};

use super::{CommonArgs, Sink, check_site, invalid_settings, parse_pair};
use crate::publish::{for_each_line, runtime, stop_on_signal};

pub(super) const EXAMPLES: &str = "Examples:
  # A file of records (a Firehose delivery, one JSON record per line):
  vigie connect amazon-connect records.jsonl --site paris --nats nats://127.0.0.1:4222

  # Straight from a Kinesis shard with the AWS CLI (each record's Data is base64):
  aws kinesis get-records --shard-iterator \"$ITERATOR\" --output json \\
    | jq -r '.Records[].Data | @base64d' \\
    | vigie connect amazon-connect - --config /etc/vigie/vigie.toml

  # Name an agent by its ARN rather than by its username:
  vigie connect amazon-connect records.jsonl --site paris \\
      --advisor arn:aws:connect:eu-west-1:123456789012:instance/i-1/agent/a-1=a-117

The same settings in the configuration file:
  [connect.amazon_connect]
  site = \"paris\"
  advisor_id = \"agent_arn_id\"   # or \"username\" (the default)
  teams = { \"Billing agents\" = \"team-billing\" }";

/// Arguments of `vigie connect amazon-connect`.
#[derive(Args, Debug)]
pub struct AmazonConnectArgs {
    /// File of records, one JSON object per line, or `-` for standard input.
    pub input: PathBuf,
    /// Vigie site of the events (overrides `connect.amazon_connect.site`).
    #[arg(long)]
    pub site: Option<String>,
    /// Advisor id of an agent ARN (repeatable; adds to `connect.amazon_connect.advisors`).
    #[arg(long = "advisor", value_name = "ARN=ID", value_parser = parse_pair)]
    pub advisors: Vec<(String, String)>,
    #[command(flatten)]
    pub common: CommonArgs,
}

impl AmazonConnectArgs {
    fn translator_config(
        &self,
        section: Option<AmazonConnectConfig>,
    ) -> anyhow::Result<AmazonConnectConfig> {
        let mut config = match (section, &self.site) {
            (Some(config), _) => config,
            (None, Some(site)) => AmazonConnectConfig::new(site.clone()),
            (None, None) => {
                bail!("no site: give --site, or connect.amazon_connect.site in the configuration")
            }
        };
        if let Some(site) = &self.site {
            config.site = site.clone();
        }
        for (arn, advisor) in &self.advisors {
            config.advisors.insert(arn.clone(), advisor.clone());
        }
        Ok(config)
    }
}

/// Runs `vigie connect amazon-connect`.
pub fn run(args: &AmazonConnectArgs) -> anyhow::Result<()> {
    let (config, nats) = args.common.settings()?;
    let settings = args.translator_config(config.connect.amazon_connect)?;
    let mut translator = settings.build().map_err(|errors| {
        invalid_settings("Amazon Connect", "connect.amazon_connect", &errors.0)
    })?;
    check_site(&settings.site, "connect.amazon_connect.site")?;
    let input: Box<dyn BufRead + Send> = if args.input.as_os_str() == "-" {
        Box::new(BufReader::new(io::stdin()))
    } else {
        let file = File::open(&args.input)
            .with_context(|| format!("cannot open {}", args.input.display()))?;
        Box::new(BufReader::with_capacity(1 << 20, file))
    };
    let started = Instant::now();
    let (sink, interrupted, read_error) = runtime()?.block_on(async {
        let stop = stop_on_signal();
        let mut sink = Sink::connect(&nats, &args.common).await?;
        let read = for_each_line(input, &stop, async |number, line| {
            if sink.tally.failed > 0 {
                return false;
            }
            match translator.translate_line(number, &String::from_utf8_lossy(&line)) {
                Ok(RecordOutcome::Events(events)) => {
                    for event in &events {
                        sink.send(number, event).await;
                    }
                }
                Ok(RecordOutcome::Skipped { .. } | RecordOutcome::Blank) => {}
                Err(malformed) => args.common.report(&format!(
                    "line {}: malformed: {}, skipped",
                    malformed.line, malformed.problem
                )),
            }
            true
        })
        .await;
        sink.flush().await;
        anyhow::Ok((sink, read.interrupted, read.read_error))
    })?;
    let stats = translator.stats();
    eprintln!(
        "{} records ({} malformed, {} skipped), {} events ({} given before by the same contact's \
         records, dropped): {} published, {} duplicates, {} failed ({:.1} s)",
        stats.records - stats.blank,
        stats.malformed,
        stats.skipped.values().sum::<u64>(),
        stats.events,
        stats.contact_record_repeats,
        sink.tally.stored,
        sink.tally.duplicates,
        sink.tally.failed,
        started.elapsed().as_secs_f64()
    );
    if let Some(error) = read_error {
        bail!("cannot read {}: {error}", args.input.display());
    }
    if sink.tally.failed > 0 {
        bail!(
            "{} events could not be published; reading the same records again is safe (the \
             server drops duplicates)",
            sink.tally.failed
        );
    }
    if interrupted {
        eprintln!("stopped by a signal: the rest of the input was not read");
    }
    Ok(())
}
