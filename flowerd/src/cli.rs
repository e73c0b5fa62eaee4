//! Command-line interface.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Flower: a NetFlow v9 collector and traffic-analysis system.
///
/// With no command, runs `flowerd serve` on the embedded defaults: NetFlow on
/// UDP 0.0.0.0:9995, HTTP API on 127.0.0.1:8080, data in ./flower-data.
#[derive(Debug, Parser)]
#[command(name = "flowerd", version, about, long_about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the collector: NetFlow listeners, store, HTTP API (the default command).
    #[command(after_help = "Examples:\n  \
        flowerd serve\n  \
        flowerd serve --netflow 0.0.0.0:2055 --netflow [::]:9995 --http 0.0.0.0:8080 --data /var/lib/flower\n  \
        flowerd serve --config /etc/flower/flowerd.toml\n\n\
        On the first start flowerd creates the user \"admin\" with a random password, prints it\n\
        once and saves it in DATA/initial-admin-password (mode 0600).\n\
        SIGINT/SIGTERM stop receiving, store what was received, and exit 0.")]
    Serve(ServeArgs),
    /// Validate a configuration file and print the effective configuration.
    #[command(
        after_help = "The file is TOML; every key is optional and unknown keys are errors.\n\
        Sections: data, [[netflow]] (listen, recv_buffer, sockets), [http], [pipeline],\n\
        [decoder], [store] (with [store.retention]), [log]. `flowerd check-config` on an\n\
        empty file prints every key with its default.\n\n\
        Example:\n  \
        flowerd check-config /etc/flower/flowerd.toml"
    )]
    CheckConfig {
        /// The TOML file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Manage users offline (while flowerd is stopped, or live: the store allows it).
    #[command(subcommand)]
    User(UserCommand),
    /// Send the NetFlow payloads of capture files to a collector (like nfreplay).
    #[command(
        after_help = "Each exporter of the captures (each source address) sends from its own\n\
        socket; towards an IPv4 loopback collector each also sends from its own address\n\
        (127.0.0.1, 127.0.0.2, ...), so the collector keeps their templates apart. Towards\n\
        other addresses they share this host's address (a warning says so).\n\
        Payloads over 65 507 bytes are skipped; a file cut short is sent up to where it\n\
        ends (exit status 1).\n\n\
        Examples:\n  \
        flowerd replay capture.pcap --to 127.0.0.1:9995\n  \
        flowerd replay a.pcap b.pcapng --to [::1]:2055 --rate 2000 --loop 10"
    )]
    Replay(ReplayArgs),
    /// Act as a synthetic NetFlow v9 exporter with a realistic traffic mix.
    #[command(after_help = "Examples:\n  \
        flowerd generate --to 127.0.0.1:9995 --flows-per-sec 5000 --duration 60s\n  \
        flowerd generate --to 127.0.0.1:9995 --exporters 5 --flows-per-sec 1000000 --duration 30s")]
    Generate(GenerateArgs),
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

/// Arguments of `flowerd serve`.
#[derive(Debug, Default, clap::Args)]
pub(crate) struct ServeArgs {
    /// A TOML configuration file (see `flowerd check-config`); flags override it.
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// UDP address to receive NetFlow on (repeatable). Default 0.0.0.0:9995.
    #[arg(long, value_name = "ADDR:PORT")]
    pub(crate) netflow: Vec<std::net::SocketAddr>,
    /// HTTP address. Default 127.0.0.1:8080 (loopback: use 0.0.0.0:8080 to expose it).
    #[arg(long, value_name = "ADDR:PORT")]
    pub(crate) http: Option<std::net::SocketAddr>,
    /// Data directory. Default ./flower-data.
    #[arg(long, value_name = "DIR")]
    pub(crate) data: Option<PathBuf>,
    /// Serve HTTPS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub(crate) tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM); needs --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub(crate) tls_key: Option<PathBuf>,
    /// Validate the configuration, print it, and exit.
    #[arg(long)]
    pub(crate) check: bool,
}

/// `flowerd user …`
#[derive(Debug, Subcommand)]
pub(crate) enum UserCommand {
    /// Add a user (with --replace, or change an existing user's role and password).
    Add {
        /// Login name.
        name: String,
        /// Role.
        #[arg(long, value_enum)]
        role: RoleArg,
        /// Read the password from standard input (required: never on the command line).
        #[arg(long)]
        password_stdin: bool,
        /// Replace the user if it exists (its role and password; its sessions end).
        /// Without it, an existing name is an error.
        #[arg(long)]
        replace: bool,
        /// Data directory. Default ./flower-data.
        #[arg(long, value_name = "DIR", default_value = "./flower-data")]
        data: PathBuf,
    },
    /// Delete a user (never the last admin).
    Delete {
        /// Login name.
        name: String,
        /// Data directory.
        #[arg(long, value_name = "DIR", default_value = "./flower-data")]
        data: PathBuf,
    },
    /// List users and roles.
    List {
        /// Data directory.
        #[arg(long, value_name = "DIR", default_value = "./flower-data")]
        data: PathBuf,
    },
}

/// A user's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum RoleArg {
    /// Everything.
    Admin,
    /// Read-only.
    Viewer,
}

/// Arguments of `flowerd replay`.
#[derive(Debug, clap::Args)]
pub(crate) struct ReplayArgs {
    /// Capture files (pcap or pcapng); every UDP payload starting with version 9 is sent.
    #[arg(required = true, value_name = "FILE")]
    pub(crate) files: Vec<PathBuf>,
    /// Collector address.
    #[arg(long, value_name = "HOST:PORT")]
    pub(crate) to: String,
    /// Datagrams per second (0 = as fast as possible).
    #[arg(long, default_value_t = 0)]
    pub(crate) rate: u64,
    /// Send the files this many times (1 or more).
    #[arg(long = "loop", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) loops: u64,
}

/// Arguments of `flowerd generate`.
#[derive(Debug, clap::Args)]
pub(crate) struct GenerateArgs {
    /// Collector address.
    #[arg(long, value_name = "HOST:PORT")]
    pub(crate) to: String,
    /// Flows per second (all exporters together; 0 = as fast as possible).
    /// Whole packets leave when their first flow is due.
    #[arg(long, default_value_t = 1000)]
    pub(crate) flows_per_sec: u64,
    /// How long to run: seconds, or a number with ms, s, m or h (e.g. 30, 500ms, 5m, 1h;
    /// default: until interrupted).
    #[arg(long, value_name = "DURATION")]
    pub(crate) duration: Option<String>,
    /// Number of exporters (each with its own Source ID and sequence).
    #[arg(long, default_value_t = 1)]
    pub(crate) exporters: u32,
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
