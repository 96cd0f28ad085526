//! The gRPC server: the `Supervision`, `Admin`, `Alerts`, `Notices` and `History` services,
//! gRPC health (serving once ingestion has caught up), server reflection, gRPC-Web with CORS
//! for browsers, optional TLS, HTTP/2 keepalive and limits.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tonic::codegen::http;
use tonic::service::Routes;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, Server, ServerTlsConfig};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tracing::{info, warn};
use vigie_core::config::{ConfigErrors, HumanDuration};
use vigie_engine::EngineHandle;
use vigie_proto::v1::admin_server::AdminServer;
use vigie_proto::v1::alerts_server::AlertsServer;
use vigie_proto::v1::history_server::HistoryServer;
use vigie_proto::v1::notices_server::NoticesServer;
use vigie_proto::v1::supervision_server::SupervisionServer;

use crate::admin::{AdminService, ChangeStore};
use crate::alerts::AlertsService;
use crate::auth::{AuthConfig, Authenticator};
use crate::forward::{ForwardedCalls, Forwarder, Forwarding};
use crate::history::HistoryService;
use crate::history_store::HistoryStore;
use crate::hub::Hub;
use crate::metrics::ApiMetrics;
use crate::notices::{NoticesService, WallClock};
use crate::remote::RemoteViews;
use crate::service::SupervisionService;
use crate::shared_frames::SupervisionRoutes;

/// The gRPC server (`[api]` in `vigie.toml`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Address to listen on for gRPC and gRPC-Web.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Most messages per second on one `Watch*` stream: changes in between are coalesced into
    /// the next message.
    #[serde(default = "default_max_updates_per_second")]
    pub max_updates_per_second: u32,
    /// Most `Watch*` streams open at once on this server; more are refused with
    /// RESOURCE_EXHAUSTED.
    #[serde(default = "default_max_streams")]
    pub max_streams: usize,
    /// Most concurrent calls (streams included) on one HTTP/2 connection.
    #[serde(default = "default_max_concurrent_streams_per_connection")]
    pub max_concurrent_streams_per_connection: u32,
    /// Largest request accepted, in bytes.
    #[serde(default = "default_max_request_bytes")]
    pub max_request_bytes: usize,
    /// Largest response sent, in bytes (a whole site with thousands of advisors is large).
    #[serde(default = "default_max_response_bytes")]
    pub max_response_bytes: usize,
    /// HTTP/2 keepalive: a ping after this long without traffic...
    #[serde(default = "default_keepalive_interval")]
    pub keepalive_interval: HumanDuration,
    /// ...and the connection is closed when the ping is not answered within this.
    #[serde(default = "default_keepalive_timeout")]
    pub keepalive_timeout: HumanDuration,
    /// Origins allowed to call from a browser (gRPC-Web), such as `https://wallboard.example`;
    /// `*` allows any origin (calls still need a token when authentication is on).
    #[serde(default = "default_cors_origins")]
    pub cors_allowed_origins: Vec<String>,
    /// TLS: certificate chain and private key files (PEM). Plain text when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    /// Authentication. Without any source, the API is open to anyone who can connect, which
    /// is allowed only on a loopback address.
    #[serde(default)]
    pub auth: AuthConfig,
}

/// TLS files of the server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Certificate chain, PEM.
    pub cert_file: PathBuf,
    /// Private key, PEM.
    pub key_file: PathBuf,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 50051))
}
fn default_max_updates_per_second() -> u32 {
    10
}
fn default_max_streams() -> usize {
    10_000
}
fn default_max_concurrent_streams_per_connection() -> u32 {
    2_000
}
fn default_max_request_bytes() -> usize {
    64 * 1024
}
fn default_max_response_bytes() -> usize {
    64 * 1024 * 1024
}
fn default_keepalive_interval() -> HumanDuration {
    HumanDuration::secs(30)
}
fn default_keepalive_timeout() -> HumanDuration {
    HumanDuration::secs(10)
}
fn default_cors_origins() -> Vec<String> {
    vec!["*".to_owned()]
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: default_listen(),
            max_updates_per_second: default_max_updates_per_second(),
            max_streams: default_max_streams(),
            max_concurrent_streams_per_connection: default_max_concurrent_streams_per_connection(),
            max_request_bytes: default_max_request_bytes(),
            max_response_bytes: default_max_response_bytes(),
            keepalive_interval: default_keepalive_interval(),
            keepalive_timeout: default_keepalive_timeout(),
            cors_allowed_origins: default_cors_origins(),
            tls: None,
            auth: AuthConfig::default(),
        }
    }
}

impl ApiConfig {
    /// Checks the settings; `path` prefixes the field names in messages.
    pub fn validate(&self, path: &str) -> Result<(), ConfigErrors> {
        let mut problems = Vec::new();
        if !(1..=1000).contains(&self.max_updates_per_second) {
            problems.push(format!(
                "{path}.max_updates_per_second: must be between 1 and 1000, found {}",
                self.max_updates_per_second
            ));
        }
        if self.max_streams == 0 {
            problems.push(format!("{path}.max_streams: must be at least 1"));
        }
        if self.max_concurrent_streams_per_connection == 0 {
            problems.push(format!(
                "{path}.max_concurrent_streams_per_connection: must be at least 1"
            ));
        }
        if self.max_request_bytes < 1024 {
            problems.push(format!("{path}.max_request_bytes: must be at least 1024"));
        }
        if self.max_response_bytes < 64 * 1024 {
            problems.push(format!("{path}.max_response_bytes: must be at least 65536"));
        }
        if self.keepalive_interval.0 < Duration::from_secs(1) {
            problems.push(format!("{path}.keepalive_interval: must be at least 1s"));
        }
        if self.keepalive_timeout.0 < Duration::from_secs(1) {
            problems.push(format!("{path}.keepalive_timeout: must be at least 1s"));
        }
        for (index, origin) in self.cors_allowed_origins.iter().enumerate() {
            if origin != "*" && parse_origin(origin).is_none() {
                problems.push(format!(
                    "{path}.cors_allowed_origins[{index}]: {origin:?} is not an origin (scheme://host[:port]) or *"
                ));
            }
        }
        let mut errors = ConfigErrors(problems);
        if let Err(auth) = self.auth.validate(&format!("{path}.auth")) {
            errors.extend(auth);
        }
        if !self.auth.is_enabled() && !self.listen.ip().is_loopback() {
            errors.0.push(format!(
                "{path}.auth: required when listening on {} (not a loopback address): configure a tokens file or JWT keys",
                self.listen
            ));
        }
        errors.into_result()
    }

    /// The coalescing interval of streams.
    pub fn update_interval(&self) -> Duration {
        Duration::from_secs(1) / self.max_updates_per_second.max(1)
    }
}

fn parse_origin(origin: &str) -> Option<http::HeaderValue> {
    let (scheme, rest) = origin.split_once("://")?;
    if !matches!(scheme, "http" | "https") || rest.is_empty() || rest.contains('/') {
        return None;
    }
    http::HeaderValue::from_str(origin).ok()
}

/// The server cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A file of the configuration cannot be read.
    #[error("cannot read {path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Authentication cannot be set up.
    #[error("authentication: {0}")]
    Auth(#[from] crate::auth::AuthError),
    /// The server failed.
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// Reflection cannot be set up.
    #[error("gRPC reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
}

/// The API server, ready to run on a bound listener.
#[derive(Debug)]
pub struct Api {
    config: ApiConfig,
    service: SupervisionService,
    admin: AdminService,
    alerts: AlertsService,
    notices: NoticesService,
    history: HistoryService,
    tls: Option<ServerTlsConfig>,
    web: Option<TcpListener>,
    shutdown: CancellationToken,
    remote: Arc<RemoteViews>,
}

impl Api {
    /// Where the views of the sites other instances process go, to be served here.
    pub fn remote_views(&self) -> Arc<RemoteViews> {
        self.remote.clone()
    }

    /// Sets up the service over `engine`: reads the authentication sources and TLS files.
    pub fn new(
        config: ApiConfig,
        engine: EngineHandle,
        changes: Arc<dyn ChangeStore>,
        metrics: ApiMetrics,
        shutdown: CancellationToken,
    ) -> Result<Api, ApiError> {
        let auth = if config.auth.is_enabled() {
            Some(Arc::new(Authenticator::from_config(&config.auth)?))
        } else {
            None
        };
        let tls = match &config.tls {
            Some(tls) => {
                let read = |path: &PathBuf| {
                    std::fs::read(path).map_err(|source| ApiError::File {
                        path: path.clone(),
                        source,
                    })
                };
                let identity = Identity::from_pem(read(&tls.cert_file)?, read(&tls.key_file)?);
                Some(ServerTlsConfig::new().identity(identity))
            }
            None => None,
        };
        // The instances processing other sites publish their views at least once a second.
        let remote = RemoteViews::new(Duration::from_secs(5));
        let hub = Hub::new(
            engine.clone(),
            remote.clone(),
            config.update_interval(),
            metrics.clone(),
        );
        let admin = AdminService::new(
            engine.clone(),
            auth.clone(),
            changes.clone(),
            metrics.clone(),
        );
        let notices = NoticesService::new(
            engine.clone(),
            auth.clone(),
            changes.clone(),
            config.max_streams,
            metrics.clone(),
            shutdown.clone(),
        )
        .with_remote(remote.clone());
        let history = HistoryService::new(
            engine.clone(),
            auth.clone(),
            notices.clone(),
            metrics.clone(),
        );
        let alerts = AlertsService::new(
            engine.clone(),
            auth.clone(),
            changes,
            config.max_streams,
            metrics.clone(),
            shutdown.clone(),
        )
        .with_remote(remote.clone());
        let service = SupervisionService::new(
            engine,
            auth,
            hub,
            config.max_streams,
            metrics,
            shutdown.clone(),
        );
        Ok(Api {
            config,
            service,
            admin,
            alerts,
            notices,
            history,
            tls,
            web: None,
            shutdown,
            remote,
        })
    }

    /// Sends the calls only a site's owner answers (acknowledging and silencing its alerts,
    /// posting and withdrawing its notices, its history) to the instance that processes the
    /// site, when that is not this one.
    pub fn with_forwarder(mut self, forwarder: Arc<dyn Forwarder>) -> Api {
        let forwarding = Forwarding::through(forwarder);
        self.alerts = self.alerts.with_forwarding(forwarding.clone());
        self.notices = self.notices.with_forwarding(forwarding.clone());
        self.history = self
            .history
            .with_notices(self.notices.clone())
            .with_forwarding(forwarding);
        self
    }

    /// The `Notices` service, told here of the notices other instances keep (see
    /// [`NoticesService::kept_elsewhere`]).
    pub fn notices(&self) -> NoticesService {
        self.notices.clone()
    }

    /// What answers the calls other instances forward here (see [`Api::with_forwarder`]).
    pub fn forwarded_calls(&self) -> ForwardedCalls {
        ForwardedCalls {
            alerts: self.alerts.clone(),
            notices: self.notices.clone(),
            history: self.history.clone(),
        }
    }

    /// Runs the `Notices` service on `clock` instead of the system's (tests, simulations).
    pub fn with_notices_clock(mut self, clock: Arc<dyn WallClock>) -> Api {
        self.notices = self.notices.with_clock(clock);
        self.history = self.history.with_notices(self.notices.clone());
        self
    }

    /// Serves the `History` service over `store` (without it, its calls answer UNAVAILABLE).
    pub fn with_history(mut self, store: Arc<dyn HistoryStore>) -> Api {
        self.history = self.history.with_store(store);
        self
    }

    /// Also serves the web wallboard on `listener`: its pages, and the same services over
    /// gRPC-Web for them (same TLS, same authentication).
    pub fn with_web(mut self, listener: TcpListener) -> Api {
        self.web = Some(listener);
        self
    }

    /// Serves on `listener` (and on the wallboard's, see [`Api::with_web`]) until the shutdown
    /// token given to [`Api::new`] is cancelled; open streams then end with UNAVAILABLE.
    /// Health reports NOT_SERVING until `ready` is true (the day recovered), then SERVING.
    pub async fn serve(
        self,
        listener: TcpListener,
        mut ready: watch::Receiver<bool>,
    ) -> Result<(), ApiError> {
        let config = &self.config;
        let (health, health_service) = tonic_health::server::health_reporter();
        health
            .set_not_serving::<SupervisionServer<SupervisionService>>()
            .await;
        health
            .set_service_status("", tonic_health::ServingStatus::NotServing)
            .await;
        tokio::spawn(async move {
            loop {
                let status = if *ready.borrow_and_update() {
                    tonic_health::ServingStatus::Serving
                } else {
                    tonic_health::ServingStatus::NotServing
                };
                health
                    .set_service_status("vigie.v1.Supervision", status)
                    .await;
                health.set_service_status("", status).await;
                if ready.changed().await.is_err() {
                    return;
                }
            }
        });

        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(vigie_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(vigie_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()?;
        let supervision = SupervisionRoutes::new(
            self.service,
            config.max_request_bytes,
            config.max_response_bytes,
        );
        let admin = AdminServer::new(self.admin)
            .max_decoding_message_size(config.max_request_bytes)
            .max_encoding_message_size(config.max_response_bytes);
        let alerts = AlertsServer::new(self.alerts)
            .max_decoding_message_size(config.max_request_bytes)
            .max_encoding_message_size(config.max_response_bytes);
        let notices = NoticesServer::new(self.notices)
            .max_decoding_message_size(config.max_request_bytes)
            .max_encoding_message_size(config.max_response_bytes);
        let history = HistoryServer::new(self.history)
            .max_decoding_message_size(config.max_request_bytes)
            .max_encoding_message_size(config.max_response_bytes);
        let mut routes = Routes::builder();
        routes
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(supervision)
            .add_service(admin)
            .add_service(alerts)
            .add_service(notices)
            .add_service(history);
        let routes = routes.routes();

        let mut builder = Server::builder()
            .accept_http1(true)
            .http2_keepalive_interval(Some(config.keepalive_interval.0))
            .http2_keepalive_timeout(Some(config.keepalive_timeout.0))
            .max_concurrent_streams(Some(config.max_concurrent_streams_per_connection));
        if let Some(tls) = self.tls {
            builder = builder.tls_config(tls)?;
        }
        let mut builder = builder.layer(cors(&config.cors_allowed_origins));
        let address = listener
            .local_addr()
            .map_or_else(|_| config.listen.to_string(), |a| a.to_string());
        info!(
            address = %address,
            tls = config.tls.is_some(),
            auth = config.auth.is_enabled(),
            "gRPC API (with gRPC-Web, health and reflection)"
        );
        if !config.auth.is_enabled() {
            warn!(
                "gRPC API without authentication: anyone who can connect to this machine's loopback reads every view"
            );
        }
        let api_routes = Routes::from(
            routes
                .clone()
                .into_axum_router()
                .layer(tonic_web::GrpcWebLayer::new()),
        );
        let api = builder.add_routes(api_routes).serve_with_incoming_shutdown(
            incoming(listener, config),
            self.shutdown.clone().cancelled_owned(),
        );
        let Some(web_listener) = self.web else {
            api.await?;
            return Ok(());
        };
        let scheme = if config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        match web_listener.local_addr() {
            Ok(address) if vigie_web::has_page() => {
                info!(url = %format!("{scheme}://{address}/"), "web wallboard");
            }
            Ok(address) => warn!(
                address = %address,
                "web wallboard not built into this binary: its address answers 503 (run `npm ci && npm run build` in web/, then build again)"
            ),
            Err(_) => {}
        }
        // The wallboard's port serves its pages and, on the same origin, the same gRPC-Web
        // services, so a browser needs neither CORS nor a second address. gRPC-Web translation
        // wraps the services only: it answers 400 to any other HTTP/1.1 request, such as a
        // page. Paths of no page and no service fall through to the pages' 404.
        let web_routes = Routes::from(
            routes
                .into_axum_router()
                .route_layer(tonic_web::GrpcWebLayer::new())
                .fallback_service(vigie_web::router()),
        );
        let web = builder.add_routes(web_routes).serve_with_incoming_shutdown(
            incoming(web_listener, config),
            self.shutdown.cancelled_owned(),
        );
        tokio::try_join!(api, web)?;
        Ok(())
    }
}

/// Connections of `listener`. Views are small writes that must leave at once: without
/// TCP_NODELAY they wait for the client's delayed acknowledgement (up to 40 ms). The builder's
/// `tcp_nodelay` does not apply to a listener passed in, so it is set here.
fn incoming(listener: TcpListener, config: &ApiConfig) -> TcpIncoming {
    TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .with_keepalive(Some(config.keepalive_interval.0))
}

/// CORS for gRPC-Web: the headers browsers must be allowed to send and to read.
fn cors(origins: &[String]) -> CorsLayer {
    let allow_origin = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| parse_origin(o)))
    };
    CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([http::Method::POST, http::Method::OPTIONS])
        .allow_headers([
            http::header::AUTHORIZATION,
            http::header::CONTENT_TYPE,
            http::HeaderName::from_static("x-grpc-web"),
            http::HeaderName::from_static("x-user-agent"),
            http::HeaderName::from_static("grpc-timeout"),
            http::HeaderName::from_static("connect-protocol-version"),
            http::HeaderName::from_static("connect-timeout-ms"),
        ])
        .expose_headers([
            http::HeaderName::from_static("grpc-status"),
            http::HeaderName::from_static("grpc-message"),
            http::HeaderName::from_static("grpc-status-details-bin"),
        ])
        .max_age(Duration::from_secs(24 * 3600))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_on_loopback_and_auth_is_required_elsewhere() {
        ApiConfig::default().validate("api").unwrap();
        let open = ApiConfig {
            listen: "0.0.0.0:50051".parse().unwrap(),
            ..ApiConfig::default()
        };
        let problems = open.validate("api").unwrap_err().to_string();
        assert!(
            problems.contains("api.auth: required when listening on 0.0.0.0:50051"),
            "{problems}"
        );
    }

    #[test]
    fn every_problem_is_reported_with_its_field() {
        let config = ApiConfig {
            max_updates_per_second: 0,
            max_streams: 0,
            cors_allowed_origins: vec!["wallboard.example/path".to_owned()],
            ..ApiConfig::default()
        };
        let problems = config.validate("api").unwrap_err().to_string();
        for field in [
            "api.max_updates_per_second",
            "api.max_streams",
            "api.cors_allowed_origins[0]",
        ] {
            assert!(problems.contains(field), "{field} in {problems}");
        }
    }

    #[test]
    fn the_update_rate_sets_the_coalescing_interval() {
        let config = ApiConfig {
            max_updates_per_second: 4,
            ..ApiConfig::default()
        };
        assert_eq!(config.update_interval(), Duration::from_millis(250));
    }
}
