//! Shared test helpers (see the `testkit` crate).
#![allow(unused_imports, unreachable_pub)]

pub use testkit::{data, json, udp_payloads};
