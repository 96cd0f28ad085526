//! Vigie's web wallboard, server side: the page's files (built from `web/` into `assets/` and
//! embedded in the binary) and the HTTP routes that serve them, plus the `[web]` settings.
//!
//! The page itself talks to the gRPC API over gRPC-Web on the same origin; the server that
//! mounts these routes next to the gRPC services is `vigie-api`. What this crate must not do:
//! know the engine, the API or anything live. It serves files, nothing else, so that the page
//! gets its figures from the one API every client uses.

use std::borrow::Cow;
use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use vigie_core::config::ConfigErrors;

/// The built page, `web/`'s output. Debug builds embed it too, so tests serve what ships.
#[derive(rust_embed::Embed)]
#[folder = "assets/"]
#[exclude = "SOURCES.sha256"]
struct Assets;

/// The web wallboard (`[web]` in `vigie.toml`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebConfig {
    /// Serve the wallboard at all.
    #[serde(default = "default_enabled")]
    pub enabled: bool,
    /// Address of the wallboard: its pages and, on the same origin, the gRPC-Web API they
    /// call (with the TLS and authentication of `[api]`).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
}

fn default_enabled() -> bool {
    true
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            enabled: default_enabled(),
            listen: default_listen(),
        }
    }
}

impl WebConfig {
    /// Checks the settings; `path` prefixes field names. The wallboard's port carries the API
    /// too, so it may leave the loopback only when the API asks for tokens.
    pub fn validate(&self, path: &str, api_auth_enabled: bool) -> Result<(), ConfigErrors> {
        let mut problems = Vec::new();
        if self.enabled && !api_auth_enabled && !self.listen.ip().is_loopback() {
            problems.push(format!(
                "{path}.listen: {} is not a loopback address, and the wallboard serves the API too: configure [api.auth] (a tokens file or JWT keys) first",
                self.listen
            ));
        }
        ConfigErrors(problems).into_result()
    }
}

/// The pages of the wallboard: `/` (site overview), `/team/<id>`, `/queue/<id>`, and the
/// files they load. Anything else is 404, and only GET and HEAD are answered.
pub fn router() -> Router {
    Router::new().fallback(serve)
}

/// Whether the embedded build holds a page (a checkout whose `web/` was never built holds
/// none).
pub fn has_page() -> bool {
    Assets::get(INDEX).is_some()
}

const INDEX: &str = "index.html";

async fn serve(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, HeaderValue::from_static("GET, HEAD"))],
            "only GET and HEAD are served here\n",
        )
            .into_response();
    }
    let Some(file) = file_for(uri.path()) else {
        return (StatusCode::NOT_FOUND, "no such page\n").into_response();
    };
    let Some(content) = Assets::get(&file) else {
        if file == INDEX {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "the wallboard was not built into this binary: run `npm ci && npm run build` in web/, then build Vigie again\n",
            )
                .into_response();
        }
        return (StatusCode::NOT_FOUND, "no such file\n").into_response();
    };
    let etag = format!("\"{}\"", hex(&content.metadata.sha256_hash()));
    let cache = if file.starts_with("assets/") {
        // Built files carry their content hash in their name: they never change.
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let mut response = if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|tag| tag.trim() == etag))
    {
        StatusCode::NOT_MODIFIED.into_response()
    } else if method == Method::HEAD {
        Response::new(Body::empty())
    } else {
        Response::new(match content.data {
            Cow::Borrowed(bytes) => Body::from(bytes),
            Cow::Owned(bytes) => Body::from(bytes),
        })
    };
    let response_headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(content.metadata.mimetype()) {
        response_headers.insert(header::CONTENT_TYPE, value);
    }
    if let Ok(value) = HeaderValue::from_str(&etag) {
        response_headers.insert(header::ETAG, value);
    }
    response_headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    response_headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response_headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// The embedded file answering `path`: the page itself for its routes, else the file of
/// that name. `None` for paths that can be neither.
fn file_for(path: &str) -> Option<String> {
    let relative = path.strip_prefix('/')?.trim_end_matches('/');
    let segments: Vec<&str> = relative.split('/').collect();
    let is_page = match segments.as_slice() {
        [""] => true,
        ["team" | "queue", id] => !id.is_empty(),
        _ => false,
    };
    if is_page {
        return Some(INDEX.to_owned());
    }
    if segments
        .iter()
        .any(|segment| segment.is_empty() || *segment == "." || *segment == "..")
    {
        return None;
    }
    Some(relative.to_owned())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;
    use tower::ServiceExt;

    async fn get(path: &str, headers: &[(&str, &str)]) -> Response {
        let mut request = Request::get(path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        router()
            .oneshot(request.body(Body::empty()).expect("request"))
            .await
            .expect("infallible")
    }

    async fn text(response: Response) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 24)
            .await
            .expect("body");
        String::from_utf8(bytes.to_vec()).expect("utf-8")
    }

    #[test]
    fn page_routes_map_to_the_page_and_traversal_to_nothing() {
        for page in ["/", "/team/sales", "/team/sales/", "/queue/billing"] {
            assert_eq!(file_for(page).as_deref(), Some(INDEX), "{page}");
        }
        assert_eq!(
            file_for("/assets/index-1a2b.js").as_deref(),
            Some("assets/index-1a2b.js")
        );
        for bad in ["/team/", "/assets/../secret", "/a//b", "/./x"] {
            let file = file_for(bad);
            assert!(
                file.as_deref()
                    .is_none_or(|f| f != INDEX && !f.contains("..")),
                "{bad}: {file:?}"
            );
        }
        assert_eq!(file_for("/assets/../secret"), None);
    }

    #[tokio::test]
    async fn the_page_is_served_for_its_routes_and_revalidated_by_etag() {
        assert!(
            has_page(),
            "web/ was not built into crates/vigie-web/assets"
        );
        for path in ["/", "/team/sales", "/queue/billing"] {
            let response = get(path, &[]).await;
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            assert_eq!(response.headers()[header::CACHE_CONTROL], "no-cache");
            assert!(
                response.headers()[header::CONTENT_TYPE]
                    .to_str()
                    .unwrap_or_default()
                    .starts_with("text/html"),
                "{path}"
            );
            let etag = response.headers()[header::ETAG]
                .to_str()
                .expect("etag")
                .to_owned();
            let body = text(response).await;
            assert!(body.contains("<html"), "{path}: {body}");
            let again = get(path, &[("if-none-match", &etag)]).await;
            assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        }
    }

    #[tokio::test]
    async fn every_file_the_page_loads_is_served_immutable() {
        let page = text(get("/", &[]).await).await;
        let referenced: Vec<String> = Assets::iter()
            .filter(|file| file.starts_with("assets/"))
            .map(|file| file.into_owned())
            .collect();
        assert!(!referenced.is_empty(), "no built files under assets/");
        assert!(
            referenced.iter().any(|file| page.contains(file.as_str())),
            "the page loads none of {referenced:?}"
        );
        for file in referenced {
            let response = get(&format!("/{file}"), &[]).await;
            assert_eq!(response.status(), StatusCode::OK, "{file}");
            assert_eq!(
                response.headers()[header::CACHE_CONTROL],
                "public, max-age=31536000, immutable"
            );
        }
    }

    #[tokio::test]
    async fn unknown_paths_and_methods_are_refused() {
        assert_eq!(
            get("/nothing-here.js", &[]).await.status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            get("/SOURCES.sha256", &[]).await.status(),
            StatusCode::NOT_FOUND
        );
        let post = router()
            .oneshot(Request::post("/").body(Body::empty()).expect("request"))
            .await
            .expect("infallible");
        assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
    }

    #[test]
    fn a_wallboard_off_the_loopback_needs_api_tokens() {
        let open = WebConfig {
            listen: "0.0.0.0:8080".parse().expect("address"),
            ..WebConfig::default()
        };
        let problems = open.validate("web", false).unwrap_err().to_string();
        assert!(problems.contains("web.listen"), "{problems}");
        open.validate("web", true).expect("valid with tokens");
        WebConfig::default()
            .validate("web", false)
            .expect("loopback");
    }
}
