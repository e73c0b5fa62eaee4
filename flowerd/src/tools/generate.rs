//! `flowerd generate`: a synthetic NetFlow v9 exporter, for load tests and
//! demos.
//!
//! The traffic is [`flowstore::synth`]'s realistic mix, encoded with
//! `netflow9`'s [`PacketBuilder`] into one IPv4 and one IPv6 template (20
//! fields each: addresses, ports, protocol, TCP flags, ToS, interfaces, ASes,
//! masks, next hop, BGP next hop, direction, bytes, packets,
//! FIRST/LAST_SWITCHED), so a collector decodes exactly the flows the
//! generator drew, with fresh timestamps.
//!
//! Sending must keep up with more than a million flows a second on a small
//! machine, next to the collector it measures, so the packets are built
//! before the clock starts: a [`Ring`] of up to [`RING_MAX_FLOWS`] flows in
//! full data packets (at most [`MAX_PACKET`] bytes, one FlowSet each, in the
//! order the exporters fill them). Sending one then only stamps its header
//! (sequence number, `sys_uptime`, `unix_secs`) and shifts its records'
//! FIRST/LAST_SWITCHED by the uptime that passed since it was last sent;
//! nothing is allocated. When the ring runs out it starts over: the flows
//! repeat, their times do not.
//!
//! Each exporter is its own UDP socket (so its own source port) with its own
//! Source ID (0, 1, …, as `synth` numbers them), uptime and sequence numbers.
//! Its templates go out in a packet of their own before its first data packet
//! and then every [`TEMPLATE_EVERY`] packets, as exporters commonly do.

use std::io::{self, IsTerminal};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::ops::Range;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context};
use flowstore::synth::{Synth, SynthConfig};
use netflow9::wire::{FLOWSET_HEADER_LEN, HEADER_LEN};
use netflow9::{FieldSpecifier, FieldType, Flow, HeaderRepr, PacketBuilder, Template};

use super::send::{connect, resolve, send, stop_flag, Pacer, Progress};
use crate::cli::GenerateArgs;

/// Template ID of IPv4 records (the one `synth` labels its IPv4 flows with).
pub(crate) const TEMPLATE_V4: u16 = 256;
/// Template ID of IPv6 records.
pub(crate) const TEMPLATE_V6: u16 = 257;
/// Largest export packet (UDP payload): with IPv6 and UDP headers it still
/// fits a 1500-byte MTU.
pub(crate) const MAX_PACKET: usize = 1400;
/// Each exporter sends its templates before its first packet and then once
/// every this many packets (the template packets included).
pub(crate) const TEMPLATE_EVERY: u64 = 20;
/// Fewest flows pre-built, whatever the rate.
pub(crate) const RING_MIN_FLOWS: u64 = 1 << 16;
/// Most flows pre-built (about 40 MiB of packets).
pub(crate) const RING_MAX_FLOWS: u64 = 1 << 19;
/// Most exporters (the addresses `synth` gives them: `192.0.2.1` to `.254`).
pub(crate) const MAX_EXPORTERS: u32 = 254;
/// Flows are exported up to this long after their last packet (a typical
/// inactive timeout).
const MAX_EXPORT_DELAY_MS: u64 = 15_000;
/// `sys_uptime` of exporter 0 at start: up for a day. Exporter *k* booted
/// *k* hours earlier.
const UPTIME_AT_START_MS: u32 = 86_400_000;
/// Seed of the traffic: the same flows on every run.
const SEED: u64 = 1;

/// Runs `flowerd generate`.
pub(crate) fn run(args: &GenerateArgs) -> anyhow::Result<ExitCode> {
    let dest = resolve(&args.to)?;
    let duration = args.duration.as_deref().map(parse_duration).transpose()?;
    if !(1..=MAX_EXPORTERS).contains(&args.exporters) {
        bail!(
            "--exporters {}: must be 1..={MAX_EXPORTERS}",
            args.exporters
        );
    }
    let exporters = u8::try_from(args.exporters).unwrap_or(u8::MAX);
    let ring_flows = if args.flows_per_sec == 0 {
        RING_MAX_FLOWS
    } else {
        args.flows_per_sec.clamp(RING_MIN_FLOWS, RING_MAX_FLOWS)
    };
    let mut generator = Generator::new(dest, exporters, ring_flows)?;
    let stop = stop_flag()?;
    let report = generator.run(args.flows_per_sec, duration, &stop)?;
    println!("{}", report.summary_line(dest));
    Ok(ExitCode::SUCCESS)
}

/// Parses `--duration`: a sequence of numbers with units `h`, `m`, `s`,
/// `ms`, largest first (`30s`, `5m`, `1h`, `2h30m`, `1m30s`, `250ms`), or a
/// bare number of seconds.
pub(crate) fn parse_duration(text: &str) -> anyhow::Result<Duration> {
    let bad = || anyhow!("--duration {text:?}: expected e.g. 30s, 5m, 1h or 2h30m");
    let s = text.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        let secs: u64 = s.parse().map_err(|_| bad())?;
        return positive(Duration::from_secs(secs)).ok_or_else(bad);
    }
    const UNITS: [(&str, u64); 4] = [("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)];
    let mut total_ms: u64 = 0;
    let mut rest = s;
    // Index into UNITS of the next unit allowed: units go largest first,
    // each at most once.
    let mut next_unit = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let letters = rest[digits..]
            .bytes()
            .take_while(u8::is_ascii_alphabetic)
            .count();
        if digits == 0 || letters == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        let unit = &rest[digits..digits + letters];
        let i = UNITS
            .iter()
            .position(|(u, _)| *u == unit)
            .filter(|&i| i >= next_unit)
            .ok_or_else(bad)?;
        next_unit = i + 1;
        total_ms = n
            .checked_mul(UNITS[i].1)
            .and_then(|ms| total_ms.checked_add(ms))
            .ok_or_else(bad)?;
        rest = &rest[digits + letters..];
    }
    positive(Duration::from_millis(total_ms)).ok_or_else(bad)
}

fn positive(d: Duration) -> Option<Duration> {
    (!d.is_zero()).then_some(d)
}

// ---------------------------------------------------------------------------
// Record layout

/// Fields per record.
const FIELDS: usize = 20;

/// The fields of the IPv4 (`v6 == false`) or IPv6 template, in wire order.
pub(crate) fn template_fields(v6: bool) -> [FieldSpecifier; FIELDS] {
    let f = FieldSpecifier::new;
    let (addr, [src, dst, hop, bgp, src_mask, dst_mask]) = if v6 {
        (
            16,
            [
                FieldType::IPV6_SRC_ADDR,
                FieldType::IPV6_DST_ADDR,
                FieldType::IPV6_NEXT_HOP,
                FieldType::BGP_IPV6_NEXT_HOP,
                FieldType::IPV6_SRC_MASK,
                FieldType::IPV6_DST_MASK,
            ],
        )
    } else {
        (
            4,
            [
                FieldType::IPV4_SRC_ADDR,
                FieldType::IPV4_DST_ADDR,
                FieldType::IPV4_NEXT_HOP,
                FieldType::BGP_IPV4_NEXT_HOP,
                FieldType::SRC_MASK,
                FieldType::DST_MASK,
            ],
        )
    };
    [
        f(src, addr),
        f(dst, addr),
        f(FieldType::L4_SRC_PORT, 2),
        f(FieldType::L4_DST_PORT, 2),
        f(FieldType::PROTOCOL, 1),
        f(FieldType::TCP_FLAGS, 1),
        f(FieldType::SRC_TOS, 1),
        f(FieldType::DIRECTION, 1),
        f(FieldType::INPUT_SNMP, 4),
        f(FieldType::OUTPUT_SNMP, 4),
        f(FieldType::SRC_AS, 4),
        f(FieldType::DST_AS, 4),
        f(src_mask, 1),
        f(dst_mask, 1),
        f(hop, addr),
        f(bgp, addr),
        f(FieldType::IN_BYTES, 8),
        f(FieldType::IN_PKTS, 4),
        f(FieldType::FIRST_SWITCHED, 4),
        f(FieldType::LAST_SWITCHED, 4),
    ]
}

/// One template and where its fields sit in a record.
#[derive(Debug, Clone)]
struct Layout {
    template: Template,
    fields: [FieldSpecifier; FIELDS],
    /// Byte range of each of `fields` in a record.
    ranges: [Range<usize>; FIELDS],
    first: Range<usize>,
    last: Range<usize>,
    /// Records in a full data packet.
    per_packet: usize,
}

impl Layout {
    fn new(v6: bool) -> Layout {
        let fields = template_fields(v6);
        let id = if v6 { TEMPLATE_V6 } else { TEMPLATE_V4 };
        // The fields above are all fixed-length and few: neither call can fail.
        let template = Template::new(id, &fields).expect("a valid template");
        let at = |t: FieldType| template.offset_of(t).expect("a fixed-length field");
        let ranges = fields.map(|f| at(f.field_type));
        let (first, last) = (at(FieldType::FIRST_SWITCHED), at(FieldType::LAST_SWITCHED));
        // Count what fits, with the encoder's own arithmetic.
        let mut buf = [0u8; MAX_PACKET];
        let mut per_packet = 0;
        if let Ok(mut b) = PacketBuilder::new(&mut buf, HeaderRepr::default()) {
            while b.record_with(&template, |_| {}).is_ok() {
                per_packet += 1;
            }
        }
        Layout {
            template,
            fields,
            ranges,
            first,
            last,
            per_packet,
        }
    }

    fn record_len(&self) -> usize {
        self.template.record_len()
    }
}

/// What goes in one field of a record.
enum FieldValue {
    /// An address (`None`: all zeros).
    Addr(Option<IpAddr>),
    /// An unsigned number, big-endian, in the field's length.
    Uint(u64),
}

/// Writes `flow` as a record of `layout`, with its switched times as given.
fn write_record(rec: &mut [u8], layout: &Layout, flow: &Flow, first: u32, last: u32) {
    for (spec, range) in layout.fields.iter().zip(&layout.ranges) {
        let Some(out) = rec.get_mut(range.clone()) else {
            continue;
        };
        let value = match spec.field_type {
            FieldType::IPV4_SRC_ADDR | FieldType::IPV6_SRC_ADDR => {
                FieldValue::Addr(Some(flow.src_addr))
            }
            FieldType::IPV4_DST_ADDR | FieldType::IPV6_DST_ADDR => {
                FieldValue::Addr(Some(flow.dst_addr))
            }
            FieldType::IPV4_NEXT_HOP | FieldType::IPV6_NEXT_HOP => FieldValue::Addr(flow.next_hop),
            FieldType::BGP_IPV4_NEXT_HOP | FieldType::BGP_IPV6_NEXT_HOP => {
                FieldValue::Addr(flow.bgp_next_hop)
            }
            FieldType::L4_SRC_PORT => FieldValue::Uint(flow.src_port.into()),
            FieldType::L4_DST_PORT => FieldValue::Uint(flow.dst_port.into()),
            FieldType::PROTOCOL => FieldValue::Uint(flow.protocol.into()),
            FieldType::TCP_FLAGS => FieldValue::Uint(flow.tcp_flags.into()),
            FieldType::SRC_TOS => FieldValue::Uint(flow.tos.into()),
            FieldType::DIRECTION => FieldValue::Uint(flow.direction.unwrap_or(0).into()),
            FieldType::INPUT_SNMP => FieldValue::Uint(flow.input_if.into()),
            FieldType::OUTPUT_SNMP => FieldValue::Uint(flow.output_if.into()),
            FieldType::SRC_AS => FieldValue::Uint(flow.src_as.into()),
            FieldType::DST_AS => FieldValue::Uint(flow.dst_as.into()),
            FieldType::SRC_MASK | FieldType::IPV6_SRC_MASK => {
                FieldValue::Uint(flow.src_mask.into())
            }
            FieldType::DST_MASK | FieldType::IPV6_DST_MASK => {
                FieldValue::Uint(flow.dst_mask.into())
            }
            FieldType::IN_BYTES => FieldValue::Uint(flow.bytes),
            FieldType::IN_PKTS => FieldValue::Uint(flow.packets),
            FieldType::FIRST_SWITCHED => FieldValue::Uint(first.into()),
            FieldType::LAST_SWITCHED => FieldValue::Uint(last.into()),
            _ => continue,
        };
        match value {
            // An IPv4 address in an IPv6 field goes IPv4-mapped; an IPv6
            // address does not fit an IPv4 field and leaves it zero.
            FieldValue::Addr(Some(IpAddr::V4(a))) if out.len() == 16 => {
                out.copy_from_slice(&a.to_ipv6_mapped().octets());
            }
            FieldValue::Addr(Some(IpAddr::V4(a))) if out.len() == 4 => {
                out.copy_from_slice(&a.octets());
            }
            FieldValue::Addr(Some(IpAddr::V6(a))) if out.len() == 16 => {
                out.copy_from_slice(&a.octets());
            }
            FieldValue::Addr(_) => {}
            FieldValue::Uint(v) => {
                // Keep the low bytes: every value fits its field.
                let be = v.to_be_bytes();
                if let Some(tail) = be.get(be.len().saturating_sub(out.len())..) {
                    if tail.len() == out.len() {
                        out.copy_from_slice(tail);
                    }
                }
            }
        }
    }
}

/// When a flow is exported, relative to its last packet, and how long it
/// lasted: `(delay, duration)` in milliseconds. The delay is spread over
/// `0..MAX_EXPORT_DELAY_MS` by the flow's own end time; the duration is
/// `synth`'s, bounded so the first packet stays within 2³¹ ms of the export.
fn export_times(flow: &Flow) -> (u32, u32) {
    let delay = flow.last_ms % MAX_EXPORT_DELAY_MS;
    let duration = flow.duration_ms().min(u64::from(i32::MAX as u32) - delay);
    // Both bounded above by i32::MAX.
    (delay as u32, duration as u32)
}

// ---------------------------------------------------------------------------
// The pre-built packets

/// One pre-built data packet of a [`Ring`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RingPacket {
    /// Index of the exporter that sends it (its Source ID).
    pub(crate) exporter: usize,
    /// Where it is in [`Ring::buf`].
    start: usize,
    len: usize,
    /// Data records in it.
    pub(crate) records: u16,
    /// IPv6 template (else IPv4).
    v6: bool,
    /// The `sys_uptime` its records' switched times are relative to now.
    uptime: u32,
}

/// Data packets built in advance, in the order their exporters filled them.
#[derive(Debug)]
pub(crate) struct Ring {
    buf: Vec<u8>,
    packets: Vec<RingPacket>,
    /// IPv4 and IPv6 layouts.
    layouts: [Layout; 2],
    /// A packet holding the two template records (its header is stamped per
    /// exporter before sending).
    templates: Vec<u8>,
    /// Data records in all packets.
    pub(crate) flows: u64,
}

/// A data packet an exporter is filling while the ring is built.
#[derive(Debug, Default)]
struct Open {
    /// Its records, back to back.
    records: Vec<u8>,
    count: usize,
}

impl Ring {
    /// Draws `flows` flows from `synth` for `exporters` exporters and packs
    /// them into data packets. Every packet is full but each exporter's last
    /// IPv4 and last IPv6 one.
    pub(crate) fn build(exporters: u8, flows: u64, seed: u64) -> Ring {
        let layouts = [Layout::new(false), Layout::new(true)];
        let synth = Synth::new(SynthConfig {
            exporters,
            seed,
            ..SynthConfig::small(flows)
        });
        let mut ring = Ring {
            buf: Vec::with_capacity(
                usize::try_from(flows).unwrap_or(0) * (layouts[0].record_len() + 2),
            ),
            packets: Vec::new(),
            templates: Vec::new(),
            layouts,
            flows: 0,
        };
        ring.templates = ring.template_packet();
        let mut open: Vec<Open> = (0..2 * usize::from(exporters))
            .map(|_| Open {
                records: Vec::with_capacity(MAX_PACKET),
                count: 0,
            })
            .collect();
        for flow in synth {
            let exporter = flow.source_id as usize % usize::from(exporters);
            let v6 = flow.src_addr.is_ipv6();
            let layout = &ring.layouts[usize::from(v6)];
            let Some(o) = open.get_mut(2 * exporter + usize::from(v6)) else {
                continue;
            };
            let at = o.records.len();
            o.records.resize(at + layout.record_len(), 0);
            let (delay, duration) = export_times(&flow);
            // Relative to an uptime of 0: stamping adds the real one.
            let last = 0u32.wrapping_sub(delay);
            let first = last.wrapping_sub(duration);
            write_record(&mut o.records[at..], layout, &flow, first, last);
            o.count += 1;
            if o.count == layout.per_packet {
                ring.push(exporter, v6, o);
            }
        }
        for (i, o) in open.iter_mut().enumerate() {
            if o.count > 0 {
                ring.push(i / 2, i % 2 == 1, o);
            }
        }
        ring
    }

    /// Frames `o`'s records as a data packet at the end of the ring, and
    /// empties `o`.
    fn push(&mut self, exporter: usize, v6: bool, o: &mut Open) {
        let layout = &self.layouts[usize::from(v6)];
        let start = self.buf.len();
        self.buf.resize(start + MAX_PACKET, 0);
        let header = HeaderRepr {
            source_id: exporter as u32,
            ..HeaderRepr::default()
        };
        let len = PacketBuilder::new(&mut self.buf[start..], header)
            .and_then(|mut b| {
                for rec in o.records.chunks_exact(layout.record_len()) {
                    b.record(layout.template.template_id(), rec)?;
                }
                b.finish()
            })
            // `per_packet` records fit by construction.
            .expect("a full data packet fits MAX_PACKET");
        self.buf.truncate(start + len);
        self.packets.push(RingPacket {
            exporter,
            start,
            len,
            records: o.count as u16,
            v6,
            uptime: 0,
        });
        self.flows += o.count as u64;
        o.records.clear();
        o.count = 0;
    }

    /// A packet with the IPv4 and the IPv6 template records.
    fn template_packet(&self) -> Vec<u8> {
        let mut buf = vec![0u8; MAX_PACKET];
        let len = PacketBuilder::new(&mut buf, HeaderRepr::default())
            .and_then(|mut b| {
                for l in &self.layouts {
                    b.template(l.template.template_id(), &l.fields)?;
                }
                b.finish()
            })
            .expect("two templates fit MAX_PACKET");
        buf.truncate(len);
        buf
    }

    /// Number of data packets.
    pub(crate) fn len(&self) -> usize {
        self.packets.len()
    }

    /// Packet `i`'s description.
    pub(crate) fn packet(&self, i: usize) -> Option<RingPacket> {
        self.packets.get(i).copied()
    }

    /// Makes data packet `i` ready to send with `header` (whose `count` is
    /// replaced by the packet's): writes the header and moves the records'
    /// switched times to the header's uptime. Returns the packet's bytes.
    pub(crate) fn stamp(&mut self, i: usize, header: HeaderRepr) -> &[u8] {
        let Some(p) = self.packets.get_mut(i) else {
            return &[];
        };
        let layout = &self.layouts[usize::from(p.v6)];
        let Some(bytes) = self.buf.get_mut(p.start..p.start + p.len) else {
            return &[];
        };
        let _ = HeaderRepr {
            count: p.records,
            ..header
        }
        .emit(bytes);
        let delta = header.sys_uptime.wrapping_sub(p.uptime);
        p.uptime = header.sys_uptime;
        let records = HEADER_LEN + FLOWSET_HEADER_LEN;
        let n = usize::from(p.records) * layout.record_len();
        if let Some(data) = bytes.get_mut(records..records + n) {
            for rec in data.chunks_exact_mut(layout.record_len()) {
                add_be32(rec, &layout.first, delta);
                add_be32(rec, &layout.last, delta);
            }
        }
        bytes
    }

    /// The template packet with `header` (whose `count` becomes 2).
    pub(crate) fn stamp_templates(&mut self, header: HeaderRepr) -> &[u8] {
        let _ = HeaderRepr { count: 2, ..header }.emit(&mut self.templates);
        &self.templates
    }
}

/// Adds `delta` to the big-endian `u32` at `range` of `rec`, wrapping.
fn add_be32(rec: &mut [u8], range: &Range<usize>, delta: u32) {
    if let Some(field) = rec.get_mut(range.clone()) {
        if let Ok(v) = <[u8; 4]>::try_from(&*field) {
            field.copy_from_slice(&u32::from_be_bytes(v).wrapping_add(delta).to_be_bytes());
        }
    }
}

// ---------------------------------------------------------------------------
// Sending

/// One simulated exporter.
#[derive(Debug)]
struct Exporter {
    socket: UdpSocket,
    source_id: u32,
    /// `sys_uptime` when sending starts.
    uptime_at_start: u32,
    /// Export packets sent, all kinds (the next sequence number, modulo 2³²).
    packets: u64,
}

/// What a run sent.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub(crate) struct GenerateReport {
    /// Data records sent.
    pub(crate) flows: u64,
    /// Export packets sent, template packets included.
    pub(crate) packets: u64,
    /// Their bytes (UDP payloads).
    pub(crate) bytes: u64,
    /// Packets refused (ICMP port unreachable: nothing listening).
    pub(crate) refused: u64,
    /// Exporters.
    pub(crate) exporters: u32,
    /// Wall time.
    pub(crate) elapsed: Duration,
}

impl GenerateReport {
    /// The one summary line `generate` prints; scripts parse its
    /// `key=value` pairs.
    pub(crate) fn summary_line(&self, dest: SocketAddr) -> String {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        let mut s = format!(
            "flowerd generate: to={dest} exporters={} flows={} packets={} bytes={} \
             elapsed={:.3}s flows_per_sec={:.0} packets_per_sec={:.0}",
            self.exporters,
            self.flows,
            self.packets,
            self.bytes,
            self.elapsed.as_secs_f64(),
            self.flows as f64 / secs,
            self.packets as f64 / secs,
        );
        if self.refused > 0 {
            s.push_str(&format!(
                " refused={} (is a collector listening?)",
                self.refused
            ));
        }
        s
    }
}

/// The ring and the exporters' sockets.
#[derive(Debug)]
pub(crate) struct Generator {
    ring: Ring,
    exporters: Vec<Exporter>,
}

impl Generator {
    /// Builds the packets (about `ring_flows` flows) and one socket per
    /// exporter, connected to `dest`.
    pub(crate) fn new(dest: SocketAddr, exporters: u8, ring_flows: u64) -> anyhow::Result<Self> {
        let ring = Ring::build(exporters, ring_flows, SEED);
        let exporters = (0..u32::from(exporters))
            .map(|k| {
                Ok(Exporter {
                    socket: connect(dest).with_context(|| format!("exporter {k}"))?,
                    source_id: k,
                    uptime_at_start: UPTIME_AT_START_MS.wrapping_add(k.wrapping_mul(3_600_000)),
                    packets: 0,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Generator { ring, exporters })
    }

    /// Sends at `rate` flows per second (0: as fast as possible) until
    /// `duration` has passed or `stop` is set.
    pub(crate) fn run(
        &mut self,
        rate: u64,
        duration: Option<Duration>,
        stop: &AtomicBool,
    ) -> anyhow::Result<GenerateReport> {
        let mut report = GenerateReport {
            exporters: self.exporters.len() as u32,
            ..GenerateReport::default()
        };
        if self.ring.len() == 0 {
            return Ok(report);
        }
        let mut progress = Progress::new(io::stderr().is_terminal());
        let unix_ms_at_start = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let mut pacer = Pacer::new(rate);
        let mut i = 0;
        while let Some(p) = self.ring.packet(i) {
            if !pacer.wait(u64::from(p.records), duration, stop) {
                break;
            }
            let elapsed_ms = pacer.elapsed().as_millis() as u64;
            let Some(ex) = self.exporters.get_mut(p.exporter) else {
                break;
            };
            let mut header = HeaderRepr {
                count: 0,
                sys_uptime: ex.uptime_at_start.wrapping_add(elapsed_ms as u32),
                unix_secs: ((unix_ms_at_start + elapsed_ms) / 1000) as u32,
                sequence_number: ex.packets as u32,
                source_id: ex.source_id,
            };
            if ex.packets % TEMPLATE_EVERY == 0 {
                let bytes = self.ring.stamp_templates(header);
                count(&mut report, send(&ex.socket, bytes)?, bytes.len(), 0);
                ex.packets += 1;
                header.sequence_number = ex.packets as u32;
            }
            let bytes = self.ring.stamp(i, header);
            count(
                &mut report,
                send(&ex.socket, bytes)?,
                bytes.len(),
                p.records,
            );
            ex.packets += 1;
            i = if i + 1 == self.ring.len() { 0 } else { i + 1 };
            progress.tick(|elapsed| {
                format!(
                    "{} flows  {} packets  {:.0} flows/s  {:.1} s",
                    report.flows,
                    report.packets,
                    report.flows as f64 / elapsed.as_secs_f64().max(1e-9),
                    elapsed.as_secs_f64()
                )
            });
        }
        progress.clear();
        report.elapsed = pacer.elapsed();
        Ok(report)
    }
}

/// Adds a packet to the report: sent, or refused.
fn count(report: &mut GenerateReport, sent: bool, len: usize, records: u16) {
    if sent {
        report.packets += 1;
        report.bytes += len as u64;
        report.flows += u64::from(records);
    } else {
        report.refused += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netflow9::wire::{FlowSetIter, FlowSetKind, PacketHeader};
    use netflow9::{Config, Decoder};
    use std::collections::HashMap;
    use std::net::Ipv4Addr;

    #[test]
    fn durations() {
        let ok = |s: &str| parse_duration(s).unwrap();
        assert_eq!(ok("30s"), Duration::from_secs(30));
        assert_eq!(ok("5m"), Duration::from_secs(300));
        assert_eq!(ok("1h"), Duration::from_secs(3600));
        assert_eq!(ok("2h30m"), Duration::from_secs(9000));
        assert_eq!(ok("1h2m3s"), Duration::from_secs(3723));
        assert_eq!(ok("1m30s"), Duration::from_secs(90));
        assert_eq!(ok("250ms"), Duration::from_millis(250));
        assert_eq!(ok("2s500ms"), Duration::from_millis(2500));
        assert_eq!(ok("90"), Duration::from_secs(90));
        assert_eq!(ok(" 10s "), Duration::from_secs(10));
        assert_eq!(ok("0h5s"), Duration::from_secs(5));
        for bad in [
            "",
            "s",
            "0",
            "0s",
            "5x",
            "5m5",
            "m5",
            "30m2h",
            "5s5s",
            "1.5s",
            "-5s",
            "5 s",
            "99999999999999999999h",
            "6000000000000h",
        ] {
            let e = parse_duration(bad).unwrap_err().to_string();
            assert!(e.contains("expected e.g. 30s"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn layouts() {
        let v4 = Layout::new(false);
        let v6 = Layout::new(true);
        assert_eq!(v4.record_len(), 62);
        assert_eq!(v6.record_len(), 62 + 4 * 12);
        // 20 header + 4 set header + n records + padding ≤ 1400.
        assert_eq!((v4.per_packet, v6.per_packet), (22, 12));
        assert_eq!(v4.last, 58..62);
    }

    #[test]
    fn export_times_are_bounded() {
        let f = Flow {
            first_ms: 1_000,
            last_ms: 31_500,
            ..Flow::default()
        };
        assert_eq!(export_times(&f), (1_500, 30_500));
        let long = Flow {
            last_ms: u64::MAX,
            ..Flow::default()
        };
        let (d, dur) = export_times(&long);
        assert!(u64::from(d) + u64::from(dur) <= i32::MAX as u64);
    }

    /// Decodes `bytes`, from `exporter`, into `flows`.
    fn decode(d: &mut Decoder<'_>, exporter: IpAddr, bytes: &[u8], flows: &mut Vec<Flow>) {
        let s = d
            .decode(exporter, bytes, |r| {
                assert!(!r.is_options());
                flows.push(r.flow());
            })
            .unwrap();
        assert_eq!(s.errors, 0);
    }

    #[test]
    fn packets_decode_back_to_the_synth_flows() {
        let (exporters, n) = (3u8, 5_000u64);
        let mut ring = Ring::build(exporters, n, 7);
        assert_eq!(ring.flows, n);
        let exporter = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 9));
        let mut d = Decoder::new(Config::default());
        let mut got: HashMap<(u32, u16), Vec<Flow>> = HashMap::new();
        let (unix_secs, base_uptime) = (1_709_294_400u32, 5_000_000u32);
        for k in 0..u32::from(exporters) {
            let h = HeaderRepr {
                source_id: k,
                sys_uptime: base_uptime,
                unix_secs,
                ..HeaderRepr::default()
            };
            let t = ring.stamp_templates(h).to_vec();
            assert!(t.len() < 200);
            decode(&mut d, exporter, &t, &mut Vec::new());
        }
        assert_eq!(d.counters().templates, 2 * u64::from(exporters));
        for i in 0..ring.len() {
            let p = ring.packet(i).unwrap();
            // Stamp twice: times must follow the latest uptime only.
            for uptime in [base_uptime - 77_777, base_uptime] {
                ring.stamp(
                    i,
                    HeaderRepr {
                        count: 0,
                        sys_uptime: uptime,
                        unix_secs,
                        sequence_number: 1 + i as u32,
                        source_id: p.exporter as u32,
                    },
                );
            }
            let bytes = &ring.buf[p.start..p.start + p.len];
            assert!(bytes.len() <= MAX_PACKET);
            let h = PacketHeader::new_checked(bytes).unwrap();
            assert_eq!(h.count(), p.records);
            let mut sets = FlowSetIter::new(h.payload());
            let set = sets.next().unwrap().unwrap();
            assert!(matches!(set.kind(), FlowSetKind::Data(256 | 257)));
            assert!(sets.next().is_none(), "one FlowSet per packet");
            let mut flows = Vec::new();
            decode(&mut d, exporter, bytes, &mut flows);
            assert_eq!(flows.len(), usize::from(p.records));
            for f in flows {
                got.entry((f.source_id, f.template_id)).or_default().push(f);
            }
        }
        // Each exporter's IPv4 and IPv6 flows keep synth's order.
        let mut want: HashMap<(u32, u16), Vec<Flow>> = HashMap::new();
        let cfg = SynthConfig {
            exporters,
            seed: 7,
            ..SynthConfig::small(n)
        };
        for f in Synth::new(cfg) {
            let (delay, duration) = export_times(&f);
            let last_ms = u64::from(unix_secs) * 1000 - u64::from(delay);
            let expect = Flow {
                exporter,
                last_ms,
                first_ms: last_ms - u64::from(duration),
                ..f
            };
            want.entry((f.source_id, f.template_id))
                .or_default()
                .push(expect);
        }
        assert_eq!(got.len(), 2 * usize::from(exporters), "v4 and v6 each");
        assert_eq!(got, want);
        assert_eq!(d.counters().unknown_template_flowsets, 0);
    }

    #[test]
    fn packets_are_full_but_the_last_ones() {
        let ring = Ring::build(2, 10_000, 1);
        let v4 = Layout::new(false).per_packet as u16;
        let v6 = Layout::new(true).per_packet as u16;
        let partial = ring
            .packets
            .iter()
            .filter(|p| p.records != if p.v6 { v6 } else { v4 })
            .count();
        assert!(partial <= 4, "{partial}");
        let sizes: Vec<usize> = ring.packets.iter().map(|p| p.len).collect();
        assert!(sizes.iter().all(|&s| s <= MAX_PACKET));
        assert!(sizes.iter().filter(|&&s| s >= 1300).count() > ring.len() * 9 / 10);
    }

    /// What a local collector received.
    #[derive(Debug, Default)]
    struct Received {
        packets: u64,
        flows: u64,
        /// Per Source ID: sequence numbers, in arrival order, and those of
        /// template packets.
        sequences: HashMap<u32, Vec<u32>>,
        template_packets: HashMap<u32, Vec<u32>>,
        errors: u64,
    }

    fn collect(rx: UdpSocket) -> Received {
        rx.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut d = Decoder::new(Config::default());
        let mut r = Received::default();
        let mut buf = [0u8; 65_536];
        while let Ok((n, from)) = rx.recv_from(&mut buf) {
            let bytes = &buf[..n];
            let h = HeaderRepr::parse(bytes).unwrap();
            r.packets += 1;
            r.sequences
                .entry(h.source_id)
                .or_default()
                .push(h.sequence_number);
            let mut flows = 0;
            let s = d.decode(from.ip(), bytes, |_| flows += 1).unwrap();
            r.errors += u64::from(s.errors);
            if flows == 0 {
                r.template_packets
                    .entry(h.source_id)
                    .or_default()
                    .push(h.sequence_number);
            }
            r.flows += flows;
        }
        assert_eq!(d.counters().unknown_template_flowsets, 0);
        assert_eq!(d.counters().exporter_restarts, 0);
        assert_eq!(d.counters().sequence_lost, 0);
        r
    }

    #[test]
    fn sends_paced_sequenced_packets_with_templates() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let _ = socket2::SockRef::from(&rx).set_recv_buffer_size(4 << 20);
        let dest = rx.local_addr().unwrap();
        let receiver = std::thread::spawn(move || collect(rx));
        let mut g = Generator::new(dest, 3, 4_000).unwrap();
        let stop = AtomicBool::new(false);
        // 100 000 flows/s for 300 ms: 30 000 flows, the ring (4 000 flows)
        // going round several times.
        let r = g
            .run(100_000, Some(Duration::from_millis(300)), &stop)
            .unwrap();
        let got = receiver.join().unwrap();
        assert_eq!(r.refused, 0);
        assert!(
            (29_000..=31_000).contains(&r.flows),
            "{} flows in {:?}",
            r.flows,
            r.elapsed
        );
        assert!(r.elapsed >= Duration::from_millis(290), "{:?}", r.elapsed);
        assert_eq!(
            (got.packets, got.flows, got.errors),
            (r.packets, r.flows, 0)
        );
        assert_eq!(got.sequences.len(), 3);
        for (id, seqs) in &got.sequences {
            let n = seqs.len() as u32;
            assert!(seqs.iter().copied().eq(0..n), "exporter {id}: in order");
            let tpl = &got.template_packets[id];
            assert!(
                tpl.iter()
                    .copied()
                    .eq((0..n).step_by(TEMPLATE_EVERY as usize)),
                "exporter {id}: templates every {TEMPLATE_EVERY} packets: {tpl:?}"
            );
        }
        let line = r.summary_line(dest);
        assert!(line.contains(&format!(" flows={} ", r.flows)), "{line}");
        assert!(line.contains(" exporters=3 "), "{line}");
    }

    #[test]
    fn stops_when_asked() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut g = Generator::new(rx.local_addr().unwrap(), 1, 1_000).unwrap();
        let r = g.run(1000, None, &AtomicBool::new(true)).unwrap();
        assert_eq!((r.packets, r.flows), (0, 0));
    }
}
