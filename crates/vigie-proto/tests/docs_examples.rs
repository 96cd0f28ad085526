//! The examples of `docs/events.md` are what they claim to be: every `json` block is an event
//! the contract accepts, in JSON and through protobuf, and every rejection example is rejected
//! with the code its row names.

use std::collections::BTreeSet;
use std::path::PathBuf;

use vigie_core::decode::EVENT_TYPES;
use vigie_core::{DEFAULT_MAX_EVENT_BYTES, Event, RejectReason, decode_json};
use vigie_proto::{decode_protobuf, encode_protobuf, v1};

fn events_md() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/events.md");
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// The fenced blocks whose info string is exactly `info`, with the line they start on.
fn blocks(text: &str, info: &str) -> Vec<(usize, Vec<String>)> {
    let opening = format!("```{info}");
    let mut found = Vec::new();
    // The open block: its first line, whether it is wanted, its lines. Every fence opens a
    // block, so that the closing fence of another language is not taken for an opening one.
    let mut open: Option<(usize, bool, Vec<String>)> = None;
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        match open.take() {
            None if trimmed.starts_with("```") => {
                open = Some((index + 1, trimmed == opening, Vec::new()));
            }
            None => {}
            Some((start, true, lines)) if trimmed == "```" => found.push((start, lines)),
            Some(_) if trimmed == "```" => {}
            Some((start, wanted, mut lines)) => {
                lines.push(line.to_owned());
                open = Some((start, wanted, lines));
            }
        }
    }
    assert!(open.is_none(), "unclosed code block in docs/events.md");
    found
}

fn decode(line: &str) -> Event {
    decode_json(line.as_bytes(), DEFAULT_MAX_EVENT_BYTES)
        .unwrap_or_else(|rejection| panic!("{line}\nis rejected: {rejection}"))
}

#[test]
fn every_json_block_is_one_accepted_event_that_survives_protobuf() {
    let text = events_md();
    let blocks = blocks(&text, "json");
    let mut types = BTreeSet::new();
    let mut ids = BTreeSet::new();
    for (start, lines) in &blocks {
        let lines: Vec<_> = lines
            .iter()
            .filter(|line| !line.trim().is_empty())
            .collect();
        assert_eq!(
            lines.len(),
            1,
            "the block at line {start} must hold one event on one line"
        );
        let event = decode(lines[0]);

        let bytes = encode_protobuf(&event);
        assert_eq!(
            decode_protobuf(&bytes, DEFAULT_MAX_EVENT_BYTES).as_ref(),
            Ok(&event),
            "block at line {start}"
        );
        assert_eq!(
            Event::try_from(v1::Event::from(&event)).as_ref(),
            Ok(&event)
        );
        assert_eq!(decode(&event.to_json()), event, "block at line {start}");

        assert!(
            ids.insert(event.id.clone()),
            "id {} of the block at line {start} is already used by another example",
            event.id
        );
        types.insert(event.type_name());
    }
    for event_type in EVENT_TYPES {
        assert!(
            types.contains(event_type),
            "docs/events.md has no json example of {event_type}"
        );
    }
}

#[test]
fn the_json_lines_example_is_accepted() {
    let text = events_md();
    let jsonl: Vec<_> = blocks(&text, "text")
        .into_iter()
        .filter(|(_, lines)| lines.iter().all(|line| line.starts_with('{')))
        .collect();
    assert_eq!(jsonl.len(), 1, "one JSON Lines example expected");
    for line in &jsonl[0].1 {
        decode(line);
    }
}

/// The rows `| `code` | example | what to fix |` of the rejection table.
fn rejection_rows(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| {
            let cells: Vec<_> = line.trim().trim_matches('|').split(" | ").collect();
            let code = cells.first()?.trim().strip_prefix('`')?.strip_suffix('`')?;
            let known = RejectReason::ALL
                .iter()
                .any(|reason| reason.as_str() == code);
            (known && cells.len() == 3).then(|| (code.to_owned(), cells[1].to_owned()))
        })
        .collect()
}

#[test]
fn every_rejection_reason_has_a_row_and_decoder_examples_are_rejected_so() {
    let text = events_md();
    let rows = rejection_rows(&text);
    for reason in RejectReason::ALL {
        assert!(
            rows.iter().any(|(code, _)| code == reason.as_str()),
            "docs/events.md has no row for the rejection {reason}"
        );
    }
    let mut checked = BTreeSet::new();
    for (code, example) in &rows {
        // Inline code spans sit between odd and even backticks.
        for span in example.split('`').skip(1).step_by(2) {
            if !(span.starts_with('{') || span.starts_with('[')) {
                continue;
            }
            let rejection = decode_json(span.as_bytes(), DEFAULT_MAX_EVENT_BYTES)
                .expect_err("a rejection example must be rejected");
            assert_eq!(rejection.reason.as_str(), code, "{span}: {rejection}");
            checked.insert(code.clone());
        }
    }
    for code in [
        "malformed_json",
        "not_an_object",
        "missing_field",
        "invalid_field",
        "unknown_type",
    ] {
        assert!(
            checked.contains(code),
            "the row of {code} has no JSON example"
        );
    }
}
