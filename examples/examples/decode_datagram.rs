//! Build one NetFlow v9 export packet with the encoder and decode it: the
//! smallest complete use of `netflow9`.
//!
//! ```sh
//! cargo run --example decode_datagram
//! ```

use netflow9::{Config, Decoder, FieldSpecifier, FieldType, HeaderRepr, PacketBuilder, Template};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The exporter side: one template, two records.
    let fields = [
        FieldSpecifier::new(FieldType::IPV4_SRC_ADDR, 4),
        FieldSpecifier::new(FieldType::IPV4_DST_ADDR, 4),
        FieldSpecifier::new(FieldType::L4_SRC_PORT, 2),
        FieldSpecifier::new(FieldType::L4_DST_PORT, 2),
        FieldSpecifier::new(FieldType::PROTOCOL, 1),
        FieldSpecifier::new(FieldType::IN_BYTES, 8),
        FieldSpecifier::new(FieldType::IN_PKTS, 4),
        FieldSpecifier::new(FieldType::FLOW_START_MILLISECONDS, 8),
        FieldSpecifier::new(FieldType::FLOW_END_MILLISECONDS, 8),
    ];
    let template = Template::new(256, &fields)?;
    let header = HeaderRepr {
        unix_secs: 1_709_294_536,
        sequence_number: 1,
        ..HeaderRepr::default()
    };
    let mut buf = [0u8; 1500];
    let mut packet = PacketBuilder::new(&mut buf, header)?;
    packet.template(256, &fields)?;
    for (src, bytes) in [([10, 10, 1, 66], 3_320_102u64), ([10, 10, 1, 12], 8_320)] {
        packet.record_with(&template, |r| {
            let put = |r: &mut [u8], t: FieldType, v: &[u8]| {
                if let Some(range) = template.offset_of(t) {
                    r[range].copy_from_slice(v);
                }
            };
            put(r, FieldType::IPV4_SRC_ADDR, &src);
            put(r, FieldType::IPV4_DST_ADDR, &[198, 18, 96, 195]);
            put(r, FieldType::L4_SRC_PORT, &49200u16.to_be_bytes());
            put(r, FieldType::L4_DST_PORT, &80u16.to_be_bytes());
            put(r, FieldType::PROTOCOL, &[6]);
            put(r, FieldType::IN_BYTES, &bytes.to_be_bytes());
            put(r, FieldType::IN_PKTS, &2_220u32.to_be_bytes());
            put(
                r,
                FieldType::FLOW_START_MILLISECONDS,
                &1_709_294_415_000u64.to_be_bytes(),
            );
            put(
                r,
                FieldType::FLOW_END_MILLISECONDS,
                &1_709_294_416_500u64.to_be_bytes(),
            );
        })?;
    }
    let len = packet.finish()?;

    // The collector side.
    let mut decoder = Decoder::new(Config::default());
    let exporter = "192.0.2.1".parse()?;
    let summary = decoder.decode(exporter, &buf[..len], |record| {
        let f = record.flow();
        println!(
            "{}:{} -> {}:{} proto {} {} bytes {} packets, {} ms",
            f.src_addr,
            f.src_port,
            f.dst_addr,
            f.dst_port,
            f.protocol,
            f.bytes,
            f.packets,
            f.duration_ms()
        );
    })?;
    println!(
        "{} records, {} template(s)",
        summary.records, summary.templates
    );
    Ok(())
}
