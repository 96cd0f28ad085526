//! The bodies sent: the JSON alert (NATS and the generic webhook) and the native message of
//! each team chat. Pure functions of a notification and a language.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::notification::{Comparator, KindTag, Notification, NotificationKind, Severity, Unit};
use crate::text::{self, Language, Message, format_value, metric_label};

/// The version of [`AlertPayload`]'s shape; raised when a field changes meaning or goes away
/// (new fields may appear without it).
pub const PAYLOAD_VERSION: u32 = 1;

/// The JSON alert published on NATS (`vigie.alerts.<site>.<team>`) and posted to generic
/// webhooks: every field of the notification, times in RFC 3339 in the site's zone, and the
/// message in words.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertPayload {
    /// [`PAYLOAD_VERSION`].
    pub version: u32,
    /// Site identifier.
    pub site: String,
    /// Site display name, `null` when none.
    pub site_name: Option<String>,
    /// The site's IANA time zone, in which `since`, `at` and `until` are written.
    pub time_zone: String,
    /// Team routing key, `null` for site-wide alerts.
    pub team: Option<String>,
    /// Team display name, `null` when none.
    pub team_name: Option<String>,
    /// Alert identifier (one per rule and target).
    pub alert_id: String,
    /// Rule identifier.
    pub rule_id: String,
    /// Rule name.
    pub rule_name: String,
    /// What the rule watches.
    pub target: TargetPayload,
    /// Indicator name, as in the rule (`service_level`).
    pub metric: String,
    /// The indicator in words, in `message.language`.
    pub metric_label: String,
    /// `above` or `below`: which side of the threshold is bad.
    pub comparator: Comparator,
    /// `warning` or `critical`, after this event.
    pub severity: Severity,
    /// What happened: `fired`, `escalated`, `de_escalated`, `renotified`, `resolved`,
    /// `acknowledged`, `silenced`.
    pub kind: KindTag,
    /// Who acknowledged or silenced (`acknowledged` and `silenced` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// End of the silence, RFC 3339 in the site's zone (`silenced` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// The indicator's value (the last one at resolution), in `unit`; `null` when none.
    pub value: Option<f64>,
    /// The threshold of `severity`, in `unit`.
    pub threshold: f64,
    /// `fraction` (0 to 1), `seconds` or `count`.
    pub unit: Unit,
    /// `value` written for people (`72 %`, `1m05s`), `null` when none.
    pub value_text: Option<String>,
    /// `threshold` written for people.
    pub threshold_text: String,
    /// When the condition started, RFC 3339 in the site's zone.
    pub since: String,
    /// When this event happened, RFC 3339 in the site's zone.
    pub at: String,
    /// `since` in milliseconds since the Unix epoch.
    pub since_ms: i64,
    /// `at` in milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// Seconds from `since` to `at` (how long it lasted, at resolution).
    pub duration_seconds: f64,
    /// The notification in words.
    pub message: MessagePayload,
}

/// The target of an alert in the JSON payload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetPayload {
    /// `site`, `queue`, `team` or `advisor`.
    pub kind: crate::notification::TargetKind,
    /// Identifier.
    pub id: String,
    /// Display name, `null` when none.
    pub name: Option<String>,
}

/// The notification in words in the JSON payload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessagePayload {
    /// `fr` or `en`.
    pub language: Language,
    /// One line: what happened and the rule's name.
    pub title: String,
    /// What, where, how bad and since when (what changed, at resolution).
    pub text: String,
}

fn rfc3339(at: vigie_core::Timestamp, zone: chrono_tz::Tz) -> String {
    at.to_rfc3339_in(zone)
}

impl AlertPayload {
    /// The payload of `n`, with its message in `language`.
    pub fn new(n: &Notification, language: Language) -> AlertPayload {
        let zone = text::zone(&n.time_zone);
        let message = text::render(n, language);
        let (by, until) = match &n.kind {
            NotificationKind::Acknowledged { by } => (Some(by.clone()), None),
            NotificationKind::Silenced { by, until } => {
                (Some(by.clone()), Some(rfc3339(*until, zone)))
            }
            _ => (None, None),
        };
        AlertPayload {
            version: PAYLOAD_VERSION,
            site: n.site.clone(),
            site_name: n.site_name.clone(),
            time_zone: zone.name().to_owned(),
            team: n.team.clone(),
            team_name: n.team_name.clone(),
            alert_id: n.alert_id.clone(),
            rule_id: n.rule_id.clone(),
            rule_name: n.rule_name.clone(),
            target: TargetPayload {
                kind: n.target_kind,
                id: n.target_id.clone(),
                name: n.target_name.clone(),
            },
            metric: n.metric.clone(),
            metric_label: metric_label(&n.metric, language),
            comparator: n.comparator,
            severity: n.severity,
            kind: n.kind.tag(),
            by,
            until,
            value: n.value.filter(|v| v.is_finite()),
            threshold: n.threshold,
            unit: n.unit,
            value_text: n.value.map(|v| format_value(v, n.unit, language)),
            threshold_text: format_value(n.threshold, n.unit, language),
            since: rfc3339(n.since, zone),
            at: rfc3339(n.at, zone),
            since_ms: n.since.0,
            at_ms: n.at.0,
            duration_seconds: (n.at.0 - n.since.0).max(0) as f64 / 1000.0,
            message: MessagePayload {
                language,
                title: message.title,
                text: message.summary,
            },
        }
    }
}

/// The native message format of a webhook.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// Slack incoming webhook: `blocks` with a `text` fallback.
    Slack,
    /// Mattermost incoming webhook: `text` with a coloured attachment.
    Mattermost,
    /// Microsoft Teams workflow (Power Automate) webhook: a message carrying an Adaptive Card.
    Teams,
    /// The JSON alert ([`AlertPayload`]), as published on NATS.
    Json,
}

impl Format {
    /// The lowercase name used in configuration and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Slack => "slack",
            Format::Mattermost => "mattermost",
            Format::Teams => "teams",
            Format::Json => "json",
        }
    }
}

/// The encoded body of `n` in `format` and `language`, as sent (the JSON alert keeps its
/// fields in their documented order).
pub fn encode(format: Format, n: &Notification, language: Language) -> Vec<u8> {
    let encoded = match format {
        Format::Json => serde_json::to_vec(&AlertPayload::new(n, language)),
        _ => serde_json::to_vec(&body(format, n, language)),
    };
    // Plain data (strings, numbers, no maps with non-string keys) always encodes.
    encoded.unwrap_or_default()
}

/// The JSON body of `n` in `format` and `language`.
pub fn body(format: Format, n: &Notification, language: Language) -> Value {
    match format {
        Format::Json => serde_json::to_value(AlertPayload::new(n, language))
            .unwrap_or_else(|_| json!({ "alert_id": n.alert_id })),
        Format::Slack => slack(&text::render(n, language)),
        Format::Mattermost => mattermost(&text::render(n, language)),
        Format::Teams => teams(&text::render(n, language)),
    }
}

/// Slack's limit on a header block's text.
const SLACK_HEADER_MAX: usize = 150;

/// Slack incoming webhook: a header, the summary, the facts as fields and a context line;
/// `text` is the fallback shown in notifications.
pub fn slack(message: &Message) -> Value {
    let fields: Vec<Value> = message
        .facts
        .iter()
        .map(|(label, value)| {
            json!({
                "type": "mrkdwn",
                "text": format!("*{}*\n{}", slack_escape(label), slack_escape(value)),
            })
        })
        .collect();
    json!({
        "text": slack_escape(&message.plain()),
        "blocks": [
            {
                "type": "header",
                "text": {
                    "type": "plain_text",
                    "text": truncate(&message.title, SLACK_HEADER_MAX),
                    "emoji": true,
                },
            },
            {
                "type": "section",
                "text": { "type": "mrkdwn", "text": slack_escape(&message.summary) },
            },
            { "type": "section", "fields": fields },
            {
                "type": "context",
                "elements": [{ "type": "mrkdwn", "text": slack_escape(&message.footer) }],
            },
        ],
    })
}

/// Mattermost incoming webhook: the title as `text` (shown in notifications), and an
/// attachment with the event's colour, the summary, the facts and a footer.
pub fn mattermost(message: &Message) -> Value {
    let fields: Vec<Value> = message
        .facts
        .iter()
        .map(|(label, value)| {
            json!({ "short": true, "title": label, "value": markdown_escape(value) })
        })
        .collect();
    json!({
        "text": format!("**{}**", markdown_escape(&message.title)),
        "attachments": [{
            "fallback": message.plain(),
            "color": message.tone.hex(),
            "text": markdown_escape(&message.summary),
            "fields": fields,
            "footer": message.footer,
        }],
    })
}

/// Microsoft Teams workflow webhook ("Post to a channel when a webhook request is received"):
/// a message with one Adaptive Card 1.4 attachment.
pub fn teams(message: &Message) -> Value {
    let (color, style) = message.tone.adaptive();
    let facts: Vec<Value> = message
        .facts
        .iter()
        .map(|(label, value)| json!({ "title": label, "value": value }))
        .collect();
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "msteams": { "width": "Full" },
                "fallbackText": message.plain(),
                "body": [
                    {
                        "type": "Container",
                        "style": style,
                        "bleed": true,
                        "items": [{
                            "type": "TextBlock",
                            "text": message.title,
                            "weight": "Bolder",
                            "size": "Medium",
                            "color": color,
                            "wrap": true,
                        }],
                    },
                    { "type": "TextBlock", "text": message.summary, "wrap": true },
                    { "type": "FactSet", "facts": facts },
                    {
                        "type": "TextBlock",
                        "text": message.footer,
                        "isSubtle": true,
                        "size": "Small",
                        "wrap": true,
                    },
                ],
            },
        }],
    })
}

/// Slack's three control characters in text.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Markdown emphasis and links written by names would change the message: escape them.
fn markdown_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '_' | '~' | '`' | '[' | ']' | '#' | '|' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn truncate(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        text.to_owned()
    } else {
        let mut cut: String = text.chars().take(max_chars - 1).collect();
        cut.push('…');
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slack_escapes_its_control_characters() {
        assert_eq!(slack_escape("a < b & c > d"), "a &lt; b &amp; c &gt; d");
    }

    #[test]
    fn markdown_names_stay_literal() {
        assert_eq!(markdown_escape("file *VIP*_1"), "file \\*VIP\\*\\_1");
    }

    #[test]
    fn long_headers_are_cut() {
        let long = "é".repeat(200);
        let cut = truncate(&long, SLACK_HEADER_MAX);
        assert_eq!(cut.chars().count(), SLACK_HEADER_MAX);
        assert!(cut.ends_with('…'));
    }
}
