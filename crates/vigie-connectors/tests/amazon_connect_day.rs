//! A small Amazon Connect day: agent event stream records and contact records translated and
//! replayed give the figures computed directly from what was generated.
//!
//! The day is generated here, seeded: two queues, four agents, a few dozen voice and chat
//! contacts with missed offers, holds, after-contact work (or none), abandons, lunch pauses,
//! heartbeats. The agent records follow the "Agent event streams data model"
//! (<https://docs.aws.amazon.com/connect/latest/adminguide/agent-event-stream-model.html>):
//! each `STATE_CHANGE` carries the previous and the current snapshot, a `HEART_BEAT` comes
//! after 120 s without another record. The contact records follow the "Contact records data
//! model" (<https://docs.aws.amazon.com/connect/latest/adminguide/ctr-data-model.html>) and
//! are published when the contact is over.
//!
//! A contact record comes after its contact ended, far behind the allowed lateness of live
//! processing, so the day is replayed as a recording is: the translated events sorted by
//! time (stably) before they are applied.

mod common;

use std::collections::BTreeMap;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
use vigie_connectors::AmazonConnectConfig;
use vigie_core::{Event, ProcessingConfig, SiteConfig, SiteProcessor, Timestamp, Window};

/// 2026-03-02T08:00:00Z.
const OPEN: i64 = 1_772_438_400;
const INSTANCE: &str = "arn:aws:connect:eu-west-1:123456789012:instance/aaaa-bbbb";
const QUEUES: [&str; 2] = ["billing", "support"];
const AGENTS: [&str; 4] = ["a-1", "a-2", "a-3", "a-4"];
const CONTACTS: i64 = 48;

fn ts(secs: i64) -> String {
    Timestamp(secs * 1000)
        .to_utc()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

fn agent_arn(agent: usize) -> String {
    format!("{INSTANCE}/agent/{}", AGENTS[agent])
}

fn queue_ref(queue: &str) -> Value {
    json!({"ARN": format!("{INSTANCE}/queue/{queue}"), "Name": queue})
}

fn status(name: &str, kind: &str, since: i64) -> Value {
    json!({"ARN": format!("{INSTANCE}/agent-state/{name}"), "Name": name, "StartTimestamp": ts(since), "Type": kind})
}

/// One contact as a snapshot shows it.
#[derive(Clone)]
struct SnapContact {
    id: String,
    channel: &'static str,
    queue: &'static str,
    enqueued: i64,
    state: &'static str,
    start: i64,
    connected: Option<i64>,
}

impl SnapContact {
    fn json(&self) -> Value {
        json!({
            "ContactId": self.id,
            "InitialContactId": null,
            "Channel": self.channel,
            "InitiationMethod": "INBOUND",
            "State": self.state,
            "StateStartTimestamp": ts(self.start),
            "ConnectedToAgentTimestamp": self.connected.map(ts),
            "QueueTimestamp": ts(self.enqueued),
            "Queue": queue_ref(self.queue),
        })
    }

    fn with(&self, state: &'static str, start: i64) -> SnapContact {
        SnapContact {
            state,
            start,
            ..self.clone()
        }
    }
}

#[derive(Clone)]
struct AgentState {
    status: Value,
    contacts: Vec<SnapContact>,
}

fn snapshot(agent: usize, state: &AgentState) -> Value {
    json!({
        "AgentStatus": state.status,
        "Configuration": {
            "AgentHierarchyGroups": null,
            "FirstName": "Agent",
            "LastName": AGENTS[agent],
            "RoutingProfile": {
                "ARN": format!("{INSTANCE}/routing-profile/all"),
                "InboundQueues": QUEUES.iter().map(|q| queue_ref(q)).collect::<Vec<_>>(),
                "Name": "All queues",
            },
            "Username": AGENTS[agent],
        },
        "Contacts": state.contacts.iter().map(SnapContact::json).collect::<Vec<_>>(),
    })
}

/// A change of an agent's snapshot at a time: a new status, new contacts, or both.
struct Change {
    time: i64,
    event_type: &'static str,
    status: Option<Value>,
    contacts: Option<Vec<SnapContact>>,
}

/// What the test knows of each contact, to compute the expected figures.
#[derive(Default, Clone, Debug, PartialEq)]
struct QueueFigures {
    offered: u64,
    answered: u64,
    abandoned: u64,
    handled: u64,
    wait: f64,
    talk: f64,
    hold: f64,
    acw: f64,
}

#[derive(Default, Clone, Debug, PartialEq)]
struct AdvisorFigures {
    missed: u64,
    handled: u64,
    lunch: f64,
}

struct Day {
    /// (publication time, order, record)
    records: Vec<(i64, usize, String)>,
    queues: BTreeMap<&'static str, QueueFigures>,
    advisors: BTreeMap<&'static str, AdvisorFigures>,
}

fn free(busy: &[(i64, i64)], start: i64, end: i64) -> bool {
    busy.iter()
        .all(|&(from, to)| end + 2 < from || to + 2 < start)
}

fn generate(seed: u64) -> Day {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut changes: Vec<Vec<Change>> = (0..AGENTS.len()).map(|_| Vec::new()).collect();
    let mut busy: Vec<Vec<(i64, i64)>> = vec![Vec::new(); AGENTS.len()];
    let mut records = Vec::new();
    let mut queues: BTreeMap<&'static str, QueueFigures> = BTreeMap::new();
    let mut advisors: BTreeMap<&'static str, AdvisorFigures> = BTreeMap::new();
    for (agent, name) in AGENTS.iter().enumerate() {
        let login = OPEN - 300 + agent as i64 * 7;
        changes[agent].push(Change {
            time: login,
            event_type: "LOGIN",
            status: Some(status("Available", "ROUTABLE", login)),
            contacts: Some(Vec::new()),
        });
        // Lunch: 30 to 45 minutes from 11:00 + 40 min per agent.
        let lunch = OPEN + 3 * 3600 + agent as i64 * 2400;
        let back = lunch + rng.random_range(1800..=2700);
        busy[agent].push((lunch, back));
        changes[agent].push(Change {
            time: lunch,
            event_type: "STATE_CHANGE",
            status: Some(status("Lunch", "CUSTOM", lunch)),
            contacts: None,
        });
        changes[agent].push(Change {
            time: back,
            event_type: "STATE_CHANGE",
            status: Some(status("Available", "ROUTABLE", back)),
            contacts: None,
        });
        advisors.entry(name).or_default().lunch += (back - lunch) as f64;
        let offline = OPEN + 10 * 3600 + agent as i64 * 11;
        busy[agent].push((offline, offline + 3600));
        changes[agent].push(Change {
            time: offline,
            event_type: "STATE_CHANGE",
            status: Some(status("Offline", "OFFLINE", offline)),
            contacts: None,
        });
        changes[agent].push(Change {
            time: offline + 5,
            event_type: "LOGOUT",
            status: None,
            contacts: None,
        });
    }

    for index in 0..CONTACTS {
        let id = format!("ct-{seed}-{index:03}");
        let queue = QUEUES[rng.random_range(0..QUEUES.len())];
        let channel = if rng.random_bool(0.8) {
            "VOICE"
        } else {
            "CHAT"
        };
        let enqueued = OPEN + 60 + index * 700 + rng.random_range(0..300);
        let figures = queues.entry(queue).or_default();
        figures.offered += 1;
        let base = SnapContact {
            id: id.clone(),
            channel,
            queue,
            enqueued,
            state: "CONNECTING",
            start: 0,
            connected: None,
        };
        let mut ctr = json!({
            "AWSAccountId": "123456789012",
            "AWSContactTraceRecordFormatVersion": "2017-03-10",
            "Agent": null,
            "Attributes": {},
            "Channel": channel,
            "ContactId": id,
            "InitiationMethod": "INBOUND",
            "InitiationTimestamp": ts(enqueued - 8),
            "InstanceARN": INSTANCE,
            "Queue": {"ARN": format!("{INSTANCE}/queue/{queue}"), "Name": queue, "EnqueueTimestamp": ts(enqueued)},
        });

        // A first offer that the agent lets ring out, sometimes.
        let mut ring = enqueued + rng.random_range(3..40);
        let mut missed_at = None;
        if rng.random_bool(0.2) {
            let candidates: Vec<usize> = (0..AGENTS.len())
                .filter(|&a| free(&busy[a], ring, ring + 14))
                .collect();
            if !candidates.is_empty() {
                let agent = candidates[rng.random_range(0..candidates.len())];
                busy[agent].push((ring, ring + 14));
                let offered = base.with("CONNECTING", ring);
                changes[agent].push(Change {
                    time: ring,
                    event_type: "STATE_CHANGE",
                    status: None,
                    contacts: Some(vec![offered.clone()]),
                });
                changes[agent].push(Change {
                    time: ring + 12,
                    event_type: "STATE_CHANGE",
                    status: None,
                    contacts: Some(vec![offered.with("MISSED", ring + 12)]),
                });
                changes[agent].push(Change {
                    time: ring + 14,
                    event_type: "STATE_CHANGE",
                    status: None,
                    contacts: Some(Vec::new()),
                });
                advisors.entry(AGENTS[agent]).or_default().missed += 1;
                missed_at = Some(ring + 12);
                ring += 15;
            }
        }

        let answer_after = rng.random_range(2..=8);
        let holds = rng.random_range(0..=2);
        let hold_lengths: Vec<i64> = (0..holds).map(|_| rng.random_range(10..=60)).collect();
        let talk_parts: Vec<i64> = (0..=holds).map(|_| rng.random_range(20..=200)).collect();
        let acw = if rng.random_bool(0.2) {
            0
        } else {
            rng.random_range(5..=90)
        };
        let connected = ring + answer_after;
        let ended = connected + talk_parts.iter().sum::<i64>() + hold_lengths.iter().sum::<i64>();
        let gone = ended + acw;
        let candidates: Vec<usize> = (0..AGENTS.len())
            .filter(|&a| free(&busy[a], ring, gone))
            .collect();
        let abandon = rng.random_bool(0.15) || candidates.is_empty();
        if abandon {
            // The customer hangs up while waiting, after the missed ring if there was one.
            let left = (enqueued + rng.random_range(5..=90)).max(missed_at.map_or(0, |t| t + 1));
            ctr["Queue"]["DequeueTimestamp"] = json!(ts(left));
            ctr["Queue"]["Duration"] = json!(left - enqueued);
            ctr["DisconnectTimestamp"] = json!(ts(left));
            ctr["DisconnectReason"] = json!("CUSTOMER_DISCONNECT");
            figures.abandoned += 1;
            records.push((left + 2, 0, ctr.to_string()));
            continue;
        }
        let agent = candidates[rng.random_range(0..candidates.len())];
        busy[agent].push((ring, gone));
        let offered = base.with("CONNECTING", ring);
        changes[agent].push(Change {
            time: ring,
            event_type: "STATE_CHANGE",
            status: None,
            contacts: Some(vec![offered.clone()]),
        });
        let talking = SnapContact {
            connected: Some(connected),
            ..offered.with("CONNECTED", connected)
        };
        changes[agent].push(Change {
            time: connected,
            event_type: "STATE_CHANGE",
            status: None,
            contacts: Some(vec![talking.clone()]),
        });
        let mut now = connected + talk_parts[0];
        for (hold, talk) in hold_lengths.iter().zip(&talk_parts[1..]) {
            // On hold, Connect leaves StateStartTimestamp at the connection.
            changes[agent].push(Change {
                time: now,
                event_type: "STATE_CHANGE",
                status: None,
                contacts: Some(vec![talking.with("CONNECTED_ONHOLD", connected)]),
            });
            now += hold;
            changes[agent].push(Change {
                time: now,
                event_type: "STATE_CHANGE",
                status: None,
                contacts: Some(vec![talking.clone()]),
            });
            now += talk;
        }
        assert_eq!(now, ended);
        if acw > 0 {
            changes[agent].push(Change {
                time: ended,
                event_type: "STATE_CHANGE",
                status: None,
                contacts: Some(vec![talking.with("ENDED", ended)]),
            });
        }
        changes[agent].push(Change {
            time: gone,
            event_type: "STATE_CHANGE",
            status: None,
            contacts: Some(Vec::new()),
        });
        figures.answered += 1;
        figures.handled += 1;
        figures.wait += (connected - enqueued) as f64;
        figures.talk += talk_parts.iter().sum::<i64>() as f64;
        figures.hold += hold_lengths.iter().sum::<i64>() as f64;
        figures.acw += acw as f64;
        advisors.entry(AGENTS[agent]).or_default().handled += 1;
        ctr["Queue"]["DequeueTimestamp"] = json!(ts(connected));
        ctr["Queue"]["Duration"] = json!(connected - enqueued);
        ctr["DisconnectTimestamp"] = json!(ts(ended));
        ctr["DisconnectReason"] = json!("CUSTOMER_DISCONNECT");
        ctr["Agent"] = json!({
            "ARN": agent_arn(agent),
            "Username": AGENTS[agent],
            "ConnectedToAgentTimestamp": ts(connected),
            "AfterContactWorkStartTimestamp": ts(ended),
            "AfterContactWorkEndTimestamp": ts(gone),
            "AfterContactWorkDuration": acw,
            "HoldDuration": hold_lengths.iter().sum::<i64>(),
            "NumberOfHolds": holds,
        });
        records.push((gone + 3, 0, ctr.to_string()));
    }

    // The agent records: each change against the snapshot before it, and a heartbeat after
    // 120 s without a record.
    for (agent, agent_changes) in changes.iter_mut().enumerate() {
        agent_changes.sort_by_key(|change| change.time);
        let mut state = AgentState {
            status: status("Offline", "OFFLINE", OPEN - 3600),
            contacts: Vec::new(),
        };
        let mut last = None::<i64>;
        for (number, change) in agent_changes.iter().enumerate() {
            if let Some(last) = last {
                let mut beat = last + 120;
                while beat < change.time {
                    records.push((
                        beat,
                        0,
                        agent_record(
                            agent,
                            &format!("hb-{agent}-{beat}"),
                            "HEART_BEAT",
                            beat,
                            None,
                            &state,
                        ),
                    ));
                    beat += 120;
                }
            }
            let before = state.clone();
            if let Some(status) = &change.status {
                state.status = status.clone();
            }
            if let Some(contacts) = &change.contacts {
                state.contacts = contacts.clone();
            }
            let previous = (change.event_type != "LOGIN").then_some(&before);
            records.push((
                change.time,
                0,
                agent_record(
                    agent,
                    &format!("ev-{agent}-{number}"),
                    change.event_type,
                    change.time,
                    previous,
                    &state,
                ),
            ));
            last = Some(change.time);
        }
    }
    for (order, record) in records.iter_mut().enumerate() {
        record.1 = order;
    }
    records.sort_by_key(|(time, order, _)| (*time, *order));
    Day {
        records,
        queues,
        advisors,
    }
}

fn agent_record(
    agent: usize,
    event_id: &str,
    event_type: &str,
    time: i64,
    previous: Option<&AgentState>,
    current: &AgentState,
) -> String {
    json!({
        "AWSAccountId": "123456789012",
        "AgentARN": agent_arn(agent),
        "CurrentAgentSnapshot": snapshot(agent, current),
        "EventId": event_id,
        "EventTimestamp": ts(time),
        "EventType": event_type,
        "InstanceARN": INSTANCE,
        "PreviousAgentSnapshot": previous.map(|state| snapshot(agent, state)),
        "Version": "2017-10-01",
    })
    .to_string()
}

fn replay(records: &[String]) -> SiteProcessor {
    let mut translator = AmazonConnectConfig::new("paris")
        .build()
        .expect("a valid configuration");
    let (mut events, malformed) = translator.translate_text(&records.join("\n"));
    assert!(malformed.is_empty(), "{malformed:?}");
    assert!(translator.stats().heartbeats > 10);
    assert_eq!(translator.stats().recovered, 0, "no record was lost");
    events.sort_by_key(|event: &Event| event.time);
    let mut processor = SiteProcessor::new(
        SiteConfig::with_defaults("paris"),
        &ProcessingConfig::default(),
    );
    common::apply_all(&mut processor, &events);
    processor.advance_to(Timestamp((OPEN + 12 * 3600) * 1000));
    processor
}

type Figures = (
    BTreeMap<&'static str, QueueFigures>,
    BTreeMap<&'static str, AdvisorFigures>,
);

fn figures_from_the_views(processor: &SiteProcessor) -> Figures {
    let queues = QUEUES
        .iter()
        .map(|queue| {
            let view = processor
                .queue_view(queue, Window::Today)
                .expect("every queue had contacts");
            let flow = &view.indicators.flow;
            let handling = &view.indicators.handling;
            // The views give averages, rounded to the millisecond; back to totals, in whole
            // seconds as the generated day has them (the rounding is far below a second).
            let total =
                |average: Option<f64>, count: u64| (average.unwrap_or(0.0) * count as f64).round();
            let figures = QueueFigures {
                offered: flow.offered,
                answered: flow.answered,
                abandoned: flow.abandoned,
                handled: handling.handled,
                wait: total(flow.asa, flow.answered),
                talk: total(handling.avg_talk, handling.handled),
                hold: total(handling.avg_hold, handling.handled),
                acw: total(handling.avg_acw, handling.handled),
            };
            (*queue, figures)
        })
        .collect();
    let site = processor.site_view(Window::Today);
    let advisors = site
        .advisors
        .iter()
        .map(|view| {
            assert_eq!(
                view.state, "logged_out",
                "{} logged out at the end",
                view.advisor
            );
            let lunch = view
                .indicators
                .pauses
                .iter()
                .find(|pause| pause.reason == "lunch")
                .map_or(0.0, |pause| pause.time);
            let name = AGENTS
                .iter()
                .find(|agent| **agent == view.advisor)
                .expect("only the generated agents");
            (
                *name,
                AdvisorFigures {
                    missed: view.indicators.missed_offers,
                    handled: view.indicators.handling.handled,
                    lunch,
                },
            )
        })
        .collect();
    (queues, advisors)
}

fn records_of(day: &Day) -> Vec<String> {
    day.records
        .iter()
        .map(|(_, _, record)| record.clone())
        .collect()
}

#[test]
fn an_amazon_connect_day_replayed_gives_the_figures_of_the_generated_contacts() {
    let day = generate(20260302);
    // The day has what it should, in every queue.
    for (queue, figures) in &day.queues {
        assert!(
            figures.answered >= 8 && figures.abandoned >= 1 && figures.hold > 0.0,
            "{queue}: {figures:?}"
        );
    }
    assert!(day.advisors.values().map(|a| a.missed).sum::<u64>() >= 3);
    let processor = replay(&records_of(&day));
    let (queues, advisors) = figures_from_the_views(&processor);
    assert_eq!(queues, day.queues);
    assert_eq!(advisors, day.advisors);
}

#[test]
fn the_same_day_delivered_out_of_order_with_repeats_gives_the_same_figures() {
    let day = generate(7);
    // Kinesis shards and redeliveries: records slip up to 3 s behind one another, and one
    // in ten is delivered twice (contact records updated and delivered again included).
    let mut rng = ChaCha8Rng::seed_from_u64(99);
    let mut delivered: Vec<(i64, usize, String)> = Vec::new();
    for (time, order, record) in &day.records {
        delivered.push((time + rng.random_range(0..=3), *order, record.clone()));
        if rng.random_bool(0.1) {
            delivered.push((time + rng.random_range(0..=600), *order, record.clone()));
        }
    }
    delivered.sort_by_key(|(time, order, _)| (*time, *order));
    let delivered: Vec<String> = delivered.into_iter().map(|(_, _, record)| record).collect();
    assert_ne!(delivered, records_of(&day));
    let processor = replay(&delivered);
    assert_eq!(
        figures_from_the_views(&processor),
        (day.queues.clone(), day.advisors.clone())
    );
    assert!(processor.stats().duplicates > 0);
}
