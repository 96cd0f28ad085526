//! Snapshots of a site's processor, over simulated days delivered as real feeds deliver them
//! (duplicates, disorder within the allowed lateness): restored at any point of the day, the
//! processor goes on exactly as the one never saved (every view, its counts, the interval
//! totals it captures and the abandons it reports), and a snapshot it cannot be sure of
//! (another version, another site, another configuration, corrupt bytes) is refused.

use chrono::NaiveTime;
use proptest::prelude::*;
use vigie_core::config::HumanDuration;
use vigie_core::totals::DayTotals;
use vigie_core::{
    AbandonedChange, DEFAULT_MAX_EVENT_BYTES, Event, Millis, Outcome, ProcessingConfig, Processor,
    QueueConfig, SNAPSHOT_FORMAT, SiteConfig, SiteProcessor, SnapshotError, Timestamp, decode_json,
};
use vigie_sim::{Disorder, SimConfig, Simulation};

mod common;
use common::seen;

/// A simulated morning of `hours` from 08:00, as a feed delivers it (3% duplicates, delays up
/// to `max_delay_secs`), and the site's configuration.
fn morning(
    seed: u64,
    advisors: usize,
    queues: usize,
    hours: u32,
    max_delay_secs: i64,
) -> (SiteConfig, Vec<Event>) {
    let config = SimConfig {
        seed,
        advisors,
        queues,
        open: NaiveTime::from_hms_opt(8, 0, 0).expect("a valid time"),
        close: NaiveTime::from_hms_opt(8 + hours, 0, 0).expect("a valid time"),
        duplicate_share: 0.03,
        max_delay: Millis::from_secs(max_delay_secs),
        ..SimConfig::default()
    };
    let simulation = Simulation::new(&config).expect("valid simulation settings");
    let site = simulation.site_config();
    let feed = Disorder::new(
        simulation,
        seed + 1,
        config.duplicate_share,
        config.max_delay,
    );
    (site, feed.collect())
}

/// A processor that captures interval totals and reports abandons.
fn processor(site: &SiteConfig) -> SiteProcessor {
    processor_with(site, &ProcessingConfig::default())
}

fn processor_with(site: &SiteConfig, processing: &ProcessingConfig) -> SiteProcessor {
    let mut p = SiteProcessor::new(site.clone(), processing);
    p.enable_interval_totals();
    p.enable_abandoned_contacts();
    p
}

/// The default processing settings, or contacts given up after a few minutes of silence and
/// forgotten soon after (many expire within a morning: the expiry index and the young
/// contacts are then exercised).
fn processing(short_expiry_secs: Option<u64>) -> ProcessingConfig {
    match short_expiry_secs {
        None => ProcessingConfig::default(),
        Some(secs) => ProcessingConfig {
            contact_expiry: HumanDuration::secs(secs),
            completed_contact_memory: HumanDuration::secs(secs / 2),
            ..ProcessingConfig::default()
        },
    }
}

fn restore(bytes: &[u8], site: &SiteConfig) -> Result<SiteProcessor, SnapshotError> {
    SiteProcessor::restore(bytes, site.clone(), &ProcessingConfig::default())
}

/// What a processor gave its caller while events were applied.
#[derive(Debug, Default, PartialEq)]
struct Taken {
    outcomes: Vec<Outcome>,
    totals: Vec<DayTotals>,
    changes: Vec<AbandonedChange>,
}

/// Applies `events` (at `first` in the feed), draining the captured totals and abandons after
/// every `drain_every`-th event of the feed.
fn apply(p: &mut SiteProcessor, events: &[Event], first: usize, drain_every: usize) -> Taken {
    let mut taken = Taken::default();
    for (index, event) in events.iter().enumerate() {
        taken.outcomes.push(p.apply(event));
        if (first + index + 1).is_multiple_of(drain_every) {
            taken.totals.extend(p.take_interval_totals());
            taken.changes.extend(p.take_abandoned_changes());
        }
    }
    taken
}

/// The site of the afternoon: the first queue judged by other thresholds, a queue no event
/// names yet, the first team's first advisor moved to the second team.
fn reconfigured(site: &SiteConfig) -> SiteConfig {
    let mut site = site.clone();
    site.queues[0].sl_threshold = HumanDuration::secs(12);
    site.queues[0].short_abandon = HumanDuration::secs(3);
    site.queues
        .push(QueueConfig::with_defaults("configured-later"));
    if site.teams.len() >= 2 && !site.teams[0].advisors.is_empty() {
        let moved = site.teams[0].advisors.remove(0);
        site.teams[1].advisors.push(moved);
    }
    site
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Saved and restored (twice over) anywhere in the day, the processor goes on exactly as
    /// the one never saved: every view, the counts, memory, outcomes, captured totals and
    /// abandons, at the split, in between and at the end.
    #[test]
    fn a_restored_processor_goes_on_exactly_as_the_one_saved(
        seed in 0u64..1_000,
        advisors in 20usize..60,
        queues in 2usize..5,
        hours in 2u32..4,
        max_delay_secs in 1i64..=30,
        split_share in 0.0f64..1.0,
        advance_at_split: bool,
        reconfigure: bool,
        drain_every in 20usize..400,
        short_expiry_secs in proptest::option::of(90u64..900),
    ) {
        let (site, events) = morning(seed, advisors, queues, hours, max_delay_secs);
        let processing = processing(short_expiry_secs);
        let split = (events.len() as f64 * split_share) as usize;
        let mut whole = processor_with(&site, &processing);
        let (before, after) = events.split_at(split);
        let (early, late) = before.split_at(before.len() / 3);
        apply(&mut whole, early, 0, drain_every);
        if reconfigure {
            whole.reconfigure(reconfigured(&site)).expect("a valid configuration");
        }
        apply(&mut whole, late, early.len(), drain_every);
        if advance_at_split && let Some(last) = before.last() {
            whole.advance_to(last.time + Millis::from_secs(45));
        }

        let bytes = whole.snapshot();
        let site_now = whole.site().clone();
        let restore = |bytes: &[u8]| SiteProcessor::restore(bytes, site_now.clone(), &processing);
        let once = restore(&bytes).expect("a snapshot restores");
        prop_assert!(once.snapshot() == bytes, "restored, it saves the same bytes");
        let mut restored = restore(&once.snapshot()).expect("restores again");
        prop_assert_eq!(seen(&restored), seen(&whole), "at the split");

        let (first_half, second_half) = after.split_at(after.len() / 2);
        let whole_taken = apply(&mut whole, first_half, split, drain_every);
        let restored_taken = apply(&mut restored, first_half, split, drain_every);
        prop_assert_eq!(&restored_taken, &whole_taken);
        prop_assert_eq!(seen(&restored), seen(&whole), "in between");

        let middle = split + first_half.len();
        let mut whole_taken = apply(&mut whole, second_half, middle, drain_every);
        let mut restored_taken = apply(&mut restored, second_half, middle, drain_every);
        // The end of the day, and an hour later: trailing windows empty as the clock goes on.
        let end = events.last().map_or(Timestamp(0), |e| e.time);
        for now in [end + Millis::from_mins(20), end + Millis::from_mins(80)] {
            whole.advance_to(now);
            restored.advance_to(now);
            prop_assert_eq!(seen(&restored), seen(&whole), "at {}", now);
        }
        for (p, taken) in [(&mut whole, &mut whole_taken), (&mut restored, &mut restored_taken)] {
            taken.totals.extend(p.take_interval_totals());
            taken.changes.extend(p.take_abandoned_changes());
        }
        prop_assert_eq!(&restored_taken, &whole_taken);
        // Totals are captured as events cross the 15-minute boundaries: a rest of the day
        // shorter than 20 minutes may cross none, and hold no abandon either.
        let rest = after
            .first()
            .zip(after.last())
            .map_or(Millis::ZERO, |(first, last)| last.time - first.time);
        prop_assert!(
            !whole_taken.changes.is_empty()
                || !whole_taken.totals.is_empty()
                || rest < Millis::from_mins(20),
            "the rest of the day gives something to compare"
        );
    }

    /// Any bytes, and any cut or altered byte of a real snapshot, are refused, never misread
    /// and never a panic.
    #[test]
    fn damaged_snapshots_and_random_bytes_are_refused(
        random in proptest::collection::vec(any::<u8>(), 0..3_000),
        cut in any::<prop::sample::Index>(),
        flipped in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let refused = |result: Result<SiteProcessor, SnapshotError>| match result {
            Ok(_) => Err("restored".to_owned()),
            Err(SnapshotError::Format(_) | SnapshotError::Version { .. }) => Ok(()),
            Err(other) => Err(other.to_string()),
        };
        let (site, bytes) = small_snapshot();
        prop_assert_eq!(refused(restore(&random, &site)), Ok(()));
        let cut = cut.index(bytes.len());
        prop_assert!(
            matches!(restore(&bytes[..cut], &site), Err(SnapshotError::Format(_))),
            "cut at {}", cut
        );
        let mut altered = bytes.clone();
        altered[flipped.index(bytes.len())] ^= flip;
        prop_assert_eq!(refused(restore(&altered, &site)), Ok(()));
    }
}

/// A snapshot of a small site halfway through its morning, made once.
fn small_snapshot() -> (SiteConfig, Vec<u8>) {
    static SNAPSHOT: std::sync::OnceLock<(SiteConfig, Vec<u8>)> = std::sync::OnceLock::new();
    SNAPSHOT
        .get_or_init(|| {
            let (site, events) = morning(3, 12, 2, 2, 10);
            let mut p = processor(&site);
            apply(&mut p, &events[..events.len() / 2], 0, 100);
            (site, p.snapshot())
        })
        .clone()
}

fn event(id: &str, time: &str, body: &str) -> Event {
    let json = format!(r#"{{"id":"{id}","time":"2026-03-02T{time}Z","site":"s",{body}}}"#);
    decode_json(json.as_bytes(), DEFAULT_MAX_EVENT_BYTES).expect("a valid event")
}

fn queued(id: &str, time: &str, contact: &str) -> Event {
    let body =
        format!(r#""type":"contact.queued","contact":"{contact}","queue":"q","channel":"voice""#);
    event(id, time, &body)
}

fn abandoned(id: &str, time: &str, contact: &str) -> Event {
    event(
        id,
        time,
        &format!(r#""type":"contact.abandoned","contact":"{contact}""#),
    )
}

/// Site `s`, queue `q` configured with the defaults.
fn site_s() -> SiteConfig {
    let mut site = SiteConfig::with_defaults("s");
    site.queues.push(QueueConfig::with_defaults("q"));
    site
}

#[test]
fn an_event_seen_before_the_snapshot_is_still_a_duplicate_after() {
    let site = site_s();
    let mut p = processor(&site);
    for e in [
        queued("1", "10:00:00", "c1"),
        queued("2", "10:00:05", "c2"),
        abandoned("3", "10:00:20", "c1"),
    ] {
        assert_eq!(p.apply(&e), Outcome::Applied);
    }
    let mut restored = restore(&p.snapshot(), &site).expect("a snapshot restores");
    for redelivered in [
        queued("2", "10:00:05", "c2"),
        abandoned("3", "10:00:20", "c1"),
    ] {
        assert_eq!(restored.apply(&redelivered), Outcome::Duplicate);
        assert_eq!(p.apply(&redelivered), Outcome::Duplicate);
    }
    // The same contact under a new id is not a duplicate: c2 still waits, c1 is over.
    let answered = event(
        "4",
        "10:00:30",
        r#""type":"contact.answered","contact":"c2","advisor":"a""#,
    );
    assert_eq!(restored.apply(&answered), Outcome::Applied);
    let stray = abandoned("5", "10:00:51", "c1");
    assert_eq!(
        restored.apply(&stray),
        p.apply(&stray),
        "c1 is remembered as over"
    );
    assert_eq!(restored.stats().duplicates, 2);
}

#[test]
fn a_snapshot_is_refused_for_another_site_configuration_or_version() {
    let site = site_s();
    let mut p = processor(&site);
    p.apply(&queued("1", "10:00:00", "c1"));
    let bytes = p.snapshot();
    assert!(restore(&bytes, &site).is_ok());

    let other = SiteConfig::with_defaults("lyon");
    assert_eq!(
        restore(&bytes, &other).err(),
        Some(SnapshotError::OtherSite {
            found: "s".into(),
            expected: "lyon".into()
        })
    );

    let mut stricter = site.clone();
    stricter.queues[0].sl_threshold = HumanDuration::secs(10);
    let error = restore(&bytes, &stricter).err();
    assert!(
        matches!(&error, Some(SnapshotError::ConfigChanged(what)) if what.contains(r#"queue "q" changed"#)),
        "{error:?}"
    );
    let mut renamed = site.clone();
    renamed.name = Some("Paris".into());
    let error = restore(&bytes, &renamed).err();
    assert!(
        matches!(&error, Some(SnapshotError::ConfigChanged(what)) if what.contains("the site's settings")),
        "{error:?}"
    );

    let quicker = ProcessingConfig {
        allowed_lateness: HumanDuration::secs(10),
        ..ProcessingConfig::default()
    };
    let error = SiteProcessor::restore(&bytes, site.clone(), &quicker).err();
    assert!(
        matches!(&error, Some(SnapshotError::ConfigChanged(what)) if what.contains("processing.allowed_lateness was 30s and is 10s")),
        "{error:?}"
    );
    // A dedupe window below the allowed lateness is the lateness: nothing the processor does
    // changes.
    let same = ProcessingConfig {
        dedupe_window: HumanDuration::secs(1),
        ..ProcessingConfig::default()
    };
    let shorter = ProcessingConfig {
        dedupe_window: HumanDuration::secs(2),
        ..ProcessingConfig::default()
    };
    let mut p = SiteProcessor::new(site.clone(), &same);
    p.apply(&queued("1", "10:00:00", "c1"));
    assert!(SiteProcessor::restore(&p.snapshot(), site.clone(), &shorter).is_ok());

    // The format is the first byte (a varint below 128).
    assert_eq!(bytes[0], SNAPSHOT_FORMAT as u8);
    let mut newer = bytes.clone();
    newer[0] = SNAPSHOT_FORMAT as u8 + 1;
    assert_eq!(
        restore(&newer, &site).err(),
        Some(SnapshotError::Version {
            found: SNAPSHOT_FORMAT + 1,
            expected: SNAPSHOT_FORMAT
        })
    );

    for truncated in [
        &bytes[..0],
        &bytes[..1],
        &bytes[..bytes.len() / 2],
        &bytes[..bytes.len() - 1],
    ] {
        assert!(
            matches!(restore(truncated, &site), Err(SnapshotError::Format(_))),
            "{} bytes",
            truncated.len()
        );
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(matches!(
        restore(&longer, &site),
        Err(SnapshotError::Format(_))
    ));
    let garbage: Vec<u8> = (0..4_000u32)
        .map(|n| (n.wrapping_mul(2_654_435_761) >> 7) as u8)
        .collect();
    assert!(restore(&garbage, &site).is_err());
}

/// The morning of site `s` in a processor of every site with these capture settings: c1
/// abandons (reported), the horizon passes 10:15 (captured).
fn processor_of_sites(interval_totals: bool, abandoned_contacts: bool) -> Processor {
    let mut processor = Processor::new(vec![site_s()], ProcessingConfig::default());
    if interval_totals {
        processor.enable_interval_totals();
    }
    if abandoned_contacts {
        processor.enable_abandoned_contacts();
    }
    for e in [
        queued("1", "10:00:00", "c1"),
        abandoned("2", "10:00:20", "c1"),
        queued("3", "10:16:00", "c2"),
    ] {
        assert_eq!(processor.apply(&e), Outcome::Applied);
    }
    processor
}

/// What a processor of every site gives its caller now: totals captured, abandons reported.
fn drained(processor: &mut Processor) -> (Vec<Timestamp>, usize) {
    let totals = processor
        .take_interval_totals()
        .iter()
        .map(|t| t.at)
        .collect();
    let changes = processor
        .take_abandoned_changes()
        .iter()
        .map(|(_, changes)| changes.len())
        .sum();
    (totals, changes)
}

fn at(time: &str) -> Timestamp {
    Timestamp::parse_rfc3339(&format!("2026-03-02T{time}Z")).expect("a valid time")
}

#[test]
fn a_restored_site_captures_and_reports_as_its_processor_does() {
    let with = processor_of_sites(true, true);
    let without = processor_of_sites(false, false);
    let saved_with = with.snapshot_site("s").expect("a known site");
    let saved_without = without.snapshot_site("s").expect("a known site");
    assert_eq!(with.snapshot_site("unknown"), None);

    // Both capture: what was pending comes along.
    let mut both = Processor::new(vec![site_s()], ProcessingConfig::default());
    both.enable_interval_totals();
    both.enable_abandoned_contacts();
    both.restore_site("s", &saved_with).expect("restores");
    let boundaries_of_day: Vec<Timestamp> = (1..=41)
        .map(|n| at("00:00:00") + Millis(n * 15 * 60_000))
        .collect();
    assert_eq!(drained(&mut both), (boundaries_of_day, 1));

    // Only the processor captures: started empty, from the horizon on.
    let mut started = Processor::new(vec![site_s()], ProcessingConfig::default());
    started.enable_interval_totals();
    started.enable_abandoned_contacts();
    started.restore_site("s", &saved_without).expect("restores");
    assert_eq!(drained(&mut started), (Vec::new(), 0));
    started.apply(&abandoned("4", "10:31:00", "c2"));
    assert_eq!(drained(&mut started), (vec![at("10:30:00")], 1));

    // The processor does not capture: nothing is kept, even what the snapshot had pending.
    let mut dropped = Processor::new(vec![site_s()], ProcessingConfig::default());
    dropped.restore_site("s", &saved_with).expect("restores");
    assert_eq!(drained(&mut dropped), (Vec::new(), 0));
    dropped.apply(&abandoned("4", "10:31:00", "c2"));
    assert_eq!(drained(&mut dropped), (Vec::new(), 0));
    assert_eq!(dropped.site("s").map(|s| s.stats().applied), Some(4));
}

#[test]
fn a_refused_restore_leaves_the_site_as_it_was() {
    let mut processor = processor_of_sites(true, true);
    let before = seen(processor.site("s").expect("a known site"));
    let mut other = Processor::new(Vec::new(), ProcessingConfig::default());
    let mut lyon = queued("1", "10:00:00", "c1");
    lyon.site = "lyon".into();
    other.apply(&lyon);
    let lyon_bytes = other.snapshot_site("lyon").expect("a known site");
    // A site not seen yet (its configuration the defaults) is created by the restore.
    let mut fresh = Processor::new(Vec::new(), ProcessingConfig::default());
    fresh.restore_site("lyon", &lyon_bytes).expect("restores");
    assert_eq!(fresh.site("lyon").map(|s| s.stats().applied), Some(1));
    assert!(matches!(
        processor.restore_site("s", &lyon_bytes),
        Err(SnapshotError::OtherSite { .. })
    ));
    let saved = processor.snapshot_site("s").expect("a known site");
    assert!(matches!(
        processor.restore_site("s", &saved[..saved.len() - 3]),
        Err(SnapshotError::Format(_))
    ));
    let mut changed = site_s();
    changed.queues[0].sl_target = 0.9;
    processor
        .reconfigure(changed)
        .expect("a valid configuration");
    let reconfigured = seen(processor.site("s").expect("a known site"));
    assert!(matches!(
        processor.restore_site("s", &saved),
        Err(SnapshotError::ConfigChanged(_))
    ));
    assert_eq!(
        seen(processor.site("s").expect("a known site")),
        reconfigured
    );
    assert_ne!(
        reconfigured.views, before.views,
        "the target shows in the views"
    );
    assert_eq!(reconfigured.stats, before.stats);
    assert_eq!(
        drained(&mut processor).1,
        1,
        "the pending abandon is still there"
    );
}
