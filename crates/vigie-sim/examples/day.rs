//! Generates one simulated day and prints how long it took and what the day looked like.
//!
//! ```text
//! cargo run --release -p vigie-sim --example day -- [advisors] [queues] [seed]
//! cargo run --release -p vigie-sim --example day -- 10000 500
//! ```

use std::collections::HashMap;
use std::time::Instant;

use vigie_core::{
    AdvisorEventKind, AdvisorStatus, Channel, ContactEventKind, EventBody, SiteConfig,
};
use vigie_sim::{SimConfig, Simulation};

/// What an advisor is doing, for the occupancy figures.
#[derive(Default)]
struct AdvisorTrack {
    logged_in: bool,
    paused: bool,
    contacts: usize,
    offered: bool,
    since: i64,
}

#[derive(Default)]
struct ChannelStats {
    queued: u64,
    answered: u64,
    answered_within: u64,
    abandoned: u64,
    dequeued: u64,
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut number = |default: u64| {
        args.next()
            .map(|text| text.parse().expect("arguments are whole numbers"))
            .unwrap_or(default)
    };
    let defaults = SimConfig::default();
    let config = SimConfig {
        advisors: number(defaults.advisors as u64) as usize,
        queues: number(defaults.queues as u64) as usize,
        seed: number(defaults.seed),
        ..defaults
    };
    let started = Instant::now();
    let simulation = Simulation::new(&config).expect("a valid configuration");
    let site = simulation.site_config();
    let open = simulation.open_time().0;
    let mut count = 0u64;
    for event in simulation {
        count += 1;
        std::hint::black_box(&event);
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "{count} events for {} advisors, {} queues, {} teams in {elapsed:.2} s ({:.1} M events/s)",
        config.advisors,
        config.queues,
        site.teams.len(),
        count as f64 / elapsed / 1e6
    );
    describe(&config, &site, open);
}

/// Replays the day to print service level, abandons and occupancy by hour.
fn describe(config: &SimConfig, site: &SiteConfig, open: i64) {
    let thresholds: HashMap<&str, i64> = site
        .queues
        .iter()
        .map(|q| (q.id.as_str(), q.sl_threshold.millis().0))
        .collect();
    let mut entered: HashMap<String, i64> = HashMap::new();
    let mut channels: HashMap<Channel, ChannelStats> = HashMap::new();
    let mut advisors: HashMap<String, AdvisorTrack> = HashMap::new();
    let hours = 16;
    let mut busy = vec![0i64; hours];
    let mut idle = vec![0i64; hours];
    let mut reasons: HashMap<String, u64> = HashMap::new();
    let mut max_concurrent = 0;
    let mut voice_answered = vec![0u64; hours];
    let mut voice_abandoned = vec![0u64; hours];
    let simulation = Simulation::new(config).expect("a valid configuration");
    let hour_of = |now: i64| {
        usize::try_from((now - open) / 3_600_000)
            .unwrap_or(0)
            .min(hours - 1)
    };
    let mut account = |track: &mut AdvisorTrack, now: i64| {
        if track.logged_in && !track.paused {
            let hour = usize::try_from((track.since - open) / 3_600_000)
                .unwrap_or(0)
                .min(hours - 1);
            let spent = now - track.since;
            if track.contacts > 0 || track.offered {
                busy[hour] += spent;
            } else {
                idle[hour] += spent;
            }
        }
        track.since = now;
    };
    for event in simulation {
        let now = event.time.0;
        match &event.body {
            EventBody::Contact(contact) => {
                let channel = contact
                    .channel
                    .expect("the simulator always sets the channel");
                let stats = channels.entry(channel).or_default();
                let wait = |entered: &HashMap<String, i64>| now - entered[&contact.contact];
                match &contact.kind {
                    ContactEventKind::Queued => {
                        stats.queued += 1;
                        entered.insert(contact.contact.clone(), now);
                    }
                    ContactEventKind::Transferred { .. } => {
                        entered.insert(contact.contact.clone(), now);
                    }
                    ContactEventKind::Answered => {
                        stats.answered += 1;
                        if channel == Channel::Voice {
                            voice_answered[hour_of(now)] += 1;
                        }
                        let queue = contact.queue.as_deref().unwrap_or_default();
                        if wait(&entered) <= thresholds[queue] {
                            stats.answered_within += 1;
                        }
                    }
                    ContactEventKind::Abandoned => {
                        stats.abandoned += 1;
                        if channel == Channel::Voice {
                            voice_abandoned[hour_of(now)] += 1;
                        }
                    }
                    ContactEventKind::Dequeued { reason } => {
                        stats.dequeued += 1;
                        *reasons.entry(format!("dequeued {reason}")).or_default() += 1;
                    }
                    _ => {}
                }
                if let Some(advisor) = &contact.advisor {
                    let track = advisors.entry(advisor.clone()).or_default();
                    account(track, now);
                    match contact.kind {
                        ContactEventKind::Offered => track.offered = true,
                        ContactEventKind::Missed => track.offered = false,
                        ContactEventKind::Answered => {
                            track.offered = false;
                            track.contacts += 1;
                            max_concurrent = max_concurrent.max(track.contacts);
                        }
                        ContactEventKind::Completed { .. } => track.contacts -= 1,
                        _ => {}
                    }
                }
            }
            EventBody::Advisor(change) => {
                let track = advisors.entry(change.advisor.clone()).or_default();
                account(track, now);
                match &change.kind {
                    AdvisorEventKind::Login { .. } => track.logged_in = true,
                    AdvisorEventKind::Logout => track.logged_in = false,
                    AdvisorEventKind::State(AdvisorStatus::Available) => track.paused = false,
                    AdvisorEventKind::State(AdvisorStatus::Pause { reason }) => {
                        track.paused = true;
                        *reasons.entry(format!("pause {reason}")).or_default() += 1;
                    }
                }
            }
        }
    }
    let mut by_channel: Vec<_> = channels.into_iter().collect();
    by_channel.sort_by_key(|(channel, _)| *channel);
    for (channel, s) in by_channel {
        let handled = (s.answered + s.abandoned).max(1) as f64;
        println!(
            "{channel:>8}: {} queued, {} answered, SL {:.0}% (answered within T / answered + abandoned), abandon {:.1}%, {} dequeued",
            s.queued,
            s.answered,
            100.0 * s.answered_within as f64 / handled,
            100.0 * s.abandoned as f64 / handled,
            s.dequeued
        );
    }
    let occupancy: Vec<String> = (0..hours)
        .filter(|&h| busy[h] + idle[h] > 0)
        .map(|h| {
            format!(
                "{:.0}%",
                100.0 * busy[h] as f64 / (busy[h] + idle[h]) as f64
            )
        })
        .collect();
    println!("occupancy by hour from opening: {}", occupancy.join(" "));
    let abandons: Vec<String> = (0..hours)
        .filter(|&h| voice_answered[h] + voice_abandoned[h] > 0)
        .map(|h| {
            format!(
                "{}/{}",
                voice_abandoned[h],
                voice_answered[h] + voice_abandoned[h]
            )
        })
        .collect();
    println!("voice abandoned by hour: {}", abandons.join(" "));
    println!("most contacts at once for one advisor: {max_concurrent}");
    let mut reasons: Vec<_> = reasons.into_iter().collect();
    reasons.sort();
    println!("{reasons:?}");
}
