//! The control protocol, one concern a module: [`wire`] (how messages travel: the versioned
//! one-line JSON envelope, the size limits, encoding and decoding, [`serve_line`]),
//! [`request`] (what a client may ask), [`response`] (what the daemon answers) and [`stats`]
//! (the counters in those answers). Everything is re-exported here and at the crate root, so
//! `dpvs_api::Request` and `dpvs_api::proto::Request` name the same type.

pub mod request;
pub mod response;
pub mod stats;
pub mod wire;

pub use request::*;
pub use response::*;
pub use stats::*;
pub use wire::*;
