//! `vigie notice`: the `vigie.v1.Notices` service from a terminal. Posts a notice to a team's
//! wallboard (`vigie notice TEAM "TEXT" --for 2h`), or to every team of the site
//! (`--all-teams`), lists or follows the notices in force (`--list`, `--watch`), withdraws one
//! (`--withdraw ID`). `--format json` prints the proto3 JSON mapping (one line per message when
//! watching). Rendering is in plain functions of the messages, the site's time zone and the
//! current instant, tested without a server.

use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use clap::Args;
use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell, Color, ContentArrangement, Table};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use vigie_proto::v1 as pb;
use vigie_proto::v1::notices_client::NoticesClient;

use super::json::ProtoName;
use super::{Api, ApiArgs, print};

/// The client of the `Notices` service.
pub type Client = NoticesClient<InterceptedService<Channel, super::Bearer>>;

/// The `Notices` client over a connection of the other client commands.
pub fn client(channel: Channel, bearer: super::Bearer) -> Client {
    NoticesClient::with_interceptor(channel, bearer)
}

impl ProtoName for pb::NoticeResponse {
    const FULL_NAME: &'static str = "vigie.v1.NoticeResponse";
}
impl ProtoName for pb::ListNoticesResponse {
    const FULL_NAME: &'static str = "vigie.v1.ListNoticesResponse";
}
impl ProtoName for pb::NoticesUpdate {
    const FULL_NAME: &'static str = "vigie.v1.NoticesUpdate";
}

/// Shortest time a notice is shown.
const MIN_DURATION: Duration = Duration::from_secs(60);
/// Longest time a notice is shown.
const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

/// Examples shown at the end of `vigie notice --help`.
pub const EXAMPLES: &str = "\
Examples:
  vigie notice team-a \"New script for the spring offer\" --for 2h
  vigie notice team-a \"Mobile app down: apologise and log it\" --for 30m --important
  vigie notice --all-teams \"Fire drill at 15:00\" --for 3h
  vigie notice --list               every notice in force you may see at the site
  vigie notice --list team-a        team-a's notices and the site-wide ones
  vigie notice --watch team-a       the same, live (Ctrl-C to stop)
  vigie notice --withdraw 1772442000000-1/team/team-a

Posting or withdrawing a team's notice takes its supervisor, a manager of the site or an
admin; a notice for every team, a manager or an admin. Advisors may list the notices of the
team they are in.";

/// Arguments of `vigie notice`.
#[derive(Args, Debug)]
pub struct NoticeArgs {
    /// Team id, as `vigie teams` lists them. With --list or --watch: only this team's notices
    /// and those for every team.
    #[arg(value_name = "TEAM")]
    pub team: Option<String>,
    /// The text shown: 1 to 280 characters, one line (quote it).
    #[arg(value_name = "TEXT", conflicts_with_all = ["list", "watch"])]
    pub text: Option<String>,
    /// Post to every team of the site (managers and admins): give the text alone, no TEAM.
    #[arg(long, conflicts_with_all = ["list", "watch", "withdraw"])]
    pub all_teams: bool,
    /// How long the notice is shown: from 1m to 7d (`30m`, `2h`, `1d 12h`). Default: 4h.
    #[arg(
        long = "for",
        value_name = "DURATION",
        value_parser = parse_duration,
        conflicts_with_all = ["list", "watch", "withdraw"]
    )]
    pub duration: Option<Duration>,
    /// Show the notice as important: a banner that stands out (an outage, a regulatory
    /// instruction).
    #[arg(long, conflicts_with_all = ["list", "watch", "withdraw"])]
    pub important: bool,
    /// List the notices in force, newest first: TEAM's and the site-wide ones, or without
    /// TEAM every notice of the site your token lets you see.
    #[arg(long, conflicts_with_all = ["watch", "withdraw"])]
    pub list: bool,
    /// Follow the notices in force live, as --list shows them, redrawn at every change.
    /// Ctrl-C to stop.
    #[arg(long, conflicts_with = "withdraw")]
    pub watch: bool,
    /// Withdraw the notice with this id (as --list shows it): it leaves the wallboards now.
    #[arg(long, value_name = "ID", conflicts_with_all = ["team", "text"])]
    pub withdraw: Option<String>,
    #[command(flatten)]
    pub api: ApiArgs,
}

/// What `vigie notice` was asked to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action<'a> {
    /// Post `text` to `team` (every team when `None`).
    Post {
        /// The team.
        team: Option<&'a str>,
        /// The text.
        text: &'a str,
    },
    /// List the notices of `team` (and the site-wide ones), or of the site.
    List {
        /// The team.
        team: Option<&'a str>,
    },
    /// Follow them live.
    Watch {
        /// The team.
        team: Option<&'a str>,
    },
    /// Withdraw a notice.
    Withdraw {
        /// Its id.
        id: &'a str,
    },
}

impl NoticeArgs {
    /// What the arguments ask for, or what is missing, said with the command to type.
    pub fn action(&self) -> anyhow::Result<Action<'_>> {
        let team = self.team.as_deref();
        if let Some(id) = &self.withdraw {
            return Ok(Action::Withdraw { id });
        }
        if self.list {
            return Ok(Action::List { team });
        }
        if self.watch {
            return Ok(Action::Watch { team });
        }
        match (self.all_teams, team, self.text.as_deref()) {
            (false, Some(team), Some(text)) => Ok(Action::Post {
                team: Some(team),
                text,
            }),
            // The only positional given lands in TEAM: with --all-teams it is the text.
            (true, Some(text), None) => Ok(Action::Post { team: None, text }),
            (true, Some(_), Some(_)) => anyhow::bail!(
                "--all-teams posts to every team: give the text alone, without a team \
                 (vigie notice --all-teams \"TEXT\")"
            ),
            (true, None, _) => {
                anyhow::bail!("no text to post: vigie notice --all-teams \"TEXT\" [--for 2h]")
            }
            (false, Some(team), None) => anyhow::bail!(
                "no text to post to team {team}: vigie notice {team} \"TEXT\" [--for 2h] \
                 [--important] (or --list {team} to see its notices)"
            ),
            (false, None, _) => anyhow::bail!(
                "nothing to do: vigie notice TEAM \"TEXT\" [--for 2h] posts a notice; --list, \
                 --watch and --withdraw ID show and withdraw them (vigie notice --help)"
            ),
        }
    }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text.trim())
        .map_err(|error| format!("{text:?} is not a duration such as 30m or 2h ({error})"))?;
    if !(MIN_DURATION..=MAX_DURATION).contains(&duration) {
        return Err(format!("{text:?}: a notice is shown from 1m to 7d"));
    }
    Ok(duration)
}

/// Runs `vigie notice ...`.
pub async fn run(args: &NoticeArgs) -> anyhow::Result<()> {
    let action = args.action()?;
    let (api, site) = Api::for_site(&args.api).await?;
    let zone = site.time_zone;
    let mut client = api.notices.clone();
    match action {
        Action::Post { team, text } => {
            let what = format!("a notice for {} of site `{}`", audience(team), site.id);
            let level = if args.important {
                pb::NoticeLevel::Important
            } else {
                pb::NoticeLevel::Info
            };
            let request = pb::PostNoticeRequest {
                site: site.id,
                team: team.unwrap_or_default().to_owned(),
                text: text.to_owned(),
                level: level.into(),
                duration: args.duration.map_or(0.0, |duration| duration.as_secs_f64()),
            };
            let answer = api.unary(&what, client.post_notice(request)).await?;
            print(args.api.format, &answer, |answer| {
                posted(answer, zone, Utc::now())
            })
        }
        Action::Withdraw { id } => {
            let what = format!("notice `{id}` of site `{}`", site.id);
            let request = pb::WithdrawNoticeRequest {
                site: site.id,
                id: id.to_owned(),
            };
            let answer = api.unary(&what, client.withdraw_notice(request)).await?;
            print(args.api.format, &answer, withdrawn)
        }
        Action::List { team } => {
            let what = format!("the notices of {} of site `{}`", scope(team), site.id);
            let request = pb::ListNoticesRequest {
                site: site.id.clone(),
                team: team.unwrap_or_default().to_owned(),
            };
            let answer = api.unary(&what, client.list_notices(request)).await?;
            let now = Utc::now();
            print(args.api.format, &answer, |answer| {
                list(&answer.notices, &site.id, team, zone, now)
            })
        }
        Action::Watch { team } => {
            let what = format!("the notices of {} of site `{}`", scope(team), site.id);
            let request = pb::WatchNoticesRequest {
                site: site.id.clone(),
                team: team.unwrap_or_default().to_owned(),
            };
            let stream = api.open(&what, client.watch_notices(request)).await?;
            api.follow(stream, args.api.format, |update| {
                let now = update.as_of.as_ref().and_then(utc).unwrap_or_else(Utc::now);
                Some(list(&update.notices, &site.id, team, zone, now))
            })
            .await
        }
    }
}

/// `team \`team-a\``, or `every team`.
fn audience(team: Option<&str>) -> String {
    match team {
        Some(team) => format!("team `{team}`"),
        None => "every team".to_owned(),
    }
}

/// `team \`team-a\``, or `the site`.
fn scope(team: Option<&str>) -> String {
    match team {
        Some(team) => format!("team `{team}`"),
        None => "the site".to_owned(),
    }
}

fn utc(time: &prost_types::Timestamp) -> Option<DateTime<Utc>> {
    DateTime::<Utc>::from_timestamp(time.seconds, u32::try_from(time.nanos).unwrap_or(0))
}

/// An instant in the site's time zone (UTC when unknown): the time of day when it falls on the
/// same day as `now`, with the date otherwise.
pub fn when(time: Option<&prost_types::Timestamp>, zone: Option<Tz>, now: DateTime<Utc>) -> String {
    let Some(time) = time.and_then(utc) else {
        return "-".to_owned();
    };
    let zone = zone.unwrap_or(Tz::UTC);
    let (local, today) = (time.with_timezone(&zone), now.with_timezone(&zone));
    if local.date_naive() == today.date_naive() {
        local.format("%H:%M").to_string()
    } else {
        local.format("%a %d %b %H:%M").to_string()
    }
}

/// A span of time, to the largest two units: `3d 4h`, `1h 05m`, `12m`, `40s`.
pub fn span(seconds: i64) -> String {
    let seconds = seconds.max(0);
    let (days, hours, minutes) = (
        seconds / 86_400,
        seconds % 86_400 / 3600,
        seconds % 3600 / 60,
    );
    if days > 0 {
        format!("{days}d {hours}h")
    } else if hours > 0 {
        format!("{hours}h {minutes:02}m")
    } else if minutes > 0 {
        format!("{minutes}m")
    } else {
        format!("{seconds}s")
    }
}

fn seconds_left(notice: &pb::Notice, now: DateTime<Utc>) -> i64 {
    notice
        .expires_at
        .as_ref()
        .and_then(utc)
        .map_or(0, |end| (end - now).num_seconds())
}

/// How long the notice is shown from its posting, in seconds.
fn shown_for(notice: &pb::Notice) -> i64 {
    match (&notice.posted_at, &notice.expires_at) {
        (Some(posted), Some(expires)) => expires.seconds - posted.seconds,
        _ => 0,
    }
}

fn is_important(notice: &pb::Notice) -> bool {
    notice.level() == pb::NoticeLevel::Important
}

/// What `vigie notice TEAM "TEXT"` prints once posted.
pub fn posted(answer: &pb::NoticeResponse, zone: Option<Tz>, now: DateTime<Utc>) -> String {
    let Some(notice) = &answer.notice else {
        return "posted (the server did not send the notice back)\n".to_owned();
    };
    let team = (!notice.team.is_empty()).then_some(notice.team.as_str());
    format!(
        "Posted{} to {} until {} ({}): {}\nId: {} (to withdraw it: vigie notice --withdraw {})\n",
        if is_important(notice) {
            " as important"
        } else {
            ""
        },
        audience(team).replace('`', ""),
        when(notice.expires_at.as_ref(), zone, now),
        span(shown_for(notice)),
        notice.text,
        notice.id,
        notice.id,
    )
}

/// What `vigie notice --withdraw ID` prints once withdrawn.
pub fn withdrawn(answer: &pb::NoticeResponse) -> String {
    let Some(notice) = &answer.notice else {
        return "withdrawn (the server did not send the notice back)\n".to_owned();
    };
    let team = (!notice.team.is_empty()).then_some(notice.team.as_str());
    format!(
        "Withdrawn from {}: {}\n",
        audience(team).replace('`', ""),
        notice.text
    )
}

/// The notices in force as a table, with a title saying whose they are.
pub fn list(
    notices: &[pb::Notice],
    site: &str,
    team: Option<&str>,
    zone: Option<Tz>,
    now: DateTime<Utc>,
) -> String {
    let whose = match team {
        Some(team) => format!("team {team} (with those for every team)"),
        None => format!("site {site}"),
    };
    if notices.is_empty() {
        return format!("No notice in force for {whose}.\n");
    }
    let mut table = Table::new();
    table
        .load_style(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic);
    if table.width().is_some_and(|width| width < 40) {
        table.set_content_arrangement(ContentArrangement::Disabled);
    }
    table.set_header(["notice", "for", "until", "posted", "id"].map(Cell::new));
    for notice in notices {
        let text = if is_important(notice) {
            Cell::new(format!("IMPORTANT: {}", notice.text)).fg(Color::Red)
        } else {
            Cell::new(&notice.text)
        };
        let audience = if notice.team.is_empty() {
            "every team"
        } else {
            notice.team.as_str()
        };
        table.add_row(vec![
            text,
            Cell::new(audience),
            Cell::new(format!(
                "{} ({} left)",
                when(notice.expires_at.as_ref(), zone, now),
                span(seconds_left(notice, now))
            )),
            Cell::new(format!(
                "{} by {}",
                when(notice.posted_at.as_ref(), zone, now),
                notice.posted_by
            )),
            Cell::new(&notice.id),
        ]);
    }
    format!(
        "{} notice{} in force for {whose}, newest first:\n{table}\n",
        notices.len(),
        if notices.len() == 1 { "" } else { "s" }
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use clap::Parser;

    use super::*;

    #[derive(Parser, Debug)]
    struct Command {
        #[command(flatten)]
        args: NoticeArgs,
    }

    fn parse(args: &[&str]) -> Result<NoticeArgs, clap::Error> {
        Command::try_parse_from(std::iter::once("notice").chain(args.iter().copied()))
            .map(|command| command.args)
    }

    fn action(args: &[&str]) -> String {
        match parse(args) {
            Ok(parsed) => match parsed.action() {
                Ok(action) => format!("{action:?}"),
                Err(error) => format!("error: {error}"),
            },
            Err(error) => format!("usage: {}", error.kind()),
        }
    }

    #[test]
    fn the_forms_of_the_command() {
        let args = parse(&["team-a", "New script", "--for", "2h", "--important"]).unwrap();
        assert_eq!(
            args.action().unwrap(),
            Action::Post {
                team: Some("team-a"),
                text: "New script"
            }
        );
        assert_eq!(args.duration, Some(Duration::from_secs(7200)));
        assert!(args.important);
        let args = parse(&["team-a", "x", "--site", "paris"]).unwrap();
        assert_eq!(args.api.site.as_deref(), Some("paris"));
        assert_eq!(args.duration, None);
        assert_eq!(
            action(&["--all-teams", "Fire drill", "--for", "3h"]),
            r#"Post { team: None, text: "Fire drill" }"#
        );
        assert_eq!(action(&["--list"]), "List { team: None }");
        assert_eq!(
            action(&["--list", "team-a"]),
            r#"List { team: Some("team-a") }"#
        );
        assert_eq!(
            action(&["--watch", "team-a"]),
            r#"Watch { team: Some("team-a") }"#
        );
        assert_eq!(
            action(&["--withdraw", "1-1/team/team-a"]),
            r#"Withdraw { id: "1-1/team/team-a" }"#
        );
    }

    #[test]
    fn what_does_not_make_sense_is_refused_with_the_command_to_type() {
        assert!(action(&[]).starts_with("error: nothing to do"));
        assert!(
            action(&["team-a"]).contains("vigie notice team-a \"TEXT\""),
            "{}",
            action(&["team-a"])
        );
        assert!(action(&["--all-teams", "team-a", "text"]).contains("give the text alone"));
        assert!(action(&["--all-teams"]).starts_with("error: no text to post"));
        for refused in [
            &["--list", "team-a", "text"][..],
            &["--list", "--for", "1h"],
            &["--withdraw", "x", "team-a"],
            &["--list", "--watch"],
            &["--withdraw", "x", "--all-teams"],
            &["--list", "--important"],
        ] {
            assert!(
                action(refused).starts_with("usage: "),
                "{refused:?}: {}",
                action(refused)
            );
        }
        let error = parse(&["team-a", "x", "--for", "30s"])
            .unwrap_err()
            .to_string();
        assert!(error.contains("from 1m to 7d"), "{error}");
        let error = parse(&["team-a", "x", "--for", "8d"])
            .unwrap_err()
            .to_string();
        assert!(error.contains("from 1m to 7d"), "{error}");
        let error = parse(&["team-a", "x", "--for", "soon"])
            .unwrap_err()
            .to_string();
        assert!(error.contains("not a duration"), "{error}");
    }

    fn ts(seconds: i64) -> Option<prost_types::Timestamp> {
        Some(prost_types::Timestamp { seconds, nanos: 0 })
    }

    /// 2026-03-02 09:00:00 UTC, 10:00 in Paris.
    const AT: i64 = 1_772_442_000;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(AT + 600, 0).unwrap()
    }

    fn notice(team: &str, text: &str, level: pb::NoticeLevel, hours: i64) -> pb::Notice {
        pb::Notice {
            id: format!(
                "{}-1/{}",
                AT * 1000,
                if team.is_empty() {
                    "site".to_owned()
                } else {
                    format!("team/{team}")
                }
            ),
            site: "paris".into(),
            team: team.into(),
            text: text.into(),
            level: level.into(),
            posted_by: "camille".into(),
            posted_at: ts(AT),
            expires_at: ts(AT + hours * 3600),
        }
    }

    #[test]
    fn the_messages_print_as_proto3_json() {
        let answer = pb::NoticeResponse {
            notice: Some(notice(
                "team-a",
                "New script",
                pb::NoticeLevel::Important,
                2,
            )),
        };
        let json: serde_json::Value =
            serde_json::from_str(&crate::client::json::to_json(&answer, false).unwrap()).unwrap();
        assert_eq!(json["notice"]["level"], "NOTICE_LEVEL_IMPORTANT");
        assert_eq!(json["notice"]["expiresAt"], "2026-03-02T11:00:00Z");
        crate::client::json::to_json(&pb::ListNoticesResponse::default(), true).unwrap();
        crate::client::json::to_json(&pb::NoticesUpdate::default(), true).unwrap();
    }

    #[test]
    fn instants_and_spans_read_at_a_glance() {
        let paris = Some(chrono_tz::Europe::Paris);
        assert_eq!(when(ts(AT + 3600).as_ref(), paris, now()), "11:00");
        assert_eq!(when(ts(AT + 3600).as_ref(), None, now()), "10:00");
        assert_eq!(
            when(ts(AT + 2 * 86_400).as_ref(), paris, now()),
            "Wed 04 Mar 10:00"
        );
        assert_eq!(when(None, paris, now()), "-");
        assert_eq!(span(3 * 86_400 + 4 * 3600 + 59), "3d 4h");
        assert_eq!(span(3600 + 5 * 60 + 9), "1h 05m");
        assert_eq!(span(12 * 60 + 30), "12m");
        assert_eq!(span(40), "40s");
        assert_eq!(span(-5), "0s");
    }

    #[test]
    fn the_list_shows_text_audience_time_left_and_who_posted() {
        let paris = Some(chrono_tz::Europe::Paris);
        let notices = [
            notice("", "Fire drill at 15:00", pb::NoticeLevel::Important, 2),
            notice("team-a", "New script", pb::NoticeLevel::Info, 4),
        ];
        let text = list(&notices, "paris", Some("team-a"), paris, now());
        assert!(
            text.starts_with(
                "2 notices in force for team team-a (with those for every team), newest first:\n"
            ),
            "{text}"
        );
        for expected in [
            "IMPORTANT: Fire drill at 15:00",
            "every team",
            "12:00 (1h 50m left)",
            "New script",
            "team-a",
            "14:00 (3h 50m left)",
            "10:00 by camille",
            "1772442000000-1/team/team-a",
        ] {
            assert!(text.contains(expected), "{expected} not in\n{text}");
        }
        assert_eq!(
            list(&[], "paris", None, paris, now()),
            "No notice in force for site paris.\n"
        );
    }

    #[test]
    fn a_post_and_a_withdrawal_say_what_was_done() {
        let paris = Some(chrono_tz::Europe::Paris);
        let answer = pb::NoticeResponse {
            notice: Some(notice("team-a", "New script", pb::NoticeLevel::Info, 2)),
        };
        assert_eq!(
            posted(&answer, paris, now()),
            "Posted to team team-a until 12:00 (2h 00m): New script\n\
             Id: 1772442000000-1/team/team-a (to withdraw it: vigie notice --withdraw 1772442000000-1/team/team-a)\n"
        );
        let answer = pb::NoticeResponse {
            notice: Some(notice("", "Drill", pb::NoticeLevel::Important, 1)),
        };
        assert!(
            posted(&answer, paris, now())
                .starts_with("Posted as important to every team until 11:00 (1h 00m): Drill\n"),
            "{}",
            posted(&answer, paris, now())
        );
        assert_eq!(withdrawn(&answer), "Withdrawn from every team: Drill\n");
    }
}
