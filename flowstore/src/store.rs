//! The store: one LMDB environment, its databases, configuration and
//! counters. Readers use short read transactions; one [`crate::Writer`]
//! writes.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use heed::types::{Bytes, Str, U32, U64};
use heed::{byteorder::BigEndian, Database, Env, EnvOpenOptions, RoTxn};

use crate::codec::keys::{BlockKeyCodec, BucketInfoCodec, IndexKeyCodec, RollupKeyCodec};
use crate::codec::FORMAT_VERSION;
use crate::error::{Error, Result};

/// Retention, per tier. Age is measured from the time data was **written**
/// (wall clock of the collector), never from the flows' own timestamps: a
/// capture from 2024 replayed today is kept as long as live traffic
/// received today.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Retention {
    /// Raw flows (seconds). Default 7 days.
    pub raw_secs: u64,
    /// 1-minute rollups. Default 7 days.
    pub rollup_1m_secs: u64,
    /// 5-minute rollups. Default 90 days.
    pub rollup_5m_secs: u64,
    /// 1-hour rollups. Default 2 years.
    pub rollup_1h_secs: u64,
}

impl Default for Retention {
    fn default() -> Self {
        const DAY: u64 = 86_400;
        Retention {
            raw_secs: 7 * DAY,
            rollup_1m_secs: 7 * DAY,
            rollup_5m_secs: 90 * DAY,
            rollup_1h_secs: 730 * DAY,
        }
    }
}

/// Store configuration. Every memory and disk bound follows from it.
///
/// Deserialized, every field has its default: a configuration file sets
/// any subset (unknown keys are errors). [`Store::open`] refuses values out
/// of [`StoreConfig::validate`]'s bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Width of raw buckets in seconds (default 60). Fixed when the store is created.
    pub bucket_secs: u32,
    /// Retention per tier.
    pub retention: Retention,
    /// Most bytes on disk; the oldest buckets are deleted to stay under it.
    /// Data fills it up to a reserve of 1/32 (256 KiB to 64 MiB), which
    /// only deletions use: in LMDB even a delete needs free pages.
    /// Default 64 GiB.
    pub disk_budget_bytes: u64,
    /// Initial LMDB map size; it doubles when full, up to the budget. Default 1 GiB.
    pub initial_map_bytes: u64,
    /// Distinct groups per dimension and bucket kept while aggregating
    /// (more go to "other"). Default 4096.
    pub group_cap: usize,
    /// Groups per dimension and bucket written to disk (top by bytes; the
    /// rest are folded into "other"). Default 500.
    pub rollup_keep: usize,
    /// Most 1-minute buckets one flow is pro-rated over (default 120: two hours).
    pub max_prorate_buckets: u64,
    /// zstd level of raw blocks (default 1).
    pub compression_level: i32,
    /// Most groups a query returns before folding the rest into "other".
    pub query_max_groups: usize,
    /// Most groups a top list read from raw flows sums exactly (more go to
    /// "other" and the answer says it is not exact). Memory per query is
    /// about 150 bytes per group at most. Default 1 048 576.
    pub top_scan_max_groups: usize,
    /// Longest time range a raw scan may cover, in seconds (default 31 days).
    pub raw_scan_max_secs: u64,
    /// fsync every commit (default true). Without it a crash can lose the
    /// last commits, never corrupt the store.
    pub sync: bool,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            bucket_secs: 60,
            retention: Retention::default(),
            disk_budget_bytes: 64 << 30,
            initial_map_bytes: 1 << 30,
            group_cap: 4096,
            rollup_keep: 500,
            max_prorate_buckets: 120,
            compression_level: 1,
            query_max_groups: 10_000,
            top_scan_max_groups: 1 << 20,
            raw_scan_max_secs: 31 * 86_400,
            sync: true,
        }
    }
}

impl StoreConfig {
    /// Checks every value against its bounds, which keep time arithmetic in
    /// range and memory bounded:
    ///
    /// | field | allowed |
    /// |---|---|
    /// | `bucket_secs` | 1 to 3 600 |
    /// | `retention.*`, `raw_scan_max_secs` | 60 s to 100 years |
    /// | `disk_budget_bytes`, `initial_map_bytes` | 1 MiB to 1 PiB |
    /// | `group_cap`, `query_max_groups` | 1 to 1 048 576 |
    /// | `top_scan_max_groups` | 2 to 16 777 216 |
    /// | `rollup_keep` | 1 to `group_cap` |
    /// | `max_prorate_buckets` | 1 to 10 080 (a week of minutes) |
    /// | `compression_level` | -7 to 19 (zstd) |
    ///
    /// ```
    /// use flowstore::StoreConfig;
    /// assert!(StoreConfig::default().validate().is_ok());
    /// let c = StoreConfig { max_prorate_buckets: u64::MAX, ..StoreConfig::default() };
    /// assert!(c.validate().unwrap_err().contains("max_prorate_buckets"));
    /// ```
    ///
    /// # Errors
    /// The first field out of bounds, named, with its bounds and value.
    pub fn validate(&self) -> std::result::Result<(), String> {
        const YEARS_100: u64 = 100 * 366 * 86_400;
        const PIB: u64 = 1 << 50;
        let r = &self.retention;
        let checks: [(&str, i128, i128, i128); 14] = [
            ("bucket_secs", self.bucket_secs.into(), 1, 3_600),
            (
                "retention.raw_secs",
                r.raw_secs.into(),
                60,
                YEARS_100.into(),
            ),
            (
                "retention.rollup_1m_secs",
                r.rollup_1m_secs.into(),
                60,
                YEARS_100.into(),
            ),
            (
                "retention.rollup_5m_secs",
                r.rollup_5m_secs.into(),
                60,
                YEARS_100.into(),
            ),
            (
                "retention.rollup_1h_secs",
                r.rollup_1h_secs.into(),
                60,
                YEARS_100.into(),
            ),
            (
                "raw_scan_max_secs",
                self.raw_scan_max_secs.into(),
                60,
                YEARS_100.into(),
            ),
            (
                "disk_budget_bytes",
                self.disk_budget_bytes.into(),
                1 << 20,
                PIB.into(),
            ),
            (
                "initial_map_bytes",
                self.initial_map_bytes.into(),
                1 << 20,
                PIB.into(),
            ),
            ("group_cap", self.group_cap as i128, 1, 1 << 20),
            (
                "query_max_groups",
                self.query_max_groups as i128,
                1,
                1 << 20,
            ),
            (
                "top_scan_max_groups",
                self.top_scan_max_groups as i128,
                2,
                1 << 24,
            ),
            (
                "rollup_keep",
                self.rollup_keep as i128,
                1,
                self.group_cap as i128,
            ),
            (
                "max_prorate_buckets",
                self.max_prorate_buckets.into(),
                1,
                10_080,
            ),
            ("compression_level", self.compression_level.into(), -7, 19),
        ];
        for (name, value, min, max) in checks {
            if !(min..=max).contains(&value) {
                return Err(format!("{name} must be {min}..={max} (got {value})"));
            }
        }
        Ok(())
    }
}

/// What the store did, for metrics. Counters only go up.
#[derive(Debug, Default)]
pub struct StoreStats {
    /// Flows appended.
    pub flows: AtomicU64,
    /// Batches committed.
    pub batches: AtomicU64,
    /// Raw blocks written.
    pub blocks: AtomicU64,
    /// Of those, small blocks rewritten with the next batch's flows
    /// appended: a daemon committing a few flows at a time still stores
    /// blocks of hundreds (fewer bytes per flow).
    pub merged_blocks: AtomicU64,
    /// Raw buckets removed by age.
    pub retention_buckets: AtomicU64,
    /// Flows in them.
    pub retention_flows: AtomicU64,
    /// Rollup buckets removed by age.
    pub retention_rollups: AtomicU64,
    /// Raw buckets removed to stay within the disk budget.
    pub budget_buckets: AtomicU64,
    /// Flows in them.
    pub budget_flows: AtomicU64,
    /// Rollup buckets removed to stay within the disk budget (no raw data left).
    pub budget_rollups: AtomicU64,
    /// Times the LMDB map grew.
    pub map_resizes: AtomicU64,
    /// Commits that failed (the batch was not stored).
    pub failed_batches: AtomicU64,
    /// Flows whose end time was more than [`crate::MAX_FUTURE_SECS`] past
    /// the writer's clock (a broken exporter clock, or hostile input):
    /// stored, moved to the present with their duration kept.
    pub future_flows: AtomicU64,
    /// Batches stored whose rollup update failed after the commit: the
    /// rollups were rebuilt from the raw data instead (nothing lost).
    pub rollup_errors: AtomicU64,
    /// Sum of commit latencies in microseconds.
    pub commit_micros: AtomicU64,
}

impl StoreStats {
    pub(crate) fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }
}

pub(crate) struct Dbs {
    pub(crate) meta: Database<Str, Bytes>,
    pub(crate) raw: Database<BlockKeyCodec, Bytes>,
    pub(crate) buckets: Database<U64<BigEndian>, BucketInfoCodec>,
    pub(crate) rollups: [Database<RollupKeyCodec, Bytes>; 3],
    /// Network-map rollup: hour u64 → blob of (src prefix, dst prefix) totals.
    pub(crate) matrix: Database<U64<BigEndian>, Bytes>,
    /// (tier u8 | window u64) → written_at_s u64 for rollups; dirty marks.
    pub(crate) rollup_index: Database<IndexKeyCodec, U64<BigEndian>>,
    pub(crate) networks: Database<Str, Bytes>,
    pub(crate) users: Database<Str, Bytes>,
    pub(crate) templates: Database<Bytes, Bytes>,
    pub(crate) settings: Database<Str, Bytes>,
}

pub(crate) struct Inner {
    pub(crate) env: Env,
    pub(crate) dbs: Dbs,
    pub(crate) cfg: StoreConfig,
    pub(crate) path: PathBuf,
    /// Readers hold it shared; a map resize holds it exclusively (LMDB
    /// requires no open transaction while the map is resized).
    pub(crate) gate: RwLock<()>,
    pub(crate) writer_taken: AtomicBool,
    pub(crate) stats: StoreStats,
}

/// A flow store. Cheap to clone; clones share the environment.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// use flowstore::{Store, StoreConfig, TimeRange};
/// let store = Store::open(dir.path(), StoreConfig::default())?;
/// let mut writer = store.writer()?;
/// writer.append(&[netflow9::Flow { bytes: 100, packets: 1, last_ms: 60_000, first_ms: 60_000, ..Default::default() }])?;
/// writer.flush()?; // rollups are written every few seconds; make them visible now
/// let s = store.summary(TimeRange::all(), &flowstore::filter::Filter::all())?;
/// assert_eq!((s.flows, s.bytes), (1, 100));
/// # Ok::<(), flowstore::Error>(())
/// ```
#[derive(Clone)]
pub struct Store {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .finish()
    }
}

pub(crate) const META_FORMAT: &str = "format_version";
pub(crate) const META_BUCKET_SECS: &str = "bucket_secs";
pub(crate) const META_HIGH_WATER: &str = "high_water_ms";

/// Unix seconds now.
pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The map size data may fill: the disk budget less the deletion reserve.
fn data_limit(budget: u64) -> u64 {
    let budget = budget.max(1 << 20);
    budget - (budget / 32).clamp(256 << 10, 64 << 20)
}

fn page_align(n: u64) -> usize {
    let page = 4096u64;
    (n.div_ceil(page) * page) as usize
}

impl Store {
    /// Opens (or creates) the store in directory `path`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a configuration out of bounds,
    /// [`Error::IncompatibleFormat`] for a store of another format version,
    /// [`Error::Io`] if the directory cannot be created, LMDB errors.
    pub fn open(path: impl AsRef<Path>, cfg: StoreConfig) -> Result<Store> {
        cfg.validate().map_err(Error::InvalidConfig)?;
        let path = path.as_ref().to_path_buf();
        std::fs::create_dir_all(&path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        let map = cfg
            .initial_map_bytes
            .min(data_limit(cfg.disk_budget_bytes))
            .max(1 << 20);
        let mut opts = EnvOpenOptions::new();
        opts.map_size(page_align(map)).max_dbs(16).max_readers(126);
        // SAFETY: the store directory is used only through this environment;
        // LMDB's own lock file serializes other processes; the caller must not
        // modify the files behind LMDB's back (documented on `Store`).
        #[allow(unsafe_code)]
        let env = unsafe {
            if !cfg.sync {
                opts.flags(heed::EnvFlags::NO_SYNC | heed::EnvFlags::NO_META_SYNC);
            }
            opts.open(&path)?
        };
        let mut wtxn = env.write_txn()?;
        let meta: Database<Str, Bytes> = env.create_database(&mut wtxn, Some("meta"))?;
        let version: Option<u32> = meta
            .remap_data_type::<U32<BigEndian>>()
            .get(&wtxn, META_FORMAT)
            .map_err(|_| Error::corrupt("meta", META_FORMAT.as_bytes(), "format version"))?;
        match version {
            Some(v) if v != FORMAT_VERSION => {
                return Err(Error::IncompatibleFormat {
                    path,
                    found: v,
                    expected: FORMAT_VERSION,
                })
            }
            Some(_) => {}
            None => {
                meta.remap_data_type::<U32<BigEndian>>().put(
                    &mut wtxn,
                    META_FORMAT,
                    &FORMAT_VERSION,
                )?;
                meta.remap_data_type::<U32<BigEndian>>().put(
                    &mut wtxn,
                    META_BUCKET_SECS,
                    &cfg.bucket_secs.max(1),
                )?;
            }
        }
        let stored_bucket = meta
            .remap_data_type::<U32<BigEndian>>()
            .get(&wtxn, META_BUCKET_SECS)
            .ok()
            .flatten()
            .unwrap_or(60);
        let mut cfg = cfg;
        // The bucket width is a property of the data on disk.
        cfg.bucket_secs = stored_bucket.max(1);
        let dbs = Dbs {
            meta,
            raw: env.create_database(&mut wtxn, Some("raw"))?,
            buckets: env.create_database(&mut wtxn, Some("buckets"))?,
            rollups: [
                env.create_database(&mut wtxn, Some("rollup_1m"))?,
                env.create_database(&mut wtxn, Some("rollup_5m"))?,
                env.create_database(&mut wtxn, Some("rollup_1h"))?,
            ],
            matrix: env.create_database(&mut wtxn, Some("matrix_1h"))?,
            rollup_index: env.create_database(&mut wtxn, Some("rollup_index"))?,
            networks: env.create_database(&mut wtxn, Some("networks"))?,
            users: env.create_database(&mut wtxn, Some("users"))?,
            templates: env.create_database(&mut wtxn, Some("templates"))?,
            settings: env.create_database(&mut wtxn, Some("settings"))?,
        };
        wtxn.commit()?;
        Ok(Store {
            inner: Arc::new(Inner {
                env,
                dbs,
                cfg,
                path,
                gate: RwLock::new(()),
                writer_taken: AtomicBool::new(false),
                stats: StoreStats::default(),
            }),
        })
    }

    /// The configuration in effect (the bucket width is the stored one).
    pub fn config(&self) -> &StoreConfig {
        &self.inner.cfg
    }

    /// The store's directory.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Counters.
    pub fn stats(&self) -> &StoreStats {
        &self.inner.stats
    }

    /// Bytes of the data file on disk.
    ///
    /// # Errors
    /// I/O errors from LMDB.
    pub fn disk_bytes(&self) -> Result<u64> {
        Ok(self.inner.env.real_disk_size()?)
    }

    /// Runs `f` in a short read transaction (blocked only while the map is resized).
    pub(crate) fn read<T>(&self, f: impl FnOnce(&RoTxn<'_>) -> Result<T>) -> Result<T> {
        let _g = self
            .inner
            .gate
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let txn = self.inner.env.read_txn()?;
        f(&txn)
    }

    /// The newest `last_ms` stored (0 for an empty store).
    ///
    /// # Errors
    /// LMDB errors.
    pub fn high_water_ms(&self) -> Result<u64> {
        self.read(|t| {
            Ok(self
                .inner
                .dbs
                .meta
                .remap_data_type::<U64<BigEndian>>()
                .get(t, META_HIGH_WATER)?
                .unwrap_or(0))
        })
    }

    pub(crate) fn high_water_ms_in(&self, t: &RoTxn<'_>) -> Result<u64> {
        Ok(self
            .inner
            .dbs
            .meta
            .remap_data_type::<U64<BigEndian>>()
            .get(t, META_HIGH_WATER)?
            .unwrap_or(0))
    }

    /// Grows the map (doubling, up to the budget less its deletion
    /// reserve). Returns false when it cannot grow.
    pub(crate) fn grow_map(&self) -> Result<bool> {
        let cur = self.inner.env.info().map_size as u64;
        let max = data_limit(self.inner.cfg.disk_budget_bytes);
        if cur >= max {
            return Ok(false);
        }
        self.resize_map(cur.saturating_mul(2).min(max))?;
        Ok(true)
    }

    /// Opens the deletion reserve (the map at the whole budget) while
    /// `f` runs, then closes it again: LMDB keeps the map at least as large
    /// as the pages in use, and deletions only free pages within it.
    pub(crate) fn with_reserve<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let budget = page_align(self.inner.cfg.disk_budget_bytes.max(1 << 20)) as u64;
        let cur = self.inner.env.info().map_size as u64;
        if cur < budget {
            self.resize_map(budget)?;
        }
        let result = f();
        self.resize_map(cur.min(data_limit(self.inner.cfg.disk_budget_bytes)))?;
        result
    }

    fn resize_map(&self, bytes: u64) -> Result<()> {
        let _g = self
            .inner
            .gate
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // SAFETY: the gate is held exclusively, so no read transaction is
        // open in this process, and the single writer calls this between
        // transactions (LMDB's requirement for mdb_env_set_mapsize).
        #[allow(unsafe_code)]
        unsafe {
            self.inner.env.resize(page_align(bytes))?;
        }
        StoreStats::add(&self.inner.stats.map_resizes, 1);
        Ok(())
    }
}
