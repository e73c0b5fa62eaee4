//! A connection thread: reads requests from one client (plain or TLS) under
//! time limits, passes each to the workers, writes the answers.
//!
//! Every read and write has a deadline, not just a per-call timeout, so a
//! client that trickles one byte at a time still runs out of time:
//!
//! | phase | limit |
//! |---|---|
//! | waiting for a request on a kept-alive connection | [`IDLE`] |
//! | TLS handshake, request line and header section | [`HEAD`] |
//! | request body (at most `max_body_bytes`) | [`BODY`] |
//! | writing one response | [`WRITE`] |
//!
//! After a refused request (400, 408, 413, …) the connection is closed: the
//! rest of what the client sent cannot be trusted to start a request.

use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::{RecvTimeoutError, TrySendError};
use rustls::{ServerConnection, StreamOwned};

use super::respond::{self, Response, SECURITY_HEADERS};
use super::time::http_date;
use super::wire::{self, BodyFraming, ReadError, Request};
use super::worker::Job;
use super::Shared;

/// Longest wait for the next request on an open connection.
pub(crate) const IDLE: Duration = Duration::from_secs(15);
/// Time for the TLS handshake, request line and header section.
pub(crate) const HEAD: Duration = Duration::from_secs(10);
/// Time to receive a body.
pub(crate) const BODY: Duration = Duration::from_secs(30);
/// Time to send one response.
pub(crate) const WRITE: Duration = Duration::from_secs(60);
/// Requests served on one connection before it is closed.
const MAX_REQUESTS: u32 = 1000;

/// The socket under a transport. Every raw read and write first checks the
/// deadline of the current phase and sets the socket timeout to the time
/// left: rustls loops over raw reads until a whole record (or handshake
/// flight) has arrived, so a timeout set once above it would let a client
/// that trickles one byte at a time keep a handshake open forever.
struct DeadlineSock {
    stream: TcpStream,
    deadline: Instant,
}

impl Read for DeadlineSock {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let t = left(self.deadline)?;
        self.stream.set_read_timeout(Some(t))?;
        self.stream.read(buf)
    }
}

impl Write for DeadlineSock {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let t = left(self.deadline)?;
        self.stream.set_write_timeout(Some(t))?;
        self.stream.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        left(self.deadline)?;
        self.stream.flush()
    }
}

/// The byte stream: TCP, or TLS over TCP.
enum Transport {
    Plain(DeadlineSock),
    Tls(Box<StreamOwned<ServerConnection, DeadlineSock>>),
}

impl Transport {
    /// The socket, whatever runs over it.
    fn sock(&mut self) -> &mut DeadlineSock {
        match self {
            Transport::Plain(s) => s,
            Transport::Tls(s) => &mut s.sock,
        }
    }
}

impl Read for Transport {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.read(buf),
            Transport::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Transport {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.write(buf),
            Transport::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Transport::Plain(s) => s.flush(),
            Transport::Tls(s) => s.flush(),
        }
    }
}

/// A transport whose reads and writes fail with `TimedOut` past a deadline:
/// a read runs under `read_deadline`, a write under `write_deadline`,
/// including the socket writes and reads TLS does inside them (handshake,
/// alerts, key updates).
struct Timed {
    inner: Transport,
    read_deadline: Instant,
    write_deadline: Instant,
}

/// The time left before `deadline`, or a `TimedOut` error.
fn left(deadline: Instant) -> io::Result<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err(io::ErrorKind::TimedOut.into())
    } else {
        Ok(left)
    }
}

impl Read for Timed {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        left(self.read_deadline)?;
        self.inner.sock().deadline = self.read_deadline;
        self.inner.read(buf)
    }
}

impl Write for Timed {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        left(self.write_deadline)?;
        self.inner.sock().deadline = self.write_deadline;
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        left(self.write_deadline)?;
        self.inner.sock().deadline = self.write_deadline;
        self.inner.flush()
    }
}

/// Serves one connection until the client closes it, a limit is hit, or the
/// server stops.
pub(crate) fn serve(shared: &Shared, tcp: TcpStream, peer: SocketAddr) {
    let _ = tcp.set_nodelay(true);
    let now = Instant::now();
    let sock = DeadlineSock {
        stream: tcp,
        deadline: now + HEAD,
    };
    let secure = shared.tls.is_some();
    let inner = match &shared.tls {
        None => Transport::Plain(sock),
        Some(config) => match ServerConnection::new(config.clone()) {
            Ok(c) => Transport::Tls(Box::new(StreamOwned::new(c, sock))),
            Err(e) => {
                tracing::warn!(client = %peer, error = %e, "cannot start TLS");
                return;
            }
        },
    };
    let mut io = BufReader::with_capacity(
        8192,
        Timed {
            inner,
            read_deadline: now + HEAD,
            write_deadline: now + WRITE,
        },
    );
    for n in 0..MAX_REQUESTS {
        if shared.stop.load(Ordering::Relaxed) {
            break;
        }
        // Wait for the first byte; a quiet close or idle timeout is normal.
        // The first request's header section (and the TLS handshake) must
        // be in within HEAD of the connection; a kept-alive one's within
        // HEAD of its first byte.
        if n > 0 {
            io.get_mut().read_deadline = Instant::now() + IDLE;
        }
        match io.fill_buf() {
            Ok([]) | Err(_) => break,
            Ok(_) => {}
        }
        if n > 0 {
            io.get_mut().read_deadline = Instant::now() + HEAD;
        }
        let head = match wire::read_head(&mut io, &shared.limits) {
            Ok(h) => h,
            Err(e) => {
                refuse(shared, &mut io, &e, peer, false);
                break;
            }
        };
        shared
            .state
            .metrics
            .http_requests
            .fetch_add(1, Ordering::Relaxed);
        let within_limit = match head.body {
            BodyFraming::Length(len) => len <= shared.limits.max_body as u64,
            BodyFraming::Chunked => true,
        };
        // RFC 9110 §10.1.1: "A server that receives a 100-continue
        // expectation in an HTTP/1.1 request [...] MAY [...] respond with a
        // final status code, without reading the request content, if the
        // request's content would be refused" — which read_body does for an
        // oversized Content-Length.
        if head.expect_continue && within_limit {
            io.get_mut().write_deadline = Instant::now() + HEAD;
            let cont = io.get_mut().write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
            if cont.and_then(|()| io.get_mut().flush()).is_err() {
                break;
            }
        }
        io.get_mut().read_deadline = Instant::now() + BODY;
        let body = match wire::read_body(&mut io, head.body, &shared.limits) {
            Ok(b) => b,
            Err(e) => {
                refuse(shared, &mut io, &e, peer, true);
                break;
            }
        };
        let head_only = head.method == "HEAD";
        let close = head.close || n + 1 == MAX_REQUESTS || shared.stop.load(Ordering::Relaxed);
        let resp = dispatch(
            shared,
            Request {
                head,
                body,
                peer: peer.ip(),
                secure,
            },
        );
        if send(shared, &mut io, resp, head_only, close).is_err() || close {
            break;
        }
    }
    finish(io.into_inner());
}

/// Answers a request that could not be read, if the client is still there
/// (`counted`: its head was read and counted already).
fn refuse(
    shared: &Shared,
    io: &mut BufReader<Timed>,
    e: &ReadError,
    peer: SocketAddr,
    counted: bool,
) {
    let Some((status, message)) = e.status() else {
        return;
    };
    if !counted {
        shared
            .state
            .metrics
            .http_requests
            .fetch_add(1, Ordering::Relaxed);
    }
    tracing::debug!(client = %peer, status, message, "HTTP request refused");
    let _ = send(shared, io, respond::error(status, message), false, true);
}

/// Queues the request for a worker and waits for the answer.
fn dispatch(shared: &Shared, req: Request) -> Response {
    let (tx, rx) = crossbeam_channel::bounded(1);
    match shared.jobs.try_send(Job { req, reply: tx }) {
        Ok(()) => {}
        Err(TrySendError::Full(_)) => {
            return respond::error(503, "server busy").with_header("Retry-After", "1");
        }
        Err(TrySendError::Disconnected(_)) => return respond::error(503, "shutting down"),
    }
    loop {
        match rx.recv_timeout(Duration::from_millis(250)) {
            Ok(resp) => return resp,
            Err(RecvTimeoutError::Timeout) if shared.stop.load(Ordering::Relaxed) => {
                return respond::error(503, "shutting down");
            }
            Err(RecvTimeoutError::Timeout) => {}
            // The worker dropped the job without answering.
            Err(RecvTimeoutError::Disconnected) => return respond::error(500, "internal error"),
        }
    }
}

/// Writes a response with the common header fields, counting errors.
fn send(
    shared: &Shared,
    io: &mut BufReader<Timed>,
    resp: Response,
    head_only: bool,
    close: bool,
) -> io::Result<()> {
    if resp.status >= 400 {
        shared
            .state
            .metrics
            .http_errors
            .fetch_add(1, Ordering::Relaxed);
    }
    let mut headers = resp.headers;
    headers.extend(SECURITY_HEADERS.iter().map(|(n, v)| (*n, (*v).to_string())));
    let now_secs = super::now_ms() / 1000;
    headers.push(("Date", http_date(now_secs)));
    if close {
        headers.push(("Connection", "close".into()));
    }
    let timed = io.get_mut();
    timed.write_deadline = Instant::now() + WRITE;
    let mut w = BufWriter::with_capacity(16 * 1024, timed);
    wire::write_response(&mut w, resp.status, &headers, &resp.body, head_only)
}

/// Ends a connection politely: TLS close_notify, then a lingering close
/// that reads (and drops) what the client is still sending for a moment, so
/// that a refused upload sees the response rather than a reset. All of it
/// within one second.
fn finish(t: Timed) {
    let until = Instant::now() + Duration::from_secs(1);
    let mut inner = t.inner;
    inner.sock().deadline = until;
    if let Transport::Tls(s) = &mut inner {
        s.conn.send_close_notify();
        // Only what is queued is written: `flush` would first finish an
        // unfinished handshake, reading from the client.
        while s.conn.wants_write() {
            match s.conn.write_tls(&mut s.sock) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }
    let sock = inner.sock();
    let _ = sock.stream.shutdown(Shutdown::Write);
    let mut sink = [0u8; 4096];
    let mut drained = 0usize;
    while drained < 1 << 20 {
        match sock.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
        }
    }
}
