//! A minimal Kafka client: one connection, one request at a time,
//! size-prefixed frames, `kafka_protocol`'s headers and message codecs.
//! Followers fetch with it (`odradek-broker`'s replication) and the admin
//! tools ([`crate::admin`]) ask brokers with it.

use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Frames larger than this are refused rather than allocated (Kafka's
/// `socket.receive.buffer` is not the limit; this guards against garbage).
const MAX_RESPONSE_BYTES: usize = 1 << 30;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to broker {broker} at {addr}: {source}")]
    Connect {
        broker: i32,
        addr: String,
        source: std::io::Error,
    },
    #[error("connection to broker {broker} failed: {source}")]
    Io { broker: i32, source: std::io::Error },
    #[error("broker {broker} did not answer within {timeout:?}")]
    Timeout { broker: i32, timeout: Duration },
    #[error("broker {broker} sent a malformed response: {reason}")]
    Protocol { broker: i32, reason: String },
}

pub struct BrokerClient {
    broker: i32,
    addr: String,
    stream: TcpStream,
    correlation_id: i32,
    client_id: StrBytes,
}

impl BrokerClient {
    /// Connects to broker `broker` at `host:port`.
    pub async fn connect(
        broker: i32,
        host: &str,
        port: u16,
        client_id: String,
        timeout: Duration,
    ) -> Result<BrokerClient, ClientError> {
        let addr = format!("{host}:{port}");
        let connect_error = |source| ClientError::Connect {
            broker,
            addr: addr.clone(),
            source,
        };
        let stream = match tokio::time::timeout(timeout, TcpStream::connect(&addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(connect_error(e)),
            Err(_) => {
                return Err(connect_error(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "connect timed out",
                )))
            }
        };
        stream.set_nodelay(true).map_err(connect_error)?;
        Ok(BrokerClient {
            broker,
            addr,
            stream,
            correlation_id: 0,
            client_id: StrBytes::from_string(client_id),
        })
    }

    /// `host:port` this client is connected to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends `request` at `version` and waits up to `timeout` for its
    /// response. After an error the connection is unusable (a response may
    /// still be in flight): drop it and connect again.
    pub async fn call<R: Request>(
        &mut self,
        version: i16,
        request: &R,
        timeout: Duration,
    ) -> Result<R::Response, ClientError> {
        let key = ApiKey::try_from(R::KEY).map_err(|_| self.protocol("unknown api key"))?;
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let frame = self.encode(key, version, request)?;
        let broker = self.broker;
        let exchange = async {
            self.stream
                .write_all(&frame)
                .await
                .map_err(|source| ClientError::Io { broker, source })?;
            read_frame(&mut self.stream, broker).await
        };
        let mut body = match tokio::time::timeout(timeout, exchange).await {
            Ok(r) => r?,
            Err(_) => return Err(ClientError::Timeout { broker, timeout }),
        };
        let header = ResponseHeader::decode(&mut body, key.response_header_version(version))
            .map_err(|e| self.protocol(&format!("response header: {e}")))?;
        if header.correlation_id != self.correlation_id {
            return Err(self.protocol(&format!(
                "correlation id {} answers no request (expected {})",
                header.correlation_id, self.correlation_id
            )));
        }
        R::Response::decode(&mut body, version)
            .map_err(|e| self.protocol(&format!("{key:?} v{version} response: {e}")))
    }

    fn encode<R: Request>(
        &self,
        key: ApiKey,
        version: i16,
        request: &R,
    ) -> Result<Bytes, ClientError> {
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(self.client_id.clone()));
        let mut buf = BytesMut::with_capacity(256);
        buf.put_i32(0);
        header
            .encode(&mut buf, key.request_header_version(version))
            .map_err(|e| self.protocol(&format!("encoding the request header: {e}")))?;
        request
            .encode(&mut buf, version)
            .map_err(|e| self.protocol(&format!("encoding {key:?} v{version}: {e}")))?;
        let len = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&len.to_be_bytes());
        Ok(buf.freeze())
    }

    fn protocol(&self, reason: &str) -> ClientError {
        ClientError::Protocol {
            broker: self.broker,
            reason: reason.to_string(),
        }
    }
}

async fn read_frame(stream: &mut TcpStream, broker: i32) -> Result<Bytes, ClientError> {
    let io = |source| ClientError::Io { broker, source };
    let len = stream.read_i32().await.map_err(io)?;
    let len = usize::try_from(len)
        .ok()
        .filter(|&l| l <= MAX_RESPONSE_BYTES)
        .ok_or_else(|| ClientError::Protocol {
            broker,
            reason: format!("response frame of {len} bytes"),
        })?;
    let mut body = BytesMut::zeroed(len);
    stream.read_exact(&mut body).await.map_err(io)?;
    let body = body.freeze();
    debug_assert_eq!(body.remaining(), len);
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};
    use tokio::net::TcpListener;

    /// A one-shot server that checks the request frame and answers.
    #[tokio::test]
    async fn request_and_response_round_trip() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let len = s.read_i32().await.unwrap() as usize;
            let mut body = BytesMut::zeroed(len);
            s.read_exact(&mut body).await.unwrap();
            let mut body = body.freeze();
            let header = RequestHeader::decode(&mut body, 2).unwrap();
            assert_eq!(header.request_api_key, ApiKey::ApiVersions as i16);
            assert_eq!(header.client_id.as_deref(), Some("broker-2-fetcher"));
            let mut out = BytesMut::new();
            out.put_i32(0);
            ResponseHeader::default()
                .with_correlation_id(header.correlation_id)
                .encode(&mut out, 0)
                .unwrap();
            ApiVersionsResponse::default()
                .with_error_code(0)
                .with_throttle_time_ms(7)
                .encode(&mut out, 3)
                .unwrap();
            let n = (out.len() - 4) as i32;
            out[..4].copy_from_slice(&n.to_be_bytes());
            s.write_all(&out).await.unwrap();
        });
        let mut client = BrokerClient::connect(
            1,
            "127.0.0.1",
            port,
            "broker-2-fetcher".into(),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        let response = client
            .call(3, &ApiVersionsRequest::default(), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(response.throttle_time_ms, 7);
        server.await.unwrap();
        // The server hung up: the next call fails instead of hanging.
        assert!(client
            .call(3, &ApiVersionsRequest::default(), Duration::from_secs(5))
            .await
            .is_err());
    }
}
