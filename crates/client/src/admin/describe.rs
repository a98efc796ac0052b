//! The group's state and partition owners, from its coordinator.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    ApiKey, ConsumerGroupDescribeRequest, DescribeGroupsRequest, GroupId,
};
use kafka_protocol::protocol::StrBytes;

use super::conn::{CONSUMER_GROUP_DESCRIBE, DESCRIBE_GROUPS};
use super::coordinator::Step;
use super::{decode_classic_assignment, Admin, PartitionOwner, TopicPartition};

pub(super) struct Described {
    pub(super) state: Option<String>,
    pub(super) owners: BTreeMap<TopicPartition, PartitionOwner>,
}

impl Admin {
    /// State and partition owners: ConsumerGroupDescribe first (KIP-848
    /// groups), DescribeGroups when the group is not such a group, as
    /// Kafka's admin client does. `state: None` for an unknown group.
    pub(super) async fn describe_group(
        &mut self,
        coordinator: i32,
        group: &str,
    ) -> Result<Described, Step> {
        let what = format!("describing group '{group}'");
        let retry = |e| Step::at_coordinator(coordinator, e);
        let conn = self.node(coordinator).await.map_err(retry)?;
        let consumer_version =
            conn.version(ApiKey::ConsumerGroupDescribe, &CONSUMER_GROUP_DESCRIBE);
        let classic_version =
            conn.require(ApiKey::DescribeGroups, "DescribeGroups", &DESCRIBE_GROUPS);
        if let Some(version) = consumer_version {
            let request = ConsumerGroupDescribeRequest::default()
                .with_group_ids(vec![GroupId(StrBytes::from_string(group.to_owned()))]);
            let response = self
                .call_node(coordinator, version, &request, &what)
                .await
                .map_err(retry)?;
            let g = response.groups.into_iter().next().unwrap_or_default();
            match g.error_code {
                0 => {
                    let mut owners = BTreeMap::new();
                    for m in g.members {
                        let owner = PartitionOwner {
                            consumer_id: m.member_id.to_string(),
                            host: m.client_host.to_string(),
                            client_id: m.client_id.to_string(),
                        };
                        for t in m.assignment.topic_partitions {
                            for p in t.partitions {
                                owners.insert(
                                    TopicPartition::new(t.topic_name.0.to_string(), p),
                                    owner.clone(),
                                );
                            }
                        }
                    }
                    return Ok(Described {
                        state: Some(g.group_state.to_string()),
                        owners,
                    });
                }
                // Not a KIP-848 group (or the broker has them disabled).
                code if code == ResponseError::GroupIdNotFound.code()
                    || code == ResponseError::UnsupportedVersion.code() => {}
                code => {
                    return Err(Step::group_error(
                        "ConsumerGroupDescribe",
                        group,
                        code,
                        g.error_message.as_deref(),
                    ))
                }
            }
        }
        let version = classic_version?;
        let request = DescribeGroupsRequest::default()
            .with_groups(vec![GroupId(StrBytes::from_string(group.to_owned()))]);
        let response = self
            .call_node(coordinator, version, &request, &what)
            .await
            .map_err(retry)?;
        let g = response.groups.into_iter().next().unwrap_or_default();
        match g.error_code {
            0 if g.group_state.as_str() != "Dead" => {}
            code if code == 0 || code == ResponseError::GroupIdNotFound.code() => {
                return Ok(Described {
                    state: None,
                    owners: BTreeMap::new(),
                })
            }
            code => {
                return Err(Step::group_error(
                    "DescribeGroups",
                    group,
                    code,
                    g.error_message.as_deref(),
                ))
            }
        }
        let mut owners = BTreeMap::new();
        let protocol_type = g.protocol_type.as_str();
        if protocol_type.is_empty() || protocol_type == "consumer" {
            for m in &g.members {
                match decode_classic_assignment(&m.member_assignment) {
                    Ok(partitions) => {
                        for tp in partitions {
                            owners.insert(
                                tp,
                                PartitionOwner {
                                    consumer_id: m.member_id.to_string(),
                                    host: m.client_host.to_string(),
                                    client_id: m.client_id.to_string(),
                                },
                            );
                        }
                    }
                    Err(e) => self.warnings.push(format!(
                        "the assignment of member {} cannot be read ({e}); its partitions \
                         are shown without an owner",
                        m.member_id.as_str()
                    )),
                }
            }
        } else {
            self.warnings.push(format!(
                "group '{group}' uses protocol type '{protocol_type}', not 'consumer': \
                 partition owners are not shown"
            ));
        }
        Ok(Described {
            state: Some(g.group_state.to_string()),
            owners,
        })
    }
}
