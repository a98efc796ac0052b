//! Builders for unit-test images.

use odradek_metadata::{MetadataImage, MetadataRecord, PartitionImage};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BrokerState {
    Up,
    Fenced,
    ShuttingDown,
}
pub(crate) use BrokerState::*;

pub(crate) fn incarnation(broker_id: i32) -> Uuid {
    Uuid::from_u128(0x1000 + broker_id as u128)
}

pub(crate) fn add_broker(
    image: &mut MetadataImage,
    id: i32,
    state: BrokerState,
    rack: Option<&str>,
) {
    image.apply(&MetadataRecord::RegisterBroker {
        broker_id: id,
        incarnation_id: incarnation(id),
        host: format!("b{id}"),
        port: 9092,
        rack: rack.map(str::to_owned),
    });
    image.apply(&MetadataRecord::BrokerState {
        broker_id: id,
        fenced: state == Fenced,
        in_controlled_shutdown: state == ShuttingDown,
    });
}

pub(crate) fn cluster(brokers: &[(i32, BrokerState)]) -> MetadataImage {
    let mut image = MetadataImage::default();
    for &(id, state) in brokers {
        add_broker(&mut image, id, state, None);
    }
    image
}

pub(crate) fn topic_id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

/// Adds (or replaces) a partition of topic `topic_id(t)`, creating the topic.
pub(crate) fn put_partition(
    image: &mut MetadataImage,
    t: u128,
    partition: i32,
    state: PartitionImage,
) {
    let id = topic_id(t);
    if image.topic_by_id(&id).is_none() {
        image.apply(&MetadataRecord::Topic {
            name: format!("t{t}"),
            topic_id: id,
        });
    }
    image.apply(&MetadataRecord::Partition {
        topic_id: id,
        partition,
        state,
    });
}

/// A partition state with epochs (leader 5, partition 9) so bumps show.
pub(crate) fn state(replicas: &[i32], isr: &[i32], leader: i32) -> PartitionImage {
    PartitionImage {
        replicas: replicas.to_vec(),
        isr: isr.to_vec(),
        leader,
        leader_epoch: 5,
        partition_epoch: 9,
        adding_replicas: vec![],
        removing_replicas: vec![],
    }
}

pub(crate) fn reassigning(
    replicas: &[i32],
    isr: &[i32],
    leader: i32,
    adding: &[i32],
    removing: &[i32],
) -> PartitionImage {
    PartitionImage {
        adding_replicas: adding.to_vec(),
        removing_replicas: removing.to_vec(),
        ..state(replicas, isr, leader)
    }
}

pub(crate) fn applied(image: &MetadataImage, records: &[MetadataRecord]) -> MetadataImage {
    let mut next = image.clone();
    records.iter().for_each(|r| next.apply(r));
    next
}

/// The partition records of a plan, as (partition, state) of topic 1.
pub(crate) fn partition_states(records: &[MetadataRecord]) -> Vec<(u128, i32, PartitionImage)> {
    records
        .iter()
        .filter_map(|r| match r {
            MetadataRecord::Partition {
                topic_id,
                partition,
                state,
            } => Some((topic_id.as_u128(), *partition, state.clone())),
            _ => None,
        })
        .collect()
}
