//! The filter language end to end: every term against hand-built flows,
//! precedence, IPv6, error columns, canonical text, hostile input, and
//! counts over the flows of a real capture checked against the same
//! questions asked of its ground-truth CSV directly.

// The counting allocator's one `unsafe impl` (as in netflow9's alloc test).
#![allow(unsafe_code)]

use std::net::{IpAddr, Ipv4Addr};

use flowstore::cidr::Cidr;
use flowstore::filter::{Cmp, Dir, Expr, Filter, FilterError, IfDir, Predicate};
use netflow9::Flow;
use proptest::prelude::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn parse(text: &str) -> Filter {
    Filter::parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

/// An IPv4 TCP flow with every field set to something distinct.
fn tcp4() -> Flow {
    Flow {
        exporter: ip("198.51.100.1"),
        src_addr: ip("10.0.0.1"),
        dst_addr: ip("192.0.2.80"),
        src_port: 40000,
        dst_port: 80,
        protocol: 6,
        tcp_flags: 0x12, // SYN ACK
        input_if: 3,
        output_if: 7,
        src_as: 64512,
        dst_as: 65001,
        bytes: 1500,
        packets: 3,
        ..Flow::default()
    }
}

/// An IPv6 UDP flow.
fn udp6() -> Flow {
    Flow {
        exporter: ip("2001:db8::ff"),
        src_addr: ip("2001:db8::1"),
        dst_addr: ip("2001:db8:1::53"),
        src_port: 53000,
        dst_port: 53,
        protocol: 17,
        tcp_flags: 0x12, // nonsense for UDP: `flags` must ignore it
        input_if: 7,
        output_if: 3,
        src_as: 65001,
        dst_as: 64512,
        bytes: 80_000_000,
        packets: 1_000_000,
        ..Flow::default()
    }
}

/// `tcp4` with its addresses (and exporter) IPv4-mapped IPv6.
fn mapped() -> Flow {
    Flow {
        exporter: ip("::ffff:198.51.100.1"),
        src_addr: ip("::ffff:10.0.0.1"),
        dst_addr: ip("::ffff:192.0.2.80"),
        ..tcp4()
    }
}

#[test]
fn every_term() {
    // filter, matches [tcp4, udp6, mapped]
    let table: &[(&str, [bool; 3])] = &[
        ("", [true, true, true]),
        ("any", [true, true, true]),
        // host / ip
        ("host 10.0.0.1", [true, false, true]),
        ("host 192.0.2.80", [true, false, true]),
        ("src host 10.0.0.1", [true, false, true]),
        ("dst host 10.0.0.1", [false, false, false]),
        ("ip 192.0.2.80", [true, false, true]),
        ("dst ip 192.0.2.80", [true, false, true]),
        ("host ::ffff:10.0.0.1", [true, false, true]),
        ("host 2001:db8::1", [false, true, false]),
        ("src host 2001:db8::1", [false, true, false]),
        ("dst host 2001:db8::1", [false, false, false]),
        ("host 10.0.0.2", [false, false, false]),
        // net
        ("net 10.0.0.0/8", [true, false, true]),
        ("src net 10.0.0.0/8", [true, false, true]),
        ("dst net 10.0.0.0/8", [false, false, false]),
        ("dst net 192.0.2.0/24", [true, false, true]),
        ("net 192.0.2.0 mask 255.255.255.0", [true, false, true]),
        ("net 172.16/12", [false, false, false]),
        ("net 0.0.0.0/0", [true, false, true]),
        ("net 2001:db8::/32", [false, true, false]),
        ("dst net 2001:db8:1::/48", [false, true, false]),
        ("src net 2001:db8:1::/48", [false, false, false]),
        ("net ::/0", [false, true, false]),
        ("net ::ffff:10.0.0.0/104", [true, false, true]),
        // port
        ("port 80", [true, false, true]),
        ("src port 80", [false, false, false]),
        ("dst port 80", [true, false, true]),
        ("port 53", [false, true, false]),
        ("port != 80", [true, true, true]),
        ("dst port != 80", [false, true, false]),
        ("port > 50000", [false, true, false]),
        ("port >= 40000", [true, true, true]),
        ("src port < 40000", [false, false, false]),
        ("src port <= 40000", [true, false, true]),
        ("dst port gt 52", [true, true, true]),
        ("dst port lt 53", [false, false, false]),
        ("port = 53", [false, true, false]),
        ("port == 53", [false, true, false]),
        ("port in [22 80 443]", [true, false, true]),
        ("dst port in [53, 5353]", [false, true, false]),
        ("src port in [53]", [false, false, false]),
        // proto
        ("proto tcp", [true, false, true]),
        ("proto 6", [true, false, true]),
        ("tcp", [true, false, true]),
        ("udp", [false, true, false]),
        ("proto udp", [false, true, false]),
        ("proto 17", [false, true, false]),
        ("icmp", [false, false, false]),
        ("proto icmp6", [false, false, false]),
        ("proto 255", [false, false, false]),
        // as
        ("as 64512", [true, true, true]),
        ("src as 64512", [true, false, true]),
        ("dst as 64512", [false, true, false]),
        ("as 1", [false, false, false]),
        // interfaces
        ("if 3", [true, true, true]),
        ("in if 3", [true, false, true]),
        ("out if 3", [false, true, false]),
        ("src if 7", [false, true, false]),
        ("dst if 7", [true, false, true]),
        ("if 4", [false, false, false]),
        // counters
        ("bytes 1500", [true, false, true]),
        ("bytes > 1k", [true, true, true]),
        ("bytes > 1500", [false, true, false]),
        ("bytes >= 80m", [false, true, false]),
        ("bytes < 1g", [true, true, true]),
        ("bytes != 1500", [false, true, false]),
        ("packets 3", [true, false, true]),
        ("packets > 1m", [false, false, false]),
        ("packets >= 1M", [false, true, false]),
        ("packets <= 3", [true, false, true]),
        // flags: TCP only, all letters set
        ("flags S", [true, false, true]),
        ("flags SA", [true, false, true]),
        ("flags sa", [true, false, true]),
        ("flags A", [true, false, true]),
        ("flags SAF", [false, false, false]),
        ("flags R", [false, false, false]),
        ("flags C", [false, false, false]),
        // exporter
        ("exporter 198.51.100.1", [true, false, true]),
        ("exporter ::ffff:198.51.100.1", [true, false, true]),
        ("exporter 2001:db8::ff", [false, true, false]),
        ("exporter 10.0.0.1", [false, false, false]),
        // IP version (a flow carried in IPv6 is IPv6, mapped or not)
        ("inet", [true, false, true]),
        ("ipv4", [true, false, true]),
        ("inet6", [false, true, false]),
        ("ipv6", [false, true, false]),
        // operators
        ("not tcp", [false, true, false]),
        ("! tcp", [false, true, false]),
        ("!tcp", [false, true, false]),
        ("tcp and port 80", [true, false, true]),
        ("tcp && port 53", [false, false, false]),
        ("tcp or port 53", [true, true, true]),
        ("udp || inet", [true, true, true]),
        ("not any", [false, false, false]),
        ("not (tcp or udp)", [false, false, false]),
        (
            "src net 10.0.0.0/8 and (dst port 80 or dst port 443)",
            [true, false, true],
        ),
        (
            "inet6 and not src net 2001:db8:1::/48",
            [false, true, false],
        ),
    ];
    let flows = [tcp4(), udp6(), mapped()];
    for &(text, expected) in table {
        let f = parse(text);
        for (flow, want) in flows.iter().zip(expected) {
            assert_eq!(f.matches(flow), want, "{text:?} on {flow:?}");
            assert_eq!(f.expr().matches(flow), want, "{text:?} tree on {flow:?}");
            let again = parse(&f.to_string());
            assert_eq!(again, f, "{text:?} -> {f}");
            assert_eq!(again.matches(flow), want);
        }
    }
}

fn pred(p: Predicate) -> Expr {
    Expr::Pred(p)
}

fn port(n: u16) -> Expr {
    pred(Predicate::Port(Dir::Either, Cmp::Eq, n))
}

fn and(a: Expr, b: Expr) -> Expr {
    Expr::And(Box::new(a), Box::new(b))
}

fn or(a: Expr, b: Expr) -> Expr {
    Expr::Or(Box::new(a), Box::new(b))
}

fn not(a: Expr) -> Expr {
    Expr::Not(Box::new(a))
}

#[test]
fn structure_and_precedence() {
    let table = [
        ("port 1", port(1)),
        (
            "port 1 or port 2 and port 3",
            or(port(1), and(port(2), port(3))),
        ),
        (
            "port 1 and port 2 or port 3",
            or(and(port(1), port(2)), port(3)),
        ),
        (
            "(port 1 or port 2) and port 3",
            and(or(port(1), port(2)), port(3)),
        ),
        ("not port 1 and port 2", and(not(port(1)), port(2))),
        ("not (port 1 and port 2)", not(and(port(1), port(2)))),
        ("not not port 1", not(not(port(1)))),
        ("!!port 1", not(not(port(1)))),
        (
            "port 1 or port 2 or port 3",
            or(or(port(1), port(2)), port(3)),
        ),
        (
            "port 1 or (port 2 or port 3)",
            or(port(1), or(port(2), port(3))),
        ),
        (
            "port 1 and port 2 and port 3",
            and(and(port(1), port(2)), port(3)),
        ),
        ("((((port 1))))", port(1)),
        ("port in [1 2 3]", or(or(port(1), port(2)), port(3))),
        ("any and port 1", and(Expr::All, port(1))),
        (
            "NOT Src Host 10.0.0.1 AND dst NET 10.0.0.0/8 OR Exporter ::1",
            or(
                and(
                    not(pred(Predicate::Host(Dir::Src, ip("10.0.0.1")))),
                    pred(Predicate::Net(Dir::Dst, "10.0.0.0/8".parse().unwrap())),
                ),
                pred(Predicate::Exporter(ip("::1"))),
            ),
        ),
        ("src if 5", pred(Predicate::Interface(IfDir::In, 5))),
        ("bytes >= 2k", pred(Predicate::Bytes(Cmp::Ge, 2000))),
        ("packets ne 0", pred(Predicate::Packets(Cmp::Ne, 0))),
        ("flags UAPRSFEC", pred(Predicate::Flags(0xff))),
        ("proto 0", pred(Predicate::Proto(0))),
        ("as 4294967295", pred(Predicate::As(Dir::Either, u32::MAX))),
        (
            "host ::ffff:1.2.3.4",
            pred(Predicate::Host(Dir::Either, ip("1.2.3.4"))),
        ),
        ("inet6", pred(Predicate::IpVersion(6))),
        // whitespace of any kind, or none next to punctuation
        ("\t(port 1)&&(port 2)\n", and(port(1), port(2))),
        ("port\u{3000}1", port(1)),
    ];
    for (text, expr) in table {
        assert_eq!(parse(text).expr(), &expr, "{text:?}");
    }
}

#[test]
fn canonical_text() {
    for (text, canonical) in [
        ("", "any"),
        ("   ", "any"),
        ("HOST 10.0.0.1", "host 10.0.0.1"),
        ("src ip 10.0.0.1", "src host 10.0.0.1"),
        ("host ::ffff:10.0.0.1", "host 10.0.0.1"),
        ("host 2001:DB8:0::1", "host 2001:db8::1"),
        ("net 10.1.2.3/8", "net 10.0.0.0/8"),
        ("net 172.16/12", "net 172.16.0.0/12"),
        ("net 10.0.0.7", "net 10.0.0.7/32"),
        ("dst net 10.0.0.0 mask 255.255.0.0", "dst net 10.0.0.0/16"),
        ("net 2001:db8::/32", "net 2001:db8::/32"),
        ("port eq 80", "port 80"),
        ("port==80", "port 80"),
        ("port>=1024", "port >= 1024"),
        ("dst port in [80, 443 8080]", "dst port in [80 443 8080]"),
        ("port 1 or port 2", "port in [1 2]"),
        ("port 1 or port 1", "port in [1 1]"),
        (
            "src port 1 or src port 2 or dst port 3 or port 4",
            "src port in [1 2] or dst port 3 or port 4",
        ),
        ("port 1 or (port 2 or port 3)", "port 1 or port in [2 3]"),
        ("port 1 or port 2 and port 3", "port 1 or port 2 and port 3"),
        ("port != 1 or port 2", "port != 1 or port 2"),
        ("tcp and (port 1 or port 2)", "proto tcp and port in [1 2]"),
        ("not (dst port 1 or dst port 2)", "not dst port in [1 2]"),
        ("TCP", "proto tcp"),
        ("proto 6", "proto tcp"),
        ("proto 41", "proto 41"),
        ("proto ipv6-icmp", "proto icmp6"),
        ("src as 65000", "src as 65000"),
        ("src if 3", "in if 3"),
        ("OUT IF 3", "out if 3"),
        ("bytes>1k", "bytes > 1000"),
        ("packets lt 2m", "packets < 2000000"),
        ("flags sa", "flags AS"),
        ("flags FSRPAUEC", "flags CEUAPRSF"),
        ("exporter 2001:DB8::1", "exporter 2001:db8::1"),
        ("ipv4", "inet"),
        ("ipv6", "inet6"),
        (
            "!port 80 && (tcp||udp)",
            "not port 80 and (proto tcp or proto udp)",
        ),
        ("(as 1 or as 2) or as 3", "as 1 or as 2 or as 3"),
        ("as 1 or (as 2 or as 3)", "as 1 or (as 2 or as 3)"),
        (
            "port 1 or (port 2 and port 3)",
            "port 1 or port 2 and port 3",
        ),
        (
            "(port 1 and port 2) and port 3",
            "port 1 and port 2 and port 3",
        ),
        (
            "port 1 and (port 2 and port 3)",
            "port 1 and (port 2 and port 3)",
        ),
        ("not (port 1)", "not port 1"),
        ("not (not port 1 or any)", "not (not port 1 or any)"),
        ("(((any)))", "any"),
    ] {
        let f = parse(text);
        assert_eq!(f.to_string(), canonical, "{text:?}");
        assert_eq!(parse(canonical), f, "{canonical:?} re-parses");
        assert_eq!(text.parse::<Filter>().as_ref(), Ok(&f), "FromStr");
    }
}

/// `(text, column, expected, found)`.
fn error(text: &str) -> (usize, String, String) {
    let FilterError {
        column,
        expected,
        found,
    } = Filter::parse(text).expect_err(text);
    (column, expected, found)
}

#[test]
fn errors_say_what_and_where() {
    const TERM: &str = "a filter term (host, net, port, proto, as, if, bytes, packets, flags, \
                        exporter, inet, inet6, any, not or \"(\")";
    let table: &[(&str, usize, &str, &str)] = &[
        ("src hots 10.0.0.1", 5, "host, net, port, as or if", "hots"),
        ("dst", 4, "host, net, port, as or if", "end of input"),
        ("src (host 1.2.3.4)", 5, "host, net, port, as or if", "("),
        ("port 99999", 6, "a port number 0-65535", "99999"),
        ("port -1", 6, "a port number 0-65535", "-1"),
        ("port > x", 8, "a port number 0-65535", "x"),
        ("port", 5, "a port number 0-65535", "end of input"),
        ("(host 10.0.0.1", 15, ")", "end of input"),
        ("((host 10.0.0.1) or port 1", 27, ")", "end of input"),
        ("(host 10.0.0.1 port 80)", 16, ")", "port"),
        ("host", 5, "an IPv4 or IPv6 address", "end of input"),
        ("host 10.0.0.256", 6, "an IPv4 or IPv6 address", "10.0.0.256"),
        ("host 10.0.0.0/8", 6, "an IPv4 or IPv6 address", "10.0.0.0/8"),
        ("exporter x", 10, "an IPv4 or IPv6 address", "x"),
        ("net", 4, "a network like 10.0.0.0/8 or 2001:db8::/32", "end of input"),
        ("net 10.0.0", 5, "a network like 10.0.0.0/8 or 2001:db8::/32", "10.0.0"),
        ("net 10.0.0.0/33", 14, "a prefix length 0-32", "33"),
        ("net 2001:db8::/129", 16, "a prefix length 0-128", "129"),
        (
            "net 10.0.0.0 mask 255.0.255.0",
            19,
            "a contiguous IPv4 netmask like 255.255.0.0",
            "255.0.255.0",
        ),
        ("net 10.0.0.0 mask", 18, "a contiguous IPv4 netmask like 255.255.0.0", "end of input"),
        ("net 10.0.0.0/8 mask 255.0.0.0", 16, "and, or or end of input", "mask"),
        ("proto foo", 7, "a protocol name (tcp, udp, icmp, icmp6, gre, esp, ah, sctp, igmp, ospf, pim) or number 0-255", "foo"),
        ("proto 256", 7, "a protocol name (tcp, udp, icmp, icmp6, gre, esp, ah, sctp, igmp, ospf, pim) or number 0-255", "256"),
        ("as 4294967296", 4, "an AS number 0-4294967295", "4294967296"),
        ("if eth0", 4, "an interface index 0-4294967295", "eth0"),
        ("in 3", 4, "if", "3"),
        ("bytes > lots", 9, "a number like 1500, 10k, 2m or 1g", "lots"),
        ("bytes 1kb", 7, "a number like 1500, 10k, 2m or 1g", "1kb"),
        ("bytes 99999999999g", 7, "a number up to 18446744073709551615", "99999999999g"),
        ("flags SAX", 9, "TCP flag letters (C, E, U, A, P, R, S, F)", "X"),
        ("flags", 6, "TCP flag letters (C, E, U, A, P, R, S, F)", "end of input"),
        ("host 10.0.0.1 port 80", 15, "and, or or end of input", "port"),
        ("host 10.0.0.1)", 14, "and, or or end of input", ")"),
        ("host 10.0.0.1 and", 18, TERM, "end of input"),
        ("and port 1", 1, TERM, "and"),
        (")", 1, TERM, ")"),
        ("()", 2, TERM, ")"),
        ("not", 4, TERM, "end of input"),
        ("hots 10.0.0.1", 1, TERM, "hots"),
        ("port 1 or or port 2", 11, TERM, "or"),
        ("port in [80 x]", 13, "a port number 0-65535 or ]", "x"),
        ("port in [80", 12, "a port number 0-65535 or ]", "end of input"),
        ("port in []", 10, "a port number 0-65535", "]"),
        ("port in 80", 9, "[", "80"),
        ("port = = 80", 8, "a port number 0-65535", "="),
        // columns count characters, not bytes
        ("\u{3000}\u{3000}hots", 3, TERM, "hots"),
        ("host ä", 6, "an IPv4 or IPv6 address", "ä"),
    ];
    for &(text, column, expected, found) in table {
        assert_eq!(
            error(text),
            (column, expected.to_owned(), found.to_owned()),
            "{text:?}"
        );
    }
    assert_eq!(
        Filter::parse("(host 10.0.0.1").unwrap_err().to_string(),
        "filter: expected ) at column 15, found \"end of input\""
    );
}

#[test]
fn hostile_input_is_bounded() {
    // Too long: rejected before parsing, at the first byte past the limit.
    for text in [
        "(".repeat(100_000),
        "not ".repeat(100_000),
        "a".repeat(4097),
    ] {
        let (column, expected, found) = error(&text);
        assert_eq!(column, 4097);
        assert_eq!(expected, "a filter of at most 4096 bytes");
        assert_eq!(found, format!("{} bytes", text.len()));
    }
    // The column of a cut in the middle of a character is that character's.
    let text = format!("{}{}", "a".repeat(4095), "ä");
    assert_eq!(error(&text).0, 4096);

    // Nesting: 64 levels are fine, the 65th is refused where it opens.
    let depth = "at most 64 nested parentheses and negations";
    let ok = format!("{}port 1{}", "(".repeat(64), ")".repeat(64));
    assert_eq!(parse(&ok).expr(), &port(1));
    let deep = format!("{}port 1{}", "(".repeat(65), ")".repeat(65));
    assert_eq!(error(&deep), (65, depth.to_owned(), "(".to_owned()));
    assert!(Filter::parse(&format!("{}port 1", "not ".repeat(64))).is_ok());
    let deep = format!("{}port 1", "not ".repeat(65));
    assert_eq!(error(&deep), (257, depth.to_owned(), "not".to_owned()));
    let deep = format!("{}port 1", "!".repeat(65));
    assert_eq!(error(&deep), (65, depth.to_owned(), "!".to_owned()));
    let mixed = format!("{}port 1{}", "(not ".repeat(33), ")".repeat(33));
    assert_eq!(error(&mixed).0, 5 * 32 + 1);

    // The widest expressions that fit: long `or` chains and port lists are
    // deep trees; building, printing, analysing, matching and dropping them
    // must not exhaust a test thread's stack.
    let chain = "port 1 || ".repeat(408) + "port 2";
    let list = format!("port in [{}]", "1 ".repeat(2043));
    let nots = format!("{}port 1", "!(".repeat(32)) + &")".repeat(32);
    for text in [chain, list, nots] {
        assert!(text.len() <= 4096, "{}", text.len());
        let f = parse(&text);
        let shown = f.to_string();
        assert_eq!(parse(&shown), f);
        assert!(f.required_ports().is_some());
        let flow = Flow {
            src_port: 1,
            ..Flow::default()
        };
        assert_eq!(f.matches(&flow), f.expr().matches(&flow));
    }
}

#[test]
fn block_skipping_hints() {
    let c = |s: &str| -> Cidr { s.parse().unwrap() };
    for (text, addrs, ports) in [
        ("", None, None),
        ("host 10.0.0.1", Some(vec![c("10.0.0.1/32")]), None),
        (
            "src host ::ffff:10.0.0.1",
            Some(vec![c("10.0.0.1/32")]),
            None,
        ),
        (
            "dst net 2001:db8::/32 and port 53",
            Some(vec![c("2001:db8::/32")]),
            Some(vec![53]),
        ),
        (
            "(host 10.0.0.2 or net 192.0.2.0/24 or host 10.0.0.2) and tcp",
            Some(vec![c("10.0.0.2/32"), c("192.0.2.0/24")]),
            None,
        ),
        ("host 10.0.0.1 or port 80", None, None),
        ("not host 10.0.0.1", None, None),
        (
            "not (not host 10.0.0.1 or not port 22)",
            Some(vec![c("10.0.0.1/32")]),
            Some(vec![22]),
        ),
        ("not port != 22", None, Some(vec![22])),
        ("port in [443 80 443]", None, Some(vec![80, 443])),
        ("port > 1024", None, None),
        ("not any", Some(vec![]), Some(vec![])),
        ("any", None, None),
        ("exporter 10.0.0.1", None, None),
        ("port 1 and port in [2 3]", None, Some(vec![1])),
    ] {
        let f = parse(text);
        assert_eq!(f.required_addrs(), addrs, "{text:?} addrs");
        assert_eq!(f.required_ports(), ports, "{text:?} ports");
    }
    assert!(parse("").is_all());
    assert!(parse("any or tcp").is_all());
    assert!(!parse("tcp").is_all());
    assert!(Filter::default().is_all());
    assert_eq!(Filter::default(), parse(""));
    assert_eq!(Filter::all(), parse(""));
    assert!(Filter::all().is_all());
}

/// One row of the ground-truth CSV, as the test reads it (not through the
/// library).
struct Row {
    version: u8,
    protocol: u8,
    src: IpAddr,
    dst: IpAddr,
    src_port: u16,
    dst_port: u16,
    bytes: u64,
    packets: u64,
    tcp_flags: u8,
    input_if: u32,
    output_if: u32,
}

impl Row {
    fn flow(&self) -> Flow {
        Flow {
            src_addr: self.src,
            dst_addr: self.dst,
            src_port: self.src_port,
            dst_port: self.dst_port,
            protocol: self.protocol,
            bytes: self.bytes,
            packets: self.packets,
            tcp_flags: self.tcp_flags,
            input_if: self.input_if,
            output_if: self.output_if,
            ..Flow::default()
        }
    }
}

fn capture() -> Vec<Row> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../netflow9/tests/data/exports/softflowd-v9.flows.csv"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let [version, protocol, src, dst, sport, dport, bytes, pkts, flags, in_if, out_if] = [
        "ip_version",
        "protocol",
        "src_addr",
        "dst_addr",
        "src_port",
        "dst_port",
        "in_bytes",
        "in_pkts",
        "tcp_flags",
        "input_if",
        "output_if",
    ]
    .map(col);
    lines
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            fn num<T: std::str::FromStr + Default>(s: &str) -> T {
                if s.is_empty() {
                    T::default()
                } else {
                    s.parse().unwrap_or_else(|_| panic!("{s:?}"))
                }
            }
            Row {
                version: num(f[version]),
                protocol: num(f[protocol]),
                src: ip(f[src]),
                dst: ip(f[dst]),
                src_port: num(f[sport]),
                dst_port: num(f[dport]),
                bytes: num(f[bytes]),
                packets: num(f[pkts]),
                tcp_flags: num(f[flags]),
                input_if: num(f[in_if]),
                output_if: num(f[out_if]),
            }
        })
        .collect()
}

fn v4(a: IpAddr) -> Option<[u8; 4]> {
    match a {
        IpAddr::V4(a) => Some(a.octets()),
        IpAddr::V6(_) => None,
    }
}

fn v6(a: IpAddr) -> Option<[u16; 8]> {
    match a {
        IpAddr::V4(_) => None,
        IpAddr::V6(a) => Some(a.segments()),
    }
}

#[test]
fn counts_over_a_real_capture() {
    type Question = Box<dyn Fn(&Row) -> bool>;
    let rows = capture();
    assert_eq!(rows.len(), 1804);
    let is = |s: &'static str| move |a: IpAddr| a == ip(s);
    let in_198_18 = |a: IpAddr| v4(a).is_some_and(|o| o[0] == 198 && o[1] & 0xfe == 18);
    let in_10 = |a: IpAddr| v4(a).is_some_and(|o| o[0] == 10);
    let in_db8_10 = |a: IpAddr| v6(a).is_some_and(|s| s[..3] == [0x2001, 0xdb8, 0x10]);
    // filter, the same question asked of the CSV, and the count as awk
    // tallies it where that is a useful anchor
    let table: Vec<(&str, Question, Option<usize>)> = vec![
        ("any", Box::new(|_| true), Some(1804)),
        (
            "host 10.10.1.66",
            Box::new(move |r| is("10.10.1.66")(r.src) || is("10.10.1.66")(r.dst)),
            Some(20),
        ),
        (
            "src host 10.10.0.53",
            Box::new(move |r| is("10.10.0.53")(r.src)),
            None,
        ),
        (
            "dst ip 10.10.0.53 and udp",
            Box::new(move |r| is("10.10.0.53")(r.dst) && r.protocol == 17),
            None,
        ),
        (
            "host 2001:db8:10::53",
            Box::new(move |r| is("2001:db8:10::53")(r.src) || is("2001:db8:10::53")(r.dst)),
            Some(244),
        ),
        (
            "net 198.18.0.0/15",
            Box::new(move |r| in_198_18(r.src) || in_198_18(r.dst)),
            Some(14),
        ),
        (
            "net 198.18.0.0/15 and dst port 80",
            Box::new(move |r| (in_198_18(r.src) || in_198_18(r.dst)) && r.dst_port == 80),
            Some(7),
        ),
        (
            "src net 10.0.0.0 mask 255.0.0.0",
            Box::new(move |r| in_10(r.src)),
            None,
        ),
        (
            "net 2001:db8:10::/48",
            Box::new(move |r| in_db8_10(r.src) || in_db8_10(r.dst)),
            None,
        ),
        (
            "(src net 10.0.0.0/8 or src net 2001:db8:10::/48) and not dst port 53",
            Box::new(move |r| (in_10(r.src) || in_db8_10(r.src)) && r.dst_port != 53),
            None,
        ),
        ("proto icmp", Box::new(|r| r.protocol == 1), Some(8)),
        ("icmp6", Box::new(|r| r.protocol == 58), Some(8)),
        ("tcp", Box::new(|r| r.protocol == 6), Some(868)),
        (
            "proto udp and inet6",
            Box::new(|r| r.protocol == 17 && r.version == 6),
            Some(272),
        ),
        (
            "not (tcp or udp)",
            Box::new(|r| r.protocol != 6 && r.protocol != 17),
            Some(16),
        ),
        ("inet", Box::new(|r| r.version == 4), Some(1396)),
        ("inet6", Box::new(|r| r.version == 6), Some(408)),
        (
            "port 53",
            Box::new(|r| r.src_port == 53 || r.dst_port == 53),
            None,
        ),
        (
            "dst port 443 or dst port 80",
            Box::new(|r| r.dst_port == 443 || r.dst_port == 80),
            Some(272),
        ),
        (
            "dst port in [80 443]",
            Box::new(|r| r.dst_port == 443 || r.dst_port == 80),
            Some(272),
        ),
        (
            "src port > 1024 and dst port <= 1024",
            Box::new(|r| r.src_port > 1024 && r.dst_port <= 1024),
            None,
        ),
        (
            "port != 53",
            Box::new(|r| r.src_port != 53 || r.dst_port != 53),
            None,
        ),
        ("bytes > 1k", Box::new(|r| r.bytes > 1000), None),
        (
            "bytes >= 1500 and packets < 10",
            Box::new(|r| r.bytes >= 1500 && r.packets < 10),
            None,
        ),
        ("packets 1", Box::new(|r| r.packets == 1), None),
        (
            "flags S",
            Box::new(|r| r.protocol == 6 && r.tcp_flags & 0x02 != 0),
            None,
        ),
        (
            "flags SA",
            Box::new(|r| r.protocol == 6 && r.tcp_flags & 0x12 == 0x12),
            None,
        ),
        (
            "flags F and not flags R",
            Box::new(|r| r.protocol == 6 && r.tcp_flags & 0x01 != 0 && r.tcp_flags & 0x04 == 0),
            None,
        ),
        (
            "in if 0 and out if 0",
            Box::new(|r| r.input_if == 0 && r.output_if == 0),
            Some(1804),
        ),
        ("not any", Box::new(|_| false), Some(0)),
    ];
    for (text, question, known) in table {
        let f = parse(text);
        let mut count = 0;
        for row in &rows {
            let flow = row.flow();
            let m = f.matches(&flow);
            assert_eq!(
                m,
                question(row),
                "{text:?} on {:?} -> {:?}",
                row.src,
                row.dst
            );
            count += usize::from(m);
            if m {
                // The hints never exclude a matching flow.
                if let Some(nets) = f.required_addrs() {
                    assert!(
                        nets.iter()
                            .any(|n| n.contains(flow.src_addr) || n.contains(flow.dst_addr)),
                        "{text:?}"
                    );
                }
                if let Some(ports) = f.required_ports() {
                    assert!(
                        ports.contains(&flow.src_port) || ports.contains(&flow.dst_port),
                        "{text:?}"
                    );
                }
            }
        }
        assert!(
            count > 0 || known == Some(0),
            "{text:?} matches nothing: a weak test"
        );
        if let Some(known) = known {
            assert_eq!(count, known, "{text:?}");
        }
    }
}

#[global_allocator]
static ALLOCATOR: testkit::alloc::Counting = testkit::alloc::Counting;

#[test]
fn matching_allocates_nothing() {
    let filters: Vec<Filter> = [
        "(src net 10.0.0.0/8 or net 2001:db8::/32) and not (port 53 or flags R) and bytes > 1k",
        "host ::ffff:10.0.0.1 or exporter 2001:db8::ff or inet6 and as 64512 and if 3",
        "port in [1 2 3 4 5 6 7 8 9 80] and packets <= 3 and proto tcp",
        "",
    ]
    .iter()
    .map(|t| parse(t))
    .collect();
    let rows = capture();
    let flows: Vec<Flow> = rows
        .iter()
        .map(Row::flow)
        .chain([tcp4(), udp6(), mapped()])
        .collect();
    let (hits, allocations) = testkit::alloc::allocations(|| {
        let mut hits = 0usize;
        for f in &filters {
            for flow in &flows {
                hits += usize::from(std::hint::black_box(f).matches(flow));
            }
        }
        hits
    });
    assert!(hits > flows.len(), "{hits}");
    assert_eq!(allocations, 0);
}

// --- properties ---------------------------------------------------------

/// Words of the grammar and things that look like them.
const WORDS: &[&str] = &[
    "host",
    "src",
    "dst",
    "ip",
    "net",
    "mask",
    "port",
    "in",
    "out",
    "if",
    "proto",
    "tcp",
    "udp",
    "icmp",
    "icmp6",
    "as",
    "bytes",
    "packets",
    "flags",
    "exporter",
    "any",
    "inet",
    "inet6",
    "ipv4",
    "ipv6",
    "and",
    "or",
    "not",
    "&&",
    "||",
    "!",
    "(",
    ")",
    "[",
    "]",
    ",",
    "=",
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "eq",
    "gt",
    "10.0.0.1",
    "::ffff:10.0.0.1",
    "2001:db8::1",
    "10.0.0.0/8",
    "10/8",
    "::/0",
    "2001:db8::/129",
    "255.0.0.0",
    "80",
    "0",
    "65535",
    "99999",
    "1k",
    "2M",
    "9g",
    "SA",
    "X",
    "ä",
    "\u{3000}",
    "&",
    "|",
    "/",
    "-1",
    "",
];

fn token_soup() -> impl Strategy<Value = String> {
    prop::collection::vec((prop::sample::select(WORDS), prop::bool::ANY), 0..40).prop_map(|v| {
        let mut s = String::new();
        for (w, space) in v {
            s.push_str(w);
            if space {
                s.push(' ');
            }
        }
        s
    })
}

fn addr() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        prop::sample::select(vec![
            ip("10.0.0.1"),
            ip("10.0.0.2"),
            ip("192.0.2.1"),
            ip("2001:db8::1"),
            ip("2001:db8:1::1"),
        ]),
        any::<[u8; 4]>().prop_map(|o| IpAddr::V4(Ipv4Addr::from(o))),
        any::<[u8; 16]>().prop_map(|o| IpAddr::from(o).to_canonical()),
    ]
}

fn dir() -> impl Strategy<Value = Dir> {
    prop::sample::select(vec![Dir::Src, Dir::Dst, Dir::Either])
}

fn cmp() -> impl Strategy<Value = Cmp> {
    prop::sample::select(vec![Cmp::Eq, Cmp::Ne, Cmp::Lt, Cmp::Le, Cmp::Gt, Cmp::Ge])
}

fn small<T: Copy + core::fmt::Debug + 'static>(pool: Vec<T>) -> impl Strategy<Value = T> {
    prop::sample::select(pool)
}

/// Terms as the parser produces them, with values drawn mostly from the
/// pools the flows use so that matches happen.
fn predicate() -> impl Strategy<Value = Predicate> {
    prop_oneof![
        (dir(), addr()).prop_map(|(d, a)| Predicate::Host(d, a)),
        (dir(), addr(), 0u8..=128).prop_map(|(d, a, p)| {
            let p = if a.is_ipv4() { p % 33 } else { p };
            Predicate::Net(d, Cidr::new(a, p).unwrap())
        }),
        (
            dir(),
            cmp(),
            prop_oneof![small(vec![0u16, 53, 80, 443, 65535]), any::<u16>()]
        )
            .prop_map(|(d, c, n)| Predicate::Port(d, c, n)),
        prop_oneof![small(vec![1u8, 6, 17, 58]), any::<u8>()].prop_map(Predicate::Proto),
        (dir(), small(vec![0u32, 64512, 65001])).prop_map(|(d, n)| Predicate::As(d, n)),
        (small(vec![IfDir::In, IfDir::Out, IfDir::Either]), 0u32..8)
            .prop_map(|(d, n)| Predicate::Interface(d, n)),
        (cmp(), small(vec![0u64, 1, 1500, 1_000_000, u64::MAX]))
            .prop_map(|(c, n)| Predicate::Bytes(c, n)),
        (cmp(), small(vec![0u64, 1, 3, 1000])).prop_map(|(c, n)| Predicate::Packets(c, n)),
        (1u8..=255).prop_map(Predicate::Flags),
        addr().prop_map(Predicate::Exporter),
        small(vec![4u8, 6]).prop_map(Predicate::IpVersion),
    ]
}

fn expr() -> impl Strategy<Value = Expr> {
    let leaf = prop_oneof![1 => Just(Expr::All), 9 => predicate().prop_map(Expr::Pred)];
    leaf.prop_recursive(6, 48, 2, |inner| {
        prop_oneof![
            inner.clone().prop_map(|e| Expr::Not(Box::new(e))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Expr::And(Box::new(a), Box::new(b))),
            (inner.clone(), inner).prop_map(|(a, b)| Expr::Or(Box::new(a), Box::new(b))),
        ]
    })
}

fn flow() -> impl Strategy<Value = Flow> {
    (
        (addr(), addr(), addr()),
        (small(vec![0u16, 53, 80, 443, 65535]), any::<u16>()),
        (small(vec![1u8, 6, 17, 58]), any::<u8>()),
        (
            small(vec![0u32, 64512, 65001]),
            small(vec![0u32, 64512, 65001]),
            0u32..8,
            0u32..8,
        ),
        (
            small(vec![0u64, 1, 1500, 1_000_000, u64::MAX]),
            small(vec![0u64, 1, 3, 1000]),
        ),
    )
        .prop_map(
            |((src, dst, exporter), (sport, dport), (proto, flags), (sa, da, i, o), (b, p))| Flow {
                exporter,
                src_addr: src,
                dst_addr: dst,
                src_port: sport,
                dst_port: dport,
                protocol: proto,
                tcp_flags: flags,
                src_as: sa,
                dst_as: da,
                input_if: i,
                output_if: o,
                bytes: b,
                packets: p,
                ..Flow::default()
            },
        )
}

/// Checks an error's column is within the text (or just past its end).
fn column_in_range(text: &str, e: &FilterError) -> bool {
    (1..=text.chars().count() + 1).contains(&e.column)
        && !e.expected.is_empty()
        && !e.found.is_empty()
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        match Filter::parse(&text) {
            Ok(f) => prop_assert_eq!(parse(&f.to_string()), f),
            Err(e) => prop_assert!(column_in_range(&text, &e), "{:?}", e),
        }
    }

    #[test]
    fn token_soup_never_panics(text in token_soup()) {
        match Filter::parse(&text) {
            Ok(f) => prop_assert_eq!(parse(&f.to_string()), f),
            Err(e) => prop_assert!(column_in_range(&text, &e), "{:?}", e),
        }
    }

    #[test]
    fn display_round_trips(e in expr()) {
        let text = e.to_string();
        let f = parse(&text);
        prop_assert_eq!(f.expr(), &e, "{}", text);
    }

    #[test]
    fn compiled_matches_tree(e in expr(), flows in prop::collection::vec(flow(), 1..16)) {
        let f = parse(&e.to_string());
        for flow in &flows {
            let m = f.matches(flow);
            prop_assert_eq!(m, e.matches(flow), "{} on {:?}", e, flow);
            if m {
                if let Some(nets) = f.required_addrs() {
                    prop_assert!(nets.iter().any(|n| n.contains(flow.src_addr) || n.contains(flow.dst_addr)));
                }
                if let Some(ports) = f.required_ports() {
                    prop_assert!(ports.contains(&flow.src_port) || ports.contains(&flow.dst_port));
                }
            }
        }
        if f.is_all() {
            for flow in &flows {
                prop_assert!(e.matches(flow));
            }
        }
    }
}
