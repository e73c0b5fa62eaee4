//! The `stream` target's body: a sequence of datagrams from a few exporters
//! into ONE small decoder, so that the template cache, the per-exporter
//! states and the pending buffer see refreshes, evictions, restarts and
//! late templates. Counter invariants are checked after every datagram.
//!
//! Input format, repeated until the input ends:
//!
//! ```text
//! +----------+---------------+------------------------+
//! | exporter | length (u16,  | datagram               |
//! | (1 byte) | big-endian)   | (length bytes, or what |
//! |          |               |  is left of the input) |
//! +----------+---------------+------------------------+
//! ```
//!
//! The exporter byte's low two bits pick one of [`EXPORTERS`].
//! `fuzz/make-seeds.py` writes seeds in this format.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netflow9::{Config, Decoder};

use crate::export_packet::{check_limits, check_monotonic, check_record};

/// As the brief of this target: small enough that every limit is reached.
pub(crate) const CONFIG: Config = Config {
    templates: 16,
    max_fields: 32,
    domains: 4,
    pending_bytes: 4096,
    pending_max_age_secs: 60,
    hash_seed: 0x5eed,
};

/// The exporters a frame can pick; two share an address family with a
/// neighbour so keys differ only in the address.
pub(crate) const EXPORTERS: [IpAddr; 4] = [
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)),
    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
    // The IPv4-mapped form of the first: a different key all the same.
    IpAddr::V6(Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0xc000, 0x0201)),
];

/// Splits the input into `(exporter, datagram)` frames.
pub(crate) fn frames(mut data: &[u8]) -> impl Iterator<Item = (IpAddr, &[u8])> {
    std::iter::from_fn(move || {
        let (&[sel, hi, lo], rest) = data.split_first_chunk::<3>()?;
        let len = usize::from(u16::from_be_bytes([hi, lo])).min(rest.len());
        let (datagram, rest) = rest.split_at(len);
        data = rest;
        Some((EXPORTERS[usize::from(sel & 3)], datagram))
    })
}

/// Feeds every frame to one decoder; panics on a broken invariant.
pub(crate) fn check(data: &[u8]) {
    let mut decoder = Decoder::new(CONFIG);
    let mut fed = 0u64;
    for (exporter, datagram) in frames(data) {
        let before = *decoder.counters();
        let (mut records, mut options) = (0u64, 0u64);
        let result = decoder.decode(exporter, datagram, |r| {
            check_record(r);
            assert_eq!(r.context().exporter, exporter);
            if r.is_options() {
                options += 1;
            } else {
                records += 1;
            }
        });
        fed += 1;
        let after = *decoder.counters();
        check_monotonic(&before, &after);
        check_limits(&decoder, &CONFIG);
        assert_eq!(after.packets + after.rejected_packets, fed);
        assert_eq!(
            after.records + after.options_records - before.records - before.options_records,
            records + options,
            "records seen by the sink"
        );
        assert_eq!(after.records - before.records, records);
        let errors = match result {
            Ok(summary) => {
                assert_eq!(u64::from(summary.records), records);
                assert_eq!(u64::from(summary.options_records), options);
                u64::from(summary.errors)
            }
            Err(_) => {
                assert_eq!(records + options, 0);
                1
            }
        };
        assert_eq!(after.malformed_total() - before.malformed_total(), errors);
        assert!(after.pending_replayed <= after.pending_buffered);
        assert!(after.pending_buffered <= after.unknown_template_flowsets);
        assert!(decoder.pending_flowsets() as u64 <= after.pending_buffered);
        // Every data FlowSet that came before its template is accounted for
        // exactly once: replayed, expired, dropped for room, or still waiting.
        assert_eq!(
            after.pending_replayed
                + after.pending_expired
                + after.pending_overflow
                + decoder.pending_flowsets() as u64,
            after.unknown_template_flowsets,
            "pending accounting"
        );
    }
}
