//! Test helpers shared by Flower's crates: paths into the committed corpus
//! (`netflow9/tests/data`, see its README for provenance) and a classic-pcap
//! reader (on `pcap-parser`) that returns the UDP payloads. Test and bench
//! code only: [`udp_payloads`] panics on anything unexpected.

pub mod alloc;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

/// A path inside the committed corpus, e.g. `data("exports/softflowd-v9.pcap")`.
#[must_use]
pub fn data(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../netflow9/tests/data")
        .join(rel)
}

/// The four NetFlow v9 exporter captures.
pub const V9_CAPTURES: [&str; 4] = [
    "softflowd-v9",
    "softflowd-v9-ether-ipv6",
    "pmacct-v9",
    "nfreplay-v9",
];

/// `(source address, UDP payload)` of every UDP datagram in a classic pcap
/// (Ethernet with VLAN tags, raw IP or BSD loopback; IPv4 or IPv6), in file
/// order. The file's framing is read by `pcap-parser`; frames that are not
/// UDP are skipped.
///
/// # Panics
/// On an unreadable, truncated or unsupported file.
#[must_use]
pub fn udp_payloads(path: &Path) -> Vec<(IpAddr, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    parse_pcap(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// As [`udp_payloads`], from a file's bytes.
///
/// # Errors
/// What is wrong with the file: not a classic pcap, an unsupported link
/// type, or a record cut short.
///
/// ```
/// assert!(testkit::parse_pcap(b"not a capture").is_err());
/// ```
pub fn parse_pcap(bytes: &[u8]) -> Result<Vec<(IpAddr, Vec<u8>)>, String> {
    use pcap_parser::{parse_pcap_frame, parse_pcap_frame_be, parse_pcap_frame_modified};
    let (mut rest, header) = pcap_parser::parse_pcap_header(bytes)
        .map_err(|e| format!("not a classic pcap file: {e:?}"))?;
    let frame = if header.is_modified_format() {
        parse_pcap_frame_modified
    } else if header.is_bigendian() {
        parse_pcap_frame_be
    } else {
        parse_pcap_frame
    };
    let link = header.network.0;
    if ![LINKTYPE_NULL, LINKTYPE_ETHERNET, LINKTYPE_RAW].contains(&link) {
        return Err(format!("unsupported link type {link}"));
    }
    let mut out = Vec::new();
    while !rest.is_empty() {
        let at = bytes.len() - rest.len();
        let (r, block) = frame(rest).map_err(|e| format!("record at offset {at}: {e:?}"))?;
        rest = r;
        let ip = match link {
            LINKTYPE_ETHERNET => ethernet_payload(block.data),
            LINKTYPE_RAW => Some(block.data),
            _ => block.data.get(4..),
        };
        out.extend(ip.and_then(udp_datagram));
    }
    Ok(out)
}

const LINKTYPE_NULL: i32 = 0;
const LINKTYPE_ETHERNET: i32 = 1;
const LINKTYPE_RAW: i32 = 101;

/// The IP packet in an Ethernet frame (VLAN tags skipped).
fn ethernet_payload(frame: &[u8]) -> Option<&[u8]> {
    let mut off = 12;
    loop {
        match u16::from_be_bytes(frame.get(off..off + 2)?.try_into().ok()?) {
            0x8100 | 0x88a8 => off += 4,
            0x0800 | 0x86dd => return frame.get(off + 2..),
            _ => return None,
        }
    }
}

/// Source address and payload of a UDP datagram in an IP packet.
fn udp_datagram(ip: &[u8]) -> Option<(IpAddr, Vec<u8>)> {
    const UDP: u8 = 17;
    let (src, proto, l4) = match ip.first()? >> 4 {
        4 => {
            let ihl = usize::from(ip.first()? & 0xf) * 4;
            let a: [u8; 4] = ip.get(12..16)?.try_into().ok()?;
            (IpAddr::V4(Ipv4Addr::from(a)), *ip.get(9)?, ip.get(ihl..)?)
        }
        6 => {
            let a: [u8; 16] = ip.get(8..24)?.try_into().ok()?;
            (IpAddr::V6(Ipv6Addr::from(a)), *ip.get(6)?, ip.get(40..)?)
        }
        _ => return None,
    };
    if proto != UDP {
        return None;
    }
    let len = usize::from(u16::from_be_bytes(l4.get(4..6)?.try_into().ok()?));
    let payload = l4.get(8..len.clamp(8, l4.len()))?;
    Some((src, payload.to_vec()))
}

/// A JSON file.
///
/// # Panics
/// On an unreadable or invalid file.
#[must_use]
pub fn json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corpus_captures_yield_v9_datagrams() {
        for name in V9_CAPTURES {
            let d = udp_payloads(&data(&format!("exports/{name}.pcap")));
            assert!(d.len() > 5, "{name}: {} datagrams", d.len());
            // NetFlow version 9 in every payload's first two bytes.
            assert!(d.iter().all(|(_, p)| p.starts_with(&[0, 9])), "{name}");
        }
    }

    #[test]
    fn bad_files_are_errors() {
        assert!(parse_pcap(b"not a pcap file at all").is_err());
        let whole = std::fs::read(data("exports/softflowd-v9.pcap")).unwrap();
        // The file header alone: no datagrams.
        assert_eq!(parse_pcap(&whole[..24]).unwrap(), Vec::new());
        // A record cut short names its offset.
        let err = parse_pcap(&whole[..whole.len() - 3]).unwrap_err();
        assert!(err.starts_with("record at offset"), "{err}");
    }
}
