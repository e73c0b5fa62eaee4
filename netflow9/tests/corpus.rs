//! The decoder against real exporters' packets and their ground truth
//! (tshark, nfdump and an independent decoder agree on it; see data/README.md).

mod common;

use std::collections::BTreeMap;
use std::net::IpAddr;

use common::{data, json, udp_payloads};
use netflow9::{Config, Decoder, ErrorKind, FieldType, Flow, Record, Value};
use serde_json::Value as J;

/// Everything the tests compare, gathered while decoding.
#[derive(Default)]
struct Run {
    flows: Vec<Flow>,
    /// (template id, is options) of every record, in order.
    kinds: Vec<(u16, bool)>,
    /// Rendered fields of every record, in order: type → value text/number.
    fields: Vec<BTreeMap<String, J>>,
    sum_in_bytes: u64,
    sum_in_pkts: u64,
    replayed: u64,
    /// Flows decoded on arrival (what one-pass decoders see).
    direct: Vec<Flow>,
    per_template: BTreeMap<u16, u64>,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Renders a value like the truth files do.
fn render(v: Value<'_>) -> J {
    match v {
        Value::Unsigned(n) => J::from(n),
        Value::Ipv4(a) => J::from(a.to_string()),
        Value::Ipv6(a) => J::from(a.to_string()),
        Value::Mac(m) => J::from(
            m.iter()
                .map(|x| format!("{x:02x}"))
                .collect::<Vec<_>>()
                .join(":"),
        ),
        Value::Bytes(b) => J::from(hex(b)),
    }
}

fn matches(expected: &J, got: &J, raw: &[u8]) -> bool {
    if expected == got {
        return true;
    }
    // Text fields: the truth NUL-trims strings; we keep raw bytes.
    if let J::String(s) = expected {
        let text: Vec<u8> = raw.iter().copied().take_while(|&b| b != 0).collect();
        return text == s.as_bytes() || hex(raw) == *s;
    }
    false
}

impl Run {
    fn take(&mut self, r: &Record<'_>) {
        self.kinds.push((r.template_id(), r.is_options()));
        let mut m = BTreeMap::new();
        for f in r.fields() {
            let key = if f.scope {
                format!("scope{}", f.spec.field_type.0)
            } else {
                f.spec.field_type.0.to_string()
            };
            m.entry(key).or_insert_with(|| render(f.value));
        }
        self.fields.push(m);
        if r.is_options() {
            return;
        }
        // `flow_into` overwrites every value of a used slot with `flow()`'s.
        let mut slot = used_slot();
        r.flow_into(&mut slot);
        assert_eq!(slot, r.flow());
        if r.replayed() {
            // kept in order, but not in the one-pass sums the truth has
            self.replayed += 1;
            self.flows.push(r.flow());
            return;
        }
        if let Some(Value::Unsigned(b)) = r.get(FieldType::IN_BYTES) {
            self.sum_in_bytes += b;
        }
        if let Some(Value::Unsigned(p)) = r.get(FieldType::IN_PKTS) {
            self.sum_in_pkts += p;
        }
        *self.per_template.entry(r.template_id()).or_default() += 1;
        self.flows.push(r.flow());
        self.direct.push(r.flow());
    }
}

/// A flow with no value at its default.
fn used_slot() -> Flow {
    let a: IpAddr = "2001:db8::7".parse().unwrap();
    let mut f = Flow::default();
    (f.exporter, f.src_addr, f.dst_addr) = (a, a, a);
    (f.next_hop, f.bgp_next_hop, f.direction) = (Some(a), Some(a), Some(9));
    (f.source_id, f.template_id, f.src_port, f.dst_port) = (9, 9, 9, 9);
    (f.protocol, f.tcp_flags, f.tos, f.src_mask, f.dst_mask) = (9, 9, 9, 9, 9);
    (f.input_if, f.output_if, f.src_as, f.dst_as) = (9, 9, 9, 9);
    (f.bytes, f.packets, f.out_bytes, f.out_packets) = (9, 9, 9, 9);
    (f.first_ms, f.last_ms, f.sampling_interval) = (9, 9, 9);
    f
}

fn decode_all(decoder: &mut Decoder<'_>, datagrams: &[(IpAddr, Vec<u8>)]) -> Run {
    let mut run = Run::default();
    for (src, payload) in datagrams {
        decoder
            .decode(*src, payload, |r| run.take(r))
            .expect("valid v9 header");
    }
    run
}

fn u(j: &J) -> u64 {
    j.as_u64().unwrap_or_else(|| panic!("not a number: {j}"))
}

const V9_CAPTURES: [&str; 4] = [
    "softflowd-v9",
    "softflowd-v9-ether-ipv6",
    "pmacct-v9",
    "nfreplay-v9",
];

#[test]
fn exporter_captures_match_truth_totals() {
    for name in V9_CAPTURES {
        let truth = json(&data(&format!("exports/{name}.truth.json")));
        let d = &truth["decoder"];
        let datagrams = udp_payloads(&data(&format!("exports/{name}.pcap")));
        assert_eq!(
            datagrams.len() as u64,
            u(&d["packets"]),
            "{name}: datagrams"
        );
        let mut decoder = Decoder::new(Config::default());
        let run = decode_all(&mut decoder, &datagrams);
        let c = decoder.counters();
        assert_eq!(c.packets, u(&d["packets"]), "{name}");
        assert_eq!(c.templates, u(&d["template_records"]), "{name}: templates");
        assert_eq!(
            c.options_templates,
            u(&d["options_template_records"]),
            "{name}"
        );
        assert_eq!(c.records, u(&d["data_records"]), "{name}: data records");
        assert_eq!(c.options_records, u(&d["options_data_records"]), "{name}");
        assert_eq!(run.sum_in_bytes, u(&d["sum_in_bytes"]), "{name}");
        assert_eq!(run.sum_in_pkts, u(&d["sum_in_pkts"]), "{name}");
        assert_eq!(
            c.sequence_lost,
            u(&d["v9_sequence_gaps"]),
            "{name}: sequence"
        );
        assert_eq!(c.malformed_total(), 0, "{name}: {:?}", c.malformed);
        assert_eq!(
            c.unknown_template_flowsets,
            u(&d["flowsets_without_template"]),
            "{name}"
        );
        for (tid, n) in d["records_by_template"].as_object().unwrap() {
            let tid: u16 = tid.parse().unwrap();
            let ours = run.per_template.get(&tid).copied().unwrap_or(0)
                + run.kinds.iter().filter(|k| k.0 == tid && k.1).count() as u64;
            assert_eq!(ours, u(n), "{name}: template {tid}");
        }
        // nfdump and tshark: the normalized flows give the same totals.
        let bytes: u64 = run.flows.iter().map(|f| f.bytes).sum();
        let packets: u64 = run.flows.iter().map(|f| f.packets).sum();
        assert_eq!(bytes, u(&truth["nfdump"]["bytes"]), "{name}: nfdump bytes");
        assert_eq!(
            packets,
            u(&truth["nfdump"]["packets"]),
            "{name}: nfdump packets"
        );
        assert_eq!(
            run.flows.len() as u64,
            u(&truth["nfdump"]["flows"]),
            "{name}: nfdump flows"
        );
        assert_eq!(
            bytes,
            u(&truth["tshark"]["sum_octets"]),
            "{name}: tshark octets"
        );
        let icmp = run
            .flows
            .iter()
            .filter(|f| f.protocol == 1 || f.protocol == 58)
            .count() as u64;
        assert_eq!(
            icmp,
            u(&truth["nfdump"]["flows_icmp"]),
            "{name}: nfdump icmp flows"
        );
    }
}

#[test]
fn exporter_captures_match_truth_record_for_record() {
    for name in V9_CAPTURES {
        let datagrams = udp_payloads(&data(&format!("exports/{name}.pcap")));
        let mut decoder = Decoder::new(Config::default());
        let run = decode_all(&mut decoder, &datagrams);
        let text = std::fs::read_to_string(data(&format!("exports/{name}.flows.csv"))).unwrap();
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        let rows: Vec<BTreeMap<&str, &str>> = lines
            .map(|l| header.iter().copied().zip(l.split(',')).collect())
            .collect();
        assert_eq!(rows.len(), run.flows.len(), "{name}: rows");
        for (i, (row, f)) in rows.iter().zip(&run.flows).enumerate() {
            let ctx = format!("{name} row {}", i + 2);
            let num = |k: &str| -> Option<u64> { row[k].parse().ok() };
            assert_eq!(num("source_id"), Some(u64::from(f.source_id)), "{ctx}");
            assert_eq!(num("template_id"), Some(u64::from(f.template_id)), "{ctx}");
            assert_eq!(num("ip_version"), Some(u64::from(f.ip_version())), "{ctx}");
            assert_eq!(num("protocol"), Some(u64::from(f.protocol)), "{ctx}");
            assert_eq!(row["src_addr"], f.src_addr.to_string(), "{ctx}");
            assert_eq!(row["dst_addr"], f.dst_addr.to_string(), "{ctx}");
            assert_eq!(num("src_port"), Some(u64::from(f.src_port)), "{ctx}");
            assert_eq!(num("dst_port"), Some(u64::from(f.dst_port)), "{ctx}");
            assert_eq!(num("in_bytes"), Some(f.bytes), "{ctx}");
            assert_eq!(num("in_pkts"), Some(f.packets), "{ctx}");
            assert_eq!(num("first_ms"), Some(f.first_ms), "{ctx}");
            assert_eq!(num("last_ms"), Some(f.last_ms), "{ctx}");
            for (k, ours) in [
                ("tcp_flags", u64::from(f.tcp_flags)),
                ("tos", u64::from(f.tos)),
                ("input_if", u64::from(f.input_if)),
                ("output_if", u64::from(f.output_if)),
            ] {
                if let Some(v) = num(k) {
                    assert_eq!(v, ours, "{ctx}: {k}");
                }
            }
            if let Some(v) = num("direction") {
                assert_eq!(Some(v as u8), f.direction, "{ctx}: direction");
            }
        }
    }
}

#[test]
fn non_v9_captures_are_rejected_and_counted() {
    for (name, version) in [("softflowd-v5", 5), ("softflowd-ipfix", 10)] {
        let datagrams = udp_payloads(&data(&format!("exports/{name}.pcap")));
        let mut decoder = Decoder::new(Config::default());
        for (src, p) in &datagrams {
            let e = decoder
                .decode(*src, p, |_| panic!("no records"))
                .unwrap_err();
            assert_eq!(e.kind, ErrorKind::UnsupportedVersion(version));
        }
        assert_eq!(decoder.counters().rejected_packets, datagrams.len() as u64);
        assert_eq!(decoder.counters().packets, 0);
    }
}

/// Runs a vendor case: its files in order, into one decoder.
fn run_case(dir: &std::path::Path, case: &J) -> (Run, Decoder<'static>) {
    let mut decoder = Decoder::new(Config::default());
    let localhost: IpAddr = "127.0.0.1".parse().unwrap();
    let mut run = Run::default();
    for file in case["files"].as_array().unwrap() {
        let path = dir.join(file.as_str().unwrap());
        let payloads: Vec<(IpAddr, Vec<u8>)> = if path.extension().is_some_and(|e| e == "dat") {
            vec![(localhost, std::fs::read(&path).unwrap())]
        } else {
            udp_payloads(&path)
        };
        for (src, p) in payloads {
            decoder.decode(src, &p, |r| run.take(r)).expect("v9 header");
        }
    }
    (run, decoder)
}

fn check_vendor_case(dir: &std::path::Path, case: &J, truth: &J) -> Run {
    let name = case["name"].as_str().unwrap();
    let (run, decoder) = run_case(dir, case);
    let c = decoder.counters();
    // FlowSets that came before their template are decoded when it comes;
    // one-pass decoders (the truth's) skip them.
    let replayed = run.replayed;
    let data_records = run.kinds.iter().filter(|k| !k.1).count() as u64 - replayed;
    let opt_records = run.kinds.iter().filter(|k| k.1).count() as u64;
    assert_eq!(
        data_records,
        u(&truth["data_records"]),
        "{name}: data records"
    );
    assert_eq!(
        opt_records,
        u(&truth["options_data_records"]),
        "{name}: options records"
    );
    assert_eq!(
        c.templates,
        u(&truth["template_records"]),
        "{name}: templates"
    );
    assert_eq!(
        c.options_templates,
        u(&truth["options_template_records"]),
        "{name}"
    );
    assert_eq!(
        run.sum_in_bytes,
        u(&truth["sum_in_bytes"]),
        "{name}: Σ IN_BYTES"
    );
    assert_eq!(
        run.sum_in_pkts,
        u(&truth["sum_in_pkts"]),
        "{name}: Σ IN_PKTS"
    );
    assert_eq!(
        c.unknown_template_flowsets,
        u(&truth["flowsets_without_template"]),
        "{name}"
    );
    if let Some(expected) = case["logstash_events"].as_u64() {
        assert_eq!(
            data_records + opt_records,
            expected,
            "{name}: spec's record count"
        );
    }
    if let Some(nf) = truth.get("nfdump").filter(|n| n.is_object()) {
        let flows = &run.direct;
        assert_eq!(flows.len() as u64, u(&nf["flows"]), "{name}: nfdump flows");
        // nfdump multiplies by the sampling interval when it trusts the
        // options record announcing it (System-scoped or sampler-id options),
        // and not for softflowd's Interface-scoped ones: accept either.
        let raw: (u64, u64) = flows.iter().fold((0, 0), |a, f| {
            (a.0 + f.bytes + f.out_bytes, a.1 + f.packets + f.out_packets)
        });
        let scaled: (u64, u64) = flows.iter().fold((0, 0), |a, f| {
            let s = u64::from(f.sampling_interval);
            (
                a.0 + (f.bytes + f.out_bytes) * s,
                a.1 + (f.packets + f.out_packets) * s,
            )
        });
        let nf_totals = (u(&nf["bytes"]), u(&nf["packets"]));
        // nfdump 1.7 scales only part of the flows of akvorado's two-sampler
        // capture; we follow akvorado (each flow by its own sampler), checked
        // in `akvorado_local`.
        assert!(
            nf_totals == raw || nf_totals == scaled || name == "multiple_sampling_rates",
            "{name}: nfdump bytes/packets {nf_totals:?}, ours raw {raw:?} scaled {scaled:?}"
        );
    }
    for check in case["checks"].as_array().into_iter().flatten() {
        let i = check["record"].as_u64().unwrap() as usize;
        let ctx = format!("{name} record {i}");
        assert!(
            i < run.kinds.len(),
            "{ctx}: only {} records",
            run.kinds.len()
        );
        if let Some(t) = check["template_id"].as_u64() {
            assert_eq!(u64::from(run.kinds[i].0), t, "{ctx}: template");
        }
        let ours = &run.fields[i];
        for (k, expected) in check["fields"].as_object().unwrap() {
            let got = ours.get(k).unwrap_or_else(|| panic!("{ctx}: no field {k}"));
            let raw = match got {
                J::String(h) => (0..h.len() / 2)
                    .filter_map(|j| u8::from_str_radix(h.get(2 * j..2 * j + 2)?, 16).ok())
                    .collect(),
                _ => Vec::new(),
            };
            assert!(
                matches(expected, got, &raw),
                "{ctx}: field {k}: expected {expected}, got {got}"
            );
        }
        if let Some(first) = check.get("first_ms").and_then(J::as_u64) {
            let flow_index = run.kinds[..i].iter().filter(|k| !k.1).count();
            assert_eq!(run.flows[flow_index].first_ms, first, "{ctx}: first_ms");
            assert_eq!(
                run.flows[flow_index].last_ms,
                u(&check["last_ms"]),
                "{ctx}: last_ms"
            );
        }
    }
    run
}

#[test]
fn vendor_packets_match_truth() {
    let cases = json(&data("logstash/cases.json"));
    let truth = json(&data("logstash/truth.json"));
    let truth_by_name: BTreeMap<&str, &J> = truth["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c))
        .collect();
    let cases = cases["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 32);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        check_vendor_case(&data("logstash"), case, truth_by_name[name]);
    }
}

#[test]
fn vendor_pcaps_decode_like_the_dat_files() {
    let cases = json(&data("logstash/cases.json"));
    for case in cases["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let (from_dat, _) = run_case(&data("logstash"), case);
        let pcap_case = serde_json::json!({ "files": [format!("cases/{name}.pcap")] });
        let (from_pcap, _) = run_case(&data("logstash"), &pcap_case);
        assert_eq!(from_dat.flows, from_pcap.flows, "{name}");
    }
}

/// The AGPL akvorado samples are not committed; check them when the shared
/// corpus is next to the checkout.
#[test]
fn akvorado_local() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/corpus/vendors/akvorado");
    if !dir.exists() {
        eprintln!(
            "SKIPPED akvorado_local: {} not present (AGPL samples are local-only)",
            dir.display()
        );
        return;
    }
    let cases = json(&dir.join("cases.json"));
    let truth = json(&dir.join("truth.json"));
    let mut runs = BTreeMap::new();
    for (case, t) in cases["cases"]
        .as_array()
        .unwrap()
        .iter()
        .zip(truth["cases"].as_array().unwrap())
    {
        let name = case["name"].as_str().unwrap();
        assert_eq!(t["name"], case["name"]);
        runs.insert(name.to_string(), check_vendor_case(&dir, case, t));
    }
    let rate = |case: &str, i: usize| runs[case].flows[i].sampling_interval;
    assert!(runs["decode_basic"]
        .flows
        .iter()
        .all(|f| f.sampling_interval == 30_000));
    assert_eq!(rate("sampling_rate", 0), 2048);
    let first = &runs["sampling_rate"].flows[0];
    assert_eq!(
        (first.src_port, first.dst_port, first.bytes, first.input_if),
        (13245, 10907, 160, 13)
    );
    assert_eq!(
        (
            rate("multiple_sampling_rates", 0),
            rate("multiple_sampling_rates", 1)
        ),
        (4000, 2000)
    );
    let ports: Vec<u16> = runs["icmp"].flows.iter().map(|f| f.dst_port).collect();
    assert!(
        ports.contains(&32768) && ports.contains(&33024) && ports.contains(&2048),
        "{ports:?}"
    );
    assert_eq!(
        runs["templates_mixed_with_data"].replayed, 11,
        "first FlowSet replayed"
    );
}
