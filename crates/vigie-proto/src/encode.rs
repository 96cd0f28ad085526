//! The protobuf form of a core [`Event`], as producers publish it: the inverse of
//! [`crate::decode_protobuf`].

use prost::Message;
use vigie_core::{AdvisorEventKind, AdvisorStatus, ContactEventKind, Event, EventBody, Timestamp};

use crate::v1;

/// Encodes an event as the payload of a NATS message sent with
/// `Content-Type: application/protobuf`.
pub fn encode_protobuf(event: &Event) -> Vec<u8> {
    v1::Event::from(event).encode_to_vec()
}

impl From<&Event> for v1::Event {
    fn from(event: &Event) -> v1::Event {
        let mut proto = v1::Event {
            id: event.id.clone(),
            time: Some(proto_timestamp(event.time)),
            site: event.site.clone(),
            ..v1::Event::default()
        };
        let event_type = match &event.body {
            EventBody::Contact(contact) => {
                proto.contact = Some(contact.contact.clone());
                proto.queue.clone_from(&contact.queue);
                proto.channel = contact
                    .channel
                    .map_or(v1::Channel::Unspecified, v1::Channel::from)
                    .into();
                proto.advisor.clone_from(&contact.advisor);
                match &contact.kind {
                    ContactEventKind::Queued => v1::EventType::ContactQueued,
                    ContactEventKind::Offered => v1::EventType::ContactOffered,
                    ContactEventKind::Missed => v1::EventType::ContactMissed,
                    ContactEventKind::Answered => v1::EventType::ContactAnswered,
                    ContactEventKind::Held => v1::EventType::ContactHeld,
                    ContactEventKind::Resumed => v1::EventType::ContactResumed,
                    ContactEventKind::Transferred { to_queue } => {
                        proto.to_queue.clone_from(to_queue);
                        v1::EventType::ContactTransferred
                    }
                    ContactEventKind::Abandoned => v1::EventType::ContactAbandoned,
                    ContactEventKind::Dequeued { reason } => {
                        proto.reason = Some(reason.as_str().to_owned());
                        v1::EventType::ContactDequeued
                    }
                    ContactEventKind::Ended => v1::EventType::ContactEnded,
                    ContactEventKind::Completed {
                        disposition,
                        resolved,
                    } => {
                        proto.disposition.clone_from(disposition);
                        proto.resolved = *resolved;
                        v1::EventType::ContactCompleted
                    }
                }
            }
            EventBody::Advisor(advisor) => {
                proto.advisor = Some(advisor.advisor.clone());
                match &advisor.kind {
                    AdvisorEventKind::Login { team, name } => {
                        proto.team.clone_from(team);
                        proto.name.clone_from(name);
                        v1::EventType::AdvisorLogin
                    }
                    AdvisorEventKind::Logout => v1::EventType::AdvisorLogout,
                    AdvisorEventKind::State(AdvisorStatus::Available) => {
                        proto.state = v1::AdvisorState::Available.into();
                        v1::EventType::AdvisorState
                    }
                    AdvisorEventKind::State(AdvisorStatus::Pause { reason }) => {
                        proto.state = v1::AdvisorState::Pause.into();
                        proto.reason = Some(reason.clone());
                        v1::EventType::AdvisorState
                    }
                }
            }
        };
        proto.r#type = event_type.into();
        proto
    }
}

/// Milliseconds since the epoch as a normalized `google.protobuf.Timestamp` (nanos >= 0).
fn proto_timestamp(time: Timestamp) -> prost_types::Timestamp {
    let millis = time.0.rem_euclid(1000);
    prost_types::Timestamp {
        seconds: time.0.div_euclid(1000),
        nanos: i32::try_from(millis * 1_000_000)
            .expect("less than 1000 ms is less than 10^9 ns, which fits in an i32"),
    }
}
