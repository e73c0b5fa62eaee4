//! What the store reads back from disk: raw blocks and rollup blobs. Any
//! bytes are rejected or decoded; nothing panics or allocates without bound.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    flowstore::codec::fuzz::block(data);
    flowstore::codec::fuzz::rollup_blob(data);
});
