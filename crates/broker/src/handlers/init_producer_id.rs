//! InitProducerId (key 22) for idempotent producers: a fresh producer id
//! at epoch 0. Transactional ids need the transaction coordinator, which
//! does not exist yet.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use odradek_protocol::frame::RawRequest;

use super::{decode, ready, Reply, RequestError};
use crate::broker::Broker;

pub async fn handle(broker: &Arc<Broker>, req: &RawRequest) -> Result<Reply, RequestError> {
    let request: InitProducerIdRequest = decode(req)?;
    let response = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    if request.transactional_id.is_some() {
        tracing::info!(
            "InitProducerId with a transactional id refused: transactions are not supported yet"
        );
        return ready(
            req,
            &response.with_error_code(ResponseError::CoordinatorNotAvailable.code()),
        );
    }
    // Kafka gives an idempotent producer a new id on every InitProducerId
    // (also the KIP-360 re-init after an error), at epoch 0.
    let response = match broker.new_producer_id().await {
        Ok(id) => response
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(0),
        Err(e) => response.with_error_code(e.code()),
    };
    ready(req, &response)
}
