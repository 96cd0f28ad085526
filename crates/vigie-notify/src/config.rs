//! Settings of the alert deliveries (`[notify]` and `[[notify.route]]` in `vigie.toml`,
//! documented in docs/notifications.md).

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use vigie_core::config::{ConfigErrors, HumanDuration};

use crate::notification::{KindTag, Notification, Severity};
use crate::payload::Format;
use crate::secret::SecretUrl;
use crate::text::Language;

/// The route name NATS deliveries are counted under; no webhook route may take it.
pub const NATS_ROUTE: &str = "nats";

/// How alerts are delivered: the queues, the retry policy, NATS and the webhook routes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// Notifications waiting to be routed. When full, new ones are dropped and counted
    /// (`vigie_notify_dropped_total{reason="queue_full"}`): the engine never waits.
    #[serde(default = "default_queue_capacity")]
    pub queue_capacity: usize,
    /// Notifications waiting in each route's own queue (NATS included). A route whose webhook
    /// is slow or down fills its queue, then drops (counted), without holding up the others.
    #[serde(default = "default_route_queue_capacity")]
    pub route_queue_capacity: usize,
    /// Time allowed to open a connection to a webhook.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: HumanDuration,
    /// Time allowed for one request, from connecting to the end of the response (and for one
    /// NATS publication).
    #[serde(default = "default_request_timeout")]
    pub request_timeout: HumanDuration,
    /// Attempts per delivery, the first included; then the delivery is given up and counted.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Wait before the first retry; doubled at each retry (with jitter) up to `backoff_max`.
    #[serde(default = "default_backoff_base")]
    pub backoff_base: HumanDuration,
    /// Longest wait between two attempts (a `Retry-After` from the receiver may ask for more).
    #[serde(default = "default_backoff_max")]
    pub backoff_max: HumanDuration,
    /// A delivery not done this long after it entered its route's queue is given up: an alert
    /// told an hour late helps nobody.
    #[serde(default = "default_give_up_after")]
    pub give_up_after: HumanDuration,
    /// At shutdown, time left to the routes to deliver what they hold; what is left after it
    /// is dropped and counted.
    #[serde(default = "default_shutdown_grace")]
    pub shutdown_grace: HumanDuration,
    /// Publication of every notification as JSON on NATS.
    #[serde(default)]
    pub nats: NatsNotifyConfig,
    /// The webhook routes; a notification goes to every route that matches it.
    #[serde(default, rename = "route", skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<RouteConfig>,
}

fn default_queue_capacity() -> usize {
    1024
}

fn default_route_queue_capacity() -> usize {
    256
}

fn default_connect_timeout() -> HumanDuration {
    HumanDuration::secs(5)
}

fn default_request_timeout() -> HumanDuration {
    HumanDuration::secs(10)
}

fn default_max_attempts() -> u32 {
    6
}

fn default_backoff_base() -> HumanDuration {
    HumanDuration::secs(1)
}

fn default_backoff_max() -> HumanDuration {
    HumanDuration::secs(60)
}

fn default_give_up_after() -> HumanDuration {
    HumanDuration::secs(10 * 60)
}

fn default_shutdown_grace() -> HumanDuration {
    HumanDuration::secs(5)
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            queue_capacity: default_queue_capacity(),
            route_queue_capacity: default_route_queue_capacity(),
            connect_timeout: default_connect_timeout(),
            request_timeout: default_request_timeout(),
            max_attempts: default_max_attempts(),
            backoff_base: default_backoff_base(),
            backoff_max: default_backoff_max(),
            give_up_after: default_give_up_after(),
            shutdown_grace: default_shutdown_grace(),
            nats: NatsNotifyConfig::default(),
            routes: Vec::new(),
        }
    }
}

/// Publication of alerts on NATS (with the connection the binary already has).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsNotifyConfig {
    /// Publish when a NATS connection is given (none in the embedded demo).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Subject prefix: an alert of site S and team T goes to `<prefix>.S.T` (`_` for no team).
    #[serde(default = "default_subject_prefix")]
    pub subject_prefix: String,
    /// Language of the `message` part of the payload.
    #[serde(default = "default_nats_language")]
    pub language: Language,
}

fn default_true() -> bool {
    true
}

fn default_subject_prefix() -> String {
    "vigie.alerts".to_owned()
}

fn default_nats_language() -> Language {
    Language::En
}

impl Default for NatsNotifyConfig {
    fn default() -> Self {
        NatsNotifyConfig {
            enabled: true,
            subject_prefix: default_subject_prefix(),
            language: default_nats_language(),
        }
    }
}

/// One webhook and the notifications it receives. Empty filters match everything.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Name of the route in logs and metrics (`route` label): letters, digits, `-`, `_`, `.`;
    /// unique; not `nats`. The URL never appears anywhere, so this is how a route is known.
    pub name: String,
    /// Message format the webhook expects.
    pub format: Format,
    /// The webhook URL, written in the file. It is a secret (whoever has it can post to the
    /// channel): prefer `url_file` or `url_env`. Exactly one of the three.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<SecretUrl>,
    /// A file holding the webhook URL (surrounding whitespace ignored), read at start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_file: Option<PathBuf>,
    /// An environment variable holding the webhook URL, read at start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_env: Option<String>,
    /// Language of the messages.
    #[serde(default)]
    pub language: Language,
    /// Sites whose alerts this route takes; empty for all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sites: Vec<String>,
    /// Teams whose alerts this route takes, `_` for alerts without a team (the site's
    /// default route); empty for all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub teams: Vec<String>,
    /// Severities this route takes (`warning`, `critical`); empty for both.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub severities: Vec<Severity>,
    /// Kinds of events this route takes (`fired`, `escalated`, `de_escalated`, `renotified`,
    /// `resolved`, `acknowledged`, `silenced`); empty for all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<KindTag>,
}

/// The team key of a notification without a team, in route filters and NATS subjects.
pub const NO_TEAM: &str = "_";

impl RouteConfig {
    /// Whether this route takes `n`.
    pub fn matches(&self, n: &Notification) -> bool {
        let team = n.team.as_deref().unwrap_or(NO_TEAM);
        (self.sites.is_empty() || self.sites.contains(&n.site))
            && (self.teams.is_empty() || self.teams.iter().any(|t| t == team))
            && (self.severities.is_empty() || self.severities.contains(&n.severity))
            && (self.kinds.is_empty() || self.kinds.contains(&n.kind.tag()))
    }
}

fn valid_route_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// A NATS subject token: not empty, no wildcard, no separator, no whitespace.
pub(crate) fn valid_subject_token(token: &str) -> bool {
    !token.is_empty()
        && !token
            .chars()
            .any(|c| matches!(c, '.' | '*' | '>') || c.is_whitespace() || c.is_control())
}

const MAX_CAPACITY: usize = 1_000_000;

impl NotifyConfig {
    /// Checks the settings, reporting every problem with its path (`path` is where this
    /// section sits, `notify` in `vigie.toml`). Secrets in files and variables are read later,
    /// when the notifier is built.
    pub fn validate(&self, path: &str) -> Result<(), ConfigErrors> {
        let mut problems: Vec<String> = Vec::new();
        for (field, value) in [
            ("queue_capacity", self.queue_capacity),
            ("route_queue_capacity", self.route_queue_capacity),
        ] {
            if value == 0 || value > MAX_CAPACITY {
                problems.push(format!(
                    "{path}.{field}: must be between 1 and {MAX_CAPACITY}, found {value}"
                ));
            }
        }
        for (field, value) in [
            ("connect_timeout", self.connect_timeout),
            ("request_timeout", self.request_timeout),
            ("backoff_base", self.backoff_base),
            ("give_up_after", self.give_up_after),
        ] {
            if value.0.is_zero() {
                problems.push(format!("{path}.{field}: must be more than 0s"));
            }
        }
        if !(1..=100).contains(&self.max_attempts) {
            problems.push(format!(
                "{path}.max_attempts: must be between 1 and 100, found {}",
                self.max_attempts
            ));
        }
        if self.backoff_max < self.backoff_base {
            problems.push(format!(
                "{path}.backoff_max: must be at least backoff_base ({}), found {}",
                self.backoff_base, self.backoff_max
            ));
        }
        if self.give_up_after.0 < self.request_timeout.0 {
            problems.push(format!(
                "{path}.give_up_after: must be at least request_timeout ({}), found {}",
                self.request_timeout, self.give_up_after
            ));
        }
        if self.shutdown_grace.0 > Duration::from_secs(600) {
            problems.push(format!("{path}.shutdown_grace: must be at most 10m"));
        }
        if !self.nats.subject_prefix.split('.').all(valid_subject_token) {
            problems.push(format!(
                "{path}.nats.subject_prefix: {:?} is not a NATS subject (dot-separated tokens \
                 without spaces or wildcards)",
                self.nats.subject_prefix
            ));
        }
        let mut names = HashSet::new();
        for (index, route) in self.routes.iter().enumerate() {
            let at = format!("{path}.route[{index}]");
            if !valid_route_name(&route.name) {
                problems.push(format!(
                    "{at}.name: {:?} must be 1 to 64 letters, digits, '-', '_' or '.'",
                    route.name
                ));
            } else if route.name == NATS_ROUTE {
                problems.push(format!(
                    "{at}.name: \"{NATS_ROUTE}\" is kept for the NATS publication"
                ));
            } else if !names.insert(route.name.as_str()) {
                problems.push(format!("{at}.name: {:?} is used twice", route.name));
            }
            let sources = [
                route.url.is_some(),
                route.url_file.is_some(),
                route.url_env.is_some(),
            ];
            match sources.iter().filter(|s| **s).count() {
                0 => problems.push(format!(
                    "{at}: needs the webhook URL: url, url_file or url_env"
                )),
                1 => {}
                _ => problems.push(format!(
                    "{at}: give the webhook URL once: url, url_file or url_env"
                )),
            }
            if let Some(url) = &route.url
                && let Err(problem) = url.parse()
            {
                problems.push(format!("{at}.url: {problem}"));
            }
            if let Some(var) = &route.url_env
                && (var.is_empty() || var.contains('=') || var.contains('\0'))
            {
                problems.push(format!(
                    "{at}.url_env: {var:?} is not an environment variable name"
                ));
            }
            for (field, values) in [("sites", &route.sites), ("teams", &route.teams)] {
                if values.iter().any(|v| v.trim().is_empty()) {
                    problems.push(format!("{at}.{field}: must not hold an empty name"));
                }
            }
        }
        ConfigErrors(problems).into_result()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> NotifyConfig {
        toml::from_str(text).expect("valid TOML for NotifyConfig")
    }

    #[test]
    fn defaults_are_valid() {
        NotifyConfig::default().validate("notify").unwrap();
        parse("").validate("notify").unwrap();
    }

    #[test]
    fn a_full_route_parses() {
        let config = parse(
            r#"
            queue_capacity = 10
            backoff_base = "250ms"
            [nats]
            subject_prefix = "acme.alerts"
            language = "fr"
            [[route]]
            name = "paris-sales"
            format = "slack"
            url = "https://hooks.slack.com/services/T0/B0/XXXX"
            language = "en"
            sites = ["paris"]
            teams = ["sales", "_"]
            severities = ["critical"]
            kinds = ["fired", "escalated", "resolved"]
            [[route]]
            name = "teams"
            format = "teams"
            url_env = "VIGIE_TEAMS_WEBHOOK"
            "#,
        );
        config.validate("notify").unwrap();
        assert_eq!(config.routes.len(), 2);
        assert_eq!(config.routes[0].format, Format::Slack);
        assert_eq!(config.routes[0].kinds[2], KindTag::Resolved);
        assert_eq!(config.routes[1].language, Language::Fr);
        assert_eq!(config.nats.language, Language::Fr);
    }

    #[test]
    fn every_problem_is_reported_with_its_path_and_without_the_url() {
        let config = parse(
            r#"
            queue_capacity = 0
            max_attempts = 0
            backoff_base = "10s"
            backoff_max = "1s"
            [nats]
            subject_prefix = "bad prefix"
            [[route]]
            name = "nats"
            format = "json"
            [[route]]
            name = "a b"
            format = "slack"
            url = "ftp://secret.example/very-secret-token"
            url_env = "X"
            [[route]]
            name = "twice"
            format = "mattermost"
            url = "https://chat.example/hooks/secret-token"
            teams = [""]
            [[route]]
            name = "twice"
            format = "mattermost"
            url = "not a url secret-token"
            "#,
        );
        let errors = config.validate("notify").unwrap_err().0;
        let expected = [
            "notify.queue_capacity",
            "notify.max_attempts",
            "notify.backoff_max",
            "notify.nats.subject_prefix",
            "notify.route[0].name",
            "notify.route[0]: needs the webhook URL",
            "notify.route[1].name",
            "notify.route[1]: give the webhook URL once",
            "notify.route[1].url: ",
            "notify.route[2].teams",
            "notify.route[3].name: \"twice\" is used twice",
            "notify.route[3].url: ",
        ];
        for prefix in expected {
            assert!(
                errors.iter().any(|e| e.starts_with(prefix)),
                "no problem starting with {prefix:?} in {errors:#?}"
            );
        }
        assert_eq!(errors.len(), expected.len(), "{errors:#?}");
        let all = errors.join("\n");
        assert!(!all.contains("secret-token"), "{all}");
    }

    #[test]
    fn unknown_fields_are_refused() {
        let error = toml::from_str::<NotifyConfig>(
            "[[route]]\nname = \"a\"\nformat = \"json\"\nurll = \"x\"\n",
        )
        .unwrap_err();
        assert!(error.to_string().contains("urll"), "{error}");
    }
}
