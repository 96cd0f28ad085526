//! What every translator shares: configuration checks, the contract's identifier rules, the
//! bounded counting of skipped names, the memory clock, and the reading of a text line by
//! line with its counts.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use vigie_core::decode::MAX_ID_BYTES;
use vigie_core::{Event, Millis, Timestamp};

/// The most distinct skipped names (event names, event types) counted one by one; further
/// names count as `other`, so that arbitrary input cannot grow the counters without bound.
pub(crate) const MAX_SKIPPED_NAMES: usize = 64;

/// One problem of a configuration, with the field at fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigProblem {
    /// Path of the field (`queues.billing.wrapuptime`).
    pub field: String,
    /// What is wrong and what is expected.
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// The problems of a configuration being checked, in the order found.
#[derive(Debug, Default)]
pub(crate) struct ConfigChecks {
    problems: Vec<ConfigProblem>,
}

impl ConfigChecks {
    /// A problem of `field`.
    pub(crate) fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.problems.push(ConfigProblem {
            field: field.into(),
            message: message.into(),
        });
    }

    /// A problem when `value`, which becomes an identifier, breaks the contract's rules.
    pub(crate) fn identifier(&mut self, field: impl Into<String>, value: &str) {
        if let Err(why) = identifier_problem(value) {
            self.push(field, format!("{value:?} is not a valid identifier: {why}"));
        }
    }

    /// A problem when `memory` is shorter than a minute: `what` arrives out of order.
    pub(crate) fn memory(&mut self, field: &str, memory: Duration, what: &str) {
        if memory < Duration::from_secs(60) {
            self.push(
                field,
                format!("must be at least 1m, to absorb {what} out of order"),
            );
        }
    }

    /// Whether no problem was found.
    pub(crate) fn is_empty(&self) -> bool {
        self.problems.is_empty()
    }

    /// The problems found.
    pub(crate) fn into_problems(self) -> Vec<ConfigProblem> {
        self.problems
    }

    /// `Ok` when no problem was found, else every problem wrapped by `errors`.
    pub(crate) fn finish<E>(self, errors: impl FnOnce(Vec<ConfigProblem>) -> E) -> Result<(), E> {
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(errors(self.problems))
        }
    }
}

/// The contract's identifier rules (docs/events.md, "Identifiers").
pub(crate) fn identifier_problem(value: &str) -> Result<(), &'static str> {
    if value.trim().is_empty() {
        Err("empty or only white space")
    } else if value.len() > MAX_ID_BYTES {
        Err("longer than 256 bytes")
    } else if value.chars().any(char::is_control) {
        Err("holds a control character")
    } else {
        Ok(())
    }
}

/// At most 64 bytes of a field, for error messages.
pub(crate) fn excerpt(value: &str) -> String {
    let mut end = value.len().min(64);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    value[..end].to_owned()
}

/// Counts one more `name`, or `other` once [`MAX_SKIPPED_NAMES`] names are counted.
pub(crate) fn count_name(counts: &mut BTreeMap<String, u64>, name: &str) {
    let known = counts.contains_key(name) || counts.len() < MAX_SKIPPED_NAMES;
    let counted = if known { name } else { "other" };
    *counts.entry(counted.to_owned()).or_default() += 1;
}

/// The clock that expires a translator's memory: the newest source time seen, and a sweep
/// at most once a minute of source time (a sweep reads every entry).
#[derive(Debug, Default)]
pub(crate) struct SweepClock {
    newest: Option<Timestamp>,
    last_sweep: Option<Timestamp>,
}

impl SweepClock {
    /// Moves the clock to `time` (if newer); the horizon before which entries are forgotten
    /// when a sweep is due, keeping `memory`.
    pub(crate) fn observe(&mut self, time: Timestamp, memory: Millis) -> Option<Timestamp> {
        let newest = self.newest.map_or(time, |newest| newest.max(time));
        self.newest = Some(newest);
        if self
            .last_sweep
            .is_some_and(|last| newest - last < Millis::from_secs(60))
        {
            return None;
        }
        self.last_sweep = Some(newest);
        Some(newest - memory)
    }
}

/// Forgets the oldest tenth of `entries` by `seen`, so that eviction is rare even when full;
/// how many were forgotten.
pub(crate) fn evict_oldest_tenth<T>(
    entries: &mut BTreeMap<String, T>,
    seen: impl Fn(&T) -> Timestamp,
) -> u64 {
    let mut times: Vec<Timestamp> = entries.values().map(&seen).collect();
    times.sort_unstable();
    let cutoff = times[times.len() / 10];
    let before = entries.len();
    entries.retain(|_, entry| seen(entry) > cutoff);
    (before - entries.len()) as u64
}

/// The counters of a translator that reads lines.
pub(crate) struct LineCounts<'a> {
    pub(crate) lines: &'a mut u64,
    pub(crate) blank: &'a mut u64,
    pub(crate) malformed: &'a mut u64,
    pub(crate) events: &'a mut u64,
}

/// A translator of a text, one record a line (queue_log, Amazon Connect's JSON lines).
pub(crate) trait LineTranslator {
    /// What a line gave.
    type Outcome;
    /// Why a line is malformed.
    type Problem;
    /// A malformed line with its number.
    type Malformed;

    /// The outcome of a blank line.
    const BLANK: Self::Outcome;

    fn counts(&mut self) -> LineCounts<'_>;

    /// Translates a line that is not blank, without its line ending.
    fn translate_record(&mut self, text: &str) -> Result<Self::Outcome, Self::Problem>;

    /// The events of an outcome, if it has any.
    fn events(outcome: &Self::Outcome) -> Option<&Vec<Event>>;

    fn into_events(outcome: Self::Outcome) -> Vec<Event>;

    fn malformed(line: u64, problem: Self::Problem) -> Self::Malformed;
}

/// Translates one line (`line_number` counts from 1 and only names the line in errors),
/// counting it.
pub(crate) fn translate_line<T: LineTranslator>(
    translator: &mut T,
    line_number: u64,
    line: &str,
) -> Result<T::Outcome, T::Malformed> {
    *translator.counts().lines += 1;
    let text = line.trim_end_matches(['\r', '\n']);
    if text.trim().is_empty() {
        *translator.counts().blank += 1;
        return Ok(T::BLANK);
    }
    match translator.translate_record(text) {
        Ok(outcome) => {
            if let Some(events) = T::events(&outcome) {
                *translator.counts().events += events.len() as u64;
            }
            Ok(outcome)
        }
        Err(problem) => {
            *translator.counts().malformed += 1;
            Err(T::malformed(line_number, problem))
        }
    }
}

/// Translates a whole text line by line from line 1: the events in order, and every
/// malformed line.
pub(crate) fn translate_text<T: LineTranslator>(
    translator: &mut T,
    text: &str,
) -> (Vec<Event>, Vec<T::Malformed>) {
    let mut events = Vec::new();
    let mut malformed = Vec::new();
    for (index, line) in text.split('\n').enumerate() {
        match translate_line(translator, index as u64 + 1, line) {
            Ok(outcome) => events.extend(T::into_events(outcome)),
            Err(error) => malformed.push(error),
        }
    }
    (events, malformed)
}
