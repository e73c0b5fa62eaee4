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
        // Every field a different value, so a swapped column shows.
        let f = Flow {
            exporter: [192, 0, 2, 1].into(),
            source_id: 2,
            template_id: 3,
            src_addr: [10, 0, 0, 4].into(),
            dst_addr: [10, 0, 0, 5].into(),
            src_port: 6,
            dst_port: 7,
            protocol: 8,
            tcp_flags: 9,
            tos: 10,
            input_if: 11,
            output_if: 12,
            src_as: 13,
            dst_as: 14,
            src_mask: 15,
            dst_mask: 16,
            next_hop: Some([10, 0, 0, 17].into()),
            bgp_next_hop: None,
            direction: Some(1),
            bytes: 19,
            packets: 20,
            out_bytes: 21,
            out_packets: 22,
            first_ms: 23,
            last_ms: 24,
            sampling_interval: 25,
        };
        let mut out = Vec::new();
        write_csv(&mut out, &f).unwrap();
        let row = String::from_utf8(out).unwrap();
        let mut json = Vec::new();
        write_json(&mut json, &f).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
        let object = v.as_object().unwrap();
        let columns: Vec<&str> = CSV_HEADER.split(',').collect();
        let cells: Vec<&str> = row.trim_end().split(',').collect();
        assert_eq!(cells.len(), columns.len());
        assert_eq!(object.len(), columns.len(), "JSON keys and CSV columns");
        for (column, cell) in columns.iter().zip(&cells) {
            let expected = match &object[*column] {
                serde_json::Value::Null => String::new(),
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            assert_eq!(*cell, expected, "column {column}");
        }
    }
}
