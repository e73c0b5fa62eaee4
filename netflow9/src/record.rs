//! A decoded data or options record, borrowed from the datagram.

use crate::field::{FieldType, ScopeType};
use crate::flow::{Flow, RecordContext};
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
        let layout = self.template.layout_for(self.data);
        layout.flow(
            self.data,
            &self.ctx,
            self.template.template_id(),
            self.samplers,
        )
    }
}
