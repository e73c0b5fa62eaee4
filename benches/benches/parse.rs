//! Decoding speed of `netflow9` against `netflow_parser` and against a
//! hand-written floor, in one criterion group so the ratios come from one run.
//!
//! ```text
//! cargo bench -p flower-benches --bench parse -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! Every decoder is built and warmed (templates learned) outside the timed
//! loop, and then decodes the same packets again each iteration, as a
//! collector does in its steady state. The inputs replay cleanly: their
//! headers imply one constant boot time, so the decoder sees late packets,
//! not exporter restarts, and keeps its templates (checked in setup).
//!
//! Results are consumed the way a collector would, not through a
//! `black_box` per record (which would force every variant to reload its
//! state from memory for each record): full flows are stored into a batch,
//! the other variants fold the values they read into a checksum; batch and
//! checksum are `black_box`ed once per packet.
//!
//! Before the timed benches, a counting global allocator reports
//! allocations per packet of each decoder after warm-up; after them, a
//! table of records/s and ratios is printed from criterion's estimates.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::SystemTime;

use criterion::{Criterion, Throughput};
use flower_benches::{synthetic_stream, Family, StreamSpec};
use netflow9::{Config, Decoder, FieldType, Flow};
use netflow_parser::variable_versions::v9::FlowSetBody;
use netflow_parser::{NetflowPacket, NetflowParser};

/// `System`, counting allocations while [`COUNTING`] is set (and only then,
/// so that the timed benches of allocating decoders pay no atomic
/// read-modify-write per allocation).
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
static COUNTING: AtomicBool = AtomicBool::new(false);

fn count() {
    if COUNTING.load(Ordering::Relaxed) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: each method forwards its arguments unchanged to `System`, which
// implements the `GlobalAlloc` contract; the only additions are relaxed
// atomic operations, which neither allocate nor panic.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        System.alloc_zeroed(layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        System.realloc(ptr, layout, new_size)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Exporter address of the synthetic streams.
const EXPORTER: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));

/// Flows kept per packet by the full-`Flow` variants, like a collector
/// batching them for its writer.
const BATCH: usize = 64;

/// One input: `(exporter, datagram)` in order, as one or more exporters.
struct Input {
    /// Datagrams of each exporter (one decoder or parser each).
    exporters: Vec<Vec<(IpAddr, Vec<u8>)>>,
    records: u64,
    bytes: u64,
}

impl Input {
    /// The datagrams of a one-exporter input.
    fn single(&self) -> &[(IpAddr, Vec<u8>)] {
        &self.exporters[0]
    }

    fn packets(&self) -> usize {
        self.exporters.iter().map(Vec::len).sum()
    }

    fn throughput(&self) -> Throughput {
        Throughput::ElementsAndBytes {
            elements: self.records,
            bytes: self.bytes,
        }
    }
}

/// Every record through `netflow9`, each normalized to a `Flow` built in
/// its slot of a batch (`Record::flow_into`). Returns records and the sum
/// of their bytes.
fn netflow9_flows(decoder: &mut Decoder<'_>, datagrams: &[(IpAddr, Vec<u8>)]) -> (u64, u64) {
    let (mut records, mut bytes) = (0u64, 0u64);
    let mut batch = [Flow::default(); BATCH];
    for (exporter, p) in datagrams {
        let mut n = 0;
        let _ = decoder.decode(*exporter, p, |r| {
            let slot = &mut batch[n % BATCH];
            r.flow_into(slot);
            bytes = bytes.wrapping_add(slot.bytes);
            n += 1;
        });
        records += n as u64;
        black_box(&batch);
    }
    (records, bytes)
}

/// [`netflow9_flows`] with `Record::flow`: each flow is returned, then
/// copied into the batch.
fn netflow9_flows_copied(decoder: &mut Decoder<'_>, datagrams: &[(IpAddr, Vec<u8>)]) -> (u64, u64) {
    let (mut records, mut bytes) = (0u64, 0u64);
    let mut batch = [Flow::default(); BATCH];
    for (exporter, p) in datagrams {
        let mut n = 0;
        let _ = decoder.decode(*exporter, p, |r| {
            let f = r.flow();
            bytes = bytes.wrapping_add(f.bytes);
            batch[n % BATCH] = f;
            n += 1;
        });
        records += n as u64;
        black_box(&batch);
    }
    (records, bytes)
}

/// Every record through `netflow9`, reading only addresses, bytes and
/// packets, folded into a checksum.
fn netflow9_addrs_counters(
    decoder: &mut Decoder<'_>,
    datagrams: &[(IpAddr, Vec<u8>)],
) -> (u64, u64) {
    let (mut records, mut sum) = (0u64, 0u64);
    for (exporter, p) in datagrams {
        let _ = decoder.decode(*exporter, p, |r| {
            sum = sum
                .wrapping_add(fold(r.src_addr()) ^ fold(r.dst_addr()))
                .wrapping_add(r.byte_count())
                .wrapping_add(r.packet_count());
            records += 1;
        });
        black_box(sum);
    }
    (records, sum)
}

/// Every data FlowSet through `netflow9`'s per-FlowSet API: the offsets of
/// the addresses, bytes and packets are looked up once per FlowSet, then
/// read from every record (what a collector does when it needs only these).
fn netflow9_sets_addrs_counters(
    decoder: &mut Decoder<'_>,
    datagrams: &[(IpAddr, Vec<u8>)],
) -> (u64, u64) {
    use netflow9::FieldType as T;
    let be32 = |b: &[u8], at: usize| {
        u64::from(u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]))
    };
    let (mut records, mut sum) = (0u64, 0u64);
    for (exporter, p) in datagrams {
        let _ = decoder.decode_sets(*exporter, p, |set| {
            let t = set.template();
            // Once per FlowSet: where the four fields are (4-byte fields here;
            // other widths would go through `wire::read_uint`).
            let at = |f: T| t.offset_of(f).filter(|r| r.len() == 4).map(|r| r.start);
            let (Some(src), Some(dst), Some(b), Some(n)) = (
                at(T::IPV4_SRC_ADDR),
                at(T::IPV4_DST_ADDR),
                at(T::IN_BYTES),
                at(T::IN_PKTS),
            ) else {
                return;
            };
            // Accumulate in locals: the closure's captures are references,
            // which the compiler would store to memory on every record.
            let (mut s, mut k) = (0u64, 0u64);
            let Some(chunks) = set.fixed_records() else {
                return;
            };
            for r in chunks {
                s = s
                    .wrapping_add(be32(r, src) ^ be32(r, dst))
                    .wrapping_add(be32(r, b))
                    .wrapping_add(be32(r, n));
                k += 1;
            }
            sum = sum.wrapping_add(s);
            records += k;
        });
        black_box(sum);
    }
    (records, sum)
}

/// Every record through `netflow9`, reading nothing: what the decoder costs
/// by itself (header, sequence tracking, template cache, framing).
fn netflow9_records_only(decoder: &mut Decoder<'_>, datagrams: &[(IpAddr, Vec<u8>)]) -> u64 {
    let mut records = 0u64;
    for (exporter, p) in datagrams {
        let _ = decoder.decode(*exporter, p, |_| records += 1);
        black_box(records);
    }
    records
}

/// An address folded into a checksum word.
fn fold(a: IpAddr) -> u64 {
    match a {
        IpAddr::V4(a) => u64::from(u32::from(a)),
        IpAddr::V6(a) => {
            let x = u128::from(a);
            (x as u64) ^ ((x >> 64) as u64)
        }
    }
}

/// Every datagram through `netflow_parser`; returns the data and options
/// records it produced.
fn netflow_parser_records(parser: &mut NetflowParser, datagrams: &[(IpAddr, Vec<u8>)]) -> u64 {
    let mut records = 0u64;
    for (_, p) in datagrams {
        for packet in parser.parse_bytes(p).packets {
            if let NetflowPacket::V9(v9) = packet {
                for set in &v9.flowsets {
                    match &set.body {
                        FlowSetBody::Data(d) => records += d.fields.len() as u64,
                        FlowSetBody::OptionsData(d) => records += d.fields.len() as u64,
                        _ => {}
                    }
                }
                black_box(&v9);
            }
        }
    }
    records
}

/// Offsets of the four fields, learned from the first template.
#[derive(Clone, Copy)]
struct Learned {
    template_id: usize,
    record_len: usize,
    src: usize,
    dst: usize,
    bytes: usize,
    packets: usize,
}

/// The floor: learn where IPV4_SRC_ADDR, IPV4_DST_ADDR, IN_BYTES and
/// IN_PKTS (all 4 bytes) are from the first template seen, then read them
/// from every record of every data FlowSet of that template, validating
/// nothing but slice bounds: no exporter state, no template cache, no
/// sequence numbers, no other template or field length.
fn learned_offset_loop(datagrams: &[(IpAddr, Vec<u8>)]) -> (u64, u64) {
    let be16 = |b: &[u8], at: usize| usize::from(u16::from_be_bytes([b[at], b[at + 1]]));
    let be32 = |b: &[u8], at: usize| {
        u64::from(u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]))
    };
    let mut learned: Option<Learned> = None;
    let (mut records, mut sum) = (0u64, 0u64);
    for (_, p) in datagrams {
        let mut pos = 20;
        while pos + 4 <= p.len() {
            let (id, len) = (be16(p, pos), be16(p, pos + 2));
            if len < 4 || pos + len > p.len() {
                break;
            }
            let body = &p[pos + 4..pos + len];
            if id == 0 && learned.is_none() {
                learned = Some(learn(body));
            } else if let Some(l) = learned.filter(|l| l.template_id == id) {
                for r in body.chunks_exact(l.record_len) {
                    sum = sum
                        .wrapping_add(be32(r, l.src) ^ be32(r, l.dst))
                        .wrapping_add(be32(r, l.bytes))
                        .wrapping_add(be32(r, l.packets));
                    records += 1;
                }
            }
            pos += len;
        }
        black_box(sum);
    }
    (records, sum)
}

/// Offsets from the first Template record of a Template FlowSet body.
fn learn(template_set: &[u8]) -> Learned {
    let be16 =
        |at: usize| usize::from(u16::from_be_bytes([template_set[at], template_set[at + 1]]));
    let mut l = Learned {
        template_id: be16(0),
        record_len: 0,
        src: 0,
        dst: 0,
        bytes: 0,
        packets: 0,
    };
    for i in 0..be16(2) {
        let (ty, len) = (be16(4 + 4 * i) as u16, be16(6 + 4 * i));
        match FieldType(ty) {
            FieldType::IPV4_SRC_ADDR => l.src = l.record_len,
            FieldType::IPV4_DST_ADDR => l.dst = l.record_len,
            FieldType::IN_BYTES => l.bytes = l.record_len,
            FieldType::IN_PKTS => l.packets = l.record_len,
            _ => {}
        }
        l.record_len += len;
    }
    l
}

/// Allocations per packet of `f`, which decodes `packets` packets.
fn allocations_per_packet(packets: usize, f: impl FnOnce()) -> f64 {
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    COUNTING.store(true, Ordering::Relaxed);
    f();
    COUNTING.store(false, Ordering::Relaxed);
    let n = ALLOCATIONS.load(Ordering::Relaxed) - before;
    n as f64 / packets as f64
}

/// The corpus captures, each its own exporter.
fn corpus() -> Input {
    let exporters: Vec<_> = testkit::V9_CAPTURES
        .iter()
        .map(|name| testkit::udp_payloads(&testkit::data(&format!("exports/{name}.pcap"))))
        .collect();
    let bytes = exporters
        .iter()
        .flatten()
        .map(|(_, d)| d.len() as u64)
        .sum();
    Input {
        exporters,
        records: 0, // counted by the first decode
        bytes,
    }
}

/// A synthetic stream of one exporter.
fn stream(family: Family) -> Input {
    let s = synthetic_stream(&StreamSpec {
        family,
        ..StreamSpec::default()
    });
    let bytes = s.bytes();
    Input {
        exporters: vec![s.packets.into_iter().map(|p| (EXPORTER, p)).collect()],
        records: s.records,
        bytes,
    }
}

/// Warm decoders and parsers for an input, one per exporter.
struct Decoders {
    netflow9: Vec<Decoder<'static>>,
    netflow_parser: Vec<NetflowParser>,
}

impl Decoders {
    /// Builds and warms them, checking that a second pass decodes every
    /// record again (no restart detected, templates kept) and that both
    /// decoders agree on the record count.
    fn warm(input: &mut Input) -> Decoders {
        let mut d = Decoders {
            netflow9: input
                .exporters
                .iter()
                .map(|_| Decoder::new(Config::default()))
                .collect(),
            netflow_parser: input
                .exporters
                .iter()
                .map(|_| NetflowParser::default())
                .collect(),
        };
        let first = d.flows(input).0;
        let second = d.flows(input).0;
        assert_eq!(first, second, "a replay decodes the same records");
        if input.records == 0 {
            input.records = second;
        }
        assert_eq!(second, input.records);
        for n in &d.netflow9 {
            assert_eq!(n.counters().exporter_restarts, 0);
        }
        d.parsed(input);
        assert_eq!(d.parsed(input), input.records, "netflow_parser agrees");
        d
    }

    fn flows(&mut self, input: &Input) -> (u64, u64) {
        let mut total = (0, 0);
        for (d, e) in self.netflow9.iter_mut().zip(&input.exporters) {
            let (r, b) = netflow9_flows(d, e);
            total = (total.0 + r, total.1 + b);
        }
        total
    }

    fn parsed(&mut self, input: &Input) -> u64 {
        let parsers = self.netflow_parser.iter_mut();
        parsers
            .zip(&input.exporters)
            .map(|(p, e)| netflow_parser_records(p, e))
            .sum()
    }
}

fn parse(c: &mut Criterion) {
    let started = SystemTime::now();
    let mut corpus = corpus();
    let mut v4 = stream(Family::V4);
    let mut v6 = stream(Family::V6);
    let mut corpus_d = Decoders::warm(&mut corpus);
    let mut v4_d = Decoders::warm(&mut v4);
    let mut v6_d = Decoders::warm(&mut v6);
    assert_eq!(
        netflow9_addrs_counters(&mut v4_d.netflow9[0], v4.single()).0,
        v4.records
    );
    assert_eq!(learned_offset_loop(v4.single()).0, v4.records);
    assert_eq!(
        netflow9_sets_addrs_counters(&mut v4_d.netflow9[0], v4.single()),
        netflow9_addrs_counters(&mut v4_d.netflow9[0], v4.single()),
        "both netflow9 readers see the same values"
    );
    assert_eq!(
        netflow9_flows(&mut v4_d.netflow9[0], v4.single()),
        netflow9_flows_copied(&mut v4_d.netflow9[0], v4.single()),
        "flow_into and flow give the same flows"
    );

    for (name, input, d) in [
        ("corpus", &corpus, &mut corpus_d),
        ("IPv4 stream", &v4, &mut v4_d),
        ("IPv6 stream", &v6, &mut v6_d),
    ] {
        let n9 = allocations_per_packet(input.packets(), || {
            d.flows(input);
        });
        let np = allocations_per_packet(input.packets(), || {
            d.parsed(input);
        });
        eprintln!(
            "{name}: {} packets, {} records, {} bytes; allocations per packet: \
             netflow9 {n9:.2}, netflow_parser {np:.2}",
            input.packets(),
            input.records,
            input.bytes
        );
    }

    let mut g = c.benchmark_group("parse");
    g.throughput(corpus.throughput());
    g.bench_function("corpus/netflow9 full Flow", |b| {
        b.iter(|| corpus_d.flows(&corpus));
    });
    g.bench_function("corpus/netflow_parser", |b| {
        b.iter(|| corpus_d.parsed(&corpus));
    });

    g.throughput(v4.throughput());
    let (n9, np) = (&mut v4_d.netflow9[0], &mut v4_d.netflow_parser[0]);
    g.bench_function("ipv4/netflow9 full Flow", |b| {
        b.iter(|| netflow9_flows(n9, v4.single()));
    });
    g.bench_function("ipv4/netflow9 full Flow, returned and copied", |b| {
        b.iter(|| netflow9_flows_copied(n9, v4.single()));
    });
    g.bench_function("ipv4/netflow9 addrs+bytes+packets", |b| {
        b.iter(|| netflow9_sets_addrs_counters(n9, v4.single()));
    });
    g.bench_function("ipv4/netflow9 addrs+bytes+packets per record", |b| {
        b.iter(|| netflow9_addrs_counters(n9, v4.single()));
    });
    g.bench_function("ipv4/netflow9 records only", |b| {
        b.iter(|| netflow9_records_only(n9, v4.single()));
    });
    g.bench_function("ipv4/netflow_parser", |b| {
        b.iter(|| netflow_parser_records(np, v4.single()));
    });
    g.bench_function("ipv4/learned-offset loop", |b| {
        b.iter(|| learned_offset_loop(v4.single()));
    });

    g.throughput(v6.throughput());
    let (n9, np) = (&mut v6_d.netflow9[0], &mut v6_d.netflow_parser[0]);
    g.bench_function("ipv6/netflow9 full Flow", |b| {
        b.iter(|| netflow9_flows(n9, v6.single()));
    });
    g.bench_function("ipv6/netflow_parser", |b| {
        b.iter(|| netflow_parser_records(np, v6.single()));
    });
    g.finish();

    report(
        started,
        &[
            ("corpus", &corpus, &["netflow9 full Flow", "netflow_parser"]),
            (
                "ipv4",
                &v4,
                &[
                    "netflow9 full Flow",
                    "netflow9 full Flow, returned and copied",
                    "netflow9 addrs+bytes+packets",
                    "netflow9 addrs+bytes+packets per record",
                    "netflow9 records only",
                    "netflow_parser",
                    "learned-offset loop",
                ],
            ),
            ("ipv6", &v6, &["netflow9 full Flow", "netflow_parser"]),
        ],
    );
}

/// One benchmark's time per iteration, in nanoseconds, from criterion's
/// files of this run.
#[derive(Clone, Copy)]
struct Timing {
    /// Criterion's estimate (the slope of linear sampling, else the mean).
    estimate: f64,
    /// The fastest of its samples: the least disturbed by other work on
    /// the machine, so ratios of these are the steadier ones.
    fastest: f64,
}

/// The timing of `parse/{id}`, if it ran since `since`.
fn timing(id: &str, since: SystemTime) -> Option<Timing> {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    );
    let dir = target
        .join("criterion/parse")
        .join(id.replace('/', "_"))
        .join("new");
    let read = |name: &str| -> Option<serde_json::Value> {
        let path = dir.join(name);
        if std::fs::metadata(&path).ok()?.modified().ok()? < since {
            return None; // from an earlier run
        }
        serde_json::from_slice(&std::fs::read(path).ok()?).ok()
    };
    let estimates = read("estimates.json")?;
    let estimate = ["slope", "mean"]
        .iter()
        .find_map(|k| estimates.get(k)?.get("point_estimate")?.as_f64())?;
    let sample = read("sample.json")?;
    let column = |k: &str| -> Option<Vec<f64>> {
        sample
            .get(k)?
            .as_array()?
            .iter()
            .map(serde_json::Value::as_f64)
            .collect()
    };
    let fastest = column("times")?
        .iter()
        .zip(column("iters")?)
        .map(|(t, n)| t / n)
        .fold(f64::INFINITY, f64::min);
    Some(Timing { estimate, fastest })
}

/// Prints a markdown table of the run: records/s and MB/s (criterion's
/// estimates), speed relative to `netflow_parser` (higher is faster) and
/// time per record relative to the learned-offset loop (lower is faster;
/// the floor asks for at most 2×), each as "estimate (fastest samples)".
fn report(since: SystemTime, inputs: &[(&str, &Input, &[&str])]) {
    let mut rows = Vec::new();
    for (name, input, variants) in inputs {
        let get = |v: &str| timing(&format!("{name}/{v}"), since);
        let (baseline, floor) = (get("netflow_parser"), get("learned-offset loop"));
        for v in *variants {
            let Some(t) = get(v) else { continue };
            let ns = t.estimate / input.records as f64;
            let mb_s = input.bytes as f64 / input.records as f64 / ns * 1e3;
            let ratio = |a: Option<Timing>, b: Option<Timing>, f: fn(f64, f64) -> f64| {
                a.zip(b).map_or(String::new(), |(a, b)| {
                    format!(
                        "{:.1}× ({:.1}×)",
                        f(a.estimate, b.estimate),
                        f(a.fastest, b.fastest)
                    )
                })
            };
            rows.push(format!(
                "| {name} | {v} | {:.2} M | {mb_s:.0} | {} | {} |",
                1e3 / ns,
                ratio(baseline, Some(t), |a, b| a / b),
                ratio(Some(t), floor, |a, b| a / b),
            ));
        }
    }
    if rows.is_empty() {
        return; // `--test`, or a filter that ran none of them
    }
    eprintln!(
        "\n| input | variant | records/s | MB/s | speed vs netflow_parser | time/record vs loop |"
    );
    eprintln!("|---|---|---:|---:|---:|---:|");
    for r in rows {
        eprintln!("{r}");
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    parse(&mut c);
    c.final_summary();
}
