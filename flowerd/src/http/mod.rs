//! The HTTP server: the JSON API under `/api/v1`, `/metrics` and `/healthz`,
//! over HTTP/1.1 or HTTPS.
//!
//! # Threads
//!
//! - **accept** ([`accept`]): one thread takes connections off the listening
//!   socket, at most [`accept::MAX_CONNECTIONS`] at once;
//! - **connections** ([`conn`]): one thread per connection reads requests
//!   (TLS included) under deadlines, queues each for a worker, and writes the
//!   answer. A slow or silent client only ever holds its own connection
//!   thread, and only until its deadline;
//! - **workers** ([`worker`]): `http.workers` threads answer queued requests
//!   ([`routes`]); they never touch a socket. When the queue is full, new
//!   requests get 503 at once.
//!
//! # Limits
//!
//! Memory per connection is bounded whatever the client sends: the
//! request-target is at most 8 KiB (414), the header section 16 KiB and 100
//! fields (431), the body `http.max_body_bytes` (413, refused from
//! `Content-Length` before it is read; a chunked body is read to one byte
//! over). Time limits are in [`conn`].
//!
//! This is a small server of our own rather than a library such as
//! `tiny_http`, whose 0.12 release reads header lines without a length
//! limit, has no timeouts, and allocates the unread remainder of a declared
//! `Content-Length` when a request is dropped (one request with
//! `Content-Length: 1000000000000000` aborts the process).

mod accept;
mod admin;
mod auth;
mod conn;
mod params;
mod queries;
mod respond;
mod routes;
mod time;
mod tls;
mod wire;
mod worker;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use flowstore::Store;

use crate::config;
use crate::serve::metrics::Metrics;

/// Longest request-target (path and query string).
const MAX_TARGET: usize = 8 * 1024;
/// Largest header section.
const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Most header fields.
const MAX_HEADERS: usize = 100;
/// Requests waiting for a worker, per worker.
const QUEUE_PER_WORKER: usize = 64;

/// Shared by every request.
pub(crate) struct AppState {
    /// The flow store.
    pub(crate) store: Store,
    /// The daemon's counters.
    pub(crate) metrics: Arc<Metrics>,
    /// The `[http]` configuration.
    pub(crate) config: config::Http,
    /// Login sessions.
    pub(crate) sessions: auth::Sessions,
    /// Failed-login rate limit.
    pub(crate) limiter: auth::LoginLimiter,
    /// Serializes changes to networks and users.
    pub(crate) changes: Mutex<()>,
}

impl AppState {
    /// State for a server with this configuration.
    pub(crate) fn new(store: Store, metrics: Arc<Metrics>, config: config::Http) -> Arc<AppState> {
        Arc::new(AppState {
            sessions: auth::Sessions::new(
                config.session_secs,
                auth::MAX_SESSIONS,
                auth::MAX_SESSIONS_PER_USER,
            ),
            limiter: auth::LoginLimiter::new(
                config.login_attempts_per_minute,
                auth::MAX_TRACKED_CLIENTS,
            ),
            store,
            metrics,
            config,
            changes: Mutex::new(()),
        })
    }
}

/// The current time in Unix milliseconds.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// What the accept and connection threads share.
pub(crate) struct Shared {
    /// Application state.
    pub(crate) state: Arc<AppState>,
    /// The workers' queue.
    pub(crate) jobs: crossbeam_channel::Sender<worker::Job>,
    /// TLS, when configured.
    pub(crate) tls: Option<Arc<rustls::ServerConfig>>,
    /// Set when the server stops.
    pub(crate) stop: AtomicBool,
    /// Request size limits.
    pub(crate) limits: wire::Limits,
    /// Connections being served.
    pub(crate) active: AtomicUsize,
    /// Their sockets (to shut them down when the server stops) and
    /// clients ([`auth::client_key`]).
    pub(crate) live: Mutex<HashMap<u64, (TcpStream, IpAddr)>>,
    /// Next connection number.
    pub(crate) next_id: AtomicU64,
}

impl Shared {
    /// The live connections.
    pub(crate) fn lock_live(&self) -> MutexGuard<'_, HashMap<u64, (TcpStream, IpAddr)>> {
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A running server.
pub(crate) struct Server {
    shared: Arc<Shared>,
    acceptor: JoinHandle<()>,
    workers: Vec<JoinHandle<()>>,
    addr: SocketAddr,
}

impl Server {
    /// The address it listens on (with the actual port when 0 was asked).
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, closes open connections, lets the workers finish the
    /// requests they hold, and joins the threads.
    pub(crate) fn stop(self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        // Wake the accept thread with a connection of our own.
        let wake = match self.addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => {
                SocketAddr::new(Ipv4Addr::LOCALHOST.into(), self.addr.port())
            }
            IpAddr::V6(ip) if ip.is_unspecified() => {
                SocketAddr::new(Ipv6Addr::LOCALHOST.into(), self.addr.port())
            }
            _ => self.addr,
        };
        let _ = TcpStream::connect_timeout(&wake, Duration::from_secs(1));
        let deadline = Instant::now() + Duration::from_secs(2);
        while !self.acceptor.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if self.acceptor.is_finished() {
            let _ = self.acceptor.join();
        } else {
            tracing::warn!("HTTP accept thread did not stop; leaving it");
        }
        for (s, _) in self.shared.lock_live().values() {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
        for w in self.workers {
            let _ = w.join();
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.shared.active.load(Ordering::Relaxed) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Binds `cfg.listen` and starts the accept, connection and worker threads.
///
/// # Errors
/// Bad TLS files, or the address cannot be bound.
pub(crate) fn start(cfg: &config::Http, state: Arc<AppState>) -> anyhow::Result<Server> {
    let tls = match (&cfg.tls_cert, &cfg.tls_key) {
        (Some(cert), Some(key)) => Some(tls::load(cert, key)?),
        (None, None) => None,
        _ => bail!("http: set both tls_cert and tls_key, or neither"),
    };
    let listener =
        TcpListener::bind(cfg.listen).with_context(|| format!("binding HTTP {}", cfg.listen))?;
    let addr = listener.local_addr().context("HTTP listener address")?;
    let workers = cfg.workers.max(1);
    let (jobs, queue) = crossbeam_channel::bounded(workers * QUEUE_PER_WORKER);
    let shared = Arc::new(Shared {
        state: state.clone(),
        jobs,
        tls,
        stop: AtomicBool::new(false),
        limits: wire::Limits {
            max_target: MAX_TARGET,
            max_header_bytes: MAX_HEADER_BYTES,
            max_headers: MAX_HEADERS,
            max_body: cfg.max_body_bytes,
        },
        active: AtomicUsize::new(0),
        live: Mutex::new(HashMap::new()),
        next_id: AtomicU64::new(0),
    });
    let mut handles = Vec::with_capacity(workers);
    for i in 0..workers {
        let (state, queue, shared) = (state.clone(), queue.clone(), shared.clone());
        handles.push(
            std::thread::Builder::new()
                .name(format!("http-worker-{i}"))
                .spawn(move || worker::run(&state, &queue, &shared.stop))
                .context("starting HTTP workers")?,
        );
    }
    let acceptor = {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name("http-accept".into())
            .spawn(move || accept::run(&listener, &shared))
            .context("starting the HTTP accept thread")?
    };
    tracing::info!(
        listen = %addr,
        tls = shared.tls.is_some(),
        workers,
        "HTTP server started"
    );
    Ok(Server {
        shared,
        acceptor,
        workers: handles,
        addr,
    })
}
