//! The TOML examples of `docs/alerts.md` are valid rules, and the default rule pack is the
//! one documented.

use vigie_alerts::{AlertEngine, Metric, RuleConfig, Scope, validate_rules};

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    alert_rule: Vec<RuleConfig>,
}

fn toml_blocks(text: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```toml") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), line) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

#[test]
fn every_example_of_the_documentation_is_a_valid_rule() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/alerts.md");
    let text = std::fs::read_to_string(path).expect("docs/alerts.md");
    let blocks = toml_blocks(&text);
    assert!(blocks.len() >= 4, "{} blocks", blocks.len());
    let mut all = Vec::new();
    for block in &blocks {
        let file: File = toml::from_str(block).unwrap_or_else(|e| panic!("{e}\n{block}"));
        validate_rules(&file.alert_rule, "alert_rule").unwrap_or_else(|e| panic!("{e}\n{block}"));
        AlertEngine::new("paris", &file.alert_rule).expect("an engine");
        all.push(file.alert_rule);
    }
    // The default pack: the five rules of the issue, on every queue and every advisor.
    let pack = all.last().expect("the default pack comes last");
    let shape: Vec<(&str, Scope, Metric)> = pack
        .iter()
        .map(|r| (r.id.as_str(), r.scope.clone(), r.metric))
        .collect();
    assert_eq!(
        shape,
        [
            ("service-level", Scope::EveryQueue, Metric::ServiceLevelGap),
            ("longest-wait", Scope::EveryQueue, Metric::LongestWait),
            ("abandonment", Scope::EveryQueue, Metric::AbandonRate),
            ("pause", Scope::EveryAdvisor, Metric::PauseDuration),
            ("acw", Scope::EveryAdvisor, Metric::AcwDuration),
        ]
    );
    let warning = |id: &str| {
        pack.iter()
            .find(|r| r.id == id)
            .and_then(|r| r.warning)
            .map(|w| w.value())
    };
    assert_eq!(warning("longest-wait"), Some(60.0));
    assert_eq!(warning("abandonment"), Some(0.1));
    assert_eq!(warning("pause"), Some(900.0));
    assert_eq!(warning("acw"), Some(180.0));
}
