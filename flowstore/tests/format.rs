//! Compatibility: stores written by each released format open and answer.
//! `fixtures/format-v1/` was written by format 1 from the softflowd-v9
//! capture (regenerate with `FLOWSTORE_WRITE_FIXTURE=1 cargo test -p flowstore
//! --test format -- --ignored`, only when introducing a new format version).

use std::path::{Path, PathBuf};

use flowstore::filter::Filter;
use flowstore::{Store, StoreConfig, TimeRange};
use netflow9::{Config, Decoder};
use testkit::{data, udp_payloads};

fn fixture(version: u32) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/format-v{version}"))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
#[ignore = "writes the fixture; run by hand for a new format version"]
fn write_fixture() {
    if std::env::var("FLOWSTORE_WRITE_FIXTURE").is_err() {
        return;
    }
    let dir = fixture(flowstore::codec::FORMAT_VERSION);
    let _ = std::fs::remove_dir_all(&dir);
    let store = Store::open(
        &dir,
        StoreConfig {
            initial_map_bytes: 1 << 20,
            ..StoreConfig::default()
        },
    )
    .unwrap();
    let mut w = store.writer().unwrap();
    let mut decoder = Decoder::new(Config::default());
    let mut flows = Vec::new();
    for (src, p) in udp_payloads(&data("exports/softflowd-v9.pcap")) {
        decoder
            .decode(src, &p, |r| {
                if !r.is_options() {
                    flows.push(r.flow());
                }
            })
            .unwrap();
    }
    w.append(&flows).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    w.maintain(now, true).unwrap();
    drop(w);
    let _ = std::fs::remove_file(dir.join("lock.mdb"));
}

#[test]
fn opens_a_store_written_by_format_1() {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&fixture(1), tmp.path());
    let store = Store::open(tmp.path(), StoreConfig::default()).unwrap();
    let raw = store
        .summary(TimeRange::all(), &Filter::parse("bytes >= 0").unwrap())
        .unwrap();
    assert_eq!(
        (raw.flows, raw.bytes, raw.packets),
        (1804, 66_963_180, 70_328)
    );
    let rolled = store
        .summary(TimeRange::all(), &Filter::parse("").unwrap())
        .unwrap();
    assert_eq!((rolled.flows, rolled.bytes), (1804, 66_963_180));
}

#[test]
#[ignore = "writes fuzz seeds; run by hand: FLOWSTORE_WRITE_FUZZ_SEEDS=1 cargo test -p flowstore --test format -- --ignored"]
fn write_fuzz_seeds() {
    if std::env::var("FLOWSTORE_WRITE_FUZZ_SEEDS").is_err() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&fixture(1), tmp.path());
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/store_block");
    std::fs::create_dir_all(&out).unwrap();
    // SAFETY: the only environment open on this copy in this process.
    #[allow(unsafe_code)]
    let env = unsafe {
        heed::EnvOpenOptions::new()
            .max_dbs(16)
            .open(tmp.path())
            .unwrap()
    };
    let txn = env.read_txn().unwrap();
    for (db_name, keep) in [("raw", 4), ("rollup_1m", 24), ("rollup_5m", 12)] {
        let db: heed::Database<heed::types::Bytes, heed::types::Bytes> =
            env.open_database(&txn, Some(db_name)).unwrap().unwrap();
        for (i, item) in db.iter(&txn).unwrap().take(keep).enumerate() {
            let (_, v) = item.unwrap();
            std::fs::write(out.join(format!("{db_name}-{i}")), v).unwrap();
        }
    }
}
