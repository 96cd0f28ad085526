//! The end-to-end check: a queue_log day translated and replayed gives the indicators
//! computed directly from the queue_log (hold times, call times, abandons).
//!
//! The day is generated here, seeded: three queues, eight members, a few hundred calls with
//! rings not answered, abandons (short ones included), timeouts, exits, transfers into
//! another queue and out, pauses with reasons (per queue, and PAUSEALL). Its lines follow the
//! Asterisk documentation, "Queue Logs" (<https://docs.asterisk.org/Operation/Logging/Queue-Logs/>,
//! "Queue log event types"). The expected figures are read from the generated text with a
//! parser of this file, independent of the translator: CONNECT's `holdtime` is the wait of an
//! answered call, COMPLETE*'s and the transfers' `calltime` its talk, ABANDON's `waittime` the
//! wait of an abandon.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use vigie_connectors::{QueueLogConfig, QueueLogQueueConfig};
use vigie_core::{ProcessingConfig, SiteConfig, SiteProcessor, Timestamp, Window};

/// 2026-03-02T00:00:00Z; the site is in Paris (UTC+1 that day).
const MIDNIGHT_UTC: i64 = 1_772_409_600;
const HOUR: i64 = 3600;
/// Local 08:00.
const OPEN: i64 = MIDNIGHT_UTC + 7 * HOUR;

const QUEUES: [(&str, u64); 3] = [("billing", 10), ("support", 0), ("claims", 5)];

/// Member interfaces and their queues.
const MEMBERS: [(&str, &[&str]); 8] = [
    ("PJSIP/1001", &["billing", "claims"]),
    ("PJSIP/1002", &["billing"]),
    ("PJSIP/1003", &["billing", "support"]),
    ("PJSIP/1004", &["billing", "support"]),
    ("SIP/1005", &["support"]),
    ("Local/1006@agents/n", &["support"]),
    ("Local/1007@agents/n", &["support", "claims"]),
    ("PJSIP/1008", &["claims"]),
];

fn wrapup(queue: &str) -> i64 {
    QUEUES
        .iter()
        .find(|(name, _)| *name == queue)
        .map_or(0, |(_, secs)| *secs as i64)
}

/// Busy periods of each member, to give calls only to free members.
struct Agenda {
    busy: Vec<Vec<(i64, i64)>>,
}

impl Agenda {
    fn free(&self, member: usize, start: i64, end: i64) -> bool {
        // One second apart at least, so that one member's lines never share a second.
        self.busy[member]
            .iter()
            .all(|&(from, to)| end + 1 < from || to + 1 < start)
    }

    fn book(&mut self, member: usize, start: i64, end: i64) {
        self.busy[member].push((start, end));
    }
}

struct Day {
    rng: ChaCha8Rng,
    agenda: Agenda,
    /// (time, order of writing, line)
    lines: Vec<(i64, usize, String)>,
}

impl Day {
    fn write(&mut self, time: i64, rest: String) {
        let order = self.lines.len();
        self.lines.push((time, order, format!("{time}|{rest}")));
    }

    fn members_of(queue: &str) -> Vec<usize> {
        (0..MEMBERS.len())
            .filter(|&m| MEMBERS[m].1.contains(&queue))
            .collect()
    }

    /// A free member of `queue` for `[start, end]`, other than `except`.
    fn free_member(
        &mut self,
        queue: &str,
        start: i64,
        end: i64,
        except: Option<usize>,
    ) -> Option<usize> {
        let free: Vec<usize> = Day::members_of(queue)
            .into_iter()
            .filter(|&m| Some(m) != except && self.agenda.free(m, start, end))
            .collect();
        (!free.is_empty()).then(|| free[self.rng.random_range(0..free.len())])
    }

    /// The call `callid` waits in `queue` from `entered`; `may_transfer` allows a transfer to
    /// claims (not from claims itself).
    fn wait_in_queue(&mut self, callid: &str, queue: &str, entered: i64, may_transfer: bool) {
        let roll: f64 = self.rng.random();
        if roll < 0.08 {
            // A third of the abandons are short ones (below the default 5 s).
            let wait = if self.rng.random_bool(0.33) {
                self.rng.random_range(0..=4)
            } else {
                self.rng.random_range(5..=90)
            };
            self.write(
                entered + wait,
                format!("{callid}|{queue}|NONE|ABANDON|1|1|{wait}"),
            );
            return;
        }
        if roll < 0.11 {
            self.write(
                entered + 300,
                format!("{callid}|{queue}|NONE|EXITWITHTIMEOUT|1|1|300"),
            );
            return;
        }
        if roll < 0.12 {
            let wait = self.rng.random_range(0..=3);
            self.write(
                entered + wait,
                format!("{callid}|{queue}|NONE|EXITEMPTY|1|1|{wait}"),
            );
            return;
        }
        if roll < 0.14 {
            let wait = self.rng.random_range(10..=60);
            let key = if self.rng.random_bool(0.5) { 1 } else { 5 };
            self.write(
                entered + wait,
                format!("{callid}|{queue}|NONE|EXITWITHKEY|{key}|1|1|{wait}"),
            );
            return;
        }
        let talk = self.rng.random_range(30..=420);
        let mut wait = if self.rng.random_bool(0.3) {
            self.rng.random_range(0..=5)
        } else {
            self.rng.random_range(1..=60)
        };
        // A call transferred in waits at least a second in its new queue: an answer in the
        // transfer's own second is the translator's 1 ms case, checked on its own.
        if !may_transfer {
            wait = wait.max(1);
        }
        let answered = loop {
            let answer = entered + wait;
            let end = answer + talk + wrapup(queue);
            if let Some(member) = self.free_member(queue, answer, end, None) {
                break Some((member, answer, end));
            }
            wait += 10;
            if wait > 280 {
                break None;
            }
        };
        let Some((member, answer, end)) = answered else {
            self.write(
                entered + wait,
                format!("{callid}|{queue}|NONE|ABANDON|3|1|{wait}"),
            );
            return;
        };
        // Sometimes another member rang first, for 15 s, without answering.
        if wait >= 16 && self.rng.random_bool(0.25) {
            let ring_end = answer - 1;
            if let Some(other) = self.free_member(queue, ring_end - 15, ring_end, Some(member)) {
                self.agenda.book(other, ring_end - 15, ring_end);
                let interface = MEMBERS[other].0;
                self.write(
                    ring_end,
                    format!("{callid}|{queue}|{interface}|RINGNOANSWER|15000"),
                );
            }
        }
        self.agenda.book(member, answer, end);
        let interface = MEMBERS[member].0;
        let ring = self.rng.random_range(1..=8);
        self.write(
            answer,
            format!("{callid}|{queue}|{interface}|CONNECT|{wait}|{callid}9|{ring}"),
        );
        let hangup = answer + talk;
        let roll: f64 = self.rng.random();
        if may_transfer && roll < 0.07 {
            self.write(
                hangup,
                format!("{callid}|{queue}|{interface}|TRANSFER|600|from-queue|{wait}|{talk}|1"),
            );
            self.write(
                hangup,
                format!("{callid}|claims|NONE|ENTERQUEUE||0600000000|1"),
            );
            self.wait_in_queue(callid, "claims", hangup, false);
        } else if roll < 0.10 {
            self.write(
                hangup,
                format!(
                    "{callid}|{queue}|{interface}|BLINDTRANSFER|0142000000|outbound|{wait}|{talk}|1"
                ),
            );
        } else if roll < 0.12 {
            self.write(
                hangup,
                format!(
                    "{callid}|{queue}|{interface}|ATTENDEDTRANSFER|BRIDGE|{callid}7|{wait}|{talk}|1"
                ),
            );
        } else {
            let event = if self.rng.random_bool(0.5) {
                "COMPLETEAGENT"
            } else {
                "COMPLETECALLER"
            };
            self.write(
                hangup,
                format!("{callid}|{queue}|{interface}|{event}|{wait}|{talk}|1"),
            );
        }
    }
}

/// A seeded day of queue_log, as Asterisk writes it: lines in time order.
fn queue_log_day(seed: u64, calls: usize) -> Vec<String> {
    let mut day = Day {
        rng: ChaCha8Rng::seed_from_u64(seed),
        agenda: Agenda {
            busy: vec![Vec::new(); MEMBERS.len()],
        },
        lines: Vec::new(),
    };
    for (member, (interface, queues)) in MEMBERS.iter().enumerate() {
        let login = OPEN - 300 + member as i64;
        for queue in *queues {
            day.write(login, format!("MANAGER|{queue}|{interface}|ADDMEMBER|"));
        }
        // A break in the morning, lunch, and for some an unexplained pause.
        let mut pauses = vec![
            (
                "break",
                OPEN + 2 * HOUR + day.rng.random_range(0..HOUR),
                day.rng.random_range(600..=900),
            ),
            (
                "lunch",
                OPEN + 4 * HOUR + day.rng.random_range(0..HOUR),
                day.rng.random_range(1800..=2700),
            ),
        ];
        if member % 3 == 0 {
            pauses.push((
                "",
                OPEN + 7 * HOUR + day.rng.random_range(0..HOUR),
                day.rng.random_range(120..=600),
            ));
        }
        for (reason, start, length) in pauses {
            day.agenda.book(member, start, start + length);
            if member % 2 == 0 {
                day.write(start, format!("NONE|NONE|{interface}|PAUSEALL|{reason}"));
            }
            for queue in *queues {
                day.write(start, format!("NONE|{queue}|{interface}|PAUSE|{reason}"));
            }
            if member % 2 == 0 {
                day.write(start + length, format!("NONE|NONE|{interface}|UNPAUSEALL|"));
            }
            for queue in *queues {
                day.write(start + length, format!("NONE|{queue}|{interface}|UNPAUSE|"));
            }
        }
    }
    day.write(OPEN - 400, "NONE|NONE|NONE|QUEUESTART|".to_owned());
    let mut arrivals: Vec<i64> = (0..calls)
        .map(|_| OPEN + day.rng.random_range(0..9 * HOUR))
        .collect();
    arrivals.sort_unstable();
    for (number, arrival) in arrivals.into_iter().enumerate() {
        let queue = match day.rng.random_range(0..10) {
            0..=4 => "billing",
            5..=8 => "support",
            _ => "claims",
        };
        let callid = format!("{arrival}.{number}");
        day.write(
            arrival,
            format!("{callid}|{queue}|NONE|ENTERQUEUE||06{number:08}|1"),
        );
        day.wait_in_queue(&callid, queue, arrival, queue != "claims");
        // Rings that another member's answer cut short (not misses).
        if number % 17 == 0 {
            day.write(
                arrival,
                format!("{callid}|{queue}|PJSIP/1002|RINGCANCELED|800"),
            );
        }
    }
    for (interface, queues) in MEMBERS {
        for queue in queues {
            day.write(
                OPEN + 10 * HOUR + 1800,
                format!("MANAGER|{queue}|{interface}|REMOVEMEMBER|"),
            );
        }
    }
    day.lines.sort_by_key(|(time, order, _)| (*time, *order));
    day.lines.into_iter().map(|(_, _, line)| line).collect()
}

fn connector_config() -> QueueLogConfig {
    let mut config = QueueLogConfig::new("paris");
    config.time_zone = "Europe/Paris".to_owned();
    for (queue, secs) in QUEUES {
        config.queues.insert(
            queue.to_owned(),
            QueueLogQueueConfig {
                wrapuptime: Duration::from_secs(secs),
            },
        );
    }
    config
        .advisors
        .insert("PJSIP/1001".to_owned(), "a-1001".to_owned());
    config
        .advisors
        .insert("1006".to_owned(), "a-1006".to_owned());
    config
        .transfer_targets
        .insert("600@from-queue".to_owned(), "claims".to_owned());
    config
}

/// The advisor id the test expects for an interface: the configured ones, else the bare
/// extension.
fn advisor_id(interface: &str) -> String {
    let extension = interface
        .split('/')
        .nth(1)
        .and_then(|rest| rest.split('@').next())
        .unwrap_or(interface);
    match extension {
        "1001" => "a-1001".to_owned(),
        "1006" => "a-1006".to_owned(),
        other => other.to_owned(),
    }
}

/// A queue's figures, as the test reads them from the log.
#[derive(Debug, Default, PartialEq)]
struct QueueFigures {
    offered: u64,
    answered: u64,
    abandoned: u64,
    short_abandoned: u64,
    abandoned_within_threshold: u64,
    dequeued: u64,
    answered_within_threshold: u64,
    asa: Option<f64>,
    max_wait_answered: Option<f64>,
    transferred: u64,
    handled: u64,
    avg_talk: Option<f64>,
    avg_acw: Option<f64>,
    aht: Option<f64>,
}

/// An advisor's figures, as the test reads them from the log.
#[derive(Debug, Default, PartialEq)]
struct AdvisorFigures {
    missed_offers: u64,
    handled: u64,
    /// Per reason: total seconds and count.
    pauses: BTreeMap<String, (f64, u32)>,
}

/// Average in seconds, rounded to the millisecond, as the views report.
fn average(total_secs: i64, count: u64) -> Option<f64> {
    (count > 0).then(|| ((total_secs * 1000) as f64 / count as f64).round() / 1000.0)
}

/// The figures of the day read straight from its lines.
fn figures_from_the_log(
    lines: &[String],
) -> (
    BTreeMap<String, QueueFigures>,
    BTreeMap<String, AdvisorFigures>,
) {
    #[derive(Default)]
    struct Sums {
        figures: QueueFigures,
        wait: i64,
        max_wait: Option<i64>,
        talk: i64,
        acw: i64,
    }
    let mut queues: BTreeMap<String, Sums> = BTreeMap::new();
    let mut advisors: BTreeMap<String, AdvisorFigures> = BTreeMap::new();
    let mut pause_started: BTreeMap<String, (i64, String)> = BTreeMap::new();
    for line in lines {
        let fields: Vec<&str> = line.split('|').collect();
        let time: i64 = fields[0].parse().expect("Unix seconds");
        let (queue, agent, event) = (fields[2], fields[3], fields[4]);
        let number = |index: usize| -> i64 { fields[5 + index].parse().expect("a number") };
        let sums = queues.entry(queue.to_owned()).or_default();
        let figures = &mut sums.figures;
        match event {
            "ENTERQUEUE" => figures.offered += 1,
            "CONNECT" => {
                let holdtime = number(0);
                figures.answered += 1;
                figures.answered_within_threshold += u64::from(holdtime <= 20);
                sums.wait += holdtime;
                sums.max_wait = sums.max_wait.max(Some(holdtime));
            }
            "ABANDON" => {
                let waittime = number(2);
                figures.abandoned += 1;
                figures.short_abandoned += u64::from(waittime < 5);
                figures.abandoned_within_threshold += u64::from(waittime <= 20);
            }
            "EXITWITHTIMEOUT" | "EXITEMPTY" | "EXITWITHKEY" => figures.dequeued += 1,
            "COMPLETEAGENT" | "COMPLETECALLER" | "TRANSFER" | "BLINDTRANSFER"
            | "ATTENDEDTRANSFER" => {
                let calltime = if event.starts_with("COMPLETE") {
                    number(1)
                } else {
                    number(3)
                };
                figures.handled += 1;
                figures.transferred += u64::from(!event.starts_with("COMPLETE"));
                sums.talk += calltime;
                sums.acw += wrapup(queue);
                advisors.entry(advisor_id(agent)).or_default().handled += 1;
            }
            "RINGNOANSWER" => advisors.entry(advisor_id(agent)).or_default().missed_offers += 1,
            // Per queue copies of one pause: the first line of the second starts it.
            "PAUSE" | "PAUSEALL" => {
                let reason = match fields[5] {
                    "" => "unspecified".to_owned(),
                    reason => reason.to_owned(),
                };
                pause_started
                    .entry(advisor_id(agent))
                    .or_insert((time, reason));
            }
            "UNPAUSE" | "UNPAUSEALL" => {
                if let Some((start, reason)) = pause_started.remove(&advisor_id(agent)) {
                    let entry = advisors
                        .entry(advisor_id(agent))
                        .or_default()
                        .pauses
                        .entry(reason)
                        .or_default();
                    entry.0 += (time - start) as f64;
                    entry.1 += 1;
                }
            }
            _ => {}
        }
    }
    let queues = queues
        .into_iter()
        .filter(|(queue, _)| QUEUES.iter().any(|(name, _)| name == queue))
        .map(|(queue, sums)| {
            let mut figures = sums.figures;
            figures.asa = average(sums.wait, figures.answered);
            figures.max_wait_answered = sums.max_wait.map(|wait| wait as f64);
            figures.avg_talk = average(sums.talk, figures.handled);
            figures.avg_acw = average(sums.acw, figures.handled);
            figures.aht = average(sums.talk + sums.acw, figures.handled);
            (queue, figures)
        })
        .collect();
    (queues, advisors)
}

fn replay(lines: &[String]) -> SiteProcessor {
    let mut translator = connector_config().build().expect("a valid configuration");
    let mut site = SiteConfig::with_defaults("paris");
    site.time_zone = "Europe/Paris".to_owned();
    let mut processor = SiteProcessor::new(site, &ProcessingConfig::default());
    let (events, malformed) = translator.translate_text(&lines.join("\n"));
    assert!(malformed.is_empty(), "{malformed:?}");
    assert!(translator.stats().skipped.contains_key("RINGCANCELED"));
    common::apply_all(&mut processor, &events);
    processor.advance_to(Timestamp((OPEN + 11 * HOUR) * 1000));
    processor
}

fn figures_from_the_views(
    processor: &SiteProcessor,
) -> (
    BTreeMap<String, QueueFigures>,
    BTreeMap<String, AdvisorFigures>,
) {
    let queues = QUEUES
        .iter()
        .map(|(queue, _)| {
            let view = processor
                .queue_view(queue, Window::Today)
                .expect("every queue had calls");
            let flow = &view.indicators.flow;
            let handling = &view.indicators.handling;
            let figures = QueueFigures {
                offered: flow.offered,
                answered: flow.answered,
                abandoned: flow.abandoned,
                short_abandoned: flow.short_abandoned,
                abandoned_within_threshold: flow.abandoned_within_threshold,
                dequeued: flow.dequeued,
                answered_within_threshold: flow.answered_within_threshold,
                asa: flow.asa,
                max_wait_answered: flow.max_wait_answered,
                transferred: view.indicators.transferred,
                handled: handling.handled,
                avg_talk: handling.avg_talk,
                avg_acw: handling.avg_acw,
                aht: handling.aht,
            };
            ((*queue).to_owned(), figures)
        })
        .collect();
    let site = processor.site_view(Window::Today);
    let advisors = site
        .advisors
        .iter()
        .map(|view| {
            let figures = AdvisorFigures {
                missed_offers: view.indicators.missed_offers,
                handled: view.indicators.handling.handled,
                pauses: view
                    .indicators
                    .pauses
                    .iter()
                    .map(|pause| (pause.reason.clone(), (pause.time, pause.count)))
                    .collect(),
            };
            assert_eq!(
                view.state, "logged_out",
                "{} logged out at the end of the day",
                view.advisor
            );
            (view.advisor.clone(), figures)
        })
        .collect();
    (queues, advisors)
}

#[test]
fn a_queue_log_day_replayed_gives_the_figures_of_the_log() {
    let lines = queue_log_day(20260302, 400);
    assert!(lines.len() > 1200, "a realistic day: {} lines", lines.len());
    let (queues, advisors) = figures_from_the_log(&lines);
    // The day has what it should: every outcome, in every queue that can have it.
    for (queue, figures) in &queues {
        assert!(
            figures.answered > 30 && figures.abandoned > 2,
            "{queue}: {figures:?}"
        );
        assert!(
            figures.short_abandoned > 0 || queue == "claims",
            "{queue}: {figures:?}"
        );
    }
    assert!(queues.values().map(|f| f.dequeued).sum::<u64>() > 5);
    assert!(queues.values().map(|f| f.transferred).sum::<u64>() > 10);
    assert!(advisors.values().map(|a| a.missed_offers).sum::<u64>() > 10);

    let processor = replay(&lines);
    let (view_queues, view_advisors) = figures_from_the_views(&processor);
    assert_eq!(view_queues, queues);
    assert_eq!(view_advisors, advisors);
    let totals = processor.site_view(Window::Today).totals.flow;
    assert_eq!(
        totals.offered,
        queues.values().map(|f| f.offered).sum::<u64>()
    );
    assert_eq!(
        totals.abandoned,
        queues.values().map(|f| f.abandoned).sum::<u64>()
    );
}

#[test]
fn the_same_day_with_calls_out_of_order_and_repeated_lines_gives_the_same_figures() {
    let lines = queue_log_day(7, 300);
    let expected = figures_from_the_log(&lines);
    // Several sources merged (or a queue_log table read by time): each call's lines keep
    // their order, but calls and members slip up to 4 s behind one another, and one line in
    // twenty is delivered twice.
    let mut rng = ChaCha8Rng::seed_from_u64(99);
    let mut delays: BTreeMap<String, i64> = BTreeMap::new();
    let mut shuffled: Vec<(i64, usize, String)> = Vec::new();
    for (order, line) in lines.iter().enumerate() {
        let fields: Vec<&str> = line.split('|').collect();
        let owner = if fields[1] == "NONE" || fields[1] == "MANAGER" {
            fields[3]
        } else {
            fields[1]
        };
        let delay = *delays
            .entry(owner.to_owned())
            .or_insert_with(|| rng.random_range(0..=4));
        let time: i64 = fields[0].parse().expect("Unix seconds");
        shuffled.push((time + delay, order, line.clone()));
        if rng.random_bool(0.05) {
            shuffled.push((time + delay + rng.random_range(0..=3), order, line.clone()));
        }
    }
    shuffled.sort_by_key(|(time, order, _)| (*time, *order));
    let delivered: Vec<String> = shuffled.into_iter().map(|(_, _, line)| line).collect();
    assert_ne!(delivered, lines);
    let processor = replay(&delivered);
    assert_eq!(figures_from_the_views(&processor), expected);
    assert!(processor.stats().duplicates > 0);
}
