//! Step 3: each partition's log-end offset (high watermark), from its
//! leader. Leader errors refresh the metadata and retry the partitions
//! concerned until the deadline.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{ApiKey, BrokerId, ListOffsetsRequest, MetadataRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::conn::{LIST_OFFSETS, METADATA};
use super::{error_name, Admin, AdminError, TopicPartition, BACKOFF_START};

const LATEST_TIMESTAMP: i64 = -1;
const READ_UNCOMMITTED: i8 = 0;

fn is_retriable(code: i16) -> bool {
    ResponseError::try_from_code(code).is_some_and(|e| e.is_retriable())
}

impl Admin {
    /// The high watermark of each partition in `wanted` that some leader
    /// reports before the deadline; a warning for each other one.
    pub(super) async fn log_end_offsets(
        &mut self,
        wanted: &BTreeSet<TopicPartition>,
    ) -> Result<BTreeMap<TopicPartition, i64>, AdminError> {
        let mut log_end = BTreeMap::new();
        let mut pending: BTreeSet<TopicPartition> = wanted.clone();
        // Why each pending partition has no answer yet.
        let mut why: BTreeMap<TopicPartition, String> = BTreeMap::new();
        let mut backoff = BACKOFF_START;
        while !pending.is_empty() {
            let leaders = match self.leaders(&mut pending, &mut why).await {
                Ok(leaders) => leaders,
                Err(AdminError::Connection(e)) => {
                    for tp in &pending {
                        why.insert(tp.clone(), format!("metadata: {e}"));
                    }
                    BTreeMap::new()
                }
                Err(AdminError::Timeout { .. }) => break,
                Err(e) => return Err(e),
            };
            for (leader, partitions) in leaders {
                match self.list_latest(leader, &partitions).await {
                    Ok(answers) => {
                        for (tp, answer) in answers {
                            match answer {
                                Ok(offset) => {
                                    pending.remove(&tp);
                                    why.remove(&tp);
                                    log_end.insert(tp, offset);
                                }
                                Err(code) if is_retriable(code) => {
                                    why.insert(
                                        tp,
                                        format!("{} from broker {leader}", error_name(code, None)),
                                    );
                                }
                                Err(code) => {
                                    pending.remove(&tp);
                                    self.warnings.push(format!(
                                        "the log-end offset of {tp} is unknown: {} from broker \
                                         {leader}",
                                        error_name(code, None)
                                    ));
                                }
                            }
                        }
                    }
                    Err(AdminError::Connection(e)) => {
                        for tp in partitions {
                            why.insert(tp, format!("leader {leader}: {e}"));
                        }
                    }
                    Err(AdminError::Timeout { .. }) => break,
                    Err(e) => return Err(e),
                }
            }
            if pending.is_empty() || !self.back_off(&mut backoff).await {
                break;
            }
        }
        for tp in pending {
            let reason = why
                .remove(&tp)
                .unwrap_or_else(|| "no answer before the timeout".to_owned());
            self.warnings.push(format!(
                "the log-end offset of {tp} is unknown after {} ms: {reason}",
                self.timeout.as_millis()
            ));
        }
        Ok(log_end)
    }

    /// The leader of each pending partition, from Metadata. Partitions of
    /// topics that do not exist leave `pending` with a warning; those
    /// without a leader stay pending with the reason in `why`.
    async fn leaders(
        &mut self,
        pending: &mut BTreeSet<TopicPartition>,
        why: &mut BTreeMap<TopicPartition, String>,
    ) -> Result<BTreeMap<i32, Vec<TopicPartition>>, AdminError> {
        let topics: BTreeSet<&str> = pending.iter().map(|tp| tp.topic.as_str()).collect();
        let version = self
            .any()
            .await?
            .require(ApiKey::Metadata, "Metadata", &METADATA)?;
        let request = MetadataRequest::default()
            .with_allow_auto_topic_creation(false)
            .with_topics(Some(
                topics
                    .iter()
                    .map(|t| {
                        MetadataRequestTopic::default()
                            .with_name(Some(TopicName(StrBytes::from_string((*t).to_owned()))))
                    })
                    .collect(),
            ));
        let response = self
            .call_any(version, &request, "asking for partition leaders")
            .await?;
        for b in &response.brokers {
            if let Ok(port) = u16::try_from(b.port) {
                self.addrs.insert(b.node_id.0, (b.host.to_string(), port));
            }
        }
        let mut leaders: BTreeMap<i32, Vec<TopicPartition>> = BTreeMap::new();
        let mut known: BTreeSet<TopicPartition> = BTreeSet::new();
        let mut gone = Vec::new();
        for t in &response.topics {
            let Some(name) = t.name.as_ref().map(|n| n.0.to_string()) else {
                continue;
            };
            if t.error_code != 0 && !is_retriable(t.error_code)
                || t.error_code == ResponseError::UnknownTopicOrPartition.code()
            {
                gone.push((name, error_name(t.error_code, None)));
                continue;
            }
            for p in &t.partitions {
                let tp = TopicPartition::new(name.clone(), p.partition_index);
                if !pending.contains(&tp) {
                    continue;
                }
                known.insert(tp.clone());
                if p.leader_id.0 < 0 || p.error_code == ResponseError::LeaderNotAvailable.code() {
                    why.insert(
                        tp,
                        format!("no leader ({})", error_name(p.error_code, None)),
                    );
                } else {
                    leaders.entry(p.leader_id.0).or_default().push(tp);
                }
            }
            if t.error_code != 0 {
                for tp in pending.iter().filter(|tp| tp.topic == name) {
                    why.insert(
                        tp.clone(),
                        format!("topic {}", error_name(t.error_code, None)),
                    );
                }
            }
        }
        for (topic, error) in gone {
            pending.retain(|tp| {
                let keep = tp.topic != topic;
                if !keep {
                    self.warnings.push(format!(
                        "the log-end offset of {tp} is unknown: topic '{topic}' {error}"
                    ));
                }
                keep
            });
        }
        // A partition the topic does not have (any more).
        let listed: BTreeSet<String> = response
            .topics
            .iter()
            .filter(|t| t.error_code == 0)
            .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
            .collect();
        pending.retain(|tp| {
            let missing = listed.contains(&tp.topic) && !known.contains(tp);
            if missing {
                self.warnings.push(format!(
                    "the log-end offset of {tp} is unknown: the topic has no such partition"
                ));
            }
            !missing
        });
        Ok(leaders)
    }

    /// ListOffsets (latest, READ_UNCOMMITTED) to `leader` for `partitions`:
    /// each partition's high watermark or error code.
    async fn list_latest(
        &mut self,
        leader: i32,
        partitions: &[TopicPartition],
    ) -> Result<Vec<(TopicPartition, Result<i64, i16>)>, AdminError> {
        let what = format!("asking broker {leader} for log-end offsets");
        let version =
            self.node(leader)
                .await?
                .require(ApiKey::ListOffsets, "ListOffsets", &LIST_OFFSETS)?;
        let mut by_topic: BTreeMap<&str, Vec<ListOffsetsPartition>> = BTreeMap::new();
        for tp in partitions {
            by_topic.entry(&tp.topic).or_default().push(
                ListOffsetsPartition::default()
                    .with_partition_index(tp.partition)
                    .with_current_leader_epoch(-1)
                    .with_timestamp(LATEST_TIMESTAMP),
            );
        }
        let timeout_ms = i32::try_from(self.left(&what)?.as_millis()).unwrap_or(i32::MAX);
        let request = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_isolation_level(READ_UNCOMMITTED)
            .with_timeout_ms(timeout_ms)
            .with_topics(
                by_topic
                    .into_iter()
                    .map(|(t, ps)| {
                        ListOffsetsTopic::default()
                            .with_name(TopicName(StrBytes::from_string(t.to_owned())))
                            .with_partitions(ps)
                    })
                    .collect(),
            );
        let response = self.call_node(leader, version, &request, &what).await?;
        let mut answers: BTreeMap<TopicPartition, Result<i64, i16>> = BTreeMap::new();
        for t in response.topics {
            for p in t.partitions {
                let tp = TopicPartition::new(t.name.0.to_string(), p.partition_index);
                answers.insert(
                    tp,
                    if p.error_code == 0 {
                        Ok(p.offset)
                    } else {
                        Err(p.error_code)
                    },
                );
            }
        }
        // A partition the answer left out: UNKNOWN_SERVER_ERROR (a warning).
        Ok(partitions
            .iter()
            .map(|tp| {
                let answer = answers
                    .remove(tp)
                    .unwrap_or(Err(ResponseError::UnknownServerError.code()));
                (tp.clone(), answer)
            })
            .collect())
    }
}
