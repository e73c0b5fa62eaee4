//! Hostile and unlucky input: truncated packets, impossible lengths, data
//! before its template, restarts, template floods and random garbage.
//!
//! Every test checks what the decoder counted and what it still decoded, not
//! only that it survived.

mod common;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{data, json, udp_payloads};
use netflow9::wire::VARIABLE_LENGTH;
use netflow9::{
    empty_domain_slot, empty_template_slot, Config, Decoder, ErrorKind, FieldSpecifier, FieldType,
    Flow, HeaderRepr, PacketBuilder, PacketSummary, RecordContext, Storage, TemplateKey, Value,
    PENDING_ENTRY_OVERHEAD,
};

// ---------------------------------------------------------------------------
// Helpers

const T: u32 = 1_709_294_400; // 2024-03-01 12:00:00 UTC

fn v4(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
}

fn f(t: FieldType, len: u16) -> FieldSpecifier {
    FieldSpecifier::new(t, len)
}

fn hdr(sequence_number: u32, unix_secs: u32, sys_uptime: u32) -> HeaderRepr {
    HeaderRepr {
        count: 0,
        sys_uptime,
        unix_secs,
        sequence_number,
        source_id: 0,
    }
}

/// A datagram: `header`, then `payload` exactly as given.
fn raw(header: HeaderRepr, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; 20];
    header.emit(&mut out).unwrap();
    out.extend_from_slice(payload);
    out
}

/// A FlowSet with a correct length and no padding.
fn flowset(id: u16, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&u16::try_from(4 + body.len()).unwrap().to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// One Template record (for a Template FlowSet body).
fn template_record(id: u16, fields: &[FieldSpecifier]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&u16::try_from(fields.len()).unwrap().to_be_bytes());
    for s in fields {
        out.extend_from_slice(&s.field_type.0.to_be_bytes());
        out.extend_from_slice(&s.length.to_be_bytes());
    }
    out
}

/// One Options Template record.
fn options_record(id: u16, scope: &[FieldSpecifier], fields: &[FieldSpecifier]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&u16::try_from(4 * scope.len()).unwrap().to_be_bytes());
    out.extend_from_slice(&u16::try_from(4 * fields.len()).unwrap().to_be_bytes());
    for s in scope.iter().chain(fields) {
        out.extend_from_slice(&s.field_type.0.to_be_bytes());
        out.extend_from_slice(&s.length.to_be_bytes());
    }
    out
}

/// A packet written with the encoder.
fn build(header: HeaderRepr, fill: impl FnOnce(&mut PacketBuilder<'_>)) -> Vec<u8> {
    let mut buf = vec![0u8; 65_535];
    let mut b = PacketBuilder::new(&mut buf, header).unwrap();
    fill(&mut b);
    let len = b.finish().unwrap();
    buf.truncate(len);
    buf
}

/// What the sink was given, copied out.
#[derive(Debug, Clone)]
struct Seen {
    template_id: u16,
    bytes: Vec<u8>,
    flow: Flow,
    replayed: bool,
    ctx: RecordContext,
}

fn run(d: &mut Decoder<'_>, exporter: IpAddr, datagram: &[u8]) -> (PacketSummary, Vec<Seen>) {
    let mut seen = Vec::new();
    let summary = d
        .decode(exporter, datagram, |r| {
            seen.push(Seen {
                template_id: r.template_id(),
                bytes: r.bytes().to_vec(),
                flow: r.flow(),
                replayed: r.replayed(),
                ctx: *r.context(),
            });
        })
        .expect("valid v9 header");
    (summary, seen)
}

/// A small decoder configuration (cheap to allocate per test).
fn small() -> Config {
    Config {
        templates: 64,
        domains: 16,
        pending_bytes: 1 << 16,
        ..Config::default()
    }
}

/// IPV4_SRC_ADDR, IN_BYTES: 8-byte records.
const T300: [FieldSpecifier; 2] = [
    FieldSpecifier::new(FieldType::IPV4_SRC_ADDR, 4),
    FieldSpecifier::new(FieldType::IN_BYTES, 4),
];

fn rec300(src: [u8; 4], bytes: u32) -> Vec<u8> {
    [&src[..], &bytes.to_be_bytes()].concat()
}

// ---------------------------------------------------------------------------
// Truncation of every real packet at every byte

/// A group of datagrams decoded in order into one decoder (a capture, or a
/// vendor case's files), and which of them to truncate.
struct Group {
    name: String,
    datagrams: Vec<(IpAddr, Vec<u8>)>,
    test: Vec<usize>,
}

fn corpus() -> Vec<Group> {
    let mut groups = Vec::new();
    for name in [
        "softflowd-v9",
        "softflowd-v9-ether-ipv6",
        "pmacct-v9",
        "nfreplay-v9",
    ] {
        let datagrams = udp_payloads(&data(&format!("exports/{name}.pcap")));
        let test = (0..datagrams.len()).collect();
        groups.push(Group {
            name: name.to_string(),
            datagrams,
            test,
        });
    }
    let cases = json(&data("logstash/cases.json"));
    let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mut done = BTreeSet::new();
    for case in cases["cases"].as_array().unwrap() {
        let mut g = Group {
            name: case["name"].as_str().unwrap().to_string(),
            datagrams: Vec::new(),
            test: Vec::new(),
        };
        for file in case["files"].as_array().unwrap() {
            let file = file.as_str().unwrap();
            if done.insert(file.to_string()) {
                g.test.push(g.datagrams.len());
            }
            let bytes = std::fs::read(data(&format!("logstash/{file}"))).unwrap();
            g.datagrams.push((localhost, bytes));
        }
        groups.push(g);
    }
    assert_eq!(done.len(), 56, "every .dat file is in a case");
    groups
}

/// Records (data and options) from one datagram.
fn count(d: &mut Decoder<'_>, exporter: IpAddr, datagram: &[u8]) -> Result<u64, ErrorKind> {
    let mut n = 0u64;
    d.decode(exporter, datagram, |_| n += 1)
        .map(|_| n)
        .map_err(|e| e.kind)
}

/// Decodes every prefix of the group's test datagrams, with a decoder warmed
/// on the group and with fresh ones: `(datagrams, prefixes)` checked.
fn truncate_group(g: &Group) -> (usize, usize) {
    // Storage for fresh decoders, reused: `with_storage` resets it.
    let mut tslots = vec![empty_template_slot(); 32];
    let mut tindex = vec![0u32; Storage::index_len(32)];
    let mut dslots = vec![empty_domain_slot(); 2];
    let mut dindex = vec![0u32; Storage::index_len(2)];
    let mut pending = vec![0u8; 1 << 16];
    let mut fresh = |exporter: IpAddr, datagram: &[u8]| {
        let mut d = Decoder::with_storage(
            Config::default(),
            Storage {
                templates: &mut tslots,
                template_index: &mut tindex,
                domains: &mut dslots,
                domain_index: &mut dindex,
                pending: &mut pending,
            },
        );
        count(&mut d, exporter, datagram)
    };
    let mut warm = Decoder::new(Config {
        templates: 256,
        ..Config::default()
    });
    for (src, p) in &g.datagrams {
        warm.decode(*src, p, |_| {}).expect("v9 header");
    }
    let mut prefixes = 0;
    for &i in &g.test {
        let (src, p) = &g.datagrams[i];
        let ctx = format!("{} datagram {i}", g.name);
        let whole_warm = count(&mut warm, *src, p).unwrap();
        let whole_fresh = fresh(*src, p).unwrap();
        let mut last = 0;
        for len in 0..p.len() {
            let prefix = &p[..len];
            if len < 20 {
                assert_eq!(
                    count(&mut warm, *src, prefix),
                    Err(ErrorKind::TruncatedHeader)
                );
                assert_eq!(fresh(*src, prefix), Err(ErrorKind::TruncatedHeader));
                continue;
            }
            let n = count(&mut warm, *src, prefix).unwrap();
            assert!(n <= whole_warm, "{ctx}: {n} records from {len} bytes");
            // Processing is the same up to the cut, so a longer prefix
            // never yields fewer records.
            assert!(
                n >= last,
                "{ctx}: {n} records from {len} bytes, {last} from fewer"
            );
            last = n;
            let n = fresh(*src, prefix).unwrap();
            assert!(
                n <= whole_fresh,
                "{ctx}: {n} fresh records from {len} bytes"
            );
            prefixes += 1;
        }
        // Nothing above changed what the warm decoder knows.
        assert_eq!(count(&mut warm, *src, p), Ok(whole_warm), "{ctx}");
    }
    assert_eq!(
        warm.counters().exporter_restarts,
        0,
        "{}: replaying old headers is not a restart",
        g.name
    );
    (g.test.len(), prefixes)
}

#[test]
fn every_prefix_of_every_corpus_packet() {
    // Groups are independent: spread them over the cores (debug builds are slow).
    let groups = corpus();
    let next = AtomicUsize::new(0);
    let threads = std::thread::available_parallelism().map_or(2, usize::from);
    let (packets, prefixes) = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut done = (0, 0);
                    while let Some(g) = groups.get(next.fetch_add(1, Ordering::Relaxed)) {
                        let (a, b) = truncate_group(g);
                        done = (done.0 + a, done.1 + b);
                    }
                    done
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap())
            .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
    });
    assert_eq!(packets, 114 + 294 + 71 + 104 + 56);
    assert!(prefixes > 500_000, "{prefixes}");
}

// ---------------------------------------------------------------------------
// FlowSet lengths

#[test]
fn impossible_flowset_lengths_keep_earlier_flowsets() {
    let good = [
        flowset(0, &template_record(300, &T300)),
        flowset(
            300,
            &[rec300([10, 0, 0, 1], 1), rec300([10, 0, 0, 2], 2)].concat(),
        ),
    ]
    .concat();
    let bad_at = 20 + good.len();
    for (label, bad) in [
        ("length 0", vec![1, 44, 0, 0, 1, 2, 3, 4]),
        ("length 1", vec![1, 44, 0, 1, 1, 2, 3, 4]),
        ("length 2", vec![1, 44, 0, 2, 1, 2, 3, 4]),
        ("length 3", vec![1, 44, 0, 3, 1, 2, 3, 4]),
        ("past the end", vec![1, 44, 0, 13, 1, 2, 3, 4, 5, 6, 7, 8]),
        ("far past the end", vec![1, 44, 0xff, 0xff, 1, 2, 3, 4]),
    ] {
        let mut d = Decoder::new(small());
        let p = raw(hdr(0, T, 1000), &[&good[..], &bad].concat());
        let (s, seen) = run(&mut d, v4(1), &p);
        assert_eq!(s.records, 2, "{label}: the earlier data FlowSet");
        assert_eq!(seen.len(), 2, "{label}");
        assert_eq!(seen[1].flow.bytes, 2, "{label}");
        assert_eq!(s.errors, 1, "{label}");
        let e = s.first_error.unwrap();
        assert_eq!(e.kind, ErrorKind::FlowSetLength, "{label}");
        assert_eq!(e.offset, bad_at + 2, "{label}: at the length field");
        assert_eq!(
            d.counters().malformed(ErrorKind::FlowSetLength),
            1,
            "{label}"
        );
        assert_eq!(d.counters().malformed_total(), 1, "{label}");
        assert_eq!(d.counters().templates, 1, "{label}");
    }
}

#[test]
fn odd_flowset_length_that_fits_is_accepted() {
    // One record and one byte of padding (length 13), then a FlowSet that
    // starts at an odd offset.
    let mut first = flowset(300, &[rec300([10, 0, 0, 1], 1), vec![0]].concat());
    assert_eq!(first.len(), 13);
    first.extend(flowset(300, &rec300([10, 0, 0, 2], 2)));
    let p = raw(
        hdr(0, T, 1000),
        &[flowset(0, &template_record(300, &T300)), first].concat(),
    );
    let mut d = Decoder::new(small());
    let (s, seen) = run(&mut d, v4(1), &p);
    assert_eq!((s.records, s.errors), (2, 0));
    let bytes: Vec<u64> = seen.iter().map(|r| r.flow.bytes).collect();
    assert_eq!(bytes, [1, 2]);
    assert_eq!(
        seen[0].bytes,
        rec300([10, 0, 0, 1], 1),
        "padding is not part of it"
    );
    assert_eq!(d.counters().malformed_total(), 0);
}

// ---------------------------------------------------------------------------
// Templates

#[test]
fn template_without_fields_is_rejected_and_later_flowsets_decode() {
    let mut d = Decoder::new(small());
    let p = raw(
        hdr(0, T, 1000),
        &[
            flowset(0, &template_record(301, &T300)),
            flowset(0, &template_record(302, &[])),
            flowset(301, &rec300([10, 0, 0, 1], 7)),
        ]
        .concat(),
    );
    let (s, seen) = run(&mut d, v4(1), &p);
    assert_eq!(s.first_error.unwrap().kind, ErrorKind::EmptyTemplate);
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].flow.bytes, 7);
    let p = raw(
        hdr(1, T, 2000),
        &flowset(1, &[options_record(303, &[], &[]), vec![0, 0]].concat()),
    );
    let (s, _) = run(&mut d, v4(1), &p);
    assert_eq!(s.first_error.unwrap().kind, ErrorKind::EmptyTemplate);
    let c = d.counters();
    assert_eq!(c.malformed(ErrorKind::EmptyTemplate), 2);
    assert_eq!((c.templates, c.options_templates), (1, 0));
    assert_eq!(d.template_count(), 1);
}

#[test]
fn more_fields_than_configured_are_rejected() {
    let mut d = Decoder::new(Config {
        max_fields: 8,
        ..small()
    });
    let eight = [f(FieldType::IN_BYTES, 1); 8];
    let nine = [f(FieldType::IN_BYTES, 1); 9];
    let scope = [f(FieldType(1), 4); 5];
    let options = [f(FieldType::SAMPLING_INTERVAL, 4); 4];
    let p = raw(
        hdr(0, T, 1000),
        &[
            flowset(0, &template_record(310, &eight)),
            flowset(0, &template_record(311, &nine)),
            flowset(
                1,
                &[options_record(312, &scope, &options), vec![0, 0]].concat(),
            ),
            flowset(310, &[9u8; 8]),
            flowset(311, &[9u8; 12]),
        ]
        .concat(),
    );
    let (s, seen) = run(&mut d, v4(1), &p);
    assert_eq!(s.errors, 2);
    assert_eq!(s.first_error.unwrap().kind, ErrorKind::TooManyFields);
    let c = d.counters();
    assert_eq!(c.malformed(ErrorKind::TooManyFields), 2);
    assert_eq!(c.templates, 1);
    assert_eq!(seen.len(), 1, "eight fields are fine");
    assert_eq!(seen[0].flow.bytes, 9);
    assert_eq!(c.unknown_template_flowsets, 1, "311 was never cached");
    let key = |template_id| TemplateKey {
        exporter: v4(1),
        source_id: 0,
        template_id,
    };
    assert!(d.template(&key(310)).is_some());
    assert!(d.template(&key(311)).is_none());
    assert!(d.template(&key(312)).is_none());
}

#[test]
fn zero_length_field_occupies_no_bytes() {
    let fields = [
        f(FieldType::IPV4_SRC_ADDR, 4),
        f(FieldType(95), 0),
        f(FieldType::IN_BYTES, 4),
        f(FieldType::L4_DST_PORT, 2),
    ];
    let mut d = Decoder::new(small());
    let p = build(hdr(0, T, 1000), |b| {
        b.template(320, &fields).unwrap();
        b.record(320, &[10, 0, 0, 1, 0, 0, 5, 220, 0, 53]).unwrap();
        b.record(320, &[10, 0, 0, 2, 0, 0, 0, 40, 1, 187]).unwrap();
    });
    let mut got = Vec::new();
    d.decode(v4(1), &p, |r| {
        let fields: Vec<_> = r.fields().map(|x| (x.spec.length, x.value)).collect();
        assert_eq!(fields.len(), 4);
        assert_eq!(fields[1], (0, Value::Bytes(&[])));
        got.push((r.bytes().len(), r.flow().bytes, r.flow().dst_port));
    })
    .unwrap();
    assert_eq!(got, [(10, 1500, 53), (10, 40, 443)]);
    assert_eq!(d.counters().malformed_total(), 0);
}

#[test]
fn all_zero_length_fields_are_rejected() {
    let zeros = [f(FieldType::IN_BYTES, 0), f(FieldType::IN_PKTS, 0)];
    let mut d = Decoder::new(small());
    let p = raw(
        hdr(0, T, 1000),
        &[
            flowset(0, &template_record(330, &zeros)),
            flowset(330, &[1, 2, 3, 4]),
        ]
        .concat(),
    );
    let (s, seen) = run(&mut d, v4(1), &p);
    assert!(seen.is_empty());
    assert_eq!(s.first_error.unwrap().kind, ErrorKind::RecordLength);
    let c = d.counters();
    assert_eq!(c.malformed(ErrorKind::RecordLength), 1);
    assert_eq!(c.templates, 0);
    assert_eq!(d.template_count(), 0);
    assert_eq!(
        c.unknown_template_flowsets, 1,
        "data waits for a usable template"
    );
}

/// L4_SRC_PORT, a variable-length string, L4_DST_PORT.
const TVAR: [FieldSpecifier; 3] = [
    FieldSpecifier::new(FieldType::L4_SRC_PORT, 2),
    FieldSpecifier::new(FieldType::NF_F_USERNAME, VARIABLE_LENGTH),
    FieldSpecifier::new(FieldType::L4_DST_PORT, 2),
];

fn var_records() -> Vec<u8> {
    let mut long = vec![0, 53, 255, 1, 44];
    long.extend([b'a'; 300]);
    long.extend([0, 53]);
    [
        &[0, 80, 4, b'e', b't', b'h', b'0', 1, 187][..],
        &long,
        &[0, 1, 0, 0, 2],
    ]
    .concat()
}

#[test]
fn variable_length_fields() {
    let mut d = Decoder::new(small());
    let p = raw(
        hdr(0, T, 1000),
        &[
            flowset(0, &template_record(340, &TVAR)),
            flowset(340, &[var_records(), vec![0, 0, 0]].concat()),
        ]
        .concat(),
    );
    let mut got = Vec::new();
    let s = d
        .decode(v4(1), &p, |r| {
            let Value::Bytes(name) = r.fields().nth(1).unwrap().value else {
                panic!("a Bytes field");
            };
            let name = name.to_vec();
            let f = r.flow();
            got.push((r.bytes().len(), name, f.src_port, f.dst_port));
        })
        .unwrap();
    assert_eq!((s.records, s.errors), (3, 0), "{:?}", s.first_error);
    assert_eq!(got[0], (9, b"eth0".to_vec(), 80, 443));
    assert_eq!(got[1], (307, vec![b'a'; 300], 53, 53));
    assert_eq!(got[2], (5, Vec::new(), 1, 2));
}

#[test]
fn truncated_variable_length_prefix() {
    let first = [0, 80, 4, b'e', b't', b'h', b'0', 1, 187];
    for (label, bad) in [
        ("1-byte length past the record", &[0, 80, 9, b'x', b'y'][..]),
        ("2-byte length past the record", &[0, 80, 255, 1, 0][..]),
    ] {
        let mut d = Decoder::new(small());
        let p = raw(
            hdr(0, T, 1000),
            &[
                flowset(0, &template_record(340, &TVAR)),
                flowset(340, &[&first[..], bad].concat()),
            ]
            .concat(),
        );
        let (s, seen) = run(&mut d, v4(1), &p);
        assert_eq!(seen.len(), 1, "{label}: the record before it");
        assert_eq!(seen[0].flow.dst_port, 443, "{label}");
        let e = s.first_error.unwrap();
        assert_eq!(e.kind, ErrorKind::VariableLength, "{label}");
        let bad_at = p.len() - bad.len();
        assert!(
            (bad_at..p.len()).contains(&e.offset),
            "{label}: error at {} outside the bad record {bad_at}..{}",
            e.offset,
            p.len()
        );
        assert_eq!(
            d.counters().malformed(ErrorKind::VariableLength),
            1,
            "{label}"
        );
    }
}

// ---------------------------------------------------------------------------
// Data before its template

/// IN_BYTES, FIRST_SWITCHED, LAST_SWITCHED.
const TTIME: [FieldSpecifier; 3] = [
    FieldSpecifier::new(FieldType::IN_BYTES, 4),
    FieldSpecifier::new(FieldType::FIRST_SWITCHED, 4),
    FieldSpecifier::new(FieldType::LAST_SWITCHED, 4),
];

fn rec_time(bytes: u32, first: u32, last: u32) -> Vec<u8> {
    [bytes.to_be_bytes(), first.to_be_bytes(), last.to_be_bytes()].concat()
}

#[test]
fn data_before_template_is_replayed_with_its_own_header_times() {
    let mut d = Decoder::new(small());
    let up = 3_600_000;
    let early = raw(
        hdr(0, T, up),
        &flowset(
            350,
            &[
                rec_time(100, up - 5000, up - 1000),
                rec_time(200, up - 3000, up),
            ]
            .concat(),
        ),
    );
    let (s, seen) = run(&mut d, v4(1), &early);
    assert!(seen.is_empty());
    assert_eq!(s.records, 0);
    let c = d.counters();
    assert_eq!((c.unknown_template_flowsets, c.pending_buffered), (1, 1));
    assert_eq!(d.pending_flowsets(), 1);

    // The template comes a minute later by the exporter's clock, whose
    // uptime advanced one second only: times must come from the header the
    // data arrived with.
    let later = raw(
        hdr(1, T + 60, up + 1000),
        &flowset(0, &template_record(350, &TTIME)),
    );
    let (s, seen) = run(&mut d, v4(1), &later);
    assert_eq!(s.records, 2);
    assert_eq!(seen.len(), 2);
    for r in &seen {
        assert!(r.replayed);
        assert_eq!(r.template_id, 350);
        assert_eq!(
            (r.ctx.unix_secs, r.ctx.sys_uptime, r.ctx.sequence_number),
            (T, up, 0)
        );
    }
    let ms = u64::from(T) * 1000;
    assert_eq!(
        (
            seen[0].flow.bytes,
            seen[0].flow.first_ms,
            seen[0].flow.last_ms
        ),
        (100, ms - 5000, ms - 1000)
    );
    assert_eq!(
        (seen[1].flow.first_ms, seen[1].flow.last_ms),
        (ms - 3000, ms)
    );
    let c = d.counters();
    assert_eq!((c.pending_replayed, c.records), (1, 2));
    assert_eq!(d.pending_flowsets(), 0);

    // From now on the data decodes on arrival.
    let next = raw(
        hdr(2, T + 61, up + 2000),
        &flowset(350, &rec_time(7, up, up)),
    );
    let (_, seen) = run(&mut d, v4(1), &next);
    assert_eq!(seen.len(), 1);
    assert!(!seen[0].replayed);
    assert_eq!(d.counters().pending_buffered, 1);
}

#[test]
fn pending_overflow_drops_the_oldest() {
    let mut d = Decoder::new(Config {
        pending_bytes: 2 * (PENDING_ENTRY_OVERHEAD + 12),
        ..small()
    });
    for (i, id) in [360u16, 361, 362].into_iter().enumerate() {
        let n = u32::try_from(i).unwrap();
        let p = raw(hdr(n, T, 1000 + n), &flowset(id, &rec_time(n + 1, 0, 0)));
        run(&mut d, v4(1), &p);
    }
    let c = d.counters();
    assert_eq!((c.pending_buffered, c.pending_overflow), (3, 1));
    assert_eq!(d.pending_flowsets(), 2);
    // Bigger than the whole buffer: dropped on arrival, nothing else is.
    let big: Vec<u8> = (0..10).flat_map(|_| rec_time(9, 0, 0)).collect();
    run(&mut d, v4(1), &raw(hdr(3, T, 1003), &flowset(363, &big)));
    let c = d.counters();
    assert_eq!((c.pending_buffered, c.pending_overflow), (3, 2));
    assert_eq!(d.pending_flowsets(), 2);
    let templates = [360u16, 361, 362, 363]
        .iter()
        .flat_map(|&id| template_record(id, &TTIME))
        .collect::<Vec<u8>>();
    let (_, seen) = run(
        &mut d,
        v4(1),
        &raw(hdr(4, T, 1004), &flowset(0, &templates)),
    );
    let got: Vec<(u16, u64)> = seen.iter().map(|r| (r.template_id, r.flow.bytes)).collect();
    assert_eq!(got, [(361, 2), (362, 3)]);
    assert_eq!(d.counters().pending_replayed, 2);
}

#[test]
fn pending_flowsets_expire_by_the_newest_clock() {
    let mut d = Decoder::new(Config {
        pending_max_age_secs: 60,
        ..small()
    });
    let up = |secs: u32| (secs - 900) * 1000;
    let at = |seq: u32, secs: u32, source_id: u32| HeaderRepr {
        source_id,
        ..hdr(seq, secs, up(secs))
    };
    run(
        &mut d,
        v4(1),
        &raw(at(0, 1000, 0), &flowset(370, &rec_time(1, 0, 0))),
    );
    assert_eq!(d.pending_flowsets(), 1);
    // An exporter whose clock is behind does not age it, nor turn the
    // clock back.
    run(&mut d, v4(2), &raw(at(0, 900, 0), &[]));
    // Exactly the maximum age, by another domain's clock: still waiting.
    run(&mut d, v4(1), &raw(at(0, 1060, 1), &[]));
    assert_eq!((d.pending_flowsets(), d.counters().pending_expired), (1, 0));
    // Exporter 1 went quiet: the newest clock of anyone expires its data
    // (before, only a later packet of the same domain could).
    run(&mut d, v4(2), &raw(at(1, 1061, 0), &[]));
    assert_eq!((d.pending_flowsets(), d.counters().pending_expired), (0, 1));
    let (_, seen) = run(
        &mut d,
        v4(1),
        &raw(at(3, 1062, 0), &flowset(0, &template_record(370, &TTIME))),
    );
    assert!(seen.is_empty());
    assert_eq!(d.counters().pending_replayed, 0);
}

// ---------------------------------------------------------------------------
// Template keys and exporter state

#[test]
fn templates_are_keyed_by_exporter_and_source_id() {
    let a = [
        f(FieldType::IN_BYTES, 4),
        f(FieldType::L4_SRC_PORT, 2),
        f(FieldType(210), 2),
    ];
    let b = [f(FieldType::L4_SRC_PORT, 2), f(FieldType::IN_BYTES, 8)];
    let rec_a = [0, 0, 3, 232, 0, 80, 0, 0];
    let rec_b = [1, 187, 0, 0, 0, 0, 0, 0, 7, 208];
    let mut d = Decoder::new(small());
    let pa = build(hdr(0, T, 1000), |p| {
        p.template(400, &a).unwrap();
        p.record(400, &rec_a).unwrap();
    });
    let pb = build(hdr(0, T, 1000), |p| {
        p.template(400, &b).unwrap();
        p.record(400, &rec_b).unwrap();
    });
    let flow = |s: &[Seen]| (s.len(), s[0].flow.bytes, s[0].flow.src_port);
    assert_eq!(flow(&run(&mut d, v4(1), &pa).1), (1, 1000, 80));
    assert_eq!(flow(&run(&mut d, v4(2), &pb).1), (1, 2000, 443));
    // A's data still decodes with A's layout after B's template came; the
    // UDP source port is not part of the key (only the address is passed).
    let data_a = build(hdr(1, T, 1001), |p| p.record(400, &rec_a).unwrap());
    assert_eq!(flow(&run(&mut d, v4(1), &data_a).1), (1, 1000, 80));
    assert_eq!(d.template_count(), 2);
    let key = |exporter, source_id| TemplateKey {
        exporter,
        source_id,
        template_id: 400,
    };
    let cached: Vec<FieldSpecifier> = d.template(&key(v4(1), 0)).unwrap().fields().collect();
    assert_eq!(cached, a);
    let cached: Vec<FieldSpecifier> = d.template(&key(v4(2), 0)).unwrap().fields().collect();
    assert_eq!(cached, b);
    // Another Source ID of the same exporter does not share its templates.
    let other = build(
        HeaderRepr {
            source_id: 7,
            ..hdr(0, T, 1000)
        },
        |p| p.record(400, &rec_a).unwrap(),
    );
    let (s, seen) = run(&mut d, v4(1), &other);
    assert!(seen.is_empty());
    assert_eq!(s.records, 0);
    assert_eq!(d.counters().unknown_template_flowsets, 1);
    assert!(d.template(&key(v4(1), 7)).is_none());
    // Nor does the same address in another family.
    let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped());
    assert!(run(&mut d, mapped, &data_a).1.is_empty());
}

#[test]
fn exporter_restart_drops_its_templates() {
    let a = [f(FieldType::IN_BYTES, 4), f(FieldType::L4_SRC_PORT, 2)];
    let b = [f(FieldType::L4_SRC_PORT, 2), f(FieldType::IN_BYTES, 4)];
    let mut d = Decoder::new(small());
    let hours = 10 * 3_600_000;
    for seq in 0..5u32 {
        let p = build(hdr(seq, T + seq, hours + seq * 1000), |p| {
            if seq == 0 {
                p.template(400, &a).unwrap();
            }
            p.record(400, &[0, 0, 3, 232, 0, 80]).unwrap();
        });
        let (_, seen) = run(&mut d, v4(1), &p);
        assert_eq!((seen[0].flow.bytes, seen[0].flow.src_port), (1000, 80));
    }
    // Same template ID, new layout, after a reboot: uptime back by hours,
    // clock forward, sequence from 0.
    let reboot = build(hdr(0, T + 10, 2000), |p| {
        p.record(400, &[1, 187, 0, 0, 7, 208]).unwrap();
    });
    let (_, seen) = run(&mut d, v4(1), &reboot);
    assert!(seen.is_empty(), "not decoded with the stale template");
    let c = d.counters();
    assert_eq!(c.exporter_restarts, 1);
    assert!(c.templates_dropped_on_restart >= 1);
    assert_eq!((c.unknown_template_flowsets, c.pending_buffered), (1, 1));
    assert_eq!(d.template_count(), 0);
    let t = build(hdr(1, T + 11, 3000), |p| p.template(400, &b).unwrap());
    let (_, seen) = run(&mut d, v4(1), &t);
    assert_eq!(seen.len(), 1);
    assert!(seen[0].replayed);
    assert_eq!((seen[0].flow.bytes, seen[0].flow.src_port), (2000, 443));
    assert_eq!(d.counters().sequence_lost, 0);
}

#[test]
fn sequence_loss_and_reordering() {
    let mut d = Decoder::new(small());
    let at = |seq: u32| raw(hdr(seq, T + seq, 100_000 + seq * 1000), &[]);
    for seq in [10, 11, 15] {
        run(&mut d, v4(1), &at(seq));
    }
    assert_eq!(d.counters().sequence_lost, 3, "12, 13 and 14");
    assert_eq!(d.counters().sequence_reordered, 0);
    run(&mut d, v4(1), &at(13));
    let c = d.counters();
    assert_eq!(c.sequence_reordered, 1);
    assert_eq!(c.sequence_lost, 2, "13 was late, not lost");
    assert_eq!(c.exporter_restarts, 0);
    run(&mut d, v4(1), &at(16));
    assert_eq!(d.counters().sequence_lost, 2);
    let (_, stats, _) = d.domains().next().unwrap();
    assert_eq!((stats.sequence_lost, stats.sequence_reordered), (2, 1));
    assert_eq!(stats.packets, 5);
}

// ---------------------------------------------------------------------------
// Template flood

#[test]
fn template_flood_evicts_the_oldest() {
    const EXPORTERS: u32 = 10_000;
    const PER_EXPORTER: u32 = 256;
    const CAPACITY: usize = 4096;
    let fields = [f(FieldType::IN_BYTES, 4), f(FieldType::L4_SRC_PORT, 2)];
    // 256 templates (IDs 256..512) in four packets, shared by every exporter.
    let packets: Vec<Vec<u8>> = (0..4u16)
        .map(|k| {
            build(hdr(u32::from(k), T, 1000 + u32::from(k)), |p| {
                for id in 256 + 64 * k..256 + 64 * (k + 1) {
                    p.template(id, &fields).unwrap();
                }
            })
        })
        .collect();
    let addr = |i: u32| IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
    let mut d = Decoder::new(Config {
        templates: CAPACITY,
        ..Config::default()
    });
    for i in 0..EXPORTERS {
        for p in &packets {
            d.decode(addr(i), p, |_| panic!("no data")).unwrap();
        }
        assert!(d.template_count() <= CAPACITY);
    }
    let total = u64::from(EXPORTERS * PER_EXPORTER);
    let c = d.counters();
    assert_eq!(c.templates, total);
    assert_eq!(c.template_evictions, total - CAPACITY as u64);
    assert_eq!(d.template_count(), CAPACITY);
    assert_eq!(c.malformed_total(), 0);
    // The last 16 exporters' templates are the ones cached.
    let data = |exporter: u32| {
        build(hdr(4, T, 2000), |p| {
            for id in 256..512u16 {
                let mut r = [0u8; 6];
                r[..4].copy_from_slice(&exporter.to_be_bytes());
                r[4..].copy_from_slice(&id.to_be_bytes());
                p.record(id, &r).unwrap();
            }
        })
    };
    let oldest_kept = EXPORTERS - (CAPACITY as u32 / PER_EXPORTER);
    for i in [oldest_kept, EXPORTERS - 1] {
        let (s, seen) = run(&mut d, addr(i), &data(i));
        assert_eq!(s.records, PER_EXPORTER, "exporter {i}");
        for (r, id) in seen.iter().zip(256u16..) {
            assert_eq!(r.flow.exporter, addr(i));
            assert_eq!((r.flow.bytes, r.flow.src_port), (u64::from(i), id));
        }
    }
    let (s, seen) = run(&mut d, addr(oldest_kept - 1), &data(oldest_kept - 1));
    assert!(seen.is_empty());
    assert_eq!(s.records, 0);
    assert_eq!(d.counters().unknown_template_flowsets, 256);
}

// ---------------------------------------------------------------------------
// Random garbage

/// xorshift64*: small, deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn u16(&mut self) -> u16 {
        self.next() as u16
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.below(from.len() as u64) as usize]
    }
}

const TYPES: [u16; 20] = [
    1, 2, 4, 7, 8, 11, 12, 21, 22, 27, 28, 32, 34, 48, 61, 82, 152, 153, 302, 305,
];
const LENGTHS: [u16; 9] = [0, 1, 2, 3, 4, 6, 8, 16, VARIABLE_LENGTH];

fn random_field(rng: &mut Rng) -> FieldSpecifier {
    let t = if rng.chance(90) {
        rng.pick(&TYPES)
    } else {
        rng.u16()
    };
    let len = if rng.chance(95) {
        rng.pick(&LENGTHS)
    } else {
        rng.u16() % 40
    };
    f(FieldType(t), len)
}

fn random_template_id(rng: &mut Rng) -> u16 {
    if rng.chance(3) {
        rng.u16() % 256
    } else {
        256 + rng.u16() % 12
    }
}

fn random_flowset(rng: &mut Rng) -> Vec<u8> {
    let (id, mut body) = match rng.below(10) {
        0..=2 => {
            let mut body = Vec::new();
            for _ in 0..1 + rng.below(3) {
                let n = if rng.chance(5) { 0 } else { 1 + rng.below(20) };
                let fields: Vec<_> = (0..n).map(|_| random_field(rng)).collect();
                body.extend(template_record(random_template_id(rng), &fields));
            }
            (0, body)
        }
        3 => {
            let scope: Vec<_> = (0..rng.below(3)).map(|_| random_field(rng)).collect();
            let fields: Vec<_> = (0..rng.below(6)).map(|_| random_field(rng)).collect();
            let mut body = options_record(random_template_id(rng), &scope, &fields);
            if rng.chance(10) {
                body[3] ^= 1; // scope length not a multiple of 4
            }
            (1, body)
        }
        4 => (2 + rng.u16() % 254, vec![0xab; rng.below(12) as usize]),
        _ => {
            let len = rng.below(120) as usize;
            let body: Vec<u8> = if rng.chance(10) {
                vec![0; len]
            } else {
                (0..len).map(|_| rng.next() as u8).collect()
            };
            (256 + rng.u16() % 12, body)
        }
    };
    if rng.chance(10) {
        body.truncate(rng.below(body.len() as u64 + 1) as usize);
    }
    let mut out = flowset(id, &body);
    if rng.chance(5) {
        out[2..4].copy_from_slice(&rng.u16().to_be_bytes());
    }
    out
}

#[test]
fn random_garbage_keeps_the_counters_consistent() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut d = Decoder::new(Config {
        templates: 48,
        max_fields: 16,
        domains: 8,
        pending_bytes: 16 * 1024,
        pending_max_age_secs: 30,
        ..Config::default()
    });
    let exporters = [
        v4(1),
        v4(2),
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
    ];
    let mut seq = [0u32; 3];
    let (mut flows, mut options, mut errors) = (0u64, 0u64, 0u64);
    let (mut summary_flows, mut summary_options) = (0u64, 0u64);
    for i in 0..20_000u32 {
        let e = rng.below(3) as usize;
        seq[e] = if rng.chance(5) {
            rng.next() as u32
        } else {
            seq[e].wrapping_add(1)
        };
        let secs = T + i / 10 + if rng.chance(2) { 1000 } else { 0 };
        let header = HeaderRepr {
            count: rng.u16(),
            sys_uptime: if rng.chance(3) {
                rng.next() as u32
            } else {
                i * 100
            },
            unix_secs: secs,
            sequence_number: seq[e],
            source_id: rng.below(2) as u32,
        };
        let mut payload = Vec::new();
        for _ in 0..rng.below(6) {
            payload.extend(random_flowset(&mut rng));
        }
        let mut p = raw(header, &payload);
        if rng.chance(5) {
            p.truncate(20 + rng.below(p.len() as u64 - 19) as usize);
        }
        let s = d
            .decode(exporters[e], &p, |r| {
                if r.is_options() {
                    options += 1;
                } else {
                    flows += 1;
                }
                let t = r.template();
                assert!(r.bytes().len() >= t.record_len());
                let fields: Vec<_> = r.fields().collect();
                if !t.is_variable() {
                    assert_eq!(r.bytes().len(), t.record_len());
                    assert_eq!(fields.len(), t.field_count());
                    let sum: usize = fields.iter().map(|x| usize::from(x.spec.length)).sum();
                    assert_eq!(sum, r.bytes().len());
                }
                let flow = r.flow();
                assert_eq!(flow.template_id, r.template_id());
                assert_eq!(flow.exporter, exporters[e]);
            })
            .expect("a valid header");
        assert_eq!(s.first_error.is_some(), s.errors > 0);
        if let Some(err) = s.first_error {
            assert!(
                err.offset <= p.len(),
                "{err} in a {}-byte datagram",
                p.len()
            );
        }
        errors += u64::from(s.errors);
        summary_flows += u64::from(s.records);
        summary_options += u64::from(s.options_records);
        assert!(d.template_count() <= 48);
    }
    let c = *d.counters();
    assert_eq!(c.packets, 20_000);
    assert_eq!(c.rejected_packets, 0);
    assert_eq!((c.records, c.options_records), (flows, options));
    assert_eq!((summary_flows, summary_options), (flows, options));
    assert_eq!(c.malformed_total(), errors);
    // Every unknown-template FlowSet is accounted for exactly once.
    assert_eq!(
        c.unknown_template_flowsets,
        c.pending_replayed + c.pending_expired + c.pending_overflow + d.pending_flowsets() as u64,
        "{c:?}"
    );
    // The generator reached every path.
    assert!(flows > 1000 && options > 10, "{c:?}");
    assert!(c.templates > 1000 && c.options_templates > 100, "{c:?}");
    assert!(
        c.pending_replayed > 10 && c.reserved_flowsets > 100,
        "{c:?}"
    );
    assert!(c.template_evictions > 0, "{c:?}");
    for kind in [
        ErrorKind::FlowSetLength,
        ErrorKind::TruncatedTemplate,
        ErrorKind::TemplateId,
        ErrorKind::EmptyTemplate,
        ErrorKind::TooManyFields,
        ErrorKind::OptionsLength,
        ErrorKind::VariableLength,
    ] {
        assert!(c.malformed(kind) > 0, "{kind:?}: {c:?}");
    }
}

// ---------------------------------------------------------------------------
// Review findings (the reviewer's demo inputs)

/// Data buffered before an exporter restart was replayed with the
/// post-restart template of the same ID (wrong fields); samplers survived.
#[test]
fn restart_drops_pending_data_and_samplers() {
    let mut d = Decoder::new(small());
    let e = v4(1);
    // A sampler, then data for 300 (IN_BYTES, IN_PKTS) without its template.
    let opts = [
        f(FieldType::SAMPLING_INTERVAL, 4),
        f(FieldType::SAMPLING_ALGORITHM, 1),
    ];
    let p = raw(
        hdr(500, T, 5_000_000),
        &[
            flowset(1, &options_record(400, &[f(FieldType(1), 4)], &opts)),
            flowset(400, &[0, 0, 0, 0, 0, 0, 0, 100, 2, 0, 0, 0]),
            flowset(300, &[0, 0, 5, 220, 0, 0, 0, 3]),
        ]
        .concat(),
    );
    run(&mut d, e, &p);
    assert_eq!(d.pending_flowsets(), 1);
    assert_eq!(d.domains().next().unwrap().2.iter().count(), 1);
    // Restart: uptime back, sequence from 0, template 300 = IN_PKTS, IN_BYTES.
    let t = template_record(300, &[f(FieldType::IN_PKTS, 4), f(FieldType::IN_BYTES, 4)]);
    let (s, seen) = run(&mut d, e, &raw(hdr(0, T + 30, 2_000), &flowset(0, &t)));
    assert!(seen.is_empty(), "pre-restart data is not decoded: {seen:?}");
    assert_eq!(s.records, 0);
    let c = d.counters();
    assert_eq!((c.exporter_restarts, c.pending_expired), (1, 1));
    assert_eq!(d.pending_flowsets(), 0);
    assert_eq!(d.domains().next().unwrap().2.iter().count(), 0);
}

/// One unusable template record stopped the rest of its Template FlowSet.
#[test]
fn bad_template_record_does_not_stop_the_flowset() {
    let mut d = Decoder::new(Config {
        max_fields: 4,
        ..small()
    });
    let body = [
        template_record(300, &[f(FieldType::IN_BYTES, 0)]), // record length 0
        template_record(301, &[f(FieldType::IN_BYTES, 4)]),
        template_record(200, &[f(FieldType::IN_BYTES, 4)]), // reserved ID
        template_record(302, &[f(FieldType::IN_PKTS, 4); 5]), // too many
        template_record(303, &[]),                          // no fields
        template_record(304, &[f(FieldType::IN_PKTS, 4)]),
    ]
    .concat();
    let p = raw(
        hdr(0, T, 1000),
        &[
            flowset(0, &body),
            flowset(301, &[0, 0, 0, 9]),
            flowset(304, &[0, 0, 0, 7]),
        ]
        .concat(),
    );
    let (s, seen) = run(&mut d, v4(1), &p);
    assert_eq!((s.templates, s.records, s.errors), (2, 2, 4));
    assert_eq!(s.first_error.unwrap().kind, ErrorKind::RecordLength);
    assert_eq!(seen[0].flow.bytes, 9);
    assert_eq!(seen[1].flow.packets, 7);
    let c = d.counters();
    for kind in [
        ErrorKind::RecordLength,
        ErrorKind::TemplateId,
        ErrorKind::TooManyFields,
        ErrorKind::EmptyTemplate,
    ] {
        assert_eq!(c.malformed(kind), 1, "{kind:?}");
    }
}

/// Replayed records were missing from the domain's counters, and their
/// errors were not counted.
#[test]
fn replayed_records_are_counted_like_the_others() {
    let mut d = Decoder::new(small());
    let t = template_record(300, &[f(FieldType::IN_BYTES, 4)]);
    // Data first (with 4 stray bytes after the records), then its template.
    let p = raw(
        hdr(0, T, 1000),
        &[
            flowset(300, &[0, 0, 5, 220, 0, 0, 0, 1, 9, 9, 9]),
            flowset(0, &t),
        ]
        .concat(),
    );
    let (s, seen) = run(&mut d, v4(1), &p);
    assert_eq!((s.records, seen.len()), (2, 2));
    assert!(seen.iter().all(|r| r.replayed));
    let (_, st, _) = d.domains().next().unwrap();
    assert_eq!(st.records, 2);
    assert_eq!((d.counters().records, st.records), (2, 2));
    // The 3 trailing bytes are padding; now 5 that are not.
    let p = raw(
        hdr(1, T, 1001),
        &[
            flowset(301, &[0, 0, 0, 0, 0, 0, 0, 1, 7, 7, 7, 7, 7]),
            flowset(0, &template_record(301, &[f(FieldType::IN_BYTES, 8)])),
        ]
        .concat(),
    );
    let (s, _) = run(&mut d, v4(1), &p);
    assert_eq!((s.records, s.errors), (1, 1));
    assert_eq!(s.first_error.unwrap().kind, ErrorKind::RecordRemainder);
    assert_eq!(d.counters().malformed(ErrorKind::RecordRemainder), 1);
    assert_eq!(d.domains().next().unwrap().1.records, 3);
}

/// A duplicated packet gave back a loss: 1, 3, 3, 3 → lost 0.
#[test]
fn duplicate_packets_do_not_cancel_losses() {
    let mut d = Decoder::new(small());
    for seq in [1u32, 3, 3, 3] {
        run(&mut d, v4(1), &raw(hdr(seq, T, 1000 + seq), &[]));
    }
    let c = d.counters();
    assert_eq!(
        (c.sequence_lost, c.sequence_reordered, c.sequence_duplicates),
        (1, 0, 2)
    );
    run(&mut d, v4(1), &raw(hdr(2, T, 1002), &[]));
    let c = d.counters();
    assert_eq!((c.sequence_lost, c.sequence_reordered), (0, 1));
}

/// Records of 1 byte: the encoder pads, the decoder read the padding as
/// records.
#[test]
fn one_byte_records_and_padding() {
    let p = build(hdr(0, T, 1000), |p| {
        p.template(300, &[f(FieldType::PROTOCOL, 1)]).unwrap();
        p.record(300, &[6]).unwrap();
    });
    let mut d = Decoder::new(small());
    let (s, seen) = run(&mut d, v4(1), &p);
    assert_eq!((s.header.count, s.records, seen.len()), (2, 1, 1));
    assert_eq!(s.errors, 0);
}

/// Zero bytes in a FlowSet: padding is at most 3 of them (RFC 3954 §5.3),
/// found without scanning the rest of the FlowSet once per record. A
/// FlowSet of 65 000 one-byte records took 1.2 s (quadratic) before; the
/// records before a zero tail are all decoded, in variable-length
/// templates too (all-zero records of 4 bytes or more are records).
#[test]
fn zero_filled_flowsets_decode_in_linear_time() {
    let var = f(FieldType::IF_NAME, VARIABLE_LENGTH);
    // One variable-length field: a record of length 0 is the byte [0].
    let mut body = vec![0u8; 65_000];
    body.extend_from_slice(&[1, 7]);
    let mut payload = flowset(0, &template_record(300, &[var]));
    payload.extend(flowset(300, &body));
    let p = raw(hdr(0, T, 1000), &payload);
    let mut d = Decoder::new(small());
    let (s, seen) = run(&mut d, v4(1), &p);
    assert_eq!((s.records, s.errors), (65_001, 0));
    assert_eq!(seen.last().unwrap().bytes, [1, 7]);

    // All-zero 5-byte records (an empty name, 0 bytes) followed by 3
    // bytes of padding: two records.
    let mut payload = flowset(0, &template_record(301, &[var, f(FieldType::IN_BYTES, 4)]));
    payload.extend(flowset(301, &[0; 13]));
    let p = raw(hdr(1, T, 1000), &payload);
    let (s, _) = run(&mut d, v4(1), &p);
    assert_eq!((s.records, s.errors), (2, 0));

    // A Template FlowSet of 16 000 zero records then a valid template:
    // each zero record is an error, the template is learned.
    let mut body = vec![0u8; 64_000];
    body.extend(template_record(302, &[f(FieldType::IN_BYTES, 4)]));
    let p = raw(hdr(2, T, 1000), &flowset(0, &body));
    let (s, _) = run(&mut d, v4(1), &p);
    assert_eq!(s.templates, 1);
    assert!(s.errors >= 1);
}
