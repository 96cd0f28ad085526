//! A NATS cluster on loopback for the tests of several Vigie instances: servers with routes to
//! one another, each on its own ports with its own JetStream storage, any of which a test can
//! kill and restart.

use std::time::Duration;

use async_nats::jetstream::Context;
use vigie_ingest::NatsConfig;

use crate::cli::free_port;
use crate::nats::{NatsServer, within};

/// The servers of one cluster.
#[derive(Debug)]
pub struct NatsCluster {
    /// The servers, `n0`, `n1`...
    pub nodes: Vec<NatsServer>,
}

impl NatsCluster {
    /// Starts `size` servers routed to one another (JetStream clustered: streams may have
    /// `size` replicas once a meta leader is elected; see [`NatsCluster::connect_with_stream`]).
    ///
    /// # Panics
    ///
    /// When a server does not start (see [`NatsServer::start`]).
    pub fn start(size: usize) -> NatsCluster {
        let routes: Vec<u16> = (0..size).map(|_| free_port()).collect();
        let route_urls: Vec<String> = routes
            .iter()
            .map(|port| format!("\"nats-route://127.0.0.1:{port}\""))
            .collect();
        let nodes = routes
            .iter()
            .enumerate()
            .map(|(index, port)| {
                NatsServer::start_with(&format!(
                    "server_name: n{index}\n\
                     cluster {{\n  name: vigie-test\n  listen: \"127.0.0.1:{port}\"\n  routes: [{}]\n}}\n",
                    route_urls.join(", ")
                ))
            })
            .collect();
        NatsCluster { nodes }
    }

    /// Every server's URL, comma-separated (as `[nats] url` takes them).
    pub fn url(&self) -> String {
        self.nodes
            .iter()
            .map(NatsServer::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Vigie's NATS settings for this cluster: every server, streams with a replica on each.
    pub fn nats_config(&self) -> NatsConfig {
        let mut config = self.nodes[0].nats_config();
        config.url = self.url();
        config.stream.replicas = self.nodes.len();
        config
    }

    /// A client of the cluster with the event stream created (retried until the cluster has
    /// elected its JetStream meta leader, at most 60 s).
    ///
    /// # Panics
    ///
    /// When the stream cannot be created in time.
    pub async fn connect_with_stream(&self) -> (async_nats::Client, Context) {
        let config = self.nats_config();
        within("a clustered event stream", Duration::from_secs(60), async {
            loop {
                if let Ok((client, context)) = vigie_ingest::connect(&config).await
                    && vigie_ingest::ensure_stream(&context, &config.stream)
                        .await
                        .is_ok()
                {
                    return (client, context);
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
        .await
    }
}
