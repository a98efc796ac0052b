//! The controller: the only writer of the metadata log.
//!
//! Requests that change metadata (CreateTopics, DeleteTopics, topic
//! auto-creation) are validated here, turned into records, made durable in
//! the metadata log, and applied to the image. This is the quorum-of-one
//! form of the KRaft controller; the cluster issue puts Raft under
//! `MetadataLog` without changing this interface.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use odradek_metadata::{MetadataImage, MetadataLog, MetadataLogError, MetadataRecord, TopicImage};
use parking_lot::{Mutex, RwLock};
use uuid::Uuid;

use crate::errors::ApiError;
use crate::topic_config;

/// What CreateTopics (or auto-creation) asks for, already mapped from the
/// wire: -1 means "broker default" as in Kafka.
#[derive(Debug, Clone, Default)]
pub struct NewTopic {
    pub name: String,
    pub num_partitions: i32,
    pub replication_factor: i16,
    /// Explicit replica assignment: partition → brokers.
    pub assignments: BTreeMap<i32, Vec<i32>>,
    pub configs: Vec<(String, Option<String>)>,
}

pub struct Controller {
    node_id: i32,
    /// Held across append + apply so the image order equals the log order.
    log: Mutex<MetadataLog>,
    image: RwLock<Arc<MetadataImage>>,
}

impl Controller {
    pub fn open(dir: &Path, node_id: i32) -> Result<Controller, MetadataLogError> {
        let (log, records) = MetadataLog::open(dir)?;
        let mut image = MetadataImage::default();
        for r in &records {
            image.apply(r);
        }
        tracing::info!(records = records.len(), "replayed metadata log");
        Ok(Controller {
            node_id,
            log: Mutex::new(log),
            image: RwLock::new(Arc::new(image)),
        })
    }

    pub fn node_id(&self) -> i32 {
        self.node_id
    }

    /// A consistent snapshot of cluster metadata.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.image.read().clone()
    }

    /// Validates and (unless `validate_only`) creates a topic. Returns the
    /// topic as it is (or would be) in the image.
    pub fn create_topic(
        &self,
        spec: &NewTopic,
        defaults: &TopicDefaults,
        validate_only: bool,
        apply: impl FnOnce(&MetadataImage) -> Result<(), ApiError>,
    ) -> Result<Arc<TopicImage>, ApiError> {
        let mut log = self.log.lock();
        let image = self.image();
        let records = plan_topic_creation(spec, &image, defaults)?;
        let mut next = (*image).clone();
        records.iter().for_each(|r| next.apply(r));
        let created = next
            .topic(&spec.name)
            .cloned()
            .expect("planned records create the topic");
        if validate_only {
            return Ok(created);
        }
        log.append(&records).map_err(metadata_io)?;
        let next = Arc::new(next);
        *self.image.write() = next.clone();
        apply(&next)?;
        Ok(created)
    }

    /// Reserves the next `count` producer ids for this broker. The
    /// reservation is durable before any id is handed out, so ids are never
    /// reused after a restart (unused ones in a block are skipped).
    pub fn allocate_producer_ids(&self, count: i64) -> Result<std::ops::Range<i64>, ApiError> {
        let mut log = self.log.lock();
        let image = self.image();
        let start = image.next_producer_id();
        let record = MetadataRecord::ProducerIds {
            next_producer_id: start + count,
        };
        log.append(std::slice::from_ref(&record))
            .map_err(metadata_io)?;
        let mut next = (*image).clone();
        next.apply(&record);
        *self.image.write() = Arc::new(next);
        Ok(start..start + count)
    }

    /// Deletes a topic by id.
    pub fn delete_topic(
        &self,
        topic_id: Uuid,
        apply: impl FnOnce(&MetadataImage) -> Result<(), ApiError>,
    ) -> Result<(), ApiError> {
        let mut log = self.log.lock();
        let image = self.image();
        if image.topic_by_id(&topic_id).is_none() {
            return Err(ResponseError::UnknownTopicId.into());
        }
        let records = [MetadataRecord::RemoveTopic { topic_id }];
        log.append(&records).map_err(metadata_io)?;
        let mut next = (*image).clone();
        next.apply(&records[0]);
        let next = Arc::new(next);
        *self.image.write() = next.clone();
        apply(&next)
    }
}

fn metadata_io(e: MetadataLogError) -> ApiError {
    tracing::error!(error = %e, "metadata log append failed");
    ApiError::new(ResponseError::UnknownServerError, e.to_string())
}

/// Broker defaults that topic creation falls back to.
#[derive(Debug, Clone)]
pub struct TopicDefaults {
    pub num_partitions: i32,
    pub replication_factor: i16,
    pub live_brokers: Vec<i32>,
}

/// Kafka's rule: 1–249 characters from `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), ApiError> {
    let invalid = |why: String| Err(ApiError::new(ResponseError::InvalidTopicException, why));
    if name.is_empty() {
        return invalid("topic name is empty".into());
    }
    if name == "." || name == ".." {
        return invalid(format!("topic name cannot be '{name}'"));
    }
    if name.len() > 249 {
        return invalid(format!(
            "topic name is {} characters long; the limit is 249",
            name.len()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return invalid(format!(
            "topic name '{name}' contains '{c}'; only ASCII letters, digits, '.', '_' and '-' are allowed"
        ));
    }
    Ok(())
}

/// The records that create `spec`, or the Kafka error that refuses it.
/// Pure: the image and defaults in, records out.
pub fn plan_topic_creation(
    spec: &NewTopic,
    image: &MetadataImage,
    defaults: &TopicDefaults,
) -> Result<Vec<MetadataRecord>, ApiError> {
    validate_topic_name(&spec.name)?;
    if image.topic(&spec.name).is_some() {
        return Err(ApiError::new(
            ResponseError::TopicAlreadyExists,
            format!("topic '{}' already exists", spec.name),
        ));
    }
    // '.' and '_' collide in metric names, so Kafka refuses the pair.
    let normalized = spec.name.replace('.', "_");
    if let Some(other) = image
        .topics()
        .find(|t| t.name.replace('.', "_") == normalized)
    {
        return Err(ApiError::new(
            ResponseError::InvalidTopicException,
            format!(
                "topic '{}' collides with existing topic '{}'",
                spec.name, other.name
            ),
        ));
    }
    let assignments = if spec.assignments.is_empty() {
        let partitions = match spec.num_partitions {
            -1 => defaults.num_partitions,
            n if n <= 0 => {
                return Err(ApiError::new(
                    ResponseError::InvalidPartitions,
                    format!("number of partitions must be larger than 0, got {n}"),
                ))
            }
            n => n,
        };
        let rf = match spec.replication_factor {
            -1 => defaults.replication_factor,
            n if n <= 0 => {
                return Err(ApiError::new(
                    ResponseError::InvalidReplicationFactor,
                    format!("replication factor must be larger than 0, got {n}"),
                ))
            }
            n => n,
        };
        if rf as usize > defaults.live_brokers.len() {
            return Err(ApiError::new(
                ResponseError::InvalidReplicationFactor,
                format!(
                    "replication factor {rf} is larger than the number of available brokers ({})",
                    defaults.live_brokers.len()
                ),
            ));
        }
        assign_replicas(partitions, rf as usize, &defaults.live_brokers)
    } else {
        if spec.num_partitions != -1 || spec.replication_factor != -1 {
            return Err(ApiError::new(
                ResponseError::InvalidRequest,
                "both replica assignments and numPartitions/replicationFactor were given; use one",
            ));
        }
        validate_assignments(&spec.assignments, &defaults.live_brokers)?;
        spec.assignments.clone()
    };
    let mut configs = BTreeMap::new();
    for (key, value) in &spec.configs {
        let Some(value) = value else {
            return Err(ApiError::new(
                ResponseError::InvalidConfig,
                format!("null value for topic config '{key}'"),
            ));
        };
        topic_config::validate(key, value).map_err(|why| {
            ApiError::new(
                ResponseError::InvalidConfig,
                format!("{key}={value}: {why}"),
            )
        })?;
        configs.insert(key.clone(), value.clone());
    }
    let topic_id = Uuid::new_v4();
    let mut records = vec![MetadataRecord::Topic {
        name: spec.name.clone(),
        topic_id,
    }];
    for (partition, replicas) in assignments {
        records.push(MetadataRecord::Partition {
            topic_id,
            partition,
            state: odradek_metadata::PartitionImage::new(replicas.clone(), replicas[0], 0),
        });
    }
    for (key, value) in configs {
        records.push(MetadataRecord::TopicConfig {
            topic_id,
            key,
            value: Some(value),
        });
    }
    Ok(records)
}

/// Round-robin placement with the leader rotating across brokers.
fn assign_replicas(partitions: i32, rf: usize, brokers: &[i32]) -> BTreeMap<i32, Vec<i32>> {
    (0..partitions)
        .map(|p| {
            let replicas = (0..rf)
                .map(|r| brokers[(p as usize + r) % brokers.len()])
                .collect();
            (p, replicas)
        })
        .collect()
}

fn validate_assignments(
    assignments: &BTreeMap<i32, Vec<i32>>,
    brokers: &[i32],
) -> Result<(), ApiError> {
    let invalid = |why: String| Err(ApiError::new(ResponseError::InvalidReplicaAssignment, why));
    let count = assignments.len() as i32;
    if assignments.keys().copied().ne(0..count) {
        return invalid("partition indexes in the assignment must be 0..N-1".into());
    }
    let rf = assignments.values().next().map_or(0, Vec::len);
    for (p, replicas) in assignments {
        if replicas.is_empty() || replicas.len() != rf {
            return invalid(format!(
                "partition {p} has {} replicas; all partitions need the same non-zero count",
                replicas.len()
            ));
        }
        let mut unique = replicas.clone();
        unique.sort_unstable();
        unique.dedup();
        if unique.len() != replicas.len() {
            return invalid(format!("partition {p} lists a broker twice"));
        }
        if let Some(b) = replicas.iter().find(|b| !brokers.contains(b)) {
            return Err(ApiError::new(
                ResponseError::BrokerNotAvailable,
                format!("partition {p} is assigned to unknown broker {b}"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> TopicDefaults {
        TopicDefaults {
            num_partitions: 1,
            replication_factor: 1,
            live_brokers: vec![1],
        }
    }

    fn spec(name: &str, partitions: i32, rf: i16) -> NewTopic {
        NewTopic {
            name: name.into(),
            num_partitions: partitions,
            replication_factor: rf,
            ..Default::default()
        }
    }

    fn code(r: Result<Vec<MetadataRecord>, ApiError>) -> ResponseError {
        r.unwrap_err().code
    }

    #[test]
    fn topic_name_rules() {
        for bad in ["", ".", "..", "bad name!", "ü", &"x".repeat(250)] {
            assert_eq!(
                validate_topic_name(bad).unwrap_err().code,
                ResponseError::InvalidTopicException,
                "{bad:?}"
            );
        }
        for good in ["a", "A-b_c.9", &"x".repeat(249)] {
            assert!(validate_topic_name(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn partitions_and_replication_factor() {
        let image = MetadataImage::default();
        let d = defaults();
        assert_eq!(
            code(plan_topic_creation(&spec("t", 0, 1), &image, &d)),
            ResponseError::InvalidPartitions
        );
        assert_eq!(
            code(plan_topic_creation(&spec("t", -2, 1), &image, &d)),
            ResponseError::InvalidPartitions
        );
        assert_eq!(
            code(plan_topic_creation(&spec("t", 1, 3), &image, &d)),
            ResponseError::InvalidReplicationFactor
        );
        let records = plan_topic_creation(&spec("t", -1, -1), &image, &d).unwrap();
        assert_eq!(records.len(), 2, "topic + one default partition");
        let records = plan_topic_creation(&spec("t", 6, 1), &image, &d).unwrap();
        assert_eq!(records.len(), 7);
    }

    #[test]
    fn existing_and_colliding_names() {
        let mut image = MetadataImage::default();
        for r in plan_topic_creation(&spec("a.b", 1, 1), &image, &defaults()).unwrap() {
            image.apply(&r);
        }
        assert_eq!(
            code(plan_topic_creation(&spec("a.b", 1, 1), &image, &defaults())),
            ResponseError::TopicAlreadyExists
        );
        assert_eq!(
            code(plan_topic_creation(&spec("a_b", 1, 1), &image, &defaults())),
            ResponseError::InvalidTopicException
        );
    }

    #[test]
    fn configs_are_validated() {
        let mut s = spec("t", 1, 1);
        s.configs = vec![("retention.ms".into(), Some("x".into()))];
        assert_eq!(
            code(plan_topic_creation(
                &s,
                &MetadataImage::default(),
                &defaults()
            )),
            ResponseError::InvalidConfig
        );
        s.configs = vec![("no.such".into(), Some("1".into()))];
        assert_eq!(
            code(plan_topic_creation(
                &s,
                &MetadataImage::default(),
                &defaults()
            )),
            ResponseError::InvalidConfig
        );
        s.configs = vec![("retention.ms".into(), Some("100".into()))];
        assert!(plan_topic_creation(&s, &MetadataImage::default(), &defaults()).is_ok());
    }

    #[test]
    fn explicit_assignments() {
        let mut s = spec("t", -1, -1);
        s.assignments = BTreeMap::from([(0, vec![1]), (1, vec![1])]);
        assert!(plan_topic_creation(&s, &MetadataImage::default(), &defaults()).is_ok());
        s.assignments = BTreeMap::from([(0, vec![2])]);
        assert_eq!(
            code(plan_topic_creation(
                &s,
                &MetadataImage::default(),
                &defaults()
            )),
            ResponseError::BrokerNotAvailable
        );
        s.assignments = BTreeMap::from([(1, vec![1])]);
        assert_eq!(
            code(plan_topic_creation(
                &s,
                &MetadataImage::default(),
                &defaults()
            )),
            ResponseError::InvalidReplicaAssignment
        );
    }
}
