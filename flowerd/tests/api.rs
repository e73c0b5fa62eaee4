//! The HTTP API end to end: the real daemon on loopback, fed the committed
//! softflowd capture over UDP, asked through a minimal HTTP client written
//! here (std `TcpStream`, and rustls for HTTPS).
//!
//! Each test runs its own daemon on ephemeral ports in its own temporary
//! directory, and ends by checking that the daemon still answers `/healthz`
//! and exits 0 on SIGTERM.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_flowerd");

/// What `flowerd decode --summary` reports for the capture.
const FLOWS: u64 = 1804;
const BYTES: u64 = 66_963_180;
const PACKETS: u64 = 70_328;

struct Daemon {
    child: Child,
    http: SocketAddr,
    netflow: SocketAddr,
    admin_password: String,
    tls: Option<Arc<rustls::ClientConfig>>,
    _dir: tempfile::TempDir,
}

/// How a request authenticates.
#[derive(Clone, Copy)]
enum Auth<'a> {
    None,
    Bearer(&'a str),
    Cookie(&'a str),
    Basic(&'a str, &'a str),
}

struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {}: not JSON ({e}): {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn base64(bytes: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in bytes.chunks(3) {
        let n = c.iter().fold(0u32, |a, &b| a << 8 | u32::from(b)) << (8 * (3 - c.len()));
        for i in 0..=c.len() {
            out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
        for _ in c.len()..3 {
            out.push('=');
        }
    }
    out
}

/// Parses one HTTP/1.1 response (Content-Length framed, as flowerd sends).
fn parse_response(raw: &[u8]) -> Resp {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.to_string(), v.trim().to_string())
        })
        .collect();
    let mut body = raw[end + 4..].to_vec();
    if let Some((_, len)) = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
    {
        body.truncate(len.parse().unwrap());
    }
    Resp {
        status,
        headers,
        body,
    }
}

fn start(config: &str) -> Daemon {
    let dir = tempfile::tempdir().unwrap();
    let cfg_path = dir.path().join("flowerd.toml");
    std::fs::write(&cfg_path, config).unwrap();
    let log = std::fs::File::create(dir.path().join("flowerd.log")).unwrap();
    let mut child = Command::new(BIN)
        .arg("serve")
        .arg("--config")
        .arg(&cfg_path)
        .args([
            "--netflow",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
            "--data",
        ])
        .arg(dir.path().join("data"))
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("start flowerd");
    let stdout = child.stdout.take().unwrap();
    let mut d = Daemon {
        child,
        http: SocketAddr::from(([0, 0, 0, 0], 0)),
        netflow: SocketAddr::from(([0, 0, 0, 0], 0)),
        admin_password: String::new(),
        tls: None,
        _dir: dir,
    };
    // From here on, a failed assertion kills the daemon (Drop).
    let mut lines = BufReader::new(stdout).lines();
    loop {
        let line = lines
            .next()
            .expect("flowerd exited before it was ready")
            .unwrap();
        if let Some((_, pw)) = line.split_once("created user \"admin\" with password: ") {
            d.admin_password = pw.trim().to_string();
        }
        if let Some(rest) = line.strip_prefix("flowerd: ready ") {
            let addr = |key: &str| -> SocketAddr {
                rest.split_whitespace()
                    .find_map(|kv| kv.strip_prefix(key))
                    .unwrap()
                    .split(',')
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap()
            };
            d.http = addr("http=");
            d.netflow = addr("netflow=");
            break;
        }
    }
    assert!(!d.admin_password.is_empty(), "no first-start password line");
    // Keep draining stdout so the daemon never blocks on it.
    std::thread::spawn(move || for _ in lines {});
    d
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // After `finish` the child is already reaped and this does nothing.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    /// Sends one request on a new connection (`Connection: close`).
    fn request(
        &self,
        method: &str,
        target: &str,
        auth: Auth<'_>,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Resp {
        let mut req =
            format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
        match auth {
            Auth::None => {}
            Auth::Bearer(t) => req.push_str(&format!("Authorization: Bearer {t}\r\n")),
            Auth::Cookie(t) => req.push_str(&format!("Cookie: theme=dark; flower_session={t}\r\n")),
            Auth::Basic(u, p) => req.push_str(&format!(
                "Authorization: Basic {}\r\n",
                base64(format!("{u}:{p}").as_bytes())
            )),
        }
        for (n, v) in headers {
            req.push_str(&format!("{n}: {v}\r\n"));
        }
        if let Some(b) = body {
            req.push_str(&format!("Content-Length: {}\r\n", b.len()));
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(body.unwrap_or_default());
        parse_response(&self.raw(&bytes))
    }

    /// Sends raw bytes, returns everything the server sends back.
    fn raw(&self, bytes: &[u8]) -> Vec<u8> {
        let tcp = TcpStream::connect(self.http).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut out = Vec::new();
        match &self.tls {
            None => {
                let mut tcp = tcp;
                tcp.write_all(bytes).unwrap();
                let _ = tcp.read_to_end(&mut out);
            }
            Some(config) => {
                let name = "localhost".try_into().unwrap();
                let conn = rustls::ClientConnection::new(config.clone(), name).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                tls.write_all(bytes).unwrap();
                let _ = tls.read_to_end(&mut out);
            }
        }
        out
    }

    fn get(&self, target: &str, auth: Auth<'_>) -> Resp {
        self.request("GET", target, auth, &[], None)
    }

    fn send_json(&self, method: &str, target: &str, auth: Auth<'_>, body: &Value) -> Resp {
        let body = body.to_string();
        self.request(
            method,
            target,
            auth,
            &[("Content-Type", "application/json")],
            Some(body.as_bytes()),
        )
    }

    fn login(&self, user: &str, password: &str) -> Resp {
        self.send_json(
            "POST",
            "/api/v1/login",
            Auth::None,
            &json!({"user": user, "password": password}),
        )
    }

    fn admin_token(&self) -> String {
        let r = self.login("admin", &self.admin_password);
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["token"].as_str().unwrap().to_string()
    }

    /// Sends the softflowd capture and waits until the store has all of it.
    fn load_corpus(&self, token: &str) {
        let payloads = testkit::udp_payloads(&testkit::data("exports/softflowd-v9.pcap"));
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        for (i, (_, p)) in payloads.iter().enumerate() {
            socket.send_to(p, self.netflow).unwrap();
            if i % 10 == 9 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        // Raw flows first (`to=now` is not minute-aligned: a raw scan), then
        // rollups (an aligned range without a filter reads them).
        let deadline = Instant::now() + Duration::from_secs(30);
        for target in [
            "/api/v1/summary?from=0&to=now",
            "/api/v1/summary?from=0&to=4102444800",
        ] {
            loop {
                let r = self.get(target, Auth::Bearer(token));
                assert_eq!(r.status, 200, "{}", r.text());
                if r.json()["flows"] == FLOWS {
                    break;
                }
                assert!(Instant::now() < deadline, "store has {}", r.text());
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }

    /// Checks the daemon still serves, then stops it with SIGTERM: exit 0.
    fn finish(mut self) {
        let r = self.get("/healthz", Auth::None);
        assert_eq!((r.status, r.json()), (200, json!({"status": "ok"})));
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        let status = self.child.wait().unwrap();
        assert_eq!(status.code(), Some(0), "exit status {status:?}");
    }
}

fn assert_error(r: &Resp, status: u16) -> Value {
    assert_eq!(r.status, status, "{}", r.text());
    let v = r.json();
    assert!(v["error"].is_string(), "{v}");
    v
}

fn assert_param_error(r: &Resp, parameter: &str) {
    let v = assert_error(r, 400);
    assert_eq!(v["error"], "invalid parameter", "{v}");
    assert_eq!(v["parameter"], parameter, "{v}");
    assert!(v["detail"].is_string(), "{v}");
}

#[test]
fn queries_answer_over_the_corpus() {
    let d = start("");
    let token = d.admin_token();
    let auth = Auth::Bearer(&token);
    d.load_corpus(&token);

    let s = d.get("/api/v1/summary?from=0&to=now", auth).json();
    assert_eq!(
        (&s["flows"], &s["bytes"], &s["packets"]),
        (&json!(FLOWS), &json!(BYTES), &json!(PACKETS))
    );
    // Ranges are whole minutes: an unaligned one is answered by rollups too.
    assert_ne!(s["tier"], "raw", "{s}");
    let s = d.get("/api/v1/summary?from=0&to=4102444800", auth).json();
    assert_eq!(
        (&s["bytes"], &s["packets"]),
        (&json!(BYTES), &json!(PACKETS))
    );
    assert_ne!(s["tier"], "raw", "{s}");
    // A filter reads raw flows; the two halves add up.
    let tcp = d
        .get("/api/v1/summary?from=0&to=now&filter=proto+tcp", auth)
        .json();
    let rest = d
        .get(
            "/api/v1/summary?from=0&to=now&filter=not%20proto%20tcp&raw=1",
            auth,
        )
        .json();
    assert_eq!(tcp["tier"], "raw");
    let flows = tcp["flows"].as_u64().unwrap() + rest["flows"].as_u64().unwrap();
    assert_eq!(flows, FLOWS);

    // Pagination walks every flow exactly once.
    let mut cursor: Option<String> = None;
    let mut seen = 0;
    let mut bytes = 0;
    let (mut first_ms, mut last_ms) = (u64::MAX, 0);
    loop {
        let mut target = "/api/v1/flows?from=0&to=now&limit=500".to_string();
        if let Some(c) = &cursor {
            target.push_str(&format!("&cursor={c}"));
        }
        let page = d.get(&target, auth).json();
        for f in page["flows"].as_array().unwrap() {
            seen += 1;
            bytes += f["bytes"].as_u64().unwrap();
            first_ms = first_ms.min(f["first_ms"].as_u64().unwrap());
            last_ms = last_ms.max(f["last_ms"].as_u64().unwrap());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!((seen, bytes), (FLOWS, BYTES));
    // A range that holds every flow from its first to its last packet.
    let range = format!("from={}&to={}", first_ms / 1000, last_ms / 1000 + 1);

    let top = d.get(&format!("/api/v1/top?by=src_addr&{range}"), auth);
    assert_eq!(top.status, 200, "{}", top.text());
    let top = top.json();
    assert_eq!(top["rows"][0]["name"], "10.10.1.66", "{top}");
    assert_eq!(top["rows"][0]["group"], "10.10.1.66");
    assert_eq!(top["rows"][0]["bytes"], 35_536_620);
    let listed: u64 = top["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["bytes"].as_u64().unwrap())
        .sum();
    assert_eq!(listed + top["other"]["bytes"].as_u64().unwrap(), BYTES);
    let by_port = d
        .get(
            &format!("/api/v1/top?by=dst_port&metric=flows&limit=3&{range}"),
            auth,
        )
        .json();
    assert_eq!(by_port["rows"].as_array().unwrap().len(), 3);
    assert!(by_port["rows"][0]["group"]["port"].is_u64(), "{by_port}");

    let series = d.get(
        &format!("/api/v1/series?{range}&step=60&by=protocol&top=5"),
        auth,
    );
    assert_eq!(series.status, 200, "{}", series.text());
    let series = series.json();
    let steps = series["timestamps"].as_array().unwrap().len();
    assert!(steps >= 1);
    assert_eq!(series["step"], 60);
    let mut total = series["other"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .sum::<f64>();
    for line in series["series"].as_array().unwrap() {
        assert!(line["name"].is_string());
        assert_eq!(line["values"].as_array().unwrap().len(), steps);
        total += line["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .sum::<f64>();
    }
    assert!((total * 60.0 - BYTES as f64).abs() < 1.0, "{total}");
    assert_eq!(series["series"][0]["name"], "tcp", "{series}");
    let v = assert_error(&d.get("/api/v1/series?from=0&to=now&step=60", auth), 400);
    assert_eq!(v["error"], "invalid query", "too many steps: {v}");
    let default_step = d.get(&format!("/api/v1/series?{range}&metric=packets"), auth);
    assert_eq!(default_step.status, 200, "{}", default_step.text());
    assert_eq!(default_step.json()["step"].as_u64().unwrap() % 60, 0);

    let flow = d
        .get(&format!("/api/v1/flows?{range}&limit=1"), auth)
        .json();
    let keys: Vec<&str> = flow["flows"][0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert!(keys.contains(&"src_addr") && keys.contains(&"sampling_interval"));

    let csv = d.get(&format!("/api/v1/flows?{range}&limit=50&format=csv"), auth);
    assert_eq!(csv.status, 200);
    assert!(csv.header("content-type").unwrap().starts_with("text/csv"));
    assert!(csv.header("x-next-cursor").is_some());
    let text = csv.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 51);
    assert!(lines[0].starts_with("exporter,source_id,"));
    assert_eq!(lines[1].split(',').count(), lines[0].split(',').count());

    // The matrix over networks posted through the API.
    for (name, cidrs) in [
        ("lan", json!(["10.10.1.0/24"])),
        ("dmz", json!(["10.10.2.0/24", "2001:db8::/32"])),
    ] {
        let r = d.send_json(
            "POST",
            "/api/v1/networks",
            auth,
            &json!({"name": name, "cidrs": cidrs}),
        );
        assert_eq!(r.status, 201, "{}", r.text());
    }
    let nets = d.get("/api/v1/networks", auth).json();
    assert_eq!(nets.as_array().unwrap().len(), 2);
    let m = d.get(&format!("/api/v1/matrix?{range}"), auth);
    assert_eq!(m.status, 200, "{}", m.text());
    let m = m.json();
    assert_eq!(m["nodes"], json!(["dmz", "lan", "other"]));
    let link_bytes: u64 = m["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["bytes"].as_u64().unwrap())
        .sum();
    assert_eq!(link_bytes, BYTES);
    assert!(m["links"][0]["src"].is_string() && m["links"][0]["flows"].is_u64());
    let by_net = d
        .get(&format!("/api/v1/top?by=src_network&{range}"), auth)
        .json();
    assert!(
        by_net["rows"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "lan"),
        "{by_net}"
    );

    let exporters = d.get("/api/v1/exporters", auth).json();
    assert!(!exporters.as_array().unwrap().is_empty(), "{exporters}");
    // Template fields as [type, length, name]: softflowd's IPv4 template
    // has the source address (type 8, 4 bytes).
    let fields: Vec<&Value> = exporters
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|e| e["templates"].as_array().unwrap())
        .flat_map(|t| t["fields"].as_array().unwrap())
        .collect();
    assert!(
        fields
            .iter()
            .any(|f| f[0] == 8 && f[1] == 4 && f[2].is_string()),
        "{exporters}"
    );
    let metrics = d.get("/metrics", auth);
    assert_eq!(metrics.status, 200);
    assert!(metrics.text().contains("flower_http_requests_total "));
    let head = d.request("HEAD", "/api/v1/summary?from=0&to=now", auth, &[], None);
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert!(
        head.header("content-length")
            .unwrap()
            .parse::<usize>()
            .unwrap()
            > 0
    );
    d.finish();
}

#[test]
fn authentication_and_roles() {
    let d = start("[http]\nmetrics_public = false\nsession_secs = 3600\n");
    // Nothing but /healthz and login answers without credentials.
    for (method, path) in [
        ("GET", "/metrics"),
        ("POST", "/api/v1/logout"),
        ("GET", "/api/v1/me"),
        ("GET", "/api/v1/summary"),
        ("GET", "/api/v1/series"),
        ("GET", "/api/v1/flows"),
        ("GET", "/api/v1/top"),
        ("GET", "/api/v1/matrix"),
        ("GET", "/api/v1/exporters"),
        ("GET", "/api/v1/networks"),
        ("POST", "/api/v1/networks"),
        ("GET", "/api/v1/networks/lan"),
        ("PUT", "/api/v1/networks/lan"),
        ("DELETE", "/api/v1/networks/lan"),
        ("GET", "/api/v1/users"),
        ("POST", "/api/v1/users"),
        ("GET", "/api/v1/users/admin"),
        ("DELETE", "/api/v1/users/admin"),
        ("PUT", "/api/v1/users/admin/password"),
    ] {
        let r = d.request(method, path, Auth::None, &[], Some(b"{}"));
        assert_error(&r, 401);
        assert!(r.header("www-authenticate").is_some(), "{method} {path}");
        let r = d.request(method, path, Auth::Bearer("0123abcd"), &[], Some(b"{}"));
        assert_error(&r, 401);
    }
    let r = d.get("/healthz", Auth::None);
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(r.header("cache-control"), Some("no-store"));

    // Login: token, cookie, role.
    let r = d.login("admin", &d.admin_password);
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let admin = v["token"].as_str().unwrap().to_string();
    assert_eq!(v["role"], "admin");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!((now + 3590..now + 3610).contains(&v["expires"].as_u64().unwrap()));
    let cookie = r.header("set-cookie").unwrap();
    assert_eq!(
        cookie,
        format!("flower_session={admin}; HttpOnly; SameSite=Strict; Path=/; Max-Age=3600")
    );
    assert_error(&d.login("admin", "wrong password"), 401);
    assert_error(&d.login("nobody", "wrong password"), 401);
    let me = d.get("/api/v1/me", Auth::Cookie(&admin)).json();
    assert_eq!(me, json!({"user": "admin", "role": "admin"}));
    let me = d
        .get("/api/v1/me", Auth::Basic("admin", &d.admin_password))
        .json();
    assert_eq!(me["user"], "admin");
    assert_error(&d.get("/api/v1/me", Auth::Basic("admin", "nope")), 401);
    assert_eq!(d.get("/metrics", Auth::Bearer(&admin)).status, 200);

    // A viewer reads but changes nothing.
    let r = d.send_json(
        "POST",
        "/api/v1/users",
        Auth::Bearer(&admin),
        &json!({"name": "vera", "role": "viewer", "password": "correct horse"}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json(), json!({"name": "vera", "role": "viewer"}));
    let dup = d.send_json(
        "POST",
        "/api/v1/users",
        Auth::Bearer(&admin),
        &json!({"name": "vera", "role": "admin", "password": "other password"}),
    );
    assert_error(&dup, 409);
    let users = d.get("/api/v1/users", Auth::Bearer(&admin));
    assert_eq!(
        users.json(),
        json!([{"name": "admin", "role": "admin"}, {"name": "vera", "role": "viewer"}])
    );
    assert!(
        !users.text().contains("argon2"),
        "hashes never leave the daemon"
    );
    let r = d.login("vera", "correct horse");
    assert_eq!(r.json()["role"], "viewer");
    let vera = r.json()["token"].as_str().unwrap().to_string();
    let viewer = Auth::Bearer(&vera);
    assert_eq!(d.get("/api/v1/networks", viewer).status, 200);
    assert_eq!(d.get("/api/v1/summary?from=0&to=now", viewer).status, 200);
    assert_eq!(d.get("/api/v1/users/vera", viewer).status, 200);
    let net = json!({"name": "lan", "cidrs": ["10.0.0.0/8"]});
    for (method, path, body) in [
        ("POST", "/api/v1/networks", net.clone()),
        ("PUT", "/api/v1/networks/lan", net.clone()),
        ("DELETE", "/api/v1/networks/lan", json!({})),
        ("GET", "/api/v1/users", json!({})),
        ("GET", "/api/v1/users/admin", json!({})),
        (
            "POST",
            "/api/v1/users",
            json!({"name": "x", "role": "admin", "password": "12345678"}),
        ),
        ("DELETE", "/api/v1/users/admin", json!({})),
        (
            "PUT",
            "/api/v1/users/admin/password",
            json!({"password": "12345678"}),
        ),
    ] {
        let r = d.send_json(method, path, viewer, &body);
        assert_error(&r, 403);
    }
    // ... except its own password, given the current one, which ends its
    // other sessions.
    let other_vera = d.login("vera", "correct horse").json()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let change = |body: Value| d.send_json("PUT", "/api/v1/users/vera/password", viewer, &body);
    assert_error(&change(json!({"password": "battery staple"})), 400);
    let r = change(json!({"password": "battery staple", "current_password": "wrong horse"}));
    assert_error(&r, 403);
    assert_eq!(r.json()["detail"], "current_password is wrong");
    assert_eq!(d.login("vera", "correct horse").status, 200, "unchanged");
    let r = change(json!({"password": "battery staple", "current_password": "correct horse"}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        d.get("/api/v1/me", viewer).status,
        200,
        "the session that changed it stays"
    );
    assert_error(&d.get("/api/v1/me", Auth::Bearer(&other_vera)), 401);
    assert_error(&d.login("vera", "correct horse"), 401);
    assert_eq!(d.login("vera", "battery staple").status, 200);
    // An admin sets another user's password without knowing it.
    let r = d.send_json(
        "PUT",
        "/api/v1/users/vera/password",
        Auth::Bearer(&admin),
        &json!({"password": "correct horse"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_error(&d.get("/api/v1/me", viewer), 401);
    let r = d.login("vera", "correct horse");
    assert_eq!(r.status, 200);
    let vera = r.json()["token"].as_str().unwrap().to_string();
    assert_eq!(d.get("/api/v1/me", Auth::Bearer(&vera)).status, 200);
    // `flowerd user add --replace` from another process while the daemon runs: the
    // password changes, and the sessions opened with the old one end.
    let mut cli = Command::new(BIN)
        .args([
            "user",
            "add",
            "vera",
            "--role",
            "viewer",
            "--password-stdin",
            "--replace",
            "--data",
        ])
        .arg(d._dir.path().join("data"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    cli.stdin
        .take()
        .unwrap()
        .write_all(b"offline horse\n")
        .unwrap();
    let out = cli.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_error(&d.get("/api/v1/me", Auth::Bearer(&vera)), 401);
    let r = d.login("vera", "offline horse");
    assert_eq!(r.status, 200);
    let vera = r.json()["token"].as_str().unwrap().to_string();
    let viewer = Auth::Bearer(&vera);

    // Admin changes: networks, users; never the last admin.
    let r = d.send_json(
        "PUT",
        "/api/v1/networks/lan",
        Auth::Bearer(&admin),
        &json!({"cidrs": ["10.0.0.0/8"]}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let r = d.send_json(
        "PUT",
        "/api/v1/networks/lan",
        Auth::Bearer(&admin),
        &json!({"name": "lan", "cidrs": ["10.0.0.0/9"]}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        d.get("/api/v1/networks/lan", viewer).json(),
        json!({"name": "lan", "cidrs": ["10.0.0.0/9"]})
    );
    let r = d.send_json(
        "POST",
        "/api/v1/networks",
        Auth::Bearer(&admin),
        &json!({"name": "lan", "cidrs": ["10.0.0.0/8"]}),
    );
    assert_error(&r, 409);
    assert_eq!(
        d.request(
            "DELETE",
            "/api/v1/networks/lan",
            Auth::Bearer(&admin),
            &[],
            None
        )
        .status,
        200
    );
    assert_error(
        &d.request(
            "DELETE",
            "/api/v1/networks/lan",
            Auth::Bearer(&admin),
            &[],
            None,
        ),
        404,
    );
    assert_error(
        &d.request(
            "DELETE",
            "/api/v1/users/admin",
            Auth::Bearer(&admin),
            &[],
            None,
        ),
        409,
    );
    assert_error(
        &d.request(
            "DELETE",
            "/api/v1/users/nobody",
            Auth::Bearer(&admin),
            &[],
            None,
        ),
        404,
    );
    assert_eq!(
        d.request(
            "DELETE",
            "/api/v1/users/vera",
            Auth::Bearer(&admin),
            &[],
            None
        )
        .status,
        200
    );
    assert_error(&d.get("/api/v1/me", viewer), 401);

    // Logout ends the session, for the bearer token and the cookie alike.
    let r = d.request("POST", "/api/v1/logout", Auth::Cookie(&admin), &[], None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.header("set-cookie").unwrap().contains("Max-Age=0"));
    assert_error(&d.get("/api/v1/me", Auth::Bearer(&admin)), 401);
    assert_error(&d.get("/api/v1/me", Auth::Cookie(&admin)), 401);
    d.finish();
}

#[test]
fn malformed_requests_get_json_errors() {
    let d = start("[http]\nmax_body_bytes = 2048\n");
    let token = d.admin_token();
    let auth = Auth::Bearer(&token);
    let get = |t: &str| d.get(t, auth);

    assert_param_error(&get("/api/v1/summary?from=yesterday"), "from");
    assert_param_error(&get("/api/v1/summary?to=2024-02-30T00:00:00Z"), "to");
    assert_param_error(&get("/api/v1/summary?from=now&to=-1h"), "from");
    assert_param_error(&get("/api/v1/summary?from=%zz"), "from");
    assert_param_error(&get("/api/v1/summary?raw=perhaps"), "raw");
    assert_param_error(&get("/api/v1/series?step=90"), "step");
    assert_param_error(&get("/api/v1/series?step=99999999999w"), "step");
    assert_param_error(&get("/api/v1/series?by=colour"), "by");
    assert_param_error(&get("/api/v1/series?metric=bits"), "metric");
    assert_param_error(&get("/api/v1/series?top=0"), "top");
    assert_param_error(&get("/api/v1/top?limit=100000"), "limit");
    assert_param_error(&get("/api/v1/flows?limit=10001"), "limit");
    assert_param_error(&get("/api/v1/flows?cursor=nonsense"), "cursor");
    assert_param_error(&get("/api/v1/flows?order=random"), "order");
    assert_param_error(&get("/api/v1/flows?format=xml"), "format");
    let v = assert_error(&get("/api/v1/flows?filter=src+hots+10.0.0.1"), 400);
    assert_eq!(v["error"], "invalid filter");
    assert_eq!(v["column"], 5);
    assert!(v["expected"].is_string() && v["found"] == "hots", "{v}");
    // Unknown parameters are ignored; the last of repeated ones wins.
    assert_eq!(
        get("/api/v1/summary?colour=blue&raw=maybe&raw=1").status,
        200
    );
    // Times in every accepted form.
    for t in [
        "0",
        "now",
        "-15m",
        "-7d",
        "-30s",
        "2024-03-01T12:00:00Z",
        "2024-03-01T13:00:00%2B01:00",
        "2024-03-01T13:00:00+01:00",
    ] {
        let r = get(&format!("/api/v1/summary?from={t}&to=now"));
        assert_eq!(r.status, 200, "{t}: {}", r.text());
    }

    // Bodies.
    let json = [("Content-Type", "application/json")];
    let post = |body: &[u8]| d.request("POST", "/api/v1/networks", auth, &json, Some(body));
    assert_eq!(assert_error(&post(b"{"), 400)["error"], "invalid body");
    assert_error(&post(b""), 400);
    assert_error(&post(b"[1, 2]"), 400);
    assert_error(
        &post(br#"{"name": "x", "cidrs": ["10.0.0.0/8"], "colour": 1}"#),
        400,
    );
    let v = assert_error(
        &post(br#"{"name": "x", "cidrs": ["10.0.0.0/8", "10.0.0.300"]}"#),
        400,
    );
    assert!(v["detail"].as_str().unwrap().starts_with("cidrs[1]"), "{v}");
    assert_error(&post(br#"{"name": "", "cidrs": ["10.0.0.0/8"]}"#), 400);
    let r = d.send_json(
        "PUT",
        "/api/v1/networks/a",
        auth,
        &json!({"name": "b", "cidrs": ["10.0.0.0/8"]}),
    );
    assert_error(&r, 400);
    let r = d.send_json(
        "POST",
        "/api/v1/users",
        auth,
        &json!({"name": "bob", "role": "root", "password": "12345678"}),
    );
    assert_error(&r, 400);
    let r = d.send_json(
        "POST",
        "/api/v1/users",
        auth,
        &json!({"name": "bob", "role": "viewer", "password": "short"}),
    );
    assert_error(&r, 400);
    let r = d.send_json(
        "POST",
        "/api/v1/users",
        auth,
        &json!({"name": "bob smith", "role": "viewer", "password": "12345678"}),
    );
    assert_error(&r, 400);
    // A body not declared as JSON is refused, whatever it holds.
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let r = d.request(
        "POST",
        "/api/v1/login",
        Auth::None,
        &form,
        Some(b"user=admin"),
    );
    assert_eq!(assert_error(&r, 415)["error"], "unsupported media type");
    let net = br#"{"name": "x", "cidrs": ["10.0.0.0/8"]}"#;
    for headers in [&[][..], &[("Content-Type", "text/plain")]] {
        let r = d.request("POST", "/api/v1/networks", auth, headers, Some(net));
        assert_error(&r, 415);
    }
    assert_error(&d.get("/api/v1/networks/x", auth), 404);

    // Oversized bodies: by Content-Length, and chunked.
    let big = format!(r#"{{"name": "x", "cidrs": ["{}"]}}"#, "1".repeat(3000));
    assert_error(&post(big.as_bytes()), 413);
    let mut chunked =
        b"POST /api/v1/networks HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec();
    for _ in 0..3 {
        chunked.extend_from_slice(b"400\r\n");
        chunked.extend_from_slice(&[b' '; 1024]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    assert_error(&parse_response(&d.raw(&chunked)), 413);
    let small = b"POST /api/v1/login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\n{\"us\"\r\n0\r\n\r\n";
    assert_error(&parse_response(&d.raw(small)), 400);
    // DNS rebinding: a name this loopback server does not answer to is
    // refused before anything else (health checks excepted).
    let rebound =
        b"GET /api/v1/summary HTTP/1.1\r\nHost: evil.example:8080\r\nConnection: close\r\n\r\n";
    let v = assert_error(&parse_response(&d.raw(rebound)), 421);
    assert_eq!(v["error"], "host not allowed");
    let health = b"GET /healthz HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n";
    assert_eq!(parse_response(&d.raw(health)).status, 200);
    // A huge declared length is refused without being read or allocated.
    let r = d.request(
        "GET",
        "/healthz",
        Auth::None,
        &[("Content-Length", "1000000000000000")],
        None,
    );
    assert_error(&r, 413);
    assert_eq!(d.get("/healthz", Auth::None).status, 200);

    // Routes and methods.
    assert_error(&get("/api/v1/nothing"), 404);
    assert_error(&get("/api/v2/summary"), 404);
    assert_error(&get("/"), 404);
    assert_error(&get("/api/v1/networks/nope"), 404);
    let r = d.request("DELETE", "/api/v1/summary", auth, &[], None);
    assert_error(&r, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    let r = d.request("GET", "/api/v1/login", Auth::None, &[], None);
    assert_error(&r, 405);
    assert_eq!(r.header("allow"), Some("POST"));
    assert_error(&d.request("POST", "/healthz", Auth::None, &[], None), 405);

    // The request line and header section.
    let long = format!("/api/v1/summary?filter={}", "a".repeat(9000));
    assert_error(&get(&long), 414);
    let fields: Vec<(String, String)> = (0..101).map(|i| (format!("X-{i}"), "v".into())).collect();
    let fields: Vec<(&str, &str)> = fields
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    assert_error(
        &d.request("GET", "/healthz", Auth::None, &fields, None),
        431,
    );
    assert_error(&parse_response(&d.raw(b"GARBAGE\r\n\r\n")), 400);
    assert_error(&parse_response(&d.raw(b"GET / HTTP/3.0\r\n\r\n")), 505);
    assert_error(
        &parse_response(&d.raw(b"GET /healthz HTTP/1.1\r\nBad Header: x\r\n\r\n")),
        400,
    );

    // Every error above was counted.
    let m = d.get("/metrics", auth).text();
    let errors: u64 = m
        .lines()
        .find_map(|l| l.strip_prefix("flower_http_errors_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(errors >= 30, "{errors}");
    d.finish();
}

#[test]
fn cookie_sessions_refuse_other_sites() {
    let d = start("");
    let token = d.admin_token();
    let user = |name: &str| {
        json!({"name": name, "role": "admin", "password": "correct horse"}).to_string()
    };
    let post = |auth: Auth<'_>, headers: &[(&str, &str)], name: &str| {
        let mut all = vec![("Content-Type", "application/json; charset=utf-8")];
        all.extend_from_slice(headers);
        d.request(
            "POST",
            "/api/v1/users",
            auth,
            &all,
            Some(user(name).as_bytes()),
        )
    };
    let cookie = Auth::Cookie(&token);
    // A page on another port of the same host is "same-site": the browser
    // sends the SameSite=Strict cookie, and says where the request is from.
    for headers in [
        &[("Origin", "http://localhost:3000")][..],
        &[("Origin", "null")],
        &[("Sec-Fetch-Site", "same-site")],
        &[("Sec-Fetch-Site", "cross-site")],
    ] {
        let r = post(cookie, headers, "mallory");
        assert_eq!(assert_error(&r, 403)["error"], "forbidden", "{headers:?}");
        let r = d.request("DELETE", "/api/v1/users/admin", cookie, headers, None);
        assert_error(&r, 403);
        let r = d.request("POST", "/api/v1/logout", cookie, headers, None);
        assert_error(&r, 403);
    }
    // A cross-site text/plain post (no preflight) is refused before anything.
    let r = d.request(
        "POST",
        "/api/v1/users",
        cookie,
        &[("Content-Type", "text/plain")],
        Some(user("mallory").as_bytes()),
    );
    assert_error(&r, 415);
    assert_error(&d.get("/api/v1/users/mallory", Auth::Bearer(&token)), 404);
    // Reading with the cookie from anywhere is fine (responses are not
    // readable cross-origin), so is the server's own origin, and so are
    // bearer tokens, which a browser never adds by itself.
    let r = d.request(
        "GET",
        "/api/v1/me",
        cookie,
        &[
            ("Origin", "http://localhost:3000"),
            ("Sec-Fetch-Site", "same-site"),
        ],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let own = [
        ("Origin", "http://localhost"),
        ("Sec-Fetch-Site", "same-origin"),
    ];
    assert_eq!(post(cookie, &own, "ann").status, 201);
    assert_eq!(post(cookie, &[], "bea").status, 201);
    let r = post(
        Auth::Bearer(&token),
        &[
            ("Origin", "http://localhost:3000"),
            ("Sec-Fetch-Site", "cross-site"),
        ],
        "cid",
    );
    assert_eq!(r.status, 201, "{}", r.text());
    d.finish();
}

#[test]
fn failed_logins_are_rate_limited() {
    let d = start("[http]\nlogin_attempts_per_minute = 3\nmetrics_public = true\n");
    let token = d.admin_token();
    for _ in 0..3 {
        assert_error(&d.login("admin", "guess"), 401);
    }
    let r = d.login("admin", "guess");
    let v = assert_error(&r, 429);
    assert!(v["retry_after"].as_u64().unwrap() <= 61);
    assert!(r.header("retry-after").is_some());
    // Even the right password, and Basic, wait now.
    assert_error(&d.login("admin", &d.admin_password), 429);
    assert_error(
        &d.get("/api/v1/me", Auth::Basic("admin", &d.admin_password)),
        429,
    );
    // Sessions are unaffected.
    assert_eq!(d.get("/api/v1/me", Auth::Bearer(&token)).status, 200);
    let m = d.get("/metrics", Auth::None);
    assert_eq!(m.status, 200, "metrics_public");
    let m = m.text();
    assert!(m.contains("flower_logins_failed_total 3\n"), "{m}");
    assert!(m.contains("flower_logins_rate_limited_total 3\n"), "{m}");
    d.finish();
}

#[test]
fn slow_clients_do_not_block_others() {
    let d = start("[http]\nworkers = 1\n");
    let token = d.admin_token();
    // Half a request line, half a header section, half a body, and a
    // connection that never sends anything.
    let mut slow = Vec::new();
    for partial in [
        &b"GET /api/v1/summ"[..],
        b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n",
        b"POST /api/v1/login HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1500\r\n\r\n{\"user\":",
        b"",
    ] {
        let mut s = TcpStream::connect(d.http).unwrap();
        s.write_all(partial).unwrap();
        slow.push(s);
    }
    for _ in 0..20 {
        slow.push(TcpStream::connect(d.http).unwrap());
    }
    let started = Instant::now();
    for _ in 0..10 {
        assert_eq!(d.get("/healthz", Auth::None).status, 200);
        assert_eq!(d.get("/api/v1/summary", Auth::Bearer(&token)).status, 200);
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // A kept-alive connection serves several requests in a row.
    let mut s = TcpStream::connect(d.http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let req = format!(
        "GET /api/v1/me HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\r\n"
    );
    s.write_all(format!("{req}{req}GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n").as_bytes())
        .unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let text = String::from_utf8_lossy(&all);
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 3, "{text}");
    // One client cannot hold every connection: past 64 at once it is
    // refused (503), and served again once it lets go.
    let mut idle: Vec<TcpStream> = (0..80)
        .map(|_| TcpStream::connect(d.http).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let mut refused = 0;
    for s in &mut idle {
        s.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 12];
        if matches!(s.read(&mut buf), Ok(12) if &buf == b"HTTP/1.1 503") {
            refused += 1;
        }
    }
    assert!(refused >= 30, "{refused} of 80 refused");
    drop(idle);
    drop(slow);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(d.get("/healthz", Auth::None).status, 200);
    d.finish();
}

/// A daemon that serves HTTPS with the test certificate, and a client
/// that trusts it.
fn start_tls() -> Daemon {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tls");
    let mut d = start(&format!(
        "[http]\ntls_cert = {:?}\ntls_key = {:?}\n",
        dir.join("cert.pem"),
        dir.join("key.pem")
    ));
    let cert = std::fs::read(dir.join("cert.pem")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(&cert) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    d.tls = Some(Arc::new(client));
    d
}

#[test]
fn https_when_configured() {
    let d = start_tls();
    assert_eq!(d.get("/healthz", Auth::None).status, 200);
    let r = d.login("admin", &d.admin_password);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.header("set-cookie").unwrap().ends_with("; Secure"));
    let token = r.json()["token"].as_str().unwrap().to_string();
    assert_eq!(
        d.get("/api/v1/me", Auth::Cookie(&token)).json()["user"],
        "admin"
    );
    // Plain HTTP to the TLS port gets nowhere, and does not hurt.
    let mut tcp = TcpStream::connect(d.http).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\n\r\n").unwrap();
    tcp.shutdown(std::net::Shutdown::Write).unwrap();
    let mut out = Vec::new();
    let _ = tcp.read_to_end(&mut out);
    assert!(!out.starts_with(b"HTTP/1.1 200"));
    d.finish();
}

#[test]
fn slow_tls_handshakes_run_out_of_time() {
    let d = start_tls();
    // A TLS record header announcing 255 bytes of handshake, then one byte
    // a second: each read of the socket gets data long before any timeout,
    // but the handshake must still end with the header-section limit (10 s).
    let started = Instant::now();
    let mut tcp = TcpStream::connect(d.http).unwrap();
    tcp.write_all(&[0x16, 0x03, 0x01, 0x00, 0xff]).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match tcp.read(&mut buf) {
            // Closed, or reset.
            Ok(0) => break,
            Err(e) if !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
            // An alert, or nothing yet.
            Ok(_) | Err(_) => {}
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "handshake still open after {:?}",
            started.elapsed()
        );
        if tcp.write_all(&[0x01]).is_err() {
            break;
        }
    }
    let took = started.elapsed();
    assert!(
        (Duration::from_secs(9)..Duration::from_secs(14)).contains(&took),
        "closed after {took:?}"
    );
    d.finish();
}
