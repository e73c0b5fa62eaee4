//! Test helpers shared by Flower's crates: paths into the committed corpus
//! (`netflow9/tests/data`, see its README for provenance) and a minimal
//! classic-pcap reader that returns the UDP payloads. Test code only: it
//! panics on anything unexpected.

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
/// (Ethernet with VLAN tags, raw IP or BSD loopback; IPv4 or IPv6).
///
/// # Panics
/// On an unreadable or unsupported file.
#[must_use]
pub fn udp_payloads(path: &Path) -> Vec<(IpAddr, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let magic = u32::from_le_bytes(bytes[0..4].try_into().unwrap());
    let le = match magic {
        0xa1b2_c3d4 | 0xa1b2_3c4d => true,
        0xd4c3_b2a1 | 0x4d3c_b2a1 => false,
        _ => panic!("{}: not a classic pcap", path.display()),
    };
    let rd32 = |b: &[u8]| {
        let a: [u8; 4] = b.try_into().unwrap();
        if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    let linktype = rd32(&bytes[20..24]);
    let mut out = Vec::new();
    let mut pos = 24;
    while pos + 16 <= bytes.len() {
        let caplen = rd32(&bytes[pos + 8..pos + 12]) as usize;
        let frame = &bytes[pos + 16..pos + 16 + caplen];
        pos += 16 + caplen;
        let ip = match linktype {
            1 => {
                let mut et = u16::from_be_bytes([frame[12], frame[13]]);
                let mut off = 14;
                while et == 0x8100 || et == 0x88a8 {
                    et = u16::from_be_bytes([frame[off + 2], frame[off + 3]]);
                    off += 4;
                }
                if et != 0x0800 && et != 0x86dd {
                    continue;
                }
                &frame[off..]
            }
            101 => frame,
            0 => &frame[4..],
            other => panic!("linktype {other}"),
        };
        let (src, proto, l4): (IpAddr, u8, &[u8]) = match ip[0] >> 4 {
            4 => {
                let ihl = usize::from(ip[0] & 0xf) * 4;
                let a: [u8; 4] = ip[12..16].try_into().unwrap();
                (IpAddr::V4(Ipv4Addr::from(a)), ip[9], &ip[ihl..])
            }
            6 => {
                let a: [u8; 16] = ip[8..24].try_into().unwrap();
                (IpAddr::V6(Ipv6Addr::from(a)), ip[6], &ip[40..])
            }
            _ => continue,
        };
        if proto != 17 {
            continue;
        }
        let ulen = usize::from(u16::from_be_bytes([l4[4], l4[5]]));
        out.push((src, l4[8..ulen.min(l4.len())].to_vec()));
    }
    out
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
