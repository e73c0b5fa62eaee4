//! `flowerd serve`: listeners → channel → writer, plus the HTTP server.
//! SIGINT/SIGTERM stop receiving, drain the channel, commit, and exit 0.

pub(crate) mod ingest;
pub(crate) mod listener;
pub(crate) mod metrics;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use flowstore::{Store, StoredTemplate};
use netflow9::{Decoder, Flow};

use crate::config::Config;
use metrics::{ListenerStats, Metrics};

/// What listeners send to the writer.
#[derive(Debug)]
pub(crate) enum Msg {
    /// A batch of flows.
    Flows(Vec<Flow>),
    /// A listener's new or redefined templates, to persist.
    Templates(Vec<StoredTemplate>),
    /// Templates still in use, unchanged: renewed only where the store
    /// holds the same definition (see `Store::renew_templates`).
    RenewTemplates(Vec<StoredTemplate>),
}

/// A running daemon (also used by tests through `run`).
pub(crate) struct Running {
    pub(crate) netflow: Vec<SocketAddr>,
    pub(crate) http: SocketAddr,
}

fn seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(std::process::id().into());
    h.finish()
}

/// Runs the daemon until SIGINT or SIGTERM.
pub(crate) fn run(cfg: Config) -> anyhow::Result<ExitCode> {
    cfg.validate()?;
    crate::log::init(&cfg.log.format, &cfg.log.level);
    // First of all: a signal during start-up must stop the daemon cleanly,
    // not kill it.
    let signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ])
    .context("installing signal handlers")?;
    let store = Store::open(&cfg.data, cfg.store)
        .with_context(|| format!("opening the store in {}", cfg.data.display()))?;
    if let Some(pw) = crate::users::ensure_initial_admin(&store, &cfg.data)? {
        println!(
            "flowerd: first start: created user \"admin\" with password: {pw}\n\
             flowerd: (also saved in {}, readable only by this user; change it with \
             `flowerd user add admin --role admin --replace --password-stdin`)",
            cfg.data.join(crate::users::INITIAL_PASSWORD_FILE).display()
        );
        tracing::warn!(
            user = "admin",
            "first start: created the admin user; its password was printed once"
        );
    }
    let metrics = Arc::new(Metrics::default());
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = crossbeam_channel::bounded::<Msg>(cfg.pipeline.channel_batches);
    let (pool_tx, pool_rx) = crossbeam_channel::bounded::<Vec<Flow>>(cfg.pipeline.channel_batches);
    let stored = store.templates()?;

    // Bind everything before starting threads, so errors surface at once.
    let mut sockets = Vec::new();
    for l in &cfg.netflow {
        for i in 0..l.sockets {
            let s = listener::bind(l)?;
            sockets.push((l.clone(), i, s));
        }
    }
    // HTTP too (a port in use, a bad certificate): before anything is
    // received, so such an error loses no flow.
    let http = crate::http::start(
        &cfg.http,
        crate::http::AppState::new(store.clone(), metrics.clone(), cfg.http.clone()),
    )?;
    // The writer catches the rollups up with what a crash left (it can
    // fail): before anything is received.
    let store_writer = store
        .writer()
        .with_context(|| format!("starting the store writer in {}", cfg.data.display()))?;
    let writer = {
        let (store, metrics) = (store.clone(), metrics.clone());
        let maintenance = Duration::from_secs(cfg.pipeline.maintenance_secs.max(1));
        let commit_max = cfg.pipeline.commit_max_flows;
        // Every socket has a template cache of its own.
        let keep_templates = cfg
            .decoder
            .templates
            .saturating_mul(cfg.netflow.iter().map(|l| l.sockets).sum::<usize>().max(1));
        std::thread::Builder::new()
            .name("writer".into())
            .spawn(move || {
                ingest::run(
                    store,
                    store_writer,
                    rx,
                    pool_tx,
                    metrics,
                    maintenance,
                    commit_max,
                    keep_templates,
                )
            })?
    };
    let mut threads = Vec::new();
    let mut bound = Vec::new();
    for (l, i, socket) in sockets {
        let addr = listener::local_addr(&socket, l.listen);
        bound.push(addr);
        let stats = Arc::new(ListenerStats::new(addr, i));
        if let Ok(mut all) = metrics.listeners.lock() {
            all.push(stats.clone());
        }
        let mut decoder = Decoder::new(cfg.decoder.to_config(seed()));
        let loaded = listener::load_templates(&mut decoder, &stored);
        tracing::info!(listener = %addr, socket = i, templates = loaded, "listening for NetFlow v9");
        let (tx, pool, stop, metrics) =
            (tx.clone(), pool_rx.clone(), stop.clone(), metrics.clone());
        let (batch, batch_max) = (
            cfg.pipeline.batch_flows,
            Duration::from_millis(cfg.pipeline.batch_max_ms),
        );
        threads.push(
            std::thread::Builder::new()
                .name(format!("listen-{addr}-{i}"))
                .spawn(move || {
                    listener::run(
                        socket, decoder, stats, metrics, tx, pool, batch, batch_max, stop,
                    );
                })?,
        );
    }
    drop(tx);
    let running = Running {
        netflow: bound,
        http: http.local_addr(),
    };
    tracing::info!(
        http = %running.http,
        netflow = ?running.netflow,
        data = %cfg.data.display(),
        "flowerd started"
    );
    // A line tests and scripts can wait for.
    println!(
        "flowerd: ready http={} netflow={}",
        running.http,
        running
            .netflow
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    );

    // Until a signal, or until the writer stops on its own (it cannot store
    // anything more: stop, and let systemd restart us).
    let mut signals = signals;
    let mut failed = false;
    loop {
        if let Some(sig) = signals.pending().next() {
            tracing::info!(signal = sig, "stopping: draining received flows");
            break;
        }
        if writer.is_finished() {
            tracing::error!("the store writer stopped: stopping");
            failed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    match writer.join() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::error!(error = %e, "writer failed");
            failed = true;
        }
        Err(_) => {
            tracing::error!("writer panicked");
            failed = true;
        }
    }
    http.stop();
    tracing::info!(
        flows_received = metrics.flows_received(),
        flows_stored = metrics.pipeline.flows_stored.load(Ordering::Relaxed),
        dropped_channel_full = metrics
            .pipeline
            .channel_dropped_flows
            .load(Ordering::Relaxed),
        dropped_writer_gone = metrics.pipeline.writer_gone_flows.load(Ordering::Relaxed),
        failed_writes = metrics.pipeline.write_error_flows.load(Ordering::Relaxed),
        "flowerd stopped"
    );
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
