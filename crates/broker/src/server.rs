//! The listener: accepts connections up to `max.connections`, runs one
//! task per connection, and shuts down cleanly (stop accepting, let
//! in-flight requests finish, flush logs, write checkpoints).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::broker::{Broker, StartError};
use crate::clock::{Clock, SystemClock};
use crate::config::BrokerConfig;

/// How long shutdown waits for connections to finish in-flight requests.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// A started broker. Dropping it does not stop it; call `shutdown`.
pub struct RunningBroker {
    /// The client listener's address (the controller listener's on a
    /// controller-only node).
    pub addr: SocketAddr,
    pub broker: Arc<Broker>,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Start(#[from] StartError),
    #[error("cannot listen on {addr}: {error}\nhint: is another broker running? choose another port with --override listeners=PLAINTEXT://127.0.0.1:PORT")]
    Bind { addr: String, error: std::io::Error },
    #[error("invalid listener: {0}")]
    Listener(String),
}

/// How long a single node waits at start-up for its own registration: the
/// quorum of one elects itself in milliseconds, so this only bounds a bug.
const SINGLE_NODE_READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens the data directory, binds the listener and starts serving.
pub async fn start(config: BrokerConfig) -> Result<RunningBroker, ServeError> {
    start_with_clock(config, Arc::new(SystemClock)).await
}

pub async fn start_with_clock(
    mut config: BrokerConfig,
    clock: Arc<dyn Clock>,
) -> Result<RunningBroker, ServeError> {
    let listener = match config.client_listener().cloned() {
        Some(listener_cfg) if config.cluster.roles.broker => {
            let bind = listener_cfg.bind_addr().map_err(ServeError::Listener)?;
            let listener = TcpListener::bind(bind)
                .await
                .map_err(|error| ServeError::Bind {
                    addr: bind.to_string(),
                    error,
                })?;
            let addr = listener.local_addr().map_err(|error| ServeError::Bind {
                addr: bind.to_string(),
                error,
            })?;
            // Port 0 means "pick one": advertise the port actually bound.
            for l in config.advertised_listeners.iter_mut() {
                if l.port == 0 && l.name == listener_cfg.name {
                    l.port = addr.port();
                }
            }
            Some((listener, addr))
        }
        _ => None,
    };
    let single_node = config.cluster.voters.is_empty();
    let broker = Arc::new(Broker::open(config, clock).await?);
    let addr = match &listener {
        Some((_, addr)) => *addr,
        None => broker
            .config
            .cluster
            .controller_listener(&broker.config.listeners)
            .and_then(|l| l.bind_addr().ok())
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0))),
    };
    let (shutdown, shutdown_rx) = watch::channel(false);
    let mut unfenced = broker.unfenced.subscribe();
    let task = tokio::spawn(serve(listener.map(|(l, _)| l), broker.clone(), shutdown_rx));
    if single_node && broker.config.cluster.roles.broker {
        // Clients expect a single node to take requests once it listens.
        let ready =
            tokio::time::timeout(SINGLE_NODE_READY_TIMEOUT, unfenced.wait_for(|u| *u)).await;
        if !matches!(ready, Ok(Ok(_))) {
            tracing::warn!("the single node did not register with its own controller in time");
        }
    }
    tracing::info!(%addr, node = broker.config.node_id, cluster_id = %broker.cluster_id(), "odradek is accepting connections");
    Ok(RunningBroker {
        addr,
        broker,
        shutdown,
        task,
    })
}

impl RunningBroker {
    /// Stops accepting, finishes in-flight requests, flushes and closes.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }

    /// Waits until the server stops (after `shutdown` from elsewhere).
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

/// Moves leaderships away before stopping, so clients fail over at once
/// instead of after a session timeout. Bounded: a shutdown never hangs
/// on an unreachable controller.
const CONTROLLED_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

async fn serve(
    listener: Option<TcpListener>,
    broker: Arc<Broker>,
    shutdown: watch::Receiver<bool>,
) {
    let limit = Arc::new(Semaphore::new(broker.config.max_connections));
    // Connection tasks are owned by this set; shutdown drains it.
    let mut connections = JoinSet::new();
    let mut duties = JoinSet::new();
    duties.spawn(broker.clone().run_background(shutdown.clone()));
    duties.spawn(
        broker
            .groups
            .clone()
            .run_timers(broker.clone(), shutdown.clone()),
    );
    duties.spawn(broker.clone().follow_metadata(shutdown.clone()));
    if broker.config.cluster.roles.broker {
        duties.spawn(crate::replication::run(broker.clone(), shutdown.clone()));
    }
    if let Some(active) = broker.controller.active() {
        let interval = Duration::from_millis(broker.config.cluster.broker_heartbeat_interval_ms);
        duties.spawn(active.clone().run_liveness(interval, shutdown.clone()));
    }
    // Heartbeats stop only after the controlled shutdown below.
    let (stop_heartbeats, heartbeats_stopped) = watch::channel(false);
    if broker.config.cluster.roles.broker {
        duties.spawn(crate::lifecycle::run(
            broker.clone(),
            broker.unfenced.clone(),
            heartbeats_stopped,
        ));
    }
    let Some(listener) = listener else {
        let mut stop = shutdown.clone();
        let _ = stop.changed().await;
        let _ = stop_heartbeats.send(true);
        while duties.join_next().await.is_some() {}
        broker.controller.shutdown().await;
        return;
    };
    let mut stop = shutdown.clone();
    // Like Kafka, clients are served only once the controller has unfenced
    // this broker: before that its partitions' leadership is not settled.
    let mut unfenced = broker.unfenced.subscribe();
    let serving = tokio::select! {
        _ = unfenced.wait_for(|u| *u) => true,
        _ = stop.changed() => false,
    };
    loop {
        if !serving {
            break;
        }
        // Like Kafka, stop accepting while at max.connections rather than
        // accept-and-close.
        let permit = tokio::select! {
            p = limit.clone().acquire_owned() => p.expect("semaphore never closed"),
            _ = stop.changed() => break,
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => break,
        };
        match accepted {
            Ok((stream, _)) => {
                let broker = broker.clone();
                let shutdown = shutdown.clone();
                connections.spawn(async move {
                    crate::connection::serve(stream, broker, shutdown).await;
                    drop(permit);
                });
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        while connections.try_join_next().is_some() {}
    }
    if broker.config.cluster.controlled_shutdown_enable && !broker.config.cluster.voters.is_empty()
    {
        crate::lifecycle::controlled_shutdown(&broker, CONTROLLED_SHUTDOWN_TIMEOUT).await;
    }
    let _ = stop_heartbeats.send(true);
    drop(listener);
    tracing::info!("shutting down: finishing in-flight requests");
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("connections still busy after {DRAIN_TIMEOUT:?}; closing them");
        connections.shutdown().await;
    }
    while duties.join_next().await.is_some() {}
    broker.flush_and_checkpoint().await;
    broker.controller.shutdown().await;
    tracing::info!("shutdown complete");
}
