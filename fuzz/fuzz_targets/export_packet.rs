//! One datagram into a fresh, small decoder and through every wire view.
//! The checks live in `checks/export_packet.rs`, shared with the regression
//! tests in `netflow9/tests/fuzz_regressions.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../checks/export_packet.rs"]
mod export_packet;

fuzz_target!(|data: &[u8]| export_packet::check(data));
