//! Operator tools that send NetFlow: `replay` and `generate`, and what they
//! share (`send`).

pub(crate) mod generate;
pub(crate) mod replay;
pub(crate) mod send;
