//! The TCP transport carries elections, replication, failover and
//! forwarded requests between three voters on 127.0.0.1 ephemeral ports.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::{
    answer, bounded, config, shutdown_all, start_tcp, tcp_voters, topic, wait_image,
    wait_knows_leader, wait_leader, LIMIT,
};
use odradek_raft::network::{RaftRequest, RaftResponse};
use odradek_raft::{
    Connection, ControllerClient, MetadataQuorum, NodeId, ProposeError, TcpTransport, Transport,
};
use openraft::BasicNode;
use tokio::sync::Notify;

#[tokio::test]
async fn three_voters_over_tcp_elect_replicate_and_fail_over() {
    let data = tempfile::tempdir().unwrap();
    let transports: Vec<TcpTransport> = (0..3)
        .map(|_| TcpTransport::bind("127.0.0.1:0").unwrap())
        .collect();
    let voters: BTreeMap<NodeId, String> = transports
        .iter()
        .enumerate()
        .map(|(i, t)| (i as NodeId + 1, t.local_addr().unwrap().to_string()))
        .collect();
    let mut nodes = Vec::new();
    for (i, t) in transports.into_iter().enumerate() {
        let c = config(i as NodeId + 1, data.path(), &voters);
        nodes.push(Some(MetadataQuorum::start(c, t).await.unwrap()));
    }

    let leader = wait_leader(&nodes).await;
    for name in ["a", "b"] {
        nodes[leader]
            .as_ref()
            .unwrap()
            .propose(topic(name))
            .await
            .unwrap();
    }
    for n in nodes.iter().flatten() {
        wait_image(&mut n.image(), "b everywhere", |i| i.topic("b").is_some()).await;
    }
    let follower = nodes[(leader + 1) % 3].as_ref().unwrap();
    match follower.propose(topic("x")).await {
        Err(ProposeError::NotLeader { leader_addr, .. }) => {
            assert_eq!(leader_addr.as_ref(), voters.get(&(leader as NodeId + 1)));
        }
        other => panic!("a follower accepted a proposal: {other:?}"),
    }

    nodes[leader].take().unwrap().shutdown().await;
    let new = wait_leader(&nodes).await;
    nodes[new]
        .as_ref()
        .unwrap()
        .propose(topic("c"))
        .await
        .unwrap();
    for n in nodes.iter().flatten() {
        let image = wait_image(&mut n.image(), "c", |i| i.topic("c").is_some()).await;
        assert!(image.topic("a").is_some() && image.topic("b").is_some());
    }
    shutdown_all(nodes).await;
}

/// A raw connection to `addr`, as any node would open.
fn connect(id: NodeId, addr: &str) -> impl Connection {
    TcpTransport::unbound().connect(id, &BasicNode::new(addr))
}

/// A follower voter forwards to the leader; a follower refuses a raw
/// forward and names the leader; a client that knows only a follower
/// learns the leader from it and forwards there.
#[tokio::test]
async fn forwarding_over_tcp_from_a_follower_and_from_a_client() {
    let data = tempfile::tempdir().unwrap();
    let (transports, voters) = tcp_voters(3);
    let nodes = start_tcp(data.path(), transports, &voters).await;
    let leader = wait_leader(&nodes).await as NodeId + 1;
    let follower = leader % 3 + 1;
    let follower_node = nodes[follower as usize - 1].as_ref().unwrap();
    wait_knows_leader(follower_node, leader).await;
    let leader_addr = voters[&leader].clone();

    let got = follower_node.forward(b"from-voter".to_vec(), LIMIT).await;
    assert_eq!(got.unwrap(), answer(leader, b"from-voter"));

    let mut conn = connect(follower, &voters[&follower]);
    let refused = conn.call(RaftRequest::Forward(b"x".to_vec()), LIMIT).await;
    assert_eq!(
        refused.unwrap(),
        RaftResponse::NotLeader {
            leader_id: Some(leader),
            leader_addr: Some(leader_addr.clone()),
        }
    );
    let who = conn.call(RaftRequest::WhoLeads, LIMIT).await.unwrap();
    assert_eq!(
        who,
        RaftResponse::Leader {
            id: Some(leader),
            addr: Some(leader_addr.clone()),
        }
    );

    // The client knows only the follower: it must ask it who leads.
    let client = ControllerClient::new(BTreeMap::from([(follower, voters[&follower].clone())]));
    let got = client.forward(b"from-client".to_vec(), LIMIT).await;
    assert_eq!(got.unwrap(), answer(leader, b"from-client"));
    assert_eq!(client.last_leader(), Some((leader, leader_addr)));
    shutdown_all(nodes).await;
}

/// The leader dies while handling a forwarded request: the client sees the
/// connection close, finds the new leader and resends there.
#[tokio::test]
async fn a_client_finds_the_new_leader_when_the_leader_dies_mid_request() {
    let data = tempfile::tempdir().unwrap();
    let (transports, voters) = tcp_voters(3);
    let mut nodes = start_tcp(data.path(), transports, &voters).await;
    let old = wait_leader(&nodes).await;
    let old_id = old as NodeId + 1;
    let entered = Arc::new(Notify::new());
    let signal = entered.clone();
    nodes[old]
        .as_ref()
        .unwrap()
        .set_forward_handler(Some(Arc::new(move |payload: Vec<u8>| {
            let signal = signal.clone();
            async move {
                if payload == b"hang" {
                    signal.notify_one();
                    std::future::pending::<()>().await;
                }
                answer(old_id, &payload)
            }
        })));
    let client = Arc::new(ControllerClient::new(voters.clone()));
    let got = client.forward(b"warm".to_vec(), LIMIT).await.unwrap();
    assert_eq!(got, answer(old_id, b"warm"));

    let pending = tokio::spawn({
        let client = client.clone();
        async move { client.forward(b"hang".to_vec(), LIMIT).await }
    });
    bounded("the leader's handler", entered.notified()).await;
    nodes[old].take().unwrap().shutdown().await;

    let got = bounded("the resent request", pending)
        .await
        .unwrap()
        .unwrap();
    let new = wait_leader(&nodes).await as NodeId + 1;
    assert_ne!(new, old_id);
    assert_eq!(got, answer(new, b"hang"));
    assert_eq!(client.last_leader(), Some((new, voters[&new].clone())));
    // The surviving follower's own forward also reaches the new leader.
    let other = nodes.iter().flatten().find(|n| n.node_id() != new).unwrap();
    wait_knows_leader(other, new).await;
    let got = other.forward(b"after".to_vec(), LIMIT).await.unwrap();
    assert_eq!(got, answer(new, b"after"));
    shutdown_all(nodes).await;
}

/// A forwarded request the handler has not answered yet holds up neither
/// other forwards nor replication nor other requests to the leader.
#[tokio::test]
async fn a_slow_forward_holds_up_nothing_else() {
    let data = tempfile::tempdir().unwrap();
    let (transports, voters) = tcp_voters(3);
    let nodes = start_tcp(data.path(), transports, &voters).await;
    let leader = wait_leader(&nodes).await;
    let leader_id = leader as NodeId + 1;
    let (entered, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let (signal, wait) = (entered.clone(), release.clone());
    let leader_node = nodes[leader].as_ref().unwrap();
    leader_node.set_forward_handler(Some(Arc::new(move |payload: Vec<u8>| {
        let (signal, wait) = (signal.clone(), wait.clone());
        async move {
            if payload == b"slow" {
                signal.notify_one();
                wait.notified().await;
            }
            answer(leader_id, &payload)
        }
    })));
    let client = Arc::new(ControllerClient::new(voters.clone()));
    let slow = tokio::spawn({
        let client = client.clone();
        async move { client.forward(b"slow".to_vec(), LIMIT).await }
    });
    bounded("the slow handler", entered.notified()).await;

    let got = client.forward(b"quick".to_vec(), LIMIT).await.unwrap();
    assert_eq!(got, answer(leader_id, b"quick"));
    let follower = nodes[(leader + 1) % 3].as_ref().unwrap();
    wait_knows_leader(follower, leader_id).await;
    let got = follower.forward(b"quick2".to_vec(), LIMIT).await.unwrap();
    assert_eq!(got, answer(leader_id, b"quick2"));
    leader_node.propose(topic("during")).await.unwrap();
    for n in nodes.iter().flatten() {
        wait_image(&mut n.image(), "during", |i| i.topic("during").is_some()).await;
    }
    let mut conn = connect(leader_id, &voters[&leader_id]);
    let who = conn.call(RaftRequest::WhoLeads, LIMIT).await.unwrap();
    assert!(matches!(who, RaftResponse::Leader { id: Some(id), .. } if id == leader_id));

    release.notify_one();
    let got = bounded("the slow forward", slow).await.unwrap().unwrap();
    assert_eq!(got, answer(leader_id, b"slow"));
    shutdown_all(nodes).await;
}
