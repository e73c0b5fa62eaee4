//! `flowerd replay`: sends the NetFlow v9 payloads of capture files to a
//! collector, in file order, at a chosen rate.
//!
//! The files are read once, up front, into one buffer ([`Payloads`], at most
//! [`MAX_PAYLOAD_BYTES`]), so `--loop N` costs nothing but the sending.
//!
//! A collector tells exporters apart by their source address, and so do
//! templates: two exporters of one capture that use the same Source ID and
//! template IDs would overwrite each other's templates if they arrived from
//! one address. So each exporter of the captures (each source address) gets
//! its own socket, and towards an IPv4 loopback collector its own source
//! address: the first exporter sends from 127.0.0.1, the second from
//! 127.0.0.2, and so on (up to [`MAX_EXPORTERS`]). Towards any other
//! address all exporters share this host's address, which `replay` warns
//! about when the captures hold more than one. Replaying in a loop repeats
//! the sequence numbers (the collector counts them as sequence anomalies).

use std::io::{self, IsTerminal};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{anyhow, bail};

use crate::capture;
use crate::cli::ReplayArgs;

use super::send::{connect, connect_from, resolve, send, stop_flag, Pacer, Progress};

/// Most payload bytes `replay` keeps in memory (all files together, with
/// its bookkeeping per datagram).
pub(crate) const MAX_PAYLOAD_BYTES: usize = 1 << 30;

/// Most exporters (source addresses) replay keeps apart; the datagrams of
/// any more are sent from the last one's socket.
pub(crate) const MAX_EXPORTERS: usize = 256;

/// The largest UDP payload of an IPv4 datagram: larger payloads (jumbograms,
/// offload artefacts in captures) cannot be sent and are skipped.
const MAX_UDP_PAYLOAD: usize = 65_507;

/// Memory per datagram besides its payload (its end offset and exporter).
const PER_DATAGRAM: usize = size_of::<usize>() + size_of::<u16>();

/// Runs `flowerd replay`.
pub(crate) fn run(args: &ReplayArgs) -> anyhow::Result<ExitCode> {
    let dest = resolve(&args.to)?;
    let payloads = Payloads::load(&args.files, MAX_PAYLOAD_BYTES)?;
    for problem in &payloads.damaged {
        eprintln!("flowerd replay: warning: {problem}; the datagrams before it are sent");
    }
    if payloads.oversized > 0 {
        eprintln!(
            "flowerd replay: warning: {} NetFlow payloads larger than {MAX_UDP_PAYLOAD} bytes \
             (the most a UDP datagram holds) are skipped",
            payloads.oversized
        );
    }
    if payloads.is_empty() {
        bail!(
            "no NetFlow v9 datagrams in {} ({} other UDP datagrams)",
            args.files
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            payloads.skipped
        );
    }
    let sockets = sockets_for(dest, payloads.exporters.len())?;
    let stop = stop_flag()?;
    let report = send_all(&sockets, &payloads, args.rate, args.loops, &stop)?;
    println!("{}", report.summary_line(dest));
    if payloads.damaged.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::FAILURE)
    }
}

/// One socket per exporter (up to [`MAX_EXPORTERS`]), each from its own
/// loopback address when `dest` is IPv4 loopback; else one socket.
fn sockets_for(dest: SocketAddr, exporters: usize) -> anyhow::Result<Vec<UdpSocket>> {
    let loopback4 = matches!(dest.ip(), IpAddr::V4(a) if a.is_loopback());
    if exporters <= 1 || !loopback4 {
        if exporters > 1 {
            eprintln!(
                "flowerd replay: warning: the captures hold {exporters} exporters; towards {dest} \
                 they all send from this host's address, so the collector sees one exporter \
                 and templates of the same ID overwrite each other. Replay to 127.0.0.1 to keep \
                 them apart (each then sends from its own 127.0.0.x address)."
            );
        }
        return Ok(vec![connect(dest)?]);
    }
    if exporters > MAX_EXPORTERS {
        eprintln!(
            "flowerd replay: warning: the captures hold {exporters} exporters; the first \
             {} get their own address, the others share the last one",
            MAX_EXPORTERS - 1
        );
    }
    (0..exporters.min(MAX_EXPORTERS))
        .map(|k| {
            // 127.0.0.1, 127.0.0.2, ...: all loopback, all local on Linux.
            let local = Ipv4Addr::from(u32::from(Ipv4Addr::LOCALHOST) + k as u32);
            connect_from(local.into(), dest)
        })
        .collect()
}

/// The NetFlow v9 payloads of a set of captures, back to back in one buffer.
#[derive(Debug, Default)]
pub(crate) struct Payloads {
    /// All payloads, concatenated.
    data: Vec<u8>,
    /// End of each payload in `data`.
    ends: Vec<usize>,
    /// Index in `exporters` of each payload's sender.
    senders: Vec<u16>,
    /// The source addresses of the captures' exporters, in order of first
    /// appearance (at most [`MAX_EXPORTERS`] kept apart).
    pub(crate) exporters: Vec<IpAddr>,
    /// UDP datagrams that were not NetFlow v9 (not sent).
    pub(crate) skipped: u64,
    /// NetFlow payloads too large for a UDP datagram (not sent).
    pub(crate) oversized: u64,
    /// Files that could not be read to their end: what went wrong, where.
    pub(crate) damaged: Vec<String>,
}

/// True if a UDP payload looks like NetFlow v9 (version field 9).
fn is_v9(payload: &[u8]) -> bool {
    payload.get(..2) == Some(&[0, 9])
}

impl Payloads {
    /// Reads every UDP payload starting with version 9 from `files`, in
    /// order. Errors name the file; more than `cap` bytes of payloads in all
    /// is an error too, rather than a machine out of memory.
    pub(crate) fn load(files: &[impl AsRef<Path>], cap: usize) -> anyhow::Result<Payloads> {
        let mut out = Payloads::default();
        for path in files {
            let path = path.as_ref();
            let mut reader = capture::open(path).map_err(|e| {
                let hint = if matches!(e, capture::CaptureError::NotACapture { .. }) {
                    " (replay reads pcap and pcapng capture files)"
                } else {
                    ""
                };
                anyhow!("{}: {e}{hint}", path.display())
            })?;
            let mut over = false;
            let mut progress = Progress::new(io::stderr().is_terminal());
            let read = reader.for_each_datagram_while(|d| {
                if !is_v9(d.payload) {
                    out.skipped += 1;
                    return true;
                }
                if d.payload.len() > MAX_UDP_PAYLOAD {
                    out.oversized += 1;
                    return true;
                }
                let used = out.data.len() + out.ends.len() * PER_DATAGRAM;
                if used + d.payload.len() + PER_DATAGRAM > cap {
                    over = true;
                    return false;
                }
                out.data.extend_from_slice(d.payload);
                out.ends.push(out.data.len());
                let sender = d.src.ip();
                let k = match out.exporters.iter().position(|e| *e == sender) {
                    Some(k) => k,
                    None if out.exporters.len() < MAX_EXPORTERS => {
                        out.exporters.push(sender);
                        out.exporters.len() - 1
                    }
                    None => MAX_EXPORTERS - 1,
                };
                out.senders.push(k as u16);
                progress
                    .tick(|_| format!("loading {}: {} datagrams", path.display(), out.ends.len()));
                true
            });
            progress.clear();
            if let Err(e) = read {
                out.damaged.push(format!("{}: {e}", path.display()));
            }
            if over {
                bail!(
                    "{}: the NetFlow payloads of the captures exceed {} MiB, the most replay \
                     holds in memory; replay fewer or smaller files at a time",
                    path.display(),
                    cap >> 20
                );
            }
        }
        Ok(out)
    }

    /// True when there is nothing to send.
    pub(crate) fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The payloads, in order.
    #[cfg(test)]
    pub(crate) fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.iter_with_senders().map(|(_, p)| p)
    }

    /// The payloads, in order, each with its exporter's index in
    /// [`Payloads::exporters`].
    pub(crate) fn iter_with_senders(&self) -> impl Iterator<Item = (usize, &[u8])> + '_ {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(self.ends.iter().copied())
            .zip(self.senders.iter())
            .map(|((s, e), k)| (usize::from(*k), self.data.get(s..e).unwrap_or_default()))
    }
}

/// What a replay did.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub(crate) struct ReplayReport {
    /// Datagrams sent.
    pub(crate) datagrams: u64,
    /// Their payload bytes.
    pub(crate) bytes: u64,
    /// Datagrams refused (ICMP port unreachable: nothing listening).
    pub(crate) refused: u64,
    /// Complete passes over the files.
    pub(crate) loops: u64,
    /// Wall time.
    pub(crate) elapsed: Duration,
}

impl ReplayReport {
    /// The one summary line `replay` prints.
    pub(crate) fn summary_line(&self, dest: SocketAddr) -> String {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        let mut s = format!(
            "flowerd replay: to={dest} datagrams={} bytes={} loops={} elapsed={:.3}s \
             datagrams_per_sec={:.0} mbit_per_sec={:.1}",
            self.datagrams,
            self.bytes,
            self.loops,
            self.elapsed.as_secs_f64(),
            self.datagrams as f64 / secs,
            self.bytes as f64 * 8.0 / secs / 1e6,
        );
        if self.refused > 0 {
            s.push_str(&format!(
                " refused={} (is a collector listening?)",
                self.refused
            ));
        }
        s
    }
}

/// Sends `payloads` `loops` times at `rate` datagrams per second (0: as
/// fast as possible), until done or `stop` is set: each through the socket
/// of its exporter in `sockets` (the last one for exporters beyond them).
pub(crate) fn send_all(
    sockets: &[UdpSocket],
    payloads: &Payloads,
    rate: u64,
    loops: u64,
    stop: &AtomicBool,
) -> anyhow::Result<ReplayReport> {
    let mut report = ReplayReport::default();
    let Some(last) = sockets.last() else {
        bail!("no socket to send from");
    };
    let mut pacer = Pacer::new(rate);
    let mut progress = Progress::new(io::stderr().is_terminal());
    'all: for _ in 0..loops {
        for (k, p) in payloads.iter_with_senders() {
            if !pacer.wait(1, None, stop) {
                break 'all;
            }
            if send(sockets.get(k).unwrap_or(last), p)? {
                report.datagrams += 1;
                report.bytes += p.len() as u64;
            } else {
                report.refused += 1;
            }
            progress.tick(|elapsed| {
                format!(
                    "{} datagrams  {:.0}/s  {:.1} s",
                    report.datagrams,
                    report.datagrams as f64 / elapsed.as_secs_f64().max(1e-9),
                    elapsed.as_secs_f64()
                )
            });
        }
        report.loops += 1;
    }
    progress.clear();
    report.elapsed = pacer.elapsed();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn data(rel: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../netflow9/tests/data")
            .join(rel)
    }

    #[test]
    fn loads_the_netflow_payloads() {
        let files = [data("exports/softflowd-v9.pcap")];
        let p = Payloads::load(&files, MAX_PAYLOAD_BYTES).unwrap();
        assert_eq!(p.ends.len(), 71);
        assert_eq!(p.skipped, 0);
        assert!(p.iter().all(is_v9));
        assert_eq!(p.iter().count(), 71);
        assert_eq!(p.iter().map(<[u8]>::len).sum::<usize>(), p.data.len());
        // Two files, in order.
        let two = [
            data("exports/softflowd-v9.pcap"),
            data("exports/softflowd-v9-ether-ipv6.pcap"),
        ];
        let q = Payloads::load(&two, MAX_PAYLOAD_BYTES).unwrap();
        assert_eq!(q.ends.len(), 71 + 104);
        assert!(q.iter().take(71).eq(p.iter()));
    }

    #[test]
    fn errors_name_the_file() {
        let missing = data("exports/no-such-file.pcap");
        let e = Payloads::load(&[&missing], MAX_PAYLOAD_BYTES).unwrap_err();
        assert!(format!("{e:#}").contains("no-such-file.pcap"), "{e:#}");
        let not_a_capture = data("exports/softflowd-v9.truth.json");
        let e = Payloads::load(&[&not_a_capture], MAX_PAYLOAD_BYTES).unwrap_err();
        let msg = format!("{e:#}");
        assert!(
            msg.contains("softflowd-v9.truth.json") && msg.contains("not a pcap"),
            "{msg}"
        );
        let big = data("exports/softflowd-v9.pcap");
        let e = Payloads::load(&[&big], 10_000).unwrap_err();
        assert!(
            format!("{e:#}").contains("softflowd-v9.pcap: the NetFlow payloads"),
            "{e:#}"
        );
    }

    /// Replays the capture to a local socket and checks what arrives.
    fn replay_to(local: &str) {
        let Ok(rx) = UdpSocket::bind(local) else {
            eprintln!("{local} unavailable here: skipped");
            return;
        };
        rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let to = rx.local_addr().unwrap();
        let payloads =
            Payloads::load(&[data("exports/softflowd-v9.pcap")], MAX_PAYLOAD_BYTES).unwrap();
        let tx = connect(to).unwrap();
        let from = tx.local_addr().unwrap();
        // Receive while sending: the default receive buffer is small.
        let receiver = std::thread::spawn(move || {
            let mut buf = [0u8; 65_536];
            let mut got = Vec::new();
            while got.len() < 142 {
                let (n, src) = rx.recv_from(&mut buf).unwrap();
                assert_eq!(src, from);
                got.push(buf[..n].to_vec());
            }
            got
        });
        let stop = AtomicBool::new(false);
        let r = send_all(std::slice::from_ref(&tx), &payloads, 20_000, 2, &stop).unwrap();
        assert_eq!((r.datagrams, r.loops, r.refused), (142, 2, 0));
        assert_eq!(r.bytes, 2 * payloads.data.len() as u64);
        // 142 datagrams at 20 000/s: at least 7 ms.
        assert!(r.elapsed >= Duration::from_micros(7_000), "{:?}", r.elapsed);
        let got = receiver.join().unwrap();
        assert!(got
            .iter()
            .map(Vec::as_slice)
            .eq(payloads.iter().chain(payloads.iter())));
        let line = r.summary_line(to);
        assert!(line.contains(" datagrams=142 "), "{line}");
    }

    #[test]
    fn replays_over_ipv4() {
        replay_to("127.0.0.1:0");
    }

    #[test]
    fn replays_over_ipv6() {
        replay_to("[::1]:0");
    }

    /// A classic pcap (raw IPv4 link type) of UDP datagrams
    /// `(source address, payload)`; `total_length_0` leaves the IPv4 total
    /// length 0, as segmentation offload does in captures.
    fn raw_ipv4_pcap(datagrams: &[([u8; 4], Vec<u8>, bool)]) -> Vec<u8> {
        let mut f = Vec::new();
        for v in [
            0xa1b2_c3d4u32.to_le_bytes().as_slice(),
            &2u16.to_le_bytes(),
            &4u16.to_le_bytes(),
        ] {
            f.extend_from_slice(v);
        }
        f.extend_from_slice(&[0; 8]);
        f.extend_from_slice(&262_144u32.to_le_bytes());
        f.extend_from_slice(&101u32.to_le_bytes()); // LINKTYPE_RAW
        for (src, payload, total_length_0) in datagrams {
            let udp_len = 8 + payload.len();
            let total = if *total_length_0 { 0 } else { 20 + udp_len };
            let mut pkt = vec![0x45, 0];
            pkt.extend_from_slice(&(total as u16).to_be_bytes());
            pkt.extend_from_slice(&[0, 0, 0, 0, 64, 17, 0, 0]);
            pkt.extend_from_slice(src);
            pkt.extend_from_slice(&[127, 0, 0, 1]);
            pkt.extend_from_slice(&2055u16.to_be_bytes());
            pkt.extend_from_slice(&9995u16.to_be_bytes());
            pkt.extend_from_slice(&(udp_len as u16).to_be_bytes());
            pkt.extend_from_slice(&[0, 0]);
            pkt.extend_from_slice(payload);
            f.extend_from_slice(&[0; 8]);
            f.extend_from_slice(&(pkt.len() as u32).to_le_bytes());
            f.extend_from_slice(&(pkt.len() as u32).to_le_bytes());
            f.extend_from_slice(&pkt);
        }
        f
    }

    /// Two exporters in one capture reach an IPv4 loopback collector from
    /// two addresses (their templates would collide from one); payloads
    /// too large for UDP are skipped; a file cut short keeps what came
    /// before the cut.
    #[test]
    fn exporters_keep_their_own_addresses() {
        let v9 = |tag: u8, len: usize| {
            let mut p = vec![0, 9];
            p.resize(len, tag);
            p
        };
        let file = raw_ipv4_pcap(&[
            ([192, 0, 2, 1], v9(1, 40), false),
            ([192, 0, 2, 2], v9(2, 40), false),
            ([192, 0, 2, 1], v9(3, 40), false),
            ([192, 0, 2, 3], v9(4, 65_520), true),
            ([192, 0, 2, 2], v9(5, 40), false),
        ]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("two.pcap");
        std::fs::write(&path, &file).unwrap();
        let p = Payloads::load(&[&path], MAX_PAYLOAD_BYTES).unwrap();
        assert_eq!(
            p.exporters,
            [IpAddr::from([192, 0, 2, 1]), [192, 0, 2, 2].into()]
        );
        assert_eq!((p.ends.len(), p.oversized), (4, 1));
        assert!(p.damaged.is_empty());

        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let to = rx.local_addr().unwrap();
        let sockets = sockets_for(to, p.exporters.len()).unwrap();
        assert_eq!(sockets.len(), 2);
        let r = send_all(&sockets, &p, 0, 1, &AtomicBool::new(false)).unwrap();
        assert_eq!(r.datagrams, 4);
        let mut buf = [0u8; 100];
        let mut seen = Vec::new();
        for _ in 0..4 {
            let (n, from) = rx.recv_from(&mut buf).unwrap();
            assert_eq!(n, 40);
            seen.push((buf[2], from.ip()));
        }
        seen.sort_unstable();
        let (a, b) = (IpAddr::from([127, 0, 0, 1]), IpAddr::from([127, 0, 0, 2]));
        assert_eq!(seen, [(1, a), (2, b), (3, a), (5, b)]);

        // Cut in the middle of the last record.
        let cut = dir.path().join("cut.pcap");
        std::fs::write(&cut, &file[..file.len() - 10]).unwrap();
        let p = Payloads::load(&[&cut, &path], MAX_PAYLOAD_BYTES).unwrap();
        assert_eq!(p.damaged.len(), 1);
        assert!(p.damaged[0].contains("cut.pcap"), "{:?}", p.damaged);
        assert_eq!(
            p.ends.len(),
            3 + 4,
            "what came before the cut, then the next file"
        );
    }

    #[test]
    fn refused_datagrams_are_counted_not_fatal() {
        // A port nobody listens on: bind, note the port, close.
        let port = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let payloads =
            Payloads::load(&[data("exports/softflowd-v9.pcap")], MAX_PAYLOAD_BYTES).unwrap();
        let tx = connect(port).unwrap();
        let r = send_all(
            std::slice::from_ref(&tx),
            &payloads,
            0,
            1,
            &AtomicBool::new(false),
        )
        .unwrap();
        assert_eq!(r.datagrams + r.refused, 71);
        assert!(r.refused > 0, "{r:?}");
        assert!(r.summary_line(port).contains("refused="));
    }
}
