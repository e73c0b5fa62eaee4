//! Flower's flow store: every decoded [`netflow9::Flow`] in LMDB (via heed),
//! in time buckets, with rollups, retention and the queries behind Flower's
//! area charts, flow tables, top-N lists and network map.
//!
//! - **Raw tier**: flows in blocks per time bucket (by `last_ms`, default 60 s),
//!   columnar and zstd-compressed, each block with its time range and an
//!   address Bloom filter so selective queries skip it.
//! - **Rollups** at 1 min, 5 min and 1 h: bytes, packets and flows per
//!   [`Dimension`], high-cardinality ones as top-K + "other"; flows that span
//!   buckets are pro-rated.
//! - **Retention** per tier, measured from when data was *written* (so
//!   replayed old captures are not deleted on arrival), and a disk budget.
//! - **One [`Writer`]**, one transaction per batch; readers use short read
//!   transactions. A crash loses nothing committed; rollups catch up from
//!   raw data on the next start.
//!
//! The on-disk format is documented in [`codec`] and `docs/design.md`.
//!
//! ```
//! # let dir = tempfile::tempdir().unwrap();
//! use flowstore::{filter::Filter, Store, StoreConfig, TimeRange, TopQuery, GroupBy, Dimension, Metric};
//! let store = Store::open(dir.path(), StoreConfig::default())?;
//! let mut writer = store.writer()?;
//! let flow = netflow9::Flow {
//!     src_addr: "10.10.1.66".parse().unwrap(),
//!     bytes: 3_320_102, packets: 2_220,
//!     first_ms: 1_709_294_415_000, last_ms: 1_709_294_416_500,
//!     ..Default::default()
//! };
//! writer.append(&[flow])?;
//! writer.flush()?;
//! let top = store.top(&TopQuery {
//!     range: TimeRange::all(),
//!     by: GroupBy::Dim(Dimension::SrcAddr),
//!     metric: Metric::Bytes,
//!     n: 10,
//!     filter: Filter::parse("")?,
//!     raw: true,
//! })?;
//! assert_eq!(top.rows[0].agg.bytes, 3_320_102);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
pub mod synth;

pub mod cidr;
pub mod filter;

pub mod codec;
mod error;
mod groups;
mod meta;
mod query;
mod rollup;
mod store;
mod writer;

pub use error::{Error, Result};

/// How far past the writer's clock a flow may end (one day): a flow that
/// ends later is stored as ending now (its duration kept) and counted in
/// [`StoreStats::future_flows`]. Time-bucketed data cannot hold the year
/// a broken clock or a hostile packet names (`last_ms = u64::MAX`) without
/// every walk over time reaching it.
pub const MAX_FUTURE_SECS: u64 = 86_400;
pub use meta::{Role, StoredTemplate, User, UserChange};
pub use query::{
    Cursor, FlowsPage, FlowsQuery, GroupBy, Link, Matrix, Metric, Network, Order, Series,
    SeriesLine, SeriesQuery, Summary, Tier, TimeRange, Top, TopQuery, TopRow,
};
pub use rollup::{Agg, Dimension, Group};
pub use store::{Retention, Store, StoreConfig, StoreStats};
pub use writer::{AppendReport, MaintenanceReport, Writer};

use netflow9::Flow;

/// A protocol's usual name (`tcp`, `udp`, `icmp`, …) or its number.
#[must_use]
pub fn proto_name(p: u8) -> std::borrow::Cow<'static, str> {
    match p {
        1 => "icmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        47 => "gre".into(),
        50 => "esp".into(),
        58 => "icmp6".into(),
        132 => "sctp".into(),
        n => n.to_string().into(),
    }
}

/// Totals over a set of flows.
///
/// ```
/// use flowstore::Totals;
/// let mut t = Totals::default();
/// t.add(&netflow9::Flow { bytes: 10, packets: 2, ..Default::default() });
/// assert_eq!((t.flows, t.bytes, t.packets), (1, 10, 2));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Totals {
    /// Number of flows.
    pub flows: u64,
    /// Sum of raw (unsampled) bytes.
    pub bytes: u64,
    /// Sum of raw packets.
    pub packets: u64,
}

impl Totals {
    /// Adds one flow.
    pub fn add(&mut self, flow: &Flow) {
        self.flows += 1;
        self.bytes += flow.bytes;
        self.packets += flow.packets;
    }
}
