//! The one place where failures become Kafka error codes.
//!
//! Architecture invariant: only the broker crate maps errors to Kafka
//! error codes; storage and metadata report typed errors of their own.

use kafka_protocol::error::ResponseError;
use odradek_storage::StorageError;

/// A Kafka error code with a message for the response's `error_message`
/// field (where the API version has one) and the broker log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: ResponseError,
    pub message: Option<String>,
}

impl ApiError {
    pub fn new(code: ResponseError, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: Some(message.into()),
        }
    }

    pub fn bare(code: ResponseError) -> ApiError {
        ApiError {
            code,
            message: None,
        }
    }

    pub fn code(&self) -> i16 {
        self.code.code()
    }
}

impl From<ResponseError> for ApiError {
    fn from(code: ResponseError) -> ApiError {
        ApiError::bare(code)
    }
}

impl From<&StorageError> for ApiError {
    fn from(e: &StorageError) -> ApiError {
        match e {
            StorageError::OffsetOutOfRange { .. } => {
                ApiError::new(ResponseError::OffsetOutOfRange, e.to_string())
            }
            // The log refuses writes after an I/O error until the broker
            // restarts; Kafka answers KAFKA_STORAGE_ERROR in that case.
            _ => ApiError::new(ResponseError::KafkaStorageError, e.to_string()),
        }
    }
}

impl From<odradek_controller::PlanError> for ApiError {
    fn from(e: odradek_controller::PlanError) -> ApiError {
        ApiError::new(e.code, e.message)
    }
}
