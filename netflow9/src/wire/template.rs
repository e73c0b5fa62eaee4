//! Template and Options Template records (RFC 3954 §5.2, §6.1).

use super::parse::{parse_field_specifier, parse_options_template_header, parse_template_header};
use crate::field::FieldType;
use crate::{Error, ErrorKind, Result};

/// The field length that marks a variable-length field (RFC 7011 §7, used by
/// H3C NetStream in v9): each value is preceded by a 1-byte length, or by 255
/// and a 2-byte length.
pub const VARIABLE_LENGTH: u16 = 0xFFFF;

const FIELD_SPECIFIER_LEN: usize = 4;
const TEMPLATE_HEADER_LEN: usize = 4;
const OPTIONS_TEMPLATE_HEADER_LEN: usize = 6;

/// One field of a Template: its type and length in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct FieldSpecifier {
    /// Field type (for scope fields: the scope type number).
    pub field_type: FieldType,
    /// Length in bytes, or [`VARIABLE_LENGTH`].
    pub length: u16,
}

impl FieldSpecifier {
    /// A specifier for `field_type` of `length` bytes.
    ///
    /// ```
    /// use netflow9::{FieldSpecifier, FieldType};
    /// let f = FieldSpecifier::new(FieldType::IN_BYTES, 4);
    /// assert_eq!(f.length, 4);
    /// ```
    #[must_use]
    pub const fn new(field_type: FieldType, length: u16) -> Self {
        FieldSpecifier { field_type, length }
    }

    /// Writes the 4 bytes of the specifier.
    pub(crate) fn emit(&self, out: &mut [u8]) {
        if let Some(o) = out.get_mut(..FIELD_SPECIFIER_LEN) {
            o[..2].copy_from_slice(&self.field_type.0.to_be_bytes());
            o[2..].copy_from_slice(&self.length.to_be_bytes());
        }
    }
}

/// Iterates the field specifiers of a template, borrowed from the datagram.
#[derive(Debug, Clone)]
pub struct FieldSpecifiers<'a> {
    rest: &'a [u8],
}

impl<'a> FieldSpecifiers<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        FieldSpecifiers { rest: bytes }
    }
}

impl Iterator for FieldSpecifiers<'_> {
    type Item = FieldSpecifier;
    fn next(&mut self) -> Option<FieldSpecifier> {
        let (rest, (t, l)) = parse_field_specifier(self.rest).ok()?;
        self.rest = rest;
        Some(FieldSpecifier::new(FieldType(t), l))
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.rest.len() / FIELD_SPECIFIER_LEN;
        (n, Some(n))
    }
}

impl ExactSizeIterator for FieldSpecifiers<'_> {}

/// A Template record as it appears on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TemplateRecord<'a> {
    template_id: u16,
    fields: &'a [u8],
}

impl<'a> TemplateRecord<'a> {
    /// The Template ID (≥ 256).
    pub fn template_id(&self) -> u16 {
        self.template_id
    }
    /// Number of fields.
    pub fn field_count(&self) -> usize {
        self.fields.len() / FIELD_SPECIFIER_LEN
    }
    /// The field specifiers, in record order.
    pub fn fields(&self) -> FieldSpecifiers<'a> {
        FieldSpecifiers::new(self.fields)
    }
}

/// An Options Template record as it appears on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionsTemplateRecord<'a> {
    template_id: u16,
    scope: &'a [u8],
    options: &'a [u8],
}

impl<'a> OptionsTemplateRecord<'a> {
    /// The Template ID (≥ 256).
    pub fn template_id(&self) -> u16 {
        self.template_id
    }
    /// The scope fields (System, Interface, …), first in each record.
    pub fn scope_fields(&self) -> FieldSpecifiers<'a> {
        FieldSpecifiers::new(self.scope)
    }
    /// The option fields, after the scope fields.
    pub fn option_fields(&self) -> FieldSpecifiers<'a> {
        FieldSpecifiers::new(self.options)
    }
}

/// A record of a Template FlowSet or an Options Template FlowSet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnyTemplate<'a> {
    /// From FlowSet ID 0.
    Template(TemplateRecord<'a>),
    /// From FlowSet ID 1.
    Options(OptionsTemplateRecord<'a>),
}

impl AnyTemplate<'_> {
    /// The Template ID.
    pub fn template_id(&self) -> u16 {
        match self {
            AnyTemplate::Template(t) => t.template_id,
            AnyTemplate::Options(t) => t.template_id,
        }
    }
}

/// Iterates the records of a Template (ID 0) or Options Template (ID 1)
/// FlowSet body. A record that is whole but unusable (Template ID below 256,
/// no fields, more than `max_fields`) is reported as an error and stepped
/// over; a record whose end cannot be found (truncated, or an Options
/// Template with lengths that are not multiples of 4) ends the iteration.
/// Stops at trailing padding.
///
/// ```
/// use netflow9::wire::TemplateRecordIter;
/// // template 256 with one field: IN_BYTES (1), 4 bytes
/// let body = [1, 0, 0, 1, 0, 1, 0, 4];
/// let t = TemplateRecordIter::templates(&body, 0, 8).next().unwrap().unwrap();
/// assert_eq!(t.template_id(), 256);
/// ```
#[derive(Debug, Clone)]
pub struct TemplateRecordIter<'a> {
    rest: &'a [u8],
    offset: usize,
    options: bool,
    max_fields: usize,
    /// Zero bytes at the end of the body: once `rest` is no longer, it is
    /// padding. Counted once, so the check per record is O(1) (checking
    /// the whole rest per record was quadratic in zero-filled FlowSets).
    zero_tail: usize,
}

/// Zero bytes at the end of `body`.
fn zero_tail(body: &[u8]) -> usize {
    body.iter().rev().take_while(|&&b| b == 0).count()
}

impl<'a> TemplateRecordIter<'a> {
    /// Records of a Template FlowSet body found at `offset` in the datagram,
    /// rejecting templates of more than `max_fields` fields.
    pub fn templates(body: &'a [u8], offset: usize, max_fields: usize) -> Self {
        TemplateRecordIter {
            rest: body,
            offset,
            options: false,
            max_fields,
            zero_tail: zero_tail(body),
        }
    }
    /// Records of an Options Template FlowSet body.
    pub fn options(body: &'a [u8], offset: usize, max_fields: usize) -> Self {
        TemplateRecordIter {
            rest: body,
            offset,
            options: true,
            max_fields,
            zero_tail: zero_tail(body),
        }
    }

    fn fail(&mut self, kind: ErrorKind, at: usize) -> Option<Result<AnyTemplate<'a>>> {
        self.rest = &[];
        Some(Err(Error::new(kind, at)))
    }

    /// Steps over a record whose length is known but which cannot be
    /// used, reporting it; the records after it are still read.
    fn skip(
        &mut self,
        rest: &'a [u8],
        len: usize,
        kind: ErrorKind,
        at: usize,
    ) -> Option<Result<AnyTemplate<'a>>> {
        self.rest = rest;
        self.offset += len;
        Some(Err(Error::new(kind, at)))
    }

    fn next_template(&mut self) -> Option<Result<AnyTemplate<'a>>> {
        let offset = self.offset;
        let Ok((fields, (template_id, count))) = parse_template_header(self.rest) else {
            return self.fail(ErrorKind::TruncatedTemplate, offset);
        };
        let len = usize::from(count) * FIELD_SPECIFIER_LEN;
        let (Some(f), Some(rest)) = (fields.get(..len), fields.get(len..)) else {
            return self.fail(ErrorKind::TruncatedTemplate, offset + TEMPLATE_HEADER_LEN);
        };
        let record_len = TEMPLATE_HEADER_LEN + len;
        if template_id < 256 {
            return self.skip(rest, record_len, ErrorKind::TemplateId, offset);
        }
        if count == 0 {
            return self.skip(rest, record_len, ErrorKind::EmptyTemplate, offset + 2);
        }
        if usize::from(count) > self.max_fields {
            return self.skip(rest, record_len, ErrorKind::TooManyFields, offset + 2);
        }
        self.rest = rest;
        self.offset = offset + record_len;
        Some(Ok(AnyTemplate::Template(TemplateRecord {
            template_id,
            fields: f,
        })))
    }

    fn next_options(&mut self) -> Option<Result<AnyTemplate<'a>>> {
        let offset = self.offset;
        let Ok((fields, (template_id, scope_len, option_len))) =
            parse_options_template_header(self.rest)
        else {
            return self.fail(ErrorKind::TruncatedTemplate, offset);
        };
        let (scope_len, option_len) = (usize::from(scope_len), usize::from(option_len));
        // RFC 3954 §6.1: "Option Scope Length: The length in bytes of any Scope
        // field definition contained in the Options Template Record"; each
        // definition is 4 bytes. Lengths that are not cannot be trusted to
        // find the next record either: stop.
        if scope_len % FIELD_SPECIFIER_LEN != 0 || option_len % FIELD_SPECIFIER_LEN != 0 {
            return self.fail(ErrorKind::OptionsLength, offset + 2);
        }
        let total = scope_len + option_len;
        let (Some(all), Some(rest)) = (fields.get(..total), fields.get(total..)) else {
            return self.fail(
                ErrorKind::TruncatedTemplate,
                offset + OPTIONS_TEMPLATE_HEADER_LEN,
            );
        };
        let record_len = OPTIONS_TEMPLATE_HEADER_LEN + total;
        if template_id < 256 {
            return self.skip(rest, record_len, ErrorKind::TemplateId, offset);
        }
        let count = total / FIELD_SPECIFIER_LEN;
        if count == 0 {
            return self.skip(rest, record_len, ErrorKind::EmptyTemplate, offset + 2);
        }
        if count > self.max_fields {
            return self.skip(rest, record_len, ErrorKind::TooManyFields, offset + 2);
        }
        let (scope, options) = all.split_at(scope_len);
        // RFC 3954 §6.1: the Options Template record is padded to a 4-byte
        // boundary; the padding is only at the end of the FlowSet.
        self.rest = rest;
        self.offset = offset + record_len;
        Some(Ok(AnyTemplate::Options(OptionsTemplateRecord {
            template_id,
            scope,
            options,
        })))
    }
}

impl<'a> Iterator for TemplateRecordIter<'a> {
    type Item = Result<AnyTemplate<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        // Trailing padding: shorter than any record header, or only zeros.
        if self.rest.len() < TEMPLATE_HEADER_LEN || self.rest.len() <= self.zero_tail {
            return None;
        }
        if self.options {
            self.next_options()
        } else {
            self.next_template()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first(body: &[u8], options: bool, max: usize) -> Result<AnyTemplate<'_>> {
        let mut it = if options {
            TemplateRecordIter::options(body, 24, max)
        } else {
            TemplateRecordIter::templates(body, 24, max)
        };
        it.next().unwrap()
    }

    #[test]
    fn deconstruct_template() {
        let body = [
            4, 0, 0, 2, 0, 8, 0, 4, 0, 12, 0, 4, 4, 1, 0, 1, 0, 2, 0, 4, 0, 0,
        ];
        let mut it = TemplateRecordIter::templates(&body, 24, 64);
        let AnyTemplate::Template(t) = it.next().unwrap().unwrap() else {
            panic!()
        };
        assert_eq!(t.template_id(), 1024);
        assert_eq!(t.field_count(), 2);
        let f: [FieldSpecifier; 2] = {
            let mut i = t.fields();
            [i.next().unwrap(), i.next().unwrap()]
        };
        assert_eq!(f[0], FieldSpecifier::new(FieldType::IPV4_SRC_ADDR, 4));
        assert_eq!(f[1], FieldSpecifier::new(FieldType::IPV4_DST_ADDR, 4));
        assert_eq!(it.next().unwrap().unwrap().template_id(), 1025);
        assert!(it.next().is_none(), "2 bytes of padding");
    }

    #[test]
    fn deconstruct_options_template() {
        // id 256, scope len 4 (Interface/4), option len 8 (34/4, 35/1), padding 2
        let body = [1, 0, 0, 4, 0, 8, 0, 2, 0, 4, 0, 34, 0, 4, 0, 35, 0, 1, 0, 0];
        let AnyTemplate::Options(t) = first(&body, true, 64).unwrap() else {
            panic!()
        };
        assert_eq!(t.template_id(), 256);
        assert_eq!(t.scope_fields().next().unwrap().field_type, FieldType(2));
        assert_eq!(t.option_fields().count(), 2);
    }

    #[test]
    fn unusable_records_are_skipped() {
        // id 9 (reserved), then id 257 with no fields, then too many, then a good one
        let body = [
            0, 9, 0, 1, 0, 1, 0, 4, 1, 1, 0, 0, 1, 2, 0, 2, 0, 1, 0, 4, 0, 2, 0, 4, 1, 3, 0, 1, 0,
            1, 0, 4,
        ];
        let got: [core::result::Result<u16, ErrorKind>; 4] = {
            let mut it = TemplateRecordIter::templates(&body, 24, 1)
                .map(|r| r.map(|t| t.template_id()).map_err(|e| e.kind));
            [(); 4].map(|()| it.next().unwrap())
        };
        assert_eq!(
            got,
            [
                Err(ErrorKind::TemplateId),
                Err(ErrorKind::EmptyTemplate),
                Err(ErrorKind::TooManyFields),
                Ok(259)
            ]
        );
        // options: reserved id, then a good one
        let body = [
            0, 2, 0, 4, 0, 4, 0, 1, 0, 4, 0, 34, 0, 4, 1, 0, 0, 0, 0, 4, 0, 34, 0, 4,
        ];
        let mut it = TemplateRecordIter::options(&body, 0, 8);
        assert_eq!(it.next().unwrap().unwrap_err().offset, 0);
        assert_eq!(it.next().unwrap().unwrap().template_id(), 256);
        assert!(it.next().is_none());
    }

    #[test]
    fn hostile_templates() {
        assert_eq!(
            first(&[1, 0, 0, 0], false, 8).unwrap_err().kind,
            ErrorKind::EmptyTemplate
        );
        assert_eq!(
            first(&[0, 9, 0, 1, 0, 1, 0, 4], false, 8).unwrap_err().kind,
            ErrorKind::TemplateId
        );
        let mut nine = [0u8; 40];
        nine[..4].copy_from_slice(&[1, 0, 0, 9]);
        for f in nine[4..].chunks_exact_mut(4) {
            f.copy_from_slice(&[0, 1, 0, 4]);
        }
        assert_eq!(
            first(&nine, false, 8).unwrap_err().kind,
            ErrorKind::TooManyFields
        );
        assert_eq!(
            first(&nine[..8], false, 8).unwrap_err().kind,
            ErrorKind::TruncatedTemplate,
            "a record cut short is truncated, whatever else is wrong"
        );
        assert_eq!(
            first(&[1, 0, 0, 2, 0, 1, 0, 4], false, 8).unwrap_err().kind,
            ErrorKind::TruncatedTemplate
        );
        assert_eq!(
            first(&[1, 0, 0, 3, 0, 4, 0, 0], true, 8).unwrap_err().kind,
            ErrorKind::OptionsLength
        );
        assert_eq!(
            first(&[1, 0, 0, 0, 0, 0, 0, 0], true, 8).unwrap_err().kind,
            ErrorKind::EmptyTemplate
        );
        assert_eq!(
            first(&[1, 0, 0, 4, 0, 4, 0, 1], true, 8).unwrap_err().kind,
            ErrorKind::TruncatedTemplate
        );
    }
}
