//! The filter text parser: nom combinators for the tokens, recursive descent
//! for the expression. Complete-input parsers only; no nom type leaves this
//! module.
//!
//! Every error is a `nom::Err::Failure` carrying what was expected at which
//! point of the input, so the first mistake is reported as it is, never a
//! later alternative's confusion. `Err::Error` only means "not this token"
//! inside the combinators.

use std::net::IpAddr;

use nom::branch::alt;
use nom::bytes::complete::{tag, take_while, take_while1};
use nom::character::complete::{digit1, one_of};
use nom::combinator::{all_consuming, not, opt, value, verify};
use nom::error::{ErrorKind, ParseError};
use nom::{IResult, Parser};

use super::{
    Cmp, Dir, Expr, FilterError, IfDir, Predicate, FLAG_LETTERS, MAX_DEPTH, MAX_LEN, PROTOCOLS,
};
use crate::cidr::{Cidr, CidrError};

const TERM: &str = "a filter term (host, net, port, proto, as, if, bytes, packets, flags, \
                    exporter, inet, inet6, any, not or \"(\")";
const AFTER_DIR: &str = "host, net, port, as or if";
const ADDRESS: &str = "an IPv4 or IPv6 address";
const NETWORK: &str = "a network like 10.0.0.0/8 or 2001:db8::/32";
const NETMASK: &str = "a contiguous IPv4 netmask like 255.255.0.0";
const PORT: &str = "a port number 0-65535";
const PORT_OR_CLOSE: &str = "a port number 0-65535 or ]";
const PROTO: &str = "a protocol name (tcp, udp, icmp, icmp6, gre, esp, ah, sctp, igmp, ospf, \
                     pim) or number 0-255";
const AS_NUMBER: &str = "an AS number 0-4294967295";
const INTERFACE: &str = "an interface index 0-4294967295";
const COUNT: &str = "a number like 1500, 10k, 2m or 1g";
const COUNT_RANGE: &str = "a number up to 18446744073709551615";
const FLAGS: &str = "TCP flag letters (C, E, U, A, P, R, S, F)";
const DEPTH: &str = "at most 64 nested parentheses and negations";
const END: &str = "and, or or end of input";

/// A parse failure: what was expected, and the rest of the input where it
/// was not found (a suffix of the filter text).
#[derive(Debug, PartialEq)]
pub(crate) struct PError<'a> {
    at: &'a str,
    expected: &'static str,
}

impl<'a> ParseError<&'a str> for PError<'a> {
    fn from_error_kind(at: &'a str, _: ErrorKind) -> Self {
        PError { at, expected: TERM }
    }

    fn append(_: &'a str, _: ErrorKind, other: Self) -> Self {
        other
    }
}

type PResult<'a, O> = IResult<&'a str, O, PError<'a>>;

fn fail<'a, O>(at: &'a str, expected: &'static str) -> PResult<'a, O> {
    Err(nom::Err::Failure(PError { at, expected }))
}

/// Characters that end a word and are tokens of their own.
fn is_punct(c: char) -> bool {
    matches!(
        c,
        '(' | ')' | '[' | ']' | '!' | '&' | '|' | '=' | '<' | '>' | ','
    )
}

fn is_word_char(c: char) -> bool {
    !c.is_whitespace() && !is_punct(c)
}

pub(crate) fn parse_ws(input: &str) -> PResult<'_, &str> {
    take_while(char::is_whitespace).parse(input)
}

/// The input after any whitespace.
fn skip_ws(input: &str) -> &str {
    parse_ws(input).map_or(input, |(rest, _)| rest)
}

/// A run of non-space, non-punctuation characters: a keyword, number,
/// address or network.
pub(crate) fn parse_word(input: &str) -> PResult<'_, &str> {
    take_while1(is_word_char).parse(input)
}

/// The word `kw`, in any case, and nothing longer.
fn keyword<'a>(kw: &'static str) -> impl Parser<&'a str, Output = &'a str, Error = PError<'a>> {
    verify(parse_word, move |w: &str| w.eq_ignore_ascii_case(kw))
}

/// Whitespace, then `p`.
fn ws<'a, O>(
    p: impl Parser<&'a str, Output = O, Error = PError<'a>>,
) -> impl Parser<&'a str, Output = O, Error = PError<'a>> {
    nom::sequence::preceded(parse_ws, p)
}

pub(crate) fn parse_or_op(input: &str) -> PResult<'_, &str> {
    ws(alt((tag("||"), keyword("or")))).parse(input)
}

pub(crate) fn parse_and_op(input: &str) -> PResult<'_, &str> {
    ws(alt((tag("&&"), keyword("and")))).parse(input)
}

/// `not`, or `!` that does not start `!=`.
pub(crate) fn parse_not_op(input: &str) -> PResult<'_, &str> {
    alt((
        keyword("not"),
        nom::sequence::terminated(tag("!"), not(tag("="))),
    ))
    .parse(input)
}

pub(crate) fn parse_cmp(input: &str) -> PResult<'_, Cmp> {
    alt((
        value(Cmp::Ge, tag(">=")),
        value(Cmp::Le, tag("<=")),
        value(Cmp::Eq, tag("==")),
        value(Cmp::Ne, tag("!=")),
        value(Cmp::Gt, tag(">")),
        value(Cmp::Lt, tag("<")),
        value(Cmp::Eq, tag("=")),
        value(Cmp::Eq, keyword("eq")),
        value(Cmp::Ne, keyword("ne")),
        value(Cmp::Lt, keyword("lt")),
        value(Cmp::Le, keyword("le")),
        value(Cmp::Gt, keyword("gt")),
        value(Cmp::Ge, keyword("ge")),
    ))
    .parse(input)
}

/// A whole word of decimal digits (no sign) that fits `T`.
fn decimal<T: core::str::FromStr>(word: &str) -> Option<T> {
    let (_, digits) = all_consuming(digit1::<_, PError<'_>>).parse(word).ok()?;
    digits.parse().ok()
}

/// `N`, `Nk`, `Nm` or `Ng` (decimal multipliers, as nfdump): `None` if the
/// word is not of that form, `Some(None)` if the value does not fit 64 bits.
fn count(word: &str) -> Option<Option<u64>> {
    let (_, (digits, unit)) = all_consuming((digit1::<_, PError<'_>>, opt(one_of("kKmMgG"))))
        .parse(word)
        .ok()?;
    let scale: u64 = match unit {
        Some('k' | 'K') => 1_000,
        Some('m' | 'M') => 1_000_000,
        Some('g' | 'G') => 1_000_000_000,
        _ => 1,
    };
    Some(
        digits
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(scale)),
    )
}

/// An IP address; IPv4-mapped IPv6 becomes IPv4, the form flows compare in.
fn address(input: &str) -> PResult<'_, IpAddr> {
    let at = skip_ws(input);
    match parse_word(at) {
        Ok((rest, w)) => match w.parse::<IpAddr>() {
            Ok(a) => Ok((rest, a.to_canonical())),
            Err(_) => fail(at, ADDRESS),
        },
        Err(_) => fail(at, ADDRESS),
    }
}

/// `CIDR`, or `A.B.C.D mask M.M.M.M`.
fn network(input: &str) -> PResult<'_, Cidr> {
    let at = skip_ws(input);
    let Ok((rest, w)) = parse_word(at) else {
        return fail(at, NETWORK);
    };
    let net = match w.parse::<Cidr>() {
        Ok(net) => net,
        Err(CidrError::InvalidPrefix { max, .. }) => {
            let slash = w.find('/').map_or(0, |i| i + 1);
            let expected = if max == 32 {
                "a prefix length 0-32"
            } else {
                "a prefix length 0-128"
            };
            return fail(&at[slash..], expected);
        }
        Err(_) => return fail(at, NETWORK),
    };
    let IpAddr::V4(addr) = net.addr() else {
        return Ok((rest, net));
    };
    if w.contains('/') || net.prefix() != 32 {
        return Ok((rest, net));
    }
    let Ok((rest, _)) = ws(keyword("mask")).parse(rest) else {
        return Ok((rest, net));
    };
    let at = skip_ws(rest);
    let Ok((rest, m)) = parse_word(at) else {
        return fail(at, NETMASK);
    };
    match m.parse().map(|m| Cidr::with_netmask(addr, m)) {
        Ok(Ok(net)) => Ok((rest, net)),
        _ => fail(at, NETMASK),
    }
}

/// A word that `decimal` accepts as `T`, else a failure expecting `what`.
fn number<'a, T: core::str::FromStr>(input: &'a str, what: &'static str) -> PResult<'a, T> {
    let at = skip_ws(input);
    match parse_word(at) {
        Ok((rest, w)) => match decimal(w) {
            Some(n) => Ok((rest, n)),
            None => fail(at, what),
        },
        Err(_) => fail(at, what),
    }
}

/// An optional comparison operator (default `=`).
fn comparison(input: &str) -> PResult<'_, Cmp> {
    let (rest, cmp) = opt(ws(parse_cmp)).parse(input)?;
    Ok((rest, cmp.unwrap_or(Cmp::Eq)))
}

/// After `port`: `[cmp] N` or `in [N N …]`, the list as `or`ed equalities.
fn port(input: &str, dir: Dir) -> PResult<'_, Expr> {
    if let Ok((rest, _)) = ws(keyword("in")).parse(input) {
        let at = skip_ws(rest);
        let Ok((mut rest, _)) = tag::<_, _, PError<'_>>("[").parse(at) else {
            return fail(at, "[");
        };
        let mut list: Option<Expr> = None;
        loop {
            let at = skip_ws(rest);
            if let Ok((after, _)) = tag::<_, _, PError<'_>>("]").parse(at) {
                return match list {
                    Some(e) => Ok((after, e)),
                    None => fail(at, PORT),
                };
            }
            let at = match tag::<_, _, PError<'_>>(",").parse(at) {
                Ok((after, _)) if list.is_some() => skip_ws(after),
                _ => at,
            };
            let (after, n) = number::<u16>(at, PORT_OR_CLOSE)?;
            let term = Expr::Pred(Predicate::Port(dir, Cmp::Eq, n));
            list = Some(match list {
                Some(e) => Expr::Or(Box::new(e), Box::new(term)),
                None => term,
            });
            rest = after;
        }
    }
    let (rest, cmp) = comparison(input)?;
    let (rest, n) = number::<u16>(rest, PORT)?;
    Ok((rest, Expr::Pred(Predicate::Port(dir, cmp, n))))
}

/// After `bytes` or `packets`: `[cmp] N[kmg]`.
fn counter(input: &str) -> PResult<'_, (Cmp, u64)> {
    let (rest, cmp) = comparison(input)?;
    let at = skip_ws(rest);
    let Ok((rest, w)) = parse_word(at) else {
        return fail(at, COUNT);
    };
    match count(w) {
        Some(Some(n)) => Ok((rest, (cmp, n))),
        Some(None) => fail(at, COUNT_RANGE),
        None => fail(at, COUNT),
    }
}

fn protocol_named(word: &str) -> Option<u8> {
    PROTOCOLS
        .iter()
        .find(|(name, _)| word.eq_ignore_ascii_case(name))
        .map(|&(_, n)| n)
}

/// After `flags`: one word of flag letters.
fn flags(input: &str) -> PResult<'_, u8> {
    let at = skip_ws(input);
    let Ok((rest, w)) = parse_word(at) else {
        return fail(at, FLAGS);
    };
    let mut bits = 0;
    for (i, c) in w.char_indices() {
        let upper = c.to_ascii_uppercase();
        match FLAG_LETTERS.iter().find(|&&(l, _)| l == upper) {
            Some(&(_, bit)) => bits |= bit,
            None => return fail(&at[i..], FLAGS),
        }
    }
    Ok((rest, bits))
}

fn pred<'a>(rest: &'a str, p: Predicate) -> PResult<'a, Expr> {
    Ok((rest, Expr::Pred(p)))
}

/// A term that starts with a word; `at` is at that word.
fn term(at: &str) -> PResult<'_, Expr> {
    let Ok((rest, w)) = parse_word(at) else {
        return fail(at, TERM);
    };
    let kw = w.to_ascii_lowercase();
    match kw.as_str() {
        "any" => Ok((rest, Expr::All)),
        "inet" | "ipv4" => pred(rest, Predicate::IpVersion(4)),
        "inet6" | "ipv6" => pred(rest, Predicate::IpVersion(6)),
        "src" | "dst" => {
            let dir = if kw == "src" { Dir::Src } else { Dir::Dst };
            let at = skip_ws(rest);
            let Ok((rest, w)) = parse_word(at) else {
                return fail(at, AFTER_DIR);
            };
            match w.to_ascii_lowercase().as_str() {
                "if" => {
                    let n = if dir == Dir::Src {
                        IfDir::In
                    } else {
                        IfDir::Out
                    };
                    let (rest, i) = number(rest, INTERFACE)?;
                    pred(rest, Predicate::Interface(n, i))
                }
                other => directed(other, rest, dir).unwrap_or_else(|| fail(at, AFTER_DIR)),
            }
        }
        "in" | "out" => {
            let d = if kw == "in" { IfDir::In } else { IfDir::Out };
            let at = skip_ws(rest);
            let Ok((rest, _)) = keyword("if").parse(at) else {
                return fail(at, "if");
            };
            let (rest, i) = number(rest, INTERFACE)?;
            pred(rest, Predicate::Interface(d, i))
        }
        "if" => {
            let (rest, i) = number(rest, INTERFACE)?;
            pred(rest, Predicate::Interface(IfDir::Either, i))
        }
        "proto" => {
            let at = skip_ws(rest);
            let Ok((rest, w)) = parse_word(at) else {
                return fail(at, PROTO);
            };
            match protocol_named(w).or_else(|| decimal(w)) {
                Some(p) => pred(rest, Predicate::Proto(p)),
                None => fail(at, PROTO),
            }
        }
        "bytes" => {
            let (rest, (cmp, n)) = counter(rest)?;
            pred(rest, Predicate::Bytes(cmp, n))
        }
        "packets" => {
            let (rest, (cmp, n)) = counter(rest)?;
            pred(rest, Predicate::Packets(cmp, n))
        }
        "flags" => {
            let (rest, bits) = flags(rest)?;
            pred(rest, Predicate::Flags(bits))
        }
        "exporter" => {
            let (rest, a) = address(rest)?;
            pred(rest, Predicate::Exporter(a))
        }
        other => match directed(other, rest, Dir::Either) {
            Some(r) => r,
            None => match protocol_named(other) {
                Some(p) => pred(rest, Predicate::Proto(p)),
                None => fail(at, TERM),
            },
        },
    }
}

/// The terms that take a direction: `None` if `kw` is not one of them.
fn directed<'a>(kw: &str, rest: &'a str, dir: Dir) -> Option<PResult<'a, Expr>> {
    Some(match kw {
        "host" | "ip" => address(rest).and_then(|(rest, a)| pred(rest, Predicate::Host(dir, a))),
        "net" => network(rest).and_then(|(rest, c)| pred(rest, Predicate::Net(dir, c))),
        "port" => port(rest, dir),
        "as" => number(rest, AS_NUMBER).and_then(|(rest, n)| pred(rest, Predicate::As(dir, n))),
        _ => return None,
    })
}

/// `unary = not unary | ( or ) | term`; `depth` counts the enclosing
/// parentheses and negations.
fn unary(input: &str, depth: usize) -> PResult<'_, Expr> {
    let at = skip_ws(input);
    if let Ok((rest, _)) = parse_not_op(at) {
        if depth >= MAX_DEPTH {
            return fail(at, DEPTH);
        }
        let (rest, e) = unary(rest, depth + 1)?;
        return Ok((rest, Expr::Not(Box::new(e))));
    }
    if let Ok((rest, _)) = tag::<_, _, PError<'_>>("(").parse(at) {
        if depth >= MAX_DEPTH {
            return fail(at, DEPTH);
        }
        let (rest, e) = or(rest, depth + 1)?;
        let at = skip_ws(rest);
        return match tag::<_, _, PError<'_>>(")").parse(at) {
            Ok((rest, _)) => Ok((rest, e)),
            Err(_) => fail(at, ")"),
        };
    }
    term(at)
}

/// `and = unary { and-op unary }`, grouped to the left.
fn and(input: &str, depth: usize) -> PResult<'_, Expr> {
    let (mut rest, mut e) = unary(input, depth)?;
    while let Ok((after, _)) = parse_and_op(rest) {
        let (after, rhs) = unary(after, depth)?;
        e = Expr::And(Box::new(e), Box::new(rhs));
        rest = after;
    }
    Ok((rest, e))
}

/// `or = and { or-op and }`, grouped to the left.
fn or(input: &str, depth: usize) -> PResult<'_, Expr> {
    let (mut rest, mut e) = and(input, depth)?;
    while let Ok((after, _)) = parse_or_op(rest) {
        let (after, rhs) = and(after, depth)?;
        e = Expr::Or(Box::new(e), Box::new(rhs));
        rest = after;
    }
    Ok((rest, e))
}

/// The token at `at` for an error message.
fn token(at: &str) -> String {
    let at = at.trim_start();
    match at.chars().next() {
        None => "end of input".to_owned(),
        Some(c) if is_punct(c) => c.to_string(),
        Some(_) => at
            .chars()
            .take_while(|&c| is_word_char(c))
            .take(40)
            .collect(),
    }
}

/// The 1-based character column of `at`, a suffix of `text`.
fn column(text: &str, at: &str) -> usize {
    let offset = text.len().saturating_sub(at.len());
    text.get(..offset).map_or(0, |s| s.chars().count()) + 1
}

/// Parses a whole filter.
pub(crate) fn parse_filter(text: &str) -> Result<Expr, FilterError> {
    if text.len() > MAX_LEN {
        let mut end = MAX_LEN;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        return Err(FilterError {
            column: text[..end].chars().count() + 1,
            expected: "a filter of at most 4096 bytes".to_owned(),
            found: format!("{} bytes", text.len()),
        });
    }
    let error = |e: PError<'_>| FilterError {
        column: column(text, e.at),
        expected: e.expected.to_owned(),
        found: token(e.at),
    };
    let at = skip_ws(text);
    if at.is_empty() {
        return Ok(Expr::All);
    }
    match or(at, 0) {
        Ok((rest, e)) => {
            let rest = skip_ws(rest);
            if rest.is_empty() {
                Ok(e)
            } else {
                Err(error(PError {
                    at: rest,
                    expected: END,
                }))
            }
        }
        Err(nom::Err::Error(e) | nom::Err::Failure(e)) => Err(error(e)),
        // Complete-input parsers never ask for more.
        Err(nom::Err::Incomplete(_)) => Err(error(PError { at, expected: TERM })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        assert_eq!(parse_word("host(").unwrap(), ("(", "host"));
        assert!(parse_word("(").is_err());
        assert_eq!(parse_or_op("  || x").unwrap().0, " x");
        assert_eq!(parse_or_op(" OR x").unwrap().0, " x");
        assert!(parse_or_op(" order").is_err());
        assert_eq!(parse_and_op("&&x").unwrap().0, "x");
        assert!(parse_not_op("!=").is_err());
        assert_eq!(parse_not_op("!x").unwrap().0, "x");
        assert_eq!(parse_not_op("NOT(").unwrap().0, "(");
        assert!(parse_not_op("nothing").is_err());
        assert_eq!(parse_cmp(">= 5").unwrap(), (" 5", Cmp::Ge));
        assert_eq!(parse_cmp("gt 5").unwrap(), (" 5", Cmp::Gt));
        assert!(parse_cmp("gte 5").is_err());
    }

    #[test]
    fn numbers() {
        assert_eq!(decimal::<u16>("65535"), Some(65535));
        assert_eq!(decimal::<u16>("65536"), None);
        assert_eq!(decimal::<u16>("+1"), None);
        assert_eq!(decimal::<u16>(""), None);
        assert_eq!(count("10k"), Some(Some(10_000)));
        assert_eq!(count("2M"), Some(Some(2_000_000)));
        assert_eq!(count("3g"), Some(Some(3_000_000_000)));
        assert_eq!(count("18446744073709551615"), Some(Some(u64::MAX)));
        assert_eq!(count("18446744073709551616"), Some(None));
        assert_eq!(count("18446744073709552g"), Some(None));
        assert_eq!(count("1kk"), None);
        assert_eq!(count("k"), None);
    }

    #[test]
    fn error_tokens_and_columns() {
        assert_eq!(token(""), "end of input");
        assert_eq!(token("hots 1"), "hots");
        assert_eq!(token(") x"), ")");
        assert_eq!(token("   "), "end of input");
        assert_eq!(column("ab", ""), 3);
        assert_eq!(column("ä b", "b"), 3);
    }
}
