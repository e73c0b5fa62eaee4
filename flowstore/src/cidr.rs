//! IP networks in CIDR notation (`10.0.0.0/8`, `2001:db8::/32`), the unit
//! that `net` filters and address-range block hints are expressed in.
//!
//! # IPv4-mapped addresses
//!
//! An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, RFC 4291 §2.5.5.2) is the
//! IPv4 address `a.b.c.d` carried in IPv6 clothes, and this module treats it
//! as that IPv4 address everywhere:
//!
//! - [`Cidr::contains`]: `10.0.0.0/8` contains `::ffff:10.1.2.3`, and an IPv6
//!   network never contains a mapped (or plain IPv4) address;
//! - parsing: `::ffff:10.0.0.0/104` is the network `10.0.0.0/8`, and a bare
//!   `::ffff:10.1.2.3` is the host route `10.1.2.3/32`;
//! - [`Cidr::first`] and [`Cidr::last`] place IPv4 networks in the mapped
//!   block of the 128-bit space, so one `u128` range index serves both
//!   families.
//!
//! Otherwise an IPv4 network never contains an IPv6 address and vice versa,
//! as in nfdump.

use core::fmt;
use core::str::FromStr;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why a network failed to parse or build.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CidrError {
    /// The part before `/` (or the whole text) is not an IP address.
    #[error("invalid IP address {0:?}")]
    InvalidAddress(String),
    /// The part after `/` is not a number in `0..=max` (32 for IPv4, 128 for
    /// IPv6).
    #[error("invalid prefix length {prefix:?}: expected 0-{max}")]
    InvalidPrefix {
        /// The text after `/`.
        prefix: String,
        /// The longest prefix of the address family.
        max: u8,
    },
    /// A netmask (`255.255.0.0` form) whose one bits are not contiguous.
    #[error("netmask {0} is not contiguous")]
    NonContiguousMask(Ipv4Addr),
}

/// An IP network: an address and a prefix length, host bits zero.
///
/// Parses from and displays as `address/prefix`; a bare address is a host
/// route (`/32` or `/128`). Host bits set in the text are masked off rather
/// than rejected, as nfdump does: `10.1.2.3/8` is `10.0.0.0/8`. Serialized
/// (serde) as that same string.
///
/// ```
/// use flowstore::cidr::Cidr;
/// let net: Cidr = "10.0.0.0/8".parse()?;
/// assert!(net.contains("10.200.1.1".parse()?));
/// assert!(net.contains("::ffff:10.0.0.1".parse()?), "IPv4-mapped");
/// assert!(!net.contains("11.0.0.1".parse()?));
/// assert_eq!("192.168.7.9/16".parse::<Cidr>()?.to_string(), "192.168.0.0/16");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr {
    /// The network address, host bits zero; never IPv4-mapped IPv6.
    addr: IpAddr,
    /// At most 32 for IPv4, 128 for IPv6.
    prefix: u8,
}

/// The first 96 bits of an IPv4-mapped IPv6 address.
const MAPPED: u128 = 0xffff_u128 << 32;

#[inline]
fn mask4(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

#[inline]
fn mask6(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

#[inline]
fn is_mapped(a: u128) -> bool {
    a >> 32 == 0xffff
}

impl Cidr {
    /// The network of `addr` with `prefix` bits; host bits are cleared and an
    /// IPv4-mapped IPv6 network with a prefix of at least 96 becomes the IPv4
    /// network it denotes.
    ///
    /// # Errors
    ///
    /// [`CidrError::InvalidPrefix`] if `prefix` is longer than the address.
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Cidr, CidrError> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(CidrError::InvalidPrefix {
                prefix: prefix.to_string(),
                max,
            });
        }
        Ok(match addr {
            IpAddr::V4(a) => Cidr::v4(a, prefix),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(a4) if prefix >= 96 => Cidr::v4(a4, prefix - 96),
                _ => Cidr {
                    addr: IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask6(prefix))),
                    prefix,
                },
            },
        })
    }

    fn v4(a: Ipv4Addr, prefix: u8) -> Cidr {
        Cidr {
            addr: IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask4(prefix))),
            prefix,
        }
    }

    /// The host route of `addr`: `/32` for IPv4 (and IPv4-mapped), `/128`
    /// for IPv6.
    #[must_use]
    pub fn host(addr: IpAddr) -> Cidr {
        match addr {
            IpAddr::V4(a) => Cidr::v4(a, 32),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(a4) => Cidr::v4(a4, 32),
                None => Cidr { addr, prefix: 128 },
            },
        }
    }

    /// The IPv4 network of `addr` and a dotted netmask (`255.255.0.0`).
    ///
    /// # Errors
    ///
    /// [`CidrError::NonContiguousMask`] if the mask's one bits are not all
    /// at the top.
    pub fn with_netmask(addr: Ipv4Addr, mask: Ipv4Addr) -> Result<Cidr, CidrError> {
        let m = u32::from(mask);
        // Contiguous ones from the top: the inverse is 2^k - 1.
        if (!m).wrapping_add(1) & !m != 0 {
            return Err(CidrError::NonContiguousMask(mask));
        }
        // `leading_ones` is at most 32.
        Ok(Cidr::v4(addr, m.leading_ones() as u8))
    }

    /// The network address (host bits zero).
    #[must_use]
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length: 0-32 for IPv4, 0-128 for IPv6.
    #[must_use]
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether this is an IPv4 network.
    #[must_use]
    pub fn is_ipv4(&self) -> bool {
        self.addr.is_ipv4()
    }

    /// Whether `ip` is in this network. IPv4-mapped IPv6 addresses count as
    /// the IPv4 address they carry (see the [module docs](self)); otherwise
    /// the families never mix.
    #[inline]
    #[must_use]
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(a)) => u32::from(a) & mask4(self.prefix) == u32::from(net),
            (IpAddr::V4(net), IpAddr::V6(a)) => {
                let a = u128::from(a);
                // The `as` keeps the low 32 bits: the mapped IPv4 address.
                is_mapped(a) && (a as u32) & mask4(self.prefix) == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                let a = u128::from(a);
                a & mask6(self.prefix) == u128::from(net) && !is_mapped(a)
            }
            (IpAddr::V6(_), IpAddr::V4(_)) => false,
        }
    }

    /// The first address of the network as a `u128`; IPv4 networks sit in
    /// the IPv4-mapped block `::ffff:0.0.0.0/96`, so `first()..=last()` of
    /// any two networks compare meaningfully. An IPv6 network wide enough to
    /// cover that block (`::/0`) has a range that includes it although
    /// [`contains`](Cidr::contains) excludes mapped addresses: the range is a
    /// superset, which is what a block-skipping index needs.
    #[must_use]
    pub fn first(&self) -> u128 {
        match self.addr {
            IpAddr::V4(a) => MAPPED | u128::from(u32::from(a)),
            IpAddr::V6(a) => u128::from(a),
        }
    }

    /// The last address of the network as a `u128`; see [`first`](Cidr::first).
    #[must_use]
    pub fn last(&self) -> u128 {
        match self.addr {
            IpAddr::V4(a) => MAPPED | u128::from(u32::from(a) | !mask4(self.prefix)),
            IpAddr::V6(a) => u128::from(a) | !mask6(self.prefix),
        }
    }
}

/// Parses `a.b.c.d`, `a.b.c` or shorter with the trailing octets zero (only
/// when a prefix follows, like nfdump's `172.16/12`), or an IPv6 address.
fn parse_addr(text: &str, abbreviated_ok: bool) -> Option<IpAddr> {
    if let Ok(a) = text.parse::<IpAddr>() {
        return Some(a);
    }
    if !abbreviated_ok || text.contains(':') {
        return None;
    }
    let mut octets = [0u8; 4];
    for (n, part) in text.split('.').enumerate() {
        let slot = octets.get_mut(n)?;
        if part.is_empty() || part.len() > 3 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *slot = part.parse().ok()?;
    }
    Some(IpAddr::V4(Ipv4Addr::from(octets)))
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Cidr, CidrError> {
        let (addr_text, prefix_text) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr = parse_addr(addr_text, prefix_text.is_some())
            .ok_or_else(|| CidrError::InvalidAddress(addr_text.to_owned()))?;
        let Some(p) = prefix_text else {
            return Ok(Cidr::host(addr));
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = Some(p)
            .filter(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|p| p.parse::<u8>().ok())
            .filter(|&p| p <= max)
            .ok_or_else(|| CidrError::InvalidPrefix {
                prefix: p.to_owned(),
                max,
            })?;
        Cidr::new(addr, prefix)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl serde::Serialize for Cidr {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Cidr, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Cidr;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a network like \"10.0.0.0/8\" or \"2001:db8::/32\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Cidr, E> {
                v.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parse_and_display() {
        for (text, shown) in [
            ("192.168.1.0/24", "192.168.1.0/24"),
            ("2001:db8::/32", "2001:db8::/32"),
            ("10.0.0.1", "10.0.0.1/32"),
            ("2001:db8::1", "2001:db8::1/128"),
            ("10.1.2.3/8", "10.0.0.0/8"),
            ("2001:db8:ffff::1/32", "2001:db8::/32"),
            ("0.0.0.0/0", "0.0.0.0/0"),
            ("1.2.3.4/0", "0.0.0.0/0"),
            ("::/0", "::/0"),
            ("172.16/12", "172.16.0.0/12"),
            ("10/8", "10.0.0.0/8"),
            ("::ffff:10.1.2.3", "10.1.2.3/32"),
            ("::ffff:10.0.0.0/104", "10.0.0.0/8"),
            ("::ffff:0:0/95", "::fffe:0:0/95"),
        ] {
            assert_eq!(c(text).to_string(), shown, "{text}");
            assert_eq!(c(shown), c(text), "{shown} re-parses");
        }
    }

    #[test]
    fn parse_errors() {
        assert_eq!(
            "10.0.0.256/8".parse::<Cidr>(),
            Err(CidrError::InvalidAddress("10.0.0.256".into()))
        );
        assert_eq!(
            "10.0.0".parse::<Cidr>(),
            Err(CidrError::InvalidAddress("10.0.0".into())),
            "abbreviated only with a prefix"
        );
        for (text, prefix, max) in [
            ("10.0.0.0/33", "33", 32),
            ("::/129", "129", 128),
            ("10.0.0.0/", "", 32),
            ("10.0.0.0/+8", "+8", 32),
            ("10.0.0.0/0008", "0008", 32),
            ("10.0.0.0/8/8", "8/8", 32),
        ] {
            assert_eq!(
                text.parse::<Cidr>(),
                Err(CidrError::InvalidPrefix {
                    prefix: prefix.into(),
                    max
                }),
                "{text}"
            );
        }
        for bad in [
            "",
            "/8",
            "1.2.3.4.5/8",
            "a.b.c.d/8",
            "1..2/8",
            "10.0.0.0 /8",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad:?}");
        }
        assert_eq!(
            "10.0.0.0/33".parse::<Cidr>().unwrap_err().to_string(),
            "invalid prefix length \"33\": expected 0-32"
        );
    }

    #[test]
    fn contains() {
        let net = c("10.0.0.0/8");
        assert!(net.contains(ip("10.0.0.0")));
        assert!(net.contains(ip("10.255.255.255")));
        assert!(!net.contains(ip("11.0.0.0")));
        assert!(!net.contains(ip("9.255.255.255")));
        assert!(net.contains(ip("::ffff:10.9.9.9")));
        assert!(!net.contains(ip("::ffff:11.9.9.9")));
        assert!(
            !net.contains(ip("::10.9.9.9")),
            "IPv4-compatible is not mapped"
        );
        assert!(!net.contains(ip("2001:db8::1")));

        let all4 = c("0.0.0.0/0");
        assert!(all4.contains(ip("255.255.255.255")));
        assert!(!all4.contains(ip("::1")));

        let net6 = c("2001:db8::/32");
        assert!(net6.contains(ip("2001:db8:1::1")));
        assert!(!net6.contains(ip("2001:db9::1")));
        assert!(!net6.contains(ip("10.0.0.1")));

        let all6 = c("::/0");
        assert!(all6.contains(ip("::1")));
        assert!(!all6.contains(ip("::ffff:1.2.3.4")), "mapped is IPv4");
        assert!(!all6.contains(ip("1.2.3.4")));

        let host = c("192.0.2.1");
        assert!(host.contains(ip("192.0.2.1")));
        assert!(!host.contains(ip("192.0.2.2")));
        let host6 = c("2001:db8::1");
        assert!(host6.contains(ip("2001:db8::1")));
        assert!(!host6.contains(ip("2001:db8::2")));
    }

    #[test]
    fn netmask() {
        let a = "10.1.2.3".parse().unwrap();
        assert_eq!(
            Cidr::with_netmask(a, "255.0.0.0".parse().unwrap()),
            Ok(c("10.0.0.0/8"))
        );
        assert_eq!(
            Cidr::with_netmask(a, "0.0.0.0".parse().unwrap()),
            Ok(c("0.0.0.0/0"))
        );
        assert_eq!(
            Cidr::with_netmask(a, "255.255.255.255".parse().unwrap()),
            Ok(c("10.1.2.3/32"))
        );
        let holey = "255.0.255.0".parse().unwrap();
        assert_eq!(
            Cidr::with_netmask(a, holey),
            Err(CidrError::NonContiguousMask(holey))
        );
        assert!(Cidr::with_netmask(a, "0.0.0.255".parse().unwrap()).is_err());
    }

    #[test]
    fn new_and_accessors() {
        let n = Cidr::new(ip("192.168.1.77"), 24).unwrap();
        assert_eq!(
            (n.addr(), n.prefix(), n.is_ipv4()),
            (ip("192.168.1.0"), 24, true)
        );
        assert!(Cidr::new(ip("1.2.3.4"), 33).is_err());
        assert!(Cidr::new(ip("::"), 129).is_err());
        assert!(!c("::/0").is_ipv4());
        assert_eq!(Cidr::host(ip("::ffff:1.2.3.4")), c("1.2.3.4/32"));
    }

    #[test]
    fn first_last() {
        let n = c("10.0.0.0/8");
        assert_eq!(n.first(), u128::from(ip6("::ffff:10.0.0.0")));
        assert_eq!(n.last(), u128::from(ip6("::ffff:10.255.255.255")));
        let h = c("1.2.3.4");
        assert_eq!(h.first(), h.last());
        let n6 = c("2001:db8::/32");
        assert_eq!(n6.first(), u128::from(ip6("2001:db8::")));
        assert_eq!(
            n6.last(),
            u128::from(ip6("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"))
        );
        assert_eq!((c("::/0").first(), c("::/0").last()), (0, u128::MAX));
        assert_eq!(
            c("0.0.0.0/0").last() - c("0.0.0.0/0").first(),
            u128::from(u32::MAX)
        );
    }

    fn ip6(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn serde_as_string() {
        use serde::de::value::{Error, StrDeserializer};
        use serde::Deserialize;
        let d = StrDeserializer::<Error>::new("10.1.0.0/16");
        assert_eq!(Cidr::deserialize(d), Ok(c("10.1.0.0/16")));
        let d = StrDeserializer::<Error>::new("10.1.0.0/33");
        let e = Cidr::deserialize(d).unwrap_err().to_string();
        assert!(e.contains("expected 0-32"), "{e}");
    }

    #[test]
    fn ordering() {
        use std::collections::BTreeSet;
        let set: BTreeSet<Cidr> = ["10.0.0.0/8", "2001:db8::/32", "10.0.0.0/16", "1.0.0.0/8"]
            .into_iter()
            .map(c)
            .collect();
        let shown: Vec<String> = set.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            ["1.0.0.0/8", "10.0.0.0/8", "10.0.0.0/16", "2001:db8::/32"]
        );
    }
}
