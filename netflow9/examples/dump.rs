use netflow9::wire::{FlowSetIter, PacketHeader};
fn main() {
    let mut d = netflow9::Decoder::new(netflow9::Config::default());
    for f in std::env::args().skip(1) {
        let b = std::fs::read(&f).unwrap();
        let p = PacketHeader::new_checked(&b[..]).unwrap();
        println!("{f}: {:?}", p.repr());
        for s in FlowSetIter::new(p.payload()) {
            match s {
                Ok(s) => println!("  set {} len {}", s.id(), s.body().len()),
                Err(e) => println!("  err {e}"),
            }
        }
        let r = d.decode("127.0.0.1".parse().unwrap(), &b, |_| {});
        println!("  {:?}", r);
    }
    println!("{:?}", d.counters());
}
