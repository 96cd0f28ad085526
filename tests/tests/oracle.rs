//! The processor against an independent batch recomputation (`vigie_tests::oracle`), on
//! simulated days: every indicator of the site view, for every window, at several instants;
//! the same days delivered out of order with duplicates; the same stream applied in batches
//! interleaved with clock advances and queries; and small hand-written days aimed at the
//! corners of the definitions (thresholds, window edges, rings, transfers, statuses, teams,
//! the same millisecond, expiry, daylight saving).
//!
//! A failure lists each distinct difference once, as `path: expected (oracle), found
//! (processor)`, with the first instant and window where it was seen.

use proptest::prelude::*;
use serde_json::Value;
use vigie_core::time::Millis;
use vigie_core::{
    AdvisorEvent, AdvisorEventKind, AdvisorStatus, Channel, ContactEvent, ContactEventKind,
    DequeueReason, Event, EventBody, Outcome, ProcessingConfig, Processor, SiteConfig,
    SiteProcessor, Timestamp, Window,
};
use vigie_sim::{Disorder, SimConfig, Simulation};
use vigie_tests::oracle::{Oracle, differences};

const MINUTE: i64 = 60_000;

/// A simulated day: the site configuration and the events in time order.
fn day(config: &SimConfig) -> (SiteConfig, Vec<Event>) {
    let simulation = Simulation::new(config).expect("a valid simulation");
    let site = simulation.site_config();
    (site, simulation.collect())
}

/// Instants to look at: every hour from the first event, the last event, and instants
/// placed so that an event lies exactly on the start of each trailing window (excluded) or at
/// `now` (included).
fn instants(events: &[Event]) -> Vec<Timestamp> {
    let first = events.first().expect("a day has events").time.0;
    let last = events.last().expect("a day has events").time.0;
    let mut instants: Vec<i64> = (1..)
        .map(|k| first + k * 60 * MINUTE)
        .take_while(|t| *t < last)
        .collect();
    let at = |share: f64| events[(events.len() as f64 * share) as usize].time.0;
    instants.extend([
        at(0.3) + 15 * MINUTE,
        at(0.5) + 30 * MINUTE,
        at(0.7) + 60 * MINUTE,
        at(0.4),
        last,
    ]);
    instants.sort_unstable();
    instants.dedup();
    instants.into_iter().map(Timestamp).collect()
}

/// Compares every window of the processor's view with the oracle at the processor's `now`.
fn compare_with_oracle(
    processor: &SiteProcessor,
    applied: &[Event],
    site: &SiteConfig,
    label: &str,
) -> Vec<String> {
    let oracle = Oracle::new(applied, site, processor.now());
    let mut found = Vec::new();
    for window in Window::ALL {
        let view = serde_json::to_value(processor.site_view(window)).expect("views serialize");
        let expected = oracle.site_view(window);
        found.extend(
            differences(&expected, &view)
                .into_iter()
                .map(|d| format!("{label} at {} window {window}: {d}", processor.now())),
        );
    }
    found
}

/// Fails with the differences found, each once with where it was first seen and how often.
#[track_caller]
fn assert_none(differences: Vec<String>) {
    if differences.is_empty() {
        return;
    }
    // Each difference reads "<where>: <path>: expected..., found ..."; the same path and
    // values often repeat over instants and windows.
    let mut grouped: Vec<(String, String, usize)> = Vec::new();
    for difference in &differences {
        let (context, what) = difference.split_once(": ").unwrap_or(("", difference));
        match grouped.iter_mut().find(|(_, w, _)| w == what) {
            Some((_, _, count)) => *count += 1,
            None => grouped.push((context.to_owned(), what.to_owned(), 1)),
        }
    }
    let shown: Vec<String> = grouped
        .iter()
        .take(80)
        .map(|(context, what, count)| format!("{what}\n    first at {context}, {count} time(s)"))
        .collect();
    panic!(
        "{} difference(s), {} distinct, between the processor and the oracle \
         (path: expected, found):\n{}",
        differences.len(),
        grouped.len(),
        shown.join("\n")
    );
}

#[track_caller]
fn applied(outcome: Outcome, event: &Event) {
    assert_eq!(outcome, Outcome::Applied, "event {event:?}");
}

/// Applies the day in order and compares with the oracle at every instant of `instants`.
fn compare_day(
    site: &SiteConfig,
    events: &[Event],
    instants: &[Timestamp],
    label: &str,
) -> Vec<String> {
    let mut processor = SiteProcessor::new(site.clone(), &ProcessingConfig::default());
    let mut next = 0;
    let mut found = Vec::new();
    for &at in instants {
        while let Some(event) = events.get(next).filter(|e| e.time <= at) {
            applied(processor.apply(event), event);
            next += 1;
        }
        processor.advance_to(at);
        assert_eq!(processor.now(), at);
        found.extend(compare_with_oracle(
            &processor,
            &events[..next],
            site,
            label,
        ));
    }
    found
}

#[track_caller]
fn check_day(site: &SiteConfig, events: &[Event], instants: &[Timestamp], label: &str) {
    assert_none(compare_day(site, events, instants, label));
}

/// The processor's views at each instant, the events applied in the order given.
fn views_at(site: &SiteConfig, events: &[Event], instants: &[Timestamp]) -> Vec<Vec<Value>> {
    let mut processor = SiteProcessor::new(site.clone(), &ProcessingConfig::default());
    let mut pending: Vec<&Event> = events.iter().collect();
    instants
        .iter()
        .map(|&at| {
            // Apply, in the order given, what happened up to `at`.
            let (now, later): (Vec<&Event>, Vec<&Event>) =
                pending.iter().partition(|event| event.time <= at);
            for event in now {
                applied(processor.apply(event), event);
            }
            pending = later;
            processor.advance_to(at);
            Window::ALL
                .iter()
                .map(|&window| {
                    serde_json::to_value(processor.site_view(window)).expect("serializes")
                })
                .collect()
        })
        .collect()
}

fn check_sim(config: &SimConfig, label: &str) {
    let (site, events) = day(config);
    check_day(&site, &events, &instants(&events), label);
}

#[test]
fn default_day_matches_the_oracle() {
    check_sim(&SimConfig::default(), "default seed 1");
}

#[test]
fn default_day_of_another_seed_matches_the_oracle() {
    check_sim(
        &SimConfig {
            seed: 2,
            ..SimConfig::default()
        },
        "default seed 2",
    );
}

#[test]
fn small_site_whose_day_starts_at_one_in_the_afternoon() {
    // With the day starting at 13:00 local, `today` starts in the middle of the traffic:
    // contacts and pauses span the day start, advisors logged in the morning have no first
    // login today.
    let config = SimConfig {
        seed: 5,
        advisors: 12,
        queues: 2,
        ..SimConfig::default()
    };
    let (mut site, events) = day(&config);
    site.day_start = "13:00".to_owned();
    site.validate("site").expect("a valid site");
    let mut at = instants(&events);
    // 13:00 local (12:00Z) exactly, and just after.
    let day_start = Timestamp::parse_rfc3339("2026-03-02T13:00:00+01:00").expect("a time");
    at.extend([day_start, day_start + Millis(1)]);
    at.sort_unstable();
    check_day(&site, &events, &at, "small, day start 13:00");
}

#[test]
fn larger_site_matches_the_oracle() {
    let config = SimConfig {
        seed: 7,
        advisors: 150,
        queues: 15,
        ..SimConfig::default()
    };
    let (site, events) = day(&config);
    // Fewer instants: the day is about twice the default.
    let last = events.last().expect("events").time;
    let middle = events[events.len() / 2].time;
    let early = events[events.len() / 5].time;
    check_day(&site, &events, &[early, middle, last], "larger");
}

#[test]
fn whole_second_times_with_ties_match_the_oracle() {
    check_sim(
        &SimConfig {
            seed: 3,
            whole_seconds: true,
            ..SimConfig::default()
        },
        "whole seconds",
    );
}

#[test]
fn understaffed_day_with_overflowing_queues_matches_the_oracle() {
    check_sim(
        &SimConfig {
            seed: 4,
            absent_share: 0.33,
            ..SimConfig::default()
        },
        "a third absent",
    );
}

/// Delivers `events` through [`Disorder`] (5% duplicates, up to 25 s late) and, at each
/// instant, applies what was delivered with a time up to it; checks the views equal the
/// in-order processor's and the oracle's.
fn check_disorder(config: &SimConfig, label: &str) {
    let (site, events) = day(config);
    let at = instants(&events);
    let max_delay = Millis::from_secs(25);
    let mut feed = Disorder::new(events.clone().into_iter(), config.seed, 0.05, max_delay);
    let mut ordered = SiteProcessor::new(site.clone(), &ProcessingConfig::default());
    // The multi-site processor, as the engine uses it.
    let mut shuffled = Processor::new(vec![site.clone()], ProcessingConfig::default());
    let mut next_ordered = 0;
    // Delivered events with a time after the current instant, held back in delivery order.
    let mut held: Vec<Event> = Vec::new();
    let mut delivered: Vec<Event> = Vec::new();
    let mut duplicates = 0;
    let mut found = Vec::new();
    for &instant in &at {
        while let Some(event) = events.get(next_ordered).filter(|e| e.time <= instant) {
            applied(ordered.apply(event), event);
            next_ordered += 1;
        }
        ordered.advance_to(instant);
        // What is delivered up to `instant`, in delivery order, applied as one batch.
        let mut batch = Vec::new();
        for event in std::mem::take(&mut held) {
            if event.time <= instant {
                batch.push(event);
            } else {
                held.push(event);
            }
        }
        // Everything up to `instant` has been delivered once an event more than the largest
        // delay after it comes out.
        for event in feed.by_ref() {
            let beyond = event.time > instant + max_delay;
            if event.time <= instant {
                batch.push(event);
            } else {
                held.push(event);
            }
            if beyond {
                break;
            }
        }
        shuffled.apply_all(&batch, |event, outcome| match outcome {
            Outcome::Applied => {}
            Outcome::Duplicate => duplicates += 1,
            Outcome::Rejected(rejection) => {
                panic!("{label}: {event:?} rejected: {rejection:?}")
            }
        });
        delivered.extend(batch);
        shuffled.advance_to(instant);
        let shuffled = shuffled.site(&site.id).expect("the site has events");
        for window in Window::ALL {
            let in_order = serde_json::to_value(ordered.site_view(window)).expect("serializes");
            let out_of_order =
                serde_json::to_value(shuffled.site_view(window)).expect("serializes");
            found.extend(
                differences(&in_order, &out_of_order)
                    .into_iter()
                    .map(|d| format!("{label} disordered vs in order at {instant} {window}: {d}")),
            );
        }
        found.extend(compare_with_oracle(shuffled, &delivered, &site, label));
    }
    assert!(duplicates > 0, "{label}: the feed repeated some events");
    assert_none(found);
}

#[test]
fn disordered_feed_with_duplicates_gives_the_same_views() {
    check_disorder(&SimConfig::default(), "default, disordered");
}

#[test]
fn disordered_whole_second_feed_gives_the_same_views() {
    check_disorder(
        &SimConfig {
            seed: 6,
            advisors: 30,
            queues: 4,
            whole_seconds: true,
            ..SimConfig::default()
        },
        "whole seconds, disordered",
    );
}

/// A small deterministic generator for the interleaving test (xorshift64*).
struct Draws(u64);

impl Draws {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % bound
    }
}

#[test]
fn batches_interleaved_with_clock_advances_and_queries_give_the_same_views() {
    let config = SimConfig {
        seed: 8,
        advisors: 24,
        queues: 3,
        ..SimConfig::default()
    };
    let (site, events) = day(&config);
    let first = events.first().expect("events").time;
    for end in [
        events[events.len() * 2 / 3].time,
        events.last().expect("events").time,
    ] {
        let upto: Vec<&Event> = events.iter().filter(|e| e.time <= end).collect();
        let mut straight = SiteProcessor::new(site.clone(), &ProcessingConfig::default());
        for event in &upto {
            applied(straight.apply(event), event);
        }
        straight.advance_to(end);

        let mut draws = Draws(0x9E37_79B9_7F4A_7C15 ^ end.0 as u64);
        let mut batched = SiteProcessor::new(site.clone(), &ProcessingConfig::default());
        let mut queried = 0;
        // Batches of 1 to 80 events (`apply_all`, which looks ahead within a batch), with
        // clock advances and queries between them.
        let upto: Vec<Event> = upto.into_iter().cloned().collect();
        let mut start = 0;
        while start < upto.len() {
            let stop = (start + 1 + draws.below(80) as usize).min(upto.len());
            batched.apply_all(&upto[start..stop], |event, outcome| applied(outcome, event));
            let (index, event) = (stop - 1, &upto[stop - 1]);
            start = stop;
            match draws.below(4) {
                // The clock jumps forward, possibly beyond events still to come (never
                // beyond `end`).
                0 => {
                    let span = (end - event.time).0.max(0) as u64;
                    batched.advance_to(event.time + Millis(draws.below(span + 1) as i64));
                }
                1 => batched.advance_to(event.time),
                2 => {
                    let window = Window::ALL[draws.below(4) as usize];
                    queried += batched.site_view(window).advisors.len();
                }
                3 if index % 7 == 0 => batched.advance_to(first),
                _ => {}
            }
        }
        assert!(queried > 0);
        batched.advance_to(end);
        let mut found = Vec::new();
        for window in Window::ALL {
            let expected = serde_json::to_value(straight.site_view(window)).expect("serializes");
            let view = serde_json::to_value(batched.site_view(window)).expect("serializes");
            found.extend(
                differences(&expected, &view)
                    .into_iter()
                    .map(|d| format!("batched vs straight at {end} {window}: {d}")),
            );
        }
        found.extend(compare_with_oracle(&batched, &upto, &site, "batched"));
        assert_none(found);
    }
}

/// The comparison itself must catch a wrong value: a deliberately altered oracle view differs.
#[test]
fn the_comparison_catches_a_wrong_value() {
    let config = SimConfig {
        seed: 9,
        advisors: 10,
        queues: 2,
        ..SimConfig::default()
    };
    let (site, events) = day(&config);
    let end = events.last().expect("events").time;
    let oracle = Oracle::new(&events, &site, end);
    let good = oracle.site_view(Window::Today);
    let mut wrong = good.clone();
    let answered = wrong["queues"][0]["answered"].as_u64().expect("a count");
    wrong["queues"][0]["answered"] = Value::from(answered + 1);
    let occupancy = wrong["totals"]["occupancy"].as_f64().expect("a ratio");
    wrong["totals"]["occupancy"] = Value::from(occupancy * (1.0 + 1e-6));
    let found = differences(&good, &wrong);
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(differences(&good, &good).is_empty());
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 8,
        max_shrink_iters: 8,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_days_match_the_oracle(
        seed in 100u64..1_000_000,
        advisors in 3usize..30,
        queues in 1usize..5,
        absent in prop_oneof![Just(0.0), Just(0.3)],
        whole_seconds in any::<bool>(),
    ) {
        let config = SimConfig {
            seed,
            advisors,
            queues,
            absent_share: absent,
            whole_seconds,
            ..SimConfig::default()
        };
        let (site, events) = day(&config);
        let third = events[events.len() / 3].time;
        let middle = events[events.len() * 2 / 3].time;
        let last = events.last().expect("events").time;
        let label = format!(
            "seed {seed}, {advisors} advisors, {queues} queues, absent {absent}, \
             whole seconds {whole_seconds}"
        );
        check_day(&site, &events, &[third, middle, last], &label);
    }
}

// Small hand-written days aimed at the corners of the definitions the simulator rarely or
// never reaches: values exactly at the thresholds and window edges, rings ended otherwise
// than by an answer or a miss, repeats, transfers in every form, statuses and teams changing.
// Each is compared with the oracle at every event instant and where an event lies exactly on
// the start of a trailing window.

/// Builds a day of events for the site `lyon`, times in seconds after 08:00Z.
struct Script {
    events: Vec<Event>,
}

const BASE: &str = "2026-03-02T08:00:00Z";

impl Script {
    fn new() -> Script {
        Script { events: Vec::new() }
    }

    fn time(secs: f64) -> Timestamp {
        Timestamp::parse_rfc3339(BASE).expect("a time") + Millis((secs * 1000.0).round() as i64)
    }

    fn push(&mut self, secs: f64, body: EventBody) -> &mut Script {
        let id = format!("ev-{:04}", self.events.len());
        self.events.push(Event {
            id,
            time: Script::time(secs),
            site: "lyon".to_owned(),
            body,
        });
        self
    }

    fn contact(
        &mut self,
        secs: f64,
        contact: &str,
        kind: ContactEventKind,
        queue: Option<&str>,
        advisor: Option<&str>,
    ) -> &mut Script {
        // A contact keeps the media of its first queue (chat for the chat queue).
        let first_queue = self.events.iter().find_map(|event| match &event.body {
            EventBody::Contact(c) if c.contact == contact && c.kind == ContactEventKind::Queued => {
                c.queue.clone()
            }
            _ => None,
        });
        let channel = queue.map(|q| {
            if first_queue.as_deref().unwrap_or(q) == "chat" {
                Channel::Chat
            } else {
                Channel::Voice
            }
        });
        self.push(
            secs,
            EventBody::Contact(ContactEvent {
                contact: contact.to_owned(),
                kind,
                queue: queue.map(str::to_owned),
                channel,
                advisor: advisor.map(str::to_owned),
            }),
        )
    }

    fn queued(&mut self, secs: f64, contact: &str, queue: &str) -> &mut Script {
        self.contact(secs, contact, ContactEventKind::Queued, Some(queue), None)
    }

    fn offered(&mut self, secs: f64, contact: &str, advisor: &str) -> &mut Script {
        self.contact(
            secs,
            contact,
            ContactEventKind::Offered,
            None,
            Some(advisor),
        )
    }

    fn missed(&mut self, secs: f64, contact: &str, advisor: &str) -> &mut Script {
        self.contact(secs, contact, ContactEventKind::Missed, None, Some(advisor))
    }

    fn answered(&mut self, secs: f64, contact: &str, advisor: &str) -> &mut Script {
        self.contact(
            secs,
            contact,
            ContactEventKind::Answered,
            None,
            Some(advisor),
        )
    }

    fn answered_direct(
        &mut self,
        secs: f64,
        contact: &str,
        advisor: &str,
        queue: Option<&str>,
    ) -> &mut Script {
        self.contact(
            secs,
            contact,
            ContactEventKind::Answered,
            queue,
            Some(advisor),
        )
    }

    fn held(&mut self, secs: f64, contact: &str) -> &mut Script {
        self.contact(secs, contact, ContactEventKind::Held, None, None)
    }

    fn resumed(&mut self, secs: f64, contact: &str) -> &mut Script {
        self.contact(secs, contact, ContactEventKind::Resumed, None, None)
    }

    fn transferred(
        &mut self,
        secs: f64,
        contact: &str,
        advisor: Option<&str>,
        to_queue: Option<&str>,
    ) -> &mut Script {
        let kind = ContactEventKind::Transferred {
            to_queue: to_queue.map(str::to_owned),
        };
        self.contact(secs, contact, kind, None, advisor)
    }

    fn abandoned(&mut self, secs: f64, contact: &str) -> &mut Script {
        self.contact(secs, contact, ContactEventKind::Abandoned, None, None)
    }

    fn dequeued(&mut self, secs: f64, contact: &str) -> &mut Script {
        let kind = ContactEventKind::Dequeued {
            reason: DequeueReason::Callback,
        };
        self.contact(secs, contact, kind, None, None)
    }

    fn ended(&mut self, secs: f64, contact: &str) -> &mut Script {
        self.contact(secs, contact, ContactEventKind::Ended, None, None)
    }

    fn completed(&mut self, secs: f64, contact: &str, advisor: Option<&str>) -> &mut Script {
        let kind = ContactEventKind::Completed {
            disposition: None,
            resolved: None,
        };
        self.contact(secs, contact, kind, None, advisor)
    }

    fn advisor(&mut self, secs: f64, advisor: &str, kind: AdvisorEventKind) -> &mut Script {
        self.push(
            secs,
            EventBody::Advisor(AdvisorEvent {
                advisor: advisor.to_owned(),
                kind,
            }),
        )
    }

    fn login(&mut self, secs: f64, advisor: &str, team: Option<&str>) -> &mut Script {
        let kind = AdvisorEventKind::Login {
            team: team.map(str::to_owned),
            name: Some(format!("{advisor} at {secs}")),
        };
        self.advisor(secs, advisor, kind)
    }

    fn pause(&mut self, secs: f64, advisor: &str, reason: &str) -> &mut Script {
        let kind = AdvisorEventKind::State(AdvisorStatus::Pause {
            reason: reason.to_owned(),
        });
        self.advisor(secs, advisor, kind)
    }

    fn available(&mut self, secs: f64, advisor: &str) -> &mut Script {
        self.advisor(
            secs,
            advisor,
            AdvisorEventKind::State(AdvisorStatus::Available),
        )
    }

    fn logout(&mut self, secs: f64, advisor: &str) -> &mut Script {
        self.advisor(secs, advisor, AdvisorEventKind::Logout)
    }

    /// Checks the script against the oracle at every event instant, 1 ms later, and where
    /// each event lies exactly on the start of a trailing window.
    fn check(&self, site: &SiteConfig, label: &str) {
        let mut events = self.events.clone();
        events.sort_by_key(|event| event.time);
        let mut at: Vec<Timestamp> = Vec::new();
        for event in &events {
            for offset in [0, 1, 15 * MINUTE, 30 * MINUTE, 60 * MINUTE] {
                at.push(event.time + Millis(offset));
            }
        }
        at.sort_unstable();
        at.dedup();
        let mut found = compare_day(site, &events, &at, label);
        // The same events arriving with those of each millisecond in the reverse order: the
        // views must not change.
        let mut reversed = self.events.clone();
        reversed.reverse();
        reversed.sort_by_key(|event| event.time);
        let in_order = views_at(site, &events, &at);
        let out_of_order = views_at(site, &reversed, &at);
        for ((instant, expected), found_views) in at.iter().zip(&in_order).zip(&out_of_order) {
            for ((window, expected), view) in Window::ALL.iter().zip(expected).zip(found_views) {
                found.extend(differences(expected, view).into_iter().map(|d| {
                    format!(
                        "{label}, same-millisecond arrivals reversed, at {instant} {window}: {d}"
                    )
                }));
            }
        }
        assert_none(found);
    }
}

fn lyon() -> SiteConfig {
    let site: SiteConfig = toml::from_str(
        r#"
id = "lyon"
time_zone = "Europe/Paris"

[[queue]]
id = "billing"
name = "Billing"
aht_target = "5m"

[[queue]]
id = "chat"
sl_threshold = "30s"
short_abandon = "10s"
sl_variant = "answered"

[[team]]
id = "team-a"
name = "Team A"
advisors = ["a1", "a2"]
queues = ["billing"]

[[team]]
id = "team-b"
advisors = ["a3"]
queues = ["chat", "billing"]
sl_variant = "positive"
"#,
    )
    .expect("a valid site");
    site.validate("site").expect("a valid site");
    site
}

#[test]
fn waits_exactly_at_the_thresholds() {
    let mut s = Script::new();
    s.login(-60.0, "a1", None).login(-60.0, "a2", None);
    // Answered after exactly T (within) and 1 ms more (not within).
    s.queued(0.0, "c1", "billing").answered(20.0, "c1", "a1");
    s.queued(1.0, "c2", "billing").answered(21.001, "c2", "a2");
    // Abandoned after exactly S (not short), 1 ms less (short), exactly T (within), 1 ms more.
    s.queued(2.0, "c3", "billing").abandoned(7.0, "c3");
    s.queued(3.0, "c4", "billing").abandoned(7.999, "c4");
    s.queued(4.0, "c5", "billing").abandoned(24.0, "c5");
    s.queued(5.0, "c6", "billing").abandoned(25.001, "c6");
    s.queued(6.0, "c7", "billing").dequeued(100.0, "c7");
    // Chat: T = 30 s, S = 10 s; queued and answered in the same millisecond.
    s.queued(8.0, "c8", "chat").answered(8.0, "c8", "a2");
    s.queued(9.0, "c9", "chat").abandoned(19.0, "c9");
    s.ended(60.0, "c1").completed(90.0, "c1", Some("a1"));
    s.ended(70.0, "c2").completed(75.0, "c2", Some("a2"));
    s.ended(80.0, "c8").completed(80.0, "c8", None);
    s.check(&lyon(), "thresholds");
}

#[test]
fn rings_ended_by_a_pause_an_abandon_a_flow_out_and_a_dequeue() {
    let mut s = Script::new();
    s.login(0.0, "a1", None)
        .login(0.0, "a2", None)
        .login(0.0, "a3", None);
    // a1 is offered c1, goes on pause while it rings; the customer hangs up.
    s.queued(10.0, "c1", "billing").offered(11.0, "c1", "a1");
    s.pause(12.0, "a1", "break").abandoned(25.0, "c1");
    // The routing moves c2 to chat while it rings for a1.
    s.queued(30.0, "c2", "billing").offered(31.0, "c2", "a1");
    s.transferred(35.0, "c2", None, Some("chat"));
    s.offered(36.0, "c2", "a3").answered(40.0, "c2", "a3");
    // c3 rings for a2 and leaves for a callback.
    s.queued(50.0, "c3", "billing")
        .offered(51.0, "c3", "a2")
        .dequeued(60.0, "c3");
    // A miss without a ring (queue_log has no ring-start line).
    s.queued(70.0, "c4", "billing").missed(75.0, "c4", "a2");
    s.answered(80.0, "c4", "a2");
    s.available(100.0, "a1");
    s.ended(120.0, "c2").completed(130.0, "c2", None);
    s.ended(140.0, "c4").completed(150.0, "c4", None);
    s.check(&lyon(), "rings");
}

#[test]
fn repeated_queueing_flows_between_queues_and_transfers() {
    let mut s = Script::new();
    s.login(-10.0, "a1", None)
        .login(-10.0, "a2", None)
        .login(-10.0, "a3", None);
    // A repeat of the queue is no second offer; a queue elsewhere is a flow-out; a queue while
    // talking ends the conversation.
    s.queued(0.0, "c1", "billing").queued(5.0, "c1", "billing");
    s.queued(10.0, "c1", "chat").answered(15.0, "c1", "a3");
    s.ended(50.0, "c1").completed(60.0, "c1", None);
    // A transfer to chat with a contact.queued for chat at the same instant: one offer.
    s.queued(200.0, "c2", "billing").answered(205.0, "c2", "a1");
    s.transferred(230.0, "c2", Some("a1"), Some("chat"));
    s.queued(230.0, "c2", "chat");
    s.answered(240.0, "c2", "a3")
        .completed(250.0, "c2", Some("a1"));
    s.ended(300.0, "c2").completed(310.0, "c2", None);
    // A contact.ended of the transferring advisor just before the transfer.
    s.queued(400.0, "c3", "billing").answered(401.0, "c3", "a1");
    s.ended(419.5, "c3")
        .transferred(420.0, "c3", Some("a1"), Some("chat"));
    s.answered(430.0, "c3", "a3").ended(440.0, "c3");
    s.completed(450.0, "c3", Some("a1"))
        .completed(460.0, "c3", Some("a3"));
    // Moved by the routing to somewhere Vigie does not supervise.
    s.queued(500.0, "c4", "billing")
        .transferred(520.0, "c4", None, None);
    // Ended while on hold; completed while still talking.
    s.queued(600.0, "c5", "billing")
        .answered(605.0, "c5", "a1")
        .held(610.0, "c5");
    s.ended(620.0, "c5").completed(630.0, "c5", Some("a1"));
    s.queued(700.0, "c6", "billing").answered(701.0, "c6", "a2");
    s.held(710.0, "c6")
        .resumed(720.0, "c6")
        .held(730.0, "c6")
        .resumed(731.0, "c6");
    s.completed(750.0, "c6", Some("a2"));
    // Direct contacts: with a queue (the leg is the queue's) and without.
    s.answered_direct(800.0, "c7", "a2", Some("billing"));
    s.ended(820.0, "c7").completed(830.0, "c7", None);
    s.offered(890.0, "c8", "a2");
    s.answered_direct(900.0, "c8", "a2", None)
        .completed(950.0, "c8", None);
    // A queue the configuration does not list.
    s.queued(1000.0, "c9", "overflow-x").abandoned(1030.0, "c9");
    // A transfer by a1 to chat while a2 still completes a leg of the same contact.
    s.queued(1100.0, "c10", "billing")
        .answered(1101.0, "c10", "a2");
    s.transferred(1110.0, "c10", Some("a2"), Some("chat"))
        .answered(1115.0, "c10", "a3");
    s.transferred(1125.0, "c10", Some("a3"), Some("billing"));
    s.answered(1130.0, "c10", "a1").ended(1140.0, "c10");
    s.completed(1150.0, "c10", None);
    // A direct contact of no queue transferred to a queue: the transfer is the advisor's only.
    // (It names its channel: the docs do not say which channel a contact without one has.)
    s.answered_direct(1200.0, "c11", "a2", None);
    if let Some(EventBody::Contact(answer)) = s.events.last_mut().map(|event| &mut event.body) {
        answer.channel = Some(Channel::Voice);
    }
    s.transferred(1210.0, "c11", Some("a2"), Some("billing"));
    s.answered(1220.0, "c11", "a1")
        .completed(1230.0, "c11", Some("a2"));
    s.ended(1240.0, "c11").completed(1250.0, "c11", None);
    s.check(&lyon(), "transfers");
}

#[test]
fn queued_while_talking_ends_the_conversation_as_a_transfer() {
    let mut s = Script::new();
    s.login(-10.0, "a1", None).login(-10.0, "a3", None);
    s.queued(0.0, "c1", "chat").answered(15.0, "c1", "a3");
    // No contact.transferred: back to a queue while a3 talks ends a3's conversation as a
    // transfer.
    s.queued(60.0, "c1", "billing").answered(70.0, "c1", "a1");
    s.ended(100.0, "c1").completed(110.0, "c1", Some("a1"));
    s.completed(120.0, "c1", Some("a3"));
    s.check(&lyon(), "queued while talking");
}

#[test]
fn a_transfer_by_the_talking_advisor_leaves_other_rings_alone() {
    // A ring ends when the advisor answers or misses it, or when the contact leaves the queue:
    // here the contact waits in no queue when a2 transfers it.
    let mut s = Script::new();
    s.login(-10.0, "a1", None).login(-10.0, "a2", None);
    s.queued(1.0, "c1", "billing").answered(2.0, "c1", "a2");
    s.offered(10.0, "c1", "a1")
        .transferred(15.0, "c1", Some("a2"), Some("chat"));
    s.answered(20.0, "c1", "a1")
        .ended(30.0, "c1")
        .completed(40.0, "c1", None);
    s.check(&lyon(), "ring across a transfer");
}

#[test]
fn a_contact_queued_again_with_another_channel() {
    let mut s = Script::new();
    s.login(-10.0, "a1", None);
    s.queued(0.0, "c1", "billing");
    // The same contact queued in chat, as a chat: the offer is the event's channel.
    let mut queued = s.events[1].clone();
    queued.id = "requeued".to_owned();
    queued.time = Script::time(10.0);
    if let EventBody::Contact(contact) = &mut queued.body {
        contact.queue = Some("chat".to_owned());
        contact.channel = Some(Channel::Chat);
    }
    s.events.push(queued);
    s.answered(15.0, "c1", "a1")
        .ended(20.0, "c1")
        .completed(25.0, "c1", None);
    s.check(&lyon(), "requeued as chat");
}

#[test]
fn statuses_reasons_and_teams_changing() {
    let mut s = Script::new();
    s.login(0.0, "a1", None);
    // a9 is on no roster: the team of its login. A change of reason is a new pause, a repeat
    // of the same reason is not; a login makes the advisor available even in pause; a status
    // set while logged out applies.
    s.login(0.0, "a9", Some("team-x"))
        .pause(10.0, "a9", "lunch");
    s.pause(20.0, "a9", "break").pause(30.0, "a9", "break");
    s.available(40.0, "a9").pause(50.0, "a9", "unspecified");
    s.login(60.0, "a9", Some("team-x")).logout(70.0, "a9");
    s.pause(80.0, "a9", "admin")
        .login(90.0, "a9", Some("team-x"));
    s.available(100.0, "a9");
    // a2 goes on pause while talking: the pause counts from the status change.
    s.login(0.0, "a2", None)
        .queued(1.0, "c1", "billing")
        .answered(5.0, "c1", "a2");
    s.pause(10.0, "a2", "lunch")
        .ended(15.0, "c1")
        .completed(20.0, "c1", None);
    s.pause(25.0, "a2", "break");
    // a10 is named only by contact events.
    s.queued(29.0, "c2", "billing")
        .offered(30.0, "c2", "a10")
        .missed(35.0, "c2", "a10");
    s.answered(36.0, "c2", "a1");
    // Reasons changing during after-contact work, a logout while talking.
    s.ended(50.0, "c2")
        .pause(51.0, "a1", "lunch")
        .pause(53.0, "a1", "break");
    s.completed(55.0, "c2", Some("a1"));
    s.available(100.0, "a1")
        .queued(149.0, "c3", "billing")
        .answered(150.0, "c3", "a1");
    s.logout(160.0, "a1").held(165.0, "c3").ended(170.0, "c3");
    s.completed(180.0, "c3", None);
    s.login(300.0, "a1", None);
    s.check(&lyon(), "statuses");
}

#[test]
fn the_team_of_the_latest_login() {
    let mut s = Script::new();
    s.login(0.0, "a9", Some("team-x")).logout(5.0, "a9");
    s.login(10.0, "a9", Some("team-y")).logout(15.0, "a9");
    // The latest login names no team: the team of the latest login that names one stays, and
    // team-x, left by its only member, is no longer listed.
    s.login(20.0, "a9", None);
    s.check(&lyon(), "latest login");
}

#[test]
fn several_contacts_at_once_and_changes_in_the_same_millisecond() {
    let mut s = Script::new();
    s.login(0.0, "a3", None);
    s.queued(0.0, "c1", "chat").answered(1.0, "c1", "a3");
    // c2 rings while a3 talks with c1.
    s.queued(5.0, "c2", "chat")
        .offered(6.0, "c2", "a3")
        .answered(8.0, "c2", "a3");
    // c2 on hold while c1 talks.
    s.held(9.0, "c2").resumed(12.0, "c2");
    s.ended(25.0, "c2").completed(28.0, "c2", Some("a3"));
    // c1 ends as c3 is answered: a3 talks throughout.
    s.queued(20.0, "c3", "chat");
    s.ended(30.0, "c1").answered(30.0, "c3", "a3");
    // c3 on hold while c1 is in after-contact work.
    s.held(35.0, "c3").resumed(38.0, "c3");
    s.completed(40.0, "c1", Some("a3"));
    // c3 ends and a3 goes on pause in the same millisecond.
    s.ended(50.0, "c3")
        .pause(50.0, "a3", "break")
        .completed(50.0, "c3", None);
    s.available(60.0, "a3");
    s.check(&lyon(), "same millisecond");
}

#[test]
fn events_of_the_same_step_and_millisecond_apply_in_hash_order() {
    // docs/events.md: events of the same step and millisecond are ordered by the XXH3 hash of
    // their id, whatever order they arrive in.
    let mut s = Script::new();
    s.login(-10.0, "a1", None).login(-10.0, "a2", None);
    for (index, contact) in ["c1", "c2", "c3", "c4", "c5", "c6"].into_iter().enumerate() {
        let t = index as f64 * 10.0;
        // Two queues at once: the contact ends up waiting in the one whose event sorts last.
        s.queued(t, contact, "billing").queued(t, contact, "chat");
        let n = s.events.len();
        s.events[n - 2].id = format!("{contact}-a");
        s.events[n - 1].id = format!("{contact}-b");
        if index % 2 == 1 {
            s.events[n - 2].id = format!("{contact}-b");
            s.events[n - 1].id = format!("{contact}-a");
        }
    }
    // Two pauses of one advisor at once: the reason of the event that sorts last stays.
    for (index, advisor) in ["a1", "a2"].into_iter().enumerate() {
        s.pause(100.0, advisor, "lunch")
            .pause(100.0, advisor, "break");
        let n = s.events.len();
        let (first, second) = if index == 0 { ("x", "y") } else { ("y", "x") };
        s.events[n - 2].id = format!("{advisor}-{first}");
        s.events[n - 1].id = format!("{advisor}-{second}");
    }
    s.check(&lyon(), "same step, same millisecond");
}

#[test]
fn contacts_without_an_event_for_twelve_hours_are_given_up() {
    let twelve_hours = 12.0 * 3600.0;
    let mut s = Script::new();
    s.login(-10.0, "a1", None).login(-10.0, "a2", None);
    s.queued(0.0, "c1", "billing").answered(10.0, "c1", "a1");
    s.queued(5.0, "c2", "billing");
    s.queued(7.0, "c3", "chat")
        .answered(8.0, "c3", "a2")
        .ended(9.0, "c3");
    // Site events move the site's time past each contact's last event + 12 h.
    for offset in [-1.0, -0.001, 5.0, 9.0, 10.0, 10.001, 60.0] {
        s.pause(twelve_hours + offset, "a2", &format!("p{offset}"));
    }
    s.logout(twelve_hours + 100.0, "a2");
    s.check(&lyon(), "expiry");
}

#[test]
fn an_empty_site_lists_its_roster() {
    let site = lyon();
    let processor = {
        let mut processor = SiteProcessor::new(site.clone(), &ProcessingConfig::default());
        processor.advance_to(Script::time(0.0));
        processor
    };
    assert_none(compare_with_oracle(&processor, &[], &site, "empty"));
}

#[test]
fn the_day_starts_when_the_spring_gap_ends() {
    // 2026-03-29 in Paris: 02:00-03:00 does not exist; a day starting at 02:30 starts at
    // 03:00+02:00 (01:00Z).
    let mut site = lyon();
    site.day_start = "02:30".to_owned();
    let t = |text: &str| Timestamp::parse_rfc3339(text).expect("a time");
    let mut s = Script::new();
    s.login(0.0, "a1", None);
    let start = t("2026-03-29T01:00:00Z");
    let events = [
        ("2026-03-28T23:00:00Z", "login"),
        ("2026-03-29T00:59:59.999Z", "queued c1"),
        ("2026-03-29T01:00:00Z", "answered c1"),
        ("2026-03-29T01:00:00Z", "queued c2"),
        ("2026-03-29T01:00:03Z", "abandoned c2"),
        ("2026-03-29T01:10:00Z", "completed c1"),
        ("2026-03-29T02:00:00Z", "logout"),
        ("2026-03-29T02:30:00Z", "login"),
    ];
    s.events.clear();
    for (time, what) in events {
        let secs = (t(time) - Script::time(0.0)).0 as f64 / 1000.0;
        match what {
            "login" => s.login(secs, "a1", None),
            "logout" => s.logout(secs, "a1"),
            "queued c1" => s.queued(secs, "c1", "billing"),
            "answered c1" => s.answered(secs, "c1", "a1"),
            "queued c2" => s.queued(secs, "c2", "billing"),
            "abandoned c2" => s.abandoned(secs, "c2"),
            "completed c1" => s.completed(secs, "c1", None),
            _ => unreachable!(),
        };
    }
    s.check(&site, "spring gap");
    let mut events = s.events.clone();
    events.sort_by_key(|event| event.time);
    check_day(
        &site,
        &events,
        &[start - Millis(1), start, start + Millis(1)],
        "spring gap, day start",
    );
}
