//! Simulated days checked event by event against the contract's grammar, and for realism.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::NaiveTime;
use vigie_core::time::{Millis, Timestamp};
use vigie_core::{
    AdvisorEventKind, AdvisorStatus, Channel, ContactEventKind, DEFAULT_MAX_EVENT_BYTES,
    DequeueReason, Event, EventBody, SiteConfig, decode_json,
};
use vigie_sim::{Disorder, SimConfig, Simulation};

/// Where a contact is, as the events tell it.
#[derive(Debug)]
enum Phase {
    Waiting {
        queue: String,
        offered_to: Option<String>,
    },
    Talking {
        advisor: String,
        queue: String,
        held: bool,
    },
    Closed,
}

#[derive(Debug)]
struct ContactTrack {
    channel: Channel,
    phase: Phase,
    /// Advisors whose leg ended or was transferred and awaits `contact.completed`, with the
    /// queue of that leg.
    wrapping: Vec<(String, String)>,
    answered_at: i64,
    hold_started: i64,
    held_for: i64,
}

#[derive(Debug, Default)]
struct AdvisorTrack {
    logged_in: bool,
    paused: bool,
    /// Answered and not yet completed.
    legs: usize,
    ringing: bool,
    chat_legs: usize,
    pause_reasons: Vec<String>,
}

/// What a day looked like, for the realism checks.
#[derive(Debug, Default)]
struct Summary {
    events: usize,
    by_type: BTreeMap<String, usize>,
    dequeue_reasons: BTreeMap<&'static str, usize>,
    queue_transfers: usize,
    advisor_transfers: usize,
    /// Talk time (answer to end, holds excluded) of voice legs, in ms.
    voice_talk: Vec<i64>,
    answered_by_channel: HashMap<Channel, usize>,
    abandoned_by_channel: HashMap<Channel, usize>,
    max_chats_at_once: usize,
    advisors_logged_in: usize,
    advisors_with_lunch: usize,
}

impl Summary {
    fn abandon_share(&self, channel: Channel) -> f64 {
        let abandoned = self
            .abandoned_by_channel
            .get(&channel)
            .copied()
            .unwrap_or(0);
        let answered = self.answered_by_channel.get(&channel).copied().unwrap_or(0);
        abandoned as f64 / (abandoned + answered).max(1) as f64
    }
}

/// Checks every rule of the event grammar the processor relies on, event by event.
struct Checker {
    site: String,
    queues: HashSet<String>,
    roster: HashMap<String, String>,
    ids: HashSet<String>,
    last_time: i64,
    contacts: HashMap<String, ContactTrack>,
    advisors: HashMap<String, AdvisorTrack>,
    summary: Summary,
    /// Check that each event survives `to_json` and `decode_json` (slower).
    round_trip: bool,
}

impl Checker {
    fn new(site: &SiteConfig) -> Checker {
        let mut roster = HashMap::new();
        for team in &site.teams {
            for advisor in &team.advisors {
                roster.insert(advisor.clone(), team.id.clone());
            }
        }
        Checker {
            site: site.id.clone(),
            queues: site.queues.iter().map(|q| q.id.clone()).collect(),
            roster,
            ids: HashSet::new(),
            last_time: i64::MIN,
            contacts: HashMap::new(),
            advisors: HashMap::new(),
            summary: Summary::default(),
            round_trip: true,
        }
    }

    fn check(&mut self, event: &Event) {
        let at = format!("{} ({} at {})", event.id, event.type_name(), event.time);
        assert_eq!(event.site, self.site, "{at}");
        assert!(event.time.0 >= self.last_time, "{at}: goes back in time");
        self.last_time = event.time.0;
        assert!(self.ids.insert(event.id.clone()), "{at}: duplicate id");
        if self.round_trip {
            let decoded = decode_json(event.to_json().as_bytes(), DEFAULT_MAX_EVENT_BYTES)
                .unwrap_or_else(|rejection| panic!("{at}: {rejection:?}"));
            assert_eq!(&decoded, event, "{at}: changed by a JSON round trip");
        }
        self.summary.events += 1;
        *self
            .summary
            .by_type
            .entry(event.type_name().to_owned())
            .or_default() += 1;
        let now = event.time.0;
        match &event.body {
            EventBody::Contact(contact) => self.contact(now, &at, contact),
            EventBody::Advisor(change) => self.advisor(&at, change),
        }
    }

    fn contact(&mut self, now: i64, at: &str, event: &vigie_core::ContactEvent) {
        let queue = event
            .queue
            .clone()
            .unwrap_or_else(|| panic!("{at}: no queue"));
        assert!(self.queues.contains(&queue), "{at}: unknown queue {queue}");
        let channel = event.channel.unwrap_or_else(|| panic!("{at}: no channel"));
        let leg_event = !matches!(
            event.kind,
            ContactEventKind::Queued
                | ContactEventKind::Abandoned
                | ContactEventKind::Dequeued { .. }
        ) && !matches!(event.kind, ContactEventKind::Transferred { .. } if event.advisor.is_none());
        if leg_event {
            assert!(event.advisor.is_some(), "{at}: no advisor on a leg event");
        }
        if let ContactEventKind::Queued = event.kind {
            assert!(
                !self.contacts.contains_key(&event.contact),
                "{at}: queued twice"
            );
            assert!(event.advisor.is_none(), "{at}");
            self.contacts.insert(
                event.contact.clone(),
                ContactTrack {
                    channel,
                    phase: Phase::Waiting {
                        queue,
                        offered_to: None,
                    },
                    wrapping: Vec::new(),
                    answered_at: 0,
                    hold_started: 0,
                    held_for: 0,
                },
            );
            return;
        }
        let track = self
            .contacts
            .get_mut(&event.contact)
            .unwrap_or_else(|| panic!("{at}: contact not queued first"));
        assert_eq!(track.channel, channel, "{at}: channel changed");
        let advisor = event.advisor.clone();
        match (&event.kind, &mut track.phase) {
            (
                ContactEventKind::Offered,
                Phase::Waiting {
                    queue: waiting,
                    offered_to,
                },
            ) => {
                assert_eq!(&queue, waiting, "{at}");
                assert!(offered_to.is_none(), "{at}: offered while ringing");
                let name = advisor.clone().expect("checked above");
                let state = self.advisors.entry(name.clone()).or_default();
                assert!(
                    state.logged_in && !state.paused,
                    "{at}: offered to {name} unavailable"
                );
                assert!(!state.ringing, "{at}: two offers at once");
                state.ringing = true;
                *offered_to = Some(name);
            }
            (ContactEventKind::Missed, Phase::Waiting { offered_to, .. }) => {
                assert_eq!(
                    offered_to.as_ref(),
                    advisor.as_ref(),
                    "{at}: missed by another"
                );
                *offered_to = None;
                self.advisor_state(at, &advisor).ringing = false;
            }
            (
                ContactEventKind::Answered,
                Phase::Waiting {
                    queue: waiting,
                    offered_to,
                },
            ) => {
                assert_eq!(&queue, waiting, "{at}");
                assert_eq!(
                    offered_to.as_ref(),
                    advisor.as_ref(),
                    "{at}: answered without offer"
                );
                let name = advisor.clone().expect("checked above");
                track.phase = Phase::Talking {
                    advisor: name,
                    queue,
                    held: false,
                };
                track.answered_at = now;
                track.held_for = 0;
                *self.summary.answered_by_channel.entry(channel).or_default() += 1;
                let state = self.advisor_state(at, &advisor);
                state.ringing = false;
                state.legs += 1;
                if channel == Channel::Chat {
                    state.chat_legs += 1;
                    let chats = state.chat_legs;
                    self.summary.max_chats_at_once = self.summary.max_chats_at_once.max(chats);
                }
            }
            (
                ContactEventKind::Abandoned | ContactEventKind::Dequeued { .. },
                Phase::Waiting {
                    queue: waiting,
                    offered_to,
                },
            ) => {
                assert_eq!(&queue, waiting, "{at}");
                assert!(offered_to.is_none(), "{at}: left the queue while ringing");
                assert!(advisor.is_none(), "{at}");
                if let ContactEventKind::Dequeued { reason } = &event.kind {
                    *self
                        .summary
                        .dequeue_reasons
                        .entry(reason.as_str())
                        .or_default() += 1;
                } else {
                    *self
                        .summary
                        .abandoned_by_channel
                        .entry(channel)
                        .or_default() += 1;
                }
                track.phase = Phase::Closed;
            }
            (
                ContactEventKind::Transferred { to_queue },
                Phase::Waiting {
                    queue: waiting,
                    offered_to,
                },
            ) if advisor.is_none() => {
                assert_eq!(&queue, waiting, "{at}");
                assert!(offered_to.is_none(), "{at}: moved while ringing");
                let to = to_queue
                    .clone()
                    .unwrap_or_else(|| panic!("{at}: no to_queue"));
                assert!(
                    self.queues.contains(&to) && to != queue,
                    "{at}: bad to_queue {to}"
                );
                self.summary.queue_transfers += 1;
                track.phase = Phase::Waiting {
                    queue: to,
                    offered_to: None,
                };
            }
            (
                ContactEventKind::Held,
                Phase::Talking {
                    advisor: talking,
                    queue: leg_queue,
                    held,
                },
            ) => {
                assert_eq!(Some(&*talking), advisor.as_ref(), "{at}");
                assert_eq!(&queue, leg_queue, "{at}");
                assert!(!*held, "{at}: held twice");
                *held = true;
                track.hold_started = now;
            }
            (
                ContactEventKind::Resumed,
                Phase::Talking {
                    advisor: talking,
                    queue: leg_queue,
                    held,
                },
            ) => {
                assert_eq!(Some(&*talking), advisor.as_ref(), "{at}");
                assert_eq!(&queue, leg_queue, "{at}");
                assert!(*held, "{at}: resumed without hold");
                *held = false;
                track.held_for += now - track.hold_started;
            }
            (
                ContactEventKind::Ended | ContactEventKind::Transferred { .. },
                Phase::Talking {
                    advisor: talking,
                    queue: leg_queue,
                    held,
                },
            ) => {
                assert_eq!(Some(&*talking), advisor.as_ref(), "{at}");
                assert_eq!(&queue, leg_queue, "{at}");
                assert!(!*held, "{at}: ended on hold");
                if channel == Channel::Voice {
                    self.summary
                        .voice_talk
                        .push(now - track.answered_at - track.held_for);
                }
                track.wrapping.push((talking.clone(), queue.clone()));
                if let ContactEventKind::Transferred { to_queue } = &event.kind {
                    let to = to_queue
                        .clone()
                        .unwrap_or_else(|| panic!("{at}: no to_queue"));
                    assert!(
                        self.queues.contains(&to) && to != queue,
                        "{at}: bad to_queue"
                    );
                    self.summary.advisor_transfers += 1;
                    track.phase = Phase::Waiting {
                        queue: to,
                        offered_to: None,
                    };
                } else {
                    track.phase = Phase::Closed;
                }
            }
            (ContactEventKind::Completed { .. }, _) => {
                let name = advisor.clone().expect("checked above");
                let position = track
                    .wrapping
                    .iter()
                    .position(|(wrapping, _)| *wrapping == name)
                    .unwrap_or_else(|| panic!("{at}: completed by {name} without an ended leg"));
                let (_, leg_queue) = track.wrapping.remove(position);
                assert_eq!(queue, leg_queue, "{at}: completed in another queue");
                let state = self.advisor_state(at, &advisor);
                state.legs -= 1;
                if channel == Channel::Chat {
                    state.chat_legs -= 1;
                }
            }
            (kind, phase) => panic!("{at}: {} not allowed in {phase:?}", kind.type_name()),
        }
    }

    fn advisor_state(&mut self, at: &str, advisor: &Option<String>) -> &mut AdvisorTrack {
        let name = advisor
            .as_ref()
            .unwrap_or_else(|| panic!("{at}: no advisor"));
        self.advisors
            .get_mut(name)
            .unwrap_or_else(|| panic!("{at}: {name} never logged in"))
    }

    fn advisor(&mut self, at: &str, event: &vigie_core::AdvisorEvent) {
        let state = self.advisors.entry(event.advisor.clone()).or_default();
        match &event.kind {
            AdvisorEventKind::Login { team, name } => {
                assert!(!state.logged_in, "{at}: logged in twice");
                assert_eq!(team.as_ref(), self.roster.get(&event.advisor), "{at}: team");
                assert!(
                    name.as_ref().is_some_and(|n| !n.is_empty()),
                    "{at}: no name"
                );
                state.logged_in = true;
                state.paused = false;
                self.summary.advisors_logged_in += 1;
            }
            AdvisorEventKind::Logout => {
                assert!(state.logged_in, "{at}: logout without login");
                assert!(
                    state.legs == 0 && !state.ringing,
                    "{at}: logout with a contact"
                );
                state.logged_in = false;
            }
            AdvisorEventKind::State(status) => {
                assert!(state.logged_in, "{at}: state while logged out");
                match status {
                    AdvisorStatus::Available => state.paused = false,
                    AdvisorStatus::Pause { reason } => {
                        // A pause starts once the advisor is free of contacts.
                        assert!(state.legs == 0 && !state.ringing, "{at}: pause while busy");
                        state.paused = true;
                        state.pause_reasons.push(reason.clone());
                    }
                }
            }
        }
    }

    /// Checks that everything ended cleanly and returns the summary.
    fn finish(mut self) -> Summary {
        for (contact, track) in &self.contacts {
            assert!(
                matches!(track.phase, Phase::Closed),
                "{contact} still open: {track:?}"
            );
            assert!(
                track.wrapping.is_empty(),
                "{contact} not completed: {track:?}"
            );
        }
        for (advisor, state) in &self.advisors {
            assert!(!state.logged_in, "{advisor} still logged in");
            if state.pause_reasons.iter().any(|r| r == "lunch") {
                self.summary.advisors_with_lunch += 1;
            }
        }
        self.summary
    }
}

fn check_day(config: &SimConfig) -> Summary {
    let simulation = Simulation::new(config).expect("valid configuration");
    let site = simulation.site_config();
    site.validate("site")
        .expect("the site configuration is valid");
    let mut checker = Checker::new(&site);
    for event in simulation {
        checker.check(&event);
    }
    checker.finish()
}

fn json_lines(config: &SimConfig) -> Vec<String> {
    Simulation::new(config)
        .expect("valid configuration")
        .map(|event| event.to_json())
        .collect()
}

#[test]
fn the_same_seed_gives_the_same_day_and_another_seed_another() {
    let config = SimConfig::default();
    let first = json_lines(&config);
    assert_eq!(first, json_lines(&config));
    let other = SimConfig {
        seed: 2,
        ..SimConfig::default()
    };
    assert_ne!(first, json_lines(&other));
    assert_eq!(
        Simulation::new(&config).unwrap().site_config(),
        Simulation::new(&config).unwrap().site_config()
    );
}

#[test]
fn a_default_day_respects_the_grammar_and_ends_cleanly() {
    let summary = check_day(&SimConfig::default());
    assert!(summary.events > 10_000, "{summary:?}");
    for kind in [
        "contact.queued",
        "contact.offered",
        "contact.missed",
        "contact.answered",
        "contact.held",
        "contact.resumed",
        "contact.transferred",
        "contact.abandoned",
        "contact.ended",
        "contact.completed",
        "advisor.login",
        "advisor.logout",
        "advisor.state",
    ] {
        assert!(summary.by_type.contains_key(kind), "no {kind}: {summary:?}");
    }
    assert!(summary.advisor_transfers > 0);
    assert_eq!(summary.advisors_logged_in, 60);
}

#[test]
fn the_grammar_holds_under_overload_other_seeds_and_second_resolution() {
    // A third of the staff absent: long waits exercise every way out of a queue.
    let overloaded = check_day(&SimConfig {
        absent_share: 1.0 / 3.0,
        seed: 5,
        ..SimConfig::default()
    });
    for reason in [
        DequeueReason::Voicemail,
        DequeueReason::Callback,
        DequeueReason::Timeout,
    ] {
        assert!(
            overloaded.dequeue_reasons.contains_key(reason.as_str()),
            "no {reason} in {:?}",
            overloaded.dequeue_reasons
        );
    }
    assert!(overloaded.queue_transfers > 0, "no queue overflow transfer");
    check_day(&SimConfig {
        seed: 3,
        whole_seconds: true,
        ..SimConfig::default()
    });
    // A short day (shifts cover it whole) in another zone, on a daylight-saving change.
    check_day(&SimConfig {
        seed: 4,
        time_zone: "America/New_York".to_owned(),
        date: chrono::NaiveDate::from_ymd_opt(2026, 3, 8).unwrap(),
        open: NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
        close: NaiveTime::from_hms_opt(13, 0, 0).unwrap(),
        advisors: 25,
        queues: 4,
        closing_grace: Millis::ZERO,
        ..SimConfig::default()
    });
}

#[test]
fn whole_seconds_truncates_every_time() {
    let config = SimConfig {
        whole_seconds: true,
        advisors: 12,
        queues: 2,
        ..SimConfig::default()
    };
    let simulation = Simulation::new(&config).unwrap();
    let mut count = 0;
    for event in simulation {
        assert_eq!(event.time.0 % 1000, 0, "{event:?}");
        count += 1;
    }
    assert!(count > 1000);
}

#[test]
fn a_larger_site_streams_a_valid_day() {
    // Kept small enough for debug builds; the full-scale run is `full_scale_day` below.
    let config = SimConfig {
        advisors: 400,
        queues: 40,
        open: NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
        close: NaiveTime::from_hms_opt(12, 0, 0).unwrap(),
        ..SimConfig::default()
    };
    let simulation = Simulation::new(&config).unwrap();
    let site = simulation.site_config();
    assert_eq!(site.queues.len(), 40);
    assert!(
        site.teams
            .iter()
            .all(|t| (10..=12).contains(&t.advisors.len()))
    );
    let mut checker = Checker::new(&site);
    checker.round_trip = false;
    for event in simulation {
        checker.check(&event);
    }
    let summary = checker.finish();
    assert!(summary.events > 50_000, "{}", summary.events);
}

#[test]
#[ignore = "full scale: run with --release -- --ignored"]
fn full_scale_day() {
    let config = SimConfig {
        advisors: 10_000,
        queues: 500,
        ..SimConfig::default()
    };
    let simulation = Simulation::new(&config).unwrap();
    let mut checker = Checker::new(&simulation.site_config());
    checker.round_trip = false;
    for event in simulation {
        checker.check(&event);
    }
    let summary = checker.finish();
    assert!(summary.events > 2_000_000, "{}", summary.events);
    assert_eq!(summary.advisors_logged_in, 10_000);
}

#[test]
fn cutting_a_third_of_the_staff_at_equal_volume_raises_abandons() {
    let base = check_day(&SimConfig::default());
    let cut = check_day(&SimConfig {
        absent_share: 1.0 / 3.0,
        ..SimConfig::default()
    });
    let (before, after) = (
        base.abandon_share(Channel::Voice),
        cut.abandon_share(Channel::Voice),
    );
    // Observed: about 9% before, above 30% after; the bound leaves room for other seeds.
    assert!((0.01..0.2).contains(&before), "base abandon share {before}");
    assert!(after > before + 0.1, "abandon share {before} -> {after}");
    assert!(cut.advisors_logged_in == 40);
}

#[test]
fn talk_times_match_the_configured_mean() {
    let config = SimConfig::default();
    let summary = check_day(&config);
    let talks = &summary.voice_talk;
    assert!(talks.len() > 1000, "{}", talks.len());
    let mean = talks.iter().sum::<i64>() as f64 / talks.len() as f64;
    let expected = config.channels.voice.talk_mean.0 as f64;
    // Standard error with cv 0.9 and ~1,300 calls is 2.5%: 8% is over 3 standard errors.
    assert!(
        (mean / expected - 1.0).abs() < 0.08,
        "mean talk {mean} ms vs {expected}"
    );
}

#[test]
fn chat_advisors_handle_several_chats_and_everyone_has_lunch() {
    let summary = check_day(&SimConfig::default());
    assert!(summary.max_chats_at_once >= 2, "{summary:?}");
    assert!(summary.max_chats_at_once <= 3);
    assert_eq!(summary.advisors_with_lunch, summary.advisors_logged_in);
}

#[test]
fn the_feed_duplicates_and_delays_within_bounds() {
    let config = SimConfig {
        duplicate_share: 0.05,
        max_delay: Millis::from_secs(10),
        ..SimConfig::default()
    };
    let originals: Vec<Event> = Simulation::new(&config).unwrap().collect();
    let delivered: Vec<Event> = Simulation::new(&config).unwrap().into_feed().collect();
    let mut by_id: HashMap<&str, Vec<&Event>> = HashMap::new();
    for event in &delivered {
        by_id.entry(event.id.as_str()).or_default().push(event);
    }
    assert_eq!(by_id.len(), originals.len(), "every event is delivered");
    for original in &originals {
        let copies = &by_id[original.id.as_str()];
        assert!(copies.len() <= 2);
        assert!(
            copies.iter().all(|copy| *copy == original),
            "copies are identical"
        );
    }
    let share = (delivered.len() - originals.len()) as f64 / originals.len() as f64;
    assert!((0.04..=0.06).contains(&share), "duplicate share {share}");
    let mut newest = i64::MIN;
    let mut late = 0;
    for event in &delivered {
        if event.time.0 < newest {
            late += 1;
        }
        newest = newest.max(event.time.0);
        assert!(newest - event.time.0 <= config.max_delay.0, "{event:?}");
    }
    assert!(late > originals.len() / 10, "the feed is out of order");
    // Same seed, same feed.
    let again: Vec<Event> = Disorder::new(
        Simulation::new(&config).unwrap(),
        config.seed,
        config.duplicate_share,
        config.max_delay,
    )
    .collect();
    assert_eq!(again, delivered);
}

#[test]
fn next_until_releases_the_day_as_the_clock_advances() {
    let config = SimConfig {
        advisors: 12,
        queues: 2,
        ..SimConfig::default()
    };
    let all: Vec<Event> = Simulation::new(&config).unwrap().collect();
    let mut live = Simulation::new(&config).unwrap();
    let mut released = Vec::new();
    let mut now = live.open_time() - Millis::from_mins(10);
    while released.len() < all.len() {
        while let Some(event) = live.next_until(now) {
            assert!(event.time <= now);
            released.push(event);
        }
        now = now + Millis::from_secs(7);
        assert!(
            now < live.close_time() + Millis::from_mins(24 * 60),
            "stalled"
        );
    }
    assert_eq!(released, all);
    assert!(live.next_until(Timestamp(i64::MAX)).is_none());
}

#[test]
fn an_invalid_configuration_is_refused_with_every_problem() {
    let errors = Simulation::new(&SimConfig {
        advisors: 0,
        time_zone: "Mars/Olympus".to_owned(),
        ..SimConfig::default()
    })
    .unwrap_err();
    assert_eq!(errors.0.len(), 2, "{errors}");
}

#[test]
fn a_small_day_has_a_fixed_fingerprint() {
    // Pins the output of one configuration so that a change of platform, toolchain or
    // dependency that alters the day is caught. Changed the model on purpose? Update the
    // constant (and say so in the commit: recorded days and benchmarks shift with it).
    let config = SimConfig {
        advisors: 12,
        queues: 2,
        ..SimConfig::default()
    };
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325; // FNV-1a
    for line in json_lines(&config) {
        for byte in line.bytes().chain(std::iter::once(b'\n')) {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    assert_eq!(
        hash, 0xd737_dcec_796c_05de,
        "fingerprint of the day: {hash:#018x}"
    );
}

#[test]
fn odd_sites_still_give_valid_days() {
    for (advisors, queues, chat_share, email_share) in [
        (1, 1, 0.0, 0.0),
        (5, 50, 0.15, 0.1),
        (3, 3, 0.34, 0.33),
        (30, 2, 1.0, 0.0),
    ] {
        let summary = check_day(&SimConfig {
            advisors,
            queues,
            chat_share,
            email_share,
            callback_share: 0.0,
            social_share: 0.0,
            task_share: 0.0,
            ..SimConfig::default()
        });
        assert_eq!(summary.advisors_logged_in, advisors);
        assert!(
            summary.by_type.contains_key("contact.completed"),
            "{summary:?}"
        );
    }
}
