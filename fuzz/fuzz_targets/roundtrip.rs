//! Encoder → wire views → decoder round trip.
//!
//! libFuzzer's bytes become, through `arbitrary`, a description of a packet:
//! header fields and a sequence of Template, Options Template and data
//! record operations. `PacketBuilder` emits it into a 64 KiB buffer; the wire
//! views and a fresh `Decoder` must give back the same header, the same
//! field lists, the same record bytes and the same counts.
//!
//! One ambiguity of RFC 3954 is accounted for, not papered over: a Data
//! FlowSet is padded to 4 bytes with zeros, and a collector cannot tell the
//! padding of a FlowSet whose records are shorter than 4 bytes from more
//! all-zero records. The decoder reads up to 3 zero bytes at the end as
//! padding, so all-zero records ending within them are not decoded, and
//! that is what is expected.
#![no_main]

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use netflow9::wire::template::AnyTemplate;
use netflow9::wire::{FlowSetIter, FlowSetKind, HeaderRepr, PacketHeader, TemplateRecordIter};
use netflow9::{
    Config, Decoder, ErrorKind, FieldSpecifier, FieldType, PacketBuilder, Template, TemplateKey,
};

/// Most fields per template in a description (the decoder's limit is higher).
const MAX_FIELDS: usize = 32;
/// Most operations per packet.
const MAX_OPS: usize = 64;
const BUF_LEN: usize = 64 * 1024;
/// Room for every template of a packet and every FlowSet that comes before
/// its template; smaller than the default, which costs 5 MB per decoder.
const CONFIG: Config = Config {
    templates: MAX_OPS,
    max_fields: MAX_FIELDS,
    domains: 1,
    pending_bytes: 2 * BUF_LEN,
    pending_max_age_secs: 120,
    hash_seed: 0x5eed,
};

#[derive(Arbitrary, Debug)]
struct Header {
    sys_uptime: u32,
    unix_secs: u32,
    sequence_number: u32,
    source_id: u32,
}

/// A field specifier with a length of 1 to 16 bytes.
#[derive(Arbitrary, Debug, Clone, Copy)]
struct Field {
    field_type: u16,
    length: u8,
}

impl Field {
    fn spec(self) -> FieldSpecifier {
        FieldSpecifier::new(FieldType(self.field_type), 1 + u16::from(self.length % 16))
    }
}

#[derive(Arbitrary, Debug)]
enum Op {
    /// A Template record; the ID is 256 + `id`, made unique in the packet.
    Template {
        id: u16,
        first: Field,
        more: Vec<Field>,
    },
    /// An Options Template record with at least one field.
    Options {
        id: u16,
        scope: Vec<Field>,
        first: Field,
        more: Vec<Field>,
    },
    /// A data record of the `which`-th template of the packet (defined
    /// before or after it), filled by repeating `bytes`.
    Record { which: u8, bytes: Vec<u8> },
}

#[derive(Arbitrary, Debug)]
struct Description {
    header: Header,
    ops: Vec<Op>,
}

/// A template of the packet, as described.
struct Described {
    id: u16,
    scope: Vec<FieldSpecifier>,
    fields: Vec<FieldSpecifier>,
    options: bool,
    template: Template,
}

/// What was emitted, in order.
enum Emitted {
    Template(usize),
    Record(usize, Vec<u8>),
}

fn unique_id(id: u16, used: &[Described]) -> u16 {
    let mut id = 256 + id % (u16::MAX - 255);
    while used.iter().any(|t| t.id == id) {
        id = id.checked_add(1).unwrap_or(256);
    }
    id
}

fn specs(first: Field, more: &[Field], room: usize) -> Vec<FieldSpecifier> {
    std::iter::once(first)
        .chain(more.iter().copied())
        .take(room)
        .map(Field::spec)
        .collect()
}

/// Turns the description into templates and an emission order.
fn plan(d: &Description) -> (Vec<Described>, Vec<Emitted>) {
    let mut templates: Vec<Described> = Vec::new();
    for op in d.ops.iter().take(MAX_OPS) {
        let (id, scope, fields, options) = match op {
            Op::Template { id, first, more } => {
                (*id, Vec::new(), specs(*first, more, MAX_FIELDS), false)
            }
            Op::Options {
                id,
                scope,
                first,
                more,
            } => {
                let scope: Vec<_> = scope
                    .iter()
                    .take(MAX_FIELDS - 1)
                    .map(|f| f.spec())
                    .collect();
                let fields = specs(*first, more, MAX_FIELDS - scope.len());
                (*id, scope, fields, true)
            }
            Op::Record { .. } => continue,
        };
        let id = unique_id(id, &templates);
        let template = if options {
            Template::new_options(id, &scope, &fields)
        } else {
            Template::new(id, &fields)
        }
        .expect("1..=32 fields of 1..=16 bytes make a valid template");
        templates.push(Described {
            id,
            scope,
            fields,
            options,
            template,
        });
    }
    let mut order = Vec::new();
    let mut next = 0;
    for op in d.ops.iter().take(MAX_OPS) {
        match op {
            Op::Record { which, bytes } => {
                if templates.is_empty() {
                    continue;
                }
                let t = usize::from(*which) % templates.len();
                let len = templates[t].template.record_len();
                let record: Vec<u8> = if bytes.is_empty() {
                    vec![0; len]
                } else {
                    bytes.iter().copied().cycle().take(len).collect()
                };
                order.push(Emitted::Record(t, record));
            }
            _ => {
                order.push(Emitted::Template(next));
                next += 1;
            }
        }
    }
    (templates, order)
}

/// Emits the packet with field lists and raw records (`by_template` false),
/// or with `template_of` and `record_with` (true). `None` if it does not fit.
fn emit(
    buf: &mut [u8],
    header: HeaderRepr,
    templates: &[Described],
    order: &[Emitted],
    by_template: bool,
) -> Option<usize> {
    let mut b = PacketBuilder::new(buf, header).expect("64 KiB hold a header");
    for e in order {
        let r = match (e, by_template) {
            (Emitted::Template(t), false) => {
                let t = &templates[*t];
                if t.options {
                    b.options_template(t.id, &t.scope, &t.fields)
                } else {
                    b.template(t.id, &t.fields)
                }
            }
            (Emitted::Template(t), true) => b.template_of(&templates[*t].template),
            (Emitted::Record(t, bytes), false) => b.record(templates[*t].id, bytes),
            (Emitted::Record(t, bytes), true) => {
                b.record_with(&templates[*t].template, |r| r.copy_from_slice(bytes))
            }
        };
        match r {
            Ok(()) => {}
            Err(e) if e.kind == ErrorKind::BufferTooSmall => return None,
            Err(e) => panic!("emit: {e:?}"),
        }
    }
    Some(b.finish().expect("finish cannot fail"))
}

fuzz_target!(|d: Description| {
    let (templates, order) = plan(&d);
    let header = HeaderRepr {
        count: 0,
        sys_uptime: d.header.sys_uptime,
        unix_secs: d.header.unix_secs,
        sequence_number: d.header.sequence_number,
        source_id: d.header.source_id,
    };
    let mut buf = vec![0u8; BUF_LEN];
    let Some(len) = emit(&mut buf, header, &templates, &order, false) else {
        return;
    };
    let packet = &buf[..len];
    let mut again = vec![0u8; BUF_LEN];
    let len2 = emit(&mut again, header, &templates, &order, true).expect("same size");
    assert_eq!(
        packet,
        &again[..len2],
        "template_of/record_with emit the same bytes"
    );

    // Header.
    let header = HeaderRepr {
        count: order.len() as u16,
        ..header
    };
    assert_eq!(HeaderRepr::parse(packet).unwrap(), header);
    let view = PacketHeader::new_checked(packet).unwrap();
    assert_eq!(view.repr(), header);
    assert_eq!(len % 4, 0, "FlowSets are padded to 4 bytes");

    // Wire views: FlowSets follow the emission order, run by run.
    let by_id: BTreeMap<u16, usize> = templates
        .iter()
        .enumerate()
        .map(|(i, t)| (t.id, i))
        .collect();
    let mut order_iter = order.iter().peekable();
    // Per template index: expected decoded records.
    let mut expected: Vec<Vec<Vec<u8>>> = vec![Vec::new(); templates.len()];
    // Data FlowSets and records that come before their template: the
    // decoder keeps them and replays them when the template arrives.
    let mut defined = vec![false; templates.len()];
    let (mut early_sets, mut early_records) = (0u64, 0u32);
    let mut sets = 0;
    for set in FlowSetIter::new(view.payload()) {
        let set = set.expect("emitted FlowSets are well-formed");
        sets += 1;
        assert_eq!(set.body().len() % 4, 0);
        match set.kind() {
            kind @ (FlowSetKind::Template | FlowSetKind::OptionsTemplate) => {
                let options = kind == FlowSetKind::OptionsTemplate;
                let iter = if options {
                    TemplateRecordIter::options(set.body(), set.body_offset(), MAX_FIELDS)
                } else {
                    TemplateRecordIter::templates(set.body(), set.body_offset(), MAX_FIELDS)
                };
                let mut n = 0;
                for t in iter {
                    let t = t.expect("emitted templates parse");
                    let Some(Emitted::Template(i)) = order_iter.next() else {
                        panic!("a template record where none was emitted");
                    };
                    defined[*i] = true;
                    let want = &templates[*i];
                    assert_eq!(t.template_id(), want.id);
                    match t {
                        AnyTemplate::Template(t) => {
                            assert!(!want.options);
                            assert_eq!(t.fields().collect::<Vec<_>>(), want.fields);
                        }
                        AnyTemplate::Options(t) => {
                            assert!(want.options);
                            assert_eq!(t.scope_fields().collect::<Vec<_>>(), want.scope);
                            assert_eq!(t.option_fields().collect::<Vec<_>>(), want.fields);
                        }
                    }
                    n += 1;
                }
                assert!(n > 0, "no empty template FlowSets");
                assert!(
                    !matches!(order_iter.peek(), Some(Emitted::Template(i)) if templates[*i].options == options),
                    "consecutive templates of one kind share a FlowSet"
                );
            }
            FlowSetKind::Data(id) => {
                let t = by_id[&id];
                let rl = templates[t].template.record_len();
                let mut body = set.body();
                let before = expected[t].len();
                while let Some(Emitted::Record(i, bytes)) = order_iter.peek() {
                    if *i != t {
                        break;
                    }
                    assert!(body.len() >= rl, "record {i} cut short");
                    assert_eq!(&body[..rl], &bytes[..]);
                    expected[t].push(bytes.clone());
                    body = &body[rl..];
                    order_iter.next();
                }
                assert!(
                    body.len() < 4 && body.iter().all(|&b| b == 0),
                    "only padding left"
                );
                // Up to 3 zero bytes at the end are padding (RFC 3954
                // §5.3): all-zero records of 1 to 3 bytes that end within
                // them cannot be told from it, and are not decoded.
                let mut tail = body.len();
                while expected[t].len() > before
                    && tail + rl < 4
                    && expected[t]
                        .last()
                        .is_some_and(|r| r.iter().all(|&b| b == 0))
                {
                    expected[t].pop();
                    tail += rl;
                }
                if !defined[t] {
                    early_sets += 1;
                    early_records += (expected[t].len() - before) as u32;
                }
            }
            FlowSetKind::Reserved(id) => panic!("reserved FlowSet {id} emitted"),
        }
    }
    assert!(order_iter.next().is_none(), "everything emitted was found");
    assert!(sets <= order.len());

    // The decoder.
    let exporter = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    let mut decoder = Decoder::new(CONFIG);
    let mut got: Vec<Vec<Vec<u8>>> = vec![Vec::new(); templates.len()];
    let mut replayed = 0u32;
    let summary = decoder
        .decode(exporter, packet, |r| {
            let t = by_id[&r.template_id()];
            assert_eq!(r.is_options(), templates[t].options);
            assert_eq!(r.context().source_id, header.source_id);
            replayed += u32::from(r.replayed());
            let fields: Vec<_> = r.fields().map(|f| f.spec).collect();
            assert_eq!(
                fields.len(),
                templates[t].scope.len() + templates[t].fields.len()
            );
            let _ = r.flow();
            got[t].push(r.bytes().to_vec());
        })
        .expect("an emitted header decodes");
    assert_eq!(summary.header, header);
    assert_eq!(summary.errors, 0, "{:?}", summary.first_error);
    assert_eq!(summary.templates as usize, templates.len());
    assert_eq!(got, expected, "record bytes, per template, in order");
    let count = |options: bool| -> u32 {
        templates
            .iter()
            .zip(&expected)
            .filter(|(t, _)| t.options == options)
            .map(|(_, e)| e.len() as u32)
            .sum()
    };
    assert_eq!(summary.records, count(false));
    assert_eq!(summary.options_records, count(true));
    let c = decoder.counters();
    assert_eq!(c.malformed_total(), 0);
    assert_eq!(replayed, early_records);
    assert_eq!(c.pending_replayed, early_sets);
    assert_eq!(c.unknown_template_flowsets, early_sets);
    assert_eq!(c.pending_overflow + c.pending_expired, 0);
    assert_eq!(
        decoder.pending_flowsets(),
        0,
        "every record's template came"
    );
    for t in &templates {
        let key = TemplateKey {
            exporter,
            source_id: header.source_id,
            template_id: t.id,
        };
        let cached = decoder.template(&key).expect("cached");
        assert_eq!(cached, &t.template);
        assert_eq!(cached.scope_fields().collect::<Vec<_>>(), t.scope);
        assert_eq!(cached.option_fields().collect::<Vec<_>>(), t.fields);
    }
});
