//! Zero-copy views over the bytes of an Export Packet (RFC 3954 §5).
//!
//! Each on-wire structure has one view type over a borrowed buffer and, where
//! it helps, a small `Copy` *Repr* with `parse`/`emit`. A view's
//! `new_checked` validates every length once; after it returns `Ok`, none of
//! the view's accessors can panic, whatever the bytes were.
//!
//! Framing is parsed with private nom combinators (module `parse`); no nom type
//! appears in the public API.

pub mod flowset;
pub mod header;
pub(crate) mod parse;
pub mod record;
pub mod template;

pub use flowset::{FlowSet, FlowSetIter, FlowSetKind, FLOWSET_HEADER_LEN};
pub use header::{HeaderRepr, PacketHeader, HEADER_LEN};
pub use record::{read_uint, Value};
pub use template::{
    FieldSpecifier, OptionsTemplateRecord, TemplateRecord, TemplateRecordIter, VARIABLE_LENGTH,
};

/// True if every byte is zero: trailing padding, not a structure.
pub(crate) fn is_padding(bytes: &[u8]) -> bool {
    bytes.iter().all(|&b| b == 0)
}
