//! `flowerd decode` end to end: the binary on the committed captures.

use std::path::PathBuf;
use std::process::{Command, Output};

fn data(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../netflow9/tests/data")
        .join(rel)
}

fn flowerd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flowerd"))
        .args(args)
        .output()
        .expect("run flowerd")
}

fn summary(files: &[PathBuf]) -> serde_json::Value {
    let mut args = vec!["decode".to_string(), "--summary".to_string()];
    args.extend(files.iter().map(|p| p.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = flowerd(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 1, "one JSON object");
    serde_json::from_str(&text).unwrap()
}

fn truth(name: &str) -> serde_json::Value {
    serde_json::from_str(
        &std::fs::read_to_string(data(&format!("exports/{name}.truth.json"))).unwrap(),
    )
    .unwrap()
}

#[test]
fn summary_matches_ground_truth() {
    for name in [
        "softflowd-v9",
        "softflowd-v9-ether-ipv6",
        "pmacct-v9",
        "nfreplay-v9",
    ] {
        let s = summary(&[data(&format!("exports/{name}.pcap"))]);
        let t = truth(name);
        let d = &t["decoder"];
        assert_eq!(s["datagrams"], d["packets"], "{name}");
        assert_eq!(s["packets"], d["packets"], "{name}");
        assert_eq!(s["templates"], d["template_records"], "{name}");
        assert_eq!(
            s["options_templates"], d["options_template_records"],
            "{name}"
        );
        assert_eq!(s["flows"], d["data_records"], "{name}");
        assert_eq!(s["option_records"], d["options_data_records"], "{name}");
        assert_eq!(s["bytes"], t["nfdump"]["bytes"], "{name}");
        assert_eq!(s["pkts"], t["nfdump"]["packets"], "{name}");
        assert_eq!(s["unknown_template"], 0, "{name}");
        assert_eq!(s["malformed"], 0, "{name}");
        assert_eq!(s["seq_lost"], d["v9_sequence_gaps"], "{name}");
        let keys: Vec<&String> = s.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 11);
    }
}

#[test]
fn several_files_are_one_stream_and_other_traffic_is_skipped() {
    let all = summary(&[
        data("exports/softflowd-v9.pcap"),
        data("exports/softflowd-v5.pcap"),
        data("exports/pmacct-v9.pcap"),
    ]);
    assert_eq!(all["flows"], 1804 + 1808);
    assert_eq!(all["datagrams"], 71 + 294, "v5 datagrams are not v9");
    let out = flowerd(&[
        "decode",
        "--summary",
        data("exports/softflowd-ipfix.pcap").to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("skipped_other_udp=71"), "{err}");
}

#[test]
fn jsonl_has_one_line_per_flow_with_the_documented_keys() {
    let out = flowerd(&[
        "decode",
        data("exports/softflowd-v9.pcap").to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1804);
    let first = &lines[0];
    for key in [
        "exporter",
        "source_id",
        "template_id",
        "src_addr",
        "dst_addr",
        "src_port",
        "dst_port",
        "protocol",
        "bytes",
        "packets",
        "first_ms",
        "last_ms",
        "tcp_flags",
        "tos",
        "input_if",
        "output_if",
        "src_as",
        "dst_as",
        "src_mask",
        "dst_mask",
        "next_hop",
        "direction",
        "sampling_interval",
    ] {
        assert!(first.get(key).is_some(), "missing {key}");
    }
    // the first row of the ground truth (flows.csv line 2)
    assert_eq!(first["exporter"], "127.0.0.1");
    assert_eq!(first["src_addr"], "10.10.1.12");
    assert_eq!(first["dst_addr"], "198.51.100.22");
    assert_eq!(
        (first["src_port"].as_u64(), first["dst_port"].as_u64()),
        (Some(50022), Some(22))
    );
    assert_eq!(first["bytes"], 8320);
    assert_eq!(first["first_ms"], 1_709_294_400_246u64);
    let total: u64 = lines.iter().map(|l| l["bytes"].as_u64().unwrap()).sum();
    assert_eq!(total, 66_963_180);
}

#[test]
fn csv_and_pcap_of_vendor_packets() {
    let out = flowerd(&[
        "decode",
        "--format",
        "csv",
        data("logstash/cases/cisco_asa_2.pcap").to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 19);
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let last = &rows[18];
    assert_eq!(last[col("src_addr")], "192.168.0.1");
    assert_eq!(last[col("dst_port")], "80");
    assert_eq!(
        last[col("bytes")],
        (69 + 14178).to_string(),
        "NSEL initiator + responder octets"
    );
}

#[test]
fn a_bad_file_names_itself_and_exits_1() {
    let dir = std::env::temp_dir().join(format!("flowerd-decode-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let garbage = dir.join("garbage.pcap");
    std::fs::write(&garbage, b"this is not a capture file at all").unwrap();
    let out = flowerd(&["decode", garbage.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("garbage.pcap") && err.contains("offset"),
        "{err}"
    );

    // a capture cut in the middle of a record: flows before it are printed
    let mut cut = std::fs::read(data("exports/softflowd-v9.pcap")).unwrap();
    cut.truncate(cut.len() - 100);
    let cut_path = dir.join("cut.pcap");
    std::fs::write(&cut_path, &cut).unwrap();
    let out = flowerd(&["decode", cut_path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cut.pcap") && err.contains("offset"), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).lines().count() > 1700);

    // A cut file does not stop the files after it, and the summary still
    // comes (the exit status says something went wrong).
    let whole = data("exports/softflowd-v9.pcap");
    let expected = flowerd(&["decode", "--summary", whole.to_str().unwrap()]);
    let both = flowerd(&[
        "decode",
        "--summary",
        cut_path.to_str().unwrap(),
        whole.to_str().unwrap(),
    ]);
    assert_eq!(both.status.code(), Some(1));
    let summary = |o: &Output| -> serde_json::Value { serde_json::from_slice(&o.stdout).unwrap() };
    let (cut_only, whole_only) = (
        summary(&flowerd(&[
            "decode",
            "--summary",
            cut_path.to_str().unwrap(),
        ])),
        summary(&expected),
    );
    assert!(cut_only["flows"].as_u64().unwrap() > 1700);
    assert_eq!(
        summary(&both)["datagrams"].as_u64(),
        Some(cut_only["datagrams"].as_u64().unwrap() + whole_only["datagrams"].as_u64().unwrap())
    );
    assert!(String::from_utf8_lossy(&both.stderr).contains("1 of 2 files"));

    let missing = flowerd(&["decode", "/nonexistent/x.pcap"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/x.pcap"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn help_is_complete() {
    let out = flowerd(&["decode", "--help"]);
    let text = String::from_utf8(out.stdout).unwrap();
    for word in [
        "--format",
        "--summary",
        "jsonl",
        "csv",
        "pcapng",
        "Examples",
    ] {
        assert!(text.contains(word), "missing {word} in help");
    }
}
