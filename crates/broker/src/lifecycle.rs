//! A broker's life as the controller sees it: register (fenced), heartbeat
//! until unfenced, keep heartbeating, and on a clean shutdown ask the
//! controller to move leaderships away first (controlled shutdown).
//!
//! A broker that stops heartbeating for `broker.session.timeout.ms` is
//! fenced by the active controller and its leaderships move.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::broker_registration_request::Listener;
use kafka_protocol::messages::{BrokerHeartbeatRequest, BrokerId, BrokerRegistrationRequest};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::watch;

use crate::broker::Broker;
use crate::errors::ApiError;

/// Registers this broker, retrying until the controller accepts it or
/// `shutdown` fires. Returns the broker epoch.
pub async fn register(broker: &Broker, shutdown: &mut watch::Receiver<bool>) -> Option<i64> {
    let advertised = broker.config.advertised_client_listener()?.clone();
    let mut listeners = vec![Listener::default()
        .with_name(StrBytes::from_string(advertised.name.clone()))
        .with_host(StrBytes::from_string(advertised.host.clone()))
        .with_port(advertised.port)
        .with_security_protocol(0)];
    if let Some((host, port)) = broker
        .controller
        .observer_addr()
        .and_then(|a| a.rsplit_once(':'))
        .and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?)))
    {
        listeners.push(
            Listener::default()
                .with_name(StrBytes::from_static_str(
                    crate::controller::METADATA_LISTENER,
                ))
                .with_host(StrBytes::from_string(host))
                .with_port(port)
                .with_security_protocol(0),
        );
    }
    let request = BrokerRegistrationRequest::default()
        .with_broker_id(BrokerId(broker.config.node_id))
        .with_cluster_id(StrBytes::from_string(broker.cluster_id()))
        .with_incarnation_id(broker.incarnation_id)
        .with_listeners(listeners);
    let backoff = Duration::from_millis(broker.config.cluster.broker_heartbeat_interval_ms);
    loop {
        match broker.controller.call(&request).await {
            Ok(r) if r.error_code == 0 => {
                tracing::info!(epoch = r.broker_epoch, "registered with the controller");
                return Some(r.broker_epoch);
            }
            Ok(r) => tracing::warn!(
                error = ?ResponseError::try_from_code(r.error_code),
                "broker registration refused; retrying"
            ),
            Err(e) => tracing::debug!(error = ?e, "broker registration failed; retrying"),
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.changed() => return None,
        }
    }
}

async fn heartbeat(
    broker: &Broker,
    epoch: i64,
    want_shut_down: bool,
) -> Result<(bool, bool), ApiError> {
    let request = BrokerHeartbeatRequest::default()
        .with_broker_id(BrokerId(broker.config.node_id))
        .with_broker_epoch(epoch)
        .with_current_metadata_offset(broker.controller.applied_index())
        .with_want_fence(false)
        .with_want_shut_down(want_shut_down);
    let session = Duration::from_millis(broker.config.cluster.broker_session_timeout_ms);
    let response = broker.controller.call_within(&request, session).await?;
    if response.error_code != 0 {
        return Err(ApiError::bare(
            ResponseError::try_from_code(response.error_code)
                .unwrap_or(ResponseError::UnknownServerError),
        ));
    }
    Ok((response.is_fenced, response.should_shut_down))
}

/// Registers, then heartbeats every `broker.heartbeat.interval.ms` until
/// `shutdown`. `unfenced` is set once the controller unfences this broker.
pub async fn run(
    broker: Arc<Broker>,
    unfenced: watch::Sender<bool>,
    mut shutdown: watch::Receiver<bool>,
) {
    let interval = Duration::from_millis(broker.config.cluster.broker_heartbeat_interval_ms);
    'register: loop {
        let Some(epoch) = register(&broker, &mut shutdown).await else {
            return;
        };
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            match heartbeat(&broker, epoch, false).await {
                Ok((fenced, _)) => {
                    // Ready only once the image that unfenced us (and made
                    // us leader again) is applied to the local partitions.
                    if !fenced && !*unfenced.borrow() {
                        // This incarnation's registration, not one from
                        // before a restart that the image may still show.
                        let (me, incarnation) = (broker.config.node_id, broker.incarnation_id);
                        let _ = broker
                            .wait_for_image(|image| {
                                image
                                    .broker(me)
                                    .is_some_and(|b| !b.fenced && b.incarnation_id == incarnation)
                            })
                            .await;
                    }
                    unfenced.send_if_modified(|u| std::mem::replace(u, !fenced) == fenced);
                }
                // The controller lost our registration (e.g. unregistered):
                // register again.
                Err(e) if e.code == ResponseError::BrokerIdNotRegistered => continue 'register,
                Err(e) => tracing::debug!(error = ?e, "heartbeat failed"),
            }
        }
    }
}

/// Controlled shutdown: asks the controller to move this broker's
/// leaderships away and waits until it says the broker may stop, up to
/// `limit`. Clients then fail over without waiting for a session timeout.
pub async fn controlled_shutdown(broker: &Broker, limit: Duration) {
    let interval = Duration::from_millis(broker.config.cluster.broker_heartbeat_interval_ms);
    let deadline = tokio::time::Instant::now() + limit;
    let epoch = broker.controller.applied_index();
    while tokio::time::Instant::now() < deadline {
        match tokio::time::timeout_at(deadline, heartbeat(broker, epoch, true)).await {
            Ok(Ok((_, true))) => {
                tracing::info!("controlled shutdown complete: this broker leads nothing");
                return;
            }
            Ok(Ok(_)) | Ok(Err(_)) => {}
            Err(_) => break,
        }
        tokio::time::sleep(interval).await;
    }
    tracing::warn!("controlled shutdown did not complete in time; stopping anyway");
}
