//! Alerts in `vigie serve`: the rules of each site, the default pack of the demo, and the
//! hand-over of the engine's notifications to delivery (`vigie-notify`), one message per team
//! the alert is routed to.

use std::collections::BTreeMap;

use anyhow::Context;
use tokio::sync::mpsc;
use vigie_alerts::{AlertEngine, RuleConfig};
use vigie_core::SiteConfig;
use vigie_notify::NotifierHandle;

/// The default rule pack (`deploy/alerts/default-rules.toml`), written for site `paris`.
const DEFAULT_RULES: &str = include_str!("../../../deploy/alerts/default-rules.toml");

/// The default rule pack for `site`.
pub fn default_rules(site: &str) -> anyhow::Result<Vec<RuleConfig>> {
    #[derive(serde::Deserialize)]
    struct Pack {
        alert_rule: Vec<RuleConfig>,
    }
    let pack: Pack = toml::from_str(DEFAULT_RULES).context("the default alert rule pack")?;
    Ok(pack
        .alert_rule
        .into_iter()
        .map(|rule| RuleConfig {
            site: site.to_owned(),
            ..rule
        })
        .collect())
}

/// One alert engine per site, with the site's rules (none yet is fine: admins may add rules
/// through the API).
pub fn alert_engines(
    sites: &[SiteConfig],
    rules: &[RuleConfig],
) -> anyhow::Result<BTreeMap<String, AlertEngine>> {
    let mut engines = BTreeMap::new();
    for site in sites {
        let own: Vec<RuleConfig> = rules
            .iter()
            .filter(|r| r.site == site.id)
            .cloned()
            .collect();
        let engine = AlertEngine::new(&site.id, &own)
            .map_err(|errors| anyhow::anyhow!("alert rules of site {}: {errors}", site.id))?;
        engines.insert(site.id.clone(), engine);
    }
    Ok(engines)
}

/// Problems of rules naming a site that is not configured.
pub fn unknown_sites(rules: &[RuleConfig], sites: &[SiteConfig]) -> Vec<String> {
    rules
        .iter()
        .enumerate()
        .filter(|(_, rule)| !sites.iter().any(|site| site.id == rule.site))
        .map(|(index, rule)| {
            format!(
                "alert_rule[{index}].site: {:?} is not a configured site",
                rule.site
            )
        })
        .collect()
}

/// The messages of one alert notification: one per team it is routed to (one without a team
/// for an alert of the whole site).
pub fn messages(
    notification: &vigie_alerts::Notification,
    site: Option<&SiteConfig>,
) -> Vec<vigie_notify::Notification> {
    use vigie_alerts::NotificationKind as From;
    use vigie_notify::NotificationKind as To;
    let notice = &notification.notice;
    let kind = match notice.kind {
        From::Fired => To::Fired,
        From::Escalated => To::Escalated,
        From::DeEscalated => To::DeEscalated,
        From::Renotified => To::Renotified,
        From::Resolved => To::Resolved,
        From::Acknowledged => To::Acknowledged {
            by: notice.by.clone().unwrap_or_default(),
        },
        From::Silenced => To::Silenced {
            by: notice.by.clone().unwrap_or_default(),
            until: notice.until.unwrap_or(notice.at),
        },
    };
    let target_kind = match notification.target.kind {
        vigie_alerts::TargetKind::Site => vigie_notify::TargetKind::Site,
        vigie_alerts::TargetKind::Queue => vigie_notify::TargetKind::Queue,
        vigie_alerts::TargetKind::Team => vigie_notify::TargetKind::Team,
        vigie_alerts::TargetKind::Advisor => vigie_notify::TargetKind::Advisor,
    };
    let unit = match notification.unit {
        vigie_alerts::Unit::Fraction => vigie_notify::Unit::Fraction,
        vigie_alerts::Unit::Seconds => vigie_notify::Unit::Seconds,
        vigie_alerts::Unit::Count => vigie_notify::Unit::Count,
    };
    let comparator = match notification.comparator {
        vigie_alerts::Comparator::Above => vigie_notify::Comparator::Above,
        vigie_alerts::Comparator::Below => vigie_notify::Comparator::Below,
    };
    let severity = match notice.severity {
        Some(vigie_alerts::Severity::Critical) => vigie_notify::Severity::Critical,
        _ => vigie_notify::Severity::Warning,
    };
    let metric = match &notification.reason {
        Some(reason) => format!("{}:{reason}", notification.metric.as_str()),
        None => notification.metric.as_str().to_owned(),
    };
    let team_name = |team: &str| {
        site.and_then(|s| s.teams.iter().find(|t| t.id == team))
            .and_then(|t| t.name.clone())
    };
    let target_name = site.and_then(|s| match notification.target.kind {
        vigie_alerts::TargetKind::Queue => s
            .queues
            .iter()
            .find(|q| q.id == notification.target.id)
            .and_then(|q| q.name.clone()),
        vigie_alerts::TargetKind::Team => team_name(&notification.target.id),
        _ => None,
    });
    let teams: Vec<Option<&str>> = if notification.teams.is_empty() {
        vec![None]
    } else {
        notification
            .teams
            .iter()
            .map(|t| Some(t.as_str()))
            .collect()
    };
    teams
        .into_iter()
        .map(|team| vigie_notify::Notification {
            site: notification.site.clone(),
            site_name: site.and_then(|s| s.name.clone()),
            time_zone: site.map_or_else(|| "UTC".to_owned(), |s| s.time_zone.clone()),
            team: team.map(str::to_owned),
            team_name: team.and_then(team_name),
            alert_id: notification.alert.clone(),
            rule_id: notification.rule.clone(),
            rule_name: notification.rule_name.clone(),
            target_kind,
            target_id: notification.target.id.clone(),
            target_name: target_name.clone(),
            metric: metric.clone(),
            comparator,
            severity,
            kind: kind.clone(),
            value: notice.value,
            threshold: notice.threshold.unwrap_or_default(),
            unit,
            since: notice.since.unwrap_or(notice.changed_at),
            at: notice.changed_at,
        })
        .collect()
}

/// Hands the engine's notifications to the notifier until the engine stops.
pub async fn deliver(
    mut notifications: mpsc::Receiver<vigie_alerts::Notification>,
    notifier: NotifierHandle,
    sites: Vec<SiteConfig>,
) {
    while let Some(notification) = notifications.recv().await {
        let notice = &notification.notice;
        tracing::info!(
            site = %notification.site,
            alert = %notification.alert,
            kind = ?notice.kind,
            severity = ?notice.severity,
            value = ?notice.value,
            threshold = ?notice.threshold,
            "alert"
        );
        let site = sites.iter().find(|s| s.id == notification.site);
        for message in messages(&notification, site) {
            // A full or stopped notifier drops and counts it; the engine never waits.
            let _ = notifier.try_send(message);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_pack_is_valid_for_any_site() {
        let rules = default_rules("demo").unwrap();
        assert_eq!(rules.len(), 5);
        assert!(rules.iter().all(|r| r.site == "demo"));
        vigie_alerts::validate_rules(&rules, "alert_rule").unwrap();
        let sites = [
            SiteConfig::with_defaults("demo"),
            SiteConfig::with_defaults("lyon"),
        ];
        let engines = alert_engines(&sites, &rules).unwrap();
        assert_eq!(engines["demo"].rules().count(), 5);
        assert_eq!(
            engines["lyon"].rules().count(),
            0,
            "a site without rules can get some"
        );
    }

    #[test]
    fn rules_of_unknown_sites_are_reported() {
        let rules = default_rules("lyon").unwrap();
        let problems = unknown_sites(&rules, &[SiteConfig::with_defaults("paris")]);
        assert_eq!(problems.len(), 5);
        assert!(
            problems[0].contains("alert_rule[0].site: \"lyon\""),
            "{problems:?}"
        );
    }
}
