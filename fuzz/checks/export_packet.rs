//! The `export_packet` target's body: one datagram through every wire view
//! and through a fresh, small decoder, with cheap invariants asserted.
//!
//! Shared by `fuzz_targets/export_packet.rs` and, through `#[path]`, by
//! `netflow9/tests/fuzz_regressions.rs`, so the committed seeds and every
//! past crash are replayed by `cargo test` with exactly these checks.

use std::net::{IpAddr, Ipv4Addr};

use netflow9::wire::template::AnyTemplate;
use netflow9::wire::{
    FlowSetIter, FlowSetKind, PacketHeader, TemplateRecordIter, FLOWSET_HEADER_LEN, HEADER_LEN,
    VARIABLE_LENGTH,
};
use netflow9::{Config, Counters, Decoder, HeaderRepr, Record, Value};

/// Small capacities, so that eviction and pending overflow happen on short inputs.
pub(crate) const CONFIG: Config = Config {
    templates: 8,
    max_fields: 32,
    domains: 2,
    pending_bytes: 2048,
    pending_max_age_secs: 60,
    hash_seed: 0x5eed,
};

/// The exporter every datagram comes from.
pub(crate) const EXPORTER: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));

/// Runs all checks on one datagram; panics on a broken invariant.
pub(crate) fn check(data: &[u8]) {
    let header = check_wire(data);
    let mut decoder = Decoder::new(CONFIG);
    check_decode(&mut decoder, data, header);
    // Again, with whatever the first pass cached: data FlowSets now meet
    // their templates, and known templates are refreshed.
    check_decode(&mut decoder, data, header);
}

/// The wire views: header, FlowSets, Template and Options Template records.
/// Returns the header when the datagram has a usable one.
fn check_wire(data: &[u8]) -> Option<HeaderRepr> {
    let repr = HeaderRepr::parse(data);
    let view = PacketHeader::new_checked(data);
    let (repr, view) = match (repr, view) {
        (Ok(r), Ok(v)) => (r, v),
        (Err(a), Err(b)) => {
            assert_eq!(a.kind, b.kind, "HeaderRepr::parse and new_checked disagree");
            return None;
        }
        (r, v) => panic!("HeaderRepr::parse {r:?} but PacketHeader::new_checked {v:?}"),
    };
    assert_eq!(view.repr(), repr);
    assert_eq!(view.version(), 9);
    let mut emitted = [0u8; HEADER_LEN];
    repr.emit(&mut emitted).expect("20 bytes hold a header");
    assert_eq!(&emitted[..], &data[..HEADER_LEN], "header emit ∘ parse");

    let payload = view.payload();
    assert_eq!(payload.len(), data.len() - HEADER_LEN);
    let mut next = HEADER_LEN;
    for set in FlowSetIter::new(payload) {
        let set = match set {
            Ok(s) => s,
            Err(e) => {
                assert!(
                    e.offset >= next && e.offset <= data.len(),
                    "{e:?} at {next}"
                );
                break;
            }
        };
        let start = set.body_offset();
        let end = start + set.body().len();
        assert_eq!(start, next + FLOWSET_HEADER_LEN, "FlowSets are contiguous");
        assert_eq!(
            data.get(start..end),
            Some(set.body()),
            "body is where it says"
        );
        assert_eq!(set.kind(), FlowSetKind::from_id(set.id()));
        next = end;
        let iter = match set.kind() {
            FlowSetKind::Template => {
                TemplateRecordIter::templates(set.body(), start, CONFIG.max_fields)
            }
            FlowSetKind::OptionsTemplate => {
                TemplateRecordIter::options(set.body(), start, CONFIG.max_fields)
            }
            FlowSetKind::Reserved(id) => {
                assert!((2..256).contains(&id));
                continue;
            }
            FlowSetKind::Data(id) => {
                assert!(id >= 256);
                continue;
            }
        };
        let mut at = start;
        for t in iter {
            let t = match t {
                Ok(t) => t,
                Err(e) => {
                    assert!(e.offset >= at && e.offset <= end, "{e:?} in {at}..{end}");
                    break;
                }
            };
            assert!(t.template_id() >= 256);
            let fields = match t {
                AnyTemplate::Template(t) => {
                    assert_eq!(t.fields().len(), t.field_count());
                    assert_eq!(t.fields().count(), t.field_count());
                    at += 4 + 4 * t.field_count();
                    t.field_count()
                }
                AnyTemplate::Options(t) => {
                    let n = t.scope_fields().count() + t.option_fields().count();
                    assert_eq!(t.scope_fields().len() + t.option_fields().len(), n);
                    at += 6 + 4 * n;
                    n
                }
            };
            assert!((1..=CONFIG.max_fields).contains(&fields));
            assert!(at <= end, "template record past its FlowSet");
        }
    }
    assert!(next <= data.len());
    Some(repr)
}

/// What the sink saw.
#[derive(Default)]
struct Seen {
    records: u32,
    options: u32,
}

/// One `decode` call, with the summary and the counters checked against
/// what the sink saw.
fn check_decode(decoder: &mut Decoder<'_>, data: &[u8], header: Option<HeaderRepr>) {
    let before = *decoder.counters();
    let mut seen = Seen::default();
    let result = decoder.decode(EXPORTER, data, |r| {
        check_record(r);
        if r.is_options() {
            seen.options += 1;
        } else {
            seen.records += 1;
        }
    });
    let after = *decoder.counters();
    match result {
        Ok(summary) => {
            assert_eq!(Some(summary.header), header);
            assert_eq!(summary.records, seen.records);
            assert_eq!(summary.options_records, seen.options);
            assert_eq!(after.records - before.records, u64::from(summary.records));
            assert_eq!(
                after.options_records - before.options_records,
                u64::from(summary.options_records)
            );
            assert_eq!(
                after.templates + after.options_templates
                    - before.templates
                    - before.options_templates,
                u64::from(summary.templates)
            );
            assert_eq!(
                after.malformed_total() - before.malformed_total(),
                u64::from(summary.errors)
            );
            assert_eq!(summary.errors == 0, summary.first_error.is_none());
            if let Some(e) = summary.first_error {
                assert!(e.offset <= data.len(), "{e:?} past {}", data.len());
            }
            assert_eq!(after.packets, before.packets + 1);
            assert_eq!(after.rejected_packets, before.rejected_packets);
        }
        Err(e) => {
            assert!(header.is_none(), "decode failed on a usable header: {e:?}");
            assert_eq!((seen.records, seen.options), (0, 0));
            assert_eq!(after.rejected_packets, before.rejected_packets + 1);
            assert_eq!(after.malformed_total(), before.malformed_total() + 1);
            assert_eq!(after.packets, before.packets);
        }
    }
    check_limits(decoder, &CONFIG);
    check_monotonic(&before, &after);
}

/// Capacities the decoder must stay within.
pub(crate) fn check_limits(decoder: &Decoder<'_>, config: &Config) {
    assert!(decoder.template_count() <= decoder.template_capacity());
    assert_eq!(decoder.template_capacity(), config.templates);
    assert_eq!(decoder.templates().count(), decoder.template_count());
    assert!(decoder.pending_bytes_used() <= config.pending_bytes);
    assert!(decoder.domains().count() <= config.domains);
    for (key, template) in decoder.templates() {
        assert_eq!(key.template_id, template.template_id());
        assert!(template.field_count() <= config.max_fields);
    }
}

/// Counters only go up. `sequence_lost` is the exception: a late packet
/// retracts a loss counted earlier (see `Decoder::domain_slot`).
pub(crate) fn check_monotonic(before: &Counters, after: &Counters) {
    let pairs = [
        ("packets", before.packets, after.packets),
        (
            "rejected_packets",
            before.rejected_packets,
            after.rejected_packets,
        ),
        ("records", before.records, after.records),
        (
            "options_records",
            before.options_records,
            after.options_records,
        ),
        ("templates", before.templates, after.templates),
        (
            "options_templates",
            before.options_templates,
            after.options_templates,
        ),
        (
            "template_evictions",
            before.template_evictions,
            after.template_evictions,
        ),
        (
            "templates_dropped_on_restart",
            before.templates_dropped_on_restart,
            after.templates_dropped_on_restart,
        ),
        (
            "unknown_template_flowsets",
            before.unknown_template_flowsets,
            after.unknown_template_flowsets,
        ),
        (
            "pending_buffered",
            before.pending_buffered,
            after.pending_buffered,
        ),
        (
            "pending_replayed",
            before.pending_replayed,
            after.pending_replayed,
        ),
        (
            "pending_overflow",
            before.pending_overflow,
            after.pending_overflow,
        ),
        (
            "pending_expired",
            before.pending_expired,
            after.pending_expired,
        ),
        (
            "reserved_flowsets",
            before.reserved_flowsets,
            after.reserved_flowsets,
        ),
        (
            "sequence_reordered",
            before.sequence_reordered,
            after.sequence_reordered,
        ),
        (
            "exporter_restarts",
            before.exporter_restarts,
            after.exporter_restarts,
        ),
        (
            "domain_evictions",
            before.domain_evictions,
            after.domain_evictions,
        ),
    ];
    for (name, b, a) in pairs {
        assert!(a >= b, "counter {name} went down: {b} -> {a}");
    }
    for (i, (b, a)) in before.malformed.iter().zip(&after.malformed).enumerate() {
        assert!(a >= b, "malformed[{i}] went down: {b} -> {a}");
    }
}

/// A record as the sink sees it: its flow, its fields, their lengths.
pub(crate) fn check_record(r: &Record<'_>) {
    let flow = r.flow();
    assert_eq!(flow.exporter, r.context().exporter);
    assert_eq!(flow.template_id, r.template_id());
    assert!(flow.ip_version() == 4 || flow.ip_version() == 6);
    let _ = flow.duration_ms();

    let template = r.template();
    let bytes = r.bytes();
    assert!(bytes.len() >= template.record_len());
    if !template.is_variable() {
        assert_eq!(bytes.len(), template.record_len());
    }
    let mut n = 0;
    let mut value_bytes = 0;
    for (field, spec) in r.fields().zip(template.fields()) {
        assert_eq!(field.spec, spec);
        assert_eq!(field.scope, n < template.scope_count());
        let len = match field.value {
            Value::Unsigned(_) => None,
            Value::Ipv4(_) => Some(4),
            Value::Ipv6(_) => Some(16),
            Value::Mac(_) => Some(6),
            Value::Bytes(b) => Some(b.len()),
        };
        match (len, spec.length) {
            (Some(len), VARIABLE_LENGTH) => value_bytes += len,
            (Some(len), fixed) => {
                assert_eq!(len, usize::from(fixed), "{field:?}");
                value_bytes += len;
            }
            (None, VARIABLE_LENGTH) => {}
            (None, fixed) => {
                assert!((1..=8).contains(&fixed), "{field:?}");
                value_bytes += usize::from(fixed);
            }
        }
        n += 1;
    }
    assert_eq!(
        n,
        template.field_count(),
        "every field of a split record walks"
    );
    assert!(value_bytes <= bytes.len());
    if r.is_options() {
        let _ = r.scope(netflow9::ScopeType(1));
    } else {
        let _ = r.get(netflow9::FieldType::IN_BYTES);
    }
}
