//! The Odradek broker: network, request handlers, and the state they act
//! on (controller, hosted partitions).
//!
//! Entry point: [`server::start`] with a [`config::BrokerConfig`].

pub mod broker;
pub mod clock;
pub mod cluster_config;
pub mod cluster_view;
pub mod config;
pub mod connection;
pub mod controller;
pub mod errors;
pub mod groups;
pub mod handlers;
pub mod lifecycle;
pub mod meta_properties;
pub mod partition;
pub mod producer_state;
pub mod replica_manager;
pub mod replication;
pub mod server;
pub mod topic_config;

pub use config::BrokerConfig;
pub use server::{start, RunningBroker};
