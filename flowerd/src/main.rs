//! flowerd: the Flower NetFlow v9 collector.

fn main() {}
