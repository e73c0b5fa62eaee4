//! The decoder's memory is fixed at construction: a counting global
//! allocator checks that decoding — the whole corpus, every truncation of
//! real packets, a template flood — allocates nothing.
//!
//! Tests run in parallel threads, so allocations are counted per thread and
//! only while the measuring thread asks for it.

// The one `unsafe impl` this crate needs; the workspace denies unsafe code
// (and the library forbids it).
#![allow(unsafe_code)]

mod common;

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use common::{data, json, udp_payloads};
use netflow9::{
    Config, Decoder, FieldSpecifier, FieldType, HeaderRepr, PacketBuilder, Record, Value,
};
use testkit::alloc::allocations;

#[global_allocator]
static ALLOCATOR: testkit::alloc::Counting = testkit::alloc::Counting;

#[test]
fn the_counter_counts() {
    let (v, n) = allocations(|| black_box(vec![1u8; 100]));
    assert_eq!((v.len(), n), (100, 1));
    let (_, n) = allocations(|| black_box(1 + 1));
    assert_eq!(n, 0);
}

/// Every v9 capture and vendor case, each a list of datagrams for one decoder.
fn corpus() -> Vec<Vec<(IpAddr, Vec<u8>)>> {
    let mut groups: Vec<_> = [
        "softflowd-v9",
        "softflowd-v9-ether-ipv6",
        "pmacct-v9",
        "nfreplay-v9",
    ]
    .iter()
    .map(|name| udp_payloads(&data(&format!("exports/{name}.pcap"))))
    .collect();
    let cases = json(&data("logstash/cases.json"));
    for case in cases["cases"].as_array().unwrap() {
        let files = case["files"].as_array().unwrap().iter().map(|f| {
            let bytes = std::fs::read(data(&format!("logstash/{}", f.as_str().unwrap())));
            (IpAddr::V4(Ipv4Addr::LOCALHOST), bytes.unwrap())
        });
        groups.push(files.collect());
    }
    groups
}

fn config() -> Config {
    Config {
        templates: 256,
        domains: 16,
        pending_bytes: 64 * 1024,
        ..Config::default()
    }
}

/// What a collector does with a record: the flow and every field.
fn consume(r: &Record<'_>, sum: &mut u64) {
    let f = black_box(r.flow());
    *sum = sum
        .wrapping_add(f.bytes)
        .wrapping_add(f.packets)
        .wrapping_add(f.first_ms)
        .wrapping_add(u64::from(f.src_port));
    for field in r.fields() {
        *sum = sum.wrapping_add(match black_box(field.value) {
            Value::Unsigned(n) => n,
            Value::Bytes(b) => b.len() as u64,
            Value::Ipv4(a) => u64::from(u32::from(a)),
            Value::Ipv6(a) => u128::from(a) as u64,
            Value::Mac(m) => u64::from(m[5]),
        });
    }
}

/// Decodes every group into its decoder: (records, checksum).
fn pass(decoders: &mut [Decoder<'_>], groups: &[Vec<(IpAddr, Vec<u8>)>]) -> (u64, u64) {
    let (mut records, mut sum) = (0u64, 0u64);
    for (d, group) in decoders.iter_mut().zip(groups) {
        for (src, p) in group {
            d.decode(*src, p, |r| {
                records += 1;
                consume(r, &mut sum);
            })
            .unwrap();
        }
    }
    (records, sum)
}

#[test]
fn decoding_the_corpus_allocates_nothing() {
    let groups = corpus();
    let mut decoders: Vec<_> = groups.iter().map(|_| Decoder::new(config())).collect();
    // Learning templates, buffering data that came first, replaying it.
    let (first, n) = allocations(|| pass(&mut decoders, &groups));
    assert_eq!(n, 0, "first pass");
    // Templates cached: the steady state of a collector.
    let (second, n) = allocations(|| pass(&mut decoders, &groups));
    assert_eq!(n, 0, "second pass");
    assert_eq!(first, second, "same records either way");
    assert!(first.0 > 5000, "{first:?}");
}

#[test]
fn truncated_and_malformed_packets_allocate_nothing() {
    let groups = corpus();
    let mut d = Decoder::new(config());
    let group = &groups[0];
    pass(std::slice::from_mut(&mut d), std::slice::from_ref(group));
    let (errors, n) = allocations(|| {
        let mut errors = 0u64;
        for (src, p) in group.iter().take(8) {
            for len in 0..p.len() {
                let mut sum = 0;
                match d.decode(*src, &p[..len], |r| consume(r, &mut sum)) {
                    Ok(s) => errors += u64::from(s.errors),
                    Err(_) => errors += 1,
                }
            }
        }
        errors
    });
    assert_eq!(n, 0);
    assert!(errors > 1000, "{errors}");
    assert_eq!(d.counters().malformed_total(), errors);
}

#[test]
fn a_template_flood_allocates_nothing() {
    const EXPORTERS: u32 = 2000;
    let fields = [
        FieldSpecifier::new(FieldType::IN_BYTES, 4),
        FieldSpecifier::new(FieldType::L4_SRC_PORT, 2),
    ];
    let mut bufs = vec![[0u8; 1500]; 5];
    let mut lens = [0usize; 5];
    for (k, (buf, len)) in bufs.iter_mut().zip(&mut lens).enumerate() {
        let k16 = k as u16;
        let h = HeaderRepr {
            sequence_number: k as u32,
            sys_uptime: 1000 + k as u32,
            unix_secs: 1_709_294_400,
            ..HeaderRepr::default()
        };
        let mut b = PacketBuilder::new(buf, h).unwrap();
        if k < 4 {
            // 256 templates in four packets.
            for id in 256 + 64 * k16..256 + 64 * (k16 + 1) {
                b.template(id, &fields).unwrap();
            }
        } else {
            // Then data for the first 64 of them.
            for id in 256..320 {
                b.record(id, &[0, 0, 5, 220, 0, 80]).unwrap();
            }
        }
        *len = b.finish().unwrap();
    }
    let mut d = Decoder::new(Config {
        templates: 4096,
        ..Config::default()
    });
    let (records, n) = allocations(|| {
        let mut records = 0u64;
        for i in 0..EXPORTERS {
            let exporter = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
            for (buf, &len) in bufs.iter().zip(&lens) {
                let mut sum = 0;
                d.decode(exporter, &buf[..len], |r| {
                    records += 1;
                    consume(r, &mut sum);
                })
                .unwrap();
            }
        }
        records
    });
    assert_eq!(n, 0);
    assert_eq!(records, u64::from(EXPORTERS) * 64);
    let c = d.counters();
    assert_eq!(c.templates, u64::from(EXPORTERS) * 256);
    assert_eq!(c.template_evictions, c.templates - 4096);
    assert_eq!(c.domain_evictions, u64::from(EXPORTERS) - 1024);
}
