//! Zero-copy, allocation-free NetFlow v9 ([RFC 3954]) decoding and encoding.
//!
//! A NetFlow v9 export packet is a 20-byte header followed by FlowSets:
//! Templates (ID 0) describe the layout of records, Options Templates (ID 1)
//! describe records about the exporter itself (samplers, interfaces), and
//! Data FlowSets (ID ≥ 256) carry records laid out by a template the
//! exporter sent earlier, in this packet or another one.
//!
//! # Two levels
//!
//! - [`Decoder`] is what a collector uses: it owns a fixed-capacity template
//!   cache keyed by exporter address, Source ID and Template ID, tracks
//!   sequence numbers and exporter restarts per observation domain, learns
//!   sampling rates from options records, keeps data that arrives before its
//!   template until the template comes, and hands every record to a closure
//!   as a borrowed [`Record`], from which [`Record::flow`] builds a
//!   normalized, `Copy` [`Flow`]. It never allocates after construction.
//!   [`Decoder::decode_sets`] hands out whole data FlowSets ([`DataSet`])
//!   instead, for callers that read a few fields of every record: look the
//!   offsets up once per FlowSet ([`Template::offset_of`]), then slice each
//!   record — as fast as a hand-written loop, with every length validated.
//! - [`wire`] has the lazy views ([`wire::PacketHeader`], [`wire::FlowSetIter`],
//!   [`wire::TemplateRecordIter`]) and `Copy` reprs ([`HeaderRepr`]) for tools
//!   that want the structure itself; [`PacketBuilder`] emits packets.
//!
//! ```
//! use netflow9::{Config, Decoder, FieldSpecifier, FieldType, HeaderRepr, PacketBuilder, Template};
//!
//! // An exporter: one template, one record.
//! let fields = [
//!     FieldSpecifier::new(FieldType::IPV4_SRC_ADDR, 4),
//!     FieldSpecifier::new(FieldType::IPV4_DST_ADDR, 4),
//!     FieldSpecifier::new(FieldType::IN_BYTES, 4),
//! ];
//! let template = Template::new(256, &fields)?;
//! let mut buf = [0u8; 1500];
//! let mut packet = PacketBuilder::new(&mut buf, HeaderRepr { unix_secs: 1_709_294_536, ..Default::default() })?;
//! packet.template(256, &fields)?;
//! packet.record(256, &[10, 0, 0, 1, 192, 0, 2, 1, 0, 0, 5, 220])?;
//! let len = packet.finish()?;
//!
//! // A collector.
//! let mut decoder = Decoder::new(Config::default());
//! let mut flows = Vec::new();
//! decoder.decode("198.51.100.7".parse().unwrap(), &buf[..len], |r| flows.push(r.flow()))?;
//! assert_eq!(flows[0].bytes, 1500);
//! assert_eq!(flows[0].dst_addr.to_string(), "192.0.2.1");
//! assert_eq!(decoder.counters().templates, 1);
//! # Ok::<(), netflow9::Error>(())
//! ```
//!
//! # Hostile input
//!
//! Every length is checked before use; the header's `count` sizes nothing;
//! no input can panic, loop forever or allocate. Malformed structures are
//! reported as an [`Error`] with its [`ErrorKind`] and byte offset, counted in
//! [`Counters::malformed`], and the rest of the packet is still decoded.
//!
//! # Features
//!
//! - `std` (default): implies `alloc`.
//! - `alloc`: [`Decoder::new`] allocates its fixed storage; without it, use
//!   [`Decoder::with_storage`] with caller-provided slices (`no_std`, no allocator).
//! - `serde`: `Serialize`/`Deserialize` for [`Flow`], [`Counters`] and reprs.
//!
//! [RFC 3954]: https://www.rfc-editor.org/rfc/rfc3954

#![no_std]
// The workspace only denies unsafe code, so that the allocation-counting
// test allocator can exist; the library itself forbids it.
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

mod counters;
mod dataset;
mod decoder;
mod domain;
mod emit;
mod error;
mod field;
mod flow;
mod layout;
mod managed;
mod pending;
mod record;
mod sampling;
mod table;
mod template;
pub mod wire;

pub use counters::Counters;
pub use dataset::{DataSet, RecordBytes};
pub use decoder::{
    empty_domain_slot, empty_template_slot, Config, Decoder, DomainSlot, PacketSummary, Storage,
    TemplateKey, TemplateSlot,
};
pub use domain::{DomainKey, DomainState, DomainStats, SEQUENCE_RESYNC, SEQUENCE_WINDOW};
pub use emit::PacketBuilder;
pub use error::{Error, ErrorKind, Result};
pub use field::{FieldType, ScopeType, ValueKind};
pub use flow::{Flow, RecordContext};
pub use pending::ENTRY_OVERHEAD as PENDING_ENTRY_OVERHEAD;
pub use record::{Field, Record};
pub use sampling::{Sampler, Samplers, SAMPLERS_PER_DOMAIN};
pub use table::Slot;
pub use template::{Template, MAX_FIELDS};
pub use wire::{FieldSpecifier, HeaderRepr, Value};
