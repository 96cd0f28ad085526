//! The `vigie.toml` file: every component's settings, nested.

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use vigie_core::config::ConfigErrors;
use vigie_core::{ProcessingConfig, SiteConfig};

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
}

impl VigieConfig {
    /// Reads, parses and validates a configuration file, reporting every problem at once.
    pub fn load(path: &Path) -> anyhow::Result<VigieConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the configuration file {}", path.display()))?;
        VigieConfig::parse(&text)
            .with_context(|| format!("in the configuration file {}", path.display()))
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
