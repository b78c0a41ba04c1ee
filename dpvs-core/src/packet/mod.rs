//! Packet views: bounds-checked, zero-copy header access and in-place rewrites.
//!
//! Hand-rolled fixed-offset reads (`from_be_bytes` on checked slices, safe code only, no
//! allocation, no panic on any input): [`parse`](parse::parse) summarises a frame once into a
//! `Copy` [`Packet`], and the rewrite modules ([`nat`], [`ipip`], [`arp`], [`icmp`],
//! [`icmp_error`], [`tcp`]) edit the frame in place from that summary, patching checksums
//! incrementally where they can.
pub mod arp;
pub mod checksum;
pub mod ether;
pub mod icmp;
pub mod icmp_error;
pub mod ipip;
pub mod ipv4;
pub mod nat;
pub mod parse;
pub mod tcp;

#[cfg(test)]
mod tests;

pub use dpvs_dpdk::{Frame, VecFrame};
pub use ether::MacAddr;
pub use parse::{ArpInfo, Ipv4Info, L3, L4, Packet, TcpInfo, parse, tcp_flags_valid};
