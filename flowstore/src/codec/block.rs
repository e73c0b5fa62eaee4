//! Blocks of raw flows: a small uncompressed header (time range, count, an
//! address Bloom filter) so scans can skip blocks, then the flows in columns,
//! compressed with zstd.
//!
//! ```text
//! offset  size  field
//! 0       1     block codec version (1)
//! 1       4     count: flows in the block (u32 BE)
//! 5       8     min_last_ms (u64 BE)
//! 13      8     max_last_ms (u64 BE)
//! 21      8     min_first_ms (u64 BE)
//! 29      2     bloom_len: bytes of the Bloom filter (u16 BE, power of two or 0)
//! 31      n     Bloom filter over every src and dst address (3 probes)
//! 31+n    4     raw_len: length of the uncompressed columns (u32 BE)
//! 35+n    ...   zstd frame of the columns
//! ```
//!
//! Columns, each for every flow in order: exporter dictionary (count u8,
//! then family u8 + 16-byte address + Source ID u32 BE each) and a u8 index
//! per flow; flags u8 (bit 0 src IPv6, 1 dst IPv6, 2 next hop, 3 next hop
//! IPv6, 4 BGP next hop, 5 BGP next hop IPv6, 6 direction present); last_ms
//! − min_last_ms (varint); last_ms − first_ms (zigzag varint); src addresses
//! (4 or 16 bytes); dst addresses; src ports (u16 BE); dst ports; protocol;
//! TCP flags; ToS; src mask; dst mask; direction; bytes, packets, out_bytes,
//! out_packets (varints); input, output interface, src AS, dst AS (varints);
//! next hops; BGP next hops; template ID (u16 BE); sampling interval (varint).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netflow9::Flow;

use super::varint;

/// Version byte of the block codec.
pub(crate) const BLOCK_VERSION: u8 = 1;
const HEADER_LEN: usize = 31;
/// Largest accepted uncompressed size per flow (guards allocation from corrupt data).
const MAX_RAW_PER_FLOW: usize = 160;
/// Most flows per block.
pub(crate) const MAX_BLOCK_FLOWS: usize = 1 << 16;
/// Most distinct (exporter, Source ID) pairs per block.
pub(crate) const MAX_BLOCK_EXPORTERS: usize = 255;

/// The uncompressed summary at the start of every block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BlockHeader<'a> {
    pub(crate) count: u32,
    pub(crate) min_last_ms: u64,
    pub(crate) max_last_ms: u64,
    pub(crate) min_first_ms: u64,
    bloom: &'a [u8],
    raw_len: u32,
    body: &'a [u8],
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
        let count = u32::from_be_bytes(v.get(1..5)?.try_into().ok()?);
        let bloom_len = usize::from(u16::from_be_bytes(v.get(29..31)?.try_into().ok()?));
        let bloom = v.get(HEADER_LEN..HEADER_LEN + bloom_len)?;
        if bloom_len != 0 && !bloom_len.is_power_of_two() {
            return None;
        }
        let at = HEADER_LEN + bloom_len;
        let raw_len = u32::from_be_bytes(v.get(at..at + 4)?.try_into().ok()?);
        Some(BlockHeader {
            count,
            min_last_ms: be64(v, 5)?,
            max_last_ms: be64(v, 13)?,
            min_first_ms: be64(v, 21)?,
            bloom,
            raw_len,
            body: v.get(at + 4..)?,
        })
    }

    /// False if no flow of the block has `addr` as source or destination.
    pub(crate) fn may_contain(&self, addr: IpAddr) -> bool {
        bloom_test(self.bloom, &addr_bytes(addr))
    }
}

fn addr_bytes(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

fn bloom_hashes(key: &[u8; 16]) -> (u64, u64) {
    // Two independent 64-bit mixes of the address (splitmix64 finalizer).
    let mix = |mut z: u64| {
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let a = u64::from_le_bytes(key[..8].try_into().unwrap_or([0; 8]));
    let b = u64::from_le_bytes(key[8..].try_into().unwrap_or([0; 8]));
    (
        mix(a ^ mix(b)),
        mix(b.rotate_left(17) ^ 0x9e37_79b9_7f4a_7c15 ^ a) | 1,
    )
}

fn bloom_set(bloom: &mut [u8], key: &[u8; 16]) {
    let bits = bloom.len() as u64 * 8;
    if bits == 0 {
        return;
    }
    let (h1, h2) = bloom_hashes(key);
    for i in 0..3u64 {
        let bit = h1.wrapping_add(i.wrapping_mul(h2)) & (bits - 1);
        if let Some(b) = bloom.get_mut((bit / 8) as usize) {
            *b |= 1 << (bit % 8);
        }
    }
}

fn bloom_test(bloom: &[u8], key: &[u8; 16]) -> bool {
    let bits = bloom.len() as u64 * 8;
    if bits == 0 {
        return true;
    }
    let (h1, h2) = bloom_hashes(key);
    (0..3u64).all(|i| {
        let bit = h1.wrapping_add(i.wrapping_mul(h2)) & (bits - 1);
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

fn put_addr(out: &mut Vec<u8>, a: IpAddr) {
    match a {
        IpAddr::V4(v4) => out.extend_from_slice(&v4.octets()),
        IpAddr::V6(v6) => out.extend_from_slice(&v6.octets()),
    }
}

/// Reusable buffers for encoding blocks.
#[derive(Debug, Default)]
pub(crate) struct Encoder {
    columns: Vec<u8>,
    exporters: Vec<(IpAddr, u32)>,
    index: Vec<u8>,
}

impl Encoder {
    /// Encodes `flows` (≤ [`MAX_BLOCK_FLOWS`], ≤ [`MAX_BLOCK_EXPORTERS`]
    /// exporters) into `out`, replacing its contents. Returns false if the
    /// exporter limit was hit (the caller splits the batch).
    pub(crate) fn encode(&mut self, flows: &[Flow], level: i32, out: &mut Vec<u8>) -> bool {
        out.clear();
        self.columns.clear();
        self.exporters.clear();
        self.index.clear();
        for f in flows {
            let key = (f.exporter, f.source_id);
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
            self.index.push(i as u8);
        }
        let min_last = flows.iter().map(|f| f.last_ms).min().unwrap_or(0);
        let max_last = flows.iter().map(|f| f.last_ms).max().unwrap_or(0);
        let min_first = flows.iter().map(|f| f.first_ms).min().unwrap_or(0);

        let c = &mut self.columns;
        c.push(self.exporters.len() as u8);
        for (a, sid) in &self.exporters {
            c.push(if a.is_ipv6() { 6 } else { 4 });
            c.extend_from_slice(&addr_bytes(*a));
            c.extend_from_slice(&sid.to_be_bytes());
        }
        c.extend_from_slice(&self.index);
        for f in flows {
            let mut flags = 0u8;
            flags |= u8::from(f.src_addr.is_ipv6());
            flags |= u8::from(f.dst_addr.is_ipv6()) << 1;
            if let Some(nh) = f.next_hop {
                flags |= 1 << 2 | u8::from(nh.is_ipv6()) << 3;
            }
            if let Some(nh) = f.bgp_next_hop {
                flags |= 1 << 4 | u8::from(nh.is_ipv6()) << 5;
            }
            flags |= u8::from(f.direction.is_some()) << 6;
            c.push(flags);
        }
        for f in flows {
            varint::put(c, f.last_ms - min_last);
        }
        for f in flows {
            varint::put(c, zigzag(f.last_ms.wrapping_sub(f.first_ms) as i64));
        }
        for f in flows {
            put_addr(c, f.src_addr);
        }
        for f in flows {
            put_addr(c, f.dst_addr);
        }
        for f in flows {
            c.extend_from_slice(&f.src_port.to_be_bytes());
        }
        for f in flows {
            c.extend_from_slice(&f.dst_port.to_be_bytes());
        }
        c.extend(flows.iter().map(|f| f.protocol));
        c.extend(flows.iter().map(|f| f.tcp_flags));
        c.extend(flows.iter().map(|f| f.tos));
        c.extend(flows.iter().map(|f| f.src_mask));
        c.extend(flows.iter().map(|f| f.dst_mask));
        c.extend(flows.iter().map(|f| f.direction.unwrap_or(0)));
        for f in flows {
            varint::put(c, f.bytes);
        }
        for f in flows {
            varint::put(c, f.packets);
        }
        for f in flows {
            varint::put(c, f.out_bytes);
        }
        for f in flows {
            varint::put(c, f.out_packets);
        }
        for f in flows {
            varint::put(c, u64::from(f.input_if));
        }
        for f in flows {
            varint::put(c, u64::from(f.output_if));
        }
        for f in flows {
            varint::put(c, u64::from(f.src_as));
        }
        for f in flows {
            varint::put(c, u64::from(f.dst_as));
        }
        for f in flows {
            if let Some(a) = f.next_hop {
                put_addr(c, a);
            }
        }
        for f in flows {
            if let Some(a) = f.bgp_next_hop {
                put_addr(c, a);
            }
        }
        for f in flows {
            c.extend_from_slice(&f.template_id.to_be_bytes());
        }
        for f in flows {
            varint::put(c, u64::from(f.sampling_interval));
        }

        // ~8 bits per address keeps false positives near 2 % with 3 probes.
        let bloom_len = (flows.len() * 2).next_power_of_two().clamp(64, 32 * 1024);
        out.push(BLOCK_VERSION);
        out.extend_from_slice(&(flows.len() as u32).to_be_bytes());
        out.extend_from_slice(&min_last.to_be_bytes());
        out.extend_from_slice(&max_last.to_be_bytes());
        out.extend_from_slice(&min_first.to_be_bytes());
        out.extend_from_slice(&(bloom_len as u16).to_be_bytes());
        let bloom_at = out.len();
        out.resize(bloom_at + bloom_len, 0);
        for f in flows {
            bloom_set(&mut out[bloom_at..], &addr_bytes(f.src_addr));
            bloom_set(&mut out[bloom_at..], &addr_bytes(f.dst_addr));
        }
        out.extend_from_slice(&(self.columns.len() as u32).to_be_bytes());
        match zstd::bulk::compress(&self.columns, level) {
            Ok(z) => out.extend_from_slice(&z),
            Err(_) => return false,
        }
        true
    }
}

/// Reusable buffers for decoding blocks.
#[derive(Default)]
pub(crate) struct Decoder {
    raw: Vec<u8>,
    z: Option<zstd::bulk::Decompressor<'static>>,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("raw", &self.raw.len())
            .finish()
    }
}

/// Sequential reader over the column bytes.
struct Cols<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Cols<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.b.get(self.pos..self.pos + n)?;
        self.pos += n;
        Some(s)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|s| s[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|s| u16::from_be_bytes([s[0], s[1]]))
    }
    fn var(&mut self) -> Option<u64> {
        varint::get(self.b, &mut self.pos)
    }
    fn addr(&mut self, v6: bool) -> Option<IpAddr> {
        if v6 {
            let s: [u8; 16] = self.take(16)?.try_into().ok()?;
            Some(IpAddr::V6(Ipv6Addr::from(s)))
        } else {
            let s: [u8; 4] = self.take(4)?.try_into().ok()?;
            Some(IpAddr::V4(Ipv4Addr::from(s)))
        }
    }
}

impl Decoder {
    /// Decodes the flows of a block into `out` (replacing its contents).
    /// `None` if the block is malformed.
    pub(crate) fn decode(&mut self, block: &BlockHeader<'_>, out: &mut Vec<Flow>) -> Option<()> {
        let n = block.count as usize;
        let raw_len = block.raw_len as usize;
        if n > MAX_BLOCK_FLOWS || raw_len > n * MAX_RAW_PER_FLOW + 4096 {
            return None;
        }
        let z = match &mut self.z {
            Some(z) => z,
            None => self.z.insert(zstd::bulk::Decompressor::new().ok()?),
        };
        self.raw.clear();
        self.raw.reserve(raw_len);
        let got = z.decompress_to_buffer(block.body, &mut self.raw).ok()?;
        if got != raw_len {
            return None;
        }
        decode_columns(&self.raw, n, block.min_last_ms, out)
    }
}

fn decode_columns(raw: &[u8], n: usize, min_last: u64, out: &mut Vec<Flow>) -> Option<()> {
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
    out.clear();
    out.resize(n, Flow::default());
    for f in out.iter_mut() {
        let i = usize::from(c.u8()?);
        if i >= n_exp {
            return None;
        }
        let (a, s) = *exporters.get(i)?;
        f.exporter = a;
        f.source_id = s;
    }
    let flags = c.take(n)?;
    for f in out.iter_mut() {
        f.last_ms = min_last.checked_add(c.var()?)?;
    }
    for f in out.iter_mut() {
        f.first_ms = f.last_ms.wrapping_sub(unzigzag(c.var()?) as u64);
    }
    for (f, fl) in out.iter_mut().zip(flags) {
        f.src_addr = c.addr(fl & 1 != 0)?;
    }
    for (f, fl) in out.iter_mut().zip(flags) {
        f.dst_addr = c.addr(fl & 2 != 0)?;
    }
    for f in out.iter_mut() {
        f.src_port = c.u16()?;
    }
    for f in out.iter_mut() {
        f.dst_port = c.u16()?;
    }
    for f in out.iter_mut() {
        f.protocol = c.u8()?;
    }
    for f in out.iter_mut() {
        f.tcp_flags = c.u8()?;
    }
    for f in out.iter_mut() {
        f.tos = c.u8()?;
    }
    for f in out.iter_mut() {
        f.src_mask = c.u8()?;
    }
    for f in out.iter_mut() {
        f.dst_mask = c.u8()?;
    }
    for (f, fl) in out.iter_mut().zip(flags) {
        let d = c.u8()?;
        f.direction = (fl & 1 << 6 != 0).then_some(d);
    }
    for f in out.iter_mut() {
        f.bytes = c.var()?;
    }
    for f in out.iter_mut() {
        f.packets = c.var()?;
    }
    for f in out.iter_mut() {
        f.out_bytes = c.var()?;
    }
    for f in out.iter_mut() {
        f.out_packets = c.var()?;
    }
    for f in out.iter_mut() {
        f.input_if = u32::try_from(c.var()?).ok()?;
    }
    for f in out.iter_mut() {
        f.output_if = u32::try_from(c.var()?).ok()?;
    }
    for f in out.iter_mut() {
        f.src_as = u32::try_from(c.var()?).ok()?;
    }
    for f in out.iter_mut() {
        f.dst_as = u32::try_from(c.var()?).ok()?;
    }
    for (f, fl) in out.iter_mut().zip(flags) {
        f.next_hop = if fl & 1 << 2 != 0 {
            Some(c.addr(fl & 1 << 3 != 0)?)
        } else {
            None
        };
    }
    for (f, fl) in out.iter_mut().zip(flags) {
        f.bgp_next_hop = if fl & 1 << 4 != 0 {
            Some(c.addr(fl & 1 << 5 != 0)?)
        } else {
            None
        };
    }
    for f in out.iter_mut() {
        f.template_id = c.u16()?;
    }
    for f in out.iter_mut() {
        f.sampling_interval = u32::try_from(c.var()?).ok()?;
    }
    (c.pos == raw.len()).then_some(())
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
            last_ms: 1_709_294_400_000 + u64::from(i) * 3,
            next_hop: (i % 4 == 0).then(|| IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))),
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
        assert!(enc.encode(&flows, 3, &mut out));
        let h = BlockHeader::parse(&out).unwrap();
        assert_eq!(h.count, 1000);
        assert_eq!(h.min_last_ms, flows[0].last_ms);
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
    }

    #[test]
    fn corrupt_blocks_are_rejected_not_panics() {
        let flows: Vec<Flow> = (0..50).map(flow).collect();
        let mut enc = Encoder::default();
        let mut out = Vec::new();
        enc.encode(&flows, 1, &mut out);
        let mut dec = Decoder::default();
        let mut back = Vec::new();
        for cut in 0..out.len() {
            if let Some(h) = BlockHeader::parse(&out[..cut]) {
                assert!(dec.decode(&h, &mut back).is_none());
            }
        }
        for i in (0..out.len()).step_by(7) {
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
