//! An in-process transport: nodes in one process call each other's
//! [`Endpoint`] directly. Links can be cut to simulate partitions: a request over
//! a cut link is never delivered, and a response over a cut link is lost
//! after the target has acted on the request (as on a real network).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::BasicNode;

use super::{Connection, Endpoint, RaftRequest, RaftResponse, Transport, TransportError};
use crate::NodeId;

#[derive(Default)]
struct Links {
    nodes: HashMap<NodeId, Endpoint>,
    /// Directed links that drop messages.
    cut: HashSet<(NodeId, NodeId)>,
}

/// The shared switchboard; clone it into every node's [`RouterTransport`].
#[derive(Clone, Default)]
pub struct Router {
    links: Arc<Mutex<Links>>,
}

impl Router {
    pub fn new() -> Router {
        Router::default()
    }

    /// The transport for node `id`.
    pub fn transport(&self, id: NodeId) -> RouterTransport {
        RouterTransport {
            from: id,
            router: self.clone(),
        }
    }

    fn links(&self) -> std::sync::MutexGuard<'_, Links> {
        self.links.lock().expect("router lock poisoned")
    }

    /// Cuts every link between nodes of different groups, both ways.
    pub fn partition(&self, groups: &[&[NodeId]]) {
        let mut links = self.links();
        for (i, a) in groups.iter().enumerate() {
            for b in &groups[i + 1..] {
                for &x in a.iter() {
                    for &y in b.iter() {
                        links.cut.insert((x, y));
                        links.cut.insert((y, x));
                    }
                }
            }
        }
    }

    /// Restores every link.
    pub fn heal(&self) {
        self.links().cut.clear();
    }

    fn is_cut(&self, from: NodeId, to: NodeId) -> bool {
        self.links().cut.contains(&(from, to))
    }
}

#[derive(Clone)]
pub struct RouterTransport {
    from: NodeId,
    router: Router,
}

/// Keeps node `id` reachable; dropping it removes the node from the
/// router, as if its process died.
pub struct RouterServing {
    id: NodeId,
    router: Router,
}

impl Drop for RouterServing {
    fn drop(&mut self) {
        self.router.links().nodes.remove(&self.id);
    }
}

impl Transport for RouterTransport {
    type Conn = RouterConn;
    type Serving = RouterServing;

    fn connect(&self, target: NodeId, _node: &BasicNode) -> RouterConn {
        RouterConn {
            from: self.from,
            to: target,
            router: self.router.clone(),
        }
    }

    fn serve(&self, endpoint: Endpoint) -> std::io::Result<RouterServing> {
        let id = endpoint.id();
        self.router.links().nodes.insert(id, endpoint);
        Ok(RouterServing {
            id,
            router: self.router.clone(),
        })
    }
}

pub struct RouterConn {
    from: NodeId,
    to: NodeId,
    router: Router,
}

impl Connection for RouterConn {
    async fn call(
        &mut self,
        request: RaftRequest,
        timeout: Duration,
    ) -> Result<RaftResponse, TransportError> {
        let unreachable = TransportError::Unreachable(self.to);
        if self.router.is_cut(self.from, self.to) {
            return Err(unreachable);
        }
        let target = self.router.links().nodes.get(&self.to).cloned();
        let Some(endpoint) = target else {
            return Err(unreachable);
        };
        let response = tokio::time::timeout(timeout, endpoint.handle(request))
            .await
            .map_err(|_| TransportError::Timeout(timeout))?;
        if self.router.is_cut(self.to, self.from) {
            return Err(unreachable);
        }
        Ok(response)
    }
}
