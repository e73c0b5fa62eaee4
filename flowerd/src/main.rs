//! `flowerd`: the Flower NetFlow v9 collector and its offline tools.
//!
//! `main` only parses arguments and hands over to [`run`]; each command lives
//! in its own module.

mod capture;
mod cli;
mod decode;
mod output;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("flowerd: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: cli::Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        cli::Command::Decode(args) => decode::run(&args),
    }
}
