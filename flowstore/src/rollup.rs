//! Rollups: bytes, packets and flows per time bucket and per dimension
//! (protocol, ports, addresses, address pairs, exporters, interfaces, AS),
//! high-cardinality dimensions kept as top-K + "other" so memory and disk stay
//! bounded.
//!
//! A flow's bytes and packets are pro-rated over the buckets its
//! `[first_ms, last_ms]` spans (as pmacct does), with integer shares that add
//! up exactly; it is *counted* as a flow once, in the bucket of its
//! `last_ms`. Totals are therefore exact at every tier; a group is exact
//! unless the blob says keys were folded into "other".
//!
//! Blob layout (all varints): other.bytes, other.packets, other.flows,
//! folded_keys, entry count, then entries in descending bytes order: the
//! key (fixed width per dimension, see [`Dimension::key_len`]), bytes,
//! packets, flows.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::IpAddr;

use netflow9::Flow;

use crate::codec::keys::{addr16, addr_from16};
use crate::codec::varint;

/// Bytes, packets and flows: raw counts as exported, and the traffic they
/// estimate (counts × sampling interval).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Agg {
    /// Bytes as exported (raw, unsampled).
    pub bytes: u64,
    /// Packets as exported.
    pub packets: u64,
    /// Flows.
    pub flows: u64,
    /// Bytes × sampling interval.
    pub est_bytes: u64,
    /// Packets × sampling interval.
    pub est_packets: u64,
}

impl Agg {
    #[inline]
    pub(crate) fn add(&mut self, o: Agg) {
        self.bytes += o.bytes;
        self.packets += o.packets;
        self.flows += o.flows;
        self.est_bytes += o.est_bytes;
        self.est_packets += o.est_packets;
    }

    /// The value of `metric`, raw or estimated.
    #[must_use]
    pub fn get(&self, metric: crate::Metric, raw: bool) -> u64 {
        match (metric, raw) {
            (crate::Metric::Bytes, true) => self.bytes,
            (crate::Metric::Bytes, false) => self.est_bytes,
            (crate::Metric::Packets, true) => self.packets,
            (crate::Metric::Packets, false) => self.est_packets,
            (crate::Metric::Flows, _) => self.flows,
        }
    }

    fn put(&self, out: &mut Vec<u8>) {
        varint::put(out, self.bytes);
        varint::put(out, self.packets);
        varint::put(out, self.flows);
        varint::put(out, self.est_bytes.saturating_sub(self.bytes));
        varint::put(out, self.est_packets.saturating_sub(self.packets));
    }

    fn get_from(b: &[u8], pos: &mut usize) -> Option<Agg> {
        let bytes = varint::get(b, pos)?;
        let packets = varint::get(b, pos)?;
        let flows = varint::get(b, pos)?;
        Some(Agg {
            bytes,
            packets,
            flows,
            est_bytes: bytes.checked_add(varint::get(b, pos)?)?,
            est_packets: packets.checked_add(varint::get(b, pos)?)?,
        })
    }
}

/// A dimension that flows are grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum Dimension {
    /// Everything (one group).
    Total = 0,
    /// IP protocol.
    Protocol = 1,
    /// Protocol and source port.
    SrcPort = 2,
    /// Protocol and destination port.
    DstPort = 3,
    /// Source address.
    SrcAddr = 4,
    /// Destination address.
    DstAddr = 5,
    /// Source and destination address.
    AddrPair = 6,
    /// Exporter address.
    Exporter = 7,
    /// Exporter and input interface.
    InputIf = 8,
    /// Exporter and output interface.
    OutputIf = 9,
    /// Source AS.
    SrcAs = 10,
    /// Destination AS.
    DstAs = 11,
}

/// Number of dimensions.
pub(crate) const DIMS: usize = 12;

impl Dimension {
    /// Every dimension, by number.
    pub const ALL: [Dimension; DIMS] = [
        Dimension::Total,
        Dimension::Protocol,
        Dimension::SrcPort,
        Dimension::DstPort,
        Dimension::SrcAddr,
        Dimension::DstAddr,
        Dimension::AddrPair,
        Dimension::Exporter,
        Dimension::InputIf,
        Dimension::OutputIf,
        Dimension::SrcAs,
        Dimension::DstAs,
    ];

    /// Stable name (API parameter).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Dimension::Total => "total",
            Dimension::Protocol => "protocol",
            Dimension::SrcPort => "src_port",
            Dimension::DstPort => "dst_port",
            Dimension::SrcAddr => "src_addr",
            Dimension::DstAddr => "dst_addr",
            Dimension::AddrPair => "addr_pair",
            Dimension::Exporter => "exporter",
            Dimension::InputIf => "input_if",
            Dimension::OutputIf => "output_if",
            Dimension::SrcAs => "src_as",
            Dimension::DstAs => "dst_as",
        }
    }

    /// Parses [`Dimension::name`].
    #[must_use]
    pub fn from_name(s: &str) -> Option<Dimension> {
        Dimension::ALL.into_iter().find(|d| d.name() == s)
    }

    /// Width of this dimension's keys in a blob.
    pub(crate) const fn key_len(self) -> usize {
        match self {
            Dimension::Total => 0,
            Dimension::Protocol => 1,
            Dimension::SrcPort | Dimension::DstPort => 3,
            Dimension::SrcAddr | Dimension::DstAddr | Dimension::Exporter => 16,
            Dimension::AddrPair => 32,
            Dimension::InputIf | Dimension::OutputIf => 20,
            Dimension::SrcAs | Dimension::DstAs => 4,
        }
    }

    /// The group key of `flow` in this dimension.
    #[inline]
    pub(crate) fn key(self, f: &Flow) -> Key {
        match self {
            Dimension::Total => Key(0, 0),
            Dimension::Protocol => Key(u128::from(f.protocol), 0),
            Dimension::SrcPort => Key(u128::from(f.protocol) << 16 | u128::from(f.src_port), 0),
            Dimension::DstPort => Key(u128::from(f.protocol) << 16 | u128::from(f.dst_port), 0),
            Dimension::SrcAddr => Key(addr16(f.src_addr), 0),
            Dimension::DstAddr => Key(addr16(f.dst_addr), 0),
            Dimension::AddrPair => Key(addr16(f.src_addr), addr16(f.dst_addr)),
            Dimension::Exporter => Key(addr16(f.exporter), 0),
            Dimension::InputIf => Key(addr16(f.exporter), u128::from(f.input_if)),
            Dimension::OutputIf => Key(addr16(f.exporter), u128::from(f.output_if)),
            Dimension::SrcAs => Key(u128::from(f.src_as), 0),
            Dimension::DstAs => Key(u128::from(f.dst_as), 0),
        }
    }

    fn put_key(self, k: Key, out: &mut Vec<u8>) {
        match self.key_len() {
            0 => {}
            1 => out.push(k.0 as u8),
            3 => out.extend_from_slice(&(k.0 as u32).to_be_bytes()[1..]),
            4 => out.extend_from_slice(&(k.0 as u32).to_be_bytes()),
            16 => out.extend_from_slice(&k.0.to_be_bytes()),
            20 => {
                out.extend_from_slice(&k.0.to_be_bytes());
                out.extend_from_slice(&(k.1 as u32).to_be_bytes());
            }
            _ => {
                out.extend_from_slice(&k.0.to_be_bytes());
                out.extend_from_slice(&k.1.to_be_bytes());
            }
        }
    }

    fn get_key(self, b: &[u8], pos: &mut usize) -> Option<Key> {
        let n = self.key_len();
        let s = b.get(*pos..*pos + n)?;
        *pos += n;
        let be = |s: &[u8]| s.iter().fold(0u128, |a, &x| a << 8 | u128::from(x));
        Some(match n {
            0..=16 => Key(be(s), 0),
            20 => Key(be(&s[..16]), be(&s[16..])),
            _ => Key(be(&s[..16]), be(&s[16..])),
        })
    }
}

/// A group key in compact form: up to two 128-bit words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub(crate) struct Key(pub(crate) u128, pub(crate) u128);

/// A group key, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(untagged)]
pub enum Group {
    /// Everything.
    Total,
    /// An IP protocol.
    Protocol(u8),
    /// A protocol and port.
    Port {
        /// IP protocol.
        protocol: u8,
        /// Port.
        port: u16,
    },
    /// An address.
    Addr(IpAddr),
    /// A source → destination pair.
    Pair {
        /// Source.
        src: IpAddr,
        /// Destination.
        dst: IpAddr,
    },
    /// An exporter's interface.
    Interface {
        /// Exporter address.
        exporter: IpAddr,
        /// SNMP index.
        index: u32,
    },
    /// An AS number.
    As(u32),
    /// A named network.
    Network(String),
    /// Everything not in the listed groups.
    Other,
}

impl Group {
    pub(crate) fn from_key(dim: Dimension, k: Key) -> Group {
        match dim {
            Dimension::Total => Group::Total,
            Dimension::Protocol => Group::Protocol(k.0 as u8),
            Dimension::SrcPort | Dimension::DstPort => Group::Port {
                protocol: (k.0 >> 16) as u8,
                port: k.0 as u16,
            },
            Dimension::SrcAddr | Dimension::DstAddr | Dimension::Exporter => {
                Group::Addr(addr_from16(k.0))
            }
            Dimension::AddrPair => Group::Pair {
                src: addr_from16(k.0),
                dst: addr_from16(k.1),
            },
            Dimension::InputIf | Dimension::OutputIf => Group::Interface {
                exporter: addr_from16(k.0),
                index: k.1 as u32,
            },
            Dimension::SrcAs | Dimension::DstAs => Group::As(k.0 as u32),
        }
    }
}

impl std::fmt::Display for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Group::Total => f.write_str("total"),
            Group::Protocol(p) => write!(f, "{}", crate::proto_name(*p)),
            Group::Port { protocol, port } => write!(f, "{}/{port}", crate::proto_name(*protocol)),
            Group::Addr(a) => write!(f, "{a}"),
            Group::Pair { src, dst } => write!(f, "{src} → {dst}"),
            Group::Interface { exporter, index } => write!(f, "{exporter}#{index}"),
            Group::As(a) => write!(f, "AS{a}"),
            Group::Network(n) => f.write_str(n),
            Group::Other => f.write_str("other"),
        }
    }
}

/// FxHash: fast, for trusted-shape keys (hash flooding is bounded by the
/// per-bucket key cap).
#[derive(Default, Clone, Copy)]
pub(crate) struct Fx(u64);

impl Hasher for Fx {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for c in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..c.len()].copy_from_slice(c);
            self.write_u64(u64::from_le_bytes(w));
        }
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    #[inline]
    fn write_u128(&mut self, i: u128) {
        self.write_u64(i as u64);
        self.write_u64((i >> 64) as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

pub(crate) type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<Fx>>;

/// One dimension of one bucket.
#[derive(Debug, Clone, Default)]
pub(crate) struct DimAgg {
    pub(crate) groups: FxMap<Key, Agg>,
    pub(crate) other: Agg,
    /// Distinct keys folded into `other` so far.
    pub(crate) folded: u64,
}

impl DimAgg {
    /// Adds to a group; past `cap` distinct keys new keys go to "other".
    #[inline]
    pub(crate) fn add(&mut self, k: Key, a: Agg, cap: usize) {
        if let Some(g) = self.groups.get_mut(&k) {
            g.add(a);
        } else if self.groups.len() < cap {
            self.groups.insert(k, a);
        } else {
            self.other.add(a);
            self.folded += 1;
        }
    }

    /// Sum of groups and other.
    pub(crate) fn total(&self) -> Agg {
        let mut t = self.other;
        for a in self.groups.values() {
            t.add(*a);
        }
        t
    }

    /// Serializes the top `keep` groups by bytes; the rest go to "other".
    pub(crate) fn encode(&self, dim: Dimension, keep: usize, out: &mut Vec<u8>) {
        let mut entries: Vec<(Key, Agg)> = self.groups.iter().map(|(k, a)| (*k, *a)).collect();
        entries.sort_unstable_by(|a, b| b.1.bytes.cmp(&a.1.bytes).then(a.0.cmp(&b.0)));
        let mut other = self.other;
        let mut folded = self.folded;
        for (_, a) in entries.iter().skip(keep) {
            other.add(*a);
            folded += 1;
        }
        entries.truncate(keep);
        out.clear();
        other.put(out);
        varint::put(out, folded);
        varint::put(out, entries.len() as u64);
        for (k, a) in &entries {
            dim.put_key(*k, out);
            a.put(out);
        }
    }

    /// Decodes a blob, merging it in (`None` if malformed).
    pub(crate) fn decode_into(&mut self, dim: Dimension, b: &[u8], cap: usize) -> Option<()> {
        let mut pos = 0;
        let other = Agg::get_from(b, &mut pos)?;
        let folded = varint::get(b, &mut pos)?;
        let n = varint::get(b, &mut pos)?;
        if n > b.len() as u64 {
            return None;
        }
        for _ in 0..n {
            let k = dim.get_key(b, &mut pos)?;
            let a = Agg::get_from(b, &mut pos)?;
            self.add(k, a, cap);
        }
        self.other.add(other);
        self.folded += folded;
        (pos == b.len()).then_some(())
    }
}

/// All dimensions of one bucket.
#[derive(Debug, Clone, Default)]
pub(crate) struct Rollup {
    pub(crate) dims: [DimAgg; DIMS],
}

impl Rollup {
    /// Adds a flow's share of this bucket to every dimension.
    #[inline]
    pub(crate) fn add(&mut self, f: &Flow, share: Agg, cap: usize) {
        for (d, agg) in Dimension::ALL.iter().zip(self.dims.iter_mut()) {
            agg.add(d.key(f), share, cap);
        }
    }
}

/// Splits a flow's bytes and packets over the buckets of width `width_ms`
/// that `[first_ms, last_ms]` spans, in proportion to the overlap, as exact
/// integers (the shares add up to the totals); the flow itself counts once,
/// in the bucket of `last_ms`. Calls `f(bucket_start_ms, share)` per bucket.
/// At most `max_buckets` buckets: the older part of a longer flow goes to the
/// earliest bucket kept. A flow whose `first_ms` is after its `last_ms`
/// (broken exporter clock) is all in the bucket of `last_ms`.
#[inline]
pub(crate) fn prorate(flow: &Flow, width_ms: u64, max_buckets: u64, mut f: impl FnMut(u64, Agg)) {
    let last = flow.last_ms;
    let last_bucket = last / width_ms * width_ms;
    let earliest = last_bucket.saturating_sub((max_buckets.max(1) - 1) * width_ms);
    let first = flow.first_ms.clamp(earliest, last);
    let scale = u64::from(flow.sampling_interval.max(1));
    let (eb, ep) = (
        flow.bytes.saturating_mul(scale),
        flow.packets.saturating_mul(scale),
    );
    if first / width_ms == last / width_ms {
        f(
            last_bucket,
            Agg {
                bytes: flow.bytes,
                packets: flow.packets,
                flows: 1,
                est_bytes: eb,
                est_packets: ep,
            },
        );
        return;
    }
    let d = u128::from(last - first);
    let (tb, tp) = (u128::from(flow.bytes), u128::from(flow.packets));
    let (teb, tep) = (u128::from(eb), u128::from(ep));
    let mut b = first / width_ms * width_ms;
    while b <= last_bucket {
        let lo = u128::from(b.max(first) - first);
        let hi = u128::from((b + width_ms).min(last) - first);
        let share = Agg {
            bytes: (tb * hi / d - tb * lo / d) as u64,
            packets: (tp * hi / d - tp * lo / d) as u64,
            flows: u64::from(b == last_bucket),
            est_bytes: (teb * hi / d - teb * lo / d) as u64,
            est_packets: (tep * hi / d - tep * lo / d) as u64,
        };
        f(b, share);
        b += width_ms;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prorated_shares_add_up_exactly() {
        for (first, last, total, n) in [
            (0u64, 0u64, 7u64, 1),
            (30_000, 150_000, 1001, 3),
            (59_999, 60_001, 3, 2),
            (0, 36_000_000, 999_999_937, 120),
            (90_000, 10_000, 5, 1),
        ] {
            let flow = Flow {
                first_ms: first,
                last_ms: last,
                bytes: total,
                packets: total / 3,
                ..Flow::default()
            };
            let mut sum = Agg::default();
            let mut buckets = Vec::new();
            prorate(&flow, 60_000, 120, |b, a| {
                sum.add(a);
                buckets.push(b);
            });
            assert_eq!(
                (sum.bytes, sum.packets, sum.flows),
                (total, total / 3, 1),
                "{first}..{last}"
            );
            assert_eq!(buckets.len(), n, "{first}..{last}");
            assert_eq!(*buckets.last().unwrap(), last / 60_000 * 60_000);
        }
        // a 2-minute flow: half in each minute
        let flow = Flow {
            first_ms: 60_000,
            last_ms: 180_000,
            bytes: 1000,
            ..Flow::default()
        };
        let mut shares = Vec::new();
        prorate(&flow, 60_000, 120, |_, a| shares.push(a.bytes));
        assert_eq!(shares, [500, 500, 0]);
    }

    #[test]
    fn cap_folds_into_other_and_blob_round_trips() {
        let mut d = DimAgg::default();
        for i in 0..10u128 {
            d.add(
                Key(i, 0),
                Agg {
                    bytes: i as u64 * 10,
                    packets: 1,
                    flows: 1,
                    est_bytes: i as u64 * 20,
                    est_packets: 2,
                },
                8,
            );
        }
        assert_eq!(d.groups.len(), 8);
        assert_eq!(d.folded, 2);
        let mut blob = Vec::new();
        d.encode(Dimension::SrcAddr, 3, &mut blob);
        let mut back = DimAgg::default();
        back.decode_into(Dimension::SrcAddr, &blob, 100).unwrap();
        assert_eq!(back.groups.len(), 3);
        assert_eq!(back.total(), d.total());
        assert_eq!(back.folded, 7);
        assert_eq!(back.groups[&Key(7, 0)].bytes, 70);
        assert!(DimAgg::default()
            .decode_into(Dimension::SrcAddr, &blob[..blob.len() - 1], 9)
            .is_none());
    }
}
