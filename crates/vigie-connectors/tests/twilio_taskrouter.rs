//! The TaskRouter translator on sample callbacks, one per event type, built as TaskRouter
//! posts them to the workspace's `EventCallbackUrl` (Twilio, "TaskRouter Events reference":
//! <https://www.twilio.com/docs/taskrouter/api/event/reference>: `EventType`, `Sid`,
//! `Timestamp`/`TimestampMs`, the task, reservation and worker fields); then a generated day
//! applied to a site processor, whose figures must be those computed from the callbacks
//! themselves, in order and out of order with repeats.

mod common;

use std::collections::BTreeMap;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use vigie_connectors::{
    Callback, CallbackOutcome, CallbackProblem, TaskRouterConfig, TaskRouterTranslator,
};
use vigie_core::{Event, ProcessingConfig, SiteConfig, SiteProcessor, Timestamp, Window};

/// 2026-03-02T08:00:00Z.
const OPEN_MS: i64 = 1_772_438_400_000;

fn translator() -> TaskRouterTranslator {
    TaskRouterConfig {
        available_activities: vec!["Available".to_owned(), "Idle".to_owned()],
        ..TaskRouterConfig::default()
    }
    .build()
    .expect("a valid configuration")
}

fn callback(pairs: &[(&str, &str)]) -> Callback {
    Callback::from_pairs(pairs.iter().copied())
}

fn events(translator: &mut TaskRouterTranslator, pairs: &[(&str, &str)]) -> Vec<Event> {
    match translator.translate("paris", &callback(pairs)) {
        Ok(CallbackOutcome::Events(events)) => events,
        other => panic!("{pairs:?}: {other:?}"),
    }
}

fn json(events: &[Event]) -> Vec<serde_json::Value> {
    events
        .iter()
        .map(|event| {
            let mut value: serde_json::Value =
                serde_json::from_str(&event.to_json()).expect("events are JSON");
            assert!(
                value["id"]
                    .as_str()
                    .is_some_and(|id| id.starts_with("twr-"))
            );
            value.as_object_mut().expect("an object").remove("id");
            value
        })
        .collect()
}

const TASK: [(&str, &str); 5] = [
    ("TaskSid", "WT0001"),
    ("TaskQueueSid", "WQ0001"),
    ("TaskQueueName", "billing"),
    ("TaskChannelUniqueName", "voice"),
    (
        "TaskAttributes",
        "{\"from\":\"+33100000000\",\"type\":\"inbound\"}",
    ),
];

fn with_task<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut pairs: Vec<(&str, &str)> = TASK.to_vec();
    pairs.extend_from_slice(extra);
    pairs
}

#[test]
fn every_mapped_event_type_gives_its_canonical_event() {
    let mut t = translator();
    let time = "2026-03-02T08:00:10.250Z";
    let cases: Vec<(Vec<(&str, &str)>, serde_json::Value)> = vec![
        (
            with_task(&[
                ("EventType", "task-queue.entered"),
                ("Sid", "EV01"),
                ("TimestampMs", "1772438410250"),
            ]),
            serde_json::json!({"type":"contact.queued","time":time,"site":"paris","contact":"WT0001","queue":"billing","channel":"voice"}),
        ),
        (
            with_task(&[
                ("EventType", "reservation.created"),
                ("Sid", "EV02"),
                ("TimestampMs", "1772438410250"),
                ("ReservationSid", "WR01"),
                ("WorkerSid", "WK01"),
                ("WorkerName", "camille@example.com"),
            ]),
            serde_json::json!({"type":"contact.offered","time":time,"site":"paris","contact":"WT0001","advisor":"WK01"}),
        ),
        (
            with_task(&[
                ("EventType", "reservation.timeout"),
                ("Sid", "EV03"),
                ("TimestampMs", "1772438410250"),
                ("WorkerSid", "WK01"),
            ]),
            serde_json::json!({"type":"contact.missed","time":time,"site":"paris","contact":"WT0001","advisor":"WK01"}),
        ),
        (
            with_task(&[
                ("EventType", "reservation.rejected"),
                ("Sid", "EV04"),
                ("TimestampMs", "1772438410250"),
                ("WorkerSid", "WK02"),
            ]),
            serde_json::json!({"type":"contact.missed","time":time,"site":"paris","contact":"WT0001","advisor":"WK02"}),
        ),
        (
            with_task(&[
                ("EventType", "reservation.accepted"),
                ("Sid", "EV05"),
                ("TimestampMs", "1772438410250"),
                ("WorkerSid", "WK03"),
            ]),
            serde_json::json!({"type":"contact.answered","time":time,"site":"paris","contact":"WT0001","advisor":"WK03","queue":"billing","channel":"voice"}),
        ),
        (
            with_task(&[
                ("EventType", "task-queue.moved"),
                ("Sid", "EV06"),
                ("TimestampMs", "1772438410250"),
                ("TaskQueueName", "claims"),
            ]),
            serde_json::json!({"type":"contact.transferred","time":time,"site":"paris","contact":"WT0001","to_queue":"claims"}),
        ),
        (
            with_task(&[
                ("EventType", "task.transfer-initiated"),
                ("Sid", "EV07"),
                ("TimestampMs", "1772438410250"),
                ("WorkerSid", "WK03"),
                ("TransferType", "QUEUE"),
                ("TransferTo", "claims"),
            ]),
            serde_json::json!({"type":"contact.transferred","time":time,"site":"paris","contact":"WT0001","advisor":"WK03","queue":"billing","to_queue":"claims"}),
        ),
        (
            with_task(&[
                ("EventType", "task.wrapup"),
                ("Sid", "EV08"),
                ("TimestampMs", "1772438410250"),
                ("WorkerSid", "WK03"),
            ]),
            serde_json::json!({"type":"contact.ended","time":time,"site":"paris","contact":"WT0001","advisor":"WK03"}),
        ),
        (
            with_task(&[
                ("EventType", "task.completed"),
                ("Sid", "EV09"),
                ("TimestampMs", "1772438410250"),
                ("TaskCompletedReason", "Customer satisfied"),
            ]),
            serde_json::json!({"type":"contact.completed","time":time,"site":"paris","contact":"WT0001"}),
        ),
        (
            with_task(&[
                ("EventType", "task.canceled"),
                ("Sid", "EV10"),
                ("TimestampMs", "1772438410250"),
                ("TaskCanceledReason", "hangup"),
            ]),
            serde_json::json!({"type":"contact.abandoned","time":time,"site":"paris","contact":"WT0001","queue":"billing"}),
        ),
        (
            with_task(&[
                ("EventType", "task.canceled"),
                ("Sid", "EV11"),
                ("TimestampMs", "1772438410250"),
                ("TaskCanceledReason", "Task TTL Exceeded"),
            ]),
            serde_json::json!({"type":"contact.dequeued","time":time,"site":"paris","contact":"WT0001","queue":"billing","reason":"timeout"}),
        ),
        (
            with_task(&[
                ("EventType", "workflow.timeout"),
                ("Sid", "EV12"),
                ("TimestampMs", "1772438410250"),
            ]),
            serde_json::json!({"type":"contact.dequeued","time":time,"site":"paris","contact":"WT0001","queue":"billing","reason":"timeout"}),
        ),
    ];
    for (pairs, expected) in cases {
        assert_eq!(json(&events(&mut t, &pairs)), vec![expected], "{pairs:?}");
    }
    // Nothing of the task attributes (the caller's number) is copied.
    assert_eq!(t.stats().events, 12);
}

#[test]
fn worker_activity_changes_give_states_logins_and_logouts() {
    let mut t = translator();
    let update = |previous: &'static str, now: &'static str, sid: &'static str| {
        vec![
            ("EventType", "worker.activity.update"),
            ("Sid", sid),
            ("Timestamp", "1772438400"),
            ("WorkerSid", "WK01"),
            ("WorkerName", "camille@example.com"),
            ("WorkerPreviousActivityName", previous),
            ("WorkerActivityName", now),
        ]
    };
    let types = |events: Vec<Event>| -> Vec<serde_json::Value> {
        json(&events)
            .into_iter()
            .map(|mut value| {
                let object = value.as_object_mut().expect("an object");
                for key in ["time", "site", "advisor"] {
                    object.remove(key);
                }
                value
            })
            .collect()
    };
    assert_eq!(
        types(events(&mut t, &update("Offline", "Available", "EV1"))),
        [serde_json::json!({"type":"advisor.login"})]
    );
    assert_eq!(
        types(events(&mut t, &update("Offline", "Break", "EV2"))),
        [
            serde_json::json!({"type":"advisor.login"}),
            serde_json::json!({"type":"advisor.state","state":"pause","reason":"break"})
        ]
    );
    assert_eq!(
        types(events(&mut t, &update("Available", "Lunch Break", "EV3"))),
        [serde_json::json!({"type":"advisor.state","state":"pause","reason":"lunch break"})]
    );
    // A second available activity of the configuration, compared without regard to case.
    assert_eq!(
        types(events(&mut t, &update("Lunch Break", "IDLE", "EV4"))),
        [serde_json::json!({"type":"advisor.state","state":"available"})]
    );
    assert_eq!(
        types(events(&mut t, &update("Available", "Offline", "EV5"))),
        [serde_json::json!({"type":"advisor.logout"})]
    );
    // Offline to offline: nothing; a first update without a previous activity: a state.
    assert!(events(&mut t, &update("Offline", "Offline", "EV6")).is_empty());
    let first: Vec<(&str, &str)> = update("x", "Available", "EV7")
        .into_iter()
        .filter(|(key, _)| *key != "WorkerPreviousActivityName")
        .collect();
    assert_eq!(
        types(events(&mut t, &first)),
        [serde_json::json!({"type":"advisor.state","state":"available"})]
    );
    let login = events(&mut t, &update("Offline", "Available", "EV1"));
    assert_eq!(
        login[0].time,
        Timestamp(OPEN_MS),
        "Timestamp is Unix seconds"
    );
}

#[test]
fn a_redelivered_callback_gives_the_same_ids_and_distinct_callbacks_distinct_ones() {
    let mut t = translator();
    let offer = with_task(&[
        ("EventType", "reservation.created"),
        ("Sid", "EV100"),
        ("TimestampMs", "1772438410000"),
        ("WorkerSid", "WK01"),
    ]);
    let first = events(&mut t, &offer);
    let again = events(&mut t, &offer);
    assert_eq!(first, again);
    let mut other = offer.clone();
    other[6] = ("Sid", "EV101");
    assert_ne!(events(&mut t, &other)[0].id, first[0].id);
    // The same queue entry reported by task.created and task-queue.entered is one event.
    let created = events(
        &mut t,
        &with_task(&[
            ("EventType", "task.created"),
            ("Sid", "EV1"),
            ("Timestamp", "1772438400"),
        ]),
    );
    let entered = events(
        &mut t,
        &with_task(&[
            ("EventType", "task-queue.entered"),
            ("Sid", "EV2"),
            ("Timestamp", "1772438401"),
        ]),
    );
    assert_eq!(created[0].id, entered[0].id);
    // And so is the task's leaving, reported by workflow.timeout and task.canceled.
    let timeout = events(
        &mut t,
        &with_task(&[
            ("EventType", "workflow.timeout"),
            ("Sid", "EV3"),
            ("Timestamp", "1772438500"),
        ]),
    );
    let canceled = events(
        &mut t,
        &with_task(&[
            ("EventType", "task.canceled"),
            ("Sid", "EV4"),
            ("Timestamp", "1772438500"),
            ("TaskCanceledReason", "Workflow Timeout"),
        ]),
    );
    assert_eq!(timeout[0].id, canceled[0].id);
    // Another site, other ids.
    let Ok(CallbackOutcome::Events(lyon)) = t.translate("lyon", &callback(&offer)) else {
        panic!("translated");
    };
    assert_ne!(lyon[0].id, first[0].id);
}

#[test]
fn unknown_and_ignored_types_are_counted_not_translated() {
    let mut t = translator();
    for (event_type, ignored) in [
        ("reservation.canceled", true),
        ("reservation.rescinded", true),
        ("worker.attributes.update", true),
        ("task.transfer-initiated", true),
        ("task.teleported", false),
        ("task.teleported", false),
    ] {
        let outcome = t
            .translate(
                "paris",
                &callback(&with_task(&[
                    ("EventType", event_type),
                    ("Sid", "EV1"),
                    ("Timestamp", "1772438400"),
                    ("TransferType", "WORKER"),
                ])),
            )
            .expect("not malformed");
        match outcome {
            CallbackOutcome::Ignored { event_type: t } if ignored => assert_eq!(t, event_type),
            CallbackOutcome::Skipped { event_type: t } if !ignored => assert_eq!(t, event_type),
            other => panic!("{event_type}: {other:?}"),
        }
    }
    // A task created before any queue was chosen says nothing yet.
    assert!(matches!(
        t.translate(
            "paris",
            &callback(&[
                ("EventType", "task.created"),
                ("Sid", "EV9"),
                ("Timestamp", "1772438400"),
                ("TaskSid", "WT9")
            ])
        ),
        Ok(CallbackOutcome::Ignored { .. })
    ));
    assert_eq!(t.stats().skipped.get("task.teleported"), Some(&2));
    assert_eq!(t.stats().ignored.get("reservation.canceled"), Some(&1));
    assert_eq!(t.stats().ignored.get("task.created"), Some(&1));
    assert_eq!(t.stats().events, 0);
}

#[test]
fn malformed_callbacks_name_the_field() {
    let mut t = translator();
    let problem = |t: &mut TaskRouterTranslator, pairs: &[(&str, &str)]| {
        t.translate("paris", &callback(pairs)).unwrap_err()
    };
    let base = [("Sid", "EV1"), ("Timestamp", "1772438400")];
    assert_eq!(
        problem(&mut t, &base),
        CallbackProblem::MissingField {
            field: "EventType",
            event_type: "a callback".to_owned()
        }
    );
    let message = problem(
        &mut t,
        &[
            ("EventType", "reservation.created"),
            ("Sid", "EV1"),
            ("Timestamp", "1772438400"),
            ("TaskSid", "WT1"),
        ],
    )
    .to_string();
    assert_eq!(
        message,
        "field WorkerSid is required for reservation.created"
    );
    let message = problem(
        &mut t,
        &[
            ("EventType", "task-queue.entered"),
            ("Timestamp", "1772438400"),
            ("TaskSid", "WT1"),
        ],
    )
    .to_string();
    assert_eq!(message, "field Sid is required for task-queue.entered");
    let message = problem(
        &mut t,
        &[
            ("EventType", "task-queue.entered"),
            ("Sid", "EV1"),
            ("TaskSid", "WT1"),
        ],
    )
    .to_string();
    assert_eq!(
        message,
        "field Timestamp is required for task-queue.entered"
    );
    let message = problem(
        &mut t,
        &[
            ("EventType", "task-queue.entered"),
            ("Sid", "EV1"),
            ("Timestamp", "yesterday"),
            ("TaskSid", "WT1"),
        ],
    )
    .to_string();
    assert!(
        message.starts_with("field Timestamp is \"yesterday\""),
        "{message}"
    );
    let message = problem(
        &mut t,
        &[
            ("EventType", "task-queue.entered"),
            ("Sid", "EV1"),
            ("Timestamp", "1772438400"),
            ("TaskSid", "WT1"),
            ("TaskQueueName", "billing"),
        ],
    )
    .to_string();
    assert_eq!(
        message,
        "field TaskChannelUniqueName is required for task-queue.entered"
    );
    let message = problem(
        &mut t,
        &[
            ("EventType", "task-queue.entered"),
            ("Sid", "EV1"),
            ("Timestamp", "1772438400"),
            ("TaskSid", "WT1"),
            ("TaskQueueName", "billing"),
            ("TaskChannelUniqueName", "carrier-pigeon"),
        ],
    )
    .to_string();
    assert!(
        message.starts_with("field TaskChannelUniqueName is \"carrier-pigeon\""),
        "{message}"
    );
    let message = problem(
        &mut t,
        &[
            ("EventType", "task-queue.entered"),
            ("Sid", "EV1"),
            ("Timestamp", "1772438400"),
            ("TaskSid", "WT1"),
            ("TaskChannelUniqueName", "sms"),
        ],
    )
    .to_string();
    assert_eq!(
        message,
        "field TaskQueueName is required for task-queue.entered"
    );
    let message = problem(
        &mut t,
        &[
            ("EventType", "worker.activity.update"),
            ("Sid", "EV1"),
            ("Timestamp", "1772438400"),
            ("WorkerSid", "WK1"),
        ],
    )
    .to_string();
    assert_eq!(
        message,
        "field WorkerActivityName is required for worker.activity.update"
    );
    assert!(matches!(
        t.translate_form("paris", b"EventType=task.created&Sid=%4"),
        Err(CallbackProblem::NotAForm(_))
    ));
    assert_eq!(t.stats().malformed, 10);
    // A form body that decodes translates like its fields.
    let body = b"EventType=task-queue.entered&Sid=EV1&Timestamp=1772438400&TaskSid=WT1&TaskQueueName=Billing+FR&TaskChannelUniqueName=sms";
    let Ok(CallbackOutcome::Events(events)) = t.translate_form("paris", body) else {
        panic!("translated");
    };
    assert_eq!(
        json(&events),
        [
            serde_json::json!({"type":"contact.queued","time":"2026-03-02T08:00:00.000Z","site":"paris","contact":"WT1","queue":"Billing FR","channel":"chat"})
        ]
    );
}

#[test]
fn the_contact_can_come_from_a_task_attribute_and_queues_from_sids() {
    let mut t = TaskRouterConfig {
        contact_attribute: Some("vigie_contact".to_owned()),
        queue_id: vigie_connectors::QueueIdSource::Sid,
        queues: BTreeMap::from([("WQ0001".to_owned(), "billing".to_owned())]),
        advisors: BTreeMap::from([("WK01".to_owned(), "a-117".to_owned())]),
        ..TaskRouterConfig::default()
    }
    .build()
    .expect("valid");
    let pairs = [
        ("EventType", "reservation.accepted"),
        ("Sid", "EV1"),
        ("Timestamp", "1772438400"),
        ("TaskSid", "WT0002"),
        ("TaskQueueSid", "WQ0001"),
        ("TaskChannelUniqueName", "chat"),
        ("TaskAttributes", "{\"vigie_contact\":\"WT0001\"}"),
        ("WorkerSid", "WK01"),
    ];
    assert_eq!(
        json(&events(&mut t, &pairs)),
        [
            serde_json::json!({"type":"contact.answered","time":"2026-03-02T08:00:00.000Z","site":"paris","contact":"WT0001","advisor":"a-117","queue":"billing","channel":"chat"})
        ]
    );
    let mut unmapped = pairs.to_vec();
    unmapped[4] = ("TaskQueueSid", "WQ0009");
    unmapped[6] = ("TaskAttributes", "{}");
    let answered = json(&events(&mut t, &unmapped));
    assert_eq!(answered[0]["queue"], "WQ0009");
    assert_eq!(answered[0]["contact"], "WT0002");
}

// ---- a generated day ------------------------------------------------------------------------

const QUEUES: [&str; 2] = ["billing", "support"];
const WORKERS: usize = 6;

#[derive(Debug, Default, PartialEq)]
struct QueueFigures {
    offered: u64,
    answered: u64,
    abandoned: u64,
    dequeued: u64,
    handled: u64,
    asa: Option<f64>,
}

/// A callback's fields, in order.
type Fields = Vec<(String, String)>;

/// A callback at a time in ms, with its order of writing.
type Posted = (i64, usize, Fields);

struct Day {
    rng: ChaCha8Rng,
    /// (time in ms, order of writing, fields)
    callbacks: Vec<Posted>,
    sid: u64,
}

impl Day {
    fn post(&mut self, time: i64, event_type: &str, fields: &[(&str, String)]) {
        self.sid += 1;
        let mut pairs = vec![
            ("EventType".to_owned(), event_type.to_owned()),
            ("Sid".to_owned(), format!("EV{:032}", self.sid)),
            ("Timestamp".to_owned(), (time / 1000).to_string()),
            ("TimestampMs".to_owned(), time.to_string()),
            ("AccountSid".to_owned(), "AC0".to_owned()),
            ("WorkspaceSid".to_owned(), "WS0".to_owned()),
        ];
        pairs.extend(fields.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
        let order = self.callbacks.len();
        self.callbacks.push((time, order, pairs));
    }
}

/// A day of `tasks` tasks over two queues and six workers; the figures it should give, per
/// queue, computed as the day is written, and each worker's missed offers.
fn taskrouter_day(
    seed: u64,
    tasks: usize,
) -> (
    Vec<Fields>,
    BTreeMap<String, QueueFigures>,
    BTreeMap<String, u64>,
) {
    let mut day = Day {
        rng: ChaCha8Rng::seed_from_u64(seed),
        callbacks: Vec::new(),
        sid: 0,
    };
    let mut busy_until = [OPEN_MS; WORKERS];
    let mut waits: BTreeMap<&str, (i64, u64)> = BTreeMap::new();
    let mut figures: BTreeMap<String, QueueFigures> = BTreeMap::new();
    let mut missed: BTreeMap<String, u64> = BTreeMap::new();
    let worker = |index: usize| format!("WK{index:032}");
    for index in 0..WORKERS {
        day.post(
            OPEN_MS - 60_000,
            "worker.activity.update",
            &[
                ("WorkerSid", worker(index)),
                ("WorkerPreviousActivityName", "Offline".to_owned()),
                ("WorkerActivityName", "Available".to_owned()),
            ],
        );
    }
    let mut now = OPEN_MS;
    for task in 0..tasks {
        now += day.rng.random_range(5_000..40_000);
        let queue = QUEUES[day.rng.random_range(0..QUEUES.len())];
        let channel = ["voice", "chat", "sms"][day.rng.random_range(0..3)];
        let task_fields = vec![
            ("TaskSid", format!("WT{task:032}")),
            ("TaskQueueSid", format!("WQ{queue}")),
            ("TaskQueueName", queue.to_owned()),
            ("TaskChannelUniqueName", channel.to_owned()),
            ("TaskAttributes", "{\"from\":\"+33100000000\"}".to_owned()),
        ];
        day.post(now, "task.created", &task_fields);
        day.post(now, "task-queue.entered", &task_fields);
        let entry = figures.entry(queue.to_owned()).or_default();
        entry.offered += 1;
        let roll = day.rng.random_range(0..100);
        if roll < 15 {
            let wait = day.rng.random_range(6_000..90_000);
            let mut canceled = task_fields.clone();
            canceled.push(("TaskCanceledReason", "hangup".to_owned()));
            day.post(now + wait, "task.canceled", &canceled);
            figures.get_mut(queue).expect("entered").abandoned += 1;
            continue;
        }
        if roll < 22 {
            let wait = day.rng.random_range(60_000..120_000);
            day.post(now + wait, "workflow.timeout", &task_fields);
            let mut canceled = task_fields.clone();
            canceled.push(("TaskCanceledReason", "Workflow Timeout".to_owned()));
            day.post(now + wait, "task.canceled", &canceled);
            figures.get_mut(queue).expect("entered").dequeued += 1;
            continue;
        }
        // Offers until a free worker accepts; some time out first.
        let mut offer_at = now + day.rng.random_range(1_000..20_000);
        let mut answered = false;
        for _ in 0..3 {
            let Some(chosen) = (0..WORKERS).find(|w| busy_until[*w] < offer_at) else {
                offer_at += 30_000;
                continue;
            };
            let mut offered = task_fields.clone();
            offered.push(("WorkerSid", worker(chosen)));
            offered.push(("ReservationSid", format!("WR{task}-{chosen}")));
            day.post(offer_at, "reservation.created", &offered);
            if day.rng.random_bool(0.2) {
                let ring = day.rng.random_range(5_000..15_000);
                day.post(offer_at + ring, "reservation.timeout", &offered);
                *missed.entry(worker(chosen)).or_default() += 1;
                busy_until[chosen] = offer_at + ring;
                offer_at += ring + 1_000;
                continue;
            }
            let answer = offer_at + day.rng.random_range(2_000..8_000);
            day.post(answer, "reservation.accepted", &offered);
            let talk = day.rng.random_range(30_000..400_000);
            let acw = day.rng.random_range(0..60_000);
            day.post(answer + talk, "task.wrapup", &offered);
            day.post(answer + talk + acw, "task.completed", &offered);
            busy_until[chosen] = answer + talk + acw + 1_000;
            let figures = figures.get_mut(queue).expect("entered");
            figures.answered += 1;
            figures.handled += 1;
            let sums = waits.entry(queue).or_default();
            sums.0 += answer - now;
            sums.1 += 1;
            answered = true;
            break;
        }
        if !answered {
            let leave = offer_at + 1_000;
            let mut canceled = task_fields.clone();
            canceled.push(("TaskCanceledReason", "hangup".to_owned()));
            day.post(leave, "task.canceled", &canceled);
            figures.get_mut(queue).expect("entered").abandoned += 1;
        }
        if task % 25 == 24 {
            let who = day.rng.random_range(0..WORKERS);
            let at = busy_until[who].max(now) + 1_000;
            day.post(
                at,
                "worker.activity.update",
                &[
                    ("WorkerSid", worker(who)),
                    ("WorkerPreviousActivityName", "Available".to_owned()),
                    ("WorkerActivityName", "Break".to_owned()),
                ],
            );
            day.post(
                at + 300_000,
                "worker.activity.update",
                &[
                    ("WorkerSid", worker(who)),
                    ("WorkerPreviousActivityName", "Break".to_owned()),
                    ("WorkerActivityName", "Available".to_owned()),
                ],
            );
            busy_until[who] = at + 301_000;
        }
    }
    for (queue, (total, count)) in waits {
        // Averages in seconds, rounded to the millisecond, as the views report.
        figures.get_mut(queue).expect("entered").asa =
            Some((total as f64 / count as f64).round() / 1000.0);
    }
    day.callbacks
        .sort_by_key(|(time, order, _)| (*time, *order));
    let callbacks = day
        .callbacks
        .into_iter()
        .map(|(_, _, pairs)| pairs)
        .collect();
    (callbacks, figures, missed)
}

fn replay(callbacks: &[Vec<(String, String)>]) -> (SiteProcessor, TaskRouterTranslator) {
    let mut translator = translator();
    let mut processor = SiteProcessor::new(
        SiteConfig::with_defaults("paris"),
        &ProcessingConfig::default(),
    );
    for pairs in callbacks {
        let callback = Callback::from_pairs(pairs.iter().cloned());
        match translator.translate("paris", &callback) {
            Ok(CallbackOutcome::Events(events)) => {
                common::apply_all(&mut processor, &events);
            }
            other => panic!("{pairs:?}: {other:?}"),
        }
    }
    processor.advance_to(Timestamp(OPEN_MS + 12 * 3_600_000));
    (processor, translator)
}

fn figures_of(
    processor: &SiteProcessor,
) -> (BTreeMap<String, QueueFigures>, BTreeMap<String, u64>) {
    let queues = QUEUES
        .iter()
        .map(|queue| {
            let view = processor
                .queue_view(queue, Window::Today)
                .expect("every queue had tasks");
            let flow = &view.indicators.flow;
            (
                (*queue).to_owned(),
                QueueFigures {
                    offered: flow.offered,
                    answered: flow.answered,
                    abandoned: flow.abandoned,
                    dequeued: flow.dequeued,
                    handled: view.indicators.handling.handled,
                    asa: flow.asa,
                },
            )
        })
        .collect();
    let missed = processor
        .site_view(Window::Today)
        .advisors
        .iter()
        .filter(|view| view.indicators.missed_offers > 0)
        .map(|view| (view.advisor.clone(), view.indicators.missed_offers))
        .collect();
    (queues, missed)
}

#[test]
fn a_generated_day_gives_the_figures_of_its_callbacks() {
    let (callbacks, expected, missed) = taskrouter_day(20260302, 300);
    for figures in expected.values() {
        assert!(
            figures.answered > 50 && figures.abandoned > 3 && figures.dequeued > 3,
            "a day with every outcome: {figures:?}"
        );
    }
    assert!(missed.values().sum::<u64>() > 10);
    let (processor, translator) = replay(&callbacks);
    assert_eq!(figures_of(&processor), (expected, missed));
    // task.created and task-queue.entered, workflow.timeout and task.canceled: one event each.
    assert!(processor.stats().duplicates > 300);
    let pauses = &processor
        .site_view(Window::Today)
        .advisors
        .iter()
        .flat_map(|view| view.indicators.pauses.iter().map(|p| p.reason.clone()))
        .collect::<Vec<_>>();
    assert!(pauses.iter().all(|reason| reason == "break") && !pauses.is_empty());
    assert_eq!(translator.stats().malformed, 0);
}

#[test]
fn the_same_day_out_of_order_and_with_repeats_gives_the_same_figures() {
    let (callbacks, expected, missed) = taskrouter_day(7, 200);
    // Callbacks are posted concurrently: they arrive up to 3 s out of order, and one in ten
    // is delivered twice.
    let mut rng = ChaCha8Rng::seed_from_u64(99);
    let mut delivered: Vec<Posted> = Vec::new();
    for (order, pairs) in callbacks.iter().enumerate() {
        let time: i64 = pairs
            .iter()
            .find(|(k, _)| k == "TimestampMs")
            .and_then(|(_, v)| v.parse().ok())
            .expect("a time");
        delivered.push((time + rng.random_range(0..3_000), order, pairs.clone()));
        if rng.random_bool(0.1) {
            delivered.push((time + rng.random_range(0..3_000), order, pairs.clone()));
        }
    }
    delivered.sort_by_key(|(time, order, _)| (*time, *order));
    let delivered: Vec<Vec<(String, String)>> =
        delivered.into_iter().map(|(_, _, pairs)| pairs).collect();
    assert_ne!(delivered, callbacks);
    let (processor, _) = replay(&delivered);
    assert_eq!(figures_of(&processor), (expected, missed));
}
