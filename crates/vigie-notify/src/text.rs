//! The words of a notification, in French or English: a title, a summary sentence and a list
//! of facts, which each chat format lays out its own way.
//!
//! Pure: the same notification and language give the same text, byte for byte.

use chrono::{DateTime, Datelike, Timelike};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::notification::{
    Comparator, KindTag, Notification, NotificationKind, Severity, TargetKind, Unit,
};
use vigie_core::Timestamp;

/// The language of a route's messages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Language {
    /// French.
    #[default]
    Fr,
    /// English.
    En,
}

impl Language {
    /// The ISO 639-1 code.
    pub fn as_str(self) -> &'static str {
        match self {
            Language::Fr => "fr",
            Language::En => "en",
        }
    }
}

/// The colour that goes with an event: red for critical, amber for warning, green at
/// resolution, grey for acknowledgements and silences.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tone {
    /// Critical alert.
    Critical,
    /// Warning.
    Warning,
    /// Resolved.
    Good,
    /// Acknowledged, silenced.
    Neutral,
}

impl Tone {
    /// Hex colour for Slack and Mattermost attachments.
    pub fn hex(self) -> &'static str {
        match self {
            Tone::Critical => "#D0021B",
            Tone::Warning => "#F2A900",
            Tone::Good => "#2EB67D",
            Tone::Neutral => "#8D8D8D",
        }
    }

    /// Adaptive Card colour and container style names.
    pub fn adaptive(self) -> (&'static str, &'static str) {
        match self {
            Tone::Critical => ("Attention", "attention"),
            Tone::Warning => ("Warning", "warning"),
            Tone::Good => ("Good", "good"),
            Tone::Neutral => ("Default", "emphasis"),
        }
    }
}

/// A notification put into words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The language used.
    pub language: Language,
    /// One line with an emoji, what happened and the rule's name.
    pub title: String,
    /// What, where, how bad and since when, in one or two sentences.
    pub summary: String,
    /// Labelled facts (label, value), in display order.
    pub facts: Vec<(String, String)>,
    /// Rule and alert identifiers, for whoever needs to find them.
    pub footer: String,
    /// The colour of the event.
    pub tone: Tone,
}

impl Message {
    /// The title and the summary on two lines: the plain-text fallback of chat messages.
    pub fn plain(&self) -> String {
        format!("{}\n{}", self.title, self.summary)
    }
}

/// The indicator `metric` in words, in `language`: `service_level` is "Niveau de service" or
/// "Service level"; a detail after a colon is put in brackets (`pause_duration:lunch` is
/// "Pause (lunch)"); an unknown name is shown with spaces for underscores.
pub fn metric_label(metric: &str, language: Language) -> String {
    let (base, detail) = match metric.split_once(':') {
        Some((base, detail)) => (base, Some(detail)),
        None => (metric, None),
    };
    let known = METRICS
        .iter()
        .find(|(names, _, _)| names.contains(&base))
        .map(|(_, fr, en)| match language {
            Language::Fr => (*fr).to_owned(),
            Language::En => (*en).to_owned(),
        });
    let words = known.unwrap_or_else(|| {
        let spaced = base.replace('_', " ");
        let mut chars = spaced.chars();
        match chars.next() {
            Some(first) => first.to_uppercase().chain(chars).collect(),
            None => spaced,
        }
    });
    match detail {
        Some(detail) if !detail.is_empty() => format!("{words} ({detail})"),
        _ => words,
    }
}

/// Indicator names (with their usual variants), in French and in English.
const METRICS: &[(&[&str], &str, &str)] = &[
    (
        &["service_level", "sl"],
        "Niveau de service",
        "Service level",
    ),
    (
        &["longest_wait", "oldest_wait", "max_wait"],
        "Temps d'attente le plus long",
        "Longest wait",
    ),
    (
        &["in_queue", "waiting", "calls_waiting"],
        "Appels en attente",
        "Calls waiting",
    ),
    (&["abandon_rate"], "Taux d'abandon", "Abandon rate"),
    (&["abandoned"], "Appels abandonnés", "Abandoned calls"),
    (
        &["aht"],
        "Durée moyenne de traitement (DMT)",
        "Average handle time (AHT)",
    ),
    (
        &["asa"],
        "Délai moyen de décroché (ASA)",
        "Average speed of answer (ASA)",
    ),
    (&["occupancy"], "Taux d'occupation", "Occupancy"),
    (
        &["available", "available_advisors"],
        "Conseillers disponibles",
        "Available advisors",
    ),
    (
        &["pause", "pause_duration", "pause_time"],
        "Pause",
        "Time in pause",
    ),
    (
        &["acw", "acw_duration", "wrap_up"],
        "Post-appel (ACW)",
        "After-call work (ACW)",
    ),
    (
        &[
            "call_duration",
            "talk_duration",
            "contact_duration",
            "handle_duration",
        ],
        "Durée de l'appel en cours",
        "Call duration",
    ),
    (&["hold_duration"], "Mise en attente", "Time on hold"),
    (&["missed_offers"], "Appels manqués", "Missed offers"),
    (&["transfer_rate"], "Taux de transfert", "Transfer rate"),
    (&["offered"], "Appels reçus", "Offered calls"),
];

/// `value` written in `unit`: `72%`/`72 %`, `1m05s`, `12`; French uses a decimal comma.
pub fn format_value(value: f64, unit: Unit, language: Language) -> String {
    if !value.is_finite() {
        return "?".to_owned();
    }
    match unit {
        Unit::Fraction => {
            let number = decimal(value * 100.0, language);
            match language {
                Language::Fr => format!("{number} %"),
                Language::En => format!("{number}%"),
            }
        }
        Unit::Seconds => compact_duration(value),
        Unit::Count => decimal(value, language),
    }
}

/// One decimal at most, none for whole numbers.
fn decimal(value: f64, language: Language) -> String {
    let rounded = (value * 10.0).round() / 10.0;
    let text = if rounded.fract() == 0.0 {
        format!("{rounded:.0}")
    } else {
        format!("{rounded:.1}")
    };
    match language {
        Language::Fr => text.replace('.', ","),
        Language::En => text,
    }
}

/// Seconds as `45s`, `1m05s`, `1h02m05s` (rounded to the second; negative is 0s).
pub fn compact_duration(seconds: f64) -> String {
    let total = if seconds.is_finite() && seconds > 0.0 {
        seconds.round() as u64
    } else {
        0
    };
    let (hours, minutes, secs) = (total / 3600, (total % 3600) / 60, total % 60);
    if hours > 0 {
        format!("{hours}h{minutes:02}m{secs:02}s")
    } else if minutes > 0 {
        format!("{minutes}m{secs:02}s")
    } else {
        format!("{secs}s")
    }
}

/// How long something lasted, for sentences: `45 s`, `5 min`, `1 h 05`/`1 h 5 min`, `2 h`.
pub fn human_duration(millis: i64, language: Language) -> String {
    let total = (millis.max(0) + 500) / 1000;
    if total < 60 {
        return format!("{total} s");
    }
    let minutes = (total + 30) / 60;
    if minutes < 60 {
        return format!("{minutes} min");
    }
    let (hours, rest) = (minutes / 60, minutes % 60);
    match (rest, language) {
        (0, _) => format!("{hours} h"),
        (_, Language::Fr) => format!("{hours} h {rest:02}"),
        (_, Language::En) => format!("{hours} h {rest} min"),
    }
}

/// The site's zone, UTC when unknown.
pub(crate) fn zone(name: &str) -> Tz {
    name.parse().unwrap_or(Tz::UTC)
}

/// An instant in a zone (the epoch for an instant out of range).
pub(crate) fn local(at: Timestamp, zone: Tz) -> DateTime<Tz> {
    DateTime::from_timestamp_millis(at.0)
        .unwrap_or_default()
        .with_timezone(&zone)
}

/// The zone as people say it: "heure de Paris", "Paris time"; the name itself for UTC and
/// `Etc/` zones.
fn zone_words(zone: Tz, language: Language) -> String {
    let name = zone.name();
    match name.rsplit_once('/') {
        Some((_, city)) if !name.starts_with("Etc/") => {
            let city = city.replace('_', " ");
            match language {
                Language::Fr => format!("heure de {city}"),
                Language::En => format!("{city} time"),
            }
        }
        _ => match language {
            Language::Fr => format!("heure {name}"),
            Language::En => name.to_owned(),
        },
    }
}

const MONTHS_EN: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// A local time: `9h12`/`09:12`; with the date when `with_date`: `04/03 à 23h50`,
/// `Mar 4, 23:50`.
fn clock(at: DateTime<Tz>, with_date: bool, language: Language) -> String {
    let (hour, minute) = (at.hour(), at.minute());
    match (language, with_date) {
        (Language::Fr, false) => format!("{hour}h{minute:02}"),
        (Language::Fr, true) => {
            format!("{:02}/{:02} à {hour}h{minute:02}", at.day(), at.month())
        }
        (Language::En, false) => format!("{hour:02}:{minute:02}"),
        (Language::En, true) => format!(
            "{} {}, {hour:02}:{minute:02}",
            MONTHS_EN[at.month0() as usize],
            at.day()
        ),
    }
}

/// A local time in a zone, with the date when it is not the day of `day_of`.
struct When {
    text: String,
    dated: bool,
}

impl When {
    fn new(at: Timestamp, day_of: Timestamp, zone: Tz, language: Language) -> When {
        let (at, day_of) = (local(at, zone), local(day_of, zone));
        let dated = at.date_naive() != day_of.date_naive();
        When {
            text: clock(at, dated, language),
            dated,
        }
    }

    /// French after "depuis" or "à": `9h12`, `le 04/03 à 23h50`.
    fn fr_le(&self) -> String {
        if self.dated {
            format!("le {}", self.text)
        } else {
            self.text.clone()
        }
    }

    /// French after "jusque": `jusqu'à 10h00`, `jusqu'au 05/03 à 8h00`.
    fn fr_until(&self) -> String {
        if self.dated {
            format!("jusqu'au {}", self.text)
        } else {
            format!("jusqu'à {}", self.text)
        }
    }
}

/// Puts a notification into words.
pub fn render(n: &Notification, language: Language) -> Message {
    let zone = zone(&n.time_zone);
    let zone_words = zone_words(zone, language);
    let since = When::new(n.since, n.at, zone, language);
    let at = When::new(n.at, n.at, zone, language);
    let lasted = human_duration(n.at.0 - n.since.0, language);
    // The end of a span that started another day carries its date too.
    let end = if since.dated {
        clock(local(n.at, zone), true, language)
    } else {
        at.text.clone()
    };

    let metric = metric_label(&n.metric, language);
    let target = target_words(n, language);
    let value = n
        .value
        .map(|v| format_value(v, n.unit, language))
        .unwrap_or_else(|| match language {
            Language::Fr => "pas de valeur".to_owned(),
            Language::En => "no value".to_owned(),
        });
    let threshold = format_value(n.threshold, n.unit, language);
    let severity = severity_word(n.severity, language);
    let tag = n.kind.tag();

    let icon = match tag {
        KindTag::Resolved => "✅",
        KindTag::Acknowledged => "👀",
        KindTag::Silenced => "🔕",
        _ => match n.severity {
            Severity::Critical => "🔴",
            Severity::Warning => "🟠",
        },
    };
    let tone = match tag {
        KindTag::Resolved => Tone::Good,
        KindTag::Acknowledged | KindTag::Silenced => Tone::Neutral,
        _ => match n.severity {
            Severity::Critical => Tone::Critical,
            Severity::Warning => Tone::Warning,
        },
    };

    let colon = match language {
        Language::Fr => " : ",
        Language::En => ": ",
    };
    let title = format!(
        "{icon} {}{colon}{}",
        headline(n, language, zone),
        n.rule_name
    );

    // What, where and how bad; then since when, or what changed.
    let condition = condition_words(n, language, &metric, &target, &value, &threshold);
    let summary = match (&n.kind, language) {
        (NotificationKind::Resolved, Language::Fr) => {
            let span = if since.dated {
                format!("du {} au {end}", since.text)
            } else {
                format!("de {} à {}", since.text, at.text)
            };
            let last = match n.value {
                Some(_) => format!("retour à {value}"),
                None => "plus de valeur".to_owned(),
            };
            format!(
                "{metric} {} : {last} (seuil : {threshold}). L'alerte a duré {lasted}, \
                 {span} ({zone_words}).",
                target.of
            )
        }
        (NotificationKind::Resolved, Language::En) => {
            let last = match n.value {
                Some(_) => format!("is back to {value}"),
                None => "has no value any more".to_owned(),
            };
            format!(
                "{metric} {} {last} (threshold {threshold}). The alert lasted {lasted}, from \
                 {} to {end} ({zone_words}).",
                target.of, since.text
            )
        }
        (NotificationKind::Acknowledged { by }, Language::Fr) => format!(
            "{by} a pris en compte l'alerte à {} ({zone_words}). {condition} Depuis {}, \
             soit {lasted}.",
            at.text,
            since.fr_le()
        ),
        (NotificationKind::Acknowledged { by }, Language::En) => format!(
            "{by} acknowledged the alert at {} ({zone_words}). {condition} Since {}, for \
             {lasted}.",
            at.text, since.text
        ),
        (NotificationKind::Silenced { by, until }, Language::Fr) => format!(
            "{by} a mis l'alerte en sourdine {} ({zone_words}). {condition} Depuis {}, soit \
             {lasted}.",
            When::new(*until, n.at, zone, language).fr_until(),
            since.fr_le()
        ),
        (NotificationKind::Silenced { by, until }, Language::En) => format!(
            "{by} silenced the alert until {} ({zone_words}). {condition} Since {}, for \
             {lasted}.",
            When::new(*until, n.at, zone, language).text,
            since.text
        ),
        (_, Language::Fr) => format!(
            "{condition} Depuis {} ({zone_words}), soit {lasted}.",
            since.fr_le()
        ),
        (_, Language::En) => format!(
            "{condition} Since {} ({zone_words}), for {lasted}.",
            since.text
        ),
    };

    let label = |fr: &str, en: &str| match language {
        Language::Fr => fr.to_owned(),
        Language::En => en.to_owned(),
    };
    let mut facts = vec![
        (label("Indicateur", "Indicator"), metric.clone()),
        (label("Cible", "Target"), target.bare.clone()),
    ];
    if let Some(team) = n.team_name.as_ref().or(n.team.as_ref()) {
        facts.push((label("Équipe", "Team"), team.clone()));
    }
    facts.push((
        label("Site", "Site"),
        n.site_name.clone().unwrap_or_else(|| n.site.clone()),
    ));
    let value_label = if tag == KindTag::Resolved {
        label("Dernière valeur", "Last value")
    } else {
        label("Valeur", "Value")
    };
    facts.push((value_label, value));
    facts.push((
        label("Seuil", "Threshold"),
        format!(
            "{} {threshold} ({severity})",
            comparator_symbol(n.comparator)
        ),
    ));
    if tag == KindTag::Resolved {
        facts.push((
            label("Durée", "Lasted"),
            format!("{lasted} ({} → {end})", since.text),
        ));
    } else {
        facts.push((
            label("Depuis", "Since"),
            format!("{} ({lasted})", since.text),
        ));
    }

    let footer = format!(
        "Vigie · {} {} · {} {} · {} ({zone_words})",
        label("règle", "rule"),
        n.rule_id,
        label("alerte", "alert"),
        n.alert_id,
        clock(local(n.at, zone), true, language),
    );

    Message {
        language,
        title,
        summary,
        facts,
        footer,
        tone,
    }
}

/// What happened, for the title.
fn headline(n: &Notification, language: Language, zone: Tz) -> String {
    match (&n.kind, language) {
        (NotificationKind::Fired, Language::Fr) => match n.severity {
            Severity::Critical => "Alerte critique".to_owned(),
            Severity::Warning => "Avertissement".to_owned(),
        },
        (NotificationKind::Fired, Language::En) => match n.severity {
            Severity::Critical => "Critical alert".to_owned(),
            Severity::Warning => "Warning".to_owned(),
        },
        (NotificationKind::Escalated, Language::Fr) => "Passée en critique".to_owned(),
        (NotificationKind::Escalated, Language::En) => "Escalated to critical".to_owned(),
        (NotificationKind::DeEscalated, Language::Fr) => "Redescendue en avertissement".to_owned(),
        (NotificationKind::DeEscalated, Language::En) => "Back to warning".to_owned(),
        (NotificationKind::Renotified, Language::Fr) => match n.severity {
            Severity::Critical => "Toujours critique".to_owned(),
            Severity::Warning => "Toujours en avertissement".to_owned(),
        },
        (NotificationKind::Renotified, Language::En) => match n.severity {
            Severity::Critical => "Still critical".to_owned(),
            Severity::Warning => "Still in warning".to_owned(),
        },
        (NotificationKind::Resolved, Language::Fr) => "Résolue".to_owned(),
        (NotificationKind::Resolved, Language::En) => "Resolved".to_owned(),
        (NotificationKind::Acknowledged { by }, Language::Fr) => {
            format!("Prise en compte par {by}")
        }
        (NotificationKind::Acknowledged { by }, Language::En) => format!("Acknowledged by {by}"),
        (NotificationKind::Silenced { by, until }, Language::Fr) => format!(
            "En sourdine {} par {by}",
            When::new(*until, n.at, zone, language).fr_until()
        ),
        (NotificationKind::Silenced { by, until }, Language::En) => format!(
            "Silenced until {} by {by}",
            When::new(*until, n.at, zone, language).text
        ),
    }
}

/// The value against the threshold, in one sentence.
fn condition_words(
    n: &Notification,
    language: Language,
    metric: &str,
    target: &TargetWords,
    value: &str,
    threshold: &str,
) -> String {
    let severity = severity_word(n.severity, language);
    match language {
        Language::Fr => {
            let side = match n.comparator {
                Comparator::Above => "au-dessus du",
                Comparator::Below => "sous le",
            };
            let seuil = match n.severity {
                Severity::Critical => "seuil critique".to_owned(),
                Severity::Warning => "seuil d'avertissement".to_owned(),
            };
            match n.value {
                Some(_) => format!(
                    "{metric} {} : {value}, {side} {seuil} de {threshold}.",
                    target.of
                ),
                None => format!("{metric} {} : {seuil} {threshold}.", target.of),
            }
        }
        Language::En => {
            let side = match n.comparator {
                Comparator::Above => "above",
                Comparator::Below => "below",
            };
            match n.value {
                Some(_) => format!(
                    "{metric} {} is {value}, {side} the {severity} threshold of {threshold}.",
                    target.of
                ),
                None => format!(
                    "{metric} {} has no value ({severity} threshold {threshold}).",
                    target.of
                ),
            }
        }
    }
}

fn severity_word(severity: Severity, language: Language) -> &'static str {
    match (severity, language) {
        (Severity::Critical, Language::Fr) => "critique",
        (Severity::Warning, Language::Fr) => "avertissement",
        (Severity::Critical, Language::En) => "critical",
        (Severity::Warning, Language::En) => "warning",
    }
}

fn comparator_symbol(comparator: Comparator) -> &'static str {
    match comparator {
        Comparator::Above => ">",
        Comparator::Below => "<",
    }
}

/// The target in words: bare (`file Ventes`) and after the indicator (`de la file Ventes`,
/// `on queue Sales`).
struct TargetWords {
    bare: String,
    of: String,
}

fn target_words(n: &Notification, language: Language) -> TargetWords {
    let name = n.target_name.as_deref().unwrap_or(&n.target_id);
    let (bare, on) = match (n.target_kind, language) {
        (TargetKind::Site, Language::Fr) => (format!("site {name}"), format!("du site {name}")),
        (TargetKind::Queue, Language::Fr) => (format!("file {name}"), format!("de la file {name}")),
        (TargetKind::Team, Language::Fr) => {
            (format!("équipe {name}"), format!("de l'équipe {name}"))
        }
        (TargetKind::Advisor, Language::Fr) => (format!("conseiller {name}"), de(name)),
        (TargetKind::Site, Language::En) => (format!("site {name}"), format!("on site {name}")),
        (TargetKind::Queue, Language::En) => (format!("queue {name}"), format!("on queue {name}")),
        (TargetKind::Team, Language::En) => (format!("team {name}"), format!("for team {name}")),
        (TargetKind::Advisor, Language::En) => {
            (format!("advisor {name}"), format!("for advisor {name}"))
        }
    };
    TargetWords { bare, of: on }
}

/// French "de" before a name, elided before a vowel or a mute h: `de Marc`, `d'Anne`.
fn de(name: &str) -> String {
    let elide = name
        .chars()
        .next()
        .is_some_and(|first| "aeiouyhàâéèêëîïôöûüAEIOUYHÀÂÉÈÊËÎÏÔÖÛÜ".contains(first));
    if elide {
        format!("d'{name}")
    } else {
        format!("de {name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_written_the_local_way() {
        assert_eq!(format_value(0.725, Unit::Fraction, Language::Fr), "72,5 %");
        assert_eq!(format_value(0.725, Unit::Fraction, Language::En), "72.5%");
        assert_eq!(format_value(0.8, Unit::Fraction, Language::En), "80%");
        assert_eq!(format_value(65.0, Unit::Seconds, Language::Fr), "1m05s");
        assert_eq!(format_value(45.4, Unit::Seconds, Language::En), "45s");
        assert_eq!(
            format_value(3725.0, Unit::Seconds, Language::En),
            "1h02m05s"
        );
        assert_eq!(format_value(12.0, Unit::Count, Language::En), "12");
        assert_eq!(format_value(2.25, Unit::Count, Language::Fr), "2,3");
        assert_eq!(format_value(f64::NAN, Unit::Count, Language::Fr), "?");
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(45_000, Language::Fr), "45 s");
        assert_eq!(human_duration(5 * 60_000 + 10_000, Language::En), "5 min");
        assert_eq!(human_duration(65 * 60_000, Language::Fr), "1 h 05");
        assert_eq!(human_duration(65 * 60_000, Language::En), "1 h 5 min");
        assert_eq!(human_duration(120 * 60_000, Language::En), "2 h");
        assert_eq!(human_duration(-5, Language::En), "0 s");
    }

    #[test]
    fn metrics_are_named_in_words() {
        assert_eq!(
            metric_label("service_level", Language::Fr),
            "Niveau de service"
        );
        assert_eq!(metric_label("longest_wait", Language::En), "Longest wait");
        assert_eq!(
            metric_label("acw_duration", Language::Fr),
            "Post-appel (ACW)"
        );
        assert_eq!(
            metric_label("pause_duration:lunch", Language::Fr),
            "Pause (lunch)"
        );
        assert_eq!(metric_label("queue_depth", Language::En), "Queue depth");
    }

    /// Longest wait on queue "Support" of Lyon, above 60 s (critical), since 23:50 the day
    /// before (Paris time).
    fn wait_alert(kind: NotificationKind) -> Notification {
        // 2024-03-04T22:50:00Z is 23:50 in Paris.
        let since = Timestamp(1_709_592_600_000);
        Notification {
            site: "lyon".to_owned(),
            site_name: None,
            time_zone: "Europe/Paris".to_owned(),
            team: None,
            team_name: None,
            alert_id: "a-7".to_owned(),
            rule_id: "wait".to_owned(),
            rule_name: "Attente longue".to_owned(),
            target_kind: TargetKind::Queue,
            target_id: "support".to_owned(),
            target_name: None,
            metric: "longest_wait".to_owned(),
            comparator: Comparator::Above,
            severity: Severity::Critical,
            kind,
            value: Some(95.0),
            threshold: 60.0,
            unit: Unit::Seconds,
            since,
            at: Timestamp(since.0 + 40 * 60_000),
        }
    }

    #[test]
    fn an_alert_across_midnight_gives_the_dates() {
        let mut n = wait_alert(NotificationKind::Resolved);
        n.value = Some(20.0);
        let fr = render(&n, Language::Fr);
        assert_eq!(fr.title, "✅ Résolue : Attente longue");
        assert_eq!(
            fr.summary,
            "Temps d'attente le plus long de la file support : retour à 20s (seuil : 1m00s). \
             L'alerte a duré 40 min, du 04/03 à 23h50 au 05/03 à 0h30 (heure de Paris)."
        );
        assert_eq!(
            fr.facts,
            [
                ("Indicateur", "Temps d'attente le plus long"),
                ("Cible", "file support"),
                ("Site", "lyon"),
                ("Dernière valeur", "20s"),
                ("Seuil", "> 1m00s (critique)"),
                ("Durée", "40 min (04/03 à 23h50 → 05/03 à 0h30)"),
            ]
            .map(|(l, v)| (l.to_owned(), v.to_owned()))
        );
        assert_eq!(fr.tone, Tone::Good);
        let en = render(&n, Language::En);
        assert_eq!(
            en.summary,
            "Longest wait on queue support is back to 20s (threshold 1m00s). The alert lasted \
             40 min, from Mar 4, 23:50 to Mar 5, 00:30 (Paris time)."
        );
    }

    #[test]
    fn escalations_and_silences_say_what_changed() {
        let n = wait_alert(NotificationKind::Escalated);
        let fr = render(&n, Language::Fr);
        assert_eq!(fr.title, "🔴 Passée en critique : Attente longue");
        assert_eq!(
            fr.summary,
            "Temps d'attente le plus long de la file support : 1m35s, au-dessus du seuil \
             critique de 1m00s. Depuis le 04/03 à 23h50 (heure de Paris), soit 40 min."
        );
        let mut n = wait_alert(NotificationKind::DeEscalated);
        n.severity = Severity::Warning;
        n.threshold = 45.0;
        let en = render(&n, Language::En);
        assert_eq!(en.title, "🟠 Back to warning: Attente longue");
        assert_eq!(en.tone, Tone::Warning);
        assert_eq!(
            en.summary,
            "Longest wait on queue support is 1m35s, above the warning threshold of 45s. \
             Since Mar 4, 23:50 (Paris time), for 40 min."
        );
        let until = Timestamp(n.at.0 + 30 * 60_000);
        let n = wait_alert(NotificationKind::Silenced {
            by: "Hugo".to_owned(),
            until,
        });
        let fr = render(&n, Language::Fr);
        assert_eq!(
            fr.title,
            "🔕 En sourdine jusqu'à 1h00 par Hugo : Attente longue"
        );
        assert!(
            fr.summary
                .starts_with("Hugo a mis l'alerte en sourdine jusqu'à 1h00 (heure de Paris). "),
            "{}",
            fr.summary
        );
        assert_eq!(fr.tone, Tone::Neutral);
        let en = render(&n, Language::En);
        assert_eq!(en.title, "🔕 Silenced until 01:00 by Hugo: Attente longue");
    }

    #[test]
    fn zones_are_said_as_people_say_them() {
        assert_eq!(
            zone_words(zone("Europe/Paris"), Language::Fr),
            "heure de Paris"
        );
        assert_eq!(
            zone_words(zone("America/New_York"), Language::En),
            "New York time"
        );
        assert_eq!(zone_words(zone("UTC"), Language::En), "UTC");
        assert_eq!(zone_words(zone("Not/AZone"), Language::Fr), "heure UTC");
    }
}
