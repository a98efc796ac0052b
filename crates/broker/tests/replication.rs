//! Three brokers in one process (each also a controller voter) on
//! 127.0.0.1: partitions are hosted where the metadata assigns them,
//! acks=all returns once every in-sync replica has the batch, and a new
//! leader after a failover serves everything that was acknowledged.

mod common;

use std::time::Duration;

use common::*;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::records::Compression;
use odradek_metadata::PartitionImage;

/// A port for a controller listener, whose address every voter must know
/// before it binds. A port picked with a `:0` bind and released lies in
/// the ephemeral range (32768–60999 on Linux), where the OS may hand it to
/// another `:0` bind or an outgoing connection before the broker binds it
/// (seen in CI as AddrInUse). So pick at random below that range, never
/// the same port twice in this process, and check that it is free now.
fn free_port() -> u16 {
    use std::collections::BTreeSet;
    use std::hash::{BuildHasher, Hasher};
    use std::sync::Mutex;
    static PICKED: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let mut picked = PICKED.lock().unwrap();
    loop {
        let random = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        let port = 20_000 + (random % 12_000) as u16;
        if !picked.contains(&port) && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            picked.insert(port);
            return port;
        }
    }
}

struct Cluster {
    /// Index i is node i + 1; `None` once stopped.
    nodes: Vec<Option<TestBroker>>,
}

impl Cluster {
    async fn start(extra: &[(&str, &str)]) -> Cluster {
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let voters = ports
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{}@127.0.0.1:{p}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let starts = (1..=3).map(|id: usize| {
            let mut settings = vec![
                ("node.id".to_string(), id.to_string()),
                (
                    "listeners".to_string(),
                    format!(
                        "PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:{}",
                        ports[id - 1]
                    ),
                ),
                ("controller.quorum.voters".to_string(), voters.clone()),
                ("replica.fetch.wait.max.ms".to_string(), "100".to_string()),
                ("replica.fetch.backoff.ms".to_string(), "100".to_string()),
            ];
            settings.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
            async move {
                let refs: Vec<(&str, &str)> = settings
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                TestBroker::start(&refs).await
            }
        });
        let nodes = futures::future::join_all(starts)
            .await
            .into_iter()
            .map(Some)
            .collect();
        let cluster = Cluster { nodes };
        cluster
            .wait_until("every broker registered and unfenced everywhere", |c| {
                c.live().all(|(_, b)| {
                    let image = b.running.as_ref().unwrap().broker.image();
                    (1..=3).all(|id| image.is_usable(id))
                })
            })
            .await;
        cluster
    }

    fn node(&self, id: i32) -> &TestBroker {
        self.nodes[(id - 1) as usize].as_ref().expect("running")
    }

    fn broker(&self, id: i32) -> &odradek_broker::broker::Broker {
        &self.node(id).running.as_ref().unwrap().broker
    }

    fn live(&self) -> impl Iterator<Item = (i32, &TestBroker)> {
        self.nodes
            .iter()
            .enumerate()
            .filter_map(|(i, b)| b.as_ref().map(|b| (i as i32 + 1, b)))
    }

    async fn stop(&mut self, id: i32) {
        self.nodes[(id - 1) as usize].take().unwrap().stop().await;
    }

    /// Stops every node still running, concurrently (one at a time, the
    /// last ones would wait for a quorum that is gone).
    async fn stop_all(self) {
        futures::future::join_all(self.nodes.into_iter().flatten().map(|b| b.stop())).await;
    }

    /// The partition as broker `id` sees it in its applied image.
    fn state(&self, id: i32, topic: &str, index: i32) -> Option<PartitionImage> {
        self.broker(id)
            .image()
            .topic(topic)
            .and_then(|t| t.partitions.get(&index).cloned())
    }

    async fn wait_until(&self, what: &str, f: impl Fn(&Cluster) -> bool) {
        for _ in 0..400 {
            if f(self) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("timed out waiting until {what}");
    }

    /// Waits until every live broker agrees on the partition's leader and
    /// ISR, and the leader acts as leader; returns that state.
    async fn settled(&self, topic: &str, index: i32, isr_len: usize) -> PartitionImage {
        self.wait_until(
            &format!("{topic}-{index} has a leader and {isr_len} in-sync replicas"),
            |c| {
                let mut states = c.live().map(|(id, _)| c.state(id, topic, index));
                let Some(Some(first)) = states.next() else {
                    return false;
                };
                let agreed = states.all(|s| s.as_ref() == Some(&first));
                agreed
                    && first.isr.len() == isr_len
                    && c.live().any(|(id, _)| id == first.leader)
                    && c.broker(first.leader)
                        .replicas
                        .partition(
                            &c.broker(first.leader)
                                .image()
                                .topic(topic)
                                .unwrap()
                                .topic_id,
                            index,
                        )
                        .is_some_and(|p| p.is_leader() && p.leader_epoch() == first.leader_epoch)
            },
        )
        .await;
        let any = self.live().next().unwrap().0;
        self.state(any, topic, index).unwrap()
    }
}

async fn create(c: &mut Client, name: &str, partitions: i32, rf: i16, configs: &[(&str, &str)]) {
    let code = create_topic_rf(c, name, partitions, rf, configs, 10_000).await;
    assert_eq!(code, 0, "creating {name}");
}

async fn produce_acks(c: &mut Client, topic: &str, value: &str, acks: i16) -> (i16, i64) {
    let records = batch(&[record("k", value, now_ms())], Compression::None);
    let resp: ProduceResponse = c
        .call(
            ApiKey::Produce,
            9,
            &produce_request(topic, 0, records, acks),
        )
        .await;
    let p = &resp.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acks_all_is_answered_once_every_isr_member_has_the_batch() {
    let cluster = Cluster::start(&[]).await;
    let mut c = cluster.node(1).client().await;
    create(&mut c, "replicated", 1, 3, &[("min.insync.replicas", "2")]).await;
    let state = cluster.settled("replicated", 0, 3).await;
    let leader = state.leader;
    let topic_id = cluster
        .broker(leader)
        .image()
        .topic("replicated")
        .unwrap()
        .topic_id;
    let mut to_leader = cluster.node(leader).client().await;
    for i in 0..5 {
        assert_eq!(
            produce_acks(&mut to_leader, "replicated", &format!("v{i}"), -1).await,
            (0, i)
        );
        // Answered only once the high watermark passed it, which needs
        // every ISR member's log end past it.
        for (id, _) in cluster.live() {
            let p = cluster.broker(id).replicas.partition(&topic_id, 0).unwrap();
            assert!(p.log_end_offset() > i, "broker {id} lacks offset {i}");
        }
        let hw = cluster
            .broker(leader)
            .replicas
            .partition(&topic_id, 0)
            .unwrap()
            .high_watermark();
        assert!(hw > i);
    }
    // Consumers are served by the leader only.
    let follower = (1..=3).find(|&id| id != leader).unwrap();
    let mut to_follower = cluster.node(follower).client().await;
    let (code, _, _) = fetch(&mut to_follower, "replicated", 0, 0).await;
    assert_eq!(code, ResponseError::NotLeaderOrFollower.code());
    let (code, _) = produce_acks(&mut to_follower, "replicated", "nope", 1).await;
    assert_eq!(code, ResponseError::NotLeaderOrFollower.code());
    let (code, hw, records) = fetch(&mut to_leader, "replicated", 0, 0).await;
    assert_eq!((code, hw, records.len()), (0, 5, 5));
    // Followers learn the high watermark from their next fetch.
    cluster
        .wait_until("followers have the high watermark", |c| {
            c.live().all(|(id, _)| {
                c.broker(id)
                    .replicas
                    .partition(&topic_id, 0)
                    .unwrap()
                    .high_watermark()
                    == 5
            })
        })
        .await;
    cluster.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn partitions_live_only_on_their_replicas() {
    let cluster = Cluster::start(&[]).await;
    let mut c = cluster.node(1).client().await;
    create(&mut c, "spread", 3, 1, &[]).await;
    for index in 0..3 {
        cluster.settled("spread", index, 1).await;
    }
    let image = cluster.broker(1).image();
    let topic = image.topic("spread").unwrap();
    for (&index, state) in &topic.partitions {
        for id in 1..=3 {
            let hosted = cluster
                .broker(id)
                .replicas
                .partition(&topic.topic_id, index);
            assert_eq!(
                hosted.is_some(),
                state.replicas.contains(&id),
                "partition {index} on broker {id}"
            );
        }
        // A broker that does not host it tells the client to refresh.
        let other = (1..=3).find(|id| !state.replicas.contains(id)).unwrap();
        let mut to_other = cluster.node(other).client().await;
        let resp: ProduceResponse = to_other
            .call(
                ApiKey::Produce,
                9,
                &produce_request(
                    "spread",
                    index,
                    batch(&[record("k", "v", now_ms())], Compression::None),
                    1,
                ),
            )
            .await;
        assert_eq!(
            resp.responses[0].partition_responses[0].error_code,
            ResponseError::NotLeaderOrFollower.code()
        );
    }
    cluster.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_leader_serves_everything_acknowledged() {
    let mut cluster = Cluster::start(&[]).await;
    let mut c = cluster.node(1).client().await;
    create(&mut c, "failover", 1, 3, &[("min.insync.replicas", "3")]).await;
    let state = cluster.settled("failover", 0, 3).await;
    let old = state.leader;
    let mut to_leader = cluster.node(old).client().await;
    for i in 0..3 {
        assert_eq!(
            produce_acks(&mut to_leader, "failover", &format!("a{i}"), -1).await,
            (0, i)
        );
    }
    drop(to_leader);
    drop(c);
    // A clean shutdown hands leadership to another in-sync replica and
    // leaves the ISR.
    cluster.stop(old).await;
    let state = cluster.settled("failover", 0, 2).await;
    assert_ne!(state.leader, old);
    assert!(state.leader_epoch > 0);
    let mut to_leader = cluster.node(state.leader).client().await;
    // Two in-sync replicas are fewer than min.insync.replicas=3: acks=all
    // is refused before appending, acks=1 is not.
    let (code, _) = produce_acks(&mut to_leader, "failover", "refused", -1).await;
    assert_eq!(code, ResponseError::NotEnoughReplicas.code());
    assert_eq!(
        produce_acks(&mut to_leader, "failover", "b3", 1).await,
        (0, 3)
    );
    cluster
        .wait_until(
            "the new leader's high watermark covers the acks=1 write",
            |c| {
                let b = c.broker(state.leader);
                let id = b.image().topic("failover").unwrap().topic_id;
                b.replicas.partition(&id, 0).unwrap().high_watermark() == 4
            },
        )
        .await;
    let (code, hw, records) = fetch(&mut to_leader, "failover", 0, 0).await;
    assert_eq!((code, hw), (0, 4));
    let values: Vec<String> = records
        .iter()
        .map(|r| String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap())
        .collect();
    assert_eq!(values, ["a0", "a1", "a2", "b3"]);
    cluster.stop_all().await;
}
