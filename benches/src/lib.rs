//! Inputs for Flower's benchmarks: a deterministic synthetic NetFlow v9
//! export stream. (The committed captures are read with `testkit`.)
//!
//! The stream builder ([`synthetic_stream`]) is the reference for anything
//! that has to produce realistic v9 traffic (`flowerd generate` reuses the
//! idea): full-size packets of one typical Cisco template, the template
//! re-sent periodically as real exporters do, consistent header clocks and
//! sequence numbers, and pseudo-random but reproducible field values.
//!
//! ```
//! use flower_benches::{synthetic_stream, StreamSpec};
//! let stream = synthetic_stream(&StreamSpec { packets: 40, ..StreamSpec::default() });
//! assert_eq!(stream.packets.len(), 40);
//! assert!(stream.packets.iter().all(|p| p.len() <= 1400));
//! assert!(stream.records > 40 * 25);
//! ```

use netflow9::{ErrorKind, FieldSpecifier, FieldType, HeaderRepr, PacketBuilder, Template};

/// Address family of the synthetic stream's template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Family {
    /// `IPV4_SRC_ADDR`, `IPV4_DST_ADDR`, `IPV4_NEXT_HOP`, `SRC_MASK`,
    /// `DST_MASK`: 45-byte records.
    #[default]
    V4,
    /// `IPV6_SRC_ADDR`, `IPV6_DST_ADDR`, `IPV6_NEXT_HOP`, `IPV6_SRC_MASK`,
    /// `IPV6_DST_MASK`: 81-byte records.
    V6,
}

/// The 18-field template of a typical Cisco IOS NetFlow v9 export (the
/// layout of `ip flow-export version 9` with the default record), in wire
/// order.
#[must_use]
pub fn template_fields(family: Family) -> [FieldSpecifier; 18] {
    let f = FieldSpecifier::new;
    let (src, dst, hop, addr_len, src_mask, dst_mask) = match family {
        Family::V4 => (
            FieldType::IPV4_SRC_ADDR,
            FieldType::IPV4_DST_ADDR,
            FieldType::IPV4_NEXT_HOP,
            4,
            FieldType::SRC_MASK,
            FieldType::DST_MASK,
        ),
        Family::V6 => (
            FieldType::IPV6_SRC_ADDR,
            FieldType::IPV6_DST_ADDR,
            FieldType::IPV6_NEXT_HOP,
            16,
            FieldType::IPV6_SRC_MASK,
            FieldType::IPV6_DST_MASK,
        ),
    };
    [
        f(src, addr_len),
        f(dst, addr_len),
        f(hop, addr_len),
        f(FieldType::INPUT_SNMP, 2),
        f(FieldType::OUTPUT_SNMP, 2),
        f(FieldType::IN_PKTS, 4),
        f(FieldType::IN_BYTES, 4),
        f(FieldType::FIRST_SWITCHED, 4),
        f(FieldType::LAST_SWITCHED, 4),
        f(FieldType::L4_SRC_PORT, 2),
        f(FieldType::L4_DST_PORT, 2),
        f(FieldType::TCP_FLAGS, 1),
        f(FieldType::PROTOCOL, 1),
        f(FieldType::SRC_TOS, 1),
        f(FieldType::SRC_AS, 2),
        f(FieldType::DST_AS, 2),
        f(src_mask, 1),
        f(dst_mask, 1),
    ]
}

/// What [`synthetic_stream`] builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamSpec {
    /// Template family.
    pub family: Family,
    /// Export packets to build.
    pub packets: usize,
    /// Largest packet (UDP payload) in bytes; records are added while they fit.
    pub max_packet_len: usize,
    /// The template is sent in the first packet and every this many packets
    /// after it (0: only in the first).
    pub template_every: usize,
    /// Template ID (≥ 256).
    pub template_id: u16,
    /// Source ID of every packet.
    pub source_id: u32,
    /// Header `unix_secs` of the first packet.
    pub unix_secs: u32,
    /// Header `sys_uptime` of the first packet, in milliseconds.
    pub sys_uptime: u32,
    /// Milliseconds between packets (header clocks advance together, so the
    /// exporter's boot time stays constant).
    pub interval_ms: u32,
    /// Seed of the field values; the same spec always builds the same bytes.
    pub seed: u64,
}

impl Default for StreamSpec {
    /// 200 IPv4 packets of at most 1400 bytes (about 30 records each),
    /// template every 20 packets.
    fn default() -> Self {
        StreamSpec {
            family: Family::V4,
            packets: 200,
            max_packet_len: 1400,
            template_every: 20,
            template_id: 256,
            source_id: 0,
            unix_secs: 1_709_294_400,
            sys_uptime: 86_400_000,
            interval_ms: 10,
            seed: 0x0f10_3e12,
        }
    }
}

/// A built stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stream {
    /// The export packets (UDP payloads), in order.
    pub packets: Vec<Vec<u8>>,
    /// Data records in all packets.
    pub records: u64,
    /// The template they use.
    pub template: Template,
}

impl Stream {
    /// Bytes of all packets.
    #[must_use]
    pub fn bytes(&self) -> u64 {
        self.packets.iter().map(|p| p.len() as u64).sum()
    }
}

/// splitmix64: tiny, fast, and good enough for field values.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi` (modulo bias is irrelevant here).
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

/// Builds a deterministic NetFlow v9 export stream of one exporter.
///
/// Every packet is filled with data records up to `max_packet_len`; the
/// template goes first in the packets that carry it. Sequence numbers count
/// packets from 0 (RFC 3954 §5.1), `sys_uptime` and `unix_secs` advance by
/// `interval_ms` per packet. Values look like edge traffic: TCP (80%), UDP
/// (15%) and ICMP (5%) flows from a /8 of clients to a /16 of servers, on
/// well-known or ephemeral ports, with packet and byte counts that agree, and
/// switched times within the last minute and a half of the packet's uptime.
///
/// Replaying the stream into the same decoder is safe: the boot time the
/// headers imply does not change, so a collector sees late packets, not an
/// exporter restart.
///
/// # Panics
/// If `template_id` is below 256, or `max_packet_len` cannot hold the header,
/// the template and one record.
#[must_use]
pub fn synthetic_stream(spec: &StreamSpec) -> Stream {
    let fields = template_fields(spec.family);
    let template = Template::new(spec.template_id, &fields).expect("template ID ≥ 256");
    let slots: Vec<(FieldType, std::ops::Range<usize>)> = fields
        .iter()
        .map(|f| {
            let r = template
                .offset_of(f.field_type)
                .expect("fixed-length template");
            (f.field_type, r)
        })
        .collect();
    let mut rng = Rng(spec.seed);
    let mut buf = vec![0u8; spec.max_packet_len];
    let mut packets = Vec::with_capacity(spec.packets);
    let mut records = 0u64;
    for i in 0..spec.packets {
        let elapsed = (i as u32).wrapping_mul(spec.interval_ms);
        let sys_uptime = spec.sys_uptime.wrapping_add(elapsed);
        let header = HeaderRepr {
            count: 0,
            sys_uptime,
            unix_secs: spec.unix_secs + (spec.sys_uptime % 1000 + elapsed) / 1000,
            sequence_number: i as u32,
            source_id: spec.source_id,
        };
        let mut b = PacketBuilder::new(&mut buf, header).expect("room for the header");
        let with_template = i == 0 || (spec.template_every > 0 && i % spec.template_every == 0);
        if with_template {
            b.template(spec.template_id, &fields)
                .expect("room for the template");
        }
        loop {
            let r = b.record_with(&template, |rec| {
                write_record(rec, &slots, sys_uptime, &mut rng);
            });
            match r {
                Ok(()) => records += 1,
                Err(e) if e.kind == ErrorKind::BufferTooSmall => break,
                Err(e) => panic!("record: {e}"),
            }
        }
        assert!(b.records() > u16::from(with_template), "room for a record");
        let len = b.finish().expect("finish");
        packets.push(buf[..len].to_vec());
    }
    Stream {
        packets,
        records,
        template,
    }
}

/// Fills one record of [`template_fields`].
fn write_record(
    rec: &mut [u8],
    slots: &[(FieldType, std::ops::Range<usize>)],
    sys_uptime: u32,
    rng: &mut Rng,
) {
    let protocol: u8 = match rng.range(0, 99) {
        0..=79 => 6,
        80..=94 => 17,
        _ => 1,
    };
    let outbound = rng.next() & 1 == 0;
    let server_port = [443u16, 80, 53, 22, 25, 123, 8080, 993][rng.range(0, 7) as usize];
    let client_port = rng.range(32_768, 60_999) as u16;
    let (src_port, dst_port) = match (protocol, outbound) {
        (1, _) => (
            0,
            [0x0800u16, 0x0000, 0x0303, 0x0b00][rng.range(0, 3) as usize],
        ),
        (_, true) => (client_port, server_port),
        (_, false) => (server_port, client_port),
    };
    let client = 0x0a00_0000 | (rng.next() as u32 & 0x00ff_ffff);
    let server = 0xc633_0000 | (rng.next() as u32 & 0x0000_ffff);
    let (src, dst) = if outbound {
        (client, server)
    } else {
        (server, client)
    };
    let packets = rng.range(1, 2000);
    let bytes = packets * rng.range(40, 1500);
    let last = sys_uptime.wrapping_sub(rng.range(0, 30_000) as u32);
    let first = last.wrapping_sub(rng.range(0, 60_000) as u32);
    let tcp_flags = if protocol == 6 {
        [0x1bu8, 0x1a, 0x02, 0x12, 0x19][rng.range(0, 4) as usize]
    } else {
        0
    };
    for (ty, range) in slots {
        let Some(out) = rec.get_mut(range.clone()) else {
            continue;
        };
        let v: u64 = match *ty {
            FieldType::IPV4_SRC_ADDR => u64::from(src),
            FieldType::IPV4_DST_ADDR => u64::from(dst),
            FieldType::IPV4_NEXT_HOP => 0xc000_0201 + rng.range(0, 3),
            FieldType::IPV6_SRC_ADDR | FieldType::IPV6_DST_ADDR | FieldType::IPV6_NEXT_HOP => {
                // 2001:db8::/32 with the IPv4-like host part in the low bits.
                let host = match *ty {
                    FieldType::IPV6_SRC_ADDR => src,
                    FieldType::IPV6_DST_ADDR => dst,
                    _ => 1 + rng.range(0, 3) as u32,
                };
                let mut a = [0u8; 16];
                a[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
                a[8..12].copy_from_slice(&(rng.next() as u32).to_be_bytes());
                a[12..].copy_from_slice(&host.to_be_bytes());
                if out.len() == a.len() {
                    out.copy_from_slice(&a);
                }
                continue;
            }
            FieldType::INPUT_SNMP => rng.range(1, 48),
            FieldType::OUTPUT_SNMP => rng.range(1, 48),
            FieldType::IN_PKTS => packets,
            FieldType::IN_BYTES => bytes,
            FieldType::FIRST_SWITCHED => u64::from(first),
            FieldType::LAST_SWITCHED => u64::from(last),
            FieldType::L4_SRC_PORT => u64::from(src_port),
            FieldType::L4_DST_PORT => u64::from(dst_port),
            FieldType::TCP_FLAGS => u64::from(tcp_flags),
            FieldType::PROTOCOL => u64::from(protocol),
            FieldType::SRC_TOS => [0u64, 0, 0, 0x28, 0xb8][rng.range(0, 4) as usize],
            FieldType::SRC_AS | FieldType::DST_AS => rng.range(0, 65_535),
            FieldType::SRC_MASK | FieldType::DST_MASK => rng.range(8, 32),
            FieldType::IPV6_SRC_MASK | FieldType::IPV6_DST_MASK => rng.range(32, 128),
            _ => 0,
        };
        let be = v.to_be_bytes();
        if let Some(tail) = be.get(be.len().saturating_sub(out.len())..) {
            out.copy_from_slice(tail);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netflow9::{Config, Decoder};
    use std::net::{IpAddr, Ipv4Addr};

    #[test]
    fn stream_decodes_to_its_records_and_replays_cleanly() {
        for family in [Family::V4, Family::V6] {
            let spec = StreamSpec {
                family,
                packets: 45,
                ..StreamSpec::default()
            };
            let stream = synthetic_stream(&spec);
            assert_eq!(stream, synthetic_stream(&spec), "deterministic");
            let mut d = Decoder::new(Config::default());
            let exporter = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
            for pass in 0..2 {
                let mut n = 0u64;
                for p in &stream.packets {
                    assert!(p.len() <= spec.max_packet_len);
                    let s = d
                        .decode(exporter, p, |r| {
                            let f = r.flow();
                            assert!(f.packets >= 1 && f.bytes >= 40 * f.packets);
                            assert_eq!(f.ip_version(), if family == Family::V4 { 4 } else { 6 });
                            n += 1;
                        })
                        .unwrap();
                    assert_eq!(s.errors, 0);
                }
                assert_eq!(n, stream.records, "pass {pass}");
            }
            assert_eq!(d.counters().exporter_restarts, 0);
            assert_eq!(d.counters().templates, 3 * 2);
        }
    }

    #[test]
    fn ipv4_layout_is_45_bytes_and_30_records_per_packet() {
        let s = synthetic_stream(&StreamSpec {
            packets: 2,
            ..StreamSpec::default()
        });
        assert_eq!(s.template.record_len(), 45);
        // 20 header + 4 set header + 30 × 45 + 2 padding
        assert_eq!(s.packets[1].len(), 1376);
        assert_eq!(s.records, 28 + 30);
    }
}
