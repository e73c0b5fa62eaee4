//! Deterministic synthetic flows for tests, benchmarks, examples and
//! `flowerd generate`.
//!
//! [`Synth`] turns a [`SynthConfig`] into an exact number of [`Flow`]s, in
//! the order a collector receives them. The same configuration yields the
//! same flows, bit for bit, on every platform: the generator brings its own
//! xoshiro256\*\* PRNG and computes its Zipf weights and packet-count tables
//! with its own `ln`/`exp`, built from IEEE 754 basic operations (correctly
//! rounded everywhere) rather than the platform's libm. Nothing is allocated
//! after [`Synth::new`].
//!
//! ```
//! use flowstore::synth::{Synth, SynthConfig};
//! let flows: Vec<_> = Synth::new(SynthConfig::small(1_000)).collect();
//! assert_eq!(flows.len(), 1_000);
//! assert!(flows.windows(2).all(|w| w[0].last_ms <= w[1].last_ms));
//! ```
//!
//! # Ordering and time bounds
//!
//! A collector receives a flow when the exporter expires it, that is after
//! its last packet, so the generator emits flows in **non-decreasing
//! `last_ms` order, exactly**: no flow ever has a smaller `last_ms` than the
//! one before it. Ties are possible (several flows in one millisecond).
//!
//! Every flow lies inside the window: `start_ms <= first_ms <= last_ms <
//! start_ms + duration_ms` (with `duration_ms == 0`, every time is
//! `start_ms`). A long flow whose drawn duration would make it start before
//! `start_ms` is clipped to start at `start_ms`, as if the window were the
//! exporter's uptime.
//!
//! Flow end times are spread evenly over the window (stratified: regular
//! flow *i* of *R* ends in `[start + i·D/R, start + (i+1)·D/R)`), so any
//! sub-window of length *w* holds about `flows × w / duration_ms` flows.
//! There is no diurnal cycle.
//!
//! # Traffic model
//!
//! The stream is a sequence of *conversations*. A conversation is one or two
//! unidirectional flow records, as a NetFlow v9 exporter reports them: the
//! request (client → server) and the reply (server → client), the reply in
//! the next time slot. One side is an **internal host**: a host of rank *k*
//! (0 = busiest) of a population of [`SynthConfig::hosts`], picked with
//! probability ∝ (k + 1)<sup>−s</sup> (Zipf, `s` =
//! [`SynthConfig::zipf_exponent`]; alias table, O(1) per draw). The other
//! side is a second, independent Zipf population of the same size
//! (external peers), another internal host (east–west traffic), or a
//! well-known resolver or time server.
//!
//! | | |
//! |---|---|
//! | internal hosts | 240 hosts per `/24` (`.10`–`.249`), `/24` number *s* being `10.{16 + s/256}.{s % 256}.0/24`, mask 24; IPv6 `2001:db8:1:{s}::x/64`; `src_as`/`dst_as` 0 |
//! | external peers | `100.65.0.0/16` … `100.127.0.0/16` (63 `/16`s of RFC 6598 space, mask 16), AS 64496 + (second octet − 65) mod 16 (RFC 5398 documentation ASes); IPv6 `3fff:1xx::/32` (RFC 9637), same AS as the v4 `/16` of the same index |
//! | resolvers, NTP | DNS `203.0.113.53`, `203.0.113.153` (AS 65540); NTP `198.51.100.123`–`126` (AS 65541); IPv6 `3fff:0:0:53::53`, `3fff:0:0:123::1`…; mask 24 / 48 |
//! | exporters | `192.0.2.1` ..= `192.0.2.N`, Source ID 0 ..= N−1; a host's exporter is its `/24` index mod N; template 256 (IPv4) / 257 (IPv6) |
//! | interfaces | LAN ifIndex 1 ..= 2 + (exporter mod 3) by `/24`, WAN uplinks 100 and 101 |
//! | next hops | towards the outside: upstream router `198.51.100.{1..100}` (v4) or `fe80::1`/`fe80::2` with BGP next hop `2001:db8:ffff:{exporter}::{1,2}` (v6); towards the inside: `0.0.0.0` / `::` (directly connected) |
//! | other fields | `direction` `Some(0)`, `sampling_interval` 1, `out_bytes`/`out_packets` 0 |
//!
//! Protocol mix, by flow records: TCP 75 % (HTTPS 43 %, HTTP 9 %, SMB 4 %,
//! 8080 to an internal proxy 3 %, SSH, SMTP, IMAPS, RDP, MySQL, 8443 and
//! assorted registered ports), UDP 22 % (DNS 11 %, QUIC 8 %, NTP 1 %,
//! IKE/STUN/WireGuard/… 2 %), ICMP 2 % (echo request/reply pairs, and
//! unreachable/time-exceeded messages without a reply), other 1 % (ESP,
//! GRE). Clients use ephemeral ports 32768–60999. ICMP (protocol 1, or 58 for
//! IPv6) follows the nfdump convention of `netflow9`: `src_port` 0,
//! `dst_port` = type × 256 + code (echo request 2048, reply 0; ICMPv6 32768
//! and 33024).
//!
//! Packet counts are log-normal-ish (Irwin–Hall approximation, tables built
//! once), the bulk side of a conversation carrying 900–1450-byte packets for
//! web traffic and the other side ACK-sized ones, so `bytes` is `packets` ×
//! an average packet size between 40 and 1500. TCP flags are cumulative:
//! `0x1b` (SYN ACK PSH FIN) for a complete connection, `0x1a`/`0x1e` when the
//! server resets it, `0x02` answered by `0x14` (RST ACK) when the port is
//! closed, `0x18` for a long flow exported while still open. Short flows last
//! 0–30 s; [`SynthConfig::long_flow_permille`] of the conversations last
//! 2–60 min (HTTPS and QUIC video, SSH, RDP, SMB backups, ESP tunnels) and
//! span many one-minute buckets.
//!
//! # Beacons
//!
//! Flower's origin story: a few internal hosts phone home. With
//! [`SynthConfig::beacons`], each source in [`BEACONS`] does, at every tick
//! *j* ≥ 0:
//!
//! * one TCP upload starting at `start_ms + phase_ms + j × 60 000 ±
//!   2 000 ms` ([`BEACON_PERIOD_MS`], [`BEACON_JITTER_MS`], uniform jitter),
//!   lasting 2–8 s, of 3 000 000 ..= 4 000 000 bytes ([`BEACON_BYTES`]) in
//!   ~1400-byte packets, flags `0x1b`, to port [`Beacon::dst_port`];
//! * to a host in `/16` number `j mod 3` of [`BEACON_PREFIXES`]
//!   (`198.18.0.0/16`, `198.19.0.0/16`, `100.64.0.0/16` in rotation); the
//!   host *inside* the `/16` is random at every tick, so only the `/16` (and
//!   its AS, [`BEACON_AS`]) is stable;
//! * followed 1–19 ms later by the reply: the ACK stream back, half as many
//!   40-byte packets.
//!
//! Ticks continue while the whole exchange still ends inside the window, so
//! over 24 h each source makes 1440 uploads (2880 flow records), over one
//! hour 60. Beacon flows are part of [`SynthConfig::flows`]; when they would
//! exceed half of it, the last sources are dropped whole (never part of a
//! series), see [`Synth::beacons`]. Each beacon source is also an ordinary
//! host: it replaces the IPv4 address of the host of rank
//! [`Beacon::background_rank`] (when that rank exists), so its uploads hide
//! among ordinary traffic of its own. Beacon flows are IPv4 only.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use core::ops::RangeInclusive;

use netflow9::Flow;

/// 2024-03-01T00:00:00Z in Unix milliseconds, where
/// [`SynthConfig::benchmark`] and [`SynthConfig::small`] start.
pub const BENCHMARK_START_MS: u64 = 1_709_251_200_000;

/// The largest accepted [`SynthConfig::hosts`] (the external address plan
/// holds 63 × 65 535 peers).
pub const MAX_HOSTS: u32 = 4_000_000;

/// Nominal interval between two uploads of one beacon source.
pub const BEACON_PERIOD_MS: u64 = 60_000;

/// Uniform jitter of a beacon upload's start around its nominal time, ±.
pub const BEACON_JITTER_MS: u64 = 2_000;

/// Bytes of one beacon upload (the request flow).
pub const BEACON_BYTES: RangeInclusive<u64> = 3_000_000..=4_000_000;

/// The three outside `/16`s that beacons visit in rotation: tick *j* goes to
/// `BEACON_PREFIXES[j % 3]`.
pub const BEACON_PREFIXES: [Ipv4Addr; 3] = [
    Ipv4Addr::new(198, 18, 0, 0),
    Ipv4Addr::new(198, 19, 0, 0),
    Ipv4Addr::new(100, 64, 0, 0),
];

/// Destination AS of each of [`BEACON_PREFIXES`].
pub const BEACON_AS: [u32; 3] = [65_536, 65_536, 65_550];

/// Route prefix length (`dst_mask`) of each of [`BEACON_PREFIXES`]: the two
/// `198.18.0.0/15` halves are one route.
pub const BEACON_MASKS: [u8; 3] = [15, 15, 16];

/// One beaconing internal host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Beacon {
    /// The internal source address.
    pub source: Ipv4Addr,
    /// TCP destination port of every upload.
    pub dst_port: u16,
    /// Offset of tick 0 from [`SynthConfig::start_ms`].
    pub phase_ms: u64,
    /// Zipf rank whose IPv4 address this source takes over for its
    /// ordinary traffic.
    pub background_rank: u32,
}

/// The beacon sources, in the order [`Synth::beacons`] keeps them. Source
/// *i* is seen by exporter *i* mod N on LAN interface 1.
pub const BEACONS: [Beacon; 3] = [
    Beacon {
        source: Ipv4Addr::new(10, 10, 1, 66),
        dst_port: 443,
        phase_ms: 7_000,
        background_rank: 9,
    },
    Beacon {
        source: Ipv4Addr::new(10, 10, 2, 23),
        dst_port: 80,
        phase_ms: 23_000,
        background_rank: 99,
    },
    Beacon {
        source: Ipv4Addr::new(10, 10, 3, 141),
        dst_port: 443,
        phase_ms: 41_000,
        background_rank: 999,
    },
];

/// [`BEACONS`] as a static, to hand out `&'static` slices of it.
static BEACON_TABLE: [Beacon; 3] = BEACONS;

/// What to generate.
///
/// Start from [`SynthConfig::benchmark`] or [`SynthConfig::small`] and
/// change fields:
///
/// ```
/// use flowstore::synth::SynthConfig;
/// let cfg = SynthConfig { seed: 7, beacons: false, ..SynthConfig::small(10_000) };
/// # assert_eq!(cfg.duration_ms, 3_600_000);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SynthConfig {
    /// Total number of flow records, beacon flows included.
    pub flows: u64,
    /// Start of the window, Unix milliseconds.
    pub start_ms: u64,
    /// Length of the window; every flow ends before `start_ms +
    /// duration_ms`.
    pub duration_ms: u64,
    /// Number of exporters, 1 ..= 254: `192.0.2.1` ..= `192.0.2.N`.
    pub exporters: u8,
    /// Number of internal hosts, 1 ..= [`MAX_HOSTS`]; the external peers
    /// are a second population of the same size.
    pub hosts: u32,
    /// Zipf exponent *s*: the host of rank *k* (0-based) is picked with
    /// weight (k + 1)<sup>−s</sup>; 0 is uniform.
    pub zipf_exponent: f64,
    /// Conversations, per mille, that last 2–60 min (0 ..= 1000).
    pub long_flow_permille: u16,
    /// Conversations, percent, over IPv6 (0 ..= 100).
    pub ipv6_percent: u8,
    /// PRNG seed.
    pub seed: u64,
    /// Whether the [`BEACONS`] run.
    pub beacons: bool,
}

impl SynthConfig {
    /// The benchmark data set: 10 M flows over 24 h from
    /// 2024-03-01T00:00:00Z, 5 exporters, 50 000 hosts, Zipf 1.1, 20 ‰ long
    /// flows, 20 % IPv6, seed 1, beacons on.
    #[must_use]
    pub fn benchmark() -> Self {
        SynthConfig {
            flows: 10_000_000,
            start_ms: BENCHMARK_START_MS,
            duration_ms: 24 * 3_600_000,
            exporters: 5,
            hosts: 50_000,
            zipf_exponent: 1.1,
            long_flow_permille: 20,
            ipv6_percent: 20,
            seed: 1,
            beacons: true,
        }
    }

    /// The benchmark mix with `flows` flows over one hour.
    #[must_use]
    pub fn small(flows: u64) -> Self {
        SynthConfig {
            flows,
            duration_ms: 3_600_000,
            ..Self::benchmark()
        }
    }
}

/// The addresses of one internal host, see [`Synth::host`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Host {
    /// IPv4 address.
    pub v4: Ipv4Addr,
    /// IPv6 address.
    pub v6: Ipv6Addr,
    /// The exporter that sees its traffic.
    pub exporter: Ipv4Addr,
}

/// The generator: an iterator of exactly [`SynthConfig::flows`] flows.
///
/// See the [module documentation](self) for the ordering guarantee and the
/// traffic model.
#[derive(Clone)]
pub struct Synth {
    cfg: SynthConfig,
    rng: Rng,
    /// Alias table over host *slots* (see [`slot_of_rank`]): sampling gives
    /// an address directly, without a permutation per draw.
    zipf: Box<[AliasEntry]>,
    /// `PROFILES.len()` tables of `BINS` packet counts.
    packets: Box<[u32]>,
    /// Cumulative conversation thresholds over `CLASSES` (32-bit scale).
    class_cum: [u64; N_CLASSES],
    /// Cumulative thresholds over `LONG_CLASSES`.
    long_cum: [u64; LONG_CLASSES.len()],
    /// Slots whose IPv4 address a beacon source takes over (`u32::MAX`: none).
    beacon_slots: [u32; 3],
    clock: Clock,
    /// The reply of the last conversation, waiting for its turn when
    /// `has_pending` (not an `Option`: the reply is built in place).
    pending: Flow,
    has_pending: bool,
    beacons: [BeaconStream; 3],
    active_beacons: usize,
    beacon_flows: u64,
    remaining: u64,
}

impl core::fmt::Debug for Synth {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Synth")
            .field("cfg", &self.cfg)
            .field("remaining", &self.remaining)
            .field("beacon_flows", &self.beacon_flows)
            .finish_non_exhaustive()
    }
}

impl Synth {
    /// Builds the generator. The Zipf alias table (8 bytes × `hosts`, built
    /// through temporary buffers of about twice that) and the 40 KiB of
    /// packet-count tables are the only allocations, here or later.
    ///
    /// # Panics
    ///
    /// If the configuration is out of range: `exporters` 0 or 255, `hosts`
    /// 0 or above [`MAX_HOSTS`], `zipf_exponent` negative or not finite,
    /// `long_flow_permille` above 1000, `ipv6_percent` above 100, or
    /// `start_ms + duration_ms` overflowing.
    #[must_use]
    pub fn new(cfg: SynthConfig) -> Self {
        assert!(
            (1..=254).contains(&cfg.exporters),
            "exporters must be 1..=254"
        );
        assert!(
            (1..=MAX_HOSTS).contains(&cfg.hosts),
            "hosts must be 1..=MAX_HOSTS"
        );
        assert!(
            cfg.zipf_exponent.is_finite() && cfg.zipf_exponent >= 0.0,
            "zipf_exponent must be finite and >= 0"
        );
        assert!(cfg.long_flow_permille <= 1000, "long_flow_permille > 1000");
        assert!(cfg.ipv6_percent <= 100, "ipv6_percent > 100");
        assert!(
            cfg.start_ms.checked_add(cfg.duration_ms).is_some(),
            "start_ms + duration_ms overflows"
        );

        let mut rng = Rng::new(cfg.seed);
        let zipf = zipf_alias(cfg.hosts, cfg.zipf_exponent);
        let packets = packet_tables();
        let class_cum = cumulative(&core::array::from_fn::<_, N_CLASSES, _>(|i| {
            u64::from(CLASSES[i].weight) * 2 / CLASSES[i].flows
        }));
        let long_cum = cumulative(&LONG_CLASSES.map(|(_, w)| w));

        // Beacons: drop whole sources until they fit in half the flows.
        let ticks = BEACONS.map(|b| beacon_ticks(cfg.duration_ms, b.phase_ms));
        let mut active = if cfg.beacons { BEACONS.len() } else { 0 };
        while active > 0 && ticks[..active].iter().map(|&t| 2 * t).sum::<u64>() > cfg.flows / 2 {
            active -= 1;
        }
        let mut beacon_slots = [u32::MAX; 3];
        let mut beacon_flows = 0;
        let beacons = core::array::from_fn(|i| {
            let stream_rng = Rng::new(cfg.seed ^ (0xbea0_0000 + i as u64).wrapping_mul(GOLDEN));
            if i < active {
                beacon_flows += 2 * ticks[i];
                if BEACONS[i].background_rank < cfg.hosts {
                    beacon_slots[i] = slot_of_rank(BEACONS[i].background_rank, cfg.hosts);
                }
                BeaconStream::new(&cfg, i, ticks[i], stream_rng)
            } else {
                BeaconStream::new(&cfg, i, 0, stream_rng)
            }
        });

        let clock = Clock::new(
            cfg.start_ms,
            cfg.duration_ms,
            cfg.flows - beacon_flows,
            &mut rng,
        );
        Synth {
            cfg,
            rng,
            zipf,
            packets,
            class_cum,
            long_cum,
            beacon_slots,
            clock,
            pending: Flow::default(),
            has_pending: false,
            beacons,
            active_beacons: active,
            beacon_flows,
            remaining: cfg.flows,
        }
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &SynthConfig {
        &self.cfg
    }

    /// The beacon sources that run: a prefix of [`BEACONS`], empty when
    /// [`SynthConfig::beacons`] is off or the flows are too few.
    #[must_use]
    pub fn beacons(&self) -> &'static [Beacon] {
        &BEACON_TABLE[..self.active_beacons]
    }

    /// Number of beacon flow records (uploads and their replies) in the
    /// whole stream.
    #[must_use]
    pub fn beacon_flows(&self) -> u64 {
        self.beacon_flows
    }

    /// The addresses of the internal host of Zipf rank `rank` (0 = busiest),
    /// `None` if `rank >= hosts`. A beacon source's rank reports the
    /// beacon's IPv4 address.
    #[must_use]
    pub fn host(&self, rank: u32) -> Option<Host> {
        if rank >= self.cfg.hosts {
            return None;
        }
        let slot = slot_of_rank(rank, self.cfg.hosts);
        let (v4, v6, exporter, _) = self.inside_parts(slot);
        Some(Host {
            v4: Ipv4Addr::from(v4),
            v6: Ipv6Addr::from(v6),
            exporter: Ipv4Addr::new(192, 0, 2, exporter + 1),
        })
    }

    /// Fills `out` with the next flows and returns how many it wrote: less
    /// than `out.len()` only at the end of the stream. Equivalent to calling
    /// [`Iterator::next`] in a loop; allocates nothing.
    pub fn fill(&mut self, out: &mut [Flow]) -> usize {
        let n = out
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        for slot in &mut out[..n] {
            *slot = self.produce();
        }
        n
    }

    #[inline]
    fn zipf_slot(&mut self) -> u32 {
        let r = self.rng.next();
        // 32 high bits pick a bucket, 32 low bits decide bucket or alias.
        let n = self.zipf.len() as u64;
        let i = ((r >> 32) * n) >> 32;
        let e = self.zipf[i as usize];
        if (r as u32) < e.threshold {
            i as u32
        } else {
            e.alias
        }
    }

    /// `(v4, v6, exporter index, LAN ifIndex)` of an internal slot.
    #[inline]
    fn inside_parts(&self, slot: u32) -> (u32, u128, u8, u32) {
        let n_exp = u32::from(self.cfg.exporters);
        let subnet = slot / HOSTS_PER_SUBNET;
        let host = slot % HOSTS_PER_SUBNET + FIRST_HOST;
        let mut v4 = 0x0a00_0000 | ((16 + subnet / 256) << 16) | ((subnet % 256) << 8) | host;
        let v6 = (INSIDE_V6 << 80) | (u128::from(subnet) << 64) | u128::from(host);
        let mut exporter = (subnet % n_exp) as u8;
        let mut lan = 1 + (subnet / n_exp) % lan_ports(exporter);
        if let Some(b) = self.beacon_slots.iter().position(|&s| s == slot) {
            v4 = BEACONS[b].source.to_bits();
            exporter = (b % usize::from(self.cfg.exporters)) as u8;
            lan = 1;
        }
        (v4, v6, exporter, lan)
    }

    #[inline]
    fn inside(&self, slot: u32, v6: bool) -> (End, u8) {
        let (a4, a6, exporter, lan) = self.inside_parts(slot);
        let end = if v6 {
            End::inside(IpAddr::V6(Ipv6Addr::from(a6)), 64, lan)
        } else {
            End::inside(IpAddr::V4(Ipv4Addr::from(a4)), 24, lan)
        };
        (end, exporter)
    }

    /// Builds the conversation whose request ends at `last_ms`, returns the
    /// request and leaves the reply (if any) in `pending`, ending in the next
    /// slot.
    #[inline]
    fn conversation(&mut self, last_ms: u64) -> Flow {
        let start = self.cfg.start_ms;
        let long = self.rng.below(1000) < u64::from(self.cfg.long_flow_permille);
        let class = if long {
            &CLASSES[LONG_CLASSES[pick(&self.long_cum, &mut self.rng)].0]
        } else {
            &CLASSES[pick(&self.class_cum, &mut self.rng)]
        };
        let v6 = self.rng.below(100) < u64::from(self.cfg.ipv6_percent);

        let inside_slot = self.zipf_slot();
        let (inside, e) = self.inside(inside_slot, v6);
        let peer = match class.peer {
            Peer::External => {
                let slot = self.zipf_slot();
                outside(slot, v6, e)
            }
            Peer::Internal => {
                let mut slot = self.zipf_slot();
                if slot == inside_slot {
                    slot = (slot + 1) % self.cfg.hosts;
                }
                self.inside(slot, v6).0
            }
            Peer::Dns => well_known(&DNS_SERVERS, self.rng.below(2) as usize, v6, e),
            Peer::Ntp => well_known(&NTP_SERVERS, self.rng.below(4) as usize, v6, e),
        };
        let (client, server) = if class.inbound {
            (peer, inside)
        } else {
            (inside, peer)
        };

        // Ports and protocol.
        let ephemeral =
            EPHEMERAL_LO + self.rng.below(u64::from(EPHEMERAL_HI - EPHEMERAL_LO) + 1) as u16;
        let (protocol, req_ports, rep_ports) = match class.kind {
            Kind::Tcp | Kind::Udp => {
                let service = match class.port {
                    Port::Fixed(p) => p,
                    Port::TcpMisc => TCP_MISC[self.rng.below(TCP_MISC.len() as u64) as usize],
                    Port::UdpMisc => UDP_MISC[self.rng.below(UDP_MISC.len() as u64) as usize],
                };
                let proto = if class.kind == Kind::Tcp { 6 } else { 17 };
                (proto, (ephemeral, service), (service, ephemeral))
            }
            Kind::Echo => {
                if v6 {
                    (58, (0, 128 << 8), (0, 129 << 8))
                } else {
                    (1, (0, 8 << 8), (0, 0))
                }
            }
            Kind::IcmpError => {
                let i = self.rng.below(3) as usize;
                let t = if v6 { ICMP6_ERRORS[i] } else { ICMP4_ERRORS[i] };
                (if v6 { 58 } else { 1 }, (0, t), (0, 0))
            }
            Kind::Tunnel(p) => (p, (0, 0), (0, 0)),
        };

        // Packets, sizes, duration, flags.
        let hdr = if v6 { 20 } else { 0 };
        let table = &self.packets[usize::from(class.profile) * BINS..][..BINS];
        let mut req_pk;
        let mut rep_pk;
        let (req_size, rep_size);
        let (mut req_flags, mut rep_flags) = (0, 0);
        let duration;
        let refused =
            class.kind == Kind::Tcp && !long && self.rng.below(100) < u64::from(class.refused_pct);
        if refused {
            // SYN retransmitted after 1 s and 3 s, answered by RST each time.
            req_pk = 1 + self.rng.below(3);
            rep_pk = req_pk;
            req_size = 60 + hdr;
            rep_size = 40 + hdr;
            req_flags = SYN;
            rep_flags = RST | ACK;
            duration = (req_pk - 1) * (1000 + self.rng.below(2001));
        } else {
            let bulk_reply = self.rng.below(100) < u64::from(class.bulk_reply_pct);
            let bulk_size = self.rng.range(class.bulk_size.0..=class.bulk_size.1) + hdr;
            let other_size = self.rng.range(class.other_size.0..=class.other_size.1) + hdr;
            if long {
                let dur = self.rng.range(LONG_MS);
                duration = dur.min(last_ms - start);
                // 0.25 to 32 packets/s, log-uniform: a few elephants, many
                // quiet sessions.
                let quarter_pps = 1 << self.rng.below(8);
                req_pk = (duration * quarter_pps / 4_000).max(1);
            } else {
                req_pk = u64::from(table[bin(self.rng.next())]);
                duration = 0; // set below, from the packet count
            }
            // The other side: a share of the bulk side's packets, ± 1/8.
            let ratio = u64::from(class.other_pct);
            rep_pk = (req_pk * ratio / 100).max(1);
            rep_pk = rep_pk + self.rng.below(rep_pk / 4 + 1) - rep_pk / 8;
            let (mut rs, mut ps) = (bulk_size, other_size);
            if bulk_reply {
                core::mem::swap(&mut req_pk, &mut rep_pk);
                core::mem::swap(&mut rs, &mut ps);
            }
            req_size = rs.min(1500);
            rep_size = ps.min(1500);
            if class.kind == Kind::Tcp {
                // Handshake and teardown take packets of their own.
                req_pk = req_pk.max(3);
                rep_pk = rep_pk.max(2);
                (req_flags, rep_flags) = if long && self.rng.below(2) == 0 {
                    (PSH | ACK, PSH | ACK)
                } else {
                    match self.rng.below(100) {
                        0..=5 => (SYN | PSH | ACK, SYN | RST | PSH | ACK),
                        _ => (FIN | SYN | PSH | ACK, FIN | SYN | PSH | ACK),
                    }
                };
            }
        }
        let duration = if long || refused {
            duration
        } else {
            let pk = req_pk.max(rep_pk);
            if pk <= 1 {
                0
            } else {
                let step = 1 << self.rng.below(8);
                let d = (pk - 1) * step + self.rng.below(step);
                if d > SHORT_MAX_MS {
                    self.rng.range(20_000..=SHORT_MAX_MS)
                } else {
                    d
                }
            }
        };
        let first_ms = last_ms.saturating_sub(duration).max(start);
        let rtt = self.rng.range(1..=120);

        let request = Flow {
            exporter: exporter_addr(e),
            source_id: u32::from(e),
            template_id: if v6 { TEMPLATE_V6 } else { TEMPLATE_V4 },
            src_addr: client.addr,
            dst_addr: server.addr,
            src_port: req_ports.0,
            dst_port: req_ports.1,
            protocol,
            tcp_flags: req_flags,
            tos: class.tos,
            input_if: client.iface,
            output_if: server.iface,
            src_as: client.asn,
            dst_as: server.asn,
            src_mask: client.mask,
            dst_mask: server.mask,
            next_hop: Some(server.hop),
            bgp_next_hop: Some(server.bgp_hop),
            direction: Some(0),
            bytes: req_pk * req_size,
            packets: req_pk,
            out_bytes: 0,
            out_packets: 0,
            first_ms,
            last_ms,
            sampling_interval: 1,
        };
        // With an odd budget the very last conversation loses its reply.
        if class.flows == 2 && self.clock.left > 0 {
            let reply_last = self.clock.take(&mut self.rng);
            self.has_pending = true;
            self.pending = Flow {
                src_addr: server.addr,
                dst_addr: client.addr,
                src_port: rep_ports.0,
                dst_port: rep_ports.1,
                tcp_flags: rep_flags,
                input_if: server.iface,
                output_if: client.iface,
                src_as: server.asn,
                dst_as: client.asn,
                src_mask: server.mask,
                dst_mask: client.mask,
                next_hop: Some(client.hop),
                bgp_next_hop: Some(client.bgp_hop),
                bytes: rep_pk * rep_size,
                packets: rep_pk,
                first_ms: (first_ms + rtt).min(reply_last),
                last_ms: reply_last,
                ..request
            };
        }
        request
    }

    #[inline]
    fn regular(&mut self) -> Flow {
        if self.has_pending {
            self.has_pending = false;
            return self.pending;
        }
        let last_ms = self.clock.take(&mut self.rng);
        self.conversation(last_ms)
    }

    /// The next flow; the stream must not be exhausted.
    #[inline(always)]
    fn produce(&mut self) -> Flow {
        self.remaining -= 1;
        let mut t = if self.has_pending {
            self.pending.last_ms
        } else if self.clock.left > 0 {
            self.clock.next
        } else {
            u64::MAX
        };
        // Ties go to the regular stream, then to the lower beacon index.
        let mut from = None;
        for (i, b) in self.beacons[..self.active_beacons].iter().enumerate() {
            if b.left > 0 && b.next.last_ms < t {
                t = b.next.last_ms;
                from = Some(i);
            }
        }
        match from {
            Some(i) => self.beacons[i].take(&self.cfg),
            None => self.regular(),
        }
    }
}

impl Iterator for Synth {
    type Item = Flow;

    #[inline]
    fn next(&mut self) -> Option<Flow> {
        if self.remaining == 0 {
            return None;
        }
        Some(self.produce())
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = usize::try_from(self.remaining).unwrap_or(usize::MAX);
        (n, Some(n))
    }
}

impl ExactSizeIterator for Synth {}

impl core::iter::FusedIterator for Synth {}

// ---------------------------------------------------------------------------
// Address plan

const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;
const HOSTS_PER_SUBNET: u32 = 240;
const FIRST_HOST: u32 = 10;
/// `2001:db8:1::/48`, as its top 48 bits.
const INSIDE_V6: u128 = 0x2001_0db8_0001;
/// `3fff::/20` (RFC 9637), top 16 bits.
const OUTSIDE_V6: u128 = 0x3fff;
const OUTSIDE_PREFIXES: u32 = 63;
const TEMPLATE_V4: u16 = 256;
const TEMPLATE_V6: u16 = 257;
const EPHEMERAL_LO: u16 = 32_768;
const EPHEMERAL_HI: u16 = 60_999;
const WAN_IF: u32 = 100;
const SHORT_MAX_MS: u64 = 30_000;
const LONG_MS: RangeInclusive<u64> = 120_000..=3_600_000;

/// A prime above [`MAX_HOSTS`], hence coprime with every population size:
/// multiplying by it modulo `hosts` permutes ranks, so the busiest hosts
/// spread over subnets and exporters.
const RANK_MULTIPLIER: u64 = 2_654_435_761;

/// Where the host of a rank sits in the address plan; `rank + 1` keeps the
/// busiest host off the first address.
fn slot_of_rank(rank: u32, hosts: u32) -> u32 {
    ((u64::from(rank) + 1) * RANK_MULTIPLIER % u64::from(hosts)) as u32
}

fn exporter_addr(e: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, e + 1))
}

fn lan_ports(exporter: u8) -> u32 {
    2 + u32::from(exporter) % 3
}

fn upstream_v4(e: u8, uplink: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(
        198,
        51,
        100,
        1 + ((2 * u32::from(e) + uplink) % 100) as u8,
    ))
}

fn upstream_v6(e: u8, uplink: u32) -> (IpAddr, IpAddr) {
    let link_local = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1 + uplink as u16);
    let global = Ipv6Addr::new(
        0x2001,
        0xdb8,
        0xffff,
        u16::from(e),
        0,
        0,
        0,
        1 + uplink as u16,
    );
    (IpAddr::V6(link_local), IpAddr::V6(global))
}

/// One end of a conversation, as the exporter sees it.
#[derive(Debug, Clone, Copy)]
struct End {
    addr: IpAddr,
    mask: u8,
    asn: u32,
    /// The exporter's interface towards this end.
    iface: u32,
    /// Next hop and BGP next hop of a flow going to this end.
    hop: IpAddr,
    bgp_hop: IpAddr,
}

impl End {
    fn inside(addr: IpAddr, mask: u8, lan: u32) -> End {
        let none = match addr {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        End {
            addr,
            mask,
            asn: 0,
            iface: lan,
            hop: none,
            bgp_hop: none,
        }
    }

    fn outside(addr: IpAddr, mask: u8, asn: u32, e: u8, uplink: u32) -> End {
        let (hop, bgp_hop) = match addr {
            IpAddr::V4(_) => (upstream_v4(e, uplink), upstream_v4(e, uplink)),
            IpAddr::V6(_) => upstream_v6(e, uplink),
        };
        End {
            addr,
            mask,
            asn,
            iface: WAN_IF + uplink,
            hop,
            bgp_hop,
        }
    }
}

/// An external peer: `/16` number `slot % 63` of `100.65.0.0` ..
/// `100.127.0.0`, host `slot / 63 + 1` inside it.
fn outside(slot: u32, v6: bool, e: u8) -> End {
    let prefix = slot % OUTSIDE_PREFIXES;
    let host = slot / OUTSIDE_PREFIXES + 1;
    let asn = 64_496 + prefix % 16;
    let uplink = (prefix + u32::from(e)) % 2;
    if v6 {
        let a = (OUTSIDE_V6 << 112) | (u128::from(0x100 + prefix) << 96) | u128::from(host);
        End::outside(IpAddr::V6(Ipv6Addr::from(a)), 32, asn, e, uplink)
    } else {
        let a = (100 << 24) | ((65 + prefix) << 16) | host;
        End::outside(IpAddr::V4(Ipv4Addr::from(a)), 16, asn, e, uplink)
    }
}

struct WellKnown {
    v4: Ipv4Addr,
    v6: Ipv6Addr,
    asn: u32,
}

const DNS_SERVERS: [WellKnown; 2] = [
    WellKnown {
        v4: Ipv4Addr::new(203, 0, 113, 53),
        v6: Ipv6Addr::new(0x3fff, 0, 0, 0x53, 0, 0, 0, 0x53),
        asn: 65_540,
    },
    WellKnown {
        v4: Ipv4Addr::new(203, 0, 113, 153),
        v6: Ipv6Addr::new(0x3fff, 0, 0, 0x53, 0, 0, 0, 0x153),
        asn: 65_540,
    },
];

const NTP_SERVERS: [WellKnown; 4] = [
    WellKnown {
        v4: Ipv4Addr::new(198, 51, 100, 123),
        v6: Ipv6Addr::new(0x3fff, 0, 0, 0x123, 0, 0, 0, 1),
        asn: 65_541,
    },
    WellKnown {
        v4: Ipv4Addr::new(198, 51, 100, 124),
        v6: Ipv6Addr::new(0x3fff, 0, 0, 0x123, 0, 0, 0, 2),
        asn: 65_541,
    },
    WellKnown {
        v4: Ipv4Addr::new(198, 51, 100, 125),
        v6: Ipv6Addr::new(0x3fff, 0, 0, 0x123, 0, 0, 0, 3),
        asn: 65_541,
    },
    WellKnown {
        v4: Ipv4Addr::new(198, 51, 100, 126),
        v6: Ipv6Addr::new(0x3fff, 0, 0, 0x123, 0, 0, 0, 4),
        asn: 65_541,
    },
];

fn well_known(servers: &[WellKnown], i: usize, v6: bool, e: u8) -> End {
    let s = &servers[i];
    if v6 {
        End::outside(IpAddr::V6(s.v6), 48, s.asn, e, 0)
    } else {
        End::outside(IpAddr::V4(s.v4), 24, s.asn, e, 0)
    }
}

// ---------------------------------------------------------------------------
// Traffic classes

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;

/// `(type << 8) | code`: port unreachable, host unreachable, TTL exceeded.
const ICMP4_ERRORS: [u16; 3] = [0x0303, 0x0301, 0x0b00];
/// ICMPv6: port unreachable, address unreachable, hop limit exceeded.
const ICMP6_ERRORS: [u16; 3] = [0x0104, 0x0103, 0x0300];

const TCP_MISC: [u16; 12] = [
    587, 995, 143, 5222, 5228, 8883, 1883, 9000, 5060, 6443, 9418, 1433,
];
const UDP_MISC: [u16; 8] = [500, 4500, 3478, 1194, 51820, 5060, 161, 514];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Tcp,
    Udp,
    /// ICMP(v6) echo request and reply.
    Echo,
    /// An ICMP(v6) error from the outside, no reply.
    IcmpError,
    /// A tunnel protocol without ports.
    Tunnel(u8),
}

#[derive(Debug, Clone, Copy)]
enum Port {
    Fixed(u16),
    TcpMisc,
    UdpMisc,
}

#[derive(Debug, Clone, Copy)]
enum Peer {
    External,
    Internal,
    Dns,
    Ntp,
}

/// One kind of conversation.
#[derive(Debug, Clone, Copy)]
struct Class {
    kind: Kind,
    port: Port,
    peer: Peer,
    /// The outside (or the `peer`) opens the conversation.
    inbound: bool,
    /// Flow records per conversation: 2 with a reply, 1 without.
    flows: u64,
    /// Share of all regular flow records, per mille.
    weight: u16,
    /// Index into [`PROFILES`]: packets of the bulk side.
    profile: u8,
    /// Percent of conversations in which the reply carries the bulk.
    bulk_reply_pct: u8,
    /// Average packet size of the bulk side, inclusive bounds (IPv4; IPv6
    /// adds 20).
    bulk_size: (u64, u64),
    /// Average packet size of the other side.
    other_size: (u64, u64),
    /// The other side's packets, percent of the bulk side's.
    other_pct: u8,
    /// TCP: percent of connections refused (SYN, RST ACK).
    refused_pct: u8,
    tos: u8,
}

const WEB: u8 = 0;
const SSH: u8 = 1;
const MAIL: u8 = 2;
const RDP: u8 = 3;
const SMB: u8 = 4;
const DB: u8 = 5;
const MISC: u8 = 6;
const ONE: u8 = 7;
const PING: u8 = 8;
const TUNNEL: u8 = 9;

/// `(median, sigma)` of the log-normal packet counts of the bulk side.
const PROFILES: [(f64, f64); 10] = [
    (10.0, 1.8),  // WEB
    (40.0, 1.5),  // SSH
    (15.0, 1.0),  // MAIL
    (300.0, 1.3), // RDP
    (25.0, 1.8),  // SMB
    (8.0, 1.0),   // DB
    (6.0, 1.5),   // MISC
    (1.0, 0.0),   // ONE
    (4.0, 0.4),   // PING
    (80.0, 1.5),  // TUNNEL
];

const fn tcp(port: u16, peer: Peer, weight: u16, profile: u8) -> Class {
    Class {
        kind: Kind::Tcp,
        port: Port::Fixed(port),
        peer,
        inbound: false,
        flows: 2,
        weight,
        profile,
        bulk_reply_pct: 90,
        bulk_size: (900, 1450),
        other_size: (52, 120),
        other_pct: 50,
        refused_pct: 4,
        tos: 0,
    }
}

const fn udp(port: u16, peer: Peer, weight: u16, profile: u8) -> Class {
    Class {
        kind: Kind::Udp,
        ..tcp(port, peer, weight, profile)
    }
}

const N_CLASSES: usize = 20;

/// The regular conversations. Weights are per mille of flow records and
/// sum to 1000: TCP 750, UDP 220, ICMP 20, other 10.
static CLASSES: [Class; N_CLASSES] = [
    tcp(443, Peer::External, 430, WEB),
    tcp(80, Peer::External, 90, WEB),
    tcp(8080, Peer::Internal, 30, WEB),
    Class {
        bulk_reply_pct: 50,
        bulk_size: (80, 250),
        other_size: (52, 100),
        other_pct: 80,
        tos: 0x48,
        ..tcp(22, Peer::External, 15, SSH)
    },
    // Inbound SSH: mostly scanners knocking on closed ports.
    Class {
        inbound: true,
        bulk_reply_pct: 50,
        bulk_size: (80, 250),
        other_size: (52, 100),
        other_pct: 80,
        refused_pct: 40,
        tos: 0x48,
        ..tcp(22, Peer::External, 10, SSH)
    },
    Class {
        inbound: true,
        bulk_reply_pct: 10,
        bulk_size: (400, 1200),
        other_size: (52, 90),
        ..tcp(25, Peer::External, 15, MAIL)
    },
    Class {
        bulk_reply_pct: 80,
        bulk_size: (200, 1100),
        other_size: (52, 140),
        other_pct: 60,
        tos: 0x48,
        ..tcp(3389, Peer::Internal, 15, RDP)
    },
    Class {
        bulk_reply_pct: 70,
        bulk_size: (700, 1450),
        other_size: (60, 200),
        ..tcp(445, Peer::Internal, 40, SMB)
    },
    Class {
        bulk_reply_pct: 80,
        bulk_size: (400, 1200),
        other_size: (52, 90),
        ..tcp(993, Peer::External, 20, MAIL)
    },
    tcp(8443, Peer::External, 15, WEB),
    Class {
        bulk_size: (150, 1000),
        other_size: (60, 300),
        other_pct: 70,
        ..tcp(3306, Peer::Internal, 15, DB)
    },
    Class {
        port: Port::TcpMisc,
        bulk_reply_pct: 60,
        bulk_size: (60, 1200),
        other_size: (52, 400),
        other_pct: 70,
        refused_pct: 8,
        ..tcp(0, Peer::External, 55, MISC)
    },
    Class {
        bulk_reply_pct: 100,
        bulk_size: (80, 400),
        other_size: (60, 90),
        other_pct: 100,
        ..udp(53, Peer::Dns, 110, ONE)
    },
    Class {
        bulk_size: (1200, 1350),
        other_size: (60, 120),
        other_pct: 30,
        ..udp(443, Peer::External, 80, WEB)
    },
    Class {
        bulk_size: (76, 76),
        other_size: (76, 76),
        other_pct: 100,
        ..udp(123, Peer::Ntp, 10, ONE)
    },
    Class {
        port: Port::UdpMisc,
        bulk_reply_pct: 50,
        bulk_size: (60, 1200),
        other_size: (60, 400),
        other_pct: 80,
        ..udp(0, Peer::External, 20, MISC)
    },
    Class {
        kind: Kind::Echo,
        bulk_size: (84, 84),
        other_size: (84, 84),
        other_pct: 100,
        ..tcp(0, Peer::External, 16, PING)
    },
    Class {
        kind: Kind::IcmpError,
        inbound: true,
        flows: 1,
        bulk_reply_pct: 0,
        bulk_size: (56, 590),
        ..tcp(0, Peer::External, 4, ONE)
    },
    Class {
        kind: Kind::Tunnel(50),
        bulk_reply_pct: 50,
        bulk_size: (120, 1400),
        other_size: (120, 1400),
        other_pct: 90,
        ..tcp(0, Peer::External, 6, TUNNEL)
    },
    Class {
        kind: Kind::Tunnel(47),
        bulk_reply_pct: 50,
        bulk_size: (120, 1400),
        other_size: (120, 1400),
        other_pct: 90,
        ..tcp(0, Peer::External, 4, TUNNEL)
    },
];

/// What runs for 2–60 min: `(index into CLASSES, weight)`. About 75 % TCP,
/// like the regular mix.
const LONG_CLASSES: [(usize, u64); 6] = [(0, 45), (3, 10), (6, 10), (7, 10), (13, 20), (18, 5)];

/// Cumulative thresholds on a 32-bit scale.
fn cumulative<const N: usize>(weights: &[u64; N]) -> [u64; N] {
    let total: u64 = weights.iter().sum();
    let mut acc = 0;
    weights.map(|w| {
        acc += w;
        (acc << 32) / total
    })
}

#[inline]
fn pick(cum: &[u64], rng: &mut Rng) -> usize {
    let r = rng.next() >> 32;
    cum.iter().position(|&t| r < t).unwrap_or(cum.len() - 1)
}

// ---------------------------------------------------------------------------
// Time

/// Stratified end times of the regular flows: slot `i` of `n` is
/// `[start + ⌊i·D/n⌋, start + ⌊(i+1)·D/n⌋)`, stepped without division.
#[derive(Debug, Clone)]
struct Clock {
    /// Slots not taken yet.
    left: u64,
    /// The end time drawn for the next slot (valid when `left > 0`).
    next: u64,
    /// Start of the slot after `next`'s.
    lo: u64,
    q: u64,
    r: u64,
    acc: u64,
    n: u64,
}

impl Clock {
    fn new(start: u64, duration: u64, n: u64, rng: &mut Rng) -> Clock {
        let mut c = Clock {
            left: n,
            next: start,
            lo: start,
            q: duration.checked_div(n).unwrap_or(0),
            r: duration.checked_rem(n).unwrap_or(0),
            acc: 0,
            n,
        };
        if n > 0 {
            c.draw(rng);
        }
        c
    }

    fn draw(&mut self, rng: &mut Rng) {
        let mut hi = self.lo + self.q;
        self.acc += self.r;
        if self.acc >= self.n {
            self.acc -= self.n;
            hi += 1;
        }
        self.next = self.lo + mul_hi(rng.next(), hi - self.lo);
        self.lo = hi;
    }

    /// Takes the next slot's end time. Call only with `left > 0`.
    #[inline]
    fn take(&mut self, rng: &mut Rng) -> u64 {
        let t = self.next;
        self.left -= 1;
        if self.left > 0 {
            self.draw(rng);
        }
        t
    }
}

// ---------------------------------------------------------------------------
// Beacons

/// Latest end of a beacon exchange after its nominal tick: jitter, upload,
/// reply delay.
const BEACON_SPAN_MS: u64 = BEACON_JITTER_MS + 8_000 + 20;

/// Ticks `j` such that the whole exchange of tick `j` ends in the window.
fn beacon_ticks(duration: u64, phase: u64) -> u64 {
    match duration.checked_sub(phase + BEACON_SPAN_MS) {
        Some(room) => room / BEACON_PERIOD_MS + 1,
        None => 0,
    }
}

#[derive(Debug, Clone)]
struct BeaconStream {
    index: usize,
    rng: Rng,
    /// Flows left, `next` included.
    left: u64,
    tick: u64,
    next: Flow,
    after: Option<Flow>,
}

impl BeaconStream {
    fn new(cfg: &SynthConfig, index: usize, ticks: u64, rng: Rng) -> BeaconStream {
        let mut s = BeaconStream {
            index,
            rng,
            left: 2 * ticks,
            tick: 0,
            next: Flow::default(),
            after: None,
        };
        if ticks > 0 {
            s.exchange(cfg);
        }
        s
    }

    /// Builds the upload and reply of the current tick into `next`/`after`.
    fn exchange(&mut self, cfg: &SynthConfig) {
        let b = &BEACON_TABLE[self.index];
        let rng = &mut self.rng;
        let e = (self.index % usize::from(cfg.exporters)) as u8;
        let p = (self.tick % 3) as usize;
        let [a, b2, _, _] = BEACON_PREFIXES[p].octets();
        let dst = Ipv4Addr::new(a, b2, rng.below(256) as u8, 1 + rng.below(254) as u8);
        let uplink = (p % 2) as u32;
        let nominal = cfg.start_ms + b.phase_ms + self.tick * BEACON_PERIOD_MS;
        let first_ms = nominal - BEACON_JITTER_MS + rng.below(2 * BEACON_JITTER_MS + 1);
        let last_ms = first_ms + rng.range(2_000..=8_000);
        let bytes = rng.range(BEACON_BYTES);
        let packets = bytes.div_ceil(rng.range(1_380..=1_460));
        let sport = EPHEMERAL_LO + rng.below(u64::from(EPHEMERAL_HI - EPHEMERAL_LO) + 1) as u16;
        let upload = Flow {
            exporter: exporter_addr(e),
            source_id: u32::from(e),
            template_id: TEMPLATE_V4,
            src_addr: IpAddr::V4(b.source),
            dst_addr: IpAddr::V4(dst),
            src_port: sport,
            dst_port: b.dst_port,
            protocol: 6,
            tcp_flags: FIN | SYN | PSH | ACK,
            tos: 0,
            input_if: 1,
            output_if: WAN_IF + uplink,
            src_as: 0,
            dst_as: BEACON_AS[p],
            src_mask: 24,
            dst_mask: BEACON_MASKS[p],
            next_hop: Some(upstream_v4(e, uplink)),
            bgp_next_hop: Some(upstream_v4(e, uplink)),
            direction: Some(0),
            bytes,
            packets,
            out_bytes: 0,
            out_packets: 0,
            first_ms,
            last_ms,
            sampling_interval: 1,
        };
        let acks = packets / 2;
        let none = Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let reply = Flow {
            src_addr: upload.dst_addr,
            dst_addr: upload.src_addr,
            src_port: upload.dst_port,
            dst_port: upload.src_port,
            input_if: upload.output_if,
            output_if: upload.input_if,
            src_as: upload.dst_as,
            dst_as: 0,
            src_mask: upload.dst_mask,
            dst_mask: 24,
            next_hop: none,
            bgp_next_hop: none,
            bytes: acks * 40,
            packets: acks,
            first_ms: first_ms + rng.range(20..=80),
            last_ms: last_ms + rng.range(1..=19),
            ..upload
        };
        self.next = upload;
        self.after = Some(reply);
        self.tick += 1;
    }

    fn take(&mut self, cfg: &SynthConfig) -> Flow {
        let out = self.next;
        self.left -= 1;
        if let Some(reply) = self.after.take() {
            self.next = reply;
        } else if self.left > 0 {
            self.exchange(cfg);
        }
        out
    }
}

// ---------------------------------------------------------------------------
// Randomness

/// xoshiro256\*\* (Blackman and Vigna), seeded through splitmix64.
#[derive(Debug, Clone)]
struct Rng([u64; 4]);

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(GOLDEN);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Rng {
    fn new(seed: u64) -> Rng {
        let mut s = seed;
        Rng([
            splitmix64(&mut s),
            splitmix64(&mut s),
            splitmix64(&mut s),
            splitmix64(&mut s),
        ])
    }

    #[inline]
    fn next(&mut self) -> u64 {
        let s = &mut self.0;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in `0..n` (multiply-shift; the bias, below n / 2⁶⁴, does not
    /// matter here). 0 when `n` is 0.
    #[inline]
    fn below(&mut self, n: u64) -> u64 {
        mul_hi(self.next(), n)
    }

    /// Uniform in the inclusive range.
    #[inline]
    fn range(&mut self, r: RangeInclusive<u64>) -> u64 {
        let (lo, hi) = r.into_inner();
        lo + self.below(hi - lo + 1)
    }
}

#[inline]
fn mul_hi(a: u64, b: u64) -> u64 {
    ((u128::from(a) * u128::from(b)) >> 64) as u64
}

// ---------------------------------------------------------------------------
// Distributions

#[derive(Debug, Clone, Copy)]
struct AliasEntry {
    /// Keep the bucket when the low 32 random bits are below this.
    threshold: u32,
    alias: u32,
}

/// Vose's alias table for Zipf weights (k + 1)^−s, indexed by host slot.
/// Only IEEE basic operations and [`det::exp`]/[`det::ln`]: identical on
/// every platform.
fn zipf_alias(n: u32, s: f64) -> Box<[AliasEntry]> {
    let len = n as usize;
    let mut p = vec![0.0f64; len];
    let mut total = 0.0;
    for rank in 0..n {
        let w = det::exp(-s * det::ln(f64::from(rank) + 1.0));
        p[slot_of_rank(rank, n) as usize] = w;
        total += w;
    }
    let scale = f64::from(n) / total;
    let mut small = Vec::new();
    let mut large = Vec::new();
    for (i, w) in p.iter_mut().enumerate() {
        *w *= scale;
        if *w < 1.0 {
            small.push(i as u32);
        } else {
            large.push(i as u32);
        }
    }
    let mut table: Box<[AliasEntry]> = (0..n)
        .map(|i| AliasEntry {
            threshold: u32::MAX,
            alias: i,
        })
        .collect();
    while let (Some(&s), Some(&l)) = (small.last(), large.last()) {
        small.pop();
        table[s as usize] = AliasEntry {
            threshold: to_threshold(p[s as usize]),
            alias: l,
        };
        p[l as usize] = (p[l as usize] + p[s as usize]) - 1.0;
        if p[l as usize] < 1.0 {
            large.pop();
            small.push(l);
        }
    }
    // Whatever is left holds probability 1 up to rounding: it keeps
    // `threshold: u32::MAX, alias: itself`.
    table
}

fn to_threshold(p: f64) -> u32 {
    // `as` saturates: p ≥ 1 gives u32::MAX, and the alias is then never
    // reached but with probability 2⁻³².
    (p * 4_294_967_296.0) as u32
}

/// Bins of the packet-count tables, indexed by the Irwin–Hall sum of four
/// 16-bit uniforms shifted right by 8.
const BINS: usize = 1024;

#[inline]
fn bin(r: u64) -> usize {
    let s = (r & 0xffff) + ((r >> 16) & 0xffff) + ((r >> 32) & 0xffff) + (r >> 48);
    (s >> 8) as usize
}

/// `median × exp(sigma × z)` at the middle of each bin, z approximately
/// standard normal.
fn packet_tables() -> Box<[u32]> {
    let mean = 2.0 * 65_535.0;
    // Variance of a uniform on 0..=65535 is (65536² − 1) / 12; four of them.
    let sd = (4.0 * (65_536.0 * 65_536.0 - 1.0) / 12.0f64).sqrt();
    let mut out = Vec::with_capacity(PROFILES.len() * BINS);
    for &(median, sigma) in &PROFILES {
        for b in 0..BINS {
            let z = ((b as f64) * 256.0 + 127.5 - mean) / sd;
            let v = (median * det::exp(sigma * z)).round();
            out.push(v.clamp(1.0, 10_000_000.0) as u32);
        }
    }
    out.into_boxed_slice()
}

/// `ln` and `exp` from IEEE 754 basic operations only, so the tables built
/// from them are the same on every platform (libm's may differ in the last
/// bit). Accurate to a few ulps, ample for weights.
mod det {
    use core::f64::consts::{LN_2, SQRT_2};

    pub(super) fn ln(x: f64) -> f64 {
        debug_assert!(x.is_normal() && x > 0.0);
        let bits = x.to_bits();
        let mut e = ((bits >> 52) & 0x7ff) as i32 - 1023;
        let mut m = f64::from_bits((bits & ((1 << 52) - 1)) | (1023 << 52));
        if m > SQRT_2 {
            m *= 0.5;
            e += 1;
        }
        // ln m = 2 atanh t, |t| ≤ 0.172: t²⁰ is below 2⁻⁵².
        let t = (m - 1.0) / (m + 1.0);
        let t2 = t * t;
        let mut term = t;
        let mut sum = 0.0;
        let mut k = 1.0;
        for _ in 0..14 {
            sum += term / k;
            term *= t2;
            k += 2.0;
        }
        f64::from(e) * LN_2 + 2.0 * sum
    }

    pub(super) fn exp(x: f64) -> f64 {
        if x < -708.0 {
            return 0.0;
        }
        if x > 709.0 {
            return f64::INFINITY;
        }
        // fdlibm's split of ln 2: n × hi is exact for |n| < 2¹¹.
        let ln2_hi = f64::from_bits(0x3fe6_2e42_fee0_0000);
        let ln2_lo = f64::from_bits(0x3dea_39ef_3579_3c76);
        let n = (x / LN_2).round();
        let r = (x - n * ln2_hi) - n * ln2_lo;
        // |r| ≤ 0.35: 18 Taylor terms reach 2⁻⁵³.
        let mut term = 1.0;
        let mut sum = 1.0;
        for k in 1..=18 {
            term *= r / f64::from(k);
            sum += term;
        }
        sum * f64::from_bits(((n as i64 + 1023) as u64) << 52)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn det_math_matches_libm() {
        for &x in &[
            1e-300, 1e-5, 0.3, 1.0, 1.5, 2.0, 3.0, 10.0, 12345.678, 4e6, 1e300,
        ] {
            let (ours, std) = (det::ln(x), x.ln());
            assert!(
                (ours - std).abs() <= 4.0 * f64::EPSILON * std.abs().max(1.0),
                "ln {x}"
            );
        }
        for &x in &[-700.0, -20.0, -1.0, -1e-9, 0.0, 0.5, 1.0, 7.3, 100.0, 700.0] {
            let (ours, std) = (det::exp(x), x.exp());
            assert!((ours - std).abs() <= 8.0 * f64::EPSILON * std, "exp {x}");
        }
        assert_eq!(det::exp(0.0), 1.0);
        assert_eq!(det::ln(1.0), 0.0);
        assert_eq!(det::exp(-800.0), 0.0);
    }

    #[test]
    fn rng_is_xoshiro256starstar() {
        // Reference output of xoshiro256** from state [1, 2, 3, 4].
        let mut r = Rng([1, 2, 3, 4]);
        let got: Vec<u64> = (0..4).map(|_| r.next()).collect();
        assert_eq!(got, [11520, 0, 1509978240, 1215971899390074240]);
    }

    #[test]
    fn rank_permutation_is_a_bijection() {
        for n in [1, 2, 3, 240, 241, 1000, 63 * 64] {
            let mut seen = vec![false; n as usize];
            for rank in 0..n {
                let s = slot_of_rank(rank, n) as usize;
                assert!(!seen[s], "n {n} rank {rank}");
                seen[s] = true;
            }
        }
    }

    #[test]
    fn alias_table_reproduces_weights() {
        let n = 50;
        let table = zipf_alias(n, 1.0);
        // Exact probability of each slot from the table.
        let mut p = vec![0.0; n as usize];
        for (i, e) in table.iter().enumerate() {
            let keep = f64::from(e.threshold) / 4_294_967_296.0;
            p[i] += keep / f64::from(n);
            p[e.alias as usize] += (1.0 - keep) / f64::from(n);
        }
        let h: f64 = (1..=n).map(|k| 1.0 / f64::from(k)).sum();
        for rank in 0..n {
            let want = 1.0 / (f64::from(rank + 1) * h);
            let got = p[slot_of_rank(rank, n) as usize];
            assert!((got - want).abs() < 1e-9, "rank {rank}: {got} vs {want}");
        }
        // Uniform: every bucket keeps itself.
        assert!(zipf_alias(7, 0.0).iter().all(|e| e.threshold == u32::MAX));
    }

    #[test]
    fn clock_slots_tile_the_window() {
        let mut rng = Rng::new(3);
        for (d, n) in [
            (1000, 7),
            (7, 1000),
            (0, 5),
            (86_400_000, 9_991_360),
            (5, 5),
        ] {
            let mut c = Clock::new(100, d, n, &mut rng);
            let mut prev = 100;
            for _ in 0..n {
                let t = c.take(&mut rng);
                assert!(t >= prev && (t < 100 + d || (d == 0 && t == 100)));
                prev = t;
            }
            assert_eq!(c.left, 0);
            assert_eq!(c.lo, 100 + d, "slots end exactly at the window's end");
        }
    }

    #[test]
    fn beacon_tick_counts() {
        assert_eq!(beacon_ticks(86_400_000, 7_000), 1440);
        assert_eq!(beacon_ticks(86_400_000, 41_000), 1440);
        assert_eq!(beacon_ticks(3_600_000, 7_000), 60);
        assert_eq!(beacon_ticks(7_000 + BEACON_SPAN_MS, 7_000), 1);
        assert_eq!(beacon_ticks(7_000 + BEACON_SPAN_MS - 1, 7_000), 0);
        assert_eq!(beacon_ticks(0, 7_000), 0);
    }

    #[test]
    fn class_weights_sum_to_the_mix() {
        let by = |f: fn(&Class) -> bool| -> u16 {
            CLASSES.iter().filter(|c| f(c)).map(|c| c.weight).sum()
        };
        assert_eq!(by(|c| c.kind == Kind::Tcp), 750);
        assert_eq!(by(|c| c.kind == Kind::Udp), 220);
        assert_eq!(by(|c| matches!(c.kind, Kind::Echo | Kind::IcmpError)), 20);
        assert_eq!(by(|c| matches!(c.kind, Kind::Tunnel(_))), 10);
        for (i, _) in LONG_CLASSES {
            assert_eq!(CLASSES[i].flows, 2);
        }
    }

    #[test]
    fn packet_tables_are_log_normal_ish() {
        let t = packet_tables();
        for (p, &(median, _)) in PROFILES.iter().enumerate() {
            let row = &t[p * BINS..][..BINS];
            assert!(row.windows(2).all(|w| w[0] <= w[1]), "monotone");
            let mid = f64::from(row[BINS / 2]);
            assert!((mid / median - 1.0).abs() < 0.05, "median of profile {p}");
        }
        assert!(t[..BINS].iter().all(|&v| v >= 1));
        assert!(bin(u64::MAX) == BINS - 1 && bin(0) == 0);
    }

    #[test]
    fn beacon_sources_take_over_their_rank() {
        let s = Synth::new(SynthConfig::small(10_000));
        assert_eq!(s.beacons().len(), 3);
        for b in BEACONS {
            assert_eq!(s.host(b.background_rank).unwrap().v4, b.source);
        }
        assert_ne!(s.host(0).unwrap().v4, s.host(1).unwrap().v4);
        assert!(s.host(50_000).is_none());
        let quiet = Synth::new(SynthConfig {
            beacons: false,
            ..SynthConfig::small(10_000)
        });
        assert!(quiet.beacons().is_empty());
        assert_eq!(quiet.beacon_flows(), 0);
        assert_ne!(quiet.host(9).unwrap().v4, BEACONS[0].source);
    }

    #[test]
    fn beacons_shrink_to_fit_small_budgets() {
        // One hour: 120 flows per source.
        for (flows, active) in [
            (10_000, 3),
            (720, 3),
            (719, 2),
            (480, 2),
            (240, 1),
            (239, 0),
        ] {
            let s = Synth::new(SynthConfig::small(flows));
            assert_eq!(s.beacons().len(), active, "{flows} flows");
            assert_eq!(s.beacon_flows(), 120 * active as u64);
            assert_eq!(s.count(), flows as usize);
        }
    }

    #[test]
    #[should_panic(expected = "hosts")]
    fn zero_hosts_is_refused() {
        let _ = Synth::new(SynthConfig {
            hosts: 0,
            ..SynthConfig::small(1)
        });
    }
}
