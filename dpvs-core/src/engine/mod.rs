//! The load-balancing engine: everything a worker does to a packet, without EAL.
pub mod conn;
pub mod hop;
pub mod laddr;
pub mod neigh;
pub mod persist;
pub mod route;
pub mod sched;
pub mod snapshot;
pub mod stats;
pub mod steer;
pub mod tcp_state;
pub mod worker;
