//! Translation of Amazon Connect records, record type by record type and transition by
//! transition.
//!
//! The agent event records are written after the Amazon Connect Administrator Guide, "Agent
//! event streams data model"
//! (<https://docs.aws.amazon.com/connect/latest/adminguide/agent-event-stream-model.html>):
//! `AWSAccountId`, `AgentARN`, `CurrentAgentSnapshot` / `PreviousAgentSnapshot` (with
//! `AgentStatus`, `Configuration`, `Contacts`), `EventId`, `EventTimestamp`, `EventType`,
//! `InstanceARN`, `Version`; contact states as "About contact states"
//! (<https://docs.aws.amazon.com/connect/latest/adminguide/about-contact-states.html>) lists
//! them. The contact records follow "Contact records data model"
//! (<https://docs.aws.amazon.com/connect/latest/adminguide/ctr-data-model.html>).
//!
//! Every event produced is also checked to decode back, through its JSON, to itself with
//! `vigie_core::decode_json`.

mod common;

use common::{apply_all, without_id};

use proptest::prelude::*;
use serde_json::{Value, json};
use vigie_connectors::{
    AdvisorIdSource, AmazonConnectConfig, AmazonConnectTranslator, RecordOutcome, RecordProblem,
};
use vigie_core::{
    DEFAULT_MAX_EVENT_BYTES, Event, EventBody, ProcessingConfig, SiteConfig, SiteProcessor,
    Timestamp, Window, decode_json,
};

const ACCOUNT: &str = "123456789012";
const INSTANCE: &str = "arn:aws:connect:eu-west-1:123456789012:instance/aaaa-bbbb";
const AGENT_ARN: &str =
    "arn:aws:connect:eu-west-1:123456789012:instance/aaaa-bbbb/agent/0f1e2d3c-agent-camille";
const BILLING_ARN: &str =
    "arn:aws:connect:eu-west-1:123456789012:instance/aaaa-bbbb/queue/q-billing";

/// 2026-03-02T09:15:00Z.
const T: i64 = 1_772_442_900;

/// The ISO 8601 form Connect uses, `T` plus `secs`.
fn ts(secs: i64) -> String {
    Timestamp((T + secs) * 1000)
        .to_utc()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

fn at(secs: i64) -> Timestamp {
    Timestamp((T + secs) * 1000)
}

fn config() -> AmazonConnectConfig {
    let mut config = AmazonConnectConfig::new("paris");
    config
        .teams
        .insert("Billing agents".to_owned(), "team-billing".to_owned());
    config
}

fn translator() -> AmazonConnectTranslator {
    config().build().expect("the test configuration is valid")
}

fn status(name: &str, kind: &str, since: i64) -> Value {
    json!({
        "ARN": format!("{INSTANCE}/agent-state/{name}"),
        "Name": name,
        "StartTimestamp": ts(since),
        "Type": kind,
    })
}

fn available(since: i64) -> Value {
    status("Available", "ROUTABLE", since)
}

/// A contact of a snapshot: voice, inbound, in the billing queue.
fn contact(id: &str, state: &str, state_start: i64, connected: Option<i64>) -> Value {
    json!({
        "ContactId": id,
        "InitialContactId": null,
        "Channel": "VOICE",
        "InitiationMethod": "INBOUND",
        "State": state,
        "StateStartTimestamp": ts(state_start),
        "ConnectedToAgentTimestamp": connected.map(ts),
        "QueueTimestamp": ts(-30),
        "Queue": {"ARN": BILLING_ARN, "Name": "billing"},
    })
}

fn snapshot(status: Value, contacts: Vec<Value>) -> Value {
    json!({
        "AgentStatus": status,
        "Configuration": {
            "AgentHierarchyGroups": null,
            "FirstName": "Camille",
            "LastName": "D",
            "RoutingProfile": {
                "ARN": format!("{INSTANCE}/routing-profile/rp-1"),
                "DefaultOutboundQueue": {"ARN": BILLING_ARN, "Name": "billing"},
                "InboundQueues": [{"ARN": BILLING_ARN, "Name": "billing"}],
                "Name": "Billing agents",
            },
            "Username": "a-117",
        },
        "Contacts": contacts,
    })
}

fn record(
    event_id: &str,
    event_type: &str,
    secs: i64,
    previous: Option<Value>,
    current: Option<Value>,
) -> String {
    json!({
        "AWSAccountId": ACCOUNT,
        "AgentARN": AGENT_ARN,
        "CurrentAgentSnapshot": current,
        "EventId": event_id,
        "EventTimestamp": ts(secs),
        "EventType": event_type,
        "InstanceARN": INSTANCE,
        "PreviousAgentSnapshot": previous,
        "Version": "2017-10-01",
    })
    .to_string()
}

/// A contact record: voice, inbound, queued in billing from `T`; `answered` gives the agent
/// part (connected at `T+20`, ACW from `T+200` to `T+230`, one 30 s hold).
fn contact_record(id: &str, answered: bool, last_update: i64) -> String {
    let agent = answered.then(|| {
        json!({
            "ARN": AGENT_ARN,
            "AfterContactWorkDuration": 30,
            "AfterContactWorkEndTimestamp": ts(230),
            "AfterContactWorkStartTimestamp": ts(200),
            "AgentInteractionDuration": 150,
            "ConnectedToAgentTimestamp": ts(20),
            "CustomerHoldDuration": 30,
            "HierarchyGroups": null,
            "LongestHoldDuration": 30,
            "NumberOfHolds": 1,
            "RoutingProfile": {"ARN": format!("{INSTANCE}/routing-profile/rp-1"), "Name": "Billing agents"},
            "Username": "a-117",
        })
    });
    let dequeue = if answered { 20 } else { 45 };
    let disconnect = if answered { 200 } else { 45 };
    json!({
        "AWSAccountId": ACCOUNT,
        "AWSContactTraceRecordFormatVersion": "2017-03-10",
        "Agent": agent,
        "AgentConnectionAttempts": if answered { 1 } else { 0 },
        "Attributes": {"greetingPlayed": "true"},
        "Channel": "VOICE",
        "ConnectedToSystemTimestamp": ts(-5),
        "ContactId": id,
        "CustomerEndpoint": {"Address": "+33100000000", "Type": "TELEPHONE_NUMBER"},
        "DisconnectReason": if answered { "AGENT_DISCONNECT" } else { "CUSTOMER_DISCONNECT" },
        "DisconnectTimestamp": ts(disconnect),
        "InitialContactId": null,
        "InitiationMethod": "INBOUND",
        "InitiationTimestamp": ts(-5),
        "InstanceARN": INSTANCE,
        "LastUpdateTimestamp": ts(last_update),
        "NextContactId": null,
        "PreviousContactId": null,
        "Queue": {
            "ARN": BILLING_ARN,
            "DequeueTimestamp": ts(dequeue),
            "Duration": dequeue,
            "EnqueueTimestamp": ts(0),
            "Name": "billing",
        },
        "SystemEndpoint": {"Address": "+33100000001", "Type": "TELEPHONE_NUMBER"},
        "TransferredToEndpoint": null,
    })
    .to_string()
}

/// The events of one record, each checked to round-trip through the JSON contract.
fn events_of(translator: &mut AmazonConnectTranslator, line: &str) -> Vec<Event> {
    match translator.translate_line(1, line) {
        Ok(RecordOutcome::Events(events)) => {
            common::assert_round_trips(&events);
            events
        }
        other => panic!("{line} gave {other:?}, expected events"),
    }
}

fn shapes(events: &[Event]) -> Vec<String> {
    events.iter().map(without_id).collect()
}

fn processor() -> SiteProcessor {
    SiteProcessor::new(
        SiteConfig::with_defaults("paris"),
        &ProcessingConfig::default(),
    )
}

// ---- advisor status -------------------------------------------------------------------

#[test]
fn a_login_with_a_routable_status_logs_the_advisor_in_with_the_team_of_the_routing_profile() {
    let mut translator = translator();
    let login = record(
        "e-1",
        "LOGIN",
        0,
        None,
        Some(snapshot(available(0), vec![])),
    );
    let events = events_of(&mut translator, &login);
    assert_eq!(
        shapes(&events),
        [
            r#"{"type":"advisor.login","time":"2026-03-02T09:15:00.000Z","site":"paris","advisor":"a-117","team":"team-billing"}"#
        ]
    );
    assert!(events[0].id.starts_with("acn-") && events[0].id.ends_with("-login"));
    // The same record read again (a restarted connector) gives the same id.
    assert_eq!(events_of(&mut translator, &login), events);
    assert_eq!(events_of(&mut self::translator(), &login), events);
}

#[test]
fn a_login_in_a_custom_status_is_a_login_then_a_pause_at_the_same_time() {
    let mut translator = translator();
    let login = record(
        "e-1",
        "LOGIN",
        0,
        None,
        Some(snapshot(status("Lunch", "CUSTOM", 0), vec![])),
    );
    assert_eq!(
        shapes(&events_of(&mut translator, &login)),
        [
            r#"{"type":"advisor.login","time":"2026-03-02T09:15:00.000Z","site":"paris","advisor":"a-117","team":"team-billing"}"#,
            r#"{"type":"advisor.state","time":"2026-03-02T09:15:00.000Z","site":"paris","advisor":"a-117","state":"pause","reason":"lunch"}"#,
        ]
    );
}

#[test]
fn status_changes_give_pause_available_logout_and_a_new_login() {
    let mut translator = translator();
    let to_break = record(
        "e-2",
        "STATE_CHANGE",
        60,
        Some(snapshot(available(0), vec![])),
        Some(snapshot(status("Break", "CUSTOM", 60), vec![])),
    );
    let back = record(
        "e-3",
        "STATE_CHANGE",
        900,
        Some(snapshot(status("Break", "CUSTOM", 60), vec![])),
        Some(snapshot(available(900), vec![])),
    );
    let offline = record(
        "e-4",
        "STATE_CHANGE",
        1800,
        Some(snapshot(available(900), vec![])),
        Some(snapshot(status("Offline", "OFFLINE", 1800), vec![])),
    );
    let logout_after_offline = record(
        "e-5",
        "LOGOUT",
        1810,
        Some(snapshot(status("Offline", "OFFLINE", 1800), vec![])),
        Some(snapshot(status("Offline", "OFFLINE", 1800), vec![])),
    );
    let return_online = record(
        "e-6",
        "STATE_CHANGE",
        2400,
        Some(snapshot(status("Offline", "OFFLINE", 1800), vec![])),
        Some(snapshot(available(2400), vec![])),
    );
    let mut all = Vec::new();
    for line in [
        &to_break,
        &back,
        &offline,
        &logout_after_offline,
        &return_online,
    ] {
        all.extend(events_of(&mut translator, line));
    }
    assert_eq!(
        shapes(&all),
        [
            r#"{"type":"advisor.state","time":"2026-03-02T09:16:00.000Z","site":"paris","advisor":"a-117","state":"pause","reason":"break"}"#,
            r#"{"type":"advisor.state","time":"2026-03-02T09:30:00.000Z","site":"paris","advisor":"a-117","state":"available"}"#,
            r#"{"type":"advisor.logout","time":"2026-03-02T09:45:00.000Z","site":"paris","advisor":"a-117"}"#,
            r#"{"type":"advisor.login","time":"2026-03-02T09:55:00.000Z","site":"paris","advisor":"a-117","team":"team-billing"}"#,
        ]
    );
}

#[test]
fn a_logout_while_available_logs_out_at_the_event_time() {
    let mut translator = translator();
    let logout = record(
        "e-9",
        "LOGOUT",
        3600,
        Some(snapshot(available(0), vec![])),
        None,
    );
    assert_eq!(
        shapes(&events_of(&mut translator, &logout)),
        [
            r#"{"type":"advisor.logout","time":"2026-03-02T10:15:00.000Z","site":"paris","advisor":"a-117"}"#
        ]
    );
}

#[test]
fn a_configuration_change_without_status_or_contact_change_gives_nothing() {
    let mut translator = translator();
    let mut after = snapshot(available(0), vec![]);
    after["Configuration"]["RoutingProfile"]["Name"] = json!("Claims agents");
    let change = record(
        "e-7",
        "STATE_CHANGE",
        100,
        Some(snapshot(available(0), vec![])),
        Some(after),
    );
    assert!(events_of(&mut translator, &change).is_empty());
}

// ---- contacts -------------------------------------------------------------------------

/// The records of an inbound call to a-117: offered at +0, connected at +20, held at +80,
/// resumed at +110, ended at +200 (ACW), out of the snapshot at +230.
fn inbound_call_records(id: &str) -> Vec<String> {
    let s = |state: &str, start: i64, connected: Option<i64>| {
        snapshot(available(-600), vec![contact(id, state, start, connected)])
    };
    let idle = snapshot(available(-600), vec![]);
    vec![
        record(
            "c-1",
            "STATE_CHANGE",
            0,
            Some(idle.clone()),
            Some(s("CONNECTING", 0, None)),
        ),
        record(
            "c-2",
            "STATE_CHANGE",
            20,
            Some(s("CONNECTING", 0, None)),
            Some(s("CONNECTED", 20, Some(20))),
        ),
        // Connect leaves StateStartTimestamp at the connection for a hold (AgentContactReference).
        record(
            "c-3",
            "STATE_CHANGE",
            80,
            Some(s("CONNECTED", 20, Some(20))),
            Some(s("CONNECTED_ONHOLD", 20, Some(20))),
        ),
        record(
            "c-4",
            "STATE_CHANGE",
            110,
            Some(s("CONNECTED_ONHOLD", 20, Some(20))),
            Some(s("CONNECTED", 20, Some(20))),
        ),
        record(
            "c-5",
            "STATE_CHANGE",
            200,
            Some(s("CONNECTED", 20, Some(20))),
            Some(s("ENDED", 200, Some(20))),
        ),
        record(
            "c-6",
            "STATE_CHANGE",
            230,
            Some(s("ENDED", 200, Some(20))),
            Some(idle),
        ),
    ]
}

#[test]
fn an_inbound_voice_call_is_offered_answered_held_resumed_ended_and_completed() {
    let mut translator = translator();
    let events: Vec<Event> = inbound_call_records("c-4f9a1e")
        .iter()
        .flat_map(|line| events_of(&mut translator, line))
        .collect();
    assert_eq!(
        shapes(&events),
        [
            r#"{"type":"contact.offered","time":"2026-03-02T09:15:00.000Z","site":"paris","contact":"c-4f9a1e","queue":"billing","advisor":"a-117"}"#,
            r#"{"type":"contact.answered","time":"2026-03-02T09:15:20.000Z","site":"paris","contact":"c-4f9a1e","queue":"billing","channel":"voice","advisor":"a-117"}"#,
            r#"{"type":"contact.held","time":"2026-03-02T09:16:20.000Z","site":"paris","contact":"c-4f9a1e","queue":"billing","advisor":"a-117"}"#,
            r#"{"type":"contact.resumed","time":"2026-03-02T09:16:50.000Z","site":"paris","contact":"c-4f9a1e","queue":"billing","advisor":"a-117"}"#,
            r#"{"type":"contact.ended","time":"2026-03-02T09:18:20.000Z","site":"paris","contact":"c-4f9a1e","queue":"billing","advisor":"a-117"}"#,
            r#"{"type":"contact.completed","time":"2026-03-02T09:18:50.000Z","site":"paris","contact":"c-4f9a1e","queue":"billing","advisor":"a-117"}"#,
        ]
    );
    // With the contact record's queue entry, the core counts the call as the records say:
    // 30 s hold, 150 s talk, 30 s after-contact work.
    let mut all = events_of(&mut translator, &contact_record("c-4f9a1e", true, 300));
    all.extend(events);
    let mut processor = processor();
    apply_all(&mut processor, &all);
    let view = processor
        .queue_view("billing", Window::Today)
        .expect("billing had a call");
    assert_eq!(view.indicators.flow.offered, 1);
    assert_eq!(view.indicators.flow.answered, 1);
    assert_eq!(view.indicators.flow.asa, Some(20.0));
    assert_eq!(view.indicators.handling.handled, 1);
    assert_eq!(view.indicators.handling.avg_talk, Some(150.0));
    assert_eq!(view.indicators.handling.avg_hold, Some(30.0));
    assert_eq!(view.indicators.handling.avg_acw, Some(30.0));
}

#[test]
fn a_missed_offer_gives_offered_then_missed_and_nothing_when_it_leaves_the_snapshot() {
    let mut translator = translator();
    let idle = snapshot(available(-600), vec![]);
    let ringing = snapshot(available(-600), vec![contact("c-1", "CONNECTING", 0, None)]);
    let missed = snapshot(available(-600), vec![contact("c-1", "MISSED", 15, None)]);
    let mut events = Vec::new();
    for line in [
        record(
            "m-1",
            "STATE_CHANGE",
            0,
            Some(idle.clone()),
            Some(ringing.clone()),
        ),
        record(
            "m-2",
            "STATE_CHANGE",
            15,
            Some(ringing),
            Some(missed.clone()),
        ),
        record("m-3", "STATE_CHANGE", 20, Some(missed), Some(idle)),
    ] {
        events.extend(events_of(&mut translator, &line));
    }
    assert_eq!(
        shapes(&events),
        [
            r#"{"type":"contact.offered","time":"2026-03-02T09:15:00.000Z","site":"paris","contact":"c-1","queue":"billing","advisor":"a-117"}"#,
            r#"{"type":"contact.missed","time":"2026-03-02T09:15:15.000Z","site":"paris","contact":"c-1","queue":"billing","advisor":"a-117"}"#,
        ]
    );
}

#[test]
fn a_rejected_offer_is_a_miss() {
    let mut translator = translator();
    let ringing = snapshot(available(-600), vec![contact("c-1", "CONNECTING", 0, None)]);
    let rejected = snapshot(available(-600), vec![contact("c-1", "REJECTED", 4, None)]);
    let events = events_of(
        &mut translator,
        &record("m-1", "STATE_CHANGE", 4, Some(ringing), Some(rejected)),
    );
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].type_name(), "contact.missed");
    assert_eq!(events[0].time, at(4));
}

#[test]
fn a_chat_is_answered_with_the_chat_channel() {
    let mut translator = translator();
    let mut chat = contact("chat-1", "CONNECTED", 12, Some(12));
    chat["Channel"] = json!("CHAT");
    let mut offered = contact("chat-1", "CONNECTING", 3, None);
    offered["Channel"] = json!("CHAT");
    let events = events_of(
        &mut translator,
        &record(
            "h-1",
            "STATE_CHANGE",
            12,
            Some(snapshot(available(-600), vec![offered])),
            Some(snapshot(available(-600), vec![chat])),
        ),
    );
    assert_eq!(
        shapes(&events),
        [
            r#"{"type":"contact.answered","time":"2026-03-02T09:15:12.000Z","site":"paris","contact":"chat-1","queue":"billing","channel":"chat","advisor":"a-117"}"#
        ]
    );
}

#[test]
fn a_connected_record_whose_connecting_record_was_lost_still_gives_the_answer() {
    // A previous snapshot that already shows the contact connected gives no second answer; a
    // record that jumps from nothing to CONNECTED gives it.
    let mut translator = translator();
    let idle = snapshot(available(-600), vec![]);
    let talking = snapshot(
        available(-600),
        vec![contact("c-2", "CONNECTED", 9, Some(9))],
    );
    let events = events_of(
        &mut translator,
        &record("j-1", "STATE_CHANGE", 9, Some(idle), Some(talking.clone())),
    );
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].type_name(), "contact.answered");
    assert_eq!(events[0].time, at(9));
    let mut translator = self::translator();
    let again = events_of(
        &mut translator,
        &record(
            "j-2",
            "STATE_CHANGE",
            10,
            Some(talking.clone()),
            Some(talking),
        ),
    );
    assert!(again.is_empty(), "{again:?}");
}

#[test]
fn a_call_connected_then_gone_without_acw_is_ended_and_completed_at_once() {
    let mut translator = translator();
    let talking = snapshot(
        available(-600),
        vec![contact("c-3", "CONNECTED", 5, Some(5))],
    );
    let events = events_of(
        &mut translator,
        &record(
            "x-1",
            "STATE_CHANGE",
            95,
            Some(talking),
            Some(snapshot(available(-600), vec![])),
        ),
    );
    let types: Vec<&str> = events.iter().map(Event::type_name).collect();
    assert_eq!(types, ["contact.ended", "contact.completed"]);
    assert!(events.iter().all(|event| event.time == at(95)));
}

// ---- heartbeats -----------------------------------------------------------------------

#[test]
fn a_heartbeat_that_shows_nothing_new_gives_nothing() {
    let mut translator = translator();
    let talking = snapshot(
        available(-600),
        vec![contact("c-1", "CONNECTED", 20, Some(20))],
    );
    let ringing = snapshot(available(-600), vec![contact("c-1", "CONNECTING", 0, None)]);
    events_of(
        &mut translator,
        &record(
            "h-0",
            "STATE_CHANGE",
            20,
            Some(ringing),
            Some(talking.clone()),
        ),
    );
    // A heartbeat of an agent never seen before: nothing to compare with.
    let mut fresh = self::translator();
    assert!(
        events_of(
            &mut fresh,
            &record("h-9", "HEART_BEAT", 140, None, Some(talking.clone()))
        )
        .is_empty()
    );
    // A heartbeat that agrees with the last snapshot.
    assert!(
        events_of(
            &mut translator,
            &record("h-1", "HEART_BEAT", 140, None, Some(talking))
        )
        .is_empty()
    );
    assert_eq!(translator.stats().heartbeats, 1);
    assert_eq!(translator.stats().recovered, 0);
}

#[test]
fn a_heartbeat_recovers_a_missed_transition_with_the_snapshot_times_and_the_late_record_is_the_same_event()
 {
    let ringing = snapshot(available(-600), vec![contact("c-1", "CONNECTING", 0, None)]);
    let talking = snapshot(
        available(-600),
        vec![contact("c-1", "CONNECTED", 20, Some(20))],
    );
    let offered = record(
        "r-1",
        "STATE_CHANGE",
        0,
        Some(snapshot(available(-600), vec![])),
        Some(ringing.clone()),
    );
    let connected = record(
        "r-2",
        "STATE_CHANGE",
        20,
        Some(ringing),
        Some(talking.clone()),
    );
    let heartbeat = record("r-3", "HEART_BEAT", 140, None, Some(talking));

    // The CONNECTED record is lost (or late): the heartbeat gives the answer, stamped with
    // ConnectedToAgentTimestamp, not the heartbeat's time.
    let mut translator = translator();
    events_of(&mut translator, &offered);
    let recovered = events_of(&mut translator, &heartbeat);
    assert_eq!(
        shapes(&recovered),
        [
            r#"{"type":"contact.answered","time":"2026-03-02T09:15:20.000Z","site":"paris","contact":"c-1","queue":"billing","channel":"voice","advisor":"a-117"}"#
        ]
    );
    assert_eq!(translator.stats().recovered, 1);
    // The late record gives the same event, with the same id: the core counts it once.
    let late = events_of(&mut translator, &connected);
    assert_eq!(late, recovered);

    // The ACW end (contact gone) missed too: a heartbeat of an idle agent completes the call.
    let mut translator = self::translator();
    let ended = snapshot(
        available(-600),
        vec![contact("c-1", "ENDED", 200, Some(20))],
    );
    events_of(
        &mut translator,
        &record(
            "r-4",
            "STATE_CHANGE",
            200,
            Some(snapshot(
                available(-600),
                vec![contact("c-1", "CONNECTED", 20, Some(20))],
            )),
            Some(ended),
        ),
    );
    let idle_heartbeat = record(
        "r-5",
        "HEART_BEAT",
        320,
        None,
        Some(snapshot(available(-600), vec![])),
    );
    let completed = events_of(&mut translator, &idle_heartbeat);
    assert_eq!(completed.len(), 1);
    assert_eq!(completed[0].type_name(), "contact.completed");
    assert_eq!(completed[0].time, at(320));
    // An older heartbeat delivered late reveals nothing.
    let stale = record(
        "r-6",
        "HEART_BEAT",
        100,
        None,
        Some(snapshot(available(-600), vec![])),
    );
    assert!(events_of(&mut translator, &stale).is_empty());
}

#[test]
fn a_heartbeat_recovers_a_missed_status_change() {
    let mut translator = translator();
    events_of(
        &mut translator,
        &record(
            "s-1",
            "LOGIN",
            0,
            None,
            Some(snapshot(available(0), vec![])),
        ),
    );
    let heartbeat = record(
        "s-2",
        "HEART_BEAT",
        300,
        None,
        Some(snapshot(status("Training", "CUSTOM", 180), vec![])),
    );
    assert_eq!(
        shapes(&events_of(&mut translator, &heartbeat)),
        [
            r#"{"type":"advisor.state","time":"2026-03-02T09:18:00.000Z","site":"paris","advisor":"a-117","state":"pause","reason":"training"}"#
        ]
    );
}

// ---- contact records ------------------------------------------------------------------

#[test]
fn the_contact_record_of_an_answered_call_gives_its_queue_entry_only() {
    let mut translator = translator();
    let events = events_of(&mut translator, &contact_record("c-9", true, 300));
    assert_eq!(
        shapes(&events),
        [
            r#"{"type":"contact.queued","time":"2026-03-02T09:15:00.000Z","site":"paris","contact":"c-9","queue":"billing","channel":"voice"}"#
        ]
    );
    assert!(events[0].id.ends_with("-queued"));
}

#[test]
fn the_contact_record_of_an_abandoned_call_gives_queued_then_abandoned_at_the_dequeue() {
    let mut translator = translator();
    let events = events_of(&mut translator, &contact_record("c-10", false, 60));
    assert_eq!(
        shapes(&events),
        [
            r#"{"type":"contact.queued","time":"2026-03-02T09:15:00.000Z","site":"paris","contact":"c-10","queue":"billing","channel":"voice"}"#,
            r#"{"type":"contact.abandoned","time":"2026-03-02T09:15:45.000Z","site":"paris","contact":"c-10","queue":"billing"}"#,
        ]
    );
    let mut processor = processor();
    apply_all(&mut processor, &events);
    let flow = processor
        .queue_view("billing", Window::Today)
        .expect("billing had a call")
        .indicators
        .flow;
    assert_eq!((flow.offered, flow.abandoned, flow.answered), (1, 1, 0));
}

#[test]
fn a_contact_that_the_flow_took_out_of_the_queue_is_dequeued_with_the_attribute_reason() {
    let mut translator = translator();
    let mut record: Value = serde_json::from_str(&contact_record("c-11", false, 60)).unwrap();
    record["Attributes"]["vigie_dequeue_reason"] = json!("voicemail");
    record["DisconnectReason"] = json!("CONTACT_FLOW_DISCONNECT");
    let events = events_of(&mut translator, &record.to_string());
    assert_eq!(
        shapes(&events)[1],
        r#"{"type":"contact.dequeued","time":"2026-03-02T09:15:45.000Z","site":"paris","contact":"c-11","queue":"billing","reason":"voicemail"}"#
    );
}

#[test]
fn a_contact_record_without_queue_gives_nothing_and_is_counted() {
    let mut translator = translator();
    let mut record: Value = serde_json::from_str(&contact_record("c-12", false, 60)).unwrap();
    record["Queue"] = Value::Null;
    record["InitiationMethod"] = json!("OUTBOUND");
    assert!(events_of(&mut translator, &record.to_string()).is_empty());
    assert_eq!(translator.stats().contact_records_without_queue, 1);
}

#[test]
fn a_contact_record_delivered_again_or_updated_gives_no_event_twice() {
    let mut translator = translator();
    let first = events_of(&mut translator, &contact_record("c-13", false, 60));
    assert_eq!(first.len(), 2);
    // The same record again.
    assert!(events_of(&mut translator, &contact_record("c-13", false, 60)).is_empty());
    // Updated (update-contact-attributes): new LastUpdateTimestamp and attributes, even a
    // flow reason added afterwards: the abandon already given stands.
    let mut updated: Value = serde_json::from_str(&contact_record("c-13", false, 4000)).unwrap();
    updated["Attributes"]["survey"] = json!("done");
    updated["Attributes"]["vigie_dequeue_reason"] = json!("callback");
    assert!(events_of(&mut translator, &updated.to_string()).is_empty());
    assert_eq!(translator.stats().contact_record_repeats, 4);
    // A restarted connector (no memory) gives the same ids, which the core drops.
    let again = events_of(
        &mut self::translator(),
        &contact_record("c-13", false, 4000),
    );
    assert_eq!(again, first);
    let mut processor = processor();
    apply_all(&mut processor, &first);
    apply_all(&mut processor, &again);
    assert_eq!(processor.stats().duplicates, 2);
    let flow = processor
        .queue_view("billing", Window::Today)
        .expect("billing had a call")
        .indicators
        .flow;
    assert_eq!((flow.offered, flow.abandoned), (1, 1));
}

#[test]
fn queues_and_advisors_can_be_mapped_by_arn() {
    let mut config = config();
    config
        .queues
        .insert(BILLING_ARN.to_owned(), "q-billing".to_owned());
    let mut translator = config.build().expect("valid");
    let events = events_of(&mut translator, &contact_record("c-14", true, 300));
    let EventBody::Contact(contact) = &events[0].body else {
        panic!("a contact event");
    };
    assert_eq!(contact.queue.as_deref(), Some("q-billing"));

    let mut config = self::config();
    config.advisor_id = AdvisorIdSource::AgentArnId;
    let mut translator = config.build().expect("valid");
    let events = events_of(
        &mut translator,
        &record(
            "e-1",
            "LOGIN",
            0,
            None,
            Some(snapshot(available(0), vec![])),
        ),
    );
    let EventBody::Advisor(advisor) = &events[0].body else {
        panic!("an advisor event");
    };
    assert_eq!(advisor.advisor, "0f1e2d3c-agent-camille");
    config
        .advisors
        .insert(AGENT_ARN.to_owned(), "a-9".to_owned());
    let events = events_of(
        &mut config.build().expect("valid"),
        &record(
            "e-1",
            "LOGIN",
            0,
            None,
            Some(snapshot(available(0), vec![])),
        ),
    );
    let EventBody::Advisor(advisor) = &events[0].body else {
        panic!("an advisor event");
    };
    assert_eq!(advisor.advisor, "a-9");
}

#[test]
fn a_bad_configuration_reports_every_problem() {
    let mut config = AmazonConnectConfig::new(" ");
    config.teams.insert("rp".to_owned(), "".to_owned());
    config.memory = std::time::Duration::from_secs(5);
    let errors = config.build().expect_err("three problems");
    let fields: Vec<&str> = errors.0.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(fields, ["site", "teams.\"rp\"", "memory"]);
    let mut config = self::config();
    config.memory = std::time::Duration::from_secs(365 * 24 * 3600);
    assert_eq!(config.build().expect_err("too long").0[0].field, "memory");
}

#[test]
fn the_configuration_reads_from_toml_with_human_durations_and_rejects_unknown_fields() {
    let config: AmazonConnectConfig = toml::from_str(
        r#"
        site = "paris"
        advisor_id = "agent_arn_id"
        memory = "6h"
        [queues]
        "arn:aws:connect:eu-west-1:123456789012:instance/aaaa-bbbb/queue/q-billing" = "billing"
        [teams]
        "Billing agents" = "team-billing"
        "#,
    )
    .expect("a valid configuration");
    assert_eq!(config.advisor_id, AdvisorIdSource::AgentArnId);
    assert_eq!(config.memory, std::time::Duration::from_secs(6 * 3600));
    assert_eq!(config.dequeue_reason_attribute, "vigie_dequeue_reason");
    assert!(config.build().is_ok());
    let unknown = toml::from_str::<AmazonConnectConfig>("site = \"paris\"\nregion = \"eu\"\n");
    assert!(unknown.is_err());
}

// ---- order and repeats ----------------------------------------------------------------

#[test]
fn records_repeated_and_out_of_order_give_the_same_events_and_figures() {
    let mut records = inbound_call_records("c-20");
    records.push(contact_record("c-20", true, 300));
    records.push(record(
        "l-1",
        "LOGIN",
        -600,
        None,
        Some(snapshot(available(-600), vec![])),
    ));
    let in_order: Vec<String> = {
        let mut sorted = records.clone();
        sorted.rotate_right(1); // the login first, the contact record last
        sorted
    };
    let mut translator = translator();
    let expected: Vec<Event> = in_order
        .iter()
        .flat_map(|line| events_of(&mut translator, line))
        .collect();
    let mut shuffled = vec![
        records[3].clone(),
        records[6].clone(),
        records[1].clone(),
        records[0].clone(),
        records[5].clone(),
        records[3].clone(),
        records[2].clone(),
        records[4].clone(),
        records[0].clone(),
        records[6].clone(),
    ];
    shuffled.push(records[5].clone());
    shuffled.push(records[7].clone());
    let mut translator = self::translator();
    let delivered: Vec<Event> = shuffled
        .iter()
        .flat_map(|line| events_of(&mut translator, line))
        .collect();
    let ids = |events: &[Event]| {
        let mut ids: Vec<(String, String)> =
            events.iter().map(|e| (e.id.clone(), e.to_json())).collect();
        ids.sort();
        ids.dedup();
        ids
    };
    assert_eq!(ids(&delivered), ids(&expected));
    assert!(
        delivered.len() > expected.len(),
        "repeats gave repeated events"
    );

    let figures = |events: &[Event]| {
        let mut sorted = events.to_vec();
        sorted.sort_by_key(|event| event.time);
        let mut processor = processor();
        apply_all(&mut processor, &sorted);
        processor.advance_to(at(3600));
        let view = processor
            .queue_view("billing", Window::Today)
            .expect("billing had a call");
        (
            view.indicators.flow.offered,
            view.indicators.flow.answered,
            view.indicators.handling.handled,
            view.indicators.handling.avg_talk,
            view.indicators.handling.avg_hold,
            view.indicators.handling.avg_acw,
        )
    };
    assert_eq!(
        figures(&delivered),
        (1, 1, 1, Some(150.0), Some(30.0), Some(30.0))
    );
    assert_eq!(figures(&delivered), figures(&expected));
}

// ---- malformed and unknown ------------------------------------------------------------

fn problem(line: &str) -> RecordProblem {
    let mut translator = translator();
    let error = translator
        .translate_line(7, line)
        .expect_err("a malformed record");
    assert_eq!(error.line, 7);
    assert!(
        error
            .to_string()
            .starts_with("amazon connect record at line 7: ")
    );
    assert_eq!(translator.stats().malformed, 1);
    error.problem
}

#[test]
fn malformed_records_are_errors_with_the_line_and_the_field() {
    assert!(matches!(
        problem(r#"{"EventType":"LOGIN","#),
        RecordProblem::NotJson(_)
    ));
    assert_eq!(problem("[1,2]"), RecordProblem::NotAnObject("an array"));
    assert_eq!(
        problem(r#"{"Hello":"world"}"#),
        RecordProblem::UnknownRecord
    );

    let mut no_time: Value = serde_json::from_str(&record(
        "e-1",
        "LOGIN",
        0,
        None,
        Some(snapshot(available(0), vec![])),
    ))
    .unwrap();
    no_time["EventTimestamp"] = Value::Null;
    assert_eq!(
        problem(&no_time.to_string()),
        RecordProblem::MissingField {
            field: "EventTimestamp".to_owned()
        }
    );
    no_time["EventTimestamp"] = json!("2026-03-02 09:15:00");
    let error = problem(&no_time.to_string());
    assert!(
        matches!(&error, RecordProblem::InvalidField { field, .. } if field == "EventTimestamp"),
        "{error:?}"
    );

    let mut no_state = contact("c-1", "CONNECTING", 0, None);
    no_state.as_object_mut().unwrap().remove("State");
    let line = record(
        "e-2",
        "STATE_CHANGE",
        0,
        None,
        Some(snapshot(available(0), vec![no_state])),
    );
    assert_eq!(
        problem(&line),
        RecordProblem::MissingField {
            field: "CurrentAgentSnapshot.Contacts[0].State".to_owned()
        }
    );

    let mut no_user = snapshot(available(0), vec![]);
    no_user["Configuration"]
        .as_object_mut()
        .unwrap()
        .remove("Username");
    assert_eq!(
        problem(&record("e-3", "LOGIN", 0, None, Some(no_user))),
        RecordProblem::MissingField {
            field: "CurrentAgentSnapshot.Configuration.Username".to_owned()
        }
    );

    let mut bad_contacts = snapshot(available(0), vec![]);
    bad_contacts["Contacts"] = json!("none");
    let error = problem(&record("e-4", "STATE_CHANGE", 0, None, Some(bad_contacts)));
    assert!(
        matches!(&error, RecordProblem::InvalidField { field, .. } if field == "CurrentAgentSnapshot.Contacts"),
        "{error:?}"
    );

    let mut ctr: Value = serde_json::from_str(&contact_record("c-1", false, 60)).unwrap();
    ctr["Queue"]
        .as_object_mut()
        .unwrap()
        .remove("EnqueueTimestamp");
    assert_eq!(
        problem(&ctr.to_string()),
        RecordProblem::MissingField {
            field: "Queue.EnqueueTimestamp".to_owned()
        }
    );
    ctr["Queue"]["EnqueueTimestamp"] = json!(ts(0));
    ctr["Channel"] = json!("CARRIER_PIGEON");
    let error = problem(&ctr.to_string());
    assert!(
        matches!(&error, RecordProblem::InvalidField { field, .. } if field == "Channel"),
        "{error:?}"
    );
    ctr["Channel"] = json!("VOICE");
    ctr["ContactId"] = json!("c\t1");
    let error = problem(&ctr.to_string());
    assert!(
        matches!(&error, RecordProblem::InvalidIdentifier { field, .. } if field == "ContactId"),
        "{error:?}"
    );
}

#[test]
fn unknown_event_types_are_skipped_and_counted_and_unknown_fields_ignored() {
    let mut translator = translator();
    let outcome = translator
        .translate_line(
            1,
            &record(
                "u-1",
                "AGENT_MOOD",
                0,
                None,
                Some(snapshot(available(0), vec![])),
            ),
        )
        .expect("not an error");
    assert_eq!(
        outcome,
        RecordOutcome::Skipped {
            event_type: "AGENT_MOOD".to_owned()
        }
    );
    assert_eq!(translator.stats().skipped.get("AGENT_MOOD"), Some(&1));

    let mut extra: Value = serde_json::from_str(&record(
        "u-2",
        "LOGIN",
        0,
        None,
        Some(snapshot(available(0), vec![])),
    ))
    .unwrap();
    extra["SomethingNew"] = json!({"nested": [1, 2, 3]});
    extra["CurrentAgentSnapshot"]["NextAgentStatus"] = json!({"Name": "Lunch"});
    assert_eq!(events_of(&mut translator, &extra.to_string()).len(), 1);

    // A contact state this version does not know (PAUSED, for tasks) gives nothing.
    let mut task = contact("t-1", "PAUSED", 5, Some(2));
    task["Channel"] = json!("TASK");
    let line = record(
        "u-3",
        "STATE_CHANGE",
        5,
        Some(snapshot(available(0), vec![])),
        Some(snapshot(available(0), vec![task])),
    );
    assert!(events_of(&mut translator, &line).is_empty());

    let (events, malformed) = translator.translate_text(&format!(
        "\n{}\r\nnot json\n",
        record(
            "u-4",
            "LOGIN",
            0,
            None,
            Some(snapshot(available(0), vec![]))
        )
    ));
    assert_eq!(events.len(), 1);
    assert_eq!(malformed.len(), 1);
    assert_eq!(malformed[0].line, 3);
}

// ---- arbitrary input ------------------------------------------------------------------

/// Valid records cut or altered at a random place, and arbitrary text.
fn arbitrary_line() -> impl Strategy<Value = String> {
    let templates = {
        let mut templates = inbound_call_records("p-1");
        templates.push(contact_record("p-1", true, 10));
        templates.push(contact_record("p-2", false, 10));
        templates.push(record(
            "p-3",
            "HEART_BEAT",
            500,
            None,
            Some(snapshot(available(0), vec![])),
        ));
        templates
    };
    let altered = (
        proptest::sample::select(templates),
        any::<proptest::sample::Index>(),
        any::<proptest::sample::Index>(),
        "[\\PC]{0,6}|null|\\[\\]|\\{\\}|-1|1e400|\"\"",
    )
        .prop_map(|(template, start, length, insert)| {
            let bytes = template.as_bytes();
            let start = start.index(bytes.len());
            let end = (start + length.index(12)).min(bytes.len());
            let mut altered = bytes[..start].to_vec();
            altered.extend_from_slice(insert.as_bytes());
            altered.extend_from_slice(&bytes[end..]);
            String::from_utf8_lossy(&altered).into_owned()
        });
    prop_oneof![altered, "\\PC{0,80}"]
}

proptest! {
    #[test]
    fn translation_never_panics_and_every_event_is_valid(
        lines in proptest::collection::vec(arbitrary_line(), 1..20)
    ) {
        let mut translator = translator();
        for (index, text) in lines.iter().enumerate() {
            if let Ok(RecordOutcome::Events(events)) = translator.translate_line(index as u64 + 1, text) {
                for event in events {
                    let decoded = decode_json(event.to_json().as_bytes(), DEFAULT_MAX_EVENT_BYTES);
                    prop_assert_eq!(decoded.as_ref(), Ok(&event));
                }
            }
        }
    }
}
