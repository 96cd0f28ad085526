//! The alerts and notices of earlier days, kept in the history store across restarts.
//!
//! `vigie serve` runs twice against its own nats-server. The first run replays the morning of a
//! simulated day D1 (alert rules that fire on waiting callers), a notice shown for a week is
//! posted (and one shown for a minute, today by the wall clock, which is not D1), then the
//! service is killed mid-day. The second run replays the whole of D1 and the next day D2, so
//! that D1 is the site's yesterday, while its engine rebuilds D1's alerts from the events. Then:
//! D1's stored alert history has one record per alert, keeps every transition the first run had
//! stored (an acknowledgement included, which no replay rebuilds), repeats no transition;
//! `vigie alerts list --day D1` lists exactly those alerts; `vigie report --day D1` shows the
//! week's notice and D1's alerts, not the other notice.
#![allow(clippy::unwrap_used)] // A test fails loudly at the first surprise, on purpose.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use async_nats::jetstream::Context;
use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::consumer::pull::OrderedConfig;
use chrono::{Duration as Days, NaiveDate, NaiveTime};
use futures::StreamExt;
use vigie::config::VigieConfig;
use vigie::history_store::ALERT_HISTORY_PREFIX;
use vigie_api::history_store::{AlertRecord, TransitionKindRecord};
use vigie_core::Event;
use vigie_ingest::publish::PublisherConfig;
use vigie_sim::{SimConfig, Simulation};
use vigie_tests::cli::{Served, WAIT, http_get, metric};
use vigie_tests::nats::{NatsServer, publish_events, within};

/// How long the service's figures must stay unchanged to count as caught up: many engine
/// ticks (100 ms).
const STABLE: Duration = Duration::from_millis(2000);

/// The rule: a queue whose AHT of the day passes a second fires with its first contact
/// handled and stays firing. A figure of the whole day, so that a replay evaluated at other
/// instants (the engine evaluates on its tick, not per event) ends in the same states.
const RULES: &str = r#"
[[alert_rule]]
site = "alerts"
id = "aht"
name = "Handling time of the day"
scope = "every_queue"
metric = "aht"
window = "today"
comparator = "above"
warning = "1s"
critical = "1h"
"#;

/// One simulated day of site `alerts` on `date`, as a real feed delivers it; event ids carry
/// `tag` so that two days never share one.
fn day(date: NaiveDate, tag: &str) -> (VigieConfig, Vec<Event>) {
    let config = SimConfig {
        seed: 5,
        site_id: "alerts".into(),
        advisors: 14,
        queues: 3,
        date,
        open: NaiveTime::from_hms_opt(8, 0, 0).unwrap(),
        close: NaiveTime::from_hms_opt(11, 0, 0).unwrap(),
        ..SimConfig::default()
    };
    let simulation = Simulation::new(&config).unwrap();
    let site = simulation.site_config();
    let events = simulation
        .into_feed()
        .map(|mut event| {
            event.id = format!("{tag}-{}", event.id);
            event
        })
        .collect();
    (
        VigieConfig {
            sites: vec![site],
            ..VigieConfig::default()
        },
        events,
    )
}

/// `/metrics` of the service.
fn metrics(served: &Served) -> Option<String> {
    http_get(served.http, "/metrics")
        .filter(|(status, _)| *status == 200)
        .map(|(_, body)| body)
}

/// Waits until the service is ready and its events applied and alert records published have
/// not changed for [`STABLE`], with at least `published` alert records; returns that count.
fn settle(served: &mut Served, published: f64) -> f64 {
    let deadline = Instant::now() + WAIT * 2;
    let mut last = None;
    let mut since = Instant::now();
    loop {
        assert!(served.is_running(), "vigie serve exited");
        assert!(
            Instant::now() < deadline,
            "the service did not settle with {published} alert records; last seen {last:?}; \
             metrics:\n{}",
            metrics(served)
                .unwrap_or_default()
                .lines()
                .filter(|l| !l.starts_with('#') && (l.contains("alert") || l.contains("history")))
                .collect::<Vec<_>>()
                .join("\n")
        );
        std::thread::sleep(Duration::from_millis(100));
        let ready = http_get(served.http, "/readyz").is_some_and(|(status, _)| status == 200);
        let Some(text) = metrics(served) else {
            continue;
        };
        let seen = (
            ready,
            metric(&text, "vigie_events_applied_total"),
            metric(&text, "vigie_history_alerts_published_total"),
        );
        if last != Some(seen) {
            last = Some(seen);
            since = Instant::now();
            continue;
        }
        if let (true, Some(_), Some(count)) = seen
            && count >= published
            && since.elapsed() >= STABLE
        {
            return count;
        }
    }
}

/// Every message of the alert history stream: subject and alert record, for the alerts of
/// `date` (the notices and other days aside), and how many messages the stream holds.
async fn stored_alerts(context: &Context, date: &str) -> (BTreeMap<String, AlertRecord>, usize) {
    within("reading the alert history stream", WAIT, async {
        let consumer = context
            .create_consumer_on_stream(
                OrderedConfig {
                    deliver_policy: DeliverPolicy::All,
                    ..OrderedConfig::default()
                },
                "VIGIE_ALERT_HISTORY",
            )
            .await
            .unwrap();
        let mut found = BTreeMap::new();
        let mut messages_read = 0;
        if consumer.cached_info().num_pending == 0 {
            return (found, 0);
        }
        let mut messages = consumer.messages().await.unwrap();
        let prefix = format!("{ALERT_HISTORY_PREFIX}.alerts.{date}.alert.");
        while let Some(message) = messages.next().await {
            let message = message.unwrap();
            messages_read += 1;
            let pending = message.info().unwrap().pending;
            if message.subject.starts_with(&prefix) {
                let record: AlertRecord = serde_json::from_slice(&message.payload).unwrap();
                let again = found.insert(message.subject.to_string(), record);
                assert!(again.is_none(), "two messages on {}", message.subject);
            }
            if pending == 0 {
                break;
            }
        }
        (found, messages_read)
    })
    .await
}

/// `(kind, at_ms, by)` of each transition of a record.
fn transitions(record: &AlertRecord) -> Vec<(TransitionKindRecord, i64, Option<String>)> {
    record
        .history
        .iter()
        .map(|t| (t.kind, t.at_ms, t.by.clone()))
        .collect()
}

fn run(served: &mut Served, args: &[&str], dir: &Path) -> String {
    served.ok_text(args, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn earlier_days_keep_their_alerts_and_notices_across_a_restart_without_duplicates() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    // Days to come: the engine's clock follows the events, and the wall clock (which notices
    // follow) is before both.
    let zone: chrono_tz::Tz = "Europe/Paris".parse().unwrap();
    let d1 = chrono::Utc::now().with_timezone(&zone).date_naive() + Days::days(1);
    let d2 = d1 + Days::days(1);
    let (config, first_day) = day(d1, "d1");
    let (_, second_day) = day(d2, "d2");
    let second_day_len = second_day.len();
    let site = &config.sites[0];
    assert_eq!(site.time_zone, "Europe/Paris", "the simulated site's zone");
    let team = site.teams[0].id.clone();
    std::fs::write(
        dir.path().join("vigie.toml"),
        toml::to_string(&config).unwrap() + RULES,
    )
    .unwrap();
    let (_client, context) = server.connect_with_stream().await;
    let publisher = PublisherConfig::new(&server.nats_config().stream);
    let url = server.url();
    let args = ["--config", "vigie.toml", "--nats", url.as_str()];
    let binary = env!("CARGO_BIN_EXE_vigie");
    let (d1_text, d2_text) = (d1.to_string(), d2.to_string());

    // The morning of D1; a notice for the week, one for a minute, an acknowledgement.
    let half = first_day.len() / 2;
    publish_events(&context, publisher.clone(), &first_day[..half], WAIT).await;
    let mut first = Served::spawn(binary, &args, dir.path());
    let published = tokio::task::block_in_place(|| settle(&mut first, 1.0));
    let site_flag = ["--site", "alerts"];
    tokio::task::block_in_place(|| {
        let week = [
            &[
                "notice",
                &team,
                "Spring offer script all week",
                "--for",
                "7d",
            ][..],
            &site_flag,
        ]
        .concat();
        run(&mut first, &week, dir.path());
        let minute = [
            &["notice", &team, "Coffee machine fixed", "--for", "1m"][..],
            &site_flag,
        ]
        .concat();
        run(&mut first, &minute, dir.path());
    });
    let active = tokio::task::block_in_place(|| {
        run(
            &mut first,
            &[
                &["alerts", "list", "--active", "--format", "json"][..],
                &site_flag,
            ]
            .concat(),
            dir.path(),
        )
    });
    let active: serde_json::Value = serde_json::from_str(&active).unwrap();
    let firing = active["alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|alert| alert["state"] == "ALERT_STATE_FIRING")
        .and_then(|alert| alert["id"].as_str())
        .map(str::to_owned);
    // The AHT of the day stays above a second: the morning ends with alerts firing.
    assert!(firing.is_some(), "a firing alert to acknowledge: {active}");
    if let Some(id) = &firing {
        tokio::task::block_in_place(|| {
            run(
                &mut first,
                &[&["alerts", "ack", id.as_str()][..], &site_flag].concat(),
                dir.path(),
            );
        });
    }
    tokio::task::block_in_place(|| {
        vigie_tests::cli::eventually("the notices and the acknowledgement recorded", || {
            let text = metrics(&first)?;
            let notices = metric(&text, "vigie_api_notices_total{event=\"history_recorded\"}")?;
            let alerts = metric(&text, "vigie_history_alerts_published_total")?;
            (notices >= 2.0 && (firing.is_none() || alerts > published)).then_some(())
        })
    });
    // Killed, as a crash would: the record of D1 so far is what was stored.
    drop(first);
    let (before, _) = stored_alerts(&context, &d1_text).await;
    assert!(!before.is_empty(), "the first run stored D1's alerts");
    let reach = before.values().map(|r| r.as_of_ms).max().unwrap();

    // The rest of D1: the second run replays the whole day, rebuilding its alerts (at other
    // instants, without the acknowledgement) over what the first run stored.
    publish_events(&context, publisher.clone(), &first_day[half..], WAIT).await;
    let mut second = Served::spawn(binary, &args, dir.path());
    tokio::task::block_in_place(|| settle(&mut second, 0.0));
    // Today's list merges the store's records with the engine's: the acknowledgement is there.
    let listed = tokio::task::block_in_place(|| {
        run(
            &mut second,
            &[
                &["alerts", "list", "--day", &d1_text, "--format", "json"][..],
                &site_flag,
            ]
            .concat(),
            dir.path(),
        )
    });
    let id = firing.clone().unwrap_or_default();
    assert!(
        listed.contains(&id) && listed.contains("ALERT_TRANSITION_KIND_ACKNOWLEDGED"),
        "today's list after the restart keeps {id}'s acknowledgement: {listed}"
    );

    let (after, messages) = stored_alerts(&context, &d1_text).await;
    let mut stream = context.get_stream("VIGIE_ALERT_HISTORY").await.unwrap();
    let state = stream.info().await.unwrap().state.clone();
    assert_eq!(
        state.messages as usize, messages,
        "every message of the stream was read"
    );
    assert_eq!(
        state.subjects_count as usize, messages,
        "one message per subject: no alert or notice stored twice"
    );

    // Nothing the first run stored is lost; the acknowledgement is still there.
    let mut problems = Vec::new();
    for (subject, earlier) in &before {
        let Some(later) = after.get(subject) else {
            problems.push(format!("{subject}: stored by the first run, gone"));
            continue;
        };
        let kept = transitions(later);
        for transition in transitions(earlier) {
            if transition.1 <= reach && !kept.contains(&transition) {
                problems.push(format!("{subject}: {transition:?} lost; now {kept:?}"));
            }
        }
    }
    if let Some(id) = &firing {
        let acknowledged = after.values().any(|r| {
            &r.id == id
                && r.history
                    .iter()
                    .any(|t| t.kind == TransitionKindRecord::Acknowledged)
        });
        assert!(
            acknowledged,
            "the acknowledgement of {id} survived the restart"
        );
    }
    // No transition twice, no replayed copy: a lifecycle kind never follows itself.
    for (subject, record) in &after {
        let list = transitions(record);
        let distinct: BTreeSet<_> = list.iter().collect();
        if distinct.len() != list.len() {
            problems.push(format!("{subject}: a transition repeated: {list:?}"));
        }
        let lifecycle: Vec<_> = list
            .iter()
            .filter(|t| t.0.follows_the_figures())
            .map(|t| t.0)
            .collect();
        if lifecycle.windows(2).any(|pair| pair[0] == pair[1]) {
            problems.push(format!("{subject}: a change stored twice: {lifecycle:?}"));
        }
        if record.date != d1_text {
            problems.push(format!("{subject}: record of {}", record.date));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // D2: the site's day changes while the second run is live; then a third run starts over
    // with D1 as the site's yesterday, known from the store alone.
    let applied = |served: &Served| {
        metrics(served).and_then(|text| metric(&text, "vigie_events_applied_total"))
    };
    let before_d2 = applied(&second).unwrap_or_default();
    publish_events(&context, publisher, &second_day, WAIT).await;
    tokio::task::block_in_place(|| {
        vigie_tests::cli::eventually("D2's events applied", || {
            (applied(&second)? >= before_d2 + (second_day_len as f64) / 2.0).then_some(())
        });
        settle(&mut second, 0.0)
    });
    drop(second);
    let (after_d2, _) = stored_alerts(&context, &d1_text).await;
    assert_eq!(
        after_d2, after,
        "D1's records do not change once the day is over"
    );
    // The third run rebuilds D2 as the second run stored it: it may have nothing new to store.
    let mut second = Served::spawn(binary, &args, dir.path());
    tokio::task::block_in_place(|| settle(&mut second, 0.0));

    // The API and the CLI read D1 from the store: every alert with transitions, once.
    let listed = tokio::task::block_in_place(|| {
        run(
            &mut second,
            &[
                &["alerts", "list", "--day", &d1_text, "--format", "json"][..],
                &site_flag,
            ]
            .concat(),
            dir.path(),
        )
    });
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed["date"], d1_text.as_str());
    let ids: Vec<&str> = listed["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    let expected: Vec<&str> = after
        .values()
        .filter(|r| !r.history.is_empty())
        .map(|r| r.id.as_str())
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(ids, expected, "vigie alerts list --day {d1_text}");
    let table = tokio::task::block_in_place(|| {
        run(
            &mut second,
            &[&["alerts", "list", "--day", &d1_text][..], &site_flag].concat(),
            dir.path(),
        )
    });
    assert!(
        table.starts_with(&format!(
            "Alerts of {d1_text}: {} with transitions",
            ids.len()
        )),
        "{table}"
    );

    // D1's report: its alerts routed to the team and the notice shown that day.
    let report = tokio::task::block_in_place(|| {
        run(
            &mut second,
            &[
                &[
                    "report", "--team", &team, "--day", &d1_text, "--format", "md",
                ][..],
                &site_flag,
            ]
            .concat(),
            dir.path(),
        )
    });
    assert!(report.contains("Spring offer script all week"), "{report}");
    assert!(
        !report.contains("Coffee machine fixed"),
        "a notice of another day: {report}"
    );
    let fired_for_team = after.values().any(|r| {
        r.teams.contains(&team)
            && r.history
                .iter()
                .any(|t| t.kind == TransitionKindRecord::Fired)
    });
    assert!(fired_for_team, "the scenario has an alert of {team} on D1");
    assert!(
        report.contains("Handling time of the day"),
        "D1's alerts: {report}"
    );
    // Today (D2) is the engine's: it lists D2's alerts, not D1's.
    let today = tokio::task::block_in_place(|| {
        run(
            &mut second,
            &[
                &["alerts", "list", "--day", &d2_text, "--format", "json"][..],
                &site_flag,
            ]
            .concat(),
            dir.path(),
        )
    });
    let today: serde_json::Value = serde_json::from_str(&today).unwrap();
    assert_eq!(today["date"], d2_text.as_str());
}
