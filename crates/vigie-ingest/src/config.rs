//! Settings of the NATS connection, the event stream and the consumer (`[nats]` in
//! `vigie.toml`, documented in docs/configuration.md).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use vigie_core::config::{ConfigErrors, HumanDuration};

/// A secret read from the configuration: never printed, never logged.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

/// How Vigie reaches NATS.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsConfig {
    /// Server URLs, comma-separated (`nats://host:4222`, `tls://host:4222`).
    #[serde(default = "default_url")]
    pub url: String,
    /// Client name shown in the server's monitoring.
    #[serde(default = "default_name")]
    pub name: String,
    /// User name, with `password`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Password, with `user`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    /// Token authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<Secret>,
    /// File holding an NKey seed (`SU...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nkey_seed_file: Option<PathBuf>,
    /// Credentials file (`.creds`: JWT and NKey seed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_file: Option<PathBuf>,
    /// CA certificate(s) to trust for TLS (PEM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_ca_file: Option<PathBuf>,
    /// Client certificate for mutual TLS (PEM), with `tls_key_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cert_file: Option<PathBuf>,
    /// Client key for mutual TLS (PEM), with `tls_cert_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_key_file: Option<PathBuf>,
    /// Refuse to connect without TLS.
    #[serde(default)]
    pub tls_required: bool,
    /// Time allowed to establish a connection.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: HumanDuration,
    /// Time allowed for an answer of the JetStream API (creating or reading a stream, a
    /// consumer, a key): a clustered JetStream busy with several instances starting may take
    /// seconds.
    #[serde(default = "default_request_timeout")]
    pub request_timeout: HumanDuration,
    /// The prefix of the subjects replies come back on (JetStream's answers and deliveries,
    /// the answers of other instances). Give Vigie a prefix of its own (`_INBOX_VIGIE`) and
    /// allow only its user to subscribe to it, and no other client of the account can read
    /// what is meant for Vigie (see deploy/nats/accounts.conf).
    #[serde(default = "default_inbox_prefix")]
    pub inbox_prefix: String,
    /// The event stream.
    #[serde(default)]
    pub stream: StreamConfig,
    /// The consumer Vigie reads the stream with.
    #[serde(default)]
    pub consumer: ConsumerConfig,
    /// Subject prefix of dead letters: a refused event of site S goes to `<prefix>.S`.
    #[serde(default = "default_dead_letter_prefix")]
    pub dead_letter_prefix: String,
    /// Stream keeping the dead letters (created with the event stream's settings when
    /// `stream.create` is true).
    #[serde(default = "default_dead_letter_stream")]
    pub dead_letter_stream: String,
    /// Each site's state saved whole, so that a start replays only the events after it.
    #[serde(default)]
    pub snapshots: SnapshotConfig,
}

/// Snapshots of each site's state (`[nats.snapshots]`): while events come in, the state of
/// each site is saved every `every` in a JetStream object store, with the sequence of the last
/// event it holds. A start restores the snapshot and replays only the events after it, instead
/// of the whole day; a snapshot of an earlier day, of another stream or taken with another
/// configuration of the site is not used (the day is then replayed, as without snapshots).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotConfig {
    /// Save and restore snapshots.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// The object store bucket (created when missing, with the event stream's replicas).
    #[serde(default = "default_snapshot_bucket")]
    pub bucket: String,
    /// How often a site's state is saved while its events come in (and once more at a
    /// graceful stop). The engine applies nothing while it encodes a site's state (about
    /// 4 ms per thousand advisors): keep it at a few seconds at least.
    #[serde(default = "default_snapshot_every")]
    pub every: HumanDuration,
}

fn default_snapshot_bucket() -> String {
    "VIGIE_SNAPSHOTS".to_owned()
}

fn default_snapshot_every() -> HumanDuration {
    HumanDuration::secs(60)
}

impl Default for SnapshotConfig {
    fn default() -> Self {
        SnapshotConfig {
            enabled: true,
            bucket: default_snapshot_bucket(),
            every: default_snapshot_every(),
        }
    }
}

fn default_dead_letter_stream() -> String {
    "VIGIE_DLQ".to_owned()
}

fn default_url() -> String {
    "nats://127.0.0.1:4222".to_owned()
}

fn default_name() -> String {
    "vigie".to_owned()
}

fn default_connect_timeout() -> HumanDuration {
    HumanDuration::secs(5)
}

fn default_request_timeout() -> HumanDuration {
    HumanDuration::secs(10)
}

fn default_inbox_prefix() -> String {
    "_INBOX".to_owned()
}

fn default_dead_letter_prefix() -> String {
    "vigie.dlq".to_owned()
}

impl Default for NatsConfig {
    fn default() -> Self {
        NatsConfig {
            url: default_url(),
            name: default_name(),
            user: None,
            password: None,
            token: None,
            nkey_seed_file: None,
            credentials_file: None,
            tls_ca_file: None,
            tls_cert_file: None,
            tls_key_file: None,
            tls_required: false,
            connect_timeout: default_connect_timeout(),
            request_timeout: default_request_timeout(),
            inbox_prefix: default_inbox_prefix(),
            stream: StreamConfig::default(),
            consumer: ConsumerConfig::default(),
            dead_letter_prefix: default_dead_letter_prefix(),
            dead_letter_stream: default_dead_letter_stream(),
            snapshots: SnapshotConfig::default(),
        }
    }
}

/// Storage of the stream's messages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Storage {
    /// On disk: survives a server restart.
    #[default]
    File,
    /// In memory.
    Memory,
}

/// The JetStream stream of events.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamConfig {
    /// Stream name.
    #[serde(default = "default_stream_name")]
    pub name: String,
    /// Subject prefix: site S publishes on `<prefix>.S.<anything>`.
    #[serde(default = "default_subject_prefix")]
    pub subject_prefix: String,
    /// Create the stream when it does not exist (with the settings below); when false, Vigie
    /// binds to an existing stream and fails clearly if there is none.
    #[serde(default = "default_true")]
    pub create: bool,
    /// How long events are kept. Recovery replays the current day: keep at least two days.
    #[serde(default = "default_max_age")]
    pub max_age: HumanDuration,
    /// Storage of the messages.
    #[serde(default)]
    pub storage: Storage,
    /// Window in which the server drops a message whose `Nats-Msg-Id` it already stored.
    #[serde(default = "default_duplicate_window")]
    pub duplicate_window: HumanDuration,
    /// Replicas of the stream in a cluster (1, 3 or 5).
    #[serde(default = "default_replicas")]
    pub replicas: usize,
}

fn default_stream_name() -> String {
    "VIGIE_EVENTS".to_owned()
}

fn default_subject_prefix() -> String {
    "vigie.events".to_owned()
}

fn default_true() -> bool {
    true
}

fn default_max_age() -> HumanDuration {
    HumanDuration::secs(7 * 24 * 3600)
}

fn default_duplicate_window() -> HumanDuration {
    HumanDuration::secs(120)
}

fn default_replicas() -> usize {
    1
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            name: default_stream_name(),
            subject_prefix: default_subject_prefix(),
            create: true,
            max_age: default_max_age(),
            storage: Storage::File,
            duplicate_window: default_duplicate_window(),
            replicas: default_replicas(),
        }
    }
}

impl StreamConfig {
    /// The subject a site's events are published on (the part after is free).
    pub fn site_subject(&self, site: &str) -> String {
        format!("{}.{site}", self.subject_prefix)
    }

    /// The filter matching every event of a site.
    pub fn site_filter(&self, site: &str) -> String {
        format!("{}.{site}.>", self.subject_prefix)
    }
}

/// The durable pull consumer of each site.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumerConfig {
    /// Durable name prefix: the consumer of site S is `<prefix>-S`.
    #[serde(default = "default_durable_prefix")]
    pub durable_prefix: String,
    /// Messages fetched per request.
    #[serde(default = "default_batch")]
    pub batch: usize,
    /// Messages delivered but not yet acknowledged, at most.
    #[serde(default = "default_max_ack_pending")]
    pub max_ack_pending: i64,
    /// Time the server waits for an acknowledgement before delivering again.
    #[serde(default = "default_ack_wait")]
    pub ack_wait: HumanDuration,
    /// At start, the day is replayed from the site's day start minus this much, so that
    /// advisors logged in and contacts in progress at the day's start are known.
    #[serde(default = "default_recovery_lookback")]
    pub recovery_lookback: HumanDuration,
}

fn default_recovery_lookback() -> HumanDuration {
    HumanDuration::secs(4 * 3600)
}

fn default_durable_prefix() -> String {
    "vigie".to_owned()
}

fn default_batch() -> usize {
    1000
}

fn default_max_ack_pending() -> i64 {
    20_000
}

fn default_ack_wait() -> HumanDuration {
    HumanDuration::secs(30)
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            durable_prefix: default_durable_prefix(),
            batch: default_batch(),
            max_ack_pending: default_max_ack_pending(),
            ack_wait: default_ack_wait(),
            recovery_lookback: default_recovery_lookback(),
        }
    }
}

fn valid_token(token: &str) -> bool {
    !token.is_empty() && !token.contains(['.', '*', '>', ' ', '\t', '\r', '\n'])
}

fn valid_subject(subject: &str) -> bool {
    subject.split('.').all(valid_token)
}

impl NatsConfig {
    /// Checks the settings, reporting every problem with its path.
    pub fn validate(&self, path: &str) -> Result<(), ConfigErrors> {
        let mut problems = Vec::new();
        if self.url.split(',').any(|url| url.trim().is_empty()) {
            problems.push(format!(
                "{path}.url: must list server URLs separated by commas"
            ));
        }
        if self.user.is_some() != self.password.is_some() {
            problems.push(format!("{path}.user: user and password go together"));
        }
        let methods = [
            self.user.is_some(),
            self.token.is_some(),
            self.nkey_seed_file.is_some(),
            self.credentials_file.is_some(),
        ];
        if methods.iter().filter(|m| **m).count() > 1 {
            problems.push(format!(
                "{path}: choose one authentication: user and password, token, nkey_seed_file or credentials_file"
            ));
        }
        if self.tls_cert_file.is_some() != self.tls_key_file.is_some() {
            problems.push(format!(
                "{path}.tls_cert_file: the client certificate and key go together"
            ));
        }
        if !valid_subject(&self.inbox_prefix) {
            problems.push(format!(
                "{path}.inbox_prefix: {:?} is not a NATS subject without wildcards",
                self.inbox_prefix
            ));
        }
        if !valid_subject(&self.stream.subject_prefix) {
            problems.push(format!(
                "{path}.stream.subject_prefix: {:?} is not a NATS subject",
                self.stream.subject_prefix
            ));
        }
        if !valid_subject(&self.dead_letter_prefix) {
            problems.push(format!(
                "{path}.dead_letter_prefix: {:?} is not a NATS subject",
                self.dead_letter_prefix
            ));
        }
        if self.stream.name.is_empty() || !valid_token(&self.stream.name) {
            problems.push(format!(
                "{path}.stream.name: {:?} is not a stream name",
                self.stream.name
            ));
        }
        if ![1, 3, 5].contains(&self.stream.replicas) {
            problems.push(format!("{path}.stream.replicas: must be 1, 3 or 5"));
        }
        if self.stream.max_age.0 < Duration::from_secs(24 * 3600) {
            problems.push(format!(
                "{path}.stream.max_age: must keep at least a day (recovery replays the day)"
            ));
        }
        if self.consumer.batch == 0 || self.consumer.batch > 100_000 {
            problems.push(format!(
                "{path}.consumer.batch: must be between 1 and 100000"
            ));
        }
        if self.consumer.max_ack_pending < self.consumer.batch as i64 {
            problems.push(format!(
                "{path}.consumer.max_ack_pending: must be at least consumer.batch"
            ));
        }
        if self.consumer.ack_wait.0 < Duration::from_secs(1) {
            problems.push(format!("{path}.consumer.ack_wait: must be at least 1s"));
        }
        let bucket = &self.snapshots.bucket;
        if bucket.is_empty()
            || !bucket
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            problems.push(format!(
                "{path}.snapshots.bucket: {bucket:?} is not a bucket name (letters, digits, _ and -)"
            ));
        }
        if self.snapshots.every.0 < Duration::from_millis(100) {
            problems.push(format!(
                "{path}.snapshots.every: must be at least 100ms (a few seconds or more in production)"
            ));
        }
        if !valid_token(&self.consumer.durable_prefix) {
            problems.push(format!(
                "{path}.consumer.durable_prefix: {:?} is not a consumer name",
                self.consumer.durable_prefix
            ));
        }
        ConfigErrors(problems).into_result()
    }

    /// Whether a site id can be a NATS subject token (no dots, wildcards or spaces).
    pub fn site_is_subject_token(site: &str) -> bool {
        valid_token(site)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_never_printed() {
        let config = NatsConfig {
            token: Some(Secret("s3cr3t".into())),
            ..NatsConfig::default()
        };
        assert!(!format!("{config:?}").contains("s3cr3t"));
    }

    #[test]
    fn defaults_are_valid_and_mistakes_are_reported_together() {
        NatsConfig::default().validate("nats").unwrap();
        let text = r#"
user = "vigie"
token = "t"
inbox_prefix = "_INBOX.>"
[stream]
subject_prefix = "vigie.*"
replicas = 2
[consumer]
batch = 0
[snapshots]
bucket = "snap.shots"
every = "10ms"
"#;
        let config: NatsConfig = toml::from_str(text).unwrap();
        let problems = config.validate("nats").unwrap_err().to_string();
        for expected in [
            "nats.user",
            "choose one authentication",
            "nats.inbox_prefix",
            "nats.stream.subject_prefix",
            "nats.stream.replicas",
            "nats.consumer.batch",
            "nats.snapshots.bucket",
            "nats.snapshots.every",
        ] {
            assert!(
                problems.contains(expected),
                "{expected} missing in {problems}"
            );
        }
    }
}
