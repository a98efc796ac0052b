use kafka_protocol::error::ResponseError;

/// Why the controller refuses a request: the Kafka error code to answer
/// with and a message for the response's error message field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} ({code})")]
pub struct PlanError {
    pub code: ResponseError,
    pub message: String,
}

impl PlanError {
    pub fn new(code: ResponseError, message: impl Into<String>) -> PlanError {
        PlanError {
            code,
            message: message.into(),
        }
    }

    pub(crate) fn unknown_partition(topic_id: &uuid::Uuid, partition: i32) -> PlanError {
        PlanError::new(
            ResponseError::UnknownTopicOrPartition,
            format!("no partition {partition} of topic {topic_id}"),
        )
    }
}
