//! Partition replication, Kafka's protocol: followers fetch from the
//! leader (`fetcher`, over `odradek_client::BrokerClient`), the leader
//! tracks what each follower has (`replica`, `leader`), keeps the ISR with
//! the controller (`isr`, `alter_partition`) and moves the high watermark
//! to the smallest log end in the ISR; followers whose logs diverged
//! truncate (`divergence`).
//!
//! The partition (`crate::partition`) holds the state; this module holds
//! the rules and the background work: [`run`] keeps the fetchers in step
//! with the partitions' roles and shrinks ISRs of followers that fell
//! behind.

pub mod alter_partition;
pub mod divergence;
pub mod fetcher;
pub mod isr;
pub mod leader;
pub mod replica;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::broker::Broker;

/// Runs until `shutdown`: reconfigures the fetchers whenever the replica
/// manager applies an image, and every `replica.lag.time.max.ms / 2`
/// proposes removing lagging followers from the ISRs this broker leads.
/// Stops the fetchers before returning.
pub async fn run(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let mut changes = broker.replicas.subscribe_changes();
    let mut fetchers = fetcher::FetcherManager::new(broker.clone());
    fetchers.reconfigure();
    let period = (broker.config.cluster.replica_lag_time_max_ms / 2).max(1) as u64;
    let mut isr_check = tokio::time::interval(Duration::from_millis(period));
    isr_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            changed = changes.changed() => {
                if changed.is_err() {
                    break;
                }
                fetchers.reconfigure();
            }
            _ = isr_check.tick() => shrink_isrs(&broker),
            _ = shutdown.changed() => break,
        }
    }
    fetchers.shutdown().await;
}

/// Kafka's `isr-expiration` task.
pub fn shrink_isrs(broker: &Arc<Broker>) {
    let now = broker.now_ms();
    let proposals = broker
        .replicas
        .all_partitions()
        .into_iter()
        .filter_map(|p| p.maybe_shrink_isr(now).map(|proposal| (p, proposal)))
        .collect();
    alter_partition::spawn(broker, proposals);
}

#[cfg(test)]
mod tests;
