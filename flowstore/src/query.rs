//! The queries behind Flower's charts, tables, top-N lists and network map.
//!
//! Rollup-backed answers (unfiltered series, summaries and top lists) read
//! the coarsest tier that answers exactly; the network map reads the hourly
//! prefix-pair rollup when the networks allow it; everything else scans raw
//! blocks, skipping blocks by time range and, for address filters, by each
//! block's Bloom filter and then its address dictionary. A scan decodes only
//! the column groups it needs, and aggregating scans (summaries, top lists,
//! the map) run on [`SCAN_THREADS`] threads. Every answer but the map's says
//! which tier it used.
//!
//! Time semantics, everywhere: a flow's bytes and packets are pro-rated over
//! the minutes it spans; the flow is counted once, at its `last_ms`. A
//! range is `[from_ms, to_ms)`.

use std::collections::HashMap;
use std::net::IpAddr;

use netflow9::Flow;

use std::sync::atomic::{AtomicUsize, Ordering};

use heed::RoTxn;

use crate::cidr::Cidr;
use crate::codec::block::{self, BlockHeader, BlockReader, Columns, Groups};
use crate::codec::keys::{addr16, BlockKey, RollupKey};
use crate::error::{Error, Result};
use crate::filter::Filter;
use crate::rollup::{Agg, DimAgg, Dimension, FlowTotals, FxMap, Group, Key, MatrixAgg, MATRIX_MS};
use crate::store::Store;
use crate::writer::{index_key, INDEX_DIRTY, TIER_MS};

/// Threads an aggregating raw scan (summary, top list, network map) uses.
/// Ingest stays on one thread; a query may use a second core.
pub(crate) const SCAN_THREADS: usize = 2;

/// A time range `[from_ms, to_ms)` in Unix milliseconds. Queries widen it
/// to whole minutes (`from` rounded down, `to` up): a flow counts in the
/// minute its `last_ms` falls in, so a summary, a chart and the flow table
/// of the same range agree.
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

    /// Widened to whole minutes.
    fn minutes(self) -> TimeRange {
        let w = TIER_MS[0];
        TimeRange {
            from_ms: self.from_ms / w * w,
            to_ms: if self.to_ms >= u64::MAX / 4 {
                self.to_ms
            } else {
                self.to_ms.div_ceil(w) * w
            },
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
/// distinct prefix length). IPv4 and IPv6 CIDRs are kept apart: an IPv6
/// network never holds an IPv4 address, even `::/0` (whose 128-bit form
/// would cover the IPv4-mapped block).
#[derive(Debug, Clone)]
pub(crate) struct NetworkIndex {
    /// IPv4 CIDRs: (prefix length in the 128-bit mapped space, masked
    /// address → network index), longest first.
    v4: Vec<(u32, FxMap<u128, usize>)>,
    /// IPv6 CIDRs, the same way.
    v6: Vec<(u32, FxMap<u128, usize>)>,
    names: Vec<String>,
}

impl NetworkIndex {
    pub(crate) fn new(networks: &[Network]) -> NetworkIndex {
        let mut by_len: [HashMap<u32, FxMap<u128, usize>>; 2] = Default::default();
        for (i, n) in networks.iter().enumerate() {
            for c in &n.cidrs {
                let (family, len) = if c.is_ipv4() {
                    (0, 96 + u32::from(c.prefix()))
                } else {
                    (1, u32::from(c.prefix()))
                };
                by_len[family]
                    .entry(len)
                    .or_default()
                    .entry(mask(c.first(), len))
                    .or_insert(i);
            }
        }
        let [v4, v6] = by_len.map(|m| {
            let mut levels: Vec<_> = m.into_iter().collect();
            levels.sort_by_key(|l| std::cmp::Reverse(l.0));
            levels
        });
        NetworkIndex {
            v4,
            v6,
            names: networks.iter().map(|n| n.name.clone()).collect(),
        }
    }

    /// The network of `a`, or `names.len()` for "other".
    #[inline]
    pub(crate) fn lookup(&self, a: IpAddr) -> usize {
        self.lookup16(addr16(a))
    }

    /// [`NetworkIndex::lookup`] of an [`addr16`] form.
    #[inline]
    pub(crate) fn lookup16(&self, v: u128) -> usize {
        let levels = if v >> 32 == 0xffff {
            &self.v4
        } else {
            &self.v6
        };
        for (len, map) in levels {
            if let Some(&i) = map.get(&mask(v, *len)) {
                return i;
            }
        }
        self.names.len()
    }

    /// Whether every address of a network-map rollup prefix (an IPv4
    /// `/24`, an IPv6 `/64`) falls in the same network: no CIDR is longer.
    fn prefixes_are_whole(&self) -> bool {
        self.v4.iter().all(|(len, _)| *len <= 96 + 24) && self.v6.iter().all(|(len, _)| *len <= 64)
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

/// The column groups a flow's key in `dim` is made of.
fn groups_of(dim: Dimension) -> Groups {
    match dim {
        Dimension::Total => Groups::TIME,
        Dimension::Protocol | Dimension::SrcPort | Dimension::DstPort => Groups::PORTS,
        Dimension::SrcAddr | Dimension::DstAddr | Dimension::AddrPair => Groups::ADDRS,
        Dimension::Exporter
        | Dimension::InputIf
        | Dimension::OutputIf
        | Dimension::SrcAs
        | Dimension::DstAs => Groups::REST,
    }
}

/// What the raw tier holds of a time range: the block keys to visit.
#[derive(Debug, Clone, Copy)]
struct RawSpan {
    from_last: u64,
    to_last: u64,
    lo: BlockKey,
    hi: BlockKey,
}

/// Block-skipping hints of a filter.
struct Hints {
    /// Every matching flow has its src or dst in one of these.
    cidrs: Option<Vec<Cidr>>,
    /// All of them host routes: the Bloom filter can rule blocks out.
    hosts: bool,
}

impl Hints {
    fn of(filter: &Filter) -> Hints {
        let cidrs = filter.required_addrs();
        let hosts = cidrs.as_ref().is_some_and(|c| {
            c.iter()
                .all(|c| c.prefix() == if c.is_ipv4() { 32 } else { 128 })
        });
        Hints { cidrs, hosts }
    }

    /// False if no flow of the block can match: by time, by its Bloom
    /// filter (host routes only) and by its address dictionary.
    fn keep(
        &self,
        h: &BlockHeader<'_>,
        span: &RawSpan,
        r: &mut BlockReader<'_, '_>,
    ) -> Option<bool> {
        if h.max_last_ms < span.from_last || h.min_last_ms > span.to_last {
            return Some(false);
        }
        let Some(cidrs) = &self.cidrs else {
            return Some(true);
        };
        if self.hosts && !cidrs.iter().any(|c| h.may_contain(c.addr())) {
            return Some(false);
        }
        r.any_addr_in(cidrs)
    }
}

impl Store {
    fn prorate_span_ms(&self) -> u64 {
        self.inner.cfg.max_prorate_buckets * TIER_MS[0]
    }

    /// The blocks of buckets from the one holding `from_last` to the one
    /// holding `to_last` (by last_ms), clamped to the data stored; `None`
    /// when there are none.
    ///
    /// # Errors
    /// [`Error::QueryTooLarge`] past `raw_scan_max_secs`.
    fn raw_span(&self, from_last: u64, to_last: u64) -> Result<Option<RawSpan>> {
        let cfg = &self.inner.cfg;
        // Clamp to the data actually stored, so "all time" means what exists.
        let (first, hw) = self.read(|t| {
            let first = self
                .inner
                .dbs
                .raw
                .first(t)?
                .map_or(u64::MAX / 2, |(k, _)| k.bucket.saturating_mul(1000));
            Ok((first, self.high_water_ms_in(t)?))
        })?;
        let from_last = from_last.max(first);
        let to_last = to_last.min(hw);
        if from_last > to_last {
            return Ok(None);
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
        let bw = u64::from(cfg.bucket_secs) * 1000;
        Ok(Some(RawSpan {
            from_last,
            to_last,
            lo: BlockKey {
                bucket: from_last / bw * bw / 1000,
                seq: 0,
            },
            hi: BlockKey {
                bucket: to_last / bw * bw / 1000,
                seq: u32::MAX,
            },
        }))
    }

    /// Calls `f` for each raw block whose flows may match `filter`, with
    /// last_ms from `from_last` to `to_last`, in ascending or descending key
    /// order, starting after `start_after`. `f` decodes what it needs and
    /// returns false to stop.
    fn scan_blocks(
        &self,
        from_last: u64,
        to_last: u64,
        descending: bool,
        start_after: Option<Cursor>,
        filter: &Filter,
        mut f: impl FnMut(BlockKey, &mut BlockReader<'_, '_>) -> Result<bool>,
    ) -> Result<()> {
        let Some(span) = self.raw_span(from_last, to_last)? else {
            return Ok(());
        };
        let hints = Hints::of(filter);
        let mut dec = block::Decoder::default();
        self.read(|txn| {
            let db = &self.inner.dbs.raw;
            let mut visit = |k: BlockKey, v: &[u8]| -> Result<bool> {
                let corrupt = |what| Error::corrupt("raw", &k.to_bytes(), what);
                let h = BlockHeader::parse(v).ok_or_else(|| corrupt("block header"))?;
                let mut r = dec.open(&h);
                if !hints
                    .keep(&h, &span, &mut r)
                    .ok_or_else(|| corrupt("block"))?
                {
                    return Ok(true);
                }
                f(k, &mut r)
            };
            let at = start_after.map(|c| BlockKey {
                bucket: c.bucket,
                seq: c.seq,
            });
            if descending {
                for item in db.rev_range(txn, &(span.lo..=at.unwrap_or(span.hi)))? {
                    let (k, v) = item?;
                    if !visit(k, v)? {
                        break;
                    }
                }
            } else {
                for item in db.range(txn, &(at.unwrap_or(span.lo)..=span.hi))? {
                    let (k, v) = item?;
                    if !visit(k, v)? {
                        break;
                    }
                }
            }
            Ok(())
        })
    }

    /// Aggregates raw blocks on [`SCAN_THREADS`] threads: each thread
    /// starts from `init()` and calls `visit` for the blocks it takes (in
    /// chunks of time, so the threads share the work whatever its shape);
    /// returns every thread's state.
    fn scan_par<S: Send>(
        &self,
        from_last: u64,
        to_last: u64,
        filter: &Filter,
        init: impl Fn() -> S + Sync,
        visit: impl Fn(&mut S, &mut BlockReader<'_, '_>) -> Option<()> + Sync,
    ) -> Result<Vec<S>> {
        let Some(span) = self.raw_span(from_last, to_last)? else {
            return Ok(vec![init()]);
        };
        let hints = Hints::of(filter);
        // Chunks of buckets, about 64 of them.
        let (lo, hi) = (span.lo.bucket, span.hi.bucket);
        let step = ((hi - lo) / 64).max(u64::from(self.inner.cfg.bucket_secs));
        let chunks = (hi - lo) / step + 1;
        let next = AtomicUsize::new(0);
        let work =
            |txn: &RoTxn<'_>, state: &mut S, dec: &mut block::Decoder, c: u64| -> Result<()> {
                let from = BlockKey {
                    bucket: lo + c * step,
                    seq: 0,
                };
                let to = BlockKey {
                    bucket: (lo + (c + 1) * step - 1).min(hi),
                    seq: u32::MAX,
                };
                for item in self.inner.dbs.raw.range(txn, &(from..=to))? {
                    let (k, v) = item?;
                    let corrupt = || Error::corrupt("raw", &k.to_bytes(), "block");
                    let h = BlockHeader::parse(v).ok_or_else(corrupt)?;
                    let mut r = dec.open(&h);
                    if hints.keep(&h, &span, &mut r).ok_or_else(corrupt)? {
                        visit(state, &mut r).ok_or_else(corrupt)?;
                    }
                }
                Ok(())
            };
        let thread = || -> Result<S> {
            let mut state = init();
            let mut dec = block::Decoder::default();
            loop {
                let c = next.fetch_add(1, Ordering::Relaxed) as u64;
                if c >= chunks {
                    return Ok(state);
                }
                self.read(|txn| work(txn, &mut state, &mut dec, c))?;
            }
        };
        let threads = SCAN_THREADS.clamp(1, chunks as usize);
        std::thread::scope(|s| {
            let handles: Vec<_> = (1..threads).map(|_| s.spawn(thread)).collect();
            let mut out = vec![thread()?];
            for h in handles {
                out.push(
                    h.join()
                        .unwrap_or(Err(Error::InvalidQuery("scan thread panicked")))?,
                );
            }
            Ok(out)
        })
    }

    /// Raw scan of flows matching `filter`: `f(flow, share)` with each
    /// flow's pro-rated share of `range` (at once when whole; skipped when
    /// empty). Decodes `groups` (with time and counters) when the filter
    /// matches everything, every field otherwise.
    fn scan_shares<S: Send>(
        &self,
        range: TimeRange,
        filter: &Filter,
        groups: Groups,
        init: impl Fn() -> S + Sync,
        f: impl Fn(&mut S, &Flow, Agg) + Sync,
    ) -> Result<Vec<S>> {
        let max = self.inner.cfg.max_prorate_buckets;
        let want = if filter.is_all() {
            groups | Groups::TIME | Groups::COUNTERS
        } else {
            Groups::ALL
        };
        let to_last = range.to_ms.saturating_add(self.prorate_span_ms());
        self.scan_par(
            range.from_ms,
            to_last,
            filter,
            || (init(), Vec::new()),
            |(state, flows), r| {
                r.flows(want, flows)?;
                for fl in flows.iter() {
                    if fl.last_ms < range.from_ms || !filter.matches(fl) {
                        continue;
                    }
                    totals(fl).in_range(max, range.from_ms, range.to_ms, |a| f(state, fl, a));
                }
                Some(())
            },
        )
        .map(|v| v.into_iter().map(|(s, _)| s).collect())
    }

    /// Raw scan of every flow (no filter) through its time, counter and
    /// address columns: `f(state, columns, i, share)` per flow `i` with a
    /// share of `range` (addresses are indices into the block's
    /// dictionary), between `start(state, columns)` and `end(state,
    /// columns)` once per block.
    fn scan_columns<S: Send>(
        &self,
        range: TimeRange,
        init: impl Fn() -> S + Sync,
        start: impl Fn(&mut S, &Columns) + Sync,
        f: impl Fn(&mut S, &Columns, usize, Agg) + Sync,
        end: impl Fn(&mut S, &Columns) + Sync,
    ) -> Result<Vec<S>> {
        let max = self.inner.cfg.max_prorate_buckets;
        let to_last = range.to_ms.saturating_add(self.prorate_span_ms());
        self.scan_par(
            range.from_ms,
            to_last,
            &Filter::all(),
            || (init(), Columns::default()),
            |(state, c), r| {
                // Blocks past the range matter only for the long flows
                // that started in it: look at the times first.
                if r.header().min_first_ms >= range.to_ms {
                    return Some(());
                }
                r.time_columns(c)?;
                if !c
                    .first_ms
                    .iter()
                    .zip(&c.last_ms)
                    .any(|(f, l)| *f.min(l) < range.to_ms)
                {
                    return Some(());
                }
                r.columns(c)?;
                start(state, c);
                for i in 0..c.last_ms.len() {
                    if c.last_ms[i] < range.from_ms {
                        continue;
                    }
                    let t = FlowTotals {
                        first_ms: c.first_ms[i],
                        last_ms: c.last_ms[i],
                        bytes: c.bytes[i],
                        packets: c.packets[i],
                        sampling: c.sampling[i],
                    };
                    t.in_range(max, range.from_ms, range.to_ms, |a| f(state, c, i, a));
                }
                end(state, c);
                Some(())
            },
        )
        .map(|v| v.into_iter().map(|(s, _)| s).collect())
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
        let range = range.minutes();
        let mut total = Agg::default();
        let tier = if filter.is_all() && range.aligned(TIER_MS[0]) {
            // Any step that is a multiple of every tier: totals need no steps.
            let (tier, _) = self.rollup_buckets(range, 3600, Dimension::Total, |_, d| {
                total.add(d.total());
            })?;
            tier
        } else {
            for t in self.scan_shares(range, filter, Groups::TIME, Agg::default, |t, _, a| {
                t.add(a);
            })? {
                total.add(t);
            }
            Tier::Raw
        };
        Ok(Summary {
            flows: total.flows,
            bytes: total.get(Metric::Bytes, raw),
            packets: total.get(Metric::Packets, raw),
            tier,
        })
    }

    /// Reads one dimension of the rollups for `range` (minute-aligned),
    /// window by window from the coarsest tier whose width divides
    /// `step_secs`: a window that is not built yet (its finer buckets
    /// changed since), or that the range covers only in part, is read from
    /// the next finer tier. Calls `f(bucket_ms, dim)` per stored bucket.
    /// Returns the finest tier read and whether groups were folded.
    fn rollup_buckets(
        &self,
        range: TimeRange,
        step_secs: u64,
        dim: Dimension,
        mut f: impl FnMut(u64, &DimAgg),
    ) -> Result<(Tier, bool)> {
        let cap = self
            .inner
            .cfg
            .group_cap
            .max(self.inner.cfg.query_max_groups);
        let hw = self.high_water_ms()?;
        let step_ms = step_secs.saturating_mul(1000);
        let top = (1..3)
            .rev()
            .find(|&t| step_ms % TIER_MS[t] == 0)
            .unwrap_or(0);
        self.read(|txn| {
            let mut walk = RollupWalk {
                store: self,
                txn,
                dim,
                cap,
                d: DimAgg::default(),
                finest: top,
                folded: false,
            };
            // Nothing is stored past the high-water mark: a range reaching
            // beyond it ends at the window holding it, not in the middle.
            let to = if range.to_ms > hw {
                let w = TIER_MS[top];
                (hw / w).saturating_add(1).saturating_mul(w)
            } else {
                range.to_ms
            }
            .max(range.from_ms);
            walk.visit(top, range.from_ms, to, &mut f)?;
            Ok((Tier::from_index(walk.finest), walk.folded))
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
        let step_ms = q
            .step_secs
            .checked_mul(1000)
            .filter(|s| *s <= MAX_STEP_MS)
            .ok_or(Error::InvalidQuery("step longer than a year"))?;
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
        // Groups get a value per step: the cap keeps groups × steps within
        // SERIES_CELLS, so a long range at a fine step holds fewer groups.
        let cap = self
            .inner
            .cfg
            .query_max_groups
            .min(SERIES_CELLS / steps.max(1) as usize)
            .max(1);
        // group key → per-step values
        let mut per_group: HashMap<Group, Vec<u64>> = HashMap::new();
        let mut other = vec![0u64; steps as usize];
        let mut truncated = false;
        let add = |g: Group,
                   step: usize,
                   v: u64,
                   per_group: &mut HashMap<Group, Vec<u64>>,
                   other: &mut Vec<u64>| {
            if !per_group.contains_key(&g) && per_group.len() >= cap {
                if let Some(o) = other.get_mut(step) {
                    *o = o.saturating_add(v);
                }
                return true;
            }
            let e = per_group
                .entry(g)
                .or_insert_with(|| vec![0; steps as usize]);
            if let Some(x) = e.get_mut(step) {
                *x = x.saturating_add(v);
            }
            false
        };
        let tier = match (&q.by, q.filter.is_all()) {
            (GroupBy::Dim(dim), true) => {
                let (tier, folded) = self.rollup_buckets(range, q.step_secs, *dim, |b, d| {
                    let step = ((b - from) / step_ms) as usize;
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
                        *o = o.saturating_add(d.other.get(q.metric, q.raw));
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
                let want = match by {
                    GroupBy::Dim(d) => groups_of(*d),
                    _ => Groups::ADDRS,
                } | Groups::TIME
                    | Groups::COUNTERS;
                let want = if q.filter.is_all() { want } else { Groups::ALL };
                let max = self.inner.cfg.max_prorate_buckets;
                let to_last = range.to_ms.saturating_add(self.prorate_span_ms());
                let mut flows = Vec::new();
                self.scan_blocks(range.from_ms, to_last, false, None, &q.filter, |_, r| {
                    r.flows(want, &mut flows)
                        .ok_or_else(|| Error::corrupt("raw", &[], "block"))?;
                    for fl in &flows {
                        if fl.last_ms < range.from_ms || !q.filter.matches(fl) {
                            continue;
                        }
                        let g = match (by, &index) {
                            (GroupBy::Dim(d), _) => Group::from_key(*d, d.key(fl)),
                            (GroupBy::SrcNetwork(_), Some(ix)) => {
                                Group::Network(ix.name(ix.lookup(fl.src_addr)))
                            }
                            (_, Some(ix)) => Group::Network(ix.name(ix.lookup(fl.dst_addr))),
                            _ => Group::Other,
                        };
                        totals(fl).prorate(TIER_MS[0], max, |b, share| {
                            if b >= range.from_ms && b < range.to_ms {
                                let step = ((b - from) / step_ms) as usize;
                                truncated |= add(
                                    g.clone(),
                                    step,
                                    share.get(q.metric, q.raw),
                                    &mut per_group,
                                    &mut other,
                                );
                            }
                        });
                    }
                    Ok(true)
                })?;
                Tier::Raw
            }
        };
        let totals: HashMap<&Group, u64> = per_group
            .iter()
            .map(|(g, v)| (g, v.iter().fold(0u64, |s, x| s.saturating_add(*x))))
            .collect();
        let mut ranked: Vec<(&Group, u64)> = totals.into_iter().collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        let keep: Vec<Group> = ranked
            .iter()
            .take(q.top)
            .map(|(g, _)| (*g).clone())
            .collect();
        let mut series = Vec::with_capacity(keep.len());
        for g in keep {
            if let Some(v) = per_group.remove(&g) {
                series.push((g, v));
            }
        }
        for v in per_group.values() {
            for (o, x) in other.iter_mut().zip(v) {
                *o = o.saturating_add(*x);
            }
        }
        let rate = |v: u64| v as f64 / q.step_secs as f64;
        Ok(Series {
            timestamps: (0..steps).map(|i| from + i * step_ms).collect(),
            series: series
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
    /// was folded in range, otherwise raw flows are scanned.
    ///
    /// # Errors
    /// Raw-scan limits; LMDB errors.
    pub fn top(&self, q: &TopQuery) -> Result<Top> {
        let q = &TopQuery {
            range: q.range.minutes(),
            ..q.clone()
        };
        let mut groups: FxMap<Group, Agg> = FxMap::default();
        let mut other = Agg::default();
        let mut exact = true;
        let mut tier = Tier::Raw;
        let mut answered = false;
        if let (GroupBy::Dim(dim), true) = (&q.by, q.filter.is_all()) {
            if q.range.aligned(TIER_MS[0]) {
                let cap = self.inner.cfg.query_max_groups.max(1);
                let mut rolled: FxMap<Key, Agg> = FxMap::default();
                let mut rolled_other = Agg::default();
                // Any step every tier divides: a top list needs no steps.
                let (t, folded) = self.rollup_buckets(q.range, 3600, *dim, |_, d| {
                    for (k, a) in &d.groups {
                        if let Some(r) = rolled.get_mut(k) {
                            r.add(*a);
                        } else if rolled.len() < cap * 16 {
                            rolled.insert(*k, *a);
                        } else {
                            rolled_other.add(*a);
                        }
                    }
                    rolled_other.add(d.other);
                })?;
                if !folded && rolled.len() < cap * 16 {
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
            let max_groups = self.inner.cfg.top_scan_max_groups;
            let mut parts = self.top_raw(q)?;
            parts.sort_by_key(|p| std::cmp::Reverse(p.0.len()));
            let mut keyed = FxMap::default();
            for (i, (map, over)) in parts.into_iter().enumerate() {
                other.add(over);
                exact &= over == Agg::default();
                if i == 0 {
                    keyed = map;
                } else {
                    // The merged table is capped like each thread's.
                    for (k, a) in map {
                        if let Some(g) = keyed.get_mut(&k) {
                            g.add(a);
                        } else if keyed.len() < max_groups {
                            keyed.insert(k, a);
                        } else {
                            other.add(a);
                            exact = false;
                        }
                    }
                }
            }
            // Only the groups that can rank are named: those at least as
            // large as the n-th largest (ties included, ordered by name).
            let value = |a: &Agg| a.get(q.metric, q.raw);
            let mut values: Vec<u64> = keyed.values().map(value).collect();
            let bar = if q.n == 0 || values.is_empty() {
                u64::MAX
            } else if values.len() <= q.n {
                0
            } else {
                *values.select_nth_unstable_by(q.n - 1, |a, b| b.cmp(a)).1
            };
            for (k, a) in keyed {
                if value(&a) < bar {
                    other.add(a);
                    continue;
                }
                let g = match (&q.by, &index) {
                    (GroupBy::Dim(d), _) => Group::from_key(*d, k),
                    (_, Some(ix)) => Group::Network(ix.name(k.0 as usize)),
                    _ => Group::Other,
                };
                groups.entry(g).or_default().add(a);
            }
        }
        let mut rows: Vec<TopRow> = groups
            .into_iter()
            .map(|(group, agg)| TopRow { group, agg })
            .collect();
        let order = |a: &TopRow, b: &TopRow| {
            b.agg
                .get(q.metric, q.raw)
                .cmp(&a.agg.get(q.metric, q.raw))
                .then_with(|| a.group.cmp(&b.group))
        };
        if rows.len() > q.n && q.n > 0 {
            rows.select_nth_unstable_by(q.n - 1, order);
        }
        for r in rows.iter().skip(q.n) {
            other.add(r.agg);
        }
        rows.truncate(q.n);
        rows.sort_by(order);
        Ok(Top {
            rows,
            other,
            tier,
            exact,
        })
    }

    /// A top list's raw scan: per thread, the groups by compact key
    /// (network index for network groupings), and the traffic of groups
    /// past `top_scan_max_groups` (each thread gets its share).
    fn top_raw(&self, q: &TopQuery) -> Result<Vec<(FxMap<Key, Agg>, Agg)>> {
        let per_thread = self.inner.cfg.top_scan_max_groups / SCAN_THREADS;
        let add = |(map, over): &mut (FxMap<Key, Agg>, Agg), k: Key, a: Agg| {
            if let Some(g) = map.get_mut(&k) {
                g.add(a);
            } else if map.len() < per_thread {
                map.insert(k, a);
            } else {
                over.add(a);
            }
        };
        let init = || (FxMap::default(), Agg::default());
        match (&q.by, q.filter.is_all()) {
            // The common case, fastest: addresses straight from the columns,
            // summed per dictionary entry of a block, then into the table.
            (GroupBy::Dim(d @ (Dimension::SrcAddr | Dimension::DstAddr)), true) => {
                let src = *d == Dimension::SrcAddr;
                let parts = self.scan_columns(
                    q.range,
                    || (init(), Vec::<Agg>::new()),
                    |(_, acc), c| {
                        acc.clear();
                        acc.resize(c.dict.len(), Agg::default());
                    },
                    |(_, acc), c, i, a| {
                        let ix = if src { c.src[i] } else { c.dst[i] };
                        if let Some(x) = acc.get_mut(ix as usize) {
                            x.add(a);
                        }
                    },
                    |(s, acc), c| {
                        for (addr, a) in c.dict.iter().zip(acc.iter()) {
                            if *a != Agg::default() {
                                add(s, Key(*addr, 0), *a);
                            }
                        }
                    },
                )?;
                Ok(parts.into_iter().map(|(s, _)| s).collect())
            }
            (GroupBy::Dim(Dimension::AddrPair), true) => self.scan_columns(
                q.range,
                init,
                |_, _| {},
                |s, c, i, a| {
                    let k = Key(c.dict[c.src[i] as usize], c.dict[c.dst[i] as usize]);
                    add(s, k, a);
                },
                |_, _| {},
            ),
            (by, _) => {
                let index = match by {
                    GroupBy::SrcNetwork(n) | GroupBy::DstNetwork(n) => Some(NetworkIndex::new(n)),
                    GroupBy::Dim(_) => None,
                };
                let groups = match by {
                    GroupBy::Dim(d) => groups_of(*d),
                    _ => Groups::ADDRS,
                };
                self.scan_shares(q.range, &q.filter, groups, init, |s, fl, a| {
                    let k = match (by, &index) {
                        (GroupBy::Dim(d), _) => d.key(fl),
                        (GroupBy::SrcNetwork(_), Some(ix)) => {
                            Key(ix.lookup(fl.src_addr) as u128, 0)
                        }
                        (_, Some(ix)) => Key(ix.lookup(fl.dst_addr) as u128, 0),
                        _ => Key::default(),
                    };
                    add(s, k, a);
                })
            }
        }
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
        let q = &FlowsQuery {
            range: q.range.minutes(),
            ..q.clone()
        };
        let mut page = Vec::with_capacity(q.limit);
        let mut next = None;
        let desc = q.order == Order::TimeDesc;
        let to_last = q.range.to_ms.saturating_sub(1);
        let mut flows = Vec::new();
        self.scan_blocks(
            q.range.from_ms,
            to_last,
            desc,
            q.cursor,
            &q.filter,
            |k, r| {
                r.flows(Groups::ALL, &mut flows)
                    .ok_or_else(|| Error::corrupt("raw", &k.to_bytes(), "block"))?;
                let n = flows.len() as u32;
                let skip_to = q
                    .cursor
                    .filter(|c| c.bucket == k.bucket && c.seq == k.seq)
                    .map(|c| c.index);
                let mut take = |i: u32| {
                    if let Some(s) = skip_to {
                        if (desc && i >= s) || (!desc && i <= s) {
                            return true;
                        }
                    }
                    let fl = &flows[i as usize];
                    if fl.last_ms < q.range.from_ms
                        || fl.last_ms >= q.range.to_ms
                        || !q.filter.matches(fl)
                    {
                        return true;
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
                    true
                };
                if desc {
                    Ok((0..n).rev().all(&mut take))
                } else {
                    Ok((0..n).all(&mut take))
                }
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
    /// Without a filter, and with networks made of IPv4 prefixes of `/24`
    /// or shorter and IPv6 prefixes of `/64` or shorter, whole hours come
    /// from the hourly prefix-pair rollup (exact: every address of a
    /// rollup prefix is in the same network) and only the rest of the
    /// range from raw flows.
    ///
    /// # Errors
    /// Raw-scan limits; LMDB errors.
    pub fn matrix(
        &self,
        range: TimeRange,
        networks: &[Network],
        filter: &Filter,
    ) -> Result<Matrix> {
        let range = range.minutes();
        let index = NetworkIndex::new(networks);
        let n = networks.len() + 1;
        let mut cells = vec![Agg::default(); n * n];
        let mut raw_parts = vec![range];
        if filter.is_all() && index.prefixes_are_whole() {
            if let Some(parts) = self.matrix_hours(range, &index, &mut cells)? {
                raw_parts = parts;
            }
        }
        for part in raw_parts {
            if part.from_ms >= part.to_ms {
                continue;
            }
            let add = |s: &mut Vec<Agg>, sn: usize, dn: usize, a: Agg| {
                if let Some(c) = s.get_mut(sn * n + dn) {
                    c.add(a);
                }
            };
            let parts = if filter.is_all() {
                // Each dictionary address is looked up once per block.
                self.scan_columns(
                    part,
                    || (vec![Agg::default(); n * n], Vec::<usize>::new()),
                    |(_, nets), c| {
                        nets.clear();
                        nets.extend(c.dict.iter().map(|a| index.lookup16(*a)));
                    },
                    |(cells, nets), c, i, a| {
                        add(cells, nets[c.src[i] as usize], nets[c.dst[i] as usize], a);
                    },
                    |_, _| {},
                )?
                .into_iter()
                .map(|(c, _)| c)
                .collect()
            } else {
                self.scan_shares(
                    part,
                    filter,
                    Groups::ADDRS,
                    || vec![Agg::default(); n * n],
                    |cells, fl, a| {
                        add(
                            cells,
                            index.lookup(fl.src_addr),
                            index.lookup(fl.dst_addr),
                            a,
                        );
                    },
                )?
            };
            for p in parts {
                for (c, x) in cells.iter_mut().zip(p) {
                    c.add(x);
                }
            }
        }
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

    /// Adds the whole hours of `range` that the network-map rollup holds
    /// to `cells` and returns the parts of the range left for a raw scan;
    /// `None` (and `cells` untouched) if the rollup cannot answer exactly.
    fn matrix_hours(
        &self,
        range: TimeRange,
        index: &NetworkIndex,
        cells: &mut [Agg],
    ) -> Result<Option<Vec<TimeRange>>> {
        let n = index.names.len() + 1;
        let hw = self.high_water_ms()?;
        self.read(|txn| {
            let db = &self.inner.dbs.matrix;
            let Some((first, _)) = db.first(txn)? else {
                return Ok(None);
            };
            // Hours from the first one stored, whole ones in the range.
            let h0 = range
                .from_ms
                .max(first.saturating_mul(1000))
                .div_ceil(MATRIX_MS)
                .saturating_mul(MATRIX_MS);
            let end = range
                .to_ms
                .min(hw.saturating_add(1).div_ceil(MATRIX_MS) * MATRIX_MS);
            let h1 = end / MATRIX_MS * MATRIX_MS;
            if h0 >= h1 {
                return Ok(None);
            }
            let mut nets: FxMap<u128, usize> = FxMap::default();
            let mut sums = vec![Agg::default(); n * n];
            let mut add = |k: &[u8], v: &[u8]| -> Result<bool> {
                let folded = MatrixAgg::visit(v, |s, d, a| {
                    let mut net = |a: u128| *nets.entry(a).or_insert_with(|| index.lookup16(a));
                    let (s, d) = (net(s), net(d));
                    if let Some(c) = sums.get_mut(s * n + d) {
                        c.add(a);
                    }
                })
                .ok_or_else(|| Error::corrupt("matrix", k, "blob"))?;
                Ok(!folded)
            };
            for item in db.range(txn, &(h0 / 1000..=(h1 - 1) / 1000))? {
                let (h, v) = item?;
                if !add(&h.to_be_bytes(), v)? {
                    return Ok(None);
                }
            }
            for (c, x) in cells.iter_mut().zip(sums) {
                c.add(x);
            }
            let parts = vec![
                TimeRange {
                    from_ms: range.from_ms,
                    to_ms: h0,
                },
                TimeRange {
                    from_ms: h1,
                    to_ms: range.to_ms,
                },
            ];
            Ok(Some(parts))
        })
    }
}

/// What pro-rating reads of a flow.
fn totals(f: &Flow) -> FlowTotals {
    FlowTotals {
        first_ms: f.first_ms,
        last_ms: f.last_ms,
        bytes: f.bytes,
        packets: f.packets,
        sampling: f.sampling_interval,
    }
}

/// Most values (groups × steps) a series query holds: 32 MiB of `u64`s.
const SERIES_CELLS: usize = 4 << 20;

/// Longest series step: a year.
const MAX_STEP_MS: u64 = 366 * 86_400_000;

/// Above this many windows in a range, a tier's stored buckets are walked
/// by key instead of looked up one window at a time (an all-time range
/// spans millions of empty minutes).
const LOOKUP_WINDOWS: u64 = 4096;

/// State of [`Store::rollup_buckets`]' walk down the tiers.
struct RollupWalk<'s, 't> {
    store: &'s Store,
    txn: &'t RoTxn<'t>,
    dim: Dimension,
    cap: usize,
    d: DimAgg,
    finest: usize,
    folded: bool,
}

impl RollupWalk<'_, '_> {
    /// Reads `[from, to)` at `tier`, finer tiers for the partial windows at
    /// its ends and for windows not built yet.
    fn visit(
        &mut self,
        tier: usize,
        from: u64,
        to: u64,
        f: &mut impl FnMut(u64, &DimAgg),
    ) -> Result<()> {
        if from >= to {
            return Ok(());
        }
        let w = TIER_MS[tier];
        let a = from.div_ceil(w).saturating_mul(w).min(to);
        let b = (to / w * w).max(a);
        if tier == 0 || a == b {
            if tier == 0 {
                return self.read_tier(0, from / w * w, to, &[], f);
            }
            return self.visit(tier - 1, from, to, f);
        }
        self.visit(tier - 1, from, a, f)?;
        // Windows whose finer buckets changed since they were built.
        let dbs = &self.store.inner.dbs;
        let lo = index_key(INDEX_DIRTY, tier as u8, a);
        let hi = index_key(INDEX_DIRTY, tier as u8, b - w);
        let mut dirty = Vec::new();
        for item in dbs.rollup_index.range(self.txn, &(lo..=hi))? {
            let (k, _) = item?;
            let at = k
                .get(2..10)
                .and_then(|s| s.try_into().ok())
                .unwrap_or([0; 8]);
            dirty.push(u64::from_be_bytes(at).saturating_mul(1000));
        }
        self.read_tier(tier, a, b, &dirty, f)?;
        for window in dirty {
            self.visit(tier - 1, window, window.saturating_add(w), f)?;
        }
        self.visit(tier - 1, b, to, f)
    }

    /// Calls `f` for each stored bucket of `tier` in `[from, to)` (starts
    /// aligned to the tier), except those in `skip` (sorted).
    fn read_tier(
        &mut self,
        tier: usize,
        from: u64,
        to: u64,
        skip: &[u64],
        f: &mut impl FnMut(u64, &DimAgg),
    ) -> Result<()> {
        let w = TIER_MS[tier];
        let db = &self.store.inner.dbs.rollups[tier];
        let key = |b: u64| RollupKey {
            bucket: b / 1000,
            dim: self.dim as u8,
        };
        let mut found = Vec::new();
        if (to - from) / w <= LOOKUP_WINDOWS {
            let mut b = from;
            while b < to {
                if skip.binary_search(&b).is_err() {
                    if let Some(v) = db.get(self.txn, &key(b))? {
                        found.push((b, v));
                    }
                }
                b += w;
            }
        } else {
            let (lo, hi) = (key(from), key(to));
            for item in db.range(self.txn, &(lo..hi))? {
                let (k, v) = item?;
                let b = k.bucket.saturating_mul(1000);
                if k.dim == self.dim as u8 && skip.binary_search(&b).is_err() {
                    found.push((b, v));
                }
            }
        }
        for (b, v) in found {
            self.d.groups.clear();
            (self.d.other, self.d.folded) = (Agg::default(), 0);
            self.d.decode_into(self.dim, v, self.cap).ok_or_else(|| {
                Error::corrupt("rollup", &(b / 1000).to_be_bytes(), "rollup blob")
            })?;
            self.folded |= self.d.folded > 0;
            self.finest = self.finest.min(tier);
            f(b, &self.d);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::{Synth, SynthConfig, BENCHMARK_START_MS};
    use crate::StoreConfig;

    fn store(flows: u64) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(
            dir.path(),
            StoreConfig {
                sync: false,
                ..StoreConfig::default()
            },
        )
        .unwrap();
        {
            let mut w = s.writer().unwrap();
            let all: Vec<Flow> = Synth::new(SynthConfig::small(flows)).collect();
            for c in all.chunks(7_000) {
                w.append(c).unwrap();
            }
        }
        (dir, s)
    }

    fn net(name: &str, cidrs: &[&str]) -> Network {
        Network {
            name: name.into(),
            cidrs: cidrs.iter().map(|c| c.parse().unwrap()).collect(),
        }
    }

    #[test]
    fn the_map_from_its_rollup_equals_the_map_from_raw_flows() {
        let (_d, s) = store(60_000);
        let nets = [
            net("lan", &["10.16.0.0/17", "2001:db8:1::/56"]),
            net("lan-5", &["10.16.5.0/24"]),
            net("peers", &["100.64.0.0/10", "3fff:100::/24"]),
            net("dns", &["203.0.113.0/24"]),
        ];
        let index = NetworkIndex::new(&nets);
        assert!(index.prefixes_are_whole());
        let raw = Filter::parse("bytes >= 0").unwrap();
        // Whole hours, parts of hours, all time.
        for (from, to) in [(0, 3_600_000), (600_000, 3_000_000), (0, 7_200_000)] {
            let range = TimeRange::new(BENCHMARK_START_MS + from, BENCHMARK_START_MS + to).unwrap();
            let a = s.matrix(range, &nets, &Filter::all()).unwrap();
            let b = s.matrix(range, &nets, &raw).unwrap();
            assert_eq!(a, b, "{from}..{to}");
            assert!(!a.links.is_empty());
        }
        let mut cells = vec![Agg::default(); 25];
        let hour = TimeRange::new(BENCHMARK_START_MS, BENCHMARK_START_MS + 3_600_000).unwrap();
        assert!(s.matrix_hours(hour, &index, &mut cells).unwrap().is_some());
        // A host route makes the rollup unusable: raw flows answer.
        assert!(!NetworkIndex::new(&[net("h", &["10.16.5.17/32"])]).prefixes_are_whole());
    }

    #[test]
    fn raw_top_lists_are_exact() {
        let (_d, s) = store(40_000);
        let flows: Vec<Flow> = Synth::new(SynthConfig::small(40_000)).collect();
        let range = TimeRange::new(BENCHMARK_START_MS, BENCHMARK_START_MS + 3_600_000).unwrap();
        for dim in [
            Dimension::SrcAddr,
            Dimension::DstAddr,
            Dimension::AddrPair,
            Dimension::DstPort,
        ] {
            let mut truth: HashMap<Key, u64> = HashMap::new();
            for f in &flows {
                *truth.entry(dim.key(f)).or_default() += f.bytes;
            }
            let mut truth: Vec<(Key, u64)> = truth.into_iter().collect();
            truth.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            let top = s
                .top(&TopQuery {
                    range,
                    by: GroupBy::Dim(dim),
                    metric: Metric::Bytes,
                    n: 5,
                    filter: Filter::parse("bytes >= 0").unwrap(),
                    raw: true,
                })
                .unwrap();
            assert!(top.exact);
            for (row, (k, bytes)) in top.rows.iter().zip(&truth) {
                assert_eq!(row.agg.bytes, *bytes, "{dim:?}");
                assert_eq!(row.group, Group::from_key(dim, *k), "{dim:?}");
            }
            let sum: u64 = top.rows.iter().map(|r| r.agg.bytes).sum::<u64>() + top.other.bytes;
            assert_eq!(sum, flows.iter().map(|f| f.bytes).sum::<u64>());
            // Unfiltered: the fast column path, same answer.
            let fast = s
                .top(&TopQuery {
                    range,
                    by: GroupBy::Dim(dim),
                    metric: Metric::Bytes,
                    n: 5,
                    filter: Filter::all(),
                    raw: true,
                })
                .unwrap();
            assert_eq!(fast.rows, top.rows, "{dim:?}");
        }
    }
}
