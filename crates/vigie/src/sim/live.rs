//! `vigie sim --nats`: publish a simulated day to JetStream as a live centre would.
//!
//! The events before the starting instant go out at once (the day so far); the rest follow
//! the simulated clock (`--speed`), or a fixed rate whatever their times (`--rate`), or no
//! pacing at all (`--speed max`). Events are the same as `vigie sim --out` writes for the same
//! options, duplicates of the feed included (the server drops them by `Nats-Msg-Id`).
//!
//! What it must not do: change the simulated day (pacing only decides when an event is sent),
//! or stop without waiting for the acknowledgements in flight.

use std::cell::Cell;
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use anyhow::bail;
use chrono::{DateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use indicatif::{ProgressBar, ProgressState, ProgressStyle};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use vigie_core::{Event, Millis, Timestamp};
use vigie_ingest::{NatsConfig, PublishOutcome, Publisher, Report};
use vigie_sim::{Disorder, SimConfig, Simulation};

use super::SimArgs;
use crate::publish::{Tally, connect_publisher, nats_settings, runtime, stop_on_signal};

/// How fast the simulated clock runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Speed {
    /// Simulated seconds per real second.
    Factor(f64),
    /// No pacing: as fast as the acknowledgements allow.
    Max,
}

/// Parses `--speed`: a positive factor or `max`.
pub fn parse_speed(text: &str) -> Result<Speed, String> {
    if text.eq_ignore_ascii_case("max") {
        return Ok(Speed::Max);
    }
    match text.parse::<f64>() {
        Ok(factor) if factor.is_finite() && factor > 0.0 => Ok(Speed::Factor(factor)),
        _ => Err(format!(
            "{text:?} is not a speed: a positive factor (1 real time, 60 an hour per minute) or max"
        )),
    }
}

/// Parses `--rate`: events per second.
pub fn parse_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        _ => Err(format!(
            "{text:?} is not a positive number of events per second"
        )),
    }
}

/// Parses `--start`.
pub fn parse_start(text: &str) -> Result<NaiveTime, String> {
    NaiveTime::parse_from_str(text.trim(), "%H:%M")
        .map_err(|_| format!("{text:?} is not a local time HH:MM"))
}

/// When events are sent.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Pacing {
    /// All at once.
    Max,
    /// Up to `clock.start` at once, then as the simulated clock reaches them.
    Clock(SimClock),
    /// This many per second.
    Rate(f64),
}

/// The simulated time: `start` when publication starts, then running `speed` times faster than
/// real time.
#[derive(Clone, Copy, Debug, PartialEq)]
struct SimClock {
    start: Timestamp,
    speed: f64,
}

impl SimClock {
    /// The simulated time `elapsed` after the start.
    fn at(&self, elapsed: Duration) -> Timestamp {
        // The cast saturates: no speed can overflow the clock.
        self.start + Millis((elapsed.as_secs_f64() * 1000.0 * self.speed) as i64)
    }
}

/// The simulated instant publication is paced from: `start` on the simulated date, or by
/// default now if that is within the simulated day's opening hours, else the opening time.
fn pacing_start(
    config: &SimConfig,
    zone: Tz,
    start: Option<NaiveTime>,
    now: DateTime<Utc>,
) -> anyhow::Result<Timestamp> {
    let local = |time: NaiveTime| {
        zone.from_local_datetime(&config.date.and_time(time))
            .earliest()
            .map(|instant| Timestamp(instant.timestamp_millis()))
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "{} does not exist on {} in {} (the clocks change)",
                    time.format("%H:%M"),
                    config.date,
                    config.time_zone
                )
            })
    };
    match start {
        Some(time) => local(time),
        None => {
            let here = now.with_timezone(&zone);
            let open = (config.open..config.close).contains(&here.time());
            if here.date_naive() == config.date && open {
                Ok(Timestamp(now.timestamp_millis()))
            } else {
                local(config.open)
            }
        }
    }
}

fn pacing(args: &SimArgs, config: &SimConfig, zone: Tz) -> anyhow::Result<Pacing> {
    if let Some(rate) = args.rate {
        return Ok(Pacing::Rate(rate));
    }
    match args.speed {
        Speed::Max => Ok(Pacing::Max),
        Speed::Factor(speed) => Ok(Pacing::Clock(SimClock {
            start: pacing_start(config, zone, args.start, Utc::now())?,
            speed,
        })),
    }
}

/// What the paced loop knows about the simulation behind the feed: whether it has ended, and
/// its newest event time. The feed holds events back by at most its `max_delay`, so once the
/// simulation has ended and the clock is past the newest time plus that delay, a feed with
/// nothing due is done.
#[derive(Debug, Default)]
struct Progress {
    ended: Cell<bool>,
    newest: Cell<Option<Timestamp>>,
}

/// The simulation, watched.
struct Watched {
    simulation: Simulation,
    progress: Rc<Progress>,
}

impl Iterator for Watched {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        let event = self.simulation.next();
        match &event {
            Some(event) => {
                let newest = self
                    .progress
                    .newest
                    .get()
                    .map_or(event.time, |t| t.max(event.time));
                self.progress.newest.set(Some(newest));
            }
            None => self.progress.ended.set(true),
        }
        event
    }
}

/// The feed of `simulation` as [`Simulation::into_feed`] builds it (same seed, duplicates and
/// delays: a test checks that they agree), with its progress visible.
fn watched_feed(simulation: Simulation, config: &SimConfig) -> (Disorder<Watched>, Rc<Progress>) {
    let progress = Rc::new(Progress::default());
    let watched = Watched {
        simulation,
        progress: progress.clone(),
    };
    let feed = Disorder::new(
        watched,
        config.seed,
        config.duplicate_share,
        config.max_delay,
    );
    (feed, progress)
}

/// How often the paced loop looks at the clock (real time).
const TICK: Duration = Duration::from_millis(10);

/// How often the progress bar's message is rewritten.
const REDRAW: Duration = Duration::from_millis(100);

/// The publishing side: publisher, counts and progress bar.
struct Live {
    publisher: Publisher,
    zone: Tz,
    bar: ProgressBar,
    tally: Tally,
    sent: u64,
    newest: Option<Timestamp>,
    clock: Option<Timestamp>,
    phase: &'static str,
    redrawn: Instant,
}

impl Live {
    async fn publish(&mut self, event: &Event) -> anyhow::Result<()> {
        self.sent += 1;
        let message = self.publisher.event_message(self.sent, event, None)?;
        self.newest = Some(self.newest.map_or(event.time, |t| t.max(event.time)));
        let reports = self.publisher.send(message).await;
        self.take(reports);
        Ok(())
    }

    /// Whether to stop sending: on a signal (`Some(true)`), or once an event was given up
    /// after retries (`Some(false)`: the server is unreachable, more would only fail slower).
    fn halt(&self, stop: &CancellationToken) -> Option<bool> {
        if stop.is_cancelled() {
            Some(true)
        } else if self.tally.gave_up > 0 {
            Some(false)
        } else {
            None
        }
    }

    async fn harvest(&mut self) {
        let reports = self.publisher.completed().await;
        self.take(reports);
    }

    fn take(&mut self, reports: Vec<Report>) {
        for report in reports {
            self.tally.add(&report);
            if let PublishOutcome::Failed(failure) = &report.outcome {
                let id = report.id.as_deref().unwrap_or_default();
                self.bar
                    .suspend(|| eprintln!("event {id:?}: failed: {failure}"));
            }
        }
        self.bar.set_position(self.tally.acknowledged());
        if self.redrawn.elapsed() >= REDRAW {
            self.redraw();
        }
    }

    fn redraw(&mut self) {
        self.redrawn = Instant::now();
        let time = self.clock.or(self.newest).map(|t| self.local(t));
        self.bar.set_message(format!(
            "{}{}, {} duplicates, {} failed",
            self.phase,
            time.unwrap_or_else(|| "-".into()),
            self.tally.duplicates,
            self.tally.failed
        ));
    }

    fn local(&self, time: Timestamp) -> String {
        time.to_utc()
            .with_timezone(&self.zone)
            .format("%H:%M:%S")
            .to_string()
    }

    async fn finish(&mut self) {
        self.phase = "last acknowledgements, simulated ";
        self.redraw();
        let reports = self.publisher.flush().await;
        self.take(reports);
        self.bar.finish_and_clear();
    }
}

/// Publishes in the order of `pacing` until the day is out, `stop` is cancelled, or an event
/// is given up; returns whether it was stopped by a signal.
async fn publish_day(
    live: &mut Live,
    pacing: Pacing,
    simulation: Simulation,
    config: &SimConfig,
    stop: &CancellationToken,
) -> anyhow::Result<bool> {
    match pacing {
        Pacing::Max => {
            for event in simulation.into_feed() {
                if let Some(signalled) = live.halt(stop) {
                    return Ok(signalled);
                }
                live.publish(&event).await?;
            }
        }
        Pacing::Rate(rate) => {
            let started = Instant::now();
            for (count, event) in simulation.into_feed().enumerate() {
                let due = started + Duration::from_secs_f64(count as f64 / rate);
                if due > Instant::now() {
                    live.harvest().await;
                    tokio::select! {
                        _ = tokio::time::sleep_until(due) => {}
                        _ = stop.cancelled() => {}
                    }
                }
                if let Some(signalled) = live.halt(stop) {
                    return Ok(signalled);
                }
                live.publish(&event).await?;
            }
        }
        Pacing::Clock(clock) => {
            // The simulated clock runs from now, catch-up included, so that at --speed 1 from
            // "now" the events keep to the wall clock.
            let started = Instant::now();
            let (mut feed, progress) = watched_feed(simulation, config);
            live.phase = "catching up to ";
            live.clock = Some(clock.start);
            while let Some(event) = feed.next_until(clock.start) {
                if let Some(signalled) = live.halt(stop) {
                    return Ok(signalled);
                }
                live.publish(&event).await?;
            }
            live.phase = "simulated ";
            loop {
                let now = clock.at(started.elapsed());
                live.clock = Some(now);
                while let Some(event) = feed.next_until(now) {
                    if let Some(signalled) = live.halt(stop) {
                        return Ok(signalled);
                    }
                    live.publish(&event).await?;
                }
                let done = progress.ended.get()
                    && progress
                        .newest
                        .get()
                        .is_none_or(|newest| now >= newest + config.max_delay);
                if done {
                    break;
                }
                live.harvest().await;
                tokio::select! {
                    _ = tokio::time::sleep(TICK) => {}
                    _ = stop.cancelled() => {}
                }
                if let Some(signalled) = live.halt(stop) {
                    return Ok(signalled);
                }
            }
        }
    }
    Ok(false)
}

/// Runs `vigie sim --nats URL`.
pub(super) fn run(
    args: &SimArgs,
    config: &SimConfig,
    simulation: Simulation,
    url: &str,
    config_out: Option<&Path>,
) -> anyhow::Result<()> {
    if !NatsConfig::site_is_subject_token(&config.site_id) {
        bail!(
            "--site {:?} cannot be a NATS subject token (no dots, spaces or wildcards)",
            config.site_id
        );
    }
    let zone: Tz = config
        .zone()
        .ok_or_else(|| anyhow::anyhow!("{:?} is not a time zone", config.time_zone))?;
    let pacing = pacing(args, config, zone)?;
    let nats = nats_settings(args.config.as_deref(), Some(url))?;
    let (tally, elapsed, newest, stopped) = runtime()?.block_on(async {
        let stop = stop_on_signal();
        let publisher = connect_publisher(&nats, args.window, args.format.into()).await?;
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {elapsed} {human_pos} acknowledged ({rate}), {msg}",
            )
            .expect("the template is valid")
            .with_key(
                "rate",
                |state: &ProgressState, out: &mut dyn std::fmt::Write| {
                    let _ = write!(out, "{:.0}/s", state.per_sec());
                },
            ),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        let mut live = Live {
            publisher,
            zone,
            bar,
            tally: Tally::default(),
            sent: 0,
            newest: None,
            clock: None,
            phase: "simulated ",
            redrawn: Instant::now(),
        };
        let started = Instant::now();
        let outcome = publish_day(&mut live, pacing, simulation, config, &stop).await;
        // Even after an error, what was sent is seen through and counted.
        live.finish().await;
        let stopped = outcome?;
        anyhow::Ok((live.tally, started.elapsed(), live.newest, stopped))
    })?;
    let seconds = elapsed.as_secs_f64();
    let newest = newest
        .map(|t| t.to_rfc3339_in(zone))
        .unwrap_or_else(|| "-".into());
    eprintln!(
        "published the day of site {:?} on {} to {}: {} events stored, {} duplicates, {} failed in {seconds:.1} s ({:.0} events/s); simulated time reached {newest}{}{}",
        config.site_id,
        config.date,
        nats.stream.name,
        tally.stored,
        tally.duplicates,
        tally.failed,
        tally.acknowledged() as f64 / seconds.max(1e-3),
        if stopped { "; stopped by a signal" } else { "" },
        config_out
            .map(|p| format!("; site configuration in {}", p.display()))
            .unwrap_or_default(),
    );
    if tally.gave_up > 0 {
        bail!(
            "stopped after {} events went unacknowledged despite retries",
            tally.gave_up
        );
    }
    if tally.failed > 0 {
        bail!("{} events could not be published", tally.failed);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use chrono::NaiveDate;

    use super::*;

    fn config() -> SimConfig {
        SimConfig {
            advisors: 12,
            queues: 2,
            date: NaiveDate::from_ymd_opt(2026, 3, 2).unwrap(),
            ..SimConfig::default()
        }
    }

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn at(text: &str) -> Timestamp {
        Timestamp::parse_rfc3339(text).unwrap()
    }

    #[test]
    fn pacing_starts_now_during_the_simulated_day_and_at_opening_otherwise() {
        let config = config();
        let zone: Tz = "Europe/Paris".parse().unwrap();
        // 10:30 in Paris on the simulated day, centre open 08:00-20:00.
        let now = utc("2026-03-02T09:30:00Z");
        assert_eq!(
            pacing_start(&config, zone, None, now).unwrap(),
            at("2026-03-02T10:30:00+01:00")
        );
        // Before opening, after closing, another day: the opening time.
        for now in [
            "2026-03-02T06:59:00Z",
            "2026-03-02T19:00:00Z",
            "2026-03-03T09:30:00Z",
        ] {
            assert_eq!(
                pacing_start(&config, zone, None, utc(now)).unwrap(),
                at("2026-03-02T08:00:00+01:00"),
                "{now}"
            );
        }
        let start = NaiveTime::from_hms_opt(19, 45, 0);
        assert_eq!(
            pacing_start(&config, zone, start, now).unwrap(),
            at("2026-03-02T19:45:00+01:00")
        );
        // 02:30 does not exist in Paris on the night of 29 March 2026.
        let spring = SimConfig {
            date: NaiveDate::from_ymd_opt(2026, 3, 29).unwrap(),
            ..config
        };
        let gap = NaiveTime::from_hms_opt(2, 30, 0);
        let error = pacing_start(&spring, zone, gap, now).unwrap_err();
        assert!(
            error.to_string().contains("02:30 does not exist"),
            "{error}"
        );
    }

    #[test]
    fn the_simulated_clock_runs_at_its_speed() {
        let clock = SimClock {
            start: at("2026-03-02T10:00:00Z"),
            speed: 60.0,
        };
        assert_eq!(clock.at(Duration::ZERO), clock.start);
        assert_eq!(
            clock.at(Duration::from_millis(1500)),
            at("2026-03-02T10:01:30Z")
        );
    }

    #[test]
    fn speeds_rates_and_start_times_parse() {
        assert_eq!(parse_speed("max"), Ok(Speed::Max));
        assert_eq!(parse_speed("60"), Ok(Speed::Factor(60.0)));
        assert_eq!(parse_speed("0.5"), Ok(Speed::Factor(0.5)));
        for bad in ["0", "-1", "inf", "NaN", "fast"] {
            assert!(parse_speed(bad).is_err(), "{bad}");
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_rate("2000"), Ok(2000.0));
        assert_eq!(
            parse_start("07:30"),
            Ok(NaiveTime::from_hms_opt(7, 30, 0).unwrap())
        );
        assert!(parse_start("7h30").is_err());
    }

    #[test]
    fn the_watched_feed_is_the_feed_of_the_file_and_sees_the_end() {
        let config = config();
        let expected: Vec<Event> = Simulation::new(&config).unwrap().into_feed().collect();
        let distinct: std::collections::HashSet<&str> =
            expected.iter().map(|e| e.id.as_str()).collect();
        assert!(
            distinct.len() < expected.len(),
            "the feed has duplicates, so the comparison covers them"
        );
        let (mut feed, progress) = watched_feed(Simulation::new(&config).unwrap(), &config);
        // Drained by the clock, as the paced loop does.
        let far = at("2026-03-04T00:00:00Z");
        let mut got = Vec::new();
        while let Some(event) = feed.next_until(far) {
            got.push(event);
        }
        assert_eq!(got, expected);
        assert!(progress.ended.get());
        let newest = expected.iter().map(|e| e.time).max();
        assert_eq!(progress.newest.get(), newest);
    }
}
