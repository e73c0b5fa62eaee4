//! Reading packet-capture files and extracting the UDP datagrams inside them.
//!
//! [`CaptureReader`] streams a classic pcap file (microsecond or nanosecond timestamps, either
//! byte order, and the "modified" Kuznetzov variant) or a pcapng file (any number of sections
//! and interfaces, Enhanced and Simple Packet Blocks) from any [`Read`], through a bounded
//! buffer: it starts at 256 KiB and grows, only for a block that does not fit, up to a hard
//! limit of 16 MiB ([`CaptureError::BlockTooLarge`] beyond that).
//!
//! Each frame is decoded down to UDP: link layer (Ethernet with 802.1Q/802.1ad/QinQ tags,
//! Linux cooked SLL and SLL2, BSD NULL, OpenBSD LOOP, raw IP), then IPv4 or IPv6 (with its
//! extension headers), then UDP. Every UDP datagram is handed to a callback as a
//! [`Datagram`] that borrows the reader's buffer, so no allocation happens per packet.
//!
//! Every frame is counted in [`CaptureStats::frames`] and in exactly one of the other
//! counters, so `frames == udp + non_udp + truncated + fragmented + unsupported_link`.
//!
//! A file that ends in the middle of a record or block is reported as
//! [`CaptureError::Truncated`], naming the offset where that last record starts; every
//! complete datagram before it has already been delivered to the callback by then.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};

use pcap_parser::traits::{PcapNGPacketBlock, PcapReaderIterator};
use pcap_parser::{
    Block, InterfaceDescriptionBlock, LegacyPcapReader, OptionCode, PcapBlockOwned, PcapError,
    PcapNGReader,
};

/// Initial size of the streaming buffer.
const INITIAL_BUFFER: usize = 256 * 1024;
/// Hard limit on the streaming buffer; a block larger than this is an error.
const MAX_BUFFER: usize = 16 * 1024 * 1024;
/// Most interfaces accepted in one pcapng section (bounds the interface table).
const MAX_INTERFACES: usize = 65_536;
/// Most VLAN tags skipped in one Ethernet frame.
const MAX_VLAN_TAGS: usize = 8;
/// Most IPv6 extension headers walked before giving up on a packet.
const MAX_IPV6_EXT_HEADERS: usize = 8;
/// Bytes read ahead by [`CaptureReader::new`] to recognise the file format.
const PREFIX_LEN: usize = 12;

/// pcapng Section Header Block type (a palindrome, so the same in both byte orders).
const PCAPNG_SHB: u32 = 0x0A0D_0D0A;
/// pcapng byte-order magic, as read with the section's own byte order.
const PCAPNG_BOM: u32 = 0x1A2B_3C4D;

const LINKTYPE_NULL: u16 = 0;
const LINKTYPE_ETHERNET: u16 = 1;
const LINKTYPE_RAW_12: u16 = 12;
const LINKTYPE_RAW_14: u16 = 14;
const LINKTYPE_RAW: u16 = 101;
const LINKTYPE_LOOP: u16 = 108;
const LINKTYPE_LINUX_SLL: u16 = 113;
const LINKTYPE_IPV4: u16 = 228;
const LINKTYPE_IPV6: u16 = 229;
const LINKTYPE_LINUX_SLL2: u16 = 276;

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86DD;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88A8;
const ETHERTYPE_QINQ_OLD: u16 = 0x9100;
/// Stands for "not IP" where a link layer gives an address family instead of an EtherType.
const ETHERTYPE_NONE: u16 = 0;

const IPPROTO_HOPOPTS: u8 = 0;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_ROUTING: u8 = 43;
const IPPROTO_FRAGMENT: u8 = 44;
const IPPROTO_DSTOPTS: u8 = 60;

/// One UDP datagram found in a capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Datagram<'a> {
    /// Source address and port, from the IP and UDP headers.
    pub(crate) src: SocketAddr,
    /// Destination address and port, from the IP and UDP headers.
    pub(crate) dst: SocketAddr,
    /// The UDP payload: bounded by the UDP length field, never including link-layer padding.
    /// It borrows the reader's buffer and is only valid during the callback.
    pub(crate) payload: &'a [u8],
    /// Capture time in microseconds since the Unix epoch, from the record or block header
    /// (nanosecond and other resolutions are truncated to microseconds). Simple Packet Blocks
    /// carry no timestamp: their datagrams have `timestamp_us == 0`.
    pub(crate) timestamp_us: u64,
}

/// Counters of what a [`CaptureReader`] has seen so far.
///
/// Every frame is counted in `frames` and in exactly one other field.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CaptureStats {
    /// Packet records (pcap) or packet blocks (pcapng EPB and SPB) read.
    pub(crate) frames: u64,
    /// UDP datagrams delivered to the callback.
    pub(crate) udp: u64,
    /// Frames that are not IP, IP packets that are not UDP, and malformed IP/UDP headers
    /// (inconsistent lengths, wrong version, too many IPv6 extension headers).
    pub(crate) non_udp: u64,
    /// Frames whose capture stops before the end of the headers or of the UDP payload
    /// (snap length shorter than the packet).
    pub(crate) truncated: u64,
    /// UDP packets that are IP fragments (IPv4 first fragments with MF set and non-first
    /// fragments; IPv6 packets with a non-atomic Fragment header), which are skipped.
    pub(crate) fragmented: u64,
    /// Frames of a link type this module does not decode.
    pub(crate) unsupported_link: u64,
}

/// Why a capture could not be read. Each variant names the byte offset in the file
/// where the problem is (for a record or block, the offset of its first byte).
#[derive(Debug, thiserror::Error)]
pub(crate) enum CaptureError {
    /// Reading the underlying file or stream failed.
    #[error("I/O error reading capture near byte offset {offset}: {source}")]
    Io {
        /// Bytes of the file consumed when the error happened.
        offset: u64,
        /// The error from the reader.
        source: io::Error,
    },
    /// The data does not start with a pcap or pcapng magic number (this includes an empty file).
    #[error("not a pcap or pcapng capture (at byte offset {offset})")]
    NotACapture {
        /// Offset of the unrecognised header.
        offset: u64,
    },
    /// A header, record or block is inconsistent.
    #[error("malformed capture at byte offset {offset}: {reason}")]
    Malformed {
        /// Offset of the offending header, record or block.
        offset: u64,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A record or block is larger than the 16 MiB buffer limit.
    #[error("capture block at byte offset {offset} is {len} bytes long, over the buffer limit")]
    BlockTooLarge {
        /// Offset of the record or block.
        offset: u64,
        /// Its length in bytes, as its header declares it (headers included).
        len: u64,
    },
    /// The file ends in the middle of a header, record or block.
    #[error("capture ends in the middle of the record or block at byte offset {offset}")]
    Truncated {
        /// Offset of the incomplete header, record or block.
        offset: u64,
    },
}

/// Streaming reader of UDP datagrams from a pcap or pcapng capture.
pub(crate) struct CaptureReader<R: Read> {
    /// The pcap-parser streaming reader of the detected format.
    inner: Inner<R>,
    /// Link types, timestamp formats and counters.
    state: State,
    /// Where [`Source`] leaves an I/O error that pcap-parser reduces to `ReadError`.
    io_error: ErrorSlot,
    /// Current size of the streaming buffer.
    capacity: usize,
}

/// An I/O error shared between [`Source`] (inside pcap-parser) and [`CaptureReader`].
type ErrorSlot = Arc<Mutex<Option<io::Error>>>;

/// The streaming reader for each supported format.
enum Inner<R: Read> {
    /// Classic pcap.
    Legacy(LegacyPcapReader<Source<R>>),
    /// pcapng.
    Ng(PcapNGReader<Source<R>>),
}

/// Decoding state that outlives a single block.
#[derive(Default)]
struct State {
    /// Counters.
    stats: CaptureStats,
    /// Link type of a classic pcap file.
    linktype: u16,
    /// Whether classic pcap timestamps are in nanoseconds.
    nanos: bool,
    /// Byte order of the classic pcap file or of the current pcapng section.
    big_endian: bool,
    /// Length of a classic pcap record header (16, or 24 for the modified format).
    record_header_len: u64,
    /// Whether the file is pcapng.
    pcapng: bool,
    /// Interfaces of the current pcapng section, by interface id.
    interfaces: Vec<Interface>,
}

/// What a pcapng Interface Description Block says that packet blocks need.
#[derive(Debug, Clone, Copy)]
struct Interface {
    /// Link type of the interface.
    linktype: u16,
    /// Snap length (0 = unlimited).
    snaplen: u32,
    /// Timestamp units per second (`if_tsresol`).
    units_per_sec: u64,
    /// Seconds to add to every timestamp (`if_tsoffset`).
    offset_secs: i64,
}

/// What to do after asking pcap-parser for the next block, once its borrow is released.
enum Step {
    /// A block of this length was handled, with this outcome.
    Block(usize, Result<(), CaptureError>),
    /// Clean end of file.
    Eof,
    /// More data is needed.
    Refill,
    /// The buffer is too small for the next block.
    Grow,
    /// Reading failed.
    Fail(CaptureError),
}

impl<R: Read> CaptureReader<R> {
    /// Starts reading a capture: reads the file header and detects pcap or pcapng from its
    /// magic number.
    ///
    /// Errors: [`CaptureError::NotACapture`] for an empty file or an unknown magic,
    /// [`CaptureError::Truncated`] when the file header itself is cut short,
    /// [`CaptureError::Io`] when reading fails.
    pub(crate) fn new(mut reader: R) -> Result<Self, CaptureError> {
        let mut prefix = [0u8; PREFIX_LEN];
        let mut prefix_len = 0;
        while prefix_len < PREFIX_LEN {
            let Some(space) = prefix.get_mut(prefix_len..) else {
                break;
            };
            match reader.read(space) {
                Ok(0) => break,
                Ok(n) => prefix_len += n.min(space.len()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(CaptureError::Io {
                        offset: to_u64(prefix_len),
                        source,
                    })
                }
            }
        }
        let magic = match prefix.first_chunk::<4>() {
            Some(m) if prefix_len >= 4 => *m,
            _ => return Err(CaptureError::NotACapture { offset: 0 }),
        };
        let magic_le = u32::from_le_bytes(magic);
        let io_error = ErrorSlot::default();
        let source = Source {
            prefix,
            prefix_pos: 0,
            prefix_len,
            inner: reader,
            pending: None,
            slot: Arc::clone(&io_error),
        };
        let mut state = State::default();
        let (inner, capacity) = match magic_le {
            0xA1B2_C3D4 | 0xA1B2_3C4D | 0xA1B2_CD34 | 0xD4C3_B2A1 | 0x4D3C_B2A1 => {
                let r = LegacyPcapReader::new(INITIAL_BUFFER, source)
                    .map_err(|e| header_error(&e, &io_error))?;
                (Inner::Legacy(r), INITIAL_BUFFER)
            }
            PCAPNG_SHB => {
                state.pcapng = true;
                let capacity = if prefix_len < PREFIX_LEN {
                    INITIAL_BUFFER
                } else {
                    // Size the buffer so that the whole Section Header Block fits.
                    let shb_len = peek_ng_block_len(&prefix, false).unwrap_or(0);
                    if shb_len >= to_u64(MAX_BUFFER) {
                        return Err(CaptureError::BlockTooLarge {
                            offset: 0,
                            len: shb_len,
                        });
                    }
                    INITIAL_BUFFER.max(usize::try_from(shb_len).unwrap_or(MAX_BUFFER) + 1)
                };
                let r =
                    PcapNGReader::new(capacity, source).map_err(|e| header_error(&e, &io_error))?;
                (Inner::Ng(r), capacity)
            }
            _ => return Err(CaptureError::NotACapture { offset: 0 }),
        };
        Ok(CaptureReader {
            inner,
            state,
            io_error,
            capacity,
        })
    }

    /// Calls `f` for every UDP datagram, in file order, until the end of the file.
    /// Returns the stats.
    ///
    /// The datagram's payload borrows the reader's buffer and is only valid during the call.
    /// On error, the datagrams before the faulty record have been delivered and
    /// [`stats`](Self::stats) counts them; calling again after the end of the file
    /// returns the same stats without calling `f`.
    // The tools stop early ([`Self::for_each_datagram_while`]); this is for
    // the tests and the capture fuzz target.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn for_each_datagram(
        &mut self,
        mut f: impl FnMut(&Datagram<'_>),
    ) -> Result<CaptureStats, CaptureError> {
        self.for_each_datagram_while(|d| {
            f(d);
            true
        })
    }

    /// [`for_each_datagram`](Self::for_each_datagram) until `f` returns
    /// false: the rest of the file is then not read (`decode | head`).
    /// Calling it again goes on after that datagram's record.
    pub(crate) fn for_each_datagram_while(
        &mut self,
        mut f: impl FnMut(&Datagram<'_>) -> bool,
    ) -> Result<CaptureStats, CaptureError> {
        let go = std::cell::Cell::new(true);
        let mut f = |d: &Datagram<'_>| {
            if go.get() {
                go.set(f(d));
            }
        };
        loop {
            let rdr: &mut dyn PcapReaderIterator = match &mut self.inner {
                Inner::Legacy(r) => r,
                Inner::Ng(r) => r,
            };
            let offset = to_u64(rdr.consumed());
            if self.state.pcapng && ng_block_too_short(rdr.data(), self.state.big_endian) {
                // pcap-parser would subtract 12 from it (and overflow).
                return Err(CaptureError::Malformed {
                    offset,
                    reason: "block length below the 12-byte minimum",
                });
            }
            let step = match rdr.next() {
                Ok((len, block)) => {
                    Step::Block(len, self.state.handle_block(block, offset, &mut f))
                }
                Err(PcapError::Eof) => Step::Eof,
                Err(PcapError::Incomplete(_)) => Step::Refill,
                Err(PcapError::BufferTooSmall) => Step::Grow,
                Err(PcapError::UnexpectedEof) => Step::Fail(CaptureError::Truncated { offset }),
                Err(PcapError::ReadError) => Step::Fail(take_io_error(&self.io_error, offset)),
                Err(PcapError::HeaderNotRecognized) => Step::Fail(CaptureError::Malformed {
                    offset,
                    reason: "section header with an unknown byte-order magic",
                }),
                Err(PcapError::NomError(..) | PcapError::OwnedNomError(..)) => {
                    Step::Fail(CaptureError::Malformed {
                        offset,
                        reason: "invalid record or block",
                    })
                }
            };
            match step {
                Step::Block(len, outcome) => {
                    rdr.consume(len);
                    outcome?;
                    if !go.get() {
                        return Ok(self.state.stats);
                    }
                }
                Step::Eof => return Ok(self.state.stats),
                Step::Fail(e) => return Err(e),
                Step::Refill => {
                    let needed = self.state.peek_block_len(rdr.data());
                    if needed.is_some_and(|n| to_u64(rdr.data().len()) >= n) {
                        // The whole block is in the buffer, yet the parser wants more:
                        // its contents overrun its declared length.
                        return Err(CaptureError::Malformed {
                            offset,
                            reason: "block contents overrun the block length",
                        });
                    }
                    let before = rdr.data().len();
                    refill(rdr, offset, &self.io_error)?;
                    if rdr.data().len() == before && !rdr.reader_exhausted() {
                        // No room left to read into: the block needs a bigger buffer.
                        self.capacity = grow(rdr, self.capacity, needed, offset)?;
                        refill(rdr, offset, &self.io_error)?;
                    }
                }
                Step::Grow => {
                    let needed = self.state.peek_block_len(rdr.data());
                    if let Some(len) = needed.filter(|&n| n >= to_u64(MAX_BUFFER)) {
                        return Err(CaptureError::BlockTooLarge { offset, len });
                    }
                    // Fill the buffer first: a block that the file is too short to hold is
                    // then reported as truncated without growing the buffer for it.
                    let before = rdr.data().len();
                    refill(rdr, offset, &self.io_error)?;
                    if rdr.reader_exhausted() || rdr.data().len() > before {
                        continue;
                    }
                    if needed.is_some_and(|n| n < to_u64(self.capacity)) {
                        return Err(CaptureError::Malformed {
                            offset,
                            reason: "block contents overrun the block length",
                        });
                    }
                    self.capacity = grow(rdr, self.capacity, needed, offset)?;
                    refill(rdr, offset, &self.io_error)?;
                }
            }
        }
    }

    /// The counters so far.
    pub(crate) fn stats(&self) -> CaptureStats {
        self.state.stats
    }

    /// Bytes of the file consumed so far: the file header and every record or block handled.
    /// At the end of a well-formed file this is the file's length.
    #[allow(dead_code)] // for progress reports of `flowerd replay`
    pub(crate) fn offset(&self) -> u64 {
        to_u64(match &self.inner {
            Inner::Legacy(r) => r.consumed(),
            Inner::Ng(r) => r.consumed(),
        })
    }
}

/// Convenience: opens a path.
///
/// The file is read through a [`BufReader`]; see [`CaptureReader::new`] for the errors
/// (a failure to open the file is [`CaptureError::Io`] at offset 0).
pub(crate) fn open(path: &Path) -> Result<CaptureReader<BufReader<File>>, CaptureError> {
    let file = File::open(path).map_err(|source| CaptureError::Io { offset: 0, source })?;
    CaptureReader::new(BufReader::new(file))
}

impl State {
    /// Handles one block returned by pcap-parser; `offset` is where it starts in the file.
    fn handle_block<F: FnMut(&Datagram<'_>)>(
        &mut self,
        block: PcapBlockOwned<'_>,
        offset: u64,
        f: &mut F,
    ) -> Result<(), CaptureError> {
        match block {
            PcapBlockOwned::LegacyHeader(h) => {
                // The upper 16 bits of the link type field hold FCS information.
                self.linktype = u16::try_from(h.network.0 & 0xFFFF).unwrap_or(u16::MAX);
                self.nanos = h.is_nanosecond_precision();
                self.big_endian = h.is_bigendian();
                self.record_header_len = if h.is_modified_format() { 24 } else { 16 };
            }
            PcapBlockOwned::Legacy(b) => {
                let fraction_us = if self.nanos {
                    b.ts_usec / 1000
                } else {
                    b.ts_usec
                };
                let ts = u64::from(b.ts_sec) * 1_000_000 + u64::from(fraction_us);
                process_frame(&mut self.stats, self.linktype, b.data, ts, f);
            }
            PcapBlockOwned::NG(Block::SectionHeader(shb)) => {
                self.big_endian = shb.big_endian();
                self.interfaces.clear();
            }
            PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                if self.interfaces.len() >= MAX_INTERFACES {
                    return Err(CaptureError::Malformed {
                        offset,
                        reason: "too many interfaces in one section",
                    });
                }
                let iface = interface(&idb, self.big_endian).ok_or(CaptureError::Malformed {
                    offset,
                    reason: "invalid interface timestamp resolution",
                })?;
                self.interfaces.push(iface);
            }
            PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                let iface = usize::try_from(epb.if_id)
                    .ok()
                    .and_then(|i| self.interfaces.get(i))
                    .copied()
                    .ok_or(CaptureError::Malformed {
                        offset,
                        reason: "packet block refers to an undeclared interface",
                    })?;
                let ts = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
                let ts = timestamp_us(ts, iface.units_per_sec, iface.offset_secs);
                process_frame(&mut self.stats, iface.linktype, epb.packet_data(), ts, f);
            }
            PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
                let iface = self
                    .interfaces
                    .first()
                    .copied()
                    .ok_or(CaptureError::Malformed {
                        offset,
                        reason: "simple packet block without an interface",
                    })?;
                // The block's data is padded to 32 bits and holds at most snaplen bytes.
                let mut caplen = usize::try_from(spb.origlen).unwrap_or(usize::MAX);
                if iface.snaplen != 0 {
                    caplen = caplen.min(usize::try_from(iface.snaplen).unwrap_or(usize::MAX));
                }
                let data = spb.data.get(..caplen).unwrap_or(spb.data);
                process_frame(&mut self.stats, iface.linktype, data, 0, f);
            }
            PcapBlockOwned::NG(_) => {}
        }
        Ok(())
    }

    /// The total length of the record or block at the start of `data`, read from its header,
    /// if enough of the header is there.
    fn peek_block_len(&self, data: &[u8]) -> Option<u64> {
        if self.pcapng {
            peek_ng_block_len(data, self.big_endian)
        } else {
            let caplen = *data.get(8..12)?.first_chunk::<4>()?;
            let caplen = if self.big_endian {
                u32::from_be_bytes(caplen)
            } else {
                u32::from_le_bytes(caplen)
            };
            Some(self.record_header_len + u64::from(caplen))
        }
    }
}

/// Whether the pcapng block at the start of `data` (other than a Section
/// Header Block, whose byte order is its own and whose parser checks this)
/// declares a length below 12 bytes, the size of its type and two lengths.
fn ng_block_too_short(data: &[u8], big_endian: bool) -> bool {
    let Some(&[t0, t1, t2, t3, l0, l1, l2, l3]) = data.first_chunk::<8>() else {
        return false;
    };
    if u32::from_le_bytes([t0, t1, t2, t3]) == PCAPNG_SHB {
        return false;
    }
    let len = if big_endian {
        u32::from_be_bytes([l0, l1, l2, l3])
    } else {
        u32::from_le_bytes([l0, l1, l2, l3])
    };
    len < 12
}

/// The length of the pcapng block at the start of `data`, if its first 12 bytes are there.
/// `big_endian` is the current section's byte order; a Section Header Block carries its own.
fn peek_ng_block_len(data: &[u8], big_endian: bool) -> Option<u64> {
    let head = data.first_chunk::<12>()?;
    let [t0, t1, t2, t3, l0, l1, l2, l3, b0, b1, b2, b3] = *head;
    let big_endian = if u32::from_le_bytes([t0, t1, t2, t3]) == PCAPNG_SHB {
        u32::from_be_bytes([b0, b1, b2, b3]) == PCAPNG_BOM
    } else {
        big_endian
    };
    let len = if big_endian {
        u32::from_be_bytes([l0, l1, l2, l3])
    } else {
        u32::from_le_bytes([l0, l1, l2, l3])
    };
    Some(u64::from(len))
}

/// Reads what an Interface Description Block says about its packets.
/// `None` if its timestamp resolution is invalid.
///
/// `if_tsoffset` is decoded here with the section's byte order (pcap-parser 0.16 always
/// decodes it as little-endian), and `if_tsresol` with both its decimal and binary forms
/// (pcap-parser's `ts_resolution` rejects every binary one).
fn interface(idb: &InterfaceDescriptionBlock<'_>, big_endian: bool) -> Option<Interface> {
    let exponent = u32::from(idb.if_tsresol & 0x7F);
    let units_per_sec = if idb.if_tsresol & 0x80 == 0 {
        10u64.checked_pow(exponent)?
    } else {
        1u64.checked_shl(exponent)?
    };
    let offset_secs = idb
        .options
        .iter()
        .find(|o| o.code == OptionCode::IfTsoffset && o.len == 8)
        .and_then(|o| o.value().first_chunk::<8>().copied())
        .map_or(0, |b| {
            if big_endian {
                i64::from_be_bytes(b)
            } else {
                i64::from_le_bytes(b)
            }
        });
    Some(Interface {
        linktype: u16::try_from(idb.linktype.0 & 0xFFFF).unwrap_or(u16::MAX),
        snaplen: idb.snaplen,
        units_per_sec,
        offset_secs,
    })
}

/// Converts a pcapng timestamp (`ts` units of `1 / units_per_sec` s, plus `offset_secs`)
/// to Unix microseconds, clamped to the `u64` range.
fn timestamp_us(ts: u64, units_per_sec: u64, offset_secs: i64) -> u64 {
    let units = i128::from(units_per_sec.max(1));
    let us = i128::from(ts) * 1_000_000 / units + i128::from(offset_secs) * 1_000_000;
    u64::try_from(us.max(0)).unwrap_or(u64::MAX)
}

/// Grows the buffer of `rdr` so that a block of `needed` bytes (or, when unknown, twice the
/// current size) fits, within [`MAX_BUFFER`]. Returns the new capacity.
fn grow(
    rdr: &mut dyn PcapReaderIterator,
    capacity: usize,
    needed: Option<u64>,
    offset: u64,
) -> Result<usize, CaptureError> {
    // pcap-parser wants the buffer strictly larger than what it needs.
    let wanted = match needed {
        Some(n) if n >= to_u64(MAX_BUFFER) => {
            return Err(CaptureError::BlockTooLarge { offset, len: n });
        }
        Some(n) => usize::try_from(n).unwrap_or(MAX_BUFFER).saturating_add(1),
        None => 0,
    };
    let new_capacity = wanted.max(capacity.saturating_mul(2)).min(MAX_BUFFER);
    if new_capacity <= capacity {
        return Err(CaptureError::BlockTooLarge {
            offset,
            len: needed.unwrap_or(to_u64(capacity)),
        });
    }
    rdr.grow(new_capacity);
    Ok(new_capacity)
}

/// Refills the buffer of `rdr`, turning a read failure into [`CaptureError::Io`].
fn refill(
    rdr: &mut dyn PcapReaderIterator,
    offset: u64,
    slot: &ErrorSlot,
) -> Result<(), CaptureError> {
    if rdr.refill().is_err() {
        return Err(take_io_error(slot, offset));
    }
    Ok(())
}

/// The I/O error that [`Source`] stored, as a [`CaptureError::Io`] at `offset`.
fn take_io_error(slot: &ErrorSlot, offset: u64) -> CaptureError {
    let stored = slot
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    CaptureError::Io {
        offset,
        source: stored.unwrap_or_else(|| io::Error::other("read error")),
    }
}

/// Maps an error from pcap-parser's reader constructors (which parse the file header).
fn header_error(e: &PcapError<&[u8]>, slot: &ErrorSlot) -> CaptureError {
    match e {
        PcapError::ReadError => take_io_error(slot, 0),
        PcapError::Incomplete(_) | PcapError::UnexpectedEof | PcapError::Eof => {
            CaptureError::Truncated { offset: 0 }
        }
        PcapError::HeaderNotRecognized => CaptureError::NotACapture { offset: 0 },
        PcapError::BufferTooSmall => CaptureError::BlockTooLarge {
            offset: 0,
            len: to_u64(MAX_BUFFER),
        },
        PcapError::NomError(..) | PcapError::OwnedNomError(..) => CaptureError::Malformed {
            offset: 0,
            reason: "invalid file header",
        },
    }
}

/// `usize` to `u64`, saturating (lossless on every supported platform).
fn to_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// The reader handed to pcap-parser: replays the bytes that [`CaptureReader::new`] read to
/// detect the format, then fills each read as far as the underlying reader allows (pcap-parser
/// parses the file header from a single `read`), retries interrupted reads, and keeps the
/// real I/O error where [`CaptureReader`] can find it (pcap-parser drops it).
struct Source<R> {
    /// The bytes read by [`CaptureReader::new`].
    prefix: [u8; PREFIX_LEN],
    /// How many of them were replayed already.
    prefix_pos: usize,
    /// How many there are.
    prefix_len: usize,
    /// The caller's reader.
    inner: R,
    /// An error met after some bytes of a read had been returned.
    pending: Option<io::Error>,
    /// Where the error reported to pcap-parser is kept.
    slot: ErrorSlot,
}

impl<R> Source<R> {
    /// Stores `e` for [`CaptureReader`] and returns a stand-in for pcap-parser.
    fn fail(&self, e: io::Error) -> io::Error {
        *self
            .slot
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(e);
        io::Error::other("see CaptureError::Io")
    }
}

impl<R: Read> Read for Source<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(e) = self.pending.take() {
            return Err(self.fail(e));
        }
        let mut filled = 0;
        if let Some(rest) = self.prefix.get(self.prefix_pos..self.prefix_len) {
            for (dst, src) in buf.iter_mut().zip(rest) {
                *dst = *src;
                filled += 1;
            }
            self.prefix_pos += filled;
        }
        while let Some(space) = buf.get_mut(filled..).filter(|s| !s.is_empty()) {
            match self.inner.read(space) {
                Ok(0) => break,
                Ok(n) => filled += n.min(space.len()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if filled > 0 => {
                    self.pending = Some(e);
                    break;
                }
                Err(e) => return Err(self.fail(e)),
            }
        }
        Ok(filled)
    }
}

/// Decodes one frame down to UDP, counts it, and calls `f` if it is a UDP datagram.
fn process_frame<F: FnMut(&Datagram<'_>)>(
    stats: &mut CaptureStats,
    linktype: u16,
    frame: &[u8],
    timestamp_us: u64,
    f: &mut F,
) {
    stats.frames += 1;
    if !link_supported(linktype) {
        stats.unsupported_link += 1;
        return;
    }
    let Some((ethertype, packet)) = link_payload(linktype, frame) else {
        stats.truncated += 1;
        return;
    };
    match ip_udp(ethertype, packet) {
        IpUdp::Datagram { src, dst, payload } => {
            stats.udp += 1;
            f(&Datagram {
                src,
                dst,
                payload,
                timestamp_us,
            });
        }
        IpUdp::NotUdp => stats.non_udp += 1,
        IpUdp::Truncated => stats.truncated += 1,
        IpUdp::Fragmented => stats.fragmented += 1,
    }
}

/// Whether [`link_payload`] decodes this link type.
fn link_supported(linktype: u16) -> bool {
    matches!(
        linktype,
        LINKTYPE_NULL
            | LINKTYPE_ETHERNET
            | LINKTYPE_RAW_12
            | LINKTYPE_RAW_14
            | LINKTYPE_RAW
            | LINKTYPE_LOOP
            | LINKTYPE_LINUX_SLL
            | LINKTYPE_IPV4
            | LINKTYPE_IPV6
            | LINKTYPE_LINUX_SLL2
    )
}

/// Strips the link-layer header of a frame: returns the EtherType of the network layer
/// (address families of NULL/LOOP and the version of raw IP are mapped to the IPv4 or IPv6
/// EtherType, anything else to a non-IP value) and the network-layer packet.
///
/// `None` if the frame is too short for its link-layer header or the link type is not one
/// that [`link_supported`] accepts.
fn link_payload(linktype: u16, data: &[u8]) -> Option<(u16, &[u8])> {
    match linktype {
        LINKTYPE_ETHERNET => ethernet_payload(data),
        LINKTYPE_LINUX_SLL => {
            // Packet type, ARPHRD type, address length, 8 address bytes, protocol.
            let h = data.first_chunk::<16>()?;
            Some((u16::from_be_bytes([h[14], h[15]]), data.get(16..)?))
        }
        LINKTYPE_LINUX_SLL2 => {
            // Protocol, reserved, interface index, ARPHRD type, packet type, address
            // length, 8 address bytes.
            let h = data.first_chunk::<20>()?;
            Some((u16::from_be_bytes([h[0], h[1]]), data.get(20..)?))
        }
        LINKTYPE_NULL => {
            // The address family in the byte order of the capturing host: family values
            // are small, so the order that gives a small value is the right one.
            let h = *data.first_chunk::<4>()?;
            let le = u32::from_le_bytes(h);
            let family = if le <= 0xFFFF {
                le
            } else {
                u32::from_be_bytes(h)
            };
            Some((family_ethertype(family), data.get(4..)?))
        }
        LINKTYPE_LOOP => {
            let h = *data.first_chunk::<4>()?;
            Some((family_ethertype(u32::from_be_bytes(h)), data.get(4..)?))
        }
        LINKTYPE_RAW | LINKTYPE_RAW_12 | LINKTYPE_RAW_14 => {
            let ethertype = match data.first()? >> 4 {
                4 => ETHERTYPE_IPV4,
                6 => ETHERTYPE_IPV6,
                _ => ETHERTYPE_NONE,
            };
            Some((ethertype, data))
        }
        LINKTYPE_IPV4 => Some((ETHERTYPE_IPV4, data)),
        LINKTYPE_IPV6 => Some((ETHERTYPE_IPV6, data)),
        _ => None,
    }
}

/// Strips an Ethernet II header and up to [`MAX_VLAN_TAGS`] 802.1Q / 802.1ad / QinQ tags.
/// `None` if the frame ends inside them.
fn ethernet_payload(data: &[u8]) -> Option<(u16, &[u8])> {
    let h = data.first_chunk::<14>()?;
    let mut ethertype = u16::from_be_bytes([h[12], h[13]]);
    let mut rest = data.get(14..)?;
    for _ in 0..MAX_VLAN_TAGS {
        if !matches!(
            ethertype,
            ETHERTYPE_VLAN | ETHERTYPE_QINQ | ETHERTYPE_QINQ_OLD
        ) {
            break;
        }
        // Tag control information, then the next EtherType.
        let tag = rest.first_chunk::<4>()?;
        ethertype = u16::from_be_bytes([tag[2], tag[3]]);
        rest = rest.get(4..)?;
    }
    Some((ethertype, rest))
}

/// Maps a BSD address family (NULL and LOOP link types) to an EtherType.
fn family_ethertype(family: u32) -> u16 {
    match family {
        2 => ETHERTYPE_IPV4,
        // AF_INET6 on NetBSD/OpenBSD, FreeBSD/DragonFly, and macOS.
        24 | 28 | 30 => ETHERTYPE_IPV6,
        _ => ETHERTYPE_NONE,
    }
}

/// Result of decoding a network-layer packet.
#[derive(Debug, PartialEq, Eq)]
enum IpUdp<'a> {
    /// A whole UDP datagram.
    Datagram {
        /// Source address and port.
        src: SocketAddr,
        /// Destination address and port.
        dst: SocketAddr,
        /// UDP payload.
        payload: &'a [u8],
    },
    /// Not IP, not UDP, or malformed.
    NotUdp,
    /// The capture stops before the end of the headers or of the datagram.
    Truncated,
    /// A fragment of a UDP datagram.
    Fragmented,
}

/// Decodes the IP and UDP headers of a network-layer packet of the given EtherType.
fn ip_udp(ethertype: u16, packet: &[u8]) -> IpUdp<'_> {
    match ethertype {
        ETHERTYPE_IPV4 => ipv4_udp(packet),
        ETHERTYPE_IPV6 => ipv6_udp(packet),
        _ => IpUdp::NotUdp,
    }
}

/// Decodes an IPv4 packet (honouring the header length) down to UDP.
fn ipv4_udp(packet: &[u8]) -> IpUdp<'_> {
    let Some(h) = packet.first_chunk::<20>() else {
        return IpUdp::Truncated;
    };
    if h[0] >> 4 != 4 {
        return IpUdp::NotUdp;
    }
    let header_len = usize::from(h[0] & 0x0F) * 4;
    if header_len < 20 {
        return IpUdp::NotUdp;
    }
    if h[9] != IPPROTO_UDP {
        return IpUdp::NotUdp;
    }
    let flags_fragment = u16::from_be_bytes([h[6], h[7]]);
    // More-fragments flag, or a non-zero fragment offset.
    if flags_fragment & 0x3FFF != 0 {
        return IpUdp::Fragmented;
    }
    let src = IpAddr::V4(Ipv4Addr::new(h[12], h[13], h[14], h[15]));
    let dst = IpAddr::V4(Ipv4Addr::new(h[16], h[17], h[18], h[19]));
    let total_len = usize::from(u16::from_be_bytes([h[2], h[3]]));
    let Some(after_header) = packet.get(header_len..) else {
        return IpUdp::Truncated;
    };
    // A total length of 0 is what segmentation offload leaves in locally sent packets.
    let (body, cut) = if total_len == 0 {
        (after_header, false)
    } else if total_len < header_len {
        return IpUdp::NotUdp;
    } else if let Some(body) = packet.get(header_len..total_len) {
        (body, false)
    } else {
        (after_header, true)
    };
    udp(src, dst, body, cut)
}

/// Decodes an IPv6 packet down to UDP, walking up to [`MAX_IPV6_EXT_HEADERS`] hop-by-hop,
/// routing, destination-options and fragment headers.
fn ipv6_udp(packet: &[u8]) -> IpUdp<'_> {
    let Some(h) = packet.first_chunk::<40>() else {
        return IpUdp::Truncated;
    };
    if h[0] >> 4 != 6 {
        return IpUdp::NotUdp;
    }
    let payload_len = usize::from(u16::from_be_bytes([h[4], h[5]]));
    let mut next_header = h[6];
    let mut addrs = [[0u8; 16]; 2];
    for (addr, start) in addrs.iter_mut().zip([8, 24]) {
        if let Some(bytes) = packet.get(start..start + 16) {
            addr.copy_from_slice(bytes);
        }
    }
    let src = IpAddr::V6(Ipv6Addr::from(addrs[0]));
    let dst = IpAddr::V6(Ipv6Addr::from(addrs[1]));
    let after_header = packet.get(40..).unwrap_or_default();
    // A payload length of 0 means a jumbogram: the length is in a hop-by-hop option.
    let (mut body, cut) = if payload_len == 0 {
        (after_header, false)
    } else if let Some(body) = after_header.get(..payload_len) {
        (body, false)
    } else {
        (after_header, true)
    };
    let short = if cut { IpUdp::Truncated } else { IpUdp::NotUdp };
    for _ in 0..=MAX_IPV6_EXT_HEADERS {
        match next_header {
            IPPROTO_UDP => return udp(src, dst, body, cut),
            IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS => {
                let Some(&[nh, len]) = body.first_chunk::<2>() else {
                    return short;
                };
                let Some(rest) = body.get((usize::from(len) + 1) * 8..) else {
                    return short;
                };
                next_header = nh;
                body = rest;
            }
            IPPROTO_FRAGMENT => {
                let Some(&[nh, _, off_hi, off_lo, ..]) = body.first_chunk::<8>() else {
                    return short;
                };
                let offset_flags = u16::from_be_bytes([off_hi, off_lo]);
                // A non-zero offset or the M flag; an atomic fragment is a whole packet.
                if offset_flags & 0xFFF9 != 0 {
                    return if matches!(
                        nh,
                        IPPROTO_UDP
                            | IPPROTO_HOPOPTS
                            | IPPROTO_ROUTING
                            | IPPROTO_DSTOPTS
                            | IPPROTO_FRAGMENT
                    ) {
                        IpUdp::Fragmented
                    } else {
                        IpUdp::NotUdp
                    };
                }
                next_header = nh;
                body = body.get(8..).unwrap_or_default();
            }
            _ => return IpUdp::NotUdp,
        }
    }
    IpUdp::NotUdp
}

/// Decodes a UDP header at the start of `segment` (the IP payload, bounded by the IP length
/// when the capture holds all of it). `cut` tells that the capture stops before the IP
/// length, so a segment that is too short is truncated rather than malformed.
fn udp(src: IpAddr, dst: IpAddr, segment: &[u8], cut: bool) -> IpUdp<'_> {
    let short = if cut { IpUdp::Truncated } else { IpUdp::NotUdp };
    let Some(h) = segment.first_chunk::<8>() else {
        return short;
    };
    let src_port = u16::from_be_bytes([h[0], h[1]]);
    let dst_port = u16::from_be_bytes([h[2], h[3]]);
    let udp_len = usize::from(u16::from_be_bytes([h[4], h[5]]));
    let end = match udp_len {
        // Only IPv6 jumbograms have a zero UDP length: the IP length bounds them.
        0 if cut => return IpUdp::Truncated,
        0 => segment.len(),
        1..=7 => return IpUdp::NotUdp,
        n => n,
    };
    let Some(payload) = segment.get(8..end) else {
        return short;
    };
    IpUdp::Datagram {
        src: SocketAddr::new(src, src_port),
        dst: SocketAddr::new(dst, dst_port),
        payload,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    // ---------------------------------------------------------------- packet builders

    const SRC4: [u8; 4] = [192, 0, 2, 1];
    const DST4: [u8; 4] = [198, 51, 100, 7];
    const SRC6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    const DST6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
    const PAYLOAD: &[u8] = b"\x00\x09netflow";

    fn sa4(ip: [u8; 4], port: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), port)
    }

    fn sa6(ip: [u8; 16], port: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::V6(Ipv6Addr::from(ip)), port)
    }

    fn udp_header(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
        let len = u16::try_from(8 + payload.len()).unwrap();
        let mut v = Vec::new();
        v.extend_from_slice(&sport.to_be_bytes());
        v.extend_from_slice(&dport.to_be_bytes());
        v.extend_from_slice(&len.to_be_bytes());
        v.extend_from_slice(&[0, 0]);
        v.extend_from_slice(payload);
        v
    }

    /// An IPv4 packet with the given protocol, flags/fragment field and options.
    fn ipv4(proto: u8, frag: u16, options: &[u8], body: &[u8]) -> Vec<u8> {
        assert_eq!(options.len() % 4, 0);
        let ihl = u8::try_from(5 + options.len() / 4).unwrap();
        let total = u16::try_from(20 + options.len() + body.len()).unwrap();
        let mut v = vec![0x40 | ihl, 0];
        v.extend_from_slice(&total.to_be_bytes());
        v.extend_from_slice(&[0x12, 0x34]);
        v.extend_from_slice(&frag.to_be_bytes());
        v.extend_from_slice(&[64, proto, 0, 0]);
        v.extend_from_slice(&SRC4);
        v.extend_from_slice(&DST4);
        let sum = checksum(&v);
        v[10..12].copy_from_slice(&sum.to_be_bytes());
        v.extend_from_slice(options);
        v.extend_from_slice(body);
        v
    }

    fn checksum(data: &[u8]) -> u16 {
        let mut sum = 0u32;
        for c in data.chunks(2) {
            sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
        }
        while sum > 0xFFFF {
            sum = (sum & 0xFFFF) + (sum >> 16);
        }
        !u16::try_from(sum).unwrap()
    }

    fn udp4(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
        ipv4(17, 0, &[], &udp_header(sport, dport, payload))
    }

    /// An IPv6 packet whose first next-header is `next` and body is `body`.
    fn ipv6(next: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![0x60, 0, 0, 0];
        v.extend_from_slice(&u16::try_from(body.len()).unwrap().to_be_bytes());
        v.extend_from_slice(&[next, 64]);
        v.extend_from_slice(&SRC6);
        v.extend_from_slice(&DST6);
        v.extend_from_slice(body);
        v
    }

    fn udp6(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
        ipv6(17, &udp_header(sport, dport, payload))
    }

    fn eth(ethertype: u16, tags: &[u16], packet: &[u8]) -> Vec<u8> {
        let mut v = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
        for (i, tpid) in tags.iter().enumerate() {
            v.extend_from_slice(&tpid.to_be_bytes());
            v.extend_from_slice(&u16::try_from(100 + i).unwrap().to_be_bytes());
        }
        v.extend_from_slice(&ethertype.to_be_bytes());
        v.extend_from_slice(packet);
        v
    }

    fn sll(proto: u16, packet: &[u8]) -> Vec<u8> {
        let mut v = vec![0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0];
        v.extend_from_slice(&proto.to_be_bytes());
        v.extend_from_slice(packet);
        v
    }

    fn sll2(proto: u16, packet: &[u8]) -> Vec<u8> {
        let mut v = proto.to_be_bytes().to_vec();
        v.extend_from_slice(&[0, 0, 0, 0, 0, 3, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0]);
        v.extend_from_slice(packet);
        v
    }

    // ---------------------------------------------------------------- file builders

    struct Rec {
        sec: u32,
        frac: u32,
        data: Vec<u8>,
        origlen: u32,
    }

    fn rec(sec: u32, frac: u32, data: Vec<u8>) -> Rec {
        let origlen = u32::try_from(data.len()).unwrap();
        Rec {
            sec,
            frac,
            data,
            origlen,
        }
    }

    /// A classic pcap file.
    fn pcap(linktype: u32, nanos: bool, big_endian: bool, recs: &[Rec]) -> Vec<u8> {
        let w32 = |v: &mut Vec<u8>, x: u32| {
            v.extend_from_slice(&if big_endian {
                x.to_be_bytes()
            } else {
                x.to_le_bytes()
            });
        };
        let w16 = |v: &mut Vec<u8>, x: u16| {
            v.extend_from_slice(&if big_endian {
                x.to_be_bytes()
            } else {
                x.to_le_bytes()
            });
        };
        let mut v = Vec::new();
        w32(&mut v, if nanos { 0xA1B2_3C4D } else { 0xA1B2_C3D4 });
        w16(&mut v, 2);
        w16(&mut v, 4);
        w32(&mut v, 0);
        w32(&mut v, 0);
        w32(&mut v, 65535);
        w32(&mut v, linktype);
        for r in recs {
            w32(&mut v, r.sec);
            w32(&mut v, r.frac);
            w32(&mut v, u32::try_from(r.data.len()).unwrap());
            w32(&mut v, r.origlen);
            v.extend_from_slice(&r.data);
        }
        v
    }

    /// Builds pcapng blocks in one byte order.
    struct Ng {
        be: bool,
        out: Vec<u8>,
    }

    impl Ng {
        fn new(be: bool) -> Self {
            let mut ng = Ng {
                be,
                out: Vec::new(),
            };
            ng.shb();
            ng
        }
        fn u16(&self, x: u16) -> [u8; 2] {
            if self.be {
                x.to_be_bytes()
            } else {
                x.to_le_bytes()
            }
        }
        fn u32(&self, x: u32) -> [u8; 4] {
            if self.be {
                x.to_be_bytes()
            } else {
                x.to_le_bytes()
            }
        }
        fn block(&mut self, kind: u32, body: &[u8]) {
            let mut body = body.to_vec();
            body.resize(body.len().next_multiple_of(4), 0);
            let len = u32::try_from(body.len() + 12).unwrap();
            let (k, l) = (self.u32(kind), self.u32(len));
            self.out.extend_from_slice(&k);
            self.out.extend_from_slice(&l);
            self.out.extend_from_slice(&body);
            self.out.extend_from_slice(&l);
        }
        fn option(&self, body: &mut Vec<u8>, code: u16, value: &[u8]) {
            body.extend_from_slice(&self.u16(code));
            body.extend_from_slice(&self.u16(u16::try_from(value.len()).unwrap()));
            body.extend_from_slice(value);
            body.resize(body.len().next_multiple_of(4), 0);
        }
        fn shb(&mut self) {
            let mut body = self.u32(PCAPNG_BOM).to_vec();
            body.extend_from_slice(&self.u16(1));
            body.extend_from_slice(&self.u16(0));
            body.extend_from_slice(&[0xFF; 8]);
            self.block(PCAPNG_SHB, &body);
        }
        fn idb(&mut self, linktype: u16, snaplen: u32, tsresol: Option<u8>, tsoffset: i64) {
            let mut body = self.u16(linktype).to_vec();
            body.extend_from_slice(&self.u16(0));
            body.extend_from_slice(&self.u32(snaplen));
            if let Some(r) = tsresol {
                self.option(&mut body, 9, &[r]);
            }
            if tsoffset != 0 {
                let b = if self.be {
                    tsoffset.to_be_bytes()
                } else {
                    tsoffset.to_le_bytes()
                };
                self.option(&mut body, 14, &b);
            }
            if tsresol.is_some() || tsoffset != 0 {
                self.option(&mut body, 0, &[]);
            }
            self.block(1, &body);
        }
        fn epb(&mut self, if_id: u32, ts: u64, data: &[u8]) {
            let mut body = self.u32(if_id).to_vec();
            body.extend_from_slice(&self.u32(u32::try_from(ts >> 32).unwrap()));
            body.extend_from_slice(&self.u32(u32::try_from(ts & 0xFFFF_FFFF).unwrap()));
            let len = u32::try_from(data.len()).unwrap();
            body.extend_from_slice(&self.u32(len));
            body.extend_from_slice(&self.u32(len));
            body.extend_from_slice(data);
            self.block(6, &body);
        }
        fn spb(&mut self, data: &[u8]) {
            let mut body = self.u32(u32::try_from(data.len()).unwrap()).to_vec();
            body.extend_from_slice(data);
            self.block(3, &body);
        }
    }

    // ---------------------------------------------------------------- running

    /// An owned copy of a datagram.
    #[derive(Debug, PartialEq, Eq)]
    struct Got {
        src: SocketAddr,
        dst: SocketAddr,
        payload: Vec<u8>,
        ts: u64,
    }

    fn got(src: SocketAddr, dst: SocketAddr, payload: &[u8], ts: u64) -> Got {
        Got {
            src,
            dst,
            payload: payload.to_vec(),
            ts,
        }
    }

    fn run_reader<R: Read>(reader: R) -> Result<(Vec<Got>, CaptureStats, u64), CaptureError> {
        let mut cr = CaptureReader::new(reader)?;
        let mut out = Vec::new();
        let stats = cr.for_each_datagram(|d| {
            out.push(Got {
                src: d.src,
                dst: d.dst,
                payload: d.payload.to_vec(),
                ts: d.timestamp_us,
            });
        })?;
        assert_eq!(stats, cr.stats());
        assert_eq!(
            stats.frames,
            stats.udp + stats.non_udp + stats.truncated + stats.fragmented + stats.unsupported_link
        );
        assert_eq!(stats.udp, u64::try_from(out.len()).unwrap());
        Ok((out, stats, cr.offset()))
    }

    fn run(file: &[u8]) -> Result<(Vec<Got>, CaptureStats), CaptureError> {
        let (out, stats, offset) = run_reader(Cursor::new(file))?;
        assert_eq!(offset, u64::try_from(file.len()).unwrap());
        Ok((out, stats))
    }

    fn stats(frames: u64, udp: u64) -> CaptureStats {
        CaptureStats {
            frames,
            udp,
            ..CaptureStats::default()
        }
    }

    /// Runs a one-frame classic pcap and returns its datagrams and stats.
    fn one(linktype: u32, frame: Vec<u8>) -> (Vec<Got>, CaptureStats) {
        run(&pcap(
            linktype,
            false,
            false,
            &[rec(1_700_000_000, 123_456, frame)],
        ))
        .unwrap()
    }

    const TS: u64 = 1_700_000_000_123_456;

    fn expect4(sport: u16, dport: u16) -> Vec<Got> {
        vec![got(sa4(SRC4, sport), sa4(DST4, dport), PAYLOAD, TS)]
    }

    fn expect6(sport: u16, dport: u16) -> Vec<Got> {
        vec![got(sa6(SRC6, sport), sa6(DST6, dport), PAYLOAD, TS)]
    }

    // ---------------------------------------------------------------- link layers

    #[test]
    fn pcapng_blocks_shorter_than_their_header_are_malformed() {
        // Found by the capture fuzzer: a Process Information Block (type
        // 0x80000001) of declared length 5 made pcap-parser subtract 12.
        let mut file = Vec::new();
        // Section Header Block, little-endian, 28 bytes.
        file.extend_from_slice(&0x0A0D_0D0Au32.to_le_bytes());
        file.extend_from_slice(&28u32.to_le_bytes());
        file.extend_from_slice(&0x1A2B_3C4Du32.to_le_bytes());
        file.extend_from_slice(&[1, 0, 0, 0]);
        file.extend_from_slice(&u64::MAX.to_le_bytes());
        file.extend_from_slice(&28u32.to_le_bytes());
        for len in [0u32, 4, 5, 11] {
            let mut f = file.clone();
            f.extend_from_slice(&0x8000_0001u32.to_le_bytes());
            f.extend_from_slice(&len.to_le_bytes());
            f.extend_from_slice(&[0; 16]);
            match run(&f) {
                Err(CaptureError::Malformed { offset: 28, reason }) => {
                    assert!(reason.contains("12-byte"), "{reason}");
                }
                other => panic!("length {len}: {other:?}"),
            }
        }
    }

    #[test]
    fn ethernet_ipv4_udp() {
        let (d, s) = one(1, eth(0x0800, &[], &udp4(40000, 2055, PAYLOAD)));
        assert_eq!(d, expect4(40000, 2055));
        assert_eq!(s, stats(1, 1));
    }

    #[test]
    fn ethernet_padding_is_not_payload() {
        let mut frame = eth(0x0800, &[], &udp4(1, 2, b"ab"));
        frame.resize(60, 0xEE);
        let (d, _) = one(1, frame);
        assert_eq!(d[0].payload, b"ab");
    }

    #[test]
    fn ethernet_vlan_tags() {
        for tags in [
            &[0x8100][..],
            &[0x88A8, 0x8100],
            &[0x9100, 0x8100],
            &[0x8100, 0x8100, 0x8100],
        ] {
            let (d, s) = one(1, eth(0x0800, tags, &udp4(5, 6, PAYLOAD)));
            assert_eq!(d, expect4(5, 6), "tags {tags:x?}");
            assert_eq!(s, stats(1, 1));
        }
    }

    #[test]
    fn ethernet_ipv6_udp() {
        let (d, s) = one(1, eth(0x86DD, &[0x8100], &udp6(7, 2055, PAYLOAD)));
        assert_eq!(d, expect6(7, 2055));
        assert_eq!(s, stats(1, 1));
    }

    #[test]
    fn linux_sll() {
        let (d, _) = one(113, sll(0x0800, &udp4(1, 2, PAYLOAD)));
        assert_eq!(d, expect4(1, 2));
        let (d, _) = one(113, sll(0x86DD, &udp6(1, 2, PAYLOAD)));
        assert_eq!(d, expect6(1, 2));
    }

    #[test]
    fn linux_sll2() {
        let (d, _) = one(276, sll2(0x0800, &udp4(3, 4, PAYLOAD)));
        assert_eq!(d, expect4(3, 4));
        let (d, _) = one(276, sll2(0x86DD, &udp6(3, 4, PAYLOAD)));
        assert_eq!(d, expect6(3, 4));
    }

    #[test]
    fn bsd_null_both_byte_orders() {
        for family in [2u32.to_le_bytes(), 2u32.to_be_bytes()] {
            let mut frame = family.to_vec();
            frame.extend(udp4(9, 10, PAYLOAD));
            let (d, _) = one(0, frame);
            assert_eq!(d, expect4(9, 10));
        }
        for family in [24u32, 28, 30] {
            for bytes in [family.to_le_bytes(), family.to_be_bytes()] {
                let mut frame = bytes.to_vec();
                frame.extend(udp6(9, 10, PAYLOAD));
                let (d, _) = one(0, frame);
                assert_eq!(d, expect6(9, 10), "family {family}");
            }
        }
        // AF_UNSPEC is not IP.
        let mut frame = 0u32.to_le_bytes().to_vec();
        frame.extend(udp4(9, 10, PAYLOAD));
        let (d, s) = one(0, frame);
        assert!(d.is_empty());
        assert_eq!(s.non_udp, 1);
    }

    #[test]
    fn openbsd_loop_is_big_endian() {
        let mut frame = 2u32.to_be_bytes().to_vec();
        frame.extend(udp4(9, 10, PAYLOAD));
        assert_eq!(one(108, frame).0, expect4(9, 10));
        let mut frame = 24u32.to_be_bytes().to_vec();
        frame.extend(udp6(9, 10, PAYLOAD));
        assert_eq!(one(108, frame).0, expect6(9, 10));
    }

    #[test]
    fn raw_ip_link_types() {
        for lt in [101, 12, 14, 228] {
            let (d, s) = one(lt, udp4(11, 12, PAYLOAD));
            assert_eq!(d, expect4(11, 12), "linktype {lt}");
            assert_eq!(s, stats(1, 1));
        }
        for lt in [101, 12, 14, 229] {
            assert_eq!(one(lt, udp6(11, 12, PAYLOAD)).0, expect6(11, 12));
        }
    }

    #[test]
    fn raw_ipv6_with_hop_by_hop() {
        // Hop-by-hop (8 bytes: next = routing), routing (16 bytes: next = dst options),
        // destination options (8 bytes: next = UDP), then UDP.
        let mut body = vec![43, 0, 1, 4, 0, 0, 0, 0];
        body.extend_from_slice(&[60, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        body.extend_from_slice(&[17, 0, 1, 4, 0, 0, 0, 0]);
        body.extend(udp_header(53, 2055, PAYLOAD));
        let (d, s) = one(101, ipv6(0, &body));
        assert_eq!(d, expect6(53, 2055));
        assert_eq!(s, stats(1, 1));
        // Just hop-by-hop, on the IPv6 link type.
        let mut body = vec![17, 0, 1, 4, 0, 0, 0, 0];
        body.extend(udp_header(53, 2055, PAYLOAD));
        assert_eq!(one(229, ipv6(0, &body)).0, expect6(53, 2055));
    }

    #[test]
    fn ipv6_extension_header_limit() {
        let mut body = Vec::new();
        for _ in 0..20 {
            body.extend_from_slice(&[60, 0, 1, 4, 0, 0, 0, 0]);
        }
        body.extend(udp_header(1, 2, PAYLOAD));
        let (d, s) = one(229, ipv6(60, &body));
        assert!(d.is_empty());
        assert_eq!(s.non_udp, 1);
    }

    #[test]
    fn ipv4_options_honour_ihl() {
        let packet = ipv4(17, 0, &[1, 1, 1, 0], &udp_header(1, 2, PAYLOAD));
        assert_eq!(one(101, packet).0, expect4(1, 2));
    }

    #[test]
    fn ipv4_zero_total_length_uses_capture() {
        let mut packet = udp4(1, 2, PAYLOAD);
        packet[2..4].copy_from_slice(&[0, 0]);
        assert_eq!(one(101, packet).0, expect4(1, 2));
    }

    #[test]
    fn unsupported_link_type() {
        let (d, s) = one(105, eth(0x0800, &[], &udp4(1, 2, PAYLOAD)));
        assert!(d.is_empty());
        assert_eq!(
            s,
            CaptureStats {
                frames: 1,
                unsupported_link: 1,
                ..CaptureStats::default()
            }
        );
    }

    // ---------------------------------------------------------------- skipped packets

    #[test]
    fn tcp_and_non_ip_count_as_non_udp() {
        let tcp = ipv4(6, 0, &[], &[0; 20]);
        let arp = eth(0x0806, &[], &[0; 28]);
        let file = pcap(
            1,
            false,
            false,
            &[
                rec(1, 0, eth(0x0800, &[], &tcp)),
                rec(2, 0, arp),
                rec(3, 0, eth(0x86DD, &[], &ipv6(6, &[0; 20]))),
                rec(4, 0, eth(0x0800, &[], &udp4(1, 2, PAYLOAD))),
            ],
        );
        let (d, s) = run(&file).unwrap();
        assert_eq!(d, vec![got(sa4(SRC4, 1), sa4(DST4, 2), PAYLOAD, 4_000_000)]);
        assert_eq!(
            s,
            CaptureStats {
                frames: 4,
                udp: 1,
                non_udp: 3,
                ..CaptureStats::default()
            }
        );
    }

    #[test]
    fn truncated_udp_is_counted() {
        let full = eth(0x0800, &[], &udp4(1, 2, &[7; 100]));
        let cut = |n: usize| {
            let mut r = rec(1, 0, full[..n].to_vec());
            r.origlen = u32::try_from(full.len()).unwrap();
            r
        };
        // Inside the payload, inside the UDP header, inside the IP header, inside Ethernet.
        let file = pcap(1, false, false, &[cut(96), cut(38), cut(20), cut(10)]);
        let (d, s) = run(&file).unwrap();
        assert!(d.is_empty());
        assert_eq!(
            s,
            CaptureStats {
                frames: 4,
                truncated: 4,
                ..CaptureStats::default()
            }
        );
        // The same cut on IPv6 and in the middle of an extension header.
        let mut body = vec![17, 0, 1, 4, 0, 0, 0, 0];
        body.extend(udp_header(1, 2, &[7; 100]));
        let v6 = ipv6(0, &body);
        let file = pcap(101, false, false, &[rec(1, 0, v6[..100].to_vec())]);
        assert_eq!(run(&file).unwrap().1.truncated, 1);
        let file = pcap(101, false, false, &[rec(1, 0, v6[..44].to_vec())]);
        assert_eq!(run(&file).unwrap().1.truncated, 1);
    }

    #[test]
    fn inconsistent_lengths_are_non_udp() {
        // UDP length larger than the IP packet that is fully captured.
        let mut packet = udp4(1, 2, PAYLOAD);
        packet[24..26].copy_from_slice(&500u16.to_be_bytes());
        assert_eq!(one(101, packet).1.non_udp, 1);
        // UDP length below the header size.
        let mut packet = udp4(1, 2, PAYLOAD);
        packet[24..26].copy_from_slice(&4u16.to_be_bytes());
        assert_eq!(one(101, packet).1.non_udp, 1);
        // IPv4 total length below the header length.
        let mut packet = udp4(1, 2, PAYLOAD);
        packet[2..4].copy_from_slice(&10u16.to_be_bytes());
        assert_eq!(one(101, packet).1.non_udp, 1);
        // IHL below 5.
        let mut packet = udp4(1, 2, PAYLOAD);
        packet[0] = 0x44;
        assert_eq!(one(101, packet).1.non_udp, 1);
    }

    #[test]
    fn fragments_are_skipped() {
        let body = udp_header(1, 2, &[7; 64]);
        // First fragment (MF), middle fragment (MF + offset), last fragment (offset only).
        let first = ipv4(17, 0x2000, &[], &body[..32]);
        let middle = ipv4(17, 0x2004, &[], &body[32..48]);
        let last = ipv4(17, 0x0006, &[], &body[48..]);
        // Don't-fragment alone is a whole packet.
        let df = ipv4(17, 0x4000, &[], &udp_header(1, 2, PAYLOAD));
        // IPv6: first fragment (M), later fragment (offset), atomic fragment (whole).
        let mut f6 = vec![17, 0, 0, 1, 0, 0, 0, 1];
        f6.extend_from_slice(&body[..32]);
        let mut l6 = vec![17, 0, 0, 32, 0, 0, 0, 1];
        l6.extend_from_slice(&body[32..]);
        let mut atomic = vec![17, 0, 0, 0, 0, 0, 0, 1];
        atomic.extend(udp_header(1, 2, PAYLOAD));
        let file = pcap(
            101,
            false,
            false,
            &[
                rec(1, 0, first),
                rec(1, 0, middle),
                rec(1, 0, last),
                rec(1, 0, df),
                rec(1, 0, ipv6(44, &f6)),
                rec(1, 0, ipv6(44, &l6)),
                rec(2, 0, ipv6(44, &atomic)),
            ],
        );
        let (d, s) = run(&file).unwrap();
        assert_eq!(
            d,
            vec![
                got(sa4(SRC4, 1), sa4(DST4, 2), PAYLOAD, 1_000_000),
                got(sa6(SRC6, 1), sa6(DST6, 2), PAYLOAD, 2_000_000),
            ]
        );
        assert_eq!(
            s,
            CaptureStats {
                frames: 7,
                udp: 2,
                fragmented: 5,
                ..CaptureStats::default()
            }
        );
    }

    // ---------------------------------------------------------------- file formats

    #[test]
    fn big_endian_and_nanosecond_pcap() {
        for (nanos, be) in [(false, true), (true, false), (true, true)] {
            let frac = if nanos { 123_456_789 } else { 123_456 };
            let file = pcap(
                1,
                nanos,
                be,
                &[rec(
                    1_700_000_000,
                    frac,
                    eth(0x0800, &[], &udp4(1, 2, PAYLOAD)),
                )],
            );
            let (d, s) = run(&file).unwrap();
            assert_eq!(d, expect4(1, 2), "nanos {nanos} be {be}");
            assert_eq!(s, stats(1, 1));
        }
    }

    #[test]
    fn modified_pcap_format() {
        let mut file = pcap(101, false, false, &[]);
        file[..4].copy_from_slice(&0xA1B2_CD34u32.to_le_bytes());
        let frame = udp4(1, 2, PAYLOAD);
        for x in [1_700_000_000u32, 123_456, 0, 0] {
            file.extend_from_slice(&x.to_le_bytes());
        }
        file[24 + 8..24 + 12].copy_from_slice(&u32::try_from(frame.len()).unwrap().to_le_bytes());
        file.extend_from_slice(&[0; 8]); // ifindex, protocol, pkt_type, padding
        file.extend_from_slice(&frame);
        assert_eq!(run(&file).unwrap().0, expect4(1, 2));
    }

    fn two_interface_pcapng(be: bool) -> Vec<u8> {
        let mut ng = Ng::new(be);
        ng.idb(1, 0, None, 0); // Ethernet, microseconds
        ng.idb(101, 0, Some(9), 0); // raw IP, nanoseconds
        ng.epb(0, TS, &eth(0x0800, &[0x8100], &udp4(1, 2, PAYLOAD)));
        ng.epb(1, TS * 1000 + 789, &udp6(3, 4, PAYLOAD));
        ng.spb(&eth(0x0800, &[], &udp4(5, 6, b"spb")));
        ng.block(0x0000_0BAD, &[0; 8]); // custom block: ignored
        ng.epb(1, 5_000_000_000, &ipv4(6, 0, &[], &[0; 20]));
        ng.out
    }

    #[test]
    fn pcapng_two_interfaces() {
        for be in [false, true] {
            let file = two_interface_pcapng(be);
            let (d, s) = run(&file).unwrap();
            assert_eq!(
                d,
                vec![
                    got(sa4(SRC4, 1), sa4(DST4, 2), PAYLOAD, TS),
                    got(sa6(SRC6, 3), sa6(DST6, 4), PAYLOAD, TS),
                    got(sa4(SRC4, 5), sa4(DST4, 6), b"spb", 0),
                ],
                "big endian {be}"
            );
            assert_eq!(
                s,
                CaptureStats {
                    frames: 4,
                    udp: 3,
                    non_udp: 1,
                    ..CaptureStats::default()
                }
            );
        }
    }

    #[test]
    fn pcapng_timestamp_options_and_sections() {
        for be in [false, true] {
            let mut ng = Ng::new(be);
            // Binary resolution 2^-10 s and an offset of 1000 s.
            ng.idb(101, 0, Some(0x80 | 10), 1000);
            ng.epb(0, 3 * 1024 + 512, &udp4(1, 2, PAYLOAD));
            // A new section (in the other byte order) resets the interfaces.
            let mut other = Ng::new(!be);
            other.idb(228, 0, Some(3), 0); // milliseconds
            other.epb(0, 1_500, &udp4(3, 4, PAYLOAD));
            ng.out.extend(other.out);
            let (d, _) = run(&ng.out).unwrap();
            assert_eq!(
                d,
                vec![
                    got(sa4(SRC4, 1), sa4(DST4, 2), PAYLOAD, 1_003_500_000),
                    got(sa4(SRC4, 3), sa4(DST4, 4), PAYLOAD, 1_500_000),
                ]
            );
        }
    }

    #[test]
    fn pcapng_spb_honours_snaplen() {
        let mut ng = Ng::new(false);
        ng.idb(101, 30, None, 0);
        // Origlen 37, but only 30 bytes kept (plus padding).
        let packet = udp4(1, 2, PAYLOAD);
        let mut body = ng.u32(u32::try_from(packet.len()).unwrap()).to_vec();
        body.extend_from_slice(&packet[..30]);
        body.extend_from_slice(&[0xEE, 0xEE]);
        ng.block(3, &body);
        let (d, s) = run(&ng.out).unwrap();
        assert!(d.is_empty());
        assert_eq!(s.truncated, 1);
    }

    #[test]
    fn pcapng_undeclared_interface_is_an_error() {
        let mut ng = Ng::new(false);
        ng.idb(1, 0, None, 0);
        let epb_at = u64::try_from(ng.out.len()).unwrap();
        ng.epb(1, 0, &udp4(1, 2, PAYLOAD));
        let err = run(&ng.out).unwrap_err();
        assert!(
            matches!(err, CaptureError::Malformed { offset, .. } if offset == epb_at),
            "{err:?}"
        );
        let mut ng = Ng::new(false);
        ng.spb(&udp4(1, 2, PAYLOAD));
        assert!(matches!(
            run(&ng.out).unwrap_err(),
            CaptureError::Malformed { offset: 28, .. }
        ));
    }

    #[test]
    fn pcapng_bad_block_is_an_error() {
        let mut file = two_interface_pcapng(false);
        // EPB caplen larger than the block.
        let epb_at = 28 + 20 + 32;
        file[epb_at + 20..epb_at + 24].copy_from_slice(&1000u32.to_le_bytes());
        let err = run(&file).unwrap_err();
        assert!(
            matches!(err, CaptureError::Malformed { offset, .. } if offset == 80),
            "{err:?}"
        );
        // Trailing block length that does not match.
        let mut file = two_interface_pcapng(false);
        let end = file.len();
        file[end - 4] ^= 4;
        assert!(matches!(run(&file), Err(CaptureError::Malformed { .. })));
    }

    // ---------------------------------------------------------------- bad input

    #[test]
    fn empty_and_garbage_files() {
        assert!(matches!(
            run(&[]),
            Err(CaptureError::NotACapture { offset: 0 })
        ));
        assert!(matches!(
            run(b"\xd4\xc3"),
            Err(CaptureError::NotACapture { offset: 0 })
        ));
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let garbage: Vec<u8> = (0..5000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x.to_le_bytes()[0]
            })
            .collect();
        assert!(matches!(
            run(&garbage),
            Err(CaptureError::NotACapture { offset: 0 })
        ));
        // A bare magic number, and a pcapng SHB cut short.
        assert!(matches!(
            run(&0xA1B2_C3D4u32.to_le_bytes()),
            Err(CaptureError::Truncated { offset: 0 })
        ));
        let ng = Ng::new(false).out;
        assert!(matches!(
            run(&ng[..20]),
            Err(CaptureError::Truncated { offset: 0 })
        ));
        // pcapng magic with a bad byte-order magic.
        let mut bad = ng.clone();
        bad[8] = 0;
        assert!(matches!(
            run(&bad),
            Err(CaptureError::NotACapture { offset: 0 })
        ));
    }

    #[test]
    fn header_only_files_are_empty_captures() {
        assert_eq!(run(&pcap(1, false, false, &[])).unwrap().1, stats(0, 0));
        assert_eq!(run(&Ng::new(true).out).unwrap().1, stats(0, 0));
    }

    /// A record cut in the middle is an error that names the offset of that record,
    /// after the complete records before it have been delivered.
    #[test]
    fn record_cut_in_the_middle() {
        let r = |port| rec(1, 0, eth(0x0800, &[], &udp4(1, port, PAYLOAD)));
        let file = pcap(1, false, false, &[r(2), r(3)]);
        let second = 24 + 16 + r(2).data.len();
        for cut in [second + 5, second + 20, file.len() - 1] {
            let mut cr = CaptureReader::new(Cursor::new(&file[..cut])).unwrap();
            let mut ports = Vec::new();
            let err = cr
                .for_each_datagram(|d| ports.push(d.dst.port()))
                .unwrap_err();
            assert_eq!(ports, [2]);
            assert!(
                matches!(err, CaptureError::Truncated { offset } if offset == u64::try_from(second).unwrap()),
                "{err:?}"
            );
            assert_eq!(cr.stats(), stats(1, 1));
            assert!(err.to_string().contains(&second.to_string()));
        }
        // Same for pcapng.
        let file = two_interface_pcapng(false);
        let err = run(&file[..file.len() - 10]).unwrap_err();
        assert!(matches!(err, CaptureError::Truncated { offset } if offset > 28));
    }

    #[test]
    fn oversized_blocks() {
        // A record larger than the initial buffer grows it.
        let mut big = eth(0x0800, &[], &udp4(1, 2, PAYLOAD));
        big.resize(3 * INITIAL_BUFFER, 0xAB);
        let file = pcap(
            1,
            false,
            false,
            &[
                rec(1, 0, big),
                rec(1, 0, eth(0x0800, &[], &udp4(1, 3, PAYLOAD))),
            ],
        );
        let (d, s) = run(&file).unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(s, stats(2, 2));
        // Same in pcapng, and through a reader that returns one byte at a time.
        let mut ng = Ng::new(false);
        ng.idb(1, 0, None, 0);
        let mut big = eth(0x0800, &[], &udp4(1, 2, PAYLOAD));
        big.resize(INITIAL_BUFFER + 7, 0xAB);
        ng.epb(0, 0, &big);
        ng.epb(0, 0, &eth(0x0800, &[], &udp4(1, 3, PAYLOAD)));
        let (d, _, offset) = run_reader(Trickle(Cursor::new(&ng.out))).unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(offset, u64::try_from(ng.out.len()).unwrap());
        // Over the hard limit: an error naming the record and its length.
        let mut file = pcap(1, false, false, &[rec(1, 0, vec![0; 64])]);
        file[32..36].copy_from_slice(&0x7FFF_FFF0u32.to_le_bytes());
        let err = run(&file).unwrap_err();
        assert!(
            matches!(
                err,
                CaptureError::BlockTooLarge {
                    offset: 24,
                    len: 0x8000_0000
                }
            ),
            "{err:?}"
        );
        let mut file = two_interface_pcapng(false);
        file[52..56].copy_from_slice(&(20u32 << 20).to_le_bytes());
        assert!(matches!(
            run(&file),
            Err(CaptureError::BlockTooLarge { offset: 48, .. })
        ));
    }

    #[test]
    fn large_section_header() {
        for be in [false, true] {
            let mut ng = Ng {
                be,
                out: Vec::new(),
            };
            let mut body = ng.u32(PCAPNG_BOM).to_vec();
            body.extend_from_slice(&ng.u16(1));
            body.extend_from_slice(&ng.u16(0));
            body.extend_from_slice(&[0xFF; 8]);
            for _ in 0..10 {
                ng.option(&mut body, 1, &[b'x'; 40_000]);
            }
            ng.option(&mut body, 0, &[]);
            ng.block(PCAPNG_SHB, &body);
            ng.idb(1, 0, None, 0);
            ng.epb(0, TS, &eth(0x0800, &[], &udp4(1, 2, PAYLOAD)));
            assert_eq!(run(&ng.out).unwrap().0, expect4(1, 2));
            // A section header claiming more than the limit.
            let len = if be {
                0x0200_0000u32.to_be_bytes()
            } else {
                0x0200_0000u32.to_le_bytes()
            };
            ng.out[4..8].copy_from_slice(&len);
            assert!(matches!(
                run(&ng.out),
                Err(CaptureError::BlockTooLarge {
                    offset: 0,
                    len: 0x0200_0000
                })
            ));
        }
    }

    #[test]
    fn reader_is_send() {
        fn assert_send<T: Send>() {}
        assert_send::<CaptureReader<BufReader<File>>>();
        assert_send::<CaptureError>();
    }

    /// Returns at most one byte per read, and sometimes `Interrupted`.
    struct Trickle<R>(R);

    impl<R: Read> Read for Trickle<R> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            thread_local!(static N: std::cell::Cell<u32> = const { std::cell::Cell::new(0) });
            if N.with(|n| {
                n.set(n.get().wrapping_add(1));
                n.get() % 7 == 0
            }) {
                return Err(io::ErrorKind::Interrupted.into());
            }
            let len = buf.len().min(1);
            self.0.read(&mut buf[..len])
        }
    }

    /// Fails after `ok` bytes.
    struct Failing<'a> {
        data: &'a [u8],
        ok: usize,
    }

    impl Read for Failing<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.ok == 0 {
                return Err(io::Error::new(io::ErrorKind::BrokenPipe, "boom"));
            }
            let n = buf.len().min(self.ok).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            self.ok -= n;
            Ok(n)
        }
    }

    #[test]
    fn slow_reader_gives_same_result() {
        let file = two_interface_pcapng(true);
        let (d, s, offset) = run_reader(Trickle(Cursor::new(&file))).unwrap();
        assert_eq!((d, s), run(&file).unwrap());
        assert_eq!(offset, u64::try_from(file.len()).unwrap());
        let file = pcap(
            1,
            true,
            true,
            &[rec(1, 0, eth(0x0800, &[], &udp4(1, 2, PAYLOAD)))],
        );
        assert_eq!(run_reader(Trickle(Cursor::new(&file))).unwrap().0.len(), 1);
    }

    #[test]
    fn io_errors_are_reported() {
        let file = pcap(
            1,
            false,
            false,
            &[rec(1, 0, eth(0x0800, &[], &udp4(1, 2, PAYLOAD)))],
        );
        for ok in [0, 3, 30, file.len() - 1] {
            let err = run_reader(Failing { data: &file, ok }).unwrap_err();
            match err {
                CaptureError::Io { source, .. } => {
                    assert_eq!(source.kind(), io::ErrorKind::BrokenPipe, "ok {ok}");
                    assert_eq!(source.to_string(), "boom");
                }
                other => panic!("ok {ok}: {other:?}"),
            }
        }
        let err = open(Path::new("/nonexistent/capture.pcap")).err().unwrap();
        assert!(matches!(err, CaptureError::Io { offset: 0, .. }));
    }

    #[test]
    fn after_the_end_nothing_more() {
        let file = pcap(
            1,
            false,
            false,
            &[rec(1, 0, eth(0x0800, &[], &udp4(1, 2, PAYLOAD)))],
        );
        let mut cr = CaptureReader::new(Cursor::new(file)).unwrap();
        let mut n = 0;
        assert_eq!(cr.for_each_datagram(|_| n += 1).unwrap(), stats(1, 1));
        assert_eq!(cr.for_each_datagram(|_| n += 1).unwrap(), stats(1, 1));
        assert_eq!(n, 1);
    }

    /// Stopping reads no further; calling again goes on where it stopped.
    #[test]
    fn stopping_early_reads_no_further() {
        let three: Vec<_> = (1..=3)
            .map(|i| rec(i, 0, eth(0x0800, &[], &udp4(1, 2, PAYLOAD))))
            .collect();
        let mut cr = CaptureReader::new(Cursor::new(pcap(1, false, false, &three))).unwrap();
        let mut n = 0;
        let first = cr
            .for_each_datagram_while(|_| {
                n += 1;
                false
            })
            .unwrap();
        assert_eq!((n, first.udp), (1, 1));
        assert_eq!(cr.for_each_datagram(|_| n += 1).unwrap(), stats(3, 3));
        assert_eq!(n, 3);
    }

    /// Mutated and cut captures give results or errors, never panics or hangs.
    #[test]
    fn mutations_never_panic() {
        let mut seeds = vec![
            two_interface_pcapng(false),
            two_interface_pcapng(true),
            pcap(
                1,
                false,
                false,
                &[
                    rec(1, 0, eth(0x0800, &[0x8100], &udp4(1, 2, PAYLOAD))),
                    rec(1, 0, eth(0x86DD, &[], &ipv6(0, &[17, 0, 1, 4, 0, 0, 0, 0]))),
                ],
            ),
        ];
        for lt in [0, 108, 113, 276, 101] {
            seeds.push(pcap(lt, false, true, &[rec(1, 0, vec![0x45; 40])]));
        }
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for seed in &seeds {
            for _ in 0..200 {
                let mut file = seed.clone();
                for _ in 0..1 + rnd() % 4 {
                    let i = usize::try_from(rnd()).unwrap() % file.len();
                    file[i] = rnd().to_le_bytes()[0];
                }
                if rnd() % 4 == 0 {
                    file.truncate(usize::try_from(rnd()).unwrap() % file.len());
                }
                if let Ok(mut cr) = CaptureReader::new(Cursor::new(&file)) {
                    let _ = cr.for_each_datagram(|d| assert!(d.payload.len() < file.len()));
                    assert!(cr.offset() <= u64::try_from(file.len()).unwrap());
                }
            }
        }
    }

    // ---------------------------------------------------------------- real captures

    fn data_dir() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../netflow9/tests/data")
    }

    /// Datagrams of a real capture: (destination, first two payload bytes) of each.
    fn real(rel: &str) -> (Vec<(SocketAddr, [u8; 2])>, CaptureStats) {
        let path = data_dir().join(rel);
        let mut cr = open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut out = Vec::new();
        let stats = cr
            .for_each_datagram(|d| {
                let head = d.payload.first_chunk::<2>().copied().unwrap_or_default();
                out.push((d.dst, head));
                assert!(d.timestamp_us > 1_000_000_000_000_000, "{}", d.timestamp_us);
            })
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let len = std::fs::metadata(&path).unwrap().len();
        assert_eq!(cr.offset(), len, "{rel}");
        println!("{rel}: {stats:?}");
        (out, stats)
    }

    fn assert_export(rel: &str, dst: &str, count: usize) {
        let dst: SocketAddr = dst.parse().unwrap();
        let (out, stats) = real(rel);
        let to_dst = out.iter().filter(|(d, _)| *d == dst).count();
        println!("{rel}: {to_dst} datagrams to {dst} of {}", out.len());
        assert_eq!(to_dst, count, "{rel}");
        assert_eq!(out.len(), count, "{rel}: other datagrams present");
        assert!(
            out.iter().all(|(_, h)| *h == [0, 9]),
            "{rel}: not NetFlow v9"
        );
        assert_eq!(stats, stats_of(count), "{rel}");
    }

    fn stats_of(n: usize) -> CaptureStats {
        let n = u64::try_from(n).unwrap();
        stats(n, n)
    }

    #[test]
    fn real_softflowd_v9() {
        assert_export("exports/softflowd-v9.pcap", "127.0.0.1:29901", 71);
    }

    #[test]
    fn real_softflowd_v9_ipv6() {
        assert_export("exports/softflowd-v9-ether-ipv6.pcap", "[::1]:29902", 104);
    }

    #[test]
    fn real_pmacct_v9() {
        // pmacct exported to port 29903 (not 29901): every datagram in the file.
        assert_export("exports/pmacct-v9.pcap", "127.0.0.1:29903", 294);
    }

    #[test]
    fn real_nfreplay_v9() {
        // nfreplay exported to port 29904: every datagram in the file.
        assert_export("exports/nfreplay-v9.pcap", "127.0.0.1:29904", 114);
    }

    #[test]
    fn real_logstash_cases() {
        let dir = data_dir().join("logstash/cases");
        let dst: SocketAddr = "127.0.0.1:2055".parse().unwrap();
        let mut files = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "pcap") {
                continue;
            }
            let rel = format!(
                "logstash/cases/{}",
                path.file_name().unwrap().to_string_lossy()
            );
            let (out, _) = real(&rel);
            assert!(
                out.iter().any(|(d, _)| *d == dst),
                "{rel}: nothing to {dst}"
            );
            files += 1;
        }
        assert!(files >= 30, "only {files} logstash captures found");
    }
}
