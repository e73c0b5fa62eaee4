//! Per-(exporter, Source ID) state: sequence tracking, restart detection,
//! samplers and counters.

use core::net::IpAddr;

use crate::sampling::Samplers;
use crate::wire::HeaderRepr;

/// An observation domain: an exporter address and a Source ID (RFC 3954 §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct DomainKey {
    /// The exporter's address.
    pub exporter: IpAddr,
    /// The Source ID.
    pub source_id: u32,
}

/// Counters and learned state of one observation domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct DomainStats {
    /// Export packets received.
    pub packets: u64,
    /// Data records decoded.
    pub records: u64,
    /// Options data records decoded.
    pub options_records: u64,
    /// Export packets missing by sequence number.
    pub sequence_lost: u64,
    /// Export packets received out of order (late, and not seen before).
    pub sequence_reordered: u64,
    /// Export packets whose sequence number was already seen among the last
    /// [`SEQUENCE_WINDOW`] (duplicated by the network or resent): not a
    /// loss, not a reordering, and they give no loss back.
    pub sequence_duplicates: u64,
    /// Sequence numbers that jumped more than [`SEQUENCE_RESYNC`] from the
    /// expected one (a reset numbering, a corrupt or forged header): the
    /// tracking restarted from that packet, nothing counted as lost.
    pub sequence_resyncs: u64,
    /// Restarts detected.
    pub restarts: u64,
    /// Header `unix_secs` of the newest packet.
    pub last_unix_secs: u32,
    /// Header sequence number of the newest packet.
    pub last_sequence: u32,
}

/// How far the boot time implied by a header may drift (whole-second
/// `unix_secs`, clock adjustments) before it means a restart.
const BOOT_TIME_TOLERANCE_MS: i64 = 10_000;

/// At most this much uptime before the newest packet, a packet just
/// behind in sequence is late, not from a new boot.
const LATE_MAX_MS: u32 = 60_000;

/// A sequence number at most this far past the expected one continues the
/// previous numbering.
const SEQUENCE_CARRIES_ON: u32 = 100_000;

/// A sequence number further than this from the expected one, ahead or
/// behind, is a discontinuity, not a loss (a million export packets: hours
/// of a busy exporter's output): tracking starts over from it. One forged
/// header cannot add billions to the loss count, nor make every later
/// packet look late.
pub const SEQUENCE_RESYNC: u32 = 1 << 20;

/// How many sequence numbers before the expected one are remembered as
/// seen or missing. A packet later than that counts as reordered but gives
/// no loss back: whether it is a duplicate can no longer be told.
pub const SEQUENCE_WINDOW: u32 = 128;

/// The state kept per observation domain (opaque; see [`crate::Decoder::domains`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DomainState {
    seen: bool,
    expected: u32,
    /// Bit `i` set: sequence number `expected - 1 - i` arrived.
    window: u128,
    /// How many numbers before `expected` the tracking covers (since the
    /// first packet, restart or resync; at most the window): an earlier
    /// number was never counted lost, so it gives no loss back.
    tracked: u32,
    last_uptime: u32,
    pub(crate) samplers: Samplers,
    pub(crate) stats: DomainStats,
}

/// What a packet header told about its exporter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Observation {
    pub(crate) lost: u64,
    pub(crate) reordered: bool,
    pub(crate) restarted: bool,
    /// A late packet filled a gap counted as lost earlier.
    pub(crate) retracted: bool,
    /// The sequence number was seen already.
    pub(crate) duplicate: bool,
    /// The sequence number jumped past [`SEQUENCE_RESYNC`].
    pub(crate) resynced: bool,
}

impl DomainState {
    /// Tracks the sequence number and uptime of a new packet.
    pub(crate) fn observe(&mut self, h: &HeaderRepr) -> Observation {
        let mut o = Observation::default();
        self.stats.packets += 1;
        if !self.seen {
            self.seen = true;
            self.start_over(h);
            return o;
        }
        if h.sys_uptime < self.last_uptime {
            // RFC 3954 §9: the Collector can detect an Exporter restart by
            // sysUpTime going backwards. So do a late packet and a 32-bit
            // uptime wrap; what tells them apart is the boot time the header
            // implies (unix_secs − sys_uptime): unchanged for a late packet,
            // 2³² ms later after a wrap, otherwise later after a restart.
            let boot = |secs: u32, up: u32| i64::from(secs) * 1000 - i64::from(up);
            let jump =
                boot(h.unix_secs, h.sys_uptime) - boot(self.stats.last_unix_secs, self.last_uptime);
            let wrap = (jump - (1i64 << 32)).abs() < BOOT_TIME_TOLERANCE_MS;
            // A restarted exporter also starts its sequence over; one whose
            // sequence carries on (seen on IOS XR captures) did not restart.
            let carries_on = h.sequence_number.wrapping_sub(self.expected) <= SEQUENCE_CARRIES_ON;
            // A packet just behind the expected number, sent less than
            // LATE_MAX_MS of uptime before the newest, is a late one even if
            // the exporter's clock stepped since it was sent.
            let late = self.expected.wrapping_sub(h.sequence_number) <= SEQUENCE_WINDOW
                && self.last_uptime.wrapping_sub(h.sys_uptime) <= LATE_MAX_MS;
            // Either way: a boot time later (a restart) or earlier (a
            // router that booted with its clock behind, before NTP) than
            // the one before; a late packet implies the same one.
            if !wrap && !carries_on && !late && jump.abs() > BOOT_TIME_TOLERANCE_MS {
                o.restarted = true;
                self.stats.restarts += 1;
                self.start_over(h);
                return o;
            }
        }
        // RFC 3954 §5.1: "Incremental sequence counter of all Export Packets
        // sent from the current Observation Domain by the Exporter".
        let diff = h.sequence_number.wrapping_sub(self.expected) as i32;
        if diff.unsigned_abs() > SEQUENCE_RESYNC {
            o.resynced = true;
            self.stats.sequence_resyncs += 1;
            self.start_over(h);
            return o;
        }
        if diff >= 0 {
            o.lost = diff as u64;
            self.stats.sequence_lost += o.lost;
            let shift = diff.unsigned_abs().saturating_add(1);
            self.window = self.window.checked_shl(shift).unwrap_or(0);
            // `accept` adds the new number itself.
            self.tracked = self.tracked.saturating_add(shift - 1);
            self.accept(h);
            return o;
        }
        // A late packet: it fills a gap counted earlier only if its number
        // is one that is still missing; a number seen already is a
        // duplicate, and must not cancel a real loss.
        let back = self.expected.wrapping_sub(h.sequence_number) - 1;
        let bit = if back < self.tracked {
            1u128.checked_shl(back).unwrap_or(0)
        } else {
            // Before the tracking began: late, but never counted lost.
            0
        };
        if bit != 0 && self.window & bit != 0 {
            o.duplicate = true;
            self.stats.sequence_duplicates += 1;
            return o;
        }
        self.window |= bit;
        o.reordered = true;
        self.stats.sequence_reordered += 1;
        if bit != 0 && self.stats.sequence_lost > 0 {
            self.stats.sequence_lost -= 1;
            o.retracted = true;
        }
        o
    }

    /// Starts the tracking over from `h` (first packet, restart, resync).
    fn start_over(&mut self, h: &HeaderRepr) {
        self.window = 0;
        self.tracked = 0;
        self.accept(h);
    }

    /// Takes `h` as the newest packet (the window already shifted to it).
    fn accept(&mut self, h: &HeaderRepr) {
        self.window |= 1;
        self.tracked = self.tracked.saturating_add(1).min(SEQUENCE_WINDOW);
        self.expected = h.sequence_number.wrapping_add(1);
        self.last_uptime = h.sys_uptime;
        self.stats.last_unix_secs = h.unix_secs;
        self.stats.last_sequence = h.sequence_number;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(seq: u32, up: u32, secs: u32) -> HeaderRepr {
        HeaderRepr {
            count: 0,
            sys_uptime: up,
            unix_secs: secs,
            sequence_number: seq,
            source_id: 0,
        }
    }

    #[test]
    fn loss_reorder_and_wrap() {
        let mut d = DomainState::default();
        d.observe(&h(u32::MAX - 1, 1000, 100));
        assert_eq!(d.observe(&h(u32::MAX, 1001, 100)).lost, 0);
        assert_eq!(
            d.observe(&h(2, 1002, 100)).lost,
            2,
            "0 and 1 lost across the wrap"
        );
        assert!(d.observe(&h(1, 1002, 100)).reordered);
        assert_eq!(d.stats.sequence_lost, 1);
        assert_eq!(d.stats.sequence_reordered, 1);
    }

    /// A late number from before the first packet was never counted lost:
    /// it gives no loss back.
    #[test]
    fn numbers_before_the_first_packet_give_nothing_back() {
        let mut d = DomainState::default();
        d.observe(&h(100, 1000, 100));
        assert_eq!(d.observe(&h(102, 1002, 100)).lost, 1);
        let o = d.observe(&h(99, 999, 100));
        assert!(o.reordered && !o.retracted);
        assert_eq!(d.stats.sequence_lost, 1, "101 is still missing");
        assert!(d.observe(&h(101, 1001, 100)).retracted);
        assert_eq!(d.stats.sequence_lost, 0);
    }

    /// A far jump of the sequence number, forward or back, starts the
    /// tracking over instead of counting a billion losses or making every
    /// later packet late.
    #[test]
    fn far_jumps_resync() {
        let mut d = DomainState::default();
        d.observe(&h(1000, 1000, 100));
        let o = d.observe(&h(1001 + (1 << 30), 1001, 100));
        assert!(o.resynced && o.lost == 0);
        // The numbering carries on from before: back again, once.
        let o = d.observe(&h(1001, 1002, 100));
        assert!(o.resynced && !o.reordered);
        assert_eq!(d.observe(&h(1003, 1003, 100)).lost, 1);
        let s = d.stats;
        assert_eq!(
            (s.sequence_lost, s.sequence_reordered, s.sequence_resyncs),
            (1, 0, 2)
        );
        // A loss within the bound is still a loss.
        assert_eq!(d.observe(&h(1004 + 500_000, 1004, 100)).lost, 500_000);
    }

    /// A router that boots with its clock behind (no calendar, before NTP):
    /// the boot time goes back, the numbering starts over: a restart.
    #[test]
    fn restart_with_the_clock_behind() {
        let mut d = DomainState::default();
        d.observe(&h(5000, 90_000_000, 1_700_000_000));
        let o = d.observe(&h(0, 1000, 740_000_000));
        assert!(o.restarted);
        // A late packet of the same boot is no restart.
        let mut d = DomainState::default();
        d.observe(&h(5000, 90_000_000, 1_700_000_000));
        d.observe(&h(5002, 90_002_000, 1_700_000_002));
        let o = d.observe(&h(5001, 90_001_000, 1_700_000_001));
        assert!(!o.restarted && o.reordered);
        // Nor is a late packet sent before the clock stepped forward (NTP).
        let mut d = DomainState::default();
        d.observe(&h(5000, 90_000_000, 1_700_000_000));
        d.observe(&h(5002, 90_002_000, 1_700_000_062));
        let o = d.observe(&h(5001, 90_001_000, 1_700_000_001));
        assert!(!o.restarted && o.reordered);
    }

    /// Regression: any number below the expected one gave a loss back, so
    /// duplicates of a packet cancelled real losses (1, 3, 3, 3 → lost 0).
    #[test]
    fn duplicates_do_not_cancel_losses() {
        let mut d = DomainState::default();
        for seq in [1, 3, 3, 3] {
            d.observe(&h(seq, 1000 + seq, 100));
        }
        let s = d.stats;
        assert_eq!(
            (s.sequence_lost, s.sequence_reordered, s.sequence_duplicates),
            (1, 0, 2)
        );
        // 2 arrives late: a real gap filled once; again: a duplicate.
        assert!(d.observe(&h(2, 1002, 100)).retracted);
        let o = d.observe(&h(2, 1002, 100));
        assert!(o.duplicate && !o.retracted && !o.reordered);
        let s = d.stats;
        assert_eq!(
            (s.sequence_lost, s.sequence_reordered, s.sequence_duplicates),
            (0, 1, 3)
        );
        // Older than the window: reordered, no loss given back.
        let mut d = DomainState::default();
        d.observe(&h(0, 1000, 100));
        d.observe(&h(1000, 2000, 100));
        assert_eq!(d.stats.sequence_lost, 999);
        let o = d.observe(&h(5, 1010, 100));
        assert!(o.reordered && !o.retracted);
        let o = d.observe(&h(1000 - 50, 1950, 100));
        assert!(o.reordered && o.retracted);
        assert!(d.observe(&h(1000 - 50, 1950, 100)).duplicate);
        assert_eq!(d.stats.sequence_lost, 998);
    }

    #[test]
    fn restart_versus_uptime_wrap() {
        let mut d = DomainState::default();
        d.observe(&h(10, 5_000_000, 1000));
        assert!(d.observe(&h(0, 2_000, 1010)).restarted);
        let mut w = DomainState::default();
        w.observe(&h(10, u32::MAX - 1_000, 1000));
        let o = w.observe(&h(11, 3_000, 1004));
        assert!(!o.restarted, "wrap: 4 s of wall clock for 4 s of uptime");
        assert_eq!(o.lost, 0);
        // small step back: reordering, not a restart
        assert!(!w.observe(&h(12, 2_000, 1004)).restarted);
        // an old packet (uptime and clock both earlier): not a restart either
        let mut o = DomainState::default();
        o.observe(&h(75, 739_490_432, 1_469_109_117));
        let late = o.observe(&h(31, 739_410_190, 1_469_109_037));
        assert!(!late.restarted && late.reordered);
        // uptime back, clock forward, but the sequence carries on: no restart
        let mut c = DomainState::default();
        c.observe(&h(0x819, 3_872_245_664, 1_691_746_213));
        let o = c.observe(&h(0x829, 3_872_132_129, 1_691_746_229));
        assert!(!o.restarted);
        assert_eq!(o.lost, 15);
    }
}
