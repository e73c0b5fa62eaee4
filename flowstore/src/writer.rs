//! The single writer: appends batches of flows, one write transaction per
//! batch, and keeps the rollups, retention and disk budget.
//!
//! Raw flows are committed with every batch. Rollups are aggregated in
//! memory for the most recent 1-minute buckets (and the hours of the
//! network-map rollup) and written together with a per-bucket watermark
//! (`rolled_seq`) at [`Writer::flush`] — every `flush_interval`, when the
//! cache is full, and on drop. After a crash the writer re-aggregates the
//! raw blocks above the watermark, so the rollups catch up exactly: no flow
//! counted twice, none lost.
//!
//! The cache keeps every bucket a new flow can still be pro-rated into
//! (`max_prorate_buckets`), so long flows add their older shares in memory
//! rather than by reloading and rewriting stored buckets. A bucket more
//! than [`COMPACT_LAG_MS`] behind the newest one is compacted to the
//! `rollup_keep` groups per dimension it will be stored with; later shares
//! of other groups go to its "other".

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use std::time::{Duration, Instant};

use heed::byteorder::BigEndian;
use heed::types::U64;
use heed::RwTxn;
use netflow9::Flow;

use crate::codec::block::{self, BlockHeader, MAX_BLOCK_FLOWS};
use crate::codec::keys::{addr16, BlockKey, BucketInfo, RollupKey};
use crate::error::{Error, Result};
use crate::rollup::{prorate, Agg, Dimension, FxMap, Key, MatrixAgg, Rec, Rollup, MATRIX_MS};
use crate::store::{now_secs, Store, StoreStats, META_HIGH_WATER};

/// Widths of the rollup tiers in milliseconds: 1 min, 5 min, 1 h.
pub(crate) const TIER_MS: [u64; 3] = [60_000, 300_000, 3_600_000];
/// Buckets cached beyond the pro-rating window before a flush and eviction
/// are forced.
const CACHE_SLACK: usize = 64;
/// A cached bucket this far behind the newest is compacted to `rollup_keep`
/// groups per dimension.
pub(crate) const COMPACT_LAG_MS: u64 = 5 * 60_000;
/// Shares logged in a compacted bucket before they are added to it.
const LOG_DRAIN: usize = 4096;
/// Emptied rollups kept for reuse.
const SPARE_ROLLUPS: usize = 4;
/// A raw bucket's last block takes the flows of the next append while it
/// holds fewer than this many flows and is not yet in the rollups (see
/// `Writer::merge_into_last`)...
const MERGE_BELOW: usize = 4096;
/// ... if the append brings fewer than this many flows to the bucket (a
/// large batch makes a good block of its own: rewriting the last one would
/// only cost time).
const MERGE_RUN_BELOW: usize = 512;
/// How many pairs ahead the network-map table's groups are prefetched (its
/// slots twice as far).
const MATRIX_PREFETCH: usize = 8;
/// Tier number of the network-map rollup in `rollup_index`.
pub(crate) const MATRIX_TIER: u8 = 3;
/// A 5m/1h window is rebuilt once the newest flow is this far past its end.
const MATERIALIZE_GRACE_MS: u64 = 120_000;

pub(crate) fn index_key(kind: u8, tier: u8, bucket_ms: u64) -> [u8; 10] {
    let mut k = [0u8; 10];
    k[0] = kind;
    k[1] = tier;
    k[2..].copy_from_slice(&(bucket_ms / 1000).to_be_bytes());
    k
}
pub(crate) const INDEX_WRITTEN: u8 = 0;
pub(crate) const INDEX_DIRTY: u8 = 1;
/// Kind 2: a 5 m / 1 h window some of whose finer buckets were deleted
/// (retention or budget): it can no longer be rebuilt from them, so later
/// changes are added to it instead.
pub(crate) const INDEX_SEALED: u8 = 2;

/// What one append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AppendReport {
    /// Flows stored.
    pub flows: u64,
    /// Raw blocks written.
    pub blocks: u64,
    /// Of those, small blocks rewritten with this batch's flows appended
    /// (see [`StoreStats::merged_blocks`](crate::StoreStats::merged_blocks)).
    pub merged_blocks: u64,
    /// Buckets removed to make room within the disk budget: raw ones and
    /// 1-minute rollups, oldest first (coarser rollups once none are left).
    pub budget_buckets: u64,
    /// Flows moved from the far future to the present (see
    /// [`StoreStats::future_flows`](crate::StoreStats::future_flows)).
    pub future_flows: u64,
    /// The batch is stored but its rollup update failed (counted in
    /// [`StoreStats::rollup_errors`](crate::StoreStats::rollup_errors)): the
    /// rollups are rebuilt from the raw data at the next append or flush.
    pub rollups_deferred: bool,
}

/// What maintenance did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MaintenanceReport {
    /// Raw buckets removed by age.
    pub raw_buckets: u64,
    /// Flows in them.
    pub raw_flows: u64,
    /// Rollup buckets removed by age.
    pub rollup_buckets: u64,
    /// 5-minute and 1-hour windows rebuilt.
    pub materialized: u64,
}

/// The store's single writer (see the module docs). Obtained from
/// [`Store::writer`]; a second one cannot exist at the same time.
pub struct Writer {
    store: Store,
    enc: block::Encoder,
    dec: block::Decoder,
    value: Vec<u8>,
    /// A small block's flows and the flows appended to it.
    merged: Vec<Flow>,
    blob: Vec<u8>,
    order: Vec<(u64, u32)>,
    /// 1-minute rollups of recent buckets, by bucket start (ms).
    cache: FxMap<u64, Cached>,
    /// Network-map rollups of recent hours, by hour start (ms).
    hours: FxMap<u64, CachedHour>,
    /// Start of the newest 1-minute bucket aggregated (ms).
    newest: u64,
    /// Emptied tables and logs, kept for reuse: allocating them afresh
    /// costs a page fault per 4 KiB.
    spare: Spare,
    shares: Vec<(u64, Agg)>,
    /// Exporters seen, [`addr16`] forms: logs refer to them by index.
    exporters: Vec<u128>,
    exporter_index: FxMap<u128, u32>,
    /// Per flow and hour: (hour, src, dst, share), for the network map.
    pairs: Vec<(u64, u128, u128, Agg)>,
    small_keys: FxMap<Key, Agg>,
    ranked: Vec<(u64, Key)>,
    /// Raw buckets appended since the last flush: bucket → next_seq.
    unrolled: HashMap<u64, u32>,
    /// A batch with far-future flows, moved to the present.
    fixed: Vec<Flow>,
    /// Rollups not yet written were dropped after a failure: rebuild them
    /// from raw data first.
    rollups_lost: bool,
    last_flush: Instant,
    flush_interval: Duration,
}

/// Emptied rollups and logs kept for reuse.
#[derive(Default)]
struct Spare {
    /// Rollups of buckets before compaction (large tables).
    big: Vec<Rollup>,
    /// Rollups of compacted buckets.
    small: Vec<Rollup>,
    logs: Vec<Vec<Rec>>,
    hours: Vec<MatrixAgg>,
    /// The longest log drained so far: a new log starts that large, so it
    /// is not copied as it grows.
    log_hint: usize,
}

/// The cached bucket starting at `b`, loaded (or started empty) if needed.
fn cached<'c>(
    cache: &'c mut FxMap<u64, Cached>,
    spare: &mut Spare,
    store: &Store,
    b: u64,
) -> Result<&'c mut Cached> {
    Ok(match cache.entry(b) {
        std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
        std::collections::hash_map::Entry::Vacant(v) => {
            let cfg = store.inner.cfg;
            let delta = in_sealed_window(store, b)?.then(Box::default);
            v.insert(match load_rollup(store, b, cfg.group_cap)? {
                // A stored bucket is already cut to its top groups.
                Some(r) => Cached {
                    r,
                    log: Vec::new(),
                    dirty: false,
                    compact: true,
                    delta,
                },
                None => Cached {
                    delta,
                    r: spare.big.pop().unwrap_or_default(),
                    log: spare
                        .logs
                        .pop()
                        .unwrap_or_else(|| Vec::with_capacity(spare.log_hint)),
                    dirty: false,
                    compact: false,
                },
            })
        }
    })
}

/// The cached network-map hour starting at `h`, loaded (or started empty)
/// if needed.
fn hour_entry<'c>(
    hours: &'c mut FxMap<u64, CachedHour>,
    spare: &mut Spare,
    store: &Store,
    h: u64,
) -> Result<&'c mut CachedHour> {
    Ok(match hours.entry(h) {
        std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
        std::collections::hash_map::Entry::Vacant(v) => {
            let mut m = spare.hours.pop().unwrap_or_default();
            load_matrix(store, h, &mut m)?;
            v.insert(CachedHour { m, dirty: false })
        }
    })
}

/// A cached 1-minute rollup.
#[derive(Default)]
struct Cached {
    r: Rollup,
    /// Shares not yet added to `r`: adding them in bulk, a dimension at a
    /// time, is several times faster than flow by flow.
    log: Vec<Rec>,
    /// Changed since it was last written.
    dirty: bool,
    /// Cut to `rollup_keep` groups per dimension; new groups go to "other".
    compact: bool,
    /// For a bucket of a sealed 5-minute window: what was added since the
    /// last write, added to the window (and a sealed hour) at the next.
    delta: Option<Box<Rollup>>,
}

/// A cached hour of the network-map rollup.
#[derive(Default)]
struct CachedHour {
    m: MatrixAgg,
    dirty: bool,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("cached_buckets", &self.cache.len())
            .finish()
    }
}

impl Store {
    /// The writer. Catches the rollups up with raw data left by a crash.
    ///
    /// # Errors
    /// [`Error::InvalidQuery`] if a writer already exists; LMDB errors.
    pub fn writer(&self) -> Result<Writer> {
        if self.inner.writer_taken.swap(true, Ordering::AcqRel) {
            return Err(Error::InvalidQuery("the store already has a writer"));
        }
        let mut w = Writer {
            store: self.clone(),
            enc: block::Encoder::default(),
            dec: block::Decoder::default(),
            value: Vec::new(),
            merged: Vec::new(),
            blob: Vec::new(),
            order: Vec::new(),
            cache: FxMap::default(),
            hours: FxMap::default(),
            newest: 0,
            spare: Spare::default(),
            shares: Vec::new(),
            exporters: Vec::new(),
            exporter_index: FxMap::default(),
            pairs: Vec::new(),
            small_keys: FxMap::default(),
            ranked: Vec::new(),
            unrolled: HashMap::new(),
            fixed: Vec::new(),
            rollups_lost: false,
            last_flush: Instant::now(),
            flush_interval: Duration::from_secs(5),
        };
        w.recover()?;
        Ok(w)
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.flush();
        self.store
            .inner
            .writer_taken
            .store(false, Ordering::Release);
    }
}

fn is_map_full(e: &Error) -> bool {
    matches!(e, Error::Lmdb(heed::Error::Mdb(heed::MdbError::MapFull)))
}

impl Writer {
    /// How often buffered rollups are written (default 5 s).
    pub fn set_flush_interval(&mut self, d: Duration) {
        self.flush_interval = d;
    }

    /// Stores a batch in one transaction. When LMDB's map is full it grows
    /// (up to the disk budget), and at the budget the oldest buckets are
    /// deleted, so a full map never reaches the caller.
    ///
    /// # Errors
    /// [`Error::BudgetExhausted`] if even an empty store cannot hold the
    /// batch; LMDB errors. The batch is then not stored (and counted).
    pub fn append(&mut self, flows: &[Flow]) -> Result<AppendReport> {
        let mut report = AppendReport::default();
        let started = Instant::now();
        // Far-future end times (broken clocks, hostile input) would stretch
        // every time walk to the year they name: moved to the present.
        let limit_ms = now_secs()
            .saturating_add(crate::MAX_FUTURE_SECS)
            .saturating_mul(1000);
        let mut fixed = std::mem::take(&mut self.fixed);
        let flows = if flows.iter().any(|f| f.last_ms > limit_ms) {
            fixed.clear();
            fixed.extend_from_slice(flows);
            let now_ms = now_secs().saturating_mul(1000);
            for f in fixed.iter_mut().filter(|f| f.last_ms > limit_ms) {
                let duration = f.last_ms.saturating_sub(f.first_ms);
                f.last_ms = now_ms;
                f.first_ms = now_ms.saturating_sub(duration);
                report.future_flows += 1;
            }
            &fixed[..]
        } else {
            flows
        };
        let result = self.append_checked(flows, report, started);
        self.fixed = fixed;
        result
    }

    fn append_checked(
        &mut self,
        flows: &[Flow],
        mut report: AppendReport,
        started: Instant,
    ) -> Result<AppendReport> {
        if self.rollups_lost {
            self.rebuild_rollups();
        }
        loop {
            match self.try_append(flows) {
                Ok(r) => {
                    report.flows = r.flows;
                    report.blocks = r.blocks;
                    report.merged_blocks = r.merged_blocks;
                    break;
                }
                Err(e) if is_map_full(&e) => {
                    if !self.store.grow_map()? {
                        let evicted = match self.evict_oldest() {
                            Ok(n) => n,
                            // Not even room to delete: as full as it gets.
                            Err(e) if is_map_full(&e) => 0,
                            Err(e) => {
                                StoreStats::add(&self.store.inner.stats.failed_batches, 1);
                                return Err(e);
                            }
                        };
                        if evicted == 0 {
                            StoreStats::add(&self.store.inner.stats.failed_batches, 1);
                            return Err(Error::BudgetExhausted {
                                budget: self.store.inner.cfg.disk_budget_bytes,
                                used: self.store.disk_bytes().unwrap_or(0),
                            });
                        }
                        report.budget_buckets += evicted;
                    }
                }
                Err(e) => {
                    StoreStats::add(&self.store.inner.stats.failed_batches, 1);
                    return Err(e);
                }
            }
        }
        let stats = &self.store.inner.stats;
        StoreStats::add(&stats.flows, report.flows);
        StoreStats::add(&stats.batches, 1);
        StoreStats::add(&stats.blocks, report.blocks);
        StoreStats::add(&stats.merged_blocks, report.merged_blocks);
        StoreStats::add(&stats.commit_micros, started.elapsed().as_micros() as u64);
        StoreStats::add(&stats.future_flows, report.future_flows);
        // Rollups: aggregate after the commit (they are rebuilt from raw
        // data if the process dies before the next flush). The batch is
        // stored whatever happens here: a failure is reported, not returned.
        let rolled = self.aggregate(flows).and_then(|()| self.after_aggregate());
        let rolled = rolled.and_then(|()| {
            if self.last_flush.elapsed() >= self.flush_interval {
                self.flush()
            } else {
                Ok(())
            }
        });
        if rolled.is_err() {
            StoreStats::add(&self.store.inner.stats.rollup_errors, 1);
            report.rollups_deferred = true;
            self.drop_rollups();
        }
        Ok(report)
    }

    /// Forgets every rollup not yet written (after a failed update, the
    /// cache may hold part of a batch). The raw buckets' watermarks were not
    /// advanced for it, so [`Writer::rebuild_rollups`] re-aggregates it all
    /// from raw data.
    fn drop_rollups(&mut self) {
        self.cache.clear();
        self.hours.clear();
        self.unrolled.clear();
        self.newest = 0;
        self.rollups_lost = true;
    }

    /// Cached buckets of the window `[window_ms, + width_ms)`, just
    /// sealed, send their later changes to it (what they held is in it:
    /// the writer flushed first).
    fn seal_cached(&mut self, window_ms: u64, width_ms: u64) {
        for (_, c) in self
            .cache
            .iter_mut()
            .filter(|(b, _)| (window_ms..window_ms.saturating_add(width_ms)).contains(*b))
        {
            c.delta.get_or_insert_with(Box::default);
        }
    }

    /// Re-aggregates what [`Writer::drop_rollups`] forgot, as after a crash;
    /// on failure, tries again at the next append or flush.
    fn rebuild_rollups(&mut self) {
        self.rollups_lost = false;
        if self.recover().is_err() {
            StoreStats::add(&self.store.inner.stats.rollup_errors, 1);
            self.drop_rollups();
        }
    }

    /// The pro-rating window in ms: buckets a new flow can still reach.
    fn window_ms(&self) -> u64 {
        (self.store.inner.cfg.max_prorate_buckets + 2) * TIER_MS[0]
    }

    /// Compacts buckets that fell behind; when the cache outgrows the
    /// pro-rating window, flushes and evicts what is behind it.
    fn after_aggregate(&mut self) -> Result<()> {
        let keep = self.store.inner.cfg.rollup_keep;
        let lag = self.newest.saturating_sub(COMPACT_LAG_MS);
        // Old buckets' logs are drained when compacted or long enough.
        let due: Vec<u64> = self
            .cache
            .iter()
            .filter(|(b, c)| (!c.compact && **b < lag) || c.log.len() >= LOG_DRAIN)
            .map(|(b, _)| *b)
            .collect();
        for b in due {
            self.drain(b)?;
        }
        for (b, c) in &mut self.cache {
            if !c.compact && *b < lag {
                let mut small = self.spare.small.pop().unwrap_or_default();
                c.r.compact_into(keep, &mut small, &mut self.ranked);
                let big = std::mem::replace(&mut c.r, small);
                c.compact = true;
                // Its (large, empty) tables and log serve the next new bucket.
                if self.spare.big.len() < SPARE_ROLLUPS {
                    self.spare.big.push(big);
                }
                if self.spare.logs.len() < SPARE_ROLLUPS {
                    self.spare.logs.push(std::mem::take(&mut c.log));
                }
            }
        }
        let window = self.store.inner.cfg.max_prorate_buckets as usize + 2;
        if self.cache.len() > window + CACHE_SLACK || self.hours.len() > 4 + CACHE_SLACK / 16 {
            self.flush()?;
            self.evict(self.newest.saturating_sub(self.window_ms()));
        }
        Ok(())
    }

    /// Drops cached buckets (and hours) that end before `before_ms`; they
    /// must be clean.
    fn evict(&mut self, before_ms: u64) {
        let spare = &mut self.spare;
        self.cache.retain(|b, c| {
            let keep = c.dirty || b + TIER_MS[0] > before_ms;
            if !keep && c.compact && spare.small.len() < SPARE_ROLLUPS {
                let mut r = std::mem::take(&mut c.r);
                r.clear();
                spare.small.push(r);
            }
            keep
        });
        self.hours.retain(|h, c| {
            let keep = c.dirty || h + MATRIX_MS > before_ms;
            if !keep && spare.hours.is_empty() {
                let mut m = std::mem::take(&mut c.m);
                m.clear();
                spare.hours.push(m);
            }
            keep
        });
        // Out-of-order data can leave more behind: keep the newest.
        let window = self.store.inner.cfg.max_prorate_buckets as usize + 2;
        if self.cache.len() > window + CACHE_SLACK {
            let mut starts: Vec<u64> = self.cache.keys().copied().collect();
            starts.sort_unstable();
            let cut = starts[starts.len() - window];
            self.cache.retain(|b, c| c.dirty || *b >= cut);
        }
    }

    fn try_append(&mut self, flows: &[Flow]) -> Result<AppendReport> {
        // A handle of its own: `self` is borrowed mutably below.
        let store = self.store.clone();
        let inner = &store.inner;
        let bucket_ms = u64::from(inner.cfg.bucket_secs) * 1000;
        self.order.clear();
        self.order.extend(
            flows
                .iter()
                .enumerate()
                .map(|(i, f)| (f.last_ms / bucket_ms * bucket_ms, i as u32)),
        );
        // Exporters send flows mostly in time order: often nothing to sort.
        if !self.order.is_sorted() {
            self.order.sort_unstable();
        }
        let _g = inner
            .gate
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut txn = inner.env.write_txn()?;
        let mut report = AppendReport::default();
        let mut high_water = inner
            .dbs
            .meta
            .remap_data_type::<U64<BigEndian>>()
            .get(&txn, META_HIGH_WATER)?
            .unwrap_or(0);
        let now = now_secs();
        let mut start = 0;
        while start < self.order.len() {
            let bucket = self.order[start].0;
            let end = self.order[start..]
                .iter()
                .position(|o| o.0 != bucket)
                .map_or(self.order.len(), |p| start + p);
            let key_bucket = bucket / 1000;
            let mut info = inner
                .dbs
                .buckets
                .get(&txn, &key_bucket)?
                .unwrap_or_default();
            let mut run_start = start;
            if self.merge_into_last(&mut txn, key_bucket, &info, start..end, flows)? {
                report.blocks += 1;
                report.merged_blocks += 1;
                for f in self.order[start..end]
                    .iter()
                    .map(|(_, i)| &flows[*i as usize])
                {
                    info.flows = info.flows.saturating_add(1);
                    info.bytes = info.bytes.saturating_add(f.bytes);
                    info.packets = info.packets.saturating_add(f.packets);
                    high_water = high_water.max(f.last_ms);
                }
                run_start = end;
            }
            for piece in self.order[run_start..end].chunks(MAX_BLOCK_FLOWS) {
                let mut rest: &[(u64, u32)] = piece;
                while !rest.is_empty() {
                    // Split when a block would have too many exporters.
                    let mut n = rest.len();
                    while !self.enc.encode(
                        rest[..n].iter().map(|(_, i)| &flows[*i as usize]),
                        inner.cfg.compression_level,
                        &mut self.value,
                    ) {
                        if n == 1 {
                            return Err(Error::corrupt("raw", &[], "block encoding failed"));
                        }
                        n = n.div_ceil(2);
                    }
                    inner.dbs.raw.put(
                        &mut txn,
                        &BlockKey {
                            bucket: key_bucket,
                            seq: info.next_seq,
                        },
                        &self.value,
                    )?;
                    info.next_seq += 1;
                    report.blocks += 1;
                    for f in rest[..n].iter().map(|(_, i)| &flows[*i as usize]) {
                        info.flows = info.flows.saturating_add(1);
                        info.bytes = info.bytes.saturating_add(f.bytes);
                        info.packets = info.packets.saturating_add(f.packets);
                        high_water = high_water.max(f.last_ms);
                    }
                    rest = &rest[n..];
                }
            }
            info.written_at_s = now;
            inner.dbs.buckets.put(&mut txn, &key_bucket, &info)?;
            start = end;
        }
        inner.dbs.meta.remap_data_type::<U64<BigEndian>>().put(
            &mut txn,
            META_HIGH_WATER,
            &high_water,
        )?;
        txn.commit()?;
        // Remember which raw buckets hold blocks not yet in the rollups.
        let mut last = None;
        for &(bucket, _) in &self.order {
            if last != Some(bucket) {
                self.unrolled.insert(bucket / 1000, 0);
                last = Some(bucket);
            }
        }
        report.flows = flows.len() as u64;
        Ok(report)
    }

    /// Rewrites the last block of `bucket` with the flows of
    /// `self.order[run]` appended, if they are few ([`MERGE_RUN_BELOW`]),
    /// that block is small ([`MERGE_BELOW`] flows) and not yet in the rollups (so a crash
    /// before the next flush re-aggregates all of it, old flows and new,
    /// none of which are in the stored rollups). A daemon with little
    /// traffic commits a few flows at a time: a block per commit would take
    /// more than twice the disk. The block keeps its sequence number and
    /// its flows their positions, so flow-table cursors stay valid. False
    /// when nothing was merged (the caller writes new blocks).
    fn merge_into_last(
        &mut self,
        txn: &mut RwTxn<'_>,
        bucket: u64,
        info: &BucketInfo,
        run: std::ops::Range<usize>,
        flows: &[Flow],
    ) -> Result<bool> {
        if info.next_seq == 0 || info.next_seq <= info.rolled_seq || run.len() >= MERGE_RUN_BELOW {
            return Ok(false);
        }
        let key = BlockKey {
            bucket,
            seq: info.next_seq - 1,
        };
        let inner = &self.store.inner;
        {
            let Some(v) = inner.dbs.raw.get(txn, &key)? else {
                return Ok(false);
            };
            let Some(h) = BlockHeader::parse(v) else {
                return Ok(false);
            };
            let count = h.count as usize;
            if count >= MERGE_BELOW || count + run.len() > MAX_BLOCK_FLOWS {
                return Ok(false);
            }
            if self.dec.decode(&h, &mut self.merged).is_none() {
                // A damaged block stays as it is; the flows go to a new one.
                return Ok(false);
            }
        }
        self.merged
            .extend(self.order[run].iter().map(|(_, i)| flows[*i as usize]));
        if !self.enc.encode(
            self.merged.iter(),
            inner.cfg.compression_level,
            &mut self.value,
        ) {
            // Too many exporters for one block.
            return Ok(false);
        }
        inner.dbs.raw.put(txn, &key, &self.value)?;
        Ok(true)
    }

    /// Logs the flows' pro-rated shares in the cached buckets they fall in,
    /// loading a bucket's stored rollup first when it is not cached.
    fn aggregate(&mut self, flows: &[Flow]) -> Result<()> {
        let cfg = self.store.inner.cfg;
        let mut shares = std::mem::take(&mut self.shares);
        let mut pairs = std::mem::take(&mut self.pairs);
        // Consecutive flows mostly end in the same bucket: its log is taken
        // out of the cache while they are added, and put back after.
        let mut run: Option<(u64, Vec<Rec>)> = None;
        let mut last_exporter = None;
        let mut result = Ok(());
        'flows: for f in flows {
            let e = match last_exporter {
                Some((a, i)) if a == f.exporter => i,
                _ => {
                    let i = self.exporter_index(f.exporter);
                    last_exporter = Some((f.exporter, i));
                    i
                }
            };
            let base = Rec::of(f, e);
            shares.clear();
            prorate(f, TIER_MS[0], cfg.max_prorate_buckets, |b, share| {
                shares.push((b, share));
            });
            // The network map: the flow's shares summed per hour.
            let mut i = 0;
            while i < shares.len() {
                let h = shares[i].0 / MATRIX_MS * MATRIX_MS;
                let mut sum = Agg::default();
                while let Some((_, a)) = shares.get(i).filter(|s| s.0 / MATRIX_MS * MATRIX_MS == h)
                {
                    sum.add(*a);
                    i += 1;
                }
                let (src, dst) = base.addrs();
                pairs.push((h, src, dst, sum));
            }
            for &(b, share) in &shares {
                let rec = base.with(share);
                if let Some((rb, log)) = &mut run {
                    if *rb == b {
                        log.push(rec);
                        continue;
                    }
                }
                let c = match cached(&mut self.cache, &mut self.spare, &self.store, b) {
                    Ok(c) => c,
                    Err(e) => {
                        result = Err(e);
                        break 'flows;
                    }
                };
                c.dirty = true;
                self.newest = self.newest.max(b);
                if share.flows == 1 {
                    let mut log = std::mem::take(&mut c.log);
                    log.push(rec);
                    if let Some((rb, old)) = run.replace((b, log)) {
                        if let Some(c) = self.cache.get_mut(&rb) {
                            c.log = old;
                        }
                    }
                } else {
                    c.log.push(rec);
                }
            }
        }
        if let Some((rb, log)) = run {
            if let Some(c) = self.cache.get_mut(&rb) {
                c.log = log;
            }
        }
        // The network map, in a loop of its own: its table is large and
        // hit at random.
        let mut i = 0;
        while i < pairs.len() && result.is_ok() {
            let h = pairs[i].0;
            let end = pairs[i..]
                .iter()
                .position(|p| p.0 != h)
                .map_or(pairs.len(), |p| i + p);
            match hour_entry(&mut self.hours, &mut self.spare, &self.store, h) {
                Ok(c) => {
                    c.dirty = true;
                    let run = &pairs[i..end];
                    for (j, (_, src, dst, a)) in run.iter().enumerate() {
                        if let Some((_, s, d, _)) = run.get(j + 2 * MATRIX_PREFETCH) {
                            c.m.prefetch(*s, *d, 0);
                        }
                        if let Some((_, s, d, _)) = run.get(j + MATRIX_PREFETCH) {
                            c.m.prefetch(*s, *d, 1);
                        }
                        c.m.add(*src, *dst, *a);
                    }
                }
                Err(e) => result = Err(e),
            }
            i = end;
        }
        pairs.clear();
        (self.shares, self.pairs) = (shares, pairs);
        result
    }

    /// The index of `exporter` in `self.exporters`, adding it if new.
    fn exporter_index(&mut self, exporter: std::net::IpAddr) -> u32 {
        let a = addr16(exporter);
        let next = self.exporters.len() as u32;
        let i = *self.exporter_index.entry(a).or_insert(next);
        if i == next {
            self.exporters.push(a);
        }
        i
    }

    /// Adds a bucket's logged shares to its rollup.
    fn drain(&mut self, b: u64) -> Result<()> {
        let cfg = self.store.inner.cfg;
        let Some(c) = self.cache.get_mut(&b) else {
            return Ok(());
        };
        if c.log.is_empty() {
            return Ok(());
        }
        let cap = if c.compact {
            cfg.rollup_keep
        } else {
            cfg.group_cap
        };
        c.r.add_log(&c.log, cap, &mut self.small_keys, &self.exporters);
        if let Some(d) = &mut c.delta {
            d.add_log(&c.log, cfg.group_cap, &mut self.small_keys, &self.exporters);
        }
        self.spare.log_hint = self.spare.log_hint.max(c.log.len());
        c.log.clear();
        Ok(())
    }

    /// Drains every bucket's log.
    fn drain_all(&mut self) -> Result<()> {
        let pending: Vec<u64> = self
            .cache
            .iter()
            .filter(|(_, c)| !c.log.is_empty())
            .map(|(b, _)| *b)
            .collect();
        for b in pending {
            self.drain(b)?;
        }
        Ok(())
    }

    /// Writes the cached rollups and advances the raw buckets' watermarks,
    /// in one transaction; marks the 5-minute and 1-hour windows they touch
    /// for rebuilding.
    ///
    /// # Errors
    /// LMDB errors (the cache is kept; a later flush retries).
    pub fn flush(&mut self) -> Result<()> {
        self.last_flush = Instant::now();
        if self.rollups_lost {
            self.rollups_lost = false;
            if let Err(e) = self.recover() {
                self.drop_rollups();
                return Err(e);
            }
        }
        if !self.has_dirty() {
            return Ok(());
        }
        self.drain_all()?;
        loop {
            match self.try_flush() {
                Ok(()) => break,
                Err(e) if is_map_full(&e) => {
                    if !self.store.grow_map()? && self.evict_oldest()? == 0 {
                        return Err(Error::BudgetExhausted {
                            budget: self.store.inner.cfg.disk_budget_bytes,
                            used: self.store.disk_bytes().unwrap_or(0),
                        });
                    }
                }
                Err(e) => return Err(e),
            }
        }
        self.mark_clean();
        Ok(())
    }

    fn mark_clean(&mut self) {
        for c in self.cache.values_mut() {
            c.dirty = false;
            if let Some(d) = &mut c.delta {
                d.clear();
            }
        }
        for c in self.hours.values_mut() {
            c.dirty = false;
        }
        self.unrolled.clear();
    }

    fn try_flush(&mut self) -> Result<()> {
        let inner = &self.store.inner;
        let _g = inner
            .gate
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut txn = inner.env.write_txn()?;
        let now = now_secs();
        for (hour, c) in &self.hours {
            if !c.dirty {
                continue;
            }
            c.m.encode(&mut self.blob);
            inner.dbs.matrix.put(&mut txn, &(hour / 1000), &self.blob)?;
            inner.dbs.rollup_index.put(
                &mut txn,
                &index_key(INDEX_WRITTEN, MATRIX_TIER, *hour),
                &now,
            )?;
        }
        for (bucket, c) in &self.cache {
            if !c.dirty {
                continue;
            }
            write_rollup(&mut txn, &self.store, 0, *bucket, &c.r, &mut self.blob)?;
            for tier in 1..3u8 {
                let w = TIER_MS[usize::from(tier)];
                let window = bucket / w * w;
                match &c.delta {
                    // A sealed window gets the change itself.
                    Some(d) if is_sealed(&txn, &self.store, tier, window)? => {
                        let mut r = Rollup::clone(d);
                        let cap = inner.cfg.group_cap;
                        merge_stored(&txn, &self.store, usize::from(tier), window, &mut r, cap)?;
                        write_rollup(&mut txn, &self.store, tier, window, &r, &mut self.blob)?;
                    }
                    _ => inner.dbs.rollup_index.put(
                        &mut txn,
                        &index_key(INDEX_DIRTY, tier, window),
                        &now,
                    )?,
                }
            }
        }
        for bucket in self.unrolled.keys() {
            if let Some(mut info) = inner.dbs.buckets.get(&txn, bucket)? {
                info.rolled_seq = info.next_seq;
                inner.dbs.buckets.put(&mut txn, bucket, &info)?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Re-aggregates raw blocks that were committed but not rolled up
    /// (the process stopped before a flush).
    fn recover(&mut self) -> Result<()> {
        let inner = self.store.inner.clone();
        let mut todo = Vec::new();
        {
            let txn = inner.env.read_txn()?;
            for item in inner.dbs.buckets.iter(&txn)? {
                let (bucket, info) = item?;
                if info.rolled_seq < info.next_seq {
                    todo.push((bucket, info.rolled_seq, info.next_seq));
                }
            }
        }
        let mut flows = Vec::new();
        for (bucket, from, to) in todo {
            for seq in from..to {
                {
                    let txn = inner.env.read_txn()?;
                    let key = BlockKey { bucket, seq };
                    let Some(v) = inner.dbs.raw.get(&txn, &key)? else {
                        continue;
                    };
                    let h = BlockHeader::parse(v)
                        .ok_or_else(|| Error::corrupt("raw", &key.to_bytes(), "block header"))?;
                    self.dec
                        .decode(&h, &mut flows)
                        .ok_or_else(|| Error::corrupt("raw", &key.to_bytes(), "block"))?;
                }
                self.aggregate(&flows)?;
            }
            self.unrolled.insert(bucket, 0);
            self.after_aggregate()?;
        }
        self.flush()
    }

    /// Deletes the oldest raw bucket (and its rollup cache is unaffected:
    /// rollups are kept). Returns buckets removed.
    fn evict_oldest(&mut self) -> Result<u64> {
        // Rollups of what is deleted must exist first.
        self.flush_without_evict()?;
        let store = self.store.clone();
        store.with_reserve(|| self.evict_oldest_now())
    }

    fn evict_oldest_now(&mut self) -> Result<u64> {
        let inner = self.store.inner.clone();
        let _g = inner
            .gate
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut txn = inner.env.write_txn()?;
        let mut removed = 0;
        let mut flows = 0;
        let mut total = 0;
        // Oldest first across raw flows and 1-minute rollups: everything
        // up to T, T being the latest of the keys 1/16 into each database
        // (so at least 1/16 of one of them goes). With neither left, the 5-minute then hourly rollups the
        // same way. Counted by key, not by time: one bucket from a distant
        // year must not make the cut sweep away everything before it.
        let nth = |len: u64| (len / 16) as usize;
        let span = |txn: &heed::RoTxn<'_>, tier: Option<usize>| -> Result<Option<u64>> {
            Ok(match tier {
                None => {
                    let db = &inner.dbs.buckets;
                    let n = nth(db.len(txn)?);
                    db.iter(txn)?.nth(n).transpose()?.map(|(b, _)| b)
                }
                Some(t) if t == usize::from(MATRIX_TIER) => {
                    let db = &inner.dbs.matrix;
                    let n = nth(db.len(txn)?);
                    db.iter(txn)?.nth(n).transpose()?.map(|(b, _)| b)
                }
                Some(t) => {
                    let db = &inner.dbs.rollups[t];
                    let n = nth(db.len(txn)?);
                    db.iter(txn)?.nth(n).transpose()?.map(|(k, _)| k.bucket)
                }
            })
        };
        let matrix = Some(usize::from(MATRIX_TIER));
        let groups: [&[Option<usize>]; 3] = [&[None, Some(0)], &[Some(1), matrix], &[Some(2)]];
        let mut rollups_removed = 0;
        for group in groups {
            let spans: Vec<(Option<usize>, u64)> = group
                .iter()
                .filter_map(|t| span(&txn, *t).transpose().map(|s| s.map(|s| (*t, s))))
                .collect::<Result<_>>()?;
            let Some(cut) = spans.iter().map(|s| s.1.saturating_add(1)).max() else {
                continue;
            };
            for (tier, _) in spans {
                match tier {
                    None => {
                        let victims: Vec<(u64, u64)> = inner
                            .dbs
                            .buckets
                            .range(&txn, &(..cut))?
                            .map(|r| r.map(|(b, i)| (b, i.flows)))
                            .collect::<heed::Result<_>>()?;
                        for (b, n) in victims {
                            delete_raw_bucket(&mut txn, &self.store, b)?;
                            removed += 1;
                            flows += n;
                        }
                    }
                    Some(t) if t == usize::from(MATRIX_TIER) => {
                        let n = inner.dbs.matrix.delete_range(&mut txn, &(..cut))?;
                        let lo_i = index_key(INDEX_WRITTEN, MATRIX_TIER, 0);
                        let hi_i =
                            index_key(INDEX_WRITTEN, MATRIX_TIER, cut.saturating_sub(1) * 1000);
                        inner
                            .dbs
                            .rollup_index
                            .delete_range(&mut txn, &(lo_i..=hi_i))?;
                        self.hours.retain(|h, _| *h >= cut * 1000);
                        rollups_removed += n as u64;
                    }
                    Some(t) => {
                        // The coarser windows that lose finer buckets.
                        let windows = if t < 2 {
                            let (next, windows) =
                                self.rebuild_before_sealing(&inner.env, txn, t, cut)?;
                            txn = next;
                            windows
                        } else {
                            Vec::new()
                        };
                        if t == 0 {
                            self.cache.retain(|b, _| *b >= cut * 1000);
                        }
                        let lo_k = RollupKey { bucket: 0, dim: 0 };
                        let hi_k = RollupKey {
                            bucket: cut.saturating_sub(1),
                            dim: u8::MAX,
                        };
                        for window in windows {
                            seal(&mut txn, &self.store, t as u8 + 1, window, now_secs())?;
                            self.seal_cached(window, TIER_MS[t + 1]);
                        }
                        if t > 0 {
                            let lo_s = index_key(INDEX_SEALED, t as u8, 0);
                            let hi_s =
                                index_key(INDEX_SEALED, t as u8, cut.saturating_sub(1) * 1000);
                            inner
                                .dbs
                                .rollup_index
                                .delete_range(&mut txn, &(lo_s..=hi_s))?;
                        }
                        let n = inner.dbs.rollups[t].delete_range(&mut txn, &(lo_k..=hi_k))?;
                        let lo_i = index_key(INDEX_WRITTEN, t as u8, 0);
                        let hi_i = index_key(INDEX_WRITTEN, t as u8, cut.saturating_sub(1) * 1000);
                        inner
                            .dbs
                            .rollup_index
                            .delete_range(&mut txn, &(lo_i..=hi_i))?;
                        rollups_removed +=
                            (n / Dimension::ALL.len()).max(usize::from(n > 0)) as u64;
                    }
                }
                // One transaction per database: the pages the first frees
                // are what the next one needs when the map is full.
                txn.commit()?;
                StoreStats::add(&inner.stats.budget_buckets, removed);
                StoreStats::add(&inner.stats.budget_flows, flows);
                StoreStats::add(&inner.stats.budget_rollups, rollups_removed);
                total += removed + rollups_removed;
                (removed, flows, rollups_removed) = (0, 0, 0);
                txn = inner.env.write_txn()?;
            }
            break;
        }
        txn.commit()?;
        Ok(total)
    }

    /// Before tier `t`'s buckets older than `cut` (seconds) are evicted and
    /// the coarser windows they belong to sealed: rebuilds those windows
    /// still waiting to be rebuilt, while their finer buckets are all there
    /// (sealed, they never would be), and commits. Without room for that,
    /// they are sealed as they are (their missing minutes counted in
    /// `rollup_errors`, logged by the caller through the report).
    /// Returns a fresh transaction and the windows to seal.
    fn rebuild_before_sealing<'e>(
        &mut self,
        env: &'e heed::Env,
        txn: RwTxn<'e>,
        t: usize,
        cut: u64,
    ) -> Result<(RwTxn<'e>, Vec<u64>)> {
        let inner = self.store.inner.clone();
        let tier = t as u8 + 1;
        let w = TIER_MS[t + 1];
        let lo_k = RollupKey { bucket: 0, dim: 0 };
        let hi_k = RollupKey {
            bucket: cut.saturating_sub(1),
            dim: u8::MAX,
        };
        let mut windows: Vec<u64> = Vec::new();
        for item in inner.dbs.rollups[t].range(&txn, &(lo_k..=hi_k))? {
            let window = item?.0.bucket.saturating_mul(1000) / w * w;
            if windows.last() != Some(&window) {
                windows.push(window);
            }
        }
        let mut dirty = Vec::new();
        for &window in &windows {
            if inner
                .dbs
                .rollup_index
                .get(&txn, &index_key(INDEX_DIRTY, tier, window))?
                .is_some()
                && !is_sealed(&txn, &self.store, tier, window)?
            {
                dirty.push(window);
            }
        }
        if dirty.is_empty() {
            return Ok((txn, windows));
        }
        let mut txn = txn;
        let group_cap = inner.cfg.group_cap;
        let mut result = Ok(());
        for window in &dirty {
            result = rebuild(
                &mut txn,
                &self.store,
                tier,
                *window,
                group_cap,
                &mut self.blob,
            );
            if result.is_err() {
                break;
            }
        }
        match result {
            Ok(()) => txn.commit()?,
            Err(e) if is_map_full(&e) => {
                txn.abort();
                StoreStats::add(&inner.stats.rollup_errors, dirty.len() as u64);
            }
            Err(e) => return Err(e),
        }
        Ok((env.write_txn()?, windows))
    }

    fn has_dirty(&self) -> bool {
        !self.unrolled.is_empty()
            || self.cache.values().any(|c| c.dirty)
            || self.hours.values().any(|c| c.dirty)
    }

    fn flush_without_evict(&mut self) -> Result<()> {
        if !self.has_dirty() {
            return Ok(());
        }
        self.drain_all()?;
        match self.try_flush() {
            Ok(()) => {
                self.mark_clean();
                Ok(())
            }
            // No room even for the rollups: evicting raw data frees it.
            Err(e) if is_map_full(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Retention and rollup materialization: removes raw buckets and rollup
    /// buckets older than their tier's retention (age = time since written,
    /// wall clock `now_s`), and rebuilds 5-minute and 1-hour windows that
    /// are complete (or all dirty ones with `force`).
    ///
    /// # Errors
    /// LMDB errors.
    pub fn maintain(&mut self, now_s: u64, force: bool) -> Result<MaintenanceReport> {
        self.flush()?;
        let inner = self.store.inner.clone();
        let cfg = inner.cfg;
        let mut report = MaintenanceReport::default();
        let high_water = self.store.high_water_ms()?;
        let _g = inner
            .gate
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut txn = inner.env.write_txn()?;

        // Rebuild dirty windows: 5-minute ones first, then hours.
        for tier in 1..3u8 {
            let mut dirty = Vec::new();
            let lo = index_key(INDEX_DIRTY, tier, 0);
            let hi = index_key(INDEX_DIRTY, tier, u64::MAX / 1000 * 1000);
            for item in inner.dbs.rollup_index.range(&txn, &(lo..=hi))? {
                let (k, v) = item?;
                let window = u64::from_be_bytes(
                    k.get(2..10)
                        .and_then(|s| s.try_into().ok())
                        .unwrap_or([0; 8]),
                ) * 1000;
                let marked = v;
                let end = window.saturating_add(TIER_MS[usize::from(tier)]);
                if force
                    || end.saturating_add(MATERIALIZE_GRACE_MS) <= high_water
                    || marked.saturating_add(600) <= now_s
                {
                    dirty.push(window);
                }
            }
            for window in dirty {
                if is_sealed(&txn, &self.store, tier, window)? {
                    // Its finer buckets are incomplete: changes were added
                    // to it directly.
                    inner
                        .dbs
                        .rollup_index
                        .delete(&mut txn, &index_key(INDEX_DIRTY, tier, window))?;
                    continue;
                }
                rebuild(
                    &mut txn,
                    &self.store,
                    tier,
                    window,
                    cfg.group_cap,
                    &mut self.blob,
                )?;
                report.materialized += 1;
            }
        }

        // Raw retention by write time; only buckets already rolled up.
        let mut old = Vec::new();
        for item in inner.dbs.buckets.iter(&txn)? {
            let (b, info) = item?;
            if info.written_at_s.saturating_add(cfg.retention.raw_secs) <= now_s
                && info.rolled_seq >= info.next_seq
            {
                old.push((b, info.flows));
            }
        }
        for (b, n) in old {
            delete_raw_bucket(&mut txn, &self.store, b)?;
            report.raw_buckets += 1;
            report.raw_flows += n;
        }

        // Rollup retention by write time; 1-minute buckets wait for their
        // windows to be rebuilt.
        // The network-map rollup is kept as long as the 5-minute tier.
        let keep = [
            cfg.retention.rollup_1m_secs,
            cfg.retention.rollup_5m_secs,
            cfg.retention.rollup_1h_secs,
            cfg.retention.rollup_5m_secs,
        ];
        for tier in 0..=MATRIX_TIER {
            let lo = index_key(INDEX_WRITTEN, tier, 0);
            let hi = index_key(INDEX_WRITTEN, tier, u64::MAX / 1000 * 1000);
            let mut expired = Vec::new();
            for item in inner.dbs.rollup_index.range(&txn, &(lo..=hi))? {
                let (k, v) = item?;
                let written = v;
                if written.saturating_add(keep[usize::from(tier)]) <= now_s {
                    let bucket = u64::from_be_bytes(
                        k.get(2..10)
                            .and_then(|s| s.try_into().ok())
                            .unwrap_or([0; 8]),
                    );
                    expired.push(bucket);
                }
            }
            for bucket in expired {
                if tier == MATRIX_TIER {
                    inner.dbs.matrix.delete(&mut txn, &bucket)?;
                    inner
                        .dbs
                        .rollup_index
                        .delete(&mut txn, &index_key(INDEX_WRITTEN, tier, bucket * 1000))?;
                    self.hours.remove(&(bucket * 1000));
                    report.rollup_buckets += 1;
                    continue;
                }
                if tier == 0 {
                    self.cache.remove(&(bucket * 1000));
                }
                if tier < 2 {
                    let coarser = TIER_MS[usize::from(tier) + 1];
                    let w = bucket * 1000 / coarser * coarser;
                    if inner
                        .dbs
                        .rollup_index
                        .get(&txn, &index_key(INDEX_DIRTY, tier + 1, w))?
                        .is_some()
                    {
                        continue;
                    }
                    seal(&mut txn, &self.store, tier + 1, w, now_s)?;
                    self.seal_cached(w, coarser);
                }
                if tier > 0 {
                    inner
                        .dbs
                        .rollup_index
                        .delete(&mut txn, &index_key(INDEX_SEALED, tier, bucket * 1000))?;
                }
                for d in Dimension::ALL {
                    inner.dbs.rollups[usize::from(tier)].delete(
                        &mut txn,
                        &RollupKey {
                            bucket,
                            dim: d as u8,
                        },
                    )?;
                }
                inner
                    .dbs
                    .rollup_index
                    .delete(&mut txn, &index_key(INDEX_WRITTEN, tier, bucket * 1000))?;
                report.rollup_buckets += 1;
            }
        }
        txn.commit()?;
        StoreStats::add(&inner.stats.retention_buckets, report.raw_buckets);
        StoreStats::add(&inner.stats.retention_flows, report.raw_flows);
        StoreStats::add(&inner.stats.retention_rollups, report.rollup_buckets);
        Ok(report)
    }
}

fn delete_raw_bucket(txn: &mut RwTxn<'_>, store: &Store, bucket: u64) -> Result<()> {
    let dbs = &store.inner.dbs;
    let lo = BlockKey { bucket, seq: 0 };
    let hi = BlockKey {
        bucket,
        seq: u32::MAX,
    };
    dbs.raw.delete_range(txn, &(lo..=hi))?;
    dbs.buckets.delete(txn, &bucket)?;
    Ok(())
}

/// Whether the `tier` window holding `bucket_ms` is sealed (some of its
/// finer buckets were deleted).
fn is_sealed(txn: &heed::RoTxn<'_>, store: &Store, tier: u8, bucket_ms: u64) -> Result<bool> {
    let w = TIER_MS[usize::from(tier)];
    let key = index_key(INDEX_SEALED, tier, bucket_ms / w * w);
    Ok(store.inner.dbs.rollup_index.get(txn, &key)?.is_some())
}

/// Whether the 5-minute or the hourly window holding `bucket_ms` is sealed,
/// in one read transaction.
fn in_sealed_window(store: &Store, bucket_ms: u64) -> Result<bool> {
    let txn = store.inner.env.read_txn()?;
    Ok(is_sealed(&txn, store, 1, bucket_ms)? || is_sealed(&txn, store, 2, bucket_ms)?)
}

/// Rebuilds the rollup window of `tier` at `window_ms` from its finer
/// tier's buckets and clears its dirty mark.
fn rebuild(
    txn: &mut RwTxn<'_>,
    store: &Store,
    tier: u8,
    window_ms: u64,
    group_cap: usize,
    blob: &mut Vec<u8>,
) -> Result<()> {
    let mut r = Rollup::default();
    let finer = usize::from(tier) - 1;
    let step = TIER_MS[finer];
    let mut b = window_ms;
    while b < window_ms + TIER_MS[usize::from(tier)] {
        merge_stored(txn, store, finer, b, &mut r, group_cap)?;
        b += step;
    }
    write_rollup(txn, store, tier, window_ms, &r, blob)?;
    store
        .inner
        .dbs
        .rollup_index
        .delete(txn, &index_key(INDEX_DIRTY, tier, window_ms))?;
    Ok(())
}

/// Marks the `tier` window starting at `window_ms` sealed.
fn seal(txn: &mut RwTxn<'_>, store: &Store, tier: u8, window_ms: u64, now_s: u64) -> Result<()> {
    let key = index_key(INDEX_SEALED, tier, window_ms);
    store.inner.dbs.rollup_index.put(txn, &key, &now_s)?;
    Ok(())
}

/// Writes every dimension of a rollup bucket and its written-at mark.
fn write_rollup(
    txn: &mut RwTxn<'_>,
    store: &Store,
    tier: u8,
    bucket_ms: u64,
    r: &Rollup,
    blob: &mut Vec<u8>,
) -> Result<()> {
    let inner = &store.inner;
    let mut entries = Vec::new();
    for (d, agg) in Dimension::ALL.iter().zip(&r.dims) {
        agg.encode(*d, inner.cfg.rollup_keep, blob, &mut entries);
        inner.dbs.rollups[usize::from(tier)].put(
            txn,
            &RollupKey {
                bucket: bucket_ms / 1000,
                dim: *d as u8,
            },
            blob,
        )?;
    }
    inner
        .dbs
        .rollup_index
        .put(txn, &index_key(INDEX_WRITTEN, tier, bucket_ms), &now_secs())?;
    Ok(())
}

/// Merges the stored rollup of `tier` at `bucket_ms` into `r` (if any).
pub(crate) fn merge_stored(
    txn: &heed::RoTxn<'_>,
    store: &Store,
    tier: usize,
    bucket_ms: u64,
    r: &mut Rollup,
    cap: usize,
) -> Result<bool> {
    let db = &store.inner.dbs.rollups[tier];
    let mut found = false;
    for (d, agg) in Dimension::ALL.iter().zip(r.dims.iter_mut()) {
        let key = RollupKey {
            bucket: bucket_ms / 1000,
            dim: *d as u8,
        };
        if let Some(v) = db.get(txn, &key)? {
            agg.decode_into(*d, v, cap).ok_or_else(|| {
                Error::corrupt("rollup", &key.bucket.to_be_bytes(), "rollup blob")
            })?;
            found = true;
        }
    }
    Ok(found)
}

fn load_rollup(store: &Store, bucket_ms: u64, cap: usize) -> Result<Option<Rollup>> {
    let mut r = Rollup::default();
    let txn = store.inner.env.read_txn()?;
    Ok(merge_stored(&txn, store, 0, bucket_ms, &mut r, cap)?.then_some(r))
}

/// Merges the stored network-map hour at `hour_ms` (if any) into `m`.
fn load_matrix(store: &Store, hour_ms: u64, m: &mut MatrixAgg) -> Result<()> {
    let txn = store.inner.env.read_txn()?;
    if let Some(v) = store.inner.dbs.matrix.get(&txn, &(hour_ms / 1000))? {
        m.decode_into(v)
            .ok_or_else(|| Error::corrupt("matrix", &(hour_ms / 1000).to_be_bytes(), "blob"))?;
    }
    Ok(())
}
