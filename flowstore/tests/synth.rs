//! Properties of the synthetic generator that tests, benchmarks and the
//! beacon detector rely on.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::OnceLock;
use std::time::Instant;

use flowstore::synth::{
    Synth, SynthConfig, BEACONS, BEACON_AS, BEACON_BYTES, BEACON_JITTER_MS, BEACON_PERIOD_MS,
    BEACON_PREFIXES, BENCHMARK_START_MS,
};
use netflow9::Flow;

const N: u64 = 200_000;

/// One hour of the benchmark mix, generated once for all tests.
fn sample() -> &'static [Flow] {
    static FLOWS: OnceLock<Vec<Flow>> = OnceLock::new();
    FLOWS.get_or_init(|| Synth::new(SynthConfig::small(N)).collect())
}

fn share(flows: &[Flow], f: impl Fn(&Flow) -> bool) -> f64 {
    flows.iter().filter(|x| f(x)).count() as f64 / flows.len() as f64
}

fn v4(a: IpAddr) -> Option<Ipv4Addr> {
    match a {
        IpAddr::V4(a) => Some(a),
        IpAddr::V6(_) => None,
    }
}

fn slash16(a: IpAddr) -> Option<[u8; 2]> {
    v4(a).map(|a| [a.octets()[0], a.octets()[1]])
}

fn is_inside(a: IpAddr) -> bool {
    match a {
        IpAddr::V4(a) => a.octets()[0] == 10,
        IpAddr::V6(a) => a.segments()[..3] == [0x2001, 0xdb8, 1],
    }
}

/// FNV-1a over the fields, stable across Rust versions (unlike `Hash`).
fn fingerprint(flows: &[Flow]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325_u64;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    };
    let ip = |a: Option<IpAddr>| match a {
        Some(IpAddr::V4(a)) => a.to_ipv6_mapped().octets(),
        Some(IpAddr::V6(a)) => a.octets(),
        None => [0xff; 16],
    };
    for f in flows {
        for a in [
            Some(f.exporter),
            Some(f.src_addr),
            Some(f.dst_addr),
            f.next_hop,
            f.bgp_next_hop,
        ] {
            eat(&ip(a));
        }
        for v in [
            u64::from(f.source_id),
            u64::from(f.template_id),
            u64::from(f.src_port),
            u64::from(f.dst_port),
            u64::from(f.protocol),
            u64::from(f.tcp_flags),
            u64::from(f.tos),
            u64::from(f.input_if),
            u64::from(f.output_if),
            u64::from(f.src_as),
            u64::from(f.dst_as),
            u64::from(f.src_mask),
            u64::from(f.dst_mask),
            f.direction.map_or(u64::MAX, u64::from),
            f.bytes,
            f.packets,
            f.out_bytes,
            f.out_packets,
            f.first_ms,
            f.last_ms,
            u64::from(f.sampling_interval),
        ] {
            eat(&v.to_le_bytes());
        }
    }
    h
}

#[test]
fn same_seed_same_flows_other_seed_other_flows() {
    let a: Vec<Flow> = Synth::new(SynthConfig::small(20_000)).collect();
    let b: Vec<Flow> = Synth::new(SynthConfig::small(20_000)).collect();
    assert_eq!(a, b);
    let c: Vec<Flow> = Synth::new(SynthConfig {
        seed: 2,
        ..SynthConfig::small(20_000)
    })
    .collect();
    assert_ne!(a, c);
    let differing = a.iter().zip(&c).filter(|(x, y)| x != y).count();
    assert!(differing > 19_000, "{differing}");
}

/// Pins the generator's output. Benchmarks and stored test data depend on
/// it: if a change to the model is deliberate, update the value (and say so
/// in the change), otherwise find what moved.
#[test]
fn output_is_pinned() {
    let flows: Vec<Flow> = Synth::new(SynthConfig::small(10_000)).collect();
    assert_eq!(fingerprint(&flows), 7_741_214_325_310_839_329);
}

#[test]
fn exact_count_len_and_fill() {
    for flows in [0, 1, 2, 3, 719, 720, 10_001] {
        let s = Synth::new(SynthConfig::small(flows));
        assert_eq!(s.len() as u64, flows);
        assert_eq!(s.count() as u64, flows);
    }
    let mut s = Synth::new(SynthConfig::small(10_001));
    let mut buf = [Flow::default(); 1000];
    let mut batched = Vec::new();
    loop {
        let n = s.fill(&mut buf);
        batched.extend_from_slice(&buf[..n]);
        assert_eq!(s.len(), 10_001 - batched.len());
        if n < buf.len() {
            break;
        }
    }
    assert_eq!(batched.len(), 10_001);
    assert_eq!(s.fill(&mut buf), 0);
    assert_eq!(s.next(), None);
    assert_eq!(
        batched,
        Synth::new(SynthConfig::small(10_001)).collect::<Vec<_>>()
    );
}

#[test]
fn last_ms_never_decreases() {
    let flows = sample();
    for (i, w) in flows.windows(2).enumerate() {
        assert!(
            w[0].last_ms <= w[1].last_ms,
            "flow {i}: {:?} then {:?}",
            w[0],
            w[1]
        );
    }
    // Without beacons too, and with a window shorter than the flow count.
    let cfg = SynthConfig {
        beacons: false,
        duration_ms: 1_000,
        ..SynthConfig::small(20_000)
    };
    let flows: Vec<Flow> = Synth::new(cfg).collect();
    assert!(flows.windows(2).all(|w| w[0].last_ms <= w[1].last_ms));
}

#[test]
fn every_flow_inside_the_window() {
    let cfg = SynthConfig::small(N);
    let end = cfg.start_ms + cfg.duration_ms;
    for f in sample() {
        assert!(
            cfg.start_ms <= f.first_ms && f.first_ms <= f.last_ms && f.last_ms < end,
            "{f:?}"
        );
    }
    // Evenly spread: each of the 60 minutes holds about 1/60 of the flows.
    let mut per_minute = [0u64; 60];
    for f in sample() {
        per_minute[((f.last_ms - cfg.start_ms) / 60_000) as usize] += 1;
    }
    for (m, &n) in per_minute.iter().enumerate() {
        assert!(n.abs_diff(N / 60) <= 20, "minute {m}: {n}");
    }
    // A zero-length window puts everything at the start.
    let cfg = SynthConfig {
        duration_ms: 0,
        ..SynthConfig::small(1_000)
    };
    assert!(Synth::new(cfg).all(|f| f.first_ms == cfg.start_ms && f.last_ms == cfg.start_ms));
}

#[test]
fn host_popularity_is_zipf() {
    let cfg = SynthConfig::small(N);
    let synth = Synth::new(cfg);
    let h: f64 = (1..=cfg.hosts)
        .map(|k| f64::from(k).powf(-cfg.zipf_exponent))
        .sum();
    let involves = |rank: u32| {
        let host = synth.host(rank).unwrap();
        let mine = [IpAddr::V4(host.v4), IpAddr::V6(host.v6)];
        share(sample(), |f| {
            mine.contains(&f.src_addr) || mine.contains(&f.dst_addr)
        })
    };
    // Each conversation draws one internal host, east–west ones (~10 %) a
    // second one.
    for rank in [0, 1, 4] {
        let p = f64::from(rank + 1).powf(-cfg.zipf_exponent) / h;
        let got = involves(rank);
        assert!(got > 0.9 * p && got < 1.3 * p, "rank {rank}: {got} vs {p}");
    }
    assert!(involves(0) > 0.1, "the busiest host is a heavy hitter");
    // The tail is thin but there: many distinct inside addresses.
    let inside: HashSet<IpAddr> = sample()
        .iter()
        .flat_map(|f| [f.src_addr, f.dst_addr])
        .filter(|&a| is_inside(a))
        .collect();
    assert!(
        inside.len() > 10_000 && inside.len() < 50_000 * 2,
        "{}",
        inside.len()
    );
    // Hosts stay with their exporter (east–west flows are exported by the
    // client's).
    let host = synth.host(0).unwrap();
    let to_outside = |f: &&Flow| f.src_addr == IpAddr::V4(host.v4) && !is_inside(f.dst_addr);
    for f in sample().iter().filter(to_outside) {
        assert_eq!(f.exporter, IpAddr::V4(host.exporter));
    }
}

#[test]
fn protocol_mix() {
    let flows = sample();
    let tcp = share(flows, |f| f.protocol == 6);
    let udp = share(flows, |f| f.protocol == 17);
    let icmp = share(flows, |f| f.protocol == 1 || f.protocol == 58);
    let other = share(flows, |f| ![1, 6, 17, 58].contains(&f.protocol));
    assert!((tcp - 0.75).abs() < 0.015, "tcp {tcp}");
    assert!((udp - 0.22).abs() < 0.015, "udp {udp}");
    assert!((icmp - 0.02).abs() < 0.005, "icmp {icmp}");
    assert!((other - 0.01).abs() < 0.004, "other {other}");

    let dst = |proto: u8, port: u16| share(flows, |f| f.protocol == proto && f.dst_port == port);
    let https = dst(6, 443);
    assert!(https > 0.18 && https < 0.26, "https requests {https}");
    for (proto, port, min) in [
        (6, 80, 0.03),
        (17, 53, 0.04),
        (17, 443, 0.03),
        (17, 123, 0.003),
        (6, 22, 0.005),
        (6, 25, 0.005),
        (6, 3389, 0.005),
        (6, 8080, 0.01),
    ] {
        let s = dst(proto, port);
        assert!(s > min && s < https, "{proto}/{port}: {s}");
    }
    // Clients use the Linux ephemeral range, both ways.
    let ephemeral = 32_768..=60_999;
    for f in flows.iter().filter(|f| f.protocol == 6 || f.protocol == 17) {
        assert!(
            ephemeral.contains(&f.src_port) || ephemeral.contains(&f.dst_port),
            "{f:?}"
        );
    }
}

#[test]
fn icmp_uses_the_type_code_convention() {
    let icmp: Vec<&Flow> = sample()
        .iter()
        .filter(|f| f.protocol == 1 || f.protocol == 58)
        .collect();
    assert!(icmp.len() > 1000);
    for f in &icmp {
        assert_eq!(f.src_port, 0);
        assert_eq!(f.tcp_flags, 0);
        let allowed: &[u16] = if f.protocol == 1 {
            &[0x0800, 0x0000, 0x0303, 0x0301, 0x0b00]
        } else {
            &[0x8000, 0x8100, 0x0104, 0x0103, 0x0300]
        };
        assert!(allowed.contains(&f.dst_port), "{f:?}");
        assert_eq!(f.protocol == 58, f.src_addr.is_ipv6());
    }
    let requests = icmp.iter().filter(|f| f.dst_port == 0x0800).count();
    let replies = icmp
        .iter()
        .filter(|f| f.protocol == 1 && f.dst_port == 0)
        .count();
    assert!(requests > 0 && requests.abs_diff(replies) <= 1);
}

#[test]
fn ipv6_share_and_templates() {
    let flows = sample();
    let v6 = share(flows, |f| f.src_addr.is_ipv6());
    assert!((v6 - 0.20).abs() < 0.015, "ipv6 {v6}");
    for f in flows {
        assert_eq!(f.src_addr.is_ipv6(), f.dst_addr.is_ipv6());
        assert_eq!(f.template_id, if f.src_addr.is_ipv6() { 257 } else { 256 });
        assert!(is_inside(f.src_addr) || is_inside(f.dst_addr), "{f:?}");
    }
}

#[test]
fn exporters_interfaces_and_routing_fields() {
    let mut exporters = BTreeMap::new();
    let mut ifaces: HashMap<IpAddr, HashSet<u32>> = HashMap::new();
    let mut as_of_16: HashMap<[u8; 2], u32> = HashMap::new();
    for f in sample() {
        let IpAddr::V4(e) = f.exporter else {
            panic!("{f:?}")
        };
        let [192, 0, 2, last] = e.octets() else {
            panic!("{f:?}")
        };
        assert!((1..=5).contains(&last));
        assert_eq!(f.source_id, u32::from(last) - 1);
        *exporters.entry(last).or_insert(0u64) += 1;
        let set = ifaces.entry(f.exporter).or_default();
        set.insert(f.input_if);
        set.insert(f.output_if);
        assert_eq!((f.direction, f.sampling_interval), (Some(0), 1));
        assert_eq!((f.out_bytes, f.out_packets), (0, 0));
        assert!(f.next_hop.is_some() && f.bgp_next_hop.is_some());
        for (addr, asn, mask) in [
            (f.src_addr, f.src_as, f.src_mask),
            (f.dst_addr, f.dst_as, f.dst_mask),
        ] {
            if is_inside(addr) {
                assert_eq!((asn, mask), (0, if addr.is_ipv6() { 64 } else { 24 }));
            } else {
                assert!(asn != 0 && mask != 0, "{f:?}");
                if let Some(p) = slash16(addr) {
                    assert_eq!(*as_of_16.entry(p).or_insert(asn), asn, "one AS per /16");
                }
            }
        }
    }
    assert_eq!(exporters.len(), 5);
    assert!(exporters.values().all(|&n| n > N / 50), "{exporters:?}");
    for (e, set) in ifaces {
        assert!(set.len() <= 6 && set.contains(&100), "{e}: {set:?}");
    }
    assert!(
        as_of_16.len() > 40,
        "external traffic spreads over many /16s"
    );
}

#[test]
fn counters_and_flags_are_plausible() {
    for f in sample() {
        assert!(f.packets >= 1, "{f:?}");
        let avg = f.bytes / f.packets;
        assert!((40..=1500).contains(&avg), "{f:?}");
        if f.protocol == 6 {
            assert!(
                [0x1b, 0x1a, 0x1e, 0x02, 0x14, 0x18].contains(&f.tcp_flags),
                "{:#x}",
                f.tcp_flags
            );
        } else {
            assert_eq!(f.tcp_flags, 0);
        }
    }
    // Downloads dominate: replies from the outside carry most web bytes.
    let web = |inbound: bool| -> u64 {
        sample()
            .iter()
            .filter(|f| {
                f.protocol == 6
                    && (f.src_port == 443) == inbound
                    && (f.dst_port == 443 || f.src_port == 443)
            })
            .map(|f| f.bytes)
            .sum()
    };
    assert!(web(true) > 3 * web(false));
}

#[test]
fn long_flows_span_buckets() {
    let long: Vec<&Flow> = sample()
        .iter()
        .filter(|f| f.duration_ms() >= 120_000)
        .collect();
    let share = long.len() as f64 / N as f64;
    // 20 ‰ are drawn 2–60 min long; those ending early in the hour are
    // clipped at its start.
    assert!(share > 0.008 && share < 0.021, "{share}");
    let spanning = long
        .iter()
        .filter(|f| f.last_ms / 60_000 - f.first_ms / 60_000 >= 10)
        .count();
    assert!(spanning > long.len() / 2);
    assert!(long.iter().any(|f| f.duration_ms() > 50 * 60_000));
    // Short flows stay under 30 s.
    let short = share_of(|f| f.duration_ms() <= 30_000);
    assert!(short > 0.97, "{short}");
}

fn share_of(f: impl Fn(&Flow) -> bool) -> f64 {
    share(sample(), f)
}

#[test]
fn beacons_every_minute_to_three_slash16s() {
    let cfg = SynthConfig::small(N);
    let synth = Synth::new(cfg);
    assert_eq!(synth.beacons(), &BEACONS[..]);
    assert_eq!(synth.beacon_flows(), 3 * 2 * 60);
    let prefixes: Vec<[u8; 2]> = BEACON_PREFIXES
        .iter()
        .map(|p| [p.octets()[0], p.octets()[1]])
        .collect();

    // Only beacons visit the beacon /16s.
    let to_c2: Vec<&Flow> = sample()
        .iter()
        .filter(|f| slash16(f.dst_addr).is_some_and(|p| prefixes.contains(&p)))
        .collect();
    let from_c2 = sample()
        .iter()
        .filter(|f| slash16(f.src_addr).is_some_and(|p| prefixes.contains(&p)))
        .count();
    assert_eq!((to_c2.len(), from_c2), (180, 180));

    for (i, b) in BEACONS.iter().enumerate() {
        let uploads: Vec<&Flow> = to_c2
            .iter()
            .copied()
            .filter(|f| f.src_addr == IpAddr::V4(b.source))
            .collect();
        assert_eq!(uploads.len(), 60, "source {i}");
        for (j, f) in uploads.iter().enumerate() {
            let nominal = cfg.start_ms + b.phase_ms + j as u64 * BEACON_PERIOD_MS;
            assert!(
                f.first_ms.abs_diff(nominal) <= BEACON_JITTER_MS,
                "tick {j}: {f:?}"
            );
            assert_eq!(slash16(f.dst_addr), Some(prefixes[j % 3]), "rotation");
            assert_eq!(f.dst_as, BEACON_AS[j % 3]);
            assert!(BEACON_BYTES.contains(&f.bytes));
            assert_eq!((f.protocol, f.dst_port, f.tcp_flags), (6, b.dst_port, 0x1b));
            assert!((2_000..=8_000).contains(&f.duration_ms()));
        }
        let gaps: Vec<u64> = uploads
            .windows(2)
            .map(|w| w[1].first_ms - w[0].first_ms)
            .collect();
        assert!(gaps
            .iter()
            .all(|&g| g.abs_diff(BEACON_PERIOD_MS) <= 2 * BEACON_JITTER_MS));
        let mean = gaps.iter().sum::<u64>() as f64 / gaps.len() as f64;
        assert!((mean - 60_000.0).abs() < 100.0, "{mean}");
        // The destination host changes; only the /16 is stable.
        let hosts: HashSet<IpAddr> = uploads.iter().map(|f| f.dst_addr).collect();
        assert!(hosts.len() > 50);
        // The source also has ordinary traffic.
        let background = sample()
            .iter()
            .filter(|f| f.src_addr == IpAddr::V4(b.source) || f.dst_addr == IpAddr::V4(b.source))
            .count();
        assert!(background > 120, "source {i}: {background}");
        assert_eq!(synth.host(b.background_rank).unwrap().v4, b.source);
    }

    // A day of them in the benchmark set.
    let bench = Synth::new(SynthConfig::benchmark());
    assert_eq!(bench.beacon_flows(), 3 * 2 * 1440);
    assert_eq!(bench.config().start_ms, BENCHMARK_START_MS);
}

#[test]
fn benchmark_config_starts_right() {
    let cfg = SynthConfig::benchmark();
    assert_eq!(cfg.flows, 10_000_000);
    assert_eq!(cfg.duration_ms, 86_400_000);
    let first: Vec<Flow> = Synth::new(cfg).take(50_000).collect();
    assert!(first.windows(2).all(|w| w[0].last_ms <= w[1].last_ms));
    // 50 000 of 10 M flows cover ~7.2 min of the day.
    let span = first.last().unwrap().last_ms - cfg.start_ms;
    assert!(span.abs_diff(432_000) < 5_000, "{span}");
}

/// `cargo test --release -p flowstore --test synth -- --ignored --nocapture`
#[test]
#[ignore = "speed measurement; run in release"]
fn speed_10m() {
    let mut synth = Synth::new(SynthConfig::benchmark());
    let mut buf = vec![Flow::default(); 4096];
    let t = Instant::now();
    let (mut n, mut bytes) = (0u64, 0u64);
    loop {
        let k = synth.fill(&mut buf);
        n += k as u64;
        bytes = buf[..k].iter().fold(bytes, |b, f| b.wrapping_add(f.bytes));
        if k < buf.len() {
            break;
        }
    }
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(n, 10_000_000);
    println!(
        "{n} flows in {secs:.3} s: {:.1} M flows/s (checksum {bytes})",
        n as f64 / secs / 1e6
    );
}
