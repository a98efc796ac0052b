//! The in-memory picture of cluster metadata, built only by applying
//! records. Readers take a cheap snapshot (`Arc<MetadataImage>`) and never
//! see a half-applied change.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use uuid::Uuid;

use crate::record::MetadataRecord;

/// Kafka's "no leader" broker id.
pub const NO_LEADER: i32 = -1;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionImage {
    /// Preferred order: the first is the preferred leader. During a
    /// reassignment this is the union of the old and the target replicas.
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// A broker id, or [`NO_LEADER`].
    pub leader: i32,
    /// Bumped on every leader change; fences stale leaders (KIP-101/320).
    pub leader_epoch: i32,
    /// Bumped on every change of this partition's state (Kafka's
    /// partition epoch): AlterPartition requests naming an older one are
    /// refused, so ISR changes never race.
    pub partition_epoch: i32,
    /// Reassignment in progress (KIP-455): replicas being added, which
    /// join `replicas` before they catch up ...
    pub adding_replicas: Vec<i32>,
    /// ... and replicas to drop once every adding replica is in the ISR.
    pub removing_replicas: Vec<i32>,
}

impl PartitionImage {
    /// A new partition: every replica in sync, epochs at zero.
    pub fn new(replicas: Vec<i32>, leader: i32, leader_epoch: i32) -> PartitionImage {
        PartitionImage {
            isr: replicas.clone(),
            replicas,
            leader,
            leader_epoch,
            partition_epoch: 0,
            adding_replicas: Vec::new(),
            removing_replicas: Vec::new(),
        }
    }
}

/// A registered broker and how clients and other brokers reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerImage {
    pub broker_id: i32,
    pub incarnation_id: Uuid,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
    /// Not heartbeating (or just registered): leads nothing, in no ISR.
    pub fenced: bool,
    pub in_controlled_shutdown: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicImage {
    pub name: Arc<str>,
    pub topic_id: Uuid,
    pub partitions: BTreeMap<i32, PartitionImage>,
    /// Topic-level overrides only; broker defaults are resolved by the broker.
    pub configs: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataImage {
    topics: HashMap<Uuid, Arc<TopicImage>>,
    ids_by_name: HashMap<Arc<str>, Uuid>,
    /// The first producer id not yet allocated to any broker.
    next_producer_id: i64,
    brokers: BTreeMap<i32, BrokerImage>,
    cluster_id: Option<String>,
}

impl MetadataImage {
    pub fn topic(&self, name: &str) -> Option<&Arc<TopicImage>> {
        self.ids_by_name
            .get(name)
            .and_then(|id| self.topics.get(id))
    }

    pub fn topic_by_id(&self, id: &Uuid) -> Option<&Arc<TopicImage>> {
        self.topics.get(id)
    }

    pub fn topics(&self) -> impl Iterator<Item = &Arc<TopicImage>> {
        self.topics.values()
    }

    pub fn next_producer_id(&self) -> i64 {
        self.next_producer_id
    }

    /// The cluster id the first active controller recorded.
    pub fn cluster_id(&self) -> Option<&str> {
        self.cluster_id.as_deref()
    }

    pub fn broker(&self, id: i32) -> Option<&BrokerImage> {
        self.brokers.get(&id)
    }

    /// Registered brokers, fenced or not, by id.
    pub fn brokers(&self) -> impl Iterator<Item = &BrokerImage> {
        self.brokers.values()
    }

    /// Brokers that can lead and host new replicas: registered, unfenced
    /// and not shutting down. Sorted by id.
    pub fn usable_brokers(&self) -> Vec<i32> {
        self.brokers
            .values()
            .filter(|b| !b.fenced && !b.in_controlled_shutdown)
            .map(|b| b.broker_id)
            .collect()
    }

    pub fn is_usable(&self, broker_id: i32) -> bool {
        self.brokers
            .get(&broker_id)
            .is_some_and(|b| !b.fenced && !b.in_controlled_shutdown)
    }

    pub fn partition(&self, topic_id: &Uuid, partition: i32) -> Option<&PartitionImage> {
        self.topics.get(topic_id)?.partitions.get(&partition)
    }

    /// The records that, applied in order to an empty image, rebuild this
    /// one: the content of a metadata snapshot.
    pub fn to_records(&self) -> Vec<MetadataRecord> {
        let mut records = Vec::new();
        if let Some(cluster_id) = &self.cluster_id {
            records.push(MetadataRecord::ClusterId {
                cluster_id: cluster_id.clone(),
            });
        }
        if self.next_producer_id > 0 {
            records.push(MetadataRecord::ProducerIds {
                next_producer_id: self.next_producer_id,
            });
        }
        for b in self.brokers.values() {
            records.push(MetadataRecord::RegisterBroker {
                broker_id: b.broker_id,
                incarnation_id: b.incarnation_id,
                host: b.host.clone(),
                port: b.port,
                rack: b.rack.clone(),
            });
            records.push(MetadataRecord::BrokerState {
                broker_id: b.broker_id,
                fenced: b.fenced,
                in_controlled_shutdown: b.in_controlled_shutdown,
            });
        }
        let mut topics: Vec<_> = self.topics.values().collect();
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        for topic in topics {
            records.push(MetadataRecord::Topic {
                name: topic.name.to_string(),
                topic_id: topic.topic_id,
            });
            for (&partition, state) in &topic.partitions {
                records.push(MetadataRecord::Partition {
                    topic_id: topic.topic_id,
                    partition,
                    state: state.clone(),
                });
            }
            for (key, value) in &topic.configs {
                records.push(MetadataRecord::TopicConfig {
                    topic_id: topic.topic_id,
                    key: key.clone(),
                    value: Some(value.clone()),
                });
            }
        }
        records
    }

    pub fn from_records(records: &[MetadataRecord]) -> MetadataImage {
        let mut image = MetadataImage::default();
        records.iter().for_each(|r| image.apply(r));
        image
    }

    /// Applies one record. Records referring to unknown topics are ignored:
    /// the controller only writes them for existing topics, so this only
    /// happens for records that followed a RemoveTopic in the same batch.
    pub fn apply(&mut self, record: &MetadataRecord) {
        match record {
            MetadataRecord::Topic { name, topic_id } => {
                let name: Arc<str> = Arc::from(name.as_str());
                self.ids_by_name.insert(name.clone(), *topic_id);
                self.topics.insert(
                    *topic_id,
                    Arc::new(TopicImage {
                        name,
                        topic_id: *topic_id,
                        partitions: BTreeMap::new(),
                        configs: BTreeMap::new(),
                    }),
                );
            }
            MetadataRecord::Partition {
                topic_id,
                partition,
                state,
            } => {
                if let Some(topic) = self.topics.get_mut(topic_id) {
                    Arc::make_mut(topic)
                        .partitions
                        .insert(*partition, state.clone());
                }
            }
            MetadataRecord::TopicConfig {
                topic_id,
                key,
                value,
            } => {
                if let Some(topic) = self.topics.get_mut(topic_id) {
                    let configs = &mut Arc::make_mut(topic).configs;
                    match value {
                        Some(v) => configs.insert(key.clone(), v.clone()),
                        None => configs.remove(key),
                    };
                }
            }
            MetadataRecord::RemoveTopic { topic_id } => {
                if let Some(topic) = self.topics.remove(topic_id) {
                    self.ids_by_name.remove(&topic.name);
                }
            }
            MetadataRecord::ProducerIds { next_producer_id } => {
                self.next_producer_id = self.next_producer_id.max(*next_producer_id);
            }
            MetadataRecord::RegisterBroker {
                broker_id,
                incarnation_id,
                host,
                port,
                rack,
            } => {
                self.brokers.insert(
                    *broker_id,
                    BrokerImage {
                        broker_id: *broker_id,
                        incarnation_id: *incarnation_id,
                        host: host.clone(),
                        port: *port,
                        rack: rack.clone(),
                        fenced: true,
                        in_controlled_shutdown: false,
                    },
                );
            }
            MetadataRecord::BrokerState {
                broker_id,
                fenced,
                in_controlled_shutdown,
            } => {
                if let Some(b) = self.brokers.get_mut(broker_id) {
                    b.fenced = *fenced;
                    b.in_controlled_shutdown = *in_controlled_shutdown;
                }
            }
            MetadataRecord::UnregisterBroker { broker_id } => {
                self.brokers.remove(broker_id);
            }
            // The first one wins: a cluster's id never changes.
            MetadataRecord::ClusterId { cluster_id } => {
                self.cluster_id.get_or_insert_with(|| cluster_id.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_lifecycle() {
        let id = Uuid::new_v4();
        let mut image = MetadataImage::default();
        image.apply(&MetadataRecord::Topic {
            name: "t".into(),
            topic_id: id,
        });
        image.apply(&MetadataRecord::Partition {
            topic_id: id,
            partition: 0,
            state: PartitionImage::new(vec![1], 1, 0),
        });
        image.apply(&MetadataRecord::TopicConfig {
            topic_id: id,
            key: "retention.ms".into(),
            value: Some("5".into()),
        });
        let t = image.topic("t").unwrap();
        assert_eq!(t.partitions.len(), 1);
        assert_eq!(t.configs["retention.ms"], "5");
        assert_eq!(image.topic_by_id(&id).unwrap().name.as_ref(), "t");
        image.apply(&MetadataRecord::RemoveTopic { topic_id: id });
        assert!(image.topic("t").is_none());
        assert!(image.topic_by_id(&id).is_none());
    }

    #[test]
    fn broker_lifecycle_and_records_round_trip() {
        let mut image = MetadataImage::default();
        image.apply(&MetadataRecord::RegisterBroker {
            broker_id: 2,
            incarnation_id: Uuid::new_v4(),
            host: "h".into(),
            port: 1,
            rack: None,
        });
        assert!(
            image.broker(2).unwrap().fenced,
            "registered brokers start fenced"
        );
        assert!(image.usable_brokers().is_empty());
        image.apply(&MetadataRecord::BrokerState {
            broker_id: 2,
            fenced: false,
            in_controlled_shutdown: false,
        });
        assert_eq!(image.usable_brokers(), vec![2]);
        let id = Uuid::new_v4();
        image.apply(&MetadataRecord::Topic {
            name: "t".into(),
            topic_id: id,
        });
        image.apply(&MetadataRecord::Partition {
            topic_id: id,
            partition: 0,
            state: PartitionImage::new(vec![2], 2, 3),
        });
        image.apply(&MetadataRecord::ProducerIds {
            next_producer_id: 7,
        });
        image.apply(&MetadataRecord::ClusterId {
            cluster_id: "a".into(),
        });
        image.apply(&MetadataRecord::ClusterId {
            cluster_id: "b".into(),
        });
        assert_eq!(image.cluster_id(), Some("a"));
        assert_eq!(MetadataImage::from_records(&image.to_records()), image);
        image.apply(&MetadataRecord::UnregisterBroker { broker_id: 2 });
        assert!(image.broker(2).is_none());
    }
}
