//! A site's processor saved whole and restored exactly, so that a restarted service loads the
//! snapshot and replays only the events after it instead of the whole day.
//!
//! The encoding (postcard) starts with [`SNAPSHOT_FORMAT`] and a checksum of what follows; then
//! come the site's id and a fingerprint of the configuration and processing settings the state
//! was built with; then the state, as the processor keeps it (contacts in progress and recently
//! released, dedupe memory, queues, advisors, interval counts, the clock...): restored, the
//! processor goes on exactly as the one saved would have. A snapshot of another version, of
//! another site, of another configuration, or a corrupt one is refused (the day is then rebuilt
//! from the events), never misread.
//!
//! What the configuration determines (queue and team settings, rosters) is not kept but set
//! again from the configuration given on restore, which must be the one the state was built
//! with; caches and scratch buffers (the day cache, derivation buffers, the lists of queues and
//! advisors an event touched, empty between events) start afresh. Everything else is kept
//! as is, hash tables slot by slot, so that even the order of iteration is the same.
//!
//! A decoded state is checked before it is used: every index it holds (queues, advisors,
//! teams, pause reasons, queue-channels) must point inside it and its tables must be as the
//! processor builds them, so that no input makes the processor panic later.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::{xxh3_64, xxh3_128};

use crate::abandoned::AbandonedJournal;
use crate::advisor::Advisor;
use crate::config::{ProcessingConfig, QueueConfig, SiteConfig};
use crate::contact::MAX_INDEXED_NAMES;
use crate::intervals::QueueIntervals;
use crate::processor::{
    CHANNELS, ContactEntry, Interner, NO_CHANNEL, ProcessorStats, QueueChannelState, QueueSettings,
    SiteProcessor, TeamSettings,
};
use crate::table::HashTable;
use crate::time::{Millis, Timestamp};
use crate::totals::IntervalCapture;

/// Version of the encoding; bump when the state's layout changes.
pub const SNAPSHOT_FORMAT: u32 = 1;

/// Why a snapshot cannot be restored.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// The bytes do not decode (truncated, corrupt, not a snapshot).
    #[error("the snapshot does not decode: {0}")]
    Format(String),
    /// Written by another version of the encoding.
    #[error("the snapshot has format {found}, this version reads format {expected}")]
    Version {
        /// The snapshot's format.
        found: u32,
        /// [`SNAPSHOT_FORMAT`].
        expected: u32,
    },
    /// Written for another site.
    #[error("the snapshot is of site {found:?}, not {expected:?}")]
    OtherSite {
        /// The site of the snapshot.
        found: String,
        /// The site it was meant to restore.
        expected: String,
    },
    /// The site's configuration or the processing settings changed since it was written: the
    /// day must be rebuilt from the events (says which changed).
    #[error(
        "the configuration changed since the snapshot was taken ({0}): rebuilding the day from the events"
    )]
    ConfigChanged(String),
}

fn format_error(error: postcard::Error) -> SnapshotError {
    SnapshotError::Format(error.to_string())
}

/// What follows the format and checksum, before the state: whose state it is and what it was
/// built with.
#[derive(Serialize, Deserialize)]
struct Header {
    site: String,
    config: SiteFingerprint,
    processing: ProcessingSettings,
}

/// The site configuration, hashed (XXH3-128 of its JSON) whole, without its queues and teams,
/// and queue by queue and team by team: enough to tell whether it changed, and what.
#[derive(Serialize, Deserialize)]
struct SiteFingerprint {
    whole: u128,
    /// Id, name, time zone, day start, variant.
    settings: u128,
    queues: Vec<(String, u128)>,
    teams: Vec<(String, u128)>,
}

fn json_hash(value: &impl Serialize) -> u128 {
    let json = serde_json::to_vec(value)
        .expect("a configuration encodes to JSON: plain fields, no map with non-string keys");
    xxh3_128(&json)
}

impl SiteFingerprint {
    fn of(site: &SiteConfig) -> SiteFingerprint {
        let settings = SiteConfig {
            queues: Vec::new(),
            teams: Vec::new(),
            ..site.clone()
        };
        SiteFingerprint {
            whole: json_hash(site),
            settings: json_hash(&settings),
            queues: site
                .queues
                .iter()
                .map(|queue| (queue.id.clone(), json_hash(queue)))
                .collect(),
            teams: site
                .teams
                .iter()
                .map(|team| (team.id.clone(), json_hash(team)))
                .collect(),
        }
    }

    /// What changed from `self` (the snapshot's) to `now`, if anything.
    fn changes(&self, now: &SiteFingerprint) -> Vec<String> {
        if self.whole == now.whole {
            return Vec::new();
        }
        let mut changes = Vec::new();
        if self.settings != now.settings {
            changes.push("the site's settings".to_owned());
        }
        for (kind, then, now) in [
            ("queue", &self.queues, &now.queues),
            ("team", &self.teams, &now.teams),
        ] {
            let then: BTreeMap<&str, u128> = then.iter().map(|(id, h)| (id.as_str(), *h)).collect();
            let now: BTreeMap<&str, u128> = now.iter().map(|(id, h)| (id.as_str(), *h)).collect();
            for (id, hash) in &now {
                match then.get(id) {
                    None => changes.push(format!("{kind} {id:?} added")),
                    Some(before) if before != hash => {
                        changes.push(format!("{kind} {id:?} changed"))
                    }
                    Some(_) => {}
                }
            }
            for id in then.keys().filter(|id| !now.contains_key(*id)) {
                changes.push(format!("{kind} {id:?} removed"));
            }
        }
        if changes.is_empty() {
            changes.push("the order of the queues or teams".to_owned());
        }
        changes
    }
}

/// The processing settings as a processor applies them (the dedupe window at least the allowed
/// lateness): settings that change nothing the processor does are no change.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct ProcessingSettings {
    allowed_lateness: Millis,
    dedupe_window: Millis,
    contact_expiry: Millis,
    completed_contact_memory: Millis,
}

impl ProcessingSettings {
    fn of(processor: &SiteProcessor) -> ProcessingSettings {
        ProcessingSettings {
            allowed_lateness: processor.lateness,
            dedupe_window: processor.dedupe_window,
            contact_expiry: processor.contact_expiry,
            completed_contact_memory: processor.completed_memory,
        }
    }

    /// What changed from `self` (the snapshot's) to `now`.
    fn changes(&self, now: &ProcessingSettings) -> Vec<String> {
        let human = |span: Millis| {
            humantime::format_duration(Duration::from_millis(span.0.max(0) as u64)).to_string()
        };
        [
            (
                "allowed_lateness",
                self.allowed_lateness,
                now.allowed_lateness,
            ),
            ("dedupe_window", self.dedupe_window, now.dedupe_window),
            ("contact_expiry", self.contact_expiry, now.contact_expiry),
            (
                "completed_contact_memory",
                self.completed_contact_memory,
                now.completed_contact_memory,
            ),
        ]
        .into_iter()
        .filter(|(_, then, now)| then != now)
        .map(|(name, then, now)| {
            format!(
                "processing.{name} was {} and is {}",
                human(then),
                human(now)
            )
        })
        .collect()
    }
}

/// The state of a processor as encoded, borrowed from it. [`RestoredState`] decodes it: the
/// same fields, in the same order, owned.
#[derive(Serialize)]
struct SavedState<'a> {
    watermark: Timestamp,
    clock: Timestamp,
    seen_ids: &'a HashTable<()>,
    seen_order: &'a VecDeque<(Timestamp, u64, u64)>,
    contacts: &'a HashTable<ContactEntry>,
    gone_order: &'a VecDeque<(Timestamp, u64, u64)>,
    finishing: &'a BinaryHeap<Reverse<(Timestamp, u128)>>,
    young: &'a VecDeque<(Timestamp, u64, u64)>,
    expiries: &'a BTreeSet<(Timestamp, u128)>,
    queues: &'a [Box<str>],
    /// Where each queue's channels are kept in `queue_channels` (the queues' settings are not
    /// kept: they come from the configuration).
    queue_channel_indices: &'a [[u32; CHANNELS]],
    queue_channels: &'a [QueueChannelState],
    queue_intervals: &'a [QueueIntervals],
    advisors: &'a [Box<str>],
    advisor_state: &'a [Advisor],
    teams: &'a [Box<str>],
    reasons: &'a [Box<str>],
    stats: &'a ProcessorStats,
    interval_totals: Option<&'a IntervalCapture>,
    abandoned: Option<&'a AbandonedJournal>,
}

/// See [`SavedState`].
#[derive(Deserialize)]
struct RestoredState {
    watermark: Timestamp,
    clock: Timestamp,
    seen_ids: HashTable<()>,
    seen_order: VecDeque<(Timestamp, u64, u64)>,
    contacts: HashTable<ContactEntry>,
    gone_order: VecDeque<(Timestamp, u64, u64)>,
    finishing: BinaryHeap<Reverse<(Timestamp, u128)>>,
    young: VecDeque<(Timestamp, u64, u64)>,
    expiries: BTreeSet<(Timestamp, u128)>,
    queues: Vec<Box<str>>,
    queue_channel_indices: Vec<[u32; CHANNELS]>,
    queue_channels: Vec<QueueChannelState>,
    queue_intervals: Vec<QueueIntervals>,
    advisors: Vec<Box<str>>,
    advisor_state: Vec<Advisor>,
    teams: Vec<Box<str>>,
    reasons: Vec<Box<str>>,
    stats: ProcessorStats,
    interval_totals: Option<IntervalCapture>,
    abandoned: Option<AbandonedJournal>,
}

impl SiteProcessor {
    /// The processor's whole state, encoded (postcard) after a header with
    /// [`SNAPSHOT_FORMAT`], the site id, and a fingerprint of the site configuration and
    /// processing settings it was built with. What [`SiteProcessor::restore`] reads.
    pub fn snapshot(&self) -> Vec<u8> {
        let header = Header {
            site: self.site.id.clone(),
            config: SiteFingerprint::of(&self.site),
            processing: ProcessingSettings::of(self),
        };
        let state = SavedState {
            watermark: self.watermark,
            clock: self.clock,
            seen_ids: &self.seen_ids,
            seen_order: &self.seen_order,
            contacts: &self.contacts,
            gone_order: &self.gone_order,
            finishing: &self.finishing,
            young: &self.young,
            expiries: &self.expiries,
            queues: self.queues.names(),
            queue_channel_indices: &self.queue_channel_of,
            queue_channels: &self.queue_channels,
            queue_intervals: &self.queue_intervals,
            advisors: self.advisors.names(),
            advisor_state: &self.advisor_state,
            teams: self.teams.names(),
            reasons: self.reasons.names(),
            stats: &self.stats,
            interval_totals: self.interval_totals.as_deref(),
            abandoned: self.abandoned.as_deref(),
        };
        let payload = postcard::to_allocvec(&(header, state))
            .expect("encoding to memory does not fail: every sequence has a known length");
        let mut bytes = postcard::to_allocvec(&(SNAPSHOT_FORMAT, xxh3_64(&payload)))
            .expect("encoding two integers to memory does not fail");
        bytes.extend_from_slice(&payload);
        bytes
    }

    /// A processor that continues exactly where the one that wrote `bytes` (with
    /// [`SiteProcessor::snapshot`]) stood, for `site` and `processing`, which must be those it
    /// was built with (else [`SnapshotError::ConfigChanged`]). Interval totals capture and
    /// abandoned contacts reporting are as they were, with what they had pending.
    pub fn restore(
        bytes: &[u8],
        site: SiteConfig,
        processing: &ProcessingConfig,
    ) -> Result<SiteProcessor, SnapshotError> {
        // The format comes first: a snapshot of another version is told apart from garbage.
        let (format, rest) = postcard::take_from_bytes::<u32>(bytes).map_err(format_error)?;
        if format != SNAPSHOT_FORMAT {
            return Err(SnapshotError::Version {
                found: format,
                expected: SNAPSHOT_FORMAT,
            });
        }
        let (checksum, payload) = postcard::take_from_bytes::<u64>(rest).map_err(format_error)?;
        if xxh3_64(payload) != checksum {
            return Err(SnapshotError::Format(
                "the checksum does not match: truncated or corrupt".to_owned(),
            ));
        }
        let (header, state) = postcard::take_from_bytes::<Header>(payload).map_err(format_error)?;
        if header.site != site.id {
            return Err(SnapshotError::OtherSite {
                found: header.site,
                expected: site.id,
            });
        }
        let mut processor = SiteProcessor::new(site, processing);
        let mut changes = header.config.changes(&SiteFingerprint::of(&processor.site));
        changes.extend(
            header
                .processing
                .changes(&ProcessingSettings::of(&processor)),
        );
        if !changes.is_empty() {
            return Err(SnapshotError::ConfigChanged(changes.join(", ")));
        }
        let (state, rest) =
            postcard::take_from_bytes::<RestoredState>(state).map_err(format_error)?;
        if !rest.is_empty() {
            return Err(SnapshotError::Format(format!(
                "{} bytes follow the state",
                rest.len()
            )));
        }
        state
            .install(&mut processor)
            .map_err(SnapshotError::Format)?;
        Ok(processor)
    }
}

impl RestoredState {
    /// Checks the state and puts it in `processor` (new, for the configuration the state was
    /// built with), with the settings the configuration gives.
    fn install(self, processor: &mut SiteProcessor) -> Result<(), String> {
        let interner = |names: Vec<Box<str>>, limit: usize, what: &str| {
            Interner::from_names(names, limit)
                .ok_or_else(|| format!("the {what} names repeat or are too many"))
        };
        let queues = interner(self.queues, MAX_INDEXED_NAMES, "queue")?;
        let advisors = interner(self.advisors, MAX_INDEXED_NAMES, "advisor")?;
        let teams = interner(self.teams, u32::MAX as usize, "team")?;
        let reasons = interner(self.reasons, u32::MAX as usize, "pause reason")?;
        for (what, count, expected) in [
            (
                "queue channel lists",
                self.queue_channel_indices.len(),
                queues.len(),
            ),
            (
                "queue interval counts",
                self.queue_intervals.len(),
                queues.len(),
            ),
            ("advisor states", self.advisor_state.len(), advisors.len()),
        ] {
            if count != expected {
                return Err(format!("{what}: {count}, names: {expected}"));
            }
        }
        check_queue_channels(&self.queue_channel_indices, &self.queue_channels)?;
        if !self
            .queue_intervals
            .iter()
            .all(QueueIntervals::is_consistent)
        {
            return Err("a queue's interval counts go beyond a day".to_owned());
        }
        if let Some(advisor) = self
            .advisor_state
            .iter()
            .position(|state| !state.is_consistent(teams.len(), reasons.len()))
        {
            return Err(format!(
                "advisor {:?} is inconsistent (its team, pause reasons, tally or class log)",
                advisors.name(advisor as u32)
            ));
        }
        let mut tracked = 0;
        for entry in self.contacts.values() {
            if let ContactEntry::Tracked(state) = entry {
                let known =
                    |fact: &crate::contact::Fact| fact.indices_below(queues.len(), advisors.len());
                if state.facts.is_empty()
                    || !state.facts.iter().all(known)
                    || !state.fold.indices_below(queues.len(), advisors.len())
                {
                    return Err(
                        "a contact in progress names unknown queues or advisors, or has no event"
                            .to_owned(),
                    );
                }
                tracked += 1;
            }
        }

        let site = processor.site.clone();
        processor.watermark = self.watermark;
        processor.clock = self.clock;
        processor.seen_ids = self.seen_ids;
        processor.seen_order = self.seen_order;
        processor.contacts = self.contacts;
        processor.tracked = tracked;
        processor.gone_order = self.gone_order;
        processor.finishing = self.finishing;
        processor.young = self.young;
        processor.expiries = self.expiries;
        // Settings as the configuration gives them (set again just below).
        processor.queue_settings = queues
            .names()
            .iter()
            .map(|id| QueueSettings::from_config(QueueConfig::with_defaults(id.as_ref()), &site))
            .collect();
        processor.queue_channel_of = self.queue_channel_indices;
        processor.queues = queues;
        processor.queue_channels = self.queue_channels;
        processor.queue_intervals = self.queue_intervals;
        // Kept beside each advisor, always equal to its horizon.
        processor.advisor_settled = self
            .advisor_state
            .iter()
            .map(Advisor::settled_until)
            .collect();
        processor.advisor_state = self.advisor_state;
        processor.advisors = advisors;
        processor.team_settings = teams
            .names()
            .iter()
            .map(|id| TeamSettings::unconfigured(id, &site))
            .collect();
        processor.teams = teams;
        processor.reasons = reasons;
        processor.stats = self.stats;
        processor.interval_totals = self.interval_totals.map(Box::new);
        processor.abandoned = self.abandoned.map(Box::new);

        let names = (
            processor.queues.len(),
            processor.teams.len(),
            processor.advisors.len(),
        );
        processor.apply_configuration();
        // The processor interned every name its configuration gives when it was built.
        let after = (
            processor.queues.len(),
            processor.teams.len(),
            processor.advisors.len(),
        );
        if after != names {
            return Err("the state lacks names its configuration gives".to_owned());
        }
        Ok(())
    }
}

/// Checks that each queue-channel state is kept under exactly one channel of its own queue, and
/// is consistent.
fn check_queue_channels(
    indices: &[[u32; CHANNELS]],
    states: &[QueueChannelState],
) -> Result<(), String> {
    let mut owner: Vec<Option<u32>> = vec![None; states.len()];
    for (queue, channels) in indices.iter().enumerate() {
        for &index in channels.iter().filter(|index| **index != NO_CHANNEL) {
            match owner.get_mut(index as usize) {
                Some(slot @ None) => *slot = Some(queue as u32),
                _ => return Err(format!("queue-channel {index} is unknown or shared")),
            }
        }
    }
    for (index, state) in states.iter().enumerate() {
        if owner[index] != Some(state.queue) {
            return Err(format!("queue-channel {index} is not kept by its queue"));
        }
        if !state.is_consistent() {
            return Err(format!("queue-channel {index} has inconsistent logs"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Outcome;
    use crate::advisor::{Status, StatusPoint};
    use crate::contact::{Fact, FactKind};
    use crate::decode::{DEFAULT_MAX_EVENT_BYTES, decode_json};

    fn apply(p: &mut SiteProcessor, id: &str, time: &str, body: &str) {
        let json = format!(r#"{{"id":"{id}","time":"2026-03-02T{time}Z","site":"s",{body}}}"#);
        let event = decode_json(json.as_bytes(), DEFAULT_MAX_EVENT_BYTES).unwrap();
        assert_eq!(p.apply(&event), Outcome::Applied, "{json}");
    }

    /// Advisor a of team red pauses for a break, then answers c1; c2 and c3 wait in q.
    fn processor() -> SiteProcessor {
        let mut p =
            SiteProcessor::new(SiteConfig::with_defaults("s"), &ProcessingConfig::default());
        let queued = |contact: &str| {
            format!(
                r#""type":"contact.queued","contact":"{contact}","queue":"q","channel":"voice""#
            )
        };
        apply(
            &mut p,
            "1",
            "10:00:00",
            r#""type":"advisor.login","advisor":"a","team":"red""#,
        );
        apply(
            &mut p,
            "2",
            "10:00:10",
            r#""type":"advisor.state","advisor":"a","state":"pause","reason":"break""#,
        );
        apply(&mut p, "3", "10:01:00", &queued("c1"));
        apply(
            &mut p,
            "4",
            "10:01:05",
            r#""type":"contact.answered","contact":"c1","advisor":"a""#,
        );
        apply(&mut p, "5", "10:02:00", &queued("c2"));
        apply(&mut p, "6", "10:02:30", &queued("c3"));
        p
    }

    fn restore(p: &SiteProcessor) -> Result<SiteProcessor, SnapshotError> {
        SiteProcessor::restore(&p.snapshot(), p.site.clone(), &ProcessingConfig::default())
    }

    /// Why the snapshot of the processor, changed by `change` as no event could change it,
    /// does not restore.
    fn refused(change: impl FnOnce(&mut SiteProcessor)) -> String {
        let mut p = processor();
        change(&mut p);
        match restore(&p) {
            Err(SnapshotError::Format(why)) => why,
            other => panic!("restored or refused otherwise: {:?}", other.map(|_| ())),
        }
    }

    #[test]
    fn a_state_the_processor_could_not_have_built_is_refused() {
        assert!(restore(&processor()).is_ok());
        let at = Timestamp::parse_rfc3339("2026-03-02T10:00:20Z").unwrap();
        /// A change no event could make.
        type Change = fn(&mut SiteProcessor);
        let cases: [(&str, Change); 9] = [
            ("advisor states: 2, names: 1", |p| {
                p.advisor_state.push(Advisor::new(Timestamp::MIN));
            }),
            ("queue-channel 7 is unknown", |p| {
                p.queue_channel_of[0][1] = 7;
            }),
            ("queue-channel 0 is unknown or shared", |p| {
                p.queue_channel_of[0][1] = 0;
            }),
            ("queue-channel 0 is not kept by its queue", |p| {
                p.queue_channels[0].queue = 0;
                p.queue_channel_of[0][0] = NO_CHANNEL;
                p.queue_index("other");
                p.queue_channel_of[1][0] = 0;
            }),
            ("queue-channel 0 has inconsistent logs", |p| {
                p.queue_channels[0].waiting.reverse();
            }),
            ("advisor \"a\" is inconsistent", |p| {
                p.advisor_state[0].login_team = Some((Timestamp(0), 2));
            }),
            ("advisor \"a\" is inconsistent", |p| {
                let at = Timestamp::parse_rfc3339("2026-03-02T10:00:20Z").unwrap();
                p.advisor_state[0].add_status(StatusPoint::new(at, 1, 7, Status::Pause(1)));
            }),
            (
                "a contact in progress names unknown queues or advisors",
                |p| {
                    let key = xxh3_128(b"c2");
                    let Some(ContactEntry::Tracked(state)) = p.contacts.get_mut(key) else {
                        panic!("c2 waits")
                    };
                    let at = Timestamp::parse_rfc3339("2026-03-02T10:02:40Z").unwrap();
                    let held = Fact::new(at, 0, FactKind::Held, Some(5), None, None);
                    state.facts.push(held);
                },
            ),
            ("does not decode", |p| p.watermark = Timestamp(i64::MAX)),
        ];
        for (expected, change) in cases {
            let why = refused(change);
            assert!(
                why.contains(expected) || expected == "does not decode",
                "{why:?} should say {expected:?}"
            );
        }
        // A pause of a known reason is fine: the check is on indices, not on history.
        let mut p = processor();
        p.advisor_state[0].add_status(StatusPoint::new(at, 1, 7, Status::Pause(0)));
        assert!(restore(&p).is_ok());
    }

    #[test]
    fn names_must_be_distinct_and_within_the_limit() {
        let names = |list: &[&str]| list.iter().map(|name| Box::from(*name)).collect();
        let interner = Interner::from_names(names(&["q1", "q2"]), 2).unwrap();
        assert_eq!((interner.get("q2"), interner.get("q3")), (Some(1), None));
        assert!(Interner::from_names(names(&["q1", "q1"]), 10).is_none());
        assert!(Interner::from_names(names(&["q1", "q2", "q3"]), 2).is_none());
    }

    #[test]
    fn what_changed_in_the_configuration_is_said() {
        let mut site = SiteConfig::with_defaults("s");
        site.queues.push(QueueConfig::with_defaults("q1"));
        site.queues.push(QueueConfig::with_defaults("q2"));
        let before = SiteFingerprint::of(&site);
        assert!(before.changes(&SiteFingerprint::of(&site)).is_empty());
        let mut after = site.clone();
        after.queues[0].sl_target = 0.5;
        after.queues.remove(1);
        after.queues.push(QueueConfig::with_defaults("q3"));
        after.time_zone = "Europe/Paris".into();
        assert_eq!(
            before.changes(&SiteFingerprint::of(&after)),
            [
                "the site's settings",
                r#"queue "q1" changed"#,
                r#"queue "q3" added"#,
                r#"queue "q2" removed"#
            ]
        );
        site.queues.reverse();
        assert_eq!(
            before.changes(&SiteFingerprint::of(&site)),
            ["the order of the queues or teams"]
        );
    }
}
