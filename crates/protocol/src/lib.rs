//! Odradek's protocol glue: pure functions over bytes, no I/O.
//!
//! Message structs come from the `kafka-protocol` crate; this crate adds
//! what the broker needs around them: framing and headers ([`frame`]) and a
//! zero-copy view of magic-v2 record batches ([`batch`]).

pub mod batch;
pub mod frame;
