//! flowerd's HTTP/1.1 request reader (request line, header fields, bodies by
//! length or chunked) and its RFC 3339 time parser: any bytes from a client
//! give requests within the size limits or a typed rejection, never a panic,
//! and every request consumes input (no endless loop on a pipelined stream).
#![no_main]
#![allow(dead_code, unreachable_pub)]

use libfuzzer_sys::fuzz_target;

#[path = "../../flowerd/src/http/wire.rs"]
mod wire;

#[path = "../../flowerd/src/http/time.rs"]
mod time;

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
