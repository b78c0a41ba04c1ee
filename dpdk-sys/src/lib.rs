//! Raw bindings to the system DPDK 22.11, generated at build time by bindgen from `wrapper.h`.
//!
//! `static inline` functions (rx/tx burst, mbuf alloc/free, ring burst, `rte_lcore_id`, ...) are
//! reached through C wrappers that bindgen generates (`wrap_static_fns`), under their C names.
//! What bindgen cannot see comes from `shim.c`/`wrapper.h` under the `dpvs_`/`DPVS_` prefix; the
//! usual spellings of the 64-bit flag constants are re-exported below as `u64`.
//!
//! Everything here is `unsafe` FFI; the safe layer is the `dpvs-dpdk` crate (`dpdk/`).
#![allow(
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    unnecessary_transmutes,
    deprecated,
    improper_ctypes,
    unsafe_op_in_unsafe_fn,
    clippy::all,
    clippy::undocumented_unsafe_blocks,
    reason = "bindgen's output keeps DPDK's C names, types and idioms"
)]

include!(concat!(env!("OUT_DIR"), "/bindings.rs"));

/// `LCORE_ID_ANY`: what `rte_lcore_id()` returns on a thread that is not an EAL lcore.
pub const LCORE_ID_ANY: u32 = DPVS_LCORE_ID_ANY;

/// `RTE_ETH_RSS_*` hash-function bits (built from `RTE_BIT64` in C, so bindgen drops the macros).
pub const RTE_ETH_RSS_IPV4: u64 = DPVS_ETH_RSS_IPV4;
/// See [`RTE_ETH_RSS_IPV4`].
pub const RTE_ETH_RSS_NONFRAG_IPV4_TCP: u64 = DPVS_ETH_RSS_NONFRAG_IPV4_TCP;
/// See [`RTE_ETH_RSS_IPV4`].
pub const RTE_ETH_RSS_NONFRAG_IPV4_UDP: u64 = DPVS_ETH_RSS_NONFRAG_IPV4_UDP;
/// See [`RTE_ETH_RSS_IPV4`].
pub const RTE_ETH_RSS_IPV6: u64 = DPVS_ETH_RSS_IPV6;
/// See [`RTE_ETH_RSS_IPV4`].
pub const RTE_ETH_RSS_NONFRAG_IPV6_TCP: u64 = DPVS_ETH_RSS_NONFRAG_IPV6_TCP;
/// See [`RTE_ETH_RSS_IPV4`].
pub const RTE_ETH_RSS_NONFRAG_IPV6_UDP: u64 = DPVS_ETH_RSS_NONFRAG_IPV6_UDP;
/// See [`RTE_ETH_RSS_IPV4`].
pub const RTE_ETH_RSS_IP: u64 = DPVS_ETH_RSS_IP;
/// See [`RTE_ETH_RSS_IPV4`].
pub const RTE_ETH_RSS_TCP: u64 = DPVS_ETH_RSS_TCP;
/// See [`RTE_ETH_RSS_IPV4`].
pub const RTE_ETH_RSS_UDP: u64 = DPVS_ETH_RSS_UDP;

/// `RTE_ETH_RX_OFFLOAD_*` bits.
pub const RTE_ETH_RX_OFFLOAD_IPV4_CKSUM: u64 = DPVS_ETH_RX_OFFLOAD_IPV4_CKSUM;
/// See [`RTE_ETH_RX_OFFLOAD_IPV4_CKSUM`].
pub const RTE_ETH_RX_OFFLOAD_UDP_CKSUM: u64 = DPVS_ETH_RX_OFFLOAD_UDP_CKSUM;
/// See [`RTE_ETH_RX_OFFLOAD_IPV4_CKSUM`].
pub const RTE_ETH_RX_OFFLOAD_TCP_CKSUM: u64 = DPVS_ETH_RX_OFFLOAD_TCP_CKSUM;
/// See [`RTE_ETH_RX_OFFLOAD_IPV4_CKSUM`].
pub const RTE_ETH_RX_OFFLOAD_SCATTER: u64 = DPVS_ETH_RX_OFFLOAD_SCATTER;
/// See [`RTE_ETH_RX_OFFLOAD_IPV4_CKSUM`].
pub const RTE_ETH_RX_OFFLOAD_RSS_HASH: u64 = DPVS_ETH_RX_OFFLOAD_RSS_HASH;

/// `RTE_ETH_TX_OFFLOAD_*` bits.
pub const RTE_ETH_TX_OFFLOAD_IPV4_CKSUM: u64 = DPVS_ETH_TX_OFFLOAD_IPV4_CKSUM;
/// See [`RTE_ETH_TX_OFFLOAD_IPV4_CKSUM`].
pub const RTE_ETH_TX_OFFLOAD_UDP_CKSUM: u64 = DPVS_ETH_TX_OFFLOAD_UDP_CKSUM;
/// See [`RTE_ETH_TX_OFFLOAD_IPV4_CKSUM`].
pub const RTE_ETH_TX_OFFLOAD_TCP_CKSUM: u64 = DPVS_ETH_TX_OFFLOAD_TCP_CKSUM;
/// See [`RTE_ETH_TX_OFFLOAD_IPV4_CKSUM`].
pub const RTE_ETH_TX_OFFLOAD_MULTI_SEGS: u64 = DPVS_ETH_TX_OFFLOAD_MULTI_SEGS;
/// See [`RTE_ETH_TX_OFFLOAD_IPV4_CKSUM`].
pub const RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE: u64 = DPVS_ETH_TX_OFFLOAD_MBUF_FAST_FREE;

#[cfg(test)]
mod constant_tests {
    use super::*;

    /// The constants against values written out from DPDK 22.11's headers, so that a wrong
    /// spelling in the shim cannot slip through.
    #[test]
    fn bit64_constants_match_dpdk_22_11() {
        assert_eq!(LCORE_ID_ANY, u32::MAX);
        assert_eq!(RTE_ETH_RSS_IPV4, 1 << 2);
        assert_eq!(RTE_ETH_RSS_NONFRAG_IPV4_TCP, 1 << 4);
        assert_eq!(RTE_ETH_RSS_NONFRAG_IPV4_UDP, 1 << 5);
        assert_eq!(RTE_ETH_RSS_IPV6, 1 << 8);
        assert_eq!(RTE_ETH_RSS_NONFRAG_IPV6_TCP, 1 << 10);
        assert_eq!(RTE_ETH_RSS_NONFRAG_IPV6_UDP, 1 << 11);
        assert_eq!(RTE_ETH_RSS_IP, 0xa38c);
        assert_eq!(RTE_ETH_RSS_TCP, 0x1_0410);
        assert_eq!(RTE_ETH_RSS_UDP, 0x2_0820);
        assert_eq!(RTE_ETH_RX_OFFLOAD_IPV4_CKSUM, 1 << 1);
        assert_eq!(RTE_ETH_RX_OFFLOAD_UDP_CKSUM, 1 << 2);
        assert_eq!(RTE_ETH_RX_OFFLOAD_TCP_CKSUM, 1 << 3);
        assert_eq!(RTE_ETH_RX_OFFLOAD_SCATTER, 1 << 13);
        assert_eq!(RTE_ETH_RX_OFFLOAD_RSS_HASH, 1 << 19);
        assert_eq!(RTE_ETH_TX_OFFLOAD_IPV4_CKSUM, 1 << 1);
        assert_eq!(RTE_ETH_TX_OFFLOAD_UDP_CKSUM, 1 << 2);
        assert_eq!(RTE_ETH_TX_OFFLOAD_TCP_CKSUM, 1 << 3);
        assert_eq!(RTE_ETH_TX_OFFLOAD_MULTI_SEGS, 1 << 15);
        assert_eq!(RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE, 1 << 16);
        assert_eq!(RTE_MBUF_F_RX_RSS_HASH, 1 << 1);
        assert_eq!(RING_F_SP_ENQ, 1);
        assert_eq!(RING_F_SC_DEQ, 2);
    }
}
