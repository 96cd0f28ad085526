//! The core's views in their wire form (`vigie.v1`): field for field, the same names, nothing
//! recomputed.

use vigie_core::views::{
    AdvisorIndicators, AdvisorsByState, FlowIndicators, GroupIndicators, HandleIndicators,
    IntervalServiceLevel, LiveQueue, QueueIndicators,
};
use vigie_core::{SlVariant, Timestamp, Window};
use vigie_proto::v1 as pb;

/// The core window of a request (unset is today).
pub fn window_from_wire(window: i32) -> Option<Window> {
    match pb::Window::try_from(window).ok()? {
        pb::Window::Unspecified | pb::Window::Today => Some(Window::Today),
        pb::Window::Window15m => Some(Window::Last15m),
        pb::Window::Window30m => Some(Window::Last30m),
        pb::Window::Window60m => Some(Window::Last60m),
    }
}

/// The wire form of a window.
pub fn window_to_wire(window: Window) -> pb::Window {
    match window {
        Window::Today => pb::Window::Today,
        Window::Last15m => pb::Window::Window15m,
        Window::Last30m => pb::Window::Window30m,
        Window::Last60m => pb::Window::Window60m,
    }
}

/// A protobuf timestamp.
pub fn timestamp(time: Timestamp) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: time.0.div_euclid(1000),
        nanos: (time.0.rem_euclid(1000) * 1_000_000) as i32,
    }
}

/// A protobuf timestamp from the RFC 3339 text of a core view.
fn timestamp_text(text: Option<&String>) -> Option<prost_types::Timestamp> {
    text.and_then(|text| Timestamp::parse_rfc3339(text))
        .map(timestamp)
}

fn sl_variant(variant: SlVariant) -> i32 {
    match variant {
        SlVariant::Offered => pb::SlVariant::Offered,
        SlVariant::Answered => pb::SlVariant::Answered,
        SlVariant::Positive => pb::SlVariant::Positive,
    }
    .into()
}

/// The wire form of a live state name of the core.
pub fn live_state(state: &str) -> i32 {
    match state {
        "offered" => pb::LiveState::Offered,
        "talking" => pb::LiveState::Talking,
        "on_hold" => pb::LiveState::OnHold,
        "acw" => pb::LiveState::Acw,
        "pause" => pb::LiveState::Pause,
        "available" => pb::LiveState::Available,
        "logged_out" => pb::LiveState::LoggedOut,
        _ => pb::LiveState::Unspecified,
    }
    .into()
}

fn channel(channel: vigie_core::Channel) -> i32 {
    use vigie_core::Channel;
    match channel {
        Channel::Voice => pb::Channel::Voice,
        Channel::Chat => pb::Channel::Chat,
        Channel::Email => pb::Channel::Email,
        Channel::Callback => pb::Channel::Callback,
        Channel::Social => pb::Channel::Social,
        Channel::Task => pb::Channel::Task,
    }
    .into()
}

fn flow(flow: &FlowIndicators) -> pb::FlowIndicators {
    pb::FlowIndicators {
        offered: flow.offered,
        answered: flow.answered,
        abandoned: flow.abandoned,
        short_abandoned: flow.short_abandoned,
        dequeued: flow.dequeued,
        flowed_out: flow.flowed_out,
        answered_within_threshold: flow.answered_within_threshold,
        abandoned_within_threshold: flow.abandoned_within_threshold,
        sl_offered: flow.sl_offered,
        sl_answered: flow.sl_answered,
        sl_positive: flow.sl_positive,
        service_level: flow.service_level,
        service_level_variant: sl_variant(flow.service_level_variant),
        abandon_rate: flow.abandon_rate,
        asa: flow.asa,
        max_wait_answered: flow.max_wait_answered,
        wait_p50: flow.wait_p50,
        wait_p90: flow.wait_p90,
    }
}

fn handling(handling: &HandleIndicators) -> pb::HandleIndicators {
    pb::HandleIndicators {
        handled: handling.handled,
        aht: handling.aht,
        avg_talk: handling.avg_talk,
        avg_hold: handling.avg_hold,
        avg_acw: handling.avg_acw,
        held: handling.held,
        hold_rate: handling.hold_rate,
    }
}

fn by_state(advisors: &AdvisorsByState) -> pb::AdvisorsByState {
    pb::AdvisorsByState {
        offered: advisors.offered,
        talking: advisors.talking,
        on_hold: advisors.on_hold,
        acw: advisors.acw,
        pause: advisors.pause,
        available: advisors.available,
        logged_out: advisors.logged_out,
    }
}

fn live(live: &LiveQueue) -> pb::LiveQueue {
    pb::LiveQueue {
        in_queue: live.in_queue,
        longest_wait: live.longest_wait,
    }
}

fn queue_indicators(indicators: &QueueIndicators) -> pb::QueueIndicators {
    pb::QueueIndicators {
        flow: Some(flow(&indicators.flow)),
        handling: Some(handling(&indicators.handling)),
        transferred: indicators.transferred,
        transfer_rate: indicators.transfer_rate,
        live: Some(live(&indicators.live)),
    }
}

fn advisor_indicators(indicators: &AdvisorIndicators) -> pb::AdvisorIndicators {
    pb::AdvisorIndicators {
        handling: Some(handling(&indicators.handling)),
        transfers: indicators.transfers,
        transfer_rate: indicators.transfer_rate,
        missed_offers: indicators.missed_offers,
        occupancy: indicators.occupancy,
        handling_time: indicators.handling_time,
        available_time: indicators.available_time,
        login_time: indicators.login_time,
        pause_time: indicators.pause_time,
        pauses: indicators
            .pauses
            .iter()
            .map(|pause| pb::PauseTime {
                reason: pause.reason.clone(),
                time: pause.time,
                count: pause.count,
            })
            .collect(),
    }
}

fn group(indicators: &GroupIndicators) -> pb::GroupIndicators {
    pb::GroupIndicators {
        flow: Some(flow(&indicators.flow)),
        advisors_indicators: Some(advisor_indicators(&indicators.advisors_indicators)),
        live: Some(live(&indicators.live)),
        advisors: Some(by_state(&indicators.advisors)),
    }
}

fn service_level_by_interval(intervals: &[IntervalServiceLevel]) -> Vec<pb::IntervalServiceLevel> {
    intervals
        .iter()
        .map(|interval| pb::IntervalServiceLevel {
            start: Some(timestamp(interval.start)),
            answered: interval.answered,
            answered_within_threshold: interval.answered_within_threshold,
            abandoned: interval.abandoned,
            short_abandoned: interval.short_abandoned,
            abandoned_within_threshold: interval.abandoned_within_threshold,
            service_level: interval.service_level,
        })
        .collect()
}

/// A queue's view; `longest_waiting` only for callers who may see contact ids. `staffing` is
/// left unset: [`crate::staffing`] computes it from more than this view.
pub fn queue(
    view: &vigie_core::QueueView,
    header: pb::ViewHeader,
    longest_waiting: Option<(&str, Timestamp)>,
) -> pb::QueueView {
    pb::QueueView {
        header: Some(header),
        queue: view.queue.clone(),
        name: view.name.clone(),
        sl_threshold: view.sl_threshold,
        sl_target: view.sl_target,
        short_abandon: view.short_abandon,
        aht_target: view.aht_target,
        indicators: Some(queue_indicators(&view.indicators)),
        advisors: Some(by_state(&view.advisors)),
        channels: view
            .channels
            .iter()
            .map(|c| pb::ChannelIndicators {
                channel: channel(c.channel),
                indicators: Some(queue_indicators(&c.indicators)),
            })
            .collect(),
        longest_waiting: longest_waiting.map(|(contact, since)| pb::WaitingContact {
            contact: contact.to_owned(),
            since: Some(timestamp(since)),
        }),
        staffing: None,
        service_level_by_interval: service_level_by_interval(&view.service_level_by_interval),
    }
}

/// The live staffing of a queue or a team.
pub fn staffing(staffing: &crate::staffing::Staffing) -> pb::StaffingGap {
    use crate::staffing::AhtSource;
    let inputs = &staffing.inputs;
    let estimate = staffing.estimate.as_ref().ok();
    pb::StaffingGap {
        arrival_rate_15m: inputs.rate_15m(),
        arrival_rate_30m: inputs.rate_30m(),
        aht: inputs.aht.map(|(aht, _)| aht),
        aht_source: match inputs.aht.map(|(_, source)| source) {
            None => pb::AhtSource::Unspecified,
            Some(AhtSource::Last30m) => pb::AhtSource::Last30m,
            Some(AhtSource::Today) => pb::AhtSource::Today,
            Some(AhtSource::Target) => pb::AhtSource::Target,
        }
        .into(),
        load: inputs.load(),
        model: pb::StaffingModel::ErlangC.into(),
        sl_target: inputs.sl_target,
        sl_threshold: inputs.sl_threshold,
        required_advisors: estimate.map(|e| e.required),
        staffed_advisors: inputs.staffed,
        staffing_gap: staffing
            .gap()
            .map(|gap| gap.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32),
        expected_service_level: estimate.map(|e| e.expected_service_level),
        undefined_reason: staffing
            .estimate
            .as_ref()
            .err()
            .map(ToString::to_string)
            .unwrap_or_default(),
    }
}

/// One advisor of a grid.
pub fn advisor(view: &vigie_core::AdvisorView) -> pb::Advisor {
    pb::Advisor {
        advisor: view.advisor.clone(),
        name: view.name.clone(),
        team: view.team.clone(),
        state: live_state(view.state),
        reason: view.reason.clone(),
        state_since: timestamp_text(view.state_since.as_ref()),
        time_in_state: view.time_in_state,
        current_contact_duration: view.current_contact_duration,
        first_login: timestamp_text(view.first_login.as_ref()),
        indicators: Some(advisor_indicators(&view.indicators)),
    }
}

/// A team's indicators. `staffing` is left unset: [`crate::staffing`] computes it from more
/// than this view.
pub fn team(view: &vigie_core::TeamView) -> pb::Team {
    pb::Team {
        team: view.team.clone(),
        name: view.name.clone(),
        queues: view.queues.clone(),
        members: view.members.clone(),
        indicators: Some(group(&view.indicators)),
        staffing: None,
        service_level_by_interval: service_level_by_interval(&view.service_level_by_interval),
    }
}

/// A site's totals, teams and advisors; its queues are converted by the caller (their contact
/// ids depend on who asks). Its queues and teams go without their service level by interval
/// (the core's site view has none; a whole site's would be too large).
pub fn site(
    view: &vigie_core::SiteView,
    header: pb::ViewHeader,
    name: Option<String>,
    mut queues: Vec<pb::QueueView>,
) -> pb::SiteView {
    for queue in &mut queues {
        queue.service_level_by_interval = Vec::new();
    }
    let mut teams: Vec<pb::Team> = view.teams.iter().map(team).collect();
    for team in &mut teams {
        team.service_level_by_interval = Vec::new();
    }
    pb::SiteView {
        header: Some(header),
        name,
        totals: Some(group(&view.totals)),
        queues,
        teams,
        advisors: view.advisors.iter().map(advisor).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_keep_milliseconds_before_and_after_the_epoch() {
        assert_eq!(
            timestamp(Timestamp(1_500)),
            prost_types::Timestamp {
                seconds: 1,
                nanos: 500_000_000
            }
        );
        assert_eq!(
            timestamp(Timestamp(-1)),
            prost_types::Timestamp {
                seconds: -1,
                nanos: 999_000_000
            }
        );
    }

    #[test]
    fn every_window_goes_both_ways_and_unset_is_today() {
        for window in Window::ALL {
            assert_eq!(
                window_from_wire(window_to_wire(window).into()),
                Some(window)
            );
        }
        assert_eq!(window_from_wire(0), Some(Window::Today));
        assert_eq!(window_from_wire(99), None);
    }

    /// Every field gets a distinct value, so that two fields swapped in the conversion fail.
    #[test]
    fn flow_and_handling_fields_land_in_the_fields_of_the_same_name() {
        let core = FlowIndicators {
            offered: 1,
            answered: 2,
            abandoned: 3,
            short_abandoned: 4,
            dequeued: 5,
            flowed_out: 6,
            answered_within_threshold: 7,
            abandoned_within_threshold: 8,
            sl_offered: Some(0.09),
            sl_answered: Some(0.10),
            sl_positive: Some(0.11),
            service_level: Some(0.12),
            service_level_variant: SlVariant::Positive,
            abandon_rate: Some(0.13),
            asa: Some(14.0),
            max_wait_answered: Some(15.0),
            wait_p50: Some(16.0),
            wait_p90: Some(17.0),
        };
        let wire = flow(&core);
        assert_eq!(
            (
                wire.offered,
                wire.answered,
                wire.abandoned,
                wire.short_abandoned
            ),
            (1, 2, 3, 4)
        );
        assert_eq!(
            (
                wire.dequeued,
                wire.flowed_out,
                wire.answered_within_threshold,
                wire.abandoned_within_threshold
            ),
            (5, 6, 7, 8)
        );
        assert_eq!(
            (
                wire.sl_offered,
                wire.sl_answered,
                wire.sl_positive,
                wire.service_level
            ),
            (Some(0.09), Some(0.10), Some(0.11), Some(0.12))
        );
        assert_eq!(wire.service_level_variant, pb::SlVariant::Positive as i32);
        assert_eq!(
            (wire.abandon_rate, wire.asa, wire.max_wait_answered),
            (Some(0.13), Some(14.0), Some(15.0))
        );
        assert_eq!((wire.wait_p50, wire.wait_p90), (Some(16.0), Some(17.0)));

        let core = HandleIndicators {
            handled: 1,
            aht: Some(2.0),
            avg_talk: Some(3.0),
            avg_hold: Some(4.0),
            avg_acw: Some(5.0),
            held: 6,
            hold_rate: Some(0.7),
        };
        let wire = handling(&core);
        assert_eq!(
            (
                wire.handled,
                wire.aht,
                wire.avg_talk,
                wire.avg_hold,
                wire.avg_acw
            ),
            (1, Some(2.0), Some(3.0), Some(4.0), Some(5.0))
        );
        assert_eq!((wire.held, wire.hold_rate), (6, Some(0.7)));

        let core = AdvisorsByState {
            offered: 1,
            talking: 2,
            on_hold: 3,
            acw: 4,
            pause: 5,
            available: 6,
            logged_out: 7,
        };
        let wire = by_state(&core);
        assert_eq!(
            [
                wire.offered,
                wire.talking,
                wire.on_hold,
                wire.acw,
                wire.pause,
                wire.available,
                wire.logged_out
            ],
            [1, 2, 3, 4, 5, 6, 7]
        );
    }

    /// Every count gets a distinct value, so that two counts swapped in the conversion fail.
    #[test]
    fn interval_fields_land_in_the_fields_of_the_same_name() {
        let core = IntervalServiceLevel {
            start: Timestamp(1_500),
            answered: 1,
            answered_within_threshold: 2,
            abandoned: 3,
            short_abandoned: 4,
            abandoned_within_threshold: 5,
            service_level: Some(0.6),
        };
        let wire = service_level_by_interval(&[core]);
        assert_eq!(
            wire,
            [pb::IntervalServiceLevel {
                start: Some(timestamp(Timestamp(1_500))),
                answered: 1,
                answered_within_threshold: 2,
                abandoned: 3,
                short_abandoned: 4,
                abandoned_within_threshold: 5,
                service_level: Some(0.6),
            }]
        );
    }

    #[test]
    fn every_live_state_of_the_core_has_a_wire_value() {
        for state in [
            "offered",
            "talking",
            "on_hold",
            "acw",
            "pause",
            "available",
            "logged_out",
        ] {
            assert_ne!(live_state(state), 0, "{state}");
        }
    }
}
