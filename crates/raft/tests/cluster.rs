//! The metadata quorum end to end, over the in-process router.

mod common;

use std::time::Duration;

use common::{
    bounded, config, shutdown_all, start_router_node, start_router_nodes, topic, wait_image,
    wait_leader,
};
use odradek_raft::{
    MetadataQuorum, NodeId, ProposeError, QuorumConfig, Router, RouterTransport, TcpTransport,
};

type Node = Option<MetadataQuorum<RouterTransport>>;

async fn start(
    router: &Router,
    data: &std::path::Path,
    id: NodeId,
) -> MetadataQuorum<RouterTransport> {
    start_router_node(router, data, id, config).await
}

async fn start_all(router: &Router, data: &std::path::Path) -> Vec<Node> {
    start_router_nodes(router, data, config).await
}

async fn wait_all_have(nodes: &mut [Node], name: &str) {
    for n in nodes.iter().flatten() {
        wait_image(&mut n.image(), name, |i| i.topic(name).is_some()).await;
    }
}

/// A quorum of one: no peers, no network; this is how a single broker runs.
#[tokio::test]
async fn single_voter_commits_and_replays_after_restart() {
    let data = tempfile::tempdir().unwrap();
    let q = MetadataQuorum::start(
        QuorumConfig::single(1, data.path()),
        TcpTransport::unbound(),
    )
    .await
    .unwrap();
    assert_eq!(
        bounded("leader", q.wait_for_leader(common::LIMIT)).await,
        Some(1)
    );
    let first = q.propose(topic("a")).await.unwrap();
    let second = q.propose(topic("b")).await.unwrap();
    assert!(second.index > first.index);
    // The response carries the image right after the command.
    assert!(first.image.topic("a").is_some() && first.image.topic("b").is_none());
    assert!(q.image().borrow().topic("b").is_some());
    q.shutdown().await;

    let q = MetadataQuorum::start(
        QuorumConfig::single(1, data.path()),
        TcpTransport::unbound(),
    )
    .await
    .unwrap();
    let image = wait_image(&mut q.image(), "replay", |i| i.topic("b").is_some()).await;
    assert!(image.topic("a").is_some());
    q.shutdown().await;
}

/// A quorum of one does not wait for an election timeout (500 ms to 1 s
/// by default): it leads and commits within milliseconds of `start`, on
/// its first start, after a restart, and after a crash in the middle of a
/// campaign (an uncommitted vote for itself, from which it restarts as a
/// follower).
#[tokio::test]
async fn single_voter_leads_and_commits_within_milliseconds_of_start() {
    let data = tempfile::tempdir().unwrap();
    for round in ["first-start", "restart", "restart-as-candidate"] {
        if round == "restart-as-candidate" {
            let dir = data.path().join(odradek_raft::METADATA_DIR);
            let mut log = odradek_raft::LogStore::open(&dir).unwrap();
            let vote = openraft::Vote::new(50, 1);
            openraft::storage::RaftLogStorage::save_vote(&mut log, &vote)
                .await
                .unwrap();
        }
        let started = std::time::Instant::now();
        let q = MetadataQuorum::start(
            QuorumConfig::single(1, data.path()),
            TcpTransport::unbound(),
        )
        .await
        .unwrap();
        assert_eq!(q.wait_for_leader(common::LIMIT).await, Some(1));
        let leading = started.elapsed();
        q.propose(topic(round)).await.unwrap();
        let committed = started.elapsed();
        println!("{round}: leader after {leading:?}, first commit after {committed:?}");
        // About a millisecond here; the bound leaves room for a loaded CI
        // machine while staying under the default election timeout.
        assert!(committed < Duration::from_secs(1), "{round}: {committed:?}");
        q.shutdown().await;
    }
}

/// Raft §5.2/§5.3: one leader is elected, a proposal commits, and every
/// voter applies the same image.
#[tokio::test]
async fn three_voters_elect_commit_and_agree() {
    let data = tempfile::tempdir().unwrap();
    let router = Router::new();
    let mut nodes = start_all(&router, data.path()).await;
    let leader = wait_leader(&nodes).await;
    for name in ["a", "b", "c"] {
        nodes[leader]
            .as_ref()
            .unwrap()
            .propose(topic(name))
            .await
            .unwrap();
    }
    wait_all_have(&mut nodes, "c").await;
    let images: Vec<_> = nodes
        .iter()
        .flatten()
        .map(|n| n.image().borrow().clone())
        .collect();
    assert!(images.windows(2).all(|w| w[0] == w[1]), "{images:#?}");

    // A follower refuses and names the leader (the broker answers
    // NOT_CONTROLLER with it).
    let follower = (leader + 1) % 3;
    let err = nodes[follower]
        .as_ref()
        .unwrap()
        .propose(topic("x"))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ProposeError::NotLeader {
            leader_id: Some(leader as NodeId + 1),
            leader_addr: Some(format!("node-{}", leader + 1)),
        }
    );
    shutdown_all(nodes).await;
}

/// Raft §5.4 (leader completeness): after the leader dies, the new leader
/// has every committed entry, and new proposals commit.
#[tokio::test]
async fn killing_the_leader_elects_another_and_loses_nothing() {
    let data = tempfile::tempdir().unwrap();
    let router = Router::new();
    let mut nodes = start_all(&router, data.path()).await;
    let old = wait_leader(&nodes).await;
    nodes[old]
        .as_ref()
        .unwrap()
        .propose(topic("before"))
        .await
        .unwrap();
    nodes[old].take().unwrap().shutdown().await;

    let new = wait_leader(&nodes).await;
    assert_ne!(new, old);
    nodes[new]
        .as_ref()
        .unwrap()
        .propose(topic("after"))
        .await
        .unwrap();
    for n in nodes.iter().flatten() {
        let image = wait_image(&mut n.image(), "after", |i| i.topic("after").is_some()).await;
        assert!(image.topic("before").is_some(), "committed change lost");
    }
    shutdown_all(nodes).await;
}

/// A voter restarted from its directory catches up. The leader took
/// snapshots and purged its log meanwhile, so this goes through
/// InstallSnapshot.
#[tokio::test]
async fn restarted_voter_catches_up_from_a_snapshot() {
    let data = tempfile::tempdir().unwrap();
    let router = Router::new();
    let mut nodes = start_all(&router, data.path()).await;
    let leader = wait_leader(&nodes).await;
    let lagging = (leader + 1) % 3;
    nodes[leader]
        .as_ref()
        .unwrap()
        .propose(topic("t0"))
        .await
        .unwrap();
    wait_all_have(&mut nodes, "t0").await;
    nodes[lagging].take().unwrap().shutdown().await;

    for i in 1..=10 {
        let name = format!("t{i}");
        nodes[leader]
            .as_ref()
            .unwrap()
            .propose(topic(&name))
            .await
            .unwrap();
    }
    let leader_node = nodes[leader].as_ref().unwrap();
    let snapshot = bounded("a snapshot on the leader", async {
        loop {
            if let Some(s) = leader_node.metrics().borrow().snapshot {
                if s.index >= 8 {
                    return s;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(snapshot.index >= 8);

    nodes[lagging] = Some(start(&router, data.path(), lagging as NodeId + 1).await);
    wait_all_have(&mut nodes, "t10").await;
    let expected = nodes[leader].as_ref().unwrap().image().borrow().clone();
    let got = nodes[lagging].as_ref().unwrap().image().borrow().clone();
    assert_eq!(got, expected);
    let installed = nodes[lagging].as_ref().unwrap().metrics().borrow().snapshot;
    assert!(installed.is_some_and(|s| s.index >= 8), "{installed:?}");
    shutdown_all(nodes).await;
}

/// Raft's safety under partition: a leader cut off from the majority
/// cannot commit; the majority elects a leader and commits; after healing,
/// the minority's uncommitted entry is discarded everywhere.
#[tokio::test]
async fn minority_side_of_a_partition_cannot_commit() {
    let data = tempfile::tempdir().unwrap();
    let router = Router::new();
    let mut nodes = start_all(&router, data.path()).await;
    let old = wait_leader(&nodes).await;
    let old_id = old as NodeId + 1;
    let majority: Vec<NodeId> = (1..=3).filter(|&id| id != old_id).collect();
    router.partition(&[&[old_id], &majority]);

    let isolated = nodes[old].as_ref().unwrap();
    let stuck = tokio::time::timeout(Duration::from_millis(800), isolated.propose(topic("lost")));
    assert!(stuck.await.is_err(), "the minority committed a change");

    let new = bounded("a majority leader", async {
        loop {
            for &id in &majority {
                let n = nodes[id as usize - 1].as_ref().unwrap();
                if n.is_leader() {
                    return id as usize - 1;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    nodes[new]
        .as_ref()
        .unwrap()
        .propose(topic("kept"))
        .await
        .unwrap();

    router.heal();
    wait_all_have(&mut nodes, "kept").await;
    // The old leader has caught up past the point where its own entry was.
    let leader_applied = nodes[new].as_ref().unwrap().metrics().borrow().last_applied;
    bounded("the old leader to catch up", async {
        let mut m = nodes[old].as_ref().unwrap().metrics();
        m.wait_for(|m| m.last_applied >= leader_applied)
            .await
            .unwrap();
    })
    .await;
    for n in nodes.iter().flatten() {
        assert!(n.image().borrow().topic("lost").is_none());
    }
    shutdown_all(nodes).await;
}
