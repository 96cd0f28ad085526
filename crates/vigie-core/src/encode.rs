//! The JSON form of an [`Event`], as producers write it: the inverse of [`crate::decode`].

use serde::ser::{Serialize, SerializeMap, Serializer};

use crate::event::{AdvisorEventKind, AdvisorStatus, ContactEventKind, Event, EventBody};

impl Serialize for Event {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("id", &self.id)?;
        map.serialize_entry("type", self.type_name())?;
        map.serialize_entry("time", &self.time.to_string())?;
        map.serialize_entry("site", &self.site)?;
        match &self.body {
            EventBody::Contact(contact) => {
                map.serialize_entry("contact", &contact.contact)?;
                if let Some(queue) = &contact.queue {
                    map.serialize_entry("queue", queue)?;
                }
                if let Some(channel) = contact.channel {
                    map.serialize_entry("channel", channel.as_str())?;
                }
                if let Some(advisor) = &contact.advisor {
                    map.serialize_entry("advisor", advisor)?;
                }
                match &contact.kind {
                    ContactEventKind::Transferred {
                        to_queue: Some(to_queue),
                    } => {
                        map.serialize_entry("to_queue", to_queue)?;
                    }
                    ContactEventKind::Dequeued { reason } => {
                        map.serialize_entry("reason", reason.as_str())?;
                    }
                    ContactEventKind::Completed {
                        disposition,
                        resolved,
                    } => {
                        if let Some(disposition) = disposition {
                            map.serialize_entry("disposition", disposition)?;
                        }
                        if let Some(resolved) = resolved {
                            map.serialize_entry("resolved", resolved)?;
                        }
                    }
                    _ => {}
                }
            }
            EventBody::Advisor(advisor) => {
                map.serialize_entry("advisor", &advisor.advisor)?;
                match &advisor.kind {
                    AdvisorEventKind::Login { team, name } => {
                        if let Some(team) = team {
                            map.serialize_entry("team", team)?;
                        }
                        if let Some(name) = name {
                            map.serialize_entry("name", name)?;
                        }
                    }
                    AdvisorEventKind::Logout => {}
                    AdvisorEventKind::State(AdvisorStatus::Available) => {
                        map.serialize_entry("state", "available")?;
                    }
                    AdvisorEventKind::State(AdvisorStatus::Pause { reason }) => {
                        map.serialize_entry("state", "pause")?;
                        map.serialize_entry("reason", reason)?;
                    }
                }
            }
        }
        map.end()
    }
}

impl Event {
    /// One line of JSON (no trailing newline).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self)
            .expect("an event always serializes: only strings, bools and a map")
    }
}

#[cfg(test)]
mod tests {
    use crate::decode::{DEFAULT_MAX_EVENT_BYTES, decode_json};

    #[test]
    fn encoding_round_trips_through_decoding() {
        let lines = [
            r#"{"id":"e1","type":"contact.queued","time":"2026-03-02T08:15:00.250Z","site":"paris","contact":"c1","queue":"billing","channel":"voice"}"#,
            r#"{"id":"6","type":"contact.transferred","time":"2026-03-02T09:15:00.000Z","site":"s","contact":"c","advisor":"a","to_queue":"q2"}"#,
            r#"{"id":"8","type":"contact.dequeued","time":"2026-03-02T09:15:00.000Z","site":"s","contact":"c","reason":"callback"}"#,
            r#"{"id":"10","type":"contact.completed","time":"2026-03-02T09:15:00.000Z","site":"s","contact":"c","disposition":"sale","resolved":false}"#,
            r#"{"id":"11","type":"advisor.login","time":"2026-03-02T09:15:00.000Z","site":"s","advisor":"a","team":"t","name":"Ana"}"#,
            r#"{"id":"13","type":"advisor.state","time":"2026-03-02T09:15:00.000Z","site":"s","advisor":"a","state":"pause","reason":"lunch"}"#,
        ];
        for line in lines {
            let event = decode_json(line.as_bytes(), DEFAULT_MAX_EVENT_BYTES).unwrap();
            assert_eq!(event.to_json(), line);
        }
    }
}
