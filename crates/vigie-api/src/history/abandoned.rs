//! `ListAbandonedContacts`: the contacts that hung up while waiting in a queue, one by one.
//!
//! The current day comes from the engine's live list (rebuilt with the day after a restart, so
//! complete from the day's start); earlier days from the queue records of the history store,
//! each listing the abandons of its interval (the latest revision of each record, so a late
//! event's correction counts). Contact ids are for the roles that see them in the live views
//! (supervisors, managers, admins), within the scope they read.

use std::collections::BTreeSet;

use futures::future::try_join_all;
use tonic::{Request, Status};
use vigie_core::{SiteProcessor, Timestamp};
use vigie_engine::EngineState;
use vigie_history::abandoned::abandoned_record;
use vigie_history::{AbandonedRecord, IntervalRecord, ScopeKind, latest_revisions};
use vigie_proto::v1 as pb;

use super::{
    HistoryService, SiteFacts, bad, date_text, day_range, required, seconds, store_error, wire_time,
};
use crate::auth::{Principal, permission_denied};
use crate::{convert, read};

/// The queues a request lists: one, a team's campaign, or every queue of the site (`None`).
fn queues_asked(
    principal: &Principal,
    site: &SiteProcessor,
    queue: &str,
    team: &str,
) -> Result<Option<BTreeSet<String>>, Status> {
    let site_id = &site.site().id;
    if !principal.may_see_contact_ids() {
        return Err(permission_denied());
    }
    let mut queues = None;
    if !team.is_empty() {
        if !principal.may_read_team(site_id, team) {
            return Err(permission_denied());
        }
        let campaign = site.site().teams.iter().find(|t| t.id == team);
        queues = Some(campaign.map_or_else(BTreeSet::new, |t| t.queues.iter().cloned().collect()));
    }
    if !queue.is_empty() {
        if !principal.may_read_queue(site_id, queue, &site.teams_serving(queue)) {
            return Err(permission_denied());
        }
        queues = Some(match queues {
            Some(campaign) if !campaign.contains(queue) => BTreeSet::new(),
            _ => BTreeSet::from([queue.to_owned()]),
        });
    }
    if queues.is_none() && !principal.may_read_site(site_id) {
        return Err(permission_denied());
    }
    Ok(queues)
}

/// What the engine says for a request: the site's facts and the current day's abandons of the
/// queues asked for, up to the site's clock, with the count the live list dropped.
struct Live {
    facts: SiteFacts,
    time_zone: String,
    queues: Option<BTreeSet<String>>,
    today: Vec<(String, AbandonedRecord)>,
    dropped: u64,
}

fn live(
    state: &EngineState,
    principal: &Principal,
    site: &str,
    queue: &str,
    team: &str,
) -> Result<Live, Status> {
    let processor = read::site(state, principal, site)?;
    let queues = queues_asked(principal, processor, queue, team)?;
    let facts = SiteFacts::of(processor);
    let (today, dropped) = match state.abandoned.get(site) {
        Some(log) => (
            log.between(facts.today.start, Timestamp(facts.now.0 + 1))
                .filter(|a| queues.as_ref().is_none_or(|q| q.contains(&a.queue)))
                .map(|a| (a.queue.clone(), abandoned_record(a)))
                .collect(),
            log.dropped(),
        ),
        None => (Vec::new(), 0),
    };
    Ok(Live {
        facts,
        time_zone: processor.site().time_zone.clone(),
        queues,
        today,
        dropped,
    })
}

fn to_wire(queue: String, record: AbandonedRecord) -> pb::AbandonedContact {
    pb::AbandonedContact {
        abandoned_at: Some(wire_time(record.abandoned_at_ms)),
        contact_id: record.contact,
        queue,
        channel: record.channel,
        wait_seconds: seconds(record.wait_ms),
        short: record.short,
    }
}

impl HistoryService {
    /// The stored queue records of `[from, to)` for the queues asked (every queue of the site
    /// when `None`), latest revisions only.
    async fn stored_queue_records(
        &self,
        site: &str,
        queues: Option<&BTreeSet<String>>,
        dates: Vec<String>,
        (from, to): (i64, i64),
    ) -> Result<Vec<IntervalRecord>, Status> {
        let store = self.store()?;
        let records: Vec<IntervalRecord> = match queues {
            Some(queues) => try_join_all(
                queues
                    .iter()
                    .map(|queue| store.query(site, ScopeKind::Queue, queue, from, to)),
            )
            .await
            .map_err(store_error)?
            .into_iter()
            .flatten()
            .collect(),
            None => try_join_all(dates.iter().map(|date| store.day(site, date)))
                .await
                .map_err(store_error)?
                .into_iter()
                .flatten()
                .filter(|r| r.key.kind == ScopeKind::Queue)
                .filter(|r| from <= r.key.start_ms && r.key.start_ms < to)
                .collect(),
        };
        Ok(latest_revisions(records))
    }

    pub(super) async fn list_abandoned_contacts_in(
        &self,
        request: Request<pb::ListAbandonedContactsRequest>,
    ) -> Result<pb::ListAbandonedContactsResponse, Status> {
        let principal = self.principal(&request)?;
        let request = request.into_inner();
        required("site", &request.site)?;
        for (field, value) in [("queue", &request.queue), ("team", &request.team)] {
            if !value.is_empty() && value.trim().is_empty() {
                return Err(bad(field, "blank"));
            }
        }
        let (site, queue, team) = (
            request.site.clone(),
            request.queue.clone(),
            request.team.clone(),
        );
        let live = self
            .query(move |state| live(state, &principal, &site, &queue, &team))
            .await?;
        let facts = live.facts;
        let (first, last) = day_range(&request.from_date, &request.to_date, facts.today.date)?;
        let (from, to) = facts.span(first, last);
        let before_today = to.min(facts.today.start.0);
        let mut contacts: Vec<(String, AbandonedRecord)> = Vec::new();
        let mut omitted = 0;
        if from < before_today {
            let dates = first
                .iter_days()
                .take_while(|date| *date <= last && *date < facts.today.date)
                .map(date_text)
                .collect();
            let records = self
                .stored_queue_records(
                    &request.site,
                    live.queues.as_ref(),
                    dates,
                    (from, before_today),
                )
                .await?;
            for record in records {
                omitted += record.abandoned_contacts_omitted;
                let queue = record.key.id;
                contacts.extend(
                    record
                        .abandoned_contacts
                        .into_iter()
                        .map(|a| (queue.clone(), a)),
                );
            }
        }
        let today_listed = first <= facts.today.date && facts.today.date <= last;
        if today_listed {
            contacts.extend(live.today);
            omitted += live.dropped;
        }
        if request.exclude_short {
            contacts.retain(|(_, a)| !a.short);
        }
        contacts.sort_by(|(qa, a), (qb, b)| (a, qa).cmp(&(b, qb)));
        Ok(pb::ListAbandonedContactsResponse {
            site: request.site,
            from_date: date_text(first),
            to_date: date_text(last),
            time_zone: live.time_zone,
            contacts: contacts
                .into_iter()
                .map(|(queue, a)| to_wire(queue, a))
                .collect(),
            omitted,
            as_of: today_listed.then(|| convert::timestamp(facts.now)),
        })
    }
}
