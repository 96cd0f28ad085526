//! Advisors' timesheets: one row per advisor and site-local day, summed from their interval
//! records, for HR (hours worked, pauses), as CSV for a spreadsheet or as JSON.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::aggregate::{Sums, local_rfc3339, pause_total};
use crate::record::{IntervalRecord, PauseRecord, ScopeKind};
use crate::records::latest_revisions;

/// One advisor's day.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimesheetRow {
    /// The site-local date, `YYYY-MM-DD`.
    pub date: String,
    /// Advisor id.
    pub advisor: String,
    /// Display name, when a record gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The advisor's team (the latest record's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// First login of the day, ms since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_login_ms: Option<i64>,
    /// Last logout of the day, ms since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_logout_ms: Option<i64>,
    /// Logged in (available, in pause or handling).
    pub logged_in_ms: i64,
    /// Available and handling nothing.
    pub available_ms: i64,
    /// Talking, on hold or in after-contact work on at least one contact.
    pub handling_ms: i64,
    /// Talk time of the contacts completed that day.
    pub talk_ms: i64,
    /// Hold time of the contacts completed that day.
    pub hold_ms: i64,
    /// After-contact work of the contacts completed that day.
    pub acw_ms: i64,
    /// Pause time and pauses started per reason, sorted by reason.
    pub pauses: Vec<PauseRecord>,
    /// Pause time, all reasons.
    pub pause_ms: i64,
    /// Pauses started, all reasons.
    pub pause_count: u64,
}

/// The timesheets of the advisors of one site's `records` for the site-local days `first` to
/// `last` (both included): one row per advisor and day, sorted by date then advisor id.
/// Records of other scopes or days are ignored; of several revisions of a record, the highest
/// counts. An advisor's day without any time, login or logout (every known advisor has
/// records, working or not) gives no row.
pub fn timesheets(
    records: &[IntervalRecord],
    first: NaiveDate,
    last: NaiveDate,
) -> Vec<TimesheetRow> {
    let (first, last) = (day_text(first), day_text(last));
    let selected = records.iter().filter(|r| {
        r.key.kind == ScopeKind::Advisor
            && r.date.as_str() >= first.as_str()
            && r.date.as_str() <= last.as_str()
    });
    let mut days: BTreeMap<(String, String), Sums> = BTreeMap::new();
    for record in latest_revisions(selected.cloned()) {
        days.entry((record.date.clone(), record.key.id.clone()))
            .or_insert_with(|| Sums::new(ScopeKind::Advisor))
            .add(&record);
    }
    days.into_iter()
        .filter_map(|((date, advisor), sums)| row(date, advisor, sums))
        .collect()
}

fn row(date: String, advisor: String, sums: Sums) -> Option<TimesheetRow> {
    let times = sums.times.unwrap_or_default();
    let handling = sums.handling;
    let (pause_ms, pause_count) = pause_total(&times);
    let worked = times.logged_in_ms != 0
        || times.available_ms != 0
        || times.handling_ms != 0
        || pause_ms != 0
        || pause_count != 0
        || times.first_login_ms.is_some()
        || times.last_logout_ms.is_some()
        || handling.talk_ms != 0
        || handling.hold_ms != 0
        || handling.acw_ms != 0;
    worked.then(|| TimesheetRow {
        date,
        advisor,
        name: sums.name.map(|(_, name)| name),
        team: sums.team.map(|(_, team)| team),
        first_login_ms: times.first_login_ms,
        last_logout_ms: times.last_logout_ms,
        logged_in_ms: times.logged_in_ms,
        available_ms: times.available_ms,
        handling_ms: times.handling_ms,
        talk_ms: handling.talk_ms,
        hold_ms: handling.hold_ms,
        acw_ms: handling.acw_ms,
        pauses: times.pauses,
        pause_ms,
        pause_count,
    })
}

fn day_text(date: NaiveDate) -> String {
    date.format("%Y-%m-%d").to_string()
}

/// The durations of a row, in column order, with their column name.
fn durations(row: &TimesheetRow) -> [(&'static str, i64); 6] {
    [
        ("logged_in", row.logged_in_ms),
        ("available", row.available_ms),
        ("handling", row.handling_ms),
        ("talk", row.talk_ms),
        ("hold", row.hold_ms),
        ("acw", row.acw_ms),
    ]
}

/// The pause reasons present in any row, sorted.
fn reasons(rows: &[TimesheetRow]) -> Vec<&str> {
    let reasons: BTreeSet<&str> = rows
        .iter()
        .flat_map(|row| row.pauses.iter().map(|p| p.reason.as_str()))
        .collect();
    reasons.into_iter().collect()
}

/// The rows as CSV, UTF-8 without BOM, for a spreadsheet as it is: a header row, then one row
/// per advisor and day. Instants are site-local ISO 8601 with their offset
/// (`2026-11-27T08:02:11+01:00`); each duration is given twice, in seconds (`logged_in_s`,
/// milliseconds as decimals when there are some) and as `hh:mm:ss` (`logged_in_hms`, whole
/// seconds); then the total pause time and count, and the same for each pause reason present
/// in the rows, sorted (`pause_<reason>_s`, `pause_<reason>_hms`, `pause_<reason>_count`).
/// A text cell a spreadsheet would take for a formula (starting with `=`, `+`, `-` or `@`) is
/// prefixed with `'`.
pub fn to_csv(rows: &[TimesheetRow], zone: Tz) -> String {
    let reasons = reasons(rows);
    let mut header: Vec<String> = [
        "date",
        "advisor",
        "name",
        "team",
        "first_login",
        "last_logout",
    ]
    .iter()
    .map(|h| (*h).to_owned())
    .collect();
    let template = TimesheetRow::default();
    let mut duration_columns: Vec<&str> = durations(&template).iter().map(|(n, _)| *n).collect();
    duration_columns.push("pause");
    for column in &duration_columns {
        header.push(format!("{column}_s"));
        header.push(format!("{column}_hms"));
    }
    header.push("pause_count".to_owned());
    for reason in &reasons {
        header.push(format!("pause_{reason}_s"));
        header.push(format!("pause_{reason}_hms"));
        header.push(format!("pause_{reason}_count"));
    }

    let mut writer = csv::Writer::from_writer(Vec::new());
    let mut lines: Vec<Vec<String>> = Vec::with_capacity(rows.len() + 1);
    lines.push(header);
    for row in rows {
        let mut line = vec![
            row.date.clone(),
            spreadsheet_text(&row.advisor),
            spreadsheet_text(row.name.as_deref().unwrap_or("")),
            spreadsheet_text(row.team.as_deref().unwrap_or("")),
            row.first_login_ms
                .map(|t| local_rfc3339(t, zone))
                .unwrap_or_default(),
            row.last_logout_ms
                .map(|t| local_rfc3339(t, zone))
                .unwrap_or_default(),
        ];
        let mut all = durations(row).to_vec();
        all.push(("pause", row.pause_ms));
        for (_, ms) in all {
            line.push(seconds(ms));
            line.push(hms(ms));
        }
        line.push(row.pause_count.to_string());
        for reason in &reasons {
            match row.pauses.iter().find(|p| p.reason == *reason) {
                Some(pause) => {
                    line.push(seconds(pause.time_ms));
                    line.push(hms(pause.time_ms));
                    line.push(pause.count.to_string());
                }
                None => line.extend([seconds(0), hms(0), "0".to_owned()]),
            }
        }
        lines.push(line);
    }
    for line in &lines {
        writer
            .write_record(line)
            .expect("writing CSV to memory cannot fail: every line has the header's length");
    }
    let bytes = writer
        .into_inner()
        .expect("flushing CSV to memory cannot fail");
    String::from_utf8(bytes).expect("CSV of UTF-8 text is UTF-8")
}

/// One row as the JSON export gives it: instants site-local, durations in seconds.
#[derive(Serialize)]
struct RowJson<'a> {
    date: &'a str,
    advisor: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    team: Option<&'a str>,
    first_login: Option<String>,
    last_logout: Option<String>,
    logged_in: f64,
    available: f64,
    handling: f64,
    talk: f64,
    hold: f64,
    acw: f64,
    pause: f64,
    pause_count: u64,
    pauses: Vec<PauseJson<'a>>,
}

#[derive(Serialize)]
struct PauseJson<'a> {
    reason: &'a str,
    time: f64,
    count: u64,
}

/// The rows as a JSON array, with the CSV's content: instants site-local (RFC 3339 with
/// offset), durations in seconds, pauses per reason.
pub fn to_json(rows: &[TimesheetRow], zone: Tz) -> String {
    let secs = |ms: i64| ms as f64 / 1000.0;
    let rows: Vec<RowJson> = rows
        .iter()
        .map(|row| RowJson {
            date: &row.date,
            advisor: &row.advisor,
            name: row.name.as_deref(),
            team: row.team.as_deref(),
            first_login: row.first_login_ms.map(|t| local_rfc3339(t, zone)),
            last_logout: row.last_logout_ms.map(|t| local_rfc3339(t, zone)),
            logged_in: secs(row.logged_in_ms),
            available: secs(row.available_ms),
            handling: secs(row.handling_ms),
            talk: secs(row.talk_ms),
            hold: secs(row.hold_ms),
            acw: secs(row.acw_ms),
            pause: secs(row.pause_ms),
            pause_count: row.pause_count,
            pauses: row
                .pauses
                .iter()
                .map(|p| PauseJson {
                    reason: &p.reason,
                    time: secs(p.time_ms),
                    count: p.count,
                })
                .collect(),
        })
        .collect();
    serde_json::to_string(&rows).expect("strings and finite numbers always serialize")
}

/// A duration in seconds: whole, or with its milliseconds as decimals (`28579`, `12.5`).
pub(crate) fn seconds(ms: i64) -> String {
    let sign = if ms < 0 { "-" } else { "" };
    let ms = ms.unsigned_abs();
    let (whole, fraction) = (ms / 1000, ms % 1000);
    if fraction == 0 {
        format!("{sign}{whole}")
    } else {
        let decimals = format!("{fraction:03}");
        format!("{sign}{whole}.{}", decimals.trim_end_matches('0'))
    }
}

/// A duration as `hh:mm:ss`, whole seconds (hours beyond 99 take more digits).
pub(crate) fn hms(ms: i64) -> String {
    let sign = if ms < 0 { "-" } else { "" };
    let secs = ms.unsigned_abs() / 1000;
    format!(
        "{sign}{:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Text a spreadsheet shows as text: a leading `'` where it would read a formula.
fn spreadsheet_text(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{RecordKey, TimeRecord};
    use chrono_tz::Europe::Paris;
    use vigie_core::Timestamp;

    const MIN: i64 = 60_000;

    fn at(hms: &str) -> i64 {
        Timestamp::parse_rfc3339(&format!("2026-11-27T{hms}+01:00"))
            .unwrap()
            .0
    }

    fn date(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    /// An interval of a logged-in advisor, available throughout.
    fn available(start: i64) -> IntervalRecord {
        IntervalRecord {
            revision: 1,
            settled: true,
            team: Some("t1".into()),
            name: Some("Zoé Martin".into()),
            times: Some(TimeRecord {
                logged_in_ms: 15 * MIN,
                available_ms: 15 * MIN,
                ..TimeRecord::default()
            }),
            ..IntervalRecord::new(
                RecordKey {
                    site: "paris".into(),
                    kind: ScopeKind::Advisor,
                    id: "a1".into(),
                    start_ms: start,
                },
                start + 15 * MIN,
                "2026-11-27",
            )
        }
    }

    fn pause(reason: &str, minutes: i64, count: u64) -> PauseRecord {
        PauseRecord {
            reason: reason.into(),
            time_ms: minutes * MIN,
            count,
        }
    }

    /// Zoé's day, interval by interval:
    /// - logs in at 08:02:11;
    /// - 09:00-09:06: a contact, 5 min talk and 1 min after-contact work;
    /// - 10:00-10:15: break;
    /// - 12:00-12:45: lunch;
    /// - 14:00-14:10: a contact, 7 min talk, 2 min hold, 1 min after-contact work;
    /// - logs out at 15:58:30.
    fn zoe_day() -> Vec<IntervalRecord> {
        let mut records: Vec<IntervalRecord> = (0..32)
            .map(|i| available(at("08:00:00") + i * 15 * MIN))
            .collect();
        let mut edit = |start: &str, change: &dyn Fn(&mut IntervalRecord)| {
            let record = records
                .iter_mut()
                .find(|r| r.key.start_ms == at(start))
                .unwrap();
            change(record);
        };
        edit("08:00:00", &|r| {
            let times = r.times.as_mut().unwrap();
            times.logged_in_ms = at("08:15:00") - at("08:02:11");
            times.available_ms = times.logged_in_ms;
            times.first_login_ms = Some(at("08:02:11"));
        });
        edit("09:00:00", &|r| {
            r.handling.handled = 1;
            r.handling.talk_ms = 5 * MIN;
            r.handling.acw_ms = MIN;
            let times = r.times.as_mut().unwrap();
            times.handling_ms = 6 * MIN;
            times.available_ms = 9 * MIN;
        });
        edit("10:00:00", &|r| {
            let times = r.times.as_mut().unwrap();
            times.available_ms = 0;
            times.pauses = vec![pause("break", 15, 1)];
        });
        for (start, count) in [("12:00:00", 1), ("12:15:00", 0), ("12:30:00", 0)] {
            edit(start, &|r| {
                let times = r.times.as_mut().unwrap();
                times.available_ms = 0;
                times.pauses = vec![pause("lunch", 15, count)];
            });
        }
        edit("14:00:00", &|r| {
            r.handling.handled = 1;
            r.handling.talk_ms = 7 * MIN;
            r.handling.hold_ms = 2 * MIN;
            r.handling.acw_ms = MIN;
            r.handling.held = 1;
            let times = r.times.as_mut().unwrap();
            times.handling_ms = 10 * MIN;
            times.available_ms = 5 * MIN;
        });
        edit("15:45:00", &|r| {
            let times = r.times.as_mut().unwrap();
            times.logged_in_ms = at("15:58:30") - at("15:45:00");
            times.available_ms = times.logged_in_ms;
            times.last_logout_ms = Some(at("15:58:30"));
        });
        records
    }

    #[test]
    fn a_hand_computed_day() {
        let mut records = zoe_day();
        // Not logged in the next day: every known advisor has records, working or not.
        let mut idle = available(at("08:00:00") + 24 * 60 * MIN);
        idle.date = "2026-11-28".into();
        idle.times = Some(TimeRecord::default());
        records.push(idle);
        let rows = timesheets(&records, date("2026-11-27"), date("2026-11-28"));
        // Logged in 08:02:11 to 15:58:30: 7 h 56 min 19 s = 28,579 s. Pauses 15 + 45 min;
        // handling 6 + 10 min; available: the rest, 28,579 - 3,600 - 960 = 24,019 s.
        let expected = TimesheetRow {
            date: "2026-11-27".into(),
            advisor: "a1".into(),
            name: Some("Zoé Martin".into()),
            team: Some("t1".into()),
            first_login_ms: Some(at("08:02:11")),
            last_logout_ms: Some(at("15:58:30")),
            logged_in_ms: 28_579_000,
            available_ms: 24_019_000,
            handling_ms: 960_000,
            talk_ms: 720_000,
            hold_ms: 120_000,
            acw_ms: 120_000,
            pauses: vec![pause("break", 15, 1), pause("lunch", 45, 1)],
            pause_ms: 3_600_000,
            pause_count: 2,
        };
        assert_eq!(rows, [expected]);

        let csv = to_csv(&rows, Paris);
        let mut lines = csv.lines();
        assert_eq!(
            lines.next().unwrap(),
            "date,advisor,name,team,first_login,last_logout,logged_in_s,logged_in_hms,\
             available_s,available_hms,handling_s,handling_hms,talk_s,talk_hms,hold_s,hold_hms,\
             acw_s,acw_hms,pause_s,pause_hms,pause_count,pause_break_s,pause_break_hms,\
             pause_break_count,pause_lunch_s,pause_lunch_hms,pause_lunch_count"
        );
        assert_eq!(
            lines.next().unwrap(),
            "2026-11-27,a1,Zoé Martin,t1,2026-11-27T08:02:11+01:00,2026-11-27T15:58:30+01:00,\
             28579,07:56:19,24019,06:40:19,960,00:16:00,720,00:12:00,120,00:02:00,120,00:02:00,\
             3600,01:00:00,2,900,00:15:00,1,2700,00:45:00,1"
        );
        assert_eq!(lines.next(), None);
        assert!(!csv.starts_with('\u{feff}'), "no byte-order mark");

        let json: serde_json::Value = serde_json::from_str(&to_json(&rows, Paris)).unwrap();
        assert_eq!(json[0]["first_login"], "2026-11-27T08:02:11+01:00");
        assert_eq!(json[0]["logged_in"], 28579.0);
        assert_eq!(json[0]["pauses"][1]["reason"], "lunch");
        assert_eq!(json[0]["pauses"][1]["time"], 2700.0);
    }

    #[test]
    fn days_outside_the_range_and_other_scopes_are_left_out() {
        let mut records = zoe_day();
        let mut team = available(at("09:00:00"));
        team.key.kind = ScopeKind::Team;
        records.push(team);
        assert!(timesheets(&records, date("2026-11-28"), date("2026-11-30")).is_empty());
        let rows = timesheets(&records, date("2026-11-27"), date("2026-11-27"));
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].advisor, "a1");
    }

    /// Reads back the CSV of [`to_csv`].
    fn parse(text: &str) -> Vec<TimesheetRow> {
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
        let column = |name: &str| header.iter().position(|h| h == name).unwrap();
        let reasons: Vec<String> = header[column("pause_count") + 1..]
            .chunks(3)
            .map(|c| {
                c[0].strip_prefix("pause_")
                    .unwrap()
                    .strip_suffix("_s")
                    .unwrap()
                    .to_owned()
            })
            .collect();
        let millis = |text: &str| (text.parse::<f64>().unwrap() * 1000.0).round() as i64;
        let instant =
            |text: &str| (!text.is_empty()).then(|| Timestamp::parse_rfc3339(text).unwrap().0);
        let text = |text: &str| (!text.is_empty()).then(|| text.to_owned());
        reader
            .records()
            .map(|record| {
                let record = record.unwrap();
                let cell = |name: &str| &record[column(name)];
                let pauses: Vec<PauseRecord> = reasons
                    .iter()
                    .map(|reason| PauseRecord {
                        reason: reason.clone(),
                        time_ms: millis(cell(&format!("pause_{reason}_s"))),
                        count: cell(&format!("pause_{reason}_count")).parse().unwrap(),
                    })
                    .filter(|p| p.time_ms > 0 || p.count > 0)
                    .collect();
                for (name, _) in durations(&TimesheetRow::default()) {
                    let seconds = millis(cell(&format!("{name}_s"))) / 1000;
                    let expected = format!(
                        "{:02}:{:02}:{:02}",
                        seconds / 3600,
                        seconds / 60 % 60,
                        seconds % 60
                    );
                    assert_eq!(cell(&format!("{name}_hms")), expected);
                }
                TimesheetRow {
                    date: cell("date").to_owned(),
                    advisor: cell("advisor").to_owned(),
                    name: text(cell("name")),
                    team: text(cell("team")),
                    first_login_ms: instant(cell("first_login")),
                    last_logout_ms: instant(cell("last_logout")),
                    logged_in_ms: millis(cell("logged_in_s")),
                    available_ms: millis(cell("available_s")),
                    handling_ms: millis(cell("handling_s")),
                    talk_ms: millis(cell("talk_s")),
                    hold_ms: millis(cell("hold_s")),
                    acw_ms: millis(cell("acw_s")),
                    pauses,
                    pause_ms: millis(cell("pause_s")),
                    pause_count: cell("pause_count").parse().unwrap(),
                }
            })
            .collect()
    }

    #[test]
    fn the_csv_reads_back_into_the_same_rows() {
        let zoe = timesheets(&zoe_day(), date("2026-11-27"), date("2026-11-27"))
            .pop()
            .unwrap();
        let rows = vec![
            zoe.clone(),
            TimesheetRow {
                advisor: "a2".into(),
                name: Some("O'Brien, \"Jo\" Ñúñez — 李".into()),
                team: None,
                first_login_ms: Some(at("09:30:00") + 250),
                last_logout_ms: None,
                logged_in_ms: 4_321_987,
                available_ms: 1_000_001,
                pauses: vec![pause("café, long", 10, 1), pause("training", 30, 2)],
                pause_ms: 40 * MIN,
                pause_count: 3,
                ..zoe.clone()
            },
            TimesheetRow {
                date: "2026-11-28".into(),
                advisor: "a3".into(),
                name: None,
                pauses: Vec::new(),
                pause_ms: 0,
                pause_count: 0,
                ..zoe
            },
        ];
        let text = to_csv(&rows, Paris);
        assert!(text.contains("\"O'Brien, \"\"Jo\"\" Ñúñez — 李\""));
        assert!(text.contains("2026-11-27T09:30:00.250+01:00"));
        assert_eq!(parse(&text), rows);
    }

    #[test]
    fn text_a_spreadsheet_would_run_as_a_formula_is_quoted() {
        let row = TimesheetRow {
            date: "2026-11-27".into(),
            advisor: "a1".into(),
            name: Some("=HYPERLINK(\"x\")".into()),
            team: Some("@team".into()),
            ..TimesheetRow::default()
        };
        let text = to_csv(&[row], Paris);
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let record = reader.records().next().unwrap().unwrap();
        assert_eq!(&record[2], "'=HYPERLINK(\"x\")");
        assert_eq!(&record[3], "'@team");
    }

    #[test]
    fn durations_in_seconds_and_clock_time() {
        assert_eq!(seconds(0), "0");
        assert_eq!(seconds(28_579_000), "28579");
        assert_eq!(seconds(12_500), "12.5");
        assert_eq!(seconds(1_001), "1.001");
        assert_eq!(hms(0), "00:00:00");
        assert_eq!(hms(28_579_999), "07:56:19");
        assert_eq!(hms(100 * 3_600_000), "100:00:00");
    }
}
