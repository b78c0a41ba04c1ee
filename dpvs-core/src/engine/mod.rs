//! The load-balancing engine: everything a worker does to a packet, without EAL.
