//! `flowerd replay` (being written).

use std::process::ExitCode;

use crate::cli::ReplayArgs;

pub(crate) fn run(_args: &ReplayArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("flowerd replay is not implemented yet")
}
