//! Vigie's wire schema in Rust: the code generated from `proto/vigie/v1/*.proto` (module
//! [`v1`]) and the conversions between the protobuf form of the event contract and the core
//! types of `vigie-core`.
//!
//! Decoding applies exactly the rules of the JSON decoder ([`vigie_core::decode_json`]): a
//! protobuf event is accepted or rejected for the same reasons, naming the same field, so a
//! producer can switch between the two forms without changing what Vigie counts.
//!
//! What it must not do: no I/O, no async, no clock, no logging. It turns bytes into values and
//! back; receiving, acknowledging and counting belong to the edges.

mod decode;
mod encode;
mod names;

pub use decode::decode_protobuf;
pub use encode::encode_protobuf;

/// Code generated from the `vigie.v1` protobuf package (`proto/vigie/v1/`).
// The comments of .proto files are written for the generators of every language, not for
// rustdoc: their wrapped list items are not indented the way clippy expects.
#[allow(clippy::doc_lazy_continuation, clippy::doc_overindented_list_items)]
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/vigie.v1.rs"));
}

/// The compiled descriptors of `proto/vigie/v1/` (a `FileDescriptorSet`), for gRPC server
/// reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/vigie_v1_descriptor.bin"));
