//! FlowSets (RFC 3954 §5.2–5.4): a 4-byte header (ID, length) and a body.

use super::parse::parse_flowset_header;
use super::{is_padding, HEADER_LEN};
use crate::{Error, ErrorKind, Result};

/// Length of a FlowSet header (FlowSet ID + Length).
pub const FLOWSET_HEADER_LEN: usize = 4;

/// What a FlowSet carries, by its ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowSetKind {
    /// ID 0: Template records.
    Template,
    /// ID 1: Options Template records.
    OptionsTemplate,
    /// IDs 2–255: reserved by RFC 3954; skipped (and counted by the decoder).
    Reserved(u16),
    /// IDs ≥ 256: Data records of the Template with this ID.
    Data(u16),
}

impl FlowSetKind {
    /// Classifies a FlowSet ID.
    ///
    /// ```
    /// use netflow9::wire::FlowSetKind;
    /// assert_eq!(FlowSetKind::from_id(0), FlowSetKind::Template);
    /// assert_eq!(FlowSetKind::from_id(7), FlowSetKind::Reserved(7));
    /// assert_eq!(FlowSetKind::from_id(1024), FlowSetKind::Data(1024));
    /// ```
    #[must_use]
    pub const fn from_id(id: u16) -> FlowSetKind {
        match id {
            0 => FlowSetKind::Template,
            1 => FlowSetKind::OptionsTemplate,
            2..=255 => FlowSetKind::Reserved(id),
            _ => FlowSetKind::Data(id),
        }
    }
}

/// One FlowSet, borrowed from the datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowSet<'a> {
    id: u16,
    body: &'a [u8],
    offset: usize,
}

impl<'a> FlowSet<'a> {
    /// The FlowSet ID.
    pub fn id(&self) -> u16 {
        self.id
    }
    /// What the FlowSet carries.
    pub fn kind(&self) -> FlowSetKind {
        FlowSetKind::from_id(self.id)
    }
    /// The bytes after the 4-byte FlowSet header (records and padding).
    pub fn body(&self) -> &'a [u8] {
        self.body
    }
    /// Offset of the body in the datagram, for error reporting.
    pub fn body_offset(&self) -> usize {
        self.offset
    }
}

/// Iterates the FlowSets of a packet by their length fields.
///
/// Stops after the first error, and quietly at trailing padding: fewer than 4
/// bytes left, or only zero bytes left (Palo Alto pads datagrams to 1400 bytes
/// with zeros).
///
/// ```
/// use netflow9::wire::{FlowSetIter, FlowSetKind};
/// let payload = [0x04, 0x00, 0x00, 0x08, 1, 2, 3, 4, 0, 0, 0];
/// let sets: Vec<_> = FlowSetIter::new(&payload).collect::<Result<_, _>>().unwrap();
/// assert_eq!(sets.len(), 1);
/// assert_eq!(sets[0].kind(), FlowSetKind::Data(1024));
/// assert_eq!(sets[0].body(), &[1, 2, 3, 4]);
/// ```
#[derive(Debug, Clone)]
pub struct FlowSetIter<'a> {
    rest: &'a [u8],
    offset: usize,
}

impl<'a> FlowSetIter<'a> {
    /// Iterates `payload`, the bytes after the packet header.
    pub fn new(payload: &'a [u8]) -> Self {
        FlowSetIter {
            rest: payload,
            offset: HEADER_LEN,
        }
    }
}

impl<'a> Iterator for FlowSetIter<'a> {
    type Item = Result<FlowSet<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.len() < FLOWSET_HEADER_LEN || is_padding(self.rest) {
            return None;
        }
        let input = self.rest;
        let offset = self.offset;
        let Ok((body_and_rest, (id, length))) = parse_flowset_header(input) else {
            self.rest = &[];
            return Some(Err(Error::new(ErrorKind::FlowSetLength, offset)));
        };
        let length = usize::from(length);
        // RFC 3954 §5.2: "Length: the total length of this FlowSet [...]
        // including the FlowSet ID, Length, and all records plus padding."
        // A length below the 4-byte header would loop forever; past the end
        // it would read outside the datagram.
        let body_len = length.wrapping_sub(FLOWSET_HEADER_LEN);
        let Some(body) = body_and_rest
            .get(..body_len)
            .filter(|_| length >= FLOWSET_HEADER_LEN)
        else {
            self.rest = &[];
            return Some(Err(Error::new(ErrorKind::FlowSetLength, offset + 2)));
        };
        self.rest = body_and_rest.get(body_len..).unwrap_or(&[]);
        self.offset = offset + length;
        Some(Ok(FlowSet {
            id,
            body,
            offset: offset + FLOWSET_HEADER_LEN,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(payload: &[u8]) -> (usize, Option<Error>) {
        let mut n = 0;
        for s in FlowSetIter::new(payload) {
            match s {
                Ok(_) => n += 1,
                Err(e) => return (n, Some(e)),
            }
        }
        (n, None)
    }

    #[test]
    fn two_flowsets_and_offsets() {
        let p = [0, 0, 0, 4, 1, 0, 0, 6, 9, 9];
        let sets: [FlowSet<'_>; 2] = {
            let mut it = FlowSetIter::new(&p);
            [it.next().unwrap().unwrap(), it.next().unwrap().unwrap()]
        };
        assert_eq!(sets[0].kind(), FlowSetKind::Template);
        assert_eq!(sets[0].body(), &[] as &[u8]);
        assert_eq!(sets[1].id(), 256);
        assert_eq!(sets[1].body(), &[9, 9]);
        assert_eq!(sets[1].body_offset(), HEADER_LEN + 8);
    }

    #[test]
    fn impossible_lengths() {
        for len in 0..4u8 {
            let (n, e) = collect(&[1, 0, 0, len, 0, 0, 0, 0]);
            assert_eq!(n, 0);
            assert_eq!(e.unwrap().kind, ErrorKind::FlowSetLength);
        }
        // past the end
        let (n, e) = collect(&[1, 0, 0, 9, 0, 0, 0, 0]);
        assert_eq!((n, e.unwrap().offset), (0, HEADER_LEN + 2));
        // odd length is fine when it fits
        assert_eq!(collect(&[1, 0, 0, 5, 7]), (1, None));
    }

    #[test]
    fn trailing_padding_is_not_an_error() {
        assert_eq!(collect(&[1, 0, 0, 4, 0, 0, 0]), (1, None));
        assert_eq!(collect(&[1, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0]), (1, None));
        assert_eq!(collect(&[]), (0, None));
    }
}
