//! Broker connections: one to a bootstrap server, one per known node id.
//! Each first asks ApiVersions, so that each request can use the highest
//! version both sides speak.

use std::collections::HashMap;
use std::ops::RangeInclusive;

use kafka_protocol::messages::{ApiKey, ApiVersionsRequest};
use kafka_protocol::protocol::{Request, StrBytes};

use super::{error_name, Admin, AdminError, CLIENT_ID};
use crate::connection::{BrokerClient, ClientError};

// Versions this client speaks, per API. Each request uses the highest one
// the broker also serves (ApiVersions).
const API_VERSIONS_VERSION: i16 = 3;
pub(super) const FIND_COORDINATOR: RangeInclusive<i16> = 1..=6; // v4+: batched keys
pub(super) const CONSUMER_GROUP_DESCRIBE: RangeInclusive<i16> = 0..=1; // optional (KIP-848)
pub(super) const DESCRIBE_GROUPS: RangeInclusive<i16> = 0..=6;
pub(super) const OFFSET_FETCH: RangeInclusive<i16> = 8..=9; // the per-group layout
pub(super) const METADATA: RangeInclusive<i16> = 4..=12; // v4+: no auto-creation
pub(super) const LIST_OFFSETS: RangeInclusive<i16> = 2..=10; // v2+: isolation level

/// One broker connection and the API versions that broker serves.
pub(super) struct Conn {
    node: i32,
    client: BrokerClient,
    apis: HashMap<i16, (i16, i16)>,
}

impl Conn {
    /// The highest version in `ours` the broker serves too.
    pub(super) fn version(&self, key: ApiKey, ours: &RangeInclusive<i16>) -> Option<i16> {
        pick_version(self.apis.get(&(key as i16)).copied(), ours)
    }

    pub(super) fn require(
        &self,
        key: ApiKey,
        name: &'static str,
        ours: &RangeInclusive<i16>,
    ) -> Result<i16, AdminError> {
        self.version(key, ours)
            .ok_or_else(|| AdminError::Unsupported {
                broker: self.node,
                api: name,
                ours: format!("{}-{}", ours.start(), ours.end()),
                theirs: match self.apis.get(&(key as i16)) {
                    Some((min, max)) => format!("{min}-{max}"),
                    None => "none".to_owned(),
                },
            })
    }
}

/// The highest version in `ours` within `theirs` (the broker's min, max),
/// if any.
fn pick_version(theirs: Option<(i16, i16)>, ours: &RangeInclusive<i16>) -> Option<i16> {
    let (min, max) = theirs?;
    let v = (*ours.end()).min(max);
    (v >= min && v >= *ours.start()).then_some(v)
}

impl Admin {
    async fn open(&self, node: i32, host: &str, port: u16) -> Result<Conn, AdminError> {
        let what = format!("connecting to {host}:{port}");
        let host = bracket_ipv6(host);
        let mut client =
            BrokerClient::connect(node, &host, port, CLIENT_ID.into(), self.left(&what)?).await?;
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("odradek-client"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let response = client
            .call(API_VERSIONS_VERSION, &request, self.left(&what)?)
            .await?;
        if response.error_code != 0 {
            return Err(AdminError::Kafka {
                api: "ApiVersions",
                subject: format!("broker {host}:{port}"),
                error: error_name(response.error_code, None),
            });
        }
        let apis = response
            .api_keys
            .iter()
            .map(|a| (a.api_key, (a.min_version, a.max_version)))
            .collect();
        Ok(Conn { node, client, apis })
    }

    /// The bootstrap connection, opened to the first server that answers.
    pub(super) async fn any(&mut self) -> Result<&mut Conn, AdminError> {
        if self.any.is_none() {
            let mut failures = Vec::new();
            for (host, port) in self.servers.clone() {
                match self.open(-1, &host, port).await {
                    Ok(conn) => {
                        self.any = Some(conn);
                        break;
                    }
                    Err(AdminError::Connection(e)) => {
                        failures.push(format!("{host}:{port}: {}", without_broker_id(&e)));
                    }
                    Err(e) => return Err(e),
                }
            }
            if self.any.is_none() {
                return Err(AdminError::Unreachable(failures.join("; ")));
            }
        }
        Ok(self.any.as_mut().expect("connected above"))
    }

    /// The connection to broker `node`, (re)opened if there is none or its
    /// address changed.
    pub(super) async fn node(&mut self, node: i32) -> Result<&mut Conn, AdminError> {
        let (host, port) = self.addrs.get(&node).cloned().ok_or_else(|| {
            AdminError::Connection(ClientError::Protocol {
                broker: node,
                reason: "no address known for this broker".into(),
            })
        })?;
        let addr = format!("{}:{port}", bracket_ipv6(&host));
        if self
            .nodes
            .get(&node)
            .is_some_and(|c| c.client.addr() != addr)
        {
            self.nodes.remove(&node);
        }
        if !self.nodes.contains_key(&node) {
            let conn = self.open(node, &host, port).await?;
            self.nodes.insert(node, conn);
        }
        Ok(self.nodes.get_mut(&node).expect("inserted above"))
    }

    /// Sends `request` on the bootstrap connection; drops the connection
    /// after an error.
    pub(super) async fn call_any<R: Request>(
        &mut self,
        version: i16,
        request: &R,
        what: &str,
    ) -> Result<R::Response, AdminError> {
        let left = self.left(what)?;
        let result = self.any().await?.client.call(version, request, left).await;
        if result.is_err() {
            self.any = None;
        }
        Ok(result?)
    }

    pub(super) async fn call_node<R: Request>(
        &mut self,
        node: i32,
        version: i16,
        request: &R,
        what: &str,
    ) -> Result<R::Response, AdminError> {
        let left = self.left(what)?;
        let result = self
            .node(node)
            .await?
            .client
            .call(version, request, left)
            .await;
        if result.is_err() {
            self.nodes.remove(&node);
        }
        Ok(result?)
    }
}

/// A connection error to a bootstrap server, whose node id is unknown.
fn without_broker_id(e: &ClientError) -> String {
    match e {
        ClientError::Connect { source, .. } => source.to_string(),
        ClientError::Io { source, .. } => format!("connection failed: {source}"),
        ClientError::Timeout { timeout, .. } => format!("no answer within {timeout:?}"),
        ClientError::Protocol { reason, .. } => format!("malformed response: {reason}"),
    }
}

/// `::1` → `[::1]`, so that `host:port` parses.
fn bracket_ipv6(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_the_highest_both_sides_speak() {
        assert_eq!(pick_version(Some((0, 13)), &METADATA), Some(12));
        assert_eq!(pick_version(Some((0, 7)), &OFFSET_FETCH), None);
        assert_eq!(pick_version(Some((1, 10)), &LIST_OFFSETS), Some(10));
        assert_eq!(pick_version(Some((0, 4)), &LIST_OFFSETS), Some(4));
        assert_eq!(pick_version(Some((9, 12)), &OFFSET_FETCH), Some(9));
        assert_eq!(pick_version(Some((10, 12)), &OFFSET_FETCH), None);
        assert_eq!(pick_version(None, &CONSUMER_GROUP_DESCRIBE), None);
    }

    #[test]
    fn ipv6_hosts_get_brackets() {
        assert_eq!(bracket_ipv6("::1"), "[::1]");
        assert_eq!(bracket_ipv6("[::1]"), "[::1]");
        assert_eq!(bracket_ipv6("broker-1"), "broker-1");
    }
}
