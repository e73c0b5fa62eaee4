//! The store on real flows: the corpus captures decoded by netflow9, stored,
//! and queried back against the corpus's ground truth.

use std::collections::HashSet;
use std::net::IpAddr;

use flowstore::filter::Filter;
use flowstore::{
    Dimension, FlowsQuery, Group, GroupBy, Metric, Network, Order, SeriesQuery, Store, StoreConfig,
    Tier, TimeRange, TopQuery,
};
use netflow9::{Config, Decoder, Flow};
use testkit::{data, json, udp_payloads, V9_CAPTURES};

fn flows_of(name: &str) -> Vec<Flow> {
    let mut decoder = Decoder::new(Config::default());
    let mut flows = Vec::new();
    for (src, p) in udp_payloads(&data(&format!("exports/{name}.pcap"))) {
        decoder
            .decode(src, &p, |r| {
                if !r.is_options() {
                    flows.push(r.flow());
                }
            })
            .unwrap();
    }
    flows
}

/// An empty store in a temporary directory, without fsync.
fn empty_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        dir.path(),
        StoreConfig {
            sync: false,
            ..StoreConfig::default()
        },
    )
    .unwrap();
    (dir, store)
}

fn store_with(flows: &[Flow], batch: usize) -> (tempfile::TempDir, Store) {
    let (dir, store) = empty_store();
    {
        let mut w = store.writer().unwrap();
        for chunk in flows.chunks(batch) {
            w.append(chunk).unwrap();
        }
        w.flush().unwrap();
    }
    (dir, store)
}

fn all() -> Filter {
    Filter::parse("").unwrap()
}

#[test]
fn summary_over_all_time_equals_ground_truth() {
    for name in V9_CAPTURES {
        let flows = flows_of(name);
        let truth = json(&data(&format!("exports/{name}.truth.json")));
        let (_d, store) = store_with(&flows, 97);
        let s = store.summary(TimeRange::all(), &all()).unwrap();
        assert_eq!(
            s.flows,
            truth["nfdump"]["flows"].as_u64().unwrap(),
            "{name}"
        );
        assert_eq!(
            s.bytes,
            truth["nfdump"]["bytes"].as_u64().unwrap(),
            "{name}"
        );
        assert_eq!(
            s.packets,
            truth["nfdump"]["packets"].as_u64().unwrap(),
            "{name}"
        );
        assert_ne!(s.tier, Tier::Raw, "{name}: unfiltered summary from rollups");
        // the same through a raw scan (a filter that matches everything)
        let raw = store
            .summary(TimeRange::all(), &Filter::parse("bytes >= 0").unwrap())
            .unwrap();
        assert_eq!(
            (raw.flows, raw.bytes, raw.packets),
            (s.flows, s.bytes, s.packets),
            "{name}"
        );
        assert_eq!(raw.tier, Tier::Raw);
    }
}

/// A raw top list sums at most `top_scan_max_groups` groups: past that,
/// the rest go to "other", nothing is lost, and the answer is not exact.
#[test]
fn raw_top_lists_are_capped_by_configuration() {
    let flows = flows_of("softflowd-v9");
    let dir = tempfile::tempdir().unwrap();
    let cfg = StoreConfig {
        top_scan_max_groups: 4,
        ..StoreConfig::default()
    };
    let store = Store::open(dir.path(), cfg).unwrap();
    {
        let mut w = store.writer().unwrap();
        w.append(&flows).unwrap();
        w.flush().unwrap();
    }
    let q = |by| TopQuery {
        range: TimeRange::all(),
        by: GroupBy::Dim(by),
        metric: Metric::Bytes,
        n: 100,
        filter: Filter::parse("bytes >= 0").unwrap(),
        raw: true,
    };
    let total = store.summary(TimeRange::all(), &all()).unwrap();
    for by in [Dimension::SrcAddr, Dimension::AddrPair, Dimension::DstPort] {
        let top = store.top(&q(by)).unwrap();
        assert!(!top.exact, "{by:?}");
        assert!(top.rows.len() <= 4, "{by:?}: {} rows", top.rows.len());
        let sum: u64 = top.rows.iter().map(|r| r.agg.bytes).sum::<u64>() + top.other.bytes;
        assert_eq!(sum, total.bytes, "{by:?}: every byte in a row or in other");
    }
}

#[test]
fn the_chatty_host_is_the_top_talker_and_the_map_shows_its_uploads() {
    let flows = flows_of("softflowd-v9");
    let (_d, store) = store_with(&flows, 500);
    let top = store
        .top(&TopQuery {
            range: TimeRange::all(),
            by: GroupBy::Dim(Dimension::SrcAddr),
            metric: Metric::Bytes,
            n: 3,
            filter: all(),
            raw: true,
        })
        .unwrap();
    assert!(top.exact);
    assert_eq!(
        top.rows[0].group,
        Group::Addr("10.10.1.66".parse().unwrap())
    );
    assert_eq!(
        top.rows[0].agg.bytes, 35_536_620,
        "corpus README: bytes sent by 10.10.1.66"
    );
    assert_eq!(top.rows[0].agg.packets, 23_754);

    let net = |name: &str, cidrs: &[&str]| Network {
        name: name.to_string(),
        cidrs: cidrs.iter().map(|c| c.parse().unwrap()).collect(),
    };
    let networks = [
        net("chatty", &["10.10.1.66/32"]),
        net("lan", &["10.10.0.0/16", "2001:db8:10::/48"]),
        net("198.18/16", &["198.18.0.0/16"]),
        net("198.19/16", &["198.19.0.0/16"]),
        net("100.64/16", &["100.64.0.0/16"]),
    ];
    let m = store.matrix(TimeRange::all(), &networks, &all()).unwrap();
    let link = |s: &str, d: &str| {
        m.links
            .iter()
            .find(|l| l.src == s && l.dst == d)
            .map(|l| l.agg)
    };
    // corpus README, "Per remote /16 (chatty → server direction)"
    assert_eq!(link("chatty", "198.18/16").unwrap().bytes, 14_982_739);
    assert_eq!(link("chatty", "198.18/16").unwrap().packets, 10_013);
    assert_eq!(link("chatty", "198.19/16").unwrap().bytes, 10_493_635);
    assert_eq!(link("chatty", "100.64/16").unwrap().bytes, 10_060_246);
    assert_eq!(m.nodes.last().map(String::as_str), Some("other"));
    let total: u64 = m.links.iter().map(|l| l.agg.bytes).sum();
    assert_eq!(total, 66_963_180);
    // editing the networks changes the answer for the same past data
    let merged = [
        net("remote", &["198.18.0.0/15", "100.64.0.0/16"]),
        net("chatty", &["10.10.1.66/32"]),
    ];
    let m2 = store.matrix(TimeRange::all(), &merged, &all()).unwrap();
    let up = m2
        .links
        .iter()
        .find(|l| l.src == "chatty" && l.dst == "remote")
        .unwrap();
    assert_eq!(up.agg.bytes, 14_982_739 + 10_493_635 + 10_060_246);
}

#[test]
fn series_add_up_and_tiers_agree() {
    let flows = flows_of("softflowd-v9");
    let (_d, store) = store_with(&flows, 200);
    // the capture spans 2024-03-01 12:00–12:10 (flows may start a little before)
    let hour = TimeRange::new(1_709_290_800_000, 1_709_301_600_000).unwrap();
    let q = |step: u64| SeriesQuery {
        range: hour,
        step_secs: step,
        by: GroupBy::Dim(Dimension::Protocol),
        metric: Metric::Bytes,
        filter: all(),
        top: 5,
        raw: true,
    };
    let minute = store.series(&q(60)).unwrap();
    assert_eq!(minute.tier, Tier::Minute);
    let sum = |s: &flowstore::Series, step: u64| -> f64 {
        let groups: f64 = s.series.iter().flat_map(|l| l.values.iter()).sum();
        (groups + s.other.iter().sum::<f64>()) * step as f64
    };
    assert!(
        (sum(&minute, 60) - 66_963_180.0).abs() < 1.0,
        "{}",
        sum(&minute, 60)
    );
    let tcp = minute
        .series
        .iter()
        .find(|l| l.group == Group::Protocol(6))
        .unwrap();
    assert!(tcp.values.iter().any(|v| *v > 0.0));

    // build the 5-minute and hourly tiers, then ask again
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let built = store.writer().unwrap().maintain(now, true).unwrap();
    assert!(built.materialized >= 2, "{built:?}");
    let five = store.series(&q(300)).unwrap();
    assert_eq!(five.tier, Tier::FiveMinutes);
    assert!((sum(&five, 300) - 66_963_180.0).abs() < 1.0);
    let hourly = store.series(&q(3600)).unwrap();
    assert_eq!(hourly.tier, Tier::Hour);
    assert!((sum(&hourly, 3600) - 66_963_180.0).abs() < 1.0);
    // a filtered series scans raw flows and agrees with the filter's summary
    let mut fq = q(60);
    fq.filter = Filter::parse("proto udp").unwrap();
    let udp = store.series(&fq).unwrap();
    assert_eq!(udp.tier, Tier::Raw);
    let udp_total = store
        .summary(hour, &Filter::parse("proto udp").unwrap())
        .unwrap();
    assert!((sum(&udp, 60) - udp_total.bytes as f64).abs() < 1.0);
}

#[test]
fn flow_table_pages_are_stable_and_complete() {
    let flows = flows_of("softflowd-v9-ether-ipv6");
    let (_d, store) = store_with(&flows, 300);
    for order in [Order::TimeDesc, Order::TimeAsc] {
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let page = store
                .flows(&FlowsQuery {
                    range: TimeRange::all(),
                    filter: all(),
                    order,
                    limit: 100,
                    cursor,
                })
                .unwrap();
            assert!(page.flows.len() <= 100);
            seen.extend(page.flows);
            match page.next_cursor {
                Some(c) => cursor = Some(c.to_string().parse().unwrap()),
                None => break,
            }
        }
        assert_eq!(seen.len(), flows.len(), "{order:?}");
        let unique: HashSet<String> = seen.iter().map(|f| format!("{f:?}")).collect();
        let expected: HashSet<String> = flows.iter().map(|f| format!("{f:?}")).collect();
        assert_eq!(unique, expected, "{order:?}: every flow exactly as stored");
        let times: Vec<u64> = seen.iter().map(|f| f.last_ms / 60_000).collect();
        let sorted = {
            let mut t = times.clone();
            t.sort_unstable();
            if order == Order::TimeDesc {
                t.reverse();
            }
            t
        };
        assert_eq!(times, sorted, "{order:?}: bucket order");
    }
    // a host filter
    let host: IpAddr = "2001:db8:ab01::1".parse().unwrap();
    let expected = flows
        .iter()
        .filter(|f| f.src_addr == host || f.dst_addr == host)
        .count();
    let page = store
        .flows(&FlowsQuery {
            range: TimeRange::all(),
            filter: Filter::parse("host 2001:db8:ab01::1").unwrap(),
            order: Order::TimeDesc,
            limit: 10_000,
            cursor: None,
        })
        .unwrap();
    assert_eq!(page.flows.len(), expected);
    assert!(expected > 0);
    assert!(page.next_cursor.is_none());
}

#[test]
fn reopen_keeps_everything_and_metadata_round_trips() {
    let flows = flows_of("pmacct-v9");
    let (dir, store) = store_with(&flows, 1000);
    let before = store.summary(TimeRange::all(), &all()).unwrap();
    store
        .put_network(&Network {
            name: "lan".into(),
            cidrs: vec!["10.10.0.0/16".parse().unwrap()],
        })
        .unwrap();
    store
        .put_user(&flowstore::User {
            name: "admin".into(),
            role: flowstore::Role::Admin,
            password_hash: "$argon2id$v=19$...".into(),
        })
        .unwrap();
    store.put_setting("metrics_public", &true).unwrap();
    drop(store);
    let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
    assert_eq!(store.summary(TimeRange::all(), &all()).unwrap(), before);
    assert_eq!(store.networks().unwrap()[0].name, "lan");
    assert_eq!(
        store.user("admin").unwrap().unwrap().role,
        flowstore::Role::Admin
    );
    assert_eq!(store.setting::<bool>("metrics_public").unwrap(), Some(true));
    assert!(store.delete_network("lan").unwrap());
    assert!(!store.delete_network("lan").unwrap());
}

/// A daemon with little traffic commits a few flows at a time: they are
/// appended to the bucket's last block (rewritten) while it is small and
/// not yet rolled up, so the store holds blocks of hundreds of flows, not
/// one block per commit. A flow-table cursor taken before such rewrites
/// still pages through every flow once, and rollups agree with raw flows.
#[test]
fn small_batches_share_blocks_and_cursors_survive_it() {
    let (_dir, store) = empty_store();
    let t0 = 1_709_294_400_000u64;
    let flow = |i: u64| Flow {
        src_addr: IpAddr::from([10, 0, (i >> 8) as u8, i as u8]),
        dst_port: 443,
        protocol: 6,
        bytes: 100 + i,
        packets: 1,
        first_ms: t0 + i,
        last_ms: t0 + i,
        ..Flow::default()
    };
    let mut w = store.writer().unwrap();
    let batch = |from: u64| (from..from + 5).map(flow).collect::<Vec<_>>();
    for b in 0..60 {
        w.append(&batch(b * 5)).unwrap();
    }
    let merged = store
        .stats()
        .merged_blocks
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(merged >= 55, "{merged} of 60 appends merged");
    let page = |cursor| {
        store
            .flows(&FlowsQuery {
                range: TimeRange::all(),
                filter: all(),
                order: Order::TimeAsc,
                limit: 100,
                cursor,
            })
            .unwrap()
    };
    let first = page(None);
    assert_eq!(first.flows.len(), 100);
    // More small batches rewrite the block the cursor points into.
    for b in 60..100 {
        w.append(&batch(b * 5)).unwrap();
    }
    let mut seen: Vec<u64> = first.flows.iter().map(|f| f.bytes - 100).collect();
    let mut cursor = first.next_cursor;
    while let Some(c) = cursor {
        let p = page(Some(c));
        seen.extend(p.flows.iter().map(|f| f.bytes - 100));
        cursor = p.next_cursor;
    }
    let expected: Vec<u64> = (0..500).collect();
    assert_eq!(
        seen, expected,
        "every flow once, in order, across the rewrites"
    );
    w.flush().unwrap();
    let raw = store
        .summary(TimeRange::all(), &Filter::parse("bytes >= 0").unwrap())
        .unwrap();
    let rolled = store.summary(TimeRange::all(), &all()).unwrap();
    assert_eq!(
        (raw.flows, raw.bytes, raw.packets),
        (rolled.flows, rolled.bytes, rolled.packets)
    );
    assert_eq!(raw.flows, 500);
}

/// Two administrators deleting each other at once: a check made in
/// `change_users` holds when its change is written, so one admin remains.
/// (Each decision pauses between reading and deciding, which lets the other
/// read the same two admins if the two were not serialized.)
#[test]
fn user_changes_are_checked_and_written_atomically() {
    use flowstore::{Role, User, UserChange};
    let (_dir, store) = empty_store();
    for name in ["ada", "bob"] {
        store
            .put_user(&User {
                name: name.into(),
                role: Role::Admin,
                password_hash: "$argon2id$v=19$...".into(),
            })
            .unwrap();
    }
    let outcomes: Vec<Result<(), &str>> = std::thread::scope(|s| {
        let tasks: Vec<_> = ["ada", "bob"]
            .into_iter()
            .map(|victim| {
                let store = &store;
                s.spawn(move || {
                    store
                        .change_users(|users| {
                            let admins = users.iter().filter(|u| u.role == Role::Admin).count();
                            std::thread::sleep(std::time::Duration::from_millis(100));
                            if admins <= 1 {
                                return Err("last admin");
                            }
                            Ok(UserChange::Delete(victim.into()))
                        })
                        .unwrap()
                })
            })
            .collect();
        tasks.into_iter().map(|t| t.join().unwrap()).collect()
    });
    assert_eq!(
        outcomes.iter().filter(|o| o.is_ok()).count(),
        1,
        "{outcomes:?}"
    );
    assert!(outcomes.contains(&Err("last admin")));
    let left = store.users().unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].role, Role::Admin);
    // A refused change writes nothing; `Delete` of no one is a no-op.
    let name = left[0].name.clone();
    let r = store.change_users(|_| Err::<UserChange, _>(7)).unwrap();
    assert_eq!(r, Err(7));
    store
        .change_users(|_| Ok::<_, ()>(UserChange::Delete("nobody".into())))
        .unwrap()
        .unwrap();
    assert_eq!(store.users().unwrap()[0].name, name);
}

#[test]
fn retention_measures_age_from_write_time_and_counts_removals() {
    let flows = flows_of("softflowd-v9");
    let (_d, store) = store_with(&flows, 500);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // flows from 2024, written now: nothing is old yet
    let r = store.writer().unwrap().maintain(now, false).unwrap();
    assert_eq!(r.raw_buckets, 0, "just-received flows never vanish");
    assert_eq!(
        store
            .summary(TimeRange::all(), &Filter::parse("bytes >= 0").unwrap())
            .unwrap()
            .flows,
        1804
    );
    // eight days later the raw tier (7 days) is gone, counted; rollups stay
    let r = store
        .writer()
        .unwrap()
        .maintain(now + 8 * 86_400, true)
        .unwrap();
    assert!(r.raw_buckets > 0);
    assert_eq!(r.raw_flows, 1804);
    assert_eq!(
        store
            .stats()
            .retention_flows
            .load(std::sync::atomic::Ordering::Relaxed),
        1804
    );
    assert_eq!(
        store
            .summary(TimeRange::all(), &Filter::parse("bytes >= 0").unwrap())
            .unwrap()
            .flows,
        0
    );
    let rolled = store.summary(TimeRange::all(), &all()).unwrap();
    eprintln!("{rolled:?} {r:?}");
    assert_eq!(
        rolled.bytes, 66_963_180,
        "5-minute and hourly rollups outlive raw data"
    );
}

/// Appends `flows` once per day for `days` days, shifted by a day each
/// time, then flushes; returns the writer.
fn store_days(store: &Store, flows: &[Flow], days: u64) -> flowstore::Writer {
    let mut w = store.writer().unwrap();
    for day in 0..days {
        let shifted: Vec<Flow> = flows
            .iter()
            .map(|f| Flow {
                first_ms: f.first_ms + day * 86_400_000,
                last_ms: f.last_ms + day * 86_400_000,
                ..*f
            })
            .collect();
        w.append(&shifted).unwrap();
    }
    w.flush().unwrap();
    w
}

#[test]
fn a_small_disk_budget_evicts_oldest_instead_of_failing() {
    let flows = flows_of("softflowd-v9");
    let dir = tempfile::tempdir().unwrap();
    let cfg = StoreConfig {
        disk_budget_bytes: 2 << 20,
        initial_map_bytes: 1 << 20,
        sync: false,
        ..StoreConfig::default()
    };
    let store = Store::open(dir.path(), cfg).unwrap();
    // the same 10 minutes of flows shifted by a day at a time: far more than 2 MiB
    let _w = store_days(&store, &flows, 40);
    let evicted = store
        .stats()
        .budget_buckets
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(evicted > 0, "oldest buckets deleted");
    assert!(store.disk_bytes().unwrap() <= 2 << 20);
    let s = store
        .summary(TimeRange::all(), &Filter::parse("bytes >= 0").unwrap())
        .unwrap();
    assert!(s.flows > 0 && s.flows < 40 * 1804);
}

/// Minutes evicted for the disk budget before their 5-minute and hourly
/// windows were built (replayed history, no `maintain` yet) are rolled
/// into those windows first: the coarse tiers keep every flow.
#[test]
fn budget_eviction_builds_the_coarse_windows_first() {
    let flows = flows_of("softflowd-v9");
    let dir = tempfile::tempdir().unwrap();
    let cfg = StoreConfig {
        disk_budget_bytes: 4 << 20,
        initial_map_bytes: 1 << 20,
        sync: false,
        ..StoreConfig::default()
    };
    let store = Store::open(dir.path(), cfg).unwrap();
    let days = 40u64;
    let _w = store_days(&store, &flows, days);
    let stats = store.stats();
    let get = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    let rolled = store.summary(TimeRange::all(), &all()).unwrap();
    assert!(get(&stats.budget_buckets) > 0, "raw buckets evicted");
    assert_eq!(get(&stats.rollup_errors), 0);
    let bytes: u64 = flows.iter().map(|f| f.bytes).sum();
    assert_eq!(
        (rolled.flows, rolled.bytes),
        (days * flows.len() as u64, days * bytes)
    );
}

#[test]
fn incompatible_options_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
    let _w = store.writer().unwrap();
    assert!(
        matches!(store.writer(), Err(flowstore::Error::InvalidQuery(_))),
        "one writer"
    );
    assert!(store
        .flows(&FlowsQuery {
            range: TimeRange::all(),
            filter: all(),
            order: Order::TimeDesc,
            limit: 0,
            cursor: None
        })
        .is_err());
    let q = SeriesQuery {
        range: TimeRange::all(),
        step_secs: 7,
        by: GroupBy::Dim(Dimension::Protocol),
        metric: Metric::Bytes,
        filter: all(),
        top: 5,
        raw: false,
    };
    assert!(matches!(
        store.series(&q),
        Err(flowstore::Error::InvalidQuery(_))
    ));
    assert!("zz".parse::<flowstore::Cursor>().is_err());
    // Configurations whose arithmetic would overflow, or whose memory would
    // be unbounded, are refused before anything is opened.
    let other = tempfile::tempdir().unwrap();
    for bad in [
        StoreConfig {
            max_prorate_buckets: u64::MAX,
            ..StoreConfig::default()
        },
        StoreConfig {
            group_cap: 0,
            ..StoreConfig::default()
        },
        StoreConfig {
            rollup_keep: 5000,
            ..StoreConfig::default()
        },
        StoreConfig {
            bucket_secs: 0,
            ..StoreConfig::default()
        },
    ] {
        let e = Store::open(other.path(), bad).unwrap_err();
        assert!(matches!(e, flowstore::Error::InvalidConfig(_)), "{e}");
    }
    // A partial configuration takes the defaults for the rest.
    let partial: StoreConfig =
        serde_json::from_str(r#"{"sync": false, "retention": {"raw_secs": 3600}}"#).unwrap();
    assert!(!partial.sync);
    assert_eq!(partial.retention.raw_secs, 3600);
    assert_eq!(
        partial.retention.rollup_1h_secs,
        StoreConfig::default().retention.rollup_1h_secs
    );
    assert_eq!(partial.group_cap, StoreConfig::default().group_cap);
    assert!(TimeRange::new(2, 1).is_err());
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn top_protocols(store: &Store) -> flowstore::Top {
    store
        .top(&TopQuery {
            range: TimeRange::all(),
            by: GroupBy::Dim(Dimension::Protocol),
            metric: Metric::Bytes,
            n: 10,
            filter: all(),
            raw: true,
        })
        .unwrap()
}

#[test]
fn rollup_answers_outlive_the_minute_tier_and_see_new_data() {
    let flows = flows_of("softflowd-v9");
    let total: u64 = flows.iter().map(|f| f.bytes).sum();
    let (_d, store) = store_with(&flows, 500);
    let now = now_secs();
    // eight days on: raw data (7 days) and 1-minute rollups (7 days) are
    // gone; the 5-minute and hourly tiers answer
    store
        .writer()
        .unwrap()
        .maintain(now + 8 * 86_400, true)
        .unwrap();
    let s = store.summary(TimeRange::all(), &all()).unwrap();
    assert_eq!((s.flows, s.bytes), (1804, total));
    assert_eq!(s.tier, Tier::Hour);
    let top = top_protocols(&store);
    let ranked: u64 = top.rows.iter().map(|r| r.agg.bytes).sum::<u64>() + top.other.bytes;
    assert_eq!(ranked, total, "top lists read the coarser tiers too");
    // a new flow in another hour: its windows are not built yet, so they
    // are read from the 1-minute tier, the rest from the hourly one
    let late = Flow {
        first_ms: flows[0].last_ms + 86_400_000,
        last_ms: flows[0].last_ms + 86_400_000,
        bytes: 1000,
        ..flows[0]
    };
    {
        let mut w = store.writer().unwrap();
        w.append(&[late]).unwrap();
        w.flush().unwrap();
    }
    let s = store.summary(TimeRange::all(), &all()).unwrap();
    assert_eq!((s.flows, s.bytes), (1805, total + 1000));
    assert_eq!(s.tier, Tier::Minute, "the finest tier read is named");
    let top = top_protocols(&store);
    let ranked: u64 = top.rows.iter().map(|r| r.agg.bytes).sum::<u64>() + top.other.bytes;
    assert_eq!(ranked, total + 1000);
}

#[test]
fn hostile_times_and_counters_are_stored_without_overflow() {
    let flows = flows_of("softflowd-v9");
    let (_dir, store) = empty_store();
    let mut w = store.writer().unwrap();
    let before = now_secs() * 1000;
    let hostile = [
        // the end of time, two minutes long
        Flow {
            first_ms: u64::MAX - 120_000,
            last_ms: u64::MAX,
            bytes: u64::MAX,
            ..flows[0]
        },
        // the year ~37 000, counters that overflow when summed
        Flow {
            first_ms: 1 << 50,
            last_ms: 1 << 50,
            bytes: u64::MAX,
            packets: u64::MAX,
            ..flows[1]
        },
    ];
    let r = w.append(&hostile).unwrap();
    assert_eq!((r.flows, r.future_flows), (2, 2));
    assert!(!r.rollups_deferred);
    w.append(&flows).unwrap();
    w.flush().unwrap();
    w.maintain(now_secs(), true).unwrap();
    let stats = store.stats();
    assert_eq!(
        stats
            .future_flows
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );
    // moved to the present, duration kept; nothing stored past tomorrow
    let recent = TimeRange::new(before - 3_600_000, before + 2 * 86_400_000).unwrap();
    let page = store
        .flows(&FlowsQuery {
            range: recent,
            filter: Filter::parse("bytes > 1000000000000").unwrap(),
            order: Order::TimeDesc,
            limit: 10,
            cursor: None,
        })
        .unwrap();
    assert_eq!(page.flows.len(), 2);
    let after = now_secs() * 1000 + 1000;
    for f in &page.flows {
        assert!(f.last_ms >= before && f.last_ms <= after, "{f:?}");
    }
    assert!(page.flows.iter().any(|f| f.last_ms - f.first_ms == 120_000));
    // all-time answers come back (not a walk to the year 37 000), saturated
    let s = store.summary(TimeRange::all(), &all()).unwrap();
    assert_eq!(s.flows, 1806);
    assert_eq!(s.bytes, u64::MAX);
    let raw = store
        .summary(recent, &Filter::parse("bytes >= 0").unwrap())
        .unwrap();
    assert_eq!((raw.flows, raw.bytes), (2, u64::MAX));
    // a series step beyond a year is refused, not overflowed
    let q = SeriesQuery {
        range: TimeRange::all(),
        step_secs: u64::MAX / 100,
        by: GroupBy::Dim(Dimension::Protocol),
        metric: Metric::Bytes,
        filter: all(),
        top: 5,
        raw: true,
    };
    assert!(store.series(&q).is_err());
}

#[test]
fn late_flows_after_the_minute_tier_expired_add_to_the_coarser_tiers() {
    let flows = flows_of("softflowd-v9");
    let total: u64 = flows.iter().map(|f| f.bytes).sum();
    let (_d, store) = store_with(&flows, 500);
    let later = now_secs() + 8 * 86_400;
    store.writer().unwrap().maintain(later, true).unwrap();
    // a late flow in a minute that already held flows, and one in a
    // minute of its own, both in windows whose 1-minute buckets are gone
    let late = [
        Flow {
            bytes: 1,
            ..flows[0]
        },
        Flow {
            first_ms: flows[0].last_ms - 3_600_000,
            last_ms: flows[0].last_ms - 3_600_000,
            bytes: 2,
            ..flows[0]
        },
    ];
    {
        let mut w = store.writer().unwrap();
        w.append(&late).unwrap();
        w.maintain(later, true).unwrap();
    }
    let s = store.summary(TimeRange::all(), &all()).unwrap();
    assert_eq!((s.flows, s.bytes), (1806, total + 3), "{s:?}");
    assert_eq!(s.tier, Tier::Hour);
    let q = SeriesQuery {
        range: TimeRange::new(1_709_280_000_000, 1_709_308_800_000).unwrap(),
        step_secs: 300,
        by: GroupBy::Dim(Dimension::Protocol),
        metric: Metric::Bytes,
        filter: all(),
        top: 5,
        raw: true,
    };
    let five = store.series(&q).unwrap();
    assert_eq!(five.tier, Tier::FiveMinutes);
    let sum: f64 = five
        .series
        .iter()
        .flat_map(|l| l.values.iter())
        .chain(&five.other)
        .sum::<f64>()
        * 300.0;
    assert!((sum - (total + 3) as f64).abs() < 1.0, "{sum}");
}

#[test]
fn stored_templates_are_bounded_and_newest_last() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
    let t = |exporter: &str, id: u16| flowstore::StoredTemplate {
        exporter: exporter.parse().unwrap(),
        source_id: 7,
        template_id: id,
        options: false,
        scope: Vec::new(),
        fields: vec![(8, 4), (12, 4), (1, 4)],
        stored_at: 0,
    };
    // a flood from 100 spoofed exporters keeps at most 10
    let flood: Vec<_> = (0..100u16)
        .map(|i| t(&format!("198.51.100.{}", i % 250), 256 + i))
        .collect();
    assert_eq!(store.put_templates(&flood, 10).unwrap(), 90);
    assert_eq!(store.templates().unwrap().len(), 10);
    // a real exporter's template, stored later, is kept and listed last
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let mine = t("192.0.2.1", 300);
    assert_eq!(
        store
            .put_templates(std::slice::from_ref(&mine), 10)
            .unwrap(),
        1
    );
    let all = store.templates().unwrap();
    assert_eq!(all.len(), 10);
    let last = all.last().unwrap();
    assert_eq!((last.exporter, last.template_id), (mine.exporter, 300));
    assert!(last.stored_at > 0);
    assert!(all.windows(2).all(|w| w[0].stored_at <= w[1].stored_at));

    // Renewing: the same definition is stamped again, a missing one is
    // stored, another definition (a newer one from another socket) is
    // left alone.
    let newer = flowstore::StoredTemplate {
        fields: vec![(8, 4)],
        ..mine.clone()
    };
    store
        .put_templates(std::slice::from_ref(&newer), 10)
        .unwrap();
    let missing = t("192.0.2.2", 301);
    store
        .renew_templates(&[mine.clone(), missing.clone()], 10)
        .unwrap();
    let all = store.templates().unwrap();
    let get = |s: &flowstore::StoredTemplate| {
        all.iter()
            .find(|a| (a.exporter, a.template_id) == (s.exporter, s.template_id))
            .cloned()
    };
    assert_eq!(get(&mine).unwrap().fields, newer.fields, "not overwritten");
    assert_eq!(get(&missing).unwrap().fields, missing.fields, "stored");
}
