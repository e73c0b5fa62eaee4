//! The 20-byte Export Packet header (RFC 3954 §5.1).

use super::parse::parse_header;
use crate::{Error, ErrorKind, Result};

mod field {
    use core::ops::Range;
    pub(super) const VERSION: Range<usize> = 0..2;
    pub(super) const COUNT: Range<usize> = 2..4;
    pub(super) const SYS_UPTIME: Range<usize> = 4..8;
    pub(super) const UNIX_SECS: Range<usize> = 8..12;
    pub(super) const SEQUENCE_NUMBER: Range<usize> = 12..16;
    pub(super) const SOURCE_ID: Range<usize> = 16..20;
}

/// Length of the packet header in bytes.
pub const HEADER_LEN: usize = field::SOURCE_ID.end;

/// The version number this crate decodes.
pub const VERSION: u16 = 9;

/// A read-only view of an Export Packet: its header, then its FlowSets.
///
/// ```
/// use netflow9::wire::PacketHeader;
/// let bytes = [0, 9, 0, 0, 0, 0, 0, 1, 0x65, 0xe1, 0x8f, 0x00, 0, 0, 0, 7, 0, 0, 0, 0];
/// let packet = PacketHeader::new_checked(&bytes[..]).unwrap();
/// assert_eq!(packet.sequence_number(), 7);
/// assert_eq!(packet.payload().len(), 0);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct PacketHeader<T: AsRef<[u8]>> {
    buffer: T,
}

fn be16(b: &[u8], r: core::ops::Range<usize>) -> u16 {
    match b.get(r) {
        Some(&[x, y]) => u16::from_be_bytes([x, y]),
        _ => 0,
    }
}

fn be32(b: &[u8], r: core::ops::Range<usize>) -> u32 {
    match b.get(r) {
        Some(&[a, c, d, e]) => u32::from_be_bytes([a, c, d, e]),
        _ => 0,
    }
}

impl<T: AsRef<[u8]>> PacketHeader<T> {
    /// Wraps a buffer after checking its length and version.
    ///
    /// # Errors
    /// [`ErrorKind::TruncatedHeader`] below 20 bytes,
    /// [`ErrorKind::UnsupportedVersion`] for any version but 9.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let bytes = buffer.as_ref();
        if bytes.len() < HEADER_LEN {
            return Err(Error::new(ErrorKind::TruncatedHeader, bytes.len()));
        }
        let version = be16(bytes, field::VERSION);
        if version != VERSION {
            return Err(Error::new(ErrorKind::UnsupportedVersion(version), 0));
        }
        Ok(PacketHeader { buffer })
    }

    /// The version (always 9 after `new_checked`).
    pub fn version(&self) -> u16 {
        be16(self.buffer.as_ref(), field::VERSION)
    }
    /// Number of records the exporter *claims* (often wrong: never trusted).
    pub fn count(&self) -> u16 {
        be16(self.buffer.as_ref(), field::COUNT)
    }
    /// Milliseconds since the exporting device booted.
    pub fn sys_uptime(&self) -> u32 {
        be32(self.buffer.as_ref(), field::SYS_UPTIME)
    }
    /// Seconds since the Unix epoch when the packet left the exporter.
    pub fn unix_secs(&self) -> u32 {
        be32(self.buffer.as_ref(), field::UNIX_SECS)
    }
    /// Incremental counter of export packets sent by this observation domain.
    pub fn sequence_number(&self) -> u32 {
        be32(self.buffer.as_ref(), field::SEQUENCE_NUMBER)
    }
    /// The exporter's observation domain (Source ID).
    pub fn source_id(&self) -> u32 {
        be32(self.buffer.as_ref(), field::SOURCE_ID)
    }
    /// The FlowSets after the header.
    pub fn payload(&self) -> &[u8] {
        self.buffer.as_ref().get(HEADER_LEN..).unwrap_or(&[])
    }
    /// The header as a `Copy` value.
    pub fn repr(&self) -> HeaderRepr {
        HeaderRepr {
            count: self.count(),
            sys_uptime: self.sys_uptime(),
            unix_secs: self.unix_secs(),
            sequence_number: self.sequence_number(),
            source_id: self.source_id(),
        }
    }
}

/// The header's values (the version is implied: 9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct HeaderRepr {
    /// Records in the packet, as written by the exporter.
    pub count: u16,
    /// Exporter uptime in milliseconds.
    pub sys_uptime: u32,
    /// Unix seconds at export.
    pub unix_secs: u32,
    /// Export packet sequence number.
    pub sequence_number: u32,
    /// Source ID (observation domain).
    pub source_id: u32,
}

impl HeaderRepr {
    /// Parses the header at the start of `bytes`.
    ///
    /// # Errors
    /// As [`PacketHeader::new_checked`].
    pub fn parse(bytes: &[u8]) -> Result<HeaderRepr> {
        let (_, (version, count, sys_uptime, unix_secs, sequence_number, source_id)) =
            parse_header(bytes).map_err(|_| Error::new(ErrorKind::TruncatedHeader, bytes.len()))?;
        if version != VERSION {
            return Err(Error::new(ErrorKind::UnsupportedVersion(version), 0));
        }
        Ok(HeaderRepr {
            count,
            sys_uptime,
            unix_secs,
            sequence_number,
            source_id,
        })
    }

    /// Writes the 20 header bytes to the start of `out`.
    ///
    /// # Errors
    /// [`ErrorKind::BufferTooSmall`] if `out` is shorter than 20 bytes.
    pub fn emit(&self, out: &mut [u8]) -> Result<()> {
        let out = out
            .get_mut(..HEADER_LEN)
            .ok_or(Error::new(ErrorKind::BufferTooSmall, 0))?;
        out[field::VERSION].copy_from_slice(&VERSION.to_be_bytes());
        out[field::COUNT].copy_from_slice(&self.count.to_be_bytes());
        out[field::SYS_UPTIME].copy_from_slice(&self.sys_uptime.to_be_bytes());
        out[field::UNIX_SECS].copy_from_slice(&self.unix_secs.to_be_bytes());
        out[field::SEQUENCE_NUMBER].copy_from_slice(&self.sequence_number.to_be_bytes());
        out[field::SOURCE_ID].copy_from_slice(&self.source_id.to_be_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BYTES: [u8; 20] = [
        0x00, 0x09, 0x00, 0x03, 0x00, 0x02, 0x12, 0x4a, 0x65, 0xe1, 0x8f, 0xc8, 0x00, 0x00, 0x00,
        0x2a, 0x00, 0x00, 0x01, 0x00,
    ];

    #[test]
    fn deconstruct() {
        let p = PacketHeader::new_checked(&BYTES[..]).unwrap();
        assert_eq!(p.version(), 9);
        assert_eq!(p.count(), 3);
        assert_eq!(p.sys_uptime(), 135_754);
        assert_eq!(p.unix_secs(), 1_709_281_224);
        assert_eq!(p.sequence_number(), 42);
        assert_eq!(p.source_id(), 256);
    }

    #[test]
    fn construct_round_trip() {
        let repr = HeaderRepr::parse(&BYTES).unwrap();
        let mut out = [0u8; 20];
        repr.emit(&mut out).unwrap();
        assert_eq!(out, BYTES);
        assert_eq!(PacketHeader::new_checked(&BYTES[..]).unwrap().repr(), repr);
    }

    #[test]
    fn impossible_lengths_and_versions() {
        for n in 0..HEADER_LEN {
            let e = PacketHeader::new_checked(&BYTES[..n]).unwrap_err();
            assert_eq!(e.kind, ErrorKind::TruncatedHeader);
            assert!(HeaderRepr::parse(&BYTES[..n]).is_err());
        }
        let mut v5 = BYTES;
        v5[1] = 5;
        assert_eq!(
            PacketHeader::new_checked(&v5[..]).unwrap_err().kind,
            ErrorKind::UnsupportedVersion(5)
        );
        assert_eq!(
            HeaderRepr::default().emit(&mut [0; 19]).unwrap_err().kind,
            ErrorKind::BufferTooSmall
        );
    }
}
