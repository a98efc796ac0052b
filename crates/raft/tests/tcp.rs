//! The TCP transport carries elections, replication and failover between
//! three voters on 127.0.0.1 ephemeral ports.

mod common;

use std::collections::BTreeMap;

use common::{config, topic, wait_image, wait_leader};
use odradek_raft::{MetadataQuorum, NodeId, ProposeError, TcpTransport};

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
    for n in nodes.into_iter().flatten() {
        n.shutdown().await;
    }
}
