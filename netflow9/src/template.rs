//! Templates as the decoder keeps them: a field list plus a precomputed
//! layout, so decoding a record is offset arithmetic.

use crate::field::FieldType;
use crate::layout::FlowLayout;
use crate::wire::template::AnyTemplate;
use crate::wire::{FieldSpecifier, VARIABLE_LENGTH};
use crate::{Error, ErrorKind, Result};

/// The most fields a template can have in this crate. [`crate::Config`]'s
/// `max_fields` may lower it; templates with more are rejected and counted.
pub const MAX_FIELDS: usize = 128;

/// Marks a field whose offset depends on the record (after a variable-length field).
const NO_OFFSET: u16 = u16::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct FieldSlot {
    pub(crate) field_type: u16,
    pub(crate) length: u16,
    pub(crate) offset: u16,
}

/// A Template or Options Template, ready for decoding records.
///
/// Built from the wire by the decoder, or from field specifiers with
/// [`Template::new`]. Fixed size (no heap), so the cache can hold many.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Template {
    template_id: u16,
    options: bool,
    variable: bool,
    scope_count: u16,
    field_count: u16,
    /// Exact record length, or for variable templates the minimum.
    record_len: u16,
    fields: [FieldSlot; MAX_FIELDS],
    pub(crate) layout: FlowLayout,
}

impl Template {
    pub(crate) const EMPTY: Template = Template {
        template_id: 0,
        options: false,
        variable: false,
        scope_count: 0,
        field_count: 0,
        record_len: 0,
        fields: [FieldSlot {
            field_type: 0,
            length: 0,
            offset: 0,
        }; MAX_FIELDS],
        layout: FlowLayout::EMPTY,
    };

    /// A data Template from its field specifiers.
    ///
    /// ```
    /// use netflow9::{FieldSpecifier, FieldType, Template};
    /// let t = Template::new(256, &[
    ///     FieldSpecifier::new(FieldType::IPV4_SRC_ADDR, 4),
    ///     FieldSpecifier::new(FieldType::IN_BYTES, 8),
    /// ]).unwrap();
    /// assert_eq!(t.record_len(), 12);
    /// ```
    ///
    /// # Errors
    /// As for templates on the wire: empty, too many fields, record too long.
    pub fn new(template_id: u16, fields: &[FieldSpecifier]) -> Result<Template> {
        Self::build(
            template_id,
            false,
            &[],
            fields.iter().copied(),
            MAX_FIELDS,
            0,
        )
    }

    /// An Options Template from its scope and option field specifiers.
    ///
    /// # Errors
    /// As [`Template::new`].
    pub fn new_options(
        template_id: u16,
        scope: &[FieldSpecifier],
        fields: &[FieldSpecifier],
    ) -> Result<Template> {
        Self::build(
            template_id,
            true,
            scope,
            fields.iter().copied(),
            MAX_FIELDS,
            0,
        )
    }

    pub(crate) fn from_wire(
        t: &AnyTemplate<'_>,
        max_fields: usize,
        offset: usize,
    ) -> Result<Template> {
        let max = max_fields.min(MAX_FIELDS);
        match t {
            AnyTemplate::Template(t) => {
                Self::build(t.template_id(), false, &[], t.fields(), max, offset)
            }
            AnyTemplate::Options(t) => {
                let mut scope = [FieldSpecifier::default(); MAX_FIELDS];
                let mut n = 0;
                for (dst, src) in scope.iter_mut().zip(t.scope_fields()) {
                    *dst = src;
                    n += 1;
                }
                if t.scope_fields().len() > max {
                    return Err(Error::new(ErrorKind::TooManyFields, offset));
                }
                Self::build(
                    t.template_id(),
                    true,
                    &scope[..n],
                    t.option_fields(),
                    max,
                    offset,
                )
            }
        }
    }

    fn build(
        template_id: u16,
        options: bool,
        scope: &[FieldSpecifier],
        fields: impl Iterator<Item = FieldSpecifier>,
        max: usize,
        offset: usize,
    ) -> Result<Template> {
        if template_id < 256 {
            return Err(Error::new(ErrorKind::TemplateId, offset));
        }
        let mut t = Template::EMPTY;
        t.template_id = template_id;
        t.options = options;
        let mut n = 0usize;
        let mut pos: usize = 0;
        let mut variable = false;
        for (i, f) in scope.iter().copied().chain(fields).enumerate() {
            if n >= max {
                return Err(Error::new(ErrorKind::TooManyFields, offset));
            }
            let slot = t
                .fields
                .get_mut(n)
                .ok_or(Error::new(ErrorKind::TooManyFields, offset))?;
            *slot = FieldSlot {
                field_type: f.field_type.0,
                length: f.length,
                offset: if variable { NO_OFFSET } else { pos as u16 },
            };
            if f.length == VARIABLE_LENGTH {
                variable = true;
                pos += 1; // at least the 1-byte length prefix
            } else {
                pos += usize::from(f.length);
            }
            if pos > usize::from(u16::MAX - 1) {
                return Err(Error::new(ErrorKind::RecordLength, offset));
            }
            if i < scope.len() {
                t.scope_count += 1;
            }
            n += 1;
        }
        if n == 0 {
            return Err(Error::new(ErrorKind::EmptyTemplate, offset));
        }
        if pos == 0 {
            // Every field has length 0: a record would occupy no bytes, and a
            // FlowSet would hold infinitely many of them.
            return Err(Error::new(ErrorKind::RecordLength, offset));
        }
        t.field_count = n as u16;
        t.record_len = pos as u16;
        t.variable = variable;
        if !variable && !options {
            t.layout = FlowLayout::build(t.data_fields_with_offsets());
        }
        Ok(t)
    }

    /// The Template ID.
    pub fn template_id(&self) -> u16 {
        self.template_id
    }
    /// True for an Options Template.
    pub fn is_options(&self) -> bool {
        self.options
    }
    /// True if a field has variable length (records differ in length).
    pub fn is_variable(&self) -> bool {
        self.variable
    }
    /// Record length in bytes (the minimum, for variable-length templates).
    pub fn record_len(&self) -> usize {
        usize::from(self.record_len)
    }
    /// Number of fields, scope fields included.
    pub fn field_count(&self) -> usize {
        usize::from(self.field_count)
    }
    /// Number of scope fields (0 for data templates).
    pub fn scope_count(&self) -> usize {
        usize::from(self.scope_count)
    }

    pub(crate) fn slots(&self) -> &[FieldSlot] {
        self.fields.get(..self.field_count()).unwrap_or(&[])
    }

    /// All fields in record order (scope fields first).
    pub fn fields(&self) -> impl ExactSizeIterator<Item = FieldSpecifier> + '_ {
        self.slots()
            .iter()
            .map(|s| FieldSpecifier::new(FieldType(s.field_type), s.length))
    }

    /// Scope fields of an Options Template.
    pub fn scope_fields(&self) -> impl Iterator<Item = FieldSpecifier> + '_ {
        self.fields().take(self.scope_count())
    }

    /// Non-scope fields.
    pub fn option_fields(&self) -> impl Iterator<Item = FieldSpecifier> + '_ {
        self.fields().skip(self.scope_count())
    }

    /// `(field type, offset, length)` of the non-scope fields of a fixed template.
    fn data_fields_with_offsets(&self) -> impl Iterator<Item = (u16, u16, u16)> + '_ {
        self.slots()
            .iter()
            .skip(self.scope_count())
            .map(|s| (s.field_type, s.offset, s.length))
    }

    /// Splits the front of `data` into one record and the rest, or `None` when
    /// what is left is padding (shorter than a record, or at most 3 zero
    /// bytes: RFC 3954 §5.3 pads a FlowSet to a 4-byte boundary, "SHOULD be
    /// zero").
    #[inline]
    pub(crate) fn split_record<'a>(&self, data: &'a [u8]) -> Option<Result<(&'a [u8], &'a [u8])>> {
        let len = self.record_len();
        if data.len() < len || len == 0 {
            return None;
        }
        // Only a short rest can be padding: no cost for the records before.
        // (Records of 1 to 3 bytes whose last ones are zero cannot be told
        // from it.)
        if data.len() < 4 && crate::wire::is_padding(data) {
            return None;
        }
        if !self.variable {
            return Some(Ok(data.split_at(len)));
        }
        let mut pos = 0usize;
        for s in self.slots() {
            let (prefix, n) = if s.length == VARIABLE_LENGTH {
                match var_len(data, pos) {
                    Some(x) => x,
                    None => return Some(Err(Error::new(ErrorKind::VariableLength, pos))),
                }
            } else {
                (0, usize::from(s.length))
            };
            if pos + prefix + n > data.len() {
                // Report the field that overruns, not where it would end
                // (which can be past the datagram).
                return Some(Err(Error::new(ErrorKind::VariableLength, pos)));
            }
            pos += prefix + n;
        }
        Some(Ok(data.split_at(pos)))
    }

    /// The records of a fixed-length template's FlowSet body, without the
    /// trailing padding: for records shorter than 4 bytes, up to 3 zero
    /// bytes at the end are padding (as in [`Template::split_record`]);
    /// any remainder shorter than a record is left out by the caller.
    #[inline]
    pub(crate) fn fixed_body<'a>(&self, body: &'a [u8]) -> &'a [u8] {
        let len = self.record_len();
        if len >= 4 || len == 0 {
            return body;
        }
        let zeros = body.iter().rev().take(3).take_while(|&&b| b == 0).count();
        let whole = body.len() / len * len;
        let end = (body.len() - zeros).div_ceil(len) * len;
        body.get(..end.min(whole)).unwrap_or(body)
    }

    /// True if `wire` defines exactly this template: same kind, ID, scope
    /// and fields, so re-learning it would change nothing.
    pub(crate) fn same_as(&self, wire: &AnyTemplate<'_>) -> bool {
        if self.template_id != wire.template_id() {
            return false;
        }
        match wire {
            AnyTemplate::Template(t) => !self.options && self.fields().eq(t.fields()),
            AnyTemplate::Options(t) => {
                self.options
                    && self.scope_count() == t.scope_fields().len()
                    && self.fields().eq(t.scope_fields().chain(t.option_fields()))
            }
        }
    }

    /// Walks a record's fields: `(index, slot, value bytes)`.
    pub(crate) fn walk<'a, 'b>(
        &'b self,
        record: &'a [u8],
    ) -> impl Iterator<Item = (usize, FieldSlot, &'a [u8])> + 'b
    where
        'a: 'b,
    {
        self.walk_offsets(record).map(|(i, s, _, v)| (i, s, v))
    }

    /// As [`Template::walk`], with each value's offset in the record.
    pub(crate) fn walk_offsets<'a, 'b>(
        &'b self,
        record: &'a [u8],
    ) -> impl Iterator<Item = (usize, FieldSlot, usize, &'a [u8])> + 'b
    where
        'a: 'b,
    {
        let mut pos = 0usize;
        let fixed = !self.variable;
        self.slots().iter().enumerate().map_while(move |(i, s)| {
            if fixed {
                let start = usize::from(s.offset);
                let v = record.get(start..start + usize::from(s.length))?;
                return Some((i, *s, start, v));
            }
            let (prefix, n) = if s.length == VARIABLE_LENGTH {
                var_len(record, pos)?
            } else {
                (0, usize::from(s.length))
            };
            let start = pos + prefix;
            let v = record.get(start..start + n)?;
            pos = start + n;
            Some((i, *s, start, v))
        })
    }

    /// The flow layout of this record: the template's own for fixed templates,
    /// or one computed for this record.
    pub(crate) fn layout_for(&self, record: &[u8]) -> FlowLayout {
        if !self.variable {
            return self.layout;
        }
        let mut walked = [(0u16, 0u16, 0u16); MAX_FIELDS];
        let mut n = 0;
        for (i, s, start, v) in self.walk_offsets(record) {
            if i < self.scope_count() {
                continue;
            }
            // A record built by `Record::new` can be longer than a FlowSet:
            // a value past 64 KiB has no location (rather than a wrong one).
            let (Ok(start), Ok(len)) = (u16::try_from(start), u16::try_from(v.len())) else {
                continue;
            };
            if let Some(w) = walked.get_mut(n) {
                *w = (s.field_type, start, len);
                n += 1;
            }
        }
        FlowLayout::build(walked.iter().take(n).copied())
    }
}

/// Reads a variable-length field's length prefix at `pos`: `(prefix bytes, value bytes)`.
fn var_len(data: &[u8], pos: usize) -> Option<(usize, usize)> {
    let first = *data.get(pos)?;
    if first < 255 {
        return Some((1, usize::from(first)));
    }
    let b = data.get(pos + 1..pos + 3)?;
    Some((3, usize::from(u16::from_be_bytes([b[0], b[1]]))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(t: u16, l: u16) -> FieldSpecifier {
        FieldSpecifier::new(FieldType(t), l)
    }

    #[test]
    fn fixed_layout_offsets() {
        let t = Template::new(300, &[f(8, 4), f(0x99, 0), f(1, 8), f(7, 2)]).unwrap();
        assert_eq!(t.record_len(), 14);
        assert_eq!(t.slots()[2].offset, 4);
        assert_eq!(t.slots()[3].offset, 12);
        let rec = [10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 80, 99];
        let (r, rest) = t.split_record(&rec).unwrap().unwrap();
        assert_eq!((r.len(), rest), (14, &[99u8][..]));
        let vals: [&[u8]; 4] = {
            let mut w = t.walk(r).map(|x| x.2);
            [
                w.next().unwrap(),
                w.next().unwrap(),
                w.next().unwrap(),
                w.next().unwrap(),
            ]
        };
        assert_eq!(vals[1], &[] as &[u8]);
        assert_eq!(vals[3], &[0, 80]);
    }

    #[test]
    fn variable_length_records() {
        let t = Template::new(300, &[f(236, VARIABLE_LENGTH), f(7, 2)]).unwrap();
        assert!(t.is_variable());
        // 1-byte prefix 3 + "abc" + port, then 255-prefixed 2-byte length 1 + "z" + port
        let data = [3, b'a', b'b', b'c', 0, 80, 255, 0, 1, b'z', 0, 81];
        let (r1, rest) = t.split_record(&data).unwrap().unwrap();
        assert_eq!(r1.len(), 6);
        let (r2, rest) = t.split_record(rest).unwrap().unwrap();
        assert_eq!((r2.len(), rest.len()), (6, 0));
        let v: [&[u8]; 2] = {
            let mut w = t.walk(r2).map(|x| x.2);
            [w.next().unwrap(), w.next().unwrap()]
        };
        assert_eq!(v, [&b"z"[..], &[0, 81][..]]);
        assert_eq!(
            t.layout_for(r2).get(crate::layout::role::SRC_PORT, r2),
            Some(81)
        );
        // prefix runs past the end
        assert_eq!(
            t.split_record(&[9, 1, 0, 0]).unwrap().unwrap_err().kind,
            ErrorKind::VariableLength
        );
    }

    /// Regression: with records of 1 to 3 bytes, the padding that the
    /// encoder writes was decoded as records.
    #[test]
    fn short_records_and_padding() {
        let t = Template::new(300, &[f(4, 1)]).unwrap();
        let count = |body: &[u8]| {
            let mut rest = body;
            let mut n = 0;
            while let Some(Ok((_, more))) = t.split_record(rest) {
                rest = more;
                n += 1;
            }
            assert_eq!(t.fixed_body(body).len(), n, "{body:?}");
            n
        };
        assert_eq!(count(&[6, 0, 0, 0]), 1);
        assert_eq!(count(&[6, 17, 0, 0]), 2);
        assert_eq!(count(&[6, 17, 1, 0]), 3);
        assert_eq!(count(&[6, 17, 1, 2]), 4);
        assert_eq!(count(&[0, 0, 0, 0]), 1);
        assert_eq!(count(&[6, 0, 0, 0, 0, 0, 0, 0]), 5);
        assert_eq!(count(&[6, 0, 0, 1]), 4, "not padding: not zero");
        let t = Template::new(300, &[f(4, 1), f(7, 2)]).unwrap();
        let mut rest: &[u8] = &[6, 0, 80, 0];
        let (r, more) = t.split_record(rest).unwrap().unwrap();
        assert_eq!((r, more), (&[6, 0, 80][..], &[0][..]));
        rest = more;
        assert!(t.split_record(rest).is_none());
        assert_eq!(t.fixed_body(&[6, 0, 80, 0]), &[6, 0, 80]);
        assert_eq!(
            t.fixed_body(&[6, 0, 80, 0, 0, 0, 0, 0]),
            &[6, 0, 80, 0, 0, 0]
        );
    }

    #[test]
    fn impossible_templates() {
        assert_eq!(
            Template::new(300, &[]).unwrap_err().kind,
            ErrorKind::EmptyTemplate
        );
        assert_eq!(
            Template::new(300, &[f(1, 0)]).unwrap_err().kind,
            ErrorKind::RecordLength
        );
        assert_eq!(
            Template::new(3, &[f(1, 4)]).unwrap_err().kind,
            ErrorKind::TemplateId
        );
        let many = [f(1, 1); MAX_FIELDS + 1];
        assert_eq!(
            Template::new(300, &many).unwrap_err().kind,
            ErrorKind::TooManyFields
        );
        assert_eq!(
            Template::new(300, &[f(1, 40_000), f(2, 40_000)])
                .unwrap_err()
                .kind,
            ErrorKind::RecordLength
        );
    }
}
