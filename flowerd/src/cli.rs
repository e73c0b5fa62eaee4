//! Command-line interface.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Flower: a NetFlow v9 collector and traffic-analysis system.
#[derive(Debug, Parser)]
#[command(name = "flowerd", version, about, long_about = None)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Decode the NetFlow v9 export packets in capture files and print every flow.
    ///
    /// Reads classic pcap and pcapng (Ethernet, Linux cooked SLL/SLL2, BSD
    /// loopback, raw IP; IPv4 and IPv6). Every UDP payload, on any port, whose
    /// first two bytes are 9 goes to one decoder; the exporter is the
    /// datagram's source address. Other UDP traffic is skipped and counted.
    /// Files are read in the order given, as one stream (templates carry over).
    #[command(after_help = "Examples:\n  \
        flowerd decode capture.pcap | jq .\n  \
        flowerd decode --format csv a.pcap b.pcapng > flows.csv\n  \
        flowerd decode --summary capture.pcap\n\n\
        Exit status: 0 on success, 1 if a file cannot be read or is not a capture.")]
    Decode(DecodeArgs),
}

/// Arguments of `flowerd decode`.
#[derive(Debug, clap::Args)]
pub(crate) struct DecodeArgs {
    /// Output format: one JSON object per line, or CSV with a header row.
    #[arg(long, value_enum, default_value_t = Format::Jsonl)]
    pub(crate) format: Format,
    /// Print only one JSON object with the totals instead of the flows.
    #[arg(long)]
    pub(crate) summary: bool,
    /// Capture files (pcap or pcapng).
    #[arg(required = true, value_name = "FILE")]
    pub(crate) files: Vec<PathBuf>,
}

/// Output format of `flowerd decode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// One JSON object per flow, one per line.
    Jsonl,
    /// Comma-separated values with a header row.
    Csv,
}
