//! `flowerd decode`: capture files in, one line per flow out.

use std::io::{self, BufWriter, IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use netflow9::{Config, Decoder};
use serde::Serialize;

use crate::capture;
use crate::cli::{DecodeArgs, Format};
use crate::output;

/// The totals `--summary` prints (keys are part of the CLI's contract).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) struct Summary {
    /// UDP datagrams whose first two bytes are 9.
    pub(crate) datagrams: u64,
    /// Of those, export packets with a valid v9 header.
    pub(crate) packets: u64,
    /// Template records.
    pub(crate) templates: u64,
    /// Options Template records.
    pub(crate) options_templates: u64,
    /// Data records of (non-options) templates.
    pub(crate) flows: u64,
    /// Options data records.
    pub(crate) option_records: u64,
    /// Σ bytes of the flows, unscaled.
    pub(crate) bytes: u64,
    /// Σ packets of the flows, unscaled.
    pub(crate) pkts: u64,
    /// Data FlowSets whose template was unknown on arrival.
    pub(crate) unknown_template: u64,
    /// Malformed structures (all kinds).
    pub(crate) malformed: u64,
    /// Export packets missing by sequence number.
    pub(crate) seq_lost: u64,
}

/// What was read but not decoded, reported on stderr.
#[derive(Debug, Default, Clone, Copy)]
struct Skipped {
    frames: u64,
    other_udp: u64,
    non_udp: u64,
    truncated: u64,
    fragmented: u64,
    unsupported_link: u64,
}

/// True if a UDP payload looks like NetFlow v9 (version field 9).
fn is_v9(payload: &[u8]) -> bool {
    payload.get(..2) == Some(&[0, 9])
}

pub(crate) fn run(args: &DecodeArgs) -> anyhow::Result<ExitCode> {
    let mut decoder = Decoder::new(Config::default());
    let mut out = BufWriter::with_capacity(1 << 16, io::stdout().lock());
    let mut summary = Summary::default();
    let mut skipped = Skipped::default();
    let progress = io::stderr().is_terminal();
    let mut write_error: Option<io::Error> = None;

    if args.format == Format::Csv && !args.summary {
        writeln!(out, "{}", output::CSV_HEADER).context("writing to stdout")?;
    }
    // A file that cannot be read to its end (cut short while a capture
    // was being written, say) is reported and the others are still read;
    // the exit status is then 1.
    let mut failed_files = 0usize;
    for path in &args.files {
        let mut reader = match capture::open(path) {
            Ok(r) => r,
            Err(e) => {
                failed_files += 1;
                eprintln!(
                    "flowerd decode: error: {}: {e} (is it a pcap or pcapng capture file?)",
                    path.display()
                );
                continue;
            }
        };
        let mut next_report = Instant::now() + Duration::from_secs(1);
        let result = reader.for_each_datagram_while(|d| {
            if !is_v9(d.payload) {
                skipped.other_udp += 1;
                return true;
            }
            summary.datagrams += 1;
            let _ = decoder.decode(d.src.ip(), d.payload, |r| {
                if r.is_options() {
                    return;
                }
                let flow = r.flow();
                summary.bytes = summary.bytes.saturating_add(flow.bytes);
                summary.pkts = summary.pkts.saturating_add(flow.packets);
                if args.summary || write_error.is_some() {
                    return;
                }
                let res = match args.format {
                    Format::Jsonl => output::write_json(&mut out, &flow),
                    Format::Csv => output::write_csv(&mut out, &flow),
                };
                if let Err(e) = res {
                    write_error = Some(e);
                }
            });
            if progress && summary.datagrams % 1024 == 0 && Instant::now() >= next_report {
                next_report = Instant::now() + Duration::from_secs(1);
                eprint!(
                    "\r{}: {} datagrams, {} flows   ",
                    path.display(),
                    summary.datagrams,
                    decoder.counters().records
                );
            }
            // Nobody reads the output any more (`| head`): stop reading.
            write_error.is_none()
        });
        if progress {
            eprint!("\r\x1b[K");
        }
        let stats = match result {
            Ok(stats) => stats,
            Err(e) => {
                failed_files += 1;
                eprintln!(
                    "flowerd decode: error: {}: {e}; the datagrams before it are decoded",
                    path.display()
                );
                reader.stats()
            }
        };
        skipped.frames += stats.frames;
        skipped.non_udp += stats.non_udp;
        skipped.truncated += stats.truncated;
        skipped.fragmented += stats.fragmented;
        skipped.unsupported_link += stats.unsupported_link;
        if let Some(e) = write_error.take() {
            return finish_write(e);
        }
    }

    let c = decoder.counters();
    summary.packets = c.packets;
    summary.templates = c.templates;
    summary.options_templates = c.options_templates;
    summary.flows = c.records;
    summary.option_records = c.options_records;
    summary.unknown_template = c.unknown_template_flowsets;
    summary.malformed = c.malformed_total();
    summary.seq_lost = c.sequence_lost;
    if args.summary {
        serde_json::to_writer(&mut out, &summary).context("writing to stdout")?;
        writeln!(out).context("writing to stdout")?;
    }
    if let Err(e) = out.flush() {
        return finish_write(e);
    }
    eprintln!(
        "flowerd decode: files={} frames={} netflow_v9_datagrams={} flows={} \
         skipped_other_udp={} skipped_non_udp={} truncated={} fragmented={} unsupported_link={} \
         malformed={} unknown_template_flowsets={} pending_flowsets={}",
        args.files.len(),
        skipped.frames,
        summary.datagrams,
        summary.flows,
        skipped.other_udp,
        skipped.non_udp,
        skipped.truncated,
        skipped.fragmented,
        skipped.unsupported_link,
        summary.malformed,
        summary.unknown_template,
        decoder.pending_flowsets(),
    );
    if failed_files > 0 {
        eprintln!(
            "flowerd decode: {failed_files} of {} files could not be read to their end (see above)",
            args.files.len()
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// A closed pipe (`| head`) ends the output quietly; other errors are errors.
fn finish_write(e: io::Error) -> anyhow::Result<ExitCode> {
    if e.kind() == io::ErrorKind::BrokenPipe {
        return Ok(ExitCode::SUCCESS);
    }
    Err(e).context("writing to stdout")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v9_detection() {
        assert!(is_v9(&[0, 9, 1]));
        assert!(!is_v9(&[0, 10]));
        assert!(!is_v9(&[0]));
    }
}
