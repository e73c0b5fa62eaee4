//! `flowerd replay` and `flowerd generate` end to end: each drives a real
//! `flowerd serve`, and the daemon's `/metrics` must account for every flow.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_flowerd");

/// A temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let dir = std::env::temp_dir().join(format!(
            "flowerd-tools-{tag}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `flowerd serve` on loopback, `/metrics` public.
struct Daemon {
    child: Child,
    http: SocketAddr,
    netflow: SocketAddr,
    _dir: TempDir,
}

impl Daemon {
    fn start(tag: &str) -> Daemon {
        let dir = TempDir::new(tag);
        let config = dir.0.join("flowerd.toml");
        std::fs::write(&config, "[http]\nmetrics_public = true\n").unwrap();
        let data = dir.0.join("data");
        let mut child = Command::new(BIN)
            .args(["serve", "--netflow", "127.0.0.1:0", "--http", "127.0.0.1:0"])
            .arg("--data")
            .arg(&data)
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start flowerd serve");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = loop {
            match lines.next() {
                Some(Ok(l)) if l.starts_with("flowerd: ready ") => break l,
                Some(Ok(_)) => {}
                other => {
                    let _ = child.kill();
                    panic!("flowerd serve ended before it was ready: {other:?}");
                }
            }
        };
        // Keep draining stdout so the daemon never blocks on it.
        std::thread::spawn(move || lines.for_each(drop));
        let field = |key: &str| -> SocketAddr {
            let v = ready
                .split_whitespace()
                .find_map(|w| w.strip_prefix(key))
                .unwrap_or_else(|| panic!("{key} in {ready:?}"));
            v.split(',').next().unwrap().parse().unwrap()
        };
        Daemon {
            http: field("http="),
            netflow: field("netflow="),
            child,
            _dir: dir,
        }
    }

    /// The `/metrics` text.
    fn metrics(&self) -> String {
        let mut s = TcpStream::connect(self.http).expect("connect to the HTTP port");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            s,
            "GET /metrics HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.http
        )
        .unwrap();
        let mut response = String::new();
        s.read_to_string(&mut response).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        body.to_string()
    }

    /// Polls `/metrics` until `metric` equals `want`; panics after 30 s.
    fn wait_for(&self, metric: &str, want: f64) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let m = self.metrics();
            if value(&m, metric) == want {
                return m;
            }
            assert!(
                Instant::now() < deadline,
                "{metric} stayed at {} (want {want}):\n{m}",
                value(&m, metric)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM, then the exit status must be 0.
    fn stop(mut self) {
        let pid = self.child.id().to_string();
        let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(killed.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "flowerd serve exited with {status}");
                return;
            }
            assert!(Instant::now() < deadline, "flowerd serve ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // Only reached with the daemon still running when a test failed.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sum of every sample of `name` (all label sets).
fn value(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (key, v) = l.rsplit_once(' ')?;
            let metric = key.split('{').next()?;
            (metric == name).then(|| v.parse::<f64>().ok()).flatten()
        })
        .sum()
}

/// Every sample of `name`: (labels, value).
fn samples<'a>(metrics: &'a str, name: &str) -> Vec<(&'a str, f64)> {
    metrics
        .lines()
        .filter_map(|l| {
            let (key, v) = l.rsplit_once(' ')?;
            let labels = key.strip_prefix(name)?;
            (labels.is_empty() || labels.starts_with('{')).then(|| (labels, v.parse().unwrap()))
        })
        .collect()
}

fn flowerd(args: &[&str]) -> Output {
    let out = Command::new(BIN).args(args).output().expect("run flowerd");
    assert!(
        out.status.success(),
        "flowerd {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The `key=value` pairs of a summary line.
fn summary_field(summary: &str, key: &str) -> u64 {
    summary
        .split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key}= in {summary:?}"))
        .parse()
        .unwrap()
}

fn capture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../netflow9/tests/data/exports")
        .join(name)
}

fn assert_nothing_malformed_or_dropped(m: &str) {
    for (labels, v) in samples(m, "flower_decoder_malformed_total") {
        assert_eq!(v, 0.0, "malformed {labels}");
    }
    assert_eq!(value(m, "flower_kernel_drops_total"), 0.0);
    assert_eq!(value(m, "flower_channel_dropped_flows_total"), 0.0);
    assert_eq!(value(m, "flower_decoder_rejected_packets_total"), 0.0);
}

#[test]
fn replayed_capture_is_stored_whole() {
    let d = Daemon::start("replay");
    let to = d.netflow.to_string();
    let path = capture("softflowd-v9.pcap");
    let out = flowerd(&[
        "replay",
        path.to_str().unwrap(),
        "--to",
        &to,
        "--rate",
        "2000",
    ]);
    let summary = String::from_utf8(out.stdout).unwrap();
    assert_eq!(summary.lines().count(), 1, "{summary}");
    assert_eq!(summary_field(&summary, "datagrams"), 71, "{summary}");
    assert!(summary.contains(" loops=1 "), "{summary}");

    let m = d.wait_for("flower_flows_stored_total", 1804.0);
    assert_eq!(value(&m, "flower_datagrams_total"), 71.0);
    // The decoder's counters are refreshed about once a second.
    let m = d.wait_for("flower_decoder_packets_total", 71.0);
    assert_eq!(value(&m, "flower_flows_received_total"), 1804.0);
    assert_eq!(value(&m, "flower_decoder_sequence_lost"), 0.0);
    assert_nothing_malformed_or_dropped(&m);
    d.stop();
}

#[test]
fn generated_flows_are_stored_whole() {
    let d = Daemon::start("generate");
    let to = d.netflow.to_string();
    let out = flowerd(&[
        "generate",
        "--to",
        &to,
        "--flows-per-sec",
        "20000",
        "--duration",
        "2s",
        "--exporters",
        "3",
    ]);
    let summary = String::from_utf8(out.stdout).unwrap();
    let flows = summary_field(&summary, "flows");
    let packets = summary_field(&summary, "packets");
    assert!((38_000..=42_000).contains(&flows), "{summary}");
    assert!(summary.contains(" exporters=3 "), "{summary}");

    let m = d.wait_for("flower_flows_stored_total", flows as f64);
    assert_eq!(value(&m, "flower_flows_received_total"), flows as f64);
    assert_eq!(value(&m, "flower_datagrams_total"), packets as f64);
    // The decoder's counters are refreshed about once a second.
    let m = d.wait_for("flower_decoder_packets_total", packets as f64);
    assert_eq!(value(&m, "flower_decoder_records_total"), flows as f64);
    // Three exporters (one address, Source IDs 0, 1, 2), none losing packets.
    let exporters = samples(&m, "flower_exporter_sequence_lost");
    assert_eq!(exporters.len(), 3, "{exporters:?}");
    for id in 0..3 {
        let label = format!("source_id=\"{id}\"");
        assert!(
            exporters
                .iter()
                .any(|(l, v)| l.contains(&label) && *v == 0.0),
            "{exporters:?}"
        );
    }
    // Each exporter sent its two templates at least once.
    assert!(value(&m, "flower_decoder_templates_total") >= 6.0);
    assert_eq!(
        value(&m, "flower_decoder_unknown_template_flowsets_total"),
        0.0
    );
    assert_eq!(value(&m, "flower_decoder_exporter_restarts_total"), 0.0);
    assert_nothing_malformed_or_dropped(&m);
    d.stop();
}
