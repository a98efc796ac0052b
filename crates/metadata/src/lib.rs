//! Cluster metadata as a log of records replayed into an in-memory image.
//!
//! This is the KRaft design in its single-voter form: every change to
//! topics, partitions or configs is a [`MetadataRecord`] appended to the
//! metadata log ([`log::MetadataLog`]) and then applied to the
//! [`image::MetadataImage`]. On start-up the log is replayed into a fresh
//! image. The cluster issue replaces the local log with a Raft-replicated
//! one; the records and the image stay the same.
//!
//! Architecture invariant: the image is only ever changed by applying a
//! record that is already durable in the log, so the image after a restart
//! equals the image before it.

pub mod image;
pub mod log;
pub mod record;

pub use image::{BrokerImage, MetadataImage, PartitionImage, TopicImage, NO_LEADER};
pub use log::{MetadataLog, MetadataLogError};
pub use record::{MetadataRecord, RecordError};
