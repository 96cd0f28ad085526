//! Decoding the protobuf form of the contract into core [`Event`]s, with the rejections of the
//! JSON decoder. Never panics, whatever the bytes.
//!
//! The checks run in the order of `vigie_core::decode` (type, id, time, site, then the fields
//! of the event type in the same sequence), so that an event wrong in several ways is
//! rejected for the same field in both forms.

use prost::Message;
use vigie_core::decode::MAX_ID_BYTES;
use vigie_core::event::UNSPECIFIED_PAUSE_REASON;
use vigie_core::{
    AdvisorEvent, AdvisorEventKind, AdvisorStatus, Channel, ContactEvent, ContactEventKind,
    DequeueReason, Event, EventBody, RejectReason, Rejection, Timestamp,
};

use crate::v1;

/// The earliest instant a `google.protobuf.Timestamp` may hold: 0001-01-01T00:00:00Z.
const MIN_TIMESTAMP_SECONDS: i64 = -62_135_596_800;
/// The latest second a `google.protobuf.Timestamp` may hold: 9999-12-31T23:59:59Z.
const MAX_TIMESTAMP_SECONDS: i64 = 253_402_300_799;

/// Decodes one protobuf `vigie.v1.Event` (the payload of a NATS message sent with
/// `Content-Type: application/protobuf`) and validates it like [`vigie_core::decode_json`].
///
/// Bytes that are not a protobuf `Event` are rejected as
/// [`RejectReason::MalformedProtobuf`] with a detail starting "not a valid protobuf Event:".
pub fn decode_protobuf(bytes: &[u8], max_bytes: usize) -> Result<Event, Rejection> {
    if bytes.len() > max_bytes {
        return Err(Rejection::new(
            RejectReason::TooLarge,
            format!("event is {} bytes, the maximum is {max_bytes}", bytes.len()),
        ));
    }
    let event = v1::Event::decode(bytes).map_err(|error| {
        Rejection::new(
            RejectReason::MalformedProtobuf,
            format!("not a valid protobuf Event: {error}"),
        )
    })?;
    Event::try_from(event)
}

/// Validates a protobuf event with the rules of the JSON contract.
impl TryFrom<v1::Event> for Event {
    type Error = Rejection;

    fn try_from(mut event: v1::Event) -> Result<Event, Rejection> {
        let (event_type, type_name) = known_type(event.r#type)?;
        let id = required_envelope_id(std::mem::take(&mut event.id), "id", type_name)?;
        let time = timestamp(event.time.take(), type_name)?;
        let site = required_envelope_id(std::mem::take(&mut event.site), "site", type_name)?;
        let body = match event_type {
            v1::EventType::AdvisorLogin
            | v1::EventType::AdvisorLogout
            | v1::EventType::AdvisorState => {
                EventBody::Advisor(advisor_event(event_type, type_name, event)?)
            }
            _ => EventBody::Contact(contact_event(event_type, type_name, event)?),
        };
        Ok(Event {
            id,
            time,
            site,
            body,
        })
    }
}

/// Validates a protobuf event with the rules of the JSON contract (clones its strings).
impl TryFrom<&v1::Event> for Event {
    type Error = Rejection;

    fn try_from(event: &v1::Event) -> Result<Event, Rejection> {
        Event::try_from(event.clone())
    }
}

/// The event type and its contract spelling; unspecified is a missing type.
fn known_type(value: i32) -> Result<(v1::EventType, &'static str), Rejection> {
    let known = v1::EventType::try_from(value)
        .ok()
        .and_then(|known| Some((known, known.contract_name()?)));
    match known {
        Some(known) => Ok(known),
        None if value == v1::EventType::Unspecified as i32 => Err(missing("type", "the event")),
        None => Err(Rejection::field(
            RejectReason::UnknownType,
            "type",
            format!(
                "unknown event type {value} (not a vigie.v1.EventType value); expected one of {}",
                expected_types()
            ),
        )),
    }
}

/// `1 (contact.queued), 2 (contact.offered), ...`
fn expected_types() -> String {
    v1::EventType::KNOWN
        .iter()
        .filter_map(|&known| Some(format!("{} ({})", known as i32, known.contract_name()?)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn contact_event(
    event_type: v1::EventType,
    type_name: &str,
    event: v1::Event,
) -> Result<ContactEvent, Rejection> {
    let contact = required_id(event.contact, "contact", type_name)?;
    let kind = match event_type {
        v1::EventType::ContactQueued => ContactEventKind::Queued,
        v1::EventType::ContactOffered => ContactEventKind::Offered,
        v1::EventType::ContactMissed => ContactEventKind::Missed,
        v1::EventType::ContactAnswered => ContactEventKind::Answered,
        v1::EventType::ContactHeld => ContactEventKind::Held,
        v1::EventType::ContactResumed => ContactEventKind::Resumed,
        v1::EventType::ContactTransferred => ContactEventKind::Transferred {
            to_queue: optional_id(event.to_queue, "to_queue")?,
        },
        v1::EventType::ContactAbandoned => ContactEventKind::Abandoned,
        v1::EventType::ContactDequeued => {
            let text = event.reason.ok_or_else(|| missing("reason", type_name))?;
            let reason = DequeueReason::parse(&text).ok_or_else(|| {
                Rejection::field(
                    RejectReason::InvalidField,
                    "reason",
                    format!(
                        "{text:?} is not a dequeue reason; expected one of {}",
                        DequeueReason::expected()
                    ),
                )
            })?;
            ContactEventKind::Dequeued { reason }
        }
        v1::EventType::ContactEnded => ContactEventKind::Ended,
        _ => ContactEventKind::Completed {
            disposition: optional_id(event.disposition, "disposition")?,
            resolved: event.resolved,
        },
    };
    let queue = if kind == ContactEventKind::Queued {
        Some(required_id(event.queue, "queue", type_name)?)
    } else {
        optional_id(event.queue, "queue")?
    };
    let channel = match channel(event.channel)? {
        Some(channel) => Some(channel),
        None if kind == ContactEventKind::Queued => return Err(missing("channel", type_name)),
        None => None,
    };
    let advisor_required = matches!(
        kind,
        ContactEventKind::Offered | ContactEventKind::Missed | ContactEventKind::Answered
    );
    let advisor = if advisor_required {
        Some(required_id(event.advisor, "advisor", type_name)?)
    } else {
        optional_id(event.advisor, "advisor")?
    };
    Ok(ContactEvent {
        contact,
        kind,
        queue,
        channel,
        advisor,
    })
}

fn advisor_event(
    event_type: v1::EventType,
    type_name: &str,
    event: v1::Event,
) -> Result<AdvisorEvent, Rejection> {
    let advisor = required_id(event.advisor, "advisor", type_name)?;
    let kind = match event_type {
        v1::EventType::AdvisorLogin => AdvisorEventKind::Login {
            team: optional_id(event.team, "team")?,
            // Checked like an identifier, as in JSON: it reaches the views.
            name: optional_id(event.name, "name")?,
        },
        v1::EventType::AdvisorLogout => AdvisorEventKind::Logout,
        _ => match v1::AdvisorState::try_from(event.state) {
            Ok(v1::AdvisorState::Unspecified) => return Err(missing("state", type_name)),
            Ok(v1::AdvisorState::Available) => AdvisorEventKind::State(AdvisorStatus::Available),
            Ok(v1::AdvisorState::Pause) => AdvisorEventKind::State(AdvisorStatus::Pause {
                reason: optional_id(event.reason, "reason")?
                    .unwrap_or_else(|| UNSPECIFIED_PAUSE_REASON.to_owned()),
            }),
            Err(_) => {
                return Err(Rejection::field(
                    RejectReason::InvalidField,
                    "state",
                    format!(
                        "{} is not an advisor state; expected {} (available) or {} (pause)",
                        event.state,
                        v1::AdvisorState::Available as i32,
                        v1::AdvisorState::Pause as i32,
                    ),
                ));
            }
        },
    };
    Ok(AdvisorEvent { advisor, kind })
}

/// The channel, `None` when unspecified (absent).
fn channel(value: i32) -> Result<Option<Channel>, Rejection> {
    match v1::Channel::try_from(value) {
        Ok(channel) => Ok(channel.to_core()),
        Err(_) => Err(Rejection::field(
            RejectReason::InvalidField,
            "channel",
            format!(
                "{value} is not a channel; expected one of {}",
                Channel::ALL
                    .iter()
                    .map(|&channel| format!("{} ({channel})", v1::Channel::from(channel) as i32))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

fn timestamp(
    time: Option<prost_types::Timestamp>,
    type_name: &str,
) -> Result<Timestamp, Rejection> {
    let time = time.ok_or_else(|| missing("time", type_name))?;
    if !(MIN_TIMESTAMP_SECONDS..=MAX_TIMESTAMP_SECONDS).contains(&time.seconds) {
        return Err(Rejection::field(
            RejectReason::InvalidField,
            "time",
            format!(
                "{} seconds is outside the range of google.protobuf.Timestamp \
                 (0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z)",
                time.seconds
            ),
        ));
    }
    if !(0..1_000_000_000).contains(&time.nanos) {
        return Err(Rejection::field(
            RejectReason::InvalidField,
            "time",
            format!(
                "nanos {} is outside 0 to 999999999, as google.protobuf.Timestamp requires",
                time.nanos
            ),
        ));
    }
    // Within the range above the product cannot overflow; finer digits are truncated as in
    // RFC 3339 parsing (seconds are floored and nanos are positive, so this is a floor too).
    Ok(Timestamp(
        time.seconds * 1000 + i64::from(time.nanos / 1_000_000),
    ))
}

fn missing(field: &'static str, type_name: &str) -> Rejection {
    Rejection::field(
        RejectReason::MissingField,
        field,
        format!("field {field:?} is required for {type_name}"),
    )
}

/// The identifier checks of the JSON decoder, with the same messages.
fn check_id(text: &str, field: &'static str) -> Result<(), Rejection> {
    if text.trim().is_empty() {
        return Err(Rejection::field(
            RejectReason::InvalidField,
            field,
            format!("field {field:?} must not be empty"),
        ));
    }
    if text.len() > MAX_ID_BYTES {
        return Err(Rejection::field(
            RejectReason::InvalidField,
            field,
            format!(
                "field {field:?} is {} bytes long, the maximum is {MAX_ID_BYTES}",
                text.len()
            ),
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(Rejection::field(
            RejectReason::InvalidField,
            field,
            format!("field {field:?} must not contain control characters"),
        ));
    }
    Ok(())
}

fn optional_id(text: Option<String>, field: &'static str) -> Result<Option<String>, Rejection> {
    if let Some(text) = &text {
        check_id(text, field)?;
    }
    Ok(text)
}

fn required_id(
    text: Option<String>,
    field: &'static str,
    type_name: &str,
) -> Result<String, Rejection> {
    optional_id(text, field)?.ok_or_else(|| missing(field, type_name))
}

/// An envelope string (`id`, `site`) has no presence in proto3: empty means absent.
fn required_envelope_id(
    text: String,
    field: &'static str,
    type_name: &str,
) -> Result<String, Rejection> {
    if text.is_empty() {
        return Err(Rejection::field(
            RejectReason::MissingField,
            field,
            format!("field {field:?} is required for {type_name} (it is empty or not set)"),
        ));
    }
    check_id(&text, field)?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use prost::Message;
    use vigie_core::DEFAULT_MAX_EVENT_BYTES;

    use super::*;

    /// 2026-03-02T08:15:00.250Z
    fn time() -> Option<prost_types::Timestamp> {
        Some(prost_types::Timestamp {
            seconds: 1_772_439_300,
            nanos: 250_000_000,
        })
    }

    fn base(event_type: v1::EventType) -> v1::Event {
        v1::Event {
            id: "e1".into(),
            r#type: event_type.into(),
            time: time(),
            site: "paris".into(),
            ..v1::Event::default()
        }
    }

    fn queued() -> v1::Event {
        v1::Event {
            contact: Some("c1".into()),
            queue: Some("billing".into()),
            channel: v1::Channel::Voice.into(),
            ..base(v1::EventType::ContactQueued)
        }
    }

    fn contact(event_type: v1::EventType) -> v1::Event {
        v1::Event {
            contact: Some("c1".into()),
            advisor: Some("a1".into()),
            reason: Some("voicemail".into()),
            ..base(event_type)
        }
    }

    fn advisor(event_type: v1::EventType) -> v1::Event {
        v1::Event {
            advisor: Some("a1".into()),
            state: v1::AdvisorState::Pause.into(),
            ..base(event_type)
        }
    }

    fn decode(event: &v1::Event) -> Result<Event, Rejection> {
        decode_protobuf(&event.encode_to_vec(), DEFAULT_MAX_EVENT_BYTES)
    }

    fn rejected(event: &v1::Event) -> Rejection {
        decode(event).expect_err("must be rejected")
    }

    fn assert_rejected(event: &v1::Event, reason: RejectReason, field: &str, hint: &str) {
        let rejection = rejected(event);
        assert_eq!(rejection.reason, reason, "{event:?}: {rejection}");
        assert_eq!(rejection.field, Some(field), "{event:?}: {rejection}");
        assert!(
            rejection.detail.contains(hint),
            "{:?} lacks {hint:?}",
            rejection.detail
        );
    }

    #[test]
    fn decodes_a_queued_contact() {
        let event = decode(&queued()).unwrap();
        assert_eq!(event.id, "e1");
        assert_eq!(event.site, "paris");
        assert_eq!(
            event.time,
            Timestamp::parse_rfc3339("2026-03-02T09:15:00.250+01:00").unwrap()
        );
        assert_eq!(
            event.body,
            EventBody::Contact(ContactEvent {
                contact: "c1".into(),
                kind: ContactEventKind::Queued,
                queue: Some("billing".into()),
                channel: Some(Channel::Voice),
                advisor: None,
            })
        );
    }

    #[test]
    fn decodes_every_type() {
        for event_type in v1::EventType::KNOWN {
            let event = match event_type {
                v1::EventType::ContactQueued => queued(),
                v1::EventType::AdvisorLogin
                | v1::EventType::AdvisorLogout
                | v1::EventType::AdvisorState => advisor(event_type),
                _ => contact(event_type),
            };
            let decoded = decode(&event).unwrap_or_else(|r| panic!("{event_type:?}: {r}"));
            assert_eq!(Some(decoded.type_name()), event_type.contract_name());
        }
    }

    #[test]
    fn a_pause_without_reason_is_unspecified() {
        let event = decode(&advisor(v1::EventType::AdvisorState)).unwrap();
        assert_eq!(
            event.body,
            EventBody::Advisor(AdvisorEvent {
                advisor: "a1".into(),
                kind: AdvisorEventKind::State(AdvisorStatus::Pause {
                    reason: "unspecified".into()
                }),
            })
        );
    }

    #[test]
    fn ignores_unknown_fields_and_fields_of_other_types() {
        let mut bytes = queued().encode_to_vec();
        // Field 100, length-delimited, 3 bytes: a field a later version could add.
        bytes.extend_from_slice(&[0xa2, 0x06, 0x03, b'a', b'b', b'c']);
        assert!(decode_protobuf(&bytes, DEFAULT_MAX_EVENT_BYTES).is_ok());

        // Not read for contact.queued, so not checked, as in JSON.
        let with_others = v1::Event {
            to_queue: Some(String::new()),
            reason: Some("\n".into()),
            disposition: Some(String::new()),
            team: Some(String::new()),
            state: 99,
            ..queued()
        };
        assert_eq!(decode(&with_others).unwrap(), decode(&queued()).unwrap());
        let available = v1::Event {
            state: v1::AdvisorState::Available.into(),
            reason: Some(String::new()),
            contact: Some(String::new()),
            channel: 42,
            ..advisor(v1::EventType::AdvisorState)
        };
        assert!(decode(&available).is_ok());
    }

    #[test]
    fn rejects_oversized_events() {
        let bytes = queued().encode_to_vec();
        let rejection = decode_protobuf(&bytes, bytes.len() - 1).unwrap_err();
        assert_eq!(rejection.reason, RejectReason::TooLarge);
        assert!(rejection.detail.contains(&format!("{}", bytes.len() - 1)));
        assert!(decode_protobuf(&bytes, bytes.len()).is_ok());
    }

    #[test]
    fn rejects_bytes_that_are_not_a_protobuf_event() {
        let cases: [&[u8]; 5] = [
            // A tag whose varint never ends.
            &[0xff],
            // Field 1 with wire type 7, which does not exist.
            &[0x0f],
            // Field 1 (id), 1 byte long, not UTF-8.
            &[0x0a, 0x01, 0xff],
            // Field 2 (type, a varint) sent length-delimited.
            &[0x12, 0x00],
            // Field 1 announcing 10 bytes, holding 2.
            &[0x0a, 0x0a, b'e', b'1'],
        ];
        for bytes in cases {
            let rejection = decode_protobuf(bytes, DEFAULT_MAX_EVENT_BYTES).unwrap_err();
            assert_eq!(
                rejection.reason,
                RejectReason::MalformedProtobuf,
                "{bytes:?}"
            );
            assert_eq!(rejection.field, None);
            assert!(
                rejection.detail.starts_with("not a valid protobuf Event:"),
                "{}",
                rejection.detail
            );
        }
    }

    #[test]
    fn an_empty_payload_is_an_event_without_type() {
        let rejection = decode_protobuf(&[], DEFAULT_MAX_EVENT_BYTES).unwrap_err();
        assert_eq!(rejection.reason, RejectReason::MissingField);
        assert_eq!(rejection.field, Some("type"));
        assert_eq!(rejection.detail, "field \"type\" is required for the event");
    }

    #[test]
    fn rejects_unknown_types_naming_the_value() {
        let event = v1::Event {
            r#type: 99,
            ..queued()
        };
        assert_rejected(&event, RejectReason::UnknownType, "type", "99");
        assert_rejected(
            &event,
            RejectReason::UnknownType,
            "type",
            "1 (contact.queued)",
        );
        let negative = v1::Event {
            r#type: -1,
            ..queued()
        };
        assert_rejected(&negative, RejectReason::UnknownType, "type", "-1");
    }

    #[test]
    fn rejects_missing_envelope_fields() {
        let missing = RejectReason::MissingField;
        let no_type = v1::Event {
            r#type: 0,
            ..queued()
        };
        assert_rejected(&no_type, missing, "type", "required for the event");
        let no_id = v1::Event {
            id: String::new(),
            ..queued()
        };
        assert_rejected(&no_id, missing, "id", "required for contact.queued");
        let no_time = v1::Event {
            time: None,
            ..queued()
        };
        assert_rejected(&no_time, missing, "time", "required for contact.queued");
        let no_site = v1::Event {
            site: String::new(),
            ..queued()
        };
        assert_rejected(&no_site, missing, "site", "empty or not set");
    }

    #[test]
    fn rejects_missing_fields_of_each_type() {
        let missing = RejectReason::MissingField;
        for event_type in v1::EventType::KNOWN {
            let name = event_type.contract_name().unwrap();
            if name.starts_with("contact.") {
                let event = v1::Event {
                    contact: None,
                    ..contact(event_type)
                };
                assert_rejected(&event, missing, "contact", name);
            } else {
                let event = v1::Event {
                    advisor: None,
                    ..advisor(event_type)
                };
                assert_rejected(&event, missing, "advisor", name);
            }
        }
        let no_queue = v1::Event {
            queue: None,
            ..queued()
        };
        assert_rejected(&no_queue, missing, "queue", "contact.queued");
        let no_channel = v1::Event {
            channel: v1::Channel::Unspecified.into(),
            ..queued()
        };
        assert_rejected(&no_channel, missing, "channel", "contact.queued");
        for event_type in [
            v1::EventType::ContactOffered,
            v1::EventType::ContactMissed,
            v1::EventType::ContactAnswered,
        ] {
            let event = v1::Event {
                advisor: None,
                ..contact(event_type)
            };
            assert_rejected(
                &event,
                missing,
                "advisor",
                event_type.contract_name().unwrap(),
            );
        }
        let no_reason = v1::Event {
            reason: None,
            ..contact(v1::EventType::ContactDequeued)
        };
        assert_rejected(&no_reason, missing, "reason", "contact.dequeued");
        let no_state = v1::Event {
            state: v1::AdvisorState::Unspecified.into(),
            ..advisor(v1::EventType::AdvisorState)
        };
        assert_rejected(&no_state, missing, "state", "advisor.state");
    }

    #[test]
    fn optional_fields_may_be_absent() {
        for event_type in [
            v1::EventType::ContactHeld,
            v1::EventType::ContactResumed,
            v1::EventType::ContactTransferred,
            v1::EventType::ContactAbandoned,
            v1::EventType::ContactEnded,
            v1::EventType::ContactCompleted,
        ] {
            let bare = v1::Event {
                contact: Some("c1".into()),
                ..base(event_type)
            };
            assert!(decode(&bare).is_ok(), "{event_type:?}");
        }
        for event_type in [v1::EventType::AdvisorLogin, v1::EventType::AdvisorLogout] {
            let bare = v1::Event {
                advisor: Some("a1".into()),
                ..base(event_type)
            };
            assert!(decode(&bare).is_ok(), "{event_type:?}");
        }
    }

    #[test]
    fn rejects_malformed_identifiers_like_json() {
        let invalid = RejectReason::InvalidField;
        let long = "c".repeat(MAX_ID_BYTES + 1);
        for (text, hint) in [
            ("", "empty"),
            ("  ", "empty"),
            (long.as_str(), "maximum"),
            ("c\n1", "control"),
            ("c\u{7f}", "control"),
        ] {
            let some = || Some(text.to_owned());
            let cases = [
                (
                    v1::Event {
                        contact: some(),
                        ..queued()
                    },
                    "contact",
                ),
                (
                    v1::Event {
                        queue: some(),
                        ..queued()
                    },
                    "queue",
                ),
                (
                    v1::Event {
                        queue: some(),
                        ..contact(v1::EventType::ContactAnswered)
                    },
                    "queue",
                ),
                (
                    v1::Event {
                        advisor: some(),
                        ..contact(v1::EventType::ContactHeld)
                    },
                    "advisor",
                ),
                (
                    v1::Event {
                        to_queue: some(),
                        ..contact(v1::EventType::ContactTransferred)
                    },
                    "to_queue",
                ),
                (
                    v1::Event {
                        disposition: some(),
                        ..contact(v1::EventType::ContactCompleted)
                    },
                    "disposition",
                ),
                (
                    v1::Event {
                        advisor: some(),
                        ..advisor(v1::EventType::AdvisorLogout)
                    },
                    "advisor",
                ),
                (
                    v1::Event {
                        team: some(),
                        ..advisor(v1::EventType::AdvisorLogin)
                    },
                    "team",
                ),
                (
                    v1::Event {
                        reason: some(),
                        ..advisor(v1::EventType::AdvisorState)
                    },
                    "reason",
                ),
            ];
            for (event, field) in cases {
                assert_rejected(&event, invalid, field, hint);
            }
            // Envelope strings: empty is absent (missing), anything else is checked.
            if !text.is_empty() {
                let id = v1::Event {
                    id: text.to_owned(),
                    ..queued()
                };
                assert_rejected(&id, invalid, "id", hint);
                let site = v1::Event {
                    site: text.to_owned(),
                    ..queued()
                };
                assert_rejected(&site, invalid, "site", hint);
            }
        }
    }

    #[test]
    fn the_display_name_is_checked_like_an_identifier() {
        let named = |name: &str| v1::Event {
            name: Some(name.to_owned()),
            ..advisor(v1::EventType::AdvisorLogin)
        };
        let decoded = decode(&named("Ana Maria")).unwrap();
        let EventBody::Advisor(AdvisorEvent {
            kind: AdvisorEventKind::Login { name, .. },
            ..
        }) = decoded.body
        else {
            panic!("login expected")
        };
        assert_eq!(name.as_deref(), Some("Ana Maria"));
        for bad in ["", "  ", "Ana\tMaria"] {
            let rejection = decode(&named(bad)).unwrap_err();
            assert_eq!(
                (rejection.reason, rejection.field),
                (RejectReason::InvalidField, Some("name")),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn rejects_malformed_enumerations_and_reasons() {
        let invalid = RejectReason::InvalidField;
        let fax = v1::Event {
            channel: 42,
            ..queued()
        };
        assert_rejected(&fax, invalid, "channel", "1 (voice), 2 (chat)");
        let fax_on_answer = v1::Event {
            channel: 42,
            ..contact(v1::EventType::ContactAnswered)
        };
        assert_rejected(&fax_on_answer, invalid, "channel", "42");
        let asleep = v1::Event {
            state: 7,
            ..advisor(v1::EventType::AdvisorState)
        };
        assert_rejected(&asleep, invalid, "state", "1 (available) or 2 (pause)");
        for reason in ["lost", "", "Voicemail"] {
            let event = v1::Event {
                reason: Some(reason.into()),
                ..contact(v1::EventType::ContactDequeued)
            };
            assert_rejected(
                &event,
                invalid,
                "reason",
                "voicemail, callback, timeout, closed",
            );
        }
    }

    #[test]
    fn rejects_times_outside_the_timestamp_rules() {
        let invalid = RejectReason::InvalidField;
        for (seconds, nanos, hint) in [
            (0, -1, "nanos -1"),
            (0, 1_000_000_000, "nanos 1000000000"),
            (MIN_TIMESTAMP_SECONDS - 1, 0, "outside the range"),
            (MAX_TIMESTAMP_SECONDS + 1, 0, "outside the range"),
            (i64::MAX, 0, "outside the range"),
            (i64::MIN, 0, "outside the range"),
        ] {
            let event = v1::Event {
                time: Some(prost_types::Timestamp { seconds, nanos }),
                ..queued()
            };
            assert_rejected(&event, invalid, "time", hint);
        }
    }

    #[test]
    fn keeps_times_to_the_millisecond_like_rfc_3339_parsing() {
        for (seconds, nanos, rfc3339) in [
            (0, 999_999_999, "1970-01-01T00:00:00.999999999Z"),
            (-1, 500_000_000, "1969-12-31T23:59:59.5Z"),
            (-1, 999_999, "1969-12-31T23:59:59.000999Z"),
            (MIN_TIMESTAMP_SECONDS, 0, "0001-01-01T00:00:00Z"),
            (
                MAX_TIMESTAMP_SECONDS,
                999_999_999,
                "9999-12-31T23:59:59.999999999Z",
            ),
        ] {
            let event = v1::Event {
                time: Some(prost_types::Timestamp { seconds, nanos }),
                ..queued()
            };
            assert_eq!(
                decode(&event).unwrap().time,
                Timestamp::parse_rfc3339(rfc3339).unwrap(),
                "{rfc3339}"
            );
        }
    }

    #[test]
    fn checks_fields_in_the_order_of_the_json_decoder() {
        // Wrong in every way: the type is reported first, then id, time, site, contact...
        let mut event = v1::Event {
            r#type: 99,
            id: " ".into(),
            time: None,
            site: String::new(),
            contact: None,
            queue: None,
            channel: 0,
            ..v1::Event::default()
        };
        assert_eq!(rejected(&event).field, Some("type"));
        event.r#type = v1::EventType::ContactQueued.into();
        assert_eq!(rejected(&event).field, Some("id"));
        event.id = "e1".into();
        assert_eq!(rejected(&event).field, Some("time"));
        event.time = time();
        assert_eq!(rejected(&event).field, Some("site"));
        event.site = "s".into();
        assert_eq!(rejected(&event).field, Some("contact"));
        event.contact = Some("c".into());
        assert_eq!(rejected(&event).field, Some("queue"));
        event.queue = Some("q".into());
        assert_eq!(rejected(&event).field, Some("channel"));
        event.channel = v1::Channel::Chat.into();
        assert!(decode(&event).is_ok());
    }
}
