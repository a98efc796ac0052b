//! What clients are told about the cluster, derived from the image.

use odradek_metadata::{BrokerImage, MetadataImage, PartitionImage};

use crate::broker::Broker;

/// Brokers clients may connect to: registered and unfenced, as Kafka's
/// Metadata lists them.
pub fn live_brokers(image: &MetadataImage) -> impl Iterator<Item = &BrokerImage> {
    image.brokers().filter(|b| !b.fenced)
}

/// Replicas on brokers that are fenced or gone.
pub fn offline_replicas<'a>(
    image: &'a MetadataImage,
    partition: &'a PartitionImage,
) -> impl Iterator<Item = i32> + 'a {
    partition
        .replicas
        .iter()
        .copied()
        .filter(|id| image.broker(*id).is_none_or(|b| b.fenced))
}

/// The controller id clients see. Kafka in KRaft mode reports a live
/// broker, because clients cannot talk to controllers; this reports the
/// active controller when it is also a live broker (combined mode) and
/// otherwise this broker.
pub fn controller_id(broker: &Broker, image: &MetadataImage) -> i32 {
    broker
        .controller
        .active_controller_id()
        .filter(|id| image.broker(*id).is_some_and(|b| !b.fenced))
        .unwrap_or(broker.config.node_id)
}
