//! Operator tools that send NetFlow: `replay` and `generate`.

pub(crate) mod generate;
pub(crate) mod replay;
