//! The service level by 15-minute interval of queue and team views, on simulated days: the
//! intervals run from the day start to the current one, the same in every window; they add up
//! to the `today` flow of every queue and team, and the service level recomputed from the sums
//! is the day's; each finished interval holds what the trailing 15 minutes held when it ended;
//! the figures do not depend on the order of delivery; a day starting in the middle of the
//! traffic and a change of thresholds in the middle of the day keep all of that true.
#![allow(clippy::unwrap_used)] // A test fails loudly at the first surprise, on purpose.

use std::collections::BTreeMap;

use vigie_core::config::HumanDuration;
use vigie_core::views::{FlowIndicators, INTERVAL_LENGTH, IntervalServiceLevel};
use vigie_core::{
    Event, Millis, Outcome, ProcessingConfig, SiteConfig, SiteProcessor, SlVariant, Timestamp,
    Window,
};
use vigie_sim::{Disorder, SimConfig, Simulation};

/// A simulated day: the site configuration and the events in time order.
fn day(config: &SimConfig) -> (SiteConfig, Vec<Event>) {
    let simulation = Simulation::new(config).unwrap();
    (simulation.site_config(), simulation.collect())
}

/// The five counts of an interval, or of a flow.
type Counts = [u64; 5];

fn interval_counts(interval: &IntervalServiceLevel) -> Counts {
    [
        interval.answered,
        interval.answered_within_threshold,
        interval.abandoned,
        interval.short_abandoned,
        interval.abandoned_within_threshold,
    ]
    .map(u64::from)
}

fn flow_counts(flow: &FlowIndicators) -> Counts {
    [
        flow.answered,
        flow.answered_within_threshold,
        flow.abandoned,
        flow.short_abandoned,
        flow.abandoned_within_threshold,
    ]
}

/// The service level of counts, from the formulas of docs/indicators.md.
fn service_level(counts: Counts, variant: SlVariant) -> Option<f64> {
    let [answered, within, abandoned, short, abandoned_within] = counts;
    let (numerator, denominator) = match variant {
        SlVariant::Offered => (within, answered + abandoned - short),
        SlVariant::Answered => (within, answered),
        SlVariant::Positive => (within + abandoned_within, answered + abandoned),
    };
    (denominator > 0).then(|| numerator as f64 / denominator as f64)
}

/// What a queue's or a team's view shows for `window`: its intervals and its flow.
fn view(
    site: &SiteProcessor,
    target: &(bool, String),
    window: Window,
) -> (Vec<IntervalServiceLevel>, FlowIndicators) {
    let (is_team, id) = target;
    if *is_team {
        let view = site.team_view(id, window).unwrap();
        (view.service_level_by_interval, view.indicators.flow)
    } else {
        let view = site.queue_view(id, window).unwrap();
        (view.service_level_by_interval, view.indicators.flow)
    }
}

/// Every queue and team of the site: (is a team, id).
fn targets(site: &SiteProcessor) -> Vec<(bool, String)> {
    let queues = site.queue_ids().into_iter().map(|q| (false, q.to_owned()));
    let teams = site.team_ids().into_iter().map(|t| (true, t.to_owned()));
    queues.chain(teams).collect()
}

/// Checks every queue and team at the processor's instant and returns their intervals.
fn check_sums(site: &SiteProcessor, label: &str) -> BTreeMap<(bool, String), Vec<Counts>> {
    let now = site.now();
    let day_start = site.day_of(now).start;
    let expected_len = ((now - day_start).0 / INTERVAL_LENGTH.0 + 1) as usize;
    let mut all = BTreeMap::new();
    for target in targets(site) {
        let context = format!("{label}, {target:?} at {now}");
        let (intervals, today) = view(site, &target, Window::Today);
        for window in [Window::Last15m, Window::Last60m] {
            assert_eq!(
                view(site, &target, window).0,
                intervals,
                "{context}: the same in every window"
            );
        }
        assert_eq!(intervals.len(), expected_len, "{context}");
        let mut sum = [0; 5];
        for (index, interval) in intervals.iter().enumerate() {
            assert_eq!(
                interval.start,
                day_start + Millis(INTERVAL_LENGTH.0 * index as i64),
                "{context}"
            );
            let counts = interval_counts(interval);
            assert_eq!(
                interval.service_level,
                service_level(counts, today.service_level_variant),
                "{context}: interval {index}"
            );
            for (total, count) in sum.iter_mut().zip(counts) {
                *total += count;
            }
        }
        assert_eq!(sum, flow_counts(&today), "{context}: sums against today");
        assert_eq!(
            service_level(sum, today.service_level_variant),
            today.service_level,
            "{context}: service level of the sums"
        );
        all.insert(target, intervals.iter().map(interval_counts).collect());
    }
    all
}

/// Instants to look at: every 50 minutes from the first event (so they fall anywhere in an
/// interval), and the last event.
fn instants(events: &[Event]) -> Vec<Timestamp> {
    let first = events.first().unwrap().time;
    let last = events.last().unwrap().time;
    let mut instants: Vec<Timestamp> = (1..)
        .map(|k| first + Millis::from_mins(50 * k))
        .take_while(|t| *t < last)
        .collect();
    instants.push(last);
    instants
}

/// Applies the day in order, checking the sums at every instant, and every finished interval
/// against the trailing 15 minutes read when it ended. Returns the intervals seen at each
/// instant.
fn in_order(
    site_config: &SiteConfig,
    events: &[Event],
    instants: &[Timestamp],
    label: &str,
) -> Vec<BTreeMap<(bool, String), Vec<Counts>>> {
    let mut site = SiteProcessor::new(site_config.clone(), &ProcessingConfig::default());
    // What the trailing 15 minutes held 1 ms before each interval's end: exactly the interval.
    let mut trailing: BTreeMap<(bool, String, Timestamp), Counts> = BTreeMap::new();
    let mut seen = Vec::new();
    let mut next_instant = instants.iter().copied().peekable();
    let mut interval_end = site.day_of(events[0].time).start;
    for event in events {
        // Before the event: the interval ends and the instants that come before it, in order.
        loop {
            let boundary = (interval_end <= event.time).then(|| interval_end - Millis(1));
            let instant = next_instant.peek().copied().filter(|at| *at < event.time);
            let boundary_first = match (boundary, instant) {
                (None, None) => break,
                (Some(boundary), Some(at)) => boundary <= at,
                (Some(_), None) => true,
                (None, Some(_)) => false,
            };
            if let (true, Some(boundary)) = (boundary_first, boundary) {
                site.advance_to(boundary);
                for target in targets(&site) {
                    let (_, flow) = view(&site, &target, Window::Last15m);
                    trailing.insert((target.0, target.1, interval_end), flow_counts(&flow));
                }
                interval_end = interval_end + INTERVAL_LENGTH;
            } else if let Some(at) = instant {
                site.advance_to(at);
                seen.push(check_sums(&site, label));
                next_instant.next();
            }
        }
        assert_eq!(site.apply(event), Outcome::Applied, "{label}: {event:?}");
    }
    for at in next_instant {
        site.advance_to(at);
        seen.push(check_sums(&site, label));
    }
    // The day's finished intervals, as the trailing 15 minutes saw them.
    let end = *instants.last().unwrap();
    let day_start = site.day_of(end).start;
    let mut checked = 0;
    for (target, intervals) in check_sums(&site, label) {
        for (index, counts) in intervals.iter().enumerate().rev().skip(1) {
            let interval_end = day_start + Millis(INTERVAL_LENGTH.0 * (index as i64 + 1));
            let key = (target.0, target.1.clone(), interval_end);
            if let Some(expected) = trailing.get(&key) {
                assert_eq!(
                    counts, expected,
                    "{label}, {target:?}: interval ending at {interval_end}"
                );
                checked += counts[0] + counts[2];
            }
        }
    }
    assert!(
        checked > 1000,
        "{label}: {checked} exits checked interval by interval"
    );
    seen
}

/// Applies the day as a feed delivers it (duplicates, up to 25 s late) and returns the
/// intervals at each instant, all events up to it applied.
fn out_of_order(
    site_config: &SiteConfig,
    events: &[Event],
    instants: &[Timestamp],
    seed: u64,
    label: &str,
) -> Vec<BTreeMap<(bool, String), Vec<Counts>>> {
    let mut site = SiteProcessor::new(site_config.clone(), &ProcessingConfig::default());
    let mut pending: Vec<Event> =
        Disorder::new(events.iter().cloned(), seed, 0.05, Millis::from_secs(25)).collect();
    instants
        .iter()
        .map(|&at| {
            let (now, later): (Vec<Event>, Vec<Event>) =
                pending.drain(..).partition(|event| event.time <= at);
            for event in &now {
                let outcome = site.apply(event);
                assert!(
                    matches!(outcome, Outcome::Applied | Outcome::Duplicate),
                    "{label}: {outcome:?}"
                );
            }
            pending = later;
            site.advance_to(at);
            check_sums(&site, label)
        })
        .collect()
}

fn check_day(config: &SimConfig, site: &SiteConfig, events: &[Event], label: &str) {
    let instants = instants(events);
    let ordered = in_order(site, events, &instants, label);
    let delivered = out_of_order(site, events, &instants, config.seed, label);
    for ((ordered, delivered), at) in ordered.iter().zip(&delivered).zip(&instants) {
        assert_eq!(
            ordered, delivered,
            "{label} at {at}: the order of delivery matters"
        );
    }
}

#[test]
fn intervals_add_up_to_the_day_on_a_simulated_day_whatever_the_order() {
    let config = SimConfig {
        advisors: 40,
        queues: 5,
        ..SimConfig::default()
    };
    let (site, events) = day(&config);
    check_day(&config, &site, &events, "default day");
}

#[test]
fn waits_in_whole_seconds_fall_on_the_thresholds_and_count_as_the_day_counts_them() {
    let config = SimConfig {
        seed: 3,
        advisors: 30,
        queues: 4,
        whole_seconds: true,
        ..SimConfig::default()
    };
    let (site, events) = day(&config);
    check_day(&config, &site, &events, "whole seconds");
}

#[test]
fn a_day_starting_in_the_middle_of_the_traffic_starts_its_intervals_there() {
    let config = SimConfig {
        seed: 5,
        advisors: 24,
        queues: 3,
        ..SimConfig::default()
    };
    let (mut site, events) = day(&config);
    site.day_start = "13:00".to_owned();
    let seen = in_order(&site, &events, &instants(&events), "day from 13:00");
    // After 13:00 local (12:00 UTC in March), the lists restart from one interval.
    let processor = SiteProcessor::new(site.clone(), &ProcessingConfig::default());
    let afternoon = instants(&events)
        .iter()
        .position(|at| processor.day_of(*at).start > processor.day_of(events[0].time).start)
        .unwrap();
    let (_, first) = seen[afternoon].iter().next().unwrap();
    assert!(first.len() <= 4, "{} intervals", first.len());
}

#[test]
fn new_thresholds_in_the_middle_of_the_day_keep_the_sums_of_the_day() {
    let config = SimConfig {
        seed: 7,
        advisors: 30,
        queues: 4,
        ..SimConfig::default()
    };
    let (site_config, events) = day(&config);
    let mut site = SiteProcessor::new(site_config.clone(), &ProcessingConfig::default());
    let middle = events.len() / 2;
    for event in &events[..middle] {
        assert_eq!(site.apply(event), Outcome::Applied);
    }
    let before = check_sums(&site, "before the change");
    let mut changed = site_config.clone();
    for queue in &mut changed.queues {
        queue.sl_threshold = HumanDuration::secs(7);
        queue.short_abandon = HumanDuration::secs(2);
    }
    site.reconfigure(changed).unwrap();
    let after = check_sums(&site, "just after the change");
    assert_ne!(
        before, after,
        "the unsettled part is judged by the new thresholds"
    );
    for event in &events[middle..] {
        assert_eq!(site.apply(event), Outcome::Applied);
    }
    check_sums(&site, "end of a day with a change");
}
