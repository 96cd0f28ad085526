//! Webhooks over HTTPS go through rustls, and their certificates are verified against the
//! system's roots: a receiver with a self-signed certificate is refused, not trusted.

mod common;

use std::net::{Ipv4Addr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{config, config_toml, eventually, notification, route, start};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// An HTTPS server on 127.0.0.1 with a self-signed certificate, in a thread of its own; it
/// records how each handshake ended.
fn self_signed_server() -> (u16, Arc<Mutex<Vec<String>>>) {
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()])
        .expect("a self-signed certificate");
    let cert = CertificateDer::from(certified.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .expect("a server configuration");
    let server = Arc::new(server);
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("a free port");
    let port = listener.local_addr().expect("its address").port();
    let outcomes = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&outcomes);
    std::thread::spawn(move || {
        for socket in listener.incoming() {
            let Ok(mut socket) = socket else { break };
            let _ = socket.set_read_timeout(Some(Duration::from_secs(5)));
            let outcome = match rustls::ServerConnection::new(Arc::clone(&server)) {
                Ok(mut connection) => {
                    let mut outcome = "handshake completed".to_owned();
                    while connection.is_handshaking() {
                        if let Err(error) = connection.complete_io(&mut socket) {
                            outcome = error.to_string();
                            break;
                        }
                    }
                    outcome
                }
                Err(error) => error.to_string(),
            };
            seen.lock().expect("outcomes lock").push(outcome);
        }
    });
    (port, outcomes)
}

#[tokio::test]
async fn a_self_signed_webhook_certificate_is_refused() {
    let (port, outcomes) = self_signed_server();
    let running = start(
        &config(&config_toml(&route(
            "tls",
            "slack",
            &format!("https://127.0.0.1:{port}/services/SECRET"),
            "",
        ))),
        None,
    );
    running.handle.try_send(notification()).unwrap();
    let metrics = running.metrics.clone();
    eventually(
        "the delivery to be given up",
        Duration::from_secs(15),
        || metrics.failed_total("tls", "attempts") == 1,
    )
    .await;
    let metrics = running.finish().await;
    assert_eq!(metrics.delivered_total("tls"), 0);
    assert_eq!(metrics.retries_total("tls", "connect"), 3);
    let outcomes = outcomes.lock().expect("outcomes lock").clone();
    assert!(!outcomes.is_empty(), "the client reached the server");
    // The client spoke TLS, then refused the certificate with an alert.
    for outcome in &outcomes {
        assert!(
            outcome.contains("alert"),
            "the client refused the certificate: {outcomes:?}"
        );
    }
}
