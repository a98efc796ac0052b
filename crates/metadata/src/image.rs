//! The in-memory picture of cluster metadata, built only by applying
//! records. Readers take a cheap snapshot (`Arc<MetadataImage>`) and never
//! see a half-applied change.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use uuid::Uuid;

use crate::record::MetadataRecord;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionImage {
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub leader: i32,
    pub leader_epoch: i32,
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
                replicas,
                isr,
                leader,
                leader_epoch,
            } => {
                if let Some(topic) = self.topics.get_mut(topic_id) {
                    Arc::make_mut(topic).partitions.insert(
                        *partition,
                        PartitionImage {
                            replicas: replicas.clone(),
                            isr: isr.clone(),
                            leader: *leader,
                            leader_epoch: *leader_epoch,
                        },
                    );
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
            replicas: vec![1],
            isr: vec![1],
            leader: 1,
            leader_epoch: 0,
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
}
