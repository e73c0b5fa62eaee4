//! How flows are printed: the JSON keys and CSV columns of `flowerd decode`
//! (and, later, of the HTTP API).

use std::io::{self, Write};
use std::net::IpAddr;

use netflow9::Flow;
use serde::Serialize;

/// CSV header, in the order of [`FlowRow`]'s fields.
pub(crate) const CSV_HEADER: &str = "exporter,source_id,template_id,ip_version,src_addr,dst_addr,\
src_port,dst_port,protocol,tcp_flags,tos,bytes,packets,out_bytes,out_packets,first_ms,last_ms,\
input_if,output_if,src_as,dst_as,src_mask,dst_mask,next_hop,bgp_next_hop,direction,sampling_interval";

/// One flow as printed.
#[derive(Debug, Serialize)]
pub(crate) struct FlowRow {
    exporter: IpAddr,
    source_id: u32,
    template_id: u16,
    ip_version: u8,
    src_addr: IpAddr,
    dst_addr: IpAddr,
    src_port: u16,
    dst_port: u16,
    protocol: u8,
    tcp_flags: u8,
    tos: u8,
    bytes: u64,
    packets: u64,
    out_bytes: u64,
    out_packets: u64,
    first_ms: u64,
    last_ms: u64,
    input_if: u32,
    output_if: u32,
    src_as: u32,
    dst_as: u32,
    src_mask: u8,
    dst_mask: u8,
    next_hop: Option<IpAddr>,
    bgp_next_hop: Option<IpAddr>,
    direction: Option<u8>,
    sampling_interval: u32,
}

impl From<&Flow> for FlowRow {
    fn from(f: &Flow) -> Self {
        FlowRow {
            exporter: f.exporter,
            source_id: f.source_id,
            template_id: f.template_id,
            ip_version: f.ip_version(),
            src_addr: f.src_addr,
            dst_addr: f.dst_addr,
            src_port: f.src_port,
            dst_port: f.dst_port,
            protocol: f.protocol,
            tcp_flags: f.tcp_flags,
            tos: f.tos,
            bytes: f.bytes,
            packets: f.packets,
            out_bytes: f.out_bytes,
            out_packets: f.out_packets,
            first_ms: f.first_ms,
            last_ms: f.last_ms,
            input_if: f.input_if,
            output_if: f.output_if,
            src_as: f.src_as,
            dst_as: f.dst_as,
            src_mask: f.src_mask,
            dst_mask: f.dst_mask,
            next_hop: f.next_hop,
            bgp_next_hop: f.bgp_next_hop,
            direction: f.direction,
            sampling_interval: f.sampling_interval,
        }
    }
}

/// Writes one JSON line.
pub(crate) fn write_json(out: &mut impl Write, flow: &Flow) -> io::Result<()> {
    serde_json::to_writer(&mut *out, &FlowRow::from(flow))?;
    out.write_all(b"\n")
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map(|x| x.to_string()).unwrap_or_default()
}

/// Writes one CSV row (no field needs quoting: numbers and addresses only).
pub(crate) fn write_csv(out: &mut impl Write, f: &Flow) -> io::Result<()> {
    writeln!(
        out,
        "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
        f.exporter,
        f.source_id,
        f.template_id,
        f.ip_version(),
        f.src_addr,
        f.dst_addr,
        f.src_port,
        f.dst_port,
        f.protocol,
        f.tcp_flags,
        f.tos,
        f.bytes,
        f.packets,
        f.out_bytes,
        f.out_packets,
        f.first_ms,
        f.last_ms,
        f.input_if,
        f.output_if,
        f.src_as,
        f.dst_as,
        f.src_mask,
        f.dst_mask,
        opt(f.next_hop),
        opt(f.bgp_next_hop),
        opt(f.direction),
        f.sampling_interval,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_row_matches_header() {
        let mut out = Vec::new();
        write_csv(&mut out, &Flow::default()).unwrap();
        let row = String::from_utf8(out).unwrap();
        assert_eq!(
            row.trim_end().split(',').count(),
            CSV_HEADER.split(',').count()
        );
        let mut json = Vec::new();
        write_json(&mut json, &Flow::default()).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        let mut header: Vec<&str> = CSV_HEADER.split(',').collect();
        header.sort_unstable();
        let mut keys = keys;
        keys.sort_unstable();
        assert_eq!(keys, header, "JSON keys and CSV columns are the same set");
    }
}
