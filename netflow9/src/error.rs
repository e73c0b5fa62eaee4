//! The one error type of the crate: what went wrong, and where.

use core::fmt;

/// What was malformed. Each variant says when it happens.
///
/// Errors are for malformed *framing* only: an unknown field type, an unknown
/// template or a reserved FlowSet ID are data, reported through counters and
/// [`crate::Record`]s, never as errors.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum ErrorKind {
    /// The datagram is shorter than the 20-byte packet header.
    TruncatedHeader,
    /// The header's version is not 9 (the value is carried).
    UnsupportedVersion(u16),
    /// A FlowSet length is below 4 (its own header) or runs past the datagram.
    FlowSetLength,
    /// A Template or Options Template record runs past the end of its FlowSet.
    TruncatedTemplate,
    /// A Template ID below 256 in a Template or Options Template FlowSet.
    TemplateId,
    /// A Template or Options Template with no fields at all.
    EmptyTemplate,
    /// More fields than the decoder is configured to keep.
    TooManyFields,
    /// An Options Template's scope or option length is not a multiple of 4.
    OptionsLength,
    /// A record would be 65 535 bytes or longer, or would hold no byte at
    /// all (a template of zero-length fields only), or is empty.
    RecordLength,
    /// A variable-length field's length prefix runs past the record.
    VariableLength,
    /// The caller's buffer is too small for what the encoder was asked to emit.
    BufferTooSmall,
    /// A data FlowSet ends with 4 bytes or more that are neither a whole
    /// record nor zero padding (the records before them are decoded).
    RecordRemainder,
    /// The encoder was asked for a FlowSet or packet over 65 535 bytes,
    /// or for more records than the header's 16-bit count holds.
    TooLong,
}

impl ErrorKind {
    /// Number of distinct kinds, for per-kind counters.
    pub const COUNT: usize = 13;

    /// A dense index in `0..COUNT`, for per-kind counter arrays.
    ///
    /// ```
    /// use netflow9::ErrorKind;
    /// assert_eq!(ErrorKind::TruncatedHeader.index(), 0);
    /// assert!(ErrorKind::BufferTooSmall.index() < ErrorKind::COUNT);
    /// ```
    #[must_use]
    pub const fn index(self) -> usize {
        match self {
            ErrorKind::TruncatedHeader => 0,
            ErrorKind::UnsupportedVersion(_) => 1,
            ErrorKind::FlowSetLength => 2,
            ErrorKind::TruncatedTemplate => 3,
            ErrorKind::TemplateId => 4,
            ErrorKind::EmptyTemplate => 5,
            ErrorKind::TooManyFields => 6,
            ErrorKind::OptionsLength => 7,
            ErrorKind::RecordLength => 8,
            ErrorKind::VariableLength => 9,
            ErrorKind::BufferTooSmall => 10,
            ErrorKind::RecordRemainder => 11,
            ErrorKind::TooLong => 12,
        }
    }

    /// A short, stable, snake_case name (for metrics labels and logs).
    #[must_use]
    pub const fn name(self) -> &'static str {
        Self::NAMES[self.index()]
    }

    /// Names indexed by [`ErrorKind::index`].
    pub const NAMES: [&'static str; Self::COUNT] = [
        "truncated_header",
        "unsupported_version",
        "flowset_length",
        "truncated_template",
        "template_id",
        "empty_template",
        "too_many_fields",
        "options_length",
        "record_length",
        "variable_length",
        "buffer_too_small",
        "record_remainder",
        "too_long",
    ];
}

/// A malformed-input error: its kind and the byte offset in the datagram
/// (or, for the encoder, in the output buffer) where it was found.
///
/// `Copy`, allocation-free, and cheap to return from the hot path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Error {
    /// What was wrong.
    pub kind: ErrorKind,
    /// Where, in bytes from the start of the datagram.
    pub offset: usize,
}

impl Error {
    pub(crate) const fn new(kind: ErrorKind, offset: usize) -> Self {
        Error { kind, offset }
    }
}

/// The crate's result type.
pub type Result<T> = core::result::Result<T, Error>;

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::TruncatedHeader => f.write_str("datagram shorter than the 20-byte header"),
            ErrorKind::UnsupportedVersion(v) => write!(f, "version {v} is not NetFlow v9"),
            ErrorKind::FlowSetLength => f.write_str("FlowSet length below 4 or past the end"),
            ErrorKind::TruncatedTemplate => f.write_str("template record runs past its FlowSet"),
            ErrorKind::TemplateId => f.write_str("template ID below 256"),
            ErrorKind::EmptyTemplate => f.write_str("template without fields"),
            ErrorKind::TooManyFields => f.write_str("template has more fields than configured"),
            ErrorKind::OptionsLength => {
                f.write_str("options template scope/option length not a multiple of 4")
            }
            ErrorKind::RecordLength => {
                f.write_str("record length out of range (empty, or 65535 bytes or more)")
            }
            ErrorKind::VariableLength => f.write_str("variable-length field runs past the record"),
            ErrorKind::BufferTooSmall => f.write_str("output buffer too small"),
            ErrorKind::RecordRemainder => {
                f.write_str("bytes after the last record are neither a record nor padding")
            }
            ErrorKind::TooLong => f.write_str("FlowSet or packet over 65535 bytes"),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.kind, self.offset)
    }
}

impl core::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_is_dense_and_names_match() {
        let kinds = [
            ErrorKind::TruncatedHeader,
            ErrorKind::UnsupportedVersion(5),
            ErrorKind::FlowSetLength,
            ErrorKind::TruncatedTemplate,
            ErrorKind::TemplateId,
            ErrorKind::EmptyTemplate,
            ErrorKind::TooManyFields,
            ErrorKind::OptionsLength,
            ErrorKind::RecordLength,
            ErrorKind::VariableLength,
            ErrorKind::BufferTooSmall,
            ErrorKind::RecordRemainder,
            ErrorKind::TooLong,
        ];
        for (i, k) in kinds.iter().enumerate() {
            assert_eq!(k.index(), i);
        }
        assert_eq!(ErrorKind::FlowSetLength.name(), "flowset_length");
    }

    #[test]
    fn display_names_offset() {
        extern crate std;
        use std::string::ToString;
        let e = Error::new(ErrorKind::UnsupportedVersion(10), 0);
        assert_eq!(e.to_string(), "version 10 is not NetFlow v9 at byte 0");
    }
}
