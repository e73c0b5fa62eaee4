//! The writer thread: the only one that writes flows to the store. It drains
//! the channel until every listener has hung up, then flushes and returns.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use flowstore::Store;
use netflow9::Flow;

use super::metrics::Metrics;
use super::Msg;

/// Runs until the channel is closed and empty.
pub(crate) fn run(
    store: Store,
    rx: Receiver<Msg>,
    pool: Sender<Vec<Flow>>,
    metrics: Arc<Metrics>,
    maintenance: Duration,
) -> anyhow::Result<()> {
    let mut writer = store.writer()?;
    let mut last_maintenance = Instant::now();
    let p = &metrics.pipeline;
    loop {
        match rx.recv_timeout(Duration::from_millis(500)) {
            Ok(Msg::Flows(mut flows)) => {
                let started = Instant::now();
                match writer.append(&flows) {
                    Ok(r) => {
                        p.flows_stored.fetch_add(r.flows, Ordering::Relaxed);
                    }
                    Err(e) => {
                        p.write_errors.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(error = %e, flows = flows.len(), "cannot store a batch");
                    }
                }
                p.last_commit_micros
                    .store(started.elapsed().as_micros() as u64, Ordering::Relaxed);
                flows.clear();
                let _ = pool.try_send(flows);
            }
            Ok(Msg::Templates(t)) => match store.put_templates(&t) {
                Ok(()) => {
                    p.templates_persisted.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => tracing::error!(error = %e, "cannot persist templates"),
            },
            Err(RecvTimeoutError::Timeout) => {
                if let Err(e) = writer.flush() {
                    tracing::error!(error = %e, "cannot write rollups");
                }
            }
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if last_maintenance.elapsed() >= maintenance {
            last_maintenance = Instant::now();
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            match writer.maintain(now, false) {
                Ok(r) if r.raw_flows > 0 || r.rollup_buckets > 0 => tracing::info!(
                    raw_buckets = r.raw_buckets,
                    raw_flows = r.raw_flows,
                    rollup_buckets = r.rollup_buckets,
                    "retention removed old data"
                ),
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "store maintenance failed"),
            }
        }
    }
    writer.flush()?;
    Ok(())
}
