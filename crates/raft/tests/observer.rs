//! Observers: nodes that are not voters receive the committed metadata
//! log as openraft learners once the leader adds them, over TCP.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{
    answer, bounded, shutdown_all, start_tcp, steady_config, tcp_voters, topic, wait_image,
    wait_leader, LIMIT,
};
use odradek_raft::{MetadataQuorum, NodeId, ProposeError, StartError, TcpTransport};
use openraft::ServerState;

/// Binds `addr` again once the previous listener on it is gone.
async fn rebind(addr: &str) -> TcpTransport {
    bounded("the observer's port", async {
        loop {
            match TcpTransport::bind(addr) {
                Ok(t) => return t,
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    })
    .await
}

#[tokio::test]
async fn an_added_observer_receives_committed_images_and_follows_after_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let (mut transports, mut all) = tcp_voters(4);
    let observer_transport = transports.pop().unwrap();
    let observer_addr = all.remove(&4).unwrap();
    let voters = all;
    let nodes = start_tcp(data.path(), transports, &voters).await;
    let leader = wait_leader(&nodes).await;
    let leader_id = leader as NodeId + 1;
    let leader_node = nodes[leader].as_ref().unwrap();
    // Enough entries that the leader has snapshotted and purged its log:
    // the observer starts from a snapshot.
    for i in 0..10 {
        leader_node.propose(topic(&format!("t{i}"))).await.unwrap();
    }

    let voter_config = steady_config(1, data.path(), &voters);
    assert!(matches!(
        MetadataQuorum::start_observer(voter_config, TcpTransport::unbound()).await,
        Err(StartError::Config(_))
    ));
    let observer_config = steady_config(4, data.path(), &voters);
    let observer = MetadataQuorum::start_observer(observer_config.clone(), observer_transport)
        .await
        .unwrap();
    // Not added yet: it knows no leader, but can forward by asking the
    // voters (a broker-only node registers this way).
    assert_eq!(observer.leader(), None);
    let got = observer.forward(b"register".to_vec(), LIMIT).await.unwrap();
    assert_eq!(got, answer(leader_id, b"register"));

    // Only the leader adds observers.
    let follower = nodes[(leader + 1) % 3].as_ref().unwrap();
    assert!(matches!(
        follower.add_learner(4, observer_addr.clone()).await,
        Err(ProposeError::NotLeader { leader_id: Some(l), .. }) if l == leader_id
    ));
    leader_node
        .add_learner(4, observer_addr.clone())
        .await
        .unwrap();
    // Adding it again, or adding a voter, changes nothing.
    let membership_before = leader_node.metrics().borrow().membership_config.clone();
    leader_node
        .add_learner(4, observer_addr.clone())
        .await
        .unwrap();
    leader_node
        .add_learner(leader_id, "elsewhere:1".into())
        .await
        .unwrap();
    assert_eq!(
        leader_node.metrics().borrow().membership_config,
        membership_before
    );
    assert!(matches!(
        follower.add_learner(4, observer_addr.clone()).await,
        Err(ProposeError::NotLeader { .. })
    ));
    let membership = membership_before.membership().clone();
    assert_eq!(membership.learner_ids().collect::<Vec<_>>(), vec![4]);
    assert_eq!(
        membership.voter_ids().collect::<Vec<_>>(),
        voters.keys().copied().collect::<Vec<_>>()
    );

    let mut image = observer.image();
    wait_image(&mut image, "t9 on the observer", |i| {
        i.topic("t9").is_some()
    })
    .await;
    leader_node.propose(topic("t10")).await.unwrap();
    wait_image(&mut image, "t10 on the observer", |i| {
        i.topic("t10").is_some()
    })
    .await;
    assert_eq!(*image.borrow(), leader_node.image().borrow().clone());
    let observed = observer.metrics().borrow().clone();
    assert_eq!(observed.state, ServerState::Learner);
    assert_eq!(observed.current_leader, Some(leader_id));
    assert!(observed.snapshot.is_some(), "caught up without a snapshot");
    assert!(!observer.is_leader());
    assert!(matches!(
        observer.propose(topic("x")).await,
        Err(ProposeError::NotLeader { leader_id: Some(l), .. }) if l == leader_id
    ));
    // Now it follows: forwarding goes by its metrics.
    let got = observer
        .forward(b"heartbeat".to_vec(), LIMIT)
        .await
        .unwrap();
    assert_eq!(got, answer(leader_id, b"heartbeat"));

    // Down, the observer holds nothing up; restarted, it follows again
    // without being added again.
    observer.shutdown().await;
    leader_node.propose(topic("t11")).await.unwrap();
    for n in nodes.iter().flatten() {
        wait_image(&mut n.image(), "t11", |i| i.topic("t11").is_some()).await;
    }
    let observer = MetadataQuorum::start_observer(observer_config, rebind(&observer_addr).await)
        .await
        .unwrap();
    let image = wait_image(&mut observer.image(), "t11 after restart", |i| {
        i.topic("t11").is_some()
    })
    .await;
    assert!(image.topic("t0").is_some());
    observer.shutdown().await;
    shutdown_all(nodes).await;
}

/// A learner that comes back at another address is moved there.
#[tokio::test]
async fn re_adding_an_observer_at_a_new_address_moves_it() {
    let data = tempfile::tempdir().unwrap();
    let (mut transports, mut all) = tcp_voters(4);
    let first = transports.pop().unwrap();
    let first_addr = all.remove(&4).unwrap();
    let voters: BTreeMap<NodeId, String> = all;
    let nodes = start_tcp(data.path(), transports, &voters).await;
    let leader_node = nodes[wait_leader(&nodes).await].as_ref().unwrap();
    let config = steady_config(4, data.path(), &voters);

    let observer = MetadataQuorum::start_observer(config.clone(), first)
        .await
        .unwrap();
    leader_node.add_learner(4, first_addr).await.unwrap();
    leader_node.propose(topic("a")).await.unwrap();
    wait_image(&mut observer.image(), "a", |i| i.topic("a").is_some()).await;
    observer.shutdown().await;

    let second = TcpTransport::bind("127.0.0.1:0").unwrap();
    let second_addr = second.local_addr().unwrap().to_string();
    let observer = MetadataQuorum::start_observer(config, second)
        .await
        .unwrap();
    leader_node
        .add_learner(4, second_addr.clone())
        .await
        .unwrap();
    let node = leader_node
        .metrics()
        .borrow()
        .membership_config
        .membership()
        .get_node(&4)
        .cloned();
    assert_eq!(node.map(|n| n.addr), Some(second_addr));
    leader_node.propose(topic("b")).await.unwrap();
    wait_image(&mut observer.image(), "b", |i| i.topic("b").is_some()).await;
    observer.shutdown().await;
    shutdown_all(nodes).await;
}
