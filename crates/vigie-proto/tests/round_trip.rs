//! Properties of the protobuf form: core -> protobuf -> bytes -> core is the identity, the
//! protobuf decoder accepts and rejects exactly what the JSON decoder does, and no bytes make
//! it panic.

use proptest::prelude::*;
use prost::Message;
use serde_json::{Map, Value};
use vigie_core::{
    AdvisorEvent, AdvisorEventKind, AdvisorStatus, Channel, ContactEvent, ContactEventKind,
    DEFAULT_MAX_EVENT_BYTES, DequeueReason, Event, EventBody, Timestamp, decode_json,
};
use vigie_proto::{decode_protobuf, encode_protobuf, v1};

/// 0001-01-01T00:00:00.000Z and 9999-12-31T23:59:59.999Z, the range both forms can carry.
const MIN_MILLIS: i64 = -62_135_596_800_000;
const MAX_MILLIS: i64 = 253_402_300_799_999;

fn id() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z0-9][a-z0-9._:-]{0,15}",
        1 => "\\PC{1,24}".prop_filter("an id is not blank", |text| !text.trim().is_empty()),
        1 => Just("x".repeat(256)),
    ]
}

fn time() -> impl Strategy<Value = Timestamp> {
    prop_oneof![
        3 => (1_700_000_000_000i64..1_900_000_000_000).prop_map(Timestamp),
        1 => (MIN_MILLIS..=MAX_MILLIS).prop_map(Timestamp),
        1 => prop_oneof![Just(MIN_MILLIS), Just(MAX_MILLIS), Just(-1), Just(0)].prop_map(Timestamp),
    ]
}

fn channel() -> impl Strategy<Value = Channel> {
    proptest::sample::select(Channel::ALL)
}

fn contact_kind() -> impl Strategy<Value = ContactEventKind> {
    prop_oneof![
        Just(ContactEventKind::Offered),
        Just(ContactEventKind::Missed),
        Just(ContactEventKind::Answered),
        Just(ContactEventKind::Held),
        Just(ContactEventKind::Resumed),
        proptest::option::of(id()).prop_map(|to_queue| ContactEventKind::Transferred { to_queue }),
        Just(ContactEventKind::Abandoned),
        proptest::sample::select(DequeueReason::ALL)
            .prop_map(|reason| ContactEventKind::Dequeued { reason }),
        Just(ContactEventKind::Ended),
        (
            proptest::option::of(id()),
            proptest::option::of(any::<bool>())
        )
            .prop_map(|(disposition, resolved)| ContactEventKind::Completed {
                disposition,
                resolved
            }),
    ]
}

fn contact_event() -> impl Strategy<Value = ContactEvent> {
    let queued = (id(), id(), channel(), proptest::option::of(id())).prop_map(
        |(contact, queue, channel, advisor)| ContactEvent {
            contact,
            kind: ContactEventKind::Queued,
            queue: Some(queue),
            channel: Some(channel),
            advisor,
        },
    );
    let other = (
        id(),
        contact_kind(),
        proptest::option::of(id()),
        proptest::option::of(channel()),
        id(),
        any::<bool>(),
    )
        .prop_map(|(contact, kind, queue, channel, advisor, with_advisor)| {
            let advisor_required = matches!(
                kind,
                ContactEventKind::Offered | ContactEventKind::Missed | ContactEventKind::Answered
            );
            ContactEvent {
                contact,
                kind,
                queue,
                channel,
                advisor: (advisor_required || with_advisor).then_some(advisor),
            }
        });
    prop_oneof![1 => queued, 4 => other]
}

fn advisor_event() -> impl Strategy<Value = AdvisorEvent> {
    let kind = prop_oneof![
        (proptest::option::of(id()), proptest::option::of(id()))
            .prop_map(|(team, name)| AdvisorEventKind::Login { team, name }),
        Just(AdvisorEventKind::Logout),
        Just(AdvisorEventKind::State(AdvisorStatus::Available)),
        prop_oneof![
            Just("unspecified".to_owned()),
            Just("lunch".to_owned()),
            id()
        ]
        .prop_map(|reason| AdvisorEventKind::State(AdvisorStatus::Pause { reason })),
    ];
    (id(), kind).prop_map(|(advisor, kind)| AdvisorEvent { advisor, kind })
}

fn event() -> impl Strategy<Value = Event> {
    let body = prop_oneof![
        3 => contact_event().prop_map(EventBody::Contact),
        1 => advisor_event().prop_map(EventBody::Advisor),
    ];
    (id(), time(), id(), body).prop_map(|(id, time, site, body)| Event {
        id,
        time,
        site,
        body,
    })
}

/// Strings of every kind the rules tell apart, mostly valid so that later checks are reached.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        24 => "[a-z0-9]{1,8}",
        4 => proptest::sample::select(vec!["voicemail", "callback", "timeout", "closed"])
            .prop_map(str::to_owned),
        1 => Just(String::new()),
        1 => Just("  ".to_owned()),
        1 => Just("a\nb".to_owned()),
        1 => Just("y".repeat(257)),
    ]
}

fn maybe_text() -> impl Strategy<Value = Option<String>> {
    proptest::option::weighted(0.7, text())
}

fn enum_value(known: i32) -> impl Strategy<Value = i32> {
    prop_oneof![
        2 => Just(0),
        16 => 1..=known,
        1 => prop_oneof![known + 1..100, Just(-1)],
    ]
}

/// Any `vigie.v1.Event`, valid or not, with times a JSON producer can also write.
fn proto_event() -> impl Strategy<Value = v1::Event> {
    let envelope = (
        enum_value(14),
        text(),
        proptest::option::weighted(
            0.95,
            prop_oneof![
                16 => (MIN_MILLIS / 1000..=MAX_MILLIS / 1000, 0..1_000_000_000i32),
                1 => (0i64..10, prop_oneof![Just(-1), Just(1_000_000_000)]),
            ],
        ),
        text(),
    );
    let strings = (
        proptest::option::weighted(0.95, text()),
        maybe_text(),
        maybe_text(),
        maybe_text(),
        maybe_text(),
        maybe_text(),
        maybe_text(),
        maybe_text(),
    );
    let others = (
        enum_value(6),
        enum_value(2),
        proptest::option::of(any::<bool>()),
    );
    (envelope, strings, others).prop_map(
        |(
            (r#type, id, time, site),
            (contact, queue, advisor, to_queue, reason, disposition, team, name),
            (channel, state, resolved),
        )| v1::Event {
            id,
            r#type,
            time: time.map(|(seconds, nanos)| prost_types::Timestamp { seconds, nanos }),
            site,
            contact,
            queue,
            channel,
            advisor,
            to_queue,
            reason,
            disposition,
            resolved,
            team,
            name,
            state,
        },
    )
}

/// What a JSON producer writes to say what `event` says.
fn as_json(event: &v1::Event) -> String {
    let mut map = Map::new();
    let mut put = |key: &str, value: Option<Value>| {
        if let Some(value) = value {
            map.insert(key.to_owned(), value);
        }
    };
    let string = |text: &Option<String>| text.clone().map(Value::String);
    let nonempty = |text: &String| (!text.is_empty()).then(|| Value::String(text.clone()));
    put(
        "type",
        match v1::EventType::try_from(event.r#type) {
            Ok(known) => known.contract_name().map(Value::from),
            Err(_) => Some(Value::from(format!("contact.unknown{}", event.r#type))),
        },
    );
    put("id", nonempty(&event.id));
    put(
        "time",
        event.time.map(|time| {
            if (0..1_000_000_000).contains(&time.nanos) {
                let millis = time.seconds * 1000 + i64::from(time.nanos / 1_000_000);
                Value::from(Timestamp(millis).to_string())
            } else {
                Value::from("not a time")
            }
        }),
    );
    put("site", nonempty(&event.site));
    put("contact", string(&event.contact));
    put("queue", string(&event.queue));
    put(
        "channel",
        match v1::Channel::try_from(event.channel) {
            Ok(known) => known.to_core().map(|channel| Value::from(channel.as_str())),
            Err(_) => Some(Value::from(format!("channel{}", event.channel))),
        },
    );
    put("advisor", string(&event.advisor));
    put("to_queue", string(&event.to_queue));
    put("reason", string(&event.reason));
    put("disposition", string(&event.disposition));
    put("resolved", event.resolved.map(Value::Bool));
    put("team", string(&event.team));
    put("name", string(&event.name));
    put(
        "state",
        match event.state {
            0 => None,
            1 => Some(Value::from("available")),
            2 => Some(Value::from("pause")),
            other => Some(Value::from(format!("state{other}"))),
        },
    );
    Value::Object(map).to_string()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn core_to_protobuf_to_bytes_to_core_is_the_identity(event in event()) {
        let bytes = encode_protobuf(&event);
        prop_assert_eq!(decode_protobuf(&bytes, DEFAULT_MAX_EVENT_BYTES), Ok(event.clone()));
        // The generated events are valid contract events: JSON agrees.
        prop_assert_eq!(decode_json(event.to_json().as_bytes(), DEFAULT_MAX_EVENT_BYTES), Ok(event));
    }

    #[test]
    fn protobuf_and_json_accept_and_reject_alike(event in proto_event()) {
        let json = as_json(&event);
        let from_json = decode_json(json.as_bytes(), DEFAULT_MAX_EVENT_BYTES);
        let from_protobuf = decode_protobuf(&event.encode_to_vec(), DEFAULT_MAX_EVENT_BYTES);
        match (&from_json, &from_protobuf) {
            (Ok(json_event), Ok(proto_event)) => prop_assert_eq!(json_event, proto_event),
            (Err(json_rejection), Err(proto_rejection)) => {
                prop_assert_eq!(json_rejection.reason, proto_rejection.reason, "{} / {}", json_rejection, proto_rejection);
                prop_assert_eq!(json_rejection.field, proto_rejection.field, "{} / {}", json_rejection, proto_rejection);
            }
            _ => prop_assert!(false, "{json}: JSON {from_json:?}, protobuf {from_protobuf:?}"),
        }
    }

    #[test]
    fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_protobuf(&bytes, DEFAULT_MAX_EVENT_BYTES);
    }

    #[test]
    fn never_panics_on_mutated_events(event in event(), cut in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut bytes = encode_protobuf(&event);
        let at = cut.index(bytes.len());
        bytes[at] = byte;
        let _ = decode_protobuf(&bytes, DEFAULT_MAX_EVENT_BYTES);
        bytes.truncate(at);
        let _ = decode_protobuf(&bytes, DEFAULT_MAX_EVENT_BYTES);
    }
}

#[test]
fn the_encoding_is_the_generated_message() {
    let event = decode_json(
        br#"{"id":"e1","type":"advisor.state","time":"2026-03-02T09:15:00.250+01:00","site":"paris","advisor":"a1","state":"pause","reason":"lunch"}"#,
        DEFAULT_MAX_EVENT_BYTES,
    )
    .unwrap();
    let proto = v1::Event::decode(encode_protobuf(&event).as_slice()).unwrap();
    assert_eq!(
        proto,
        v1::Event {
            id: "e1".into(),
            r#type: v1::EventType::AdvisorState.into(),
            time: Some(prost_types::Timestamp {
                seconds: 1_772_439_300,
                nanos: 250_000_000,
            }),
            site: "paris".into(),
            advisor: Some("a1".into()),
            state: v1::AdvisorState::Pause.into(),
            reason: Some("lunch".into()),
            ..v1::Event::default()
        }
    );
    assert_eq!(Event::try_from(&proto), Ok(event.clone()));
    assert_eq!(Event::try_from(proto), Ok(event));
}

#[test]
fn a_batch_carries_events_in_order() {
    let lines = [
        r#"{"id":"e1","type":"contact.queued","time":"2026-03-02T09:15:00+01:00","site":"paris","contact":"c1","queue":"billing","channel":"voice"}"#,
        r#"{"id":"e2","type":"contact.answered","time":"2026-03-02T09:15:12+01:00","site":"paris","contact":"c1","advisor":"a1"}"#,
    ];
    let events: Vec<Event> = lines
        .iter()
        .map(|line| decode_json(line.as_bytes(), DEFAULT_MAX_EVENT_BYTES).unwrap())
        .collect();
    let batch = v1::EventBatch {
        events: events.iter().map(v1::Event::from).collect(),
    };
    let decoded = v1::EventBatch::decode(batch.encode_to_vec().as_slice()).unwrap();
    let back: Vec<Event> = decoded
        .events
        .into_iter()
        .map(|event| Event::try_from(event).unwrap())
        .collect();
    assert_eq!(back, events);
}
