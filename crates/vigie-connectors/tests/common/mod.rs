//! Helpers the translators' tests share: each test binary uses its own share of them.
#![allow(dead_code)]

use vigie_core::{DEFAULT_MAX_EVENT_BYTES, Event, Outcome, SiteProcessor, decode_json};

/// Checks that every event round-trips through the JSON contract.
pub fn assert_round_trips(events: &[Event]) {
    for event in events {
        let decoded = decode_json(event.to_json().as_bytes(), DEFAULT_MAX_EVENT_BYTES)
            .unwrap_or_else(|r| panic!("{} does not decode: {r}", event.to_json()));
        assert_eq!(&decoded, event);
    }
}

/// An event's JSON without its id, for readable expectations.
pub fn without_id(event: &Event) -> String {
    let json = event.to_json();
    let rest = json
        .find(",\"type\"")
        .map(|at| &json[at + 1..])
        .expect("the JSON form starts with the id");
    format!("{{{rest}")
}

/// Applies the events, each accepted or a repeat.
pub fn apply_all(processor: &mut SiteProcessor, events: &[Event]) {
    for event in events {
        match processor.apply(event) {
            Outcome::Applied | Outcome::Duplicate => {}
            Outcome::Rejected(rejection) => panic!("{} rejected: {rejection:?}", event.to_json()),
        }
    }
}
