//! Store the benchmark data set (10 M synthetic flows over 24 h) in a
//! temporary directory and print how many bytes each flow takes on disk,
//! rollups and the network map included.
//!
//! ```sh
//! cargo run --release --example store_footprint          # appends of 10 000 flows
//! cargo run --release --example store_footprint -- 23    # appends of 23 flows
//! ```
//!
//! The argument is the number of flows per append (default 10 000, the
//! batches the floor is measured with). A daemon receiving little traffic
//! commits small batches (every `pipeline.batch_max_ms`): the smaller
//! argument shows what that costs.
//!
//! Maintenance runs after every hour of data, as `flowerd` runs it every
//! minute, so the 5-minute and hourly tiers are built as the data arrives;
//! the figure is the size of the LMDB data file divided by the flows.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use flowstore::synth::{Synth, SynthConfig};
use flowstore::{Store, StoreConfig};
use netflow9::Flow;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(
        dir.path(),
        StoreConfig {
            // Durability does not change the size; it only slows this down.
            sync: false,
            ..StoreConfig::default()
        },
    )?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let mut synth = Synth::new(SynthConfig::benchmark());
    let per_append: usize = match std::env::args().nth(1) {
        Some(a) => a
            .parse()
            .ok()
            .filter(|&n| n > 0)
            .ok_or("the argument is the number of flows per append (1 or more)")?,
        None => 10_000,
    };
    let mut batch = vec![Flow::default(); per_append];
    let started = Instant::now();
    let mut flows = 0u64;
    {
        let mut writer = store.writer()?;
        let mut hour = None;
        loop {
            let n = synth.fill(&mut batch);
            if n == 0 {
                break;
            }
            writer.append(&batch[..n])?;
            flows += n as u64;
            let h = batch[n - 1].last_ms / 3_600_000;
            if hour.is_some_and(|prev| prev != h) {
                writer.maintain(now, false)?;
            }
            hour = Some(h);
        }
        writer.maintain(now, true)?;
    }
    let bytes = store.disk_bytes()?;
    eprintln!(
        "{flows} flows stored in {:.1} s; data file {bytes} bytes",
        started.elapsed().as_secs_f64()
    );
    println!(
        "bytes_per_flow={:.1} flows_per_append={per_append}",
        bytes as f64 / flows as f64
    );
    Ok(())
}
