//! Forwarding opaque requests to the active controller, over the
//! in-process router.

mod common;

use std::time::{Duration, Instant};

use common::{
    answer, bounded, config, echo, router_voters, shutdown_all, start_router_nodes, steady_config,
    wait_knows_leader, wait_leader, LIMIT,
};
use odradek_raft::network::{RaftRequest, RaftResponse};
use odradek_raft::{
    Connection, ControllerClient, ForwardError, MetadataQuorum, NodeId, QuorumConfig, Router,
    RouterTransport, TcpTransport, Transport,
};
use openraft::BasicNode;

type Node = Option<MetadataQuorum<RouterTransport>>;

async fn start_all(router: &Router, data: &std::path::Path) -> Vec<Node> {
    let nodes = start_router_nodes(router, data, steady_config).await;
    for (i, n) in nodes.iter().enumerate() {
        n.as_ref()
            .unwrap()
            .set_forward_handler(Some(echo(i as NodeId + 1)));
    }
    nodes
}

/// Every voter's `forward` reaches the leader's handler: followers over
/// the transport, the leader itself directly.
#[tokio::test]
async fn every_voter_forwards_to_the_leaders_handler() {
    let data = tempfile::tempdir().unwrap();
    let router = Router::new();
    let nodes = start_all(&router, data.path()).await;
    let leader = wait_leader(&nodes).await as NodeId + 1;
    for n in nodes.iter().flatten() {
        wait_knows_leader(n, leader).await;
        let got = n.forward(b"hello".to_vec(), LIMIT).await.unwrap();
        assert_eq!(
            got,
            answer(leader, b"hello"),
            "forwarded from {}",
            n.node_id()
        );
    }
    shutdown_all(nodes).await;
}

/// Raw requests to a follower: a `Forward` is refused with the leader's
/// identity (the handler is not called), `WhoLeads` names the leader.
#[tokio::test]
async fn a_follower_refuses_a_forward_and_names_the_leader() {
    let data = tempfile::tempdir().unwrap();
    let router = Router::new();
    let nodes = start_all(&router, data.path()).await;
    let leader = wait_leader(&nodes).await as NodeId + 1;
    let follower = leader % 3 + 1;
    wait_knows_leader(nodes[follower as usize - 1].as_ref().unwrap(), leader).await;

    let mut conn = router
        .transport(100)
        .connect(follower, &BasicNode::new(format!("node-{follower}")));
    let refused = conn
        .call(RaftRequest::Forward(b"x".to_vec()), LIMIT)
        .await
        .unwrap();
    assert_eq!(
        refused,
        RaftResponse::NotLeader {
            leader_id: Some(leader),
            leader_addr: Some(format!("node-{leader}")),
        }
    );
    let who = conn.call(RaftRequest::WhoLeads, LIMIT).await.unwrap();
    assert_eq!(
        who,
        RaftResponse::Leader {
            id: Some(leader),
            addr: Some(format!("node-{leader}")),
        }
    );
    shutdown_all(nodes).await;
}

/// A quorum of one calls its own handler: it has no listener at all.
/// Without a handler the forward fails once the timeout has passed.
#[tokio::test]
async fn a_single_voter_forwards_to_itself_without_network() {
    let data = tempfile::tempdir().unwrap();
    let q = MetadataQuorum::start(
        QuorumConfig::single(1, data.path()),
        TcpTransport::unbound(),
    )
    .await
    .unwrap();
    q.set_forward_handler(Some(echo(1)));
    assert_eq!(
        q.forward(b"a".to_vec(), LIMIT).await.unwrap(),
        answer(1, b"a")
    );

    q.set_forward_handler(None);
    let timeout = Duration::from_millis(300);
    let started = Instant::now();
    match q.forward(b"b".to_vec(), timeout).await {
        Err(ForwardError::Transport(why)) => assert!(why.contains("no forward handler"), "{why}"),
        other => panic!("forwarded without a handler: {other:?}"),
    }
    assert!(started.elapsed() >= timeout);
    q.shutdown().await;
}

/// One voter of three alone never learns of a leader: `NoLeader` after
/// the timeout, from a voter and from a client that walks the voters.
#[tokio::test]
async fn no_leader_within_the_timeout() {
    let data = tempfile::tempdir().unwrap();
    let router = Router::new();
    let q = MetadataQuorum::start(
        config(1, data.path(), &router_voters()),
        router.transport(1),
    )
    .await
    .unwrap();
    q.set_forward_handler(Some(echo(1)));
    let timeout = Duration::from_millis(500);
    let started = Instant::now();
    assert_eq!(
        q.forward(b"x".to_vec(), timeout).await,
        Err(ForwardError::NoLeader)
    );
    let took = started.elapsed();
    assert!(took >= timeout && took < timeout * 4, "{took:?}");

    let client = ControllerClient::with_transport(router.transport(100), router_voters())
        .with_retry_backoff(Duration::from_millis(20));
    assert_eq!(
        client.forward(b"x".to_vec(), timeout).await,
        Err(ForwardError::NoLeader)
    );
    q.shutdown().await;
}

/// A client that still points at a deposed leader is redirected by its
/// `NotLeader` answer to the new leader.
#[tokio::test]
async fn a_deposed_leader_redirects_the_client() {
    let data = tempfile::tempdir().unwrap();
    let router = Router::new();
    let nodes = start_all(&router, data.path()).await;
    let old = wait_leader(&nodes).await as NodeId + 1;
    let client = ControllerClient::with_transport(router.transport(100), router_voters());
    assert_eq!(
        client.forward(b"1".to_vec(), LIMIT).await.unwrap(),
        answer(old, b"1")
    );
    assert_eq!(client.last_leader(), Some((old, format!("node-{old}"))));

    let majority: Vec<NodeId> = (1..=3).filter(|&id| id != old).collect();
    router.partition(&[&[old], &majority]);
    let new = bounded("a majority leader", async {
        loop {
            for &id in &majority {
                if nodes[id as usize - 1].as_ref().unwrap().is_leader() {
                    return id;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    router.heal();
    wait_knows_leader(nodes[old as usize - 1].as_ref().unwrap(), new).await;

    // The client still remembers the old leader, which now says who leads.
    assert_eq!(client.last_leader(), Some((old, format!("node-{old}"))));
    assert_eq!(
        client.forward(b"2".to_vec(), LIMIT).await.unwrap(),
        answer(new, b"2")
    );
    assert_eq!(client.last_leader(), Some((new, format!("node-{new}"))));
    shutdown_all(nodes).await;
}

/// The forward and add-learner futures can be spawned (the broker runs
/// them on its own tasks).
#[test]
fn forward_futures_are_send() {
    fn assert_send<F: std::future::Future + Send>(_: F) {}
    let client = ControllerClient::new(router_voters());
    assert_send(client.forward(Vec::new(), LIMIT));
    let _ = |q: &MetadataQuorum<TcpTransport>| assert_send(q.forward(Vec::new(), LIMIT));
    let _ = |q: &MetadataQuorum<TcpTransport>| assert_send(q.add_learner(4, String::new()));
}
