//! Webhook URLs are secrets: whoever has one can post to the channel. They are shown as
//! `scheme://host/…` in `Debug`, `Display`, logs and errors, never whole.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A webhook URL as written in the configuration. Its `Debug` shows the scheme and host only.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretUrl(String);

impl SecretUrl {
    /// Wraps a URL.
    pub fn new(url: impl Into<String>) -> SecretUrl {
        SecretUrl(url.into())
    }

    /// The URL checked: absolute, `http` or `https`, with a host. The problem never quotes it.
    pub fn parse(&self) -> Result<WebhookUrl, UrlProblem> {
        WebhookUrl::parse(&self.0)
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.parse() {
            Ok(url) => write!(f, "{url:?}"),
            Err(_) => f.write_str("\"***\""),
        }
    }
}

/// What is wrong with a webhook URL, without the URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UrlProblem {
    /// Not an absolute URL.
    #[error("is not an absolute URL (its text is a secret and is not shown)")]
    Invalid,
    /// Neither `http` nor `https`.
    #[error("must be an http or https URL")]
    Scheme,
    /// No host.
    #[error("has no host")]
    NoHost,
}

/// A checked webhook URL. `Debug` and `Display` show `scheme://host[:port]/…` only.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookUrl(reqwest::Url);

impl WebhookUrl {
    /// Checks a URL: absolute, `http` or `https`, with a host.
    pub fn parse(text: &str) -> Result<WebhookUrl, UrlProblem> {
        let url = reqwest::Url::parse(text.trim()).map_err(|_| UrlProblem::Invalid)?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(UrlProblem::Scheme);
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(UrlProblem::NoHost);
        }
        Ok(WebhookUrl(url))
    }

    /// The whole URL, for the request only.
    pub(crate) fn expose(&self) -> &reqwest::Url {
        &self.0
    }

    /// `scheme://host[:port]`, safe to show.
    pub fn redacted(&self) -> String {
        let host = self.0.host_str().unwrap_or_default();
        match self.0.port() {
            Some(port) => format!("{}://{host}:{port}", self.0.scheme()),
            None => format!("{}://{host}", self.0.scheme()),
        }
    }

    /// Removes the URL and its secret parts (path, query) from a text about it, for errors
    /// that might quote them.
    pub(crate) fn scrub(&self, text: &str) -> String {
        let mut text = text.replace(self.0.as_str(), &self.to_string());
        let path = self.0.path();
        if path.len() > 1 {
            text = text.replace(path, "/…");
        }
        if let Some(query) = self.0.query().filter(|q| !q.is_empty()) {
            text = text.replace(query, "…");
        }
        text
    }
}

impl fmt::Display for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/…", self.redacted())
    }
}

impl fmt::Debug for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "https://hooks.slack.com/services/T000/B000/XXXXSECRET?token=abc";

    #[test]
    fn only_scheme_and_host_are_shown() {
        let url = WebhookUrl::parse(SECRET).unwrap();
        assert_eq!(url.to_string(), "https://hooks.slack.com/…");
        assert_eq!(format!("{url:?}"), "\"https://hooks.slack.com/…\"");
        let config = SecretUrl::new(SECRET);
        assert_eq!(format!("{config:?}"), "\"https://hooks.slack.com/…\"");
        let port = WebhookUrl::parse("http://127.0.0.1:8123/hook/x").unwrap();
        assert_eq!(port.redacted(), "http://127.0.0.1:8123");
    }

    #[test]
    fn an_unparsable_url_is_not_shown_at_all() {
        let config = SecretUrl::new("hooks.slack.com/services/XXXXSECRET");
        assert_eq!(format!("{config:?}"), "\"***\"");
        let problem = config.parse().unwrap_err().to_string();
        assert!(!problem.contains("XXXXSECRET"));
        assert_eq!(SecretUrl::new("ftp://x/y").parse(), Err(UrlProblem::Scheme));
    }

    #[test]
    fn scrub_removes_every_secret_part() {
        let url = WebhookUrl::parse(SECRET).unwrap();
        let text = format!(
            "error sending request for url ({SECRET}); path /services/T000/B000/XXXXSECRET"
        );
        let scrubbed = url.scrub(&text);
        assert!(!scrubbed.contains("XXXXSECRET"), "{scrubbed}");
        assert!(!scrubbed.contains("token=abc"), "{scrubbed}");
    }
}
