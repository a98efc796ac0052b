//! ListGroups (key 16): every group on every loaded coordinator, filtered
//! by state (v4+) and type (v5+).

use std::sync::Arc;

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};
use kafka_protocol::protocol::StrBytes;
use odradek_group::GroupState;
use odradek_protocol::frame::RawRequest;

use super::{decode, ready, Reply, RequestError};
use crate::broker::Broker;

pub fn handle(broker: &Arc<Broker>, req: &RawRequest) -> Result<Reply, RequestError> {
    let request: ListGroupsRequest = decode(req)?;
    // Kafka matches state names case-insensitively.
    let states: Vec<GroupState> = request
        .states_filter
        .iter()
        .filter_map(|f| GroupState::parse(f.as_str()))
        .collect();
    if !request.states_filter.is_empty() && states.is_empty() {
        return ready(req, &ListGroupsResponse::default());
    }
    let types: Vec<String> = request
        .types_filter
        .iter()
        .map(|t| t.as_str().to_ascii_lowercase())
        .collect();
    let groups = broker
        .groups
        .for_each_core(|core| core.list_groups(&states))
        .into_iter()
        .flatten()
        .filter(|g| types.is_empty() || types.contains(&g.group_type.to_string()))
        .map(|g| {
            ListedGroup::default()
                .with_group_id(GroupId(StrBytes::from_string(g.group_id)))
                .with_protocol_type(StrBytes::from_string(g.protocol_type))
                .with_group_state(StrBytes::from_static_str(g.state.as_str()))
                .with_group_type(StrBytes::from_static_str(g.group_type))
        })
        .collect();
    ready(req, &ListGroupsResponse::default().with_groups(groups))
}
