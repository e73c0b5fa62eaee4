//! The queries behind Flower's charts, tables, top-N lists and network map.
//!
//! Rollup-backed answers (unfiltered series, summaries and top lists) read
//! the coarsest tier that answers exactly; everything else scans raw blocks,
//! skipping blocks by time range and, for address filters, by each block's
//! Bloom filter. Every answer says which tier it used.
//!
//! Time semantics, everywhere: a flow's bytes and packets are pro-rated over
//! the minutes it spans; the flow is counted once, at its `last_ms`. A
//! range is `[from_ms, to_ms)`.

use std::collections::HashMap;
use std::net::IpAddr;

use netflow9::Flow;

use crate::cidr::Cidr;
use crate::codec::block::{self, BlockHeader};
use crate::codec::keys::{addr16, BlockKey, RollupKey};
use crate::error::{Error, Result};
use crate::filter::Filter;
use crate::rollup::{prorate, Agg, DimAgg, Dimension, FxMap, Group, Key};
use crate::store::Store;
use crate::writer::{index_key, INDEX_DIRTY, TIER_MS};

/// A time range `[from_ms, to_ms)` in Unix milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct TimeRange {
    /// Start, inclusive.
    pub from_ms: u64,
    /// End, exclusive.
    pub to_ms: u64,
}

impl TimeRange {
    /// `[from_ms, to_ms)`.
    ///
    /// # Errors
    /// [`Error::InvalidQuery`] if `from_ms > to_ms`.
    pub fn new(from_ms: u64, to_ms: u64) -> Result<TimeRange> {
        if from_ms > to_ms {
            return Err(Error::InvalidQuery("from is after to"));
        }
        Ok(TimeRange { from_ms, to_ms })
    }

    /// All time.
    #[must_use]
    pub fn all() -> TimeRange {
        TimeRange {
            from_ms: 0,
            to_ms: u64::MAX / 2,
        }
    }

    fn aligned(&self, width: u64) -> bool {
        self.from_ms % width == 0 && (self.to_ms % width == 0 || self.to_ms >= u64::MAX / 4)
    }
}

/// What to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    /// Bytes.
    Bytes,
    /// Packets.
    Packets,
    /// Flows.
    Flows,
}

/// Where an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// Raw flows.
    Raw,
    /// 1-minute rollups.
    Minute,
    /// 5-minute rollups.
    FiveMinutes,
    /// 1-hour rollups.
    Hour,
}

impl Tier {
    fn from_index(i: usize) -> Tier {
        [Tier::Minute, Tier::FiveMinutes, Tier::Hour]
            .get(i)
            .copied()
            .unwrap_or(Tier::Hour)
    }
}

/// Totals over a range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    /// Flows counted (by `last_ms`).
    pub flows: u64,
    /// Bytes (raw or estimated, as asked).
    pub bytes: u64,
    /// Packets.
    pub packets: u64,
    /// The tier that answered.
    pub tier: Tier,
}

/// What to group by: a stored dimension, or named networks (source or destination).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupBy {
    /// A stored dimension.
    Dim(Dimension),
    /// Source address by named network.
    SrcNetwork(Vec<Network>),
    /// Destination address by named network.
    DstNetwork(Vec<Network>),
}

/// A named set of CIDRs (the map's nodes).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Network {
    /// Name shown on the map.
    pub name: String,
    /// The CIDRs it covers.
    pub cidrs: Vec<Cidr>,
}

/// Parameters of [`Store::series`].
#[derive(Debug, Clone)]
pub struct SeriesQuery {
    /// Time range.
    pub range: TimeRange,
    /// Step in seconds (a multiple of 60).
    pub step_secs: u64,
    /// Grouping.
    pub by: GroupBy,
    /// Metric.
    pub metric: Metric,
    /// Filter.
    pub filter: Filter,
    /// Series to return besides "other".
    pub top: usize,
    /// Raw counts instead of sampling-scaled estimates.
    pub raw: bool,
}

/// Points for a stacked area chart: values per second at each step.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Series {
    /// Start of each step (Unix ms).
    pub timestamps: Vec<u64>,
    /// One series per group, largest first.
    pub series: Vec<SeriesLine>,
    /// Everything else.
    pub other: Vec<f64>,
    /// The tier that answered.
    pub tier: Tier,
    /// True if some groups were folded into "other" before ranking (values
    /// of the listed groups may then be lower bounds).
    pub truncated: bool,
}

/// One group's values.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SeriesLine {
    /// The group.
    pub group: Group,
    /// Per-second rate at each step.
    pub values: Vec<f64>,
}

/// Parameters of [`Store::top`].
#[derive(Debug, Clone)]
pub struct TopQuery {
    /// Time range.
    pub range: TimeRange,
    /// Grouping.
    pub by: GroupBy,
    /// Ranking metric.
    pub metric: Metric,
    /// Rows.
    pub n: usize,
    /// Filter.
    pub filter: Filter,
    /// Raw counts instead of estimates.
    pub raw: bool,
}

/// A top-N list.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Top {
    /// Rows, best first.
    pub rows: Vec<TopRow>,
    /// Everything not in `rows`.
    pub other: Agg,
    /// The tier that answered.
    pub tier: Tier,
    /// False if rollups had folded groups and the ranking may be approximate.
    pub exact: bool,
}

/// One row of a top list.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TopRow {
    /// The group.
    pub group: Group,
    /// Its totals.
    pub agg: Agg,
}

/// Order of the flow table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    /// Newest first (by bucket of `last_ms`, then arrival), the default.
    #[default]
    TimeDesc,
    /// Oldest first.
    TimeAsc,
}

/// Parameters of [`Store::flows`].
#[derive(Debug, Clone)]
pub struct FlowsQuery {
    /// Flows whose `last_ms` is in this range.
    pub range: TimeRange,
    /// Filter.
    pub filter: Filter,
    /// Order.
    pub order: Order,
    /// Rows per page (≤ 10 000).
    pub limit: usize,
    /// Where the previous page ended.
    pub cursor: Option<Cursor>,
}

/// A stable position in the flow table: after this (bucket, block, index).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cursor {
    bucket: u64,
    seq: u32,
    index: u32,
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:x}.{:x}.{:x}", self.bucket, self.seq, self.index)
    }
}

impl std::str::FromStr for Cursor {
    type Err = Error;
    fn from_str(s: &str) -> Result<Cursor> {
        let bad = || Error::InvalidQuery("cursor");
        let mut it = s.split('.');
        let mut next = || it.next().ok_or_else(bad);
        let bucket = u64::from_str_radix(next()?, 16).map_err(|_| bad())?;
        let seq = u32::from_str_radix(next()?, 16).map_err(|_| bad())?;
        let index = u32::from_str_radix(next()?, 16).map_err(|_| bad())?;
        Ok(Cursor { bucket, seq, index })
    }
}

/// One page of the flow table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowsPage {
    /// The flows.
    pub flows: Vec<Flow>,
    /// Where to continue, or `None` at the end.
    pub next_cursor: Option<Cursor>,
}

/// Traffic between named networks.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Matrix {
    /// Network names, then "other".
    pub nodes: Vec<String>,
    /// Non-empty (source, destination) pairs.
    pub links: Vec<Link>,
}

/// One edge of the matrix.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Link {
    /// Source node.
    pub src: String,
    /// Destination node.
    pub dst: String,
    /// Totals.
    #[serde(flatten)]
    pub agg: Agg,
}

/// Maps addresses to networks by longest prefix (one hash lookup per
/// distinct prefix length).
#[derive(Debug, Clone)]
pub(crate) struct NetworkIndex {
    /// (prefix length in the 128-bit mapped space, masked address → network index)
    levels: Vec<(u32, FxMap<u128, usize>)>,
    names: Vec<String>,
}

impl NetworkIndex {
    pub(crate) fn new(networks: &[Network]) -> NetworkIndex {
        let mut by_len: HashMap<u32, FxMap<u128, usize>> = HashMap::new();
        for (i, n) in networks.iter().enumerate() {
            for c in &n.cidrs {
                let len = if c.is_ipv4() {
                    96 + u32::from(c.prefix())
                } else {
                    u32::from(c.prefix())
                };
                by_len
                    .entry(len)
                    .or_default()
                    .entry(mask(c.first(), len))
                    .or_insert(i);
            }
        }
        let mut levels: Vec<_> = by_len.into_iter().collect();
        levels.sort_by_key(|l| std::cmp::Reverse(l.0));
        NetworkIndex {
            levels,
            names: networks.iter().map(|n| n.name.clone()).collect(),
        }
    }

    /// The network of `a`, or `names.len()` for "other".
    #[inline]
    pub(crate) fn lookup(&self, a: IpAddr) -> usize {
        let v = addr16(a);
        for (len, map) in &self.levels {
            if let Some(&i) = map.get(&mask(v, *len)) {
                return i;
            }
        }
        self.names.len()
    }

    fn name(&self, i: usize) -> String {
        self.names
            .get(i)
            .cloned()
            .unwrap_or_else(|| "other".to_string())
    }
}

#[inline]
fn mask(v: u128, len: u32) -> u128 {
    if len == 0 {
        0
    } else {
        v & (u128::MAX << (128 - len.min(128)))
    }
}

/// Reusable state for scanning raw blocks.
struct Scan {
    dec: block::Decoder,
    flows: Vec<Flow>,
}

impl Store {
    fn bucket_ms(&self) -> u64 {
        u64::from(self.inner.cfg.bucket_secs) * 1000
    }

    fn prorate_span_ms(&self) -> u64 {
        self.inner.cfg.max_prorate_buckets * TIER_MS[0]
    }

    /// Calls `f` for each raw block whose flows may matter: buckets from the
    /// one holding `from` to the one holding `to_last` (by last_ms), in
    /// ascending or descending key order, skipping blocks by their time range
    /// and address Bloom filter. `f` returns false to stop.
    fn scan_blocks(
        &self,
        from_last: u64,
        to_last: u64,
        descending: bool,
        start_after: Option<Cursor>,
        filter: &Filter,
        mut f: impl FnMut(BlockKey, &[Flow]) -> bool,
    ) -> Result<()> {
        let cfg = &self.inner.cfg;
        // Clamp to the data actually stored, so "all time" means what exists.
        let (first, hw) = self.read(|t| {
            let first = self
                .inner
                .dbs
                .raw
                .first(t)?
                .map_or(u64::MAX / 2, |(k, _)| k.bucket * 1000);
            Ok((first, self.high_water_ms_in(t)?))
        })?;
        let from_last = from_last.max(first);
        let to_last = to_last.min(hw);
        if from_last > to_last {
            return Ok(());
        }
        if to_last.saturating_sub(from_last) / 1000
            > cfg
                .raw_scan_max_secs
                .saturating_add(self.prorate_span_ms() / 1000)
        {
            return Err(Error::QueryTooLarge {
                what: "raw scan time range (seconds)",
                limit: cfg.raw_scan_max_secs,
            });
        }
        let hints = filter.required_addrs();
        let bw = self.bucket_ms();
        let lo = BlockKey {
            bucket: from_last / bw * bw / 1000,
            seq: 0,
        };
        let hi = BlockKey {
            bucket: to_last / bw * bw / 1000,
            seq: u32::MAX,
        };
        let mut scan = Scan {
            dec: block::Decoder::default(),
            flows: Vec::new(),
        };
        self.read(|txn| {
            let db = &self.inner.dbs.raw;
            let mut visit = |k: BlockKey, v: &[u8]| -> Result<bool> {
                let h = BlockHeader::parse(v)
                    .ok_or_else(|| Error::corrupt("raw", &k.to_bytes(), "block header"))?;
                if h.max_last_ms < from_last || h.min_last_ms > to_last {
                    return Ok(true);
                }
                if let Some(cidrs) = &hints {
                    // Host routes can be checked against the Bloom filter.
                    if cidrs
                        .iter()
                        .all(|c| c.prefix() == if c.is_ipv4() { 32 } else { 128 })
                        && !cidrs.iter().any(|c| h.may_contain(c.addr()))
                    {
                        return Ok(true);
                    }
                }
                scan.dec
                    .decode(&h, &mut scan.flows)
                    .ok_or_else(|| Error::corrupt("raw", &k.to_bytes(), "block"))?;
                Ok(f(k, &scan.flows))
            };
            if descending {
                let hi = match start_after {
                    Some(c) => BlockKey {
                        bucket: c.bucket,
                        seq: c.seq,
                    },
                    None => hi,
                };
                for item in db.rev_range(txn, &(lo..=hi))? {
                    let (k, v) = item?;
                    if !visit(k, v)? {
                        break;
                    }
                }
            } else {
                let lo = match start_after {
                    Some(c) => BlockKey {
                        bucket: c.bucket,
                        seq: c.seq,
                    },
                    None => lo,
                };
                for item in db.range(txn, &(lo..=hi))? {
                    let (k, v) = item?;
                    if !visit(k, v)? {
                        break;
                    }
                }
            }
            Ok(())
        })
    }

    /// Raw scan: calls `f(flow, share_in_range)` for every flow matching the
    /// filter whose pro-rated share of `range` is non-empty.
    fn scan_prorated(
        &self,
        range: TimeRange,
        filter: &Filter,
        mut f: impl FnMut(&Flow, Agg, u64),
    ) -> Result<()> {
        let span = self.prorate_span_ms();
        let max_buckets = self.inner.cfg.max_prorate_buckets;
        let to_last = range.to_ms.saturating_add(span);
        self.scan_blocks(range.from_ms, to_last, false, None, filter, |_, flows| {
            for fl in flows {
                if fl.last_ms < range.from_ms || !filter.matches(fl) {
                    continue;
                }
                prorate(fl, TIER_MS[0], max_buckets, |b, share| {
                    if b >= range.from_ms && b < range.to_ms {
                        f(fl, share, b);
                    }
                });
            }
            true
        })
    }

    /// Total flows, bytes and packets in `range` matching `filter`.
    ///
    /// # Errors
    /// [`Error::QueryTooLarge`] for a raw scan over a too long range; LMDB errors.
    pub fn summary(&self, range: TimeRange, filter: &Filter) -> Result<Summary> {
        self.summary_raw(range, filter, true)
    }

    /// As [`Store::summary`], choosing raw counts or sampling-scaled estimates.
    ///
    /// # Errors
    /// As [`Store::summary`].
    pub fn summary_raw(&self, range: TimeRange, filter: &Filter, raw: bool) -> Result<Summary> {
        let mut total = Agg::default();
        let tier = if filter.is_all() && range.aligned(TIER_MS[0]) {
            // Any step that is a multiple of every tier: totals need no steps.
            let (tier, _) = self.rollup_buckets(range, 3600, |_, dims| {
                total.add(dims[Dimension::Total as usize].total());
            })?;
            tier
        } else {
            self.scan_prorated(range, filter, |_, share, _| total.add(share))?;
            Tier::Raw
        };
        Ok(Summary {
            flows: total.flows,
            bytes: total.get(Metric::Bytes, raw),
            packets: total.get(Metric::Packets, raw),
            tier,
        })
    }

    /// Reads rollups for `range` from the coarsest tier whose buckets align
    /// with the range and `step_secs` and are all built, calling `f(bucket_ms,
    /// dims)` per stored bucket. Returns the tier and whether groups were folded.
    fn rollup_buckets(
        &self,
        range: TimeRange,
        step_secs: u64,
        mut f: impl FnMut(u64, &[DimAgg]),
    ) -> Result<(Tier, bool)> {
        let cap = self
            .inner
            .cfg
            .group_cap
            .max(self.inner.cfg.query_max_groups);
        let hw = self.high_water_ms()?;
        self.read(|txn| {
            let dbs = &self.inner.dbs;
            // Coarsest usable tier.
            let mut tier = 0;
            for t in (1..3).rev() {
                let w = TIER_MS[t];
                if step_secs * 1000 % w != 0 || !range.aligned(w) {
                    continue;
                }
                let lo = index_key(INDEX_DIRTY, t as u8, range.from_ms / w * w);
                let hi = index_key(INDEX_DIRTY, t as u8, range.to_ms / w * w);
                if dbs.rollup_index.range(txn, &(lo..=hi))?.next().is_none() {
                    tier = t;
                    break;
                }
            }
            // For all-time queries, start at the first stored bucket.
            let db = &dbs.rollups[tier];
            let first = db.first(txn)?.map(|(k, _)| k.bucket * 1000).unwrap_or(0);
            let from = range.from_ms.max(first / TIER_MS[tier] * TIER_MS[tier]);
            let to = range.to_ms.min(hw.saturating_add(1)).max(from);
            let lo = RollupKey {
                bucket: from / 1000,
                dim: 0,
            };
            let hi = RollupKey {
                bucket: to.saturating_sub(1) / 1000,
                dim: u8::MAX,
            };
            let mut dims: Vec<DimAgg> = (0..Dimension::ALL.len())
                .map(|_| DimAgg::default())
                .collect();
            let mut current = None;
            let mut folded = false;
            let mut emit = |b: u64, dims: &mut Vec<DimAgg>| {
                folded |= dims.iter().any(|d| d.folded > 0);
                f(b, dims);
                for d in dims.iter_mut() {
                    *d = DimAgg::default();
                }
            };
            for item in db.range(txn, &(lo..=hi))? {
                let (k, v) = item?;
                let b = k.bucket * 1000;
                if b < range.from_ms || b >= range.to_ms {
                    continue;
                }
                if current.is_some_and(|c| c != b) {
                    emit(current.unwrap_or(0), &mut dims);
                }
                current = Some(b);
                let Some(dim) = Dimension::ALL.get(usize::from(k.dim)) else {
                    continue;
                };
                if let Some(d) = dims.get_mut(usize::from(k.dim)) {
                    d.decode_into(*dim, v, cap).ok_or_else(|| {
                        Error::corrupt("rollup", &k.bucket.to_be_bytes(), "rollup blob")
                    })?;
                }
            }
            if let Some(c) = current {
                emit(c, &mut dims);
            }
            Ok((Tier::from_index(tier), folded))
        })
    }

    /// Points for a stacked area chart.
    ///
    /// # Errors
    /// [`Error::InvalidQuery`] for a step that is not a positive multiple of
    /// 60 s, or more than 10 000 steps; raw-scan limits; LMDB errors.
    pub fn series(&self, q: &SeriesQuery) -> Result<Series> {
        if q.step_secs == 0 || q.step_secs % 60 != 0 {
            return Err(Error::InvalidQuery(
                "step must be a positive multiple of 60 seconds",
            ));
        }
        let step_ms = q.step_secs * 1000;
        let from = q.range.from_ms / step_ms * step_ms;
        let to = q
            .range
            .to_ms
            .min(self.high_water_ms()?.saturating_add(step_ms))
            .max(from);
        let steps = (to - from).div_ceil(step_ms);
        if steps > 10_000 {
            return Err(Error::InvalidQuery("more than 10 000 steps"));
        }
        let range = TimeRange {
            from_ms: from,
            to_ms: from + steps * step_ms,
        };
        let cap = self.inner.cfg.query_max_groups;
        // group key → per-step values
        let mut per_group: HashMap<Group, Vec<u64>> = HashMap::new();
        let mut other = vec![0u64; steps as usize];
        let mut totals: HashMap<Group, u64> = HashMap::new();
        let mut truncated = false;
        let add = |g: Group,
                   step: usize,
                   v: u64,
                   per_group: &mut HashMap<Group, Vec<u64>>,
                   other: &mut Vec<u64>| {
            if !per_group.contains_key(&g) && per_group.len() >= cap {
                if let Some(o) = other.get_mut(step) {
                    *o += v;
                }
                return true;
            }
            let e = per_group
                .entry(g)
                .or_insert_with(|| vec![0; steps as usize]);
            if let Some(x) = e.get_mut(step) {
                *x += v;
            }
            false
        };
        let tier = match (&q.by, q.filter.is_all()) {
            (GroupBy::Dim(dim), true) => {
                let (tier, folded) = self.rollup_buckets(range, q.step_secs, |b, dims| {
                    let step = ((b - from) / step_ms) as usize;
                    let d = &dims[*dim as usize];
                    for (k, a) in &d.groups {
                        truncated |= add(
                            Group::from_key(*dim, *k),
                            step,
                            a.get(q.metric, q.raw),
                            &mut per_group,
                            &mut other,
                        );
                    }
                    if let Some(o) = other.get_mut(step) {
                        *o += d.other.get(q.metric, q.raw);
                    }
                })?;
                truncated |= folded;
                tier
            }
            (by, _) => {
                let index = match by {
                    GroupBy::SrcNetwork(n) | GroupBy::DstNetwork(n) => Some(NetworkIndex::new(n)),
                    GroupBy::Dim(_) => None,
                };
                self.scan_prorated(range, &q.filter, |fl, share, b| {
                    let step = ((b - from) / step_ms) as usize;
                    let g = match (by, &index) {
                        (GroupBy::Dim(d), _) => Group::from_key(*d, d.key(fl)),
                        (GroupBy::SrcNetwork(_), Some(ix)) => {
                            Group::Network(ix.name(ix.lookup(fl.src_addr)))
                        }
                        (_, Some(ix)) => Group::Network(ix.name(ix.lookup(fl.dst_addr))),
                        _ => Group::Other,
                    };
                    truncated |= add(
                        g,
                        step,
                        share.get(q.metric, q.raw),
                        &mut per_group,
                        &mut other,
                    );
                })?;
                Tier::Raw
            }
        };
        for (g, v) in &per_group {
            totals.insert(g.clone(), v.iter().sum());
        }
        let mut ranked: Vec<(Group, Vec<u64>)> = per_group.into_iter().collect();
        ranked.sort_by(|a, b| totals[&b.0].cmp(&totals[&a.0]).then_with(|| a.0.cmp(&b.0)));
        for (_, v) in ranked.iter().skip(q.top) {
            for (o, x) in other.iter_mut().zip(v) {
                *o += x;
            }
        }
        ranked.truncate(q.top);
        let rate = |v: u64| v as f64 / q.step_secs as f64;
        Ok(Series {
            timestamps: (0..steps).map(|i| from + i * step_ms).collect(),
            series: ranked
                .into_iter()
                .map(|(group, v)| SeriesLine {
                    group,
                    values: v.into_iter().map(rate).collect(),
                })
                .collect(),
            other: other.into_iter().map(rate).collect(),
            tier,
            truncated,
        })
    }

    /// Top-N groups by a metric. Exact: rollups answer only when no group
    /// was folded in the range, otherwise raw flows are scanned.
    ///
    /// # Errors
    /// Raw-scan limits; LMDB errors.
    pub fn top(&self, q: &TopQuery) -> Result<Top> {
        let cap = self.inner.cfg.query_max_groups.max(1);
        let mut groups: FxMap<Group, Agg> = FxMap::default();
        let mut other = Agg::default();
        let mut exact = true;
        let mut tier = Tier::Raw;
        let mut answered = false;
        if let (GroupBy::Dim(dim), true) = (&q.by, q.filter.is_all()) {
            if q.range.aligned(TIER_MS[0]) {
                let mut rolled: FxMap<Key, Agg> = FxMap::default();
                let mut rolled_other = Agg::default();
                let (t, folded) = self.rollup_buckets(q.range, 60, |_, dims| {
                    let d = &dims[*dim as usize];
                    for (k, a) in &d.groups {
                        rolled.entry(*k).or_default().add(*a);
                    }
                    rolled_other.add(d.other);
                })?;
                if !folded {
                    for (k, a) in rolled {
                        groups.insert(Group::from_key(*dim, k), a);
                    }
                    other = rolled_other;
                    tier = t;
                    answered = true;
                }
            }
        }
        if !answered {
            let index = match &q.by {
                GroupBy::SrcNetwork(n) | GroupBy::DstNetwork(n) => Some(NetworkIndex::new(n)),
                GroupBy::Dim(_) => None,
            };
            let by = &q.by;
            // Aggregate by compact key first (cheap), then name the groups.
            let mut keyed: FxMap<Key, Agg> = FxMap::default();
            self.scan_prorated(q.range, &q.filter, |fl, share, _| {
                let k = match (by, &index) {
                    (GroupBy::Dim(d), _) => d.key(fl),
                    (GroupBy::SrcNetwork(_), Some(ix)) => Key(ix.lookup(fl.src_addr) as u128, 0),
                    (_, Some(ix)) => Key(ix.lookup(fl.dst_addr) as u128, 0),
                    _ => Key::default(),
                };
                if let Some(a) = keyed.get_mut(&k) {
                    a.add(share);
                } else if keyed.len() < cap * 16 {
                    keyed.insert(k, share);
                } else {
                    other.add(share);
                    exact = false;
                }
            })?;
            for (k, a) in keyed {
                let g = match (by, &index) {
                    (GroupBy::Dim(d), _) => Group::from_key(*d, k),
                    (_, Some(ix)) => Group::Network(ix.name(k.0 as usize)),
                    _ => Group::Other,
                };
                groups.insert(g, a);
            }
        }
        let mut rows: Vec<TopRow> = groups
            .into_iter()
            .map(|(group, agg)| TopRow { group, agg })
            .collect();
        rows.sort_by(|a, b| {
            b.agg
                .get(q.metric, q.raw)
                .cmp(&a.agg.get(q.metric, q.raw))
                .then_with(|| a.group.cmp(&b.group))
        });
        for r in rows.iter().skip(q.n) {
            other.add(r.agg);
        }
        rows.truncate(q.n);
        Ok(Top {
            rows,
            other,
            tier,
            exact,
        })
    }

    /// One page of the flow table.
    ///
    /// # Errors
    /// [`Error::InvalidQuery`] for a limit of 0 or above 10 000; raw-scan
    /// limits; LMDB errors.
    pub fn flows(&self, q: &FlowsQuery) -> Result<FlowsPage> {
        if q.limit == 0 || q.limit > 10_000 {
            return Err(Error::InvalidQuery("limit must be 1..=10000"));
        }
        let mut page = Vec::with_capacity(q.limit);
        let mut next = None;
        let desc = q.order == Order::TimeDesc;
        let to_last = q.range.to_ms.saturating_sub(1);
        self.scan_blocks(
            q.range.from_ms,
            to_last,
            desc,
            q.cursor,
            &q.filter,
            |k, flows| {
                let n = flows.len() as u32;
                let idx: Box<dyn Iterator<Item = u32>> = if desc {
                    Box::new((0..n).rev())
                } else {
                    Box::new(0..n)
                };
                let skip_to = q
                    .cursor
                    .filter(|c| c.bucket == k.bucket && c.seq == k.seq)
                    .map(|c| c.index);
                for i in idx {
                    if let Some(s) = skip_to {
                        if (desc && i >= s) || (!desc && i <= s) {
                            continue;
                        }
                    }
                    let fl = &flows[i as usize];
                    if fl.last_ms < q.range.from_ms
                        || fl.last_ms >= q.range.to_ms
                        || !q.filter.matches(fl)
                    {
                        continue;
                    }
                    page.push(*fl);
                    if page.len() == q.limit {
                        next = Some(Cursor {
                            bucket: k.bucket,
                            seq: k.seq,
                            index: i,
                        });
                        return false;
                    }
                }
                true
            },
        )?;
        Ok(FlowsPage {
            flows: page,
            next_cursor: next,
        })
    }

    /// Traffic between named networks (and "other"), for the map. Networks
    /// are applied at query time, so an edit shows on past data too.
    ///
    /// # Errors
    /// Raw-scan limits; LMDB errors.
    pub fn matrix(
        &self,
        range: TimeRange,
        networks: &[Network],
        filter: &Filter,
    ) -> Result<Matrix> {
        let index = NetworkIndex::new(networks);
        let n = networks.len() + 1;
        let mut cells = vec![Agg::default(); n * n];
        self.scan_prorated(range, filter, |fl, share, _| {
            let s = index.lookup(fl.src_addr);
            let d = index.lookup(fl.dst_addr);
            if let Some(c) = cells.get_mut(s * n + d) {
                c.add(share);
            }
        })?;
        let mut nodes: Vec<String> = networks.iter().map(|x| x.name.clone()).collect();
        nodes.push("other".to_string());
        let mut links = Vec::new();
        for s in 0..n {
            for d in 0..n {
                let agg = cells[s * n + d];
                if agg != Agg::default() {
                    links.push(Link {
                        src: nodes[s].clone(),
                        dst: nodes[d].clone(),
                        agg,
                    });
                }
            }
        }
        Ok(Matrix { nodes, links })
    }
}
