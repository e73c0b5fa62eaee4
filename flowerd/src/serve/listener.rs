//! A receive thread: one UDP socket, one NetFlow decoder. Datagrams are
//! decoded in place and their flows batched to the writer; the thread never
//! waits for the store (a full channel drops the batch and counts it).

use std::io::IoSliceMut;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use flowstore::StoredTemplate;
use netflow9::{Decoder, Flow, Template, TemplateKey};
use nix::sys::socket::{
    recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags, SockaddrStorage,
};
use socket2::{Domain, Protocol, Socket, Type};

use super::metrics::{ExporterInfo, FieldInfo, ListenerStats, Metrics, SamplerInfo, TemplateInfo};
use super::Msg;
use crate::config::Listener;

/// Binds one socket of a listener: receive buffer, SO_REUSEPORT when the
/// listener has several sockets, SO_RXQ_OVFL for the kernel's drop counter.
pub(crate) fn bind(l: &Listener) -> anyhow::Result<UdpSocket> {
    let domain = if l.listen.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP)).context("creating UDP socket")?;
    if l.sockets > 1 {
        s.set_reuse_port(true).context("SO_REUSEPORT")?;
    }
    if l.listen.is_ipv6() {
        let _ = s.set_only_v6(false);
    }
    if let Err(e) = s.set_recv_buffer_size(l.recv_buffer) {
        tracing::warn!(listener = %l.listen, error = %e, "cannot set the receive buffer size");
    }
    // Linux clamps the value to net.core.rmem_max, then doubles it (the
    // other half is its bookkeeping): anything under twice the request
    // was clamped.
    let got = s.recv_buffer_size().unwrap_or(0);
    if got < l.recv_buffer.saturating_mul(2) {
        tracing::warn!(
            listener = %l.listen,
            requested = l.recv_buffer,
            granted = got,
            "the kernel clamped the receive buffer; raise net.core.rmem_max (sysctl -w net.core.rmem_max={}) to avoid drops",
            l.recv_buffer
        );
    }
    s.bind(&l.listen.into())
        .with_context(|| format!("binding UDP {}", l.listen))?;
    let socket: UdpSocket = s.into();
    if let Err(e) = setsockopt(&socket, sockopt::RxqOvfl, &1) {
        tracing::warn!(listener = %l.listen, error = %e, "SO_RXQ_OVFL unavailable: kernel drops will not be counted");
    }
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .context("SO_RCVTIMEO")?;
    Ok(socket)
}

/// Templates persisted in the store, in the decoder's form.
pub(crate) fn load_templates(decoder: &mut Decoder<'_>, stored: &[StoredTemplate]) -> usize {
    let spec = |v: &[(u16, u16)]| -> Vec<netflow9::FieldSpecifier> {
        v.iter()
            .map(|(t, l)| netflow9::FieldSpecifier::new(netflow9::FieldType(*t), *l))
            .collect()
    };
    let mut n = 0;
    for s in stored {
        let t = if s.options {
            Template::new_options(s.template_id, &spec(&s.scope), &spec(&s.fields))
        } else {
            Template::new(s.template_id, &spec(&s.fields))
        };
        if let Ok(t) = t {
            let key = TemplateKey {
                exporter: s.exporter,
                source_id: s.source_id,
                template_id: s.template_id,
            };
            if decoder.insert_template(key, t) {
                n += 1;
            }
        }
    }
    n
}

/// A template in the store's form.
fn stored(k: &TemplateKey, t: &Template) -> StoredTemplate {
    StoredTemplate {
        exporter: k.exporter,
        source_id: k.source_id,
        template_id: k.template_id,
        options: t.is_options(),
        scope: t
            .scope_fields()
            .map(|f| (f.field_type.0, f.length))
            .collect(),
        fields: t
            .option_fields()
            .map(|f| (f.field_type.0, f.length))
            .collect(),
        stored_at: 0,
    }
}

/// The templates a listener last persisted (or loaded), to send only what
/// changed: new templates and redefinitions, never an old copy of a
/// template another socket has since replaced. At most the decoder's
/// templates are remembered.
struct Persisted {
    known: std::collections::HashMap<TemplateKey, StoredTemplate>,
    pending: Vec<StoredTemplate>,
    /// Packets per (exporter, Source ID) at the last [`Persisted::renewals`].
    packets: std::collections::HashMap<(IpAddr, u32), u64>,
}

/// How often a listener renews in the store the templates of the exporters
/// it heard from (see [`Persisted::renewals`]).
const TEMPLATE_REFRESH: Duration = Duration::from_secs(600);

impl Persisted {
    fn new(decoder: &Decoder<'_>) -> Persisted {
        Persisted {
            known: decoder
                .templates()
                .map(|(k, t)| (*k, stored(k, t)))
                .collect(),
            pending: Vec::new(),
            packets: std::collections::HashMap::new(),
        }
    }

    /// The templates to renew in the store: those of the exporters (and
    /// Source IDs) that sent packets to this socket since the last call,
    /// unchanged since they were last persisted. The store stamps them
    /// again where it holds the same definition (it prunes the least
    /// recently stored first, and a template an exporter defined once and
    /// never changed is still in use), stores them where it holds none (a
    /// save that failed), and keeps another definition (a newer one another
    /// socket stored) as it is.
    fn renewals(&mut self, decoder: &Decoder<'_>) -> Vec<StoredTemplate> {
        let before = std::mem::take(&mut self.packets);
        for (k, s, _) in decoder.domains() {
            self.packets.insert((k.exporter, k.source_id), s.packets);
        }
        let active = |k: &TemplateKey| {
            let d = (k.exporter, k.source_id);
            self.packets
                .get(&d)
                .is_some_and(|p| before.get(&d) != Some(p))
        };
        decoder
            .templates()
            .filter(|(k, _)| active(k))
            .map(|(k, t)| stored(k, t))
            .filter(|s| {
                let k = TemplateKey {
                    exporter: s.exporter,
                    source_id: s.source_id,
                    template_id: s.template_id,
                };
                self.known.get(&k) == Some(s)
            })
            .collect()
    }

    /// Templates that differ from what was last persisted.
    fn changed(&mut self, decoder: &Decoder<'_>) -> Vec<StoredTemplate> {
        self.pending.clear();
        let mut out = Vec::new();
        for (k, t) in decoder.templates() {
            let s = stored(k, t);
            if self.known.get(k) != Some(&s) {
                out.push(s);
            }
        }
        // Forget evicted templates: the map stays as small as the cache.
        self.known.retain(|k, _| decoder.template(k).is_some());
        self.pending.clone_from(&out);
        out
    }

    /// The last [`Persisted::changed`] was sent.
    fn commit(&mut self) {
        for s in self.pending.drain(..) {
            let k = TemplateKey {
                exporter: s.exporter,
                source_id: s.source_id,
                template_id: s.template_id,
            };
            self.known.insert(k, s);
        }
    }
}

fn snapshot_exporters(decoder: &Decoder<'_>) -> Vec<ExporterInfo> {
    let mut out: Vec<ExporterInfo> = decoder
        .domains()
        .map(|(k, s, samplers)| ExporterInfo {
            exporter: k.exporter,
            source_id: k.source_id,
            packets: s.packets,
            flows: s.records,
            options_records: s.options_records,
            sequence_lost: s.sequence_lost,
            sequence_reordered: s.sequence_reordered,
            sequence_resyncs: s.sequence_resyncs,
            restarts: s.restarts,
            last_unix_secs: s.last_unix_secs,
            samplers: samplers
                .iter()
                .map(|s| SamplerInfo {
                    id: s.id,
                    interval: s.interval,
                    algorithm: s.algorithm,
                })
                .collect(),
            templates: Vec::new(),
        })
        .collect();
    let index: std::collections::HashMap<(IpAddr, u32), usize> = out
        .iter()
        .enumerate()
        .map(|(i, e)| ((e.exporter, e.source_id), i))
        .collect();
    for (k, t) in decoder.templates() {
        if let Some(e) = index
            .get(&(k.exporter, k.source_id))
            .and_then(|i| out.get_mut(*i))
        {
            e.templates.push(TemplateInfo {
                id: k.template_id,
                options: t.is_options(),
                fields: t
                    .fields()
                    .map(|f| FieldInfo {
                        field_type: f.field_type.0,
                        length: f.length,
                    })
                    .collect(),
                scope_fields: t.scope_count(),
            });
        }
    }
    for e in &mut out {
        e.templates.sort_by_key(|t| t.id);
    }
    out
}

/// After `stop`, how long a listener keeps reading what the kernel holds:
/// an exporter that never pauses must not keep the daemon from stopping.
const DRAIN_FOR: Duration = Duration::from_secs(2);

/// The receive loop, until `stop` is set. Sends what it has before returning.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run(
    socket: UdpSocket,
    mut decoder: Decoder<'static>,
    stats: Arc<ListenerStats>,
    metrics: Arc<Metrics>,
    tx: Sender<Msg>,
    pool: Receiver<Vec<Flow>>,
    batch_flows: usize,
    batch_max: Duration,
    stop: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 65_536];
    let mut cmsg = nix::cmsg_space!(u32);
    let mut batch: Vec<Flow> = Vec::with_capacity(batch_flows);
    let mut last_send = Instant::now();
    let mut last_snapshot = Instant::now();
    let mut templates_seen = u64::MAX;
    let mut last_refresh = Instant::now();
    // Templates as last persisted (or loaded): only what changes is sent, so
    // a socket never writes back a stale copy another socket has replaced.
    let mut persisted = Persisted::new(&decoder);
    let fd = socket.as_raw_fd();
    // After `stop`, keep reading without waiting until the socket is empty
    // (or `DRAIN_FOR` has passed): what the kernel already received is
    // stored too.
    let mut drain_until: Option<Instant> = None;
    // The kernel's drop count of this socket (SO_RXQ_OVFL) last seen.
    let mut kernel_drops_seen = 0u32;
    // The pending buffer's clock: the wall clock at start, then monotonic
    // (a wall clock stepped back by NTP would stall expiry until it caught
    // up again).
    let started = (unix_now(), Instant::now());
    let clock = || {
        let up = u32::try_from(started.1.elapsed().as_secs()).unwrap_or(u32::MAX);
        started.0.saturating_add(up)
    };
    decoder.set_clock(clock());
    let mut drops = DropLog::default();
    let mut problems = DecodeLog {
        seen: *decoder.counters(),
        waiting_logged: None,
        last: None,
    };
    loop {
        if drain_until.is_none() && stop.load(Ordering::Relaxed) {
            drain_until = Some(Instant::now() + DRAIN_FOR);
        }
        let draining = drain_until.is_some();
        let flags = if draining {
            MsgFlags::MSG_DONTWAIT
        } else {
            MsgFlags::empty()
        };
        let received = {
            let mut iov = [IoSliceMut::new(&mut buf)];
            match recvmsg::<SockaddrStorage>(fd, &mut iov, Some(&mut cmsg), flags) {
                Ok(msg) => {
                    if let Ok(cmsgs) = msg.cmsgs() {
                        for c in cmsgs {
                            if let ControlMessageOwned::RxqOvfl(n) = c {
                                // The socket's own 32-bit total: add what
                                // it grew by, so the counter survives its
                                // wrap.
                                let grew = n.wrapping_sub(kernel_drops_seen);
                                kernel_drops_seen = n;
                                stats
                                    .kernel_drops
                                    .fetch_add(u64::from(grew), Ordering::Relaxed);
                            }
                        }
                    }
                    let from = msg.address.and_then(|a| {
                        a.as_sockaddr_in()
                            .map(|s| IpAddr::from(s.ip()))
                            .or_else(|| a.as_sockaddr_in6().map(|s| IpAddr::from(s.ip())))
                    });
                    from.map(|f| (f, msg.bytes))
                }
                Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => None,
                Err(e) => {
                    stats.recv_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(listener = %stats.addr, error = %e, "receive error");
                    std::thread::sleep(Duration::from_millis(10));
                    None
                }
            }
        };
        let stopping = drain_until.is_some_and(|t| received.is_none() || Instant::now() >= t);
        if let Some((from, len)) = received {
            stats.datagrams.fetch_add(1, Ordering::Relaxed);
            stats.bytes.fetch_add(len as u64, Ordering::Relaxed);
            let payload = buf.get(..len).unwrap_or(&[]);
            let mut flows = 0u64;
            let exporter = unmap(from);
            let decoded = decoder.decode(exporter, payload, |r| {
                if !r.is_options() {
                    // Built in place in the batch, not built and copied.
                    batch.push(Flow::default());
                    if let Some(slot) = batch.last_mut() {
                        r.flow_into(slot);
                    }
                    flows += 1;
                    // Full batches leave at once: one datagram (or the data
                    // a template releases) cannot grow a batch past its size.
                    if batch.len() >= batch_flows {
                        send(
                            &tx, &stats, &metrics, &pool, &mut batch, &mut drops, draining,
                        );
                    }
                }
            });
            match decoded {
                Ok(summary) => {
                    if let Some(e) = summary.first_error {
                        problems.last = Some((exporter, e));
                    }
                }
                Err(e) => problems.last = Some((exporter, e)),
            }
            stats.flows.fetch_add(flows, Ordering::Relaxed);
        }
        let due = last_send.elapsed() >= batch_max;
        if (due || stopping) && !batch.is_empty() {
            send(
                &tx, &stats, &metrics, &pool, &mut batch, &mut drops, draining,
            );
            last_send = Instant::now();
        } else if due {
            last_send = Instant::now();
        }
        drops.log(&stats, stopping);
        if stopping || last_snapshot.elapsed() >= Duration::from_secs(1) {
            last_snapshot = Instant::now();
            // Data waiting for its template ages by our clock, not by the
            // headers' (any sender can write a far-future unix_secs).
            decoder.set_clock(clock());
            if let Ok(mut c) = stats.decoder.lock() {
                *c = *decoder.counters();
            }
            let _ = problems.log(&stats, decoder.counters());
            if let Ok(mut e) = stats.exporters.lock() {
                *e = snapshot_exporters(&decoder);
            }
            if last_refresh.elapsed() >= TEMPLATE_REFRESH {
                last_refresh = Instant::now();
                let renew = persisted.renewals(&decoder);
                // Not sent (channel full): the next refresh renews them.
                if !renew.is_empty() {
                    let _ = tx.try_send(Msg::RenewTemplates(renew));
                }
            }
            let t = decoder.counters().templates + decoder.counters().options_templates;
            if t != templates_seen {
                // New or redefined templates: persist them so data decodes
                // right after a restart. While stopping, wait for room.
                let changed = persisted.changed(&decoder);
                let sent = changed.is_empty()
                    || if stopping {
                        tx.send(Msg::Templates(changed)).is_ok()
                    } else {
                        tx.try_send(Msg::Templates(changed)).is_ok()
                    };
                if sent {
                    persisted.commit();
                    templates_seen = t;
                }
            }
        }
        if stopping {
            break;
        }
    }
    let pending = decoder.pending_flowsets();
    if pending > 0 {
        tracing::warn!(
            listener = %stats.addr,
            flowsets = pending,
            "stopping: data FlowSets still waiting for their template are dropped"
        );
    }
}

/// The wall clock in Unix seconds.
fn unix_now() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
}

/// IPv4-mapped IPv6 sources (dual-stack sockets) are IPv4 exporters.
fn unmap(a: IpAddr) -> IpAddr {
    match a {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(a, IpAddr::V4),
        v4 => v4,
    }
}

/// Hands the batch to the writer and leaves an empty one in its place:
/// never waiting while running (a full channel drops the batch, counted),
/// waiting while stopping (what was received is stored). A writer that has
/// died drops it too, counted and logged. A dropped batch's vector is
/// reused, so an overloaded daemon does not allocate a batch per drop.
fn send(
    tx: &Sender<Msg>,
    stats: &ListenerStats,
    metrics: &Metrics,
    pool: &Receiver<Vec<Flow>>,
    batch: &mut Vec<Flow>,
    drops: &mut DropLog,
    stopping: bool,
) {
    let capacity = batch.capacity();
    let full = std::mem::take(batch);
    let n = full.len() as u64;
    let p = &metrics.pipeline;
    let result = if stopping {
        tx.send(Msg::Flows(full))
            .map_err(|e| TrySendError::Disconnected(e.0))
    } else {
        tx.try_send(Msg::Flows(full))
    };
    let rejected = match result {
        Ok(()) => {
            p.batches_sent.fetch_add(1, Ordering::Relaxed);
            None
        }
        Err(TrySendError::Full(m)) => {
            p.channel_dropped_batches.fetch_add(1, Ordering::Relaxed);
            p.channel_dropped_flows.fetch_add(n, Ordering::Relaxed);
            drops.full_batches += 1;
            drops.full_flows += n;
            Some(m)
        }
        Err(TrySendError::Disconnected(m)) => {
            p.writer_gone_batches.fetch_add(1, Ordering::Relaxed);
            p.writer_gone_flows.fetch_add(n, Ordering::Relaxed);
            tracing::error!(listener = %stats.addr, flows = n, "the store writer has stopped: batch dropped");
            Some(m)
        }
    };
    *batch = match rejected {
        Some(Msg::Flows(mut v)) => {
            v.clear();
            v
        }
        _ => pool
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(capacity)),
    };
}

/// Batches dropped because the channel was full, logged at most once a
/// second (an overloaded daemon drops many a second; the counters have
/// them all).
#[derive(Default)]
struct DropLog {
    full_batches: u64,
    full_flows: u64,
    logged: Option<Instant>,
}

impl DropLog {
    /// Logs what was dropped since the last line, if a second has passed
    /// (or `now_anyway`).
    fn log(&mut self, stats: &ListenerStats, now_anyway: bool) {
        if self.full_batches == 0
            || !(now_anyway
                || self
                    .logged
                    .is_none_or(|t| t.elapsed() >= Duration::from_secs(1)))
        {
            return;
        }
        tracing::warn!(
            listener = %stats.addr,
            batches = self.full_batches,
            flows = self.full_flows,
            "writer channel full: batches dropped (the store writer cannot keep up)"
        );
        self.logged = Some(Instant::now());
        self.full_batches = 0;
        self.full_flows = 0;
    }
}

/// What the decoder refused or lost, logged with the snapshots (at most
/// once a second per listener; the counters have every case).
struct DecodeLog {
    /// The decoder's counters when last logged.
    seen: netflow9::Counters,
    /// When data waiting for templates was last mentioned (at most once a
    /// minute: an exporter whose template never comes would repeat it).
    waiting_logged: Option<Instant>,
    /// The last error and the exporter that caused it.
    last: Option<(IpAddr, netflow9::Error)>,
}

impl DecodeLog {
    /// Logs what grew since the last call; true if it warned.
    fn log(&mut self, stats: &ListenerStats, now: &netflow9::Counters) -> bool {
        let was = &self.seen;
        let grew = |a: u64, b: u64| a.saturating_sub(b);
        let rejected = grew(now.rejected_packets, was.rejected_packets);
        let malformed = grew(now.malformed_total(), was.malformed_total());
        let unknown = grew(now.unknown_template_flowsets, was.unknown_template_flowsets);
        let lost = grew(now.pending_overflow, was.pending_overflow)
            + grew(now.pending_expired, was.pending_expired);
        let evicted = grew(now.template_evictions, was.template_evictions)
            + grew(now.domain_evictions, was.domain_evictions);
        self.seen = *now;
        let last = self.last.take();
        if rejected + malformed + lost + evicted == 0 {
            // Data before its template is usual after a start: buffered,
            // decoded when the template comes (or counted as lost above).
            if unknown > 0
                && self
                    .waiting_logged
                    .is_none_or(|t| t.elapsed() >= Duration::from_secs(60))
            {
                self.waiting_logged = Some(Instant::now());
                tracing::info!(
                    listener = %stats.addr,
                    unknown_template_flowsets = unknown,
                    "data FlowSets waiting for their template"
                );
            }
            return false;
        }
        let (exporter, error) = last.map_or((String::new(), String::new()), |(a, e)| {
            (a.to_string(), e.to_string())
        });
        tracing::warn!(
            listener = %stats.addr,
            rejected_packets = rejected,
            malformed,
            unknown_template_flowsets = unknown,
            pending_dropped = lost,
            evicted,
            last_error = %error,
            last_error_exporter = %exporter,
            "decoding problems in the last second (counted in flower_decoder_* metrics)"
        );
        true
    }
}

/// The address to report for a listener socket.
pub(crate) fn local_addr(s: &UdpSocket, fallback: SocketAddr) -> SocketAddr {
    s.local_addr().unwrap_or(fallback)
}

#[cfg(test)]
mod tests {
    use super::*;
    use netflow9::{Config, FieldSpecifier, FieldType, HeaderRepr, PacketBuilder};

    /// A packet defining template 256 of exporter `from` with `fields`.
    fn define(decoder: &mut Decoder<'_>, from: &str, seq: u32, fields: &[(u16, u16)]) {
        let spec: Vec<FieldSpecifier> = fields
            .iter()
            .map(|(t, l)| FieldSpecifier::new(FieldType(*t), *l))
            .collect();
        let mut buf = [0u8; 512];
        let header = HeaderRepr {
            count: 1,
            sys_uptime: 1000 + seq,
            unix_secs: 1_700_000_000,
            sequence_number: seq,
            source_id: 1,
        };
        let mut b = PacketBuilder::new(&mut buf, header).unwrap();
        b.template(256, &spec).unwrap();
        let n = b.finish().unwrap();
        decoder
            .decode(from.parse().unwrap(), &buf[..n], |_| {})
            .unwrap();
    }

    /// Decoding problems are logged once per snapshot, with the last
    /// error; data waiting for its template alone is no warning.
    #[test]
    fn decoding_problems_are_logged_once() {
        let stats = ListenerStats::new("127.0.0.1:9995".parse().unwrap(), 0);
        let mut d = Decoder::new(Config::default());
        let mut log = DecodeLog {
            seen: *d.counters(),
            waiting_logged: None,
            last: None,
        };
        assert!(!log.log(&stats, d.counters()), "nothing happened");
        let exporter: IpAddr = "192.0.2.1".parse().unwrap();
        let err = d.decode(exporter, &[0, 5, 0, 0], |_| {}).unwrap_err();
        log.last = Some((exporter, err));
        assert!(log.log(&stats, d.counters()), "a rejected datagram");
        assert!(log.last.is_none());
        assert!(!log.log(&stats, d.counters()), "logged already");
        // A data FlowSet of an unknown template: buffered, not a warning.
        let mut buf = [0u8; 64];
        let header = HeaderRepr {
            count: 1,
            sys_uptime: 1000,
            unix_secs: 1_700_000_000,
            sequence_number: 0,
            source_id: 1,
        };
        let mut b = PacketBuilder::new(&mut buf, header).unwrap();
        b.record(300, &[0u8; 8]).unwrap();
        let n = b.finish().unwrap();
        let _ = d.decode(exporter, &buf[..n], |_| {});
        assert!(d.counters().unknown_template_flowsets > 0);
        assert!(!log.log(&stats, d.counters()));
    }

    /// Only new and redefined templates are persisted: a socket never
    /// writes back the copy it loaded at start once another has replaced
    /// it, and a template re-sent unchanged is not written again.
    #[test]
    fn only_changed_templates_are_persisted() {
        let mut d = Decoder::new(Config::default());
        define(&mut d, "192.0.2.1", 0, &[(8, 4), (12, 4)]);
        let mut p = Persisted::new(&d);
        assert!(p.changed(&d).is_empty(), "loaded templates are known");
        define(&mut d, "192.0.2.1", 1, &[(8, 4), (12, 4)]);
        assert!(p.changed(&d).is_empty(), "a refresh changes nothing");
        define(&mut d, "192.0.2.2", 0, &[(8, 4)]);
        define(&mut d, "192.0.2.1", 2, &[(8, 4), (12, 4), (1, 4)]);
        let changed = p.changed(&d);
        let mut got: Vec<_> = changed
            .iter()
            .map(|s| (s.exporter.to_string(), s.fields.len()))
            .collect();
        got.sort();
        assert_eq!(got, [("192.0.2.1".into(), 3), ("192.0.2.2".into(), 1)]);
        // Not sent (channel full): offered again next time.
        assert_eq!(p.changed(&d).len(), 2);
        p.commit();
        assert!(p.changed(&d).is_empty());

        // Renewals: the templates of the exporters heard from since the
        // last call (both, at first), then only of those that sent packets
        // in between; never a copy that differs from what was persisted.
        assert_eq!(p.renewals(&d).len(), 2);
        define(&mut d, "192.0.2.2", 1, &[(8, 4)]);
        let again: Vec<_> = p.renewals(&d).iter().map(|s| s.exporter).collect();
        assert_eq!(again, ["192.0.2.2".parse::<IpAddr>().unwrap()]);
        assert!(p.renewals(&d).is_empty(), "nobody sent anything");
        define(&mut d, "192.0.2.2", 2, &[(8, 4), (12, 4)]);
        assert!(p.renewals(&d).is_empty(), "redefined: sent as changed");
        assert_eq!(p.changed(&d).len(), 1);
    }
}
