//! `vigie abandoned`: the contacts that hung up while waiting, one by one, from the History
//! service's `ListAbandonedContacts`, as a table for a person, CSV for a call-back list, or the
//! proto3 JSON mapping.

use std::io::IsTerminal as _;
use std::path::PathBuf;

use chrono::NaiveDate;
use clap::{Args, ValueEnum};
use vigie_proto::v1 as pb;

use super::super::Api;
use super::super::json::ProtoName;
use super::super::table::duration;
use super::{Connection, csv_field, day_text, grid, local, parse_day, write_out, zone_of};

/// Examples shown at the end of `vigie abandoned --help`.
pub const ABANDONED_EXAMPLES: &str = "\
Examples:
  vigie abandoned --team team-a                     today's, of the team's campaign queues
  vigie abandoned --queue billing --exclude-short   today's on one queue, short abandons left out
  vigie abandoned --team team-a --from 2026-03-02 --format csv > call-back.csv
  vigie abandoned --from 2026-03-01 --to 2026-03-07 the whole site (managers and admins)

Each line: when the contact hung up (site-local time), the queue, the channel, how long it
waited, whether the wait was a short abandon, and its opaque contact id (never a phone
number). Supervisors, managers and admins only; a supervisor names their team or one of its
queues. At most 31 days.";

impl ProtoName for pb::ListAbandonedContactsResponse {
    const FULL_NAME: &'static str = "vigie.v1.ListAbandonedContactsResponse";
}

/// Output of `vigie abandoned`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum AbandonedFormat {
    /// A table for a person.
    Table,
    /// One CSV row per contact: instants site-local RFC 3339, waits in seconds and hh:mm:ss.
    Csv,
    /// The proto3 JSON mapping of the answer, as grpcurl prints it.
    Json,
}

/// Arguments of `vigie abandoned`.
#[derive(Args, Debug)]
pub struct AbandonedArgs {
    /// One queue's abandons (a queue id, as `vigie queues` lists them).
    #[arg(long, value_name = "QUEUE")]
    pub queue: Option<String>,
    /// The abandons of a team's campaign queues.
    #[arg(long, value_name = "TEAM")]
    pub team: Option<String>,
    /// First site-local day, YYYY-MM-DD. Default: today.
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_day)]
    pub from: Option<NaiveDate>,
    /// Last site-local day, included. Default: the first.
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_day)]
    pub to: Option<NaiveDate>,
    /// Leave out short abandons (waits below the queue's short_abandon).
    #[arg(long)]
    pub exclude_short: bool,
    /// Output format. Default: csv with --output or when standard output is not a terminal,
    /// else table.
    #[arg(long, value_enum)]
    pub format: Option<AbandonedFormat>,
    /// Write to this file instead of standard output.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub connection: Connection,
}

/// Runs `vigie abandoned ...`.
pub async fn run_abandoned(args: &AbandonedArgs) -> anyhow::Result<()> {
    let format = args.format.unwrap_or(
        if args.output.is_some() || !std::io::stdout().is_terminal() {
            AbandonedFormat::Csv
        } else {
            AbandonedFormat::Table
        },
    );
    let (api, site) = Api::for_site(&args.connection.api_args()).await?;
    let request = pb::ListAbandonedContactsRequest {
        site: site.id.clone(),
        from_date: args.from.map(day_text).unwrap_or_default(),
        to_date: args.to.map(day_text).unwrap_or_default(),
        queue: args.queue.clone().unwrap_or_default(),
        team: args.team.clone().unwrap_or_default(),
        exclude_short: args.exclude_short,
    };
    let scope = match (&args.queue, &args.team) {
        (Some(queue), _) => format!("queue `{queue}`"),
        (None, Some(team)) => format!("team `{team}`"),
        (None, None) => "the site".to_owned(),
    };
    let what = format!("the abandoned contacts of {scope} of site `{}`", site.id);
    let mut client = api.history.clone();
    let answer = api
        .unary(&what, client.list_abandoned_contacts(request))
        .await?;
    let text = match format {
        AbandonedFormat::Table => abandoned_table(&answer),
        AbandonedFormat::Csv => abandoned_csv(&answer),
        AbandonedFormat::Json => super::super::json::to_json(&answer, true)? + "\n",
    };
    write_out(args.output.as_deref(), text.as_bytes())
}

/// A wait as `hh:mm:ss`.
fn clock(seconds: f64) -> String {
    let total = seconds.max(0.0).round() as u64;
    format!(
        "{:02}:{:02}:{:02}",
        total / 3600,
        (total % 3600) / 60,
        total % 60
    )
}

/// `vigie abandoned --format table`.
pub fn abandoned_table(answer: &pb::ListAbandonedContactsResponse) -> String {
    let zone = zone_of(&answer.time_zone);
    let days = if answer.from_date == answer.to_date {
        answer.from_date.clone()
    } else {
        format!("{} to {}", answer.from_date, answer.to_date)
    };
    let mut text = format!(
        "Abandoned contacts, {days} ({}): {}\n",
        answer.time_zone,
        answer.contacts.len()
    );
    if answer.contacts.is_empty() {
        text.push_str("No contact hung up while waiting.\n");
    } else {
        let time_format = if answer.from_date == answer.to_date {
            "%H:%M:%S"
        } else {
            "%Y-%m-%d %H:%M:%S"
        };
        let mut table = grid(&["Time", "Queue", "Channel", "Contact", "Wait", "Short"], 4);
        for contact in &answer.contacts {
            table.add_row(vec![
                local(contact.abandoned_at.as_ref(), zone, time_format),
                contact.queue.clone(),
                contact.channel.clone(),
                contact.contact_id.clone(),
                duration(Some(contact.wait_seconds)),
                if contact.short { "yes" } else { "" }.to_owned(),
            ]);
        }
        text.push_str(&format!("{table}\n"));
    }
    if answer.omitted > 0 {
        text.push_str(&format!(
            "{} more abandons are counted in the figures but not listed (see docs/history.md)\n",
            answer.omitted
        ));
    }
    if answer.as_of.is_some() {
        text.push_str("Today's list runs up to now and grows as the day goes on.\n");
    }
    text
}

/// `vigie abandoned --format csv`: a header, then one row per contact.
pub fn abandoned_csv(answer: &pb::ListAbandonedContactsResponse) -> String {
    let zone = zone_of(&answer.time_zone);
    let mut out =
        String::from("abandoned_at,date,queue,channel,contact_id,wait_seconds,wait,short\n");
    for contact in &answer.contacts {
        let at = contact.abandoned_at.as_ref();
        let fields = [
            local(at, zone, "%Y-%m-%dT%H:%M:%S%.3f%:z"),
            local(at, zone, "%Y-%m-%d"),
            contact.queue.clone(),
            contact.channel.clone(),
            contact.contact_id.clone(),
            format!("{:.3}", contact.wait_seconds),
            clock(contact.wait_seconds),
            contact.short.to_string(),
        ];
        let line: Vec<String> = fields.iter().map(|field| csv_field(field)).collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer() -> pb::ListAbandonedContactsResponse {
        pb::ListAbandonedContactsResponse {
            site: "paris".into(),
            from_date: "2026-03-02".into(),
            to_date: "2026-03-02".into(),
            time_zone: "Europe/Paris".into(),
            contacts: vec![
                pb::AbandonedContact {
                    abandoned_at: Some(prost_types::Timestamp {
                        seconds: 1_772_442_000, // 2026-03-02T09:00:00Z
                        nanos: 0,
                    }),
                    contact_id: "c-17".into(),
                    queue: "billing".into(),
                    channel: "voice".into(),
                    wait_seconds: 3_725.5,
                    short: false,
                },
                pb::AbandonedContact {
                    abandoned_at: Some(prost_types::Timestamp {
                        seconds: 1_772_442_060,
                        nanos: 0,
                    }),
                    contact_id: "c,\"18\"".into(),
                    queue: "sales".into(),
                    channel: "chat".into(),
                    wait_seconds: 2.0,
                    short: true,
                },
            ],
            omitted: 0,
            as_of: None,
        }
    }

    #[test]
    fn the_csv_has_local_times_waits_in_two_forms_and_quoted_ids() {
        let csv = abandoned_csv(&answer());
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(
            lines,
            [
                "abandoned_at,date,queue,channel,contact_id,wait_seconds,wait,short",
                "2026-03-02T10:00:00.000+01:00,2026-03-02,billing,voice,c-17,3725.500,01:02:06,false",
                "2026-03-02T10:01:00.000+01:00,2026-03-02,sales,chat,\"c,\"\"18\"\"\",2.000,00:00:02,true",
            ]
        );
    }

    #[test]
    fn the_table_shows_local_times_and_says_what_is_not_listed() {
        let mut answer = answer();
        answer.omitted = 3;
        let table = abandoned_table(&answer);
        assert!(
            table.starts_with("Abandoned contacts, 2026-03-02 (Europe/Paris): 2"),
            "{table}"
        );
        assert!(
            table.contains("10:00:00") && table.contains("1h02m06s"),
            "{table}"
        );
        assert!(table.contains("3 more abandons"), "{table}");
        answer.contacts.clear();
        answer.omitted = 0;
        assert!(abandoned_table(&answer).contains("No contact hung up while waiting."));
    }
}
