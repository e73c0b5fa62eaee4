//! Data FlowSets that arrived before their template, kept in a fixed byte
//! buffer until the template comes (then decoded) or they are pushed out.
//!
//! Entries sit in arrival order in one byte buffer: a 40-byte header (see
//! `hdr`) then the FlowSet body. Taking or dropping an entry marks it dead;
//! dead space is reclaimed by compaction when a new entry does not fit. When
//! it still does not fit, the oldest entries are dropped and counted.
//!
//! Age is measured on the exporter's own clock: an entry expires when a
//! later packet of the same (exporter, Source ID) carries a `unix_secs` more
//! than `max_age_secs` past the entry's.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::flow::RecordContext;
use crate::managed::Managed;

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
    pub(super) const SIZE: usize = SEQUENCE.end;
}

/// Bytes of bookkeeping per buffered FlowSet.
pub const ENTRY_OVERHEAD: usize = hdr::SIZE;

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
    start: usize,
    end: usize,
    live: usize,
    max_age: u32,
}

impl<'a> Pending<'a> {
    pub(crate) fn new(buf: Managed<'a, u8>, max_age_secs: u32) -> Self {
        Pending {
            buf,
            start: 0,
            end: 0,
            live: 0,
            max_age: max_age_secs,
        }
    }

    /// Entries currently waiting.
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    /// Bytes in use (live and dead, before compaction).
    pub(crate) fn used_bytes(&self) -> usize {
        self.end - self.start
    }

    fn entry_len(&self, at: usize) -> usize {
        rd32(&self.buf, at..at + 4) as usize
    }

    fn is_live(&self, at: usize) -> bool {
        self.buf.get(at + hdr::LIVE) == Some(&1)
    }

    fn kill(&mut self, at: usize) {
        if let Some(b) = self.buf.get_mut(at + hdr::LIVE) {
            if *b == 1 {
                *b = 0;
                self.live -= 1;
            }
        }
    }

    /// Skips dead entries at the front; empties the buffer when nothing lives.
    fn trim(&mut self) {
        while self.start < self.end && !self.is_live(self.start) {
            let n = self.entry_len(self.start);
            if n == 0 {
                break;
            }
            self.start += n;
        }
        if self.live == 0 {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Moves live entries to the front of the buffer.
    fn compact(&mut self) {
        let mut read = self.start;
        let mut write = 0;
        while read < self.end {
            let n = self.entry_len(read);
            if n == 0 {
                break;
            }
            if self.is_live(read) {
                self.buf.copy_within(read..read + n, write);
                write += n;
            }
            read += n;
        }
        self.start = 0;
        self.end = write;
    }

    /// Buffers `body`, a data FlowSet for `template_id` with no template yet.
    /// Returns false if it can never fit.
    pub(crate) fn push(
        &mut self,
        ctx: &RecordContext,
        template_id: u16,
        body: &[u8],
        churn: &mut Churn,
    ) -> bool {
        let need = hdr::SIZE + body.len();
        if need > self.buf.len() || u32::try_from(need).is_err() {
            churn.overflow += 1;
            return false;
        }
        if self.end + need > self.buf.len() {
            self.compact();
            while self.end + need > self.buf.len() && self.live > 0 {
                self.kill(self.start);
                churn.overflow += 1;
                self.trim();
                self.compact();
            }
        }
        let at = self.end;
        let Some(h) = self.buf.get_mut(at..at + need) else {
            churn.overflow += 1;
            return false;
        };
        h[hdr::LEN].copy_from_slice(&(need as u32).to_be_bytes());
        h[hdr::LIVE] = 1;
        let (family, addr) = match ctx.exporter {
            IpAddr::V4(a) => {
                let mut b = [0u8; 16];
                b[..4].copy_from_slice(&a.octets());
                (4, b)
            }
            IpAddr::V6(a) => (6, a.octets()),
        };
        h[hdr::FAMILY] = family;
        h[hdr::ADDR].copy_from_slice(&addr);
        h[hdr::SOURCE_ID].copy_from_slice(&ctx.source_id.to_be_bytes());
        h[hdr::TEMPLATE_ID].copy_from_slice(&template_id.to_be_bytes());
        h[hdr::SYS_UPTIME].copy_from_slice(&ctx.sys_uptime.to_be_bytes());
        h[hdr::UNIX_SECS].copy_from_slice(&ctx.unix_secs.to_be_bytes());
        h[hdr::SEQUENCE].copy_from_slice(&ctx.sequence_number.to_be_bytes());
        h[hdr::SIZE..].copy_from_slice(body);
        self.end += need;
        self.live += 1;
        true
    }

    fn too_old(&self, entry_secs: u32, now_secs: u32) -> bool {
        now_secs > entry_secs.saturating_add(self.max_age)
    }

    /// Expires old entries of `ctx`'s domain from the front of the buffer.
    pub(crate) fn expire_front(&mut self, ctx: &RecordContext, churn: &mut Churn) {
        while self.live > 0 && self.start < self.end {
            let e = read_entry(self.buf.get(self.start..).unwrap_or(&[]));
            if e.ctx.exporter != ctx.exporter
                || e.ctx.source_id != ctx.source_id
                || !self.too_old(e.ctx.unix_secs, ctx.unix_secs)
            {
                break;
            }
            self.kill(self.start);
            churn.expired += 1;
            self.trim();
        }
    }

    /// Takes every entry for (exporter, Source ID, template ID) in arrival
    /// order, calling `f(context, body)` for each; stale ones are expired.
    pub(crate) fn take(
        &mut self,
        ctx: &RecordContext,
        template_id: u16,
        churn: &mut Churn,
        mut f: impl FnMut(&RecordContext, &[u8]),
    ) {
        if self.live == 0 {
            return;
        }
        let mut at = self.start;
        while at < self.end {
            let n = self.entry_len(at);
            if n < hdr::SIZE {
                break;
            }
            if self.is_live(at) {
                let head = self.buf.get(at..at + hdr::SIZE).unwrap_or(&[]);
                let e = read_entry(head);
                if e.ctx.exporter == ctx.exporter && e.ctx.source_id == ctx.source_id {
                    if self.too_old(e.ctx.unix_secs, ctx.unix_secs) {
                        self.kill(at);
                        churn.expired += 1;
                    } else if e.template_id == template_id {
                        f(&e.ctx, self.buf.get(at + hdr::SIZE..at + n).unwrap_or(&[]));
                        self.kill(at);
                    }
                }
            }
            at += n;
        }
        self.trim();
    }
}

#[cfg(all(test, feature = "alloc"))]
mod tests {
    use super::*;

    fn ctx(secs: u32) -> RecordContext {
        RecordContext {
            exporter: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            source_id: 7,
            sys_uptime: 1,
            unix_secs: secs,
            sequence_number: 3,
        }
    }

    #[test]
    fn push_take_in_order() {
        let mut p = Pending::new(Managed::owned(1024, 0), 60);
        let mut churn = Churn::default();
        assert!(p.push(&ctx(100), 300, &[1, 2], &mut churn));
        assert!(p.push(&ctx(101), 301, &[3], &mut churn));
        assert!(p.push(&ctx(102), 300, &[4], &mut churn));
        let mut got = [0u8; 4];
        let mut n = 0;
        p.take(&ctx(103), 300, &mut churn, |c, b| {
            assert_eq!(c.unix_secs, if n == 0 { 100 } else { 102 });
            got[n] = b[0];
            n += 1;
        });
        assert_eq!(&got[..n], &[1, 4]);
        assert_eq!(p.len(), 1);
        assert_eq!(churn, Churn::default());
    }

    #[test]
    fn overflow_drops_oldest_and_counts() {
        let mut p = Pending::new(Managed::owned(3 * (ENTRY_OVERHEAD + 10), 0), 60);
        let mut churn = Churn::default();
        for i in 0..10u8 {
            assert!(p.push(&ctx(100), 300 + u16::from(i), &[i; 10], &mut churn));
        }
        assert_eq!(churn.overflow, 7);
        assert_eq!(p.len(), 3);
        assert!(!p.push(&ctx(100), 1, &[0; 1000], &mut churn));
        assert_eq!(churn.overflow, 8);
        let mut seen = 0;
        p.take(&ctx(100), 309, &mut churn, |_, b| seen = b[0]);
        assert_eq!(seen, 9);
    }

    #[test]
    fn expiry_by_the_exporters_clock() {
        let mut p = Pending::new(Managed::owned(1024, 0), 60);
        let mut churn = Churn::default();
        p.push(&ctx(100), 300, &[1], &mut churn);
        p.expire_front(&ctx(160), &mut churn);
        assert_eq!(p.len(), 1);
        p.expire_front(&ctx(161), &mut churn);
        assert_eq!((p.len(), churn.expired, p.used_bytes()), (0, 1, 0));
    }
}
