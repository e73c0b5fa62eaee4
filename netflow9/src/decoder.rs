//! The decoder: export packets in, records out, everything counted.

use core::net::IpAddr;

use crate::counters::Counters;
use crate::dataset::DataSet;
use crate::domain::{DomainKey, DomainState, DomainStats};
use crate::flow::RecordContext;
use crate::managed::Managed;
use crate::pending::{Churn, Pending};
use crate::record::Record;
use crate::sampling::{self, Samplers};
use crate::table::{index_len, Slot, Table};
use crate::template::{Template, MAX_FIELDS};
use crate::wire::template::AnyTemplate;
use crate::wire::{FlowSetIter, FlowSetKind, HeaderRepr, PacketHeader, TemplateRecordIter};
use crate::{Error, ErrorKind, Result};

/// Where decoded data goes: per record or per data FlowSet.
pub(crate) trait Visit {
    fn set(&mut self, set: &DataSet<'_>);
}

/// Hands out every record.
struct PerRecord<F>(F);

impl<F: FnMut(&Record<'_>)> Visit for PerRecord<F> {
    #[inline]
    fn set(&mut self, set: &DataSet<'_>) {
        let _ = for_each_record(
            set.template,
            &set.ctx,
            set.body,
            set.samplers,
            set.replayed,
            &mut self.0,
        );
    }
}

/// Hands out whole data FlowSets.
struct PerSet<F>(F);

impl<F: FnMut(&DataSet<'_>)> Visit for PerSet<F> {
    #[inline]
    fn set(&mut self, set: &DataSet<'_>) {
        (self.0)(set);
    }
}

/// Cache key of a template (RFC 3954 §9: "the Template ID [...] is unique
/// per Exporter and Source ID").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct TemplateKey {
    /// The exporter's address. The UDP source port is deliberately not part
    /// of the key: exporters change it.
    pub exporter: IpAddr,
    /// The Source ID.
    pub source_id: u32,
    /// The Template ID.
    pub template_id: u16,
}

/// Decoder limits. Every byte of memory the decoder uses follows from these;
/// nothing a sender does can make it allocate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Config {
    /// Templates kept (all exporters together). Default 4096.
    pub templates: usize,
    /// Most fields per template (≤ [`MAX_FIELDS`]). Default 128.
    pub max_fields: usize,
    /// (exporter, Source ID) states kept. Default 1024.
    pub domains: usize,
    /// Bytes for data FlowSets that arrive before their template, their
    /// headers and their index ([`crate::PENDING_ENTRY_OVERHEAD`] per
    /// FlowSet in all). When full, the oldest are dropped. Default 1 MiB.
    pub pending_bytes: usize,
    /// How long such FlowSets wait, in seconds of the newest export time
    /// seen from any exporter (so the data of an exporter that went quiet
    /// ages too). Default 120.
    pub pending_max_age_secs: u32,
    /// Seed of the cache's hash function (set it from a random source to
    /// resist crafted collisions). Default: a fixed constant.
    pub hash_seed: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            templates: 4096,
            max_fields: MAX_FIELDS,
            domains: 1024,
            pending_bytes: 1 << 20,
            pending_max_age_secs: 120,
            hash_seed: 0x5eed_f10e_2024_0301,
        }
    }
}

/// A slot of template storage, for [`Storage`].
pub type TemplateSlot = Slot<TemplateKey, Template>;
/// A slot of domain storage, for [`Storage`].
pub type DomainSlot = Slot<DomainKey, DomainState>;

/// An empty template slot, to fill caller-provided storage.
#[must_use]
pub const fn empty_template_slot() -> TemplateSlot {
    Slot::empty(
        TemplateKey {
            exporter: IpAddr::V4(core::net::Ipv4Addr::UNSPECIFIED),
            source_id: 0,
            template_id: 0,
        },
        Template::EMPTY,
    )
}

/// An empty domain slot, to fill caller-provided storage.
#[must_use]
pub fn empty_domain_slot() -> DomainSlot {
    Slot::empty(
        DomainKey {
            exporter: IpAddr::V4(core::net::Ipv4Addr::UNSPECIFIED),
            source_id: 0,
        },
        DomainState::default(),
    )
}

/// Caller-provided storage, for use without an allocator.
///
/// Index slices should be [`Storage::index_len`] of their table's capacity:
/// a shorter index shrinks the capacity to half its length, to none for an
/// empty one ([`Decoder::template_capacity`] tells what came of it).
#[derive(Debug)]
pub struct Storage<'a> {
    /// Template slots; their number is the template capacity.
    pub templates: &'a mut [TemplateSlot],
    /// Template hash index.
    pub template_index: &'a mut [u32],
    /// Domain slots.
    pub domains: &'a mut [DomainSlot],
    /// Domain hash index.
    pub domain_index: &'a mut [u32],
    /// Pending-FlowSet buffer.
    pub pending: &'a mut [u8],
}

impl Storage<'_> {
    /// The index length for a table of `capacity` slots.
    #[must_use]
    pub const fn index_len(capacity: usize) -> usize {
        index_len(capacity)
    }
}

/// What one export packet contained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PacketSummary {
    /// The header.
    pub header: HeaderRepr,
    /// Data records handed to the sink (replayed ones included).
    pub records: u32,
    /// Options records handed to the sink.
    pub options_records: u32,
    /// Template and Options Template records learned.
    pub templates: u32,
    /// Malformed structures skipped.
    pub errors: u32,
    /// The first of them.
    pub first_error: Option<Error>,
}

/// A NetFlow v9 decoder with its template cache, exporter states and
/// pending buffer. Memory is fixed at construction.
///
/// ```
/// use netflow9::{Config, Decoder};
/// let mut decoder = Decoder::new(Config::default());
/// # let datagram = [0u8; 0];
/// let exporter = "192.0.2.1".parse().unwrap();
/// let mut bytes = 0;
/// match decoder.decode(exporter, &datagram, |record| {
///     if !record.is_options() {
///         bytes += record.flow().bytes;
///     }
/// }) {
///     Ok(summary) => println!("{} records", summary.records),
///     Err(e) => println!("not an export packet: {e}"), // counted too
/// }
/// ```
#[derive(Debug)]
pub struct Decoder<'a> {
    config: Config,
    templates: Table<'a, TemplateKey, Template>,
    domains: Table<'a, DomainKey, DomainState>,
    pending: Pending<'a>,
    counters: Counters,
    /// Slots of the last template and domain looked up. Consecutive
    /// packets mostly come from one exporter and use one template, and
    /// comparing a slot's key is cheaper than hashing it.
    recent: Recent,
}

/// See `Decoder::recent`; each slot is checked against its key before use.
#[derive(Debug, Clone, Copy, Default)]
struct Recent {
    template: usize,
    domain: usize,
}

#[cfg(feature = "alloc")]
impl Decoder<'static> {
    /// A decoder whose storage is allocated now, once.
    #[must_use]
    pub fn new(config: Config) -> Self {
        let templates = Table::new(
            Managed::owned(config.templates, empty_template_slot()),
            Managed::owned(index_len(config.templates), 0),
            config.hash_seed,
        );
        let domains = Table::new(
            Managed::owned(config.domains, empty_domain_slot()),
            Managed::owned(index_len(config.domains), 0),
            config.hash_seed.rotate_left(17),
        );
        let pending = Pending::new(
            Managed::owned(config.pending_bytes, 0),
            config.pending_max_age_secs,
            config.hash_seed.rotate_left(31),
        );
        Decoder {
            config,
            templates,
            domains,
            pending,
            counters: Counters::default(),
            recent: Recent::default(),
        }
    }
}

impl<'a> Decoder<'a> {
    /// A decoder over caller-provided storage (no allocator needed).
    /// Capacities come from the slices (see [`Storage`]); `config`'s sizes
    /// are ignored. Debug builds assert that each index is long enough for
    /// its slots.
    pub fn with_storage(config: Config, storage: Storage<'a>) -> Self {
        debug_assert!(
            storage.template_index.len() >= index_len(storage.templates.len())
                && storage.domain_index.len() >= index_len(storage.domains.len()),
            "Storage: index slices must be Storage::index_len(slots) long"
        );
        let templates = Table::new(
            Managed::Borrowed(storage.templates),
            Managed::Borrowed(storage.template_index),
            config.hash_seed,
        );
        let domains = Table::new(
            Managed::Borrowed(storage.domains),
            Managed::Borrowed(storage.domain_index),
            config.hash_seed.rotate_left(17),
        );
        let pending = Pending::new(
            Managed::Borrowed(storage.pending),
            config.pending_max_age_secs,
            config.hash_seed.rotate_left(31),
        );
        Decoder {
            config,
            templates,
            domains,
            pending,
            counters: Counters::default(),
            recent: Recent::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// All counters so far.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Templates cached now.
    pub fn template_count(&self) -> usize {
        self.templates.len()
    }

    /// Template capacity.
    pub fn template_capacity(&self) -> usize {
        self.templates.capacity()
    }

    /// Gives the decoder the time, in Unix seconds, for aging the data
    /// FlowSets that wait for their template (`Config::pending_max_age_secs`):
    /// from the first call on, that clock is used instead of the newest
    /// `unix_secs` of any packet header, which any sender can set far in
    /// the future and so expire everyone's waiting data. A live collector
    /// calls it with its receive time (once a second is enough); a tool
    /// decoding old captures does not. The clock never moves back. Returns
    /// how many waiting FlowSets expired (also counted in
    /// `Counters::pending_expired`).
    ///
    /// ```
    /// use netflow9::{Config, Decoder};
    /// let mut d = Decoder::new(Config::default());
    /// assert_eq!(d.set_clock(1_700_000_000), 0);
    /// ```
    pub fn set_clock(&mut self, now_unix_secs: u32) -> u64 {
        let mut churn = Churn::default();
        self.pending.set_clock(now_unix_secs, &mut churn);
        self.counters.pending_expired += churn.expired;
        churn.expired
    }

    /// FlowSets waiting for their template.
    pub fn pending_flowsets(&self) -> usize {
        self.pending.len()
    }

    /// Bytes of the pending buffer in use (entries, their headers, and
    /// space not yet reclaimed).
    pub fn pending_bytes_used(&self) -> usize {
        self.pending.used_bytes()
    }

    /// Bytes of the pending buffer that hold entries: `pending_bytes` minus
    /// its index (see [`crate::PENDING_ENTRY_OVERHEAD`]).
    pub fn pending_capacity(&self) -> usize {
        self.pending.capacity()
    }

    /// The cached template for a key.
    pub fn template(&self, key: &TemplateKey) -> Option<&Template> {
        self.templates
            .get(key)
            .and_then(|s| self.templates.value(s))
    }

    /// Every cached template, least recently refreshed first.
    pub fn templates(&self) -> impl Iterator<Item = (&TemplateKey, &Template)> + '_ {
        self.templates.iter()
    }

    /// Every observation domain: counters and samplers.
    pub fn domains(&self) -> impl Iterator<Item = (&DomainKey, &DomainStats, &Samplers)> + '_ {
        self.domains.iter().map(|(k, d)| (k, &d.stats, &d.samplers))
    }

    /// Inserts a template learned elsewhere (e.g. persisted before a restart).
    /// Returns false only for a zero-capacity cache.
    pub fn insert_template(&mut self, key: TemplateKey, template: Template) -> bool {
        match self.templates.insert(key, template) {
            Some((_, evicted)) => {
                if evicted.is_some() {
                    self.counters.template_evictions += 1;
                }
                true
            }
            None => false,
        }
    }

    /// Decodes one export packet from `exporter`, calling `sink` for every
    /// data and options record (including pending ones its templates unlock).
    ///
    /// Malformed FlowSets are counted, reported in the summary, and skipped;
    /// the rest of the packet is still decoded.
    ///
    /// # Errors
    /// Only when the header itself is unusable (shorter than 20 bytes, or not
    /// version 9); counted in `rejected_packets` and `malformed`.
    pub fn decode<F>(&mut self, exporter: IpAddr, datagram: &[u8], sink: F) -> Result<PacketSummary>
    where
        F: FnMut(&Record<'_>),
    {
        self.decode_with(exporter, datagram, &mut PerRecord(sink))
    }

    /// As [`Decoder::decode`], but hands out each data FlowSet (data and
    /// options) whole, with its template: for callers that read a few fields
    /// of every record and want to look their offsets up once per FlowSet
    /// (see [`DataSet`]). Counting, sampler learning and the pending buffer
    /// work exactly as with `decode`.
    ///
    /// # Errors
    /// As [`Decoder::decode`].
    pub fn decode_sets<F>(
        &mut self,
        exporter: IpAddr,
        datagram: &[u8],
        sink: F,
    ) -> Result<PacketSummary>
    where
        F: FnMut(&DataSet<'_>),
    {
        self.decode_with(exporter, datagram, &mut PerSet(sink))
    }

    fn decode_with<V: Visit>(
        &mut self,
        exporter: IpAddr,
        datagram: &[u8],
        sink: &mut V,
    ) -> Result<PacketSummary> {
        let packet = match PacketHeader::new_checked(datagram) {
            Ok(p) => p,
            Err(e) => {
                self.counters.rejected_packets += 1;
                self.counters.count_error(e.kind);
                return Err(e);
            }
        };
        let header = packet.repr();
        self.counters.packets += 1;
        let ctx = RecordContext {
            exporter,
            source_id: header.source_id,
            sys_uptime: header.sys_uptime,
            unix_secs: header.unix_secs,
            sequence_number: header.sequence_number,
        };
        let dkey = DomainKey {
            exporter,
            source_id: header.source_id,
        };
        let mut churn = Churn::default();
        self.pending.advance(header.unix_secs, &mut churn);
        let dslot = self.domain_slot(dkey, &header, &mut churn);
        let mut summary = PacketSummary {
            header,
            ..PacketSummary::default()
        };

        for set in FlowSetIter::new(packet.payload()) {
            let set = match set {
                Ok(s) => s,
                Err(e) => {
                    self.note_error(&mut summary, e);
                    break;
                }
            };
            match set.kind() {
                FlowSetKind::Template | FlowSetKind::OptionsTemplate => {
                    let options = set.kind() == FlowSetKind::OptionsTemplate;
                    let iter = if options {
                        TemplateRecordIter::options(
                            set.body(),
                            set.body_offset(),
                            self.config.max_fields,
                        )
                    } else {
                        TemplateRecordIter::templates(
                            set.body(),
                            set.body_offset(),
                            self.config.max_fields,
                        )
                    };
                    for t in iter {
                        if let Ok(wire) = &t {
                            if self.refresh(&ctx, wire, &mut summary) {
                                continue;
                            }
                        }
                        match t.and_then(|t| {
                            Template::from_wire(&t, self.config.max_fields, set.body_offset())
                                .map(|tpl| (t, tpl))
                        }) {
                            Ok((wire, tpl)) => {
                                let at = set.body_offset();
                                self.learn(
                                    &ctx,
                                    dslot,
                                    &wire,
                                    tpl,
                                    at,
                                    &mut summary,
                                    &mut churn,
                                    sink,
                                );
                            }
                            // The iterator has stepped over the record (or
                            // stopped, when its length is unknown): one bad
                            // template does not cost the ones after it.
                            Err(e) => self.note_error(&mut summary, e),
                        }
                    }
                }
                FlowSetKind::Reserved(_) => self.counters.reserved_flowsets += 1,
                FlowSetKind::Data(id) => {
                    let key = TemplateKey {
                        exporter,
                        source_id: header.source_id,
                        template_id: id,
                    };
                    match self.template_slot(&key) {
                        Some(slot) => {
                            let r = self.decode_data(
                                slot,
                                dslot,
                                &ctx,
                                set.body(),
                                false,
                                &mut summary,
                                sink,
                            );
                            if let Err(e) = r {
                                let e = Error::new(e.kind, set.body_offset() + e.offset);
                                self.note_error(&mut summary, e);
                            }
                        }
                        None => {
                            self.counters.unknown_template_flowsets += 1;
                            if self.pending.push(&ctx, id, set.body(), &mut churn) {
                                self.counters.pending_buffered += 1;
                            }
                        }
                    }
                }
            }
        }
        self.counters.pending_overflow += churn.overflow;
        self.counters.pending_expired += churn.expired;
        Ok(summary)
    }

    fn note_error(&mut self, summary: &mut PacketSummary, e: Error) {
        self.counters.count_error(e.kind);
        summary.errors += 1;
        summary.first_error.get_or_insert(e);
    }

    /// The slot of a cached template.
    fn template_slot(&mut self, key: &TemplateKey) -> Option<usize> {
        if self.templates.key(self.recent.template) == Some(key) {
            return Some(self.recent.template);
        }
        let slot = self.templates.get(key)?;
        self.recent.template = slot;
        Some(slot)
    }

    /// Finds or creates the domain's state and tracks the header.
    fn domain_slot(
        &mut self,
        key: DomainKey,
        header: &HeaderRepr,
        churn: &mut Churn,
    ) -> Option<usize> {
        let recent = Some(self.recent.domain).filter(|&s| self.domains.key(s) == Some(&key));
        let slot = match recent.or_else(|| self.domains.get(&key)) {
            Some(s) => {
                self.domains.touch(s);
                s
            }
            None => {
                let (s, evicted) = self.domains.insert(key, DomainState::default())?;
                if evicted.is_some() {
                    self.counters.domain_evictions += 1;
                }
                s
            }
        };
        self.recent.domain = slot;
        let obs = self.domains.value_mut(slot)?.observe(header);
        if obs.resynced {
            self.counters.sequence_resyncs += 1;
        } else if obs.duplicate {
            self.counters.sequence_duplicates += 1;
        } else if obs.reordered {
            self.counters.sequence_reordered += 1;
            if obs.retracted {
                self.counters.sequence_lost = self.counters.sequence_lost.saturating_sub(1);
            }
        } else {
            self.counters.sequence_lost += obs.lost;
        }
        if obs.restarted {
            self.counters.exporter_restarts += 1;
            // RFC 3954 §9: after a restart the exporter's old templates no
            // longer describe its data.
            let dropped = self
                .templates
                .remove_where(|k| k.exporter == key.exporter && k.source_id == key.source_id);
            self.counters.templates_dropped_on_restart += dropped as u64;
            // Data buffered before the restart was laid out by templates
            // that no longer exist: a template re-sent now with the same ID
            // may describe other fields. Samplers are re-announced too.
            self.pending.drop_domain(key.exporter, key.source_id, churn);
            if let Some(d) = self.domains.value_mut(slot) {
                d.samplers = Samplers::default();
            }
        }
        Some(slot)
    }

    /// Exporters re-send every template periodically (RFC 3954 §7, Template
    /// Management). When the cached template is the same, only its age
    /// changes: this skips rebuilding and copying it. Returns false when
    /// `wire` has to be learned (new, changed, or FlowSets may be waiting
    /// for it).
    fn refresh(
        &mut self,
        ctx: &RecordContext,
        wire: &AnyTemplate<'_>,
        summary: &mut PacketSummary,
    ) -> bool {
        // Only a FlowSet waiting for this very template needs `learn`; what
        // waits for others (of quiet or spoofed exporters) does not.
        if self
            .pending
            .waiting(ctx.exporter, ctx.source_id, wire.template_id())
        {
            return false;
        }
        let key = TemplateKey {
            exporter: ctx.exporter,
            source_id: ctx.source_id,
            template_id: wire.template_id(),
        };
        let Some(slot) = self.template_slot(&key) else {
            return false;
        };
        if !self.templates.value(slot).is_some_and(|t| t.same_as(wire)) {
            return false;
        }
        self.templates.touch(slot);
        match wire {
            AnyTemplate::Template(_) => self.counters.templates += 1,
            AnyTemplate::Options(_) => self.counters.options_templates += 1,
        }
        summary.templates += 1;
        true
    }

    /// Caches a template and decodes the FlowSets that waited for it.
    #[allow(clippy::too_many_arguments)]
    fn learn<V: Visit>(
        &mut self,
        ctx: &RecordContext,
        dslot: Option<usize>,
        wire: &AnyTemplate<'_>,
        tpl: Template,
        offset: usize,
        summary: &mut PacketSummary,
        churn: &mut Churn,
        sink: &mut V,
    ) {
        match wire {
            AnyTemplate::Template(_) => self.counters.templates += 1,
            AnyTemplate::Options(_) => self.counters.options_templates += 1,
        }
        summary.templates += 1;
        let key = TemplateKey {
            exporter: ctx.exporter,
            source_id: ctx.source_id,
            template_id: tpl.template_id(),
        };
        let Some((slot, evicted)) = self.templates.insert(key, tpl) else {
            return;
        };
        if evicted.is_some() {
            self.counters.template_evictions += 1;
        }
        if !self
            .pending
            .waiting(key.exporter, key.source_id, key.template_id)
        {
            return;
        }
        // Split borrows: the pending buffer is read while records are decoded
        // with the template and the domain's samplers.
        let Decoder {
            templates,
            domains,
            pending,
            counters,
            ..
        } = self;
        let Some(template) = templates.value(slot) else {
            return;
        };
        let mut learned = Samplers::default();
        let (mut all_flows, mut all_options) = (0, 0);
        pending.take(
            key.exporter,
            key.source_id,
            key.template_id,
            churn,
            |pctx, body| {
                counters.pending_replayed += 1;
                let samplers = dslot.and_then(|d| domains.value(d)).map(|d| &d.samplers);
                let (flows, options, result) = count_records(template, body, &mut learned);
                counters.records += flows;
                counters.options_records += options;
                summary.records += flows as u32;
                summary.options_records += options as u32;
                all_flows += flows;
                all_options += options;
                // As in `decode_data`, but the buffered FlowSet's datagram
                // is gone: the error is placed at the Template FlowSet that
                // unlocked it.
                if let Err(e) = result {
                    let e = Error::new(e.kind, offset);
                    counters.count_error(e.kind);
                    summary.errors += 1;
                    summary.first_error.get_or_insert(e);
                }
                sink.set(&DataSet {
                    template,
                    body,
                    ctx: *pctx,
                    samplers,
                    replayed: true,
                });
            },
        );
        if let Some(d) = dslot.and_then(|d| self.domains.value_mut(d)) {
            d.stats.records += all_flows;
            d.stats.options_records += all_options;
            for s in learned.iter() {
                d.samplers.learn(*s);
            }
        }
    }

    /// Decodes a data FlowSet body with the template in `slot`.
    #[allow(clippy::too_many_arguments)]
    fn decode_data<V: Visit>(
        &mut self,
        slot: usize,
        dslot: Option<usize>,
        ctx: &RecordContext,
        body: &[u8],
        replayed: bool,
        summary: &mut PacketSummary,
        sink: &mut V,
    ) -> Result<()> {
        let Some(template) = self.templates.value(slot) else {
            return Ok(());
        };
        let mut learned = Samplers::default();
        let (flows, options, result) = count_records(template, body, &mut learned);
        let samplers = dslot
            .and_then(|d| self.domains.value(d))
            .map(|d| &d.samplers);
        sink.set(&DataSet {
            template,
            body,
            ctx: *ctx,
            samplers,
            replayed,
        });
        self.counters.records += flows;
        self.counters.options_records += options;
        summary.records += flows as u32;
        summary.options_records += options as u32;
        if let Some(d) = dslot.and_then(|d| self.domains.value_mut(d)) {
            d.stats.records += flows;
            d.stats.options_records += options;
            for s in learned.iter() {
                d.samplers.learn(*s);
            }
        }
        result
    }
}

/// Counts the records of a FlowSet body — `(data, options, first error)` —
/// and learns samplers from options records. Fixed-length data records are
/// counted by division.
#[inline]
fn count_records(
    template: &Template,
    body: &[u8],
    learned: &mut Samplers,
) -> (u64, u64, Result<()>) {
    if !template.is_options() && !template.is_variable() {
        let len = template.record_len();
        let records = template.fixed_body(body);
        let n = records.len() / len.max(1);
        return (n as u64 * u64::from(len > 0), 0, remainder(body, n * len));
    }
    let mut n = 0u64;
    let mut rest = body;
    while let Some(next) = template.split_record(rest) {
        match next {
            Ok((data, more)) => {
                n += 1;
                if template.is_options() {
                    if let Some(s) = sampling::from_options(template, data) {
                        learned.learn(s);
                    }
                }
                rest = more;
            }
            Err(e) => {
                let e = Error::new(e.kind, body.len() - rest.len() + e.offset);
                return if template.is_options() {
                    (0, n, Err(e))
                } else {
                    (n, 0, Err(e))
                };
            }
        }
    }
    let end = remainder(body, body.len() - rest.len());
    if template.is_options() {
        (0, n, end)
    } else {
        (n, 0, end)
    }
}

/// What follows the last record, from `at`: padding (RFC 3954 §5.3: to a
/// 4-byte boundary, so under 4 bytes, or zeros), or bytes that are neither
/// — an error, so a wrong record length does not go unnoticed.
#[inline]
fn remainder(body: &[u8], at: usize) -> Result<()> {
    match body.get(at..) {
        Some(rest) if rest.len() >= 4 && !crate::wire::is_padding(rest) => {
            Err(Error::new(ErrorKind::RecordRemainder, at))
        }
        _ => Ok(()),
    }
}

/// Calls `f` for each record of a data FlowSet body. Stops at padding, or at
/// a malformed variable-length record (the error's offset is in the body).
#[inline]
fn for_each_record<'t>(
    template: &'t Template,
    ctx: &RecordContext,
    body: &'t [u8],
    samplers: Option<&'t Samplers>,
    replayed: bool,
    mut f: impl FnMut(&Record<'t>),
) -> Result<()> {
    // One Record per FlowSet; only its bytes change from record to record.
    let mut record = Record {
        data: &[],
        tail: &[],
        template,
        ctx: *ctx,
        samplers,
        replayed,
    };
    // One call site for `f`: the caller's closure is then inlined into
    // this loop (a second call site made the compiler keep it out of line,
    // 10-40 % slower per record).
    let mut rest = body;
    while let Some(next) = template.split_record(rest) {
        match next {
            Ok((data, more)) => {
                record.data = data;
                record.tail = rest;
                f(&record);
                rest = more;
            }
            Err(e) => {
                return Err(Error::new(e.kind, body.len() - rest.len() + e.offset));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FieldSpecifier, FieldType, PacketBuilder};
    use core::net::Ipv4Addr;

    fn packet(seq: u32, fields: &[FieldSpecifier], record: &[u8]) -> ([u8; 128], usize) {
        let mut buf = [0u8; 128];
        let header = HeaderRepr {
            sequence_number: seq,
            sys_uptime: 1000 + seq,
            unix_secs: 1_709_294_400,
            ..HeaderRepr::default()
        };
        let mut b = PacketBuilder::new(&mut buf, header).unwrap();
        b.template(300, fields).unwrap();
        b.record(300, record).unwrap();
        let len = b.finish().unwrap();
        (buf, len)
    }

    /// Regression: any FlowSet waiting in the pending buffer (say of a
    /// quiet or spoofed Source ID) turned every re-sent template into a scan
    /// of the whole buffer, and such entries never expired.
    #[cfg(feature = "alloc")] // Decoder::new
    #[test]
    fn stale_pending_entries_cost_refreshes_nothing() {
        let exporter = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
        let spoofed = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 9));
        let mut d = Decoder::new(Config::default());
        let mut buf = [0u8; 64];
        for i in 0..3000u32 {
            let header = HeaderRepr {
                unix_secs: 1_709_294_400,
                sys_uptime: 1000,
                source_id: i,
                ..HeaderRepr::default()
            };
            let mut b = PacketBuilder::new(&mut buf, header).unwrap();
            b.record(999, &[1, 2, 3, 4]).unwrap();
            let n = b.finish().unwrap();
            d.decode(spoofed, &buf[..n], |_| {}).unwrap();
        }
        assert_eq!(d.pending_flowsets(), 3000);
        let fields = [FieldSpecifier::new(FieldType::IN_BYTES, 4)];
        let mut buf = [0u8; 512];
        d.pending.work = 0;
        for seq in 0..50u32 {
            let header = HeaderRepr {
                sequence_number: seq,
                sys_uptime: 1000 + seq,
                unix_secs: 1_709_294_400 + seq,
                ..HeaderRepr::default()
            };
            let mut b = PacketBuilder::new(&mut buf, header).unwrap();
            for id in 300..320 {
                b.template(id, &fields).unwrap();
            }
            let n = b.finish().unwrap();
            d.decode(exporter, &buf[..n], |_| {}).unwrap();
        }
        assert_eq!(d.counters().templates, 50 * 20);
        assert_eq!(d.pending.work, 0, "no pending entry was looked at");
        // 121 s later by anyone's clock, the spoofed entries are gone.
        let header = HeaderRepr {
            sequence_number: 50,
            sys_uptime: 1000 + 171_000,
            unix_secs: 1_709_294_400 + 171,
            ..HeaderRepr::default()
        };
        let n = PacketBuilder::new(&mut buf, header)
            .unwrap()
            .finish()
            .unwrap();
        d.decode(exporter, &buf[..n], |_| {}).unwrap();
        assert_eq!(d.pending_flowsets(), 0);
        assert_eq!(d.counters().pending_expired, 3000);
    }

    #[cfg(feature = "alloc")] // Decoder::new
    #[test]
    fn resent_template_refreshes_and_changed_template_replaces() {
        let exporter = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
        let bytes_then_packets = [
            FieldSpecifier::new(FieldType::IN_BYTES, 4),
            FieldSpecifier::new(FieldType::IN_PKTS, 4),
        ];
        let packets_then_bytes = [
            FieldSpecifier::new(FieldType::IN_PKTS, 4),
            FieldSpecifier::new(FieldType::IN_BYTES, 4),
        ];
        let record = [0, 0, 5, 220, 0, 0, 0, 3];
        let mut d = Decoder::new(Config::default());
        let mut seen = [(0u64, 0u64); 3];
        let sends = [
            (0, &bytes_then_packets),
            (1, &bytes_then_packets),
            (2, &packets_then_bytes),
        ];
        for (seq, fields) in sends {
            let (buf, len) = packet(seq, fields, &record);
            let s = d
                .decode(exporter, &buf[..len], |r| {
                    seen[seq as usize] = (r.byte_count(), r.packet_count());
                })
                .unwrap();
            assert_eq!((s.templates, s.records), (1, 1));
        }
        assert_eq!(seen, [(1500, 3), (1500, 3), (3, 1500)]);
        assert_eq!(d.counters().templates, 3);
        assert_eq!(d.template_count(), 1);
    }
}
