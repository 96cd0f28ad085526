//! Feed imperfections: at-least-once delivery and bounded disorder, on any event stream.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use vigie_core::Event;
use vigie_core::time::{Millis, Timestamp};

use crate::math::unit;

/// The random stream of the feed, apart from the site's and the traffic's of the same seed.
const FEED_STREAM: u64 = 2;

/// Delivers the events of a time-ordered stream the way real feeds do: some twice, all late
/// by a random delay.
///
/// Each event, and each copy, is held back by a delay drawn uniformly in `[0, max_delay]` and
/// delivered in order of `time + delay` (ties in input order, copies after their original).
/// Consequently no event arrives more than `max_delay` behind the newest event time already
/// delivered. A copy is identical to its original, `id` included. Memory holds only the
/// events of the last `max_delay` of input.
///
/// The input must be in non-decreasing time order, as [`crate::Simulation`] yields it;
/// otherwise the delivery order is not guaranteed.
#[derive(Debug)]
pub struct Disorder<I> {
    input: I,
    rng: ChaCha8Rng,
    duplicate_share: f64,
    max_delay: i64,
    pending: BinaryHeap<Pending>,
    seq: u64,
    newest_input: i64,
    input_done: bool,
}

/// An event waiting for its delivery time, in a min-heap by (delivery, order of arrival).
#[derive(Debug)]
struct Pending {
    delivery: i64,
    seq: u64,
    event: Event,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        (self.delivery, self.seq) == (other.delivery, other.seq)
    }
}

impl Eq for Pending {}

impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Pending {
    fn cmp(&self, other: &Self) -> Ordering {
        (other.delivery, other.seq).cmp(&(self.delivery, self.seq))
    }
}

impl<I: Iterator<Item = Event>> Disorder<I> {
    /// Wraps `input`. `duplicate_share` (clamped to `[0, 1]`) is the share of events delivered
    /// twice; `max_delay` (at least zero) bounds every delay. The same seed and input give the
    /// same output.
    pub fn new(input: I, seed: u64, duplicate_share: f64, max_delay: Millis) -> Disorder<I> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(FEED_STREAM);
        Disorder {
            input,
            rng,
            duplicate_share: if duplicate_share.is_nan() {
                0.0
            } else {
                duplicate_share.clamp(0.0, 1.0)
            },
            max_delay: max_delay.0.max(0),
            pending: BinaryHeap::new(),
            seq: 0,
            newest_input: i64::MIN,
            input_done: false,
        }
    }

    /// The next delivery if it is due at or before `now` (delivery time = event time + its
    /// delay): for a live demo that releases events as the wall clock advances.
    pub fn next_until(&mut self, now: Timestamp) -> Option<Event> {
        let delivery = self.next_ready()?;
        if delivery <= now.0 {
            self.pending.pop().map(|pending| pending.event)
        } else {
            None
        }
    }

    /// Pulls input until the earliest pending delivery is final (nothing still to come can be
    /// delivered before it) and returns its delivery time; `None` when everything is out.
    fn next_ready(&mut self) -> Option<i64> {
        loop {
            if let Some(first) = self.pending.peek() {
                // Input still to come has time >= newest_input, so delivery >= newest_input.
                if self.input_done || first.delivery <= self.newest_input {
                    return Some(first.delivery);
                }
            } else if self.input_done {
                return None;
            }
            match self.input.next() {
                Some(event) => self.accept(event),
                None => self.input_done = true,
            }
        }
    }

    fn accept(&mut self, event: Event) {
        self.newest_input = self.newest_input.max(event.time.0);
        let twice = unit(&mut self.rng) < self.duplicate_share;
        if twice {
            let copy = event.clone();
            self.push(event);
            self.push(copy);
        } else {
            self.push(event);
        }
    }

    fn push(&mut self, event: Event) {
        let delay = self.rng.random_range(0..=self.max_delay);
        self.seq += 1;
        self.pending.push(Pending {
            delivery: event.time.0.saturating_add(delay),
            seq: self.seq,
            event,
        });
    }
}

impl<I: Iterator<Item = Event>> Iterator for Disorder<I> {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        self.next_ready()?;
        self.pending.pop().map(|pending| pending.event)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use vigie_core::{AdvisorEvent, AdvisorEventKind, EventBody};

    use super::*;

    fn events(count: usize) -> Vec<Event> {
        (0..count)
            .map(|i| Event {
                id: format!("e{i}"),
                // Several events per instant, and gaps.
                time: Timestamp(1_000_000 + (i as i64 / 3) * 700),
                site: "s".to_owned(),
                body: EventBody::Advisor(AdvisorEvent {
                    advisor: "a".to_owned(),
                    kind: AdvisorEventKind::Logout,
                }),
            })
            .collect()
    }

    #[test]
    fn no_delay_and_no_duplicates_is_the_identity() {
        let input = events(1000);
        let output: Vec<Event> =
            Disorder::new(input.clone().into_iter(), 3, 0.0, Millis::ZERO).collect();
        assert_eq!(output, input);
    }

    #[test]
    fn delivers_everything_with_bounded_lateness_and_the_requested_duplicates() {
        let input = events(20_000);
        let max_delay = Millis::from_secs(5);
        let output: Vec<Event> =
            Disorder::new(input.clone().into_iter(), 9, 0.1, max_delay).collect();
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for event in &output {
            *counts.entry(event.id.as_str()).or_default() += 1;
        }
        assert_eq!(counts.len(), input.len(), "every event is delivered");
        assert!(counts.values().all(|&n| n == 1 || n == 2));
        let copies = output.len() - input.len();
        let share = copies as f64 / input.len() as f64;
        assert!((0.09..=0.11).contains(&share), "{share}");
        let mut newest = i64::MIN;
        let mut reordered = 0;
        for event in &output {
            if event.time.0 < newest {
                reordered += 1;
            }
            newest = newest.max(event.time.0);
            assert!(newest - event.time.0 <= max_delay.0);
        }
        assert!(reordered > 1000, "the feed is out of order");
    }

    #[test]
    fn the_same_seed_gives_the_same_feed() {
        let run = |seed| -> Vec<Event> {
            Disorder::new(events(500).into_iter(), seed, 0.2, Millis(2000)).collect()
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
    }

    #[test]
    fn next_until_releases_by_delivery_time() {
        let mut feed = Disorder::new(events(30).into_iter(), 4, 0.0, Millis(1000));
        assert!(feed.next_until(Timestamp(999_999)).is_none());
        let mut released = 0;
        while feed.next_until(Timestamp(1_000_000 + 3000)).is_some() {
            released += 1;
        }
        // Events up to 2000 ms after the first certainly arrived; later ones certainly not.
        assert!((9..=15).contains(&released), "{released}");
        let rest = std::iter::from_fn(|| feed.next_until(Timestamp(i64::MAX))).count();
        assert_eq!(released + rest, 30);
    }
}
