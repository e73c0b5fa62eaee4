//! Flow storage for Flower (see the flowstore issue): LMDB, time buckets,
//! rollups, retention and the queries behind charts, tables, top-N and the
//! network map. This crate is being built; today it holds the in-memory
//! aggregate that `flowerd decode --summary` reports.

use netflow9::Flow;

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
