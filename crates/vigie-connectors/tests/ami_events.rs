//! Translation of AMI events, event by event, and the framing of the AMI protocol.
//!
//! The sample messages follow the Asterisk documentation, "AMI Events"
//! (<https://docs.asterisk.org/Asterisk_22_Documentation/API_Documentation/AMI_Events/>): the
//! field names of `QueueCallerJoin`, `AgentCalled`, `AgentConnect`, `AgentComplete`,
//! `AgentRingNoAnswer`, `QueueCallerAbandon`, `QueueCallerLeave`, `QueueMemberAdded`,
//! `QueueMemberRemoved`, `QueueMemberPause`, `Hold`, `Unhold`, `BlindTransfer` and
//! `AttendedTransfer` as their "Syntax" sections list them (caller channel fields `Channel`,
//! `Uniqueid`, `Linkedid`; the member's channel as `DestChannel`, `DestUniqueid`; `Queue`,
//! `MemberName`, `Interface`; `HoldTime` and `RingTime`; `Paused`, `PausedReason`), and
//! `Timestamp` as `manager.conf`'s `timestampevents = yes` adds it to every event.
//!
//! Every event produced is also checked to decode back, through its JSON, to itself.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use vigie_connectors::asterisk_ami::{MAX_MESSAGE_BYTES, parse_ami_timestamp};
use vigie_connectors::{
    AmiConfig, AmiFrame, AmiFramer, AmiMessage, AmiOutcome, AmiProblem, AmiTranslator,
    QueueLogConfig, QueueLogQueueConfig,
};
use vigie_core::{AdvisorEventKind, AdvisorStatus, ContactEventKind, Event, EventBody, Timestamp};

/// 2026-03-02T09:15:00Z.
const T: i64 = 1_772_442_900;

/// An arrival time far from the events' own, to show it is not used when `Timestamp` is there.
const NOW: Timestamp = Timestamp(1_800_000_000_000);

fn config() -> AmiConfig {
    let mut config = AmiConfig::new("paris");
    config.queues.insert(
        "billing".to_owned(),
        QueueLogQueueConfig {
            wrapuptime: Duration::from_secs(15),
        },
    );
    config
        .advisors
        .insert("PJSIP/1001".to_owned(), "a-1001".to_owned());
    config
        .transfer_targets
        .insert("600@from-queue".to_owned(), "claims".to_owned());
    config
}

fn translator() -> AmiTranslator {
    config().build().expect("the test configuration is valid")
}

/// `Timestamp` of `secs` after `T` and `micros`.
fn stamp(secs: i64, micros: u32) -> String {
    format!("{}.{micros:06}", T + secs)
}

/// The caller-channel fields every queue event about a caller carries.
fn caller(event: &str, uniqueid: &str, at: &str) -> Vec<(String, String)> {
    [
        ("Event", event),
        ("Privilege", "agent,all"),
        ("Timestamp", at),
        ("Channel", "PJSIP/trunk-00000001"),
        ("ChannelState", "6"),
        ("ChannelStateDesc", "Up"),
        ("CallerIDNum", "0600000000"),
        ("CallerIDName", "A Customer"),
        ("Context", "from-trunk"),
        ("Exten", "500"),
        ("Priority", "2"),
        ("Uniqueid", uniqueid),
        ("Linkedid", uniqueid),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect()
}

fn with(mut fields: Vec<(String, String)>, more: &[(&str, &str)]) -> AmiMessage {
    fields.extend(more.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    AmiMessage::new(fields)
}

fn join(uniqueid: &str, at: &str) -> AmiMessage {
    with(
        caller("QueueCallerJoin", uniqueid, at),
        &[("Queue", "billing"), ("Position", "1"), ("Count", "1")],
    )
}

/// `AgentCalled`, `AgentConnect`, `AgentComplete`, `AgentRingNoAnswer`: caller, member
/// channel (`Dest*`), queue and member.
fn agent(event: &str, uniqueid: &str, at: &str, more: &[(&str, &str)]) -> AmiMessage {
    let mut fields = caller(event, uniqueid, at);
    fields.extend(
        [
            ("DestChannel", "PJSIP/1001-00000002"),
            ("DestUniqueid", "1772442900.2"),
            ("DestLinkedid", uniqueid),
            ("Queue", "billing"),
            ("MemberName", "Alice"),
            ("Interface", "PJSIP/1001"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    with(fields, more)
}

fn member(event: &str, at: &str, queue: &str, more: &[(&str, &str)]) -> AmiMessage {
    let fields = [
        ("Event", event),
        ("Privilege", "agent,all"),
        ("Timestamp", at),
        ("Queue", queue),
        ("MemberName", "Bob"),
        ("Interface", "PJSIP/1002"),
        ("StateInterface", "PJSIP/1002"),
        ("Membership", "dynamic"),
        ("Penalty", "0"),
        ("CallsTaken", "0"),
        ("LastCall", "0"),
        ("LastPause", "0"),
        ("InCall", "0"),
        ("Status", "1"),
        ("Ringinuse", "0"),
        ("Wrapuptime", "0"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    with(fields, more)
}

/// The events of one message, each checked to round-trip through the JSON contract.
fn events_of(translator: &mut AmiTranslator, message: &AmiMessage) -> Vec<Event> {
    match translator.translate(message, NOW) {
        Ok(AmiOutcome::Events(events)) => {
            common::assert_round_trips(&events);
            events
        }
        other => panic!("expected events from {message}, got {other:?}"),
    }
}

fn kinds(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| e.type_name().to_owned())
        .collect::<Vec<_>>()
}

fn contact(event: &Event) -> &vigie_core::ContactEvent {
    match &event.body {
        EventBody::Contact(contact) => contact,
        EventBody::Advisor(_) => panic!("not a contact event: {}", event.to_json()),
    }
}

fn advisor_kind(event: &Event) -> (&str, &AdvisorEventKind) {
    match &event.body {
        EventBody::Advisor(advisor) => (advisor.advisor.as_str(), &advisor.kind),
        EventBody::Contact(_) => panic!("not an advisor event: {}", event.to_json()),
    }
}

fn ms(secs: i64, millis: i64) -> Timestamp {
    Timestamp((T + secs) * 1000 + millis)
}

#[test]
fn a_call_queued_offered_answered_and_completed() {
    let mut t = translator();
    let queued = events_of(&mut t, &join("1772442900.1", &stamp(0, 250_123)));
    assert_eq!(kinds(&queued), ["contact.queued"]);
    assert_eq!(queued[0].time, ms(0, 250), "microseconds are truncated");
    assert_eq!(queued[0].site, "paris");
    let c = contact(&queued[0]);
    assert_eq!(c.contact, "1772442900.1", "the caller channel's Uniqueid");
    assert_eq!(c.queue.as_deref(), Some("billing"));
    assert_eq!(c.channel, Some(vigie_core::Channel::Voice));
    assert!(
        !queued[0].to_json().contains("0600000000"),
        "the caller id is never copied"
    );

    let offered = events_of(
        &mut t,
        &agent("AgentCalled", "1772442900.1", &stamp(1, 0), &[]),
    );
    assert_eq!(kinds(&offered), ["contact.offered"]);
    assert_eq!(
        contact(&offered[0]).advisor.as_deref(),
        Some("a-1001"),
        "the configured id of the interface"
    );

    let answered = events_of(
        &mut t,
        &agent(
            "AgentConnect",
            "1772442900.1",
            &stamp(10, 0),
            &[("HoldTime", "10"), ("RingTime", "9")],
        ),
    );
    assert_eq!(kinds(&answered), ["contact.answered"], "the join was seen");
    assert_eq!(answered[0].time, ms(10, 0));

    let ended = events_of(
        &mut t,
        &agent(
            "AgentComplete",
            "1772442900.1",
            &stamp(100, 0),
            &[("HoldTime", "10"), ("TalkTime", "90"), ("Reason", "caller")],
        ),
    );
    assert_eq!(kinds(&ended), ["contact.ended", "contact.completed"]);
    assert_eq!(ended[0].time, ms(100, 0));
    assert_eq!(
        ended[1].time,
        ms(115, 0),
        "completed after the queue's 15 s wrap-up"
    );
    assert_eq!(contact(&ended[1]).advisor.as_deref(), Some("a-1001"));

    let ids: BTreeSet<&str> = queued
        .iter()
        .chain(&offered)
        .chain(&answered)
        .chain(&ended)
        .map(|e| e.id.as_str())
        .collect();
    assert_eq!(ids.len(), 5, "every event has its own id");
    assert!(ids.iter().all(|id| id.starts_with("ami-")));
}

#[test]
fn a_member_not_configured_is_named_by_their_extension() {
    let mut t = translator();
    let mut fields = caller("AgentCalled", "1.1", &stamp(0, 0));
    fields.extend([
        ("Queue".to_owned(), "billing".to_owned()),
        ("MemberName".to_owned(), "Carol".to_owned()),
        ("Interface".to_owned(), "Local/1003@agents/n".to_owned()),
    ]);
    let events = events_of(&mut t, &AmiMessage::new(fields));
    assert_eq!(contact(&events[0]).advisor.as_deref(), Some("1003"));
}

#[test]
fn an_answer_whose_join_was_not_seen_gives_the_entry_from_its_hold_time() {
    let mut t = translator();
    let events = events_of(
        &mut t,
        &agent(
            "AgentConnect",
            "9.9",
            &stamp(30, 500_000),
            &[("HoldTime", "25"), ("RingTime", "3")],
        ),
    );
    assert_eq!(kinds(&events), ["contact.queued", "contact.answered"]);
    assert_eq!(events[0].time, ms(5, 500));
    // The join arriving late gives the entry at its own time (another id): Vigie keeps the
    // contact's first entry; nothing is counted twice because the call is queued once.
    let again = events_of(
        &mut t,
        &agent(
            "AgentConnect",
            "9.9",
            &stamp(30, 500_000),
            &[("HoldTime", "25")],
        ),
    );
    assert_eq!(
        again,
        events[1..],
        "a repeat gives the answer again, same id"
    );
}

#[test]
fn a_ring_without_answer_is_a_miss() {
    let mut t = translator();
    events_of(&mut t, &join("2.1", &stamp(0, 0)));
    let offered = events_of(&mut t, &agent("AgentCalled", "2.1", &stamp(1, 0), &[]));
    let missed = events_of(
        &mut t,
        &agent(
            "AgentRingNoAnswer",
            "2.1",
            &stamp(16, 0),
            &[("RingTime", "15000")],
        ),
    );
    assert_eq!(kinds(&missed), ["contact.missed"]);
    assert_eq!(contact(&missed[0]).advisor.as_deref(), Some("a-1001"));
    // A second ring of the same member during the same wait is a new offer (another time).
    let offered_again = events_of(&mut t, &agent("AgentCalled", "2.1", &stamp(20, 0), &[]));
    assert_ne!(offered[0].id, offered_again[0].id);
}

#[test]
fn an_abandon_and_a_leave() {
    let mut t = translator();
    events_of(&mut t, &join("3.1", &stamp(0, 0)));
    let abandoned = events_of(
        &mut t,
        &with(
            caller("QueueCallerAbandon", "3.1", &stamp(42, 0)),
            &[
                ("Queue", "billing"),
                ("Position", "1"),
                ("OriginalPosition", "1"),
                ("HoldTime", "42"),
            ],
        ),
    );
    assert_eq!(kinds(&abandoned), ["contact.abandoned"]);
    assert_eq!(abandoned[0].time, ms(42, 0));
    // QueueCallerLeave does not say why the caller left (docs/events.md): nothing.
    let leave = with(
        caller("QueueCallerLeave", "3.1", &stamp(42, 0)),
        &[("Queue", "billing"), ("Position", "1"), ("Count", "0")],
    );
    assert_eq!(
        t.translate(&leave, NOW),
        Ok(AmiOutcome::Skipped {
            event: "QueueCallerLeave".to_owned()
        })
    );
    assert_eq!(t.stats().skipped.get("QueueCallerLeave"), Some(&1));
    // An abandon whose join was not seen gives the entry from its wait.
    let unseen = events_of(
        &mut t,
        &with(
            caller("QueueCallerAbandon", "3.2", &stamp(42, 0)),
            &[("Queue", "billing"), ("HoldTime", "40")],
        ),
    );
    assert_eq!(kinds(&unseen), ["contact.queued", "contact.abandoned"]);
    assert_eq!(unseen[0].time, ms(2, 0));
}

#[test]
fn a_pause_repeated_in_every_queue_is_one_event() {
    let mut t = translator();
    let paused = [("Paused", "1"), ("PausedReason", "lunch")];
    let first = events_of(
        &mut t,
        &member("QueueMemberPause", &stamp(0, 999_900), "billing", &paused),
    );
    // The copy of another queue comes microseconds later, in the next second.
    let second = events_of(
        &mut t,
        &member("QueueMemberPause", &stamp(1, 100), "sales", &paused),
    );
    assert_eq!(kinds(&first), ["advisor.state"]);
    assert!(second.is_empty(), "the repeat gives nothing: {second:?}");
    let (advisor, kind) = advisor_kind(&first[0]);
    assert_eq!(advisor, "1002", "the normalised interface");
    assert_eq!(
        kind,
        &AdvisorEventKind::State(AdvisorStatus::Pause {
            reason: "lunch".to_owned()
        })
    );
    // The same pause from a translator that did not see the first copy has the same id when
    // in the same second (member, second, step).
    let mut other = translator();
    let copy = events_of(
        &mut other,
        &member("QueueMemberPause", &stamp(0, 100), "sales", &paused),
    );
    assert_eq!(copy[0].id, first[0].id);

    let unpaused = events_of(
        &mut t,
        &member(
            "QueueMemberPause",
            &stamp(60, 0),
            "billing",
            &[("Paused", "0"), ("PausedReason", "")],
        ),
    );
    let (_, kind) = advisor_kind(&unpaused[0]);
    assert_eq!(kind, &AdvisorEventKind::State(AdvisorStatus::Available));
    // A pause without reason is `unspecified`.
    let bare = events_of(
        &mut t,
        &member(
            "QueueMemberPause",
            &stamp(70, 0),
            "billing",
            &[("Paused", "1")],
        ),
    );
    let (_, kind) = advisor_kind(&bare[0]);
    assert_eq!(
        kind,
        &AdvisorEventKind::State(AdvisorStatus::Pause {
            reason: "unspecified".to_owned()
        })
    );
}

#[test]
fn members_log_in_at_their_first_queue_and_out_at_their_last() {
    let mut t = translator();
    let off = [("Paused", "0")];
    let login = events_of(
        &mut t,
        &member("QueueMemberAdded", &stamp(0, 0), "billing", &off),
    );
    assert_eq!(kinds(&login), ["advisor.login"]);
    assert!(
        events_of(
            &mut t,
            &member("QueueMemberAdded", &stamp(0, 5), "sales", &off)
        )
        .is_empty()
    );
    assert!(
        events_of(
            &mut t,
            &member("QueueMemberRemoved", &stamp(50, 0), "billing", &off)
        )
        .is_empty()
    );
    let logout = events_of(
        &mut t,
        &member("QueueMemberRemoved", &stamp(60, 0), "sales", &off),
    );
    assert_eq!(kinds(&logout), ["advisor.logout"]);
    assert_eq!(logout[0].time, ms(60, 0));
    // A repeat of the removal gives nothing more.
    assert!(
        events_of(
            &mut t,
            &member("QueueMemberRemoved", &stamp(61, 0), "sales", &off)
        )
        .is_empty()
    );
    // Added paused: the login, then the pause, at the same time.
    let paused = events_of(
        &mut t,
        &member(
            "QueueMemberAdded",
            &stamp(120, 0),
            "billing",
            &[("Paused", "1"), ("PausedReason", "training")],
        ),
    );
    assert_eq!(kinds(&paused), ["advisor.login", "advisor.state"]);
    assert_eq!(paused[0].time, paused[1].time);
}

/// `message` of `member`'s Bob (`PJSIP/1002`) as another member's.
fn as_member(message: AmiMessage, name: &str, interface: &str) -> AmiMessage {
    AmiMessage::parse(
        &message
            .to_wire()
            .replace("MemberName: Bob", &format!("MemberName: {name}"))
            .replace("PJSIP/1002", interface),
    )
    .expect("a message written by `to_wire` parses again")
}

fn carol(event: &str, at: &str, queue: &str, more: &[(&str, &str)]) -> AmiMessage {
    as_member(member(event, at, queue, more), "Carol", "PJSIP/1003")
}

fn status_complete(at: &str) -> AmiMessage {
    with(
        [
            ("Event", "QueueStatusComplete"),
            ("Timestamp", at),
            ("EventList", "Complete"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect(),
        &[],
    )
}

#[test]
fn the_members_listed_at_login_are_logged_in_and_those_gone_meanwhile_out() {
    let mut t = translator();
    // The first login's answer: Bob in two queues, Carol paused in one (static members,
    // logged in before the connector started).
    t.status_requested();
    let off = [("Paused", "0")];
    let bob = events_of(
        &mut t,
        &member("QueueMember", &stamp(0, 0), "billing", &off),
    );
    assert_eq!(kinds(&bob), ["advisor.login"]);
    assert!(events_of(&mut t, &member("QueueMember", &stamp(0, 0), "sales", &off)).is_empty());
    let lunch = [("Paused", "1"), ("PausedReason", "lunch")];
    let carol_in = events_of(
        &mut t,
        &carol("QueueMember", &stamp(0, 0), "billing", &lunch),
    );
    assert_eq!(kinds(&carol_in), ["advisor.login", "advisor.state"]);
    assert_eq!(
        advisor_kind(&carol_in[1]).1,
        &AdvisorEventKind::State(AdvisorStatus::Pause {
            reason: "lunch".to_owned()
        })
    );
    assert!(events_of(&mut t, &status_complete(&stamp(0, 1_000))).is_empty());

    // The connection drops; meanwhile Carol leaves her queue and Bob leaves sales. The next
    // login's answer lists Bob in billing only, unpaused: Carol is logged out, Bob stays.
    // A member added while the answer is being sent is not mistaken for a departed one.
    t.status_requested();
    assert!(
        events_of(
            &mut t,
            &member("QueueMember", &stamp(300, 0), "billing", &off)
        )
        .is_empty()
    );
    let dave = as_member(
        member("QueueMemberAdded", &stamp(300, 0), "support", &off),
        "Dave",
        "PJSIP/1004",
    );
    assert_eq!(kinds(&events_of(&mut t, &dave)), ["advisor.login"]);
    let complete = events_of(&mut t, &status_complete(&stamp(300, 1_000)));
    assert_eq!(kinds(&complete), ["advisor.logout"]);
    assert_eq!(advisor_kind(&complete[0]).0, "1003");
    assert_eq!(complete[0].time, ms(300, 1));
    // Bob's membership of sales is gone too: leaving billing now ends his session.
    let bob_out = events_of(
        &mut t,
        &member("QueueMemberRemoved", &stamp(400, 0), "billing", &off),
    );
    assert_eq!(kinds(&bob_out), ["advisor.logout"]);
    // A QueueStatusComplete this translator did not ask for changes nothing.
    assert!(events_of(&mut t, &status_complete(&stamp(500, 0))).is_empty());
}

#[test]
fn hold_on_an_answered_call_from_either_channel() {
    let mut t = translator();
    events_of(&mut t, &join("4.1", &stamp(0, 0)));
    events_of(
        &mut t,
        &agent("AgentConnect", "4.1", &stamp(5, 0), &[("HoldTime", "5")]),
    );
    // Hold on the member's channel (DestUniqueid of AgentConnect), where a phone's hold
    // request arrives.
    let hold = AmiMessage::new([
        ("Event", "Hold"),
        ("Timestamp", stamp(20, 0).as_str()),
        ("Channel", "PJSIP/1001-00000002"),
        ("Uniqueid", "1772442900.2"),
        ("MusicClass", "default"),
    ]);
    let held = events_of(&mut t, &hold);
    assert_eq!(kinds(&held), ["contact.held"]);
    assert_eq!(contact(&held[0]).contact, "4.1");
    assert_eq!(contact(&held[0]).advisor.as_deref(), Some("a-1001"));
    // Unhold on the caller's channel.
    let unhold = AmiMessage::new([
        ("Event", "Unhold"),
        ("Timestamp", stamp(30, 0).as_str()),
        ("Channel", "PJSIP/trunk-00000001"),
        ("Uniqueid", "4.1"),
    ]);
    assert_eq!(kinds(&events_of(&mut t, &unhold)), ["contact.resumed"]);
    // Hold on a channel no queue call knows: nothing.
    let other = AmiMessage::new([
        ("Event", "Hold"),
        ("Timestamp", "1772442999.0"),
        ("Uniqueid", "77.7"),
    ]);
    assert!(events_of(&mut t, &other).is_empty());
}

#[test]
fn a_blind_transfer_into_a_queue_is_the_entry_there() {
    let mut t = translator();
    events_of(&mut t, &join("5.1", &stamp(0, 0)));
    events_of(
        &mut t,
        &agent("AgentConnect", "5.1", &stamp(5, 0), &[("HoldTime", "5")]),
    );
    let transfer = AmiMessage::new([
        ("Event", "BlindTransfer"),
        ("Timestamp", stamp(60, 0).as_str()),
        ("Result", "Success"),
        ("TransfererChannel", "PJSIP/1001-00000002"),
        ("TransfererUniqueid", "1772442900.2"),
        ("TransfereeChannel", "PJSIP/trunk-00000001"),
        ("TransfereeUniqueid", "5.1"),
        ("IsExternal", "No"),
        ("Context", "from-queue"),
        ("Extension", "600"),
    ]);
    let events = events_of(&mut t, &transfer);
    assert_eq!(kinds(&events), ["contact.transferred", "contact.completed"]);
    assert_eq!(
        contact(&events[0]).kind,
        ContactEventKind::Transferred {
            to_queue: Some("claims".to_owned())
        }
    );
    assert_eq!(events[1].time, ms(75, 0), "the member's wrap-up follows");
    // The member's AgentComplete (Reason: transfer) gives nothing more.
    let complete = agent(
        "AgentComplete",
        "5.1",
        &stamp(60, 1000),
        &[
            ("HoldTime", "5"),
            ("TalkTime", "55"),
            ("Reason", "transfer"),
        ],
    );
    assert!(events_of(&mut t, &complete).is_empty());
    // The join in the new queue was the transfer.
    let mut rejoin = join("5.1", &stamp(60, 0)).fields().to_vec();
    for field in &mut rejoin {
        if field.0 == "Queue" {
            field.1 = "claims".to_owned();
        }
    }
    assert!(events_of(&mut t, &AmiMessage::new(rejoin)).is_empty());
    assert_eq!(t.stats().entries_merged_into_transfers, 1);
}

#[test]
fn an_attended_transfer_by_the_member_who_answered() {
    let mut t = translator();
    events_of(&mut t, &join("6.1", &stamp(0, 0)));
    events_of(
        &mut t,
        &agent("AgentConnect", "6.1", &stamp(5, 0), &[("HoldTime", "5")]),
    );
    let transfer = AmiMessage::new([
        ("Event", "AttendedTransfer"),
        ("Timestamp", stamp(90, 0).as_str()),
        ("Result", "Success"),
        ("OrigTransfererUniqueid", "1772442900.2"),
        ("SecondTransfererUniqueid", "1772442900.9"),
        ("TransfereeUniqueid", "6.1"),
        ("DestType", "Bridge"),
    ]);
    let events = events_of(&mut t, &transfer);
    assert_eq!(kinds(&events), ["contact.transferred", "contact.completed"]);
    assert_eq!(
        contact(&events[0]).kind,
        ContactEventKind::Transferred { to_queue: None }
    );
    let failed = AmiMessage::new([
        ("Event", "AttendedTransfer"),
        ("Timestamp", stamp(91, 0).as_str()),
        ("Result", "Fail"),
        ("TransfereeUniqueid", "6.1"),
    ]);
    assert!(events_of(&mut t, &failed).is_empty());
}

#[test]
fn a_repeated_event_gives_the_same_events_and_ids() {
    let messages = [
        join("7.1", &stamp(0, 0)),
        agent("AgentConnect", "7.1", &stamp(5, 0), &[("HoldTime", "5")]),
        agent(
            "AgentComplete",
            "7.1",
            &stamp(50, 0),
            &[("Reason", "agent")],
        ),
    ];
    let mut once = translator();
    let first: Vec<Event> = messages
        .iter()
        .flat_map(|m| events_of(&mut once, m))
        .collect();
    let mut twice = translator();
    let mut again = Vec::new();
    for message in &messages {
        again.extend(events_of(&mut twice, message));
        again.extend(events_of(&mut twice, message));
    }
    let ids: BTreeSet<&str> = again.iter().map(|e| e.id.as_str()).collect();
    let first_ids: BTreeSet<&str> = first.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, first_ids, "a replayed event dedupes by id");
    // The same events from another site are other events.
    let mut lyon = AmiConfig::new("lyon").build().unwrap();
    let other = events_of(&mut lyon, &messages[0]);
    assert_ne!(other[0].id, first[0].id);
}

#[test]
fn without_timestamp_the_arrival_time_is_used() {
    let mut t = translator();
    let mut fields = join("8.1", "x").fields().to_vec();
    fields.retain(|(k, _)| k != "Timestamp");
    let message = AmiMessage::new(fields);
    let events = events_of(&mut t, &message);
    assert_eq!(events[0].time, NOW);
    assert_eq!(t.stats().without_timestamp, 1);
    // The arrival time is part of the id: the same event received later is another one.
    let later = t.translate(&message, Timestamp(NOW.0 + 1)).unwrap();
    let AmiOutcome::Events(later) = later else {
        panic!("events expected")
    };
    assert_ne!(later[0].id, events[0].id);
}

#[test]
fn malformed_events_are_reported_and_counted() {
    let mut t = translator();
    let no_uniqueid = AmiMessage::new([
        ("Event", "QueueCallerJoin"),
        ("Queue", "billing"),
        ("Timestamp", "1772442900.0"),
    ]);
    assert_eq!(
        t.translate(&no_uniqueid, NOW),
        Err(AmiProblem::MissingField {
            event: "QueueCallerJoin".to_owned(),
            field: "Uniqueid"
        })
    );
    let bad_time = join("1.1", "yesterday");
    assert!(matches!(
        t.translate(&bad_time, NOW),
        Err(AmiProblem::BadTimestamp(_))
    ));
    let bad_hold = agent("AgentConnect", "1.1", &stamp(1, 0), &[("HoldTime", "-3")]);
    assert!(matches!(
        t.translate(&bad_hold, NOW),
        Err(AmiProblem::BadNumber {
            field: "HoldTime",
            ..
        })
    ));
    let bad_paused = member(
        "QueueMemberPause",
        &stamp(1, 0),
        "billing",
        &[("Paused", "maybe")],
    );
    assert!(matches!(
        t.translate(&bad_paused, NOW),
        Err(AmiProblem::BadNumber {
            field: "Paused",
            ..
        })
    ));
    let control = join("1\t1", &stamp(1, 0));
    assert!(matches!(
        t.translate(&control, NOW),
        Err(AmiProblem::InvalidIdentifier {
            field: "Uniqueid",
            ..
        })
    ));
    assert_eq!(t.stats().malformed, 5);
    assert_eq!(t.stats().events, 0);
    let response = AmiMessage::new([
        ("Response", "Success"),
        ("Message", "Authentication accepted"),
    ]);
    assert_eq!(t.translate(&response, NOW), Ok(AmiOutcome::NotAnEvent));
}

#[test]
fn timestamps_are_read_to_the_millisecond() {
    assert_eq!(
        parse_ami_timestamp("1772442900.123456"),
        Ok(Timestamp(1_772_442_900_123))
    );
    assert_eq!(
        parse_ami_timestamp("1772442900.5"),
        Ok(Timestamp(1_772_442_900_500))
    );
    assert_eq!(
        parse_ami_timestamp("1772442900"),
        Ok(Timestamp(1_772_442_900_000))
    );
    for bad in [
        "",
        ".5",
        "-1.0",
        "1e9",
        "17724429OO.0",
        "1772442900.12a",
        "99999999999999",
    ] {
        assert!(parse_ami_timestamp(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn the_framer_cuts_banner_and_messages_across_reads() {
    let wire = "Asterisk Call Manager/9.0.0\r\nResponse: Success\r\nActionID: 1\r\nMessage: Authentication accepted\r\n\r\nEvent: QueueCallerJoin\r\nUniqueID: 1.1\r\nQueue: billing\r\n\r\n";
    // Fed one byte at a time, the frames are the same.
    let mut framer = AmiFramer::new();
    let mut frames = Vec::new();
    for byte in wire.as_bytes() {
        framer.push(&[*byte]);
        while let Some(frame) = framer.next_frame() {
            frames.push(frame.unwrap());
        }
    }
    assert_eq!(frames.len(), 3);
    assert_eq!(
        frames[0],
        AmiFrame::Banner("Asterisk Call Manager/9.0.0".to_owned())
    );
    let AmiFrame::Message(response) = &frames[1] else {
        panic!()
    };
    assert_eq!(response.response(), Some("Success"));
    assert_eq!(
        response.get("actionid"),
        Some("1"),
        "keys regardless of case"
    );
    let AmiFrame::Message(event) = &frames[2] else {
        panic!()
    };
    assert_eq!(event.event(), Some("QueueCallerJoin"));
    assert_eq!(event.get("Uniqueid"), Some("1.1"));
    assert_eq!(framer.pending_bytes(), 0);
    // A message cut by a lost connection stays pending.
    framer.push(b"Event: Hold\r\nUniq");
    assert!(framer.next_frame().is_none());
    assert!(framer.pending_bytes() > 0);
}

#[test]
fn the_framer_reports_malformed_and_overlong_messages_then_goes_on() {
    let mut framer = AmiFramer::new();
    framer.push(b"Event: Hold\nthis is not a field\n\nEvent: Unhold\nUniqueid: 1.1\n\n");
    assert!(matches!(
        framer.next_frame(),
        Some(Err(AmiProblem::NotAField(_)))
    ));
    let Some(Ok(AmiFrame::Message(next))) = framer.next_frame() else {
        panic!("the next message is read")
    };
    assert_eq!(next.event(), Some("Unhold"));
    let long = format!(
        "Event: Hold\r\nData: {}\r\n\r\nEvent: Unhold\r\n\r\n",
        "x".repeat(MAX_MESSAGE_BYTES)
    );
    framer.push(long.as_bytes());
    assert!(matches!(
        framer.next_frame(),
        Some(Err(AmiProblem::TooLong { .. }))
    ));
    let Some(Ok(AmiFrame::Message(after))) = framer.next_frame() else {
        panic!("the message after the long one is read")
    };
    assert_eq!(after.event(), Some("Unhold"));
    assert!(framer.next_frame().is_none());
}

#[test]
fn messages_write_and_read_back() {
    let login = AmiMessage::new([
        ("Action", "Login"),
        ("Username", "vigie"),
        ("Secret", "s"),
        ("Events", "on"),
    ]);
    assert_eq!(
        login.to_wire(),
        "Action: Login\r\nUsername: vigie\r\nSecret: s\r\nEvents: on\r\n\r\n"
    );
    let mut framer = AmiFramer::new();
    framer.push(login.to_wire().as_bytes());
    assert_eq!(
        framer.next_frame(),
        Some(Ok(AmiFrame::Message(login.clone())))
    );
    assert_eq!(
        login.to_string(),
        "message (Action, Username, Secret, Events)"
    );
}

#[test]
fn settings_shared_with_queue_log_and_errors_reported_at_once() {
    let mut queue_log = QueueLogConfig::new("paris");
    queue_log
        .advisors
        .insert("PJSIP/1001".to_owned(), "a-1".to_owned());
    let ami = AmiConfig::from_queue_log(&queue_log);
    assert_eq!(ami.site, "paris");
    assert_eq!(ami.advisors, queue_log.advisors);
    let mut bad = AmiConfig::new(" ");
    bad.queues.insert(
        "billing".to_owned(),
        QueueLogQueueConfig {
            wrapuptime: Duration::from_secs(7200),
        },
    );
    let errors = bad.build().unwrap_err();
    let fields: Vec<&str> = errors.0.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(fields, ["site", "queues.\"billing\".wrapuptime"]);
}
