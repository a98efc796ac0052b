//! Kafka's size-prefixed framing and request/response headers.
//!
//! Every request and response on the wire is `length: i32` followed by
//! `length` bytes. This module only works on bytes: the network shell reads
//! the four length bytes, asks [`check_frame_len`] whether the body may be
//! allocated at all, and hands the body to [`split_request`].

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};

/// Why a frame or request header was refused. Each of these closes the
/// connection: the stream position can no longer be trusted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("frame length {0} is negative")]
    NegativeLength(i32),
    #[error("frame length {len} exceeds socket.request.max.bytes ({max})")]
    TooLarge { len: usize, max: usize },
    #[error("request is too short to hold a request header")]
    Truncated,
    #[error("unknown API key {0}")]
    UnknownApiKey(i16),
    #[error("malformed request header: {0}")]
    BadHeader(String),
}

/// Validates a length prefix before anything is allocated for the body.
pub fn check_frame_len(prefix: [u8; 4], max: usize) -> Result<usize, FrameError> {
    let len = i32::from_be_bytes(prefix);
    if len < 0 {
        return Err(FrameError::NegativeLength(len));
    }
    let len = len as usize;
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    Ok(len)
}

/// A request whose header has been decoded and whose body has not.
#[derive(Debug, Clone)]
pub struct RawRequest {
    pub api_key: ApiKey,
    pub header: RequestHeader,
    pub body: Bytes,
}

impl RawRequest {
    pub fn version(&self) -> i16 {
        self.header.request_api_version
    }
    pub fn correlation_id(&self) -> i32 {
        self.header.correlation_id
    }
    /// The header's client id, empty when the client sent none.
    pub fn client_id(&self) -> &str {
        self.header.client_id.as_ref().map_or("", |c| c.as_str())
    }
}

/// Splits a frame body into the decoded request header and the undecoded
/// message body. The header version depends on the API key and version
/// (v0–v2, v2 being flexible with tagged fields); an unsupported version of
/// a known API still decodes its header so the broker can answer
/// UNSUPPORTED_VERSION (KIP-511 for ApiVersions).
pub fn split_request(mut frame: Bytes) -> Result<RawRequest, FrameError> {
    if frame.len() < 8 {
        return Err(FrameError::Truncated);
    }
    let key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let api_key = ApiKey::try_from(key).map_err(|_| FrameError::UnknownApiKey(key))?;
    let header_version = request_header_version(api_key, version);
    let header = RequestHeader::decode(&mut frame, header_version)
        .map_err(|e| FrameError::BadHeader(e.to_string()))?;
    Ok(RawRequest {
        api_key,
        header,
        body: frame,
    })
}

/// The request header version for `version` of `api_key`. Versions beyond
/// the schema are treated like the newest one, so a client that is newer
/// than us still gets its header parsed with the right (flexible) layout.
/// ApiVersions is the exception Kafka makes: its header is never parsed
/// past v2 layout rules it defines itself (v3+ flexible).
pub fn request_header_version(api_key: ApiKey, version: i16) -> i16 {
    let range = api_key.valid_versions();
    let v = version.clamp(range.min, range.max);
    api_key.request_header_version(v)
}

/// Encodes a complete response frame: length prefix, response header, body.
/// ApiVersions always answers with header v0 (KIP-511), which the
/// generated `response_header_version` already encodes.
pub fn encode_response<M: Encodable>(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &M,
) -> Result<Bytes, EncodeError> {
    let header_version = api_key.response_header_version(version);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let size = header
        .compute_size(header_version)
        .and_then(|h| body.compute_size(version).map(|b| h + b))
        .map_err(|e| EncodeError(e.to_string()))?;
    let mut buf = BytesMut::with_capacity(4 + size);
    buf.put_i32(size as i32);
    header
        .encode(&mut buf, header_version)
        .map_err(|e| EncodeError(e.to_string()))?;
    body.encode(&mut buf, version)
        .map_err(|e| EncodeError(e.to_string()))?;
    Ok(buf.freeze())
}

/// A response could not be encoded; a broker bug, never the client's fault.
#[derive(Debug, thiserror::Error)]
#[error("response encoding failed: {0}")]
pub struct EncodeError(pub String);

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{ApiVersionsRequest, MetadataRequest};
    use kafka_protocol::protocol::StrBytes;

    fn request_bytes<M: Encodable>(key: ApiKey, version: i16, msg: &M) -> Bytes {
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(7)
            .with_client_id(Some(StrBytes::from_static_str("t")));
        let mut buf = BytesMut::new();
        header
            .encode(&mut buf, key.request_header_version(version))
            .unwrap();
        msg.encode(&mut buf, version).unwrap();
        buf.freeze()
    }

    #[test]
    fn frame_len_limits() {
        assert_eq!(check_frame_len(10i32.to_be_bytes(), 100), Ok(10));
        assert_eq!(
            check_frame_len((-1i32).to_be_bytes(), 100),
            Err(FrameError::NegativeLength(-1))
        );
        assert!(matches!(
            check_frame_len(i32::MAX.to_be_bytes(), 100 << 20),
            Err(FrameError::TooLarge { .. })
        ));
    }

    #[test]
    fn splits_flexible_and_classic_headers() {
        for (key, version) in [(ApiKey::Metadata, 1), (ApiKey::Metadata, 12)] {
            let raw =
                split_request(request_bytes(key, version, &MetadataRequest::default())).unwrap();
            assert_eq!(raw.api_key, key);
            assert_eq!(raw.correlation_id(), 7);
            let body = MetadataRequest::decode(&mut raw.body.clone(), version).unwrap();
            assert_eq!(body, MetadataRequest::default());
        }
    }

    #[test]
    fn unsupported_api_versions_version_still_parses_header() {
        // KIP-511: a client newer than the broker sends ApiVersions v99.
        let mut bytes = BytesMut::from(
            &request_bytes(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())[..],
        );
        bytes[2..4].copy_from_slice(&99i16.to_be_bytes());
        let raw = split_request(bytes.freeze()).unwrap();
        assert_eq!(raw.version(), 99);
        assert_eq!(raw.correlation_id(), 7);
    }

    #[test]
    fn garbage_is_refused_not_panicking() {
        assert_eq!(
            split_request(Bytes::from_static(b"\x00")).unwrap_err(),
            FrameError::Truncated
        );
        assert_eq!(
            split_request(Bytes::from_static(b"\x7f\x00\x00\x00\x00\x00\x00\x00")).unwrap_err(),
            FrameError::UnknownApiKey(0x7f00)
        );
        // Known key, header claims a client id longer than the frame.
        let bad = Bytes::from_static(b"\x00\x03\x00\x01\x00\x00\x00\x01\x7f\xff");
        assert!(matches!(split_request(bad), Err(FrameError::BadHeader(_))));
    }
}
