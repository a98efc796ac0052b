//! The coordinator's error outcomes.
//!
//! Each variant is one Kafka error the group protocol defines; the names are
//! Kafka's. They are values of the protocol (a client reacts to
//! REBALANCE_IN_PROGRESS by rejoining), not failures of this crate, which
//! is why they appear inside responses rather than as `Err`s.

use kafka_protocol::ResponseError;

/// A Kafka error returned by the group coordinator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupError {
    CoordinatorNotAvailable,
    NotCoordinator,
    InvalidGroupId,
    InvalidSessionTimeout,
    UnknownMemberId,
    MemberIdRequired,
    IllegalGeneration,
    RebalanceInProgress,
    InconsistentGroupProtocol,
    GroupMaxSizeReached,
    FencedInstanceId,
    GroupIdNotFound,
    NonEmptyGroup,
    GroupSubscribedToTopic,
    OffsetMetadataTooLarge,
    /// KIP-848: the member's epoch is not the coordinator's; it must
    /// abandon its partitions and rejoin with epoch 0.
    FencedMemberEpoch,
    /// KIP-848 OffsetCommit/OffsetFetch with an epoch other than the
    /// member's current one.
    StaleMemberEpoch,
    UnsupportedAssignor,
    UnreleasedInstanceId,
    InvalidRequest,
    InvalidRegularExpression,
    UnsupportedVersion,
}

impl GroupError {
    /// The Kafka protocol error this outcome is sent as.
    pub fn response_error(self) -> ResponseError {
        match self {
            GroupError::CoordinatorNotAvailable => ResponseError::CoordinatorNotAvailable,
            GroupError::NotCoordinator => ResponseError::NotCoordinator,
            GroupError::InvalidGroupId => ResponseError::InvalidGroupId,
            GroupError::InvalidSessionTimeout => ResponseError::InvalidSessionTimeout,
            GroupError::UnknownMemberId => ResponseError::UnknownMemberId,
            GroupError::MemberIdRequired => ResponseError::MemberIdRequired,
            GroupError::IllegalGeneration => ResponseError::IllegalGeneration,
            GroupError::RebalanceInProgress => ResponseError::RebalanceInProgress,
            GroupError::InconsistentGroupProtocol => ResponseError::InconsistentGroupProtocol,
            GroupError::GroupMaxSizeReached => ResponseError::GroupMaxSizeReached,
            GroupError::FencedInstanceId => ResponseError::FencedInstanceId,
            GroupError::GroupIdNotFound => ResponseError::GroupIdNotFound,
            GroupError::NonEmptyGroup => ResponseError::NonEmptyGroup,
            GroupError::GroupSubscribedToTopic => ResponseError::GroupSubscribedToTopic,
            GroupError::OffsetMetadataTooLarge => ResponseError::OffsetMetadataTooLarge,
            GroupError::FencedMemberEpoch => ResponseError::FencedMemberEpoch,
            GroupError::StaleMemberEpoch => ResponseError::StaleMemberEpoch,
            GroupError::UnsupportedAssignor => ResponseError::UnsupportedAssignor,
            GroupError::UnreleasedInstanceId => ResponseError::UnreleasedInstanceId,
            GroupError::InvalidRequest => ResponseError::InvalidRequest,
            GroupError::InvalidRegularExpression => ResponseError::InvalidRegularExpression,
            GroupError::UnsupportedVersion => ResponseError::UnsupportedVersion,
        }
    }

    /// The wire error code.
    pub fn code(self) -> i16 {
        self.response_error().code()
    }
}

/// The wire error code of an optional error (0 for none).
pub fn error_code(error: Option<GroupError>) -> i16 {
    error.map_or(0, GroupError::code)
}
