//! Data FlowSets that arrived before their template, kept in a fixed byte
//! buffer until the template comes (then decoded) or they are pushed out.
//!
//! The buffer is split in two once, at construction:
//!
//! ```text
//! [ index: 8-byte slots ........ | ring: entries in arrival order ........ ]
//!   fingerprint u32 | count u32      header (`hdr`, 48 bytes) | FlowSet body
//! ```
//!
//! - The **ring** holds entries contiguously (an entry never wraps; the
//!   unused tail where one did not fit is skipped). New entries go at the
//!   end; when there is no room the oldest are dropped from the front, one
//!   at a time, each counted, until there is: O(1) per dropped entry, and
//!   nothing is ever moved. Taking or expiring an entry marks it dead; dead
//!   entries are reclaimed when they reach the front.
//! - The **index** counts the live entries per (exporter, Source ID,
//!   Template ID) and per (exporter, Source ID), keyed by a 32-bit
//!   fingerprint of the key (open addressing, linear probing, two slots per
//!   possible entry so it is at most half full). A fingerprint collision
//!   can only make a key look busy, never idle, so "nothing waits" is exact:
//!   a re-sent template costs no scan of the ring when nothing waits for it,
//!   whatever else is buffered.
//!
//! Age is measured on one clock for all exporters: the newest `unix_secs`
//! seen in any packet, or, once the caller gives one
//! ([`crate::Decoder::set_clock`]: a collector's receive time), that clock
//! only (then a header with a far-future `unix_secs` cannot expire everyone's
//! waiting data). Each entry records that clock when it arrives, so
//! arrival order is age order and expiry only ever looks at the front. (An
//! exporter's own clock cannot order entries of different exporters, and an
//! entry of an exporter that went quiet would otherwise never age.)

use core::hash::{Hash, Hasher};
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::flow::RecordContext;
use crate::managed::Managed;
use crate::table::FxHasher;

mod hdr {
    use core::ops::Range;
    pub(super) const LEN: Range<usize> = 0..4;
    pub(super) const LIVE: usize = 4;
    pub(super) const FAMILY: usize = 5;
    pub(super) const ADDR: Range<usize> = 6..22;
    pub(super) const SOURCE_ID: Range<usize> = 22..26;
    pub(super) const TEMPLATE_ID: Range<usize> = 26..28;
    pub(super) const SYS_UPTIME: Range<usize> = 28..32;
    pub(super) const UNIX_SECS: Range<usize> = 32..36;
    pub(super) const SEQUENCE: Range<usize> = 36..40;
    /// The shared clock when the entry arrived.
    pub(super) const ARRIVED: Range<usize> = 40..44;
    /// Reserved (keeps entries 4-byte aligned).
    pub(super) const RESERVED: Range<usize> = 44..48;
    pub(super) const SIZE: usize = RESERVED.end;
}

/// Bytes of an index slot: fingerprint and count.
const SLOT: usize = 8;
/// Index slots per possible entry: one per key (template and domain), and
/// twice that so the index is at most half full.
const SLOTS_PER_ENTRY: usize = 4;

/// Bytes of bookkeeping per buffered FlowSet: its header in the ring and its
/// share of the index. A buffer of `n × (ENTRY_OVERHEAD + body)` bytes holds
/// `n` FlowSets of `body` bytes (for bodies of at most `ENTRY_OVERHEAD`).
pub const ENTRY_OVERHEAD: usize = hdr::SIZE + SLOTS_PER_ENTRY * SLOT;

/// Template ID standing for a whole (exporter, Source ID) in the index; data
/// FlowSet IDs are ≥ 256.
const DOMAIN: u16 = 0;

fn rd32(b: &[u8], r: core::ops::Range<usize>) -> u32 {
    b.get(r)
        .and_then(|x| x.try_into().ok())
        .map_or(0, u32::from_be_bytes)
}

fn rd16(b: &[u8], r: core::ops::Range<usize>) -> u16 {
    b.get(r)
        .and_then(|x| x.try_into().ok())
        .map_or(0, u16::from_be_bytes)
}

fn wr32(b: &mut [u8], at: usize, v: u32) {
    if let Some(x) = b.get_mut(at..at + 4) {
        x.copy_from_slice(&v.to_be_bytes());
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    ctx: RecordContext,
    template_id: u16,
}

fn read_entry(h: &[u8]) -> Entry {
    let addr: [u8; 16] = h
        .get(hdr::ADDR)
        .and_then(|x| x.try_into().ok())
        .unwrap_or([0; 16]);
    let exporter = if h.get(hdr::FAMILY) == Some(&4) {
        IpAddr::V4(Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]))
    } else {
        IpAddr::V6(Ipv6Addr::from(addr))
    };
    Entry {
        ctx: RecordContext {
            exporter,
            source_id: rd32(h, hdr::SOURCE_ID),
            sys_uptime: rd32(h, hdr::SYS_UPTIME),
            unix_secs: rd32(h, hdr::UNIX_SECS),
            sequence_number: rd32(h, hdr::SEQUENCE),
        },
        template_id: rd16(h, hdr::TEMPLATE_ID),
    }
}

/// Outcome counts of buffer operations, added to the decoder's counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Churn {
    pub(crate) overflow: u64,
    pub(crate) expired: u64,
}

#[derive(Debug)]
pub(crate) struct Pending<'a> {
    buf: Managed<'a, u8>,
    /// Index slots, at the start of `buf`.
    slots: usize,
    /// Where the ring starts in `buf` (`slots × SLOT`).
    base: usize,
    /// Ring offsets (relative to `base`): the oldest entry, and where the
    /// next one goes.
    start: usize,
    end: usize,
    /// When entries wrapped: they are in `start..wrap` then `0..end`.
    wrapped: bool,
    wrap: usize,
    live: usize,
    max_age: u32,
    /// The shared clock: the newest `unix_secs` seen, or the newest time
    /// the caller gave (`external`).
    clock: u32,
    /// The caller gives the clock ([`Pending::set_clock`]): packet headers
    /// no longer move it.
    external: bool,
    seed: u64,
    /// Entries visited by every operation, for tests that bound the work.
    #[cfg(test)]
    pub(crate) work: usize,
}

impl<'a> Pending<'a> {
    pub(crate) fn new(mut buf: Managed<'a, u8>, max_age_secs: u32, seed: u64) -> Self {
        let slots = buf.len() / ENTRY_OVERHEAD * SLOTS_PER_ENTRY;
        let base = slots * SLOT;
        if let Some(index) = buf.get_mut(..base) {
            index.fill(0);
        }
        Pending {
            buf,
            slots,
            base,
            start: 0,
            end: 0,
            wrapped: false,
            wrap: 0,
            live: 0,
            max_age: max_age_secs,
            clock: 0,
            external: false,
            seed,
            #[cfg(test)]
            work: 0,
        }
    }

    /// Entries currently waiting.
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    /// Bytes of the ring in use (live and dead entries, and the skipped
    /// tail when wrapped).
    pub(crate) fn used_bytes(&self) -> usize {
        if self.wrapped {
            self.wrap - self.start + self.end
        } else {
            self.end - self.start
        }
    }

    /// Bytes available for entries (headers included).
    pub(crate) fn capacity(&self) -> usize {
        self.buf.len() - self.base
    }

    // --- index ---------------------------------------------------------

    fn fingerprint(&self, exporter: IpAddr, source_id: u32, template_id: u16) -> u32 {
        let mut h = FxHasher::new(self.seed);
        exporter.hash(&mut h);
        source_id.hash(&mut h);
        template_id.hash(&mut h);
        (h.finish() as u32).max(1)
    }

    fn home(&self, fp: u32) -> usize {
        ((u64::from(fp) * self.slots as u64) >> 32) as usize
    }

    fn slot_fp(&self, i: usize) -> u32 {
        rd32(&self.buf, i * SLOT..i * SLOT + 4)
    }

    fn slot_count(&self, i: usize) -> u32 {
        rd32(&self.buf, i * SLOT + 4..i * SLOT + 8)
    }

    /// The slot holding `fp`, or the empty slot where it would go.
    fn probe(&self, fp: u32) -> Option<(usize, bool)> {
        let mut i = self.home(fp);
        for _ in 0..self.slots {
            match self.slot_fp(i) {
                0 => return Some((i, false)),
                x if x == fp => return Some((i, true)),
                _ => i = (i + 1) % self.slots,
            }
        }
        None
    }

    fn count(&self, fp: u32) -> u32 {
        match self.probe(fp) {
            Some((i, true)) => self.slot_count(i),
            _ => 0,
        }
    }

    /// Adds one to `fp`'s count; false when the index is full.
    fn increment(&mut self, fp: u32) -> bool {
        match self.probe(fp) {
            Some((i, found)) => {
                let n = if found { self.slot_count(i) } else { 0 };
                wr32(&mut self.buf, i * SLOT, fp);
                wr32(&mut self.buf, i * SLOT + 4, n.saturating_add(1));
                true
            }
            None => false,
        }
    }

    /// Takes one from `fp`'s count; frees the slot at 0 (backward-shift
    /// deletion, so probes never need tombstones).
    fn decrement(&mut self, fp: u32) {
        let Some((i, true)) = self.probe(fp) else {
            return;
        };
        let n = self.slot_count(i).saturating_sub(1);
        wr32(&mut self.buf, i * SLOT + 4, n);
        if n > 0 {
            return;
        }
        let mut hole = i;
        let mut j = i;
        loop {
            j = (j + 1) % self.slots;
            let fj = self.slot_fp(j);
            if fj == 0 || j == i {
                break;
            }
            let home = self.home(fj);
            // Move the slot back into the hole unless its home lies
            // cyclically in (hole, j].
            if (j + self.slots - home) % self.slots >= (j + self.slots - hole) % self.slots {
                let c = self.slot_count(j);
                wr32(&mut self.buf, hole * SLOT, fj);
                wr32(&mut self.buf, hole * SLOT + 4, c);
                hole = j;
            }
        }
        wr32(&mut self.buf, hole * SLOT, 0);
        wr32(&mut self.buf, hole * SLOT + 4, 0);
    }

    /// True if FlowSets for this template wait (exact when false).
    pub(crate) fn waiting(&self, exporter: IpAddr, source_id: u32, template_id: u16) -> bool {
        self.live > 0 && self.count(self.fingerprint(exporter, source_id, template_id)) > 0
    }

    // --- ring ----------------------------------------------------------

    fn entry_len(&self, at: usize) -> usize {
        let a = self.base + at;
        rd32(&self.buf, a..a + 4) as usize
    }

    fn head(&self, at: usize) -> &[u8] {
        let a = self.base + at;
        self.buf.get(a..a + hdr::SIZE).unwrap_or(&[])
    }

    fn is_live(&self, at: usize) -> bool {
        self.buf.get(self.base + at + hdr::LIVE) == Some(&1)
    }

    fn is_empty(&self) -> bool {
        !self.wrapped && self.start == self.end
    }

    /// The entry after the one at `at`, if any.
    fn after(&mut self, at: usize) -> Option<usize> {
        #[cfg(test)]
        {
            self.work += 1;
        }
        let n = self.entry_len(at);
        if n < hdr::SIZE {
            return None;
        }
        let next = at + n;
        if self.wrapped && next == self.wrap {
            return (self.end > 0).then_some(0);
        }
        (next != self.end).then_some(next)
    }

    fn kill(&mut self, at: usize) {
        if !self.is_live(at) {
            return;
        }
        let e = read_entry(self.head(at));
        if let Some(b) = self.buf.get_mut(self.base + at + hdr::LIVE) {
            *b = 0;
        }
        self.live -= 1;
        let (x, s) = (e.ctx.exporter, e.ctx.source_id);
        self.decrement(self.fingerprint(x, s, e.template_id));
        self.decrement(self.fingerprint(x, s, DOMAIN));
    }

    /// Skips dead entries at the front; empties the ring when nothing lives.
    fn trim(&mut self) {
        if self.live == 0 {
            self.start = 0;
            self.end = 0;
            self.wrapped = false;
            return;
        }
        while !self.is_empty() && !self.is_live(self.start) {
            match self.after(self.start) {
                Some(next) => {
                    if next < self.start {
                        self.wrapped = false;
                    }
                    self.start = next;
                }
                None => {
                    self.start = 0;
                    self.end = 0;
                    self.wrapped = false;
                }
            }
        }
    }

    /// Where `need` bytes fit without dropping anything.
    fn room(&self, need: usize) -> Option<usize> {
        let cap = self.capacity();
        if self.wrapped {
            (self.start - self.end >= need).then_some(self.end)
        } else if cap - self.end >= need {
            Some(self.end)
        } else if self.start >= need {
            Some(0)
        } else {
            None
        }
    }

    /// Buffers `body`, a data FlowSet for `template_id` with no template yet,
    /// dropping the oldest entries if it does not fit. Returns false if it
    /// can never fit.
    pub(crate) fn push(
        &mut self,
        ctx: &RecordContext,
        template_id: u16,
        body: &[u8],
        churn: &mut Churn,
    ) -> bool {
        let need = hdr::SIZE + body.len();
        if need > self.capacity() || u32::try_from(need).is_err() || self.slots == 0 {
            churn.overflow += 1;
            return false;
        }
        let at = loop {
            if let Some(at) = self.room(need) {
                break at;
            }
            // RFC 3954 §9 leaves the buffering of data without a template to
            // the Collector; the oldest data is the least likely to be
            // claimed, so it goes first.
            #[cfg(test)]
            {
                self.work += 1;
            }
            self.kill(self.start);
            churn.overflow += 1;
            self.trim();
        };
        let (exporter, source_id) = (ctx.exporter, ctx.source_id);
        let fp = self.fingerprint(exporter, source_id, template_id);
        let dfp = self.fingerprint(exporter, source_id, DOMAIN);
        if !self.increment(fp) {
            churn.overflow += 1;
            return false;
        }
        if !self.increment(dfp) {
            self.decrement(fp);
            churn.overflow += 1;
            return false;
        }
        if at == 0 && self.end > 0 && !self.wrapped {
            self.wrapped = true;
            self.wrap = self.end;
        }
        let Some(h) = self.buf.get_mut(self.base + at..self.base + at + need) else {
            return false;
        };
        h[hdr::LEN].copy_from_slice(&(need as u32).to_be_bytes());
        h[hdr::LIVE] = 1;
        let (family, addr) = match exporter {
            IpAddr::V4(a) => {
                let mut b = [0u8; 16];
                b[..4].copy_from_slice(&a.octets());
                (4, b)
            }
            IpAddr::V6(a) => (6, a.octets()),
        };
        h[hdr::FAMILY] = family;
        h[hdr::ADDR].copy_from_slice(&addr);
        h[hdr::SOURCE_ID].copy_from_slice(&source_id.to_be_bytes());
        h[hdr::TEMPLATE_ID].copy_from_slice(&template_id.to_be_bytes());
        h[hdr::SYS_UPTIME].copy_from_slice(&ctx.sys_uptime.to_be_bytes());
        h[hdr::UNIX_SECS].copy_from_slice(&ctx.unix_secs.to_be_bytes());
        h[hdr::SEQUENCE].copy_from_slice(&ctx.sequence_number.to_be_bytes());
        h[hdr::ARRIVED].copy_from_slice(&self.clock.to_be_bytes());
        h[hdr::RESERVED].fill(0);
        h[hdr::SIZE..].copy_from_slice(body);
        if self.is_empty() {
            self.start = at;
        }
        self.end = at + need;
        self.live += 1;
        true
    }

    /// Advances the shared clock to `unix_secs` (it never goes back) and
    /// expires the entries that waited longer than the maximum age.
    pub(crate) fn advance(&mut self, unix_secs: u32, churn: &mut Churn) {
        if !self.external {
            self.clock = self.clock.max(unix_secs);
        }
        self.expire(churn);
    }

    /// From now on the clock is the caller's (its receive time, which no
    /// sender controls), never moving back; expires what is due.
    pub(crate) fn set_clock(&mut self, now_unix_secs: u32, churn: &mut Churn) {
        self.external = true;
        self.clock = self.clock.max(now_unix_secs);
        self.expire(churn);
    }

    fn expire(&mut self, churn: &mut Churn) {
        while self.live > 0 {
            let arrived = rd32(self.head(self.start), hdr::ARRIVED);
            if self.clock <= arrived.saturating_add(self.max_age) {
                break;
            }
            self.kill(self.start);
            churn.expired += 1;
            self.trim();
        }
    }

    /// Drops (as expired) every entry of an observation domain.
    pub(crate) fn drop_domain(&mut self, exporter: IpAddr, source_id: u32, churn: &mut Churn) {
        let dfp = self.fingerprint(exporter, source_id, DOMAIN);
        let mut left = self.count(dfp);
        self.scan(
            &mut left,
            |e| e.ctx.exporter == exporter && e.ctx.source_id == source_id,
            |_, _| {},
            churn,
            true,
        );
    }

    /// Takes every entry for (exporter, Source ID, template ID) in arrival
    /// order, calling `f(context, body)` for each.
    pub(crate) fn take(
        &mut self,
        exporter: IpAddr,
        source_id: u32,
        template_id: u16,
        churn: &mut Churn,
        f: impl FnMut(&RecordContext, &[u8]),
    ) {
        let mut left = self.count(self.fingerprint(exporter, source_id, template_id));
        self.scan(
            &mut left,
            |e| {
                e.template_id == template_id
                    && e.ctx.exporter == exporter
                    && e.ctx.source_id == source_id
            },
            f,
            churn,
            false,
        );
    }

    /// Kills the live entries `matches` accepts, oldest first, handing each
    /// to `f`; stops once `left` (an upper bound of their number) is spent.
    fn scan(
        &mut self,
        left: &mut u32,
        matches: impl Fn(&Entry) -> bool,
        mut f: impl FnMut(&RecordContext, &[u8]),
        churn: &mut Churn,
        expire: bool,
    ) {
        if self.is_empty() {
            return;
        }
        let mut at = Some(self.start);
        while let (Some(p), true) = (at, *left > 0) {
            if self.is_live(p) {
                let e = read_entry(self.head(p));
                if matches(&e) {
                    *left -= 1;
                    if expire {
                        churn.expired += 1;
                    } else {
                        let n = self.entry_len(p);
                        let body = self
                            .buf
                            .get(self.base + p + hdr::SIZE..self.base + p + n)
                            .unwrap_or(&[]);
                        f(&e.ctx, body);
                    }
                    self.kill(p);
                }
            }
            at = self.after(p);
        }
        self.trim();
    }
}

#[cfg(all(test, feature = "alloc"))]
mod tests {
    use super::*;

    const X: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));

    fn ctx(secs: u32) -> RecordContext {
        RecordContext {
            exporter: X,
            source_id: 7,
            sys_uptime: 1,
            unix_secs: secs,
            sequence_number: 3,
        }
    }

    fn pending(bytes: usize) -> Pending<'static> {
        Pending::new(Managed::owned(bytes, 0), 60, 1)
    }

    #[test]
    fn push_take_in_order() {
        let mut p = pending(1024);
        let mut churn = Churn::default();
        assert!(p.push(&ctx(100), 300, &[1, 2], &mut churn));
        assert!(p.push(&ctx(101), 301, &[3], &mut churn));
        assert!(p.push(&ctx(102), 300, &[4], &mut churn));
        assert!(p.waiting(X, 7, 300) && p.waiting(X, 7, 301));
        assert!(!p.waiting(X, 7, 302) && !p.waiting(X, 8, 300));
        let mut got = [0u8; 4];
        let mut n = 0;
        p.take(X, 7, 300, &mut churn, |c, b| {
            assert_eq!(c.unix_secs, if n == 0 { 100 } else { 102 });
            got[n] = b[0];
            n += 1;
        });
        assert_eq!(&got[..n], &[1, 4]);
        assert_eq!(p.len(), 1);
        assert!(!p.waiting(X, 7, 300));
        assert_eq!(churn, Churn::default());
        p.take(X, 7, 301, &mut churn, |_, _| {});
        assert_eq!((p.len(), p.used_bytes()), (0, 0));
        assert!(p.buf[..p.base].iter().all(|&b| b == 0), "index empty again");
    }

    #[test]
    fn overflow_drops_oldest_and_counts() {
        let mut p = pending(3 * (ENTRY_OVERHEAD + 10));
        let mut churn = Churn::default();
        for i in 0..10u8 {
            assert!(p.push(&ctx(100), 300 + u16::from(i), &[i; 10], &mut churn));
        }
        assert_eq!(churn.overflow, 7);
        assert_eq!(p.len(), 3);
        assert!(!p.push(&ctx(100), 1, &[0; 1000], &mut churn));
        assert_eq!(churn.overflow, 8);
        let mut seen = 0;
        p.take(X, 7, 309, &mut churn, |_, b| seen = b[0]);
        assert_eq!(seen, 9);
        assert!(!p.waiting(X, 7, 300), "dropped entries leave the index");
    }

    /// Regression: a full buffer of tiny entries then one big FlowSet cost
    /// a compaction of the whole buffer per dropped entry (3.26 s for 23.7k
    /// entries). Now each dropped entry is one step and nothing moves.
    #[test]
    fn dropping_many_entries_is_linear() {
        let mut p = pending(1 << 20);
        let mut churn = Churn::default();
        let mut i = 0u32;
        while p.capacity() - p.used_bytes() >= hdr::SIZE + 4 {
            let c = RecordContext {
                source_id: i,
                ..ctx(100)
            };
            assert!(p.push(&c, 1000, &[1, 2, 3, 4], &mut churn));
            i += 1;
        }
        assert_eq!(churn.overflow, 0);
        let filled = p.len();
        assert!(filled > 10_000, "{filled}");
        p.work = 0;
        assert!(p.push(&ctx(100), 2000, &[7; 60_000], &mut churn));
        let dropped = churn.overflow as usize;
        assert!(dropped > 60_000 / 52 && dropped < 60_000 / 52 + 3);
        assert!(p.work <= 3 * dropped + 3, "{} steps", p.work);
        // A steady stream of small FlowSets into the full ring: a few steps each.
        for k in 0..5_000u32 {
            p.work = 0;
            let c = RecordContext {
                source_id: 1_000_000 + k,
                ..ctx(100)
            };
            assert!(p.push(&c, 1000, &[9; 20], &mut churn));
            assert!(p.work <= 6, "{} steps", p.work);
        }
        assert_eq!(p.len() + churn.overflow as usize, filled + 5_001);
    }

    #[test]
    fn wraps_and_keeps_order() {
        let mut p = pending(4 * (ENTRY_OVERHEAD + 16));
        let mut churn = Churn::default();
        for i in 0..40u8 {
            let len = 4 + usize::from(i % 3) * 4;
            assert!(p.push(
                &ctx(100),
                300 + u16::from(i % 5),
                &[i; 16][..len],
                &mut churn
            ));
            // Every live entry can be found again, oldest first.
            let mut seen = [0u8; 8];
            let mut n = 0;
            let mut at = Some(p.start);
            while let Some(a) = at {
                if p.is_live(a) {
                    seen[n] = p.buf[p.base + a + hdr::SIZE];
                    n += 1;
                }
                at = p.after(a);
            }
            assert_eq!(n, p.len());
            assert!(seen[..n].windows(2).all(|w| w[0] < w[1]), "{seen:?}");
            assert_eq!(seen[n - 1], i);
        }
        let mut got = 0;
        p.take(X, 7, 304, &mut churn, |_, b| {
            assert_eq!(b[0] % 5, 4);
            got += 1;
        });
        assert!(got >= 1);
        assert_eq!(p.len() + got + churn.overflow as usize, 40);
    }

    #[test]
    fn a_clock_given_by_the_caller_ignores_headers() {
        let mut p = pending(1024);
        let mut churn = Churn::default();
        p.set_clock(100, &mut churn);
        p.push(&ctx(100), 300, &[1], &mut churn);
        // A forged far-future header moves nothing.
        p.advance(u32::MAX, &mut churn);
        assert_eq!((p.len(), churn.expired), (1, 0));
        // Nor does the caller's clock going back.
        p.set_clock(10, &mut churn);
        p.set_clock(160, &mut churn);
        assert_eq!(p.len(), 1);
        p.set_clock(161, &mut churn);
        assert_eq!((p.len(), churn.expired), (0, 1));
    }

    #[test]
    fn expiry_by_the_newest_clock_of_any_exporter() {
        let mut p = pending(1024);
        let mut churn = Churn::default();
        p.advance(100, &mut churn);
        p.push(&ctx(100), 300, &[1], &mut churn);
        // A clock behind does not move the shared one back.
        p.advance(50, &mut churn);
        p.advance(160, &mut churn);
        assert_eq!(p.len(), 1);
        p.advance(161, &mut churn);
        assert_eq!((p.len(), churn.expired, p.used_bytes()), (0, 1, 0));
    }

    #[test]
    fn drop_domain_only_drops_that_domain() {
        let mut p = pending(4096);
        let mut churn = Churn::default();
        p.push(&ctx(100), 300, &[1], &mut churn);
        let other = RecordContext {
            source_id: 8,
            ..ctx(100)
        };
        p.push(&other, 300, &[2], &mut churn);
        p.push(&ctx(100), 301, &[3], &mut churn);
        p.drop_domain(X, 7, &mut churn);
        assert_eq!((p.len(), churn.expired), (1, 2));
        assert!(p.waiting(X, 8, 300) && !p.waiting(X, 7, 300));
    }
}
