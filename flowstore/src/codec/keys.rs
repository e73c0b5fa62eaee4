//! heed codecs for the fixed-width, big-endian keys and small values.

use std::borrow::Cow;
use std::net::{IpAddr, Ipv6Addr};

use heed::{BoxedError, BytesDecode, BytesEncode};

/// Key of a raw block: bucket start (Unix seconds) and a sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct BlockKey {
    pub(crate) bucket: u64,
    pub(crate) seq: u32,
}

impl BlockKey {
    pub(crate) const LEN: usize = 12;
    pub(crate) fn to_bytes(self) -> [u8; 12] {
        let mut k = [0u8; 12];
        k[..8].copy_from_slice(&self.bucket.to_be_bytes());
        k[8..].copy_from_slice(&self.seq.to_be_bytes());
        k
    }
    pub(crate) fn from_bytes(b: &[u8]) -> Option<Self> {
        if b.len() != Self::LEN {
            return None;
        }
        Some(BlockKey {
            bucket: u64::from_be_bytes(b[..8].try_into().ok()?),
            seq: u32::from_be_bytes(b[8..].try_into().ok()?),
        })
    }
}

/// heed codec of [`BlockKey`].
pub(crate) enum BlockKeyCodec {}

impl<'a> BytesEncode<'a> for BlockKeyCodec {
    type EItem = BlockKey;
    fn bytes_encode(item: &'a BlockKey) -> Result<Cow<'a, [u8]>, BoxedError> {
        Ok(Cow::Owned(item.to_bytes().to_vec()))
    }
}

impl<'a> BytesDecode<'a> for BlockKeyCodec {
    type DItem = BlockKey;
    fn bytes_decode(bytes: &'a [u8]) -> Result<BlockKey, BoxedError> {
        BlockKey::from_bytes(bytes).ok_or_else(|| "block key is not 12 bytes".into())
    }
}

/// Key of a rollup blob: bucket start (Unix seconds) and dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct RollupKey {
    pub(crate) bucket: u64,
    pub(crate) dim: u8,
}

/// heed codec of [`RollupKey`].
pub(crate) enum RollupKeyCodec {}

impl<'a> BytesEncode<'a> for RollupKeyCodec {
    type EItem = RollupKey;
    fn bytes_encode(item: &'a RollupKey) -> Result<Cow<'a, [u8]>, BoxedError> {
        let mut k = Vec::with_capacity(9);
        k.extend_from_slice(&item.bucket.to_be_bytes());
        k.push(item.dim);
        Ok(Cow::Owned(k))
    }
}

impl<'a> BytesDecode<'a> for RollupKeyCodec {
    type DItem = RollupKey;
    fn bytes_decode(b: &'a [u8]) -> Result<RollupKey, BoxedError> {
        if b.len() != 9 {
            return Err("rollup key is not 9 bytes".into());
        }
        Ok(RollupKey {
            bucket: u64::from_be_bytes(b[..8].try_into()?),
            dim: b[8],
        })
    }
}

/// What is known of one raw bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct BucketInfo {
    /// When the bucket was last written to (Unix seconds, wall clock): what
    /// retention measures age by.
    pub(crate) written_at_s: u64,
    pub(crate) flows: u64,
    pub(crate) bytes: u64,
    pub(crate) packets: u64,
    pub(crate) next_seq: u32,
    /// Blocks below this sequence number are included in the rollups.
    pub(crate) rolled_seq: u32,
}

/// heed codec of [`BucketInfo`] (40 bytes, big-endian).
pub(crate) enum BucketInfoCodec {}

impl<'a> BytesEncode<'a> for BucketInfoCodec {
    type EItem = BucketInfo;
    fn bytes_encode(i: &'a BucketInfo) -> Result<Cow<'a, [u8]>, BoxedError> {
        let mut v = Vec::with_capacity(40);
        v.extend_from_slice(&i.written_at_s.to_be_bytes());
        v.extend_from_slice(&i.flows.to_be_bytes());
        v.extend_from_slice(&i.bytes.to_be_bytes());
        v.extend_from_slice(&i.packets.to_be_bytes());
        v.extend_from_slice(&i.next_seq.to_be_bytes());
        v.extend_from_slice(&i.rolled_seq.to_be_bytes());
        Ok(Cow::Owned(v))
    }
}

impl<'a> BytesDecode<'a> for BucketInfoCodec {
    type DItem = BucketInfo;
    fn bytes_decode(b: &'a [u8]) -> Result<BucketInfo, BoxedError> {
        if b.len() != 40 {
            return Err("bucket info is not 40 bytes".into());
        }
        let u = |r: std::ops::Range<usize>| -> Result<u64, BoxedError> {
            Ok(u64::from_be_bytes(b[r].try_into()?))
        };
        Ok(BucketInfo {
            written_at_s: u(0..8)?,
            flows: u(8..16)?,
            bytes: u(16..24)?,
            packets: u(24..32)?,
            next_seq: u32::from_be_bytes(b[32..36].try_into()?),
            rolled_seq: u32::from_be_bytes(b[36..40].try_into()?),
        })
    }
}

/// An address as 16 bytes (IPv4 mapped), the key form of addresses.
pub(crate) fn addr16(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(v4) => u128::from_be_bytes(v4.to_ipv6_mapped().octets()),
        IpAddr::V6(v6) => u128::from_be_bytes(v6.octets()),
    }
}

/// The inverse of [`addr16`].
pub(crate) fn addr_from16(v: u128) -> IpAddr {
    let v6 = Ipv6Addr::from(v.to_be_bytes());
    match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    }
}

/// heed codec of the 10-byte rollup index key (kind, tier, bucket seconds).
pub(crate) enum IndexKeyCodec {}

impl<'a> BytesEncode<'a> for IndexKeyCodec {
    type EItem = [u8; 10];
    fn bytes_encode(item: &'a [u8; 10]) -> Result<Cow<'a, [u8]>, BoxedError> {
        Ok(Cow::Borrowed(&item[..]))
    }
}

impl<'a> BytesDecode<'a> for IndexKeyCodec {
    type DItem = [u8; 10];
    fn bytes_decode(b: &'a [u8]) -> Result<[u8; 10], BoxedError> {
        Ok(b.try_into()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_by_time() {
        let a = BlockKeyCodec::bytes_encode(&BlockKey {
            bucket: 100,
            seq: 7,
        })
        .unwrap()
        .into_owned();
        let b = BlockKeyCodec::bytes_encode(&BlockKey {
            bucket: 160,
            seq: 0,
        })
        .unwrap()
        .into_owned();
        assert!(a < b);
        assert_eq!(
            BlockKeyCodec::bytes_decode(&a).unwrap(),
            BlockKey {
                bucket: 100,
                seq: 7
            }
        );
        assert!(BlockKeyCodec::bytes_decode(&a[..11]).is_err());
        let info = BucketInfo {
            written_at_s: 1,
            flows: 2,
            bytes: 3,
            packets: 4,
            next_seq: 5,
            rolled_seq: 4,
        };
        let enc = BucketInfoCodec::bytes_encode(&info).unwrap().into_owned();
        assert_eq!(BucketInfoCodec::bytes_decode(&enc).unwrap(), info);
        assert!(BucketInfoCodec::bytes_decode(&enc[1..]).is_err());
    }

    #[test]
    fn addresses_round_trip() {
        for a in ["10.0.0.1", "2001:db8::1", "::", "0.0.0.0"] {
            let ip: IpAddr = a.parse().unwrap();
            assert_eq!(addr_from16(addr16(ip)), ip);
        }
    }
}
