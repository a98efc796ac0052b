//! DescribeGroups (key 15).

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};
use kafka_protocol::protocol::StrBytes;
use odradek_protocol::frame::RawRequest;

use super::{decode, ready, Reply, RequestError};
use crate::broker::Broker;

pub fn handle(broker: &Arc<Broker>, req: &RawRequest) -> Result<Reply, RequestError> {
    let request: DescribeGroupsRequest = decode(req)?;
    let version = req.version();
    let groups = request
        .groups
        .iter()
        .map(|id| {
            let entry = DescribedGroup::default().with_group_id(id.clone());
            match broker
                .groups
                .with_core(id.0.as_str(), |core| core.describe_group(id.0.as_str()))
            {
                Err(e) => entry.with_error_code(e.code()),
                // Unknown: v6+ says GROUP_ID_NOT_FOUND, older versions "Dead".
                Ok(None) if version >= 6 => entry
                    .with_error_code(ResponseError::GroupIdNotFound.code())
                    .with_group_state(StrBytes::from_static_str("Dead")),
                Ok(None) => entry.with_group_state(StrBytes::from_static_str("Dead")),
                Ok(Some(d)) => entry
                    .with_group_state(StrBytes::from_static_str(d.state.as_str()))
                    .with_protocol_type(StrBytes::from_string(d.protocol_type))
                    .with_protocol_data(StrBytes::from_string(d.protocol_data))
                    .with_members(
                        d.members
                            .into_iter()
                            .map(|m| {
                                DescribedGroupMember::default()
                                    .with_member_id(StrBytes::from_string(m.member_id))
                                    .with_group_instance_id(if version >= 4 {
                                        m.group_instance_id.map(StrBytes::from_string)
                                    } else {
                                        None
                                    })
                                    .with_client_id(StrBytes::from_string(m.client_id))
                                    .with_client_host(StrBytes::from_string(m.client_host))
                                    .with_member_metadata(m.metadata)
                                    .with_member_assignment(m.assignment)
                            })
                            .collect(),
                    ),
            }
        })
        .collect();
    ready(req, &DescribeGroupsResponse::default().with_groups(groups))
}
