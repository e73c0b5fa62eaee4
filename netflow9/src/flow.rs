//! The normalized flow: one `Copy` value per data record, whatever the
//! exporter's template looked like.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::layout::{bit, role, FlowLayout, RecordBytes, BOTH_FAMILIES};
use crate::sampling::Samplers;

/// One flow, normalized from a data record.
///
/// Values the template does not carry are 0 (addresses: `0.0.0.0`), except
/// where `Option` says otherwise. Counters are raw (unscaled): multiply by
/// [`Flow::sampling_interval`] to estimate the real traffic.
///
/// ```
/// # use netflow9::Flow;
/// # let flow = Flow::default();
/// let scaled_bytes = flow.bytes * u64::from(flow.sampling_interval);
/// # assert_eq!(scaled_bytes, 0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Flow {
    /// The exporter's address (the datagram's source).
    pub exporter: IpAddr,
    /// The exporter's observation domain.
    pub source_id: u32,
    /// The template the record was decoded with.
    pub template_id: u16,
    /// Source address (IPV4_SRC_ADDR 8 or IPV6_SRC_ADDR 27). In a template
    /// with both families (nProbe's default), the family the record fills:
    /// IPv6 when IP_PROTOCOL_VERSION (60) says 6 or, without it, when the
    /// IPv4 addresses are 0.0.0.0 and an IPv6 one is not `::`. Masks and
    /// next hops follow the same family.
    pub src_addr: IpAddr,
    /// Destination address (12 or 28).
    pub dst_addr: IpAddr,
    /// Source port (7); 0 for ICMP.
    pub src_port: u16,
    /// Destination port (11); for ICMP, type × 256 + code.
    pub dst_port: u16,
    /// IP protocol number (4).
    pub protocol: u8,
    /// Cumulative TCP flags (6).
    pub tcp_flags: u8,
    /// Type of service byte (5).
    pub tos: u8,
    /// Input interface SNMP index (10).
    pub input_if: u32,
    /// Output interface SNMP index (14).
    pub output_if: u32,
    /// Source BGP AS (16).
    pub src_as: u32,
    /// Destination BGP AS (17).
    pub dst_as: u32,
    /// Source prefix length (9 or 29).
    pub src_mask: u8,
    /// Destination prefix length (13 or 30).
    pub dst_mask: u8,
    /// IP next hop (15 or 62).
    pub next_hop: Option<IpAddr>,
    /// BGP next hop (18 or 63).
    pub bgp_next_hop: Option<IpAddr>,
    /// DIRECTION (61): 0 ingress, 1 egress, as the exporter reports it.
    pub direction: Option<u8>,
    /// Bytes: IN_BYTES (1), else IN_PERMANENT_BYTES (85), else NSEL
    /// initiator + responder octets (231 + 232), else OUT_BYTES (23).
    pub bytes: u64,
    /// Packets, by the same rule (2, 86, 298 + 299, 24).
    pub packets: u64,
    /// OUT_BYTES (23) when `bytes` came from another field: the reverse
    /// direction of a bidirectional record (FortiGate, some Cisco).
    pub out_bytes: u64,
    /// OUT_PKTS (24), by the same rule.
    pub out_packets: u64,
    /// First packet, Unix milliseconds: from flowStartMilliseconds (152),
    /// flowStartMicroseconds (154, an NTP timestamp as RFC 7011 defines
    /// it; values too small to be one are taken as Unix µs),
    /// flowStartSeconds (150), else FIRST_SWITCHED (22) with the header's
    /// uptime.
    pub first_ms: u64,
    /// Last packet, Unix milliseconds.
    pub last_ms: u64,
    /// Packet sampling interval (1 = every packet, or unknown).
    pub sampling_interval: u32,
}

impl Default for Flow {
    fn default() -> Self {
        Flow {
            exporter: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            source_id: 0,
            template_id: 0,
            src_addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            dst_addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            src_port: 0,
            dst_port: 0,
            protocol: 0,
            tcp_flags: 0,
            tos: 0,
            input_if: 0,
            output_if: 0,
            src_as: 0,
            dst_as: 0,
            src_mask: 0,
            dst_mask: 0,
            next_hop: None,
            bgp_next_hop: None,
            direction: None,
            bytes: 0,
            packets: 0,
            out_bytes: 0,
            out_packets: 0,
            first_ms: 0,
            last_ms: 0,
            sampling_interval: 1,
        }
    }
}

/// Seconds from the NTP era 0 (1900-01-01) to the Unix epoch.
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// flowStart/EndMicroseconds (154/155) to Unix ms. RFC 7011 §6.1.9:
/// dateTimeMicroseconds "is encoded as a 64-bit unsigned integer in the NTP
/// Timestamp format" (seconds since 1900 in the high 32 bits, a 2⁻³² s
/// fraction in the low 32 bits, of which only the top 20 bits count).
/// Sanity check: a high word below the NTP seconds of 1970 cannot be an NTP
/// time of this era, but is what Unix microseconds (up to year 2106) look
/// like, which some exporters send: those are read as such.
#[inline]
fn micros_to_unix_ms(v: u64) -> u64 {
    let secs = v >> 32;
    if secs < NTP_UNIX_OFFSET {
        return v / 1000;
    }
    // The fraction's microsecond resolution: mask the 12 low bits.
    let frac = v & 0xffff_f000;
    (secs - NTP_UNIX_OFFSET) * 1000 + ((frac * 1000) >> 32)
}

impl Flow {
    /// 4 or 6.
    #[must_use]
    pub fn ip_version(&self) -> u8 {
        if self.src_addr.is_ipv6() || self.dst_addr.is_ipv6() {
            6
        } else {
            4
        }
    }

    /// Duration in milliseconds (0 if the exporter's times are reversed).
    #[must_use]
    pub fn duration_ms(&self) -> u64 {
        self.last_ms.saturating_sub(self.first_ms)
    }
}

/// What the packet header tells about every record in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordContext {
    /// The exporter's address.
    pub exporter: IpAddr,
    /// Source ID of the packet.
    pub source_id: u32,
    /// Header sys_uptime (ms).
    pub sys_uptime: u32,
    /// Header unix_secs.
    pub unix_secs: u32,
    /// Header sequence number.
    pub sequence_number: u32,
}

/// FIRST/LAST_SWITCHED (sysUptime ms) to Unix ms. The difference is taken
/// as a signed 32-bit value so a flow seen just before the 32-bit uptime
/// wrapped (or a switched time slightly after the header's uptime) comes out
/// right.
#[inline]
fn uptime_to_unix_ms(ctx: &RecordContext, switched: u64) -> u64 {
    let behind = i64::from(ctx.sys_uptime.wrapping_sub(switched as u32) as i32);
    (i64::from(ctx.unix_secs) * 1000 - behind).max(0) as u64
}

impl Flow {
    /// A flow holding only its context's values (exporter, Source ID,
    /// template): what [`FlowLayout::flow`] fills in.
    #[inline(always)]
    fn head(ctx: &RecordContext, template_id: u16) -> Flow {
        Flow {
            exporter: ctx.exporter,
            source_id: ctx.source_id,
            template_id,
            ..Flow::default()
        }
    }
}

#[inline]
fn ip(l: &FlowLayout, r4: usize, r6: usize, rec: RecordBytes<'_>) -> Option<IpAddr> {
    if let Some(a) = l.v4(r4, rec) {
        return Some(IpAddr::V4(Ipv4Addr::from(a)));
    }
    l.v6(r6, rec).map(|a| IpAddr::V6(Ipv6Addr::from(a)))
}

/// [`ip`] for an IPv6 record of a template with both families: IPv6 first.
fn ip6(l: &FlowLayout, r4: usize, r6: usize, rec: RecordBytes<'_>) -> Option<IpAddr> {
    match l.v6(r6, rec) {
        Some(a) => Some(IpAddr::V6(Ipv6Addr::from(a))),
        None => ip(l, r4, r6, rec),
    }
}

impl FlowLayout {
    /// True if this record of a template with both IPv4 and IPv6 addresses
    /// (nProbe's default template, some firewalls) is an IPv6 flow: its
    /// IP_PROTOCOL_VERSION (60) says 6, or, without that field, its IPv4
    /// addresses are 0.0.0.0 and an IPv6 one is not `::`. Exporters fill
    /// only the family of the flow and zero the other. Callers test
    /// [`BOTH_FAMILIES`] first: templates of one family pay one bit test.
    #[inline(never)]
    fn is_v6_record(&self, rec: RecordBytes<'_>) -> bool {
        if let Some(v) = self.read(role::IP_VERSION, rec) {
            return v == 6;
        }
        let zero4 = |r| self.read(r, rec).unwrap_or(0) == 0;
        let set6 = |r| self.v6(r, rec).is_some_and(|a| a != [0; 16]);
        zero4(role::SRC4) && zero4(role::DST4) && (set6(role::SRC6) || set6(role::DST6))
    }

    /// The address of `r4`/`r6`, in the record's family.
    #[inline(always)]
    fn addr(&self, r4: usize, r6: usize, rec: RecordBytes<'_>) -> IpAddr {
        let a = if self.has_any(BOTH_FAMILIES) && self.is_v6_record(rec) {
            ip6(self, r4, r6, rec)
        } else {
            ip(self, r4, r6, rec)
        };
        a.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    }

    /// For an IPv6 record of a template with both families, replaces what
    /// [`FlowLayout::fill_values`] read of the IPv4 family.
    #[cold]
    #[inline(never)]
    fn v6_family(&self, f: &mut Flow, rec: RecordBytes<'_>) {
        if !self.is_v6_record(rec) {
            return;
        }
        if let Some(a) = ip6(self, role::SRC4, role::SRC6, rec) {
            f.src_addr = a;
        }
        if let Some(a) = ip6(self, role::DST4, role::DST6, rec) {
            f.dst_addr = a;
        }
        let mask = |first: usize, then: usize| {
            self.read(first, rec)
                .or_else(|| self.read(then, rec))
                .unwrap_or(0) as u8
        };
        f.src_mask = mask(role::SRC_MASK6, role::SRC_MASK);
        f.dst_mask = mask(role::DST_MASK6, role::DST_MASK);
        f.next_hop = ip6(self, role::NEXT_HOP4, role::NEXT_HOP6, rec);
        f.bgp_next_hop = ip6(self, role::BGP_NEXT_HOP4, role::BGP_NEXT_HOP6, rec);
    }

    // Always inlined, like `counter`: the roles are constants, so each
    // chain folds into a few bit tests on the layout's presence mask.
    #[inline(always)]
    fn time(
        &self,
        rec: RecordBytes<'_>,
        ctx: &RecordContext,
        ms: usize,
        us: usize,
        s: usize,
        sw: usize,
    ) -> u64 {
        // NetFlow v9 exporters mostly send switched times only: one test
        // skips the absolute-time fields.
        if self.has_any(bit(ms) | bit(us) | bit(s)) {
            if let Some(v) = self.read(ms, rec) {
                return v;
            } else if let Some(v) = self.read(us, rec) {
                return micros_to_unix_ms(v);
            } else if let Some(v) = self.read(s, rec) {
                return v.saturating_mul(1000);
            }
        }
        if let Some(v) = self.read(sw, rec) {
            uptime_to_unix_ms(ctx, v)
        } else if let Some(v) = self.read(role::OBSERVATION_MS, rec) {
            v
        } else {
            u64::from(ctx.unix_secs) * 1000
        }
    }

    /// Counter by the fallback chain of [`Flow::bytes`]; `Some(out)` is the
    /// reverse counter when it was not used.
    #[inline(always)]
    fn counter(
        &self,
        rec: RecordBytes<'_>,
        main: usize,
        perm: usize,
        init: usize,
        resp: usize,
        out: usize,
    ) -> (u64, u64) {
        let out_v = self.read(out, rec);
        if let Some(v) = self.read(main, rec).or_else(|| self.read(perm, rec)) {
            return (v, out_v.unwrap_or(0));
        }
        if self.has(init) || self.has(resp) {
            let v = self
                .read(init, rec)
                .unwrap_or(0)
                .saturating_add(self.read(resp, rec).unwrap_or(0));
            return (v, out_v.unwrap_or(0));
        }
        (out_v.unwrap_or(0), 0)
    }

    /// [`Flow::src_addr`] alone.
    #[inline]
    pub(crate) fn src_addr(&self, rec: RecordBytes<'_>) -> IpAddr {
        self.addr(role::SRC4, role::SRC6, rec)
    }

    /// [`Flow::dst_addr`] alone.
    #[inline]
    pub(crate) fn dst_addr(&self, rec: RecordBytes<'_>) -> IpAddr {
        self.addr(role::DST4, role::DST6, rec)
    }

    /// [`Flow::bytes`] alone.
    #[inline]
    pub(crate) fn byte_count(&self, rec: RecordBytes<'_>) -> u64 {
        self.counter(
            rec,
            role::IN_BYTES,
            role::PERM_BYTES,
            role::INIT_OCTETS,
            role::RESP_OCTETS,
            role::OUT_BYTES,
        )
        .0
    }

    /// [`Flow::packets`] alone.
    #[inline]
    pub(crate) fn packet_count(&self, rec: RecordBytes<'_>) -> u64 {
        self.counter(
            rec,
            role::IN_PKTS,
            role::PERM_PKTS,
            role::INIT_PKTS,
            role::RESP_PKTS,
            role::OUT_PKTS,
        )
        .0
    }

    /// Builds the flow of one record. `samplers` resolves a sampler id.
    #[inline]
    pub(crate) fn flow(
        &self,
        rec: RecordBytes<'_>,
        ctx: &RecordContext,
        template_id: u16,
        samplers: Option<&Samplers>,
    ) -> Flow {
        let mut f = Flow::head(ctx, template_id);
        self.fill_values(&mut f, rec, ctx, samplers);
        f
    }

    /// [`FlowLayout::flow`] into `f`, overwriting every value.
    #[inline]
    pub(crate) fn fill(
        &self,
        f: &mut Flow,
        rec: RecordBytes<'_>,
        ctx: &RecordContext,
        template_id: u16,
        samplers: Option<&Samplers>,
    ) {
        *f = Flow::head(ctx, template_id);
        self.fill_values(f, rec, ctx, samplers);
    }

    /// The record's values into `f`, which holds the defaults and the
    /// context's.
    #[inline(always)]
    fn fill_values(
        &self,
        f: &mut Flow,
        rec: RecordBytes<'_>,
        ctx: &RecordContext,
        samplers: Option<&Samplers>,
    ) {
        // Filled one value at a time, straight into the result: fewer values
        // live at once, so fewer spills in this long function.
        if let Some(a) = ip(self, role::SRC4, role::SRC6, rec) {
            f.src_addr = a;
        }
        if let Some(a) = ip(self, role::DST4, role::DST6, rec) {
            f.dst_addr = a;
        }
        f.protocol = self.read(role::PROTOCOL, rec).unwrap_or(0) as u8;
        f.src_port = self.read(role::SRC_PORT, rec).unwrap_or(0) as u16;
        f.dst_port = self.read(role::DST_PORT, rec).unwrap_or(0) as u16;
        if f.protocol == 1 || f.protocol == 58 {
            // nfdump and tshark convention: type × 256 + code in the
            // destination port, source port 0.
            let icmp = self
                .read(role::ICMP_TYPE, rec)
                .or_else(|| self.read(role::ICMP_TYPE_CODE6, rec))
                .or_else(|| {
                    let t = self
                        .read(role::ICMP_TYPE4, rec)
                        .or_else(|| self.read(role::ICMP_TYPE6, rec))?;
                    let c = self
                        .read(role::ICMP_CODE4, rec)
                        .or_else(|| self.read(role::ICMP_CODE6, rec));
                    Some((t << 8) | c.unwrap_or(0))
                });
            if let Some(v) = icmp {
                f.dst_port = v as u16;
            }
            f.src_port = 0;
        }
        f.tcp_flags = self.read(role::TCP_FLAGS, rec).unwrap_or(0) as u8;
        f.tos = self.read(role::TOS, rec).unwrap_or(0) as u8;
        f.input_if = self.read(role::INPUT_IF, rec).unwrap_or(0) as u32;
        f.output_if = self.read(role::OUTPUT_IF, rec).unwrap_or(0) as u32;
        f.src_as = self.read(role::SRC_AS, rec).unwrap_or(0) as u32;
        f.dst_as = self.read(role::DST_AS, rec).unwrap_or(0) as u32;
        f.src_mask = self
            .read(role::SRC_MASK, rec)
            .or_else(|| self.read(role::SRC_MASK6, rec))
            .unwrap_or(0) as u8;
        f.dst_mask = self
            .read(role::DST_MASK, rec)
            .or_else(|| self.read(role::DST_MASK6, rec))
            .unwrap_or(0) as u8;
        f.next_hop = ip(self, role::NEXT_HOP4, role::NEXT_HOP6, rec);
        f.bgp_next_hop = ip(self, role::BGP_NEXT_HOP4, role::BGP_NEXT_HOP6, rec);
        f.direction = self.read(role::DIRECTION, rec).map(|d| d as u8);
        (f.bytes, f.out_bytes) = self.counter(
            rec,
            role::IN_BYTES,
            role::PERM_BYTES,
            role::INIT_OCTETS,
            role::RESP_OCTETS,
            role::OUT_BYTES,
        );
        (f.packets, f.out_packets) = self.counter(
            rec,
            role::IN_PKTS,
            role::PERM_PKTS,
            role::INIT_PKTS,
            role::RESP_PKTS,
            role::OUT_PKTS,
        );
        f.first_ms = self.time(
            rec,
            ctx,
            role::START_MS,
            role::START_US,
            role::START_S,
            role::FIRST_SWITCHED,
        );
        f.last_ms = self.time(
            rec,
            ctx,
            role::END_MS,
            role::END_US,
            role::END_S,
            role::LAST_SWITCHED,
        );
        f.sampling_interval = self.sampling(rec, samplers);
        if self.has_any(BOTH_FAMILIES) {
            self.v6_family(f, rec);
        }
    }

    #[inline]
    fn sampling(&self, rec: RecordBytes<'_>, samplers: Option<&Samplers>) -> u32 {
        const IN_RECORD: u64 = bit(role::SAMPLING_INTERVAL)
            | bit(role::RANDOM_INTERVAL)
            | bit(role::SAMPLING_PKT_INTERVAL);
        if self.has_any(IN_RECORD) {
            if let Some(i) = crate::sampling::interval_in(self, rec.data) {
                return i;
            }
        }
        let Some(samplers) = samplers.filter(|s| s.iter().next().is_some()) else {
            return 1;
        };
        let id = self
            .read(role::SAMPLER_ID, rec)
            .or_else(|| self.read(role::SELECTOR_ID, rec));
        samplers.interval(id).unwrap_or(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> RecordContext {
        RecordContext {
            exporter: IpAddr::V4(Ipv4Addr::LOCALHOST),
            source_id: 0,
            sys_uptime: 135_754,
            unix_secs: 1_709_294_536,
            sequence_number: 1,
        }
    }

    #[test]
    fn uptime_conversion_and_wrap() {
        let c = ctx();
        assert_eq!(uptime_to_unix_ms(&c, 0), 1_709_294_400_246);
        assert_eq!(uptime_to_unix_ms(&c, 135_754), 1_709_294_536_000);
        // uptime wrapped: header at 1000 ms after the wrap, flow started 3000 ms before it
        let w = RecordContext {
            sys_uptime: 1000,
            ..c
        };
        assert_eq!(
            uptime_to_unix_ms(&w, u64::from(u32::MAX - 2999)),
            1_709_294_536_000 - 4000
        );
        // a switched time slightly after the header (exporter clock skew)
        assert_eq!(uptime_to_unix_ms(&w, 1500), 1_709_294_536_500);
    }

    #[test]
    fn icmp_and_counter_fallbacks() {
        // proto, ICMP_TYPE, src port, INIT/RESP octets, OUT_BYTES
        let l = FlowLayout::build(
            [
                (4, 0, 1),
                (32, 1, 2),
                (7, 3, 2),
                (231, 5, 4),
                (232, 9, 4),
                (23, 13, 4),
            ]
            .into_iter(),
        );
        let rec = [1, 8, 0, 0, 99, 0, 0, 0, 69, 0, 0, 0x37, 0x62, 0, 0, 0, 7];
        let f = l.flow(RecordBytes::alone(&rec), &ctx(), 300, None);
        assert_eq!((f.src_port, f.dst_port), (0, 2048));
        assert_eq!(f.bytes, 69 + 14178);
        assert_eq!(f.out_bytes, 7);
        assert_eq!(f.sampling_interval, 1);
        assert_eq!(f.first_ms, 1_709_294_536_000, "no time fields: export time");
    }
    /// Regression: flowStartMicroseconds was read as Unix microseconds;
    /// it is an NTP timestamp (RFC 7011 §6.1.9).
    #[test]
    fn microsecond_times_are_ntp() {
        let unix = 1_700_000_000u64;
        let ntp = ((unix + NTP_UNIX_OFFSET) << 32) | (1 << 31); // + 0.5 s
        assert_eq!(micros_to_unix_ms(ntp), unix * 1000 + 500);
        assert_eq!(
            micros_to_unix_ms((unix + NTP_UNIX_OFFSET) << 32),
            unix * 1000
        );
        // Unix microseconds from a non-conforming exporter still work.
        assert_eq!(
            micros_to_unix_ms(unix * 1_000_000 + 250_000),
            unix * 1000 + 250
        );
        let l = FlowLayout::build([(154, 0, 8), (155, 8, 8)].into_iter());
        let mut rec = [0u8; 16];
        rec[..8].copy_from_slice(&ntp.to_be_bytes());
        rec[8..].copy_from_slice(&(ntp + (1 << 32)).to_be_bytes());
        let f = l.flow(RecordBytes::alone(&rec), &ctx(), 300, None);
        assert_eq!(
            (f.first_ms, f.last_ms),
            (unix * 1000 + 500, unix * 1000 + 1500)
        );
    }

    /// nProbe's default template carries IPv4 and IPv6 addresses, masks
    /// and next hops; a record fills its own family and zeroes the other.
    #[test]
    #[cfg(feature = "alloc")]
    fn templates_with_both_families_take_the_record_family() {
        use crate::{FieldSpecifier as F, FieldType as T, Record, Template};
        use alloc::string::ToString;
        use alloc::vec::Vec;
        let fields = [
            F::new(T::IPV4_SRC_ADDR, 4),
            F::new(T::IPV4_DST_ADDR, 4),
            F::new(T::SRC_MASK, 1),
            F::new(T::IPV4_NEXT_HOP, 4),
            F::new(T::IPV6_SRC_ADDR, 16),
            F::new(T::IPV6_DST_ADDR, 16),
            F::new(T::IPV6_SRC_MASK, 1),
            F::new(T::IPV6_NEXT_HOP, 16),
            F::new(T::IN_BYTES, 4),
        ];
        let t = Template::new(257, &fields).unwrap();
        let v6 = |s: &str| s.parse::<Ipv6Addr>().unwrap().octets();
        let rec = |s4: [u8; 4], d4: [u8; 4], m4: u8, s6: [u8; 16], d6: [u8; 16], m6: u8| {
            let mut r = Vec::new();
            r.extend(s4);
            r.extend(d4);
            r.push(m4);
            r.extend([10, 0, 0, 254]);
            r.extend(s6);
            r.extend(d6);
            r.push(m6);
            r.extend(v6("fe80::1"));
            r.extend(100u32.to_be_bytes());
            r
        };
        let check = |data: &[u8], t: &Template, src: &str, dst: &str, mask: u8, hop: &str| {
            let r = Record::new(t, data, ctx());
            let f = r.flow();
            assert_eq!(f.src_addr.to_string(), src);
            assert_eq!(f.dst_addr.to_string(), dst);
            assert_eq!((r.src_addr(), r.dst_addr()), (f.src_addr, f.dst_addr));
            assert_eq!(f.src_mask, mask);
            assert_eq!(f.next_hop.unwrap().to_string(), hop);
            assert_eq!(f.bytes, 100);
        };
        let (a, b) = (v6("2001:db8::1"), v6("2001:db8::2"));
        // An IPv4 flow: IPv6 fields zero.
        let r4 = rec([10, 0, 0, 1], [10, 0, 0, 2], 24, [0; 16], [0; 16], 0);
        check(&r4, &t, "10.0.0.1", "10.0.0.2", 24, "10.0.0.254");
        // An IPv6 flow: IPv4 fields zero.
        let r6 = rec([0; 4], [0; 4], 0, a, b, 64);
        check(&r6, &t, "2001:db8::1", "2001:db8::2", 64, "fe80::1");
        // Only one IPv6 address set (the other `::`, as in duplicate
        // address detection): still IPv6, both sides.
        let dad = rec([0; 4], [0; 4], 0, [0; 16], b, 0);
        check(&dad, &t, "::", "2001:db8::2", 0, "fe80::1");
        // An IPv4 flow from 0.0.0.0 to 0.0.0.0 (nothing in IPv6) stays IPv4.
        let zero = rec([0; 4], [0; 4], 8, [0; 16], [0; 16], 0);
        check(&zero, &t, "0.0.0.0", "0.0.0.0", 8, "10.0.0.254");
        // IP_PROTOCOL_VERSION decides when present, whatever is zero.
        let mut versioned = fields.to_vec();
        versioned.push(F::new(T::IP_PROTOCOL_VERSION, 1));
        let tv = Template::new(258, &versioned).unwrap();
        let mut dhcp = rec([0; 4], [255; 4], 0, a, b, 64);
        dhcp.push(4);
        check(&dhcp, &tv, "0.0.0.0", "255.255.255.255", 0, "10.0.0.254");
        let mut dad6 = rec([0; 4], [0; 4], 0, [0; 16], [0; 16], 0);
        dad6.push(6);
        check(&dad6, &tv, "::", "::", 0, "fe80::1");
    }
}
