//! The HTTP server: JSON API, `/metrics`, `/healthz` (tiny_http worker threads).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use flowstore::Store;

use crate::config;
use crate::serve::metrics::Metrics;

/// Shared by every request.
pub(crate) struct AppState {
    pub(crate) store: Store,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) config: config::Http,
}

impl AppState {
    pub(crate) fn new(store: Store, metrics: Arc<Metrics>, config: config::Http) -> Arc<AppState> {
        Arc::new(AppState {
            store,
            metrics,
            config,
        })
    }
}

/// A running server.
pub(crate) struct Server {
    server: Arc<tiny_http::Server>,
    workers: Vec<std::thread::JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    addr: SocketAddr,
}

impl Server {
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting and joins the workers.
    pub(crate) fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        self.server.unblock();
        for w in self.workers {
            let _ = w.join();
        }
    }
}

/// Starts the workers.
pub(crate) fn start(cfg: &config::Http, state: Arc<AppState>) -> anyhow::Result<Server> {
    let server = tiny_http::Server::http(cfg.listen)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("binding HTTP {}", cfg.listen))?;
    let addr = server.server_addr().to_ip().unwrap_or(cfg.listen);
    let server = Arc::new(server);
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for i in 0..cfg.workers {
        let (server, stop, state) = (server.clone(), stop.clone(), state.clone());
        workers.push(
            std::thread::Builder::new()
                .name(format!("http-{i}"))
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        match server.recv_timeout(Duration::from_millis(200)) {
                            Ok(Some(req)) => handle(&state, req),
                            Ok(None) => {}
                            Err(_) => break,
                        }
                    }
                })?,
        );
    }
    Ok(Server {
        server,
        workers,
        stop,
        addr,
    })
}

fn handle(state: &AppState, req: tiny_http::Request) {
    state.metrics.http_requests.fetch_add(1, Ordering::Relaxed);
    let (status, body, ctype) = match req.url() {
        "/healthz" => (200, "{\"status\":\"ok\"}".to_string(), "application/json"),
        "/metrics" if state.config.metrics_public => (
            200,
            state.metrics.render(&state.store),
            "text/plain; version=0.0.4",
        ),
        _ => (
            404,
            "{\"error\":\"not found\"}".to_string(),
            "application/json",
        ),
    };
    let header = tiny_http::Header::from_bytes("Content-Type", ctype).ok();
    let mut resp = tiny_http::Response::from_string(body).with_status_code(status);
    if let Some(h) = header {
        resp = resp.with_header(h);
    }
    let _ = req.respond(resp);
}
