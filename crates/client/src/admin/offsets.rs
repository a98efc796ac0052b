//! The group's committed offsets, from its coordinator.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::{ApiKey, GroupId, OffsetFetchRequest};
use kafka_protocol::protocol::StrBytes;

use super::conn::OFFSET_FETCH;
use super::coordinator::Step;
use super::{error_name, Admin, TopicPartition};

impl Admin {
    /// Every offset the group has committed (OffsetFetch, all topics).
    pub(super) async fn committed_offsets(
        &mut self,
        coordinator: i32,
        group: &str,
    ) -> Result<BTreeMap<TopicPartition, i64>, Step> {
        let what = format!("fetching the committed offsets of group '{group}'");
        let retry = |e| Step::at_coordinator(coordinator, e);
        let version = self.node(coordinator).await.map_err(retry)?.require(
            ApiKey::OffsetFetch,
            "OffsetFetch",
            &OFFSET_FETCH,
        )?;
        // No member id: an admin read, which KIP-848 groups allow too.
        let request = OffsetFetchRequest::default()
            .with_require_stable(false)
            .with_groups(vec![OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(StrBytes::from_string(group.to_owned())))
                .with_member_id(None)
                .with_member_epoch(-1)
                .with_topics(None)]);
        let response = self
            .call_node(coordinator, version, &request, &what)
            .await
            .map_err(retry)?;
        let g = response.groups.into_iter().next().unwrap_or_default();
        let unstable = ResponseError::UnstableOffsetCommit.code();
        match g.error_code {
            0 => {}
            code if code == ResponseError::GroupIdNotFound.code() => return Ok(BTreeMap::new()),
            code if code == unstable => return Err(Step::Retry(error_name(code, None))),
            code => return Err(Step::group_error("OffsetFetch", group, code, None)),
        }
        let mut committed = BTreeMap::new();
        for t in g.topics {
            for p in t.partitions {
                let tp = TopicPartition::new(t.name.0.to_string(), p.partition_index);
                match p.error_code {
                    0 if p.committed_offset >= 0 => {
                        committed.insert(tp, p.committed_offset);
                    }
                    0 => {}
                    code if code == unstable => return Err(Step::Retry(error_name(code, None))),
                    code => self.warnings.push(format!(
                        "the committed offset of {tp} is unknown: {}",
                        error_name(code, None)
                    )),
                }
            }
        }
        Ok(committed)
    }
}
