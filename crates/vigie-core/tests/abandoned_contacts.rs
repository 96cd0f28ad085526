//! The abandoned contacts the processor reports, over simulated days delivered as real feeds
//! deliver them (duplicates, disorder within the allowed lateness, drained at random moments):
//! the journal of changes, applied to a set, leaves exactly the abandons read straight from the
//! events in order (contact, time, queue, channel, wait), as many per queue as the views count,
//! whatever the order the events came in.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use vigie_core::{
    AbandonedContact, Channel, ContactEventKind, Event, EventBody, Millis, Outcome,
    ProcessingConfig, SiteProcessor, Timestamp, Window,
};
use vigie_sim::{Disorder, SimConfig, Simulation};

/// The day's abandons read from the events in time order: for each `contact.abandoned`, the
/// queue the contact entered last, its channel, and the wait since it entered.
fn abandons_from_the_events(config: &SimConfig) -> BTreeSet<AbandonedContact> {
    let simulation = Simulation::new(config).expect("valid simulation settings");
    let site = simulation.site_config();
    let short: BTreeMap<String, Millis> = site
        .queues
        .iter()
        .map(|q| (q.id.clone(), q.short_abandon.millis()))
        .collect();
    let mut entered: BTreeMap<String, (String, Channel, Timestamp)> = BTreeMap::new();
    let mut channels: BTreeMap<String, Channel> = BTreeMap::new();
    let mut abandons = BTreeSet::new();
    let mut events: Vec<Event> = simulation.collect();
    events.sort_by_key(|event| event.time);
    for event in events {
        let EventBody::Contact(contact) = &event.body else {
            continue;
        };
        if let Some(channel) = contact.channel {
            channels.insert(contact.contact.clone(), channel);
        }
        let channel = channels
            .get(&contact.contact)
            .copied()
            .unwrap_or(Channel::Voice);
        match &contact.kind {
            ContactEventKind::Queued => {
                let queue = contact
                    .queue
                    .clone()
                    .expect("a queued event names its queue");
                entered.insert(contact.contact.clone(), (queue, channel, event.time));
            }
            ContactEventKind::Transferred {
                to_queue: Some(queue),
            } => {
                entered.insert(
                    contact.contact.clone(),
                    (queue.clone(), channel, event.time),
                );
            }
            ContactEventKind::Abandoned => {
                let (queue, channel, since) = entered
                    .remove(&contact.contact)
                    .expect("an abandoned contact waited in a queue");
                let wait = event.time - since;
                abandons.insert(AbandonedContact {
                    abandoned_at: event.time,
                    contact: contact.contact.clone(),
                    short: wait < short[&queue],
                    queue,
                    channel,
                    wait,
                });
            }
            ContactEventKind::Answered | ContactEventKind::Dequeued { .. } => {
                entered.remove(&contact.contact);
            }
            _ => {}
        }
    }
    abandons
}

/// The abandons reported by a processor fed the day with duplicates and disorder, the journal
/// drained every `drain_every` events; and the processor at the end of the day.
fn abandons_reported(
    config: &SimConfig,
    feed_seed: u64,
    drain_every: usize,
) -> (BTreeSet<AbandonedContact>, SiteProcessor) {
    let simulation = Simulation::new(config).expect("valid simulation settings");
    let site = simulation.site_config();
    let feed = Disorder::new(
        simulation,
        feed_seed,
        config.duplicate_share,
        config.max_delay,
    );
    let mut p = SiteProcessor::new(site, &ProcessingConfig::default());
    p.enable_abandoned_contacts();
    let mut list = BTreeSet::new();
    let drain = |p: &mut SiteProcessor, list: &mut BTreeSet<AbandonedContact>| {
        for change in p.take_abandoned_changes() {
            if change.added {
                assert!(
                    list.insert(change.contact.clone()),
                    "added twice: {change:?}"
                );
            } else {
                assert!(
                    list.remove(&change.contact),
                    "withdrawn unknown: {change:?}"
                );
            }
        }
    };
    for (n, event) in feed.enumerate() {
        match p.apply(&event) {
            Outcome::Applied | Outcome::Duplicate => {}
            Outcome::Rejected(rejection) => panic!("the simulated day is valid: {rejection}"),
        }
        if n % drain_every == 0 {
            drain(&mut p, &mut list);
        }
    }
    drain(&mut p, &mut list);
    assert_eq!(p.stats().abandoned_changes_dropped, 0);
    (list, p)
}

fn sim_config(seed: u64, advisors: usize, queues: usize, max_delay_secs: i64) -> SimConfig {
    SimConfig {
        seed,
        advisors,
        queues,
        date: "2026-03-02".parse().expect("a valid date"),
        duplicate_share: 0.03,
        max_delay: Millis::from_secs(max_delay_secs),
        ..SimConfig::default()
    }
}

fn check_day(config: &SimConfig, feed_seed: u64, drain_every: usize) {
    let expected = abandons_from_the_events(config);
    let (reported, p) = abandons_reported(config, feed_seed, drain_every);
    assert!(
        expected.len() >= 10,
        "a simulated day has abandons to compare: {}",
        expected.len()
    );
    let missing: Vec<_> = expected.difference(&reported).take(3).collect();
    let extra: Vec<_> = reported.difference(&expected).take(3).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}, extra {extra:?}"
    );
    check_views(&p, &reported);
}

/// The views count as many abandons (and short ones) per queue as the list holds.
fn check_views(p: &SiteProcessor, list: &BTreeSet<AbandonedContact>) {
    for queue in &p.site_view(Window::Today).queues {
        let view = p
            .queue_view(&queue.queue, Window::Today)
            .expect("a listed queue");
        let listed: Vec<&AbandonedContact> =
            list.iter().filter(|a| a.queue == queue.queue).collect();
        let short = listed.iter().filter(|a| a.short).count() as u64;
        assert_eq!(
            (
                view.indicators.flow.abandoned,
                view.indicators.flow.short_abandoned
            ),
            (listed.len() as u64, short),
            "queue {}",
            queue.queue
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn the_journal_leaves_exactly_the_abandons_of_the_events(
        seed in 0u64..1_000,
        advisors in 10usize..24,
        queues in 1usize..5,
        max_delay_secs in 1i64..=30,
        drain_every in 1usize..500,
    ) {
        check_day(&sim_config(seed, advisors, queues, max_delay_secs), seed + 1, drain_every);
    }

}
