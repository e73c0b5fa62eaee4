//! A decoder over caller-provided storage (how `no_std` users without an
//! allocator embed it) behaves like one with owned storage.

mod common;

use common::{data, udp_payloads};
use netflow9::{empty_domain_slot, empty_template_slot, Config, Decoder, Storage};

#[test]
fn borrowed_storage_decodes_the_corpus_like_owned_storage() {
    let mut templates = [empty_template_slot(); 32];
    let mut template_index = [0u32; Storage::index_len(32)];
    let mut domains = [empty_domain_slot(); 4];
    let mut domain_index = [0u32; Storage::index_len(4)];
    let mut pending = [0u8; 16 * 1024];
    let storage = Storage {
        templates: &mut templates,
        template_index: &mut template_index,
        domains: &mut domains,
        domain_index: &mut domain_index,
        pending: &mut pending,
    };
    let mut borrowed = Decoder::with_storage(Config::default(), storage);
    let mut owned = Decoder::new(Config {
        templates: 32,
        domains: 4,
        pending_bytes: 16 * 1024,
        ..Config::default()
    });
    assert_eq!(borrowed.template_capacity(), 32);
    for name in ["softflowd-v9", "pmacct-v9", "nfreplay-v9"] {
        for (src, p) in udp_payloads(&data(&format!("exports/{name}.pcap"))) {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            let ra = borrowed.decode(src, &p, |r| a.push(r.flow()));
            let rb = owned.decode(src, &p, |r| b.push(r.flow()));
            assert_eq!(ra, rb);
            assert_eq!(a, b);
        }
    }
    assert_eq!(borrowed.counters(), owned.counters());
    assert_eq!(borrowed.counters().records, 1804 * 2 + 1808);
}

#[test]
fn decode_sets_sees_the_same_records_as_decode() {
    let mut a = Decoder::new(Config::default());
    let mut b = Decoder::new(Config::default());
    for name in [
        "softflowd-v9",
        "softflowd-v9-ether-ipv6",
        "pmacct-v9",
        "nfreplay-v9",
    ] {
        for (src, p) in udp_payloads(&data(&format!("exports/{name}.pcap"))) {
            let (mut per_record, mut per_set) = (Vec::new(), Vec::new());
            let ra = a.decode(src, &p, |r| per_record.push((r.bytes().to_vec(), r.flow())));
            let rb = b.decode_sets(src, &p, |set| {
                let n = set.record_bytes().count();
                if let Some(fixed) = set.fixed_records() {
                    assert!(fixed.eq(set.record_bytes()));
                }
                assert_eq!(n, set.records().count());
                for (bytes, r) in set.record_bytes().zip(set.records()) {
                    assert_eq!(bytes, r.bytes());
                    per_set.push((bytes.to_vec(), r.flow()));
                }
            });
            assert_eq!(ra, rb);
            assert_eq!(per_record, per_set);
        }
    }
    assert_eq!(a.counters(), b.counters());
}
