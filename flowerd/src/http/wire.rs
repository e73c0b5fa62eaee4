//! HTTP/1.1 on the wire (RFC 9112): reading one request with hard limits,
//! writing one response.
//!
//! Everything here works on any `BufRead`/`Write`, so it is tested without
//! sockets; time limits are the caller's (see `conn`). Memory per request is
//! bounded by [`Limits`] whatever the client sends: the request line, the
//! header section and the body each have a cap, and nothing is sized from a
//! number the client wrote.

use std::io::{self, BufRead, Read, Write};
use std::net::IpAddr;

/// Size caps for one request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Longest request-target (path and query), in bytes.
    pub(crate) max_target: usize,
    /// Header section size, in bytes (all field lines together).
    pub(crate) max_header_bytes: usize,
    /// Number of header fields.
    pub(crate) max_headers: usize,
    /// Largest body.
    pub(crate) max_body: usize,
}

/// The HTTP version of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Version {
    /// HTTP/1.0: one request per connection.
    Http10,
    /// HTTP/1.1.
    Http11,
}

/// A request line and its header fields, before the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Head {
    /// The method token, as sent (methods are case-sensitive).
    pub(crate) method: String,
    /// The request-target in origin form (`/path?query`).
    pub(crate) target: String,
    /// Protocol version.
    pub(crate) version: Version,
    /// Field lines: names in lower case, values trimmed.
    pub(crate) headers: Vec<(String, String)>,
    /// How the body is framed.
    pub(crate) body: BodyFraming,
    /// The client sent `Expect: 100-continue`.
    pub(crate) expect_continue: bool,
    /// The connection ends after this request.
    pub(crate) close: bool,
}

impl Head {
    /// The value of the first field called `name` (lower case).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A complete request, as handlers see it.
#[derive(Debug)]
pub(crate) struct Request {
    /// Request line and header fields.
    pub(crate) head: Head,
    /// The body (empty when there was none).
    pub(crate) body: Vec<u8>,
    /// The client's address.
    pub(crate) peer: IpAddr,
    /// Whether it came over TLS.
    pub(crate) secure: bool,
}

#[cfg(test)]
impl Request {
    /// A request from loopback over plain HTTP, for handler tests
    /// (`headers` with lower-case names).
    pub(crate) fn for_test(
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Request {
        Request {
            head: Head {
                method: method.into(),
                target: target.into(),
                version: Version::Http11,
                headers: headers
                    .iter()
                    .map(|(n, v)| ((*n).to_string(), (*v).to_string()))
                    .collect(),
                body: BodyFraming::Length(body.len() as u64),
                expect_continue: false,
                close: true,
            },
            body: body.to_vec(),
            peer: std::net::Ipv4Addr::LOCALHOST.into(),
            secure: false,
        }
    }
}

/// How a request body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyFraming {
    /// `Content-Length: n` (0 when absent).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// Why a request could not be read. [`ReadError::status`] says what to
/// answer; after any of these the connection is closed.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The peer closed the connection before a complete request.
    Closed,
    /// A socket error, including the caller's time limits (`TimedOut`,
    /// `WouldBlock`).
    Io(io::Error),
    /// The request is malformed or over a limit: answer with this status
    /// and message, then close.
    Reject(u16, &'static str),
}

impl ReadError {
    /// The status to answer with, if any (none when the peer is gone).
    pub(crate) fn status(&self) -> Option<(u16, &'static str)> {
        match self {
            ReadError::Closed => None,
            ReadError::Io(e) if is_timeout(e) => Some((408, "request timeout")),
            ReadError::Io(_) => None,
            ReadError::Reject(s, m) => Some((*s, m)),
        }
    }
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        ReadError::Io(e)
    }
}

/// Whether `e` is a read or write time limit expiring.
pub(crate) fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    )
}

/// Outcome of reading one line.
enum Line {
    /// The line, without its terminator.
    Done,
    /// End of input before a line terminator.
    Eof,
    /// Longer than allowed.
    TooLong,
}

/// Reads up to and excluding the next LF into `buf` (a preceding CR is
/// dropped), never holding more than `max` bytes.
///
/// RFC 9112 §2.2: "Although the line terminator for the start-line and
/// fields is the sequence CRLF, a recipient MAY recognize a single LF as a
/// line terminator and ignore any preceding CR."
fn read_line<R: BufRead>(r: &mut R, max: usize, buf: &mut Vec<u8>) -> io::Result<Line> {
    buf.clear();
    loop {
        let avail = r.fill_buf()?;
        if avail.is_empty() {
            return Ok(Line::Eof);
        }
        let (chunk, found) = match avail.iter().position(|&b| b == b'\n') {
            Some(i) => (&avail[..i], true),
            None => (avail, false),
        };
        if buf.len() + chunk.len() > max {
            return Ok(Line::TooLong);
        }
        buf.extend_from_slice(chunk);
        let used = chunk.len() + usize::from(found);
        r.consume(used);
        if found {
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
            return Ok(Line::Done);
        }
    }
}

/// RFC 9110 §5.6.2: `tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+"
/// / "-" / "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA`.
fn is_token(s: &[u8]) -> bool {
    !s.is_empty()
        && s.iter()
            .all(|&c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c))
}

/// Reads a request line and header section.
///
/// # Errors
/// [`ReadError::Closed`] at a clean end of input before the request line;
/// [`ReadError::Reject`] with 400, 414, 431, 501 or 505 for requests this
/// server will not take; I/O errors (including time limits) as they come.
pub(crate) fn read_head<R: BufRead>(r: &mut R, limits: &Limits) -> Result<Head, ReadError> {
    let mut line = Vec::with_capacity(256);
    // Method, two spaces and "HTTP/1.1" around the target.
    let max_line = limits.max_target + 32;
    // RFC 9112 §2.2: "a server that is expecting to receive and parse a
    // request-line SHOULD ignore at least one empty line (CRLF) received
    // prior to the request-line."
    let mut empty_lines = 0;
    loop {
        match read_line(r, max_line, &mut line)? {
            Line::Eof => return Err(ReadError::Closed),
            Line::TooLong => return Err(ReadError::Reject(414, "request line too long")),
            Line::Done if line.is_empty() && empty_lines < 4 => empty_lines += 1,
            Line::Done => break,
        }
    }
    let (method, target, version) = parse_request_line(&line, limits)?;

    let mut headers: Vec<(String, String)> = Vec::new();
    let mut header_bytes = 0usize;
    loop {
        let room = limits.max_header_bytes.saturating_sub(header_bytes);
        match read_line(r, room, &mut line)? {
            Line::Eof => return Err(ReadError::Closed),
            Line::TooLong => return Err(ReadError::Reject(431, "header section too large")),
            Line::Done => {}
        }
        header_bytes += line.len() + 2;
        if line.is_empty() {
            break;
        }
        if headers.len() == limits.max_headers {
            return Err(ReadError::Reject(431, "too many header fields"));
        }
        // RFC 9112 §5.2: "A server that receives an obs-fold in a request
        // message that is not within a "message/http" container MUST either
        // reject the message by sending a 400 (Bad Request) [...]"
        if line[0] == b' ' || line[0] == b'\t' {
            return Err(ReadError::Reject(400, "obsolete header line folding"));
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return Err(ReadError::Reject(400, "malformed header field"));
        };
        // RFC 9112 §5.1: "No whitespace is allowed between the field name
        // and colon. [...] A server MUST reject, with a response status code
        // of 400 (Bad Request), any received request message that contains
        // whitespace between a header field name and colon."
        let name = &line[..colon];
        if !is_token(name) {
            return Err(ReadError::Reject(400, "malformed header field name"));
        }
        let value = line[colon + 1..].trim_ascii();
        if value.iter().any(|&b| b == 0 || b == b'\r' || b == b'\n') {
            return Err(ReadError::Reject(400, "malformed header field value"));
        }
        headers.push((
            String::from_utf8_lossy(name).to_ascii_lowercase(),
            String::from_utf8_lossy(value).into_owned(),
        ));
    }
    let body = framing(&headers)?;
    // RFC 9112 §6.1: "A server or client that receives an HTTP/1.0 message
    // containing a Transfer-Encoding header field MUST treat the message as
    // if the framing is faulty, even if a Content-Length is present, and
    // close the connection after processing the message."
    if version == Version::Http10 && body == BodyFraming::Chunked {
        return Err(ReadError::Reject(
            400,
            "Transfer-Encoding in an HTTP/1.0 request",
        ));
    }
    let has = |name: &str, token: &str| {
        headers
            .iter()
            .any(|(n, v)| n == name && v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    };
    let close = match version {
        Version::Http11 => has("connection", "close"),
        Version::Http10 => true,
    };
    let expect_continue = version == Version::Http11 && has("expect", "100-continue");
    Ok(Head {
        method,
        target,
        version,
        headers,
        body,
        expect_continue,
        close,
    })
}

/// `method SP request-target SP HTTP-version` (RFC 9112 §3).
fn parse_request_line(
    line: &[u8],
    limits: &Limits,
) -> Result<(String, String, Version), ReadError> {
    let bad = ReadError::Reject(400, "malformed request line");
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad);
    };
    if !is_token(method) {
        return Err(bad);
    }
    let version = match version {
        b"HTTP/1.1" => Version::Http11,
        b"HTTP/1.0" => Version::Http10,
        v if v.starts_with(b"HTTP/") && v.len() == 8 => {
            return Err(ReadError::Reject(505, "HTTP version not supported"))
        }
        _ => return Err(bad),
    };
    if target.len() > limits.max_target {
        return Err(ReadError::Reject(414, "request target too long"));
    }
    // RFC 9112 §3.2.2: "a server MUST accept the absolute-form in requests"
    // — keep its path and query.
    let target = match target
        .strip_prefix(b"http://")
        .or_else(|| target.strip_prefix(b"https://"))
    {
        Some(rest) => match rest.iter().position(|&b| b == b'/' || b == b'?') {
            Some(i) if rest[i] == b'/' => rest[i..].to_vec(),
            Some(i) => [b"/", &rest[i..]].concat(),
            None => b"/".to_vec(),
        },
        None => target.to_vec(),
    };
    // Visible ASCII only (RFC 3986); anything else is percent-encoded.
    if !target.starts_with(b"/") || !target.iter().all(u8::is_ascii_graphic) {
        return Err(bad);
    }
    let method = String::from_utf8_lossy(method).into_owned();
    let target = String::from_utf8_lossy(&target).into_owned();
    Ok((method, target, version))
}

/// The body's framing, from `Content-Length` and `Transfer-Encoding`.
fn framing(headers: &[(String, String)]) -> Result<BodyFraming, ReadError> {
    let te: Vec<&str> = headers
        .iter()
        .filter(|(n, _)| n == "transfer-encoding")
        .flat_map(|(_, v)| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    let mut lengths = headers
        .iter()
        .filter(|(n, _)| n == "content-length")
        .flat_map(|(_, v)| v.split(','))
        .map(str::trim);
    if !te.is_empty() {
        // RFC 9112 §6.1: "A server MAY reject a request that contains both
        // Content-Length and Transfer-Encoding or process such a request in
        // accordance with the Transfer-Encoding alone." Both at once is a
        // request-smuggling pattern: reject.
        if lengths.next().is_some() {
            return Err(ReadError::Reject(
                400,
                "both Content-Length and Transfer-Encoding",
            ));
        }
        // RFC 9112 §6.1: "A server that receives a request message with a
        // transfer coding it does not understand SHOULD respond with 501
        // (Not Implemented)."
        return if te.len() == 1 && te[0].eq_ignore_ascii_case("chunked") {
            Ok(BodyFraming::Chunked)
        } else {
            Err(ReadError::Reject(501, "unsupported transfer coding"))
        };
    }
    // RFC 9112 §6.3: "If a message is received without Transfer-Encoding and
    // with an invalid Content-Length header field, then the message framing
    // is invalid and the recipient MUST treat it as an unrecoverable error,
    // unless the field value can be successfully parsed as a comma-separated
    // list (Section 5.6.1 of [HTTP]), all values in the list are valid, and
    // all values in the list are identical. [...] the server MUST respond
    // with a 400 (Bad Request) status code and then close the connection."
    let mut length = None;
    for v in lengths {
        let n = (!v.is_empty() && v.len() <= 19 && v.bytes().all(|b| b.is_ascii_digit()))
            .then(|| v.parse::<u64>().ok())
            .flatten()
            .ok_or(ReadError::Reject(400, "invalid Content-Length"))?;
        if length.is_some_and(|l| l != n) {
            return Err(ReadError::Reject(400, "conflicting Content-Length values"));
        }
        length = Some(n);
    }
    Ok(BodyFraming::Length(length.unwrap_or(0)))
}

/// Reads a body of `framing`, refusing more than `limits.max_body` bytes
/// (413) without reading past the limit: a `Content-Length` over it is
/// refused before any byte is read; a chunked body is read to at most one
/// byte over it.
///
/// # Errors
/// [`ReadError::Reject`] with 413 or 400 (bad chunk framing); I/O errors.
pub(crate) fn read_body<R: BufRead>(
    r: &mut R,
    framing: BodyFraming,
    limits: &Limits,
) -> Result<Vec<u8>, ReadError> {
    let too_large = ReadError::Reject(413, "request body too large");
    match framing {
        BodyFraming::Length(n) => {
            let n = usize::try_from(n).map_err(|_| too_large)?;
            if n > limits.max_body {
                return Err(ReadError::Reject(413, "request body too large"));
            }
            // Grown as bytes arrive: a client's Content-Length alone does
            // not reserve memory.
            let mut body = Vec::with_capacity(n.min(64 * 1024));
            r.by_ref().take(n as u64).read_to_end(&mut body)?;
            if body.len() < n {
                return Err(ReadError::Closed);
            }
            Ok(body)
        }
        BodyFraming::Chunked => read_chunked(r, limits.max_body),
    }
}

/// RFC 9112 §7.1:
///
/// ```text
/// chunked-body   = *chunk
///                  last-chunk
///                  trailer-section
///                  CRLF
/// chunk          = chunk-size [ chunk-ext ] CRLF
///                  chunk-data CRLF
/// chunk-size     = 1*HEXDIG
/// last-chunk     = 1*("0") [ chunk-ext ] CRLF
/// ```
fn read_chunked<R: BufRead>(r: &mut R, max: usize) -> Result<Vec<u8>, ReadError> {
    let bad = || ReadError::Reject(400, "malformed chunked body");
    let mut body = Vec::new();
    let mut line = Vec::new();
    loop {
        match read_line(r, 1024, &mut line)? {
            Line::Done => {}
            Line::Eof => return Err(ReadError::Closed),
            Line::TooLong => return Err(bad()),
        }
        let size_text = line
            .split(|&b| b == b';')
            .next()
            .unwrap_or_default()
            .trim_ascii();
        if size_text.is_empty()
            || size_text.len() > 16
            || !size_text.iter().all(u8::is_ascii_hexdigit)
        {
            return Err(bad());
        }
        let size =
            u64::from_str_radix(&String::from_utf8_lossy(size_text), 16).map_err(|_| bad())?;
        if size == 0 {
            break;
        }
        let room = max.saturating_add(1).saturating_sub(body.len()) as u64;
        let got = r.by_ref().take(size.min(room)).read_to_end(&mut body)?;
        if body.len() > max {
            return Err(ReadError::Reject(413, "request body too large"));
        }
        if (got as u64) < size {
            return Err(ReadError::Closed);
        }
        match read_line(r, 1, &mut line)? {
            Line::Done if line.is_empty() => {}
            Line::Eof => return Err(ReadError::Closed),
            Line::Done | Line::TooLong => return Err(bad()),
        }
    }
    // Trailer fields are read and dropped (RFC 9112 §7.1.2 allows it).
    let mut trailer_bytes = 0;
    loop {
        match read_line(r, 1024, &mut line)? {
            Line::Done if line.is_empty() => return Ok(body),
            Line::Done if trailer_bytes < 8192 => trailer_bytes += line.len(),
            Line::Eof => return Err(ReadError::Closed),
            Line::Done | Line::TooLong => return Err(bad()),
        }
    }
}

/// The reason phrase of the statuses this server sends.
pub(crate) fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        507 => "Insufficient Storage",
        _ => "Unknown",
    }
}

/// Writes a status line, the header fields, `Content-Length`, and (unless
/// `head_only`, for HEAD requests) the body.
///
/// # Errors
/// I/O errors of `w`.
pub(crate) fn write_response<W: Write>(
    w: &mut W,
    status: u16,
    headers: &[(&str, String)],
    body: &[u8],
    head_only: bool,
) -> io::Result<()> {
    let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (n, v) in headers {
        head.push_str(n);
        head.push_str(": ");
        head.push_str(v);
        head.push_str("\r\n");
    }
    // RFC 9110 §8.6: "A server MUST NOT send a Content-Length header field
    // in any response with a status code of 1xx (Informational) or 204 (No
    // Content)."
    if status != 204 {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    w.write_all(head.as_bytes())?;
    if !head_only && status != 204 {
        w.write_all(body)?;
    }
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_target: 64,
        max_header_bytes: 256,
        max_headers: 8,
        max_body: 16,
    };

    fn head(text: &str) -> Result<Head, ReadError> {
        read_head(&mut text.as_bytes(), &LIMITS)
    }

    fn status(text: &str) -> Option<u16> {
        head(text).err().and_then(|e| e.status()).map(|s| s.0)
    }

    #[test]
    fn reads_a_request() {
        let h =
            head("\r\nGET /api/v1/summary?from=-1h HTTP/1.1\r\nHost: x\r\nX-A:  b c \r\n\r\nrest")
                .unwrap();
        assert_eq!(h.method, "GET");
        assert_eq!(h.target, "/api/v1/summary?from=-1h");
        assert_eq!(h.version, Version::Http11);
        assert_eq!(h.header("x-a"), Some("b c"));
        assert_eq!(h.body, BodyFraming::Length(0));
        assert!(!h.close && !h.expect_continue);
        let h = head("POST / HTTP/1.0\nContent-Length: 5\nExpect: 100-continue\n\n").unwrap();
        assert!(h.close, "HTTP/1.0 closes");
        assert!(!h.expect_continue, "no 100 Continue for HTTP/1.0");
        assert_eq!(h.body, BodyFraming::Length(5));
        let h = head("GET http://example.org:8080/healthz?x HTTP/1.1\r\nConnection: keep-alive, Close\r\n\r\n")
            .unwrap();
        assert_eq!(h.target, "/healthz?x");
        assert!(h.close);
    }

    #[test]
    fn rejects_bad_requests() {
        assert!(matches!(head(""), Err(ReadError::Closed)));
        assert!(matches!(
            head("GET / HTTP/1.1\r\nHost"),
            Err(ReadError::Closed)
        ));
        assert_eq!(status("GET / HTTP/1.1 x\r\n\r\n"), Some(400));
        assert_eq!(status("GET  / HTTP/1.1\r\n\r\n"), Some(400));
        assert_eq!(status("G(T / HTTP/1.1\r\n\r\n"), Some(400));
        assert_eq!(status("GET relative HTTP/1.1\r\n\r\n"), Some(400));
        assert_eq!(status("GET / HTTP/2.0\r\n\r\n"), Some(505));
        assert_eq!(status("GET / FTP/1.0\r\n\r\n"), Some(400));
        let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(64));
        assert_eq!(status(&long), Some(414));
        let longer = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(1000));
        assert_eq!(status(&longer), Some(414));
        assert_eq!(status("GET / HTTP/1.1\r\nHost : x\r\n\r\n"), Some(400));
        assert_eq!(status("GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n"), Some(400));
        assert_eq!(status("GET / HTTP/1.1\r\nnocolon\r\n\r\n"), Some(400));
        let big = format!("GET / HTTP/1.1\r\nA: {}\r\n\r\n", "b".repeat(300));
        assert_eq!(status(&big), Some(431));
        let many = format!("GET / HTTP/1.1\r\n{}\r\n", "A: b\r\n".repeat(9));
        assert_eq!(status(&many), Some(431));
    }

    #[test]
    fn body_framing() {
        let s = |t: &str| status(&format!("POST / HTTP/1.1\r\n{t}\r\n"));
        assert_eq!(s("Content-Length: -1\r\n"), Some(400));
        assert_eq!(s("Content-Length: 1e3\r\n"), Some(400));
        assert_eq!(s("Content-Length: 99999999999999999999\r\n"), Some(400));
        assert_eq!(s("Content-Length: 3\r\nContent-Length: 4\r\n"), Some(400));
        assert_eq!(s("Content-Length: 3, 4\r\n"), Some(400));
        assert_eq!(s("Transfer-Encoding: gzip\r\n"), Some(501));
        assert_eq!(
            status("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Some(400)
        );
        assert_eq!(s("Transfer-Encoding: gzip, chunked\r\n"), Some(501));
        assert_eq!(
            s("Transfer-Encoding: chunked\r\nContent-Length: 3\r\n"),
            Some(400)
        );
        let h = head("POST / HTTP/1.1\r\nContent-Length: 3, 3\r\n\r\n").unwrap();
        assert_eq!(h.body, BodyFraming::Length(3));
    }

    fn body(framing: BodyFraming, input: &str) -> Result<Vec<u8>, ReadError> {
        read_body(&mut input.as_bytes(), framing, &LIMITS)
    }

    #[test]
    fn reads_bodies_within_limits() {
        assert_eq!(body(BodyFraming::Length(3), "abcdef").unwrap(), b"abc");
        assert!(matches!(
            body(BodyFraming::Length(3), "ab"),
            Err(ReadError::Closed)
        ));
        let huge = body(BodyFraming::Length(u64::MAX), "");
        assert_eq!(huge.err().and_then(|e| e.status()).map(|s| s.0), Some(413));
        let over = body(BodyFraming::Length(17), "");
        assert_eq!(over.err().and_then(|e| e.status()).map(|s| s.0), Some(413));
        let chunked = body(
            BodyFraming::Chunked,
            "3;x=y\r\nabc\r\n1\r\nd\r\n0\r\nT: v\r\n\r\n",
        );
        assert_eq!(chunked.unwrap(), b"abcd");
        let big = body(
            BodyFraming::Chunked,
            "ffffffffffffffff\r\naaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        );
        assert_eq!(big.err().and_then(|e| e.status()).map(|s| s.0), Some(413));
        for bad in [
            "x\r\n",
            "3\r\nabcX\r\n0\r\n\r\n",
            "\r\n",
            "12345678901234567\r\n",
        ] {
            let r = body(BodyFraming::Chunked, bad);
            assert_eq!(
                r.err().and_then(|e| e.status()).map(|s| s.0),
                Some(400),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn any_body_limit_is_safe() {
        // Configuration validates the limit; this code must not depend on it.
        let unbounded = Limits {
            max_body: usize::MAX,
            ..LIMITS
        };
        let read = |framing, input: &str| read_body(&mut input.as_bytes(), framing, &unbounded);
        let chunked = read(BodyFraming::Chunked, "3\r\nabc\r\n0\r\n\r\n");
        assert_eq!(chunked.unwrap(), b"abc", "no overflow in max + 1");
        // A declared length reserves no more than a little memory up front.
        let short = read(BodyFraming::Length(1 << 50), "abc");
        assert!(matches!(short, Err(ReadError::Closed)));
    }

    #[test]
    fn writes_responses() {
        let mut out = Vec::new();
        write_response(
            &mut out,
            404,
            &[("Content-Type", "text/plain".into())],
            b"no",
            false,
        )
        .unwrap();
        assert_eq!(
            out,
            b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nno"
        );
        let mut out = Vec::new();
        write_response(&mut out, 200, &[], b"body", true).unwrap();
        assert_eq!(out, b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n");
    }
}
