//! The views of the gRPC API as terminal tables: a header (site, window, instant, sequence,
//! completeness), the indicators against their targets, and the grids under them.
//!
//! Every function returns text and takes the site's time zone as an argument, so that the
//! rendering is tested without a server or a terminal. An undefined indicator (an unset
//! `optional` field) is shown as `-`, never as 0.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell, CellAlignment, Color, ContentArrangement, Table};
use vigie_proto::v1 as pb;

/// A duration in seconds as `12s`, `1m05s` or `2h03m10s`; `-` when undefined.
pub fn duration(secs: Option<f64>) -> String {
    let Some(secs) = secs.filter(|secs| secs.is_finite()) else {
        return "-".to_owned();
    };
    let total = secs.max(0.0).round() as u64;
    let (hours, minutes, seconds) = (total / 3600, (total % 3600) / 60, total % 60);
    if hours > 0 {
        format!("{hours}h{minutes:02}m{seconds:02}s")
    } else if minutes > 0 {
        format!("{minutes}m{seconds:02}s")
    } else {
        format!("{seconds}s")
    }
}

/// A fraction as a percentage with one decimal (`82.4%`); `-` when undefined.
pub fn percent(fraction: Option<f64>) -> String {
    fraction
        .filter(|fraction| fraction.is_finite())
        .map_or_else(|| "-".to_owned(), |f| format!("{:.1}%", f * 100.0))
}

/// An instant in the site's time zone when known, else in UTC.
pub fn instant(time: Option<&prost_types::Timestamp>, zone: Option<Tz>) -> String {
    let Some(time) = time.and_then(|time| {
        DateTime::<Utc>::from_timestamp(time.seconds, u32::try_from(time.nanos).unwrap_or(0))
    }) else {
        return "-".to_owned();
    };
    const FORMAT: &str = "%Y-%m-%d %H:%M:%S %Z";
    match zone {
        Some(zone) => time.with_timezone(&zone).format(FORMAT).to_string(),
        None => time.format(FORMAT).to_string(),
    }
}

/// The name a window is given on the command line.
pub fn window_name(window: pb::Window) -> &'static str {
    match window {
        pb::Window::Unspecified | pb::Window::Today => "today",
        pb::Window::Window15m => "15m",
        pb::Window::Window30m => "30m",
        pb::Window::Window60m => "60m",
    }
}

/// An advisor's live state in words.
pub fn state_name(state: pb::LiveState) -> &'static str {
    match state {
        pb::LiveState::Unspecified => "-",
        pb::LiveState::Offered => "ringing",
        pb::LiveState::Talking => "talking",
        pb::LiveState::OnHold => "on hold",
        pb::LiveState::Acw => "wrap-up",
        pb::LiveState::Pause => "pause",
        pb::LiveState::Available => "available",
        pb::LiveState::LoggedOut => "logged out",
    }
}

/// A channel in words.
fn channel_name(channel: pb::Channel) -> &'static str {
    match channel {
        pb::Channel::Unspecified => "-",
        pb::Channel::Voice => "voice",
        pb::Channel::Chat => "chat",
        pb::Channel::Email => "email",
        pb::Channel::Callback => "callback",
        pb::Channel::Social => "social",
        pb::Channel::Task => "task",
    }
}

/// `id (name)` when there is a name, else `id`.
fn named(id: &str, name: Option<&str>) -> String {
    match name {
        Some(name) if !name.is_empty() && name != id => format!("{id} ({name})"),
        _ => id.to_owned(),
    }
}

/// Wraps to the terminal's width, unless the terminal reports none worth the name (a
/// pseudo-terminal without a size says 0 columns): then the table keeps its natural width.
fn fit_terminal(table: &mut Table) {
    if table.width().is_some_and(|width| width < 40) {
        table.set_content_arrangement(ContentArrangement::Disabled);
    }
}

/// A table whose first `text_columns` columns are text (left-aligned), the rest figures.
fn table(headers: &[&str], text_columns: usize) -> Table {
    let mut table = Table::new();
    table
        .load_style(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic);
    table.set_header(headers.iter().map(Cell::new));
    fit_terminal(&mut table);
    for index in text_columns..headers.len() {
        if let Some(column) = table.column_mut(index) {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
    table
}

/// The lines above every view: where the figures stand, and a visible warning when they may
/// miss events.
fn header(title: &str, header: Option<&pb::ViewHeader>, zone: Option<Tz>) -> String {
    let mut text = format!("{title}\n");
    let Some(header) = header else {
        text.push_str("INCOMPLETE: the server sent no header\n");
        return text;
    };
    text.push_str(&format!(
        "site {} · window {} · as of {} · seq {}\n",
        header.site,
        window_name(header.window()),
        instant(header.as_of.as_ref(), zone),
        header.seq,
    ));
    if !header.complete {
        let reason = if header.incomplete_reason.is_empty() {
            "no reason given"
        } else {
            header.incomplete_reason.as_str()
        };
        text.push_str(&format!("INCOMPLETE: {reason}\n"));
    }
    text
}

/// A figure coloured against its target when the terminal shows colours: green when it meets
/// the target, red when it does not.
fn against(text: String, meets: Option<bool>) -> Cell {
    match meets {
        Some(true) => Cell::new(text).fg(Color::Green),
        Some(false) => Cell::new(text).fg(Color::Red),
        None => Cell::new(text),
    }
}

/// A service-level target: `80.0% in 20s`.
fn sl_target(target: f64, threshold: f64) -> String {
    format!("{} in {}", percent(Some(target)), duration(Some(threshold)))
}

/// The targets of several queues, each distinct one once, in order.
fn distinct(targets: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut seen = Vec::new();
    for target in targets {
        if !seen.contains(&target) {
            seen.push(target);
        }
    }
    seen
}

/// The service-level and AHT targets of a group of queues, with the single numeric targets
/// when all queues share them (for colouring).
struct Targets {
    sl: String,
    sl_value: Option<f64>,
    aht: String,
    aht_value: Option<f64>,
}

impl Targets {
    fn of(queues: &[pb::QueueTargets]) -> Targets {
        let sl = distinct(
            queues
                .iter()
                .map(|q| sl_target(q.sl_target, q.sl_threshold)),
        );
        let aht = distinct(
            queues
                .iter()
                .filter_map(|q| q.aht_target)
                .map(|aht| duration(Some(aht))),
        );
        let single = |values: Vec<f64>| match values.as_slice() {
            [first, rest @ ..] if rest.iter().all(|v| v == first) => Some(*first),
            _ => None,
        };
        let all_aht: Option<Vec<f64>> = queues.iter().map(|q| q.aht_target).collect();
        Targets {
            sl_value: if sl.len() == 1 {
                single(queues.iter().map(|q| q.sl_target).collect())
            } else {
                None
            },
            aht_value: all_aht.and_then(single),
            sl: sl.join(" / "),
            aht: aht.join(" / "),
        }
    }
}

/// The indicators every view shows, as rows of `indicator | value | target`.
struct Board {
    service_level: Option<f64>,
    in_queue: u64,
    longest_wait: Option<f64>,
    available: u32,
    aht: Option<f64>,
    abandon_rate: Option<f64>,
    handled: u64,
    offered: u64,
    answered: u64,
    /// The live staffing, shown on queue and team views.
    staffing: Option<pb::StaffingGap>,
}

impl Board {
    fn group(indicators: &pb::GroupIndicators) -> Board {
        let flow = indicators.flow.unwrap_or_default();
        let live = indicators.live.unwrap_or_default();
        let handling = indicators
            .advisors_indicators
            .as_ref()
            .and_then(|a| a.handling)
            .unwrap_or_default();
        Board {
            service_level: flow.service_level,
            in_queue: live.in_queue,
            longest_wait: live.longest_wait,
            available: indicators.advisors.unwrap_or_default().available,
            aht: handling.aht,
            abandon_rate: flow.abandon_rate,
            handled: handling.handled,
            offered: flow.offered,
            answered: flow.answered,
            staffing: None,
        }
    }

    fn queue(indicators: &pb::QueueIndicators, advisors: Option<&pb::AdvisorsByState>) -> Board {
        let flow = indicators.flow.unwrap_or_default();
        let live = indicators.live.unwrap_or_default();
        let handling = indicators.handling.unwrap_or_default();
        Board {
            service_level: flow.service_level,
            in_queue: live.in_queue,
            longest_wait: live.longest_wait,
            available: advisors.copied().unwrap_or_default().available,
            aht: handling.aht,
            abandon_rate: flow.abandon_rate,
            handled: handling.handled,
            offered: flow.offered,
            answered: flow.answered,
            staffing: None,
        }
    }

    fn table(&self, targets: &Targets) -> Table {
        let mut table = table(&["indicator", "value", "target"], 1);
        let sl_meets = self
            .service_level
            .zip(targets.sl_value)
            .map(|(value, target)| value >= target);
        let aht_meets = self
            .aht
            .zip(targets.aht_value)
            .map(|(value, target)| value <= target);
        let rows = [
            (
                "service level",
                against(percent(self.service_level), sl_meets),
                targets.sl.clone(),
            ),
            ("in queue", Cell::new(self.in_queue), String::new()),
            (
                "longest wait",
                Cell::new(duration(self.longest_wait)),
                String::new(),
            ),
            (
                "available advisors",
                Cell::new(self.available),
                String::new(),
            ),
            (
                "AHT",
                against(duration(self.aht), aht_meets),
                targets.aht.clone(),
            ),
            (
                "abandon rate",
                Cell::new(percent(self.abandon_rate)),
                String::new(),
            ),
            ("handled", Cell::new(self.handled), String::new()),
            ("offered", Cell::new(self.offered), String::new()),
            ("answered", Cell::new(self.answered), String::new()),
        ];
        for (name, value, target) in rows {
            table.add_row(vec![Cell::new(name), value, Cell::new(target)]);
        }
        if let Some(staffing) = &self.staffing {
            let enough = staffing.staffing_gap.map(|gap| gap >= 0);
            table.add_row(vec![
                Cell::new("staffing"),
                against(need_have(staffing), enough),
                Cell::new(String::new()),
            ]);
        }
        table
    }
}

/// Advisors by live state, in one line.
fn by_state(advisors: Option<&pb::AdvisorsByState>) -> String {
    let a = advisors.copied().unwrap_or_default();
    format!(
        "advisors: {} available · {} ringing · {} talking · {} on hold · {} wrap-up · {} pause · {} logged out",
        a.available, a.offered, a.talking, a.on_hold, a.acw, a.pause, a.logged_out
    )
}

/// The live staffing in a few words: `need 14, have 11` (`need -` when undefined).
pub fn need_have(staffing: &pb::StaffingGap) -> String {
    let need = staffing
        .required_advisors
        .map_or_else(|| "-".to_owned(), |n| n.to_string());
    format!("need {need}, have {}", staffing.staffed_advisors)
}

/// What a staffing estimate rests on, in one line, or why there is none.
fn staffing_line(staffing: &pb::StaffingGap) -> String {
    let Some(gap) = staffing.staffing_gap else {
        let reason = if staffing.undefined_reason.is_empty() {
            "undefined"
        } else {
            staffing.undefined_reason.as_str()
        };
        return format!("staffing: {}; {reason}", need_have(staffing));
    };
    let verdict = match gap {
        ..0 => format!("{} short", gap.unsigned_abs()),
        0 => "just enough".to_owned(),
        _ => format!("{gap} spare"),
    };
    // The server staffs for the higher rate, the 30 minutes' on a tie.
    let (rate, window) = if staffing.arrival_rate_15m > staffing.arrival_rate_30m {
        (staffing.arrival_rate_15m, "15m")
    } else {
        (staffing.arrival_rate_30m, "30m")
    };
    let source = match staffing.aht_source() {
        pb::AhtSource::Last30m => "last 30m",
        pb::AhtSource::Today => "today",
        pb::AhtSource::Target => "target",
        pb::AhtSource::Unspecified => "-",
    };
    format!(
        "staffing: {}, {verdict} for {} (Erlang C: {rate:.0} contacts/h over the last {window}, AHT {} from {source})",
        need_have(staffing),
        sl_target(staffing.sl_target, staffing.sl_threshold),
        duration(staffing.aht),
    )
}

/// The advisor grid: who is in which state, since when.
fn advisor_grid(advisors: &[pb::Advisor]) -> Table {
    let mut table = table(
        &[
            "advisor", "name", "state", "reason", "in state", "contact", "handled", "AHT",
        ],
        4,
    );
    for advisor in advisors {
        let handling = advisor
            .indicators
            .as_ref()
            .and_then(|i| i.handling)
            .unwrap_or_default();
        table.add_row(vec![
            advisor.advisor.clone(),
            advisor.name.clone().unwrap_or_else(|| "-".to_owned()),
            state_name(advisor.state()).to_owned(),
            advisor.reason.clone().unwrap_or_else(|| "-".to_owned()),
            duration(advisor.time_in_state),
            duration(advisor.current_contact_duration),
            handling.handled.to_string(),
            duration(handling.aht),
        ]);
    }
    table
}

/// A team: header, indicators against the targets of its queues, advisors by state and the
/// advisor grid.
pub fn team_view(view: &pb::TeamView, zone: Option<Tz>) -> String {
    let team = view.team.clone().unwrap_or_default();
    let indicators = team.indicators.clone().unwrap_or_default();
    let mut text = header(
        &format!("Team {}", named(&team.team, team.name.as_deref())),
        view.header.as_ref(),
        zone,
    );
    let mut board = Board::group(&indicators);
    board.staffing = team.staffing;
    text.push_str(&format!(
        "{}\n{}\n",
        board.table(&Targets::of(&view.queue_targets)),
        by_state(indicators.advisors.as_ref()),
    ));
    if let Some(staffing) = &board.staffing {
        text.push_str(&format!("{}\n", staffing_line(staffing)));
    }
    text.push_str(&format!("\n{}\n", advisor_grid(&view.advisors)));
    text
}

/// A queue: header, indicators against its targets, its channels and the contact waiting
/// longest.
pub fn queue_view(view: &pb::QueueView, zone: Option<Tz>) -> String {
    let mut text = header(
        &format!("Queue {}", named(&view.queue, view.name.as_deref())),
        view.header.as_ref(),
        zone,
    );
    let indicators = view.indicators.unwrap_or_default();
    let mut board = Board::queue(&indicators, view.advisors.as_ref());
    board.staffing = view.staffing.clone();
    let targets = Targets::of(&[queue_targets(view)]);
    text.push_str(&format!(
        "{}\n{}\n",
        board.table(&targets),
        by_state(view.advisors.as_ref())
    ));
    if let Some(staffing) = &board.staffing {
        text.push_str(&format!("{}\n", staffing_line(staffing)));
    }
    if let Some(waiting) = &view.longest_waiting {
        text.push_str(&format!(
            "longest waiting contact: {} since {}\n",
            waiting.contact,
            instant(waiting.since.as_ref(), zone)
        ));
    }
    if !view.channels.is_empty() {
        let mut channels = table(
            &[
                "channel", "offered", "answered", "SL", "abandon", "AHT", "in queue", "longest",
            ],
            1,
        );
        for channel in &view.channels {
            let i = channel.indicators.unwrap_or_default();
            let flow = i.flow.unwrap_or_default();
            let live = i.live.unwrap_or_default();
            channels.add_row(vec![
                channel_name(channel.channel()).to_owned(),
                flow.offered.to_string(),
                flow.answered.to_string(),
                percent(flow.service_level),
                percent(flow.abandon_rate),
                duration(i.handling.unwrap_or_default().aht),
                live.in_queue.to_string(),
                duration(live.longest_wait),
            ]);
        }
        text.push_str(&format!("\n{channels}\n"));
    }
    text
}

fn queue_targets(view: &pb::QueueView) -> pb::QueueTargets {
    pb::QueueTargets {
        queue: view.queue.clone(),
        sl_threshold: view.sl_threshold,
        sl_target: view.sl_target,
        aht_target: view.aht_target,
    }
}

/// A site: header, totals, then one row per queue and per team.
pub fn site_view(view: &pb::SiteView, zone: Option<Tz>) -> String {
    let site = view.header.as_ref().map_or("", |h| h.site.as_str());
    let mut text = header(
        &format!("Site {}", named(site, view.name.as_deref())),
        view.header.as_ref(),
        zone,
    );
    let totals = view.totals.clone().unwrap_or_default();
    let targets: Vec<_> = view.queues.iter().map(queue_targets).collect();
    text.push_str(&format!(
        "{}\n{}\n",
        Board::group(&totals).table(&Targets::of(&targets)),
        by_state(totals.advisors.as_ref())
    ));

    let mut queues = table(
        &[
            "queue",
            "SL",
            "target",
            "in queue",
            "longest",
            "available",
            "AHT",
            "abandon",
            "handled",
        ],
        1,
    );
    for queue in &view.queues {
        let i = queue.indicators.unwrap_or_default();
        let board = Board::queue(&i, queue.advisors.as_ref());
        queues.add_row(vec![
            Cell::new(named(&queue.queue, queue.name.as_deref())),
            against(
                percent(board.service_level),
                board.service_level.map(|sl| sl >= queue.sl_target),
            ),
            Cell::new(sl_target(queue.sl_target, queue.sl_threshold)),
            Cell::new(board.in_queue),
            Cell::new(duration(board.longest_wait)),
            Cell::new(board.available),
            Cell::new(duration(board.aht)),
            Cell::new(percent(board.abandon_rate)),
            Cell::new(board.handled),
        ]);
    }
    text.push_str(&format!("\nQueues\n{queues}\n"));

    let mut teams = table(
        &[
            "team",
            "members",
            "SL",
            "in queue",
            "longest",
            "available",
            "AHT",
            "abandon",
            "handled",
        ],
        1,
    );
    for team in &view.teams {
        let board = Board::group(&team.indicators.clone().unwrap_or_default());
        teams.add_row(vec![
            named(&team.team, team.name.as_deref()),
            team.members.len().to_string(),
            percent(board.service_level),
            board.in_queue.to_string(),
            duration(board.longest_wait),
            board.available.to_string(),
            duration(board.aht),
            percent(board.abandon_rate),
            board.handled.to_string(),
        ]);
    }
    text.push_str(&format!("\nTeams\n{teams}\n"));
    text
}

/// One advisor: live state, then handling and time over the window.
pub fn advisor_view(view: &pb::AdvisorView, zone: Option<Tz>) -> String {
    let advisor = view.advisor.clone().unwrap_or_default();
    let mut text = header(
        &format!(
            "Advisor {}",
            named(&advisor.advisor, advisor.name.as_deref())
        ),
        view.header.as_ref(),
        zone,
    );
    let i = advisor.indicators.clone().unwrap_or_default();
    let handling = i.handling.unwrap_or_default();
    // Name and value, without a header: a card rather than a grid.
    let mut card = Table::new();
    card.load_style(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic);
    fit_terminal(&mut card);
    let rows = [
        ("team", advisor.team.clone()),
        ("state", state_name(advisor.state()).to_owned()),
        (
            "reason",
            advisor.reason.clone().unwrap_or_else(|| "-".to_owned()),
        ),
        ("in state", duration(advisor.time_in_state)),
        ("since", instant(advisor.state_since.as_ref(), zone)),
        (
            "current contact",
            duration(advisor.current_contact_duration),
        ),
        ("first login", instant(advisor.first_login.as_ref(), zone)),
        ("handled", handling.handled.to_string()),
        ("AHT", duration(handling.aht)),
        ("talk", duration(handling.avg_talk)),
        ("hold", duration(handling.avg_hold)),
        ("wrap-up", duration(handling.avg_acw)),
        ("hold rate", percent(handling.hold_rate)),
        ("transfers", i.transfers.to_string()),
        ("missed offers", i.missed_offers.to_string()),
        ("occupancy", percent(i.occupancy)),
        ("handling time", duration(Some(i.handling_time))),
        ("available time", duration(Some(i.available_time))),
        ("logged in", duration(i.login_time)),
        ("pause time", duration(i.pause_time)),
    ];
    for (name, value) in rows {
        card.add_row(vec![name.to_owned(), value]);
    }
    text.push_str(&format!("{card}\n"));
    if !i.pauses.is_empty() {
        let mut pauses = table(&["reason", "pauses", "time"], 1);
        for pause in &i.pauses {
            pauses.add_row(vec![
                pause.reason.clone(),
                pause.count.to_string(),
                duration(Some(pause.time)),
            ]);
        }
        text.push_str(&format!("\nPauses\n{pauses}\n"));
    }
    text
}

/// `vigie sites`.
pub fn sites(response: &pb::ListSitesResponse) -> String {
    let mut table = table(&["site", "name", "time zone", "complete"], 3);
    for site in &response.sites {
        table.add_row(vec![
            site.site.clone(),
            site.name.clone().unwrap_or_else(|| "-".to_owned()),
            site.time_zone.clone(),
            if site.complete { "yes" } else { "NO" }.to_owned(),
        ]);
    }
    format!("{table}\n")
}

/// `vigie teams`.
pub fn teams(response: &pb::ListTeamsResponse) -> String {
    let mut table = table(&["team", "name", "queues", "members"], 3);
    for team in &response.teams {
        table.add_row(vec![
            team.team.clone(),
            team.name.clone().unwrap_or_else(|| "-".to_owned()),
            team.queues.join(", "),
            team.members.to_string(),
        ]);
    }
    format!("{table}\n")
}

/// `vigie queues`.
pub fn queues(response: &pb::ListQueuesResponse) -> String {
    let mut table = table(&["queue", "SL target", "AHT target"], 1);
    for queue in &response.queues {
        table.add_row(vec![
            queue.queue.clone(),
            sl_target(queue.sl_target, queue.sl_threshold),
            duration(queue.aht_target),
        ]);
    }
    format!("{table}\n")
}

/// `vigie advisors`.
pub fn advisors(response: &pb::ListAdvisorsResponse) -> String {
    let mut table = table(&["advisor", "name", "team", "state", "reason"], 5);
    for advisor in &response.advisors {
        table.add_row(vec![
            advisor.advisor.clone(),
            advisor.name.clone().unwrap_or_else(|| "-".to_owned()),
            advisor.team.clone(),
            state_name(advisor.state()).to_owned(),
            advisor.reason.clone().unwrap_or_else(|| "-".to_owned()),
        ]);
    }
    format!("{table}\n")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn header(complete: bool) -> pb::ViewHeader {
        pb::ViewHeader {
            site: "paris".to_owned(),
            window: pb::Window::Window15m as i32,
            // 2026-03-02 13:05:07 UTC, 14:05:07 in Paris.
            as_of: Some(prost_types::Timestamp {
                seconds: 1_772_456_707,
                nanos: 0,
            }),
            seq: 4242,
            complete,
            incomplete_reason: if complete {
                String::new()
            } else {
                "replaying the day after a start".to_owned()
            },
            instance: "vigie-1".to_owned(),
        }
    }

    fn advisor(id: &str, state: pb::LiveState, reason: Option<&str>, in_state: f64) -> pb::Advisor {
        pb::Advisor {
            advisor: id.to_owned(),
            name: Some(format!("Name of {id}")),
            team: "t1".to_owned(),
            state: state as i32,
            reason: reason.map(str::to_owned),
            time_in_state: Some(in_state),
            ..Default::default()
        }
    }

    fn sample_team(complete: bool) -> pb::TeamView {
        pb::TeamView {
            header: Some(header(complete)),
            team: Some(pb::Team {
                team: "t1".to_owned(),
                name: Some("Sales".to_owned()),
                queues: vec!["q1".to_owned()],
                members: vec!["a1".to_owned(), "a2".to_owned()],
                indicators: Some(pb::GroupIndicators {
                    flow: Some(pb::FlowIndicators {
                        offered: 130,
                        answered: 120,
                        service_level: Some(0.824),
                        abandon_rate: None,
                        ..Default::default()
                    }),
                    advisors_indicators: Some(pb::AdvisorIndicators {
                        handling: Some(pb::HandleIndicators {
                            handled: 117,
                            aht: Some(245.0),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    live: Some(pb::LiveQueue {
                        in_queue: 3,
                        longest_wait: Some(65.0),
                    }),
                    advisors: Some(pb::AdvisorsByState {
                        available: 7,
                        talking: 5,
                        ..Default::default()
                    }),
                }),
                staffing: Some(pb::StaffingGap {
                    arrival_rate_15m: 200.0,
                    arrival_rate_30m: 180.0,
                    aht: Some(180.0),
                    aht_source: pb::AhtSource::Last30m as i32,
                    load: Some(10.0),
                    model: pb::StaffingModel::ErlangC as i32,
                    sl_target: 0.8,
                    sl_threshold: 20.0,
                    required_advisors: Some(14),
                    staffed_advisors: 12,
                    staffing_gap: Some(-2),
                    expected_service_level: Some(0.64),
                    undefined_reason: String::new(),
                }),
                service_level_by_interval: Vec::new(),
            }),
            queue_targets: vec![pb::QueueTargets {
                queue: "q1".to_owned(),
                sl_threshold: 20.0,
                sl_target: 0.8,
                aht_target: Some(240.0),
            }],
            advisors: vec![
                advisor("a1", pb::LiveState::Pause, Some("lunch"), 754.0),
                advisor("a2", pb::LiveState::Talking, None, 12.0),
            ],
        }
    }

    /// The cells of the row of a table that starts with `label`, trimmed.
    fn row<'a>(text: &'a str, label: &str) -> Vec<&'a str> {
        let line = text
            .lines()
            .find(|line| line.trim_start_matches('│').trim().starts_with(label))
            .unwrap_or_else(|| panic!("no row {label} in\n{text}"));
        line.split(['│', '┆'])
            .map(str::trim)
            .filter(|cell| !cell.is_empty())
            .collect()
    }

    #[test]
    fn durations_and_percentages() {
        assert_eq!(duration(Some(12.0)), "12s");
        assert_eq!(duration(Some(0.4)), "0s");
        assert_eq!(duration(Some(65.0)), "1m05s");
        assert_eq!(duration(Some(3600.0 + 125.0)), "1h02m05s");
        assert_eq!(duration(None), "-");
        assert_eq!(duration(Some(f64::NAN)), "-");
        assert_eq!(percent(Some(0.824)), "82.4%");
        assert_eq!(percent(Some(1.0)), "100.0%");
        assert_eq!(percent(None), "-");
    }

    #[test]
    fn a_team_shows_its_figures_against_its_targets_and_its_advisor_grid() {
        let zone: Tz = "Europe/Paris".parse().unwrap();
        let text = team_view(&sample_team(true), Some(zone));
        assert!(text.starts_with("Team t1 (Sales)\n"), "{text}");
        assert!(
            text.contains("site paris · window 15m · as of 2026-03-02 14:05:07 CET · seq 4242"),
            "{text}"
        );
        assert!(!text.contains("INCOMPLETE"), "{text}");
        assert_eq!(
            row(&text, "service level"),
            ["service level", "82.4%", "80.0% in 20s"]
        );
        assert_eq!(row(&text, "in queue"), ["in queue", "3"]);
        assert_eq!(row(&text, "longest wait"), ["longest wait", "1m05s"]);
        assert_eq!(
            row(&text, "available advisors"),
            ["available advisors", "7"]
        );
        assert_eq!(row(&text, "AHT"), ["AHT", "4m05s", "4m00s"]);
        // No abandon rate over no contact: undefined, not 0.
        assert_eq!(row(&text, "abandon rate"), ["abandon rate", "-"]);
        assert_eq!(row(&text, "handled"), ["handled", "117"]);
        assert!(
            text.contains("7 available · 0 ringing · 5 talking"),
            "{text}"
        );
        assert_eq!(
            row(&text, "a1"),
            [
                "a1",
                "Name of a1",
                "pause",
                "lunch",
                "12m34s",
                "-",
                "0",
                "-"
            ]
        );
        assert_eq!(
            row(&text, "a2"),
            ["a2", "Name of a2", "talking", "-", "12s", "-", "0", "-"]
        );
    }

    #[test]
    fn incomplete_figures_are_announced_and_the_time_falls_back_to_utc() {
        let text = team_view(&sample_team(false), None);
        assert!(
            text.contains("INCOMPLETE: replaying the day after a start"),
            "{text}"
        );
        assert!(text.contains("as of 2026-03-02 13:05:07 UTC"), "{text}");

        let mut view = sample_team(false);
        view.header.as_mut().unwrap().incomplete_reason.clear();
        assert!(team_view(&view, None).contains("INCOMPLETE: no reason given"));
        view.header = None;
        assert!(team_view(&view, None).contains("INCOMPLETE"));
    }

    #[test]
    fn an_empty_team_shows_dashes_for_what_is_undefined() {
        let view = pb::TeamView {
            header: Some(header(true)),
            team: Some(pb::Team {
                team: "t2".to_owned(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let text = team_view(&view, None);
        assert_eq!(row(&text, "service level"), ["service level", "-"]);
        assert_eq!(row(&text, "longest wait"), ["longest wait", "-"]);
        assert_eq!(row(&text, "AHT"), ["AHT", "-"]);
        assert_eq!(row(&text, "in queue"), ["in queue", "0"]);
    }

    fn sample_queue() -> pb::QueueView {
        pb::QueueView {
            header: Some(header(true)),
            queue: "q1".to_owned(),
            name: Some("Billing".to_owned()),
            sl_threshold: 30.0,
            sl_target: 0.9,
            short_abandon: 5.0,
            aht_target: None,
            indicators: Some(pb::QueueIndicators {
                flow: Some(pb::FlowIndicators {
                    offered: 50,
                    answered: 45,
                    abandoned: 5,
                    service_level: Some(0.755),
                    abandon_rate: Some(0.1),
                    ..Default::default()
                }),
                handling: Some(pb::HandleIndicators {
                    handled: 44,
                    aht: Some(190.0),
                    ..Default::default()
                }),
                live: Some(pb::LiveQueue {
                    in_queue: 2,
                    longest_wait: Some(41.0),
                }),
                ..Default::default()
            }),
            advisors: Some(pb::AdvisorsByState {
                available: 1,
                ..Default::default()
            }),
            channels: vec![pb::ChannelIndicators {
                channel: pb::Channel::Chat as i32,
                indicators: Some(pb::QueueIndicators {
                    flow: Some(pb::FlowIndicators {
                        offered: 8,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
            }],
            longest_waiting: Some(pb::WaitingContact {
                contact: "c-77".to_owned(),
                since: Some(prost_types::Timestamp {
                    seconds: 1_772_456_666,
                    nanos: 0,
                }),
            }),
            staffing: Some(pb::StaffingGap {
                arrival_rate_15m: 200.0,
                arrival_rate_30m: 200.0,
                sl_target: 0.9,
                sl_threshold: 30.0,
                staffed_advisors: 1,
                undefined_reason: "no AHT yet: fewer than 10 contacts handled today and no \
                                   aht_target configured"
                    .to_owned(),
                ..Default::default()
            }),
            service_level_by_interval: Vec::new(),
        }
    }

    #[test]
    fn queues_and_teams_show_the_advisors_needed_against_those_staffed() {
        let text = team_view(&sample_team(true), None);
        assert_eq!(row(&text, "staffing"), ["staffing", "need 14, have 12"]);
        assert!(
            text.contains(
                "staffing: need 14, have 12, 2 short for 80.0% in 20s (Erlang C: 200 contacts/h \
                 over the last 15m, AHT 3m00s from last 30m)"
            ),
            "{text}"
        );
        let text = queue_view(&sample_queue(), None);
        assert_eq!(row(&text, "staffing"), ["staffing", "need -, have 1"]);
        assert!(
            text.contains("staffing: need -, have 1; no AHT yet: fewer than 10 contacts"),
            "{text}"
        );

        let mut staffing = sample_team(true).team.unwrap().staffing.unwrap();
        staffing.arrival_rate_15m = 180.0;
        staffing.staffing_gap = Some(0);
        staffing.staffed_advisors = 14;
        staffing.aht_source = pb::AhtSource::Target as i32;
        assert_eq!(
            staffing_line(&staffing),
            "staffing: need 14, have 14, just enough for 80.0% in 20s (Erlang C: 180 contacts/h \
             over the last 30m, AHT 3m00s from target)"
        );
        staffing.staffing_gap = Some(3);
        staffing.staffed_advisors = 17;
        assert!(staffing_line(&staffing).contains("have 17, 3 spare for"));

        // A server without the staffing part shows neither row nor line.
        let mut view = sample_queue();
        view.staffing = None;
        assert!(!queue_view(&view, None).contains("staffing"));
    }

    #[test]
    fn a_queue_shows_its_figures_channels_and_longest_waiting_contact() {
        let text = queue_view(&sample_queue(), None);
        assert!(text.starts_with("Queue q1 (Billing)\n"), "{text}");
        assert_eq!(
            row(&text, "service level"),
            ["service level", "75.5%", "90.0% in 30s"]
        );
        assert_eq!(row(&text, "abandon rate"), ["abandon rate", "10.0%"]);
        assert_eq!(row(&text, "AHT"), ["AHT", "3m10s"]);
        assert_eq!(row(&text, "longest wait"), ["longest wait", "41s"]);
        assert_eq!(
            row(&text, "available advisors"),
            ["available advisors", "1"]
        );
        assert!(
            text.contains("longest waiting contact: c-77 since 2026-03-02 13:04:26 UTC"),
            "{text}"
        );
        assert_eq!(
            row(&text, "chat"),
            ["chat", "8", "0", "-", "-", "-", "0", "-"]
        );
    }

    #[test]
    fn a_site_shows_its_totals_queues_and_teams() {
        let team = sample_team(true).team.unwrap();
        let view = pb::SiteView {
            header: Some(header(false)),
            name: Some("Paris".to_owned()),
            totals: team.indicators.clone(),
            queues: vec![sample_queue()],
            teams: vec![team],
            advisors: Vec::new(),
        };
        let text = site_view(&view, None);
        assert!(text.starts_with("Site paris (Paris)\n"), "{text}");
        assert!(
            text.contains("INCOMPLETE: replaying the day after a start"),
            "{text}"
        );
        assert_eq!(
            row(&text, "service level"),
            ["service level", "82.4%", "90.0% in 30s"]
        );
        assert_eq!(
            row(&text, "q1 (Billing)"),
            [
                "q1 (Billing)",
                "75.5%",
                "90.0% in 30s",
                "2",
                "41s",
                "1",
                "3m10s",
                "10.0%",
                "44"
            ]
        );
        assert_eq!(
            row(&text, "t1 (Sales)"),
            [
                "t1 (Sales)",
                "2",
                "82.4%",
                "3",
                "1m05s",
                "7",
                "4m05s",
                "-",
                "117"
            ]
        );
    }

    #[test]
    fn queues_with_different_targets_list_each() {
        let targets = Targets::of(&[
            pb::QueueTargets {
                queue: "a".to_owned(),
                sl_threshold: 20.0,
                sl_target: 0.8,
                aht_target: Some(240.0),
            },
            pb::QueueTargets {
                queue: "b".to_owned(),
                sl_threshold: 20.0,
                sl_target: 0.8,
                aht_target: None,
            },
            pb::QueueTargets {
                queue: "c".to_owned(),
                sl_threshold: 60.0,
                sl_target: 0.9,
                aht_target: Some(240.0),
            },
        ]);
        assert_eq!(targets.sl, "80.0% in 20s / 90.0% in 1m00s");
        assert_eq!(targets.sl_value, None);
        assert_eq!(targets.aht, "4m00s");
        assert_eq!(targets.aht_value, None);
    }

    #[test]
    fn an_advisor_and_the_lists() {
        let view = pb::AdvisorView {
            header: Some(header(true)),
            advisor: Some(advisor("a1", pb::LiveState::Pause, Some("break"), 30.0)),
        };
        let text = advisor_view(&view, None);
        assert!(text.starts_with("Advisor a1 (Name of a1)\n"), "{text}");
        assert_eq!(row(&text, "state"), ["state", "pause"]);
        assert_eq!(row(&text, "reason"), ["reason", "break"]);
        assert_eq!(row(&text, "occupancy"), ["occupancy", "-"]);

        let text = sites(&pb::ListSitesResponse {
            sites: vec![pb::SiteSummary {
                site: "paris".to_owned(),
                name: None,
                time_zone: "Europe/Paris".to_owned(),
                complete: false,
            }],
        });
        assert_eq!(row(&text, "paris"), ["paris", "-", "Europe/Paris", "NO"]);
        let text = queues(&pb::ListQueuesResponse {
            queues: vec![pb::QueueTargets {
                queue: "q1".to_owned(),
                sl_threshold: 20.0,
                sl_target: 0.8,
                aht_target: None,
            }],
        });
        assert_eq!(row(&text, "q1"), ["q1", "80.0% in 20s", "-"]);
    }
}
