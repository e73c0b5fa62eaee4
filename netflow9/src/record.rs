//! A decoded data or options record, borrowed from the datagram.

use core::net::IpAddr;

use crate::field::{FieldType, ScopeType};
use crate::flow::{Flow, RecordContext};
use crate::layout::{FlowLayout, RecordBytes};
use crate::sampling::Samplers;
use crate::template::Template;
use crate::wire::{FieldSpecifier, Value};

/// One data record (or options data record), as handed to the decoder's sink.
///
/// Fields are read lazily from the datagram; [`Record::flow`] normalizes the
/// common ones into a [`Flow`] without allocating.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    pub(crate) data: &'a [u8],
    /// `data` and what follows it in its FlowSet, for windowed reads.
    pub(crate) tail: &'a [u8],
    pub(crate) template: &'a Template,
    pub(crate) ctx: RecordContext,
    pub(crate) samplers: Option<&'a Samplers>,
    pub(crate) replayed: bool,
}

/// One field of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field<'a> {
    /// Its type and declared length.
    pub spec: FieldSpecifier,
    /// True for an options record's scope field (whose type is a [`ScopeType`]).
    pub scope: bool,
    /// The value.
    pub value: Value<'a>,
}

impl<'a> Record<'a> {
    /// A record of `data` laid out by `template`, outside any decoder (for
    /// tests, benches and tools that manage templates themselves).
    ///
    /// ```
    /// use netflow9::{FieldSpecifier, FieldType, Record, RecordContext, Template};
    /// let t = Template::new(256, &[FieldSpecifier::new(FieldType::IN_BYTES, 4)]).unwrap();
    /// let ctx = RecordContext { exporter: [192, 0, 2, 1].into(), source_id: 0,
    ///     sys_uptime: 0, unix_secs: 0, sequence_number: 0 };
    /// let r = Record::new(&t, &[0, 0, 1, 0], ctx);
    /// assert_eq!(r.flow().bytes, 256);
    /// ```
    #[must_use]
    pub fn new(template: &'a Template, data: &'a [u8], ctx: RecordContext) -> Self {
        Record {
            data,
            tail: data,
            template,
            ctx,
            samplers: None,
            replayed: false,
        }
    }

    /// The template's ID.
    pub fn template_id(&self) -> u16 {
        self.template.template_id()
    }
    /// The template the record was decoded with.
    pub fn template(&self) -> &'a Template {
        self.template
    }
    /// True for an options data record.
    pub fn is_options(&self) -> bool {
        self.template.is_options()
    }
    /// Exporter, Source ID and header times of the packet it came in.
    pub fn context(&self) -> &RecordContext {
        &self.ctx
    }
    /// The record's bytes.
    pub fn bytes(&self) -> &'a [u8] {
        self.data
    }
    /// True if it arrived before its template and was decoded from the
    /// pending buffer when the template came.
    pub fn replayed(&self) -> bool {
        self.replayed
    }

    /// Every field, scope fields first.
    pub fn fields(&self) -> impl Iterator<Item = Field<'a>> + 'a {
        let scope = self.template.scope_count();
        self.template.walk(self.data).map(move |(i, s, v)| Field {
            spec: FieldSpecifier::new(FieldType(s.field_type), s.length),
            scope: i < scope,
            value: if i < scope {
                Value::read(FieldType(0), v)
            } else {
                Value::read(FieldType(s.field_type), v)
            },
        })
    }

    /// The first (non-scope) field of type `t`.
    ///
    /// ```
    /// # use netflow9::{FieldSpecifier, FieldType, Record, RecordContext, Template, Value};
    /// # let t = Template::new(256, &[FieldSpecifier::new(FieldType::L4_DST_PORT, 2)]).unwrap();
    /// # let ctx = RecordContext { exporter: [192, 0, 2, 1].into(), source_id: 0,
    /// #     sys_uptime: 0, unix_secs: 0, sequence_number: 0 };
    /// let r = Record::new(&t, &[0, 53], ctx);
    /// assert_eq!(r.get(FieldType::L4_DST_PORT), Some(Value::Unsigned(53)));
    /// assert_eq!(r.get(FieldType::L4_SRC_PORT), None);
    /// ```
    pub fn get(&self, t: FieldType) -> Option<Value<'a>> {
        self.fields()
            .find(|f| !f.scope && f.spec.field_type == t)
            .map(|f| f.value)
    }

    /// The first scope field of type `t` (options records).
    pub fn scope(&self, t: ScopeType) -> Option<Value<'a>> {
        self.fields()
            .find(|f| f.scope && f.spec.field_type.0 == t.0)
            .map(|f| f.value)
    }

    /// The normalized flow. For options records most values are zero.
    #[inline]
    pub fn flow(&self) -> Flow {
        let t = self.template;
        self.with_layout(|l, rec| l.flow(rec, &self.ctx, t.template_id(), self.samplers))
    }

    /// [`Record::flow`] written into `out` (every value overwritten), for
    /// callers that fill a batch: the flow is built in place, not built
    /// and then copied.
    ///
    /// ```
    /// use netflow9::{Config, Decoder, Flow};
    /// # use netflow9::{FieldSpecifier, FieldType, HeaderRepr, PacketBuilder};
    /// # let fields = [FieldSpecifier::new(FieldType::IN_BYTES, 4)];
    /// # let mut datagram = [0u8; 64];
    /// # let mut p = PacketBuilder::new(&mut datagram, HeaderRepr::default())?;
    /// # p.template(256, &fields)?;
    /// # p.record(256, &1500u32.to_be_bytes())?;
    /// # let len = p.finish()?;
    /// # let datagram = &datagram[..len];
    /// let mut decoder = Decoder::new(Config::default());
    /// let mut batch = [Flow::default(); 64];
    /// let mut n = 0;
    /// let exporter = "192.0.2.1".parse().unwrap();
    /// decoder.decode(exporter, datagram, |r| {
    ///     if let Some(slot) = batch.get_mut(n) {
    ///         r.flow_into(slot);
    ///         n += 1;
    ///     }
    /// })?;
    /// assert_eq!((n, batch[0].bytes), (1, 1500));
    /// # Ok::<(), netflow9::Error>(())
    /// ```
    #[inline]
    pub fn flow_into(&self, out: &mut Flow) {
        let t = self.template;
        self.with_layout(|l, rec| l.fill(out, rec, &self.ctx, t.template_id(), self.samplers));
    }

    /// [`Flow::src_addr`], without normalizing the rest of the record.
    ///
    /// This and [`Record::dst_addr`], [`Record::byte_count`] and
    /// [`Record::packet_count`] are for hot loops that need only these
    /// values (top talkers, traffic matrices): each is a few loads at
    /// offsets the template computed once. For records of variable-length
    /// templates each call walks the record; call [`Record::flow`] once
    /// instead.
    ///
    /// ```
    /// # use netflow9::{FieldSpecifier, FieldType, Record, RecordContext, Template};
    /// let t = Template::new(256, &[
    ///     FieldSpecifier::new(FieldType::IPV4_SRC_ADDR, 4),
    ///     FieldSpecifier::new(FieldType::IN_PKTS, 4),
    ///     FieldSpecifier::new(FieldType::IN_BYTES, 8),
    /// ]).unwrap();
    /// # let ctx = RecordContext { exporter: [192, 0, 2, 1].into(), source_id: 0,
    /// #     sys_uptime: 0, unix_secs: 0, sequence_number: 0 };
    /// let r = Record::new(&t, &[10, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 80], ctx);
    /// assert_eq!(r.src_addr().to_string(), "10.0.0.1");
    /// assert_eq!(r.dst_addr().to_string(), "0.0.0.0"); // not in the template
    /// assert_eq!((r.byte_count(), r.packet_count()), (80, 2));
    /// assert_eq!(r.byte_count(), r.flow().bytes);
    /// ```
    #[inline]
    pub fn src_addr(&self) -> IpAddr {
        self.with_layout(FlowLayout::src_addr)
    }

    /// [`Flow::dst_addr`], without normalizing the rest (see [`Record::src_addr`]).
    #[inline]
    pub fn dst_addr(&self) -> IpAddr {
        self.with_layout(FlowLayout::dst_addr)
    }

    /// [`Flow::bytes`], without normalizing the rest (see [`Record::src_addr`]).
    #[inline]
    pub fn byte_count(&self) -> u64 {
        self.with_layout(FlowLayout::byte_count)
    }

    /// [`Flow::packets`], without normalizing the rest (see [`Record::src_addr`]).
    #[inline]
    pub fn packet_count(&self) -> u64 {
        self.with_layout(FlowLayout::packet_count)
    }

    /// Runs `f` with the record's flow layout (the template's own for fixed
    /// templates, no copy; or one computed for this record) and bytes.
    #[inline]
    fn with_layout<R>(&self, f: impl FnOnce(&FlowLayout, RecordBytes<'a>) -> R) -> R {
        let walked;
        let layout = if self.template.is_variable() {
            walked = self.template.layout_for(self.data);
            &walked
        } else {
            &self.template.layout
        };
        let rec = RecordBytes {
            data: self.data,
            tail: self.tail,
        };
        f(layout, rec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::VARIABLE_LENGTH;
    use core::net::Ipv6Addr;

    fn ctx() -> RecordContext {
        RecordContext {
            exporter: [192, 0, 2, 1].into(),
            source_id: 0,
            sys_uptime: 0,
            unix_secs: 0,
            sequence_number: 0,
        }
    }

    fn f(t: FieldType, len: u16) -> FieldSpecifier {
        FieldSpecifier::new(t, len)
    }

    /// The accessors agree with `flow()` whatever the template looks like.
    fn agree(fields: &[FieldSpecifier], data: &[u8]) -> (IpAddr, IpAddr, u64, u64) {
        let t = Template::new(300, fields).unwrap();
        let r = Record::new(&t, data, ctx());
        let flow = r.flow();
        let got = (r.src_addr(), r.dst_addr(), r.byte_count(), r.packet_count());
        assert_eq!(
            got,
            (flow.src_addr, flow.dst_addr, flow.bytes, flow.packets)
        );
        got
    }

    #[test]
    fn accessors_match_the_flow() {
        let v4 = agree(
            &[
                f(FieldType::IPV4_SRC_ADDR, 4),
                f(FieldType::IPV4_DST_ADDR, 4),
                f(FieldType::IN_PKTS, 2),
                f(FieldType::IN_BYTES, 8),
            ],
            &[10, 0, 0, 1, 192, 0, 2, 9, 0, 3, 0, 0, 0, 0, 0, 0, 1, 0],
        );
        assert_eq!(v4.0, IpAddr::from([10, 0, 0, 1]));
        assert_eq!(v4.1, IpAddr::from([192, 0, 2, 9]));
        assert_eq!((v4.2, v4.3), (256, 3));

        let mut v6 = [0u8; 36];
        v6[0] = 0x20;
        v6[15] = 1;
        v6[16] = 0x20;
        v6[31] = 2;
        v6[35] = 7;
        let got = agree(
            &[
                f(FieldType::IPV6_SRC_ADDR, 16),
                f(FieldType::IPV6_DST_ADDR, 16),
                f(FieldType::OUT_PKTS, 4),
            ],
            &v6,
        );
        let a6 = |last| IpAddr::from(Ipv6Addr::new(0x2000, 0, 0, 0, 0, 0, 0, last));
        assert_eq!((got.0, got.1), (a6(1), a6(2)));
        assert_eq!(
            (got.2, got.3),
            (0, 7),
            "OUT_PKTS when nothing else counts packets"
        );

        // NSEL initiator + responder octets; no addresses at all.
        let nsel = agree(
            &[f(FieldType(231), 4), f(FieldType(232), 4)],
            &[0, 0, 0, 40, 0, 0, 0, 2],
        );
        assert_eq!((nsel.0, nsel.2), (IpAddr::from([0, 0, 0, 0]), 42));

        // A variable-length field before the counters: offsets per record.
        let var = agree(
            &[
                f(FieldType::IF_NAME, VARIABLE_LENGTH),
                f(FieldType::IN_BYTES, 4),
            ],
            &[3, b'e', b't', b'h', 0, 0, 5, 220],
        );
        assert_eq!(var.2, 1500);
    }
}
