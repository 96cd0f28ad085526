//! Decoding the JSON form of the contract into [`Event`]s, with a precise [`Rejection`] for
//! anything that is not a valid event. Never panics, whatever the bytes.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::event::{
    AdvisorEvent, AdvisorEventKind, AdvisorStatus, Channel, ContactEvent, ContactEventKind,
    DequeueReason, Event, EventBody, UNSPECIFIED_PAUSE_REASON,
};
use crate::reject::{RejectReason, Rejection};
use crate::time::Timestamp;

/// The largest event accepted by default, in bytes. Real events are a few hundred bytes.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 64 * 1024;

/// The longest identifier (event, site, contact, queue, advisor, team, reason) accepted.
pub const MAX_ID_BYTES: usize = 256;

/// Every event type of the contract, in documentation order.
pub const EVENT_TYPES: &[&str] = &[
    "contact.queued",
    "contact.offered",
    "contact.missed",
    "contact.answered",
    "contact.held",
    "contact.resumed",
    "contact.transferred",
    "contact.abandoned",
    "contact.dequeued",
    "contact.ended",
    "contact.completed",
    "advisor.login",
    "advisor.logout",
    "advisor.state",
];

/// The known fields, captured raw so that a wrong type is reported against its field.
/// Unknown fields are skipped.
#[derive(Deserialize)]
struct RawEvent<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "type")]
    kind: Option<&'a RawValue>,
    #[serde(borrow, default)]
    time: Option<&'a RawValue>,
    #[serde(borrow, default)]
    site: Option<&'a RawValue>,
    #[serde(borrow, default)]
    contact: Option<&'a RawValue>,
    #[serde(borrow, default)]
    queue: Option<&'a RawValue>,
    #[serde(borrow, default)]
    channel: Option<&'a RawValue>,
    #[serde(borrow, default)]
    advisor: Option<&'a RawValue>,
    #[serde(borrow, default)]
    to_queue: Option<&'a RawValue>,
    #[serde(borrow, default)]
    reason: Option<&'a RawValue>,
    #[serde(borrow, default)]
    disposition: Option<&'a RawValue>,
    #[serde(borrow, default)]
    resolved: Option<&'a RawValue>,
    #[serde(borrow, default)]
    team: Option<&'a RawValue>,
    #[serde(borrow, default)]
    name: Option<&'a RawValue>,
    #[serde(borrow, default)]
    state: Option<&'a RawValue>,
}

/// Decodes one JSON event (one line of a JSON Lines file, or one message payload).
pub fn decode_json(bytes: &[u8], max_bytes: usize) -> Result<Event, Rejection> {
    if bytes.len() > max_bytes {
        return Err(Rejection::new(
            RejectReason::TooLarge,
            format!("event is {} bytes, the maximum is {max_bytes}", bytes.len()),
        ));
    }
    let text = std::str::from_utf8(bytes).map_err(|error| {
        Rejection::new(
            RejectReason::MalformedJson,
            format!("not UTF-8 text: {error}"),
        )
    })?;
    let trimmed = text.trim_start();
    if !trimmed.is_empty() && !trimmed.starts_with('{') {
        // Distinguish valid non-object JSON from garbage.
        return Err(match serde_json::from_str::<serde::de::IgnoredAny>(text) {
            Ok(_) => Rejection::new(RejectReason::NotAnObject, "an event must be a JSON object"),
            Err(error) => Rejection::new(RejectReason::MalformedJson, error.to_string()),
        });
    }
    let raw: RawEvent<'_> = serde_json::from_str(text)
        .map_err(|error| Rejection::new(RejectReason::MalformedJson, error.to_string()))?;
    raw.validate()
}

impl<'a> RawEvent<'a> {
    fn validate(self) -> Result<Event, Rejection> {
        let kind = required_string(self.kind, "type", "the event")?;
        let event_type = kind.as_ref();
        if !EVENT_TYPES.contains(&event_type) {
            return Err(Rejection::field(
                RejectReason::UnknownType,
                "type",
                format!(
                    "unknown event type {event_type:?}; expected one of {}",
                    EVENT_TYPES.join(", ")
                ),
            ));
        }
        let id = required_id(self.id, "id", event_type)?;
        let time_text = required_string(self.time, "time", event_type)?;
        let time = Timestamp::parse_rfc3339(&time_text).ok_or_else(|| {
            Rejection::field(
                RejectReason::InvalidField,
                "time",
                format!(
                    "{time_text:?} is not an RFC 3339 time with an offset, such as 2026-03-02T09:15:00.250+01:00"
                ),
            )
        })?;
        let site = required_id(self.site, "site", event_type)?;
        let body = if let Some(advisor_type) = event_type.strip_prefix("advisor.") {
            EventBody::Advisor(self.advisor_event(advisor_type, event_type)?)
        } else {
            EventBody::Contact(self.contact_event(event_type)?)
        };
        Ok(Event {
            id,
            time,
            site,
            body,
        })
    }

    fn contact_event(&self, event_type: &str) -> Result<ContactEvent, Rejection> {
        let contact = required_id(self.contact, "contact", event_type)?;
        let kind = match event_type {
            "contact.queued" => ContactEventKind::Queued,
            "contact.offered" => ContactEventKind::Offered,
            "contact.missed" => ContactEventKind::Missed,
            "contact.answered" => ContactEventKind::Answered,
            "contact.held" => ContactEventKind::Held,
            "contact.resumed" => ContactEventKind::Resumed,
            "contact.transferred" => ContactEventKind::Transferred {
                to_queue: optional_id(self.to_queue, "to_queue")?,
            },
            "contact.abandoned" => ContactEventKind::Abandoned,
            "contact.dequeued" => {
                let text = required_string(self.reason, "reason", event_type)?;
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
            "contact.ended" => ContactEventKind::Ended,
            _ => ContactEventKind::Completed {
                disposition: optional_id(self.disposition, "disposition")?,
                resolved: optional_bool(self.resolved, "resolved")?,
            },
        };
        let queue = if kind == ContactEventKind::Queued {
            Some(required_id(self.queue, "queue", event_type)?)
        } else {
            optional_id(self.queue, "queue")?
        };
        let channel = match optional_string(self.channel, "channel")? {
            Some(text) => Some(Channel::parse(&text).ok_or_else(|| {
                Rejection::field(
                    RejectReason::InvalidField,
                    "channel",
                    format!(
                        "{text:?} is not a channel; expected one of {}",
                        Channel::expected()
                    ),
                )
            })?),
            None if kind == ContactEventKind::Queued => {
                return Err(missing("channel", event_type));
            }
            None => None,
        };
        let advisor_required = matches!(
            kind,
            ContactEventKind::Offered | ContactEventKind::Missed | ContactEventKind::Answered
        );
        let advisor = if advisor_required {
            Some(required_id(self.advisor, "advisor", event_type)?)
        } else {
            optional_id(self.advisor, "advisor")?
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
        &self,
        advisor_type: &str,
        event_type: &str,
    ) -> Result<AdvisorEvent, Rejection> {
        let advisor = required_id(self.advisor, "advisor", event_type)?;
        let kind = match advisor_type {
            "login" => AdvisorEventKind::Login {
                team: optional_id(self.team, "team")?,
                name: optional_id(self.name, "name")?,
            },
            "logout" => AdvisorEventKind::Logout,
            _ => {
                let state = required_string(self.state, "state", event_type)?;
                match state.as_ref() {
                    "available" => AdvisorEventKind::State(AdvisorStatus::Available),
                    "pause" => AdvisorEventKind::State(AdvisorStatus::Pause {
                        reason: optional_id(self.reason, "reason")?
                            .unwrap_or_else(|| UNSPECIFIED_PAUSE_REASON.to_owned()),
                    }),
                    other => {
                        return Err(Rejection::field(
                            RejectReason::InvalidField,
                            "state",
                            format!(
                                "{other:?} is not an advisor state; expected available or pause"
                            ),
                        ));
                    }
                }
            }
        };
        Ok(AdvisorEvent { advisor, kind })
    }
}

fn missing(field: &'static str, event_type: &str) -> Rejection {
    Rejection::field(
        RejectReason::MissingField,
        field,
        format!("field {field:?} is required for {event_type}"),
    )
}

fn describe(raw: &RawValue) -> &'static str {
    match raw.get().as_bytes().first() {
        Some(b'"') => "a string",
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

fn optional_string<'a>(
    raw: Option<&'a RawValue>,
    field: &'static str,
) -> Result<Option<Cow<'a, str>>, Rejection> {
    let Some(raw) = raw else { return Ok(None) };
    if raw.get() == "null" {
        return Ok(None);
    }
    match serde_json::from_str::<Cow<'a, str>>(raw.get()) {
        Ok(text) => Ok(Some(text)),
        Err(_) => Err(Rejection::field(
            RejectReason::InvalidField,
            field,
            format!("field {field:?} must be a string, found {}", describe(raw)),
        )),
    }
}

fn required_string<'a>(
    raw: Option<&'a RawValue>,
    field: &'static str,
    event_type: &str,
) -> Result<Cow<'a, str>, Rejection> {
    optional_string(raw, field)?.ok_or_else(|| missing(field, event_type))
}

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

fn optional_id(raw: Option<&RawValue>, field: &'static str) -> Result<Option<String>, Rejection> {
    match optional_string(raw, field)? {
        Some(text) => {
            check_id(&text, field)?;
            Ok(Some(text.into_owned()))
        }
        None => Ok(None),
    }
}

fn required_id(
    raw: Option<&RawValue>,
    field: &'static str,
    event_type: &str,
) -> Result<String, Rejection> {
    optional_id(raw, field)?.ok_or_else(|| missing(field, event_type))
}

fn optional_bool(raw: Option<&RawValue>, field: &'static str) -> Result<Option<bool>, Rejection> {
    match raw.map(RawValue::get) {
        None | Some("null") => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(_) => Err(Rejection::field(
            RejectReason::InvalidField,
            field,
            format!(
                "field {field:?} must be true or false, found {}",
                raw.map_or("nothing", describe)
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(text: &str) -> Result<Event, Rejection> {
        decode_json(text.as_bytes(), DEFAULT_MAX_EVENT_BYTES)
    }

    fn rejected(text: &str) -> Rejection {
        decode(text).expect_err("must be rejected")
    }

    const QUEUED: &str = r#"{"id":"e1","type":"contact.queued","time":"2026-03-02T09:15:00.250+01:00","site":"paris","contact":"c1","queue":"billing","channel":"voice"}"#;

    #[test]
    fn decodes_a_queued_contact_and_ignores_unknown_fields() {
        let with_extra = QUEUED.replace("\"site\"", "\"vendor_field\":{\"a\":[1,2]},\"site\"");
        let event = decode(&with_extra).unwrap();
        assert_eq!(event.id, "e1");
        assert_eq!(event.site, "paris");
        assert_eq!(
            event.time,
            Timestamp::parse_rfc3339("2026-03-02T08:15:00.250Z").unwrap()
        );
        let EventBody::Contact(contact) = event.body else {
            panic!("contact event expected")
        };
        assert_eq!(contact.kind, ContactEventKind::Queued);
        assert_eq!(contact.queue.as_deref(), Some("billing"));
        assert_eq!(contact.channel, Some(Channel::Voice));
    }

    #[test]
    fn decodes_every_type() {
        let lines = [
            r#"{"id":"1","type":"contact.offered","time":"2026-03-02T09:15:00Z","site":"s","contact":"c","advisor":"a"}"#,
            r#"{"id":"2","type":"contact.missed","time":"2026-03-02T09:15:00Z","site":"s","contact":"c","advisor":"a"}"#,
            r#"{"id":"3","type":"contact.answered","time":"2026-03-02T09:15:00Z","site":"s","contact":"c","advisor":"a","queue":"q","channel":"chat"}"#,
            r#"{"id":"4","type":"contact.held","time":"2026-03-02T09:15:00Z","site":"s","contact":"c"}"#,
            r#"{"id":"5","type":"contact.resumed","time":"2026-03-02T09:15:00Z","site":"s","contact":"c"}"#,
            r#"{"id":"6","type":"contact.transferred","time":"2026-03-02T09:15:00Z","site":"s","contact":"c","to_queue":"q2"}"#,
            r#"{"id":"7","type":"contact.abandoned","time":"2026-03-02T09:15:00Z","site":"s","contact":"c"}"#,
            r#"{"id":"8","type":"contact.dequeued","time":"2026-03-02T09:15:00Z","site":"s","contact":"c","reason":"voicemail"}"#,
            r#"{"id":"9","type":"contact.ended","time":"2026-03-02T09:15:00Z","site":"s","contact":"c"}"#,
            r#"{"id":"10","type":"contact.completed","time":"2026-03-02T09:15:00Z","site":"s","contact":"c","disposition":"sale","resolved":true}"#,
            r#"{"id":"11","type":"advisor.login","time":"2026-03-02T09:15:00Z","site":"s","advisor":"a","team":"t","name":"Ana"}"#,
            r#"{"id":"12","type":"advisor.logout","time":"2026-03-02T09:15:00Z","site":"s","advisor":"a"}"#,
            r#"{"id":"13","type":"advisor.state","time":"2026-03-02T09:15:00Z","site":"s","advisor":"a","state":"pause","reason":"lunch"}"#,
            r#"{"id":"14","type":"advisor.state","time":"2026-03-02T09:15:00Z","site":"s","advisor":"a","state":"available"}"#,
        ];
        for line in lines {
            let event = decode(line).unwrap_or_else(|r| panic!("{line}: {r}"));
            assert!(line.contains(event.type_name()));
        }
        let pause = decode(r#"{"id":"15","type":"advisor.state","time":"2026-03-02T09:15:00Z","site":"s","advisor":"a","state":"pause"}"#).unwrap();
        assert_eq!(
            pause.body,
            EventBody::Advisor(AdvisorEvent {
                advisor: "a".into(),
                kind: AdvisorEventKind::State(AdvisorStatus::Pause {
                    reason: "unspecified".into()
                })
            })
        );
    }

    #[test]
    fn rejects_bytes_that_are_not_json() {
        assert_eq!(rejected("{\"id\": ").reason, RejectReason::MalformedJson);
        assert_eq!(
            decode_json(&[0xff, 0xfe, 0x00], 100).unwrap_err().reason,
            RejectReason::MalformedJson
        );
        assert_eq!(rejected("").reason, RejectReason::MalformedJson);
        assert_eq!(rejected("hello").reason, RejectReason::MalformedJson);
    }

    #[test]
    fn rejects_json_that_is_not_an_object() {
        assert_eq!(rejected("[1,2]").reason, RejectReason::NotAnObject);
        assert_eq!(rejected("\"text\"").reason, RejectReason::NotAnObject);
        assert_eq!(rejected("42").reason, RejectReason::NotAnObject);
    }

    #[test]
    fn rejects_oversized_events() {
        let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(2048));
        let rejection = decode_json(big.as_bytes(), 1024).unwrap_err();
        assert_eq!(rejection.reason, RejectReason::TooLarge);
        assert!(rejection.detail.contains("1024"));
    }

    #[test]
    fn rejects_unknown_types_naming_the_type() {
        let rejection = rejected(&QUEUED.replace("contact.queued", "contact.teleported"));
        assert_eq!(rejection.reason, RejectReason::UnknownType);
        assert!(rejection.detail.contains("contact.teleported"));
        assert_eq!(rejected(r#"{"id":"x"}"#).field, Some("type"));
    }

    #[test]
    fn rejects_missing_fields_naming_them() {
        for field in ["id", "time", "site", "contact", "queue", "channel"] {
            let without = remove_field(QUEUED, field);
            let rejection = rejected(&without);
            assert_eq!(rejection.reason, RejectReason::MissingField, "{field}");
            assert_eq!(rejection.field, Some(field));
        }
        let answered = r#"{"id":"1","type":"contact.answered","time":"2026-03-02T09:15:00Z","site":"s","contact":"c"}"#;
        assert_eq!(rejected(answered).field, Some("advisor"));
        let dequeued = r#"{"id":"1","type":"contact.dequeued","time":"2026-03-02T09:15:00Z","site":"s","contact":"c"}"#;
        assert_eq!(rejected(dequeued).field, Some("reason"));
        let state = r#"{"id":"1","type":"advisor.state","time":"2026-03-02T09:15:00Z","site":"s","advisor":"a"}"#;
        assert_eq!(rejected(state).field, Some("state"));
        let null_id = QUEUED.replace("\"e1\"", "null");
        assert_eq!(rejected(&null_id).reason, RejectReason::MissingField);
    }

    #[test]
    fn rejects_malformed_fields_saying_what_was_expected() {
        let cases = [
            (
                QUEUED.replace("2026-03-02T09:15:00.250+01:00", "2026-03-02 09:15"),
                "time",
                "RFC 3339",
            ),
            (
                QUEUED.replace("2026-03-02T09:15:00.250+01:00", "2026-03-02T09:15:00"),
                "time",
                "offset",
            ),
            (
                QUEUED.replace("\"voice\"", "\"fax\""),
                "channel",
                "voice, chat",
            ),
            (QUEUED.replace("\"c1\"", "12"), "contact", "a number"),
            (QUEUED.replace("\"c1\"", "\"  \""), "contact", "empty"),
            (
                QUEUED.replace("\"c1\"", &format!("\"{}\"", "c".repeat(300))),
                "contact",
                "maximum",
            ),
            (QUEUED.replace("\"c1\"", "\"c\\n1\""), "contact", "control"),
        ];
        for (line, field, hint) in cases {
            let rejection = rejected(&line);
            assert_eq!(rejection.reason, RejectReason::InvalidField, "{line}");
            assert_eq!(rejection.field, Some(field), "{line}");
            assert!(
                rejection.detail.contains(hint),
                "{} lacks {hint}",
                rejection.detail
            );
        }
        let bad_reason = r#"{"id":"1","type":"contact.dequeued","time":"2026-03-02T09:15:00Z","site":"s","contact":"c","reason":"lost"}"#;
        assert_eq!(rejected(bad_reason).field, Some("reason"));
        let bad_state = r#"{"id":"1","type":"advisor.state","time":"2026-03-02T09:15:00Z","site":"s","advisor":"a","state":"asleep"}"#;
        assert_eq!(rejected(bad_state).field, Some("state"));
        let bad_resolved = r#"{"id":"1","type":"contact.completed","time":"2026-03-02T09:15:00Z","site":"s","contact":"c","resolved":"yes"}"#;
        assert_eq!(rejected(bad_resolved).field, Some("resolved"));
    }

    fn remove_field(json: &str, field: &str) -> String {
        let mut value: serde_json::Value = serde_json::from_str(json).unwrap();
        value.as_object_mut().unwrap().remove(field);
        value.to_string()
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = decode_json(&bytes, DEFAULT_MAX_EVENT_BYTES);
        }

        #[test]
        fn never_panics_on_mutated_events(cut in 0usize..QUEUED.len(), byte in proptest::num::u8::ANY) {
            let mut bytes = QUEUED.as_bytes().to_vec();
            bytes[cut] = byte;
            let _ = decode_json(&bytes, DEFAULT_MAX_EVENT_BYTES);
        }
    }
}
