//! Topic creation as the active controller plans it: names, partition
//! counts, replication factor, placement and configs validated as pure
//! functions of the image, turned into records.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use odradek_metadata::{MetadataImage, MetadataRecord};
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

impl NewTopic {
    pub fn from_request(
        t: &kafka_protocol::messages::create_topics_request::CreatableTopic,
    ) -> Self {
        NewTopic {
            name: t.name.0.to_string(),
            num_partitions: t.num_partitions,
            replication_factor: t.replication_factor,
            assignments: t
                .assignments
                .iter()
                .map(|a| {
                    (
                        a.partition_index,
                        a.broker_ids.iter().map(|b| b.0).collect(),
                    )
                })
                .collect(),
            configs: t
                .configs
                .iter()
                .map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string())))
                .collect(),
        }
    }

    /// The CreateTopics entry that asks for this topic.
    pub fn to_request(&self) -> kafka_protocol::messages::create_topics_request::CreatableTopic {
        use kafka_protocol::messages::create_topics_request::{
            CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
        };
        use kafka_protocol::messages::{BrokerId, TopicName};
        use kafka_protocol::protocol::StrBytes;
        CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_string(self.name.clone())))
            .with_num_partitions(self.num_partitions)
            .with_replication_factor(self.replication_factor)
            .with_assignments(
                self.assignments
                    .iter()
                    .map(|(p, brokers)| {
                        CreatableReplicaAssignment::default()
                            .with_partition_index(*p)
                            .with_broker_ids(brokers.iter().map(|b| BrokerId(*b)).collect())
                    })
                    .collect(),
            )
            .with_configs(
                self.configs
                    .iter()
                    .map(|(k, v)| {
                        CreatableTopicConfig::default()
                            .with_name(StrBytes::from_string(k.clone()))
                            .with_value(v.clone().map(StrBytes::from_string))
                    })
                    .collect(),
            )
    }
}

/// Broker defaults that topic creation falls back to.
#[derive(Debug, Clone)]
pub struct TopicDefaults {
    pub num_partitions: i32,
    pub replication_factor: i16,
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
        odradek_controller::place_replicas(image, partitions, rf as usize)?
    } else {
        if spec.num_partitions != -1 || spec.replication_factor != -1 {
            return Err(ApiError::new(
                ResponseError::InvalidRequest,
                "both replica assignments and numPartitions/replicationFactor were given; use one",
            ));
        }
        odradek_controller::validate_assignments(image, 0, &spec.assignments)?;
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
            state: odradek_controller::new_partition(image, replicas)?,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> TopicDefaults {
        TopicDefaults {
            num_partitions: 1,
            replication_factor: 1,
        }
    }

    /// An image with broker 1 registered and unfenced.
    fn one_broker() -> MetadataImage {
        MetadataImage::from_records(&[
            MetadataRecord::RegisterBroker {
                broker_id: 1,
                incarnation_id: Uuid::new_v4(),
                host: "h".into(),
                port: 1,
                rack: None,
            },
            MetadataRecord::BrokerState {
                broker_id: 1,
                fenced: false,
                in_controlled_shutdown: false,
            },
        ])
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
        let image = one_broker();
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
        let mut image = one_broker();
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
            code(plan_topic_creation(&s, &one_broker(), &defaults())),
            ResponseError::InvalidConfig
        );
        s.configs = vec![("no.such".into(), Some("1".into()))];
        assert_eq!(
            code(plan_topic_creation(&s, &one_broker(), &defaults())),
            ResponseError::InvalidConfig
        );
        s.configs = vec![("retention.ms".into(), Some("100".into()))];
        assert!(plan_topic_creation(&s, &one_broker(), &defaults()).is_ok());
    }

    #[test]
    fn explicit_assignments() {
        let mut s = spec("t", -1, -1);
        s.assignments = BTreeMap::from([(0, vec![1]), (1, vec![1])]);
        assert!(plan_topic_creation(&s, &one_broker(), &defaults()).is_ok());
        s.assignments = BTreeMap::from([(0, vec![2])]);
        assert_eq!(
            code(plan_topic_creation(&s, &one_broker(), &defaults())),
            ResponseError::BrokerNotAvailable
        );
        s.assignments = BTreeMap::from([(1, vec![1])]);
        assert_eq!(
            code(plan_topic_creation(&s, &one_broker(), &defaults())),
            ResponseError::InvalidReplicaAssignment
        );
    }
}
