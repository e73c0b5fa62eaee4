//! The on-disk format: databases, keys and values. Every integer is
//! big-endian so byte order is numeric (and time) order; nothing
//! native-endian or `usize` is ever stored.
//!
//! Format version 1. One LMDB environment in the store directory holds:
//!
//! ```text
//! database    key                                   value
//! ----------  ------------------------------------  ------------------------------------------
//! meta        UTF-8 name                            "format_version" → u32; "bucket_secs" → u32;
//!                                                   "high_water_ms" → u64 (newest last_ms stored)
//! raw         bucket u64 | seq u32        (12 B)    a block of flows (see `block`): header with
//!                                                   time range, count and address Bloom filter,
//!                                                   then zstd-compressed columns
//! buckets     bucket u64                  (8 B)     BucketInfo: written_at_s u64, flows u64,
//!                                                   bytes u64, packets u64, next_seq u32,
//!                                                   rolled_seq u32 (blocks below it are in
//!                                                   the rollups)
//! rollup_1m   bucket u64 | dimension u8   (9 B)     a rollup blob (see `rollup`): "other" totals,
//! rollup_5m   (same)                                folded-key count, then top-K entries
//! rollup_1h   (same)                                (key, bytes, packets, flows), bytes descending
//! rollup_index kind u8 | tier u8 | bucket u64       kind 0: written_at_s u64 of a rollup bucket;
//!                                                   kind 1: dirty mark of a 5m/1h window (its
//!                                                   value: when marked), rebuilt from finer tiers
//! networks    UTF-8 name                            JSON: {"name", "cidrs": [...]}
//! users       UTF-8 name                            JSON: {"name", "role", "password_hash"}
//! templates   exporter 16 B | source u32 | id u16   JSON: the template's field specifiers
//! settings    UTF-8 name                            JSON value
//! ```
//!
//! `bucket` is the bucket's start in Unix seconds; raw buckets are
//! `bucket_secs` wide (default 60) and hold flows by their `last_ms`.
//! Rollup buckets are 60, 300 and 3600 s wide. Addresses in keys are 16
//! bytes: IPv4 as IPv4-mapped IPv6.

pub(crate) mod block;
pub(crate) mod keys;
pub(crate) mod varint;

/// The format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
