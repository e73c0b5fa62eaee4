//! Crash safety: a writer killed with SIGKILL in the middle of ingest, a
//! corrupt value, and a store from a future format version.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use flowstore::filter::Filter;
use flowstore::{Error, Store, StoreConfig, TimeRange};
use netflow9::Flow;

/// Flows per batch: large ones, and small ones that the writer appends to
/// the bucket's last block (rewriting it) until it is rolled up.
const BATCHES: [u64; 2] = [1000, 7];

fn batch(i: u64, size: u64) -> Vec<Flow> {
    (0..size)
        .map(|j| Flow {
            src_addr: std::net::IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + (j as u32))),
            dst_port: 443,
            protocol: 6,
            bytes: 100,
            packets: 1,
            first_ms: 1_709_294_400_000 + i * 100,
            last_ms: 1_709_294_400_000 + i * 100 + j,
            ..Flow::default()
        })
        .collect()
}

/// The child: appends batches forever, printing each committed batch.
#[test]
#[ignore = "run by `a_killed_writer_loses_at_most_the_uncommitted_batch`"]
fn crash_child() {
    let Ok(dir) = std::env::var("FLOWSTORE_CRASH_DIR") else {
        return;
    };
    let size: u64 = std::env::var("FLOWSTORE_CRASH_BATCH")
        .unwrap()
        .parse()
        .unwrap();
    let store = Store::open(&dir, StoreConfig::default()).unwrap();
    let mut w = store.writer().unwrap();
    w.set_flush_interval(std::time::Duration::from_millis(50));
    for i in 0.. {
        w.append(&batch(i, size)).unwrap();
        println!("committed {}", i + 1);
    }
}

fn raw_all() -> Filter {
    Filter::parse("bytes >= 0").unwrap()
}

#[test]
fn a_killed_writer_loses_at_most_the_uncommitted_batch() {
    for size in BATCHES {
        killed_writer(size);
    }
}

fn killed_writer(size: u64) {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "crash_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("FLOWSTORE_CRASH_DIR", dir.path())
        .env("FLOWSTORE_CRASH_BATCH", size.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut committed = 0;
    while committed < 40 {
        let line = lines.next().expect("child output").unwrap();
        if let Some(n) = line.strip_prefix("committed ") {
            committed = n.parse().unwrap();
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let store = Store::open(dir.path(), StoreConfig::default()).expect("reopens cleanly");
    let raw = store.summary(TimeRange::all(), &raw_all()).unwrap();
    assert_eq!(
        raw.flows % size,
        0,
        "no partial batch is visible: {} (batches of {size})",
        raw.flows
    );
    assert!(
        raw.flows >= committed * size,
        "every committed batch is there: {} < {}",
        raw.flows,
        committed * size
    );
    // The child prints after each commit: it may have committed a few
    // more before the kill.
    assert!(raw.flows <= (committed + 50) * size);
    assert_eq!(raw.bytes, raw.flows * 100);
    // The rollups catch up with the raw data when a writer opens, merged
    // blocks included.
    drop(store.writer().unwrap());
    let rolled = store
        .summary(TimeRange::all(), &Filter::parse("").unwrap())
        .unwrap();
    assert_eq!(
        (rolled.flows, rolled.bytes),
        (raw.flows, raw.bytes),
        "batches of {size}"
    );
}

/// A store holding one committed batch.
fn store_with_one_batch() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
    store
        .writer()
        .unwrap()
        .append(&batch(0, BATCHES[0]))
        .unwrap();
    dir
}

/// Rewrites database `db` of a closed store behind its back: `edit` gets
/// the existing keys and returns the `(key, value)` pairs to put.
fn rewrite_behind_the_stores_back(
    dir: &std::path::Path,
    db: &str,
    edit: impl FnOnce(Vec<Vec<u8>>) -> Vec<(Vec<u8>, Vec<u8>)>,
) {
    // SAFETY: no other environment on this directory is open in this process.
    #[allow(unsafe_code)]
    let env = unsafe { heed::EnvOpenOptions::new().max_dbs(16).open(dir).unwrap() };
    let mut txn = env.write_txn().unwrap();
    let database: heed::Database<heed::types::Bytes, heed::types::Bytes> =
        env.open_database(&txn, Some(db)).unwrap().unwrap();
    let keys: Vec<Vec<u8>> = database
        .iter(&txn)
        .unwrap()
        .map(|r| r.unwrap().0.to_vec())
        .collect();
    for (k, v) in edit(keys) {
        database.put(&mut txn, &k, &v).unwrap();
    }
    txn.commit().unwrap();
    env.prepare_for_closing().wait();
}

#[test]
fn corrupt_values_and_future_formats_are_typed_errors() {
    let dir = store_with_one_batch();
    // Damage every raw block behind the store's back.
    rewrite_behind_the_stores_back(dir.path(), "raw", |keys| {
        keys.into_iter()
            .map(|k| (k, b"\x01garbage".to_vec()))
            .collect()
    });
    {
        let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
        let e = store.summary(TimeRange::all(), &raw_all()).unwrap_err();
        assert!(matches!(e, Error::Corrupt { db: "raw", .. }), "{e}");
    }
    // A store written by a future version.
    rewrite_behind_the_stores_back(dir.path(), "meta", |_| {
        vec![(b"format_version".to_vec(), 99u32.to_be_bytes().to_vec())]
    });
    let e = Store::open(dir.path(), StoreConfig::default()).unwrap_err();
    assert!(
        matches!(
            e,
            Error::IncompatibleFormat {
                found: 99,
                expected: 1,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("format version 99"));
}

/// Found by the `store_block` fuzz target: a corrupt rollup blob whose
/// counters add up past `u64::MAX` (they saturate instead of overflowing).
#[cfg(test)]
#[test]
fn corrupt_rollup_counters_saturate() {
    let blob: [u8; 92] = [
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x1d, 0x1d, 0x1d, 0x1d, 0x1d, 0x1d, 0x1d, 0x1d,
        0x1d, 0x1d, 0x1d, 0x1d, 0x1d, 0x1d, 0x1d, 0x1d, 0x1d, 0x1d, 0x1d, 0x1d, 0x1d, 0x1d, 0x1d,
        0x1d, 0x1d, 0x1d, 0x1d, 0x1d, 0x1d, 0x1d, 0x1d, 0x1d, 0x1d, 0x1d, 0x1d, 0x1d, 0x1d, 0x1d,
        0x1d, 0xe8, 0xe8, 0xe8, 0xe8, 0xe8, 0x23, 0xe8, 0xe8, 0xe8, 0xe8, 0xe8, 0xe8, 0xe8, 0xe8,
        0xe8, 0x1d, 0x1d, 0x1d, 0x1d, 0x1d, 0x31, 0x1d, 0x1d, 0x1d, 0x1d, 0x1d, 0x1d, 0xe3, 0xe2,
        0xe2, 0xe2, 0xe2, 0xe2, 0xe2, 0xec, 0x1d, 0x1d, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00,
    ];
    // Through the store: write the blob as every rollup of a bucket (and of
    // a neighbouring one), then query.
    let dir = store_with_one_batch();
    rewrite_behind_the_stores_back(dir.path(), "rollup_1m", |keys| {
        assert!(!keys.is_empty());
        keys.into_iter()
            .flat_map(|k| {
                let mut k2 = k.clone();
                k2[7] ^= 0x3c;
                [(k, blob.to_vec()), (k2, blob.to_vec())]
            })
            .collect()
    });
    let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
    match store.summary(TimeRange::all(), &Filter::parse("").unwrap()) {
        Ok(s) => assert!(s.flows > 0, "the store still answers: {s:?}"),
        Err(e) => assert!(matches!(e, Error::Corrupt { .. }), "{e}"),
    }
}
