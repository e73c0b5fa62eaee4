//! Evaluation: terms against a flow, and the expression compiled into a
//! flat branch program.
//!
//! The program is BPF-shaped: each op tests one [`Predicate`] and names the
//! op to run next on true and on false, or the verdict. `and`, `or` and `not`
//! cost nothing at run time (they are only wiring between ops), evaluation
//! short-circuits like `&&`/`||`, and running it needs neither recursion nor
//! a stack. Ops are emitted right operand first, so every jump goes to a
//! lower index: the loop runs at most `ops.len()` tests.

use std::net::IpAddr;

use netflow9::Flow;

use super::{Dir, Expr, IfDir, Predicate};

/// Jump target: the flow matches.
const ACCEPT: u32 = u32::MAX;
/// Jump target: the flow does not match.
const REJECT: u32 = u32::MAX - 1;

#[derive(Debug, Clone, Copy)]
struct Op {
    pred: Predicate,
    on_true: u32,
    on_false: u32,
}

/// A compiled [`Expr`].
#[derive(Debug, Clone)]
pub(crate) struct Program {
    ops: Vec<Op>,
    /// The first op to run, or a verdict for a constant expression.
    entry: u32,
}

impl Program {
    pub(crate) fn compile(expr: &Expr) -> Program {
        let mut ops = Vec::new();
        let entry = emit(expr, ACCEPT, REJECT, &mut ops);
        if entry == ACCEPT || entry == REJECT {
            // Ops emitted before a constant operand made them unreachable
            // (`port 80` in `any or port 80`); elsewhere such dead ops are
            // merely never run.
            ops.clear();
        }
        Program { ops, entry }
    }

    pub(crate) fn is_all(&self) -> bool {
        self.entry == ACCEPT
    }

    #[inline]
    pub(crate) fn run(&self, flow: &Flow) -> bool {
        let mut pc = self.entry;
        // The verdicts are out of range of `ops`.
        while let Some(op) = self.ops.get(pc as usize) {
            pc = if op.pred.matches(flow) {
                op.on_true
            } else {
                op.on_false
            };
        }
        pc == ACCEPT
    }
}

/// Emits the ops of `e` that continue at `t` when it holds and `f` when it
/// does not; returns where to enter them. Constant parts fold away: `all`
/// is a jump to `t`, and a test whose outcomes lead to the same place is
/// not emitted.
fn emit(e: &Expr, t: u32, f: u32, ops: &mut Vec<Op>) -> u32 {
    if t == f {
        return t;
    }
    match e {
        Expr::All => t,
        Expr::Not(x) => emit(x, f, t, ops),
        Expr::And(a, b) => {
            let b = emit(b, t, f, ops);
            emit(a, b, f, ops)
        }
        Expr::Or(a, b) => {
            let b = emit(b, t, f, ops);
            emit(a, t, b, ops)
        }
        Expr::Pred(p) => {
            ops.push(Op {
                pred: *p,
                on_true: t,
                on_false: f,
            });
            // A filter is at most `MAX_LEN` bytes, far fewer ops than the
            // verdicts' indices.
            (ops.len() - 1) as u32
        }
    }
}

/// Whether a flow address is `a` (which is never IPv4-mapped), counting an
/// IPv4-mapped flow address as IPv4.
#[inline]
fn same_host(flow: IpAddr, a: IpAddr) -> bool {
    match (flow, a) {
        (IpAddr::V6(x), IpAddr::V4(a)) => x.to_ipv4_mapped() == Some(a),
        (x, a) => x == a,
    }
}

/// `test(src) || test(dst)` as `dir` asks.
#[inline]
fn either<T: Copy>(dir: Dir, src: T, dst: T, test: impl Fn(T) -> bool) -> bool {
    match dir {
        Dir::Src => test(src),
        Dir::Dst => test(dst),
        Dir::Either => test(src) || test(dst),
    }
}

impl Predicate {
    /// Whether `flow` satisfies this one term.
    #[inline]
    #[must_use]
    pub fn matches(&self, flow: &Flow) -> bool {
        match *self {
            Predicate::Host(d, a) => either(d, flow.src_addr, flow.dst_addr, |x| same_host(x, a)),
            Predicate::Net(d, c) => either(d, flow.src_addr, flow.dst_addr, |x| c.contains(x)),
            Predicate::Port(d, cmp, n) => {
                either(d, flow.src_port, flow.dst_port, |x| cmp.test(x, n))
            }
            Predicate::Proto(p) => flow.protocol == p,
            Predicate::As(d, n) => either(d, flow.src_as, flow.dst_as, |x| x == n),
            Predicate::Interface(d, n) => match d {
                IfDir::In => flow.input_if == n,
                IfDir::Out => flow.output_if == n,
                IfDir::Either => flow.input_if == n || flow.output_if == n,
            },
            Predicate::Bytes(cmp, n) => cmp.test(flow.bytes, n),
            Predicate::Packets(cmp, n) => cmp.test(flow.packets, n),
            Predicate::Flags(bits) => flow.protocol == 6 && flow.tcp_flags & bits == bits,
            Predicate::Exporter(a) => same_host(flow.exporter, a),
            // An IPv4-mapped IPv6 address is IPv4, as everywhere in filters
            // (and the store keeps such flows as IPv4).
            Predicate::IpVersion(v) => {
                let v6 = |a: IpAddr| matches!(a, IpAddr::V6(a) if a.to_ipv4_mapped().is_none());
                (if v6(flow.src_addr) || v6(flow.dst_addr) {
                    6
                } else {
                    4
                }) == v
            }
        }
    }
}

/// A set of values every matching flow must hit, derived through the
/// expression: `term(p, negated)` gives the set a term (or its negation)
/// requires. `None` is "no constraint"; an empty set is "matches nothing".
/// `and` keeps the narrower side (shorter list), `or` needs both and takes
/// the union; `not` pushes the negation down by De Morgan.
pub(crate) fn required<T>(
    e: &Expr,
    negated: bool,
    term: &impl Fn(&Predicate, bool) -> Option<Vec<T>>,
) -> Option<Vec<T>> {
    match (e, negated) {
        (Expr::All, false) => None,
        (Expr::All, true) => Some(Vec::new()),
        (Expr::Not(x), n) => required(x, !n, term),
        (Expr::Pred(p), n) => term(p, n),
        (Expr::And(a, b), false) | (Expr::Or(a, b), true) => {
            match (required(a, negated, term), required(b, negated, term)) {
                (Some(x), Some(y)) => Some(if y.len() < x.len() { y } else { x }),
                (x, None) => x,
                (None, y) => y,
            }
        }
        (Expr::Or(a, b), false) | (Expr::And(a, b), true) => {
            let mut x = required(a, negated, term)?;
            x.extend(required(b, negated, term)?);
            Some(x)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::{Cmp, Filter};

    #[test]
    fn constant_folding() {
        for (text, ops, all) in [
            ("", 0, true),
            ("any", 0, true),
            ("not not any", 0, true),
            ("port 80 or any", 0, true),
            ("any or port 80", 0, true),
            ("not any", 0, false),
            ("port 80 and not any", 0, false),
            ("port 80 and any", 1, false),
            ("port 80 or port 81 and proto tcp", 3, false),
        ] {
            let f = Filter::parse(text).unwrap();
            assert_eq!((f.program.ops.len(), f.is_all()), (ops, all), "{text}");
        }
    }

    #[test]
    fn jumps_go_down() {
        let f = Filter::parse(
            "(port 1 or not port 2) and (port 3 or port 4 and not (port 5 or port 6))",
        )
        .unwrap();
        let p = &f.program;
        assert_eq!(p.ops.len(), 6);
        assert!((p.entry as usize) < p.ops.len());
        for (i, op) in p.ops.iter().enumerate() {
            for to in [op.on_true, op.on_false] {
                assert!(
                    to == ACCEPT || to == REJECT || (to as usize) < i,
                    "{i} -> {to}"
                );
            }
        }
    }

    #[test]
    fn either_direction_port_ne_is_nfdump_or() {
        let flow = Flow {
            src_port: 53,
            dst_port: 53,
            ..Flow::default()
        };
        assert!(!Predicate::Port(Dir::Either, Cmp::Ne, 53).matches(&flow));
        assert!(Predicate::Port(Dir::Either, Cmp::Ne, 53).matches(&Flow {
            src_port: 1,
            ..flow
        }));
    }
}
