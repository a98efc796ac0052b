//! ApiVersions (key 18): what this broker serves, from `SUPPORTED_APIS`.

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use odradek_protocol::frame::{encode_response, RawRequest};

use super::{decode, ready, Reply, RequestError, SUPPORTED_APIS};

fn api_list() -> Vec<ApiVersion> {
    SUPPORTED_APIS
        .iter()
        .map(|(key, min, max)| {
            ApiVersion::default()
                .with_api_key(*key as i16)
                .with_min_version(*min)
                .with_max_version(*max)
        })
        .collect()
}

pub fn handle(req: &RawRequest) -> Result<Reply, RequestError> {
    // v3+ carries the client's software name/version; nothing to check
    // against yet, but decoding proves the body is well formed.
    let _request: ApiVersionsRequest = decode(req)?;
    let response = ApiVersionsResponse::default()
        .with_error_code(0)
        .with_api_keys(api_list())
        .with_finalized_features_epoch(-1);
    ready(req, &response)
}

/// KIP-511: a client asking for a newer ApiVersions than we serve gets
/// UNSUPPORTED_VERSION in a v0 body (header v0) listing what we serve.
pub fn unsupported_version(req: &RawRequest) -> Result<Bytes, RequestError> {
    let response = ApiVersionsResponse::default()
        .with_error_code(ResponseError::UnsupportedVersion.code())
        .with_api_keys(api_list());
    Ok(encode_response(
        ApiKey::ApiVersions,
        0,
        req.correlation_id(),
        &response,
    )?)
}
