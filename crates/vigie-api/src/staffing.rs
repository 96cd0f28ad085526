//! The live staffing gap of queues and teams in the API's views ("need 14, have 11").
//!
//! The estimate itself is pure and lives in [`vigie_staffing::live`], shared with the alert
//! engine's `staffing_gap` metric so that an alert and the view it points to show the same
//! numbers; it is re-exported here for the readers of this crate. What is the API's own: the
//! wire form ([`crate::convert::staffing`], a `pb::StaffingGap`) and the wire form of a queue's
//! or a team's staffing at the site's current instant ([`queue_gap`], [`team_gap`]). Model,
//! choices, assumptions and limits: docs/staffing.md, "Live staffing gap".

use vigie_core::{SiteProcessor, Window};
use vigie_proto::v1 as pb;
pub use vigie_staffing::live::{
    AhtSource, Estimate, Inputs, MIN_HANDLED_30M, MIN_HANDLED_TODAY, PooledTargets, QueueTargets,
    SiteStaffing, Staffing, Undefined, choose_aht, queue, queue_inputs, site, staffed, team,
    team_inputs,
};

use crate::convert;

/// A queue's staffing at the site's current instant, in the wire form every view of the queue
/// carries; `None` for an unknown queue.
pub fn queue_gap(site: &SiteProcessor, queue_id: &str) -> Option<pb::StaffingGap> {
    let view = site.queue_view(queue_id, Window::Last30m)?;
    queue(site, &view).map(|staffing| convert::staffing(&staffing))
}

/// A team's staffing at the site's current instant, in the wire form every view of the team
/// carries; `None` for an unknown team.
pub fn team_gap(site: &SiteProcessor, team_id: &str) -> Option<pb::StaffingGap> {
    let view = site.team_view(team_id, Window::Last30m)?;
    team(site, &view).map(|staffing| convert::staffing(&staffing))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // A test fails loudly at the first surprise, on purpose.

    use vigie_core::config::HumanDuration;
    use vigie_core::{
        DEFAULT_MAX_EVENT_BYTES, Outcome, ProcessingConfig, QueueConfig, SiteConfig, TeamConfig,
        Timestamp, decode_json,
    };

    use super::*;

    fn inputs(offered_15m: u64, offered_30m: u64, staffed: u32) -> Inputs {
        Inputs {
            offered_15m,
            offered_30m,
            aht: Some((180.0, AhtSource::Last30m)),
            sl_target: 0.8,
            sl_threshold: 20.0,
            staffed,
            queues: 1,
        }
    }

    /// The Call Centre Helper worked example on the wire: 100 calls in 30 minutes at 180 s are
    /// 10 Erlangs and need 14 advisors for 80/20; with 11, Erlang C answers 38.96% within 20 s
    /// (the computation's own tests are in `vigie_staffing::live`).
    #[test]
    fn the_textbook_case_on_the_wire() {
        let staffing = Staffing::new(inputs(50, 100, 11));
        let estimate = staffing.estimate.clone().unwrap();
        assert!((estimate.expected_service_level - 0.3896).abs() < 5e-5);
        assert_eq!(
            convert::staffing(&staffing),
            pb::StaffingGap {
                arrival_rate_15m: 200.0,
                arrival_rate_30m: 200.0,
                aht: Some(180.0),
                aht_source: pb::AhtSource::Last30m.into(),
                load: Some(10.0),
                model: pb::StaffingModel::ErlangC.into(),
                sl_target: 0.8,
                sl_threshold: 20.0,
                required_advisors: Some(14),
                staffed_advisors: 11,
                staffing_gap: Some(-3),
                expected_service_level: Some(estimate.expected_service_level),
                undefined_reason: String::new(),
            }
        );
        let today = Staffing::new(Inputs {
            aht: Some((180.0, AhtSource::Today)),
            ..inputs(50, 100, 16)
        });
        let wire = convert::staffing(&today);
        assert_eq!(wire.aht_source, pb::AhtSource::Today as i32);
        assert_eq!(wire.staffing_gap, Some(2));
    }

    #[test]
    fn undefined_estimates_say_why_on_the_wire_and_keep_the_staffed_count() {
        let cases = [
            (inputs(0, 0, 3), "no contact offered"),
            (
                Inputs {
                    aht: None,
                    ..inputs(5, 8, 3)
                },
                "no AHT yet",
            ),
            (
                Inputs {
                    sl_target: 0.0,
                    ..inputs(5, 8, 3)
                },
                "target is 0",
            ),
            (
                Inputs {
                    sl_target: 1.0,
                    ..inputs(5, 8, 3)
                },
                "100%",
            ),
            (
                Inputs {
                    queues: 0,
                    ..inputs(0, 0, 3)
                },
                "no queue",
            ),
            // A billion contacts in 30 minutes: beyond the model's range, said so.
            (inputs(0, 1_000_000_000, 3), "load_erlangs"),
        ];
        for (inputs, text) in cases {
            let wire = convert::staffing(&Staffing::new(inputs.clone()));
            assert_eq!(wire.staffed_advisors, 3);
            assert_eq!(
                (
                    wire.required_advisors,
                    wire.staffing_gap,
                    wire.expected_service_level
                ),
                (None, None, None)
            );
            assert!(wire.undefined_reason.contains(text), "{wire:?}");
            assert_eq!(wire.load.is_some(), inputs.aht.is_some());
        }
        // No AHT at all: the wire says where it would have come from: nowhere.
        let wire = convert::staffing(&Staffing::new(Inputs {
            aht: None,
            ..inputs(5, 8, 3)
        }));
        assert_eq!(wire.aht_source, pb::AhtSource::Unspecified as i32);
        assert_eq!((wire.aht, wire.load), (None, None));
    }

    /// Site `s`: queue `q1` (80/20, AHT target 240 s) and `q2` (no AHT target), both served by
    /// team `t` (`a1` talking with a `q1` contact, `a2` available); 10 contacts offered to `q1`
    /// and 2 to `q2` over the last 30 minutes, at 09:40.
    fn small_site() -> SiteProcessor {
        let mut config = SiteConfig::with_defaults("s");
        let mut q1 = QueueConfig::with_defaults("q1");
        q1.aht_target = Some(HumanDuration::secs(240));
        config.queues = vec![q1, QueueConfig::with_defaults("q2")];
        config.teams = vec![TeamConfig {
            id: "t".into(),
            name: None,
            advisors: vec!["a1".into(), "a2".into()],
            queues: vec!["q1".into(), "q2".into()],
            sl_variant: None,
        }];
        let mut site = SiteProcessor::new(config, &ProcessingConfig::default());
        let mut count = 0;
        let mut apply = |time: String, rest: String| {
            count += 1;
            let json =
                format!(r#"{{"id":"e{count}","time":"2026-03-02T09:{time}Z","site":"s",{rest}}}"#);
            let event = decode_json(json.as_bytes(), DEFAULT_MAX_EVENT_BYTES).unwrap();
            assert_eq!(site.apply(&event), Outcome::Applied, "{json}");
        };
        for advisor in ["a1", "a2"] {
            apply(
                "00:00".into(),
                format!(r#""type":"advisor.login","advisor":"{advisor}""#),
            );
        }
        for i in 0..12 {
            let queue = if i < 10 { "q1" } else { "q2" };
            apply(
                format!("{:02}:00", 12 + 2 * i),
                format!(
                    r#""type":"contact.queued","contact":"c{i}","queue":"{queue}","channel":"voice""#
                ),
            );
        }
        apply(
            "36:00".into(),
            r#""type":"contact.answered","contact":"c0","advisor":"a1""#.into(),
        );
        site.advance_to(Timestamp::parse_rfc3339("2026-03-02T09:40:00Z").unwrap());
        site
    }

    /// `queue_gap` and `team_gap` are the wire form of the pure estimate over any window, and
    /// nothing for an unknown queue or team.
    #[test]
    fn gaps_are_the_wire_form_of_the_live_estimate() {
        let site = small_site();
        let mut defined = 0;
        for id in site.queue_ids() {
            let gap = queue_gap(&site, id).unwrap();
            for window in Window::ALL {
                let staffing = queue(&site, &site.queue_view(id, window).unwrap()).unwrap();
                assert_eq!(
                    gap,
                    convert::staffing(&staffing),
                    "queue {id} over {window}"
                );
            }
            defined += usize::from(gap.staffing_gap.is_some());
        }
        for id in site.team_ids() {
            let gap = team_gap(&site, id).unwrap();
            for window in Window::ALL {
                let staffing = team(&site, &site.team_view(id, window).unwrap()).unwrap();
                assert_eq!(gap, convert::staffing(&staffing), "team {id} over {window}");
            }
            defined += usize::from(gap.staffing_gap.is_some());
        }
        // q1 and t have an AHT (q1's target); q2 has none: said so.
        assert_eq!(defined, 2);
        let q1 = queue_gap(&site, "q1").unwrap();
        assert_eq!((q1.arrival_rate_30m, q1.staffed_advisors), (20.0, 2));
        let q2 = queue_gap(&site, "q2").unwrap();
        assert!(q2.undefined_reason.contains("no AHT yet"), "{q2:?}");
        assert_eq!(queue_gap(&site, "nowhere"), None);
        assert_eq!(team_gap(&site, "nobody"), None);
    }
}
