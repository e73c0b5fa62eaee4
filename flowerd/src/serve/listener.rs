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

use super::metrics::{ExporterInfo, ListenerStats, Metrics, SamplerInfo, TemplateInfo};
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
    // Linux doubles the value and clamps it to net.core.rmem_max.
    let got = s.recv_buffer_size().unwrap_or(0);
    if got < l.recv_buffer {
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

fn snapshot_templates(decoder: &Decoder<'_>) -> Vec<StoredTemplate> {
    decoder
        .templates()
        .map(|(k, t)| StoredTemplate {
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
        })
        .collect()
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
    for (k, t) in decoder.templates() {
        if let Some(e) = out
            .iter_mut()
            .find(|e| e.exporter == k.exporter && e.source_id == k.source_id)
        {
            e.templates.push(TemplateInfo {
                id: k.template_id,
                options: t.is_options(),
                fields: t
                    .fields()
                    .map(|f| (f.field_type.0, f.length, f.field_type.to_string()))
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
    let fd = socket.as_raw_fd();
    // After `stop`, keep reading until the socket is empty: what the kernel
    // already received is stored too.
    let mut draining = false;
    loop {
        draining |= stop.load(Ordering::Relaxed);
        let received = {
            let mut iov = [IoSliceMut::new(&mut buf)];
            match recvmsg::<SockaddrStorage>(fd, &mut iov, Some(&mut cmsg), MsgFlags::empty()) {
                Ok(msg) => {
                    if let Ok(cmsgs) = msg.cmsgs() {
                        for c in cmsgs {
                            if let ControlMessageOwned::RxqOvfl(n) = c {
                                stats.kernel_drops.store(u64::from(n), Ordering::Relaxed);
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
        let stopping = draining && received.is_none();
        if let Some((from, len)) = received {
            stats.datagrams.fetch_add(1, Ordering::Relaxed);
            stats.bytes.fetch_add(len as u64, Ordering::Relaxed);
            let before = batch.len();
            let payload = buf.get(..len).unwrap_or(&[]);
            let _ = decoder.decode(unmap(from), payload, |r| {
                if !r.is_options() {
                    // Built in place in the batch, not built and copied.
                    batch.push(Flow::default());
                    if let Some(slot) = batch.last_mut() {
                        r.flow_into(slot);
                    }
                }
            });
            stats
                .flows
                .fetch_add((batch.len() - before) as u64, Ordering::Relaxed);
        }
        let due = last_send.elapsed() >= batch_max;
        if batch.len() >= batch_flows
            || (due && !batch.is_empty())
            || (stopping && !batch.is_empty())
        {
            let next = pool
                .try_recv()
                .unwrap_or_else(|_| Vec::with_capacity(batch_flows));
            let full = std::mem::replace(&mut batch, next);
            send(&tx, &stats, &metrics, full);
            last_send = Instant::now();
        } else if due {
            last_send = Instant::now();
        }
        if stopping || last_snapshot.elapsed() >= Duration::from_secs(1) {
            last_snapshot = Instant::now();
            if let Ok(mut c) = stats.decoder.lock() {
                *c = *decoder.counters();
            }
            if let Ok(mut e) = stats.exporters.lock() {
                *e = snapshot_exporters(&decoder);
            }
            let t = decoder.counters().templates + decoder.counters().options_templates;
            if t != templates_seen {
                // New or refreshed templates: persist them so data decodes
                // right after a restart.
                if tx
                    .try_send(Msg::Templates(snapshot_templates(&decoder)))
                    .is_ok()
                {
                    templates_seen = t;
                }
            }
        }
        if stopping {
            break;
        }
    }
}

/// IPv4-mapped IPv6 sources (dual-stack sockets) are IPv4 exporters.
fn unmap(a: IpAddr) -> IpAddr {
    match a {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(a, IpAddr::V4),
        v4 => v4,
    }
}

fn send(tx: &Sender<Msg>, stats: &ListenerStats, metrics: &Metrics, batch: Vec<Flow>) {
    let n = batch.len() as u64;
    let p = &metrics.pipeline;
    match tx.try_send(Msg::Flows(batch)) {
        Ok(()) => {
            p.batches_sent.fetch_add(1, Ordering::Relaxed);
        }
        Err(TrySendError::Full(_)) => {
            p.channel_dropped_batches.fetch_add(1, Ordering::Relaxed);
            p.channel_dropped_flows.fetch_add(n, Ordering::Relaxed);
            tracing::warn!(listener = %stats.addr, flows = n, "writer channel full: batch dropped");
        }
        Err(TrySendError::Disconnected(_)) => {}
    }
}

/// The address to report for a listener socket.
pub(crate) fn local_addr(s: &UdpSocket, fallback: SocketAddr) -> SocketAddr {
    s.local_addr().unwrap_or(fallback)
}
