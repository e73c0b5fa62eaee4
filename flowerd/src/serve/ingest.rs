//! The writer thread: the only one that writes flows to the store. It drains
//! the channel until every listener has hung up, then flushes and returns.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use flowstore::{Store, Writer};
use netflow9::Flow;

use super::metrics::Metrics;
use super::Msg;

/// Runs until the channel is closed and empty.
///
/// Batches already waiting in the channel when one is taken are merged
/// into one append (one transaction, one fsync) of at most `commit_max`
/// flows: a writer that falls behind commits less often and catches up.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run(
    store: Store,
    mut writer: Writer,
    rx: Receiver<Msg>,
    pool: Sender<Vec<Flow>>,
    metrics: Arc<Metrics>,
    maintenance: Duration,
    commit_max: usize,
    keep_templates: usize,
) -> anyhow::Result<()> {
    let mut last_maintenance = Instant::now();
    let p = &metrics.pipeline;
    // Should the writer panic, the flows it was writing and those waiting
    // in the channel are counted as lost (listeners count what they send
    // afterwards).
    let mut guard = LossGuard {
        rx: &rx,
        metrics: &metrics,
        in_flight: 0,
        carried: 0,
    };
    // Merged batches; at most `commit_max` flows, allocated on first use.
    let mut merged: Vec<Flow> = Vec::new();
    // A batch taken while merging that did not fit: the next one.
    let mut carry: Option<Vec<Flow>> = None;
    let recycle = |mut flows: Vec<Flow>| {
        // Only batch-sized vectors go back: the pool's memory stays bounded.
        if flows.capacity() <= commit_max {
            flows.clear();
            let _ = pool.try_send(flows);
        }
    };
    loop {
        let msg = match carry.take() {
            Some(flows) => {
                guard.carried = 0;
                Ok(Msg::Flows(flows))
            }
            None => rx.recv_timeout(Duration::from_millis(500)),
        };
        match msg {
            Ok(Msg::Flows(flows)) => {
                // Merge what is already waiting, without waiting for more.
                merged.clear();
                let mut first = Some(flows);
                while let Ok(m) = rx.try_recv() {
                    match m {
                        Msg::Flows(more) => {
                            let held = first.as_ref().map_or(merged.len(), Vec::len);
                            if held + more.len() > commit_max {
                                guard.carried = more.len() as u64;
                                carry = Some(more);
                                break;
                            }
                            if let Some(f) = first.take() {
                                merged.reserve(commit_max.saturating_sub(merged.capacity()));
                                merged.extend_from_slice(&f);
                                recycle(f);
                            }
                            merged.extend_from_slice(&more);
                            recycle(more);
                        }
                        Msg::Templates(t) => persist(&store, &metrics, &t, keep_templates, false),
                        Msg::RenewTemplates(t) => {
                            persist(&store, &metrics, &t, keep_templates, true);
                        }
                    }
                }
                let batch: &[Flow] = first.as_deref().unwrap_or(&merged);
                let started = Instant::now();
                // The batch being written, and where it came from: a panic
                // while merging loses what was taken from the channel.
                guard.in_flight = batch.len() as u64;
                let result = writer.append(batch);
                guard.in_flight = 0;
                match result {
                    Ok(r) => {
                        p.flows_stored.fetch_add(r.flows, Ordering::Relaxed);
                        if r.rollups_deferred {
                            tracing::warn!(
                                "rollups of this batch could not be written: deferred to the next commit (flower_store_rollup_errors_total)"
                            );
                        }
                        if r.budget_buckets > 0 {
                            tracing::warn!(
                                buckets = r.budget_buckets,
                                "disk budget reached: the oldest raw buckets were deleted (flower_store_budget_buckets_total)"
                            );
                        }
                    }
                    Err(e) => {
                        p.write_errors.fetch_add(1, Ordering::Relaxed);
                        p.write_error_flows
                            .fetch_add(batch.len() as u64, Ordering::Relaxed);
                        tracing::error!(error = %e, flows = batch.len(), "cannot store a batch");
                    }
                }
                p.last_commit_micros
                    .store(started.elapsed().as_micros() as u64, Ordering::Relaxed);
                if let Some(f) = first {
                    recycle(f);
                }
            }
            Ok(Msg::Templates(t)) => persist(&store, &metrics, &t, keep_templates, false),
            Ok(Msg::RenewTemplates(t)) => persist(&store, &metrics, &t, keep_templates, true),
            Err(RecvTimeoutError::Timeout) => {
                if let Err(e) = writer.flush() {
                    p.flush_errors.fetch_add(1, Ordering::Relaxed);
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
                Err(e) => {
                    p.maintenance_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(error = %e, "store maintenance failed");
                }
            }
        }
    }
    writer.flush()?;
    Ok(())
}

/// Counts, when the writer thread unwinds from a panic, the flows it loses:
/// the batch being appended and what waits in the channel.
struct LossGuard<'a> {
    rx: &'a Receiver<Msg>,
    metrics: &'a Metrics,
    in_flight: u64,
    /// Flows taken from the channel for the next append.
    carried: u64,
}

impl Drop for LossGuard<'_> {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let p = &self.metrics.pipeline;
        // A panic inside `append` after its commit (in the rollups) counts
        // stored flows as lost: the writer cannot tell from outside.
        let mut flows = self.in_flight + self.carried;
        let mut batches = u64::from(self.in_flight > 0) + u64::from(self.carried > 0);
        while let Ok(m) = self.rx.try_recv() {
            if let Msg::Flows(f) = m {
                flows += f.len() as u64;
                batches += 1;
            }
        }
        p.writer_gone_batches.fetch_add(batches, Ordering::Relaxed);
        p.writer_gone_flows.fetch_add(flows, Ordering::Relaxed);
        tracing::error!(
            flows,
            "the store writer panicked: the batch it was writing and those waiting are lost"
        );
    }
}

/// Persists a listener's templates (or renews them).
fn persist(
    store: &Store,
    metrics: &Metrics,
    t: &[flowstore::StoredTemplate],
    keep: usize,
    renew: bool,
) {
    let p = &metrics.pipeline;
    let result = if renew {
        store.renew_templates(t, keep)
    } else {
        store.put_templates(t, keep)
    };
    match result {
        Ok(pruned) => {
            p.templates_persisted.fetch_add(1, Ordering::Relaxed);
            p.templates_pruned.fetch_add(pruned, Ordering::Relaxed);
        }
        Err(e) => {
            p.template_persist_errors.fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %e, templates = t.len(), "cannot persist templates");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowstore::synth::{Synth, SynthConfig};
    use flowstore::StoreConfig;

    /// A writer that panics counts the batch it was writing and those
    /// waiting in the channel as lost.
    #[test]
    fn a_panicking_writer_counts_what_it_loses() {
        let (tx, rx) = crossbeam_channel::bounded(4);
        tx.send(Msg::Flows(vec![Flow::default(); 3])).unwrap();
        tx.send(Msg::Templates(Vec::new())).unwrap();
        tx.send(Msg::Flows(vec![Flow::default(); 5])).unwrap();
        let metrics = Arc::new(Metrics::default());
        let m = Arc::clone(&metrics);
        let joined = std::thread::spawn(move || {
            let mut guard = LossGuard {
                rx: &rx,
                metrics: &m,
                in_flight: 0,
                carried: 0,
            };
            guard.in_flight = 7;
            panic!("store bug");
        })
        .join();
        assert!(joined.is_err());
        let p = &metrics.pipeline;
        assert_eq!(p.writer_gone_flows.load(Ordering::Relaxed), 15);
        assert_eq!(p.writer_gone_batches.load(Ordering::Relaxed), 3);
    }

    /// Batches waiting in the channel are merged into transactions of at
    /// most `commit_max` flows; every flow is stored, templates included.
    #[test]
    fn waiting_batches_are_merged_up_to_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
        let mut flows = vec![Flow::default(); 5000];
        Synth::new(SynthConfig::small(5000)).fill(&mut flows);
        let (tx, rx) = crossbeam_channel::bounded(16);
        let (pool_tx, pool_rx) = crossbeam_channel::bounded(16);
        for chunk in flows.chunks(1000) {
            tx.send(Msg::Flows(chunk.to_vec())).unwrap();
        }
        tx.send(Msg::Templates(Vec::new())).unwrap();
        drop(tx);
        let metrics = Arc::new(Metrics::default());
        run(
            store.clone(),
            store.writer().unwrap(),
            rx,
            pool_tx,
            Arc::clone(&metrics),
            Duration::from_secs(3600),
            2500,
            100,
        )
        .unwrap();
        let p = &metrics.pipeline;
        assert_eq!(p.flows_stored.load(Ordering::Relaxed), 5000);
        assert_eq!(p.templates_persisted.load(Ordering::Relaxed), 1);
        // 1000 + 1000 (the next would pass 2500), twice, then the last 1000.
        assert_eq!(store.stats().batches.load(Ordering::Relaxed), 3);
        assert_eq!(
            pool_rx.len(),
            5,
            "every batch's vector goes back to the pool"
        );
        assert!(pool_rx.try_iter().all(|v| v.is_empty()));
    }
}
