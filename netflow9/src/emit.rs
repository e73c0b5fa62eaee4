//! The encoder: builds export packets into a caller buffer, for tests,
//! benchmarks, traffic generators and Rust exporters.

use crate::template::{Template, MAX_FIELDS};
use crate::wire::flowset::FLOWSET_HEADER_LEN;
use crate::wire::{FieldSpecifier, HeaderRepr, HEADER_LEN};
use crate::{Error, ErrorKind, Result};

/// Builds one export packet: header, then Template, Options Template and
/// Data FlowSets, with lengths, padding and the header's count filled in by
/// [`PacketBuilder::finish`]. Consecutive records of the same kind share a
/// FlowSet. On [`ErrorKind::BufferTooSmall`] or [`ErrorKind::TooLong`] (the
/// packet, a FlowSet or the header's record count would overflow its 16
/// bits) nothing is written, so a caller can finish the packet and start a
/// new one. Templates are checked as the decoder checks them, and whatever
/// the builder accepts the decoder reads back, with one exception RFC 3954
/// leaves open: a FlowSet is padded with up to 3 zero bytes, so records of
/// 1 to 3 bytes ending in zeros, last in their FlowSet, read as padding.
///
/// ```
/// use netflow9::{FieldSpecifier, FieldType, HeaderRepr, PacketBuilder, Template};
/// let fields = [FieldSpecifier::new(FieldType::IN_BYTES, 4)];
/// let template = Template::new(256, &fields).unwrap();
/// let mut buf = [0u8; 1500];
/// let mut b = PacketBuilder::new(&mut buf, HeaderRepr::default()).unwrap();
/// b.template(256, &fields).unwrap();
/// b.record_with(&template, |r| r.copy_from_slice(&1500u32.to_be_bytes())).unwrap();
/// let len = b.finish().unwrap();
/// assert_eq!(len, 20 + 12 + 8);
/// ```
#[derive(Debug)]
pub struct PacketBuilder<'b> {
    buf: &'b mut [u8],
    len: usize,
    records: u16,
    /// Start and ID of the FlowSet being written.
    open: Option<(usize, u16)>,
    header: HeaderRepr,
}

/// Worst-case padding at the end of a FlowSet.
const MAX_PADDING: usize = 3;

/// The most bytes a FlowSet (its 16-bit Length) or, here, a packet can have.
const MAX_LEN: usize = u16::MAX as usize;

impl<'b> PacketBuilder<'b> {
    /// Starts a packet with `header` (its `count` is replaced at `finish`).
    ///
    /// # Errors
    /// [`ErrorKind::BufferTooSmall`] if `buf` cannot hold the header.
    pub fn new(buf: &'b mut [u8], header: HeaderRepr) -> Result<Self> {
        header.emit(buf)?;
        Ok(PacketBuilder {
            buf,
            len: HEADER_LEN,
            records: 0,
            open: None,
            header,
        })
    }

    /// Bytes written so far (without the closing padding).
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when only the header is written.
    pub fn is_empty(&self) -> bool {
        self.len == HEADER_LEN
    }

    /// Records (template, options template and data) written so far.
    pub fn records(&self) -> u16 {
        self.records
    }

    /// Bytes needed to add `n` more bytes to a FlowSet with ID `id`.
    fn need(&self, id: u16, n: usize) -> usize {
        let header = match self.open {
            Some((_, open)) if open == id => 0,
            Some(_) => MAX_PADDING + FLOWSET_HEADER_LEN,
            None => FLOWSET_HEADER_LEN,
        };
        header + n + MAX_PADDING
    }

    fn reserve(&mut self, id: u16, n: usize) -> Result<&mut [u8]> {
        // RFC 3954 §5.3: "Length: the total length of this FlowSet" is 16
        // bits; so is the header's count of records.
        let flowset = match self.open {
            Some((start, open)) if open == id => self.len - start + n + MAX_PADDING,
            _ => FLOWSET_HEADER_LEN + n + MAX_PADDING,
        };
        if flowset > MAX_LEN || self.len + self.need(id, n) > MAX_LEN || self.records == u16::MAX {
            return Err(Error::new(ErrorKind::TooLong, self.len));
        }
        if self.len + self.need(id, n) > self.buf.len() {
            return Err(Error::new(ErrorKind::BufferTooSmall, self.len));
        }
        if !matches!(self.open, Some((_, open)) if open == id) {
            self.close();
            let at = self.len;
            self.buf[at..at + 2].copy_from_slice(&id.to_be_bytes());
            self.len += FLOWSET_HEADER_LEN;
            self.open = Some((at, id));
        }
        let at = self.len;
        self.len += n;
        self.records += 1;
        let out = &mut self.buf[at..at + n];
        out.fill(0);
        Ok(out)
    }

    /// Pads the open FlowSet to 4 bytes and writes its length.
    fn close(&mut self) {
        if let Some((start, _)) = self.open.take() {
            // RFC 3954 §5.3: "The Exporter SHOULD insert some padding bytes
            // so that the subsequent FlowSet starts at a 4-byte aligned boundary."
            while (self.len - start) % 4 != 0 {
                self.buf[self.len] = 0;
                self.len += 1;
            }
            let length = (self.len - start) as u16;
            self.buf[start + 2..start + 4].copy_from_slice(&length.to_be_bytes());
        }
    }

    /// Adds a Template record.
    ///
    /// # Errors
    /// [`ErrorKind::BufferTooSmall`], [`ErrorKind::TooLong`];
    /// [`ErrorKind::TemplateId`] below 256; [`ErrorKind::EmptyTemplate`],
    /// [`ErrorKind::TooManyFields`] (over [`MAX_FIELDS`]) or
    /// [`ErrorKind::RecordLength`] (no byte, or more than 65 535): what the
    /// decoder would reject ([`Template::new`]).
    pub fn template(&mut self, template_id: u16, fields: &[FieldSpecifier]) -> Result<()> {
        self.check_template(template_id, fields.len())?;
        Template::new(template_id, fields).map_err(|e| Error::new(e.kind, self.len))?;
        let out = self.reserve(0, 4 + 4 * fields.len())?;
        out[..2].copy_from_slice(&template_id.to_be_bytes());
        out[2..4].copy_from_slice(&(fields.len() as u16).to_be_bytes());
        for (f, o) in fields.iter().zip(out[4..].chunks_exact_mut(4)) {
            f.emit(o);
        }
        Ok(())
    }

    /// Adds an Options Template record.
    ///
    /// # Errors
    /// As [`PacketBuilder::template`].
    pub fn options_template(
        &mut self,
        template_id: u16,
        scope: &[FieldSpecifier],
        fields: &[FieldSpecifier],
    ) -> Result<()> {
        self.check_template(template_id, scope.len() + fields.len())?;
        Template::new_options(template_id, scope, fields)
            .map_err(|e| Error::new(e.kind, self.len))?;
        let out = self.reserve(1, 6 + 4 * (scope.len() + fields.len()))?;
        out[..2].copy_from_slice(&template_id.to_be_bytes());
        out[2..4].copy_from_slice(&((4 * scope.len()) as u16).to_be_bytes());
        out[4..6].copy_from_slice(&((4 * fields.len()) as u16).to_be_bytes());
        for (f, o) in scope.iter().chain(fields).zip(out[6..].chunks_exact_mut(4)) {
            f.emit(o);
        }
        Ok(())
    }

    fn check_template(&self, template_id: u16, fields: usize) -> Result<()> {
        let kind = if template_id < 256 {
            ErrorKind::TemplateId
        } else if fields == 0 {
            ErrorKind::EmptyTemplate
        } else if fields > MAX_FIELDS {
            ErrorKind::TooManyFields
        } else {
            return Ok(());
        };
        Err(Error::new(kind, self.len))
    }

    /// Adds the record that defines `template` (Template or Options Template).
    ///
    /// # Errors
    /// [`ErrorKind::BufferTooSmall`], [`ErrorKind::TooLong`].
    pub fn template_of(&mut self, template: &Template) -> Result<()> {
        let mut all = [FieldSpecifier::default(); MAX_FIELDS];
        let n = template.field_count();
        for (d, s) in all.iter_mut().zip(template.fields()) {
            *d = s;
        }
        let (scope, fields) = all[..n].split_at(template.scope_count());
        if template.is_options() {
            self.options_template(template.template_id(), scope, fields)
        } else {
            self.template(template.template_id(), fields)
        }
    }

    /// Adds a data record of template `template_id`, copied from `record`.
    /// The builder does not know the template (it may have gone out in an
    /// earlier packet): `record` must be one record of it, as laid out by
    /// [`Template::offset_of`] (see [`PacketBuilder::record_with`]).
    ///
    /// # Errors
    /// [`ErrorKind::BufferTooSmall`], [`ErrorKind::TooLong`];
    /// [`ErrorKind::TemplateId`] below 256; [`ErrorKind::RecordLength`] for
    /// an empty record.
    pub fn record(&mut self, template_id: u16, record: &[u8]) -> Result<()> {
        if template_id < 256 {
            return Err(Error::new(ErrorKind::TemplateId, self.len));
        }
        if record.is_empty() {
            return Err(Error::new(ErrorKind::RecordLength, self.len));
        }
        self.reserve(template_id, record.len())?
            .copy_from_slice(record);
        Ok(())
    }

    /// Adds a zeroed data record of `template` and lets `fill` write it
    /// (see [`Template::offset_of`] for where each field goes).
    ///
    /// # Errors
    /// As [`PacketBuilder::record`]; [`ErrorKind::VariableLength`] for a
    /// template with variable-length fields (their lengths are part of the
    /// record: build it and use [`PacketBuilder::record`]).
    pub fn record_with(&mut self, template: &Template, fill: impl FnOnce(&mut [u8])) -> Result<()> {
        if template.is_variable() {
            return Err(Error::new(ErrorKind::VariableLength, self.len));
        }
        fill(self.reserve(template.template_id(), template.record_len())?);
        Ok(())
    }

    /// Closes the last FlowSet, writes the header's count, and returns the
    /// packet's length.
    ///
    /// # Errors
    /// None in practice (space for padding is reserved as records are added).
    pub fn finish(mut self) -> Result<usize> {
        self.close();
        let header = HeaderRepr {
            count: self.records,
            ..self.header
        };
        header.emit(self.buf)?;
        Ok(self.len)
    }
}

impl Template {
    /// Byte range of the first field of type `t` in a record (fixed-length
    /// templates only).
    ///
    /// ```
    /// use netflow9::{FieldSpecifier, FieldType, Template};
    /// let t = Template::new(256, &[
    ///     FieldSpecifier::new(FieldType::IN_PKTS, 4),
    ///     FieldSpecifier::new(FieldType::IN_BYTES, 8),
    /// ]).unwrap();
    /// assert_eq!(t.offset_of(FieldType::IN_BYTES), Some(4..12));
    /// ```
    #[must_use]
    pub fn offset_of(&self, t: crate::FieldType) -> Option<core::ops::Range<usize>> {
        if self.is_variable() {
            return None;
        }
        self.slots()
            .iter()
            .skip(self.scope_count())
            .find(|s| s.field_type == t.0)
            .map(|s| {
                let o = usize::from(s.offset);
                o..o + usize::from(s.length)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{FlowSetIter, FlowSetKind, PacketHeader};
    use crate::FieldType;

    #[test]
    fn construct_and_parse_back() {
        let fields = [FieldSpecifier::new(FieldType::PROTOCOL, 1)];
        let t = Template::new(300, &fields).unwrap();
        let mut buf = [0u8; 64];
        let mut b = PacketBuilder::new(
            &mut buf,
            HeaderRepr {
                sequence_number: 5,
                ..HeaderRepr::default()
            },
        )
        .unwrap();
        b.template(300, &fields).unwrap();
        b.record_with(&t, |r| r[0] = 6).unwrap();
        b.record(300, &[17]).unwrap();
        let len = b.finish().unwrap();
        let p = PacketHeader::new_checked(&buf[..len]).unwrap();
        assert_eq!((p.count(), p.sequence_number()), (3, 5));
        let mut sets = FlowSetIter::new(p.payload());
        let s0 = sets.next().unwrap().unwrap();
        assert_eq!(s0.kind(), FlowSetKind::Template);
        assert_eq!(s0.body().len(), 8);
        let s1 = sets.next().unwrap().unwrap();
        assert_eq!(s1.kind(), FlowSetKind::Data(300));
        assert_eq!(
            s1.body(),
            &[6, 17, 0, 0],
            "two records, two bytes of padding"
        );
        assert!(sets.next().is_none());
    }

    /// Regression: FlowSet lengths were cast `as u16` and the count
    /// wrapped, so the builder emitted packets the decoder misreads.
    #[test]
    fn lengths_and_counts_that_do_not_fit_16_bits_are_refused() {
        extern crate std;
        let mut buf = std::vec![0u8; 80_000];
        let mut b = PacketBuilder::new(&mut buf, HeaderRepr::default()).unwrap();
        let mut n = 0;
        let err = loop {
            match b.record(300, &[1; 1000]) {
                Ok(()) => n += 1,
                Err(e) => break e,
            }
        };
        assert_eq!(err.kind, ErrorKind::TooLong);
        assert_eq!(n, 65);
        let len = b.finish().unwrap();
        let p = PacketHeader::new_checked(&buf[..len]).unwrap();
        let set = FlowSetIter::new(p.payload()).next().unwrap().unwrap();
        assert_eq!(set.body().len(), 65_000);
        assert_eq!(p.count(), 65);

        // An empty record is refused (it would count in the header and
        // never decode); with records of a byte or more, the packet's
        // length runs out before its count.
        let mut b = PacketBuilder::new(&mut buf, HeaderRepr::default()).unwrap();
        assert_eq!(
            b.record(300, &[]).unwrap_err().kind,
            ErrorKind::RecordLength
        );
        assert!(b.is_empty());

        let mut b = PacketBuilder::new(&mut buf, HeaderRepr::default()).unwrap();
        let f = FieldSpecifier::new(FieldType::IN_BYTES, 4);
        let kind = |r: Result<()>| r.unwrap_err().kind;
        assert_eq!(kind(b.template(255, &[f])), ErrorKind::TemplateId);
        assert_eq!(kind(b.template(256, &[])), ErrorKind::EmptyTemplate);
        assert_eq!(
            kind(b.template(256, &[f; MAX_FIELDS + 1])),
            ErrorKind::TooManyFields
        );
        assert_eq!(
            kind(b.options_template(1, &[f], &[f])),
            ErrorKind::TemplateId
        );
        // Templates the decoder would reject: no byte at all, or records
        // over 65 535 bytes.
        let zero = FieldSpecifier::new(FieldType::IN_BYTES, 0);
        let huge = FieldSpecifier::new(FieldType::IN_BYTES, 40_000);
        assert_eq!(kind(b.template(300, &[zero])), ErrorKind::RecordLength);
        assert_eq!(
            kind(b.template(301, &[huge, huge])),
            ErrorKind::RecordLength
        );
        assert_eq!(
            kind(b.options_template(302, &[zero], &[])),
            ErrorKind::RecordLength
        );
        assert!(b.is_empty());
        b.template(256, &[f; MAX_FIELDS]).unwrap();
        // A variable-length template's records carry their lengths: not
        // fillable in place.
        let var = Template::new(
            303,
            &[FieldSpecifier::new(
                FieldType::IF_NAME,
                crate::wire::VARIABLE_LENGTH,
            )],
        )
        .unwrap();
        assert_eq!(kind(b.record_with(&var, |_| {})), ErrorKind::VariableLength);
    }

    #[test]
    fn buffer_too_small_writes_nothing() {
        let mut buf = [0u8; 30];
        let mut b = PacketBuilder::new(&mut buf, HeaderRepr::default()).unwrap();
        assert_eq!(
            b.record(300, &[0; 8]).unwrap_err().kind,
            ErrorKind::BufferTooSmall
        );
        assert!(b.is_empty());
        b.record(300, &[1; 2]).unwrap();
        assert_eq!(b.finish().unwrap(), 28);
        assert!(PacketBuilder::new(&mut [0u8; 10], HeaderRepr::default()).is_err());
    }
}
