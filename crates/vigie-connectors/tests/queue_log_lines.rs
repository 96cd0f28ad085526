//! Translation of queue_log lines, event type by event type.
//!
//! The sample lines are written after the Asterisk documentation, "Queue Logs"
//! (<https://docs.asterisk.org/Operation/Logging/Queue-Logs/>, section "Queue log event
//! types"; the issue's link, /Configuration/Applications/Queues/Queue-Logs/, is the same page
//! at its older place): `UNIX timestamp|callid|queue|member channel|EVENT|parameters...`, with
//! the parameters of each event as that section lists them. Pause lines follow the
//! PauseQueueMember() documentation (the `reason` "is used to add extra information to the
//! appropriate queue_log entries") and the PAUSEALL/UNPAUSEALL samples of Wazo's queue_log
//! page (<https://wazo.readthedocs.io/en/wazo-20.03/api_sdk/queue_log.html>).
//!
//! Every event produced is also checked to decode back, through its JSON, to itself with
//! `vigie_core::decode_json`.

mod common;

use common::without_id;

use std::time::Duration;

use proptest::prelude::*;
use vigie_connectors::asterisk_queue_log::normalise_member;
use vigie_connectors::{
    ExitKeyReason, LineOutcome, LineProblem, QueueLogConfig, QueueLogQueueConfig,
    QueueLogTranslator,
};
use vigie_core::{
    DEFAULT_MAX_EVENT_BYTES, Event, Outcome, ProcessingConfig, SiteConfig, SiteProcessor,
    Timestamp, Window, decode_json,
};

/// 2026-03-02T09:15:00Z.
const T: i64 = 1_772_442_900;

fn config() -> QueueLogConfig {
    let mut config = QueueLogConfig::new("paris");
    config.queues.insert(
        "billing".to_owned(),
        QueueLogQueueConfig {
            wrapuptime: Duration::from_secs(15),
        },
    );
    config
        .advisors
        .insert("PJSIP/1001".to_owned(), "a-1001".to_owned());
    config
        .advisors
        .insert("1002".to_owned(), "a-1002".to_owned());
    config
        .transfer_targets
        .insert("600@from-queue".to_owned(), "claims".to_owned());
    config
        .exit_keys
        .insert("1".to_owned(), ExitKeyReason::Callback);
    config
}

fn translator() -> QueueLogTranslator {
    config().build().expect("the test configuration is valid")
}

/// The events of one line, each checked to round-trip through the JSON contract.
fn events_of(translator: &mut QueueLogTranslator, line: &str) -> Vec<Event> {
    match translator.translate_line(1, line) {
        Ok(LineOutcome::Events(events)) => {
            common::assert_round_trips(&events);
            events
        }
        other => panic!("{line:?} gave {other:?}, expected events"),
    }
}

fn described(translator: &mut QueueLogTranslator, line: &str) -> Vec<String> {
    events_of(translator, line).iter().map(without_id).collect()
}

fn line(offset: i64, rest: &str) -> String {
    format!("{}|{rest}", T + offset)
}

#[test]
fn enterqueue_queues_a_voice_contact_and_drops_the_caller_id() {
    // ENTERQUEUE(url|callerid|origposition)
    let mut translator = translator();
    let text = line(0, "1772442900.101|billing|NONE|ENTERQUEUE||0612345678|1");
    let events = described(&mut translator, &text);
    assert_eq!(
        events,
        [
            r#"{"type":"contact.queued","time":"2026-03-02T09:15:00.000Z","site":"paris","contact":"1772442900.101","queue":"billing","channel":"voice"}"#
        ]
    );
    assert!(!events[0].contains("0612345678"));
}

#[test]
fn connect_answers_with_the_member_as_advisor() {
    // CONNECT(holdtime|bridgedchanneluniqueid|ringtime)
    let mut translator = translator();
    events_of(
        &mut translator,
        &line(0, "1772442900.101|billing|NONE|ENTERQUEUE||0612345678|1"),
    );
    assert_eq!(
        described(
            &mut translator,
            &line(
                12,
                "1772442900.101|billing|PJSIP/1001|CONNECT|12|1772442912.55|3"
            )
        ),
        [
            r#"{"type":"contact.answered","time":"2026-03-02T09:15:12.000Z","site":"paris","contact":"1772442900.101","queue":"billing","channel":"voice","advisor":"a-1001"}"#
        ]
    );
}

#[test]
fn connect_without_its_entry_queues_the_call_at_the_time_its_holdtime_gives() {
    let mut translator = translator();
    assert_eq!(
        described(
            &mut translator,
            &line(
                12,
                "1772442900.101|billing|PJSIP/1001|CONNECT|12|1772442912.55|3"
            )
        ),
        [
            r#"{"type":"contact.queued","time":"2026-03-02T09:15:00.000Z","site":"paris","contact":"1772442900.101","queue":"billing","channel":"voice"}"#,
            r#"{"type":"contact.answered","time":"2026-03-02T09:15:12.000Z","site":"paris","contact":"1772442900.101","queue":"billing","channel":"voice","advisor":"a-1001"}"#,
        ]
    );
}

#[test]
fn complete_ends_the_call_and_completes_it_after_the_queue_wrapuptime() {
    // COMPLETEAGENT(holdtime|calltime|origposition), COMPLETECALLER(holdtime|calltime|origposition)
    let mut translator = translator();
    assert_eq!(
        described(
            &mut translator,
            &line(
                107,
                "1772442900.101|billing|PJSIP/1001|COMPLETEAGENT|12|95|1"
            )
        ),
        [
            r#"{"type":"contact.ended","time":"2026-03-02T09:16:47.000Z","site":"paris","contact":"1772442900.101","queue":"billing","advisor":"a-1001"}"#,
            r#"{"type":"contact.completed","time":"2026-03-02T09:17:02.000Z","site":"paris","contact":"1772442900.101","queue":"billing","advisor":"a-1001"}"#,
        ]
    );
    // A queue without wrapuptime: completed at the end's instant, after the end.
    assert_eq!(
        described(
            &mut translator,
            &line(
                60,
                "1772442950.7|support|Local/1002@agents/n|COMPLETECALLER|3|57|2"
            )
        ),
        [
            r#"{"type":"contact.ended","time":"2026-03-02T09:16:00.000Z","site":"paris","contact":"1772442950.7","queue":"support","advisor":"a-1002"}"#,
            r#"{"type":"contact.completed","time":"2026-03-02T09:16:00.000Z","site":"paris","contact":"1772442950.7","queue":"support","advisor":"a-1002"}"#,
        ]
    );
}

#[test]
fn callers_who_leave_unanswered_are_abandons_or_flow_outs() {
    let mut translator = translator();
    let mut check = |rest: &str, expected: &str| {
        let events = described(&mut translator, &line(30, rest));
        // The entry was not seen: it comes first, `waittime` before.
        assert_eq!(events.len(), 2, "{events:?}");
        assert!(
            events[0].contains(r#""type":"contact.queued","time":"2026-03-02T09:15:00.000Z""#),
            "{events:?}"
        );
        assert_eq!(events[1], expected);
    };
    // ABANDON(position|origposition|waittime)
    check(
        "c1|billing|NONE|ABANDON|2|3|30",
        r#"{"type":"contact.abandoned","time":"2026-03-02T09:15:30.000Z","site":"paris","contact":"c1","queue":"billing"}"#,
    );
    // EXITWITHTIMEOUT(position|origposition|waittime)
    check(
        "c2|billing|NONE|EXITWITHTIMEOUT|1|1|30",
        r#"{"type":"contact.dequeued","time":"2026-03-02T09:15:30.000Z","site":"paris","contact":"c2","queue":"billing","reason":"timeout"}"#,
    );
    // EXITEMPTY(position|origposition|waittime)
    check(
        "c3|billing|NONE|EXITEMPTY|1|1|30",
        r#"{"type":"contact.dequeued","time":"2026-03-02T09:15:30.000Z","site":"paris","contact":"c3","queue":"billing","reason":"closed"}"#,
    );
    // EXITWITHKEY(key|position|origposition|waittime): key 1 is configured as a callback...
    check(
        "c4|billing|NONE|EXITWITHKEY|1|1|1|30",
        r#"{"type":"contact.dequeued","time":"2026-03-02T09:15:30.000Z","site":"paris","contact":"c4","queue":"billing","reason":"callback"}"#,
    );
    // ... other keys take the default, voicemail.
    check(
        "c5|billing|NONE|EXITWITHKEY|5|1|1|30",
        r#"{"type":"contact.dequeued","time":"2026-03-02T09:15:30.000Z","site":"paris","contact":"c5","queue":"billing","reason":"voicemail"}"#,
    );
}

#[test]
fn ringnoanswer_is_an_offer_from_ringtime_ms_before_and_a_miss() {
    // RINGNOANSWER(ringtime), in milliseconds; the documentation's own sample line.
    let mut translator = translator();
    assert_eq!(
        described(
            &mut translator,
            "1366720340|1366720340.303267|MYQUEUE|SIP/8007|RINGNOANSWER|1000"
        ),
        [
            r#"{"type":"contact.offered","time":"2013-04-23T12:32:19.000Z","site":"paris","contact":"1366720340.303267","queue":"MYQUEUE","advisor":"8007"}"#,
            r#"{"type":"contact.missed","time":"2013-04-23T12:32:20.000Z","site":"paris","contact":"1366720340.303267","queue":"MYQUEUE","advisor":"8007"}"#,
        ]
    );
    // A member that could not be rung at all: offered and missed at the same instant,
    // offered first.
    let events = described(
        &mut translator,
        &line(0, "c1|billing|PJSIP/1001|RINGNOANSWER|0"),
    );
    assert!(events[0].contains("contact.offered") && events[0].contains("09:15:00.000Z"));
    assert!(events[1].contains("contact.missed") && events[1].contains("09:15:00.000Z"));
}

#[test]
fn transfer_to_a_queue_is_the_entry_there_and_completes_the_member() {
    // TRANSFER(extension|context|holdtime|calltime|origposition)
    let mut translator = translator();
    events_of(
        &mut translator,
        &line(0, "c1|billing|NONE|ENTERQUEUE||0612345678|1"),
    );
    events_of(
        &mut translator,
        &line(12, "c1|billing|PJSIP/1001|CONNECT|12|x.1|3"),
    );
    assert_eq!(
        described(
            &mut translator,
            &line(107, "c1|billing|PJSIP/1001|TRANSFER|600|from-queue|12|95|1")
        ),
        [
            r#"{"type":"contact.transferred","time":"2026-03-02T09:16:47.000Z","site":"paris","contact":"c1","queue":"billing","advisor":"a-1001","to_queue":"claims"}"#,
            r#"{"type":"contact.completed","time":"2026-03-02T09:17:02.000Z","site":"paris","contact":"c1","queue":"billing","advisor":"a-1001"}"#,
        ]
    );
    // The ENTERQUEUE that follows in claims is the same step: no second offer.
    assert_eq!(
        translator
            .translate_line(4, &line(107, "c1|claims|NONE|ENTERQUEUE||0612345678|1"))
            .expect("a valid line"),
        LineOutcome::Events(Vec::new())
    );
    assert_eq!(translator.stats().entries_merged_into_transfers, 1);
    // Answered in claims in the transfer's second: 1 ms after it, so that the core applies
    // the transfer first.
    assert_eq!(
        described(
            &mut translator,
            &line(107, "c1|claims|SIP/1003|CONNECT|0|x.2|1")
        ),
        [
            r#"{"type":"contact.answered","time":"2026-03-02T09:16:47.001Z","site":"paris","contact":"c1","queue":"claims","channel":"voice","advisor":"1003"}"#
        ]
    );
}

#[test]
fn transfers_elsewhere_leave_supervision() {
    let mut translator = translator();
    // BLINDTRANSFER(extension|context|holdtime|calltime|origposition), to a place that is
    // not a queue.
    let events = described(
        &mut translator,
        &line(
            60,
            "c1|billing|PJSIP/1001|BLINDTRANSFER|0142000000|outbound|5|40|1",
        ),
    );
    assert_eq!(
        events[0],
        r#"{"type":"contact.transferred","time":"2026-03-02T09:16:00.000Z","site":"paris","contact":"c1","queue":"billing","advisor":"a-1001"}"#
    );
    assert!(events[1].contains("contact.completed") && events[1].contains("09:16:15.000Z"));
    // ATTENDEDTRANSFER(method|method-data|holdtime|calltime|origposition)
    let events = described(
        &mut translator,
        &line(
            60,
            "c2|support|PJSIP/1001|ATTENDEDTRANSFER|BRIDGE|bridge-1|5|40|1",
        ),
    );
    assert_eq!(
        events,
        [
            r#"{"type":"contact.transferred","time":"2026-03-02T09:16:00.000Z","site":"paris","contact":"c2","queue":"support","advisor":"a-1001"}"#,
            r#"{"type":"contact.completed","time":"2026-03-02T09:16:00.000Z","site":"paris","contact":"c2","queue":"support","advisor":"a-1001"}"#,
        ]
    );
}

#[test]
fn pauses_carry_their_reason_and_repeats_per_queue_are_one_event() {
    let mut translator = translator();
    let pause_all = events_of(
        &mut translator,
        &line(0, "NONE|NONE|PJSIP/1001|PAUSEALL|lunch"),
    );
    let pause_billing = events_of(
        &mut translator,
        &line(0, "NONE|billing|PJSIP/1001|PAUSE|lunch"),
    );
    let pause_support = events_of(
        &mut translator,
        &line(0, "NONE|support|PJSIP/1001|PAUSE|lunch"),
    );
    assert_eq!(
        pause_all.iter().map(without_id).collect::<Vec<_>>(),
        [
            r#"{"type":"advisor.state","time":"2026-03-02T09:15:00.000Z","site":"paris","advisor":"a-1001","state":"pause","reason":"lunch"}"#
        ]
    );
    assert_eq!(pause_all, pause_billing);
    assert_eq!(pause_all, pause_support);
    assert_eq!(
        described(&mut translator, &line(60, "NONE|billing|PJSIP/1001|PAUSE|")),
        [
            r#"{"type":"advisor.state","time":"2026-03-02T09:16:00.000Z","site":"paris","advisor":"a-1001","state":"pause","reason":"unspecified"}"#
        ]
    );
    let unpause = events_of(
        &mut translator,
        &line(120, "NONE|billing|PJSIP/1001|UNPAUSE|"),
    );
    let unpause_all = events_of(
        &mut translator,
        &line(120, "NONE|NONE|PJSIP/1001|UNPAUSEALL|"),
    );
    assert_eq!(unpause, unpause_all);
    assert_eq!(
        unpause.iter().map(without_id).collect::<Vec<_>>(),
        [
            r#"{"type":"advisor.state","time":"2026-03-02T09:17:00.000Z","site":"paris","advisor":"a-1001","state":"available"}"#
        ]
    );
}

#[test]
fn membership_gives_one_login_at_the_first_queue_and_one_logout_at_the_last() {
    // ADDMEMBER / REMOVEMEMBER: the member is in the agent field.
    let mut translator = translator();
    let first = events_of(
        &mut translator,
        &line(0, "MANAGER|billing|PJSIP/1001|ADDMEMBER|"),
    );
    assert_eq!(
        first.iter().map(without_id).collect::<Vec<_>>(),
        [
            r#"{"type":"advisor.login","time":"2026-03-02T09:15:00.000Z","site":"paris","advisor":"a-1001"}"#
        ]
    );
    // The same second in another queue: the same login.
    assert_eq!(
        events_of(
            &mut translator,
            &line(0, "MANAGER|support|PJSIP/1001|ADDMEMBER|")
        ),
        first
    );
    // Later, a third queue: already logged in.
    assert!(
        events_of(
            &mut translator,
            &line(300, "MANAGER|claims|PJSIP/1001|ADDMEMBER|")
        )
        .is_empty()
    );
    assert!(
        events_of(
            &mut translator,
            &line(600, "MANAGER|billing|PJSIP/1001|REMOVEMEMBER|")
        )
        .is_empty()
    );
    assert!(
        events_of(
            &mut translator,
            &line(600, "MANAGER|claims|PJSIP/1001|REMOVEMEMBER|")
        )
        .is_empty()
    );
    assert_eq!(
        described(
            &mut translator,
            &line(660, "MANAGER|support|PJSIP/1001|REMOVEMEMBER|")
        ),
        [
            r#"{"type":"advisor.logout","time":"2026-03-02T09:26:00.000Z","site":"paris","advisor":"a-1001"}"#
        ]
    );
}

#[test]
fn agent_login_and_logoff_are_a_session() {
    // AGENTLOGIN(channel), AGENTLOGOFF(channel|logintime)
    let mut translator = translator();
    assert_eq!(
        described(
            &mut translator,
            &line(0, "NONE|NONE|Agent/1002|AGENTLOGIN|PJSIP/1002-0000001")
        ),
        [
            r#"{"type":"advisor.login","time":"2026-03-02T09:15:00.000Z","site":"paris","advisor":"a-1002"}"#
        ]
    );
    assert_eq!(
        described(
            &mut translator,
            &line(
                3600,
                "NONE|NONE|Agent/1002|AGENTLOGOFF|PJSIP/1002-0000001|3600"
            )
        ),
        [
            r#"{"type":"advisor.logout","time":"2026-03-02T10:15:00.000Z","site":"paris","advisor":"a-1002"}"#
        ]
    );
}

#[test]
fn events_without_counterpart_are_skipped_and_counted() {
    let mut translator = translator();
    for (rest, name) in [
        ("c1|billing|PJSIP/1001|RINGCANCELED|500", "RINGCANCELED"),
        ("NONE|NONE|NONE|CONFIGRELOAD|", "CONFIGRELOAD"),
        ("NONE|NONE|NONE|QUEUESTART|", "QUEUESTART"),
        ("c1|billing|PJSIP/1001|SYSCOMPAT|", "SYSCOMPAT"),
        ("c1|billing|PJSIP/1001|RINGCANCELED|800", "RINGCANCELED"),
    ] {
        assert_eq!(
            translator.translate_line(1, &line(0, rest)),
            Ok(LineOutcome::Skipped {
                event: name.to_owned()
            })
        );
    }
    let skipped = &translator.stats().skipped;
    assert_eq!(skipped.get("RINGCANCELED"), Some(&2));
    assert_eq!(skipped.get("CONFIGRELOAD"), Some(&1));
    assert_eq!(skipped.values().sum::<u64>(), 5);
    assert_eq!(translator.stats().events, 0);
}

/// Whether a problem is the one a case expects.
type IsProblem = fn(&LineProblem) -> bool;

#[test]
fn malformed_lines_are_errors_with_their_number_and_reason() {
    let mut translator = translator();
    let cases: [(&str, IsProblem, &str); 9] = [
        (
            "1772442900|c1|billing",
            |p| matches!(p, LineProblem::TooFewFields { found: 3 }),
            "3 field(s)",
        ),
        (
            "yesterday|c1|billing|NONE|ENTERQUEUE||x|1",
            |p| matches!(p, LineProblem::BadTime(_)),
            "neither Unix seconds",
        ),
        (
            "99999999999999999999|c1|billing|NONE|ENTERQUEUE||x|1",
            |p| matches!(p, LineProblem::BadTime(_)),
            "neither Unix seconds",
        ),
        (
            "1772442900|c1|billing|PJSIP/1001|CONNECT|soon|x.1|3",
            |p| {
                matches!(
                    p,
                    LineProblem::BadNumber {
                        field: "holdtime",
                        ..
                    }
                )
            },
            "CONNECT field holdtime is \"soon\"",
        ),
        (
            "1772442900|NONE|billing|NONE|ENTERQUEUE||x|1",
            |p| {
                matches!(
                    p,
                    LineProblem::MissingField {
                        field: "callid",
                        ..
                    }
                )
            },
            "ENTERQUEUE needs the callid field",
        ),
        (
            "1772442900|c1|billing|NONE|CONNECT|3|x.1|3",
            |p| matches!(p, LineProblem::MissingField { field: "agent", .. }),
            "CONNECT needs the agent field",
        ),
        (
            "1772442900|c1||NONE|ABANDON|1|1|3",
            |p| matches!(p, LineProblem::MissingField { field: "queue", .. }),
            "ABANDON needs the queue field",
        ),
        (
            "1772442900|c1|billing|PJSIP/1001|RINGNOANSWER|",
            |p| {
                matches!(
                    p,
                    LineProblem::BadNumber {
                        field: "ringtime",
                        ..
                    }
                )
            },
            "RINGNOANSWER field ringtime",
        ),
        (
            "1772442900|c1\u{7}|billing|NONE|ENTERQUEUE||x|1",
            |p| {
                matches!(
                    p,
                    LineProblem::InvalidIdentifier {
                        field: "callid",
                        ..
                    }
                )
            },
            "control character",
        ),
    ];
    for (number, (text, expected, message)) in cases.into_iter().enumerate() {
        let line_number = number as u64 + 10;
        let error = translator
            .translate_line(line_number, text)
            .expect_err("a malformed line");
        assert_eq!(error.line, line_number);
        assert!(expected(&error.problem), "{text:?}: {error}");
        let shown = error.to_string();
        assert!(
            shown.starts_with(&format!("queue_log line {line_number}: "))
                && shown.contains(message),
            "{shown}"
        );
    }
    assert_eq!(translator.stats().malformed, 9);
    // A wait beyond a week is a corrupt field, not a wait.
    let error = translator
        .translate_line(30, &line(0, "c9|billing|NONE|ABANDON|1|1|99999999"))
        .expect_err("an implausible wait");
    assert!(matches!(
        error.problem,
        LineProblem::BadNumber {
            field: "waittime",
            ..
        }
    ));
}

#[test]
fn a_repeated_line_gives_the_same_events_and_the_core_drops_the_copies() {
    let lines = [
        line(0, "c1|billing|NONE|ENTERQUEUE||0612345678|1"),
        line(5, "c1|billing|PJSIP/1002|RINGNOANSWER|4000"),
        line(12, "c1|billing|PJSIP/1001|CONNECT|12|x.1|3"),
        line(107, "c1|billing|PJSIP/1001|COMPLETEAGENT|12|95|1"),
    ];
    let mut translator = translator();
    let mut processor = processor();
    for text in &lines {
        let first = events_of(&mut translator, text);
        let again = events_of(&mut translator, text);
        assert_eq!(first, again, "{text}");
        for event in &first {
            assert_eq!(processor.apply(event), Outcome::Applied, "{event:?}");
        }
        for event in &again {
            assert_eq!(processor.apply(event), Outcome::Duplicate, "{event:?}");
        }
    }
    // And a restarted translator reading the same line gives the same ids.
    let mut restarted = config().build().expect("valid");
    assert_eq!(
        events_of(&mut restarted, &lines[3]),
        events_of(&mut translator, &lines[3])
    );
    let view = processor
        .queue_view("billing", Window::Today)
        .expect("billing was seen");
    assert_eq!(view.indicators.flow.offered, 1);
    assert_eq!(view.indicators.flow.answered, 1);
    assert_eq!(view.indicators.handling.handled, 1);
}

fn processor() -> SiteProcessor {
    let mut site = SiteConfig::with_defaults("paris");
    site.time_zone = "Europe/Paris".to_owned();
    SiteProcessor::new(site, &ProcessingConfig::default())
}

/// The figures of a queue after applying `lines` in the given order.
fn figures_after(
    order: &[usize],
    lines: &[String],
) -> (u64, u64, u64, Option<f64>, Option<f64>, u64) {
    let mut translator = translator();
    let mut processor = processor();
    for &index in order {
        for event in events_of(&mut translator, &lines[index]) {
            assert_eq!(processor.apply(&event), Outcome::Applied, "{event:?}");
        }
    }
    processor.advance_to(Timestamp((T + 400) * 1000));
    let view = processor
        .queue_view("billing", Window::Today)
        .expect("billing was seen");
    let flow = &view.indicators.flow;
    (
        flow.offered,
        flow.answered,
        flow.answered_within_threshold,
        flow.asa,
        view.indicators.handling.avg_talk,
        view.indicators.handling.handled,
    )
}

#[test]
fn lines_out_of_order_within_seconds_give_the_same_figures() {
    let lines = [
        line(0, "c1|billing|NONE|ENTERQUEUE||0612345678|1"),
        line(2, "c2|billing|NONE|ENTERQUEUE||0698765432|2"),
        line(12, "c1|billing|PJSIP/1001|CONNECT|12|x.1|3"),
        line(14, "c2|billing|PJSIP/1002|RINGNOANSWER|12000"),
        line(25, "c2|billing|SIP/1003|CONNECT|23|x.2|2"),
        line(107, "c1|billing|PJSIP/1001|COMPLETEAGENT|12|95|1"),
        line(110, "c2|billing|SIP/1003|COMPLETECALLER|23|85|2"),
    ]
    .map(|text| text.to_owned());
    let in_order = figures_after(&[0, 1, 2, 3, 4, 5, 6], &lines);
    assert_eq!(
        in_order,
        (2, 2, 1, Some(17.5), Some(90.0), 2),
        "offered, answered, within 20 s, ASA (12 and 23 s), talk (95 and 85 s), handled"
    );
    // Each answer before its entry, the miss before everything, an end before a connect.
    assert_eq!(figures_after(&[2, 3, 0, 4, 1, 6, 5], &lines), in_order);
    assert_eq!(figures_after(&[3, 4, 1, 2, 0, 5, 6], &lines), in_order);
}

#[test]
fn database_form_times_are_local_to_the_configured_zone() {
    let mut config = config();
    config.time_zone = "Europe/Paris".to_owned();
    let mut translator = config.build().expect("valid");
    // The realtime queue_log table stores local date-times with microseconds (Wazo's
    // samples): kept to the second, in the server's zone.
    let events = described(
        &mut translator,
        "2026-03-02 10:15:00.896208|1772442900.101|billing|NONE|ENTERQUEUE||0612345678|1",
    );
    assert!(
        events[0].contains(r#""time":"2026-03-02T09:15:00.000Z""#),
        "{events:?}"
    );
    // 02:30 does not exist on 2026-03-29 in Paris (clocks go from 02:00 to 03:00).
    let error = translator
        .translate_line(2, "2026-03-29 02:30:00|c1|billing|NONE|ENTERQUEUE||x|1")
        .expect_err("a skipped local time");
    assert!(matches!(
        error.problem,
        LineProblem::NonexistentLocalTime { .. }
    ));
}

#[test]
fn members_map_to_advisors_through_the_configuration_then_their_normalised_interface() {
    let translator = translator();
    assert_eq!(translator.advisor_of("PJSIP/1001"), "a-1001");
    // `1002` is listed bare: every technology of that extension maps to it.
    assert_eq!(translator.advisor_of("Local/1002@agents/n"), "a-1002");
    assert_eq!(translator.advisor_of("SIP/1002"), "a-1002");
    assert_eq!(translator.advisor_of("SIP/1003"), "1003");
    assert_eq!(translator.advisor_of("Alice Martin"), "Alice Martin");
    assert_eq!(normalise_member("Local/2001@from-queue/n"), "2001");
    assert_eq!(normalise_member("Agent/3001"), "3001");
    assert_eq!(normalise_member(" PJSIP/1001 "), "1001");
}

#[test]
fn configuration_reads_from_toml_and_reports_every_problem_at_once() {
    let config: QueueLogConfig = toml::from_str(
        r#"
        site = "paris"
        time_zone = "Europe/Paris"
        exit_key_default = "callback"
        call_memory = "3h"
        [queues.billing]
        wrapuptime = "15s"
        [advisors]
        "PJSIP/1001" = "a-1001"
        [transfer_targets]
        "600@from-queue" = "claims"
        [exit_keys]
        "1" = "voicemail"
        "#,
    )
    .expect("a valid configuration");
    assert_eq!(config.queues["billing"].wrapuptime, Duration::from_secs(15));
    assert_eq!(config.exit_key_default, ExitKeyReason::Callback);
    assert!(config.build().is_ok());

    assert!(toml::from_str::<QueueLogConfig>("site = \"paris\"\nwrapup = \"5s\"").is_err());

    let mut broken = QueueLogConfig::new(" ");
    broken.time_zone = "Paris".to_owned();
    broken.queues.insert(
        "billing".to_owned(),
        QueueLogQueueConfig {
            wrapuptime: Duration::from_secs(7200),
        },
    );
    broken.advisors.insert("PJSIP/1".to_owned(), String::new());
    let errors = broken.build().expect_err("four problems");
    let fields: Vec<&str> = errors.0.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "site",
            "advisors.\"PJSIP/1\"",
            "time_zone",
            "queues.\"billing\".wrapuptime"
        ]
    );
}

#[test]
fn memory_is_bounded_by_event_time() {
    let mut translator = translator();
    for call in 0..500 {
        events_of(
            &mut translator,
            &line(call, &format!("c{call}|billing|NONE|ENTERQUEUE||x|1")),
        );
    }
    assert_eq!(translator.remembered_calls(), 500);
    // Three hours later (beyond the default two hours of memory), only the new call is left.
    events_of(
        &mut translator,
        &line(3 * 3600, "late|billing|NONE|ENTERQUEUE||x|1"),
    );
    assert_eq!(translator.remembered_calls(), 1);
}

/// Lines made of queue_log-like pieces and arbitrary text.
fn arbitrary_line() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("ENTERQUEUE".to_owned()),
        Just("CONNECT".to_owned()),
        Just("COMPLETEAGENT".to_owned()),
        Just("TRANSFER".to_owned()),
        Just("ATTENDEDTRANSFER".to_owned()),
        Just("RINGNOANSWER".to_owned()),
        Just("EXITWITHKEY".to_owned()),
        Just("PAUSE".to_owned()),
        Just("ADDMEMBER".to_owned()),
        Just("REMOVEMEMBER".to_owned()),
        Just("AGENTLOGOFF".to_owned()),
        Just("NONE".to_owned()),
        Just("1772442900".to_owned()),
        Just("2026-03-29 02:30:00".to_owned()),
        Just("9223372036854775807".to_owned()),
        Just("PJSIP/1001".to_owned()),
        Just("Local/@/".to_owned()),
        "[0-9]{0,21}",
        "\\PC{0,12}",
        ".{0,300}",
    ];
    proptest::collection::vec(piece, 0..12).prop_map(|pieces| pieces.join("|"))
}

proptest! {
    #[test]
    fn translation_never_panics_and_every_event_is_valid(
        lines in proptest::collection::vec(arbitrary_line(), 1..20)
    ) {
        let mut translator = translator();
        for (index, text) in lines.iter().enumerate() {
            if let Ok(LineOutcome::Events(events)) = translator.translate_line(index as u64 + 1, text) {
                for event in events {
                    let decoded = decode_json(event.to_json().as_bytes(), DEFAULT_MAX_EVENT_BYTES);
                    prop_assert_eq!(decoded.as_ref(), Ok(&event));
                }
            }
        }
    }
}
