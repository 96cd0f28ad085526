//! The `vigie.toml` file: every component's settings, nested.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use vigie_alerts::RuleConfig;
use vigie_api::ApiConfig;
use vigie_notify::NotifyConfig;
use vigie_web::WebConfig;

use crate::changes::AdminConfig;
use vigie_core::config::ConfigErrors;
use vigie_core::{ProcessingConfig, SiteConfig};
use vigie_engine::EngineConfig;
use vigie_ingest::NatsConfig;

/// The whole configuration file (documented in docs/configuration.md).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VigieConfig {
    /// How the processor trades exactness under disorder for memory.
    #[serde(default)]
    pub processing: ProcessingConfig,
    /// The sites, their queues and teams.
    #[serde(default, rename = "site")]
    pub sites: Vec<SiteConfig>,
    /// The engine that owns the processor.
    #[serde(default)]
    pub engine: EngineConfig,
    /// NATS: where events come from. Without it, `vigie serve` runs the embedded demo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nats: Option<NatsConfig>,
    /// The HTTP server: metrics, health and readiness.
    #[serde(default)]
    pub http: HttpConfig,
    /// The gRPC API: live views for wallboards, clients and tools.
    #[serde(default)]
    pub api: ApiConfig,
    /// The web wallboard: pages for the wall and the supervisor's desk.
    #[serde(default)]
    pub web: WebConfig,
    /// Where configuration changes made through the Admin API are kept.
    #[serde(default)]
    pub admin: AdminConfig,
    /// Threshold alert rules (docs/alerts.md), each naming its site.
    #[serde(default, rename = "alert_rule", skip_serializing_if = "Vec::is_empty")]
    pub alert_rules: Vec<RuleConfig>,
    /// Delivery of alerts: NATS and team-chat webhooks (docs/notifications.md).
    #[serde(default)]
    pub notify: NotifyConfig,
    /// The interval history: streams and retention (docs/history.md).
    #[serde(default)]
    pub history: crate::history_store::HistoryConfig,
    /// The HTTP ingest endpoint of `vigie serve` (off by default).
    #[serde(default)]
    pub ingest_http: crate::ingest_http::IngestHttpConfig,
    /// The connectors of `vigie connect`: how each source's records become events.
    #[serde(default)]
    pub connect: ConnectSettings,
    /// Several instances sharing the sites (off without the section): see
    /// docs/operations.md, "Several instances".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<crate::cluster::ClusterConfig>,
}

/// The `[connect]` section: one sub-section per source, read by `vigie connect <source>`
/// (command-line options override the common fields).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectSettings {
    /// `[connect.asterisk_queue_log]`: `vigie connect asterisk-queue-log`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asterisk_queue_log: Option<vigie_connectors::QueueLogConfig>,
    /// `[connect.amazon_connect]`: `vigie connect amazon-connect`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amazon_connect: Option<vigie_connectors::AmazonConnectConfig>,
}

impl ConnectSettings {
    /// Checks the sections present (building their translators), every problem with its
    /// field path under `path`.
    pub fn validate(&self, path: &str) -> Result<(), ConfigErrors> {
        let mut errors = ConfigErrors::default();
        if let Some(config) = &self.asterisk_queue_log
            && let Err(problems) = config.build()
        {
            errors.0.extend(
                problems
                    .0
                    .iter()
                    .map(|problem| format!("{path}.asterisk_queue_log.{problem}")),
            );
        }
        if let Some(config) = &self.amazon_connect
            && let Err(problems) = config.build()
        {
            errors.0.extend(
                problems
                    .0
                    .iter()
                    .map(|problem| format!("{path}.amazon_connect.{problem}")),
            );
        }
        errors.into_result()
    }
}

/// The HTTP server of `vigie serve`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Address to listen on: `/metrics` (Prometheus), `/healthz`, `/readyz`.
    #[serde(default = "default_http_listen")]
    pub listen: SocketAddr,
}

fn default_http_listen() -> SocketAddr {
    // The Prometheus exporters' customary port; 8080 is the wallboard's.
    SocketAddr::from(([127, 0, 0, 1], 9464))
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: default_http_listen(),
        }
    }
}

/// Environment variables that are not configuration keys (command-line options read from the
/// environment: `VIGIE_CONFIG`, `VIGIE_TOKEN`, `VIGIE_LOG`, `VIGIE_DEMO_TIME_ZONE`).
const NOT_CONFIGURATION: &[&str] = &["config", "token", "log", "demo_time_zone"];

impl VigieConfig {
    /// Reads, parses and validates a configuration file, reporting every problem at once.
    pub fn load(path: &Path) -> anyhow::Result<VigieConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the configuration file {}", path.display()))?;
        VigieConfig::parse(&text)
            .with_context(|| format!("in the configuration file {}", path.display()))
    }

    /// The configuration of `vigie serve`: defaults, then the file (if any), then `VIGIE_*`
    /// environment variables (`VIGIE_NATS__URL` sets `nats.url`, `VIGIE_HTTP__LISTEN` sets
    /// `http.listen`), validated as a whole. Flags are applied by the caller, last.
    pub fn layered(path: Option<&Path>) -> anyhow::Result<VigieConfig> {
        let mut figment = Figment::from(Serialized::defaults(VigieConfig::default()));
        if let Some(path) = path {
            if !path.is_file() {
                anyhow::bail!(
                    "cannot read the configuration file {}: no such file",
                    path.display()
                );
            }
            figment = figment.merge(Toml::file(path));
        }
        figment = figment.merge(
            Env::prefixed("VIGIE_")
                .split("__")
                .ignore(NOT_CONFIGURATION),
        );
        let config: VigieConfig = figment.extract().map_err(|error| {
            let problems: Vec<String> = error.into_iter().map(|e| e.to_string()).collect();
            anyhow::anyhow!(
                "{} problem(s) in the configuration:\n  - {}",
                problems.len(),
                problems.join("\n  - ")
            )
        })?;
        Ok(config)
    }

    /// Parses and validates configuration text.
    pub fn parse(text: &str) -> anyhow::Result<VigieConfig> {
        let config: VigieConfig = toml::from_str(text)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks every section; all problems are reported together.
    pub fn validate(&self) -> Result<(), ConfigErrors> {
        let mut errors = ConfigErrors::default();
        if let Err(problems) = self.processing.validate("processing") {
            errors.extend(problems);
        }
        if let Err(problems) = self.engine.validate("engine") {
            errors.extend(problems);
        }
        if let Err(problems) = self.api.validate("api") {
            errors.extend(problems);
        }
        if let Err(problems) = self.web.validate("web", self.api.auth.is_enabled()) {
            errors.extend(problems);
        }
        if let Err(problems) = vigie_alerts::validate_rules(&self.alert_rules, "alert_rule") {
            errors.extend(problems);
        }
        errors.0.extend(crate::alerting::unknown_sites(
            &self.alert_rules,
            &self.sites,
        ));
        if let Err(problems) = self.notify.validate("notify") {
            errors.extend(problems);
        }
        if let Err(problems) = self.history.validate("history") {
            errors.extend(problems);
        }
        if let Err(problems) = self
            .ingest_http
            .validate("ingest_http", self.nats.is_some())
        {
            errors.extend(problems);
        }
        if let Err(problems) = self.connect.validate("connect") {
            errors.extend(problems);
        }
        if let Some(cluster) = &self.cluster {
            let sites: Vec<String> = self.sites.iter().map(|site| site.id.clone()).collect();
            if let Err(problems) = cluster.validate("cluster", &sites) {
                errors.extend(problems);
            }
            if self.nats.is_none() {
                errors.0.push(
                    "cluster: instances share their sites through NATS: configure [nats] (or --nats)"
                        .to_owned(),
                );
            }
        }
        if let Some(nats) = &self.nats {
            if let Err(problems) = nats.validate("nats") {
                errors.extend(problems);
            }
            for (index, site) in self.sites.iter().enumerate() {
                if !NatsConfig::site_is_subject_token(&site.id) {
                    errors.0.push(format!(
                        "site[{index}].id: {:?} cannot be a NATS subject token (no dots, spaces or wildcards)",
                        site.id
                    ));
                }
            }
        }
        let mut ids = std::collections::BTreeSet::new();
        for (index, site) in self.sites.iter().enumerate() {
            if let Err(problems) = site.validate(&format!("site[{index}]")) {
                errors.extend(problems);
            }
            if !ids.insert(site.id.as_str()) {
                errors.0.push(format!(
                    "site[{index}].id: site {:?} is defined twice",
                    site.id
                ));
            }
        }
        errors.into_result()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_example_configuration_parses() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/config");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                VigieConfig::load(&path).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
                seen += 1;
            }
        }
        assert!(seen > 0, "no example configuration under {}", dir.display());
    }

    /// The commented `[connect.*]` example of deploy/config/vigie.toml (lines starting with `#`
    /// and no space; `##` lines are its comments), uncommented, parses and builds.
    #[test]
    fn the_commented_connector_example_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/config/vigie.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let example: String = text
            .lines()
            .skip_while(|line| !line.starts_with("#[connect."))
            .take_while(|line| line.starts_with('#'))
            .map(|line| format!("{}\n", &line[1..]))
            .collect();
        assert!(
            example.contains("[connect.asterisk_queue_log]"),
            "{example}"
        );
        let config = VigieConfig::parse(&example).unwrap_or_else(|e| panic!("{e:#}\n{example}"));
        let queue_log = config.connect.asterisk_queue_log.unwrap();
        assert_eq!(
            queue_log.queues["billing"].wrapuptime,
            std::time::Duration::from_secs(15)
        );
        assert_eq!(queue_log.advisors["PJSIP/1001"], "a001");
    }

    #[test]
    fn connector_sections_report_problems_with_their_path() {
        let text = "[connect.asterisk_queue_log]\nsite = \"paris\"\ntime_zone = \"Mars/Olympus\"\n[connect.asterisk_queue_log.queues.billing]\nwrapuptime = \"2h\"\n[connect.amazon_connect]\nsite = \"\"\n";
        let message = format!("{:#}", VigieConfig::parse(text).unwrap_err());
        for expected in [
            "connect.asterisk_queue_log.time_zone: \"Mars/Olympus\"",
            "connect.asterisk_queue_log.queues.\"billing\".wrapuptime: 2h is longer",
            "connect.amazon_connect.site: \"\" is not a valid identifier",
        ] {
            assert!(
                message.contains(expected),
                "{expected:?} missing in {message}"
            );
        }
        let unknown = format!(
            "{:#}",
            VigieConfig::parse("[connect.asterisk_queue_log]\nsite = \"p\"\nwrapup = \"1s\"\n")
                .unwrap_err()
        );
        assert!(unknown.contains("wrapup"), "{unknown}");
    }

    #[test]
    fn problems_from_several_sections_are_reported_together() {
        let text = "[processing]\nallowed_lateness = \"2m\"\ndedupe_window = \"1m\"\n[[site]]\nid = \"a\"\ntime_zone = \"Mars/Olympus\"\n[[site]]\nid = \"a\"\n";
        let message = format!("{:#}", VigieConfig::parse(text).unwrap_err());
        assert!(message.contains("processing.dedupe_window"), "{message}");
        assert!(message.contains("site[0].time_zone"), "{message}");
        assert!(
            message.contains("site[1].id: site \"a\" is defined twice"),
            "{message}"
        );
    }
}
