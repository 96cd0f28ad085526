//! The report's words in English and French, and how each language writes numbers and dates.

use chrono::{Datelike, NaiveDate};

use super::Language;

/// Every fixed text of the report.
#[derive(Debug)]
pub(crate) struct Labels {
    pub title: &'static str,
    pub site: &'static str,
    pub team: &'static str,
    pub times_in: &'static str,
    pub no_activity: &'static str,
    pub key_figures: &'static str,
    pub figure: &'static str,
    pub value: &'static str,
    pub target: &'static str,
    pub result: &'static str,
    pub met: &'static str,
    pub missed: &'static str,
    pub offered: &'static str,
    pub answered: &'static str,
    pub abandoned: &'static str,
    pub abandon_rate: &'static str,
    pub service_level: &'static str,
    pub asa: &'static str,
    pub handled: &'static str,
    pub aht: &'static str,
    pub occupancy: &'static str,
    /// "80% within 20 s": the word between the target and T.
    pub within: &'static str,
    pub sl_variant: &'static str,
    pub volume_chart: &'static str,
    pub sl_chart: &'static str,
    pub aht_chart: &'static str,
    pub contacts: &'static str,
    pub target_line: &'static str,
    pub advisors: &'static str,
    pub no_advisors: &'static str,
    pub advisor: &'static str,
    pub first_login: &'static str,
    pub last_logout: &'static str,
    pub logged_in: &'static str,
    pub available: &'static str,
    pub handling: &'static str,
    pub pause: &'static str,
    pub pauses_by_reason: &'static str,
    pub alerts: &'static str,
    pub no_alerts: &'static str,
    pub severity: &'static str,
    pub warning: &'static str,
    pub critical: &'static str,
    pub rule: &'static str,
    pub on_target: &'static str,
    pub fired: &'static str,
    pub resolved: &'static str,
    pub not_resolved: &'static str,
    pub acknowledged_by: &'static str,
    pub message: &'static str,
    pub notices: &'static str,
    pub no_notices: &'static str,
    pub by: &'static str,
    pub until: &'static str,
    pub important: &'static str,
    pub chart_unavailable: &'static str,
    weekdays: [&'static str; 7],
    months: [&'static str; 12],
    decimal_comma: bool,
}

const EN: Labels = Labels {
    title: "End-of-shift report",
    site: "Site",
    team: "Team",
    times_in: "Times in",
    no_activity: "No activity recorded for this team on this day.",
    key_figures: "Key figures of the day",
    figure: "Figure",
    value: "Value",
    target: "Target",
    result: "Result",
    met: "met",
    missed: "missed",
    offered: "Offered",
    answered: "Answered",
    abandoned: "Abandoned",
    abandon_rate: "Abandon rate",
    service_level: "Service level",
    asa: "Average speed of answer",
    handled: "Handled",
    aht: "Average handle time",
    occupancy: "Occupancy",
    within: "within",
    sl_variant: "formula",
    volume_chart: "Contacts per interval",
    sl_chart: "Service level per interval",
    aht_chart: "Average handle time per interval",
    contacts: "Contacts",
    target_line: "Target",
    advisors: "Advisors",
    no_advisors: "No advisor logged in.",
    advisor: "Advisor",
    first_login: "First login",
    last_logout: "Last logout",
    logged_in: "Logged in",
    available: "Available",
    handling: "Handling",
    pause: "Pause",
    pauses_by_reason: "Pauses by reason",
    alerts: "Alerts",
    no_alerts: "No alert on this day.",
    severity: "Severity",
    warning: "warning",
    critical: "critical",
    rule: "Rule",
    on_target: "On",
    fired: "Fired",
    resolved: "Resolved",
    not_resolved: "not resolved",
    acknowledged_by: "Acknowledged by",
    message: "Message",
    notices: "Notices",
    no_notices: "No notice posted on this day.",
    by: "by",
    until: "until",
    important: "important",
    chart_unavailable: "Chart unavailable.",
    weekdays: [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ],
    months: [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ],
    decimal_comma: false,
};

const FR: Labels = Labels {
    title: "Rapport de fin de service",
    site: "Site",
    team: "Équipe",
    times_in: "Heures en",
    no_activity: "Aucune activité enregistrée pour cette équipe ce jour-là.",
    key_figures: "Chiffres clés de la journée",
    figure: "Indicateur",
    value: "Valeur",
    target: "Objectif",
    result: "Résultat",
    met: "atteint",
    missed: "manqué",
    offered: "Présentés",
    answered: "Répondus",
    abandoned: "Abandonnés",
    abandon_rate: "Taux d'abandon",
    service_level: "Niveau de service",
    asa: "Délai moyen de réponse",
    handled: "Traités",
    aht: "Durée moyenne de traitement",
    occupancy: "Taux d'occupation",
    within: "en",
    sl_variant: "formule",
    volume_chart: "Contacts par intervalle",
    sl_chart: "Niveau de service par intervalle",
    aht_chart: "Durée moyenne de traitement par intervalle",
    contacts: "Contacts",
    target_line: "Objectif",
    advisors: "Conseillers",
    no_advisors: "Aucun conseiller connecté.",
    advisor: "Conseiller",
    first_login: "Première connexion",
    last_logout: "Dernière déconnexion",
    logged_in: "Connecté",
    available: "Disponible",
    handling: "En traitement",
    pause: "Pause",
    pauses_by_reason: "Pauses par motif",
    alerts: "Alertes",
    no_alerts: "Aucune alerte ce jour-là.",
    severity: "Gravité",
    warning: "avertissement",
    critical: "critique",
    rule: "Règle",
    on_target: "Sur",
    fired: "Déclenchée",
    resolved: "Résolue",
    not_resolved: "non résolue",
    acknowledged_by: "Acquittée par",
    message: "Message",
    notices: "Messages à l'équipe",
    no_notices: "Aucun message publié ce jour-là.",
    by: "par",
    until: "jusqu'à",
    important: "important",
    chart_unavailable: "Graphique indisponible.",
    weekdays: [
        "lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche",
    ],
    months: [
        "janvier",
        "février",
        "mars",
        "avril",
        "mai",
        "juin",
        "juillet",
        "août",
        "septembre",
        "octobre",
        "novembre",
        "décembre",
    ],
    decimal_comma: true,
};

impl Labels {
    /// The labels of a language.
    pub(crate) fn of(language: Language) -> &'static Labels {
        match language {
            Language::En => &EN,
            Language::Fr => &FR,
        }
    }

    /// `Friday 27 November 2026`, `vendredi 27 novembre 2026`.
    pub(crate) fn long_date(&self, date: NaiveDate) -> String {
        let weekday = self.weekdays[date.weekday().num_days_from_monday() as usize];
        let month = self.months[date.month0() as usize];
        format!("{weekday} {} {month} {}", date.day(), date.year())
    }

    /// A number with `decimals` decimals, in the language's notation (`82.4`, `82,4`).
    pub(crate) fn decimal(&self, value: f64, decimals: usize) -> String {
        let text = format!("{value:.decimals$}");
        if self.decimal_comma {
            text.replace('.', ",")
        } else {
            text
        }
    }

    /// A fraction as a percentage with one decimal (`82.4%`, `82,4 %` with a no-break space).
    pub(crate) fn percent(&self, fraction: f64) -> String {
        let number = self.decimal(fraction * 100.0, 1);
        if self.decimal_comma {
            format!("{number}\u{a0}%")
        } else {
            format!("{number}%")
        }
    }

    /// A target share, without needless decimals (`80%`, `80 %`, `82.5%`).
    pub(crate) fn percent_target(&self, fraction: f64) -> String {
        let hundredths = (fraction * 1000.0).round() / 10.0;
        let decimals = if hundredths.fract() == 0.0 { 0 } else { 1 };
        let number = self.decimal(hundredths, decimals);
        if self.decimal_comma {
            format!("{number}\u{a0}%")
        } else {
            format!("{number}%")
        }
    }

    /// Seconds as they are read on a figure: `20 s`.
    pub(crate) fn seconds(&self, secs: f64) -> String {
        let decimals = if secs.fract() == 0.0 { 0 } else { 1 };
        format!("{}\u{a0}s", self.decimal(secs, decimals))
    }
}
