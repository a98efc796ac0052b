//! The cluster half of the broker config: roles, the controller quorum,
//! which listener is for whom, liveness and replication timing. Kafka's
//! names throughout; see docs/configuration.md.

use std::collections::BTreeMap;

use crate::config::{ConfigError, Listener};

/// What this process does (`process.roles`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    pub broker: bool,
    pub controller: bool,
}

#[derive(Debug, Clone)]
pub struct ClusterConfig {
    pub roles: Roles,
    /// `controller.quorum.voters` as `node id → host:port`. Empty means a
    /// quorum of one: this node alone, with no controller network.
    pub voters: BTreeMap<i32, String>,
    /// `controller.listener.names`: listeners that carry the controller
    /// quorum's traffic, never clients'.
    pub controller_listener_names: Vec<String>,
    pub broker_heartbeat_interval_ms: u64,
    /// `broker.session.timeout.ms`: a broker silent this long is fenced
    /// and its leaderships move.
    pub broker_session_timeout_ms: u64,
    /// `controller.quorum.election.timeout.ms`: a voter that hears no
    /// leader for between this and twice this starts an election.
    pub election_timeout_ms: u64,
    pub replica_lag_time_max_ms: i64,
    pub replica_fetch_max_bytes: i32,
    pub replica_fetch_response_max_bytes: i32,
    pub replica_fetch_wait_max_ms: i32,
    pub replica_fetch_min_bytes: i32,
    pub replica_fetch_backoff_ms: u64,
    pub controlled_shutdown_enable: bool,
}

/// Names and defaults. The liveness defaults are tighter than Kafka's
/// (2000/9000 ms) so a dead leader is replaced within about two seconds;
/// raise them on a loaded or distant cluster.
pub const CLUSTER_DEFAULTS: &[(&str, &str)] = &[
    ("controller.quorum.voters", ""),
    ("controller.listener.names", "CONTROLLER"),
    ("broker.heartbeat.interval.ms", "250"),
    ("broker.session.timeout.ms", "1500"),
    ("controller.quorum.election.timeout.ms", "500"),
    ("replica.lag.time.max.ms", "30000"),
    ("replica.fetch.max.bytes", "1048576"),
    ("replica.fetch.response.max.bytes", "10485760"),
    ("replica.fetch.wait.max.ms", "500"),
    ("replica.fetch.min.bytes", "1"),
    ("replica.fetch.backoff.ms", "1000"),
    ("controlled.shutdown.enable", "true"),
];

pub fn parse_roles(value: &str) -> Result<Roles, String> {
    let mut roles = Roles {
        broker: false,
        controller: false,
    };
    for role in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match role {
            "broker" => roles.broker = true,
            "controller" => roles.controller = true,
            other => {
                return Err(format!(
                    "unknown role '{other}'; use broker, controller or both"
                ))
            }
        }
    }
    if !roles.broker && !roles.controller {
        return Err("at least one of broker, controller is required".into());
    }
    Ok(roles)
}

/// `1@host:9093,2@host:9095`.
pub fn parse_voters(value: &str) -> Result<BTreeMap<i32, String>, String> {
    let mut voters = BTreeMap::new();
    for entry in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (id, addr) = entry
            .split_once('@')
            .ok_or_else(|| format!("'{entry}' is not id@host:port"))?;
        let id: i32 = id
            .parse()
            .ok()
            .filter(|id| *id >= 0)
            .ok_or_else(|| format!("'{id}' in '{entry}' is not a node id"))?;
        let (_, port) = addr
            .rsplit_once(':')
            .ok_or_else(|| format!("'{entry}' has no port"))?;
        port.parse::<u16>()
            .map_err(|_| format!("'{port}' in '{entry}' is not a port number"))?;
        if voters.insert(id, addr.to_string()).is_some() {
            return Err(format!("node {id} is listed twice"));
        }
    }
    Ok(voters)
}

impl ClusterConfig {
    /// Checks that roles, voters and listeners fit together, naming what
    /// to change when they do not.
    pub fn validate(&self, node_id: i32, listeners: &[Listener]) -> Result<(), ConfigError> {
        let err = |name: &str, value: String, reason: String| ConfigError::Invalid {
            name: name.into(),
            value,
            reason,
        };
        let voters_text = || {
            self.voters
                .iter()
                .map(|(id, a)| format!("{id}@{a}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        let has_controller_listener = listeners
            .iter()
            .any(|l| self.controller_listener_names.contains(&l.name));
        let has_client_listener = listeners
            .iter()
            .any(|l| !self.controller_listener_names.contains(&l.name));
        if self.roles.broker && !has_client_listener {
            return Err(err(
                "listeners",
                String::new(),
                "a broker needs a listener for clients (e.g. PLAINTEXT://127.0.0.1:9092)".into(),
            ));
        }
        if self.voters.is_empty() {
            if !self.roles.controller {
                return Err(err(
                    "controller.quorum.voters",
                    String::new(),
                    "a broker-only node needs the controllers: set controller.quorum.voters=id@host:port,..."
                        .into(),
                ));
            }
            return Ok(());
        }
        match (self.roles.controller, self.voters.contains_key(&node_id)) {
            (true, false) => {
                return Err(err(
                    "controller.quorum.voters",
                    voters_text(),
                    format!("this node (node.id={node_id}) has the controller role but is not a voter"),
                ))
            }
            (false, true) => {
                return Err(err(
                    "process.roles",
                    "broker".into(),
                    format!("node.id={node_id} is a voter in controller.quorum.voters, so it needs the controller role"),
                ))
            }
            _ => {}
        }
        if self.roles.controller && !has_controller_listener {
            return Err(err(
                "listeners",
                String::new(),
                format!(
                    "a controller in a multi-node quorum needs a {} listener, e.g. {}://127.0.0.1:9093",
                    self.controller_listener_names[0], self.controller_listener_names[0]
                ),
            ));
        }
        Ok(())
    }

    /// The listener clients (and follower brokers) connect to.
    pub fn client_listener<'a>(&self, listeners: &'a [Listener]) -> Option<&'a Listener> {
        listeners
            .iter()
            .find(|l| !self.controller_listener_names.contains(&l.name))
    }

    /// The listener the controller quorum binds, if this node has one.
    pub fn controller_listener<'a>(&self, listeners: &'a [Listener]) -> Option<&'a Listener> {
        listeners
            .iter()
            .find(|l| self.controller_listener_names.contains(&l.name))
    }

    /// A single node: one voter (this one) and no peers.
    pub fn is_single_node(&self) -> bool {
        self.voters.len() <= 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_and_voters_parse() {
        assert_eq!(
            parse_roles("controller, broker").unwrap(),
            Roles {
                broker: true,
                controller: true
            }
        );
        assert!(parse_roles("zookeeper").is_err());
        assert!(parse_roles("").is_err());
        let v = parse_voters("1@127.0.0.1:9093, 2@localhost:9095").unwrap();
        assert_eq!(v[&2], "localhost:9095");
        assert!(parse_voters("1@h").is_err());
        assert!(parse_voters("x@h:1").is_err());
        assert!(parse_voters("1@h:1,1@h:2").is_err());
    }
}
