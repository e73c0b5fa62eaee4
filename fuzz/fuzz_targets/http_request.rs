//! flowerd's HTTP/1.1 request reader (request line, header fields, bodies by
//! length or chunked) and its RFC 3339 time parser: any bytes from a client
//! give requests within the size limits or a typed rejection, never a panic,
//! and every request consumes input (no endless loop on a pipelined stream).
#![no_main]
#![allow(dead_code, unreachable_pub)]

use libfuzzer_sys::fuzz_target;

// flowerd's `http` modules that parse what clients send, included by path,
// with a stand-in for the error type of `params` (which names its siblings
// as `super::respond` and `super::time`).
#[path = "../../flowerd/src/http/params.rs"]
mod params;
#[path = "../../flowerd/src/http/time.rs"]
mod time;
#[path = "../../flowerd/src/http/wire.rs"]
mod wire;

mod respond {
    /// The variants `params` builds.
    #[derive(Debug)]
    pub enum ApiError {
        Param {
            parameter: &'static str,
            detail: String,
        },
        Filter(flowstore::filter::FilterError),
    }

    impl ApiError {
        pub fn param(parameter: &'static str, detail: impl Into<String>) -> ApiError {
            ApiError::Param {
                parameter,
                detail: detail.into(),
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, stream)) = data.split_first() else {
        return;
    };
    // Small limits half the time, so inputs reach every cap.
    let limits = if pick & 1 == 0 {
        wire::Limits {
            max_target: 8 * 1024,
            max_header_bytes: 16 * 1024,
            max_headers: 100,
            max_body: 64 * 1024,
        }
    } else {
        wire::Limits {
            max_target: usize::from(pick >> 1) + 1,
            max_header_bytes: usize::from(pick),
            max_headers: usize::from(pick >> 4),
            max_body: usize::from(pick >> 2),
        }
    };
    let mut r = std::io::BufReader::with_capacity(64, stream);
    let mut consumed = 0usize;
    loop {
        let head = match wire::read_head(&mut r, &limits) {
            Ok(h) => h,
            Err(e) => {
                check_rejection(&e);
                break;
            }
        };
        assert!(head.target.len() <= limits.max_target);
        assert!(head.headers.len() <= limits.max_headers);
        assert!(!head.method.is_empty());
        let body = match wire::read_body(&mut r, head.body, &limits) {
            Ok(b) => b,
            Err(e) => {
                check_rejection(&e);
                break;
            }
        };
        assert!(body.len() <= limits.max_body);
        let after = stream.len() - unread(&r);
        assert!(after > consumed, "a request consumed no input");
        consumed = after;
        if head.close {
            break;
        }
    }
    if let Some(target) = stream.split(|&b| b == b'\n').next() {
        check_query(&String::from_utf8_lossy(target));
    }
    if let Ok(s) = std::str::from_utf8(stream) {
        if let Ok(ms) = time::parse_rfc3339(s) {
            // Milliseconds; years 0001-9999 and offsets of a day at most.
            assert!(ms < (253_402_300_800 + 86_400) * 1000, "{s:?} -> {ms}");
            assert!(!time::http_date(ms / 1000).is_empty());
        }
    }
});

/// Bytes of the input not yet handed out by `r` (its buffer included).
fn unread(r: &std::io::BufReader<&[u8]>) -> usize {
    r.get_ref().len() + r.buffer().len()
}

fn check_rejection(e: &wire::ReadError) {
    if let Some((status, message)) = e.status() {
        assert!((400..=505).contains(&status), "{status}");
        assert!(!message.is_empty());
    }
}

/// The API's query-string parameters, as every route reads them.
fn check_query(target: &str) {
    let query = target.split_once('?').map_or(target, |(_, q)| q);
    // A fixed "now" (2024-03-01): relative times are checked against it.
    let now_ms = 1_709_294_536_000;
    let Ok(q) = params::Query::parse(query, now_ms) else {
        return;
    };
    if let Ok(range) = q.range() {
        assert!(range.from_ms <= range.to_ms);
        if let Ok(step) = q.step_secs(range) {
            assert!(step > 0 && step % 60 == 0);
        }
    }
    let _ = q.filter();
    let _ = q.metric();
    let _ = q.flag("raw");
    if let Ok(n) = q.count("limit", 100, 10_000) {
        assert!((1..=10_000).contains(&n));
    }
    let _ = q.group_by(flowstore::Dimension::Protocol, || Ok(Vec::new()));
}
