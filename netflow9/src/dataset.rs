//! A whole data FlowSet with its template: the fastest way to read a few
//! fields from every record (look their offsets up once per FlowSet, with
//! [`Template::offset_of`], then slice each record).

use crate::flow::RecordContext;
use crate::record::Record;
use crate::sampling::Samplers;
use crate::template::Template;

/// The records of one data FlowSet, decoded with `template`.
///
/// ```
/// use netflow9::{Config, Decoder, FieldSpecifier, FieldType, HeaderRepr, PacketBuilder};
/// # let fields = [FieldSpecifier::new(FieldType::IN_BYTES, 4)];
/// # let mut buf = [0u8; 128];
/// # let mut b = PacketBuilder::new(&mut buf, HeaderRepr::default()).unwrap();
/// # b.template(256, &fields).unwrap();
/// # b.record(256, &[0, 0, 1, 0]).unwrap();
/// # b.record(256, &[0, 0, 2, 0]).unwrap();
/// # let len = b.finish().unwrap();
/// # let datagram = &buf[..len];
/// let mut decoder = Decoder::new(Config::default());
/// let mut total = 0u64;
/// decoder.decode_sets("192.0.2.1".parse().unwrap(), datagram, |set| {
///     // Once per FlowSet: where the counter is.
///     let Some(bytes) = set.template().offset_of(FieldType::IN_BYTES) else { return };
///     // Per record: one slice.
///     for rec in set.fixed_records().into_iter().flatten() {
///         total += netflow9::wire::read_uint(&rec[bytes.clone()]);
///     }
/// })?;
/// assert_eq!(total, 768);
/// # Ok::<(), netflow9::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct DataSet<'a> {
    pub(crate) template: &'a Template,
    pub(crate) body: &'a [u8],
    pub(crate) ctx: RecordContext,
    pub(crate) samplers: Option<&'a Samplers>,
    pub(crate) replayed: bool,
}

impl<'a> DataSet<'a> {
    /// The template the records follow.
    pub fn template(&self) -> &'a Template {
        self.template
    }

    /// Exporter, Source ID and header times of the packet it came in.
    pub fn context(&self) -> &RecordContext {
        &self.ctx
    }

    /// True if it arrived before its template and waited in the pending buffer.
    pub fn replayed(&self) -> bool {
        self.replayed
    }

    /// The FlowSet body (records and padding).
    pub fn body(&self) -> &'a [u8] {
        self.body
    }

    /// Each record's bytes. Fixed-length templates make this a plain
    /// `chunks_exact`; trailing padding is skipped; iteration stops at a
    /// malformed variable-length record (the decoder counted it).
    pub fn record_bytes(&self) -> RecordBytes<'a> {
        let len = self.template.record_len();
        if self.template.is_variable() || len == 0 {
            RecordBytes(Inner::Variable {
                template: self.template,
                rest: self.body,
            })
        } else {
            RecordBytes(Inner::Fixed(
                self.template.fixed_body(self.body).chunks_exact(len),
            ))
        }
    }

    /// For fixed-length templates, the records as `chunks_exact` of the
    /// record length (the fastest loop; trailing padding is the remainder);
    /// `None` for variable-length templates — use [`DataSet::record_bytes`].
    pub fn fixed_records(&self) -> Option<core::slice::ChunksExact<'a, u8>> {
        let len = self.template.record_len();
        (!self.template.is_variable() && len > 0)
            .then(|| self.template.fixed_body(self.body).chunks_exact(len))
    }

    /// Each record, as the per-record API hands them out.
    pub fn records(&self) -> impl Iterator<Item = Record<'a>> + 'a {
        let (template, ctx, samplers, replayed) =
            (self.template, self.ctx, self.samplers, self.replayed);
        let mut rest = self.body;
        core::iter::from_fn(move || {
            let tail = rest;
            let (data, more) = template.split_record(rest)?.ok()?;
            rest = more;
            Some(Record {
                data,
                tail,
                template,
                ctx,
                samplers,
                replayed,
            })
        })
    }
}

/// Iterator over the records of a [`DataSet`], as byte slices.
#[derive(Debug, Clone)]
pub struct RecordBytes<'a>(Inner<'a>);

#[derive(Debug, Clone)]
enum Inner<'a> {
    /// Fixed-length records: every record has the template's length, the
    /// remainder is padding.
    Fixed(core::slice::ChunksExact<'a, u8>),
    /// Records are walked field by field.
    Variable {
        template: &'a Template,
        rest: &'a [u8],
    },
}

impl<'a> Iterator for RecordBytes<'a> {
    type Item = &'a [u8];

    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        match &mut self.0 {
            Inner::Fixed(chunks) => chunks.next(),
            Inner::Variable { template, rest } => {
                let (data, more) = template.split_record(rest)?.ok()?;
                *rest = more;
                Some(data)
            }
        }
    }
}
