//! The payload of each format, as a local receiver gets it, checked field by field in French
//! and in English.

mod common;

use std::time::Duration;

use common::{Receiver, SINCE, config, config_toml, notification, route, start};
use serde_json::{Value, json};
use vigie_core::Timestamp;
use vigie_notify::{NotificationKind, Unit};

const WAIT: Duration = Duration::from_secs(10);

/// What the sample notification says, in each language.
struct Expected {
    title: &'static str,
    summary: &'static str,
    facts: [(&'static str, &'static str); 7],
    footer: &'static str,
}

const FR: Expected = Expected {
    title: "🔴 Alerte critique : SL Ventes",
    summary: "Niveau de service de la file Ventes : 72 %, sous le seuil critique de 80 %. \
              Depuis 9h12 (heure de Paris), soit 5 min.",
    facts: [
        ("Indicateur", "Niveau de service"),
        ("Cible", "file Ventes"),
        ("Équipe", "Ventes"),
        ("Site", "Paris La Défense"),
        ("Valeur", "72 %"),
        ("Seuil", "< 80 % (critique)"),
        ("Depuis", "9h12 (5 min)"),
    ],
    footer: "Vigie · règle sl-sales · alerte a-42 · 05/03 à 9h17 (heure de Paris)",
};

const EN: Expected = Expected {
    title: "🔴 Critical alert: SL Ventes",
    summary: "Service level on queue Ventes is 72%, below the critical threshold of 80%. \
              Since 09:12 (Paris time), for 5 min.",
    facts: [
        ("Indicator", "Service level"),
        ("Target", "queue Ventes"),
        ("Team", "Ventes"),
        ("Site", "Paris La Défense"),
        ("Value", "72%"),
        ("Threshold", "< 80% (critical)"),
        ("Since", "09:12 (5 min)"),
    ],
    footer: "Vigie · rule sl-sales · alert a-42 · Mar 5, 09:17 (Paris time)",
};

/// Slack's escaping of `&`, `<` and `>` in mrkdwn text.
fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn check_slack(body: &Value, e: &Expected) {
    assert_eq!(body["text"], format!("{}\n{}", e.title, e.summary));
    let blocks = body["blocks"].as_array().expect("blocks");
    assert_eq!(blocks.len(), 4, "{body:#}");
    assert_eq!(
        blocks[0],
        json!({"type": "header", "text": {"type": "plain_text", "text": e.title, "emoji": true}})
    );
    assert_eq!(
        blocks[1],
        json!({"type": "section", "text": {"type": "mrkdwn", "text": e.summary}})
    );
    assert_eq!(blocks[2]["type"], "section");
    let fields = blocks[2]["fields"].as_array().expect("fields");
    assert_eq!(fields.len(), e.facts.len());
    for (field, (label, value)) in fields.iter().zip(e.facts) {
        assert_eq!(
            *field,
            json!({"type": "mrkdwn", "text": format!("*{label}*\n{}", esc(value))})
        );
    }
    assert_eq!(
        blocks[3],
        json!({"type": "context", "elements": [{"type": "mrkdwn", "text": e.footer}]})
    );
}

fn check_mattermost(body: &Value, e: &Expected) {
    assert_eq!(body["text"], format!("**{}**", e.title));
    let attachments = body["attachments"].as_array().expect("attachments");
    assert_eq!(attachments.len(), 1);
    let a = &attachments[0];
    assert_eq!(a["color"], "#D0021B");
    assert_eq!(a["fallback"], format!("{}\n{}", e.title, e.summary));
    assert_eq!(a["text"], e.summary);
    assert_eq!(a["footer"], e.footer);
    let fields = a["fields"].as_array().expect("fields");
    assert_eq!(fields.len(), e.facts.len());
    for (field, (label, value)) in fields.iter().zip(e.facts) {
        assert_eq!(
            *field,
            json!({"short": true, "title": label, "value": value})
        );
    }
}

fn check_teams(body: &Value, e: &Expected) {
    assert_eq!(body["type"], "message");
    let attachments = body["attachments"].as_array().expect("attachments");
    assert_eq!(attachments.len(), 1);
    assert_eq!(
        attachments[0]["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    let card = &attachments[0]["content"];
    assert_eq!(card["type"], "AdaptiveCard");
    assert_eq!(card["version"], "1.4");
    assert_eq!(
        card["$schema"],
        "http://adaptivecards.io/schemas/adaptive-card.json"
    );
    assert_eq!(card["fallbackText"], format!("{}\n{}", e.title, e.summary));
    let body = card["body"].as_array().expect("card body");
    assert_eq!(body.len(), 4);
    assert_eq!(body[0]["type"], "Container");
    assert_eq!(body[0]["style"], "attention");
    assert_eq!(
        body[0]["items"][0],
        json!({
            "type": "TextBlock", "text": e.title, "weight": "Bolder", "size": "Medium",
            "color": "Attention", "wrap": true,
        })
    );
    assert_eq!(
        body[1],
        json!({"type": "TextBlock", "text": e.summary, "wrap": true})
    );
    assert_eq!(body[2]["type"], "FactSet");
    let facts = body[2]["facts"].as_array().expect("facts");
    assert_eq!(facts.len(), e.facts.len());
    for (fact, (label, value)) in facts.iter().zip(e.facts) {
        assert_eq!(*fact, json!({"title": label, "value": value}));
    }
    assert_eq!(body[3]["text"], e.footer);
    assert_eq!(body[3]["isSubtle"], true);
}

fn check_json(body: &Value, e: &Expected, language: &str) {
    let (metric_label, value_text, threshold_text) = match language {
        "fr" => ("Niveau de service", "72 %", "80 %"),
        _ => ("Service level", "72%", "80%"),
    };
    let expected = json!({
        "version": 1,
        "site": "paris",
        "site_name": "Paris La Défense",
        "time_zone": "Europe/Paris",
        "team": "sales",
        "team_name": "Ventes",
        "alert_id": "a-42",
        "rule_id": "sl-sales",
        "rule_name": "SL Ventes",
        "target": {"kind": "queue", "id": "q-sales", "name": "Ventes"},
        "metric": "service_level",
        "metric_label": metric_label,
        "comparator": "below",
        "severity": "critical",
        "kind": "fired",
        "value": 0.72,
        "threshold": 0.8,
        "unit": "fraction",
        "value_text": value_text,
        "threshold_text": threshold_text,
        "since": "2024-03-05T09:12:00.000+01:00",
        "at": "2024-03-05T09:17:10.000+01:00",
        "since_ms": SINCE.0,
        "at_ms": SINCE.0 + 310_000,
        "duration_seconds": 310.0,
        "message": {"language": language, "title": e.title, "text": e.summary},
    });
    // Field by field, so a failure names the field.
    let object = body.as_object().expect("a JSON object");
    for (key, value) in expected.as_object().expect("an object") {
        assert_eq!(object.get(key), Some(value), "field {key}");
    }
    assert_eq!(object.len(), expected.as_object().map_or(0, |o| o.len()));
}

#[tokio::test]
async fn every_format_is_delivered_in_french_and_in_english() {
    let mut receiver = Receiver::start().await;
    let mut routes = String::new();
    for format in ["slack", "mattermost", "teams", "json"] {
        for language in ["fr", "en"] {
            let name = format!("{format}-{language}");
            routes.push_str(&route(
                &name,
                format,
                &receiver.url(&format!("/{name}")),
                &format!("language = \"{language}\""),
            ));
        }
    }
    let running = start(&config(&config_toml(&routes)), None);
    running.handle.try_send(notification()).unwrap();

    let mut received = receiver.take(8, WAIT).await;
    received.sort_by(|a, b| a.path.cmp(&b.path));
    let paths: Vec<&str> = received.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/json-en",
            "/json-fr",
            "/mattermost-en",
            "/mattermost-fr",
            "/slack-en",
            "/slack-fr",
            "/teams-en",
            "/teams-fr"
        ]
    );
    for request in &received {
        assert_eq!(request.content_type.as_deref(), Some("application/json"));
        let (format, language) = request.path[1..].split_once('-').expect("format-language");
        let expected = if language == "fr" { &FR } else { &EN };
        match format {
            "slack" => check_slack(&request.body, expected),
            "mattermost" => check_mattermost(&request.body, expected),
            "teams" => check_teams(&request.body, expected),
            "json" => check_json(&request.body, expected, language),
            other => panic!("unexpected format {other}"),
        }
    }
    let metrics = running.finish().await;
    for request in &received {
        assert_eq!(metrics.delivered_total(&request.path[1..]), 1);
    }
    assert_eq!(metrics.accepted_total(), 1);
}

#[tokio::test]
async fn a_resolution_says_what_changed_and_how_long_it_lasted() {
    let mut receiver = Receiver::start().await;
    let routes = [
        route("fr", "json", &receiver.url("/fr"), "language = \"fr\""),
        route("en", "slack", &receiver.url("/en"), "language = \"en\""),
    ]
    .concat();
    let running = start(&config(&config_toml(&routes)), None);
    let mut resolved = notification();
    resolved.kind = NotificationKind::Resolved;
    resolved.value = Some(0.85);
    resolved.at = Timestamp(SINCE.0 + 23 * 60_000);
    running.handle.try_send(resolved).unwrap();

    let mut received = receiver.take(2, WAIT).await;
    received.sort_by(|a, b| a.path.cmp(&b.path));
    let en = &received[0].body;
    assert_eq!(en["blocks"][0]["text"]["text"], "✅ Resolved: SL Ventes");
    assert_eq!(
        en["blocks"][1]["text"]["text"],
        "Service level on queue Ventes is back to 85% (threshold 80%). The alert lasted \
         23 min, from 09:12 to 09:35 (Paris time)."
    );
    assert_eq!(en["blocks"][2]["fields"][4]["text"], "*Last value*\n85%");
    assert_eq!(
        en["blocks"][2]["fields"][6]["text"],
        "*Lasted*\n23 min (09:12 → 09:35)"
    );
    let fr = &received[1].body;
    assert_eq!(fr["kind"], "resolved");
    assert_eq!(fr["value"], 0.85);
    assert_eq!(fr["duration_seconds"], 1380.0);
    assert_eq!(fr["message"]["title"], "✅ Résolue : SL Ventes");
    assert_eq!(
        fr["message"]["text"],
        "Niveau de service de la file Ventes : retour à 85 % (seuil : 80 %). L'alerte a \
         duré 23 min, de 9h12 à 9h35 (heure de Paris)."
    );
    running.finish().await;
}

#[tokio::test]
async fn an_advisor_in_pause_is_worded_for_the_floor() {
    let mut receiver = Receiver::start().await;
    let routes = [
        route(
            "fr",
            "mattermost",
            &receiver.url("/fr"),
            "language = \"fr\"",
        ),
        route(
            "en",
            "teams",
            &receiver.url("/teams-en"),
            "language = \"en\"",
        ),
    ]
    .concat();
    let running = start(&config(&config_toml(&routes)), None);
    let mut pause = notification();
    pause.rule_name = "Pause longue".to_owned();
    pause.target_kind = vigie_notify::TargetKind::Advisor;
    pause.target_id = "adv-7".to_owned();
    pause.target_name = Some("Anne Martin".to_owned());
    pause.metric = "pause_duration".to_owned();
    pause.comparator = vigie_notify::Comparator::Above;
    pause.severity = vigie_notify::Severity::Warning;
    pause.kind = NotificationKind::Acknowledged {
        by: "Julie".to_owned(),
    };
    pause.unit = Unit::Seconds;
    pause.value = Some(17.0 * 60.0 + 5.0);
    pause.threshold = 15.0 * 60.0;
    running.handle.try_send(pause).unwrap();

    let mut received = receiver.take(2, WAIT).await;
    received.sort_by(|a, b| a.path.cmp(&b.path));
    let fr = &received[0].body;
    assert_eq!(
        fr["text"],
        "**👀 Prise en compte par Julie : Pause longue**"
    );
    assert_eq!(fr["attachments"][0]["color"], "#8D8D8D");
    assert_eq!(
        fr["attachments"][0]["text"],
        "Julie a pris en compte l'alerte à 9h17 (heure de Paris). Pause d'Anne Martin : \
         17m05s, au-dessus du seuil d'avertissement de 15m00s. Depuis 9h12, soit 5 min."
    );
    assert_eq!(
        fr["attachments"][0]["fields"][1]["value"],
        "conseiller Anne Martin"
    );
    let en = &received[1].body["attachments"][0]["content"]["body"];
    assert_eq!(
        en[0]["items"][0]["text"],
        "👀 Acknowledged by Julie: Pause longue"
    );
    assert_eq!(
        en[1]["text"],
        "Julie acknowledged the alert at 09:17 (Paris time). Time in pause for advisor Anne \
         Martin is 17m05s, above the warning threshold of 15m00s. Since 09:12, for 5 min."
    );
    assert_eq!(en[2]["facts"][5]["value"], "> 15m00s (warning)");
    running.finish().await;
}
