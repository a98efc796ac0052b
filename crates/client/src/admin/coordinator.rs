//! Steps 1 and 2: FindCoordinator, then what the coordinator says about the
//! group, all started over after a back-off while the coordinator moves,
//! loads or cannot be reached.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ApiKey, FindCoordinatorRequest};
use kafka_protocol::protocol::StrBytes;

use super::conn::FIND_COORDINATOR;
use super::{error_name, Admin, AdminError, PartitionOwner, TopicPartition, BACKOFF_START};

const COORDINATOR_KEY_GROUP: i8 = 0;

/// The errors that mean "ask FindCoordinator again".
pub(super) fn is_coordinator_error(code: i16) -> bool {
    matches!(
        ResponseError::try_from_code(code),
        Some(
            ResponseError::NotCoordinator
                | ResponseError::CoordinatorLoadInProgress
                | ResponseError::CoordinatorNotAvailable
        )
    )
}

/// Why an attempt at the coordinator steps must start over.
pub(super) enum Step {
    Retry(String),
    Fail(AdminError),
}

impl Step {
    /// An error from talking to `coordinator`. A coordinator that cannot be
    /// reached may have moved: ask again.
    pub(super) fn at_coordinator(coordinator: i32, e: AdminError) -> Step {
        match e {
            AdminError::Connection(e) => Step::Retry(format!("coordinator {coordinator}: {e}")),
            e => Step::Fail(e),
        }
    }

    /// A group-level error code in `api`'s response: a coordinator error
    /// starts over, any other fails.
    pub(super) fn group_error(
        api: &'static str,
        group: &str,
        code: i16,
        message: Option<&str>,
    ) -> Step {
        let error = error_name(code, message);
        if is_coordinator_error(code) {
            Step::Retry(error)
        } else {
            Step::Fail(AdminError::Kafka {
                api,
                subject: format!("group '{group}'"),
                error,
            })
        }
    }
}

impl From<AdminError> for Step {
    fn from(e: AdminError) -> Step {
        Step::Fail(e)
    }
}

/// What the coordinator said about the group.
pub(super) struct Coordinated {
    pub(super) coordinator: i32,
    pub(super) state: Option<String>,
    pub(super) owners: BTreeMap<TopicPartition, PartitionOwner>,
    pub(super) committed: BTreeMap<TopicPartition, i64>,
}

impl Admin {
    pub(super) async fn coordinated(&mut self, group: &str) -> Result<Coordinated, AdminError> {
        let mut backoff = BACKOFF_START;
        loop {
            match self.try_coordinated(group).await {
                Ok(c) => return Ok(c),
                Err(Step::Fail(e)) => return Err(e),
                Err(Step::Retry(why)) => {
                    if !self.back_off(&mut backoff).await {
                        return Err(self.timed_out(format!(
                            "waiting for the coordinator of group '{group}' (last: {why})"
                        )));
                    }
                }
            }
        }
    }

    async fn try_coordinated(&mut self, group: &str) -> Result<Coordinated, Step> {
        let coordinator = self.find_coordinator(group).await?;
        self.node(coordinator)
            .await
            .map_err(|e| Step::at_coordinator(coordinator, e))?;
        let described = self.describe_group(coordinator, group).await?;
        let committed = self.committed_offsets(coordinator, group).await?;
        Ok(Coordinated {
            coordinator,
            state: described.state,
            owners: described.owners,
            committed,
        })
    }

    async fn find_coordinator(&mut self, group: &str) -> Result<i32, Step> {
        let what = format!("finding the coordinator of group '{group}'");
        let version = self.any().await?.require(
            ApiKey::FindCoordinator,
            "FindCoordinator",
            &FIND_COORDINATOR,
        )?;
        let key = StrBytes::from_string(group.to_owned());
        let request = FindCoordinatorRequest::default().with_key_type(COORDINATOR_KEY_GROUP);
        let request = if version >= 4 {
            request.with_coordinator_keys(vec![key])
        } else {
            request.with_key(key)
        };
        let response = match self.call_any(version, &request, &what).await {
            Ok(r) => r,
            Err(AdminError::Connection(e)) => return Err(Step::Retry(e.to_string())),
            Err(e) => return Err(Step::Fail(e)),
        };
        let (code, message, node, host, port) = if version >= 4 {
            let c = response.coordinators.into_iter().next().unwrap_or_default();
            (c.error_code, c.error_message, c.node_id, c.host, c.port)
        } else {
            (
                response.error_code,
                response.error_message,
                response.node_id,
                response.host,
                response.port,
            )
        };
        if code != 0 {
            return Err(Step::group_error(
                "FindCoordinator",
                group,
                code,
                message.as_deref(),
            ));
        }
        let port = u16::try_from(port).ok().filter(|&p| p > 0).ok_or_else(|| {
            Step::Retry(format!("coordinator {} has no valid port ({port})", node.0))
        })?;
        self.addrs.insert(node.0, (host.to_string(), port));
        Ok(node.0)
    }
}
