//! What `flowerd replay` and `flowerd generate` share: resolving `--to`, a
//! connected UDP socket and sending on it, the stop flag, the [`Pacer`] and
//! the [`Progress`] line.

use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};

/// Send buffer asked for on sending sockets (the kernel may clamp it to
/// `net.core.wmem_max`, which only costs a little throughput).
const SEND_BUFFER: usize = 4 << 20;

/// How often the progress line is redrawn, at most.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// Resolves `--to HOST:PORT` (IPv6 literals in brackets: `[::1]:2055`).
pub(crate) fn resolve(to: &str) -> anyhow::Result<SocketAddr> {
    to.to_socket_addrs()
        .with_context(|| format!("--to {to}: expected HOST:PORT, e.g. 127.0.0.1:9995"))?
        .next()
        .ok_or_else(|| anyhow!("--to {to}: the name has no address"))
}

/// A UDP socket of `dest`'s family, on an ephemeral port, connected to `dest`.
pub(crate) fn connect(dest: SocketAddr) -> anyhow::Result<UdpSocket> {
    let local: IpAddr = if dest.is_ipv4() {
        Ipv4Addr::UNSPECIFIED.into()
    } else {
        Ipv6Addr::UNSPECIFIED.into()
    };
    connect_from(local, dest)
}

/// A UDP socket bound to `local` (an ephemeral port), connected to `dest`.
pub(crate) fn connect_from(local: IpAddr, dest: SocketAddr) -> anyhow::Result<UdpSocket> {
    let local = SocketAddr::new(local, 0);
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
}
