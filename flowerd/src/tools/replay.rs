//! `flowerd replay`: sends the NetFlow v9 payloads of capture files to a
//! collector, in file order, from one UDP socket, at a chosen rate.
//!
//! The files are read once, up front, into one buffer ([`Payloads`], at most
//! [`MAX_PAYLOAD_BYTES`]), so `--loop N` costs nothing but the sending. The
//! datagrams go out from one socket connected to the collector: whatever
//! exporters the capture recorded, the collector sees a single exporter
//! address, and replaying a capture in a loop repeats its sequence numbers
//! (the collector counts that as sequence anomalies, which is harmless).
//!
//! This module also holds what `flowerd generate` shares with it: resolving
//! `--to`, the [`Pacer`], the [`Progress`] line and the stop flag.

use std::io::{self, IsTerminal, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};

use crate::capture;
use crate::cli::ReplayArgs;

/// Most payload bytes `replay` keeps in memory (all files together).
pub(crate) const MAX_PAYLOAD_BYTES: usize = 1 << 30;

/// Send buffer asked for on sending sockets (the kernel may clamp it to
/// `net.core.wmem_max`, which only costs a little throughput).
const SEND_BUFFER: usize = 4 << 20;

/// How often the progress line is redrawn, at most.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

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

// ---------------------------------------------------------------------------
// Shared with `flowerd generate`.

/// Resolves `--to HOST:PORT` (IPv6 literals in brackets: `[::1]:2055`).
pub(crate) fn resolve(to: &str) -> anyhow::Result<SocketAddr> {
    to.to_socket_addrs()
        .with_context(|| format!("--to {to}: expected HOST:PORT, e.g. 127.0.0.1:9995"))?
        .next()
        .ok_or_else(|| anyhow!("--to {to}: the name has no address"))
}

/// A UDP socket of `dest`'s family, on an ephemeral port, connected to `dest`.
pub(crate) fn connect(dest: SocketAddr) -> anyhow::Result<UdpSocket> {
    let local: SocketAddr = if dest.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).with_context(|| format!("binding UDP {local}"))?;
    // A larger send buffer absorbs bursts; failing to get one is harmless.
    let _ = socket2::SockRef::from(&socket).set_send_buffer_size(SEND_BUFFER);
    socket
        .connect(dest)
        .with_context(|| format!("connecting a UDP socket to {dest}"))?;
    Ok(socket)
}

/// Sends one datagram. `Ok(false)` when the destination refused it (an ICMP
/// port unreachable came back for an earlier datagram: nothing listens
/// there, yet); other errors are returned.
pub(crate) fn send(socket: &UdpSocket, payload: &[u8]) -> anyhow::Result<bool> {
    loop {
        match socket.send(payload) {
            Ok(_) => return Ok(true),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                let to = socket
                    .peer_addr()
                    .map_or_else(|_| "the collector".to_string(), |a| a.to_string());
                return Err(e).with_context(|| format!("sending to {to}"));
            }
        }
    }
}

/// A flag set by SIGINT or SIGTERM, so the tools stop cleanly and print
/// their summary. A second SIGINT ends the process at once.
pub(crate) fn stop_flag() -> anyhow::Result<Arc<AtomicBool>> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [SIGINT, SIGTERM] {
        // Order matters: the conditional shutdown sees the flag before the
        // second handler sets it.
        signal_hook::flag::register_conditional_shutdown(sig, 1, Arc::clone(&stop))
            .context("installing signal handlers")?;
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .context("installing signal handlers")?;
    }
    Ok(stop)
}

/// Paces units (datagrams, flows) to a rate on an absolute schedule: unit
/// *k* (from 0) is due `k / rate` seconds after the start. A late sender
/// catches up at full speed, and sleeping too long never makes the average
/// rate drift.
///
/// Waiting sleeps, never spins (the collector under test needs the CPU); to
/// keep sleeps long enough to be precise, a unit may go out up to
/// its `slack` early, so traffic leaves in bursts of at most that much
/// time's worth.
#[derive(Debug)]
pub(crate) struct Pacer {
    /// Units per second; 0 is unlimited.
    rate: u64,
    start: Instant,
    /// Units released so far.
    released: u64,
    /// How early a unit may be released.
    slack: Duration,
}

/// Longest burst [`Pacer`] allows, in time: long enough for `sleep` to be
/// accurate, short enough for any socket buffer.
const MAX_SLACK: Duration = Duration::from_micros(500);

impl Pacer {
    /// A pacer starting now.
    pub(crate) fn new(rate: u64) -> Pacer {
        // At low rates, half an interval: units stay evenly spaced.
        let slack = 500_000_000u64
            .checked_div(rate)
            .map_or(Duration::ZERO, |half| {
                MAX_SLACK.min(Duration::from_nanos(half))
            });
        Pacer {
            rate,
            start: Instant::now(),
            released: 0,
            slack,
        }
    }

    /// When unit `k` (from 0) is due, after the start, at `rate` per second
    /// (saturating, for absurd values).
    pub(crate) fn due(k: u64, rate: u64) -> Duration {
        if rate == 0 {
            return Duration::ZERO;
        }
        let nanos = u128::from(k) * 1_000_000_000 / u128::from(rate);
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// Time since the start.
    pub(crate) fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Waits until `n` more units may go, then counts them. Returns false,
    /// without counting them, if `stop` is set or if they would be due after
    /// `deadline` (measured from the start).
    pub(crate) fn wait(&mut self, n: u64, deadline: Option<Duration>, stop: &AtomicBool) -> bool {
        let due = Pacer::due(self.released, self.rate);
        loop {
            if stop.load(Ordering::Relaxed) {
                return false;
            }
            let now = self.start.elapsed();
            if deadline.is_some_and(|d| due >= d || now >= d) {
                return false;
            }
            if due <= now + self.slack {
                self.released += n;
                return true;
            }
            // Sleep in slices so a signal is noticed quickly.
            std::thread::sleep((due - now).min(Duration::from_millis(50)));
        }
    }
}

/// A progress line on stderr, redrawn in place at most 4 times a second,
/// only when stderr is a terminal.
#[derive(Debug)]
pub(crate) struct Progress {
    enabled: bool,
    start: Instant,
    next: Instant,
    drawn: bool,
}

impl Progress {
    /// A progress line, drawn only if `enabled`.
    pub(crate) fn new(enabled: bool) -> Progress {
        let now = Instant::now();
        Progress {
            enabled,
            start: now,
            next: now + PROGRESS_EVERY,
            drawn: false,
        }
    }

    /// Redraws the line with `text(elapsed)` if it is time to.
    pub(crate) fn tick(&mut self, text: impl FnOnce(Duration) -> String) {
        if !self.enabled {
            return;
        }
        // Reading the clock costs tens of nanoseconds, sending microseconds.
        let now = Instant::now();
        if now < self.next {
            return;
        }
        self.next = now + PROGRESS_EVERY;
        let mut err = io::stderr().lock();
        let _ = write!(err, "\r\x1b[K{}", text(now - self.start));
        let _ = err.flush();
        self.drawn = true;
    }

    /// Erases the line, before the summary.
    pub(crate) fn clear(&mut self) {
        if self.drawn {
            eprint!("\r\x1b[K");
            self.drawn = false;
        }
    }
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
    fn due_times() {
        assert_eq!(Pacer::due(0, 1000), Duration::ZERO);
        assert_eq!(Pacer::due(1, 1000), Duration::from_millis(1));
        assert_eq!(Pacer::due(1500, 1000), Duration::from_millis(1500));
        assert_eq!(Pacer::due(3, 3_000_000), Duration::from_micros(1));
        assert_eq!(Pacer::due(1, 3), Duration::from_nanos(333_333_333));
        assert_eq!(Pacer::due(u64::MAX, 0), Duration::ZERO, "unlimited");
        assert_eq!(Pacer::due(u64::MAX, 1), Duration::from_nanos(u64::MAX));
    }

    #[test]
    fn slack_is_half_an_interval_at_low_rates() {
        assert_eq!(Pacer::new(0).slack, Duration::ZERO);
        assert_eq!(Pacer::new(10).slack, MAX_SLACK);
        assert_eq!(Pacer::new(2000).slack, Duration::from_micros(250));
        assert_eq!(Pacer::new(1_000_000).slack, Duration::from_nanos(500));
    }

    #[test]
    fn pacer_holds_the_rate() {
        let stop = AtomicBool::new(false);
        // 300 units at 10 000/s: 30 ms, the last one due at 29.9 ms.
        let mut p = Pacer::new(10_000);
        for _ in 0..300 {
            assert!(p.wait(1, None, &stop));
        }
        let took = p.elapsed();
        assert!(took >= Duration::from_micros(29_900) - p.slack, "{took:?}");
        assert!(took < Duration::from_millis(200), "{took:?}");
        // Batches count as many units.
        let mut p = Pacer::new(1000);
        assert!(p.wait(20, None, &stop));
        assert!(p.wait(1, None, &stop));
        assert!(
            p.elapsed() >= Duration::from_millis(19),
            "{:?}",
            p.elapsed()
        );
        assert_eq!(p.released, 21);
    }

    #[test]
    fn pacer_stops_at_the_deadline_or_on_stop() {
        let stop = AtomicBool::new(false);
        let mut p = Pacer::new(100);
        let deadline = Some(Duration::from_millis(35));
        let mut n = 0;
        while p.wait(1, deadline, &stop) {
            n += 1;
        }
        assert_eq!(n, 4, "units due at 0, 10, 20 and 30 ms");
        let stop = AtomicBool::new(true);
        assert!(!Pacer::new(0).wait(1, None, &stop));
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

    #[test]
    fn resolves_destinations() {
        assert_eq!(
            resolve("127.0.0.1:2055").unwrap(),
            "127.0.0.1:2055".parse().unwrap()
        );
        assert_eq!(
            resolve("[::1]:2055").unwrap(),
            "[::1]:2055".parse().unwrap()
        );
        assert!(resolve("127.0.0.1").is_err());
        assert!(resolve("127.0.0.1:http").is_err());
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
