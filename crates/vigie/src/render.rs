//! Human-readable tables of views, for the terminal.

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell, CellAlignment, ContentArrangement, Table};
use vigie_core::views::{AdvisorView, QueueView, SiteView, TeamView};

/// A duration in seconds as `m:ss` (or `h:mm:ss`), `-` when undefined.
pub fn duration(secs: Option<f64>) -> String {
    let Some(secs) = secs else {
        return "-".to_owned();
    };
    let total = secs.round() as i64;
    let (hours, minutes, seconds) = (total / 3600, (total % 3600) / 60, total % 60);
    if hours > 0 {
        format!("{hours}:{minutes:02}:{seconds:02}")
    } else {
        format!("{minutes}:{seconds:02}")
    }
}

/// A fraction as a percentage with one decimal, `-` when undefined.
pub fn percent(fraction: Option<f64>) -> String {
    fraction.map_or_else(|| "-".to_owned(), |f| format!("{:.1}%", f * 100.0))
}

/// A table whose first `text_columns` columns are text (left-aligned), the rest figures.
fn table(headers: &[&str], text_columns: usize) -> Table {
    let mut table = Table::new();
    table
        .load_style(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic);
    table.set_header(headers.iter().map(Cell::new));
    for index in text_columns..headers.len() {
        if let Some(column) = table.column_mut(index) {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
    table
}

/// Queues: flow, service level and waits.
pub fn queues(views: &[QueueView]) -> Table {
    let mut table = table(
        &[
            "queue",
            "offered",
            "answered",
            "abandoned",
            "SL",
            "target",
            "abandon",
            "ASA",
            "p90 wait",
            "AHT",
            "waiting",
            "longest",
        ],
        1,
    );
    for view in views {
        let i = &view.indicators;
        table.add_row(vec![
            view.queue.clone(),
            i.flow.offered.to_string(),
            i.flow.answered.to_string(),
            i.flow.abandoned.to_string(),
            format!(
                "{} ({})",
                percent(i.flow.service_level),
                i.flow.service_level_variant.as_str()
            ),
            format!(
                "{} in {}s",
                percent(Some(view.sl_target)),
                view.sl_threshold
            ),
            percent(i.flow.abandon_rate),
            duration(i.flow.asa),
            duration(i.flow.wait_p90),
            duration(i.handling.aht),
            i.live.in_queue.to_string(),
            duration(i.live.longest_wait),
        ]);
    }
    table
}

/// Teams: their queues' flow and their advisors' handling.
pub fn teams(views: &[TeamView]) -> Table {
    let mut table = table(
        &[
            "team",
            "advisors",
            "available",
            "busy",
            "pause",
            "offered",
            "SL",
            "abandon",
            "handled",
            "AHT",
            "occupancy",
            "waiting",
            "longest",
        ],
        1,
    );
    for view in views {
        let i = &view.indicators;
        let by_state = &i.advisors;
        table.add_row(vec![
            view.team.clone(),
            view.members.len().to_string(),
            by_state.available.to_string(),
            (by_state.offered + by_state.talking + by_state.on_hold + by_state.acw).to_string(),
            by_state.pause.to_string(),
            i.flow.offered.to_string(),
            percent(i.flow.service_level),
            percent(i.flow.abandon_rate),
            i.advisors_indicators.handling.handled.to_string(),
            duration(i.advisors_indicators.handling.aht),
            percent(i.advisors_indicators.occupancy),
            i.live.in_queue.to_string(),
            duration(i.live.longest_wait),
        ]);
    }
    table
}

/// Advisors: live state and handling.
pub fn advisors(views: &[AdvisorView]) -> Table {
    let mut table = table(
        &[
            "advisor",
            "team",
            "state",
            "for",
            "contact",
            "handled",
            "AHT",
            "missed",
            "occupancy",
            "pause",
        ],
        3,
    );
    for view in views {
        let i = &view.indicators;
        let state = match &view.reason {
            Some(reason) if view.state == "pause" => format!("pause ({reason})"),
            Some(reason) => format!("{} (pause: {reason})", view.state),
            None => view.state.to_owned(),
        };
        table.add_row(vec![
            view.name.as_ref().map_or_else(
                || view.advisor.clone(),
                |name| format!("{name} ({})", view.advisor),
            ),
            view.team.clone(),
            state,
            duration(view.time_in_state),
            duration(view.current_contact_duration),
            i.handling.handled.to_string(),
            duration(i.handling.aht),
            i.missed_offers.to_string(),
            percent(i.occupancy),
            duration(i.pause_time),
        ]);
    }
    table
}

/// A whole site: a header line and the three tables.
pub fn site(view: &SiteView) -> String {
    let totals = &view.totals;
    format!(
        "Site {} - window {} - as of {}\n\
         service level {} ({}), abandon {}, ASA {}, handled {}, AHT {}, occupancy {}, waiting {} (longest {})\n\n\
         Queues\n{}\n\nTeams\n{}\n\nAdvisors\n{}\n",
        view.site,
        view.window,
        view.as_of,
        percent(totals.flow.service_level),
        totals.flow.service_level_variant.as_str(),
        percent(totals.flow.abandon_rate),
        duration(totals.flow.asa),
        totals.advisors_indicators.handling.handled,
        duration(totals.advisors_indicators.handling.aht),
        percent(totals.advisors_indicators.occupancy),
        totals.live.in_queue,
        duration(totals.live.longest_wait),
        queues(&view.queues),
        teams(&view.teams),
        advisors(&view.advisors),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_percentages_read_naturally() {
        assert_eq!(duration(Some(59.6)), "1:00");
        assert_eq!(duration(Some(3725.0)), "1:02:05");
        assert_eq!(duration(None), "-");
        assert_eq!(percent(Some(0.8123)), "81.2%");
        assert_eq!(percent(None), "-");
    }
}
