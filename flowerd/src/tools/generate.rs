//! `flowerd generate` (being written).

use std::process::ExitCode;

use crate::cli::GenerateArgs;

pub(crate) fn run(_args: &GenerateArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("flowerd generate is not implemented yet")
}
