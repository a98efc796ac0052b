//! Sending ISR changes to the controller (Kafka's `AlterPartitionManager`):
//! one AlterPartition (v3) per batch of proposals, answers applied to the
//! partitions, and retries while the controller cannot be reached.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_partition_request::{BrokerState, PartitionData, TopicData};
use kafka_protocol::messages::{AlterPartitionRequest, AlterPartitionResponse, BrokerId};
use uuid::Uuid;

use super::isr::AlterOutcome;
use crate::broker::Broker;
use crate::partition::Partition;

/// An ISR change a leader wants, with the epochs it believes current (the
/// controller refuses it if either is stale).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrProposal {
    pub topic_id: Uuid,
    pub partition: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub new_isr: Vec<i32>,
    /// Matches the answer to the partition's pending proposal.
    pub seq: u64,
}

const FIRST_RETRY: Duration = Duration::from_millis(50);
const MAX_RETRY: Duration = Duration::from_secs(2);

/// Sends `proposals` in the background.
pub fn spawn(broker: &Arc<Broker>, proposals: Vec<(Arc<Partition>, IsrProposal)>) {
    if proposals.is_empty() {
        return;
    }
    tokio::spawn(submit(broker.clone(), proposals));
}

/// Sends `proposals` until each is answered (or superseded: the image
/// reset the partition, leadership moved), applying every answer.
pub async fn submit(broker: Arc<Broker>, mut proposals: Vec<(Arc<Partition>, IsrProposal)>) {
    let mut backoff = FIRST_RETRY;
    loop {
        proposals.retain(|(p, proposal)| p.isr_change_pending(proposal.seq));
        if proposals.is_empty() {
            return;
        }
        let request = request(broker.config.node_id, &proposals);
        match broker.controller.call(&request).await {
            Ok(response) if response.error_code == 0 => {
                let now = broker.now_ms();
                for (partition, proposal) in &proposals {
                    let outcome = outcome_for(&response, proposal);
                    if let AlterOutcome::Refused(code) = &outcome {
                        tracing::info!(topic = %partition.topic, partition = partition.index, isr = ?proposal.new_isr, error = ?code, "the controller refused an ISR change");
                    }
                    partition.complete_isr_change(proposal.seq, outcome, now);
                }
                return;
            }
            Ok(response) => {
                tracing::debug!(error = ?ResponseError::try_from_code(response.error_code), "AlterPartition failed; retrying")
            }
            Err(e) => {
                tracing::debug!(error = ?e, "AlterPartition could not reach the controller; retrying")
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_RETRY);
    }
}

fn request(node_id: i32, proposals: &[(Arc<Partition>, IsrProposal)]) -> AlterPartitionRequest {
    let mut topics: Vec<TopicData> = Vec::new();
    for (_, p) in proposals {
        let data = PartitionData::default()
            .with_partition_index(p.partition)
            .with_leader_epoch(p.leader_epoch)
            .with_partition_epoch(p.partition_epoch)
            // Broker epochs in the ISR are not checked by this controller
            // (-1: "not supported", as Kafka allows).
            .with_new_isr_with_epochs(
                p.new_isr
                    .iter()
                    .map(|&b| {
                        BrokerState::default()
                            .with_broker_id(BrokerId(b))
                            .with_broker_epoch(-1)
                    })
                    .collect(),
            );
        match topics.iter_mut().find(|t| t.topic_id == p.topic_id) {
            Some(t) => t.partitions.push(data),
            None => topics.push(
                TopicData::default()
                    .with_topic_id(p.topic_id)
                    .with_partitions(vec![data]),
            ),
        }
    }
    AlterPartitionRequest::default()
        .with_broker_id(BrokerId(node_id))
        .with_broker_epoch(-1)
        .with_topics(topics)
}

/// The answer for one proposal; a partition missing from the response
/// counts as not attempted.
pub fn outcome_for(response: &AlterPartitionResponse, proposal: &IsrProposal) -> AlterOutcome {
    let found = response
        .topics
        .iter()
        .filter(|t| t.topic_id == proposal.topic_id)
        .flat_map(|t| t.partitions.iter())
        .find(|p| p.partition_index == proposal.partition);
    match found {
        None => AlterOutcome::Refused(ResponseError::OperationNotAttempted),
        Some(p) if p.error_code != 0 => AlterOutcome::Refused(
            ResponseError::try_from_code(p.error_code).unwrap_or(ResponseError::UnknownServerError),
        ),
        Some(p) => AlterOutcome::Committed {
            leader_epoch: p.leader_epoch,
            isr: p.isr.iter().map(|b| b.0).collect(),
            partition_epoch: p.partition_epoch,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::alter_partition_response;

    #[test]
    fn answers_are_matched_by_topic_and_partition() {
        let topic = Uuid::from_u128(7);
        let proposal = IsrProposal {
            topic_id: topic,
            partition: 2,
            leader_epoch: 4,
            partition_epoch: 9,
            new_isr: vec![1, 2],
            seq: 1,
        };
        let response = AlterPartitionResponse::default().with_topics(vec![
            alter_partition_response::TopicData::default()
                .with_topic_id(topic)
                .with_partitions(vec![
                    alter_partition_response::PartitionData::default()
                        .with_partition_index(1)
                        .with_error_code(ResponseError::InvalidUpdateVersion.code()),
                    alter_partition_response::PartitionData::default()
                        .with_partition_index(2)
                        .with_leader_epoch(4)
                        .with_isr(vec![BrokerId(1), BrokerId(2)])
                        .with_partition_epoch(10),
                ]),
        ]);
        assert_eq!(
            outcome_for(&response, &proposal),
            AlterOutcome::Committed {
                leader_epoch: 4,
                isr: vec![1, 2],
                partition_epoch: 10
            }
        );
        let other = IsrProposal {
            partition: 1,
            ..proposal.clone()
        };
        assert_eq!(
            outcome_for(&response, &other),
            AlterOutcome::Refused(ResponseError::InvalidUpdateVersion)
        );
        let missing = IsrProposal {
            partition: 3,
            ..proposal
        };
        assert_eq!(
            outcome_for(&response, &missing),
            AlterOutcome::Refused(ResponseError::OperationNotAttempted)
        );
    }
}
