//! `vigie sim`: write a simulated contact-centre day as JSON Lines, or publish it to NATS
//! JetStream live (`--nats`, in [`live`]).

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use chrono::{NaiveDate, NaiveTime};
use clap::Args;
use vigie_core::Millis;
use vigie_sim::{SimConfig, Simulation};

use crate::config::VigieConfig;
use crate::publish::FormatArg;

mod live;

pub use live::Speed;

/// Arguments of `vigie sim`.
#[derive(Args, Debug)]
pub struct SimArgs {
    /// Where to write the events (JSON Lines), or `-` for standard output.
    #[arg(long, default_value = "-")]
    pub out: PathBuf,
    /// Where to write the site configuration of the simulated centre (queues, targets, teams).
    /// Default: next to `--out`, with the extension `.toml` (`day.jsonl` gives `day.toml`),
    /// where `vigie replay day.jsonl` finds it.
    #[arg(long)]
    pub config_out: Option<PathBuf>,
    /// Seed of the simulation: the same seed and options give the same day, byte for byte.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Site id carried by every event.
    #[arg(long, default_value = "paris")]
    pub site: String,
    /// IANA time zone of the site.
    #[arg(long, default_value = "Europe/Paris")]
    pub time_zone: String,
    /// Local date of the simulated day, YYYY-MM-DD. Default: today in the site's time zone.
    #[arg(long)]
    pub date: Option<NaiveDate>,
    /// Rostered advisors; they form teams of 10 to 12.
    #[arg(long, default_value_t = 60)]
    pub advisors: usize,
    /// Queues (a mix of voice, chat, e-mail, callback, social and task).
    #[arg(long, default_value_t = 7)]
    pub queues: usize,
    /// Opening hours, local time, HH:MM-HH:MM.
    #[arg(long, default_value = "08:00-20:00", value_parser = parse_hours)]
    pub hours: (NaiveTime, NaiveTime),
    /// Share of events delivered twice (same id), as an at-least-once feed does.
    #[arg(long, default_value_t = 0.01)]
    pub duplicates: f64,
    /// Largest delivery delay: events come out of order within this bound ("0s" for strict
    /// time order). Keep it below the processor's allowed lateness (30s by default).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub reorder: Millis,
    /// Truncate event times to whole seconds, like second-resolution feeds (Asterisk).
    #[arg(long)]
    pub whole_seconds: bool,
    /// Share of the roster absent that day, at unchanged volume: queues then overflow.
    #[arg(long, default_value_t = 0.0)]
    pub absent: f64,
    /// Publish the day to NATS JetStream at this URL instead of writing it: what happened
    /// before --start at once, then the rest paced by --speed (or --rate), with a progress bar;
    /// Ctrl-C stops after the acknowledgements in flight. The site configuration is written
    /// only with --config-out.
    #[arg(
        long,
        value_name = "URL",
        conflicts_with = "out",
        help_heading = "Publishing to NATS"
    )]
    pub nats: Option<String>,
    /// Configuration file whose `[nats]` section gives the credentials, TLS and the stream
    /// (`--nats` sets the URL).
    #[arg(long, requires = "nats", help_heading = "Publishing to NATS")]
    pub config: Option<PathBuf>,
    /// Simulated time per real time: 1 is real time, 60 an hour per minute, `max` as fast as
    /// the acknowledgements allow.
    #[arg(long, default_value = "1", value_parser = live::parse_speed, requires = "nats", help_heading = "Publishing to NATS")]
    pub speed: Speed,
    /// Publish N events per second whatever their times (load generation), from the start of
    /// the day, instead of pacing by the simulated clock.
    #[arg(long, value_name = "N", value_parser = live::parse_rate, requires = "nats", conflicts_with_all = ["speed", "start"], help_heading = "Publishing to NATS")]
    pub rate: Option<f64>,
    /// Local time of the site (HH:MM) from which publication is paced; the events before it
    /// are published at once. Default: now if today is the simulated date and the centre is
    /// open, otherwise the opening time.
    #[arg(long, value_name = "HH:MM", value_parser = live::parse_start, requires = "nats", help_heading = "Publishing to NATS")]
    pub start: Option<NaiveTime>,
    /// Events sent and not yet acknowledged, at most (1 to 4096).
    #[arg(long, default_value_t = 256, value_parser = crate::publish::parse_window, requires = "nats", help_heading = "Publishing to NATS")]
    pub window: usize,
    /// Encoding of the published events.
    #[arg(
        long,
        value_enum,
        default_value = "json",
        requires = "nats",
        help_heading = "Publishing to NATS"
    )]
    pub format: FormatArg,
}

fn parse_hours(text: &str) -> Result<(NaiveTime, NaiveTime), String> {
    let (open, close) = text
        .split_once('-')
        .ok_or_else(|| format!("{text:?} is not HH:MM-HH:MM"))?;
    let parse = |t: &str| {
        NaiveTime::parse_from_str(t.trim(), "%H:%M")
            .map_err(|_| format!("{t:?} is not a local time HH:MM"))
    };
    Ok((parse(open)?, parse(close)?))
}

/// Parses a human duration such as `5s` or `1m 30s`.
pub fn parse_duration(text: &str) -> Result<Millis, String> {
    humantime::parse_duration(text)
        .map(Millis::from_std)
        .map_err(|error| format!("{text:?} is not a duration such as 5s or 1m 30s: {error}"))
}

impl SimArgs {
    /// The simulator configuration these arguments describe.
    pub fn sim_config(&self) -> anyhow::Result<SimConfig> {
        let defaults = SimConfig::default();
        let zone: chrono_tz::Tz = self.time_zone.parse().map_err(|_| {
            anyhow::anyhow!(
                "--time-zone {:?} is not an IANA time zone name",
                self.time_zone
            )
        })?;
        let date = self
            .date
            .unwrap_or_else(|| chrono::Utc::now().with_timezone(&zone).date_naive());
        let config = SimConfig {
            seed: self.seed,
            site_id: self.site.clone(),
            site_name: None,
            time_zone: self.time_zone.clone(),
            date,
            open: self.hours.0,
            close: self.hours.1,
            advisors: self.advisors,
            queues: self.queues,
            duplicate_share: self.duplicates,
            max_delay: self.reorder,
            whole_seconds: self.whole_seconds,
            absent_share: self.absent,
            ..defaults
        };
        config
            .validate("sim")
            .map_err(|errors| anyhow::anyhow!("invalid simulation options: {errors}"))?;
        Ok(config)
    }
}

/// The configuration file written next to an events file.
pub fn companion_config(events: &Path) -> PathBuf {
    events.with_extension("toml")
}

/// Runs `vigie sim`.
pub fn run(args: &SimArgs) -> anyhow::Result<()> {
    let config = args.sim_config()?;
    let simulation = Simulation::new(&config).map_err(|errors| anyhow::anyhow!("{errors}"))?;
    let site = simulation.site_config();
    let to_stdout = args.out.as_os_str() == "-";
    let config_out = args
        .config_out
        .clone()
        .or_else(|| (!to_stdout).then(|| companion_config(&args.out)));
    if let Some(path) = &config_out {
        if !to_stdout && path == &args.out {
            bail!("--config-out must differ from --out");
        }
        let file = VigieConfig {
            sites: vec![site],
            ..VigieConfig::default()
        };
        let text = format!(
            "# Site configuration of a simulated day (vigie sim --seed {}).\n{}",
            args.seed,
            toml::to_string(&file).context("cannot write the site configuration as TOML")?
        );
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(url) = &args.nats {
        return live::run(args, &config, simulation, url, config_out.as_deref());
    }

    let started = Instant::now();
    let out: Box<dyn Write> = if to_stdout {
        Box::new(io::stdout().lock())
    } else {
        let file = File::create(&args.out)
            .with_context(|| format!("cannot create {}", args.out.display()))?;
        Box::new(file)
    };
    let mut out = BufWriter::with_capacity(1 << 20, out);
    let mut events = 0u64;
    for event in simulation.into_feed() {
        serde_json::to_writer(&mut out, &event)?;
        out.write_all(b"\n")?;
        events += 1;
    }
    out.flush().context("cannot write the events")?;
    eprintln!(
        "wrote {events} events of site {:?} on {} ({} advisors, {} queues) in {:.1} s{}",
        config.site_id,
        config.date,
        config.advisors,
        config.queues,
        started.elapsed().as_secs_f64(),
        config_out
            .map(|p| format!("; site configuration in {}", p.display()))
            .unwrap_or_default(),
    );
    Ok(())
}
