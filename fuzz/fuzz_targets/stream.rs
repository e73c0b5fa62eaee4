//! A sequence of datagrams from four exporters into one small decoder, with
//! counter invariants checked after each. Input format and checks:
//! `checks/stream.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)] // only the shared record and counter checks are used here
#[path = "../checks/export_packet.rs"]
mod export_packet;
#[path = "../checks/stream.rs"]
mod stream;

fuzz_target!(|data: &[u8]| stream::check(data));
