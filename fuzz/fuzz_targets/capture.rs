//! `flowerd decode`'s capture reader (pcap and pcapng files): any bytes give
//! datagrams inside the input or an error with an offset, never a panic.
#![no_main]
#![allow(dead_code, unreachable_pub)]

use libfuzzer_sys::fuzz_target;

#[path = "../../flowerd/src/capture.rs"]
mod capture;

fuzz_target!(|data: &[u8]| {
    let Ok(mut reader) = capture::CaptureReader::new(data) else {
        return;
    };
    let mut n = 0u64;
    let result = reader.for_each_datagram(|d| {
        n += 1;
        assert!(d.payload.len() <= data.len());
    });
    if let Ok(stats) = result {
        assert_eq!(stats.udp, n);
    }
    assert!(reader.offset() <= data.len() as u64);
});
