//! Where, in a record, each value of the normalized [`crate::Flow`] lives.
//!
//! Built once per template; reading a flow is then a handful of loads at
//! known offsets with no search through the field list.

use crate::wire::read_uint;

/// Role numbers: indexes into [`FlowLayout`]'s location array.
pub(crate) mod role {
    pub(crate) const SRC4: usize = 0;
    pub(crate) const DST4: usize = 1;
    pub(crate) const SRC6: usize = 2;
    pub(crate) const DST6: usize = 3;
    pub(crate) const SRC_PORT: usize = 4;
    pub(crate) const DST_PORT: usize = 5;
    pub(crate) const PROTOCOL: usize = 6;
    pub(crate) const TCP_FLAGS: usize = 7;
    pub(crate) const TOS: usize = 8;
    pub(crate) const INPUT_IF: usize = 9;
    pub(crate) const OUTPUT_IF: usize = 10;
    pub(crate) const SRC_AS: usize = 11;
    pub(crate) const DST_AS: usize = 12;
    pub(crate) const SRC_MASK: usize = 13;
    pub(crate) const DST_MASK: usize = 14;
    pub(crate) const SRC_MASK6: usize = 15;
    pub(crate) const DST_MASK6: usize = 16;
    pub(crate) const NEXT_HOP4: usize = 17;
    pub(crate) const NEXT_HOP6: usize = 18;
    pub(crate) const BGP_NEXT_HOP4: usize = 19;
    pub(crate) const BGP_NEXT_HOP6: usize = 20;
    pub(crate) const DIRECTION: usize = 21;
    pub(crate) const IN_BYTES: usize = 22;
    pub(crate) const IN_PKTS: usize = 23;
    pub(crate) const OUT_BYTES: usize = 24;
    pub(crate) const OUT_PKTS: usize = 25;
    pub(crate) const PERM_BYTES: usize = 26;
    pub(crate) const PERM_PKTS: usize = 27;
    pub(crate) const INIT_OCTETS: usize = 28;
    pub(crate) const RESP_OCTETS: usize = 29;
    pub(crate) const INIT_PKTS: usize = 30;
    pub(crate) const RESP_PKTS: usize = 31;
    pub(crate) const FIRST_SWITCHED: usize = 32;
    pub(crate) const LAST_SWITCHED: usize = 33;
    pub(crate) const START_S: usize = 34;
    pub(crate) const END_S: usize = 35;
    pub(crate) const START_MS: usize = 36;
    pub(crate) const END_MS: usize = 37;
    pub(crate) const START_US: usize = 38;
    pub(crate) const END_US: usize = 39;
    pub(crate) const OBSERVATION_MS: usize = 40;
    pub(crate) const ICMP_TYPE: usize = 41;
    pub(crate) const ICMP_TYPE_CODE6: usize = 42;
    pub(crate) const ICMP_TYPE4: usize = 43;
    pub(crate) const ICMP_CODE4: usize = 44;
    pub(crate) const ICMP_TYPE6: usize = 45;
    pub(crate) const ICMP_CODE6: usize = 46;
    pub(crate) const SAMPLER_ID: usize = 47;
    pub(crate) const SELECTOR_ID: usize = 48;
    pub(crate) const SAMPLING_INTERVAL: usize = 49;
    pub(crate) const SAMPLING_PKT_INTERVAL: usize = 50;
    pub(crate) const SAMPLING_PKT_SPACE: usize = 51;
    pub(crate) const IP_VERSION: usize = 52;
    pub(crate) const RANDOM_INTERVAL: usize = 53;
    pub(crate) const COUNT: usize = 54;
}

/// The role of a field type, and the lengths it is accepted at.
fn role_of(field_type: u16, len: u16) -> Option<usize> {
    use role::*;
    let r = match field_type {
        8 => SRC4,
        12 => DST4,
        27 => SRC6,
        28 => DST6,
        7 => SRC_PORT,
        11 => DST_PORT,
        4 => PROTOCOL,
        6 => TCP_FLAGS,
        5 => TOS,
        10 => INPUT_IF,
        14 => OUTPUT_IF,
        16 => SRC_AS,
        17 => DST_AS,
        9 => SRC_MASK,
        13 => DST_MASK,
        29 => SRC_MASK6,
        30 => DST_MASK6,
        15 => NEXT_HOP4,
        62 => NEXT_HOP6,
        18 => BGP_NEXT_HOP4,
        63 => BGP_NEXT_HOP6,
        61 => DIRECTION,
        1 => IN_BYTES,
        2 => IN_PKTS,
        23 => OUT_BYTES,
        24 => OUT_PKTS,
        85 => PERM_BYTES,
        86 => PERM_PKTS,
        231 => INIT_OCTETS,
        232 => RESP_OCTETS,
        298 => INIT_PKTS,
        299 => RESP_PKTS,
        22 => FIRST_SWITCHED,
        21 => LAST_SWITCHED,
        150 => START_S,
        151 => END_S,
        152 => START_MS,
        153 => END_MS,
        154 => START_US,
        155 => END_US,
        323 => OBSERVATION_MS,
        32 => ICMP_TYPE,
        139 => ICMP_TYPE_CODE6,
        176 => ICMP_TYPE4,
        177 => ICMP_CODE4,
        178 => ICMP_TYPE6,
        179 => ICMP_CODE6,
        48 => SAMPLER_ID,
        302 => SELECTOR_ID,
        34 => SAMPLING_INTERVAL,
        305 => SAMPLING_PKT_INTERVAL,
        306 => SAMPLING_PKT_SPACE,
        60 => IP_VERSION,
        50 => RANDOM_INTERVAL,
        _ => return None,
    };
    let ok = match r {
        SRC4 | DST4 | NEXT_HOP4 | BGP_NEXT_HOP4 => len == 4,
        SRC6 | DST6 | NEXT_HOP6 | BGP_NEXT_HOP6 => len == 16,
        _ => (1..=8).contains(&len),
    };
    ok.then_some(r)
}

/// The bit of `role` in a mask of roles, for [`FlowLayout::has_any`].
pub(crate) const fn bit(role: usize) -> u64 {
    1 << role
}

/// A record's bytes, and the bytes from its start to the end of its
/// FlowSet (`data` is a prefix of `tail`). Values are read in 8-byte
/// windows starting at the value, which may run past the record into what
/// follows it; so when `tail` is longer than `data`, `data` must hold every
/// value of the layout it is read with (true of a template's records, and
/// of a layout computed for the record itself).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecordBytes<'a> {
    pub(crate) data: &'a [u8],
    pub(crate) tail: &'a [u8],
}

impl<'a> RecordBytes<'a> {
    /// A record with nothing known after it.
    pub(crate) fn alone(data: &'a [u8]) -> Self {
        RecordBytes { data, tail: data }
    }
}

/// Where one value is in a record: `len` bytes at `off`. A value of up to 8
/// bytes is read as the 8 bytes at `off`, big-endian, shifted right by
/// `shr` bits: one load and one shift whatever its length, with no branch
/// on the length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Loc {
    off: u16,
    len: u8,
    shr: u8,
}

impl Loc {
    fn new(off: u16, len: u16) -> Loc {
        Loc {
            off,
            len: len as u8, // at most 16 (`role_of`)
            shr: if len <= 8 { (64 - 8 * len) as u8 } else { 0 },
        }
    }

    /// The value alone, when fewer than 8 bytes follow its start: the last
    /// bytes of a FlowSet, or a record built by `Record::new`. Out of line,
    /// to keep the hot path of [`FlowLayout::read`] small.
    #[cold]
    #[inline(never)]
    fn read_alone(self, data: &[u8]) -> Option<u64> {
        let off = usize::from(self.off);
        data.get(off..off + usize::from(self.len)).map(read_uint)
    }
}

/// Locations of every normalized value in a record of one template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FlowLayout {
    locs: [Loc; role::COUNT],
    /// Bit `r` is set when role `r` has a location. Testing a bit of one
    /// word makes the fallback chains of [`crate::Flow`] nearly free when
    /// the fields they try first are absent.
    present: u64,
}

const _: () = assert!(role::COUNT < 63, "roles must fit FlowLayout::present");

/// A bit of [`FlowLayout`]'s presence mask that is no role: the template
/// has both IPv4 and IPv6 addresses (see `FlowLayout::is_v6_record`).
pub(crate) const BOTH_FAMILIES: u64 = 1 << 63;

impl FlowLayout {
    pub(crate) const EMPTY: FlowLayout = FlowLayout {
        locs: [Loc {
            off: 0,
            len: 0,
            shr: 0,
        }; role::COUNT],
        present: 0,
    };

    /// From `(field type, offset, length)` of each field; the first field of
    /// a role wins.
    pub(crate) fn build(fields: impl Iterator<Item = (u16, u16, u16)>) -> FlowLayout {
        let mut l = FlowLayout::EMPTY;
        for (ty, off, len) in fields {
            let Some(r) = role_of(ty, len) else { continue };
            if !l.has(r) {
                if let Some(loc) = l.locs.get_mut(r) {
                    *loc = Loc::new(off, len);
                    l.present |= 1 << r;
                }
            }
        }
        const V4: u64 = bit(role::SRC4) | bit(role::DST4);
        const V6: u64 = bit(role::SRC6) | bit(role::DST6);
        if l.has_any(V4) && l.has_any(V6) {
            l.present |= BOTH_FAMILIES;
        }
        l
    }

    /// True if the template has any of the roles in `mask` (see [`bit`]).
    #[inline]
    pub(crate) fn has_any(&self, mask: u64) -> bool {
        self.present & mask != 0
    }

    #[inline]
    pub(crate) fn has(&self, role: usize) -> bool {
        // `role` is a constant at every call site: one bit test.
        role < 64 && self.present & (1 << role) != 0
    }

    /// The unsigned value of `role`, if the template has it (and the record
    /// holds it).
    #[inline]
    pub(crate) fn read(&self, role: usize, rec: RecordBytes<'_>) -> Option<u64> {
        if !self.has(role) {
            return None;
        }
        let l = self.locs.get(role)?;
        let off = usize::from(l.off);
        if let Some(w) = rec.tail.get(off..off + 8) {
            return Some(u64::from_be_bytes(w.try_into().ok()?) >> l.shr);
        }
        l.read_alone(rec.data)
    }

    /// [`FlowLayout::read`] of a record alone.
    #[inline]
    pub(crate) fn get(&self, role: usize, rec: &[u8]) -> Option<u64> {
        self.read(role, RecordBytes::alone(rec))
    }

    /// The 4 bytes of an IPv4 role.
    #[inline]
    pub(crate) fn v4(&self, role: usize, rec: RecordBytes<'_>) -> Option<[u8; 4]> {
        self.read(role, rec).map(|v| (v as u32).to_be_bytes())
    }

    /// The 16 bytes of an IPv6 role.
    #[inline]
    pub(crate) fn v6(&self, role: usize, rec: RecordBytes<'_>) -> Option<[u8; 16]> {
        if !self.has(role) {
            return None;
        }
        let off = usize::from(self.locs.get(role)?.off);
        rec.data.get(off..off + 16)?.try_into().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_field_of_a_role_wins_and_lengths_are_checked() {
        let l = FlowLayout::build([(8, 0, 4), (8, 4, 4), (27, 8, 4), (1, 12, 8)].into_iter());
        let rec = [1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9];
        assert_eq!(
            l.v4(role::SRC4, RecordBytes::alone(&rec)),
            Some([1, 2, 3, 4])
        );
        assert!(!l.has(role::SRC6), "IPv6 address of 4 bytes ignored");
        assert_eq!(l.get(role::IN_BYTES, &rec), Some(9));
        assert_eq!(l.get(role::IN_PKTS, &rec), None);
    }

    #[test]
    fn windows_read_any_length_anywhere_and_short_records_fall_back() {
        // 1, 3, 2, 8, 5 and 1 bytes back to back: at the start, across
        // 8-byte boundaries, and in the last bytes of a 20-byte record.
        let fields = [
            (1, 0, 1),
            (2, 1, 3),
            (10, 4, 2),
            (14, 6, 8),
            (16, 14, 5),
            (17, 19, 1),
        ];
        let l = FlowLayout::build(fields.into_iter());
        let rec: [u8; 20] = core::array::from_fn(|i| i as u8 + 1);
        let roles = [
            role::IN_BYTES,
            role::IN_PKTS,
            role::INPUT_IF,
            role::OUTPUT_IF,
            role::SRC_AS,
            role::DST_AS,
        ];
        for (r, (_, off, len)) in roles.into_iter().zip(fields) {
            let (off, len) = (usize::from(off), usize::from(len));
            assert_eq!(l.get(r, &rec), Some(read_uint(&rec[off..off + len])));
        }
        assert_eq!(l.get(role::OUTPUT_IF, &rec), Some(0x0708_090a_0b0c_0d0e));

        // Windows run on into the rest of the FlowSet; only the value counts.
        let in_flowset = RecordBytes {
            data: &rec[..14],
            tail: &rec,
        };
        assert_eq!(l.read(role::INPUT_IF, in_flowset), Some(0x0506));
        assert_eq!(
            l.read(role::OUTPUT_IF, in_flowset),
            Some(0x0708_090a_0b0c_0d0e)
        );

        // A record cut short (`Record::new` with too few bytes): values
        // still inside are read alone, the others are absent.
        let cut = &rec[..10];
        assert_eq!(l.get(role::IN_BYTES, cut), Some(1));
        assert_eq!(l.get(role::INPUT_IF, cut), Some(0x0506));
        assert_eq!(l.get(role::OUTPUT_IF, cut), None);
        assert_eq!(l.get(role::DST_AS, cut), None);

        // Records shorter than a window.
        let tiny = FlowLayout::build([(4, 0, 1), (1, 1, 2)].into_iter());
        assert_eq!(tiny.get(role::PROTOCOL, &[6, 0, 99]), Some(6));
        assert_eq!(tiny.get(role::IN_BYTES, &[6, 0, 99]), Some(99));
    }
}
