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
//! Blob layout (all varints): other (bytes, packets, flows, estimated
//! bytes − bytes, estimated packets − packets), folded_keys, entry count,
//! then entries in descending bytes order: the key (see
//! [`Dimension::put_key`]: fixed width, but addresses are a family byte and
//! 4 or 16 bytes), and the same five counters.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::IpAddr;

use netflow9::Flow;

use crate::codec::keys::{addr16, addr_from16};
use crate::codec::varint;
use crate::groups::Groups;

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
        // Saturating: values read back from disk may be corrupt (fuzzed:
        // `corrupt_rollup_counters_saturate`), and a counter never wraps.
        self.bytes = self.bytes.saturating_add(o.bytes);
        self.packets = self.packets.saturating_add(o.packets);
        self.flows = self.flows.saturating_add(o.flows);
        self.est_bytes = self.est_bytes.saturating_add(o.est_bytes);
        self.est_packets = self.est_packets.saturating_add(o.est_packets);
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

    /// Takes away what `add` added. Saturating: a sum that saturated
    /// (counters from the network can be near `u64::MAX`, sampling scales
    /// them up) is smaller than its parts.
    #[inline]
    pub(crate) fn sub(&mut self, o: Agg) {
        self.bytes = self.bytes.saturating_sub(o.bytes);
        self.packets = self.packets.saturating_sub(o.packets);
        self.flows = self.flows.saturating_sub(o.flows);
        self.est_bytes = self.est_bytes.saturating_sub(o.est_bytes);
        self.est_packets = self.est_packets.saturating_sub(o.est_packets);
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

    /// Writes a key into a blob: protocol 1 byte, protocol and port 3, AS
    /// 4, address a family byte (4 or 6) and 4 or 16 bytes, exporter and
    /// interface an address and 4 bytes, address pair two addresses.
    pub(crate) fn put_key(self, k: Key, out: &mut Vec<u8>) {
        match self {
            Dimension::Total => {}
            Dimension::Protocol => out.push(k.0 as u8),
            Dimension::SrcPort | Dimension::DstPort => {
                out.extend_from_slice(&(k.0 as u32).to_be_bytes()[1..]);
            }
            Dimension::SrcAs | Dimension::DstAs => {
                out.extend_from_slice(&(k.0 as u32).to_be_bytes());
            }
            Dimension::SrcAddr | Dimension::DstAddr | Dimension::Exporter => put_addr(out, k.0),
            Dimension::AddrPair => {
                put_addr(out, k.0);
                put_addr(out, k.1);
            }
            Dimension::InputIf | Dimension::OutputIf => {
                put_addr(out, k.0);
                out.extend_from_slice(&(k.1 as u32).to_be_bytes());
            }
        }
    }

    fn get_key(self, b: &[u8], pos: &mut usize) -> Option<Key> {
        let mut take = |n: usize| -> Option<u128> {
            let s = b.get(*pos..*pos + n)?;
            *pos += n;
            Some(s.iter().fold(0u128, |a, &x| a << 8 | u128::from(x)))
        };
        Some(match self {
            Dimension::Total => Key(0, 0),
            Dimension::Protocol => Key(take(1)?, 0),
            Dimension::SrcPort | Dimension::DstPort => Key(take(3)?, 0),
            Dimension::SrcAs | Dimension::DstAs => Key(take(4)?, 0),
            Dimension::SrcAddr | Dimension::DstAddr | Dimension::Exporter => {
                Key(get_addr(b, pos)?, 0)
            }
            Dimension::AddrPair => Key(get_addr(b, pos)?, get_addr(b, pos)?),
            Dimension::InputIf | Dimension::OutputIf => {
                let a = get_addr(b, pos)?;
                let s = b.get(*pos..*pos + 4)?;
                *pos += 4;
                Key(a, u128::from(u32::from_be_bytes(s.try_into().ok()?)))
            }
        })
    }
}

/// An address key ([`addr16`] form) as a family byte and 4 or 16 bytes.
pub(crate) fn put_addr(out: &mut Vec<u8>, a: u128) {
    if a >> 32 == 0xffff {
        out.push(4);
        out.extend_from_slice(&(a as u32).to_be_bytes());
    } else {
        out.push(6);
        out.extend_from_slice(&a.to_be_bytes());
    }
}

/// The inverse of [`put_addr`].
pub(crate) fn get_addr(b: &[u8], pos: &mut usize) -> Option<u128> {
    let fam = *b.get(*pos)?;
    let n = match fam {
        4 => 4,
        6 => 16,
        _ => return None,
    };
    let s = b.get(*pos + 1..*pos + 1 + n)?;
    *pos += 1 + n;
    let v = s.iter().fold(0u128, |a, &x| a << 8 | u128::from(x));
    Some(if n == 4 { 0xffff << 32 | v } else { v })
}

/// A group key in compact form: up to two 128-bit words. Aligned to 8
/// bytes, not 16, so that a key and its [`Agg`] take 72 bytes, not 80.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
#[repr(C, packed(8))]
pub(crate) struct Key(pub(crate) u128, pub(crate) u128);

impl std::hash::Hash for Key {
    /// One word: the four 64-bit halves folded with distinct rotations (the
    /// hasher's finish spreads it), so hashing a key costs one multiply.
    #[inline]
    fn hash<H: Hasher>(&self, h: &mut H) {
        let (a, b) = (
            self.0 as u64 ^ ((self.0 >> 64) as u64).rotate_left(29),
            self.1 as u64,
        );
        h.write_u64(a ^ b.rotate_left(17) ^ ((self.1 >> 64) as u64).rotate_left(43));
    }
}

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
        // The product's high bits depend on every input bit; hash tables
        // index by the low bits, so bring them down.
        self.0.rotate_left(26)
    }
}

pub(crate) type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<Fx>>;

/// One dimension of one bucket.
#[derive(Debug, Clone, Default)]
pub(crate) struct DimAgg {
    pub(crate) groups: Groups,
    pub(crate) other: Agg,
    /// Distinct keys folded into `other` so far.
    pub(crate) folded: u64,
}

impl DimAgg {
    /// Adds to a group; past `cap` distinct keys new keys go to "other".
    #[inline(always)]
    pub(crate) fn add(&mut self, k: Key, a: Agg, cap: usize) {
        if !self.groups.add(k, a, self.groups.len() < cap) {
            self.other.add(a);
            self.folded = self.folded.saturating_add(1);
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

    /// Moves the top `keep` groups by bytes (ties: smaller key first) into
    /// an empty `small`, folding the rest into its "other", as
    /// [`DimAgg::encode`] would. Leaves `self` empty, its memory kept for
    /// reuse.
    pub(crate) fn compact_into(
        &mut self,
        keep: usize,
        small: &mut DimAgg,
        ranked: &mut Vec<(u64, Key)>,
    ) {
        small.groups.clear();
        small.other = self.other;
        small.folded = self.folded;
        if keep == 0 {
            for a in self.groups.values() {
                small.other.add(*a);
            }
            small.folded = small.folded.saturating_add(self.groups.len() as u64);
        } else {
            let order = |a: &(u64, Key), b: &(u64, Key)| b.0.cmp(&a.0).then(a.1.cmp(&b.1));
            ranked.clear();
            ranked.extend(self.groups.iter().map(|(k, a)| {
                small.other.add(*a);
                (a.bytes, *k)
            }));
            let keep = keep.min(ranked.len());
            if keep < ranked.len() {
                ranked.select_nth_unstable_by(keep - 1, order);
            }
            small.groups.reserve(keep);
            // "other" got every group above; take the kept ones back out,
            // unless the sum saturated (counters from the network near
            // u64::MAX): then sum the folded ones alone.
            let o = small.other;
            let saturated =
                [o.bytes, o.packets, o.flows, o.est_bytes, o.est_packets].contains(&u64::MAX);
            if saturated {
                small.other = self.other;
                for (_, k) in &ranked[keep..] {
                    if let Some(a) = self.groups.get(k) {
                        small.other.add(*a);
                    }
                }
            }
            for (_, k) in &ranked[..keep] {
                if let Some(a) = self.groups.get(k) {
                    if !saturated {
                        small.other.sub(*a);
                    }
                    small.groups.insert(*k, *a);
                }
            }
            small.folded = small.folded.saturating_add((ranked.len() - keep) as u64);
        }
        self.groups.clear();
        self.other = Agg::default();
        self.folded = 0;
    }

    /// Serializes the top `keep` groups by bytes; the rest go to "other".
    pub(crate) fn encode(
        &self,
        dim: Dimension,
        keep: usize,
        out: &mut Vec<u8>,
        entries: &mut Vec<(Key, Agg)>,
    ) {
        entries.clear();
        entries.extend(self.groups.iter().map(|(k, a)| (*k, *a)));
        let order = |a: &(Key, Agg), b: &(Key, Agg)| b.1.bytes.cmp(&a.1.bytes).then(a.0.cmp(&b.0));
        let mut other = self.other;
        let mut folded = self.folded;
        if entries.len() > keep {
            if keep > 0 {
                entries.select_nth_unstable_by(keep - 1, order);
            }
            for (_, a) in &entries[keep..] {
                other.add(*a);
                folded = folded.saturating_add(1);
            }
            entries.truncate(keep);
        }
        entries.sort_unstable_by(order);
        out.clear();
        other.put(out);
        varint::put(out, folded);
        varint::put(out, entries.len() as u64);
        for (k, a) in entries.iter() {
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
        self.groups.reserve((n as usize).min(cap));
        for _ in 0..n {
            let k = dim.get_key(b, &mut pos)?;
            let a = Agg::get_from(b, &mut pos)?;
            self.add(k, a, cap);
        }
        self.other.add(other);
        self.folded = self.folded.saturating_add(folded);
        (pos == b.len()).then_some(())
    }
}

/// All dimensions of one bucket.
#[derive(Debug, Clone, Default)]
pub(crate) struct Rollup {
    pub(crate) dims: [DimAgg; DIMS],
}

/// A flow's share of one bucket, with the fields its group keys are made
/// of: what the writer logs per bucket before aggregating. Packed into 96
/// bytes (the exporter is an index into the writer's table of exporters):
/// logs are written once and read three times, so their size is time.
#[derive(Debug, Clone, Copy)]
#[repr(C, packed(8))]
pub(crate) struct Rec {
    src: u128,
    dst: u128,
    bytes: u64,
    packets: u64,
    est_bytes: u64,
    est_packets: u64,
    input_if: u32,
    output_if: u32,
    src_as: u32,
    dst_as: u32,
    exporter: u32,
    src_port: u16,
    dst_port: u16,
    protocol: u8,
    flows: u8,
}

impl Rec {
    /// `f`'s key fields (its exporter as `exporter`, an index), no share yet.
    #[inline]
    pub(crate) fn of(f: &Flow, exporter: u32) -> Rec {
        Rec {
            src: addr16(f.src_addr),
            dst: addr16(f.dst_addr),
            bytes: 0,
            packets: 0,
            est_bytes: 0,
            est_packets: 0,
            input_if: f.input_if,
            output_if: f.output_if,
            src_as: f.src_as,
            dst_as: f.dst_as,
            exporter,
            src_port: f.src_port,
            dst_port: f.dst_port,
            protocol: f.protocol,
            flows: 0,
        }
    }

    /// This record with `a` as its share (`a.flows` is 0 or 1).
    #[inline]
    pub(crate) fn with(self, a: Agg) -> Rec {
        Rec {
            bytes: a.bytes,
            packets: a.packets,
            est_bytes: a.est_bytes,
            est_packets: a.est_packets,
            flows: u8::from(a.flows != 0),
            ..self
        }
    }

    /// The share.
    #[inline]
    pub(crate) fn share(&self) -> Agg {
        Agg {
            bytes: self.bytes,
            packets: self.packets,
            flows: u64::from(self.flows),
            est_bytes: self.est_bytes,
            est_packets: self.est_packets,
        }
    }

    /// Source and destination, [`addr16`] forms.
    #[inline]
    pub(crate) fn addrs(&self) -> (u128, u128) {
        (self.src, self.dst)
    }
}

impl Rollup {
    /// Adds logged shares to every dimension, one dimension at a time: only
    /// that dimension's groups need to be in cache, not all twelve.
    pub(crate) fn add_log(
        &mut self,
        log: &[Rec],
        cap: usize,
        small: &mut FxMap<Key, Agg>,
        exporters: &[u128],
    ) {
        let proto = |r: &Rec| u128::from(r.protocol);
        let [total, protocol, sport, dport, src, dst, pair, exp, in_if, out_if, sas, das] =
            &mut self.dims;
        // Few tables per pass (they fit in the L2 cache together), and as
        // few passes over the log as that allows.
        for r in log {
            sport.add(
                Key(proto(r) << 16 | u128::from(r.src_port), 0),
                r.share(),
                cap,
            );
            dport.add(
                Key(proto(r) << 16 | u128::from(r.dst_port), 0),
                r.share(),
                cap,
            );
        }
        for r in log {
            src.add(Key(r.src, 0), r.share(), cap);
            dst.add(Key(r.dst, 0), r.share(), cap);
            pair.add(Key(r.src, r.dst), r.share(), cap);
        }
        // Totals and protocols are few: summed in arrays. Exporters,
        // interfaces and AS numbers are few, and so are their combinations:
        // summed by combination first, then split.
        let mut sum = Agg::default();
        let mut by_proto = [Agg::default(); 256];
        small.clear();
        for r in log {
            sum.add(r.share());
            by_proto[usize::from(r.protocol)].add(r.share());
            let ids = u128::from(r.input_if) << 96
                | u128::from(r.output_if) << 64
                | u128::from(r.src_as) << 32
                | u128::from(r.dst_as);
            let exporter = exporters.get(r.exporter as usize).copied().unwrap_or(0);
            small.entry(Key(exporter, ids)).or_default().add(r.share());
        }
        if !log.is_empty() {
            total.add(Key(0, 0), sum, cap);
        }
        for (p, a) in by_proto.iter().enumerate() {
            if *a != Agg::default() {
                protocol.add(Key(p as u128, 0), *a, cap);
            }
        }
        for (k, a) in small.iter() {
            let field = |shift: u32| u128::from((k.1 >> shift) as u32);
            exp.add(Key(k.0, 0), *a, cap);
            in_if.add(Key(k.0, field(96)), *a, cap);
            out_if.add(Key(k.0, field(64)), *a, cap);
            sas.add(Key(field(32), 0), *a, cap);
            das.add(Key(field(0), 0), *a, cap);
        }
    }

    /// [`DimAgg::compact_into`] on every dimension, into `small` (emptied
    /// first); leaves `self` empty, its memory kept for reuse.
    pub(crate) fn compact_into(
        &mut self,
        keep: usize,
        small: &mut Rollup,
        ranked: &mut Vec<(u64, Key)>,
    ) {
        small.clear();
        for (d, s) in self.dims.iter_mut().zip(&mut small.dims) {
            if d.groups.len() <= keep {
                std::mem::swap(d, s);
            } else {
                d.compact_into(keep, s, ranked);
            }
        }
    }

    /// Empties every dimension, keeping the memory.
    pub(crate) fn clear(&mut self) {
        for d in &mut self.dims {
            d.groups.clear();
            d.other = Agg::default();
            d.folded = 0;
        }
    }
}

/// Width of the network-map rollup's buckets: one hour.
pub(crate) const MATRIX_MS: u64 = 3_600_000;
/// Most prefix pairs per hour kept while aggregating (more go to "other",
/// and the map then answers from raw flows).
pub(crate) const MATRIX_CAP: usize = 1 << 20;

/// The prefix an address counts under in the network-map rollup: its `/24`
/// (IPv4) or `/64` (IPv6), as an [`addr16`] value.
#[inline]
pub(crate) fn map_prefix(a: u128) -> u128 {
    if a >> 32 == 0xffff {
        a & !0xff
    } else {
        a & !u128::from(u64::MAX)
    }
}

fn put_prefix(out: &mut Vec<u8>, a: u128) {
    if a >> 32 == 0xffff {
        out.push(4);
        out.extend_from_slice(&(a as u32).to_be_bytes()[..3]);
    } else {
        out.push(6);
        out.extend_from_slice(&((a >> 64) as u64).to_be_bytes());
    }
}

fn get_prefix(b: &[u8], pos: &mut usize) -> Option<u128> {
    let fam = *b.get(*pos)?;
    let n = match fam {
        4 => 3,
        6 => 8,
        _ => return None,
    };
    let s = b.get(*pos + 1..*pos + 1 + n)?;
    *pos += 1 + n;
    let v = s.iter().fold(0u128, |a, &x| a << 8 | u128::from(x));
    Some(if fam == 4 {
        0xffff << 32 | v << 8
    } else {
        v << 64
    })
}

/// One hour of the network-map rollup: totals per (src prefix, dst prefix)
/// ([`map_prefix`]). IPv4 pairs, nearly all of them, are keyed by a `u64`
/// (smaller entries, cheaper hashing); the rest by a [`Key`].
#[derive(Debug, Clone, Default)]
pub(crate) struct MatrixAgg {
    v4: Groups<u64>,
    mixed: Groups<Key>,
    /// Pairs beyond [`MATRIX_CAP`].
    pub(crate) other: Agg,
    /// Pairs folded into `other`; the rollup is then not exact.
    pub(crate) folded: u64,
}

/// The prefixes of a pair ([`addr16`] forms): both `/24`s packed into the
/// key of [`MatrixAgg`]'s IPv4 table, else the two prefixes.
#[inline(always)]
fn matrix_key(src: u128, dst: u128) -> Result<u64, (u128, u128)> {
    let (s, d) = (map_prefix(src), map_prefix(dst));
    if s >> 32 == 0xffff && d >> 32 == 0xffff {
        Ok(u64::from((s as u32) >> 8) << 24 | u64::from((d as u32) >> 8))
    } else {
        Err((s, d))
    }
}

impl MatrixAgg {
    /// Adds a share of traffic from `src` to `dst` ([`addr16`] forms).
    #[inline]
    pub(crate) fn add(&mut self, src: u128, dst: u128, a: Agg) {
        let added = match matrix_key(src, dst) {
            Ok(k) => self.v4.add(k, a, self.v4.len() < MATRIX_CAP),
            Err((s, d)) => self.mixed.add(Key(s, d), a, self.mixed.len() < MATRIX_CAP),
        };
        if !added {
            self.other.add(a);
            self.folded = self.folded.saturating_add(1);
        }
    }

    /// Hints the CPU to load what [`MatrixAgg::add`] of this pair will read:
    /// `stage` 0 the table slot, 1 (a few pairs later) the group. The table
    /// is far larger than the cache and hit at random: a writer adding many
    /// pairs prefetches some pairs ahead.
    #[inline(always)]
    pub(crate) fn prefetch(&self, src: u128, dst: u128, stage: u8) {
        if let Ok(k) = matrix_key(src, dst) {
            if stage == 0 {
                self.v4.prefetch_slot(&k);
            } else {
                self.v4.prefetch_group(&k);
            }
        }
    }

    /// Every (src prefix, dst prefix, totals), in no particular order.
    pub(crate) fn for_each(&self, mut f: impl FnMut(u128, u128, &Agg)) {
        let v4 = |p: u64| 0xffff << 32 | u128::from(p as u32 & 0xff_ffff) << 8;
        for (k, a) in &self.v4 {
            f(v4(k >> 24), v4(*k), a);
        }
        for (k, a) in &self.mixed {
            f(k.0, k.1, a);
        }
    }

    /// Number of pairs.
    pub(crate) fn len(&self) -> usize {
        self.v4.len() + self.mixed.len()
    }

    /// Empties it, keeping the memory.
    pub(crate) fn clear(&mut self) {
        self.v4.clear();
        self.mixed.clear();
        self.other = Agg::default();
        self.folded = 0;
    }

    /// Serializes it: "other" (as in a rollup blob), folded pairs, pair
    /// count, then each pair, in no particular order: the source and
    /// destination prefixes (each a family byte, 4 or 6, and its 3 or 8
    /// leading bytes) and the five counters.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.clear();
        self.other.put(out);
        varint::put(out, self.folded);
        varint::put(out, self.len() as u64);
        self.for_each(|s, d, a| {
            put_prefix(out, s);
            put_prefix(out, d);
            a.put(out);
        });
    }

    /// Calls `f(src prefix, dst prefix, totals)` for every pair of a blob
    /// without building a table; returns whether pairs were folded (`None`
    /// if malformed).
    pub(crate) fn visit(b: &[u8], mut f: impl FnMut(u128, u128, Agg)) -> Option<bool> {
        let mut pos = 0;
        let other = Agg::get_from(b, &mut pos)?;
        let folded = varint::get(b, &mut pos)?;
        let n = varint::get(b, &mut pos)?;
        if n > b.len() as u64 {
            return None;
        }
        for _ in 0..n {
            let (s, d) = (get_prefix(b, &mut pos)?, get_prefix(b, &mut pos)?);
            f(s, d, Agg::get_from(b, &mut pos)?);
        }
        (pos == b.len()).then_some(folded > 0 || other != Agg::default())
    }

    /// Decodes a blob, merging it in (`None` if malformed).
    pub(crate) fn decode_into(&mut self, b: &[u8]) -> Option<()> {
        let mut pos = 0;
        let other = Agg::get_from(b, &mut pos)?;
        let folded = varint::get(b, &mut pos)?;
        let n = varint::get(b, &mut pos)?;
        if n > b.len() as u64 {
            return None;
        }
        self.v4.reserve(n as usize);
        for _ in 0..n {
            let (s, d) = (get_prefix(b, &mut pos)?, get_prefix(b, &mut pos)?);
            let a = Agg::get_from(b, &mut pos)?;
            self.add(s, d, a);
        }
        self.other.add(other);
        self.folded = self.folded.saturating_add(folded);
        (pos == b.len()).then_some(())
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
pub(crate) fn prorate(flow: &Flow, width_ms: u64, max_buckets: u64, f: impl FnMut(u64, Agg)) {
    let t = FlowTotals {
        first_ms: flow.first_ms,
        last_ms: flow.last_ms,
        bytes: flow.bytes,
        packets: flow.packets,
        sampling: flow.sampling_interval,
    };
    t.prorate(width_ms, max_buckets, f);
}

/// `x × num / den` rounded down, for `num ≤ den` (`den` > 0): in 64 bits
/// when the product fits, the common case.
#[inline]
fn scaled(x: u64, num: u64, den: u64) -> u64 {
    match x.checked_mul(num) {
        Some(p) => p / den,
        None => (u128::from(x) * u128::from(num) / u128::from(den)) as u64,
    }
}

/// What pro-rating reads of a flow.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FlowTotals {
    pub(crate) first_ms: u64,
    pub(crate) last_ms: u64,
    pub(crate) bytes: u64,
    pub(crate) packets: u64,
    pub(crate) sampling: u32,
}

impl FlowTotals {
    /// The first and last bucket (starts, ms) the flow is pro-rated over.
    #[inline]
    pub(crate) fn buckets(&self, width_ms: u64, max_buckets: u64) -> (u64, u64) {
        let last_bucket = self.last_ms / width_ms * width_ms;
        let earliest = last_bucket.saturating_sub((max_buckets.max(1) - 1) * width_ms);
        let first = self.first_ms.clamp(earliest, self.last_ms);
        (first / width_ms * width_ms, last_bucket)
    }

    /// The whole flow as one share: what its shares add up to.
    #[inline]
    pub(crate) fn whole(&self) -> Agg {
        let scale = u64::from(self.sampling.max(1));
        Agg {
            bytes: self.bytes,
            packets: self.packets,
            flows: 1,
            est_bytes: self.bytes.saturating_mul(scale),
            est_packets: self.packets.saturating_mul(scale),
        }
    }

    /// [`prorate`] on these totals.
    #[inline]
    pub(crate) fn prorate(&self, width_ms: u64, max_buckets: u64, mut f: impl FnMut(u64, Agg)) {
        let last = self.last_ms;
        let last_bucket = last / width_ms * width_ms;
        let earliest = last_bucket.saturating_sub((max_buckets.max(1) - 1) * width_ms);
        let first = self.first_ms.clamp(earliest, last);
        if first / width_ms == last / width_ms {
            f(last_bucket, self.whole());
            return;
        }
        let whole = self.whole();
        let d = last - first;
        // Each share is the counter's part up to the bucket's end minus its
        // part up to the bucket's start (the previous bucket's end): integer
        // shares that add up exactly.
        let mut before = Agg::default();
        let mut b = first / width_ms * width_ms;
        while b <= last_bucket {
            let hi = (b + width_ms).min(last) - first;
            let upto = Agg {
                bytes: scaled(whole.bytes, hi, d),
                packets: scaled(whole.packets, hi, d),
                flows: 0,
                est_bytes: scaled(whole.est_bytes, hi, d),
                est_packets: scaled(whole.est_packets, hi, d),
            };
            let share = Agg {
                bytes: upto.bytes - before.bytes,
                packets: upto.packets - before.packets,
                flows: u64::from(b == last_bucket),
                est_bytes: upto.est_bytes - before.est_bytes,
                est_packets: upto.est_packets - before.est_packets,
            };
            before = upto;
            f(b, share);
            b += width_ms;
        }
    }

    /// Calls `f` with the flow's share of `[from_ms, to_ms)` (bucket
    /// starts; nothing if the share is empty): at once when all its
    /// buckets are inside, else summed over the buckets that are.
    #[inline]
    pub(crate) fn in_range(
        &self,
        max_buckets: u64,
        from_ms: u64,
        to_ms: u64,
        mut f: impl FnMut(Agg),
    ) {
        let w = crate::writer::TIER_MS[0];
        let (first, last) = self.buckets(w, max_buckets);
        if first >= from_ms && last < to_ms {
            f(self.whole());
        } else if last >= from_ms && first < to_ms {
            let mut sum = Agg::default();
            let mut any = false;
            self.prorate(w, max_buckets, |b, a| {
                if b >= from_ms && b < to_ms {
                    sum.add(a);
                    any = true;
                }
            });
            if any {
                f(sum);
            }
        }
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
            // Counters whose products overflow 64 bits take the slow path.
            (0, 7_199_999, u64::MAX, 120),
            (1, 600_000, u64::MAX / 3, 11),
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
        d.encode(Dimension::SrcAddr, 3, &mut blob, &mut Vec::new());
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

    fn agg(bytes: u64) -> Agg {
        Agg {
            bytes,
            packets: 1,
            flows: 1,
            est_bytes: bytes * 2,
            est_packets: 2,
        }
    }

    #[test]
    fn compaction_keeps_the_top_groups_and_every_byte() {
        let mut big = DimAgg::default();
        for i in 0..100u128 {
            // Ties at 50: the smaller keys are kept.
            big.add(Key(i, 0), agg((i as u64).min(50) * 10), 1000);
        }
        let total = big.total();
        let mut small = DimAgg::default();
        big.compact_into(10, &mut small, &mut Vec::new());
        assert_eq!(small.groups.len(), 10);
        assert_eq!(small.total(), total);
        assert_eq!(small.folded, 90);
        assert!(big.groups.is_empty() && big.total() == Agg::default());
        let mut kept: Vec<u128> = small.groups.keys().map(|k| k.0).collect();
        kept.sort_unstable();
        assert_eq!(kept, (50..60).collect::<Vec<_>>());
        // What compaction keeps is what encoding would keep.
        let mut a = Vec::new();
        let mut b = Vec::new();
        let mut again = DimAgg::default();
        for i in 0..100u128 {
            again.add(Key(i, 0), agg((i as u64).min(50) * 10), 1000);
        }
        again.encode(Dimension::SrcAddr, 10, &mut a, &mut Vec::new());
        small.encode(Dimension::SrcAddr, 10, &mut b, &mut Vec::new());
        assert_eq!(a, b);
    }

    /// Counters near `u64::MAX` (from the network, scaled by sampling)
    /// saturate "other" and must not underflow when the kept groups are
    /// taken back out of it.
    #[test]
    fn compaction_of_saturated_counters() {
        let mut big = DimAgg::default();
        for i in 0..5u128 {
            big.add(
                Key(i, 0),
                Agg {
                    bytes: u64::MAX - i as u64,
                    packets: 1,
                    flows: 1,
                    est_bytes: u64::MAX,
                    est_packets: 1,
                },
                1000,
            );
        }
        let mut small = DimAgg::default();
        big.compact_into(2, &mut small, &mut Vec::new());
        assert_eq!(small.groups.len(), 2);
        assert_eq!(small.folded, 3);
        // Three folded groups of ~u64::MAX bytes each: "other" saturates.
        assert_eq!(small.other.bytes, u64::MAX);
        assert_eq!(small.other.est_bytes, u64::MAX);
        assert_eq!(small.other.flows, 3);
    }

    #[test]
    fn a_log_adds_up_like_flow_by_flow() {
        let flows: Vec<Flow> = (0..500u32)
            .map(|i| Flow {
                exporter: IpAddr::from([192, 0, 2, (i % 3) as u8]),
                src_addr: IpAddr::from([10, 0, (i % 7) as u8, (i % 11) as u8]),
                dst_addr: if i % 4 == 0 {
                    "2001:db8::1".parse().unwrap()
                } else {
                    IpAddr::from([100, 65, 0, (i % 13) as u8])
                },
                src_port: 40_000 + (i % 17) as u16,
                dst_port: 443,
                protocol: if i % 5 == 0 { 17 } else { 6 },
                input_if: i % 2,
                output_if: 100 + i % 3,
                src_as: i % 4,
                dst_as: 64_496,
                bytes: u64::from(i) * 100,
                packets: u64::from(i),
                sampling_interval: 1 + i % 2,
                ..Flow::default()
            })
            .collect();
        let mut by_log = Rollup::default();
        let log: Vec<Rec> = flows
            .iter()
            .map(|f| {
                let whole = FlowTotals {
                    first_ms: f.first_ms,
                    last_ms: f.last_ms,
                    bytes: f.bytes,
                    packets: f.packets,
                    sampling: f.sampling_interval,
                }
                .whole();
                let e = match f.exporter {
                    IpAddr::V4(a) => u32::from(a.octets()[3]),
                    IpAddr::V6(_) => 0,
                };
                Rec::of(f, e).with(whole)
            })
            .collect();
        let exporters: Vec<u128> = (0..3u8)
            .map(|i| addr16(IpAddr::from([192, 0, 2, i])))
            .collect();
        by_log.add_log(&log, 4096, &mut FxMap::default(), &exporters);
        for (d, dim) in Dimension::ALL.iter().zip(&by_log.dims) {
            let mut one = DimAgg::default();
            for (f, r) in flows.iter().zip(&log) {
                one.add(d.key(f), r.share(), 4096);
            }
            let mut x: Vec<_> = one.groups.into_iter().collect();
            let mut y: Vec<_> = dim.groups.clone().into_iter().collect();
            x.sort_unstable_by_key(|e| e.0);
            y.sort_unstable_by_key(|e| e.0);
            assert_eq!(x, y, "{d:?}");
        }
    }

    #[test]
    fn network_map_blob_round_trips() {
        let v4 = |s: &str| addr16(s.parse().unwrap());
        let mut m = MatrixAgg::default();
        m.add(v4("10.16.5.7"), v4("100.65.1.9"), agg(100));
        m.add(v4("10.16.5.200"), v4("100.65.1.1"), agg(50)); // same /24 pair
        m.add(v4("2001:db8:1:5::7"), v4("3fff:100::1"), agg(7));
        m.add(v4("10.16.5.7"), v4("2001:db8::9"), agg(3));
        assert_eq!(m.len(), 3);
        let mut blob = Vec::new();
        m.encode(&mut blob);
        let mut back = MatrixAgg::default();
        back.decode_into(&blob).unwrap();
        let mut pairs = Vec::new();
        back.for_each(|s, d, a| pairs.push((addr_from16(s), addr_from16(d), a.bytes)));
        pairs.sort_unstable();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            pairs,
            [
                (ip("10.16.5.0"), ip("100.65.1.0"), 150),
                (ip("10.16.5.0"), ip("2001:db8::"), 3),
                (ip("2001:db8:1:5::"), ip("3fff:100::"), 7),
            ]
        );
        let mut seen = 0;
        assert_eq!(
            MatrixAgg::visit(&blob, |_, _, a| seen += a.bytes),
            Some(false)
        );
        assert_eq!(seen, 160);
        assert!(MatrixAgg::visit(&blob[..blob.len() - 1], |_, _, _| {}).is_none());
    }
}
