//! `odradek-client`: a minimal Kafka client.
//!
//! - [`connection`]: one broker connection, one request at a time
//!   ([`BrokerClient`]); the broker's replica fetchers use it too.
//! - [`admin`]: what Kafka's admin tools compute client-side, starting with
//!   consumer-group lag ([`admin::group_lag`]).

pub mod admin;
pub mod connection;

pub use connection::{BrokerClient, ClientError};
