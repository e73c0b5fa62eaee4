//! What the decoder saw: every packet, record, template and problem counted.

use crate::error::ErrorKind;

/// Decoder-wide counters. They only go up, except `sequence_lost`: a late
/// packet that fills a gap counted as lost takes one back (and counts in
/// `sequence_reordered`). A duplicate of a packet already seen takes
/// nothing back (it counts in `sequence_duplicates`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Counters {
    /// Export packets with a valid v9 header.
    pub packets: u64,
    /// Datagrams rejected at the header (too short, not version 9).
    pub rejected_packets: u64,
    /// Data records (flows) decoded, replayed ones included.
    pub records: u64,
    /// Options data records decoded.
    pub options_records: u64,
    /// Template records received (refreshes included).
    pub templates: u64,
    /// Options Template records received.
    pub options_templates: u64,
    /// Templates evicted to make room (least recently refreshed first).
    pub template_evictions: u64,
    /// Templates dropped because their exporter restarted.
    pub templates_dropped_on_restart: u64,
    /// Data FlowSets whose template was unknown on arrival.
    pub unknown_template_flowsets: u64,
    /// Of those, FlowSets stored in the pending buffer.
    pub pending_buffered: u64,
    /// Pending FlowSets decoded when their template arrived.
    pub pending_replayed: u64,
    /// Pending FlowSets dropped because the buffer was full (or too small).
    pub pending_overflow: u64,
    /// Pending FlowSets dropped because their template did not come in time.
    pub pending_expired: u64,
    /// FlowSets with a reserved ID (2–255), skipped.
    pub reserved_flowsets: u64,
    /// Malformed structures, by [`ErrorKind::index`].
    pub malformed: [u64; ErrorKind::COUNT],
    /// Export packets missing according to sequence numbers (a late packet
    /// that arrives after all lowers it by one).
    pub sequence_lost: u64,
    /// Export packets that arrived out of order (late, and not seen before).
    pub sequence_reordered: u64,
    /// Export packets whose sequence number was seen already (see
    /// [`crate::DomainStats::sequence_duplicates`]); they change neither
    /// `sequence_lost` nor `sequence_reordered`.
    pub sequence_duplicates: u64,
    /// Sequence numbers that jumped too far to be losses (see
    /// [`crate::DomainStats::sequence_resyncs`]).
    pub sequence_resyncs: u64,
    /// Exporter restarts detected (sys_uptime went backwards).
    pub exporter_restarts: u64,
    /// (exporter, Source ID) states evicted to make room.
    pub domain_evictions: u64,
}

impl Counters {
    /// Sum of all malformed counters.
    #[must_use]
    pub fn malformed_total(&self) -> u64 {
        self.malformed.iter().sum()
    }

    /// Malformed count of one kind.
    #[must_use]
    pub fn malformed(&self, kind: ErrorKind) -> u64 {
        self.malformed.get(kind.index()).copied().unwrap_or(0)
    }

    pub(crate) fn count_error(&mut self, kind: ErrorKind) {
        if let Some(c) = self.malformed.get_mut(kind.index()) {
            *c += 1;
        }
    }
}
