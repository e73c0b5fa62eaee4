//! Whatever `PacketBuilder` writes, the wire views and the `Decoder` read
//! back unchanged: header, template fields, record bytes, and the normalized
//! flow values the records carry.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netflow9::wire::template::AnyTemplate;
use netflow9::wire::{FlowSetIter, FlowSetKind, PacketHeader, TemplateRecordIter, HEADER_LEN};
use netflow9::{
    Config, Decoder, FieldSpecifier, FieldType, Flow, HeaderRepr, PacketBuilder, TemplateKey,
    Value, MAX_FIELDS,
};
use proptest::prelude::*;

/// Field types the flow normalizes, with the lengths exporters use for them.
const KNOWN: &[(u16, &[u16])] = &[
    (1, &[1, 2, 4, 8]),
    (2, &[4, 8]),
    (4, &[1]),
    (5, &[1]),
    (6, &[1, 2]),
    (7, &[2]),
    (8, &[4]),
    (9, &[1]),
    (10, &[2, 4]),
    (11, &[2]),
    (12, &[4]),
    (13, &[1]),
    (14, &[2, 4]),
    (15, &[4]),
    (16, &[2, 4]),
    (17, &[2, 4]),
    (18, &[4]),
    (21, &[4]),
    (22, &[4]),
    (23, &[4, 8]),
    (24, &[4, 8]),
    (27, &[16]),
    (28, &[16]),
    (29, &[1]),
    (34, &[4]),
    (60, &[1]),
    (61, &[1]),
    (62, &[16]),
    (63, &[16]),
    (85, &[4, 8]),
    (150, &[4]),
    (151, &[4]),
    (152, &[8]),
    (153, &[8]),
    (154, &[8]),
    (231, &[4]),
    (232, &[4]),
    (323, &[8]),
];

fn field() -> impl Strategy<Value = FieldSpecifier> {
    let known = prop::sample::select(KNOWN).prop_flat_map(|(t, lens)| {
        prop::sample::select(lens.to_vec()).prop_map(move |l| FieldSpecifier::new(FieldType(t), l))
    });
    let any_type =
        (any::<u16>(), 1u16..=16).prop_map(|(t, l)| FieldSpecifier::new(FieldType(t), l));
    prop_oneof![3 => known, 1 => any_type]
}

fn record_len(fields: &[FieldSpecifier]) -> usize {
    fields.iter().map(|f| usize::from(f.length)).sum()
}

/// One template as the exporter defines it.
#[derive(Debug, Clone)]
struct Def {
    id: u16,
    scope: Vec<FieldSpecifier>,
    fields: Vec<FieldSpecifier>,
}

impl Def {
    fn all(&self) -> Vec<FieldSpecifier> {
        [&self.scope[..], &self.fields[..]].concat()
    }
    fn len(&self) -> usize {
        record_len(&self.all())
    }
}

/// Up to three data templates and maybe an options template, distinct IDs.
///
/// Records shorter than 4 bytes are left out: up to 3 bytes of FlowSet
/// padding would then read as more records (RFC 3954 cannot tell them apart).
fn defs() -> impl Strategy<Value = Vec<Def>> {
    let data =
        prop::collection::vec(field(), 1..=40).prop_filter("≥ 4 bytes", |f| record_len(f) >= 4);
    let scope = prop::collection::vec(
        (1u16..=5, prop::sample::select(vec![2u16, 4]))
            .prop_map(|(t, l)| FieldSpecifier::new(FieldType(t), l)),
        1..=2,
    );
    let options = (scope, prop::collection::vec(field(), 1..=6))
        .prop_filter("≥ 4 bytes", |(s, f)| record_len(s) + record_len(f) >= 4);
    (
        prop::collection::btree_set(256u16..=u16::MAX, 4),
        prop::collection::vec(data, 1..=3),
        prop::option::of(options),
    )
        .prop_map(|(ids, data, options)| {
            let mut ids = ids.into_iter();
            let mut defs: Vec<Def> = data
                .into_iter()
                .map(|fields| Def {
                    id: ids.next().unwrap(),
                    scope: Vec::new(),
                    fields,
                })
                .collect();
            if let Some((scope, fields)) = options {
                defs.push(Def {
                    id: ids.next().unwrap(),
                    scope,
                    fields,
                });
            }
            defs
        })
}

fn header() -> impl Strategy<Value = HeaderRepr> {
    (
        any::<u16>(),
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
    )
        .prop_map(
            |(count, sys_uptime, unix_secs, sequence_number, source_id)| HeaderRepr {
                count,
                sys_uptime,
                unix_secs,
                sequence_number,
                source_id,
            },
        )
}

fn exporter() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|a| IpAddr::V4(Ipv4Addr::from(a))),
        any::<[u8; 16]>().prop_map(|a| IpAddr::V6(Ipv6Addr::from(a))),
    ]
}

/// Templates and, for each, 0 to 4 records of its length.
fn packet() -> impl Strategy<Value = (HeaderRepr, IpAddr, Vec<Def>, Vec<Vec<Vec<u8>>>)> {
    (header(), exporter(), defs()).prop_flat_map(|(h, e, defs)| {
        let records: Vec<_> = defs
            .iter()
            .map(|d| prop::collection::vec(record(d), 0..=4))
            .collect();
        (Just(h), Just(e), Just(defs), records)
    })
}

/// A record of `d`. Half have their IPv4 addresses zeroed, as an exporter
/// fills an IPv6 flow's record of a template with both families.
fn record(d: &Def) -> impl Strategy<Value = Vec<u8>> {
    let all = d.all();
    (prop::collection::vec(any::<u8>(), d.len()), any::<bool>()).prop_map(move |(mut r, v6)| {
        if v6 {
            zero_ipv4_addrs(&all, &mut r);
        }
        r
    })
}

/// Zeroes the IPv4 source and destination address fields of `rec`.
fn zero_ipv4_addrs(fields: &[FieldSpecifier], rec: &mut [u8]) {
    let mut at = 0;
    for f in fields {
        let len = usize::from(f.length);
        if matches!(f.field_type.0, 8 | 12) && len == 4 {
            rec[at..at + len].fill(0);
        }
        at += len;
    }
}

// ---------------------------------------------------------------------------
// What the flow should say, from RFC 3954's field definitions and the
// documented fallbacks of `Flow`.

struct Model<'a> {
    fields: &'a [FieldSpecifier],
    rec: &'a [u8],
}

impl Model<'_> {
    /// The first field of type `t` whose length is usable.
    fn find(&self, t: u16, ok: impl Fn(u16) -> bool) -> Option<&[u8]> {
        let mut at = 0;
        for f in self.fields {
            let len = usize::from(f.length);
            if f.field_type.0 == t && ok(f.length) {
                return Some(&self.rec[at..at + len]);
            }
            at += len;
        }
        None
    }
    fn uint(&self, t: u16) -> Option<u64> {
        self.find(t, |l| (1..=8).contains(&l))
            .map(|b| b.iter().fold(0u64, |a, &x| (a << 8) | u64::from(x)))
    }
    fn has(&self, t: u16) -> bool {
        self.uint(t).is_some()
    }
    /// An IPv6 record of a template with both families: IP_PROTOCOL_VERSION
    /// says 6 or, without it, IPv4 addresses all zero and an IPv6 one not.
    fn v6_record(&self) -> bool {
        let v4 = |t| self.find(t, |l| l == 4);
        let v6 = |t| self.find(t, |l| l == 16);
        let both = (v4(8).is_some() || v4(12).is_some()) && (v6(27).is_some() || v6(28).is_some());
        if !both {
            return false;
        }
        if let Some(v) = self.uint(60) {
            return v == 6;
        }
        let zero = |b: Option<&[u8]>| b.is_none_or(|b| b.iter().all(|&x| x == 0));
        zero(v4(8)) && zero(v4(12)) && !(zero(v6(27)) && zero(v6(28)))
    }
    fn addr(&self, v4: u16, v6: u16) -> Option<IpAddr> {
        if self.v6_record() {
            if let Some(b) = self.find(v6, |l| l == 16) {
                return Some(IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(b).unwrap())));
            }
        }
        if let Some(b) = self.find(v4, |l| l == 4) {
            return Some(IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(b).unwrap())));
        }
        self.find(v6, |l| l == 16)
            .map(|b| IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(b).unwrap())))
    }
    /// A prefix length, of the record's family first.
    fn mask(&self, v4: u16, v6: u16) -> u8 {
        let (first, then) = if self.v6_record() { (v6, v4) } else { (v4, v6) };
        self.uint(first).or_else(|| self.uint(then)).unwrap_or(0) as u8
    }
    fn counter(&self, main: u16, perm: u16, init: u16, resp: u16, out: u16) -> (u64, u64) {
        let out_v = self.uint(out).unwrap_or(0);
        if let Some(v) = self.uint(main).or_else(|| self.uint(perm)) {
            return (v, out_v);
        }
        if self.has(init) || self.has(resp) {
            let v = self.uint(init).unwrap_or(0);
            return (v.saturating_add(self.uint(resp).unwrap_or(0)), out_v);
        }
        (out_v, 0)
    }
    fn time(&self, h: &HeaderRepr, ms: u16, us: u16, s: u16, switched: u16) -> u64 {
        if let Some(v) = self.uint(ms) {
            v
        } else if let Some(v) = self.uint(us) {
            // RFC 7011 §6.1.9: NTP timestamp (seconds since 1900, 2^-32
            // fraction at µs resolution); smaller values are Unix µs.
            const NTP_UNIX: u64 = 2_208_988_800;
            if v >> 32 >= NTP_UNIX {
                ((v >> 32) - NTP_UNIX) * 1000 + (((v & 0xffff_f000) * 1000) >> 32)
            } else {
                v / 1000
            }
        } else if let Some(v) = self.uint(s) {
            v.saturating_mul(1000)
        } else if let Some(v) = self.uint(switched) {
            // RFC 3954 §8: FIRST/LAST_SWITCHED are sysUpTime in ms.
            let behind = i64::from(h.sys_uptime.wrapping_sub(v as u32) as i32);
            (i64::from(h.unix_secs) * 1000 - behind).max(0) as u64
        } else if let Some(v) = self.uint(323) {
            v
        } else {
            u64::from(h.unix_secs) * 1000
        }
    }

    fn flow(&self, actual: &Flow, h: &HeaderRepr, exporter: IpAddr, id: u16) -> Flow {
        let none = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        let protocol = self.uint(4).unwrap_or(0) as u8;
        let icmp = protocol == 1 || protocol == 58;
        let (bytes, out_bytes) = self.counter(1, 85, 231, 232, 23);
        let (packets, out_packets) = self.counter(2, 86, 298, 299, 24);
        let sampling = [34u16, 50, 305, 306, 48, 302]
            .iter()
            .any(|&t| self.fields.iter().any(|f| f.field_type.0 == t));
        Flow {
            exporter,
            source_id: h.source_id,
            template_id: id,
            src_addr: self.addr(8, 27).unwrap_or(none),
            dst_addr: self.addr(12, 28).unwrap_or(none),
            src_port: if icmp {
                0
            } else {
                self.uint(7).unwrap_or(0) as u16
            },
            // ICMP type and code have their own rules; not modelled here.
            dst_port: if icmp {
                actual.dst_port
            } else {
                self.uint(11).unwrap_or(0) as u16
            },
            protocol,
            tcp_flags: self.uint(6).unwrap_or(0) as u8,
            tos: self.uint(5).unwrap_or(0) as u8,
            input_if: self.uint(10).unwrap_or(0) as u32,
            output_if: self.uint(14).unwrap_or(0) as u32,
            src_as: self.uint(16).unwrap_or(0) as u32,
            dst_as: self.uint(17).unwrap_or(0) as u32,
            src_mask: self.mask(9, 29),
            dst_mask: self.mask(13, 30),
            next_hop: self.addr(15, 62),
            bgp_next_hop: self.addr(18, 63),
            direction: self.uint(61).map(|d| d as u8),
            bytes,
            packets,
            out_bytes,
            out_packets,
            first_ms: self.time(h, 152, 154, 150, 22),
            last_ms: self.time(h, 153, 155, 151, 21),
            // Sampling comes from the record or from options records; only
            // the plain case is modelled.
            sampling_interval: if sampling {
                actual.sampling_interval
            } else {
                1
            },
        }
    }
}

// ---------------------------------------------------------------------------

fn emit(h: HeaderRepr, defs: &[Def], records: &[Vec<Vec<u8>>], buf: &mut [u8]) -> usize {
    let mut b = PacketBuilder::new(buf, h).unwrap();
    for d in defs.iter().filter(|d| d.scope.is_empty()) {
        b.template(d.id, &d.fields).unwrap();
    }
    for d in defs.iter().filter(|d| !d.scope.is_empty()) {
        b.options_template(d.id, &d.scope, &d.fields).unwrap();
    }
    for (d, recs) in defs.iter().zip(records) {
        for r in recs {
            b.record(d.id, r).unwrap();
        }
    }
    b.finish().unwrap()
}

proptest! {
    #[test]
    fn emit_then_parse((h, exporter, defs, records) in packet()) {
        let mut buf = vec![0u8; 65_535];
        let len = emit(h, &defs, &records, &mut buf);
        let p = &buf[..len];
        let n_records: usize = records.iter().map(Vec::len).sum();
        let header = HeaderRepr { count: (defs.len() + n_records) as u16, ..h };

        // The wire views.
        prop_assert_eq!(HeaderRepr::parse(p).unwrap(), header);
        let view = PacketHeader::new_checked(p).unwrap();
        prop_assert_eq!(view.repr(), header);
        let sets: Vec<_> = FlowSetIter::new(view.payload()).collect::<Result<_, _>>().unwrap();
        let mut sets = sets.into_iter();
        let mut templates = Vec::new();
        let data_defs = defs.iter().filter(|d| d.scope.is_empty()).count();
        let has_options = data_defs < defs.len();
        for options in [false, true].into_iter().take(1 + usize::from(has_options)) {
            let set = sets.next().unwrap();
            prop_assert_eq!(set.body_offset() % 4, 0);
            let iter = if options {
                prop_assert_eq!(set.kind(), FlowSetKind::OptionsTemplate);
                TemplateRecordIter::options(set.body(), set.body_offset(), MAX_FIELDS)
            } else {
                prop_assert_eq!(set.kind(), FlowSetKind::Template);
                TemplateRecordIter::templates(set.body(), set.body_offset(), MAX_FIELDS)
            };
            for t in iter {
                templates.push(match t.unwrap() {
                    AnyTemplate::Template(t) => Def {
                        id: t.template_id(),
                        scope: Vec::new(),
                        fields: t.fields().collect(),
                    },
                    AnyTemplate::Options(t) => Def {
                        id: t.template_id(),
                        scope: t.scope_fields().collect(),
                        fields: t.option_fields().collect(),
                    },
                });
            }
        }
        prop_assert_eq!(templates.len(), defs.len());
        for (got, want) in templates.iter().zip(&defs) {
            prop_assert_eq!(got.id, want.id);
            prop_assert_eq!(&got.scope, &want.scope);
            prop_assert_eq!(&got.fields, &want.fields);
        }
        for (d, recs) in defs.iter().zip(&records).filter(|(_, r)| !r.is_empty()) {
            let set = sets.next().unwrap();
            prop_assert_eq!(set.kind(), FlowSetKind::Data(d.id));
            let written = recs.concat();
            let body = set.body();
            prop_assert_eq!(&body[..written.len()], &written[..]);
            let padding = &body[written.len()..];
            prop_assert!(padding.len() < 4 && padding.iter().all(|&b| b == 0));
            prop_assert_eq!((HEADER_LEN + body.len()) % 4, 0, "4-byte aligned");
        }
        prop_assert!(sets.next().is_none());

        // The decoder.
        let mut decoder = Decoder::new(Config {
            templates: 16,
            domains: 4,
            pending_bytes: 4096,
            ..Config::default()
        });
        let mut seen = Vec::new();
        let summary = decoder
            .decode(exporter, p, |r| {
                let fields: Vec<_> = r.fields().collect();
                seen.push((r.template_id(), r.is_options(), r.bytes().to_vec(), r.flow(), fields.len()));
                // Every value is read from where the template puts it.
                let mut at = 0;
                for f in fields {
                    let b = &r.bytes()[at..at + usize::from(f.spec.length)];
                    let t = if f.scope { FieldType(0) } else { f.spec.field_type };
                    assert_eq!(f.value, Value::read(t, b));
                    at += b.len();
                }
                assert_eq!(at, r.bytes().len());
            })
            .unwrap();
        prop_assert_eq!(summary.header, header);
        prop_assert_eq!(summary.errors, 0);
        prop_assert_eq!(summary.templates as usize, defs.len());
        let options_records = records.last().filter(|_| has_options).map_or(0, Vec::len);
        prop_assert_eq!(summary.records as usize, n_records - options_records);
        prop_assert_eq!(summary.options_records as usize, options_records);
        prop_assert_eq!(seen.len(), n_records);
        let mut seen = seen.into_iter();
        for (d, recs) in defs.iter().zip(&records) {
            let key = TemplateKey { exporter, source_id: h.source_id, template_id: d.id };
            let cached = decoder.template(&key).unwrap();
            prop_assert_eq!(cached.fields().collect::<Vec<_>>(), d.all());
            prop_assert_eq!(cached.scope_count(), d.scope.len());
            prop_assert_eq!(cached.record_len(), d.len());
            for r in recs {
                let (id, options, bytes, flow, n_fields) = seen.next().unwrap();
                prop_assert_eq!(id, d.id);
                prop_assert_eq!(options, !d.scope.is_empty());
                prop_assert_eq!(&bytes, r);
                prop_assert_eq!(n_fields, d.all().len());
                if !options {
                    let model = Model { fields: &d.fields, rec: r };
                    // Options records come last, so no sampler is known yet.
                    prop_assert_eq!(flow, model.flow(&flow, &h, exporter, d.id));
                }
            }
        }
    }
}
