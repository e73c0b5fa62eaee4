//! Counters of the running daemon, shared between threads as atomics and
//! rendered in the Prometheus text format by `/metrics`.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use netflow9::{Counters, ErrorKind};
use serde::Serialize;

/// One receive socket's counters.
#[derive(Debug)]
pub(crate) struct ListenerStats {
    pub(crate) addr: SocketAddr,
    pub(crate) socket: usize,
    pub(crate) datagrams: AtomicU64,
    pub(crate) bytes: AtomicU64,
    pub(crate) flows: AtomicU64,
    /// Datagrams the kernel dropped because the socket buffer was full (SO_RXQ_OVFL).
    pub(crate) kernel_drops: AtomicU64,
    /// Receive errors other than timeouts.
    pub(crate) recv_errors: AtomicU64,
    /// The decoder's counters, refreshed by the listener.
    pub(crate) decoder: Mutex<Counters>,
    /// Per exporter, refreshed about once a second.
    pub(crate) exporters: Mutex<Vec<ExporterInfo>>,
}

impl ListenerStats {
    pub(crate) fn new(addr: SocketAddr, socket: usize) -> Self {
        ListenerStats {
            addr,
            socket,
            datagrams: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            flows: AtomicU64::new(0),
            kernel_drops: AtomicU64::new(0),
            recv_errors: AtomicU64::new(0),
            decoder: Mutex::new(Counters::default()),
            exporters: Mutex::new(Vec::new()),
        }
    }
}

/// What `/api/v1/exporters` shows for one (exporter, Source ID).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct ExporterInfo {
    pub(crate) exporter: IpAddr,
    pub(crate) source_id: u32,
    pub(crate) packets: u64,
    pub(crate) flows: u64,
    pub(crate) options_records: u64,
    pub(crate) sequence_lost: u64,
    pub(crate) sequence_reordered: u64,
    pub(crate) sequence_resyncs: u64,
    pub(crate) restarts: u64,
    pub(crate) last_unix_secs: u32,
    pub(crate) samplers: Vec<SamplerInfo>,
    pub(crate) templates: Vec<TemplateInfo>,
}

/// A sampler an exporter announced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct SamplerInfo {
    pub(crate) id: u64,
    pub(crate) interval: u32,
    pub(crate) algorithm: u8,
}

/// A template an exporter uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct TemplateInfo {
    pub(crate) id: u16,
    pub(crate) options: bool,
    /// Scope fields first for options templates.
    pub(crate) fields: Vec<FieldInfo>,
    pub(crate) scope_fields: usize,
}

/// A template field: type and length. Serialized as `[type, length,
/// name]`, the name made only then (the listeners refresh their snapshots
/// every second and must not build thousands of strings each time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FieldInfo {
    pub(crate) field_type: u16,
    pub(crate) length: u16,
}

impl Serialize for FieldInfo {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (
            self.field_type,
            self.length,
            netflow9::FieldType(self.field_type).to_string(),
        )
            .serialize(s)
    }
}

/// The pipeline's own counters.
#[derive(Debug, Default)]
pub(crate) struct PipelineStats {
    /// Batches dropped because the channel to the writer was full.
    pub(crate) channel_dropped_batches: AtomicU64,
    /// Flows in them.
    pub(crate) channel_dropped_flows: AtomicU64,
    /// Batches sent to the writer.
    pub(crate) batches_sent: AtomicU64,
    /// Flows stored by the writer.
    pub(crate) flows_stored: AtomicU64,
    /// Batches the store refused (error logged).
    pub(crate) write_errors: AtomicU64,
    /// Flows in them.
    pub(crate) write_error_flows: AtomicU64,
    /// Batches dropped because the writer had stopped (error logged).
    pub(crate) writer_gone_batches: AtomicU64,
    /// Flows in them.
    pub(crate) writer_gone_flows: AtomicU64,
    /// Template snapshots persisted.
    pub(crate) templates_persisted: AtomicU64,
    /// Template snapshots the store failed to save (error logged).
    pub(crate) template_persist_errors: AtomicU64,
    /// Stored templates removed to keep at most `decoder.templates` per
    /// socket.
    pub(crate) templates_pruned: AtomicU64,
    /// Rollup writes (between batches) that failed (error logged).
    pub(crate) flush_errors: AtomicU64,
    /// Retention/maintenance runs that failed (error logged).
    pub(crate) maintenance_errors: AtomicU64,
    /// Latency of the last commit, microseconds.
    pub(crate) last_commit_micros: AtomicU64,
}

/// All the daemon's counters.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    pub(crate) listeners: Mutex<Vec<Arc<ListenerStats>>>,
    pub(crate) pipeline: PipelineStats,
    pub(crate) http_requests: AtomicU64,
    pub(crate) http_errors: AtomicU64,
    pub(crate) logins_failed: AtomicU64,
    pub(crate) logins_limited: AtomicU64,
}

/// A metric family read from `T`: name, help, reader.
type Family<T> = (&'static str, &'static str, fn(&T) -> u64);

fn get(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

impl Metrics {
    /// All exporters seen by any listener.
    pub(crate) fn exporters(&self) -> Vec<ExporterInfo> {
        let listeners = self.listeners.lock().map(|l| l.clone()).unwrap_or_default();
        let mut all = Vec::new();
        for l in listeners {
            if let Ok(e) = l.exporters.lock() {
                all.extend(e.iter().cloned());
            }
        }
        all.sort_by_key(|e| (e.exporter, e.source_id));
        // One exporter and Source ID seen by several sockets: one entry,
        // summed (Prometheus refuses a series twice).
        let mut out: Vec<ExporterInfo> = Vec::with_capacity(all.len());
        for e in all {
            match out.last_mut() {
                Some(m) if (m.exporter, m.source_id) == (e.exporter, e.source_id) => {
                    m.packets += e.packets;
                    m.flows += e.flows;
                    m.options_records += e.options_records;
                    m.sequence_lost += e.sequence_lost;
                    m.sequence_reordered += e.sequence_reordered;
                    m.sequence_resyncs += e.sequence_resyncs;
                    m.restarts += e.restarts;
                    m.last_unix_secs = m.last_unix_secs.max(e.last_unix_secs);
                    for s in e.samplers {
                        if !m.samplers.iter().any(|x| x.id == s.id) {
                            m.samplers.push(s);
                        }
                    }
                    for t in e.templates {
                        if !m.templates.iter().any(|x| x.id == t.id) {
                            m.templates.push(t);
                        }
                    }
                    m.templates.sort_by_key(|t| t.id);
                }
                _ => out.push(e),
            }
        }
        out
    }

    /// Total flows decoded by all listeners.
    pub(crate) fn flows_received(&self) -> u64 {
        let listeners = self.listeners.lock().map(|l| l.clone()).unwrap_or_default();
        listeners.iter().map(|l| get(&l.flows)).sum()
    }

    /// The Prometheus text exposition.
    pub(crate) fn render(&self, store: &flowstore::Store) -> String {
        let mut o = String::with_capacity(8192);
        let listeners = self.listeners.lock().map(|l| l.clone()).unwrap_or_default();
        let family = |o: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(
                o,
                "# HELP flower_{name} {help}\n# TYPE flower_{name} {kind}"
            );
        };
        let per_listener: [Family<ListenerStats>; 6] = [
            ("datagrams_total", "UDP datagrams received.", |l| {
                get(&l.datagrams)
            }),
            ("datagram_bytes_total", "UDP payload bytes received.", |l| {
                get(&l.bytes)
            }),
            ("flows_received_total", "Flows decoded.", |l| get(&l.flows)),
            (
                "kernel_drops_total",
                "Datagrams dropped by the kernel (socket buffer full, SO_RXQ_OVFL).",
                |l| get(&l.kernel_drops),
            ),
            ("recv_errors_total", "Socket receive errors.", |l| {
                get(&l.recv_errors)
            }),
            (
                "decoder_packets_total",
                "Valid NetFlow v9 export packets.",
                |l| l.decoder.lock().map(|c| c.packets).unwrap_or(0),
            ),
        ];
        for (name, help, f) in per_listener {
            family(&mut o, name, "counter", help);
            for l in &listeners {
                let _ = writeln!(
                    o,
                    "flower_{name}{{listener=\"{}\",socket=\"{}\"}} {}",
                    l.addr,
                    l.socket,
                    f(l)
                );
            }
        }
        let decoder: Vec<Counters> = listeners
            .iter()
            .map(|l| l.decoder.lock().map(|c| *c).unwrap_or_default())
            .collect();
        let sum = |f: fn(&Counters) -> u64| decoder.iter().map(f).sum::<u64>();
        let decoder_counters: [Family<Counters>; 18] = [
            (
                "decoder_rejected_packets_total",
                "Datagrams that are not NetFlow v9 or too short.",
                |c| c.rejected_packets,
            ),
            ("decoder_records_total", "Data records decoded.", |c| {
                c.records
            }),
            (
                "decoder_options_records_total",
                "Options data records decoded.",
                |c| c.options_records,
            ),
            (
                "decoder_templates_total",
                "Template records received.",
                |c| c.templates,
            ),
            (
                "decoder_options_templates_total",
                "Options Template records received.",
                |c| c.options_templates,
            ),
            (
                "decoder_template_evictions_total",
                "Templates evicted from the full cache.",
                |c| c.template_evictions,
            ),
            (
                "decoder_unknown_template_flowsets_total",
                "Data FlowSets that arrived before their template.",
                |c| c.unknown_template_flowsets,
            ),
            (
                "decoder_pending_buffered_total",
                "FlowSets kept until their template arrives.",
                |c| c.pending_buffered,
            ),
            (
                "decoder_pending_replayed_total",
                "Kept FlowSets decoded when their template arrived.",
                |c| c.pending_replayed,
            ),
            (
                "decoder_pending_overflow_total",
                "Kept FlowSets dropped: buffer full.",
                |c| c.pending_overflow,
            ),
            (
                "decoder_pending_expired_total",
                "Kept FlowSets dropped: template never came.",
                |c| c.pending_expired,
            ),
            (
                "decoder_reserved_flowsets_total",
                "FlowSets with a reserved ID, skipped.",
                |c| c.reserved_flowsets,
            ),
            (
                "decoder_sequence_reordered_total",
                "Export packets received out of order.",
                |c| c.sequence_reordered,
            ),
            (
                "decoder_sequence_duplicates_total",
                "Export packets received twice (same sequence number, recently seen).",
                |c| c.sequence_duplicates,
            ),
            (
                "decoder_sequence_resyncs_total",
                "Sequence numbers that jumped too far to be losses; tracking started over.",
                |c| c.sequence_resyncs,
            ),
            (
                "decoder_templates_dropped_on_restart_total",
                "Templates dropped because their exporter restarted.",
                |c| c.templates_dropped_on_restart,
            ),
            (
                "decoder_exporter_restarts_total",
                "Exporter restarts detected.",
                |c| c.exporter_restarts,
            ),
            (
                "decoder_domain_evictions_total",
                "Exporter states evicted from the full table.",
                |c| c.domain_evictions,
            ),
        ];
        for (name, help, f) in decoder_counters {
            family(&mut o, name, "counter", help);
            let _ = writeln!(o, "flower_{name} {}", sum(f));
        }
        // Not a counter: a late packet that fills a gap takes a loss back.
        family(
            &mut o,
            "decoder_sequence_lost",
            "gauge",
            "Export packets missing according to sequence numbers (a late packet that fills a gap takes one back).",
        );
        let _ = writeln!(
            o,
            "flower_decoder_sequence_lost {}",
            sum(|c| c.sequence_lost)
        );
        family(
            &mut o,
            "decoder_malformed_total",
            "counter",
            "Malformed structures, by kind.",
        );
        for (i, kind) in ErrorKind::NAMES.iter().enumerate() {
            let n: u64 = decoder
                .iter()
                .map(|c| c.malformed.get(i).copied().unwrap_or(0))
                .sum();
            let _ = writeln!(o, "flower_decoder_malformed_total{{kind=\"{kind}\"}} {n}");
        }
        family(
            &mut o,
            "exporter_sequence_lost",
            "gauge",
            "Export packets missing, per exporter and Source ID (a late packet takes one back).",
        );
        for e in self.exporters() {
            let _ = writeln!(
                o,
                "flower_exporter_sequence_lost{{exporter=\"{}\",source_id=\"{}\"}} {}",
                e.exporter, e.source_id, e.sequence_lost
            );
        }
        let p = &self.pipeline;
        let pipeline: [(&str, &str, &AtomicU64); 13] = [
            (
                "channel_dropped_batches_total",
                "Batches dropped: channel to the writer full.",
                &p.channel_dropped_batches,
            ),
            (
                "channel_dropped_flows_total",
                "Flows dropped: channel to the writer full.",
                &p.channel_dropped_flows,
            ),
            (
                "batches_sent_total",
                "Batches sent to the writer.",
                &p.batches_sent,
            ),
            (
                "flows_stored_total",
                "Flows committed to the store.",
                &p.flows_stored,
            ),
            (
                "write_errors_total",
                "Batches the store failed to write.",
                &p.write_errors,
            ),
            (
                "write_error_flows_total",
                "Flows in batches the store failed to write.",
                &p.write_error_flows,
            ),
            (
                "writer_gone_batches_total",
                "Batches dropped: the store writer had stopped.",
                &p.writer_gone_batches,
            ),
            (
                "writer_gone_flows_total",
                "Flows dropped: the store writer had stopped.",
                &p.writer_gone_flows,
            ),
            (
                "templates_persisted_total",
                "Template snapshots saved to the store.",
                &p.templates_persisted,
            ),
            (
                "template_persist_errors_total",
                "Template snapshots the store failed to save.",
                &p.template_persist_errors,
            ),
            (
                "templates_pruned_total",
                "Stored templates removed, least recently stored first, to keep decoder.templates per socket.",
                &p.templates_pruned,
            ),
            (
                "flush_errors_total",
                "Rollup writes between batches that failed.",
                &p.flush_errors,
            ),
            (
                "maintenance_errors_total",
                "Store maintenance (retention, rollup tiers) runs that failed.",
                &p.maintenance_errors,
            ),
        ];
        for (name, help, a) in pipeline {
            family(&mut o, name, "counter", help);
            let _ = writeln!(o, "flower_{name} {}", get(a));
        }
        family(
            &mut o,
            "last_commit_seconds",
            "gauge",
            "Latency of the last store commit.",
        );
        let _ = writeln!(
            o,
            "flower_last_commit_seconds {}",
            get(&p.last_commit_micros) as f64 / 1e6
        );
        let s = store.stats();
        let store_counters: [(&str, &str, &AtomicU64); 13] = [
            ("store_batches_total", "Batches committed.", &s.batches),
            (
                "store_commit_seconds_total",
                "Time spent committing (microseconds / 1e6 below).",
                &s.commit_micros,
            ),
            (
                "store_retention_buckets_total",
                "Raw buckets removed by age.",
                &s.retention_buckets,
            ),
            (
                "store_retention_flows_total",
                "Flows removed by age.",
                &s.retention_flows,
            ),
            (
                "store_retention_rollups_total",
                "Rollup buckets removed by age.",
                &s.retention_rollups,
            ),
            (
                "store_budget_buckets_total",
                "Raw buckets removed to stay within the disk budget.",
                &s.budget_buckets,
            ),
            (
                "store_budget_flows_total",
                "Flows removed to stay within the disk budget.",
                &s.budget_flows,
            ),
            (
                "store_budget_rollups_total",
                "Rollup buckets removed to stay within the disk budget.",
                &s.budget_rollups,
            ),
            (
                "store_map_resizes_total",
                "LMDB map growths.",
                &s.map_resizes,
            ),
            (
                "store_failed_batches_total",
                "Batches not stored.",
                &s.failed_batches,
            ),
            (
                "store_merged_blocks_total",
                "Small raw blocks rewritten with the next batch's flows appended.",
                &s.merged_blocks,
            ),
            (
                "store_future_flows_total",
                "Flows ending more than a day past the clock, stored as ending now.",
                &s.future_flows,
            ),
            (
                "store_rollup_errors_total",
                "Stored batches whose rollup update failed (rebuilt from raw data).",
                &s.rollup_errors,
            ),
        ];
        for (name, help, a) in store_counters {
            family(&mut o, name, "counter", help);
            let v = get(a);
            if name == "store_commit_seconds_total" {
                let _ = writeln!(o, "flower_{name} {}", v as f64 / 1e6);
            } else {
                let _ = writeln!(o, "flower_{name} {v}");
            }
        }
        family(
            &mut o,
            "store_disk_bytes",
            "gauge",
            "Size of the store's data file.",
        );
        let _ = writeln!(
            o,
            "flower_store_disk_bytes {}",
            store.disk_bytes().unwrap_or(0)
        );
        let http: [(&str, &str, &AtomicU64); 4] = [
            ("http_requests_total", "HTTP requests.", &self.http_requests),
            (
                "http_errors_total",
                "HTTP responses with status ≥ 400.",
                &self.http_errors,
            ),
            ("logins_failed_total", "Failed logins.", &self.logins_failed),
            (
                "logins_rate_limited_total",
                "Logins refused by the rate limit.",
                &self.logins_limited,
            ),
        ];
        for (name, help, a) in http {
            family(&mut o, name, "counter", help);
            let _ = writeln!(o, "flower_{name} {}", get(a));
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An exporter seen by two sockets is one series, summed.
    #[test]
    fn exporters_seen_by_several_sockets_are_merged() {
        let m = Metrics::default();
        for (i, port) in [9995, 9996].into_iter().enumerate() {
            let l = Arc::new(ListenerStats::new(([127, 0, 0, 1], port).into(), i));
            *l.exporters.lock().unwrap() = vec![ExporterInfo {
                exporter: [192, 0, 2, 1].into(),
                source_id: 0,
                packets: 10,
                flows: 0,
                options_records: 0,
                sequence_lost: 2,
                sequence_reordered: 0,
                sequence_resyncs: 0,
                restarts: 0,
                last_unix_secs: 100 + i as u32,
                samplers: Vec::new(),
                templates: Vec::new(),
            }];
            m.listeners.lock().unwrap().push(l);
        }
        let e = m.exporters();
        assert_eq!(e.len(), 1);
        assert_eq!(
            (e[0].packets, e[0].sequence_lost, e[0].last_unix_secs),
            (20, 4, 101)
        );
    }

    /// The exposition is valid for Prometheus: every sample's family is
    /// declared once with HELP and TYPE, counters are named `_total` and
    /// nothing else is, and no series appears twice (a scrape with a
    /// duplicate is rejected whole).
    #[test]
    fn exposition_has_unique_series_and_typed_names() {
        let dir = tempfile::tempdir().unwrap();
        let store = flowstore::Store::open(dir.path(), flowstore::StoreConfig::default()).unwrap();
        let m = Metrics::default();
        for i in 0..2 {
            let l = Arc::new(ListenerStats::new(([0, 0, 0, 0], 9995).into(), i));
            *l.exporters.lock().unwrap() = vec![ExporterInfo {
                exporter: [192, 0, 2, 1 + i as u8].into(),
                source_id: 0,
                packets: 1,
                flows: 0,
                options_records: 0,
                sequence_lost: 0,
                sequence_reordered: 0,
                sequence_resyncs: 0,
                restarts: 0,
                last_unix_secs: 1,
                samplers: Vec::new(),
                templates: Vec::new(),
            }];
            m.listeners.lock().unwrap().push(l);
        }
        let text = m.render(&store);
        let mut types = std::collections::HashMap::new();
        let mut series = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert!(
                    types.insert(name.to_string(), kind.to_string()).is_none(),
                    "{name} declared twice"
                );
                assert_eq!(
                    name.ends_with("_total"),
                    kind == "counter",
                    "{name} is a {kind}"
                );
            } else if !line.starts_with('#') {
                let (key, value) = line.rsplit_once(' ').unwrap();
                value.parse::<f64>().unwrap();
                let name = key.split('{').next().unwrap();
                assert!(types.contains_key(name), "{name} has no TYPE");
                assert!(series.insert(key.to_string()), "{key} twice");
            }
        }
        assert_eq!(types["flower_decoder_sequence_lost"], "gauge");
        assert_eq!(types["flower_exporter_sequence_lost"], "gauge");
        assert!(types.contains_key("flower_decoder_sequence_duplicates_total"));
        assert!(
            series.contains("flower_datagrams_total{listener=\"0.0.0.0:9995\",socket=\"1\"}"),
            "{text}"
        );
    }
}
