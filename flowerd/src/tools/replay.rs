//! `flowerd replay`: sends the NetFlow v9 payloads of capture files to a
//! collector, in file order, from one UDP socket, at a chosen rate.
//!
//! The files are read once, up front, into one buffer ([`Payloads`], at most
//! [`MAX_PAYLOAD_BYTES`]), so `--loop N` costs nothing but the sending. The
//! datagrams go out from one socket connected to the collector: whatever
//! exporters the capture recorded, the collector sees a single exporter
//! address, and replaying a capture in a loop repeats its sequence numbers
//! (the collector counts that as sequence anomalies, which is harmless).

use std::io::{self, IsTerminal};
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{anyhow, bail};

use crate::capture;
use crate::cli::ReplayArgs;

use super::send::{connect, resolve, send, stop_flag, Pacer, Progress};

/// Most payload bytes `replay` keeps in memory (all files together).
pub(crate) const MAX_PAYLOAD_BYTES: usize = 1 << 30;

/// Runs `flowerd replay`.
pub(crate) fn run(args: &ReplayArgs) -> anyhow::Result<ExitCode> {
    let dest = resolve(&args.to)?;
    let payloads = Payloads::load(&args.files, MAX_PAYLOAD_BYTES)?;
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
    let socket = connect(dest)?;
    let stop = stop_flag()?;
    let report = send_all(&socket, &payloads, args.rate, args.loops, &stop)?;
    println!("{}", report.summary_line(dest));
    Ok(ExitCode::SUCCESS)
}

/// The NetFlow v9 payloads of a set of captures, back to back in one buffer.
#[derive(Debug, Default)]
pub(crate) struct Payloads {
    /// All payloads, concatenated.
    data: Vec<u8>,
    /// End of each payload in `data`.
    ends: Vec<usize>,
    /// UDP datagrams that were not NetFlow v9 (not sent).
    pub(crate) skipped: u64,
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
            reader
                .for_each_datagram(|d| {
                    if !is_v9(d.payload) {
                        out.skipped += 1;
                    } else if out.data.len() + d.payload.len() > cap {
                        over = true;
                    } else if !over {
                        out.data.extend_from_slice(d.payload);
                        out.ends.push(out.data.len());
                    }
                })
                .map_err(|e| anyhow!("{}: {e}", path.display()))?;
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
    pub(crate) fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(self.ends.iter().copied())
            .map(|(s, e)| self.data.get(s..e).unwrap_or_default())
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

/// Sends `payloads` `loops` times through `socket` at `rate` datagrams per
/// second (0: as fast as possible), until done or `stop` is set.
pub(crate) fn send_all(
    socket: &UdpSocket,
    payloads: &Payloads,
    rate: u64,
    loops: u64,
    stop: &AtomicBool,
) -> anyhow::Result<ReplayReport> {
    let mut report = ReplayReport::default();
    let mut pacer = Pacer::new(rate);
    let mut progress = Progress::new(io::stderr().is_terminal());
    'all: for _ in 0..loops {
        for p in payloads.iter() {
            if !pacer.wait(1, None, stop) {
                break 'all;
            }
            if send(socket, p)? {
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
        let r = send_all(&tx, &payloads, 20_000, 2, &stop).unwrap();
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
        let r = send_all(&tx, &payloads, 0, 1, &AtomicBool::new(false)).unwrap();
        assert_eq!(r.datagrams + r.refused, 71);
        assert!(r.refused > 0, "{r:?}");
        assert!(r.summary_line(port).contains("refused="));
    }
}
