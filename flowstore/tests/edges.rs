//! Query edge cases found in review: address families in networks,
//! flows whose clocks run backwards, unaligned ranges, memory caps.

use std::net::IpAddr;

use flowstore::filter::Filter;
use flowstore::{
    Dimension, FlowsQuery, Group, GroupBy, Metric, Network, Order, SeriesQuery, Store, StoreConfig,
    TimeRange, TopQuery,
};
use netflow9::Flow;

/// 2024-03-01T00:00:00Z: hour-aligned.
const T: u64 = 1_709_251_200_000;

fn store_with(flows: &[Flow]) -> (tempfile::TempDir, Store) {
    let d = tempfile::tempdir().unwrap();
    let s = Store::open(
        d.path(),
        StoreConfig {
            sync: false,
            ..StoreConfig::default()
        },
    )
    .unwrap();
    {
        let mut w = s.writer().unwrap();
        w.append(flows).unwrap();
        w.flush().unwrap();
    }
    (d, s)
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn flow(src: &str, dst: &str, first: u64, last: u64, bytes: u64) -> Flow {
    Flow {
        src_addr: ip(src),
        dst_addr: ip(dst),
        first_ms: first,
        last_ms: last,
        bytes,
        packets: 1,
        exporter: ip("192.0.2.1"),
        protocol: 6,
        ..Flow::default()
    }
}

fn net(name: &str, cidrs: &[&str]) -> Network {
    Network {
        name: name.into(),
        cidrs: cidrs.iter().map(|c| c.parse().unwrap()).collect(),
    }
}

fn links(m: &flowstore::Matrix) -> Vec<(String, String, u64)> {
    let mut v: Vec<_> = m
        .links
        .iter()
        .map(|l| (l.src.clone(), l.dst.clone(), l.agg.bytes))
        .collect();
    v.sort();
    v
}

fn any() -> Filter {
    Filter::parse("bytes >= 0").unwrap()
}

#[test]
fn ipv6_networks_never_hold_ipv4_addresses() {
    let (_d, s) = store_with(&[flow("10.0.0.1", "192.0.2.9", T + 1000, T + 2000, 100)]);
    let nets = [net("ipv6-all", &["::/0"]), net("lan", &["10.0.0.0/8"])];
    let r = TimeRange::new(T, T + 3_600_000).unwrap();
    let want = vec![("lan".to_string(), "other".to_string(), 100)];
    assert_eq!(links(&s.matrix(r, &nets, &Filter::all()).unwrap()), want);
    assert_eq!(links(&s.matrix(r, &nets, &any()).unwrap()), want);
    let top = s
        .top(&TopQuery {
            range: r,
            by: GroupBy::DstNetwork(nets.to_vec()),
            metric: Metric::Bytes,
            n: 5,
            filter: Filter::all(),
            raw: true,
        })
        .unwrap();
    assert!(top
        .rows
        .iter()
        .all(|r| r.group != Group::Network("ipv6-all".into())));
}

#[test]
fn ipv6_networks_longer_than_64_bits_are_not_read_from_the_map_rollup() {
    // in 2001:db8::/64 but outside 2001:db8::/112
    let (_d, s) = store_with(&[flow(
        "2001:db8::1:5",
        "2001:db8:ffff::1",
        T + 1000,
        T + 2000,
        100,
    )]);
    let nets = [net("small", &["2001:db8::/112"])];
    let r = TimeRange::new(T, T + 3_600_000).unwrap();
    let want = vec![("other".to_string(), "other".to_string(), 100)];
    assert_eq!(links(&s.matrix(r, &nets, &Filter::all()).unwrap()), want);
    assert_eq!(links(&s.matrix(r, &nets, &any()).unwrap()), want);
}

#[test]
fn a_flow_that_starts_after_it_ends_counts_at_its_end() {
    let (_d, s) = store_with(&[flow("10.0.0.1", "10.0.0.2", T + 130_000, T + 30_000, 100)]);
    let nets = [net("lan", &["10.0.0.0/8"])];
    let r = TimeRange::new(T, T + 60_000).unwrap();
    let want = vec![("lan".to_string(), "lan".to_string(), 100)];
    assert_eq!(links(&s.matrix(r, &nets, &Filter::all()).unwrap()), want);
    assert_eq!(links(&s.matrix(r, &nets, &any()).unwrap()), want);
    let top = s
        .top(&TopQuery {
            range: r,
            by: GroupBy::Dim(Dimension::SrcAddr),
            metric: Metric::Bytes,
            n: 5,
            filter: Filter::all(),
            raw: true,
        })
        .unwrap();
    assert_eq!(top.rows.iter().map(|r| r.agg.bytes).sum::<u64>(), 100);
}

#[test]
fn unaligned_ranges_are_whole_minutes_everywhere() {
    let (_d, s) = store_with(&[flow("10.0.0.1", "10.0.0.2", T + 95_000, T + 100_000, 100)]);
    // the flow ends at 1:40, in the range 1:30–3:20
    let r = TimeRange::new(T + 90_000, T + 200_000).unwrap();
    let listed = s
        .flows(&FlowsQuery {
            range: r,
            filter: any(),
            order: Order::TimeDesc,
            limit: 10,
            cursor: None,
        })
        .unwrap()
        .flows
        .len();
    assert_eq!(listed, 1);
    assert_eq!(s.summary(r, &any()).unwrap().flows, 1);
    assert_eq!(s.summary(r, &Filter::all()).unwrap().flows, 1);
}

#[test]
fn a_fine_series_over_a_long_range_holds_fewer_groups() {
    let flows: Vec<Flow> = (0..5000u32)
        .map(|i| {
            let a = std::net::Ipv4Addr::from(0x0a00_0000 + i);
            Flow {
                src_addr: IpAddr::V4(a),
                ..flow("10.0.0.1", "192.0.2.9", T + 1000, T + 2000, 100)
            }
        })
        .collect();
    let (_d, s) = store_with(&flows);
    // 9 999 one-minute steps: 4 Mi values hold 419 groups at most
    let q = SeriesQuery {
        range: TimeRange::new(T + 60_000 - 9_999 * 60_000, T + 60_000).unwrap(),
        step_secs: 60,
        by: GroupBy::Dim(Dimension::SrcAddr),
        metric: Metric::Bytes,
        filter: any(),
        top: 10,
        raw: true,
    };
    let r = s.series(&q).unwrap();
    assert!(r.truncated, "groups past the cap are folded and said to be");
    let total: f64 = r
        .series
        .iter()
        .flat_map(|l| l.values.iter())
        .chain(&r.other)
        .sum::<f64>()
        * 60.0;
    assert!((total - 500_000.0).abs() < 1.0, "{total}");
}

#[test]
fn ipv4_mapped_addresses_are_ipv4_to_filters() {
    let f = Flow {
        src_addr: ip("::ffff:10.1.2.3"),
        dst_addr: ip("::ffff:192.0.2.7"),
        ..flow("10.1.2.3", "192.0.2.7", T, T, 1)
    };
    assert!(Filter::parse("inet").unwrap().matches(&f));
    assert!(!Filter::parse("inet6").unwrap().matches(&f));
}
