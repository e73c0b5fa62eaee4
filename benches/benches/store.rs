//! The flow store on the benchmark data set: ingest rate and the queries
//! behind the dashboards, against the floors in `benches/README.md`.
//!
//! ```text
//! cargo bench -p flower-benches --bench store -- --warm-up-time 1 --measurement-time 3 --sample-size 10
//! ```
//!
//! The data set is `SynthConfig::benchmark()`: 10 M flows over 24 h from 5
//! exporters, 50 000 Zipf hosts, long flows spanning many minutes. It is
//! stored once per run in a temporary directory (with the 5-minute and
//! hourly tiers built, as `flowerd` does in the background), outside every
//! timed loop; the ingest benchmarks write fresh stores of their own.
//! Before the timed loops the 24 h top list is checked against a brute-force
//! sum over the generated flows, and the network-map rollup against a raw
//! scan.

use std::collections::HashMap;
use std::hint::black_box;
use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use criterion::{Criterion, Throughput};
use flowstore::filter::Filter;
use flowstore::synth::{Synth, SynthConfig, BENCHMARK_START_MS};
use flowstore::{
    Dimension, FlowsQuery, GroupBy, Metric, Network, Order, SeriesQuery, Store, StoreConfig,
    TimeRange, TopQuery,
};
use netflow9::Flow;

/// Flows per `append`, as the floors specify.
const BATCH: usize = 10_000;
/// Flows appended per ingest iteration (into a fresh store).
const INGEST_FLOWS: usize = 1_000_000;
/// Unless run as a benchmark (`cargo bench` passes `--bench`): under
/// `cargo test --benches` or `-- --test`, a smoke test, everything is ten
/// times smaller.
const SMOKE_SCALE: u64 = 10;
const HOUR_MS: u64 = 3_600_000;

/// The benchmark store, built once.
struct Dataset {
    _dir: tempfile::TempDir,
    store: Store,
    /// Exact bytes per source address over the 24 h (every flow lies
    /// inside the window, so a flow's pro-rated shares add up to it).
    src_bytes: HashMap<IpAddr, u64>,
    flows: u64,
}

/// The data set: the benchmark one, or a tenth of it for a smoke test.
fn config(smoke: bool) -> SynthConfig {
    let full = SynthConfig::benchmark();
    if smoke {
        SynthConfig {
            flows: full.flows / SMOKE_SCALE,
            ..full
        }
    } else {
        full
    }
}

fn build(cfg: SynthConfig) -> Dataset {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(
        dir.path(),
        StoreConfig {
            // Building the data set is not what is measured.
            sync: false,
            ..StoreConfig::default()
        },
    )
    .expect("open store");
    let mut synth = Synth::new(cfg);
    let mut batch = vec![Flow::default(); BATCH];
    let mut src_bytes: HashMap<IpAddr, u64> = HashMap::new();
    let mut flows = 0;
    let started = Instant::now();
    {
        let mut w = store.writer().expect("writer");
        loop {
            let n = synth.fill(&mut batch);
            if n == 0 {
                break;
            }
            for f in &batch[..n] {
                *src_bytes.entry(f.src_addr).or_default() += f.bytes;
            }
            w.append(&batch[..n]).expect("append");
            flows += n as u64;
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        w.maintain(now, true).expect("maintain");
    }
    eprintln!(
        "store: {flows} flows stored in {:.1} s, {} bytes on disk",
        started.elapsed().as_secs_f64(),
        store.disk_bytes().unwrap_or(0)
    );
    Dataset {
        _dir: dir,
        store,
        src_bytes,
        flows,
    }
}

fn day() -> TimeRange {
    TimeRange::new(BENCHMARK_START_MS, BENCHMARK_START_MS + 24 * HOUR_MS).expect("range")
}

/// An hour in the middle of the day.
fn hour() -> TimeRange {
    let from = BENCHMARK_START_MS + 12 * HOUR_MS;
    TimeRange::new(from, from + HOUR_MS).expect("range")
}

fn net(name: &str, cidrs: &[&str]) -> Network {
    Network {
        name: name.to_string(),
        cidrs: cidrs.iter().map(|c| c.parse().expect("cidr")).collect(),
    }
}

/// Twenty named networks over the synthetic address plan: internal `/24`s
/// grouped by `/17`…`/24`, IPv6 LAN `/57`…`/64`, resolvers, NTP, the
/// beacon destinations and the external peers in `/11`…`/24` and IPv6
/// `/24`…`/32` pieces; traffic outside them all is "other".
fn networks() -> Vec<Network> {
    vec![
        net("lan-a", &["10.16.0.0/18", "2001:db8:1::/58"]),
        net("lan-b", &["10.16.64.0/18", "2001:db8:1:40::/58"]),
        net("lan-c", &["10.16.128.0/17", "2001:db8:1:80::/57"]),
        net("servers", &["10.16.5.0/24", "2001:db8:1:5::/64"]),
        net("lab", &["10.16.200.0/22"]),
        net("beacon-lan", &["10.10.0.0/16"]),
        net("dns", &["203.0.113.0/24", "3fff:0:0:53::/64"]),
        net("ntp", &["198.51.100.0/24", "3fff:0:0:123::/64"]),
        net("bench-net", &["198.18.0.0/15"]),
        net("cgnat-64", &["100.64.0.0/16"]),
        net(
            "peers-65-71",
            &["100.65.0.0/16", "100.66.0.0/15", "100.68.0.0/14"],
        ),
        net("peers-72", &["100.72.0.0/13"]),
        net("peers-80", &["100.80.0.0/12"]),
        net("peers-96", &["100.96.0.0/11"]),
        net("peer-100-7", &["100.100.7.0/24"]),
        net("v6-peers-a", &["3fff:100::/24"]),
        net("v6-peers-b", &["3fff:120::/27"]),
        net("v6-peer-x", &["3fff:101::/32"]),
        net("ula", &["fc00::/7"]),
        net("rfc1918", &["172.16.0.0/12", "192.168.0.0/16"]),
    ]
}

fn top_src(range: TimeRange) -> TopQuery {
    TopQuery {
        range,
        by: GroupBy::Dim(Dimension::SrcAddr),
        metric: Metric::Bytes,
        n: 10,
        filter: Filter::all(),
        raw: true,
    }
}

/// The 24 h top list equals the brute-force one, and the map read from its
/// rollup equals the map from a raw scan.
fn check(d: &Dataset) {
    let top = d.store.top(&top_src(day())).expect("top");
    assert!(top.exact, "24 h top-10 must be exact");
    let mut truth: Vec<(IpAddr, u64)> = d.src_bytes.iter().map(|(a, b)| (*a, *b)).collect();
    truth.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    for (row, (addr, bytes)) in top.rows.iter().zip(&truth) {
        assert_eq!(row.group, flowstore::Group::Addr(*addr));
        assert_eq!(row.agg.bytes, *bytes, "{addr}");
    }
    assert_eq!(top.rows.len(), 10);
    let total: u64 = top.rows.iter().map(|r| r.agg.bytes).sum::<u64>() + top.other.bytes;
    assert_eq!(total, d.src_bytes.values().sum::<u64>());
    eprintln!(
        "top10_src_24h: exact, equal to brute force over {} flows ({} sources)",
        d.flows,
        d.src_bytes.len()
    );
    // `bytes >= 0` matches everything but is a filter: a raw scan.
    let nets = networks();
    let rolled = d.store.matrix(day(), &nets, &Filter::all()).expect("map");
    let raw = d
        .store
        .matrix(day(), &nets, &Filter::parse("bytes >= 0").expect("filter"))
        .expect("map");
    assert_eq!(rolled, raw, "map from the rollup = map from raw flows");
    eprintln!(
        "matrix_24h_20_networks: {} links, equal to a raw scan",
        rolled.links.len()
    );
}

fn ingest(c: &mut Criterion, flows: &[Flow]) {
    let mut g = c.benchmark_group("store");
    g.throughput(Throughput::Elements(flows.len() as u64));
    for (name, sync) in [("ingest", true), ("ingest_nosync", false)] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    let dir = tempfile::tempdir().expect("temp dir");
                    let store = Store::open(
                        dir.path(),
                        StoreConfig {
                            sync,
                            ..StoreConfig::default()
                        },
                    )
                    .expect("open store");
                    let mut w = store.writer().expect("writer");
                    let now = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .expect("clock")
                        .as_secs();
                    let started = Instant::now();
                    let mut hour = None;
                    for batch in flows.chunks(BATCH) {
                        black_box(w.append(batch).expect("append"));
                        // Every tier included: the 5-minute and hourly
                        // rollups are built by maintenance, which flowerd
                        // runs every minute; here after every hour of data.
                        let h = batch.last().map(|f| f.last_ms / HOUR_MS);
                        if hour.is_some() && h != hour {
                            w.maintain(now, false).expect("maintain");
                        }
                        hour = h;
                    }
                    // Rollups included: written before the clock stops.
                    w.maintain(now, true).expect("maintain");
                    w.flush().expect("flush");
                    spent += started.elapsed();
                }
                spent
            });
        });
    }
    g.finish();
}

fn queries(c: &mut Criterion, d: &Dataset, cfg: SynthConfig) {
    let store = &d.store;
    let synth = Synth::new(cfg);
    let mut g = c.benchmark_group("store");
    g.bench_function("series_24h_5min_by_protocol", |b| {
        let q = SeriesQuery {
            range: day(),
            step_secs: 300,
            by: GroupBy::Dim(Dimension::Protocol),
            metric: Metric::Bytes,
            filter: Filter::all(),
            top: 10,
            raw: true,
        };
        b.iter(|| black_box(store.series(&q).expect("series")));
    });
    g.bench_function("top10_src_1h", |b| {
        let q = top_src(hour());
        b.iter(|| black_box(store.top(&q).expect("top")));
    });
    g.bench_function("top10_src_24h", |b| {
        let q = top_src(day());
        b.iter(|| black_box(store.top(&q).expect("top")));
    });
    // A host of middling popularity (Zipf rank 500), the busiest, a rare
    // one (fewer than 100 flows: the whole day is read), and an address
    // that is nowhere (every block's Bloom filter says no).
    let rare = synth.host(20_000).expect("host").v4;
    for (name, host, rows) in [
        (
            "flows_page_host_24h",
            synth.host(500).expect("host").v4,
            Some(100),
        ),
        (
            "flows_page_top_host_24h",
            synth.host(0).expect("host").v4,
            Some(100),
        ),
        ("flows_page_rare_host_24h", rare, None),
        (
            "flows_page_absent_host_24h",
            "192.0.2.254".parse().expect("addr"),
            Some(0),
        ),
    ] {
        let q = FlowsQuery {
            range: day(),
            filter: Filter::parse(&format!("host {host}")).expect("filter"),
            order: Order::TimeDesc,
            limit: 100,
            cursor: None,
        };
        let got = store.flows(&q).expect("flows").flows.len();
        match rows {
            Some(n) => assert_eq!(got, n, "{host}"),
            None => assert!((1..100).contains(&got), "{host}: {got} flows"),
        }
        g.bench_function(name, |b| {
            b.iter(|| black_box(store.flows(&q).expect("flows")));
        });
    }
    g.bench_function("matrix_24h_20_networks", |b| {
        let nets = networks();
        b.iter(|| black_box(store.matrix(day(), &nets, &Filter::all()).expect("map")));
    });
    g.finish();
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(10)
        .configure_from_args();
    let args: Vec<String> = std::env::args().collect();
    let smoke = args.iter().any(|a| a == "--test") || !args.iter().any(|a| a == "--bench");
    let cfg = config(smoke);
    // The ingest benchmarks append the first million flows of the data set.
    let n = if smoke {
        INGEST_FLOWS / SMOKE_SCALE as usize
    } else {
        INGEST_FLOWS
    };
    let mut flows = vec![Flow::default(); n];
    Synth::new(SynthConfig::benchmark()).fill(&mut flows);
    ingest(&mut c, &flows);
    drop(flows);
    let d = build(cfg);
    check(&d);
    queries(&mut c, &d, cfg);
    c.final_summary();
}
