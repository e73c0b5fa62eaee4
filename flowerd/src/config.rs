//! The daemon's configuration: defaults, the TOML file, command-line
//! overrides, validation.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

/// Everything `flowerd serve` needs. Every field has a default; a TOML file
/// sets any subset (unknown keys are errors).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Config {
    /// Where the store lives.
    pub(crate) data: PathBuf,
    /// NetFlow listeners.
    pub(crate) netflow: Vec<Listener>,
    /// HTTP server.
    pub(crate) http: Http,
    /// Receive → store pipeline.
    pub(crate) pipeline: Pipeline,
    /// NetFlow decoder limits (per listener socket).
    pub(crate) decoder: DecoderLimits,
    /// Flow store.
    pub(crate) store: flowstore::StoreConfig,
    /// Logging.
    pub(crate) log: Log,
}

/// One NetFlow listener.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Listener {
    /// Address and UDP port.
    pub(crate) listen: SocketAddr,
    /// Socket receive buffer in bytes (the kernel may clamp it to
    /// net.core.rmem_max; a warning says so).
    pub(crate) recv_buffer: usize,
    /// Sockets bound with SO_REUSEPORT, one receive thread each (1 = no reuseport).
    pub(crate) sockets: usize,
}

impl Default for Listener {
    fn default() -> Self {
        Listener {
            listen: SocketAddr::from(([0, 0, 0, 0], 9995)),
            recv_buffer: 32 << 20,
            sockets: 1,
        }
    }
}

/// The allowed `http.max_body_bytes`: the smallest still takes every API
/// body; a body is held in memory whole, once per busy connection.
pub(crate) const MAX_BODY_BYTES: std::ops::RangeInclusive<usize> = 1024..=64 << 20;

/// HTTP server settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Http {
    /// Address to listen on (loopback by default).
    pub(crate) listen: SocketAddr,
    /// TLS certificate (PEM); with `tls_key`, serves HTTPS.
    pub(crate) tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    pub(crate) tls_key: Option<PathBuf>,
    /// Serve /metrics without login.
    pub(crate) metrics_public: bool,
    /// Session lifetime in seconds.
    pub(crate) session_secs: u64,
    /// Worker threads.
    pub(crate) workers: usize,
    /// Largest accepted request body in bytes.
    pub(crate) max_body_bytes: usize,
    /// Failed logins allowed per client address per minute (0 = no limit).
    pub(crate) login_attempts_per_minute: u32,
    /// Host names (the `Host` header without its port) the server answers
    /// to besides IP addresses and `localhost`; empty: any name when
    /// listening on a non-loopback address, none when on loopback (a web
    /// page that rebinds its own name to 127.0.0.1 cannot reach the API).
    pub(crate) allowed_hosts: Vec<String>,
}

impl Default for Http {
    fn default() -> Self {
        Http {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            tls_cert: None,
            tls_key: None,
            metrics_public: false,
            session_secs: 12 * 3600,
            workers: 4,
            max_body_bytes: 64 * 1024,
            login_attempts_per_minute: 10,
            allowed_hosts: Vec::new(),
        }
    }
}

/// Receive → store pipeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Pipeline {
    /// Flows per batch sent to the writer.
    pub(crate) batch_flows: usize,
    /// A partial batch is sent after this many milliseconds.
    pub(crate) batch_max_ms: u64,
    /// Batches the channel holds; when full, new batches are dropped and counted.
    pub(crate) channel_batches: usize,
    /// Most flows the writer commits in one transaction: batches waiting
    /// in the channel are merged up to this many, so a writer that falls
    /// behind commits (and fsyncs) less often and catches up.
    pub(crate) commit_max_flows: usize,
    /// Seconds between store maintenance runs (retention, rollup tiers).
    pub(crate) maintenance_secs: u64,
}

impl Default for Pipeline {
    fn default() -> Self {
        Pipeline {
            batch_flows: 8192,
            batch_max_ms: 200,
            channel_batches: 256,
            commit_max_flows: 65_536,
            maintenance_secs: 60,
        }
    }
}

/// The allowed `recv_buffer` of a NetFlow listener, in bytes.
pub(crate) const RECV_BUFFER: std::ops::RangeInclusive<usize> = 64 << 10..=1 << 30;

/// The allowed `http.session_secs`.
const SESSION_SECS: std::ops::RangeInclusive<u64> = 60..=366 * 86_400;

/// `v` for a bounds check against `usize` limits (huge values stay huge).
fn to_usize(v: u64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

/// What `log.level` directives may say.
const LOG_LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];

/// Decoder limits: memory is fixed by these, whatever exporters send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct DecoderLimits {
    /// Templates kept.
    pub(crate) templates: usize,
    /// Exporter observation domains kept.
    pub(crate) domains: usize,
    /// Bytes for data that arrives before its template.
    pub(crate) pending_bytes: usize,
    /// Seconds (exporter clock) such data waits.
    pub(crate) pending_max_age_secs: u32,
    /// Most fields per template.
    pub(crate) max_fields: usize,
}

impl Default for DecoderLimits {
    fn default() -> Self {
        let d = netflow9::Config::default();
        DecoderLimits {
            templates: d.templates,
            domains: d.domains,
            pending_bytes: d.pending_bytes,
            pending_max_age_secs: d.pending_max_age_secs,
            max_fields: d.max_fields,
        }
    }
}

impl DecoderLimits {
    pub(crate) fn to_config(self, seed: u64) -> netflow9::Config {
        netflow9::Config {
            templates: self.templates,
            max_fields: self.max_fields,
            domains: self.domains,
            pending_bytes: self.pending_bytes,
            pending_max_age_secs: self.pending_max_age_secs,
            hash_seed: seed,
        }
    }
}

/// Log output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Log {
    /// `auto` (text on a terminal, JSON otherwise), `text` or `json`.
    pub(crate) format: String,
    /// Level filter, e.g. `info`, `debug`, `flowerd=debug`.
    pub(crate) level: String,
}

impl Default for Log {
    fn default() -> Self {
        Log {
            format: "auto".into(),
            level: "info".into(),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data: PathBuf::from("./flower-data"),
            netflow: vec![Listener::default()],
            http: Http::default(),
            pipeline: Pipeline::default(),
            decoder: DecoderLimits::default(),
            store: flowstore::StoreConfig::default(),
            log: Log::default(),
        }
    }
}

impl Config {
    /// Reads a TOML file over the defaults.
    pub(crate) fn load(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        let cfg: Config =
            toml::from_str(&text).with_context(|| format!("config file {}", path.display()))?;
        Ok(cfg)
    }

    /// Checks what serde cannot.
    pub(crate) fn validate(&self) -> anyhow::Result<()> {
        if self.netflow.is_empty() {
            bail!(
                "no NetFlow listener: add at least one [[netflow]] section or --netflow ADDR:PORT"
            );
        }
        for (i, l) in self.netflow.iter().enumerate() {
            if l.sockets == 0 || l.sockets > 64 {
                bail!("netflow listener {}: sockets must be 1..=64", l.listen);
            }
            if !RECV_BUFFER.contains(&l.recv_buffer) {
                bail!(
                    "netflow listener {}: recv_buffer must be {}..={} bytes (64 KiB to 1 GiB; got {})",
                    l.listen,
                    RECV_BUFFER.start(),
                    RECV_BUFFER.end(),
                    l.recv_buffer
                );
            }
            // Two listeners on one address would share its port through
            // SO_REUSEPORT and report the same metric series twice.
            if self.netflow[..i].iter().any(|o| o.listen == l.listen) {
                bail!(
                    "netflow listener {} is configured twice: use one [[netflow]] section \
                     with `sockets` for several sockets on one address",
                    l.listen
                );
            }
        }
        if self.http.tls_cert.is_some() != self.http.tls_key.is_some() {
            bail!("http: set both tls_cert and tls_key, or neither");
        }
        let p = &self.pipeline;
        for (name, value, max) in [
            ("pipeline.batch_flows", p.batch_flows, 1 << 20),
            ("pipeline.channel_batches", p.channel_batches, 1 << 16),
            ("pipeline.commit_max_flows", p.commit_max_flows, 1 << 24),
            ("decoder.templates", self.decoder.templates, 1 << 20),
            ("decoder.domains", self.decoder.domains, 1 << 20),
            ("decoder.pending_bytes", self.decoder.pending_bytes, 1 << 30),
            ("pipeline.batch_max_ms", to_usize(p.batch_max_ms), 60_000),
            (
                "pipeline.maintenance_secs",
                to_usize(p.maintenance_secs),
                86_400,
            ),
        ] {
            if !(1..=max).contains(&value) {
                bail!("{name} must be 1..={max} (got {value})");
            }
        }
        if self.http.login_attempts_per_minute > 10_000 {
            bail!(
                "http.login_attempts_per_minute must be 0..=10000 (0 = no limit; got {})",
                self.http.login_attempts_per_minute
            );
        }
        if p.commit_max_flows < p.batch_flows {
            bail!(
                "pipeline.commit_max_flows ({}) must be at least pipeline.batch_flows ({}): \
                 the writer commits whole batches",
                p.commit_max_flows,
                p.batch_flows
            );
        }
        if !SESSION_SECS.contains(&self.http.session_secs) {
            bail!(
                "http.session_secs must be {}..={} (a minute to a year; got {})",
                SESSION_SECS.start(),
                SESSION_SECS.end(),
                self.http.session_secs
            );
        }
        self.store
            .validate()
            .map_err(|e| anyhow::anyhow!("store.{e}"))?;
        // A bare word is read by the filter as a module name: `warning`
        // would silence every log line.
        for directive in self.log.level.split(',').map(str::trim) {
            let level = directive.rsplit_once('=').map_or(directive, |(_, l)| l);
            if !LOG_LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
                bail!(
                    "log.level: {directive:?} is not a level; use one of {} or target=level, \
                     comma-separated",
                    LOG_LEVELS.join(", ")
                );
            }
        }
        if self.http.workers == 0 || self.http.workers > 256 {
            bail!("http: workers must be 1..=256");
        }
        if !MAX_BODY_BYTES.contains(&self.http.max_body_bytes) {
            bail!(
                "http.max_body_bytes must be {}..={} (1 KiB to 64 MiB; got {})",
                MAX_BODY_BYTES.start(),
                MAX_BODY_BYTES.end(),
                self.http.max_body_bytes
            );
        }
        if !["auto", "text", "json"].contains(&self.log.format.as_str()) {
            bail!(
                "log.format must be auto, text or json (got {:?})",
                self.log.format
            );
        }
        if self.decoder.max_fields == 0 || self.decoder.max_fields > netflow9::MAX_FIELDS {
            bail!("decoder.max_fields must be 1..={}", netflow9::MAX_FIELDS);
        }
        Ok(())
    }

    /// The effective configuration as TOML.
    pub(crate) fn to_toml(&self) -> String {
        toml::to_string_pretty(self)
            .unwrap_or_else(|e| format!("# cannot print configuration: {e}\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_safe() {
        let c = Config::default();
        c.validate().unwrap();
        assert!(
            c.http.listen.ip().is_loopback(),
            "HTTP on loopback by default"
        );
        assert_eq!(c.netflow[0].listen.port(), 9995);
        assert_eq!(c.data, PathBuf::from("./flower-data"));
    }

    #[test]
    fn toml_round_trip_and_unknown_keys() {
        let c = Config::default();
        let back: Config = toml::from_str(&c.to_toml()).unwrap();
        assert_eq!(back, c);
        let partial: Config = toml::from_str(
            "data = \"/var/lib/flower\"\n[[netflow]]\nlisten = \"127.0.0.1:2055\"\n",
        )
        .unwrap();
        assert_eq!(partial.netflow[0].listen.port(), 2055);
        assert_eq!(
            partial.netflow[0].recv_buffer,
            Listener::default().recv_buffer
        );
        assert!(toml::from_str::<Config>("bogus = 1").is_err());
        let mut bad = Config::default();
        bad.http.tls_cert = Some("x".into());
        assert!(bad.validate().is_err());
    }

    #[test]
    fn body_limit_is_bounded() {
        let with = |n: usize| {
            let mut c = Config::default();
            c.http.max_body_bytes = n;
            c.validate().map_err(|e| e.to_string())
        };
        assert!(with(1024).is_ok() && with(64 << 20).is_ok());
        for bad in [0, 1023, (64 << 20) + 1, usize::MAX] {
            let e = with(bad).unwrap_err();
            assert!(e.contains("http.max_body_bytes"), "{e}");
        }
    }

    /// A file sets any subset of `[store]` too; bad values are refused
    /// when the file is checked, not when the writer first runs.
    #[test]
    fn store_section_takes_a_subset_and_is_checked() {
        let c: Config =
            toml::from_str("[store]\nsync = false\n[store.retention]\nraw_secs = 3600\n").unwrap();
        assert!(!c.store.sync);
        assert_eq!(c.store.retention.raw_secs, 3600);
        assert_eq!(
            c.store.group_cap,
            flowstore::StoreConfig::default().group_cap
        );
        c.validate().unwrap();
        assert!(
            toml::from_str::<Config>("[store]\nsnyc = false\n").is_err(),
            "typo refused"
        );
        let c: Config =
            toml::from_str("[store]\nmax_prorate_buckets = 9223372036854775807\n").unwrap();
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("store.max_prorate_buckets"), "{e}");
    }

    #[test]
    fn sizes_and_log_levels_are_checked() {
        let check = |f: &dyn Fn(&mut Config)| {
            let mut c = Config::default();
            f(&mut c);
            c.validate().map_err(|e| e.to_string())
        };
        for (name, f) in [
            (
                "pipeline.channel_batches",
                &(|c: &mut Config| c.pipeline.channel_batches = 100_000_000_000)
                    as &dyn Fn(&mut Config),
            ),
            ("pipeline.batch_flows", &|c| c.pipeline.batch_flows = 0),
            ("decoder.templates", &|c| c.decoder.templates = 0),
            ("decoder.domains", &|c| c.decoder.domains = usize::MAX),
            ("decoder.pending_bytes", &|c| {
                c.decoder.pending_bytes = 1 << 40;
            }),
            ("pipeline.batch_max_ms", &|c| c.pipeline.batch_max_ms = 0),
            ("pipeline.maintenance_secs", &|c| {
                c.pipeline.maintenance_secs = u64::MAX;
            }),
            ("http.login_attempts_per_minute", &|c| {
                c.http.login_attempts_per_minute = u32::MAX;
            }),
            ("pipeline.commit_max_flows", &|c| {
                c.pipeline.commit_max_flows = 1000;
            }),
            ("http.session_secs", &|c| c.http.session_secs = u64::MAX),
            ("recv_buffer", &|c| c.netflow[0].recv_buffer = 0),
            ("configured twice", &|c| {
                let again = c.netflow[0].clone();
                c.netflow.push(again);
            }),
            // Would overflow pro-rating in the writer thread.
            ("store.max_prorate_buckets", &|c| {
                c.store.max_prorate_buckets = u64::MAX / 2;
            }),
            ("store.retention.raw_secs", &|c| {
                c.store.retention.raw_secs = 0;
            }),
        ] {
            let e = check(f).unwrap_err();
            assert!(e.contains(name), "{e}");
        }
        for ok in ["info", "WARN", "flowerd=debug,info", "off"] {
            assert!(check(&|c| c.log.level = ok.into()).is_ok(), "{ok}");
        }
        for bad in ["warning", "info,verbose", "flowerd=loud"] {
            let e = check(&|c| c.log.level = bad.into()).unwrap_err();
            assert!(e.contains("log.level"), "{e}");
        }
    }
}
