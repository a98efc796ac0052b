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
    pub addr: SocketAddr,
    pub broker: Arc<Broker>,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Start(#[from] StartError),
    #[error("cannot listen on {addr}: {source}\nhint: is another broker running? choose another port with --override listeners=PLAINTEXT://127.0.0.1:PORT")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("invalid listener: {0}")]
    Listener(String),
}

/// Opens the data directory, binds the listener and starts serving.
pub async fn start(config: BrokerConfig) -> Result<RunningBroker, ServeError> {
    start_with_clock(config, Arc::new(SystemClock)).await
}

pub async fn start_with_clock(
    mut config: BrokerConfig,
    clock: Arc<dyn Clock>,
) -> Result<RunningBroker, ServeError> {
    let listener_cfg = config.listeners[0].clone();
    let bind = listener_cfg.bind_addr().map_err(ServeError::Listener)?;
    let listener = TcpListener::bind(bind)
        .await
        .map_err(|source| ServeError::Bind {
            addr: bind.to_string(),
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServeError::Bind {
        addr: bind.to_string(),
        source,
    })?;
    // Port 0 means "pick one": advertise the port actually bound.
    for l in config.advertised_listeners.iter_mut() {
        if l.port == 0 && l.name == listener_cfg.name {
            l.port = addr.port();
        }
    }
    let broker = Arc::new(Broker::open(config, clock)?);
    let (shutdown, shutdown_rx) = watch::channel(false);
    let task = tokio::spawn(serve(listener, broker.clone(), shutdown_rx));
    tracing::info!(%addr, cluster_id = %broker.cluster_id, "odradek is accepting connections");
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

async fn serve(listener: TcpListener, broker: Arc<Broker>, shutdown: watch::Receiver<bool>) {
    let limit = Arc::new(Semaphore::new(broker.config.max_connections));
    // Connection tasks are owned by this set; shutdown drains it.
    let mut connections = JoinSet::new();
    let background = tokio::spawn(broker.clone().run_background(shutdown.clone()));
    let group_timers = tokio::spawn(
        broker
            .groups
            .clone()
            .run_timers(broker.clone(), shutdown.clone()),
    );
    let mut stop = shutdown.clone();
    loop {
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
    let _ = background.await;
    let _ = group_timers.await;
    broker.flush_and_checkpoint().await;
    tracing::info!("shutdown complete");
}
