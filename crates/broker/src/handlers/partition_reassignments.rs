//! AlterPartitionReassignments (key 45) goes to the active controller,
//! which adds the target replicas; replication copies the data and the
//! reassignment completes when they are in sync (KIP-455).
//! ListPartitionReassignments (key 46) answers from this broker's image.

use std::sync::Arc;

use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, BrokerId,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use odradek_metadata::PartitionImage;
use odradek_protocol::frame::RawRequest;

use super::{decode, ready, Reply, RequestError};
use crate::broker::Broker;

pub async fn alter(broker: &Arc<Broker>, req: &RawRequest) -> Result<Reply, RequestError> {
    let request: AlterPartitionReassignmentsRequest = decode(req)?;
    let response = match broker.controller.call(&request).await {
        Ok(r) => r,
        Err(e) => AlterPartitionReassignmentsResponse::default()
            .with_error_code(e.code())
            .with_error_message(e.message.map(StrBytes::from_string)),
    };
    ready(req, &response)
}

pub fn list(broker: &Arc<Broker>, req: &RawRequest) -> Result<Reply, RequestError> {
    let request: ListPartitionReassignmentsRequest = decode(req)?;
    let image = broker.image();
    let ongoing = |p: &PartitionImage| odradek_controller::reassignment_in_progress(p);
    let entry = |index: i32, p: &PartitionImage| {
        let ids = |v: &[i32]| v.iter().copied().map(BrokerId).collect();
        OngoingPartitionReassignment::default()
            .with_partition_index(index)
            .with_replicas(ids(&p.replicas))
            .with_adding_replicas(ids(&p.adding_replicas))
            .with_removing_replicas(ids(&p.removing_replicas))
    };
    let mut topics = Vec::new();
    match &request.topics {
        // Null: every ongoing reassignment.
        None => {
            let mut all: Vec<_> = image.topics().collect();
            all.sort_by(|a, b| a.name.cmp(&b.name));
            for t in all {
                let partitions: Vec<_> = t
                    .partitions
                    .iter()
                    .filter(|(_, p)| ongoing(p))
                    .map(|(i, p)| entry(*i, p))
                    .collect();
                if !partitions.is_empty() {
                    topics.push(
                        OngoingTopicReassignment::default()
                            .with_name(TopicName(StrBytes::from_string(t.name.to_string())))
                            .with_partitions(partitions),
                    );
                }
            }
        }
        // Named partitions that are not being reassigned are left out, as
        // Kafka does.
        Some(wanted) => {
            for w in wanted {
                let Some(t) = image.topic(w.name.0.as_str()) else {
                    continue;
                };
                let partitions: Vec<_> = w
                    .partition_indexes
                    .iter()
                    .filter_map(|i| t.partitions.get(i).map(|p| (*i, p)))
                    .filter(|(_, p)| ongoing(p))
                    .map(|(i, p)| entry(i, p))
                    .collect();
                if !partitions.is_empty() {
                    topics.push(
                        OngoingTopicReassignment::default()
                            .with_name(w.name.clone())
                            .with_partitions(partitions),
                    );
                }
            }
        }
    }
    ready(
        req,
        &ListPartitionReassignmentsResponse::default().with_topics(topics),
    )
}
