//! Connecting to NATS and making sure the event stream exists.

use async_nats::jetstream::{self, stream};
use async_nats::{Client, ConnectOptions};

use crate::config::{NatsConfig, Storage, StreamConfig};

/// What can go wrong at the NATS edge.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// A credentials file could not be read.
    #[error("cannot read {what} {path}: {source}")]
    Credentials {
        /// What the file holds.
        what: &'static str,
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The connection failed.
    #[error("cannot connect to NATS at {url}: {source}")]
    Connect {
        /// The servers tried.
        url: String,
        /// Why.
        source: async_nats::ConnectError,
    },
    /// The stream could not be created or found.
    #[error("event stream {stream}: {message}")]
    Stream {
        /// The stream.
        stream: String,
        /// What went wrong.
        message: String,
    },
    /// A consumer could not be created or read.
    #[error("consumer {consumer}: {message}")]
    Consumer {
        /// The consumer.
        consumer: String,
        /// What went wrong.
        message: String,
    },
    /// Publishing failed.
    #[error("publishing to {subject}: {message}")]
    Publish {
        /// The subject.
        subject: String,
        /// What went wrong.
        message: String,
    },
    /// The engine stopped while events were in flight.
    #[error("the engine stopped")]
    EngineStopped,
}

async fn read_secret_file(
    path: &std::path::Path,
    what: &'static str,
) -> Result<String, IngestError> {
    tokio::fs::read_to_string(path)
        .await
        .map(|text| text.trim().to_owned())
        .map_err(|source| IngestError::Credentials {
            what,
            path: path.display().to_string(),
            source,
        })
}

/// Connects with the configured credentials and TLS, retrying the first connection until the
/// connect timeout elapses. Secrets are never logged.
pub async fn connect(config: &NatsConfig) -> Result<(Client, jetstream::Context), IngestError> {
    let mut options = ConnectOptions::new()
        .name(&config.name)
        .connection_timeout(config.connect_timeout.0)
        .custom_inbox_prefix(&config.inbox_prefix)
        .max_reconnects(None);
    if let (Some(user), Some(password)) = (&config.user, &config.password) {
        options = options.user_and_password(user.clone(), password.0.clone());
    }
    if let Some(token) = &config.token {
        options = options.token(token.0.clone());
    }
    if let Some(path) = &config.nkey_seed_file {
        options = options.nkey(read_secret_file(path, "the NKey seed file").await?);
    }
    if let Some(path) = &config.credentials_file {
        options =
            options
                .credentials_file(path)
                .await
                .map_err(|source| IngestError::Credentials {
                    what: "the credentials file",
                    path: path.display().to_string(),
                    source,
                })?;
    }
    if let Some(ca) = &config.tls_ca_file {
        options = options.add_root_certificates(ca.clone());
    }
    if let (Some(cert), Some(key)) = (&config.tls_cert_file, &config.tls_key_file) {
        options = options.add_client_certificate(cert.clone(), key.clone());
    }
    if config.tls_required {
        options = options.require_tls(true);
    }
    let servers: Vec<&str> = config.url.split(',').map(str::trim).collect();
    let client = options
        .connect(servers.as_slice())
        .await
        .map_err(|source| IngestError::Connect {
            url: config.url.clone(),
            source,
        })?;
    let mut context = jetstream::new(client.clone());
    context.set_timeout(config.request_timeout.0);
    Ok((client, context))
}

/// The stream configuration Vigie creates when the stream is missing.
pub fn stream_config(config: &StreamConfig) -> stream::Config {
    stream::Config {
        name: config.name.clone(),
        subjects: vec![format!("{}.>", config.subject_prefix)],
        retention: stream::RetentionPolicy::Limits,
        max_age: config.max_age.0,
        storage: match config.storage {
            Storage::File => stream::StorageType::File,
            Storage::Memory => stream::StorageType::Memory,
        },
        duplicate_window: config.duplicate_window.0,
        num_replicas: config.replicas,
        description: Some("Contact-centre events for Vigie (contract v1)".to_owned()),
        ..Default::default()
    }
}

/// Attempts at a stream's creation before giving up (see [`get_or_create_stream`]).
const STREAM_ATTEMPTS: u32 = 6;

/// Runs a JetStream request that a cluster just formed, or electing a stream's leader, may
/// leave unanswered for a few seconds: `request` is tried again while `transient` says its
/// error may pass, at most `attempts` times in all, waiting `step`, then twice `step`, and so
/// on between tries (each retry logged as a warning about `what`).
pub async fn retry_while_starting<T, E, F>(
    what: &str,
    attempts: u32,
    step: std::time::Duration,
    transient: impl Fn(&E) -> bool,
    mut request: impl FnMut() -> F,
) -> Result<T, E>
where
    E: std::fmt::Display,
    F: Future<Output = Result<T, E>>,
{
    let mut attempt = 1;
    loop {
        match request().await {
            Err(error) if transient(&error) && attempt < attempts => {
                tracing::warn!(%error, attempt, "{what}: trying again");
                tokio::time::sleep(step * attempt).await;
                attempt += 1;
            }
            result => return result,
        }
    }
}

/// Gets a stream, creating it with `settings` when missing. On a clustered JetStream, several
/// instances starting together create the same streams at once and some requests time out
/// while the cluster agrees: a timed-out request is tried again (at most 6 attempts, about
/// 30 s in all) before the error is returned.
pub async fn get_or_create_stream(
    context: &jetstream::Context,
    settings: stream::Config,
) -> Result<stream::Stream, jetstream::context::CreateStreamError> {
    retry_while_starting(
        &format!("creating the stream {} timed out", settings.name),
        STREAM_ATTEMPTS,
        std::time::Duration::from_millis(250),
        |error: &jetstream::context::CreateStreamError| {
            error.kind() == jetstream::context::CreateStreamErrorKind::TimedOut
        },
        || context.get_or_create_stream(settings.clone()),
    )
    .await
}

/// Creates the event stream if it is missing (when allowed), or binds to the existing one, and
/// checks that it captures the events' subjects.
pub async fn ensure_stream(
    context: &jetstream::Context,
    config: &StreamConfig,
) -> Result<stream::Stream, IngestError> {
    let error = |message: String| IngestError::Stream {
        stream: config.name.clone(),
        message,
    };
    let mut stream = if config.create {
        get_or_create_stream(context, stream_config(config))
            .await
            .map_err(|e| error(e.to_string()))?
    } else {
        context.get_stream(&config.name).await.map_err(|e| {
            error(format!(
                "{e} (nats.stream.create is false: create the stream, or let Vigie create it)"
            ))
        })?
    };
    let info = stream.info().await.map_err(|e| error(e.to_string()))?;
    let wanted = format!("{}.>", config.subject_prefix);
    let covered = info.config.subjects.iter().any(|subject| {
        subject == &wanted
            || subject == ">"
            || subject
                .strip_suffix(".>")
                .is_some_and(|prefix| wanted.starts_with(&format!("{prefix}.")))
    });
    if !covered {
        return Err(error(format!(
            "it captures {:?}, not the events' subjects {wanted:?}: fix nats.stream.subject_prefix or the stream",
            info.config.subjects
        )));
    }
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::time::Duration;

    use super::retry_while_starting;

    /// Runs `retry_while_starting` over answers given in turn; returns its result and the
    /// number of requests made.
    async fn run(
        answers: &[Result<u32, &'static str>],
        attempts: u32,
    ) -> (Result<u32, String>, usize) {
        let made = Cell::new(0);
        let result = retry_while_starting(
            "test",
            attempts,
            Duration::from_millis(1),
            |error: &String| error == "timed out",
            || {
                let answer = answers[made.get()].map_err(str::to_owned);
                made.set(made.get() + 1);
                async move { answer }
            },
        )
        .await;
        (result, made.get())
    }

    #[tokio::test]
    async fn a_transient_error_is_tried_again_until_an_answer_comes() {
        let answers = [Err("timed out"), Err("timed out"), Ok(7)];
        assert_eq!(run(&answers, 5).await, (Ok(7), 3));
    }

    #[tokio::test]
    async fn a_lasting_error_is_returned_at_once_and_attempts_are_bounded() {
        let answers = [Err("timed out"), Err("no such stream"), Ok(7)];
        assert_eq!(
            run(&answers, 5).await,
            (Err("no such stream".to_owned()), 2)
        );
        let answers = [Err("timed out"); 4];
        assert_eq!(run(&answers, 3).await, (Err("timed out".to_owned()), 3));
    }
}
