//! The worker end to end without DPDK: frames built with etherparse go through
//! `Worker::process`, `Worker::process_burst` and `Worker::housekeeping` (the harness is
//! `dpvs_testkit::rig`) and what comes out is decoded and checked (addresses, ports, MACs, TTL,
//! full checksum recomputes, counters). One test binary, one module per concern.
//!
//! Lab (`dpvs_testkit::lab`): worker 1 of 2; port 0 "dpdk0" (client side, 10.0.0.1/24 and the
//! VIP 10.0.0.100/32), port 1 "dpdk1" (real-server side, 192.168.10.1/24 and the local address
//! 192.168.10.200/32), rr services tcp:VIP:80 → RS1/RS2:8080 and udp:VIP:53 → RS1/RS2:5353.

mod bad_input;
mod cut;
mod direct;
mod expiry;
mod fullnat;
mod icmp;
mod kernel;
mod local;
mod nat;
mod next_hop;
mod schedulers;
mod scheduling;
mod steering;
mod udp;
