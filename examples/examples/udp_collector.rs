//! A minimal NetFlow v9 collector: listen on a UDP port (loopback by
//! default), decode every datagram, print one line per flow, and the
//! decoder's counters at the end.
//!
//! ```sh
//! cargo run --example udp_collector -- 127.0.0.1:2055 10   # listen 10 s
//! cargo run -p flowerd -- replay capture.pcap --to 127.0.0.1:2055   # in another shell
//! ```

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use netflow9::{Config, Decoder};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:2055".to_string());
    let seconds: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(10);
    let socket = UdpSocket::bind(&addr)?;
    socket.set_read_timeout(Some(Duration::from_millis(200)))?;
    eprintln!("listening on {addr} for {seconds} s");

    let mut decoder = Decoder::new(Config::default());
    let mut buf = [0u8; 65_535];
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < deadline {
        let (len, from) = match socket.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(e) => return Err(e.into()),
        };
        let result = decoder.decode(from.ip(), &buf[..len], |r| {
            if !r.is_options() {
                let f = r.flow();
                println!(
                    "{} {} -> {} {} B",
                    f.exporter, f.src_addr, f.dst_addr, f.bytes
                );
            }
        });
        if let Err(e) = result {
            eprintln!("{from}: {e}");
        }
    }
    eprintln!("{:#?}", decoder.counters());
    Ok(())
}
