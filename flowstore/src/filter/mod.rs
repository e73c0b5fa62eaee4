//! Flow filters in the nfdump style: `src net 10.0.0.0/8 and not port 53`.
//!
//! [`Filter::parse`] compiles the text once; [`Filter::matches`] then tests
//! flows without allocating, fast enough for raw scans over every stored
//! flow. The parsed [`Expr`] stays available so the store can derive
//! block-skipping hints ([`Filter::required_addrs`],
//! [`Filter::required_ports`]).
//!
//! # Grammar
//!
//! Keywords are case-insensitive; terms are separated by whitespace or
//! punctuation. `not` binds tighter than `and`, which binds tighter than
//! `or`; there is no implicit `and`. An empty filter matches everything.
//!
//! ```text
//! filter  = [ or ]
//! or      = and { ("or" | "||") and }
//! and     = unary { ("and" | "&&") unary }
//! unary   = ("not" | "!") unary | "(" or ")" | term
//! dir     = "src" | "dst"
//! cmp     = "=" | "==" | "!=" | "<" | "<=" | ">" | ">="
//!         | "eq" | "ne" | "lt" | "le" | "gt" | "ge"
//! ```
//!
//! | term | matches flows whose |
//! |---|---|
//! | `[dir] host A`, `[dir] ip A` | source, destination or either address is `A` |
//! | `[dir] net 10.0.0.0/8`, `[dir] net 10.0.0.0 mask 255.0.0.0` | address is in the network (see [`Cidr`]) |
//! | `[dir] port [cmp] N`, `[dir] port in [N N …]` | port compares to `N` (0-65535) / is one of the list |
//! | `proto P`, or just `P` | IP protocol is `P`: a number 0-255 or `tcp`, `udp`, `icmp`, `icmp6`, `gre`, `esp`, `ah`, `sctp`, `igmp`, `ospf`, `pim` |
//! | `[dir] as N` | source, destination or either BGP AS is `N` |
//! | `[in \| out \| src \| dst] if N` | input, output or either interface index is `N` (`src if` is `in if`) |
//! | `bytes [cmp] N`, `packets [cmp] N` | counter compares to `N`; `k`, `m`, `g` multiply by 1000, 10⁶, 10⁹ |
//! | `flags LETTERS` | protocol is TCP and all the flags are set: `F` FIN, `S` SYN, `R` RST, `P` PSH, `A` ACK, `U` URG, `E` ECE, `C` CWR |
//! | `exporter A` | exporter address is `A` |
//! | `inet`, `ipv4` / `inet6`, `ipv6` | flow is IPv4 / IPv6 |
//! | `any` | always |
//!
//! Addresses are IPv4 or IPv6 everywhere; an IPv4-mapped IPv6 address
//! (`::ffff:a.b.c.d`) is the IPv4 address it carries, in the filter and in
//! the flow. Without a direction, a term holds if it holds for the source or
//! for the destination: `port != 53` matches a flow unless both ports are 53
//! (nfdump does the same). The comparison defaults to `=`.
//!
//! # Bounds
//!
//! A filter is at most [`MAX_LEN`] bytes with at most [`MAX_DEPTH`] nested
//! parentheses and negations; longer or deeper text is an error, not a stack
//! overflow. No input makes the parser panic.

mod eval;
mod parse;

use core::fmt;
use core::str::FromStr;
use std::net::IpAddr;

use netflow9::Flow;

use crate::cidr::Cidr;

/// The longest filter text, in bytes.
pub const MAX_LEN: usize = 4096;

/// The deepest nesting of parentheses and `not`s.
pub const MAX_DEPTH: usize = 64;

/// A compiled flow filter.
///
/// ```
/// use flowstore::filter::Filter;
/// use netflow9::Flow;
///
/// let filter = Filter::parse("src net 10.0.0.0/8 and (dst port 80 or dst port 443)")?;
/// let flow = Flow {
///     src_addr: "10.1.2.3".parse()?,
///     dst_addr: "192.0.2.7".parse()?,
///     dst_port: 443,
///     protocol: 6,
///     ..Flow::default()
/// };
/// assert!(filter.matches(&flow));
/// assert!(!filter.matches(&Flow { dst_port: 22, ..flow }));
///
/// // Display is canonical text that parses back to the same filter.
/// assert_eq!(filter.to_string(), "src net 10.0.0.0/8 and dst port in [80 443]");
///
/// let err = Filter::parse("src hots 10.0.0.1").unwrap_err();
/// assert_eq!(err.to_string(),
///     "filter: expected host, net, port, as or if at column 5, found \"hots\"");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Filter {
    expr: Expr,
    program: eval::Program,
}

impl Filter {
    /// Parses and compiles `text`. Empty or blank text matches every flow.
    ///
    /// # Errors
    ///
    /// A [`FilterError`] naming what was expected and where, for text that
    /// is not in the grammar (see the [module docs](self)), longer than
    /// [`MAX_LEN`] bytes or nested deeper than [`MAX_DEPTH`].
    pub fn parse(text: &str) -> Result<Filter, FilterError> {
        parse::parse_filter(text).map(Filter::from_parsed)
    }

    /// The filter that matches every flow, as `Filter::parse("")` gives.
    #[must_use]
    pub fn all() -> Filter {
        Filter::from_parsed(Expr::All)
    }

    fn from_parsed(expr: Expr) -> Filter {
        let program = eval::Program::compile(&expr);
        Filter { expr, program }
    }

    /// Whether `flow` passes the filter. Allocates nothing.
    #[inline]
    #[must_use]
    pub fn matches(&self, flow: &Flow) -> bool {
        self.program.run(flow)
    }

    /// Whether the filter passes every flow without looking at it: empty
    /// text, `any`, or an expression that reduces to it (`port 80 or any`).
    #[must_use]
    pub fn is_all(&self) -> bool {
        self.program.is_all()
    }

    /// The parsed expression, exactly as written (no simplification).
    #[must_use]
    pub fn expr(&self) -> &Expr {
        &self.expr
    }

    /// Networks such that every flow the filter matches has its source or
    /// destination address in one of them, sorted and without duplicates;
    /// `None` when the filter implies no such constraint. `Some` of an empty
    /// list means the filter matches nothing (`not any`).
    ///
    /// Derived from `host` and `net` terms through `and`, `or` and `not`
    /// (by De Morgan); conservative: a `None` never makes a caller skip a
    /// flow it should have kept.
    ///
    /// ```
    /// # use flowstore::filter::Filter;
    /// let f = Filter::parse("(host 10.0.0.1 or net 192.0.2.0/24) and port 80")?;
    /// let nets: Vec<String> = f.required_addrs().unwrap().iter().map(|c| c.to_string()).collect();
    /// assert_eq!(nets, ["10.0.0.1/32", "192.0.2.0/24"]);
    /// assert_eq!(Filter::parse("host 10.0.0.1 or port 80")?.required_addrs(), None);
    /// # Ok::<(), flowstore::filter::FilterError>(())
    /// ```
    #[must_use]
    pub fn required_addrs(&self) -> Option<Vec<Cidr>> {
        let mut v = eval::required(&self.expr, false, &|p, negated| match (p, negated) {
            (Predicate::Host(_, a), false) => Some(vec![Cidr::host(*a)]),
            (Predicate::Net(_, c), false) => Some(vec![*c]),
            _ => None,
        })?;
        v.sort_unstable();
        v.dedup();
        Some(v)
    }

    /// Ports such that every flow the filter matches has its source or
    /// destination port among them, sorted and without duplicates; `None`
    /// when the filter implies no such constraint. Only equality (`port 80`,
    /// `port in [80 443]`, `not port != 80`) constrains.
    ///
    /// ```
    /// # use flowstore::filter::Filter;
    /// let f = Filter::parse("dst port in [443 80] and proto tcp")?;
    /// assert_eq!(f.required_ports(), Some(vec![80, 443]));
    /// assert_eq!(Filter::parse("port > 1024")?.required_ports(), None);
    /// # Ok::<(), flowstore::filter::FilterError>(())
    /// ```
    #[must_use]
    pub fn required_ports(&self) -> Option<Vec<u16>> {
        let mut v = eval::required(&self.expr, false, &|p, negated| match (p, negated) {
            (Predicate::Port(_, Cmp::Eq, n), false) | (Predicate::Port(_, Cmp::Ne, n), true) => {
                Some(vec![*n])
            }
            _ => None,
        })?;
        v.sort_unstable();
        v.dedup();
        Some(v)
    }
}

impl Default for Filter {
    /// The filter that matches everything.
    fn default() -> Filter {
        Filter::all()
    }
}

impl PartialEq for Filter {
    fn eq(&self, other: &Filter) -> bool {
        // The program is a function of the expression.
        self.expr == other.expr
    }
}

impl Eq for Filter {}

impl FromStr for Filter {
    type Err = FilterError;

    fn from_str(s: &str) -> Result<Filter, FilterError> {
        Filter::parse(s)
    }
}

impl fmt::Display for Filter {
    /// Canonical text: lower-case keywords, one space between tokens, the
    /// fewest parentheses, `or`ed ports as `port in [...]`. It parses back
    /// to an equal `Filter` — as long as it fits in [`MAX_LEN`]: the text
    /// spells out what the input may have abbreviated (`proto tcp` for
    /// `tcp`, ` and ` for `&&`), so a filter written close to the limit can
    /// print longer than it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.expr, f)
    }
}

/// A filter expression as parsed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Expr {
    /// Matches every flow (`any`, or an empty filter).
    All,
    /// Matches flows the inner expression does not.
    Not(Box<Expr>),
    /// Matches flows both sides match.
    And(Box<Expr>, Box<Expr>),
    /// Matches flows either side matches.
    Or(Box<Expr>, Box<Expr>),
    /// One term.
    Pred(Predicate),
}

impl Expr {
    /// Evaluates the tree directly, recursively. [`Filter::matches`] runs a
    /// compiled form of the same expression and is the one to use on many
    /// flows; this is its reference.
    #[must_use]
    pub fn matches(&self, flow: &Flow) -> bool {
        match self {
            Expr::All => true,
            Expr::Not(e) => !e.matches(flow),
            Expr::And(a, b) => a.matches(flow) && b.matches(flow),
            Expr::Or(a, b) => a.matches(flow) || b.matches(flow),
            Expr::Pred(p) => p.matches(flow),
        }
    }

    /// Binding strength, for printing the fewest parentheses.
    fn precedence(&self) -> u8 {
        match self {
            Expr::Or(..) if self.is_port_list() => 4,
            Expr::Or(..) => 1,
            Expr::And(..) => 2,
            Expr::Not(_) => 3,
            Expr::All | Expr::Pred(_) => 4,
        }
    }

    /// `port N` with a direction, the element of a `port in [...]` list.
    fn port_eq(&self) -> Option<(Dir, u16)> {
        match *self {
            Expr::Pred(Predicate::Port(d, Cmp::Eq, n)) => Some((d, n)),
            _ => None,
        }
    }

    /// Whether `self` is exactly what `port in [...]` parses to: an `or`
    /// chain, grouped left, of `port N` terms with one direction.
    fn is_port_list(&self) -> bool {
        let Expr::Or(_, last) = self else {
            return false;
        };
        let Some((dir, _)) = last.port_eq() else {
            return false;
        };
        let mut e = self;
        while let Expr::Or(a, b) = e {
            if b.port_eq().map(|p| p.0) != Some(dir) {
                return false;
            }
            e = a;
        }
        e.port_eq().map(|p| p.0) == Some(dir)
    }

    /// Writes `self`, parenthesized if it binds looser than `min`.
    fn fmt_at(&self, f: &mut fmt::Formatter<'_>, min: u8) -> fmt::Result {
        let paren = self.precedence() < min;
        if paren {
            f.write_str("(")?;
        }
        match self {
            Expr::All => f.write_str("any")?,
            Expr::Or(..) => {
                // The operands of `a or b or c`, which the parser groups as
                // `(a or b) or c`: only a right operand that is itself an
                // `or` needs parentheses. Iterating keeps long chains off
                // the stack.
                let mut operands = Vec::new();
                let mut e = self;
                while let Expr::Or(a, b) = e {
                    operands.push(&**b);
                    e = a;
                }
                operands.push(e);
                operands.reverse();
                // A leading run of `port N` prints as the list it was
                // probably written as (and parses back to): canonical text
                // then stays about as long as the input.
                let dir = operands[0].port_eq().map(|p| p.0);
                let run = operands
                    .iter()
                    .take_while(|o| dir.is_some() && o.port_eq().map(|p| p.0) == dir)
                    .count();
                let rest = if let (Some(dir), 2..) = (dir, run) {
                    write!(f, "{}port in [", dir.prefix())?;
                    for (i, o) in operands[..run].iter().enumerate() {
                        let sep = if i == 0 { "" } else { " " };
                        write!(f, "{sep}{}", o.port_eq().map_or(0, |p| p.1))?;
                    }
                    f.write_str("]")?;
                    &operands[run..]
                } else {
                    operands[0].fmt_at(f, 1)?;
                    &operands[1..]
                };
                for o in rest {
                    f.write_str(" or ")?;
                    o.fmt_at(f, 2)?;
                }
            }
            Expr::And(a, b) => {
                a.fmt_at(f, 2)?;
                f.write_str(" and ")?;
                b.fmt_at(f, 3)?;
            }
            Expr::Not(e) => {
                f.write_str("not ")?;
                e.fmt_at(f, 3)?;
            }
            Expr::Pred(p) => fmt::Display::fmt(p, f)?,
        }
        if paren {
            f.write_str(")")?;
        }
        Ok(())
    }
}

impl fmt::Display for Expr {
    /// Canonical filter text; see [`Filter`]'s `Display`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_at(f, 0)
    }
}

/// One filter term. Addresses are never IPv4-mapped IPv6 (the parser turns
/// those into IPv4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Predicate {
    /// `[src|dst] host A`: the address is `A`.
    Host(Dir, IpAddr),
    /// `[src|dst] net N`: the address is in `N`.
    Net(Dir, Cidr),
    /// `[src|dst] port [cmp] N`: the port compares to `N`.
    Port(Dir, Cmp, u16),
    /// `proto P`: the IP protocol number is `P`.
    Proto(u8),
    /// `[src|dst] as N`: the BGP AS is `N`.
    As(Dir, u32),
    /// `[in|out] if N`: the SNMP interface index is `N`.
    Interface(IfDir, u32),
    /// `bytes [cmp] N`: [`Flow::bytes`] compares to `N`.
    Bytes(Cmp, u64),
    /// `packets [cmp] N`: [`Flow::packets`] compares to `N`.
    Packets(Cmp, u64),
    /// `flags LETTERS`: a TCP flow with all these bits of the TCP flags byte
    /// set (FIN 0x01 … CWR 0x80). The parser never produces 0.
    Flags(u8),
    /// `exporter A`: the exporter's address is `A`.
    Exporter(IpAddr),
    /// `inet` (4) or `inet6` (6): IPv6 if an address is IPv6 and not
    /// IPv4-mapped. The parser produces
    /// no other value.
    IpVersion(u8),
}

/// TCP flag letters, in printing order, and their bits.
const FLAG_LETTERS: [(char, u8); 8] = [
    ('C', 0x80),
    ('E', 0x40),
    ('U', 0x20),
    ('A', 0x10),
    ('P', 0x08),
    ('R', 0x04),
    ('S', 0x02),
    ('F', 0x01),
];

/// Protocol names, the first of each number being its canonical one.
const PROTOCOLS: [(&str, u8); 12] = [
    ("icmp", 1),
    ("igmp", 2),
    ("tcp", 6),
    ("udp", 17),
    ("gre", 47),
    ("esp", 50),
    ("ah", 51),
    ("icmp6", 58),
    ("ipv6-icmp", 58),
    ("ospf", 89),
    ("pim", 103),
    ("sctp", 132),
];

impl fmt::Display for Predicate {
    /// The term's canonical text.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Predicate::Host(d, a) => write!(f, "{}host {a}", d.prefix()),
            Predicate::Net(d, c) => write!(f, "{}net {c}", d.prefix()),
            Predicate::Port(d, c, n) => write!(f, "{}port {}{n}", d.prefix(), c.prefix()),
            Predicate::Proto(p) => match PROTOCOLS.iter().find(|&&(_, n)| n == p) {
                Some((name, _)) => write!(f, "proto {name}"),
                None => write!(f, "proto {p}"),
            },
            Predicate::As(d, n) => write!(f, "{}as {n}", d.prefix()),
            Predicate::Interface(d, n) => match d {
                IfDir::In => write!(f, "in if {n}"),
                IfDir::Out => write!(f, "out if {n}"),
                IfDir::Either => write!(f, "if {n}"),
            },
            Predicate::Bytes(c, n) => write!(f, "bytes {}{n}", c.prefix()),
            Predicate::Packets(c, n) => write!(f, "packets {}{n}", c.prefix()),
            Predicate::Flags(bits) => {
                f.write_str("flags ")?;
                for (letter, bit) in FLAG_LETTERS {
                    if bits & bit != 0 {
                        write!(f, "{letter}")?;
                    }
                }
                Ok(())
            }
            Predicate::Exporter(a) => write!(f, "exporter {a}"),
            Predicate::IpVersion(6) => f.write_str("inet6"),
            Predicate::IpVersion(4) => f.write_str("inet"),
            Predicate::IpVersion(v) => write!(f, "ipversion {v}"),
        }
    }
}

/// Which address, port or AS of a flow a term looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dir {
    /// The source's (`src`).
    Src,
    /// The destination's (`dst`).
    Dst,
    /// Either: the term holds if it holds for the source or the destination.
    Either,
}

impl Dir {
    fn prefix(self) -> &'static str {
        match self {
            Dir::Src => "src ",
            Dir::Dst => "dst ",
            Dir::Either => "",
        }
    }
}

/// Which interface of a flow `if` looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IfDir {
    /// [`Flow::input_if`] (`in if`).
    In,
    /// [`Flow::output_if`] (`out if`).
    Out,
    /// Either of them (`if`).
    Either,
}

/// A comparison of a flow's value (left) with the filter's (right).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cmp {
    /// `=`, `==`, `eq`, or no operator.
    Eq,
    /// `!=`, `ne`.
    Ne,
    /// `<`, `lt`.
    Lt,
    /// `<=`, `le`.
    Le,
    /// `>`, `gt`.
    Gt,
    /// `>=`, `ge`.
    Ge,
}

impl Cmp {
    /// `value <op> operand`.
    #[inline]
    #[must_use]
    pub fn test<T: Ord>(self, value: T, operand: T) -> bool {
        match self {
            Cmp::Eq => value == operand,
            Cmp::Ne => value != operand,
            Cmp::Lt => value < operand,
            Cmp::Le => value <= operand,
            Cmp::Gt => value > operand,
            Cmp::Ge => value >= operand,
        }
    }

    /// The operator and a space, or nothing for the default `=`.
    fn prefix(self) -> &'static str {
        match self {
            Cmp::Eq => "",
            Cmp::Ne => "!= ",
            Cmp::Lt => "< ",
            Cmp::Le => "<= ",
            Cmp::Gt => "> ",
            Cmp::Ge => ">= ",
        }
    }
}

/// Filter text that does not parse: what was expected, where, and what was
/// there instead.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[error("filter: expected {expected} at column {column}, found {found:?}")]
pub struct FilterError {
    /// 1-based column of the offending token, counted in characters.
    pub column: usize,
    /// What the grammar allows there, e.g. `a port number 0-65535`.
    pub expected: String,
    /// The offending token, or `end of input`.
    pub found: String,
}
