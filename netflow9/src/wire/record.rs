//! Field values inside data records.

use core::net::{Ipv4Addr, Ipv6Addr};

use crate::field::{FieldType, ValueKind};

/// A field value, typed by its field type and length, borrowed from the datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Value<'a> {
    /// A big-endian unsigned integer of 1–8 bytes.
    Unsigned(u64),
    /// An IPv4 address.
    Ipv4(Ipv4Addr),
    /// An IPv6 address.
    Ipv6(Ipv6Addr),
    /// A MAC address.
    Mac([u8; 6]),
    /// Anything else: strings, application ids, longer or zero-length fields.
    Bytes(&'a [u8]),
}

impl<'a> Value<'a> {
    /// Reads `bytes` as a value of `field_type`.
    ///
    /// ```
    /// use netflow9::{FieldType, Value};
    /// assert_eq!(Value::read(FieldType::L4_SRC_PORT, &[0, 80]), Value::Unsigned(80));
    /// assert_eq!(Value::read(FieldType::IPV4_SRC_ADDR, &[10, 0, 0, 1]),
    ///            Value::Ipv4([10, 0, 0, 1].into()));
    /// ```
    #[must_use]
    pub fn read(field_type: FieldType, bytes: &'a [u8]) -> Value<'a> {
        match field_type.kind(bytes.len()) {
            ValueKind::Unsigned => Value::Unsigned(read_uint(bytes)),
            ValueKind::Ipv4 => match <[u8; 4]>::try_from(bytes) {
                Ok(a) => Value::Ipv4(Ipv4Addr::from(a)),
                Err(_) => Value::Bytes(bytes),
            },
            ValueKind::Ipv6 => match <[u8; 16]>::try_from(bytes) {
                Ok(a) => Value::Ipv6(Ipv6Addr::from(a)),
                Err(_) => Value::Bytes(bytes),
            },
            ValueKind::Mac => match <[u8; 6]>::try_from(bytes) {
                Ok(a) => Value::Mac(a),
                Err(_) => Value::Bytes(bytes),
            },
            ValueKind::Bytes => Value::Bytes(bytes),
        }
    }

    /// The value as an unsigned integer, if it is one.
    #[must_use]
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Unsigned(v) => Some(*v),
            _ => None,
        }
    }
}

/// Reads up to 8 big-endian bytes as an unsigned integer; longer inputs keep
/// their last (least significant) 8 bytes, empty input is 0.
///
/// ```
/// assert_eq!(netflow9::wire::read_uint(&[1, 0]), 256);
/// assert_eq!(netflow9::wire::read_uint(&[0xff; 3]), 0xff_ffff);
/// ```
#[inline]
#[must_use]
pub fn read_uint(bytes: &[u8]) -> u64 {
    match bytes {
        [a] => u64::from(*a),
        [a, b] => u64::from(u16::from_be_bytes([*a, *b])),
        [a, b, c, d] => u64::from(u32::from_be_bytes([*a, *b, *c, *d])),
        [a, b, c, d, e, f, g, h] => u64::from_be_bytes([*a, *b, *c, *d, *e, *f, *g, *h]),
        _ => {
            let tail = bytes.get(bytes.len().saturating_sub(8)..).unwrap_or(&[]);
            tail.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_width() {
        let b = [1, 2, 3, 4, 5, 6, 7, 8, 9];
        let expect = [
            0,
            0x01,
            0x0102,
            0x01_0203,
            0x0102_0304,
            0x01_0203_0405,
            0x0102_0304_0506,
            0x01_0203_0405_0607,
            0x0102_0304_0506_0708,
        ];
        for n in 0..=8 {
            assert_eq!(read_uint(&b[..n]), expect[n], "width {n}");
        }
        assert_eq!(read_uint(&b), 0x0203_0405_0607_0809);
    }

    #[test]
    fn typed_values() {
        assert_eq!(
            Value::read(FieldType::IN_SRC_MAC, &[0, 0x50, 0x56, 0xc0, 0, 1]),
            Value::Mac([0, 0x50, 0x56, 0xc0, 0, 1])
        );
        assert_eq!(
            Value::read(FieldType::IPV6_SRC_ADDR, &[0; 16]),
            Value::Ipv6(Ipv6Addr::UNSPECIFIED)
        );
        assert_eq!(
            Value::read(FieldType::IPV6_SRC_ADDR, &[0; 4]),
            Value::Unsigned(0)
        );
        assert_eq!(
            Value::read(FieldType::IF_NAME, b"eth0"),
            Value::Bytes(b"eth0")
        );
        assert_eq!(Value::read(FieldType::IN_BYTES, &[]), Value::Bytes(&[]));
        assert_eq!(Value::Unsigned(3).as_u64(), Some(3));
    }
}
