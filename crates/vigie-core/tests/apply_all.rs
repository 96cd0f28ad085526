//! `apply_all`, which looks a few events ahead within a batch to ask for their memory early,
//! gives exactly what applying the same events one by one gives: every outcome (duplicates
//! and rejections included), every view, the counts, the memory held, the interval totals
//! captured and the abandons reported, however the feed is cut into batches.

use chrono::NaiveTime;
use proptest::prelude::*;
use vigie_core::totals::DayTotals;
use vigie_core::{
    AbandonedChange, Event, EventBody, Millis, Outcome, ProcessingConfig, Processor, SiteConfig,
    SiteProcessor,
};
use vigie_sim::{Disorder, SimConfig, Simulation};

mod common;
use common::{Seen, seen};

/// A simulated morning as a feed delivers it (3% duplicates, delays up to 20 s), with events
/// the processor must refuse mixed in: contact events an hour late, and new events of
/// contacts seen minutes before.
fn feed(seed: u64, advisors: usize, queues: usize) -> (SiteConfig, Vec<Event>) {
    let config = SimConfig {
        seed,
        advisors,
        queues,
        open: NaiveTime::from_hms_opt(8, 0, 0).expect("a valid time"),
        close: NaiveTime::from_hms_opt(10, 0, 0).expect("a valid time"),
        duplicate_share: 0.03,
        max_delay: Millis::from_secs(20),
        ..SimConfig::default()
    };
    let simulation = Simulation::new(&config).expect("valid simulation settings");
    let site = simulation.site_config();
    let delivered: Vec<Event> = Disorder::new(
        simulation,
        seed + 1,
        config.duplicate_share,
        config.max_delay,
    )
    .collect();
    let mut events = Vec::with_capacity(delivered.len() + delivered.len() / 50);
    for (index, event) in delivered.iter().enumerate() {
        events.push(event.clone());
        if index % 97 == 96 && matches!(event.body, EventBody::Contact(_)) {
            // An hour late: refused as too late, or as a contact already gone.
            let mut late = event.clone();
            late.id = format!("{}-late", event.id);
            late.time = event.time - Millis::from_mins(60);
            events.push(late);
            // An event of a contact seen a few minutes before, now: usually completed and
            // remembered, so refused.
            if let Some(earlier) = index.checked_sub(300).map(|i| &delivered[i])
                && matches!(earlier.body, EventBody::Contact(_))
            {
                let mut stray = earlier.clone();
                stray.id = format!("{}-stray", earlier.id);
                stray.time = event.time;
                events.push(stray);
            }
        }
    }
    (site, events)
}

fn processor(site: &SiteConfig) -> SiteProcessor {
    let mut p = SiteProcessor::new(site.clone(), &ProcessingConfig::default());
    p.enable_interval_totals();
    p.enable_abandoned_contacts();
    p
}

/// What a processor gave while events were applied, and what it shows after them.
#[derive(Debug, PartialEq)]
struct Applied {
    outcomes: Vec<Outcome>,
    totals: Vec<DayTotals>,
    changes: Vec<AbandonedChange>,
    after: Seen,
}

fn one_by_one(site: &SiteConfig, events: &[Event]) -> Applied {
    let mut p = processor(site);
    let outcomes = events.iter().map(|event| p.apply(event)).collect();
    Applied {
        outcomes,
        totals: p.take_interval_totals(),
        changes: p.take_abandoned_changes(),
        after: seen(&p),
    }
}

/// Applies the events in batches of the given sizes (cycled), taking the captured totals and
/// abandons after each batch.
fn in_batches(site: &SiteConfig, events: &[Event], sizes: &[usize]) -> Applied {
    let mut p = processor(site);
    let (mut outcomes, mut totals, mut changes) = (Vec::new(), Vec::new(), Vec::new());
    let mut rest = events;
    for &size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (batch, after) = rest.split_at(size.clamp(1, rest.len()));
        let first = outcomes.len();
        p.apply_all(batch, |event, outcome| {
            // Each outcome comes with its own event, in order.
            assert!(std::ptr::eq(event, &batch[outcomes.len() - first]));
            outcomes.push(outcome);
        });
        totals.extend(p.take_interval_totals());
        changes.extend(p.take_abandoned_changes());
        rest = after;
    }
    Applied {
        outcomes,
        totals,
        changes,
        after: seen(&p),
    }
}

#[test]
fn the_feed_holds_duplicates_and_rejections() {
    let (site, events) = feed(3, 30, 3);
    let applied = one_by_one(&site, &events);
    let duplicates = applied
        .outcomes
        .iter()
        .filter(|o| **o == Outcome::Duplicate)
        .count();
    let rejected = applied
        .outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Rejected(_)))
        .count();
    assert!(
        duplicates > 20 && rejected > 20,
        "{duplicates} duplicates, {rejected} rejected"
    );
}

#[test]
fn one_batch_of_the_whole_feed_equals_applying_one_by_one() {
    let (site, events) = feed(5, 40, 4);
    assert_eq!(
        in_batches(&site, &events, &[events.len()]),
        one_by_one(&site, &events)
    );
}

#[test]
fn the_multi_site_processor_applies_each_run_of_a_site_to_that_site() {
    let (first, first_events) = feed(7, 20, 2);
    let mut second = first.clone();
    second.id = "second-site".into();
    let mut interleaved = Vec::new();
    for (index, event) in first_events.iter().enumerate() {
        interleaved.push(event.clone());
        if index % 3 == 0 {
            let mut other = event.clone();
            other.site = second.id.clone();
            interleaved.push(other);
        }
    }
    let mut expected = Processor::new(vec![first.clone(), second.clone()], Default::default());
    let expected_outcomes: Vec<Outcome> = interleaved
        .iter()
        .map(|event| expected.apply(event))
        .collect();
    let mut batched = Processor::new(vec![first.clone(), second.clone()], Default::default());
    let mut outcomes = Vec::new();
    for batch in interleaved.chunks(37) {
        batched.apply_all(batch, |_, outcome| outcomes.push(outcome));
    }
    assert_eq!(outcomes, expected_outcomes);
    for site in [&first.id, &second.id] {
        let (expected, batched) = (expected.site(site), batched.site(site));
        let (expected, batched) = (expected.expect("has events"), batched.expect("has events"));
        assert_eq!(seen(batched), seen(expected), "site {site}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn any_cut_into_batches_equals_applying_one_by_one(
        seed in 0u64..1_000,
        advisors in 10usize..50,
        queues in 1usize..5,
        sizes in proptest::collection::vec(1usize..200, 1..8),
    ) {
        let (site, events) = feed(seed, advisors, queues);
        prop_assert_eq!(in_batches(&site, &events, &sizes), one_by_one(&site, &events));
    }
}
