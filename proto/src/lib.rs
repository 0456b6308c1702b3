//! Latch's public API, version 1, generated from `proto/latch/v1/*.proto`.
//!
//! The protos are the product: SDKs in other languages are generated from the same files.

#![allow(clippy::doc_lazy_continuation, clippy::large_enum_variant)]

/// Messages and services of the `latch.v1` package.
pub mod v1 {
    tonic::include_proto!("latch.v1");
}

/// The encoded `FileDescriptorSet` of every `latch.v1` file, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/latch_descriptor.bin"));

pub mod connector_protocol;
