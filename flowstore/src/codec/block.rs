//! Blocks of raw flows: a small uncompressed header (time range, count, an
//! address Bloom filter) so scans can skip blocks, then the flows in columns,
//! in five groups compressed separately with zstd so that a scan
//! decompresses only the groups it reads (a top list by source address
//! never touches ports, interfaces or next hops).
//!
//! ```text
//! offset  size  field
//! 0       1     block codec version (1)
//! 1       4     count: flows in the block (u32 BE)
//! 5       8     min_last_ms (u64 BE)
//! 13      8     max_last_ms (u64 BE)
//! 21      8     min_first_ms (u64 BE): the earliest min(first_ms, last_ms)
//! 29      4     bloom_len: bytes of the Bloom filter (u32 BE, 0 = none)
//! 33      n     Bloom filter over every distinct src and dst address
//!               (3 probes, ~10 bits per address)
//! 33+n    40    5 × (raw_len u32 BE, zstd_len u32 BE), one per group
//! 73+n    ...   the 5 zstd frames, in group order
//! ```
//!
//! Groups, each a run of columns over every flow in order (varints are
//! LEB128, "zigzag" maps signed to unsigned):
//!
//! | # | group | columns |
//! |---|---|---|
//! | 0 | time | last_ms − previous flow's last_ms (the first: − min_last_ms), zigzag varint; last_ms − first_ms, zigzag varint |
//! | 1 | counters | bytes, packets, sampling interval (varints) |
//! | 2 | addresses | address dictionary (below) of every src and dst address, most frequent first; src index, dst index (varints) |
//! | 3 | ports | protocol u8; src port high bytes, low bytes; dst port high bytes, low bytes |
//! | 4 | rest | exporter dictionary (count u8, then family u8 + 16-byte address + Source ID u32 BE each) and a u8 index per flow; flags u8 (bit 0 next hop, 1 BGP next hop, 2 direction present); TCP flags; ToS; src mask; dst mask; direction; out_bytes, out_packets, input, output interface, src AS, dst AS (varints); next-hop dictionary (below); next hop index, BGP next hop index (varints, for flows that have one); template ID (u16 BE) |
//!
//! An address dictionary is: entry count (varint), a bitmap of one bit per
//! entry (set: IPv6), then the IPv4 entries' 4 bytes each, then the IPv6
//! entries' 16 bytes each. Every address of the block is in it, so it also
//! answers "does this block hold an address of that network?" exactly.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netflow9::Flow;

use super::keys::addr16;
use super::varint;
use crate::rollup::FxMap;

/// Version byte of the block codec.
pub(crate) const BLOCK_VERSION: u8 = 1;
const HEADER_LEN: usize = 33;
/// Number of separately compressed column groups.
const GROUPS: usize = 5;
const GROUP_TABLE_LEN: usize = GROUPS * 8;
/// Largest accepted uncompressed size of one group per flow (guards
/// allocation from corrupt data).
const MAX_RAW_PER_FLOW: usize = 128;
/// Most flows per block.
pub(crate) const MAX_BLOCK_FLOWS: usize = 1 << 16;
/// Most distinct (exporter, Source ID) pairs per block.
pub(crate) const MAX_BLOCK_EXPORTERS: usize = 255;
/// Bloom filter bits per distinct address (3 probes: ~1.7 % false positives).
const BLOOM_BITS_PER_ADDR: usize = 10;

/// A set of column groups to decode; the others are left at their
/// `Flow::default()` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Groups(u8);

impl Groups {
    /// `first_ms`, `last_ms`.
    pub(crate) const TIME: Groups = Groups(1);
    /// `bytes`, `packets`, `sampling_interval`.
    pub(crate) const COUNTERS: Groups = Groups(1 << 1);
    /// `src_addr`, `dst_addr`.
    pub(crate) const ADDRS: Groups = Groups(1 << 2);
    /// `protocol`, `src_port`, `dst_port`.
    pub(crate) const PORTS: Groups = Groups(1 << 3);
    /// Everything else.
    pub(crate) const REST: Groups = Groups(1 << 4);
    /// Every field.
    pub(crate) const ALL: Groups = Groups(0x1f);

    const fn has(self, g: usize) -> bool {
        self.0 & (1 << g) != 0
    }
}

impl std::ops::BitOr for Groups {
    type Output = Groups;
    fn bitor(self, o: Groups) -> Groups {
        Groups(self.0 | o.0)
    }
}

const G_TIME: usize = 0;
const G_COUNTERS: usize = 1;
const G_ADDRS: usize = 2;
const G_PORTS: usize = 3;
const G_REST: usize = 4;

/// The uncompressed summary at the start of every block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BlockHeader<'a> {
    pub(crate) count: u32,
    pub(crate) min_last_ms: u64,
    pub(crate) max_last_ms: u64,
    pub(crate) min_first_ms: u64,
    bloom: &'a [u8],
    /// Per group: uncompressed length and zstd frame.
    groups: [(u32, &'a [u8]); GROUPS],
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn be64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

impl<'a> BlockHeader<'a> {
    /// Parses the header of a stored block; `None` if malformed.
    pub(crate) fn parse(v: &'a [u8]) -> Option<Self> {
        if *v.first()? != BLOCK_VERSION {
            return None;
        }
        let bloom_len = be32(v, 29)? as usize;
        let bloom = v.get(HEADER_LEN..HEADER_LEN.checked_add(bloom_len)?)?;
        let table = HEADER_LEN + bloom_len;
        let mut at = table + GROUP_TABLE_LEN;
        let mut groups = [(0, &[][..]); GROUPS];
        for (g, slot) in groups.iter_mut().enumerate() {
            let raw_len = be32(v, table + 8 * g)?;
            let z_len = be32(v, table + 8 * g + 4)? as usize;
            *slot = (raw_len, v.get(at..at.checked_add(z_len)?)?);
            at += z_len;
        }
        if at != v.len() {
            return None;
        }
        Some(BlockHeader {
            count: be32(v, 1)?,
            min_last_ms: be64(v, 5)?,
            max_last_ms: be64(v, 13)?,
            min_first_ms: be64(v, 21)?,
            bloom,
            groups,
        })
    }

    /// False if no flow of the block has `addr` as source or destination.
    pub(crate) fn may_contain(&self, addr: IpAddr) -> bool {
        bloom_test(self.bloom, addr16(addr))
    }
}

fn bloom_hashes(key: u128) -> (u64, u64) {
    // Two independent 64-bit mixes of the address (splitmix64 finalizer).
    let mix = |mut z: u64| {
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let bytes = key.to_be_bytes();
    let a = u64::from_le_bytes(bytes[..8].try_into().unwrap_or([0; 8]));
    let b = u64::from_le_bytes(bytes[8..].try_into().unwrap_or([0; 8]));
    (
        mix(a ^ mix(b)),
        mix(b.rotate_left(17) ^ 0x9e37_79b9_7f4a_7c15 ^ a) | 1,
    )
}

/// The bits a key sets: three probes, each mapped onto `bits` by a
/// multiply-shift (any filter length works, not only powers of two).
fn bloom_bits(key: u128, bits: u64) -> [u64; 3] {
    let (h1, h2) = bloom_hashes(key);
    [0u64, 1, 2].map(|i| {
        let h = h1.wrapping_add(i.wrapping_mul(h2));
        ((u128::from(h) * u128::from(bits)) >> 64) as u64
    })
}

fn bloom_set(bloom: &mut [u8], key: u128) {
    let bits = bloom.len() as u64 * 8;
    if bits == 0 {
        return;
    }
    for bit in bloom_bits(key, bits) {
        if let Some(b) = bloom.get_mut((bit / 8) as usize) {
            *b |= 1 << (bit % 8);
        }
    }
}

fn bloom_test(bloom: &[u8], key: u128) -> bool {
    let bits = bloom.len() as u64 * 8;
    if bits == 0 {
        return true;
    }
    bloom_bits(key, bits).iter().all(|&bit| {
        bloom
            .get((bit / 8) as usize)
            .is_some_and(|b| b & (1 << (bit % 8)) != 0)
    })
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn is_v4_mapped(a: u128) -> bool {
    a >> 32 == 0xffff
}

/// Writes an address dictionary (see the module docs): `addrs` in
/// [`addr16`] form.
fn put_dict(c: &mut Vec<u8>, addrs: impl Iterator<Item = u128> + Clone) {
    let n = addrs.clone().count();
    varint::put(c, n as u64);
    let at = c.len();
    c.resize(at + n.div_ceil(8), 0);
    for (i, a) in addrs.clone().enumerate() {
        if !is_v4_mapped(a) {
            c[at + i / 8] |= 1 << (i % 8);
        }
    }
    for a in addrs.clone().filter(|a| is_v4_mapped(*a)) {
        c.extend_from_slice(&(a as u32).to_be_bytes());
    }
    for a in addrs.filter(|a| !is_v4_mapped(*a)) {
        c.extend_from_slice(&a.to_be_bytes());
    }
}

/// The columns of one block before they are joined into groups, in group
/// order (see the module docs).
#[derive(Default)]
struct EncColumns {
    /// The fixed-width fields, [`ROW`] bytes per flow (offsets `R_*`).
    rows: Vec<u8>,
    last: Vec<u8>,
    dur: Vec<u8>,
    bytes: Vec<u8>,
    packets: Vec<u8>,
    sampling: Vec<u8>,
    out_bytes: Vec<u8>,
    out_packets: Vec<u8>,
    in_if: Vec<u8>,
    out_if: Vec<u8>,
    src_as: Vec<u8>,
    dst_as: Vec<u8>,
    nh: Vec<u8>,
    bgp: Vec<u8>,
}

const R_EXP: usize = 0;
const R_PROTO: usize = 1;
const R_SPORT: usize = 2;
const R_DPORT: usize = 4;
const R_FLAGS: usize = 6;
const R_TCP: usize = 7;
const R_TOS: usize = 8;
const R_SMASK: usize = 9;
const R_DMASK: usize = 10;
const R_DIR: usize = 11;
const R_TEMPLATE: usize = 12;
const ROW: usize = 14;

impl EncColumns {
    fn clear(&mut self) {
        for c in [
            &mut self.rows,
            &mut self.last,
            &mut self.dur,
            &mut self.bytes,
            &mut self.packets,
            &mut self.sampling,
            &mut self.out_bytes,
            &mut self.out_packets,
            &mut self.in_if,
            &mut self.out_if,
            &mut self.src_as,
            &mut self.dst_as,
            &mut self.nh,
            &mut self.bgp,
        ] {
            c.clear();
        }
    }
}

/// Reusable buffers for encoding blocks.
#[derive(Default)]
pub(crate) struct Encoder {
    cols: [Vec<u8>; GROUPS],
    c: EncColumns,
    z: Option<(i32, zstd::bulk::Compressor<'static>)>,
    zbuf: Vec<u8>,
    exporters: Vec<(IpAddr, u32)>,
    /// Address → position in `dict` (first-seen order).
    seen: FxMap<u128, u32>,
    /// (occurrences, address) in first-seen order.
    dict: Vec<(u32, u128)>,
    /// (!occurrences, address, first-seen position): sorted, the
    /// dictionary's order (most frequent first, then by address).
    order: Vec<(u32, u128, u32)>,
    /// First-seen position → rank in the dictionary as written.
    rank: Vec<u32>,
    /// Per flow: first-seen positions of src, dst.
    src_pos: Vec<u32>,
    dst_pos: Vec<u32>,
    hops: Vec<u128>,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder").finish_non_exhaustive()
    }
}

/// Position of `a` in `dict` (first-seen order), counting the occurrence.
#[inline]
fn intern(seen: &mut FxMap<u128, u32>, dict: &mut Vec<(u32, u128)>, a: u128) -> u32 {
    let next = dict.len() as u32;
    let p = *seen.entry(a).or_insert(next);
    if p == next {
        dict.push((0, a));
    }
    dict[p as usize].0 += 1;
    p
}

/// Position of `a` in the next-hop dictionary (first-seen order).
#[inline]
fn hop_index(hops: &mut Vec<u128>, a: IpAddr) -> u64 {
    let a = addr16(a);
    let i = hops.iter().position(|h| *h == a).unwrap_or_else(|| {
        hops.push(a);
        hops.len() - 1
    });
    i as u64
}

impl Encoder {
    /// Encodes `flows` (≤ [`MAX_BLOCK_FLOWS`], ≤ [`MAX_BLOCK_EXPORTERS`]
    /// exporters) into `out`, replacing its contents. Returns false if the
    /// exporter limit was hit (the caller splits the batch) or compression
    /// failed.
    pub(crate) fn encode<'f>(
        &mut self,
        flows: impl ExactSizeIterator<Item = &'f Flow> + Clone,
        level: i32,
        out: &mut Vec<u8>,
    ) -> bool {
        let n = flows.len();
        out.clear();
        self.c.clear();
        self.exporters.clear();
        self.seen.clear();
        self.dict.clear();
        self.src_pos.clear();
        self.dst_pos.clear();
        self.hops.clear();
        let (mut min_last, mut max_last, mut min_first) = (u64::MAX, 0, u64::MAX);
        for f in flows.clone() {
            min_last = min_last.min(f.last_ms);
            max_last = max_last.max(f.last_ms);
            // A flow that "starts" after it ends (a broken exporter clock)
            // is pro-rated at its end: the earliest time it touches.
            min_first = min_first.min(f.first_ms.min(f.last_ms));
        }
        if n == 0 {
            (min_last, min_first) = (0, 0);
        }

        // One pass over the flows, each field to its column.
        let c = &mut self.c;
        let mut prev = min_last;
        let mut last_exp = None;
        for f in flows {
            let key = (f.exporter, f.source_id);
            let e = match last_exp {
                Some((k, i)) if k == key => i,
                _ => {
                    let i = match self.exporters.iter().position(|e| *e == key) {
                        Some(i) => i,
                        None => {
                            if self.exporters.len() >= MAX_BLOCK_EXPORTERS {
                                return false;
                            }
                            self.exporters.push(key);
                            self.exporters.len() - 1
                        }
                    };
                    last_exp = Some((key, i));
                    i
                }
            };
            let [sh, sl] = f.src_port.to_be_bytes();
            let [dh, dl] = f.dst_port.to_be_bytes();
            let [th, tl] = f.template_id.to_be_bytes();
            // The fixed-width fields, one row per flow: split into columns
            // when the groups are joined.
            c.rows.extend_from_slice(&[
                e as u8,
                f.protocol,
                sh,
                sl,
                dh,
                dl,
                u8::from(f.next_hop.is_some())
                    | u8::from(f.bgp_next_hop.is_some()) << 1
                    | u8::from(f.direction.is_some()) << 2,
                f.tcp_flags,
                f.tos,
                f.src_mask,
                f.dst_mask,
                f.direction.unwrap_or(0),
                th,
                tl,
            ]);
            varint::put(&mut c.last, zigzag(f.last_ms.wrapping_sub(prev) as i64));
            prev = f.last_ms;
            varint::put(
                &mut c.dur,
                zigzag(f.last_ms.wrapping_sub(f.first_ms) as i64),
            );
            varint::put(&mut c.bytes, f.bytes);
            varint::put(&mut c.packets, f.packets);
            varint::put(&mut c.sampling, u64::from(f.sampling_interval));
            varint::put(&mut c.out_bytes, f.out_bytes);
            varint::put(&mut c.out_packets, f.out_packets);
            varint::put(&mut c.in_if, u64::from(f.input_if));
            varint::put(&mut c.out_if, u64::from(f.output_if));
            varint::put(&mut c.src_as, u64::from(f.src_as));
            varint::put(&mut c.dst_as, u64::from(f.dst_as));
            if let Some(a) = f.next_hop {
                varint::put(&mut c.nh, hop_index(&mut self.hops, a));
            }
            if let Some(a) = f.bgp_next_hop {
                varint::put(&mut c.bgp, hop_index(&mut self.hops, a));
            }
            self.src_pos
                .push(intern(&mut self.seen, &mut self.dict, addr16(f.src_addr)));
            self.dst_pos
                .push(intern(&mut self.seen, &mut self.dict, addr16(f.dst_addr)));
        }

        // Addresses: a dictionary, most frequent first, so that indices
        // are short varints.
        // Sorted by value: comparisons need no lookups.
        self.order.clear();
        self.order.extend(
            self.dict
                .iter()
                .enumerate()
                .map(|(p, &(count, a))| (!count, a, p as u32)),
        );
        self.order.sort_unstable();
        self.rank.clear();
        self.rank.resize(self.order.len(), 0);
        for (r, &(_, _, p)) in self.order.iter().enumerate() {
            self.rank[p as usize] = r as u32;
        }

        // Join the columns into groups.
        let [g_time, g_counters, g_addrs, g_ports, g_rest] = &mut self.cols;
        g_time.clear();
        g_time.extend_from_slice(&c.last);
        g_time.extend_from_slice(&c.dur);
        g_counters.clear();
        for col in [&c.bytes, &c.packets, &c.sampling] {
            g_counters.extend_from_slice(col);
        }
        g_addrs.clear();
        put_dict(g_addrs, self.order.iter().map(|&(_, a, _)| a));
        for pos in [&self.src_pos, &self.dst_pos] {
            for p in pos {
                varint::put(g_addrs, u64::from(self.rank[*p as usize]));
            }
        }
        let rows = || c.rows.chunks_exact(ROW);
        g_ports.clear();
        for k in [R_PROTO, R_SPORT, R_SPORT + 1, R_DPORT, R_DPORT + 1] {
            g_ports.extend(rows().map(|r| r[k]));
        }
        g_rest.clear();
        g_rest.push(self.exporters.len() as u8);
        for (a, sid) in &self.exporters {
            g_rest.push(if a.is_ipv6() { 6 } else { 4 });
            g_rest.extend_from_slice(&addr16(*a).to_be_bytes());
            g_rest.extend_from_slice(&sid.to_be_bytes());
        }
        for k in [R_EXP, R_FLAGS, R_TCP, R_TOS, R_SMASK, R_DMASK, R_DIR] {
            g_rest.extend(rows().map(|r| r[k]));
        }
        for col in [
            &c.out_bytes,
            &c.out_packets,
            &c.in_if,
            &c.out_if,
            &c.src_as,
            &c.dst_as,
        ] {
            g_rest.extend_from_slice(col);
        }
        put_dict(g_rest, self.hops.iter().copied());
        for col in [&c.nh, &c.bgp] {
            g_rest.extend_from_slice(col);
        }
        for r in rows() {
            g_rest.extend_from_slice(&r[R_TEMPLATE..R_TEMPLATE + 2]);
        }

        let bloom_len = if n == 0 {
            0
        } else {
            (self.dict.len() * BLOOM_BITS_PER_ADDR).div_ceil(8).max(64)
        };
        out.push(BLOCK_VERSION);
        out.extend_from_slice(&(n as u32).to_be_bytes());
        out.extend_from_slice(&min_last.to_be_bytes());
        out.extend_from_slice(&max_last.to_be_bytes());
        out.extend_from_slice(&min_first.to_be_bytes());
        out.extend_from_slice(&(bloom_len as u32).to_be_bytes());
        let bloom_at = out.len();
        out.resize(bloom_at + bloom_len, 0);
        for (_, a) in &self.dict {
            bloom_set(&mut out[bloom_at..], *a);
        }
        let table = out.len();
        out.resize(table + GROUP_TABLE_LEN, 0);
        let z = match &mut self.z {
            Some((l, z)) if *l == level => z,
            _ => match zstd::bulk::Compressor::new(level) {
                Ok(z) => &mut self.z.insert((level, z)).1,
                Err(_) => return false,
            },
        };
        for (g, col) in self.cols.iter().enumerate() {
            self.zbuf.clear();
            self.zbuf
                .reserve(zstd::zstd_safe::compress_bound(col.len()));
            let Ok(len) = z.compress_to_buffer(col.as_slice(), &mut self.zbuf) else {
                return false;
            };
            out[table + 8 * g..table + 8 * g + 4]
                .copy_from_slice(&(col.len() as u32).to_be_bytes());
            out[table + 8 * g + 4..table + 8 * g + 8].copy_from_slice(&(len as u32).to_be_bytes());
            out.extend_from_slice(&self.zbuf);
        }
        true
    }
}

/// Reusable buffers for decoding blocks.
#[derive(Default)]
pub(crate) struct Decoder {
    raw: [Vec<u8>; GROUPS],
    z: Option<zstd::bulk::Decompressor<'static>>,
    dict: Vec<IpAddr>,
    hops: Vec<IpAddr>,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder").finish_non_exhaustive()
    }
}

/// Sequential reader over the column bytes.
struct Cols<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Cols<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.b.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|s| s[0])
    }
    fn var(&mut self) -> Option<u64> {
        varint::get(self.b, &mut self.pos)
    }
    fn var32(&mut self) -> Option<u32> {
        u32::try_from(self.var()?).ok()
    }
    /// An address dictionary (see the module docs) into `out`.
    fn dict(&mut self, limit: usize, out: &mut Vec<IpAddr>) -> Option<()> {
        let n = usize::try_from(self.var()?).ok()?;
        if n > limit {
            return None;
        }
        let bitmap = self.take(n.div_ceil(8))?;
        let v6 = |i: usize| bitmap[i / 8] & (1 << (i % 8)) != 0;
        let n6 = (0..n).filter(|&i| v6(i)).count();
        let mut a4 = self.take((n - n6) * 4)?.chunks_exact(4);
        let mut a6 = self.take(n6 * 16)?.chunks_exact(16);
        out.clear();
        for i in 0..n {
            out.push(if v6(i) {
                let b: [u8; 16] = a6.next()?.try_into().ok()?;
                IpAddr::V6(Ipv6Addr::from(b))
            } else {
                let b: [u8; 4] = a4.next()?.try_into().ok()?;
                IpAddr::V4(Ipv4Addr::from(b))
            });
        }
        Some(())
    }
    fn done(&self) -> Option<()> {
        (self.pos == self.b.len()).then_some(())
    }
}

/// The columns a fast scan reads, decoded from a block: times, counters
/// and addresses (as indices into the block's dictionary).
#[derive(Debug, Default)]
pub(crate) struct Columns {
    pub(crate) first_ms: Vec<u64>,
    pub(crate) last_ms: Vec<u64>,
    pub(crate) bytes: Vec<u64>,
    pub(crate) packets: Vec<u64>,
    pub(crate) sampling: Vec<u32>,
    /// Per flow: the index of its source and destination address in `dict`.
    pub(crate) src: Vec<u32>,
    pub(crate) dst: Vec<u32>,
    /// Every address of the block, [`addr16`] forms.
    pub(crate) dict: Vec<u128>,
}

/// A block being decoded: groups are decompressed on first use.
pub(crate) struct BlockReader<'d, 'b> {
    dec: &'d mut Decoder,
    h: &'d BlockHeader<'b>,
    loaded: u8,
    dict_ready: bool,
}

impl Decoder {
    /// Starts decoding `h`.
    pub(crate) fn open<'d, 'b>(&'d mut self, h: &'d BlockHeader<'b>) -> BlockReader<'d, 'b> {
        BlockReader {
            dec: self,
            h,
            loaded: 0,
            dict_ready: false,
        }
    }

    /// Decodes every flow of a block into `out` (replacing its contents).
    /// `None` if the block is malformed.
    pub(crate) fn decode(&mut self, h: &BlockHeader<'_>, out: &mut Vec<Flow>) -> Option<()> {
        self.open(h).flows(Groups::ALL, out)
    }
}

impl BlockReader<'_, '_> {
    /// The block's header.
    pub(crate) fn header(&self) -> &BlockHeader<'_> {
        self.h
    }

    fn load(&mut self, g: usize) -> Option<()> {
        if self.loaded & (1 << g) != 0 {
            return Some(());
        }
        let n = self.h.count as usize;
        let (raw_len, body) = self.h.groups[g];
        let raw_len = raw_len as usize;
        if n > MAX_BLOCK_FLOWS || raw_len > n * MAX_RAW_PER_FLOW + 8192 {
            return None;
        }
        let z = match &mut self.dec.z {
            Some(z) => z,
            None => self.dec.z.insert(zstd::bulk::Decompressor::new().ok()?),
        };
        let raw = &mut self.dec.raw[g];
        raw.clear();
        raw.reserve(raw_len);
        let got = z.decompress_to_buffer(body, raw).ok()?;
        if got != raw_len {
            return None;
        }
        self.loaded |= 1 << g;
        Some(())
    }

    fn load_dict(&mut self) -> Option<usize> {
        self.load(G_ADDRS)?;
        let mut c = Cols {
            b: &self.dec.raw[G_ADDRS],
            pos: 0,
        };
        if !self.dict_ready {
            c.dict(2 * self.h.count as usize, &mut self.dec.dict)?;
            self.dict_ready = true;
            return Some(c.pos);
        }
        // Skip the dictionary already decoded: count, bitmap, addresses.
        let n = usize::try_from(c.var()?).ok()?;
        let n6 = self.dec.dict.iter().filter(|a| a.is_ipv6()).count();
        Some(c.pos + n.div_ceil(8) + (n - n6) * 4 + n6 * 16)
    }

    /// Whether some flow of the block has its source or destination in one
    /// of `cidrs` (exact: reads the address dictionary). `None` if malformed.
    pub(crate) fn any_addr_in(&mut self, cidrs: &[crate::cidr::Cidr]) -> Option<bool> {
        self.load_dict()?;
        Some(
            self.dec
                .dict
                .iter()
                .any(|a| cidrs.iter().any(|c| c.contains(*a))),
        )
    }

    /// Decodes the time columns into `out` (the others are left as they
    /// are: call [`BlockReader::columns`] for them). `None` if the block is
    /// malformed.
    pub(crate) fn time_columns(&mut self, out: &mut Columns) -> Option<()> {
        let n = self.h.count as usize;
        if n > MAX_BLOCK_FLOWS {
            return None;
        }
        self.load(G_TIME)?;
        let mut c = Cols {
            b: &self.dec.raw[G_TIME],
            pos: 0,
        };
        out.last_ms.clear();
        out.first_ms.clear();
        let mut prev = self.h.min_last_ms;
        for _ in 0..n {
            prev = prev.wrapping_add(unzigzag(c.var()?) as u64);
            out.last_ms.push(prev);
        }
        for i in 0..n {
            out.first_ms
                .push(out.last_ms[i].wrapping_sub(unzigzag(c.var()?) as u64));
        }
        c.done()
    }

    /// Decodes the counter and address columns into `out`, after
    /// [`BlockReader::time_columns`]. `None` if the block is malformed.
    pub(crate) fn columns(&mut self, out: &mut Columns) -> Option<()> {
        let n = self.h.count as usize;
        if n > MAX_BLOCK_FLOWS || out.last_ms.len() != n {
            return None;
        }
        self.load(G_COUNTERS)?;
        let mut c = Cols {
            b: &self.dec.raw[G_COUNTERS],
            pos: 0,
        };
        out.bytes.clear();
        out.packets.clear();
        out.sampling.clear();
        for _ in 0..n {
            out.bytes.push(c.var()?);
        }
        for _ in 0..n {
            out.packets.push(c.var()?);
        }
        for _ in 0..n {
            out.sampling.push(c.var32()?);
        }
        c.done()?;
        let at = self.load_dict()?;
        out.dict.clear();
        out.dict.extend(self.dec.dict.iter().map(|a| addr16(*a)));
        let mut c = Cols {
            b: &self.dec.raw[G_ADDRS],
            pos: at,
        };
        let len = out.dict.len() as u64;
        out.src.clear();
        out.dst.clear();
        for side in [&mut out.src, &mut out.dst] {
            for _ in 0..n {
                let i = c.var()?;
                if i >= len {
                    return None;
                }
                side.push(i as u32);
            }
        }
        c.done()
    }

    /// Decodes the flows into `out` (replacing its contents), filling the
    /// fields of the groups in `want`. `None` if the block is malformed.
    pub(crate) fn flows(&mut self, want: Groups, out: &mut Vec<Flow>) -> Option<()> {
        let n = self.h.count as usize;
        if n > MAX_BLOCK_FLOWS {
            return None;
        }
        out.clear();
        out.resize(n, Flow::default());
        if want.has(G_TIME) {
            self.load(G_TIME)?;
            let mut c = Cols {
                b: &self.dec.raw[G_TIME],
                pos: 0,
            };
            let mut prev = self.h.min_last_ms;
            for f in out.iter_mut() {
                prev = prev.wrapping_add(unzigzag(c.var()?) as u64);
                f.last_ms = prev;
            }
            for f in out.iter_mut() {
                f.first_ms = f.last_ms.wrapping_sub(unzigzag(c.var()?) as u64);
            }
            c.done()?;
        }
        if want.has(G_COUNTERS) {
            self.load(G_COUNTERS)?;
            let mut c = Cols {
                b: &self.dec.raw[G_COUNTERS],
                pos: 0,
            };
            for f in out.iter_mut() {
                f.bytes = c.var()?;
            }
            for f in out.iter_mut() {
                f.packets = c.var()?;
            }
            for f in out.iter_mut() {
                f.sampling_interval = c.var32()?;
            }
            c.done()?;
        }
        if want.has(G_ADDRS) {
            let at = self.load_dict()?;
            let dict = &self.dec.dict;
            let mut c = Cols {
                b: &self.dec.raw[G_ADDRS],
                pos: at,
            };
            for f in out.iter_mut() {
                f.src_addr = *dict.get(usize::try_from(c.var()?).ok()?)?;
            }
            for f in out.iter_mut() {
                f.dst_addr = *dict.get(usize::try_from(c.var()?).ok()?)?;
            }
            c.done()?;
        }
        if want.has(G_PORTS) {
            self.load(G_PORTS)?;
            let mut c = Cols {
                b: &self.dec.raw[G_PORTS],
                pos: 0,
            };
            let proto = c.take(n)?;
            let (sh, sl) = (c.take(n)?, c.take(n)?);
            let (dh, dl) = (c.take(n)?, c.take(n)?);
            for (i, f) in out.iter_mut().enumerate() {
                f.protocol = proto[i];
                f.src_port = u16::from_be_bytes([sh[i], sl[i]]);
                f.dst_port = u16::from_be_bytes([dh[i], dl[i]]);
            }
            c.done()?;
        }
        if want.has(G_REST) {
            self.load(G_REST)?;
            decode_rest(&self.dec.raw[G_REST], &mut self.dec.hops, out)?;
        }
        Some(())
    }
}

fn decode_rest(raw: &[u8], hops: &mut Vec<IpAddr>, out: &mut [Flow]) -> Option<()> {
    let n = out.len();
    let mut c = Cols { b: raw, pos: 0 };
    let n_exp = usize::from(c.u8()?);
    let mut exporters = [(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0u32); MAX_BLOCK_EXPORTERS];
    for e in exporters.iter_mut().take(n_exp) {
        let fam = c.u8()?;
        let a: [u8; 16] = c.take(16)?.try_into().ok()?;
        let v6 = Ipv6Addr::from(a);
        let addr = match (fam, v6.to_ipv4_mapped()) {
            (4, Some(v4)) => IpAddr::V4(v4),
            (6, _) => IpAddr::V6(v6),
            _ => return None,
        };
        let sid = u32::from_be_bytes(c.take(4)?.try_into().ok()?);
        *e = (addr, sid);
    }
    let index = c.take(n)?;
    let flags = c.take(n)?;
    let (tcp, tos) = (c.take(n)?, c.take(n)?);
    let (smask, dmask, dir) = (c.take(n)?, c.take(n)?, c.take(n)?);
    for (i, f) in out.iter_mut().enumerate() {
        let e = usize::from(index[i]);
        if e >= n_exp {
            return None;
        }
        (f.exporter, f.source_id) = exporters[e];
        f.tcp_flags = tcp[i];
        f.tos = tos[i];
        f.src_mask = smask[i];
        f.dst_mask = dmask[i];
        f.direction = (flags[i] & 1 << 2 != 0).then_some(dir[i]);
    }
    for f in out.iter_mut() {
        f.out_bytes = c.var()?;
    }
    for f in out.iter_mut() {
        f.out_packets = c.var()?;
    }
    for f in out.iter_mut() {
        f.input_if = c.var32()?;
    }
    for f in out.iter_mut() {
        f.output_if = c.var32()?;
    }
    for f in out.iter_mut() {
        f.src_as = c.var32()?;
    }
    for f in out.iter_mut() {
        f.dst_as = c.var32()?;
    }
    c.dict(2 * n, hops)?;
    for (f, fl) in out.iter_mut().zip(flags) {
        if fl & 1 != 0 {
            f.next_hop = Some(*hops.get(usize::try_from(c.var()?).ok()?)?);
        }
    }
    for (f, fl) in out.iter_mut().zip(flags) {
        if fl & 1 << 1 != 0 {
            f.bgp_next_hop = Some(*hops.get(usize::try_from(c.var()?).ok()?)?);
        }
    }
    for f in out.iter_mut() {
        let s = c.take(2)?;
        f.template_id = u16::from_be_bytes([s[0], s[1]]);
    }
    c.done()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(i: u32) -> Flow {
        Flow {
            exporter: IpAddr::V4(Ipv4Addr::new(192, 0, 2, (i % 3) as u8)),
            source_id: i % 2,
            template_id: 256 + (i % 2) as u16,
            src_addr: if i % 5 == 0 {
                "2001:db8::1".parse().unwrap()
            } else {
                IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i))
            },
            dst_addr: IpAddr::V4(Ipv4Addr::new(198, 51, 100, i as u8)),
            src_port: i as u16,
            dst_port: 443,
            protocol: 6,
            tcp_flags: 0x1b,
            bytes: u64::from(i) * 1000,
            packets: u64::from(i),
            first_ms: 1_709_294_400_000 + u64::from(i),
            last_ms: 1_709_294_400_000 + u64::from(i) * 3 - u64::from(i % 4) * 2,
            next_hop: (i % 4 == 0).then(|| IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))),
            bgp_next_hop: (i % 6 == 0).then(|| "2001:db8::ff".parse().unwrap()),
            direction: (i % 2 == 0).then_some(1),
            sampling_interval: 1 + i % 7,
            ..Flow::default()
        }
    }

    #[test]
    fn encode_decode_round_trip() {
        let flows: Vec<Flow> = (0..1000).map(flow).collect();
        let mut enc = Encoder::default();
        let mut out = Vec::new();
        assert!(enc.encode(flows.iter(), 3, &mut out));
        let h = BlockHeader::parse(&out).unwrap();
        assert_eq!(h.count, 1000);
        assert_eq!(
            h.min_last_ms,
            flows.iter().map(|f| f.last_ms).min().unwrap()
        );
        assert!(h.may_contain(flows[7].src_addr));
        assert!(h.may_contain(flows[7].dst_addr));
        let absent = (0..200)
            .filter(|i| h.may_contain(IpAddr::V4(Ipv4Addr::new(203, 0, 113, *i))))
            .count();
        assert!(absent < 20, "bloom false positives: {absent}/200");
        let mut dec = Decoder::default();
        let mut back = Vec::new();
        dec.decode(&h, &mut back).unwrap();
        assert_eq!(back, flows);
        assert!(
            out.len() < flows.len() * 32,
            "{} bytes for 1000 flows",
            out.len()
        );
        // Some groups only; the address dictionary answers exactly.
        let mut r = dec.open(&h);
        let net = |s: &str| s.parse::<crate::cidr::Cidr>().unwrap();
        assert_eq!(r.any_addr_in(&[net("198.51.100.0/24")]), Some(true));
        assert_eq!(r.any_addr_in(&[net("203.0.113.0/24")]), Some(false));
        r.flows(Groups::TIME | Groups::ADDRS, &mut back).unwrap();
        for (b, f) in back.iter().zip(&flows) {
            assert_eq!(
                (b.src_addr, b.dst_addr, b.last_ms),
                (f.src_addr, f.dst_addr, f.last_ms)
            );
            assert_eq!(
                (b.bytes, b.src_port, b.exporter),
                (0, 0, Flow::default().exporter)
            );
        }
        // The columns of a scan.
        let mut c = Columns::default();
        let mut r = dec.open(&h);
        r.time_columns(&mut c).unwrap();
        r.columns(&mut c).unwrap();
        for (i, f) in flows.iter().enumerate() {
            assert_eq!((c.first_ms[i], c.last_ms[i]), (f.first_ms, f.last_ms));
            assert_eq!((c.bytes[i], c.packets[i]), (f.bytes, f.packets));
            assert_eq!(c.sampling[i], f.sampling_interval);
            assert_eq!(c.dict[c.src[i] as usize], addr16(f.src_addr));
            assert_eq!(c.dict[c.dst[i] as usize], addr16(f.dst_addr));
        }
        // An empty block.
        assert!(enc.encode([].iter(), 1, &mut out));
        let h = BlockHeader::parse(&out).unwrap();
        dec.decode(&h, &mut back).unwrap();
        assert!(back.is_empty());
    }

    #[test]
    fn corrupt_blocks_are_rejected_not_panics() {
        let flows: Vec<Flow> = (0..50).map(flow).collect();
        let mut enc = Encoder::default();
        let mut out = Vec::new();
        enc.encode(flows.iter(), 1, &mut out);
        let mut dec = Decoder::default();
        let mut back = Vec::new();
        for cut in 0..out.len() {
            if let Some(h) = BlockHeader::parse(&out[..cut]) {
                assert!(dec.decode(&h, &mut back).is_none());
            }
        }
        for i in (0..out.len()).step_by(3) {
            let mut bad = out.clone();
            bad[i] ^= 0x5a;
            if let Some(h) = BlockHeader::parse(&bad) {
                let _ = dec.decode(&h, &mut back);
            }
        }
        let mut huge = out.clone();
        huge[1..5].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(dec
            .decode(&BlockHeader::parse(&huge).unwrap(), &mut back)
            .is_none());
    }
}
