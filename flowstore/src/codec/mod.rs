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
//!                                                   then five column groups, each its own zstd
//!                                                   frame (time, counters, addresses as a
//!                                                   dictionary + indices, ports, the rest)
//! buckets     bucket u64                  (8 B)     BucketInfo: written_at_s u64, flows u64,
//!                                                   bytes u64, packets u64, next_seq u32,
//!                                                   rolled_seq u32 (blocks below it are in
//!                                                   the rollups)
//! rollup_1m   bucket u64 | dimension u8   (9 B)     a rollup blob (see `rollup`): "other" totals,
//! rollup_5m   (same)                                folded-key count, then top-K entries (key,
//! rollup_1h   (same)                                5 counters), bytes descending; addresses in
//!                                                   keys are a family byte + 4 or 16 bytes
//! matrix_1h   hour u64                    (8 B)     network-map rollup: "other", folded-pair
//!                                                   count, then every (src prefix, dst prefix)
//!                                                   pair (IPv4 /24 or IPv6 /64: family byte +
//!                                                   3 or 8 bytes each) with 5 counters
//! rollup_index kind u8 | tier u8 | bucket u64       kind 0: written_at_s u64 of a rollup bucket
//!                                                   (tier 3: of a matrix_1h hour); kind 1: dirty
//!                                                   mark of a 5m/1h window (its value: when
//!                                                   marked), rebuilt from finer tiers; kind 2:
//!                                                   sealed mark (finer buckets deleted: later
//!                                                   changes are added to the window instead)
//! networks    UTF-8 name                            JSON: {"name", "cidrs": [...]}
//! users       UTF-8 name                            JSON: {"name", "role", "password_hash"}
//! templates   exporter 16 B | source u32 | id u16   JSON: the template's field specifiers
//! settings    UTF-8 name                            JSON value
//! ```
//!
//! `bucket` is the bucket's start in Unix seconds; raw buckets are
//! `bucket_secs` wide (default 60) and hold flows by their `last_ms`.
//! Rollup buckets are 60, 300 and 3600 s wide. Addresses in keys are 16
//! bytes: IPv4 as IPv4-mapped IPv6. Counters are LEB128 varints: bytes,
//! packets, flows, estimated bytes − bytes, estimated packets − packets.

pub(crate) mod block;
pub(crate) mod keys;
pub(crate) mod varint;

/// The format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// Entry points for the fuzz targets (compiled only under `cargo fuzz`,
/// which sets `--cfg fuzzing`): everything read back from disk goes through
/// these decoders, which must reject any bytes without panicking.
#[cfg(fuzzing)]
pub mod fuzz {
    use crate::rollup::{DimAgg, Dimension, MatrixAgg};

    /// Decodes `bytes` as a raw block (header, Bloom filter, columns).
    pub fn block(bytes: &[u8]) {
        if let Some(h) = super::block::BlockHeader::parse(bytes) {
            let _ = h.may_contain(std::net::IpAddr::from([10, 0, 0, 1]));
            let mut flows = Vec::new();
            if super::block::Decoder::default()
                .decode(&h, &mut flows)
                .is_some()
            {
                assert_eq!(flows.len(), h.count as usize);
            }
        }
    }

    /// Decodes `bytes` as a rollup blob of every dimension, and as a
    /// network-map blob (visited, and merged into a table twice: the
    /// second merge finds every pair already there).
    pub fn rollup_blob(bytes: &[u8]) {
        for dim in Dimension::ALL {
            let mut agg = DimAgg::default();
            let _ = agg.decode_into(dim, bytes, 64);
            assert!(agg.groups.len() <= 64);
        }
        let mut visited = 0usize;
        let folded = MatrixAgg::visit(bytes, |_, _, _| visited += 1);
        let mut m = MatrixAgg::default();
        if m.decode_into(bytes).is_some() {
            assert!(folded.is_some());
            let pairs = m.len();
            assert!(pairs <= visited);
            let _ = m.decode_into(bytes);
            assert_eq!(m.len(), pairs);
        }
    }
}
